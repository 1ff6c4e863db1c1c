//! The commit journal: what makes the server's records durable without an fsync of the log
//! for every group of them.
//!
//! On this kind of disk an fdatasync of an appended file costs three writes, one after the
//! other (the data, the block bitmap of a newly allocated block, the inode with its new size);
//! one of a file that neither grows nor allocates costs the data's write (and, on ext4 without
//! a journal of its own, as here, the inode's when its mtime moved). So the server writes each
//! group of records to the log as before (readers see them at once) and, to make them durable,
//! writes the same bytes as a checksummed frame into `<log>.journal`, a file of fixed size
//! written with zeros when it is created, and fdatasyncs that. About once a second, and when
//! the journal is full, a checkpoint fdatasyncs the log itself and the journal starts over.
//! After a crash of the machine, the next start puts back from the journal whatever the log
//! lost since its last checkpoint (`recover`): a record that was durable stays durable.
//!
//! A frame: magic, cycle, the log's inode, the log offset and the chain position (seq, prev)
//! where its bytes start, their length, SHA-256 of all of that and the bytes, then the bytes.
//! Frame 0 of a cycle is written by the checkpoint and carries no bytes: it says up to where
//! the log is durable. The frames of a cycle follow each other; a cycle's number is random,
//! so frames left over from an earlier cycle never pass for this one's.
//!
//! Only the server's writer thread writes the journal, and it holds an exclusive lock on it
//! while it does; review commands append to the log with an fsync of their own, which the
//! writer notices (the log grew under it) and answers with a checkpoint.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::line_hash;

/// The journal's size: about a second of records at the highest rate measured here (5,000
/// messages/s; a message, a decision and an outcome record each, 1–2 KiB in all); a full
/// journal only costs a checkpoint early.
pub const JOURNAL_BYTES: u64 = 8 << 20;
/// How often a checkpoint makes the log durable by itself.
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// Written-back in the background every so many bytes, so that a checkpoint's fdatasync
/// finds little left to write and does not hold the writer up.
const KICK_BYTES: u64 = 512 << 10;

const MAGIC: &[u8; 8] = b"SLUISJ1\n";
/// magic, cycle, inode, log offset, first seq, prev (64 hex), length, digest.
const HEADER: usize = 8 + 8 + 8 + 8 + 8 + 64 + 4 + 32;

pub fn journal_path(log: &Path) -> PathBuf {
    let mut p = log.as_os_str().to_owned();
    p.push(".journal");
    PathBuf::from(p)
}

/// Where the journal's coverage of the log ends: the offset, the next record's seq and the
/// last record's hash.
#[derive(Clone, Debug, PartialEq)]
struct Position {
    offset: u64,
    seq: u64,
    prev: String,
}

struct Frame {
    cycle: u64,
    inode: u64,
    at: Position,
    bytes: Vec<u8>,
}

fn encode(cycle: u64, inode: u64, at: &Position, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + bytes.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&cycle.to_le_bytes());
    out.extend_from_slice(&inode.to_le_bytes());
    out.extend_from_slice(&at.offset.to_le_bytes());
    out.extend_from_slice(&at.seq.to_le_bytes());
    let mut prev = [b'0'; 64];
    let p = at.prev.as_bytes();
    prev[..p.len().min(64)].copy_from_slice(&p[..p.len().min(64)]);
    out.extend_from_slice(&prev);
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    digest.update(&out);
    digest.update(bytes);
    out.extend_from_slice(digest.finish().as_ref());
    out.extend_from_slice(bytes);
    out
}

