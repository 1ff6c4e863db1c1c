//! Serving: the listeners, signals, reload, stop and the schedules of the running gateway.
//!
//! SIGTERM/SIGINT: stop accepting, tell idle sessions 421, give sessions in the middle of a
//! transaction `timeouts.shutdown_grace` to finish, then exit. Nothing is lost either way: a
//! client whose transaction was cut off never got a 250 and still has the message.
//! SIGHUP: read the configuration again; a bad one is logged and the running one kept.
//! Schedules: ownership proofs every `ownership.check_interval`, quarantine retention hourly.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin;
use crate::config::{Config, Overrides};
use crate::posture::Registry;
use crate::smtp::Frontend;
use crate::smtp::listener::Listener;
use crate::store::Store;

use super::{Lasting, Runtime};
use crate::pipeline::repeats::Repeats;

/// How often the audit head is anchored in the store.
const ANCHOR_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

pub struct Server {
    config_path: Option<PathBuf>,
    overrides: Overrides,
    /// Ownership proofs, the store, the work after replies, the unread replies: across reloads.
    lasting: Lasting,
    /// This instance's name in audit anchors, the anchor it wrote last, and how far its
    /// records are mirrored.
    instance: String,
    anchored: tokio::sync::Mutex<(Option<crate::store::Anchor>, crate::audit::mirror::Mirror)>,
    runtime: watch::Sender<Arc<Runtime>>,
    /// The SMTP side's and the admin listener's share of the runtime, sent on reload.
    smtp: watch::Sender<Arc<Frontend>>,
    admin: watch::Sender<Arc<admin::Services>>,
    tls_policy: watch::Sender<Arc<super::TlsPolicy>>,
    /// The report listener's side, when `review.report_listen` is set.
    reports: Option<watch::Sender<Arc<Frontend>>>,
    /// The portal's pages' side, when `[portal]` is configured.
    portal: Option<watch::Sender<Arc<crate::portal::service::Portal>>>,
    /// The reviewers' pages' side, when `[web]` is configured.
    web: Option<watch::Sender<Arc<crate::review::Web>>>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

impl Server {
    pub async fn new(
        config_path: Option<PathBuf>,
        overrides: Overrides,
        config: Config,
    ) -> anyhow::Result<Self> {
        crate::spool::prepare(&config.server.spool_dir).with_context(|| {
            format!(
                "server.spool_dir {}: not a writable directory",
                config.server.spool_dir.display()
            )
        })?;
        let ownership = Arc::new(Registry::default());
        let store = Arc::new(Store::open(&config).await?);
        tracing::info!(kind = store.kind(), "store opened");
        if config.portal.is_some() || config.web.is_some() {
            store
                .claim_sessions()
                .await
                .context("the store's sessions (portal visits and code states, web logins)")?;
        }
        let repeats = Arc::new(Repeats::open(
            &config.server.spool_dir.join("replies"),
            config.server.repeat_window,
        ));
        let lasting = Lasting {
            ownership,
            store,
            after_reply: TaskTracker::new(),
            repeats,
            audit: Default::default(),
        };
        let runtime = Arc::new(Runtime::build(config, &lasting)?);
        Ok(Server {
            lasting,
            instance: crate::store::instance_name(&runtime.config.store),
            anchored: tokio::sync::Mutex::new((None, Default::default())),
            config_path,
            overrides,
            smtp: watch::channel(runtime.smtp.clone()).0,
            admin: watch::channel(runtime.admin.clone()).0,
            tls_policy: watch::channel(runtime.tls_policy.clone()).0,
            reports: runtime.reports.clone().map(|f| watch::channel(f).0),
            portal: runtime.portal.clone().map(|p| watch::channel(p).0),
            web: runtime.web.clone().map(|w| watch::channel(w).0),
            runtime: watch::channel(runtime).0,
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
        })
    }

