//! Enforcement at delivery (issue 19, DESIGN §16): the Postfix lanes of
//! deploy/postfix/lanes-master.cf ask Sluis's TLS policy socketmap for each domain, and deliver
//! only as Sluis judged. A DNSSEC-signed zone (knot) behind unbound, which the lanes' Postfix
//! uses as its resolver (a mount namespace with its own resolv.conf); MTA-STS policies from
//! nginx; Postfix MX hosts that keep what they accept.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::OnceLock;
use std::time::Duration;

use common::dns::{RESOLVER, TOKEN, dns, tlsa_sha256};
use common::web::{WEB_IP, web};
use common::*;

const WAIT: Duration = Duration::from_secs(30);
const BSN_TEXT: &str = "Patient: J. de Vries\r\nBSN: 123456782\r\nGeboortedatum: 12-03-1961\r\n";
/// The NTA 7516 profile's delivery rules, and before them one that holds every tagged message
/// for review whatever the recipient's server: releases of mail for servers that can and
/// cannot meet the level.
const RULES: &str = "[[policy.rules]]\nname = \"hold-tagged\"\naction = \"quarantine\"\n\
    require = \"trusted\"\nwhen = { tagged = true }\n\n\
    [[policy.rules]]\nname = \"confidential-authenticated\"\naction = \"deliver\"\n\
    require = \"trusted\"\nwhen = { confidential = true }\n\n\
    [[policy.rules]]\nname = \"deliver\"\naction = \"deliver\"\n";
const STS_POLICY: &str =
    "version: STSv1\r\nmode: enforce\r\nmx: mx.stsok.test\r\nmax_age: 86400\r\n";

struct World {
    sluis: Sluis,
    lanes: PostfixClient,
    policy_port: u16,
    report_port: u16,
    /// stsok.test's MX (127.0.3.14, a certificate for mx.stsok.test).
    sts_mx: PostfixClient,
    /// A host with a valid certificate for its own name, evil.unsigned.test (127.0.3.19).
    evil_mx: PostfixClient,
    /// daneok.test's MX (127.0.3.11), its key published as TLSA 3 1 1.
    dane_mx: PostfixClient,
    /// webpki.test's MX (127.0.3.12): a trust-list partner, its key agreed (pinned).
    partner_mx: std::sync::Mutex<PostfixClient>,
    /// Where test certificates are made.
    pki_dir: std::path::PathBuf,
}

