//! Message content: DATA and BDAT framing into the checker and the spool, then the hand-over to
//! the target.

use tokio::time::Instant;

use crate::spool::SpooledBody;
use crate::wire::Reply;

use super::{Flow, Session};
use crate::smtp::Transaction;
use crate::smtp::body::{BodyChecker, BodyProblem, DataDecoder};
use crate::smtp::connection::ReadError;

impl Session {
    /// Checks that a transaction can take content; the error reply otherwise.
    pub(super) fn ready_for_content(&self) -> Result<(), Reply> {
        match &self.tx {
            None => Err(Reply::new(503, "5.5.1", "Error: need MAIL command")),
            Some(tx) if tx.rcpts.is_empty() => {
                Err(Reply::new(554, "5.5.1", "Error: no valid recipients"))
            }
            Some(_) => Ok(()),
        }
    }
    pub(super) fn new_body(&self) -> (BodyChecker, SpooledBody) {
        let l = &self.rt.config.limits;
        (
            BodyChecker::new(l.message_size, l.text_line_length),
            SpooledBody::new(self.rt.config.server.spool_dir.clone(), l.memory_buffer),
        )
    }
    pub(super) async fn data(&mut self) -> Flow {
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
        // Each line of content must arrive within the timeout (a trickle does not extend it).
        let mut line_deadline = Instant::now() + timeout;
        loop {
            content.clear();
            let ended = match self
                .conn
                .read_data(&mut decoder, &mut content, line_deadline)
                .await
            {
                Ok(ended) => ended,
                Err(e) => return self.lost_during_data(e),
            };
            if memchr::memrchr(b'\n', &content).is_some() {
                line_deadline = Instant::now() + timeout;
            }
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
    pub(super) fn lost_during_data(&mut self, e: ReadError) -> Flow {
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
    pub(super) async fn bdat(&mut self, size: usize, last: bool) -> Flow {
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
        // As for DATA: each line of the chunk must arrive within the timeout.
        let mut line_deadline = Instant::now() + timeout;
        while left > 0 {
            let chunk = match self.conn.read_raw(left, line_deadline).await {
                Ok(c) => c,
                Err(e) => return self.lost_during_data(e),
            };
            if memchr::memrchr(b'\n', &chunk).is_some() {
                line_deadline = Instant::now() + timeout;
            }
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
    /// Ends a transaction: refuses broken content, otherwise hands it to the target and passes
    /// on its reply.
    pub(super) async fn finish_message(
        &mut self,
        checker: BodyChecker,
        body: SpooledBody,
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
        let id = tx.id.clone();
        let reply = match verdict {
            Err(reply) => {
                crate::metrics::message(reply.code, "message-format");
                reply
            }
            Ok(()) => {
                let finished = Transaction {
                    id: tx.id,
                    mail_from: tx.mail_from,
                    rcpts: tx.rcpts,
                    body,
                    size,
                    session: self.facts(),
                };
                self.rt.target.deliver(finished).await
            }
        };
        if !reply.is_positive() && !reply.is_transient() {
            // Code and status only: reply texts can name recipients.
            tracing::info!(%id, client = %self.peer.ip(), size, status = reply.code, enhanced = %reply.status, "message refused");
        }
        // The verdict of a whole message is not a protocol error of the client.
        self.conn.queue(&reply.to_bytes());
        if reply.is_positive() {
            self.unread = Some(id);
        }
        Flow::Continue
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
