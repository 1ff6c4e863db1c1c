//! Sessions and rate counters in files: sessions in one journal (`journal.rs`, group commit)
//! and counters as `counters/<key>.json`, each counter read, incremented and written under
//! `.counters.lock` held exclusively, so the server and the command line count as one.

use super::FileStore;
use super::journal::JournalError;
use crate::store::StoreError;

#[derive(serde::Serialize, serde::Deserialize)]
struct Counter {
    window_start: u64,
    window_end: u64,
    hits: u64,
}

impl FileStore {
    fn counter_path(&self, key: &str) -> std::path::PathBuf {
        self.dir.join("counters").join(format!("{key}.json"))
    }

    pub async fn put_session(
        &self,
        key: &str,
        value: &serde_json::Value,
        expires: u64,
    ) -> Result<(), StoreError> {
        self.sessions
            .put(key, value, expires)
            .await
            .map_err(|e| self.journal(e))
    }

    pub async fn session(
        &self,
        key: &str,
        now: u64,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        self.sessions
            .get(key, now)
            .await
            .map_err(|e| self.journal(e))
    }

    pub async fn drop_session(&self, key: &str) -> Result<(), StoreError> {
        self.sessions
            .drop_key(key)
            .await
            .map_err(|e| self.journal(e))
    }

    /// Makes this process the one that keeps the sessions (the portal's server).
    pub async fn claim_sessions(&self) -> Result<(), StoreError> {
        self.sessions.claim().await.map_err(|e| self.journal(e))
    }

    fn journal(&self, e: JournalError) -> StoreError {
        match e {
            JournalError::Io { source, .. } => self.io(source),
            taken @ JournalError::Taken { .. } => StoreError::Config(taken.to_string()),
        }
    }

    pub async fn hit(&self, key: &str, start: u64, end: u64) -> Result<u64, StoreError> {
        let _counting = self.locked(".counters.lock", false).await?;
        let path = self.counter_path(key);
        let current: Option<Counter> = std::fs::read(&path)
            .ok()
            .and_then(|d| serde_json::from_slice(&d).ok());
        let hits = match current {
            Some(c) if c.window_start == start => c.hits + 1,
            _ => 1,
        };
        let data = serde_json::to_vec(&Counter {
            window_start: start,
            window_end: end,
            hits,
        })
        .unwrap_or_default();
        let tmp = self.dir.join("counters").join(format!(".tmp-{key}"));
        self.write_file(&data, &tmp, &path).await?;
        Ok(hits)
    }

    pub async fn forget_expired(&self, now: u64) -> Result<usize, StoreError> {
        let mut n = self
            .sessions
            .sweep(now)
            .await
            .map_err(|e| self.journal(e))?;
        let _counting = self.locked(".counters.lock", false).await?;
        for entry in std::fs::read_dir(self.dir.join("counters")).map_err(|e| self.io(e))? {
            let entry = entry.map_err(|e| self.io(e))?;
            let path = entry.path();
            // A temporary file being written right now is another writer's, not litter.
            let writing = entry.file_name().to_string_lossy().starts_with(".tmp-")
                && entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t.elapsed().is_ok_and(|a| a.as_secs() < 60));
            if writing {
                continue;
            }
            let ends = std::fs::read(&path)
                .ok()
                .and_then(|d| serde_json::from_slice::<serde_json::Value>(&d).ok())
                .and_then(|v| v.get("window_end").and_then(serde_json::Value::as_u64));
            if ends.is_none_or(|t| t <= now) {
                tokio::fs::remove_file(&path)
                    .await
                    .map_err(|e| self.io(e))?;
                n += 1;
            }
        }
        Ok(n)
    }
}
