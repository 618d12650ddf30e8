//! What a send's result means for its recipient: sent, retried later with back-off, failed,
//! skipped (opted out at the provider, which also suppresses the number), or unknown (a phone
//! message that may have gone out is never sent twice); and the deferral of a recipient over
//! the sender's rate.

use super::outreach::Ctx;
use super::{DispatchError, Dispatcher};
use herald_channels::SendError;
use herald_core::outreach::{CrashPolicy, SkipReason};
use herald_store::{ClaimedRecipient, DeliveryResult, Outcome};
use jiff::{SignedDuration, Timestamp};
use std::time::Duration;

impl Dispatcher {
    /// What a send's result means for the recipient.
    pub(super) async fn outcome(
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

    /// Over the sender's rate for now: back in the queue until the next token.
    pub(super) fn rate_deferral(
        &self,
        ctx: &Ctx,
        r: &ClaimedRecipient,
        now: Timestamp,
    ) -> DeliveryResult {
        let wait = SignedDuration::try_from(super::batch::per_token(ctx.rate))
            .unwrap_or(SignedDuration::from_secs(1));
        DeliveryResult {
            recipient_id: r.id,
            outcome: Outcome::Defer { due_at: now + wait },
        }
    }
}
