//! The hot loop: an outreach's due recipients in batches, each one claimed → rendered → sent →
//! recorded ([`Dispatcher::batch`]), with the steps below it in that order.

use super::outreach::Ctx;
use super::{DispatchError, Dispatcher, TickReport};
use futures_util::StreamExt;
use herald_channels::{Accepted, OutboundMessage, SendError};
use herald_core::outreach::{OutreachStatus, SkipReason};
use herald_store::{ClaimedRecipient, DeliveryResult, Held, LiveOutreach, Outcome, SentMessage};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How many recipients to claim, and how many tokens the sender has for them.
#[derive(Debug, Clone, Copy)]
struct Budget {
    /// Recipients to claim.
    claim: u32,
    /// Tokens to spend: messages, or SMS segments.
    tokens: u32,
    /// Tokens taken from the sender's bucket in the store for this batch (none for an
    /// unlimited sender); those not spent are given back.
    taken: u32,
}

/// The most tokens a sender's bucket keeps: half a second of its rate (one message at least),
/// so that no ten seconds carry more than 5% over the rate.
fn burst(rate: f64) -> f64 {
    (rate / 2.0).max(1.0)
}

/// The rate and burst of a sender's bucket in the store. A sender without a rate but with a
/// daily cap still counts its tokens there, from a bucket that never runs dry within a batch.
fn bucket(rate: f64, batch: u32) -> (f64, f64) {
    if rate.is_finite() {
        (rate, burst(rate))
    } else {
        (1e9, f64::from(batch).max(1.0))
    }
}

/// How long until a sender whose bucket is empty has a token again, at most.
pub(super) fn per_token(rate: f64) -> Duration {
    Duration::from_secs_f64((1.0 / rate.max(0.001)).min(60.0))
}

/// How a batch ended.
enum BatchEnd {
    /// Nothing was due, or fewer than asked for: the outreach has no more due work now.
    Drained,
    /// As many as asked for were claimed: there may be more. `only_deferred` when every one of
    /// them was deferred (outside their sending hours or over the rate).
    Full { only_deferred: bool },
}

/// A claimed batch after rendering: the outcomes decided without sending, and the messages to
/// send.
struct Rendered {
    /// When the sending hours were checked (and the tokens are spent).
    at: Timestamp,
    results: Vec<DeliveryResult>,
    ready: Vec<Ready>,
    /// Tokens the ready messages cost together.
    used: u32,
}

impl Rendered {
    /// The addresses of the ready messages.
    fn addresses(&self) -> Vec<String> {
        self.ready
            .iter()
            .map(|r| r.recipient.address.clone())
            .collect()
    }

    /// Skips, with `reason`, the ready recipients `why` gives a message for (the words that
    /// say why); their tokens are given back to the batch.
    fn skip(
        &mut self,
        reason: SkipReason,
        mut why: impl FnMut(&ClaimedRecipient) -> Option<String>,
    ) {
        let Rendered {
            results,
            ready,
            used,
            ..
        } = self;
        ready.retain(|r| {
            let Some(message) = why(&r.recipient) else {
                return true;
            };
            *used = used.saturating_sub(r.cost);
            results.push(DeliveryResult {
                recipient_id: r.recipient.id,
                outcome: Outcome::Skipped {
                    reason,
                    code: None,
                    message: Some(message),
                },
            });
            false
        });
    }
}

/// A batch claimed, not rendered yet.
struct Taken {
    claimed: Vec<ClaimedRecipient>,
    /// When its lease ends.
    lease: Timestamp,
    /// What it could claim and the tokens taken for it, settled when its sends begin.
    budget: Budget,
}

/// A batch claimed and rendered, not sent yet.
struct Claimed {
    /// As many as asked for were claimed: there may be more.
    full: bool,
    lease: Lease,
    work: Work,
    /// What it could claim and the tokens taken for it, settled when its sends begin.
    budget: Budget,
}

/// What a claimed batch holds.
enum Work {
    /// Outcomes decided and messages ready to send.
    Ready(Rendered),
    /// The outreach cannot send as configured: every recipient's failure.
    Failed(Vec<DeliveryResult>),
}

/// What a batch found of the next one while its results were written.
enum Prefetch {
    /// It did not look (the slice is over, or the batch claimed fewer than it asked for or sent
    /// nothing).
    NotTried,
    /// Nothing was due, or the sender is out of tokens.
    Nothing,
    /// The next batch, claimed and rendered.
    Batch(Claimed),
}

/// A message ready to send, and what it costs in the sender's tokens.
struct Ready {
    recipient: ClaimedRecipient,
    message: OutboundMessage,
    cost: u32,
}

