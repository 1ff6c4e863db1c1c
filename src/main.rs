//! The `sluis` command: wiring only; the work lives in the library.

use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use ipnet::IpNet;

use sluis::config::{self, LogFormat, Overrides};

#[derive(Parser)]
#[command(
    name = "sluis",
    version,
    about = "Outbound mail gateway enforcing NTA 7516"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the SMTP gateway.
    Serve(Settings),
    /// Configuration commands.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Print a credentials-file line for USER; the password is read from standard input.
    Passwd { user: String },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate the configuration and print the effective settings.
    Check(Settings),
}

#[derive(Args)]
struct Settings {
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
    fn overrides(&self) -> Overrides {
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
    match cfg.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn serve(settings: Settings) -> anyhow::Result<()> {
    let overrides = settings.overrides();
    let cfg = config::load(settings.config.as_deref(), &overrides)?;
    init_logging(&cfg.log);
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let server = sluis::smtp::server::Server::new(settings.config, overrides, cfg)?;
        server.run().await
    })?;
    // Sessions cut off after the grace period are dropped with the runtime.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(s) => serve(s),
        Command::Config {
            command: ConfigCommand::Check(s),
        } => config::load(s.config.as_deref(), &s.overrides())
            .map(|cfg| {
                let from = s
                    .config
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "the embedded defaults".into());
                eprintln!("configuration OK ({from}); effective settings:");
                print!("{}", config::render(&cfg));
            })
            .map_err(Into::into),
        Command::Passwd { user } => passwd(&user),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluis: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn passwd(user: &str) -> anyhow::Result<()> {
    if user.is_empty() || user.contains(':') || user.contains(char::is_whitespace) {
        anyhow::bail!("user names may not be empty or contain ':' or white space");
    }
    let mut password = String::new();
    std::io::stdin().read_to_string(&mut password)?;
    let password = password.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        anyhow::bail!("empty password on standard input");
    }
    let hash = sluis::smtp::auth::hash_password(password)
        .map_err(|e| anyhow::anyhow!("cannot hash: {e}"))?;
    println!("{user}:{hash}");
    Ok(())
}
