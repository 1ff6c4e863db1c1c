//! A recipient's way in (issue 17 point 4), apart from HTTP: the link opens nothing by being
//! fetched; a POST from its page starts a visit (a session whose cookie replaces the link) and
//! sends a code; the right code opens the visit. Codes are counted per item and recipient in
//! the store (never per IP), under an exclusive lock, so several instances count as one.
//!
//! A visit keeps the message key wrapped under its cookie's secret: the store alone opens
//! nothing, and the link leaves the address bar after the first POST.

use serde::{Deserialize, Serialize};

use super::code::{CodeState, Issued, Tried};
use super::item::{Auth, Meta, hex, nonce_of, unhex};
use super::seal::{self, MessageKey};
use super::service::{EventDetail, Portal, PortalError};
use crate::store::{SealedItem, now_unix};

/// The audit records of a try: authenticated (with an e-mail code marked as the lower level),
/// a failure with the tries left, the lock-out.
fn code_events(
    tried: &Tried,
    method: Option<&'static str>,
    g: &super::item::Grantee,
) -> Vec<(&'static str, EventDetail)> {
    let of = |detail: Option<String>| EventDetail {
        method,
        detail,
        ..EventDetail::of(&g.address)
    };
    match tried {
        Tried::Right => {
            let detail = matches!(g.auth, Auth::Email).then(|| {
                "a code to the mailbox: a lower level than SMS or an access code \
                 (portal.allow_email_code)"
                    .to_string()
            });
            vec![("authenticated", of(detail))]
        }
        Tried::Wrong { tries_left } => {
            vec![("code-failed", of(Some(format!("{tries_left} tries left"))))]
        }
        Tried::LockedNow => vec![
            ("code-failed", of(Some("0 tries left".into()))),
            ("locked", of(Some("10 failed codes".into()))),
        ],
        Tried::NoCode | Tried::Locked => Vec::new(),
    }
}

/// A visit's idle time is renewed by a request at most this often (seconds): a write per
/// page would cost every page a durable write.
const RENEW_AFTER: u64 = 30;

/// A visit, as the store keeps it (under a hash of its cookie).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Visit {
    pub item: String,
    pub recipient: String,
    /// When its idle time was last renewed (unix seconds): renewed at most every
    /// `RENEW_AFTER`, not on every request.
    #[serde(default)]
    renewed: u64,
    /// Whether the code was given: until then the visit opens nothing.
    pub open: bool,
    pub method: String,
    nonce: String,
    wrapped: String,
}

/// An open visit's item, read once per request: its record, its metadata, the message.
pub struct Opened {
    pub item: SealedItem,
    pub meta: Meta,
    /// The message as sealed (the original, less the numbers' header).
    pub raw: Vec<u8>,
}

/// What the link's page shows before anything happens.
pub struct Landing {
    pub meta: Meta,
    pub expires: u64,
    pub method: &'static str,
    /// sms: the number's last digits.
    pub hint: Option<String>,
}

/// What asking for a code gave, as the page says it.
#[derive(Debug, PartialEq, Eq)]
pub enum CodeSent {
    /// Sent by SMS or mail.
    Sent,
    /// The method needs no sending (an access code from the sender).
    NotNeeded,
    /// Three codes this hour already: the next at this time.
    TooMany(u64),
    Locked,
    /// The SMS provider or the mail lane failed: try again later.
    Failed,
}

/// What a try gave, as the page says it.
#[derive(Debug, PartialEq, Eq)]
pub enum CodeChecked {
    Open,
    Wrong(u32),
    /// No code in force: ask for a new one.
    Expired,
    Locked,
    /// Another request for this recipient is being counted: try again.
    Busy,
}

#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// The item is gone (expired, revoked) or the link is not one of its links.
    #[error("this message is not available (expired, withdrawn, or not this link)")]
    Gone,
    #[error(transparent)]
    Portal(#[from] PortalError),
}

impl From<crate::store::StoreError> for AccessError {
    fn from(e: crate::store::StoreError) -> Self {
        AccessError::Portal(e.into())
    }
}

impl From<seal::SealError> for AccessError {
    fn from(e: seal::SealError) -> Self {
        match e {
            seal::SealError::NotOpened | seal::SealError::BadLink => AccessError::Gone,
            other => AccessError::Portal(other.into()),
        }
    }
}

fn visit_key(secret: &str) -> Result<String, AccessError> {
    Ok(format!("pv:{}", hex(&seal::link_hash(secret)?)))
}

