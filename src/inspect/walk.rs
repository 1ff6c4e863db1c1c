//! The MIME walk: every part of a message, attached messages recursively, with the headers
//! people write. mail-parser parses and decodes (transfer encodings, charsets, RFC 2047 encoded
//! words, RFC 2231 file names); this module only decides what to read and where it was.

use std::borrow::Cow;

use mail_parser::decoders::{base64::base64_decode, quoted_printable::quoted_printable_decode};
use mail_parser::{
    Address, Encoding, HeaderValue, Message, MessageParser, MessagePart, MimeHeaders, PartType,
};

use super::extract::smime::{self, Cms};
use super::extract::{self, Budget, Extracted, flowed, html, sniff};
use super::mask;

/// Headers whose text a person wrote.
const FREE_TEXT: &[&str] = &[
    "Subject",
    "Comments",
    "Keywords",
    "Content-Description",
    "Thread-Topic",
];
const ADDRESSES: &[&str] = &[
    "From",
    "To",
    "Cc",
    "Reply-To",
    "Sender",
    "Resent-To",
    "Resent-From",
];

/// What the top-level headers say beyond text: forwarding signals and the From address.
#[derive(Default)]
pub struct TopLevel {
    pub forward: Vec<&'static str>,
    pub from: Option<String>,
    /// The From header's display name.
    pub from_name: Option<String>,
    pub subject: Option<String>,
    pub message_id: Option<String>,
}

/// Multipart and message/rfc822 levels the parser opens. Deeper ones stay closed and are
/// reported uninspectable: a message of 100,000 nested parts must cost neither the stack nor
/// the process (the nesting is built before `Budget::max_depth` could be consulted).
pub const MAX_NESTING: usize = 64;

/// The parser with the walk's bounds: `MAX_NESTING`, and one part more than the budget takes,
/// so that the walk sees there were too many.
fn parser(budget: &Budget) -> MessageParser {
    MessageParser::default()
        .with_max_nesting(MAX_NESTING)
        .with_max_parts(budget.max_parts.saturating_add(1))
}

pub fn walk(raw: &[u8], budget: &mut Budget, out: &mut Extracted) -> TopLevel {
    match parser(budget).parse(raw) {
        Some(msg) => {
            let top = TopLevel {
                forward: super::forward::header_signals(&msg),
                from: msg
                    .from()
                    .and_then(|a| a.first())
                    .and_then(|a| a.address.as_ref())
                    .map(|a| a.to_string()),
                from_name: msg
                    .from()
                    .and_then(|a| a.first())
                    .and_then(|a| a.name.as_ref())
                    .map(|n| n.to_string()),
                subject: msg.subject().map(str::to_string),
                message_id: msg.message_id().map(str::to_string),
            };
            message(&msg, "", 0, budget, out);
            top
        }
        None => {
            out.cannot("message", "not a parseable message");
            TopLevel::default()
        }
    }
}

fn message(msg: &Message, prefix: &str, depth: usize, budget: &mut Budget, out: &mut Extracted) {
    for h in msg.headers() {
        let name = h.name();
        let here = || format!("{prefix}header {name}");
        if FREE_TEXT.iter().any(|n| n.eq_ignore_ascii_case(name)) {
            if let Some(t) = h.value().as_text() {
                out.text(here(), t.to_string());
            }
        } else if ADDRESSES.iter().any(|n| n.eq_ignore_ascii_case(name)) {
            let names = display_names(h.value());
            if !names.is_empty() {
                out.text(format!("{} (display name)", here()), names.join("\n"));
            }
        }
    }
    if !msg.parts.is_empty() {
        part(msg, 0, String::new(), prefix, depth, budget, out);
    }
}

fn display_names(v: &HeaderValue) -> Vec<String> {
    let mut names = Vec::new();
    match v.as_address() {
        Some(Address::List(list)) => {
            names.extend(
                list.iter()
                    .filter_map(|a| a.name.as_ref().map(|n| n.to_string())),
            );
        }
        Some(Address::Group(groups)) => {
            for g in groups {
                names.extend(g.name.iter().map(|n| n.to_string()));
                names.extend(
                    g.addresses
                        .iter()
                        .filter_map(|a| a.name.as_ref().map(|n| n.to_string())),
                );
            }
        }
        None => {}
    }
    names
}