/// The frame at the start of `data`, and its length; `None` where there is none (zeros, a
/// frame torn by a crash, anything else).
fn decode(data: &[u8]) -> Option<(Frame, usize)> {
    let header = data.get(..HEADER)?;
    if &header[..8] != MAGIC {
        return None;
    }
    let u64_at = |i: usize| u64::from_le_bytes(header[i..i + 8].try_into().unwrap_or([0; 8]));
    let len = u32::from_le_bytes(header[104..108].try_into().ok()?) as usize;
    let bytes = data.get(HEADER..HEADER.checked_add(len)?)?;
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    digest.update(&header[..108]);
    digest.update(bytes);
    if digest.finish().as_ref() != &header[108..HEADER] {
        return None;
    }
    let prev = std::str::from_utf8(&header[40..104]).ok()?.to_string();
    let frame = Frame {
        cycle: u64_at(8),
        inode: u64_at(16),
        at: Position {
            offset: u64_at(24),
            seq: u64_at(32),
            prev,
        },
        bytes: bytes.to_vec(),
    };
    Some((frame, HEADER + len))
}

/// The writer thread's journal, locked for as long as it lives.
pub struct Journal {
    file: File,
    size: u64,
    cycle: u64,
    inode: u64,
    /// Where the next frame goes.
    pos: u64,
    /// Where the journal's (and the checkpoint's) coverage of the log ends.
    covered: Position,
    /// Bytes appended to the log since `covered` (records written without a commit of their
    /// own): the next frame carries them, so that the frames follow the log without a gap.
    pending: Vec<u8>,
    /// No frame may be written before a checkpoint: at the start, after another process
    /// appended, after the log was rotated, when a sync is asked for.
    pub needs_checkpoint: bool,
    last_checkpoint: Instant,
    /// Up to where the log's write-back was started.
    kicked: u64,
    /// The journal could not be written: the log is synced by itself from now on.
    pub failed: bool,
}

impl Journal {
    /// Opens (creating it, `size` bytes of zeros) and locks the journal of the log at `log`;
    /// `Ok(None)` when another writer holds it (a reload's previous configuration, still
    /// finishing): the caller syncs the log itself meanwhile and tries again later.
    pub fn take(log: &Path, size: u64) -> std::io::Result<Option<Journal>> {
        let path = journal_path(log);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .mode(0o600)
            .open(&path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
        let len = file.metadata()?.len();
        if len < size {
            // A full file system must not be filled further by an attempt that fails (it is
            // tried again): the space is reserved first, all or nothing.
            if let Err(e) = allocate(&file, len, size - len).and_then(|()| {
                // Then written, not just allocated: a frame written later then changes no
                // extent, so its fdatasync is one write less.
                let zeros = vec![0u8; 64 << 10];
                let mut at = len;
                while at < size {
                    let n = (size - at).min(zeros.len() as u64) as usize;
                    file.write_all_at(&zeros[..n], at)?;
                    at += n as u64;
                }
                file.sync_all()
            }) {
                let _ = file.set_len(len);
                return Err(e);
            }
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                File::open(dir)?.sync_all()?;
            }
        }
        Ok(Some(Journal {
            file,
            size: size.max(len),
            cycle: 0,
            inode: 0,
            pos: 0,
            covered: Position {
                offset: 0,
                seq: 0,
                prev: String::new(),
            },
            pending: Vec::new(),
            needs_checkpoint: true,
            last_checkpoint: Instant::now(),
            kicked: 0,
            failed: false,
        }))
    }

    /// Whether a checkpoint is due: something was journaled since the last one, a while ago.
    pub fn due(&self) -> bool {
        (self.pos > HEADER as u64 || !self.pending.is_empty())
            && self.last_checkpoint.elapsed() >= CHECKPOINT_EVERY
    }

