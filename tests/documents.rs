//! Documents made by real producers (tests/fixtures/documents, made by make.sh there; its
//! README says how each was made), sent as attachments or as whole messages: what inspection
//! must find in each, and what it must call uninspectable, with the true reason.

use std::path::Path;

use base64::Engine;
use sluis::config::InspectConfig;
use sluis::inspect::{Detector, Inspection, Inspector};

const DIR: &str = "tests/fixtures/documents";

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(Path::new(DIR).join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// A message carrying `bytes` as one attachment declared as `ctype`, with a neutral body.
fn attached(name: &str, ctype: &str, bytes: &[u8]) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "From: a.jansen@ziekenhuis.example\r\nTo: b@praktijk.example\r\nSubject: Bijlage\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
         --b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nZie bijlage.\r\n\
         --b\r\nContent-Type: {ctype}\r\nContent-Disposition: attachment; filename=\"{name}\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{}\r\n--b--\r\n",
        lines.join("\r\n")
    )
    .into_bytes()
}

fn inspect(raw: &[u8]) -> Inspection {
    Inspector::new(&InspectConfig::default())
        .unwrap()
        .inspect(raw)
}

fn attachment(name: &str, ctype: &str) -> Inspection {
    inspect(&attached(name, ctype, &fixture(name)))
}

fn show(r: &Inspection) -> String {
    r.findings
        .iter()
        .map(|f| {
            format!(
                "{}/{:?}@{} {:?}",
                f.detector.name(),
                f.confidence,
                f.location,
                f.masked
            )
        })
        .collect::<Vec<_>>()
        .join("\n  ")
}

fn bsns(r: &Inspection) -> Vec<&str> {
    r.findings
        .iter()
        .filter(|f| f.detector == Detector::Bsn)
        .map(|f| f.masked.as_str())
        .collect()
}

fn reasons(r: &Inspection) -> Vec<&str> {
    r.findings
        .iter()
        .filter(|f| f.detector == Detector::Uninspectable)
        .map(|f| f.masked.as_str())
        .collect()
}

/// Read, the BSN found, nothing called uninspectable.
#[track_caller]
fn reads_the_bsn(r: &Inspection, what: &str) {
    assert!(
        !bsns(r).is_empty() && reasons(r).is_empty() && r.sensitive,
        "{what}:\n  {}",
        show(r)
    );
}

#[test]
fn pdfs_from_real_producers_are_read() {
    for name in [
        // LibreOffice: subset TrueType fonts, text only through their ToUnicode maps.
        "lo-ontslagbrief.pdf",
        "lo-labuitslagen.pdf",
        // reportlab: ASCII85Decode before FlateDecode.
        "rl-ascii85.pdf",
        // fpdf2: an embedded TrueType font as a CID font, 2-byte glyph ids, Identity-H.
        "fpdf2-truetype.pdf",
        // qpdf: object streams and a cross-reference stream.
        "qpdf-objstm.pdf",
        // qpdf: encrypted with an owner password only (AES-256 and RC4-128).
        "qpdf-owner-only-aes256.pdf",
        "qpdf-owner-only-rc4.pdf",
        // LibreOffice's content stream under each remaining standard filter.
        "pikepdf-filter-asciihex.pdf",
        "pikepdf-filter-lzw.pdf",
        "pikepdf-filter-runlength.pdf",
        "pikepdf-filter-flate-png-up.pdf",
    ] {
        reads_the_bsn(&attachment(name, "application/pdf"), name);
        // Declared wrongly, read all the same.
        reads_the_bsn(&attachment(name, "application/octet-stream"), name);
    }
}

#[test]
fn pdfs_that_cannot_be_read_say_why() {
    for (name, reason) in [
        (
            "qpdf-user-password.pdf",
            "encrypted PDF (password required)",
        ),
        (
            "fpdf2-no-tounicode.pdf",
            "PDF text in a font without a Unicode map (cannot be decoded)",
        ),
    ] {
        let r = attachment(name, "application/pdf");
        assert_eq!(reasons(&r), [reason], "{name}:\n  {}", show(&r));
        assert!(bsns(&r).is_empty());
    }
}

