//! The admin HTTP listener: liveness, readiness and metrics for operators and Prometheus.
//!
//! `/healthz` says the process is alive. `/readyz` says whether it can do its work right now
//! (spool, quarantine and audit log writable, the default upstream lane answering, and when
//! domains must be proven or the policy needs postures, the resolver answering with validating
//! DNSSEC), so that a load balancer or Kubernetes sends mail elsewhere while it cannot. `/metrics` is for Prometheus. `/quarantine...` is the review API
//! (`review`), behind a bearer token.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::posture::dns::Dns;
use crate::quarantine::review::Reviewer;

mod review;

/// What the admin listener serves, built from one configuration (a reload sends a new one).
pub struct Services {
    pub spool_dir: std::path::PathBuf,
    /// The quarantine, the audit log, the policy and the lanes, for readiness and reviews.
    pub reviewer: Reviewer,
    /// `quarantine.retention`: the review API's default purge age.
    pub retention: Duration,
    /// The resolver, when DNS must work for this configuration (listed domains to prove, or a
    /// policy that needs postures); readiness then checks it.
    pub dns: Option<Arc<Dns>>,
    /// The review API's bearer token (`review.token_file`); `None`: the API is off.
    pub review_token: Option<String>,
}

type Shared = watch::Receiver<Arc<Services>>;

async fn healthz() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        "{\"status\":\"ok\"}\n",
    )
}

async fn metrics(State(rt): State<Shared>) -> impl IntoResponse {
    let store = rt.borrow().reviewer.store.clone();
    if let Ok(Ok((bytes, items))) = tokio::task::spawn_blocking(move || store.usage()).await {
        crate::metrics::quarantine_usage(items, bytes);
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::metrics::render(),
    )
}

/// Whether the upstream greets within a few seconds; the session is closed politely.
async fn upstream_answers(host: &str, port: u16) -> Result<(), String> {
    let probe = async {
        let mut s = tokio::net::TcpStream::connect((host, port))
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
    };
    tokio::time::timeout(Duration::from_secs(3), probe)
        .await
        .map_err(|_| "no greeting within 3 s".to_string())?
}

async fn readyz(State(rt): State<Shared>) -> impl IntoResponse {
    let rt = rt.borrow().clone();
    let mut checks = serde_json::Map::new();
    let mut ready = true;
    let spool = rt.spool_dir.clone();
    let spool_ok = tokio::task::spawn_blocking(move || tempfile::tempfile_in(&spool).map(drop))
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()));
    let lane = rt.reviewer.lanes.default_lane();
    let lane_ok = upstream_answers(&lane.endpoint.host, lane.endpoint.port).await;
    let quarantine = rt.reviewer.store.dir().to_path_buf();
    let audit = rt.reviewer.audit.path().to_path_buf();
    let stores_ok = tokio::task::spawn_blocking(move || {
        let q = tempfile::tempfile_in(&quarantine)
            .map(drop)
            .map_err(|e| format!("{}: {e}", quarantine.display()));
        let a = std::fs::OpenOptions::new()
            .append(true)
            .open(&audit)
            .map(drop)
            .map_err(|e| format!("{}: {e}", audit.display()));
        (q, a)
    })
    .await
    .unwrap_or_else(|e| (Err(e.to_string()), Err(e.to_string())));
    let mut results = vec![
        ("spool".to_string(), spool_ok),
        ("quarantine".to_string(), stores_ok.0),
        ("audit".to_string(), stores_ok.1),
        (format!("upstream:{}", lane.name), lane_ok),
    ];
    // DNS matters once domains must be proven or the policy needs postures: resolver
    // answering, DNSSEC validating.
    if let Some(dns) = &rt.dns {
        results.push(("dns".to_string(), dns.self_test().await));
    }
    for (name, result) in results {
        ready &= result.is_ok();
        checks.insert(name, result.err().unwrap_or_else(|| "ok".into()).into());
    }
    let body = serde_json::json!({ "ready": ready, "checks": checks }).to_string() + "\n";
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, [(header::CONTENT_TYPE, "application/json")], body)
}

pub fn router(runtime: Shared) -> Router {
    let review = Router::new()
        .route("/quarantine", get(review::list))
        .route("/quarantine/purge", post(review::purge))
        .route("/quarantine/{id}", get(review::show))
        .route("/quarantine/{id}/release", post(review::release))
        .route("/quarantine/{id}/reject", post(review::reject))
        .route_layer(axum::middleware::from_fn_with_state(
            runtime.clone(),
            review::require_token,
        ));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .merge(review)
        .with_state(runtime)
}

/// Serves until `shutdown` is cancelled.
pub async fn serve(
    listener: tokio::net::TcpListener,
    runtime: Shared,
    shutdown: CancellationToken,
) {
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    tracing::info!(?addr, "admin listener ready");
    let result = axum::serve(listener, router(runtime))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "admin listener failed");
    }
}
