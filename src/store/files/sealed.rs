//! Portal items in files: `portal/<id>.sealed` (the encrypted message) and `portal/<id>.json`
//! (metadata, wrapped keys, expiry), written as quarantine items are: the sealed message
//! first, the JSON last, each fsync'd and renamed, so an item exists exactly when its JSON
//! does. Shredding removes the JSON (and with it every wrapped key) first.

use std::path::PathBuf;

use super::FileStore;
use crate::store::{SealedItem, StoreError};

#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    created_unix: u64,
    expires: u64,
    meta: serde_json::Value,
}

impl FileStore {
    pub(super) fn portal_dir(&self) -> PathBuf {
        self.dir.join("portal")
    }

    fn sealed_path(&self, id: &str) -> PathBuf {
        self.portal_dir().join(format!("{id}.sealed"))
    }

    fn sealed_json(&self, id: &str) -> PathBuf {
        self.portal_dir().join(format!("{id}.json"))
    }

    /// Bytes the portal's items take.
    fn portal_usage(&self) -> Result<u64, StoreError> {
        let mut used = 0;
        for entry in std::fs::read_dir(self.portal_dir()).map_err(|e| self.io(e))? {
            used += entry
                .map_err(|e| self.io(e))?
                .metadata()
                .map(|m| m.len())
                .unwrap_or(0);
        }
        Ok(used)
    }

    pub async fn put_sealed(&self, item: &SealedItem, sealed: &[u8]) -> Result<(), StoreError> {
        let (held, _) = self.recent_usage().await?;
        let used = held + self.portal_usage()?;
        if used + sealed.len() as u64 + 64 * 1024 > self.max_bytes {
            return Err(StoreError::Full {
                used,
                max: self.max_bytes,
            });
        }
        let id = &item.id;
        // Held shared while writing, like a hold: leftovers are removed only under it held
        // exclusively, so a command starting meanwhile never takes these files for a crash's.
        let _writing = self.locked(".lock", true).await?;
        let tmp = self.portal_dir().join(format!(".tmp-{id}.sealed"));
        let written = self.write_file(sealed, &tmp, &self.sealed_path(id)).await;
        let written = match written {
            Ok(()) => self.write_sealed_meta(item).await,
            Err(e) => Err(e),
        };
        if written.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
            let _ = tokio::fs::remove_file(self.sealed_path(id)).await;
        }
        written
    }

    async fn write_sealed_meta(&self, item: &SealedItem) -> Result<(), StoreError> {
        let data = serde_json::to_vec(&Stored {
            created_unix: item.created_unix,
            expires: item.expires,
            meta: item.meta.clone(),
        })
        .unwrap_or_default();
        let tmp = Self::unique_tmp(&self.portal_dir(), &format!("{}.json", item.id));
        self.write_file(&data, &tmp, &self.sealed_json(&item.id))
            .await
    }

    pub async fn sealed_item(&self, id: &str) -> Result<Option<SealedItem>, StoreError> {
        let data = match std::fs::read(self.sealed_json(id)) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io(e)),
        };
        let s: Stored = serde_json::from_slice(&data).map_err(|e| StoreError::Corrupt {
            id: id.to_string(),
            what: e.to_string(),
        })?;
        Ok(Some(SealedItem {
            id: id.to_string(),
            created_unix: s.created_unix,
            expires: s.expires,
            meta: s.meta,
        }))
    }

    pub async fn sealed_message(&self, id: &str) -> Result<Vec<u8>, StoreError> {
        match tokio::fs::read(self.sealed_path(id)).await {
            Ok(d) => Ok(d),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(StoreError::NotFound(id.to_string()))
            }
            Err(e) => Err(self.io(e)),
        }
    }

    pub async fn update_sealed(&self, item: &SealedItem) -> Result<(), StoreError> {
        if !self.sealed_json(&item.id).exists() {
            return Err(StoreError::NotFound(item.id.clone()));
        }
        let _writing = self.locked(".lock", true).await?;
        self.write_sealed_meta(item).await
    }

    pub async fn list_sealed(&self) -> Result<Vec<SealedItem>, StoreError> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(self.portal_dir()).map_err(|e| self.io(e))? {
            let name = entry.map_err(|e| self.io(e))?.file_name();
            let name = name.to_string_lossy();
            if let Some(id) = name.strip_suffix(".json")
                && !name.starts_with(".tmp-")
                && let Some(item) = self.sealed_item(id).await?
            {
                out.push(item);
            }
        }
        out.sort_by(|a, b| (a.created_unix, &a.id).cmp(&(b.created_unix, &b.id)));
        Ok(out)
    }

    pub async fn shred(&self, id: &str) -> Result<bool, StoreError> {
        let existed = match tokio::fs::remove_file(self.sealed_json(id)).await {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => return Err(self.io(e)),
        };
        match tokio::fs::remove_file(self.sealed_path(id)).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(self.io(e)),
        }
        super::sync_dir(&self.portal_dir())
            .await
            .map_err(|e| self.io(e))?;
        Ok(existed)
    }

    /// Removes sealed messages whose JSON was never written (a crash mid-put).
    pub(super) fn remove_sealed_leftovers(&self) -> std::io::Result<()> {
        for entry in std::fs::read_dir(self.portal_dir())? {
            let path = entry?.path();
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let orphan = name.starts_with(".tmp-")
                || name
                    .strip_suffix(".sealed")
                    .is_some_and(|id| !self.sealed_json(id).exists());
            if orphan {
                std::fs::remove_file(&path)?;
            }
        }
        Ok(())
    }
}
