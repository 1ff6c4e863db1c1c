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
const STS_POLICY: &str =
    "version: STSv1\r\nmode: enforce\r\nmx: mx.stsok.test\r\nmax_age: 86400\r\n";

struct World {
    sluis: Sluis,
    lanes: PostfixClient,
    policy_port: u16,
    /// stsok.test's MX (127.0.3.14, a certificate for mx.stsok.test).
    sts_mx: PostfixClient,
    /// A host with a valid certificate for its own name, evil.unsigned.test (127.0.3.19).
    evil_mx: PostfixClient,
    /// daneok.test's MX (127.0.3.11), its key published as TLSA 3 1 1.
    dane_mx: PostfixClient,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let d = dns();
        let w = web();
        w.set_policy("stsok.test", Some(STS_POLICY));
        let dir = scratch("pki").keep();
        after_exit(&format!("rm -rf {}", dir.display()));
        let mk = |name: &str| {
            let sub = dir.join(name);
            std::fs::create_dir_all(&sub).unwrap();
            pki(&sub, name)
        };
        let evil = mk("evil.unsigned.test");
        let dane = mk("mx.daneok.test");
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
        let (sts_mx, evil_mx, dane_mx) = std::thread::scope(|s| {
            let a = s.spawn(|| postfix_mx_keeping("127.0.3.14", &w.pki));
            let b = s.spawn(|| postfix_mx_keeping("127.0.3.19", &evil));
            let c = s.spawn(|| postfix_mx_keeping("127.0.3.11", &dane));
            (a.join().unwrap(), b.join().unwrap(), c.join().unwrap())
        });
        let ports = [free_port(), free_port(), free_port()];
        let policy_port = free_port();
        let lanes = postfix_lanes_resolving(ports, policy_port, &cas);
        let sluis = Sluis::start(
            ports[0],
            &format!(
                "[upstream]\npolicy_map_listen = \"127.0.0.1:{policy_port}\"\n\n\
                 [upstream.lanes.dane]\naddress = \"127.0.0.1:{}\"\nlevel = \"dane\"\n\n\
                 [upstream.lanes.secure]\naddress = \"127.0.0.1:{}\"\nlevel = \"trusted\"\n\n\
                 [dns]\nresolver = \"{RESOLVER}\"\ntrust_anchor_file = \"{}\"\ntimeout = \"2s\"\n\n\
                 [posture]\nca_file = \"{}\"\n",
                ports[1],
                ports[2],
                d.anchor_path().display(),
                w.ca().display()
            ),
        );
        World {
            sluis,
            lanes,
            policy_port,
            sts_mx,
            evil_mx,
            dane_mx,
        }
    })
}

fn send(w: &World, rcpt: &str, token: &str) -> String {
    let mut c = Smtp::connect(w.sluis.port);
    c.hello();
    let msg = format!(
        "From: Dr. Jansen <jansen@org.test>\r\nTo: {rcpt}\r\nSubject: Uitslag\r\n\
         Message-ID: <{token}@org.test>\r\n\r\n{BSN_TEXT}"
    );
    c.send_message("jansen@org.test", &[rcpt], msg.as_bytes())
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
