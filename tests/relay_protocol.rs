//! Sluis between real clients (Python smtplib, swaks, raw sockets) and a real upstream
//! (Postfix's smtp-sink): what arrives, what is refused, and how.

mod common;

use std::time::Duration;

use common::*;

const WAIT: Duration = Duration::from_secs(10);

/// The dumped message from Sluis's Received header on (smtp-sink writes LF line ends).
fn after_our_received(dump: &str) -> String {
    let start = dump.find("Received: from").expect("sink's Received");
    let ours = dump[start + 1..]
        .find("Received: from")
        .map(|i| start + 1 + i)
        .expect("Sluis's Received");
    let rest = &dump[ours..];
    // Skip our header and its folded continuation lines.
    let mut lines = rest.split('\n');
    lines.next();
    let body: Vec<&str> = lines.skip_while(|l| l.starts_with('\t')).collect();
    body.join("\n")
}

#[test]
fn message_arrives_byte_identical_apart_from_received() {
    let sink = Sink::start(&[]);
    let sluis = Sluis::start(sink.port, "");
    // Awkward but legal content: dots at line starts, a lone dot line inside, 8-bit UTF-8 text,
    // trailing white space, a folded header, an empty line at the end.
    let out = python(&format!(
        r#"
import smtplib
msg = (b"From: <a@org.test>\r\nTo: <b@partner.test>\r\nSubject: byte test\r\n"
       b"X-Folded: one\r\n\ttwo\r\nMessage-ID: <bytes-1@org.test>\r\nContent-Type: text/plain; charset=utf-8\r\n"
       b"Content-Transfer-Encoding: 8bit\r\n\r\n"
       b".leading dot\r\n..two dots\r\n.\r\nafter a lone dot\r\n"
       + "Caf\u00e9 na\u00efef \u20ac 5  \r\n".encode() + b"tabs\tand trailing \t\r\n\r\n")
s = smtplib.SMTP("127.0.0.1", {port})
s.ehlo("py.test")
print(s.sendmail("a@org.test", ["b@partner.test"], msg, mail_options=["BODY=8BITMIME"]))
s.quit()
"#,
        port = sluis.port
    ));
    assert_eq!(out.trim(), "{}", "smtplib: {out}");
    let dumps = sink.wait_token("bytes-1@org.test", 1, WAIT);
    assert_eq!(dumps.len(), 1, "sink got: {dumps:?}");
    let expected = "From: <a@org.test>\nTo: <b@partner.test>\nSubject: byte test\n\
        X-Folded: one\n\ttwo\nMessage-ID: <bytes-1@org.test>\nContent-Type: text/plain; charset=utf-8\n\
        Content-Transfer-Encoding: 8bit\n\n.leading dot\n..two dots\n.\nafter a lone dot\n\
        Café naïef € 5  \ntabs\tand trailing \t\n\n";
    let got = after_our_received(&dumps[0]);
    assert!(
        got.starts_with(expected),
        "content changed in transit:\n--- expected\n{expected}\n--- got\n{got}"
    );
    assert_eq!(got.trim_end_matches('\n'), expected.trim_end_matches('\n'));
    assert!(dumps[0].contains("by sluis.test (Sluis) with ESMTP id "));
    assert!(
        dumps[0].contains("X-Mail-Args: <a@org.test> BODY=8BITMIME"),
        "{}",
        dumps[0]
    );
}

