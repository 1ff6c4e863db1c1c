//! Several Sluis processes on one PostgreSQL (DESIGN §15), end to end: real `sluis serve`
//! processes, a real PostgreSQL started by the harness, smtp-sink as the upstream, and the
//! review API and command line as reviewers use them.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use common::postgres::Postgres;
use common::*;

const TOKEN: &str = "review-token-for-the-store-tests";

/// Mail from hold.test is held for review; everything else is delivered (needs no store).
const HOLD_FROM_HOLD_TEST: &str = "[[policy.rules]]\nname = \"hold\"\naction = \"quarantine\"\n\
    reason = \"held for the store tests\"\nwhen = { sender_domains = [\"hold.test\"] }\n\n\
    [[policy.rules]]\nname = \"deliver\"\naction = \"deliver\"\n";

/// A database of its own on the binary's server, and the [store] section for it.
fn database(pg: &Postgres, name: &str) -> String {
    pg.psql(&format!("CREATE DATABASE {name}"));
    pg.store_toml()
        .replace("/postgres\"", &format!("/{name}\""))
}

fn server() -> &'static Postgres {
    static PG: std::sync::OnceLock<Postgres> = std::sync::OnceLock::new();
    PG.get_or_init(|| Postgres::start(2))
}

/// A Sluis on `store` with the review API; (Sluis, admin port).
fn gateway(sink: u16, store: &str) -> (Sluis, u16) {
    let dir = scratch("token");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let extra = format!(
        "{store}\n[review]\ntoken_file = \"{}\"\n\n[policy]\nnotify_quarantined = false\n\n\
         {HOLD_FROM_HOLD_TEST}",
        token_file.display()
    );
    let (s, admin) = Sluis::start_with_admin(sink, &extra);
    // The token file must outlive the start (the config check reads it again on reload).
    std::mem::forget(dir);
    (s, admin)
}

fn send(port: u16, from: &str, token: &str) -> String {
    let mut c = Smtp::connect(port);
    c.hello();
    let body = format!(
        "From: <{from}>\r\nTo: <p@example.test>\r\nSubject: store test\r\n\
         Message-ID: <{token}@org.test>\r\n\r\n{token}\r\n"
    );
    c.send_message(from, &["p@example.test"], body.as_bytes())
}

fn cli(s: &Sluis, args: &[&str]) -> std::process::Output {
    Command::new(SLUIS)
        .args(args)
        .arg("--config")
        .arg(&s.config)
        .output()
        .unwrap()
}

