//! Review operations, shared by `sluis quarantine ...` and the admin API: release (deliver
//! through the lane the rule requires: never weaker), reject, purge. Every action is recorded
//! in the audit log with the reviewer and the reason before it takes effect.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use smtp_proto::{MailFrom, RcptTo};

use super::{Item, Quarantine, StoreError};
use crate::audit::record::{ReleaseResult, Review};
use crate::audit::{AuditError, AuditLog, Record};
use crate::policy::Policy;
use crate::relay::{self, Envelope, Lanes};
use crate::spool::SpooledBody;

#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error("{0}")]
    Refused(String),
}

/// What a release did, per lane.
#[derive(Debug, Clone, Serialize)]
pub struct Released {
    pub id: String,
    pub delivered: Vec<LaneResult>,
    /// Recipients still held (their lane failed); the item stays for another try.
    pub still_held: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LaneResult {
    pub lane: String,
    /// The level the lane enforces when it delivers.
    pub level: crate::terms::Level,
    pub recipients: Vec<String>,
    pub reply: String,
    /// The lane accepted the recipients: delivery is the lane's now, not done.
    pub ok: bool,
    /// A delivery report will tell the final outcome (`review.report_listen` is set); the item
    /// stays as released-pending until then.
    pub report_awaited: bool,
}

#[derive(Clone)]
pub struct Reviewer {
    pub store: Quarantine,
    pub audit: Arc<AuditLog>,
    pub policy: Arc<Policy>,
    pub lanes: Arc<Lanes>,
    pub hostname: String,
    pub spool_dir: std::path::PathBuf,
    /// Where the recipients' postures are re-checked before a release.
    pub postures: Arc<crate::posture::Postures>,
    /// Whether lanes' delivery reports reach Sluis (`review.report_listen`): then a release
    /// asks for them and keeps the item until they come.
    pub reports: bool,
}

fn check_identity(reviewer: &str, reason: &str) -> Result<(), ReviewError> {
    if reviewer.trim().is_empty() || reason.trim().is_empty() {
        return Err(ReviewError::Refused(
            "a review needs the reviewer's name and a reason (NEN 7513)".into(),
        ));
    }
    if reviewer.len() > 200 || reason.len() > 2000 {
        return Err(ReviewError::Refused("reviewer or reason too long".into()));
    }
    Ok(())
}

impl Reviewer {
    async fn audit(&self, records: Vec<Record>) -> Result<(), ReviewError> {
        Ok(self.audit.append_async(&records).await?)
    }

    /// Delivers a held item to its recipients, each through the weakest lane that still enforces
    /// what its rule required; removes the item once all are delivered.
    pub async fn release(
        &self,
        id: &str,
        reviewer: &str,
        reason: &str,
    ) -> Result<Released, ReviewError> {
        check_identity(reviewer, reason)?;
        // Exclusive across reviewers and instances: a second release is told who has it.
        let (mut item, claim) = self.store.claim(id, reviewer, "release").await?;
        let prepared = if item.recipients.is_empty() {
            Err(ReviewError::Refused(format!(
                "nothing left to release: {} recipient(s) released, awaiting the lane's delivery \
                 report",
                item.released.len()
            )))
        } else {
            self.prepare_release(&item, reviewer, reason).await
        };
        let (groups, message) = match prepared {
            Ok(p) => p,
            Err(e) => {
                // Nothing was delivered: the item stays as it was, for another try.
                if let Err(u) = self.store.unclaim(id, &claim).await {
                    tracing::error!(quarantine = %id, error = %u, "cannot give up a claim");
                }
                return Err(e);
            }
        };
        self.deliver_claimed(&mut item, &claim, reviewer, groups, message)
            .await
    }