fn part(
    msg: &Message,
    id: usize,
    path: String,
    prefix: &str,
    depth: usize,
    budget: &mut Budget,
    out: &mut Extracted,
) {
    let Some(p) = msg.parts.get(id) else { return };
    let shown_path = if path.is_empty() {
        "1".to_string()
    } else {
        path.clone()
    };
    let ctype = p
        .content_type()
        .map(|c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or("")))
        .unwrap_or_else(|| "text/plain".into())
        .to_ascii_lowercase();
    let location = match p.attachment_name() {
        Some(name) => format!("{prefix}attachment {}", mask::name(name)),
        None => format!("{prefix}part {shown_path} {ctype}"),
    };
    if !budget.take_part() {
        // Said once: a message of 100,000 parts must not make 100,000 findings.
        if budget.parts_over() == 1 {
            out.cannot(
                location,
                "too many parts to inspect: this and the parts after it were not read",
            );
        }
        return;
    }
    if budget.expired() {
        out.cannot(location, "inspection time limit reached");
        return;
    }
    if let Some(name) = p.attachment_name() {
        out.text(format!("{location} (name)"), name.to_string());
    }
    if p.is_encoding_problem {
        let container = ctype.starts_with("multipart/")
            || ctype == "message/rfc822"
            || ctype == "message/global";
        if container {
            out.cannot(&location, "nesting: parts nested too deeply to be parsed");
        } else {
            out.cannot(&location, "content transfer encoding could not be decoded");
        }
    }
    let param = |name: &str| p.content_type().and_then(|c| c.attribute(name));
    // Ciphertext is not read as text or as an attachment: it says only that it is encrypted.
    if ctype == "multipart/encrypted" {
        let reason = match param("protocol").map(str::to_ascii_lowercase).as_deref() {
            Some("application/pgp-encrypted") => "PGP/MIME-encrypted message (cannot be inspected)",
            _ => "encrypted message (multipart/encrypted, cannot be inspected)",
        };
        out.cannot(location, reason);
        return;
    }
    if ctype == "application/pkcs7-mime" || ctype == "application/x-pkcs7-mime" {
        let bytes: &[u8] = match &p.body {
            PartType::Binary(b) | PartType::InlineBinary(b) => b,
            PartType::Text(t) | PartType::Html(t) => t.as_bytes(),
            _ => &[],
        };
        match smime::open(bytes, param("smime-type")) {
            Cms::Closed(reason) => out.cannot(location, reason),
            Cms::Signed(entity) => signed_entity(entity, &location, depth, budget, out),
            Cms::CertsOnly => {}
            Cms::Unreadable => out.cannot(location, "S/MIME content could not be read"),
        }
        return;
    }
    match &p.body {
        PartType::Text(t) => {
            let mut text = as_sent(msg, p, t);
            if ctype == "text/plain"
                && param("format").is_some_and(|f| f.eq_ignore_ascii_case("flowed"))
            {
                let delsp = param("delsp").is_some_and(|d| d.eq_ignore_ascii_case("yes"));
                text = Cow::Owned(flowed::unwrap(&text, delsp));
            }
            extract::text(&location, text.into_owned(), out);
        }
        PartType::Html(h) => out.text(location, html::to_text(&as_sent(msg, p, h))),
        PartType::Binary(b) | PartType::InlineBinary(b) => {
            extract::attachment(b, &location, depth, budget, out);
        }
        PartType::Message(inner) => {
            if depth + 1 > budget.max_depth {
                out.cannot(location, "nesting: attached messages nested too deeply");
            } else {
                message(inner, &format!("{location}/"), depth + 1, budget, out);
            }
        }
        PartType::Multipart(children) => {
            for (i, child) in children.iter().enumerate() {
                let child_path = if path.is_empty() {
                    format!("{}", i + 1)
                } else {
                    format!("{path}.{}", i + 1)
                };
                part(msg, *child as usize, child_path, prefix, depth, budget, out);
            }
        }
    }
}

/// The text of a part as its bytes say, when mail-parser's decoding (the declared charset, or
/// UTF-8 without one) left NULs or replacement characters: UTF-16 sent without a charset or
/// with a wrong one, Windows-1252 sent as if it were UTF-8. Then the bytes decide, a
/// byte-order mark first (`sniff::decode_text`); a declared charset that decodes cleanly stays.
fn as_sent<'a>(msg: &Message, p: &MessagePart, decoded: &'a str) -> Cow<'a, str> {
    let b = decoded.as_bytes();
    if memchr::memchr(0, b).is_none() && memchr::memmem::find(b, "\u{fffd}".as_bytes()).is_none() {
        return Cow::Borrowed(decoded);
    }
    let Some(raw) = msg
        .raw_message
        .get(p.offset_body as usize..p.offset_end as usize)
    else {
        return Cow::Borrowed(decoded);
    };
    let bytes = match p.encoding {
        Encoding::Base64 => base64_decode(raw),
        Encoding::QuotedPrintable => quoted_printable_decode(raw),
        Encoding::None => Some(raw.to_vec()),
    };
    match bytes {
        Some(b) => Cow::Owned(sniff::decode_text(&b)),
        None => Cow::Borrowed(decoded),
    }
}

