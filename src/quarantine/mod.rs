//! The quarantine store (DESIGN §9): held mail waits here for a compliance reviewer.
//!
//! An item is `<id>.eml` (the message as it would have been relayed, with Sluis's Received
//! header) and `<id>.json` (envelope, per-recipient decisions and reasons, masked findings,
//! posture evidence). Both are written to temporary names, fsync'd and renamed, the JSON last,
//! then the directory is fsync'd: an item exists exactly when its JSON does, so a crash leaves
//! a complete item or none (leftovers are removed at the next start; the client, which got no
//! 250, sends the message again). Files are mode 0600 in a 0700 directory: readable by Sluis
//! only. The store has a size bound; when full, mail that must be held is deferred, never
//! dropped.

pub mod notice;
pub mod review;

use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use crate::spool::SpooledBody;
use crate::terms::Level;

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
    #[error("quarantine item {id}: {what}")]
    Corrupt { id: String, what: String },
}

/// One held recipient and why.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HeldRecipient {
    pub address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orcpt: Option<String>,
    pub rule: String,
    pub reasons: Vec<String>,
    /// A release must go through a lane enforcing at least this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require: Option<Level>,
    /// The posture assessment behind the decision, when one was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub posture: Option<crate::posture::Assessment>,
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
}

pub struct Store {
    dir: PathBuf,
    max_bytes: u64,
}

/// Quarantine ids are transaction ids: Sluis's own alphabet, nothing a path could abuse.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-')
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

impl Store {
    /// Opens (creating, mode 0700) the store and removes what a crash left half-written.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Store, StoreError> {
        let store = Store {
            dir: dir.to_path_buf(),
            max_bytes,
        };
        let io = |source| StoreError::Io {
            dir: dir.display().to_string(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
        // Writers hold the lock shared while they write; leftovers are removed under it held
        // exclusively, so a running writer's files (this process, another instance, or the
        // server while a review command starts) are never mistaken for a crash's.
        let lock = store.lock_file().map_err(io)?;
        lock.lock().map_err(io)?;
        let cleaned = store.remove_leftovers();
        let _ = lock.unlock();
        cleaned.map_err(io)?;
        Ok(store)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn lock_file(&self) -> std::io::Result<std::fs::File> {
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(self.dir.join(".lock"))
    }

    /// One review at a time (across processes: the command line and the server's API), so
    /// two reviewers releasing the same item cannot deliver it twice.
    pub async fn reviewing(&self) -> Result<std::fs::File, StoreError> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(self.dir.join(".review.lock"))
            .map_err(|e| self.io(e))?;
        tokio::task::spawn_blocking(move || file.lock().map(|_| file))
            .await
            .map_err(|e| self.io(std::io::Error::other(e)))?
            .map_err(|e| self.io(e))
    }

    /// The shared lock writers hold while their files are incomplete.
    async fn writing(&self) -> Result<std::fs::File, StoreError> {
        let file = self.lock_file().map_err(|e| self.io(e))?;
        tokio::task::spawn_blocking(move || file.lock_shared().map(|_| file))
            .await
            .map_err(|e| self.io(std::io::Error::other(e)))?
            .map_err(|e| self.io(e))
    }

    /// Removes what a crash left half-written: temporary files, and messages whose JSON was
    /// never written. Call with the lock held exclusively.
    fn remove_leftovers(&self) -> std::io::Result<()> {
        for entry in std::fs::read_dir(&self.dir)? {
            let path = entry?.path();
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let orphan = name.starts_with(".tmp-")
                || name
                    .strip_suffix(".eml")
                    .is_some_and(|id| !self.dir.join(format!("{id}.json")).exists());
            if orphan {
                tracing::warn!(file = %path.display(), "removing an incomplete quarantine file left by a crash");
                std::fs::remove_file(&path)?;
            }
        }
        Ok(())
    }

    fn io(&self, source: std::io::Error) -> StoreError {
        StoreError::Io {
            dir: self.dir.display().to_string(),
            source,
        }
    }

    /// Bytes in use, and the number of items.
    pub fn usage(&self) -> Result<(u64, usize), StoreError> {
        let mut used = 0;
        let mut items = 0;
        for entry in std::fs::read_dir(&self.dir).map_err(|e| self.io(e))? {
            let entry = entry.map_err(|e| self.io(e))?;
            if let Ok(m) = entry.metadata() {
                used += m.len();
            }
            if entry.file_name().to_string_lossy().ends_with(".json") {
                items += 1;
            }
        }
        Ok((used, items))
    }

    /// Whether `size` more bytes fit.
    pub fn has_room(&self, size: u64) -> Result<(), StoreError> {
        let (used, _) = self.usage()?;
        if used + size + 64 * 1024 > self.max_bytes {
            return Err(StoreError::Full {
                used,
                max: self.max_bytes,
            });
        }
        Ok(())
    }

    /// Stores `header` + `body` and `item`, durably, or nothing.
    pub async fn put(
        &self,
        item: &Item,
        header: &[u8],
        body: &mut SpooledBody,
    ) -> Result<(), StoreError> {
        if !valid_id(&item.id) {
            return Err(StoreError::BadId(item.id.clone()));
        }
        self.has_room((header.len() + body.len()) as u64)?;
        let _writing = self.writing().await?;
        let eml_tmp = self.dir.join(format!(".tmp-{}.eml", item.id));
        let json_tmp = self.dir.join(format!(".tmp-{}.json", item.id));
        let result = self
            .write_item(item, header, body, &eml_tmp, &json_tmp)
            .await;
        if result.is_err() {
            for p in [&eml_tmp, &json_tmp] {
                let _ = tokio::fs::remove_file(p).await;
            }
            let _ = tokio::fs::remove_file(self.eml_path(&item.id)).await;
        }
        result
    }

    async fn write_item(
        &self,
        item: &Item,
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
        tokio::fs::rename(eml_tmp, self.eml_path(&item.id))
            .await
            .map_err(io)?;
        self.write_json(item, json_tmp).await?;
        Ok(())
    }

    async fn write_json(&self, item: &Item, tmp: &Path) -> Result<(), StoreError> {
        let io = |e| self.io(e);
        let json = serde_json::to_vec_pretty(item).unwrap_or_default();
        let mut f = create_private(tmp).await.map_err(io)?;
        f.write_all(&json).await.map_err(io)?;
        f.sync_all().await.map_err(io)?;
        drop(f);
        tokio::fs::rename(tmp, self.json_path(&item.id))
            .await
            .map_err(io)?;
        sync_dir(&self.dir).await.map_err(io)
    }

    /// Rewrites an item's JSON (after a review), atomically.
    pub async fn update(&self, item: &Item) -> Result<(), StoreError> {
        let _writing = self.writing().await?;
        let tmp = self.dir.join(format!(".tmp-{}.json", item.id));
        self.write_json(item, &tmp).await
    }

    pub fn eml_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.eml"))
    }

