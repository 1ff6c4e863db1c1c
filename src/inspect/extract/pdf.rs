//! Text from PDFs, read by lopdf.
//!
//! lopdf does the format: cross-reference tables and streams, object streams, every standard
//! filter (Flate and LZW with predictors, ASCII85, ASCIIHex, RunLength), the standard security
//! handler (an owner-password-only PDF opens with the empty user password), fonts' encodings and
//! ToUnicode maps. This module only walks what a page shows: the text operators of its content
//! stream and of the forms it draws, each string decoded through the font that is current.
//!
//! It never reports "clean" for text it could not read. A string in a font with no way to
//! Unicode (a CID font without a ToUnicode map, an embedded symbolic font without one) is
//! counted, and a PDF that shows such text is `uninspectable`, as is one that shows no text at
//! all (a scan), one with a real user password, and one lopdf cannot open.
//!
//! Bounds: lopdf decodes each stream within the message's remaining decompression budget; the
//! objects loaded and the time spent loading are bounded by a load filter (below); page content
//! is charged to the budget; forms nest at most `MAX_FORM_DEPTH` deep and each is drawn once
//! per page. A panic inside lopdf is caught here and reported for this attachment alone.

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::LazyLock;
use std::time::Instant;

use lopdf::content::Content;
use lopdf::{Dictionary, Document, Encoding, LoadOptions, Object, ObjectId};

use super::{Budget, Extracted};

/// Forms inside forms: real documents nest two or three deep.
const MAX_FORM_DEPTH: usize = 8;
/// Objects one PDF may load. A 300-page report has tens of thousands.
const MAX_OBJECTS: usize = 1_000_000;
/// Glyphs that decode to nothing may be symbols (a bullet in Symbol or Wingdings, a check mark
/// in ZapfDingbats). Fewer than eight cannot hide an identifier: the shortest, an 8-digit BSN,
/// has eight. From eight on the PDF is uninspectable.
const UNDECODED_TOLERATED: usize = 8;
/// What a viewer draws for a font that is not there.
static MISSING_FONT: LazyLock<Dictionary> = LazyLock::new(|| {
    let mut font = Dictionary::new();
    font.set("Type", Object::Name(b"Font".to_vec()));
    font.set("Subtype", Object::Name(b"Type1".to_vec()));
    font.set("Encoding", Object::Name(b"WinAnsiEncoding".to_vec()));
    font
});
/// One stream may decode to at most this much, whatever the budget: lopdf holds it whole.
const MAX_STREAM_BYTES: u64 = 64 << 20;

pub fn extract(bytes: &[u8], location: &str, budget: &mut Budget, out: &mut Extracted) {
    match super::guarded(|| read(bytes, budget)) {
        Some(Ok(read)) => {
            if read.undecoded >= UNDECODED_TOLERATED {
                out.cannot(
                    location,
                    "PDF text in a font without a Unicode map (cannot be decoded)",
                );
            }
            if read.over_budget {
                out.cannot(location, "decompressed size over the bound");
            } else if read.out_of_time {
                out.cannot(location, "inspection time limit reached");
            } else if read.text.trim().is_empty() && read.undecoded < UNDECODED_TOLERATED {
                out.cannot(location, "PDF without text (a scan or only images)");
            }
            out.text(location, read.text);
        }
        Some(Err(reason)) => out.cannot(location, reason),
        None => {
            crate::metrics::inspect_failed("pdf");
            out.cannot(location, "PDF could not be read (malformed)");
        }
    }
}

/// What one PDF showed.
#[derive(Default)]
struct Read {
    text: String,
    /// Glyphs shown in a font that has no way to Unicode, or that its map does not cover.
    undecoded: usize,
    over_budget: bool,
    out_of_time: bool,
}

thread_local! {
    /// The bounds of the load in progress on this thread: lopdf takes its filter as a plain
    /// `fn`, so the deadline and the count of objects left reach it here.
    static LOADING: Cell<Option<(Instant, usize)>> = const { Cell::new(None) };
}

