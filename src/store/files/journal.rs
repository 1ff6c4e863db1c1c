//! The files store's sessions (portal visits, code states, read markers) in one append-only
//! journal, `sessions/journal`, with group commit.
//!
//! Why not a file per session: a code check must make the recipient's new try count durable
//! before it answers (≤ 5 tries per code holds across a crash), and a file per session costs a
//! create, an fsync, a rename and a directory fsync per try; at 50 concurrent sessions the
//! kernel's inode and directory work dominated (#17's code-check benchmark). Here a writer
//! thread appends everything queued with one `fdatasync` and then answers every waiting
//! caller, like the audit log.
//!
//! One process writes: the first one that changes a session takes `sessions/.journal.lock`
//! and keeps it while it runs (the server: its retention schedule sweeps at start). Any other
//! process (the command line) reads the journal afresh on each read and cannot write; a second
//! server on the same spool is refused with that reason. Within a process every store opened
//! on one directory shares one journal.
//!
//! A line is one change (`{"k":key,"v":value,"e":expires}` or `{"k":key,"d":true}`), so a
//! crash cuts off at most the unfinished last line, which nobody was told was written; it is
//! removed when the writer opens the journal. The writer rewrites the journal from the live
//! sessions when it is mostly dead lines, and at the hourly sweep.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use serde_json::Value;

/// A journal is rewritten once it holds this much and more than twice its live lines.
const COMPACT_FROM: u64 = 1 << 20;

/// At most this many live sessions (a few hundred bytes each, in memory): whoever holds a
/// link can start visits, so their number needs a bound of its own. A new one beyond it is
/// refused (the page answers 503) once the expired ones are gone.
const MAX_SESSIONS: usize = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "{path}: the sessions are kept by another running Sluis process (it holds .journal.lock); one server per files store"
    )]
    Taken { path: String },
}

#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct Line {
    k: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    v: Option<Value>,
    #[serde(default, skip_serializing_if = "is_zero")]
    e: u64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    d: bool,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The sessions as the journal says, and the size of what says it.
#[derive(Default)]
struct Live {
    map: HashMap<String, (Value, u64, u64)>,
    /// Bytes of the live entries' lines (what a rewrite would keep).
    live_bytes: u64,
}

impl Live {
    fn apply(&mut self, line: Line, len: u64) {
        if let Some((_, _, old)) = self.map.remove(&line.k) {
            self.live_bytes -= old;
        }
        if let (false, Some(v)) = (line.d, line.v) {
            self.live_bytes += len;
            self.map.insert(line.k, (v, line.e, len));
        }
    }

    /// Forgets the sessions expired by `now`; how many.
    fn forget_expired(&mut self, now: u64) -> usize {
        let before = self.map.len();
        let mut freed = 0;
        self.map.retain(|_, (_, e, len)| {
            let keep = *e > now;
            if !keep {
                freed += *len;
            }
            keep
        });
        self.live_bytes -= freed;
        before - self.map.len()
    }

    fn get(&self, key: &str, now: u64) -> Option<Value> {
        self.map
            .get(key)
            .filter(|(_, e, _)| *e > now)
            .map(|(v, _, _)| v.clone())
    }
}

/// Replays `data`: the sessions it holds and the length of its complete lines (a cut-off last
/// line is not part of it).
fn replay(data: &[u8], path: &Path) -> (Live, u64) {
    let mut live = Live::default();
    let complete = data.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    for raw in data[..complete].split(|&b| b == b'\n') {
        if raw.is_empty() {
            continue;
        }
        match serde_json::from_slice::<Line>(raw) {
            Ok(line) => live.apply(line, raw.len() as u64 + 1),
            // Only a line cut off and then appended to could look like this; the sessions
            // around it stand.
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "sessions journal: skipping a damaged line")
            }
        }
    }
    (live, complete as u64)
}

enum Op {
    Change(Line),
    Sweep(u64),
}

