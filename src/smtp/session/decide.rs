//! The end of a transaction (DESIGN §2 steps 3–6 and §8): inspect, decide per recipient, store
//! what is held, relay what may go, record every decision, and squeeze it all into the one
//! end-of-DATA reply.
//!
//! Order matters for "nothing lost, nothing twice":
//! 1. any recipient deferred (bogus or unknown posture...): the whole transaction gets the 4xx
//!    and nothing happens: the client retries all of it later (nobody received anything yet);
//! 2. held recipients are stored in the quarantine (fsync'd); a full store defers everything
//!    (452 4.3.1);
//! 3. the decisions are written to the audit log (fsync'd); if that fails, the held copy is
//!    removed and everything is deferred: no mail moves without its record;
//! 4. the deliverable recipients go to the lane their rule chose (one upstream transaction per
//!    lane); refused recipients get a DSN once delivery succeeded. Should the first lane defer,
//!    the held copy is removed and the client gets the 4xx. Should a later lane fail after an
//!    earlier one accepted, its recipients are held as `upstream-deferred` for review (saying
//!    4xx then would deliver twice on retry);
//! 5. the outcome is audited, then the client gets its reply.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value, json};
use smtp_proto::{RcptTo, Response};

use crate::config::ActionKind;
use crate::inspect::Inspection;
use crate::policy::{Decision, MessageFacts, RecipientFacts};
use crate::posture::{RecipientClass, domain_of};
use crate::quarantine::{HeldRecipient, Item, StoreError};
use crate::relay::{self, Envelope};
use crate::wire::reply::Reply;
use crate::spool::SpooledBody;

use super::{Session, Transaction};

/// One recipient's decision with the class it was made for.
pub(super) struct Judged {
    class: RecipientClass,
    decision: Decision,
}

/// A quarantine item written in this transaction (so that it can be withdrawn).
struct Held {
    id: String,
    recipients: Vec<usize>,
}

/// One decided transaction: what every step after the decision needs.
struct Case<'a> {
    tx: &'a Transaction,
    facts: MessageFacts,
    judged: Vec<Judged>,
    message_id: Option<String>,
    /// Masked findings ("bsn ***-**-782 in part 1 (high)"), for the audit log and the
    /// quarantine: never the values.
    findings: Vec<String>,
}

impl Session {
    /// Decides, stores, relays and records one transaction; returns the end-of-DATA reply.
    pub(super) async fn judge_and_relay(
        &self,
        tx: &Transaction,
        body: &mut SpooledBody,
        size: usize,
    ) -> Reply {
        let inspection = self.inspect(body, &tx.id).await;
        let signals = self.forward_signals(&tx.mail_from.address, inspection.as_ref());
        let facts = self.message_facts(tx, inspection.as_ref(), &signals, size);
        let judged = self.decide_all(tx, &facts).await;
        let case = Case {
            tx,
            facts,
            judged,
            message_id: inspection.as_ref().and_then(|i| i.message_id.clone()),
            findings: masked_findings(inspection.as_ref()),
        };
        let reply = self.act(&case, body).await;
        let (facts, judged) = (&case.facts, &case.judged);
        let rule = match judged.first() {
            Some(j) if judged.iter().all(|o| o.decision.rule == j.decision.rule) => {
                j.decision.rule.as_str()
            }
            _ => "mixed",
        };
        crate::metrics::message(reply.code, rule);
        let mut by_rule: BTreeMap<String, usize> = BTreeMap::new();
        for j in judged {
            *by_rule
                .entry(format!("{}:{}", j.decision.rule, j.decision.action.name()))
                .or_default() += 1;
        }
        tracing::info!(
            id = %tx.id,
            client = %self.peer.ip(),
            user = self.auth_user.as_deref().unwrap_or("-"),
            from_domain = domain_of(&tx.mail_from.address),
            rcpt_domains = %tx.rcpts.iter().map(|r| domain_of(&r.address)).collect::<Vec<_>>().join(","),
            rcpts = tx.rcpts.len(),
            size,
            status = reply.code,
            decisions = %by_rule.iter().map(|(k, n)| format!("{k}={n}")).collect::<Vec<_>>().join(","),
            forward = %facts.forward_signals.join(","),
            sensitive = facts.sensitive,
            score = facts.score,
            detectors = %facts.detectors.join(","),
            uninspectable = facts.uninspectable,
            tagged = facts.tagged,
            "transaction"
        );
        reply
    }

