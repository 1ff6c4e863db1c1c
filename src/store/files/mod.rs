//! The files backend: one host, the embedded default.
//!
//! An item is `<id>.eml` (the message) and `<id>.json` (its metadata). Both are written to
//! temporary names, fsync'd and renamed, the JSON last, then the directory is fsync'd: an item
//! exists exactly when its JSON does, so a crash leaves a complete item or none (leftovers are
//! removed at the next start; the client, which got no 250, sends the message again). Files are
//! mode 0600 in a 0700 directory: readable by Sluis only. The store has a size bound; when
//! full, mail that must be held is deferred, never dropped.
//!
//! A claim is `<id>.claim`, created and checked under `.claims.lock` held exclusively, so the
//! server and the command line (separate processes) see one truth. A settled item leaves a
//! tombstone in `settled/`; audit anchors are in `anchors/`; sessions and rate counters in
//! `sessions/` (one journal, `journal`) and `counters/`; portal items in `portal/` (`sealed`); an exclusive job holds
//! `.job-<name>.lock`.

mod journal;
mod sealed;
mod shared;

use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use super::{Anchor, Claim, Held, StoreError, now_unix};
use crate::spool::SpooledBody;

pub struct FileStore {
    dir: PathBuf,
    max_bytes: u64,
    /// Bytes and items as last counted, when, and bytes stored since: counting reads every
    /// file's metadata, so a hold uses a count up to [`USAGE_FRESH`] old (removals by other
    /// processes show at the next count; until then the bound only errs on the safe side).
    usage: std::sync::Mutex<Option<(std::time::Instant, u64, usize)>>,
    sessions: std::sync::Arc<journal::Journal>,
}

/// How long a count of the store's usage stands.
const USAGE_FRESH: Duration = Duration::from_secs(5);

impl FileStore {
    /// Opens (creating, mode 0700) the store and removes what a crash left half-written.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<FileStore, StoreError> {
        let store = FileStore {
            dir: dir.to_path_buf(),
            max_bytes,
            usage: std::sync::Mutex::new(None),
            sessions: journal::Journal::of(&dir.join("sessions")),
        };
        let io = |e| store.io(e);
        for d in [
            dir.to_path_buf(),
            store.settled_dir(),
            store.anchor_dir(),
            dir.join("sessions"),
            dir.join("counters"),
            store.portal_dir(),
        ] {
            std::fs::create_dir_all(&d).map_err(io)?;
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
        }
        // Writers hold the lock shared while they write; leftovers are removed under it held
        // exclusively, so a running writer's files (this process, another instance, or the
        // server while a review command starts) are never mistaken for a crash's.
        let lock = store.open_lock(".lock").map_err(io)?;
        lock.lock().map_err(io)?;
        let cleaned = store
            .remove_leftovers()
            .and_then(|()| store.remove_sealed_leftovers());
        let _ = lock.unlock();
        cleaned.map_err(io)?;
        Ok(store)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn settled_dir(&self) -> PathBuf {
        self.dir.join("settled")
    }

    fn anchor_dir(&self) -> PathBuf {
        self.dir.join("anchors")
    }

    fn open_lock(&self, name: &str) -> std::io::Result<std::fs::File> {
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(self.dir.join(name))
    }

    /// `name`'s lock, taken in a blocking thread (shared or exclusive).
    async fn locked(&self, name: &str, shared: bool) -> Result<std::fs::File, StoreError> {
        let file = self.open_lock(name).map_err(|e| self.io(e))?;
        tokio::task::spawn_blocking(move || {
            if shared {
                file.lock_shared()
            } else {
                file.lock()
            }
            .map(|_| file)
        })
        .await
        .map_err(|e| self.io(std::io::Error::other(e)))?
        .map_err(|e| self.io(e))
    }

    /// Removes what a crash left half-written: temporary files, messages whose JSON was never
    /// written, claims on items that are gone. Call with the lock held exclusively.
    fn remove_leftovers(&self) -> std::io::Result<()> {
        for entry in std::fs::read_dir(&self.dir)? {
            let path = entry?.path();
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let orphan = name.starts_with(".tmp-")
                || [".eml", ".claim"].iter().any(|ext| {
                    name.strip_suffix(ext)
                        .is_some_and(|id| !self.json_path(id).exists())
                });
            if orphan {
                tracing::warn!(file = %path.display(), "removing an incomplete quarantine file left by a crash");
                std::fs::remove_file(&path)?;
            }
        }
        Ok(())
    }

    /// A temporary name no other writer uses at the same time (two requests of one visit may
    /// write its session at once; a fixed name would make one rename the other's file).
    fn unique_tmp(dir: &Path, stem: &str) -> PathBuf {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        dir.join(format!(".tmp-{stem}.{}.{n}", std::process::id()))
    }

