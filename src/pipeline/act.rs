//! Acting on a decided transaction (DESIGN §8): store what is held, relay what may go, report
//! what is refused, and squeeze it all into the one end-of-DATA reply.
//!
//! Order matters for "nothing lost, nothing twice":
//! 1. any recipient deferred (bogus or unknown posture...): the whole transaction gets the 4xx
//!    and nothing happens: the client retries all of it later (nobody received anything yet);
//! 2. held recipients are stored in the quarantine (fsync'd); a full store defers everything
//!    (452 4.3.1);
//! 3. the decisions are written to the audit log (fsync'd); if that fails, the held copy is
//!    removed and everything is deferred: no mail moves without its record;
//! 4. the deliverable recipients go to the lane their rule chose (one upstream transaction per
//!    lane). Should the first lane defer, the held copy is removed and the client gets the 4xx.
//!    Should a later lane fail after an earlier one accepted, its recipients are held as
//!    `upstream-deferred` for review (saying 4xx then would deliver twice on retry). Refused
//!    recipients (by the policy, by an upstream) get one DSN, once something was delivered or
//!    held;
//! 5. the client gets its reply at once; then the upstream sessions say QUIT and the outcome
//!    is audited (`After`). A crash in between leaves a decision without an outcome, which the
//!    next start records as "outcome unknown": between an upstream's 250 and the client's,
//!    nothing but the reply itself is waited for, so the window in which a crash makes the
//!    client send again what was delivered is as short as SMTP allows.
//!
//! The store, the lanes and the audit log are traits here so that `act_tests` can check every
//! ordering case with fakes that record what happened when.

use std::collections::BTreeMap;
use std::future::Future;

use futures_util::future::BoxFuture;
use smtp_proto::{RcptTo, Response};

use crate::audit::record::LaneOutcome;
use crate::audit::{AuditError, Record};
use crate::policy::Decision;
use crate::quarantine::{Item, StoreError};
use crate::relay::{Closing, Envelope, Relayed};
use crate::spool::SpooledBody;
use crate::terms::{ActionKind, Level};
use crate::wire::Reply;

use super::Case;
use super::held::item;
use super::record::{self, UPSTREAM_DEFERRED};

/// Where held copies go.
pub trait Holds: Sync {
    fn put(
        &self,
        item: &Item,
        trace: &[u8],
        body: &mut SpooledBody,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn remove(&self, id: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The upstream lanes, and the one way refused recipients are reported (a DSN).
pub trait Delivers: Sync {
    /// A transaction sent but for the end of its message: nothing the upstream could deliver.
    type Staged: Send;
    fn default_name(&self) -> String;
    /// Opens `lane`'s transaction and sends all but the end of the message; `None` when there
    /// is no lane of that name, `Err` when the transaction settled before (refused, deferred).
    fn stage(
        &self,
        lane: &str,
        helo: &str,
        env: &Envelope,
        trace: &[u8],
        body: &mut SpooledBody,
    ) -> impl Future<Output = Option<Result<Self::Staged, Relayed>>> + Send;
    /// Sends the end of the message: now the upstream may accept it.
    fn commit(&self, staged: Self::Staged) -> impl Future<Output = Relayed> + Send;
    /// `None` when there is no lane of that name.
    fn relay(
        &self,
        lane: &str,
        helo: &str,
        env: &Envelope,
        trace: &[u8],
        body: &mut SpooledBody,
    ) -> impl Future<Output = Option<Relayed>> + Send;
    fn bounce(
        &self,
        helo: &str,
        env: &Envelope,
        failures: &[(RcptTo<String>, Response<String>)],
        body: &mut SpooledBody,
    ) -> impl Future<Output = ()> + Send;
}

/// The audit log.
pub trait Records: Sync {
    fn append(&self, records: &[Record]) -> impl Future<Output = Result<(), AuditError>> + Send;
    /// Durable with the next durable append, and not waited for where the log allows: for
    /// what a crash may lose because the next start records it as unknown (the outcome after
    /// a reply).
    fn append_lazy(
        &self,
        records: &[Record],
    ) -> impl Future<Output = Result<(), AuditError>> + Send {
        self.append(records)
    }
}

/// The pickup portal, as `act` sees it (DESIGN §13): seal and store for some recipients,
/// notify them once the decisions are recorded, withdraw when the transaction fails.
pub trait Seals: Sync {
    fn seal<'a>(
        &'a self,
        case: &'a Case,
        idx: &'a [usize],
        body: &'a mut SpooledBody,
    ) -> BoxFuture<'a, Result<Sealed, Reply>>;
    /// Sends the notifications; fills in who was notified, who waits for the sender, and who
    /// could not be notified.
    fn notify<'a>(&'a self, case: &'a Case, sealed: &'a mut Sealed) -> BoxFuture<'a, ()>;
    fn withdraw<'a>(&'a self, id: &'a str) -> BoxFuture<'a, ()>;
}

/// A portal item written in this transaction.
#[derive(Default)]
pub struct Sealed {
    pub id: String,
    pub recipients: Vec<usize>,
    /// Notified, or waiting for the sender's completion page: either way theirs is settled.
    pub settled: Vec<usize>,
    pub failed: Vec<usize>,
    /// What the sender's notice needs, for whoever sends it.
    pub notice: Option<Box<dyn std::any::Any + Send + Sync>>,
}

pub struct Effects<'a, H, D, R> {
    pub store: &'a H,
    pub lanes: &'a D,
    pub audit: &'a R,
    pub portal: Option<&'a dyn Seals>,
}