fn listed(s: &Sluis) -> Vec<Value> {
    let out = cli(s, &["quarantine", "list", "--format", "json"]);
    assert_success(&out, "sluis quarantine list");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Nothing of the message (its Message-ID holds `token`) is in the log, at debug level, with
/// the database driver's statements among the events.
fn assert_not_logged(s: &Sluis, token: &str) {
    let leaked: Vec<String> = s
        .log()
        .lines()
        .filter(|l| l.contains(token))
        .map(String::from)
        .collect();
    assert!(
        leaked.is_empty(),
        "the message leaked into the log: {leaked:?}"
    );
}

fn readyz(admin: u16) -> Value {
    let (_, body) = http_get(admin, "/readyz");
    serde_json::from_str(&body).unwrap_or(Value::Null)
}

#[test]
fn an_item_held_through_one_instance_is_released_once_through_the_other() {
    let pg = server();
    let store = database(pg, "two_instances");
    let mut sink = Sink::start(&[]);
    let (a, admin_a) = gateway(sink.port, &store);
    let (b, admin_b) = gateway(sink.port, &store);

    let reply = send(a.port, "jansen@hold.test", "TWOINST");
    assert!(
        reply.starts_with("250 2.0.0 Ok: held for review"),
        "{reply}"
    );
    // Instance B lists and shows what A held.
    let items = listed(&b);
    assert_eq!(items.len(), 1, "{items:?}");
    let id = items[0]["id"].as_str().unwrap().to_string();
    let out = cli(&b, &["quarantine", "show", &id, "--format", "json"]);
    assert_success(&out, "sluis quarantine show");
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["sender"], "jansen@hold.test");
    assert!(
        shown["headers"]
            .as_str()
            .unwrap()
            .contains("Message-ID: <TWOINST@org.test>")
    );

    // Two reviewers release it at once, one through each instance's API.
    let release = |port: u16, who: &'static str, id: String| {
        std::thread::spawn(move || {
            http_request(
                port,
                "POST",
                &format!("/quarantine/{id}/release"),
                Some(TOKEN),
                &format!("{{\"reviewer\":\"{who}\",\"reason\":\"checked with the sender\"}}"),
            )
        })
    };
    let ra = release(admin_a, "alice", id.clone());
    let rb = release(admin_b, "bob", id.clone());
    let (ra, rb) = (ra.join().unwrap(), rb.join().unwrap());
    let ok = [&ra, &rb]
        .iter()
        .filter(|r| r.starts_with("HTTP/1.1 200"))
        .count();
    assert_eq!(ok, 1, "not exactly one release:\n{ra}\n{rb}");
    let (winner, loser) = if ra.starts_with("HTTP/1.1 200") {
        ("alice", &rb)
    } else {
        ("bob", &ra)
    };
    assert!(loser.starts_with("HTTP/1.1 409"), "{loser}");
    assert!(
        loser.contains(&format!("release by {winner}")),
        "the second reviewer is not told who released it: {loser}"
    );
    // Delivered exactly once, and gone from both instances.
    assert_eq!(
        sink.wait_token("TWOINST", 1, Duration::from_secs(10)).len(),
        1
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(sink.with_token("TWOINST").len(), 1, "delivered twice");
    assert!(listed(&a).is_empty());
    let again = cli(
        &a,
        &[
            "quarantine",
            "release",
            &id,
            "--reviewer",
            "carol",
            "--reason",
            "x",
        ],
    );
    assert!(!again.status.success());
    let said = String::from_utf8_lossy(&again.stderr);
    assert!(said.contains(&format!("release by {winner}")), "{said}");
    assert_not_logged(&a, "TWOINST");
    assert_not_logged(&b, "TWOINST");
    sink.stop();
}

