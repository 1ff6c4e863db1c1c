//! The seam between the protocol and what follows (maddy's delivery target): the session asks
//! the target about each recipient as RCPT arrives, and at the end of DATA (or BDAT LAST)
//! hands it the finished transaction and writes back the reply it gets. The session never sees
//! how the reply came about; the target never sees a socket. `pipeline::Pipeline` is the real
//! target; protocol tests can use any other.

use std::net::IpAddr;

use futures_util::future::BoxFuture;
use smtp_proto::{MailFrom, RcptTo};

use crate::spool::SpooledBody;
use crate::wire::Reply;

/// What the session knows about who is sending, for trace headers, logs and audit records.
#[derive(Debug, Clone)]
pub struct SessionFacts {
    pub client_ip: IpAddr,
    /// The name the client gave in EHLO/HELO.
    pub helo: String,
    pub esmtp: bool,
    /// The TLS session, summarised for the Received header ("TLSv1.3 with ..."); `None` in the
    /// clear.
    pub tls: Option<String>,
    /// The authenticated user, when the client logged in.
    pub user: Option<String>,
}

/// One finished transaction: the envelope as the client gave it, the content (checked for
/// framing and size, spooled) and the session's facts.
pub struct Transaction {
    /// Like Postfix's queue id: ties log lines, audit records and quarantine items together.
    pub id: String,
    pub mail_from: MailFrom<String>,
    pub rcpts: Vec<RcptTo<String>>,
    pub body: SpooledBody,
    /// Bytes of content received.
    pub size: usize,
    pub session: SessionFacts,
}

/// What the session hands transactions to.
pub trait Target: Send + Sync {
    /// At RCPT: `Err(reply)` refuses this recipient now, before any content is sent.
    fn check_recipient(&self, session: &SessionFacts, address: &str) -> Result<(), Reply>;

    /// At the end of the content: everything that happens to the message; the reply is the
    /// client's answer to its end of DATA. It may be positive only once the message is with an
    /// upstream or safely stored.
    fn deliver(&self, tx: Transaction) -> BoxFuture<'_, Reply>;

    /// The client sent another command after transaction `id`'s positive reply had gone out:
    /// it has read that reply.
    fn reply_read(&self, _id: &str) {}
}
