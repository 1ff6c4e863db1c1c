//! The TLS posture ladder of DESIGN §4: how strongly a recipient domain can be reached, with
//! the evidence, computed from DNS facts and a STARTTLS probe of every MX host, and cached.
//!
//! A domain is as strong as its weakest MX host, because the upstream MTA may deliver to any of
//! them. Unreachable hosts do not count (mail will not go there either) unless none is
//! reachable. Bogus DNS anywhere that matters makes the domain `bogus`; a failed lookup makes
//! it `unknown`: neither ever reads as "no TLS", so policy defers rather than downgrades.
//!
//! `trusted` comes from the trust list (`trust`): partners whose MX certificates were agreed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rustls::RootCertStore;
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

use super::checks::{Check, CheckResult, DnsFacts, MxFacts, dns_checks, probe_host};
use super::dns::Resolve;
use super::probe::Prober;
pub use crate::terms::Level;

/// A domain's place on the ladder, with everything that put it there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assessment {
    pub domain: String,
    pub posture: Level,
    /// Whether the domain publishes an NTA 7516 record (a hint, not proof).
    pub nta7516_record: bool,
    /// The MX patterns of the MTA-STS policy in force (mode enforce): what the MTA must match
    /// certificates against at delivery (`relay::tls_policy`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mta_sts_mx: Vec<String>,
    /// RFC 3339, when the evidence was gathered.
    pub assessed_at: String,
    pub checks: Vec<Check>,
}

/// How to probe.
#[derive(Clone)]
pub struct ProbeOptions {
    /// MTA-STS policies, cached on disk.
    pub sts_cache: Arc<super::mta_sts::Cache>,
    /// The HTTPS port of `mta-sts.<domain>` (443).
    pub sts_port: u16,
    /// The trust list: listed domains whose MX certificates were agreed beforehand.
    pub trust: Arc<HashMap<String, super::trust::Expectation>>,
    pub roots: Arc<RootCertStore>,
    pub helo: String,
    /// The SMTP port of MX hosts: 25 everywhere but in test setups.
    pub port: u16,
    /// Without a probe the level cannot be known (`unknown`); `sluis check-domain --no-probe`.
    pub enabled: bool,
}

impl ProbeOptions {
    /// The options of a configuration: Mozilla's roots plus `posture.ca_file` (or `ca_file`
    /// instead, for `sluis check-domain --ca-file`), the trust list, and MTA-STS policies
    /// cached in `<spool>/mta-sts` when the spool exists (so that `check-domain` sees what the
    /// gateway sees; without it policies are fetched fresh).
    pub fn from_config(
        config: &crate::config::Config,
        ca_file: Option<&std::path::Path>,
    ) -> Result<ProbeOptions, String> {
        let extra = match ca_file.or(config.posture.ca_file.as_deref()) {
            Some(f) => Some(crate::wire::tls::load_roots(f).map_err(|e| e.to_string())?),
            None => None,
        };
        let spool = &config.server.spool_dir;
        let sts_dir = spool.join("mta-sts");
        Ok(ProbeOptions {
            sts_cache: Arc::new(super::mta_sts::Cache::new(
                spool.is_dir().then_some(sts_dir.as_path()),
            )),
            sts_port: 443,
            trust: Arc::new(super::trust::from_config(config)?),
            roots: Arc::new(super::probe::roots(extra)),
            helo: config.server.hostname.clone(),
            port: config.posture.probe_port,
            enabled: true,
        })
    }
}

