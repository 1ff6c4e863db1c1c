//! The quarantine pages: the list (filters, paging) and an item (masked), for a login of any
//! role; the item page offers the actions (`act`) to a role that acts.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;

use super::Current;
use super::preview::preview;
use super::session::{Ctx, person};
use crate::quarantine::review::ReviewError;
use crate::quarantine::{Item, StoreError};
use crate::wire::web::{attr, esc};

/// Items per page of the list.
const PAGE: usize = 50;

#[derive(Deserialize, Default)]
pub struct Filters {
    #[serde(default)]
    rule: String,
    /// The sender's domain.
    #[serde(default)]
    domain: String,
    /// A recipient class: managed, partner, personal, unmanaged.
    #[serde(default)]
    class: String,
    /// A detector's name (bsn, iban, ...).
    #[serde(default)]
    detector: String,
    /// Held at least this long ("2d", "12h").
    #[serde(default)]
    older_than: String,
    #[serde(default)]
    page: usize,
    lang: Option<String>,
}

impl Filters {
    fn keeps(&self, item: &Item, now: u64) -> Result<bool, String> {
        let min_age = match self.older_than.trim() {
            "" => 0,
            s => humantime::parse_duration(s)
                .map_err(|e| format!("older_than: {e}"))?
                .as_secs(),
        };
        let domain = item.sender.rsplit_once('@').map_or("", |(_, d)| d);
        Ok(
            (self.rule.is_empty() || item.recipients.iter().any(|r| r.rule == self.rule))
                && (self.domain.is_empty() || domain.eq_ignore_ascii_case(self.domain.trim()))
                && (self.class.is_empty()
                    || item
                        .recipients
                        .iter()
                        .any(|r| r.class.is_some_and(|c| c.name() == self.class)))
                && (self.detector.is_empty()
                    || item
                        .findings
                        .iter()
                        .any(|f| f.split(' ').next() == Some(self.detector.as_str())))
                && now.saturating_sub(item.created_unix) >= min_age,
        )
    }

    /// The query string of these filters on page `page`.
    fn query(&self, page: usize) -> String {
        let mut q = url_pairs(&[
            ("rule", &self.rule),
            ("domain", &self.domain),
            ("class", &self.class),
            ("detector", &self.detector),
            ("older_than", &self.older_than),
        ]);
        q.push_str(&format!("page={page}"));
        q
    }
}

/// `k=v&` for each pair with a value, percent-encoded.
pub(super) fn url_pairs(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| {
            format!(
                "{k}={}&",
                percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC)
            )
        })
        .collect()
}

/// An item and its message, or the page that says why not.
pub(super) async fn load(c: &Ctx, id: &str) -> Result<(Item, Vec<u8>), Box<Response>> {
    let q = &c.web.reviewer.store;
    let item = q
        .get(id)
        .await
        .map_err(|e| Box::new(store_error(c, &e.into())))?;
    let raw = q
        .message(id)
        .await
        .map_err(|e| Box::new(store_error(c, &e.into())))?;
    Ok((item, raw))
}

pub(super) fn store_error(c: &Ctx, e: &ReviewError) -> Response {
    match e {
        ReviewError::Store(StoreError::NotFound(_) | StoreError::BadId(_)) => c.message(
            StatusCode::NOT_FOUND,
            c.t("notfound.title"),
            c.t("item.gone"),
        ),
        ReviewError::Refused(why) => c.message(StatusCode::CONFLICT, c.t("item.refused"), why),
        // Another reviewer has it right now, or settled it: say who, so nobody acts twice.
        ReviewError::Store(StoreError::Busy { .. }) => {
            c.message(StatusCode::CONFLICT, c.t("item.refused"), &e.to_string())
        }
        ReviewError::Store(StoreError::Settled { .. }) => {
            c.message(StatusCode::GONE, c.t("item.settled"), &e.to_string())
        }
        _ => {
            tracing::error!(error = %e, "web: a quarantine operation failed");
            c.message(
                StatusCode::SERVICE_UNAVAILABLE,
                c.t("error.title"),
                c.t("error.text"),
            )
        }
    }
}

fn select(name: &str, label: &str, chosen: &str, options: &[String], any: &str) -> String {
    let opts: String = std::iter::once(format!("<option value=\"\">{}</option>", esc(any)))
        .chain(options.iter().map(|o| {
            let sel = if o == chosen { " selected" } else { "" };
            format!("<option value=\"{}\"{sel}>{}</option>", attr(o), esc(o))
        }))
        .collect();
    format!(
        "<div><label for=\"{name}\">{label}</label><select id=\"{name}\" name=\"{name}\">{opts}</select></div>"
    )
}

