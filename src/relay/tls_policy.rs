//! What the MTA behind a lane must enforce when it delivers to a domain, as a Postfix TLS policy
//! (`smtp_tls_policy_maps`, DESIGN §16): Sluis's judgement of the domain, expressed so that
//! Postfix checks at delivery exactly what Sluis judged. A lane's fixed level cannot say "the
//! MX patterns of this domain's MTA-STS policy" or "this partner's agreed key"; this can.
//!
//! Pure: the socketmap server (`socketmap`) asks the posture cache and answers with this.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::config::Config;
use crate::posture::Assessment;
use crate::terms::Level;

/// One answer to a policy lookup, in the socketmap protocol's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A policy line: `dane-only`, `secure match=...`, `may`...
    Policy(String),
    /// Not a domain Sluis judges (a `[host]:port` next hop, a parent-domain probe): the lane's
    /// own `smtp_tls_security_level` applies.
    NotFound,
    /// Deliver later: the judgement is bogus, unknown, or below the lane's level.
    Temp(String),
    /// A lookup Sluis will never answer (an unknown lane level in the map name).
    Perm(String),
}

/// What a trust-list partner's MX certificates must be, as Postfix can check it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Partner {
    /// Public-key fingerprints, Postfix's format (`AB:CD:...`, SHA-256 of the
    /// SubjectPublicKeyInfo, which Postfix matches as a public-key fingerprint).
    pub fingerprints: Vec<String>,
    /// A CA the chain must lead to (Postfix's `tafile`: then no other CA is trusted).
    pub ca_file: Option<PathBuf>,
}

/// The trust list of a configuration, by domain.
pub fn partners(config: &Config) -> HashMap<String, Partner> {
    config
        .domains
        .iter()
        .filter(|d| !d.tls_pins.is_empty() || d.tls_ca_file.is_some())
        .map(|d| {
            let fingerprints = d
                .tls_pins
                .iter()
                .filter_map(|p| crate::posture::trust::parse_pin(p))
                .map(|digest| {
                    digest
                        .iter()
                        .map(|b| format!("{b:02X}"))
                        .collect::<Vec<_>>()
                        .join(":")
                })
                .collect();
            let partner = Partner {
                fingerprints,
                ca_file: d.tls_ca_file.clone(),
            };
            (d.name.to_ascii_lowercase(), partner)
        })
        .collect()
}

/// The lane level a map name stands for: `socketmap:inet:127.0.0.1:8461:dane` asks for a
/// lane that enforces at least `dane`.
pub fn floor_of(name: &str) -> Option<Level> {
    Level::ALL
        .into_iter()
        .find(|l| l.name() == name && l.strength().is_some())
}

/// Whether `key` is a domain Sluis judges: not `[host]`, `host:port` or a `.parent` probe.
pub fn is_domain_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 253
        && !key.starts_with('.')
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// The policy for a domain judged `a`, on a lane that enforces at least `floor`.
///
/// A judgement below the floor (the posture fell since the decision) defers rather than sends
/// weaker: the lane promised its level. Bogus and unknown defer, never downgrade.
pub fn answer(floor: Level, a: &Assessment, partner: Option<&Partner>) -> Answer {
    let judged = a.posture;
    if judged.strength().is_none() || floor.strength().is_none() {
        return Answer::Temp(match judged {
            Level::Bogus => format!("{}: DNSSEC validation failed", a.domain),
            _ => format!("{}: TLS posture unknown", a.domain),
        });
    }
    if !judged.at_least(floor) {
        return Answer::Temp(format!(
            "{}: posture {judged} is below the lane's level {floor}",
            a.domain
        ));
    }
    match judged {
        Level::Dane => Answer::Policy("dane-only".into()),
        Level::MtaSts => mta_sts(a),
        Level::Trusted => match partner {
            Some(p) => trusted(&a.domain, p),
            None => Answer::Temp(format!("{}: judged trusted, but not listed", a.domain)),
        },
        Level::Verified | Level::Encrypted => Answer::Policy("encrypt".into()),
        _ => Answer::Policy("may".into()),
    }
}

/// `secure` against the policy's MX patterns (`*.example.org` is Postfix's `.example.org`), with
/// the MX name as SNI. A pattern that is not a plain host name cannot be passed on safely (the
/// policy file is the domain's text, and Postfix's attribute syntax uses `,`, `:` and spaces).
fn mta_sts(a: &Assessment) -> Answer {
    let mut patterns = Vec::new();
    for p in &a.mta_sts_mx {
        let (dot, host) = match p.strip_prefix("*.") {
            Some(rest) => (".", rest),
            None => ("", p.as_str()),
        };
        if !is_host_name(host) {
            return Answer::Temp(format!(
                "{}: the MTA-STS policy's mx pattern is not a host name",
                a.domain
            ));
        }
        patterns.push(format!("{dot}{host}"));
    }
    if patterns.is_empty() {
        return Answer::Temp(format!("{}: judged mta-sts without a policy", a.domain));
    }
    Answer::Policy(format!(
        "secure match={} servername=hostname",
        patterns.join(":")
    ))
}

