//! Positive replies the client may not have read, so that its retry of the same message is
//! answered instead of delivered a second time (DESIGN §8, "nothing twice").
//!
//! Between an upstream's 250 and the client reading Sluis's (RFC 1047), a crash makes the
//! client send again what was already delivered, held or sealed. Sluis notes each positive
//! reply just before it goes out: a key of the envelope and the content (SHA-256), appended to
//! a file with write(2) and no fsync. The page cache outlives the process (kill -9, the OOM
//! killer, a panic), not the machine: after a power cut the old window is back, nothing worse.
//! When the client sends its next command after the reply, it has read it, and the note is
//! crossed out. A transaction that arrives with the key of a note not crossed out within
//! `server.repeat_window` is the client's retry: it gets the positive reply again and nothing
//! is sent, held or sealed twice.
//!
//! Only messages with a Message-ID are noted: the same Message-ID on the same content is the
//! same message (RFC 5322 §3.6.4), while identical content without one may be meant twice.
//! Every error here costs the protection, never a message: a note that cannot be written or
//! read means the retry is delivered again, as without this module.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::spool::SpooledBody;

/// Notes kept at most; beyond, the oldest go first. Notes are crossed out as soon as the
/// client's next command arrives, so only replies cut off by a crash or a dropped connection
/// stay: this bounds memory against clients that never say another word.
pub const MAX_NOTES: usize = 100_000;
/// The file is rewritten with the live notes once this much has been appended.
const REWRITE_BYTES: u64 = 8 << 20;

/// A transaction's envelope and content, hashed.
pub type Key = [u8; 16];

struct Note {
    at: u64,
    /// The transaction that was delivered.
    id: String,
    /// The latest retry answered from this note: reading its reply crosses the note out too.
    retry: Option<String>,
}

impl Note {
    fn new(at: u64, id: &str) -> Note {
        Note {
            at,
            id: id.to_string(),
            retry: None,
        }
    }
}

#[derive(Default)]
struct Inner {
    notes: HashMap<Key, Note>,
    /// The key of each noted transaction id, for crossing it out.
    ids: HashMap<String, Key>,
    /// Notes by age, oldest first, for evicting at [`MAX_NOTES`] in constant time; entries of
    /// notes crossed out since stay until they come up (or the queue is compacted).
    order: VecDeque<(u64, Key)>,
    file: Option<std::fs::File>,
    appended: u64,
}

/// The notes, in memory and in `<spool>/replies`.
pub struct Repeats {
    path: PathBuf,
    window: Duration,
    inner: Mutex<Inner>,
    /// What the file said of the last run's transactions (noted: whether read), for the
    /// outcomes that run did not record (`audit::recover`); taken once.
    before: Mutex<HashMap<String, bool>>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn hex(key: &Key) -> String {
    data_encoding::HEXLOWER.encode(key)
}

impl Repeats {
    /// Reads the notes a previous process left in `path` (those within `window`), rewrites the
    /// file with them, and appends from there. A zero `window` turns the notes off.
    pub fn open(path: &Path, window: Duration) -> Repeats {
        let mut inner = Inner::default();
        let mut before = HashMap::new();
        if !window.is_zero() {
            if let Ok(f) = std::fs::File::open(path) {
                before = load(std::io::BufReader::new(f), &mut inner, now(), window);
            }
            inner.file = rewrite(path, &inner.notes)
                .map_err(|e| tracing::warn!(path = %path.display(), error = %e, "cannot write the notes of unread replies: a client's retry after a crash may be delivered twice"))
                .ok();
        }
        Repeats {
            path: path.to_path_buf(),
            window,
            inner: Mutex::new(inner),
            before: Mutex::new(before),
        }
    }

    /// The transactions the file noted before this start, and whether their reply was read.
    pub fn take_before(&self) -> HashMap<String, bool> {
        self.before
            .lock()
            .map(|mut b| std::mem::take(&mut *b))
            .unwrap_or_default()
    }

    pub fn enabled(&self) -> bool {
        !self.window.is_zero()
    }

    /// The transaction whose reply to `key` may not have been read, if any.
    pub fn find(&self, key: &Key) -> Option<String> {
        let inner = self.inner.lock().ok()?;
        let note = inner.notes.get(key)?;
        (now().saturating_sub(note.at) < self.window.as_secs()).then(|| note.id.clone())
    }

