//! `act` against fakes of the store, the lanes and the audit log that write what happened, in
//! order, to one shared log: each test names an ordering case of the invariant at the top of
//! `act.rs` and fails when the step it guards moves.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use smtp_proto::{MailFrom, RcptTo, Response};

use super::act::{Acted, Delivers, Effects, Holds, Records, act};
use super::act_portal_tests::FakePortal;
use super::{Case, Judged};
use crate::audit::{AuditError, Record};
use crate::policy::{Decision, MessageFacts};
use crate::quarantine::{Item, StoreError};
use crate::relay::{Closing, Envelope, Relayed};
use crate::smtp::SessionFacts;
use crate::spool::SpooledBody;
use crate::terms::{ActionKind, RecipientClass};
use crate::wire::Reply;

pub(super) type Log = Arc<Mutex<Vec<String>>>;

pub(super) fn push(log: &Log, line: String) {
    log.lock().unwrap().push(line);
}

struct FakeStore {
    log: Log,
    full: bool,
}

impl Holds for FakeStore {
    async fn put(
        &self,
        item: &Item,
        _trace: &[u8],
        _body: &mut SpooledBody,
    ) -> Result<(), StoreError> {
        if self.full {
            return Err(StoreError::Full { used: 10, max: 10 });
        }
        let rcpts: Vec<&str> = item.recipients.iter().map(|r| r.address.as_str()).collect();
        push(&self.log, format!("hold {} {}", item.id, rcpts.join(",")));
        Ok(())
    }

    async fn remove(&self, id: &str) -> Result<(), StoreError> {
        push(&self.log, format!("withdraw {id}"));
        Ok(())
    }
}

/// Lanes answering as configured: (code, enhanced status) per lane; `refuse` lists
/// recipients an accepting upstream still refuses.
struct FakeLanes {
    log: Log,
    answers: HashMap<&'static str, (u16, &'static str)>,
    refuse: Vec<&'static str>,
}

impl Delivers for FakeLanes {
    /// The lane and the envelope: the upstream's answer comes at `commit`, like a real one's
    /// to the final dot.
    type Staged = (String, Envelope);

    fn default_name(&self) -> String {
        "default".into()
    }

    async fn stage(
        &self,
        lane: &str,
        _helo: &str,
        env: &Envelope,
        _trace: &[u8],
        _body: &mut SpooledBody,
    ) -> Option<Result<(String, Envelope), Relayed>> {
        self.answers.get(lane)?;
        push(&self.log, format!("open {lane}"));
        Some(Ok((lane.to_string(), env.clone())))
    }

    async fn commit(&self, (lane, env): (String, Envelope)) -> Relayed {
        let dir = tempfile::tempdir().unwrap();
        let mut body = SpooledBody::new(dir.path().to_path_buf(), 1 << 20);
        self.relay(&lane, "", &env, b"", &mut body)
            .await
            .expect("staged on a known lane")
    }

    async fn relay(
        &self,
        lane: &str,
        _helo: &str,
        env: &Envelope,
        _trace: &[u8],
        _body: &mut SpooledBody,
    ) -> Option<Relayed> {
        let &(code, status) = self.answers.get(lane)?;
        let rcpts: Vec<&str> = env.rcpts.iter().map(|r| r.address.as_str()).collect();
        push(&self.log, format!("relay {lane} {}", rcpts.join(",")));
        let reply = Reply::new(code, status, "upstream says so");
        let refused = if reply.is_positive() {
            env.rcpts
                .iter()
                .filter(|r| self.refuse.contains(&r.address.as_str()))
                .map(|r| (r.clone(), response(550)))
                .collect()
        } else {
            Vec::new()
        };
        let (log, lane) = (self.log.clone(), lane.to_string());
        let closing = Closing::new(async move { push(&log, format!("quit {lane}")) });
        Some(Relayed {
            reply,
            refused,
            closing: Some(closing),
        })
    }

    async fn bounce(
        &self,
        _helo: &str,
        _env: &Envelope,
        failures: &[(RcptTo<String>, Response<String>)],
        _body: &mut SpooledBody,
    ) {
        let mut rcpts: Vec<&str> = failures.iter().map(|(r, _)| r.address.as_str()).collect();
        rcpts.sort_unstable();
        push(&self.log, format!("dsn {}", rcpts.join(",")));
    }
}

struct FakeAudit {
    log: Log,
    fail: bool,
}

