//! Decisions per recipient, quarantine and review, the audit log (issue 6), end to end: a
//! DNSSEC-signed zone (knot) behind unbound, Postfix MX hosts on 127.0.3.x:25 (one matching
//! its TLSA record, one with a certificate nobody can verify), the Postfix lanes of
//! deploy/postfix/lanes-master.cf (dane-only, secure) behind the gateway, smtp-sink as its
//! default lane.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use common::dns::{RESOLVER, dns, tlsa_sha256};
use common::*;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);
const TOKEN: &str = "review-token-0123456789abcdef";
/// Patient data, as a doctor writes it: sensitive by inspection.
const BSN_TEXT: &str = "Patient: J. de Vries\r\nBSN: 123456782\r\nGeboortedatum: 12-03-1961\r\n";

struct World {
    lanes: PostfixClient,
    dane_port: u16,
    secure_port: u16,
}

/// The shared topology: DNS, the two MX hosts, the Postfix lanes.
fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let d = dns();
        // daneok.test: DANE-EE; webpki.test: STARTTLS whose certificate proves nothing here.
        for (zone, ip, dane) in [
            ("daneok.test", "127.0.3.11", true),
            ("webpki.test", "127.0.3.12", false),
        ] {
            let dir = scratch("mx").keep();
            let p = pki(&dir, &format!("mx.{zone}"));
            // A Postfix MX; it stops with the test binary (after_exit in its start).
            postfix_mx(ip, Some(&p));
            after_exit(&format!("rm -rf {}", dir.display()));
            if dane {
                d.add_records(
                    zone,
                    &[&format!(
                        "_25._tcp.mx TLSA 3 1 1 {}",
                        tlsa_sha256(&p.cert, 1)
                    )],
                );
            }
        }
        let ports = [free_port(), free_port(), free_port()];
        World {
            lanes: postfix_with_lanes(ports),
            dane_port: ports[1],
            secure_port: ports[2],
        }
    })
}

struct Gateway {
    sluis: Sluis,
    /// Holds the review token file.
    _tok: tempfile::TempDir,
    /// The default lane.
    sink: Sink,
    admin: u16,
}

fn gateway(extra: &str) -> Gateway {
    let w = world();
    let sink = Sink::start(&[]);
    let tok = scratch("tok");
    let token_file = tok.path().join("token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let cfg = format!(
        "[upstream.lanes.dane]\naddress = \"127.0.0.1:{}\"\nlevel = \"dane\"\n\n\
         [upstream.lanes.secure]\naddress = \"127.0.0.1:{}\"\nlevel = \"trusted\"\n\n\
         [dns]\nresolver = \"{RESOLVER}\"\ntrust_anchor_file = \"{}\"\ntimeout = \"2s\"\n\n\
         [review]\ntoken_file = \"{}\"\n\n{extra}",
        w.dane_port,
        w.secure_port,
        dns().anchor_path().display(),
        token_file.display()
    );
    let (sluis, admin) = Sluis::start_with_admin(sink.port, &cfg);
    Gateway {
        sluis,
        _tok: tok,
        sink,
        admin,
    }
}

/// One message from jansen@org.test, in a session of its own; the end-of-data reply.
fn send(g: &Gateway, rcpts: &[&str], token: &str, body: &str) -> String {
    let mut c = Smtp::connect(g.sluis.port);
    c.hello();
    c.send_message("jansen@org.test", rcpts, &message(token, body))
}

fn message(token: &str, body: &str) -> Vec<u8> {
    format!(
        "From: Dr. Jansen <jansen@org.test>\r\nTo: someone\r\nSubject: Uitslag\r\n\
         Message-ID: <{token}@org.test>\r\n\r\n{body}"
    )
    .into_bytes()
}

/// Whether the Postfix lanes handed `rcpt` to `transport` (sluis-dane-only, sluis-secure...).
fn lane_took(transport: &str, rcpt: &str) -> bool {
    let lanes = &world().lanes;
    wait_for(WAIT, || {
        lanes
            .maillog()
            .lines()
            .any(|l| {
                l.contains(&format!("/{transport}/smtp[")) && l.contains(&format!("to=<{rcpt}>"))
            })
            .then_some(())
    })
    .is_some()
}

