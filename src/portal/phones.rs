//! Where a recipient's number for SMS codes comes from (issue 17 point 4), in this order: the
//! `Sluis-Recipient-Phone: <address> <E.164 number>` header the sender's system sets (one per
//! recipient; stripped before anything leaves Sluis), the recipient directory
//! (`portal.directory_file`, CSV `address,phone`), or the sender on the completion page.

use std::collections::HashMap;
use std::path::Path;

use crate::spool::SpooledBody;

/// The header's name, as the sender's system writes it (matched in any case).
pub const HEADER: &str = "Sluis-Recipient-Phone";

/// How far into a message its header section may reach before the scan gives up on it.
const MAX_HEADER_SECTION: usize = 1024 * 1024;

/// A number in E.164 form (`+` and 8 to 15 digits); spaces, dashes, dots and brackets are
/// dropped, and a Dutch `06...` becomes `+316...`. `None` when it is no such number.
pub fn e164(raw: &str) -> Option<String> {
    let cleaned: String = raw
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect();
    let digits = if let Some(rest) = cleaned.strip_prefix('+') {
        rest.to_string()
    } else if let Some(rest) = cleaned.strip_prefix("00") {
        rest.to_string()
    } else if let Some(rest) = cleaned.strip_prefix('0') {
        format!("31{rest}")
    } else {
        return None;
    };
    let ok = (8..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0');
    ok.then(|| format!("+{digits}"))
}

/// The last two digits, for "a code to your number ending in 78".
pub fn hint(number: &str) -> String {
    let n = number.len();
    format!("…{}", &number[n.saturating_sub(2)..])
}

/// Numbers by address (lowercase), from header values `<address> <number>`; values that are
/// not of that shape are skipped (and counted, so the caller can log how many).
pub fn from_headers(values: &[String]) -> (HashMap<String, String>, usize) {
    let mut out = HashMap::new();
    let mut bad = 0;
    for v in values {
        let v = v.trim();
        let parsed = v
            .split_once(char::is_whitespace)
            .and_then(|(addr, num)| {
                let addr = addr.trim_matches(['<', '>']).to_ascii_lowercase();
                Some((addr, e164(num.trim())?))
            })
            .filter(|(a, _)| a.contains('@'));
        match parsed {
            Some((a, n)) => {
                out.insert(a, n);
            }
            None => bad += 1,
        }
    }
    (out, bad)
}

/// The recipient directory: `address,phone` per line; `#` comments and a header line
/// (`address,phone`) are allowed. Errors name the line.
pub fn load_directory(path: &Path) -> Result<HashMap<String, String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.eq_ignore_ascii_case("address,phone") {
            continue;
        }
        let (addr, num) = line
            .split_once(',')
            .ok_or_else(|| format!("{}:{}: expected address,phone", path.display(), n + 1))?;
        let addr = addr.trim().to_ascii_lowercase();
        let number = e164(num.trim()).ok_or_else(|| {
            format!(
                "{}:{}: not a phone number (use +31612345678)",
                path.display(),
                n + 1
            )
        })?;
        if !addr.contains('@') {
            return Err(format!("{}:{}: not an address", path.display(), n + 1));
        }
        out.insert(addr, number);
    }
    Ok(out)
}

/// If the message's header section carries the header, a copy of `body` without it (every
/// line of each such field, folded ones too) and the fields' values; `None` when it has none
/// (the common case costs one read of the first chunk).
pub async fn strip(body: &mut SpooledBody) -> std::io::Result<Option<(Vec<String>, Vec<u8>)>> {
    body.rewind().await?;
    let mut head = Vec::new();
    let mut rest_start = None;
    while let Some(chunk) = body.next_chunk().await? {
        head.extend_from_slice(&chunk);
        if let Some(end) = header_end(&head) {
            rest_start = Some(end);
            break;
        }
        if head.len() > MAX_HEADER_SECTION {
            break;
        }
    }
    let end = rest_start.unwrap_or(head.len());
    if !contains_field(&head[..end]) {
        return Ok(None);
    }
    let (kept, values) = remove_fields(&head[..end]);
    let mut out = kept;
    out.extend_from_slice(&head[end..]);
    while let Some(chunk) = body.next_chunk().await? {
        out.extend_from_slice(&chunk);
    }
    Ok(Some((values, out)))
}

