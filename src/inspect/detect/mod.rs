//! The detectors: one pass over a text finds every candidate, checksums and context decide.
//!
//! Speed matters (every outbound message passes here), so candidates come from a single
//! `regex_automata::meta::Regex` built from ASCII-mode patterns (Unicode `\b`/`\d` fall back to
//! slow engines on non-ASCII text), searched only in windows around digits (`digit_windows`:
//! prose without numbers never reaches the regex), and context words from one Aho-Corasick
//! automaton. The 11-proof, mod-97, dates and proximity are plain code afterwards.

pub mod checksum;
pub mod keywords;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex_automata::meta::Regex;

use crate::config::{Checksum, IdentifierConfig, InspectConfig};

use super::finding::{Confidence, Detector, Finding};
use super::mask::{self, HashKey};
use keywords::Kind;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("identifier {name:?}: pattern: {error}")]
    Pattern { name: String, error: String },
    #[error("keywords: {0}")]
    Keywords(String),
}

/// Candidate patterns, by id in the meta regex.
const PATTERNS: &[&str] = &[
    // 0: BSN, 9 or 8 digits, plain; never inside a longer run of digits or letters.
    r"(?-u)\b[0-9]{8,9}\b",
    // 1: BSN with separators: 1234.56.782, 123.456.782, 123 456 782, 123-456-782.
    r"(?-u)\b(?:[0-9]{4}\.[0-9]{2}\.[0-9]{3}|[0-9]{2,3}[ .\-][0-9]{3}[ .\-][0-9]{3})\b",
    // 2: IBAN, compact or in groups of four.
    r"(?-u)\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b",
    // 3: dates d-m-yyyy, d/m/yyyy, d.m.yyyy
    r"(?-u)\b(?:0?[1-9]|[12][0-9]|3[01])[\-/.](?:0?[1-9]|1[0-2])[\-/.](?:19|20)[0-9]{2}\b",
    // 4: ISO dates
    r"(?-u)\b(?:19|20)[0-9]{2}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])\b",
    // 5: dates with Dutch or English month names
    r"(?i-u)\b(?:0?[1-9]|[12][0-9]|3[01])\.? (?:januari|februari|maart|april|mei|juni|juli|augustus|september|oktober|november|december|january|february|march|may|june|july|august|october|jan|feb|mrt|mar|apr|jun|jul|aug|sep|sept|okt|oct|nov|dec)\.? (?:19|20)[0-9]{2}\b",
];

/// How far before its first digit a candidate can start (IBAN: two letters).
const BEFORE_DIGIT: usize = 2;
/// How far after its last digit a candidate can end (IBAN: up to 7 groups and a tail, with
/// spaces; the other patterns end in a digit).
const AFTER_DIGIT: usize = 48;

/// The stretches of `text` that can hold a candidate: every pattern has a digit within its
/// first three bytes and ends within `AFTER_DIGIT` bytes of a digit, so text far from any
/// digit (most prose) need not go through the regex at all. Stretches closer than that are
/// merged, so no candidate spans two of them; look-around at their edges still sees the whole
/// text (the regex searches a range of the full haystack).
fn digit_windows(text: &[u8]) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || {
        let first = at + next_digit(&text[at..])?;
        let mut last = first;
        loop {
            let horizon = (last + AFTER_DIGIT).min(text.len());
            match next_digit(&text[last + 1..horizon]) {
                Some(d) => last = last + 1 + d,
                None => {
                    at = horizon;
                    return Some(first.saturating_sub(BEFORE_DIGIT)..horizon);
                }
            }
        }
    })
}

/// The index of the first ASCII digit, eight bytes at a time.
fn next_digit(text: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let mut chunks = text.chunks_exact(8);
    let mut base = 0;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        // XOR with '0' maps exactly the digits to 0..=9; then "has a byte below 10".
        let x = u64::from_le_bytes(word) ^ (ONES * u64::from(b'0'));
        if x.wrapping_sub(ONES * 10) & !x & HIGHS != 0
            && let Some(i) = chunk.iter().position(u8::is_ascii_digit)
        {
            return Some(base + i);
        }
        base += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(u8::is_ascii_digit)
        .map(|i| base + i)
}

