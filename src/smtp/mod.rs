//! The inbound SMTP side, the protocol only: listener, sessions, content framing, limits,
//! STARTTLS and AUTH. At the end of a transaction it hands it to a `target::Target` and
//! writes back the reply it gets; what happens to a message is not its business.

pub mod auth;
pub mod body;
pub mod connection;
pub mod listener;
pub mod session;
pub mod target;
pub mod tls;

use std::sync::Arc;

use tokio_rustls::TlsAcceptor;

use crate::config::Config;

pub use target::{SessionFacts, Target, Transaction};

/// Everything a session needs, built from one configuration. A reload builds a new one;
/// sessions in progress keep the one they started with.
pub struct Frontend {
    pub config: Arc<Config>,
    pub tls: TlsAcceptor,
    pub credentials: Option<Arc<auth::Credentials>>,
    /// Bounds password checks and slows down addresses that fail them.
    pub auth_guard: Arc<auth::Guard>,
    /// Where finished transactions go.
    pub target: Arc<dyn Target>,
}

impl Frontend {
    pub fn build(config: Arc<Config>, target: Arc<dyn Target>) -> anyhow::Result<Frontend> {
        let tls = tls::acceptor(&config.tls, &config.server.hostname)?;
        let credentials = match (&config.auth.enabled, &config.auth.credentials_file) {
            (true, Some(path)) => Some(Arc::new(auth::Credentials::load(path)?)),
            _ => None,
        };
        let per_check = credentials
            .as_ref()
            .map_or(19 * 1024 * 1024, |c| c.check_memory());
        let auth_guard = Arc::new(auth::Guard::new(
            config.auth.check_memory,
            per_check,
            config.auth.failure_delay,
        ));
        Ok(Frontend {
            config,
            tls,
            credentials,
            auth_guard,
            target,
        })
    }
}
