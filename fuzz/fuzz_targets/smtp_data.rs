//! The DATA decoder and content checker on arbitrary input split at arbitrary points: the
//! decoder must end only at CRLF.CRLF, and content it passes on must never contain that marker
//! in a form the checker lets through.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use sluis::smtp::body::{BodyChecker, DataDecoder};

fuzz_target!(|input: (u8, &[u8])| {
    let (split, data) = input;
    let mut dec = DataDecoder::default();
    let mut checker = BodyChecker::new(1 << 20, 1000);
    let mut buf = BytesMut::new();
    let mut content = Vec::new();
    let mut ended = false;
    for piece in data.chunks(usize::from(split).max(1)) {
        buf.extend_from_slice(piece);
        let mut out = Vec::new();
        if dec.decode(&mut buf, &mut out) {
            ended = true;
        }
        checker.check(&out);
        content.extend_from_slice(&out);
        if ended {
            break;
        }
    }
    if ended {
        // The wire must have held CRLF.CRLF (or started with ".\r\n").
        let wire_end = data.windows(5).any(|w| w == b"\r\n.\r\n") || data.starts_with(b".\r\n");
        assert!(wire_end, "ended without an end marker");
    }
    if checker.finish().is_ok() {
        // Accepted content has only CRLF line ends: no bare LF or CR anywhere.
        for (i, &b) in content.iter().enumerate() {
            if b == b'\n' {
                assert!(i > 0 && content[i - 1] == b'\r', "bare LF accepted");
            }
            if b == b'\r' {
                assert!(content.get(i + 1) == Some(&b'\n'), "bare CR accepted");
            }
        }
    }
});
