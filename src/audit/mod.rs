//! The audit log (DESIGN §9, NEN 7513): one JSON line per decision, per relay outcome and per
//! review action, each carrying the SHA-256 of the line before it, so that editing, deleting,
//! reordering or cutting off records breaks the chain where it happened (`verify`).
//!
//! A record is on disk (fsync) before the SMTP reply or the review result it records is given:
//! the log's own fsync, or, for the server's writer thread, an fsync of the commit journal
//! (`journal`) that a start after a crash of the machine puts back into the log.
//! The server and the review commands may write at the same time: appends take an exclusive
//! lock on `<file>.lock` and read the chain's tail from the file itself, so the chain stays one.
//! Past `rotate_bytes` the file is renamed with a timestamp and a new one continues the chain
//! (its first record points at the last of the renamed file). `<file>.head` holds the sequence
//! number and hash of the newest record, so that cutting records off the end is noticed too.

pub mod anchor;
pub mod journal;
pub mod mirror;
pub mod record;
pub mod recover;
pub mod verify;
mod writer;

pub use record::Record;

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde_json::{Map, Value};

/// The `prev` of the very first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit log {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("audit log {path}: the last record is damaged ({what}); run `sluis audit verify`")]
    Damaged { path: String, what: String },
}

pub struct AuditLog {
    path: PathBuf,
    /// Changed by a reload that keeps the log (`set_rotate_bytes`).
    rotate_bytes: std::sync::atomic::AtomicU64,
    /// The file's length, last seq and last hash after our own latest write: when the length
    /// is still that, nobody else appended and the tail need not be read again.
    tail: std::sync::Mutex<Option<(u64, u64, String)>>,
    /// The lock file, the log and its head, kept open between appends.
    files: std::sync::Mutex<Option<Files>>,
    /// The server's writer thread (`append_async`), started on first use.
    writer: std::sync::OnceLock<std::sync::mpsc::Sender<writer::Pending>>,
    /// Records appended without waiting (`append_async_lazy`), for the writer's next batch.
    lazy: std::sync::Mutex<Vec<Body>>,
    /// Set while the writer sleeps with no deadline near: a lazy append then wakes it. (A
    /// writer that has not started yet takes the lazy records when it starts.)
    writer_idle: std::sync::atomic::AtomicBool,
    /// The size of the writer's commit journal (`journal`); 0: no journal, every durable
    /// append syncs the log.
    journal_bytes: u64,
}

/// A record as the JSON object it is written as, without the fields the log adds (`seq`,
/// `time`, `prev`): serialised once, by the caller, straight from its type. The log writes
/// its own fields first and the record's after them (`line`); building a map of the fields
/// to merge them in cost more than the rest of an append but the fsync.
struct Body(Vec<u8>);