    fn io(&self, source: std::io::Error) -> StoreError {
        StoreError::Io {
            dir: self.dir.display().to_string(),
            source,
        }
    }

    fn eml_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.eml"))
    }

    fn json_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    fn claim_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.claim"))
    }

    fn tombstone_path(&self, id: &str) -> PathBuf {
        self.settled_dir().join(format!("{id}.json"))
    }

    /// Bytes used and items: a count at most [`USAGE_FRESH`] old, plus what this process
    /// stored since.
    async fn recent_usage(&self) -> Result<(u64, usize), StoreError> {
        if let Some((at, used, items)) = *self.usage.lock().unwrap_or_else(|p| p.into_inner())
            && at.elapsed() < USAGE_FRESH
        {
            return Ok((used, items));
        }
        self.usage().await
    }

    fn count_stored(&self, size: u64) {
        if let Some((_, used, items)) = self
            .usage
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
        {
            *used += size;
            *items += 1;
        }
    }

    /// Counts bytes used and items now.
    pub async fn usage(&self) -> Result<(u64, usize), StoreError> {
        let mut used = 0;
        let mut items = 0;
        for entry in std::fs::read_dir(&self.dir).map_err(|e| self.io(e))? {
            let entry = entry.map_err(|e| self.io(e))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.ends_with(".eml") || name.ends_with(".json") {
                used += entry.metadata().map(|m| m.len()).unwrap_or(0);
            }
            if name.ends_with(".json") && !name.starts_with(".tmp-") {
                items += 1;
            }
        }
        *self.usage.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((std::time::Instant::now(), used, items));
        Ok((used, items))
    }

    pub async fn put(
        &self,
        id: &str,
        _created_unix: u64,
        meta: &serde_json::Value,
        header: &[u8],
        body: &mut SpooledBody,
    ) -> Result<(), StoreError> {
        let (used, _) = self.recent_usage().await?;
        let size = (header.len() + body.len()) as u64;
        if used + size + 64 * 1024 > self.max_bytes {
            return Err(StoreError::Full {
                used,
                max: self.max_bytes,
            });
        }
        let _writing = self.locked(".lock", true).await?;
        let eml_tmp = self.dir.join(format!(".tmp-{id}.eml"));
        let json_tmp = self.dir.join(format!(".tmp-{id}.json"));
        let result = self
            .write_item(id, meta, header, body, &eml_tmp, &json_tmp)
            .await;
        if result.is_ok() {
            self.count_stored(size);
        }
        if result.is_err() {
            for p in [&eml_tmp, &json_tmp] {
                let _ = tokio::fs::remove_file(p).await;
            }
            let _ = tokio::fs::remove_file(self.eml_path(id)).await;
        }
        result
    }

    async fn write_item(
        &self,
        id: &str,
        meta: &serde_json::Value,
        header: &[u8],
        body: &mut SpooledBody,
        eml_tmp: &Path,
        json_tmp: &Path,
    ) -> Result<(), StoreError> {
        let io = |e| self.io(e);
        let mut f = create_private(eml_tmp).await.map_err(io)?;
        f.write_all(header).await.map_err(io)?;
        body.rewind().await.map_err(io)?;
        while let Some(chunk) = body.next_chunk().await.map_err(io)? {
            f.write_all(&chunk).await.map_err(io)?;
        }
        f.sync_all().await.map_err(io)?;
        drop(f);
        tokio::fs::rename(eml_tmp, self.eml_path(id))
            .await
            .map_err(io)?;
        let json = serde_json::to_vec_pretty(meta).unwrap_or_default();
        self.write_file(&json, json_tmp, &self.json_path(id)).await
    }

    /// Writes `data` to `tmp`, fsyncs it, renames it to `path` and fsyncs the directory: in
    /// one blocking task, not one per step (small writes are most of the store's traffic, and
    /// each hop to the blocking pool and back is a pair of task switches).
    async fn write_file(&self, data: &[u8], tmp: &Path, path: &Path) -> Result<(), StoreError> {
        let (data, tmp, path) = (data.to_vec(), tmp.to_path_buf(), path.to_path_buf());
        let written = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&data)?;
            f.sync_all()?;
            drop(f);
            std::fs::rename(&tmp, &path)?;
            if let Some(parent) = path.parent() {
                std::fs::File::open(parent)?.sync_all()?;
            }
            Ok(())
        })
        .await
        .map_err(std::io::Error::other)
        .and_then(|r| r);
        written.map_err(|e| self.io(e))
    }

    fn read_meta(&self, id: &str) -> Result<serde_json::Value, StoreError> {
        let data = match std::fs::read(self.json_path(id)) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(self.gone(id));
            }
            Err(e) => return Err(self.io(e)),
        };
        serde_json::from_slice(&data).map_err(|e| StoreError::Corrupt {
            id: id.to_string(),
            what: e.to_string(),
        })
    }

    /// What to say of an item that is not there: who settled it, when a tombstone says so.
    fn gone(&self, id: &str) -> StoreError {
        match read_claim(&self.tombstone_path(id)) {
            Some(claim) => StoreError::Settled {
                id: id.to_string(),
                claim,
            },
            None => StoreError::NotFound(id.to_string()),
        }
    }

    pub async fn get(&self, id: &str) -> Result<Held, StoreError> {
        let meta = self.read_meta(id)?;
        Ok(Held {
            id: id.to_string(),
            created_unix: meta["created_unix"].as_u64().unwrap_or_default(),
            meta,
            claim: read_claim(&self.claim_path(id)),
        })
    }

    pub async fn list(&self) -> Result<Vec<Held>, StoreError> {
        let mut items = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(|e| self.io(e))? {
            let name = entry.map_err(|e| self.io(e))?.file_name();
            let name = name.to_string_lossy();
            if let Some(id) = name.strip_suffix(".json")
                && super::valid_id(id)
            {
                match self.get(id).await {
                    Ok(item) => items.push(item),
                    // Removed between the listing and the read: settled meanwhile.
                    Err(StoreError::NotFound(_) | StoreError::Settled { .. }) => {}
                    Err(e) => tracing::warn!(error = %e, "skipping an unreadable quarantine item"),
                }
            }
        }
        items.sort_by(|a, b| a.created_unix.cmp(&b.created_unix).then(a.id.cmp(&b.id)));
        Ok(items)
    }

    pub async fn message(&self, id: &str) -> Result<Vec<u8>, StoreError> {
        match std::fs::read(self.eml_path(id)) {
            Ok(m) => Ok(m),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(self.gone(id)),
            Err(e) => Err(self.io(e)),
        }
    }

    /// Removes the item's files: the JSON first (the item is gone), then the message and claim.
    async fn remove(&self, id: &str) -> Result<(), StoreError> {
        match tokio::fs::remove_file(self.json_path(id)).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(self.gone(id)),
            Err(e) => return Err(self.io(e)),
        }
        let _ = tokio::fs::remove_file(self.eml_path(id)).await;
        let _ = tokio::fs::remove_file(self.claim_path(id)).await;
        sync_dir(&self.dir).await.map_err(|e| self.io(e))
    }

    pub async fn withdraw(&self, id: &str) -> Result<(), StoreError> {
        self.remove(id).await
    }

    pub async fn claim(
        &self,
        id: &str,
        claim: &Claim,
        lease: Duration,
    ) -> Result<Held, StoreError> {
        let _claims = self.locked(".claims.lock", false).await?;
        let mut held = self.get(id).await?;
        if let Some(other) = &held.claim
            && !other.stale(lease)
        {
            return Err(StoreError::Busy {
                id: id.to_string(),
                claim: other.clone(),
            });
        }
        let tmp = self.dir.join(format!(".tmp-{id}.claim"));
        let data = serde_json::to_vec(&StoredClaim::from(claim)).unwrap_or_default();
        self.write_file(&data, &tmp, &self.claim_path(id)).await?;
        held.claim = Some(claim.clone());
        Ok(held)
    }

    /// Fails unless `claim` is the item's current claim.
    fn check_claim(&self, id: &str, claim: &Claim) -> Result<(), StoreError> {
        match read_claim(&self.claim_path(id)) {
            Some(current) if current.token == claim.token => Ok(()),
            Some(current) => Err(StoreError::Busy {
                id: id.to_string(),
                claim: current,
            }),
            None if self.json_path(id).exists() => Err(StoreError::Corrupt {
                id: id.to_string(),
                what: "the claim to settle is gone".into(),
            }),
            None => Err(self.gone(id)),
        }
    }

    pub async fn settle(
        &self,
        id: &str,
        claim: &Claim,
        remaining: Option<&serde_json::Value>,
    ) -> Result<(), StoreError> {
        let _claims = self.locked(".claims.lock", false).await?;
        self.check_claim(id, claim)?;
        match remaining {
            Some(meta) => {
                let json = serde_json::to_vec_pretty(meta).unwrap_or_default();
                let tmp = self.dir.join(format!(".tmp-{id}.json"));
                let _writing = self.locked(".lock", true).await?;
                self.write_file(&json, &tmp, &self.json_path(id)).await?;
                tokio::fs::remove_file(self.claim_path(id))
                    .await
                    .map_err(|e| self.io(e))
            }
            None => {
                let mut done = StoredClaim::from(claim);
                done.at = now_unix();
                let data = serde_json::to_vec(&done).unwrap_or_default();
                let tmp = self.settled_dir().join(format!(".tmp-{id}.json"));
                self.write_file(&data, &tmp, &self.tombstone_path(id))
                    .await?;
                self.remove(id).await
            }
        }
    }

    pub async fn release_claim(&self, id: &str, claim: &Claim) -> Result<(), StoreError> {
        let _claims = self.locked(".claims.lock", false).await?;
        self.check_claim(id, claim)?;
        tokio::fs::remove_file(self.claim_path(id))
            .await
            .map_err(|e| self.io(e))
    }

    pub async fn forget_settled(&self, before: u64) -> Result<usize, StoreError> {
        let mut n = 0;
        for entry in std::fs::read_dir(self.settled_dir()).map_err(|e| self.io(e))? {
            let path = entry.map_err(|e| self.io(e))?.path();
            if read_claim(&path).is_none_or(|c| c.at < before) {
                tokio::fs::remove_file(&path)
                    .await
                    .map_err(|e| self.io(e))?;
                n += 1;
            }
        }
        Ok(n)
    }

    pub async fn put_anchor(&self, anchor: &Anchor) -> Result<(), StoreError> {
        let name = data_encoding::HEXLOWER.encode(anchor.instance.as_bytes());
        let data = serde_json::to_vec(anchor).unwrap_or_default();
        let tmp = self.anchor_dir().join(format!(".tmp-{name}"));
        let path = self.anchor_dir().join(format!("{name}.json"));
        self.write_file(&data, &tmp, &path).await
    }

    pub async fn anchors(&self) -> Result<Vec<Anchor>, StoreError> {
        anchors_in(&self.dir)
    }

    pub async fn exclusive<T, F>(&self, name: &str, job: F) -> Result<Option<T>, StoreError>
    where
        F: std::future::Future<Output = T>,
    {
        let name: String = name
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        let file = self
            .open_lock(&format!(".job-{name}.lock"))
            .map_err(|e| self.io(e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
            Err(std::fs::TryLockError::Error(e)) => return Err(self.io(e)),
        }
        let out = job.await;
        let _ = file.unlock();
        Ok(Some(out))
    }

    /// The directory is there and writable.
    pub async fn check(&self) -> Result<(), StoreError> {
        let probe = self.dir.join(".tmp-ready");
        std::fs::write(&probe, b"")
            .and_then(|()| std::fs::remove_file(&probe))
            .map_err(|e| self.io(e))
    }
}