    /// The lanes per recipient (each the weakest that still enforces what its rule required),
    /// the audited intent, and the message; nothing is delivered yet.
    async fn prepare_release(
        &self,
        item: &Item,
        reviewer: &str,
        reason: &str,
    ) -> Result<(BTreeMap<String, Vec<usize>>, Vec<u8>), ReviewError> {
        // A recipient whose requirement no lane meets is not released at all.
        let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, r) in item.recipients.iter().enumerate() {
            match self.policy.release_lane(r.require) {
                Some(lane) => groups.entry(lane).or_default().push(i),
                None => {
                    return Err(ReviewError::Refused(format!(
                        "no lane enforces {} (required for {} by rule {}): configure one with \
                         upstream.lanes.<name>.level; nothing released",
                        r.require.map(|l| l.name()).unwrap_or("-"),
                        r.address,
                        r.rule
                    )));
                }
            }
        }
        // The recipients' servers as they are now: a release for a server that cannot meet
        // the required level would sit in the lane's queue until it bounces.
        let mut cannot = Vec::new();
        for r in &item.recipients {
            let Some(need) = r.require else { continue };
            let a = self
                .postures
                .of(&crate::posture::domain_of(&r.address))
                .await;
            if !a.posture.at_least(need) {
                cannot.push(format!(
                    "{}: its server's posture is {} now, the release needs {need} ({})",
                    r.address,
                    a.posture,
                    a.checks
                        .iter()
                        .rfind(|c| c.check == "posture")
                        .map_or("no evidence", |c| c.evidence.as_str())
                ));
            }
        }
        if !cannot.is_empty() {
            let why = format!(
                "cannot be delivered at the required level, nothing released: {}",
                cannot.join("; ")
            );
            let mut record = review_record("release-refused", item, reviewer, reason);
            record.refused = Some(why.clone());
            self.audit(vec![Record::Review(record)]).await?;
            return Err(ReviewError::Refused(why));
        }
        let mut record = review_record("release", item, reviewer, reason);
        record.lanes = Some(groups.keys().cloned().collect());
        self.audit(vec![Record::Review(record)]).await?;
        let message = self.store.message(&item.id).await?;
        Ok((groups, message))
    }

