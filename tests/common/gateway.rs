//! The Sluis process under test: its configuration, start-up, log and shutdown.

use super::*;

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

/// `sluis config check --config PATH`.
pub fn config_check(path: &Path) -> std::process::Output {
    Command::new(SLUIS)
        .args(["config", "check", "--config"])
        .arg(path)
        .output()
        .expect("run sluis config check")
}

/// A credentials file in `dir` with one user, hashed by `sluis passwd` as an administrator
/// would.
pub fn credentials(dir: &Path, user: &str, password: &str) -> PathBuf {
    let hash = Command::new(SLUIS)
        .args(["passwd", user])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut p| {
            p.stdin
                .take()
                .expect("stdin")
                .write_all(format!("{password}\n").as_bytes())?;
            p.wait_with_output()
        })
        .expect("sluis passwd");
    let path = dir.join("credentials");
    std::fs::write(&path, &hash.stdout).unwrap();
    path
}
