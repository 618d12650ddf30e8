//! The `[channels]` table of `herald.toml`, and the set of transports built from it.
//!
//! ```toml
//! [channels.file]
//! path = "outbox.jsonl"            # default, relative to the working directory
//! [channels.smtp]
//! url = "smtp+starttls://mail.example.com:587"   # smtp:// (plain), smtp+starttls://, smtps://
//! username = "herald"
//! password = "..."
//! timeout_secs = 30                # per SMTP command; a whole send gets twice that
//! pool_size = 10
//! [channels.twilio]
//! account_sid = "AC..."
//! auth_token = "..."
//! base_url = "https://api.twilio.com"
//! [channels.webhook]
//! url = "https://gateway.example.com/send"
//! secret = "..."                   # optional: signs each request (X-Herald-Signature)
//! ```
//!
//! Secrets (`password`, `auth_token`, `secret`, a password inside the SMTP URL) never appear in
//! `Debug` output or error messages.

use crate::http::HttpTimeouts;
use crate::{FileTransport, Secret, SmtpTransport, Transport, TwilioTransport, WebhookTransport};
use herald_core::Provider;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// A configuration value Herald cannot use, with the key it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("channels.{field}: `{value}` is not a usable URL: {reason}")]
    InvalidUrl {
        field: &'static str,
        /// The URL with any password and query removed.
        value: String,
        reason: String,
    },
    #[error("channels.{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("setting up TLS failed: {0}")]
    Tls(String),
}

/// `[channels]`: the file sink is always there; the others only when configured.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelsConfig {
    #[serde(default)]
    pub file: FileConfig,
    #[serde(default)]
    pub smtp: Option<SmtpConfig>,
    #[serde(default)]
    pub twilio: Option<TwilioConfig>,
    #[serde(default)]
    pub webhook: Option<WebhookConfig>,
}

/// `[channels.file]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Default `outbox.jsonl`, relative to the working directory.
    #[serde(default = "default_outbox")]
    pub path: PathBuf,
}

fn default_outbox() -> PathBuf {
    PathBuf::from("outbox.jsonl")
}

impl Default for FileConfig {
    fn default() -> Self {
        Self {
            path: default_outbox(),
        }
    }
}

/// `[channels.smtp]`
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    /// `smtp://host[:port]` (plain, for tests and local relays; port 25),
    /// `smtp+starttls://host[:port]` (STARTTLS required; port 587) or `smtps://host[:port]`
    /// (implicit TLS; port 465). `user:password@` in the URL is accepted; `username` and
    /// `password` below take precedence.
    pub url: String,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<Secret>,
    /// Limit for each SMTP command and for connecting (default 30); a whole send gets twice it.
    #[serde(default = "default_smtp_timeout")]
    pub timeout_secs: u64,
    /// Most connections kept open to the server (default 10).
    #[serde(default = "default_pool_size")]
    pub pool_size: u32,
}

fn default_smtp_timeout() -> u64 {
    30
}

fn default_pool_size() -> u32 {
    10
}

impl SmtpConfig {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            username: None,
            password: None,
            timeout_secs: default_smtp_timeout(),
            pool_size: default_pool_size(),
        }
    }
}

impl fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("url", &redact_url(&self.url))
            .field("username", &self.username)
            .field("password", &self.password)
            .field("timeout_secs", &self.timeout_secs)
            .field("pool_size", &self.pool_size)
            .finish()
    }
}

/// `[channels.twilio]`
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioConfig {
    pub account_sid: String,
    pub auth_token: Secret,
    /// Default `https://api.twilio.com`; tests point it at a fake server.
    #[serde(default = "default_twilio_base")]
    pub base_url: String,
    /// Where Twilio posts message and call status: normally `{public_url}/webhooks/twilio/status`
    /// (see [`TwilioConfig::with_public_url`]). No `StatusCallback` is sent when unset.
    #[serde(default)]
    pub status_callback_url: Option<String>,
    /// The public base URL Twilio calls back for voice (`{base}/webhooks/twilio/voice/gather`);
    /// normally the server's `public_url`. Without it (or without an agent number) a call only
    /// speaks the message.
    #[serde(default)]
    pub voice_callback_base: Option<String>,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_secs: u64,
    #[serde(default = "default_http_timeout")]
    pub timeout_secs: u64,
}

