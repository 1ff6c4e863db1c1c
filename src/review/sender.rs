//! The sender's pages (issue 18 point 4), reached by the signed, expiring link in the hold
//! notice (`quarantine::link`), no login: where the held message stands; report that it holds
//! no patient data (recorded on the item for the reviewers, audited, counted in
//! `sluis_quarantine_reviews_total{action="false-positive"}`); and, where every held
//! recipient's rule has `allow_override`, send it anyway with a justification: a release like
//! a reviewer's (the recipient's server re-checked, the truth told), audited as
//! `sender:<address>`. A link opens its own item only, and stops at expiry or once the item
//! is decided.

use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;

use super::Current;
use super::session::{CSRF_COOKIE, Ctx};
use crate::audit::record::Record;
use crate::quarantine::review::ReviewError;
use crate::quarantine::review::review_record;
use crate::quarantine::{Item, SenderReport, StoreError};
use crate::wire::web::{attr, esc};

/// Reports one item keeps at most.
const MAX_REPORTS: usize = 5;

/// The item of a valid link, or the page that says why there is none.
async fn opened(c: &Ctx, id: &str, token: &str) -> Result<Item, Box<Response>> {
    let Some(links) = &c.web.links else {
        return Err(Box::new(c.message(
            StatusCode::NOT_FOUND,
            c.t("notfound.title"),
            c.t("notfound.text"),
        )));
    };
    match links.check(id, token, crate::store::now_unix()) {
        Ok(_) => {}
        Err(true) => {
            return Err(Box::new(c.message(
                StatusCode::GONE,
                c.t("sender.title"),
                c.t("sender.expired"),
            )));
        }
        Err(false) => {
            return Err(Box::new(c.message(
                StatusCode::NOT_FOUND,
                c.t("notfound.title"),
                c.t("sender.invalid"),
            )));
        }
    }
    match c.web.reviewer.store.get(id).await {
        Ok(item) if !item.recipients.is_empty() => Ok(item),
        Ok(_) | Err(StoreError::NotFound(_) | StoreError::Settled { .. }) => Err(Box::new(
            c.message(StatusCode::GONE, c.t("sender.title"), c.t("sender.decided")),
        )),
        Err(e) => Err(Box::new(super::item::store_error(c, &e.into()))),
    }
}

/// A form's POST through a link: its CSRF token, then the link's item.
async fn posted(
    web: &Current,
    headers: &HeaderMap,
    csrf: &str,
    id: &str,
    token: &str,
) -> Result<(Ctx, Item), Box<Response>> {
    let c = Ctx::new(web, headers, None);
    if !crate::wire::web::csrf_ok(headers, CSRF_COOKIE, csrf) {
        return Err(Box::new(c.csrf_refused()));
    }
    let item = opened(&c, id, token).await?;
    Ok((c, item))
}

fn may_override(item: &Item) -> bool {
    !item.recipients.is_empty() && item.recipients.iter().all(|r| r.allow_override)
}

pub async fn status(
    State(web): State<Current>,
    headers: HeaderMap,
    Path((id, token)): Path<(String, String)>,
) -> Response {
    let c = Ctx::new(&web, &headers, None);
    let item = match opened(&c, &id, &token).await {
        Ok(i) => i,
        Err(r) => return *r,
    };
    let mut body = format!(
        "<p>{} <strong>{}</strong> &middot; {} {}</p><h2>{}</h2><ul>",
        c.t("sender.reference"),
        esc(&item.id),
        c.t("item.held"),
        esc(&item.created),
        c.t("sender.held"),
    );
    for r in &item.recipients {
        body.push_str(&format!(
            "<li>{}: {}</li>",
            esc(&r.address),
            esc(&r.reasons.join("; "))
        ));
    }
    body.push_str("</ul>");
    if !item.findings.is_empty() {
        body.push_str(&format!("<h2>{}</h2><ul>", c.t("item.findings")));
        for f in &item.findings {
            body.push_str(&format!("<li>{}</li>", esc(f)));
        }
        body.push_str("</ul>");
    }
    let base = format!("/s/{}/{}", attr(&item.id), attr(&token));
    if item.sender_reports.is_empty() {
        body.push_str(&format!(
            "<form method=\"post\" action=\"{base}/report\">{}<fieldset><legend>{}</legend>\
             <label for=\"comment\">{}</label><input type=\"text\" id=\"comment\" name=\"comment\" \
             required maxlength=\"1000\"><button type=\"submit\" class=\"secondary\">{}</button>\
             </fieldset></form>",
            c.csrf_field(),
            c.t("sender.report"),
            c.t("sender.comment"),
            c.t("sender.report.button"),
        ));
    } else {
        body.push_str(&format!(
            "<p role=\"status\">{}</p>",
            c.t("sender.reported")
        ));
    }
    if may_override(&item) {
        body.push_str(&format!(
            "<form method=\"post\" action=\"{base}/override\">{}<fieldset><legend>{}</legend>\
             <p>{}</p><label for=\"justification\">{}</label><input type=\"text\" \
             id=\"justification\" name=\"justification\" required maxlength=\"2000\">\
             <button type=\"submit\">{}</button></fieldset></form>",
            c.csrf_field(),
            c.t("sender.override"),
            c.t("sender.override.text"),
            c.t("sender.justification"),
            c.t("sender.override.button"),
        ));
    }
    c.page(StatusCode::OK, c.t("sender.title"), &body)
}