/// The MIME entity inside an opaque S/MIME signature, walked as an attached message.
fn signed_entity(
    entity: &[u8],
    location: &str,
    depth: usize,
    budget: &mut Budget,
    out: &mut Extracted,
) {
    if depth + 1 > budget.max_depth {
        out.cannot(location, "nesting: signed content nested too deeply");
        return;
    }
    match parser(budget).parse(entity) {
        Some(inner) if !inner.parts.is_empty() => {
            part(
                &inner,
                0,
                String::new(),
                &format!("{location}/"),
                depth + 1,
                budget,
                out,
            );
        }
        _ => out.cannot(location, "S/MIME signed content could not be read"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::InspectConfig;

    /// Found by the inspect fuzz target: mail-parser 0.11.9 asserted in debug builds on an
    /// attached message cut short inside a multipart (vendor/README.md).
    #[test]
    fn attached_message_cut_short_in_a_multipart_is_walked() {
        let raw = b"From: Dr. A. Jan.test>\r\nTo: Huisp0\r\n\
            Content-Type: multipart/mixed; boundary=\"b1\"\xff\xff\xff; bericht.\r\n\r\n\
            --b1\r\nContent-Type: message/rfc822; ontent-Dishment\r\n\r\n\
            en <a.janit\r\nMIME-Versi\nContent-Type: message/rfc822; boding: t\r\n\n\r\n\
            --b1--\r\n";
        let mut budget = Budget::new(&InspectConfig::default());
        let mut out = Extracted::default();
        walk(raw, &mut budget, &mut out);
    }

    /// 100,000 nested message/rfc822 parts (3 MB) once aborted the process with a stack
    /// overflow; 50,000 nested multiparts are the same attack without attached messages.
    /// Both are walked, and the nesting is reported, with the default and the deepest
    /// allowed `max_depth`.
    #[test]
    fn deep_nesting_is_uninspectable_not_a_crash() {
        let mut messages = b"From: a@x.test\r\nSubject: n\r\n".to_vec();
        messages.extend(b"Content-Type: message/rfc822\r\n\r\n".repeat(100_000));
        messages.extend_from_slice(b"Subject: i\r\n\r\nhi\r\n");
        let mut multiparts = b"From: a@x.test\r\nSubject: n\r\n".to_vec();
        for i in 0..50_000 {
            multiparts.extend_from_slice(
                format!("Content-Type: multipart/mixed; boundary=\"q{i}x\"\r\n\r\n--q{i}x\r\n")
                    .as_bytes(),
            );
        }
        multiparts.extend_from_slice(b"Content-Type: text/plain\r\n\r\nhi\r\n");
        for max_depth in [InspectConfig::default().max_depth, 32] {
            for raw in [&messages, &multiparts] {
                let config = InspectConfig {
                    max_depth,
                    ..InspectConfig::default()
                };
                let mut budget = Budget::new(&config);
                let mut out = Extracted::default();
                walk(raw, &mut budget, &mut out);
                assert!(
                    out.uninspectable
                        .iter()
                        .any(|u| u.reason.starts_with("nesting")),
                    "max_depth {max_depth}: {:?}",
                    out.uninspectable.first().map(|u| &u.reason)
                );
            }
        }
    }

    /// Multi-byte charsets are decoded (mail-parser's `full_encoding`), not read as broken
    /// UTF-8: in ISO-2022-JP a kanji is two ASCII bytes, which could otherwise pass for digits.
    #[test]
    fn multi_byte_charsets_are_decoded() {
        let raw = b"From: a@example.nl\r\nContent-Type: text/plain; charset=iso-2022-jp\r\n\r\n\
            BSN 123456782 \x1b$B%O%m!<!&%o!<%k%I\x1b(B\r\n";
        let mut budget = Budget::new(&InspectConfig::default());
        let mut out = Extracted::default();
        walk(raw, &mut budget, &mut out);
        let text: String = out.texts.iter().map(|t| t.text.as_str()).collect();
        assert!(
            text.contains("BSN 123456782 \u{30cf}\u{30ed}\u{30fc}"),
            "{text:?}"
        );
    }
}
