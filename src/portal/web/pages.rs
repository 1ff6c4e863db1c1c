//! The recipient's and the sender's pages. A GET never changes anything (link scanners fetch
//! links); codes are sent, visits begun and recipients notified only on a POST from a page,
//! with its CSRF token. Every page is plain HTML and one stylesheet: no script.

use std::sync::Arc;

use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use serde::Deserialize;

use super::text::Lang;
use super::{CSRF_COOKIE, Current, LANG_COOKIE, VISIT_COOKIE, cookie, set_cookie};
use crate::portal::access::{AccessError, CodeChecked, CodeSent, Visit};

use crate::portal::mail::date;
use crate::portal::seal::MessageKey;
use crate::portal::service::Portal;

const CSS: &str = include_str!("portal.css");

pub(super) use crate::wire::web::{attr, esc};

/// What every page needs: the portal, the language, the CSRF token (and its cookie, when new).
pub(super) struct Ctx {
    pub(super) portal: Arc<Portal>,
    pub(super) lang: Lang,
    csrf: String,
    cookies: Vec<String>,
}

#[derive(Deserialize, Default)]
pub(super) struct LangQuery {
    pub(super) lang: Option<String>,
    pub(super) s: Option<String>,
    pub(super) n: Option<u64>,
}

pub(super) fn ctx(portal: &Current, headers: &HeaderMap, query: Option<&LangQuery>) -> Ctx {
    let portal = portal.borrow().clone();
    let mut cookies = Vec::new();
    let chosen = query.and_then(|q| q.lang.as_deref()).and_then(Lang::parse);
    if let Some(l) = chosen {
        cookies.push(set_cookie(LANG_COOKIE, l.code(), Some(365 * 24 * 3600)));
    }
    let lang = chosen
        .or_else(|| cookie(headers, LANG_COOKIE).and_then(Lang::parse))
        .or_else(|| Lang::parse(&portal.config.language))
        .unwrap_or(Lang::Nl);
    let csrf = match cookie(headers, CSRF_COOKIE).filter(|c| c.len() == 43) {
        Some(c) => c.to_string(),
        None => {
            let token = crate::portal::seal::new_secret()
                .map(|(s, _)| s.0)
                .unwrap_or_default();
            cookies.push(set_cookie(CSRF_COOKIE, &token, None));
            token
        }
    };
    Ctx {
        portal,
        lang,
        csrf,
        cookies,
    }
}

/// The context of a form's POST, once its CSRF token is the cookie's; the refusal otherwise.
pub(super) fn posted(
    portal: &Current,
    headers: &HeaderMap,
    csrf: &str,
) -> Result<Ctx, Box<Response>> {
    let c = ctx(portal, headers, None);
    if Ctx::csrf_ok(headers, csrf) {
        Ok(c)
    } else {
        Err(Box::new(c.csrf_refused()))
    }
}

impl Ctx {
    pub(super) fn t(&self, key: &str) -> &'static str {
        super::text::t(self.lang, key)
    }

    pub(super) fn csrf_field(&self) -> String {
        format!(
            "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
            attr(&self.csrf)
        )
    }

    /// Whether a form's token is the cookie's (compared as digests: constant time).
    pub(super) fn csrf_ok(headers: &HeaderMap, given: &str) -> bool {
        crate::wire::web::csrf_ok(headers, CSRF_COOKIE, given)
    }

    pub(super) fn page(&self, status: StatusCode, title: &str, body: &str) -> Response {
        let org = esc(&self.portal.config.organisation);
        let other = self.lang.other();
        let html = format!(
            "<!DOCTYPE html>\n<html lang=\"{lang}\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{title} - {org}</title><link rel=\"stylesheet\" href=\"/static/portal.css\">\
             </head><body><header><p class=\"org\">{org} &middot; {portal}</p>\
             <nav aria-label=\"{lang_label}\"><a href=\"?lang={other_code}\" lang=\"{other_code}\" \
             hreflang=\"{other_code}\">{switch}</a></nav></header><main><h1>{title}</h1>{body}\
             </main></body></html>",
            lang = self.lang.code(),
            title = esc(title),
            portal = esc(self.t("portal")),
            lang_label = if self.lang == Lang::Nl {
                "Taal"
            } else {
                "Language"
            },
            other_code = other.code(),
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

    pub(super) fn gone(&self) -> Response {
        self.page(
            StatusCode::NOT_FOUND,
            self.t("gone.title"),
            &format!("<p>{}</p>", self.t("gone.text")),
        )
    }

    pub(super) fn failed(&self, e: &AccessError) -> Response {
        match e {
            AccessError::Gone => self.gone(),
            AccessError::Portal(e) => {
                tracing::error!(error = %e, "portal request failed");
                self.page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    self.t("error.title"),
                    &format!("<p>{}</p>", self.t("error.text")),
                )
            }
        }
    }

    pub(super) fn csrf_refused(&self) -> Response {
        self.page(
            StatusCode::FORBIDDEN,
            self.t("csrf.title"),
            &format!("<p>{}</p>", self.t("csrf.text")),
        )
    }

    pub(super) fn session_over(&self) -> Response {
        self.page(
            StatusCode::UNAUTHORIZED,
            self.t("session.title"),
            &format!("<p>{}</p>", self.t("session.text")),
        )
    }

    /// 303 to `to`, with any cookies (the visit's, a new CSRF token's).
    pub(super) fn see_other(&self, to: &str, extra: Option<String>) -> Response {
        let mut r = (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_string())]).into_response();
        for c in self.cookies.iter().chain(extra.as_ref()) {
            if let Ok(v) = c.parse() {
                r.headers_mut().append(header::SET_COOKIE, v);
            }
        }
        r
    }
}

