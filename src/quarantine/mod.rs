//! Held mail waiting for a compliance reviewer (DESIGN §9): what an item says (envelope,
//! per-recipient decisions and reasons, masked findings, posture evidence) and the typed
//! operations on it. Where items live, and the guarantees of storing them (complete or
//! absent, committed before the client's 250, exclusive claims), is the store's (§15).

pub mod link;
pub mod notice;
pub mod outcome;
pub mod report;
pub mod review;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::spool::SpooledBody;
use crate::store::{CLAIM_LEASE, Store, now_unix};
pub use crate::store::{Claim, StoreError, valid_id};
use crate::terms::Level;

/// One held recipient and why.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HeldRecipient {
    pub address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orcpt: Option<String>,
    pub rule: String,
    pub reasons: Vec<String>,
    /// What kind of recipient it is (managed, partner, personal, unmanaged); absent in items
    /// held before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<crate::terms::RecipientClass>,
    /// The rule lets the sender override the hold with a justification (`allow_override`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_override: bool,
    /// A release must go through a lane enforcing at least this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require: Option<Level>,
    /// The posture assessment behind the decision, when one was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub posture: Option<crate::posture::Assessment>,
}

/// A released recipient whose final outcome is not known yet.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PendingRelease {
    pub address: String,
    /// The lane that accepted it, and the level that lane enforces at delivery.
    pub lane: String,
    pub level: Level,
    pub reviewer: String,
    /// RFC 3339, when the lane accepted it.
    pub accepted: String,
    /// The last report short of a final one ("delayed: 4.4.1 ..."), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_report: Option<String>,
}

/// The JSON half of an item.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Item {
    pub id: String,
    pub transaction: String,
    /// RFC 3339.
    pub created: String,
    pub created_unix: u64,
    pub client: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    pub sender: String,
    /// MAIL FROM parameters a release must repeat.
    #[serde(default)]
    pub body_8bit: bool,
    #[serde(default)]
    pub smtputf8: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    pub size: u64,
    pub sensitive: bool,
    pub score: u32,
    /// Masked findings ("bsn ***-**-782 in body.1 (high)"), never raw values.
    pub findings: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forward_signals: Vec<String>,
    pub recipients: Vec<HeldRecipient>,
    /// Recipients a reviewer released and a lane accepted, waiting for the lane's delivery
    /// report: the item stays (released-pending) until every one has a final outcome.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub released: Vec<PendingRelease>,
    /// The secret in this item's report address (`report::address`): a report must carry it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_token: Option<String>,
    /// What the sender said through their link: this is no patient data (false positive).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sender_reports: Vec<SenderReport>,
    /// Who is acting on the item right now (a release in progress); never stored in the
    /// item's own metadata, the store keeps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<Claim>,
}

/// A sender's report that a hold is a false positive.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SenderReport {
    /// RFC 3339.
    pub at: String,
    pub comment: String,
}

/// The quarantine: typed items over the store.
#[derive(Clone)]
pub struct Quarantine {
    store: Arc<Store>,
}

fn corrupt(id: &str, e: serde_json::Error) -> StoreError {
    StoreError::Corrupt {
        id: id.to_string(),
        what: e.to_string(),
    }
}

impl Quarantine {
    pub fn new(store: Arc<Store>) -> Quarantine {
        Quarantine { store }
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The metadata to store: the item without its claim.
    fn meta(item: &Item) -> serde_json::Value {
        let mut item = item.clone();
        item.claim = None;
        serde_json::to_value(&item).unwrap_or_default()
    }

    fn item(held: crate::store::Held) -> Result<Item, StoreError> {
        let mut item: Item = serde_json::from_value(held.meta).map_err(|e| corrupt(&held.id, e))?;
        item.claim = held.claim;
        Ok(item)
    }

    /// Stores `header` + `body` and `item`, durably, or nothing.
    pub async fn put(
        &self,
        item: &Item,
        header: &[u8],
        body: &mut SpooledBody,
    ) -> Result<(), StoreError> {
        self.store
            .put(
                &item.id,
                item.created_unix,
                &Quarantine::meta(item),
                header,
                body,
            )
            .await
    }

    pub async fn get(&self, id: &str) -> Result<Item, StoreError> {
        Quarantine::item(self.store.get(id).await?)
    }

    /// All items, oldest first.
    pub async fn list(&self) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        for held in self.store.list().await? {
            let id = held.id.clone();
            match Quarantine::item(held) {
                Ok(item) => items.push(item),
                Err(e) => {
                    tracing::warn!(quarantine = %id, error = %e, "skipping an unreadable quarantine item")
                }
            }
        }
        Ok(items)
    }

    /// The message of an item, as stored.
    pub async fn message(&self, id: &str) -> Result<Vec<u8>, StoreError> {
        self.store.message(id).await
    }

    /// Removes an item stored for a transaction that then failed.
    pub async fn withdraw(&self, id: &str) -> Result<(), StoreError> {
        self.store.withdraw(id).await
    }

    /// Takes item `id` for `reviewer` doing `action`; fails naming who has it or had it.
    pub async fn claim(
        &self,
        id: &str,
        reviewer: &str,
        action: &str,
    ) -> Result<(Item, Claim), StoreError> {
        let claim = Claim::new(reviewer, action);
        let item = Quarantine::item(self.store.claim(id, &claim, CLAIM_LEASE).await?)?;
        Ok((item, claim))
    }

    /// Ends `claim`: `remaining` is what stays held, `None` when the item is done.
    pub async fn settle(
        &self,
        id: &str,
        claim: &Claim,
        remaining: Option<&Item>,
    ) -> Result<(), StoreError> {
        let meta = remaining.map(Quarantine::meta);
        self.store.settle(id, claim, meta.as_ref()).await
    }

    /// Gives up `claim`, leaving the item as it was.
    pub async fn unclaim(&self, id: &str, claim: &Claim) -> Result<(), StoreError> {
        self.store.release_claim(id, claim).await
    }

    /// Items older than `age`.
    pub async fn older_than(&self, age: Duration) -> Result<Vec<Item>, StoreError> {
        let cutoff = now_unix().saturating_sub(age.as_secs());
        Ok(self
            .list()
            .await?
            .into_iter()
            .filter(|i| i.created_unix < cutoff)
            .collect())
    }
}

/// An item's creation time, now.
pub fn stamp() -> (String, u64) {
    (
        humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        now_unix(),
    )
}
