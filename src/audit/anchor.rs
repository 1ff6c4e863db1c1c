//! Anchoring (DESIGN §15): each instance writes its chain head to the store every minute and
//! at shutdown, so that a log cut short or rewritten shows against the store even when the
//! head file went with it (someone with the disk can rewrite file and head together, not the
//! database).

use std::path::PathBuf;

use super::{AuditLog, line_hash};
use crate::store::{Anchor, Store, StoreError};

/// Writes `log`'s head as `instance`'s anchor unless it is `last` already; the anchor written.
pub async fn write(
    store: &Store,
    instance: &str,
    log: &AuditLog,
    last: Option<&Anchor>,
) -> Result<Option<Anchor>, StoreError> {
    let Some((seq, hash)) = log.head() else {
        return Ok(None);
    };
    if last.is_some_and(|a| a.seq == seq && a.hash == hash) {
        return Ok(None);
    }
    let anchor = Anchor {
        instance: instance.to_string(),
        seq,
        hash,
        at: crate::store::now_unix(),
    };
    store.put_anchor(&anchor).await?;
    Ok(Some(anchor))
}

/// What is wrong with the chain in `files` (oldest first) given the store's `anchor`: the
/// anchored record must be there with the hash it had. `None` when it is.
pub fn check(files: &[PathBuf], anchor: &Anchor) -> Option<String> {
    let when = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(anchor.at),
    );
    let mut last = None;
    for file in files {
        let data = std::fs::read(file).ok()?;
        for line in data.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let Some(seq) = serde_json::from_slice::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v.get("seq").and_then(serde_json::Value::as_u64))
            else {
                continue;
            };
            if seq == anchor.seq {
                return (line_hash(line) != anchor.hash).then(|| {
                    format!(
                        "record {seq} differs from the one anchored in the store at {when}: the \
                         log was rewritten"
                    )
                });
            }
            last = Some(seq);
        }
    }
    Some(match last {
        Some(l) if l < anchor.seq => format!(
            "truncated: the log ends at record {l}, but the store's anchor of {when} names \
             record {}",
            anchor.seq
        ),
        Some(_) => format!(
            "record {} anchored in the store at {when} is not in these files (give the \
             rotated files too)",
            anchor.seq
        ),
        None => format!(
            "the log is empty, but the store's anchor of {when} names record {}",
            anchor.seq
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_with(records: usize, what: &str) -> (tempfile::TempDir, AuditLog) {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(&dir.path().join("audit.jsonl"), 1 << 20).unwrap();
        for n in 0..records {
            let mut r = serde_json::Map::new();
            r.insert("n".into(), n.into());
            r.insert("what".into(), what.into());
            log.append_all(vec![r]).unwrap();
        }
        (dir, log)
    }

    #[test]
    fn the_anchored_record_must_be_there_unchanged() {
        let (_dir, log) = log_with(5, "original");
        let (seq, hash) = log.head().unwrap();
        assert_eq!(seq, 4);
        let anchor = Anchor {
            instance: "gw-0".into(),
            seq,
            hash,
            at: 1_700_000_000,
        };
        let files = vec![log.path().to_path_buf()];
        assert_eq!(check(&files, &anchor), None);
        // Later records are fine: the anchor trails the log.
        let mut r = serde_json::Map::new();
        r.insert("n".into(), 5.into());
        log.append_all(vec![r]).unwrap();
        assert_eq!(check(&files, &anchor), None);

        // The last two records cut off, head file and all.
        let text = std::fs::read_to_string(log.path()).unwrap();
        let kept: Vec<&str> = text.lines().take(3).collect();
        std::fs::write(log.path(), kept.join("\n") + "\n").unwrap();
        std::fs::remove_file(super::super::head_path(log.path())).unwrap();
        let why = check(&files, &anchor).unwrap();
        assert!(
            why.starts_with("truncated: the log ends at record 2"),
            "{why}"
        );

        // Rewritten: a different record 4 in its place.
        let (_d2, other) = log_with(6, "rewritten");
        let why = check(&[other.path().to_path_buf()], &anchor).unwrap();
        assert!(why.contains("record 4 differs"), "{why}");
    }
}
