//! Containers built here with the cfb crate; real producers' files are in tests/documents.rs.

use std::io::Write;

use super::*;
use crate::config::InspectConfig;

fn run(bytes: &[u8]) -> Extracted {
    let mut budget = Budget::new(&InspectConfig::default());
    let mut out = Extracted::default();
    extract(bytes, "attachment x", 0, &mut budget, &mut out);
    out
}

/// A compound file with the given streams (paths from the root; storages made as needed).
fn compound(streams: &[(&str, &[u8])]) -> Vec<u8> {
    let mut file = cfb::CompoundFile::create(Cursor::new(Vec::new())).unwrap();
    for (path, data) in streams {
        let parent = std::path::Path::new(path).parent().unwrap();
        if parent != std::path::Path::new("/") && !file.exists(parent) {
            file.create_storage_all(parent).unwrap();
        }
        file.create_stream(path).unwrap().write_all(data).unwrap();
    }
    file.flush().unwrap();
    file.into_inner().into_inner()
}

fn utf16(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

fn record(kind: u16, data: &[u8]) -> Vec<u8> {
    let mut r = kind.to_le_bytes().to_vec();
    r.extend((data.len() as u16).to_le_bytes());
    r.extend(data);
    r
}

fn number(row: u16, col: u16) -> Vec<u8> {
    let mut d = row.to_le_bytes().to_vec();
    d.extend(col.to_le_bytes());
    d.extend([0u8; 10]);
    record(0x0203, &d)
}

#[test]
fn cell_span_is_per_sheet_and_counts_multi_cell_records() {
    let mut biff = record(0x0809, &[0; 16]);
    biff.extend(number(0, 0));
    biff.extend(number(9, 3));
    biff.extend(record(0x000A, &[]));
    biff.extend(record(0x0809, &[0; 16]));
    // MULBLANK row 2, columns 1..=5.
    biff.extend(record(0x00BE, &[2, 0, 1, 0, 0, 0, 0, 0, 5, 0]));
    biff.extend(record(0x000A, &[]));
    assert_eq!(biff_cell_span(&biff), 10 * 4 + 5);
    // Cut short: counted as far as it goes, never a panic.
    assert_eq!(biff_cell_span(&biff[..biff.len() - 7]), 10 * 4);
}

/// Two cells at opposite corners of a sheet would make calamine allocate 16.7 million cells.
#[test]
fn a_sheet_of_two_distant_cells_is_over_the_bound_not_allocated() {
    let mut biff = record(0x0809, &[0; 16]);
    biff.extend(number(0, 0));
    biff.extend(number(65535, 255));
    biff.extend(record(0x000A, &[]));
    let out = run(&compound(&[("/Workbook", &biff)]));
    let reasons: Vec<_> = out
        .uninspectable
        .iter()
        .map(|u| u.reason.as_str())
        .collect();
    assert_eq!(reasons, ["spreadsheet over the size bound"]);
}

#[test]
fn an_outlook_item_is_read_with_its_attachments_and_attached_items() {
    let item = compound(&[
        ("/__properties_version1.0", &[0; 32]),
        ("/__substg1.0_0037001F", &utf16("Doorgestuurd: uitslag")),
        (
            "/__substg1.0_1000001F",
            &utf16("Patiënt J. de Vries, BSN 123456782."),
        ),
        (
            "/__attach_version1.0_#00000000/__substg1.0_3707001F",
            &utf16("brief.txt"),
        ),
        (
            "/__attach_version1.0_#00000000/__substg1.0_37010102",
            b"Geboren 14-03-1961",
        ),
        (
            "/__attach_version1.0_#00000001/__substg1.0_3701000D/__substg1.0_1000001E",
            b"Binnen: BSN 111222333",
        ),
    ]);
    let out = run(&item);
    assert!(out.uninspectable.is_empty());
    let all: Vec<(&str, &str)> = out
        .texts
        .iter()
        .map(|t| (t.location.as_str(), t.text.as_str()))
        .collect();
    for (location, text) in [
        ("attachment x/subject", "Doorgestuurd: uitslag"),
        ("attachment x/body", "Patiënt J. de Vries, BSN 123456782."),
        ("attachment x/brief.txt", "Geboren 14-03-1961"),
        ("attachment x/attachment 2/body", "Binnen: BSN 111222333"),
    ] {
        assert!(all.contains(&(location, text)), "{location}: {all:?}");
    }
}

#[test]
fn word_powerpoint_and_unknown_containers_say_what_they_are() {
    let mut fib = vec![0u8; 32];
    let plain = compound(&[("/WordDocument", &fib)]);
    fib[11] = 0x01;
    let encrypted = compound(&[("/WordDocument", &fib)]);
    for (bytes, reason) in [
        (plain, "legacy Word document (.doc) cannot be inspected"),
        (encrypted, "encrypted Word document (password required)"),
        (
            compound(&[("/PowerPoint Document", b"x")]),
            "legacy PowerPoint presentation (.ppt) cannot be inspected",
        ),
        (
            compound(&[("/Other", b"x")]),
            "OLE compound file of unknown kind",
        ),
        (
            b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1garbage".to_vec(),
            "corrupt OLE compound file",
        ),
    ] {
        let out = run(&bytes);
        let reasons: Vec<_> = out
            .uninspectable
            .iter()
            .map(|u| u.reason.as_str())
            .collect();
        assert_eq!(reasons, [reason]);
    }
}
