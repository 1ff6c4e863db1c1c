//! The server's writer thread: async callers queue records, the thread appends everything
//! queued in one go and makes it durable with one fsync (group commit), through the commit
//! journal when it holds it (`journal`), then answers every caller.

use super::{AuditError, AuditLog, Body, Record, journal};

/// Records waiting for the writer thread (each a JSON object without `seq`, `time` and
/// `prev`: see `Body`), whether they must be durable before the caller goes on, and who to
/// tell when they are written.
pub(super) type Pending = (
    Vec<Body>,
    bool,
    tokio::sync::oneshot::Sender<Result<(), Failure>>,
);

/// An append's failure, handed to every caller whose records were in the batch.
#[derive(Debug, Clone)]
pub(super) enum Failure {
    Damaged(String),
    Io(std::io::ErrorKind, String),
}

impl Failure {
    fn of(e: &AuditError) -> Failure {
        match e {
            AuditError::Damaged { what, .. } => Failure::Damaged(what.clone()),
            AuditError::Io { source, .. } => Failure::Io(source.kind(), source.to_string()),
        }
    }
}

impl AuditLog {
    /// Appends records durably, for async code (group commit): a writer thread takes
    /// everything queued, writes it and makes it durable with one fsync (of the commit
    /// journal, `journal`, or of the log) and then answers every waiting caller, so many
    /// sessions cost few fsyncs and no blocking thread each.
    pub async fn append_async(
        self: &std::sync::Arc<Self>,
        records: &[Record],
    ) -> Result<(), AuditError> {
        self.queue(records, true).await
    }

    /// Appends records in chain order without waiting for an fsync of their own: they are
    /// written at once and become durable with the next durable append (one file, one
    /// fdatasync), so they cost no commit. For records that may be lost to an operating-system
    /// crash because a start finds what they would have said missing and records that
    /// (`recover`): the outcomes that follow a reply. The head file (and so anchors and the
    /// mirror) only ever names durable records.
    pub async fn append_async_lazy(
        self: &std::sync::Arc<Self>,
        records: &[Record],
    ) -> Result<(), AuditError> {
        self.queue(records, false).await
    }

    /// Makes every record written so far durable in the log itself (a checkpoint), and names
    /// the last one in the head.
    pub async fn sync(self: &std::sync::Arc<Self>) -> Result<(), AuditError> {
        self.queue(&[], true).await
    }

    /// Takes the commit journal (writing it with zeros when it is new) and starts the writer
    /// thread of `append_async` with it, now rather than at the first record: the server
    /// calls this before it accepts mail, so that no record waits for it.
    pub fn start_writer(self: &std::sync::Arc<Self>) {
        let journal = self.take_journal().unwrap_or_default();
        self.writer_with(Some(journal));
    }

    /// The commit journal, `Ok(None)` while another writer holds it; an error (a full disk)
    /// is logged here.
    fn take_journal(&self) -> Result<Option<journal::Journal>, ()> {
        if self.journal_bytes == 0 {
            return Ok(None);
        }
        journal::Journal::take(&self.path, self.journal_bytes).map_err(|e| {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot open the audit log's commit journal: the log is synced by itself; trying again in a minute");
        })
    }

    fn writer(self: &std::sync::Arc<Self>) -> &std::sync::mpsc::Sender<Pending> {
        self.writer_with(None)
    }

    /// The writer thread's queue, starting the thread with `journal` (`Some`: taken already,
    /// or tried) when there is none yet.
    fn writer_with(
        self: &std::sync::Arc<Self>,
        journal: Option<Option<journal::Journal>>,
    ) -> &std::sync::mpsc::Sender<Pending> {
        self.writer.get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel::<Pending>();
            // A weak reference: when the log is dropped (a reload replaced it), its sender goes
            // with it and the thread ends.
            let log = std::sync::Arc::downgrade(self);
            std::thread::Builder::new()
                .name("sluis-audit".into())
                .spawn(move || writer_loop(&log, rx, journal))
                .map(|_| ())
                .unwrap_or_else(|e| tracing::error!(error = %e, "cannot start the audit writer"));
            tx
        })
    }

    async fn queue(
        self: &std::sync::Arc<Self>,
        records: &[Record],
        durable: bool,
    ) -> Result<(), AuditError> {
        let records = records.iter().map(Body::of).collect();
        let writer = self.writer();
        let (done, wait) = tokio::sync::oneshot::channel();
        let gone = || AuditError::Io {
            path: self.path.display().to_string(),
            source: std::io::Error::other("the audit writer stopped"),
        };
        writer.send((records, durable, done)).map_err(|_| gone())?;
        match wait.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(f)) => Err(self.error_of(f)),
            Err(_) => Err(gone()),
        }
    }

    fn error_of(&self, f: Failure) -> AuditError {
        let path = self.path.display().to_string();
        match f {
            Failure::Damaged(what) => AuditError::Damaged { path, what },
            Failure::Io(kind, msg) => AuditError::Io {
                path,
                source: std::io::Error::new(kind, msg),
            },
        }
    }
}

/// The writer thread of `append_async`: everything queued goes out in one append.
fn writer_loop(
    log: &std::sync::Weak<AuditLog>,
    rx: std::sync::mpsc::Receiver<Pending>,
    taken: Option<Option<journal::Journal>>,
) {
    use std::sync::mpsc::RecvTimeoutError;
    // When to try to take the journal again: soon while a reload's previous writer still holds
    // it, a minute after an error (a full disk), so as not to log one every second.
    let mut retry = taken
        .is_some()
        .then(|| std::time::Instant::now() + journal::CHECKPOINT_EVERY);
    let mut journal = taken.flatten();
    let mut first = None;
    loop {
        let Some(log) = log.upgrade() else {
            return;
        };
        if journal.as_ref().is_some_and(|j| j.failed) {
            journal = None;
            retry = Some(std::time::Instant::now() + std::time::Duration::from_secs(60));
        }
        // The journal is taken at the start, and again a while after it could not be (a
        // reload's previous writer still held it, or it failed).
        if journal.is_none()
            && log.journal_bytes > 0
            && retry.is_none_or(|at| std::time::Instant::now() >= at)
        {
            let (taken, wait) = match log.take_journal() {
                Ok(j) => (j, journal::CHECKPOINT_EVERY),
                Err(()) => (None, std::time::Duration::from_secs(60)),
            };
            journal = taken;
            retry = Some(std::time::Instant::now() + wait);
        }
        if let Some(first) = first.take() {
            let mut batch = vec![first];
            batch.extend(rx.try_iter());
            let mut records = Vec::new();
            let mut waiting = Vec::with_capacity(batch.len());
            let mut durable = false;
            for (r, d, done) in batch {
                records.extend(r);
                durable |= d;
                waiting.push(done);
            }
            let result = log
                .append_with(records, durable, journal.as_mut())
                .map_err(|e| Failure::of(&e));
            for done in waiting {
                let _ = done.send(result.clone());
            }
        }
        if let Some(j) = journal.as_mut().filter(|j| j.due()) {
            // A checkpoint: the log synced by itself, the head moved on.
            if let Err(e) = log.append_with(Vec::new(), true, Some(j)) {
                tracing::warn!(error = %e, "audit log checkpoint failed; trying again");
            }
        }
        // Not holding the log while waiting: dropping it is what ends this thread.
        drop(log);
        first = match rx.recv_timeout(journal::CHECKPOINT_EVERY) {
            Ok(p) => Some(p),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return,
        };
    }
}
