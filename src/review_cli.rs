//! `sluis quarantine ...` and `sluis audit verify`: the compliance reviewer's commands.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;

use sluis::audit::verify::{Verdict, verify_files};
use sluis::config::{self, Overrides};
use sluis::quarantine::review::Reviewer;

use crate::ScanFormat;

#[derive(Subcommand)]
pub enum QuarantineCommand {
    /// List held messages, oldest first.
    List {
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = ScanFormat::Text)]
        format: ScanFormat,
    },
    /// Show one item: headers, masked findings, posture evidence, the rule and the release lane.
    Show {
        id: String,
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = ScanFormat::Text)]
        format: ScanFormat,
    },
    /// Deliver a held message through the lane its rule requires (never a weaker one).
    Release {
        id: String,
        #[arg(long)]
        reviewer: String,
        #[arg(long)]
        reason: String,
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Discard a held message: it is never delivered.
    Reject {
        id: String,
        #[arg(long)]
        reviewer: String,
        #[arg(long)]
        reason: String,
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Remove items older than DUR (default: quarantine.retention).
    Purge {
        #[arg(long, value_name = "DUR", value_parser = humantime::parse_duration)]
        older_than: Option<Duration>,
        /// Recorded in the audit log as who purged.
        #[arg(long, default_value = "retention")]
        reviewer: String,
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

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

fn reviewer(config: Option<&Path>) -> anyhow::Result<(Reviewer, config::Config)> {
    let cfg = config::load(config, &Overrides::default())?;
    same_user_as_the_spool(&cfg.server.spool_dir)?;
    Ok((Reviewer::from_config(&cfg)?, cfg))
}

/// The quarantine and the audit log belong to the user Sluis runs as. A command run as another
/// user (root, typically) would create files the server can no longer write, and the server
/// defers mail it cannot record: refuse, and say how to run it instead.
fn same_user_as_the_spool(spool: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let owner = match std::fs::metadata(spool) {
        Ok(m) => m.uid(),
        Err(e) => anyhow::bail!(
            "{}: {e}; the spool directory (server.spool_dir) is made by `sluis serve`: start \
             it first, or point --config at its configuration",
            spool.display()
        ),
    };
    // /proc/self belongs to this process's user.
    let me = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(owner);
    if me != owner {
        anyhow::bail!(
            "{} belongs to uid {owner}, this command runs as uid {me}: run it as the user \
             Sluis runs as (e.g. `sudo -u sluis sluis quarantine ...`), so that the quarantine \
             and the audit log stay writable for the server",
            spool.display()
        );
    }
    Ok(())
}

pub fn quarantine(cmd: QuarantineCommand) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match cmd {
        QuarantineCommand::List { config, format } => {
            let (r, _) = reviewer(config.as_deref())?;
            let items = r.store.list()?;
            match format {
                ScanFormat::Json => {
                    for i in &items {
                        out!("{}", serde_json::to_string(i)?);
                    }
                }
                ScanFormat::Text => {
                    if items.is_empty() {
                        out!("quarantine is empty");
                    }
                    for i in &items {
                        let rules: Vec<&str> =
                            i.recipients.iter().map(|r| r.rule.as_str()).collect();
                        out!(
                            "{}  {}  from {}  to {}  rule {}  score {}",
                            i.id,
                            i.created,
                            i.sender,
                            i.recipients
                                .iter()
                                .map(|r| r.address.as_str())
                                .collect::<Vec<_>>()
                                .join(","),
                            rules.join(","),
                            i.score
                        );
                    }
                }
            }
        }
        QuarantineCommand::Show { id, config, format } => {
            let (r, _) = reviewer(config.as_deref())?;
            let v = r.show(&id)?;
            match format {
                ScanFormat::Json => out!("{}", serde_json::to_string(&v)?),
                ScanFormat::Text => show_text(&v),
            }
        }
        QuarantineCommand::Release {
            id,
            reviewer: who,
            reason,
            config,
        } => {
            let (r, _) = reviewer(config.as_deref())?;
            let done = rt.block_on(r.release(&id, &who, &reason))?;
            for d in &done.delivered {
                out!(
                    "{} via lane {}: {} ({})",
                    if d.ok { "delivered" } else { "NOT delivered" },
                    d.lane,
                    d.recipients.join(", "),
                    d.reply
                );
            }
            if !done.still_held.is_empty() {
                anyhow::bail!(
                    "still held for {}: the upstream did not accept; try again later",
                    done.still_held.join(", ")
                );
            }
        }
        QuarantineCommand::Reject {
            id,
            reviewer: who,
            reason,
            config,
        } => {
            let (r, _) = reviewer(config.as_deref())?;
            rt.block_on(r.reject(&id, &who, &reason))?;
            out!("{id} rejected and removed");
        }
        QuarantineCommand::Purge {
            older_than,
            reviewer: who,
            config,
        } => {
            let (r, cfg) = reviewer(config.as_deref())?;
            let age = older_than.unwrap_or(cfg.quarantine.retention);
            let ids = rt.block_on(r.purge(age, &who))?;
            out!(
                "purged {} item(s) older than {}",
                ids.len(),
                humantime::format_duration(age)
            );
        }
    }
    Ok(())
}

/// A JSON array's elements (none for anything else).
fn items(v: &serde_json::Value) -> impl Iterator<Item = &serde_json::Value> {
    v.as_array().into_iter().flatten()
}

/// A JSON string's text ("" for anything else).
fn text(v: &serde_json::Value) -> &str {
    v.as_str().unwrap_or("")
}

fn show_text(v: &serde_json::Value) {
    let s = |k: &str| v[k].as_str().unwrap_or("-").to_string();
    out!("id          {}", s("id"));
    out!("transaction {}", s("transaction"));
    out!("created     {}", s("created"));
    out!("client      {}", s("client"));
    out!("sender      {}", s("sender"));
    out!("sensitive   {} (score {})", v["sensitive"], v["score"]);
    for f in items(&v["findings"]) {
        out!("finding     {}", text(f));
    }
    for r in items(&v["recipients"]) {
        out!(
            "recipient   {}  rule {}  require {}",
            text(&r["address"]),
            text(&r["rule"]),
            r["require"].as_str().unwrap_or("-")
        );
        for why in items(&r["reasons"]) {
            out!("  reason    {}", text(why));
        }
        if let Some(p) = r.get("posture").filter(|p| !p.is_null()) {
            out!("  posture   {}", p["posture"].as_str().unwrap_or("-"));
            for c in items(&p["checks"]) {
                out!(
                    "    {:<26} {:<4} {}",
                    text(&c["check"]),
                    text(&c["result"]),
                    text(&c["evidence"])
                );
            }
        }
    }
    for l in items(&v["release_lanes"]) {
        out!(
            "release     {} -> lane {}",
            text(&l["recipient"]),
            l["lane"]
                .as_str()
                .unwrap_or("(none enforces the requirement)")
        );
    }
    out!("headers:");
    for line in text(&v["headers"]).lines() {
        out!("  {line}");
    }
}

pub fn audit(cmd: AuditCommand) -> ExitCode {
    let AuditCommand::Verify { files, config } = cmd;
    let files = if files.is_empty() {
        match config::load(config.as_deref(), &Overrides::default()) {
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
