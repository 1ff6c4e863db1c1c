//! Running Sluis the way an administrator does: config checks, reloads, shutdown; and the
//! STARTTLS boundary, which must not let plaintext leak into the TLS session.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const WAIT: Duration = Duration::from_secs(10);

#[test]
fn config_check_accepts_the_example_and_names_file_line_key_on_error() {
    let out = Command::new(SLUIS)
        .args(["config", "check", "--config", "config/sluis.toml"])
        .output()
        .unwrap();
    assert_success(&out, "sluis config check");
    assert!(String::from_utf8_lossy(&out.stdout).contains("[upstream.lanes.default]"));

    let dir = scratch("cfg");
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[server]\nhostname = \"gw.test\"\n\n[limits]\nrecipeints = 5\n",
    )
    .unwrap();
    let out = config_check(&bad);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "{}:5: limits.recipeints: unknown field",
            bad.display()
        )),
        "{err}"
    );

    // Flags override the file, and `config check` shows the result.
    let out = Command::new(SLUIS)
        .args([
            "config",
            "check",
            "--config",
            "config/sluis.toml",
            "--listen",
            "127.0.0.9:2600",
        ])
        .args([
            "--upstream",
            "127.0.0.1:10099",
            "--allow-net",
            "10.1.0.0/16",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("listen = [\"127.0.0.9:2600\"]"), "{text}");
    assert!(text.contains("address = \"127.0.0.1:10099\""));
    assert!(text.contains("allow_networks = [\"10.1.0.0/16\"]"));
}

/// Every key of the effective configuration is documented in config/sluis.toml.
#[test]
fn example_config_documents_every_key() {
    let out = Command::new(SLUIS)
        .args(["config", "check", "--admin", "127.0.0.1:9925"])
        .output()
        .unwrap();
    let effective = String::from_utf8_lossy(&out.stdout).to_string();
    let example = std::fs::read_to_string("config/sluis.toml").unwrap();
    let mut missing = Vec::new();
    for line in effective.lines() {
        let Some((key, _)) = line.split_once(" = ") else {
            continue;
        };
        let key = key.trim();
        // A key is documented by a line setting it, or, for arrays of tables, by an example
        // table header (`[[domains]]`, `[[inspect.identifiers]]`), commented out or not.
        let documented = example.lines().any(|l| {
            let l = l.trim_start_matches(['#', ' ']);
            l.starts_with(&format!("{key} ="))
                || l.starts_with(&format!("{key}="))
                || (l.starts_with("[[") && l.trim_end_matches("]]").ends_with(key))
        });
        if !documented {
            missing.push(key.to_string());
        }
    }
    // Keys that only exist when set.
    for key in [
        "cert_file",
        "key_file",
        "credentials_file",
        "ca_file",
        "server_name",
    ] {
        if !example.contains(&format!("# {key} =")) && !example.contains(&format!("{key} =")) {
            missing.push(key.into());
        }
    }
    assert!(missing.is_empty(), "undocumented keys: {missing:?}");
    // The effective policy is printed: the NTA 7516 profile when none is configured.
    for rule in [
        "automated-forward",
        "confidential-to-personal",
        "confidential-posture-unknown",
        "confidential-unauthenticated",
        "confidential-authenticated",
    ] {
        assert!(
            effective.contains(&format!("name = \"{rule}\"")),
            "{rule} not printed"
        );
    }
}

#[test]
fn sighup_reloads_and_a_bad_config_is_refused_keeping_the_old() {
    let sink = Sink::start(&[]);
    let sluis = Sluis::start(sink.port, "[limits]\nmessage_size = 30000\n");
    let mut old = Smtp::connect(sluis.port);
    assert!(old.hello().contains("SIZE 30000"));

    let text = std::fs::read_to_string(&sluis.config).unwrap();
    std::fs::write(&sluis.config, text.replace("30000", "40000")).unwrap();
    sluis.signal("HUP");
    let reloaded = wait_for(WAIT, || {
        let mut c = Smtp::connect(sluis.port);
        c.hello().contains("SIZE 40000").then_some(())
    });
    assert!(
        reloaded.is_some(),
        "reload not applied; log:\n{}",
        sluis.log()
    );
    // The session that was open keeps working.
    assert!(old.cmd("NOOP").starts_with("250"));

    std::fs::write(&sluis.config, "[limits]\nmessage_size = \"lots\"\n").unwrap();
    sluis.signal("HUP");
    let refused = wait_for(WAIT, || {
        sluis.log().contains("reload refused").then_some(())
    });
    assert!(refused.is_some(), "log:\n{}", sluis.log());
    assert!(
        sluis.log().contains("message_size"),
        "the error names the key"
    );
    let mut c = Smtp::connect(sluis.port);
    assert!(
        c.hello().contains("SIZE 40000"),
        "the running config was not kept"
    );
}