/// The anchors of the file store in `dir`, read without opening the store (which would
/// create and clean up files, as whichever user runs the command): none if there is no store.
pub fn anchors_in(dir: &Path) -> Result<Vec<Anchor>, StoreError> {
    let io = |source| StoreError::Io {
        dir: dir.display().to_string(),
        source,
    };
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir.join("anchors")) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io(e)),
    };
    for entry in entries {
        let path = entry.map_err(io)?.path();
        if path.extension().is_some_and(|e| e == "json") {
            let data = std::fs::read(&path).map_err(io)?;
            let anchor = serde_json::from_slice(&data).map_err(|e| StoreError::Corrupt {
                id: path.display().to_string(),
                what: e.to_string(),
            })?;
            out.push(anchor);
        }
    }
    out.sort_by(|a: &Anchor, b| a.instance.cmp(&b.instance));
    Ok(out)
}

/// A claim as written to a file: with its token, which the API never shows.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredClaim {
    by: String,
    action: String,
    at: u64,
    token: String,
}

impl From<&Claim> for StoredClaim {
    fn from(c: &Claim) -> Self {
        StoredClaim {
            by: c.by.clone(),
            action: c.action.clone(),
            at: c.at,
            token: c.token.clone(),
        }
    }
}

fn read_claim(path: &Path) -> Option<Claim> {
    let data = std::fs::read(path).ok()?;
    let c: StoredClaim = serde_json::from_slice(&data).ok()?;
    Some(Claim {
        by: c.by,
        action: c.action,
        at: c.at,
        token: c.token,
    })
}

async fn create_private(path: &Path) -> std::io::Result<tokio::fs::File> {
    let path = path.to_path_buf();
    let f = tokio::task::spawn_blocking(move || {
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
    })
    .await
    .map_err(std::io::Error::other)??;
    Ok(tokio::fs::File::from_std(f))
}

async fn sync_dir(dir: &Path) -> std::io::Result<()> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || std::fs::File::open(dir)?.sync_all())
        .await
        .map_err(std::io::Error::other)?
}
