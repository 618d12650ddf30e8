//! Herald's inbound SMTP listener: how customers' email replies get back into Herald.
//!
//! Herald sends outreach email from a handful of sender addresses. When a customer
//! hits "reply", their mail server delivers the answer over SMTP to the host those
//! addresses point at; this crate is the piece that listens there. It speaks a small,
//! strict subset of RFC 5321 over plain TCP (no TLS, no AUTH: it is meant to sit behind
//! an MX relay or on a trusted network), accepts mail only for the addresses a
//! [`Mailbox`] accepts (and `postmaster`), bounds the sessions and buffered data any
//! client can cause (see [`SmtpConfig`]), and hands every accepted message over parsed into a
//! [`ReceivedMail`]: sender, decoded subject and body, the reply without the quoted
//! original ([`ReceivedMail::reply_text`]), and the `Message-ID` / `In-Reply-To` /
//! `References` ids that Herald uses to thread the reply into its conversation.
//!
//! Delivery is synchronous with the protocol: the server answers `250` to the end of
//! `DATA` only after [`Mailbox::deliver`] has returned `Ok`, so a `250` means the
//! message is stored. If the mailbox fails temporarily the client gets `451` and its
//! mail server retries later; nothing is lost in between.
//!
//! The crate knows nothing about Herald's storage: the caller supplies the
//! [`Mailbox`]. [`parse`] can also be used on its own, e.g. to import `.eml` files.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use herald_smtp_in::{Mailbox, ReceivedMail, Reject, SmtpConfig};
//! struct Replies;
//! #[async_trait::async_trait]
//! impl Mailbox for Replies {
//!     async fn accepts(&self, rcpt: &str) -> Result<bool, String> {
//!         Ok(rcpt == "support@example.com")
//!     }
//!     async fn deliver(&self, mail: ReceivedMail) -> Result<(), Reject> {
//!         println!("reply from {:?}: {}", mail.from, mail.reply_text);
//!         Ok(())
//!     }
//! }
//! # async fn run() -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:2525").await?;
//! let config = SmtpConfig::new("mx.example.com");
//! herald_smtp_in::serve(listener, Arc::new(Replies), config, std::future::pending()).await
//! # }
//! ```

mod auth;
mod html;
mod parse;
mod reply;
mod server;

use std::time::Duration;

pub use auth::from_authenticated;
pub use html::html_to_text;
pub use parse::parse;
pub use reply::reply_text;
pub use server::{SmtpUsage, serve, serve_observed};

/// One message accepted over SMTP (or read by [`parse`]), decoded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReceivedMail {
    /// The envelope sender (`MAIL FROM`), as given. Empty for bounces (`MAIL FROM:<>`)
    /// and when the mail came from [`parse`].
    pub envelope_from: String,
    /// The accepted envelope recipients (`RCPT TO`), lower-cased, without duplicates,
    /// in the order given. Empty when the mail came from [`parse`].
    pub recipients: Vec<String>,
    /// The `From` header's address, lower-cased, without the display name.
    pub from: Option<String>,
    /// The `From` header names more than one address ([`from`](Self::from) is the first);
    /// such a message is never taken as authenticated.
    pub multiple_from: bool,
    /// The values of the `Authentication-Results` headers, topmost first, as written (at most
    /// 32, each cut at 8 KiB); see [`from_authenticated`].
    pub authentication_results: Vec<String>,
    /// The `Subject` header, RFC 2047 decoded and trimmed.
    pub subject: Option<String>,
    /// The plain-text body: the `text/plain` part(s) decoded (transfer encoding and
    /// charset, `format=flowed` joined); if the message only has HTML, a plain-text
    /// rendering of it (see [`html_to_text`]). Trimmed.
    pub text: String,
    /// [`text`](Self::text) without the quoted original (see [`reply_text`]); equal to
    /// `text` when stripping would leave nothing.
    pub reply_text: String,
    /// The `Message-ID`, without angle brackets.
    pub message_id: Option<String>,
    /// The `In-Reply-To` ids, without angle brackets.
    pub in_reply_to: Vec<String>,
    /// The `References` ids, without angle brackets, in header order.
    pub references: Vec<String>,
    /// Set for mail that no person wrote, which Herald must not take as a customer's
    /// reply: an `Auto-Submitted` header other than `no` (RFC 3834), the older
    /// auto-reply markers (`X-Autoreply`, `X-Autorespond`, `Precedence: bulk | junk |
    /// auto_reply`), a delivery or read report (`multipart/report`), or — when received
    /// over SMTP — a bounce (empty envelope sender).
    pub auto_submitted: bool,
    /// Size in bytes of the message data (after dot-unstuffing).
    pub size: usize,
}