fn default_twilio_base() -> String {
    "https://api.twilio.com".to_string()
}

fn default_connect_timeout() -> u64 {
    5
}

fn default_http_timeout() -> u64 {
    30
}

impl TwilioConfig {
    pub fn new(account_sid: impl Into<String>, auth_token: impl Into<Secret>) -> Self {
        Self {
            account_sid: account_sid.into(),
            auth_token: auth_token.into(),
            base_url: default_twilio_base(),
            status_callback_url: None,
            voice_callback_base: None,
            connect_timeout_secs: default_connect_timeout(),
            timeout_secs: default_http_timeout(),
        }
    }

    /// Fills the callback URLs that are not set explicitly from the server's public URL:
    /// `StatusCallback = {public_url}/webhooks/twilio/status`, voice callbacks under `public_url`.
    pub fn with_public_url(mut self, public_url: &str) -> Self {
        let base = public_url.trim_end_matches('/');
        if self.status_callback_url.is_none() {
            self.status_callback_url = Some(format!("{base}/webhooks/twilio/status"));
        }
        if self.voice_callback_base.is_none() {
            self.voice_callback_base = Some(base.to_string());
        }
        self
    }

    pub fn timeouts(&self) -> HttpTimeouts {
        HttpTimeouts {
            connect: Duration::from_secs(self.connect_timeout_secs),
            total: Duration::from_secs(self.timeout_secs),
        }
    }
}

impl fmt::Debug for TwilioConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwilioConfig")
            .field("account_sid", &self.account_sid)
            .field("auth_token", &self.auth_token)
            .field("base_url", &self.base_url)
            .field("status_callback_url", &self.status_callback_url)
            .field("voice_callback_base", &self.voice_callback_base)
            .field("connect_timeout_secs", &self.connect_timeout_secs)
            .field("timeout_secs", &self.timeout_secs)
            .finish()
    }
}

/// `[channels.webhook]`
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: String,
    /// Shared secret for `X-Herald-Signature` (HMAC-SHA256); unsigned when unset.
    #[serde(default)]
    pub secret: Option<Secret>,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_secs: u64,
    #[serde(default = "default_http_timeout")]
    pub timeout_secs: u64,
}

impl WebhookConfig {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            secret: None,
            connect_timeout_secs: default_connect_timeout(),
            timeout_secs: default_http_timeout(),
        }
    }

    pub fn timeouts(&self) -> HttpTimeouts {
        HttpTimeouts {
            connect: Duration::from_secs(self.connect_timeout_secs),
            total: Duration::from_secs(self.timeout_secs),
        }
    }
}

impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &redact_url(&self.url))
            .field("secret", &self.secret)
            .field("connect_timeout_secs", &self.connect_timeout_secs)
            .field("timeout_secs", &self.timeout_secs)
            .finish()
    }
}

/// A URL fit for logs: without user info, query or fragment (which may carry credentials).
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut url) => {
            let had_user = !url.username().is_empty() || url.password().is_some();
            let _ = url.set_username("");
            let _ = url.set_password(None);
            let had_query = url.query().is_some();
            url.set_query(None);
            url.set_fragment(None);
            let mut out = url.to_string();
            if had_user {
                out = out.replacen("://", "://***@", 1);
            }
            if had_query {
                out.push_str("?***");
            }
            out
        }
        Err(_) => "<unparsable URL>".to_string(),
    }
}

