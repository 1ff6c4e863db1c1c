//! Configuration: the TOML schema, the embedded defaults, command-line overrides and validation.
//!
//! Errors name the file, the line and the dotted key (`sluis.toml:14: limits.recipients: ...`), or
//! the flag when the value came from the command line, so an administrator can fix them without
//! guessing. `sluis config check` runs exactly this code and prints the effective configuration.

mod locate;
mod policy;
mod schema;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use toml_edit::ImDocument;

pub use policy::*;
pub use schema::*;

/// Settings given as flags; each overrides the file (or the embedded default).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub upstream: Option<String>,
    pub allow_net: Vec<IpNet>,
    pub spool: Option<PathBuf>,
    pub admin: Option<SocketAddr>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read the configuration: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {key}: {message}")]
    Invalid {
        path: String,
        line: usize,
        key: String,
        message: String,
    },
    #[error("{origin}: {key}: {message}")]
    Unlocated {
        origin: String,
        key: String,
        message: String,
    },
}

/// Where the configuration text came from, kept so that later checks can point at a line.
struct Source {
    path: String,
    text: String,
}

impl Source {
    /// Whether the file sets `key` (dotted).
    fn sets(&self, key: &str) -> bool {
        ImDocument::parse(self.text.as_str())
            .ok()
            .is_some_and(|doc| locate::span_of(&doc, key).is_some())
    }

    /// An error about `key`, at the key's line when the file sets it.
    fn error(&self, key: &str, message: String, flags: &[(&str, &str)]) -> ConfigError {
        if let Some((_, flag)) = flags.iter().find(|(k, _)| key.starts_with(k)) {
            return ConfigError::Unlocated {
                origin: format!("command line {flag}"),
                key: key.to_string(),
                message,
            };
        }
        if let Ok(doc) = ImDocument::parse(self.text.as_str())
            && let Some(span) = locate::span_of(&doc, key)
        {
            return ConfigError::Invalid {
                path: self.path.clone(),
                line: locate::line_of(&self.text, span.start),
                key: key.to_string(),
                message,
            };
        }
        ConfigError::Unlocated {
            origin: format!("{} (default value)", self.path),
            key: key.to_string(),
            message,
        }
    }

    /// A parse error from serde/toml, turned into file:line: key: message.
    fn parse_error(&self, err: toml::de::Error) -> ConfigError {
        let message = err.message().trim().to_string();
        let Some(span) = err.span() else {
            return ConfigError::Unlocated {
                origin: self.path.clone(),
                key: "(document)".to_string(),
                message,
            };
        };
        let key = ImDocument::parse(self.text.as_str())
            .ok()
            .and_then(|doc| locate::key_at(&doc, span.start))
            .unwrap_or_else(|| "(syntax)".to_string());
        ConfigError::Invalid {
            path: self.path.clone(),
            line: locate::line_of(&self.text, span.start),
            key,
            message,
        }
    }
}

/// Reads `path` (or the embedded default when `None`), applies `overrides`, and validates.
pub fn load(path: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
    let source = match path {
        Some(p) => Source {
            path: p.display().to_string(),
            text: std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                path: p.display().to_string(),
                source,
            })?,
        },
        None => Source {
            path: "(embedded default)".to_string(),
            text: String::new(),
        },
    };
    let mut config: Config = toml::from_str(&source.text).map_err(|e| source.parse_error(e))?;
    let flags = apply(&mut config, overrides);
    if config.policy.rules.is_empty() {
        config.policy.rules = crate::policy::profile::nta7516(&config);
    } else if source.sets("forwards.refuse_to_unmanaged") {
        // It shapes the profile only; set next to rules of one's own it would do nothing.
        return Err(source.error(
            "forwards.refuse_to_unmanaged",
            "only shapes the NTA 7516 profile, and [[policy.rules]] replace the profile: \
             write an automated_forward rule instead (see `sluis config check` without rules)"
                .into(),
            &flags,
        ));
    }
    validate(&config, &source, &flags)?;
    Ok(config)
}

