//! The report listener (`review.report_listen`): an SMTP target that takes only the lanes'
//! delivery reports of released mail (null sender, report addresses of this gateway) and hands
//! them to the reviewer, which settles the released recipients (`quarantine::outcome`). It
//! never relays anything. The SMTP protocol, limits and TLS are the ordinary listener's.

use futures_util::future::BoxFuture;

use crate::quarantine::report;
use crate::quarantine::review::{ReviewError, Reviewer};
use crate::smtp::{SessionFacts, Target, Transaction};
use crate::store::StoreError;
use crate::wire::Reply;

/// A report is a few KiB (RET=HDRS); anything much larger is not one.
const MAX_REPORT: usize = 1024 * 1024;

pub struct Reports {
    pub reviewer: Reviewer,
}

impl Target for Reports {
    fn check_recipient(&self, _session: &SessionFacts, address: &str) -> Result<(), Reply> {
        match report::parse_address(address, &self.reviewer.hostname) {
            Some(_) => Ok(()),
            None => Err(Reply::new(
                550,
                "5.1.1",
                "this listener takes delivery reports of released mail only",
            )),
        }
    }

    fn deliver(&self, tx: Transaction) -> BoxFuture<'_, Reply> {
        Box::pin(self.take(tx))
    }
}

impl Reports {
    async fn take(&self, mut tx: Transaction) -> Reply {
        if !tx.mail_from.address.is_empty() {
            return Reply::new(
                550,
                "5.7.1",
                "delivery reports come from the null sender (MAIL FROM:<>)",
            );
        }
        if tx.size > MAX_REPORT {
            return Reply::new(552, "5.3.4", "too large for a delivery report");
        }
        let raw = match tx.body.read_all().await {
            Ok(r) => r,
            Err(e) => return Reply::new(451, "4.3.0", format!("spool: {e}")),
        };
        let parsed = match report::parse(&raw) {
            Ok(r) => r,
            Err(e) => return Reply::new(550, "5.6.0", format!("not taken: {e}")),
        };
        let mut named = 0;
        for rcpt in &tx.rcpts {
            let Some((id, token)) = report::parse_address(&rcpt.address, &self.reviewer.hostname)
            else {
                continue;
            };
            match self.reviewer.record_report(id, token, &parsed).await {
                Ok(n) => named += n,
                Err(ReviewError::Refused(why)) => {
                    tracing::warn!(quarantine = %id, %why, "delivery report refused");
                    return Reply::new(550, "5.7.1", why);
                }
                Err(ReviewError::Store(e @ StoreError::Busy { .. })) => {
                    return Reply::new(451, "4.3.0", format!("item busy, try again: {e}"));
                }
                Err(e) => {
                    tracing::error!(quarantine = %id, error = %e, "delivery report not recorded");
                    return Reply::new(451, "4.3.0", "the report could not be recorded yet");
                }
            }
        }
        tracing::info!(id = %tx.id, recipients = named, "delivery report recorded");
        Reply::new(
            250,
            "2.0.0",
            format!("report recorded ({named} recipient(s))"),
        )
    }
}
