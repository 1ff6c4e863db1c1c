//! Held items in PostgreSQL: one row each, message and metadata together; claims as
//! conditional updates, so exactly one of several concurrent claimants changes the row.

use std::time::Duration;

use super::{PgStore, db, int, uint};
use crate::spool::SpooledBody;
use crate::store::{Claim, Held, StoreError};

impl PgStore {
    pub async fn usage(&self) -> Result<(u64, usize), StoreError> {
        self.bounded(async {
            let row = self
                .client()
                .await?
                .query_one(
                    "SELECT coalesce(sum(size), 0)::bigint, count(*) FROM sluis_quarantine \
                     WHERE NOT settled",
                    &[],
                )
                .await
                .map_err(db)?;
            let used: i64 = row.get(0);
            let items: i64 = row.get(1);
            Ok((uint(used), usize::try_from(items).unwrap_or_default()))
        })
        .await
    }

    pub async fn put(
        &self,
        id: &str,
        created_unix: u64,
        meta: &serde_json::Value,
        header: &[u8],
        body: &mut SpooledBody,
    ) -> Result<(), StoreError> {
        let io = |e: std::io::Error| StoreError::Io {
            dir: "spool".into(),
            source: e,
        };
        let mut message = Vec::with_capacity(header.len() + body.len());
        message.extend_from_slice(header);
        body.rewind().await.map_err(io)?;
        while let Some(chunk) = body.next_chunk().await.map_err(io)? {
            message.extend_from_slice(&chunk);
        }
        let size = message.len() as u64;
        let (used, _) = self.usage().await?;
        if used + size > self.max_bytes {
            return Err(StoreError::Full {
                used,
                max: self.max_bytes,
            });
        }
        self.bounded(async {
            self.client()
                .await?
                .execute(
                    "INSERT INTO sluis_quarantine (id, created_unix, size, meta, message) \
                     VALUES ($1, $2, $3, $4, $5)",
                    &[&id, &int(created_unix), &int(size), meta, &message],
                )
                .await
                .map_err(db)?;
            Ok(())
        })
        .await
    }

    /// Stores an item moved from another store (`sluis store migrate --from-files`), unless
    /// one with its id is there already; whether it was inserted. Moving again after a crash
    /// therefore neither loses nor duplicates.
    pub async fn import(
        &self,
        id: &str,
        created_unix: u64,
        meta: &serde_json::Value,
        message: &[u8],
    ) -> Result<bool, StoreError> {
        crate::store::check_id(id)?;
        let size = int(message.len() as u64);
        self.bounded(async {
            let n = self
                .client()
                .await?
                .execute(
                    "INSERT INTO sluis_quarantine (id, created_unix, size, meta, message) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
                    &[&id, &int(created_unix), &size, meta, &message],
                )
                .await
                .map_err(db)?;
            Ok(n == 1)
        })
        .await
    }

    /// The row of `id` as an item, or why there is none.
    fn held(id: &str, row: &tokio_postgres::Row) -> Result<Held, StoreError> {
        let claim = claim_of(row);
        if row.get::<_, bool>("settled") {
            return Err(StoreError::Settled {
                id: id.to_string(),
                claim: claim.unwrap_or_else(|| Claim::new("?", "settled")),
            });
        }
        Ok(Held {
            id: id.to_string(),
            created_unix: uint(row.get("created_unix")),
            meta: row.get("meta"),
            claim,
        })
    }

    pub async fn get(&self, id: &str) -> Result<Held, StoreError> {
        self.bounded(async {
            let row = self
                .client()
                .await?
                .query_opt(
                    "SELECT created_unix, meta, claim_by, claim_action, claim_at, claim_token, \
                     settled FROM sluis_quarantine WHERE id = $1",
                    &[&id],
                )
                .await
                .map_err(db)?
                .ok_or_else(|| StoreError::NotFound(id.to_string()))?;
            PgStore::held(id, &row)
        })
        .await
    }

    pub async fn list(&self) -> Result<Vec<Held>, StoreError> {
        self.bounded(async {
            let rows = self
                .client()
                .await?
                .query(
                    "SELECT id, created_unix, meta, claim_by, claim_action, claim_at, \
                     claim_token, settled FROM sluis_quarantine WHERE NOT settled \
                     ORDER BY created_unix, id",
                    &[],
                )
                .await
                .map_err(db)?;
            rows.iter()
                .map(|row| PgStore::held(row.get("id"), row))
                .collect()
        })
        .await
    }

    pub async fn message(&self, id: &str) -> Result<Vec<u8>, StoreError> {
        let row = self
            .bounded(async {
                self.client()
                    .await?
                    .query_opt(
                        "SELECT message, claim_by, claim_action, claim_at, claim_token, settled \
                         FROM sluis_quarantine WHERE id = $1",
                        &[&id],
                    )
                    .await
                    .map_err(db)?
                    .ok_or_else(|| StoreError::NotFound(id.to_string()))
            })
            .await?;
        if row.get::<_, bool>("settled") {
            return Err(StoreError::Settled {
                id: id.to_string(),
                claim: claim_of(&row).unwrap_or_else(|| Claim::new("?", "settled")),
            });
        }
        row.get::<_, Option<Vec<u8>>>("message")
            .ok_or_else(|| StoreError::NotFound(id.to_string()))
    }

