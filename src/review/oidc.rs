//! Login through the hospital's OpenID Connect provider (`[web.oidc]`): the authorization code
//! flow with PKCE and a nonce (the `openidconnect` crate: discovery, the token exchange, the ID
//! token's signature, issuer, audience, expiry and nonce), the role from a group claim.
//!
//! The state, the PKCE verifier and the nonce live in a cookie of their own,
//! `__Host-sluis-oidc` (HttpOnly, Secure, ten minutes), not in the store: starting a login then
//! costs the server nothing, so nobody can fill the store by starting logins. That cookie is
//! SameSite=Lax, not Strict like every other cookie here: the provider's redirect back is a
//! cross-site navigation, on which a Strict cookie is not sent. For the same reason the callback
//! answers with a page that moves on to the list itself (a same-site navigation), so the new
//! session's Strict cookie goes with it. The login starts from a link, not a form: the pages'
//! CSP (`form-action 'self'`) would stop a form's redirect to the provider.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};
use serde::Deserialize;

use super::Current;
use super::session::Ctx;
use super::users::Role;
use crate::config::OidcConfig;
use crate::wire::http::HttpClient;
use crate::wire::web::{cookie, esc, same_secret};

pub const STATE_COOKIE: &str = "__Host-sluis-oidc";
/// How long a login at the provider may take.
const PENDING: u64 = 600;

/// The provider, as discovered (once, then kept; a failed discovery is tried again at the
/// next login).
pub struct Provider {
    config: OidcConfig,
    secret: String,
    redirect: String,
    http: HttpClient,
    metadata: tokio::sync::Mutex<Option<CoreProviderMetadata>>,
}

#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("{0}")]
    Config(String),
    #[error("the identity provider: {0}")]
    Provider(String),
}

impl Provider {
    pub fn new(config: &OidcConfig, base_url: &str) -> Result<Provider, OidcError> {
        let secret = std::fs::read_to_string(&config.client_secret_file)
            .map_err(|e| {
                OidcError::Config(format!("{}: {e}", config.client_secret_file.display()))
            })?
            .trim()
            .to_string();
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(f) = &config.ca_file {
            let extra =
                crate::wire::tls::load_roots(f).map_err(|e| OidcError::Config(e.to_string()))?;
            roots.roots.extend(extra.roots);
        }
        Ok(Provider {
            config: config.clone(),
            secret,
            redirect: format!("{}/oidc/callback", base_url.trim_end_matches('/')),
            http: HttpClient {
                roots: Arc::new(roots),
                timeout: Duration::from_secs(10),
                limit: 1024 * 1024,
            },
            metadata: tokio::sync::Mutex::new(None),
        })
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The HTTP client the crate calls: owns what it needs, so its futures borrow nothing.
    fn http(
        &self,
    ) -> impl Fn(
        openidconnect::HttpRequest,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<
                    Output = Result<openidconnect::HttpResponse, crate::wire::http::HttpError>,
                > + Send,
        >,
    > + use<> {
        let client = self.http.clone();
        move |request| {
            let client = client.clone();
            Box::pin(async move { client.send(request).await })
        }
    }

    async fn client(
        &self,
    ) -> Result<
        CoreClient<
            openidconnect::EndpointSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointMaybeSet,
            openidconnect::EndpointMaybeSet,
        >,
        OidcError,
    > {
        let mut known = self.metadata.lock().await;
        let metadata = match &*known {
            Some(m) => m.clone(),
            None => {
                let issuer = IssuerUrl::new(self.config.issuer.clone())
                    .map_err(|e| OidcError::Config(format!("issuer: {e}")))?;
                let http = self.http();
                let m = CoreProviderMetadata::discover_async(issuer, &http)
                    .await
                    .map_err(|e| OidcError::Provider(format!("discovery: {e}")))?;
                *known = Some(m.clone());
                m
            }
        };
        let redirect = RedirectUrl::new(self.redirect.clone())
            .map_err(|e| OidcError::Config(format!("web.base_url: {e}")))?;
        Ok(CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.config.client_id.clone()),
            Some(ClientSecret::new(self.secret.clone())),
        )
        .set_redirect_uri(redirect))
    }

