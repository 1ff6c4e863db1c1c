//! After a crash: transactions whose decisions are in the log but whose outcome is not. The
//! reply goes out before the outcome is recorded (pipeline `act`, step 5), so a process that
//! ends in between leaves such a transaction; at the next start each gets an outcome record
//! saying what is known (from the notes of unread replies) or that it is unknown, so the log
//! never silently lacks one.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Seek, SeekFrom};

use serde_json::Value;

use super::record::{Outcome, PositiveReply};
use super::{AuditError, AuditLog, Record};

/// How much of the log's end is read: a transaction's outcome follows its decisions within
/// moments, so anything older than this has its outcome or predates the last start.
const WINDOW: u64 = 16 << 20;

/// Appends an outcome record for every transaction in the log's last [`WINDOW`] bytes that has
/// decisions and no outcome; how many. `replied`: the transactions whose positive reply was
/// noted before the process ended, and whether the client read it (`pipeline::repeats`). A
/// read reply is a known outcome (250); a noted one says the message had gone (or was held)
/// and the reply was being written; the rest are unknown. Call at start, before any
/// transaction.
pub fn settle_unfinished(
    log: &AuditLog,
    replied: &HashMap<String, bool>,
) -> Result<Settled, AuditError> {
    let io = |source| AuditError::Io {
        path: log.path().display().to_string(),
        source,
    };
    let mut file = match std::fs::File::open(log.path()) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Settled::default()),
        Err(e) => return Err(io(e)),
    };
    let len = file.metadata().map_err(io)?.len();
    let from = len.saturating_sub(WINDOW);
    file.seek(SeekFrom::Start(from)).map_err(io)?;
    let mut data = Vec::new();
    file.read_to_end(&mut data).map_err(io)?;
    // Starting mid-file, the first line is a fragment.
    let lines = data.split(|b| *b == b'\n').skip(usize::from(from > 0));
    let mut settled = Settled::default();
    let records = unfinished(lines)
        .into_iter()
        .map(|(transaction, client)| {
            let read = replied.get(&transaction).copied();
            match read {
                Some(true) => settled.read += 1,
                Some(false) => settled.written += 1,
                None => settled.unknown += 1,
            }
            Record::Outcome(Outcome {
                transaction,
                client,
                lanes: Vec::new(),
                reply: if read == Some(true) { 250 } else { 0 },
                unknown: read != Some(true),
                repeat_of: None,
                positive_reply: read.map(|r| {
                    if r {
                        PositiveReply::Read
                    } else {
                        PositiveReply::Written
                    }
                }),
            })
            .to_fields()
        })
        .collect::<Vec<_>>();
    if !records.is_empty() {
        log.append_all(records)?;
    }
    Ok(settled)
}

/// What `settle_unfinished` recorded.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Settled {
    /// Positive replies the client read.
    pub read: usize,
    /// Positive replies being written, not known to be read.
    pub written: usize,
    /// Nothing known.
    pub unknown: usize,
}

impl Settled {
    pub fn total(&self) -> usize {
        self.read + self.written + self.unknown
    }
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
    fn a_transaction_without_an_outcome_gets_one_once_saying_what_is_known() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(&dir.path().join("audit.jsonl"), 1 << 20).unwrap();
        let replied = HashMap::from([("READ".to_string(), true), ("SENT".to_string(), false)]);
        assert_eq!(
            settle_unfinished(&log, &replied).unwrap().total(),
            0,
            "an empty log"
        );
        let mut records = Vec::new();
        for (event, t) in [
            ("message", "DONE"),
            ("decision", "DONE"),
            ("message", "CUT"),
            ("decision", "CUT"),
            ("decision", "READ"),
            ("decision", "SENT"),
            ("outcome", "DONE"),
            ("review", "CUT"),
        ] {
            let v: serde_json::Map<String, Value> = serde_json::from_str(&line(event, t)).unwrap();
            records.push(v);
        }
        log.append_all(records).unwrap();
        assert_eq!(
            settle_unfinished(&log, &replied).unwrap(),
            Settled {
                read: 1,
                written: 1,
                unknown: 1
            }
        );
        let text = std::fs::read_to_string(log.path()).unwrap();
        let last: Vec<Value> = text
            .lines()
            .skip(8)
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let by = |t: &str| last.iter().find(|r| r["transaction"] == t).unwrap();
        assert!(last.iter().all(|r| r["event"] == "outcome"));
        assert_eq!(by("CUT")["unknown"], true);
        assert_eq!(by("CUT")["reply"], 0);
        assert!(by("CUT").get("positive_reply").is_none());
        assert_eq!(by("SENT")["unknown"], true);
        assert_eq!(by("SENT")["reply"], 0);
        assert_eq!(by("SENT")["positive_reply"], "written");
        assert!(by("READ").get("unknown").is_none());
        assert_eq!(by("READ")["reply"], 250);
        assert_eq!(by("READ")["positive_reply"], "read");
        // The next start finds nothing more to settle, and the chain still verifies.
        assert_eq!(settle_unfinished(&log, &replied).unwrap().total(), 0);
        let report = super::super::verify::verify_files(&[log.path().to_path_buf()]);
        assert!(
            matches!(
                report.verdict,
                super::super::verify::Verdict::Intact { records: 11 }
            ),
            "{:?}",
            report.verdict
        );
    }
}
