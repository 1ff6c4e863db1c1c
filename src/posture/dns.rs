//! DNS lookups with their DNSSEC status.
//!
//! Sluis validates in-process (hickory) against a trust anchor: the IANA root keys by default,
//! or a configured file (a test or staging zone can be its own anchor). It then does not depend
//! on a resolver's AD bit, and a resolver that does not validate cannot make forged answers look
//! secure. The resolver it asks must return DNSSEC records (any recursive resolver does).
//!
//! Every answer says whether it was secure, insecure or bogus; a lookup that fails (timeout,
//! SERVFAIL) is a failure, never "no record": callers must not mistake an attack or an outage
//! for absence.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::dnssec::{Proof, TrustAnchors};
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::{Resolver, TokioResolver};
use serde::{Deserialize, Serialize};

use crate::config::DnsConfig;

/// How far an answer can be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// Validated from the trust anchor down.
    Secure,
    /// Provably unsigned (an insecure delegation).
    Insecure,
    /// Signed, but the signatures do not validate: an attack or a broken zone.
    Bogus,
}

impl Security {
    pub fn name(self) -> &'static str {
        match self {
            Security::Secure => "secure",
            Security::Insecure => "insecure",
            Security::Bogus => "bogus",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mx {
    pub preference: u16,
    pub host: String,
}

/// A TLSA record (RFC 6698).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tlsa {
    pub usage: u8,
    pub selector: u8,
    pub matching: u8,
    /// The certificate association data.
    pub data: Vec<u8>,
}

impl Tlsa {
    /// Usable for SMTP per RFC 7672 §3.1: DANE-TA(2) or DANE-EE(3), a known selector and
    /// matching type. PKIX usages (0, 1) are not used for SMTP.
    pub fn usable_for_smtp(&self) -> bool {
        matches!(self.usage, 2 | 3) && self.selector <= 1 && self.matching <= 2
    }
}

/// A lookup's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<T> {
    Found {
        records: Vec<T>,
        security: Security,
    },
    /// The name or the type does not exist (NXDOMAIN / NODATA).
    NotFound {
        security: Security,
    },
    Bogus,
    /// Timeout, SERVFAIL, refused...: nothing can be concluded.
    Failed(String),
}

#[derive(Debug, thiserror::Error)]
pub enum DnsSetupError {
    #[error("dns.trust_anchor_file {path}: {error}")]
    Anchor { path: String, error: String },
    #[error("cannot build the resolver: {0}")]
    Build(String),
}

pub struct Dns {
    /// The validating resolver; built at once, or, with DS anchors, when first used (their
    /// keys must be fetched first).
    resolver: tokio::sync::OnceCell<TokioResolver>,
    /// What the resolver is built from, when it is built later.
    later: Option<Later>,
    /// Set when the resolver's AD bit is trusted instead of validating here.
    trust_ad: Option<AdClient>,
    /// The zone of the trust anchor: its SOA must validate when DNSSEC works end to end.
    anchor_zone: String,
}

fn least_secure(proofs: impl Iterator<Item = Proof>) -> Security {
    let mut worst = Security::Secure;
    for p in proofs {
        match p {
            Proof::Secure => {}
            Proof::Bogus => return Security::Bogus,
            _ => worst = Security::Insecure,
        }
    }
    worst
}

/// A resolver built when first used: the configuration, and the anchors whose DS records
/// name keys still to be fetched.
struct Later {
    cfg: DnsConfig,
    anchors: super::anchors::Anchors,
}

/// A resolver for `cfg`'s server; validating against `anchors` (the IANA root keys without).
fn build(
    cfg: &DnsConfig,
    validate: bool,
    anchors: Option<TrustAnchors>,
) -> Result<TokioResolver, DnsSetupError> {
    let addr: SocketAddr = cfg.resolver;
    let mut udp = ConnectionConfig::udp();
    udp.port = addr.port();
    let mut tcp = ConnectionConfig::tcp();
    tcp.port = addr.port();
    let ns = NameServerConfig::new(addr.ip(), true, vec![udp, tcp]);
    let mut builder = Resolver::builder_with_config(
        ResolverConfig::from_name_servers(vec![ns]),
        TokioRuntimeProvider::default(),
    );
    let opts = builder.options_mut();
    opts.validate = validate;
    opts.timeout = cfg.timeout;
    opts.attempts = 2;
    // Ownership and posture must see changes soon: never cache longer than this.
    opts.positive_max_ttl = Some(cfg.max_cache_ttl);
    opts.negative_max_ttl = Some(cfg.max_cache_ttl);
    if let Some(anchors) = anchors {
        builder = builder.with_trust_anchor(Arc::new(anchors));
    }
    builder
        .build()
        .map_err(|e| DnsSetupError::Build(e.to_string()))
}

