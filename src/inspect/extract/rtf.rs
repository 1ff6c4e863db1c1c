//! Rich Text Format, read by rtf-parser.
//!
//! rtf-parser decodes the text (`\'xx` in the document's code page, `\uN`), skips font and
//! colour tables, and nests without recursion; it drops paragraph and cell breaks, which would
//! glue a number to the word before it ("cardioloog123456782" has no word boundary). So each
//! break is first given a character of its own: a `\'0a` or `\'09` after the control word.

use std::sync::LazyLock;

use regex::bytes::{Captures, Regex};

use super::{Budget, Extracted};

/// The breaks rtf-parser drops (it keeps `\tab` and `\line`). A space after the word, or after
/// its number, belongs to the control word and goes with it.
static BREAKS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?-u)\\(par|cell|row|sect|page)(-?[0-9]+)? ?").expect("a fixed pattern")
});

pub fn extract(bytes: &[u8], location: &str, budget: &mut Budget, out: &mut Extracted) {
    let marked = BREAKS.replace_all(bytes, |c: &Captures| {
        // A longer word that starts the same (`\pard`, `\parskip`) is not a break.
        let end = c.get(0).map_or(0, |m| m.end());
        let next = bytes.get(end).copied();
        let cut = c.get(2).is_none() && !c[0].ends_with(b" ");
        if cut && next.is_some_and(|b| b.is_ascii_alphabetic()) {
            return c[0].to_vec();
        }
        let mark: &[u8] = if &c[1] == b"cell" { b"\\'09" } else { b"\\'0a" };
        let param = c.get(2).map_or(&[][..], |m| m.as_bytes());
        [b"\\", &c[1], param, mark].concat()
    });
    if !budget.charge(marked.len() as u64) {
        out.cannot(location, "decompressed size over the bound");
        return;
    }
    // RTF is 7-bit by definition; bytes above that are read as Windows-1252, as Word does.
    let source = super::sniff::decode_text(&marked);
    let parsed =
        super::guarded(|| rtf_parser::RtfDocument::try_from(source.as_str()).map(|d| d.get_text()));
    match parsed {
        Some(Ok(text)) => out.text(location, text),
        Some(Err(_)) => out.cannot(location, "RTF document could not be read (malformed)"),
        None => {
            crate::metrics::inspect_failed("rtf");
            out.cannot(location, "RTF document could not be read (malformed)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::InspectConfig;

    fn text(rtf: &[u8]) -> String {
        let mut budget = Budget::new(&InspectConfig::default());
        let mut out = Extracted::default();
        extract(rtf, "attachment a.rtf", &mut budget, &mut out);
        out.texts.iter().map(|t| t.text.as_str()).collect()
    }

    #[test]
    fn breaks_separate_words_and_escapes_decode() {
        assert_eq!(
            text(br"{\rtf1\ansi\ansicpg1252{\fonttbl{\f0 Arial;}}\pard cardioloog\par 123456782\tab pati\'ebnt\cell x}"),
            "cardioloog\n123456782\tpati\u{eb}nt\tx"
        );
    }

    #[test]
    fn pard_and_paragraph_words_are_not_breaks() {
        assert_eq!(
            text(br"{\rtf1 \pard\pardeftab720 a\parskip b\line0 c}"),
            "ab\nc"
        );
    }
}