    /// Notes that transaction `id`'s positive reply is about to go out.
    pub fn note(&self, key: Key, id: &str) {
        if !self.enabled() {
            return;
        }
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        let at = now();
        inner.forget(&key);
        inner.evict_to(MAX_NOTES - 1);
        inner.insert(key, Note::new(at, id));
        let line = format!("+ {at} {} {id}\n", hex(&key));
        self.append(&mut inner, &line);
    }

    /// `retry` was answered from transaction `first`'s note: reading its reply is as good.
    pub fn note_again(&self, first: &str, retry: &str) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        let Some(key) = inner.ids.get(first).copied() else {
            return;
        };
        let previous = inner
            .notes
            .get_mut(&key)
            .and_then(|n| n.retry.replace(retry.to_string()));
        if let Some(previous) = previous {
            inner.ids.remove(&previous);
        }
        inner.ids.insert(retry.to_string(), key);
    }

    /// The client sent another command after transaction `id`'s reply: it has read it.
    pub fn read(&self, id: &str) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        let Some(key) = inner.ids.get(id).copied() else {
            return;
        };
        inner.forget(&key);
        let line = format!("- {}\n", hex(&key));
        self.append(&mut inner, &line);
    }

    /// Appends a line (one write(2), no fsync: see the top); rewrites the file now and then.
    fn append(&self, inner: &mut Inner, line: &str) {
        let Some(file) = inner.file.as_mut() else {
            return;
        };
        if let Err(e) = file.write_all(line.as_bytes()) {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot note a reply: a client's retry after a crash may be delivered twice");
            return;
        }
        inner.appended += line.len() as u64;
        if inner.appended >= REWRITE_BYTES {
            match rewrite(&self.path, &inner.notes) {
                Ok(f) => {
                    inner.file = Some(f);
                    inner.appended = 0;
                }
                Err(e) => {
                    tracing::warn!(path = %self.path.display(), error = %e, "cannot rewrite the notes of unread replies");
                }
            }
        }
    }
}

impl Inner {
    fn insert(&mut self, key: Key, note: Note) {
        self.ids.insert(note.id.clone(), key);
        self.order.push_back((note.at, key));
        self.notes.insert(key, note);
        // Crossed-out notes leave their entries behind; drop them before they add up.
        if self.order.len() > 2 * MAX_NOTES {
            let notes = &self.notes;
            self.order
                .retain(|(at, k)| notes.get(k).is_some_and(|n| n.at == *at));
        }
    }

    /// Evicts the oldest notes until at most `max` are left.
    fn evict_to(&mut self, max: usize) {
        while self.notes.len() > max {
            let Some((at, key)) = self.order.pop_front() else {
                return;
            };
            if self.notes.get(&key).is_some_and(|n| n.at == at) {
                self.forget(&key);
            }
        }
    }

    fn forget(&mut self, key: &Key) {
        if let Some(n) = self.notes.remove(key) {
            self.ids.remove(&n.id);
            if let Some(r) = n.retry {
                self.ids.remove(&r);
            }
        }
    }
}

/// Folds the lines of a notes file into `inner`; lines it cannot read (a cut-off last line) are
/// skipped, notes older than `window` dropped. Every transaction the file notes, and whether
/// its reply was read.
fn load(
    reader: impl BufRead,
    inner: &mut Inner,
    now: u64,
    window: Duration,
) -> HashMap<String, bool> {
    let mut noted: HashMap<String, bool> = HashMap::new();
    let mut id_of: HashMap<Key, String> = HashMap::new();
    for line in reader.split(b'\n').map_while(Result::ok) {
        let Ok(line) = std::str::from_utf8(&line) else {
            continue;
        };
        let mut parts = line.split(' ');
        let parsed = |h: Option<&str>| -> Option<Key> {
            data_encoding::HEXLOWER
                .decode(h?.as_bytes())
                .ok()?
                .try_into()
                .ok()
        };
        match parts.next() {
            Some("+") => {
                let at = parts.next().and_then(|t| t.parse::<u64>().ok());
                let key = parsed(parts.next());
                let id = parts.next().filter(|id| !id.is_empty());
                if let (Some(at), Some(key), Some(id), None) = (at, key, id, parts.next()) {
                    noted.insert(id.to_string(), false);
                    id_of.insert(key, id.to_string());
                    if now.saturating_sub(at) < window.as_secs() {
                        inner.forget(&key);
                        inner.insert(key, Note::new(at, id));
                    }
                }
            }
            Some("-") => {
                if let Some(key) = parsed(parts.next()) {
                    inner.forget(&key);
                    if let Some(id) = id_of.get(&key) {
                        noted.insert(id.clone(), true);
                    }
                }
            }
            _ => {}
        }
    }
    // The file is in the order notes were made, so `order` is oldest first.
    inner.evict_to(MAX_NOTES);
    noted
}