#[test]
fn legacy_office_and_rtf_are_read_or_named() {
    reads_the_bsn(
        &attachment("lo-labuitslagen.xls", "application/vnd.ms-excel"),
        "xls",
    );
    reads_the_bsn(&attachment("lo-ontslagbrief.rtf", "application/rtf"), "rtf");
    reads_the_bsn(
        &attachment(
            "lo-ontslagbrief.docx",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        ),
        "docx",
    );
    for (name, reason) in [
        (
            "lo-ontslagbrief.doc",
            "legacy Word document (.doc) cannot be inspected",
        ),
        (
            "docx-encrypted.docx",
            "encrypted Office document (password required)",
        ),
    ] {
        let r = attachment(name, "application/octet-stream");
        assert_eq!(reasons(&r), [reason], "{name}:\n  {}", show(&r));
    }
}

#[test]
fn encrypted_mail_is_uninspectable_signed_mail_is_read() {
    for (name, reason) in [
        (
            "smime-enveloped-x-pkcs7.eml",
            "S/MIME-encrypted message (cannot be inspected)",
        ),
        (
            "smime-enveloped-cms.eml",
            "S/MIME-encrypted message (cannot be inspected)",
        ),
        (
            "pgp-mime.eml",
            "PGP/MIME-encrypted message (cannot be inspected)",
        ),
        (
            "pgp-inline.eml",
            "PGP-encrypted content (inline armour, cannot be inspected)",
        ),
    ] {
        let r = inspect(&fixture(name));
        assert_eq!(reasons(&r), [reason], "{name}:\n  {}", show(&r));
    }
    for name in ["smime-signed-clear.eml", "smime-signed-opaque.eml"] {
        reads_the_bsn(&inspect(&fixture(name)), name);
    }
}

