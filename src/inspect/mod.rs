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