    /// Syncs the log (every byte in it is durable from here) and starts a new cycle whose
    /// frame 0 says so. The frame itself needs no fsync: until the next frame's fsync makes
    /// it durable, the previous cycle's frames describe bytes the log now holds durably. Only
    /// the log's sync can fail it: a journal that cannot be written is marked `failed`.
    pub fn checkpoint(
        &mut self,
        log: &File,
        inode: u64,
        end: u64,
        seq: u64,
        prev: &str,
    ) -> std::io::Result<()> {
        log.sync_data()?;
        self.pending.clear();
        self.needs_checkpoint = false;
        self.last_checkpoint = Instant::now();
        self.kicked = end;
        let mut raw = [0u8; 8];
        if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut raw).is_err() {
            self.fail(&std::io::Error::other("no random number for a new cycle"));
            return Ok(());
        }
        self.cycle = u64::from_le_bytes(raw);
        self.inode = inode;
        self.covered = Position {
            offset: end,
            seq,
            prev: prev.to_string(),
        };
        let frame = encode(self.cycle, inode, &self.covered, &[]);
        match self.file.write_all_at(&frame, 0) {
            Ok(()) => self.pos = frame.len() as u64,
            Err(e) => self.fail(&e),
        }
        Ok(())
    }

    fn fail(&mut self, e: &std::io::Error) {
        tracing::warn!(error = %e, "the audit log's commit journal cannot be written: the log is synced by itself from now on");
        self.failed = true;
    }

    /// Records appended without a commit of their own: the next frame carries them.
    pub fn written(&mut self, bytes: &[u8]) {
        if !self.needs_checkpoint && !self.failed {
            self.pending.extend_from_slice(bytes);
        }
    }

    /// Makes everything appended since the last frame durable, `bytes` (just appended, ending
    /// at `end`, before record `seq` whose `prev` is `prev`) included: one frame and one
    /// fdatasync of the journal, or a checkpoint when the journal is full.
    pub fn commit(
        &mut self,
        log: &File,
        bytes: &[u8],
        end: u64,
        seq: u64,
        prev: &str,
    ) -> std::io::Result<()> {
        if self.failed {
            return log.sync_data();
        }
        if self.needs_checkpoint {
            return self.checkpoint(log, self.inode, end, seq, prev);
        }
        self.pending.extend_from_slice(bytes);
        if self.pending.is_empty() {
            return Ok(());
        }
        if self.pos + (HEADER + self.pending.len()) as u64 > self.size {
            return self.checkpoint(log, self.inode, end, seq, prev);
        }
        let frame = encode(self.cycle, self.inode, &self.covered, &self.pending);
        let framed = self
            .file
            .write_all_at(&frame, self.pos)
            .and_then(|()| self.file.sync_data());
        if let Err(e) = framed {
            self.fail(&e);
            return log.sync_data();
        }
        self.pos += frame.len() as u64;
        self.covered = Position {
            offset: end,
            seq,
            prev: prev.to_string(),
        };
        self.pending.clear();
        if end - self.kicked >= KICK_BYTES {
            write_back(log, self.kicked, end - self.kicked);
            self.kicked = end;
        }
        Ok(())
    }
}

/// Reserves `len` bytes of `file` from `from` (growing it), or fails without using space.
fn allocate(file: &File, from: u64, len: u64) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let (Ok(from), Ok(len)) = (i64::try_from(from), i64::try_from(len)) else {
        return Err(std::io::Error::other("journal size out of range"));
    };
    // SAFETY: a plain system call on a file descriptor this `File` owns; no memory is passed.
    if unsafe { libc::fallocate(file.as_raw_fd(), 0, from, len) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Starts writing `len` bytes of `file` from `from` back to disk, without waiting.
fn write_back(file: &File, from: u64, len: u64) {
    use std::os::fd::AsRawFd;
    let (Ok(from), Ok(len)) = (i64::try_from(from), i64::try_from(len)) else {
        return;
    };
    // SAFETY: a plain system call on a file descriptor this `File` owns; no memory is passed.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), from, len, libc::SYNC_FILE_RANGE_WRITE);
    }
}

/// What `recover` did.
#[derive(Debug, PartialEq)]
pub enum Recovery {
    /// No journal, or nothing in it for this log.
    Nothing,
    /// The log already held everything the journal holds.
    Consistent,
    /// Records the log had lost were put back from the journal; `dropped` bytes past the last
    /// record that chained (a crash's leftovers) were cut off first.
    Restored { records: usize, dropped: u64 },
    /// Bytes past the last record that chained were cut off: a crash's leftovers (a torn line,
    /// zeros where the disk had not written the data yet).
    Cut { dropped: u64 },
    /// A running server writes the journal: nothing to recover.
    InUse,
    /// The journal was left alone: it does not match the log.
    Left(String),
}

