//! Email over SMTP with lettre's pooled async transport (tokio, rustls with ring).
//!
//! An outreach email is `multipart/alternative` of a `text/plain; charset=utf-8` part and a
//! `text/html; charset=utf-8` part (the answer's Markdown written both ways by herald-core's
//! `markdown` module, the unsubscribe footer in each); a message without HTML (an agent's reply)
//! is `text/plain; charset=utf-8` alone. Either carries
//! - `Message-ID: <{idempotency key}@{from domain}>`, so a re-send after a crash carries the same
//!   id and the recipient's mail system (and Herald's reply threading) sees one message;
//! - `List-Unsubscribe: <{url}>` and `List-Unsubscribe-Post: List-Unsubscribe=One-Click`
//!   (RFC 8058) when the message has an unsubscribe URL;
//! - `Content-Language` from the campaign's language.
//!
//! SMTP replies map to errors as RFC 5321 means them: 4xx [`SendError::Transient`], 5xx
//! [`SendError::Permanent`]; connection failures, TLS failures and timeouts are transient.

use crate::config::{ConfigError, SmtpConfig, redact_url};
use crate::{Accepted, OutboundMessage, Secret, SendError, Transport, codes, unsupported};
use async_trait::async_trait;
use herald_core::{Address, Channel};
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, Message, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::{AsyncSmtpTransport, AsyncSmtpTransportBuilder, PoolConfig};
use lettre::{AsyncTransport, Tokio1Executor};
use std::fmt;
use std::sync::OnceLock;
use std::time::Duration;

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// `smtp://`: no TLS at all (local relays, tests). Default port 25.
    Plain,
    /// `smtp+starttls://`: plain connection upgraded with STARTTLS, which must succeed. Port 587.
    StartTls,
    /// `smtps://`: TLS from the first byte. Port 465.
    Tls,
}

/// The parts of an SMTP URL.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpEndpoint {
    pub security: SmtpSecurity,
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<Secret>,
}

impl fmt::Debug for SmtpEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpEndpoint")
            .field("security", &self.security)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password)
            .finish()
    }
}

impl SmtpEndpoint {
    /// Parses `smtp://`, `smtp+starttls://` or `smtps://` `[user[:password]@]host[:port]`.
    pub fn parse(raw: &str) -> Result<Self, ConfigError> {
        let invalid = |reason: String| ConfigError::InvalidUrl {
            field: "smtp.url",
            value: redact_url(raw),
            reason,
        };
        let url = url::Url::parse(raw.trim()).map_err(|e| invalid(e.to_string()))?;
        let (security, default_port) = match url.scheme() {
            "smtp" => (SmtpSecurity::Plain, 25),
            "smtp+starttls" => (SmtpSecurity::StartTls, 587),
            "smtps" => (SmtpSecurity::Tls, 465),
            other => {
                return Err(invalid(format!(
                    "use smtp://, smtp+starttls:// or smtps://, not {other}://"
                )));
            }
        };
        let host = match url.host() {
            Some(url::Host::Domain(d)) if !d.is_empty() => d.to_string(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            _ => return Err(invalid("it has no host".to_string())),
        };
        if !matches!(url.path(), "" | "/") || url.query().is_some() {
            return Err(invalid(
                "it must be only scheme://[user:password@]host[:port]".to_string(),
            ));
        }
        let decode = |s: &str| {
            url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        let username = Some(url.username()).filter(|u| !u.is_empty()).map(&decode);
        let password = url.password().map(|p| Secret::new(decode(p)));
        Ok(Self {
            security,
            host,
            port: url.port().unwrap_or(default_port),
            username,
            password,
        })
    }
}

/// Sends email through one SMTP server, keeping up to `pool_size` connections open.
///
/// lettre's connection pool lives on the tokio runtime: it is started at the first send (so
/// building the transport needs no runtime), and dropping the transport outside a runtime closes
/// the pool on the runtime that started it.
pub struct SmtpTransport {
    builder: AsyncSmtpTransportBuilder,
    pool: OnceLock<(AsyncSmtpTransport<Tokio1Executor>, tokio::runtime::Handle)>,
    endpoint: String,
    send_timeout: Duration,
}

impl Drop for SmtpTransport {
    fn drop(&mut self) {
        if let Some((pool, runtime)) = self.pool.take() {
            // lettre spawns the pool's shutdown as a task, which needs a runtime context.
            let _guard = tokio::runtime::Handle::try_current()
                .is_err()
                .then(|| runtime.enter());
            drop(pool);
        }
    }
}

impl fmt::Debug for SmtpTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpTransport")
            .field("endpoint", &self.endpoint)
            .field("send_timeout", &self.send_timeout)
            .finish_non_exhaustive()
    }
}

