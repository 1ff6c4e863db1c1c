//! The portal as a service: built from one configuration, used by the pipeline (seal and
//! notify), the web side (links, codes, sessions, reading) and the command line (list, revoke,
//! extend). Every event is audited and counted.

use std::collections::HashMap;
use std::sync::Arc;

use crate::audit::record::PortalEvent;
use crate::audit::{AuditLog, Record};
use crate::config::PortalConfig;
use crate::relay::Lanes;
use crate::store::{SealedItem, Store, StoreError, now_unix};

use super::code::CodeKey;
use super::item::{Auth, Grantee, Meta, hex};
use super::seal::{self, LinkSecret, SealError, ServerSecret};
use super::sms::Sms;

#[derive(Debug, thiserror::Error)]
pub enum PortalError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Seal(#[from] SealError),
    #[error("portal item {0}: its metadata cannot be read")]
    Corrupt(String),
    #[error("{0}")]
    Refused(String),
}

pub struct Portal {
    pub config: PortalConfig,
    /// This gateway's host name (for Message-IDs and the HELO of notifications).
    pub hostname: String,
    pub store: Arc<Store>,
    pub audit: Arc<AuditLog>,
    pub lanes: Arc<Lanes>,
    pub(super) server: ServerSecret,
    pub(super) codes: CodeKey,
    pub(super) sms: Option<Sms>,
    directory: HashMap<String, String>,
    /// Replies are inspected like any message.
    pub(super) inspector: Arc<crate::inspect::Inspector>,
    /// Per-recipient locks of this process (the files store: one host, one server).
    locks: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// What sealing gave the pipeline: the item, and what to send once the decisions are audited.
pub struct SealedCase {
    pub id: String,
    pub meta: Meta,
    /// Per recipient whose way in is known: the link secret for the notification.
    pub links: Vec<(String, LinkSecret)>,
    /// The sender's completion link, when some recipient waits for it.
    pub completion: Option<LinkSecret>,
}

/// What the pipeline knows of the message when it seals it.
pub struct Sealing<'a> {
    pub id: &'a str,
    pub transaction: &'a str,
    pub sender: &'a str,
    pub sender_name: &'a str,
    pub subject: Option<&'a str>,
    pub message: &'a [u8],
    pub recipients: &'a [String],
    /// Numbers from the message's `Sluis-Recipient-Phone` headers, by lowercase address.
    pub phones: &'a HashMap<String, String>,
}

impl Portal {
    /// Builds the portal: reads (or makes, at first start) the server secret and the recipient
    /// directory, and sets up the SMS provider.
    pub fn build(
        config: &crate::config::Config,
        store: Arc<Store>,
        audit: Arc<AuditLog>,
        lanes: Arc<Lanes>,
    ) -> anyhow::Result<Option<Portal>> {
        use anyhow::Context;
        let Some(p) = &config.portal else {
            return Ok(None);
        };
        let path = config
            .portal_secret_file()
            .context("portal: no secret file")?;
        let server = load_or_make_secret(&path)
            .with_context(|| format!("portal.secret_file {}", path.display()))?;
        let directory = match &p.directory_file {
            Some(f) => super::phones::load_directory(f).map_err(anyhow::Error::msg)?,
            None => HashMap::new(),
        };
        let sms = match &p.sms {
            Some(s) => Some(Sms::from_config(s).context("portal.sms")?),
            None => None,
        };
        let codes = CodeKey::new(&server.derive(b"sluis-portal-codes-v1")?);
        Ok(Some(Portal {
            config: p.clone(),
            hostname: config.server.hostname.clone(),
            store,
            audit,
            lanes,
            server,
            codes,
            sms,
            directory,
            inspector: Arc::new(crate::inspect::Inspector::new(&config.inspect)?),
            locks: std::sync::Mutex::new(HashMap::new()),
        }))
    }

