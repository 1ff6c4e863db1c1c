//! A small SMTP client: for the upstream lanes, the delivery status notices and the STARTTLS
//! probe of recipients' MX hosts alike.
//!
//! Sluis needs what general-purpose clients do not give: a reply per recipient, ESMTP parameters
//! passed through verbatim, the body streamed from the spool with dot-stuffing, and a TLS
//! connector chosen per lane. smtp-proto (Stalwart's fuzzed parser) parses the replies and the
//! EHLO capabilities; this module only moves bytes and keeps the RFC 5321 §4.5.3.2 timeouts.

use std::time::Duration;

use smtp_proto::response::parser::ResponseReceiver;
use smtp_proto::{EhloResponse, Response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use rustls_pki_types::ServerName;
use tokio_rustls::TlsConnector;

use super::stream::Stream;

/// Where and how to connect: an upstream lane, or an MX host being probed.
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    /// `None` when the session never uses STARTTLS.
    pub connector: Option<TlsConnector>,
    pub server_name: ServerName<'static>,
    /// Fail when the server does not offer STARTTLS (instead of going on in the clear).
    pub tls_required: bool,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
}

/// Splits `host:port` or `[v6]:port`.
pub fn parse_host_port(s: &str) -> Result<(String, u16), String> {
    let bad = || format!("{s:?} is not host:port");
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, p) = rest.split_once("]:").ok_or_else(bad)?;
        (h, p)
    } else {
        s.rsplit_once(':').ok_or_else(bad)?
    };
    if host.is_empty() || host.contains(':') && !s.starts_with('[') {
        return Err(bad());
    }
    let port: u16 = port.parse().map_err(|_| bad())?;
    if port == 0 {
        return Err(bad());
    }
    Ok((host.to_string(), port))
}

