//! After a crash: transactions whose decisions are in the log but whose outcome is not. The
//! reply goes out before the outcome is recorded (pipeline `act`, step 5), so a process that
//! ends in between leaves such a transaction; at the next start each gets an outcome record
//! saying it is unknown, so the log never silently lacks one.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};

use serde_json::Value;

use super::record::Outcome;
use super::{AuditError, AuditLog, Record};

/// How much of the log's end is read: a transaction's outcome follows its decisions within
/// moments, so anything older than this has its outcome or predates the last start.
const WINDOW: u64 = 16 << 20;

/// Appends an "outcome unknown" record for every transaction in the log's last [`WINDOW`]
/// bytes that has decisions and no outcome; how many. Call at start, before any transaction.
pub fn settle_unfinished(log: &AuditLog) -> Result<usize, AuditError> {
    let io = |source| AuditError::Io {
        path: log.path().display().to_string(),
        source,
    };
    let mut file = match std::fs::File::open(log.path()) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io(e)),
    };
    let len = file.metadata().map_err(io)?.len();
    let from = len.saturating_sub(WINDOW);
    file.seek(SeekFrom::Start(from)).map_err(io)?;
    let mut data = Vec::new();
    file.read_to_end(&mut data).map_err(io)?;
    // Starting mid-file, the first line is a fragment.
    let lines = data.split(|b| *b == b'\n').skip(usize::from(from > 0));
    let records = unfinished(lines)
        .into_iter()
        .map(|(transaction, client)| {
            Record::Outcome(Outcome {
                transaction,
                client,
                lanes: Vec::new(),
                reply: 0,
                unknown: true,
                repeat_of: None,
            })
            .to_fields()
        })
        .collect::<Vec<_>>();
    let n = records.len();
    if n > 0 {
        log.append_all(records)?;
    }
    Ok(n)
}

/// (transaction, client) of the transactions in `lines` with decisions and no outcome, in the
/// order of their first record.
fn unfinished<'a>(lines: impl Iterator<Item = &'a [u8]>) -> Vec<(String, String)> {
    let mut open: BTreeMap<String, (usize, String)> = BTreeMap::new();
    for (n, line) in lines.enumerate() {
        let Ok(record) = serde_json::from_slice::<Value>(line) else {
            continue;
        };
        let text = |key: &str| record.get(key).and_then(Value::as_str).unwrap_or("");
        let transaction = text("transaction").to_string();
        if transaction.is_empty() {
            continue;
        }
        match text("event") {
            "message" | "decision" => {
                let client = text("client").to_string();
                open.entry(transaction).or_insert((n, client));
            }
            "outcome" => {
                open.remove(&transaction);
            }
            _ => {}
        }
    }
    let mut left: Vec<(usize, String, String)> =
        open.into_iter().map(|(t, (n, c))| (n, t, c)).collect();
    left.sort();
    left.into_iter().map(|(_, t, c)| (t, c)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(event: &str, transaction: &str) -> String {
        format!(r#"{{"event":"{event}","transaction":"{transaction}","client":"127.0.0.1"}}"#)
    }

    #[test]
    fn a_transaction_without_an_outcome_gets_an_unknown_one_once() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(&dir.path().join("audit.jsonl"), 1 << 20).unwrap();
        assert_eq!(settle_unfinished(&log).unwrap(), 0, "an empty log");
        let mut records = Vec::new();
        for (event, t) in [
            ("message", "DONE"),
            ("decision", "DONE"),
            ("message", "CUT"),
            ("decision", "CUT"),
            ("outcome", "DONE"),
            ("review", "CUT"),
        ] {
            let v: serde_json::Map<String, Value> = serde_json::from_str(&line(event, t)).unwrap();
            records.push(v);
        }
        log.append_all(records).unwrap();
        assert_eq!(settle_unfinished(&log).unwrap(), 1);
        let text = std::fs::read_to_string(log.path()).unwrap();
        let last: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
        assert_eq!(last["event"], "outcome");
        assert_eq!(last["transaction"], "CUT");
        assert_eq!(last["unknown"], true);
        assert_eq!(last["reply"], 0);
        // The next start finds nothing more to settle, and the chain still verifies.
        assert_eq!(settle_unfinished(&log).unwrap(), 0);
        let report = super::super::verify::verify_files(&[log.path().to_path_buf()]);
        assert!(
            matches!(
                report.verdict,
                super::super::verify::Verdict::Intact { records: 7 }
            ),
            "{:?}",
            report.verdict
        );
    }
}
