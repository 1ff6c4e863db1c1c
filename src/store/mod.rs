//! Where state that must outlive a process lives (DESIGN §15): files under the spool (the
//! embedded default, one host) or PostgreSQL (several instances behind one service).
//!
//! The callers (the pipeline's holds, the review operations, the admin API, the command line)
//! use [`Store`] and never learn which backend answers. Both backends give the same
//! guarantees, and `tests/store.rs` runs one set of tests against each:
//!
//! - an item exists completely or not at all, and exists before `put` returns (the client's
//!   250 comes after it);
//! - a claim is exclusive: of two reviewers acting on one item at once, on one instance or two,
//!   exactly one gets it, and the other is told who has it or who settled it;
//! - a job run through [`Store::exclusive`] runs on one instance at a time.
//!
//! The store knows records, not their meaning: a held item's metadata is JSON that
//! `quarantine` defines.

pub mod files;
pub mod migrations;
pub mod postgres;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::spool::SpooledBody;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("quarantine {dir}: {source}")]
    Io { dir: String, source: std::io::Error },
    #[error("quarantine is full ({used} of {max} bytes in use)")]
    Full { used: u64, max: u64 },
    #[error("no quarantine item {0}")]
    NotFound(String),
    #[error("{0:?} is not a quarantine id")]
    BadId(String),
    #[error("{0:?} is not a session or counter key (1 to 128 of A-Z a-z 0-9 : _ -)")]
    BadKey(String),
    #[error("quarantine item {id}: {what}")]
    Corrupt { id: String, what: String },
    /// The database cannot be reached or refused the statement; mail that needs the store is
    /// deferred until it is back.
    #[error("store database: {0}")]
    Unavailable(String),
    /// The store's settings cannot be used (a file that cannot be read, a bad URL).
    #[error("store configuration: {0}")]
    Config(String),
    /// The database's schema is not one this binary can use.
    #[error("store database: {0}")]
    Schema(String),
    /// Another reviewer holds the item (a release in progress).
    #[error("quarantine item {id} is being handled: {}", .claim.describe())]
    Busy { id: String, claim: Claim },
    /// The item was released, rejected or purged already.
    #[error("quarantine item {id} was settled already: {}", .claim.describe())]
    Settled { id: String, claim: Claim },
}

impl StoreError {
    /// Whether the fault is the store's, not the request's: the caller defers and retries.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            StoreError::Io { .. } | StoreError::Unavailable(_) | StoreError::Full { .. }
        )
    }
}

/// Who acts on an item, doing what, since when (unix seconds).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Claim {
    pub by: String,
    pub action: String,
    pub at: u64,
    /// Which claim this is, so that only its holder settles it.
    #[serde(default, skip_serializing)]
    pub token: String,
}

impl Claim {
    pub fn new(by: &str, action: &str) -> Claim {
        let mut token = [0u8; 16];
        // A claim token only tells two claims apart; if the system's randomness failed, the
        // time and process id still do that.
        if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut token).is_err() {
            token[..8].copy_from_slice(&now_unix().to_be_bytes());
            token[8..12].copy_from_slice(&std::process::id().to_be_bytes());
        }
        Claim {
            by: by.to_string(),
            action: action.to_string(),
            at: now_unix(),
            token: data_encoding::HEXLOWER.encode(&token),
        }
    }

    fn describe(&self) -> String {
        let when =
            humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(self.at));
        format!("{} by {} at {when}", self.action, self.by)
    }

    fn stale(&self, lease: Duration) -> bool {
        now_unix().saturating_sub(self.at) > lease.as_secs()
    }
}

/// A held item as the store keeps it: its id, when it was stored, the metadata (JSON of
/// `quarantine::Item`), and the claim on it, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct Held {
    pub id: String,
    pub created_unix: u64,
    pub meta: serde_json::Value,
    pub claim: Option<Claim>,
}

/// A portal item as the store keeps it (DESIGN §13): its metadata (JSON of `portal::Meta`,
/// holding the wrapped keys) and when it expires; the sealed message is apart.
#[derive(Debug, Clone, PartialEq)]
pub struct SealedItem {
    pub id: String,
    pub created_unix: u64,
    /// Unix seconds; the item is shredded then.
    pub expires: u64,
    pub meta: serde_json::Value,
}

/// An instance's audit chain head, written to the store so that a cut or rewritten audit file
/// shows even when its head file went with it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Anchor {
    pub instance: String,
    pub seq: u64,
    pub hash: String,
    pub at: u64,
}

/// How long a claim holds before another reviewer may take the item over: longer than any
/// release takes (every lane's timeouts together), so only a crashed reviewer's claim expires.
pub const CLAIM_LEASE: Duration = Duration::from_secs(15 * 60);

/// This instance's name in audit anchors: `store.instance`, else the host name (a pod's name
/// in Kubernetes), else "sluis".
pub fn instance_name(config: &crate::config::StoreConfig) -> String {
    if let Some(i) = &config.instance {
        return i.clone();
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "sluis".to_string())
}