/// Gathers the evidence and places `domain` on the ladder.
pub async fn assess(
    dns: &impl Resolve,
    prober: &impl Prober,
    domain: &str,
    opts: &ProbeOptions,
) -> Assessment {
    let (mut checks, facts) = dns_checks(dns, domain).await;
    let (sts_check, enforce) = mta_sts_check(dns, domain, &facts, opts).await;
    checks.extend(sts_check);
    let mut host_levels = Vec::new();
    if opts.enabled {
        // All MX hosts at once: a dead host costs one timeout, not one per host.
        let probes = facts.hosts.iter().map(|host| {
            probe_host(
                dns,
                prober,
                host,
                opts.roots.clone(),
                &opts.helo,
                opts.port,
                enforce.as_ref(),
                opts.trust.get(domain),
            )
        });
        for (check, level) in futures_util::future::join_all(probes).await {
            checks.push(check);
            host_levels.push(level);
        }
    }
    let posture = level_of(&facts, &host_levels, opts.enabled);
    checks.push(Check {
        check: "posture".into(),
        result: if posture.authenticated() {
            CheckResult::Pass
        } else if posture.strength().is_some() {
            CheckResult::Warn
        } else {
            CheckResult::Fail
        },
        evidence: explain(posture, &facts, opts.enabled),
        dnssec: None,
    });
    Assessment {
        domain: domain.to_string(),
        posture,
        nta7516_record: facts.nta7516,
        mta_sts_mx: enforce.map(|p| p.mx).unwrap_or_default(),
        assessed_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        checks,
    }
}

/// The MTA-STS policy in force (fetched, or cached), as a check; the policy when it enforces.
async fn mta_sts_check(
    dns: &impl Resolve,
    domain: &str,
    facts: &DnsFacts,
    opts: &ProbeOptions,
) -> (Option<Check>, Option<super::mta_sts::Policy>) {
    use super::mta_sts::{Mode, Source, policy_for};
    if matches!(facts.mx, MxFacts::Null | MxFacts::Bogus | MxFacts::Failed) {
        return (None, None);
    }
    let result = policy_for(
        dns,
        domain,
        facts.sts_id.as_deref(),
        &opts.sts_cache,
        opts.roots.clone(),
        opts.sts_port,
    )
    .await;
    let (policy, source) = match result {
        Ok(p) => p,
        Err(e) if facts.sts_id.is_none() => {
            let _ = e;
            return (None, None);
        }
        Err(e) => {
            return (
                Some(Check {
                    check: "mta-sts-policy".into(),
                    result: CheckResult::Fail,
                    evidence: format!(
                        "announced, but no policy could be fetched ({e}): MTA-STS does not apply"
                    ),
                    dnssec: None,
                }),
                None,
            );
        }
    };
    let from = match &source {
        Source::Fetched => format!("fetched from https://mta-sts.{domain}/.well-known/mta-sts.txt"),
        Source::Cached(None) => "cached (same id)".to_string(),
        Source::Cached(Some(why)) => format!("cached, kept because {why}"),
    };
    let mode = match policy.mode {
        Mode::Enforce => "enforce",
        Mode::Testing => "testing",
        Mode::None => "none",
    };
    let check = Check {
        check: "mta-sts-policy".into(),
        result: if policy.mode == Mode::Enforce {
            CheckResult::Pass
        } else {
            CheckResult::Info
        },
        evidence: format!(
            "mode {mode}, mx {}, max_age {} ({from})",
            policy.mx.join(" "),
            policy.max_age
        ),
        dnssec: None,
    };
    let enforce = (policy.mode == Mode::Enforce).then_some(policy);
    (Some(check), enforce)
}

/// The domain's level from the DNS facts and each probed host's level. Pure.
pub fn level_of(facts: &DnsFacts, hosts: &[Level], probed: bool) -> Level {
    match facts.mx {
        MxFacts::Bogus => return Level::Bogus,
        MxFacts::Failed => return Level::Unknown,
        MxFacts::Null => return Level::None,
        MxFacts::Hosts { .. } => {}
    }
    if !probed || hosts.is_empty() {
        return Level::Unknown;
    }
    if hosts.contains(&Level::Bogus) {
        return Level::Bogus;
    }
    // Unreachable hosts do not take mail; TLSA lookups that failed do make it unknown, but
    // they come back as `Unknown` too: tell them apart by the facts.
    let tlsa_failed = facts
        .hosts
        .iter()
        .any(|h| h.tlsa == super::checks::TlsaFacts::Failed);
    if tlsa_failed {
        return Level::Unknown;
    }
    hosts
        .iter()
        .filter(|l| l.strength().is_some())
        .min_by_key(|l| l.strength())
        .copied()
        .unwrap_or(Level::Unknown)
}