/// A batch's sends are marked begun in about this many groups (each at least `concurrency`
/// long): every mark is a durable write, so more groups cost throughput, fewer leave more of a
/// batch uncertain after a crash.
const SEND_GROUPS: usize = 4;

/// What became of one ready message.
struct Attempt {
    recipient: ClaimedRecipient,
    message: OutboundMessage,
    fate: Fate,
}

enum Fate {
    /// The send was made: the provider's answer.
    Sent(Result<Accepted, SendError>),
    /// Not begun: the outreach was stopped.
    Stopped,
    /// Not begun: Herald is shutting down, or the store could not mark it begun. It goes back
    /// to the queue, its attempt not counted.
    Released,
}

/// Outcomes of a batch's sends not yet written, and the timeline entries of those sent.
#[derive(Default)]
struct Finished {
    results: Vec<DeliveryResult>,
    timeline: Vec<SentMessage>,
    /// The journal could not be written: no further send began.
    journal_error: Option<std::io::Error>,
}

/// The lease of a claimed batch: its recipients and the `lease_until` they are held under,
/// renewed while the batch's sends run.
struct Lease {
    ids: Vec<i64>,
    until: tokio::sync::Mutex<Timestamp>,
}

impl Dispatcher {
    /// Sends what is due of an outreach in batches, for about a second (then the tick moves on
    /// to the next outreach and reports `more_due`), within the sender's rate. The next batch is
    /// rendered (and, on a store whose writes run side by side,
    /// [`Dispatch::concurrent_writes`], claimed) while the last one's results are written; it is
    /// sent only once they are. A batch prepared before the second was over is still sent
    /// after it, so a slice can run one batch longer.
    ///
    /// [`Dispatch::concurrent_writes`]: herald_store::Dispatch::concurrent_writes
    pub(super) async fn send_due(
        &self,
        o: &LiveOutreach,
        ctx: &Result<Arc<Ctx>, String>,
        report: &mut TickReport,
    ) -> Result<(), DispatchError> {
        let slice = Instant::now() + Duration::from_secs(1);
        let mut only_deferred = false;
        let mut next: Option<Claimed> = None;
        loop {
            if self.is_stopping() {
                if let Some(batch) = next {
                    self.release(ctx, &batch.lease, batch.budget).await;
                }
                return Ok(());
            }
            let batch = match next.take() {
                Some(batch) => batch,
                None => {
                    let now = self.clock.now();
                    let Some(budget) = self.budget(ctx, now, only_deferred, report).await? else {
                        return Ok(());
                    };
                    match self.prepare(o, ctx, now, budget).await? {
                        Some(batch) => batch,
                        None => return Ok(()),
                    }
                }
            };
            let ahead = Instant::now() < slice;
            let (end, fetched) = self.batch(o, ctx, batch, ahead, report).await?;
            match (fetched, end) {
                (Prefetch::Batch(batch), _) => next = Some(batch),
                (Prefetch::Nothing, _) | (Prefetch::NotTried, BatchEnd::Drained) => return Ok(()),
                (Prefetch::NotTried, BatchEnd::Full { only_deferred: d }) => only_deferred = d,
            }
            if next.is_none() && Instant::now() >= slice {
                report.more_due = true;
                return Ok(());
            }
        }
    }

    /// What the next batch may claim and spend; `None` when the sender is out of tokens (the
    /// report then says when to look again). The tokens come from the sender's bucket in the
    /// store, which every node shares.
    async fn budget(
        &self,
        ctx: &Result<Arc<Ctx>, String>,
        now: Timestamp,
        only_deferred: bool,
        report: &mut TickReport,
    ) -> Result<Option<Budget>, DispatchError> {
        let batch = self.config.batch_size.max(1);
        let unlimited = Budget {
            claim: batch,
            tokens: batch,
            taken: 0,
        };
        let Ok(c) = ctx else {
            return Ok(Some(unlimited));
        };
        let daily = self.daily_cap(c, now);
        if !c.rate.is_finite() && daily.is_none() {
            return Ok(Some(unlimited));
        }
        let (rate, burst) = bucket(c.rate, batch);
        let grant = self
            .store
            .take_tokens(c.sender.id, rate, burst, now, batch, daily)
            .await?;
        let tokens = grant.tokens;
        if tokens == 0 {
            self.metrics.rate_wait(&c.sender.address.to_string());
            let wait = if grant.capped {
                self.until_tomorrow(now)
            } else {
                per_token(rate)
            };
            report.rate_wait = Some(report.rate_wait.map_or(wait, |w| w.min(wait)));
            return Ok(None);
        }
        // Recipients outside their sending hours cost no tokens: after a batch of only those,
        // claim a full batch even when the sender is nearly out of tokens.
        let claim = if only_deferred { batch } else { tokens };
        Ok(Some(Budget {
            claim,
            tokens,
            taken: tokens,
        }))
    }

