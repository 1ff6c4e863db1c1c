//! A real Postfix in front of Sluis (its relay host) and a real receiving side: the promises that
//! matter to a mail administrator. Nothing is lost when the upstream is down or Sluis is killed,
//! and nothing arrives twice.

mod common;

use std::time::Duration;

use common::*;

const WAIT: Duration = Duration::from_secs(30);

/// Bytes the process has read so far (sockets included), from /proc.
fn rchar(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("rchar: ").and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

#[test]
fn postfix_relays_through_sluis_to_postfix() {
    let client = postfix_client();
    let receiver = postfix_receiver();
    let (listen, domain) = client_slot();
    let _sluis = Sluis::start_at(listen, receiver.port, "", &[]);
    let dir = scratch("pf");
    let token = "pf-through-1";
    let msg = message_file(dir.path(), token, 20);
    let rcpt = format!("someone@{domain}");
    client.submit("sender@org.test", &rcpt, &msg);
    let got = receiver.wait_delivered(token, 1, WAIT);
    assert_eq!(got.len(), 1, "client log:\n{}", client.maillog());
    assert!(got[0].contains("by sluis.test (Sluis) with ESMTP"));
    assert!(got[0].contains("line 19 of pf-through-1"));
    assert_eq!(client.queued_for(&rcpt), 0);
}

#[test]
fn postfix_with_the_shipped_relayhost_snippet_delivers_through_sluis() {
    let receiver = postfix_receiver();
    let (listen, _) = client_slot();
    let _sluis = Sluis::start_at(listen, receiver.port, "", &[]);
    let front = postfix_with_relayhost(listen);
    let dir = scratch("relayhost");
    let token = "relayhost-snippet-1";
    let msg = message_file(dir.path(), token, 3);
    front.submit("sender@org.test", "colleague@partner.test", &msg);
    let got = receiver.wait_delivered(token, 1, WAIT);
    assert_eq!(got.len(), 1, "front log:\n{}", front.maillog());
    assert!(
        got[0].contains("by sluis.test (Sluis) with ESMTPS"),
        "TLS was not used: {}",
        got[0]
    );
    let _ = std::process::Command::new("postfix")
        .args(["-c", &front.dir.display().to_string(), "stop"])
        .output();
}

#[test]
fn upstream_down_keeps_mail_in_client_queue_until_it_returns() {
    let client = postfix_client();
    let upstream_port = free_port();
    let (listen, domain) = client_slot();
    let sluis = Sluis::start_at(listen, upstream_port, "", &[]);
    let dir = scratch("down");
    let token = "upstream-down-1";
    let msg = message_file(dir.path(), token, 5);
    let rcpt = format!("patient-care@{domain}");
    client.submit("sender@org.test", &rcpt, &msg);

    // Sluis answers 451 4.4.1; Postfix keeps the message and says why.
    let deferred = wait_for(WAIT, || {
        client
            .delay_reasons(&rcpt)
            .into_iter()
            .find(|r| r.contains("451 4.4.1"))
    });
    assert!(
        deferred.is_some(),
        "no 451 deferral; queue: {:?}\nlog:\n{}",
        client.delay_reasons(&rcpt),
        sluis.log()
    );
    assert_eq!(client.queued_for(&rcpt), 1);

    // The upstream comes back: the retry delivers it, once.
    let sink = Sink::start_on(upstream_port, &[]);
    client.flush();
    let got = sink.wait_token(token, 1, WAIT);
    assert_eq!(got.len(), 1, "not delivered after the upstream returned");
    assert!(wait_for(WAIT, || (client.queued_for(&rcpt) == 0).then_some(())).is_some());
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(sink.with_token(token).len(), 1, "delivered more than once");
}

#[test]
fn kill9_during_data_loses_nothing_and_delivers_once() {
    let client = postfix_client();
    // The upstream takes 3 s to answer DATA, so Sluis is certain to be inside the transaction
    // (its client waiting for the end-of-data reply) when it is killed, before the upstream has
    // any of the message.
    let sink = Sink::start(&["-w", "3"]);
    let (listen, domain) = client_slot();
    let mut sluis = Sluis::start_at(listen, sink.port, "", &[]);
    let dir = scratch("kill");
    let token = "kill9-during-data-1";
    // Large enough that the upload itself takes a while: the kill may land mid-upload.
    let msg = message_file(dir.path(), token, 300_000);
    let rcpt = format!("ward-7@{domain}");
    let before = rchar(sluis.pid());
    client.submit("sender@org.test", &rcpt, &msg);

    let in_data = wait_for(WAIT, || {
        (rchar(sluis.pid()) > before + 1_000_000 || sluis.log().contains("upstream session open"))
            .then_some(())
    });
    assert!(in_data.is_some(), "Sluis never received the message");
    sluis.kill9();
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        sink.with_token(token).is_empty(),
        "upstream got data before the kill"
    );
    assert_eq!(client.queued_for(&rcpt), 1, "the client lost the message");

    sluis.spawn();
    client.flush();
    let got = sink.wait_token(token, 1, WAIT);
    assert_eq!(
        got.len(),
        1,
        "not delivered after restart; log:\n{}",
        sluis.log()
    );
    assert!(wait_for(WAIT, || (client.queued_for(&rcpt) == 0).then_some(())).is_some());
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(sink.with_token(token).len(), 1, "delivered more than once");
}

