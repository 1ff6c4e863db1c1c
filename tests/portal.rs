//! The secure pickup portal (issue 17), end to end: a real Postfix submits to Sluis, a real
//! Postfix receives what Sluis sends through its default lane (notifications, the sender's
//! notices, replies), and an HTTPS client with a cookie jar walks the recipient's pages on the
//! portal's own listener. SMS codes come from the file outbox, or from a local HTTP provider.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use common::portal::*;
use common::*;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);
/// What a doctor writes: a BSN, a date of birth, a name.
const BSN: &str = "123456782";
const NUMBER: &str = "+31612345678";

struct Portal {
    sluis: Sluis,
    postfix: PostfixClient,
    receiver: PostfixReceiver,
    pki: Pki,
    port: u16,
    outbox: std::path::PathBuf,
    _keep: tempfile::TempDir,
}

/// A gateway with a portal; `extra` goes into its [portal] section, `sms` is the SMS section
/// (the file outbox when empty).
fn portal_with(role: &str, extra: &str, sms: &str) -> Portal {
    let keep = scratch("portal");
    let pki = pki_for(keep.path(), &["portal.test"]);
    let receiver = postfix_receiver_of(role);
    let port = free_port();
    let outbox = keep.path().join("sms.jsonl");
    let directory = keep.path().join("directory.csv");
    std::fs::write(
        &directory,
        format!("address,phone\npat@patients.test,{NUMBER}\n"),
    )
    .unwrap();
    let sms = if sms.is_empty() {
        format!(
            "[portal.sms]\nkind = \"file\"\npath = \"{}\"\n",
            outbox.display()
        )
    } else {
        sms.to_string()
    };
    let cfg = format!(
        "[recipients]\npersonal_domains = [\"patients.test\"]\n\n\
         [portal]\nlisten = \"127.0.0.1:{port}\"\nbase_url = \"https://portal.test:{port}\"\n\
         cert_file = \"{}\"\nkey_file = \"{}\"\nfrom = \"beveiligd@org.test\"\n\
         organisation = \"Ziekenhuis Oost\"\ndirectory_file = \"{}\"\nmax_reply_bytes = 1000000\n\
         {extra}\n{sms}",
        pki.cert.display(),
        pki.key.display(),
        directory.display(),
    );
    let sluis = Sluis::start(receiver.port, &cfg);
    let up = wait_for(WAIT, || {
        sluis.log().contains("pickup portal ready").then_some(())
    });
    assert!(up.is_some(), "{}", sluis.log());
    let postfix = postfix_with_relayhost(sluis.listen);
    Portal {
        sluis,
        postfix,
        receiver,
        pki,
        port,
        outbox,
        _keep: keep,
    }
}

fn portal(role: &str) -> Portal {
    portal_with(role, "", "")
}

/// The attachment: bytes no text conversion would leave alone.
fn attachment_bytes() -> Vec<u8> {
    let mut b = b"%PDF-1.4\n% lab results\n".to_vec();
    b.extend((0u16..600).map(|i| (i * 7 % 256) as u8));
    b
}

/// A message from Dr. Jansen with a BSN in the text and a binary attachment.
fn letter(token: &str, to: &str, extra_headers: &str) -> Vec<u8> {
    let b64 = data_encoding::BASE64_MIME.encode(&attachment_bytes());
    format!(
        "From: Dr. A. Jansen <jansen@org.test>\r\nTo: <{to}>\r\n\
         Subject: Uitslag J. de Vries\r\nMessage-ID: <{token}@org.test>\r\n{extra_headers}\
         MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n\
         --b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
         Beste heer De Vries,\r\n\r\nPatient: J. de Vries, BSN: {BSN}, geboren 12-03-1961.\r\n\
         Uw uitslag is goed. Kenmerk {token}.\r\n\r\n\
         --b1\r\nContent-Type: application/pdf; name=\"uitslag-devries.pdf\"\r\n\
         Content-Disposition: attachment; filename=\"uitslag-devries.pdf\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{b64}\r\n--b1--\r\n"
    )
    .into_bytes()
}

impl Portal {
    /// Submits through the client Postfix; the notification the recipient gets.
    fn send(&self, token: &str, to: &str, extra_headers: &str) -> String {
        let file = self._keep.path().join(format!("{token}.eml"));
        std::fs::write(&file, letter(token, to, extra_headers)).unwrap();
        self.postfix.submit("jansen@org.test", to, &file);
        self.notification(to, 1)
    }

    /// The `n`th notification for `to`.
    fn notification(&self, to: &str, n: usize) -> String {
        let got = wait_for(WAIT, || {
            let m: Vec<String> = self
                .receiver
                .delivered_with("Beveiligd bericht van")
                .into_iter()
                .filter(|m| m.contains(&format!("To: <{to}>")))
                .collect();
            (m.len() >= n).then_some(m)
        });
        let got = got.unwrap_or_else(|| {
            panic!(
                "no notification for {to}\nsluis:\n{}\nclient:\n{}",
                self.sluis.log(),
                self.postfix.maillog()
            )
        });
        got[n - 1].clone()
    }

    fn browser(&self) -> Browser {
        Browser::new(
            std::net::SocketAddr::from(([127, 0, 0, 1], self.port)),
            "portal.test",
            &self.pki.ca,
        )
    }

