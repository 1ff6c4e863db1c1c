//! ZIP containers: Office Open XML (DOCX, XLSX), OpenDocument (ODT, ODS) and plain archives.
//!
//! Document text is joined across runs (Word splits "123456782" into several `<w:t>` runs when
//! the spell checker or an edit touched it), paragraphs become lines and table cells tabs, so
//! that a column headed "BSN" still sits above its numbers. Spreadsheet cells are resolved
//! through the shared-strings table into rows of tab-separated values.

use std::io::Cursor;

use quick_xml::Reader;
use quick_xml::events::Event;
use zip::ZipArchive;

use super::{Budget, Extracted};

type Archive<'a> = ZipArchive<Cursor<&'a [u8]>>;

pub fn extract(
    bytes: &[u8],
    location: &str,
    depth: usize,
    budget: &mut Budget,
    out: &mut Extracted,
) {
    let mut zip = match ZipArchive::new(Cursor::new(bytes)) {
        Ok(z) => z,
        Err(_) => {
            out.cannot(location, "corrupt ZIP archive");
            return;
        }
    };
    let names: Vec<String> = zip.file_names().map(str::to_string).collect();
    let has = |n: &str| names.iter().any(|x| x == n);
    if has("word/document.xml") {
        let parts: Vec<&String> = names
            .iter()
            .filter(|n| {
                n.starts_with("word/")
                    && n.ends_with(".xml")
                    && [
                        "document",
                        "header",
                        "footer",
                        "footnotes",
                        "endnotes",
                        "comments",
                    ]
                    .iter()
                    .any(|p| n[5..].starts_with(p))
            })
            .collect();
        for name in parts {
            if let Some(xml) = member(&mut zip, name, location, budget, out) {
                out.text(format!("{location}/{name}"), xml_text(&xml, WORD));
            }
        }
    } else if has("xl/workbook.xml") {
        spreadsheet(&mut zip, &names, location, budget, out);
    } else if has("content.xml") && has("mimetype") {
        if let Some(xml) = member(&mut zip, "content.xml", location, budget, out) {
            out.text(
                format!("{location}/content.xml"),
                xml_text(&xml, OPENDOCUMENT),
            );
        }
    } else {
        archive(&mut zip, &names, location, depth, budget, out);
    }
}

/// Reads one member within the budget; notes why when it cannot.
fn member(
    zip: &mut Archive,
    name: &str,
    location: &str,
    budget: &mut Budget,
    out: &mut Extracted,
) -> Option<Vec<u8>> {
    let here = format!("{location}/{}", crate::inspect::mask::name(name));
    if !budget.take_part() {
        if budget.parts_over() == 1 {
            out.cannot(
                here,
                "too many parts to inspect: this and the parts after it were not read",
            );
        }
        return None;
    }
    let index = zip.index_for_name(name)?;
    match zip.by_index_raw(index) {
        Ok(f) if f.encrypted() => {
            out.cannot(here, "encrypted archive member");
            return None;
        }
        Ok(_) => {}
        Err(_) => {
            out.cannot(here, "corrupt archive member");
            return None;
        }
    }
    let result = match zip.by_index(index) {
        Ok(f) => budget.read_all(f),
        Err(_) => {
            out.cannot(
                here,
                "archive member cannot be read (unsupported compression)",
            );
            return None;
        }
    };
    match result {
        Ok(Some(b)) => Some(b),
        Ok(None) => {
            out.cannot(here, "decompressed size over the bound");
            None
        }
        Err(_) => {
            out.cannot(here, "corrupt archive member");
            None
        }
    }
}

fn archive(
    zip: &mut Archive,
    names: &[String],
    location: &str,
    depth: usize,
    budget: &mut Budget,
    out: &mut Extracted,
) {
    if depth >= budget.max_depth {
        out.cannot(location, "archives nested too deeply");
        return;
    }
    for name in names {
        if name.ends_with('/') {
            continue;
        }
        if budget.expired() {
            out.cannot(location, "inspection time limit reached");
            return;
        }
        let here = format!("{location}/{}", crate::inspect::mask::name(name));
        // The member's name is something people write, too.
        out.text(format!("{here} (name)"), name.clone());
        if let Some(bytes) = member(zip, name, location, budget, out) {
            super::attachment(&bytes, &here, depth + 1, budget, out);
        }
    }
}

fn spreadsheet(
    zip: &mut Archive,
    names: &[String],
    location: &str,
    budget: &mut Budget,
    out: &mut Extracted,
) {
    let shared: Vec<String> = match member(zip, "xl/sharedStrings.xml", location, budget, out) {
        Some(xml) => shared_strings(&xml),
        None => Vec::new(),
    };
    let mut sheets: Vec<&String> = names
        .iter()
        .filter(|n| n.starts_with("xl/worksheets/") && n.ends_with(".xml"))
        .collect();
    sheets.sort();
    for name in sheets {
        if let Some(xml) = member(zip, name, location, budget, out) {
            out.text(format!("{location}/{name}"), sheet_text(&xml, &shared));
        }
    }
}

/// How an XML vocabulary lays out text.
struct Layout {
    text: &'static [&'static [u8]],
    line: &'static [&'static [u8]],
    cell: &'static [&'static [u8]],
    tab: &'static [&'static [u8]],
}

