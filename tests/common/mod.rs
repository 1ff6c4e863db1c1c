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
pub mod web;

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

/// Postfix's smtp-sink as the upstream MTA, dumping each message to its own file.
pub struct Sink {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Child,
}

impl Sink {
    pub fn start(extra: &[&str]) -> Sink {
        Sink::start_on(free_port(), extra)
    }

    pub fn start_on(port: u16, extra: &[&str]) -> Sink {
        Sink::start_at(SocketAddr::from(([127, 0, 0, 1], port)), extra)
    }

    /// smtp-sink on `addr` (e.g. an MX host's own 127.0.3.x:25).
    pub fn start_at(addr: SocketAddr, extra: &[&str]) -> Sink {
        let port = addr.port();
        let bin = require("smtp-sink");
        let dir = scratch("sink");
        let dump = dir.path().join("dump");
        std::fs::create_dir(&dump).unwrap();
        Command::new("chown")
            .arg("postfix")
            .arg(&dump)
            .status()
            .unwrap();
        let child = Command::new(bin)
            .args(["-u", "postfix", "-d"])
            .arg(format!("{}/%H%M%S.", dump.display()))
            .args(extra)
            .arg(addr.to_string())
            .arg("100")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start smtp-sink");
        let up = wait_for(Duration::from_secs(15), || TcpStream::connect(addr).ok());
        assert!(up.is_some(), "smtp-sink did not start on {addr}");
        Sink { port, dir, child }
    }

    /// Every message dumped so far (smtp-sink writes them with LF line ends).
    pub fn messages(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Ok(entries) = std::fs::read_dir(self.dir.path().join("dump")) {
            for e in entries.flatten() {
                if let Ok(bytes) = std::fs::read(e.path()) {
                    out.push(String::from_utf8_lossy(&bytes).into_owned());
                }
            }
        }
        out
    }

    /// Messages whose text contains `token`.
    pub fn with_token(&self, token: &str) -> Vec<String> {
        self.messages()
            .into_iter()
            .filter(|m| m.contains(token))
            .collect()
    }

