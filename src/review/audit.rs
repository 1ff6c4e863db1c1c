//! The audit log for reviewers (issue 18 point 3): search by transaction, sender, recipient,
//! rule, decision and date range, newest first; the chain's verification (and this instance's
//! anchor in the store), on request; a period's records as CSV for the yearly NEN 7513 review,
//! streamed (a year's log does not fit a page, nor memory).
//!
//! The files are the source of truth (`audit.file` and its rotated predecessors); a search
//! reads them from the start, in a blocking thread, keeping only the newest matches a page
//! needs.

use std::collections::VecDeque;
use std::io::BufRead;
use std::path::PathBuf;

use axum::body::Body;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;

use super::Current;
use super::session::{CSRF_COOKIE, Ctx, person};
use crate::audit::verify::{Verdict, chain_files, verify_files};
use crate::wire::web::{attr, esc};

/// Records a page shows, and the pages a search may go back.
const PAGE: usize = 50;
const MAX_PAGE: usize = 200;

#[derive(Deserialize, Default, Clone)]
pub struct AuditQuery {
    #[serde(default)]
    transaction: String,
    #[serde(default)]
    sender: String,
    #[serde(default)]
    recipient: String,
    #[serde(default)]
    rule: String,
    /// A decision (deliver, quarantine, portal, refuse, defer) or a review or portal action.
    #[serde(default)]
    decision: String,
    /// YYYY-MM-DD, inclusive.
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    page: usize,
    lang: Option<String>,
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn date_ok(d: &str) -> bool {
    d.is_empty()
        || (d.len() == 10
            && d.bytes().enumerate().all(|(i, b)| {
                if i == 4 || i == 7 {
                    b == b'-'
                } else {
                    b.is_ascii_digit()
                }
            }))
}

impl AuditQuery {
    fn valid(&self) -> Result<(), &'static str> {
        if !date_ok(self.from.trim()) || !date_ok(self.to.trim()) {
            return Err("audit.baddate");
        }
        Ok(())
    }

    /// Whether record `v` is one the query asks for.
    fn keeps(&self, v: &Value) -> bool {
        let has =
            |want: &str, got: &str| want.trim().is_empty() || got.eq_ignore_ascii_case(want.trim());
        let day = text(v, "time").get(..10).unwrap_or("");
        let recipients: Vec<&str> = match v.get("recipients") {
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            _ => vec![text(v, "recipient")],
        };
        let decision = match text(v, "decision") {
            "" => text(v, "action"),
            d => d,
        };
        (has(&self.transaction, text(v, "transaction"))
            || has(&self.transaction, text(v, "quarantine_id")))
            && has(&self.sender, text(v, "sender"))
            && (self.recipient.trim().is_empty()
                || recipients.iter().any(|r| has(&self.recipient, r)))
            && has(&self.rule, text(v, "rule"))
            && has(&self.decision, decision)
            && (self.from.trim().is_empty() || day >= self.from.trim())
            && (self.to.trim().is_empty() || day <= self.to.trim())
    }

    fn query(&self, page: usize) -> String {
        let mut q = super::item::url_pairs(&[
            ("transaction", &self.transaction),
            ("sender", &self.sender),
            ("recipient", &self.recipient),
            ("rule", &self.rule),
            ("decision", &self.decision),
            ("from", &self.from),
            ("to", &self.to),
        ]);
        q.push_str(&format!("page={page}"));
        q
    }
}

