//! The life of an outreach and of each recipient's delivery, as types and plain functions.
//!
//! An outreach goes `scheduled → in_progress → completed`, or is `stopped` from either of the
//! first two; `completed` and `stopped` are final ([`OutreachStatus::transition`]). What a due
//! outreach should do at an instant is [`decide`]. Each recipient's delivery goes
//! `pending → sending → sent → delivered | undelivered | failed`, or is `skipped` with a
//! [`SkipReason`], and may later be `replied`; an SMS or call whose send was interrupted by a crash
//! ends `unknown` ([`CrashPolicy`]). Which moves are allowed is [`DeliveryState::can_move_to`];
//! what a provider callback changes is [`DeliveryState::apply_callback`]. The progress figure
//! ("7/11 sent") is [`Progress`].

use crate::channel::Channel;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

// ---------------------------------------------------------------- outreach status

/// Where an outreach is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum OutreachStatus {
    /// Waiting for its start time.
    Scheduled,
    /// Sending (or waiting for the next sending window, still in progress).
    InProgress,
    /// Every recipient reached a terminal state, or the end time passed. Final.
    Completed,
    /// Stopped by a person; unsent recipients were skipped. Final.
    Stopped,
}

impl OutreachStatus {
    pub const ALL: [OutreachStatus; 4] = [
        OutreachStatus::Scheduled,
        OutreachStatus::InProgress,
        OutreachStatus::Completed,
        OutreachStatus::Stopped,
    ];

    /// The JSON (and database) name: `scheduled`, `in_progress`, `completed`, `stopped`.
    pub fn as_str(self) -> &'static str {
        match self {
            OutreachStatus::Scheduled => "scheduled",
            OutreachStatus::InProgress => "in_progress",
            OutreachStatus::Completed => "completed",
            OutreachStatus::Stopped => "stopped",
        }
    }

    /// `completed` and `stopped` never change again.
    pub fn is_final(self) -> bool {
        matches!(self, OutreachStatus::Completed | OutreachStatus::Stopped)
    }

    /// Whether the outreach may move from `self` to `to`: `scheduled → in_progress`,
    /// `scheduled | in_progress → completed`, `scheduled | in_progress → stopped`.
    pub fn can_transition(self, to: OutreachStatus) -> bool {
        use OutreachStatus::*;
        matches!(
            (self, to),
            (Scheduled, InProgress)
                | (Scheduled | InProgress, Completed)
                | (Scheduled | InProgress, Stopped)
        )
    }

    /// Moves the outreach to `to`, or says in words a person can act on why it cannot.
    pub fn transition(self, to: OutreachStatus) -> Result<OutreachStatus, OutreachTransitionError> {
        if self.can_transition(to) {
            Ok(to)
        } else {
            Err(OutreachTransitionError { from: self, to })
        }
    }

    /// `scheduled → in_progress`: the start time was reached.
    pub fn start(self) -> Result<OutreachStatus, OutreachTransitionError> {
        self.transition(OutreachStatus::InProgress)
    }

    /// `scheduled | in_progress → completed`: every recipient is terminal, or the end passed.
    pub fn complete(self) -> Result<OutreachStatus, OutreachTransitionError> {
        self.transition(OutreachStatus::Completed)
    }

    /// `completed → in_progress`, the one way back: a person asked to retry the failed
    /// recipients of a completed outreach (`retry-failed`). Not part of [`Self::can_transition`],
    /// which is the machine the scheduler follows on its own; a stopped outreach stays stopped.
    pub fn reopen(self) -> Result<OutreachStatus, OutreachTransitionError> {
        match self {
            OutreachStatus::Completed | OutreachStatus::InProgress => {
                Ok(OutreachStatus::InProgress)
            }
            from => Err(OutreachTransitionError {
                from,
                to: OutreachStatus::InProgress,
            }),
        }
    }

    /// `scheduled | in_progress → stopped`: a person stopped it. Final.
    pub fn stop(self) -> Result<OutreachStatus, OutreachTransitionError> {
        self.transition(OutreachStatus::Stopped)
    }
}

impl fmt::Display for OutreachStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not an outreach status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an outreach status; use one of scheduled, in_progress, completed, stopped")]
pub struct UnknownOutreachStatus(pub String);