    pub fn wait_token(&self, token: &str, n: usize, limit: Duration) -> Vec<String> {
        wait_for(limit, || {
            let m = self.with_token(token);
            (m.len() >= n).then_some(m)
        })
        .unwrap_or_else(|| self.with_token(token))
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A policy that delivers everything through the default lane (inspection and logging only):
/// for tests about something other than the NTA 7516 decisions.
pub const DELIVER_ALL: &str = "[[policy.rules]]\nname = \"deliver\"\naction = \"deliver\"\n";

/// Only the automated-forward rule of the NTA 7516 profile, then delivery.
pub const FORWARD_RULE_ONLY: &str = "[[policy.rules]]\nname = \"automated-forward\"\n\
    action = \"refuse\"\nreason = \"Automated forward refused\"\n\
    when = { automated_forward = true, class = [\"partner\", \"personal\", \"unmanaged\"] }\n\n\
    [[policy.rules]]\nname = \"deliver\"\naction = \"deliver\"\n";

/// The base configuration of a test gateway; tests append sections of their own.
pub fn base_config(listen: SocketAddr, upstream: u16, spool: &Path) -> String {
    format!(
        "[server]\nhostname = \"sluis.test\"\nlisten = [\"{listen}\"]\n\
         spool_dir = \"{}\"\n\n[log]\nlevel = \"debug\"\n\n\
         [upstream.lanes.default]\naddress = \"127.0.0.1:{upstream}\"\nconnect_timeout = \"3s\"\n\n",
        spool.display()
    )
}

/// A running `sluis serve`.
pub struct Sluis {
    pub listen: SocketAddr,
    pub port: u16,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    child: Option<Child>,
    extra_args: Vec<String>,
}

impl Sluis {
    /// Starts Sluis relaying to `upstream`, with `extra` TOML appended to the base config.
    pub fn start(upstream: u16, extra: &str) -> Sluis {
        Sluis::start_on(free_port(), upstream, extra, &[])
    }

    /// Starts Sluis with an admin listener (/metrics, /readyz) on a free port; (Sluis, port).
    pub fn start_with_admin(upstream: u16, extra: &str) -> (Sluis, u16) {
        let admin = free_port();
        let addr = format!("127.0.0.1:{admin}");
        (
            Sluis::start_on(free_port(), upstream, extra, &["--admin", &addr]),
            admin,
        )
    }

    pub fn start_on(port: u16, upstream: u16, extra: &str, args: &[&str]) -> Sluis {
        Sluis::start_at(
            SocketAddr::from(([127, 0, 0, 1], port)),
            upstream,
            extra,
            args,
        )
    }

    pub fn start_at(listen: SocketAddr, upstream: u16, extra: &str, args: &[&str]) -> Sluis {
        let dir = scratch("sluis");
        let config = dir.path().join("sluis.toml");
        let text = base_config(listen, upstream, &dir.path().join("spool")) + extra;
        std::fs::write(&config, text).unwrap();
        let mut s = Sluis {
            listen,
            port: listen.port(),
            dir,
            config,
            child: None,
            extra_args: args.iter().map(|s| s.to_string()).collect(),
        };
        s.spawn();
        s
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("sluis.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// (Re)starts the process with the same configuration and port.
    pub fn spawn(&mut self) {
        let starts_before = self.log().matches("SMTP listener ready").count();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let child = Command::new(SLUIS)
            .arg("serve")
            .arg("--config")
            .arg(&self.config)
            .args(&self.extra_args)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start sluis");
        self.child = Some(child);
        // Ready once this start has logged its listener (the socket is bound by then). No
        // probe connection: it would take a session slot and race tests of session limits.
        let ready = wait_for(Duration::from_secs(15), || {
            (self.log().matches("SMTP listener ready").count() > starts_before).then_some(())
        });
        assert!(ready.is_some(), "sluis did not start; log:\n{}", self.log());
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn signal(&self, sig: &str) {
        Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
    }

    /// kill -9, and reap the process.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits for the process to exit on its own; its exit status.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let c = self.child.as_mut()?;
        let status = wait_for(limit, || c.try_wait().ok().flatten());
        if status.is_some() {
            self.child = None;
        }
        status
    }
}

impl Drop for Sluis {
    fn drop(&mut self) {
        self.kill9();
        // Keep every log of the suite in one place: tests/run.sh checks them all for patient
        // identifiers (tests/check_logs.sh).
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sluis-logs");
        if std::fs::create_dir_all(&dir).is_ok() {
            let name = format!(
                "{}-{}-{}.log",
                std::process::id(),
                self.port,
                std::thread::current()
                    .name()
                    .unwrap_or("test")
                    .replace("::", "-")
            );
            let _ = std::fs::copy(self.log_path(), dir.join(name));
        }
    }
}

/// A raw SMTP client for exact protocol tests.
pub struct Smtp {
    pub stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Smtp {
    pub fn connect(port: u16) -> Smtp {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        Smtp::wrap(stream)
    }

    /// Connects from a given local address, e.g. 127.0.0.2, to test access control.
    pub fn connect_from(local: &str, port: u16) -> Smtp {
        let socket = socket2_bind(local);
        socket
            .connect(&SocketAddr::from(([127, 0, 0, 1], port)).into())
            .expect("connect");
        Smtp::wrap(socket.into())
    }

    fn wrap(stream: TcpStream) -> Smtp {
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        Smtp { stream, reader }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// One complete reply, all lines joined with '\n'; empty when the server closed.
    pub fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) | Err(_) => return all,
                Ok(_) => {}
            }
            let done = line.len() < 4 || line.as_bytes()[3] != b'-';
            all.push_str(line.trim_end());
            if done {
                return all;
            }
            all.push('\n');
        }
    }

    pub fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes());
        self.reply()
    }

    /// Reads the greeting and says EHLO; the EHLO reply.
    pub fn hello(&mut self) -> String {
        let greeting = self.reply();
        assert!(greeting.starts_with("220 "), "greeting: {greeting}");
        self.cmd("EHLO client.test")
    }