#[test]
fn pipelined_transactions_each_get_their_replies_and_arrive() {
    let sink = Sink::start(&[]);
    let sluis = Sluis::start(sink.port, "");
    let mut c = Smtp::connect(sluis.port);
    assert!(c.hello().contains("PIPELINING"));
    // Two whole transactions and QUIT in as few writes as RFC 2920 allows.
    c.send(b"MAIL FROM:<a@org.test>\r\nRCPT TO:<x@partner.test>\r\nRCPT TO:<y@partner.test>\r\nDATA\r\n");
    assert!(c.reply().starts_with("250 2.1.0"));
    assert!(c.reply().starts_with("250 2.1.5"));
    assert!(c.reply().starts_with("250 2.1.5"));
    assert!(c.reply().starts_with("354"));
    c.send(b"Subject: one\r\n\r\npipe-one\r\n.\r\nMAIL FROM:<a@org.test>\r\nRCPT TO:<z@partner.test>\r\nDATA\r\n");
    assert!(c.reply().starts_with("250 2.0.0"), "end of data 1");
    assert!(c.reply().starts_with("250 2.1.0"));
    assert!(c.reply().starts_with("250 2.1.5"));
    assert!(c.reply().starts_with("354"));
    c.send(b"Subject: two\r\n\r\npipe-two\r\n.\r\nQUIT\r\n");
    assert!(c.reply().starts_with("250 2.0.0"), "end of data 2");
    assert!(c.reply().starts_with("221"));
    let one = sink.wait_token("pipe-one", 1, WAIT);
    let two = sink.wait_token("pipe-two", 1, WAIT);
    assert_eq!((one.len(), two.len()), (1, 1));
    assert!(one[0].contains("X-Rcpt-Args: <x@partner.test>"));
    assert!(one[0].contains("X-Rcpt-Args: <y@partner.test>"));
    assert!(two[0].contains("X-Rcpt-Args: <z@partner.test>"));
}

#[test]
fn smtputf8_and_eight_bit_mail_pass_and_eight_bit_without_smtputf8_is_refused() {
    let receiver = postfix_receiver();
    let sluis = Sluis::start(receiver.port, "");
    let out = python(&format!(
        r#"
import smtplib
msg = "From: <jos\u00e9@org.test>\r\nTo: <r\u00f6ntgen@partner.test>\r\nSubject: \u00fcmlaut\r\nMessage-ID: <utf8-1@org.test>\r\n\r\nGro\u00dfe Gr\u00fc\u00dfe\r\n".encode()
s = smtplib.SMTP("127.0.0.1", {port})
s.ehlo("py.test")
assert s.has_extn("smtputf8")
print(s.sendmail("jos\u00e9@org.test", ["r\u00f6ntgen@partner.test"], msg, mail_options=["SMTPUTF8", "BODY=8BITMIME"]))
s.quit()
"#,
        port = sluis.port
    ));
    assert_eq!(out.trim(), "{}");
    let got = receiver.wait_delivered("utf8-1@org.test", 1, WAIT);
    assert_eq!(got.len(), 1);
    assert!(
        got[0].contains("Delivered-To: röntgen@partner.test"),
        "{}",
        got[0]
    );
    assert!(
        got[0].contains("Return-Path: <josé@org.test>"),
        "{}",
        got[0]
    );
    assert!(got[0].contains("Große Grüße"));
    assert!(got[0].contains("by sluis.test (Sluis) with ESMTP id"));

    // An upstream without SMTPUTF8 (smtp-sink) is never handed a downgraded message.
    let sink = Sink::start(&[]);
    let plain = Sluis::start(sink.port, "");
    let out = python(&format!(
        r#"
import smtplib
msg = "Subject: x\r\nMessage-ID: <utf8-2@org.test>\r\n\r\nx\r\n".encode()
s = smtplib.SMTP("127.0.0.1", {port})
try:
    s.sendmail("jos\u00e9@org.test", ["b@partner.test"], msg, mail_options=["SMTPUTF8"])
except smtplib.SMTPDataError as e:
    print(e.smtp_code, e.smtp_error.decode())
"#,
        port = plain.port
    ));
    assert!(out.starts_with("553 5.6.7"), "{out}");
    assert!(sink.messages().is_empty());

    let mut c = Smtp::connect(sluis.port);
    c.hello();
    let r = c.cmd("MAIL FROM:<josé@org.test>");
    assert!(r.starts_with("553 5.6.7"), "{r}");
    assert!(c.cmd("MAIL FROM:<a@org.test>").starts_with("250"));
    let r = c.cmd("RCPT TO:<röntgen@partner.test>");
    assert!(r.starts_with("553 5.6.7"), "{r}");
    c.send(b"NOOP \xff\xfe\r\n");
    assert!(c.reply().starts_with("500 5.5.2"));
}

