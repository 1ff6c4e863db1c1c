//! The running gateway: the shared services built from one configuration (`Runtime`), the
//! configuration checks that need those services' code (`check`), and serving: listeners,
//! signals, reload, stop and the schedules (`serve`).
//!
//! This is where the rooms meet: the SMTP side gets a `Frontend` whose target is the
//! `Pipeline`, the admin listener gets its `Services`, and both are rebuilt together on reload.

pub mod check;
#[cfg(test)]
mod load_tests;
pub mod reports;
pub mod serve;

use std::path::Path;
use std::sync::Arc;

use crate::admin;
use crate::audit::AuditLog;
use crate::config::{self, Config, ConfigError, Overrides};
use crate::inspect::Inspector;
use crate::pipeline::Pipeline;
use crate::policy::Policy;
use crate::posture::dns::Dns;
use crate::posture::ladder::ProbeOptions;
use crate::posture::{Classifier, PostureCache, Postures, Registry};
use crate::quarantine::Quarantine;
use crate::quarantine::review::Reviewer;
use crate::relay::Lanes;
use crate::smtp::Frontend;
use crate::store::Store;

/// Reads and checks the configuration: the file (or the embedded default) with the flags,
/// the NTA 7516 profile when no rules are given, and every check, all reported as
/// file:line: key: message. `sluis config check`, `serve` and every command load through here.
pub fn load_config(path: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
    let (mut config, source) = config::read(path, overrides)?;
    if config.policy.rules.is_empty() {
        config.policy.rules = crate::policy::profile::nta7516(&config);
    } else if source.sets("forwards.refuse_to_unmanaged") {
        // It shapes the profile only; set next to rules of one's own it would do nothing.
        return Err(source.error(
            "forwards.refuse_to_unmanaged",
            "only shapes the NTA 7516 profile, and [[policy.rules]] replace the profile: \
             write an automated_forward rule instead (see `sluis config check` without rules)"
                .into(),
        ));
    }
    config::validate(&config, &source)?;
    check::wired(&config, &source)?;
    Ok(config)
}

/// Everything the gateway runs on, built from one configuration. A reload builds a new one;
/// sessions in progress keep the one they started with.
pub struct Runtime {
    pub config: Arc<Config>,
    pub dns: Arc<Dns>,
    /// Ownership proofs; shared across reloads, so a reload does not forget them.
    pub ownership: Arc<Registry>,
    pub pipeline: Arc<Pipeline>,
    pub smtp: Arc<Frontend>,
    pub admin: Arc<admin::Services>,
    /// The TLS policy socketmap's answers: this runtime's posture cache and trust list.
    pub tls_policy: Arc<TlsPolicy>,
    /// The report listener's SMTP side (`review.report_listen`), when set.
    pub reports: Option<Arc<Frontend>>,
    /// The secure pickup portal, when `[portal]` is configured.
    pub portal: Option<Arc<crate::portal::service::Portal>>,
    /// The reviewers' web interface, when `[web]` is configured.
    pub web: Option<Arc<crate::review::Web>>,
}

/// What outlives reloads, built once at start.
pub struct Lasting {
    /// Ownership proofs: a reload does not forget them.
    pub ownership: Arc<Registry>,
    /// A reload does not reconnect, and held items stay where they are.
    pub store: Arc<Store>,
    /// The work that follows replies (QUIT upstream, outcome records); shutdown waits for it.
    pub after_reply: tokio_util::task::TaskTracker,
    /// Positive replies the client may not have read.
    pub repeats: Arc<crate::pipeline::repeats::Repeats>,
    /// The audit log last opened: a reload that names the same file keeps it, and with it its
    /// writer thread and commit journal (a second writer could not take the journal while the
    /// first lives, and the previous configuration's services may keep it alive).
    pub audit: std::sync::Mutex<Option<Arc<AuditLog>>>,
}

impl Lasting {
    /// The audit log `config` names: the one already open when it is the same file, else
    /// opened now, its writer started before any mail is accepted.
    fn audit_log(&self, config: &Config) -> anyhow::Result<Arc<AuditLog>> {
        let mut kept = self.audit.lock().unwrap_or_else(|p| p.into_inner());
        let path = config.audit_file();
        if let Some(log) = kept.as_ref().filter(|l| l.path() == path) {
            log.set_rotate_bytes(config.audit.rotate_bytes);
            return Ok(log.clone());
        }
        let log = Arc::new(AuditLog::open(&path, config.audit.rotate_bytes)?);
        log.start_writer();
        *kept = Some(log.clone());
        Ok(log)
    }
}

