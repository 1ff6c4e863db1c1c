//! Logins: a session in the store under a hash of its cookie's secret (so the store alone
//! opens none), ending when idle for `web.session_idle` or at logout; failed logins counted
//! per account (10 in 15 minutes lock it for the rest of the window); a TOTP code accepted
//! once. The page context: language, CSRF token (double submit), the person signed in.

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::Web;
use super::text::t;
use super::users::Role;
use crate::wire::web::{Lang, attr, cookie, esc, new_token, set_cookie};

pub const SESSION_COOKIE: &str = "__Host-sluis-review";
pub const CSRF_COOKIE: &str = "__Host-sluis-review-csrf";
pub const LANG_COOKIE: &str = "__Host-sluis-review-lang";

/// Failed logins per account in a window before the account is locked for the rest of it.
const FAILURES: u64 = 10;
const FAILURE_WINDOW: std::time::Duration = std::time::Duration::from_secs(15 * 60);
/// A session is written again (its idle time renewed) at most this often.
const RENEW_AFTER: u64 = 30;

/// The person signed in: what the audit log records of them, and their role.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Person {
    /// `local:alice` (or, with an identity provider, the provider's subject).
    pub identity: String,
    pub role: Role,
    #[serde(default)]
    renewed: u64,
}

fn hex(b: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(b)
}

fn digest(s: &str) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, s.as_bytes()).as_ref())
}

fn session_key(secret: &str) -> String {
    format!("rv-{}", digest(secret))
}

/// Store keys about an account, without its name in them.
fn account_key(prefix: &str, name: &str) -> String {
    format!("{prefix}-{}", &digest(name)[..32])
}

/// What every page needs: the web side, the language, the CSRF token (and cookies to set).
pub struct Ctx {
    pub web: Arc<Web>,
    pub lang: Lang,
    pub csrf: String,
    pub person: Option<Person>,
    cookies: Vec<String>,
}

impl Ctx {
    pub fn new(web: &super::Current, headers: &HeaderMap, lang_choice: Option<&str>) -> Ctx {
        let web = web.borrow().clone();
        let mut cookies = Vec::new();
        let chosen = lang_choice.and_then(Lang::parse);
        if let Some(l) = chosen {
            cookies.push(set_cookie(LANG_COOKIE, l.code(), Some(365 * 24 * 3600)));
        }
        let lang = chosen
            .or_else(|| cookie(headers, LANG_COOKIE).and_then(Lang::parse))
            .or_else(|| Lang::parse(&web.config.language))
            .unwrap_or(Lang::Nl);
        let csrf = match cookie(headers, CSRF_COOKIE).filter(|c| c.len() == 43) {
            Some(c) => c.to_string(),
            None => {
                let token = new_token().unwrap_or_default();
                cookies.push(set_cookie(CSRF_COOKIE, &token, None));
                token
            }
        };
        Ctx {
            web,
            lang,
            csrf,
            person: None,
            cookies,
        }
    }

