//! Upstream sessions kept open between transactions, per lane: a transaction that ends well
//! (the upstream's 2xx after the final dot) gives its session back instead of saying QUIT; the
//! next one takes it and starts with RSET, which also proves the session still lives. A session
//! that erred, or whose transaction ended in anything but a 2xx, is never given back. Bounded
//! in number (`idle_connections`) and in age (`idle_time`).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::wire::Client;

pub struct Pool {
    idle: Mutex<Vec<(Client, Instant)>>,
    max: usize,
    keep: Duration,
}

impl Pool {
    pub fn new(max: usize, keep: Duration) -> Pool {
        Pool {
            idle: Mutex::new(Vec::new()),
            max,
            keep,
        }
    }

    /// The most recently used idle session that is young enough; older ones are closed.
    pub fn take(&self) -> Option<Client> {
        let (found, stale) = {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            let (fresh, stale): (Vec<_>, Vec<_>) = idle
                .drain(..)
                .partition(|(_, since)| now.duration_since(*since) < self.keep);
            *idle = fresh;
            (idle.pop().map(|(c, _)| c), stale)
        };
        close(stale.into_iter().map(|(c, _)| c));
        found
    }

    /// Keeps `client` for the next transaction, or says QUIT when the pool is full.
    pub async fn give_back(&self, client: Client) {
        let refused = {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            if idle.len() < self.max {
                idle.push((client, Instant::now()));
                None
            } else {
                Some(client)
            }
        };
        if let Some(c) = refused {
            c.quit().await;
        }
    }

    pub fn enabled(&self) -> bool {
        self.max > 0
    }
}

/// Says QUIT to sessions nobody will use, off the caller's path.
fn close(clients: impl Iterator<Item = Client>) {
    for c in clients {
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(c.quit());
        }
    }
}