struct Custom {
    name: String,
    regex: regex::bytes::Regex,
    checksum: Checksum,
    keywords: Option<AhoCorasick>,
}

pub struct Scanner {
    candidates: Regex,
    keywords: AhoCorasick,
    /// Per keyword pattern: the word and every kind it has ("geboren" is care and birth).
    kinds: Vec<(String, Vec<Kind>)>,
    custom: Vec<Custom>,
    window: usize,
    key: HashKey,
}

/// A context word found in the text.
#[derive(Clone, Copy)]
struct Hit {
    start: usize,
    kind: Kind,
}

impl Scanner {
    pub fn new(cfg: &InspectConfig, key: HashKey) -> Result<Scanner, BuildError> {
        let candidates = Regex::new_many(PATTERNS).map_err(|e| BuildError::Pattern {
            name: "built-in".into(),
            error: e.to_string(),
        })?;
        let mut kinds: Vec<(String, Vec<Kind>)> = Vec::new();
        let lists: [(Kind, &[&str], &[String]); 4] = [
            (
                Kind::Identifier,
                keywords::IDENTIFIER,
                &cfg.identifier_keywords,
            ),
            (Kind::Care, keywords::CARE, &cfg.care_keywords),
            (Kind::Birth, keywords::BIRTH, &[]),
            (Kind::Anti, keywords::ANTI, &cfg.anti_keywords),
        ];
        for (kind, builtin, extra) in lists {
            let builtin = builtin
                .iter()
                .filter(|_| cfg.default_keywords)
                .map(|w| w.to_string());
            for word in builtin.chain(extra.iter().map(|w| w.to_lowercase())) {
                match kinds.iter_mut().find(|(w, _)| *w == word) {
                    Some((_, ks)) => ks.push(kind),
                    None => kinds.push((word, vec![kind])),
                }
            }
        }
        // One word per pattern and leftmost-longest matching: a single pass with prefilters,
        // where overlapping search would be several times slower.
        let keywords = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostLongest)
            .build(kinds.iter().map(|(w, _)| w.as_bytes()))
            .map_err(|e| BuildError::Keywords(e.to_string()))?;
        let custom = cfg
            .identifiers
            .iter()
            .map(Custom::new)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Scanner {
            candidates,
            keywords,
            kinds,
            custom,
            window: cfg.context_window,
            key,
        })
    }

    /// Context words in `text[from..to]`, in order of position (absolute offsets).
    fn context(&self, text: &[u8], from: usize, to: usize) -> Vec<Hit> {
        let mut hits = Vec::new();
        for m in self.keywords.find_iter(&text[from..to]) {
            let (word, kinds) = &self.kinds[m.pattern().as_usize()];
            let (start, end) = (from + m.start(), from + m.end());
            if keywords::stands_alone(text, start, end, word) {
                hits.extend(kinds.iter().map(|&kind| Hit { start, kind }));
            }
        }
        hits
    }

    /// Whether a birth word stands in the 40 bytes before `pos`.
    fn birth_word_before(&self, text: &[u8], pos: usize) -> bool {
        let from = floor_char(text, pos.saturating_sub(40));
        self.context(text, from, pos)
            .iter()
            .any(|h| h.kind == Kind::Birth)
    }

    /// Finds everything in one text unit; `location` says where the text came from.
    pub fn scan(&self, text: &str, location: &str, out: &mut Vec<Finding>) {
        let bytes = text.as_bytes();
        // Candidates that pass their own checks first: most text has none, and then the
        // context words need not be searched at all.
        let valid: Vec<Candidate> = digit_windows(bytes)
            .flat_map(|w| {
                self.candidates
                    .find_iter(regex_automata::Input::new(bytes).range(w))
            })
            .filter_map(|m| {
                Candidate::check(&text[m.start()..m.end()], m.start(), m.pattern().as_usize())
            })
            .collect();
        if !valid.is_empty() {
            self.classify(bytes, &valid, location, out);
        }
        for c in &self.custom {
            c.scan(bytes, location, self.window, &self.key, out);
        }
    }

    fn classify(&self, bytes: &[u8], valid: &[Candidate], location: &str, out: &mut Vec<Finding>) {
        // Identifiers need context from anywhere (a table header far above); dates only their
        // own lead-in, which spares CSV exports full of dates a scan of the whole text.
        let needs_context = valid.iter().any(|c| !matches!(c.what, What::Date(_)));
        let hits = if needs_context {
            self.context(bytes, 0, bytes.len())
        } else {
            Vec::new()
        };
        let near = |pos: usize, before: usize, after: usize, kinds: &[Kind]| {
            let lo = pos.saturating_sub(before);
            let hi = pos.saturating_add(after);
            let first = hits.partition_point(|h| h.start < lo);
            hits[first..]
                .iter()
                .take_while(|h| h.start <= hi)
                .any(|h| kinds.contains(&h.kind))
        };
        let tables = Tables::new(bytes, &hits);
        let w = self.window;
        for c in valid {
            let finding = match &c.what {
                What::Bsn(normal) => {
                    let identified = near(c.start, w, w, &[Kind::Identifier, Kind::Care])
                        || tables.column_is_identifier(bytes, c.start);
                    let anti = near(c.start, w, w, &[Kind::Anti]);
                    let confidence = match (identified, anti) {
                        (true, false) => Confidence::High,
                        (true, true) => Confidence::Medium,
                        (false, _) => Confidence::Low,
                    };
                    Finding {
                        detector: Detector::Bsn,
                        location: location.to_string(),
                        masked: mask::bsn(normal),
                        hash: Some(self.key.hash("bsn", normal)),
                        confidence,
                    }
                }
                What::Iban(normal) => {
                    let care = near(c.start, w, w, &[Kind::Care, Kind::Identifier])
                        && !near(c.start, w, w, &[Kind::Anti]);
                    Finding {
                        detector: Detector::Iban,
                        location: location.to_string(),
                        masked: mask::iban(normal),
                        hash: Some(self.key.hash("iban", normal)),
                        confidence: if care {
                            Confidence::Medium
                        } else {
                            Confidence::Low
                        },
                    }
                }
                What::Date(raw) => {
                    // Dates are everywhere: only one introduced as a birth date counts.
                    if !self.birth_word_before(bytes, c.start) {
                        continue;
                    }
                    Finding {
                        detector: Detector::DateOfBirth,
                        location: location.to_string(),
                        masked: mask::date(),
                        hash: Some(self.key.hash("dob", raw)),
                        confidence: Confidence::Medium,
                    }
                }
            };
            out.push(finding);
        }
    }
}