    /// Delivers a claimed item through `groups`' lanes and settles the claim: from the first
    /// delivery on the claim is never given back, so no retry can deliver twice.
    async fn deliver_claimed(
        &self,
        item: &mut Item,
        claim: &super::Claim,
        reviewer: &str,
        groups: BTreeMap<String, Vec<usize>>,
        message: Vec<u8>,
    ) -> Result<Released, ReviewError> {
        let id = item.id.clone();
        let id = id.as_str();
        let mut delivered = Vec::new();
        let mut still_held = Vec::new();
        // With reports: the release's own return path, so the lane's reports come to Sluis.
        let token = match (&item.report_token, self.reports) {
            (Some(t), true) => Some(t.clone()),
            (None, true) => super::report::new_token(),
            (_, false) => None,
        };
        item.report_token = token.clone();
        let (accepted, _) = super::stamp();
        for (lane_name, idx) in &groups {
            let Some(lane) = self.lanes.get(lane_name) else {
                still_held.extend(idx.iter().map(|&i| item.recipients[i].address.clone()));
                continue;
            };
            let mut from = mail_from(item);
            let mut notify = 0;
            if let Some(t) = &token {
                from.address = super::report::address(id, t, &self.hostname);
                from.env_id = Some(id.to_string());
                from.flags |= smtp_proto::MAIL_RET_HDRS;
                notify = smtp_proto::RCPT_NOTIFY_SUCCESS
                    | smtp_proto::RCPT_NOTIFY_FAILURE
                    | smtp_proto::RCPT_NOTIFY_DELAY;
            }
            let env = Envelope {
                id: item.transaction.clone(),
                mail_from: from,
                rcpts: idx
                    .iter()
                    .map(|&i| RcptTo {
                        address: item.recipients[i].address.clone(),
                        orcpt: item.recipients[i].orcpt.clone(),
                        flags: notify,
                        ..Default::default()
                    })
                    .collect(),
                require_tls: item.sensitive,
            };
            let mut body = SpooledBody::new(self.spool_dir.clone(), 1024 * 1024);
            let reply = match body.write(&message).await {
                Ok(()) => {
                    let relayed = relay::relay(&lane, &self.hostname, &env, b"", &mut body).await;
                    // A release answers a reviewer, not an SMTP client: say QUIT first.
                    if let Some(closing) = relayed.closing {
                        closing.finish().await;
                    }
                    if !relayed.refused.is_empty() {
                        // The notice goes to the original sender, whatever the return path.
                        let mut to_sender = env.clone();
                        to_sender.mail_from = mail_from(item);
                        let default = self.lanes.default_lane();
                        relay::dsn::send_failure_notice(
                            &default,
                            &self.hostname,
                            &to_sender,
                            &relayed.refused,
                            &mut body,
                        )
                        .await;
                    }
                    relayed.reply
                }
                Err(e) => crate::wire::Reply::new(451, "4.3.0", format!("spool: {e}")),
            };
            let ok = reply.is_positive();
            if !ok {
                still_held.extend(env.rcpts.iter().map(|r| r.address.clone()));
            } else if token.is_some() {
                item.released
                    .extend(env.rcpts.iter().map(|r| super::PendingRelease {
                        address: r.address.clone(),
                        lane: lane_name.clone(),
                        level: lane.config.level,
                        reviewer: reviewer.to_string(),
                        accepted: accepted.clone(),
                        last_report: None,
                    }));
            }
            delivered.push(LaneResult {
                lane: lane_name.clone(),
                level: lane.config.level,
                recipients: env.rcpts.iter().map(|r| r.address.clone()).collect(),
                reply: format!("{} {} {}", reply.code, reply.status, reply.lines.join(" ")),
                ok,
                report_awaited: ok && token.is_some(),
            });
        }
        let records = delivered
            .iter()
            .map(|d| {
                Record::ReleaseResult(ReleaseResult {
                    quarantine_id: id.to_string(),
                    transaction: item.transaction.clone(),
                    reviewer: reviewer.to_string(),
                    lane: d.lane.clone(),
                    recipients: d.recipients.clone(),
                    upstream_reply: d.reply.clone(),
                    delivered: d.ok,
                    level: Some(d.level),
                    report_awaited: d.report_awaited,
                })
            })
            .collect();
        // If settling fails the item stays claimed until the lease runs out, so a retry
        // waits rather than delivering again at once.
        let audited = self.audit(records).await;
        item.recipients.retain(|r| still_held.contains(&r.address));
        if item.recipients.is_empty() && item.released.is_empty() {
            self.store.settle(id, claim, None).await?;
        } else {
            self.store.settle(id, claim, Some(item)).await?;
        }
        audited?;
        crate::metrics::quarantine_review("release");
        Ok(Released {
            id: id.to_string(),
            delivered,
            still_held,
        })
    }

    /// Discards a held item: it is never delivered.
    pub async fn reject(&self, id: &str, reviewer: &str, reason: &str) -> Result<(), ReviewError> {
        check_identity(reviewer, reason)?;
        let (item, claim) = self.store.claim(id, reviewer, "reject").await?;
        if item.recipients.is_empty() {
            let _ = self.store.unclaim(id, &claim).await;
            return Err(ReviewError::Refused(format!(
                "nothing held to reject: {} recipient(s) released, awaiting the lane's delivery \
                 report",
                item.released.len()
            )));
        }
        let audited = self
            .audit(vec![Record::Review(review_record(
                "reject", &item, reviewer, reason,
            ))])
            .await;
        if let Err(e) = audited {
            // Not recorded, so not done (NEN 7513: no action without its record).
            let _ = self.store.unclaim(id, &claim).await;
            return Err(e);
        }
        if item.released.is_empty() {
            self.store.settle(id, &claim, None).await?;
        } else {
            // Released recipients still await their reports: only the held ones go.
            let mut rest = item.clone();
            rest.recipients.clear();
            self.store.settle(id, &claim, Some(&rest)).await?;
        }
        crate::metrics::quarantine_review("reject");
        Ok(())
    }

