//! The final outcome of a release: a lane's delivery report (`report`) settles the released
//! recipients it names. Delivered and failed are final (the recipient leaves the item; a failure
//! is told to the original sender, who no longer gets the lane's bounce); delayed is noted on
//! the recipient. Every report is audited. The item goes once nothing is held or pending.

use smtp_proto::{RcptTo, Response};

use super::report::{Action, Report, token_matches};
use super::review::{ReviewError, Reviewer};
use super::{Item, StoreError};
use crate::audit::Record;
use crate::audit::record::ReleaseOutcome;
use crate::relay::{self, Envelope};
use crate::spool::SpooledBody;

/// The claim a report takes while it updates an item (reviewers see it as the holder).
const REPORTER: &str = "delivery report";

impl Reviewer {
    /// Records what `report` says of item `id`'s released recipients; returns how many it
    /// named. An item that is gone (settled, purged) records nothing: Ok(0).
    pub async fn record_report(
        &self,
        id: &str,
        token: &str,
        report: &Report,
    ) -> Result<usize, ReviewError> {
        let (mut item, claim) = match self.store.claim(id, REPORTER, "report").await {
            Ok(c) => c,
            Err(StoreError::NotFound(_) | StoreError::Settled { .. }) => return Ok(0),
            Err(e) => return Err(e.into()),
        };
        let known = item
            .report_token
            .as_deref()
            .is_some_and(|t| token_matches(token, t));
        if !known || report.envid.as_deref().is_some_and(|e| e != id) {
            let _ = self.store.unclaim(id, &claim).await;
            return Err(ReviewError::Refused(
                "not a report address of this gateway's releases".into(),
            ));
        }
        let mut records = Vec::new();
        let mut failed = Vec::new();
        for r in &report.recipients {
            let Some(pos) = item
                .released
                .iter()
                .position(|p| p.address.eq_ignore_ascii_case(&r.recipient))
            else {
                continue;
            };
            records.push(Record::ReleaseOutcome(ReleaseOutcome {
                quarantine_id: id.to_string(),
                transaction: item.transaction.clone(),
                recipient: item.released[pos].address.clone(),
                outcome: r.action.name().to_string(),
                action: r.action_text.clone(),
                status: r.status.clone(),
                remote_mta: r.remote_mta.clone(),
                diagnostic: r.diagnostic.clone(),
            }));
            match r.action {
                Action::Delayed => {
                    item.released[pos].last_report = Some(format!(
                        "delayed: {} {}",
                        r.status,
                        r.diagnostic.as_deref().unwrap_or("")
                    ));
                }
                Action::Delivered => {
                    item.released.remove(pos);
                }
                Action::Failed => {
                    let p = item.released.remove(pos);
                    failed.push((p.address, r.status.clone(), r.diagnostic.clone()));
                }
            }
        }
        let named = records.len();
        if let Err(e) = self.audit.append_async(&records).await {
            // Not recorded, so not taken: the lane sends the report again.
            let _ = self.store.unclaim(id, &claim).await;
            return Err(e.into());
        }
        if !failed.is_empty() {
            self.tell_sender(&item, &failed).await;
        }
        if item.recipients.is_empty() && item.released.is_empty() {
            self.store.settle(id, &claim, None).await?;
        } else {
            self.store.settle(id, &claim, Some(&item)).await?;
        }
        Ok(named)
    }

    /// A failure notice to the original sender for released recipients the lane gave up on.
    async fn tell_sender(&self, item: &Item, failed: &[(String, String, Option<String>)]) {
        let message = match self.store.message(&item.id).await {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(quarantine = %item.id, error = %e, "cannot read a released item for its failure notice");
                return;
            }
        };
        let mut body = SpooledBody::new(self.spool_dir.clone(), 1024 * 1024);
        if body.write(&message).await.is_err() {
            return;
        }
        let failures: Vec<(RcptTo<String>, Response<String>)> = failed
            .iter()
            .map(|(address, status, diagnostic)| {
                (
                    RcptTo {
                        address: address.clone(),
                        ..Default::default()
                    },
                    response(status, diagnostic.as_deref()),
                )
            })
            .collect();
        let env = Envelope {
            id: item.transaction.clone(),
            mail_from: smtp_proto::MailFrom {
                address: item.sender.clone(),
                ..Default::default()
            },
            rcpts: failures.iter().map(|(r, _)| r.clone()).collect(),
            require_tls: false,
        };
        let lane = self.lanes.default_lane();
        relay::dsn::send_failure_notice(&lane, &self.hostname, &env, &failures, &mut body).await;
    }
}

/// A reply for the failure notice from a report's status ("5.1.1") and diagnostic.
fn response(status: &str, diagnostic: Option<&str>) -> Response<String> {
    let mut esc = [5u8, 0, 0];
    for (slot, part) in esc.iter_mut().zip(status.split('.')) {
        if let Ok(n) = part.trim().parse::<u8>() {
            *slot = n;
        }
    }
    let class = if esc[0] == 4 { 4 } else { 5 };
    esc[0] = class;
    Response {
        code: u16::from(class) * 100 + 50,
        esc,
        message: diagnostic
            .unwrap_or("the receiving side gave up on the released message")
            .to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_report_status_becomes_the_notice_reply() {
        let r = super::response("5.1.1", Some("smtp; 550 5.1.1 User unknown"));
        assert_eq!((r.code, r.esc), (550, [5, 1, 1]));
        let r = super::response("garbage", None);
        assert_eq!((r.code, r.esc), (550, [5, 0, 0]));
    }
}
