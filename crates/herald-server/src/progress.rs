//! One progress poller per outreach, whatever the number of streams watching it.
//!
//! Counting an outreach's recipients by state costs the database a scan of its recipients; a
//! poller per stream made 1,000 streams on one large outreach 1,000 scans a second. Instead the
//! first stream of an outreach starts a task that reads the outreach once per interval into a
//! [`tokio::sync::watch`] channel; every stream of that outreach (API or web) subscribes to it.
//! The task ends when its outreach is final or cannot be read, at shutdown, or at the first
//! interval with no subscriber left.

use crate::error::{ApiError, Problem};
use crate::routes::tracking::ProgressEvent;
use herald_store::Store;
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use uuid::Uuid;

/// What the poller last read of an outreach.
#[derive(Debug, Clone)]
pub(crate) enum Snapshot {
    Progress(ProgressEvent),
    /// The outreach cannot be read any more (deleted, or the database failed).
    Gone(Problem),
}

impl Snapshot {
    /// Nothing follows this one.
    pub(crate) fn is_last(&self) -> bool {
        match self {
            Snapshot::Progress(p) => p.status.is_final(),
            Snapshot::Gone(_) => true,
        }
    }
}

impl PartialEq for Snapshot {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Snapshot::Progress(a), Snapshot::Progress(b)) => a == b,
            (Snapshot::Gone(a), Snapshot::Gone(b)) => a.status == b.status && a.detail == b.detail,
            _ => false,
        }
    }
}

pub(crate) type Closed = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The pollers of one server, by outreach.
#[derive(Debug, Default)]
pub(crate) struct ProgressHub {
    pollers: Mutex<HashMap<Uuid, Arc<watch::Sender<Snapshot>>>>,
    /// Reads of an outreach's progress, for tests and diagnostics.
    polls: AtomicU64,
}

impl ProgressHub {
    fn pollers(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Arc<watch::Sender<Snapshot>>>> {
        self.pollers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many times the store was asked for an outreach's progress.
    pub(crate) fn polls(&self) -> u64 {
        self.polls.load(Ordering::Relaxed)
    }

    /// The outreach's progress as it changes. Joins the running poller if there is one (no
    /// database read at all); else reads the outreach once (an unknown one is an error, a 404)
    /// and, unless it is final, starts a poller that reads it every `interval` until `closed`.
    pub(crate) async fn subscribe(
        self: &Arc<Self>,
        store: &Arc<dyn Store>,
        id: Uuid,
        interval: Duration,
        closed: Closed,
    ) -> Result<watch::Receiver<Snapshot>, ApiError> {
        if let Some(tx) = self.pollers().get(&id) {
            return Ok(tx.subscribe());
        }
        self.polls.fetch_add(1, Ordering::Relaxed);
        let first = ProgressEvent::of(&store.get_outreach(id).await?);
        let mut pollers = self.pollers();
        // Another stream may have started one while this one read the store.
        if let Some(tx) = pollers.get(&id) {
            return Ok(tx.subscribe());
        }
        let last = first.status.is_final();
        let (tx, rx) = watch::channel(Snapshot::Progress(first));
        if last {
            // Nothing to watch: the stream sends this one and ends.
            return Ok(rx);
        }
        let tx = Arc::new(tx);
        pollers.insert(id, tx.clone());
        drop(pollers);
        tokio::spawn(self.clone().poll(store.clone(), id, interval, tx, closed));
        Ok(rx)
    }

    async fn poll(
        self: Arc<Self>,
        store: Arc<dyn Store>,
        id: Uuid,
        interval: Duration,
        tx: Arc<watch::Sender<Snapshot>>,
        mut closed: Closed,
    ) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = &mut closed => break,
            }
            {
                // Under the lock, so that a new subscriber either joins this poller before it
                // looks, or finds it gone and starts another.
                let mut pollers = self.pollers();
                if tx.receiver_count() == 0 {
                    remove_if_same(&mut pollers, id, &tx);
                    return;
                }
            }
            self.polls.fetch_add(1, Ordering::Relaxed);
            let next = match store.get_outreach(id).await {
                Ok(o) => Snapshot::Progress(ProgressEvent::of(&o)),
                Err(e) => Snapshot::Gone(ApiError::from(e).to_problem()),
            };
            let last = next.is_last();
            tx.send_if_modified(|current| {
                if *current == next {
                    false
                } else {
                    *current = next;
                    true
                }
            });
            if last {
                break;
            }
        }
        remove_if_same(&mut self.pollers(), id, &tx);
    }
}

fn remove_if_same(
    pollers: &mut HashMap<Uuid, Arc<watch::Sender<Snapshot>>>,
    id: Uuid,
    tx: &Arc<watch::Sender<Snapshot>>,
) {
    if pollers.get(&id).is_some_and(|t| Arc::ptr_eq(t, tx)) {
        pollers.remove(&id);
    }
}