fn explain(level: Level, facts: &DnsFacts, probed: bool) -> String {
    match level {
        Level::Dane => "dane: every reachable MX host is authenticated by DNSSEC-secure TLSA records".into(),
        Level::MtaSts => "mta-sts: MTA-STS enforce policy, WebPKI-valid MX certificates".into(),
        Level::Trusted => "trusted: a partner with its pinned expectation met".into(),
        Level::Verified => "verified: STARTTLS with WebPKI-valid certificates, but the MX itself is not authenticated (no DANE, no MTA-STS)".into(),
        Level::Encrypted => "encrypted: STARTTLS, but at least one MX host's certificate cannot be verified".into(),
        Level::None if facts.mx == MxFacts::Null => "none: null MX, the domain accepts no mail".into(),
        Level::None => "none: at least one MX host offers no usable TLS, or fails its TLSA records".into(),
        Level::Bogus => "bogus: DNSSEC validation failed; mail is deferred, never downgraded".into(),
        Level::Unknown if !probed => "unknown: not probed".into(),
        Level::Unknown => "unknown: lookups failed or no MX host could be reached; mail is deferred, never downgraded".into(),
    }
}

/// Assessments by domain: kept for a lifetime (shorter for bogus and unknown, so a repaired
/// domain is seen soon), bounded in number, and with concurrent lookups of one domain sharing
/// one assessment.
pub struct PostureCache {
    entries: Mutex<HashMap<String, Entry>>,
    lifetime: Duration,
    failure_lifetime: Duration,
    max_entries: usize,
}

struct Entry {
    created: Instant,
    cell: Arc<OnceCell<Arc<Assessment>>>,
}

impl PostureCache {
    pub fn new(lifetime: Duration, failure_lifetime: Duration, max_entries: usize) -> Self {
        PostureCache {
            entries: Mutex::new(HashMap::new()),
            lifetime,
            failure_lifetime,
            max_entries: max_entries.max(1),
        }
    }

    fn fresh(&self, e: &Entry, now: Instant) -> bool {
        match e.cell.get() {
            // In flight: join it.
            None => true,
            Some(a) => {
                let life = if a.posture.strength().is_some() {
                    self.lifetime
                } else {
                    self.failure_lifetime
                };
                now.duration_since(e.created) < life
            }
        }
    }