/// After a crash: puts back into the log (open, with the log's lock held) what the journal
/// says was durable and the log lost. Run before anything reads the log's tail.
pub fn recover(log_path: &Path, log: &mut File) -> std::io::Result<Recovery> {
    let path = journal_path(log_path);
    let journal = match OpenOptions::new().read(true).write(true).open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Recovery::Nothing),
        Err(e) => return Err(e),
    };
    match journal.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Ok(Recovery::InUse);
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(e),
    }
    let Some((first, n)) = read_frame(&journal, 0)? else {
        return Ok(Recovery::Nothing);
    };
    let mut at = n as u64;
    let meta = log.metadata()?;
    if first.inode != meta.ino() {
        // The log was rotated (after a checkpoint) or replaced: the journal is not about it.
        return Ok(Recovery::Nothing);
    }
    let start = first.at.clone();
    let mut journaled = Vec::new();
    let mut end = start.offset;
    while let Some((frame, n)) = read_frame(&journal, at)? {
        if frame.cycle != first.cycle || frame.at.offset != end {
            break;
        }
        end += frame.bytes.len() as u64;
        journaled.extend_from_slice(&frame.bytes);
        at += n as u64;
    }
    if meta.len() < start.offset {
        return Ok(Recovery::Left(format!(
            "the log is shorter ({} bytes) than at its last checkpoint ({} bytes)",
            meta.len(),
            start.offset
        )));
    }
    if start.offset > 0 && line_before(log, start.offset)?.as_deref() != Some(start.prev.as_str()) {
        return Ok(Recovery::Left(
            "the log's record before the last checkpoint is not the journal's".into(),
        ));
    }
    if meta.len() - start.offset > journaled.len() as u64 + 4 * JOURNAL_BYTES {
        // Appended to far past the journal since its checkpoint: by review commands, whose
        // fsyncs made everything before their records durable, the journal's part included.
        // Nothing to put back, and no reason to read all that into memory.
        return Ok(Recovery::Consistent);
    }
    log.seek(SeekFrom::Start(start.offset))?;
    let mut after = Vec::new();
    log.read_to_end(&mut after)?;
    let trusted = chained(&after, &start);
    let dropped = (after.len() - trusted) as u64;
    let cut = start.offset + trusted as u64;
    if journaled.len() > trusted && journaled.starts_with(&after[..trusted]) {
        let missing = &journaled[trusted..];
        log.set_len(cut)?;
        log.seek(SeekFrom::End(0))?;
        std::io::Write::write_all(log, missing)?;
        log.sync_data()?;
        let records = missing.iter().filter(|b| **b == b'\n').count();
        return Ok(Recovery::Restored { records, dropped });
    }
    if !after[..trusted].starts_with(&journaled) {
        return Ok(Recovery::Left(
            "the log and the journal differ after the last checkpoint".into(),
        ));
    }
    if dropped == 0 {
        return Ok(Recovery::Consistent);
    }
    // Past what chains: only what a crash leaves (a line without its end, zeros) is cut;
    // anything else is for `sluis audit verify` to report.
    let rest = &after[trusted..];
    if rest.contains(&0) || !rest.contains(&b'\n') {
        log.set_len(cut)?;
        log.sync_data()?;
        return Ok(Recovery::Cut { dropped });
    }
    Ok(Recovery::Left(
        "records after the last checkpoint do not chain".into(),
    ))
}

