//! The gateway inspects every message as `sluis scan` does: the corpus through a running
//! Sluis, with the verdicts in the transaction log and the findings in the metrics, and not one
//! identifier in the log.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn gateway_inspects_the_corpus_like_scan_and_logs_no_identifier() {
    let sink = Sink::start(&[]);
    let (sluis, admin) = Sluis::start_with_admin(sink.port, DELIVER_ALL);
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string("tests/corpus/manifest.json").unwrap())
            .unwrap();
    let entries = manifest.as_array().unwrap();
    let mut c = Smtp::connect(sluis.port);
    c.hello();
    // Messages with their own inspection settings are left to the corpus test.
    let plain: Vec<_> = entries.iter().filter(|e| e["config"].is_null()).collect();
    for e in &plain {
        let file = e["file"].as_str().unwrap();
        let raw = std::fs::read(format!("tests/corpus/messages/{file}")).unwrap();
        let r = c.send_message("sender@zkh.test", &["rcpt@huisarts.test"], &raw);
        assert!(r.starts_with("250"), "{file}: {r}");
    }
    let relayed = wait_for(Duration::from_secs(10), || {
        (sink.messages().len() >= plain.len()).then_some(())
    });
    assert!(relayed.is_some(), "not all relayed");

    let log = sluis.log();
    // The summary line: "sluis::pipeline::record: transaction id=..." (other lines may name
    // a module called transaction).
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(": transaction id="))
        .collect();
    assert_eq!(lines.len(), plain.len(), "one summary line per transaction");
    let expected_sensitive = plain.iter().filter(|e| e["sensitive"] == true).count();
    let logged_sensitive = lines
        .iter()
        .filter(|l| l.contains("sensitive=true"))
        .count();
    assert_eq!(logged_sensitive, expected_sensitive, "{log}");
    let expected_unin = plain
        .iter()
        .filter(|e| !e["uninspectable"].is_null())
        .count();
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("uninspectable=true"))
            .count(),
        expected_unin
    );

    // No identifier from the corpus anywhere in the log.
    for id in &corpus_identifiers() {
        assert!(!log.contains(id.as_str()), "identifier {id} in the log");
    }

    let (_, metrics) = http_get(admin, "/metrics");
    assert!(
        metrics.contains("sluis_findings_total{confidence=\"high\",detector=\"bsn\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("sluis_findings_total{confidence=\"high\",detector=\"uninspectable\"}")
    );
    assert!(metrics.contains(&format!("sluis_inspect_seconds_count {}", plain.len())));
}