impl Records for FakeAudit {
    async fn append(&self, records: &[Record]) -> Result<(), AuditError> {
        if self.fail {
            push(&self.log, "audit failed".into());
            return Err(AuditError::Io {
                path: "audit.jsonl".into(),
                source: std::io::Error::other("disk full"),
            });
        }
        for r in records {
            let line = match r {
                Record::Decision(d) => format!(
                    "audit {} {} {}{}",
                    d.recipient,
                    d.decision,
                    d.rule,
                    d.quarantine_id
                        .as_deref()
                        .map(|q| format!(" {q}"))
                        .unwrap_or_default()
                ),
                Record::Outcome(o) => format!("audit outcome {}", o.reply),
                Record::Message(m) => format!("audit message {}", m.recipients),
                other => format!("audit {other:?}"),
            };
            push(&self.log, line);
        }
        Ok(())
    }
}

fn response(code: u16) -> Response<String> {
    Response {
        code,
        esc: [5, 1, 1],
        message: "no such user".into(),
    }
}

/// A recipient: its address, the action decided, and for deliveries the lane.
type Rcpt = (&'static str, ActionKind, Option<&'static str>);

pub(super) fn case(rcpts: &[Rcpt]) -> Case {
    let decision = |action: ActionKind, lane: Option<&str>| Decision {
        rule: format!("rule-{}", action.name()),
        action,
        lane: lane.map(str::to_string),
        require: None,
        reasons: vec!["test".into()],
        reply_text: None,
        notify: false,
        allow_override: false,
        posture: None,
    };
    Case {
        id: "T".into(),
        mail_from: MailFrom {
            address: "dr@org.test".into(),
            ..Default::default()
        },
        rcpts: rcpts
            .iter()
            .map(|(a, _, _)| RcptTo {
                address: a.to_string(),
                ..Default::default()
            })
            .collect(),
        session: SessionFacts {
            client_ip: std::net::Ipv4Addr::LOCALHOST.into(),
            helo: "client.org.test".into(),
            esmtp: true,
            tls: None,
            user: None,
        },
        hostname: "gw.org.test".into(),
        sender_name: None,
        subject: None,
        phones: Default::default(),
        facts: MessageFacts::default(),
        judged: rcpts
            .iter()
            .map(|&(_, action, lane)| Judged {
                class: RecipientClass::Unmanaged,
                decision: decision(action, lane),
            })
            .collect(),
        message_id: None,
        findings: Vec::new(),
    }
}

pub(super) struct World {
    pub(super) log: Log,
    store: FakeStore,
    lanes: FakeLanes,
    audit: FakeAudit,
    pub(super) portal: FakePortal,
}

pub(super) fn world(answers: &[(&'static str, (u16, &'static str))]) -> World {
    let log = Log::default();
    World {
        store: FakeStore {
            log: log.clone(),
            full: false,
        },
        lanes: FakeLanes {
            log: log.clone(),
            answers: answers.iter().copied().collect(),
            refuse: Vec::new(),
        },
        audit: FakeAudit {
            log: log.clone(),
            fail: false,
        },
        portal: FakePortal {
            log: log.clone(),
            seal_fails: false,
            notify_fails: Vec::new(),
        },
        log,
    }
}

impl World {
    pub(super) async fn act(&self, case: &Case) -> (Acted, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        let mut body = SpooledBody::new(dir.path().to_path_buf(), 1 << 20);
        body.write(b"Subject: t\r\n\r\nhello\r\n").await.unwrap();
        let fx = Effects {
            store: &self.store,
            lanes: &self.lanes,
            audit: &self.audit,
            portal: Some(&self.portal),
        };
        // As the pipeline does: the reply goes out, then what follows it.
        let mut acted = act(case, &mut body, &fx).await;
        push(&self.log, format!("reply {}", acted.reply.code));
        std::mem::take(&mut acted.after)
            .finish(&self.audit, &case.id)
            .await;
        (acted, self.log.lock().unwrap().clone())
    }
}

/// Where `line` is in `log` (panics with the log when it is not there).
pub(super) fn at(log: &[String], line: &str) -> usize {
    log.iter()
        .position(|l| l == line)
        .unwrap_or_else(|| panic!("{line:?} not in {log:#?}"))
}

pub(super) fn none_starts_with(log: &[String], prefix: &str) -> bool {
    !log.iter().any(|l| l.starts_with(prefix))
}

use ActionKind::{Defer, Deliver, Quarantine, Refuse};

#[tokio::test]
async fn a_deferral_defers_everything_and_nothing_moves() {
    let w = world(&[("default", (250, "2.0.0"))]);
    let c = case(&[
        ("a@x.test", Deliver, None),
        ("b@y.test", Defer, None),
        ("c@z.test", Quarantine, None),
    ]);
    let (acted, log) = w.act(&c).await;
    assert_eq!(acted.reply.code, 451, "{log:#?}");
    assert!(acted.reply.lines[0].starts_with("<b@y.test>:"));
    assert_eq!(
        log,
        [
            "audit message 3",
            "audit a@x.test defer deferred-with-transaction",
            "audit b@y.test defer rule-defer",
            "audit c@z.test defer deferred-with-transaction",
            "audit outcome 451",
            "reply 451",
        ]
    );
    assert!(acted.held.is_empty());
}

