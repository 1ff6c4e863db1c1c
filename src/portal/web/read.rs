//! The recipient's reading: the message as text (never its HTML: no remote content, nothing
//! to sanitise into the page), each attachment and the original to download byte for byte,
//! every download audited without the file's name.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mail_parser::{MessageParser, MimeHeaders};

use super::Current;
use super::pages::{Ctx, LangQuery, ctx, current_visit, esc};
use crate::portal::access::{AccessError, Opened, Visit};
use crate::portal::mail::date;
use crate::portal::reply::{Replied, Upload};
use crate::portal::service::{EventDetail, Portal};

/// The open visit's message, parsed; or the response to give instead.
async fn opened(c: &Ctx, headers: &HeaderMap) -> Result<(Visit, Opened), Response> {
    let (visit, key) = match current_visit(c, headers).await {
        Ok(Some(v)) => v,
        Ok(None) => return Err(c.session_over()),
        Err(e) => return Err(c.failed(&e)),
    };
    if !visit.open {
        return Err(c.see_other("/code", None));
    }
    match c.portal.read(&visit, &key).await {
        Ok(o) => Ok((visit, o)),
        Err(e) => Err(c.failed(&e)),
    }
}

/// The message as text, its attachments, the original, a reply form.
pub async fn message(
    State(p): State<Current>,
    headers: HeaderMap,
    Query(q): Query<LangQuery>,
) -> Response {
    let c = ctx(&p, &headers, Some(&q));
    let (visit, opened) = match opened(&c, &headers).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if let Err(e) = c.portal.viewed(&visit, &opened).await {
        return c.failed(&e);
    }
    let Some(msg) = MessageParser::default().parse(&opened.raw) else {
        return c.failed(&AccessError::Gone);
    };
    let mut body = String::new();
    if let Some(s) = msg.subject() {
        body.push_str(&format!(
            "<p><strong>{}:</strong> {}</p>",
            c.t("message.subject"),
            esc(s)
        ));
    }
    body.push_str(&format!(
        "<p class=\"expiry\">{} {}</p>",
        c.t("landing.until"),
        esc(&date(opened.item.expires, c.lang.code()))
    ));
    for i in 0..msg.text_body_count() {
        if let Some(text) = msg.body_text(i) {
            body.push_str(&format!("<pre class=\"body\">{}</pre>", esc(&text)));
        }
    }
    let attachments: Vec<String> = msg
        .attachments()
        .enumerate()
        .map(|(n, a)| {
            let name = a
                .attachment_name()
                .map(str::to_string)
                .unwrap_or_else(|| format!("bijlage-{}", n + 1));
            format!(
                "<li><a href=\"/message/attachment/{n}\" download>{}</a> ({} bytes)</li>",
                esc(&name),
                a.len()
            )
        })
        .collect();
    if !attachments.is_empty() {
        body.push_str(&format!(
            "<h2>{}</h2><ul>{}</ul>",
            c.t("message.attachments"),
            attachments.concat()
        ));
    }
    body.push_str(&format!(
        "<p><a href=\"/message/original.eml\" download>{}</a></p>",
        c.t("message.original")
    ));
    if let Some(note) = match q.s.as_deref() {
        Some("replied") => Some(("status", c.t("message.reply.sent"))),
        Some("reply-failed") => Some(("alert", c.t("message.reply.failed"))),
        Some("reply-too-big") => Some(("alert", c.t("message.reply.toobig"))),
        _ => None,
    } {
        body.push_str(&format!("<p role=\"{}\">{}</p>", note.0, note.1));
    }
    body.push_str(&format!(
        "<h2>{}</h2><form method=\"post\" action=\"/message/reply\" \
         enctype=\"multipart/form-data\">{}<label for=\"reply\">{}</label>\
         <textarea id=\"reply\" name=\"text\" rows=\"6\" required></textarea>\
         <label for=\"files\">{}</label><input id=\"files\" name=\"files\" type=\"file\" multiple>\
         <button type=\"submit\">{}</button></form>\
         <form method=\"post\" action=\"/logout\">{}<button type=\"submit\" class=\"secondary\">{}\
         </button></form>",
        c.t("message.reply"),
        c.csrf_field(),
        c.t("message.reply.text"),
        c.t("message.reply.files"),
        c.t("message.reply.button"),
        c.csrf_field(),
        c.t("message.logout"),
    ));
    c.page(StatusCode::OK, c.t("message.title"), &body)
}