impl FromStr for OutreachStatus {
    type Err = UnknownOutreachStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OutreachStatus::ALL
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownOutreachStatus(s.to_string()))
    }
}

/// A move the outreach state machine does not allow; the message says why and what to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{}", transition_message(*.from, *.to))]
pub struct OutreachTransitionError {
    pub from: OutreachStatus,
    pub to: OutreachStatus,
}

fn transition_message(from: OutreachStatus, to: OutreachStatus) -> &'static str {
    use OutreachStatus::*;
    match (from, to) {
        (Stopped, Scheduled | InProgress) => {
            "a stopped outreach cannot be restarted; upload the recipients again in a new outreach"
        }
        (Completed, Scheduled | InProgress) => {
            "a completed outreach cannot be restarted; upload the recipients again in a new outreach"
        }
        (Stopped, Stopped) => "the outreach is already stopped",
        (Stopped, Completed) => "a stopped outreach stays stopped; it cannot complete",
        (Completed, Completed) => "the outreach has already completed",
        (Completed, Stopped) => "the outreach has already completed; there is nothing left to stop",
        (InProgress, InProgress) => "the outreach is already in progress",
        (InProgress, Scheduled) => "an outreach in progress cannot go back to scheduled",
        (Scheduled, Scheduled) => "the outreach is already scheduled",
        // Allowed moves never reach here; keep a sensible sentence anyway.
        _ => "that change of outreach status is not allowed",
    }
}

// ---------------------------------------------------------------- what a due outreach does

/// What the scheduler knows about one outreach when it looks at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutreachClock {
    pub status: OutreachStatus,
    /// When sending may begin.
    pub start_at: Timestamp,
    /// When unsent recipients expire; `None` runs until every recipient is terminal.
    pub end_at: Option<Timestamp>,
    /// Recipients waiting to be sent (`pending`).
    pub pending: u64,
    /// Recipients being sent right now (`sending`); their results are still to be recorded.
    pub in_flight: u64,
}

/// What should happen to an outreach now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutreachAction {
    /// Nothing until the counts change or `until` (the next start or end time), if given.
    Wait { until: Option<Timestamp> },
    /// The start time was reached: `scheduled → in_progress`; the dispatcher may send.
    Start,
    /// The end time passed: every `pending` recipient becomes `skipped: expired` (in-flight sends
    /// are still recorded). Decide again afterwards.
    ExpirePending,
    /// Every recipient is terminal: `→ completed`.
    Complete,
}

/// The decision for a due outreach at `now`.
///
/// - Final outreaches: nothing, ever.
/// - End time passed: expire the pending recipients, then complete once nothing is in flight.
/// - Scheduled before its start: wait for the start (or the end, if sooner).
/// - Scheduled at or after its start: start, or complete at once when no recipient is left to
///   send (every row was skipped at import, say).
/// - In progress: complete when no recipient is pending or in flight, else wait (for the end
///   time, if there is one).
pub fn decide(o: &OutreachClock, now: Timestamp) -> OutreachAction {
    let open = o.pending.saturating_add(o.in_flight);
    if o.status.is_final() {
        return OutreachAction::Wait { until: None };
    }
    if o.end_at.is_some_and(|end| now >= end) {
        return if o.pending > 0 {
            OutreachAction::ExpirePending
        } else if o.in_flight > 0 {
            OutreachAction::Wait { until: None }
        } else {
            OutreachAction::Complete
        };
    }
    match o.status {
        OutreachStatus::Scheduled if now < o.start_at => OutreachAction::Wait {
            until: Some(o.end_at.map_or(o.start_at, |end| end.min(o.start_at))),
        },
        OutreachStatus::Scheduled if open == 0 => OutreachAction::Complete,
        OutreachStatus::Scheduled => OutreachAction::Start,
        _ if open == 0 => OutreachAction::Complete,
        _ => OutreachAction::Wait { until: o.end_at },
    }
}

// ---------------------------------------------------------------- delivery