fn sluis_cmd(g: &Gateway, args: &[&str]) -> std::process::Output {
    Command::new(SLUIS)
        .args(args)
        .arg("--config")
        .arg(&g.sluis.config)
        .output()
        .unwrap()
}

fn audit_records(g: &Gateway) -> Vec<Value> {
    let path = g.sluis.dir.path().join("spool/audit/audit.jsonl");
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn held_items(g: &Gateway) -> Vec<Value> {
    let out = sluis_cmd(g, &["quarantine", "list", "--format", "json"]);
    assert_success(&out, "quarantine list");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn sensitive_mail_to_a_dane_domain_leaves_through_the_dane_only_lane() {
    let g = gateway("");
    let r = send(&g, &["arts@daneok.test"], "p-dane", BSN_TEXT);
    assert!(r.starts_with("250"), "{r}\n{}", g.sluis.log());
    assert!(
        lane_took("sluis-dane-only", "arts@daneok.test"),
        "not through the dane-only lane:\n{}",
        world().lanes.maillog()
    );
    assert!(
        g.sink.with_token("p-dane@org.test").is_empty(),
        "also via the default lane"
    );

    // Mail without patient data takes the default lane, without a posture lookup.
    let r = send(&g, &["info@webpki.test"], "p-plain", "Hallo\r\n");
    assert!(r.starts_with("250"), "{r}");
    assert_eq!(g.sink.wait_token("p-plain@org.test", 1, WAIT).len(), 1);
    assert!(
        !g.sluis.log().contains("domain=webpki.test posture="),
        "looked up needlessly"
    );

    let records = audit_records(&g);
    let dane = records
        .iter()
        .find(|r| r["recipient"] == "arts@daneok.test")
        .expect("an audit record of the decision");
    assert_eq!(dane["decision"], "deliver");
    assert_eq!(dane["rule"], "confidential-authenticated");
    assert_eq!(dane["lane"], "dane");
    assert_eq!(dane["posture"]["level"], "dane");
    assert!(
        dane["posture"].to_string().contains("matches TLSA 3 1 1"),
        "{dane}"
    );
    // The message's facts, findings among them, are recorded once per transaction.
    let message = records
        .iter()
        .find(|r| r["event"] == "message" && r["transaction"] == dane["transaction"])
        .expect("the transaction's message record");
    assert!(message["findings"].to_string().contains("***"), "{message}");
    assert!(!message.to_string().contains("123456782"), "raw BSN");
    assert!(
        dane.get("findings").is_none(),
        "findings repeated per recipient"
    );
    assert!(
        !dane.to_string().contains("123456782"),
        "raw BSN in the audit log"
    );

    let (_, metrics) = http_get(g.admin, "/metrics");
    assert!(
        metrics.contains(
            "sluis_recipients_total{class=\"unmanaged\",posture=\"dane\",verdict=\"deliver\"} 1"
        ),
        "{metrics}"
    );
    assert!(metrics.contains("sluis_posture_lookup_seconds_count{result=\"dane\"} 1"));
}

#[test]
fn plain_starttls_is_held_the_sender_told_and_a_release_that_cannot_be_secure_is_refused() {
    let g = gateway("");
    let r = send(&g, &["balie@webpki.test"], "p-held", BSN_TEXT);
    assert!(r.starts_with("250 2.0.0 Ok: held for review as "), "{r}");
    assert!(r.contains("rule confidential-unauthenticated"), "{r}");
    let items = held_items(&g);
    assert_eq!(items.len(), 1);
    let id = items[0]["id"].as_str().unwrap().to_string();
    assert_eq!(items[0]["recipients"][0]["address"], "balie@webpki.test");
    assert_eq!(items[0]["recipients"][0]["require"], "trusted");
    // Readable by Sluis only, and no raw identifier in the record.
    let qdir = g.sluis.dir.path().join("spool/quarantine");
    for f in [format!("{id}.eml"), format!("{id}.json")] {
        let mode = std::fs::metadata(qdir.join(&f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }
    assert!(
        !std::fs::read_to_string(qdir.join(format!("{id}.json")))
            .unwrap()
            .contains("123456782")
    );
    // Not delivered anywhere; the sender got a notice saying what to do.
    assert!(!world().lanes.maillog().contains("to=<balie@webpki.test>"));
    let notice = g.sink.wait_token(&format!("{id}.notice@"), 1, WAIT);
    assert_eq!(notice.len(), 1, "no notice");
    assert!(
        notice[0].contains("X-Rcpt-Args: <jansen@org.test>")
            || notice[0].contains("jansen@org.test")
    );
    assert!(notice[0].contains("secure mail"), "{}", notice[0]);
    assert!(
        !notice[0].contains("123456782"),
        "the notice repeats the content"
    );

    // show: headers, masked findings, posture evidence, rule, release lane.
    let out = sluis_cmd(&g, &["quarantine", "show", &id]);
    assert_success(&out, "quarantine show");
    let shown = String::from_utf8_lossy(&out.stdout);
    for want in [
        "rule confidential-unauthenticated",
        "bsn ***",
        "posture   encrypted",
        "encrypted, not authenticated",
        "release     balie@webpki.test -> lane secure",
        "Subject: Uitslag",
    ] {
        assert!(shown.contains(want), "{want:?} missing from:\n{shown}");
    }

    // A release needs a reviewer and a reason, and is refused while the recipient's server
    // cannot be authenticated: it would wait in the secure lane's queue until it bounced.
    let out = sluis_cmd(
        &g,
        &[
            "quarantine",
            "release",
            &id,
            "--reviewer",
            "",
            "--reason",
            "x",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let out = sluis_cmd(
        &g,
        &[
            "quarantine",
            "release",
            &id,
            "--reviewer",
            "A. Reviewer",
            "--reason",
            "checked with the sender",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "balie@webpki.test: its server's posture is encrypted now, the release needs trusted"
        ),
        "{err}"
    );
    assert!(!world().lanes.maillog().contains("to=<balie@webpki.test>"));
    assert_eq!(held_items(&g).len(), 1);
    // The reviewer rejects it instead.
    let out = sluis_cmd(
        &g,
        &[
            "quarantine",
            "reject",
            &id,
            "--reviewer",
            "A. Reviewer",
            "--reason",
            "sent by post",
        ],
    );
    assert_success(&out, "quarantine reject");
    assert!(held_items(&g).is_empty());
    let records = audit_records(&g);
    let review = records
        .iter()
        .find(|r| r["event"] == "review")
        .expect("review audited");
    assert_eq!(review["reviewer"], "A. Reviewer");
    assert_eq!(review["reason"], "checked with the sender");
    assert_eq!(review["action"], "release-refused");
    assert!(
        records
            .iter()
            .any(|r| r["event"] == "review" && r["action"] == "reject")
    );
    assert!(!records.iter().any(|r| r["event"] == "release-result"));

    // The chain is intact; an edited record is found and named.
    let out = sluis_cmd(&g, &["audit", "verify"]);
    assert_success(&out, "audit verify");
    let log = g.sluis.dir.path().join("spool/audit/audit.jsonl");
    let text = std::fs::read_to_string(&log).unwrap();
    let tampered = text.replacen("\"decision\":\"quarantine\"", "\"decision\":\"deliver\"", 1);
    assert_ne!(text, tampered);
    std::fs::write(&log, tampered).unwrap();
    let out = sluis_cmd(&g, &["audit", "verify"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("DAMAGED"));
}

#[test]
fn webmail_is_held_with_a_notice_while_the_dane_recipient_gets_it() {
    let g = gateway("");
    let r = send(
        &g,
        &["p.devries@gmail.com", "poli@daneok.test"],
        "p-mixed",
        BSN_TEXT,
    );
    assert!(r.starts_with("250"), "{r}");
    assert!(lane_took("sluis-dane-only", "poli@daneok.test"));
    assert!(!world().lanes.maillog().contains("to=<p.devries@gmail.com>"));
    let items = held_items(&g);
    assert_eq!(items.len(), 1);
    let held: Vec<&str> = items[0]["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["address"].as_str().unwrap())
        .collect();
    assert_eq!(held, ["p.devries@gmail.com"]);
    assert_eq!(
        items[0]["recipients"][0]["rule"],
        "confidential-to-personal"
    );
    let id = items[0]["id"].as_str().unwrap();
    let notice = g.sink.wait_token(&format!("{id}.notice@"), 1, WAIT);
    assert_eq!(notice.len(), 1);
    assert!(notice[0].contains("<p.devries@gmail.com>"));
    assert!(notice[0].contains("patient portal"), "{}", notice[0]);

    // The review API: a token is required; a reject is recorded with its reviewer.
    let (status, _) = http_get(g.admin, "/quarantine");
    assert!(status.contains("401"), "{status}");
    let listed = http_request(g.admin, "GET", "/quarantine", Some(TOKEN), "");
    assert!(listed.contains(id), "{listed}");
    let rejected = http_request(
        g.admin,
        "POST",
        &format!("/quarantine/{id}/reject"),
        Some(TOKEN),
        "{\"reviewer\":\"B. Privacy\",\"reason\":\"patient portal used instead\"}",
    );
    assert!(rejected.starts_with("HTTP/1.1 200"), "{rejected}");
    assert!(held_items(&g).is_empty());
    assert!(
        audit_records(&g)
            .iter()
            .any(|r| r["action"] == "reject" && r["reviewer"] == "B. Privacy")
    );
}

#[test]
fn bogus_dnssec_defers_and_never_downgrades() {
    let g = gateway("");
    let r = send(
        &g,
        &["x@bogus.test", "poli@daneok.test"],
        "p-bogus",
        BSN_TEXT,
    );
    // unbound answers SERVFAIL for bogus data: "unknown", deferred as a whole.
    assert!(r.starts_with("451 4.4.3 <x@bogus.test>"), "{r}");
    assert!(r.contains("rule confidential-posture-unknown"));
    assert!(held_items(&g).is_empty());
    assert!(g.sink.with_token("p-bogus@org.test").is_empty());
    let records = audit_records(&g);
    assert!(
        records
            .iter()
            .any(|r| r["recipient"] == "poli@daneok.test"
                && r["rule"] == "deferred-with-transaction")
    );
}

#[test]
fn with_a_portal_webmail_is_sealed_the_dane_recipient_delivered_and_a_lapsed_one_held_in_one_reply()
{
    let dir = scratch("portal-mixed");
    let outbox = dir.path().join("sms.jsonl");
    let g = gateway(&format!(
        "[recipients]\npersonal_domains = [\"patients.test\"]\n\n\
         [[domains]]\nname = \"gone.test\"\nclass = \"managed\"\ntoken = \"t-123\"\n\n\
         [ownership]\nrefuse_lapsed = false\n\n\
         [portal]\nlisten = \"127.0.0.1:{}\"\nbase_url = \"https://portal.test\"\n\
         from = \"beveiligd@org.test\"\norganisation = \"Ziekenhuis Oost\"\n\
         allow_email_code = true\n\n[portal.sms]\nkind = \"file\"\npath = \"{}\"\n",
        free_port(),
        outbox.display()
    ));
    let r = send(
        &g,
        &["pat@patients.test", "poli@daneok.test", "oud@gone.test"],
        "p-portal-mixed",
        BSN_TEXT,
    );
    // One reply for three decisions: sealed, delivered through the DANE lane, held.
    assert!(r.starts_with("250"), "{r}");
    assert!(lane_took("sluis-dane-only", "poli@daneok.test"));
    let note = wait_for(WAIT, || {
        g.sink
            .messages()
            .into_iter()
            .find(|m| m.contains("Beveiligd bericht van") && m.contains("To: <pat@patients.test>"))
    })
    .expect("the portal's notification through the default lane");
    assert!(!note.contains("123456782") && !note.contains("Uitslag"));
    assert!(!world().lanes.maillog().contains("to=<pat@patients.test>"));
    let held = held_items(&g);
    assert_eq!(held.len(), 1);
    assert_eq!(held[0]["recipients"][0]["address"], "oud@gone.test");
    // Audited before the reply: a decision per recipient, each with where it went.
    let audit = audit_records(&g);
    let decision = |rcpt: &str| {
        audit
            .iter()
            .find(|r| r["event"] == "decision" && r["recipient"] == rcpt)
            .cloned()
            .unwrap()
    };
    let portal = decision("pat@patients.test");
    assert_eq!(portal["decision"], "portal");
    assert!(portal["portal_id"].as_str().unwrap().ends_with("-P"));
    assert_eq!(decision("poli@daneok.test")["decision"], "deliver");
    assert_eq!(decision("oud@gone.test")["decision"], "quarantine");
    assert!(
        audit
            .iter()
            .any(|r| r["event"] == "portal" && r["action"] == "notified")
    );
}

#[test]
fn kill9_while_quarantining_leaves_a_complete_item_or_none_and_the_retry_is_kept() {
    // A personal-mailbox recipient: held without any DNS. 60 MB (over the inspection bound:
    // uninspectable, so confidential) makes the quarantine copy take long enough to land a kill
    // inside it.
    let g = gateway(
        "[limits]\nmessage_size = 100000000\n\n[recipients]\npersonal_domains = [\"patients.test\"]\n",
    );
    let mut sluis = g.sluis;
    let qdir = sluis.dir.path().join("spool/quarantine");
    let mut body = String::from("Subject: big\r\nMessage-ID: <p-kill@org.test>\r\n\r\n");
    let line = "x".repeat(998) + "\r\n";
    while body.len() < 60_000_000 {
        body.push_str(&line);
    }
    let send = |port: u16, body: &str| {
        let body = body.to_string();
        std::thread::spawn(move || {
            let mut c = Smtp::connect(port);
            c.hello();
            c.send_message("jansen@org.test", &["p@patients.test"], body.as_bytes())
        })
    };
    let first = send(sluis.port, &body);
    let tmp_seen = wait_for(Duration::from_secs(60), || {
        std::fs::read_dir(&qdir)
            .ok()?
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with(".tmp-"))
            .then_some(())
    });
    sluis.kill9();
    assert!(
        tmp_seen.is_some(),
        "the quarantine copy was never seen in progress"
    );
    let reply = first.join().unwrap_or_default();
    assert!(
        !reply.starts_with("250"),
        "acknowledged before the copy was complete: {reply}"
    );
    // What is left is never an item: no JSON without a complete message.
    let jsons = std::fs::read_dir(&qdir)
        .unwrap()
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.ends_with(".json") && !n.starts_with(".tmp-")
        })
        .count();
    assert_eq!(jsons, 0);

    // Restart: the leftovers go; the client's retry is held, once, complete.
    sluis.spawn();
    let names: Vec<String> = std::fs::read_dir(&qdir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        // The lock files, and the (empty) directories of tombstones, anchors, sessions,
        // counters and portal items.
        .filter(|n| {
            !n.ends_with(".lock")
                && !["settled", "anchors", "sessions", "counters", "portal"].contains(&n.as_str())
        })
        .collect();
    assert!(names.is_empty(), "{names:?}");
    let retry = send(sluis.port, &body).join().unwrap();
    assert!(
        retry.starts_with("250 2.0.0 Ok: held for review"),
        "{retry}"
    );
    let g = Gateway {
        sluis,
        _tok: g._tok,
        sink: g.sink,
        admin: g.admin,
    };
    let items = held_items(&g);
    assert_eq!(items.len(), 1);
    let id = items[0]["id"].as_str().unwrap();
    let eml = std::fs::metadata(qdir.join(format!("{id}.eml")))
        .unwrap()
        .len();
    assert!(eml >= body.len() as u64, "incomplete message: {eml}");
}

#[test]
fn a_full_quarantine_defers_and_purge_removes_old_items_with_a_record() {
    let g = gateway(
        "[quarantine]\nmax_bytes = 200000\n\n[recipients]\npersonal_domains = [\"patients.test\"]\n",
    );
    let r = send(&g, &["p@patients.test"], "p-q1", BSN_TEXT);
    assert!(r.starts_with("250 2.0.0 Ok: held"), "{r}");
    // 150 kB more does not fit: the client keeps the message.
    let big = format!("{BSN_TEXT}{}", ("y".repeat(998) + "\r\n").repeat(150));
    let r = send(&g, &["p@patients.test"], "p-q2", &big);
    assert!(r.starts_with("452 4.3.1"), "{r}");
    assert_eq!(held_items(&g).len(), 1);

    let out = sluis_cmd(&g, &["quarantine", "purge", "--older-than", "1h"]);
    assert_success(&out, "purge");
    assert_eq!(held_items(&g).len(), 1, "a fresh item was purged");
    std::thread::sleep(Duration::from_millis(2100));
    let out = sluis_cmd(
        &g,
        &[
            "quarantine",
            "purge",
            "--older-than",
            "1s",
            "--reviewer",
            "ops",
        ],
    );
    assert_success(&out, "purge");
    assert!(String::from_utf8_lossy(&out.stdout).contains("purged 1 item"));
    assert!(held_items(&g).is_empty());
    assert!(
        audit_records(&g)
            .iter()
            .any(|r| r["action"] == "purge" && r["reviewer"] == "ops")
    );
}

#[test]
fn a_full_disk_under_the_audit_log_defers_and_the_retry_is_delivered_once() {
    // Too small for the commit journal (8 MiB): the log is synced by itself, and the failed
    // attempts to create the journal take no space.
    full_disk_defers_and_the_retry_is_delivered_once("256k");
}

#[test]
fn a_full_disk_under_the_audit_log_and_its_journal_defers_and_the_retry_is_delivered_once() {
    full_disk_defers_and_the_retry_is_delivered_once("12m");
}

fn full_disk_defers_and_the_retry_is_delivered_once(size: &str) {
    // The audit log and the quarantine on a small file system of their own.
    let dir = scratch("fulldisk");
    let fs = dir.path().join("fs");
    std::fs::create_dir_all(&fs).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(&fs)
        .status()
        .unwrap();
    assert!(mounted.success(), "cannot mount a tmpfs (needs root)");
    after_exit(&format!("umount {} 2>/dev/null", fs.display()));
    let sink = Sink::start(&[]);
    let sluis = Sluis::start(
        sink.port,
        &format!(
            "[audit]\nfile = \"{d}/audit/audit.jsonl\"\n\n[quarantine]\ndir = \"{d}/q\"\n\n{DELIVER_ALL}",
            d = fs.display()
        ),
    );
    // Fill it: the next audit record has nowhere to go.
    let journal = fs.join("audit/audit.jsonl.journal");
    let journal_size = std::fs::metadata(&journal).map_or(0, |m| m.len());
    assert_eq!(
        journal_size > 0,
        size == "12m",
        "journal of {journal_size} bytes"
    );
    let filler = fs.join("filler");
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=4096"])
        .arg(format!("of={}", filler.display()))
        .output()
        .unwrap();
    let mut c = Smtp::connect(sluis.port);
    c.hello();
    let body = b"Subject: full\r\nMessage-ID: <p-full@org.test>\r\n\r\nHallo\r\n";
    let r = c.send_message("jansen@org.test", &["a@partner.test"], body);
    assert!(r.starts_with("451 4.3.0"), "{r}");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        sink.with_token("p-full@org.test").is_empty(),
        "relayed without its record"
    );

    // Space again: the client's retry goes through, once, and the chain is whole.
    std::fs::remove_file(&filler).unwrap();
    let r = c.send_message("jansen@org.test", &["a@partner.test"], body);
    assert!(r.starts_with("250"), "{r}");
    assert_eq!(sink.wait_token("p-full@org.test", 1, WAIT).len(), 1);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(sink.with_token("p-full@org.test").len(), 1);
    let out = Command::new(SLUIS)
        .args(["audit", "verify"])
        .arg(fs.join("audit/audit.jsonl"))
        .output()
        .unwrap();
    assert_success(&out, "audit verify");
    drop(sluis);
    let _ = Command::new("umount").arg(&fs).status();
}
