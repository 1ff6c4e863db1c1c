//! Identifiers an administrator configures (`[[inspect.identifiers]]`): a pattern, an optional
//! checksum, optional context words.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder};

use crate::config::{Checksum, IdentifierConfig};

use super::super::finding::{Confidence, Detector, Finding, Findings};
use super::super::mask::{self, HashKey};
use super::{BuildError, checksum};

pub struct Custom {
    name: String,
    regex: regex::bytes::Regex,
    checksum: Checksum,
    keywords: Option<AhoCorasick>,
}

impl Custom {
    pub fn new(cfg: &IdentifierConfig) -> Result<Custom, BuildError> {
        let regex = regex::bytes::Regex::new(&cfg.pattern).map_err(|e| BuildError::Pattern {
            name: cfg.name.clone(),
            error: e.to_string(),
        })?;
        let keywords = if cfg.keywords.is_empty() {
            None
        } else {
            Some(
                AhoCorasickBuilder::new()
                    .ascii_case_insensitive(true)
                    .build(cfg.keywords.iter().map(|k| k.to_lowercase()))
                    .map_err(|e| BuildError::Keywords(e.to_string()))?,
            )
        };
        Ok(Custom {
            name: cfg.name.clone(),
            regex,
            checksum: cfg.checksum,
            keywords,
        })
    }

    pub fn scan(
        &self,
        text: &[u8],
        location: &str,
        window: usize,
        key: &HashKey,
        out: &mut Findings,
    ) {
        for m in self.regex.find_iter(text) {
            let Ok(value) = std::str::from_utf8(m.as_bytes()) else {
                continue;
            };
            let ok = match self.checksum {
                Checksum::None => true,
                Checksum::Elfproef => checksum::elfproef(&value.replace(['.', ' ', '-'], "")),
                Checksum::Luhn => checksum::luhn(value),
                Checksum::Mod97 => checksum::iban(&value.replace(' ', "")),
            };
            if !ok {
                continue;
            }
            let confidence = match &self.keywords {
                None => Confidence::High,
                Some(ac) => {
                    let lo = m.start().saturating_sub(window);
                    let hi = (m.end() + window).min(text.len());
                    if ac.find(&text[lo..hi]).is_some() {
                        Confidence::High
                    } else {
                        Confidence::Low
                    }
                }
            };
            out.push(Finding {
                detector: Detector::Custom(self.name.clone()),
                location: location.to_string(),
                masked: mask::generic(value),
                hash: Some(key.hash(&self.name, value)),
                confidence,
            });
        }
    }
}
