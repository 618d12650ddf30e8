//! What the dispatcher reads and writes: live outreaches, claimed recipients and the outcome of
//! each send.
//!
//! The dispatcher claims due recipients of one in-progress outreach with a lease
//! ([`crate::Store::claim_due`]: `pending → sending`, `attempts + 1`), sends them, and records
//! every outcome in one batch ([`crate::Store::record_results`]). A recipient whose lease expired
//! was being sent by a Herald that died; [`crate::Store::recover_expired_leases`] resolves it by
//! the channel's crash policy.

use herald_core::outreach::{DeliveryState, OutreachStatus, SkipReason};
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

/// What became of one send.
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// The outcome of one claimed recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryResult {
    pub recipient_id: i64,
    pub outcome: Outcome,
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
