//! What the dispatcher reads and writes: live outreaches, claimed recipients and the outcome of
//! each send.
//!
//! The dispatcher claims due recipients of one in-progress outreach with a lease
//! ([`crate::Dispatch::claim_due`]: `pending → sending`, `attempts + 1`), sends them, and records
//! every outcome in one batch ([`crate::Dispatch::record_results`]). A recipient whose lease expired
//! was being sent by a Herald that died; [`crate::Dispatch::recover_expired_leases`] resolves it by
//! the channel's crash policy.

use herald_core::outreach::{DeliveryState, OutreachStatus, Progress, SkipReason};
use jiff::Timestamp;
use serde::Serialize;
use uuid::Uuid;

/// An outreach that is not final, as the scheduler sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveOutreach {
    pub id: Uuid,
    pub campaign_id: Uuid,
    pub status: OutreachStatus,
    pub start_at: Timestamp,
    pub end_at: Option<Timestamp>,
    /// Some recipient is `pending`.
    pub has_pending: bool,
    /// Some recipient is `sending` (claimed, result not yet recorded).
    pub has_in_flight: bool,
}

/// A recipient claimed for sending (now `sending`, leased).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedRecipient {
    pub id: i64,
    pub outreach_id: Uuid,
    pub line: u64,
    /// E.164 or normalized email.
    pub address: String,
    pub timezone: Option<String>,
    /// The row's variables as a JSON object.
    pub variables_json: String,
    /// Attempts including this one.
    pub attempts: u32,
}

/// What became of one send. Serializable so that results Herald could not write before it
/// stopped can be kept in a file and written on its next start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// The provider accepted it: `sent`, `sent_at = now`.
    Sent { provider_message_id: Option<String> },
    /// Permanent failure, or retries ran out: `failed`.
    Failed {
        code: Option<String>,
        message: String,
    },
    /// A transient failure: back to `pending`, not before `due_at`; the attempt counts.
    Retry {
        due_at: Timestamp,
        code: Option<String>,
        message: String,
    },
    /// Not sent because the recipient's sending hours are closed: back to `pending`, not before
    /// `due_at`; the attempt does not count (`attempts - 1`).
    Defer { due_at: Timestamp },
    /// An SMS or call that may or may not have gone out (a timeout after the request was
    /// written): `unknown`, never sent again.
    Unknown {
        code: Option<String>,
        message: String,
    },
    /// Never sent: `skipped` with the reason (opted out at the provider, stopped mid-batch).
    Skipped {
        reason: SkipReason,
        code: Option<String>,
        message: Option<String>,
    },
}

/// A sender's daily cap as the dispatcher applies it today: at most `limit` tokens on `day`
/// (a date in the cap's time zone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DailyCap {
    pub day: jiff::civil::Date,
    pub limit: u64,
}

/// Tokens granted from a sender's bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    pub tokens: u32,
    /// Fewer than asked for were granted because the daily cap is reached: nothing more today.
    pub capped: bool,
}

/// The outcome of one claimed recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct DeliveryResult {
    pub recipient_id: i64,
    pub outcome: Outcome,
}

/// Which claim a batch of results comes from ([`crate::Dispatch::record_batch`]): an outcome
/// other than `Sent` applies only to a recipient that claim still holds.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Held {
    /// A live batch: recipients still `sending` under the lease that ends at this instant (as
    /// claimed, or last renewed by [`crate::Dispatch::renew_leases`]).
    Lease(Timestamp),
    /// Sends marked begun at this instant ([`crate::Dispatch::start_sends`]), as a dispatch
    /// journal has them: recipients still `sending` under that mark, whatever their lease.
    Begun(Timestamp),
    /// Any recipient still `sending`: for results whose claim is not known (tests, and journals
    /// written before Herald kept it).
    #[default]
    Unchecked,
}

