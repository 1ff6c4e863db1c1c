//! Whose domain a recipient is in, proven by DNS, and automated forwards that leave managed
//! ground (issue 5), against a real DNSSEC-signed zone (knot) behind a real resolver (unbound).

mod common;

use std::process::Command;
use std::time::Duration;

use common::dns::{TOKEN, dns};
use common::*;

const WAIT: Duration = Duration::from_secs(15);

fn domains_config(extra_domains: &str) -> String {
    let d = dns();
    format!(
        "[dns]\nresolver = \"{}\"\ntrust_anchor_file = \"{}\"\ntimeout = \"2s\"\nmax_cache_ttl = \"1s\"\n\n\
         [ownership]\ntoken = \"{TOKEN}\"\ncheck_interval = \"1s\"\n\n\
         [[domains]]\nname = \"managed.test\"\nclass = \"managed\"\n\n\
         [[domains]]\nname = \"partner.test\"\nclass = \"partner\"\n\n\
         [[domains]]\nname = \"unsigned.test\"\nclass = \"managed\"\n\n\
         [[domains]]\nname = \"bogus.test\"\nclass = \"managed\"\n\n\
         [[domains]]\nname = \"pinned.test\"\nclass = \"managed\"\npinned_ns = [\"ns.test.\"]\n\n{extra_domains}\n\
         {FORWARD_RULE_ONLY}",
        common::dns::RESOLVER,
        d.anchor_path().display()
    )
}

/// The evidence of a check-domain result's first check.
fn evidence(v: &serde_json::Value) -> &str {
    v["checks"][0]["evidence"].as_str().unwrap_or("")
}

