//! `sluis serve` and `sluis config check`: load the configuration (flags over the file over
//! the embedded default), then run the gateway or print the effective settings.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use ipnet::IpNet;

use sluis::config::{self, LogFormat, Overrides};

use super::out;

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration and print the effective settings.
    Check(Settings),
}

#[derive(Args)]
pub struct Settings {
    /// Configuration file (TOML); without it the embedded defaults apply.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// SMTP listen address, overriding server.listen.
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<SocketAddr>,
    /// Upstream MTA of the default lane, overriding its address.
    #[arg(long, value_name = "HOST:PORT")]
    upstream: Option<String>,
    /// Client network allowed to relay (repeatable), replacing server.allow_networks.
    #[arg(long = "allow-net", value_name = "CIDR")]
    allow_net: Vec<IpNet>,
    /// Spool directory, overriding server.spool_dir.
    #[arg(long, value_name = "DIR")]
    spool: Option<PathBuf>,
    /// Admin HTTP listen address (/healthz, /metrics), overriding server.admin_listen.
    #[arg(long, value_name = "ADDR:PORT")]
    admin: Option<SocketAddr>,
}

impl Settings {
    pub fn overrides(&self) -> Overrides {
        Overrides {
            listen: self.listen,
            upstream: self.upstream.clone(),
            allow_net: self.allow_net.clone(),
            spool: self.spool.clone(),
            admin: self.admin,
        }
    }
}

fn init_logging(cfg: &config::LogConfig) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cfg.level));
    // Colour only on a terminal: log files and journald get plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    // The PostgreSQL driver logs every statement with its parameters at debug level: held
    // mail, addresses and findings. Never at any level or RUST_LOG setting.
    let no_statements = tracing_subscriber::filter::filter_fn(|meta| {
        !(meta.target().starts_with("tokio_postgres") && *meta.level() > tracing::Level::INFO)
    });
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    match cfg.format {
        LogFormat::Json => builder.json().finish().with(no_statements).init(),
        LogFormat::Text => builder.finish().with(no_statements).init(),
    }
}

pub fn serve(settings: Settings) -> anyhow::Result<()> {
    let overrides = settings.overrides();
    let cfg = sluis::app::load_config(settings.config.as_deref(), &overrides)?;
    init_logging(&cfg.log);
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let server = sluis::app::serve::Server::new(settings.config, overrides, cfg).await?;
        server.run().await
    })?;
    // Sessions cut off after the grace period are dropped with the runtime.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    Ok(())
}

/// `sluis config check`: validates and prints the effective configuration.
pub fn check(s: Settings) -> anyhow::Result<()> {
    let cfg = sluis::app::load_config(s.config.as_deref(), &s.overrides())?;
    let from = s
        .config
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "the embedded defaults".into());
    eprintln!("configuration OK ({from}); effective settings:");
    out!("{}", config::render(&cfg).trim_end_matches('\n'));
    Ok(())
}
