//! The dispatcher: turns live outreaches into messages, at the right hour for each recipient, at
//! the sender's rate, and records what happened to every recipient.
//!
//! One [`Dispatcher::tick`] does, for every outreach that is `scheduled` or `in_progress`:
//! 1. resolve the sends of a Herald that died mid-send (leases past their end) by the channel's
//!    [`CrashPolicy`](herald_core::outreach::CrashPolicy): SMS and voice become `unknown` and are never re-sent; email is sent again
//!    with the same idempotency key, so the same `Message-ID`;
//! 2. move the outreach on ([`herald_core::outreach::decide`]): start it at its start time, expire
//!    what is left at its end time, complete it when every recipient is terminal;
//! 3. while it is in progress: claim due recipients in batches with a lease (never more than the
//!    sender's rate allows right now), render each one's message, defer those whose sending hours
//!    are closed to their next window, send the rest with bounded concurrency, and record every
//!    outcome in one batch. Transient failures are retried with exponential back-off and jitter
//!    (honouring `Retry-After`) up to `max_attempts`; permanent ones fail at once with the
//!    provider's code; Twilio's 21610 (the number opted out) also suppresses the number for the
//!    sender.
//!
//! [`Dispatcher::run`] ticks until shutdown; a tick that is interrupted by shutdown still records
//! the results of the sends it started. The clock is injected ([`Clock`]), so tests drive time.
//!
//! The steps live in their own files under `dispatch/`: `config.rs` (`[dispatch]` in
//! `herald.toml`), `outreach.rs` (one outreach's tick: recovery, start, expiry, completion),
//! `batch.rs` (claim → render → send → record), `render.rs` (a recipient's message and time
//! zone), `outcome.rs` (what a send's result means: retry, fail, suppress) and `unsubscribe.rs`
//! (signed email unsubscribe links).

mod batch;
mod config;
mod journal;
mod outcome;
mod outreach;
mod render;
mod unsubscribe;

pub use config::{DailyCapConfig, DispatchConfig, FrequencyCap, RateConfig};
pub use unsubscribe::UnsubscribeLinks;

use crate::clock::Clock;
use herald_channels::Transports;
use herald_store::{DeliveryResult, DispatchStore, Outcome, SentMessage, StoreError};
use jiff::{SignedDuration, Timestamp};
use outreach::Ctx;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Notify;

/// What one tick did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TickReport {
    pub started: u64,
    pub completed: u64,
    pub expired: u64,
    pub recovered: u64,
    pub sent: u64,
    pub retried: u64,
    pub deferred: u64,
    pub failed: u64,
    pub skipped: u64,
    pub unknown: u64,
    /// Work was left due when the tick ended (a full batch, the time slice ran out): tick again
    /// at once.
    pub more_due: bool,
    /// A sender ran out of tokens: tick again after this long.
    pub rate_wait: Option<Duration>,
}

impl TickReport {
    fn count(&mut self, outcome: &Outcome) {
        let n = match outcome {
            Outcome::Sent { .. } => &mut self.sent,
            Outcome::Retry { .. } => &mut self.retried,
            Outcome::Defer { .. } => &mut self.deferred,
            Outcome::Failed { .. } => &mut self.failed,
            Outcome::Skipped { .. } => &mut self.skipped,
            Outcome::Unknown { .. } => &mut self.unknown,
        };
        *n += 1;
    }
}

/// Why the dispatcher could not do its work this tick.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("Herald stopped before the results of {0} recipients could be written")]
    Unwritten(usize),
    #[error("the dispatch journal {path}: {source}")]
    Journal {
        path: String,
        source: std::io::Error,
    },
}

/// `host:pid`: the host name (from `/etc/hostname` or `HOSTNAME`) and the process id.
fn default_node() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "herald".to_string());
    format!("{host}:{}", std::process::id())
}

/// A failed write of results is tried again after this long, then twice as long each time, up
/// to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Results written at once when a journal is replayed.
const REPLAY_CHUNK: usize = 1000;