/// A quarantine item written in this transaction (so that it can be withdrawn).
#[derive(Debug)]
pub struct Held {
    pub id: String,
    pub recipients: Vec<usize>,
}

pub struct Acted {
    pub reply: Reply,
    /// The items that stay held (for the sender's notice).
    pub held: Vec<Held>,
    /// The portal item, when the transaction went (partly) through the portal.
    pub sealed: Option<Sealed>,
    /// What is left once the reply has gone out.
    pub after: After,
}

/// Work that follows the reply: the upstream sessions' QUIT and the outcome record.
#[derive(Default)]
pub struct After {
    closings: Vec<Closing>,
    records: Vec<Record>,
}

impl After {
    /// Says QUIT to the upstreams and records the outcome (a failure is logged and counted:
    /// the next start finds the decision without an outcome and records it as unknown).
    pub async fn finish<R: Records>(self, audit: &R, id: &str) {
        futures_util::future::join_all(self.closings.into_iter().map(Closing::finish)).await;
        if self.records.is_empty() {
            return;
        }
        // No commit of its own and no wait: the outcome costs no fsync (a crash that loses it
        // leaves a decision without an outcome, which the next start records as unknown).
        if let Err(e) = audit.append_lazy(&self.records).await {
            crate::metrics::audit_failure();
            tracing::error!(id = %id, error = %e, "audit log write failed");
        }
    }
}

impl Acted {
    fn nothing_kept(reply: Reply, closings: Vec<Closing>) -> Acted {
        Acted {
            reply,
            held: Vec::new(),
            sealed: None,
            after: After {
                closings,
                records: Vec::new(),
            },
        }
    }
}