/// Parses an `http://` or `https://` URL from the configuration.
pub(crate) fn http_url(field: &'static str, raw: &str) -> Result<url::Url, ConfigError> {
    let invalid = |reason: String| ConfigError::InvalidUrl {
        field,
        value: redact_url(raw),
        reason,
    };
    let url = url::Url::parse(raw.trim()).map_err(|e| invalid(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(format!(
            "the scheme must be http or https, not {}",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("it has no host".to_string()));
    }
    Ok(url)
}

/// One transport per provider, shared by the dispatcher (`Arc<dyn Transport>`).
#[derive(Clone, Default)]
pub struct Transports {
    by_provider: BTreeMap<&'static str, (Provider, Arc<dyn Transport>)>,
}

impl Transports {
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds the file sink (always) and every configured provider. `public_url` is the URL
    /// providers call back (the server's `public_url`); it fills Twilio's callback URLs unless
    /// they are set explicitly.
    pub fn from_config(
        config: &ChannelsConfig,
        public_url: Option<&str>,
    ) -> Result<Self, ConfigError> {
        let mut transports = Self::new();
        transports.insert(
            Provider::File,
            Arc::new(FileTransport::new(config.file.path.clone())),
        );
        if let Some(smtp) = &config.smtp {
            transports.insert(Provider::Smtp, Arc::new(SmtpTransport::new(smtp)?));
        }
        if let Some(twilio) = &config.twilio {
            let twilio = match public_url {
                Some(url) => twilio.clone().with_public_url(url),
                None => twilio.clone(),
            };
            transports.insert(Provider::Twilio, Arc::new(TwilioTransport::new(&twilio)?));
        }
        if let Some(webhook) = &config.webhook {
            transports.insert(Provider::Webhook, Arc::new(WebhookTransport::new(webhook)?));
        }
        Ok(transports)
    }

    /// Adds or replaces the transport of a provider (tests plug in their own here).
    pub fn insert(&mut self, provider: Provider, transport: Arc<dyn Transport>) {
        self.by_provider
            .insert(provider.as_str(), (provider, transport));
    }

    pub fn get(&self, provider: Provider) -> Option<Arc<dyn Transport>> {
        self.by_provider
            .get(provider.as_str())
            .map(|(_, t)| Arc::clone(t))
    }

    /// The providers that have a transport, in name order.
    pub fn providers(&self) -> Vec<Provider> {
        self.by_provider.values().map(|(p, _)| *p).collect()
    }
}

impl fmt::Debug for Transports {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.by_provider.keys()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_secrets_in_logs() {
        assert_eq!(
            redact_url("smtps://user:p%40ss@mail.example.com:465"),
            "smtps://***@mail.example.com:465"
        );
        assert_eq!(
            redact_url("https://hooks.example.com/send?token=abc#x"),
            "https://hooks.example.com/send?***"
        );
        assert_eq!(redact_url("not a url"), "<unparsable URL>");
    }

    #[test]
    fn public_url_fills_twilio_callbacks() {
        let c = TwilioConfig::new("AC1", "t").with_public_url("https://herald.example.com/");
        assert_eq!(
            c.status_callback_url.as_deref(),
            Some("https://herald.example.com/webhooks/twilio/status")
        );
        assert_eq!(
            c.voice_callback_base.as_deref(),
            Some("https://herald.example.com")
        );
        let mut explicit = TwilioConfig::new("AC1", "t");
        explicit.status_callback_url = Some("https://cb.example.com/s".into());
        let c = explicit.with_public_url("https://herald.example.com");
        assert_eq!(
            c.status_callback_url.as_deref(),
            Some("https://cb.example.com/s")
        );
    }

    #[test]
    fn only_http_urls_for_http_providers() {
        assert!(http_url("webhook.url", "https://x.example.com/a").is_ok());
        assert!(matches!(
            http_url("webhook.url", "ftp://x.example.com"),
            Err(ConfigError::InvalidUrl { .. })
        ));
        assert!(http_url("webhook.url", "nonsense").is_err());
    }
}