    /// Seals the message for `recipients` and stores it (durably, before the client's 250).
    pub async fn seal(&self, s: Sealing<'_>) -> Result<SealedCase, PortalError> {
        let rcpts: Vec<&str> = s.recipients.iter().map(String::as_str).collect();
        let (sealed, grants, key) = seal::seal(s.id, s.message, &rcpts, &self.server)?;
        let (created, created_unix) = crate::quarantine::stamp();
        let mut links = Vec::new();
        let mut completion = None;
        let mut grantees = Vec::new();
        for (grant, link) in grants {
            let lower = grant.recipient.to_ascii_lowercase();
            let number = s
                .phones
                .get(&lower)
                .or_else(|| self.directory.get(&lower))
                .filter(|_| self.sms.is_some());
            let auth = match number {
                Some(n) => {
                    let (nonce, sealed_number) =
                        seal::seal_note(&key, s.id, &grant.recipient, n.as_bytes())?;
                    Auth::Sms {
                        hint: super::phones::hint(n),
                        nonce: hex(&nonce),
                        number: hex(&sealed_number),
                    }
                }
                None if self.config.allow_email_code => Auth::Email,
                None => {
                    if completion.is_none() {
                        completion = Some(seal::new_secret()?.0);
                    }
                    let c = completion.as_ref().map(|c| c.0.as_str()).unwrap_or("");
                    let (nonce, wrapped) =
                        seal::wrap_link_for_sender(&link, c, s.id, &grant.recipient, &self.server)?;
                    Auth::Pending {
                        nonce: hex(&nonce),
                        link: hex(&wrapped),
                    }
                }
            };
            if !matches!(auth, Auth::Pending { .. }) {
                links.push((grant.recipient.clone(), link));
            }
            grantees.push(Grantee {
                address: grant.recipient.clone(),
                link_hash: hex(&grant.link_hash),
                nonce: hex(&grant.nonce),
                wrapped_key: hex(&grant.wrapped_key),
                auth,
                notified: false,
            });
        }
        let completion_hash = match &completion {
            Some(c) => Some(hex(&seal::link_hash(&c.0)?)),
            None => None,
        };
        let meta = Meta {
            transaction: s.transaction.to_string(),
            sender: s.sender.to_string(),
            sender_name: s.sender_name.to_string(),
            created,
            subject: s
                .subject
                .filter(|_| self.config.show_subject)
                .map(str::to_string),
            nonce: hex(&sealed.nonce),
            size: s.message.len() as u64,
            recipients: grantees,
            completion_expires: completion_hash
                .as_ref()
                .map(|_| created_unix + self.config.completion_time.as_secs()),
            completion_hash,
        };
        let item = SealedItem {
            id: s.id.to_string(),
            created_unix,
            expires: created_unix + self.config.retention.as_secs(),
            meta: serde_json::to_value(&meta).map_err(|_| PortalError::Corrupt(s.id.into()))?,
        };
        self.store.put_sealed(&item, &sealed.ciphertext).await?;
        crate::metrics::portal_items_change(1);
        Ok(SealedCase {
            id: s.id.to_string(),
            meta,
            links,
            completion,
        })
    }

