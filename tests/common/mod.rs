//! The end-to-end harness: real Postfix, smtp-sink, swaks and Python smtplib around a real
//! `sluis` process, all on 127.0.0.0/8.
//!
//! `bash tests/run.sh` installs the Debian packages; a test run without them fails with a message
//! saying so, never passes by skipping. Each test starts its own Sluis and sinks on free ports.
//! One Postfix instance (the "client MTA" whose relayhost is Sluis) is shared by the tests of a
//! binary: its transport map sends `*@slotN.test` to `[127.0.11.N]:2525`, and a test that takes
//! slot N runs its Sluis there, so every test reaches its own gateway. A watchdog stops that
//! Postfix when the test binary exits.

#![allow(dead_code)]

pub mod dns;
pub mod gateway;
pub mod pki;
pub mod portal;
pub mod postfix;
pub mod postgres;
pub mod smtp;
pub mod web;

// Every test binary uses another part of the harness.
#[allow(unused_imports)]
pub use {
    gateway::*,
    pki::*,
    postfix::*,
    smtp::*,
    web::{http_get, http_request},
};

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const SLUIS: &str = env!("CARGO_BIN_EXE_sluis");

/// Fails the test with the fix when a program the suite needs is missing.
pub fn require(program: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/bin"] {
        let p = Path::new(dir).join(program);
        if p.exists() {
            return p;
        }
    }
    panic!(
        "{program} is not installed. The end-to-end tests use real Postfix, smtp-sink and swaks: \
         run `bash tests/run.sh`, which installs them (Debian packages) and runs the suite."
    );
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A scratch directory Postfix's unprivileged processes can traverse.
pub fn scratch(name: &str) -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix(&format!("sluis-e2e-{name}-"))
        .tempdir()
        .expect("tempdir");
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    d
}

/// Polls `f` every 50 ms until it returns Some or `limit` passes.
pub fn wait_for<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if start.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_listening(port: u16) -> bool {
    wait_for(Duration::from_secs(15), || {
        TcpStream::connect(("127.0.0.1", port)).ok()
    })
    .is_some()
}

/// Runs a Python program (smtplib) and returns its stdout; fails the test on a non-zero exit.
pub fn python(program: &str) -> String {
    let py = require("python3");
    let out = Command::new(py)
        .arg("-c")
        .arg(program)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "python failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A message file with CRLF line ends and a unique token in its body.
pub fn message_file(dir: &Path, token: &str, body_lines: usize) -> PathBuf {
    let mut m = format!(
        "From: <sender@org.test>\r\nTo: <rcpt@partner.test>\r\nSubject: test {token}\r\n\
         Message-ID: <{token}@org.test>\r\n\r\n"
    );
    for i in 0..body_lines {
        m.push_str(&format!("line {i} of {token}\r\n"));
    }
    let p = dir.join(format!("{token}.eml"));
    std::fs::write(&p, m).unwrap();
    p
}

/// Every identifier in the inspection corpus: the 9-digit numbers of its generator, and its
/// IBAN. Tests check that none of them ever shows up in output or logs.
pub fn corpus_identifiers() -> Vec<String> {
    let generator = std::fs::read_to_string("tests/corpus/generate.py").unwrap();
    let mut ids: Vec<String> = generator
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|t| t.len() == 9 && t.bytes().all(|b| b.is_ascii_digit()))
        .map(str::to_string)
        .collect();
    ids.push("NL91ABNA0417164300".into());
    ids.push("PAT-0012345".into());
    ids
}

/// Runs `cleanup` (shell) once this test binary has exited, however it ends: a watchdog shell
/// started in the background by a shell that exits at once.
pub fn after_exit(cleanup: &str) {
    let watchdog = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {cleanup}",
        pid = std::process::id()
    );
    Command::new("sh")
        .arg("-c")
        .arg(format!(
            "setsid sh -c '{watchdog}' </dev/null >/dev/null 2>&1 &"
        ))
        .status()
        .expect("watchdog");
}

/// Fails the test, showing the program's output, unless `out` is a success.
pub fn assert_success(out: &std::process::Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
