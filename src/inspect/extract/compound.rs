//! OLE compound files (CFB): the container of Office 97–2003 documents, of Outlook items, and
//! of Office files encrypted with a password (whatever their format inside).
//!
//! The `cfb` crate opens the container; what is inside decides the rest: a workbook is read by
//! calamine, an Outlook item through its property streams (MS-OXMSG); a Word 97 document, a
//! PowerPoint file and anything encrypted are uninspectable, each with its true reason.

use std::io::{Cursor, Read};

use calamine::Reader;

use super::{Budget, Extracted};

type Compound<'a> = cfb::CompoundFile<Cursor<&'a [u8]>>;

/// Nested Outlook items (a message attached to a message attached to ...).
const MAX_ITEM_DEPTH: usize = 8;

pub fn extract(
    bytes: &[u8],
    location: &str,
    depth: usize,
    budget: &mut Budget,
    out: &mut Extracted,
) {
    let outcome = super::guarded(|| {
        let mut file = match cfb::CompoundFile::open(Cursor::new(bytes)) {
            Ok(f) => f,
            Err(_) => {
                out.cannot(location, "corrupt OLE compound file");
                return;
            }
        };
        let root = |name: &str| file.exists(format!("/{name}"));
        if root("EncryptionInfo") && root("EncryptedPackage") {
            // ECMA-376 encryption: an OOXML document (Word, Excel, PowerPoint) with a password.
            out.cannot(location, "encrypted Office document (password required)");
        } else if root("WordDocument") {
            let reason = if word_encrypted(&mut file) {
                "encrypted Word document (password required)"
            } else {
                "legacy Word document (.doc) cannot be inspected"
            };
            out.cannot(location, reason);
        } else if root("Workbook") || root("Book") {
            workbook(bytes, &mut file, location, budget, out);
        } else if root("__properties_version1.0") {
            outlook_item(&mut file, "", location, depth, budget, out);
        } else if root("PowerPoint Document") {
            out.cannot(
                location,
                "legacy PowerPoint presentation (.ppt) cannot be inspected",
            );
        } else {
            out.cannot(location, "OLE compound file of unknown kind");
        }
    });
    if outcome.is_none() {
        crate::metrics::inspect_failed("compound");
        out.cannot(location, "OLE compound file could not be read (malformed)");
    }
}

/// A stream of the file, read within the budget; `None` when absent, unreadable or over it.
fn stream(file: &mut Compound, path: &str, budget: &mut Budget) -> Option<Vec<u8>> {
    let s = file.open_stream(path).ok()?;
    budget.read_all(s).ok().flatten()
}

/// The FIB's fEncrypted flag ([MS-DOC] 2.5.2: bit 8 of the 16-bit word at offset 0x0A).
fn word_encrypted(file: &mut Compound) -> bool {
    let mut fib = [0u8; 12];
    file.open_stream("/WordDocument")
        .and_then(|mut s| s.read_exact(&mut fib))
        .is_ok_and(|()| u16::from_le_bytes([fib[10], fib[11]]) & 0x0100 != 0)
}

/// An Excel 97–2003 workbook (BIFF8), read by calamine, every sheet's cells as tab-separated
/// rows.
fn workbook(
    bytes: &[u8],
    file: &mut Compound,
    location: &str,
    budget: &mut Budget,
    out: &mut Extracted,
) {
    let name = if file.exists("/Workbook") {
        "/Workbook"
    } else {
        "/Book"
    };
    let Some(biff) = stream(file, name, budget) else {
        out.cannot(location, "decompressed size over the bound");
        return;
    };
    // calamine lays out each sheet as a dense grid from its first to its last cell; two cells
    // far apart would make a grid of millions from a file of a few kilobytes.
    let cells = biff_cell_span(&biff);
    if cells.saturating_mul(64) > budget.bytes_left() {
        out.cannot(location, "spreadsheet over the size bound");
        return;
    }
    let mut xls = match calamine::Xls::new(Cursor::new(bytes)) {
        Ok(x) => x,
        Err(calamine::XlsError::Password) => {
            out.cannot(location, "encrypted Excel workbook (password required)");
            return;
        }
        Err(_) => {
            out.cannot(location, "Excel workbook could not be read (malformed)");
            return;
        }
    };
    for (i, sheet) in xls.sheet_names().into_iter().enumerate() {
        let Ok(range) = xls.worksheet_range(&sheet) else {
            continue;
        };
        let mut text = String::new();
        for row in range.rows() {
            for (j, cell) in row.iter().enumerate() {
                if j > 0 {
                    text.push('\t');
                }
                text.push_str(&cell.to_string());
            }
            text.push('\n');
        }
        if !budget.charge(text.len() as u64) {
            out.cannot(location, "decompressed size over the bound");
            return;
        }
        out.text(format!("{location}/sheet {}", i + 1), text);
    }
}

