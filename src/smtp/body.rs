//! Message content on the wire: the DATA decoder and the content checker.
//!
//! The decoder undoes dot-stuffing and ends the data only at CRLF.CRLF. A bare LF or bare CR never
//! ends it, so `\n.\n` cannot smuggle a second message past Sluis (SMTP smuggling, CVE-2023-51766
//! and kin). The checker then refuses any message that contains a bare CR, a bare LF or a NUL, so
//! nothing that another MTA might read as end-of-data is ever passed upstream. Refusing rather
//! than normalising keeps the message exactly as the sender's MTA wrote it, as Postfix does with
//! `smtpd_forbid_bare_newline = reject`.

use bytes::{Buf, BytesMut};
use memchr::{memchr, memchr3};

/// Why a message body is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyProblem {
    TooBig,
    BareLf,
    BareCr,
    Nul,
    LineTooLong,
}

/// Undoes the DATA framing (RFC 5321 §4.5.2) incrementally.
#[derive(Debug)]
pub struct DataDecoder {
    at_line_start: bool,
    prev_cr: bool,
}

impl Default for DataDecoder {
    fn default() -> Self {
        // The CRLF of the DATA command itself precedes the first line.
        DataDecoder {
            at_line_start: true,
            prev_cr: false,
        }
    }
}

impl DataDecoder {
    /// Moves wire bytes from `buf` to `out` as content. Returns true once the end marker has been
    /// consumed; bytes after it (pipelined commands) stay in `buf`. Consumes nothing when it
    /// needs more bytes to decide whether a line is the end marker.
    pub fn decode(&mut self, buf: &mut BytesMut, out: &mut Vec<u8>) -> bool {
        loop {
            if buf.is_empty() {
                return false;
            }
            if self.at_line_start && buf[0] == b'.' {
                if buf.starts_with(b".\r\n") {
                    buf.advance(3);
                    *self = DataDecoder::default();
                    return true;
                }
                let undecided = buf.len() == 1 || (buf.len() == 2 && buf[1] == b'\r');
                if undecided {
                    return false;
                }
                // A dot-stuffed line: the first dot is framing, not content.
                buf.advance(1);
                self.at_line_start = false;
                self.prev_cr = false;
                continue;
            }
            match memchr(b'\n', buf) {
                Some(i) => {
                    let crlf = if i > 0 {
                        buf[i - 1] == b'\r'
                    } else {
                        self.prev_cr
                    };
                    out.extend_from_slice(&buf[..=i]);
                    buf.advance(i + 1);
                    self.at_line_start = crlf;
                    self.prev_cr = false;
                }
                None => {
                    out.extend_from_slice(buf);
                    self.prev_cr = buf.last() == Some(&b'\r');
                    self.at_line_start = false;
                    buf.clear();
                    return false;
                }
            }
        }
    }
}

/// Checks content bytes as they stream past; remembers the first problem.
#[derive(Debug)]
pub struct BodyChecker {
    size: usize,
    max_size: usize,
    line_len: usize,
    max_line: usize,
    prev_cr: bool,
    problem: Option<BodyProblem>,
}

impl BodyChecker {
    /// `max_line` counts the CRLF, as RFC 5321's 1000-octet limit does.
    pub fn new(max_size: usize, max_line: usize) -> Self {
        BodyChecker {
            size: 0,
            max_size,
            line_len: 0,
            max_line,
            prev_cr: false,
            problem: None,
        }
    }

    pub fn problem(&self) -> Option<BodyProblem> {
        self.problem
    }

    pub fn size(&self) -> usize {
        self.size
    }

    fn flag(&mut self, p: BodyProblem) {
        self.problem.get_or_insert(p);
    }