/// What happened to one recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    /// Waiting to be sent.
    Pending,
    /// Claimed by a dispatcher and being sent.
    Sending,
    /// The provider accepted the message.
    Sent,
    /// The provider reports it reached the recipient.
    Delivered,
    /// Could not be sent: a permanent error, or the retries ran out.
    Failed,
    /// Sent, but the provider reports it did not reach the recipient.
    Undelivered,
    /// Never sent, for a [`SkipReason`].
    Skipped,
    /// The recipient answered.
    Replied,
    /// Herald stopped mid-send of an SMS or call and cannot tell whether it went out; it is never
    /// sent again (at-most-once). A late provider callback may still resolve it.
    Unknown,
}

impl DeliveryState {
    pub const ALL: [DeliveryState; 9] = [
        DeliveryState::Pending,
        DeliveryState::Sending,
        DeliveryState::Sent,
        DeliveryState::Delivered,
        DeliveryState::Failed,
        DeliveryState::Undelivered,
        DeliveryState::Skipped,
        DeliveryState::Replied,
        DeliveryState::Unknown,
    ];

    /// The JSON (and database) name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Sending => "sending",
            DeliveryState::Sent => "sent",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
            DeliveryState::Undelivered => "undelivered",
            DeliveryState::Skipped => "skipped",
            DeliveryState::Replied => "replied",
            DeliveryState::Unknown => "unknown",
        }
    }

    /// Terminal: Herald will do nothing more for this recipient on its own, so the outreach can
    /// complete. Everything but `pending` and `sending`. Some terminal states may still change
    /// when the outside world speaks (a provider callback moves `sent` to `delivered`, a reply
    /// moves it to `replied`) or when a person asks (`retry-failed` moves `failed` to `pending`).
    pub fn is_terminal(self) -> bool {
        !matches!(self, DeliveryState::Pending | DeliveryState::Sending)
    }

    /// A message went out (or, for `unknown`, may have): `sent`, `delivered`, `undelivered`,
    /// `replied`, `unknown`. These make up the "sent" of the progress figure.
    pub fn counts_as_sent(self) -> bool {
        matches!(
            self,
            DeliveryState::Sent
                | DeliveryState::Delivered
                | DeliveryState::Undelivered
                | DeliveryState::Replied
                | DeliveryState::Unknown
        )
    }

    /// Whether a recipient may move from `self` to `to`. The allowed moves:
    ///
    /// | from | to |
    /// | --- | --- |
    /// | pending | sending (claimed), skipped (suppressed, invalid, expired, stopped, opted out) |
    /// | sending | sent, failed, pending (transient error: back in the queue), unknown (lease expired, at-most-once), skipped (opted out at the provider); and, when a callback overtakes the send's own result, delivered, undelivered, replied |
    /// | sent | delivered, undelivered, failed, replied |
    /// | delivered | replied |
    /// | undelivered | delivered (callbacks out of order), replied |
    /// | unknown | sent, delivered, undelivered, failed, replied (a late callback resolves it) |
    /// | failed | pending (retry-failed) |
    /// | skipped, replied | nothing |
    ///
    /// Staying in the same state is not a move (`false`); see [`DeliveryState::apply_callback`]
    /// for how repeated and late callbacks are ignored instead.
    pub fn can_move_to(self, to: DeliveryState) -> bool {
        use DeliveryState::*;
        matches!(
            (self, to),
            (Pending, Sending | Skipped)
                | (
                    Sending,
                    Sent | Failed | Pending | Unknown | Skipped | Delivered | Undelivered | Replied
                )
                | (Sent, Delivered | Undelivered | Failed | Replied)
                | (Delivered, Replied)
                | (Undelivered, Delivered | Replied)
                | (Unknown, Sent | Delivered | Undelivered | Failed | Replied)
                | (Failed, Pending)
        )
    }

    /// Moves the recipient to `to`, or says why it cannot.
    pub fn transition(self, to: DeliveryState) -> Result<DeliveryState, DeliveryTransitionError> {
        if self.can_move_to(to) {
            Ok(to)
        } else {
            Err(DeliveryTransitionError { from: self, to })
        }
    }

    /// What a provider's status callback (or a reply) reporting `reported` does to a recipient in
    /// `self`: `Some(new state)` to record, `None` to ignore it because it is a repeat or arrived
    /// late (a `sent` callback after `delivered` must not move the recipient back).
    ///
    /// Callbacks may only report `sent`, `delivered`, `undelivered`, `failed` or `replied`; any other
    /// report is ignored. A recipient Herald never handed to a provider (`pending`, `skipped`) or
    /// one a person re-queued is not moved by a callback either.
    pub fn apply_callback(self, reported: DeliveryState) -> Option<DeliveryState> {
        use DeliveryState::*;
        let from_provider = matches!(reported, Sent | Delivered | Undelivered | Failed | Replied);
        let handed_over = matches!(self, Sending | Sent | Delivered | Undelivered | Unknown);
        (from_provider && handed_over && self.can_move_to(reported)).then_some(reported)
    }
}