pub async fn act<H: Holds, D: Delivers, R: Records>(
    case: &Case,
    body: &mut SpooledBody,
    fx: &Effects<'_, H, D, R>,
) -> Acted {
    let judged = &case.judged[..];
    let action = |a: ActionKind| (0..judged.len()).filter(move |&i| judged[i].decision.action == a);
    // 1. A deferral defers the whole transaction.
    if let Some(k) = action(ActionKind::Defer).next() {
        let reply = defer_reply(&case.rcpts[k].address, &judged[k].decision);
        fx.record(case, record::decisions(case, None, None, Some(k)))
            .await;
        fx.record(case, vec![record::outcome(case, &[], reply.code)])
            .await;
        return Acted::nothing_kept(reply, Vec::new());
    }
    let mut held: Vec<usize> = action(ActionKind::Quarantine).collect();
    let portal_idx: Vec<usize> = action(ActionKind::Portal).collect();
    if fx.portal.is_none() && !portal_idx.is_empty() {
        // Configuration checks forbid a portal rule without a portal; should one slip
        // through, hold rather than send weaker.
        held.extend(&portal_idx);
        held.sort_unstable();
    }
    let refused: Vec<usize> = action(ActionKind::Refuse).collect();
    let mut lanes: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for i in action(ActionKind::Deliver) {
        let lane = judged[i]
            .decision
            .lane
            .clone()
            .unwrap_or_else(|| fx.lanes.default_name());
        lanes.entry(lane).or_default().push(i);
    }

    // 2. Held copies on disk first.
    let mut stored = Vec::new();
    if !held.is_empty() {
        match hold(case, body, &held, &case.id, None, fx).await {
            Ok(h) => stored.push(h),
            Err(reply) => {
                fx.record(case, record::decisions(case, None, None, None))
                    .await;
                fx.record(case, vec![record::outcome(case, &[], reply.code)])
                    .await;
                return Acted::nothing_kept(reply, Vec::new());
            }
        }
    }
    let mut sealed = None;
    if let (Some(portal), false) = (fx.portal, portal_idx.is_empty()) {
        match portal.seal(case, &portal_idx, body).await {
            Ok(s) => sealed = Some(s),
            Err(reply) => {
                withdraw(&stored, fx).await;
                fx.record(case, record::decisions(case, None, None, None))
                    .await;
                fx.record(case, vec![record::outcome(case, &[], reply.code)])
                    .await;
                return Acted::nothing_kept(reply, Vec::new());
            }
        }
    }

    // 3. The decisions, durable before anything leaves. The first lane's transaction opens
    // meanwhile, up to the end of the message: the upstream has nothing it could deliver
    // until the final dot, which goes only once the decisions are on disk.
    let qid = stored.first().map(|h| h.id.as_str());
    let pid = sealed.as_ref().map(|s| s.id.as_str());
    let decisions = record::decisions(case, qid, pid, None);
    let mut first = None;
    let audited = match lanes.iter().next() {
        Some((lane_name, idx)) => {
            let env = case.envelope(idx, case.facts.confidential());
            let trace = case.trace_header(&env);
            let (audited, staged) = futures_util::future::join(
                fx.audit.append(&decisions),
                fx.lanes
                    .stage(lane_name, &case.hostname, &env, &trace, body),
            )
            .await;
            first = staged;
            audited
        }
        None => fx.audit.append(&decisions).await,
    };
    if let Err(e) = audited {
        tracing::error!(id = %case.id, error = %e, "audit log write failed: transaction deferred");
        crate::metrics::audit_failure();
        // A staged transaction is dropped without its final dot: the upstream discards it.
        drop(first);
        withdraw(&stored, fx).await;
        withdraw_sealed(sealed.as_ref(), fx).await;
        return Acted::nothing_kept(
            Reply::new(
                451,
                "4.3.0",
                "Local error: the decision could not be recorded, try again later",
            ),
            Vec::new(),
        );
    }

    // 4. The portal's notifications, then delivery, one upstream transaction per lane. A
    // notified recipient counts as delivered: a 4xx after it would notify twice on retry.
    let mut accepted: Option<Reply> = None;
    let mut outcome = Vec::new();
    let mut bounced: Vec<(RcptTo<String>, Response<String>)> = Vec::new();
    if let (Some(portal), Some(s)) = (fx.portal, sealed.as_mut()) {
        portal.notify(case, s).await;
        if s.settled.is_empty() {
            // Nobody notified, nothing left: the client keeps the message and retries.
            drop(first);
            withdraw(&stored, fx).await;
            withdraw_sealed(Some(s), fx).await;
            let reply = Reply::new(
                451,
                "4.3.0",
                "Local error: the secure pickup notification could not be sent, try again later",
            );
            fx.record(case, vec![record::outcome(case, &[], reply.code)])
                .await;
            return Acted::nothing_kept(reply, Vec::new());
        }
        let note = Response {
            code: 550,
            esc: [5, 3, 0],
            message: "the secure pickup notification could not be sent to this recipient; \
                      send the message again"
                .into(),
        };
        bounced.extend(
            s.failed
                .iter()
                .map(|&i| (case.rcpts[i].clone(), note.clone())),
        );
        accepted = Some(Reply::new(
            250,
            "2.0.0",
            format!("Ok: sent via the secure pickup portal as {}", s.id),
        ));
    }
    let mut closings = Vec::new();
    let last = lanes.len().saturating_sub(1);
    for (n, (lane_name, idx)) in lanes.iter().enumerate() {
        let env = case.envelope(idx, case.facts.confidential());
        let trace = case.trace_header(&env);
        let relayed = if n == 0 {
            match first.take() {
                Some(Ok(staged)) => Some(fx.lanes.commit(staged).await),
                Some(Err(settled)) => Some(settled),
                None => None,
            }
        } else {
            fx.lanes
                .relay(lane_name, &case.hostname, &env, &trace, body)
                .await
        };
        let Some(relayed) = relayed else {
            continue;
        };
        let reply = relayed.reply;
        closings.extend(relayed.closing);
        outcome.push(LaneOutcome {
            lane: lane_name.clone(),
            recipients: env.rcpts.iter().map(|r| r.address.clone()).collect(),
            upstream_reply: format!("{} {}", reply.code, reply.status),
        });
        if reply.is_positive() {
            bounced.extend(relayed.refused);
            accepted.get_or_insert(reply);
            continue;
        }
        let nothing_delivered = accepted.is_none();
        if nothing_delivered && (reply.is_transient() || (n == last && stored.is_empty())) {
            // (With portal recipients notified, `accepted` is set: never here.)
            // Nothing has left: the client keeps the message and retries or bounces it.
            withdraw(&stored, fx).await;
            fx.record(case, vec![record::outcome(case, &outcome, reply.code)])
                .await;
            return Acted::nothing_kept(reply, closings);
        }
        if reply.is_transient() {
            // Another lane accepted: a 4xx now would deliver twice on retry. Hold these.
            tracing::warn!(id = %case.id, lane = %lane_name, status = reply.code, "a later lane deferred: its recipients are held for review");
            let late_id = format!("{}-{n}", case.id);
            let why = format!(
                "the upstream lane answered {} {} after another lane had accepted the message",
                reply.code, reply.status
            );
            match hold(case, body, idx, &late_id, Some(&why), fx).await {
                Ok(h) => stored.push(h),
                // Neither delivered nor held: the sender must hear of it.
                Err(_) => bounced.extend(env.rcpts.iter().map(|r| (r.clone(), failed(&reply)))),
            }
        } else {
            bounced.extend(env.rcpts.iter().map(|r| (r.clone(), failed(&reply))));
        }
    }

    // One DSN for every recipient refused, by the policy or an upstream, once something was
    // delivered or held (otherwise the reply itself says it).
    bounced.extend(
        refused
            .iter()
            .map(|&i| (case.rcpts[i].clone(), refusal(&judged[i].decision))),
    );
    if !bounced.is_empty() && (accepted.is_some() || !stored.is_empty()) {
        let env = case.envelope(&[], false);
        fx.lanes.bounce(&case.hostname, &env, &bounced, body).await;
    }

    // 5. The reply; the outcome follows it.
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
                let mut reply = Reply::from_upstream(&r);
                reply.lines[0] = format!("<{}>: {}", case.rcpts[k].address, reply.lines[0]);
                reply
            }
            None => Reply::new(451, "4.3.0", "Local error: no lane took the recipients"),
        },
    };
    // The outcome is recorded after the reply (`After`): see the order at the top.
    let records = vec![record::outcome(case, &outcome, reply.code)];
    Acted {
        reply,
        held: stored,
        sealed,
        after: After { closings, records },
    }
}

