//! Ownership proof for managed and partner domains (DESIGN §5).
//!
//! A listed domain counts as ours only while `<txt_label>.<domain>` holds the token (and, when
//! pinned, its NS set is unchanged). Otherwise it is *lapsed* and treated as unmanaged until
//! the proof returns: the Jeugdzorg leak happened because an organisation's old domain had
//! been registered by someone else, and mail kept flowing to it. A lookup that fails counts as
//! lapsed too: an outage must not make a domain look like ours.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::config::{Config, DomainConfig};

use super::dns::{Dns, Outcome, Security};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OwnershipStatus {
    Proven,
    Lapsed,
    /// Personal and unmanaged domains need no proof.
    NotRequired,
}

impl OwnershipStatus {
    pub fn name(self) -> &'static str {
        match self {
            OwnershipStatus::Proven => "proven",
            OwnershipStatus::Lapsed => "lapsed",
            OwnershipStatus::NotRequired => "not-required",
        }
    }
}

/// One check of one domain, with its evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ownership {
    pub status: OwnershipStatus,
    /// What was found, in words a reviewer can check with `dig`.
    pub evidence: String,
    /// The DNSSEC status of the TXT answer, when there was one.
    pub dnssec: Option<Security>,
    /// Unix time of the check.
    pub checked_at: u64,
    /// The TXT lookup was bogus or failed outright (SERVFAIL, timeout): behind a validating
    /// resolver that is how broken DNSSEC shows.
    #[serde(skip)]
    pub lookup_failed: bool,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn lapsed(evidence: String, dnssec: Option<Security>) -> Ownership {
    Ownership {
        status: OwnershipStatus::Lapsed,
        evidence,
        dnssec,
        checked_at: now(),
        lookup_failed: false,
    }
}

fn lookup_failed(evidence: String, dnssec: Option<Security>) -> Ownership {
    Ownership {
        lookup_failed: true,
        ..lapsed(evidence, dnssec)
    }
}

/// Checks one listed domain.
pub async fn check(dns: &Dns, config: &Config, domain: &DomainConfig) -> Ownership {
    let name = format!("{}.{}", config.ownership.txt_label, domain.name);
    let token = domain.token.as_deref().unwrap_or(&config.ownership.token);
    let (dnssec, txt_evidence) = match dns.txt(&name).await {
        Outcome::Found { records, security } => {
            if records.iter().any(|r| r.trim() == token) {
                (
                    security,
                    format!("TXT {name} holds the token (dnssec {})", security.name()),
                )
            } else {
                return lapsed(
                    format!(
                        "TXT {name} does not hold the token ({} other record(s))",
                        records.len()
                    ),
                    Some(security),
                );
            }
        }
        Outcome::NotFound { security } => {
            return lapsed(format!("no TXT record at {name}"), Some(security));
        }
        Outcome::Bogus => {
            return lookup_failed(
                format!("DNSSEC validation of {name} failed (bogus)"),
                Some(Security::Bogus),
            );
        }
        Outcome::Failed(e) => {
            return lookup_failed(format!("TXT lookup of {name} failed: {e}"), None);
        }
    };
    let mut evidence = txt_evidence;
    if !domain.pinned_ns.is_empty() {
        let mut pinned: Vec<String> = domain
            .pinned_ns
            .iter()
            .map(|n| n.trim_end_matches('.').to_ascii_lowercase())
            .collect();
        pinned.sort();
        pinned.dedup();
        match dns.ns(&domain.name).await {
            Outcome::Found { records, .. } if records == pinned => {
                evidence.push_str(&format!("; NS {} as pinned", records.join(" ")));
            }
            Outcome::Found { records, .. } => {
                return lapsed(
                    format!(
                        "NS of {} is {}, pinned {}",
                        domain.name,
                        records.join(" "),
                        pinned.join(" ")
                    ),
                    Some(dnssec),
                );
            }
            other => {
                return lapsed(
                    format!(
                        "NS lookup of {} gave no answer to compare: {other:?}",
                        domain.name
                    ),
                    Some(dnssec),
                );
            }
        }
    }
    Ownership {
        status: OwnershipStatus::Proven,
        evidence,
        dnssec: Some(dnssec),
        checked_at: now(),
        lookup_failed: false,
    }
}

/// The latest proof of every listed domain, shared by sessions, the scheduler and metrics.
#[derive(Default)]
pub struct Registry {
    state: RwLock<HashMap<String, Ownership>>,
}

impl Registry {
    pub fn get(&self, domain: &str) -> Option<Ownership> {
        self.state
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&domain.to_ascii_lowercase())
            .cloned()
    }

    pub fn is_proven(&self, domain: &str) -> bool {
        self.get(domain)
            .is_some_and(|o| o.status == OwnershipStatus::Proven)
    }

    /// Checks every listed domain now, all at once (a dead resolver costs one timeout, not
    /// one per domain); logs changes; drops domains no longer listed.
    pub async fn check_all(&self, dns: &Dns, config: &Config) {
        let results =
            futures_util::future::join_all(config.domains.iter().map(|d| check(dns, config, d)))
                .await;
        let mut fresh = HashMap::new();
        for (d, result) in config.domains.iter().zip(results) {
            let name = d.name.to_ascii_lowercase();
            let before = self.get(&name).map(|o| o.status);
            match (before, result.status) {
                (Some(OwnershipStatus::Proven), OwnershipStatus::Lapsed)
                | (None, OwnershipStatus::Lapsed) => {
                    tracing::warn!(domain = %name, evidence = %result.evidence, "domain ownership lapsed: treated as unmanaged");
                }
                (b, OwnershipStatus::Proven) if b != Some(OwnershipStatus::Proven) => {
                    tracing::info!(domain = %name, evidence = %result.evidence, "domain ownership proven");
                }
                _ => {}
            }
            crate::metrics::domain_ownership(&name, result.status == OwnershipStatus::Proven);
            let class = match d.class {
                crate::config::DomainClass::Managed => "managed",
                crate::config::DomainClass::Partner => "partner",
            };
            crate::metrics::domain_dns_failing(&name, class, result.lookup_failed);
            fresh.insert(name, result);
        }
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        for gone in state.keys().filter(|k| !fresh.contains_key(*k)) {
            crate::metrics::forget_domain(gone);
        }
        *state = fresh;
    }
}
