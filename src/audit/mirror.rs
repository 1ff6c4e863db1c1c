//! The audit mirror (DESIGN §15): with PostgreSQL as the store, each instance copies its
//! audit records into the database every minute, so the review UI can search all instances'
//! records in one place. The files stay the source of truth (`sluis audit verify` reads them);
//! the mirror is a copy that may lag by a minute and is never read back into the chain.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use super::AuditLog;
use crate::store::{Store, StoreError};

/// Records read from a file, by seq.
type Records = Vec<(u64, serde_json::Value)>;
/// Where a read stopped: the file's inode and the byte offset.
type ReadAt = (u64, u64);

/// Records copied per round at most, so a large backlog costs bounded memory per minute.
const BATCH: usize = 2000;

/// Where the mirror stands: the newest record copied, and how far the current file was read.
#[derive(Default)]
pub struct Mirror {
    copied: Option<Option<u64>>,
    /// (the file's inode, bytes read): lines before the offset were copied or skipped. A
    /// rotation makes a new file (a new inode), read from its start.
    read: Option<ReadAt>,
}

impl Mirror {
    /// Copies records of `log` newer than the mirror's, a batch at a time until none are left;
    /// how many were copied.
    pub async fn sync(
        &mut self,
        store: &Store,
        instance: &str,
        log: &AuditLog,
    ) -> Result<usize, StoreError> {
        if !store.mirrors_audit() {
            return Ok(0);
        }
        let copied = match self.copied {
            Some(c) => c,
            None => {
                let c = store.mirrored(instance).await?;
                self.copied = Some(c);
                c
            }
        };
        let path = log.path().to_path_buf();
        let from = self.read;
        // Only what is durable: a record written lazily may yet be lost to a crash, and the
        // mirror must never hold a record the log does not.
        let Some((upto, _)) = log.head() else {
            return Ok(0);
        };
        let shown = path.display().to_string();
        let (records, read) =
            tokio::task::spawn_blocking(move || read_after(&path, from, copied, upto))
                .await
                .map_err(|e| StoreError::Unavailable(e.to_string()))?
                .map_err(|source| StoreError::Io { dir: shown, source })?;
        if let (Some(c), Some((first, _))) = (copied, records.first())
            && *first > c + 1
        {
            tracing::warn!(
                from = c + 1,
                to = first - 1,
                "audit records rotated away before they were mirrored: the rotated files have them"
            );
        }
        let n = records.len();
        for chunk in records.chunks(BATCH) {
            store.mirror(instance, chunk).await?;
        }
        if let Some((last, _)) = records.last() {
            self.copied = Some(Some(*last));
        }
        self.read = Some(read);
        Ok(n)
    }
}

/// The complete records of `path` whose seq is above `copied`, read from the offset in
/// `from` when the file is still the one it was taken in (its inode), else from the start;
/// and where the next read starts. At most [`BATCH`] × 8 records, so memory is bounded.
fn read_after(
    path: &Path,
    from: Option<ReadAt>,
    copied: Option<u64>,
    upto: u64,
) -> std::io::Result<(Records, ReadAt)> {
    use std::os::unix::fs::MetadataExt;
    let mut file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    let start = match from {
        Some((ino, offset)) if ino == meta.ino() && offset <= meta.len() => offset,
        _ => 0,
    };
    file.seek(SeekFrom::Start(start))?;
    let mut data = Vec::new();
    // Bounded read: 32 MiB a round; the rest waits for the next one.
    file.take(32 << 20).read_to_end(&mut data)?;
    let mut records = Vec::new();
    let mut consumed = 0usize;
    for line in data.split_inclusive(|b| *b == b'\n') {
        if line.last() != Some(&b'\n') || records.len() >= BATCH * 8 {
            break; // an append in progress, or enough for this round
        }
        let Ok(record) = serde_json::from_slice::<serde_json::Value>(line) else {
            consumed += line.len();
            continue;
        };
        let Some(seq) = record.get("seq").and_then(serde_json::Value::as_u64) else {
            consumed += line.len();
            continue;
        };
        if seq > upto {
            break; // not durable yet: the next round
        }
        consumed += line.len();
        if copied.is_none_or(|c| seq > c) {
            records.push((seq, record));
        }
    }
    Ok((records, (meta.ino(), start + consumed as u64)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_new_complete_records_and_starts_over_after_a_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jsonl");
        std::fs::write(&path, "{\"seq\":0}\n{\"seq\":1}\n{\"seq\":2}\n{\"seq\":3").unwrap();
        let (r, at) = read_after(&path, None, Some(0), u64::MAX).unwrap();
        let seqs: Vec<u64> = r.iter().map(|(s, _)| *s).collect();
        assert_eq!(seqs, [1, 2], "the half line waits");
        assert_eq!(at.1, 30);
        // The append completes in place.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        std::io::Write::write_all(&mut f, b"}\n{\"seq\":4}\n").unwrap();
        // Up to the durable head only: 4 waits until it is durable.
        let (r, at) = read_after(&path, Some(at), Some(2), 3).unwrap();
        assert_eq!(r.iter().map(|(s, _)| *s).collect::<Vec<_>>(), [3]);
        let (r, at) = read_after(&path, Some(at), Some(3), 4).unwrap();
        assert_eq!(r.iter().map(|(s, _)| *s).collect::<Vec<_>>(), [4]);
        // Rotated: the file renamed away, a new one (new inode) longer than the old offset.
        std::fs::rename(&path, dir.path().join("a-rotated.jsonl")).unwrap();
        std::fs::write(
            &path,
            "{\"seq\":5}\n".to_string() + &"{\"seq\":6}\n".repeat(8),
        )
        .unwrap();
        let (r, _) = read_after(&path, Some(at), Some(4), u64::MAX).unwrap();
        assert_eq!(r.first().map(|(s, _)| *s), Some(5));
    }
}
