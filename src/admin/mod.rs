//! The admin HTTP listener: liveness, readiness and metrics for operators and Prometheus.
//!
//! `/healthz` says the process is alive. `/readyz` says whether it can do its work right now
//! (spool, quarantine and audit log writable, the default upstream lane answering, and when
//! domains must be proven or the policy needs postures, the resolver answering with validating
//! DNSSEC), so that a load balancer or Kubernetes sends mail elsewhere while it cannot. The
//! checks run in the background (`ready`); the endpoint reports their last results with their
//! age and answers within a second, however slow a resolver is. `/metrics` is for Prometheus. `/quarantine...` is the review API
//! (`review`), behind a bearer token.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::posture::dns::Dns;
use crate::quarantine::review::Reviewer;

mod ready;
mod review;

pub use ready::Readiness;

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
    let store = rt.borrow().reviewer.store.store().clone();
    if let Ok((bytes, items)) = store.usage().await {
        crate::metrics::quarantine_usage(items, bytes);
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::metrics::render(),
    )
}

async fn readyz(State(state): State<AdminState>) -> impl IntoResponse {
    let services = state.services.borrow().clone();
    let (ready, body) = state.readiness.report(&services).await;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, [(header::CONTENT_TYPE, "application/json")], body)
}

/// What the handlers share: the current services and the readiness checks' last results.
#[derive(Clone)]
pub struct AdminState {
    services: Shared,
    readiness: Arc<Readiness>,
}

impl axum::extract::FromRef<AdminState> for Shared {
    fn from_ref(state: &AdminState) -> Shared {
        state.services.clone()
    }
}

pub fn router(runtime: Shared, readiness: Arc<Readiness>) -> Router {
    let state = AdminState {
        services: runtime.clone(),
        readiness,
    };
    let review = Router::new()
        .route("/quarantine", get(review::list))
        .route("/quarantine/purge", post(review::purge))
        .route("/quarantine/{id}", get(review::show))
        .route("/quarantine/{id}/release", post(review::release))
        .route("/quarantine/{id}/reject", post(review::reject))
        .route_layer(axum::middleware::from_fn_with_state(
            runtime,
            review::require_token,
        ));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .merge(review)
        .with_state(state)
}

/// Serves until `shutdown` is cancelled.
pub async fn serve(
    listener: tokio::net::TcpListener,
    runtime: Shared,
    readiness: Arc<Readiness>,
    shutdown: CancellationToken,
) {
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    tracing::info!(?addr, "admin listener ready");
    tokio::spawn(ready::checker(
        runtime.clone(),
        readiness.clone(),
        shutdown.clone(),
    ));
    let result = axum::serve(listener, router(runtime, readiness))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "admin listener failed");
    }
}
