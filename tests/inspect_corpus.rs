//! The inspection corpus (tests/corpus, made by generate.py): every message must yield what
//! manifest.json says, through the library and through `sluis scan`.

mod common;

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use sluis::config::{IdentifierConfig, InspectConfig};
use sluis::inspect::{Detector, Inspector};

const CORPUS: &str = "tests/corpus";

fn manifest() -> Vec<Value> {
    let text = std::fs::read_to_string(Path::new(CORPUS).join("manifest.json")).unwrap();
    serde_json::from_str::<Value>(&text)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn config_for(entry: &Value) -> InspectConfig {
    let mut cfg = InspectConfig::default();
    let c = &entry["config"];
    if let Some(n) = c["max_decompressed_bytes"].as_u64() {
        cfg.max_decompressed_bytes = n;
    }
    if let Some(n) = c["max_parts"].as_u64() {
        cfg.max_parts = n as usize;
    }
    if let Some(n) = c["max_time_ns"].as_u64() {
        cfg.max_time = std::time::Duration::from_nanos(n);
    }
    if let Some(words) = c["care_keywords"].as_array() {
        cfg.care_keywords = words
            .iter()
            .map(|w| w.as_str().unwrap().to_string())
            .collect();
    }
    if let Some(ids) = c["identifiers"].as_array() {
        cfg.identifiers = ids
            .iter()
            .map(|i| serde_json::from_value::<IdentifierConfig>(i.clone()).unwrap())
            .collect();
    }
    cfg
}

#[test]
fn every_corpus_message_yields_what_the_manifest_says() {
    let mut failures = Vec::new();
    for entry in manifest() {
        let file = entry["file"].as_str().unwrap();
        let raw = std::fs::read(Path::new(CORPUS).join("messages").join(file)).unwrap();
        let inspector = Inspector::new(&config_for(&entry)).unwrap();
        let r = inspector.inspect(&raw);
        let show = || {
            r.findings
                .iter()
                .map(|f| format!("{}/{:?}@{}", f.detector.name(), f.confidence, f.location))
                .collect::<Vec<_>>()
                .join("; ")
        };
        let mut fail = |why: String| failures.push(format!("{file}: {why}\n    found: {}", show()));
        if r.sensitive != entry["sensitive"].as_bool().unwrap() {
            fail(format!("sensitive = {} (score {})", r.sensitive, r.score));
        }
        for m in entry["must"].as_array().unwrap() {
            let (det, conf, loc) = (
                m[0].as_str().unwrap(),
                m[1].as_str().unwrap(),
                m[2].as_str().unwrap(),
            );
            let hit = r.findings.iter().any(|f| {
                f.detector.name() == det
                    && format!("{:?}", f.confidence).eq_ignore_ascii_case(conf)
                    && f.location.contains(loc)
            });
            if !hit {
                fail(format!("no {det}/{conf} finding at {loc:?}"));
            }
        }
        for det in entry["must_not"].as_array().unwrap() {
            let det = det.as_str().unwrap();
            if r.findings.iter().any(|f| f.detector.name() == det) {
                fail(format!("unexpected {det} finding"));
            }
        }
        match entry["uninspectable"].as_str() {
            Some(reason) => {
                if !r
                    .findings
                    .iter()
                    .any(|f| f.detector == Detector::Uninspectable && f.masked.contains(reason))
                {
                    fail(format!("not marked uninspectable ({reason})"));
                }
            }
            None => {
                if r.uninspectable() {
                    fail("marked uninspectable".into());
                }
            }
        }
        if let Some(counts) = entry["config"]["expect_count"].as_object() {
            for (det, n) in counts {
                let found = r
                    .findings
                    .iter()
                    .filter(|f| f.detector.name() == det)
                    .count() as u64;
                if Some(found) != n.as_u64() {
                    fail(format!("{found} {det} findings, expected {n}"));
                }
            }
        }
        if let Some(n) = entry["config"]["expect_high_bsn"].as_u64() {
            let high = r
                .findings
                .iter()
                .filter(|f| {
                    f.detector == Detector::Bsn && f.confidence == sluis::inspect::Confidence::High
                })
                .count() as u64;
            if high != n {
                fail(format!("{high} high-confidence BSNs, expected {n}"));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn sluis_scan_reports_json_and_exit_status_without_raw_values() {
    let files: Vec<String> = manifest()
        .iter()
        .map(|e| format!("{CORPUS}/messages/{}", e["file"].as_str().unwrap()))
        .collect();
    let out = Command::new(env!("CARGO_BIN_EXE_sluis"))
        .args(["scan", "--format", "json"])
        .args(&files)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "some are sensitive");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), files.len());
    for l in &lines {
        for key in ["file", "sensitive", "score", "findings"] {
            assert!(l.get(key).is_some(), "{key} missing in {l}");
        }
    }
    for id in common::corpus_identifiers() {
        assert!(!stdout.contains(&id), "raw identifier {id} in scan output");
    }
    let neg: Vec<&String> = files.iter().filter(|f| f.contains("/neg-")).collect();
    let out = Command::new(env!("CARGO_BIN_EXE_sluis"))
        .arg("scan")
        .args(&neg)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = Command::new(env!("CARGO_BIN_EXE_sluis"))
        .args(["scan", "tests/corpus/does-not-exist.eml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does-not-exist.eml"));
}

#[test]
fn a_message_over_the_size_bound_is_uninspectable_not_clean() {
    let cfg = InspectConfig {
        max_message_size: 1000,
        ..Default::default()
    };
    let inspector = Inspector::new(&cfg).unwrap();
    let big = format!(
        "Subject: x\r\n\r\nPatient BSN 123456782\r\n{}",
        "y".repeat(2000)
    );
    let r = inspector.inspect(big.as_bytes());
    assert!(r.uninspectable());
    assert!(!r.sensitive);
    assert!(r.findings[0].masked.contains("inspect.max_message_size"));
    let small = inspector.inspect(b"Subject: x\r\n\r\nPatient BSN 123456782\r\n");
    assert!(small.sensitive && !small.uninspectable());
}

#[test]
fn scan_reads_standard_input() {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluis"))
        .args(["scan", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"Subject: x\r\n\r\nPatient BSN 123456782\r\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("-: SENSITIVE"));
}