    /// The role the groups give (the highest), if any.
    fn role(&self, groups: &[String]) -> Option<Role> {
        let any = |list: &[String]| groups.iter().any(|g| list.contains(g));
        if any(&self.config.admin_groups) {
            Some(Role::Admin)
        } else if any(&self.config.reviewer_groups) {
            Some(Role::Reviewer)
        } else if any(&self.config.auditor_groups) {
            Some(Role::Auditor)
        } else {
            None
        }
    }
}

/// The login link: to the provider, with a fresh state, nonce and PKCE challenge.
pub async fn start(State(web): State<Current>, headers: HeaderMap) -> Response {
    let c = Ctx::new(&web, &headers, None);
    let Some(provider) = c.web.oidc.clone() else {
        return c.message(
            StatusCode::NOT_FOUND,
            c.t("notfound.title"),
            c.t("notfound.text"),
        );
    };
    let client = match provider.client().await {
        Ok(cl) => cl,
        Err(e) => return unavailable(&c, &e),
    };
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("email".into()))
        .set_pkce_challenge(challenge);
    if provider.config.groups_claim == "groups" {
        request = request.add_scope(Scope::new("groups".into()));
    }
    let (url, state, nonce) = request.url();
    let cookie = format!(
        "{STATE_COOKIE}={}.{}.{}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age={PENDING}",
        state.secret(),
        verifier.secret(),
        nonce.secret()
    );
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, url.to_string()),
            (header::SET_COOKIE, cookie),
        ],
    )
        .into_response()
}

fn unavailable(c: &Ctx, e: &OidcError) -> Response {
    tracing::error!(error = %e, "web: login through the identity provider failed");
    c.message(
        StatusCode::BAD_GATEWAY,
        c.t("oidc.failed"),
        c.t("oidc.unavailable"),
    )
}

