//! "Send via the secure pickup portal instead" (issue 18 point 2), where `[portal]` is
//! configured: the held message is sealed for its held recipients exactly as the pipeline
//! seals (their numbers from the recipient directory; without one the sender gets the
//! completion link), each is notified, and the item is settled. Audited before anything is
//! sealed (a `review` record, action `portal`, with the portal item's id; `portal-failed`
//! follows when sealing then fails); a recipient whose notification fails stays held.

use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::Current;
use super::act::{ReasonForm, identity};
use super::item::store_error;
use super::session::acting;
use crate::audit::record::Record;
use crate::portal::service::Sealing;
use crate::quarantine::review::review_record;
use crate::wire::web::esc;

pub async fn send(
    State(web): State<Current>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<ReasonForm>,
) -> Response {
    let c = match acting(&web, &headers, &f.csrf).await {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let Some(portal) = c.web.portal.clone() else {
        return c.message(
            StatusCode::NOT_FOUND,
            c.t("notfound.title"),
            c.t("portal.none"),
        );
    };
    let reason = f.reason.trim();
    if reason.is_empty() || reason.len() > 2000 {
        return c.message(
            StatusCode::BAD_REQUEST,
            c.t("portal.title"),
            c.t("item.noreason"),
        );
    }
    let who = identity(&c);
    let q = &c.web.reviewer.store;
    let (item, claim) = match q.claim(&id, &who, "portal").await {
        Ok(x) => x,
        Err(e) => return store_error(&c, &e.into()),
    };
    let raw = match q.message(&id).await {
        Ok(r) => r,
        Err(e) => {
            let _ = q.unclaim(&id, &claim).await;
            return store_error(&c, &e.into());
        }
    };
    let recipients: Vec<String> = item.recipients.iter().map(|r| r.address.clone()).collect();
    if recipients.is_empty() {
        let _ = q.unclaim(&id, &claim).await;
        return c.message(
            StatusCode::CONFLICT,
            c.t("item.refused"),
            c.t("portal.nothing"),
        );
    }
    // The portal item's id: the held item's, marked (a transaction's own portal item is
    // `<transaction>-P`).
    let portal_id = format!("{}-R", item.id);
    let mut record = review_record("portal", &item, &who, reason);
    record.portal_id = Some(portal_id.clone());
    if let Err(e) = c
        .web
        .reviewer
        .audit
        .append_async(&[Record::Review(record)])
        .await
    {
        let _ = q.unclaim(&id, &claim).await;
        return store_error(&c, &e.into());
    }
    let parsed = mail_parser::MessageParser::default().parse(&raw);
    let subject = parsed.as_ref().and_then(|m| m.subject()).map(String::from);
    let sender_name = parsed
        .as_ref()
        .and_then(|m| m.from())
        .and_then(|a| a.first())
        .and_then(|a| a.name())
        .map(String::from);
    let sealing = Sealing {
        id: &portal_id,
        transaction: &item.transaction,
        sender: &item.sender,
        sender_name: sender_name.as_deref().unwrap_or(&item.sender),
        subject: subject.as_deref(),
        message: &raw,
        recipients: &recipients,
        phones: &Default::default(),
    };
    let mut sealed = match portal.seal(sealing).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(quarantine = %id, error = %e, "web: cannot seal a held item for the portal");
            // The record above said what was about to happen; this one that it did not.
            let mut failed = review_record("portal-failed", &item, &who, reason);
            failed.refused = Some(format!("sealing failed: {e}"));
            if let Err(e) = c
                .web
                .reviewer
                .audit
                .append_async(&[Record::Review(failed)])
                .await
            {
                tracing::error!(error = %e, "web: cannot record a failed portal send");
            }
            let _ = q.unclaim(&id, &claim).await;
            return c.message(
                StatusCode::SERVICE_UNAVAILABLE,
                c.t("error.title"),
                c.t("error.text"),
            );
        }
    };
    let sent = portal.notify_sealed(&mut sealed, &recipients).await;
    // Notified; waiting for the sender's completion link (no number known); failed.
    let mut notified = Vec::new();
    let mut waiting = Vec::new();
    let mut failed = Vec::new();
    for (a, ok) in recipients.iter().zip(&sent) {
        if !ok {
            failed.push(a.clone());
        } else if sealed.links.iter().any(|(l, _)| l == a) {
            notified.push(a.clone());
        } else {
            waiting.push(a.clone());
        }
    }
    let mut rest = item.clone();
    rest.recipients.retain(|r| failed.contains(&r.address));
    let remaining = (!rest.recipients.is_empty()).then_some(&rest);
    c.web.listing.forget(&id);
    if let Err(e) = q.settle(&id, &claim, remaining).await {
        tracing::error!(quarantine = %id, error = %e, "web: sealed for the portal, but the held item could not be settled");
    }
    crate::metrics::quarantine_review("portal");
    // The sender hears of it as of a message that went to the portal directly.
    let notice = portal.sender_notice(
        &sealed.id,
        &sealed.meta,
        &notified,
        &failed,
        sealed.completion.as_ref(),
    );
    let (p, to) = (portal.clone(), item.sender.clone());
    if !to.is_empty() {
        tokio::spawn(async move {
            if let Err(e) = p.send(&to, &notice).await {
                tracing::warn!(error = %e, "could not send the sender the portal notice");
            }
        });
    }
    let mut body = format!(
        "<p role=\"status\">{} {}</p><ul>",
        c.t("portal.sealed"),
        esc(&portal_id)
    );
    for a in &notified {
        body.push_str(&format!("<li>{}: {}</li>", esc(a), c.t("portal.notified")));
    }
    for a in &waiting {
        body.push_str(&format!("<li>{}: {}</li>", esc(a), c.t("portal.waiting")));
    }
    for a in &failed {
        body.push_str(&format!("<li>{}: {}</li>", esc(a), c.t("portal.failed")));
    }
    body.push_str(&format!(
        "</ul><p><a href=\"/quarantine\">{}</a></p>",
        c.t("item.tolist")
    ));
    let status = if failed.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_GATEWAY
    };
    c.page(status, c.t("portal.title"), &body)
}
