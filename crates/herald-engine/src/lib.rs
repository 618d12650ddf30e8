//! Herald's engine: the imperative shell around the pure rules of `herald-core`.
//!
//! [`import`] turns an uploaded CSV into an outreach: the file is validated on blocking threads
//! (`herald-import`) while the store writes the batches in one transaction, so parsing and
//! writing overlap and a refused file stores nothing.

pub mod import;

pub use import::{ImportLimits, ImportOutreachError, OutreachUpload, import_outreach};