    fn audit(&self) -> Vec<Value> {
        std::fs::read_to_string(self.sluis.dir.path().join("spool/audit/audit.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The portal events of the audit log: (action, recipient).
    fn events(&self) -> Vec<(String, String)> {
        self.audit()
            .iter()
            .filter(|r| r["event"] == "portal")
            .map(|r| {
                (
                    r["action"].as_str().unwrap().to_string(),
                    r["recipient"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }

    fn sms(&self) -> Vec<(String, String)> {
        sms_outbox(&self.outbox)
    }

    fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(SLUIS)
            .args(args)
            .arg("--config")
            .arg(&self.sluis.config)
            .output()
            .unwrap()
    }
}

/// Every file under `dir`, read as bytes.
fn files_under(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(b) = std::fs::read(&p) {
                out.push((p, b));
            }
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn a_patient_reads_sealed_mail_after_an_sms_code_and_nothing_leaks() {
    let p = portal("portal-main");
    let note = p.send("pt-main", "pat@patients.test", "");
    // The notification: who, when, until when, a reference, the address to type, one link;
    // never the subject, the text, an attachment's name or an identifier.
    for absent in [
        BSN,
        "Uitslag",
        "de Vries",
        "Vries",
        "uitslag-devries",
        "12-03-1961",
        "pt-main",
    ] {
        assert!(
            !note.contains(absent),
            "{absent} in the notification:\n{note}"
        );
    }
    for present in [
        "Dr. A. Jansen",
        "Ziekenhuis Oost",
        "https://portal.test:",
        "Referentie",
        "Reference",
        "…78",
    ] {
        assert!(note.contains(present), "{present} missing:\n{note}");
    }
    assert!(!note.contains("<form") && !note.to_ascii_lowercase().contains("text/html"));
    let links = links_in(&note, 'r');
    assert_eq!(
        links.len(),
        2,
        "one link, in Dutch and in English: {links:?}"
    );
    assert_eq!(links[0], links[1]);
    let link = links[0].clone();
    let id = link.split('/').nth(2).unwrap().to_string();

    // The sender hears that it went via the portal.
    let sent = p.receiver.wait_delivered(&format!("{id}.sent."), 1, WAIT);
    assert_eq!(sent.len(), 1);
    assert!(sent[0].contains("To: <jansen@org.test>") && sent[0].contains("<pat@patients.test>"));

    // The store holds nothing readable: not the BSN, the name, the subject, the attachment.
    let spool = p.sluis.dir.path().join("spool");
    let secret = link.rsplit('/').next().unwrap();
    for (path, bytes) in files_under(&spool) {
        let audit = path.to_string_lossy().contains("/audit/");
        for needle in [
            BSN.as_bytes(),
            b"de Vries",
            b"Uitslag",
            b"lab results",
            secret.as_bytes(),
            NUMBER.as_bytes(),
        ] {
            // The audit log may name the recipient's address, never content.
            assert!(
                !contains(&bytes, needle),
                "{} holds {:?}",
                path.display(),
                String::from_utf8_lossy(needle)
            );
        }
        let _ = audit;
    }

    // A link scanner fetching the link twice changes nothing: no SMS, no event.
    let mut scanner = p.browser();
    for _ in 0..2 {
        let page = scanner.get(&link);
        assert_eq!(page.status, 200);
        assert!(page.text().contains("…78"));
        assert!(!page.text().contains(BSN));
    }
    assert!(p.sms().is_empty(), "a GET sent a code");
    assert!(!p.events().iter().any(|(a, _)| a == "opened"));

    // Without the CSRF token a POST is refused.
    let mut b = p.browser();
    let landing = b.get(&link);
    let refused = b.post(&link, &[("csrf", "forged")]);
    assert_eq!(refused.status, 403);
    assert!(p.sms().is_empty());

    // The headers of every page.
    for (name, want) in [
        ("content-security-policy", "default-src 'none'"),
        ("content-security-policy", "frame-ancestors 'none'"),
        ("strict-transport-security", "max-age="),
        ("referrer-policy", "no-referrer"),
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        ("cache-control", "no-store"),
    ] {
        assert!(
            landing.header(name).contains(want),
            "{name}: {:?}",
            landing.header(name)
        );
    }
    let csrf_cookie = landing.header("set-cookie");
    assert!(csrf_cookie.contains("__Host-sluis-csrf="), "{csrf_cookie}");
    for flag in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(csrf_cookie.contains(flag), "{flag}: {csrf_cookie}");
    }

    // The real visit: a wrong code first, then the right one.
    let begun = b.post(&link, &[("csrf", &landing.csrf())]);
    assert_eq!(begun.status, 303);
    assert!(begun.header("set-cookie").contains("__Host-sluis-visit="));
    let code_page = b.follow(&begun);
    assert!(code_page.text().contains("autocomplete=\"one-time-code\""));
    let sms = wait_for(WAIT, || p.sms().first().cloned()).expect("an SMS");
    assert_eq!(sms.0, NUMBER);
    let code = code_in(&sms.1);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let tried = b.post("/code", &[("csrf", &code_page.csrf()), ("code", wrong)]);
    assert!(
        tried.text().contains("Pogingen over: 4"),
        "{}",
        tried.text()
    );
    let before_code = b.get("/message");
    assert_eq!(before_code.status, 303, "the message before the code");
    let opened = b.post("/code", &[("csrf", &code_page.csrf()), ("code", &code)]);
    assert_eq!(opened.header("location"), "/message");
    let page = b.follow(&opened);
    assert_eq!(page.status, 200);
    let text = page.text();
    assert!(
        text.contains(BSN) && text.contains("Uitslag J. de Vries"),
        "{text}"
    );
    assert!(text.contains("uitslag-devries.pdf"));
    assert!(text.contains("lang=\"nl\""));
    let en = b.get("/message?lang=en");
    assert!(en.text().contains("lang=\"en\"") && en.text().contains("Your message"));

    // The attachment and the original, byte for byte.
    let file = b.get("/message/attachment/0");
    assert_eq!(file.status, 200);
    assert_eq!(file.body, attachment_bytes());
    assert!(
        file.header("content-disposition")
            .starts_with("attachment;")
    );
    assert_eq!(file.header("content-type"), "application/octet-stream");
    let eml = b.get("/message/original.eml");
    let sent_bytes = letter("pt-main", "pat@patients.test", "");
    // What Postfix handed on: its own headers (Received, Date) with the message as written
    // (swaks ends it with one more line end), every byte of the body unchanged.
    let split = sent_bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap();
    let mut body = sent_bytes[split..].to_vec();
    body.extend_from_slice(b"\r\n");
    assert!(eml.body.ends_with(&body));
    for line in String::from_utf8_lossy(&sent_bytes[..split]).split("\r\n") {
        assert!(
            contains(&eml.body, format!("{line}\r\n").as_bytes()),
            "{line}"
        );
    }
    assert!(eml.body.starts_with(b"Received: from "), "{}", eml.text());
    assert!(contains(&eml.body, b"Subject: Uitslag J. de Vries\r\n"));

    // A reply: to the sender only, with its attachment, inspected and audited.
    let msg = b.get("/message");
    let reply_file: &[u8] = b"reply attachment bytes \x00\x01\x02 end";
    let replied = b.post_multipart(
        "/message/reply",
        &[
            ("csrf", &msg.csrf()),
            ("text", "Dank u, ik kom dinsdag. pt-reply-marker"),
        ],
        &[("files", "vraag.bin", reply_file)],
    );
    assert_eq!(
        replied.header("location"),
        "/message?s=replied",
        "{replied:?}"
    );
    let got = p.receiver.wait_delivered("pt-reply-marker", 1, WAIT);
    assert_eq!(got.len(), 1);
    assert!(
        got[0].contains("To: jansen@org.test") || got[0].contains("To: <jansen@org.test>"),
        "{}",
        got[0]
    );
    assert!(
        got[0].contains("Subject: Re: Uitslag J. de Vries"),
        "{}",
        got[0]
    );
    assert!(got[0].contains("vraag.bin"));
    assert!(
        got[0].contains(&data_encoding::BASE64.encode(reply_file)[..20]),
        "{}",
        got[0]
    );
    assert!(
        p.events()
            .iter()
            .any(|(a, r)| a == "replied" && r == "pat@patients.test")
    );
    // Over the cap: refused with the reason; without the token: refused.
    let big = vec![b'x'; 2 * 1024 * 1024];
    let refused = b.post_multipart(
        "/message/reply",
        &[("csrf", &msg.csrf()), ("text", "x")],
        &[("files", "big.bin", &big)],
    );
    assert_eq!(refused.header("location"), "/message?s=reply-too-big");
    let forged = b.post_multipart("/message/reply", &[("csrf", "forged"), ("text", "x")], &[]);
    assert_eq!(forged.status, 403);

    // Another browser has no way in without a code of its own.
    let mut other = p.browser();
    assert_eq!(other.get("/message").status, 401);

    // Every step is audited, the lower ones by method.
    let events = p.events();
    for action in [
        "notified",
        "opened",
        "code-sent",
        "code-failed",
        "authenticated",
        "viewed",
        "downloaded",
    ] {
        assert!(
            events
                .iter()
                .any(|(a, r)| a == action && r == "pat@patients.test"),
            "{action}: {events:?}"
        );
    }
    let decision = p
        .audit()
        .into_iter()
        .find(|r| r["event"] == "decision" && r["recipient"] == "pat@patients.test")
        .unwrap();
    assert_eq!(decision["decision"], "portal");
    assert_eq!(decision["portal_id"], id.as_str());
    let downloads: Vec<Value> = p
        .audit()
        .into_iter()
        .filter(|r| r["action"] == "downloaded")
        .collect();
    assert!(
        downloads
            .iter()
            .all(|d| !d["detail"].as_str().unwrap().contains("uitslag"))
    );

    // Logging out ends the visit.
    let msg = b.get("/message");
    let out = b.post("/logout", &[("csrf", &msg.csrf())]);
    assert_eq!(out.status, 200);
    assert_eq!(b.get("/message").status, 401);

    // The administrator sees metadata, revokes, and the link opens nothing any more.
    let listed = p.cli(&["portal", "list"]);
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(listed.contains(&id), "{listed}");
    assert!(listed.contains("pat@patients.test (sms, read)"), "{listed}");
    assert!(!listed.contains(BSN));
    let extended = p.cli(&[
        "portal",
        "extend",
        &id,
        "--by-duration",
        "10d",
        "--by",
        "admin",
    ]);
    assert_success(&extended, "portal extend");
    assert!(String::from_utf8_lossy(&extended.stdout).contains("now expires at"));
    assert!(p.events().iter().any(|(a, _)| a == "extended"));
    let shown = p.cli(&["portal", "show", &id]);
    let shown = String::from_utf8_lossy(&shown.stdout).into_owned();
    assert!(
        shown.contains("recipient:  pat@patients.test by sms, notified true, read true"),
        "{shown}"
    );
    assert!(!shown.contains(BSN) && !shown.contains("Uitslag"));
    let revoked = p.cli(&[
        "portal",
        "revoke",
        &id,
        "--by",
        "admin",
        "--reason",
        "wrong patient",
    ]);
    assert_success(&revoked, "portal revoke");
    assert_eq!(p.browser().get(&link).status, 404);
    assert!(p.events().iter().any(|(a, _)| a == "revoked"));
    assert!(files_under(&spool.join("quarantine/portal")).is_empty());
}

#[test]
fn wrong_codes_run_out_three_codes_an_hour_and_ten_failures_lock_out() {
    let p = portal("portal-codes");
    let note = p.send("pt-codes", "pat@patients.test", "");
    let link = links_in(&note, 'r').remove(0);
    let id = link.split('/').nth(2).unwrap().to_string();
    let mut b = p.browser();
    let landing = b.get(&link);
    let csrf = landing.csrf();
    let first = b.post(&link, &[("csrf", &csrf)]);
    assert_eq!(first.header("location"), "/code?s=sent");
    let sms = wait_for(WAIT, || p.sms().first().cloned()).unwrap();
    let right = code_in(&sms.1);
    let wrong = if right.starts_with('9') {
        "1".repeat(right.len())
    } else {
        "9".repeat(right.len())
    };
    // Five tries per code: the fifth wrong one spends it, and then even the right one is
    // refused until a new code is asked for.
    for left in (0..5).rev() {
        let t = b.post("/code", &[("csrf", &csrf), ("code", &wrong)]);
        assert!(
            t.text().contains(&format!("Pogingen over: {left}")),
            "{left}: {}",
            t.text()
        );
    }
    let spent = b.post("/code", &[("csrf", &csrf), ("code", &right)]);
    assert_eq!(spent.header("location"), "/code?s=expired");
    // A second and a third code; a fourth within the hour is refused.
    for n in 2..=3 {
        let r = b.post("/code/resend", &[("csrf", &csrf)]);
        assert_eq!(r.header("location"), "/code?s=sent", "code {n}");
    }
    let r = b.post("/code/resend", &[("csrf", &csrf)]);
    assert!(r.header("location").starts_with("/code?s=toomany"), "{r:?}");
    assert!(b.follow(&r).text().contains("drie codes"));
    assert_eq!(p.sms().len(), 3);
    // Failures count across codes: four more wrong tries of the third code, then the tenth
    // failure locks the recipient out; the sender is told, and it is audited.
    for _ in 0..4 {
        let t = b.post("/code", &[("csrf", &csrf), ("code", &wrong)]);
        assert_eq!(t.status, 200);
    }
    let locked = b.post("/code", &[("csrf", &csrf), ("code", &wrong)]);
    assert_eq!(locked.status, 403);
    assert!(locked.text().contains("geblokkeerd"));
    // Locked: even the right code of the third SMS opens nothing now, in a new visit too.
    let third = code_in(&p.sms()[2].1);
    let t = b.post("/code", &[("csrf", &csrf), ("code", &third)]);
    assert_eq!(t.status, 403);
    let mut again = p.browser();
    let l = again.get(&link);
    let r = again.post(&link, &[("csrf", &l.csrf())]);
    assert_eq!(r.header("location"), "/code?s=locked");
    let told = p.receiver.wait_delivered(&format!("{id}.locked."), 1, WAIT);
    assert_eq!(told.len(), 1);
    assert!(told[0].contains("To: <jansen@org.test>"));
    let events = p.events();
    assert_eq!(
        events.iter().filter(|(a, _)| a == "code-failed").count(),
        10
    );
    assert_eq!(events.iter().filter(|(a, _)| a == "locked").count(), 1);
    assert!(!events.iter().any(|(a, _)| a == "authenticated"));

    // The SMS cannot be sent (the outbox is not writable): the page says so, nothing opens,
    // and the failure is audited for the security team.
    std::fs::remove_file(&p.outbox).unwrap();
    std::fs::create_dir(&p.outbox).unwrap();
    let note = p.notification_after("pat@patients.test", "pt-smsfail");
    let link = links_in(&note, 'r').remove(0);
    let mut b = p.browser();
    let landing = b.get(&link);
    let r = b.post(&link, &[("csrf", &landing.csrf())]);
    assert_eq!(r.header("location"), "/code?s=failed");
    assert!(b.follow(&r).text().contains("kon nu niet worden verstuurd"));
    assert!(p.events().iter().any(|(a, _)| a == "sms-failed"));
}

#[test]
fn a_sender_completes_a_recipient_without_a_number_and_the_header_number_is_used_then_stripped() {
    let mut p = portal("portal-complete");
    // Nobody knows this recipient's number: the item waits and the sender gets a link.
    let file = p._keep.path().join("unknown.eml");
    std::fs::write(&file, letter("pt-unknown", "nieuw@patients.test", "")).unwrap();
    p.postfix
        .submit("jansen@org.test", "nieuw@patients.test", &file);
    let sent = p
        .receiver
        .wait_delivered("<nieuw@patients.test>: wacht op u", 1, WAIT);
    assert_eq!(sent.len(), 1, "{}", p.sluis.log());
    assert!(
        p.receiver
            .delivered_with("Beveiligd bericht van")
            .is_empty(),
        "notified too early"
    );
    let completion = links_in(&sent[0], 'c').remove(0);
    let mut sender = p.browser();
    let page = sender.get(&completion);
    assert_eq!(page.status, 200);
    assert!(page.text().contains("nieuw@patients.test"));
    // An access code that is too short is refused with the reason.
    let r = sender.post(
        &completion,
        &[
            ("csrf", &page.csrf()),
            ("recipient", "nieuw@patients.test"),
            ("code", "12"),
        ],
    );
    assert!(
        sender
            .follow(&r)
            .text()
            .contains("toegangscode van 6 tot 32")
    );
    let r = sender.post(
        &completion,
        &[
            ("csrf", &page.csrf()),
            ("recipient", "nieuw@patients.test"),
            ("code", "zh-4417 ab"),
        ],
    );
    assert_eq!(r.status, 303);
    let note = p.notification("nieuw@patients.test", 1);
    assert!(
        note.contains("toegangscode") && note.contains("access code"),
        "{note}"
    );
    // The completion link is used up.
    assert_eq!(p.browser().get(&completion).status, 404);

    // The recipient types the code the sender read out (in another spelling).
    let link = links_in(&note, 'r').remove(0);
    let mut b = p.browser();
    let landing = b.get(&link);
    assert!(landing.text().contains("toegangscode"));
    let begun = b.post(&link, &[("csrf", &landing.csrf())]);
    assert_eq!(begun.header("location"), "/code?s=access");
    let form = b.follow(&begun);
    let open = b.post("/code", &[("csrf", &form.csrf()), ("code", "ZH4417AB")]);
    assert_eq!(open.header("location"), "/message");
    assert!(b.follow(&open).text().contains(BSN));
    assert!(p.sms().is_empty(), "an access code needs no SMS");
    let audit = p.audit();
    let completed = audit.iter().find(|r| r["action"] == "completed").unwrap();
    assert_eq!(completed["method"], "access-code");
    assert_eq!(completed["by"], "jansen@org.test");

    // A number set by the sender's system in the message itself: used, and never passed on.
    let header = "Sluis-Recipient-Phone: kop@patients.test +31 6 99887766\r\n";
    let note = p.send("pt-header", "kop@patients.test", header);
    let link = links_in(&note, 'r').remove(0);
    let mut b = p.browser();
    let landing = b.get(&link);
    assert!(landing.text().contains("…66"), "{}", landing.text());
    b.post(&link, &[("csrf", &landing.csrf())]);
    let sms = wait_for(WAIT, || p.sms().first().cloned()).unwrap();
    assert_eq!(sms.0, "+31699887766");
    let form = b.get("/code");
    b.post(
        "/code",
        &[("csrf", &form.csrf()), ("code", &code_in(&sms.1))],
    );
    let eml = b.get("/message/original.eml");
    assert_eq!(eml.status, 200);
    assert!(
        !eml.text()
            .to_ascii_lowercase()
            .contains("sluis-recipient-phone")
    );
    assert!(!eml.text().contains("99887766"));
    // Plain mail with the header, delivered normally, leaves without it.
    let plain = p._keep.path().join("plain.eml");
    std::fs::write(
        &plain,
        format!("From: <jansen@org.test>\r\nTo: <x@other.test>\r\nSubject: agenda pt-plain\r\n{header}\r\nTot morgen.\r\n"),
    )
    .unwrap();
    p.postfix.submit("jansen@org.test", "x@other.test", &plain);
    let out = p.receiver.wait_delivered("pt-plain", 1, WAIT);
    assert_eq!(out.len(), 1);
    assert!(
        !out[0]
            .to_ascii_lowercase()
            .contains("sluis-recipient-phone"),
        "{}",
        out[0]
    );

    // An item the sender never completes expires when its completion time is over: shredded
    // at the next expiry run (every start, then hourly), the sender told, audited.
    let late = p._keep.path().join("late.eml");
    std::fs::write(&late, letter("pt-late", "laat@patients.test", "")).unwrap();
    p.postfix
        .submit("jansen@org.test", "laat@patients.test", &late);
    let sent = p
        .receiver
        .wait_delivered("<laat@patients.test>: wacht op u", 1, WAIT);
    let id = links_in(&sent[0], 'c')[0]
        .split('/')
        .nth(2)
        .unwrap()
        .to_string();
    let json = p
        .sluis
        .dir
        .path()
        .join(format!("spool/quarantine/portal/{id}.json"));
    let mut v: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    v["meta"]["completion_expires"] = Value::from(1u64);
    std::fs::write(&json, serde_json::to_vec(&v).unwrap()).unwrap();
    p.sluis.signal("TERM");
    p.sluis.wait_exit(WAIT).expect("sluis stops on TERM");
    p.sluis.spawn();
    let told = p
        .receiver
        .wait_delivered(&format!("{id}.expired."), 1, WAIT);
    assert_eq!(told.len(), 1, "{}", p.sluis.log());
    assert!(told[0].contains("<laat@patients.test>") && !told[0].contains(BSN));
    assert!(!json.exists());
    assert!(
        p.audit()
            .iter()
            .any(|r| r["action"] == "expired" && r["portal_id"] == id.as_str())
    );
}

/// A local SMS provider: answers 503 to the first `fail` requests, then 200; records each
/// request's head and body.
fn sms_provider(fail: usize) -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for (n, s) in l.incoming().flatten().enumerate() {
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut head = String::new();
            let mut len = 0;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                head.push_str(&line);
            }
            let mut body = vec![0; len];
            let _ = r.read_exact(&mut body);
            record
                .lock()
                .unwrap()
                .push(format!("{head}\r\n{}", String::from_utf8_lossy(&body)));
            let status = if n < fail {
                "503 Service Unavailable"
            } else {
                "200 OK"
            };
            let mut s = s;
            let _ = write!(
                s,
                "HTTP/1.1 {status}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
            );
        }
    });
    (port, seen)
}

#[test]
fn an_http_provider_gets_the_code_after_a_retry_and_sealed_items_survive_kill_and_restart() {
    let (port, seen) = sms_provider(1);
    let keep = scratch("sms-token");
    let token = keep.path().join("token");
    std::fs::write(&token, "provider-token-42\n").unwrap();
    let sms = format!(
        "[portal.sms]\nkind = \"http\"\nurl = \"http://127.0.0.1:{port}/v1/sms\"\ntoken_file = \"{}\"\n",
        token.display()
    );
    let mut p = portal_with("portal-http", "read_notice = true\n", &sms);
    let note = p.send("pt-http", "pat@patients.test", "");
    let link = links_in(&note, 'r').remove(0);
    let id = link.split('/').nth(2).unwrap().to_string();

    // Killed between sealing and reading, then restarted: nothing is lost.
    p.sluis.kill9();
    p.sluis.spawn();
    wait_for(WAIT, || {
        (p.sluis.log().matches("pickup portal ready").count() >= 2).then_some(())
    })
    .expect("the portal back");
    // A second server on the same files store would keep visits and code tries of its own:
    // refused at start, with the reason.
    let second = p.cli(&["serve"]);
    assert!(!second.status.success());
    let said = String::from_utf8_lossy(&second.stderr);
    assert!(
        said.contains("kept by another running Sluis process"),
        "{said}"
    );

    let mut b = p.browser();
    let landing = b.get(&link);
    assert_eq!(landing.status, 200, "{}", landing.text());
    let begun = b.post(&link, &[("csrf", &landing.csrf())]);
    assert_eq!(
        begun.header("location"),
        "/code?s=sent",
        "the retry after the 503 went through"
    );
    let requests = seen.lock().unwrap().clone();
    assert_eq!(requests.len(), 2, "{requests:?}");
    for r in &requests {
        assert!(r.starts_with("POST /v1/sms HTTP/1.1"), "{r}");
        assert!(
            r.contains("authorization: Bearer provider-token-42")
                || r.contains("Authorization: Bearer provider-token-42"),
            "{r}"
        );
    }
    let body: Value = serde_json::from_str(requests[1].split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["to"], NUMBER);
    let code = code_in(body["text"].as_str().unwrap());

    // A clean restart between the code and its use: the visit (in the store) survives too.
    p.sluis.signal("TERM");
    p.sluis.wait_exit(WAIT).expect("sluis stops on TERM");
    p.sluis.spawn();
    wait_for(WAIT, || {
        (p.sluis.log().matches("pickup portal ready").count() >= 3).then_some(())
    })
    .expect("the portal back");
    let form = b.get("/code");
    assert_eq!(form.status, 200, "{}", form.text());
    let open = b.post("/code", &[("csrf", &form.csrf()), ("code", &code)]);
    assert_eq!(open.header("location"), "/message");
    assert!(b.follow(&open).text().contains(BSN));
    // Pages within the renewal interval read the visit without writing it again.
    let journal = p.sluis.dir.path().join("spool/quarantine/sessions/journal");
    let size = std::fs::metadata(&journal).unwrap().len();
    for _ in 0..3 {
        assert_eq!(b.get("/message").status, 200);
    }
    assert_eq!(std::fs::metadata(&journal).unwrap().len(), size);
    // The sender asked for a read notice.
    let read = p.receiver.wait_delivered(&format!("{id}.read."), 1, WAIT);
    assert_eq!(read.len(), 1);
    assert!(!read[0].contains(BSN));

    // A session of one item never opens another: the second item's link begins a visit of
    // its own, which needs its own code.
    let note2 = p.notification_after("pat@patients.test", "pt-http2");
    let link2 = links_in(&note2, 'r').remove(0);
    assert_ne!(link, link2);
    let page = b.get("/message");
    assert!(
        page.text().contains("Kenmerk pt-http."),
        "the first item's message"
    );
    let l2 = b.get(&link2);
    b.post(&link2, &[("csrf", &l2.csrf())]);
    assert_eq!(
        b.get("/message").status,
        303,
        "the second item needs its code first"
    );
    assert_eq!(b.get("/message").header("location"), "/code");

    // An item past its expiry opens nothing at once, and the next start shreds it, audited.
    let json = p
        .sluis
        .dir
        .path()
        .join(format!("spool/quarantine/portal/{id}.json"));
    let mut v: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    v["expires"] = Value::from(1u64);
    std::fs::write(&json, serde_json::to_vec(&v).unwrap()).unwrap();
    assert_eq!(p.browser().get(&link).status, 404);
    p.sluis.signal("TERM");
    p.sluis.wait_exit(WAIT).expect("sluis stops on TERM");
    p.sluis.spawn();
    let gone = wait_for(WAIT, || (!json.exists()).then_some(()));
    assert!(gone.is_some(), "expired item still there");
    // The record follows the removal (a crash in between would leave it unrecorded, never
    // the item readable).
    let recorded = wait_for(WAIT, || {
        p.events().iter().any(|(a, _)| a == "expired").then_some(())
    });
    assert!(recorded.is_some(), "no expired record");
}

impl Portal {
    /// Sends another letter to `to`; its notification (the Maildir has no order: the one
    /// that was not there before).
    fn notification_after(&self, to: &str, token: &str) -> String {
        let mine =
            |m: &String| m.contains("Beveiligd bericht van") && m.contains(&format!("To: <{to}>"));
        let before: Vec<String> = self
            .receiver
            .delivered_with(to)
            .into_iter()
            .filter(mine)
            .collect();
        let file = self._keep.path().join(format!("{token}.eml"));
        std::fs::write(&file, letter(token, to, "")).unwrap();
        self.postfix.submit("jansen@org.test", to, &file);
        wait_for(WAIT, || {
            self.receiver
                .delivered_with(to)
                .into_iter()
                .filter(mine)
                .find(|m| !before.contains(m))
        })
        .expect("a second notification")
    }
}

/// Runs tests/browser/portal.mjs in Debian's Chromium; what it saw.
fn chromium(p: &Portal, link: &str, steps: &str, shots: &std::path::Path) -> Value {
    run_browser_script(
        "portal.mjs",
        &[
            ("PORTAL", &format!("https://portal.test:{}", p.port)),
            ("LINK", link),
            ("OUTBOX", &p.outbox.display().to_string()),
            ("SHOTS", &shots.display().to_string()),
            ("STEPS", steps),
        ],
    )
}

#[test]
fn a_patient_walks_the_portal_in_chromium_and_every_page_passes_axe() {
    let p = portal("portal-browser");
    let note = p.send("pt-browser", "pat@patients.test", "");
    let link = links_in(&note, 'r').remove(0);
    let shots = scratch("shots");
    let seen = chromium(&p, &link, "full", shots.path());
    // Nothing was sent by opening the link; the token left the address bar with the POST.
    assert_eq!(seen["sms_after_get"], 0, "{seen}");
    assert_eq!(seen["url_after_post"], "/code?s=sent");
    let text = seen["message_text"].as_str().unwrap();
    assert!(
        text.contains(BSN) && text.contains("uitslag-devries.pdf"),
        "{text}"
    );
    let want = ring_sha256(&attachment_bytes());
    assert_eq!(
        seen["attachment_sha256"],
        want.as_str(),
        "the download is the attachment, byte for byte"
    );
    assert_eq!(seen["attachment_name"], "uitslag-devries.pdf");
    assert!(
        seen["reply_status"]
            .as_str()
            .unwrap()
            .contains("beveiligd verstuurd")
    );
    assert_eq!(seen["after_logout"], 401);
    let reply = p.receiver.wait_delivered("browser-reply-marker", 1, WAIT);
    assert_eq!(reply.len(), 1);
    assert!(reply[0].contains("foto.txt"));
    // No serious or critical accessibility violation on any page, no CSP report, no error.
    let bad: Vec<&Value> = seen["violations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
        .collect();
    assert!(bad.is_empty(), "{bad:#?}");
    assert_eq!(seen["pages"].as_object().unwrap().len(), 5, "{seen}");
    assert_eq!(seen["pages"]["message-en"]["lang"], "en");
    // The one error a browser may report is the 401 of the deliberate visit after logout.
    let console: Vec<&Value> = seen["console"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| !m.as_str().unwrap_or("").contains("status of 401"))
        .collect();
    assert!(console.is_empty(), "{console:?}");
    for c in seen["cookies"].as_array().unwrap() {
        assert_eq!(c["secure"], true, "{c}");
        assert_eq!(c["httpOnly"], true, "{c}");
        assert_eq!(c["sameSite"], "Strict", "{c}");
    }
    for shot in ["landing", "code", "message"] {
        let png = shots.path().join(format!("{shot}.png"));
        assert!(
            std::fs::metadata(&png)
                .map(|m| m.len() > 1000)
                .unwrap_or(false),
            "{shot}"
        );
    }

    // The sender's completion page in the browser, and its accessibility.
    let file = p._keep.path().join("browser-unknown.eml");
    std::fs::write(&file, letter("pt-browser2", "onbekend@patients.test", "")).unwrap();
    p.postfix
        .submit("jansen@org.test", "onbekend@patients.test", &file);
    let sent = p
        .receiver
        .wait_delivered("<onbekend@patients.test>: wacht op u", 1, WAIT);
    let completion = links_in(&sent[0], 'c').remove(0);
    let seen = chromium(&p, "", &format!("complete:{completion}"), shots.path());
    assert!(
        seen["completed"]
            .as_str()
            .unwrap_or("")
            .contains("ingelicht"),
        "{seen}"
    );
    assert!(
        seen["violations"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| !matches!(v["impact"].as_str(), Some("serious" | "critical"))),
        "{seen}"
    );
    assert!(!p.notification("onbekend@patients.test", 1).is_empty());
    if let Ok(dir) = std::env::var("SLUIS_SCREENSHOTS") {
        for e in std::fs::read_dir(shots.path()).unwrap().flatten() {
            std::fs::copy(e.path(), std::path::Path::new(&dir).join(e.file_name())).unwrap();
        }
    }
}

fn ring_sha256(bytes: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    data_encoding::HEXLOWER.encode(d.as_ref())
}

#[test]
fn an_email_code_only_where_allowed_and_audited_as_the_lower_level() {
    let p = portal_with(
        "portal-email",
        "allow_email_code = true\nshow_subject = true\n",
        "",
    );
    // Not in the directory, no header: with e-mail codes allowed the notification goes at once.
    let note = p.send("pt-email", "mail@patients.test", "");
    assert!(note.contains("naar dit e-mailadres") && note.contains("to this e-mail address"));
    // portal.show_subject: the subject is shown (only because this organisation chose so),
    // and still nothing of the body.
    assert!(
        note.contains("Onderwerp: Uitslag J. de Vries")
            && note.contains("Subject: Uitslag J. de Vries"),
        "{note}"
    );
    assert!(!note.contains(BSN));
    let link = links_in(&note, 'r').remove(0);
    let mut b = p.browser();
    let landing = b.get(&link);
    let r = b.post(&link, &[("csrf", &landing.csrf())]);
    assert_eq!(r.header("location"), "/code?s=sent");
    let mail = p.receiver.wait_delivered("Your code is", 1, WAIT);
    assert_eq!(mail.len(), 1);
    assert!(mail[0].contains("To: <mail@patients.test>") && !mail[0].contains(BSN));
    let code = code_in(mail[0].split("Uw code is").nth(1).unwrap());
    let form = b.get("/code");
    let open = b.post("/code", &[("csrf", &form.csrf()), ("code", &code)]);
    assert_eq!(open.header("location"), "/message");
    let audit = p.audit();
    let auth = audit
        .iter()
        .find(|r| r["action"] == "authenticated")
        .unwrap();
    assert_eq!(auth["method"], "email");
    assert!(auth["detail"].as_str().unwrap().contains("lower level"));
    assert!(p.sms().is_empty());
}

#[test]
fn config_check_shows_the_portal_in_the_profile_and_names_bad_portal_settings() {
    let dir = scratch("portal-config");
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let base = format!(
        "[server]\nspool_dir = \"{}\"\n\n[portal]\nbase_url = \"https://veilig.test\"\n\
         from = \"beveiligd@org.test\"\norganisation = \"Ziekenhuis\"\n",
        dir.path().join("spool").display()
    );
    let ok = config_check(&write("ok.toml", &base));
    assert_success(&ok, "config check");
    let text = String::from_utf8_lossy(&ok.stdout);
    for rule in ["confidential-to-personal", "confidential-unauthenticated"] {
        let at = text.find(&format!("name = \"{rule}\"")).unwrap();
        assert!(
            text[at..].starts_with(&format!("name = \"{rule}\"\naction = \"portal\"")),
            "{text}"
        );
    }
    // Without [portal] the profile stays as it was.
    let plain = config_check(&write("plain.toml", "[log]\nlevel = \"info\"\n"));
    assert!(!String::from_utf8_lossy(&plain.stdout).contains("action = \"portal\""));
    for (name, text, want) in [
        (
            "http.toml",
            format!("{base}base_url_typo = 1\n"),
            "unknown field `base_url_typo`",
        ),
        (
            "url.toml",
            base.replace("https://veilig.test", "http://veilig.test"),
            "portal.base_url: \"http://veilig.test\": must be the https:// address",
        ),
        (
            "digits.toml",
            format!("{base}code_digits = 4\n"),
            "portal.code_digits: 4: a code has 6 to 8 digits",
        ),
        (
            "rule.toml",
            "[[policy.rules]]\nname = \"p\"\naction = \"portal\"\n".to_string(),
            "policy.rules[0].action: \"portal\", but there is no [portal] section",
        ),
    ] {
        let out = config_check(&write(name, &text));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(want), "{name}: {err}");
        assert!(err.contains(name), "{name}: names the file: {err}");
    }
}
