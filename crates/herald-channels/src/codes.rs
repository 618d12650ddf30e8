//! The `code` of a [`SendError`](crate::SendError) when the provider gave none of its own.
//!
//! Provider codes are numbers (`21610`, `451`, `503`); Herald's own are words, so the two never
//! collide.

/// The connection could not be made (refused, DNS, connect timeout): nothing was sent.
pub const CONNECT: &str = "connect";
/// No complete answer in time: the request may or may not have reached the provider.
pub const TIMEOUT: &str = "timeout";
/// The connection failed after it was made: the request may or may not have reached the provider.
pub const NETWORK: &str = "network";
/// The TLS handshake failed (certificate, protocol): nothing was sent.
pub const TLS: &str = "tls";
/// Writing to the local outbox failed.
pub const IO: &str = "io";
/// The transport does not carry this channel (e.g. email through Twilio).
pub const UNSUPPORTED_CHANNEL: &str = "unsupported_channel";
/// An address of the wrong kind (a phone number for email, an email address for SMS) or one the
/// provider library refuses.
pub const INVALID_ADDRESS: &str = "invalid_address";
/// The message cannot be built (e.g. an unsubscribe URL that is not a URL).
pub const INVALID_MESSAGE: &str = "invalid_message";

/// Twilio: the recipient replied STOP to this sender; suppress the number.
pub const TWILIO_OPTED_OUT: &str = "21610";
/// Twilio: the `To` number is not a valid phone number.
pub const TWILIO_INVALID_NUMBER: &str = "21211";
