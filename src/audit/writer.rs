//! The server's writer thread: async callers queue records, the thread appends everything
//! queued in one go and makes it durable with one fsync (group commit), through the commit
//! journal when it holds it (`journal`), then answers every caller. Lazy records (the
//! outcomes that follow a reply) are not waited for: they wait for the writer's next wake.

use super::{AuditError, AuditLog, Body, Record, journal};

/// Records to make durable before the caller goes on (each a JSON object without `seq`,
/// `time` and `prev`: see `Body`; none: a `sync`), and who to tell when they are. Without
/// anyone to tell: a wake for the lazy records.
pub(super) struct Pending {
    records: Vec<Body>,
    done: Option<tokio::sync::oneshot::Sender<Result<(), Failure>>>,
}

/// How long lazy records may wait for a durable batch to take them along, after one: under
/// load the next comes well within it, and they cost the writer no wake of their own. Short,
/// because a crash loses what waits (recorded as "outcome unknown" at the next start): the
/// kill soak at a light load cut off 8 outcomes in 100 kills with 10 ms here.
const LAZY_WAIT: std::time::Duration = std::time::Duration::from_millis(1);

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
        self.queue(records).await
    }

    /// Appends records without waiting for them, nor for an fsync of their own: they go first
    /// in the writer's next batch (the next durable append, within `LAZY_WAIT` of the last
    /// one, or at once when the writer is idle) and are durable with the next durable append,
    /// so under load they cost no commit and no wake of the writer, and nobody waits for them.
    /// For records that may be lost to a crash because a start finds what they would have
    /// said missing and records that (`recover`): the outcomes that follow a reply. A write
    /// that fails is logged and counted by the writer; `Err` only when the writer is gone.
    /// The head file (and so anchors and the mirror) only ever names durable records.
    pub async fn append_async_lazy(
        self: &std::sync::Arc<Self>,
        records: &[Record],
    ) -> Result<(), AuditError> {
        use std::sync::atomic::{Ordering::SeqCst, fence};
        let writer = self.writer();
        self.lazy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(records.iter().map(Body::of));
        // Against the writer's going idle (`writer_loop`): either it sees these records
        // before it sleeps, or this sees it idle and wakes it.
        fence(SeqCst);
        if self.writer_idle.load(SeqCst) {
            let wake = Pending {
                records: Vec::new(),
                done: None,
            };
            writer.send(wake).map_err(|_| self.gone())?;
        }
        Ok(())
    }

    /// Makes every record appended so far, lazy ones included, durable in the log itself (a
    /// checkpoint), and names the last one in the head.
    pub async fn sync(self: &std::sync::Arc<Self>) -> Result<(), AuditError> {
        self.queue(&[]).await
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

    async fn queue(self: &std::sync::Arc<Self>, records: &[Record]) -> Result<(), AuditError> {
        let records = records.iter().map(Body::of).collect();
        let writer = self.writer();
        let (done, wait) = tokio::sync::oneshot::channel();
        let pending = Pending {
            records,
            done: Some(done),
        };
        writer.send(pending).map_err(|_| self.gone())?;
        match wait.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(f)) => Err(self.error_of(f)),
            Err(_) => Err(self.gone()),
        }
    }

    fn take_lazy(&self) -> Vec<Body> {
        std::mem::take(&mut *self.lazy.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn gone(&self) -> AuditError {
        AuditError::Io {
            path: self.path.display().to_string(),
            source: std::io::Error::other("the audit writer stopped"),
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

impl Drop for AuditLog {
    /// Lazy records the writer did not take yet: it holds the log only weakly and cannot any
    /// more (a reload that changed the log's path dropped it). Written here, durably.
    fn drop(&mut self) {
        let lazy = std::mem::take(self.lazy.get_mut().unwrap_or_else(|p| p.into_inner()));
        if !lazy.is_empty()
            && let Err(e) = self.append_with(lazy, true, None)
        {
            crate::metrics::audit_failure();
            tracing::error!(error = %e, "audit log write failed: outcome records lost");
        }
    }
}

/// The writer thread of `append_async`: the lazy records and everything queued go out in one
/// append.
fn writer_loop(
    weak: &std::sync::Weak<AuditLog>,
    rx: std::sync::mpsc::Receiver<Pending>,
    taken: Option<Option<journal::Journal>>,
) {
    use std::sync::atomic::{Ordering::SeqCst, fence};
    use std::sync::mpsc::RecvTimeoutError;
    // When to try to take the journal again: soon while a reload's previous writer still holds
    // it, a minute after an error (a full disk), so as not to log one every second.
    let mut retry = taken
        .is_some()
        .then(|| std::time::Instant::now() + journal::CHECKPOINT_EVERY);
    let mut journal = taken.flatten();
    let mut first: Option<Pending> = None;
    // A durable batch went out: the lazy records of its transactions follow shortly.
    let mut recent = false;
    loop {
        let Some(log) = weak.upgrade() else {
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
        let queued: Vec<Pending> = first.take().into_iter().chain(rx.try_iter()).collect();
        let sync = queued
            .iter()
            .any(|p| p.done.is_some() && p.records.is_empty());
        // The lazy records go first, taken after the queue: every one appended before a
        // request of this batch was sent is in it, so a durable append makes the records
        // appended before it durable too.
        let mut records = log.take_lazy();
        let lazy = records.len();
        let mut durable = false;
        let mut waiting = Vec::new();
        for p in queued {
            records.extend(p.records);
            durable |= p.done.is_some();
            waiting.extend(p.done);
        }
        if !records.is_empty() || durable {
            let checkpoint = sync && !records.is_empty();
            let mut result = log.append_with(records, durable, journal.as_mut());
            if checkpoint && result.is_ok() {
                // A `sync` is for everything appended before it, in the log itself: with
                // records in its batch, a checkpoint of its own follows them.
                result = log.append_with(Vec::new(), true, journal.as_mut());
            }
            let result = result.map_err(|e| Failure::of(&e));
            if let (Err(e), true) = (&result, lazy > 0) {
                // Nobody waits for those: the next start records the outcomes they were as
                // unknown.
                crate::metrics::audit_failure();
                tracing::error!(error = ?e, records = lazy, "audit log write failed: outcome records lost");
            }
            for done in waiting {
                let _ = done.send(result.clone());
            }
            recent |= durable;
        }
        if let Some(j) = journal.as_mut().filter(|j| j.due()) {
            // A checkpoint: the log synced by itself, the head moved on.
            if let Err(e) = log.append_with(Vec::new(), true, Some(j)) {
                tracing::warn!(error = %e, "audit log checkpoint failed; trying again");
            }
        }
        // After a durable batch the outcomes of its transactions follow: a short sleep, which
        // the next batch usually cuts shorter, takes them along. Else the writer goes idle,
        // and the next lazy append wakes it (`append_async_lazy` is the other side of this:
        // either it sees `writer_idle`, or this sees its records).
        let wait = if std::mem::take(&mut recent) {
            LAZY_WAIT
        } else {
            log.writer_idle.store(true, SeqCst);
            fence(SeqCst);
            if !log
                .lazy
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_empty()
            {
                log.writer_idle.store(false, SeqCst);
                continue;
            }
            journal::CHECKPOINT_EVERY
        };
        // Not holding the log while waiting: dropping it is what ends this thread.
        drop(log);
        first = match rx.recv_timeout(wait) {
            Ok(p) => Some(p),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        if let Some(log) = weak.upgrade() {
            log.writer_idle.store(false, SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::super::tests::typed;
    use super::super::verify::{Verdict, verify_files};
    use super::*;

    fn server_log(dir: &std::path::Path) -> Arc<AuditLog> {
        Arc::new(AuditLog::open(&dir.join("audit/audit.jsonl"), 1 << 30).unwrap())
    }

    /// The transactions of the log's records, in file order.
    fn transactions(log: &AuditLog) -> Vec<String> {
        std::fs::read_to_string(log.path())
            .unwrap_or_default()
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["transaction"].to_string()
            })
            .map(|t| t.trim_matches('"').to_string())
            .collect()
    }

    /// How long until the log holds `n` records (at most 3 s).
    async fn written_within(log: &AuditLog, n: usize) -> Duration {
        let start = Instant::now();
        while transactions(log).len() < n && start.elapsed() < Duration::from_secs(3) {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        start.elapsed()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lazy_records_are_written_soon_after_a_durable_append_and_at_once_by_an_idle_writer() {
        let dir = tempfile::tempdir().unwrap();
        let log = server_log(dir.path());
        log.append_async(&[typed(0)]).await.unwrap();
        // Right after a durable batch: taken along within LAZY_WAIT, not at the next 1 s wake.
        log.append_async_lazy(&[typed(1)]).await.unwrap();
        let soon = written_within(&log, 2).await;
        assert!(soon < Duration::from_millis(500), "{soon:?}");
        // The writer has gone idle (its short wait ran out, then its long one began): a lazy
        // append wakes it, rather than waiting up to a second for its checkpoint wake.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        log.append_async_lazy(&[typed(2)]).await.unwrap();
        let idle = written_within(&log, 3).await;
        assert!(idle < Duration::from_millis(500), "{idle:?}");
        assert_eq!(transactions(&log), ["T0", "T1", "T2"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_durable_append_makes_the_lazy_records_appended_before_it_durable() {
        let dir = tempfile::tempdir().unwrap();
        let log = server_log(dir.path());
        for n in 0..20 {
            log.append_async(&[typed(3 * n)]).await.unwrap();
            log.append_async_lazy(&[typed(3 * n + 1)]).await.unwrap();
            log.append_async(&[typed(3 * n + 2)]).await.unwrap();
            // The head names the last durable record: the lazy one before it is in the log
            // and durable with it.
            let (seq, _) = log.head().unwrap();
            let ts = transactions(&log);
            assert_eq!(ts.len() as u64, seq + 1, "{ts:?}");
            assert_eq!(
                ts[ts.len() - 2..],
                [format!("T{}", 3 * n + 1), format!("T{}", 3 * n + 2)]
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lazy_records_the_writer_did_not_take_are_written_when_the_log_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let log = server_log(dir.path());
        let path = log.path().to_path_buf();
        log.append_async(&[typed(0)]).await.unwrap();
        // The writer waits up to LAZY_WAIT for lazy records; the log goes before that.
        log.append_async_lazy(&[typed(1)]).await.unwrap();
        drop(log);
        assert_eq!(
            verify_files(&[path]).verdict,
            Verdict::Intact { records: 2 }
        );
    }
}
