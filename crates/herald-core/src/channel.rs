//! Channels Herald reaches out on, and the providers that carry them.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The way a campaign reaches people. A sender has one of `sms`, `voice`, `email`; a campaign may
/// also be `chat` (web-chat greetings, which need no sender).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Sms,
    Voice,
    Email,
    Chat,
}

impl Channel {
    pub const ALL: [Channel; 4] = [Channel::Sms, Channel::Voice, Channel::Email, Channel::Chat];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Sms => "sms",
            Channel::Voice => "voice",
            Channel::Email => "email",
            Channel::Chat => "chat",
        }
    }

    /// Phone channels address people by E.164 number.
    pub fn is_phone(self) -> bool {
        matches!(self, Channel::Sms | Channel::Voice)
    }

    /// Whether a sender can be registered on this channel (chat campaigns have none).
    pub fn has_senders(self) -> bool {
        !matches!(self, Channel::Chat)
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a channel; use one of sms, voice, email, chat")]
pub struct UnknownChannel(pub String);

impl FromStr for Channel {
    type Err = UnknownChannel;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "sms" => Ok(Channel::Sms),
            "voice" => Ok(Channel::Voice),
            "email" => Ok(Channel::Email),
            "chat" => Ok(Channel::Chat),
            _ => Err(UnknownChannel(s.to_string())),
        }
    }
}

/// Who carries a sender's messages. `file` writes them to a local outbox (the default, so a new
/// user sees output); `webhook` posts them to any gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    #[default]
    File,
    Smtp,
    Twilio,
    Webhook,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::File => "file",
            Provider::Smtp => "smtp",
            Provider::Twilio => "twilio",
            Provider::Webhook => "webhook",
        }
    }

    /// Whether this provider can carry the channel.
    pub fn supports(self, channel: Channel) -> bool {
        match self {
            Provider::File | Provider::Webhook => channel.has_senders(),
            Provider::Smtp => channel == Channel::Email,
            Provider::Twilio => channel.is_phone(),
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a provider; use one of file, smtp, twilio, webhook")]
pub struct UnknownProvider(pub String);

impl FromStr for Provider {
    type Err = UnknownProvider;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "file" => Ok(Provider::File),
            "smtp" => Ok(Provider::Smtp),
            "twilio" => Ok(Provider::Twilio),
            "webhook" => Ok(Provider::Webhook),
            _ => Err(UnknownProvider(s.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_round_trips_through_its_name() {
        for c in Channel::ALL {
            assert_eq!(c.as_str().parse::<Channel>().unwrap(), c);
        }
        assert!("fax".parse::<Channel>().is_err());
    }

    #[test]
    fn providers_carry_only_their_channels() {
        assert!(Provider::Smtp.supports(Channel::Email));
        assert!(!Provider::Smtp.supports(Channel::Sms));
        assert!(Provider::Twilio.supports(Channel::Voice));
        assert!(!Provider::Twilio.supports(Channel::Email));
        assert!(!Provider::File.supports(Channel::Chat));
    }
}