impl Body {
    fn of(record: &Record) -> Body {
        // Every variant is a struct of plain fields: serialising cannot fail. Should it ever,
        // the record still says what it was.
        Body(
            serde_json::to_vec(record)
                .unwrap_or_else(|_| br#"{"event":"unserialisable"}"#.to_vec()),
        )
    }

    /// Fields given as a map (review commands, recovery, tests): the log's own are dropped.
    fn of_fields(mut fields: Map<String, Value>) -> Body {
        for k in ["seq", "time", "prev"] {
            fields.remove(k);
        }
        Body(serde_json::to_vec(&Value::Object(fields)).unwrap_or_else(|_| b"{}".to_vec()))
    }
}

/// Appends one record line to `out` (without its newline): `seq`, `time` and `prev`, then the
/// record's own fields. A record is a JSON object, `{...}`; its fields follow the log's.
fn line(out: &mut Vec<u8>, seq: u64, time: &str, prev: &str, body: &Body) {
    use std::io::Write as _;
    let _ = write!(out, r#"{{"seq":{seq},"time":"{time}","prev":"{prev}""#);
    match body.0.as_slice() {
        [b'{', fields @ .., b'}'] if !fields.trim_ascii().is_empty() => {
            out.push(b',');
            out.extend_from_slice(fields);
            out.push(b'}');
        }
        _ => out.push(b'}'),
    }
}

struct Files {
    lock: File,
    log: File,
    head: File,
}

/// SHA-256 of a record line (without its newline), in hex.
pub fn line_hash(line: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(ring::digest::digest(&ring::digest::SHA256, line).as_ref())
}

impl AuditLog {
    /// Opens (creating the directory, mode 0700, and the file, mode 0600) the log at `path`.
    pub fn open(path: &Path, rotate_bytes: u64) -> Result<AuditLog, AuditError> {
        let io = |source| AuditError::Io {
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
        }
        let mut file = open_log(path).map_err(io)?;
        // Under the lock: a running server's append in progress must not look torn.
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(lock_path(path))
            .map_err(io)?;
        lock.lock().map_err(io)?;
        let repaired =
            recover_from_journal(path, &mut file).and_then(|()| repair_torn_tail(path, &mut file));
        let _ = lock.unlock();
        repaired.map_err(io)?;
        Ok(AuditLog {
            path: path.to_path_buf(),
            rotate_bytes: std::sync::atomic::AtomicU64::new(rotate_bytes),
            tail: std::sync::Mutex::new(None),
            files: std::sync::Mutex::new(None),
            writer: std::sync::OnceLock::new(),
            lazy: std::sync::Mutex::new(Vec::new()),
            writer_idle: std::sync::atomic::AtomicBool::new(false),
            journal_bytes: journal::JOURNAL_BYTES,
        })
    }

    /// The same log with a journal of `bytes` (0: none): for tests of a full journal, and of
    /// the log synced by itself.
    #[cfg(test)]
    pub fn with_journal_bytes(mut self, bytes: u64) -> AuditLog {
        self.journal_bytes = bytes;
        self
    }

    /// A reload's new `audit.rotate_bytes`, for the log it keeps.
    pub fn set_rotate_bytes(&self, bytes: u64) {
        self.rotate_bytes
            .store(bytes, std::sync::atomic::Ordering::Relaxed);
    }

    /// The newest record's sequence number and hash, as the head file says (whoever wrote it:
    /// this process or a review command).
    pub fn head(&self) -> Option<(u64, String)> {
        let data = std::fs::read(head_path(&self.path)).ok()?;
        let head: Value = serde_json::from_slice(data.trim_ascii()).ok()?;
        Some((
            head.get("seq")?.as_u64()?,
            head.get("hash")?.as_str()?.to_string(),
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends records, in order and together, under the file lock and one fsync. Blocking:
    /// async code uses `append_async`, which batches concurrent callers.
    pub fn append_all(&self, records: Vec<Map<String, Value>>) -> Result<(), AuditError> {
        self.append_with(
            records.into_iter().map(Body::of_fields).collect(),
            true,
            None,
        )
    }

    /// `append_all`, durable only when `durable`: through `journal` when there is one (the
    /// writer thread's), else by an fsync of the log and the head's update.
    fn append_with(
        &self,
        records: Vec<Body>,
        durable: bool,
        journal: Option<&mut journal::Journal>,
    ) -> Result<(), AuditError> {
        let io = |source| AuditError::Io {
            path: self.path.display().to_string(),
            source,
        };
        let mut guard = self.files.lock().unwrap_or_else(|p| p.into_inner());
        let files = match guard.as_mut() {
            Some(f) => f,
            None => guard.insert(self.open_files().map_err(io)?),
        };
        files.lock.lock().map_err(io)?;
        let result = self.write_locked(files, records, durable, journal);
        let _ = files.lock.unlock();
        if result.is_err() {
            // Start from the files on disk next time.
            *guard = None;
        }
        result
    }

    fn open_files(&self) -> std::io::Result<Files> {
        let private = |path: PathBuf| {
            OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .mode(0o600)
                .open(path)
        };
        Ok(Files {
            lock: private(lock_path(&self.path))?,
            log: open_log(&self.path)?,
            head: private(head_path(&self.path))?,
        })
    }

    /// Appends under the file lock.
    fn write_locked(
        &self,
        files: &mut Files,
        records: Vec<Body>,
        durable: bool,
        journal: Option<&mut journal::Journal>,
    ) -> Result<(), AuditError> {
        let io = |source| AuditError::Io {
            path: self.path.display().to_string(),
            source,
        };
        let mut journal = journal.filter(|j| !j.failed);
        // Another process (a review command) may have rotated the log meanwhile. One stat of
        // the path and one of the open file per append: this runs for every batch.
        let on_disk = ino_and_len(&files.log, Some(&self.path)).ok().map(|m| m.0);
        let mut meta = ino_and_len(&files.log, None).map_err(io)?;
        if on_disk != Some(meta.0) {
            *self.tail.lock().unwrap_or_else(|p| p.into_inner()) = None;
            files.log = open_log(&self.path).map_err(io)?;
            files.head = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .mode(0o600)
                .open(head_path(&self.path))
                .map_err(io)?;
            meta = ino_and_len(&files.log, None).map_err(io)?;
        }
        let (ino, len) = meta;
        let cached = self
            .tail
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .filter(|(l, _, _)| *l == len);
        // Someone else appended since our last write (or this is the first): the journal's
        // frames no longer follow the log, so it starts over from a checkpoint.
        let foreign = cached.is_none();
        let (mut seq, mut prev) = match cached {
            Some((_, seq, hash)) => (seq + 1, hash),
            None => match last_record(&mut files.log).map_err(io)? {
                Tail::Empty => (0u64, GENESIS.to_string()),
                Tail::Record { seq, hash } => (seq + 1, hash),
                Tail::Damaged(what) => {
                    return Err(AuditError::Damaged {
                        path: self.path.display().to_string(),
                        what,
                    });
                }
            },
        };
        if records.is_empty() && seq == 0 {
            return Ok(()); // a sync of an empty log
        }
        if let Some(j) = journal.as_deref_mut() {
            if foreign || (records.is_empty() && durable) {
                j.needs_checkpoint = true;
            }
            if j.needs_checkpoint {
                j.checkpoint(&files.log, ino, len, seq, &prev).map_err(io)?;
                self.write_head(files, seq, &prev);
            }
        }
        let file = &mut files.log;
        let mut start = len;
        if !records.is_empty()
            && len >= self.rotate_bytes.load(std::sync::atomic::Ordering::Relaxed)
        {
            *file = self.rotate(file, seq).map_err(io)?;
            let (ino, len) = ino_and_len(file, None).map_err(io)?;
            start = len;
            // The old file is durable (rotate syncs it); the journal follows the new one.
            if let Some(j) = journal.as_deref_mut() {
                j.checkpoint(file, ino, start, seq, &prev).map_err(io)?;
            }
        }
        let mut out = Vec::with_capacity(records.iter().map(|b| b.0.len() + 160).sum());
        let time = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        for body in &records {
            let at = out.len();
            line(&mut out, seq, &time, &prev, body);
            prev = line_hash(&out[at..]);
            out.push(b'\n');
            seq += 1;
        }
        let end = start + out.len() as u64;
        let written = file
            .write_all(&out)
            .and_then(|()| match journal.as_deref_mut() {
                Some(j) if durable => j.commit(file, &out, end, seq, &prev),
                Some(j) => {
                    j.written(&out);
                    Ok(())
                }
                None if durable => file.sync_data(),
                None => Ok(()),
            });
        if let Err(e) = written {
            // Leave no half record behind: the next append would chain onto garbage. The
            // journal may hold what is cut here: it starts over from a checkpoint.
            let _ = file.set_len(start);
            let _ = file.sync_data();
            if let Some(j) = journal {
                j.needs_checkpoint = true;
            }
            return Err(io(e));
        }
        *self.tail.lock().unwrap_or_else(|p| p.into_inner()) = Some((end, seq - 1, prev.clone()));
        if durable {
            self.write_head(files, seq, &prev);
        }
        Ok(())
    }

    /// Names the record before `next` (whose hash is `hash`) in the head: it must be durable
    /// (in the log, or in the journal that puts it back into the log at the next start). The
    /// head only ever trails the durable records, so it needs no fsync of its own, and it is
    /// overwritten in place at a fixed width (no new file per append): a torn head is
    /// unreadable and ignored by `verify`. A head that cannot be written is worth a warning,
    /// not a failed append.
    fn write_head(&self, files: &Files, next: u64, hash: &str) {
        let Some(seq) = next.checked_sub(1) else {
            return;
        };
        let written = std::os::unix::fs::FileExt::write_all_at(
            &files.head,
            head_line(seq, hash).as_bytes(),
            0,
        );
        if let Err(e) = written {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot update the audit log head");
        }
    }

    /// Renames the log to `<stem>-<time>-<next seq>.jsonl`: names sort in chain order.
    fn rotate(&self, current: &File, next_seq: u64) -> std::io::Result<File> {
        // Records written without a commit of their own (and, with a journal, all records
        // since the last checkpoint) become durable before the file stops being written to.
        current.sync_data()?;
        let stamp = humantime::format_rfc3339_seconds(SystemTime::now())
            .to_string()
            .replace(':', "");
        let stem = self
            .path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "audit".into());
        let rotated = self
            .path
            .with_file_name(format!("{stem}-{stamp}-{next_seq:012}.jsonl"));
        std::fs::rename(&self.path, &rotated)?;
        let file = open_log(&self.path)?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)?.sync_all()?;
        }
        tracing::info!(rotated = %rotated.display(), "audit log rotated; the chain continues in a new file");
        Ok(file)
    }
}

/// A crash in the middle of an append can leave a last line without its newline. Its head was
/// never written (the head follows the fsync), so when the head names the last complete record
/// (or there is no head), the torn bytes are an unfinished write, not tampering: cut them off
/// and say so. Anything else is left for `sluis audit verify` to report.
fn repair_torn_tail(path: &Path, file: &mut File) -> std::io::Result<()> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(());
    }
    let from = len.saturating_sub(1 << 20);
    file.seek(SeekFrom::Start(from))?;
    let mut buf = Vec::new();
    Read::by_ref(file).read_to_end(&mut buf)?;
    if buf.last() == Some(&b'\n') {
        return Ok(());
    }
    let keep = match memchr::memrchr(b'\n', &buf) {
        Some(i) => from + i as u64 + 1,
        None if from == 0 => 0,
        None => return Ok(()),
    };
    let last_complete = (keep > 0).then(|| {
        let start = buf[..(keep - from) as usize - 1]
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |i| i + 1);
        parse_tail(&buf[start..(keep - from) as usize - 1])
    });
    let head: Option<Value> = std::fs::read(head_path(path))
        .ok()
        .and_then(|h| serde_json::from_slice(&h).ok());
    let head_seq = head
        .as_ref()
        .and_then(|h| h.get("seq"))
        .and_then(Value::as_u64);
    let consistent = match (head_seq, last_complete) {
        (None, _) => true,
        (Some(h), Some(Tail::Record { seq, .. })) => h == seq,
        _ => false,
    };
    if !consistent {
        return Ok(());
    }
    file.set_len(keep)?;
    file.sync_data()?;
    tracing::warn!(
        path = %path.display(),
        removed = len - keep,
        "audit log: removed the unfinished last record of an append cut off by a crash"
    );
    Ok(())
}

