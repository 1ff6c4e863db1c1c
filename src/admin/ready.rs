//! Readiness, checked in the background: every check runs on its own schedule with its own
//! time limit and records its result when it is done, so `/readyz` answers at once with the
//! last results and their age. A resolver that does not answer costs its check 15 s, not the
//! probe that asks (Kubernetes gives up after 5).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use super::Services;

/// How often the checks run.
const INTERVAL: Duration = Duration::from_secs(5);
/// How long `/readyz` waits for a check that has no result yet (just after start).
const FIRST_RESULT_WAIT: Duration = Duration::from_millis(900);
/// Time limits of the checks themselves.
const LOCAL_LIMIT: Duration = Duration::from_secs(10);
const UPSTREAM_LIMIT: Duration = Duration::from_secs(3);
const DNS_LIMIT: Duration = Duration::from_secs(20);
/// A database that takes longer than this to answer `SELECT 1` is as good as down.
const STORE_LIMIT: Duration = Duration::from_secs(2);

/// A check's result and when it was made.
type Checked = (Result<(), String>, Instant);

/// The last result of each check.
#[derive(Default)]
pub struct Readiness {
    results: Mutex<HashMap<String, Checked>>,
    changed: Notify,
}

impl Readiness {
    /// Records a check's result (the checker, and the start-up DNSSEC self-test).
    pub fn record(&self, name: &str, result: Result<(), String>) {
        self.results
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), (result, Instant::now()));
        self.changed.notify_waiters();
    }

    /// Whether everything `services` needs is ready, and the JSON body saying why: each check's
    /// last result (`"ok"`, what failed, or that it has none yet) and its age in seconds.
    pub async fn report(&self, services: &Services) -> (bool, String) {
        let names = expected(services);
        let deadline = tokio::time::Instant::now() + FIRST_RESULT_WAIT;
        loop {
            let waiting = self.changed.notified();
            let missing = {
                let results = self.results.lock().unwrap_or_else(|p| p.into_inner());
                names.iter().any(|n| !results.contains_key(n))
            };
            if !missing || tokio::time::timeout_at(deadline, waiting).await.is_err() {
                break;
            }
        }
        let results = self.results.lock().unwrap_or_else(|p| p.into_inner());
        let mut ready = true;
        let mut checks = serde_json::Map::new();
        let mut ages = serde_json::Map::new();
        for name in &names {
            match results.get(name) {
                Some((result, at)) => {
                    ready &= result.is_ok();
                    let said = match result {
                        Ok(()) => "ok".to_string(),
                        Err(e) => e.clone(),
                    };
                    checks.insert(name.clone(), said.into());
                    let age = (at.elapsed().as_secs_f64() * 10.0).round() / 10.0;
                    ages.insert(name.clone(), age.into());
                }
                None => {
                    ready = false;
                    checks.insert(name.clone(), "not checked yet".into());
                }
            }
        }
        let body = serde_json::json!({ "ready": ready, "checks": checks, "age_seconds": ages });
        (ready, body.to_string() + "\n")
    }
}

/// The checks a configuration needs: DNS only once domains must be proven or the policy needs
/// postures.
fn expected(s: &Services) -> Vec<String> {
    let mut names = vec![
        "spool".to_string(),
        "quarantine".to_string(),
        "audit".to_string(),
        format!("upstream:{}", s.reviewer.lanes.default_lane().name),
    ];
    if s.dns.is_some() {
        names.push("dns".to_string());
    }
    names
}

/// Runs the checks every few seconds, and at once after a reload, until shutdown, each
/// recording when it is done. A check still running when the next round is due is not started
/// twice.
pub async fn checker(
    mut services: watch::Receiver<Arc<Services>>,
    readiness: Arc<Readiness>,
    shutdown: CancellationToken,
) {
    let running: Arc<Mutex<std::collections::HashSet<String>>> = Arc::default();
    loop {
        let s = services.borrow_and_update().clone();
        for (name, check) in checks(&s) {
            if !running
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(name.clone())
            {
                continue;
            }
            let (readiness, running) = (readiness.clone(), running.clone());
            tokio::spawn(async move {
                let result = check.await;
                readiness.record(&name, result);
                running
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&name);
            });
        }
        tokio::select! {
            _ = tokio::time::sleep(INTERVAL) => {}
            // A reload (new lanes, new checks): check what the new configuration needs now.
            Ok(()) = services.changed() => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

type Check = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>>;

fn checks(s: &Services) -> Vec<(String, Check)> {
    let writable = |dir: std::path::PathBuf| -> Check {
        Box::pin(within(LOCAL_LIMIT, async move {
            tokio::task::spawn_blocking(move || {
                tempfile::tempfile_in(&dir)
                    .map(drop)
                    .map_err(|e| format!("{}: {e}", dir.display()))
            })
            .await
            .map_err(|e| e.to_string())?
        }))
    };
    let audit = s.reviewer.audit.path().to_path_buf();
    let lane = s.reviewer.lanes.default_lane();
    let (host, port) = (lane.endpoint.host.clone(), lane.endpoint.port);
    let mut all: Vec<(String, Check)> = vec![
        ("spool".into(), writable(s.spool_dir.clone())),
        ("quarantine".into(), {
            // Files: the directory is writable; PostgreSQL: the server answers a statement.
            let store = s.reviewer.store.store().clone();
            Box::pin(async move {
                let checked = store.check(STORE_LIMIT).await;
                crate::metrics::store_up(store.kind(), checked.is_ok());
                checked.map_err(|e| format!("{} store: {e}", store.kind()))
            })
        }),
        (
            "audit".into(),
            Box::pin(within(LOCAL_LIMIT, async move {
                tokio::task::spawn_blocking(move || {
                    std::fs::OpenOptions::new()
                        .append(true)
                        .open(&audit)
                        .map(drop)
                        .map_err(|e| format!("{}: {e}", audit.display()))
                })
                .await
                .map_err(|e| e.to_string())?
            })),
        ),
        (
            format!("upstream:{}", lane.name),
            Box::pin(within(UPSTREAM_LIMIT, upstream_answers(host, port))),
        ),
    ];
    if let Some(dns) = s.dns.clone() {
        all.push((
            "dns".into(),
            Box::pin(within(DNS_LIMIT, async move { dns.self_test().await })),
        ));
    }
    all
}

async fn within(
    limit: Duration,
    check: impl std::future::Future<Output = Result<(), String>>,
) -> Result<(), String> {
    tokio::time::timeout(limit, check)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {} s", limit.as_secs())))
}

/// Whether the upstream greets; the session is closed politely.
async fn upstream_answers(host: String, port: u16) -> Result<(), String> {
    let mut s = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| e.to_string())?;
    let mut greeting = [0u8; 3];
    s.read_exact(&mut greeting)
        .await
        .map_err(|e| e.to_string())?;
    let _ = s.write_all(b"QUIT\r\n").await;
    if &greeting == b"220" {
        Ok(())
    } else {
        Err(format!("greeting {}", String::from_utf8_lossy(&greeting)))
    }
}
