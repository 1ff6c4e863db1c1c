//! Sessions and rate counters in files: `sessions/<key>.json` (written whole, renamed into
//! place) and `counters/<key>.json`, each counter read, incremented and written under
//! `.counters.lock` held exclusively, so the server and the command line count as one.

use super::FileStore;
use crate::store::StoreError;

#[derive(serde::Serialize, serde::Deserialize)]
struct Session {
    value: serde_json::Value,
    expires: u64,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Counter {
    window_start: u64,
    window_end: u64,
    hits: u64,
}

impl FileStore {
    fn session_path(&self, key: &str) -> std::path::PathBuf {
        self.dir.join("sessions").join(format!("{key}.json"))
    }

    fn counter_path(&self, key: &str) -> std::path::PathBuf {
        self.dir.join("counters").join(format!("{key}.json"))
    }

    pub async fn put_session(
        &self,
        key: &str,
        value: &serde_json::Value,
        expires: u64,
    ) -> Result<(), StoreError> {
        let data = serde_json::to_vec(&Session {
            value: value.clone(),
            expires,
        })
        .unwrap_or_default();
        let tmp = Self::unique_tmp(&self.dir.join("sessions"), key);
        self.write_file(&data, &tmp, &self.session_path(key)).await
    }

    pub async fn session(
        &self,
        key: &str,
        now: u64,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        let data = match std::fs::read(self.session_path(key)) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io(e)),
        };
        let session: Session = serde_json::from_slice(&data).map_err(|e| StoreError::Corrupt {
            id: format!("session {key}"),
            what: e.to_string(),
        })?;
        Ok((session.expires > now).then_some(session.value))
    }

    pub async fn drop_session(&self, key: &str) -> Result<(), StoreError> {
        match tokio::fs::remove_file(self.session_path(key)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.io(e)),
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
        let mut n = 0;
        for (sub, expiry) in [("sessions", "expires"), ("counters", "window_end")] {
            let _counting = self.locked(".counters.lock", false).await?;
            for entry in std::fs::read_dir(self.dir.join(sub)).map_err(|e| self.io(e))? {
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
                    .and_then(|v| v.get(expiry).and_then(serde_json::Value::as_u64));
                if ends.is_none_or(|t| t <= now) {
                    tokio::fs::remove_file(&path)
                        .await
                        .map_err(|e| self.io(e))?;
                    n += 1;
                }
            }
        }
        Ok(n)
    }
}