/// Applies the flags; returns (key prefix, flag) pairs so that errors can name the flag.
fn apply(config: &mut Config, o: &Overrides) -> Vec<(&'static str, &'static str)> {
    let mut flags = Vec::new();
    if let Some(listen) = o.listen {
        config.server.listen = vec![listen];
        flags.push(("server.listen", "--listen"));
    }
    if let Some(upstream) = &o.upstream {
        let name = config.upstream.default_lane.clone();
        config
            .upstream
            .lanes
            .entry(name)
            .or_default()
            .address
            .clone_from(upstream);
        flags.push(("upstream.lanes", "--upstream"));
    }
    if !o.allow_net.is_empty() {
        config.server.allow_networks.clone_from(&o.allow_net);
        flags.push(("server.allow_networks", "--allow-net"));
    }
    if let Some(spool) = &o.spool {
        config.server.spool_dir.clone_from(spool);
        flags.push(("server.spool_dir", "--spool"));
    }
    if let Some(admin) = o.admin {
        config.server.admin_listen = Some(admin);
        flags.push(("server.admin_listen", "--admin"));
    }
    flags
}

fn validate(c: &Config, src: &Source, flags: &[(&str, &str)]) -> Result<(), ConfigError> {
    let err = |key: &str, msg: String| Err(src.error(key, msg, flags));

    if c.server.hostname.is_empty()
        || !c
            .server
            .hostname
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
    {
        return err(
            "server.hostname",
            format!("{:?} is not a host name", c.server.hostname),
        );
    }
    if c.server.listen.is_empty() {
        return err("server.listen", "at least one address is needed".into());
    }
    if c.server.allow_networks.is_empty() && !c.auth.enabled {
        return err(
            "server.allow_networks",
            "empty and auth is off: no client could send mail".into(),
        );
    }
    match (&c.tls.cert_file, &c.tls.key_file) {
        (Some(_), None) => return err("tls.cert_file", "set, but tls.key_file is not".into()),
        (None, Some(_)) => return err("tls.key_file", "set, but tls.cert_file is not".into()),
        (Some(cert), Some(key)) => {
            if let Err(e) = crate::smtp::tls::load_cert_and_key(cert, key) {
                return err("tls.cert_file", e.to_string());
            }
        }
        (None, None) => {}
    }
    if c.auth.enabled {
        match &c.auth.credentials_file {
            None => {
                return err(
                    "auth.enabled",
                    "true, but auth.credentials_file is not set".into(),
                );
            }
            Some(f) => {
                if let Err(e) = crate::smtp::auth::Credentials::load(f) {
                    return err("auth.credentials_file", e.to_string());
                }
            }
        }
    }
    let l = &c.limits;
    if l.command_line_length < 512 {
        return err(
            "limits.command_line_length",
            format!(
                "{} is below the 512 bytes RFC 5321 requires",
                l.command_line_length
            ),
        );
    }
    if l.text_line_length < 1000 {
        return err(
            "limits.text_line_length",
            format!(
                "{} is below the 1000 bytes RFC 5321 requires",
                l.text_line_length
            ),
        );
    }
    for (key, value) in [
        ("limits.message_size", l.message_size),
        ("limits.memory_buffer", l.memory_buffer),
        ("limits.recipients", l.recipients),
        ("limits.sessions", l.sessions),
        ("limits.sessions_per_client", l.sessions_per_client),
        ("limits.errors_per_session", l.errors_per_session),
    ] {
        if value == 0 {
            return err(key, "must be at least 1".into());
        }
    }
    if l.sessions_per_client > l.sessions {
        return err(
            "limits.sessions_per_client",
            format!(
                "{} exceeds limits.sessions ({})",
                l.sessions_per_client, l.sessions
            ),
        );
    }
    for (key, d) in [
        ("timeouts.command", c.timeouts.command),
        ("timeouts.data_block", c.timeouts.data_block),
    ] {
        if d.is_zero() {
            return err(key, "must be longer than zero".into());
        }
    }
    if !c.upstream.lanes.contains_key(&c.upstream.default_lane) {
        return err(
            "upstream.default_lane",
            format!(
                "no lane named {:?} (lanes: {})",
                c.upstream.default_lane,
                c.upstream
                    .lanes
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
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
        if lane.ca_file.is_some() && lane.starttls != StartTls::Required {
            return err(
                &format!("upstream.lanes.{name}.ca_file"),
                "a CA file means nothing unless starttls = \"required\"".into(),
            );
        }
    }
    for (i, id) in c.inspect.identifiers.iter().enumerate() {
        if let Err(e) = regex::bytes::Regex::new(&id.pattern) {
            return err(
                &format!("inspect.identifiers[{i}].pattern"),
                format!("identifier {:?}: {e}", id.name),
            );
        }
        if id.name.is_empty()
            || !id
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return err(
                &format!("inspect.identifiers[{i}].name"),
                format!(
                    "{:?}: use letters, digits, '-' and '_' (it becomes a metric label)",
                    id.name
                ),
            );
        }
    }
    if let Some(f) = &c.inspect.hash_key_file {
        match std::fs::read(f) {
            Ok(k) if k.len() >= 16 => {}
            Ok(_) => {
                return err(
                    "inspect.hash_key_file",
                    format!("{}: shorter than 16 bytes", f.display()),
                );
            }
            Err(e) => return err("inspect.hash_key_file", format!("{}: {e}", f.display())),
        }
    }
    if c.inspect.max_depth == 0 || c.inspect.max_parts == 0 || c.inspect.max_time.is_zero() {
        return err(
            "inspect",
            "max_depth, max_parts and max_time must be above zero".into(),
        );
    }
    for (i, d) in c.domains.iter().enumerate() {
        let valid = !d.name.is_empty()
            && d.name.split('.').count() >= 2
            && d.name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
        if !valid {
            return err(
                &format!("domains[{i}].name"),
                format!("{:?} is not a domain name", d.name),
            );
        }
        if d.token.is_none() && c.ownership.token.is_empty() {
            return err(
                &format!("domains[{i}].name"),
                format!(
                    "{}: no ownership token (set ownership.token or domains.token)",
                    d.name
                ),
            );
        }
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
        if c.domains[..i]
            .iter()
            .any(|o| o.name.eq_ignore_ascii_case(&d.name))
        {
            return err(
                &format!("domains[{i}].name"),
                format!("{} is listed twice", d.name),
            );
        }
    }
    if let Some(anchor) = &c.dns.trust_anchor_file
        && let Err(e) = hickory_resolver::proto::dnssec::TrustAnchors::from_file(anchor)
    {
        return err(
            "dns.trust_anchor_file",
            format!(
                "{}: {e} (expected DNSKEY records in zone-file syntax, e.g. \
                 \"example. 3600 IN DNSKEY 257 3 13 <key>\")",
                anchor.display()
            ),
        );
    }
    if c.ownership.check_interval.is_zero() {
        return err(
            "ownership.check_interval",
            "must be longer than zero".into(),
        );
    }
    if let Err(e) = tracing_subscriber::EnvFilter::try_new(&c.log.level) {
        return err("log.level", format!("not a log filter: {e}"));
    }
    if let Err((i, key, msg)) = crate::policy::validate(&c.policy.rules) {
        let at = if key.is_empty() {
            format!("policy.rules[{i}]")
        } else {
            format!("policy.rules[{i}].{key}")
        };
        return err(&at, msg);
    }
    for (i, r) in c.policy.rules.iter().enumerate() {
        if let Some(lane) = &r.lane
            && !c.upstream.lanes.contains_key(lane)
        {
            return err(
                &format!("policy.rules[{i}].lane"),
                format!("no lane named {lane:?} in upstream.lanes"),
            );
        }
    }
    for (i, tag) in c.policy.confidential_tags.iter().enumerate() {
        if tag.trim().is_empty() {
            return err(
                &format!("policy.confidential_tags[{i}]"),
                "an empty tag would match every subject".into(),
            );
        }
    }
    if c.quarantine.max_bytes == 0 {
        return err("quarantine.max_bytes", "must be above zero".into());
    }
    if c.audit.rotate_bytes < 4096 {
        return err("audit.rotate_bytes", "must be at least 4096".into());
    }
    if let Some(f) = &c.posture.ca_file
        && let Err(e) = crate::wire::tls::load_roots(f)
    {
        return err("posture.ca_file", e.to_string());
    }
    if let Some(f) = &c.review.token_file {
        match std::fs::read_to_string(f) {
            Ok(t) if t.trim().len() >= 16 => {}
            Ok(_) => {
                return err(
                    "review.token_file",
                    format!("{}: the token must be at least 16 characters", f.display()),
                );
            }
            Err(e) => return err("review.token_file", format!("{}: {e}", f.display())),
        }
    }
    Ok(())
}

impl Config {
    /// Where quarantined mail is kept.
    pub fn quarantine_dir(&self) -> PathBuf {
        self.quarantine
            .dir
            .clone()
            .unwrap_or_else(|| self.server.spool_dir.join("quarantine"))
    }

    /// The current audit log file.
    pub fn audit_file(&self) -> PathBuf {
        self.audit
            .file
            .clone()
            .unwrap_or_else(|| self.server.spool_dir.join("audit/audit.jsonl"))
    }
}

/// The effective configuration as TOML, as `sluis config check` prints it.
pub fn render(config: &Config) -> String {
    toml::to_string_pretty(config).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn load_text(text: &str) -> Result<Config, ConfigError> {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        load(Some(f.path()), &Overrides::default())
    }

    #[test]
    fn embedded_default_is_valid() {
        let c = load(None, &Overrides::default()).unwrap();
        assert_eq!(c.upstream.default_lane, "default");
    }

    #[test]
    fn unknown_key_names_line_and_key() {
        let e = load_text("[server]\nhostname = \"gw.test\"\nlisten_adress = 1\n").unwrap_err();
        let s = e.to_string();
        assert!(s.contains(":3: server.listen_adress: unknown field"), "{s}");
    }

    #[test]
    fn bad_network_names_line_and_key() {
        let e = load_text("[server]\n\nallow_networks = [\"10.0.0.0/33\"]\n").unwrap_err();
        let s = e.to_string();
        assert!(s.contains(":3: server.allow_networks:"), "{s}");
    }

    #[test]
    fn semantic_error_names_line_and_key() {
        let e = load_text("[limits]\nrecipients = 5\n\nsessions = 2\nsessions_per_client = 9\n")
            .unwrap_err();
        let s = e.to_string();
        assert!(s.contains(":5: limits.sessions_per_client:"), "{s}");
        let e = load_text(
            "[[inspect.identifiers]]\nname = \"patnr\"\npattern = \"PAT\\\\d+\"\n\n\
             [[inspect.identifiers]]\nname = \"case\"\npattern = \"(unclosed\"\n",
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains(":7: inspect.identifiers[1].pattern: identifier \"case\""),
            "{e}"
        );
        let e = load_text("[upstream]\ndefault_lane = \"strict\"\n").unwrap_err();
        assert!(
            e.to_string()
                .contains(":2: upstream.default_lane: no lane named")
        );
    }

    #[test]
    fn policy_errors_name_the_rule_and_a_profile_switch_beside_rules_is_refused() {
        let e = load_text(
            "[[policy.rules]]\nname = \"x\"\naction = \"refuse\"\nrequire = \"dane\"\n\n\
             [[policy.rules]]\nname = \"rest\"\naction = \"deliver\"\n",
        )
        .unwrap_err();
        assert!(
            e.to_string().contains(":4: policy.rules[0].require:"),
            "{e}"
        );
        let rules = "[[policy.rules]]\nname = \"rest\"\naction = \"deliver\"\n";
        let e = load_text(&format!(
            "[forwards]\nrefuse_to_unmanaged = false\n\n{rules}"
        ))
        .unwrap_err();
        assert!(
            e.to_string()
                .contains(":2: forwards.refuse_to_unmanaged: only shapes the NTA 7516 profile"),
            "{e}"
        );
        // Without rules of one's own it shapes the profile: no forward rule then.
        let c = load_text("[forwards]\nrefuse_to_unmanaged = false\n").unwrap();
        assert!(!c.policy.rules.iter().any(|r| r.name == "automated-forward"));
        assert!(load_text(rules).is_ok());
    }

    #[test]
    fn flags_override_file_and_name_the_flag_on_error() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(b"[server]\nlisten = [\"127.0.0.1:25\"]\n")
            .unwrap();
        let o = Overrides {
            listen: Some("127.0.0.1:2600".parse().unwrap()),
            upstream: Some("no-port".into()),
            ..Default::default()
        };
        let e = load(Some(f.path()), &o).unwrap_err().to_string();
        assert!(e.contains("--upstream"), "{e}");
        let o = Overrides {
            listen: Some("127.0.0.1:2600".parse().unwrap()),
            ..Default::default()
        };
        let c = load(Some(f.path()), &o).unwrap();
        assert_eq!(c.server.listen, vec!["127.0.0.1:2600".parse().unwrap()]);
    }

    #[test]
    fn rendered_config_reads_back_identical() {
        let c = load(None, &Overrides::default()).unwrap();
        let back: Config = toml::from_str(&render(&c)).unwrap();
        assert_eq!(back, c);
    }
}