/// Where the header section ends (after its blank line).
fn header_end(data: &[u8]) -> Option<usize> {
    if data.starts_with(b"\r\n") {
        return Some(2);
    }
    memchr::memmem::find(data, b"\r\n\r\n").map(|i| i + 4)
}

fn is_field(line: &[u8]) -> bool {
    let name = HEADER.as_bytes();
    line.len() > name.len()
        && line[..name.len()].eq_ignore_ascii_case(name)
        && matches!(line[name.len()], b':' | b' ' | b'\t')
        && line[name.len()..]
            .iter()
            .find(|b| !matches!(b, b' ' | b'\t'))
            == Some(&b':')
}

fn contains_field(head: &[u8]) -> bool {
    head.split(|&b| b == b'\n').any(is_field)
}

/// The header section without the fields, and their unfolded values.
fn remove_fields(head: &[u8]) -> (Vec<u8>, Vec<String>) {
    let mut kept = Vec::with_capacity(head.len());
    let mut values = Vec::new();
    let mut in_field = false;
    for line in head.split_inclusive(|&b| b == b'\n') {
        let continuation = matches!(line.first(), Some(b' ' | b'\t'));
        if continuation && in_field {
            if let Some(v) = values.last_mut() {
                let s: &mut String = v;
                s.push(' ');
                s.push_str(String::from_utf8_lossy(line).trim());
            }
            continue;
        }
        in_field = is_field(line);
        if in_field {
            let text = String::from_utf8_lossy(line);
            let value = text.split_once(':').map(|(_, v)| v.trim()).unwrap_or("");
            values.push(value.to_string());
            continue;
        }
        kept.extend_from_slice(line);
    }
    (kept, values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_become_e164_or_nothing() {
        assert_eq!(e164("+31 6 1234 5678").as_deref(), Some("+31612345678"));
        assert_eq!(e164("06-12345678").as_deref(), Some("+31612345678"));
        assert_eq!(e164("0031612345678").as_deref(), Some("+31612345678"));
        assert_eq!(e164("(020) 123 4567").as_deref(), Some("+31201234567"));
        for bad in [
            "",
            "12345678",
            "+31abc",
            "+0123456789",
            "+1234567",
            "+1234567890123456",
        ] {
            assert_eq!(e164(bad), None, "{bad}");
        }
        assert_eq!(hint("+31612345678"), "…78");
    }

    #[test]
    fn header_values_and_directory_lines() {
        let (m, bad) = from_headers(&[
            "<Pat@Mail.test> +31612345678".into(),
            "b@x.test 06-11112222".into(),
            "nonsense".into(),
            "c@x.test notanumber".into(),
        ]);
        assert_eq!(m["pat@mail.test"], "+31612345678");
        assert_eq!(m["b@x.test"], "+31611112222");
        assert_eq!(bad, 2);
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("d.csv");
        std::fs::write(&f, "address,phone\n# staff\nA@x.test, +31 6 12345678\n").unwrap();
        assert_eq!(load_directory(&f).unwrap()["a@x.test"], "+31612345678");
        std::fs::write(&f, "a@x.test,+31612345678\nb@x.test;123\n").unwrap();
        assert!(
            load_directory(&f)
                .unwrap_err()
                .ends_with(":2: expected address,phone")
        );
    }

    #[tokio::test]
    async fn the_header_is_stripped_folded_lines_and_all_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        let msg = b"From: a@b.test\r\nSLUIS-recipient-phone: pat@mail.test\r\n +31612345678\r\n\
                    Subject: x\r\nSluis-Recipient-Phone : b@x.test +31611112222\r\n\r\n\
                    Sluis-Recipient-Phone: in the body stays\r\n";
        let mut body = SpooledBody::new(dir.path().into(), 1 << 20);
        body.write(msg).await.unwrap();
        let (values, out) = strip(&mut body).await.unwrap().unwrap();
        assert_eq!(
            values,
            ["pat@mail.test +31612345678", "b@x.test +31611112222"]
        );
        assert_eq!(
            out,
            b"From: a@b.test\r\nSubject: x\r\n\r\nSluis-Recipient-Phone: in the body stays\r\n"
        );
        let mut plain = SpooledBody::new(dir.path().into(), 1 << 20);
        plain
            .write(b"From: a@b.test\r\nX-Sluis-Recipient-Phone: no\r\n\r\nbody\r\n")
            .await
            .unwrap();
        assert!(strip(&mut plain).await.unwrap().is_none());
    }
}