#[test]
fn postgres_killed_during_a_hold_defers_and_the_retry_is_held_once() {
    let mut pg = Postgres::start(3);
    let mut sink = Sink::start(&[]);
    let (a, admin) = gateway(sink.port, &pg.store_toml());
    assert!(
        wait_for(Duration::from_secs(15), || {
            (readyz(admin)["checks"]["quarantine"] == "ok").then_some(())
        })
        .is_some(),
        "{}",
        readyz(admin)
    );

    // A reviewer's long transaction holds the table, so the hold waits on the server; the
    // server is killed while it does.
    let mut locker = pg
        .psql_command(
            "postgres",
            "BEGIN; LOCK TABLE sluis_quarantine; SELECT pg_sleep(60);",
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let port = a.port;
    let sending = std::thread::spawn(move || send(port, "jansen@hold.test", "PGKILL"));
    std::thread::sleep(Duration::from_millis(700));
    pg.kill9();
    let _ = locker.wait();
    let reply = sending.join().unwrap();
    assert!(reply.starts_with("451 4.3.0"), "{reply}");

    // While it is down: mail that needs the store is deferred at once, other mail flows, and
    // /readyz says so.
    let started = Instant::now();
    let reply = send(a.port, "jansen@hold.test", "PGDOWN");
    assert!(reply.starts_with("451 4.3.0"), "{reply}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let reply = send(a.port, "jansen@org.test", "FLOWS");
    assert!(reply.starts_with("250"), "{reply}");
    assert_eq!(
        sink.wait_token("FLOWS", 1, Duration::from_secs(10)).len(),
        1
    );
    let down = wait_for(Duration::from_secs(15), || {
        let r = readyz(admin);
        let q = r["checks"]["quarantine"].as_str().unwrap_or("").to_string();
        (r["ready"] == false && q.starts_with("postgres store:")).then_some(q)
    });
    assert!(down.is_some(), "{}", readyz(admin));
    let (_, metrics) = http_get(admin, "/metrics");
    assert!(
        metrics.contains("sluis_store_up{kind=\"postgres\"} 0"),
        "{metrics}"
    );

    // Back: Sluis recovers by itself, and the client's retry is held once.
    pg.spawn();
    assert!(
        wait_for(Duration::from_secs(20), || {
            (readyz(admin)["checks"]["quarantine"] == "ok").then_some(())
        })
        .is_some(),
        "{}",
        readyz(admin)
    );
    let (_, metrics) = http_get(admin, "/metrics");
    assert!(
        metrics.contains("sluis_store_up{kind=\"postgres\"} 1"),
        "{metrics}"
    );
    let reply = send(a.port, "jansen@hold.test", "PGKILL");
    assert!(
        reply.starts_with("250 2.0.0 Ok: held for review"),
        "{reply}"
    );
    let items = listed(&a);
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(pg.psql("SELECT count(*) FROM sluis_quarantine"), "1");
    assert_not_logged(&a, "PGKILL");
    sink.stop();
}

#[test]
fn sluis_killed_mid_hold_leaves_no_half_item() {
    let pg = server();
    let store = database(pg, "kill_sluis");
    let sink = Sink::start(&[]);
    let (mut a, _) = gateway(sink.port, &store);
    let db = "kill_sluis";
    // The hold waits on a lock while Sluis is killed.
    let mut locker = pg
        .psql_command(
            db,
            "BEGIN; LOCK TABLE sluis_quarantine; SELECT pg_sleep(3);",
        )
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let port = a.port;
    let sending = std::thread::spawn(move || {
        let mut c = Smtp::connect(port);
        c.hello();
        c.start_data("jansen@hold.test", &["p@example.test"]);
        c.send(b"Subject: half\r\n\r\nHALFITEM\r\n.\r\n");
        c.reply()
    });
    std::thread::sleep(Duration::from_millis(700));
    a.kill9();
    let reply = sending.join().unwrap();
    assert!(!reply.starts_with("250"), "{reply}");
    let _ = locker.wait();
    assert_eq!(pg.psql_in(db, "SELECT count(*) FROM sluis_quarantine"), "0");
    a.spawn();
    let reply = send(a.port, "jansen@hold.test", "HALFITEM");
    assert!(
        reply.starts_with("250 2.0.0 Ok: held for review"),
        "{reply}"
    );
    assert_eq!(listed(&a).len(), 1);
}

#[test]
fn a_file_quarantine_moves_into_postgres_without_loss_or_duplicates() {
    let pg = server();
    let sink = Sink::start(&[]);
    let (mut files, _) = gateway(sink.port, "");
    for n in 0..3 {
        let reply = send(files.port, "jansen@hold.test", &format!("MOVE{n}"));
        assert!(
            reply.starts_with("250 2.0.0 Ok: held for review"),
            "{reply}"
        );
    }
    let before = listed(&files);
    assert_eq!(before.len(), 3);
    files.signal("TERM");
    files
        .wait_exit(Duration::from_secs(10))
        .expect("sluis stops");
    let qdir = files.dir.path().join("spool/quarantine");
    // An interrupted earlier move: one item is in the database and still in the directory.
    let keep = scratch("keep");
    let first = before[0]["id"].as_str().unwrap();
    for ext in ["eml", "json"] {
        std::fs::copy(
            qdir.join(format!("{first}.{ext}")),
            keep.path().join(format!("{first}.{ext}")),
        )
        .unwrap();
    }

    let store = database(pg, "moved");
    let (pgsluis, _) = gateway(sink.port, &store);
    let migrate = |dir: &std::path::Path| {
        Command::new(SLUIS)
            .args(["store", "migrate", "--from-files"])
            .arg(dir)
            .arg("--config")
            .arg(&pgsluis.config)
            .output()
            .unwrap()
    };
    let out = migrate(&qdir);
    assert_success(&out, "sluis store migrate --from-files");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("moved 3 item(s)"), "{said}");
    for ext in ["eml", "json"] {
        std::fs::copy(
            keep.path().join(format!("{first}.{ext}")),
            qdir.join(format!("{first}.{ext}")),
        )
        .unwrap();
    }
    let out = migrate(&qdir);
    assert_success(&out, "sluis store migrate --from-files, again");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("moved 0 item(s)") && said.contains("1 were there already"),
        "{said}"
    );

    let after = listed(&pgsluis);
    let ids = |v: &[Value]| {
        let mut ids: Vec<String> = v.iter().map(|i| i["id"].as_str().unwrap().into()).collect();
        ids.sort();
        ids
    };
    assert_eq!(ids(&after), ids(&before));
    let out = cli(&pgsluis, &["quarantine", "show", first, "--format", "json"]);
    assert_success(&out, "show a moved item");
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["message_id"], before[0]["message_id"]);
    let mid = before[0]["message_id"].as_str().unwrap();
    assert!(shown["headers"].as_str().unwrap().contains(mid), "{shown}");
    // Nothing left in the directory.
    let left: Vec<_> = std::fs::read_dir(&qdir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .collect();
    assert!(left.is_empty());
}

