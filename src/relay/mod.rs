//! Relay mode: hand an accepted transaction to an upstream lane and report its verdict.
//!
//! Sluis keeps no queue here. The client's end of DATA is answered only after the upstream has
//! answered, so whatever goes wrong, the message is still in the client's queue unless the
//! upstream took responsibility for it (DESIGN §1).
//!
//! Per-recipient outcomes are squeezed into the one end-of-DATA reply SMTP allows:
//! - all recipients accepted: the upstream's reply to the data;
//! - any recipient deferred (4xx): nothing is sent, the client gets that 4xx and retries all,
//!   which cannot duplicate because nobody received anything yet;
//! - some refused for good (5xx), others accepted: the accepted ones get the message, the
//!   sender gets a delivery status notification for the refused ones (RFC 3464);
//! - all refused: the refusal.

pub mod dsn;
pub mod pool;
pub mod received;
pub mod socketmap;
pub mod tls_policy;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use rustls_pki_types::ServerName;
use smtp_proto::{MailFrom, RcptTo, Response};

use crate::config::{Config, LaneConfig, StartTls};
use crate::spool::SpooledBody;
use crate::wire::address::mailbox;
use crate::wire::{Client, Endpoint, Reply, UpstreamError, parse_host_port, tls};

/// A transaction's envelope, as the client gave it.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub id: String,
    pub mail_from: MailFrom<String>,
    pub rcpts: Vec<RcptTo<String>>,
    /// Ask the upstream to require TLS for the onward delivery (RFC 8689) where it offers
    /// REQUIRETLS: set for confidential mail.
    pub require_tls: bool,
}

/// One upstream lane, ready to use.
pub struct Lane {
    pub name: String,
    pub config: LaneConfig,
    pub endpoint: Endpoint,
    /// Sessions kept open between transactions.
    pub pool: Arc<pool::Pool>,
}

impl Lane {
    pub fn from_config(name: &str, config: &LaneConfig) -> Result<Lane, String> {
        let (host, port) = parse_host_port(&config.address)?;
        let connector = match config.starttls {
            StartTls::Off => None,
            _ => {
                let roots = match &config.ca_file {
                    Some(ca) => Some(tls::load_roots(ca).map_err(|e| e.to_string())?),
                    None => None,
                };
                Some(tls::connector(roots))
            }
        };
        let name_for_tls = config.server_name.clone().unwrap_or_else(|| host.clone());
        let server_name = ServerName::try_from(name_for_tls.clone())
            .map_err(|_| format!("{name_for_tls:?} is not a valid TLS server name"))?;
        Ok(Lane {
            name: name.to_string(),
            config: config.clone(),
            endpoint: Endpoint {
                host,
                port,
                connector,
                server_name,
                tls_required: config.starttls == StartTls::Required,
                connect_timeout: config.connect_timeout,
                command_timeout: config.command_timeout,
            },
            pool: Arc::new(pool::Pool::new(config.idle_connections, config.idle_time)),
        })
    }
}

/// All lanes by name, plus which one is the default.
pub struct Lanes {
    pub default: String,
    lanes: BTreeMap<String, Arc<Lane>>,
}

impl Lanes {
    pub fn from_config(config: &Config) -> Result<Lanes, String> {
        let mut lanes = BTreeMap::new();
        for (name, lane) in &config.upstream.lanes {
            let lane = Lane::from_config(name, lane).map_err(|e| format!("lane {name}: {e}"))?;
            lanes.insert(name.clone(), Arc::new(lane));
        }
        Ok(Lanes {
            default: config.upstream.default_lane.clone(),
            lanes,
        })
    }

    pub fn get(&self, name: &str) -> Option<Arc<Lane>> {
        self.lanes.get(name).cloned()
    }

    pub fn default_lane(&self) -> Arc<Lane> {
        self.lanes
            .get(&self.default)
            .cloned()
            .expect("validated: the default lane exists")
    }
}

