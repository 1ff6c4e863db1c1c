//! SMTP replies (RFC 5321 §4.2) with enhanced status codes (RFC 3463).

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// Enhanced status code, e.g. "5.7.1"; empty for replies that carry none (220, 221, 354...).
    pub status: String,
    pub lines: Vec<String>,
}

impl Reply {
    pub fn new(code: u16, status: &str, text: impl Into<String>) -> Self {
        Reply {
            code,
            status: status.to_string(),
            lines: vec![text.into()],
        }
    }

    /// A reply without an enhanced status code (greeting, 354, EHLO).
    pub fn plain(code: u16, text: impl Into<String>) -> Self {
        Reply::new(code, "", text)
    }

    pub fn multiline(code: u16, lines: Vec<String>) -> Self {
        Reply {
            code,
            status: String::new(),
            lines,
        }
    }

    /// The upstream's reply, as a reply to our client: code, enhanced code and text kept.
    pub fn from_upstream(r: &smtp_proto::Response<String>) -> Reply {
        let status = if r.esc[0] != 0 {
            format!("{}.{}.{}", r.esc[0], r.esc[1], r.esc[2])
        } else {
            format!("{}.0.0", r.code / 100)
        };
        let mut lines: Vec<String> = r.message.lines().map(str::to_string).collect();
        // An upstream may send a code without text; a reply always has a line to extend.
        if lines.is_empty() {
            lines.push(String::new());
        }
        Reply {
            code: r.code,
            status,
            lines,
        }
    }

    pub fn is_positive(&self) -> bool {
        self.code < 400
    }

    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_string().into_bytes()
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let last = self.lines.len().saturating_sub(1);
        for (i, line) in self.lines.iter().enumerate() {
            let sep = if i == last { ' ' } else { '-' };
            // Reply text never carries a line break of its own, whatever an upstream sent.
            let text: String = line.chars().filter(|c| *c != '\r' && *c != '\n').collect();
            if self.status.is_empty() {
                write!(f, "{}{}{}\r\n", self.code, sep, text)?;
            } else {
                write!(f, "{}{}{} {}\r\n", self.code, sep, self.status, text)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_single_and_multiline() {
        assert_eq!(
            Reply::new(250, "2.1.0", "Ok").to_string(),
            "250 2.1.0 Ok\r\n"
        );
        let r = Reply::multiline(250, vec!["gw".into(), "PIPELINING".into()]);
        assert_eq!(r.to_string(), "250-gw\r\n250 PIPELINING\r\n");
        assert_eq!(
            Reply::new(550, "5.0.0", "a\r\nb").to_string(),
            "550 5.0.0 ab\r\n"
        );
    }
}