    /// Settles the batch's tokens with the sender's bucket: gives back those taken but not
    /// spent, or charges those spent beyond them (a message of more segments than the bucket
    /// held is still sent, once, and the bucket pays it off before the next).
    async fn give_back(
        &self,
        ctx: &Ctx,
        budget: Budget,
        used: u32,
        now: Timestamp,
    ) -> Result<(), DispatchError> {
        if budget.taken == 0 {
            return Ok(());
        }
        let delta = i64::from(budget.taken) - i64::from(used);
        if delta != 0 {
            let (rate, burst) = bucket(ctx.rate, self.config.batch_size.max(1));
            let daily = self.daily_cap(ctx, now);
            self.store
                .adjust_tokens(ctx.sender.id, rate, burst, now, delta, daily)
                .await?;
        }
        Ok(())
    }

    /// The sender's daily cap on the day of `now`, if it has one.
    fn daily_cap(&self, ctx: &Ctx, now: Timestamp) -> Option<herald_store::DailyCap> {
        ctx.daily_cap.map(|limit| herald_store::DailyCap {
            day: self.cap_zone.to_datetime(now).date(),
            limit,
        })
    }

    /// How long from `now` until the next day of the daily caps begins (at most an hour: the
    /// loop looks again then, in case the configuration's clock and the store's disagree).
    fn until_tomorrow(&self, now: Timestamp) -> Duration {
        let today = self.cap_zone.to_datetime(now).date();
        let next = today.tomorrow().ok().and_then(|d| {
            self.cap_zone
                .to_ambiguous_timestamp(d.to_datetime(jiff::civil::Time::midnight()))
                .compatible()
                .ok()
        });
        next.and_then(|n| Duration::try_from(n.duration_since(now)).ok())
            .unwrap_or(Duration::from_secs(3600))
            .min(Duration::from_secs(3600))
            .max(Duration::from_millis(100))
    }

    /// Claims due recipients with a lease and renders their messages: the first half of a batch.
    /// `None` when nothing was due.
    async fn prepare(
        &self,
        o: &LiveOutreach,
        ctx: &Result<Arc<Ctx>, String>,
        now: Timestamp,
        budget: Budget,
    ) -> Result<Option<Claimed>, DispatchError> {
        match self.take(o, ctx, now, budget).await? {
            Some(taken) => Ok(Some(self.ready(o, ctx, taken).await?)),
            None => Ok(None),
        }
    }

    /// The claim of [`Dispatcher::prepare`]: the batch's recipients, their lease, and whether it
    /// claimed as many as it asked for. `None` (the tokens given back) when nothing was due.
    async fn take(
        &self,
        o: &LiveOutreach,
        ctx: &Result<Arc<Ctx>, String>,
        now: Timestamp,
        budget: Budget,
    ) -> Result<Option<Taken>, DispatchError> {
        let (claimed, lease) = self.claim(o, now, budget.claim).await?;
        self.metrics.claim(claimed.len());
        if claimed.is_empty() {
            if let Ok(ctx) = ctx {
                self.give_back(ctx, budget, 0, now).await?;
            }
            return Ok(None);
        }
        Ok(Some(Taken {
            claimed,
            lease,
            budget,
        }))
    }

    /// The rest of [`Dispatcher::prepare`]: renders the claimed batch and leaves out the
    /// recipients opted out or over a frequency cap since the upload. Reads only: no write.
    async fn ready(
        &self,
        o: &LiveOutreach,
        ctx: &Result<Arc<Ctx>, String>,
        taken: Taken,
    ) -> Result<Claimed, DispatchError> {
        let Taken {
            claimed,
            lease,
            budget,
        } = taken;
        let full = claimed.len() as u32 == budget.claim;
        let lease = Lease {
            ids: claimed.iter().map(|r| r.id).collect(),
            until: tokio::sync::Mutex::new(lease),
        };
        let work = match ctx {
            Ok(c) => {
                let mut rendered = self.render(o, c, claimed, budget.tokens);
                let read = async {
                    self.drop_suppressed(c, &mut rendered).await?;
                    self.drop_capped(c, &mut rendered).await
                };
                if let Err(e) = read.await {
                    // Nothing of it was sent: back to the queue now, not when its lease ends.
                    self.release(ctx, &lease, budget).await;
                    return Err(e);
                }
                Work::Ready(rendered)
            }
            Err(why) => Work::Failed(misconfigured(&claimed, why)),
        };
        Ok(Claimed {
            full,
            lease,
            work,
            budget,
        })
    }