#[test]
fn bdat_chunks_arrive_as_one_message() {
    let sink = Sink::start(&[]);
    let sluis = Sluis::start(sink.port, "");
    let mut c = Smtp::connect(sluis.port);
    assert!(c.hello().contains("CHUNKING"));
    assert!(c.cmd("MAIL FROM:<a@org.test>").starts_with("250"));
    assert!(c.cmd("RCPT TO:<b@partner.test>").starts_with("250"));
    let part1 = b"Subject: chunked\r\nMessage-ID: <bdat-1@org.test>\r\n\r\n.dot first\r\n";
    let part2 = b"second chunk\r\n";
    c.send(format!("BDAT {}\r\n", part1.len()).as_bytes());
    c.send(part1);
    assert_eq!(
        c.reply(),
        format!("250 2.0.0 {} bytes received", part1.len())
    );
    // The last chunk and the command come in one write, data bytes that look like commands.
    let mut last = format!("BDAT {} LAST\r\n", part2.len()).into_bytes();
    last.extend_from_slice(part2);
    c.send(&last);
    let r = c.reply();
    assert!(r.starts_with("250 2.0.0"), "{r}");
    let got = sink.wait_token("bdat-1@org.test", 1, WAIT);
    assert_eq!(got.len(), 1);
    assert!(
        got[0].contains("\n.dot first\nsecond chunk\n"),
        "{}",
        got[0]
    );

    // BDAT without a transaction: the chunk (which looks like commands) is still read, then
    // refused; the QUIT inside it must not end the session.
    c.send(b"BDAT 12 LAST\r\nRSET\r\nQUIT\r\n");
    assert!(c.reply().starts_with("503 5.5.1"));
    assert!(
        c.cmd("NOOP").starts_with("250"),
        "chunk bytes were taken as commands"
    );
}

#[test]
fn size_limit_is_announced_and_enforced() {
    let sink = Sink::start(&[]);
    let sluis = Sluis::start(sink.port, "[limits]\nmessage_size = 20000\n");
    let mut c = Smtp::connect(sluis.port);
    assert!(c.hello().contains("SIZE 20000"));
    let r = c.cmd("MAIL FROM:<a@org.test> SIZE=20001");
    assert!(r.starts_with("552 5.3.4"), "{r}");
    // A client that under-declares is stopped while streaming, and nothing is relayed.
    assert!(c.cmd("MAIL FROM:<a@org.test> SIZE=100").starts_with("250"));
    assert!(c.cmd("RCPT TO:<b@partner.test>").starts_with("250"));
    assert!(c.cmd("DATA").starts_with("354"));
    let line = "x".repeat(98) + "\r\n";
    let mut body = String::from("Subject: big-one\r\n\r\n");
    for _ in 0..300 {
        body.push_str(&line);
    }
    c.send(body.as_bytes());
    c.send(b".\r\n");
    let r = c.reply();
    assert!(r.starts_with("552 5.3.4"), "{r}");
    assert!(c.cmd("NOOP").starts_with("250"));
    std::thread::sleep(Duration::from_millis(300));
    assert!(sink.with_token("big-one").is_empty());
}

#[test]
fn client_outside_allowed_networks_is_refused() {
    let sink = Sink::start(&[]);
    let sluis = Sluis::start_on(free_port(), sink.port, "", &["--allow-net", "127.0.0.1/32"]);
    let mut c = Smtp::connect_from("127.0.0.2", sluis.port);
    let r = c.reply();
    assert!(r.starts_with("554 5.7.1"), "{r}");
    assert!(c.is_closed());
    let mut ok = Smtp::connect_from("127.0.0.1", sluis.port);
    assert!(ok.hello().starts_with("250"));
}

