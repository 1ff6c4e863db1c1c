//! The trust list (posture `trusted`, DESIGN §4): partner domains whose MX certificates are
//! agreed with the partner beforehand, as SPKI pins or a CA. A host whose certificate meets the
//! expectation is authenticated without DNSSEC or MTA-STS; one that does not is treated as an
//! impostor (`none`), never as merely "encrypted".

use std::collections::HashMap;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::config::Config;

/// What a listed domain's MX certificates must be.
#[derive(Debug, Clone, Default)]
pub struct Expectation {
    /// SHA-256 of a SubjectPublicKeyInfo somewhere in the chain.
    pub pins: Vec<Vec<u8>>,
    /// A CA the chain must lead to, for the MX name.
    pub ca: Option<Arc<RootCertStore>>,
}

/// "sha256:<64 hex>" → the digest.
pub fn parse_pin(pin: &str) -> Option<Vec<u8>> {
    let hex = pin.strip_prefix("sha256:")?;
    data_encoding::HEXLOWER_PERMISSIVE
        .decode(hex.as_bytes())
        .ok()
        .filter(|d| d.len() == 32)
}

/// The SHA-256 of a certificate's SubjectPublicKeyInfo: what a pin (and a TLSA "x 1 1"
/// record) names.
fn spki_sha256(cert: &CertificateDer<'_>) -> Option<Vec<u8>> {
    super::dane::associates(cert, 1, 1).ok()
}

/// The pin of a certificate, as the configuration writes it.
pub fn pin_of(cert: &CertificateDer<'_>) -> Option<String> {
    Some(format!(
        "sha256:{}",
        data_encoding::HEXLOWER.encode(&spki_sha256(cert)?)
    ))
}

/// What a reviewer wants to know of a certificate: subject, issuer, expiry, key pin.
pub fn facts_of(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let expires = u64::try_from(parsed.validity().not_after.timestamp())
        .ok()
        .map(|t| {
            humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(t),
            )
            .to_string()
        })
        .unwrap_or_else(|| "?".into());
    Some(format!(
        "certificate subject {}, issuer {}, valid until {expires}, key {}",
        parsed.subject(),
        parsed.issuer(),
        pin_of(cert)?
    ))
}

/// The trust list of a configuration: listed domains with pins or a CA.
pub fn from_config(config: &Config) -> Result<HashMap<String, Expectation>, String> {
    let mut list = HashMap::new();
    for d in &config.domains {
        if d.tls_pins.is_empty() && d.tls_ca_file.is_none() {
            continue;
        }
        let pins = d.tls_pins.iter().filter_map(|p| parse_pin(p)).collect();
        let ca = match &d.tls_ca_file {
            Some(f) => Some(Arc::new(
                crate::wire::tls::load_roots(f).map_err(|e| e.to_string())?,
            )),
            None => None,
        };
        list.insert(d.name.to_ascii_lowercase(), Expectation { pins, ca });
    }
    Ok(list)
}

impl Expectation {
    /// Whether `chain` (leaf first), presented by `host`, meets the expectation; why not.
    pub fn check(&self, chain: &[CertificateDer<'_>], host: &str) -> Result<String, String> {
        if !self.pins.is_empty() {
            for cert in chain {
                if let Some(digest) = spki_sha256(cert)
                    && self.pins.contains(&digest)
                {
                    return Ok(format!(
                        "certificate key matches the pinned sha256:{}",
                        data_encoding::HEXLOWER.encode(&digest)
                    ));
                }
            }
        }
        if let Some(roots) = &self.ca {
            let (leaf, rest) = chain.split_first().ok_or("no certificate")?;
            let verifier = WebPkiServerVerifier::builder_with_provider(
                roots.clone(),
                crate::wire::stream::crypto_provider(),
            )
            .build()
            .map_err(|e| e.to_string())?;
            let name = ServerName::try_from(host.to_string())
                .map_err(|_| format!("{host:?} is not a host name"))?;
            return verifier
                .verify_server_cert(leaf, rest, &name, &[], UnixTime::now())
                .map(|_| format!("certificate chains to the partner's agreed CA for {host}"))
                .map_err(|e| {
                    format!("certificate does not chain to the partner's agreed CA ({e})")
                });
        }
        Err("no certificate key matches the pins agreed with the partner".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_parse_and_match_the_key_anywhere_in_the_chain() {
        assert!(parse_pin("sha256:00").is_none());
        assert!(parse_pin(&format!("sha1:{}", "0".repeat(64))).is_none());
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["mx.partner.test".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let der = cert.der().clone();
        let pin = pin_of(&der).unwrap();
        let e = Expectation {
            pins: vec![parse_pin(&pin).unwrap()],
            ca: None,
        };
        assert!(
            e.check(std::slice::from_ref(&der), "mx.partner.test")
                .is_ok()
        );
        let other = rcgen::generate_simple_self_signed(vec!["mx.partner.test".into()]).unwrap();
        let why = e
            .check(&[other.cert.der().clone()], "mx.partner.test")
            .unwrap_err();
        assert!(why.contains("pins"), "{why}");
    }
}