    /// Removes items older than `age`; returns their ids.
    pub async fn purge(&self, age: Duration, reviewer: &str) -> Result<Vec<String>, ReviewError> {
        let reason = format!("older than {}", humantime::format_duration(age));
        let mut ids = Vec::new();
        for old in self.store.older_than(age).await? {
            // Claimed one by one: an item a reviewer is releasing right now, or another
            // instance's purge took, is skipped, so each removal is audited exactly once.
            let (item, claim) = match self.store.claim(&old.id, reviewer, "purge").await {
                Ok(c) => c,
                Err(
                    StoreError::Busy { .. } | StoreError::Settled { .. } | StoreError::NotFound(_),
                ) => {
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let record = Record::Review(review_record("purge", &item, reviewer, &reason));
            if let Err(e) = self.audit(vec![record]).await {
                let _ = self.store.unclaim(&item.id, &claim).await;
                return Err(e);
            }
            self.store.settle(&item.id, &claim, None).await?;
            crate::metrics::quarantine_review("purge");
            ids.push(item.id);
        }
        let cutoff = crate::store::now_unix().saturating_sub(age.as_secs());
        self.store.store().forget_settled(cutoff).await?;
        Ok(ids)
    }
}

/// The audit record of a review action on `item` (NEN 7513: who did what to which message,
/// and why).
pub fn review_record(action: &str, item: &Item, reviewer: &str, reason: &str) -> Review {
    Review {
        action: action.to_string(),
        quarantine_id: item.id.clone(),
        transaction: item.transaction.clone(),
        reviewer: reviewer.to_string(),
        reason: reason.to_string(),
        sender: item.sender.clone(),
        recipients: item.recipients.iter().map(|r| r.address.clone()).collect(),
        lanes: None,
        refused: None,
        portal_id: None,
    }
}

fn mail_from(item: &Item) -> MailFrom<String> {
    let mut flags = 0;
    if item.body_8bit {
        flags |= smtp_proto::MAIL_BODY_8BITMIME;
    }
    if item.smtputf8 {
        flags |= smtp_proto::MAIL_SMTPUTF8;
    }
    MailFrom {
        address: item.sender.clone(),
        flags,
        env_id: item.envid.clone(),
        ..Default::default()
    }
}

impl Reviewer {
    /// A reviewer over the stores and lanes of `config` (the command line's view).
    pub async fn from_config(config: &crate::config::Config) -> Result<Reviewer, ReviewError> {
        Ok(Reviewer {
            store: Quarantine::new(Arc::new(crate::store::Store::open(config).await?)),
            audit: Arc::new(AuditLog::open(
                &config.audit_file(),
                config.audit.rotate_bytes,
            )?),
            policy: Arc::new(Policy::from_config(config)),
            lanes: Arc::new(Lanes::from_config(config).map_err(ReviewError::Refused)?),
            hostname: config.server.hostname.clone(),
            spool_dir: config.server.spool_dir.clone(),
            postures: Arc::new(
                crate::posture::Postures::from_config(config).map_err(ReviewError::Refused)?,
            ),
            reports: config.review.report_listen.is_some(),
        })
    }

    /// What a reviewer sees of an item: its record, the message's header block, and where a
    /// release would send each recipient.
    pub async fn show(&self, id: &str) -> Result<serde_json::Value, ReviewError> {
        let item = self.store.get(id).await?;
        let message = self.store.message(id).await?;
        let end = memchr::memmem::find(&message, b"\r\n\r\n")
            .map(|i| i + 2)
            .unwrap_or(message.len().min(64 * 1024));
        let headers = String::from_utf8_lossy(&message[..end]).into_owned();
        let release_lanes: Vec<serde_json::Value> = item
            .recipients
            .iter()
            .map(|r| {
                serde_json::json!({
                    "recipient": r.address,
                    "require": r.require,
                    "lane": self.policy.release_lane(r.require),
                })
            })
            .collect();
        let mut v = serde_json::to_value(&item).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.insert("headers".into(), serde_json::Value::from(headers));
            o.insert(
                "release_lanes".into(),
                serde_json::Value::from(release_lanes),
            );
        }
        Ok(v)
    }
}
