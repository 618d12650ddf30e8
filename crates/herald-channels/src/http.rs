//! The HTTP client the Twilio and webhook transports share, and pure helpers for HTTP answers.
//!
//! # Why hyper and not reqwest
//!
//! reqwest 0.13's only way to rustls without aws-lc-rs is its `rustls-no-provider` feature. Cargo
//! unifies features across a build, so enabling it here would turn on rustls in every crate of the
//! workspace that uses reqwest without TLS (the server's and the binary's tests do), and
//! `reqwest::Client::new()` then panics in those crates ("No rustls crypto provider is
//! configured") unless each of them installs a process-wide provider first. Talking to
//! hyper-util's client through hyper-rustls, with the `ring` provider passed in explicitly, keeps
//! aws-lc-rs out of the graph and leaves everyone else's reqwest alone.
//!
//! Server certificates are checked against the Mozilla roots of `webpki-roots` (the same roots
//! lettre uses for SMTP), so a machine needs no system CA bundle.

use crate::{SendError, caused_by_tls, codes, error_chain};
use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Time limits for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpTimeouts {
    /// To open the TCP connection (default 5 s).
    pub connect: Duration,
    /// For the whole exchange: connect, TLS, request, response headers and body (default 30 s).
    pub total: Duration,
}

impl Default for HttpTimeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            total: Duration::from_secs(30),
        }
    }
}

/// The largest response body read from a provider; more is refused.
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// What a provider answered.
#[derive(Debug, Clone)]
pub(crate) struct HttpResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A pooled HTTP/1.1 client over plain TCP or rustls (ring), with a deadline on every request.
#[derive(Clone)]
pub(crate) struct HttpClient {
    inner: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    total: Duration,
}

impl HttpClient {
    pub fn new(timeouts: HttpTimeouts) -> Result<Self, rustls::Error> {
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_connect_timeout(Some(timeouts.connect));
        tcp.set_nodelay(true);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(provider)?
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        let inner = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        Ok(Self {
            inner,
            total: timeouts.total,
        })
    }

    /// Sends the request and reads the whole answer, within the total timeout. Failures before an
    /// answer become [`SendError::Transient`] with code `connect`, `tls`, `timeout` or `network`.
    pub async fn send(&self, request: Request<Full<Bytes>>) -> Result<HttpResponse, SendError> {
        let exchange = async {
            let response = self.inner.request(request).await.map_err(request_error)?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| {
                    SendError::transient(
                        codes::NETWORK,
                        format!("reading the response failed: {}", error_chain(e.as_ref())),
                    )
                })?
                .to_bytes();
            Ok(HttpResponse {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        match tokio::time::timeout(self.total, exchange).await {
            Ok(result) => result,
            Err(_) => Err(SendError::transient(
                codes::TIMEOUT,
                format!("no complete answer within {} s", self.total.as_secs_f32()),
            )),
        }
    }
}

/// A failed request as a sentence a person reads first ("the provider could not be reached
/// (connection refused)"), then, after " — ", the raw chain of errors for whoever digs deeper.
fn request_error(err: hyper_util::client::legacy::Error) -> SendError {
    let text = error_chain(&err);
    let mut io_kind = None;
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            io_kind = Some(io.kind());
        }
        source = e.source();
    }
    let why = match io_kind {
        Some(std::io::ErrorKind::ConnectionRefused) => "connection refused",
        Some(std::io::ErrorKind::ConnectionReset) => "connection reset",
        Some(std::io::ErrorKind::TimedOut) => "no answer in time",
        Some(std::io::ErrorKind::NotFound) => "its address could not be found",
        _ => "network error",
    };
    let (code, sentence) = if caused_by_tls(&err) {
        (
            codes::TLS,
            "the secure connection to the provider failed".to_string(),
        )
    } else if err.is_connect() {
        (
            codes::CONNECT,
            format!("the provider could not be reached ({why})"),
        )
    } else if io_kind == Some(std::io::ErrorKind::TimedOut) {
        (
            codes::TIMEOUT,
            "the provider did not answer in time".to_string(),
        )
    } else {
        (
            codes::NETWORK,
            format!("the connection to the provider broke off ({why})"),
        )
    };
    SendError::transient(code, format!("{sentence} — {text}"))
}

/// `Authorization: Basic base64(user:password)`, marked sensitive so it is never logged.
pub(crate) fn basic_auth(user: &str, password: &str) -> http::HeaderValue {
    use base64::Engine;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    // base64 output is always a valid header value.
    let mut value = http::HeaderValue::from_str(&format!("Basic {token}"))
        .unwrap_or_else(|_| http::HeaderValue::from_static("Basic"));
    value.set_sensitive(true);
    value
}

/// Reads `Retry-After`: delay-seconds or an HTTP date (RFC 9110 §10.2.3). A date in the past
/// means "now" (zero); anything unreadable is ignored.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The `Retry-After` of an answer, read against the system clock.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?;
    #[allow(clippy::disallowed_methods)] // an HTTP date is read against the wall clock it names
    let now = SystemTime::now();
    parse_retry_after(value, now)
}

/// A short, printable excerpt of a response body for error messages.
pub(crate) fn body_excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let mut out: String = text
        .chars()
        .take(300)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().count() > 300 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480); // 2015-10-21 07:28:00
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::from_secs(0)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }

    #[test]
    fn basic_auth_is_sensitive() {
        let v = basic_auth("AC123", "token");
        assert!(v.is_sensitive());
        assert_eq!(v.to_str().ok(), Some("Basic QUMxMjM6dG9rZW4="));
    }

    #[test]
    fn excerpts_are_short_and_printable() {
        assert_eq!(body_excerpt(b"  oops\r\nbad  "), "oops  bad");
        assert_eq!(body_excerpt(&[b'x'; 400]).chars().count(), 301);
    }
}