/// lopdf's load filter: keeps objects until the count or the deadline runs out. Dropping the
/// rest also stops the decompression of object streams that were not reached yet. lopdf keeps
/// a top-level object from the reference it passed and a member of an object stream from the
/// value returned, so the object stays where it is and a copy is returned; a stream is never
/// a member (PDF 32000 §7.5.7), so it is not copied: copying every image once cost more than
/// reading the text.
fn bounded(id: ObjectId, object: &mut Object) -> Option<(ObjectId, Object)> {
    let (deadline, left) = LOADING.get()?;
    if left == 0 || Instant::now() > deadline {
        LOADING.set(Some((deadline, 0)));
        return None;
    }
    LOADING.set(Some((deadline, left - 1)));
    match object {
        Object::Stream(_) => Some((id, Object::Null)),
        _ => Some((id, object.clone())),
    }
}

fn read(bytes: &[u8], budget: &mut Budget) -> Result<Read, &'static str> {
    let stream_limit = budget.bytes_left().min(MAX_STREAM_BYTES) as usize;
    let options = LoadOptions {
        max_decompressed_size: Some(stream_limit),
        filter: Some(bounded),
        ..LoadOptions::default()
    };
    LOADING.set(Some((budget.deadline(), MAX_OBJECTS)));
    let loaded = Document::load_mem_with_options(bytes, options);
    let exhausted = LOADING.take().is_some_and(|(_, left)| left == 0);
    let doc = match loaded {
        Ok(doc) => doc,
        Err(lopdf::Error::Decompress(lopdf::DecompressError::MemoryLimitExceeded { .. })) => {
            return Err("decompressed size over the bound");
        }
        Err(_) if exhausted => return Err("PDF over the object or time bound"),
        Err(lopdf::Error::Decryption(_) | lopdf::Error::InvalidPassword) => {
            return Err("encrypted PDF (password required)");
        }
        Err(_) => return Err("PDF could not be read (malformed)"),
    };
    // lopdf decrypts with the empty user password when that opens the document (an
    // owner-password-only PDF); a document still encrypted after loading needs a password, and
    // one that declares encryption lopdf could not set up cannot be read either.
    if doc.is_encrypted() || (doc.trailer.has(b"Encrypt") && doc.encryption_state.is_none()) {
        return Err("encrypted PDF (password required)");
    }
    if exhausted {
        return Err("PDF over the object or time bound");
    }
    let mut read = Read::default();
    // Fonts are shared by pages: each is made ready (its map parsed, its glyphs decoded) once.
    let mut decoders = HashMap::new();
    let pages = doc.get_pages();
    if pages.is_empty() {
        return Err("PDF without pages (malformed)");
    }
    for page_id in pages.values() {
        if budget.expired() {
            read.out_of_time = true;
            break;
        }
        let Ok(content) = doc.get_page_content_with_limit(*page_id, stream_limit) else {
            // A page lopdf cannot decode within the limit: over the bound or corrupt.
            read.over_budget = true;
            break;
        };
        if !budget.charge(content.len() as u64) {
            read.over_budget = true;
            break;
        }
        let resources = page_resources(&doc, *page_id);
        let mut page = Page {
            doc: &doc,
            budget,
            forms_drawn: HashSet::new(),
            decoders: &mut decoders,
            read: &mut read,
        };
        page.show(&content, &resources, 0);
        if read.over_budget || read.out_of_time {
            break;
        }
    }
    Ok(read)
}

/// The page's resource dictionaries, nearest first (a page inherits from its parents).
fn page_resources(doc: &Document, page_id: ObjectId) -> Vec<&Dictionary> {
    let Ok((own, inherited)) = doc.get_page_resources(page_id) else {
        return Vec::new();
    };
    own.into_iter()
        .chain(
            inherited
                .into_iter()
                .filter_map(|id| doc.get_dictionary(id).ok()),
        )
        .collect()
}

/// How one font's strings become text.
enum Decoder<'a> {
    Text(Glyphs<'a>),
    /// No way to Unicode: the glyphs are counted, never guessed; `width` bytes each.
    Opaque {
        width: usize,
    },
}