/// The frame at `at` in the journal, read as far as it goes (a journal of zeros costs one
/// header's read, not the file's size in memory), and its length.
fn read_frame(journal: &File, at: u64) -> std::io::Result<Option<(Frame, usize)>> {
    let mut header = [0u8; HEADER];
    match journal.read_exact_at(&mut header, at) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes([header[104], header[105], header[106], header[107]]) as u64;
    if &header[..8] != MAGIC || len > 4 * JOURNAL_BYTES {
        return Ok(None);
    }
    let mut whole = vec![0u8; HEADER + len as usize];
    match journal.read_exact_at(&mut whole, at) {
        Ok(()) => Ok(decode(&whole)),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(e),
    }
}

/// How many bytes at the start of `data` are whole records that continue the chain at `from`.
fn chained(data: &[u8], from: &Position) -> usize {
    let (mut seq, mut prev) = (from.seq, from.prev.clone());
    let mut at = 0;
    while let Some(i) = memchr::memchr(b'\n', &data[at..]) {
        let line = &data[at..at + i];
        let Ok(v) = serde_json::from_slice::<Value>(line) else {
            break;
        };
        if v.get("seq").and_then(Value::as_u64) != Some(seq)
            || v.get("prev").and_then(Value::as_str) != Some(prev.as_str())
        {
            break;
        }
        prev = line_hash(line);
        seq += 1;
        at += i + 1;
    }
    at
}