#[tokio::test]
async fn held_copies_are_stored_before_the_decisions_are_recorded_and_anything_relayed() {
    let w = world(&[("default", (250, "2.0.0"))]);
    let c = case(&[("a@x.test", Quarantine, None), ("b@y.test", Deliver, None)]);
    let (acted, log) = w.act(&c).await;
    assert_eq!(acted.reply.code, 250, "{log:#?}");
    let hold = at(&log, "hold T a@x.test");
    let decided = at(&log, "audit a@x.test quarantine rule-quarantine T");
    let relayed = at(&log, "relay default b@y.test");
    let outcome = at(&log, "audit outcome 250");
    assert!(
        hold < decided && decided < relayed && relayed < outcome,
        "{log:#?}"
    );
    assert_eq!(acted.held.len(), 1);
    assert!(none_starts_with(&log, "withdraw"), "{log:#?}");
}

#[tokio::test]
async fn an_audit_failure_withdraws_the_held_copies_and_defers() {
    let mut w = world(&[("default", (250, "2.0.0"))]);
    w.audit.fail = true;
    let c = case(&[("a@x.test", Quarantine, None), ("b@y.test", Deliver, None)]);
    let (acted, log) = w.act(&c).await;
    assert_eq!(
        (acted.reply.code, acted.reply.status.as_str()),
        (451, "4.3.0")
    );
    // The first lane's transaction was opened while the decisions were written, and never
    // committed: the upstream got no final dot, so nothing left.
    assert_eq!(
        log,
        [
            "hold T a@x.test",
            "audit failed",
            "open default",
            "withdraw T",
            "reply 451"
        ]
    );
    assert!(acted.held.is_empty());
}

#[tokio::test]
async fn the_first_lane_opens_while_the_decisions_are_written_and_commits_after() {
    let w = world(&[("default", (250, "2.0.0")), ("dane", (250, "2.0.0"))]);
    let c = case(&[
        ("a@x.test", Deliver, None),
        ("b@y.test", Deliver, Some("dane")),
    ]);
    let (acted, log) = w.act(&c).await;
    assert_eq!(acted.reply.code, 250);
    // Lanes go in name order: "dane" first, opened beside the audit write; its end of
    // message (the fake's "relay") only once the decisions are recorded; "default" after.
    let opened = at(&log, "open dane");
    let decided = at(&log, "audit b@y.test deliver rule-deliver");
    let committed = at(&log, "relay dane b@y.test");
    let second = at(&log, "relay default a@x.test");
    assert!(
        opened < committed && decided < committed && committed < second,
        "{log:#?}"
    );
    assert!(none_starts_with(&log, "open default"), "{log:#?}");
}

#[tokio::test]
async fn a_full_quarantine_defers_everything() {
    let mut w = world(&[("default", (250, "2.0.0"))]);
    w.store.full = true;
    let c = case(&[("a@x.test", Quarantine, None), ("b@y.test", Deliver, None)]);
    let (acted, log) = w.act(&c).await;
    assert_eq!(
        (acted.reply.code, acted.reply.status.as_str()),
        (452, "4.3.1")
    );
    assert!(none_starts_with(&log, "relay"), "{log:#?}");
    // The decisions are still on record, without a quarantine id: nothing was held.
    at(&log, "audit a@x.test quarantine rule-quarantine");
    at(&log, "audit outcome 452");
}

#[tokio::test]
async fn the_first_lane_deferring_withdraws_the_held_copy_and_defers() {
    let w = world(&[("a", (451, "4.4.1")), ("b", (250, "2.0.0"))]);
    let c = case(&[
        ("h@x.test", Quarantine, None),
        ("a@y.test", Deliver, Some("a")),
        ("b@z.test", Deliver, Some("b")),
        ("r@w.test", Refuse, None),
    ]);
    let (acted, log) = w.act(&c).await;
    assert_eq!(acted.reply.code, 451, "{log:#?}");
    let relayed = at(&log, "relay a a@y.test");
    let withdrawn = at(&log, "withdraw T");
    assert!(relayed < withdrawn);
    // Nothing went out: no second lane, no DSN, nothing left held.
    assert!(none_starts_with(&log, "relay b"), "{log:#?}");
    assert!(none_starts_with(&log, "dsn"), "{log:#?}");
    assert!(acted.held.is_empty());
    // A deferral moved nothing, so its outcome is recorded before the reply; only the
    // upstream's QUIT follows it.
    assert!(
        at(&log, "audit outcome 451") < at(&log, "reply 451"),
        "{log:#?}"
    );
    assert_eq!(log.last().map(String::as_str), Some("quit a"));
}

