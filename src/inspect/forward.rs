//! Signs that a message is an automated forward (DESIGN §5): an inbox rule, a mailbox's
//! auto-forwarding, a Sieve or procmail redirect. Each signal has a name, shown to reviewers and
//! in refusals. A person forwarding a message writes a new one, which carries none of these.

use mail_parser::Message;

/// Header-based signals in the top-level headers of `msg`, each once, in a fixed order.
pub fn header_signals(msg: &Message) -> Vec<&'static str> {
    let mut signals = Vec::new();
    for h in msg.headers() {
        let name = h.name().to_ascii_lowercase();
        let value = h
            .value()
            .as_text()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let signal = match name.as_str() {
            // RFC 3834: anything but "no" is machine-generated.
            "auto-submitted" if !value.is_empty() && value != "no" => "auto-submitted",
            "resent-from" | "resent-sender" | "resent-to" | "resent-cc" | "resent-date"
            | "resent-message-id" => "resent-headers",
            "x-forwarded-to" | "x-forwarded-for" => "x-forwarded",
            "x-ms-exchange-inbox-rules-loop" => "exchange-inbox-rule",
            "x-ms-exchange-generated-message-source" => "exchange-generated",
            "x-ms-exchange-organization-autoforwarded" if value == "true" => {
                "exchange-auto-forwarded"
            }
            "x-loop" => "x-loop",
            // Added at final delivery: a message that carries it was delivered once already.
            "delivered-to" => "delivered-to",
            _ => continue,
        };
        if !signals.contains(&signal) {
            signals.push(signal);
        }
    }
    signals.sort_unstable();
    signals
}

/// Envelope signals: a sender rewritten for forwarding (SRS), or an envelope sender that is
/// not the managed From address of the message (a mailbox re-sending mail it received).
pub fn envelope_signals(
    envelope_from: &str,
    header_from: Option<&str>,
    from_is_managed: bool,
) -> Vec<&'static str> {
    let mut signals = Vec::new();
    let local = envelope_from.split('@').next().unwrap_or("");
    if local.starts_with("SRS0=") || local.starts_with("SRS1=") || local.starts_with("srs0=") {
        signals.push("srs-rewritten-sender");
    }
    if let Some(from) = header_from
        && from_is_managed
        && !envelope_from.is_empty()
        && !envelope_from.eq_ignore_ascii_case(from)
        && crate::posture::domain_of(envelope_from) != crate::posture::domain_of(from)
    {
        signals.push("envelope-sender-not-managed-from");
    }
    signals
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::MessageParser;

    fn signals(raw: &str) -> Vec<&'static str> {
        header_signals(&MessageParser::default().parse(raw.as_bytes()).unwrap())
    }

    #[test]
    fn names_each_signal() {
        assert_eq!(
            signals(
                "X-MS-Exchange-Inbox-Rules-Loop: a@zorg.test\r\nAuto-Submitted: auto-forwarded\r\nSubject: x\r\n\r\nx"
            ),
            vec!["auto-submitted", "exchange-inbox-rule"]
        );
        assert_eq!(
            signals("Auto-Submitted: no\r\nSubject: x\r\n\r\nx"),
            Vec::<&str>::new()
        );
        assert_eq!(
            signals(
                "Resent-From: a@b\r\nResent-Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nX-Loop: a\r\n\r\nx"
            ),
            vec!["resent-headers", "x-loop"]
        );
        assert_eq!(
            signals("From: a@b\r\nSubject: Fwd: uitslag\r\n\r\n> quoted"),
            Vec::<&str>::new()
        );
    }

    #[test]
    fn envelope_heuristics() {
        assert_eq!(
            envelope_signals(
                "SRS0=abcd=XY=zorg.test=jan@forwarder.example",
                Some("jan@zorg.test"),
                true
            ),
            vec!["srs-rewritten-sender", "envelope-sender-not-managed-from"]
        );
        assert!(envelope_signals("jan@zorg.test", Some("Jan@Zorg.test"), true).is_empty());
        assert!(
            envelope_signals("bounce@mailer.example", Some("news@other.example"), false).is_empty()
        );
    }
}