    fn message_facts(
        &self,
        tx: &Transaction,
        inspection: Option<&Inspection>,
        signals: &[&'static str],
        size: usize,
    ) -> MessageFacts {
        let tagged = inspection
            .and_then(|i| i.subject.as_deref())
            .is_some_and(|s| self.rt.policy.tagged(s));
        MessageFacts {
            sensitive: inspection.is_some_and(|i| i.sensitive),
            score: inspection.map_or(0, |i| i.score),
            detectors: inspection
                .map(|i| i.detectors().into_iter().map(str::to_string).collect())
                .unwrap_or_default(),
            forward_signals: signals.iter().map(|s| s.to_string()).collect(),
            // A message that could not be inspected at all is treated as uninspectable.
            uninspectable: inspection.is_none_or(|i| i.uninspectable()),
            tagged,
            size: size as u64,
            sender_domain: domain_of(&tx.mail_from.address),
        }
    }

    async fn decide_all(&self, tx: &Transaction, facts: &MessageFacts) -> Vec<Judged> {
        let decisions = tx.rcpts.iter().map(|rcpt| async {
            let domain = domain_of(&rcpt.address);
            let listed = self.rt.classifier.class_of_domain(&domain);
            let lapsed = matches!(listed, RecipientClass::Managed | RecipientClass::Partner)
                && !self.rt.ownership.is_proven(&domain);
            let class = if lapsed {
                RecipientClass::Unmanaged
            } else {
                listed
            };
            let r = RecipientFacts {
                domain,
                class,
                lapsed,
            };
            let decision = self.rt.policy.decide(facts, &r, &*self.rt).await;
            let posture = decision
                .posture
                .as_ref()
                .map_or("not-assessed", |p| p.posture.name());
            crate::metrics::recipient_decided(decision.action.name(), posture, class.name());
            Judged { class, decision }
        });
        futures_util::future::join_all(decisions).await
    }

    async fn act(&self, case: &Case<'_>, body: &mut SpooledBody) -> Reply {
        let (tx, judged) = (case.tx, &case.judged[..]);
        let action =
            |a: ActionKind| (0..judged.len()).filter(move |&i| judged[i].decision.action == a);
        // 1. A deferral defers the whole transaction.
        if let Some(k) = action(ActionKind::Defer).next() {
            let d = &judged[k].decision;
            let reply = defer_reply(&tx.rcpts[k].address, d);
            let records = self.decision_records(case, None, Some(k));
            if let Err(e) = self.audit(records).await {
                crate::metrics::audit_failure();
                tracing::error!(id = %tx.id, error = %e, "audit log write failed");
            }
            self.audit_outcome(tx, &[], reply.code).await;
            return reply;
        }
        let held: Vec<usize> = action(ActionKind::Quarantine).collect();
        let refused: Vec<usize> = action(ActionKind::Refuse).collect();
        let mut lanes: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for i in action(ActionKind::Deliver) {
            let lane = judged[i]
                .decision
                .lane
                .clone()
                .unwrap_or_else(|| self.rt.lanes.default.clone());
            lanes.entry(lane).or_default().push(i);
        }

        // 2. Held copies on disk first.
        let mut stored = Vec::new();
        if !held.is_empty() {
            match self.hold(case, body, &held, &tx.id, None).await {
                Ok(h) => stored.push(h),
                Err(reply) => {
                    let records = self.decision_records(case, None, None);
                    if self.audit(records).await.is_err() {
                        crate::metrics::audit_failure();
                    }
                    self.audit_outcome(tx, &[], reply.code).await;
                    return reply;
                }
            }
        }

        // 3. The decisions, durable before anything leaves.
        let qid = stored.first().map(|h| h.id.as_str());
        let records = self.decision_records(case, qid, None);
        if let Err(e) = self.audit(records).await {
            tracing::error!(id = %tx.id, error = %e, "audit log write failed: transaction deferred");
            crate::metrics::audit_failure();
            self.withdraw(&stored).await;
            return Reply::new(
                451,
                "4.3.0",
                "Local error: the decision could not be recorded, try again later",
            );
        }

        // 4. Delivery, one upstream transaction per lane.
        let policy_refused: Vec<(RcptTo<String>, Response<String>)> = refused
            .iter()
            .map(|&i| (tx.rcpts[i].clone(), refusal(&judged[i].decision)))
            .collect();
        let mut accepted: Option<Reply> = None;
        let mut outcome = Vec::new();
        let mut dsn_pending = !policy_refused.is_empty();
        let mut bounced: Vec<(RcptTo<String>, Response<String>)> = Vec::new();
        let last = lanes.len().saturating_sub(1);
        for (n, (lane_name, idx)) in lanes.iter().enumerate() {
            let Some(lane) = self.rt.lanes.get(lane_name) else {
                continue;
            };
            let env = Envelope {
                id: tx.id.clone(),
                mail_from: tx.mail_from.clone(),
                rcpts: idx.iter().map(|&i| tx.rcpts[i].clone()).collect(),
                require_tls: case.facts.confidential(),
            };
            let trace = self.trace_header(&env);
            let dsn_for: &[_] = if dsn_pending { &policy_refused } else { &[] };
            let reply = relay::relay(&lane, self.hostname(), &env, &trace, body, dsn_for).await;
            outcome.push(json!({
                "lane": lane_name,
                "recipients": env.rcpts.iter().map(|r| r.address.clone()).collect::<Vec<_>>(),
                "upstream_reply": format!("{} {}", reply.code, reply.status),
            }));
            if reply.is_positive() {
                dsn_pending = false;
                accepted.get_or_insert(reply);
                continue;
            }
            let nothing_delivered = accepted.is_none();
            if nothing_delivered && (reply.is_transient() || (n == last && stored.is_empty())) {
                // Nothing has left: the client keeps the message and retries or bounces it.
                self.withdraw(&stored).await;
                self.audit_outcome(tx, &outcome, reply.code).await;
                return reply;
            }
            if reply.is_transient() {
                // Another lane accepted: a 4xx now would deliver twice on retry. Hold these.
                tracing::warn!(id = %tx.id, lane = %lane_name, status = reply.code, "a later lane deferred: its recipients are held for review");
                let late_id = format!("{}-{n}", tx.id);
                let why = format!(
                    "the upstream lane answered {} {} after another lane had accepted the message",
                    reply.code, reply.status
                );
                if let Ok(h) = self.hold(case, body, idx, &late_id, Some(&why)).await {
                    stored.push(h);
                }
            } else {
                let response = Response {
                    code: reply.code,
                    esc: [5, 0, 0],
                    message: reply.lines.join(" "),
                };
                bounced.extend(env.rcpts.iter().map(|r| (r.clone(), response.clone())));
            }
        }

        // Refusals still owed a DSN: nothing was delivered but something was held, or a lane
        // refused for good after another took the message.
        if dsn_pending {
            bounced.extend(policy_refused.iter().cloned());
        }
        if !bounced.is_empty() && (accepted.is_some() || !stored.is_empty()) {
            let failures: Vec<(&RcptTo<String>, &Response<String>)> =
                bounced.iter().map(|(r, x)| (r, x)).collect();
            let env = Envelope {
                id: tx.id.clone(),
                mail_from: tx.mail_from.clone(),
                rcpts: Vec::new(),
                require_tls: false,
            };
            relay::dsn::send_failure_notice(
                &self.rt.lanes.default_lane(),
                self.hostname(),
                &env,
                &failures,
                body,
            )
            .await;
        }
        self.notify_held(case, &stored);

        // 5. The outcome, then the reply.
        let reply = match accepted {
            Some(r) => r,
            None if !stored.is_empty() => {
                let h = &stored[0];
                let rule = &judged[h.recipients[0]].decision.rule;
                Reply::new(
                    250,
                    "2.0.0",
                    format!(
                        "Ok: held for review as {} (rule {rule}){}",
                        h.id,
                        if refused.is_empty() {
                            ""
                        } else {
                            "; some recipients refused, see the notice"
                        }
                    ),
                )
            }
            None => match refused.first() {
                Some(&k) => {
                    let r = refusal(&judged[k].decision);
                    let mut reply = relay::from_upstream(&r);
                    reply.lines[0] = format!("<{}>: {}", tx.rcpts[k].address, reply.lines[0]);
                    reply
                }
                None => Reply::new(451, "4.3.0", "Local error: no lane took the recipients"),
            },
        };
        self.audit_outcome(tx, &outcome, reply.code).await;
        reply
    }

    /// Stores the held recipients' copy; the reply to give when that is impossible. `late`:
    /// held because a later lane deferred after another had accepted (why), which is a
    /// decision of its own and audited here.
    async fn hold(
        &self,
        case: &Case<'_>,
        body: &mut SpooledBody,
        idx: &[usize],
        id: &str,
        late: Option<&str>,
    ) -> Result<Held, Reply> {
        let item = self.item(case, idx, id, late);
        let held = self.put(item, case.tx, body, idx).await;
        if let Some(why) = late {
            let records = idx
                .iter()
                .map(|&i| {
                    self.decision_record(
                        case,
                        i,
                        "quarantine",
                        UPSTREAM_DEFERRED,
                        vec![why.to_string()],
                        Some(id),
                    )
                })
                .collect();
            if let Err(e) = self.audit(records).await {
                crate::metrics::audit_failure();
                tracing::error!(id = %case.tx.id, error = %e, "audit log write failed");
            }
        }
        held
    }

    async fn put(
        &self,
        item: Item,
        tx: &Transaction,
        body: &mut SpooledBody,
        idx: &[usize],
    ) -> Result<Held, Reply> {
        let env = Envelope {
            id: tx.id.clone(),
            mail_from: tx.mail_from.clone(),
            rcpts: idx.iter().map(|&i| tx.rcpts[i].clone()).collect(),
            require_tls: false,
        };
        let trace = self.trace_header(&env);
        match self.rt.quarantine.put(&item, &trace, body).await {
            Ok(()) => {
                tracing::info!(id = %tx.id, quarantine = %item.id, recipients = idx.len(), "held for review");
                Ok(Held {
                    id: item.id,
                    recipients: idx.to_vec(),
                })
            }
            Err(StoreError::Full { used, max }) => {
                tracing::error!(id = %tx.id, used, max, "quarantine full: transaction deferred");
                Err(Reply::new(
                    452,
                    "4.3.1",
                    "Insufficient system storage: the quarantine is full, try again later",
                ))
            }
            Err(e) => {
                tracing::error!(id = %tx.id, error = %e, "cannot store in quarantine: transaction deferred");
                Err(Reply::new(
                    451,
                    "4.3.0",
                    "Local error while holding the message for review, try again later",
                ))
            }
        }
    }

    fn item(&self, case: &Case<'_>, idx: &[usize], id: &str, late: Option<&str>) -> Item {
        let (tx, facts) = (case.tx, &case.facts);
        let (created, created_unix) = crate::quarantine::stamp();
        Item {
            id: id.to_string(),
            transaction: tx.id.clone(),
            created,
            created_unix,
            client: self.peer.ip().to_string(),
            user: self.auth_user.clone(),
            sender: tx.mail_from.address.clone(),
            body_8bit: tx.mail_from.flags & smtp_proto::MAIL_BODY_8BITMIME != 0,
            smtputf8: tx.mail_from.flags & smtp_proto::MAIL_SMTPUTF8 != 0,
            envid: tx.mail_from.env_id.clone(),
            message_id: case.message_id.clone(),
            size: facts.size,
            sensitive: facts.sensitive,
            score: facts.score,
            findings: case.findings.clone(),
            forward_signals: facts.forward_signals.clone(),
            recipients: idx
                .iter()
                .map(|&i| {
                    let d = &case.judged[i].decision;
                    let (rule, reasons) = match late {
                        Some(why) => (UPSTREAM_DEFERRED.to_string(), vec![why.to_string()]),
                        None => (d.rule.clone(), d.reasons.clone()),
                    };
                    HeldRecipient {
                        address: tx.rcpts[i].address.clone(),
                        orcpt: tx.rcpts[i].orcpt.clone(),
                        rule,
                        reasons,
                        // A late-lane hold keeps the lane's requirement: release never weaker.
                        require: d.require,
                        posture: d
                            .posture
                            .as_ref()
                            .and_then(|p| serde_json::to_value(&**p).ok()),
                    }
                })
                .collect(),
        }
    }

    async fn withdraw(&self, stored: &[Held]) {
        for h in stored {
            if let Err(e) = self.rt.quarantine.remove(&h.id).await {
                tracing::error!(quarantine = %h.id, error = %e, "cannot withdraw a quarantine item");
            }
        }
    }

    /// The audit records of the decisions, one per recipient.
    fn decision_records(
        &self,
        case: &Case<'_>,
        quarantine_id: Option<&str>,
        deferred_by: Option<usize>,
    ) -> Vec<Map<String, Value>> {
        let judged = &case.judged;
        (0..judged.len())
            .map(|i| {
                let d = &judged[i].decision;
                let (decision, rule, reasons) = match deferred_by {
                    Some(k) if k != i => (
                        "defer",
                        "deferred-with-transaction",
                        vec![format!(
                            "another recipient was deferred by rule {}; the whole transaction is \
                             retried (would have been: {} by {})",
                            judged[k].decision.rule,
                            d.action.name(),
                            d.rule
                        )],
                    ),
                    _ => (d.action.name(), d.rule.as_str(), d.reasons.clone()),
                };
                let qid = quarantine_id.filter(|_| decision == "quarantine");
                self.decision_record(case, i, decision, rule, reasons, qid)
            })
            .collect()
    }

    /// One decision for recipient `i`, with the NEN 7513 fields: who, what, when, why.
    fn decision_record(
        &self,
        case: &Case<'_>,
        i: usize,
        decision: &str,
        rule: &str,
        mut reasons: Vec<String>,
        quarantine_id: Option<&str>,
    ) -> Map<String, Value> {
        let (tx, facts) = (case.tx, &case.facts);
        let j = &case.judged[i];
        let d = &j.decision;
        if reasons.is_empty() {
            reasons.push("no condition (catch-all rule)".into());
        }
        let mut r = crate::audit_record!("decision", {
            "transaction": tx.id,
            "client": self.peer.ip().to_string(),
            "user": self.auth_user,
            "sender": tx.mail_from.address,
            "recipient": tx.rcpts[i].address,
            "recipient_class": j.class.name(),
            "message_id": case.message_id,
            "decision": decision,
            "rule": rule,
            "reasons": reasons,
            "lane": d.lane,
            "require": d.require,
            "sensitive": facts.sensitive,
            "score": facts.score,
            "findings": case.findings,
            "forward_signals": facts.forward_signals,
        });
        if let Some(p) = &d.posture {
            r.insert(
                "posture".into(),
                json!({
                    "level": p.posture,
                    "assessed_at": p.assessed_at,
                    "checks": p.checks,
                }),
            );
        }
        if let Some(q) = quarantine_id {
            r.insert("quarantine_id".into(), Value::from(q));
        }
        r
    }

    async fn audit_outcome(&self, tx: &Transaction, lanes: &[Value], code: u16) {
        let record = crate::audit_record!("outcome", {
            "transaction": tx.id,
            "client": self.peer.ip().to_string(),
            "lanes": lanes,
            "reply": code,
        });
        if let Err(e) = self.audit(vec![record]).await {
            crate::metrics::audit_failure();
            tracing::error!(id = %tx.id, error = %e, "audit log write failed for the outcome");
        }
    }

    async fn audit(&self, records: Vec<Map<String, Value>>) -> Result<(), String> {
        self.rt
            .audit
            .append_async(records)
            .await
            .map_err(|e| e.to_string())
    }

    /// Tells the sender about held recipients whose rule asks for it, in the background.
    fn notify_held(&self, case: &Case<'_>, stored: &[Held]) {
        let (tx, judged) = (case.tx, &case.judged);
        if !self.rt.config.policy.notify_quarantined || tx.mail_from.address.is_empty() {
            return;
        }
        for h in stored {
            let held: Vec<(String, String)> = h
                .recipients
                .iter()
                .filter(|&&i| judged[i].decision.notify)
                .map(|&i| {
                    let d = &judged[i].decision;
                    (
                        tx.rcpts[i].address.clone(),
                        d.reply_text
                            .clone()
                            .unwrap_or_else(|| format!("held by rule {}", d.rule)),
                    )
                })
                .collect();
            if held.is_empty() {
                continue;
            }
            let pairs: Vec<(&str, &str)> =
                held.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
            let notice = crate::quarantine::notice::compose(
                self.hostname(),
                &tx.mail_from.address,
                &h.id,
                case.message_id.as_deref(),
                &pairs,
            );
            let lane: Arc<_> = self.rt.lanes.default_lane();
            let hostname = self.hostname().to_string();
            let to = tx.mail_from.address.clone();
            let id = h.id.clone();
            tokio::spawn(async move {
                match relay::dsn::send(&lane, &hostname, &to, &notice).await {
                    Ok(()) => {
                        tracing::info!(quarantine = %id, "sent the sender a quarantine notice")
                    }
                    Err(e) => {
                        tracing::warn!(quarantine = %id, error = %e, "could not send the quarantine notice")
                    }
                }
            });
        }
    }
}

fn masked_findings(inspection: Option<&Inspection>) -> Vec<String> {
    inspection
        .map(|i| {
            i.findings
                .iter()
                .map(|f| {
                    format!(
                        "{} {} in {} ({})",
                        f.detector.name(),
                        f.masked,
                        f.location,
                        f.confidence.name()
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The rule of recipients held because a later lane deferred after another had accepted.
const UPSTREAM_DEFERRED: &str = "upstream-deferred";

/// The SMTP response for a refused recipient (in the reply or the DSN).
fn refusal(d: &Decision) -> Response<String> {
    Response {
        code: 550,
        esc: [5, 7, 1],
        message: format!(
            "{} (rule {}: {})",
            d.reply_text
                .as_deref()
                .unwrap_or("Recipient refused by policy"),
            d.rule,
            d.reasons.join("; ")
        ),
    }
}

fn defer_reply(rcpt: &str, d: &Decision) -> Reply {
    let bogus = d
        .posture
        .as_ref()
        .is_some_and(|p| p.posture == crate::posture::Level::Bogus);
    let status = if bogus {
        "4.7.5"
    } else if d.posture.is_some() {
        "4.4.3"
    } else {
        "4.7.0"
    };
    Reply::new(
        451,
        status,
        format!(
            "<{rcpt}>: {} (rule {})",
            d.reply_text
                .as_deref()
                .unwrap_or("Deferred by policy, try again later"),
            d.rule
        ),
    )
}
