//! SMTP AUTH (PLAIN and LOGIN, RFC 4954/4616) against a file of argon2 password hashes.
//!
//! AUTH is a second way to be allowed to relay, for clients outside `allow_networks`. It is only
//! offered over TLS, so passwords never cross the wire in the clear.
//!
//! A password check is argon2: memory-hard by design (19 MiB each for `sluis passwd`), so a
//! burst of attempts could take gigabytes. `Guard` runs checks on its own few threads, as many
//! as fit `auth.check_memory` (the rest wait their turn), and makes every failure cost its
//! client address time (a back-off that doubles per failure), so guessing is slow and cannot
//! exhaust memory. Own threads rather than a semaphore over the blocking pool: the allocator
//! keeps each thread's freed 19 MiB for that thread, so checks spread over 60 pool threads
//! held 1.3 GiB after a burst of 60, even with only six running at a time.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::password_hash::{self, PasswordHash, PasswordHasher, SaltString};
use argon2::{Argon2, Block, Params, Version};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {what}")]
    Line {
        path: String,
        line: usize,
        what: String,
    },
}

/// User name → PHC hash string.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    users: HashMap<String, String>,
}

/// A hash of a password nobody has, verified for unknown users so that the time taken does not
/// tell a guesser which user names exist.
const DECOY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2x1aXNkZWNveXNhbHQ$\
                          kX8v0lJrCnm1h9cN3XvJ3Z6Q0lO8x8m1e1B2H4kqR0w";

impl Credentials {
    /// Reads `user:$argon2id$...` lines; `#` starts a comment.
    pub fn load(path: &Path) -> Result<Self, AuthError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| AuthError::Read {
            path: p.clone(),
            source,
        })?;
        let mut users = HashMap::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |what: &str| AuthError::Line {
                path: p.clone(),
                line: i + 1,
                what: what.to_string(),
            };
            let (user, hash) = line
                .split_once(':')
                .ok_or_else(|| bad("expected user:hash"))?;
            if user.is_empty() {
                return Err(bad("empty user name"));
            }
            PasswordHash::new(hash).map_err(|e| bad(&format!("not a PHC password hash: {e}")))?;
            if users.insert(user.to_string(), hash.to_string()).is_some() {
                return Err(bad(&format!("user {user:?} appears twice")));
            }
        }
        Ok(Credentials { users })
    }

    /// Checks a password; CPU-heavy by design, so call it off the async executor.
    pub fn verify(&self, user: &str, password: &str) -> bool {
        self.verify_in(user, password, &mut Vec::new())
    }

    /// Checks a password with argon2's working memory in `blocks`, kept by the caller from one
    /// check to the next (a checking thread's own), so that checks do not allocate and free
    /// 19 MiB each: the allocator would keep what they free (see the module doc).
    pub fn verify_in(&self, user: &str, password: &str, blocks: &mut Vec<Block>) -> bool {
        let (hash, known) = match self.users.get(user) {
            Some(h) => (h.as_str(), true),
            None => (DECOY_HASH, false),
        };
        let ok = PasswordHash::new(hash).is_ok_and(|h| matches(&h, password.as_bytes(), blocks));
        ok && known
    }
}

impl Credentials {
    /// The largest memory one check takes, in bytes: the highest argon2 `m` (KiB) of the
    /// hashes, the decoy's included.
    pub fn check_memory(&self) -> usize {
        self.users
            .values()
            .map(String::as_str)
            .chain([DECOY_HASH])
            .filter_map(|h| PasswordHash::new(h).ok()?.params.get_decimal("m"))
            .max()
            .map_or(19 * 1024 * 1024, |kib| kib as usize * 1024)
    }
}

/// Whether `password` hashes to `hash` (argon2's own `verify_password`, with the working
/// memory in `blocks`); the comparison is constant-time (`password_hash::Output`).
fn matches(hash: &PasswordHash, password: &[u8], blocks: &mut Vec<Block>) -> bool {
    let (Ok(algorithm), Ok(params), Some(salt), Some(expected)) = (
        argon2::Algorithm::try_from(hash.algorithm),
        Params::try_from(hash),
        hash.salt,
        hash.hash,
    ) else {
        return false;
    };
    let version = match hash.version.map(Version::try_from).transpose() {
        Ok(v) => v.unwrap_or_default(),
        Err(_) => return false,
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let needed = params.block_count();
    if blocks.len() < needed {
        blocks.resize(needed, Block::default());
    }
    let mut out = vec![0u8; expected.len()];
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password, salt, &mut out, &mut blocks[..needed])
        .is_ok()
        && password_hash::Output::new(&out).is_ok_and(|o| o == expected)
}

