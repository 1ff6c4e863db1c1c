//! The login, the logout and what every side has (the stylesheet, the 404). Every page is
//! plain HTML and one stylesheet: no script.

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::Current;
use super::session::{Ctx, person};
use crate::wire::web::{attr, esc};

const CSS: &str = include_str!("review.css");

#[derive(Deserialize, Default)]
pub struct LangQuery {
    pub lang: Option<String>,
}

pub async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        CSS,
    )
        .into_response()
}

pub async fn index(State(web): State<Current>, headers: HeaderMap) -> Response {
    match person(&web, &headers, None).await {
        Ok(c) => c.redirect("/quarantine"),
        Err(r) => *r,
    }
}

pub async fn not_found(State(web): State<Current>, headers: HeaderMap) -> Response {
    let c = Ctx::new(&web, &headers, None);
    c.message(
        StatusCode::NOT_FOUND,
        c.t("notfound.title"),
        c.t("notfound.text"),
    )
}

fn login_form(c: &Ctx, name: &str, error: Option<&str>) -> String {
    let alert = error
        .map(|e| format!("<p role=\"alert\" id=\"login-error\">{}</p>", esc(e)))
        .unwrap_or_default();
    let described = if error.is_some() {
        " aria-describedby=\"login-error\""
    } else {
        ""
    };
    format!(
        "{alert}<form method=\"post\" action=\"/login\">{csrf}\
         <label for=\"name\">{l_name}</label>\
         <input type=\"text\" id=\"name\" name=\"name\" autocomplete=\"username\" required value=\"{name}\"{described}>\
         <label for=\"password\">{l_password}</label>\
         <input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\" required>\
         <label for=\"code\">{l_code}</label>\
         <input type=\"text\" id=\"code\" name=\"code\" inputmode=\"numeric\" autocomplete=\"one-time-code\" \
         pattern=\"[0-9 ]{{6,8}}\" required>\
         <button type=\"submit\">{submit}</button></form>",
        csrf = c.csrf_field(),
        l_name = c.t("login.name"),
        l_password = c.t("login.password"),
        l_code = c.t("login.code"),
        name = attr(name),
        submit = c.t("login.submit"),
    )
}

pub async fn login_page(
    State(web): State<Current>,
    headers: HeaderMap,
    Query(q): Query<LangQuery>,
) -> Response {
    let mut c = Ctx::new(&web, &headers, q.lang.as_deref());
    if c.signed_in(&headers).await.is_some() {
        return c.redirect("/quarantine");
    }
    c.page(
        StatusCode::OK,
        c.t("login.title"),
        &login_body(&c, "", None),
    )
}

/// The provider's button (when configured), then the local accounts' form (when there are).
fn login_body(c: &Ctx, name: &str, error: Option<&str>) -> String {
    let mut body = String::new();
    if let Some(p) = &c.web.oidc {
        body.push_str(&super::oidc::button(c, p.name()));
    }
    if c.web.config.users_file.is_some() {
        if !body.is_empty() {
            body.push_str(&format!("<h2>{}</h2>", c.t("login.local")));
        }
        body.push_str(&login_form(c, name, error));
    }
    body
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    code: String,
}

pub async fn login(
    State(web): State<Current>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let mut c = Ctx::new(&web, &headers, None);
    if !crate::wire::web::csrf_ok(&headers, super::session::CSRF_COOKIE, &f.csrf) {
        return c.csrf_refused();
    }
    let refuse = |c: &Ctx, status: StatusCode, why: &str| {
        c.page(
            status,
            c.t("login.title"),
            &login_body(c, &f.name, Some(why)),
        )
    };
    if !super::users::valid_name(&f.name) || f.password.len() > 1024 || f.code.len() > 16 {
        return refuse(&c, StatusCode::UNAUTHORIZED, c.t("login.wrong"));
    }
    match c.may_try(&f.name).await {
        Ok(true) => {}
        Ok(false) => return refuse(&c, StatusCode::TOO_MANY_REQUESTS, c.t("login.locked")),
        Err(e) => {
            tracing::error!(error = %e, "web: cannot check a login's failures");
            return refuse(&c, StatusCode::SERVICE_UNAVAILABLE, c.t("error.text"));
        }
    }
    // argon2 is slow by design: off the async threads, and only a few at once.
    let checked = {
        let Ok(_permit) = c.web.checks.clone().acquire_owned().await else {
            return refuse(&c, StatusCode::SERVICE_UNAVAILABLE, c.t("error.text"));
        };
        let (users, name, password, code) = (
            c.web.users.clone(),
            f.name.clone(),
            f.password.clone(),
            f.code.clone(),
        );
        tokio::task::spawn_blocking(move || {
            users.check(&name, &password, &code, crate::store::now_unix())
        })
        .await
        .ok()
        .flatten()
    };
    let Some((role, step)) = checked else {
        c.failed(&f.name).await;
        tracing::info!("web: a failed login");
        return refuse(&c, StatusCode::UNAUTHORIZED, c.t("login.wrong"));
    };
    match c.use_step(&f.name, step).await {
        Ok(true) => {}
        Ok(false) => {
            c.failed(&f.name).await;
            return refuse(&c, StatusCode::UNAUTHORIZED, c.t("login.reused"));
        }
        Err(e) => {
            tracing::error!(error = %e, "web: cannot record a code's use");
            return refuse(&c, StatusCode::SERVICE_UNAVAILABLE, c.t("error.text"));
        }
    }
    let identity = format!("local:{}", f.name);
    if let Err(e) = c.begin(identity.clone(), role).await {
        tracing::error!(error = %e, "web: cannot start a session");
        return refuse(&c, StatusCode::SERVICE_UNAVAILABLE, c.t("error.text"));
    }
    tracing::info!(who = %identity, role = role.name(), "web: signed in");
    c.redirect("/quarantine")
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

pub async fn logout(
    State(web): State<Current>,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Response {
    let mut c = Ctx::new(&web, &headers, None);
    if !crate::wire::web::csrf_ok(&headers, super::session::CSRF_COOKIE, &f.csrf) {
        return c.csrf_refused();
    }
    c.end(&headers).await;
    c.redirect("/login")
}
