//! A real PostgreSQL server for the store tests: Debian's binaries, run as the unprivileged
//! `postgres` user on its own 127.0.x address with a fresh data directory (initdb, password
//! authentication), removed when the test ends. `bash tests/run.sh` installs the package.

use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{scratch, wait_for};

/// The superuser's name and password in every test server.
pub const PG_USER: &str = "sluis";
pub const PG_PASSWORD: &str = "store-test-password";

pub struct Postgres {
    dir: tempfile::TempDir,
    pub addr: SocketAddr,
    child: Option<Child>,
    /// With TLS: the CA that signed the server's certificate (for `db.test`).
    pub ca: Option<PathBuf>,
}

/// Where Debian put the server's programs (one major version is installed).
fn bin_dir() -> PathBuf {
    let found = std::fs::read_dir("/usr/lib/postgresql").ok().and_then(|d| {
        d.filter_map(|e| e.ok())
            .map(|e| e.path().join("bin"))
            .find(|p| p.join("postgres").exists())
    });
    found.unwrap_or_else(|| {
        panic!(
            "PostgreSQL is not installed. The store tests use a real server: run \
             `bash tests/run.sh`, which installs Debian's postgresql package and runs the suite."
        )
    })
}

/// Runs `program args` as the `postgres` user; panics with its output when it fails.
fn as_postgres(program: &Path, args: &[&str]) {
    let out = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(program)
        .args(args)
        .output()
        .expect("runuser");
    assert!(
        out.status.success(),
        "{} {args:?} failed:\n{}{}",
        program.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Postgres {
    /// A fresh cluster on 127.0.13.`host`, started.
    pub fn start(host: u8) -> Postgres {
        Postgres::start_with(host, false)
    }

    /// Also serving TLS, with a certificate for `db.test` from a test CA (`ca`).
    pub fn start_tls(host: u8) -> Postgres {
        Postgres::start_with(host, true)
    }

    fn start_with(host: u8, tls: bool) -> Postgres {
        let dir = scratch("pg");
        let pki = tls.then(|| {
            let certs = dir.path().join("certs");
            std::fs::create_dir(&certs).unwrap();
            super::pki(&certs, "db.test")
        });
        let data = dir.path().join("data");
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, PG_PASSWORD).unwrap();
        chown_postgres(dir.path());
        as_postgres(
            &bin_dir().join("initdb"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                PG_USER,
                "--auth=scram-sha-256",
                "--pwfile",
                pwfile.to_str().unwrap(),
                "--no-sync",
                "--encoding=UTF8",
                "--locale=C",
            ],
        );
        let port = super::free_port();
        let addr: SocketAddr = format!("127.0.13.{host}:{port}").parse().unwrap();
        let mut pg = Postgres {
            dir,
            addr,
            child: None,
            ca: pki.as_ref().map(|p| p.ca.clone()),
        };
        if let Some(p) = &pki {
            let conf = format!(
                "ssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\n",
                p.cert.display(),
                p.key.display()
            );
            let path = pg.data().join("postgresql.auto.conf");
            let mut text = std::fs::read_to_string(&path).unwrap_or_default();
            text.push_str(&conf);
            std::fs::write(&path, text).unwrap();
            chown_postgres(pg.dir.path());
            std::fs::set_permissions(&p.key, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        pg.spawn();
        let pid_file = pg.data().join("postmaster.pid");
        super::after_exit(&format!(
            "kill -9 $(head -1 {} 2>/dev/null) 2>/dev/null",
            pid_file.display()
        ));
        pg
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Starts the server (again) on the same data and address; waits until it takes
    /// connections.
    pub fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("server.log")).unwrap();
        let child = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(bin_dir().join("postgres"))
            .args(["-D", self.data().to_str().unwrap()])
            .args(["-c", &format!("listen_addresses={}", self.addr.ip())])
            .args(["-c", &format!("port={}", self.addr.port())])
            .args([
                "-c",
                &format!("unix_socket_directories={}", self.dir.path().display()),
            ])
            .args(["-c", "max_connections=60", "-c", "shared_buffers=16MB"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("postgres");
        self.child = Some(child);
        let up = wait_for(Duration::from_secs(30), || {
            let ready = Command::new(bin_dir().join("pg_isready"))
                .args(["-h", &self.addr.ip().to_string()])
                .args(["-p", &self.addr.port().to_string()])
                .output()
                .is_ok_and(|o| o.status.success());
            ready.then_some(())
        });
        assert!(up.is_some(), "PostgreSQL did not start:\n{}", self.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// `postgresql://sluis@addr/postgres`: no password, as the configuration must have it.
    pub fn url(&self) -> String {
        format!("postgresql://{PG_USER}@{}/postgres", self.addr)
    }

    /// A file holding the password, readable by the test (root).
    pub fn password_file(&self) -> PathBuf {
        let p = self.dir.path().join("sluis-password");
        std::fs::write(&p, format!("{PG_PASSWORD}\n")).unwrap();
        p
    }

    /// The `[store]` section of a Sluis configuration for this server.
    pub fn store_toml(&self) -> String {
        format!(
            "[store]\nkind = \"postgres\"\nurl = \"{}\"\npassword_file = \"{}\"\ntls = \"off\"\n\
             timeout = \"2s\"\n",
            self.url(),
            self.password_file().display()
        )
    }

    /// psql as the superuser on database `db`, running `sql` (not started).
    pub fn psql_command(&self, db: &str, sql: &str) -> Command {
        let mut c = Command::new("psql");
        c.env("PGPASSWORD", PG_PASSWORD)
            .args(["-h", &self.addr.ip().to_string()])
            .args(["-p", &self.addr.port().to_string()])
            .args([
                "-U",
                PG_USER,
                "-d",
                db,
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ]);
        c
    }

    /// Runs `sql` on database `db`; its output. Fails the test when psql does.
    pub fn psql_in(&self, db: &str, sql: &str) -> String {
        let out = self.psql_command(db, sql).output().expect("psql");
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Runs `sql` on the `postgres` database.
    pub fn psql(&self, sql: &str) -> String {
        self.psql_in("postgres", sql)
    }

    /// kill -9 of the postmaster: no shutdown, no checkpoint. Waits until the port is closed
    /// and the backends are gone, so a restart finds the data directory free.
    pub fn kill9(&mut self) {
        let pid = std::fs::read_to_string(self.data().join("postmaster.pid"))
            .ok()
            .and_then(|t| t.lines().next().map(str::to_string))
            .expect("postmaster.pid");
        let _ = Command::new("kill").args(["-9", &pid]).status();
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
        let gone = wait_for(Duration::from_secs(30), || {
            let closed =
                TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_err();
            let backends = Command::new("pgrep")
                .args(["-f", &format!("postgres.*{}", self.data().display())])
                .status()
                .is_ok_and(|s| s.success());
            (closed && !backends).then_some(())
        });
        assert!(gone.is_some(), "PostgreSQL did not go away after kill -9");
    }

    /// A clean, fast stop.
    pub fn stop(&mut self) {
        as_postgres(
            &bin_dir().join("pg_ctl"),
            &[
                "-D",
                self.data().to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(bin_dir().join("pg_ctl"))
                .args(["-D", self.data().to_str().unwrap_or_default()])
                .args(["-m", "immediate", "-w", "stop"])
                .output();
            if let Some(mut c) = self.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

fn chown_postgres(dir: &Path) {
    let status = Command::new("chown")
        .args(["-R", "postgres:postgres"])
        .arg(dir)
        .status()
        .expect("chown");
    assert!(status.success(), "chown postgres {}", dir.display());
}
