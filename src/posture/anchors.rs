//! Trust anchor files as administrators have them: what unbound (`auto-trust-anchor-file`),
//! Knot's `keymgr` and Debian's dns-root-data (`/usr/share/dns/root.key`, `root.ds`) write.
//!
//! Zone-file syntax (RFC 1035 5.1) with DNSKEY or DS records: TTL and class optional and in
//! either order, `;` comments (unbound writes its state in them), records continued over lines
//! in parentheses, `$TTL` and `$ORIGIN` lines. The records themselves are read by hickory: a
//! DNSKEY line is handed to its trust-anchor parser in the one form it reads, a DS line's four
//! fields become its `DS`. A DS anchor names a key by digest, so the key itself is fetched when
//! the resolver is first used (`dns`). Anything else names file:line and what was expected.

use std::path::Path;

use hickory_resolver::proto::dnssec::rdata::DS;
use hickory_resolver::proto::dnssec::{Algorithm, DigestType, TrustAnchors};
use hickory_resolver::proto::rr::Name;

/// What a trust anchor file says.
#[derive(Clone)]
pub struct Anchors {
    /// The DNSKEY records, as keys to trust.
    pub keys: TrustAnchors,
    /// The DS records, by owner: keys to fetch and trust when their digest matches.
    pub ds: Vec<(Name, DS)>,
    /// The owner of the first record: its SOA must validate when DNSSEC works.
    pub zone: String,
}

#[derive(Debug, thiserror::Error)]
#[error("{path}:{line}: {what}")]
pub struct AnchorError {
    pub path: String,
    pub line: usize,
    pub what: String,
}

const EXPECTED: &str = "expected a DNSKEY or DS record in zone-file syntax, e.g. \
     \"example. DNSKEY 257 3 13 <key>\", \". 3600 IN DS 20326 8 2 <digest>\"";

pub fn read(path: &Path) -> Result<Anchors, AnchorError> {
    let text = std::fs::read_to_string(path).map_err(|e| AnchorError {
        path: path.display().to_string(),
        line: 0,
        what: e.to_string(),
    })?;
    parse(&text).map_err(|(line, what)| AnchorError {
        path: path.display().to_string(),
        line,
        what,
    })
}

/// Parses the file's text; an error is (line, what).
pub fn parse(text: &str) -> Result<Anchors, (usize, String)> {
    let mut dnskeys = String::new();
    let mut ds = Vec::new();
    let mut zone = None;
    let mut origin: Option<String> = None;
    for (line, fields) in records(text)? {
        let bad = |what: String| (line, what);
        if fields[0].eq_ignore_ascii_case("$TTL") {
            continue;
        }
        if fields[0].eq_ignore_ascii_case("$ORIGIN") {
            let o = fields
                .get(1)
                .ok_or_else(|| bad("$ORIGIN without a name".into()))?;
            origin = Some(o.clone());
            continue;
        }
        let owner = absolute(&fields[0], origin.as_deref());
        // Owner, then TTL and class in either order (each optional), then the type.
        let mut i = 1;
        while i < fields.len() && i <= 2 {
            let f = &fields[i];
            if f.bytes().all(|b| b.is_ascii_digit()) || f.eq_ignore_ascii_case("IN") {
                i += 1;
            } else {
                break;
            }
        }
        let Some(rtype) = fields.get(i) else {
            return Err(bad(format!("no record type; {EXPECTED}")));
        };
        let rdata = &fields[i + 1..];
        match rtype.to_ascii_uppercase().as_str() {
            "DNSKEY" => {
                // The one form hickory's trust-anchor parser reads.
                let normal = format!("{owner} 3600 IN DNSKEY {}\n", rdata.join(" "));
                TrustAnchors::from_str_checked(&normal).map_err(bad)?;
                dnskeys.push_str(&normal);
            }
            "DS" => {
                let record = parse_ds(rdata).map_err(|e| bad(format!("{e}; {EXPECTED}")))?;
                let name = Name::from_ascii(&owner)
                    .map_err(|e| bad(format!("{owner:?} is not a domain name: {e}")))?;
                ds.push((name, record));
            }
            other => return Err(bad(format!("a {other} record; {EXPECTED}"))),
        }
        zone.get_or_insert(owner);
    }
    let keys = if dnskeys.is_empty() {
        TrustAnchors::empty()
    } else {
        TrustAnchors::from_str_checked(&dnskeys).map_err(|e| (0, e))?
    };
    let zone = zone.ok_or_else(|| (0, format!("no record; {EXPECTED}")))?;
    Ok(Anchors { keys, ds, zone })
}

/// A record: the line it starts on, and its fields.
type Fields = (usize, Vec<String>);

