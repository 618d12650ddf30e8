//! The dispatcher: turns live outreaches into messages, at the right hour for each recipient, at
//! the sender's rate, and records what happened to every recipient.
//!
//! One [`Dispatcher::tick`] does, for every outreach that is `scheduled` or `in_progress`:
//! 1. resolve the sends of a Herald that died mid-send (leases past their end) by the channel's
//!    [`CrashPolicy`]: SMS and voice become `unknown` and are never re-sent; email is sent again
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

use crate::clock::Clock;
use crate::rate::RateLimiter;
use futures_util::StreamExt;
use herald_channels::{OutboundMessage, SendError, Transport, Transports};
use herald_core::outreach::{
    CrashPolicy, OutreachAction, OutreachClock, OutreachStatus, SkipReason, decide, idempotency_key,
};
use herald_core::quiet::{SendingHours, resolve_recipient_zone};
use herald_core::{Address, Campaign, Channel, E164, EmailAddress, Renderer, Sender};
use herald_store::{
    ClaimedRecipient, DeliveryResult, LiveOutreach, Outcome, SentMessage, Store, StoreError,
};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// `[dispatch]` in `herald.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DispatchConfig {
    /// Recipients claimed per batch (and recorded per transaction).
    pub batch_size: u32,
    /// Sends in flight at once.
    pub concurrency: usize,
    /// How long a claim holds a recipient. A Herald that dies mid-send leaves its recipients to be
    /// resolved once this has passed; it must be longer than any send can take.
    pub lease_secs: u64,
    /// Attempts per recipient before a transient failure becomes `failed`.
    pub max_attempts: u32,
    /// The first retry waits about this long; each further one twice as long.
    pub backoff_base_ms: u64,
    /// No retry waits longer than this (unless the provider's `Retry-After` says so).
    pub backoff_max_secs: u64,
    /// How often an idle dispatcher looks for due work.
    pub poll_ms: u64,
    /// Messages per second per sender.
    pub rates: RateConfig,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        Self {
            batch_size: 500,
            concurrency: 32,
            lease_secs: 120,
            max_attempts: 5,
            backoff_base_ms: 2_000,
            backoff_max_secs: 600,
            poll_ms: 500,
            rates: RateConfig::default(),
        }
    }
}

/// `[dispatch.rates]`: messages per second, per sender. Every outreach of a sender shares its rate.
///
/// ```toml
/// [dispatch.rates]
/// sms = 1.0          # a long code: carriers allow about one message a second
/// voice = 1.0
/// email = 20.0
/// [dispatch.rates.senders]
/// "+15550001234" = 100.0   # a short code (or any sender with its own limit)
/// ```
/// `inf` means unlimited.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateConfig {
    pub sms: f64,
    pub voice: f64,
    pub email: f64,
    /// By sender address (E.164 number or email address).
    pub senders: BTreeMap<String, f64>,
}

impl Default for RateConfig {
    fn default() -> Self {
        Self {
            sms: 1.0,
            voice: 1.0,
            email: 20.0,
            senders: BTreeMap::new(),
        }
    }
}

impl RateConfig {
    /// The rate of a sender: its own entry, else its channel's.
    pub fn for_sender(&self, sender: &Sender) -> f64 {
        let rate = self
            .senders
            .get(sender.address.as_str())
            .copied()
            .unwrap_or(match sender.channel {
                Channel::Sms => self.sms,
                Channel::Voice => self.voice,
                Channel::Email => self.email,
                Channel::Chat => f64::INFINITY,
            });
        if rate > 0.0 { rate } else { f64::INFINITY }
    }

    /// Every configured rate must be a positive number.
    pub fn validate(&self) -> Result<(), String> {
        let named = [
            ("sms", self.sms),
            ("voice", self.voice),
            ("email", self.email),
        ];
        for (name, rate) in named.into_iter().map(|(n, r)| (n.to_string(), r)).chain(
            self.senders
                .iter()
                .map(|(a, r)| (format!("senders.\"{a}\""), *r)),
        ) {
            if rate.is_nan() || rate <= 0.0 {
                return Err(format!(
                    "dispatch.rates.{name}: {rate} is not a rate; give messages per second above 0 (inf for unlimited)"
                ));
            }
        }
        Ok(())
    }
}

/// One-click unsubscribe links for email (`List-Unsubscribe`): `{base}/unsubscribe/{key}?sig=…`,
/// signed with HMAC-SHA256 so a link cannot be forged for another recipient.
#[derive(Clone)]
pub struct UnsubscribeLinks {
    base: String,
    key: Vec<u8>,
}