/// The head file's content: fixed width, so that it is overwritten in place.
fn head_line(seq: u64, hash: &str) -> String {
    format!("{:<127}\n", serde_json::json!({"seq": seq, "hash": hash}))
}

/// After a crash of the machine: what the commit journal holds and the log lost is put back
/// (`journal::recover`), and the head names the log's last record again.
fn recover_from_journal(path: &Path, file: &mut File) -> std::io::Result<()> {
    use journal::Recovery;
    let shown = path.display();
    match journal::recover(path, file)? {
        Recovery::Nothing | Recovery::Consistent | Recovery::InUse => return Ok(()),
        Recovery::Restored { records, dropped } => {
            tracing::warn!(path = %shown, records, dropped_bytes = dropped, "audit log: records the log lost in a crash were put back from its commit journal")
        }
        Recovery::Cut { dropped } => {
            tracing::warn!(path = %shown, dropped_bytes = dropped, "audit log: removed what a crash left after the last complete record")
        }
        Recovery::Left(why) => {
            tracing::warn!(path = %shown, reason = %why, "audit log: its commit journal was not applied; run `sluis audit verify`");
            return Ok(());
        }
    }
    if let Tail::Record { seq, hash } = last_record(file)? {
        let head = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(head_path(path))?;
        std::os::unix::fs::FileExt::write_all_at(&head, head_line(seq, &hash).as_bytes(), 0)?;
        head.sync_data()?;
    }
    Ok(())
}

