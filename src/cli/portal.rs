//! `sluis portal ...`: the administrator's commands on pickup-portal items. Metadata only:
//! nothing here can open a message (that takes a recipient's link).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;

use sluis::config::Overrides;
use sluis::portal::item::{Auth, Meta};
use sluis::portal::service::{EventDetail, Portal};

use super::{Format, out};

#[derive(Subcommand)]
pub enum PortalCommand {
    /// List the items in the portal, oldest first: sender, recipients, state, expiry.
    List {
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Show one item's metadata (never its content).
    Show {
        id: String,
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Withdraw an item: its keys and the message are deleted (crypto-shredding); every link
    /// stops working.
    Revoke {
        id: String,
        /// Recorded in the audit log as who revoked it.
        #[arg(long)]
        by: String,
        #[arg(long)]
        reason: String,
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Keep an item readable longer: its expiry becomes now + DUR.
    Extend {
        id: String,
        #[arg(long, value_name = "DUR", value_parser = humantime::parse_duration)]
        by_duration: Duration,
        #[arg(long)]
        by: String,
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

async fn portal(config: Option<&Path>) -> anyhow::Result<Portal> {
    let cfg = sluis::app::load_config(config, &Overrides::default())?;
    super::quarantine::same_user_as_the_spool(&cfg.server.spool_dir)?;
    let store = Arc::new(sluis::store::Store::open(&cfg).await?);
    let audit = Arc::new(sluis::audit::AuditLog::open(
        &cfg.audit_file(),
        cfg.audit.rotate_bytes,
    )?);
    let lanes = Arc::new(sluis::relay::Lanes::from_config(&cfg).map_err(anyhow::Error::msg)?);
    Portal::build(&cfg, store, audit, lanes)?
        .context("there is no [portal] section in the configuration")
}

/// Which recipients of an item have read it.
async fn reads(p: &Portal, id: &str, meta: &Meta) -> Vec<bool> {
    let mut out = Vec::new();
    for g in &meta.recipients {
        out.push(p.was_read(id, &g.address).await);
    }
    out
}

fn state(meta: &Meta, read: &[bool]) -> String {
    meta.recipients
        .iter()
        .zip(read)
        .map(|(g, &read)| {
            let s = match (&g.auth, g.notified, read) {
                (Auth::Pending { .. }, _, _) => "waits for the sender",
                (_, _, true) => "read",
                (_, true, false) => "notified",
                (_, false, false) => "not notified",
            };
            format!("{} ({}, {s})", g.address, g.auth.method())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn when(unix: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(unix)).to_string()
}

pub fn run(cmd: PortalCommand) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match cmd {
        PortalCommand::List { config, format } => {
            let p = rt.block_on(portal(config.as_deref()))?;
            let items = rt.block_on(p.store.list_sealed())?;
            if items.is_empty() && format == Format::Text {
                out!("the portal holds no messages");
            }
            for item in items {
                let meta: Meta = serde_json::from_value(item.meta.clone())
                    .with_context(|| format!("portal item {}", item.id))?;
                let read = rt.block_on(reads(&p, &item.id, &meta));
                match format {
                    Format::Json => out!(
                        "{}",
                        serde_json::json!({
                            "id": item.id,
                            "created": meta.created,
                            "expires": when(item.expires),
                            "sender": meta.sender,
                            "size": meta.size,
                            "recipients": meta.recipients.iter().zip(&read).map(|(g, r)| serde_json::json!({
                                "address": g.address,
                                "method": g.auth.method(),
                                "notified": g.notified,
                                "read": r,
                            })).collect::<Vec<_>>(),
                        })
                    ),
                    Format::Text => out!(
                        "{}  {}  from {}  expires {}  {}",
                        item.id,
                        meta.created,
                        meta.sender,
                        when(item.expires),
                        state(&meta, &read)
                    ),
                }
            }
        }
        PortalCommand::Show { id, config, format } => {
            let p = rt.block_on(portal(config.as_deref()))?;
            let (item, meta) = rt
                .block_on(p.item(&id))?
                .with_context(|| format!("no portal item {id} (expired, revoked or never)"))?;
            let read = rt.block_on(reads(&p, &item.id, &meta));
            match format {
                Format::Json => out!("{}", serde_json::to_string(&item.meta)?),
                Format::Text => {
                    out!("id:         {}", item.id);
                    out!("transaction {}", meta.transaction);
                    out!("created:    {}", meta.created);
                    out!("expires:    {}", when(item.expires));
                    out!("sender:     {} ({})", meta.sender, meta.sender_name);
                    out!("size:       {} bytes (sealed)", meta.size);
                    for (g, r) in meta.recipients.iter().zip(&read) {
                        out!(
                            "recipient:  {} by {}, notified {}, read {r}",
                            g.address,
                            g.auth.method(),
                            g.notified,
                        );
                    }
                }
            }
        }
        PortalCommand::Revoke {
            id,
            by,
            reason,
            config,
        } => {
            anyhow::ensure!(
                !by.trim().is_empty() && !reason.trim().is_empty(),
                "a revocation needs --by and --reason (NEN 7513)"
            );
            let p = rt.block_on(portal(config.as_deref()))?;
            if rt.block_on(p.shred(&id, "revoked", &by, &reason))? {
                out!("revoked {id}: its keys and message are deleted, its links open nothing");
            } else {
                anyhow::bail!("no portal item {id} (expired, revoked or never)");
            }
        }
        PortalCommand::Extend {
            id,
            by_duration,
            by,
            config,
        } => {
            let p = rt.block_on(portal(config.as_deref()))?;
            let (mut item, meta) = rt
                .block_on(p.item(&id))?
                .with_context(|| format!("no portal item {id} (expired, revoked or never)"))?;
            item.expires = sluis::store::now_unix() + by_duration.as_secs();
            rt.block_on(p.store.update_sealed(&item))?;
            rt.block_on(p.event(
                &id,
                &meta,
                "extended",
                EventDetail {
                    by: Some(by),
                    detail: Some(format!("until {}", when(item.expires))),
                    ..EventDetail::default()
                },
            ));
            out!("{id} now expires at {}", when(item.expires));
        }
    }
    Ok(())
}
