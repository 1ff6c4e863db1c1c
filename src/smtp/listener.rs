//! The accept loop: connection limits and access control, then a session per connection.
//!
//! Each connection gets the `Frontend` current when it arrives (a reload sends a new one; a
//! session keeps the one it started with). On shutdown the loop stops accepting and sessions
//! tell idle clients 421; `app` decides how long sessions in a transaction may take.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::wire::stream::Stream;

use super::Frontend;
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

/// Accepts SMTP connections on any number of sockets, with one set of session limits.
pub struct Listener {
    frontend: watch::Receiver<Arc<Frontend>>,
    counts: Arc<Mutex<Counts>>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

impl Listener {
    /// `tracker` follows every session, so that the caller can wait for them at shutdown.
    pub fn new(
        frontend: watch::Receiver<Arc<Frontend>>,
        shutdown: CancellationToken,
        tracker: TaskTracker,
    ) -> Listener {
        Listener {
            frontend,
            counts: Arc::default(),
            shutdown,
            tracker,
        }
    }

    /// Accepts on `listener` until shutdown.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) {
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = self.shutdown.cancelled() => return,
            };
            match accepted {
                Ok((tcp, peer)) => {
                    let rt = self.frontend.borrow().clone();
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

    async fn handle(&self, mut tcp: TcpStream, peer: SocketAddr, rt: Arc<Frontend>) {
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
