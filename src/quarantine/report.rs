//! Delivery reports of released mail (RFC 3464): how Sluis learns what became of a release
//! after the lane accepted it. A release is sent with its own return path,
//! `sluis-release+<item id>=<token>@<server.hostname>`, `ENVID=<item id>` and `NOTIFY=SUCCESS,
//! FAILURE,DELAY`; the lane's MTA sends its reports there, and they reach Sluis's report
//! listener (`review.report_listen`). The token (random, per item) keeps anyone who can reach
//! that listener from settling an item with a made-up report.
//!
//! Pure: the address, and the reading of a report (MIME by mail-parser; the delivery-status
//! part's field groups by mail-parser's header parser).

use mail_parser::{MessageParser, MimeHeaders};

/// The local part's prefix of every report address.
const PREFIX: &str = "sluis-release+";
/// At most this many recipient groups are read from one report.
const MAX_RECIPIENTS: usize = 1000;

/// A new report token: 128 random bits, hex.
pub fn new_token() -> Option<String> {
    let mut bytes = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).ok()?;
    Some(data_encoding::HEXLOWER.encode(&bytes))
}

/// The return path of item `id`'s release.
pub fn address(id: &str, token: &str, hostname: &str) -> String {
    format!("{PREFIX}{id}={token}@{hostname}")
}

/// The item id and token in a report address for `hostname`; `None` for any other address.
pub fn parse_address<'a>(address: &'a str, hostname: &str) -> Option<(&'a str, &'a str)> {
    let (local, domain) = address.rsplit_once('@')?;
    if !domain.eq_ignore_ascii_case(hostname) {
        return None;
    }
    let rest = local
        .get(..PREFIX.len())
        .filter(|p| p.eq_ignore_ascii_case(PREFIX))?;
    let (id, token) = local[rest.len()..].split_once('=')?;
    (crate::store::valid_id(id)
        && token.len() == 32
        && token.bytes().all(|b| b.is_ascii_hexdigit()))
    .then_some((id, token))
}

/// Whether `given` is `expected`. Digests are compared, so the time taken does not depend on
/// where the two differ.
pub fn token_matches(given: &str, expected: &str) -> bool {
    let digest = |s: &str| ring::digest::digest(&ring::digest::SHA256, s.as_bytes());
    digest(given).as_ref() == digest(expected).as_ref()
}

/// What a report says happened to one recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Delivered, or handed to the recipient's MTA (relayed): final, as far as the lane sees.
    Delivered,
    Failed,
    /// Not yet: the lane keeps trying.
    Delayed,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Delivered => "delivered",
            Action::Failed => "failed",
            Action::Delayed => "delayed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientReport {
    /// The address as the lane got it (Final-Recipient), lower case.
    pub recipient: String,
    pub action: Action,
    /// The RFC 3464 action as written ("relayed", "delivered", "failed"...).
    pub action_text: String,
    pub status: String,
    pub remote_mta: Option<String>,
    pub diagnostic: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub envid: Option<String>,
    pub recipients: Vec<RecipientReport>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReportError {
    #[error("not a MIME message")]
    NotMime,
    #[error("no message/delivery-status part: not a delivery report")]
    NoStatus,
    #[error("the delivery-status part names no recipient with an action")]
    NoRecipients,
}

/// Reads a delivery report.
pub fn parse(raw: &[u8]) -> Result<Report, ReportError> {
    let message = MessageParser::default()
        .parse(raw)
        .ok_or(ReportError::NotMime)?;
    let status = message
        .parts
        .iter()
        .find(|p| {
            p.content_type().is_some_and(|ct| {
                ct.ctype().eq_ignore_ascii_case("message")
                    && ct.subtype().is_some_and(|s| {
                        s.eq_ignore_ascii_case("delivery-status")
                            || s.eq_ignore_ascii_case("global-delivery-status")
                    })
            })
        })
        .ok_or(ReportError::NoStatus)?;
    let body = status.contents();
    let mut groups = field_groups(body);
    let per_message = groups.next().unwrap_or_default();
    let envid = field(&per_message, "Original-Envelope-Id");
    let mut recipients = Vec::new();
    for group in groups.take(MAX_RECIPIENTS) {
        let Some(recipient) = field(&group, "Final-Recipient")
            .or_else(|| field(&group, "Original-Recipient"))
            .map(|v| address_of(&v))
        else {
            continue;
        };
        let Some(action_text) = field(&group, "Action").map(|a| a.to_ascii_lowercase()) else {
            continue;
        };
        let action = match action_text.as_str() {
            "delivered" | "relayed" | "expanded" => Action::Delivered,
            "failed" => Action::Failed,
            "delayed" => Action::Delayed,
            _ => continue,
        };
        recipients.push(RecipientReport {
            recipient,
            action,
            action_text,
            status: field(&group, "Status").unwrap_or_default(),
            remote_mta: field(&group, "Remote-MTA").map(|v| address_of(&v)),
            diagnostic: field(&group, "Diagnostic-Code").map(|d| short(&d)),
        });
    }
    if recipients.is_empty() {
        return Err(ReportError::NoRecipients);
    }
    Ok(Report { envid, recipients })
}

