//! One transaction, from the end of its content to the client's reply (DESIGN §2 steps 3–6):
//!
//! `facts` (inspection, signs of an automated forward, each recipient's standing) →
//! `decide` (the policy, per recipient) → `act` (hold, relay, refuse, in the order that keeps
//! "nothing lost, nothing twice") → `record` (typed audit records, the summary log line and
//! the metrics) → `notify` (the sender's notice about held recipients).
//!
//! `Pipeline` is the SMTP side's `Target`: the session hands it a finished transaction and
//! writes back the reply; nothing here knows about sockets or SMTP framing.

mod act;
#[cfg(test)]
mod act_portal_tests;
#[cfg(test)]
mod act_tests;
mod decide;
mod effects;
mod facts;
mod held;
mod notify;
mod portal;
mod record;
pub mod repeats;

use std::sync::Arc;

use futures_util::future::BoxFuture;
use smtp_proto::{MailFrom, RcptTo};

use crate::audit::AuditLog;
use crate::config::Config;
use crate::inspect::Inspector;
use crate::policy::{MessageFacts, Policy};
use crate::posture::{Classifier, Registry};
use crate::quarantine::Quarantine;
use crate::relay::received::Trace;
use crate::relay::{Envelope, Lanes};
use crate::smtp::{SessionFacts, Target, Transaction};
use crate::spool::SpooledBody;
use crate::wire::Reply;

pub use decide::Judged;

/// The services one transaction goes through, built from one configuration (a reload builds a
/// new one; transactions in progress finish with the one they started with).
pub struct Pipeline {
    pub config: Arc<Config>,
    pub inspector: Arc<Inspector>,
    /// Messages being inspected at once: each is held whole in memory while it is parsed.
    pub inspect_slots: Arc<tokio::sync::Semaphore>,
    pub classifier: Classifier,
    /// Ownership proofs; shared across reloads, so a reload does not forget them.
    pub ownership: Arc<Registry>,
    pub policy: Arc<Policy>,
    pub postures: Arc<crate::posture::Postures>,
    pub quarantine: Quarantine,
    pub audit: Arc<AuditLog>,
    pub lanes: Arc<Lanes>,
    /// The secure pickup portal, when `[portal]` is configured.
    pub portal: Option<Arc<crate::portal::service::Portal>>,
    /// The senders' links for hold notices, when `[web]` is configured.
    pub sender_links: Option<Arc<crate::quarantine::link::SenderLinks>>,
    /// What follows replies (QUIT upstream, outcome records); shared across reloads, so that
    /// shutdown waits for all of it.
    pub after_reply: tokio_util::task::TaskTracker,
    /// Positive replies the client may not have read; shared across reloads.
    pub repeats: Arc<repeats::Repeats>,
}

/// One decided transaction: what every step after the decision needs.
pub struct Case {
    pub id: String,
    pub mail_from: MailFrom<String>,
    pub rcpts: Vec<RcptTo<String>>,
    pub session: SessionFacts,
    /// This gateway's name, for trace headers and notices.
    pub hostname: String,
    pub facts: MessageFacts,
    /// One per recipient, in the order of `rcpts`.
    pub judged: Vec<Judged>,
    pub message_id: Option<String>,
    /// Masked findings ("bsn ***-**-782 in part 1 (high)"), for the audit log and the
    /// quarantine: never the values.
    pub findings: Vec<String>,
    /// For the portal: the From header's display name, the subject (shown only with
    /// `portal.show_subject`), and the numbers from `Sluis-Recipient-Phone` headers.
    pub sender_name: Option<String>,
    pub subject: Option<String>,
    pub phones: std::collections::HashMap<String, String>,
}

impl Case {
    /// The envelope for the recipients at `idx`.
    pub fn envelope(&self, idx: &[usize], require_tls: bool) -> Envelope {
        Envelope {
            id: self.id.clone(),
            mail_from: self.mail_from.clone(),
            rcpts: idx.iter().map(|&i| self.rcpts[i].clone()).collect(),
            require_tls,
        }
    }

    /// The Received header that goes in front of the content for `env`.
    pub fn trace_header(&self, env: &Envelope) -> Vec<u8> {
        let s = &self.session;
        Trace {
            helo: &s.helo,
            client_ip: s.client_ip,
            hostname: &self.hostname,
            esmtp: s.esmtp,
            tls: s.tls.as_deref(),
            authenticated: s.user.is_some(),
            id: &env.id,
            single_recipient: match env.rcpts.as_slice() {
                [one] => Some(one.address.as_str()),
                _ => None,
            },
        }
        .header()
    }
}

impl Target for Pipeline {
    fn check_recipient(&self, session: &SessionFacts, address: &str) -> Result<(), Reply> {
        self.recipient_allowed(session, address)
    }

    fn deliver(&self, tx: Transaction) -> BoxFuture<'_, Reply> {
        Box::pin(self.run(tx))
    }

    fn reply_read(&self, id: &str) {
        self.repeats.read(id);
    }
}