/// How long failures are remembered, the longest back-off, and how many addresses are kept.
const FAILURE_MEMORY: Duration = Duration::from_secs(15 * 60);
const MAX_DELAY: Duration = Duration::from_secs(30);
const MAX_TRACKED: usize = 10_000;

/// A check, given the checking thread's argon2 memory.
type Job = Box<dyn FnOnce(&mut Vec<Block>) + Send>;

/// Bounds concurrent password checks by memory and slows down addresses that fail.
pub struct Guard {
    /// To the checking threads, started at the first check (a gateway without AUTH has none);
    /// they end when the guard (a reload replaced it) is dropped.
    jobs: std::sync::OnceLock<Mutex<std::sync::mpsc::Sender<Job>>>,
    permits: usize,
    failure_delay: Duration,
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl Guard {
    /// As many checking threads as `budget` bytes hold, each check taking `per_check` (at
    /// least one thread).
    pub fn new(budget: usize, per_check: usize, failure_delay: Duration) -> Guard {
        let permits = (budget / per_check.max(1)).max(1);
        crate::metrics::auth_check_permits(permits);
        Guard {
            jobs: std::sync::OnceLock::new(),
            permits,
            failure_delay,
            failures: Mutex::default(),
        }
    }

    /// Starts the checking threads; the way to them.
    fn start(permits: usize) -> Mutex<std::sync::mpsc::Sender<Job>> {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for n in 0..permits {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("sluis-auth-{n}"))
                .spawn(move || {
                    let mut blocks = Vec::new();
                    loop {
                        let job = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                        match job {
                            // A panicking check must not take the thread with it.
                            Ok(job) => {
                                let _ =
                                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                        job(&mut blocks)
                                    }));
                            }
                            Err(_) => return,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a password-checking thread");
            }
        }
        Mutex::new(tx)
    }

    pub fn permits(&self) -> usize {
        self.permits
    }

    /// How long `ip` must wait before its next check: nothing without recent failures, then
    /// `failure_delay` doubling per failure, at most 30 s.
    pub fn delay_for(&self, ip: IpAddr) -> Duration {
        let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        match failures.get(&ip) {
            Some(&(n, last)) if n > 0 && last.elapsed() < FAILURE_MEMORY => {
                let doubled = self.failure_delay.saturating_mul(1u32 << (n - 1).min(16));
                doubled.min(MAX_DELAY)
            }
            _ => Duration::ZERO,
        }
    }

    /// Runs `check` on a checking thread once one is free (waiting counts in the metrics),
    /// with that thread's argon2 memory.
    pub async fn check(
        &self,
        check: impl FnOnce(&mut Vec<Block>) -> bool + Send + 'static,
    ) -> bool {
        let (done, result) = tokio::sync::oneshot::channel();
        crate::metrics::auth_check_waiting(1);
        let job: Job = Box::new(move |blocks: &mut Vec<Block>| {
            crate::metrics::auth_check_waiting(-1);
            let _ = done.send(check(blocks));
        });
        let sent = self
            .jobs
            .get_or_init(|| Guard::start(self.permits))
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(job);
        if sent.is_err() {
            crate::metrics::auth_check_waiting(-1);
            return false;
        }
        // A check that panicked drops its sender: no login.
        result.await.unwrap_or(false)
    }

    pub fn failed(&self, ip: IpAddr) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if failures.len() >= MAX_TRACKED && !failures.contains_key(&ip) {
            failures.retain(|_, (_, last)| last.elapsed() < FAILURE_MEMORY);
            if failures.len() >= MAX_TRACKED {
                // Under a spray from very many addresses: forget the oldest.
                if let Some(oldest) = failures
                    .iter()
                    .min_by_key(|(_, (_, t))| *t)
                    .map(|(k, _)| *k)
                {
                    failures.remove(&oldest);
                }
            }
        }
        let entry = failures.entry(ip).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= FAILURE_MEMORY {
            entry.0 = 0;
        }
        entry.0 = entry.0.saturating_add(1);
        entry.1 = Instant::now();
    }

    pub fn succeeded(&self, ip: IpAddr) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&ip);
    }
}

/// A PHC argon2id hash of `password`, for the credentials file (`sluis passwd`).
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    let mut salt = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut salt)
        .map_err(|_| argon2::password_hash::Error::Crypto)?;
    let salt = SaltString::encode_b64(&salt)?;
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

