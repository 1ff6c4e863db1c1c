//! The inbound SMTP side: listener, sessions, content framing, TLS and AUTH.

pub mod auth;
pub mod body;
pub mod connection;

pub mod server;
pub mod session;
pub mod tls;

use std::sync::Arc;

use tokio_rustls::TlsAcceptor;

use crate::audit::AuditLog;
use crate::config::Config;
use crate::inspect::Inspector;
use crate::policy::{Policy, PostureSource};
use crate::posture::dns::Dns;
use crate::posture::ladder::{ProbeOptions, assess};
use crate::posture::{Assessment, Classifier, PostureCache, Registry};
use crate::quarantine::Store;
use crate::relay::Lanes;

/// Everything a session needs, built from one configuration. A reload builds a new one; sessions
/// in progress keep the one they started with.
pub struct Runtime {
    pub config: Arc<Config>,
    pub tls: TlsAcceptor,
    pub credentials: Option<Arc<auth::Credentials>>,
    pub lanes: Arc<Lanes>,
    pub inspector: Arc<Inspector>,
    /// Messages being inspected at once: each is held whole in memory while it is parsed.
    pub inspect_slots: Arc<tokio::sync::Semaphore>,
    pub dns: Arc<Dns>,
    pub classifier: Classifier,
    /// Ownership proofs; shared across reloads, so a reload does not forget them.
    pub ownership: Arc<Registry>,
    pub policy: Arc<Policy>,
    pub postures: PostureCache,
    pub probe: ProbeOptions,
    pub quarantine: Arc<Store>,
    pub audit: Arc<AuditLog>,
    /// The review API's bearer token (`review.token_file`); `None`: the API is off.
    pub review_token: Option<String>,
}

impl Runtime {
    pub fn build(config: Config, ownership: Arc<Registry>) -> anyhow::Result<Runtime> {
        let tls = tls::acceptor(&config.tls, &config.server.hostname)?;
        let credentials = match (&config.auth.enabled, &config.auth.credentials_file) {
            (true, Some(path)) => Some(Arc::new(auth::Credentials::load(path)?)),
            _ => None,
        };
        let lanes = Arc::new(Lanes::from_config(&config).map_err(anyhow::Error::msg)?);
        let inspector = Arc::new(Inspector::new(&config.inspect)?);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let dns = Arc::new(Dns::new(&config.dns)?);
        let classifier = Classifier::new(&config);
        let policy = Arc::new(Policy::from_config(&config));
        let p = &config.posture;
        let postures = PostureCache::new(p.cache_lifetime, p.failure_lifetime, p.max_domains);
        let probe = ProbeOptions::from_config(&config, None).map_err(anyhow::Error::msg)?;
        let quarantine = Arc::new(Store::open(
            &config.quarantine_dir(),
            config.quarantine.max_bytes,
        )?);
        let audit = Arc::new(AuditLog::open(
            &config.audit_file(),
            config.audit.rotate_bytes,
        )?);
        let review_token = match &config.review.token_file {
            Some(f) => Some(std::fs::read_to_string(f)?.trim().to_string()),
            None => None,
        };
        Ok(Runtime {
            review_token,
            policy,
            postures,
            probe,
            quarantine,
            audit,
            dns,
            classifier,
            ownership,
            config: Arc::new(config),
            tls,
            credentials,
            lanes,
            inspector,
            inspect_slots: Arc::new(tokio::sync::Semaphore::new(cores)),
        })
    }
}

impl Runtime {
    /// Whether DNS must work for this configuration: listed domains need their ownership
    /// proven, and a policy that asks for postures needs lookups and DNSSEC.
    pub fn needs_dns(&self) -> bool {
        !self.config.domains.is_empty() || self.policy.needs_posture()
    }

    /// Review operations over this runtime's quarantine, audit log, policy and lanes.
    pub fn reviewer(&self) -> crate::quarantine::review::Reviewer {
        crate::quarantine::review::Reviewer {
            store: self.quarantine.clone(),
            audit: self.audit.clone(),
            policy: self.policy.clone(),
            lanes: self.lanes.clone(),
            hostname: self.config.server.hostname.clone(),
            spool_dir: self.config.server.spool_dir.clone(),
        }
    }
}

impl PostureSource for Runtime {
    async fn posture(&self, domain: &str) -> Arc<Assessment> {
        self.postures
            .get(domain, || async {
                let started = std::time::Instant::now();
                let a = assess(
                    &*self.dns,
                    &crate::posture::probe::StartTlsProber,
                    domain,
                    &self.probe,
                )
                .await;
                crate::metrics::posture_lookup(a.posture.name(), started.elapsed());
                tracing::info!(%domain, posture = %a.posture, "recipient domain assessed");
                a
            })
            .await
    }
}