    pub async fn withdraw(&self, id: &str) -> Result<(), StoreError> {
        let n = self
            .bounded(async {
                self.client()
                    .await?
                    .execute(
                        "DELETE FROM sluis_quarantine WHERE id = $1 AND NOT settled",
                        &[&id],
                    )
                    .await
                    .map_err(db)
            })
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound(id.to_string()));
        }
        Ok(())
    }

    pub async fn claim(
        &self,
        id: &str,
        claim: &Claim,
        lease: Duration,
    ) -> Result<Held, StoreError> {
        let stale_before = int(claim.at.saturating_sub(lease.as_secs()));
        let row = self
            .bounded(async {
                self.client()
                    .await?
                    .query_opt(
                        "UPDATE sluis_quarantine SET claim_by = $2, claim_action = $3, \
                         claim_at = $4, claim_token = $5 \
                         WHERE id = $1 AND NOT settled \
                         AND (claim_token IS NULL OR claim_at < $6) \
                         RETURNING created_unix, meta, claim_by, claim_action, claim_at, \
                         claim_token, settled",
                        &[
                            &id,
                            &claim.by,
                            &claim.action,
                            &int(claim.at),
                            &claim.token,
                            &stale_before,
                        ],
                    )
                    .await
                    .map_err(db)
            })
            .await?;
        match row {
            Some(row) => PgStore::held(id, &row),
            None => Err(self.why_not(id).await),
        }
    }

    /// Why a conditional update on `id` changed nothing: settled, claimed by another, or gone.
    async fn why_not(&self, id: &str) -> StoreError {
        match self.get(id).await {
            Ok(Held {
                claim: Some(claim), ..
            }) => StoreError::Busy {
                id: id.to_string(),
                claim,
            },
            Ok(_) => StoreError::Corrupt {
                id: id.to_string(),
                what: "the claim to settle is gone".into(),
            },
            Err(e) => e,
        }
    }

    pub async fn settle(
        &self,
        id: &str,
        claim: &Claim,
        remaining: Option<&serde_json::Value>,
    ) -> Result<(), StoreError> {
        let n = self
            .bounded(async {
                let client = self.client().await?;
                let now = int(crate::store::now_unix());
                match remaining {
                    Some(meta) => {
                        client
                            .execute(
                                "UPDATE sluis_quarantine SET meta = $3, claim_by = NULL, \
                                 claim_action = NULL, claim_at = NULL, claim_token = NULL \
                                 WHERE id = $1 AND claim_token = $2 AND NOT settled",
                                &[&id, &claim.token, meta],
                            )
                            .await
                    }
                    None => {
                        client
                            .execute(
                                "UPDATE sluis_quarantine SET settled = true, message = NULL, \
                                 meta = '{}'::jsonb, claim_at = $3, claim_token = NULL \
                                 WHERE id = $1 AND claim_token = $2 AND NOT settled",
                                &[&id, &claim.token, &now],
                            )
                            .await
                    }
                }
                .map_err(db)
            })
            .await?;
        if n == 0 {
            return Err(self.why_not(id).await);
        }
        Ok(())
    }

    pub async fn release_claim(&self, id: &str, claim: &Claim) -> Result<(), StoreError> {
        let n = self
            .bounded(async {
                self.client()
                    .await?
                    .execute(
                        "UPDATE sluis_quarantine SET claim_by = NULL, claim_action = NULL, \
                         claim_at = NULL, claim_token = NULL \
                         WHERE id = $1 AND claim_token = $2 AND NOT settled",
                        &[&id, &claim.token],
                    )
                    .await
                    .map_err(db)
            })
            .await?;
        if n == 0 {
            return Err(self.why_not(id).await);
        }
        Ok(())
    }

    pub async fn forget_settled(&self, before: u64) -> Result<usize, StoreError> {
        self.bounded(async {
            let n = self
                .client()
                .await?
                .execute(
                    "DELETE FROM sluis_quarantine WHERE settled AND claim_at < $1",
                    &[&int(before)],
                )
                .await
                .map_err(db)?;
            Ok(usize::try_from(n).unwrap_or_default())
        })
        .await
    }
}

fn claim_of(row: &tokio_postgres::Row) -> Option<Claim> {
    let by: Option<String> = row.get("claim_by");
    Some(Claim {
        by: by?,
        action: row
            .get::<_, Option<String>>("claim_action")
            .unwrap_or_default(),
        at: uint(row.get::<_, Option<i64>>("claim_at").unwrap_or_default()),
        token: row
            .get::<_, Option<String>>("claim_token")
            .unwrap_or_default(),
    })
}
