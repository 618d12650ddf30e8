//! Herald's channels: one [`Transport`] trait and the providers that carry messages.
//!
//! | transport | carries | what it does |
//! | --- | --- | --- |
//! | [`FileTransport`] | sms, voice, email | appends one JSON line per message to `outbox.jsonl` (the default) |
//! | [`SmtpTransport`] | email | SMTP with lettre: plain, STARTTLS or implicit TLS, pooled connections |
//! | [`TwilioTransport`] | sms, voice | Twilio's Messages and Calls APIs (form-encoded, basic auth) |
//! | [`WebhookTransport`] | sms, voice, email | POSTs the message as JSON to any gateway, optionally signed |
//!
//! A transport sends one [`OutboundMessage`] and answers [`Accepted`] or a [`SendError`] that says
//! whether trying again may help ([`SendError::Transient`]) or not ([`SendError::Permanent`]). The
//! engine decides about retries, backoff and crash recovery; transports never retry by themselves.
//!
//! Every message carries a deterministic idempotency key ([`idempotency_key`], herald-core's:
//! `<outreach id as 32 hex digits>-<recipient id>`). SMTP derives the `Message-ID` from it (so a
//! re-sent email is recognisably the same), the webhook sends it as `Idempotency-Key`, the file
//! sink writes it on every line.
//!
//! TLS is rustls with the `ring` provider everywhere (never aws-lc-rs): see [`http`]
//! for why the HTTP transports use hyper directly rather than reqwest.
//!
//! Configuration ([`ChannelsConfig`]) is the `[channels]` table of `herald.toml`;
//! [`Transports::from_config`] builds one transport per configured provider.

pub mod codes;
pub mod config;
mod file;
pub mod http;
mod secret;
pub mod smtp;
pub mod twilio;
pub mod webhook;

use async_trait::async_trait;
use herald_core::{Address, Channel, E164, Language};
use std::time::Duration;
use uuid::Uuid;

pub use config::{
    ChannelsConfig, ConfigError, FileConfig, SmtpConfig, Transports, TwilioConfig, WebhookConfig,
};
pub use file::{Clock, FileTransport};
pub use secret::Secret;
pub use smtp::SmtpTransport;
pub use twilio::{
    Speech, TwilioTransport, VoicePrompts, answered_by_machine, dialed_response_twiml, dialed_url,
    gather_response_twiml, gather_url_for, twilio_signature, verify_twilio_signature,
    voice_answer_twiml, voice_answer_url, voice_prompts, voice_twiml_machine, voice_twiml_person,
    xml_escape,
};
pub use webhook::{WebhookTransport, verify_webhook_signature, webhook_signature};

/// The deterministic idempotency key of one send: `<outreach id>-<recipient id>` (the outreach as
/// 32 lower-case hex digits, the recipient's store id in decimal), from [`herald_core::outreach`].
/// It contains only characters that are valid in an email `Message-ID`, an HTTP header and a file
/// name, so every transport can use it as it is.
pub use herald_core::outreach::idempotency_key;

/// One message to one recipient, rendered and ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundMessage {
    /// Outreach id + recipient id ([`idempotency_key`]); the same for every attempt.
    pub idempotency_key: String,
    /// `sms`, `voice` or `email` (`chat` is not carried by any transport here).
    pub channel: Channel,
    /// The sender's address: a phone number for sms/voice, an email address for email.
    pub from: Address,
    /// The recipient's address, of the same kind as `from`.
    pub to: Address,
    /// Email subject; ignored by sms and voice.
    pub subject: Option<String>,
    /// The rendered body: the SMS text, the email's text/plain part, or what a call says.
    pub body: String,
    /// Email only: the HTML part (a fragment: the transport wraps it in a document). With it an
    /// email is `multipart/alternative` of `body` and this; without it, `body` alone.
    pub html: Option<String>,
    /// The campaign's language: voice calls speak in it (`<Say language=...>`).
    pub language: Language,
    pub campaign_id: Uuid,
    pub outreach_id: Uuid,
    /// The recipient's id in the store.
    pub recipient_id: i64,
    /// Email only: the one-click unsubscribe target, sent as `List-Unsubscribe` together with
    /// `List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058).
    pub unsubscribe_url: Option<String>,
    /// Voice only: the voice, spoken language and prompts of the call (the campaign's).
    pub voice_settings: herald_core::VoiceSettings,
    /// Voice only: the number a person who presses 1 is connected to (the sender's inbox).
    pub agent_number: Option<E164>,
    /// Email only: the `Message-ID` (with angle brackets) of the customer's email this one
    /// answers, sent as `In-Reply-To` and `References` so mail clients thread an agent's reply.
    pub in_reply_to: Option<String>,
}

/// The provider took the message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Accepted {
    /// The provider's id for it, when it gave one: Twilio's `SM...`/`CA...` sid, the email's
    /// `Message-ID` (with its angle brackets), `file-<idempotency key>`, or the webhook's `id`.
    pub provider_message_id: Option<String>,
}

