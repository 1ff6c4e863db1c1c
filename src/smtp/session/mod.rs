//! One SMTP session: the RFC 5321 state machine, from greeting to QUIT.
//!
//! The order of events per transaction: MAIL and RCPT are checked as they come (access, limits,
//! syntax, and the target's word on each recipient); the content streams through the checker
//! into the spool; at the end of the data the transaction goes to the target and the client
//! gets the target's reply.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use smtp_proto::{MailFrom, RcptTo, Request};
use tokio_util::sync::CancellationToken;

use crate::spool::SpooledBody;
use crate::wire::Reply;

use super::body::BodyChecker;
use super::connection::{Connection, Line, ReadError};
use super::{Frontend, SessionFacts};

mod content;
mod tls_auth;

/// A client that closes the session this long after a positive reply has read it.
const CLOSED_AFTER_READING: std::time::Duration = std::time::Duration::from_secs(1);

struct Helo {
    name: String,
    esmtp: bool,
}

/// A transaction in progress (MAIL seen, content not yet complete).
struct Pending {
    id: String,
    mail_from: MailFrom<String>,
    rcpts: Vec<RcptTo<String>>,
    /// Content received so far by BDAT chunks.
    bdat: Option<(BodyChecker, SpooledBody)>,
}

enum Flow {
    Continue,
    Close,
}

pub struct Session {
    rt: Arc<Frontend>,
    conn: Connection,
    peer: SocketAddr,
    in_network: bool,
    shutdown: CancellationToken,
    helo: Option<Helo>,
    auth_user: Option<String>,
    tx: Option<Pending>,
    errors: usize,
    /// The transaction whose positive reply is queued but not yet flushed.
    unread: Option<String>,
}

/// A transaction id, like Postfix's queue id: ties log lines, audit records and quarantine
/// items of one message together.
pub fn new_transaction_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut raw = [0u8; 12];
    if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut raw).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        raw.copy_from_slice(&nanos.to_le_bytes()[..12]);
    }
    raw.iter()
        .map(|b| ALPHABET[(*b as usize) % ALPHABET.len()] as char)
        .collect()
}

impl Session {
    pub fn new(
        rt: Arc<Frontend>,
        conn: Connection,
        peer: SocketAddr,
        in_network: bool,
        shutdown: CancellationToken,
    ) -> Self {
        Session {
            rt,
            conn,
            peer,
            in_network,
            shutdown,
            helo: None,
            auth_user: None,
            tx: None,
            errors: 0,
            unread: None,
        }
    }

    fn hostname(&self) -> &str {
        &self.rt.config.server.hostname
    }

    /// Who is talking, as the target sees it.
    fn facts(&self) -> SessionFacts {
        let helo = self.helo.as_ref();
        SessionFacts {
            client_ip: self.peer.ip(),
            helo: helo.map_or_else(|| "unknown".to_string(), |h| h.name.clone()),
            esmtp: helo.is_some_and(|h| h.esmtp),
            tls: self.conn.tls_summary(),
            user: self.auth_user.clone(),
        }
    }

    /// Queues a reply to a command; 4xx and 5xx count towards the session's error limit.
    fn reply(&mut self, r: Reply) {
        if !r.is_positive() {
            self.errors += 1;
        }
        self.conn.queue(&r.to_bytes());
    }

    pub async fn run(mut self) {
        let greeting = Reply::plain(220, format!("{} ESMTP Sluis", self.hostname()));
        self.conn.queue(&greeting.to_bytes());
        let command_timeout = self.rt.config.timeouts.command;
        let shutdown = self.shutdown.clone();
        // A positive reply flushed while no command was waiting: the next command the client
        // sends is proof it read the reply. (A command pipelined behind the message may have
        // been sent before; it proves nothing.) So is a close well after it: a client that
        // timed out waiting closes before the reply arrives, while one that keeps the session
        // (Postfix's connection cache, which ends sessions without QUIT) has read it.
        let mut flushed: Option<(String, std::time::Instant)> = None;
        loop {
            if !self.conn.has_buffered_line() {
                if let Err(e) = self.conn.flush(command_timeout).await {
                    tracing::debug!(peer = %self.peer, error = %e, "write failed");
                    return;
                }
                if let Some(id) = self.unread.take() {
                    flushed = Some((id, std::time::Instant::now()));
                }
            }
            let max = self.rt.config.limits.command_line_length;
            let read = tokio::select! {
                r = self.conn.read_line(max, command_timeout) => r,
                _ = shutdown.cancelled(), if !self.conn.has_buffered_line() => {
                    let r = Reply::new(421, "4.3.2", format!("{} Service shutting down, try again later", self.hostname()));
                    self.conn.queue(&r.to_bytes());
                    break;
                }
            };
            if let Some((id, at)) = flushed.take() {
                let closed_later =
                    matches!(read, Err(ReadError::Closed)) && at.elapsed() >= CLOSED_AFTER_READING;
                if let Err(e) = &read {
                    tracing::debug!(%id, after = ?at.elapsed(), read = closed_later, error = ?e, "client left the session after a positive reply");
                }
                if read.is_ok() || closed_later {
                    self.rt.target.reply_read(&id);
                }
            }
            let flow = match read {
                Ok(Line::Text(line)) => self.command(line).await,
                Ok(Line::TooLong) => {
                    self.reply(Reply::new(500, "5.5.2", "Error: line too long"));
                    Flow::Continue
                }
                Err(ReadError::Timeout) => {
                    let r = Reply::new(
                        421,
                        "4.4.2",
                        format!("{} Error: timeout exceeded", self.hostname()),
                    );
                    self.conn.queue(&r.to_bytes());
                    break;
                }
                Err(ReadError::Closed) => break,
                Err(ReadError::Io(e)) => {
                    tracing::debug!(peer = %self.peer, error = %e, "read failed");
                    return;
                }
            };
            if matches!(flow, Flow::Close) {
                break;
            }
            if self.errors >= self.rt.config.limits.errors_per_session {
                let r = Reply::new(
                    421,
                    "4.7.0",
                    format!("{} Error: too many errors", self.hostname()),
                );
                self.conn.queue(&r.to_bytes());
                tracing::info!(peer = %self.peer, errors = self.errors, "too many errors, disconnecting");
                break;
            }
        }
        let _ = self.conn.flush(command_timeout).await;
        self.conn.shutdown().await;
    }

