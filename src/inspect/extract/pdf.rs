//! Text from PDF content streams.
//!
//! A deliberately small reader: it finds the streams, inflates FlateDecode ones within the
//! budget, and takes the strings shown by the text operators (Tj, TJ, ', ") between BT and ET.
//! It does not build the object tree, so a malformed file cannot send it round in circles.
//! Literal strings are read as PDFDocEncoding (Latin-1 for our purposes); hex strings, which
//! carry glyph ids for embedded CID fonts, are not text. A PDF that yields no text this way
//! (a scan, embedded fonts) or that is encrypted is reported as uninspectable, never as clean.

use memchr::memmem;

use super::{Budget, Extracted};

pub fn extract(bytes: &[u8], location: &str, budget: &mut Budget, out: &mut Extracted) {
    if memmem::find(bytes, b"/Encrypt").is_some() {
        out.cannot(location, "encrypted PDF");
        return;
    }
    let mut text = String::new();
    let mut pos = 0;
    while let Some(i) = memmem::find(&bytes[pos..], b"stream") {
        let at = pos + i;
        pos = at + 6;
        if at >= 3 && &bytes[at - 3..at] == b"end" {
            continue;
        }
        // The keyword is followed by CRLF or LF, then the data.
        let start = match &bytes[at + 6..] {
            [b'\r', b'\n', ..] => at + 8,
            [b'\n', ..] => at + 7,
            _ => continue,
        };
        let Some(len) = memmem::find(&bytes[start..], b"endstream") else {
            break;
        };
        let data = &bytes[start..start + len];
        pos = start + len + 9;
        if budget.expired() {
            out.cannot(location, "inspection time limit reached");
            return;
        }
        let dict = stream_dictionary(bytes, at);
        let has = |k: &[u8]| memmem::find(dict, k).is_some();
        if has(b"/Image")
            || has(b"/FontFile")
            || has(b"/Length1")
            || has(b"/XRef")
            || has(b"/ObjStm")
        {
            continue;
        }
        let decoded = if has(b"/FlateDecode") {
            match budget.read_all(flate2::read::ZlibDecoder::new(data)) {
                Ok(Some(d)) => d,
                Ok(None) => {
                    out.cannot(location, "decompressed size over the bound");
                    return;
                }
                // A corrupt stream: the others may still hold the text.
                Err(_) => continue,
            }
        } else if has(b"/Filter") {
            // LZW, ASCII85, RunLength...: rare for text in PDFs written this century.
            continue;
        } else {
            data.to_vec()
        };
        content_text(&decoded, &mut text);
    }
    if text.trim().is_empty() {
        out.cannot(
            location,
            "PDF without extractable text (scanned, or embedded fonts)",
        );
    } else {
        out.text(location, text);
    }
}

/// The dictionary of the stream whose keyword is at `at`: back to its `obj`.
fn stream_dictionary(bytes: &[u8], at: usize) -> &[u8] {
    let from = at.saturating_sub(4096);
    let window = &bytes[from..at];
    match memmem::rfind(window, b" obj") {
        Some(o) => &window[o..],
        None => window,
    }
}