type Done = tokio::sync::oneshot::Sender<Result<usize, String>>;
type Job = (Op, Done);

struct Writer {
    tx: std::sync::mpsc::Sender<Job>,
    live: Arc<Mutex<Live>>,
    /// Held while this process's stores on the directory live; dropped with the last.
    _lock: File,
}

pub struct Journal {
    dir: PathBuf,
    max_sessions: usize,
    writer: tokio::sync::OnceCell<Writer>,
}

impl Journal {
    /// This process's journal of the sessions in `dir` (shared by every store opened on it).
    pub fn of(dir: &Path) -> Arc<Journal> {
        static OPEN: Mutex<Vec<(PathBuf, Weak<Journal>)>> = Mutex::new(Vec::new());
        let mut open = OPEN.lock().unwrap_or_else(|p| p.into_inner());
        open.retain(|(_, j)| j.strong_count() > 0);
        if let Some(j) = open
            .iter()
            .find(|(d, _)| d == dir)
            .and_then(|(_, j)| j.upgrade())
        {
            return j;
        }
        let j = Arc::new(Journal {
            dir: dir.to_path_buf(),
            max_sessions: MAX_SESSIONS,
            writer: tokio::sync::OnceCell::new(),
        });
        open.push((dir.to_path_buf(), Arc::downgrade(&j)));
        j
    }

    fn path(&self) -> PathBuf {
        self.dir.join("journal")
    }

    fn io(&self, source: std::io::Error) -> JournalError {
        JournalError::Io {
            path: self.path().display().to_string(),
            source,
        }
    }

    /// The session under `key` unless it expired: from memory in the writing process, from the
    /// file in any other.
    pub async fn get(&self, key: &str, now: u64) -> Result<Option<Value>, JournalError> {
        if let Some(w) = self.writer.get() {
            let live = w.live.lock().unwrap_or_else(|p| p.into_inner());
            return Ok(live.get(key, now));
        }
        let path = self.path();
        let data = match std::fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io(e)),
        };
        Ok(replay(&data, &path).0.get(key, now))
    }

    pub async fn put(&self, key: &str, value: &Value, expires: u64) -> Result<(), JournalError> {
        let line = Line {
            k: key.to_string(),
            v: Some(value.clone()),
            e: expires,
            d: false,
        };
        self.run(Op::Change(line)).await.map(drop)
    }

    pub async fn drop_key(&self, key: &str) -> Result<(), JournalError> {
        let line = Line {
            k: key.to_string(),
            v: None,
            e: 0,
            d: true,
        };
        self.run(Op::Change(line)).await.map(drop)
    }

    /// Forgets the sessions expired by `now` and rewrites the journal; how many went (none
    /// when another process keeps the sessions: its own sweep does).
    pub async fn sweep(&self, now: u64) -> Result<usize, JournalError> {
        match self.run(Op::Sweep(now)).await {
            Err(JournalError::Taken { .. }) => Ok(0),
            r => r,
        }
    }

    /// Makes this process the one that keeps the sessions, or says which error stops it.
    pub async fn claim(&self) -> Result<(), JournalError> {
        self.writer
            .get_or_try_init(|| self.open_writer())
            .await
            .map(drop)
    }

    async fn run(&self, op: Op) -> Result<usize, JournalError> {
        let w = self.writer.get_or_try_init(|| self.open_writer()).await?;
        let (done, answer) = tokio::sync::oneshot::channel();
        let gone = || {
            self.io(std::io::Error::other(
                "the sessions journal's writer stopped",
            ))
        };
        w.tx.send((op, done)).map_err(|_| gone())?;
        answer
            .await
            .map_err(|_| gone())?
            .map_err(|e| self.io(std::io::Error::other(e)))
    }

    /// Takes the lock, replays the journal (cutting off an unfinished last line), takes in
    /// session files an older version left, and starts the writer thread.
    async fn open_writer(&self) -> Result<Writer, JournalError> {
        let dir = self.dir.clone();
        let (file, lock, live) = tokio::task::spawn_blocking(move || open_blocking(&dir))
            .await
            .map_err(|e| self.io(std::io::Error::other(e)))??;
        let live = Arc::new(Mutex::new(live));
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let mut state = WriterState {
            dir: self.dir.clone(),
            max_sessions: self.max_sessions,
            file,
            len: 0,
            live: live.clone(),
        };
        state.len = state.file.metadata().map(|m| m.len()).unwrap_or(0);
        std::thread::Builder::new()
            .name("sluis-sessions".into())
            .spawn(move || state.serve(&rx))
            .map_err(|e| self.io(e))?;
        Ok(Writer {
            tx,
            live,
            _lock: lock,
        })
    }
}

