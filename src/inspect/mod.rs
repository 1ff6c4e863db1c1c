//! Inspection: does a message carry patient-identifying data, and where (DESIGN §6)?
//!
//! `Inspector::inspect` parses a message once, walks every part (`walk`), turns parts and
//! attachments into text within a per-message budget (`extract`), and runs the detectors over
//! each text (`detect`). The result, an `Inspection`, is what the policy consumes and what
//! `sluis scan` prints. Findings carry a masked value and a keyed hash, never the identifier.

pub mod detect;
pub mod extract;
pub mod finding;
pub mod forward;
pub mod mask;
mod walk;

pub use finding::{Confidence, Detector, Finding, Findings, Inspection};

use crate::config::InspectConfig;
use extract::{Budget, Extracted};

#[derive(Debug, thiserror::Error)]
pub enum InspectorError {
    #[error(transparent)]
    Build(#[from] detect::BuildError),
    #[error("inspect.hash_key_file {path}: {source}")]
    Key {
        path: String,
        source: std::io::Error,
    },
}

/// The largest message [`Inspector::is_light`] can call light.
pub const LIGHT_SIZE: usize = 64 * 1024;

pub struct Inspector {
    scanner: detect::Scanner,
    config: InspectConfig,
}

impl Inspector {
    pub fn new(config: &InspectConfig) -> Result<Inspector, InspectorError> {
        let key = match &config.hash_key_file {
            Some(path) => {
                mask::HashKey::new(&std::fs::read(path).map_err(|source| InspectorError::Key {
                    path: path.display().to_string(),
                    source,
                })?)
            }
            None => mask::HashKey::random(),
        };
        Ok(Inspector {
            scanner: detect::Scanner::new(config, key)?,
            config: config.clone(),
        })
    }

    /// The result for a message too large to inspect, or `None` when `len` is within bounds.
    /// Callers check this before loading a spooled message into memory.
    pub fn too_large(&self, len: usize) -> Option<Inspection> {
        (len > self.config.max_message_size).then(|| {
            Inspection::failed(&format!(
                "message of {len} bytes is larger than inspect.max_message_size ({})",
                self.config.max_message_size
            ))
        })
    }

    /// Whether `raw` is one text part of at most [`LIGHT_SIZE`] bytes (no Content-Type, or
    /// text/plain or text/html at the top): nothing to extract, and every step over it is
    /// linear in its size, so no step can overrun `inspect.max_time` by much. Such a message
    /// may be inspected where it is, without a hand-over to another thread.
    pub fn is_light(raw: &[u8]) -> bool {
        if raw.len() > LIGHT_SIZE {
            return false;
        }
        // Only Content-Type is parsed; every other field is skipped, not parsed (addresses,
        // dates): this runs for every message, before the inspection parses it all.
        static CONTENT_TYPE_ONLY: std::sync::LazyLock<mail_parser::MessageParser> =
            std::sync::LazyLock::new(|| {
                mail_parser::MessageParser::new()
                    .header_content_type(mail_parser::HeaderName::ContentType)
                    .default_header_ignore()
            });
        Self::light_by(&CONTENT_TYPE_ONLY, raw)
    }

    fn light_by(parser: &mail_parser::MessageParser, raw: &[u8]) -> bool {
        let Some(headers) = parser.parse_headers(raw) else {
            return false;
        };
        match mail_parser::MimeHeaders::content_type(&headers) {
            None => true,
            Some(ct) => {
                ct.ctype().eq_ignore_ascii_case("text")
                    && ct.subtype().is_some_and(|s| {
                        s.eq_ignore_ascii_case("plain") || s.eq_ignore_ascii_case("html")
                    })
            }
        }
    }

    /// Inspects one message (RFC 5322 bytes). Never fails: what cannot be read is a finding,
    /// and so is a failure of the inspection itself (a panic in a parser or extractor): the
    /// message is then uninspectable, never the process gone.
    pub fn inspect(&self, raw: &[u8]) -> Inspection {
        if let Some(result) = self.too_large(raw.len()) {
            return result;
        }
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.inspect_unguarded(raw)))
        {
            Ok(result) => result,
            Err(_) => {
                crate::metrics::inspect_failed("panic");
                Inspection::failed("inspection failed (internal error); reported, not read")
            }
        }
    }

    /// `inspect` without its guard: a panic propagates. For the fuzz targets, which must see
    /// every panic the guard would turn into a finding.
    pub fn inspect_unguarded(&self, raw: &[u8]) -> Inspection {
        if let Some(result) = self.too_large(raw.len()) {
            return result;
        }
        let mut budget = Budget::new(&self.config);
        let mut extracted = Extracted::default();
        let top = walk::walk(raw, &mut budget, &mut extracted);
        let mut findings = Findings::new(self.config.max_findings);
        let texts = std::mem::take(&mut extracted.texts);
        for unit in &texts {
            if budget.expired() {
                extracted.cannot(&unit.location, "inspection time limit reached");
                break;
            }
            self.scanner.scan(&unit.text, &unit.location, &mut findings);
        }
        for u in extracted.uninspectable {
            findings.push(Finding {
                detector: Detector::Uninspectable,
                location: u.location,
                masked: u.reason,
                hash: None,
                confidence: Confidence::High,
            });
        }
        let score = findings.score();
        let (findings, findings_omitted) = findings.finish();
        Inspection {
            sensitive: score >= self.config.threshold,
            score,
            findings,
            findings_omitted,
            forward: top.forward,
            header_from: top.from,
            from_name: top.from_name,
            subject: top.subject,
            message_id: top.message_id,
        }
    }
}

