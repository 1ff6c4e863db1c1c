//! The sender's completion page (issue 17 point 6): a recipient for whom no number is known
//! waits, sealed, until the sender gives a number or chooses an access code through the
//! signed, expiring link in their notice; then the notification goes out. The recipient's link
//! waits wrapped under the completion link, so only that link lets it out.

use super::access::AccessError;
use super::code::access_code_ok;
use super::item::{Auth, Meta, hex, nonce_of, unhex};
use super::seal;
use super::service::{EventDetail, Portal, PortalError};
use crate::store::{SealedItem, now_unix};

/// What the sender gives for one waiting recipient.
pub enum Way {
    Phone(String),
    AccessCode(String),
}

/// What became of one recipient on the completion page.
#[derive(Debug, PartialEq, Eq)]
pub enum Completed {
    Notified,
    /// The number or code was not acceptable (the page says why).
    Invalid(&'static str),
    /// Set, but the notification could not be sent (try again).
    NotSent,
}

impl Portal {
    /// The item of a completion link, while it works: its waiting recipients.
    pub async fn completion(
        &self,
        id: &str,
        token: &str,
    ) -> Result<(SealedItem, Meta, Vec<String>), AccessError> {
        let (item, meta) = self.item(id).await?.ok_or(AccessError::Gone)?;
        let works = meta.completion_hash.as_deref().is_some_and(|h| {
            seal::link_hash(token)
                .is_ok_and(|given| crate::quarantine::report::token_matches(&hex(&given), h))
        }) && meta.completion_expires.is_some_and(|t| t > now_unix());
        if !works {
            return Err(AccessError::Gone);
        }
        let waiting = meta
            .recipients
            .iter()
            .filter(|g| matches!(g.auth, Auth::Pending { .. }))
            .map(|g| g.address.clone())
            .collect();
        Ok((item, meta, waiting))
    }

    /// Sets how `recipient` proves who they are and notifies them.
    pub async fn complete(
        &self,
        id: &str,
        token: &str,
        recipient: &str,
        way: Way,
    ) -> Result<Completed, AccessError> {
        let (item, mut meta, waiting) = self.completion(id, token).await?;
        if !waiting.iter().any(|w| w == recipient) {
            return Err(AccessError::Gone);
        }
        let g = meta.grantee(recipient).ok_or(AccessError::Gone)?.clone();
        let Auth::Pending { nonce, link } = &g.auth else {
            return Err(AccessError::Gone);
        };
        let (Some(nonce), Some(wrapped)) = (nonce_of(nonce), unhex(link)) else {
            return Err(PortalError::Corrupt(id.to_string()).into());
        };
        let link =
            seal::unwrap_link_for_sender(token, id, recipient, &nonce, &wrapped, &self.server)?;
        let grant = g.grant().ok_or(AccessError::Gone)?;
        let key = seal::unwrap_grant(id, &grant, &link.0, &self.server)?;
        let auth = match way {
            Way::Phone(raw) => {
                let Some(number) = super::phones::e164(&raw) else {
                    return Ok(Completed::Invalid("phone"));
                };
                if self.sms.is_none() {
                    return Ok(Completed::Invalid("no-sms"));
                }
                let (n, sealed) = seal::seal_note(&key, id, recipient, number.as_bytes())?;
                Auth::Sms {
                    hint: super::phones::hint(&number),
                    nonce: hex(&n),
                    number: hex(&sealed),
                }
            }
            Way::AccessCode(code) => {
                if !access_code_ok(&code) {
                    return Ok(Completed::Invalid("code"));
                }
                Auth::AccessCode {
                    mac: self.codes.access_mac(id, recipient, &code),
                }
            }
        };
        let method = auth.method();
        let before = g.auth.clone();
        if let Some(g) = meta.grantee_mut(recipient) {
            g.auth = auth;
        }
        let text = self.notification(id, &meta, recipient, &link);
        if let Err(e) = self.send(recipient, &text).await {
            tracing::warn!(portal = %id, error = %e, "portal notification not sent");
            self.event(
                id,
                &meta,
                "notify-failed",
                EventDetail {
                    detail: Some(e),
                    ..EventDetail::of(recipient)
                },
            )
            .await;
            // Still waiting: the sender may try again.
            if let Some(g) = meta.grantee_mut(recipient) {
                g.auth = before;
            }
            return Ok(Completed::NotSent);
        }
        if let Some(g) = meta.grantee_mut(recipient) {
            g.notified = true;
        }
        if !meta
            .recipients
            .iter()
            .any(|g| matches!(g.auth, Auth::Pending { .. }))
        {
            // Nobody waits: the completion link stops working.
            meta.completion_hash = None;
            meta.completion_expires = None;
        }
        self.save(&item, &meta).await?;
        self.event(
            id,
            &meta,
            "completed",
            EventDetail {
                method: Some(method),
                by: Some(meta.sender.clone()),
                ..EventDetail::of(recipient)
            },
        )
        .await;
        self.event(
            id,
            &meta,
            "notified",
            EventDetail {
                method: Some(method),
                ..EventDetail::of(recipient)
            },
        )
        .await;
        Ok(Completed::Notified)
    }
}
