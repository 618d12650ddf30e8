//! Herald's engine: the imperative shell around the pure rules of `herald-core`.
//!
//! [`import`] turns an uploaded CSV into an outreach: the file is validated on blocking threads
//! (`herald-import`) while the store writes the batches in one transaction, so parsing and
//! writing overlap and a refused file stores nothing.
//!
//! [`dispatch`] sends live outreaches: claims due recipients with a lease, renders, honours each
//! recipient's sending hours and the sender's rate (one token bucket per sender in the store,
//! shared by every node), sends through `herald-channels`, retries
//! transient failures, and resolves the sends of a Herald that died mid-send.
//!
//! [`replies`] takes in what customers send back (SMS webhooks, email over SMTP), routes it to
//! the sender's inbox, acts on STOP/START/HELP, and sends agents' replies.

pub mod clock;
pub mod dispatch;
pub mod import;
pub mod metrics;
pub mod replies;
pub mod review;

pub use clock::{Clock, ManualClock, SystemClock};
pub use dispatch::{
    DispatchConfig, Dispatcher, FrequencyCap, RateConfig, TickReport, UnsubscribeLinks,
};

pub use replies::{
    EmailInbox, Inbound, Replies, RepliesConfig, ReplyError, TestSendRequest, UnsubscribeError,
};

pub use metrics::Metrics;

pub use import::{ImportLimits, ImportOutreachError, OutreachUpload, import_outreach};
pub use review::{OutreachReview, check_reviewed, review_outreach};