#[test]
fn mixed_upstream_refusal_delivers_the_rest_and_notifies_the_sender() {
    let receiver = postfix_receiver();
    let sluis = Sluis::start(receiver.port, DELIVER_ALL);
    let mut c = Smtp::connect(sluis.port);
    c.hello();
    assert!(c.cmd("MAIL FROM:<dsn-sender@org.test>").starts_with("250"));
    assert!(c.cmd("RCPT TO:<ok-mixed@partner.test>").starts_with("250"));
    assert!(
        c.cmd("RCPT TO:<gone@partner.test> NOTIFY=FAILURE ORCPT=rfc822;gone@partner.test")
            .starts_with("250")
    );
    assert!(c.cmd("DATA").starts_with("354"));
    c.send(
        b"Subject: mixed\r\nMessage-ID: <mixed-perm-1@org.test>\r\n\r\nBSN 123456782 body\r\n.\r\n",
    );
    let r = c.reply();
    assert!(r.starts_with("250 2.0.0"), "{r}");

    let delivered = receiver.wait_delivered("Message-ID: <mixed-perm-1@org.test>", 2, WAIT);
    let to_ok: Vec<_> = delivered
        .iter()
        .filter(|m| m.contains("Delivered-To: ok-mixed@partner.test"))
        .collect();
    assert_eq!(to_ok.len(), 1);
    let dsn: Vec<_> = delivered
        .iter()
        .filter(|m| m.contains("Delivered-To: dsn-sender@org.test"))
        .collect();
    assert_eq!(dsn.len(), 1, "no failure notice: {delivered:?}");
    let dsn = dsn[0];
    assert!(dsn.contains("report-type=delivery-status"));
    assert!(dsn.contains("Final-Recipient: rfc822; gone@partner.test"));
    assert!(dsn.contains("Status: 5.1.1"));
    assert!(dsn.contains("Return-Path: <>"));
    // Headers only: the body may hold patient data and is not repeated.
    assert!(!dsn.contains("BSN 123456782"));

    // A temporary refusal of one recipient defers the whole transaction: nothing is sent, the
    // client retries everyone later, nobody gets it twice.
    let mut c = Smtp::connect(sluis.port);
    c.hello();
    let r = c.send_message(
        "dsn-sender@org.test",
        &["ok-later@partner.test", "later@partner.test"],
        b"Subject: mixed\r\nMessage-ID: <mixed-temp-1@org.test>\r\n\r\nx\r\n",
    );
    assert!(r.starts_with("450 4.2.1 <later@partner.test>:"), "{r}");
    std::thread::sleep(Duration::from_secs(1));
    assert!(receiver.delivered_with("mixed-temp-1@org.test").is_empty());
}
