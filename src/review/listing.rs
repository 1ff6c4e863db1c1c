//! The quarantine list as the pages show it: every item's metadata, newest first, with the
//! rules and detectors that occur, kept in memory and refreshed from the store in the
//! background once it is older than [`FRESH`] (read anew first when older than [`STALE_OK`]:
//! nobody looked for a while).
//!
//! Why: reading every item from the store is what a list costs (10,000 JSON files, or rows),
//! and ten reviewers paging through it at once would each pay it; here one refresh a second
//! pays it and every page is a filter over memory. A list may lag a second behind another
//! instance; this instance's own actions take their item off at once ([`Listing::forget`]),
//! and every action reads the item afresh from the store (claims decide, not this list).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::quarantine::{Item, Quarantine, StoreError};

/// How old a list may be before a page asks for a new one.
const FRESH: Duration = Duration::from_secs(1);
/// How old a list may be and still be shown while a new one is read; an older one (nobody
/// looked for a while) is read anew first.
const STALE_OK: Duration = Duration::from_secs(10);

/// One reading of the store.
pub struct Snapshot {
    /// Newest first.
    pub items: Vec<Item>,
    pub rules: Vec<String>,
    pub detectors: Vec<String>,
}

impl Snapshot {
    fn of(mut items: Vec<Item>) -> Snapshot {
        items.sort_by(|a, b| b.created_unix.cmp(&a.created_unix).then(a.id.cmp(&b.id)));
        let mut rules: Vec<String> = items
            .iter()
            .flat_map(|i| i.recipients.iter().map(|r| r.rule.clone()))
            .collect();
        rules.sort();
        rules.dedup();
        let mut detectors: Vec<String> = items
            .iter()
            .flat_map(|i| {
                i.findings
                    .iter()
                    .filter_map(|f| f.split(' ').next().map(String::from))
            })
            .collect();
        detectors.sort();
        detectors.dedup();
        Snapshot {
            items,
            rules,
            detectors,
        }
    }
}

#[derive(Default)]
struct State {
    snapshot: Option<(Arc<Snapshot>, Instant)>,
    refreshing: bool,
}

#[derive(Default)]
pub struct Listing {
    state: Arc<Mutex<State>>,
    /// Held by the one request that reads the first list; the others wait for it rather than
    /// each reading the whole store.
    first: tokio::sync::Mutex<()>,
}

/// Every item, read in a blocking thread: the files store reads thousands of files, which
/// must not stall the threads that answer pages meanwhile.
async fn read(store: &Quarantine) -> Result<Snapshot, StoreError> {
    let (store, handle) = (store.clone(), tokio::runtime::Handle::current());
    tokio::task::spawn_blocking(move || handle.block_on(store.list()).map(Snapshot::of))
        .await
        .map_err(|e| StoreError::Unavailable(format!("reading the list: {e}")))?
}

impl Listing {
    /// The list: the one in memory when fresh; a stale one while a refresh runs in the
    /// background; read now when there is none yet.
    pub async fn get(&self, store: &Quarantine) -> Result<Arc<Snapshot>, StoreError> {
        let stale = {
            let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
            match &s.snapshot {
                Some((snap, at)) if at.elapsed() < FRESH => return Ok(snap.clone()),
                Some((snap, at)) if at.elapsed() < STALE_OK => {
                    let snap = snap.clone();
                    if !s.refreshing {
                        s.refreshing = true;
                        let (state, store) = (self.state.clone(), store.clone());
                        tokio::spawn(async move {
                            let fresh = read(&store).await;
                            let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
                            s.refreshing = false;
                            match fresh {
                                Ok(snap) => s.snapshot = Some((Arc::new(snap), Instant::now())),
                                Err(e) => {
                                    tracing::warn!(error = %e, "web: cannot refresh the quarantine list")
                                }
                            }
                        });
                    }
                    Some(snap)
                }
                _ => None,
            }
        };
        if let Some(snap) = stale {
            return Ok(snap);
        }
        let _first = self.first.lock().await;
        if let Some((snap, at)) = &self
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .snapshot
            && at.elapsed() < FRESH
        {
            // Read by the request this one waited for.
            return Ok(snap.clone());
        }
        let snap = Arc::new(read(store).await?);
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.snapshot = Some((snap.clone(), Instant::now()));
        Ok(snap)
    }

    /// Takes item `id` off the list in memory (this instance settled it).
    pub fn forget(&self, id: &str) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((snap, at)) = &s.snapshot
            && snap.items.iter().any(|i| i.id == id)
        {
            let items = snap.items.iter().filter(|i| i.id != id).cloned().collect();
            let at = *at;
            s.snapshot = Some((Arc::new(Snapshot::of(items)), at));
        }
    }
}