fn open_blocking(dir: &Path) -> Result<(File, File, Live), JournalError> {
    let path = dir.join("journal");
    let io = |source| JournalError::Io {
        path: path.display().to_string(),
        source,
    };
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(dir.join(".journal.lock"))
        .map_err(io)?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(JournalError::Taken {
                path: path.display().to_string(),
            });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .append(true)
        .mode(0o600)
        .open(&path)
        .map_err(io)?;
    let mut data = Vec::new();
    file.read_to_end(&mut data).map_err(io)?;
    let (mut live, complete) = replay(&data, &path);
    if complete < data.len() as u64 {
        tracing::warn!(path = %path.display(), "sessions journal: removing the unfinished last line of a write cut off by a crash");
        file.set_len(complete).map_err(io)?;
    }
    let imported = import_files(dir, &mut file, &mut live).map_err(io)?;
    if imported > 0 {
        tracing::info!(
            count = imported,
            "sessions journal: took in the session files of an older version"
        );
    }
    Ok((file, lock, live))
}

/// Appends the sessions an older version kept as `sessions/<key>.json` files, makes them
/// durable, and only then removes the files.
fn import_files(dir: &Path, file: &mut File, live: &mut Live) -> std::io::Result<usize> {
    #[derive(serde::Deserialize)]
    struct Old {
        value: Value,
        expires: u64,
    }
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.starts_with(".tmp-") {
            std::fs::remove_file(&path)?;
        } else if let Some(key) = name.strip_suffix(".json") {
            found.push((key.to_string(), path));
        }
    }
    let mut out = Vec::new();
    for (key, path) in &found {
        if let Some(old) = std::fs::read(path)
            .ok()
            .and_then(|d| serde_json::from_slice::<Old>(&d).ok())
        {
            let line = Line {
                k: key.clone(),
                v: Some(old.value),
                e: old.expires,
                d: false,
            };
            let start = out.len();
            serde_json::to_writer(&mut out, &line).map_err(std::io::Error::other)?;
            out.push(b'\n');
            live.apply(line, (out.len() - start) as u64);
        }
    }
    if !found.is_empty() {
        file.write_all(&out)?;
        file.sync_data()?;
        for (_, path) in &found {
            std::fs::remove_file(path)?;
        }
    }
    Ok(found.len())
}

struct WriterState {
    dir: PathBuf,
    max_sessions: usize,
    file: File,
    len: u64,
    live: Arc<Mutex<Live>>,
}