impl Pipeline {
    async fn run(&self, tx: Transaction) -> Reply {
        let Transaction {
            id,
            mail_from,
            rcpts,
            mut body,
            size,
            session,
        } = tx;
        let key = match self.repeat_key(&mail_from, &rcpts, &mut body).await {
            Ok(key) => key,
            Err(reply) => return reply,
        };
        if let Some(first) = key.as_ref().and_then(|k| self.repeats.find(k)) {
            return self.repeat(&id, &first, &session, &mail_from.address).await;
        }
        let mut phones = std::collections::HashMap::new();
        if self.portal.is_some() {
            // The numbers for SMS codes never leave Sluis: whatever the decisions, the
            // message goes on without their header.
            match crate::portal::phones::strip(&mut body).await {
                Ok(None) => {}
                Ok(Some((values, stripped))) => {
                    let (found, bad) = crate::portal::phones::from_headers(&values);
                    if bad > 0 {
                        tracing::warn!(%id, fields = bad, "Sluis-Recipient-Phone fields that are not '<address> <+number>' ignored");
                    }
                    phones = found;
                    let mut fresh = SpooledBody::new(
                        self.config.server.spool_dir.clone(),
                        self.config.limits.memory_buffer,
                    );
                    if let Err(e) = fresh.write(&stripped).await {
                        tracing::error!(%id, error = %e, "cannot spool the message");
                        return Reply::new(
                            451,
                            "4.3.0",
                            "Local error while storing the message, try again later",
                        );
                    }
                    body = fresh;
                }
                Err(e) => {
                    tracing::error!(%id, error = %e, "cannot read the spooled message");
                    return Reply::new(
                        451,
                        "4.3.0",
                        "Local error while reading the message, try again later",
                    );
                }
            }
        }
        let inspection = self.inspect(&mut body, &id).await;
        let facts = self.message_facts(&mail_from.address, inspection.as_ref(), size);
        let judged = self.decide_all(&rcpts, &facts).await;
        let case = Case {
            id,
            mail_from,
            rcpts,
            session,
            hostname: self.config.server.hostname.clone(),
            facts,
            judged,
            message_id: inspection.as_ref().and_then(|i| i.message_id.clone()),
            findings: facts::masked_findings(inspection.as_ref()),
            sender_name: inspection.as_ref().and_then(|i| i.from_name.clone()),
            subject: inspection.as_ref().and_then(|i| i.subject.clone()),
            phones,
        };
        let effects = act::Effects {
            store: &self.quarantine,
            lanes: &*self.lanes,
            audit: &self.audit,
            portal: self.portal.as_deref().map(|p| p as &dyn act::Seals),
        };
        let mut acted = act::act(&case, &mut body, &effects).await;
        // Last thing before the reply: from here a crash makes the client retry what went out.
        if let (Some(key), true, Some(_)) = (key, acted.reply.is_positive(), &case.message_id) {
            self.repeats.note(key, &case.id);
        }
        if self.config.policy.notify_quarantined {
            notify::held(
                &case,
                &acted.held,
                self.lanes.default_lane(),
                self.sender_links.as_deref(),
            );
        }
        if let (Some(portal), Some(sealed)) = (&self.portal, acted.sealed.take()) {
            portal::sender_notice(portal.clone(), &case, sealed);
        }
        record::summary(&case, size, acted.reply.code);
        // The reply goes out now; the upstreams' QUIT and the outcome record follow it.
        let after = std::mem::take(&mut acted.after);
        let (audit, id) = (self.audit.clone(), case.id.clone());
        self.after_reply
            .spawn(async move { after.finish(&audit, &id).await });
        acted.reply
    }
}

impl Pipeline {
    /// The key under which a positive reply to this transaction is noted (`None` when notes
    /// are off); the reply to give when the spooled content cannot be read.
    async fn repeat_key(
        &self,
        mail_from: &MailFrom<String>,
        rcpts: &[RcptTo<String>],
        body: &mut SpooledBody,
    ) -> Result<Option<repeats::Key>, Reply> {
        if !self.repeats.enabled() {
            return Ok(None);
        }
        let rcpts: Vec<&str> = rcpts.iter().map(|r| r.address.as_str()).collect();
        repeats::key(&mail_from.address, &rcpts, body)
            .await
            .map(Some)
            .map_err(|e| {
                tracing::error!(error = %e, "cannot read the spooled message");
                Reply::new(
                    451,
                    "4.3.0",
                    "Local error while reading the message, try again later",
                )
            })
    }

    /// The client's retry of transaction `first`, whose positive reply it may not have read:
    /// the same reply again, and an outcome record saying so; nothing else happens.
    async fn repeat(
        &self,
        id: &str,
        first: &str,
        session: &crate::smtp::SessionFacts,
        sender: &str,
    ) -> Reply {
        crate::metrics::repeat();
        tracing::info!(%id, repeat_of = %first, client = %session.client_ip, sender_domain = %crate::posture::domain_of(sender), "a retry of a message already accepted: answered, not delivered again");
        let record = crate::audit::Record::Outcome(crate::audit::record::Outcome {
            transaction: id.to_string(),
            client: session.client_ip.to_string(),
            lanes: Vec::new(),
            reply: 250,
            unknown: false,
            repeat_of: Some(first.to_string()),
            positive_reply: None,
        });
        // Nothing moved: no commit of its own (like every outcome).
        if let Err(e) = act::Records::append_lazy(&self.audit, &[record]).await {
            crate::metrics::audit_failure();
            tracing::error!(%id, error = %e, "audit log write failed");
        }
        // The note stays until this reply is read, in case this one is cut off too.
        self.repeats.note_again(first, id);
        Reply::new(
            250,
            "2.0.0",
            format!("Ok: already accepted as {first}; this retry is not delivered again"),
        )
    }
}
