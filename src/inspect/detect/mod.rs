//! The detectors: one pass over a text finds every candidate, checksums and context decide.
//!
//! Speed matters (every outbound message passes here), so candidates come from a single
//! `regex_automata::meta::Regex` built from ASCII-mode patterns (Unicode `\b`/`\d` fall back to
//! slow engines on non-ASCII text), searched anchored only where a match can start (`candidates`:
//! prose without numbers never reaches the regex), and context words from one Aho-Corasick
//! automaton. The 11-proof, mod-97, dates and proximity are plain code afterwards.

pub mod checksum;
mod custom;
pub mod id_document;
pub mod keywords;
pub mod phone;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use regex_automata::meta::{Cache, Regex};
use regex_automata::util::pool::Pool;

use crate::config::InspectConfig;

use super::finding::{Confidence, Detector, Finding, Findings};
use super::mask::{self, HashKey};
use custom::Custom;
use keywords::Kind;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("identifier {name:?}: pattern: {error}")]
    Pattern { name: String, error: String },
    #[error("keywords: {0}")]
    Keywords(String),
}

/// Candidate patterns, by id in the meta regex. `candidates` relies on their shape: each starts
/// at a word boundary, either with two capitals right before digits (IBAN) or with digits that
/// are exactly 8 or 9 long or are followed by a space, dot, dash or slash.
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

/// Every candidate: a match of `PATTERNS` anywhere in `text`, leftmost first and not
/// overlapping, exactly as `find_iter` over the whole text gives them, but found by anchored
/// searches only where a match can start (see `PATTERNS` for the shape this relies on): the
/// start of a run of digits and the two bytes before it, and only when what surrounds the
/// digits fits. Prose without numbers never reaches the regex, nor does a lone count in a
/// table. An anchored search needs no reverse pass to find where its match began, which halves
/// the regex's work on text full of numbers (a CSV export has a date on every row).
fn candidates<'a>(
    re: &'a Regex,
    cache: &'a mut Cache,
    text: &'a [u8],
) -> impl Iterator<Item = regex_automata::Match> + 'a {
    let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut anchored = move |start: usize| {
        re.search_with(
            cache,
            &regex_automata::Input::new(text)
                .range(start..)
                .anchored(regex_automata::Anchored::Yes),
        )
    };
    // No match starts before `at`: the end of the previous match or of the digits just tried.
    let mut at = 0;
    std::iter::from_fn(move || {
        loop {
            let run = at + next_digit(&text[at..])?;
            let run_end = text[run..]
                .iter()
                .position(|b| !b.is_ascii_digit())
                .map_or(text.len(), |n| run + n);
            let capitals = run >= at + 2
                && text[run - 2].is_ascii_uppercase()
                && text[run - 1].is_ascii_uppercase();
            let digits_can_start = (run == 0 || !is_word(text[run - 1]))
                && (matches!(run_end - run, 8 | 9)
                    || matches!(text.get(run_end), Some(b' ' | b'.' | b'-' | b'/')));
            let found = capitals
                .then(|| anchored(run - 2))
                .flatten()
                .or_else(|| digits_can_start.then(|| anchored(run)).flatten());
            match found {
                Some(m) => {
                    at = m.end();
                    return Some(m);
                }
                None => at = run_end,
            }
        }
    })
}

/// The index of the first ASCII digit, 32 bytes at a time: the branch-free test of a whole
/// block compiles to a few vector instructions, where a byte loop would test each byte.
fn next_digit(text: &[u8]) -> Option<usize> {
    const BLOCK: usize = 32;
    let mut blocks = text.chunks_exact(BLOCK);
    let mut base = 0;
    for block in &mut blocks {
        let digits = block
            .iter()
            .fold(0u8, |any, b| any | u8::from(b.wrapping_sub(b'0') < 10));
        if digits != 0 {
            return block.iter().position(u8::is_ascii_digit).map(|i| base + i);
        }
        base += BLOCK;
    }
    blocks
        .remainder()
        .iter()
        .position(u8::is_ascii_digit)
        .map(|i| base + i)
}

