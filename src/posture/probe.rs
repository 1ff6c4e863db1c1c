//! The active STARTTLS probe of an MX host: does it offer STARTTLS, what does the handshake
//! negotiate, and is its certificate valid for the MX name under WebPKI?
//!
//! The probe completes the handshake whatever the certificate, recording WebPKI's verdict on
//! the side, so a host with a self-signed certificate shows up as "encrypted, not
//! authenticated" rather than as a failure. Handshake signatures are still checked. rustls
//! speaks only TLS 1.2 with ECDHE and AEAD ciphers and TLS 1.3: all "good" or "sufficient" under
//! the NCSC-NL TLS guidelines, so a host rustls cannot agree with offers nothing better than
//! "insufficient". The chain the server sent is kept, for DANE matching (`dane`).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::ServerName;
use tokio_rustls::TlsConnector;

use crate::wire::stream::TlsParams;
use crate::wire::tls::AcceptAnyCert;
use crate::wire::{Client, Endpoint, UpstreamError};

/// What the probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// TLS negotiated; `webpki` is Ok when the certificate is valid for the MX name; `chain` is
    /// what the server sent, leaf first (for DANE).
    Tls {
        params: TlsParams,
        webpki: Result<(), String>,
        chain: super::dane::Chain,
    },
    NoStartTls,
    /// No SMTP session at all (connection refused, timeout): says nothing about its TLS.
    Unreachable(String),
    /// An SMTP server that fails at TLS (handshake refused, nothing rustls accepts).
    Failed(String),
}

/// The STARTTLS probe, behind a trait so that unit tests can answer for MX hosts.
pub trait Prober: Sync {
    fn probe(
        &self,
        host: &str,
        ip: IpAddr,
        port: u16,
        roots: Arc<RootCertStore>,
        helo: &str,
    ) -> impl std::future::Future<Output = Probe> + Send;
}

/// The real probe: an SMTP session with STARTTLS.
pub struct StartTlsProber;

impl Prober for StartTlsProber {
    async fn probe(
        &self,
        host: &str,
        ip: IpAddr,
        port: u16,
        roots: Arc<RootCertStore>,
        helo: &str,
    ) -> Probe {
        probe(host, ip, port, roots, helo).await
    }
}

/// Mozilla's roots (webpki-roots) plus `extra`.
pub fn roots(extra: Option<RootCertStore>) -> RootCertStore {
    let mut roots = RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(extra) = extra {
        roots.roots.extend(extra.roots);
    }
    roots
}

/// Probes `host` (the MX name, for SNI and the certificate check) at `ip`:`port`.
pub async fn probe(
    host: &str,
    ip: IpAddr,
    port: u16,
    roots: Arc<RootCertStore>,
    helo: &str,
) -> Probe {
    let provider = crate::wire::stream::crypto_provider();
    let recording = match AcceptAnyCert::recording(provider.clone(), roots) {
        Ok(v) => Arc::new(v),
        Err(e) => return Probe::Failed(e),
    };
    let config =
        match ClientConfig::builder_with_provider(provider).with_safe_default_protocol_versions() {
            Ok(b) => b
                .dangerous()
                .with_custom_certificate_verifier(recording.clone())
                .with_no_client_auth(),
            Err(e) => return Probe::Failed(e.to_string()),
        };
    let Ok(server_name) = ServerName::try_from(host.to_string()) else {
        return Probe::Failed(format!("{host:?} is not a host name"));
    };
    let mx = Endpoint {
        host: ip.to_string(),
        port,
        connector: Some(TlsConnector::from(Arc::new(config))),
        server_name,
        tls_required: true,
        connect_timeout: Duration::from_secs(10),
        command_timeout: Duration::from_secs(30),
    };
    match Client::connect(&mx, helo).await {
        Ok(client) => {
            let params = client.tls_params();
            client.quit().await;
            let webpki = recording
                .verdict()
                .unwrap_or_else(|| Err("no certificate was checked".into()));
            let chain = recording.chain();
            match params {
                Some(params) => Probe::Tls {
                    params,
                    webpki,
                    chain,
                },
                None => Probe::Failed("TLS parameters unavailable".into()),
            }
        }
        Err(UpstreamError::NoStartTls) => Probe::NoStartTls,
        Err(UpstreamError::Tls(e)) => Probe::Failed(format!(
            "TLS handshake failed ({e}): no TLS 1.2 or 1.3 with ciphers the NCSC rates sufficient or better"
        )),
        Err(e @ (UpstreamError::Connect { .. } | UpstreamError::Timeout(..))) => {
            Probe::Unreachable(e.to_string())
        }
        Err(e) => Probe::Failed(e.to_string()),
    }
}
