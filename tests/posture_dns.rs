//! A recipient domain's place on the TLS posture ladder, as `sluis check-domain` shows it
//! (issue 4): MX, null and implicit MX, DANE, MTA-STS, the NTA 7516 record, each with its
//! DNSSEC status, and the STARTTLS probe of every MX host. Against real servers started by the
//! suite: knot serving a signed zone, unbound validating it (and one passing signatures on
//! unjudged), Postfix MX hosts on 127.0.3.x:25 (TLSA 3 1 1 and 2 0 1 matches and mismatches,
//! test-CA, expired and wrong-name certificates, no STARTTLS), nginx serving MTA-STS policies.

mod common;

use std::process::Command;

use common::dns::{TLSA_HASH, dns, tlsa_sha256};
use common::*;
use serde_json::Value;

fn check_domain(domain: &str) -> Value {
    check_domain_with(&[domain, "--no-probe"])
}

fn check_domain_with(args: &[&str]) -> Value {
    check_domain_anchored(args, dns().anchor_path())
}

/// `sluis check-domain` with `anchor` as the trust anchor file.
fn check_domain_anchored(args: &[&str], anchor: &std::path::Path) -> Value {
    let out = Command::new(SLUIS)
        .arg("check-domain")
        .args(args)
        .args(["--format", "json", "--resolver", common::dns::RESOLVER])
        .arg("--trust-anchor")
        .arg(anchor)
        .output()
        .unwrap();
    assert_success(&out, "sluis check-domain");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The evidence of the named check.
fn evidence_of<'a>(v: &'a Value, name: &str) -> &'a str {
    find(v, name)["evidence"].as_str().unwrap_or("")
}

fn find<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == name)
        .unwrap_or_else(|| panic!("no {name} check in {v}"))
}

#[test]
fn dane_domain_shows_mx_tlsa_mta_sts_and_nta7516_evidence() {
    let v = check_domain("dane.test");
    let mx = find(&v, "mx");
    assert_eq!(
        (mx["result"].as_str(), mx["dnssec"].as_str()),
        (Some("pass"), Some("secure")),
        "{v}"
    );
    assert_eq!(mx["evidence"], "MX 10 mx.dane.test, 20 mx2.dane.test");
    let dane = find(&v, "dane:mx.dane.test");
    assert_eq!(dane["result"], "pass", "{v}");
    assert!(
        dane["evidence"]
            .as_str()
            .unwrap()
            .contains(&format!("3 1 1 {}", &TLSA_HASH[..16]))
    );
    let pkix_only = find(&v, "dane:mx2.dane.test");
    assert_eq!(pkix_only["result"], "warn", "{v}");
    assert!(
        pkix_only["evidence"]
            .as_str()
            .unwrap()
            .contains("TLS is mandatory, without authentication")
    );
    let sts = find(&v, "mta-sts-record");
    assert_eq!(sts["result"], "pass");
    assert!(sts["evidence"].as_str().unwrap().contains("id=20261122"));
    let nta = find(&v, "nta7516-record");
    assert!(
        nta["evidence"]
            .as_str()
            .unwrap()
            .contains("provider TestProvider, valid 2024-01 to 2027-12, ntamx 10 mx.dane.test"),
        "{nta}"
    );
}