/// Excel's "Unicode text": UTF-16LE with a byte-order mark, however it is declared.
#[test]
fn utf16_attachments_are_read_however_declared() {
    for ctype in [
        "text/csv",
        "text/plain; charset=utf-8",
        "application/octet-stream",
    ] {
        reads_the_bsn(&attachment("labuitslagen-utf16.txt", ctype), ctype);
    }
    // The same table as UTF-16BE without a byte-order mark, in the body, no charset given.
    let table = String::from_utf16(
        &fixture("labuitslagen-utf16.txt")[2..]
            .chunks(2)
            .map(|u| u16::from_le_bytes([u[0], u[1]]))
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let be: Vec<u8> = table.encode_utf16().flat_map(u16::to_be_bytes).collect();
    let mut raw = b"From: a@ziekenhuis.example\r\nContent-Type: text/plain\r\n\
        Content-Transfer-Encoding: base64\r\n\r\n"
        .to_vec();
    raw.extend(
        base64::engine::general_purpose::STANDARD
            .encode(&be)
            .as_bytes(),
    );
    reads_the_bsn(&inspect(&raw), "UTF-16BE body without a BOM");
}

/// A number a mail client wrapped with a soft line break (RFC 3676) is whole again.
#[test]
fn format_flowed_text_is_unwrapped_before_detection() {
    let raw = b"From: a@ziekenhuis.example\r\n\
        Content-Type: text/plain; charset=utf-8; format=flowed; delsp=yes\r\n\r\n\
        De pati\xc3\xabnt met BSN 1234 \r\n56782 is opgenomen.\r\n";
    reads_the_bsn(&inspect(raw), "flowed");
    // The same without format=flowed: two numbers, neither a BSN.
    let plain = String::from_utf8_lossy(raw).replace("; format=flowed; delsp=yes", "");
    assert!(bsns(&inspect(plain.as_bytes())).is_empty());
}

/// A leaflet for patients with telephone numbers whose tails pass the 11-proof, and a footer
/// with KvK and AGB numbers that do: nothing sensitive.
#[test]
fn phone_numbers_and_labelled_numbers_are_not_bsns() {
    let r = attachment("lo-folder.pdf", "application/pdf");
    assert!(bsns(&r).is_empty() && !r.sensitive, "{}", show(&r));
    // 54530088 and 054530088 pass the 11-proof; so do 12345611 and 61234503.
    let body = "Informatie voor patiënten. Bel 06-54530088, 06 54530088, +31 6 54530088 \
        of (06) 54530088.\r\nZiekenhuis Voorbeeld, KvK 12345611, AGB-code 61234503.\r\n";
    let raw = format!("From: a@ziekenhuis.example\r\nSubject: Folder\r\n\r\n{body}");
    let r = inspect(raw.as_bytes());
    assert_eq!(r.score, 0, "{}", show(&r));
    assert!(
        r.findings
            .iter()
            .all(|f| f.detector == Detector::Bsn && f.confidence == sluis::inspect::Confidence::Low),
        "{}",
        show(&r)
    );
    assert_eq!(
        bsns(&r).len(),
        2,
        "only the KvK and AGB numbers: {}",
        show(&r)
    );
    // The same numbers as BSNs next to "patiënt" are found.
    let r = inspect(b"From: a@ziekenhuis.example\r\n\r\nPatient BSN 054530088.\r\n");
    reads_the_bsn(&r, "a BSN with a leading zero");
}

/// HL7 v2: a PID segment whose identifier is typed NNNLD by NLMINBIZA is a BSN in patient
/// context, with no Dutch word near it.
#[test]
fn hl7_pid_segments_with_a_bsn_are_patient_context() {
    let hl7 = "MSH|^~\\&|HIS|ZKH|LAB|ZKH|202611301200||ADT^A08|1|P|2.5\r\
        PID|1||123456782^^^NLMINBIZA^NNNLD||Vries^J^^de||19610314|M\r";
    let r = inspect(&attached("adt.hl7", "application/hl7-v2", hl7.as_bytes()));
    reads_the_bsn(&r, "HL7 PID");
    let plain = hl7.replace("^^^NLMINBIZA^NNNLD", "^^^ZKH^MR");
    let r = inspect(&attached("adt.hl7", "application/hl7-v2", plain.as_bytes()));
    assert!(!r.sensitive, "{}", show(&r));
}

/// A copy of a passport, as text a scanner's OCR or a PDF gives: the zone's check digits hold
/// (ICAO 9303's Dutch specimen), so it is an identity document, and the BSN in its
/// personal-number field is a BSN.
#[test]
fn passport_zones_and_named_document_numbers_are_identity_documents() {
    let body = "Bijgaand kopie paspoort van de nieuwe arts.\r\n\r\n\
        P<NLDDE<BRUIJN<<WILLEKE<LISELOTTE<<<<<<<<<<<\r\n\
        SPECI20142NLD6503101F2401151999999990<<<<<82\r\n";
    let raw = format!("From: hr@ziekenhuis.example\r\nSubject: Kopie\r\n\r\n{body}");
    let r = inspect(raw.as_bytes());
    let ids: Vec<_> = r
        .findings
        .iter()
        .filter(|f| f.detector == Detector::IdDocument)
        .collect();
    assert_eq!(ids.len(), 1, "{}", show(&r));
    assert_eq!(bsns(&r), ["***-**-990"], "{}", show(&r));
    assert!(r.sensitive);
    // One check digit off: not a zone, nothing found.
    let off = raw.replace("1F240115", "2F240115");
    let r = inspect(off.as_bytes());
    assert!(r.findings.is_empty(), "{}", show(&r));
    let r = inspect(b"From: hr@ziekenhuis.example\r\n\r\nID-kaart documentnummer IR5K29RT1.\r\n");
    assert!(r.sensitive, "{}", show(&r));
}
