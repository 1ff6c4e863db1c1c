//! The certificate Sluis offers with STARTTLS.
//!
//! When none is configured, a self-signed one is generated at start: clients that only want
//! encryption (as a relaying Postfix with `smtp_tls_security_level = may` does) still get it, and
//! the log says loudly that the certificate proves nothing.

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::TlsConfig;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {what}")]
    Pem { path: String, what: String },
    #[error("certificate and key do not make a usable TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("cannot generate a self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

pub type CertAndKey = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

/// Reads a PEM certificate chain and its key, and checks that they belong together.
pub fn load_cert_and_key(cert: &Path, key: &Path) -> Result<CertAndKey, TlsError> {
    let pem_err = |path: &Path, what: String| TlsError::Pem {
        path: path.display().to_string(),
        what,
    };
    let certs = CertificateDer::pem_file_iter(cert)
        .map_err(|e| pem_err(cert, e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_err(cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(pem_err(cert, "no PEM certificate found".into()));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| pem_err(key, e.to_string()))?;
    // Building a config proves the key matches the certificate.
    server_config(certs.clone(), key_der.clone_key())?;
    Ok((certs, key_der))
}

pub(crate) fn server_config(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<ServerConfig, TlsError> {
    Ok(
        ServerConfig::builder_with_provider(crate::wire::stream::crypto_provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certs, key)?,
    )
}

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
            let generated = rcgen::generate_simple_self_signed(vec![hostname.to_string()])?;
            let key = PrivateKeyDer::Pkcs8(generated.signing_key.serialize_der().into());
            (vec![generated.cert.der().clone()], key)
        }
    };
    Ok(TlsAcceptor::from(Arc::new(server_config(certs, key)?)))
}
