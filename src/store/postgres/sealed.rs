//! Portal items in PostgreSQL: one row each (`sluis_portal`), the sealed message and the
//! metadata (wrapped keys, expiry) inserted in one statement. Shredding deletes the row.

use super::{PgStore, db, int, uint};
use crate::store::{SealedItem, StoreError};

impl PgStore {
    pub async fn put_sealed(&self, item: &SealedItem, sealed: &[u8]) -> Result<(), StoreError> {
        let (held, _) = self.usage().await?;
        let used = held + self.portal_usage().await?;
        if used + sealed.len() as u64 > self.max_bytes {
            return Err(StoreError::Full {
                used,
                max: self.max_bytes,
            });
        }
        self.bounded(async {
            self.client()
                .await?
                .execute(
                    "INSERT INTO sluis_portal (id, created_unix, expires, meta, sealed) \
                     VALUES ($1, $2, $3, $4, $5)",
                    &[
                        &item.id,
                        &int(item.created_unix),
                        &int(item.expires),
                        &item.meta,
                        &sealed,
                    ],
                )
                .await
                .map_err(db)?;
            Ok(())
        })
        .await
    }

    async fn portal_usage(&self) -> Result<u64, StoreError> {
        self.bounded(async {
            let row = self
                .client()
                .await?
                .query_one(
                    "SELECT coalesce(sum(length(sealed)), 0)::bigint FROM sluis_portal",
                    &[],
                )
                .await
                .map_err(db)?;
            Ok(uint(row.get(0)))
        })
        .await
    }

    pub async fn sealed_item(&self, id: &str) -> Result<Option<SealedItem>, StoreError> {
        self.bounded(async {
            let row = self
                .client()
                .await?
                .query_opt(
                    "SELECT created_unix, expires, meta FROM sluis_portal WHERE id = $1",
                    &[&id],
                )
                .await
                .map_err(db)?;
            Ok(row.map(|r| SealedItem {
                id: id.to_string(),
                created_unix: uint(r.get(0)),
                expires: uint(r.get(1)),
                meta: r.get(2),
            }))
        })
        .await
    }

    pub async fn sealed_message(&self, id: &str) -> Result<Vec<u8>, StoreError> {
        self.bounded(async {
            let row = self
                .client()
                .await?
                .query_opt("SELECT sealed FROM sluis_portal WHERE id = $1", &[&id])
                .await
                .map_err(db)?;
            row.map(|r| r.get(0))
                .ok_or_else(|| StoreError::NotFound(id.to_string()))
        })
        .await
    }

    pub async fn update_sealed(&self, item: &SealedItem) -> Result<(), StoreError> {
        self.bounded(async {
            let n = self
                .client()
                .await?
                .execute(
                    "UPDATE sluis_portal SET expires = $2, meta = $3 WHERE id = $1",
                    &[&item.id, &int(item.expires), &item.meta],
                )
                .await
                .map_err(db)?;
            if n == 0 {
                return Err(StoreError::NotFound(item.id.clone()));
            }
            Ok(())
        })
        .await
    }

    pub async fn list_sealed(&self) -> Result<Vec<SealedItem>, StoreError> {
        self.bounded(async {
            let rows = self
                .client()
                .await?
                .query(
                    "SELECT id, created_unix, expires, meta FROM sluis_portal \
                     ORDER BY created_unix, id",
                    &[],
                )
                .await
                .map_err(db)?;
            Ok(rows
                .iter()
                .map(|r| SealedItem {
                    id: r.get(0),
                    created_unix: uint(r.get(1)),
                    expires: uint(r.get(2)),
                    meta: r.get(3),
                })
                .collect())
        })
        .await
    }

    pub async fn shred(&self, id: &str) -> Result<bool, StoreError> {
        self.bounded(async {
            let n = self
                .client()
                .await?
                .execute("DELETE FROM sluis_portal WHERE id = $1", &[&id])
                .await
                .map_err(db)?;
            Ok(n > 0)
        })
        .await
    }
}