/// The hash of the record that ends just before `offset` (a line boundary).
fn line_before(log: &mut File, offset: u64) -> std::io::Result<Option<String>> {
    let mut window = 4096u64;
    loop {
        let from = offset.saturating_sub(window);
        log.seek(SeekFrom::Start(from))?;
        let mut buf = vec![0u8; (offset - from) as usize];
        log.read_exact(&mut buf)?;
        if buf.last() != Some(&b'\n') {
            return Ok(None);
        }
        let body = &buf[..buf.len() - 1];
        match memchr::memrchr(b'\n', body) {
            Some(i) => return Ok(Some(line_hash(&body[i + 1..]))),
            None if from == 0 => return Ok(Some(line_hash(body))),
            None if window >= 1 << 24 => return Ok(None),
            None => window *= 4,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::AuditLog;
    use crate::audit::tests::typed;
    use crate::audit::verify::{Verdict, verify_files};
    use std::sync::Arc;

    fn fields(n: usize) -> serde_json::Map<String, Value> {
        let mut m = serde_json::Map::new();
        m.insert("event".into(), "review".into());
        m.insert("item".into(), format!("Q{n}").into());
        m
    }

    /// The server's log at `path`, rotated past `rotate` bytes, with a journal of `journal`.
    fn server_log(path: &Path, rotate: u64, journal: u64) -> Arc<AuditLog> {
        Arc::new(
            AuditLog::open(path, rotate)
                .unwrap()
                .with_journal_bytes(journal),
        )
    }

    /// Drops the log and waits for its writer thread to let go of the journal, as a process
    /// that ends does.
    fn stop(log: Arc<AuditLog>) {
        let path = journal_path(log.path());
        drop(log);
        for _ in 0..200 {
            let f = File::open(&path).unwrap();
            if f.try_lock().is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("the writer kept the journal");
    }

    fn frame0(log: &Path) -> Frame {
        decode(&std::fs::read(journal_path(log)).unwrap())
            .unwrap()
            .0
    }

    fn verdict(p: &Path) -> Verdict {
        verify_files(&[p.to_path_buf()]).verdict
    }

    /// A log written by a server: three records durable in the log itself (a review command's),
    /// then durable groups and records without a commit of their own through the writer.
    async fn written(dir: &Path, journal: u64) -> (PathBuf, Vec<u8>) {
        let path = dir.join("audit/audit.jsonl");
        let log = server_log(&path, 1 << 30, journal);
        log.append_all((0..3).map(fields).collect()).unwrap();
        for n in 0..10 {
            log.append_async(&[typed(2 * n)]).await.unwrap();
            log.append_async_lazy(&[typed(2 * n + 1)]).await.unwrap();
        }
        log.append_async(&[typed(100), typed(101)]).await.unwrap();
        stop(log);
        let before = std::fs::read(&path).unwrap();
        (path, before)
    }

    #[test]
    fn a_frame_reads_back_and_a_changed_byte_spoils_it() {
        let at = Position {
            offset: 4096,
            seq: 12,
            prev: crate::audit::GENESIS.into(),
        };
        let f = encode(7, 99, &at, b"{\"seq\":12}\n");
        let (back, n) = decode(&f).unwrap();
        assert_eq!((back.cycle, back.inode, back.at, n), (7, 99, at, f.len()));
        assert_eq!(back.bytes, b"{\"seq\":12}\n");
        for i in [0, 9, 30, 50, 105, 120, f.len() - 1] {
            let mut bad = f.clone();
            bad[i] ^= 1;
            assert!(decode(&bad).is_none(), "byte {i}");
        }
        assert!(decode(&f[..f.len() - 1]).is_none(), "torn");
        assert!(decode(&[0u8; 512]).is_none(), "zeros");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn records_the_log_lost_in_a_crash_are_put_back_from_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let (path, before) = written(dir.path(), JOURNAL_BYTES).await;
        assert_eq!(verdict(&path), Verdict::Intact { records: 25 });
        let checkpoint = frame0(&path).at.offset;
        assert!(
            checkpoint > 0 && checkpoint < before.len() as u64,
            "{checkpoint}"
        );
        // A crash of the machine: what was not synced to the log is gone, three ways.
        type Loss = fn(&mut Vec<u8>, usize);
        let losses: [(&str, Loss); 3] = [
            ("cut at the checkpoint", |d, checkpoint| {
                d.truncate(checkpoint)
            }),
            ("cut in a line", |d, _| d.truncate(d.len() - 700)),
            ("zeros where data was not written", |d, _| {
                let n = d.len();
                d[n - 2000..n - 100].fill(0);
            }),
        ];
        for (what, lose) in losses {
            let mut damaged = before.clone();
            lose(&mut damaged, checkpoint as usize);
            std::fs::write(&path, &damaged).unwrap();
            AuditLog::open(&path, 1 << 30).unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), before, "{what}");
            assert_eq!(verdict(&path), Verdict::Intact { records: 25 }, "{what}");
        }
        // Once put back, the next start finds nothing to do.
        let mut log = File::options().read(true).write(true).open(&path).unwrap();
        assert_eq!(recover(&path, &mut log).unwrap(), Recovery::Consistent);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_frame_torn_by_the_crash_is_not_put_back() {
        let dir = tempfile::tempdir().unwrap();
        let (path, before) = written(dir.path(), JOURNAL_BYTES).await;
        let checkpoint = frame0(&path).at.offset as usize;
        // The last frame never finished its write: the last group (two records) and the record
        // written before it without a commit of its own, which that frame carried.
        let jpath = journal_path(&path);
        let mut journal = std::fs::read(&jpath).unwrap();
        let mut at = 0;
        let mut last = 0;
        while let Some((_, n)) = decode(&journal[at..]) {
            last = at;
            at += n;
        }
        journal[last + HEADER + 3] ^= 0x20;
        std::fs::write(&jpath, &journal).unwrap();
        std::fs::write(&path, &before[..checkpoint]).unwrap();
        AuditLog::open(&path, 1 << 30).unwrap();
        assert_eq!(verdict(&path), Verdict::Intact { records: 22 });
        let now = std::fs::read(&path).unwrap();
        assert!(before.starts_with(&now));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sync_puts_the_lazy_records_before_it_in_the_log_itself() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit/audit.jsonl");
        let log = server_log(&path, 1 << 30, JOURNAL_BYTES);
        log.append_async(&[typed(0)]).await.unwrap();
        log.append_async_lazy(&[typed(1)]).await.unwrap();
        log.sync().await.unwrap();
        // The checkpoint is at the end of the log: nothing left for the journal to put back.
        let len = std::fs::metadata(&path).unwrap().len();
        assert_eq!(frame0(&path).at.offset, len);
        assert_eq!(log.head().unwrap().0, 1);
        stop(log);
        assert_eq!(verdict(&path), Verdict::Intact { records: 2 });
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_running_servers_journal_is_left_alone_and_other_writers_keep_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit/audit.jsonl");
        let server = server_log(&path, 1 << 30, JOURNAL_BYTES);
        server.append_async(&[typed(1)]).await.unwrap();
        // A review command: its open finds the journal in use, its append is its own.
        let mut log = File::options().read(true).write(true).open(&path).unwrap();
        assert_eq!(recover(&path, &mut log).unwrap(), Recovery::InUse);
        let command = AuditLog::open(&path, 1 << 30).unwrap();
        command.append_all(vec![fields(1)]).unwrap();
        server.append_async(&[typed(2)]).await.unwrap();
        server.append_async_lazy(&[typed(3)]).await.unwrap();
        server.append_async(&[typed(4)]).await.unwrap();
        stop(server);
        let before = std::fs::read(&path).unwrap();
        assert_eq!(verdict(&path), Verdict::Intact { records: 5 });
        // The command's append made the server start over from a checkpoint that includes it.
        let checkpoint = frame0(&path).at.offset as usize;
        let command_line = before.windows(6).position(|w| w == b"\"Q1\"}\n").unwrap();
        assert!(checkpoint > command_line, "{checkpoint} {command_line}");
        std::fs::write(&path, &before[..checkpoint]).unwrap();
        AuditLog::open(&path, 1 << 30).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_journal_checkpoints_and_a_rotated_log_leaves_it_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit/audit.jsonl");
        // Room for about three frames: most groups go by checkpoints.
        let log = server_log(&path, 8 << 10, 1200);
        for n in 0..120 {
            log.append_async(&[typed(n)]).await.unwrap();
        }
        let inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&path).unwrap());
        stop(log);
        let files = crate::audit::verify::chain_files(&path);
        assert!(files.len() > 2, "rotated: {files:?}");
        assert_eq!(
            verify_files(&files).verdict,
            Verdict::Intact { records: 120 }
        );
        let first = frame0(&path);
        assert_eq!(first.inode, inode, "the journal follows the current file");
        assert!(first.at.offset > 0, "checkpoints moved on");
        let before = std::fs::read(&path).unwrap();
        std::fs::write(&path, &before[..first.at.offset as usize]).unwrap();
        AuditLog::open(&path, 8 << 10).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), before);
        // A rotated file is not what the journal is about: it is never touched.
        let rotated = &files[files.len() - 2];
        let kept = std::fs::read(rotated).unwrap();
        let mut f = File::options()
            .read(true)
            .write(true)
            .open(rotated)
            .unwrap();
        assert_eq!(recover(rotated, &mut f).unwrap(), Recovery::Nothing);
        assert_eq!(std::fs::read(rotated).unwrap(), kept);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn without_a_journal_the_log_is_synced_by_itself() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit/audit.jsonl");
        let log = server_log(&path, 1 << 30, 0);
        log.append_async(&[typed(1)]).await.unwrap();
        assert_eq!(log.head().map(|h| h.0), Some(0));
        drop(log);
        assert!(!journal_path(&path).exists());
        assert_eq!(verdict(&path), Verdict::Intact { records: 1 });
    }

    #[test]
    fn a_log_that_does_not_follow_the_journal_is_left_for_verify() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        std::fs::write(&path, b"{\"seq\":0,\"prev\":\"x\"}\n").unwrap();
        let inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&path).unwrap());
        let at = Position {
            offset: 22,
            seq: 1,
            prev: "f".repeat(64),
        };
        std::fs::write(journal_path(&path), encode(1, inode, &at, &[])).unwrap();
        let mut log = File::options().read(true).write(true).open(&path).unwrap();
        assert!(matches!(
            recover(&path, &mut log).unwrap(),
            Recovery::Left(_)
        ));
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"{\"seq\":0,\"prev\":\"x\"}\n"
        );
    }
}