fn trusted(domain: &str, p: &Partner) -> Answer {
    if !p.fingerprints.is_empty() {
        return Answer::Policy(format!("fingerprint match={}", p.fingerprints.join("|")));
    }
    match p.ca_file.as_deref().and_then(|f| f.to_str()) {
        Some(f) if !f.is_empty() && !f.contains([' ', '\t', ',', '\n', '\r', '=']) => {
            Answer::Policy(format!(
                "secure match=hostname tafile={f} servername=hostname"
            ))
        }
        _ => Answer::Temp(format!(
            "{domain}: the partner's CA file cannot be named in a Postfix policy"
        )),
    }
}

/// LDH labels of 1–63 characters, at least two of them.
fn is_host_name(name: &str) -> bool {
    let labels: Vec<&str> = name.split('.').collect();
    labels.len() >= 2
        && name.len() <= 253
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judged(posture: Level, mx: &[&str]) -> Assessment {
        Assessment {
            domain: "example.nl".into(),
            posture,
            nta7516_record: false,
            mta_sts_mx: mx.iter().map(|s| s.to_string()).collect(),
            assessed_at: String::new(),
            checks: Vec::new(),
        }
    }

    fn policy(s: &str) -> Answer {
        Answer::Policy(s.into())
    }

    #[test]
    fn each_level_becomes_what_postfix_must_check() {
        let none = Level::None;
        assert_eq!(
            answer(none, &judged(Level::Dane, &[]), None),
            policy("dane-only")
        );
        assert_eq!(
            answer(
                none,
                &judged(Level::MtaSts, &["mx1.example.nl", "*.mail.example.nl"]),
                None
            ),
            policy("secure match=mx1.example.nl:.mail.example.nl servername=hostname")
        );
        assert_eq!(
            answer(none, &judged(Level::Verified, &[]), None),
            policy("encrypt")
        );
        assert_eq!(
            answer(none, &judged(Level::Encrypted, &[]), None),
            policy("encrypt")
        );
        assert_eq!(answer(none, &judged(Level::None, &[]), None), policy("may"));
        for level in [Level::Bogus, Level::Unknown] {
            assert!(matches!(
                answer(none, &judged(level, &[]), None),
                Answer::Temp(_)
            ));
        }
    }

    #[test]
    fn partners_get_their_pins_or_their_ca() {
        let pin = format!("sha256:{}", "0a".repeat(32));
        let mut cfg = Config::default();
        cfg.domains.push(crate::config::DomainConfig {
            name: "Partner.NL".into(),
            class: crate::config::DomainClass::Partner,
            token: None,
            pinned_ns: Vec::new(),
            tls_pins: vec![pin],
            tls_ca_file: None,
        });
        let list = partners(&cfg);
        let p = &list["partner.nl"];
        let a = judged(Level::Trusted, &[]);
        let want = format!("fingerprint match={}", vec!["0A"; 32].join(":"));
        assert_eq!(answer(Level::Trusted, &a, Some(p)), policy(&want));
        let ca = Partner {
            fingerprints: Vec::new(),
            ca_file: Some("/etc/sluis/partner-ca.pem".into()),
        };
        assert_eq!(
            answer(Level::Trusted, &a, Some(&ca)),
            policy("secure match=hostname tafile=/etc/sluis/partner-ca.pem servername=hostname")
        );
        let odd = Partner {
            fingerprints: Vec::new(),
            ca_file: Some("/etc/a b,tafile=/x".into()),
        };
        assert!(matches!(
            answer(Level::Trusted, &a, Some(&odd)),
            Answer::Temp(_)
        ));
        assert!(matches!(answer(Level::Trusted, &a, None), Answer::Temp(_)));
    }

    #[test]
    fn below_the_lanes_level_defers_and_above_it_stays_strong() {
        let a = judged(Level::Verified, &[]);
        let Answer::Temp(why) = answer(Level::Dane, &a, None) else {
            panic!("a verified domain on a dane lane must defer");
        };
        assert!(why.contains("below the lane's level dane"), "{why}");
        assert!(matches!(answer(Level::Trusted, &a, None), Answer::Temp(_)));
        // A DANE domain on the default lane is still delivered with DANE enforced.
        assert_eq!(
            answer(Level::None, &judged(Level::Dane, &[]), None),
            policy("dane-only")
        );
    }

    #[test]
    fn a_policy_file_cannot_smuggle_attributes_into_the_answer() {
        for evil in [
            "mx.example.nl tafile=/etc/passwd",
            "mx.example.nl,match=nexthop",
            "mx.example.nl:evil.test",
            "*",
            "*.",
            "nodot",
        ] {
            let a = judged(Level::MtaSts, &["mx.example.nl", evil]);
            assert!(
                matches!(answer(Level::None, &a, None), Answer::Temp(_)),
                "{evil:?}"
            );
        }
        assert!(matches!(
            answer(Level::None, &judged(Level::MtaSts, &[]), None),
            Answer::Temp(_)
        ));
    }

    #[test]
    fn map_names_and_keys() {
        assert_eq!(floor_of("dane"), Some(Level::Dane));
        assert_eq!(floor_of("trusted"), Some(Level::Trusted));
        assert_eq!(floor_of("none"), Some(Level::None));
        assert_eq!(floor_of("bogus"), None);
        assert_eq!(floor_of("secure"), None);
        assert!(is_domain_key("example.nl"));
        for key in ["[mx.example.nl]", "[10.0.0.1]:25", ".example.nl", "", "a b"] {
            assert!(!is_domain_key(key), "{key:?}");
        }
    }
}