    /// MAIL, RCPT for each recipient and DATA, each expected to succeed; the data is next.
    pub fn start_data(&mut self, from: &str, rcpts: &[&str]) {
        let r = self.cmd(&format!("MAIL FROM:<{from}>"));
        assert!(r.starts_with("250"), "MAIL: {r}");
        for rcpt in rcpts {
            let r = self.cmd(&format!("RCPT TO:<{rcpt}>"));
            assert!(r.starts_with("250"), "RCPT: {r}");
        }
        let r = self.cmd("DATA");
        assert!(r.starts_with("354"), "DATA: {r}");
    }

    /// A whole transaction after EHLO (content dot-stuffed here); the end-of-data reply.
    pub fn send_message(&mut self, from: &str, rcpts: &[&str], content: &[u8]) -> String {
        self.start_data(from, rcpts);
        let mut stuffed = Vec::with_capacity(content.len() + 16);
        for line in content.split_inclusive(|&b| b == b'\n') {
            if line.starts_with(b".") {
                stuffed.push(b'.');
            }
            stuffed.extend_from_slice(line);
        }
        self.send(&stuffed);
        self.send(b".\r\n");
        self.reply()
    }

    /// Whether the server has closed the connection.
    pub fn is_closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.reader.read(&mut b), Ok(0))
    }
}

fn socket2_bind(local: &str) -> socket2::Socket {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let addr: SocketAddr = format!("{local}:0").parse().unwrap();
    s.bind(&addr.into()).expect("bind local address");
    s
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

/// Runs swaks with `args`; its whole transcript.
pub fn swaks(args: &[&str]) -> String {
    let bin = require("swaks");
    let out = Command::new(bin).args(args).output().expect("run swaks");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// Gateways reachable through the client Postfix, one per test that needs one.
const SLOTS: u8 = 32;
static NEXT_SLOT: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(1);

/// A Sluis listen address the client Postfix routes to, and the recipient domain that does it.
pub fn client_slot() -> (SocketAddr, String) {
    let n = NEXT_SLOT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    assert!(
        n <= SLOTS,
        "more than {SLOTS} gateways behind the client Postfix"
    );
    (
        SocketAddr::from(([127, 0, 11, n], 2525)),
        format!("slot{n}.test"),
    )
}

/// A Postfix instance started by the suite: the client MTA in front of Sluis, or a receiving MTA.
pub struct PostfixClient {
    pub dir: PathBuf,
    pub port: u16,
}

/// The receiving Postfix keeps every message in one Maildir.
pub type PostfixReceiver = PostfixClient;

static POSTFIX: OnceLock<PostfixClient> = OnceLock::new();
static RECEIVER: OnceLock<PostfixReceiver> = OnceLock::new();

/// The shared Postfix whose relayhost is Sluis (see the module docs).
pub fn postfix_client() -> &'static PostfixClient {
    POSTFIX.get_or_init(|| {
        PostfixClient::start(
            "client",
            "smtpd_peername_lookup = no\ntransport_maps = regexp:{d}/transport\n\
             smtp_tls_security_level = may\nsmtp_connect_timeout = 5s\n\
             minimal_backoff_time = 1s\nmaximal_backoff_time = 2s\nqueue_run_delay = 1s\n",
        )
    })
}

/// A Postfix configured with deploy/postfix/relayhost-main.cf, its relayhost pointed at
/// `sluis`: the integration the README documents, tested as shipped.
pub fn postfix_with_relayhost(sluis: SocketAddr) -> PostfixClient {
    let snippet = std::fs::read_to_string("deploy/postfix/relayhost-main.cf")
        .expect("deploy/postfix/relayhost-main.cf");
    assert!(snippet.contains("relayhost = [127.0.0.1]:2525"));
    let snippet = snippet.replace(
        "relayhost = [127.0.0.1]:2525",
        &format!("relayhost = [{}]:{}", sluis.ip(), sluis.port()),
    );
    PostfixClient::start(&format!("relayhost-{}", sluis.port()), &snippet)
}

/// A Postfix with the lanes of deploy/postfix/lanes-master.cf, its lane ports moved to
/// `ports` (may, dane, secure): the outbound MTA behind Sluis, tested as shipped.
pub fn postfix_with_lanes(ports: [u16; 3]) -> PostfixClient {
    let snippet = std::fs::read_to_string("deploy/postfix/lanes-master.cf")
        .expect("deploy/postfix/lanes-master.cf");
    let mut master = snippet;
    for (default, port) in [10025, 10026, 10027].into_iter().zip(ports) {
        let from = format!("127.0.0.1:{default} inet");
        assert!(master.contains(&from), "{from} missing from the snippet");
        master = master.replace(&from, &format!("127.0.0.1:{port} inet"));
    }
    PostfixClient::start_with_master(
        &format!("lanes-{}", ports[0]),
        "smtp_connect_timeout = 2s\n",
        &master,
    )
}

/// A shared Postfix that accepts mail for every domain (SMTPUTF8 included) into one Maildir.
pub fn postfix_receiver() -> &'static PostfixReceiver {
    RECEIVER.get_or_init(|| {
        PostfixClient::start(
            "receiver",
            "smtputf8_enable = yes\nvirtual_mailbox_domains = regexp:{d}/domains\n\
             virtual_mailbox_base = {d}/mail\nvirtual_mailbox_maps = regexp:{d}/mailboxes\n\
             virtual_uid_maps = static:65534\nvirtual_gid_maps = static:65534\n\
             virtual_mailbox_limit = 0\n\
             smtpd_recipient_restrictions = check_recipient_access regexp:{d}/reject, \
             permit_mynetworks, reject\n",
        )
    })
}

