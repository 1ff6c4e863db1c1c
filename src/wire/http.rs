//! A small HTTP/1.1 client for the few HTTPS peers Sluis calls (an SMS provider, an OpenID
//! provider): one connection per request, TLS through our rustls (ring) with the given roots,
//! an answer read up to a bound, everything within a time limit.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use rustls::RootCertStore;
use rustls_pki_types::ServerName;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{0}")]
    Request(String),
    #[error("cannot connect to {host}:{port}: {source}")]
    Connect {
        host: String,
        port: u16,
        source: std::io::Error,
    },
    #[error("TLS with {host}: {source}")]
    Tls {
        host: String,
        source: std::io::Error,
    },
    #[error("HTTP: {0}")]
    Http(String),
    #[error("no answer within {0}s")]
    Timeout(u64),
    #[error("the answer is larger than {0} bytes")]
    TooLarge(usize),
}

/// Where requests may go and what they may cost.
#[derive(Clone)]
pub struct HttpClient {
    pub roots: Arc<RootCertStore>,
    pub timeout: Duration,
    /// An answer's body at most.
    pub limit: usize,
}

impl HttpClient {
    /// Sends `request` (an absolute URI) and reads the answer.
    pub async fn send(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> Result<http::Response<Vec<u8>>, HttpError> {
        let secs = self.timeout.as_secs();
        tokio::time::timeout(self.timeout, self.exchange(request))
            .await
            .map_err(|_| HttpError::Timeout(secs))?
    }

    async fn exchange(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> Result<http::Response<Vec<u8>>, HttpError> {
        let (mut parts, body) = request.into_parts();
        let uri = parts.uri.clone();
        let host = uri
            .host()
            .ok_or_else(|| HttpError::Request(format!("{uri}: no host")))?
            .trim_matches(['[', ']'])
            .to_string();
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(HttpError::Request(format!("{uri}: not http(s)"))),
        };
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        // HTTP/1.1 wants the path in the request line and the authority in Host.
        parts.uri = uri
            .path_and_query()
            .map_or("/", |pq| pq.as_str())
            .parse()
            .map_err(|e: http::uri::InvalidUri| HttpError::Request(e.to_string()))?;
        if let Some(authority) = uri.authority() {
            let value = http::HeaderValue::from_str(authority.as_str())
                .map_err(|e| HttpError::Request(e.to_string()))?;
            parts.headers.insert(http::header::HOST, value);
        }
        parts.headers.insert(
            http::header::USER_AGENT,
            http::HeaderValue::from_static(concat!("sluis/", env!("CARGO_PKG_VERSION"))),
        );
        let request = http::Request::from_parts(parts, Full::new(Bytes::from(body)));
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|source| HttpError::Connect {
                host: host.clone(),
                port,
                source,
            })?;
        if !https {
            return self.over(hyper_util::rt::TokioIo::new(tcp), request).await;
        }
        let config =
            rustls::ClientConfig::builder_with_provider(crate::wire::stream::crypto_provider())
                .with_safe_default_protocol_versions()
                .map_err(|e| HttpError::Request(e.to_string()))?
                .with_root_certificates(self.roots.clone())
                .with_no_client_auth();
        let name = ServerName::try_from(host.clone())
            .map_err(|_| HttpError::Request(format!("{host:?} is not a host name")))?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|source| HttpError::Tls { host, source })?;
        self.over(hyper_util::rt::TokioIo::new(tls), request).await
    }

    async fn over<T>(
        &self,
        io: T,
        request: http::Request<Full<Bytes>>,
    ) -> Result<http::Response<Vec<u8>>, HttpError>
    where
        T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| HttpError::Http(e.to_string()))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| HttpError::Http(e.to_string()))?;
        let (parts, body) = response.into_parts();
        let bytes = Limited::new(body, self.limit)
            .collect()
            .await
            .map_err(|_| HttpError::TooLarge(self.limit))?
            .to_bytes();
        Ok(http::Response::from_parts(parts, bytes.to_vec()))
    }
}