#[test]
fn sigterm_finishes_the_transaction_in_progress_then_exits() {
    let sink = Sink::start(&[]);
    let mut sluis = Sluis::start(sink.port, "");
    let mut busy = Smtp::connect(sluis.port);
    busy.hello();
    busy.start_data("a@org.test", &["b@partner.test"]);
    busy.send(b"Subject: in flight\r\nMessage-ID: <sigterm-1@org.test>\r\n\r\nfirst half\r\n");
    let mut idle = Smtp::connect(sluis.port);
    idle.hello();

    sluis.signal("TERM");
    // The idle session is told to come back later.
    let r = idle.reply();
    assert!(r.starts_with("421 4.3.2"), "{r}");
    // New connections are no longer accepted.
    let refused = wait_for(WAIT, || {
        std::net::TcpStream::connect(("127.0.0.1", sluis.port))
            .is_err()
            .then_some(())
    });
    assert!(refused.is_some(), "still accepting after SIGTERM");
    // The transaction in progress completes and is relayed.
    busy.send(b"second half\r\n.\r\n");
    let r = busy.reply();
    assert!(r.starts_with("250 2.0.0"), "{r}");
    assert_eq!(sink.wait_token("sigterm-1@org.test", 1, WAIT).len(), 1);
    busy.send(b"QUIT\r\n");
    let status = sluis.wait_exit(WAIT);
    assert!(status.is_some_and(|s| s.success()), "did not exit cleanly");
}

#[test]
fn sigterm_cuts_off_a_stalled_session_after_the_grace_period() {
    let sink = Sink::start(&[]);
    let mut sluis = Sluis::start(sink.port, "[timeouts]\nshutdown_grace = \"1s\"\n");
    let mut stalled = Smtp::connect(sluis.port);
    stalled.hello();
    stalled.start_data("a@org.test", &["b@partner.test"]);
    stalled.send(b"Subject: never finished\r\n\r\n");
    sluis.signal("TERM");
    assert!(
        sluis.wait_exit(WAIT).is_some(),
        "hung past the grace period"
    );
    assert!(sink.messages().is_empty());
}

/// RFC 3207 / CVE-2011-0411: commands pipelined after STARTTLS arrive in plaintext and must be
/// thrown away, not executed inside the TLS session.
#[tokio::test]
async fn starttls_discards_commands_pipelined_in_plaintext() {
    let sink = Sink::start(&[]);
    let sluis = Sluis::start(sink.port, "");
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", sluis.port))
        .await
        .unwrap();
    let mut plain = BufReader::new(tcp);
    let mut line = String::new();
    plain.read_line(&mut line).await.unwrap();
    plain
        .get_mut()
        .write_all(b"EHLO attacker.test\r\n")
        .await
        .unwrap();
    loop {
        line.clear();
        plain.read_line(&mut line).await.unwrap();
        if line.starts_with("250 ") {
            break;
        }
    }
    plain
        .get_mut()
        .write_all(b"STARTTLS\r\nMAIL FROM:<injected@attacker.test>\r\n")
        .await
        .unwrap();
    line.clear();
    plain.read_line(&mut line).await.unwrap();
    assert!(line.starts_with("220 2.0.0"), "{line}");

    let tcp = plain.into_inner();
    let connector = sluis::wire::tls::connector(None);
    let name = rustls_pki_types::ServerName::try_from("sluis.test").unwrap();
    let tls = connector.connect(name, tcp).await.expect("TLS handshake");
    let mut tls = BufReader::new(tls);
    // Had the injected MAIL been executed inside TLS, its reply would come first.
    tls.get_mut().write_all(b"NOOP\r\n").await.unwrap();
    line.clear();
    tls.read_line(&mut line).await.unwrap();
    assert!(
        line.starts_with("250 2.0.0 Ok"),
        "first reply in TLS: {line}"
    );
    // And the session state was reset: MAIL needs a new EHLO.
    tls.get_mut()
        .write_all(b"MAIL FROM:<a@org.test>\r\n")
        .await
        .unwrap();
    line.clear();
    tls.read_line(&mut line).await.unwrap();
    assert!(line.starts_with("503 5.5.1"), "{line}");
    assert!(
        sluis
            .log()
            .contains("discarded commands pipelined after STARTTLS")
    );
}