/// A test CA and a certificate for `name`, in a directory of their own under `dir`.
fn cert(dir: &std::path::Path, sub: &str, name: &str) -> Pki {
    let sub = dir.join(sub);
    std::fs::create_dir_all(&sub).unwrap();
    pki(&sub, name)
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let d = dns();
        let w = web();
        w.set_policy("stsok.test", Some(STS_POLICY));
        let dir = scratch("pki").keep();
        after_exit(&format!("rm -rf {}", dir.display()));
        let evil = cert(&dir, "evil", "evil.unsigned.test");
        let dane = cert(&dir, "dane", "mx.daneok.test");
        let partner = cert(&dir, "partner", "mx.webpki.test");
        let pin = tlsa_sha256(&partner.cert, 1);
        d.add_records(
            "daneok.test",
            &[&format!(
                "_25._tcp.mx TLSA 3 1 1 {}",
                tlsa_sha256(&dane.cert, 1)
            )],
        );
        d.add_records("unsigned.test", &["evil A 127.0.3.19"]);
        // Postfix trusts the web CA (mx.stsok.test) and the impostor's CA: its certificate
        // is valid, for its own name.
        let cas = dir.join("cas.pem");
        let mut pem = std::fs::read(w.ca()).unwrap();
        pem.extend(std::fs::read(&evil.ca).unwrap());
        std::fs::write(&cas, pem).unwrap();
        let (sts_mx, evil_mx, dane_mx, partner_mx) = std::thread::scope(|s| {
            let a = s.spawn(|| postfix_mx_keeping("127.0.3.14", &w.pki));
            let b = s.spawn(|| postfix_mx_keeping("127.0.3.19", &evil));
            let c = s.spawn(|| postfix_mx_keeping("127.0.3.11", &dane));
            let e = s.spawn(|| postfix_mx_keeping("127.0.3.12", &partner));
            (
                a.join().unwrap(),
                b.join().unwrap(),
                c.join().unwrap(),
                e.join().unwrap(),
            )
        });
        let ports = [free_port(), free_port(), free_port()];
        let policy_port = free_port();
        let report_port = free_port();
        let lanes = postfix_lanes_resolving(ports, policy_port, report_port, &cas);
        let sluis = Sluis::start(
            ports[0],
            &format!(
                "[upstream]\npolicy_map_listen = \"127.0.0.1:{policy_port}\"\n\n\
                 [upstream.lanes.dane]\naddress = \"127.0.0.1:{}\"\nlevel = \"dane\"\n\n\
                 [upstream.lanes.secure]\naddress = \"127.0.0.1:{}\"\nlevel = \"trusted\"\n\n\
                 [dns]\nresolver = \"{RESOLVER}\"\ntrust_anchor_file = \"{}\"\ntimeout = \"2s\"\n\n\
                 [posture]\nca_file = \"{}\"\n\n\
                 [review]\nreport_listen = \"127.0.0.1:{report_port}\"\n\n\
                 [ownership]\ntoken = \"{TOKEN}\"\n\n\
                 [[domains]]\nname = \"webpki.test\"\nclass = \"partner\"\n\
                 tls_pins = [\"sha256:{pin}\"]\n\n{RULES}",
                ports[1],
                ports[2],
                d.anchor_path().display(),
                w.ca().display()
            ),
        );
        // The world lives in a static, which is never dropped: stop Sluis with the binary.
        after_exit(&format!("kill {} 2>/dev/null", sluis.pid()));
        World {
            sluis,
            lanes,
            policy_port,
            report_port,
            sts_mx,
            evil_mx,
            dane_mx,
            partner_mx: std::sync::Mutex::new(partner_mx),
            pki_dir: dir,
        }
    })
}

fn send(w: &World, rcpt: &str, token: &str) -> String {
    send_with_subject(w, rcpt, token, "Uitslag")
}

fn send_with_subject(w: &World, rcpt: &str, token: &str, subject: &str) -> String {
    let mut c = Smtp::connect(w.sluis.port);
    c.hello();
    let msg = format!(
        "From: Dr. Jansen <jansen@org.test>\r\nTo: {rcpt}\r\nSubject: {subject}\r\n\
         Message-ID: <{token}@org.test>\r\n\r\n{BSN_TEXT}"
    );
    c.send_message("jansen@org.test", &[rcpt], msg.as_bytes())
}

fn sluis_cmd(w: &World, args: &[&str]) -> std::process::Output {
    std::process::Command::new(SLUIS)
        .args(args)
        .arg("--config")
        .arg(&w.sluis.config)
        .output()
        .unwrap()
}

/// Item `id` released through the CLI by "A. Reviewer" for `why`.
fn release(w: &World, id: &str, why: &str) -> std::process::Output {
    sluis_cmd(
        w,
        &[
            "quarantine",
            "release",
            id,
            "--reviewer",
            "A. Reviewer",
            "--reason",
            why,
        ],
    )
}

/// A tagged message to `rcpt` (held by the hold-tagged rule), then released by the CLI for
/// `why`: the item's id and the release's output.
fn hold_and_release(
    w: &World,
    rcpt: &str,
    token: &str,
    why: &str,
) -> (String, std::process::Output) {
    let r = send_with_subject(w, rcpt, token, "[vertrouwelijk] Uitslag");
    assert!(r.starts_with("250"), "{r}");
    let id = held_id(w, rcpt);
    let out = release(w, &id, why);
    (id, out)
}