/// Writes the live notes to a new file that replaces `path`; the file to append to.
fn rewrite(path: &Path, notes: &HashMap<Key, Note>) -> std::io::Result<std::fs::File> {
    let tmp = path.with_extension("new");
    let mut text = String::new();
    for (key, n) in notes {
        text.push_str(&format!("+ {} {} {}\n", n.at, hex(key), n.id));
    }
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            // Transaction ids and hashes only, but in the spool, which only Sluis reads.
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::OpenOptions::new().append(true).open(path)
}

/// The key of a transaction: its envelope (sender, recipients in any order) and its content as
/// received.
pub async fn key(mail_from: &str, rcpts: &[&str], body: &mut SpooledBody) -> std::io::Result<Key> {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(b"sluis-repeat-1\0");
    ctx.update(mail_from.as_bytes());
    ctx.update(b"\0");
    let mut rcpts = rcpts.to_vec();
    rcpts.sort_unstable();
    for r in rcpts {
        ctx.update(r.as_bytes());
        ctx.update(b"\0");
    }
    ctx.update(b"\0");
    body.rewind().await?;
    while let Some(chunk) = body.next_chunk().await? {
        ctx.update(&chunk);
    }
    body.rewind().await?;
    let mut key = [0u8; 16];
    key.copy_from_slice(&ctx.finish().as_ref()[..16]);
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    fn k(n: u8) -> Key {
        [n; 16]
    }

    #[test]
    fn a_note_is_found_until_the_client_reads_its_reply() {
        let dir = tempfile::tempdir().unwrap();
        let r = Repeats::open(&dir.path().join("replies"), DAY);
        assert_eq!(r.find(&k(1)), None);
        r.note(k(1), "TX1");
        r.note(k(2), "TX2");
        assert_eq!(r.find(&k(1)).as_deref(), Some("TX1"));
        r.read("TX1");
        assert_eq!(r.find(&k(1)), None, "read: a resend is meant");
        assert_eq!(r.find(&k(2)).as_deref(), Some("TX2"));
        r.read("nobody");
        // A retry answered from TX2's note: until its own reply is read, the note stays.
        r.note_again("TX2", "RETRY1");
        r.note_again("TX2", "RETRY2");
        r.read("RETRY1");
        assert_eq!(r.find(&k(2)).as_deref(), Some("TX2"), "a superseded retry");
        r.read("RETRY2");
        assert_eq!(r.find(&k(2)), None);
        assert!(r.inner.lock().unwrap().ids.is_empty());
    }

    #[test]
    fn notes_outlive_the_process_but_not_their_reading_or_the_window() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replies");
        {
            let r = Repeats::open(&path, DAY);
            r.note(k(1), "TX1");
            r.note(k(2), "TX2");
            r.read("TX2");
            r.note(k(3), "TX3");
            // Dropped without any shutdown, as a killed process is.
        }
        // A line cut off by the crash, and an old note.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(format!("+ 1 {} OLD\n+ 17", hex(&k(4))).as_bytes())
            .unwrap();
        drop(f);
        let r = Repeats::open(&path, DAY);
        let before = r.take_before();
        assert_eq!(before.get("TX1"), Some(&false));
        assert_eq!(before.get("TX2"), Some(&true), "read before the crash");
        assert_eq!(before.get("TX3"), Some(&false));
        assert!(r.take_before().is_empty(), "taken once");
        assert_eq!(r.find(&k(1)).as_deref(), Some("TX1"));
        assert_eq!(r.find(&k(2)), None);
        assert_eq!(r.find(&k(3)).as_deref(), Some("TX3"));
        assert_eq!(r.find(&k(4)), None, "outside the window");
        // Rewritten at open: the live notes only.
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        r.read("TX3");
        drop(r);
        let r = Repeats::open(&path, DAY);
        assert_eq!(r.find(&k(3)), None);
        assert_eq!(r.find(&k(1)).as_deref(), Some("TX1"));
    }

    #[test]
    fn a_zero_window_notes_nothing_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replies");
        let r = Repeats::open(&path, Duration::ZERO);
        r.note(k(1), "TX1");
        assert_eq!(r.find(&k(1)), None);
        assert!(!path.exists());
    }

    #[test]
    fn notes_are_bounded_the_oldest_going_first() {
        let mut inner = Inner::default();
        let mut text = String::new();
        for n in 0..(MAX_NOTES + 10) {
            let mut key = [0u8; 16];
            key[..8].copy_from_slice(&(n as u64).to_le_bytes());
            text.push_str(&format!("+ {} {} T{n}\n", 1_000 + n, hex(&key)));
        }
        load(
            text.as_bytes(),
            &mut inner,
            1_000 + MAX_NOTES as u64,
            10 * DAY,
        );
        assert_eq!(inner.notes.len(), MAX_NOTES);
        assert!(!inner.ids.contains_key("T9"));
        assert!(inner.ids.contains_key("T10"));
    }

    #[test]
    fn eviction_takes_the_oldest_live_note_and_the_queue_stays_bounded() {
        let mut inner = Inner::default();
        let key = |n: usize| {
            let mut k = [0u8; 16];
            k[..8].copy_from_slice(&(n as u64).to_le_bytes());
            k
        };
        // Notes crossed out as soon as made (the usual case) leave queue entries behind.
        for n in 0..3 * MAX_NOTES {
            inner.evict_to(MAX_NOTES - 1);
            inner.insert(key(n), Note::new(n as u64, &format!("T{n}")));
            if n % 2 == 0 {
                inner.forget(&key(n));
            }
        }
        assert_eq!(inner.notes.len(), MAX_NOTES);
        assert!(
            inner.order.len() <= 2 * MAX_NOTES + 1,
            "{}",
            inner.order.len()
        );
        assert_eq!(inner.ids.len(), inner.notes.len());
        // The survivors are the newest live ones.
        let oldest = inner.notes.values().map(|n| n.at).min().unwrap();
        assert_eq!(oldest as usize, 3 * MAX_NOTES - 2 * MAX_NOTES + 1);
    }

    #[tokio::test]
    async fn the_key_covers_the_envelope_and_the_content_not_the_recipients_order() {
        let dir = tempfile::tempdir().unwrap();
        let body = |text: &'static [u8]| {
            let dir = dir.path().to_path_buf();
            async move {
                let mut b = SpooledBody::new(dir, 1 << 20);
                b.write(text).await.unwrap();
                b
            }
        };
        let msg = b"Message-ID: <1@x>\r\n\r\nhello\r\n";
        let a = key("s@x", &["a@y", "b@y"], &mut body(msg).await)
            .await
            .unwrap();
        let b = key("s@x", &["b@y", "a@y"], &mut body(msg).await)
            .await
            .unwrap();
        assert_eq!(a, b);
        for (from, rcpts, text) in [
            ("t@x", &["a@y", "b@y"][..], &msg[..]),
            ("s@x", &["a@y"][..], &msg[..]),
            (
                "s@x",
                &["a@y", "b@y"][..],
                &b"Message-ID: <1@x>\r\n\r\nhellO\r\n"[..],
            ),
        ] {
            let mut b = SpooledBody::new(dir.path().to_path_buf(), 1 << 20);
            b.write(text).await.unwrap();
            assert_ne!(key(from, rcpts, &mut b).await.unwrap(), a);
        }
        // A body spilled to the spool hashes the same as one in memory.
        let mut spilled = SpooledBody::new(dir.path().to_path_buf(), 4);
        spilled.write(msg).await.unwrap();
        assert!(spilled.is_spilled());
        assert_eq!(key("s@x", &["a@y", "b@y"], &mut spilled).await.unwrap(), a);
    }
}