pub async fn index(
    State(p): State<Current>,
    headers: HeaderMap,
    Query(q): Query<LangQuery>,
) -> Response {
    let c = ctx(&p, &headers, Some(&q));
    c.page(
        StatusCode::OK,
        c.t("index.title"),
        &format!("<p>{}</p>", c.t("index.text")),
    )
}

pub async fn not_found(State(p): State<Current>, headers: HeaderMap) -> Response {
    ctx(&p, &headers, None).gone()
}

pub async fn stylesheet() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS).into_response()
}

/// The link's page: who sent what until when, and one button. Fetching it changes nothing.
pub async fn landing(
    State(p): State<Current>,
    headers: HeaderMap,
    Path((id, link)): Path<(String, String)>,
    Query(q): Query<LangQuery>,
) -> Response {
    let c = ctx(&p, &headers, Some(&q));
    let l = match c.portal.landing(&id, &link).await {
        Ok(l) => l,
        Err(e) => return c.failed(&e),
    };
    let lang = c.lang.code();
    let how = match (l.method, &l.hint) {
        ("sms", Some(h)) => format!("<p>{} <strong>{}</strong>.</p>", c.t("landing.sms"), esc(h)),
        ("email", _) => format!("<p>{}</p>", c.t("landing.email")),
        _ => format!("<p>{}</p>", c.t("landing.access")),
    };
    let button = if l.method == "access-code" {
        c.t("landing.button.continue")
    } else {
        c.t("landing.button.send")
    };
    let body = format!(
        "<dl><dt>{}</dt><dd>{}</dd><dt>{}</dt><dd>{}</dd><dt>{}</dt><dd>{}</dd></dl>{how}\
         <form method=\"post\" action=\"/r/{}/{}\">{}<button type=\"submit\">{button}</button>\
         </form>",
        c.t("landing.from"),
        esc(&format!(
            "{} ({})",
            l.meta.sender_name, c.portal.config.organisation
        )),
        c.t("landing.sent"),
        esc(&date(created_unix(&l.meta.created), lang)),
        c.t("landing.until"),
        esc(&date(l.expires, lang)),
        attr(&id),
        attr(&link),
        c.csrf_field(),
    );
    c.page(StatusCode::OK, c.t("landing.title"), &body)
}

fn created_unix(rfc3339: &str) -> u64 {
    humantime::parse_rfc3339(rfc3339)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// The POST from the link's page: the visit begins and the code goes out.
pub async fn begin(
    State(p): State<Current>,
    headers: HeaderMap,
    Path((id, link)): Path<(String, String)>,
    Form(f): Form<CsrfForm>,
) -> Response {
    let c = match posted(&p, &headers, &f.csrf) {
        Ok(c) => c,
        Err(refused) => return *refused,
    };
    match c.portal.begin(&id, &link).await {
        Ok((secret, sent)) => {
            let visit = set_cookie(VISIT_COOKIE, &secret, None);
            c.see_other(&format!("/code?s={}", sent_name(&sent)), Some(visit))
        }
        Err(e) => c.failed(&e),
    }
}

fn sent_name(s: &CodeSent) -> String {
    match s {
        CodeSent::Sent => "sent".into(),
        CodeSent::NotNeeded => "access".into(),
        CodeSent::TooMany(at) => format!("toomany&n={at}"),
        CodeSent::Locked => "locked".into(),
        CodeSent::Failed => "failed".into(),
    }
}

pub(super) async fn current_visit(
    c: &Ctx,
    headers: &HeaderMap,
) -> Result<Option<(Visit, MessageKey)>, AccessError> {
    match cookie(headers, VISIT_COOKIE) {
        Some(secret) => c.portal.visit(secret).await,
        None => Ok(None),
    }
}

/// The code form, with what happened last (sent, wrong, too many...).
pub async fn code_page(
    State(p): State<Current>,
    headers: HeaderMap,
    Query(q): Query<LangQuery>,
) -> Response {
    let c = ctx(&p, &headers, Some(&q));
    let visit = match current_visit(&c, &headers).await {
        Ok(Some((v, _))) => v,
        Ok(None) => return c.session_over(),
        Err(e) => return c.failed(&e),
    };
    if visit.open {
        return c.see_other("/message", None);
    }
    let note = match q.s.as_deref() {
        Some("sent") => format!("<p role=\"status\">{}</p>", c.t("code.sent")),
        Some("toomany") => format!(
            "<p role=\"alert\">{} {}.</p>",
            c.t("code.toomany"),
            esc(&clock(q.n.unwrap_or_default()))
        ),
        Some("failed") => format!("<p role=\"alert\">{}</p>", c.t("code.failed")),
        Some("expired") => format!("<p role=\"alert\">{}</p>", c.t("code.expired")),
        Some("locked") => return locked(&c),
        _ => String::new(),
    };
    c.page(
        StatusCode::OK,
        c.t("code.title"),
        &code_form(&c, &visit, &note),
    )
}

fn clock(unix: u64) -> String {
    let t = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix),
    )
    .to_string();
    format!("{} {} UTC", &t[..10], &t[11..16])
}

