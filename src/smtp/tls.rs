//! The certificate Sluis offers with STARTTLS.
//!
//! When none is configured, a self-signed one is generated at start: clients that only want
//! encryption (as a relaying Postfix with `smtp_tls_security_level = may` does) still get it, and
//! the log says loudly that the certificate proves nothing.

use std::sync::Arc;

use tokio_rustls::TlsAcceptor;

use crate::config::TlsConfig;
pub use crate::wire::server_tls::TlsError;
use crate::wire::server_tls::{load_cert_and_key, self_signed, server_config};

/// The acceptor for STARTTLS: the configured certificate, or a fresh self-signed one.
pub fn acceptor(config: &TlsConfig, hostname: &str) -> Result<TlsAcceptor, TlsError> {
    let (certs, key) = match (&config.cert_file, &config.key_file) {
        (Some(cert), Some(key)) => load_cert_and_key(cert, key)?,
        _ => {
            tracing::warn!(
                hostname,
                "no tls.cert_file configured: offering STARTTLS with a generated self-signed \
                 certificate, which encrypts but does not authenticate this server"
            );
            self_signed(hostname)?
        }
    };
    Ok(TlsAcceptor::from(Arc::new(server_config(certs, key)?)))
}
