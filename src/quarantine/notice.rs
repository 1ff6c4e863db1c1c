//! The notice a sender gets when a recipient of theirs is held: what happened and what to do
//! instead (DESIGN §8). It names the recipients and the reason, never the content or findings.

use crate::relay::received::rfc5322_now;

/// Builds the notice (RFC 5322, CRLF, UTF-8 quoted-printable-free plain text).
pub fn compose(
    hostname: &str,
    sender: &str,
    quarantine_id: &str,
    message_id: Option<&str>,
    held: &[(&str, &str)],
    link: Option<&str>,
) -> Vec<u8> {
    let mut m = String::new();
    m.push_str(&format!(
        "From: Mail Gateway <MAILER-DAEMON@{hostname}>\r\n"
    ));
    m.push_str(&format!(
        "To: <{}>\r\n",
        crate::wire::address::mailbox(sender)
    ));
    m.push_str("Subject: Your message is held for review\r\n");
    m.push_str(&format!("Date: {}\r\n", rfc5322_now()));
    m.push_str(&format!(
        "Message-ID: <{quarantine_id}.notice@{hostname}>\r\n"
    ));
    m.push_str("Auto-Submitted: auto-replied\r\n");
    m.push_str("MIME-Version: 1.0\r\n");
    m.push_str("Content-Type: text/plain; charset=utf-8\r\n");
    m.push_str("Content-Transfer-Encoding: 8bit\r\n\r\n");
    m.push_str(&format!(
        "This is the mail gateway at {hostname}.\r\n\r\nYour message{} was not sent to the \
         recipients below. It is held\r\nfor review by a compliance officer (reference \
         {quarantine_id}).\r\n\r\n",
        message_id.map(|id| format!(" <{id}>")).unwrap_or_default()
    ));
    for (rcpt, why) in held {
        m.push_str(&format!("  <{rcpt}>\r\n    {}\r\n\r\n", one_line(why)));
    }
    m.push_str(
        "What to do: send patient information through the secure channel of your\r\n\
         organisation (patient portal or secure mail service) instead. If this message\r\n\
         must go by e-mail, ask your privacy or security officer to review it and quote\r\n\
         the reference above. Do not send it again by e-mail.\r\n",
    );
    if let Some(link) = link {
        m.push_str(&format!(
            "\r\nSee where it stands, report that it holds no patient data, or (where your\r\n\
             organisation allows it) send it anyway with a justification, at:\r\n\r\n  {link}\r\n\r\n\
             The link is for you alone and works until the message is decided.\r\n"
        ));
    }
    m.into_bytes()
}

fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn notice_says_what_to_do_and_names_the_reference() {
        let n = super::compose(
            "gw.test",
            "a@org.test",
            "ABC",
            Some("m1@org.test"),
            &[("p@gmail.com", "Use the patient portal")],
            Some("https://sluis.test/s/ABC/1-x"),
        );
        let s = String::from_utf8(n).unwrap();
        assert!(s.contains("To: <a@org.test>\r\n"));
        assert!(s.contains("reference ABC"));
        assert!(s.contains("<p@gmail.com>\r\n    Use the patient portal"));
        assert!(s.contains("Auto-Submitted: auto-replied"));
        assert!(s.contains("\r\n  https://sluis.test/s/ABC/1-x\r\n"));
    }
}