impl SmtpTransport {
    pub fn new(config: &SmtpConfig) -> Result<Self, ConfigError> {
        let endpoint = SmtpEndpoint::parse(&config.url)?;
        if config.timeout_secs == 0 {
            return Err(ConfigError::Invalid {
                field: "smtp.timeout_secs",
                reason: "must be at least 1".to_string(),
            });
        }
        if config.pool_size == 0 {
            return Err(ConfigError::Invalid {
                field: "smtp.pool_size",
                reason: "must be at least 1".to_string(),
            });
        }
        let timeout = Duration::from_secs(config.timeout_secs);
        let tls = match endpoint.security {
            SmtpSecurity::Plain => Tls::None,
            SmtpSecurity::StartTls | SmtpSecurity::Tls => {
                let params = TlsParameters::new(endpoint.host.clone())
                    .map_err(|e| ConfigError::Tls(e.to_string()))?;
                if endpoint.security == SmtpSecurity::Tls {
                    Tls::Wrapper(params)
                } else {
                    Tls::Required(params)
                }
            }
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&endpoint.host)
            .port(endpoint.port)
            .tls(tls)
            .timeout(Some(timeout))
            .pool_config(
                PoolConfig::new()
                    .max_size(config.pool_size)
                    .idle_timeout(Duration::from_secs(60)),
            );
        let username = config.username.clone().or(endpoint.username.clone());
        let password = config.password.clone().or(endpoint.password.clone());
        match (username, password) {
            (Some(user), Some(password)) => {
                builder = builder.credentials(Credentials::new(user, password.expose().to_string()))
            }
            (None, None) => {}
            (Some(_), None) => {
                return Err(ConfigError::Invalid {
                    field: "smtp.password",
                    reason: "a username is set but no password".to_string(),
                });
            }
            (None, Some(_)) => {
                return Err(ConfigError::Invalid {
                    field: "smtp.username",
                    reason: "a password is set but no username".to_string(),
                });
            }
        }
        Ok(Self {
            builder,
            pool: OnceLock::new(),
            endpoint: redact_url(&config.url),
            send_timeout: timeout * 2,
        })
    }
}

/// The `Message-ID` of a message (with angle brackets): `<{idempotency key}@{from domain}>`.
/// Characters of the key that may not stand in a Message-ID are replaced by `_`.
pub fn message_id(msg: &OutboundMessage) -> Result<String, SendError> {
    let Address::Email(from) = &msg.from else {
        return Err(SendError::permanent(
            codes::INVALID_ADDRESS,
            format!("the sender `{}` is not an email address", msg.from),
        ));
    };
    let mut left: String = msg
        .idempotency_key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    // dot-atom: no leading, trailing or doubled dots.
    while left.contains("..") {
        left = left.replace("..", "._");
    }
    let left = left.trim_matches('.');
    let left = if left.is_empty() { "_" } else { left };
    Ok(format!("<{left}@{}>", from.domain()))
}

fn mailbox(role: &str, address: &Address) -> Result<Mailbox, SendError> {
    let Address::Email(email) = address else {
        return Err(SendError::permanent(
            codes::INVALID_ADDRESS,
            format!("the {role} `{address}` is not an email address"),
        ));
    };
    email
        .as_str()
        .parse::<lettre::Address>()
        .map(|a| Mailbox::new(None, a))
        .map_err(|e| {
            SendError::permanent(
                codes::INVALID_ADDRESS,
                format!("the {role} `{email}` cannot be used for SMTP: {e}"),
            )
        })
}

/// Builds the email lettre sends: headers as described in the module docs, a UTF-8 text body, or
/// text and HTML as `multipart/alternative` when the message has HTML.
pub fn build_email(msg: &OutboundMessage) -> Result<Message, SendError> {
    let id = message_id(msg)?;
    let mut builder = Message::builder()
        .message_id(Some(id))
        .from(mailbox("sender", &msg.from)?)
        .to(mailbox("recipient", &msg.to)?);
    if let Some(subject) = &msg.subject {
        // A line break would start a new header, a control character reach the reader's
        // terminal, `=?...?=` be decoded by the mail client: none goes out as it came.
        builder = builder.subject(herald_core::render::sanitize_subject(subject));
    }
    // A Message-ID is `<…>` with no white space; anything else is dropped rather than sent.
    if let Some(parent) = msg.in_reply_to.as_deref().map(str::trim).filter(|p| {
        p.len() > 2
            && p.starts_with('<')
            && p.ends_with('>')
            && !p.chars().any(|c| c.is_whitespace() || c.is_control())
    }) {
        builder = builder
            .in_reply_to(parent.to_string())
            .references(parent.to_string());
    }
    if let Some(raw) = &msg.unsubscribe_url {
        let url = url::Url::parse(raw.trim())
            .ok()
            .filter(|u| matches!(u.scheme(), "https" | "http"))
            .ok_or_else(|| {
                SendError::permanent(
                    codes::INVALID_MESSAGE,
                    format!("the unsubscribe URL `{raw}` is not an http(s) URL"),
                )
            })?;
        builder = builder
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Unsubscribe"),
                format!("<{url}>"),
            ))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
                "List-Unsubscribe=One-Click".to_string(),
            ));
    }
    builder = builder.raw_header(HeaderValue::new(
        HeaderName::new_from_ascii_str("Content-Language"),
        msg.language.to_string(),
    ));
    let built = match &msg.html {
        Some(html) => builder.multipart(MultiPart::alternative_plain_html(
            msg.body.clone(),
            herald_core::markdown::html_document(&msg.language, html),
        )),
        None => builder
            .header(ContentType::TEXT_PLAIN)
            .body(msg.body.clone()),
    };
    built.map_err(|e| SendError::permanent(codes::INVALID_MESSAGE, e.to_string()))
}

