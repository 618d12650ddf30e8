//! Herald's domain: the words of DESIGN.md as types that cannot hold invalid values, and the pure
//! rules over them (schedule windows, template checks, address normalization).
//!
//! Nothing here does I/O or async work; time is always passed in.

pub mod address;
pub mod channel;
pub mod chat;
pub mod error;
pub mod forecast;
pub mod keywords;
pub mod language;
pub mod markdown;
pub mod model;
pub mod schedule;
pub mod template;

pub use address::{Address, E164, EmailAddress};
pub use channel::{Channel, Provider};
pub use error::{FieldError, ValidationError};
pub use language::Language;
pub use model::*;
pub use schedule::Schedule;
pub use template::Template;

pub mod outreach;
pub mod quiet;
pub mod render;
pub mod sms;

pub use outreach::{
    CrashPolicy, DeliveryState, OutreachAction, OutreachClock, OutreachStatus, Progress,
    SkipReason, idempotency_key,
};
pub use quiet::{SendingHours, recipient_zone};
pub use render::{RenderError, Rendered, Renderer};
pub use sms::{SmsEncoding, SmsInfo};

mod phone;