    pub fn t(&self, key: &str) -> &'static str {
        t(self.lang, key)
    }

    pub fn csrf_field(&self) -> String {
        format!(
            "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
            attr(&self.csrf)
        )
    }

    /// The person of the request's session cookie, renewing the session's idle time.
    pub async fn signed_in(&mut self, headers: &HeaderMap) -> Option<Person> {
        let secret = cookie(headers, SESSION_COOKIE)?;
        if secret.len() != 43 {
            return None;
        }
        let key = session_key(secret);
        let store = self.web.store();
        let value = store.session(&key).await.ok()??;
        let person: Person = serde_json::from_value(value).ok()?;
        let now = crate::store::now_unix();
        if now.saturating_sub(person.renewed) >= RENEW_AFTER {
            let renewed = Person {
                renewed: now,
                ..person.clone()
            };
            let expires = now + self.web.config.session_idle.as_secs();
            let value = serde_json::to_value(&renewed).ok()?;
            if let Err(e) = store.put_session(&key, &value, expires).await {
                tracing::warn!(error = %e, "web: cannot renew a session");
            }
        }
        self.person = Some(person.clone());
        Some(person)
    }

    /// Starts a session for `person`: its cookie goes out with the next page.
    pub async fn begin(&mut self, identity: String, role: Role) -> Result<(), String> {
        let secret = new_token().ok_or("no randomness")?;
        let now = crate::store::now_unix();
        let person = Person {
            identity,
            role,
            renewed: now,
        };
        let value = serde_json::to_value(&person).map_err(|e| e.to_string())?;
        self.web
            .store()
            .put_session(
                &session_key(&secret),
                &value,
                now + self.web.config.session_idle.as_secs(),
            )
            .await
            .map_err(|e| e.to_string())?;
        self.cookies.push(set_cookie(SESSION_COOKIE, &secret, None));
        // A new CSRF token with the new session: a token seen before the login is worth
        // nothing after it.
        if let Some(token) = new_token() {
            self.cookies.push(set_cookie(CSRF_COOKIE, &token, None));
        }
        self.person = Some(person);
        Ok(())
    }

    /// Ends the request's session.
    pub async fn end(&mut self, headers: &HeaderMap) {
        if let Some(secret) = cookie(headers, SESSION_COOKIE).filter(|s| s.len() == 43) {
            let _ = self.web.store().drop_session(&session_key(secret)).await;
        }
        self.cookies.push(set_cookie(SESSION_COOKIE, "", Some(0)));
    }

    /// Whether `name` may try to log in now (not locked by [`FAILURES`] failures in the
    /// window).
    pub async fn may_try(&self, name: &str) -> Result<bool, String> {
        let locked = self
            .web
            .store()
            .session(&account_key("ll", name))
            .await
            .map_err(|e| e.to_string())?;
        Ok(locked.is_none())
    }

    /// Counts a failed login of `name`; the last one allowed locks the account until the
    /// window ends.
    pub async fn failed(&self, name: &str) {
        let store = self.web.store();
        match store.hit(&account_key("lf", name), FAILURE_WINDOW).await {
            Ok(n) if n >= FAILURES => {
                let w = FAILURE_WINDOW.as_secs();
                let until = (crate::store::now_unix() / w + 1) * w;
                tracing::warn!("web: an account is locked after {n} failed logins");
                if let Err(e) = store
                    .put_session(&account_key("ll", name), &serde_json::json!(true), until)
                    .await
                {
                    tracing::warn!(error = %e, "web: cannot lock an account");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "web: cannot count a failed login"),
        }
    }

    /// Records that `name` used TOTP step `step`; false when it (or a later one) was used
    /// already (a code works once).
    pub async fn use_step(&self, name: &str, step: u64) -> Result<bool, String> {
        let key = account_key("tu", name);
        let store = self.web.store();
        let used = store
            .session(&key)
            .await
            .map_err(|e| e.to_string())?
            .and_then(|v| v.as_u64());
        if used.is_some_and(|u| u >= step) {
            return Ok(false);
        }
        store
            .put_session(
                &key,
                &serde_json::json!(step),
                crate::store::now_unix() + 300,
            )
            .await
            .map_err(|e| e.to_string())?;
        Ok(true)
    }

    pub fn page(&self, status: StatusCode, title: &str, body: &str) -> Response {
        let other = self.lang.other();
        let who = match &self.person {
            Some(p) => format!(
                "<a href=\"/quarantine\">{}</a><a href=\"/audit\">{}</a>\
                 <span class=\"who\">{} ({})</span><form method=\"post\" action=\"/logout\">{}\
                 <button type=\"submit\" class=\"link\">{}</button></form>",
                self.t("nav.quarantine"),
                self.t("nav.audit"),
                esc(&p.identity),
                esc(p.role.name()),
                self.csrf_field(),
                self.t("logout"),
            ),
            None => String::new(),
        };
        let html = format!(
            "<!DOCTYPE html>\n<html lang=\"{lang}\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{title} - Sluis</title><link rel=\"stylesheet\" href=\"/static/review.css\">\
             </head><body><header><p class=\"org\"><a href=\"/quarantine\">Sluis</a> &middot; {app}</p>\
             <nav aria-label=\"{menu}\">{who}<a href=\"?lang={oc}\" lang=\"{oc}\" hreflang=\"{oc}\">{switch}</a></nav>\
             </header><main><h1>{title}</h1>{body}</main></body></html>",
            lang = self.lang.code(),
            title = esc(title),
            app = self.t("app"),
            menu = self.t("menu"),
            oc = other.code(),
            switch = self.t("switch"),
        );
        let mut r = (status, axum::response::Html(html)).into_response();
        for c in &self.cookies {
            if let Ok(v) = c.parse() {
                r.headers_mut().append(header::SET_COOKIE, v);
            }
        }
        r
    }

    pub fn redirect(&self, to: &str) -> Response {
        let mut r = (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_string())]).into_response();
        for c in &self.cookies {
            if let Ok(v) = c.parse() {
                r.headers_mut().append(header::SET_COOKIE, v);
            }
        }
        r
    }

    pub fn message(&self, status: StatusCode, title: &str, text: &str) -> Response {
        self.page(
            status,
            title,
            &format!("<p role=\"alert\">{}</p>", esc(text)),
        )
    }

    pub fn forbidden(&self) -> Response {
        self.message(
            StatusCode::FORBIDDEN,
            self.t("forbidden.title"),
            self.t("forbidden.text"),
        )
    }

    pub fn csrf_refused(&self) -> Response {
        self.message(
            StatusCode::FORBIDDEN,
            self.t("csrf.title"),
            self.t("csrf.text"),
        )
    }
}

/// The context of a page for someone signed in (any role); the way to the login otherwise.
pub async fn person(
    web: &super::Current,
    headers: &HeaderMap,
    lang: Option<&str>,
) -> Result<Ctx, Box<Response>> {
    let mut c = Ctx::new(web, headers, lang);
    match c.signed_in(headers).await {
        Some(_) => Ok(c),
        None => Err(Box::new(c.redirect("/login"))),
    }
}

/// The context of a form's POST by someone whose role acts on held mail, with the form's
/// CSRF token; 303 to the login, 403 (no such role, or no valid token) otherwise.
pub async fn acting(
    web: &super::Current,
    headers: &HeaderMap,
    csrf: &str,
) -> Result<Ctx, Box<Response>> {
    let c = person(web, headers, None).await?;
    if !crate::wire::web::csrf_ok(headers, CSRF_COOKIE, csrf) {
        return Err(Box::new(c.csrf_refused()));
    }
    if !c.person.as_ref().is_some_and(|p| p.role.acts()) {
        return Err(Box::new(c.forbidden()));
    }
    Ok(c)
}