/// Every record of `files` (oldest first) through `each`, until it returns false.
fn scan(files: &[PathBuf], mut each: impl FnMut(Value) -> bool) -> std::io::Result<()> {
    for f in files {
        let reader = std::io::BufReader::new(std::fs::File::open(f)?);
        for line in reader.split(b'\n') {
            let line = line?;
            if let Ok(v) = serde_json::from_slice::<Value>(&line)
                && !each(v)
            {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// The matches of `q` on its page, newest first, and how many matched in all.
fn search(files: &[PathBuf], q: &AuditQuery) -> std::io::Result<(Vec<Value>, usize)> {
    let keep = (q.page.min(MAX_PAGE) + 1) * PAGE;
    let mut newest = VecDeque::with_capacity(keep);
    let mut total = 0;
    scan(files, |v| {
        if q.keeps(&v) {
            total += 1;
            if newest.len() == keep {
                newest.pop_front();
            }
            newest.push_back(v);
        }
        true
    })?;
    let page: Vec<Value> = newest
        .into_iter()
        .rev()
        .skip(q.page.min(MAX_PAGE) * PAGE)
        .take(PAGE)
        .collect();
    Ok((page, total))
}

fn files(c: &Ctx) -> Vec<PathBuf> {
    chain_files(c.web.reviewer.audit.path())
}

fn field(c: &Ctx, name: &str, key: &str, value: &str, kind: &str) -> String {
    format!(
        "<div><label for=\"{name}\">{}</label><input type=\"{kind}\" id=\"{name}\" name=\"{name}\" \
         value=\"{}\"></div>",
        c.t(key),
        attr(value)
    )
}

pub async fn page(
    State(web): State<Current>,
    headers: HeaderMap,
    Query(q): Query<AuditQuery>,
) -> Response {
    let c = match person(&web, &headers, q.lang.as_deref()).await {
        Ok(c) => c,
        Err(r) => return *r,
    };
    if let Err(key) = q.valid() {
        return c.message(StatusCode::BAD_REQUEST, c.t("audit.title"), c.t(key));
    }
    let (chain, query) = (files(&c), q.clone());
    let found = tokio::task::spawn_blocking(move || search(&chain, &query)).await;
    let (records, total) = match found {
        Ok(Ok(r)) => r,
        _ => {
            return c.message(
                StatusCode::SERVICE_UNAVAILABLE,
                c.t("error.title"),
                c.t("error.text"),
            );
        }
    };
    let form = format!(
        "<form method=\"get\" action=\"/audit\" class=\"filters\">{}{}{}{}{}{}{}\
         <div><button type=\"submit\">{}</button></div></form>",
        field(
            &c,
            "transaction",
            "audit.transaction",
            &q.transaction,
            "text"
        ),
        field(&c, "sender", "list.sender", &q.sender, "text"),
        field(&c, "recipient", "audit.recipient", &q.recipient, "text"),
        field(&c, "rule", "list.rule", &q.rule, "text"),
        field(&c, "decision", "audit.decision", &q.decision, "text"),
        field(&c, "from", "audit.from", &q.from, "date"),
        field(&c, "to", "audit.to", &q.to, "date"),
        c.t("audit.search"),
    );
    let export = format!(
        "<p><a href=\"/audit/export.csv?{}\">{}</a></p>",
        attr(&q.query(0)),
        c.t("audit.export")
    );
    let rows: String = records
        .iter()
        .map(|v| {
            let recipients = match v.get("recipients") {
                Some(Value::Array(a)) => a
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", "),
                _ => text(v, "recipient").to_string(),
            };
            let decision = match text(v, "decision") {
                "" => text(v, "action"),
                d => d,
            };
            let tx = match text(v, "transaction") {
                "" => text(v, "quarantine_id"),
                t => t,
            };
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
                 <td>{}</td></tr>",
                esc(text(v, "time")),
                esc(text(v, "event")),
                esc(tx),
                esc(text(v, "sender")),
                esc(&recipients),
                esc(text(v, "rule")),
                esc(decision),
                esc(text(v, "reviewer")),
            )
        })
        .collect();
    let pages = total.div_ceil(PAGE).clamp(1, MAX_PAGE + 1);
    let mut nav = format!(
        "<p class=\"paging\">{} {} / {} &middot; {total} {}</p>",
        c.t("list.page"),
        q.page.min(pages - 1) + 1,
        pages,
        c.t("audit.records")
    );
    if q.page > 0 {
        nav.push_str(&format!(
            "<a href=\"/audit?{}\" rel=\"prev\">{}</a> ",
            attr(&q.query(q.page - 1)),
            c.t("list.prev")
        ));
    }
    if q.page + 1 < pages {
        nav.push_str(&format!(
            "<a href=\"/audit?{}\" rel=\"next\">{}</a>",
            attr(&q.query(q.page + 1)),
            c.t("list.next")
        ));
    }
    let table = format!(
        "<table><caption>{}</caption><thead><tr><th scope=\"col\">{}</th><th scope=\"col\">{}</th>\
         <th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th>\
         <th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th></tr></thead>\
         <tbody>{rows}</tbody></table>",
        c.t("list.caption"),
        c.t("audit.time"),
        c.t("audit.event"),
        c.t("audit.transaction"),
        c.t("list.sender"),
        c.t("audit.recipient"),
        c.t("list.rule"),
        c.t("audit.decision"),
        c.t("audit.reviewer"),
    );
    let verify = verification(&c);
    c.page(
        StatusCode::OK,
        c.t("audit.title"),
        &format!("{verify}{form}{export}{nav}{table}"),
    )
}

/// The last verification's result, and the button for another.
fn verification(c: &Ctx) -> String {
    let last = c
        .web
        .verified
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let said = match last {
        Some((at, true, what)) => format!(
            "<p role=\"status\">{} ({at}): {}</p>",
            c.t("audit.intact"),
            esc(&what)
        ),
        Some((at, false, what)) => format!(
            "<p role=\"alert\">{} ({at}): {}</p>",
            c.t("audit.damaged"),
            esc(&what)
        ),
        None => format!("<p>{}</p>", c.t("audit.unverified")),
    };
    format!(
        "<section><h2>{}</h2>{said}<form method=\"post\" action=\"/audit/verify\">{}\
         <button type=\"submit\" class=\"secondary\">{}</button></form></section>",
        c.t("audit.chain"),
        c.csrf_field(),
        c.t("audit.verify"),
    )
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// Verifies the chain (and this instance's anchor in the store) now.
pub async fn verify(
    State(web): State<Current>,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Response {
    let c = match person(&web, &headers, None).await {
        Ok(c) => c,
        Err(r) => return *r,
    };
    if !crate::wire::web::csrf_ok(&headers, CSRF_COOKIE, &f.csrf) {
        return c.csrf_refused();
    }
    let chain = files(&c);
    let anchor = match c.web.store().anchors().await {
        Ok(a) => a.into_iter().find(|a| a.instance == c.web.instance),
        Err(e) => {
            tracing::warn!(error = %e, "web: cannot read the audit anchors");
            None
        }
    };
    let checked = tokio::task::spawn_blocking(move || {
        let report = verify_files(&chain);
        match report.verdict {
            Verdict::Intact { records } => match anchor
                .as_ref()
                .and_then(|a| crate::audit::anchor::check(&chain, a))
            {
                Some(why) => (false, why),
                None => (
                    true,
                    format!(
                        "{records} records in {} file(s){}",
                        chain.len(),
                        if anchor.is_some() {
                            "; the store's anchor matches"
                        } else {
                            ""
                        }
                    ),
                ),
            },
            Verdict::Broken {
                file,
                line,
                seq,
                why,
            } => (false, format!("{file}:{line}: record {seq}: {why}")),
        }
    })
    .await;
    let (ok, what) = checked.unwrap_or((false, "the check did not finish".into()));
    let at = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    *c.web.verified.lock().unwrap_or_else(|p| p.into_inner()) = Some((at, ok, what));
    c.redirect("/audit")
}

/// The records of the query as CSV, streamed as they are read.
pub async fn export(
    State(web): State<Current>,
    headers: HeaderMap,
    Query(q): Query<AuditQuery>,
) -> Response {
    let c = match person(&web, &headers, None).await {
        Ok(c) => c,
        Err(r) => return *r,
    };
    if let Err(key) = q.valid() {
        return c.message(StatusCode::BAD_REQUEST, c.t("audit.title"), c.t(key));
    }
    let chain = files(&c);
    let name = format!(
        "sluis-audit-{}-{}.csv",
        if q.from.is_empty() {
            "begin"
        } else {
            q.from.trim()
        },
        if q.to.is_empty() { "now" } else { q.to.trim() }
    );
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(16);
    tokio::task::spawn_blocking(move || {
        const COLUMNS: [&str; 14] = [
            "seq",
            "time",
            "event",
            "transaction",
            "quarantine_id",
            "client",
            "sender",
            "recipient",
            "rule",
            "decision",
            "lane",
            "reviewer",
            "reason",
            "findings",
        ];
        let row = |fields: &[String]| -> Vec<u8> {
            let mut w = csv::Writer::from_writer(Vec::new());
            let _ = w.write_record(fields);
            w.into_inner().unwrap_or_default()
        };
        let header: Vec<String> = COLUMNS.iter().map(|s| s.to_string()).collect();
        if tx.blocking_send(Ok(row(&header))).is_err() {
            return;
        }
        let mut chunk = Vec::new();
        let done = scan(&chain, |v| {
            if !q.keeps(&v) {
                return true;
            }
            let get = |k: &str| match v.get(k) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|x| x.as_str().map_or_else(|| x.to_string(), String::from))
                    .collect::<Vec<_>>()
                    .join("; "),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            let recipient = match get("recipient") {
                r if r.is_empty() => get("recipients"),
                r => r,
            };
            let decision = match get("decision") {
                d if d.is_empty() => get("action"),
                d => d,
            };
            let fields = [
                get("seq"),
                get("time"),
                get("event"),
                get("transaction"),
                get("quarantine_id"),
                get("client"),
                get("sender"),
                recipient,
                get("rule"),
                decision,
                get("lane"),
                get("reviewer"),
                get("reason"),
                get("findings"),
            ];
            chunk.extend(row(&fields));
            if chunk.len() >= 64 * 1024 {
                return tx.blocking_send(Ok(std::mem::take(&mut chunk))).is_ok();
            }
            true
        });
        let last = match done {
            Ok(()) => Ok(chunk),
            Err(e) => Err(e),
        };
        let _ = tx.blocking_send(last);
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_keeps_what_it_names_and_dates_bound_both_ways() {
        let v = serde_json::json!({
            "event": "decision", "time": "2026-11-30T20:00:50.792Z", "transaction": "TX1",
            "sender": "dr@org.test", "recipient": "pat@gmail.com", "rule": "hold",
            "decision": "quarantine"
        });
        let q = |f: &dyn Fn(&mut AuditQuery)| {
            let mut q = AuditQuery::default();
            f(&mut q);
            q.keeps(&v)
        };
        assert!(q(&|_| {}));
        assert!(q(&|q| q.transaction = "tx1".into()));
        assert!(!q(&|q| q.transaction = "TX2".into()));
        assert!(q(&|q| q.recipient = "PAT@gmail.com".into()));
        assert!(q(&|q| q.decision = "quarantine".into()));
        assert!(!q(&|q| q.decision = "deliver".into()));
        assert!(q(&|q| {
            q.from = "2026-11-30".into();
            q.to = "2026-11-30".into();
        }));
        assert!(!q(&|q| q.from = "2026-12-01".into()));
        assert!(!q(&|q| q.to = "2026-11-29".into()));
        let review = serde_json::json!({"event": "review", "action": "release",
            "recipients": ["a@x.test", "b@x.test"], "time": "2026-12-01T00:00:00Z"});
        let mut r = AuditQuery {
            recipient: "b@x.test".into(),
            decision: "release".into(),
            ..Default::default()
        };
        assert!(r.keeps(&review));
        r.recipient = "c@x.test".into();
        assert!(!r.keeps(&review));
        assert!(
            AuditQuery {
                from: "30-11-2026".into(),
                ..Default::default()
            }
            .valid()
            .is_err()
        );
    }
}