impl Held {
    /// The lease and the mark a recipient must still have, as bound values (`None`: any).
    pub(crate) fn keys(self) -> (Option<crate::Ts>, Option<crate::Ts>) {
        match self {
            Self::Lease(until) => (Some(crate::Ts::new(until)), None),
            Self::Begun(at) => (None, Some(crate::Ts::new(at))),
            Self::Unchecked => (None, None),
        }
    }
}

/// One recipient as the API lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecipientRecord {
    pub id: i64,
    /// The line of the uploaded file the recipient came from.
    pub line: u64,
    pub address: String,
    pub timezone: Option<String>,
    /// The row's template variables.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub variables: serde_json::Value,
    pub state: DeliveryState,
    pub skip_reason: Option<SkipReason>,
    pub attempts: u32,
    /// Not tried before this instant (the recipient's next sending window, or a retry back-off).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub due_at: Option<Timestamp>,
    pub provider_message_id: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub sent_at: Option<Timestamp>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub updated_at: Option<Timestamp>,
}

// ---------------------------------------------------------------- shared by both backends

/// The error a recipient whose lease expired is left with under [`CrashPolicy::AtMostOnce`].
///
/// [`CrashPolicy::AtMostOnce`]: herald_core::outreach::CrashPolicy::AtMostOnce
pub(crate) const LEASE_EXPIRED_CODE: &str = "lease_expired";
pub(crate) const LEASE_EXPIRED_MESSAGE: &str = "Herald stopped while sending this message and \
     cannot tell whether it went out; it is not sent again, to avoid a duplicate";

/// Why failed recipients of an outreach past its end time are not re-queued.
pub(crate) const RETRY_AFTER_END: &str =
    "the outreach's end time has passed; failed recipients can no longer be retried";

/// A refused status change, in the words of the state machine.
pub(crate) fn conflict(e: herald_core::outreach::OutreachTransitionError) -> crate::StoreError {
    crate::StoreError::Conflict(e.to_string())
}

/// Whether `retry_failed` may re-queue the failed recipients of an outreach in `status` whose
/// end is `end_at`; `Ok(true)` when the outreach must also be reopened (`completed →
/// in_progress`).
pub(crate) fn retry_check(
    status: OutreachStatus,
    end_at: Option<Timestamp>,
    now: Timestamp,
) -> crate::Result<bool> {
    if status == OutreachStatus::Stopped {
        return Err(conflict(
            status
                .reopen()
                .expect_err("a stopped outreach never reopens"),
        ));
    }
    if end_at.is_some_and(|end| now >= end) {
        return Err(crate::StoreError::Conflict(RETRY_AFTER_END.to_string()));
    }
    Ok(status == OutreachStatus::Completed)
}

/// A `sent` result: the recipient and the provider's id for the message.
pub(crate) struct SentRow<'a> {
    pub id: i64,
    pub provider_message_id: Option<&'a str>,
}

/// Any other result, as the columns one generic statement writes.
pub(crate) struct OtherRow<'a> {
    pub id: i64,
    /// `failed`, `pending` (retry, defer), `unknown` or `skipped`.
    pub state: &'static str,
    pub skip_reason: Option<&'static str>,
    /// For `pending`: not before then.
    pub due_us: Option<crate::Ts>,
    /// Whether `error_code` / `error_message` are written (else they are kept).
    pub set_error: bool,
    pub error_code: Option<&'a str>,
    pub error_message: Option<&'a str>,
    /// Added to `attempts`: -1 for a deferral (the attempt does not count), else 0.
    pub attempts_delta: i32,
}