fn recipient_key(prefix: &str, item: &str, recipient: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, recipient.as_bytes());
    format!("{prefix}:{item}:{}", hex(&d.as_ref()[..12]))
}

/// A recipient's code state.
fn code_key(item: &str, recipient: &str) -> String {
    recipient_key("pc", item, recipient)
}

/// A recipient's first reading.
fn read_key(item: &str, recipient: &str) -> String {
    recipient_key("pr", item, recipient)
}

impl Portal {
    /// The link's page: what it shows (a GET: nothing changes, nothing is sent).
    pub async fn landing(&self, id: &str, link: &str) -> Result<Landing, AccessError> {
        let (item, meta) = self.item(id).await?.ok_or(AccessError::Gone)?;
        let hash = seal::link_hash(link)?;
        let g = meta.by_link(&hash).ok_or(AccessError::Gone)?;
        let (method, hint) = match &g.auth {
            Auth::Sms { hint, .. } => ("sms", Some(hint.clone())),
            Auth::AccessCode { .. } => ("access-code", None),
            Auth::Email => ("email", None),
            Auth::Pending { .. } => return Err(AccessError::Gone),
        };
        Ok(Landing {
            expires: item.expires,
            meta,
            method,
            hint,
        })
    }

    /// The POST from the link's page: opens the grant (so the link is right), starts a visit
    /// and sends a code. The cookie secret of the visit, and what became of the code.
    pub async fn begin(&self, id: &str, link: &str) -> Result<(String, CodeSent), AccessError> {
        let (item, meta) = self.item(id).await?.ok_or(AccessError::Gone)?;
        let hash = seal::link_hash(link)?;
        let g = meta.by_link(&hash).ok_or(AccessError::Gone)?.clone();
        let grant = g.grant().ok_or(AccessError::Gone)?;
        let key = seal::unwrap_grant(id, &grant, link, &self.server)?;
        let (secret, _) = seal::new_secret()?;
        let (nonce, wrapped) =
            seal::wrap_for_session(&key, &secret.0, id, &g.address, &self.server)?;
        let visit = Visit {
            item: id.to_string(),
            recipient: g.address.clone(),
            renewed: 0,
            open: false,
            method: g.auth.method().to_string(),
            nonce: hex(&nonce),
            wrapped: hex(&wrapped),
        };
        self.put_visit(&secret.0, &visit).await?;
        self.event(id, &meta, "opened", EventDetail::of(&g.address))
            .await;
        let sent = self.send_code(&item, &meta, &visit, &key).await?;
        Ok((secret.0, sent))
    }

    async fn put_visit(&self, secret: &str, visit: &Visit) -> Result<(), AccessError> {
        let now = now_unix();
        let visit = Visit {
            renewed: now,
            ..visit.clone()
        };
        let value =
            serde_json::to_value(&visit).map_err(|_| PortalError::Corrupt(visit.item.clone()))?;
        let expires = now + self.config.session_idle.as_secs();
        self.store
            .put_session(&visit_key(secret)?, &value, expires)
            .await?;
        Ok(())
    }

    /// The visit of a cookie, and the message key it holds (refreshing its idle time).
    pub async fn visit(&self, secret: &str) -> Result<Option<(Visit, MessageKey)>, AccessError> {
        let Ok(key) = visit_key(secret) else {
            return Ok(None);
        };
        let Some(value) = self.store.session(&key).await? else {
            return Ok(None);
        };
        let Ok(visit) = serde_json::from_value::<Visit>(value) else {
            return Ok(None);
        };
        let (Some(nonce), Some(wrapped)) = (nonce_of(&visit.nonce), unhex(&visit.wrapped)) else {
            return Ok(None);
        };
        let mkey = match seal::unwrap_session(
            secret,
            &visit.item,
            &visit.recipient,
            &nonce,
            &wrapped,
            &self.server,
        ) {
            Ok(k) => k,
            Err(_) => return Ok(None),
        };
        if now_unix().saturating_sub(visit.renewed) >= RENEW_AFTER {
            self.put_visit(secret, &visit).await?;
        }
        Ok(Some((visit, mkey)))
    }

    /// Ends a visit (logout).
    pub async fn end(&self, secret: &str) -> Result<(), AccessError> {
        if let Ok(key) = visit_key(secret) {
            self.store.drop_session(&key).await?;
        }
        Ok(())
    }