pub async fn list(
    State(web): State<Current>,
    headers: HeaderMap,
    Query(f): Query<Filters>,
) -> Response {
    let c = match person(&web, &headers, f.lang.as_deref()).await {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let snap = match c.web.listing.get(&c.web.reviewer.store).await {
        Ok(s) => s,
        Err(e) => return store_error(&c, &e.into()),
    };
    let (rules, detectors) = (&snap.rules, &snap.detectors);
    let now = crate::store::now_unix();
    let mut kept = Vec::new();
    for i in &snap.items {
        match f.keeps(i, now) {
            Ok(true) => kept.push(i),
            Ok(false) => {}
            Err(why) => {
                return c.message(StatusCode::BAD_REQUEST, c.t("list.title"), &why);
            }
        }
    }
    let total = kept.len();
    let pages = total.div_ceil(PAGE).max(1);
    let page = f.page.min(pages - 1);
    let classes: Vec<String> = ["managed", "partner", "personal", "unmanaged"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let any = c.t("list.any");
    let filters = format!(
        "<form method=\"get\" action=\"/quarantine\" class=\"filters\">{}{}{}\
         <div><label for=\"domain\">{}</label><input type=\"text\" id=\"domain\" name=\"domain\" value=\"{}\"></div>\
         <div><label for=\"older_than\">{}</label><input type=\"text\" id=\"older_than\" name=\"older_than\" \
         placeholder=\"2d\" value=\"{}\"></div><div><button type=\"submit\">{}</button></div></form>",
        select("rule", c.t("list.rule"), &f.rule, rules, any),
        select("class", c.t("list.class"), &f.class, &classes, any),
        select(
            "detector",
            c.t("list.detector"),
            &f.detector,
            detectors,
            any
        ),
        c.t("list.domain"),
        attr(&f.domain),
        c.t("list.older"),
        attr(&f.older_than),
        c.t("list.filter"),
    );
    let rows: String = kept
        .iter()
        .skip(page * PAGE)
        .take(PAGE)
        .map(|i| {
            let rules: Vec<&str> = i.recipients.iter().map(|r| r.rule.as_str()).collect();
            let recipients: Vec<&str> = i.recipients.iter().map(|r| r.address.as_str()).collect();
            format!(
                "<tr><td><a href=\"/quarantine/{id}\">{created}</a></td><td>{sender}</td>\
                 <td>{recipients}</td><td>{rules}</td><td>{findings}</td></tr>",
                id = attr(&i.id),
                created = esc(&i.created),
                sender = esc(&i.sender),
                recipients = esc(&recipients.join(", ")),
                rules = esc(&rules.join(", ")),
                findings = i.findings.len(),
            )
        })
        .collect();
    let nav = {
        let mut n = format!(
            "<p class=\"paging\">{} {} / {} &middot; {} {}</p>",
            c.t("list.page"),
            page + 1,
            pages,
            total,
            c.t("list.items")
        );
        if page > 0 {
            n.push_str(&format!(
                "<a href=\"/quarantine?{}\" rel=\"prev\">{}</a> ",
                attr(&f.query(page - 1)),
                c.t("list.prev")
            ));
        }
        if page + 1 < pages {
            n.push_str(&format!(
                "<a href=\"/quarantine?{}\" rel=\"next\">{}</a>",
                attr(&f.query(page + 1)),
                c.t("list.next")
            ));
        }
        n
    };
    let table = if total == 0 {
        format!("<p>{}</p>", c.t("list.none"))
    } else {
        format!(
            "<table><caption>{}</caption><thead><tr><th scope=\"col\">{}</th><th scope=\"col\">{}</th>\
             <th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th></tr></thead>\
             <tbody>{rows}</tbody></table>",
            c.t("list.caption"),
            c.t("list.held"),
            c.t("list.sender"),
            c.t("list.recipients"),
            c.t("list.rule"),
            c.t("list.findings"),
        )
    };
    c.page(
        StatusCode::OK,
        c.t("list.title"),
        &format!("{filters}{nav}{table}"),
    )
}

pub async fn show(
    State(web): State<Current>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(f): Query<Filters>,
) -> Response {
    let c = match person(&web, &headers, f.lang.as_deref()).await {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let (item, raw) = match load(&c, &id).await {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let p = preview(&raw, true);
    let mut body = envelope(&c, &item);
    body.push_str(&format!("<h2>{}</h2><ul>", c.t("item.findings")));
    for finding in &item.findings {
        body.push_str(&format!("<li>{}</li>", esc(finding)));
    }
    for s in &item.forward_signals {
        body.push_str(&format!("<li>{}</li>", esc(s)));
    }
    body.push_str("</ul>");
    if !item.sender_reports.is_empty() {
        body.push_str(&format!(
            "<h2>{}</h2><ul class=\"reports\">",
            c.t("item.reports")
        ));
        for r in &item.sender_reports {
            body.push_str(&format!("<li>{}: {}</li>", esc(&r.at), esc(&r.comment)));
        }
        body.push_str("</ul>");
    }
    body.push_str(&format!("<h2>{}</h2>", c.t("item.recipients")));
    for r in &item.recipients {
        body.push_str(&recipient(&c, r));
    }
    body.push_str(&format!("<h2>{}</h2><dl>", c.t("item.preview")));
    for (name, value) in &p.headers {
        body.push_str(&format!("<dt>{name}</dt><dd>{}</dd>", esc(value)));
    }
    body.push_str("</dl>");
    if !p.attachments.is_empty() {
        body.push_str(&format!("<h3>{}</h3><ul>", c.t("item.attachments")));
        for (name, size) in &p.attachments {
            body.push_str(&format!("<li>{} ({size} bytes)</li>", esc(name)));
        }
        body.push_str("</ul>");
    }
    body.push_str(&format!(
        "<p class=\"note\">{}</p><pre class=\"body\">{}</pre>",
        c.t("item.masked"),
        esc(&p.text)
    ));
    if c.person.as_ref().is_some_and(|p| p.role.acts()) {
        body.push_str(&actions(&c, &item.id));
    }
    c.page(
        StatusCode::OK,
        &format!("{} {}", c.t("item.title"), item.id),
        &body,
    )
}

fn envelope(c: &Ctx, item: &Item) -> String {
    format!(
        "<dl><dt>{}</dt><dd>{}</dd><dt>{}</dt><dd>{}</dd><dt>{}</dt><dd>{}</dd>\
         <dt>{}</dt><dd>{}</dd><dt>{}</dt><dd>{} ({} {})</dd></dl>",
        c.t("item.held"),
        esc(&item.created),
        c.t("list.sender"),
        esc(&item.sender),
        c.t("item.client"),
        esc(&item.client),
        c.t("item.transaction"),
        esc(&item.transaction),
        c.t("item.size"),
        item.size,
        c.t("item.score"),
        item.score,
    )
}

fn recipient(c: &Ctx, r: &crate::quarantine::HeldRecipient) -> String {
    let class = r.class.map_or("?", |k| k.name());
    let posture = r
        .posture
        .as_ref()
        .map(|a| {
            let checks: String = a
                .checks
                .iter()
                .map(|ch| {
                    format!(
                        "<li>{}</li>",
                        esc(&serde_json::to_string(ch).unwrap_or_default())
                    )
                })
                .collect();
            format!(
                "<dt>{}</dt><dd>{} ({} {})<ul class=\"checks\">{checks}</ul></dd>",
                c.t("item.posture"),
                esc(&format!("{:?}", a.posture)),
                c.t("item.assessed"),
                esc(&a.assessed_at),
            )
        })
        .unwrap_or_default();
    format!(
        "<section class=\"recipient\"><h3>{}</h3><dl><dt>{}</dt><dd>{}</dd><dt>{}</dt><dd>{}</dd>\
         <dt>{}</dt><dd>{}</dd><dt>{}</dt><dd>{}</dd>{posture}</dl></section>",
        esc(&r.address),
        c.t("list.class"),
        esc(class),
        c.t("list.rule"),
        esc(&r.rule),
        c.t("item.reasons"),
        esc(&r.reasons.join("; ")),
        c.t("item.require"),
        esc(&r
            .require
            .map(|l| format!("{l:?}"))
            .unwrap_or_else(|| "-".into())),
    )
}

/// One action's form: a reason, the CSRF token, a button.
pub(super) fn action_form(
    c: &Ctx,
    id: &str,
    action: &str,
    title: &str,
    button: &str,
    class: &str,
) -> String {
    format!(
        "<form method=\"post\" action=\"/quarantine/{id}/{action}\" class=\"action\">{csrf}\
         <fieldset><legend>{title}</legend><label for=\"reason-{action}\">{reason}</label>\
         <input type=\"text\" id=\"reason-{action}\" name=\"reason\" required maxlength=\"2000\">\
         <button type=\"submit\" class=\"{class}\">{button}</button></fieldset></form>",
        id = attr(id),
        csrf = c.csrf_field(),
        reason = c.t("item.reason"),
    )
}

fn actions(c: &Ctx, id: &str) -> String {
    let portal = if c.web.portal.is_some() {
        action_form(
            c,
            id,
            "portal",
            c.t("portal.title"),
            c.t("portal.button"),
            "",
        )
    } else {
        String::new()
    };
    format!(
        "<h2>{}</h2>{}{}{portal}{}",
        c.t("item.actions"),
        action_form(
            c,
            id,
            "reveal",
            c.t("reveal.title"),
            c.t("reveal.button"),
            "secondary"
        ),
        action_form(
            c,
            id,
            "release",
            c.t("release.title"),
            c.t("release.button"),
            ""
        ),
        action_form(
            c,
            id,
            "reject",
            c.t("reject.title"),
            c.t("reject.button"),
            "danger"
        ),
    )
}
