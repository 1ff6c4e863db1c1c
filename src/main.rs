//! The `sluis` command: parses the command line and dispatches to `cli/`, one file per
//! command family; the work lives in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cli;

/// mimalloc: about 10 % less CPU per relayed message than glibc's allocator, whose
/// malloc/free/consolidate took a tenth of the profile (README, relay benchmark).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use cli::Format;
use cli::check_domain::CheckDomainArgs;
use cli::serve::{ConfigCommand, Settings};

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
        command: cli::quarantine::QuarantineCommand,
    },
    /// The secure pickup portal: list, show, revoke, extend (metadata only).
    Portal {
        #[command(subcommand)]
        command: cli::portal::PortalCommand,
    },
    /// The state store: schema migrations, moving a file quarantine into PostgreSQL.
    Store {
        #[command(subcommand)]
        command: cli::store::StoreCommand,
    },
    /// The audit log.
    Audit {
        #[command(subcommand)]
        command: cli::audit::AuditCommand,
    },
    /// Local accounts of the reviewers' web interface.
    User {
        #[command(subcommand)]
        command: cli::user::UserCommand,
    },
    /// Inspect messages (.eml files, `-` for standard input) as the gateway does.
    /// Exit status: 0 when none is sensitive, 1 when any is, 2 on error.
    Scan {
        /// Configuration file: its [inspect] section applies.
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        #[arg(required = true, value_name = "FILE")]
        files: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(s) => cli::serve::serve(s),
        Command::Config {
            command: ConfigCommand::Check(s),
        } => cli::serve::check(s),
        Command::Passwd { user } => cli::passwd::passwd(&user),
        Command::Manpage => manpage(),
        Command::CheckDomain(args) => cli::check_domain::check_domain(args),
        Command::Quarantine { command } => cli::quarantine::quarantine(command),
        Command::Portal { command } => cli::portal::run(command),
        Command::Store { command } => cli::store::store(command),
        Command::Audit { command } => return cli::audit::audit(command),
        Command::User { command } => cli::user::user(command),
        Command::Scan {
            config,
            format,
            files,
        } => return cli::scan::scan(config, format, &files),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluis: {e:#}");
            ExitCode::from(2)
        }
    }
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