/// The cells calamine would allocate for the workbook stream `biff`: per sheet (BOF to EOF),
/// rows times columns between the first and last cell records.
pub fn biff_cell_span(biff: &[u8]) -> u64 {
    let mut total: u64 = 0;
    let mut span: Option<(u16, u16, u16, u16)> = None;
    let mut close = |span: &mut Option<(u16, u16, u16, u16)>| {
        if let Some((r0, r1, c0, c1)) = span.take() {
            total = total
                .saturating_add((u64::from(r1 - r0) + 1).saturating_mul(u64::from(c1 - c0) + 1));
        }
    };
    let mut at = 0;
    while let Some(head) = biff.get(at..at + 4) {
        let kind = u16::from_le_bytes([head[0], head[1]]);
        let len = usize::from(u16::from_le_bytes([head[2], head[3]]));
        let data = biff.get(at + 4..at + 4 + len).unwrap_or(&[]);
        at += 4 + len;
        let cell = |row: u16, first: u16, last: u16, span: &mut Option<(u16, u16, u16, u16)>| {
            let (r0, r1, c0, c1) = span.get_or_insert((row, row, first, last));
            *r0 = (*r0).min(row);
            *r1 = (*r1).max(row);
            *c0 = (*c0).min(first);
            *c1 = (*c1).max(last);
        };
        let word = |i: usize| data.get(i..i + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
        match kind {
            // BOF, EOF: a sheet's substream begins or ends.
            0x0809 | 0x000A => close(&mut span),
            // FORMULA, LABELSST, NUMBER, RK, LABEL, BOOLERR, BLANK, RSTRING: row, column.
            0x0006 | 0x00FD | 0x0203 | 0x027E | 0x0204 | 0x0205 | 0x0201 | 0x00D6 => {
                if let (Some(r), Some(c)) = (word(0), word(2)) {
                    cell(r, c, c, &mut span);
                }
            }
            // MULRK, MULBLANK: row, first column, ..., last column.
            0x00BD | 0x00BE => {
                if let (Some(r), Some(c0), Some(c1)) =
                    (word(0), word(2), len.checked_sub(2).and_then(word))
                {
                    cell(r, c0.min(c1), c0.max(c1), &mut span);
                }
            }
            _ => {}
        }
    }
    close(&mut span);
    total
}

/// An Outlook item ([MS-OXMSG]): subject, sender and recipient names, the plain and HTML
/// bodies, and each attachment (its name, its bytes as any attachment, an attached item
/// recursively). Property streams are `__substg1.0_<tag><type>`: type 001F is UTF-16LE,
/// 001E 8-bit text, 0102 binary, 000D an embedded storage.
fn outlook_item(
    file: &mut Compound,
    storage: &str,
    location: &str,
    depth: usize,
    budget: &mut Budget,
    out: &mut Extracted,
) {
    const TEXT: &[(&str, &str)] = &[
        ("0037", "subject"),
        ("0C1A", "sender name"),
        ("0E04", "to"),
        ("0E03", "cc"),
        ("1000", "body"),
    ];
    for (tag, what) in TEXT {
        if let Some(text) = property_text(file, storage, tag, budget) {
            out.text(format!("{location}/{what}"), text);
        }
    }
    if let Some(html) = stream(file, &format!("{storage}/__substg1.0_10130102"), budget) {
        let html = super::sniff::decode_text(&html);
        out.text(
            format!("{location}/body (html)"),
            super::html::to_text(&html),
        );
    }
    let attachments: Vec<String> = file
        .read_storage(if storage.is_empty() { "/" } else { storage })
        .map(|entries| {
            entries
                .filter(|e| e.is_storage() && e.name().starts_with("__attach_version1.0_#"))
                .map(|e| e.path().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    for (i, att) in attachments.iter().enumerate() {
        if !budget.take_part() {
            out.cannot(location, "too many parts to inspect");
            return;
        }
        let name = property_text(file, att, "3707", budget)
            .or_else(|| property_text(file, att, "3704", budget));
        let here = match &name {
            Some(n) => format!("{location}/{}", crate::inspect::mask::name(n)),
            None => format!("{location}/attachment {}", i + 1),
        };
        if let Some(n) = name {
            out.text(format!("{here} (name)"), n);
        }
        let embedded = format!("{att}/__substg1.0_3701000D");
        if file.is_storage(&embedded) {
            if depth + 1 >= MAX_ITEM_DEPTH {
                out.cannot(here, "nesting: attached items nested too deeply");
            } else {
                outlook_item(file, &embedded, &here, depth + 1, budget, out);
            }
        } else if let Some(bytes) = stream(file, &format!("{att}/__substg1.0_37010102"), budget) {
            super::attachment(&bytes, &here, depth + 1, budget, out);
        }
    }
}

/// A text property of the item or attachment at `storage`, Unicode or 8-bit.
fn property_text(
    file: &mut Compound,
    storage: &str,
    tag: &str,
    budget: &mut Budget,
) -> Option<String> {
    if let Some(b) = stream(file, &format!("{storage}/__substg1.0_{tag}001F"), budget) {
        let (text, _) = encoding_rs::UTF_16LE.decode_without_bom_handling(&b);
        return Some(text.trim_end_matches('\0').to_string());
    }
    let b = stream(file, &format!("{storage}/__substg1.0_{tag}001E"), budget)?;
    Some(
        super::sniff::decode_text(&b)
            .trim_end_matches('\0')
            .to_string(),
    )
}

#[cfg(test)]
mod tests;