/// The field groups of a delivery-status body: blocks separated by blank lines, each parsed
/// as a header section (folded lines and all) by mail-parser.
fn field_groups(body: &[u8]) -> impl Iterator<Item = Vec<(String, String)>> + '_ {
    let text = String::from_utf8_lossy(body).replace("\r\n", "\n");
    let blocks: Vec<String> = text
        .split("\n\n")
        .map(|b| b.trim_matches('\n').to_string())
        .filter(|b| !b.is_empty())
        .collect();
    blocks.into_iter().map(|b| {
        let raw = format!("{}\r\n\r\n", b.replace('\n', "\r\n"));
        let parser = MessageParser::default();
        match parser.parse_headers(raw.as_bytes()) {
            Some(m) => m.parts[0]
                .headers
                .iter()
                .map(|h| {
                    let start = h.offset_start as usize;
                    let end = h.offset_end as usize;
                    let value = raw.get(start..end).unwrap_or_default();
                    (h.name.as_str().to_string(), unfold(value))
                })
                .collect(),
            None => Vec::new(),
        }
    })
}

fn field(group: &[(String, String)], name: &str) -> Option<String> {
    group
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.clone())
        .filter(|v| !v.is_empty())
}

fn unfold(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// "rfc822; a@b.example" → "a@b.example" (lower case); "dns; mx.example" → "mx.example".
fn address_of(typed: &str) -> String {
    typed
        .split_once(';')
        .map_or(typed, |(_, a)| a)
        .trim()
        .to_ascii_lowercase()
}

/// A diagnostic as an audit record keeps it: one line, at most 300 characters.
fn short(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(status_body: &str) -> Vec<u8> {
        format!(
            "From: MAILER-DAEMON@lanes.example\r\nTo: sluis-release+Q1=x@gw.example\r\n\
             Subject: Successful Mail Delivery Report\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"B\"\r\n\r\n\
             --B\r\nContent-Type: text/plain\r\n\r\nYour message was delivered.\r\n\
             --B\r\nContent-Type: message/delivery-status\r\n\r\n{status_body}\r\n\
             --B\r\nContent-Type: text/rfc822-headers\r\n\r\nSubject: Uitslag\r\n\r\n--B--\r\n"
        )
        .into_bytes()
    }

    #[test]
    fn a_postfix_report_reads_per_recipient() {
        let body = "Reporting-MTA: dns; lanes.example\r\nX-Postfix-Queue-ID: 1A2B\r\n\
                    Original-Envelope-Id: Q1\r\nArrival-Date: Tue,  1 Dec 2026 02:40:00 +0000\r\n\r\n\
                    Final-Recipient: rfc822; Arts@StsOK.test\r\nOriginal-Recipient: rfc822;arts@stsok.test\r\n\
                    Action: relayed\r\nStatus: 2.0.0\r\nRemote-MTA: dns; mx.stsok.test\r\n\
                    Diagnostic-Code: smtp; 250 2.0.0 Ok: queued as\r\n    9F8E\r\n\r\n\
                    Final-Recipient: rfc822; gone@stsok.test\r\nAction: failed\r\nStatus: 5.1.1\r\n\
                    Diagnostic-Code: smtp; 550 5.1.1 User unknown\r\n";
        let r = parse(&report(body)).unwrap();
        assert_eq!(r.envid.as_deref(), Some("Q1"));
        assert_eq!(r.recipients.len(), 2);
        let first = &r.recipients[0];
        assert_eq!(first.recipient, "arts@stsok.test");
        assert_eq!(first.action, Action::Delivered);
        assert_eq!(first.action_text, "relayed");
        assert_eq!(first.status, "2.0.0");
        assert_eq!(first.remote_mta.as_deref(), Some("mx.stsok.test"));
        assert_eq!(
            first.diagnostic.as_deref(),
            Some("smtp; 250 2.0.0 Ok: queued as 9F8E")
        );
        assert_eq!(r.recipients[1].action, Action::Failed);
        let delayed = body.replace("Action: relayed", "Action: delayed");
        assert_eq!(
            parse(&report(&delayed)).unwrap().recipients[0].action,
            Action::Delayed
        );
    }

    #[test]
    fn what_is_not_a_report_says_so() {
        assert_eq!(
            parse(b"Subject: hi\r\n\r\nplain text\r\n"),
            Err(ReportError::NoStatus)
        );
        assert_eq!(
            parse(&report(
                "Reporting-MTA: dns; x\r\n\r\nAction: delivered\r\n"
            )),
            Err(ReportError::NoRecipients)
        );
    }

    #[test]
    fn report_addresses_carry_the_item_and_its_token() {
        let token = new_token().unwrap();
        let a = address("Q-20261201-1", &token, "gw.example");
        assert_eq!(
            parse_address(&a, "GW.example"),
            Some(("Q-20261201-1", token.as_str()))
        );
        assert_eq!(parse_address(&a, "other.example"), None);
        for bad in [
            "postmaster@gw.example",
            "sluis-release+Q1@gw.example",
            "sluis-release+q1=00112233445566778899aabbccddeeff@gw.example",
            "sluis-release+Q1=0011@gw.example",
        ] {
            assert_eq!(parse_address(bad, "gw.example"), None, "{bad}");
        }
        assert!(token_matches(&token, &token));
        assert!(!token_matches(&token, &new_token().unwrap()));
    }
}