/// The dispatcher. Share it in an `Arc`; [`Dispatcher::run`] is its loop.
pub struct Dispatcher {
    store: Arc<dyn DispatchStore>,
    transports: Transports,
    clock: Arc<dyn Clock>,
    config: DispatchConfig,
    unsubscribe: Option<UnsubscribeLinks>,
    ticks: AtomicU64,
    wake: Notify,
    /// Set once shutdown began: no send begins any more.
    stopping: AtomicBool,
    /// Where results go that could not be written before Herald stopped.
    journal: Option<journal::Journal>,
    /// What this process's dispatcher did, for `GET /metrics`.
    metrics: Arc<crate::Metrics>,
    /// This node's name in the dispatcher's log lines.
    node: String,
    /// When kept status reports were last purged (see [`Dispatcher::tick`]).
    last_purge: std::sync::Mutex<Option<Timestamp>>,
    /// Where a day of `[dispatch.daily_caps]` begins and ends.
    cap_zone: jiff::tz::TimeZone,
}

/// How long a provider's status report may wait for the send it reports on; older ones are
/// forgotten (checked at most once an hour).
pub const KEPT_REPORT_TTL: SignedDuration = SignedDuration::from_hours(24 * 7);
const PURGE_EVERY: SignedDuration = SignedDuration::from_hours(1);