impl Dns {
    pub fn new(cfg: &DnsConfig) -> Result<Dns, DnsSetupError> {
        let anchors = match &cfg.trust_anchor_file {
            Some(path) => Some(
                super::anchors::read(path).map_err(|e| DnsSetupError::Anchor {
                    path: path.display().to_string(),
                    error: format!("line {}: {}", e.line, e.what),
                })?,
            ),
            None => None,
        };
        let anchor_zone = anchors
            .as_ref()
            .map_or_else(|| ".".to_string(), |a| a.zone.clone());
        let trust_ad =
            (cfg.validation == crate::config::Validation::Resolver).then_some(AdClient {
                resolver: cfg.resolver,
                timeout: cfg.timeout,
            });
        // The resolver validates; the in-process resolver then only serves lookup_ip for
        // callers that need no security status.
        let validate = trust_ad.is_none();
        let resolver = tokio::sync::OnceCell::new();
        let mut later = None;
        match anchors {
            Some(a) if validate && !a.ds.is_empty() => {
                later = Some(Later {
                    cfg: cfg.clone(),
                    anchors: a,
                })
            }
            anchors => {
                let built = build(cfg, validate, anchors.map(|a| a.keys))?;
                let _ = resolver.set(built);
            }
        }
        Ok(Dns {
            resolver,
            later,
            trust_ad,
            anchor_zone,
        })
    }

    /// The validating resolver; with DS anchors, built on first use once their keys are
    /// fetched (retried at the next use when that fails).
    async fn resolver(&self) -> Result<&TokioResolver, String> {
        self.resolver
            .get_or_try_init(|| async {
                let Some(later) = &self.later else {
                    return Err("no resolver".to_string());
                };
                let keys = ds_keys(&later.cfg, &later.anchors).await?;
                build(&later.cfg, true, Some(keys)).map_err(|e| e.to_string())
            })
            .await
    }

    /// Whether the resolver answers and its answers validate: the anchor's own zone must come
    /// back DNSSEC-secure. A resolver that strips signatures, or none at all, fails here rather
    /// than by quietly making every managed domain lapse.
    pub async fn self_test(&self) -> Result<(), String> {
        let outcome = self
            .query(&self.anchor_zone, RecordType::SOA, |d| {
                matches!(d, RData::SOA(_)).then_some(())
            })
            .await;
        if self.trust_ad.is_some()
            && let Outcome::Found {
                security: Security::Insecure,
                ..
            } = outcome
        {
            return Err(format!(
                "SOA of {} came back without the AD bit: the resolver does not validate DNSSEC, \
                 and dns.validation = \"resolver\" trusts it to",
                self.anchor_zone
            ));
        }
        match outcome {
            Outcome::Found {
                security: Security::Secure,
                ..
            } => Ok(()),
            Outcome::Found { security, .. } | Outcome::NotFound { security } => Err(format!(
                "SOA of {} is {} where it must be secure: the resolver does not return \
                 DNSSEC signatures, or the trust anchor does not match",
                self.anchor_zone,
                security.name()
            )),
            Outcome::Bogus => Err(format!(
                "SOA of {} does not validate (bogus): wrong trust anchor or tampered answers",
                self.anchor_zone
            )),
            Outcome::Failed(e) => Err(format!("resolver does not answer: {e}")),
        }
    }

    pub fn anchor_zone(&self) -> &str {
        &self.anchor_zone
    }

    fn outcome<T>(
        result: Result<hickory_resolver::lookup::Lookup, NetError>,
        pick: impl Fn(&RData) -> Option<T>,
    ) -> Outcome<T> {
        match result {
            Ok(lookup) => {
                let answers = lookup.answers();
                let records: Vec<T> = answers.iter().filter_map(|r| pick(&r.data)).collect();
                let security = least_secure(answers.iter().map(|r| r.proof));
                if security == Security::Bogus {
                    Outcome::Bogus
                } else if records.is_empty() {
                    Outcome::NotFound { security }
                } else {
                    Outcome::Found { records, security }
                }
            }
            Err(NetError::Dns(DnsError::DnssecBogus)) => Outcome::Bogus,
            Err(NetError::Dns(DnsError::NoRecordsFound(nr))) => {
                let security = match &nr.authorities {
                    Some(auth) if !auth.is_empty() => least_secure(auth.iter().map(|r| r.proof)),
                    _ => Security::Insecure,
                };
                if security == Security::Bogus {
                    Outcome::Bogus
                } else {
                    Outcome::NotFound { security }
                }
            }
            Err(NetError::Dns(DnsError::Nsec { .. })) => Outcome::NotFound {
                security: Security::Secure,
            },
            Err(e) => Outcome::Failed(e.to_string()),
        }
    }