#[test]
fn a_schema_newer_than_the_binary_stops_sluis_with_a_clear_message() {
    let pg = server();
    let store = database(pg, "newer_schema");
    let sink = Sink::start(&[]);
    let (mut a, _) = gateway(sink.port, &store);
    a.signal("TERM");
    a.wait_exit(Duration::from_secs(10)).expect("sluis stops");
    pg.psql_in(
        "newer_schema",
        "INSERT INTO sluis_schema (version) VALUES (5)",
    );
    let out = Command::new(SLUIS)
        .arg("serve")
        .arg("--config")
        .arg(&a.config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("the database's schema is version 5, newer than this Sluis knows (4)"),
        "{said}"
    );
}

#[test]
fn the_audit_anchor_in_the_store_shows_a_cut_log_whose_head_went_too() {
    let pg = server();
    let store = database(pg, "anchors");
    let sink = Sink::start(&[]);
    let (mut a, _) = gateway(sink.port, &store);
    for n in 0..3 {
        assert!(send(a.port, "jansen@org.test", &format!("ANCHOR{n}")).starts_with("250"));
    }
    // Anchored at shutdown.
    a.signal("TERM");
    a.wait_exit(Duration::from_secs(10)).expect("sluis stops");
    let out = cli(&a, &["audit", "verify"]);
    assert_success(&out, "sluis audit verify");
    let anchored = pg.psql_in("anchors", "SELECT seq FROM sluis_audit_anchor");
    assert!(!anchored.is_empty(), "no anchor written");
    // The records are mirrored for search: all of them, as written.
    let log = a.dir.path().join("spool/audit/audit.jsonl");
    let written: Vec<Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(anchored, (written.len() - 1).to_string());
    let mirrored: Vec<Value> = pg
        .psql_in(
            "anchors",
            "SELECT record FROM sluis_audit_record ORDER BY seq",
        )
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(mirrored, written);
    let found = pg.psql_in(
        "anchors",
        "SELECT count(*) FROM sluis_audit_record WHERE record @> '{\"event\": \"decision\"}'",
    );
    assert_ne!(found, "0", "the mirror cannot be searched");

    // Someone with the disk cuts the last records and rewrites the head file to match: the
    // file alone looks intact.
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let kept = &lines[..lines.len() - 2];
    std::fs::write(&log, kept.join("\n") + "\n").unwrap();
    let last = kept.last().unwrap();
    let seq = serde_json::from_str::<Value>(last).unwrap()["seq"]
        .as_u64()
        .unwrap();
    let head = serde_json::json!({"seq": seq, "hash": sluis::audit::line_hash(last.as_bytes())});
    std::fs::write(
        a.dir.path().join("spool/audit/audit.jsonl.head"),
        format!("{head:<127}\n"),
    )
    .unwrap();
    let files_only = Command::new(SLUIS)
        .args(["audit", "verify"])
        .arg(&log)
        .output()
        .unwrap();
    assert_success(&files_only, "the cut log on its own verifies");
    let out = cli(&a, &["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("DAMAGED") && said.contains("store's anchor"),
        "{said}"
    );
}
