//! Turning message parts and attachments into text, within bounds.
//!
//! Every extractor draws from one `Budget` per message: decompressed bytes, nesting depth,
//! number of parts and a deadline. Whatever cannot be read (encrypted, corrupt, over a bound,
//! a format we cannot open) becomes an `uninspectable` note, never a crash and never "clean".

pub mod compound;
pub mod flowed;
pub mod html;
pub mod office;
pub mod pdf;
pub mod rtf;
pub mod smime;
pub mod sniff;

use std::io::Read;
use std::time::Instant;

use crate::config::InspectConfig;

/// Runs a third-party reader (lopdf, cfb, calamine, rtf-parser) so that its panic costs only
/// the attachment it was reading: `None` then. Under the fuzzer (`cfg(fuzzing)`, set by
/// cargo-fuzz) the panic propagates, so that fuzzing finds it.
pub fn guarded<T>(read: impl FnOnce() -> T) -> Option<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(read)) {
        Ok(v) => Some(v),
        Err(panic) if cfg!(fuzzing) => std::panic::resume_unwind(panic),
        Err(_) => None,
    }
}

/// Text to scan and where it came from.
pub struct TextUnit {
    pub location: String,
    pub text: String,
}

/// Why something could not be inspected (no content in it: safe to show and log).
pub struct Uninspectable {
    pub location: String,
    pub reason: String,
}

/// What extraction produced for one message.
#[derive(Default)]
pub struct Extracted {
    pub texts: Vec<TextUnit>,
    pub uninspectable: Vec<Uninspectable>,
}

impl Extracted {
    pub fn text(&mut self, location: impl Into<String>, text: String) {
        if !text.trim().is_empty() {
            self.texts.push(TextUnit {
                location: location.into(),
                text,
            });
        }
    }

    pub fn cannot(&mut self, location: impl Into<String>, reason: impl Into<String>) {
        self.uninspectable.push(Uninspectable {
            location: location.into(),
            reason: reason.into(),
        });
    }
}

/// The bounds of one message's inspection.
pub struct Budget {
    bytes_left: u64,
    parts_left: usize,
    /// `inspect.max_parts`.
    pub max_parts: usize,
    /// Parts refused since the budget ran out.
    parts_over: usize,
    pub max_depth: usize,
    deadline: Instant,
}

impl Budget {
    pub fn new(cfg: &InspectConfig) -> Budget {
        Budget {
            bytes_left: cfg.max_decompressed_bytes,
            parts_left: cfg.max_parts,
            max_parts: cfg.max_parts,
            parts_over: 0,
            max_depth: cfg.max_depth,
            deadline: Instant::now() + cfg.max_time,
        }
    }

    pub fn expired(&self) -> bool {
        Instant::now() > self.deadline
    }

    /// Counts one more part or archive member; false when the limit is reached.
    pub fn take_part(&mut self) -> bool {
        if self.parts_left == 0 {
            self.parts_over += 1;
            return false;
        }
        self.parts_left -= 1;
        true
    }

    /// Decompressed bytes this message may still produce.
    pub fn bytes_left(&self) -> u64 {
        self.bytes_left
    }

    /// Charges `n` bytes decoded elsewhere (by a library that bounds each stream itself);
    /// false, and nothing left, when that exceeds the budget.
    pub fn charge(&mut self, n: u64) -> bool {
        match self.bytes_left.checked_sub(n) {
            Some(left) => {
                self.bytes_left = left;
                true
            }
            None => {
                self.bytes_left = 0;
                false
            }
        }
    }

    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// How many parts were refused since the budget ran out.
    pub fn parts_over(&self) -> usize {
        self.parts_over
    }

    /// Reads all of `r`, charging the bytes; `None` when that would exceed the budget.
    pub fn read_all(&mut self, r: impl Read) -> std::io::Result<Option<Vec<u8>>> {
        let mut out = Vec::new();
        r.take(self.bytes_left.saturating_add(1))
            .read_to_end(&mut out)?;
        if out.len() as u64 > self.bytes_left {
            self.bytes_left = 0;
            return Ok(None);
        }
        self.bytes_left -= out.len() as u64;
        Ok(Some(out))
    }
}

/// Text from a part or an attachment, with any inline PGP armour in it named: the armoured
/// block is ciphertext, the text around it is still read.
pub fn text(location: &str, text: String, out: &mut Extracted) {
    // memmem, not `str::contains`: its vector search is several times faster on long texts.
    if memchr::memmem::find(text.as_bytes(), b"-----BEGIN PGP MESSAGE-----").is_some() {
        out.cannot(
            location,
            "PGP-encrypted content (inline armour, cannot be inspected)",
        );
    }
    out.text(location, text);
}

/// Extracts text from the bytes of one attachment (or archive member), dispatching on what the
/// bytes are, not on what the sender declared them to be.
pub fn attachment(
    bytes: &[u8],
    location: &str,
    depth: usize,
    budget: &mut Budget,
    out: &mut Extracted,
) {
    if budget.expired() {
        out.cannot(location, "inspection time limit reached");
        return;
    }
    match sniff::kind(bytes) {
        sniff::Kind::Pdf => pdf::extract(bytes, location, budget, out),
        sniff::Kind::Zip => office::extract(bytes, location, depth, budget, out),
        sniff::Kind::Gzip => {
            if depth >= budget.max_depth {
                out.cannot(location, "nested too deeply");
                return;
            }
            match budget.read_all(flate2::read::GzDecoder::new(bytes)) {
                Ok(Some(inner)) => attachment(
                    &inner,
                    &format!("{location}/(gunzip)"),
                    depth + 1,
                    budget,
                    out,
                ),
                Ok(None) => out.cannot(location, "decompressed size over the bound"),
                Err(_) => out.cannot(location, "corrupt gzip data"),
            }
        }
        sniff::Kind::Text => text(location, sniff::decode_text(bytes), out),
        sniff::Kind::Compound => compound::extract(bytes, location, depth, budget, out),
        sniff::Kind::Rtf => rtf::extract(bytes, location, budget, out),
        sniff::Kind::Archive(name) => {
            out.cannot(location, format!("{name} archive cannot be inspected"))
        }
        // Images, audio, video: not text, never scanned as text.
        sniff::Kind::Media | sniff::Kind::Binary => {}
    }
}