const WORD: Layout = Layout {
    text: &[b"w:t", b"w:delText"],
    line: &[b"w:p", b"w:br", b"w:tr"],
    cell: &[b"w:tc"],
    tab: &[b"w:tab"],
};

const OPENDOCUMENT: Layout = Layout {
    text: &[b"text:p", b"text:h", b"text:span", b"text:a", b"text:s"],
    line: &[b"text:p", b"text:h", b"table:table-row", b"text:line-break"],
    cell: &[b"table:table-cell"],
    tab: &[b"text:tab"],
};

fn xml_text(xml: &[u8], layout: Layout) -> String {
    let mut reader = Reader::from_reader(xml);
    let mut out = String::new();
    let mut depth_in_text = 0usize;
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(Event::Start(e)) if layout.text.contains(&e.name().as_ref()) => {
                depth_in_text += 1;
            }
            Ok(Event::End(e)) => {
                let n = e.name();
                let n = n.as_ref();
                if layout.text.contains(&n) {
                    depth_in_text = depth_in_text.saturating_sub(1);
                }
                if layout.cell.contains(&n) {
                    out.push('\t');
                } else if layout.line.contains(&n) {
                    out.push('\n');
                }
            }
            Ok(Event::Empty(e)) => {
                let n = e.name();
                let n = n.as_ref();
                if layout.tab.contains(&n) {
                    out.push('\t');
                } else if layout.line.contains(&n) {
                    out.push('\n');
                } else if layout.cell.contains(&n) {
                    out.push('\t');
                }
            }
            Ok(Event::Text(t)) if depth_in_text > 0 => {
                if let Ok(s) = t.unescape() {
                    out.push_str(&s);
                }
            }
            Ok(Event::Eof) | Err(_) => break,
            _ => {}
        }
        buf.clear();
    }
    out
}

fn shared_strings(xml: &[u8]) -> Vec<String> {
    let mut reader = Reader::from_reader(xml);
    let mut strings = Vec::new();
    let mut current: Option<String> = None;
    let mut in_t = false;
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(Event::Start(e)) => match e.name().as_ref() {
                b"si" => current = Some(String::new()),
                b"t" => in_t = true,
                _ => {}
            },
            Ok(Event::End(e)) => match e.name().as_ref() {
                b"si" => strings.push(current.take().unwrap_or_default()),
                b"t" => in_t = false,
                _ => {}
            },
            Ok(Event::Text(t)) if in_t => {
                if let (Some(c), Ok(s)) = (current.as_mut(), t.unescape()) {
                    c.push_str(&s);
                }
            }
            Ok(Event::Eof) | Err(_) => break,
            _ => {}
        }
        buf.clear();
    }
    strings
}

/// Rows of tab-separated cell values, shared strings resolved.
fn sheet_text(xml: &[u8], shared: &[String]) -> String {
    let mut reader = Reader::from_reader(xml);
    let mut out = String::new();
    let mut cell_type: Option<Vec<u8>> = None;
    let mut in_value = false;
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(Event::Start(e)) => match e.name().as_ref() {
                b"c" => {
                    cell_type = e
                        .try_get_attribute("t")
                        .ok()
                        .flatten()
                        .map(|a| a.value.into_owned());
                }
                b"v" | b"t" => in_value = true,
                _ => {}
            },
            Ok(Event::End(e)) => match e.name().as_ref() {
                b"c" => out.push('\t'),
                b"row" => out.push('\n'),
                b"v" | b"t" => in_value = false,
                _ => {}
            },
            Ok(Event::Empty(e)) if e.name().as_ref() == b"c" => out.push('\t'),
            Ok(Event::Text(t)) if in_value => {
                let Ok(v) = t.unescape() else { continue };
                if cell_type.as_deref() == Some(b"s") {
                    if let Some(s) = v.trim().parse::<usize>().ok().and_then(|i| shared.get(i)) {
                        out.push_str(s);
                    }
                } else {
                    out.push_str(&v);
                }
            }
            Ok(Event::Eof) | Err(_) => break,
            _ => {}
        }
        buf.clear();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_runs_join_and_cells_separate() {
        let xml = br#"<w:document><w:body><w:p><w:r><w:t>BSN </w:t></w:r><w:r><w:t>1234</w:t></w:r><w:r><w:t>56782</w:t></w:r></w:p><w:tbl><w:tr><w:tc><w:p><w:r><w:t>a</w:t></w:r></w:p></w:tc><w:tc><w:p><w:r><w:t>b</w:t></w:r></w:p></w:tc></w:tr></w:tbl></w:body></w:document>"#;
        let t = xml_text(xml, WORD);
        assert!(t.starts_with("BSN 123456782\n"), "{t:?}");
        assert!(t.contains("a\n\tb\n\t"), "{t:?}");
    }

    #[test]
    fn sheet_cells_resolve_shared_strings() {
        let shared = shared_strings(br#"<sst><si><t>BSN</t></si><si><t>Naam</t></si></sst>"#);
        let sheet = br#"<worksheet><sheetData><row><c t="s"><v>1</v></c><c t="s"><v>0</v></c></row><row><c t="inlineStr"><is><t>Jan</t></is></c><c><v>123456782</v></c></row></sheetData></worksheet>"#;
        assert_eq!(
            sheet_text(sheet, &shared),
            "Naam\tBSN\t\nJan\t123456782\t\n"
        );
    }
}