impl std::fmt::Debug for UnsubscribeLinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnsubscribeLinks")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl UnsubscribeLinks {
    /// `base` is Herald's public URL; `key` the signing secret.
    pub fn new(base: &str, key: &[u8]) -> Self {
        Self {
            base: base.trim_end_matches('/').to_string(),
            key: key.to_vec(),
        }
    }

    /// The signature of an idempotency key.
    pub fn sign(&self, idempotency_key: &str) -> String {
        use hmac::{KeyInit, Mac};
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.key)
            .expect("HMAC takes a key of any length");
        mac.update(idempotency_key.as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..16])
    }

    /// Whether `sig` is the signature of `idempotency_key` (constant time).
    pub fn verify(&self, idempotency_key: &str, sig: &str) -> bool {
        let expected = self.sign(idempotency_key);
        expected.len() == sig.len()
            && expected
                .bytes()
                .zip(sig.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }

    pub fn url(&self, idempotency_key: &str) -> String {
        format!(
            "{}/unsubscribe/{idempotency_key}?sig={}",
            self.base,
            self.sign(idempotency_key)
        )
    }
}

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
}

/// What is needed to send for one outreach's campaign, built once per tick.
struct Ctx {
    campaign: Campaign,
    sender: Sender,
    transport: Arc<dyn Transport>,
    renderer: Renderer,
    hours: SendingHours,
    policy: CrashPolicy,
    rate: f64,
    /// Voice: where a person who presses 1 is connected (the sender's inbox's agent number).
    agent_number: Option<E164>,
}

/// The dispatcher. Share it in an `Arc`; [`Dispatcher::run`] is its loop.
pub struct Dispatcher {
    store: Arc<dyn Store>,
    transports: Transports,
    clock: Arc<dyn Clock>,
    config: DispatchConfig,
    limiter: RateLimiter,
    unsubscribe: Option<UnsubscribeLinks>,
    ticks: AtomicU64,
    wake: Notify,
    /// When kept status reports were last purged (see [`Dispatcher::tick`]).
    last_purge: std::sync::Mutex<Option<Timestamp>>,
}

/// How long a provider's status report may wait for the send it reports on; older ones are
/// forgotten (checked at most every [`PURGE_EVERY`]).
pub const KEPT_REPORT_TTL: SignedDuration = SignedDuration::from_hours(24 * 7);
const PURGE_EVERY: SignedDuration = SignedDuration::from_hours(1);

impl Dispatcher {
    pub fn new(
        store: Arc<dyn Store>,
        transports: Transports,
        clock: Arc<dyn Clock>,
        config: DispatchConfig,
    ) -> Self {
        Self {
            store,
            transports,
            clock,
            config,
            limiter: RateLimiter::new(),
            unsubscribe: None,
            ticks: AtomicU64::new(0),
            wake: Notify::new(),
            last_purge: std::sync::Mutex::new(None),
        }
    }

    /// Emails carry `List-Unsubscribe` links made by `links`.
    pub fn with_unsubscribe_links(mut self, links: UnsubscribeLinks) -> Self {
        self.unsubscribe = Some(links);
        self
    }

    pub fn config(&self) -> &DispatchConfig {
        &self.config
    }

