//! The review API on the admin listener: the quarantine commands over HTTP, for a reviewer's
//! tool or portal. Every request carries `Authorization: Bearer <token>` (`review.token_file`);
//! without a configured token the API does not exist (404). Reviews need the reviewer's name and
//! a reason, which the audit log records.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::Shared;
use crate::quarantine::StoreError;
use crate::quarantine::review::ReviewError;
use crate::smtp::Runtime;

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

/// The runtime when the request may proceed, the response otherwise.
fn authorised(rt: &Shared, headers: &HeaderMap) -> Result<Arc<Runtime>, Box<Response>> {
    let rt = rt.borrow().clone();
    let Some(token) = rt.review_token.as_deref() else {
        return Err(Box::new(error(
            StatusCode::NOT_FOUND,
            "the review API is off (set review.token_file)",
        )));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    // Comparing digests keeps the comparison's timing independent of the token.
    if digest(given.as_bytes()).as_ref() != digest(token.as_bytes()).as_ref() {
        tracing::warn!("review API: request with a wrong or missing token refused");
        return Err(Box::new(error(
            StatusCode::UNAUTHORIZED,
            "a valid bearer token is required",
        )));
    }
    Ok(rt)
}

fn review_error(e: ReviewError) -> Response {
    match e {
        ReviewError::Store(StoreError::NotFound(_)) => error(StatusCode::NOT_FOUND, e.to_string()),
        ReviewError::Store(StoreError::BadId(_)) => error(StatusCode::BAD_REQUEST, e.to_string()),
        ReviewError::Refused(_) => error(StatusCode::CONFLICT, e.to_string()),
        _ => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

pub async fn list(State(rt): State<Shared>, headers: HeaderMap) -> Response {
    let rt = match authorised(&rt, &headers) {
        Ok(rt) => rt,
        Err(r) => return *r,
    };
    match rt.quarantine.list() {
        Ok(items) => Json(json!({ "items": items })).into_response(),
        Err(e) => review_error(e.into()),
    }
}

pub async fn show(
    State(rt): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let rt = match authorised(&rt, &headers) {
        Ok(rt) => rt,
        Err(r) => return *r,
    };
    match rt.reviewer().show(&id) {
        Ok(v) => Json(v).into_response(),
        Err(e) => review_error(e),
    }
}

pub async fn release(
    State(rt): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(body): Json<ReviewBody>,
) -> Response {
    let rt = match authorised(&rt, &headers) {
        Ok(rt) => rt,
        Err(r) => return *r,
    };
    match rt
        .reviewer()
        .release(&id, &body.reviewer, &body.reason)
        .await
    {
        Ok(done) if done.still_held.is_empty() => Json(done).into_response(),
        Ok(done) => (StatusCode::BAD_GATEWAY, Json(done)).into_response(),
        Err(e) => review_error(e),
    }
}

pub async fn reject(
    State(rt): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(body): Json<ReviewBody>,
) -> Response {
    let rt = match authorised(&rt, &headers) {
        Ok(rt) => rt,
        Err(r) => return *r,
    };
    match rt
        .reviewer()
        .reject(&id, &body.reviewer, &body.reason)
        .await
    {
        Ok(()) => Json(json!({ "id": id, "rejected": true })).into_response(),
        Err(e) => review_error(e),
    }
}

pub async fn purge(
    State(rt): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<PurgeBody>,
) -> Response {
    let rt = match authorised(&rt, &headers) {
        Ok(rt) => rt,
        Err(r) => return *r,
    };
    let age = match body.older_than.as_deref().map(humantime::parse_duration) {
        None => rt.config.quarantine.retention,
        Some(Ok(d)) => d,
        Some(Err(e)) => return error(StatusCode::BAD_REQUEST, format!("older_than: {e}")),
    };
    match rt.reviewer().purge(age, &body.reviewer).await {
        Ok(ids) => Json(json!({ "purged": ids })).into_response(),
        Err(e) => review_error(e),
    }
}