/// Appends the text shown in one content stream.
pub fn content_text(c: &[u8], out: &mut String) {
    let mut i = 0;
    let mut in_text = false;
    // The strings read since the last operator, joined: what the next show operator shows.
    let mut strings = String::new();
    let mut in_array = false;
    while i < c.len() {
        match c[i] {
            b'%' => {
                i = memchr::memchr(b'\n', &c[i..]).map_or(c.len(), |n| i + n + 1);
            }
            b'(' => i = literal(c, i + 1, &mut strings),
            b'<' if c.get(i + 1) == Some(&b'<') => i += 2,
            b'>' if c.get(i + 1) == Some(&b'>') => i += 2,
            b'<' => {
                i = memchr::memchr(b'>', &c[i..]).map_or(c.len(), |n| i + n + 1);
            }
            b'[' => {
                in_array = true;
                i += 1;
            }
            b']' => {
                in_array = false;
                i += 1;
            }
            b'-' | b'0'..=b'9' | b'.' | b'+' => {
                let end = c[i..]
                    .iter()
                    .position(|b| !(b.is_ascii_digit() || *b == b'.' || *b == b'-' || *b == b'+'))
                    .map_or(c.len(), |n| i + n);
                // A large negative kerning inside TJ is a word space.
                if in_array
                    && in_text
                    && std::str::from_utf8(&c[i..end])
                        .unwrap_or("0")
                        .parse::<f32>()
                        .is_ok_and(|v| v < -200.0)
                {
                    strings.push(' ');
                }
                i = end.max(i + 1);
            }
            b if b.is_ascii_alphabetic() || b == b'\'' || b == b'"' || b == b'*' => {
                let end = c[i..]
                    .iter()
                    .position(|b| {
                        !(b.is_ascii_alphanumeric() || *b == b'\'' || *b == b'"' || *b == b'*')
                    })
                    .map_or(c.len(), |n| i + n);
                let op = &c[i..end];
                i = end;
                match op {
                    b"BT" => in_text = true,
                    b"ET" => {
                        in_text = false;
                        out.push('\n');
                    }
                    b"Tj" | b"TJ" | b"'" | b"\"" if in_text => {
                        if op == b"'" || op == b"\"" {
                            out.push('\n');
                        }
                        out.push_str(&strings);
                        strings.clear();
                    }
                    b"Td" | b"TD" | b"Tm" | b"T*" if in_text => out.push(' '),
                    // Inline image data is binary: skip to its end.
                    b"ID" => {
                        i = memmem::find(&c[i..], b"EI").map_or(c.len(), |n| i + n + 2);
                    }
                    _ => {}
                }
                if !in_array {
                    strings.clear();
                }
            }
            _ => i += 1,
        }
    }
}

/// Appends the literal string starting after its '(' to `s`; the index after its ')'.
fn literal(c: &[u8], mut i: usize, s: &mut String) -> usize {
    let mut depth = 1;
    while i < c.len() {
        // Plain bytes up to the next escape or parenthesis in one go; they are Latin-1.
        let run = memchr::memchr3(b'\\', b'(', b')', &c[i..]).map_or(c.len() - i, |n| n);
        let plain = &c[i..i + run];
        match std::str::from_utf8(plain) {
            Ok(ascii) if plain.is_ascii() => s.push_str(ascii),
            _ => s.extend(plain.iter().map(|&b| b as char)),
        }
        i += run;
        let Some(&b) = c.get(i) else { break };
        i += 1;
        match b {
            b'\\' => {
                let Some(&e) = c.get(i) else { break };
                i += 1;
                match e {
                    b'n' => s.push('\n'),
                    b'r' => s.push('\r'),
                    b't' => s.push('\t'),
                    b'b' | b'f' => {}
                    b'\r' | b'\n' => {
                        if e == b'\r' && c.get(i) == Some(&b'\n') {
                            i += 1;
                        }
                    }
                    b'0'..=b'7' => {
                        let mut v = u32::from(e - b'0');
                        for _ in 0..2 {
                            match c.get(i) {
                                Some(&d @ b'0'..=b'7') => {
                                    v = v * 8 + u32::from(d - b'0');
                                    i += 1;
                                }
                                _ => break,
                            }
                        }
                        s.push(char::from_u32(v & 0xff).unwrap_or(' '));
                    }
                    other => s.push(other as char),
                }
            }
            b'(' => {
                depth += 1;
                s.push('(');
            }
            b')' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
                s.push(')');
            }
            // The run above stopped at one of the three.
            _ => {}
        }
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_text_of_tj_and_tj_arrays() {
        let mut out = String::new();
        content_text(
            b"BT /F1 12 Tf 72 712 Td (BSN: ) Tj [(1234)-20(5678)-30(2)] TJ ET BT (na\\(am\\) \\101) Tj ET",
            &mut out,
        );
        assert_eq!(out, " BSN: 123456782\nna(am) A\n");
    }

    #[test]
    fn big_kerning_is_a_space_and_inline_images_are_skipped() {
        let mut out = String::new();
        content_text(
            b"BT [(a) -500 (b)] TJ ET BI /W 1 ID (\x00\xff) EI BT (c) Tj ET",
            &mut out,
        );
        assert_eq!(out, "a b\nc\n");
    }

    #[test]
    fn literal_strings_are_latin_1_with_nested_parentheses() {
        let mut out = String::new();
        content_text(b"BT (caf\xe9 (1) \\\\ 2) Tj ET", &mut out);
        assert_eq!(out, "caf\u{e9} (1) \\ 2\n");
    }
}