impl fmt::Display for DeliveryState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not a delivery state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a delivery state; use one of pending, sending, sent, delivered, failed, undelivered, skipped, replied, unknown"
)]
pub struct UnknownDeliveryState(pub String);

impl FromStr for DeliveryState {
    type Err = UnknownDeliveryState;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DeliveryState::ALL
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownDeliveryState(s.to_string()))
    }
}

/// A move between delivery states that [`DeliveryState::can_move_to`] does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a recipient that is {from} cannot become {to}")]
pub struct DeliveryTransitionError {
    pub from: DeliveryState,
    pub to: DeliveryState,
}

/// Why a recipient was never sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// The address is on the suppression list.
    Suppressed,
    /// The address cannot be sent to (the provider says the number is not valid, say).
    Invalid,
    /// The outreach's end time passed before it was sent.
    Expired,
    /// The outreach was stopped before it was sent.
    Stopped,
    /// The recipient opted out of messages from this sender (Twilio 21610, a STOP reply).
    OptedOut,
    /// The customer was already contacted as often as a frequency cap allows (the workspace's
    /// `[dispatch.frequency_cap]` or the campaign's own: at most K proactive messages in D
    /// days, across outreaches).
    FrequencyCap,
}

impl SkipReason {
    pub const ALL: [SkipReason; 6] = [
        SkipReason::Suppressed,
        SkipReason::Invalid,
        SkipReason::Expired,
        SkipReason::Stopped,
        SkipReason::OptedOut,
        SkipReason::FrequencyCap,
    ];

    /// The JSON (and database) name: `suppressed`, `invalid`, `expired`, `stopped`, `opted_out`,
    /// `frequency_cap`.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::Suppressed => "suppressed",
            SkipReason::Invalid => "invalid",
            SkipReason::Expired => "expired",
            SkipReason::Stopped => "stopped",
            SkipReason::OptedOut => "opted_out",
            SkipReason::FrequencyCap => "frequency_cap",
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not a skip reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a skip reason; use one of suppressed, invalid, expired, stopped, opted_out, \
     frequency_cap"
)]
pub struct UnknownSkipReason(pub String);

impl FromStr for SkipReason {
    type Err = UnknownSkipReason;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SkipReason::ALL
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownSkipReason(s.to_string()))
    }
}

// ---------------------------------------------------------------- progress

/// How far an outreach got: the `{total, sent, delivered, failed, skipped, pending, replied}` of
/// the API and the "7/11" of the UI.
///
/// Every recipient is in exactly one of `sent`, `failed`, `skipped`, `pending`, so
/// `total = sent + failed + skipped + pending`:
/// - `sent`: a message went out: `sent`, `delivered`, `undelivered` and `replied` recipients;
/// - `failed`: `failed`;
/// - `skipped`: `skipped`, whatever the reason;
/// - `pending`: not yet resolved, `pending` or `sending`;
/// - `uncertain`: `unknown`, a send a crash cut short, which may or may not have gone out (it
///   is never counted as sent; an admin may queue it again, accepting a possible duplicate).
///
/// `delivered` and `replied` are parts of `sent`: `delivered` counts `delivered` and `replied`
/// recipients (an answer proves the message arrived), `replied` counts `replied` ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Progress {
    pub total: u64,
    pub sent: u64,
    pub delivered: u64,
    pub failed: u64,
    pub skipped: u64,
    pub pending: u64,
    pub replied: u64,
    pub uncertain: u64,
}

impl Progress {
    /// Progress from the number of recipients in each state (as a `GROUP BY state` returns them;
    /// a state may appear more than once).
    pub fn from_counts(counts: impl IntoIterator<Item = (DeliveryState, u64)>) -> Self {
        let mut p = Progress::default();
        for (state, n) in counts {
            p.add(state, n);
        }
        p
    }