/// Up to this many context words, the keyword automaton is a DFA.
const MAX_DFA_WORDS: usize = 1000;

/// Builds a search cache for the candidate regex (a pool needs a named function type).
type MakeCache = Box<dyn Fn() -> Cache + Send + Sync>;

pub struct Scanner {
    candidates: Regex,
    /// Search caches for `candidates`, one taken per text: the regex's own pool would be
    /// asked once per candidate, and a table has thousands.
    caches: Pool<Cache, MakeCache>,
    keywords: AhoCorasick,
    /// The birth words alone: dates are common (a CSV export has one per row) and need only
    /// these, which a small automaton finds in one pass far faster than the full list.
    birth: Option<AhoCorasick>,
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
        let lists: [(Kind, &[&str], &[String]); 5] = [
            (
                Kind::Identifier,
                keywords::IDENTIFIER,
                &cfg.identifier_keywords,
            ),
            (Kind::Care, keywords::CARE, &cfg.care_keywords),
            (Kind::Birth, keywords::BIRTH, &[]),
            (Kind::Anti, keywords::ANTI, &cfg.anti_keywords),
            (Kind::Label, keywords::LABEL, &[]),
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
        // where overlapping search would be several times slower. A DFA, even past the 100
        // patterns where the crate would pick an NFA: a sensitive text is searched whole, and
        // a DFA of the built-in lists (some hundred KiB) walks it faster. Thousands of
        // configured words would make the DFA large: then the crate chooses.
        let kind = (kinds.len() <= MAX_DFA_WORDS).then_some(AhoCorasickKind::DFA);
        let automaton = |words: &mut dyn Iterator<Item = &str>| {
            AhoCorasickBuilder::new()
                .kind(kind)
                .ascii_case_insensitive(true)
                .match_kind(MatchKind::LeftmostLongest)
                .build(words)
                .map_err(|e| BuildError::Keywords(e.to_string()))
        };
        let keywords = automaton(&mut kinds.iter().map(|(w, _)| w.as_str()))?;
        let birth = if cfg.default_keywords {
            Some(automaton(&mut keywords::BIRTH.iter().copied())?)
        } else {
            None
        };
        let custom = cfg
            .identifiers
            .iter()
            .map(Custom::new)
            .collect::<Result<Vec<_>, _>>()?;
        let caches = {
            let re = candidates.clone();
            Pool::new(Box::new(move || re.create_cache()) as MakeCache)
        };
        Ok(Scanner {
            candidates,
            caches,
            keywords,
            birth,
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

    /// Where the birth words standing on their own in `text[from..to]` end, in order.
    fn birth_word_ends(&self, text: &[u8], from: usize, to: usize) -> Vec<usize> {
        let Some(birth) = &self.birth else {
            return Vec::new();
        };
        birth
            .find_iter(&text[from..to])
            .filter(|m| {
                let word = keywords::BIRTH[m.pattern().as_usize()];
                keywords::stands_alone(text, from + m.start(), from + m.end(), word)
            })
            .map(|m| from + m.end())
            .collect()
    }

    /// Finds everything in one text unit; `location` says where the text came from.
    pub fn scan(&self, text: &str, location: &str, out: &mut Findings) {
        let bytes = text.as_bytes();
        // Candidates that pass their own checks first: most text has none, and then the
        // context words need not be searched at all.
        let mut cache = self.caches.get();
        let valid: Vec<Candidate> = candidates(&self.candidates, &mut cache, bytes)
            .filter_map(|m| {
                let raw = &text[m.start()..m.end()];
                let pattern = m.pattern().as_usize();
                // A telephone number's tail is never a BSN, however it checks out.
                if pattern <= 1 && phone::shaped(bytes, m.start(), m.end()) {
                    return None;
                }
                Candidate::check(raw, m.start(), pattern)
            })
            .collect();
        if !valid.is_empty() {
            self.classify(text, &valid, location, out);
        }
        self.id_documents(text, location, out);
        for c in &self.custom {
            c.scan(bytes, location, self.window, &self.key, out);
        }
    }

    /// Passport and identity-card numbers and machine-readable zones (`id_document`); a BSN
    /// in a zone's personal-number field is a BSN of the highest confidence.
    fn id_documents(&self, text: &str, location: &str, out: &mut Findings) {
        let found = id_document::scan(text);
        for number in &found.documents {
            out.push(Finding {
                detector: Detector::IdDocument,
                location: location.to_string(),
                masked: mask::generic(number),
                hash: Some(self.key.hash("id-document", number)),
                confidence: Confidence::High,
            });
        }
        for bsn in &found.bsns {
            out.push(Finding {
                detector: Detector::Bsn,
                location: location.to_string(),
                masked: mask::bsn(bsn),
                hash: Some(self.key.hash("bsn", bsn)),
                confidence: Confidence::High,
            });
        }
    }

    fn classify(&self, text: &str, valid: &[Candidate], location: &str, out: &mut Findings) {
        let bytes = text.as_bytes();
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
        let births = Births::new(self, bytes, valid);
        let this_year = this_year();
        let tables = Tables::new(bytes, &hits);
        let w = self.window;
        for c in valid {
            let finding = match &c.what {
                What::Bsn(normal) => {
                    let identified = near(c.start, w, w, &[Kind::Identifier, Kind::Care])
                        || tables.column_is_identifier(bytes, c.start);
                    let anti = near(c.start, w, w, &[Kind::Anti]);
                    let confidence = match (identified, anti) {
                        // "KvK 12345611": the number is the label's, whatever is around.
                        _ if labelled(&hits, bytes, c.start) => Confidence::Low,
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
                What::Date(end) => {
                    // Dates are everywhere: only one introduced as a birth date counts, by a
                    // birth word ending in the 40 bytes before it.
                    let raw = &text[c.start..*end];
                    if !births.before(c.start) || !plausible_birth_date(raw, this_year) {
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

/// How close a label must be before its number: "AGB-code: " and a little more.
const LABEL_REACH: usize = 24;

/// Whether a label for another kind of number (KvK, AGB, UZI, order, invoice, phone) ends
/// right before `pos`, with no other number in between.
fn labelled(hits: &[Hit], text: &[u8], pos: usize) -> bool {
    let first = hits.partition_point(|h| h.start + LABEL_REACH < pos);
    hits[first..]
        .iter()
        .take_while(|h| h.start < pos)
        .filter(|h| h.kind == Kind::Label)
        .any(|h| !text[h.start..pos].iter().any(u8::is_ascii_digit))
}

/// A candidate that passed its own check (11-proof, mod-97); dates are checked later.
struct Candidate {
    start: usize,
    what: What,
}

enum What {
    Bsn(String),
    Iban(String),
    /// Where the date ends; most dates are not birth dates, so their text is not copied.
    Date(usize),
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
            // Whether it is a real date is asked only of the few behind a birth word.
            _ => What::Date(start + raw.len()),
        };
        Some(Candidate { start, what })
    }
}

/// How far before a date its birth word may end.
const BIRTH_LEAD_IN: usize = 40;

/// Birth words for the dates of one text. A few dates in a letter each search their own lead-in;
/// a table full of dates (a CSV export has one per row) is searched once, whole, which costs
/// less than thousands of small searches.
struct Births<'a> {
    scanner: &'a Scanner,
    text: &'a [u8],
    /// The ends of all birth words in the text, when it was searched whole.
    whole: Option<Vec<usize>>,
}

impl<'a> Births<'a> {
    fn new(scanner: &'a Scanner, text: &'a [u8], valid: &[Candidate]) -> Births<'a> {
        let dates = valid
            .iter()
            .filter(|c| matches!(c.what, What::Date(_)))
            .count();
        let whole = (dates.saturating_mul(BIRTH_LEAD_IN) >= text.len())
            .then(|| scanner.birth_word_ends(text, 0, text.len()));
        Births {
            scanner,
            text,
            whole,
        }
    }

    /// Whether a birth word ends in the `BIRTH_LEAD_IN` bytes before `pos`.
    fn before(&self, pos: usize) -> bool {
        let from = pos.saturating_sub(BIRTH_LEAD_IN);
        match &self.whole {
            Some(ends) => {
                let first = ends.partition_point(|&e| e < from);
                ends.get(first).is_some_and(|&e| e <= pos)
            }
            None => {
                // Start early enough that a word ending in the lead-in is seen whole.
                let start = from.saturating_sub(keywords::LONGEST_BIRTH_WORD);
                self.scanner
                    .birth_word_ends(self.text, start, pos)
                    .iter()
                    .any(|&e| e >= from)
            }
        }
    }
}

/// The current year (UTC, near enough for "not in the future").
fn this_year() -> u32 {
    1970 + (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.as_secs())
        .unwrap_or(0)
        / 31_556_952) as u32
}

/// A plausible date of birth: a real calendar date, not in the future, under 130 years ago.
fn plausible_birth_date(raw: &str, this_year: u32) -> bool {
    // A candidate date has at most three numbers; a fourth means it is not one.
    let mut nums = [0u32; 4];
    let mut count = 0;
    for n in raw
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter_map(|p| p.parse().ok())
    {
        if count == nums.len() {
            return false;
        }
        nums[count] = n;
        count += 1;
    }
    let month_name = raw.bytes().any(|c| c.is_ascii_alphabetic());
    let (d, m, y) = match (&nums[..count], month_name) {
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
mod candidate_tests {
    use super::*;
    use proptest::prelude::*;

    fn all(re: &Regex, text: &[u8]) -> Vec<(usize, usize, usize)> {
        re.find_iter(text)
            .map(|m| (m.start(), m.end(), m.pattern().as_usize()))
            .collect()
    }

    fn anchored(re: &Regex, text: &[u8]) -> Vec<(usize, usize, usize)> {
        candidates(re, &mut re.create_cache(), text)
            .map(|m| (m.start(), m.end(), m.pattern().as_usize()))
            .collect()
    }

    proptest! {
        /// Anchored searches where a match can start find exactly what a search of the whole
        /// text finds.
        #[test]
        fn anchored_starts_find_what_the_whole_text_holds(
            parts in proptest::collection::vec(
                prop_oneof![
                    "[0-9]{1,10}",
                    "[0-9]{3}[ .-][0-9]{3}[ .-][0-9]{3}",
                    "[0-9]{4}\\.[0-9]{2}\\.[0-9]{3}",
                    "[0-9]{2}[ .-][0-9]{3}[ .-][0-9]{3}",
                    "NL[0-9]{2}( ?[A-Z0-9]{4}){2,7}( ?[A-Z]{1,3})?",
                    "[0-9]{1,2}[-/.][0-9]{1,2}[-/.](19|20)[0-9]{2}",
                    "[0-9]{1,2}\\.? (maart|december|jan)\\.? (19|20)[0-9]{2}",
                    "(19|20)[0-9]{2}-[01][0-9]-[0-3][0-9]",
                    "[a-zA-Z ]{0,60}",
                    "[A-Z]{1,3}",
                    "[ .,/_;é-]{1,3}",
                ],
                0..40,
            )
        ) {
            let re = Regex::new_many(PATTERNS).unwrap();
            let text = parts.concat();
            prop_assert_eq!(anchored(&re, text.as_bytes()), all(&re, text.as_bytes()));
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

#[cfg(test)]
mod birth_date_tests {
    use super::*;

    fn dates_of_birth(cfg: &InspectConfig, text: &str) -> usize {
        let scanner = Scanner::new(cfg, HashKey::new(b"test")).unwrap();
        let mut out = Findings::new(1000);
        scanner.scan(text, "part 1 text/plain", &mut out);
        out.finish()
            .0
            .iter()
            .filter(|f| f.detector == Detector::DateOfBirth)
            .count()
    }

    #[test]
    fn a_date_counts_only_behind_a_birth_word() {
        let cfg = InspectConfig::default();
        assert_eq!(
            dates_of_birth(&cfg, "Mevrouw, geboren 3 maart 1958, komt."),
            1
        );
        assert_eq!(dates_of_birth(&cfg, "geb. 12-03-1961"), 1);
        assert_eq!(dates_of_birth(&cfg, "DOB: 1961-03-12"), 1);
        assert_eq!(
            dates_of_birth(&cfg, "Overleg op 12-03-2025 en 1974-11-02."),
            0
        );
        // "dob" inside a word is no birth word.
        assert_eq!(dates_of_birth(&cfg, "Adobe 12-03-1961"), 0);
        // Not in the future, not 130 years ago.
        assert_eq!(dates_of_birth(&cfg, "geboren 12-03-2999"), 0);
        assert_eq!(dates_of_birth(&cfg, "geboren 12-03-1850"), 0);
    }

    #[test]
    fn the_birth_word_must_end_within_the_lead_in() {
        let cfg = InspectConfig::default();
        let gap = |n: usize| format!("geboren{}12-03-1961", " ".repeat(n));
        assert_eq!(dates_of_birth(&cfg, &gap(BIRTH_LEAD_IN)), 1);
        assert_eq!(dates_of_birth(&cfg, &gap(BIRTH_LEAD_IN + 1)), 0);
    }

    #[test]
    fn in_a_table_of_dates_only_the_introduced_one_counts() {
        let cfg = InspectConfig::default();
        let mut csv = String::from("Datum;Omschrijving\n");
        for day in 1..=28 {
            csv.push_str(&format!("2024-02-{day:02};afspraak\n"));
        }
        csv.push_str("geb. 1961-03-12;intake\n");
        assert_eq!(dates_of_birth(&cfg, &csv), 1);
    }

    #[test]
    fn without_the_built_in_words_there_is_no_birth_word() {
        let cfg = InspectConfig {
            default_keywords: false,
            ..InspectConfig::default()
        };
        assert_eq!(dates_of_birth(&cfg, "geboren 3 maart 1958"), 0);
    }
}

#[cfg(test)]
mod births_tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// A lead-in searched on its own and the text searched whole agree, at every position.
        #[test]
        fn lead_in_and_whole_text_agree(
            pieces in proptest::collection::vec(
                prop_oneof![
                    Just("geb."), Just("geboren"), Just("Geboortedatum"), Just("geboorte datum"),
                    Just("DOB"), Just("born"), Just("adobe"), Just("reborn"), Just("é"), Just(" "),
                    Just(": "), Just("12-03-1961"), Just("afspraak"), Just("\n"), Just("x"),
                ],
                0..30,
            )
        ) {
            let text = pieces.concat();
            let bytes = text.as_bytes();
            let scanner = Scanner::new(&InspectConfig::default(), HashKey::new(b"t")).unwrap();
            let whole = Births {
                scanner: &scanner,
                text: bytes,
                whole: Some(scanner.birth_word_ends(bytes, 0, bytes.len())),
            };
            let lead_in = Births { scanner: &scanner, text: bytes, whole: None };
            for pos in (0..=bytes.len()).filter(|&p| text.is_char_boundary(p)) {
                prop_assert_eq!(whole.before(pos), lead_in.before(pos), "at {} in {:?}", pos, text);
            }
        }
    }
}
