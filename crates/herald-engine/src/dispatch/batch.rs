//! The hot loop: an outreach's due recipients in batches, each one claimed → rendered → sent →
//! recorded ([`Dispatcher::batch`]), with the steps below it in that order.

use super::outreach::Ctx;
use super::{DispatchError, Dispatcher, TickReport};
use futures_util::StreamExt;
use herald_channels::{Accepted, OutboundMessage, SendError};
use herald_core::outreach::{OutreachStatus, SkipReason};
use herald_store::{ClaimedRecipient, DeliveryResult, LiveOutreach, Outcome, SentMessage};
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

/// A message ready to send, and what it costs in the sender's tokens.
struct Ready {
    recipient: ClaimedRecipient,
    message: OutboundMessage,
    cost: u32,
}

/// A send that was made (or not made, because the outreach was stopped).
struct Attempt {
    recipient: ClaimedRecipient,
    message: OutboundMessage,
    result: Result<Accepted, SendError>,
    stopped: bool,
}

impl Dispatcher {
    /// Sends what is due of an outreach in batches, for up to a second (then the tick moves on
    /// to the next outreach and reports `more_due`), within the sender's rate.
    pub(super) async fn send_due(
        &self,
        o: &LiveOutreach,
        ctx: &Result<Arc<Ctx>, String>,
        report: &mut TickReport,
    ) -> Result<(), DispatchError> {
        let slice = Instant::now() + Duration::from_secs(1);
        let mut only_deferred = false;
        loop {
            let now = self.clock.now();
            let Some(budget) = self.budget(ctx, now, only_deferred, report) else {
                return Ok(());
            };
            match self.batch(o, ctx, now, budget, report).await? {
                BatchEnd::Drained => return Ok(()),
                BatchEnd::Full { only_deferred: d } => only_deferred = d,
            }
            if Instant::now() >= slice {
                report.more_due = true;
                return Ok(());
            }
        }
    }

    /// What the next batch may claim and spend; `None` when the sender is out of tokens (the
    /// report then says when to look again).
    fn budget(
        &self,
        ctx: &Result<Arc<Ctx>, String>,
        now: Timestamp,
        only_deferred: bool,
        report: &mut TickReport,
    ) -> Option<Budget> {
        let batch = self.config.batch_size.max(1);
        let Ok(c) = ctx else {
            return Some(Budget {
                claim: batch,
                tokens: batch,
            });
        };
        let tokens = self.limiter.available(c.sender.id, c.rate, now, batch);
        if tokens == 0 {
            let wait = self.limiter.wait(c.sender.id, now);
            report.rate_wait = Some(report.rate_wait.map_or(wait, |w| w.min(wait)));
            return None;
        }
        // Recipients outside their sending hours cost no tokens: after a batch of only those,
        // claim a full batch even when the sender is nearly out of tokens.
        let claim = if only_deferred { batch } else { tokens };
        Some(Budget { claim, tokens })
    }

    /// One batch, top to bottom: claim due recipients with a lease, render their messages,
    /// send them, record every outcome in one write.
    #[tracing::instrument(name = "batch", skip_all, fields(outreach = %o.id))]
    async fn batch(
        &self,
        o: &LiveOutreach,
        ctx: &Result<Arc<Ctx>, String>,
        now: Timestamp,
        budget: Budget,
        report: &mut TickReport,
    ) -> Result<BatchEnd, DispatchError> {
        let claimed = self.claim(o, now, budget.claim).await?;
        if claimed.is_empty() {
            return Ok(BatchEnd::Drained);
        }
        let full = claimed.len() as u32 == budget.claim;
        let (results, timeline) = match ctx {
            Ok(ctx) => {
                let mut rendered = self.render(o, ctx, claimed, budget.tokens);
                self.drop_suppressed(ctx, &mut rendered).await?;
                self.send(o, ctx, rendered).await?
            }
            Err(why) => (misconfigured(&claimed, why), Vec::new()),
        };
        let only_deferred = results
            .iter()
            .all(|r| matches!(r.outcome, Outcome::Defer { .. }));
        self.record(&results, &timeline, report).await?;
        Ok(match full {
            true => BatchEnd::Full { only_deferred },
            false => BatchEnd::Drained,
        })
    }

