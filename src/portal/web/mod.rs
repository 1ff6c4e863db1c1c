//! The portal's web side (issue 17 points 5 and 7): its own HTTPS listener, pages in Dutch and
//! English, and the hardening every response gets: a strict Content-Security-Policy (nothing
//! but this origin's stylesheet; no script at all), HSTS, no referrer, no framing, no caching;
//! cookies `__Host-`, Secure, HttpOnly, SameSite=Strict; a CSRF token on every form.

mod complete;
mod pages;
mod read;
mod text;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::service::Portal;
pub use crate::wire::web::{cookie, set_cookie};

/// The portal's certificate (or a generated one, with a warning).
pub fn acceptor(
    c: &crate::config::PortalConfig,
) -> Result<tokio_rustls::TlsAcceptor, crate::wire::server_tls::TlsError> {
    crate::wire::web::acceptor(
        "portal",
        c.cert_file.as_deref(),
        c.key_file.as_deref(),
        &c.base_url,
    )
}

/// The visit's cookie: the session that replaces the link after the first POST.
pub const VISIT_COOKIE: &str = "__Host-sluis-visit";
/// The CSRF token's cookie (double submit: each form carries the same value).
pub const CSRF_COOKIE: &str = "__Host-sluis-csrf";
/// The chosen language.
pub const LANG_COOKIE: &str = "__Host-sluis-lang";

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
        .layer(axum::middleware::from_fn(crate::wire::web::harden))
        .with_state(portal)
}

/// Serves the portal on `listener` until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    portal: Current,
    shutdown: CancellationToken,
) {
    crate::wire::web::serve("portal", listener, acceptor, router(portal), shutdown).await
}
