//! `sluis audit verify`: check the audit log's hash chain.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use sluis::audit::verify::{Verdict, verify_files};
use sluis::config::Overrides;

use super::out;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain; names the first record that was edited, deleted, moved or cut off.
    /// Without FILEs: the configured log and its rotated predecessors, oldest first, after
    /// putting back records a crash of the machine took from the log and its commit journal
    /// holds (as the server's next start would).
    /// Exit status: 0 intact, 1 damaged, 2 on error.
    ///
    /// With the configured log, the chain is also checked against this instance's anchor in
    /// the store (written every minute and at shutdown), so a log cut short or rewritten
    /// together with its head file is found too.
    Verify {
        files: Vec<PathBuf>,
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Check FILEs against this instance's anchor in the configured store.
        #[arg(long)]
        instance: Option<String>,
    },
}

pub fn audit(cmd: AuditCommand) -> ExitCode {
    let AuditCommand::Verify {
        files,
        config,
        instance,
    } = cmd;
    let configured = files.is_empty();
    let cfg = if configured || instance.is_some() {
        match sluis::app::load_config(config.as_deref(), &Overrides::default()) {
            Ok(cfg) => Some(cfg),
            Err(e) => {
                eprintln!("sluis: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        None
    };
    let files = match &cfg {
        Some(cfg) if configured => sluis::audit::verify::chain_files(&cfg.audit_file()),
        _ => files,
    };
    if let Some(missing) = files.iter().find(|f| !f.exists()) {
        eprintln!("sluis: {}: no such file", missing.display());
        return ExitCode::from(2);
    }
    // After a crash of the machine the log may lack records its commit journal holds: put
    // them back first, as the server's next start would (nothing happens while it runs).
    if let Some(cfg) = cfg.as_ref().filter(|_| configured) {
        let log = cfg.audit_file();
        if sluis::audit::journal::journal_path(&log).exists()
            && let Err(e) = sluis::audit::AuditLog::open(&log, cfg.audit.rotate_bytes)
        {
            eprintln!("sluis: {e}");
            return ExitCode::from(2);
        }
    }
    let mut report = verify_files(&files);
    if let Some(cfg) = &cfg
        && matches!(report.verdict, Verdict::Intact { .. })
    {
        let instance = instance.unwrap_or_else(|| sluis::store::instance_name(&cfg.store));
        match anchored(cfg, &instance) {
            Ok(Some(anchor)) => {
                if let Some(why) = sluis::audit::anchor::check(&files, &anchor) {
                    report.verdict = Verdict::Broken {
                        file: files
                            .last()
                            .map(|f| f.display().to_string())
                            .unwrap_or_default(),
                        line: 0,
                        seq: anchor.seq,
                        why,
                    };
                }
            }
            Ok(None) => report.notes.push(format!(
                "the store has no anchor for instance {instance:?} yet (written every minute \
                 while Sluis runs)"
            )),
            Err(e) => {
                eprintln!("sluis: cannot read the audit anchors from the store: {e}");
                return ExitCode::from(2);
            }
        }
    }
    for n in &report.notes {
        eprintln!("note: {n}");
    }
    match report.verdict {
        Verdict::Intact { records } => {
            out!("intact: {records} record(s) in {} file(s)", files.len());
            ExitCode::SUCCESS
        }
        Verdict::Broken {
            file,
            line,
            seq,
            why,
        } => {
            out!("DAMAGED: {file}:{line}: record {seq}: {why}");
            ExitCode::from(1)
        }
    }
}

/// `instance`'s anchor in the configured store.
fn anchored(
    cfg: &sluis::config::Config,
    instance: &str,
) -> anyhow::Result<Option<sluis::store::Anchor>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let anchors = match cfg.store.kind {
        sluis::config::StoreKind::Files => sluis::store::files::anchors_in(&cfg.quarantine_dir())?,
        sluis::config::StoreKind::Postgres => {
            rt.block_on(async { sluis::store::Store::open(cfg).await?.anchors().await })?
        }
    };
    Ok(anchors.into_iter().find(|a| a.instance == instance))
}
