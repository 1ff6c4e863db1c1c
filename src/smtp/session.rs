//! One SMTP session: the RFC 5321 state machine, from greeting to QUIT.
//!
//! The order of events per transaction: MAIL and RCPT are checked as they come (access, limits,
//! syntax); the content streams through the checker into the spool; at the end of the data the
//! transaction is relayed and the client gets the upstream's verdict, never a 250 of our own
//! before the upstream has taken the message.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use smtp_proto::{MailFrom, RcptTo, Request};
use tokio_util::sync::CancellationToken;

use crate::posture::domain_of;
use crate::relay::received::Trace;
use crate::relay::{self, Envelope};
use crate::spool::SpooledBody;

use super::Runtime;
use super::auth;
use super::body::{BodyChecker, BodyProblem, DataDecoder};
use super::connection::{Connection, Line, ReadError};
use super::reply::Reply;

struct Helo {
    name: String,
    esmtp: bool,
}

struct Transaction {
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
    rt: Arc<Runtime>,
    conn: Connection,
    peer: SocketAddr,
    in_network: bool,
    shutdown: CancellationToken,
    helo: Option<Helo>,
    auth_user: Option<String>,
    tx: Option<Transaction>,
    errors: usize,
}

/// The refusal of an automated forward, as an SMTP response (also used in the DSN).
fn forward_refusal(why: &str, signals: &[&str]) -> smtp_proto::Response<String> {
    smtp_proto::Response {
        code: 550,
        esc: [5, 7, 1],
        message: format!(
            "Automated forward refused: the recipient's domain {why} (signals: {}). NTA 7516 \
             allows automatic forwarding only to the organisation's own domains; remove the \
             forwarding rule or ask your mail administrator",
            signals.join(", ")
        ),
    }
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
        rt: Arc<Runtime>,
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
        }
    }

    fn hostname(&self) -> &str {
        &self.rt.config.server.hostname
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
        loop {
            if !self.conn.has_buffered_line()
                && let Err(e) = self.conn.flush(command_timeout).await
            {
                tracing::debug!(peer = %self.peer, error = %e, "write failed");
                return;
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
        self.tx = Some(Transaction {
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
        let Some(tx) = self.tx.as_mut() else {
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
            return self.reply(Reply::new(452, "4.5.3", "Error: too many recipients"));
        }
        if to.address.is_empty() {
            return self.reply(Reply::new(501, "5.1.3", "Bad recipient address syntax"));
        }
        // A listed domain whose ownership proof failed may belong to someone else now: refuse
        // it here, per recipient, before any content is sent (DESIGN §7 rule 2).
        let domain = domain_of(&to.address);
        if self.rt.config.ownership.refuse_lapsed
            && self.rt.classifier.is_listed(&domain)
            && !self.rt.ownership.is_proven(&domain)
        {
            tracing::warn!(peer = %self.peer, %domain, "recipient refused: domain ownership lapsed");
            crate::metrics::recipient_refused("lapsed-domain");
            return self.reply(Reply::new(
                550,
                "5.7.1",
                format!(
                    "<{}>: Recipient refused: the ownership proof of {domain} has lapsed, so the \
                     domain may no longer belong to the intended organisation; mail to it is held \
                     back until the proof returns (ask your mail administrator)",
                    to.address
                ),
            ));
        }
        tx.rcpts.push(to);
        self.reply(Reply::new(250, "2.1.5", "Ok"));
    }

    /// Checks that a transaction can take content; the error reply otherwise.
    fn ready_for_content(&self) -> Result<(), Reply> {
        match &self.tx {
            None => Err(Reply::new(503, "5.5.1", "Error: need MAIL command")),
            Some(tx) if tx.rcpts.is_empty() => {
                Err(Reply::new(554, "5.5.1", "Error: no valid recipients"))
            }
            Some(_) => Ok(()),
        }
    }

    fn new_body(&self) -> (BodyChecker, SpooledBody) {
        let l = &self.rt.config.limits;
        (
            BodyChecker::new(l.message_size, l.text_line_length),
            SpooledBody::new(self.rt.config.server.spool_dir.clone(), l.memory_buffer),
        )
    }

    async fn data(&mut self) -> Flow {
        if let Err(r) = self.ready_for_content() {
            self.reply(r);
            return Flow::Continue;
        }
        if self.tx.as_ref().is_some_and(|t| t.bdat.is_some()) {
            self.reply(Reply::new(503, "5.5.1", "Error: DATA after BDAT"));
            return Flow::Continue;
        }
        self.conn
            .queue(&Reply::plain(354, "End data with <CR><LF>.<CR><LF>").to_bytes());
        let timeout = self.rt.config.timeouts.data_block;
        if self.conn.flush(timeout).await.is_err() {
            return Flow::Close;
        }
        let (mut checker, mut body) = self.new_body();
        let mut decoder = DataDecoder::default();
        let mut content = Vec::with_capacity(16 * 1024);
        let mut store_error = None;
        loop {
            content.clear();
            let ended = match self
                .conn
                .read_data(&mut decoder, &mut content, timeout)
                .await
            {
                Ok(ended) => ended,
                Err(e) => return self.lost_during_data(e),
            };
            if checker.check(&content)
                && store_error.is_none()
                && let Err(e) = body.write(&content).await
            {
                store_error = Some(e);
            }
            if ended {
                break;
            }
        }
        self.finish_message(checker, body, store_error).await
    }

    fn lost_during_data(&mut self, e: ReadError) -> Flow {
        if matches!(e, ReadError::Timeout) {
            let r = Reply::new(
                421,
                "4.4.2",
                format!("{} Error: timeout exceeded", self.hostname()),
            );
            self.conn.queue(&r.to_bytes());
        }
        let id = self.tx.take().map(|t| t.id).unwrap_or_default();
        tracing::info!(%id, peer = %self.peer, error = %e, "client lost during message data; nothing relayed");
        Flow::Close
    }

    async fn bdat(&mut self, size: usize, last: bool) -> Flow {
        // The chunk's bytes follow the command whatever we think of it: read them all, or the
        // next "command" would be message content.
        let ready = self.ready_for_content();
        if ready.is_ok() && self.tx.as_ref().is_some_and(|t| t.bdat.is_none()) {
            let fresh = self.new_body();
            if let Some(tx) = self.tx.as_mut() {
                tx.bdat = Some(fresh);
            }
        }
        let timeout = self.rt.config.timeouts.data_block;
        let mut left = size;
        let mut store_error = None;
        while left > 0 {
            let chunk = match self.conn.read_raw(left, timeout).await {
                Ok(c) => c,
                Err(e) => return self.lost_during_data(e),
            };
            left -= chunk.len();
            if let Some((checker, body)) = self.tx.as_mut().and_then(|t| t.bdat.as_mut())
                && checker.check(&chunk)
                && store_error.is_none()
                && let Err(e) = body.write(&chunk).await
            {
                store_error = Some(e);
            }
        }
        if let Err(r) = ready {
            self.reply(r);
            return Flow::Continue;
        }
        let too_big = self
            .tx
            .as_ref()
            .and_then(|t| t.bdat.as_ref())
            .is_some_and(|(c, _)| c.problem() == Some(BodyProblem::TooBig));
        if !last && !too_big && store_error.is_none() {
            self.reply(Reply::new(250, "2.0.0", format!("{size} bytes received")));
            return Flow::Continue;
        }
        let Some((checker, body)) = self.tx.as_mut().and_then(|t| t.bdat.take()) else {
            return Flow::Continue;
        };
        self.finish_message(checker, body, store_error).await
    }

    /// Ends a transaction: refuses broken content, otherwise relays and passes on the verdict.
    async fn finish_message(
        &mut self,
        checker: BodyChecker,
        mut body: SpooledBody,
        store_error: Option<std::io::Error>,
    ) -> Flow {
        let Some(tx) = self.tx.take() else {
            return Flow::Continue;
        };
        let size = checker.size();
        let verdict = match checker.finish() {
            Err(problem) => Err(problem_reply(problem, &self.rt.config.limits)),
            Ok(_) => match store_error {
                Some(e) => {
                    tracing::error!(id = %tx.id, error = %e, "cannot spool message body");
                    Err(Reply::new(
                        451,
                        "4.3.0",
                        "Local error while storing the message, try again later",
                    ))
                }
                None => Ok(()),
            },
        };
        let reply = match verdict {
            Err(reply) => {
                crate::metrics::message(reply.code, "message-format");
                reply
            }
            Ok(()) => {
                let inspection = self.inspect(&mut body, &tx.id).await;
                let signals = self.forward_signals(&tx.mail_from.address, inspection.as_ref());
                let refusals = if self.rt.config.forwards.refuse_to_unmanaged && !signals.is_empty()
                {
                    self.forward_refusals(&tx.rcpts)
                } else {
                    Vec::new()
                };
                let mut env = Envelope {
                    id: tx.id.clone(),
                    mail_from: tx.mail_from,
                    rcpts: Vec::new(),
                };
                let mut refused = Vec::new();
                for (i, rcpt) in tx.rcpts.into_iter().enumerate() {
                    match refusals.iter().find(|(r, _)| *r == i) {
                        Some((_, why)) => refused.push((rcpt, forward_refusal(why, &signals))),
                        None => env.rcpts.push(rcpt),
                    }
                }
                let (reply, lane, rule) = if env.rcpts.is_empty() {
                    let (rcpt, response) = &refused[0];
                    let mut reply = relay::from_upstream(response);
                    reply.lines[0] = format!("<{}>: {}", rcpt.address, reply.lines[0]);
                    (reply, None, "automated-forward")
                } else {
                    let lane = self.rt.lanes.default_lane();
                    let trace = self.trace_header(&env);
                    let reply =
                        relay::relay(&lane, self.hostname(), &env, &trace, &mut body, &refused)
                            .await;
                    (reply, Some(lane), "relay")
                };
                crate::metrics::message(reply.code, rule);
                tracing::info!(
                    id = %env.id,
                    client = %self.peer.ip(),
                    user = self.auth_user.as_deref().unwrap_or("-"),
                    from_domain = domain_of(&env.mail_from.address),
                    rcpt_domains = %env.rcpts.iter().map(|r| domain_of(&r.address)).collect::<Vec<_>>().join(","),
                    rcpts = env.rcpts.len(),
                    refused_domains = %refused.iter().map(|(r, _)| domain_of(&r.address)).collect::<Vec<_>>().join(","),
                    refused = refused.len(),
                    size,
                    lane = %lane.map(|l| l.name.clone()).unwrap_or_else(|| "-".into()),
                    status = reply.code,
                    rule,
                    forward = %signals.join(","),
                    sensitive = inspection.as_ref().map(|i| i.sensitive),
                    score = inspection.as_ref().map(|i| i.score),
                    detectors = %inspection.as_ref().map(|i| i.detectors().join(",")).unwrap_or_default(),
                    uninspectable = inspection.as_ref().map(|i| i.uninspectable()),
                    "transaction"
                );
                reply
            }
        };
        if !reply.is_positive() && !reply.is_transient() {
            // Code and status only: reply texts can name recipients.
            tracing::info!(id = %tx.id, client = %self.peer.ip(), size, status = reply.code, enhanced = %reply.status, "message refused");
        }
        // The verdict of a whole message is not a protocol error of the client.
        self.conn.queue(&reply.to_bytes());
        Flow::Continue
    }

    fn trace_header(&self, env: &Envelope) -> Vec<u8> {
        let tls = self.conn.tls_summary();
        let helo = self.helo.as_ref();
        Trace {
            helo: helo.map(|h| h.name.as_str()).unwrap_or("unknown"),
            client_ip: self.peer.ip(),
            hostname: self.hostname(),
            esmtp: helo.is_some_and(|h| h.esmtp),
            tls: tls.as_deref(),
            authenticated: self.auth_user.is_some(),
            id: &env.id,
            single_recipient: match env.rcpts.as_slice() {
                [one] => Some(one.address.as_str()),
                _ => None,
            },
        }
        .header()
    }

    /// All signs of an automated forward: the message's headers and its envelope.
    fn forward_signals(
        &self,
        envelope_from: &str,
        inspection: Option<&crate::inspect::Inspection>,
    ) -> Vec<&'static str> {
        let Some(i) = inspection else {
            return Vec::new();
        };
        let from = i.header_from.as_deref();
        let from_is_managed = from.is_some_and(|f| self.rt.classifier.is_managed(&domain_of(f)));
        let mut signals = i.forward.clone();
        signals.extend(crate::inspect::forward::envelope_signals(
            envelope_from,
            from,
            from_is_managed,
        ));
        signals
    }

    /// Recipients an automated forward may not go to, with why: only proven managed domains
    /// may receive one (DESIGN §7 rule 1).
    fn forward_refusals(&self, rcpts: &[RcptTo<String>]) -> Vec<(usize, &'static str)> {
        use crate::posture::RecipientClass;
        rcpts
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                let domain = domain_of(&r.address);
                let why = match self.rt.classifier.class_of_domain(&domain) {
                    RecipientClass::Managed if self.rt.ownership.is_proven(&domain) => return None,
                    RecipientClass::Managed => {
                        "is a managed domain whose ownership proof has lapsed"
                    }
                    RecipientClass::Partner => {
                        "is a partner domain, not one this organisation manages"
                    }
                    RecipientClass::Personal => "is a personal mailbox domain",
                    RecipientClass::Unmanaged => "is not a domain this organisation manages",
                };
                Some((i, why))
            })
            .collect()
    }

    /// Inspects the message as `sluis scan` does. The policy will decide on the result; for
    /// now it is logged (detector names and score only) and counted.
    async fn inspect(
        &self,
        body: &mut SpooledBody,
        id: &str,
    ) -> Option<crate::inspect::Inspection> {
        if let Some(result) = self.rt.inspector.too_large(body.len()) {
            crate::metrics::inspected(&result, std::time::Duration::ZERO);
            return Some(result);
        }
        let _slot = self.rt.inspect_slots.clone().acquire_owned().await.ok()?;
        let raw = match body.read_all().await {
            Ok(raw) => raw,
            Err(e) => {
                tracing::error!(%id, error = %e, "cannot read the spooled message for inspection");
                return None;
            }
        };
        let inspector = self.rt.inspector.clone();
        let started = std::time::Instant::now();
        let result = tokio::task::spawn_blocking(move || inspector.inspect(&raw))
            .await
            .ok()?;
        crate::metrics::inspected(&result, started.elapsed());
        Some(result)
    }

    async fn starttls(&mut self) -> Flow {
        if self.conn.is_tls() {
            self.reply(Reply::new(503, "5.5.1", "Error: TLS already active"));
            return Flow::Continue;
        }
        // RFC 3207 §4.2 / CVE-2011-0411: anything pipelined after STARTTLS was sent in the
        // clear and must not be executed inside the TLS session.
        let dropped = self.conn.discard_input();
        if dropped > 0 {
            tracing::warn!(peer = %self.peer, bytes = dropped, "discarded commands pipelined after STARTTLS");
        }
        self.conn
            .queue(&Reply::new(220, "2.0.0", "Ready to start TLS").to_bytes());
        let timeout = self.rt.config.timeouts.command;
        if self.conn.flush(timeout).await.is_err() {
            return Flow::Close;
        }
        let acceptor = self.rt.tls.clone();
        if let Err(e) = self.conn.start_tls(&acceptor, timeout).await {
            tracing::info!(peer = %self.peer, error = %e, "TLS handshake failed");
            return Flow::Close;
        }
        self.helo = None;
        self.tx = None;
        self.auth_user = None;
        Flow::Continue
    }

    /// Reads one line of an AUTH exchange; `None` when the client cancelled or sent garbage.
    async fn auth_line(&mut self, challenge: &str) -> Result<Option<String>, Flow> {
        self.conn.queue(&Reply::plain(334, challenge).to_bytes());
        let timeout = self.rt.config.timeouts.command;
        if self.conn.flush(timeout).await.is_err() {
            return Err(Flow::Close);
        }
        match self
            .conn
            .read_line(self.rt.config.limits.command_line_length, timeout)
            .await
        {
            Ok(Line::Text(l)) => {
                let text = String::from_utf8_lossy(&l).trim().to_string();
                Ok(if text == "*" { None } else { Some(text) })
            }
            Ok(Line::TooLong) => Ok(None),
            Err(_) => Err(Flow::Close),
        }
    }

    async fn auth(&mut self, mechanism: u64, initial: String) -> Flow {
        let Some(creds) = self
            .rt
            .credentials
            .clone()
            .filter(|_| self.rt.config.auth.enabled)
        else {
            self.reply(Reply::new(
                502,
                "5.5.1",
                "Error: authentication not enabled",
            ));
            return Flow::Continue;
        };
        if !self.conn.is_tls() {
            self.reply(Reply::new(
                530,
                "5.7.0",
                "Must issue a STARTTLS command first",
            ));
            return Flow::Continue;
        }
        if self.helo.is_none() || self.auth_user.is_some() || self.tx.is_some() {
            self.reply(Reply::new(503, "5.5.1", "Error: AUTH not allowed now"));
            return Flow::Continue;
        }
        let initial = (!initial.is_empty()).then_some(initial);
        let decoded = if mechanism == smtp_proto::AUTH_PLAIN {
            let response = match initial {
                Some(r) if r == "=" => Some(String::new()),
                Some(r) => Some(r),
                None => match self.auth_line("").await {
                    Ok(r) => r,
                    Err(flow) => return flow,
                },
            };
            match response {
                None => None,
                Some(r) => match auth::decode_plain(&r) {
                    Some(pair) => Some(pair),
                    None => {
                        self.reply(Reply::new(
                            501,
                            "5.5.2",
                            "Error: malformed AUTH PLAIN response",
                        ));
                        return Flow::Continue;
                    }
                },
            }
        } else if mechanism == smtp_proto::AUTH_LOGIN {
            let user = match initial {
                Some(u) => Some(u),
                None => match self.auth_line("VXNlcm5hbWU6").await {
                    Ok(u) => u,
                    Err(flow) => return flow,
                },
            };
            let pass = match user {
                None => None,
                Some(_) => match self.auth_line("UGFzc3dvcmQ6").await {
                    Ok(p) => p,
                    Err(flow) => return flow,
                },
            };
            match (
                user.as_deref().map(auth::decode_login),
                pass.as_deref().map(auth::decode_login),
            ) {
                (Some(Some(u)), Some(Some(p))) => Some((u, p)),
                (None, _) | (_, None) => None,
                _ => {
                    self.reply(Reply::new(
                        501,
                        "5.5.2",
                        "Error: malformed AUTH LOGIN response",
                    ));
                    return Flow::Continue;
                }
            }
        } else {
            self.reply(Reply::new(
                504,
                "5.5.4",
                "Unsupported authentication mechanism",
            ));
            return Flow::Continue;
        };
        let Some((user, pass)) = decoded else {
            self.reply(Reply::new(501, "5.7.0", "Authentication aborted"));
            return Flow::Continue;
        };
        let check_user = user.clone();
        let ok = tokio::task::spawn_blocking(move || creds.verify(&check_user, &pass))
            .await
            .unwrap_or(false);
        if ok {
            tracing::info!(peer = %self.peer, user = %user, "authenticated");
            self.auth_user = Some(user);
            self.reply(Reply::new(235, "2.7.0", "Authentication successful"));
        } else {
            tracing::warn!(peer = %self.peer, "authentication failed");
            self.reply(Reply::new(
                535,
                "5.7.8",
                "Authentication credentials invalid",
            ));
        }
        Flow::Continue
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

fn problem_reply(p: BodyProblem, limits: &crate::config::LimitsConfig) -> Reply {
    match p {
        BodyProblem::TooBig => Reply::new(
            552,
            "5.3.4",
            format!(
                "Message size exceeds fixed limit of {} bytes",
                limits.message_size
            ),
        ),
        BodyProblem::BareLf => Reply::new(
            550,
            "5.6.0",
            "Message refused: bare <LF> in message data (RFC 5321 2.3.8); lines must end with <CR><LF>",
        ),
        BodyProblem::BareCr => Reply::new(
            550,
            "5.6.0",
            "Message refused: bare <CR> in message data (RFC 5321 2.3.8); lines must end with <CR><LF>",
        ),
        BodyProblem::Nul => Reply::new(
            550,
            "5.6.0",
            "Message refused: NUL character in message data",
        ),
        BodyProblem::LineTooLong => Reply::new(
            550,
            "5.6.0",
            format!(
                "Message refused: a text line is longer than {} bytes (RFC 5321 4.5.3.1.6)",
                limits.text_line_length
            ),
        ),
    }
}