/// RFC 3461 xtext, for ENVID and ORCPT passed upstream.
fn xtext(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (b'!'..=b'~').contains(&b) && b != b'+' && b != b'=' {
            out.push(b as char);
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

fn unavailable(lane: &Lane, e: &UpstreamError) -> Reply {
    Reply::new(
        451,
        "4.4.1",
        format!(
            "Upstream {} unavailable ({e}); message not accepted, try again later",
            lane.name
        ),
    )
}

/// The MAIL command for `env` to an upstream with these capabilities (`tls`: the session is
/// encrypted).
fn mail_command(
    env: &Envelope,
    caps: &smtp_proto::EhloResponse<String>,
    tls: bool,
    size: usize,
) -> Result<String, Reply> {
    let from = &env.mail_from;
    use smtp_proto::*;
    let mut cmd = format!("MAIL FROM:<{}>", mailbox(&from.address));
    if from.flags & MAIL_BODY_8BITMIME != 0 {
        if !caps.has_capability(EXT_8BIT_MIME) {
            return Err(Reply::new(
                554,
                "5.6.3",
                "Upstream does not accept 8BITMIME and Sluis does not convert messages",
            ));
        }
        cmd.push_str(" BODY=8BITMIME");
    } else if from.flags & MAIL_BODY_7BIT != 0 && caps.has_capability(EXT_8BIT_MIME) {
        cmd.push_str(" BODY=7BIT");
    }
    if from.flags & MAIL_SMTPUTF8 != 0 {
        if !caps.has_capability(EXT_SMTP_UTF8) {
            return Err(Reply::new(
                553,
                "5.6.7",
                "Upstream does not accept SMTPUTF8 and the message requires it",
            ));
        }
        cmd.push_str(" SMTPUTF8");
    }
    if caps.has_capability(EXT_SIZE) {
        cmd.push_str(&format!(" SIZE={size}"));
    }
    if caps.has_capability(EXT_DSN) {
        if from.flags & MAIL_RET_FULL != 0 {
            cmd.push_str(" RET=FULL");
        } else if from.flags & MAIL_RET_HDRS != 0 {
            cmd.push_str(" RET=HDRS");
        }
        if let Some(id) = &from.env_id {
            cmd.push_str(&format!(" ENVID={}", xtext(id)));
        }
    }
    // RFC 8689 4.1: only over a TLS session, and only to a server that offers it.
    if env.require_tls && tls && caps.has_capability(EXT_REQUIRE_TLS) {
        cmd.push_str(" REQUIRETLS");
    }
    cmd.push_str("\r\n");
    Ok(cmd)
}

fn rcpt_command(to: &RcptTo<String>, client: &Client) -> String {
    use smtp_proto::*;
    let mut cmd = format!("RCPT TO:<{}>", mailbox(&to.address));
    if client.caps.has_capability(EXT_DSN) {
        let mut notify = Vec::new();
        if to.flags & RCPT_NOTIFY_NEVER != 0 {
            notify.push("NEVER");
        }
        if to.flags & RCPT_NOTIFY_SUCCESS != 0 {
            notify.push("SUCCESS");
        }
        if to.flags & RCPT_NOTIFY_FAILURE != 0 {
            notify.push("FAILURE");
        }
        if to.flags & RCPT_NOTIFY_DELAY != 0 {
            notify.push("DELAY");
        }
        if !notify.is_empty() {
            cmd.push_str(&format!(" NOTIFY={}", notify.join(",")));
        }
        if let Some(orcpt) = &to.orcpt {
            cmd.push_str(&format!(" ORCPT=rfc822;{}", xtext(orcpt)));
        }
    }
    cmd.push_str("\r\n");
    cmd
}

/// Adds the dot-stuffing of RFC 5321 §4.5.2 to content that has only CRLF line ends.
#[derive(Default)]
struct DotStuffer {
    mid_line: bool,
}

impl DotStuffer {
    fn stuff(&mut self, mut chunk: &[u8], out: &mut Vec<u8>) {
        while !chunk.is_empty() {
            if !self.mid_line && chunk[0] == b'.' {
                out.push(b'.');
            }
            match memchr::memchr(b'\n', chunk) {
                Some(i) => {
                    out.extend_from_slice(&chunk[..=i]);
                    chunk = &chunk[i + 1..];
                    self.mid_line = false;
                }
                None => {
                    out.extend_from_slice(chunk);
                    self.mid_line = true;
                    return;
                }
            }
        }
    }
}

/// What one lane did with its share of a transaction.
#[derive(Debug)]
pub struct Relayed {
    /// The lane's verdict, as the client's end of DATA would get it.
    pub reply: Reply,
    /// Recipients the upstream refused for good while it accepted the others: the caller
    /// owes the sender a DSN for them (`dsn`, the one place bounces are made).
    pub refused: Vec<(RcptTo<String>, Response<String>)>,
    /// The upstream session's QUIT, still to be said: the transaction is settled once the
    /// end-of-data reply is in, so the client's reply does not wait for it.
    pub closing: Option<Closing>,
}

/// Work left after an upstream transaction settled (QUIT and its answer).
pub struct Closing(std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>);

impl Closing {
    pub fn new(work: impl std::future::Future<Output = ()> + Send + 'static) -> Closing {
        Closing(Box::pin(work))
    }

    pub async fn finish(self) {
        self.0.await
    }
}

impl std::fmt::Debug for Closing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Closing")
    }
}