#[derive(Deserialize)]
pub struct ReportForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    comment: String,
}

/// "This holds no patient data": on the item for the reviewers, and in the audit log.
pub async fn report(
    State(web): State<Current>,
    headers: HeaderMap,
    Path((id, token)): Path<(String, String)>,
    Form(f): Form<ReportForm>,
) -> Response {
    let (c, item) = match posted(&web, &headers, &f.csrf, &id, &token).await {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let comment = f.comment.trim();
    if comment.is_empty() || comment.len() > 1000 {
        return c.message(
            StatusCode::BAD_REQUEST,
            c.t("sender.report"),
            c.t("sender.nocomment"),
        );
    }
    if item.sender_reports.len() >= MAX_REPORTS {
        return c.message(
            StatusCode::CONFLICT,
            c.t("sender.report"),
            c.t("sender.reported"),
        );
    }
    let who = format!("sender:{}", item.sender);
    let q = &c.web.reviewer.store;
    let (mut held, claim) = match q.claim(&id, &who, "report").await {
        Ok(x) => x,
        Err(e) => return super::item::store_error(&c, &e.into()),
    };
    let record = Record::Review(review_record("false-positive", &held, &who, comment));
    if let Err(e) = c.web.reviewer.audit.append_async(&[record]).await {
        let _ = q.unclaim(&id, &claim).await;
        return super::item::store_error(&c, &e.into());
    }
    held.sender_reports.push(SenderReport {
        at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        comment: comment.to_string(),
    });
    if let Err(e) = q.settle(&id, &claim, Some(&held)).await {
        return super::item::store_error(&c, &e.into());
    }
    crate::metrics::quarantine_review("false-positive");
    c.page(
        StatusCode::OK,
        c.t("sender.report"),
        &format!("<p role=\"status\">{}</p>", c.t("sender.thanks")),
    )
}

#[derive(Deserialize)]
pub struct OverrideForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    justification: String,
}

/// Sends the held message anyway, where the rules allow it: a release by the sender.
pub async fn override_hold(
    State(web): State<Current>,
    headers: HeaderMap,
    Path((id, token)): Path<(String, String)>,
    Form(f): Form<OverrideForm>,
) -> Response {
    let (c, item) = match posted(&web, &headers, &f.csrf, &id, &token).await {
        Ok(x) => x,
        Err(r) => return *r,
    };
    if !may_override(&item) {
        return c.message(
            StatusCode::FORBIDDEN,
            c.t("sender.override"),
            c.t("sender.override.no"),
        );
    }
    let justification = f.justification.trim();
    if justification.is_empty() {
        return c.message(
            StatusCode::BAD_REQUEST,
            c.t("sender.override"),
            c.t("sender.nojustification"),
        );
    }
    let who = format!("sender:{}", item.sender);
    let reason = format!("override by the sender: {justification}");
    match c.web.reviewer.release(&id, &who, &reason).await {
        Ok(done) => {
            c.web.listing.forget(&id);
            crate::metrics::quarantine_review("override");
            let ok = done.still_held.is_empty() && done.delivered.iter().all(|l| l.ok);
            let lanes: Vec<String> = done
                .delivered
                .iter()
                .filter(|l| l.ok)
                .map(|l| format!("{} ({:?})", l.lane, l.level))
                .collect();
            c.page(
                if ok {
                    StatusCode::OK
                } else {
                    StatusCode::BAD_GATEWAY
                },
                c.t("sender.override"),
                &format!(
                    "<p role=\"status\">{} {}</p>",
                    if ok {
                        c.t("sender.sent")
                    } else {
                        c.t("release.still")
                    },
                    esc(&lanes.join(", "))
                ),
            )
        }
        Err(ReviewError::Refused(why)) => {
            c.message(StatusCode::CONFLICT, c.t("item.refused"), &why)
        }
        Err(e) => super::item::store_error(&c, &e),
    }
}
