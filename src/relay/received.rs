//! The `Received:` trace header Sluis adds (RFC 5321 §4.4, RFC 3848 protocol names).

use std::net::IpAddr;
use std::time::SystemTime;

pub struct Trace<'a> {
    pub helo: &'a str,
    pub client_ip: IpAddr,
    pub hostname: &'a str,
    pub esmtp: bool,
    pub tls: Option<&'a str>,
    pub authenticated: bool,
    pub id: &'a str,
    /// Named only when there is exactly one recipient, so a header never lists Bcc recipients.
    pub single_recipient: Option<&'a str>,
}

/// An RFC 5322 date-time in UTC.
pub fn rfc5322_now() -> String {
    // httpdate writes "Sun, 06 Nov 1994 08:49:37 GMT"; RFC 5322 prefers a numeric zone.
    httpdate::fmt_http_date(SystemTime::now()).replace(" GMT", " +0000")
}

/// Keeps only characters that cannot break the header's structure.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-:[]_".contains(c) {
                c
            } else {
                '?'
            }
        })
        .collect()
}

impl Trace<'_> {
    pub fn header(&self) -> Vec<u8> {
        let proto = match (self.esmtp, self.tls.is_some(), self.authenticated) {
            (false, _, _) => "SMTP",
            (true, false, false) => "ESMTP",
            (true, false, true) => "ESMTPA",
            (true, true, false) => "ESMTPS",
            (true, true, true) => "ESMTPSA",
        };
        let mut h = format!(
            "Received: from {} ([{}])\r\n\tby {} (Sluis) with {} id {}",
            clean(self.helo),
            self.client_ip,
            self.hostname,
            proto,
            self.id
        );
        if let Some(tls) = self.tls {
            h.push_str(&format!("\r\n\t(using {})", clean(tls).replace('?', " ")));
        }
        if let Some(rcpt) = self.single_recipient
            && !rcpt.contains(['\r', '\n', '>'])
        {
            h.push_str(&format!(
                "\r\n\tfor <{}>",
                crate::wire::address::mailbox(rcpt)
            ));
        }
        h.push_str(&format!(";\r\n\t{}\r\n", rfc5322_now()));
        h.into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_folded_and_names_protocol() {
        let t = Trace {
            helo: "client.example (evil)\r\nX-Injected: 1",
            client_ip: "127.0.0.1".parse().unwrap(),
            hostname: "gw.test",
            esmtp: true,
            tls: Some("TLSv1.3 with cipher TLS13_AES_256_GCM_SHA384"),
            authenticated: false,
            id: "ABC123",
            single_recipient: Some("a@b.test"),
        };
        let h = String::from_utf8(t.header()).unwrap();
        assert!(
            h.starts_with("Received: from client.example??evil???X-Injected:?1 ([127.0.0.1])\r\n")
        );
        assert!(h.contains("with ESMTPS id ABC123"));
        assert!(h.contains("\tfor <a@b.test>;\r\n"));
        assert!(h.ends_with("+0000\r\n"));
        assert_eq!(h.matches("\r\n").count(), h.matches("\r\n\t").count() + 1);
    }
}