    fn json_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    pub fn get(&self, id: &str) -> Result<Item, StoreError> {
        if !valid_id(id) {
            return Err(StoreError::BadId(id.to_string()));
        }
        let data = match std::fs::read(self.json_path(id)) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::NotFound(id.to_string()));
            }
            Err(e) => return Err(self.io(e)),
        };
        serde_json::from_slice(&data).map_err(|e| StoreError::Corrupt {
            id: id.to_string(),
            what: e.to_string(),
        })
    }

    /// All items, oldest first.
    pub fn list(&self) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(|e| self.io(e))? {
            let name = entry.map_err(|e| self.io(e))?.file_name();
            let name = name.to_string_lossy();
            if let Some(id) = name.strip_suffix(".json")
                && !name.starts_with(".tmp-")
            {
                match self.get(id) {
                    Ok(item) => items.push(item),
                    Err(e) => tracing::warn!(error = %e, "skipping an unreadable quarantine item"),
                }
            }
        }
        items.sort_by(|a, b| a.created_unix.cmp(&b.created_unix).then(a.id.cmp(&b.id)));
        Ok(items)
    }

    /// The message of an item, as stored.
    pub fn read_message(&self, id: &str) -> Result<Vec<u8>, StoreError> {
        if !valid_id(id) {
            return Err(StoreError::BadId(id.to_string()));
        }
        std::fs::read(self.eml_path(id)).map_err(|e| self.io(e))
    }

    /// Removes an item: the JSON first (the item is gone), then the message.
    pub async fn remove(&self, id: &str) -> Result<(), StoreError> {
        if !valid_id(id) {
            return Err(StoreError::BadId(id.to_string()));
        }
        match tokio::fs::remove_file(self.json_path(id)).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::NotFound(id.to_string()));
            }
            Err(e) => return Err(self.io(e)),
        }
        let _ = tokio::fs::remove_file(self.eml_path(id)).await;
        sync_dir(&self.dir).await.map_err(|e| self.io(e))
    }

    /// Items older than `age`.
    pub fn older_than(&self, age: Duration) -> Result<Vec<Item>, StoreError> {
        let cutoff = now_unix().saturating_sub(age.as_secs());
        Ok(self
            .list()?
            .into_iter()
            .filter(|i| i.created_unix < cutoff)
            .collect())
    }
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