    /// One lookup with its security status: validated here, or the resolver's AD bit.
    async fn query<T>(
        &self,
        name: &str,
        rtype: RecordType,
        pick: impl Fn(&RData) -> Option<T>,
    ) -> Outcome<T> {
        match &self.trust_ad {
            Some(ad) => ad.query(name, rtype, pick).await,
            None => match self.resolver().await {
                Ok(r) => Dns::outcome(r.lookup(name, rtype).await, pick),
                Err(e) => Outcome::Failed(e),
            },
        }
    }

    /// TXT records at `name`, each record's strings joined.
    pub async fn txt(&self, name: &str) -> Outcome<String> {
        self.query(name, RecordType::TXT, |d| match d {
            RData::TXT(t) => Some(
                t.txt_data
                    .iter()
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect::<String>(),
            ),
            _ => None,
        })
        .await
    }

    /// MX records of `domain`, by preference; the null MX ("0 .") comes back as host "".
    pub async fn mx(&self, domain: &str) -> Outcome<Mx> {
        let mut outcome = self
            .query(domain, RecordType::MX, |d| match d {
                RData::MX(m) => Some(Mx {
                    preference: m.preference,
                    host: m
                        .exchange
                        .to_ascii()
                        .trim_end_matches('.')
                        .to_ascii_lowercase(),
                }),
                _ => None,
            })
            .await;
        if let Outcome::Found { records, .. } = &mut outcome {
            records.sort_by(|a, b| a.preference.cmp(&b.preference).then(a.host.cmp(&b.host)));
        }
        outcome
    }

    /// TLSA records at `name` (e.g. `_25._tcp.mx.example.`).
    pub async fn tlsa(&self, name: &str) -> Outcome<Tlsa> {
        self.query(name, RecordType::TLSA, |d| match d {
            RData::TLSA(t) => Some(Tlsa {
                usage: u8::from(t.cert_usage),
                selector: u8::from(t.selector),
                matching: u8::from(t.matching),
                data: t.cert_data.to_vec(),
            }),
            _ => None,
        })
        .await
    }

    /// The addresses of a host (A and AAAA).
    pub async fn ips(&self, host: &str) -> Outcome<std::net::IpAddr> {
        if let Some(ad) = &self.trust_ad {
            let pick = |d: &RData| match d {
                RData::A(a) => Some(std::net::IpAddr::V4(a.0)),
                RData::AAAA(a) => Some(std::net::IpAddr::V6(a.0)),
                _ => None,
            };
            let v4 = ad.query(host, RecordType::A, pick).await;
            return match v4 {
                Outcome::Found { .. } | Outcome::Bogus | Outcome::Failed(_) => v4,
                Outcome::NotFound { .. } => ad.query(host, RecordType::AAAA, pick).await,
            };
        }
        let resolver = match self.resolver().await {
            Ok(r) => r,
            Err(e) => return Outcome::Failed(e),
        };
        match resolver.lookup_ip(host).await {
            Ok(l) => {
                let ips: Vec<std::net::IpAddr> = l.iter().collect();
                if ips.is_empty() {
                    Outcome::NotFound {
                        security: Security::Insecure,
                    }
                } else {
                    Outcome::Found {
                        records: ips,
                        security: Security::Insecure,
                    }
                }
            }
            Err(NetError::Dns(DnsError::DnssecBogus)) => Outcome::Bogus,
            Err(NetError::Dns(DnsError::NoRecordsFound(_))) => Outcome::NotFound {
                security: Security::Insecure,
            },
            Err(e) => Outcome::Failed(e.to_string()),
        }
    }

    /// NS host names of `domain`, lowercase and without the trailing dot, sorted.
    pub async fn ns(&self, domain: &str) -> Outcome<String> {
        let mut outcome = self
            .query(domain, RecordType::NS, |d| match d {
                RData::NS(n) => Some(n.0.to_ascii().trim_end_matches('.').to_ascii_lowercase()),
                _ => None,
            })
            .await;
        if let Outcome::Found { records, .. } = &mut outcome {
            records.sort();
            records.dedup();
        }
        outcome
    }
}

/// The lookups a posture assessment makes, behind a trait so that unit tests can answer them
/// (`Dns` is the real one; tests of the whole path use real servers).
pub trait Resolve: Sync {
    fn mx(&self, domain: &str) -> impl std::future::Future<Output = Outcome<Mx>> + Send;
    fn txt(&self, name: &str) -> impl std::future::Future<Output = Outcome<String>> + Send;
    fn tlsa(&self, name: &str) -> impl std::future::Future<Output = Outcome<Tlsa>> + Send;
    fn ips(
        &self,
        host: &str,
    ) -> impl std::future::Future<Output = Outcome<std::net::IpAddr>> + Send;
}

