//! TLS towards an upstream lane.
//!
//! With a CA file the upstream's certificate is verified (WebPKI, against `server_name`). Without
//! one, STARTTLS only encrypts: the verifier below accepts any certificate but still checks the
//! handshake signatures, which is what Postfix's `may`/`encrypt` levels do. The upstream is the
//! organisation's own MTA, usually on the same host; authentication matters on the hop after it,
//! which the lane's own TLS policy governs.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::TlsConnector;

#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("{path}: {what}")]
    Pem { path: String, what: String },
}

/// Reads a PEM bundle of trusted CA certificates.
pub fn load_roots(path: &Path) -> Result<RootCertStore, CaError> {
    let err = |what: String| CaError::Pem {
        path: path.display().to_string(),
        what,
    };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| err(e.to_string()))? {
        let cert = cert.map_err(|e| err(e.to_string()))?;
        roots
            .add(cert)
            .map_err(|e| err(format!("not a usable CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(err("no PEM certificate found".into()));
    }
    Ok(roots)
}

/// A connector that verifies against `roots`, or only encrypts when `roots` is `None`.
pub fn connector(roots: Option<RootCertStore>) -> TlsConnector {
    let provider = crate::wire::stream::crypto_provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions");
    let config = match roots {
        Some(roots) => builder.with_root_certificates(roots).with_no_client_auth(),
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCert::encrypt_only(provider)))
            .with_no_client_auth(),
    };
    TlsConnector::from(Arc::new(config))
}

/// Accepts any certificate while still checking the handshake signatures, so the session is
/// encrypted even where the peer cannot be authenticated. It can also record what WebPKI says
/// of the certificate (the STARTTLS probe reports "encrypted" rather than failing).
#[derive(Debug)]
pub struct AcceptAnyCert {
    provider: Arc<CryptoProvider>,
    webpki: Option<Arc<WebPkiServerVerifier>>,
    verdict: Mutex<Option<Result<(), String>>>,
    chain: Mutex<Vec<CertificateDer<'static>>>,
}

impl AcceptAnyCert {
    pub fn encrypt_only(provider: Arc<CryptoProvider>) -> Self {
        AcceptAnyCert {
            provider,
            webpki: None,
            verdict: Mutex::new(None),
            chain: Mutex::new(Vec::new()),
        }
    }

    /// Also records WebPKI's verdict against `roots` for the server name.
    pub fn recording(
        provider: Arc<CryptoProvider>,
        roots: Arc<RootCertStore>,
    ) -> Result<Self, String> {
        let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .map_err(|e| format!("no usable trust roots: {e}"))?;
        Ok(AcceptAnyCert {
            provider,
            webpki: Some(webpki),
            verdict: Mutex::new(None),
            chain: Mutex::new(Vec::new()),
        })
    }

    /// WebPKI's verdict on the certificate seen, when recording and a handshake happened.
    pub fn verdict(&self) -> Option<Result<(), String>> {
        self.verdict
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl AcceptAnyCert {
    /// The certificates the server sent, leaf first (recorded only when recording).
    pub fn chain(&self) -> Vec<CertificateDer<'static>> {
        self.chain.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(webpki) = &self.webpki {
            let result = webpki
                .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
                .map(|_| ())
                .map_err(|e| e.to_string());
            *self.verdict.lock().unwrap_or_else(|p| p.into_inner()) = Some(result);
            let mut chain = vec![end_entity.clone().into_owned()];
            chain.extend(intermediates.iter().map(|c| c.clone().into_owned()));
            *self.chain.lock().unwrap_or_else(|p| p.into_inner()) = chain;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
