//! Identity documents: the copies of passports and identity cards that leak by mail.
//!
//! Two signals. A Dutch document number (two letters, six letters or digits, a digit; never
//! the letter O) named as one: near paspoort, identiteitskaart, ID-kaart, documentnummer. And
//! a machine-readable zone (ICAO 9303): TD3 (passports, two lines of 44) or TD1 (identity
//! cards, three lines of 30), recognised only when its check digits hold. The personal-number
//! field of a Dutch passport's zone and the optional field of a Dutch identity card's carry
//! the holder's BSN, which is reported as a BSN.

use std::sync::LazyLock;

use aho_corasick::AhoCorasick;

use super::checksum;

/// How far from its keyword a document number may be.
const REACH: usize = 48;

const WORDS: &[&str] = &[
    "paspoort",
    "paspoortnummer",
    "identiteitskaart",
    "identiteitsbewijs",
    "id-kaart",
    "id kaart",
    "id-bewijs",
    "identiteitskaartnummer",
    "documentnummer",
    "document number",
    "passport",
    "identity card",
    "rijbewijs",
];

/// Searched only in the few bytes around a number of the right shape: over all text, the
/// case-insensitive search cost a tenth of all inspection time.
static KEYWORDS: LazyLock<AhoCorasick> = LazyLock::new(|| {
    AhoCorasick::builder()
        .ascii_case_insensitive(true)
        .build(WORDS)
        .expect("fixed words")
});

/// What was found: the document numbers (from either signal) and BSNs from zones.
#[derive(Debug, Default, PartialEq)]
pub struct Found {
    pub documents: Vec<String>,
    pub bsns: Vec<String>,
}

pub fn scan(text: &str) -> Found {
    let mut found = Found::default();
    let bytes = text.as_bytes();
    for (start, end) in shaped_numbers(bytes) {
        let window = &bytes[start.saturating_sub(REACH)..(end + REACH).min(bytes.len())];
        if KEYWORDS.is_match(window) {
            found
                .documents
                .push(String::from_utf8_lossy(&bytes[start..end]).into_owned());
        }
    }
    // Every zone has filler.
    if memchr::memmem::find(bytes, b"<<").is_some() {
        zones(text, &mut found);
    }
    found
}

/// Where Dutch document numbers could be: nine capitals and digits standing alone, two
/// letters first, a digit last, at least two digits, never the letter O. Every run of digits
/// in such a number follows a capital (the number starts with two letters), so only a digit
/// right after a capital is looked at: the runs of digits after anything else, nearly all in
/// text (a CSV export has several on every row), are passed over by a block search.
fn shaped_numbers(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(digit) = next_digit_after_capital(bytes, at) {
        let (start, end) = token_around(bytes, digit);
        at = end;
        if is_document_number(bytes, start, end) {
            found.push((start, end));
        }
    }
    found
}

/// The run of capitals and digits around `digit`.
fn token_around(bytes: &[u8], digit: usize) -> (usize, usize) {
    let token = |b: &u8| b.is_ascii_uppercase() || b.is_ascii_digit();
    let start = digit - bytes[..digit].iter().rev().take_while(|b| token(b)).count();
    let end = digit + bytes[digit..].iter().take_while(|b| token(b)).count();
    (start, end)
}

/// Whether `bytes[start..end]` has a Dutch document number's shape and stands alone.
fn is_document_number(bytes: &[u8], start: usize, end: usize) -> bool {
    let word = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_';
    let letter = |b: &u8| b.is_ascii_uppercase() && *b != b'O';
    let n = &bytes[start..end];
    let alone = !bytes[..start].last().is_some_and(word) && !bytes.get(end).is_some_and(word);
    alone
        && n.len() == 9
        && n[..2].iter().all(letter)
        && n[2..8].iter().all(|b| letter(b) || b.is_ascii_digit())
        && n[8].is_ascii_digit()
        && n.iter().filter(|b| b.is_ascii_digit()).count() >= 2
}