/// Quarantine ids are transaction ids: Sluis's own alphabet, nothing a path could abuse.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-')
}

pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

fn check_key(key: &str) -> Result<(), StoreError> {
    let ok = !key.is_empty()
        && key.len() <= 128
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b':' || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(StoreError::BadKey(key.to_string()))
    }
}

fn check_id(id: &str) -> Result<(), StoreError> {
    if valid_id(id) {
        Ok(())
    } else {
        Err(StoreError::BadId(id.to_string()))
    }
}

/// The store, on whichever backend the configuration names.
pub enum Store {
    Files(files::FileStore),
    Postgres(postgres::PgStore),
}

macro_rules! each {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            Store::Files($s) => $e,
            Store::Postgres($s) => $e,
        }
    };
}

impl Store {
    /// Opens the store `config` names: creates the file layout, or connects to PostgreSQL and
    /// brings its schema up to date (refusing a newer one).
    pub async fn open(config: &crate::config::Config) -> Result<Store, StoreError> {
        use crate::config::StoreKind;
        match config.store.kind {
            StoreKind::Files => Ok(Store::Files(files::FileStore::open(
                &config.quarantine_dir(),
                config.quarantine.max_bytes,
            )?)),
            StoreKind::Postgres => Ok(Store::Postgres(
                postgres::PgStore::connect(&config.store, config.quarantine.max_bytes).await?,
            )),
        }
    }