    async fn command(&mut self, line: Bytes) -> Flow {
        if line.contains(&0) {
            self.reply(Reply::new(500, "5.5.2", "Error: NUL character in command"));
            return Flow::Continue;
        }
        let eight_bit = !line.is_ascii();
        if eight_bit && std::str::from_utf8(&line).is_err() {
            self.reply(Reply::new(
                500,
                "5.5.2",
                "Error: 8-bit characters in command are not UTF-8",
            ));
            return Flow::Continue;
        }
        let request = match Request::parse(&mut line.iter()) {
            Ok(r) => r.into_owned(),
            Err(e) => {
                self.reply(parse_error_reply(e));
                return Flow::Continue;
            }
        };
        // RFC 6531: 8-bit octets are allowed only in the addresses of an SMTPUTF8 transaction.
        if eight_bit {
            let allowed = match &request {
                Request::Mail { from } => from.flags & smtp_proto::MAIL_SMTPUTF8 != 0,
                Request::Rcpt { .. } => self
                    .tx
                    .as_ref()
                    .is_some_and(|t| t.mail_from.flags & smtp_proto::MAIL_SMTPUTF8 != 0),
                _ => false,
            };
            if !allowed {
                let r = match request {
                    Request::Mail { .. } | Request::Rcpt { .. } => Reply::new(
                        553,
                        "5.6.7",
                        "Error: non-ASCII address requires the SMTPUTF8 parameter",
                    ),
                    _ => Reply::new(
                        500,
                        "5.5.2",
                        "Error: 8-bit characters are not allowed in this command",
                    ),
                };
                self.reply(r);
                return Flow::Continue;
            }
        }
        match request {
            Request::Ehlo { host } => self.ehlo(host, true),
            Request::Helo { host } => self.ehlo(host, false),
            Request::Mail { from } => self.mail(from),
            Request::Rcpt { to } => self.rcpt(to),
            Request::Data => return self.data().await,
            Request::Bdat {
                chunk_size,
                is_last,
            } => return self.bdat(chunk_size, is_last).await,
            Request::Rset => {
                self.tx = None;
                self.reply(Reply::new(250, "2.0.0", "Ok"));
            }
            Request::Noop { .. } => self.reply(Reply::new(250, "2.0.0", "Ok")),
            Request::Quit => {
                self.conn.queue(&Reply::new(221, "2.0.0", "Bye").to_bytes());
                return Flow::Close;
            }
            Request::Vrfy { .. } => {
                self.reply(Reply::new(502, "5.5.1", "VRFY command is disabled"))
            }
            Request::Expn { .. } => {
                self.reply(Reply::new(502, "5.5.1", "EXPN command is disabled"))
            }
            Request::Help { .. } => self.reply(Reply::new(
                214,
                "2.0.0",
                "Sluis mail gateway; commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT HELP STARTTLS AUTH",
            )),
            Request::StartTls => return self.starttls().await,
            Request::Auth {
                mechanism,
                initial_response,
            } => return self.auth(mechanism, initial_response).await,
            Request::Lhlo { .. }
            | Request::Etrn { .. }
            | Request::Atrn { .. }
            | Request::Burl { .. } => {
                self.reply(Reply::new(502, "5.5.1", "Error: command not implemented"))
            }
        }
        Flow::Continue
    }