/// Decodes an AUTH PLAIN response (`authzid NUL authcid NUL passwd`) into user and password.
/// An authorization identity other than the user is refused: nobody may act as someone else.
pub fn decode_plain(b64: &str) -> Option<(String, String)> {
    let raw = B64.decode(b64.trim()).ok()?;
    let mut parts = raw.split(|&b| b == 0);
    let authz = parts.next()?;
    let user = std::str::from_utf8(parts.next()?).ok()?;
    let pass = std::str::from_utf8(parts.next()?).ok()?;
    if parts.next().is_some() || user.is_empty() {
        return None;
    }
    if !authz.is_empty() && authz != user.as_bytes() {
        return None;
    }
    Some((user.to_string(), pass.to_string()))
}

/// Decodes one base64 line of AUTH LOGIN.
pub fn decode_login(b64: &str) -> Option<String> {
    String::from_utf8(B64.decode(b64.trim()).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn hashes_verify_and_wrong_passwords_fail() {
        let hash = hash_password("correct horse").unwrap();
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(f, "# relay users\nehr:{hash}").unwrap();
        let c = Credentials::load(f.path()).unwrap();
        assert!(c.verify("ehr", "correct horse"));
        assert!(!c.verify("ehr", "wrong"));
        assert!(!c.verify("nobody", "correct horse"));
    }

    #[test]
    fn bad_line_is_named() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(f, "\nehr:plaintext").unwrap();
        let e = Credentials::load(f.path()).unwrap_err().to_string();
        assert!(e.contains(":2: not a PHC password hash"), "{e}");
    }

    #[test]
    fn plain_decoding() {
        let enc = |s: &[u8]| B64.encode(s);
        assert_eq!(
            decode_plain(&enc(b"\0ehr\0pw")),
            Some(("ehr".into(), "pw".into()))
        );
        assert_eq!(
            decode_plain(&enc(b"ehr\0ehr\0pw")),
            Some(("ehr".into(), "pw".into()))
        );
        assert_eq!(decode_plain(&enc(b"admin\0ehr\0pw")), None);
        assert_eq!(decode_plain(&enc(b"\0\0pw")), None);
        assert_eq!(decode_plain("!!!"), None);
    }
}

#[cfg(test)]
mod guard_tests {
    use super::*;

    #[test]
    fn failures_cost_time_doubling_and_a_success_forgets_them() {
        let g = Guard::new(64 << 20, 19 << 20, Duration::from_secs(1));
        assert_eq!(g.permits(), 3, "64 MiB hold three 19 MiB checks");
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        assert_eq!(g.delay_for(ip), Duration::ZERO);
        g.failed(ip);
        assert_eq!(g.delay_for(ip), Duration::from_secs(1));
        g.failed(ip);
        g.failed(ip);
        assert_eq!(g.delay_for(ip), Duration::from_secs(4));
        for _ in 0..10 {
            g.failed(ip);
        }
        assert_eq!(g.delay_for(ip), MAX_DELAY);
        assert_eq!(g.delay_for(other), Duration::ZERO, "per address");
        g.succeeded(ip);
        assert_eq!(g.delay_for(ip), Duration::ZERO);
        assert_eq!(Guard::new(1, 19 << 20, Duration::ZERO).permits(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn no_more_checks_run_at_once_than_the_budget_holds() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let g = Arc::new(Guard::new(40 << 20, 19 << 20, Duration::ZERO));
        let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let checks: Vec<_> = (0..12)
            .map(|i| {
                let (g, now, most) = (g.clone(), now.clone(), most.clone());
                tokio::spawn(async move {
                    g.check(move |_| {
                        let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(n, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(30));
                        now.fetch_sub(1, Ordering::SeqCst);
                        if i == 4 {
                            panic!("a check that fails badly");
                        }
                        i % 2 == 0
                    })
                    .await
                })
            })
            .collect();
        let mut accepted = 0;
        for c in checks {
            accepted += usize::from(c.await.unwrap());
        }
        assert_eq!(
            most.load(Ordering::SeqCst),
            2,
            "two 19 MiB checks fit 40 MiB"
        );
        assert_eq!(accepted, 5, "six even ones, one of them panicked: refused");
        // The pool survived the panic.
        assert!(g.check(|_| true).await);
    }

    #[test]
    fn the_memory_of_a_check_comes_from_the_hashes() {
        let c = Credentials::default();
        assert_eq!(c.check_memory(), 19456 * 1024);
    }
}