/// The records of the file, comments and parentheses resolved.
fn records(text: &str) -> Result<Vec<Fields>, (usize, String)> {
    let mut out = Vec::new();
    let mut open: Option<Fields> = None;
    for (n, raw) in text.lines().enumerate() {
        let line = n + 1;
        let content = raw.split(';').next().unwrap_or("");
        let mut fields = Vec::new();
        let mut depth = open.is_some();
        for token in content
            .replace('(', " ( ")
            .replace(')', " ) ")
            .split_whitespace()
        {
            match token {
                "(" if depth => return Err((line, "nested parentheses".into())),
                "(" => depth = true,
                ")" if !depth => return Err((line, "\")\" without \"(\"".into())),
                ")" => depth = false,
                t => fields.push(t.to_string()),
            }
        }
        match open.take() {
            Some((first, mut so_far)) => {
                so_far.extend(fields);
                if depth {
                    open = Some((first, so_far));
                } else {
                    out.push((first, so_far));
                }
            }
            None if depth => open = Some((line, fields)),
            None if fields.is_empty() => {}
            None => out.push((line, fields)),
        }
    }
    if let Some((first, _)) = open {
        return Err((first, "\"(\" never closed".into()));
    }
    Ok(out)
}

fn absolute(owner: &str, origin: Option<&str>) -> String {
    if owner == "@" {
        return origin.unwrap_or(".").to_string();
    }
    if owner.ends_with('.') {
        return owner.to_string();
    }
    match origin {
        Some(".") => format!("{owner}."),
        Some(o) => format!("{owner}.{o}"),
        None => format!("{owner}."),
    }
}

fn parse_ds(rdata: &[String]) -> Result<DS, String> {
    let [tag, alg, digest_type, digest @ ..] = rdata else {
        return Err("a DS record has a key tag, an algorithm, a digest type and a digest".into());
    };
    let tag: u16 = tag.parse().map_err(|_| format!("key tag {tag:?}"))?;
    let alg: u8 = alg.parse().map_err(|_| format!("algorithm {alg:?}"))?;
    let dt: u8 = digest_type
        .parse()
        .map_err(|_| format!("digest type {digest_type:?}"))?;
    let hex = digest.concat().to_ascii_lowercase();
    let digest = data_encoding::HEXLOWER_PERMISSIVE
        .decode(hex.as_bytes())
        .map_err(|_| "the digest is not hexadecimal".to_string())?;
    let expected = match dt {
        1 => 20,
        2 => 32,
        4 => 48,
        _ => return Err(format!("digest type {dt} (1, 2 or 4 expected)")),
    };
    if digest.len() != expected {
        return Err(format!(
            "a digest of type {dt} has {expected} bytes, this one {}",
            digest.len()
        ));
    }
    Ok(DS::new(
        tag,
        Algorithm::from_u8(alg),
        DigestType::from(dt),
        digest,
    ))
}

/// hickory's parser, with its error as text.
trait FromStrChecked: Sized {
    fn from_str_checked(s: &str) -> Result<Self, String>;
}

impl FromStrChecked for TrustAnchors {
    fn from_str_checked(s: &str) -> Result<Self, String> {
        s.parse::<TrustAnchors>().map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "mdsswUyr3DPW132mOi8V9xESWE8jTo0dxCjjnopKl+GqJxpVXckHAeF+KkxLbxILfDLUT0rAK9iUzy1L53eKGQ==";

    #[test]
    fn the_forms_administrators_have() {
        // Knot's keymgr: no TTL, no class.
        let a = parse(&format!("test. DNSKEY 257 3 13 {KEY}\n")).unwrap();
        assert_eq!(a.zone, "test.");
        assert!(a.ds.is_empty());
        // Class before TTL, a comment, parentheses over lines (dig, unbound).
        let a = parse(&format!(
            "; autotrust trust anchor file\n;;id: . 1\n\
             test. IN 172800 DNSKEY 257 3 13 ( {KEY}\n ) ;{{id = 20326 (ksk), size = 256b}}\n"
        ))
        .unwrap();
        assert_eq!(a.zone, "test.");
        // Debian's root.ds, unbound's root.key in DS form.
        let a = parse(
            ". IN DS 20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D\n\
             .  DS 38696 8 2 683D2D0ACB8C9B712A1948B27F741219298D0A450D612C483AF444A4C0FB2B16 ; 2024\n",
        )
        .unwrap();
        assert_eq!(a.zone, ".");
        assert_eq!(a.ds.len(), 2);
        assert_eq!(a.ds[0].1.key_tag(), 20326);
        // $ORIGIN and a relative owner.
        let a = parse(&format!(
            "$ORIGIN test.\n$TTL 3600\n@ DNSKEY 257 3 13 {KEY}\n"
        ))
        .unwrap();
        assert_eq!(a.zone, "test.");
    }

    #[test]
    fn what_is_not_an_anchor_names_its_line() {
        let (line, what) = parse(&format!(
            "; ok\ntest. DNSKEY 257 3 13 {KEY}\ntest. A 192.0.2.1\n"
        ))
        .err()
        .unwrap();
        assert_eq!(line, 3);
        assert!(
            what.contains("a A record; expected a DNSKEY or DS record"),
            "{what}"
        );
        let (line, what) = parse(". DS 20326 8 2 E06D44B8\n").err().unwrap();
        assert_eq!(line, 1);
        assert!(what.contains("has 32 bytes, this one 4"), "{what}");
        let (line, _) = parse("test. DNSKEY 257 3 13 ( abc\n").err().unwrap();
        assert_eq!(line, 1);
        assert!(parse("; only a comment\n").is_err());
    }
}
