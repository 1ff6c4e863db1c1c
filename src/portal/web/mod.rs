//! The portal's web side (issue 17 points 5 and 7): its own HTTPS listener, pages in Dutch and
//! English, and the hardening every response gets: a strict Content-Security-Policy (nothing
//! but this origin's stylesheet; no script at all), HSTS, no referrer, no framing, no caching;
//! cookies `__Host-`, Secure, HttpOnly, SameSite=Strict; a CSRF token on every form.

mod complete;
mod pages;
mod read;
mod text;
mod tls;

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::service::Portal;
pub use tls::acceptor;

/// The visit's cookie: the session that replaces the link after the first POST.
pub const VISIT_COOKIE: &str = "__Host-sluis-visit";
/// The CSRF token's cookie (double submit: each form carries the same value).
pub const CSRF_COOKIE: &str = "__Host-sluis-csrf";
/// The chosen language.
pub const LANG_COOKIE: &str = "__Host-sluis-lang";

const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

/// The portal as each request sees it (a reload may replace it).
pub type Current = watch::Receiver<Arc<Portal>>;

pub fn router(portal: Current) -> Router {
    // A reply is the largest request (its cap, and room for the form's framing); all else is
    // a few fields.
    let limit = usize::try_from(portal.borrow().config.max_reply_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(1024 * 1024);
    Router::new()
        .route("/", get(pages::index))
        .route("/static/portal.css", get(pages::stylesheet))
        // Browsers ask for it on every site: no icon, and no 404 in their console.
        .route(
            "/favicon.ico",
            get(|| async { axum::http::StatusCode::NO_CONTENT }),
        )
        .route("/r/{id}/{link}", get(pages::landing).post(pages::begin))
        .route("/code", get(pages::code_page).post(pages::check_code))
        .route("/code/resend", post(pages::resend))
        .route("/message", get(read::message))
        .route("/message/attachment/{n}", get(read::attachment))
        .route("/message/original.eml", get(read::original))
        .route("/message/reply", post(read::reply))
        .route("/logout", post(pages::logout))
        .route(
            "/c/{id}/{token}",
            get(complete::completion).post(complete::complete),
        )
        .fallback(pages::not_found)
        .layer(axum::extract::DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn(harden))
        .with_state(portal)
}

/// The headers every answer carries.
async fn harden(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=31536000; includeSubDomains",
        ),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "permissions-policy",
        HeaderValue::from_static("camera=(), microphone=(), geolocation=()"),
    );
    response
}

/// A cookie's value from the request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value: host-only, secure, not for scripts, never sent cross-site.
pub fn set_cookie(name: &str, value: &str, max_age: Option<u64>) -> String {
    let age = max_age
        .map(|a| format!("; Max-Age={a}"))
        .unwrap_or_default();
    format!("{name}={value}; Path=/; Secure; HttpOnly; SameSite=Strict{age}")
}

/// Serves the portal on `listener` until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    portal: Current,
    shutdown: CancellationToken,
) {
    let tls = tls::TlsListener::new(listener, acceptor, shutdown.clone());
    let app = router(portal);
    if let Err(e) = axum::serve(tls, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
    {
        tracing::error!(error = %e, "the portal listener stopped");
    }
}
