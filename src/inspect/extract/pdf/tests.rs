//! The walk over content streams, on PDFs lopdf writes here; real producers' PDFs are in
//! tests/documents.rs.

use super::*;
use crate::config::InspectConfig;
use lopdf::{Stream, dictionary};

/// A one-page PDF whose page shows `content` with font F1 = `font`, and draws form Fm1 =
/// `form` (when given) with its own font F2.
fn pdf(content: &[u8], font: Dictionary, form: Option<(&[u8], Dictionary)>) -> Vec<u8> {
    let mut doc = Document::with_version("1.7");
    let font_id = doc.add_object(font);
    let mut xobjects = Dictionary::new();
    if let Some((form, form_font)) = form {
        let form_font_id = doc.add_object(form_font);
        let form_id = doc.add_object(Stream::new(
            dictionary! {
                "Type" => "XObject", "Subtype" => "Form",
                "Resources" => dictionary! { "Font" => dictionary! { "F2" => form_font_id } },
            },
            form.to_vec(),
        ));
        xobjects.set("Fm1", form_id);
    }
    let content = Stream::new(Dictionary::new(), content.to_vec());
    let resources =
        dictionary! { "Font" => dictionary! { "F1" => font_id }, "XObject" => xobjects };
    one_page(doc, content, resources)
}

/// Saves `doc` with one page that shows `content` with `resources`.
fn one_page(mut doc: Document, content: Stream, resources: Dictionary) -> Vec<u8> {
    let content_id = doc.add_object(content);
    let pages_id = doc.new_object_id();
    let page_id = doc.add_object(dictionary! {
        "Type" => "Page", "Parent" => pages_id, "Contents" => content_id, "Resources" => resources,
    });
    doc.objects.insert(
        pages_id,
        Object::Dictionary(
            dictionary! { "Type" => "Pages", "Kids" => vec![page_id.into()], "Count" => 1 },
        ),
    );
    let catalog = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog);
    let mut out = Vec::new();
    doc.save_to(&mut out).unwrap();
    out
}

fn helvetica() -> Dictionary {
    dictionary! { "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica", "Encoding" => "WinAnsiEncoding" }
}

fn run(bytes: &[u8]) -> Extracted {
    run_with(bytes, &InspectConfig::default())
}

fn run_with(bytes: &[u8], config: &InspectConfig) -> Extracted {
    let mut budget = Budget::new(config);
    let mut out = Extracted::default();
    extract(bytes, "attachment x.pdf", &mut budget, &mut out);
    out
}

fn text(out: &Extracted) -> String {
    out.texts.iter().map(|t| t.text.as_str()).collect()
}

fn reasons(out: &Extracted) -> Vec<&str> {
    out.uninspectable
        .iter()
        .map(|u| u.reason.as_str())
        .collect()
}

#[test]
fn tj_arrays_moves_and_kerning_separate_what_they_should() {
    let out = run(&pdf(
        b"BT /F1 12 Tf 72 712 Td (BSN: ) Tj [(1234)-20(5678)-30(2)] TJ 100 0 Td (cel) Tj \
          0 -14 Td [(a)-500(b)] TJ ET BT /F1 12 Tf (caf\\351) Tj ET",
        helvetica(),
        None,
    ));
    assert_eq!(text(&out), "\nBSN: 123456782 cel\na b\ncaf\u{e9}\n");
    assert!(out.uninspectable.is_empty(), "{:?}", reasons(&out));
}

#[test]
fn text_in_forms_is_read_once_even_when_a_form_draws_itself() {
    let out = run(&pdf(
        b"/Fm1 Do /Fm1 Do",
        helvetica(),
        Some((b"BT /F2 10 Tf (BSN 123456782) Tj ET /Fm1 Do", helvetica())),
    ));
    assert_eq!(text(&out), "BSN 123456782\n");
}

/// A composite font without a ToUnicode map shows glyph ids: never text, never clean.
#[test]
fn a_cid_font_without_a_unicode_map_is_uninspectable() {
    let cid = dictionary! {
        "Type" => "Font", "Subtype" => "Type0", "BaseFont" => "AAAAAA+DejaVuSans",
        "Encoding" => "Identity-H",
    };
    let out = run(&pdf(
        b"BT /F1 12 Tf <0036002B0031000300140015001600170018> Tj ET",
        cid,
        None,
    ));
    assert_eq!(
        reasons(&out),
        ["PDF text in a font without a Unicode map (cannot be decoded)"]
    );
}