/// An item's creation time, now.
pub fn stamp() -> (String, u64) {
    (
        humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        now_unix(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn item(id: &str) -> Item {
        let (created, created_unix) = stamp();
        Item {
            id: id.into(),
            transaction: id.into(),
            created,
            created_unix,
            client: "127.0.0.1".into(),
            user: None,
            sender: "a@org.test".into(),
            body_8bit: false,
            smtputf8: false,
            envid: None,
            message_id: Some("<m1@org.test>".into()),
            size: 10,
            sensitive: true,
            score: 6,
            findings: vec!["bsn ***-**-782 in body (high)".into()],
            forward_signals: vec![],
            recipients: vec![HeldRecipient {
                address: "p@gmail.com".into(),
                orcpt: None,
                rule: "confidential-to-personal".into(),
                reasons: vec!["personal".into()],
                require: Some(Level::Trusted),
                posture: None,
            }],
        }
    }

    async fn body(text: &[u8]) -> SpooledBody {
        let mut b = SpooledBody::new(std::env::temp_dir(), 1024);
        b.write(text).await.unwrap();
        b
    }

    #[tokio::test]
    async fn put_get_list_remove_with_private_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("q"), 1 << 30).unwrap();
        let mut b = body(b"Subject: x\r\n\r\nhello\r\n").await;
        store
            .put(&item("ABC"), b"Received: x\r\n", &mut b)
            .await
            .unwrap();
        assert_eq!(store.get("ABC").unwrap(), item("ABC"));
        assert_eq!(
            store.read_message("ABC").unwrap(),
            b"Received: x\r\nSubject: x\r\n\r\nhello\r\n"
        );
        for f in ["ABC.eml", "ABC.json"] {
            let mode = std::fs::metadata(store.dir().join(f))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{f}");
        }
        let mode = std::fs::metadata(store.dir()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        assert_eq!(store.list().unwrap().len(), 1);
        store.remove("ABC").await.unwrap();
        assert!(matches!(store.get("ABC"), Err(StoreError::NotFound(_))));
        assert!(matches!(store.get("../etc"), Err(StoreError::BadId(_))));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_item_being_written_is_not_taken_for_a_crash_leftover() {
        let dir = tempfile::tempdir().unwrap();
        let qdir = dir.path().join("q");
        let store = Store::open(&qdir, 1 << 30).unwrap();
        // A writer in the middle of an item: the message renamed, its JSON not yet there.
        let writing = store.writing().await.unwrap();
        std::fs::write(qdir.join("BUSY.eml"), b"x").unwrap();
        let opener = {
            let qdir = qdir.clone();
            std::thread::spawn(move || Store::open(&qdir, 1 << 30).map(|_| ()))
        };
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(!opener.is_finished(), "cleanup did not wait for the writer");
        std::fs::write(qdir.join("BUSY.json"), b"{}").unwrap();
        drop(writing);
        opener.join().unwrap().unwrap();
        assert!(
            qdir.join("BUSY.eml").exists(),
            "a finished item was removed"
        );
    }

    #[tokio::test]
    async fn a_full_store_refuses_and_crash_leftovers_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let qdir = dir.path().join("q");
        let store = Store::open(&qdir, 100 * 1024).unwrap();
        let mut big = body(&vec![b'x'; 50 * 1024]).await;
        assert!(matches!(
            store.put(&item("BIG"), b"", &mut big).await,
            Err(StoreError::Full { .. })
        ));
        assert!(store.list().unwrap().is_empty());
        // What a kill between the two renames leaves: a message without its JSON.
        std::fs::write(qdir.join("HALF.eml"), b"x").unwrap();
        std::fs::write(qdir.join(".tmp-HALF.json"), b"{").unwrap();
        let store = Store::open(&qdir, 100 * 1024).unwrap();
        assert_eq!(
            store.usage().unwrap(),
            (0, 0),
            "only the (empty) lock file is left"
        );
    }
}