/// What the TLS policy socketmap answers from: the postures the decisions use, so Postfix
/// asking at delivery gets the judgement the decision used (or a fresh one, made once for both).
pub type TlsPolicy = crate::relay::socketmap::Judge<Arc<Postures>>;

impl Runtime {
    pub fn build(config: Config, lasting: &Lasting) -> anyhow::Result<Runtime> {
        let Lasting {
            ownership,
            store,
            after_reply,
            repeats,
            ..
        } = lasting;
        let (ownership, store) = (ownership.clone(), store.clone());
        let config = Arc::new(config);
        let lanes = Arc::new(Lanes::from_config(&config).map_err(anyhow::Error::msg)?);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let dns = Arc::new(Dns::new(&config.dns)?);
        let policy = Arc::new(Policy::from_config(&config));
        let p = &config.posture;
        let postures = Arc::new(Postures {
            cache: PostureCache::new(p.cache_lifetime, p.failure_lifetime, p.max_domains),
            dns: dns.clone(),
            probe: ProbeOptions::from_config(&config, None).map_err(anyhow::Error::msg)?,
        });
        let quarantine = Quarantine::new(store.clone());
        let audit = lasting.audit_log(&config)?;
        let review_token = match &config.review.token_file {
            Some(f) => Some(std::fs::read_to_string(f)?.trim().to_string()),
            None => None,
        };
        let needs_dns = !config.domains.is_empty() || policy.needs_posture();
        let admin = Arc::new(admin::Services {
            spool_dir: config.server.spool_dir.clone(),
            reviewer: Reviewer {
                store: quarantine.clone(),
                audit: audit.clone(),
                policy: policy.clone(),
                lanes: lanes.clone(),
                hostname: config.server.hostname.clone(),
                spool_dir: config.server.spool_dir.clone(),
                postures: postures.clone(),
                reports: config.review.report_listen.is_some(),
            },
            retention: config.quarantine.retention,
            dns: needs_dns.then(|| dns.clone()),
            review_token,
        });
        let portal = crate::portal::service::Portal::build(
            &config,
            store.clone(),
            audit.clone(),
            lanes.clone(),
        )?
        .map(Arc::new);
        let sender_links = match (&config.web, config.web_secret_file()) {
            (Some(w), Some(f)) => {
                let key = crate::wire::secret::load_or_make(&f, "key of the senders' links")
                    .map_err(|e| anyhow::anyhow!("web.secret_file {}: {e}", f.display()))?;
                Some(Arc::new(crate::quarantine::link::SenderLinks::new(
                    &key,
                    &w.base_url,
                    w.sender_link_time,
                )))
            }
            _ => None,
        };
        let web = crate::review::Web::build(
            &config,
            admin.reviewer.clone(),
            sender_links.clone(),
            portal.clone(),
        )?
        .map(Arc::new);
        let pipeline = Arc::new(Pipeline {
            config: config.clone(),
            inspector: Arc::new(Inspector::new(&config.inspect)?),
            inspect_slots: Arc::new(tokio::sync::Semaphore::new(cores)),
            classifier: Classifier::new(&config),
            ownership: ownership.clone(),
            policy,
            postures,
            quarantine,
            audit,
            lanes,
            portal: portal.clone(),
            sender_links,
            after_reply: after_reply.clone(),
            repeats: repeats.clone(),
        });
        let smtp = Arc::new(Frontend::build(config.clone(), pipeline.clone())?);
        let tls_policy = Arc::new(TlsPolicy {
            postures: pipeline.postures.clone(),
            partners: crate::relay::tls_policy::partners(&config),
            allow: config.server.allow_networks.clone(),
        });
        let reports = match config.review.report_listen {
            Some(_) => Some(Arc::new(Frontend::build(
                config.clone(),
                Arc::new(reports::Reports {
                    reviewer: admin.reviewer.clone(),
                }),
            )?)),
            None => None,
        };
        Ok(Runtime {
            config,
            dns,
            ownership,
            pipeline,
            smtp,
            admin,
            tls_policy,
            reports,
            portal,
            web,
        })
    }

    /// Whether DNS must work for this configuration: listed domains need their ownership
    /// proven, and a policy that asks for postures needs lookups and DNSSEC.
    pub fn needs_dns(&self) -> bool {
        self.admin.dns.is_some()
    }
}