impl Dispatcher {
    pub fn new(
        store: Arc<dyn DispatchStore>,
        transports: Transports,
        clock: Arc<dyn Clock>,
        config: DispatchConfig,
    ) -> Self {
        let journal = config.journal.clone().map(journal::Journal::new);
        let node = config.node.clone().unwrap_or_else(default_node);
        let cap_zone = config.daily_caps.validate().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "daily caps count days in UTC");
            jiff::tz::TimeZone::UTC
        });
        Self {
            store,
            transports,
            clock,
            config,
            unsubscribe: None,
            ticks: AtomicU64::new(0),
            wake: Notify::new(),
            stopping: AtomicBool::new(false),
            journal,
            metrics: Arc::new(crate::Metrics::new()),
            node,
            last_purge: std::sync::Mutex::new(None),
            cap_zone,
        }
    }

    /// Emails carry `List-Unsubscribe` links made by `links`.
    pub fn with_unsubscribe_links(mut self, links: UnsubscribeLinks) -> Self {
        self.unsubscribe = Some(links);
        self
    }

    /// The counters of this process (the server adds its own and serves them).
    pub fn metrics(&self) -> Arc<crate::Metrics> {
        self.metrics.clone()
    }

    pub fn config(&self) -> &DispatchConfig {
        &self.config
    }

    /// Ask the loop to look for work now (a new outreach, a retry) instead of at its next poll.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Whether shutdown began (see [`Dispatcher::run`]): no send begins any more.
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    /// Ticks until `shutdown` resolves. Then no send begins any more: a tick under way gives the
    /// sends it began up to `shutdown_grace_secs` to finish and records their results, and its
    /// recipients claimed but not begun go back to the queue. If the grace runs out first, `run`
    /// returns anyway; what was left is resolved by the lease recovery of the next start (or of
    /// another node): sends never begun go back to the queue, begun ones follow the channel's
    /// crash policy. Store errors are logged and retried at the next poll.
    pub async fn run(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        use tracing::Instrument;
        let span = tracing::info_span!("dispatcher", node = %self.node);
        self.run_loop(shutdown).instrument(span).await;
    }

    async fn run_loop(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let poll = Duration::from_millis(self.config.poll_ms.max(1));
        let grace = Duration::from_secs(self.config.shutdown_grace_secs);
        // Results kept by the last run go in first: nothing is claimed before they are written.
        let mut wait = RETRY_FIRST;
        loop {
            match self.replay_journal().await {
                Ok(_) => break,
                Err(e) => tracing::warn!(
                    error = %e,
                    retry_in_ms = wait.as_millis() as u64,
                    "cannot write the results kept by the last run yet; nothing is sent until then"
                ),
            }
            tokio::select! {
                biased;
                () = &mut shutdown => return,
                () = tokio::time::sleep(wait) => {}
            }
            wait = (wait * 2).min(RETRY_MAX);
        }
        loop {
            let tick = self.tick();
            tokio::pin!(tick);
            let result = tokio::select! {
                biased;
                r = &mut tick => r,
                () = &mut shutdown => {
                    self.stopping.store(true, Ordering::Relaxed);
                    match tokio::time::timeout(grace, &mut tick).await {
                        Ok(Err(e)) => tracing::warn!(error = %e, "the last tick failed at shutdown"),
                        Ok(Ok(_)) => {}
                        Err(_) => tracing::warn!(
                            grace_secs = grace.as_secs(),
                            "sends were still in flight when the shutdown grace ran out; \
                             their recipients are resolved when their lease ends"
                        ),
                    }
                    return;
                }
            };
            let pause = match result {
                Ok(report) if report.more_due => Duration::ZERO,
                Ok(report) => report.rate_wait.map_or(poll, |w| w.min(poll)),
                Err(e) => {
                    tracing::warn!(error = %e, "dispatcher tick failed; trying again shortly");
                    poll
                }
            };
            if pause.is_zero() {
                tokio::select! {
                    biased;
                    () = &mut shutdown => return,
                    () = tokio::task::yield_now() => {}
                }
            } else {
                tokio::select! {
                    biased;
                    () = &mut shutdown => return,
                    () = self.wake.notified() => {}
                    () = tokio::time::sleep(pause) => {}
                }
            }
        }
    }

    /// Settles what a previous run left in the journal (see `[dispatch] journal` and the
    /// `journal` module): writes the outcomes it holds, gives back to the queue the recipients
    /// whose sends were marked begun but never made, then empties it. The number of recipients
    /// settled. Nothing happens without a journal.
    pub async fn replay_journal(&self) -> Result<usize, DispatchError> {
        let Some(journal) = &self.journal else {
            return Ok(0);
        };
        let failed = |e| DispatchError::Journal {
            path: journal.path().display().to_string(),
            source: e,
        };
        let recovered = journal.recover().map_err(failed)?;
        if recovered.is_empty() {
            journal.clear(recovered).map_err(failed)?;
            return Ok(0);
        }
        let now = self.clock.now();
        let mut settled = 0;
        // By claim: each claim's results apply only to the recipients it still holds.
        for claim in recovered.results.chunk_by(|a, b| a.0 == b.0) {
            let held = claim[0].0;
            for chunk in claim.chunks(REPLAY_CHUNK) {
                let results: Vec<DeliveryResult> = chunk.iter().map(|(_, r)| r.clone()).collect();
                let ids: HashSet<i64> = results.iter().map(|r| r.recipient_id).collect();
                let timeline: Vec<SentMessage> = recovered
                    .timeline
                    .iter()
                    .filter(|m| ids.contains(&m.recipient_id))
                    .cloned()
                    .collect();
                self.store
                    .record_batch(now, held, &results, &timeline)
                    .await?;
                settled += chunk.len();
            }
        }
        let mut released = 0;
        for (at, ids) in &recovered.unbegun {
            released += self.store.release_unbegun(now, *at, ids).await?;
        }
        journal.clear(recovered).map_err(failed)?;
        tracing::info!(
            results = settled,
            released,
            "settled what the last run left in the journal"
        );
        Ok(settled + usize::try_from(released).unwrap_or(usize::MAX))
    }

    /// One pass over every live outreach (see the module docs).
    pub async fn tick(&self) -> Result<TickReport, DispatchError> {
        let mut report = TickReport::default();
        self.purge_kept_reports().await?;
        let mut live = self.store.live_outreaches().await?;
        // Take turns: no outreach always goes first for a shared sender's tokens.
        if !live.is_empty() {
            let turn = self.ticks.fetch_add(1, Ordering::Relaxed) as usize % live.len();
            live.rotate_left(turn);
        }
        let mut contexts: HashMap<uuid::Uuid, Result<Arc<Ctx>, String>> = HashMap::new();
        for o in live {
            let ctx = match contexts.get(&o.campaign_id) {
                Some(c) => c.clone(),
                None => {
                    let c = self.context(o.campaign_id).await?.map(Arc::new);
                    contexts.insert(o.campaign_id, c.clone());
                    c
                }
            };
            self.tick_outreach(&o, ctx, &mut report).await?;
        }
        Ok(report)
    }

    /// Forgets status reports kept for more than [`KEPT_REPORT_TTL`] without finding their
    /// send; at most once every [`PURGE_EVERY`].
    async fn purge_kept_reports(&self) -> Result<(), DispatchError> {
        let now = self.clock.now();
        {
            let mut last = self
                .last_purge
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if last.is_some_and(|at| now < at + PURGE_EVERY) {
                return Ok(());
            }
            *last = Some(now);
        }
        let n = self
            .store
            .purge_kept_status_reports(now - KEPT_REPORT_TTL)
            .await?;
        if n > 0 {
            tracing::info!(
                reports = n,
                "forgot provider status reports that never found their send"
            );
        }
        Ok(())
    }
}
