//! The DNS evidence `sluis check-domain` shows for a domain (issue 4, DNS part): MX, null and
//! implicit MX, DANE availability per MX host, the MTA-STS announcement and the NTA 7516
//! record, each with its DNSSEC status, against the knot + unbound test zone.

mod common;

use std::process::Command;

use common::dns::{TLSA_HASH, dns};
use common::*;
use serde_json::Value;

fn check_domain(domain: &str) -> Value {
    check_domain_with(&[domain, "--no-probe"])
}

fn check_domain_with(args: &[&str]) -> Value {
    let d = dns();
    let out = Command::new(SLUIS)
        .arg("check-domain")
        .args(args)
        .args(["--format", "json", "--resolver", common::dns::RESOLVER])
        .arg("--trust-anchor")
        .arg(d.anchor_path())
        .output()
        .unwrap();
    assert_success(&out, "sluis check-domain");
    serde_json::from_slice(&out.stdout).unwrap()
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
    assert!(
        find(&null, "mx")["evidence"]
            .as_str()
            .unwrap()
            .contains("null MX")
    );

    let unsigned = check_domain("unsigned.test");
    let mx = find(&unsigned, "mx");
    assert_eq!(
        (mx["result"].as_str(), mx["dnssec"].as_str()),
        (Some("info"), Some("insecure")),
        "{unsigned}"
    );
    assert!(mx["evidence"].as_str().unwrap().contains("implicit MX"));
    assert!(
        find(&unsigned, "dane")["evidence"]
            .as_str()
            .unwrap()
            .contains("DANE does not apply")
    );

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

    // managed.test: signed, no MX, no TLSA for the implicit MX.
    let managed = check_domain("managed.test");
    assert_eq!(find(&managed, "mx")["dnssec"], "secure");
    assert!(
        find(&managed, "dane:managed.test")["evidence"]
            .as_str()
            .unwrap()
            .contains("no TLSA")
    );
    assert_eq!(
        find(&managed, "nta7516-record")["evidence"],
        "no NTA 7516 record"
    );
}

#[test]
fn starttls_probe_tells_verified_encrypted_and_plaintext_mx_hosts_apart() {
    let dir = scratch("mxpki");
    let p = pki(dir.path(), "mx.dane.test");
    // mx.dane.test is 127.0.3.1: a STARTTLS server with a certificate for its name (Sluis).
    let sink = Sink::start(&[]);
    let _mx = Sluis::start_at(
        "127.0.3.1:25".parse().unwrap(),
        sink.port,
        &tls_section(&p),
        &[],
    );
    // mx2.dane.test is 127.0.3.2: no STARTTLS at all (smtp-sink).
    let _mx2 = Sink::start_at("127.0.3.2:25".parse().unwrap(), &[]);

    let ca = p.ca.display().to_string();
    let v = check_domain_with(&["dane.test", "--ca-file", &ca]);
    let tls = find(&v, "starttls:mx.dane.test");
    assert_eq!(tls["result"], "pass", "{v}");
    let evidence = tls["evidence"].as_str().unwrap();
    assert!(evidence.starts_with("TLSv1.3, TLS13_"), "{evidence}");
    assert!(
        evidence.contains("certificate valid for mx.dane.test (WebPKI)"),
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

    // Without the test CA the same certificate encrypts but proves nothing.
    let v = check_domain_with(&["dane.test"]);
    let tls = find(&v, "starttls:mx.dane.test");
    assert_eq!(tls["result"], "warn", "{v}");
    assert!(
        tls["evidence"]
            .as_str()
            .unwrap()
            .contains("encrypted, not authenticated")
    );
}