fn map_smtp_error(err: lettre::transport::smtp::Error) -> SendError {
    let text = crate::error_chain(&err);
    if let Some(code) = err.status() {
        return if err.is_permanent() {
            SendError::permanent(code.to_string(), text)
        } else {
            SendError::transient(code.to_string(), text)
        };
    }
    if err.is_timeout() {
        SendError::transient(codes::TIMEOUT, text)
    } else if err.is_tls() || crate::caused_by_tls(&err) {
        SendError::transient(codes::TLS, text)
    } else if err.is_client() {
        SendError::permanent(codes::INVALID_MESSAGE, text)
    } else if text.starts_with("Connection error") {
        SendError::transient(codes::CONNECT, text)
    } else {
        SendError::transient(codes::NETWORK, text)
    }
}

#[async_trait]
impl Transport for SmtpTransport {
    fn name(&self) -> &'static str {
        "smtp"
    }

    fn supports(&self, channel: Channel) -> bool {
        channel == Channel::Email
    }

    #[tracing::instrument(
        name = "smtp.send",
        skip_all,
        fields(
            campaign_id = %msg.campaign_id,
            outreach_id = %msg.outreach_id,
            recipient_id = %msg.recipient_id,
            server = %self.endpoint,
        )
    )]
    async fn send(&self, msg: &OutboundMessage) -> Result<Accepted, SendError> {
        if !self.supports(msg.channel) {
            return Err(unsupported(self.name(), msg.channel));
        }
        let email = build_email(msg)?;
        let id = message_id(msg)?;
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Err(SendError::Permanent {
                code: None,
                message: "the SMTP transport must run on a tokio runtime".to_string(),
            });
        };
        let (pool, _) = self
            .pool
            .get_or_init(|| (self.builder.clone().build(), runtime));
        let result = match tokio::time::timeout(self.send_timeout, pool.send(email)).await {
            Ok(Ok(_response)) => Ok(Accepted {
                provider_message_id: Some(id),
            }),
            Ok(Err(e)) => Err(map_smtp_error(e)),
            Err(_) => Err(SendError::transient(
                codes::TIMEOUT,
                format!(
                    "the SMTP server did not take the message within {} s",
                    self.send_timeout.as_secs()
                ),
            )),
        };
        match &result {
            Ok(_) => tracing::debug!("email accepted by the SMTP server"),
            Err(e) => tracing::warn!(error = %e, "email not accepted"),
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_urls() {
        let e = SmtpEndpoint::parse("smtp://127.0.0.1:2525").unwrap();
        assert_eq!(e.security, SmtpSecurity::Plain);
        assert_eq!((e.host.as_str(), e.port), ("127.0.0.1", 2525));
        let e = SmtpEndpoint::parse("smtp+starttls://mail.example.com").unwrap();
        assert_eq!((e.security, e.port), (SmtpSecurity::StartTls, 587));
        let e = SmtpEndpoint::parse("smtps://me%40x.com:p%40ss+w@mail.example.com").unwrap();
        assert_eq!((e.security, e.port), (SmtpSecurity::Tls, 465));
        assert_eq!(e.username.as_deref(), Some("me@x.com"));
        assert_eq!(e.password.as_ref().map(Secret::expose), Some("p@ss+w"));
        assert!(!format!("{e:?}").contains("p@ss"));
        let e = SmtpEndpoint::parse("smtp://[::1]:25").unwrap();
        assert_eq!(e.host, "::1");
        for bad in [
            "http://mail.example.com",
            "smtp://",
            "mail.example.com:25",
            "smtp://h.example.com/x",
        ] {
            assert!(SmtpEndpoint::parse(bad).is_err(), "{bad}");
        }
        let err = SmtpEndpoint::parse("imap://u:secret@h.example.com").unwrap_err();
        assert!(!err.to_string().contains("secret"), "{err}");
    }

    #[test]
    fn the_message_id_is_the_idempotency_key_at_the_senders_domain() {
        let outreach_id = uuid::Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0002);
        let key = crate::idempotency_key(outreach_id, 1234);
        let msg = OutboundMessage {
            idempotency_key: key.clone(),
            channel: Channel::Email,
            from: Address::Email(
                herald_core::EmailAddress::parse("support@acme.example.com").unwrap(),
            ),
            to: Address::Email(herald_core::EmailAddress::parse("jane@example.org").unwrap()),
            subject: Some("Hi".into()),
            body: "body".into(),
            html: None,
            language: herald_core::Language::parse("en-US").unwrap(),
            campaign_id: uuid::Uuid::from_u128(1),
            outreach_id,
            recipient_id: 1234,
            unsubscribe_url: None,
            agent_number: None,
            voice_settings: Default::default(),
            in_reply_to: None,
        };
        let id = message_id(&msg).unwrap();
        assert_eq!(
            id,
            "<01900000000070008000000000000002-1234@acme.example.com>"
        );
        assert_eq!(id, format!("<{key}@acme.example.com>"));
        // lettre takes it as it is (a dot-atom local part: hex digits, one hyphen, digits).
        let email = build_email(&msg).unwrap();
        let raw = String::from_utf8(email.formatted()).unwrap();
        assert!(raw.contains(&format!("Message-ID: {id}\r\n")), "{raw}");
        assert!(!raw.contains("In-Reply-To"), "{raw}");

        // A reply names the customer's message; a malformed id is not sent at all.
        let reply = OutboundMessage {
            in_reply_to: Some("<CAF=xyz@mail.example.org>".into()),
            ..msg.clone()
        };
        let raw = String::from_utf8(build_email(&reply).unwrap().formatted()).unwrap();
        assert!(
            raw.contains("In-Reply-To: <CAF=xyz@mail.example.org>\r\n"),
            "{raw}"
        );
        assert!(
            raw.contains("References: <CAF=xyz@mail.example.org>\r\n"),
            "{raw}"
        );
        let bad = OutboundMessage {
            in_reply_to: Some("<a\r\nBcc: x@evil.example>".into()),
            ..msg
        };
        let raw = String::from_utf8(build_email(&bad).unwrap().formatted()).unwrap();
        assert!(
            !raw.contains("In-Reply-To") && !raw.contains("evil"),
            "{raw}"
        );
    }

    #[test]
    fn subjects_carry_no_control_character_or_raw_encoded_word() {
        let msg = OutboundMessage {
            idempotency_key: "k".into(),
            channel: Channel::Email,
            from: Address::Email(herald_core::EmailAddress::parse("support@acme.example").unwrap()),
            to: Address::Email(herald_core::EmailAddress::parse("jane@example.org").unwrap()),
            // What a CSV row put there: an escape sequence and an encoded word of its own.
            subject: Some(
                "Order \u{1b}[2J=?utf-8?B?WW91ciBhY2NvdW50IGlzIGxvY2tlZA==?= late\r\nBcc: x@evil.example"
                    .into(),
            ),
            body: "body".into(),
            html: None,
            language: herald_core::Language::parse("en").unwrap(),
            campaign_id: uuid::Uuid::from_u128(1),
            outreach_id: uuid::Uuid::from_u128(2),
            recipient_id: 1,
            unsubscribe_url: None,
            agent_number: None,
            voice_settings: Default::default(),
            in_reply_to: None,
        };
        let raw = build_email(&msg).unwrap().formatted();
        assert!(!raw.contains(&0x1b), "ESC reached the message");
        let raw = String::from_utf8(raw).unwrap();
        let headers = raw.split("\r\n\r\n").next().unwrap();
        assert!(
            !headers.contains("=?utf-8?B?WW91ciBhY2NvdW50IGlzIGxvY2tlZA==?="),
            "the CSV's encoded word went out raw, for the reader's client to decode: {headers}"
        );
        assert!(!headers.contains("\r\nBcc:"), "{headers}");
    }

    #[test]
    fn config_checks() {
        let mut c = SmtpConfig::new("smtp://127.0.0.1:2525");
        c.username = Some("u".into());
        assert!(matches!(
            SmtpTransport::new(&c),
            Err(ConfigError::Invalid {
                field: "smtp.password",
                ..
            })
        ));
        c.password = Some(Secret::new("pw-secret"));
        let t = SmtpTransport::new(&c).unwrap();
        assert!(!format!("{t:?}").contains("pw-secret"));
        assert!(!format!("{c:?}").contains("pw-secret"));
        // TLS parameters build with the ring provider (no panic, no aws-lc-rs).
        assert!(SmtpTransport::new(&SmtpConfig::new("smtps://mail.example.com")).is_ok());
        assert!(SmtpTransport::new(&SmtpConfig::new("smtp+starttls://mail.example.com")).is_ok());
    }
}