/// The id of the item that holds (or released) `rcpt`.
fn held_id(w: &World, rcpt: &str) -> String {
    item_for(w, rcpt).expect("held")["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The quarantine as `sluis quarantine list --format json` prints it.
fn items(w: &World) -> Vec<serde_json::Value> {
    let out = sluis_cmd(w, &["quarantine", "list", "--format", "json"]);
    assert_success(&out, "quarantine list");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn item_for(w: &World, rcpt: &str) -> Option<serde_json::Value> {
    items(w).into_iter().find(|i| {
        i["recipients"]
            .as_array()
            .into_iter()
            .chain(i["released"].as_array())
            .flatten()
            .any(|r| r["address"] == rcpt)
    })
}

fn audit(w: &World) -> Vec<serde_json::Value> {
    std::fs::read_to_string(w.sluis.dir.path().join("spool/audit/audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// One socketmap lookup, as Postfix makes it.
fn lookup(port: u16, request: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    write!(s, "{}:{request},", request.len()).unwrap();
    let mut len = String::new();
    let mut b = [0u8; 1];
    while s.read_exact(&mut b).is_ok() && b[0] != b':' {
        len.push(b[0] as char);
    }
    let mut body = vec![0; len.parse::<usize>().unwrap() + 1];
    s.read_exact(&mut body).unwrap();
    assert_eq!(body.pop(), Some(b','));
    String::from_utf8(body).unwrap()
}

/// The lanes' log lines of the delivery attempts to `rcpt`, once one with `status=` is there.
fn attempts(w: &World, rcpt: &str) -> Vec<String> {
    wait_for(WAIT, || {
        let lines: Vec<String> = w
            .lanes
            .maillog()
            .lines()
            .filter(|l| l.contains(&format!("to=<{rcpt}>")) && l.contains("status="))
            .map(String::from)
            .collect();
        (!lines.is_empty()).then_some(lines)
    })
    .unwrap_or_default()
}

#[test]
fn an_mta_sts_domain_is_delivered_only_to_the_mx_its_policy_names() {
    let w = world();
    // Sluis judges stsok.test mta-sts: confidential mail takes the secure lane, and Postfix
    // gets the policy's MX names to match.
    let rcpt = "arts@stsok.test";
    assert!(send(w, rcpt, "sts-first").starts_with("250"));
    let got = w.sts_mx.wait_delivered("sts-first", 1, WAIT);
    assert_eq!(got.len(), 1, "{}", w.lanes.maillog());
    assert_eq!(
        lookup(w.policy_port, "trusted stsok.test"),
        "OK secure match=mx.stsok.test servername=hostname"
    );
    let log = w.lanes.maillog();
    assert!(
        log.lines().any(|l| l.contains("/sluis-secure/smtp[")
            && l.contains("Verified TLS connection established to mx.stsok.test")),
        "{log}"
    );

    // Now the (unsigned) MX answer changes: a host with a valid certificate for its own name.
    // A `secure` lane that trusts the MX name would deliver there; with the policy's MX names
    // Postfix refuses.
    let d = dns();
    let lines = [
        format!("_sluis TXT \"{TOKEN}\""),
        "@ MX 10 evil.unsigned.test.".to_string(),
        "mx A 127.0.3.14".to_string(),
        format!("mta-sts A {WEB_IP}"),
        "_mta-sts TXT \"v=STSv1; id=1\"".to_string(),
    ];
    d.set_records(
        "stsok.test",
        &lines.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let moved = wait_for(WAIT, || {
        let out = std::process::Command::new("kdig")
            .args(["+short", "@127.0.2.53", "stsok.test", "MX"])
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout)
            .contains("evil.unsigned.test")
            .then_some(())
    });
    assert!(moved.is_some(), "the MX answer did not change");
    let rcpt = "balie@stsok.test";
    assert!(send(w, rcpt, "sts-spoofed").starts_with("250"));
    let tried = attempts(w, rcpt);
    assert!(
        tried.iter().all(|l| l.contains("status=deferred")),
        "{tried:?}"
    );
    let log = w.lanes.maillog();
    assert!(
        log.lines().any(|l| l.contains("evil.unsigned.test")
            && (l.contains("certificate verification failed")
                || l.contains("Server certificate not verified"))),
        "{log}"
    );
    assert!(w.evil_mx.delivered_with("sts-spoofed").is_empty());
    assert_eq!(w.lanes.queued_for(rcpt), 1, "kept in the lane's queue");
}

#[test]
fn a_dane_domain_is_delivered_with_dane_enforced_by_postfix() {
    let w = world();
    let rcpt = "arts@daneok.test";
    assert!(send(w, rcpt, "dane-first").starts_with("250"));
    let got = w.dane_mx.wait_delivered("dane-first", 1, WAIT);
    assert_eq!(got.len(), 1, "{}", w.lanes.maillog());
    assert_eq!(lookup(w.policy_port, "dane daneok.test"), "OK dane-only");
    let log = w.lanes.maillog();
    assert!(
        log.lines().any(|l| l.contains("/sluis-dane-only/smtp[")
            && l.contains("Verified TLS connection established to mx.daneok.test")),
        "{log}"
    );
}

#[test]
fn bogus_and_unknown_domains_are_deferred_at_delivery_never_downgraded() {
    let w = world();
    // Behind a validating resolver a bogus domain is a failed lookup: unknown, deferred.
    let temp = lookup(w.policy_port, "none bogus.test");
    assert!(temp.starts_with("TEMP bogus.test: "), "{temp}");
    // A non-sensitive message to a bogus domain passes Sluis's policy through the default
    // lane; Postfix still defers it, asking Sluis.
    let rcpt = "info@bogus.test";
    let mut c = Smtp::connect(w.sluis.port);
    c.hello();
    let r = c.send_message(
        "jansen@org.test",
        &[rcpt],
        b"Subject: agenda\r\nMessage-ID: <bogus-plain@org.test>\r\n\r\nTot dinsdag.\r\n",
    );
    if r.starts_with("250") {
        let tried = attempts(w, rcpt);
        assert!(
            tried.iter().all(|l| l.contains("status=deferred")),
            "{tried:?}"
        );
    } else {
        assert!(r.starts_with("4"), "{r}");
    }
    // The policy line each lane would get, as `sluis check-domain` shows it.
    let out = std::process::Command::new(SLUIS)
        .args(["check-domain", "daneok.test", "--config"])
        .arg(&w.sluis.config)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("postfix    lane dane (dane): dane-only"),
        "{text}"
    );
    assert!(
        text.contains("postfix    lane default (none): dane-only"),
        "{text}"
    );
}

#[test]
fn a_release_is_pending_until_the_lanes_report_says_it_was_delivered() {
    let w = world();
    let rcpt = "uitslag@daneok.test";
    let (id, out) = hold_and_release(w, rcpt, "release-dane", "checked with the sender");
    assert_success(&out, "quarantine release");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains(
            "accepted by lane secure for delivery with level trusted: uitslag@daneok.test"
        ) && said.contains("released-pending until the lane's delivery report"),
        "{said}"
    );
    // The lane delivers (Postfix asks Sluis: dane-only), reports to Sluis, and the item goes.
    let gone = wait_for(WAIT, || item_for(w, rcpt).is_none().then_some(()));
    assert!(
        gone.is_some(),
        "still pending: {:?}\n{}",
        item_for(w, rcpt),
        w.lanes.maillog()
    );
    assert_eq!(w.dane_mx.wait_delivered("release-dane", 1, WAIT).len(), 1);
    let records = audit(w);
    let outcome = records
        .iter()
        .find(|r| r["event"] == "release-outcome" && r["quarantine_id"] == id.as_str())
        .expect("the outcome is audited");
    assert_eq!(outcome["recipient"], rcpt);
    assert_eq!(outcome["outcome"], "delivered");
    assert_eq!(outcome["action"], "relayed");
    assert_eq!(outcome["remote_mta"], "mx.daneok.test");
    let result = records
        .iter()
        .find(|r| r["event"] == "release-result" && r["quarantine_id"] == id.as_str())
        .unwrap();
    assert_eq!(result["level"], "trusted");
    assert_eq!(result["report_awaited"], true);
    // The lane's report came from the lane, through the report listener, with the token.
    let log = w.lanes.maillog();
    assert!(
        log.lines().any(|l| l.contains("to=<sluis-release+")
            && l.contains(&format!("127.0.0.1]:{}", w.report_port))
            && l.contains("status=sent")),
        "{log}"
    );
}

#[test]
fn a_release_for_a_server_that_cannot_meet_the_level_is_refused_with_that_truth() {
    let w = world();
    // expired.test's MX (127.0.3.17) does not answer here: its posture cannot be established.
    let rcpt = "balie@expired.test";
    let (id, out) = hold_and_release(w, rcpt, "release-refused", "the sender insists");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot be delivered at the required level, nothing released")
            && err.contains(
                "balie@expired.test: its server's posture is unknown now, the release needs trusted"
            ),
        "{err}"
    );
    // Still held, nothing handed to a lane, and the refusal is audited with the reviewer.
    let item = item_for(w, rcpt).expect("still held");
    assert_eq!(item["recipients"][0]["address"], rcpt);
    assert!(!w.lanes.maillog().contains(&format!("to=<{rcpt}>")));
    assert!(audit(w).iter().any(|r| {
        r["event"] == "review"
            && r["action"] == "release-refused"
            && r["quarantine_id"] == id.as_str()
            && r["reviewer"] == "A. Reviewer"
            && r["refused"]
                .as_str()
                .is_some_and(|why| why.contains("posture is unknown now"))
    }));
}

#[test]
fn the_report_listener_takes_only_reports_for_its_own_releases() {
    let w = world();
    let mut c = Smtp::connect(w.report_port);
    c.hello();
    assert!(c.cmd("MAIL FROM:<>").starts_with("250"));
    let r = c.cmd("RCPT TO:<arts@daneok.test>");
    assert!(r.starts_with("550 5.1.1"), "{r}");
    // A well-formed report address of an item that does not exist: recorded as nothing.
    let fake = "sluis-release+Q-NONE=00112233445566778899aabbccddeeff@sluis.test";
    assert!(c.cmd(&format!("RCPT TO:<{fake}>")).starts_with("250"));
    assert!(c.cmd("DATA").starts_with("354"));
    c.send(b"Subject: not a report\r\n\r\nhello\r\n.\r\n");
    let r = c.reply();
    assert!(r.starts_with("550 5.6.0"), "{r}");
}

#[test]
fn a_refused_release_is_told_to_the_sender_and_a_deferred_one_stays_pending() {
    let w = world();
    // The MX refuses gone@ for good and later@ for now.
    let (gone, later) = ("gone@daneok.test", "later@daneok.test");
    let mut c = Smtp::connect(w.sluis.port);
    c.hello();
    let msg = format!(
        "From: Dr. Jansen <jansen@org.test>\r\nSubject: [vertrouwelijk] Verwijzing\r\n\
         Message-ID: <release-mixed@org.test>\r\n\r\n{BSN_TEXT}"
    );
    let r = c.send_message("jansen@org.test", &[gone, later], msg.as_bytes());
    assert!(r.starts_with("250"), "{r}");
    let id = held_id(w, gone);
    assert_success(&release(w, &id, "verwijzing"), "quarantine release");
    // gone@: the lane's failure report settles it, and the sender hears of it from Sluis
    // (the release's return path is Sluis's, so the lane's bounce came to Sluis).
    let failed = wait_for(WAIT, || {
        audit(w)
            .into_iter()
            .find(|r| r["event"] == "release-outcome" && r["recipient"] == gone)
    })
    .expect("the failure is audited");
    assert_eq!(failed["outcome"], "failed");
    assert_eq!(failed["status"], "5.1.1");
    let notice = wait_for(WAIT, || {
        w.lanes
            .maillog()
            .lines()
            .find(|l| l.contains("to=<jansen@org.test>") && l.contains("status="))
            .map(String::from)
    });
    assert!(notice.is_some(), "{}", w.lanes.maillog());
    // later@: accepted by the lane, not delivered: pending, shown as such, not released twice.
    let item = item_for(w, later).expect("pending");
    assert_eq!(
        item["recipients"].as_array().map(Vec::len),
        Some(0),
        "{item}"
    );
    assert_eq!(item["released"][0]["address"], later);
    assert_eq!(item["released"][0]["lane"], "secure");
    let out = sluis_cmd(w, &["quarantine", "list"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "released-pending: {later} accepted by lane secure for delivery with level trusted"
        )),
        "{text}"
    );
    let again = release(w, &id, "once more");
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr)
            .contains("nothing left to release: 1 recipient(s) released"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
}

#[test]
fn a_partner_is_delivered_only_to_the_key_agreed_with_it() {
    let w = world();
    let rcpt = "arts@webpki.test";
    assert!(send(w, rcpt, "partner-first").starts_with("250"));
    let mut mx = w.partner_mx.lock().unwrap();
    assert_eq!(
        mx.wait_delivered("partner-first", 1, WAIT).len(),
        1,
        "{}",
        w.lanes.maillog()
    );
    // Postfix got the agreed key as a public-key fingerprint, and matched it.
    let pin = tlsa_sha256(&w.pki_dir.join("partner/leaf.crt"), 1).to_uppercase();
    let colons: Vec<&str> = (0..pin.len()).step_by(2).map(|i| &pin[i..i + 2]).collect();
    assert_eq!(
        lookup(w.policy_port, "trusted webpki.test"),
        format!("OK fingerprint match={}", colons.join(":"))
    );
    let log = w.lanes.maillog();
    assert!(
        log.lines().any(|l| l.contains("/sluis-secure/smtp[")
            && l.contains("Verified TLS connection established to mx.webpki.test")),
        "{log}"
    );

    // The partner's MX now presents another key (a certificate for the same name, from
    // another CA). Sluis judged the domain with the agreed key; Postfix must refuse this one.
    let _ = std::process::Command::new("postfix")
        .args(["-c", &mx.dir.display().to_string(), "stop"])
        .output();
    let closed = wait_for(WAIT, || {
        TcpStream::connect(("127.0.3.12", 25))
            .is_err()
            .then_some(())
    });
    assert!(closed.is_some(), "the partner's old MX did not stop");
    let other = cert(&w.pki_dir, "partner-rekeyed", "mx.webpki.test");
    *mx = postfix_mx_keeping("127.0.3.12", &other);
    let rcpt = "balie@webpki.test";
    assert!(send(w, rcpt, "partner-rekeyed").starts_with("250"));
    let tried = attempts(w, rcpt);
    assert!(
        tried.iter().all(|l| l.contains("status=deferred")),
        "{tried:?}"
    );
    // (Postfix checks fingerprints as synthetic TLSA records, and says so.)
    let log = w.lanes.maillog();
    assert!(
        log.lines()
            .any(|l| l.contains("server certificate verification failed for mx.webpki.test")),
        "{log}"
    );
    assert!(mx.delivered_with("partner-rekeyed").is_empty());
    assert_eq!(w.lanes.queued_for(rcpt), 1, "kept in the lane's queue");
}