/// Why [`Mailbox::deliver`] refused a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Reject {
    /// Try again later: answered `451`, the sending server keeps the message and retries.
    #[error("temporary failure: {0}")]
    Temporary(String),
    /// Never: answered `554`, the sending server bounces the message to its author.
    #[error("permanent failure: {0}")]
    Permanent(String),
}

/// Where accepted mail goes: the caller's side of the listener.
#[async_trait::async_trait]
pub trait Mailbox: Send + Sync + 'static {
    /// Whether mail for this (lower-cased) address is accepted at `RCPT`: `false` is
    /// answered `550` (relaying denied), `Err` is a temporary failure (answered `451`, the
    /// client may retry). The listener itself accepts a bare `postmaster` (RFC 5321 4.5.1).
    ///
    /// The answer is visible to anyone who connects: to keep which addresses exist private,
    /// accept every address of a domain you serve the same way and drop the unknown ones in
    /// [`deliver`](Self::deliver), where the client no longer learns anything.
    async fn accepts(&self, rcpt: &str) -> Result<bool, String>;

    /// Stores the message. `Ok` is answered `250` (the sender forgets the message),
    /// `Err(Reject::Temporary(_))` `451`, `Err(Reject::Permanent(_))` `554`.
    /// The reason text is sent to the client (on one line), so keep secrets out of it.
    async fn deliver(&self, mail: ReceivedMail) -> Result<(), Reject>;
}

/// Settings of the SMTP listener.
///
/// Every limit bounds what a client (anyone who can reach the port) can make the listener
/// hold: at most [`max_sessions`](Self::max_sessions) sessions, each at most
/// [`session_timeout`](Self::session_timeout) long and idle at most
/// [`command_timeout`](Self::command_timeout) between lines, and at most
/// [`max_buffered_bytes`](Self::max_buffered_bytes) of message data buffered across all of
/// them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpConfig {
    /// The name the server gives in its greeting and `EHLO` answer.
    pub hostname: String,
    /// Largest message accepted, in bytes (advertised as `SIZE`). Default 10 MiB.
    pub max_message_bytes: usize,
    /// Most recipients in one transaction; more get `452`. Default 50.
    pub max_recipients: usize,
    /// How long the server waits for the client's next command or data line before
    /// answering `421` and closing. Default 5 minutes.
    pub command_timeout: Duration,
    /// Longest a session may last, however busy the client keeps it; past it the server
    /// answers `421` and closes (a message being received is dropped). Default 30 minutes.
    pub session_timeout: Duration,
    /// Most sessions at once; a connection beyond them is answered `421` and closed at once.
    /// Default 64.
    pub max_sessions: usize,
    /// Most message data buffered across all sessions, in bytes. A message that would take
    /// the total past it is read on to its end without being kept and answered `452` (the
    /// sending server retries later). Default 64 MiB.
    pub max_buffered_bytes: usize,
}

impl SmtpConfig {
    /// Default limit on a message's size: 10 MiB.
    pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 10 * 1024 * 1024;
    /// Default limit on recipients per message.
    pub const DEFAULT_MAX_RECIPIENTS: usize = 50;
    /// Default wait for the client's next command.
    pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(5 * 60);
    /// Default longest session.
    pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(30 * 60);
    /// Default most sessions at once.
    pub const DEFAULT_MAX_SESSIONS: usize = 64;
    /// Default most message data buffered across all sessions: 64 MiB.
    pub const DEFAULT_MAX_BUFFERED_BYTES: usize = 64 * 1024 * 1024;

    /// The defaults, with this hostname.
    pub fn new(hostname: impl Into<String>) -> Self {
        SmtpConfig {
            hostname: hostname.into(),
            ..SmtpConfig::default()
        }
    }
}

impl Default for SmtpConfig {
    /// Hostname `localhost`, 10 MiB, 50 recipients, 5 minutes idle, 30 minutes a session,
    /// 64 sessions, 64 MiB buffered.
    fn default() -> Self {
        SmtpConfig {
            hostname: "localhost".to_owned(),
            max_message_bytes: Self::DEFAULT_MAX_MESSAGE_BYTES,
            max_recipients: Self::DEFAULT_MAX_RECIPIENTS,
            command_timeout: Self::DEFAULT_COMMAND_TIMEOUT,
            session_timeout: Self::DEFAULT_SESSION_TIMEOUT,
            max_sessions: Self::DEFAULT_MAX_SESSIONS,
            max_buffered_bytes: Self::DEFAULT_MAX_BUFFERED_BYTES,
        }
    }
}
