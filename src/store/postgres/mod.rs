//! The PostgreSQL backend: several instances share one database.
//!
//! A held item is one row, message and metadata together, inserted in one statement: it exists
//! completely once the insert has committed (PostgreSQL fsyncs its WAL at commit), and not at
//! all otherwise. A claim is a conditional update (`... WHERE claim_token IS NULL ...`), so of
//! two instances claiming at once exactly one row update succeeds. Exclusive jobs take a
//! session-level advisory lock, released when the job ends or the connection drops.
//!
//! Every statement runs within `store.timeout`; past it, or when the server is gone, the
//! caller gets [`StoreError::Unavailable`] and defers. The pool drops broken connections and
//! makes new ones, so the store recovers by itself when the server returns.

use std::time::Duration;

mod items;
mod sealed;
mod shared;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};

use super::{Anchor, StoreError};
use crate::config::{StoreConfig, StoreTls};

pub struct PgStore {
    pool: Pool,
    max_bytes: u64,
    timeout: Duration,
    /// Set once the schema is known to be current: at start when the server answers, else at
    /// the first statement after it does.
    migrated: tokio::sync::OnceCell<()>,
}

/// A driver error as one line, without the values of the statement (they could be mail).
pub fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                text.push_str(": ");
                text.push_str(&s.to_string());
                source = s.source();
            }
            text
        }
    }
}

fn db(e: tokio_postgres::Error) -> StoreError {
    StoreError::Unavailable(describe(&e))
}

fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn uint(v: i64) -> u64 {
    u64::try_from(v).unwrap_or_default()
}

impl PgStore {
    /// Connects (the password from `password_file` or SLUIS_STORE_PASSWORD) and migrates. A
    /// schema newer than this binary is an error; a server that does not answer is not: Sluis
    /// starts, defers the mail that needs the store, and migrates once the server is back.
    pub async fn connect(config: &StoreConfig, max_bytes: u64) -> Result<PgStore, StoreError> {
        let store = PgStore::pool(config, max_bytes)?;
        match store.ensure().await {
            Ok(()) => {}
            Err(StoreError::Unavailable(e)) => {
                tracing::error!(error = %e, "the store database does not answer: mail that must be held is deferred until it does");
            }
            Err(e) => return Err(e),
        }
        Ok(store)
    }

    /// Migrates once per process.
    async fn ensure(&self) -> Result<(), StoreError> {
        self.migrated
            .get_or_try_init(|| async {
                let (from, to) = self.migrate().await?;
                if from != to {
                    tracing::info!(from, to, "store schema migrated");
                }
                Ok::<(), StoreError>(())
            })
            .await
            .map(|_| ())
    }

