//! A TCP stream that may have been upgraded to TLS, used by both the inbound server and the
//! upstream client so that STARTTLS can replace the transport in place.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// The parameters a TLS handshake settled on.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TlsParams {
    pub version: String,
    pub cipher: String,
    pub group: Option<String>,
}

pub enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::TlsStream<TcpStream>>),
}

impl Stream {
    pub fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }

    /// What the TLS handshake negotiated.
    pub fn tls_params(&self) -> Option<TlsParams> {
        let Stream::Tls(s) = self else { return None };
        let conn = s.get_ref().1;
        Some(TlsParams {
            version: conn
                .protocol_version()?
                .as_str()?
                .replace("TLSv1_", "TLSv1."),
            cipher: conn
                .negotiated_cipher_suite()?
                .suite()
                .as_str()?
                .to_string(),
            group: conn
                .negotiated_key_exchange_group()
                .map(|g| format!("{:?}", g.name())),
        })
    }

    /// Negotiated protocol version and cipher suite, for logs and the `Received:` header.
    pub fn tls_summary(&self) -> Option<String> {
        let Stream::Tls(s) = self else { return None };
        let conn = s.get_ref().1;
        let version = conn
            .protocol_version()?
            .as_str()?
            .replace("TLSv1_", "TLSv1.");
        let suite = conn
            .negotiated_cipher_suite()?
            .suite()
            .as_str()?
            .to_string();
        Some(format!("{version} with cipher {suite}"))
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The one crypto provider of the process: ring, named explicitly because rustls panics on the
/// implicit default when more than one provider is compiled in.
pub fn crypto_provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(rustls::crypto::ring::default_provider())
}
