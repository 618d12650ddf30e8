//! Any other gateway: each message is POSTed as JSON to one URL.
//!
//! ```http
//! POST /send HTTP/1.1
//! Content-Type: application/json
//! Idempotency-Key: 01900000000070008000000000000002-42
//! X-Herald-Signature: t=1767225600,v1=5d41402abc4b2a76b9719d911017c592…   (when a secret is set)
//!
//! {"idempotency_key":"…","channel":"sms","from":"+1…","to":"+1…","subject":null,"body":"…",
//!  "language":"en-US","campaign_id":"…","outreach_id":"…","recipient_id":42,
//!  "unsubscribe_url":null,"agent_number":null}
//! ```
//!
//! An email also has `"html"`, its HTML part (a fragment; `body` is its plain-text part).
//!
//! The receiver should treat a repeated `Idempotency-Key` as the same message. The signature is
//! hex(HMAC-SHA256(secret, "{t}.{body}")) with `t` the Unix time of sending ([`webhook_signature`],
//! checked by [`verify_webhook_signature`]).
//!
//! Answers: 2xx accepted (the provider message id is the JSON `id` of the answer, if any);
//! 408, 429 and 5xx transient (honouring `Retry-After`); other statuses permanent.

use crate::config::{ConfigError, WebhookConfig, http_url, redact_url};
use crate::http::{HttpClient, HttpResponse, body_excerpt, retry_after};
use crate::{Accepted, OutboundMessage, Secret, SendError, Transport, codes, unsupported};
use async_trait::async_trait;
use bytes::Bytes;
use herald_core::{Address, Channel, E164, Language};
use hmac::{Hmac, KeyInit, Mac};
use http::{Request, StatusCode, Uri, header};
use http_body_util::Full;
use serde::Serialize;
use sha2::Sha256;
use std::fmt;
use uuid::Uuid;

/// The header that carries the signature.
pub const SIGNATURE_HEADER: &str = "x-herald-signature";

/// POSTs messages as JSON to a configured URL.
pub struct WebhookTransport {
    http: HttpClient,
    uri: Uri,
    display_url: String,
    secret: Option<Secret>,
}

impl fmt::Debug for WebhookTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookTransport")
            .field("url", &self.display_url)
            .field("secret", &self.secret)
            .finish_non_exhaustive()
    }
}

/// The JSON body of a webhook request.
#[derive(Debug, Serialize)]
pub struct WebhookPayload<'a> {
    pub idempotency_key: &'a str,
    pub channel: Channel,
    pub from: &'a Address,
    pub to: &'a Address,
    pub subject: Option<&'a str>,
    pub body: &'a str,
    /// An email's HTML part (a fragment; `body` is its plain-text part); absent for other messages.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub html: Option<&'a str>,
    pub language: &'a Language,
    pub campaign_id: Uuid,
    pub outreach_id: Uuid,
    pub recipient_id: i64,
    pub unsubscribe_url: Option<&'a str>,
    pub agent_number: Option<&'a E164>,
}

impl<'a> From<&'a OutboundMessage> for WebhookPayload<'a> {
    fn from(msg: &'a OutboundMessage) -> Self {
        Self {
            idempotency_key: &msg.idempotency_key,
            channel: msg.channel,
            from: &msg.from,
            to: &msg.to,
            subject: msg.subject.as_deref(),
            body: &msg.body,
            html: msg.html.as_deref(),
            language: &msg.language,
            campaign_id: msg.campaign_id,
            outreach_id: msg.outreach_id,
            recipient_id: msg.recipient_id,
            unsubscribe_url: msg.unsubscribe_url.as_deref(),
            agent_number: msg.agent_number.as_ref(),
        }
    }
}

impl WebhookTransport {
    pub fn new(config: &WebhookConfig) -> Result<Self, ConfigError> {
        let url = http_url("webhook.url", &config.url)?;
        let uri = url
            .as_str()
            .parse::<Uri>()
            .map_err(|e| ConfigError::InvalidUrl {
                field: "webhook.url",
                value: redact_url(&config.url),
                reason: e.to_string(),
            })?;
        let http =
            HttpClient::new(config.timeouts()).map_err(|e| ConfigError::Tls(e.to_string()))?;
        Ok(Self {
            http,
            uri,
            display_url: redact_url(url.as_str()),
            secret: config.secret.clone().filter(|s| !s.is_empty()),
        })
    }
}

fn hmac_sha256(secret: &str, timestamp: i64, body: &[u8]) -> Option<Hmac<Sha256>> {
    // HMAC takes keys of any length, so this never fails.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).ok()?;
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(mac)
}

/// hex(HMAC-SHA256(secret, "{timestamp}.{body}")): the `v1` of `X-Herald-Signature`.
pub fn webhook_signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    hmac_sha256(secret, timestamp, body)
        .map(|mac| hex::encode(mac.finalize().into_bytes()))
        .unwrap_or_default()
}