/// Point 1 of "deliver exactly once": once the upstream accepted, the client's reply waits
/// for nothing else: the upstream's QUIT and the outcome record come after it.
#[tokio::test]
async fn the_reply_waits_for_neither_quit_nor_the_outcome_record() {
    let w = world(&[("default", (250, "2.0.0"))]);
    let c = case(&[("a@x.test", Deliver, None), ("b@y.test", Quarantine, None)]);
    let (acted, log) = w.act(&c).await;
    assert_eq!(acted.reply.code, 250, "{log:#?}");
    let relayed = at(&log, "relay default a@x.test");
    let reply = at(&log, "reply 250");
    assert!(relayed < reply, "{log:#?}");
    assert!(
        reply < at(&log, "quit default"),
        "the reply waited for QUIT: {log:#?}"
    );
    assert!(
        reply < at(&log, "audit outcome 250"),
        "the reply waited for the outcome record: {log:#?}"
    );
    // The held copy and the decisions were durable before the upstream was even asked.
    assert!(at(&log, "hold T b@y.test") < relayed, "{log:#?}");
    assert!(
        at(&log, "audit a@x.test deliver rule-deliver") < relayed,
        "{log:#?}"
    );
}

#[tokio::test]
async fn a_later_lane_deferring_after_an_earlier_accepted_holds_its_recipients() {
    let w = world(&[("a", (250, "2.0.0")), ("b", (451, "4.4.1"))]);
    let c = case(&[
        ("a@y.test", Deliver, Some("a")),
        ("b@z.test", Deliver, Some("b")),
    ]);
    let (acted, log) = w.act(&c).await;
    // A 4xx now would deliver a@y.test twice on the retry.
    assert_eq!(acted.reply.code, 250, "{log:#?}");
    let first = at(&log, "relay a a@y.test");
    let second = at(&log, "relay b b@z.test");
    let held = at(&log, "hold T-1 b@z.test");
    let recorded = at(&log, "audit b@z.test quarantine upstream-deferred T-1");
    assert!(
        first < second && second < held && held < recorded,
        "{log:#?}"
    );
    assert_eq!(acted.held.len(), 1);
    assert!(none_starts_with(&log, "withdraw"), "{log:#?}");
}

#[tokio::test]
async fn refusals_by_the_policy_and_the_upstreams_get_one_dsn_after_delivery() {
    let mut w = world(&[("a", (250, "2.0.0")), ("b", (550, "5.1.1"))]);
    w.lanes.refuse = vec!["gone@y.test"];
    let c = case(&[
        ("r@w.test", Refuse, None),
        ("a@y.test", Deliver, Some("a")),
        ("gone@y.test", Deliver, Some("a")),
        ("b@z.test", Deliver, Some("b")),
    ]);
    let (acted, log) = w.act(&c).await;
    assert_eq!(acted.reply.code, 250, "{log:#?}");
    let dsns: Vec<&String> = log.iter().filter(|l| l.starts_with("dsn")).collect();
    assert_eq!(dsns, ["dsn b@z.test,gone@y.test,r@w.test"], "{log:#?}");
    assert!(at(&log, "relay b b@z.test") < at(&log, "dsn b@z.test,gone@y.test,r@w.test"));
}

#[tokio::test]
async fn refusals_beside_a_hold_get_a_dsn_and_the_reply_names_the_hold() {
    let w = world(&[]);
    let c = case(&[("h@x.test", Quarantine, None), ("r@w.test", Refuse, None)]);
    let (acted, log) = w.act(&c).await;
    assert_eq!(acted.reply.code, 250, "{log:#?}");
    assert!(acted.reply.lines[0].contains("held for review as T"));
    assert!(at(&log, "hold T h@x.test") < at(&log, "dsn r@w.test"));
}

#[tokio::test]
async fn refusals_alone_are_the_reply_without_a_dsn() {
    let w = world(&[]);
    let c = case(&[("r@w.test", Refuse, None), ("s@w.test", Refuse, None)]);
    let (acted, log) = w.act(&c).await;
    assert_eq!(
        (acted.reply.code, acted.reply.status.as_str()),
        (550, "5.7.1")
    );
    assert!(acted.reply.lines[0].starts_with("<r@w.test>:"));
    assert!(none_starts_with(&log, "dsn"), "{log:#?}");
}
