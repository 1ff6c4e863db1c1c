//! The reviewers' web interface (DESIGN §14, issue 18): its own HTTPS listener (`[web]`),
//! pages in Dutch and English with the hardening of every web side (`wire::web`), a login
//! (local accounts with a password and a TOTP code), and the quarantine: a list with filters
//! and paging, an item page with identifiers masked, showing the original (a separate,
//! audited action with a reason), release and reject with a reason. Every action is audited
//! with the person's identity from the login, never a name typed into a form.

mod act;
mod audit;
mod item;
mod listing;
mod oidc;
mod pages;
mod preview;
mod sender;
mod session;
mod text;
pub mod users;
mod via_portal;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::WebConfig;
use crate::quarantine::review::Reviewer;
use users::Users;

/// What the pages work with, built from one configuration (a reload sends a new one).
pub struct Web {
    pub config: WebConfig,
    pub reviewer: Reviewer,
    pub users: Users,
    /// The identity provider, when `[web.oidc]` is configured.
    pub oidc: Option<Arc<oidc::Provider>>,
    /// This instance's name in the store's audit anchors.
    pub instance: String,
    /// The last verification of the audit chain: when, whether intact, what it found.
    pub verified: std::sync::Mutex<Option<(String, bool, String)>>,
    /// The pickup portal, when `[portal]` is configured: "send via the portal instead".
    pub portal: Option<Arc<crate::portal::service::Portal>>,
    /// The senders' links (the same key the notices are signed with).
    pub links: Option<Arc<crate::quarantine::link::SenderLinks>>,
    /// The quarantine list in memory (refreshed in the background).
    pub listing: listing::Listing,
    /// Password checks at once (argon2 takes 19 MiB and tens of milliseconds each).
    pub checks: Arc<tokio::sync::Semaphore>,
}

impl Web {
    pub fn build(
        config: &crate::config::Config,
        reviewer: Reviewer,
        links: Option<Arc<crate::quarantine::link::SenderLinks>>,
        portal: Option<Arc<crate::portal::service::Portal>>,
    ) -> anyhow::Result<Option<Web>> {
        let Some(w) = &config.web else {
            return Ok(None);
        };
        let users = match &w.users_file {
            Some(f) => Users::load(f)?,
            None => Users::default(),
        };
        let oidc = match &w.oidc {
            Some(o) => Some(Arc::new(oidc::Provider::new(o, &w.base_url)?)),
            None => None,
        };
        Ok(Some(Web {
            config: w.clone(),
            reviewer,
            users,
            oidc,
            instance: crate::store::instance_name(&config.store),
            verified: std::sync::Mutex::new(None),
            links,
            portal,
            listing: listing::Listing::default(),
            checks: Arc::new(tokio::sync::Semaphore::new(2)),
        }))
    }

    fn store(&self) -> &Arc<crate::store::Store> {
        self.reviewer.store.store()
    }
}

/// The pages' view of the current `Web` (a reload may replace it).
pub type Current = watch::Receiver<Arc<Web>>;

pub fn router(web: Current) -> Router {
    Router::new()
        .route("/", get(pages::index))
        .route("/static/review.css", get(pages::stylesheet))
        .route(
            "/favicon.ico",
            get(|| async { axum::http::StatusCode::NO_CONTENT }),
        )
        .route("/login", get(pages::login_page).post(pages::login))
        .route("/logout", post(pages::logout))
        .route("/oidc/start", get(oidc::start))
        .route("/oidc/callback", get(oidc::callback))
        .route("/quarantine", get(item::list))
        .route("/s/{id}/{token}", get(sender::status))
        .route("/s/{id}/{token}/report", post(sender::report))
        .route("/s/{id}/{token}/override", post(sender::override_hold))
        .route("/audit", get(audit::page))
        .route("/audit/verify", post(audit::verify))
        .route("/audit/export.csv", get(audit::export))
        .route("/quarantine/{id}", get(item::show))
        .route("/quarantine/{id}/reveal", post(act::reveal))
        .route("/quarantine/{id}/release", post(act::release))
        .route("/quarantine/{id}/reject", post(act::reject))
        .route("/quarantine/{id}/portal", post(via_portal::send))
        .fallback(pages::not_found)
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
        .layer(axum::middleware::from_fn(crate::wire::web::harden))
        .with_state(web)
}

/// The certificate of `[web]` (or a generated one, with a warning).
pub fn acceptor(
    c: &WebConfig,
) -> Result<tokio_rustls::TlsAcceptor, crate::wire::server_tls::TlsError> {
    crate::wire::web::acceptor(
        "web",
        c.cert_file.as_deref(),
        c.key_file.as_deref(),
        &c.base_url,
    )
}

/// Serves the pages on `listener` until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    web: Current,
    shutdown: CancellationToken,
) {
    crate::wire::web::serve("web", listener, acceptor, router(web), shutdown).await
}