    /// Claim: up to `want` recipients due at `now`, leased for `lease_secs`.
    async fn claim(
        &self,
        o: &LiveOutreach,
        now: Timestamp,
        want: u32,
    ) -> Result<Vec<ClaimedRecipient>, DispatchError> {
        let lease = SignedDuration::from_secs(i64::try_from(self.config.lease_secs).unwrap_or(120));
        let until = now.saturating_add(lease).unwrap_or(now);
        Ok(self.store.claim_due(o.id, now, until, want).await?)
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
        let addresses: Vec<String> = batch
            .ready
            .iter()
            .map(|r| r.recipient.address.clone())
            .collect();
        let suppressed = self
            .store
            .suppressed_among(ctx.sender.id, &addresses)
            .await?;
        if suppressed.is_empty() {
            return Ok(());
        }
        let Rendered {
            results,
            ready,
            used,
            ..
        } = batch;
        ready.retain(|r| {
            if !suppressed.contains(&r.recipient.address) {
                return true;
            }
            *used = used.saturating_sub(r.cost);
            results.push(DeliveryResult {
                recipient_id: r.recipient.id,
                outcome: Outcome::Skipped {
                    reason: SkipReason::Suppressed,
                    code: None,
                    message: Some("the address opted out after the list was uploaded".into()),
                },
            });
            false
        });
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
    ) -> Result<(Vec<DeliveryResult>, Vec<SentMessage>), DispatchError> {
        let Rendered {
            at,
            mut results,
            ready,
            used,
        } = batch;
        if ready.is_empty() {
            return Ok((results, Vec::new()));
        }
        self.limiter.take(ctx.sender.id, ctx.rate, at, used);
        let attempts = self.send_all(o, ctx, ready).await;

        let now = self.clock.now();
        let mut timeline = Vec::new();
        for a in attempts {
            let outcome = if a.stopped {
                Outcome::Skipped {
                    reason: SkipReason::Stopped,
                    code: None,
                    message: None,
                }
            } else {
                self.outcome(ctx, &a.recipient, a.result, now).await?
            };
            if let Outcome::Sent {
                provider_message_id,
            } = &outcome
            {
                timeline.push(SentMessage {
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
            results.push(DeliveryResult {
                recipient_id: a.recipient.id,
                outcome,
            });
        }
        Ok((results, timeline))
    }

    /// The sends themselves, `concurrency` at a time, while a watcher looks for a stop of the
    /// outreach every 250 ms; once stopped, the sends not yet begun are not made.
    async fn send_all(&self, o: &LiveOutreach, ctx: &Ctx, ready: Vec<Ready>) -> Vec<Attempt> {
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
        let attempts = futures_util::stream::iter(ready)
            .map(
                |Ready {
                     recipient, message, ..
                 }| {
                    let transport = ctx.transport.clone();
                    let stopped = stopped.clone();
                    async move {
                        if stopped.load(Ordering::Relaxed) {
                            let skipped =
                                SendError::permanent("stopped", "the outreach was stopped");
                            return Attempt {
                                recipient,
                                message,
                                result: Err(skipped),
                                stopped: true,
                            };
                        }
                        let result = transport.send(&message).await;
                        Attempt {
                            recipient,
                            message,
                            result,
                            stopped: false,
                        }
                    }
                },
            )
            .buffer_unordered(self.config.concurrency.max(1))
            .collect()
            .await;
        done.store(true, Ordering::Relaxed);
        watcher.abort();
        attempts
    }

    /// Record: every outcome of the batch, and the messages sent, in one write.
    async fn record(
        &self,
        results: &[DeliveryResult],
        timeline: &[SentMessage],
        report: &mut TickReport,
    ) -> Result<(), DispatchError> {
        for r in results {
            report.count(&r.outcome);
        }
        self.store
            .record_results_with_messages(self.clock.now(), results, timeline)
            .await?;
        Ok(())
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
