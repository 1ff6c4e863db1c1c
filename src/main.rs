//! The `sluis` command: wiring only; the work lives in the library.

use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use ipnet::IpNet;

use sluis::config::{self, LogFormat, Overrides};

/// Writes a line to standard output. A closed pipe (`sluis scan *.eml | head`) ends the
/// program quietly, as it does for other Unix tools, instead of a panic.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout().lock(), $($arg)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
            eprintln!("sluis: cannot write to standard output: {e}");
            std::process::exit(2);
        }
    }};
}

mod review_cli;

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
    /// Say what Sluis knows about a recipient domain: its class, for managed and partner
    /// domains whether their ownership proof holds, and the evidence about its mail transport.
    CheckDomain(CheckDomainArgs),
    /// Print the manual page (roff), as packaged in sluis(8).
    #[command(hide = true)]
    Manpage,
    /// Review held mail: list, show, release, reject, purge.
    Quarantine {
        #[command(subcommand)]
        command: review_cli::QuarantineCommand,
    },
    /// The audit log.
    Audit {
        #[command(subcommand)]
        command: review_cli::AuditCommand,
    },
    /// Inspect messages (.eml files, `-` for standard input) as the gateway does.
    /// Exit status: 0 when none is sensitive, 1 when any is, 2 on error.
    Scan {
        /// Configuration file: its [inspect] section applies.
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = ScanFormat::Text)]
        format: ScanFormat,
        #[arg(required = true, value_name = "FILE")]
        files: Vec<String>,
    },
}

#[derive(Args)]
struct CheckDomainArgs {
    domain: String,
    #[arg(long, short)]
    config: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = ScanFormat::Text)]
    format: ScanFormat,
    /// Resolver to ask, overriding dns.resolver (e.g. a test or staging setup).
    #[arg(long, value_name = "ADDR:PORT")]
    resolver: Option<SocketAddr>,
    /// DNSKEY trust anchors (zone-file syntax), overriding dns.trust_anchor_file.
    #[arg(long, value_name = "FILE")]
    trust_anchor: Option<PathBuf>,
    /// Extra CA certificates (PEM) trusted for WebPKI, besides Mozilla's roots.
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
    /// Skip the active STARTTLS probe of the MX hosts.
    #[arg(long)]
    no_probe: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ScanFormat {
    Text,
    Json,
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
                out!("{}", config::render(&cfg).trim_end_matches('\n'));
            })
            .map_err(Into::into),
        Command::Passwd { user } => passwd(&user),
        Command::Manpage => manpage(),
        Command::CheckDomain(args) => check_domain(args),
        Command::Quarantine { command } => review_cli::quarantine(command),
        Command::Audit { command } => return review_cli::audit(command),
        Command::Scan {
            config,
            format,
            files,
        } => return scan(config, format, &files),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluis: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn check_domain(args: CheckDomainArgs) -> anyhow::Result<()> {
    let CheckDomainArgs {
        domain,
        config,
        format,
        resolver,
        trust_anchor,
        ca_file,
        no_probe,
    } = args;
    use sluis::posture::{Classifier, OwnershipStatus, RecipientClass};
    let mut cfg = config::load(config.as_deref(), &Overrides::default())?;
    if let Some(r) = resolver {
        cfg.dns.resolver = r;
    }
    if trust_anchor.is_some() {
        cfg.dns.trust_anchor_file = trust_anchor;
    }
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    let class = Classifier::new(&cfg).class_of_domain(&domain);
    let dns = sluis::posture::dns::Dns::new(&cfg.dns)?;
    let listed = cfg
        .domains
        .iter()
        .find(|d| d.name.eq_ignore_ascii_case(&domain));
    let runtime = tokio::runtime::Runtime::new()?;
    let ownership =
        listed.map(|d| runtime.block_on(sluis::posture::ownership::check(&dns, &cfg, d)));
    let status = ownership
        .as_ref()
        .map_or(OwnershipStatus::NotRequired, |o| o.status);
    // A lapsed managed or partner domain is treated as unmanaged.
    let effective = match (class, status) {
        (RecipientClass::Managed | RecipientClass::Partner, OwnershipStatus::Lapsed) => {
            RecipientClass::Unmanaged
        }
        (c, _) => c,
    };
    let mut checks: Vec<serde_json::Value> = ownership
        .iter()
        .map(|o| {
            serde_json::json!({
                "check": "ownership",
                "result": if o.status == OwnershipStatus::Proven { "pass" } else { "fail" },
                "evidence": o.evidence,
                "dnssec": o.dnssec,
            })
        })
        .collect();
    let mut opts = sluis::posture::ladder::ProbeOptions::from_config(&cfg, ca_file.as_deref())
        .map_err(anyhow::Error::msg)?;
    opts.enabled = !no_probe;
    let assessment = runtime.block_on(sluis::posture::ladder::assess(
        &dns,
        &sluis::posture::probe::StartTlsProber,
        &domain,
        &opts,
    ));
    let dns_checks = &assessment.checks;
    checks.extend(
        dns_checks
            .iter()
            .map(|c| serde_json::to_value(c).unwrap_or_default()),
    );
    match format {
        ScanFormat::Json => out!(
            "{}",
            serde_json::json!({
                "domain": domain,
                "class": class,
                "effective_class": effective,
                "ownership": status.name(),
                "posture": assessment.posture,
                "nta7516_record": assessment.nta7516_record,
                "assessed_at": assessment.assessed_at,
                "checks": checks,
            })
        ),
        ScanFormat::Text => {
            out!("{domain}");
            out!("  class      {}", class.name());
            out!("  posture    {}", assessment.posture);
            out!("  ownership  {}", status.name());
            if effective != class {
                out!("  treated as {} (ownership not proven)", effective.name());
            }
            if let Some(o) = &ownership {
                out!("  evidence   {}", o.evidence);
            }
            for c in dns_checks {
                let dnssec = c
                    .dnssec
                    .map(|s| format!(" [dnssec {}]", s.name()))
                    .unwrap_or_default();
                out!(
                    "  {:<22} {:<4} {}{dnssec}",
                    c.check,
                    format!("{:?}", c.result).to_lowercase(),
                    c.evidence
                );
            }
        }
    }
    Ok(())
}