    /// The next batch's claim, made as the last one is recorded: none when nothing is due or
    /// the sender is out of tokens (then with how long until it has some).
    async fn take_ahead(
        &self,
        o: &LiveOutreach,
        ctx: &Result<Arc<Ctx>, String>,
    ) -> Result<(Option<Taken>, Option<Duration>), DispatchError> {
        let now = self.clock.now();
        let mut scratch = TickReport::default();
        let Some(budget) = self.budget(ctx, now, false, &mut scratch).await? else {
            return Ok((None, scratch.rate_wait));
        };
        Ok((self.take(o, ctx, now, budget).await?, None))
    }

    /// The second half of a batch: sends what [`Dispatcher::prepare`] made ready and records
    /// every outcome in one write. With `ahead`, a batch with messages to send that claimed as
    /// many as it asked for also prepares the next batch while its own results are written: on
    /// a store with one writer it claims first and renders during the write, on one with many it
    /// claims during the write as well.
    #[tracing::instrument(name = "batch", skip_all, fields(outreach = %o.id))]
    async fn batch(
        &self,
        o: &LiveOutreach,
        ctx: &Result<Arc<Ctx>, String>,
        batch: Claimed,
        ahead: bool,
        report: &mut TickReport,
    ) -> Result<(BatchEnd, Prefetch), DispatchError> {
        let Claimed {
            full,
            lease,
            work,
            budget,
        } = batch;
        let ahead = ahead && full && matches!(&work, Work::Ready(r) if !r.ready.is_empty());
        let (results, timeline, journal_error) = match (ctx, work) {
            (Ok(ctx), Work::Ready(rendered)) => {
                self.give_back(ctx, budget, rendered.used, rendered.at)
                    .await?;
                self.send(o, ctx, rendered, &lease).await?
            }
            (_, Work::Ready(rendered)) => (rendered.results, Vec::new(), None),
            (_, Work::Failed(results)) => (results, Vec::new(), None),
        };
        let (channel, provider) = match ctx {
            Ok(c) => (c.campaign.channel.as_str(), c.sender.provider.as_str()),
            Err(_) => ("unknown", "none"),
        };
        // Counted once per outcome, not once per recipient.
        let mut counts: HashMap<&'static str, u64> = HashMap::new();
        for r in &results {
            *counts.entry(outcome_label(&r.outcome)).or_default() += 1;
        }
        for (outcome, n) in counts {
            self.metrics.messages(channel, provider, outcome, n);
        }
        let only_deferred = results
            .iter()
            .all(|r| matches!(r.outcome, Outcome::Defer { .. }));
        // The renewer has stopped (`send_all` waits for it): this is the lease the batch's
        // recipients are still held under, if no other node took them meanwhile.
        let held = Held::Lease(*lease.until.lock().await);
        // The next batch is claimed and rendered while this one is written, but its sends
        // begin only after: the journal settles this batch before the next one marks a send.
        let ahead = ahead && journal_error.is_none();
        let side_by_side = self.store.concurrent_writes();
        let taken = match ahead && !side_by_side {
            true => Some(self.take_ahead(o, ctx).await),
            false => None,
        };
        let next = async {
            let taken = match taken {
                Some(taken) => taken?,
                None if ahead => self.take_ahead(o, ctx).await?,
                None => return Ok((Prefetch::NotTried, None)),
            };
            Ok::<_, DispatchError>(match taken {
                (Some(taken), _) => (Prefetch::Batch(self.ready(o, ctx, taken).await?), None),
                (None, wait) => (Prefetch::Nothing, wait),
            })
        };
        let (recorded, next) = tokio::join!(self.record(held, &results, &timeline, report), next);
        let failed = match (recorded, journal_error) {
            (Err(e), _) => Some(e),
            (Ok(()), Some(e)) => Some(self.journal_failed(e)),
            (Ok(()), None) => None,
        };
        let (next, wait) = match (next, failed) {
            (Ok((next, wait)), None) => (next, wait),
            (Ok((next, _)), Some(e)) => {
                if let Prefetch::Batch(batch) = next {
                    self.release(ctx, &batch.lease, batch.budget).await;
                }
                return Err(e);
            }
            // The claim failed (nothing claimed), or the reads after it did and `ready` gave the
            // claimed batch back.
            (Err(e), _) => return Err(e),
        };
        if let Some(w) = wait {
            report.rate_wait = Some(report.rate_wait.map_or(w, |r| r.min(w)));
        }
        Ok(match full {
            true => (BatchEnd::Full { only_deferred }, next),
            false => (BatchEnd::Drained, next),
        })
    }

