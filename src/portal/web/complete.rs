//! The sender's completion page (issue 17 point 6): each waiting recipient with a field for
//! a mobile number or an access code; a POST notifies that recipient.

use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;

use super::Current;
use super::pages::{LangQuery, attr, ctx, esc, posted};
use crate::portal::access::AccessError;
use crate::portal::complete::{Completed, Way};

/// The sender's completion page: the waiting recipients, each with a number or a code to give.
pub async fn completion(
    State(p): State<Current>,
    headers: HeaderMap,
    Path((id, token)): Path<(String, String)>,
    Query(q): Query<LangQuery>,
) -> Response {
    let c = ctx(&p, &headers, Some(&q));
    let note = match q.s.as_deref() {
        Some("done") => format!("<p role=\"status\">{}</p>", c.t("complete.done")),
        Some("invalid") => format!("<p role=\"alert\">{}</p>", c.t("complete.invalid")),
        Some("notsent") => format!("<p role=\"alert\">{}</p>", c.t("complete.notsent")),
        _ => String::new(),
    };
    let waiting = match c.portal.completion(&id, &token).await {
        Ok((_, _, w)) => w,
        Err(AccessError::Gone) if q.s.as_deref() == Some("done") => {
            return c.page(
                StatusCode::OK,
                c.t("complete.title"),
                &format!("<p role=\"status\">{}</p>", c.t("complete.none")),
            );
        }
        Err(e) => return c.failed(&e),
    };
    let forms: Vec<String> = waiting
        .iter()
        .enumerate()
        .map(|(n, r)| {
            format!(
                "<form method=\"post\" action=\"/c/{}/{}\"><fieldset><legend>{}</legend>{}\
                 <input type=\"hidden\" name=\"recipient\" value=\"{}\">\
                 <label for=\"phone{n}\">{}</label><input id=\"phone{n}\" name=\"phone\" \
                 type=\"tel\" autocomplete=\"off\">\
                 <label for=\"code{n}\">{}</label><input id=\"code{n}\" name=\"code\" \
                 type=\"text\" autocomplete=\"off\">\
                 <button type=\"submit\">{}</button></fieldset></form>",
                attr(&id),
                attr(&token),
                esc(r),
                c.csrf_field(),
                attr(r),
                c.t("complete.phone"),
                c.t("complete.code"),
                c.t("complete.button"),
            )
        })
        .collect();
    let body = format!("{note}<p>{}</p>{}", c.t("complete.text"), forms.concat());
    c.page(StatusCode::OK, c.t("complete.title"), &body)
}

#[derive(Deserialize)]
pub struct CompleteForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    recipient: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    code: String,
}

pub async fn complete(
    State(p): State<Current>,
    headers: HeaderMap,
    Path((id, token)): Path<(String, String)>,
    Form(f): Form<CompleteForm>,
) -> Response {
    let c = match posted(&p, &headers, &f.csrf) {
        Ok(c) => c,
        Err(refused) => return *refused,
    };
    let way = match (f.phone.trim(), f.code.trim()) {
        ("", "") => return c.see_other(&format!("/c/{id}/{token}?s=invalid"), None),
        (phone, "") => Way::Phone(phone.chars().take(32).collect()),
        (_, code) => Way::AccessCode(code.chars().take(64).collect()),
    };
    let s = match c.portal.complete(&id, &token, &f.recipient, way).await {
        Ok(Completed::Notified) => "done",
        Ok(Completed::Invalid(_)) => "invalid",
        Ok(Completed::NotSent) => "notsent",
        Err(e) => return c.failed(&e),
    };
    c.see_other(&format!("/c/{id}/{token}?s={s}"), None)
}