fn manpage() -> anyhow::Result<()> {
    use clap::CommandFactory;
    let cmd = Cli::command()
        .name("sluis")
        .about("outbound mail gateway enforcing NTA 7516")
        .long_about(
            "Sluis sits in front of the organisation's MTA and enforces NTA 7516, the Dutch \
             standard for secure e-mail in healthcare. Configuration: /etc/sluis/sluis.toml \
             (every key documented there; check it with `sluis config check`). Reload with \
             SIGHUP (systemctl reload sluis). Documentation: /usr/share/doc/sluis/README.md.",
        );
    clap_mangen::Man::new(cmd)
        .section("8")
        .render(&mut std::io::stdout())?;
    Ok(())
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
    out!("{user}:{hash}");
    Ok(())
}

fn scan(config: Option<PathBuf>, format: ScanFormat, files: &[String]) -> ExitCode {
    let inspector = match config::load(config.as_deref(), &Overrides::default())
        .map_err(anyhow::Error::from)
        .and_then(|c| Ok(sluis::inspect::Inspector::new(&c.inspect)?))
    {
        Ok(i) => i,
        Err(e) => {
            eprintln!("sluis: {e:#}");
            return ExitCode::from(2);
        }
    };
    let results = inspect_files(&inspector, files);
    let mut any_sensitive = false;
    let mut any_error = false;
    for (file, result) in files.iter().zip(results) {
        let result = match result {
            Ok(r) => r,
            Err(e) => {
                eprintln!("sluis: {file}: {e}");
                any_error = true;
                continue;
            }
        };
        any_sensitive |= result.sensitive;
        match format {
            ScanFormat::Json => {
                let line = ScanLine {
                    file,
                    sensitive: result.sensitive,
                    score: result.score,
                    findings: &result.findings,
                    forward: &result.forward,
                };
                match serde_json::to_string(&line) {
                    Ok(json) => out!("{json}"),
                    Err(e) => {
                        eprintln!("sluis: {file}: {e}");
                        any_error = true;
                    }
                }
            }
            ScanFormat::Text => print_scan_text(file, &result),
        }
    }
    if any_error {
        ExitCode::from(2)
    } else if any_sensitive {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Inspects the files on all cores; results in the order of `files`.
fn inspect_files(
    inspector: &sluis::inspect::Inspector,
    files: &[String],
) -> Vec<std::io::Result<sluis::inspect::Inspection>> {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<std::io::Result<sluis::inspect::Inspection>>>> =
        Mutex::new(files.iter().map(|_| None).collect());
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::thread::scope(|scope| {
        for _ in 0..workers.min(files.len()) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(file) = files.get(i) else { break };
                    let raw = if file == "-" {
                        let mut b = Vec::new();
                        std::io::stdin().read_to_end(&mut b).map(|_| b)
                    } else {
                        std::fs::read(file)
                    };
                    let result = raw.map(|r| inspector.inspect(&r));
                    results.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(result);
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(std::io::Error::other("not inspected"))))
        .collect()
}

/// One line of `sluis scan --format json`, keys in this order.
#[derive(serde::Serialize)]
struct ScanLine<'a> {
    file: &'a str,
    sensitive: bool,
    score: u32,
    findings: &'a [sluis::inspect::Finding],
    /// Signs of an automated forward (header names), when there are any.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    forward: &'a [&'static str],
}

fn print_scan_text(file: &str, r: &sluis::inspect::Inspection) {
    let verdict = if r.sensitive {
        "SENSITIVE"
    } else {
        "not sensitive"
    };
    out!("{file}: {verdict} (score {})", r.score);
    if !r.forward.is_empty() {
        out!("  automated forward: {}", r.forward.join(", "));
    }
    for f in &r.findings {
        let confidence = f.confidence.name();
        let hash = f
            .hash
            .as_deref()
            .map(|h| format!("  #{h}"))
            .unwrap_or_default();
        out!(
            "  {:<14} {:<6} {:<16} {}{hash}",
            f.detector.name(),
            confidence,
            f.masked,
            f.location
        );
    }
}