    /// The pool alone, schema untouched (for `sluis store migrate`, which reports what it did).
    pub fn pool(config: &StoreConfig, max_bytes: u64) -> Result<PgStore, StoreError> {
        let bad = |what: &str| StoreError::Config(format!("store.url: {what}"));
        let url = config.url.as_deref().ok_or_else(|| bad("not set"))?;
        let mut pg: tokio_postgres::Config =
            url.parse().map_err(|_| bad("not a PostgreSQL URL"))?;
        if pg.get_password().is_some() {
            return Err(bad("holds a password"));
        }
        if let Some(password) = password(config)? {
            pg.password(password);
        }
        pg.connect_timeout(config.timeout);
        pg.application_name("sluis");
        let timeout_ms = config.timeout.as_millis();
        // The server ends a statement that outlives the timeout, so a lock wait never keeps
        // a connection past the point where the caller has given up.
        pg.options(format!(
            "-c statement_timeout={timeout_ms} -c lock_timeout={timeout_ms}"
        ));
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Verified,
        };
        let manager = match config.tls {
            StoreTls::Off => {
                pg.ssl_mode(tokio_postgres::config::SslMode::Disable);
                Manager::from_config(pg, tokio_postgres::NoTls, manager_config)
            }
            StoreTls::Verify => {
                pg.ssl_mode(tokio_postgres::config::SslMode::Require);
                let roots = match &config.ca_file {
                    Some(f) => crate::wire::tls::load_roots(f)
                        .map_err(|e| StoreError::Config(format!("store.ca_file: {e}")))?,
                    None => rustls::RootCertStore {
                        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
                    },
                };
                let provider = crate::wire::stream::crypto_provider();
                let tls = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .map_err(|e| StoreError::Config(format!("TLS: {e}")))?
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                let tls = tokio_postgres_rustls::MakeRustlsConnect::new(tls);
                Manager::from_config(pg, tls, manager_config)
            }
        };
        let pool = Pool::builder(manager)
            .max_size(config.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(config.timeout))
            .create_timeout(Some(config.timeout))
            .recycle_timeout(Some(config.timeout))
            .build()
            .map_err(|e| StoreError::Config(format!("connection pool: {e}")))?;
        Ok(PgStore {
            pool,
            max_bytes,
            timeout: config.timeout,
            migrated: tokio::sync::OnceCell::new(),
        })
    }

    /// A connection from the pool to a migrated database, or Unavailable within the timeout.
    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.ensure().await?;
        self.raw_client().await
    }

    async fn raw_client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(|e| match e {
            deadpool_postgres::PoolError::Backend(e) => db(e),
            other => StoreError::Unavailable(other.to_string()),
        })
    }

    /// `work` within the timeout.
    async fn bounded<T>(
        &self,
        work: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.timeout, work).await {
            Ok(r) => r,
            Err(_) => Err(StoreError::Unavailable(format!(
                "no answer within {}",
                humantime::format_duration(self.timeout)
            ))),
        }
    }

    /// Brings the schema up to date; (version found, version now).
    pub async fn migrate(&self) -> Result<(i32, i32), StoreError> {
        let mut client = self.raw_client().await?;
        self.bounded(super::migrations::apply(&mut client)).await
    }

    pub async fn put_anchor(&self, anchor: &Anchor) -> Result<(), StoreError> {
        self.bounded(async {
            self.client()
                .await?
                .execute(
                    "INSERT INTO sluis_audit_anchor (instance, seq, hash, at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (instance) DO UPDATE \
                     SET seq = excluded.seq, hash = excluded.hash, at = excluded.at",
                    &[
                        &anchor.instance,
                        &int(anchor.seq),
                        &anchor.hash,
                        &int(anchor.at),
                    ],
                )
                .await
                .map_err(db)?;
            Ok(())
        })
        .await
    }

    pub async fn anchors(&self) -> Result<Vec<Anchor>, StoreError> {
        self.bounded(async {
            let rows = self
                .client()
                .await?
                .query(
                    "SELECT instance, seq, hash, at FROM sluis_audit_anchor ORDER BY instance",
                    &[],
                )
                .await
                .map_err(db)?;
            Ok(rows
                .iter()
                .map(|r| Anchor {
                    instance: r.get(0),
                    seq: uint(r.get(1)),
                    hash: r.get(2),
                    at: uint(r.get(3)),
                })
                .collect())
        })
        .await
    }

    /// The newest audit record of `instance` mirrored so far.
    pub async fn mirrored(&self, instance: &str) -> Result<Option<u64>, StoreError> {
        self.bounded(async {
            let row = self
                .client()
                .await?
                .query_one(
                    "SELECT max(seq) FROM sluis_audit_record WHERE instance = $1",
                    &[&instance],
                )
                .await
                .map_err(db)?;
            Ok(row.get::<_, Option<i64>>(0).map(uint))
        })
        .await
    }

    /// Copies `records` (seq, record) of `instance`; ones already there are left alone.
    pub async fn mirror(
        &self,
        instance: &str,
        records: &[(u64, serde_json::Value)],
    ) -> Result<(), StoreError> {
        let seqs: Vec<i64> = records.iter().map(|(s, _)| int(*s)).collect();
        let values: Vec<&serde_json::Value> = records.iter().map(|(_, r)| r).collect();
        self.bounded(async {
            self.client()
                .await?
                .execute(
                    "INSERT INTO sluis_audit_record (instance, seq, record) \
                     SELECT $1, s, r FROM unnest($2::bigint[], $3::jsonb[]) AS t(s, r) \
                     ON CONFLICT DO NOTHING",
                    &[&instance, &seqs, &values],
                )
                .await
                .map_err(db)?;
            Ok(())
        })
        .await
    }

    pub async fn exclusive<T, F>(&self, name: &str, job: F) -> Result<Option<T>, StoreError>
    where
        F: std::future::Future<Output = T>,
    {
        // The lock belongs to this connection's session: it is held while the job runs and
        // goes when the connection does, so a crashed instance never keeps it.
        let client = self.client().await?;
        let got: bool = self
            .bounded(async {
                client
                    .query_one(
                        "SELECT pg_try_advisory_lock(hashtextextended($1, 0))",
                        &[&name],
                    )
                    .await
                    .map(|r| r.get(0))
                    .map_err(db)
            })
            .await?;
        if !got {
            return Ok(None);
        }
        let out = job.await;
        let unlocked = self
            .bounded(async {
                client
                    .execute(
                        "SELECT pg_advisory_unlock(hashtextextended($1, 0))",
                        &[&name],
                    )
                    .await
                    .map_err(db)
            })
            .await;
        if unlocked.is_err() {
            // Not returned to the pool: dropping the connection ends its session and the lock.
            drop(deadpool_postgres::Object::take(client));
        }
        Ok(Some(out))
    }

    pub async fn check(&self) -> Result<(), StoreError> {
        self.bounded(async {
            self.client()
                .await?
                .simple_query("SELECT 1")
                .await
                .map_err(db)?;
            Ok(())
        })
        .await
    }
}

/// The database password: `password_file`, else SLUIS_STORE_PASSWORD, else none (trust or
/// certificate authentication).
fn password(config: &StoreConfig) -> Result<Option<String>, StoreError> {
    if let Some(f) = &config.password_file {
        let text = std::fs::read_to_string(f)
            .map_err(|e| StoreError::Config(format!("store.password_file {}: {e}", f.display())))?;
        return Ok(Some(text.trim_end_matches(['\r', '\n']).to_string()));
    }
    Ok(std::env::var("SLUIS_STORE_PASSWORD").ok())
}
