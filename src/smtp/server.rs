//! The accept loop: connection limits, access control, signals.
//!
//! SIGTERM/SIGINT: stop accepting, tell idle sessions 421, give sessions in the middle of a
//! transaction `timeouts.shutdown_grace` to finish, then exit. Nothing is lost either way: a
//! client whose transaction was cut off never got a 250 and still has the message.
//! SIGHUP: read the configuration again; a bad one is logged and the running one kept.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{self, Config, Overrides};
use crate::wire::stream::Stream;

use super::Runtime;
use super::connection::Connection;
use super::session::Session;

/// Sessions per client address and in total, released when a session ends.
#[derive(Default)]
struct Counts {
    total: usize,
    per_client: HashMap<IpAddr, usize>,
}

struct Slot {
    counts: Arc<Mutex<Counts>>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        c.total -= 1;
        if let Some(n) = c.per_client.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                c.per_client.remove(&self.ip);
            }
        }
    }
}

/// Takes a session slot, or says which limit is reached.
fn take_slot(counts: &Arc<Mutex<Counts>>, ip: IpAddr, cfg: &Config) -> Result<Slot, &'static str> {
    let mut c = counts.lock().unwrap_or_else(|p| p.into_inner());
    if c.total >= cfg.limits.sessions {
        return Err("too many connections");
    }
    let mine = c.per_client.get(&ip).copied().unwrap_or(0);
    if mine >= cfg.limits.sessions_per_client {
        return Err("too many connections from your address");
    }
    c.total += 1;
    *c.per_client.entry(ip).or_insert(0) += 1;
    Ok(Slot {
        counts: counts.clone(),
        ip,
    })
}

pub struct Server {
    ownership: Arc<crate::posture::Registry>,
    config_path: Option<PathBuf>,
    overrides: Overrides,
    runtime: watch::Sender<Arc<Runtime>>,
    counts: Arc<Mutex<Counts>>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

impl Server {
    pub fn new(
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
        let ownership = Arc::new(crate::posture::Registry::default());
        let runtime = Arc::new(Runtime::build(config, ownership.clone())?);
        Ok(Server {
            ownership,
            config_path,
            overrides,
            runtime: watch::channel(runtime).0,
            counts: Arc::default(),
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
        })
    }

    pub async fn run(self) -> anyhow::Result<()> {
        let rt = self.runtime.borrow().clone();
        // Know which listed domains are ours before the first message arrives, and say so
        // loudly when DNSSEC cannot work. When only postures need DNS, nothing waits for it:
        // confidential mail is deferred while lookups fail.
        if rt.needs_dns() {
            let check = {
                let rt = rt.clone();
                async move { log_dnssec_self_test(&rt).await }
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
            tokio::spawn(crate::admin::serve(
                l,
                self.runtime.subscribe(),
                self.shutdown.clone(),
            ));
        }
        let server = Arc::new(self);
        tokio::spawn(server.clone().ownership_schedule());
        tokio::spawn(server.clone().retention_schedule());
        for listener in listeners {
            let s = server.clone();
            tokio::spawn(async move { s.accept_loop(listener).await });
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
    /// removal is audited (reviewer "retention").
    async fn retention_schedule(self: Arc<Self>) {
        loop {
            let rt = self.runtime.borrow().clone();
            let retention = rt.config.quarantine.retention;
            match rt.reviewer().purge(retention, "retention").await {
                Ok(ids) if !ids.is_empty() => {
                    tracing::info!(
                        count = ids.len(),
                        "quarantine items past their retention removed"
                    )
                }
                Ok(_) => {}
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
        let loaded = config::load(self.config_path.as_deref(), &self.overrides)
            .map_err(anyhow::Error::from)
            .and_then(|c| {
                if c.server.listen != current.config.server.listen
                    || c.server.admin_listen != current.config.server.admin_listen
                {
                    tracing::warn!(
                        "listen addresses changed: they take effect at the next restart"
                    );
                }
                Runtime::build(c, self.ownership.clone())
            });
        match loaded {
            Ok(rt) => {
                let rt = Arc::new(rt);
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
    }

    async fn accept_loop(self: Arc<Self>, listener: TcpListener) {
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = self.shutdown.cancelled() => return,
            };
            match accepted {
                Ok((tcp, peer)) => {
                    let rt = self.runtime.borrow().clone();
                    let s = self.clone();
                    self.tracker
                        .spawn(async move { s.handle(tcp, peer, rt).await });
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::error!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    }

    async fn handle(&self, mut tcp: TcpStream, peer: SocketAddr, rt: Arc<Runtime>) {
        let ip = peer.ip().to_canonical();
        let peer = SocketAddr::new(ip, peer.port());
        let host = rt.config.server.hostname.clone();
        let _slot = match take_slot(&self.counts, ip, &rt.config) {
            Ok(slot) => slot,
            Err(why) => {
                tracing::warn!(%peer, why, "connection refused");
                let _ = tcp
                    .write_all(format!("421 4.7.0 {host} Error: {why}\r\n").as_bytes())
                    .await;
                return;
            }
        };
        let in_network = rt
            .config
            .server
            .allow_networks
            .iter()
            .any(|n| n.contains(&ip));
        if !in_network && !rt.config.auth.enabled {
            tracing::warn!(%peer, "connection refused: client not in allow_networks");
            let _ = tcp
                .write_all(
                    format!("554 5.7.1 {host} Access denied: {ip} may not relay through this gateway\r\n")
                        .as_bytes(),
                )
                .await;
            return;
        }
        let _ = tcp.set_nodelay(true);
        let _metric = crate::metrics::SessionGuard::start();
        tracing::debug!(%peer, "connect");
        let conn = Connection::new(Stream::Plain(tcp));
        Session::new(rt, conn, peer, in_network, self.shutdown.clone())
            .run()
            .await;
        tracing::debug!(%peer, "disconnect");
    }
}

/// Logs whether DNSSEC validation works through the configured resolver.
async fn log_dnssec_self_test(rt: &Runtime) {
    match rt.dns.self_test().await {
        Ok(()) => {
            tracing::info!(resolver = %rt.config.dns.resolver, anchor = rt.dns.anchor_zone(), "DNSSEC validation works")
        }
        Err(e) => {
            tracing::error!(resolver = %rt.config.dns.resolver, error = %e, "DNSSEC validation does not work: listed domains count as lapsed and confidential mail is deferred (posture unknown)")
        }
    }
}
