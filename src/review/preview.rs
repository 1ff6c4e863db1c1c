//! What a reviewer sees of a held message: its main headers, its text and its attachments'
//! names, with every digit masked; the original (headers and text unmasked) only through the
//! audited reveal.
//!
//! Why every digit and not the findings' spans: a preview must never show an identifier, also
//! not one the detectors missed or scored low (a BSN without context, a number in an image's
//! file name); the findings list says what was found, and the reveal shows the rest.

use mail_parser::{MessageParser, MimeHeaders};

/// Text of a preview at most (characters); the reveal shows at most `REVEAL_CHARS`.
const PREVIEW_CHARS: usize = 20_000;
const REVEAL_CHARS: usize = 200_000;

pub struct Preview {
    /// (name, value) of From, To, Cc, Subject, Date.
    pub headers: Vec<(&'static str, String)>,
    pub text: String,
    /// Whether the text was cut at the bound.
    pub cut: bool,
    /// (file name or content type, bytes).
    pub attachments: Vec<(String, usize)>,
}

/// Every ASCII digit as `•`.
pub fn mask(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_digit() { '•' } else { c })
        .collect()
}

fn cut(s: &str, max: usize) -> (String, bool) {
    match s.char_indices().nth(max) {
        Some((i, _)) => (s[..i].to_string(), true),
        None => (s.to_string(), false),
    }
}

/// The message `raw`, its text and names masked (`masked`) or as they are.
pub fn preview(raw: &[u8], masked: bool) -> Preview {
    let show = |s: &str| if masked { mask(s) } else { s.to_string() };
    let Some(m) = MessageParser::default().parse(raw) else {
        return Preview {
            headers: Vec::new(),
            text: String::new(),
            cut: false,
            attachments: Vec::new(),
        };
    };
    let addresses = |a: Option<&mail_parser::Address>| {
        a.map(|a| {
            a.iter()
                .map(|x| match (x.name(), x.address()) {
                    (Some(n), Some(e)) => format!("{n} <{e}>"),
                    (None, Some(e)) => e.to_string(),
                    (Some(n), None) => n.to_string(),
                    (None, None) => String::new(),
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
    };
    let headers = vec![
        ("From", show(&addresses(m.from()))),
        ("To", show(&addresses(m.to()))),
        ("Cc", show(&addresses(m.cc()))),
        ("Subject", show(m.subject().unwrap_or(""))),
        ("Date", m.date().map(|d| d.to_rfc3339()).unwrap_or_default()),
    ]
    .into_iter()
    .filter(|(_, v)| !v.is_empty())
    .collect();
    let body = m.body_text(0).map(|t| t.into_owned()).unwrap_or_default();
    let (text, was_cut) = cut(&body, if masked { PREVIEW_CHARS } else { REVEAL_CHARS });
    let attachments = m
        .attachments()
        .map(|a| {
            let name = a
                .attachment_name()
                .map(&show)
                .or_else(|| {
                    a.content_type()
                        .map(|ct| format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or("")))
                })
                .unwrap_or_default();
            (name, a.contents().len())
        })
        .collect();
    Preview {
        headers,
        text: show(&text),
        cut: was_cut,
        attachments,
    }
}

/// The header block as stored (for the reveal), up to the first empty line.
pub fn header_block(raw: &[u8]) -> String {
    let end = memchr::memmem::find(raw, b"\r\n\r\n")
        .map(|i| i + 2)
        .unwrap_or(raw.len().min(64 * 1024));
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAIL: &[u8] = b"From: Dr. Jansen <jansen@org.test>\r\nTo: pat@patients.test\r\n\
        Subject: uitslag BSN 123456782\r\nMIME-Version: 1.0\r\n\
        Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n\
        Patient J. de Vries, BSN 123456782, geboren 01-02-1960.\r\n--b\r\n\
        Content-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"lab-123456782.pdf\"\r\n\
        Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b--\r\n";

    #[test]
    fn the_preview_shows_no_digit_and_the_reveal_shows_the_original() {
        let p = preview(MAIL, true);
        let all = format!("{:?} {} {:?}", p.headers, p.text, p.attachments);
        assert!(!all.contains("123456782") && !all.contains("1960"), "{all}");
        assert!(
            p.text.contains("Patient J. de Vries, BSN •••••••••"),
            "{}",
            p.text
        );
        assert_eq!(p.attachments[0].0, "lab-•••••••••.pdf");
        let r = preview(MAIL, false);
        assert!(r.text.contains("BSN 123456782"));
        assert!(
            r.headers
                .iter()
                .any(|(n, v)| *n == "Subject" && v.contains("123456782"))
        );
        assert!(header_block(MAIL).ends_with("boundary=b\r\n"));
    }
}