/// Relays one transaction through `lane`.
pub async fn relay(
    lane: &Arc<Lane>,
    helo: &str,
    env: &Envelope,
    trace_header: &[u8],
    body: &mut SpooledBody,
) -> Relayed {
    match stage(lane, helo, env, trace_header, body).await {
        Ok(staged) => commit(staged).await,
        Err(settled) => settled,
    }
}

/// A lane's transaction with everything sent but the end of the message: the upstream holds
/// no message it could deliver until `commit` sends the final dot, and dropping this closes
/// the session without it (the upstream discards what it got).
pub struct Staged {
    lane: Arc<Lane>,
    up: Client,
    rcpts: Vec<RcptTo<String>>,
    rcpt_replies: Vec<Response<String>>,
    /// The last block of content and the final dot, not yet sent.
    rest: Vec<u8>,
    started: Instant,
}

/// Opens `lane`'s transaction and sends the content but its last block and the final dot;
/// `Err` when the transaction is settled before that (refused, deferred, unavailable).
pub async fn stage(
    lane: &Arc<Lane>,
    helo: &str,
    env: &Envelope,
    trace_header: &[u8],
    body: &mut SpooledBody,
) -> Result<Staged, Relayed> {
    let started = Instant::now();
    let settled = |reply: Reply, result: &'static str| {
        crate::metrics::upstream_result(&lane.name, result);
        crate::metrics::upstream_seconds(&lane.name, started.elapsed());
        Relayed {
            reply,
            refused: Vec::new(),
            closing: None,
        }
    };
    match try_stage(lane, helo, env, trace_header, body).await {
        Ok(Ok(mut staged)) => {
            staged.started = started;
            Ok(staged)
        }
        Ok(Err(reply)) => {
            let result = if reply.code / 100 == 4 {
                "deferred"
            } else {
                "refused"
            };
            Err(settled(reply, result))
        }
        Err(e) => {
            tracing::warn!(id = %env.id, lane = %lane.name, error = %e, "upstream failed");
            Err(settled(unavailable(lane, &e), "unavailable"))
        }
    }
}

/// Sends the end of a staged message and reads the upstream's verdict.
pub async fn commit(staged: Staged) -> Relayed {
    let lane = staged.lane.clone();
    let started = staged.started;
    let relayed = match try_commit(staged).await {
        Ok(relayed) => {
            let result = match relayed.reply.code / 100 {
                2 => "accepted",
                4 => "deferred",
                _ => "refused",
            };
            crate::metrics::upstream_result(&lane.name, result);
            relayed
        }
        Err(e) => {
            tracing::warn!(lane = %lane.name, error = %e, "upstream failed at the end of data");
            crate::metrics::upstream_result(&lane.name, "unavailable");
            Relayed {
                reply: unavailable(&lane, &e),
                refused: Vec::new(),
                closing: None,
            }
        }
    };
    crate::metrics::upstream_seconds(&lane.name, started.elapsed());
    relayed
}