fn open_log(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .mode(0o600)
        .open(path)
}

pub fn head_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".head");
    PathBuf::from(p)
}

/// The inode and size of the file at `path`, or of `file` itself (`None`), and nothing else.
/// Not `metadata()`: a stat that asks for the change time makes the file's next write take a
/// fine-grained one (multigrain timestamps, Linux 6.13), so with a stat per append every
/// append changed the inode, and the commit journal's fdatasync wrote the inode table block
/// it shares with the log: three disk writes per commit instead of two (the frame and the
/// cache flush). Asked for inode and size only, the times stay coarse and the inode changes
/// once a clock tick at most. Where `statx` is missing (ENOSYS) or filtered (EPERM, old
/// container profiles), a plain stat does.
fn ino_and_len(file: &File, path: Option<&Path>) -> std::io::Result<(u64, u64)> {
    use rustix::fs::{AtFlags, StatxFlags};
    use std::os::unix::fs::MetadataExt;
    let mask = StatxFlags::INO | StatxFlags::SIZE;
    let st = match path {
        Some(p) => rustix::fs::statx(rustix::fs::CWD, p, AtFlags::empty(), mask),
        None => rustix::fs::statx(file, "", AtFlags::EMPTY_PATH, mask),
    };
    match st {
        Ok(st) => Ok((st.stx_ino, st.stx_size)),
        Err(e) if e == rustix::io::Errno::NOSYS || e == rustix::io::Errno::PERM => {
            let meta = match path {
                Some(p) => std::fs::metadata(p)?,
                None => file.metadata()?,
            };
            Ok((meta.ino(), meta.len()))
        }
        Err(e) => Err(e.into()),
    }
}

