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
    if is_text(b) { Kind::Text } else { Kind::Binary }
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

/// Text bytes as a string: UTF-8 when it is, Windows-1252/Latin-1 otherwise (what Dutch
/// office software writes when it does not write UTF-8).
pub fn decode_text(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) => s.to_string(),
        Err(_) => b.iter().map(|&c| c as char).collect(),
    }
}
