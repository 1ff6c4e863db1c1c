//! The web sides' HTTPS listener (the portal's, the reviewers'): a certificate (the configured
//! `cert_file`/`key_file`, or a generated self-signed one with a warning), and a listener for
//! axum whose handshakes run apart from accepting, each bounded in time, so a client that
//! stalls its handshake holds up no one.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

use crate::wire::server_tls::{TlsError, load_cert_and_key, self_signed, server_config};

/// A handshake must finish within this.
const HANDSHAKE_TIME: Duration = Duration::from_secs(10);
/// Handshakes in progress at most; past it, new connections wait in the kernel's backlog.
const HANDSHAKES: usize = 256;

/// The acceptor for a web side named `side` ("portal", "web"): the configured certificate,
/// or a fresh self-signed one for `base_url`'s host.
pub fn acceptor(
    side: &str,
    cert_file: Option<&std::path::Path>,
    key_file: Option<&std::path::Path>,
    base_url: &str,
) -> Result<TlsAcceptor, TlsError> {
    let (certs, key) = match (cert_file, key_file) {
        (Some(cert), Some(key)) => load_cert_and_key(cert, key)?,
        _ => {
            let host = base_url
                .trim_start_matches("https://")
                .split([':', '/'])
                .next()
                .unwrap_or("localhost")
                .to_string();
            tracing::warn!(
                %host,
                "no {side}.cert_file configured: the {side} listener offers a generated \
                 self-signed certificate, which browsers refuse: configure a real one before \
                 people use it"
            );
            self_signed(&host)?
        }
    };
    let mut server = server_config(certs, key)?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(server)))
}

/// Accepted TLS connections for axum.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    pub fn new(listener: TcpListener, acceptor: TlsAcceptor, stop: CancellationToken) -> Self {
        let local = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let (tx, ready) = mpsc::channel(64);
        let permits = Arc::new(tokio::sync::Semaphore::new(HANDSHAKES));
        tokio::spawn(async move {
            loop {
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    return;
                };
                let accepted = tokio::select! {
                    a = listener.accept() => a,
                    _ = stop.cancelled() => return,
                };
                let (tcp, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: wait instead of spinning.
                        tracing::warn!(error = %e, "web: cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    let _permit = permit;
                    match tokio::time::timeout(HANDSHAKE_TIME, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "web: TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(%peer, "web: TLS handshake timed out"),
                    }
                });
            }
        });
        TlsListener { ready, local }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The accepting task ended (shutdown): wait for axum's graceful shutdown.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
