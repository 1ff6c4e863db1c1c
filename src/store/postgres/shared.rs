//! Sessions and rate counters in PostgreSQL: rows every instance sees; a hit is one upsert,
//! so concurrent hits from several instances count exactly.

use super::{PgStore, db, int, uint};
use crate::store::StoreError;

impl PgStore {
    pub async fn put_session(
        &self,
        key: &str,
        value: &serde_json::Value,
        expires: u64,
    ) -> Result<(), StoreError> {
        self.bounded(async {
            self.client()
                .await?
                .execute(
                    "INSERT INTO sluis_session (key, value, expires) VALUES ($1, $2, $3) \
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value, \
                     expires = excluded.expires",
                    &[&key, value, &int(expires)],
                )
                .await
                .map_err(db)?;
            Ok(())
        })
        .await
    }

    pub async fn session(
        &self,
        key: &str,
        now: u64,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        self.bounded(async {
            let row = self
                .client()
                .await?
                .query_opt(
                    "SELECT value FROM sluis_session WHERE key = $1 AND expires > $2",
                    &[&key, &int(now)],
                )
                .await
                .map_err(db)?;
            Ok(row.map(|r| r.get(0)))
        })
        .await
    }

    pub async fn drop_session(&self, key: &str) -> Result<(), StoreError> {
        self.bounded(async {
            self.client()
                .await?
                .execute("DELETE FROM sluis_session WHERE key = $1", &[&key])
                .await
                .map_err(db)?;
            Ok(())
        })
        .await
    }

    pub async fn hit(&self, key: &str, start: u64, end: u64) -> Result<u64, StoreError> {
        self.bounded(async {
            let row = self
                .client()
                .await?
                .query_one(
                    "INSERT INTO sluis_counter (key, window_start, window_end, hits) \
                     VALUES ($1, $2, $3, 1) ON CONFLICT (key, window_start) \
                     DO UPDATE SET hits = sluis_counter.hits + 1 RETURNING hits",
                    &[&key, &int(start), &int(end)],
                )
                .await
                .map_err(db)?;
            Ok(uint(row.get(0)))
        })
        .await
    }

    pub async fn forget_expired(&self, now: u64) -> Result<usize, StoreError> {
        self.bounded(async {
            let client = self.client().await?;
            let sessions = client
                .execute(
                    "DELETE FROM sluis_session WHERE expires <= $1",
                    &[&int(now)],
                )
                .await
                .map_err(db)?;
            let counters = client
                .execute(
                    "DELETE FROM sluis_counter WHERE window_end <= $1",
                    &[&int(now)],
                )
                .await
                .map_err(db)?;
            Ok(usize::try_from(sessions + counters).unwrap_or_default())
        })
        .await
    }
}