    /// The assessment of `domain`, from the cache or by running `assess` (once, whoever asks
    /// meanwhile).
    pub async fn get<F, Fut>(&self, domain: &str, assess: F) -> Arc<Assessment>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Assessment>,
    {
        let cell = {
            let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            match entries.get(domain) {
                Some(e) if self.fresh(e, now) => e.cell.clone(),
                _ => {
                    if entries.len() >= self.max_entries {
                        entries.retain(|_, e| self.fresh(e, now));
                    }
                    if entries.len() >= self.max_entries
                        && let Some(oldest) = entries
                            .iter()
                            .min_by_key(|(_, e)| e.created)
                            .map(|(k, _)| k.clone())
                    {
                        entries.remove(&oldest);
                    }
                    let cell = Arc::new(OnceCell::new());
                    entries.insert(
                        domain.to_string(),
                        Entry {
                            created: now,
                            cell: cell.clone(),
                        },
                    );
                    cell
                }
            }
        };
        cell.get_or_init(|| async { Arc::new(assess().await) })
            .await
            .clone()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::posture::checks::{HostFacts, TlsaFacts};
    use crate::posture::dns::{Mx, Outcome, Security, Tlsa};
    use crate::posture::probe::Probe;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn facts(mx: MxFacts, tlsa: &[TlsaFacts]) -> DnsFacts {
        DnsFacts {
            mx,
            hosts: tlsa
                .iter()
                .enumerate()
                .map(|(i, t)| HostFacts {
                    host: format!("mx{i}.test"),
                    tlsa: t.clone(),
                })
                .collect(),
            nta7516: false,
            sts_id: None,
        }
    }

    #[test]
    fn weakest_reachable_host_sets_the_level() {
        let f = facts(
            MxFacts::Hosts { secure: true },
            &[TlsaFacts::None, TlsaFacts::None, TlsaFacts::None],
        );
        assert_eq!(
            level_of(&f, &[Level::Dane, Level::Unknown, Level::Verified], true),
            Level::Verified
        );
        assert_eq!(
            level_of(&f, &[Level::Dane, Level::Unknown], true),
            Level::Dane
        );
        assert_eq!(level_of(&f, &[Level::Unknown], true), Level::Unknown);
        assert_eq!(level_of(&f, &[Level::Dane, Level::None], true), Level::None);
    }

    #[test]
    fn bogus_and_failed_lookups_are_never_weak_levels() {
        let ok = facts(MxFacts::Hosts { secure: true }, &[TlsaFacts::None]);
        assert_eq!(
            level_of(&ok, &[Level::Dane, Level::Bogus], true),
            Level::Bogus
        );
        assert_eq!(
            level_of(&facts(MxFacts::Bogus, &[]), &[], true),
            Level::Bogus
        );
        assert_eq!(
            level_of(&facts(MxFacts::Failed, &[]), &[], true),
            Level::Unknown
        );
        let tlsa_failed = facts(
            MxFacts::Hosts { secure: true },
            &[TlsaFacts::None, TlsaFacts::Failed],
        );
        assert_eq!(
            level_of(&tlsa_failed, &[Level::Verified, Level::Unknown], true),
            Level::Unknown
        );
        assert_eq!(level_of(&ok, &[Level::Dane], false), Level::Unknown);
        assert_eq!(level_of(&facts(MxFacts::Null, &[]), &[], true), Level::None);
    }

    #[test]
    fn ordering_and_names() {
        assert!(Level::Dane.at_least(Level::Trusted));
        assert!(Level::MtaSts.authenticated());
        assert!(!Level::Verified.authenticated());
        assert!(!Level::Bogus.at_least(Level::None));
        assert!(!Level::None.at_least(Level::Unknown));
        for l in Level::ALL {
            assert_eq!(l.name().parse::<Level>(), Ok(l));
            assert_eq!(serde_json::to_value(l).unwrap(), l.name());
        }
    }

    fn assessment(domain: &str, posture: Level) -> Assessment {
        Assessment {
            domain: domain.into(),
            posture,
            nta7516_record: false,
            mta_sts_mx: Vec::new(),
            assessed_at: String::new(),
            checks: Vec::new(),
        }
    }

    #[tokio::test]
    async fn concurrent_lookups_share_one_assessment_and_failures_expire_sooner() {
        let cache = PostureCache::new(Duration::from_secs(3600), Duration::ZERO, 10);
        let runs = AtomicUsize::new(0);
        let slow = || async {
            runs.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            assessment("a.test", Level::Dane)
        };
        let (a, b) = tokio::join!(cache.get("a.test", slow), cache.get("a.test", slow));
        assert_eq!((a.posture, b.posture), (Level::Dane, Level::Dane));
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        cache.get("a.test", slow).await;
        assert_eq!(runs.load(Ordering::SeqCst), 1, "cached");

        let failing = || async {
            runs.fetch_add(1, Ordering::SeqCst);
            assessment("b.test", Level::Unknown)
        };
        cache.get("b.test", failing).await;
        cache.get("b.test", failing).await;
        assert_eq!(runs.load(Ordering::SeqCst), 3, "unknown is not kept");
    }

    #[tokio::test]
    async fn the_cache_is_bounded() {
        let cache = PostureCache::new(Duration::from_secs(3600), Duration::from_secs(60), 3);
        for i in 0..10 {
            let d = format!("d{i}.test");
            cache
                .get(&d, || async { assessment(&d, Level::None) })
                .await;
        }
        assert_eq!(cache.len(), 3);
    }

    /// Answers from tables, like Stalwart's test resolvers: the ladder logic without servers.
    #[derive(Default)]
    struct FakeDns {
        mx: HashMap<String, Outcome<Mx>>,
        tlsa: HashMap<String, Outcome<Tlsa>>,
    }

    impl Resolve for FakeDns {
        async fn mx(&self, domain: &str) -> Outcome<Mx> {
            self.mx
                .get(domain)
                .cloned()
                .unwrap_or(Outcome::Failed("no answer".into()))
        }
        async fn txt(&self, _: &str) -> Outcome<String> {
            Outcome::NotFound {
                security: Security::Secure,
            }
        }
        async fn tlsa(&self, name: &str) -> Outcome<Tlsa> {
            self.tlsa.get(name).cloned().unwrap_or(Outcome::NotFound {
                security: Security::Secure,
            })
        }
        async fn ips(&self, _: &str) -> Outcome<std::net::IpAddr> {
            Outcome::Found {
                records: vec![std::net::IpAddr::from([192, 0, 2, 1])],
                security: Security::Secure,
            }
        }
    }

    struct FakeProber(HashMap<String, Probe>);

    impl Prober for FakeProber {
        async fn probe(
            &self,
            host: &str,
            _: std::net::IpAddr,
            _: u16,
            _: Arc<RootCertStore>,
            _: &str,
        ) -> Probe {
            self.0
                .get(host)
                .cloned()
                .unwrap_or(Probe::Unreachable("down".into()))
        }
    }

    fn tls(chain: Vec<rustls_pki_types::CertificateDer<'static>>, webpki: bool) -> Probe {
        Probe::Tls {
            params: crate::wire::stream::TlsParams {
                version: "TLSv1.3".into(),
                cipher: "TLS13_AES_128_GCM_SHA256".into(),
                group: None,
            },
            webpki: if webpki {
                Ok(())
            } else {
                Err("unknown issuer".into())
            },
            chain,
        }
    }

    fn opts() -> ProbeOptions {
        ProbeOptions {
            sts_cache: Arc::new(crate::posture::mta_sts::Cache::new(None)),
            sts_port: 443,
            trust: Arc::new(HashMap::new()),
            roots: Arc::new(RootCertStore::empty()),
            helo: "gw.test".into(),
            port: 25,
            enabled: true,
        }
    }

    fn mx(hosts: &[&str], security: Security) -> Outcome<Mx> {
        Outcome::Found {
            records: hosts
                .iter()
                .enumerate()
                .map(|(i, h)| Mx {
                    preference: 10 * (i as u16 + 1),
                    host: h.to_string(),
                })
                .collect(),
            security,
        }
    }

    #[tokio::test]
    async fn injected_answers_walk_the_ladder() {
        let leaf = rcgen::generate_simple_self_signed(vec!["mx.a.test".into()]).unwrap();
        let chain = vec![leaf.cert.der().clone()];
        let spki = {
            let (_, c) = x509_parser::parse_x509_certificate(chain[0].as_ref()).unwrap();
            ring::digest::digest(&ring::digest::SHA256, c.tbs_certificate.subject_pki.raw)
        };
        let tlsa = Tlsa {
            usage: 3,
            selector: 1,
            matching: 1,
            data: spki.as_ref().to_vec(),
        };
        let mut dns = FakeDns::default();
        dns.mx
            .insert("a.test".into(), mx(&["mx.a.test"], Security::Secure));
        dns.tlsa.insert(
            "_25._tcp.mx.a.test".into(),
            Outcome::Found {
                records: vec![tlsa],
                security: Security::Secure,
            },
        );
        dns.mx.insert(
            "b.test".into(),
            mx(&["mx.b.test", "mx2.b.test"], Security::Insecure),
        );
        dns.mx.insert("c.test".into(), Outcome::Bogus);
        dns.mx
            .insert("d.test".into(), mx(&["mx.d.test"], Security::Secure));
        dns.tlsa.insert(
            "_25._tcp.mx.d.test".into(),
            Outcome::Failed("SERVFAIL".into()),
        );
        let mut probes = HashMap::new();
        probes.insert("mx.a.test".to_string(), tls(chain.clone(), false));
        probes.insert("mx.b.test".to_string(), tls(chain.clone(), true));
        probes.insert("mx2.b.test".to_string(), Probe::NoStartTls);
        let prober = FakeProber(probes);
        let level = |d: &'static str| {
            let (dns, prober) = (&dns, &prober);
            async move { assess(dns, prober, d, &opts()).await.posture }
        };
        assert_eq!(level("a.test").await, Level::Dane);
        assert_eq!(level("b.test").await, Level::None, "mx2 offers no STARTTLS");
        assert_eq!(level("c.test").await, Level::Bogus);
        assert_eq!(level("d.test").await, Level::Unknown, "TLSA lookup failed");
        assert_eq!(level("e.test").await, Level::Unknown, "MX lookup failed");
    }
}