impl<H: Holds, D: Delivers, R: Records> Effects<'_, H, D, R> {
    /// Appends records whose failure changes nothing any more (it is logged and counted).
    async fn record(&self, case: &Case, records: Vec<Record>) {
        if let Err(e) = self.audit.append(&records).await {
            crate::metrics::audit_failure();
            tracing::error!(id = %case.id, error = %e, "audit log write failed");
        }
    }
}

/// Stores the held recipients' copy; the reply to give when that is impossible. `late`:
/// held because a later lane deferred after another had accepted (why), which is a decision
/// of its own and audited here.
async fn hold<H: Holds, D: Delivers, R: Records>(
    case: &Case,
    body: &mut SpooledBody,
    idx: &[usize],
    id: &str,
    late: Option<&str>,
    fx: &Effects<'_, H, D, R>,
) -> Result<Held, Reply> {
    let item = item(case, idx, id, late);
    let trace = case.trace_header(&case.envelope(idx, false));
    let held = match fx.store.put(&item, &trace, body).await {
        Ok(()) => {
            tracing::info!(id = %case.id, quarantine = %item.id, recipients = idx.len(), "held for review");
            Ok(Held {
                id: item.id,
                recipients: idx.to_vec(),
            })
        }
        Err(StoreError::Full { used, max }) => {
            tracing::error!(id = %case.id, used, max, "quarantine full: transaction deferred");
            Err(Reply::new(
                452,
                "4.3.1",
                "Insufficient system storage: the quarantine is full, try again later",
            ))
        }
        Err(e) => {
            tracing::error!(id = %case.id, error = %e, "cannot store in quarantine: transaction deferred");
            Err(Reply::new(
                451,
                "4.3.0",
                "Local error while holding the message for review, try again later",
            ))
        }
    };
    if let Some(why) = late {
        let records = idx
            .iter()
            .map(|&i| {
                let qid = held.as_ref().ok().map(|_| id);
                record::decision_for(
                    case,
                    i,
                    "quarantine",
                    UPSTREAM_DEFERRED,
                    vec![why.to_string()],
                    qid,
                )
            })
            .collect();
        fx.record(case, records).await;
    }
    held
}

async fn withdraw_sealed<H: Holds, D: Delivers, R: Records>(
    sealed: Option<&Sealed>,
    fx: &Effects<'_, H, D, R>,
) {
    if let (Some(portal), Some(s)) = (fx.portal, sealed) {
        portal.withdraw(&s.id).await;
    }
}

async fn withdraw<H: Holds, D: Delivers, R: Records>(stored: &[Held], fx: &Effects<'_, H, D, R>) {
    for h in stored {
        if let Err(e) = fx.store.remove(&h.id).await {
            tracing::error!(quarantine = %h.id, error = %e, "cannot withdraw a quarantine item");
        }
    }
}

/// A lane's failure, as the DSN reports it for each of its recipients.
fn failed(reply: &Reply) -> Response<String> {
    Response {
        code: reply.code,
        esc: [reply.code as u8 / 100, 0, 0],
        message: reply.lines.join(" "),
    }
}

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
        .is_some_and(|p| p.posture == Level::Bogus);
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