/// The longest reply accepted from an upstream, all lines together.
const MAX_REPLY: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("no reply within {0:?} ({1})")]
    Timeout(Duration, &'static str),
    #[error("connection lost: {0}")]
    Io(#[from] std::io::Error),
    #[error("unintelligible reply: {0}")]
    Protocol(String),
    #[error("STARTTLS required, but the upstream does not offer it")]
    NoStartTls,
    #[error("TLS handshake failed: {0}")]
    Tls(std::io::Error),
    #[error("upstream refused: {} {}", .0.code, .0.message)]
    Refused(Response<String>),
}

pub struct Client {
    stream: Stream,
    buf: Vec<u8>,
    pub caps: EhloResponse<String>,
}

async fn within<T>(
    d: Duration,
    what: &'static str,
    f: impl std::future::Future<Output = Result<T, UpstreamError>>,
) -> Result<T, UpstreamError> {
    tokio::time::timeout(d, f)
        .await
        .map_err(|_| UpstreamError::Timeout(d, what))?
}

impl Client {
    /// Connects, reads the greeting, says EHLO and negotiates STARTTLS as the lane requires.
    pub async fn connect(lane: &Endpoint, helo: &str) -> Result<Client, UpstreamError> {
        let cfg = lane;
        let addr = format!("{}:{}", lane.host, lane.port);
        // A (host, port) pair: names, IPv4 and IPv6 literals alike (no brackets needed).
        let tcp = tokio::time::timeout(
            cfg.connect_timeout,
            TcpStream::connect((lane.host.as_str(), lane.port)),
        )
        .await
        .map_err(|_| UpstreamError::Timeout(cfg.connect_timeout, "connect"))?
        .map_err(|source| UpstreamError::Connect {
            addr: addr.clone(),
            source,
        })?;
        let _ = tcp.set_nodelay(true);
        let mut client = Client {
            stream: Stream::Plain(tcp),
            buf: Vec::new(),
            caps: EhloResponse::default(),
        };
        let greeting = client.read_reply(cfg.command_timeout, "greeting").await?;
        if greeting.code != 220 {
            return Err(UpstreamError::Refused(greeting));
        }
        client.ehlo(helo, cfg.command_timeout).await?;

        let offered = client.caps.has_capability(smtp_proto::EXT_START_TLS);
        match (lane.connector.as_ref(), offered) {
            (None, _) => {}
            (Some(_), false) if !lane.tls_required => {}
            (Some(_), false) => return Err(UpstreamError::NoStartTls),
            (Some(connector), true) => {
                let r = client
                    .command(b"STARTTLS\r\n", cfg.command_timeout, "STARTTLS")
                    .await?;
                if r.code != 220 {
                    return Err(UpstreamError::Refused(r));
                }
                let Stream::Plain(tcp) = client.stream else {
                    return Err(UpstreamError::Protocol("STARTTLS twice".into()));
                };
                let tls = tokio::time::timeout(
                    cfg.command_timeout,
                    connector.connect(lane.server_name.clone(), tcp),
                )
                .await
                .map_err(|_| UpstreamError::Timeout(cfg.command_timeout, "TLS handshake"))?
                .map_err(UpstreamError::Tls)?;
                client.stream = Stream::Tls(Box::new(tokio_rustls::TlsStream::Client(tls)));
                client.buf.clear();
                client.ehlo(helo, cfg.command_timeout).await?;
            }
        }
        Ok(client)
    }

    pub fn is_tls(&self) -> bool {
        self.stream.is_tls()
    }

    pub fn tls_params(&self) -> Option<super::stream::TlsParams> {
        self.stream.tls_params()
    }

    async fn ehlo(&mut self, helo: &str, timeout: Duration) -> Result<(), UpstreamError> {
        self.send(format!("EHLO {helo}\r\n").as_bytes()).await?;
        let raw = within(timeout, "EHLO", self.read_raw_reply()).await?;
        if !raw.starts_with(b"250") {
            let r = parse_reply(&raw)?;
            return Err(UpstreamError::Refused(r));
        }
        self.caps = EhloResponse::parse(&mut raw.iter())
            .map_err(|e| UpstreamError::Protocol(format!("EHLO reply: {e:?}")))?;
        Ok(())
    }

    pub async fn send(&mut self, bytes: &[u8]) -> Result<(), UpstreamError> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await?;
        Ok(())
    }

    /// Writes without flushing, for data blocks.
    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), UpstreamError> {
        self.stream.write_all(bytes).await?;
        Ok(())
    }

    pub async fn flush(&mut self) -> Result<(), UpstreamError> {
        self.stream.flush().await?;
        Ok(())
    }

    pub async fn command(
        &mut self,
        line: &[u8],
        timeout: Duration,
        what: &'static str,
    ) -> Result<Response<String>, UpstreamError> {
        self.send(line).await?;
        self.read_reply(timeout, what).await
    }

    pub async fn read_reply(
        &mut self,
        timeout: Duration,
        what: &'static str,
    ) -> Result<Response<String>, UpstreamError> {
        let raw = within(timeout, what, self.read_raw_reply()).await?;
        parse_reply(&raw)
    }

    /// The bytes of one complete reply: lines up to the one with a space after the code.
    async fn read_raw_reply(&mut self) -> Result<Vec<u8>, UpstreamError> {
        let mut start = 0;
        loop {
            while let Some(nl) = memchr::memchr(b'\n', &self.buf[start..]) {
                let line = &self.buf[start..start + nl + 1];
                start += nl + 1;
                if line.len() < 4 || line[3] != b'-' {
                    return Ok(self.buf.drain(..start).collect());
                }
            }
            if self.buf.len() > MAX_REPLY {
                return Err(UpstreamError::Protocol("reply too long".into()));
            }
            // Straight into the buffer's spare room: a 4 KiB array here was zeroed for every
            // read and lived in (and was moved with) every future awaiting a reply.
            self.buf.reserve(4096);
            let n = self.stream.read_buf(&mut self.buf).await?;
            if n == 0 {
                return Err(UpstreamError::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
        }
    }

    /// Says QUIT without waiting long for the answer: the transaction is already settled.
    pub async fn quit(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            self.send(b"QUIT\r\n").await?;
            self.read_raw_reply().await
        })
        .await;
        let _ = self.stream.shutdown().await;
    }
}

fn parse_reply(raw: &[u8]) -> Result<Response<String>, UpstreamError> {
    ResponseReceiver::default()
        .parse(&mut raw.iter())
        .map_err(|e| UpstreamError::Protocol(format!("{e:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_forms() {
        assert_eq!(
            parse_host_port("127.0.0.1:25"),
            Ok(("127.0.0.1".into(), 25))
        );
        assert_eq!(parse_host_port("[::1]:10025"), Ok(("::1".into(), 10025)));
        assert_eq!(parse_host_port("mx.test:587"), Ok(("mx.test".into(), 587)));
        assert!(parse_host_port("mx.test").is_err());
        assert!(parse_host_port("::1:25").is_err());
        assert!(parse_host_port("host:0").is_err());
        assert!(parse_host_port(":25").is_err());
    }
}
