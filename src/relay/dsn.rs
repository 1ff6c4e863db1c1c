//! Delivery status notifications (RFC 3464) for recipients refused for good (by the policy or
//! an upstream) while others of the same transaction were delivered or held: the case in relay
//! mode where the client's single end-of-DATA reply cannot say what happened to everyone. The
//! one place bounces are made: the pipeline and a reviewer's release both send them from here,
//! once per transaction.
//!
//! Written here, not with lettre: lettre has no multipart/report builder, and the notice must
//! travel through the same lane client (TLS settings, timeouts) as the message it reports on.
//! Only the original headers are returned (RET=HDRS semantics whatever was asked): the body may
//! carry patient data, and a bounce is no place to repeat it.

use smtp_proto::{RcptTo, Response};

use crate::spool::SpooledBody;
use crate::wire::Client;
use crate::wire::address::mailbox;

use super::received::rfc5322_now;
use super::{Envelope, Lane};

/// At most this much of the original header section is returned.
const MAX_HEADERS: usize = 32 * 1024;

async fn original_headers(body: &mut SpooledBody) -> Vec<u8> {
    let mut head = Vec::new();
    if body.rewind().await.is_err() {
        return head;
    }
    while let Ok(Some(chunk)) = body.next_chunk().await {
        head.extend_from_slice(&chunk);
        if let Some(end) = memchr::memmem::find(&head, b"\r\n\r\n") {
            head.truncate(end + 2);
            return head;
        }
        if head.len() > MAX_HEADERS {
            break;
        }
    }
    head.truncate(MAX_HEADERS);
    // Cut at the last complete line so the part stays well-formed.
    if let Some(end) = memchr::memrchr(b'\n', &head) {
        head.truncate(end + 1);
    }
    head
}

fn wants_failure_notice(r: &RcptTo<String>) -> bool {
    use smtp_proto::{
        RCPT_NOTIFY_DELAY, RCPT_NOTIFY_FAILURE, RCPT_NOTIFY_NEVER, RCPT_NOTIFY_SUCCESS,
    };
    let notify = r.flags
        & (RCPT_NOTIFY_NEVER | RCPT_NOTIFY_SUCCESS | RCPT_NOTIFY_FAILURE | RCPT_NOTIFY_DELAY);
    notify == 0 || r.flags & RCPT_NOTIFY_FAILURE != 0
}

/// Builds the report. Pure, so it can be tested without a network.
pub fn compose(
    hostname: &str,
    env: &Envelope,
    failures: &[(&RcptTo<String>, &Response<String>)],
    headers: &[u8],
) -> Vec<u8> {
    let boundary = format!("{}.sluis-dsn", env.id);
    let mut m = String::new();
    m.push_str(&format!(
        "From: Mail Delivery System <MAILER-DAEMON@{hostname}>\r\n"
    ));
    m.push_str(&format!("To: <{}>\r\n", mailbox(&env.mail_from.address)));
    m.push_str("Subject: Undelivered Mail Returned to Sender\r\n");
    m.push_str(&format!("Date: {}\r\n", rfc5322_now()));
    m.push_str(&format!("Message-ID: <{}.dsn@{hostname}>\r\n", env.id));
    m.push_str("Auto-Submitted: auto-replied\r\n");
    m.push_str("MIME-Version: 1.0\r\n");
    m.push_str(&format!(
        "Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"{boundary}\"\r\n\r\n"
    ));
    m.push_str(&format!(
        "--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
    ));
    m.push_str(&format!(
        "This is the mail gateway at {hostname}.\r\n\r\nYour message (transaction {}) was \
         delivered to its other recipients, but\r\nnot to these:\r\n\r\n",
        env.id
    ));
    for (rcpt, reply) in failures {
        m.push_str(&format!(
            "  <{}>: {} {}\r\n",
            mailbox(&rcpt.address),
            reply.code,
            one_line(&reply.message)
        ));
    }
    m.push_str(&format!(
        "\r\n--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\n\
         Reporting-MTA: dns; {hostname}\r\nX-Sluis-Transaction: {}\r\n",
        env.id
    ));
    if let Some(envid) = &env.mail_from.env_id {
        m.push_str(&format!("Original-Envelope-Id: {}\r\n", one_line(envid)));
    }
    m.push_str(&format!("Arrival-Date: {}\r\n", rfc5322_now()));
    for (rcpt, reply) in failures {
        m.push_str("\r\n");
        if let Some(orcpt) = &rcpt.orcpt {
            m.push_str(&format!(
                "Original-Recipient: rfc822; {}\r\n",
                one_line(orcpt)
            ));
        }
        let status = if reply.esc[0] == 5 {
            format!("{}.{}.{}", reply.esc[0], reply.esc[1], reply.esc[2])
        } else {
            "5.0.0".to_string()
        };
        m.push_str(&format!(
            "Final-Recipient: rfc822; {}\r\nAction: failed\r\nStatus: {status}\r\n\
             Diagnostic-Code: smtp; {} {}\r\n",
            mailbox(&rcpt.address),
            reply.code,
            one_line(&reply.message)
        ));
    }
    m.push_str(&format!(
        "\r\n--{boundary}\r\nContent-Type: text/rfc822-headers\r\n\r\n"
    ));
    let mut out = m.into_bytes();
    out.extend_from_slice(headers);
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    out
}

fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Sends the report to the envelope sender through `lane`. A failure is logged: the message
/// itself was delivered, and a null sender never gets a notice (RFC 5321 §4.5.5).
pub async fn send_failure_notice(
    lane: &Lane,
    hostname: &str,
    env: &Envelope,
    failures: &[(RcptTo<String>, Response<String>)],
    body: &mut SpooledBody,
) {
    let failures: Vec<(&RcptTo<String>, &Response<String>)> = failures
        .iter()
        .filter(|(r, _)| wants_failure_notice(r))
        .map(|(r, x)| (r, x))
        .collect();
    if env.mail_from.address.is_empty() || failures.is_empty() {
        return;
    }
    let headers = original_headers(body).await;
    let report = compose(hostname, env, &failures, &headers);
    match send(lane, hostname, &env.mail_from.address, &report).await {
        Ok(()) => tracing::info!(id = %env.id, refused = failures.len(), "sent failure notice"),
        Err(e) => tracing::error!(id = %env.id, error = %e, "could not send failure notice"),
    }
}

pub(crate) async fn send(
    lane: &Lane,
    hostname: &str,
    to: &str,
    report: &[u8],
) -> Result<(), String> {
    send_as(lane, hostname, "", to, report).await
}

/// Sends a message Sluis wrote itself (a report, a notice, a portal notification) from
/// `from` (empty: the null sender) to `to`.
pub(crate) async fn send_as(
    lane: &Lane,
    hostname: &str,
    from: &str,
    to: &str,
    report: &[u8],
) -> Result<(), String> {
    let t = lane.config.command_timeout;
    let mut up = Client::connect(&lane.endpoint, hostname)
        .await
        .map_err(|e| e.to_string())?;
    for (line, what) in [
        (format!("MAIL FROM:<{}>\r\n", mailbox(from)), "MAIL"),
        (format!("RCPT TO:<{}>\r\n", mailbox(to)), "RCPT"),
        ("DATA\r\n".to_string(), "DATA"),
    ] {
        let r = up
            .command(line.as_bytes(), t, what)
            .await
            .map_err(|e| e.to_string())?;
        if r.code / 100 != 2 && r.code != 354 {
            return Err(format!("{what} refused: {} {}", r.code, r.message));
        }
    }
    // The report has CRLF line ends and no line starting with a dot except inside headers we
    // copied, so stuff it like any body.
    let mut stuffed = Vec::with_capacity(report.len() + 16);
    super::DotStuffer::default().stuff(report, &mut stuffed);
    stuffed.extend_from_slice(b".\r\n");
    up.send(&stuffed).await.map_err(|e| e.to_string())?;
    let r = up
        .read_reply(lane.config.data_done_timeout, "end of data")
        .await
        .map_err(|e| e.to_string())?;
    up.quit().await;
    if r.code / 100 == 2 {
        Ok(())
    } else {
        Err(format!("report refused: {} {}", r.code, r.message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_names_recipient_status_and_keeps_headers_only() {
        let env = Envelope {
            id: "T1".into(),
            mail_from: smtp_proto::MailFrom {
                address: "a@org.test".to_string(),
                ..Default::default()
            },
            rcpts: vec![],
            require_tls: false,
        };
        let rcpt = smtp_proto::RcptTo {
            address: "gone@partner.test".to_string(),
            ..Default::default()
        };
        let reply = Response {
            code: 550,
            esc: [5, 1, 1],
            message: "User unknown".to_string(),
        };
        let out = compose("gw.test", &env, &[(&rcpt, &reply)], b"Subject: hi\r\n");
        let s = String::from_utf8(out).unwrap();
        assert!(s.contains(
            "Final-Recipient: rfc822; gone@partner.test\r\nAction: failed\r\nStatus: 5.1.1"
        ));
        assert!(s.contains("Content-Type: text/rfc822-headers\r\n\r\nSubject: hi\r\n"));
        assert!(s.ends_with("--T1.sluis-dsn--\r\n"));
    }
}