    /// Counts `n` more recipients in `state`.
    pub fn add(&mut self, state: DeliveryState, n: u64) {
        use DeliveryState::*;
        self.total = self.total.saturating_add(n);
        let bucket = match state {
            Pending | Sending => &mut self.pending,
            Failed => &mut self.failed,
            Skipped => &mut self.skipped,
            Sent | Delivered | Undelivered | Replied => &mut self.sent,
            Unknown => &mut self.uncertain,
        };
        *bucket = bucket.saturating_add(n);
        if matches!(state, Delivered | Replied) {
            self.delivered = self.delivered.saturating_add(n);
        }
        if state == Replied {
            self.replied = self.replied.saturating_add(n);
        }
    }

    /// Adds another count's figures (a campaign's over its outreaches).
    pub fn add_all(&mut self, other: &Progress) {
        for (sum, n) in [
            (&mut self.total, other.total),
            (&mut self.sent, other.sent),
            (&mut self.delivered, other.delivered),
            (&mut self.failed, other.failed),
            (&mut self.skipped, other.skipped),
            (&mut self.pending, other.pending),
            (&mut self.replied, other.replied),
            (&mut self.uncertain, other.uncertain),
        ] {
            *sum = sum.saturating_add(n);
        }
    }

    /// `sent/total`, e.g. `7/11`.
    pub fn label(&self) -> String {
        format!("{}/{}", self.sent, self.total)
    }

    /// No recipient is left to send.
    pub fn is_done(&self) -> bool {
        self.pending == 0
    }
}

// ---------------------------------------------------------------- crash safety

/// What a restarted Herald does with a send whose lease expired (Herald died mid-send).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CrashPolicy {
    /// Never send twice: the recipient becomes `unknown` (SMS and voice: a customer must not get
    /// two texts or two calls).
    AtMostOnce,
    /// Send again with the same idempotency key (email: the same `Message-ID`, so mail clients
    /// show one message).
    AtLeastOnce,
}

impl CrashPolicy {
    /// SMS and voice are at-most-once; email and chat greetings at-least-once.
    pub fn for_channel(channel: Channel) -> Self {
        match channel {
            Channel::Sms | Channel::Voice => CrashPolicy::AtMostOnce,
            Channel::Email | Channel::Chat => CrashPolicy::AtLeastOnce,
        }
    }

    /// The state a recipient left in `sending` by a crashed Herald moves to: `unknown` (never
    /// re-sent) or `pending` (sent again).
    pub fn resolve_expired_lease(self) -> DeliveryState {
        match self {
            CrashPolicy::AtMostOnce => DeliveryState::Unknown,
            CrashPolicy::AtLeastOnce => DeliveryState::Pending,
        }
    }
}

/// The idempotency key every send of one recipient of one outreach carries:
/// `<outreach id>-<recipient id>`, the outreach as 32 lower-case hex digits and the recipient's
/// store id in decimal (ASCII only, safe in an HTTP header, a URL and the local part of a
/// `Message-ID`). The same inputs always give the same key.
pub fn idempotency_key(outreach_id: Uuid, recipient_id: i64) -> String {
    format!("{}-{recipient_id}", outreach_id.simple())
}

/// The outreach and recipient ids back from an [`idempotency_key`]; `None` for anything else.
pub fn parse_idempotency_key(key: &str) -> Option<(Uuid, i64)> {
    let (o, r) = key.split_once('-')?;
    if o.len() != 32 || r.is_empty() || !r.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let recipient: i64 = r.parse().ok()?;
    // One spelling per key: no leading zeros.
    if recipient.to_string() != r {
        return None;
    }
    Some((Uuid::try_parse(o).ok()?, recipient))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in OutreachStatus::ALL {
            assert_eq!(s.as_str().parse::<OutreachStatus>().unwrap(), s);
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for s in DeliveryState::ALL {
            assert_eq!(s.as_str().parse::<DeliveryState>().unwrap(), s);
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for r in SkipReason::ALL {
            assert_eq!(r.as_str().parse::<SkipReason>().unwrap(), r);
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        }
        assert!("paused".parse::<OutreachStatus>().is_err());
    }
}