#[test]
fn null_implicit_insecure_and_bogus_mx_are_told_apart() {
    let null = check_domain("nullmx.test");
    assert_eq!(find(&null, "mx")["result"], "fail");
    assert!(evidence_of(&null, "mx").contains("null MX"));

    let unsigned = check_domain("unsigned.test");
    let mx = find(&unsigned, "mx");
    assert_eq!(
        (mx["result"].as_str(), mx["dnssec"].as_str()),
        (Some("info"), Some("insecure")),
        "{unsigned}"
    );
    assert!(mx["evidence"].as_str().unwrap().contains("implicit MX"));
    assert!(evidence_of(&unsigned, "dane").contains("DANE does not apply"));

    // A validating resolver (unbound) answers SERVFAIL for data that does not validate, so
    // Sluis sees a failed lookup rather than the bogus data: either way mail is deferred, never
    // sent without the protection the zone asks for. (Telling "bogus" apart needs queries with
    // the CD bit, which the resolver library does not expose yet.)
    let bogus = check_domain("bogus.test");
    let mx = find(&bogus, "mx");
    assert_eq!(mx["result"], "fail", "{bogus}");
    let evidence = mx["evidence"].as_str().unwrap();
    assert!(
        evidence.contains("Server Failure") && evidence.contains("deferred"),
        "{bogus}"
    );

    // Behind a resolver that passes signatures on without judging them, Sluis's own validation
    // sees the broken signatures: bogus, which defers as well, and never reads as "no TLS".
    let d = dns();
    let out = Command::new(SLUIS)
        .args([
            "check-domain",
            "bogus.test",
            "--format",
            "json",
            "--no-probe",
        ])
        .args([
            "--resolver",
            common::dns::PASSTHROUGH_RESOLVER,
            "--trust-anchor",
        ])
        .arg(d.anchor_path())
        .output()
        .unwrap();
    assert_success(&out, "sluis check-domain");
    let bogus: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(bogus["posture"], "bogus", "{bogus}");
    assert!(evidence_of(&bogus, "mx").contains("bogus"), "{bogus}");

    // managed.test: signed, no MX, no TLSA for the implicit MX.
    let managed = check_domain("managed.test");
    assert_eq!(find(&managed, "mx")["dnssec"], "secure");
    assert!(evidence_of(&managed, "dane:managed.test").contains("no TLSA"));
    assert_eq!(
        find(&managed, "nta7516-record")["evidence"],
        "no NTA 7516 record"
    );
}

/// A certificate for `name` under a fresh test CA; with `send_ca`, the certificate file holds
/// the chain, the CA after the leaf (for DANE-TA).
fn mx_pki(name: &str, send_ca: bool) -> (Pki, tempfile::TempDir) {
    let dir = scratch("mxpki");
    let mut p = pki(dir.path(), name);
    if send_ca {
        let chain = dir.path().join("chain.crt");
        let mut pem = std::fs::read(&p.cert).unwrap();
        pem.extend(std::fs::read(&p.ca).unwrap());
        std::fs::write(&chain, pem).unwrap();
        p.cert = chain;
    }
    (p, dir)
}

