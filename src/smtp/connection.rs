//! One client connection: buffered reads with limits and timeouts, buffered replies.
//!
//! Replies are collected and flushed only when the client has nothing more buffered, which is
//! what makes PIPELINING (RFC 2920) efficient. The read buffer never holds more than one command
//! line plus one read, so a client cannot make a session grow without bound.
//!
//! Timeouts are deadlines for a whole unit (a command line, a line of content), not for each
//! read: a client trickling one byte at a time cannot keep a session open beyond them.

use std::time::Duration;

use tokio::time::Instant;

use bytes::{Buf, Bytes, BytesMut};
use memchr::memchr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsAcceptor;

use crate::wire::stream::Stream;

use super::body::DataDecoder;

const READ_SIZE: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("connection closed by the client")]
    Closed,
    #[error("timeout")]
    Timeout,
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A command line, or the news that one was too long (its bytes are discarded).
pub enum Line {
    Text(Bytes),
    TooLong,
}

pub struct Connection {
    stream: Option<Stream>,
    rbuf: BytesMut,
    wbuf: Vec<u8>,
    /// Inside an overlong line: drop bytes until its LF.
    discarding: bool,
}

impl Connection {
    pub fn new(stream: Stream) -> Self {
        Connection {
            stream: Some(stream),
            rbuf: BytesMut::with_capacity(READ_SIZE),
            wbuf: Vec::with_capacity(512),
            discarding: false,
        }
    }

    fn stream(&mut self) -> std::io::Result<&mut Stream> {
        self.stream
            .as_mut()
            .ok_or_else(|| std::io::Error::other("connection lost during TLS handshake"))
    }

    pub fn is_tls(&self) -> bool {
        self.stream.as_ref().is_some_and(Stream::is_tls)
    }

    pub fn tls_summary(&self) -> Option<String> {
        self.stream.as_ref().and_then(Stream::tls_summary)
    }

    /// Queues reply bytes; they go out at the next `flush`.
    pub fn queue(&mut self, bytes: &[u8]) {
        self.wbuf.extend_from_slice(bytes);
    }

    pub async fn flush(&mut self, timeout: Duration) -> std::io::Result<()> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        let out = std::mem::take(&mut self.wbuf);
        let stream = self.stream()?;
        let write = async {
            stream.write_all(&out).await?;
            stream.flush().await
        };
        tokio::time::timeout(timeout, write)
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "write timeout"))?
    }

    /// Whether a complete line is already buffered (then replies may wait: pipelining).
    pub fn has_buffered_line(&self) -> bool {
        !self.discarding && memchr(b'\n', &self.rbuf).is_some()
    }

    async fn fill(&mut self, deadline: Instant) -> Result<(), ReadError> {
        let mut rbuf = std::mem::take(&mut self.rbuf);
        rbuf.reserve(READ_SIZE);
        let stream = self.stream()?;
        let n = tokio::time::timeout_at(deadline, stream.read_buf(&mut rbuf))
            .await
            .map_err(|_| ReadError::Timeout);
        self.rbuf = rbuf;
        match n?? {
            0 => Err(ReadError::Closed),
            _ => Ok(()),
        }
    }

    /// Reads one line (up to and including LF), at most `max` bytes long; the whole line must
    /// arrive within `timeout`.
    pub async fn read_line(&mut self, max: usize, timeout: Duration) -> Result<Line, ReadError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(i) = memchr(b'\n', &self.rbuf) {
                let end = i + 1;
                if self.discarding || end > max {
                    self.rbuf.advance(end);
                    self.discarding = false;
                    return Ok(Line::TooLong);
                }
                return Ok(Line::Text(self.rbuf.split_to(end).freeze()));
            }
            if self.discarding || self.rbuf.len() > max {
                self.discarding = true;
                self.rbuf.clear();
            }
            self.fill(deadline).await?;
        }
    }

    /// Reads DATA content into `out` (dot-unstuffed), waiting until `deadline` at most. Returns
    /// true when the end marker was read.
    pub async fn read_data(
        &mut self,
        decoder: &mut DataDecoder,
        out: &mut Vec<u8>,
        deadline: Instant,
    ) -> Result<bool, ReadError> {
        loop {
            if decoder.decode(&mut self.rbuf, out) {
                return Ok(true);
            }
            if !out.is_empty() {
                return Ok(false);
            }
            self.fill(deadline).await?;
        }
    }

    /// Reads up to `max` raw bytes (a BDAT chunk's next piece), waiting until `deadline` at
    /// most.
    pub async fn read_raw(&mut self, max: usize, deadline: Instant) -> Result<Bytes, ReadError> {
        if self.rbuf.is_empty() {
            self.fill(deadline).await?;
        }
        let n = max.min(self.rbuf.len());
        Ok(self.rbuf.split_to(n).freeze())
    }

    /// Drops whatever the client sent that has not been read yet; returns how many bytes.
    /// Called at STARTTLS: bytes sent in plaintext must never be read as if they came over TLS.
    pub fn discard_input(&mut self) -> usize {
        let n = self.rbuf.len();
        self.rbuf.clear();
        self.discarding = false;
        n
    }

    /// Replaces the plaintext transport with TLS. On failure the connection is unusable.
    pub async fn start_tls(
        &mut self,
        acceptor: &TlsAcceptor,
        timeout: Duration,
    ) -> std::io::Result<()> {
        debug_assert!(self.rbuf.is_empty(), "plaintext carried into TLS");
        let Some(Stream::Plain(tcp)) = self.stream.take() else {
            return Err(std::io::Error::other(
                "STARTTLS on a connection that is not plaintext",
            ));
        };
        let tls = tokio::time::timeout(timeout, acceptor.accept(tcp))
            .await
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timeout")
            })??;
        self.stream = Some(Stream::Tls(Box::new(tokio_rustls::TlsStream::Server(tls))));
        self.rbuf.clear();
        Ok(())
    }

    pub async fn shutdown(&mut self) {
        if let Some(s) = self.stream.as_mut() {
            let _ = tokio::time::timeout(Duration::from_secs(5), s.shutdown()).await;
        }
    }
}
