//! The review API on the admin listener: the quarantine commands over HTTP, for a reviewer's
//! tool or portal. Every request carries `Authorization: Bearer <token>` (`review.token_file`);
//! without a configured token the API does not exist (404). Reviews need the reviewer's name and
//! a reason, which the audit log records.

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;

use super::{Services, Shared};
use crate::quarantine::StoreError;
use crate::quarantine::review::ReviewError;

#[derive(Deserialize)]
pub struct ReviewBody {
    reviewer: String,
    reason: String,
}

#[derive(Deserialize)]
pub struct PurgeBody {
    reviewer: String,
    /// "30d", "12h"...; default: quarantine.retention.
    older_than: Option<String>,
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

fn digest(s: &[u8]) -> ring::digest::Digest {
    ring::digest::digest(&ring::digest::SHA256, s)
}

/// Lets a request through to the review API only with the review token, handing the handler
/// the runtime the token was checked against.
pub async fn require_token(State(rt): State<Shared>, mut request: Request, next: Next) -> Response {
    let rt = rt.borrow().clone();
    let Some(token) = rt.review_token.as_deref() else {
        return error(
            StatusCode::NOT_FOUND,
            "the review API is off (set review.token_file)",
        );
    };
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    // Comparing digests keeps the comparison's timing independent of the token.
    if digest(given.as_bytes()).as_ref() != digest(token.as_bytes()).as_ref() {
        tracing::warn!("review API: request with a wrong or missing token refused");
        return error(StatusCode::UNAUTHORIZED, "a valid bearer token is required");
    }
    request.extensions_mut().insert(rt);
    next.run(request).await
}

fn review_error(e: ReviewError) -> Response {
    match e {
        ReviewError::Store(StoreError::NotFound(_)) => error(StatusCode::NOT_FOUND, e.to_string()),
        ReviewError::Store(StoreError::BadId(_)) => error(StatusCode::BAD_REQUEST, e.to_string()),
        ReviewError::Refused(_) => error(StatusCode::CONFLICT, e.to_string()),
        // Another reviewer has it or had it: say who, so nobody acts twice.
        ReviewError::Store(StoreError::Busy { .. } | StoreError::Settled { .. }) => {
            error(StatusCode::CONFLICT, e.to_string())
        }
        ReviewError::Store(ref s) if s.is_transient() => {
            error(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
        }
        _ => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

type Rt = Extension<Arc<Services>>;

pub async fn list(Extension(rt): Rt) -> Response {
    match rt.reviewer.store.list().await {
        Ok(items) => Json(json!({ "items": items })).into_response(),
        Err(e) => review_error(e.into()),
    }
}

pub async fn show(Extension(rt): Rt, Path(id): Path<String>) -> Response {
    match rt.reviewer.show(&id).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => review_error(e),
    }
}

pub async fn release(
    Extension(rt): Rt,
    Path(id): Path<String>,
    Json(body): Json<ReviewBody>,
) -> Response {
    match rt.reviewer.release(&id, &body.reviewer, &body.reason).await {
        Ok(done) if done.still_held.is_empty() => Json(done).into_response(),
        Ok(done) => (StatusCode::BAD_GATEWAY, Json(done)).into_response(),
        Err(e) => review_error(e),
    }
}

pub async fn reject(
    Extension(rt): Rt,
    Path(id): Path<String>,
    Json(body): Json<ReviewBody>,
) -> Response {
    match rt.reviewer.reject(&id, &body.reviewer, &body.reason).await {
        Ok(()) => Json(json!({ "id": id, "rejected": true })).into_response(),
        Err(e) => review_error(e),
    }
}

pub async fn purge(Extension(rt): Rt, Json(body): Json<PurgeBody>) -> Response {
    let age = match body.older_than.as_deref().map(humantime::parse_duration) {
        None => rt.retention,
        Some(Ok(d)) => d,
        Some(Err(e)) => return error(StatusCode::BAD_REQUEST, format!("older_than: {e}")),
    };
    match rt.reviewer.purge(age, &body.reviewer).await {
        Ok(ids) => Json(json!({ "purged": ids })).into_response(),
        Err(e) => review_error(e),
    }
}
