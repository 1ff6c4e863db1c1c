//! What a reviewer does to a held item, each with a reason and the form's CSRF token, for a
//! role that acts: show the original (audited before anything is shown), release, reject.
//! Every audit record carries the identity of the login, never a name typed into a form.

use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;

use super::Current;
use super::item::{load, store_error};
use super::preview::{header_block, preview};
use super::session::{Ctx, acting};
use crate::audit::record::Record;
use crate::quarantine::review::{ReviewError, review_record};
use crate::wire::web::{attr, esc};

#[derive(Deserialize)]
pub struct ReasonForm {
    #[serde(default)]
    pub(super) csrf: String,
    #[serde(default)]
    pub(super) reason: String,
}

/// The identity of the login acting (what the audit log records).
pub(super) fn identity(c: &Ctx) -> String {
    c.person
        .as_ref()
        .map(|p| p.identity.clone())
        .unwrap_or_default()
}

/// Shows the original headers and text: a separate act, with a reason, audited before
/// anything is shown.
pub async fn reveal(
    State(web): State<Current>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<ReasonForm>,
) -> Response {
    let c = match acting(&web, &headers, &f.csrf).await {
        Ok(c) => c,
        Err(r) => return *r,
    };
    if f.reason.trim().is_empty() || f.reason.len() > 2000 {
        return c.message(
            StatusCode::BAD_REQUEST,
            c.t("reveal.title"),
            c.t("item.noreason"),
        );
    }
    let (item, raw) = match load(&c, &id).await {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let record = Record::Review(review_record(
        "reveal",
        &item,
        &identity(&c),
        f.reason.trim(),
    ));
    if let Err(e) = c.web.reviewer.audit.append_async(&[record]).await {
        return store_error(&c, &e.into());
    }
    let p = preview(&raw, false);
    let cut = if p.cut { c.t("reveal.cut") } else { "" };
    let body = format!(
        "<p role=\"status\">{}</p><h2>{}</h2><pre class=\"headers\">{}</pre><h2>{}</h2>\
         <pre class=\"body\">{}</pre><p>{cut}</p><p><a href=\"/quarantine/{}\">{}</a></p>",
        c.t("reveal.audited"),
        c.t("reveal.headers"),
        esc(&header_block(&raw)),
        c.t("reveal.text"),
        esc(&p.text),
        attr(&item.id),
        c.t("item.back"),
    );
    c.page(
        StatusCode::OK,
        &format!("{} {}", c.t("reveal.title"), item.id),
        &body,
    )
}

pub async fn release(
    State(web): State<Current>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<ReasonForm>,
) -> Response {
    let c = match acting(&web, &headers, &f.csrf).await {
        Ok(c) => c,
        Err(r) => return *r,
    };
    match c
        .web
        .reviewer
        .release(&id, &identity(&c), f.reason.trim())
        .await
    {
        Ok(done) => {
            c.web.listing.forget(&id);
            let mut body = String::from("<ul>");
            for l in &done.delivered {
                let what = if l.ok {
                    c.t("release.accepted")
                } else {
                    c.t("release.failed")
                };
                body.push_str(&format!(
                    "<li>{}: {what} <strong>{}</strong> ({} {:?}): {}</li>",
                    esc(&l.recipients.join(", ")),
                    esc(&l.lane),
                    c.t("release.level"),
                    l.level,
                    esc(&l.reply),
                ));
            }
            body.push_str("</ul>");
            let pending = done.delivered.iter().any(|l| l.ok && l.report_awaited);
            if pending {
                body.push_str(&format!("<p>{}</p>", c.t("release.pending")));
            }
            if !done.still_held.is_empty() {
                body.push_str(&format!(
                    "<p role=\"alert\">{} {}</p>",
                    c.t("release.still"),
                    esc(&done.still_held.join(", "))
                ));
            }
            body.push_str(&format!(
                "<p><a href=\"/quarantine\">{}</a></p>",
                c.t("item.tolist")
            ));
            let status = if done.still_held.is_empty() {
                StatusCode::OK
            } else {
                StatusCode::BAD_GATEWAY
            };
            c.page(status, c.t("release.title"), &body)
        }
        // The truth (the recipient's server cannot meet the level), and the portal offered
        // where there is one.
        Err(ReviewError::Refused(why)) if c.web.portal.is_some() => c.page(
            StatusCode::CONFLICT,
            c.t("item.refused"),
            &format!(
                "<p role=\"alert\">{}</p><p>{}</p>{}",
                esc(&why),
                c.t("portal.offer"),
                super::item::action_form(
                    &c,
                    &id,
                    "portal",
                    c.t("portal.title"),
                    c.t("portal.button"),
                    ""
                ),
            ),
        ),
        Err(e) => store_error(&c, &e),
    }
}

pub async fn reject(
    State(web): State<Current>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<ReasonForm>,
) -> Response {
    let c = match acting(&web, &headers, &f.csrf).await {
        Ok(c) => c,
        Err(r) => return *r,
    };
    match c
        .web
        .reviewer
        .reject(&id, &identity(&c), f.reason.trim())
        .await
    {
        Ok(()) => {
            c.web.listing.forget(&id);
            c.page(
                StatusCode::OK,
                c.t("reject.title"),
                &format!(
                    "<p role=\"status\">{}</p><p><a href=\"/quarantine\">{}</a></p>",
                    c.t("reject.done"),
                    c.t("item.tolist")
                ),
            )
        }
        Err(e) => store_error(&c, &e),
    }
}
