//! Herald's engine: the imperative shell around the pure rules of `herald-core`.
//!
//! [`import`] turns an uploaded CSV into an outreach: the file is validated on blocking threads
//! (`herald-import`) while the store writes the batches in one transaction, so parsing and
//! writing overlap and a refused file stores nothing.
//!
//! [`dispatch`] sends live outreaches: claims due recipients with a lease, renders, honours each
//! recipient's sending hours and the sender's rate, sends through `herald-channels`, retries
//! transient failures, and resolves the sends of a Herald that died mid-send.

pub mod clock;
pub mod dispatch;
pub mod import;
pub mod rate;

pub use clock::{Clock, ManualClock, SystemClock};
pub use dispatch::{DispatchConfig, Dispatcher, RateConfig, TickReport, UnsubscribeLinks};

pub use import::{ImportLimits, ImportOutreachError, OutreachUpload, import_outreach};