/// A font's encoding and what it has decoded so far, code by code. lopdf looks each code up
/// in a ToUnicode map by range searches, allocating per glyph; a page shows the same few
/// dozen glyphs thousands of times, and decoding was most of the time spent on a PDF.
struct Glyphs<'a> {
    encoding: Encoding<'a>,
    /// Bytes per code: two for composite fonts (Identity-H and the Unicode CMaps), one for
    /// simple fonts.
    width: usize,
    /// By code: 256 codes per page of the table, by the code's high byte (one page for a
    /// simple font, the pages in use for a composite one).
    memo: Vec<Option<Box<[Option<Glyph>; 256]>>>,
}

/// What one code decodes to.
enum Glyph {
    Char(char),
    Text(Box<str>),
    /// Decoded to nothing usable: counted as this many undecoded glyphs.
    Undecoded(usize),
}

impl<'a> Glyphs<'a> {
    fn decoder(encoding: Encoding<'a>, composite: bool) -> Decoder<'a> {
        Decoder::Text(Glyphs {
            encoding,
            width: if composite { 2 } else { 1 },
            memo: Vec::new(),
        })
    }

    /// Appends the text of `bytes`; returns how many glyphs did not decode.
    fn decode(&mut self, bytes: &[u8], text: &mut String) -> usize {
        let Glyphs {
            encoding,
            width,
            memo,
        } = self;
        let codes = bytes.chunks_exact(*width);
        // A code cut short (an odd byte at the end of a two-byte string) is not a glyph.
        let mut undecoded = usize::from(!codes.remainder().is_empty());
        text.reserve(bytes.len() / *width);
        // The page of the table for the codes' high byte, looked up again only when it
        // changes: a simple font has one, and a string's codes mostly share one.
        let mut open: Option<(usize, &mut [Option<Glyph>; 256])> = None;
        for code in codes {
            let (high, low) = match *code {
                [low] => (0, low),
                [high, low] => (usize::from(high), low),
                _ => continue,
            };
            let page = match open {
                Some((h, ref mut page)) if h == high => page,
                _ => {
                    open = None;
                    if memo.len() <= high {
                        memo.resize_with(high + 1, || None);
                    }
                    let page = memo[high].get_or_insert_with(|| Box::new([const { None }; 256]));
                    &mut open.insert((high, page)).1
                }
            };
            let glyph = page[usize::from(low)].get_or_insert_with(|| glyph_of(encoding, code));
            match glyph {
                Glyph::Char(c) => text.push(*c),
                Glyph::Text(s) => text.push_str(s),
                Glyph::Undecoded(n) => undecoded += *n,
            }
        }
        undecoded
    }
}

/// What one code decodes to, by lopdf.
fn glyph_of(encoding: &Encoding, code: &[u8]) -> Glyph {
    match Document::decode_text(encoding, code) {
        Ok(s) if s.contains('\u{fffd}') => {
            Glyph::Undecoded(s.chars().filter(|&c| c == '\u{fffd}').count())
        }
        Ok(s) => {
            let mut chars = s.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => Glyph::Char(c),
                _ => Glyph::Text(s.into_boxed_str()),
            }
        }
        Err(_) => Glyph::Undecoded(1),
    }
}

