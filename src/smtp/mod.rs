//! The inbound SMTP side: listener, sessions, content framing, TLS and AUTH.

pub mod auth;
pub mod body;
pub mod connection;
pub mod reply;
pub mod server;
pub mod session;
pub mod tls;

use std::sync::Arc;

use tokio_rustls::TlsAcceptor;

use crate::config::Config;
use crate::inspect::Inspector;
use crate::posture::dns::Dns;
use crate::posture::{Classifier, Registry};
use crate::relay::Lanes;

/// Everything a session needs, built from one configuration. A reload builds a new one; sessions
/// in progress keep the one they started with.
pub struct Runtime {
    pub config: Arc<Config>,
    pub tls: TlsAcceptor,
    pub credentials: Option<Arc<auth::Credentials>>,
    pub lanes: Lanes,
    pub inspector: Arc<Inspector>,
    /// Messages being inspected at once: each is held whole in memory while it is parsed.
    pub inspect_slots: Arc<tokio::sync::Semaphore>,
    pub dns: Arc<Dns>,
    pub classifier: Classifier,
    /// Ownership proofs; shared across reloads, so a reload does not forget them.
    pub ownership: Arc<Registry>,
}

impl Runtime {
    pub fn build(config: Config, ownership: Arc<Registry>) -> anyhow::Result<Runtime> {
        let tls = tls::acceptor(&config.tls, &config.server.hostname)?;
        let credentials = match (&config.auth.enabled, &config.auth.credentials_file) {
            (true, Some(path)) => Some(Arc::new(auth::Credentials::load(path)?)),
            _ => None,
        };
        let lanes = Lanes::from_config(&config).map_err(anyhow::Error::msg)?;
        let inspector = Arc::new(Inspector::new(&config.inspect)?);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let dns = Arc::new(Dns::new(&config.dns)?);
        let classifier = Classifier::new(&config);
        Ok(Runtime {
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
