//! The PostgreSQL schema, as numbered migrations shipped in the binary.
//!
//! `apply` runs at every start (and for `sluis store migrate`) under a transaction-scoped
//! advisory lock, so instances starting together migrate once. A database whose schema is
//! newer than this binary knows is refused: an older Sluis must not write rows a newer one
//! reads differently (a rolled-back deployment says so instead of corrupting state).
//!
//! A migration is never edited once released; a change is a new one at the end.

use super::StoreError;

/// (version, SQL), in order.
pub const MIGRATIONS: &[(i32, &str)] = &[
    (
        1,
    "CREATE TABLE sluis_quarantine (
        id text PRIMARY KEY,
        created_unix bigint NOT NULL,
        size bigint NOT NULL,
        meta jsonb NOT NULL,
        -- NULL once settled: the tombstone keeps who settled it, not the mail.
        message bytea,
        claim_by text,
        claim_action text,
        claim_at bigint,
        claim_token text,
        settled boolean NOT NULL DEFAULT false
    );
    CREATE INDEX sluis_quarantine_held ON sluis_quarantine (created_unix, id) WHERE NOT settled;
    CREATE TABLE sluis_audit_anchor (
        instance text PRIMARY KEY,
        seq bigint NOT NULL,
        hash text NOT NULL,
        at bigint NOT NULL
    );",
    ),
    (
        2,
        // A copy of each instance's audit records for searching (the files stay the source
        // of truth); jsonb_path_ops serves containment queries (record @> '{...}').
        "CREATE TABLE sluis_audit_record (
        instance text NOT NULL,
        seq bigint NOT NULL,
        record jsonb NOT NULL,
        PRIMARY KEY (instance, seq)
    );
    CREATE INDEX sluis_audit_record_search ON sluis_audit_record USING gin (record jsonb_path_ops);",
    ),
    (
        3,
        // Sessions of the web sides (keyed by a hash of their secret) and rate counters
        // (hits per key per fixed window), shared by all instances.
        "CREATE TABLE sluis_session (
        key text PRIMARY KEY,
        value jsonb NOT NULL,
        expires bigint NOT NULL
    );
    CREATE INDEX sluis_session_expires ON sluis_session (expires);
    CREATE TABLE sluis_counter (
        key text NOT NULL,
        window_start bigint NOT NULL,
        window_end bigint NOT NULL,
        hits bigint NOT NULL,
        PRIMARY KEY (key, window_start)
    );
    CREATE INDEX sluis_counter_end ON sluis_counter (window_end);",
    ),
    (
        4,
        // The pickup portal's items: the sealed message and its metadata (wrapped keys,
        // expiry); deleting the row shreds the message.
        "CREATE TABLE sluis_portal (
        id text PRIMARY KEY,
        created_unix bigint NOT NULL,
        expires bigint NOT NULL,
        meta jsonb NOT NULL,
        sealed bytea NOT NULL
    );
    CREATE INDEX sluis_portal_expires ON sluis_portal (expires);",
    ),
];

/// The newest schema version this binary knows.
pub fn latest() -> i32 {
    MIGRATIONS.last().map_or(0, |(v, _)| *v)
}

/// An arbitrary constant: the advisory lock that serialises migrations across instances.
const MIGRATION_LOCK: i64 = 0x5_1015_0001;

/// Brings the schema to [`latest`]; returns (version found, version now).
pub async fn apply(client: &mut tokio_postgres::Client) -> Result<(i32, i32), StoreError> {
    let db = |e: tokio_postgres::Error| StoreError::Unavailable(super::postgres::describe(&e));
    let tx = client.transaction().await.map_err(db)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(db)?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS sluis_schema (version integer NOT NULL)")
        .await
        .map_err(db)?;
    let found: i32 = tx
        .query_one("SELECT coalesce(max(version), 0) FROM sluis_schema", &[])
        .await
        .map_err(db)?
        .get(0);
    if found > latest() {
        return Err(StoreError::Schema(format!(
            "the database's schema is version {found}, newer than this Sluis knows ({}): \
             run the Sluis release that migrated it, or a later one",
            latest()
        )));
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > found) {
        tx.batch_execute(sql).await.map_err(|e| {
            StoreError::Schema(format!(
                "migration {version} failed: {}",
                super::postgres::describe(&e)
            ))
        })?;
        tx.execute("INSERT INTO sluis_schema (version) VALUES ($1)", &[version])
            .await
            .map_err(db)?;
    }
    tx.commit().await.map_err(db)?;
    Ok((found, latest()))
}