#[test]
fn admin_listener_serves_health_and_metrics_that_count_messages() {
    let sink = Sink::start(&[]);
    // A policy that never needs a posture: ready without a resolver.
    let (sluis, admin) = Sluis::start_with_admin(sink.port, DELIVER_ALL);
    let (status, body) = http_get(admin, "/healthz");
    assert!(status.contains("200"), "{status}");
    assert!(body.contains("\"status\":\"ok\""));

    let mut c = Smtp::connect(sluis.port);
    c.hello();
    let r = c.send_message(
        "a@org.test",
        &["b@partner.test"],
        b"Subject: counted\r\n\r\nx\r\n",
    );
    assert!(r.starts_with("250"), "{r}");
    let (status, metrics) = http_get(admin, "/metrics");
    assert!(status.contains("200"));
    assert!(
        metrics.contains("sluis_messages_total{rule=\"deliver\",verdict=\"deliver\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("sluis_smtp_sessions_active 1"));

    let (status, body) = http_get(admin, "/readyz");
    assert!(status.contains("200"), "{status} {body}");
    assert!(body.contains("\"upstream:default\":\"ok\""), "{body}");
    assert!(body.contains("\"quarantine\":\"ok\""), "{body}");
    assert!(body.contains("\"audit\":\"ok\""), "{body}");
    assert!(!body.contains("\"dns\""), "{body}");
    // Without review.token_file the review API does not exist.
    let (status, body) = http_get(admin, "/quarantine");
    assert!(status.contains("404"), "{status} {body}");
    assert!(body.contains("review API is off"), "{body}");
    assert!(metrics.contains("sluis_upstream_seconds_count{lane=\"default\"} 1"));
    assert!(
        !metrics.contains("partner.test"),
        "an address leaked into metrics"
    );
}

#[test]
fn readyz_says_what_is_not_ready() {
    // No upstream listening on this port.
    let (sluis, admin) = Sluis::start_with_admin(free_port(), "");
    let (status, body) = http_get(admin, "/readyz");
    assert!(status.contains("503"), "{status}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["ready"], false);
    assert_eq!(v["checks"]["spool"], "ok");
    assert_eq!(v["checks"]["quarantine"], "ok");
    assert_ne!(v["checks"]["upstream:default"], "ok");
    // The NTA 7516 profile needs postures, so DNS must answer; nothing listens on 127.0.0.1:53.
    assert_ne!(v["checks"]["dns"], "ok", "{v}");
    let (status, _) = http_get(admin, "/healthz");
    assert!(status.contains("200"), "alive even when not ready");
    drop(sluis);
}

#[test]
fn audit_verify_accepts_a_log_of_the_previous_version() {
    // Written by the version before typed audit records (tests/fixtures/audit-v1/README.md).
    let dir = scratch("audit-v1");
    for f in ["audit.jsonl", "audit.jsonl.head"] {
        std::fs::copy(format!("tests/fixtures/audit-v1/{f}"), dir.path().join(f)).unwrap();
    }
    let log = dir.path().join("audit.jsonl");
    let out = Command::new(SLUIS)
        .args(["audit", "verify"])
        .arg(&log)
        .output()
        .unwrap();
    assert_success(&out, "sluis audit verify");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("intact: 11 record(s)"), "{said}");
    // And the chain still catches an edit in it.
    let text = std::fs::read_to_string(&log).unwrap();
    std::fs::write(&log, text.replacen("wrong recipient", "right recipient", 1)).unwrap();
    let out = Command::new(SLUIS)
        .args(["audit", "verify"])
        .arg(&log)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}

#[test]
fn debians_root_trust_anchors_are_accepted_as_they_are() {
    // dns-root-data, installed by tests/run.sh: the IANA root keys as DNSKEY and as DS.
    let dir = scratch("root-anchors");
    for file in ["/usr/share/dns/root.key", "/usr/share/dns/root.ds"] {
        assert!(
            std::path::Path::new(file).exists(),
            "{file} missing: tests/run.sh installs dns-root-data"
        );
        let cfg = dir.path().join("sluis.toml");
        std::fs::write(&cfg, format!("[dns]\ntrust_anchor_file = \"{file}\"\n")).unwrap();
        assert_success(&config_check(&cfg), file);
    }
}

/// A process that ended between a reply and its outcome record (the reply no longer waits for
/// it) leaves decisions without an outcome; the next start records each outcome once: from
/// the notes of replies where they tell (reply being written; reply read), otherwise as
/// unknown, and the chain still verifies.
#[test]
fn a_start_records_outcomes_the_last_run_did_not_write_as_far_as_the_notes_of_replies_tell() {
    let sink = Sink::start(&[]);
    let mut s = Sluis::start(sink.port, DELIVER_ALL);
    let mut c = Smtp::connect(s.port);
    c.hello();
    let reply = c.send_message(
        "a@org.test",
        &["b@partner.test"],
        b"Subject: x\r\n\r\nx\r\n",
    );
    assert!(reply.starts_with("250"), "{reply}");
    s.signal("TERM");
    s.wait_exit(Duration::from_secs(10)).expect("sluis stops");
    // What a crash after the decisions and before the outcome leaves.
    let path = s.dir.path().join("spool/audit/audit.jsonl");
    let log = sluis::audit::AuditLog::open(&path, 64 << 20).unwrap();
    let decisions = ["CRASHED1", "WRITTEN1", "READ1"].map(|t| {
        serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&format!(
            r#"{{"event":"decision","transaction":"{t}","client":"127.0.0.1","decision":"deliver"}}"#
        ))
        .unwrap()
    });
    log.append_all(decisions.to_vec()).unwrap();
    drop(log);
    // What the notes of replies say of two of them: one reply being written, one read.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut notes = std::fs::OpenOptions::new()
        .append(true)
        .open(s.dir.path().join("spool/replies"))
        .unwrap();
    use std::io::Write;
    write!(
        notes,
        "+ {now} {k1} WRITTEN1\n+ {now} {k2} READ1\n- {k2}\n",
        k1 = "11".repeat(16),
        k2 = "22".repeat(16)
    )
    .unwrap();
    drop(notes);

    s.spawn();
    s.signal("TERM");
    s.wait_exit(Duration::from_secs(10)).expect("sluis stops");
    s.spawn();
    let records = audit_records(&path);
    let unknown: Vec<&serde_json::Value> = records
        .iter()
        .filter(|r| r["event"] == "outcome" && r["unknown"] == true)
        .collect();
    assert_eq!(unknown.len(), 2, "{unknown:?}");
    assert_eq!(unknown[0]["transaction"], "CRASHED1");
    assert!(unknown[0].get("positive_reply").is_none());
    assert_eq!(unknown[1]["transaction"], "WRITTEN1");
    assert_eq!(unknown[1]["positive_reply"], "written");
    // The delivered message's outcome was written (after its reply), and not marked unknown;
    // READ1's reply was read, so its outcome is known.
    let known: Vec<&serde_json::Value> = records
        .iter()
        .filter(|r| r["event"] == "outcome" && r["unknown"] != true)
        .collect();
    assert_eq!(known.len(), 2, "{known:?}");
    assert_eq!(known[1]["transaction"], "READ1");
    assert_eq!(known[1]["reply"], 250);
    assert_eq!(known[1]["positive_reply"], "read");
    assert!(s.log().contains("recorded as unknown"), "{}", s.log());
    audit_verifies(&s);
}

/// A reply cut off after the message went out (the client never shows it read it) and a
/// kill -9: the client's retry of the same message gets the positive reply again and is not
/// delivered twice. A resend after the reply was read, and a message without a Message-ID, are
/// delivered again: they may be meant.
#[test]
fn a_retry_after_a_reply_the_client_did_not_read_is_answered_not_delivered_twice() {
    let sink = Sink::start(&[]);
    let (mut s, admin) = Sluis::start_with_admin(sink.port, DELIVER_ALL);
    let msg = b"Message-ID: <retry-1@org.test>\r\nSubject: retry\r\n\r\nTOKEN-RETRY\r\n";
    let send_and_drop = |port: u16, content: &[u8]| {
        let mut c = Smtp::connect(port);
        c.hello();
        let reply = c.send_message("a@org.test", &["b@partner.test", "c@partner.test"], content);
        // Dropped without another command, as when a crash cuts the reply off.
        drop(c);
        reply
    };
    let first = send_and_drop(s.port, msg);
    assert!(first.starts_with("250"), "{first}");
    assert_eq!(sink.wait_token("TOKEN-RETRY", 1, WAIT).len(), 1);
    s.kill9();
    s.spawn();

    // The retry, recipients in another order: answered, not delivered.
    let mut c = Smtp::connect(s.port);
    c.hello();
    let retry = c.send_message("a@org.test", &["c@partner.test", "b@partner.test"], msg);
    assert!(
        retry.starts_with("250 2.0.0 Ok: already accepted as "),
        "{retry}"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(sink.with_token("TOKEN-RETRY").len(), 1, "delivered twice");
    // The client reads this reply (its next command says so): a resend now is meant.
    assert!(c.cmd("RSET").starts_with("250"));
    let resend = c.send_message("a@org.test", &["b@partner.test", "c@partner.test"], msg);
    assert!(resend.starts_with("250"), "{resend}");
    assert!(!resend.contains("already accepted"), "{resend}");
    assert_eq!(sink.wait_token("TOKEN-RETRY", 2, WAIT).len(), 2);
    c.cmd("QUIT");

    // Cut off again; then the same content to fewer recipients is another message, and the
    // same envelope again is a retry.
    assert!(!send_and_drop(s.port, msg).contains("already accepted"));
    assert_eq!(sink.wait_token("TOKEN-RETRY", 3, WAIT).len(), 3);
    let mut c = Smtp::connect(s.port);
    c.hello();
    let r = c.send_message("a@org.test", &["b@partner.test"], msg);
    assert!(!r.contains("already accepted"), "{r}");
    c.cmd("QUIT");
    assert_eq!(sink.wait_token("TOKEN-RETRY", 4, WAIT).len(), 4);
    assert!(send_and_drop(s.port, msg).contains("already accepted"));

    // A client that keeps the session a while after the reply and then closes without QUIT (as
    // Postfix's connection cache does) has read it: the same message again is meant.
    let kept = b"Message-ID: <kept-1@org.test>\r\n\r\nTOKEN-KEPT\r\n";
    let mut c = Smtp::connect(s.port);
    c.hello();
    assert!(
        c.send_message("a@org.test", &["b@partner.test"], kept)
            .starts_with("250")
    );
    std::thread::sleep(Duration::from_millis(1300));
    drop(c);
    std::thread::sleep(Duration::from_millis(200));
    let mut c = Smtp::connect(s.port);
    c.hello();
    let again = c.send_message("a@org.test", &["b@partner.test"], kept);
    assert!(!again.contains("already accepted"), "{again}");
    drop(c);
    assert_eq!(sink.wait_token("TOKEN-KEPT", 2, WAIT).len(), 2);

    // Without a Message-ID nothing is noted: the same content twice is delivered twice.
    let bare = b"Subject: bare\r\n\r\nTOKEN-BARE\r\n";
    assert!(send_and_drop(s.port, bare).starts_with("250"));
    let again = send_and_drop(s.port, bare);
    assert!(!again.contains("already accepted"), "{again}");
    assert_eq!(sink.wait_token("TOKEN-BARE", 2, WAIT).len(), 2);

    // The audit log says what happened to the retries, and the chain verifies.
    let path = s.dir.path().join("spool/audit/audit.jsonl");
    let records = audit_records(&path);
    let delivered: Vec<&serde_json::Value> = records
        .iter()
        .filter(|r| r["event"] == "message" && r["message_id"] == "retry-1@org.test")
        .map(|r| &r["transaction"])
        .collect();
    assert_eq!(delivered.len(), 4, "one per delivery");
    let repeats: Vec<&serde_json::Value> = records
        .iter()
        .filter(|r| r["event"] == "outcome" && r.get("repeat_of").is_some())
        .collect();
    assert_eq!(repeats.len(), 2, "{repeats:?}");
    assert_eq!(repeats[0]["reply"], 250);
    assert_eq!(&repeats[0]["repeat_of"], delivered[0]);
    assert!(retry.contains(delivered[0].as_str().unwrap()), "{retry}");
    assert_eq!(&repeats[1]["repeat_of"], delivered[2]);
    let (_, metrics) = http_get(admin, "/metrics");
    assert!(metrics.contains("sluis_repeats_total 2"), "{metrics}");
    audit_verifies(&s);
}

/// Every record of an audit log.
fn audit_records(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn audit_verifies(s: &Sluis) {
    let out = Command::new(SLUIS)
        .args(["audit", "verify", "--config"])
        .arg(&s.config)
        .output()
        .unwrap();
    assert_success(&out, "sluis audit verify");
}

/// A crash of the machine, not only of the process: what the audit log had not yet synced is
/// gone from it. Every record that was durable before its reply is back after the next start
/// of anything that opens the log (here `sluis audit verify`), put back from the commit journal,
/// and the chain verifies.
#[test]
fn records_a_crash_of_the_machine_takes_from_the_audit_log_come_back_from_its_journal() {
    let sink = Sink::start(&[]);
    // The journal's checkpoint (once a second) must not fall between the messages and the
    // kill, or there is nothing to lose: on a stalled machine, try again with a new instance.
    for attempt in 0..5 {
        let mut s = Sluis::start(sink.port, DELIVER_ALL);
        for n in 0..3 {
            let mut c = Smtp::connect(s.port);
            c.hello();
            let msg = format!("Message-ID: <jnl-{attempt}-{n}@org.test>\r\n\r\nJNL\r\n");
            let r = c.send_message("a@org.test", &["b@partner.test"], msg.as_bytes());
            assert!(r.starts_with("250"), "{r}");
        }
        s.kill9();
        let path = s.dir.path().join("spool/audit/audit.jsonl");
        let journal = std::fs::read(s.dir.path().join("spool/audit/audit.jsonl.journal")).unwrap();
        assert_eq!(
            &journal[..8],
            b"SLUISJ1\n",
            "the journal starts with a frame"
        );
        // Frame 0: magic, cycle, inode, then the log offset up to which the log is synced.
        let synced = u64::from_le_bytes(journal[24..32].try_into().unwrap()) as usize;
        let before = std::fs::read(&path).unwrap();
        if synced >= before.len() {
            continue;
        }
        // What the disk had when the machine went down: the log up to its checkpoint.
        std::fs::write(&path, &before[..synced]).unwrap();
        audit_verifies(&s);
        let after = audit_records(&path);
        for n in 0..3 {
            let id = format!("jnl-{attempt}-{n}@org.test");
            let message = after
                .iter()
                .find(|r| r["event"] == "message" && r["message_id"] == id.as_str())
                .unwrap_or_else(|| panic!("the message record of {id} is lost"));
            let tx = &message["transaction"];
            assert!(
                after
                    .iter()
                    .any(|r| r["event"] == "decision" && &r["transaction"] == tx),
                "the decision of {id} is lost"
            );
        }
        let restored = std::fs::read(&path).unwrap();
        assert!(restored.len() > synced && before.starts_with(&restored));
        return;
    }
    panic!("a checkpoint fell between the messages and the kill five times");
}

/// A reload that names the same audit file keeps its log, writer thread and commit journal, so
/// records written after a reload come back after a crash of the machine too. (A first version
/// opened the log anew: its writer could never take the journal, which the previous
/// configuration's services kept alive, and synced the log by itself from then on.)
#[test]
fn after_a_reload_the_audit_log_is_still_journaled() {
    let sink = Sink::start(&[]);
    let mut s = Sluis::start(sink.port, DELIVER_ALL);
    let send = |port: u16, id: &str| {
        let mut c = Smtp::connect(port);
        c.hello();
        let msg = format!("Message-ID: <{id}@org.test>\r\n\r\nRELOADED\r\n");
        let r = c.send_message("a@org.test", &["b@partner.test"], msg.as_bytes());
        assert!(r.starts_with("250"), "{r}");
    };
    send(s.port, "before-reload");
    s.signal("HUP");
    let reloaded = wait_for(WAIT, || {
        s.log().contains("configuration reloaded").then_some(())
    });
    assert!(reloaded.is_some(), "{}", s.log());
    let journal_path = s.dir.path().join("spool/audit/audit.jsonl.journal");
    // The journal's frames name the messages sent after the reload.
    let mut n = 0;
    let taken = wait_for(WAIT, || {
        n += 1;
        send(s.port, &format!("after-reload-{n}"));
        let journal = std::fs::read(&journal_path).unwrap();
        let id = format!("after-reload-{n}@org.test");
        journal
            .windows(id.len())
            .any(|w| w == id.as_bytes())
            .then_some(())
    });
    assert!(
        taken.is_some(),
        "no frame after the reload; log:\n{}",
        s.log()
    );
    s.kill9();
    let path = s.dir.path().join("spool/audit/audit.jsonl");
    let journal = std::fs::read(&journal_path).unwrap();
    let synced = u64::from_le_bytes(journal[24..32].try_into().unwrap()) as usize;
    let before = std::fs::read(&path).unwrap();
    std::fs::write(&path, &before[..synced]).unwrap();
    audit_verifies(&s);
    let after = audit_records(&path);
    let last = format!("after-reload-{n}@org.test");
    assert!(
        after
            .iter()
            .any(|r| r["event"] == "message" && r["message_id"] == last.as_str()),
        "the last message's record is lost"
    );
}