fn cid_without_map() -> Dictionary {
    dictionary! { "Type" => "Font", "Subtype" => "Type0", "Encoding" => "Identity-H" }
}

/// A Type 3 font's glyphs are drawings with names of the producer's choosing: without a map
/// they are not text.
#[test]
fn a_type3_font_without_a_unicode_map_is_uninspectable() {
    let type3 = dictionary! {
        "Type" => "Font", "Subtype" => "Type3",
        "Encoding" => dictionary! { "Differences" => vec![48.into(), "g0".into(), "g1".into()] },
    };
    let out = run(&pdf(b"BT /F1 12 Tf (0101010101) Tj ET", type3, None));
    assert_eq!(
        reasons(&out),
        ["PDF text in a font without a Unicode map (cannot be decoded)"]
    );
}

/// A bullet or two in a symbol font is not a reason to give up on a document; eight glyphs
/// that do not decode are.
#[test]
fn a_few_undecodable_symbols_are_tolerated_eight_are_not() {
    let page = b"BT /F1 12 Tf (Geachte collega,) Tj ET /Fm1 Do";
    let seven = pdf(
        page,
        helvetica(),
        Some((
            b"BT /F2 9 Tf <00360036003600360036003600 36> Tj ET",
            cid_without_map(),
        )),
    );
    let out = run(&seven);
    assert!(out.uninspectable.is_empty(), "{:?}", reasons(&out));
    assert_eq!(text(&out), "Geachte collega,\n\n");
    let eight = pdf(
        page,
        helvetica(),
        Some((
            b"BT /F2 9 Tf <0036003600360036003600360036 0036> Tj ET",
            cid_without_map(),
        )),
    );
    let out = run(&eight);
    assert_eq!(
        reasons(&out),
        ["PDF text in a font without a Unicode map (cannot be decoded)"]
    );
}

#[test]
fn a_page_without_text_is_uninspectable() {
    let out = run(&pdf(b"q 100 0 0 100 0 0 cm Q", helvetica(), None));
    assert_eq!(reasons(&out), ["PDF without text (a scan or only images)"]);
}

#[test]
fn garbage_is_malformed_not_a_panic() {
    for bytes in [
        b"%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 1 0 R >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF".as_slice(),
        b"%PDF-1.4\n%%EOF",
        b"%PDF-",
    ] {
        let out = run(bytes);
        assert_eq!(out.uninspectable.len(), 1, "{:?}", reasons(&out));
        assert!(out.texts.is_empty());
    }
}

#[test]
fn a_flate_bomb_in_page_content_is_over_the_bound() {
    let zeros = vec![b' '; 8 << 20];
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut e, &zeros).unwrap();
    let bomb = Stream::new(
        dictionary! { "Filter" => "FlateDecode" },
        e.finish().unwrap(),
    );
    let bytes = one_page(Document::with_version("1.7"), bomb, Dictionary::new());
    let config = InspectConfig {
        max_decompressed_bytes: 1 << 20,
        ..InspectConfig::default()
    };
    let out = run_with(&bytes, &config);
    assert_eq!(reasons(&out), ["decompressed size over the bound"]);
}

#[test]
fn glyphs_decode_one_and_two_byte_codes_and_count_a_code_cut_short() {
    let mut simple = Glyphs {
        encoding: Encoding::SimpleEncoding(b"WinAnsiEncoding"),
        width: 1,
        memo: Vec::new(),
    };
    let mut text = String::new();
    assert_eq!(simple.decode(b"BSN 12", &mut text), 0);
    assert_eq!(simple.decode(b"3", &mut text), 0);
    assert_eq!(text, "BSN 123");
    // Two-byte codes (UTF-16 here) whose high byte changes and changes back (the same low byte
    // under two high bytes is two glyphs), then an odd byte.
    let mut wide = Glyphs {
        encoding: Encoding::SimpleEncoding(b"UniGB-UCS2-H"),
        width: 2,
        memo: Vec::new(),
    };
    let mut text = String::new();
    let codes = [
        0x00, b'B', 0x00, 0xE9, 0x20, 0xAC, 0x00, 0xAC, 0x00, b'S', 0x00,
    ];
    assert_eq!(wide.decode(&codes, &mut text), 1);
    assert_eq!(wide.decode(&[0x20, 0xAC, 0x00, b'N'], &mut text), 0);
    assert_eq!(text, "Bé€¬S€N");
}
