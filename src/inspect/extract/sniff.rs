//! What bytes are, from their first bytes: declared MIME types are often wrong, and a CSV sent
//! as application/octet-stream must still be read.

#[derive(Clone, Copy)]
pub enum Kind {
    Pdf,
    Zip,
    Gzip,
    Text,
    /// An OLE compound file: Office 97–2003, Outlook items, password-protected Office files.
    Compound,
    Rtf,
    Archive(&'static str),
    Media,
    Binary,
}

pub fn kind(b: &[u8]) -> Kind {
    const MAGIC: &[(&[u8], Kind)] = &[
        (b"%PDF-", Kind::Pdf),
        (b"PK\x03\x04", Kind::Zip),
        (b"PK\x05\x06", Kind::Zip),
        (b"\x1f\x8b", Kind::Gzip),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", Kind::Compound),
        (b"{\\rtf", Kind::Rtf),
        (b"Rar!", Kind::Archive("RAR")),
        (b"7z\xbc\xaf\x27\x1c", Kind::Archive("7-Zip")),
        (b"\x89PNG", Kind::Media),
        (b"\xff\xd8\xff", Kind::Media),
        (b"GIF8", Kind::Media),
        (b"II*\x00", Kind::Media),
        (b"MM\x00*", Kind::Media),
        (b"RIFF", Kind::Media),
        (b"ID3", Kind::Media),
        (b"\x00\x00\x00\x18ftyp", Kind::Media),
        (b"\x00\x00\x00\x20ftyp", Kind::Media),
    ];
    // PDFs may have a few bytes of junk before the header.
    if memchr::memmem::find(&b[..b.len().min(1024)], b"%PDF-").is_some() {
        return Kind::Pdf;
    }
    for (magic, k) in MAGIC {
        if b.starts_with(magic) {
            return *k;
        }
    }
    if encoding_rs::Encoding::for_bom(b).is_some() || utf16_without_bom(b).is_some() || is_text(b) {
        Kind::Text
    } else {
        Kind::Binary
    }
}

/// UTF-16 without a byte-order mark, from where its NULs are: text in the Latin scripts has
/// a NUL in every other byte, the high byte of each unit. Little-endian when the odd bytes are
/// NUL, big-endian when the even ones are; at least 3 in 4 units and NULs nowhere else.
fn utf16_without_bom(b: &[u8]) -> Option<&'static encoding_rs::Encoding> {
    let head = &b[..b.len().min(4096) & !1];
    if head.len() < 8 {
        return None;
    }
    let units = head.len() / 2;
    let (mut even, mut odd) = (0, 0);
    for unit in head.chunks_exact(2) {
        even += usize::from(unit[0] == 0);
        odd += usize::from(unit[1] == 0);
    }
    if odd * 4 >= units * 3 && even == 0 {
        Some(encoding_rs::UTF_16LE)
    } else if even * 4 >= units * 3 && odd == 0 {
        Some(encoding_rs::UTF_16BE)
    } else {
        None
    }
}

/// Text: no NUL and almost only printable characters in the first 8 KiB.
fn is_text(b: &[u8]) -> bool {
    let head = &b[..b.len().min(8192)];
    if head.contains(&0) {
        return false;
    }
    if std::str::from_utf8(head).is_ok() || utf8_cut_at_end(head) {
        return true;
    }
    let printable = head
        .iter()
        .filter(|&&c| c >= 0x20 || c == b'\n' || c == b'\r' || c == b'\t')
        .count();
    printable * 100 >= head.len() * 95
}

/// UTF-8 whose only flaw is a character cut by the 8 KiB window.
fn utf8_cut_at_end(head: &[u8]) -> bool {
    match std::str::from_utf8(head) {
        Err(e) => e.error_len().is_none(),
        Ok(_) => true,
    }
}

/// Text bytes as a string, by what the bytes say: a byte-order mark (UTF-8, UTF-16LE/BE)
/// first, then UTF-16 without one, then UTF-8 when the bytes are valid UTF-8, and otherwise
/// Windows-1252 (what Dutch office software writes when it does not write Unicode).
pub fn decode_text(b: &[u8]) -> String {
    if let Some((encoding, bom)) = encoding_rs::Encoding::for_bom(b) {
        return encoding
            .decode_without_bom_handling(&b[bom..])
            .0
            .into_owned();
    }
    if let Some(encoding) = utf16_without_bom(b) {
        return encoding.decode_without_bom_handling(b).0.into_owned();
    }
    match std::str::from_utf8(b) {
        Ok(s) => s.to_string(),
        Err(_) => encoding_rs::WINDOWS_1252
            .decode_without_bom_handling(b)
            .0
            .into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utf16(s: &str, big_endian: bool) -> Vec<u8> {
        s.encode_utf16()
            .flat_map(|u| {
                if big_endian {
                    u.to_be_bytes()
                } else {
                    u.to_le_bytes()
                }
            })
            .collect()
    }

    #[test]
    fn byte_order_marks_and_utf16_without_one_are_text() {
        let text = "Patiënt\tBSN\n J. de Vries\t123456782\n";
        let le = [&[0xff, 0xfe][..], &utf16(text, false)].concat();
        let be = [&[0xfe, 0xff][..], &utf16(text, true)].concat();
        let u8bom = [&[0xef, 0xbb, 0xbf][..], text.as_bytes()].concat();
        for bytes in [le, be, u8bom, utf16(text, false), utf16(text, true)] {
            assert!(matches!(kind(&bytes), Kind::Text));
            assert_eq!(decode_text(&bytes), text);
        }
    }

    #[test]
    fn windows_1252_is_the_fallback_and_binary_stays_binary() {
        assert_eq!(decode_text(b"pati\xebnt \x80 5"), "pati\u{eb}nt \u{20ac} 5");
        // NULs in both halves of the units: not UTF-16 text.
        assert!(matches!(
            kind(&[0, 1, 0, 0, 2, 0, 0, 0, 3, 0, 0, 4]),
            Kind::Binary
        ));
    }
}