fn code_form(c: &Ctx, visit: &Visit, note: &str) -> String {
    let access = visit.method == "access-code";
    let (label, input) = if access {
        (
            c.t("code.access.label"),
            "<input id=\"code\" name=\"code\" type=\"text\" autocomplete=\"off\" required>",
        )
    } else {
        (
            c.t("code.label"),
            "<input id=\"code\" name=\"code\" type=\"text\" inputmode=\"numeric\" \
             autocomplete=\"one-time-code\" pattern=\"[0-9 ]*\" required>",
        )
    };
    let resend = if access {
        String::new()
    } else {
        format!(
            "<form method=\"post\" action=\"/code/resend\">{}<button type=\"submit\" \
             class=\"secondary\">{}</button></form>",
            c.csrf_field(),
            c.t("code.resend")
        )
    };
    format!(
        "{note}<form method=\"post\" action=\"/code\">{}<label for=\"code\">{label}</label>\
         {input}<button type=\"submit\">{}</button></form>{resend}",
        c.csrf_field(),
        c.t("code.button"),
    )
}

fn locked(c: &Ctx) -> Response {
    c.page(
        StatusCode::FORBIDDEN,
        c.t("locked.title"),
        &format!("<p>{}</p>", c.t("locked.text")),
    )
}

#[derive(Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    code: String,
}

pub async fn check_code(
    State(p): State<Current>,
    headers: HeaderMap,
    Form(f): Form<CodeForm>,
) -> Response {
    let c = match posted(&p, &headers, &f.csrf) {
        Ok(c) => c,
        Err(refused) => return *refused,
    };
    let Some(secret) = cookie(&headers, VISIT_COOKIE) else {
        return c.session_over();
    };
    let visit = match c.portal.visit(secret).await {
        Ok(Some((v, _))) => v,
        Ok(None) => return c.session_over(),
        Err(e) => return c.failed(&e),
    };
    let code: String = f.code.chars().take(64).collect();
    match c.portal.check_code(secret, visit.clone(), &code).await {
        Ok(CodeChecked::Open) => c.see_other("/message", None),
        Ok(CodeChecked::Wrong(left)) => {
            let note = format!("<p role=\"alert\">{} {left}</p>", c.t("code.wrong"));
            c.page(
                StatusCode::OK,
                c.t("code.title"),
                &code_form(&c, &visit, &note),
            )
        }
        Ok(CodeChecked::Expired) => c.see_other("/code?s=expired", None),
        Ok(CodeChecked::Busy) => {
            let note = format!("<p role=\"alert\">{}</p>", c.t("code.busy"));
            c.page(
                StatusCode::OK,
                c.t("code.title"),
                &code_form(&c, &visit, &note),
            )
        }
        Ok(CodeChecked::Locked) => locked(&c),
        Err(e) => c.failed(&e),
    }
}

pub async fn resend(
    State(p): State<Current>,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Response {
    let c = match posted(&p, &headers, &f.csrf) {
        Ok(c) => c,
        Err(refused) => return *refused,
    };
    let Some(secret) = cookie(&headers, VISIT_COOKIE) else {
        return c.session_over();
    };
    match c.portal.resend(secret).await {
        Ok(sent) => c.see_other(&format!("/code?s={}", sent_name(&sent)), None),
        Err(e) => c.failed(&e),
    }
}

pub async fn logout(
    State(p): State<Current>,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Response {
    let c = match posted(&p, &headers, &f.csrf) {
        Ok(c) => c,
        Err(refused) => return *refused,
    };
    if let Some(secret) = cookie(&headers, VISIT_COOKIE)
        && let Err(e) = c.portal.end(secret).await
    {
        return c.failed(&e);
    }
    let mut r = c.page(StatusCode::OK, c.t("logout.title"), "");
    if let Ok(v) = set_cookie(VISIT_COOKIE, "", Some(0)).parse() {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}