#[derive(Deserialize)]
pub struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// The provider's redirect back: the state must be this browser's, the code is exchanged
/// (with the PKCE verifier), the ID token checked (with the nonce); then a session.
pub async fn callback(
    State(web): State<Current>,
    headers: HeaderMap,
    Query(q): Query<Callback>,
) -> Response {
    let mut c = Ctx::new(&web, &headers, None);
    let Some(provider) = c.web.oidc.clone() else {
        return c.message(
            StatusCode::NOT_FOUND,
            c.t("notfound.title"),
            c.t("notfound.text"),
        );
    };
    let refused = |c: &Ctx, why: &str| {
        tracing::info!(
            why,
            "web: a login through the identity provider was refused"
        );
        c.message(
            StatusCode::FORBIDDEN,
            c.t("oidc.failed"),
            c.t("oidc.refused"),
        )
    };
    if q.error.is_some() {
        return refused(&c, "the provider answered with an error");
    }
    let (Some(code), Some(state)) = (q.code, q.state) else {
        return refused(&c, "no code or state");
    };
    // The state must be the one this browser was sent off with; its verifier and nonce
    // come with it.
    let Some((verifier, nonce)) = cookie(&headers, STATE_COOKIE).and_then(|v| {
        let mut parts = v.splitn(3, '.');
        let (s, verifier, nonce) = (parts.next()?, parts.next()?, parts.next()?);
        same_secret(&state, s).then(|| (verifier.to_string(), nonce.to_string()))
    }) else {
        return refused(&c, "the state is not this browser's");
    };
    let client = match provider.client().await {
        Ok(cl) => cl,
        Err(e) => return unavailable(&c, &e),
    };
    let http = provider.http();
    let exchange = match client.exchange_code(AuthorizationCode::new(code)) {
        Ok(x) => x,
        Err(e) => return unavailable(&c, &OidcError::Provider(e.to_string())),
    };
    let tokens = match exchange
        .set_pkce_verifier(PkceCodeVerifier::new(verifier))
        .request_async(&http)
        .await
    {
        Ok(t) => t,
        Err(e) => return unavailable(&c, &OidcError::Provider(format!("token: {e}"))),
    };
    let Some(id_token) = tokens.id_token() else {
        return refused(&c, "no ID token");
    };
    let checks = client.id_token_verifier();
    let claims = match id_token.claims(&checks, &Nonce::new(nonce)) {
        Ok(cl) => cl.clone(),
        Err(e) => {
            tracing::warn!(error = %e, "web: an ID token failed its checks");
            return refused(&c, "the ID token failed its checks");
        }
    };
    // The groups: read from the token's payload, whose signature, issuer, audience, expiry
    // and nonce were just checked (the crate's typed claims drop claims it does not know).
    let groups = groups_of(&id_token.to_string(), &provider.config.groups_claim);
    let Some(role) = provider.role(&groups) else {
        return refused(&c, "no group gives a role");
    };
    let who = claims
        .preferred_username()
        .map(|u| u.as_str().to_string())
        .or_else(|| claims.email().map(|e| e.as_str().to_string()))
        .unwrap_or_default();
    let mut identity = format!("oidc:{}", claims.subject().as_str());
    if !who.is_empty() && who != claims.subject().as_str() {
        identity.push_str(&format!(" ({who})"));
    }
    // The audit log takes 200 bytes of a reviewer's identity; cut on a character boundary.
    if identity.len() > 200 {
        let mut end = 200;
        while !identity.is_char_boundary(end) {
            end -= 1;
        }
        identity.truncate(end);
    }
    if let Err(e) = c.begin(identity.clone(), role).await {
        tracing::error!(error = %e, "web: cannot start a session");
        return c.message(
            StatusCode::SERVICE_UNAVAILABLE,
            c.t("error.title"),
            c.t("error.text"),
        );
    }
    tracing::info!(who = %identity, role = role.name(), "web: signed in through the identity provider");
    let mut r = c.page(
        StatusCode::OK,
        c.t("oidc.welcome"),
        &format!(
            "<p role=\"status\">{} {}</p><p><a href=\"/quarantine\">{}</a></p>",
            c.t("oidc.signed"),
            esc(&identity),
            c.t("oidc.continue")
        ),
    );
    r.headers_mut().append(
        header::SET_COOKIE,
        header::HeaderValue::from_static(
            "__Host-sluis-oidc=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0",
        ),
    );
    // A same-site navigation to the list: the session's Strict cookie goes with it.
    r.headers_mut().insert(
        "refresh",
        header::HeaderValue::from_static("0; url=/quarantine"),
    );
    r
}

/// The strings of the claim `name` in a JWT's payload (a list, or one string).
fn groups_of(jwt: &str, name: &str) -> Vec<String> {
    let Some(payload) = jwt.split('.').nth(1) else {
        return Vec::new();
    };
    let Ok(bytes) = data_encoding::BASE64URL_NOPAD.decode(payload.trim_end_matches('=').as_bytes())
    else {
        return Vec::new();
    };
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return Vec::new();
    };
    match &v[name] {
        serde_json::Value::Array(a) => a
            .iter()
            .filter_map(|g| g.as_str().map(String::from))
            .collect(),
        serde_json::Value::String(s) => vec![s.clone()],
        _ => Vec::new(),
    }
}

/// The login page's way to the provider (a link: see the module's comment).
pub fn button(c: &Ctx, name: &str) -> String {
    format!(
        "<p><a class=\"button\" href=\"/oidc/start\">{} {}</a></p>",
        c.t("oidc.login"),
        esc(name)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_come_from_the_named_claim_as_a_list_or_a_string() {
        let enc = |v: serde_json::Value| {
            format!(
                "h.{}.s",
                data_encoding::BASE64URL_NOPAD.encode(v.to_string().as_bytes())
            )
        };
        let t = enc(serde_json::json!({"groups": ["a", "sluis-reviewers", 3], "role": "x"}));
        assert_eq!(groups_of(&t, "groups"), vec!["a", "sluis-reviewers"]);
        assert_eq!(groups_of(&t, "role"), vec!["x"]);
        assert!(groups_of(&t, "none").is_empty());
        assert!(groups_of("garbage", "groups").is_empty());
    }
}