/// The nearest char boundary at or below `i` (text is UTF-8; windows must not split a char).
fn floor_char(text: &[u8], mut i: usize) -> usize {
    while i > 0 && i < text.len() && (text[i] & 0xC0) == 0x80 {
        i -= 1;
    }
    i
}

/// A candidate that passed its own check (11-proof, mod-97, a real date).
struct Candidate {
    start: usize,
    what: What,
}

enum What {
    Bsn(String),
    Iban(String),
    Date(String),
}

impl Candidate {
    fn check(raw: &str, start: usize, pattern: usize) -> Option<Candidate> {
        let what = match pattern {
            0 | 1 => {
                let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
                if !checksum::elfproef(&digits) {
                    return None;
                }
                What::Bsn(format!("{digits:0>9}"))
            }
            2 => {
                let normal: String = raw.chars().filter(|c| !c.is_whitespace()).collect();
                if !checksum::iban(&normal) {
                    return None;
                }
                What::Iban(normal)
            }
            _ => {
                if !plausible_birth_date(raw) {
                    return None;
                }
                What::Date(raw.to_string())
            }
        };
        Some(Candidate { start, what })
    }
}

impl Custom {
    fn new(cfg: &IdentifierConfig) -> Result<Custom, BuildError> {
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

    fn scan(
        &self,
        text: &[u8],
        location: &str,
        window: usize,
        key: &HashKey,
        out: &mut Vec<Finding>,
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

/// A plausible date of birth: a real calendar date, not in the future, under 130 years ago.
fn plausible_birth_date(raw: &str) -> bool {
    let nums: Vec<u32> = raw
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter_map(|p| p.parse().ok())
        .collect();
    let month_name = raw.chars().any(|c| c.is_ascii_alphabetic());
    let (d, m, y) = match (nums.as_slice(), month_name) {
        ([y, m, d], false) if *y > 1000 => (*d, *m, *y),
        ([d, m, y], false) => (*d, *m, *y),
        ([d, y], true) => (*d, 1, *y),
        _ => return false,
    };
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) => 29,
        2 => 28,
        _ => return false,
    };
    let this_year = 1970
        + (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|t| t.as_secs())
            .unwrap_or(0)
            / 31_556_952) as u32;
    (1..=days).contains(&d) && y <= this_year && y + 130 >= this_year
}