    /// Checks the next content bytes. Returns whether they are still worth storing, i.e. no
    /// problem has been found yet (the rest is consumed and counted, never kept).
    pub fn check(&mut self, bytes: &[u8]) -> bool {
        self.size = self.size.saturating_add(bytes.len());
        if self.size > self.max_size {
            self.flag(BodyProblem::TooBig);
        }
        let mut i = 0;
        while i < bytes.len() {
            if self.prev_cr {
                self.prev_cr = false;
                if bytes[i] == b'\n' {
                    self.end_line();
                    i += 1;
                    continue;
                }
                self.flag(BodyProblem::BareCr);
            }
            match memchr3(b'\r', b'\n', 0, &bytes[i..]) {
                None => {
                    self.line_len += bytes.len() - i;
                    i = bytes.len();
                }
                Some(off) => {
                    self.line_len += off;
                    let j = i + off;
                    match bytes[j] {
                        b'\r' => self.prev_cr = true,
                        b'\n' => {
                            self.flag(BodyProblem::BareLf);
                            self.end_line();
                        }
                        _ => {
                            self.flag(BodyProblem::Nul);
                            self.line_len += 1;
                        }
                    }
                    i = j + 1;
                }
            }
            if self.line_len + 2 > self.max_line {
                self.flag(BodyProblem::LineTooLong);
            }
        }
        self.problem.is_none()
    }

    fn end_line(&mut self) {
        if self.line_len + 2 > self.max_line {
            self.flag(BodyProblem::LineTooLong);
        }
        self.line_len = 0;
    }

    /// The verdict once all content has been seen.
    pub fn finish(mut self) -> Result<usize, BodyProblem> {
        if self.prev_cr {
            self.flag(BodyProblem::BareCr);
        }
        match self.problem {
            Some(p) => Err(p),
            None => Ok(self.size),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `wire` in pieces of `split` bytes; returns the content and whether the data ended.
    fn decode_all(wire: &[u8], split: usize) -> (Vec<u8>, bool) {
        let mut dec = DataDecoder::default();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for piece in wire.chunks(split.max(1)) {
            buf.extend_from_slice(piece);
            if dec.decode(&mut buf, &mut out) {
                return (out, true);
            }
        }
        (out, false)
    }

    #[test]
    fn unstuffs_and_ends_only_at_crlf_dot_crlf() {
        for split in [1, 2, 3, 7, 1000] {
            let (out, ended) = decode_all(b"a\r\n..b\r\n.\r\nQUIT\r\n", split);
            assert!(ended, "split {split}");
            assert_eq!(out, b"a\r\n.b\r\n");
        }
    }

    #[test]
    fn pipelined_command_after_end_stays_in_buffer() {
        let mut dec = DataDecoder::default();
        let mut buf = BytesMut::from(&b"x\r\n.\r\nMAIL FROM:<a@b>\r\n"[..]);
        let mut out = Vec::new();
        assert!(dec.decode(&mut buf, &mut out));
        assert_eq!(&buf[..], b"MAIL FROM:<a@b>\r\n");
    }

    #[test]
    fn empty_message_ends_immediately() {
        let (out, ended) = decode_all(b".\r\n", 1);
        assert!(ended);
        assert!(out.is_empty());
    }

    #[test]
    fn bare_lf_and_bare_cr_never_end_data() {
        for wire in [
            &b"a\n.\nMAIL FROM:<x@y>\n"[..],
            b"a\r\n.\nRCPT\r\n",
            b"a\n.\r\nMAIL FROM:<x@y>\r\n",
            b"a\r.\r\nX\r\n",
            b"a\r\n.\r",
        ] {
            for split in [1, 4, 100] {
                let (_, ended) = decode_all(wire, split);
                assert!(!ended, "{wire:?} split {split}");
            }
        }
    }

    fn check(content: &[u8]) -> Result<usize, BodyProblem> {
        let mut c = BodyChecker::new(10_000, 1000);
        for piece in content.chunks(3) {
            c.check(piece);
        }
        c.finish()
    }

    #[test]
    fn checker_flags_each_problem() {
        assert_eq!(check(b"Subject: x\r\n\r\nok\r\n"), Ok(18));
        assert_eq!(check(b"a\nb\r\n"), Err(BodyProblem::BareLf));
        assert_eq!(check(b"a\rb\r\n"), Err(BodyProblem::BareCr));
        assert_eq!(check(b"ab\r"), Err(BodyProblem::BareCr));
        assert_eq!(check(b"a\0b\r\n"), Err(BodyProblem::Nul));
        let mut long = vec![b'x'; 998];
        long.extend_from_slice(b"\r\n");
        assert!(check(&long).is_ok());
        long.insert(0, b'x');
        assert_eq!(check(&long), Err(BodyProblem::LineTooLong));
        let big = b"0123456789\r\n".repeat(1000);
        assert_eq!(check(&big), Err(BodyProblem::TooBig));
    }
}
