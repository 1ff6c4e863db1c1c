//! `act` with the pickup portal: its items are sealed with the held copies, before the
//! decisions are recorded; its recipients are notified once they are, before any lane gets the
//! end of the message; a portal that can notify nobody leaves nothing behind.

use super::Case;
use super::act::{Sealed, Seals};
use super::act_tests::{Log, at, case, none_starts_with, push, world};
use crate::spool::SpooledBody;
use crate::terms::ActionKind::{Deliver, Portal, Quarantine};
use crate::wire::Reply;

/// The portal: seals (or fails to), and notifies each recipient unless told to fail.
pub(super) struct FakePortal {
    pub(super) log: Log,
    pub(super) seal_fails: bool,
    pub(super) notify_fails: Vec<&'static str>,
}

impl Seals for FakePortal {
    fn seal<'a>(
        &'a self,
        case: &'a Case,
        idx: &'a [usize],
        _body: &'a mut SpooledBody,
    ) -> futures_util::future::BoxFuture<'a, Result<Sealed, Reply>> {
        Box::pin(async move {
            if self.seal_fails {
                push(&self.log, "seal failed".into());
                return Err(Reply::new(452, "4.3.1", "store full"));
            }
            let rcpts: Vec<&str> = idx
                .iter()
                .map(|&i| case.rcpts[i].address.as_str())
                .collect();
            push(&self.log, format!("seal {}-P {}", case.id, rcpts.join(",")));
            Ok(Sealed {
                id: format!("{}-P", case.id),
                recipients: idx.to_vec(),
                ..Sealed::default()
            })
        })
    }

    fn notify<'a>(
        &'a self,
        case: &'a Case,
        sealed: &'a mut Sealed,
    ) -> futures_util::future::BoxFuture<'a, ()> {
        Box::pin(async move {
            for &i in &sealed.recipients {
                let a = case.rcpts[i].address.as_str();
                if self.notify_fails.contains(&a) {
                    push(&self.log, format!("notify failed {a}"));
                    sealed.failed.push(i);
                } else {
                    push(&self.log, format!("notify {a}"));
                    sealed.settled.push(i);
                }
            }
        })
    }

    fn withdraw<'a>(&'a self, id: &'a str) -> futures_util::future::BoxFuture<'a, ()> {
        Box::pin(async move { push(&self.log, format!("shred {id}")) })
    }
}

#[tokio::test]
async fn portal_items_are_sealed_before_the_decisions_and_notified_before_any_lane_commits() {
    let w = world(&[("default", (250, "2.0.0"))]);
    let c = case(&[
        ("pat@mail.test", Portal, None),
        ("b@y.test", Deliver, None),
        ("c@z.test", Quarantine, None),
    ]);
    let (acted, log) = w.act(&c).await;
    assert_eq!(acted.reply.code, 250, "{log:#?}");
    let hold = at(&log, "hold T c@z.test");
    let sealed = at(&log, "seal T-P pat@mail.test");
    let decided = at(&log, "audit pat@mail.test portal rule-portal");
    let notified = at(&log, "notify pat@mail.test");
    let relayed = at(&log, "relay default b@y.test");
    let reply = at(&log, "reply 250");
    assert!(
        hold < sealed
            && sealed < decided
            && decided < notified
            && notified < relayed
            && relayed < reply,
        "{log:#?}"
    );
    assert_eq!(acted.sealed.as_ref().map(|s| s.settled.len()), Some(1));
    assert!(none_starts_with(&log, "shred"), "{log:#?}");
}

#[tokio::test]
async fn a_portal_that_cannot_seal_or_notify_anyone_defers_and_leaves_nothing() {
    // Sealing fails: the held copy is withdrawn, nothing is relayed, the client retries.
    let mut w = world(&[("default", (250, "2.0.0"))]);
    w.portal.seal_fails = true;
    let c = case(&[
        ("pat@mail.test", Portal, None),
        ("c@z.test", Quarantine, None),
        ("b@y.test", Deliver, None),
    ]);
    let (acted, log) = w.act(&c).await;
    assert_eq!(acted.reply.code, 452, "{log:#?}");
    assert!(at(&log, "seal failed") < at(&log, "withdraw T"), "{log:#?}");
    assert!(none_starts_with(&log, "relay"), "{log:#?}");

    // Nobody could be notified: the item is shredded, the staged lane never gets its dot,
    // the held copy goes, and the client gets a 4xx (it still has the message).
    let mut w = world(&[("default", (250, "2.0.0"))]);
    w.portal.notify_fails = vec!["pat@mail.test"];
    let (acted, log) = w.act(&c).await;
    assert_eq!(acted.reply.code, 451, "{log:#?}");
    assert!(
        at(&log, "notify failed pat@mail.test") < at(&log, "shred T-P"),
        "{log:#?}"
    );
    assert!(none_starts_with(&log, "relay"), "{log:#?}");
    assert!(log.iter().any(|l| l == "withdraw T"), "{log:#?}");

    // One of two notified: that one counts as delivered, the other is bounced, the lane goes.
    let mut w = world(&[("default", (250, "2.0.0"))]);
    w.portal.notify_fails = vec!["q@mail.test"];
    let c = case(&[
        ("pat@mail.test", Portal, None),
        ("q@mail.test", Portal, None),
        ("b@y.test", Deliver, None),
    ]);
    let (acted, log) = w.act(&c).await;
    assert_eq!(acted.reply.code, 250, "{log:#?}");
    assert!(log.iter().any(|l| l == "dsn q@mail.test"), "{log:#?}");
    assert!(
        log.iter().any(|l| l == "relay default b@y.test"),
        "{log:#?}"
    );
    assert!(none_starts_with(&log, "shred"), "{log:#?}");
}
