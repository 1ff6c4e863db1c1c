//! The configuration checks that need other modules' code: certificates and keys load and
//! match, credentials parse, lane addresses and CA files are usable, pins and trust anchors
//! read, policy rules make sense. They run where those modules are wired, after the leaf's own
//! checks (`config::validate`), and report through the same `Source`: file:line: key: message.

use crate::config::{Config, ConfigError, Source};

pub fn wired(c: &Config, src: &Source) -> Result<(), ConfigError> {
    let err = |key: &str, msg: String| Err(src.error(key, msg));
    if let (Some(cert), Some(key)) = (&c.tls.cert_file, &c.tls.key_file)
        && let Err(e) = crate::wire::server_tls::load_cert_and_key(cert, key)
    {
        return err("tls.cert_file", e.to_string());
    }
    if c.auth.enabled
        && let Some(f) = &c.auth.credentials_file
        && let Err(e) = crate::smtp::auth::Credentials::load(f)
    {
        return err("auth.credentials_file", e.to_string());
    }
    if let Some(w) = &c.web {
        if let Some(f) = &w.users_file
            && let Err(e) = crate::review::users::Users::load(f)
        {
            return err("web.users_file", e.to_string());
        }
        if let (Some(cert), Some(key)) = (&w.cert_file, &w.key_file)
            && let Err(e) = crate::wire::server_tls::load_cert_and_key(cert, key)
        {
            return err("web.cert_file", e.to_string());
        }
    }
    for (name, lane) in &c.upstream.lanes {
        if let Err(msg) = crate::wire::parse_host_port(&lane.address) {
            return err(&format!("upstream.lanes.{name}.address"), msg);
        }
        if let Some(ca) = &lane.ca_file
            && let Err(e) = crate::wire::tls::load_roots(ca)
        {
            return err(&format!("upstream.lanes.{name}.ca_file"), e.to_string());
        }
    }
    for (i, d) in c.domains.iter().enumerate() {
        for (k, pin) in d.tls_pins.iter().enumerate() {
            if crate::posture::trust::parse_pin(pin).is_none() {
                return err(
                    &format!("domains[{i}].tls_pins[{k}]"),
                    format!("{pin:?} is not \"sha256:<64 hex digits>\""),
                );
            }
        }
        if let Some(ca) = &d.tls_ca_file
            && let Err(e) = crate::wire::tls::load_roots(ca)
        {
            return err(&format!("domains[{i}].tls_ca_file"), e.to_string());
        }
    }
    if let Some(anchor) = &c.dns.trust_anchor_file
        && let Err(e) = crate::posture::anchors::read(anchor)
    {
        return err("dns.trust_anchor_file", e.to_string());
    }
    if let Err((i, key, msg)) = crate::policy::validate(&c.policy.rules) {
        let at = if key.is_empty() {
            format!("policy.rules[{i}]")
        } else {
            format!("policy.rules[{i}].{key}")
        };
        return err(&at, msg);
    }
    if let Some(f) = &c.posture.ca_file
        && let Err(e) = crate::wire::tls::load_roots(f)
    {
        return err("posture.ca_file", e.to_string());
    }
    Ok(())
}