    /// Gives back a claimed batch that will not be sent (Herald is stopping, the batch before it
    /// failed, or its opt-outs or frequency caps could not be read): its recipients go back to
    /// the queue, their attempt not counted, and the tokens its messages took go back to the
    /// sender. If the store cannot take that now, the batch's lease ends and lease recovery does
    /// the same.
    async fn release(&self, ctx: &Result<Arc<Ctx>, String>, lease: &Lease, budget: Budget) {
        let now = self.clock.now();
        let results: Vec<DeliveryResult> = lease
            .ids
            .iter()
            .map(|&id| DeliveryResult {
                recipient_id: id,
                outcome: Outcome::Defer { due_at: now },
            })
            .collect();
        let held = Held::Lease(*lease.until.lock().await);
        if let Err(e) = self.store.record_batch(now, held, &results, &[]).await {
            tracing::warn!(error = %e, recipients = results.len(),
                "could not give back a claimed batch; its recipients go back to the queue when its lease ends");
        }
        if let Ok(ctx) = ctx
            && let Err(e) = self.give_back(ctx, budget, 0, now).await
        {
            tracing::warn!(error = %e, "could not give back the tokens of a claimed batch");
        }
    }

    /// Claim: up to `want` recipients due at `now`, leased for `lease_secs`; and the lease.
    async fn claim(
        &self,
        o: &LiveOutreach,
        now: Timestamp,
        want: u32,
    ) -> Result<(Vec<ClaimedRecipient>, Timestamp), DispatchError> {
        let until = self.lease_end(now);
        Ok((self.store.claim_due(o.id, now, until, want).await?, until))
    }

    /// When a lease taken or renewed at `now` ends.
    fn lease_end(&self, now: Timestamp) -> Timestamp {
        let lease = SignedDuration::from_secs(i64::try_from(self.config.lease_secs).unwrap_or(30));
        now.saturating_add(lease).unwrap_or(now)
    }

    /// Render: defers those whose sending hours are closed and those over the sender's tokens;
    /// fails those whose address or message is not usable; the rest are ready to send.
    fn render(
        &self,
        o: &LiveOutreach,
        ctx: &Ctx,
        claimed: Vec<ClaimedRecipient>,
        budget: u32,
    ) -> Rendered {
        let now = self.clock.now();
        let mut out = Rendered {
            at: now,
            results: Vec::with_capacity(claimed.len()),
            ready: Vec::new(),
            used: 0,
        };
        let mut zones: HashMap<String, TimeZone> = HashMap::new();
        for r in claimed {
            let zone = self.zone_of(&r, ctx, &mut zones);
            if !ctx.hours.may_send_now(now, Some(&zone)) {
                // Closed for this recipient: wait for their next window. A schedule that never
                // opens leaves them for the end time (or a stop) to resolve; look again daily.
                let due_at = ctx
                    .hours
                    .next_send_time(now, Some(&zone))
                    .unwrap_or_else(|| now + SignedDuration::from_hours(24));
                out.results.push(DeliveryResult {
                    recipient_id: r.id,
                    outcome: Outcome::Defer { due_at },
                });
                continue;
            }
            if out.used >= budget {
                out.results.push(self.rate_deferral(ctx, &r, now));
                continue;
            }
            match self.message(o, ctx, &r) {
                Ok((message, cost)) => {
                    if out.used > 0 && out.used.saturating_add(cost) > budget {
                        out.results.push(self.rate_deferral(ctx, &r, now));
                        continue;
                    }
                    out.used = out.used.saturating_add(cost);
                    out.ready.push(Ready {
                        recipient: r,
                        message,
                        cost,
                    });
                }
                Err(outcome) => out.results.push(DeliveryResult {
                    recipient_id: r.id,
                    outcome,
                }),
            }
        }
        out
    }

    /// An opt-out that arrived after the import (a STOP to this sender, an unsubscribe, an
    /// address added through the API) holds as much as one known at upload time: those
    /// recipients are skipped, and their tokens are not spent.
    async fn drop_suppressed(&self, ctx: &Ctx, batch: &mut Rendered) -> Result<(), DispatchError> {
        if batch.ready.is_empty() {
            return Ok(());
        }
        let suppressed = self
            .store
            .suppressed_among(ctx.sender.id, &batch.addresses())
            .await?;
        batch.skip(SkipReason::Suppressed, |r| {
            suppressed
                .contains(&r.address)
                .then(|| "the address opted out after the list was uploaded".to_string())
        });
        Ok(())
    }

    /// Skips, with reason `frequency_cap`, the ready recipients whose customer was already sent
    /// as many proactive messages as a cap allows in its days: the workspace's
    /// (`[dispatch.frequency_cap]`) or the campaign's own, whichever a recipient is over first.
    /// Their tokens go back like a suppressed recipient's.
    async fn drop_capped(&self, ctx: &Ctx, batch: &mut Rendered) -> Result<(), DispatchError> {
        let caps = [
            (self.config.frequency_cap, "the frequency cap"),
            (ctx.campaign.frequency_cap, "the campaign's frequency cap"),
        ];
        for (cap, which) in caps {
            let Some(cap) = cap else { continue };
            if batch.ready.is_empty() {
                return Ok(());
            }
            let counts = self
                .store
                .contacts_since(&batch.addresses(), cap.since(batch.at))
                .await?;
            batch.skip(SkipReason::FrequencyCap, |r| {
                let n = counts.get(&r.address).copied().unwrap_or(0);
                (n >= u64::from(cap.messages)).then(|| {
                    format!(
                        "already contacted {n} time(s) in the last {} day(s); {which} allows {}",
                        cap.days, cap.messages
                    )
                })
            });
        }
        Ok(())
    }