#[test]
fn auth_is_offered_only_over_tls_and_lets_outside_clients_relay() {
    let sink = Sink::start(&[]);
    let dir = scratch("auth");
    let creds = credentials(dir.path(), "ehr", "s3cret-pass");
    let extra = format!(
        "[auth]\nenabled = true\ncredentials_file = \"{}\"\n",
        creds.display()
    );
    let sluis = Sluis::start_on(
        free_port(),
        sink.port,
        &extra,
        &["--allow-net", "127.0.0.1/32"],
    );

    // An outside client may connect, but not relay without logging in.
    let mut c = Smtp::connect_from("127.0.0.2", sluis.port);
    let ehlo = c.hello();
    assert!(!ehlo.contains("AUTH"), "AUTH offered in the clear: {ehlo}");
    assert!(
        c.cmd("AUTH PLAIN AGVocgBzM2NyZXQtcGFzcw==")
            .starts_with("530 5.7.0")
    );
    assert!(c.cmd("MAIL FROM:<a@org.test>").starts_with("250"));
    let r = c.cmd("RCPT TO:<b@partner.test>");
    assert!(r.starts_with("554 5.7.1"), "{r}");

    let wrong = swaks_login(sluis.port, "127.0.0.2", "PLAIN", "wrong", &[]);
    assert!(wrong.contains("535 5.7.8"), "{wrong}");
    let good = swaks_login(
        sluis.port,
        "127.0.0.2",
        "LOGIN",
        "s3cret-pass",
        &["--header", "Message-ID: <auth-1@org.test>"],
    );
    assert!(good.contains("235 2.7.0"), "{good}");
    let got = sink.wait_token("auth-1@org.test", 1, WAIT);
    assert_eq!(got.len(), 1, "{good}");
    assert!(got[0].contains("with ESMTPSA id"));
}

#[test]
fn bare_lf_and_bare_cr_never_end_data_nor_reach_upstream() {
    let sink = Sink::start(&[]);
    let sluis = Sluis::start(sink.port, "");
    let attacks: [&[u8]; 4] = [
        // The classic: a bare-LF end of data, then a smuggled transaction.
        b"Subject: s1\r\n\r\nhello\n.\nMAIL FROM:<ceo@org.test>\r\nRCPT TO:<victim@partner.test>\r\nDATA\r\nSubject: smuggled-1\r\n\r\nx\r\n.\r\n",
        b"Subject: s2\r\n\r\nhello\r\n.\nMAIL FROM:<ceo@org.test>\r\nRCPT TO:<victim@partner.test>\r\nDATA\r\nSubject: smuggled-2\r\n\r\nx\r\n.\r\n",
        b"Subject: s3\r\n\r\nhello\n.\r\nMAIL FROM:<ceo@org.test>\r\nRCPT TO:<victim@partner.test>\r\nDATA\r\nSubject: smuggled-3\r\n\r\nx\r\n.\r\n",
        b"Subject: s4\r\n\r\nhello\r.\rMAIL FROM:<ceo@org.test>\r\nRCPT TO:<victim@partner.test>\r\nDATA\r\nSubject: smuggled-4\r\n\r\nx\r\n.\r\n",
    ];
    for (i, attack) in attacks.iter().enumerate() {
        let mut c = Smtp::connect(sluis.port);
        c.hello();
        c.start_data("a@org.test", &["b@partner.test"]);
        c.send(attack);
        // Only the real CRLF.CRLF at the end closes the data: one reply, a refusal.
        let r = c.reply();
        assert!(r.starts_with("550 5.6.0"), "attack {i}: {r}");
        assert!(c.cmd("NOOP").starts_with("250"), "attack {i}: out of sync");
    }
    std::thread::sleep(Duration::from_millis(500));
    assert!(sink.with_token("smuggled").is_empty());
    assert!(
        sink.messages().is_empty(),
        "something was relayed: {:?}",
        sink.messages()
    );
}