fn lock_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".lock");
    PathBuf::from(p)
}

enum Tail {
    Empty,
    Record { seq: u64, hash: String },
    Damaged(String),
}

/// The sequence number and hash of the file's last record, reading backwards from the end.
fn last_record(file: &mut File) -> std::io::Result<Tail> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(Tail::Empty);
    }
    let mut window = 4096u64;
    loop {
        let from = len.saturating_sub(window);
        file.seek(SeekFrom::Start(from))?;
        let mut buf = Vec::with_capacity((len - from) as usize);
        Read::by_ref(file).take(len - from).read_to_end(&mut buf)?;
        if buf.last() != Some(&b'\n') {
            return Ok(Tail::Damaged("it does not end with a newline".into()));
        }
        let body = &buf[..buf.len() - 1];
        match memchr::memrchr(b'\n', body) {
            Some(i) => return Ok(parse_tail(&body[i + 1..])),
            None if from == 0 => return Ok(parse_tail(body)),
            None => window *= 4,
        }
    }
}

fn parse_tail(line: &[u8]) -> Tail {
    match serde_json::from_slice::<Value>(line)
        .ok()
        .and_then(|v| v.get("seq").and_then(Value::as_u64))
    {
        Some(seq) => Tail::Record {
            seq,
            hash: line_hash(line),
        },
        None => Tail::Damaged("it is not a JSON record with a seq".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::verify::{Verdict, verify_files};
    use super::*;

    fn record(n: usize) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("event".into(), "decision".into());
        m.insert("transaction".into(), format!("T{n}").into());
        m.insert("decision".into(), "deliver".into());
        m
    }

    pub(super) fn typed(n: usize) -> Record {
        Record::Outcome(record::Outcome {
            transaction: format!("T{n}"),
            client: "127.0.0.1".into(),
            lanes: Vec::new(),
            unknown: false,
            repeat_of: None,
            positive_reply: None,
            reply: 250,
        })
    }

    fn log(dir: &Path, rotate: u64) -> AuditLog {
        AuditLog::open(&dir.join("audit/audit.jsonl"), rotate).unwrap()
    }

    #[test]
    fn the_stat_of_every_append_gives_the_inode_and_size_of_the_path_and_of_the_open_file() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jsonl");
        std::fs::write(&path, b"12345").unwrap();
        let file = File::open(&path).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(ino_and_len(&file, Some(&path)).unwrap(), (meta.ino(), 5));
        assert_eq!(ino_and_len(&file, None).unwrap(), (meta.ino(), 5));
        // The path now names another file: the open one is still the old one.
        std::fs::rename(&path, dir.path().join("old.jsonl")).unwrap();
        std::fs::write(&path, b"1").unwrap();
        let (new_ino, new_len) = ino_and_len(&file, Some(&path)).unwrap();
        assert_ne!(new_ino, meta.ino());
        assert_eq!(new_len, 1);
        assert_eq!(ino_and_len(&file, None).unwrap(), (meta.ino(), 5));
        assert!(ino_and_len(&file, Some(&dir.path().join("gone"))).is_err());
    }

    fn lines(p: &Path) -> Vec<String> {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn a_line_is_the_logs_fields_then_every_field_of_the_record() {
        let mut out = Vec::new();
        let time = "2026-12-01T10:00:00.000Z";
        line(&mut out, 7, time, GENESIS, &Body::of(&typed(3)));
        assert!(out.starts_with(br#"{"seq":7,"time":"2026-12-01T10:00:00.000Z","prev":"0000"#));
        let got: Value = serde_json::from_slice(&out).unwrap();
        let mut want = typed(3).to_fields();
        want.insert("seq".into(), 7.into());
        want.insert("time".into(), time.into());
        want.insert("prev".into(), GENESIS.into());
        assert_eq!(got, Value::Object(want));

        // A record without fields of its own is still one object.
        out.clear();
        line(&mut out, 0, time, GENESIS, &Body::of_fields(Map::new()));
        let got: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(got.as_object().map(Map::len), Some(3));
    }

    #[tokio::test]
    async fn a_log_of_the_previous_version_continues_as_one_chain() {
        // Keys in alphabetical order (tests/fixtures/audit-v1/README.md); this version writes
        // the log's own fields first. The chain runs on through both.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit/audit.jsonl");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let fixture = include_str!("../../tests/fixtures/audit-v1/audit.jsonl");
        std::fs::write(&path, fixture).unwrap();
        std::fs::write(
            head_path(&path),
            include_str!("../../tests/fixtures/audit-v1/audit.jsonl.head"),
        )
        .unwrap();
        let log = std::sync::Arc::new(AuditLog::open(&path, 1 << 20).unwrap());
        log.append_async(&[typed(1)]).await.unwrap();
        let l = lines(&path);
        assert_eq!(l.len(), 12);
        assert!(l[11].starts_with(r#"{"seq":11,"#), "{}", l[11]);
        let last: Value = serde_json::from_str(&l[11]).unwrap();
        assert_eq!(last["prev"], line_hash(l[10].as_bytes()));
        assert_eq!(
            verify_files(std::slice::from_ref(&path)).verdict,
            Verdict::Intact { records: 12 }
        );
        assert_eq!(log.head().map(|h| h.0), Some(11));
    }

    #[test]
    fn fields_named_like_the_logs_own_are_the_logs() {
        let dir = tempfile::tempdir().unwrap();
        let log = log(dir.path(), 1 << 20);
        let mut r = record(1);
        r.insert("seq".into(), 99.into());
        r.insert("prev".into(), "forged".into());
        r.insert("time".into(), "yesterday".into());
        log.append_all(vec![r]).unwrap();
        let text = lines(log.path()).remove(0);
        assert_eq!(text.matches(r#""seq""#).count(), 1, "{text}");
        let got: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(got["seq"], 0);
        assert_eq!(got["prev"], GENESIS);
        assert_ne!(got["time"], "yesterday");
        assert_eq!(got["transaction"], "T1");
    }

    #[test]
    fn records_chain_and_verify() {
        let dir = tempfile::tempdir().unwrap();
        let log = log(dir.path(), 1 << 20);
        for n in 0..5 {
            log.append_all(vec![record(n)]).unwrap();
        }
        let l = lines(log.path());
        assert_eq!(l.len(), 5);
        let first: Value = serde_json::from_str(&l[0]).unwrap();
        assert_eq!(first["prev"], GENESIS);
        let second: Value = serde_json::from_str(&l[1]).unwrap();
        assert_eq!(second["prev"], line_hash(l[0].as_bytes()));
        assert_eq!(second["seq"], 1);
        let mode = std::fs::metadata(log.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            verify_files(&[log.path().to_path_buf()]).verdict,
            Verdict::Intact { records: 5 }
        );
    }

    fn damaged_at(path: &Path) -> Option<u64> {
        match verify_files(&[path.to_path_buf()]).verdict {
            Verdict::Broken { seq, .. } => Some(seq),
            Verdict::Intact { .. } => None,
        }
    }

    #[test]
    fn edits_deletions_reordering_and_truncation_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let log = log(dir.path(), 1 << 20);
        for n in 0..6 {
            log.append_all(vec![record(n)]).unwrap();
        }
        let path = log.path().to_path_buf();
        let original = lines(&path);
        let write = |l: &[String]| std::fs::write(&path, l.join("\n") + "\n").unwrap();

        let mut edited = original.clone();
        edited[2] = edited[2].replace("deliver", "refuse");
        write(&edited);
        assert_eq!(
            damaged_at(&path),
            Some(3),
            "the record after the edit no longer links"
        );

        let mut deleted = original.clone();
        deleted.remove(3);
        write(&deleted);
        assert_eq!(damaged_at(&path), Some(4));

        let mut swapped = original.clone();
        swapped.swap(1, 2);
        write(&swapped);
        assert_eq!(damaged_at(&path), Some(2));

        write(&original[..4]);
        assert!(
            damaged_at(&path).is_some(),
            "cut-off tail is noticed through the head"
        );

        let mut partial = original.join("\n");
        partial.truncate(partial.len() - 10);
        std::fs::write(&path, partial).unwrap();
        assert_eq!(damaged_at(&path), Some(5));
        assert!(matches!(
            log.append_all(vec![record(9)]),
            Err(AuditError::Damaged { .. })
        ));

        write(&original);
        assert_eq!(damaged_at(&path), None);
    }

    #[test]
    fn a_deleted_or_emptied_head_is_damage() {
        let dir = tempfile::tempdir().unwrap();
        let log = log(dir.path(), 1 << 20);
        for n in 0..4 {
            log.append_all(vec![record(n)]).unwrap();
        }
        let path = log.path().to_path_buf();
        let verdict = || verify_files(std::slice::from_ref(&path)).verdict;
        assert_eq!(verdict(), Verdict::Intact { records: 4 });
        // Cut records off the end and delete the head that would have shown it.
        let original = lines(&path);
        std::fs::write(&path, original[..2].join("\n") + "\n").unwrap();
        std::fs::remove_file(head_path(&path)).unwrap();
        match verdict() {
            Verdict::Broken { why, .. } => assert!(why.contains("head file"), "{why}"),
            v => panic!("a deleted head went unnoticed: {v:?}"),
        }
        // A server restarted after the deletion creates an empty head: still damage.
        std::fs::write(head_path(&path), b"").unwrap();
        assert!(matches!(verdict(), Verdict::Broken { .. }));
        // An empty log without a head is a fresh one.
        std::fs::write(&path, b"").unwrap();
        std::fs::remove_file(head_path(&path)).unwrap();
        assert_eq!(verdict(), Verdict::Intact { records: 0 });
        // Rotated files have no head of their own.
        assert!(verify::is_rotated(Path::new(
            "a/audit-2026-11-30T201500Z-000000000042.jsonl"
        )));
        assert!(!verify::is_rotated(Path::new("a/audit.jsonl")));
    }

    #[test]
    fn a_record_torn_by_a_crash_is_cut_off_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = {
            let log = log(dir.path(), 1 << 20);
            for n in 0..3 {
                log.append_all(vec![record(n)]).unwrap();
            }
            log.path().to_path_buf()
        };
        let intact = std::fs::read(&path).unwrap();
        // What a crash mid-append leaves: half a line, the head not yet updated.
        let mut torn = intact.clone();
        torn.extend_from_slice(b"{\"seq\":3,\"time\":\"2026");
        std::fs::write(&path, &torn).unwrap();
        let log = AuditLog::open(&path, 1 << 20).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), intact);
        log.append_all(vec![record(3)]).unwrap();
        assert_eq!(
            verify_files(std::slice::from_ref(&path)).verdict,
            Verdict::Intact { records: 4 }
        );
        // A cut-off that the head contradicts is not repaired but reported.
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let cut = format!("{}\n{}", lines[..2].join("\n"), &lines[2][..10]);
        std::fs::write(&path, cut).unwrap();
        AuditLog::open(&path, 1 << 20).unwrap();
        assert!(matches!(
            verify_files(&[path]).verdict,
            Verdict::Broken { .. }
        ));
    }

    #[test]
    fn concurrent_appends_all_land_in_one_chain() {
        let dir = tempfile::tempdir().unwrap();
        let log = std::sync::Arc::new(log(dir.path(), 1 << 30));
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let log = log.clone();
                std::thread::spawn(move || {
                    for n in 0..50 {
                        log.append_all(vec![record(t * 100 + n), record(t * 100 + n)])
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(
            verify_files(&[log.path().to_path_buf()]).verdict,
            Verdict::Intact { records: 800 }
        );
        // A caller's records stay together.
        let text = std::fs::read_to_string(log.path()).unwrap();
        let ids: Vec<String> = text
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["transaction"].to_string())
            .collect();
        assert!(ids.chunks(2).all(|pair| pair[0] == pair[1]));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn async_appends_from_many_tasks_share_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let log = std::sync::Arc::new(log(dir.path(), 1 << 30));
        let tasks: Vec<_> = (0..20)
            .map(|t| {
                let log = log.clone();
                tokio::spawn(async move {
                    for n in 0..10 {
                        log.append_async(&[typed(t * 100 + n)]).await.unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(
            verify_files(&[log.path().to_path_buf()]).verdict,
            Verdict::Intact { records: 200 }
        );
    }

    #[test]
    fn rotation_keeps_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        let log = log(dir.path(), 4096);
        for n in 0..60 {
            log.append_all(vec![record(n)]).unwrap();
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir.path().join("audit"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                name.starts_with("audit-") && name.ends_with(".jsonl")
            })
            .collect();
        assert!(!files.is_empty(), "rotated");
        files.sort();
        files.push(log.path().to_path_buf());
        assert_eq!(
            verify_files(&files).verdict,
            Verdict::Intact { records: 60 }
        );
        // The current file alone: its first link points into a file not given.
        let alone = verify_files(&[log.path().to_path_buf()]);
        assert!(matches!(alone.verdict, Verdict::Intact { .. }));
        assert!(alone.notes.iter().any(|n| n.contains("continues")));
        // Dropping a rotated file from the middle breaks the chain.
        if files.len() >= 3 {
            let mut gap = files.clone();
            gap.remove(1);
            assert!(matches!(verify_files(&gap).verdict, Verdict::Broken { .. }));
        }
    }
}