    /// Send: spends the batch's tokens, sends the ready messages with bounded concurrency, and
    /// turns every result into an outcome (and every message sent into the timeline). A stop
    /// takes effect within a second, even in the middle of a slow batch.
    async fn send(
        &self,
        o: &LiveOutreach,
        ctx: &Ctx,
        batch: Rendered,
        lease: &Lease,
    ) -> Result<
        (
            Vec<DeliveryResult>,
            Vec<SentMessage>,
            Option<std::io::Error>,
        ),
        DispatchError,
    > {
        let Rendered {
            mut results, ready, ..
        } = batch;
        if ready.is_empty() {
            return Ok((results, Vec::new(), None));
        }
        let mut done = Finished::default();
        self.send_all(o, ctx, ready, lease, &mut done).await?;
        results.append(&mut done.results);
        Ok((results, done.timeline, done.journal_error))
    }

    /// Turns an attempt into its outcome (and a send into its timeline entry) in `done`.
    async fn finish(
        &self,
        o: &LiveOutreach,
        ctx: &Ctx,
        a: Attempt,
        done: &mut Finished,
    ) -> Result<(), DispatchError> {
        let now = self.clock.now();
        let began = matches!(a.fate, Fate::Sent(_));
        let outcome = match a.fate {
            Fate::Sent(result) => self.outcome(ctx, &a.recipient, result, now).await?,
            Fate::Stopped => Outcome::Skipped {
                reason: SkipReason::Stopped,
                code: None,
                message: None,
            },
            Fate::Released => Outcome::Defer { due_at: now },
        };
        if let Outcome::Sent {
            provider_message_id,
        } = &outcome
        {
            done.timeline.push(SentMessage {
                recipient_id: a.recipient.id,
                sender_id: ctx.sender.id,
                channel: ctx.campaign.channel,
                campaign_id: ctx.campaign.id,
                outreach_id: o.id,
                from: ctx.sender.address.to_string(),
                to: a.recipient.address.clone(),
                subject: a.message.subject,
                body: a.message.body,
                provider_message_id: provider_message_id.clone(),
            });
        }
        let result = DeliveryResult {
            recipient_id: a.recipient.id,
            outcome,
        };
        if began && let Some(journal) = &self.journal {
            let sent = done
                .timeline
                .last()
                .filter(|m| m.recipient_id == result.recipient_id);
            journal.done(&result, sent);
        }
        done.results.push(result);
        Ok(())
    }