    /// "files" or "postgres", for logs and `/readyz`.
    pub fn kind(&self) -> &'static str {
        match self {
            Store::Files(_) => "files",
            Store::Postgres(_) => "postgres",
        }
    }

    /// Stores `header` + `body` as item `id` with `meta`, durably, or nothing.
    pub async fn put(
        &self,
        id: &str,
        created_unix: u64,
        meta: &serde_json::Value,
        header: &[u8],
        body: &mut SpooledBody,
    ) -> Result<(), StoreError> {
        check_id(id)?;
        each!(self, s => s.put(id, created_unix, meta, header, body).await)
    }

    pub async fn get(&self, id: &str) -> Result<Held, StoreError> {
        check_id(id)?;
        each!(self, s => s.get(id).await)
    }

    /// All held items, oldest first.
    pub async fn list(&self) -> Result<Vec<Held>, StoreError> {
        each!(self, s => s.list().await)
    }

    /// The message of an item, as stored.
    pub async fn message(&self, id: &str) -> Result<Vec<u8>, StoreError> {
        check_id(id)?;
        each!(self, s => s.message(id).await)
    }

    /// Removes an item the pipeline stored for a transaction that then failed (its client
    /// got no 250 and sends again): no reviewer was involved, so nothing is kept of it.
    pub async fn withdraw(&self, id: &str) -> Result<(), StoreError> {
        check_id(id)?;
        each!(self, s => s.withdraw(id).await)
    }

    /// Takes item `id` for `claim`: exactly one of several claimants at once gets it; the
    /// others get [`StoreError::Busy`] or [`StoreError::Settled`] naming who has or had it. A
    /// claim older than `lease` (its holder crashed) may be taken over.
    pub async fn claim(
        &self,
        id: &str,
        claim: &Claim,
        lease: Duration,
    ) -> Result<Held, StoreError> {
        check_id(id)?;
        each!(self, s => s.claim(id, claim, lease).await)
    }

    /// Ends `claim` on item `id`: `remaining` is the metadata of what is still held (the
    /// claim is dropped and the item stays), or `None` when the item is done (it is removed,
    /// and a tombstone says who settled it).
    pub async fn settle(
        &self,
        id: &str,
        claim: &Claim,
        remaining: Option<&serde_json::Value>,
    ) -> Result<(), StoreError> {
        check_id(id)?;
        each!(self, s => s.settle(id, claim, remaining).await)
    }

    /// Gives a claim up without changing the item (the action failed before it began).
    pub async fn release_claim(&self, id: &str, claim: &Claim) -> Result<(), StoreError> {
        check_id(id)?;
        each!(self, s => s.release_claim(id, claim).await)
    }

    /// Bytes held and the number of items.
    pub async fn usage(&self) -> Result<(u64, usize), StoreError> {
        each!(self, s => s.usage().await)
    }

    /// Removes tombstones of items settled before `before` (unix seconds); how many.
    pub async fn forget_settled(&self, before: u64) -> Result<usize, StoreError> {
        each!(self, s => s.forget_settled(before).await)
    }

    /// Records an instance's audit chain head (replacing its previous one).
    pub async fn put_anchor(&self, anchor: &Anchor) -> Result<(), StoreError> {
        each!(self, s => s.put_anchor(anchor).await)
    }

    /// The latest anchor of every instance.
    pub async fn anchors(&self) -> Result<Vec<Anchor>, StoreError> {
        each!(self, s => s.anchors().await)
    }

    /// Whether audit records are mirrored into this store for searching: with PostgreSQL,
    /// where instances' files are on other hosts; the files backend has the files themselves.
    pub fn mirrors_audit(&self) -> bool {
        matches!(self, Store::Postgres(_))
    }

    /// The newest audit record of `instance` mirrored so far (PostgreSQL only).
    pub async fn mirrored(&self, instance: &str) -> Result<Option<u64>, StoreError> {
        match self {
            Store::Files(_) => Ok(None),
            Store::Postgres(s) => s.mirrored(instance).await,
        }
    }

    /// Copies audit records of `instance` into the mirror (PostgreSQL only).
    pub async fn mirror(
        &self,
        instance: &str,
        records: &[(u64, serde_json::Value)],
    ) -> Result<(), StoreError> {
        match self {
            Store::Files(_) => Ok(()),
            Store::Postgres(s) => s.mirror(instance, records).await,
        }
    }

    /// Stores a session (a review login, a portal visit) under `key`, a hash of its secret
    /// (never the secret), until `expires` (unix seconds); replaces one with the same key.
    pub async fn put_session(
        &self,
        key: &str,
        value: &serde_json::Value,
        expires: u64,
    ) -> Result<(), StoreError> {
        check_key(key)?;
        each!(self, s => s.put_session(key, value, expires).await)
    }

    /// Makes this process the one that keeps the sessions of a files store (one server per
    /// files store keeps them: the portal's visits and code states); a second one is refused
    /// with that reason. With PostgreSQL, instances share them.
    pub async fn claim_sessions(&self) -> Result<(), StoreError> {
        match self {
            Store::Files(s) => s.claim_sessions().await,
            Store::Postgres(_) => Ok(()),
        }
    }

    /// The session under `key`, unless it expired or was dropped.
    pub async fn session(&self, key: &str) -> Result<Option<serde_json::Value>, StoreError> {
        check_key(key)?;
        each!(self, s => s.session(key, now_unix()).await)
    }

    /// Ends the session under `key` (a logout, a revocation).
    pub async fn drop_session(&self, key: &str) -> Result<(), StoreError> {
        check_key(key)?;
        each!(self, s => s.drop_session(key).await)
    }

    /// Counts one hit of `key` in the current fixed window of `window` and returns the hits in
    /// that window, this one included: exact across instances (the portal's "3 codes an
    /// hour", "locked after 10 failures").
    pub async fn hit(&self, key: &str, window: Duration) -> Result<u64, StoreError> {
        check_key(key)?;
        let secs = window.as_secs().max(1);
        let start = now_unix() / secs * secs;
        each!(self, s => s.hit(key, start, start + secs).await)
    }

    /// Removes expired sessions and counter windows ended before now; how many.
    pub async fn forget_expired(&self) -> Result<usize, StoreError> {
        each!(self, s => s.forget_expired(now_unix()).await)
    }

    /// Runs `job` unless another instance (or process) runs the job called `name` right now;
    /// `None` when it was skipped.
    pub async fn exclusive<T, F>(&self, name: &str, job: F) -> Result<Option<T>, StoreError>
    where
        F: std::future::Future<Output = T>,
    {
        each!(self, s => s.exclusive(name, job).await)
    }

    /// Stores a portal item and its sealed message, durably, or nothing.
    pub async fn put_sealed(&self, item: &SealedItem, sealed: &[u8]) -> Result<(), StoreError> {
        check_id(&item.id)?;
        each!(self, s => s.put_sealed(item, sealed).await)
    }

    /// A portal item's metadata; `None` once it is shredded (or never was).
    pub async fn sealed_item(&self, id: &str) -> Result<Option<SealedItem>, StoreError> {
        check_id(id)?;
        each!(self, s => s.sealed_item(id).await)
    }

    /// A portal item's sealed message.
    pub async fn sealed_message(&self, id: &str) -> Result<Vec<u8>, StoreError> {
        check_id(id)?;
        each!(self, s => s.sealed_message(id).await)
    }

    /// Replaces a portal item's metadata and expiry (the message stays).
    pub async fn update_sealed(&self, item: &SealedItem) -> Result<(), StoreError> {
        check_id(&item.id)?;
        each!(self, s => s.update_sealed(item).await)
    }

    /// Every portal item, oldest first.
    pub async fn list_sealed(&self) -> Result<Vec<SealedItem>, StoreError> {
        each!(self, s => s.list_sealed().await)
    }

    /// Deletes a portal item, its wrapped keys first: what is left of it opens nothing.
    /// Whether there was one.
    pub async fn shred(&self, id: &str) -> Result<bool, StoreError> {
        check_id(id)?;
        each!(self, s => s.shred(id).await)
    }

    /// Whether the store answers now, within `limit`.
    pub async fn check(&self, limit: Duration) -> Result<(), StoreError> {
        match tokio::time::timeout(limit, async { each!(self, s => s.check().await) }).await {
            Ok(r) => r,
            Err(_) => Err(StoreError::Unavailable(format!(
                "no answer within {}",
                humantime::format_duration(limit)
            ))),
        }
    }
}