    /// Runs `job` while no other request runs one for `key` (a recipient's code state, their
    /// first reading). With PostgreSQL, instances share the store: an advisory lock, `None`
    /// when another instance holds it right now. With files, one server process uses the
    /// store: a lock of this process, waited for, which leaves nothing on disk.
    pub(super) async fn one_at_a_time<T, F>(
        &self,
        key: &str,
        job: F,
    ) -> Result<Option<T>, StoreError>
    where
        F: std::future::Future<Output = T>,
    {
        if self.store.kind() != "files" {
            return self.store.exclusive(key, job).await;
        }
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            // Forget the locks nobody holds or waits for (the map stays as small as the
            // requests in progress).
            locks.retain(|_, l| Arc::strong_count(l) > 1);
            locks.entry(key.to_string()).or_default().clone()
        };
        let _held = lock.lock().await;
        Ok(Some(job.await))
    }

    /// Sends each of `recipients` (of the just sealed `inner`) its notification through the
    /// default lane, records who was notified, audits each; per recipient whether it is
    /// settled (notified, or waiting for the sender's completion page) rather than failed.
    pub async fn notify_sealed(&self, inner: &mut SealedCase, recipients: &[String]) -> Vec<bool> {
        let mut out = Vec::with_capacity(recipients.len());
        for address in recipients {
            let Some((_, link)) = inner.links.iter().find(|(a, _)| a == address) else {
                // Waits for the sender's completion page.
                out.push(true);
                continue;
            };
            let text = self.notification(&inner.id, &inner.meta, address, link);
            match self.send(address, &text).await {
                Ok(()) => {
                    out.push(true);
                    if let Some(g) = inner.meta.grantee_mut(address) {
                        g.notified = true;
                    }
                    let method = inner.meta.grantee(address).map(|g| g.auth.method());
                    let detail = EventDetail {
                        method,
                        ..EventDetail::of(address)
                    };
                    self.event(&inner.id, &inner.meta, "notified", detail).await;
                }
                Err(e) => {
                    tracing::warn!(portal = %inner.id, error = %e, "portal notification not sent");
                    out.push(false);
                    let detail = EventDetail {
                        detail: Some(e),
                        ..EventDetail::of(address)
                    };
                    self.event(&inner.id, &inner.meta, "notify-failed", detail)
                        .await;
                }
            }
        }
        if let Ok(Some((item, _))) = self.item(&inner.id).await
            && let Err(e) = self.save(&item, &inner.meta).await
        {
            tracing::warn!(portal = %inner.id, error = %e, "cannot record who was notified");
        }
        out
    }

    /// An item and its metadata; `None` when it is gone (expired, revoked) or past its expiry.
    pub async fn item(&self, id: &str) -> Result<Option<(SealedItem, Meta)>, PortalError> {
        if !crate::store::valid_id(id) {
            return Ok(None);
        }
        let Some(item) = self.store.sealed_item(id).await? else {
            return Ok(None);
        };
        if item.expires <= now_unix() {
            return Ok(None);
        }
        let meta: Meta = serde_json::from_value(item.meta.clone())
            .map_err(|_| PortalError::Corrupt(id.to_string()))?;
        Ok(Some((item, meta)))
    }

    /// Writes an item's changed metadata.
    pub async fn save(&self, item: &SealedItem, meta: &Meta) -> Result<(), PortalError> {
        let mut item = item.clone();
        item.meta =
            serde_json::to_value(meta).map_err(|_| PortalError::Corrupt(item.id.clone()))?;
        self.store.update_sealed(&item).await?;
        Ok(())
    }

    /// Audits and counts one event. A failed audit write is logged and counted: the event has
    /// happened (and the store changed) either way.
    pub async fn event(&self, id: &str, meta: &Meta, action: &'static str, e: EventDetail) {
        self.events(id, meta, vec![(action, e)]).await
    }

    /// Audits and counts several events of one item in one durable write.
    pub async fn events(&self, id: &str, meta: &Meta, events: Vec<(&'static str, EventDetail)>) {
        if events.is_empty() {
            return;
        }
        let records: Vec<Record> = events
            .into_iter()
            .map(|(action, e)| {
                crate::metrics::portal_event(action);
                Record::Portal(PortalEvent {
                    portal_id: id.to_string(),
                    transaction: meta.transaction.clone(),
                    action: action.to_string(),
                    recipient: e.recipient.unwrap_or_default(),
                    method: e.method.map(str::to_string),
                    by: e.by,
                    detail: e.detail,
                })
            })
            .collect();
        if let Err(err) = self.audit.append_async(&records).await {
            crate::metrics::audit_failure();
            tracing::error!(portal = %id, error = %err, "audit log write failed");
        }
    }

    /// Deletes an item (its wrapped keys with it) and audits why: revoked or expired.
    pub async fn shred(
        &self,
        id: &str,
        action: &'static str,
        by: &str,
        why: &str,
    ) -> Result<bool, PortalError> {
        let meta = match self.store.sealed_item(id).await? {
            Some(item) => serde_json::from_value::<Meta>(item.meta).ok(),
            None => return Ok(false),
        };
        let gone = self.store.shred(id).await?;
        if gone {
            crate::metrics::portal_items_change(-1);
        }
        if let (true, Some(meta)) = (gone, meta) {
            self.event(
                id,
                &meta,
                action,
                EventDetail {
                    by: Some(by.to_string()),
                    detail: Some(why.to_string()),
                    ..EventDetail::default()
                },
            )
            .await;
            if action == "expired"
                && meta.recipients.iter().any(|g| !g.notified)
                && !meta.sender.is_empty()
            {
                super::mail::tell_sender_unfinished(self, id, &meta).await;
            }
        }
        Ok(gone)
    }

    /// Shreds every item past its expiry, and ends what waited too long for the sender's
    /// completion page (the sender is told); how many items went.
    pub async fn expire(&self) -> Result<usize, PortalError> {
        let now = now_unix();
        let items = self.store.list_sealed().await?;
        let mut n = 0;
        for item in &items {
            if item.expires <= now {
                if self
                    .shred(&item.id, "expired", "retention", "past its expiry")
                    .await?
                {
                    n += 1;
                }
                continue;
            }
            let Ok(mut meta) = serde_json::from_value::<Meta>(item.meta.clone()) else {
                continue;
            };
            if meta.completion_expires.is_none_or(|t| t > now) {
                continue;
            }
            let waiting: Vec<String> = meta
                .recipients
                .iter()
                .filter(|g| matches!(g.auth, Auth::Pending { .. }))
                .map(|g| g.address.clone())
                .collect();
            if meta
                .recipients
                .iter()
                .all(|g| matches!(g.auth, Auth::Pending { .. }))
            {
                // Nobody can ever read it: it goes, and the sender hears (in `shred`).
                let why = "the sender did not give a number or access code in time";
                if self.shred(&item.id, "expired", "retention", why).await? {
                    n += 1;
                }
                continue;
            }
            // The others keep their copy; the waiting ones lose their grant.
            let unfinished = Meta {
                recipients: meta
                    .recipients
                    .iter()
                    .filter(|g| matches!(g.auth, Auth::Pending { .. }))
                    .cloned()
                    .collect(),
                ..meta.clone()
            };
            meta.recipients
                .retain(|g| !matches!(g.auth, Auth::Pending { .. }));
            meta.completion_hash = None;
            meta.completion_expires = None;
            self.save(item, &meta).await?;
            for r in &waiting {
                self.event(
                    &item.id,
                    &meta,
                    "expired",
                    EventDetail {
                        by: Some("retention".into()),
                        detail: Some("the sender did not complete it in time".into()),
                        ..EventDetail::of(r)
                    },
                )
                .await;
            }
            super::mail::tell_sender_unfinished(self, &item.id, &unfinished).await;
        }
        crate::metrics::portal_items(items.len() - n);
        Ok(n)
    }
}

/// The optional parts of an event record.
#[derive(Default)]
pub struct EventDetail {
    pub recipient: Option<String>,
    pub method: Option<&'static str>,
    pub by: Option<String>,
    pub detail: Option<String>,
}

impl EventDetail {
    pub fn of(recipient: &str) -> EventDetail {
        EventDetail {
            recipient: Some(recipient.to_string()),
            ..EventDetail::default()
        }
    }
}

/// Reads the server secret, or makes it (mode 0600, never replaced) when there is none.
/// The portal's server secret (without it no portal message opens).
fn load_or_make_secret(path: &std::path::Path) -> anyhow::Result<ServerSecret> {
    let bytes = crate::wire::secret::load_or_make(path, "portal secret")?;
    Ok(ServerSecret::from_bytes(&bytes)?)
}
