//! Tests of the sessions journal: reopen, a cut-off line, group commit, the bound, the lock.

use super::*;

fn dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[tokio::test]
async fn sessions_survive_a_reopen_and_a_cut_off_line_is_dropped() {
    let d = dir();
    let j = Journal::of(d.path());
    j.put("a", &serde_json::json!({"n": 1}), 2000)
        .await
        .unwrap();
    j.put("b", &serde_json::json!(2), 2000).await.unwrap();
    j.put("a", &serde_json::json!({"n": 3}), 2000)
        .await
        .unwrap();
    j.drop_key("b").await.unwrap();
    assert_eq!(
        j.get("a", 1000).await.unwrap(),
        Some(serde_json::json!({"n": 3}))
    );
    assert_eq!(j.get("a", 2000).await.unwrap(), None, "expired");
    drop(j);
    // What a crash in the middle of an append leaves.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(d.path().join("journal"))
        .unwrap();
    f.write_all(br#"{"k":"c","v":"#).unwrap();
    drop(f);
    let j = Journal::of(d.path());
    // Another process's view: the file, read afresh.
    assert_eq!(
        j.get("a", 1000).await.unwrap(),
        Some(serde_json::json!({"n": 3}))
    );
    assert_eq!(j.get("b", 1000).await.unwrap(), None);
    j.put("d", &serde_json::json!(4), 2000).await.unwrap();
    assert_eq!(j.get("d", 1000).await.unwrap(), Some(serde_json::json!(4)));
    assert_eq!(j.get("c", 1000).await.unwrap(), None);
    let data = std::fs::read_to_string(d.path().join("journal")).unwrap();
    assert!(
        data.lines()
            .all(|l| serde_json::from_str::<Line>(l).is_ok()),
        "{data}"
    );
}

#[tokio::test]
async fn many_changes_at_once_are_all_written_and_a_sweep_rewrites() {
    let d = dir();
    let j = Journal::of(d.path());
    let mut tasks = Vec::new();
    for i in 0..200u64 {
        let j = j.clone();
        tasks.push(tokio::spawn(async move {
            j.put(
                &format!("k{i}"),
                &serde_json::json!(i),
                if i % 2 == 0 { 10 } else { 5000 },
            )
            .await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(j.sweep(100).await.unwrap(), 100);
    let data = std::fs::read_to_string(d.path().join("journal")).unwrap();
    assert_eq!(
        data.lines().count(),
        100,
        "the rewrite keeps the live ones only"
    );
    let (live, _) = replay(data.as_bytes(), d.path());
    assert_eq!(live.get("k7", 100), Some(serde_json::json!(7)));
    assert_eq!(live.get("k8", 1), None);
}

#[tokio::test]
async fn new_sessions_beyond_the_bound_are_refused_and_live_ones_still_change() {
    let d = dir();
    let j = Journal {
        dir: d.path().to_path_buf(),
        max_sessions: 3,
        writer: tokio::sync::OnceCell::new(),
    };
    let now = crate::store::now_unix();
    j.put("old", &serde_json::json!(0), now - 1).await.unwrap();
    for k in ["a", "b", "c"] {
        j.put(k, &serde_json::json!(1), now + 60).await.unwrap();
    }
    // The expired one made room; now the bound holds.
    let refused = j.put("d", &serde_json::json!(1), now + 60).await;
    assert!(
        refused
            .unwrap_err()
            .to_string()
            .contains("3 sessions are live"),
        "a fourth live session"
    );
    assert_eq!(j.get("d", now).await.unwrap(), None);
    j.put("a", &serde_json::json!(2), now + 60).await.unwrap();
    assert_eq!(j.get("a", now).await.unwrap(), Some(serde_json::json!(2)));
    j.drop_key("b").await.unwrap();
    j.put("d", &serde_json::json!(3), now + 60).await.unwrap();
    assert_eq!(j.get("d", now).await.unwrap(), Some(serde_json::json!(3)));
}

#[tokio::test]
async fn another_writer_is_refused_and_old_session_files_are_taken_in() {
    let d = dir();
    std::fs::write(
        d.path().join("old.json"),
        br#"{"value":{"x":1},"expires":9000}"#,
    )
    .unwrap();
    let j = Journal::of(d.path());
    j.sweep(1).await.unwrap();
    assert_eq!(
        j.get("old", 1).await.unwrap(),
        Some(serde_json::json!({"x": 1}))
    );
    assert!(!d.path().join("old.json").exists());
    // Another process: its own lock file handle on the same file.
    let lock = File::options()
        .write(true)
        .open(d.path().join(".journal.lock"))
        .unwrap();
    assert!(lock.try_lock().is_err(), "the writer holds the lock");
    drop(j);
    // Dropped with the last store.
    lock.try_lock().unwrap();
    let j = Journal::of(d.path());
    assert!(matches!(j.claim().await, Err(JournalError::Taken { .. })));
    assert!(matches!(
        j.put("x", &serde_json::json!(1), 9).await,
        Err(JournalError::Taken { .. })
    ));
    assert_eq!(j.sweep(1).await.unwrap(), 0, "the other process sweeps");
    assert_eq!(
        j.get("old", 1).await.unwrap(),
        Some(serde_json::json!({"x": 1}))
    );
}