/// Results split so that the common case (a batch of sends the provider accepted) is one
/// narrow statement.
pub(crate) fn group_results(results: &[DeliveryResult]) -> (Vec<SentRow<'_>>, Vec<OtherRow<'_>>) {
    let mut sent = Vec::new();
    let mut other = Vec::new();
    for r in results {
        let id = r.recipient_id;
        let row = OtherRow {
            id,
            state: "failed",
            skip_reason: None,
            due_us: None,
            set_error: true,
            error_code: None,
            error_message: None,
            attempts_delta: 0,
        };
        match &r.outcome {
            Outcome::Sent {
                provider_message_id,
            } => sent.push(SentRow {
                id,
                provider_message_id: provider_message_id.as_deref(),
            }),
            Outcome::Failed { code, message } => other.push(OtherRow {
                error_code: code.as_deref(),
                error_message: Some(message),
                ..row
            }),
            Outcome::Retry {
                due_at,
                code,
                message,
            } => other.push(OtherRow {
                state: "pending",
                due_us: Some(crate::Ts::new(*due_at)),
                error_code: code.as_deref(),
                error_message: Some(message),
                ..row
            }),
            // Errors of an earlier attempt are kept: a deferral is no attempt.
            Outcome::Defer { due_at } => other.push(OtherRow {
                state: "pending",
                due_us: Some(crate::Ts::new(*due_at)),
                set_error: false,
                attempts_delta: -1,
                ..row
            }),
            Outcome::Unknown { code, message } => other.push(OtherRow {
                state: "unknown",
                error_code: code.as_deref(),
                error_message: Some(message),
                ..row
            }),
            Outcome::Skipped {
                reason,
                code,
                message,
            } => other.push(OtherRow {
                state: "skipped",
                skip_reason: Some(reason.as_str()),
                set_error: code.is_some() || message.is_some(),
                error_code: code.as_deref(),
                error_message: message.as_deref(),
                ..row
            }),
        }
    }
    (sent, other)
}

/// How far an outreach got, from `(state, count)` rows of a `GROUP BY state`.
pub(crate) fn progress(id: Uuid, rows: Vec<(String, i64)>) -> crate::Result<Progress> {
    let counts = rows
        .into_iter()
        .map(|(state, n)| {
            let state = state
                .parse::<DeliveryState>()
                .map_err(|e| crate::common::corrupt("outreach", id, e.to_string()))?;
            Ok((state, u64::try_from(n).unwrap_or_default()))
        })
        .collect::<crate::Result<Vec<_>>>()?;
    Ok(Progress::from_counts(counts))
}

/// A recipient row as selected (instants as [`crate::Ts`]).
pub(crate) struct RecipientRow {
    pub id: i64,
    pub line: i64,
    pub address: String,
    pub timezone: Option<String>,
    pub variables: String,
    pub state: String,
    pub skip_reason: Option<String>,
    pub attempts: i64,
    pub due_us: Option<crate::Ts>,
    pub provider_message_id: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub sent_us: Option<crate::Ts>,
    pub updated_us: Option<crate::Ts>,
}

impl RecipientRow {
    pub fn parse(self) -> crate::Result<RecipientRecord> {
        let id = self.id;
        let bad = |what: &str, e: String| crate::StoreError::Corrupt {
            entity: "recipient",
            id: id.to_string(),
            reason: format!("{what}: {e}"),
        };
        let ts = |_what: &str, at: Option<crate::Ts>| -> crate::Result<Option<Timestamp>> {
            Ok(at.map(|t| t.0))
        };
        Ok(RecipientRecord {
            id,
            line: u64::try_from(self.line).map_err(|e| bad("line", e.to_string()))?,
            address: self.address,
            timezone: self.timezone,
            variables: serde_json::from_str(&self.variables)
                .map_err(|e| bad("variables", e.to_string()))?,
            state: self.state.parse().map_err(
                |e: herald_core::outreach::UnknownDeliveryState| bad("state", e.to_string()),
            )?,
            skip_reason: self.skip_reason.map(|r| r.parse()).transpose().map_err(
                |e: herald_core::outreach::UnknownSkipReason| bad("skip_reason", e.to_string()),
            )?,
            attempts: u32::try_from(self.attempts).map_err(|e| bad("attempts", e.to_string()))?,
            due_at: ts("due_at", self.due_us)?,
            provider_message_id: self.provider_message_id,
            error_code: self.error_code,
            error_message: self.error_message,
            sent_at: ts("sent_at", self.sent_us)?,
            updated_at: ts("updated_at", self.updated_us)?,
        })
    }
}