/// The first position `p >= from` of a digit right after a capital letter. Blocks of 32 pairs
/// are tested branch-free (a few vector instructions), then the block with one is searched.
fn next_digit_after_capital(bytes: &[u8], from: usize) -> Option<usize> {
    const BLOCK: usize = 32;
    let pair = |capital: u8, digit: u8| {
        u8::from(capital.wrapping_sub(b'A') < 26) & u8::from(digit.wrapping_sub(b'0') < 10)
    };
    let mut p = from.max(1);
    while let (Some(before), Some(here)) =
        (bytes.get(p - 1..p - 1 + BLOCK), bytes.get(p..p + BLOCK))
    {
        let any = before
            .iter()
            .zip(here)
            .fold(0u8, |any, (&c, &d)| any | pair(c, d));
        if any != 0 {
            break;
        }
        p += BLOCK;
    }
    (p..bytes.len()).find(|&q| pair(bytes[q - 1], bytes[q]) != 0)
}

/// ICAO 9303 check digit: weights 7, 3, 1; digits as themselves, A–Z as 10–35, `<` as 0.
pub fn check_digit(field: &[u8]) -> Option<u8> {
    let mut sum: u32 = 0;
    for (i, &c) in field.iter().enumerate() {
        let v = match c {
            b'0'..=b'9' => c - b'0',
            b'A'..=b'Z' => c - b'A' + 10,
            b'<' => 0,
            _ => return None,
        };
        sum += u32::from(v) * [7, 3, 1][i % 3];
    }
    Some((sum % 10) as u8)
}

fn holds(field: &[u8], digit: u8) -> bool {
    digit.is_ascii_digit() && check_digit(field) == Some(digit - b'0')
}

/// Lines of the zone alphabet, with the spaces OCR and PDFs put in them taken out.
fn zone_lines(text: &str) -> Vec<Vec<u8>> {
    text.lines()
        .map(|l| {
            l.bytes()
                .filter(|b| !b.is_ascii_whitespace())
                .collect::<Vec<u8>>()
        })
        .collect()
}

fn is_zone(line: &[u8], len: usize) -> bool {
    line.len() == len
        && line
            .iter()
            .all(|&b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'<')
}

fn zones(text: &str, found: &mut Found) {
    let lines = zone_lines(text);
    for (i, line) in lines.iter().enumerate() {
        // TD3: line 2 = number(9) check, nationality(3), birth(6) check, sex, expiry(6) check,
        // personal number(14) check, composite check.
        if is_zone(line, 44) && i > 0 && is_zone(&lines[i - 1], 44) && lines[i - 1][0] == b'P' {
            let l = line.as_slice();
            if holds(&l[0..9], l[9]) && holds(&l[13..19], l[19]) && holds(&l[21..27], l[27]) {
                found.documents.push(trim(&l[0..9]));
                if &l[10..13] == b"NLD" && (l[42] == b'<' || holds(&l[28..42], l[42])) {
                    bsn(&l[28..42], found);
                }
            }
        }
        // TD1: line 1 = type(2), state(3), number(9) check, optional(15); line 2 = birth(6)
        // check, sex, expiry(6) check, nationality(3), ...
        if is_zone(line, 30) && lines.get(i + 1).is_some_and(|n| is_zone(n, 30)) {
            let (a, b) = (line.as_slice(), lines[i + 1].as_slice());
            if matches!(a[0], b'I' | b'A' | b'C')
                && holds(&a[5..14], a[14])
                && holds(&b[0..6], b[6])
                && holds(&b[8..14], b[14])
            {
                found.documents.push(trim(&a[5..14]));
                if &a[2..5] == b"NLD" {
                    bsn(&a[15..30], found);
                }
            }
        }
    }
}

fn trim(field: &[u8]) -> String {
    String::from_utf8_lossy(field)
        .trim_end_matches('<')
        .to_string()
}

/// A BSN in a zone's personal-number field: nine digits, then filler.
fn bsn(field: &[u8], found: &mut Found) {
    let value = trim(field);
    if value.len() == 9 && checksum::elfproef(&value) {
        found.bsns.push(value);
    }
}

#[cfg(test)]
mod tests;
