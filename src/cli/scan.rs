//! `sluis scan FILE...`: inspect messages as the gateway does, on all cores.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use sluis::config::Overrides;

use super::{Format, out};

pub fn scan(config: Option<PathBuf>, format: Format, files: &[String]) -> ExitCode {
    let inspector = match sluis::app::load_config(config.as_deref(), &Overrides::default())
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
            Format::Json => {
                let line = ScanLine {
                    file,
                    sensitive: result.sensitive,
                    score: result.score,
                    findings: &result.findings,
                    findings_omitted: result.findings_omitted,
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
            Format::Text => print_scan_text(file, &result),
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
                // One buffer per worker, reused: a fresh one per file costs a page fault for
                // every page of every message.
                let mut raw = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(file) = files.get(i) else { break };
                    raw.clear();
                    let read = if file == "-" {
                        std::io::stdin().read_to_end(&mut raw)
                    } else {
                        read_into(file, &mut raw)
                    };
                    let result = read.map(|_| inspector.inspect(&raw));
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

/// Reads the whole file into `buf` (empty on entry), sized once from its length.
fn read_into(path: &str, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata().map_or(0, |m| m.len());
    buf.reserve(usize::try_from(len).unwrap_or(0).saturating_add(1));
    file.read_to_end(buf)
}

/// One line of `sluis scan --format json`, keys in this order.
#[derive(serde::Serialize)]
struct ScanLine<'a> {
    file: &'a str,
    sensitive: bool,
    score: u32,
    findings: &'a [sluis::inspect::Finding],
    /// Findings past inspect.max_findings, counted but not listed.
    #[serde(skip_serializing_if = "is_zero")]
    findings_omitted: usize,
    /// Signs of an automated forward (header names), when there are any.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    forward: &'a [&'static str],
}

fn is_zero(n: &usize) -> bool {
    *n == 0
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
    if r.findings_omitted > 0 {
        out!(
            "  and {} more findings, not listed (inspect.max_findings)",
            r.findings_omitted
        );
    }
}