fn check_domain(config: &std::path::Path, domain: &str) -> serde_json::Value {
    let out = Command::new(SLUIS)
        .args(["check-domain", domain, "--format", "json", "--config"])
        .arg(config)
        .output()
        .unwrap();
    assert_success(&out, "sluis check-domain");
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn check_domain_reports_class_ownership_and_dnssec() {
    let dir = scratch("own");
    let cfg = dir.path().join("sluis.toml");
    std::fs::write(
        &cfg,
        domains_config("[[domains]]\nname = \"lapsing.test\"\nclass = \"managed\"\npinned_ns = [\"ns.elsewhere.example\"]\n"),
    )
    .unwrap();
    let m = check_domain(&cfg, "managed.test");
    assert_eq!(
        (m["class"].as_str(), m["ownership"].as_str()),
        (Some("managed"), Some("proven")),
        "{m}"
    );
    assert_eq!(m["checks"][0]["dnssec"], "secure", "{m}");
    let p = check_domain(&cfg, "partner.test");
    assert_eq!(
        (p["class"].as_str(), p["ownership"].as_str()),
        (Some("partner"), Some("proven"))
    );
    let u = check_domain(&cfg, "unsigned.test");
    assert_eq!(u["ownership"], "proven");
    assert_eq!(u["checks"][0]["dnssec"], "insecure", "{u}");
    let b = check_domain(&cfg, "bogus.test");
    assert_eq!(b["ownership"], "lapsed", "{b}");
    // unbound answers SERVFAIL for data that does not validate: the proof fails, never passes.
    assert!(evidence(&b).contains("_sluis.bogus.test failed"), "{b}");
    assert!(evidence(&b).contains("Server Failure"), "{b}");
    assert_eq!(b["effective_class"], "unmanaged");
    assert_eq!(check_domain(&cfg, "pinned.test")["ownership"], "proven");
    let l = check_domain(&cfg, "lapsing.test");
    assert_eq!(l["ownership"], "lapsed", "a changed NS set: {l}");
    assert!(evidence(&l).contains("pinned"), "{l}");
    let g = check_domain(&cfg, "gmail.com");
    assert_eq!(
        (g["class"].as_str(), g["ownership"].as_str()),
        (Some("personal"), Some("not-required"))
    );
}

/// An Exchange inbox rule's forward of a message (the shape Outlook produces).
fn inbox_rule_forward(token: &str) -> Vec<u8> {
    format!(
        "From: Dr. Jansen <jansen@managed.test>\r\nTo: <oud-adres@managed.test>\r\n\
         Subject: Uitslag {token}\r\nMessage-ID: <{token}@managed.test>\r\n\
         X-MS-Exchange-Inbox-Rules-Loop: oud-adres@managed.test\r\n\
         X-MS-Exchange-Generated-Message-Source: Mailbox Rules Agent\r\n\
         Auto-Submitted: auto-forwarded\r\n\r\nPatient BSN 123456782, uitslag bijgevoegd.\r\n"
    )
    .into_bytes()
}

/// The same text forwarded by a person: a new message, no automation headers.
fn person_forward(token: &str) -> Vec<u8> {
    format!(
        "From: Dr. Jansen <jansen@managed.test>\r\nTo: <collega@gmail.com>\r\n\
         Subject: Fwd: Uitslag {token}\r\nMessage-ID: <{token}@managed.test>\r\n\r\n\
         ---------- Doorgestuurd bericht ----------\r\nPatient BSN 123456782, uitslag bijgevoegd.\r\n"
    )
    .into_bytes()
}

#[test]
fn inbox_rule_forward_to_webmail_is_refused_a_persons_forward_is_not() {
    let sink = Sink::start(&[]);
    let sluis = Sluis::start(sink.port, &domains_config(""));
    let mut c = Smtp::connect(sluis.port);
    c.hello();
    let r = c.send_message(
        "jansen@managed.test",
        &["patient.x@gmail.com"],
        &inbox_rule_forward("fw-1"),
    );
    assert!(
        r.starts_with("550 5.7.1 <patient.x@gmail.com>: Automated forward refused"),
        "{r}"
    );
    assert!(r.contains("gmail.com is personal"), "{r}");
    assert!(r.contains("rule automated-forward"), "{r}");
    assert!(r.contains("exchange-inbox-rule"), "{r}");
    let r = c.send_message(
        "jansen@managed.test",
        &["collega@gmail.com"],
        &person_forward("fw-2"),
    );
    assert!(r.starts_with("250"), "{r}");
    assert_eq!(sink.wait_token("fw-2@managed.test", 1, WAIT).len(), 1);
    // An inbox rule forwarding within the organisation's proven domain passes.
    let r = c.send_message(
        "jansen@managed.test",
        &["afdeling@managed.test"],
        &inbox_rule_forward("fw-3"),
    );
    assert!(r.starts_with("250"), "{r}");
    assert_eq!(sink.wait_token("fw-3@managed.test", 1, WAIT).len(), 1);
    assert!(sink.with_token("fw-1@managed.test").is_empty());
    // To a partner: not managed by us, refused too.
    let r = c.send_message(
        "jansen@managed.test",
        &["x@partner.test"],
        &inbox_rule_forward("fw-4"),
    );
    assert!(r.starts_with("550 5.7.1"), "{r}");
    assert!(
        !sluis.log().contains("patient.x@gmail.com"),
        "full address in the log"
    );
}

#[test]
fn mixed_forward_delivers_to_managed_and_notifies_the_sender_of_the_rest() {
    let sink = Sink::start(&[]);
    let sluis = Sluis::start(sink.port, &domains_config(""));
    let mut c = Smtp::connect(sluis.port);
    c.hello();
    let r = c.send_message(
        "jansen@managed.test",
        &["afdeling@managed.test", "prive@hotmail.com"],
        &inbox_rule_forward("fw-mixed"),
    );
    assert!(r.starts_with("250"), "{r}");
    let delivered = sink.wait_token("fw-mixed@managed.test", 2, WAIT);
    let to_managed: Vec<_> = delivered
        .iter()
        .filter(|m| m.contains("X-Rcpt-Args: <afdeling@managed.test>"))
        .collect();
    assert_eq!(to_managed.len(), 1);
    assert!(
        !delivered
            .iter()
            .any(|m| m.contains("X-Rcpt-Args: <prive@hotmail.com>"))
    );
    let dsn: Vec<_> = delivered
        .iter()
        .filter(|m| m.contains("X-Rcpt-Args: <jansen@managed.test>"))
        .collect();
    assert_eq!(dsn.len(), 1, "{delivered:?}");
    assert!(dsn[0].contains("Final-Recipient: rfc822; prive@hotmail.com"));
    assert!(dsn[0].contains("Status: 5.7.1"));
    assert!(!dsn[0].contains("123456782"), "the DSN repeats the body");
}

#[test]
fn managed_domain_whose_token_disappears_lapses_and_mail_to_it_is_refused() {
    let topo = dns();
    let sink = Sink::start(&[]);
    let (sluis, admin) = Sluis::start_with_admin(
        sink.port,
        &domains_config("[[domains]]\nname = \"lapsing.test\"\nclass = \"managed\"\n"),
    );
    let mut c = Smtp::connect(sluis.port);
    c.hello();
    let r = c.send_message(
        "jansen@managed.test",
        &["oud@lapsing.test"],
        &inbox_rule_forward("lapse-1"),
    );
    assert!(r.starts_with("250"), "while proven: {r}");

    // Someone else now holds the domain: the token is gone.
    topo.set_records("lapsing.test", &["_sluis TXT \"someone-else\""]);
    let lapsed = wait_for(WAIT, || {
        sluis
            .log()
            .lines()
            .any(|l| l.contains("domain ownership lapsed") && l.contains("domain=lapsing.test"))
            .then_some(())
    });
    assert!(lapsed.is_some(), "no lapse logged:\n{}", sluis.log());
    let (_, metrics) = http_get(admin, "/metrics");
    assert!(
        metrics.contains("sluis_domain_ownership_ok{domain=\"lapsing.test\"} 0"),
        "{metrics}"
    );
    assert!(metrics.contains("sluis_domain_ownership_ok{domain=\"managed.test\"} 1"));
    // bogus.test's DNSSEC is broken: its lookups fail, which the partner alert watches.
    assert!(
        metrics.contains("sluis_domain_dns_failing{class=\"managed\",domain=\"bogus.test\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("sluis_domain_dns_failing{class=\"managed\",domain=\"managed.test\"} 0")
    );
    // Any mail to it is held back now, refused per recipient at RCPT: a person's message and
    // an automated forward alike, while the other recipients still get theirs.
    assert!(c.cmd("MAIL FROM:<jansen@managed.test>").starts_with("250"));
    let r = c.cmd("RCPT TO:<oud@lapsing.test>");
    assert!(
        r.starts_with("550 5.7.1 <oud@lapsing.test>: Recipient refused: the ownership proof of lapsing.test has lapsed"),
        "{r}"
    );
    assert!(c.cmd("RCPT TO:<afdeling@managed.test>").starts_with("250"));
    assert!(c.cmd("DATA").starts_with("354"));
    c.send(&person_forward("lapse-2"));
    c.send(b".\r\n");
    assert!(c.reply().starts_with("250"));
    let (_, metrics) = http_get(admin, "/metrics");
    assert!(
        metrics.contains("sluis_recipients_refused_total{rule=\"lapsed-domain\"} 1"),
        "{metrics}"
    );
    let delivered = sink.wait_token("lapse-2@managed.test", 1, WAIT);
    assert_eq!(delivered.len(), 1);
    assert!(!delivered[0].contains("X-Rcpt-Args: <oud@lapsing.test>"));
    let cfg = sluis.config.clone();
    assert_eq!(check_domain(&cfg, "lapsing.test")["ownership"], "lapsed");

    // The proof returns: so does the domain, forwards included.
    topo.set_records("lapsing.test", &[&format!("_sluis TXT \"{TOKEN}\"")]);
    let back = wait_for(WAIT, || {
        let mut c = Smtp::connect(sluis.port);
        c.hello();
        c.cmd("MAIL FROM:<jansen@managed.test>");
        c.cmd("RCPT TO:<oud@lapsing.test>")
            .starts_with("250")
            .then_some(())
    });
    assert!(back.is_some(), "not proven again:\n{}", sluis.log());
    let r = c.send_message(
        "jansen@managed.test",
        &["oud@lapsing.test"],
        &inbox_rule_forward("lapse-3"),
    );
    assert!(r.starts_with("250"), "{r}");
    assert_eq!(sink.wait_token("lapse-3@managed.test", 1, WAIT).len(), 1);
}

#[test]
fn readyz_and_startup_report_whether_dnssec_works() {
    let sink = Sink::start(&[]);
    let (good, admin) = Sluis::start_with_admin(sink.port, &domains_config(""));
    let (status, body) = http_get(admin, "/readyz");
    assert!(status.contains("200"), "{status} {body}");
    assert!(body.contains("\"dns\":\"ok\""), "{body}");
    assert!(good.log().contains("DNSSEC validation works"));

    // A resolver that does not answer: Sluis still starts, says why, and is not ready.
    let dead =
        domains_config("").replace(common::dns::RESOLVER, &format!("127.0.0.1:{}", free_port()));
    let (bad, admin2) = Sluis::start_with_admin(sink.port, &dead);
    assert!(
        bad.log().contains("DNSSEC validation does not work"),
        "{}",
        bad.log()
    );
    let (status, body) = http_get(admin2, "/readyz");
    assert!(status.contains("503"), "{status} {body}");
    assert!(body.contains("resolver does not answer"), "{body}");
}
