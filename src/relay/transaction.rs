//! One upstream transaction on a lane: taking a kept session (RSET first) or opening one,
//! sending the envelope and the message, and, apart from that, its end: `stage` sends all but
//! the final dot, `commit` sends the dot and reads the verdict, so the pipeline can commit the
//! decisions in between (nothing the upstream could deliver exists before the dot).

use std::sync::Arc;
use std::time::Instant;

use smtp_proto::{RcptTo, Response};

use super::{
    Closing, DotStuffer, Envelope, Lane, Relayed, mail_command, rcpt_command, unavailable,
};
use crate::spool::SpooledBody;
use crate::wire::{Client, Reply, UpstreamError};

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
        tracing::debug!(id = %env.id, lane = %lane.name, tls = up.is_tls(), reused, "upstream session open");
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