/// Why a send failed, and whether trying again may help.
///
/// `code` is the provider's own code when it gave one (Twilio's `21610`, an SMTP reply code such
/// as `451` or `550`), else the HTTP status, else one of the words in [`codes`] (`connect`,
/// `timeout`, `network`, `tls`, ...).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// May succeed later: HTTP 429/5xx, SMTP 4xx, timeouts, connection failures.
    #[error("temporary failure ({}): {message}", code.as_deref().unwrap_or("no code"))]
    Transient {
        code: Option<String>,
        message: String,
        /// What the provider asked for (`Retry-After`), if anything.
        retry_after: Option<Duration>,
    },
    /// Will fail again the same way: invalid number, opted out, SMTP 5xx, HTTP 4xx.
    #[error("permanent failure ({}): {message}", code.as_deref().unwrap_or("no code"))]
    Permanent {
        code: Option<String>,
        message: String,
    },
}

impl SendError {
    pub fn transient(code: impl Into<String>, message: impl Into<String>) -> Self {
        SendError::Transient {
            code: Some(code.into()),
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn permanent(code: impl Into<String>, message: impl Into<String>) -> Self {
        SendError::Permanent {
            code: Some(code.into()),
            message: message.into(),
        }
    }

    pub fn is_transient(&self) -> bool {
        matches!(self, SendError::Transient { .. })
    }

    pub fn code(&self) -> Option<&str> {
        match self {
            SendError::Transient { code, .. } | SendError::Permanent { code, .. } => {
                code.as_deref()
            }
        }
    }

    pub fn message(&self) -> &str {
        match self {
            SendError::Transient { message, .. } | SendError::Permanent { message, .. } => message,
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            SendError::Transient { retry_after, .. } => *retry_after,
            SendError::Permanent { .. } => None,
        }
    }

    /// Twilio said the recipient opted out (21610): the engine should suppress the number.
    pub fn is_opted_out(&self) -> bool {
        !self.is_transient() && self.code() == Some(codes::TWILIO_OPTED_OUT)
    }

    /// The request may have reached the provider before it failed (a timeout or a connection lost
    /// after the request was written), so the message may have gone out. An at-most-once channel
    /// (sms, voice) should not re-send after such an error; a connection that was never made
    /// (`connect`) or an answer from the provider is not ambiguous.
    pub fn may_have_been_sent(&self) -> bool {
        self.is_transient() && matches!(self.code(), Some(codes::TIMEOUT | codes::NETWORK))
    }
}

/// Something that carries messages to a provider. Implementations are cheap to share
/// (`Arc<dyn Transport>`) and safe to call from many tasks at once; they do not retry.
#[async_trait]
pub trait Transport: Send + Sync {
    /// The provider's name as in `herald.toml` and [`herald_core::Provider`]: `file`, `smtp`, ...
    fn name(&self) -> &'static str;

    /// Whether this transport can carry the channel at all.
    fn supports(&self, channel: Channel) -> bool {
        channel.has_senders()
    }

    /// Sends one message. Never panics on what the provider answers.
    async fn send(&self, msg: &OutboundMessage) -> Result<Accepted, SendError>;
}

/// The error for a message on a channel the transport does not carry.
pub(crate) fn unsupported(transport: &str, channel: Channel) -> SendError {
    SendError::permanent(
        codes::UNSUPPORTED_CHANNEL,
        format!("the {transport} transport cannot carry {channel} messages"),
    )
}

/// Renders an error and its sources as one line (`a: b: c`).
pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        let s = e.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        source = e.source();
    }
    out
}

/// Whether a TLS failure (a `rustls::Error`) is among the causes of `err`. Looks inside
/// `io::Error`s too, whose `source()` skips the error they wrap.
pub(crate) fn caused_by_tls(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut pending: Vec<&(dyn std::error::Error + 'static)> = vec![err];
    let mut seen = 0;
    while let Some(e) = pending.pop() {
        seen += 1;
        if seen > 64 {
            break;
        }
        if e.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            pending.push(inner);
        }
        if let Some(source) = e.source() {
            pending.push(source);
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_idempotency_key_is_cores() {
        let o = Uuid::from_u128(1);
        assert_eq!(idempotency_key(o, 2), idempotency_key(o, 2));
        assert_eq!(idempotency_key(o, 2), "00000000000000000000000000000001-2");
    }

    #[test]
    fn errors_describe_themselves() {
        let e = SendError::permanent("21610", "unsubscribed");
        assert!(e.is_opted_out());
        assert!(!e.may_have_been_sent());
        assert_eq!(e.to_string(), "permanent failure (21610): unsubscribed");
        let t = SendError::transient(codes::TIMEOUT, "no answer in 30s");
        assert!(t.may_have_been_sent());
        assert!(!SendError::transient(codes::CONNECT, "refused").may_have_been_sent());
    }
}