const MASTER_CF: &str = "\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
virtual   unix  -       n       n       -       -       virtual
postlog   unix-dgram n  -       n       -       1       postlogd
";

impl PostfixClient {
    fn start(role: &str, extra_main_cf: &str) -> PostfixClient {
        PostfixClient::start_with_master(role, extra_main_cf, "")
    }

    /// Like `start`, with `extra_master` (services) added to master.cf. Without an smtpd of its
    /// own in `extra_master`, the instance listens on a free port.
    fn start_with_master(role: &str, extra_main_cf: &str, extra_master: &str) -> PostfixClient {
        require("postfix");
        let dir =
            std::env::temp_dir().join(format!("sluis-e2e-postfix-{role}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).unwrap();
        std::fs::create_dir_all(dir.join("mail")).unwrap();
        std::fs::create_dir_all(dir.join("q")).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        for (owner, sub) in [("postfix", "data"), ("65534:65534", "mail")] {
            Command::new("chown")
                .arg(owner)
                .arg(dir.join(sub))
                .status()
                .unwrap();
        }
        let port = free_port();
        let d = dir.display().to_string();
        let main_cf = format!(
            "compatibility_level = 3.6\nqueue_directory = {d}/q\ndata_directory = {d}/data\n\
             mail_owner = postfix\nsyslog_name = sluis-e2e-{role}\nmaillog_file = {d}/maillog\n\
             maillog_file_prefixes = {d}\ninet_protocols = ipv4\ninet_interfaces = 127.0.0.1\n\
             myhostname = {role}.test\nmydestination =\nmynetworks = 127.0.0.0/8\n\
             smtpd_recipient_restrictions = permit_mynetworks, reject\n\
             message_size_limit = 104857600\nalias_maps =\nalias_database =\n{}",
            extra_main_cf.replace("{d}", &d)
        );
        std::fs::write(dir.join("main.cf"), main_cf).unwrap();
        std::fs::write(
            dir.join("master.cf"),
            format!("127.0.0.1:{port} inet n - n - - smtpd\n{MASTER_CF}{extra_master}"),
        )
        .unwrap();
        // The client's transport map stands in for relayhost so that each test reaches its
        // own gateway; the receiver takes every domain into one Maildir.
        // (Postfix allows no $1 substitution in transport maps, hence one line per slot.)
        let transport: String = (1..=SLOTS)
            .map(|n| format!("/@slot{n}\\.test$/ smtp:[127.0.11.{n}]:2525\n"))
            .collect();
        std::fs::write(dir.join("transport"), transport).unwrap();
        std::fs::write(dir.join("domains"), "/./ OK\n").unwrap();
        std::fs::write(dir.join("mailboxes"), "/./ inbox/\n").unwrap();
        // Recipients the receiver refuses, for tests of per-recipient outcomes.
        std::fs::write(
            dir.join("reject"),
            "/^gone@/ 550 5.1.1 User unknown\n/^later@/ 450 4.2.1 Mailbox busy, try later\n",
        )
        .unwrap();
        // Postfix prints start-up errors only to a terminal: `script` gives it one.
        let out = Command::new("script")
            .args(["-qec", &format!("postfix -c {d} start"), "/dev/null"])
            .output()
            .expect("start postfix");
        assert!(
            out.status.success(),
            "postfix did not start: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        // Stop Postfix once this test binary is gone, whatever way it ends.
        // SLUIS_E2E_KEEP=1 keeps queues and logs for a post-mortem.
        let cleanup = if std::env::var_os("SLUIS_E2E_KEEP").is_some() {
            String::from("true")
        } else {
            format!("rm -rf {d}")
        };
        after_exit(&format!(
            "postfix -c {d} stop >/dev/null 2>&1; sleep 1; {cleanup}"
        ));
        assert!(wait_listening(port), "postfix smtpd did not listen");
        PostfixClient { dir, port }
    }

    /// Submits a message to the client Postfix with swaks; returns the transcript.
    pub fn submit(&self, from: &str, to: &str, data_file: &Path) -> String {
        let port = self.port.to_string();
        let server = format!("127.0.0.1:{port}");
        let data = data_file.display().to_string();
        let t = swaks(&[
            "--server", &server, "--from", from, "--to", to, "--data", &data,
        ]);
        assert!(t.contains("  250 2.0.0 Ok: queued"), "postfix refused: {t}");
        t
    }

    /// Messages still in the client's queue for `rcpt`.
    pub fn queued_for(&self, rcpt: &str) -> usize {
        let out = Command::new("postqueue")
            .args(["-c", &self.dir.display().to_string(), "-j"])
            .output()
            .expect("postqueue");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| {
                v["recipients"]
                    .as_array()
                    .is_some_and(|rs| rs.iter().any(|r| r["address"] == rcpt))
            })
            .count()
    }

    /// The delay reasons Postfix recorded for `rcpt` (e.g. the gateway's 451 text).
    pub fn delay_reasons(&self, rcpt: &str) -> Vec<String> {
        let out = Command::new("postqueue")
            .args(["-c", &self.dir.display().to_string(), "-j"])
            .output()
            .expect("postqueue");
        let mut reasons = Vec::new();
        for v in String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        {
            for r in v["recipients"].as_array().into_iter().flatten() {
                if r["address"] == rcpt {
                    reasons.push(r["delay_reason"].as_str().unwrap_or("").to_string());
                }
            }
        }
        reasons
    }

    /// Asks Postfix to retry deferred mail now.
    pub fn flush(&self) {
        let _ = Command::new("postqueue")
            .args(["-c", &self.dir.display().to_string(), "-f"])
            .output();
    }

    pub fn maillog(&self) -> String {
        std::fs::read_to_string(self.dir.join("maillog")).unwrap_or_default()
    }

    /// Messages delivered into the receiver's Maildir whose text contains `token`.
    pub fn delivered_with(&self, token: &str) -> Vec<String> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            let Ok(entries) = std::fs::read_dir(self.dir.join("mail/inbox").join(sub)) else {
                continue;
            };
            for e in entries.flatten() {
                if let Ok(b) = std::fs::read(e.path()) {
                    let text = String::from_utf8_lossy(&b).into_owned();
                    if text.contains(token) {
                        out.push(text);
                    }
                }
            }
        }
        out
    }