/// Checks an `X-Herald-Signature` header (`t=…,v1=…`) against the body, in constant time, and
/// refuses timestamps more than `tolerance_secs` away from `now_unix` (replays).
pub fn verify_webhook_signature(
    secret: &str,
    header_value: &str,
    body: &[u8],
    now_unix: i64,
    tolerance_secs: u64,
) -> bool {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header_value.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", v)) => signatures.push(v),
            _ => {}
        }
    }
    let Some(t) = timestamp else {
        return false;
    };
    if now_unix.abs_diff(t) > tolerance_secs {
        return false;
    }
    signatures.into_iter().any(|sig| {
        let Ok(given) = hex::decode(sig) else {
            return false;
        };
        hmac_sha256(secret, t, body).is_some_and(|mac| mac.verify_slice(&given).is_ok())
    })
}

fn outcome(response: &HttpResponse) -> Result<Accepted, SendError> {
    let status = response.status;
    if status.is_success() {
        let id = serde_json::from_slice::<serde_json::Value>(&response.body)
            .ok()
            .and_then(|json| match json.get("id") {
                Some(serde_json::Value::String(s)) if !s.is_empty() => Some(s.clone()),
                Some(serde_json::Value::Number(n)) => Some(n.to_string()),
                _ => None,
            });
        return Ok(Accepted {
            provider_message_id: id,
        });
    }
    let code = Some(status.as_str().to_string());
    let message = format!("HTTP {status}: {}", body_excerpt(&response.body));
    if status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.is_server_error()
    {
        Err(SendError::Transient {
            code,
            message,
            retry_after: retry_after(&response.headers),
        })
    } else {
        Err(SendError::Permanent { code, message })
    }
}

#[async_trait]
impl Transport for WebhookTransport {
    fn name(&self) -> &'static str {
        "webhook"
    }

    #[tracing::instrument(
        name = "webhook.send",
        skip_all,
        fields(
            campaign_id = %msg.campaign_id,
            outreach_id = %msg.outreach_id,
            recipient_id = %msg.recipient_id,
            channel = %msg.channel,
            url = %self.display_url,
        )
    )]
    async fn send(&self, msg: &OutboundMessage) -> Result<Accepted, SendError> {
        if !self.supports(msg.channel) {
            return Err(unsupported(self.name(), msg.channel));
        }
        let body = serde_json::to_vec(&WebhookPayload::from(msg))
            .map_err(|e| SendError::permanent(codes::INVALID_MESSAGE, e.to_string()))?;
        let idempotency_key = http::HeaderValue::from_str(&msg.idempotency_key).map_err(|_| {
            SendError::permanent(
                codes::INVALID_MESSAGE,
                "the idempotency key cannot be sent as an HTTP header",
            )
        })?;
        let mut request = Request::post(self.uri.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json")
            .header(
                header::USER_AGENT,
                concat!("herald/", env!("CARGO_PKG_VERSION")),
            )
            .header("idempotency-key", idempotency_key);
        if let Some(secret) = &self.secret {
            #[allow(clippy::disallowed_methods)] // the receiver checks it against its wall clock
            let t = jiff::Timestamp::now().as_second();
            let signature = webhook_signature(secret.expose(), t, &body);
            request = request.header(SIGNATURE_HEADER, format!("t={t},v1={signature}"));
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| SendError::permanent(codes::INVALID_MESSAGE, e.to_string()))?;
        let result = match self.http.send(request).await {
            Ok(response) => outcome(&response),
            Err(e) => Err(e),
        };
        match &result {
            Ok(a) => tracing::debug!(id = ?a.provider_message_id, "webhook accepted"),
            Err(e) => tracing::warn!(error = %e, "webhook did not accept"),
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_and_expire() {
        let body = br#"{"a":1}"#;
        let sig = webhook_signature("s3cret", 1_700_000_000, body);
        assert_eq!(sig.len(), 64);
        let header = format!("t=1700000000,v1={sig}");
        assert!(verify_webhook_signature(
            "s3cret",
            &header,
            body,
            1_700_000_010,
            300
        ));
        assert!(!verify_webhook_signature(
            "s3cret",
            &header,
            body,
            1_700_001_000,
            300
        ));
        assert!(!verify_webhook_signature(
            "other",
            &header,
            body,
            1_700_000_010,
            300
        ));
        assert!(!verify_webhook_signature(
            "s3cret",
            &header,
            b"{}",
            1_700_000_010,
            300
        ));
        assert!(!verify_webhook_signature(
            "s3cret",
            "v1=00",
            body,
            1_700_000_010,
            300
        ));
        assert!(!verify_webhook_signature(
            "s3cret",
            "t=1700000000,v1=zz",
            body,
            1_700_000_000,
            300
        ));
    }
}
