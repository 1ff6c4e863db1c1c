//! The `sluis` command's families, one file each; `main.rs` only parses and dispatches.

pub mod audit;
pub mod check_domain;
pub mod passwd;
pub mod portal;
pub mod quarantine;
pub mod scan;
pub mod serve;
pub mod store;
pub mod user;

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
pub(crate) use out;

/// Output formats of the commands that print results.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}