    pub fn wait_delivered(&self, token: &str, n: usize, limit: Duration) -> Vec<String> {
        wait_for(limit, || {
            let m = self.delivered_with(token);
            (m.len() >= n).then_some(m)
        })
        .unwrap_or_else(|| self.delivered_with(token))
    }
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

/// A plain HTTP GET on 127.0.0.1:`port`; (status line, body).
pub fn http_get(port: u16, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (
        head.lines().next().unwrap_or("").to_string(),
        body.to_string(),
    )
}

/// One HTTP/1.1 request with an optional bearer token and JSON body; the whole response text.
pub fn http_request(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{auth}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text
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

/// `sluis config check --config PATH`.
pub fn config_check(path: &Path) -> std::process::Output {
    Command::new(SLUIS)
        .args(["config", "check", "--config"])
        .arg(path)
        .output()
        .expect("run sluis config check")
}

/// A test CA and a leaf for `name` signed by it, made with the openssl command line.
pub struct Pki {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub fn pki(dir: &Path, name: &str) -> Pki {
    pki_for(dir, &[name])
}

/// A test CA and one leaf for all of `names` (subjectAltName DNS entries).
pub fn pki_for(dir: &Path, names: &[&str]) -> Pki {
    let name = names[0];
    let openssl = require("openssl");
    let run = |args: &[&str]| {
        let out = Command::new(&openssl)
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=Sluis Test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "leaf.key",
        "-out",
        "leaf.csr",
        "-subj",
        &format!("/CN={name}"),
    ]);
    let sans: Vec<String> = names.iter().map(|n| format!("DNS:{n}")).collect();
    std::fs::write(
        dir.join("ext"),
        format!("subjectAltName={}\n", sans.join(",")),
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "leaf.crt",
        "-days",
        "2",
        "-extfile",
        "ext",
    ]);
    Pki {
        ca: dir.join("ca.crt"),
        cert: dir.join("leaf.crt"),
        key: dir.join("leaf.key"),
    }
}

/// A test CA and a leaf for `name` whose validity ended in 2021, as PEM files in `dir` (made
/// with rcgen: this openssl cannot backdate a certificate).
pub fn expired_pki(dir: &Path, name: &str) -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Sluis Expired Test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec![name.to_string()]).unwrap();
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let leaf = params.signed_by(&key, &issuer).unwrap();
    let p = Pki {
        ca: dir.join("expired-ca.crt"),
        cert: dir.join("expired-leaf.crt"),
        key: dir.join("expired-leaf.key"),
    };
    std::fs::write(&p.ca, ca.pem()).unwrap();
    std::fs::write(&p.cert, leaf.pem()).unwrap();
    std::fs::write(&p.key, key.serialize_pem()).unwrap();
    p
}

/// A Postfix MX host: smtpd on `ip`:25, offering STARTTLS with `tls`'s certificate (a chain
/// when the file holds one), or no STARTTLS at all.
pub fn postfix_mx(ip: &str, tls: Option<&Pki>) -> PostfixClient {
    let main = match tls {
        Some(p) => format!(
            "smtpd_tls_cert_file = {}\nsmtpd_tls_key_file = {}\nsmtpd_tls_security_level = may\n",
            p.cert.display(),
            p.key.display()
        ),
        None => "smtpd_tls_security_level = none\n".to_string(),
    };
    let mx = PostfixClient::start_with_master(
        &format!("mx-{}", ip.replace('.', "-")),
        &main,
        &format!("{ip}:25 inet n - n - - smtpd\n"),
    );
    let up = wait_for(Duration::from_secs(15), || {
        TcpStream::connect((ip, 25)).ok()
    });
    assert!(up.is_some(), "postfix MX on {ip}:25 did not listen");
    mx
}

pub fn tls_section(p: &Pki) -> String {
    format!(
        "[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        p.cert.display(),
        p.key.display()
    )
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