/// Tabular text (CSV, spreadsheets, HTML tables as text): a column headed "BSN" makes every
/// number below it an identifier, however far from the header.
struct Tables {
    /// (line start, delimiter, column index) of header cells naming an identifier.
    headers: Vec<(usize, u8, usize)>,
}

fn delimiter_of(line: &[u8]) -> Option<u8> {
    [b'\t', b';', b','].into_iter().find(|d| line.contains(d))
}

fn line_bounds(text: &[u8], pos: usize) -> (usize, usize) {
    let start = memchr::memrchr(b'\n', &text[..pos]).map_or(0, |i| i + 1);
    let end = memchr::memchr(b'\n', &text[pos..]).map_or(text.len(), |i| pos + i);
    (start, end)
}

impl Tables {
    fn new(text: &[u8], hits: &[Hit]) -> Tables {
        let mut headers = Vec::new();
        for h in hits.iter().filter(|h| h.kind == Kind::Identifier) {
            let (start, end) = line_bounds(text, h.start);
            let line = &text[start..end];
            if let Some(d) = delimiter_of(line) {
                let column = line[..h.start - start].iter().filter(|&&b| b == d).count();
                headers.push((start, d, column));
            }
        }
        Tables { headers }
    }

    fn column_is_identifier(&self, text: &[u8], pos: usize) -> bool {
        if self.headers.is_empty() {
            return false;
        }
        let (start, end) = line_bounds(text, pos);
        let line = &text[start..end];
        let Some(d) = delimiter_of(line) else {
            return false;
        };
        let column = line[..pos - start].iter().filter(|&&b| b == d).count();
        self.headers
            .iter()
            .any(|&(h_start, h_d, h_col)| h_start < start && h_d == d && h_col == column)
    }
}

#[cfg(test)]
mod window_tests {
    use super::*;
    use proptest::prelude::*;

    fn all(re: &Regex, text: &[u8]) -> Vec<(usize, usize, usize)> {
        re.find_iter(text)
            .map(|m| (m.start(), m.end(), m.pattern().as_usize()))
            .collect()
    }

    fn windowed(re: &Regex, text: &[u8]) -> Vec<(usize, usize, usize)> {
        digit_windows(text)
            .flat_map(|w| re.find_iter(regex_automata::Input::new(text).range(w)))
            .map(|m| (m.start(), m.end(), m.pattern().as_usize()))
            .collect()
    }

    proptest! {
        /// Searching only around digits finds exactly what a search of the whole text finds.
        #[test]
        fn windows_find_what_the_whole_text_holds(
            parts in proptest::collection::vec(
                prop_oneof![
                    "[0-9]{1,10}",
                    "[0-9]{3}[ .-][0-9]{3}[ .-][0-9]{3}",
                    "NL[0-9]{2}( ?[A-Z0-9]{4}){2,7}( ?[A-Z]{1,3})?",
                    "[0-9]{1,2}[-/.][0-9]{1,2}[-/.](19|20)[0-9]{2}",
                    "[0-9]{1,2}\\.? (maart|december|jan)\\.? (19|20)[0-9]{2}",
                    "[a-zA-Z ]{0,60}",
                    "[ .,/-]{1,3}",
                ],
                0..40,
            )
        ) {
            let re = Regex::new_many(PATTERNS).unwrap();
            let text = parts.concat();
            prop_assert_eq!(windowed(&re, text.as_bytes()), all(&re, text.as_bytes()));
        }

        #[test]
        fn next_digit_agrees_with_a_plain_search(text in "[ -~\u{80}-\u{3ff}]{0,80}") {
            prop_assert_eq!(
                next_digit(text.as_bytes()),
                text.bytes().position(|b| b.is_ascii_digit())
            );
        }
    }
}
