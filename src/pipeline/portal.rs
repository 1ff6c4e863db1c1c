//! The pickup portal as a step of the pipeline (DESIGN §13): the `Seals` of `act` for the
//! real portal, and the sender's notice once the reply is out.

use std::sync::Arc;

use futures_util::future::BoxFuture;

use super::Case;
use super::act::{Sealed, Seals};
use crate::portal::service::{Portal, SealedCase, Sealing};
use crate::quarantine::StoreError;
use crate::spool::SpooledBody;
use crate::wire::Reply;

/// A portal item's id: the transaction's, marked.
fn item_id(case: &Case) -> String {
    format!("{}-P", case.id)
}

impl Seals for Portal {
    fn seal<'a>(
        &'a self,
        case: &'a Case,
        idx: &'a [usize],
        body: &'a mut SpooledBody,
    ) -> BoxFuture<'a, Result<Sealed, Reply>> {
        Box::pin(async move {
            let id = item_id(case);
            // The message as the sender sent it (less the numbers' header): the recipient's
            // download of the original is these bytes.
            let message = match body.read_all().await {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(id = %case.id, error = %e, "cannot read the spooled message to seal it");
                    return Err(local_error());
                }
            };
            let recipients: Vec<String> =
                idx.iter().map(|&i| case.rcpts[i].address.clone()).collect();
            let sealing = Sealing {
                id: &id,
                transaction: &case.id,
                sender: &case.mail_from.address,
                sender_name: case
                    .sender_name
                    .as_deref()
                    .unwrap_or(&case.mail_from.address),
                subject: case.subject.as_deref(),
                message: &message,
                recipients: &recipients,
                phones: &case.phones,
            };
            match Portal::seal(self, sealing).await {
                Ok(sealed) => {
                    tracing::info!(id = %case.id, portal = %id, recipients = idx.len(), "sealed for the pickup portal");
                    Ok(Sealed {
                        id,
                        recipients: idx.to_vec(),
                        notice: Some(Box::new(sealed)),
                        ..Sealed::default()
                    })
                }
                Err(crate::portal::service::PortalError::Store(StoreError::Full { used, max })) => {
                    tracing::error!(id = %case.id, used, max, "store full: portal transaction deferred");
                    Err(Reply::new(
                        452,
                        "4.3.1",
                        "Insufficient system storage: the secure pickup store is full, try again later",
                    ))
                }
                Err(e) => {
                    tracing::error!(id = %case.id, error = %e, "cannot seal for the pickup portal: transaction deferred");
                    Err(local_error())
                }
            }
        })
    }

    fn notify<'a>(&'a self, case: &'a Case, sealed: &'a mut Sealed) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let Some(inner) = sealed
                .notice
                .as_mut()
                .and_then(|n| n.downcast_mut::<SealedCase>())
            else {
                return;
            };
            let addresses: Vec<String> = sealed
                .recipients
                .iter()
                .map(|&i| case.rcpts[i].address.clone())
                .collect();
            let sent = self.notify_sealed(inner, &addresses).await;
            for (&i, ok) in sealed.recipients.iter().zip(sent) {
                if ok {
                    sealed.settled.push(i);
                } else {
                    sealed.failed.push(i);
                }
            }
        })
    }

    fn withdraw<'a>(&'a self, id: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            // Never notified, so nothing to audit beyond the transaction's own outcome.
            match self.store.shred(id).await {
                Ok(true) => crate::metrics::portal_items_change(-1),
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(portal = %id, error = %e, "cannot withdraw a portal item")
                }
            }
        })
    }
}

fn local_error() -> Reply {
    Reply::new(
        451,
        "4.3.0",
        "Local error while sealing the message for secure pickup, try again later",
    )
}

/// The sender's notice (in the background: the reply does not wait for it).
pub fn sender_notice(portal: Arc<Portal>, case: &Case, sealed: Sealed) {
    if case.mail_from.address.is_empty() {
        return;
    }
    let Some(inner) = sealed.notice.and_then(|n| n.downcast::<SealedCase>().ok()) else {
        return;
    };
    let names = |idx: &[usize]| -> Vec<String> {
        idx.iter()
            .map(|&i| case.rcpts[i].address.clone())
            .filter(|a| inner.links.iter().any(|(l, _)| l == a))
            .collect()
    };
    let notified = names(&sealed.settled);
    let failed = names(&sealed.failed);
    tokio::spawn(async move {
        let text = portal.sender_notice(
            &inner.id,
            &inner.meta,
            &notified,
            &failed,
            inner.completion.as_ref(),
        );
        if let Err(e) = portal.send(&inner.meta.sender, &text).await {
            tracing::warn!(portal = %inner.id, error = %e, "could not send the sender the portal notice");
        }
    });
}