async fn try_stage(
    lane: &Arc<Lane>,
    helo: &str,
    env: &Envelope,
    trace_header: &[u8],
    body: &mut SpooledBody,
) -> Result<Result<Staged, Reply>, UpstreamError> {
    let cfg = &lane.config;
    let size = trace_header.len() + body.len();
    // A reused session proves itself with RSET; one that does not is dropped and the
    // transaction starts over on a new session (nothing of it reached a live server).
    let mut reuse = true;
    let (mut up, rcpt_replies) = loop {
        let pooled = if reuse { lane.pool.take() } else { None };
        let reused = pooled.is_some();
        let up = match pooled {
            Some(c) => c,
            None => Client::connect(&lane.endpoint, helo).await?,
        };
        tracing::debug!(id = %env.id, lane = %lane.name, tls = up.is_tls(), reused, "upstream session");
        match open(lane, up, reused, env, size).await? {
            Opened::Data(up, replies) => break (up, replies),
            Opened::Done(reply) => return Ok(Err(reply)),
            Opened::Stale => {
                tracing::debug!(lane = %lane.name, "an idle upstream session is gone");
                reuse = false;
            }
        }
    };
    let mut stuffer = DotStuffer::default();
    let mut out = Vec::with_capacity(80 * 1024);
    stuffer.stuff(trace_header, &mut out);
    body.rewind().await?;
    while let Some(c) = body.next_chunk().await? {
        stuffer.stuff(&c, &mut out);
        if out.len() >= 64 * 1024 {
            tokio::time::timeout(cfg.data_block_timeout, up.write(&out))
                .await
                .map_err(|_| UpstreamError::Timeout(cfg.data_block_timeout, "data block"))??;
            out.clear();
        }
    }
    if stuffer.mid_line {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    Ok(Ok(Staged {
        lane: lane.clone(),
        up,
        rcpts: env.rcpts.clone(),
        rcpt_replies,
        rest: out,
        started: Instant::now(),
    }))
}

async fn try_commit(staged: Staged) -> Result<Relayed, UpstreamError> {
    let Staged {
        lane,
        mut up,
        rcpts,
        rcpt_replies,
        rest,
        ..
    } = staged;
    let cfg = &lane.config;
    tokio::time::timeout(cfg.data_block_timeout, up.write(&rest))
        .await
        .map_err(|_| UpstreamError::Timeout(cfg.data_block_timeout, "data block"))??;
    up.flush().await?;
    let done = up.read_reply(cfg.data_done_timeout, "end of data").await?;
    let refused = if done.code / 100 == 2 {
        (0..rcpt_replies.len())
            .filter(|&i| rcpt_replies[i].code / 100 == 5)
            .map(|i| (rcpts[i].clone(), rcpt_replies[i].clone()))
            .collect()
    } else {
        Vec::new()
    };
    // Only a session whose transaction ended well is used again.
    let closing = if done.code / 100 == 2 && lane.pool.enabled() {
        let pool = lane.pool.clone();
        Closing::new(async move { pool.give_back(up).await })
    } else {
        Closing::new(up.quit())
    };
    Ok(Relayed {
        reply: Reply::from_upstream(&done),
        refused,
        closing: Some(closing),
    })
}

/// How opening a transaction ended.
enum Opened {
    /// In DATA (354), with the RCPT replies.
    Data(Client, Vec<Response<String>>),
    /// Settled before DATA: this reply is the lane's verdict.
    Done(Reply),
    /// A reused session that did not answer RSET: start over on a new one.
    Stale,
}

/// Opens the transaction up to DATA's 354. With PIPELINING (RFC 2920) RSET (on a reused
/// session), MAIL, the RCPTs and DATA go out in one write.
async fn open(
    lane: &Lane,
    mut up: Client,
    reused: bool,
    env: &Envelope,
    size: usize,
) -> Result<Opened, UpstreamError> {
    let cfg = &lane.config;
    // A live session answers RSET at once; one that died silently must not cost a command
    // timeout.
    let probe = cfg.connect_timeout.min(std::time::Duration::from_secs(10));
    let mail = match mail_command(env, &up.caps, up.is_tls(), size) {
        Ok(m) => m,
        Err(reply) => {
            up.quit().await;
            return Ok(Opened::Done(reply));
        }
    };
    let rcpt_lines: Vec<String> = env.rcpts.iter().map(|r| rcpt_command(r, &up)).collect();
    if !up.caps.has_capability(smtp_proto::EXT_PIPELINING) {
        if reused && !matches!(up.command(b"RSET\r\n", probe, "RSET").await, Ok(r) if r.code == 250)
        {
            return Ok(Opened::Stale);
        }
        let mail_reply = up
            .command(mail.as_bytes(), cfg.command_timeout, "MAIL")
            .await?;
        if mail_reply.code / 100 != 2 {
            up.quit().await;
            return Ok(Opened::Done(Reply::from_upstream(&mail_reply)));
        }
        let mut replies = Vec::with_capacity(rcpt_lines.len());
        for line in &rcpt_lines {
            replies.push(
                up.command(line.as_bytes(), cfg.command_timeout, "RCPT")
                    .await?,
            );
        }
        if let Some(reply) = settled_by_rcpts(env, &replies) {
            up.quit().await;
            return Ok(Opened::Done(reply));
        }
        let go = up
            .command(b"DATA\r\n", cfg.data_init_timeout, "DATA")
            .await?;
        if go.code != 354 {
            up.quit().await;
            return Ok(Opened::Done(Reply::from_upstream(&go)));
        }
        return Ok(Opened::Data(up, replies));
    }
    let mut batch = Vec::with_capacity(512);
    if reused {
        batch.extend_from_slice(b"RSET\r\n");
    }
    batch.extend_from_slice(mail.as_bytes());
    for line in &rcpt_lines {
        batch.extend_from_slice(line.as_bytes());
    }
    batch.extend_from_slice(b"DATA\r\n");
    let sent = up.send(&batch).await;
    if reused {
        let alive = match sent {
            Ok(()) => matches!(up.read_reply(probe, "RSET").await, Ok(r) if r.code == 250),
            Err(_) => false,
        };
        if !alive {
            // Dropped without a final dot: whatever the server made of the rest is void.
            return Ok(Opened::Stale);
        }
    } else {
        sent?;
    }
    let mail_reply = up.read_reply(cfg.command_timeout, "MAIL").await?;
    let mut replies = Vec::with_capacity(rcpt_lines.len());
    for _ in &rcpt_lines {
        replies.push(up.read_reply(cfg.command_timeout, "RCPT").await?);
    }
    let go = up.read_reply(cfg.data_init_timeout, "DATA").await?;
    let early = if mail_reply.code / 100 != 2 {
        Some(Reply::from_upstream(&mail_reply))
    } else {
        settled_by_rcpts(env, &replies)
    };
    if let Some(reply) = early {
        if go.code == 354 {
            // In DATA after a deferred recipient: closing without the final dot aborts the
            // message (nobody gets it; the client retries all of it).
            drop(up);
        } else {
            up.quit().await;
        }
        return Ok(Opened::Done(reply));
    }
    if go.code != 354 {
        up.quit().await;
        return Ok(Opened::Done(Reply::from_upstream(&go)));
    }
    Ok(Opened::Data(up, replies))
}

/// The verdict the RCPT replies settle alone: a deferral (nobody gets the message now; the
/// client retries the whole transaction), or every recipient refused.
fn settled_by_rcpts(env: &Envelope, replies: &[Response<String>]) -> Option<Reply> {
    let named = |i: usize| {
        let mut reply = Reply::from_upstream(&replies[i]);
        reply.lines[0] = format!("<{}>: {}", env.rcpts[i].address, reply.lines[0]);
        reply
    };
    if let Some(i) = replies.iter().position(|r| r.code / 100 == 4) {
        return Some(named(i));
    }
    if !replies.is_empty() && replies.iter().all(|r| r.code / 100 == 5) {
        return Some(named(0));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_reply_without_text_still_has_a_line() {
        let r = Reply::from_upstream(&Response {
            code: 550,
            esc: [0, 0, 0],
            message: String::new(),
        });
        assert_eq!(r.lines, vec![String::new()]);
        assert_eq!(r.status, "5.0.0");
    }

    #[test]
    fn requiretls_only_for_confidential_mail_over_tls_to_a_server_offering_it() {
        let mut caps = smtp_proto::EhloResponse::<String> {
            capabilities: smtp_proto::EXT_REQUIRE_TLS | smtp_proto::EXT_SIZE,
            ..Default::default()
        };
        let mut env = Envelope {
            id: "T".into(),
            mail_from: MailFrom {
                address: "a@org.test".into(),
                ..Default::default()
            },
            rcpts: vec![],
            require_tls: true,
        };
        assert_eq!(
            mail_command(&env, &caps, true, 10).unwrap(),
            "MAIL FROM:<a@org.test> SIZE=10 REQUIRETLS\r\n"
        );
        assert!(
            !mail_command(&env, &caps, false, 10)
                .unwrap()
                .contains("REQUIRETLS")
        );
        env.require_tls = false;
        assert!(
            !mail_command(&env, &caps, true, 10)
                .unwrap()
                .contains("REQUIRETLS")
        );
        env.require_tls = true;
        caps.capabilities = smtp_proto::EXT_SIZE;
        assert!(
            !mail_command(&env, &caps, true, 10)
                .unwrap()
                .contains("REQUIRETLS")
        );
    }

    #[test]
    fn xtext_encodes_specials() {
        assert_eq!(xtext("a+b=c d"), "a+2Bb+3Dc+20d");
    }

    #[test]
    fn dot_stuffing_across_chunks() {
        let mut s = DotStuffer::default();
        let mut out = Vec::new();
        s.stuff(b"a\r\n.b\r", &mut out);
        s.stuff(b"\n.", &mut out);
        s.stuff(b"\r\nx", &mut out);
        assert_eq!(out, b"a\r\n..b\r\n..\r\nx");
        assert!(s.mid_line);
    }
}