    /// Ask the loop to look for work now (a new outreach, a retry) instead of at its next poll.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Ticks until `shutdown` resolves. A tick under way when it does is finished (its sends are
    /// recorded) before `run` returns. Store errors are logged and retried at the next poll.
    pub async fn run(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let poll = Duration::from_millis(self.config.poll_ms.max(1));
        loop {
            let pause = match self.tick().await {
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

    async fn tick_outreach(
        &self,
        o: &LiveOutreach,
        ctx: Result<Arc<Ctx>, String>,
        report: &mut TickReport,
    ) -> Result<(), DispatchError> {
        let now = self.clock.now();
        if o.has_in_flight {
            let policy = match &ctx {
                Ok(c) => c.policy,
                // Without its campaign the channel is unknown: never risk a duplicate.
                Err(_) => CrashPolicy::AtMostOnce,
            };
            let n = self.store.recover_expired_leases(o.id, now, policy).await?;
            if n > 0 {
                tracing::warn!(outreach = %o.id, recipients = n, ?policy, "resolved sends of a Herald that stopped mid-send");
            }
            report.recovered += n;
        }
        let clock = OutreachClock {
            status: o.status,
            start_at: o.start_at,
            end_at: o.end_at,
            pending: u64::from(o.has_pending),
            in_flight: u64::from(o.has_in_flight),
        };
        let mut sending = o.status == OutreachStatus::InProgress;
        match decide(&clock, now) {
            OutreachAction::Wait { .. } => {}
            OutreachAction::Start => {
                if self.store.start_outreach(o.id, now).await? {
                    tracing::info!(outreach = %o.id, "outreach started");
                    report.started += 1;
                }
                sending = true;
            }
            OutreachAction::ExpirePending => {
                let n = self.store.expire_pending(o.id, now).await?;
                tracing::info!(outreach = %o.id, recipients = n, "end time passed; unsent recipients expired");
                report.expired += n;
                sending = false;
                if !o.has_in_flight && self.store.complete_outreach(o.id, now).await? {
                    report.completed += 1;
                }
            }
            OutreachAction::Complete => {
                if self.store.complete_outreach(o.id, now).await? {
                    tracing::info!(outreach = %o.id, "outreach completed");
                    report.completed += 1;
                }
                sending = false;
            }
        }
        if sending && o.has_pending {
            self.send_due(o, &ctx, report).await?;
        }
        Ok(())
    }

    /// The campaign, sender, transport and renderer of an outreach; `Err` with words for a person
    /// when the outreach cannot be sent as configured (its recipients then fail with them).
    async fn context(&self, campaign_id: uuid::Uuid) -> Result<Result<Ctx, String>, StoreError> {
        let campaign = match self.store.get_campaign(campaign_id).await {
            Ok(c) => c,
            Err(StoreError::NotFound { .. }) => return Ok(Err("the campaign was deleted".into())),
            Err(e) => return Err(e),
        };
        let Some(sender_id) = campaign.sender_id else {
            return Ok(Err(format!(
                "the campaign `{}` has no sender to send from",
                campaign.name
            )));
        };
        let sender = self.store.get_sender(sender_id).await?;
        let agent_number = self.store.get_inbox(sender.inbox_id).await?.agent_number;
        let answer = self.store.get_answer(campaign.answer_id).await?;
        let Some(variant) = answer
            .variants
            .iter()
            .find(|v| v.language == campaign.language)
        else {
            return Ok(Err(format!(
                "the answer `{}` has no {} variant",
                answer.name, campaign.language
            )));
        };
        let renderer = match Renderer::new(variant) {
            Ok(r) => r,
            Err(e) => {
                return Ok(Err(format!(
                    "the answer `{}` cannot be used: {e}",
                    answer.name
                )));
            }
        };
        let Some(transport) = self.transports.get(sender.provider) else {
            return Ok(Err(format!(
                "the sender {} uses the {} provider, which is not configured; add [channels.{}] to herald.toml, then retry the failed recipients",
                sender.address,
                sender.provider.as_str(),
                sender.provider.as_str()
            )));
        };
        if !transport.supports(campaign.channel) {
            return Ok(Err(format!(
                "the {} provider cannot carry {} messages",
                sender.provider.as_str(),
                campaign.channel
            )));
        }
        let hours = SendingHours::new(&campaign.schedule, campaign.channel, campaign.quiet_hours);
        let rate = self.config.rates.for_sender(&sender);
        Ok(Ok(Ctx {
            policy: CrashPolicy::for_channel(campaign.channel),
            campaign,
            sender,
            transport,
            renderer,
            hours,
            rate,
            agent_number,
        }))
    }

    async fn send_due(
        &self,
        o: &LiveOutreach,
        ctx: &Result<Arc<Ctx>, String>,
        report: &mut TickReport,
    ) -> Result<(), DispatchError> {
        let slice = Instant::now() + Duration::from_secs(1);
        let lease = SignedDuration::from_secs(i64::try_from(self.config.lease_secs).unwrap_or(120));
        let batch = self.config.batch_size.max(1);
        let mut only_deferred = false;
        loop {
            let now = self.clock.now();
            let (budget, want) = match ctx {
                Ok(c) => {
                    let budget = self.limiter.available(c.sender.id, c.rate, now, batch);
                    if budget == 0 {
                        let wait = self.limiter.wait(c.sender.id, now);
                        report.rate_wait = Some(report.rate_wait.map_or(wait, |w| w.min(wait)));
                        return Ok(());
                    }
                    // Recipients outside their sending hours cost no tokens: after a batch of
                    // only those, claim a full batch even when the sender is nearly out of tokens.
                    (budget, if only_deferred { batch } else { budget })
                }
                Err(_) => (batch, batch),
            };
            let claimed = self
                .store
                .claim_due(o.id, now, now.saturating_add(lease).unwrap_or(now), want)
                .await?;
            if claimed.is_empty() {
                return Ok(());
            }
            let full = claimed.len() as u32 == want;
            let (results, timeline) = match ctx {
                Ok(c) => self.process(o, c, claimed, budget).await?,
                Err(message) => (
                    claimed
                        .iter()
                        .map(|r| DeliveryResult {
                            recipient_id: r.id,
                            outcome: Outcome::Failed {
                                code: Some("config".into()),
                                message: message.clone(),
                            },
                        })
                        .collect(),
                    Vec::new(),
                ),
            };
            only_deferred = results
                .iter()
                .all(|r| matches!(r.outcome, Outcome::Defer { .. }));
            for r in &results {
                report.count(&r.outcome);
            }
            self.store
                .record_results_with_messages(self.clock.now(), &results, &timeline)
                .await?;
            if !full {
                return Ok(());
            }
            if Instant::now() >= slice {
                report.more_due = true;
                return Ok(());
            }
        }
    }

    /// Renders, checks sending hours and sends one claimed batch; the outcome of every recipient.
    async fn process(
        &self,
        o: &LiveOutreach,
        ctx: &Ctx,
        claimed: Vec<ClaimedRecipient>,
        budget: u32,
    ) -> Result<(Vec<DeliveryResult>, Vec<SentMessage>), DispatchError> {
        let now = self.clock.now();
        let mut results = Vec::with_capacity(claimed.len());
        let mut ready: Vec<(ClaimedRecipient, OutboundMessage)> = Vec::new();
        let mut zones: HashMap<String, TimeZone> = HashMap::new();
        // Tokens spent in this batch: messages, or SMS segments.
        let mut used: u32 = 0;
        for r in claimed {
            let zone = self.zone_of(&r, ctx, &mut zones);
            if !ctx.hours.may_send_now(now, Some(&zone)) {
                // Closed for this recipient: wait for their next window. A schedule that never
                // opens leaves them for the end time (or a stop) to resolve; look again daily.
                let due_at = ctx
                    .hours
                    .next_send_time(now, Some(&zone))
                    .unwrap_or_else(|| now + SignedDuration::from_hours(24));
                results.push(DeliveryResult {
                    recipient_id: r.id,
                    outcome: Outcome::Defer { due_at },
                });
                continue;
            }
            let over_budget = |cost: u32| used > 0 && used.saturating_add(cost) > budget;
            if used >= budget {
                results.push(self.rate_deferral(ctx, &r, now));
                continue;
            }
            match self.message(o, ctx, &r) {
                Ok(msg) => {
                    // Carriers meter SMS by the segment: a two-part text costs two tokens.
                    let cost = if ctx.campaign.channel == Channel::Sms {
                        herald_core::sms::analyze(&msg.body).segments.max(1)
                    } else {
                        1
                    };
                    if over_budget(cost) {
                        results.push(self.rate_deferral(ctx, &r, now));
                        continue;
                    }
                    used = used.saturating_add(cost);
                    ready.push((r, msg));
                }
                Err(outcome) => results.push(DeliveryResult {
                    recipient_id: r.id,
                    outcome,
                }),
            }
        }
        // An opt-out that arrived after the import (a STOP to this sender, an unsubscribe, an
        // address added through the API) holds as much as one known at upload time.
        if !ready.is_empty() {
            let addresses: Vec<String> = ready.iter().map(|(r, _)| r.address.clone()).collect();
            let suppressed = self
                .store
                .suppressed_among(ctx.sender.id, &addresses)
                .await?;
            if !suppressed.is_empty() {
                ready.retain(|(r, msg)| {
                    if !suppressed.contains(&r.address) {
                        return true;
                    }
                    if ctx.campaign.channel == Channel::Sms {
                        let cost = herald_core::sms::analyze(&msg.body).segments.max(1);
                        used = used.saturating_sub(cost);
                    } else {
                        used = used.saturating_sub(1);
                    }
                    results.push(DeliveryResult {
                        recipient_id: r.id,
                        outcome: Outcome::Skipped {
                            reason: SkipReason::Suppressed,
                            code: None,
                            message: Some(
                                "the address opted out after the list was uploaded".into(),
                            ),
                        },
                    });
                    false
                });
            }
        }
        if ready.is_empty() {
            return Ok((results, Vec::new()));
        }
        self.limiter.take(ctx.sender.id, ctx.rate, now, used);

        // A stop must take effect within a second, even in the middle of a slow batch.
        let stopped = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicBool::new(false));
        let watcher = {
            let (store, stopped, done, id) =
                (self.store.clone(), stopped.clone(), done.clone(), o.id);
            tokio::spawn(async move {
                while !done.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    if let Ok(OutreachStatus::Stopped) = store.outreach_status(id).await {
                        stopped.store(true, Ordering::Relaxed);
                        return;
                    }
                }
            })
        };
        type Attempt = (
            ClaimedRecipient,
            OutboundMessage,
            Result<herald_channels::Accepted, SendError>,
            bool,
        );
        let sent: Vec<Attempt> = futures_util::stream::iter(ready)
            .map(|(r, msg)| {
                let transport = ctx.transport.clone();
                let stopped = stopped.clone();
                async move {
                    if stopped.load(Ordering::Relaxed) {
                        let skipped = SendError::permanent("stopped", "the outreach was stopped");
                        return (r, msg, Err(skipped), true);
                    }
                    let result = transport.send(&msg).await;
                    (r, msg, result, false)
                }
            })
            .buffer_unordered(self.config.concurrency.max(1))
            .collect()
            .await;
        done.store(true, Ordering::Relaxed);
        watcher.abort();

        let now = self.clock.now();
        let mut timeline = Vec::new();
        for (r, msg, result, was_stopped) in sent {
            let outcome = if was_stopped {
                Outcome::Skipped {
                    reason: SkipReason::Stopped,
                    code: None,
                    message: None,
                }
            } else {
                self.outcome(ctx, &r, result, now).await?
            };
            if let Outcome::Sent {
                provider_message_id,
            } = &outcome
            {
                timeline.push(SentMessage {
                    recipient_id: r.id,
                    sender_id: ctx.sender.id,
                    channel: ctx.campaign.channel,
                    campaign_id: ctx.campaign.id,
                    outreach_id: o.id,
                    from: ctx.sender.address.to_string(),
                    to: r.address.clone(),
                    subject: msg.subject,
                    body: msg.body,
                    provider_message_id: provider_message_id.clone(),
                });
            }
            results.push(DeliveryResult {
                recipient_id: r.id,
                outcome,
            });
        }
        Ok((results, timeline))
    }

    /// Over the sender's rate for now: back in the queue until the next token.
    fn rate_deferral(&self, ctx: &Ctx, r: &ClaimedRecipient, now: Timestamp) -> DeliveryResult {
        let per_token =
            SignedDuration::from_millis((1000.0 / ctx.rate.max(0.001)).min(60_000.0) as i64);
        let wait = SignedDuration::try_from(self.limiter.wait(ctx.sender.id, now))
            .unwrap_or(SignedDuration::from_secs(1))
            .max(per_token);
        DeliveryResult {
            recipient_id: r.id,
            outcome: Outcome::Defer { due_at: now + wait },
        }
    }

    /// The recipient's time zone: the CSV's, else their phone region's single zone, else the
    /// schedule's. Phone regions are looked up once per number prefix in a batch.
    fn zone_of(
        &self,
        r: &ClaimedRecipient,
        ctx: &Ctx,
        cache: &mut HashMap<String, TimeZone>,
    ) -> TimeZone {
        let schedule = &ctx.campaign.schedule;
        if let Some(name) = r.timezone.as_deref().filter(|n| !n.trim().is_empty()) {
            if let Some(tz) = cache.get(name) {
                return tz.clone();
            }
            let (tz, _) = resolve_recipient_zone(Some(name), None, schedule);
            cache.insert(name.to_string(), tz.clone());
            return tz;
        }
        if !ctx.campaign.channel.is_phone() {
            return schedule.timezone().clone();
        }
        // `+` and the first seven digits (country code and area or operator code) decide the
        // region wherever one calling code is shared by several regions.
        let prefix: String = r.address.chars().take(8).collect();
        if let Some(tz) = cache.get(&prefix) {
            return tz.clone();
        }
        let phone = E164::parse(&r.address, None).ok();
        let (tz, _) = resolve_recipient_zone(None, phone.as_ref(), schedule);
        cache.insert(prefix, tz.clone());
        tz
    }

    /// The rendered message for a recipient, or the outcome that stands in for it.
    fn message(
        &self,
        o: &LiveOutreach,
        ctx: &Ctx,
        r: &ClaimedRecipient,
    ) -> Result<OutboundMessage, Outcome> {
        let invalid = |message: String| Outcome::Failed {
            code: Some("invalid_address".into()),
            message,
        };
        let to = match ctx.campaign.channel {
            Channel::Email => EmailAddress::parse(&r.address)
                .map(Address::Email)
                .map_err(|e| invalid(e.to_string()))?,
            _ => E164::parse(&r.address, None)
                .map(Address::Phone)
                .map_err(|e| invalid(e.to_string()))?,
        };
        let rendered =
            ctx.renderer
                .render_json(&r.variables_json)
                .map_err(|e| Outcome::Failed {
                    code: Some("render".into()),
                    message: e.to_string(),
                })?;
        let key = idempotency_key(o.id, r.id);
        let unsubscribe_url = match (&self.unsubscribe, ctx.campaign.channel) {
            (Some(links), Channel::Email) => Some(links.url(&key)),
            _ => None,
        };
        if ctx.campaign.channel == Channel::Sms {
            let info = herald_core::sms::analyze(&rendered.body);
            tracing::debug!(
                outreach = %o.id,
                recipient = r.id,
                encoding = info.encoding.as_str(),
                segments = info.segments,
                "sms rendered"
            );
        }
        Ok(OutboundMessage {
            idempotency_key: key,
            channel: ctx.campaign.channel,
            from: ctx.sender.address.clone(),
            to,
            subject: rendered.subject,
            body: rendered.body,
            language: ctx.campaign.language.clone(),
            campaign_id: ctx.campaign.id,
            outreach_id: o.id,
            recipient_id: r.id,
            unsubscribe_url,
            agent_number: match ctx.campaign.channel {
                Channel::Voice => ctx.agent_number.clone(),
                _ => None,
            },
            in_reply_to: None,
        })
    }

    /// What a send's result means for the recipient.
    async fn outcome(
        &self,
        ctx: &Ctx,
        r: &ClaimedRecipient,
        result: Result<herald_channels::Accepted, SendError>,
        now: Timestamp,
    ) -> Result<Outcome, DispatchError> {
        let err = match result {
            Ok(accepted) => {
                return Ok(Outcome::Sent {
                    provider_message_id: accepted.provider_message_id,
                });
            }
            Err(e) => e,
        };
        let code = err.code().map(str::to_string);
        let message = err.message().to_string();
        if err.is_opted_out() {
            self.store
                .add_suppression(
                    &r.address,
                    Some(ctx.sender.id),
                    "opted out at the provider (Twilio 21610)",
                )
                .await?;
            return Ok(Outcome::Skipped {
                reason: SkipReason::OptedOut,
                code,
                message: Some(message),
            });
        }
        if !err.is_transient() {
            return Ok(Outcome::Failed { code, message });
        }
        if ctx.policy == CrashPolicy::AtMostOnce && err.may_have_been_sent() {
            // The provider may have taken it: sending again could text the customer twice.
            return Ok(Outcome::Unknown {
                code,
                message: format!("{message}; it may have been sent, so it is not sent again"),
            });
        }
        if r.attempts >= self.config.max_attempts {
            return Ok(Outcome::Failed {
                code,
                message: format!("{message} (gave up after {} attempts)", r.attempts),
            });
        }
        let due_at = now + self.backoff(r.attempts, err.retry_after());
        Ok(Outcome::Retry {
            due_at,
            code,
            message,
        })
    }

    /// Exponential back-off with jitter: about `base × 2^(attempt-1)`, between half of it and all
    /// of it, capped at `backoff_max_secs`; never shorter than the provider's `Retry-After`.
    fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> SignedDuration {
        let base = self.config.backoff_base_ms as f64 / 1000.0;
        let cap = self.config.backoff_max_secs as f64;
        let exp = (base * 2f64.powi(attempt.saturating_sub(1).min(30) as i32)).min(cap);
        let jitter: f64 = rand::random::<f64>();
        let mut secs = exp / 2.0 + exp / 2.0 * jitter;
        if let Some(ra) = retry_after {
            secs = secs.max(ra.as_secs_f64());
        }
        SignedDuration::try_from_secs_f64(secs).unwrap_or(SignedDuration::from_secs(1))
    }
}
