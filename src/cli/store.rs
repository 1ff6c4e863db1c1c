//! `sluis store migrate`: bring the PostgreSQL schema up to date, and move a file quarantine
//! into PostgreSQL.

use std::path::{Path, PathBuf};

use clap::Subcommand;

use sluis::config::Overrides;
use sluis::store::files::FileStore;
use sluis::store::postgres::PgStore;
use sluis::store::{Store, StoreError};

use super::out;

#[derive(Subcommand)]
pub enum StoreCommand {
    /// Apply the schema migrations this Sluis ships (`serve` does so at start too). With
    /// --from-files, then move every item of a file quarantine (its directory) into the
    /// database: each is inserted, committed, and only then removed from the directory, so an
    /// interrupted move run again neither loses nor duplicates an item.
    Migrate {
        #[arg(long, value_name = "DIR")]
        from_files: Option<PathBuf>,
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

pub fn store(cmd: StoreCommand) -> anyhow::Result<()> {
    let StoreCommand::Migrate { from_files, config } = cmd;
    let cfg = sluis::app::load_config(config.as_deref(), &Overrides::default())?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        if cfg.store.kind != sluis::config::StoreKind::Postgres {
            anyhow::bail!(
                "store.kind is \"files\": there is no database to migrate; set kind = \
                 \"postgres\" and store.url first"
            );
        }
        let pg = PgStore::pool(&cfg.store, cfg.quarantine.max_bytes)?;
        let (from, to) = pg.migrate().await?;
        if from == to {
            out!("schema is at version {to}, the newest this Sluis knows");
        } else {
            out!("schema migrated from version {from} to {to}");
        }
        if let Some(dir) = from_files {
            move_files(&dir, &pg).await?;
        }
        Ok(())
    })
}

/// Moves every item of the file quarantine in `dir` into `pg`.
async fn move_files(dir: &Path, pg: &PgStore) -> anyhow::Result<()> {
    if !dir.join(".lock").exists() {
        anyhow::bail!(
            "{}: not a Sluis file quarantine (no .lock file): give quarantine.dir, by default \
             <server.spool_dir>/quarantine",
            dir.display()
        );
    }
    let files = Store::Files(FileStore::open(dir, u64::MAX)?);
    let (mut moved, mut present, mut skipped) = (0, 0, 0);
    for held in files.list().await? {
        if let Some(claim) = &held.claim {
            eprintln!(
                "sluis: {}: skipped, a {} by {} is in progress; run again when it is done",
                held.id, claim.action, claim.by
            );
            skipped += 1;
            continue;
        }
        let message = files.message(&held.id).await?;
        if pg
            .import(&held.id, held.created_unix, &held.meta, &message)
            .await?
        {
            moved += 1;
        } else {
            // Moved by an earlier, interrupted run: the database has it already.
            present += 1;
        }
        match files.withdraw(&held.id).await {
            Ok(()) | Err(StoreError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    out!(
        "moved {moved} item(s) from {} into PostgreSQL; {present} were there already; {skipped} skipped",
        dir.display()
    );
    if skipped > 0 {
        anyhow::bail!("{skipped} item(s) not moved: run the command again");
    }
    Ok(())
}