fn decoder<'a>(doc: &'a Document, font: &'a Dictionary, limit: usize) -> Decoder<'a> {
    let name = |key: &[u8]| font.get(key).and_then(Object::as_name).ok();
    let to_unicode = font
        .get_deref(b"ToUnicode", doc)
        .and_then(Object::as_stream)
        .is_ok();
    let composite = name(b"Subtype") == Some(b"Type0");
    // A composite font's codes are CIDs, glyph numbers in its own font program, unless one of
    // the predefined Unicode CMaps names them; without a ToUnicode map they mean nothing.
    // lopdf would fall back to the standard one-byte encoding and produce plausible junk.
    let unicode_cmap = name(b"Encoding")
        .is_some_and(|e| e.starts_with(b"Uni") && (e.ends_with(b"-H") || e.ends_with(b"-V")));
    if composite && !to_unicode && !unicode_cmap {
        return Decoder::Opaque { width: 2 };
    }
    // An embedded symbolic simple font without an encoding or a map: its codes are whatever
    // the font program says, so again not text. Nor are a Type 3 font's without a map: its
    // glyphs are drawings named at the producer's whim.
    if !composite && !to_unicode && font.get(b"Encoding").is_err() && symbolic_embedded(doc, font) {
        return Decoder::Opaque { width: 1 };
    }
    if name(b"Subtype") == Some(b"Type3") && !to_unicode {
        return Decoder::Opaque { width: 1 };
    }
    if to_unicode && font.get(b"Encoding").is_ok() && !composite {
        // A simple font with both: the map is what the producer says the glyphs mean (PDF
        // 32000 §9.10.2 puts it first); lopdf would take the encoding.
        if let Ok(stream) = font
            .get_deref(b"ToUnicode", doc)
            .and_then(Object::as_stream)
        {
            let mut mapped = Dictionary::new();
            mapped.set("Type", Object::Name(b"Font".to_vec()));
            mapped.set("ToUnicode", Object::Stream(stream.clone()));
            if let Ok(Encoding::UnicodeMapEncoding(map)) =
                mapped.get_font_encoding_with_limit(doc, limit)
            {
                return Glyphs::decoder(Encoding::UnicodeMapEncoding(map), false);
            }
        }
    }
    match font.get_font_encoding_with_limit(doc, limit) {
        Ok(encoding) => Glyphs::decoder(encoding, composite),
        Err(_) => Decoder::Opaque {
            width: if composite { 2 } else { 1 },
        },
    }
}

fn symbolic_embedded(doc: &Document, font: &Dictionary) -> bool {
    let Ok(descriptor) = font
        .get_deref(b"FontDescriptor", doc)
        .and_then(Object::as_dict)
    else {
        return false;
    };
    let flags = descriptor
        .get(b"Flags")
        .and_then(Object::as_i64)
        .unwrap_or(0);
    let embedded = [b"FontFile".as_slice(), b"FontFile2", b"FontFile3"]
        .iter()
        .any(|k| descriptor.has(k));
    // Bit 3 (value 4): symbolic.
    embedded && flags & 4 != 0
}

/// One page's walk: its content and the forms it draws.
struct Page<'d, 'b> {
    doc: &'d Document,
    budget: &'b mut Budget,
    /// Forms already drawn on this page: a form drawing itself, or drawn a thousand times,
    /// is read once.
    forms_drawn: HashSet<ObjectId>,
    /// Every font's decoder, by its dictionary, for the whole document.
    decoders: &'b mut HashMap<*const Dictionary, Decoder<'d>>,
    read: &'b mut Read,
}