impl Resolve for Dns {
    async fn mx(&self, domain: &str) -> Outcome<Mx> {
        Dns::mx(self, domain).await
    }
    async fn txt(&self, name: &str) -> Outcome<String> {
        Dns::txt(self, name).await
    }
    async fn tlsa(&self, name: &str) -> Outcome<Tlsa> {
        Dns::tlsa(self, name).await
    }
    async fn ips(&self, host: &str) -> Outcome<std::net::IpAddr> {
        Dns::ips(self, host).await
    }
}

/// The keys the DS anchors name: each anchor zone's DNSKEY RRset, fetched without validation
/// (there is nothing to validate it with yet), and of it the keys whose digest a DS matches.
/// The validating resolver then checks the RRset's signatures with those keys as usual.
async fn ds_keys(
    cfg: &DnsConfig,
    anchors: &super::anchors::Anchors,
) -> Result<TrustAnchors, String> {
    use hickory_resolver::proto::dnssec::rdata::DNSSECRData;
    use hickory_resolver::proto::rr::LowerName;
    let plain = build(cfg, false, None).map_err(|e| e.to_string())?;
    let mut keys = anchors.keys.clone();
    for (zone, ds) in &anchors.ds {
        let lookup = plain
            .lookup(zone.clone(), RecordType::DNSKEY)
            .await
            .map_err(|e| format!("the DNSKEY records of trust anchor {zone}: {e}"))?;
        let mut matched = false;
        for r in lookup.answers() {
            if let RData::DNSSEC(DNSSECRData::DNSKEY(key)) = &r.data
                && ds.covers(zone, key).unwrap_or(false)
            {
                keys.insert_with_name(key.public_key(), LowerName::from(zone));
                matched = true;
            }
        }
        if !matched {
            return Err(format!(
                "no DNSKEY of {zone} matches the trust anchor's DS (key tag {})",
                ds.key_tag()
            ));
        }
    }
    Ok(keys)
}

/// Queries the resolver directly with the DO bit set and reads its AD bit: the resolver
/// validates, Sluis trusts its word (RFC 6840 5.7: only for a resolver on a trusted path).
struct AdClient {
    resolver: SocketAddr,
    timeout: Duration,
}

impl AdClient {
    async fn query<T>(
        &self,
        name: &str,
        rtype: RecordType,
        pick: impl Fn(&RData) -> Option<T>,
    ) -> Outcome<T> {
        use futures_util::StreamExt;
        use hickory_resolver::net::DnsHandle;
        use hickory_resolver::net::client::Client;
        use hickory_resolver::net::udp::UdpClientStream;
        use hickory_resolver::proto::op::{DnsRequestOptions, Query, ResponseCode};
        use hickory_resolver::proto::rr::Name;
        let Ok(name) = Name::from_str_relaxed(name) else {
            return Outcome::Failed(format!("{name:?} is not a domain name"));
        };
        let stream = UdpClientStream::builder(self.resolver, TokioRuntimeProvider::default())
            .with_timeout(Some(self.timeout))
            .build();
        let (client, background) = Client::<TokioRuntimeProvider>::from_sender(stream);
        let background = tokio::spawn(background);
        let mut options = DnsRequestOptions::default();
        options.use_edns = true;
        options.edns_set_dnssec_ok = true;
        options.recursion_desired = true;
        let mut responses = client.lookup(Query::query(name, rtype), options);
        let response = tokio::time::timeout(self.timeout * 2, responses.next()).await;
        background.abort();
        let message = match response {
            Ok(Some(Ok(r))) => r,
            Ok(Some(Err(e))) => return Outcome::Failed(e.to_string()),
            Ok(None) => return Outcome::Failed("no response".into()),
            Err(_) => return Outcome::Failed(format!("no answer within {:?}", self.timeout * 2)),
        };
        let security = if message.metadata.authentic_data {
            Security::Secure
        } else {
            Security::Insecure
        };
        match message.metadata.response_code {
            ResponseCode::NoError => {
                let records: Vec<T> = message
                    .answers
                    .iter()
                    .filter_map(|r| pick(&r.data))
                    .collect();
                if records.is_empty() {
                    Outcome::NotFound { security }
                } else {
                    Outcome::Found { records, security }
                }
            }
            ResponseCode::NXDomain => Outcome::NotFound { security },
            // A validating resolver answers SERVFAIL for bogus data, too.
            code => Outcome::Failed(format!("{code} from the resolver")),
        }
    }
}

/// Waits at most this long for the first ownership checks at start.
pub const STARTUP_CHECK_LIMIT: Duration = Duration::from_secs(30);
