//! `sluis quarantine ...`: the compliance reviewer's commands on held mail.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Subcommand;

use sluis::config::{self, Overrides};
use sluis::quarantine::review::Reviewer;

use super::{Format, out};

#[derive(Subcommand)]
pub enum QuarantineCommand {
    /// List held messages, oldest first.
    List {
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Show one item: headers, masked findings, posture evidence, the rule and the release lane.
    Show {
        id: String,
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
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

async fn reviewer(config: Option<&Path>) -> anyhow::Result<(Reviewer, config::Config)> {
    let cfg = sluis::app::load_config(config, &Overrides::default())?;
    same_user_as_the_spool(&cfg.server.spool_dir)?;
    Ok((Reviewer::from_config(&cfg).await?, cfg))
}

/// The quarantine and the audit log belong to the user Sluis runs as. A command run as another
/// user (root, typically) would create files the server can no longer write, and the server
/// defers mail it cannot record: refuse, and say how to run it instead.
pub(super) fn same_user_as_the_spool(spool: &Path) -> anyhow::Result<()> {
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
            let (r, _) = rt.block_on(reviewer(config.as_deref()))?;
            let items = rt.block_on(r.store.list())?;
            match format {
                Format::Json => {
                    for i in &items {
                        out!("{}", serde_json::to_string(i)?);
                    }
                }
                Format::Text => {
                    if items.is_empty() {
                        out!("quarantine is empty");
                    }
                    for i in &items {
                        let rules: Vec<&str> =
                            i.recipients.iter().map(|r| r.rule.as_str()).collect();
                        if i.recipients.is_empty() {
                            out!(
                                "{}  {}  from {}  released-pending",
                                i.id,
                                i.created,
                                i.sender
                            );
                        } else {
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
                        for p in &i.released {
                            out!(
                                "    released-pending: {} accepted by lane {} for delivery with level {} at {} (by {}){}",
                                p.address,
                                p.lane,
                                p.level,
                                p.accepted,
                                p.reviewer,
                                p.last_report
                                    .as_deref()
                                    .map(|r| format!("; last report: {r}"))
                                    .unwrap_or_default()
                            );
                        }
                        if let Some(c) = &i.claim {
                            out!(
                                "    being handled: {} by {} (since unix {})",
                                c.action,
                                c.by,
                                c.at
                            );
                        }
                    }
                }
            }
        }
        QuarantineCommand::Show { id, config, format } => {
            let (r, _) = rt.block_on(reviewer(config.as_deref()))?;
            let v = rt.block_on(r.show(&id))?;
            match format {
                Format::Json => out!("{}", serde_json::to_string(&v)?),
                Format::Text => show_text(&v),
            }
        }
        QuarantineCommand::Release {
            id,
            reviewer: who,
            reason,
            config,
        } => {
            let (r, _) = rt.block_on(reviewer(config.as_deref()))?;
            let done = rt.block_on(r.release(&id, &who, &reason))?;
            for d in &done.delivered {
                if d.ok {
                    out!(
                        "accepted by lane {} for delivery with level {}: {} ({}){}",
                        d.lane,
                        d.level,
                        d.recipients.join(", "),
                        d.reply,
                        if d.report_awaited {
                            "; released-pending until the lane's delivery report"
                        } else {
                            "; no delivery report will come (review.report_listen is off)"
                        }
                    );
                } else {
                    out!(
                        "NOT accepted by lane {}: {} ({})",
                        d.lane,
                        d.recipients.join(", "),
                        d.reply
                    );
                }
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
            let (r, _) = rt.block_on(reviewer(config.as_deref()))?;
            rt.block_on(r.reject(&id, &who, &reason))?;
            out!("{id} rejected and removed");
        }
        QuarantineCommand::Purge {
            older_than,
            reviewer: who,
            config,
        } => {
            let (r, cfg) = rt.block_on(reviewer(config.as_deref()))?;
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
