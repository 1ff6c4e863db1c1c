//! `sluis audit verify`: check the audit log's hash chain.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;

use sluis::audit::verify::{Verdict, verify_files};
use sluis::config::Overrides;

use super::out;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain; names the first record that was edited, deleted, moved or cut off.
    /// Without FILEs: the configured log and its rotated predecessors, oldest first.
    /// Exit status: 0 intact, 1 damaged, 2 on error.
    Verify {
        files: Vec<PathBuf>,
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

pub fn audit(cmd: AuditCommand) -> ExitCode {
    let AuditCommand::Verify { files, config } = cmd;
    let files = if files.is_empty() {
        match sluis::app::load_config(config.as_deref(), &Overrides::default()) {
            Ok(cfg) => chain_files(&cfg.audit_file()),
            Err(e) => {
                eprintln!("sluis: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        files
    };
    if let Some(missing) = files.iter().find(|f| !f.exists()) {
        eprintln!("sluis: {}: no such file", missing.display());
        return ExitCode::from(2);
    }
    let report = verify_files(&files);
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

/// The log and its rotated predecessors (`<stem>-<time>-<seq>.jsonl`), oldest first.
fn chain_files(current: &Path) -> Vec<PathBuf> {
    let stem = current
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dir = current
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut rotated: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            name.starts_with(&format!("{stem}-")) && name.ends_with(".jsonl")
        })
        .collect();
    rotated.sort();
    rotated.push(current.to_path_buf());
    rotated
}