    /// Asks for a new code for the visit's recipient.
    pub async fn resend(&self, secret: &str) -> Result<CodeSent, AccessError> {
        let (visit, key) = self.visit(secret).await?.ok_or(AccessError::Gone)?;
        let (item, meta) = self.item(&visit.item).await?.ok_or(AccessError::Gone)?;
        self.send_code(&item, &meta, &visit, &key).await
    }

    async fn send_code(
        &self,
        item: &SealedItem,
        meta: &Meta,
        visit: &Visit,
        key: &MessageKey,
    ) -> Result<CodeSent, AccessError> {
        let g = meta.grantee(&visit.recipient).ok_or(AccessError::Gone)?;
        let to = match &g.auth {
            Auth::AccessCode { .. } => return Ok(CodeSent::NotNeeded),
            Auth::Pending { .. } => return Err(AccessError::Gone),
            Auth::Sms { nonce, number, .. } => {
                let number = match (nonce_of(nonce), unhex(number)) {
                    (Some(n), Some(sealed)) => {
                        seal::open_note(key, &item.id, &g.address, &n, &sealed)?
                    }
                    _ => return Err(PortalError::Corrupt(item.id.clone()).into()),
                };
                String::from_utf8(number).map_err(|_| PortalError::Corrupt(item.id.clone()))?
            }
            Auth::Email => g.address.clone(),
        };
        let ckey = code_key(&item.id, &g.address);
        let issued = self
            .counted(
                &ckey,
                item.expires,
                |state| {
                    state.issue(
                        &self.codes,
                        &item.id,
                        &g.address,
                        self.config.code_digits,
                        now_unix(),
                    )
                },
                |_| async {},
            )
            .await?;
        let code = match issued {
            None => return Ok(CodeSent::TooMany(now_unix() + 5)),
            Some(Ok(Issued::Code(c))) => c,
            Some(Ok(Issued::TooMany { next_at })) => return Ok(CodeSent::TooMany(next_at)),
            Some(Ok(Issued::Locked)) => return Ok(CodeSent::Locked),
            Some(Err(_)) => return Err(PortalError::Seal(seal::SealError::Random).into()),
        };
        let org = &self.config.organisation;
        let sent = match (&g.auth, &self.sms) {
            (Auth::Sms { .. }, Some(sms)) => {
                let text = format!(
                    "{org}: uw code is {code} (15 min geldig). Your code is {code}. Deel deze code met niemand."
                );
                sms.send(&to, &text).await.map_err(|e| e.to_string())
            }
            (Auth::Sms { .. }, None) => Err("no SMS provider configured".to_string()),
            _ => {
                let text = self.code_mail(&item.id, &to, &code);
                self.send(&to, &text).await
            }
        };
        match sent {
            Ok(()) => {
                self.event(
                    &item.id,
                    meta,
                    "code-sent",
                    EventDetail {
                        method: Some(g.auth.method()),
                        ..EventDetail::of(&g.address)
                    },
                )
                .await;
                Ok(CodeSent::Sent)
            }
            Err(e) => {
                tracing::warn!(portal = %item.id, error = %e, "a portal code could not be sent");
                self.event(
                    &item.id,
                    meta,
                    if matches!(g.auth, Auth::Email) {
                        "code-mail-failed"
                    } else {
                        "sms-failed"
                    },
                    EventDetail {
                        method: Some(g.auth.method()),
                        detail: Some(e),
                        ..EventDetail::of(&g.address)
                    },
                )
                .await;
                Ok(CodeSent::Failed)
            }
        }
    }