    /// The sends themselves, at most `concurrency` in flight, marked begun a group at a time
    /// ([`Dispatcher::send_groups`]). While they run, the batch's lease is renewed every third
    /// of its length, so a slow provider does not make a live batch look like a dead one's; the
    /// renewer is stopped between renewals, never in the middle of one, so that when this
    /// returns the lease in `lease.until` is the one the store holds. A stop of the outreach
    /// (looked for every 250 ms) or Herald's shutdown ends the batch early: no further send
    /// begins.
    async fn send_all(
        &self,
        o: &LiveOutreach,
        ctx: &Ctx,
        ready: Vec<Ready>,
        lease: &Lease,
        done: &mut Finished,
    ) -> Result<(), DispatchError> {
        let stopped = Arc::new(AtomicBool::new(false));
        let (finished, sends_over) = tokio::sync::watch::channel(false);
        let watcher = {
            let (store, stopped, id) = (self.store.clone(), stopped.clone(), o.id);
            let mut over = sends_over.clone();
            async move {
                loop {
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(250)) => {}
                        _ = over.changed() => return,
                    }
                    if let Ok(OutreachStatus::Stopped) = store.outreach_status(id).await {
                        stopped.store(true, Ordering::Relaxed);
                        return;
                    }
                }
            }
        };
        let renewer = self.renew(lease, sends_over);
        let sends = async {
            let attempts = self.send_groups(o, ctx, ready, lease, &stopped, done).await;
            // Ends the watcher and the renewer (after a renewal under way).
            let _ = finished.send(true);
            attempts
        };
        let (attempts, (), ()) = tokio::join!(sends, watcher, renewer);
        attempts
    }

    /// Renews the batch's lease every third of its length until the sends are over (`over`
    /// changes). A renewal is never cut short: the store's lease and `lease.until` agree
    /// whenever this is between renewals. A renewal that finds none of the batch's recipients
    /// still under its lease (another node resolved them: this node was paused past the lease)
    /// is reported; the sends not yet begun are then not made, as [`Dispatch::start_sends`]
    /// marks none of them, and the batch's results other than sends are not applied.
    ///
    /// [`Dispatch::start_sends`]: herald_store::Dispatch::start_sends
    async fn renew(&self, lease: &Lease, mut over: tokio::sync::watch::Receiver<bool>) {
        let every = Duration::from_millis(self.config.lease_secs.max(1) * 1000 / 3);
        loop {
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                _ = over.changed() => return,
            }
            let mut until = lease.until.lock().await;
            let next = self.lease_end(self.clock.now());
            match self.store.renew_leases(&lease.ids, *until, next).await {
                Ok(renewed) => {
                    *until = next;
                    self.metrics.lease_renewed();
                    if renewed == 0 {
                        tracing::warn!(
                            recipients = lease.ids.len(),
                            "a batch's lease ran out before it was renewed and its recipients \
                             were taken over; what it has not begun is not sent"
                        );
                    }
                }
                Err(e) => tracing::warn!(error = %e, "could not renew the lease of a batch"),
            }
        }
    }

    /// Begins the sends, at most `concurrency` in flight, and settles every attempt into `done`.
    /// Sends are marked begun in the store a group at a time ([`SEND_GROUPS`] groups a batch,
    /// each at least `concurrency` long) before the first of them is made, so that after a
    /// crash the part of the batch never begun goes back to the queue rather than becoming
    /// `unknown`. A group marked but cut short by a stop or a shutdown is handed back here.
    async fn send_groups(
        &self,
        o: &LiveOutreach,
        ctx: &Ctx,
        ready: Vec<Ready>,
        lease: &Lease,
        stopped: &AtomicBool,
        done: &mut Finished,
    ) -> Result<(), DispatchError> {
        let width = self.config.concurrency.max(1);
        let group_len = width.max(ready.len().div_ceil(SEND_GROUPS));
        let mut queue = ready.into_iter();
        let mut marked: std::collections::VecDeque<Ready> = std::collections::VecDeque::new();
        let mut in_flight = futures_util::stream::FuturesUnordered::new();
        loop {
            let halted = stopped.load(Ordering::Relaxed)
                || self.is_stopping()
                || done.journal_error.is_some();
            if !halted && in_flight.len() < width {
                if let Some(Ready {
                    recipient, message, ..
                }) = marked.pop_front()
                {
                    // On file before the request leaves: after a crash, a send not on file was
                    // never made and goes back to the queue.
                    if let Some(journal) = &self.journal
                        && let Err(e) = journal.begun(recipient.id)
                    {
                        done.journal_error = Some(e);
                        let released = Attempt {
                            recipient,
                            message,
                            fate: Fate::Released,
                        };
                        self.finish(o, ctx, released, done).await?;
                        continue;
                    }
                    let transport = ctx.transport.clone();
                    let metrics = self.metrics.clone();
                    in_flight.push(async move {
                        let began = Instant::now();
                        let result = transport.send(&message).await;
                        metrics.send_latency(began.elapsed());
                        Attempt {
                            recipient,
                            message,
                            fate: Fate::Sent(result),
                        }
                    });
                    continue;
                }
                if queue.len() > 0 {
                    let group: Vec<Ready> = queue.by_ref().take(group_len).collect();
                    let ids: Vec<i64> = group.iter().map(|r| r.recipient.id).collect();
                    let at = self.clock.now();
                    // On file before the store marks them: a kill between the two then leaves
                    // a mark the journal knows of (given back under its own mark at the next
                    // start), never a marked group only lease recovery would find (all of it
                    // uncertain). Ids the store does not mark are given back by no one: their
                    // mark is not `at`.
                    let on_file = match &self.journal {
                        Some(journal) => journal
                            .marked(at, &ids)
                            .map_err(|e| format!("the dispatch journal: {e}")),
                        None => Ok(()),
                    };
                    let begun = match on_file {
                        Ok(()) => {
                            let until = lease.until.lock().await;
                            self.store
                                .start_sends(at, *until, &ids)
                                .await
                                .map_err(|e| e.to_string())
                        }
                        Err(e) => Err(e),
                    };
                    match begun {
                        // Those no longer ours (the lease ran out and another node resolved
                        // them) are neither sent nor recorded.
                        Ok(begun) => marked.extend(
                            group
                                .into_iter()
                                .filter(|r| begun.binary_search(&r.recipient.id).is_ok()),
                        ),
                        Err(e) => {
                            tracing::warn!(
                                error = %e,
                                "could not mark sends begun; the rest of the batch goes back to the queue"
                            );
                            for r in group.into_iter().chain(queue.by_ref()) {
                                let released = Attempt {
                                    recipient: r.recipient,
                                    message: r.message,
                                    fate: Fate::Released,
                                };
                                self.finish(o, ctx, released, done).await?;
                            }
                        }
                    }
                    continue;
                }
            }
            match in_flight.next().await {
                Some(attempt) => self.finish(o, ctx, attempt, done).await?,
                None => break,
            }
        }
        let stop = stopped.load(Ordering::Relaxed);
        for r in marked.into_iter().chain(queue) {
            let fate = if stop { Fate::Stopped } else { Fate::Released };
            let left = Attempt {
                recipient: r.recipient,
                message: r.message,
                fate,
            };
            self.finish(o, ctx, left, done).await?;
        }
        Ok(())
    }

    /// Record: every outcome of the batch, and the messages sent, in one write.
    async fn record(
        &self,
        held: Held,
        results: &[DeliveryResult],
        timeline: &[SentMessage],
        report: &mut TickReport,
    ) -> Result<(), DispatchError> {
        for r in results {
            report.count(&r.outcome);
        }
        // The sends were made: their results are never dropped. A failed write is tried again
        // with back-off until it succeeds; if Herald must stop first, the results go to the
        // journal and are written on the next start.
        let mut wait = super::RETRY_FIRST;
        let mut failed = false;
        loop {
            let write = self
                .store
                .record_batch(self.clock.now(), held, results, timeline);
            let written = if failed {
                // Once a write has failed, a shutdown does not wait for this one to give up.
                let stop = async {
                    while !self.is_stopping() {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                };
                tokio::select! {
                    written = write => written,
                    () = stop => return self.keep(held, results, timeline, None),
                }
            } else {
                write.await
            };
            let Err(error) = written else {
                if let Some(journal) = &self.journal
                    && let Err(e) = journal.settled()
                {
                    tracing::warn!(error = %e, journal = %journal.path().display(),
                        "could not empty the dispatch journal after a batch was written");
                }
                return Ok(());
            };
            if self.is_stopping() {
                return self.keep(held, results, timeline, Some(error));
            }
            failed = true;
            tracing::warn!(
                error = %error,
                results = results.len(),
                retry_in_ms = wait.as_millis() as u64,
                "cannot write a batch's results; trying again"
            );
            let until = Instant::now() + wait;
            while Instant::now() < until && !self.is_stopping() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            wait = (wait * 2).min(super::RETRY_MAX);
        }
    }

    /// Keeps a batch's results in the journal, Herald stopping while the store cannot take them.
    fn keep(
        &self,
        held: Held,
        results: &[DeliveryResult],
        timeline: &[SentMessage],
        error: Option<herald_store::StoreError>,
    ) -> Result<(), DispatchError> {
        let Some(journal) = &self.journal else {
            tracing::error!(
                results = results.len(),
                "Herald is stopping and cannot write a batch's results, and no journal is \
                 configured: they are lost; their recipients are resolved when their lease ends"
            );
            return Err(match error {
                Some(e) => e.into(),
                None => DispatchError::Unwritten(results.len()),
            });
        };
        journal
            .keep(held, results, timeline)
            .map_err(|e| DispatchError::Journal {
                path: journal.path().display().to_string(),
                source: e,
            })?;
        tracing::warn!(
            results = results.len(),
            journal = %journal.path().display(),
            "Herald is stopping and cannot write a batch's results: kept in the journal, written on the next start"
        );
        Ok(())
    }

    /// The error of a batch cut short because the journal could not be written.
    fn journal_failed(&self, e: std::io::Error) -> DispatchError {
        DispatchError::Journal {
            path: self
                .journal
                .as_ref()
                .map(|j| j.path().display().to_string())
                .unwrap_or_default(),
            source: e,
        }
    }
}

/// An outcome's name in the metrics.
fn outcome_label(o: &Outcome) -> &'static str {
    match o {
        Outcome::Sent { .. } => "sent",
        Outcome::Failed { .. } => "failed",
        Outcome::Retry { .. } => "retry",
        Outcome::Defer { .. } => "deferred",
        Outcome::Unknown { .. } => "unknown",
        Outcome::Skipped { .. } => "skipped",
    }
}

/// Every claimed recipient of an outreach that cannot be sent as configured fails with the words
/// that say why.
fn misconfigured(claimed: &[ClaimedRecipient], why: &str) -> Vec<DeliveryResult> {
    claimed
        .iter()
        .map(|r| DeliveryResult {
            recipient_id: r.id,
            outcome: Outcome::Failed {
                code: Some("config".into()),
                message: why.to_string(),
            },
        })
        .collect()
}