/// Postfix MX hosts, started together (each takes a few seconds).
fn postfix_mxes(hosts: &[(&str, Option<&Pki>)]) -> Vec<PostfixClient> {
    std::thread::scope(|s| {
        let started: Vec<_> = hosts
            .iter()
            .map(|(ip, tls)| s.spawn(move || postfix_mx(ip, *tls)))
            .collect();
        started.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

#[test]
fn starttls_probe_places_each_domain_on_the_ladder() {
    let d = dns();
    // Postfix MX hosts. dane.test: mx has a TLSA 3 1 1 record that matches nothing, mx2 offers
    // no STARTTLS. daneok.test: DANE-EE, the leaf's key published as TLSA 3 1 1. danetaok.test:
    // DANE-TA, the issuing CA published as TLSA 2 0 1 and sent in the chain. webpki.test: no
    // TLSA; a certificate under a CA given with --ca-file or not.
    let (dane_pki, _d1) = mx_pki("mx.dane.test", false);
    let (ee, _d3) = mx_pki("mx.daneok.test", false);
    let (ta, _d4) = mx_pki("mx.danetaok.test", true);
    let (web, _d5) = mx_pki("mx.webpki.test", false);
    let _mxes = postfix_mxes(&[
        ("127.0.3.1", Some(&dane_pki)),
        ("127.0.3.2", None),
        ("127.0.3.11", Some(&ee)),
        ("127.0.3.13", Some(&ta)),
        ("127.0.3.12", Some(&web)),
    ]);
    d.add_records(
        "daneok.test",
        &[&format!(
            "_25._tcp.mx TLSA 3 1 1 {}",
            tlsa_sha256(&ee.cert, 1)
        )],
    );
    d.add_records(
        "danetaok.test",
        &[&format!(
            "_25._tcp.mx TLSA 2 0 1 {}",
            tlsa_sha256(&ta.ca, 0)
        )],
    );

    let v = check_domain_with(&["dane.test"]);
    let tls = find(&v, "starttls:mx.dane.test");
    assert_eq!(tls["result"], "fail", "{v}");
    let evidence = tls["evidence"].as_str().unwrap();
    assert!(evidence.starts_with("TLSv1.3, TLS13_"), "{evidence}");
    assert!(
        evidence.contains("does not match its TLSA records"),
        "{evidence}"
    );
    let plain = find(&v, "starttls:mx2.dane.test");
    assert_eq!(plain["result"], "fail", "{v}");
    assert!(
        plain["evidence"]
            .as_str()
            .unwrap()
            .contains("offers no STARTTLS")
    );
    assert_eq!(v["posture"], "none", "{v}");
    drop(dane_pki);

    let v = check_domain_with(&["daneok.test"]);
    assert_eq!(v["posture"], "dane", "{v}");
    assert!(
        evidence_of(&v, "starttls:mx.daneok.test")
            .contains("certificate matches TLSA 3 1 1 (DANE)")
    );

    let v = check_domain_with(&["danetaok.test"]);
    assert_eq!(v["posture"], "dane", "{v}");
    assert!(evidence_of(&v, "starttls:mx.danetaok.test").contains("matches TLSA 2 0 1"));

    let ca = web.ca.display().to_string();
    let v = check_domain_with(&["webpki.test", "--ca-file", &ca]);
    assert_eq!(v["posture"], "verified", "{v}");
    let tls = find(&v, "starttls:mx.webpki.test");
    assert_eq!(tls["result"], "pass", "{v}");
    assert!(
        tls["evidence"]
            .as_str()
            .unwrap()
            .contains("certificate valid for mx.webpki.test (WebPKI)")
    );
    // Without the test CA the same certificate encrypts but proves nothing.
    let v = check_domain_with(&["webpki.test"]);
    assert_eq!(v["posture"], "encrypted", "{v}");
    assert!(evidence_of(&v, "starttls:mx.webpki.test").contains("encrypted, not authenticated"));

    // Postfix MX hosts whose certificates fail WebPKI under a CA we trust: expired, and
    // issued for another name. Encrypted, not authenticated.
    let bad = scratch("badcerts");
    let expired = expired_pki(bad.path(), "mx.expired.test");
    let _pf1 = postfix_mx("127.0.3.17", Some(&expired));
    let other_dir = bad.path().join("other");
    std::fs::create_dir_all(&other_dir).unwrap();
    let other = pki(&other_dir, "mx.someone-else.test");
    let _pf2 = postfix_mx("127.0.3.18", Some(&other));
    let b = check_domain_with(&["expired.test", "--ca-file", expired.ca.to_str().unwrap()]);
    assert_eq!(b["posture"], "encrypted", "{b}");
    let e = evidence_of(&b, "starttls:mx.expired.test");
    assert!(e.contains("Expired") || e.contains("expired"), "{e}");
    assert!(e.contains("valid until 2021-01-01"), "{e}");
    let b = check_domain_with(&["wrongname.test", "--ca-file", other.ca.to_str().unwrap()]);
    assert_eq!(b["posture"], "encrypted", "{b}");
    let e = evidence_of(&b, "starttls:mx.wrongname.test");
    assert!(
        e.contains("NotValidForName") || e.contains("not valid for"),
        "{e}"
    );

    // On the trust list, as a partner: its agreed CA, or its agreed key, makes it `trusted`;
    // a key that is not the agreed one makes it an impostor (`none`).
    let key = evidence_of(&v, "starttls:mx.webpki.test")
        .split("key ")
        .nth(1)
        .and_then(|k| k.split(';').next())
        .expect("the probe shows the key pin")
        .to_string();
    let listed = |extra: &str| {
        let dir = scratch("trust");
        let cfg = dir.path().join("sluis.toml");
        std::fs::write(
            &cfg,
            format!(
                "[ownership]\ntoken = \"{}\"\n\n[[domains]]\nname = \"webpki.test\"\n\
                 class = \"partner\"\n{extra}",
                common::dns::TOKEN
            ),
        )
        .unwrap();
        check_domain_with(&["webpki.test", "--config", cfg.to_str().unwrap()])
    };
    let v = listed(&format!("tls_ca_file = \"{}\"\n", web.ca.display()));
    assert_eq!(v["posture"], "trusted", "{v}");
    assert!(
        evidence_of(&v, "starttls:mx.webpki.test").contains("agreed CA"),
        "{v}"
    );
    let v = listed(&format!("tls_pins = [\"{key}\"]\n"));
    assert_eq!(v["posture"], "trusted", "{v}");
    let v = listed(&format!("tls_pins = [\"sha256:{}\"]\n", "ab".repeat(32)));
    assert_eq!(v["posture"], "none", "{v}");
    assert!(evidence_of(&v, "starttls:mx.webpki.test").contains("not the server agreed"));

    // A DANE-TA record of a CA that did not issue the certificate: the chain does not verify.
    d.set_records(
        "danetaok.test",
        &[
            &format!("_sluis TXT \"{}\"", common::dns::TOKEN),
            "@ MX 10 mx",
            "mx A 127.0.3.13",
            &format!("_25._tcp.mx TLSA 2 0 1 {}", tlsa_sha256(&web.ca, 0)),
        ],
    );
    // (knot reloads the zone in the background: ask until the new record is served)
    let v = wait_for(std::time::Duration::from_secs(15), || {
        let v = check_domain_with(&["danetaok.test"]);
        (v["posture"] != "dane").then_some(v)
    })
    .expect("the new TLSA record is served");
    assert_eq!(v["posture"], "none", "{v}");
    assert!(
        evidence_of(&v, "starttls:mx.danetaok.test")
            .contains("no certificate in the chain matches"),
        "{v}"
    );

    // Lookups that fail, bogus data and no probe are never a weak level.
    assert_eq!(check_domain_with(&["bogus.test"])["posture"], "unknown");
    assert_eq!(check_domain("daneok.test")["posture"], "unknown");
    assert_eq!(check_domain_with(&["nullmx.test"])["posture"], "none");
}

/// Publishes stsok.test's records with MTA-STS policy id `id`.
fn announce_sts(d: &common::dns::DnsTopology, id: u32) {
    d.set_records(
        "stsok.test",
        &[
            &format!("_sluis TXT \"{}\"", common::dns::TOKEN),
            "@ MX 10 mx",
            "mx A 127.0.3.14",
            &format!("mta-sts A {}", common::web::WEB_IP),
            &format!("_mta-sts TXT \"v=STSv1; id={id}\""),
        ],
    );
}

const STS_ENFORCE: &str = "version: STSv1\r\nmode: enforce\r\nmx: mx.stsok.test\r\nmx: *.backup.stsok.test\r\nmax_age: 86400\r\n";

#[test]
fn mta_sts_policies_are_fetched_checked_cached_and_never_redirected() {
    use common::web::web;
    let d = dns();
    let w = web();
    // Postfix MX hosts with certificates from the web server's CA.
    let _mxes = postfix_mxes(&[("127.0.3.14", Some(&w.pki)), ("127.0.3.16", Some(&w.pki))]);
    let ca = w.ca().display().to_string();
    // A configuration whose spool holds the policy cache, as the gateway's does.
    let dir = scratch("sts");
    let cfg = dir.path().join("sluis.toml");
    std::fs::create_dir_all(dir.path().join("spool")).unwrap();
    std::fs::write(
        &cfg,
        format!(
            "[server]\nspool_dir = \"{}\"\n",
            dir.path().join("spool").display()
        ),
    )
    .unwrap();
    let cfg = cfg.display().to_string();
    let check = |domain: &str| check_domain_with(&[domain, "--ca-file", &ca, "--config", &cfg]);

    w.set_policy("stsok.test", Some(STS_ENFORCE));
    let v = check("stsok.test");
    assert_eq!(v["posture"], "mta-sts", "{v}");
    let policy = find(&v, "mta-sts-policy");
    assert_eq!(policy["result"], "pass");
    let evidence = policy["evidence"].as_str().unwrap();
    assert!(evidence.contains("mode enforce, mx mx.stsok.test *.backup.stsok.test, max_age 86400 (fetched from https://mta-sts.stsok.test/"), "{evidence}");
    assert!(
        evidence_of(&v, "starttls:mx.stsok.test")
            .contains("listed in the MTA-STS policy (enforce)")
    );

    // The web server goes away, then the id changes: the cached policy stays in force.
    w.set_policy("stsok.test", None);
    let v = check("stsok.test");
    assert_eq!(v["posture"], "mta-sts", "same id: from the cache {v}");
    assert!(evidence_of(&v, "mta-sts-policy").contains("cached (same id)"));
    announce_sts(d, 2);
    let v = wait_for(std::time::Duration::from_secs(15), || {
        let v = check("stsok.test");
        evidence_of(&v, "mta-sts-policy")
            .contains("kept because")
            .then_some(v)
    })
    .expect("the new id is seen and the refetch fails");
    assert_eq!(v["posture"], "mta-sts", "{v}");
    assert!(evidence_of(&v, "mta-sts-policy").contains("404"), "{v}");

    // A new policy under the new id: testing mode proves nothing beyond WebPKI.
    w.set_policy(
        "stsok.test",
        Some("version: STSv1\nmode: testing\nmx: mx.stsok.test\nmax_age: 600\n"),
    );
    let v = check("stsok.test");
    assert_eq!(v["posture"], "verified", "{v}");
    assert_eq!(find(&v, "mta-sts-policy")["result"], "info");

    // Enforce, but the MX is not listed: an MTA-STS sender must not deliver there.
    announce_sts(d, 3);
    w.set_policy(
        "stsok.test",
        Some("version: STSv1\nmode: enforce\nmx: *.elsewhere.test\nmax_age: 600\n"),
    );
    let v = wait_for(std::time::Duration::from_secs(15), || {
        let v = check("stsok.test");
        (v["posture"] == "none").then_some(v)
    })
    .expect("the unlisted MX makes the domain unusable under its own policy");
    assert!(evidence_of(&v, "starttls:mx.stsok.test").contains("matches no mx pattern"));

    // A redirect is never followed: no policy, the domain is only as good as WebPKI.
    w.set_policy("stsredir.test", Some(STS_ENFORCE));
    w.redirect("stsredir.test");
    let v = check("stsredir.test");
    assert_eq!(v["posture"], "verified", "{v}");
    let p = find(&v, "mta-sts-policy");
    assert_eq!(p["result"], "fail");
    assert!(
        p["evidence"]
            .as_str()
            .unwrap()
            .contains("redirects are not followed"),
        "{p}"
    );
}

#[test]
fn resolver_validation_trusts_the_ad_bit_and_notices_a_resolver_that_does_not_validate() {
    let d = dns();
    let dir = scratch("ad");
    let cfg = dir.path().join("sluis.toml");
    std::fs::write(&cfg, "[dns]\nvalidation = \"resolver\"\n").unwrap();
    let ask = |domain: &str, resolver: &str| -> Value {
        let out = Command::new(SLUIS)
            .args(["check-domain", domain, "--format", "json", "--no-probe"])
            .args(["--resolver", resolver, "--trust-anchor"])
            .arg(d.anchor_path())
            .arg("--config")
            .arg(&cfg)
            .output()
            .unwrap();
        assert_success(&out, "sluis check-domain");
        serde_json::from_slice(&out.stdout).unwrap()
    };
    // unbound validates: its AD bit makes answers secure, unsigned zones insecure, and bogus
    // ones a failure.
    let v = ask("daneok.test", common::dns::RESOLVER);
    assert_eq!(find(&v, "mx")["dnssec"], "secure", "{v}");
    assert_eq!(find(&v, "dane:mx.daneok.test")["dnssec"], "secure", "{v}");
    let v = ask("unsigned.test", common::dns::RESOLVER);
    assert_eq!(find(&v, "mx")["dnssec"], "insecure", "{v}");
    let v = ask("bogus.test", common::dns::RESOLVER);
    assert_eq!(find(&v, "mx")["result"], "fail", "{v}");
    // A resolver that does not validate never sets AD: nothing is secure, never falsely so.
    let v = ask("daneok.test", common::dns::PASSTHROUGH_RESOLVER);
    assert_eq!(find(&v, "mx")["dnssec"], "insecure", "{v}");

    // The gateway's readiness says so.
    let sink = Sink::start(&[]);
    let (gw, admin) = Sluis::start_with_admin(
        sink.port,
        &format!(
            "[dns]\nvalidation = \"resolver\"\nresolver = \"{}\"\ntrust_anchor_file = \"{}\"\n",
            common::dns::PASSTHROUGH_RESOLVER,
            d.anchor_path().display()
        ),
    );
    let (status, body) = http_get(admin, "/readyz");
    assert!(status.contains("503"), "{status} {body}");
    assert!(body.contains("without the AD bit"), "{body}");
    // and so does its start-up check, in the log (the policy needs postures).
    let logged = wait_for(std::time::Duration::from_secs(15), || {
        gw.log()
            .contains("DNSSEC validation does not work")
            .then_some(())
    });
    assert!(logged.is_some(), "{}", gw.log());
}

#[test]
fn trust_anchors_as_administrators_have_them() {
    let d = dns();
    let dir = scratch("anchors");
    let commented: String = d
        .keymgr_dnskey
        .lines()
        .map(|l| {
            // unbound's autotrust style: TTL and class swapped, state in a comment.
            l.replacen(" DNSKEY ", " IN 172800 DNSKEY ", 1) + " ;{id = 1 (ksk)} ;;state=2\n"
        })
        .collect();
    for (name, text) in [
        ("keymgr.key", d.keymgr_dnskey.clone()),
        (
            "autotrust.key",
            format!("; autotrust trust anchor file\n{commented}"),
        ),
        ("test.ds", format!("{}\n", d.test_ds)),
    ] {
        let file = dir.path().join(name);
        std::fs::write(&file, &text).unwrap();
        let v = check_domain_anchored(&["dane.test", "--no-probe"], &file);
        let mx = find(&v, "mx");
        assert_eq!(mx["dnssec"], "secure", "{name}: {v}");
    }
    // A DS that matches no key is no anchor: nothing validates, nothing is "insecure".
    let wrong = d.test_ds.replace(
        d.test_ds.split_whitespace().last().unwrap(),
        &"0".repeat(64),
    );
    let file = dir.path().join("wrong.ds");
    std::fs::write(&file, format!("{wrong}\n")).unwrap();
    let v = check_domain_anchored(&["dane.test", "--no-probe"], &file);
    assert_eq!(v["posture"], "unknown", "{v}");
    // A line that is no anchor is named with its file and line.
    let bad = dir.path().join("bad.key");
    std::fs::write(&bad, format!("{}test. A 192.0.2.1\n", d.keymgr_dnskey)).unwrap();
    let cfg = dir.path().join("sluis.toml");
    std::fs::write(
        &cfg,
        format!("[dns]\ntrust_anchor_file = \"{}\"\n", bad.display()),
    )
    .unwrap();
    let out = config_check(&cfg);
    let said = String::from_utf8_lossy(&out.stderr);
    let line = d.keymgr_dnskey.lines().count() + 1;
    assert!(
        said.contains(&format!(
            "dns.trust_anchor_file: {}:{line}: a A record",
            bad.display()
        )),
        "{said}"
    );
}
