//! The certificates Sluis offers as a server (STARTTLS, the web sides): loading a PEM chain
//! and its key, checked to belong together, a generated self-signed pair where none is
//! configured, and the server configuration on the one crypto provider.

use std::path::Path;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

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

pub fn server_config(
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

/// A fresh self-signed certificate for `host`, and its key.
pub fn self_signed(host: &str) -> Result<CertAndKey, TlsError> {
    let generated = rcgen::generate_simple_self_signed(vec![host.to_string()])?;
    let key = PrivateKeyDer::Pkcs8(generated.signing_key.serialize_der().into());
    Ok((vec![generated.cert.der().clone()], key))
}