/// A download: exactly the bytes the part carried, never rendered by the browser.
fn download(name: &str, content: Vec<u8>) -> Response {
    let fallback: String = name
        .chars()
        .map(|ch| {
            if ch.is_ascii_alphanumeric() || ".-_".contains(ch) {
                ch
            } else {
                '_'
            }
        })
        .collect();
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b".-_".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    (
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"),
            ),
        ],
        content,
    )
        .into_response()
}

pub async fn attachment(
    State(p): State<Current>,
    headers: HeaderMap,
    Path(n): Path<u32>,
) -> Response {
    let c = ctx(&p, &headers, None);
    let (visit, opened) = match opened(&c, &headers).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(msg) = MessageParser::default().parse(&opened.raw) else {
        return c.gone();
    };
    let Some(part) = msg.attachments().nth(n as usize) else {
        return c.gone();
    };
    let name = part
        .attachment_name()
        .map(str::to_string)
        .unwrap_or_else(|| format!("bijlage-{}", n + 1));
    let content = part.contents().to_vec();
    let kind = part
        .content_type()
        .map(|t| format!("{}/{}", t.ctype(), t.subtype().unwrap_or("")))
        .unwrap_or_default();
    let detail = download_detail(&format!("attachment {}", n + 1), &kind, &content);
    audit_download(&c.portal, &visit, &opened, detail).await;
    download(&name, content)
}

pub async fn original(State(p): State<Current>, headers: HeaderMap) -> Response {
    let c = ctx(&p, &headers, None);
    let (visit, opened) = match opened(&c, &headers).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let detail = download_detail("original", "message/rfc822", &opened.raw);
    audit_download(&c.portal, &visit, &opened, detail).await;
    download(&format!("{}.eml", visit.item), opened.raw)
}

/// Which download, without its name (a file name may name the patient).
fn download_detail(what: &str, kind: &str, content: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, content);
    format!(
        "{what} ({kind}, {} bytes, sha256 {})",
        content.len(),
        data_encoding::HEXLOWER.encode(digest.as_ref())
    )
}

async fn audit_download(portal: &Portal, visit: &Visit, opened: &Opened, detail: String) {
    portal
        .event(
            &visit.item,
            &opened.meta,
            "downloaded",
            EventDetail {
                detail: Some(detail),
                ..EventDetail::of(&visit.recipient)
            },
        )
        .await;
}

/// The reply form's POST (multipart: the CSRF token, the text, the files).
pub async fn reply(
    State(p): State<Current>,
    headers: HeaderMap,
    mut form: axum::extract::Multipart,
) -> Response {
    let c = ctx(&p, &headers, None);
    let cap = c.portal.config.max_reply_bytes;
    let (mut csrf, mut text, mut files, mut size) =
        (String::new(), String::new(), Vec::new(), 0u64);
    loop {
        let field = match form.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return c.see_other("/message?s=reply-too-big", None);
            }
            Err(_) => return c.see_other("/message?s=reply-failed", None),
        };
        let name = field.name().unwrap_or("").to_string();
        let file_name = field.file_name().map(str::to_string);
        let kind = field
            .content_type()
            .unwrap_or("application/octet-stream")
            .to_string();
        let bytes = match field.bytes().await {
            Ok(b) => b,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return c.see_other("/message?s=reply-too-big", None);
            }
            Err(_) => return c.see_other("/message?s=reply-failed", None),
        };
        size += bytes.len() as u64;
        if size > cap {
            return c.see_other("/message?s=reply-too-big", None);
        }
        match (name.as_str(), file_name) {
            ("csrf", _) => csrf = String::from_utf8_lossy(&bytes).into_owned(),
            ("text", _) => text = String::from_utf8_lossy(&bytes).into_owned(),
            ("files", Some(n)) if !n.is_empty() => files.push(Upload {
                name: n,
                content_type: kind,
                bytes: bytes.to_vec(),
            }),
            _ => {}
        }
    }
    if !Ctx::csrf_ok(&headers, &csrf) {
        return c.csrf_refused();
    }
    let (visit, opened) = match opened(&c, &headers).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    match c.portal.reply(&visit, &opened, &text, files).await {
        Ok(Replied::Sent) => c.see_other("/message?s=replied", None),
        Ok(Replied::TooBig) => c.see_other("/message?s=reply-too-big", None),
        Ok(Replied::NotSent) => c.see_other("/message?s=reply-failed", None),
        Err(e) => c.failed(&e),
    }
}