#[test]
fn nul_overlong_and_unknown_input_get_precise_replies() {
    let sink = Sink::start(&[]);
    let sluis = Sluis::start(
        sink.port,
        "[limits]\nrecipients = 2\nerrors_per_session = 8\n",
    );
    let mut c = Smtp::connect(sluis.port);
    c.hello();
    c.send(b"NOOP\0\r\n");
    assert!(c.reply().starts_with("500 5.5.2"));
    c.send(format!("NOOP {}\r\n", "a".repeat(5000)).as_bytes());
    assert!(c.reply().starts_with("500 5.5.2 Error: line too long"));
    assert!(c.cmd("FROB").starts_with("500 5.5.2"));
    assert!(c.cmd("VRFY root").starts_with("502 5.5.1"));
    assert!(c.cmd("EXPN staff").starts_with("502 5.5.1"));
    assert!(c.cmd("HELP").starts_with("214"));
    assert!(c.cmd("RCPT TO:<b@partner.test>").starts_with("503 5.5.1"));
    assert!(c.cmd("MAIL FROM:<a@org.test>").starts_with("250"));
    assert!(c.cmd("RCPT TO:<b@partner.test>").starts_with("250"));
    assert!(c.cmd("RCPT TO:<c@partner.test>").starts_with("250"));
    assert!(c.cmd("RCPT TO:<d@partner.test>").starts_with("452 4.5.3"));
    assert!(c.cmd("DATA").starts_with("354"));
    c.send(format!("Subject: long\r\n\r\n{}\r\n.\r\n", "y".repeat(1200)).as_bytes());
    assert!(c.reply().starts_with("550 5.6.0"));
    // Errors so far: NUL, long line, FROB, VRFY, EXPN, RCPT = 6 (a 452 for too many
    // recipients is no error of the client's: RFC 5321 4.5.3.1.8); the 8th ends the session.
    assert!(c.cmd("FROB").starts_with("500"));
    assert!(c.cmd("FROB").starts_with("500"));
    let r = c.reply();
    assert!(r.starts_with("421 4.7.0"), "{r}");
    assert!(c.is_closed());
}

#[test]
fn command_timeout_ends_idle_sessions() {
    let sink = Sink::start(&[]);
    let sluis = Sluis::start(sink.port, "[timeouts]\ncommand = \"1s\"\n");
    let mut c = Smtp::connect(sluis.port);
    c.hello();
    let r = c.reply();
    assert!(r.starts_with("421 4.4.2"), "{r}");
}

#[test]
fn session_limits_per_client_and_in_total() {
    let sink = Sink::start(&[]);
    let sluis = Sluis::start(
        sink.port,
        "[limits]\nsessions = 3\nsessions_per_client = 2\n",
    );
    let mut a = Smtp::connect_from("127.0.0.1", sluis.port);
    let mut b = Smtp::connect_from("127.0.0.1", sluis.port);
    a.hello();
    b.hello();
    let mut third = Smtp::connect_from("127.0.0.1", sluis.port);
    assert!(third.reply().starts_with("421 4.7.0"));
    let mut other = Smtp::connect_from("127.0.0.3", sluis.port);
    other.hello();
    let mut over = Smtp::connect_from("127.0.0.4", sluis.port);
    assert!(over.reply().starts_with("421 4.7.0"));
    drop(a);
    let again = wait_for(WAIT, || {
        let mut c = Smtp::connect_from("127.0.0.1", sluis.port);
        c.reply().starts_with("220").then_some(())
    });
    assert!(again.is_some(), "a slot was not released");
}

#[test]
fn upstream_refusals_are_passed_on_with_their_codes() {
    // The upstream refuses RCPT for good: the client sees that, nothing is sent.
    let sink = Sink::start(&["-f", "RCPT"]);
    let sluis = Sluis::start(sink.port, "");
    let mut c = Smtp::connect(sluis.port);
    c.hello();
    let r = c.send_message(
        "a@org.test",
        &["b@partner.test"],
        b"Subject: refused\r\n\r\nx\r\n",
    );
    assert!(r.starts_with("500 5.3.0 <b@partner.test>:"), "{r}");

    // A temporary refusal stays temporary.
    let soft = Sink::start(&["-r", "MAIL"]);
    let sluis2 = Sluis::start(soft.port, "");
    let mut c = Smtp::connect(sluis2.port);
    c.hello();
    let r = c.send_message(
        "a@org.test",
        &["b@partner.test"],
        b"Subject: soft\r\n\r\nx\r\n",
    );
    assert!(r.starts_with("450 4.3.0"), "{r}");
}

