//! The MIME walk and every extractor (HTML, PDF, ZIP, DOCX/XLSX/ODT) on arbitrary bytes: no
//! panic, no hang beyond the budget, whatever a message contains.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use sluis::config::InspectConfig;
use sluis::inspect::Inspector;

static INSPECTOR: LazyLock<Inspector> = LazyLock::new(|| {
    let mut cfg = InspectConfig::default();
    cfg.max_decompressed_bytes = 4 * 1024 * 1024;
    Inspector::new(&cfg).expect("default inspector")
});

fuzz_target!(|data: &[u8]| {
    // As a whole message, and as an attachment of one (so the extractors see raw bytes).
    // Unguarded: the gateway turns a panic into an "uninspectable" finding, the fuzzer must
    // see it. Seeds of hostile shapes (deep nesting, many parts, many identifiers) are in
    // fuzz/seeds/inspect.
    let _ = INSPECTOR.inspect_unguarded(data);
    let mut wrapped = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
        Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=x\r\n\
        Content-Transfer-Encoding: binary\r\n\r\n"
        .to_vec();
    wrapped.extend_from_slice(data);
    wrapped.extend_from_slice(b"\r\n--b--\r\n");
    let _ = INSPECTOR.inspect_unguarded(&wrapped);
});