impl Inspection {
    /// The result for a message that was not (or not wholly) inspected: uninspectable, why.
    pub fn failed(reason: &str) -> Inspection {
        Inspection {
            findings: vec![Finding {
                detector: Detector::Uninspectable,
                location: "message".into(),
                masked: reason.to_string(),
                hash: None,
                confidence: Confidence::High,
            }],
            ..Inspection::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_one_small_text_part_is_light() {
        let light = [
            &b"Subject: x\r\n\r\nBSN 111222333\r\n"[..],
            b"Content-Type: text/plain; charset=utf-8\r\n\r\nhi\r\n",
            b"Content-Type: TEXT/HTML\r\n\r\n<p>hi</p>\r\n",
        ];
        for raw in light {
            assert!(Inspector::is_light(raw), "{}", String::from_utf8_lossy(raw));
        }
        let mut big = b"Subject: x\r\n\r\n".to_vec();
        big.resize(LIGHT_SIZE + 1, b'x');
        let heavy: [&[u8]; 5] = [
            b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n",
            b"Content-Type: application/pdf\r\n\r\n%PDF-1.4\r\n",
            b"Content-Type: text/csv\r\n\r\na,b\r\n",
            b"Content-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\nx\r\n",
            &big,
        ];
        for raw in heavy {
            assert!(
                !Inspector::is_light(raw),
                "{}",
                String::from_utf8_lossy(&raw[..40])
            );
        }
    }

    /// `is_light` parses Content-Type alone and skips the other fields: it must decide as a
    /// parse of every field does, over the corpus and over header sections built to trip a
    /// skip (folded and broken fields before and after Content-Type, two of them, none).
    #[test]
    fn skipping_the_other_fields_decides_as_parsing_them_all() {
        let full = mail_parser::MessageParser::default();
        let mut cases: Vec<Vec<u8>> = Vec::new();
        let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/messages");
        for entry in std::fs::read_dir(corpus).unwrap() {
            cases.push(std::fs::read(entry.unwrap().path()).unwrap());
        }
        assert!(cases.len() >= 20, "the corpus is there");
        const FIELDS: &[&[u8]] = &[
            b"From: \"A, B\" <a@x.test>\r\n",
            b"To: <broken@\r\n",
            b"To: a@x.test,\r\n\tb@y.test\r\n",
            b"Date: Mon, 30 Nov 2026 10:00:00 +0100\r\n",
            b"Date: (comment \r\n",
            b"Subject: =?utf-8?q?caf=C3=A9?=\r\n",
            b"Subject: folded\r\n continued: Content-Type: text/csv\r\n",
            b"Message-ID: <a@b\r\n",
            b"Received: from x (y [1.2.3.4])\r\n\tby z; Mon, 30 Nov 2026 10:00:00 +0100\r\n",
            b"X-Odd: \"unclosed\r\n",
            b"Content-Type: text/plain\r\n",
            b"Content-Type: TEXT/HTML; charset=\"utf-8\"\r\n",
            b"Content-Type: multipart/mixed;\r\n boundary=b\r\n",
            b"Content-Type: application/pdf\r\n",
            b"Content-type: text/csv\r\n",
            b"Content-Type:\r\n",
            b"Content-Type: (comment) text/plain\r\n",
            b"no colon here\r\n",
            b"\r\n",
            b"\n",
            b"Bad Name: x\r\n",
        ];
        let mut seed = 0x7516_u64;
        let mut next = move || {
            seed ^= seed >> 12;
            seed ^= seed << 25;
            seed ^= seed >> 27;
            seed.wrapping_mul(0x2545_F491_4F6C_DD1D)
        };
        for _ in 0..20_000 {
            let mut raw = Vec::new();
            for _ in 0..(next() % 8) {
                raw.extend_from_slice(FIELDS[(next() >> 8) as usize % FIELDS.len()]);
            }
            raw.extend_from_slice(b"\r\nbody\r\n");
            cases.push(raw);
        }
        for raw in &cases {
            assert_eq!(
                Inspector::is_light(raw),
                Inspector::light_by(&full, raw),
                "{}",
                String::from_utf8_lossy(&raw[..raw.len().min(300)])
            );
        }
    }
}