impl<'d> Page<'d, '_> {
    fn show(&mut self, content: &[u8], resources: &[&'d Dictionary], depth: usize) {
        let Ok(content) = Content::decode(content) else {
            // Content lopdf cannot tokenise: what it drew cannot be known.
            self.read.undecoded += UNDECODED_TOLERATED;
            return;
        };
        let limit = self.budget.bytes_left().min(MAX_STREAM_BYTES) as usize;
        // Font names in this content, to their dictionaries.
        let mut fonts: BTreeMap<&[u8], *const Dictionary> = BTreeMap::new();
        let mut current: Option<*const Dictionary> = None;
        for (n, op) in content.operations.iter().enumerate() {
            if n % 4096 == 4095 && self.budget.expired() {
                self.read.out_of_time = true;
                return;
            }
            let text = &mut self.read.text;
            match op.operator.as_str() {
                "Tf" => {
                    let doc = self.doc;
                    current = op
                        .operands
                        .first()
                        .and_then(|o| o.as_name().ok())
                        .map(|name| {
                            *fonts.entry(name).or_insert_with(|| {
                                // A font the page names but does not define: viewers substitute
                                // a standard font, so the codes show as Latin text, and are read
                                // so.
                                let font: &'d Dictionary = resources
                                    .iter()
                                    .find_map(|r| font_in(doc, r, name))
                                    .unwrap_or(&MISSING_FONT);
                                let key = std::ptr::from_ref(font);
                                self.decoders
                                    .entry(key)
                                    .or_insert_with(|| decoder(doc, font, limit));
                                key
                            })
                        });
                }
                "Tj" | "TJ" | "'" | "\"" => {
                    if matches!(op.operator.as_str(), "'" | "\"") {
                        text.push('\n');
                    }
                    let strings: &[Object] = if op.operator == "\"" {
                        op.operands.get(2..).unwrap_or(&[])
                    } else {
                        &op.operands
                    };
                    let decoder = current.and_then(|key| self.decoders.get_mut(&key));
                    self.read.undecoded += shown(decoder, strings, text);
                }
                // Moves within a line separate table cells and words; a move to another line,
                // a new matrix or the end of a text object separates lines.
                "Td" | "TD" => {
                    let dy = op.operands.get(1).and_then(|o| o.as_float().ok());
                    text.push(if dy.is_some_and(|y| y != 0.0) {
                        '\n'
                    } else {
                        ' '
                    });
                }
                "Tm" | "T*" | "ET" => text.push('\n'),
                "Do" if depth < MAX_FORM_DEPTH => {
                    if let Some(name) = op.operands.first().and_then(|o| o.as_name().ok()) {
                        self.form(name, resources, depth);
                    }
                }
                _ => {}
            }
            if self.read.over_budget || self.read.out_of_time {
                return;
            }
        }
    }

    /// Draws the form XObject `name` with its own resources (falling back to the page's).
    fn form(&mut self, name: &[u8], resources: &[&'d Dictionary], depth: usize) {
        let doc = self.doc;
        let Some((id, form)) = resources.iter().find_map(|r| {
            let xobjects = r
                .get_deref(b"XObject", doc)
                .and_then(Object::as_dict)
                .ok()?;
            let id = xobjects.get(name).and_then(Object::as_reference).ok()?;
            let stream = doc.get_object(id).and_then(Object::as_stream).ok()?;
            let subtype = stream.dict.get(b"Subtype").and_then(Object::as_name).ok();
            (subtype == Some(b"Form")).then_some((id, stream))
        }) else {
            return;
        };
        if !self.forms_drawn.insert(id) {
            return;
        }
        let limit = self.budget.bytes_left().min(MAX_STREAM_BYTES) as usize;
        let content = match form.decompressed_content_with_limit(limit) {
            Ok(c) => c,
            Err(lopdf::Error::Decompress(lopdf::DecompressError::MemoryLimitExceeded {
                ..
            })) => {
                self.read.over_budget = true;
                return;
            }
            // Not compressed, or compressed with a filter lopdf does not know.
            Err(_) if form.dict.get(b"Filter").is_err() => form.content.clone(),
            Err(_) => {
                self.read.undecoded += UNDECODED_TOLERATED;
                return;
            }
        };
        if !self.budget.charge(content.len() as u64) {
            self.read.over_budget = true;
            return;
        }
        let own = form
            .dict
            .get_deref(b"Resources", doc)
            .and_then(Object::as_dict)
            .ok();
        let mut inner: Vec<&'d Dictionary> = own.into_iter().collect();
        inner.extend_from_slice(resources);
        self.show(&content, &inner, depth + 1);
    }
}

fn font_in<'d>(
    doc: &'d Document,
    resources: &'d Dictionary,
    name: &[u8],
) -> Option<&'d Dictionary> {
    let fonts = resources
        .get_deref(b"Font", doc)
        .and_then(Object::as_dict)
        .ok()?;
    fonts.get_deref(name, doc).and_then(Object::as_dict).ok()
}

/// Appends the text of a show operator's strings; returns how many glyphs did not decode.
fn shown(mut decoder: Option<&mut Decoder>, operands: &[Object], text: &mut String) -> usize {
    let mut undecoded = 0;
    for operand in operands {
        match operand {
            Object::String(bytes, _) => match decoder.as_deref_mut() {
                Some(Decoder::Text(glyphs)) => undecoded += glyphs.decode(bytes, text),
                Some(Decoder::Opaque { width }) => undecoded += bytes.len().div_ceil(*width),
                // Shown before any font was chosen: a glyph a byte, the most it could be.
                None => undecoded += bytes.len(),
            },
            Object::Array(items) => undecoded += shown(decoder.as_deref_mut(), items, text),
            // TJ kerning, in thousandths of the font size: a word's width apart is a space.
            Object::Integer(i) if *i < -200 => text.push(' '),
            Object::Real(r) if *r < -200.0 => text.push(' '),
            _ => {}
        }
    }
    undecoded
}

#[cfg(test)]
mod tests;