    fn ehlo(&mut self, host: String, esmtp: bool) {
        self.tx = None;
        let hostname = self.hostname().to_string();
        self.helo = Some(Helo { name: host, esmtp });
        if !esmtp {
            self.reply(Reply::plain(250, hostname));
            return;
        }
        let cfg = &self.rt.config;
        let mut lines = vec![
            hostname,
            "PIPELINING".to_string(),
            format!("SIZE {}", cfg.limits.message_size),
        ];
        if !self.conn.is_tls() {
            lines.push("STARTTLS".into());
        }
        if cfg.auth.enabled && self.conn.is_tls() {
            lines.push("AUTH PLAIN LOGIN".into());
        }
        lines.extend(
            [
                "ENHANCEDSTATUSCODES",
                "8BITMIME",
                "DSN",
                "SMTPUTF8",
                "CHUNKING",
            ]
            .map(String::from),
        );
        self.reply(Reply::multiline(250, lines));
    }

    fn mail(&mut self, from: MailFrom<String>) {
        use smtp_proto::*;
        if self.helo.is_none() {
            return self.reply(Reply::new(503, "5.5.1", "Error: send HELO/EHLO first"));
        }
        if self.tx.is_some() {
            return self.reply(Reply::new(503, "5.5.1", "Error: nested MAIL command"));
        }
        let unsupported = [
            (MAIL_BODY_BINARYMIME, "BODY=BINARYMIME"),
            (MAIL_REQUIRETLS, "REQUIRETLS"),
            (MAIL_CONPERM, "CONPERM"),
            (MAIL_BY_NOTIFY | MAIL_BY_RETURN | MAIL_BY_TRACE, "BY"),
        ];
        for (flag, name) in unsupported {
            if from.flags & flag != 0 {
                return self.reply(Reply::new(
                    555,
                    "5.5.4",
                    format!("Unsupported option: {name}"),
                ));
            }
        }
        if from.hold_for != 0
            || from.hold_until != 0
            || from.mtrk.is_some()
            || from.trans_id.is_some()
        {
            return self.reply(Reply::new(555, "5.5.4", "Unsupported option"));
        }
        let max = self.rt.config.limits.message_size;
        if from.size > max {
            return self.reply(Reply::new(
                552,
                "5.3.4",
                format!("Message size exceeds fixed limit of {max} bytes"),
            ));
        }
        self.tx = Some(Pending {
            id: new_transaction_id(),
            mail_from: from,
            rcpts: Vec::new(),
            bdat: None,
        });
        self.reply(Reply::new(250, "2.1.0", "Ok"));
    }

    fn rcpt(&mut self, to: RcptTo<String>) {
        let limit = self.rt.config.limits.recipients;
        let permitted = self.in_network || self.auth_user.is_some();
        let Some(tx) = self.tx.as_ref() else {
            return self.reply(Reply::new(503, "5.5.1", "Error: need MAIL command"));
        };
        if !permitted {
            tracing::warn!(peer = %self.peer, "relay attempt refused: client not in allow_networks and not authenticated");
            return self.reply(Reply::new(
                554,
                "5.7.1",
                format!("<{}>: Relay access denied", to.address),
            ));
        }
        if tx.rcpts.len() >= limit {
            // RFC 5321 4.5.3.1.8: the client sends the rest in another transaction. Not an
            // error of the client's, so it does not count towards the error limit.
            let r = Reply::new(452, "4.5.3", "Error: too many recipients");
            self.conn.queue(&r.to_bytes());
            return;
        }
        if to.address.is_empty() {
            return self.reply(Reply::new(501, "5.1.3", "Bad recipient address syntax"));
        }
        if let Err(reply) = self.rt.target.check_recipient(&self.facts(), &to.address) {
            return self.reply(reply);
        }
        let Some(tx) = self.tx.as_mut() else {
            return;
        };
        tx.rcpts.push(to);
        self.reply(Reply::new(250, "2.1.5", "Ok"));
    }
}

fn parse_error_reply(e: smtp_proto::Error) -> Reply {
    use smtp_proto::Error;
    match e {
        Error::UnknownCommand => Reply::new(500, "5.5.2", "Error: command not recognized"),
        Error::InvalidSenderAddress => Reply::new(501, "5.1.7", "Bad sender address syntax"),
        Error::InvalidRecipientAddress => Reply::new(501, "5.1.3", "Bad recipient address syntax"),
        Error::SyntaxError { syntax } => Reply::new(501, "5.5.4", format!("Syntax: {syntax}")),
        Error::InvalidParameter { param } => {
            Reply::new(501, "5.5.4", format!("Invalid {param} parameter"))
        }
        Error::UnsupportedParameter { param } => {
            let param: String = param
                .chars()
                .filter(|c| c.is_ascii_graphic())
                .take(64)
                .collect();
            Reply::new(555, "5.5.4", format!("Unsupported option: {param}"))
        }
        Error::ResponseTooLong => Reply::new(500, "5.5.2", "Error: line too long"),
        Error::NeedsMoreData { .. } | Error::InvalidResponse { .. } => {
            Reply::new(500, "5.5.2", "Error: syntax error")
        }
    }
}