impl WriterState {
    /// Everything queued goes out in one append and one fdatasync; the changes show in memory
    /// before anyone is told they were written.
    fn serve(&mut self, rx: &std::sync::mpsc::Receiver<Job>) {
        while let Ok(first) = rx.recv() {
            let mut batch = vec![first];
            batch.extend(rx.try_iter());
            let mut changes = Vec::new();
            let mut sweeps = Vec::new();
            for (op, done) in batch {
                match op {
                    Op::Change(line) => changes.push((line, done)),
                    Op::Sweep(now) => sweeps.push((now, done)),
                }
            }
            let refused = self.beyond_bound(&changes);
            let mut out = Vec::new();
            let mut lines = Vec::new();
            for (i, (line, done)) in changes.into_iter().enumerate() {
                if refused.contains(&i) {
                    let _ = done.send(Err(format!(
                        "a new session refused: {} sessions are live",
                        self.max_sessions
                    )));
                    continue;
                }
                let start = out.len();
                // A JSON value always serialises.
                let _ = serde_json::to_writer(&mut out, &line);
                out.push(b'\n');
                lines.push((line, (out.len() - start) as u64, done));
            }
            let written = self.append(&out);
            {
                let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
                for (line, len, done) in lines {
                    if written.is_ok() {
                        live.apply(line, len);
                    }
                    let _ = done.send(written.clone().map(|()| 0));
                }
            }
            for (now, done) in sweeps {
                let _ = done.send(self.sweep(now));
            }
            let (live_bytes, rewrite) = {
                let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
                (
                    live.live_bytes,
                    self.len > COMPACT_FROM && self.len > 2 * live.live_bytes,
                )
            };
            if rewrite && let Err(e) = self.rewrite() {
                tracing::warn!(error = %e, live_bytes, "sessions journal: cannot rewrite it; it keeps growing until the next try");
            }
        }
    }

    /// Which of `changes` start a session that does not fit under [`MAX_SESSIONS`] (the
    /// expired ones forgotten first, when that is needed); changes of live sessions always go.
    fn beyond_bound(&self, changes: &[(Line, Done)]) -> Vec<usize> {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        let starts = |live: &Live| -> Vec<usize> {
            let mut seen = std::collections::HashSet::new();
            changes
                .iter()
                .enumerate()
                .filter(|(_, (l, _))| !l.d && !live.map.contains_key(&l.k) && seen.insert(&l.k))
                .map(|(i, _)| i)
                .collect()
        };
        if live.map.len() + starts(&live).len() <= self.max_sessions {
            return Vec::new();
        }
        live.forget_expired(crate::store::now_unix());
        let room = self.max_sessions.saturating_sub(live.map.len());
        let keys: std::collections::HashSet<&String> = starts(&live)
            .into_iter()
            .skip(room)
            .map(|i| &changes[i].0.k)
            .collect();
        changes
            .iter()
            .enumerate()
            .filter(|(_, (l, _))| !l.d && keys.contains(&l.k))
            .map(|(i, _)| i)
            .collect()
    }

    fn append(&mut self, out: &[u8]) -> Result<(), String> {
        if out.is_empty() {
            return Ok(());
        }
        let done = self
            .file
            .write_all(out)
            .and_then(|()| self.file.sync_data());
        match done {
            Ok(()) => {
                self.len += out.len() as u64;
                Ok(())
            }
            Err(e) => {
                // Nobody is told these lines were written, so none may stay behind.
                let _ = self.file.set_len(self.len);
                Err(e.to_string())
            }
        }
    }

    fn sweep(&mut self, now: u64) -> Result<usize, String> {
        let gone = self
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .forget_expired(now);
        self.rewrite().map_err(|e| e.to_string())?;
        Ok(gone)
    }

    /// Writes the live sessions to a new journal, makes it durable and puts it in place.
    fn rewrite(&mut self) -> std::io::Result<()> {
        let mut out = Vec::new();
        {
            let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
            for (k, (v, e, _)) in &live.map {
                let line = Line {
                    k: k.clone(),
                    v: Some(v.clone()),
                    e: *e,
                    d: false,
                };
                serde_json::to_writer(&mut out, &line).map_err(std::io::Error::other)?;
                out.push(b'\n');
            }
        }
        let tmp = self.dir.join(".journal.new");
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&out)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, self.dir.join("journal"))?;
        File::open(&self.dir)?.sync_all()?;
        self.file = std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir.join("journal"))?;
        self.len = out.len() as u64;
        Ok(())
    }
}

#[cfg(test)]
#[path = "journal_tests.rs"]
mod tests;