/// Reads a [`RecipientRow`] selected under the column names both backends use.
pub(crate) fn recipient_row<R>(r: &R) -> crate::Result<RecipientRow>
where
    R: sqlx::Row,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<String>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<i64>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> crate::Ts: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<crate::Ts>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    &'static str: sqlx::ColumnIndex<R>,
{
    use crate::common::col;
    let e = "recipient";
    Ok(RecipientRow {
        id: col(r, e, None, "id")?,
        line: col(r, e, None, "line")?,
        address: col(r, e, None, "address")?,
        timezone: col(r, e, None, "timezone")?,
        variables: col(r, e, None, "variables")?,
        state: col(r, e, None, "state")?,
        skip_reason: col(r, e, None, "skip_reason")?,
        attempts: col(r, e, None, "attempts")?,
        due_us: col(r, e, None, "due_at")?,
        provider_message_id: col(r, e, None, "provider_message_id")?,
        error_code: col(r, e, None, "error_code")?,
        error_message: col(r, e, None, "error_message")?,
        sent_us: col(r, e, None, "sent_at")?,
        updated_us: col(r, e, None, "updated_at")?,
    })
}

/// A claimed row: `(id, outreach_id, line, address, timezone, variables, attempts, due_at)`.
pub(crate) type ClaimRow = (
    i64,
    Uuid,
    i64,
    String,
    Option<String>,
    String,
    i64,
    Option<crate::Ts>,
);

/// Claimed rows in claim order (`due_at`, unset first, then id).
pub(crate) fn claimed(mut rows: Vec<ClaimRow>) -> Vec<ClaimedRecipient> {
    rows.sort_by_key(|r| (r.7, r.0));
    rows.into_iter()
        .map(
            |(id, outreach_id, line, address, timezone, variables_json, attempts, _)| {
                ClaimedRecipient {
                    id,
                    outreach_id,
                    line: u64::try_from(line).unwrap_or_default(),
                    address,
                    timezone,
                    variables_json,
                    attempts: u32::try_from(attempts).unwrap_or_default(),
                }
            },
        )
        .collect()
}

/// A live outreach as selected: id, campaign, status, start and end, and
/// whether it has pending and sending recipients.
pub(crate) type LiveRow = (Uuid, Uuid, String, crate::Ts, Option<crate::Ts>, bool, bool);

pub(crate) fn live(rows: Vec<LiveRow>) -> crate::Result<Vec<LiveOutreach>> {
    rows.into_iter()
        .map(
            |(id, campaign_id, status, start_us, end_us, has_pending, has_in_flight)| {
                Ok(LiveOutreach {
                    id,
                    campaign_id,
                    status: parse_status(id, &status)?,
                    start_at: start_us.0,
                    end_at: end_us.map(|t| t.0),
                    has_pending,
                    has_in_flight,
                })
            },
        )
        .collect()
}

pub(crate) fn parse_status(id: Uuid, status: &str) -> crate::Result<OutreachStatus> {
    status
        .parse()
        .map_err(|e: herald_core::outreach::UnknownOutreachStatus| {
            crate::common::corrupt("outreach", id, format!("status: {e}"))
        })
}

pub(crate) fn not_found(id: Uuid) -> crate::StoreError {
    crate::StoreError::NotFound {
        entity: "outreach",
        id,
    }
}

/// How many rows a `VALUES` list of `n` results is padded to: the next power of two, so a
/// backend caches a handful of statements rather than one per batch size.
pub(crate) fn padded(n: usize) -> usize {
    n.next_power_of_two()
}

/// [`crate::StoreError::NotFound`] for a recipient. Its id is a number, not a uuid: it is given
/// as the uuid whose low 64 bits are the number (`…-00000000002a` for recipient 42).
pub(crate) fn recipient_not_found(recipient_id: i64) -> crate::StoreError {
    crate::StoreError::NotFound {
        entity: "recipient",
        id: Uuid::from_u64_pair(0, recipient_id as u64),
    }
}