#[test]
fn unreachable_upstream_gives_451_never_250() {
    let port = free_port();
    let sluis = Sluis::start(port, "");
    let mut c = Smtp::connect(sluis.port);
    c.hello();
    let r = c.send_message(
        "a@org.test",
        &["b@partner.test"],
        b"Subject: nowhere\r\n\r\nx\r\n",
    );
    assert!(
        r.starts_with("451 4.4.1 Upstream default unavailable"),
        "{r}"
    );
}

/// A message with `subject` and `token` through its own client session; the end-of-DATA reply.
fn one_message(port: u16, subject: &str, token: &str) -> String {
    let mut c = Smtp::connect(port);
    c.hello();
    let msg = format!("Subject: {subject}\r\nMessage-ID: <{token}@org.test>\r\n\r\n{token}\r\n");
    c.send_message("a@org.test", &["b@partner.test"], msg.as_bytes())
}

#[test]
fn upstream_sessions_are_reused_with_rset_and_dropped_after_a_refusal_at_data() {
    let receiver = postfix_receiver_of("reuse");
    let sluis = Sluis::start(receiver.port, DELIVER_ALL);
    // Sessions that got as far as a command (the harness's start-up probe does not).
    let sessions = |r: &PostfixReceiver| {
        let log = r.maillog();
        let count = |what: &str| log.lines().filter(|l| l.contains(what)).count();
        count(": connect from") - count("lost connection after CONNECT")
    };
    for n in 0..3 {
        let token = format!("reuse-{n}");
        assert!(one_message(sluis.port, "hello", &token).starts_with("250"));
        assert_eq!(receiver.wait_delivered(&token, 1, WAIT).len(), 1);
    }
    // Three transactions from three client sessions, one upstream session.
    assert_eq!(sessions(&receiver), 1, "{}", receiver.maillog());
    // Refused at the end of DATA: the reply is passed on, and that session is not used again.
    let r = one_message(sluis.port, "refuse-at-data", "reuse-refused");
    assert!(r.starts_with("550"), "{r}");
    assert!(one_message(sluis.port, "hello", "reuse-after").starts_with("250"));
    assert_eq!(receiver.wait_delivered("reuse-after", 1, WAIT).len(), 1);
    assert_eq!(sessions(&receiver), 2, "{}", receiver.maillog());
    // The first session: four transactions with RSET between them, ended after the refusal.
    let first = wait_for(WAIT, || {
        receiver
            .maillog()
            .lines()
            .find(|l| l.contains("disconnect from") && l.contains("mail="))
            .map(String::from)
    })
    .expect("the refused session is closed");
    assert!(
        first.contains("mail=4") && first.contains("rset=3") && first.contains("data=3/4"),
        "{first}"
    );
}

#[test]
fn a_session_the_upstream_closed_while_idle_is_replaced_without_a_failure() {
    let mut sink = Sink::start(&[]);
    let port = sink.port;
    let sluis = Sluis::start(port, DELIVER_ALL);
    assert!(one_message(sluis.port, "hello", "idle-first").starts_with("250"));
    assert_eq!(sink.wait_token("idle-first", 1, WAIT).len(), 1);
    // The upstream restarts: the session Sluis keeps for reuse is dead.
    sink.stop();
    let sink = Sink::start_on(port, &[]);
    let r = one_message(sluis.port, "hello", "idle-second");
    assert!(r.starts_with("250"), "{r}");
    assert_eq!(sink.wait_token("idle-second", 1, WAIT).len(), 1);
}