    pub async fn run(self) -> anyhow::Result<()> {
        let rt = self.runtime.borrow().clone();
        // A crash between a reply and its outcome record leaves the outcome unknown: say so
        // in the log before the first new transaction.
        let replied = self.lasting.repeats.take_before();
        match crate::audit::recover::settle_unfinished(&rt.pipeline.audit, &replied) {
            Ok(s) if s.total() == 0 => {}
            Ok(s) => tracing::warn!(
                transactions = s.total(),
                reply_read = s.read,
                reply_written = s.written,
                unknown = s.unknown,
                "the last run ended before recording these transactions' outcomes: recorded as unknown, or as far as the notes of their replies tell"
            ),
            Err(e) => return Err(e).context("audit log"),
        }
        let readiness = Arc::new(admin::Readiness::default());
        // Know which listed domains are ours before the first message arrives, and say so
        // loudly when DNSSEC cannot work. When only postures need DNS, nothing waits for it:
        // confidential mail is deferred while lookups fail. The result is readiness's first.
        if rt.needs_dns() {
            let check = {
                let (rt, readiness) = (rt.clone(), readiness.clone());
                async move { readiness.record("dns", log_dnssec_self_test(&rt).await) }
            };
            if rt.config.domains.is_empty() {
                tokio::spawn(check);
            } else {
                check.await;
                let first = rt.ownership.check_all(&rt.dns, &rt.config);
                if tokio::time::timeout(crate::posture::dns::STARTUP_CHECK_LIMIT, first)
                    .await
                    .is_err()
                {
                    tracing::warn!(
                        "ownership checks did not finish at start: listed domains count as lapsed until they do"
                    );
                }
            }
        }
        let mut listeners = Vec::new();
        for addr in &rt.config.server.listen {
            let l = TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr}"))?;
            tracing::info!(%addr, hostname = %rt.config.server.hostname, "SMTP listener ready");
            listeners.push(l);
        }
        if let Some(addr) = rt.config.server.admin_listen {
            let l = TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (admin)"))?;
            tokio::spawn(admin::serve(
                l,
                self.admin.subscribe(),
                readiness,
                self.shutdown.clone(),
            ));
        }
        if let Some(addr) = rt.config.upstream.policy_map_listen {
            let l = TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (upstream.policy_map_listen)"))?;
            tracing::info!(%addr, "TLS policy socketmap ready");
            tokio::spawn(crate::relay::socketmap::serve(
                l,
                self.tls_policy.subscribe(),
                self.shutdown.clone(),
            ));
        }
        if let (Some(addr), Some(reports)) = (rt.config.review.report_listen, &self.reports) {
            let l = TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (review.report_listen)"))?;
            tracing::info!(%addr, "delivery report listener ready");
            let listener = Arc::new(Listener::new(
                reports.subscribe(),
                self.shutdown.clone(),
                self.tracker.clone(),
            ));
            tokio::spawn(listener.serve(l));
        }
        if let (Some(p), Some(tx)) = (&rt.portal, &self.portal) {
            let addr = p.config.listen;
            let l = TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (portal.listen)"))?;
            let acceptor = crate::portal::web::acceptor(&p.config).context("portal.cert_file")?;
            tracing::info!(%addr, base_url = %p.config.base_url, "pickup portal ready");
            tokio::spawn(crate::portal::web::serve(
                l,
                acceptor,
                tx.subscribe(),
                self.shutdown.clone(),
            ));
        }
        if let (Some(w), Some(tx)) = (&rt.web, &self.web) {
            let addr = w.config.listen;
            let l = TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (web.listen)"))?;
            let acceptor = crate::review::acceptor(&w.config).context("web.cert_file")?;
            tracing::info!(%addr, base_url = %w.config.base_url, "reviewers' web interface ready");
            tokio::spawn(crate::review::serve(
                l,
                acceptor,
                tx.subscribe(),
                self.shutdown.clone(),
            ));
        }
        let smtp = Arc::new(Listener::new(
            self.smtp.subscribe(),
            self.shutdown.clone(),
            self.tracker.clone(),
        ));
        let server = Arc::new(self);
        tokio::spawn(server.clone().ownership_schedule());
        tokio::spawn(server.clone().retention_schedule());
        tokio::spawn(server.clone().anchor_schedule());
        for listener in listeners {
            tokio::spawn(smtp.clone().serve(listener));
        }

        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut hup = signal(SignalKind::hangup())?;
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = hup.recv() => server.reload(),
            }
        }
        server.stop().await;
        Ok(())
    }

    /// Re-checks ownership proofs every `ownership.check_interval` (of the current config).
    async fn ownership_schedule(self: Arc<Self>) {
        loop {
            let interval = self.runtime.borrow().config.ownership.check_interval;
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = self.shutdown.cancelled() => return,
            }
            let rt = self.runtime.borrow().clone();
            rt.ownership.check_all(&rt.dns, &rt.config).await;
        }
    }

    /// Removes quarantine items older than `quarantine.retention`, at start and hourly; each
    /// removal is audited (reviewer "retention"). With several instances on one store, one
    /// runs it at a time (and the claims keep each removal to one record regardless).
    async fn retention_schedule(self: Arc<Self>) {
        loop {
            let rt = self.runtime.borrow().clone();
            let retention = rt.config.quarantine.retention;
            let purge = async {
                // Sessions and rate-counter windows past their end go too.
                if let Err(e) = self.lasting.store.forget_expired().await {
                    tracing::warn!(error = %e, "cannot remove expired sessions and counters");
                }
                if let Some(p) = &rt.portal {
                    match p.expire().await {
                        Ok(0) => {}
                        Ok(n) => {
                            tracing::info!(count = n, "portal items past their expiry shredded")
                        }
                        Err(e) => tracing::error!(error = %e, "portal expiry failed"),
                    }
                }
                rt.admin.reviewer.purge(retention, "retention").await
            };
            match self.lasting.store.exclusive("retention", purge).await {
                Ok(Some(Ok(ids))) if !ids.is_empty() => {
                    tracing::info!(
                        count = ids.len(),
                        "quarantine items past their retention removed"
                    )
                }
                Ok(Some(Ok(_))) => {}
                Ok(None) => tracing::debug!("retention runs on another instance"),
                Ok(Some(Err(e))) => {
                    tracing::error!(error = %e, "quarantine retention purge failed")
                }
                Err(e) => tracing::error!(error = %e, "quarantine retention purge failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_secs(3600)) => {}
                _ = self.shutdown.cancelled() => return,
            }
        }
    }

    fn reload(&self) {
        let current = self.runtime.borrow().clone();
        let loaded = super::load_config(self.config_path.as_deref(), &self.overrides)
            .map_err(anyhow::Error::from)
            .and_then(|c| {
                if c.server.listen != current.config.server.listen
                    || c.server.admin_listen != current.config.server.admin_listen
                    || c.upstream.policy_map_listen != current.config.upstream.policy_map_listen
                    || c.review.report_listen != current.config.review.report_listen
                    || c.portal.as_ref().map(|p| (p.listen, &p.cert_file, &p.key_file))
                        != current
                            .config
                            .portal
                            .as_ref()
                            .map(|p| (p.listen, &p.cert_file, &p.key_file))
                    || c.web.as_ref().map(|w| (w.listen, &w.cert_file, &w.key_file))
                        != current
                            .config
                            .web
                            .as_ref()
                            .map(|w| (w.listen, &w.cert_file, &w.key_file))
                {
                    tracing::warn!(
                        "listen addresses (or the portal's or web's certificate) changed: they take effect at the next restart"
                    );
                }
                if c.store != current.config.store
                    || c.quarantine_dir() != current.config.quarantine_dir()
                    || c.quarantine.max_bytes != current.config.quarantine.max_bytes
                {
                    tracing::warn!("store settings changed: they take effect at the next restart");
                }
                Runtime::build(c, &self.lasting)
            });
        match loaded {
            Ok(rt) => {
                let rt = Arc::new(rt);
                self.smtp.send_replace(rt.smtp.clone());
                self.admin.send_replace(rt.admin.clone());
                self.tls_policy.send_replace(rt.tls_policy.clone());
                if let (Some(tx), Some(f)) = (&self.reports, &rt.reports) {
                    tx.send_replace(f.clone());
                }
                if let (Some(tx), Some(p)) = (&self.portal, &rt.portal) {
                    tx.send_replace(p.clone());
                }
                if let (Some(tx), Some(w)) = (&self.web, &rt.web) {
                    tx.send_replace(w.clone());
                }
                self.runtime.send_replace(rt.clone());
                tracing::info!("configuration reloaded");
                // Domains may have been added: prove them now rather than at the next round.
                tokio::spawn(async move { rt.ownership.check_all(&rt.dns, &rt.config).await });
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "reload refused, keeping the running configuration")
            }
        }
    }

    /// Every minute: mirrors new audit records into the store (PostgreSQL) and writes the
    /// chain's head as this instance's anchor (when it moved).
    async fn anchor_schedule(self: Arc<Self>) {
        loop {
            self.anchor().await;
            tokio::select! {
                _ = tokio::time::sleep(ANCHOR_INTERVAL) => {}
                _ = self.shutdown.cancelled() => return,
            }
        }
    }

    async fn anchor(&self) {
        let audit = self.runtime.borrow().pipeline.audit.clone();
        // Outcomes are written without a commit of their own: make them durable first, so the
        // mirror and the anchor reach them.
        if let Err(e) = audit.sync().await {
            tracing::warn!(error = %e, "cannot sync the audit log");
        }
        let mut state = self.anchored.lock().await;
        let (last, mirror) = &mut *state;
        match mirror
            .sync(&self.lasting.store, &self.instance, &audit)
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::debug!(records = n, "audit records mirrored to the store"),
            Err(e) => {
                tracing::warn!(error = %e, "cannot mirror audit records to the store; trying again in a minute")
            }
        }
        match crate::audit::anchor::write(
            &self.lasting.store,
            &self.instance,
            &audit,
            last.as_ref(),
        )
        .await
        {
            Ok(Some(anchor)) => {
                tracing::debug!(instance = %anchor.instance, seq = anchor.seq, "audit head anchored");
                *last = Some(anchor);
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot anchor the audit head in the store; trying again in a minute")
            }
        }
    }

    async fn stop(&self) {
        let grace = self.runtime.borrow().config.timeouts.shutdown_grace;
        tracing::info!(sessions = self.tracker.len(), ?grace, "shutting down");
        self.shutdown.cancel();
        self.tracker.close();
        if tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                sessions = self.tracker.len(),
                "grace period over, cutting off sessions; their clients keep the messages"
            );
        }
        // Outcome records of the last replies, then the head anchored before the process goes.
        self.lasting.after_reply.close();
        if tokio::time::timeout(
            std::time::Duration::from_secs(10),
            self.lasting.after_reply.wait(),
        )
        .await
        .is_err()
        {
            tracing::warn!(
                "outcome records still pending at exit: the next start records them as unknown"
            );
        }
        self.anchor().await;
    }
}

/// Logs whether DNSSEC validation works through the configured resolver; the result.
async fn log_dnssec_self_test(rt: &Runtime) -> Result<(), String> {
    let result = rt.dns.self_test().await;
    match &result {
        Ok(()) => {
            tracing::info!(resolver = %rt.config.dns.resolver, anchor = rt.dns.anchor_zone(), "DNSSEC validation works")
        }
        Err(e) => {
            tracing::error!(resolver = %rt.config.dns.resolver, error = %e, "DNSSEC validation does not work: listed domains count as lapsed and confidential mail is deferred (posture unknown)")
        }
    }
    result
}
