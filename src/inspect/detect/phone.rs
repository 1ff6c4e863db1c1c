//! Dutch telephone numbers, which are never BSNs: `06-54530088` is a mobile number whose last
//! eight digits happen to pass the 11-proof (as one in eleven such numbers do).
//!
//! A Dutch number has ten digits with its trunk 0 (`06 12345678`, `020-1234567`,
//! `(010) 1234567`, `0111 123456`) or nine after the country code (`+31 6 12345678`,
//! `0031 20 1234567`, `+31 (0)6 12345678`). A candidate is phone-shaped when it and the digit
//! groups written right before it (and a short group right after, `06 123 456 78`) make such a
//! number.

/// Whether the digits at `text[start..end]` are the tail of a telephone number.
pub fn shaped(text: &[u8], start: usize, end: usize) -> bool {
    let own = digits(&text[start..end]);
    // Digit groups to the left, each after one separator: at most four digits in all (an
    // area code, a mobile 06, a country code is handled below).
    let mut before = 0;
    let mut first = start;
    let mut at = start;
    let mut country = false;
    loop {
        let sep = separators_left(text, at);
        if sep == 0 {
            break;
        }
        let group_end = at - sep;
        let group = text[..group_end]
            .iter()
            .rev()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if group == 0 {
            break;
        }
        let g = &text[group_end - group..group_end];
        let plus = text[..group_end - group].ends_with(b"+");
        // The country code ends the walk; digits written against it (`+316`) still count.
        if plus && g.starts_with(b"31") {
            country = true;
            before += group - 2;
            if group > 2 {
                first = group_end - group + 2;
            }
            break;
        }
        if g.starts_with(b"0031") {
            country = true;
            before += group - 4;
            if group > 4 {
                first = group_end - group + 4;
            }
            break;
        }
        if before + group > 4 {
            break;
        }
        before += group;
        at = group_end - group;
        first = at;
    }
    // A group of one or two digits right after: `06 123 456 78`.
    let after = match text.get(end..) {
        Some([b' ' | b'-' | b'.', rest @ ..]) => {
            let n = rest.iter().take_while(|b| b.is_ascii_digit()).count();
            if n <= 2 && !rest.get(n).is_some_and(u8::is_ascii_alphanumeric) {
                n
            } else {
                0
            }
        }
        _ => 0,
    };
    let total = before + own + after;
    let trunk = text.get(first) == Some(&b'0') && (before > 0 || country);
    // `+31 (0)6 12345678` keeps its trunk 0 after the country code: ten digits again.
    (trunk && total == 10) || (country && !trunk && total == 9)
}

fn digits(b: &[u8]) -> usize {
    b.iter().filter(|b| b.is_ascii_digit()).count()
}

/// Separators before `at`: a little white space (a line can wrap there), one of `-./()` or
/// none, and a little white space again.
fn separators_left(text: &[u8], at: usize) -> usize {
    let space = |end: usize| {
        text[..end]
            .iter()
            .rev()
            .take(3)
            .take_while(|b| b.is_ascii_whitespace())
            .count()
    };
    let mut n = space(at);
    if let Some(b')' | b'(' | b'-' | b'.' | b'/') = text[..at - n].last() {
        n += 1;
        n += space(at - n);
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The candidate is the last run of 8 or 9 digits, as the BSN pattern would take it.
    fn tail_is_phone(s: &str) -> bool {
        let b = s.as_bytes();
        let end = b.iter().rposition(u8::is_ascii_digit).map_or(0, |i| i + 1);
        let start = b[..end]
            .iter()
            .rposition(|c| !c.is_ascii_digit())
            .map_or(0, |i| i + 1);
        shaped(b, start, end)
    }

    #[test]
    fn dutch_phone_numbers_in_their_usual_shapes() {
        for s in [
            "Bel 06-54530088",
            "bel 06 54530088.",
            "(06) 54530088",
            "+31 6 54530088",
            "+316 54530088",
            "+31 (0)6 54530088",
            "0031 6 54530088",
            "tel. 0612 345678",
        ] {
            assert!(tail_is_phone(s), "{s}");
        }
        // `06 123 456 78`: the candidate is `123 456` plus the groups around it.
        let s = b"Bel 06 545 300 88 voor";
        assert!(shaped(s, 7, 14));
    }

    #[test]
    fn bsns_are_not_phone_numbers() {
        for s in [
            "BSN 123456782",
            "BSN: 054530088",
            "14-03-1961 123456782",
            "kamer 12 123456782",
            "patiënt 1234 56782",
        ] {
            assert!(!tail_is_phone(s), "{s}");
        }
    }
}