    /// Reads, changes and writes a recipient's code state under its lock, and meanwhile does
    /// `alongside` with what the change gave (its audit records: two durable writes at once,
    /// not one after the other); `None` when another instance holds the lock.
    async fn counted<T, F, Fut>(
        &self,
        key: &str,
        until: u64,
        change: impl FnOnce(&mut CodeState) -> T,
        alongside: F,
    ) -> Result<Option<T>, AccessError>
    where
        F: FnOnce(&T) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let job = async {
            let mut state: CodeState = match self.store.session(key).await? {
                Some(v) => serde_json::from_value(v).unwrap_or_default(),
                None => CodeState::default(),
            };
            let out = change(&mut state);
            let value = serde_json::to_value(&state).unwrap_or_default();
            let (written, ()) = futures_util::future::join(
                self.store.put_session(key, &value, until),
                alongside(&out),
            )
            .await;
            written?;
            Ok::<T, AccessError>(out)
        };
        match self.one_at_a_time(key, job).await? {
            Some(r) => r.map(Some),
            None => Ok(None),
        }
    }

    /// A try of the code for `visit` (the visit of `secret`, as `visit` found it).
    pub async fn check_code(
        &self,
        secret: &str,
        mut visit: Visit,
        given: &str,
    ) -> Result<CodeChecked, AccessError> {
        let (item, meta) = self.item(&visit.item).await?.ok_or(AccessError::Gone)?;
        let g = meta
            .grantee(&visit.recipient)
            .ok_or(AccessError::Gone)?
            .clone();
        let ckey = code_key(&item.id, &g.address);
        let now = now_unix();
        let method = Some(g.auth.method());
        let tried = self
            .counted(
                &ckey,
                item.expires,
                |state| match &g.auth {
                    Auth::AccessCode { mac } => {
                        state.check_access(&self.codes, &item.id, &g.address, given, mac)
                    }
                    _ => state.check(&self.codes, &item.id, &g.address, given, now),
                },
                |tried| self.events(&item.id, &meta, code_events(tried, method, &g)),
            )
            .await?;
        let checked = match tried {
            None => CodeChecked::Busy,
            Some(Tried::Right) => {
                visit.open = true;
                self.put_visit(secret, &visit).await?;
                CodeChecked::Open
            }
            Some(Tried::Wrong { tries_left }) => CodeChecked::Wrong(tries_left),
            Some(Tried::NoCode) => CodeChecked::Expired,
            Some(Tried::LockedNow) => {
                self.tell_sender(&item.id, &meta, &g.address, "locked")
                    .await;
                CodeChecked::Locked
            }
            Some(Tried::Locked) => CodeChecked::Locked,
        };
        Ok(checked)
    }

    /// The message of an open visit, as sealed (the trace header and the original).
    pub async fn read(&self, visit: &Visit, key: &MessageKey) -> Result<Opened, AccessError> {
        if !visit.open {
            return Err(AccessError::Gone);
        }
        let (item, meta) = self.item(&visit.item).await?.ok_or(AccessError::Gone)?;
        let ciphertext = self.store.sealed_message(&visit.item).await?;
        let sealed = meta.sealed(ciphertext).ok_or(AccessError::Gone)?;
        let raw = seal::open_message(&visit.item, &sealed, key)?;
        Ok(Opened { item, meta, raw })
    }

    /// Records a reading; the first one (exactly once, however many requests or instances
    /// at once) tells the sender when `portal.read_notice` asks. The marker is a session of
    /// its own per recipient, not the item's metadata: readers never rewrite the item.
    pub async fn viewed(&self, visit: &Visit, opened: &Opened) -> Result<(), AccessError> {
        let (item, meta) = (&opened.item, &opened.meta);
        let key = read_key(&item.id, &visit.recipient);
        let job = async {
            if self.store.session(&key).await?.is_some() {
                return Ok::<bool, AccessError>(false);
            }
            let at = serde_json::json!({ "at": now_unix() });
            self.store.put_session(&key, &at, item.expires).await?;
            Ok(true)
        };
        // Busy: another request of this recipient is marking it right now.
        let first = self
            .one_at_a_time(&key, job)
            .await?
            .transpose()?
            .unwrap_or(false);
        self.event(
            &item.id,
            meta,
            "viewed",
            EventDetail {
                method: meta.grantee(&visit.recipient).map(|g| g.auth.method()),
                ..EventDetail::of(&visit.recipient)
            },
        )
        .await;
        if first && self.config.read_notice {
            self.tell_sender(&item.id, meta, &visit.recipient, "read")
                .await;
            self.event(
                &item.id,
                meta,
                "read-notice",
                EventDetail::of(&visit.recipient),
            )
            .await;
        }
        Ok(())
    }

    /// Whether `recipient` has read item `id` (for `sluis portal list`).
    pub async fn was_read(&self, id: &str, recipient: &str) -> bool {
        matches!(
            self.store.session(&read_key(id, recipient)).await,
            Ok(Some(_))
        )
    }

    /// A code by mail (only with `portal.allow_email_code`).
    fn code_mail(&self, id: &str, to: &str, code: &str) -> Vec<u8> {
        let mut m = self.headers(to, "Uw code / Your code", id, "code");
        m.push_str(&format!(
            "Uw code is {code} (15 minuten geldig).\r\nYour code is {code} (valid for 15 minutes).\r\n"
        ));
        m.into_bytes()
    }
}
