//! [`FakeTwilio`]: enough of Twilio's REST API for Herald's SMS and voice transport.
//!
//! - `POST /2010-04-01/Accounts/{AccountSid}/Messages.json` (`To`, `From`, `Body`, optional
//!   `StatusCallback`) answers `201` with a message resource: `sid` `SM` + 32 hex digits,
//!   `status` `queued`, `to`, `from`, `body`, ...
//! - `POST /2010-04-01/Accounts/{AccountSid}/Calls.json` (`To`, `From`, `Twiml` or `Url`,
//!   optional `MachineDetection`, `StatusCallback`) answers `201` with a call resource (`sid`
//!   `CA` + 32 hex digits).
//!
//! Requests must carry HTTP basic auth with the configured account sid and auth token (else
//! `401`, code 20003) and name that account in the path (else `404`, code 20404). Errors are
//! Twilio's JSON: `{"code":21610,"message":"...","more_info":"...","status":400}`.
//!
//! # Failure injection
//!
//! In the order they are checked, after authentication and the required fields:
//! 1. permanent failures per `To` number ([`FakeTwilio::fail_number`], or the builder's
//!    [`opted_out`](FakeTwilioBuilder::opted_out) (21610) and
//!    [`invalid_number`](FakeTwilioBuilder::invalid_number) (21211)): `400` with that code;
//! 2. transient failures at a rate ([`FakeTwilioBuilder::transient_rate`]): a mix of `500`
//!    (code 20500) and `429` (code 20429, `Retry-After: 1`). Whether the `n`-th request for a
//!    number (counted per resource, Messages or Calls) fails depends only on the seed, the
//!    resource, the number and `n`, so a run is reproducible however requests interleave;
//! 3. an artificial latency ([`FakeTwilioBuilder::latency`]) before every answer. The request is
//!    recorded (and, when it succeeds, accepted) *before* the wait, as Twilio would have taken a
//!    message whose client gave up waiting.

use crate::server::{Background, check_rate, draw, lock, mix, unit};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use herald_channels::TwilioConfig;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// The account sid a [`FakeTwilio`] expects unless told otherwise.
pub const TEST_ACCOUNT_SID: &str = "AC00000000000000000000000000000000";
/// The auth token a [`FakeTwilio`] expects unless told otherwise.
pub const TEST_AUTH_TOKEN: &str = "fake-twilio-auth-token";

/// Messages (SMS) or Calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TwilioResource {
    Messages,
    Calls,
}

impl TwilioResource {
    fn sid_prefix(self) -> &'static str {
        match self {
            TwilioResource::Messages => "SM",
            TwilioResource::Calls => "CA",
        }
    }

    fn name(self) -> &'static str {
        match self {
            TwilioResource::Messages => "Messages",
            TwilioResource::Calls => "Calls",
        }
    }
}

/// One request the fake received, whatever it answered.
#[derive(Debug, Clone)]
pub struct TwilioRequest {
    pub method: String,
    pub path: String,
    /// Every header (names in lower case), in the order received.
    pub headers: Vec<(String, String)>,
    /// The form fields, in the order sent.
    pub form: Vec<(String, String)>,
    /// The status the fake answered.
    pub status: u16,
    /// Twilio's error code when it answered with an error (20003, 21610, 20429, ...).
    pub error_code: Option<u32>,
}

impl TwilioRequest {
    /// The header's value (`name` in any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The first form field of that name.
    pub fn field(&self, name: &str) -> Option<&str> {
        field(&self.form, name)
    }
}

/// A message or call the fake accepted (answered `201`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwilioMessage {
    pub resource: TwilioResource,
    /// `SM…` for messages, `CA…` for calls: 2 letters and 32 hex digits.
    pub sid: String,
    pub to: String,
    pub from: String,
    /// Messages: the text.
    pub body: Option<String>,
    /// Calls: the inline TwiML.
    pub twiml: Option<String>,
    /// Calls: the TwiML URL, when given instead of `Twiml`.
    pub url: Option<String>,
    /// Calls: `MachineDetection` (`Enable`, `DetectMessageEnd`).
    pub machine_detection: Option<String>,
    pub status_callback: Option<String>,
    /// Every field as sent.
    pub form: Vec<(String, String)>,
}

impl TwilioMessage {
    pub fn is_sms(&self) -> bool {
        self.resource == TwilioResource::Messages
    }

    pub fn is_call(&self) -> bool {
        self.resource == TwilioResource::Calls
    }
}

#[derive(Debug, Clone)]
struct PermanentFailure {
    code: u32,
    message: String,
}

#[derive(Default)]
struct Records {
    requests: Vec<TwilioRequest>,
    accepted: Vec<TwilioMessage>,
    /// When each of `accepted` was accepted, in the same order.
    accepted_at: Vec<Instant>,
    /// How many requests each (resource, To) has had.
    attempts: HashMap<(TwilioResource, String), u64>,
    failing_numbers: HashMap<String, PermanentFailure>,
}

struct Shared {
    account_sid: String,
    auth_token: String,
    seed: u64,
    /// An `f64`'s bits.
    transient_rate: AtomicU64,
    latency_micros: AtomicU64,
    /// Counts accepted resources, for their sids.
    created: AtomicU64,
    state: Mutex<Records>,
}

/// Sets up a [`FakeTwilio`]; [`FakeTwilio::builder`].
#[derive(Debug, Clone)]
pub struct FakeTwilioBuilder {
    account_sid: String,
    auth_token: String,
    seed: u64,
    transient_rate: f64,
    latency: Duration,
    failing_numbers: Vec<(String, PermanentFailure)>,
}

impl FakeTwilioBuilder {
    /// The account sid and auth token requests must authenticate with (default
    /// [`TEST_ACCOUNT_SID`], [`TEST_AUTH_TOKEN`]).
    pub fn credentials(mut self, account_sid: &str, auth_token: &str) -> Self {
        self.account_sid = account_sid.to_string();
        self.auth_token = auth_token.to_string();
        self
    }

    /// The seed of the failure draws and the sids (default 0).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The share of requests (0 to 1) answered with a transient failure, 500 or 429.
    pub fn transient_rate(mut self, rate: f64) -> Self {
        self.transient_rate = check_rate(rate);
        self
    }

    /// Waits this long before every answer.
    pub fn latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// Requests to `to` are refused with `400` and this Twilio error code.
    pub fn fail_number(mut self, to: &str, code: u32, message: &str) -> Self {
        self.failing_numbers.push((
            to.to_string(),
            PermanentFailure {
                code,
                message: message.to_string(),
            },
        ));
        self
    }

    /// `to` has opted out: 21610 "Attempt to send to unsubscribed recipient".
    pub fn opted_out(self, to: &str) -> Self {
        self.fail_number(to, 21610, "Attempt to send to unsubscribed recipient")
    }

    /// `to` is not a valid number: 21211.
    pub fn invalid_number(self, to: &str) -> Self {
        let message = format!("The 'To' number {to} is not a valid phone number.");
        self.fail_number(to, 21211, &message)
    }

    /// Starts the server on 127.0.0.1 (a port of its own); it runs until the value is dropped.
    pub fn start(self) -> FakeTwilio {
        let shared = Arc::new(Shared {
            account_sid: self.account_sid,
            auth_token: self.auth_token,
            seed: self.seed,
            transient_rate: AtomicU64::new(self.transient_rate.to_bits()),
            latency_micros: AtomicU64::new(micros(self.latency)),
            created: AtomicU64::new(0),
            state: Mutex::new(Records {
                failing_numbers: self.failing_numbers.into_iter().collect(),
                ..Records::default()
            }),
        });
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        let server = Background::start("fake-twilio", move |listener| async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeTwilio { shared, server }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// A Twilio API on 127.0.0.1, recording what it is sent; see the [module docs](self).
pub struct FakeTwilio {
    shared: Arc<Shared>,
    server: Background,
}

impl FakeTwilio {
    /// A fake with the test credentials and no failures.
    pub fn start() -> Self {
        Self::builder().start()
    }

    pub fn builder() -> FakeTwilioBuilder {
        FakeTwilioBuilder {
            account_sid: TEST_ACCOUNT_SID.to_string(),
            auth_token: TEST_AUTH_TOKEN.to_string(),
            seed: 0,
            transient_rate: 0.0,
            latency: Duration::ZERO,
            failing_numbers: Vec::new(),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// `http://127.0.0.1:{port}`: Twilio's `base_url` for Herald.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// `base_url()` followed by `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url())
    }

    pub fn account_sid(&self) -> &str {
        &self.shared.account_sid
    }

    pub fn auth_token(&self) -> &str {
        &self.shared.auth_token
    }

    /// `/2010-04-01/Accounts/{sid}/Messages.json` (or `Calls.json`).
    pub fn resource_path(&self, resource: TwilioResource) -> String {
        format!(
            "/2010-04-01/Accounts/{}/{}.json",
            self.shared.account_sid,
            resource.name()
        )
    }

    /// A `[channels.twilio]` configuration pointing at this fake (no callback URLs).
    pub fn config(&self) -> TwilioConfig {
        let mut config = TwilioConfig::new(self.account_sid(), self.auth_token());
        config.base_url = self.base_url();
        config
    }

    /// The `[channels.twilio]` table of a `herald.toml` pointing at this fake, for a child
    /// process.
    pub fn config_toml(&self) -> String {
        format!(
            "[channels.twilio]\naccount_sid = {}\nauth_token = {}\nbase_url = {}\n",
            toml_string(self.account_sid()),
            toml_string(self.auth_token()),
            toml_string(&self.base_url())
        )
    }

    /// Changes the transient failure rate from now on.
    pub fn set_transient_rate(&self, rate: f64) {
        self.shared
            .transient_rate
            .store(check_rate(rate).to_bits(), Ordering::Relaxed);
    }

    /// Changes the latency from now on.
    pub fn set_latency(&self, latency: Duration) {
        self.shared
            .latency_micros
            .store(micros(latency), Ordering::Relaxed);
    }

    /// From now on requests to `to` are refused with `400` and this code (21610 opted out,
    /// 21211 invalid number, ...).
    pub fn fail_number(&self, to: &str, code: u32, message: &str) {
        lock(&self.shared.state).failing_numbers.insert(
            to.to_string(),
            PermanentFailure {
                code,
                message: message.to_string(),
            },
        );
    }

    /// Requests to `to` succeed again.
    pub fn heal_number(&self, to: &str) {
        lock(&self.shared.state).failing_numbers.remove(to);
    }

    /// Every request so far, in the order they were decided.
    pub fn requests(&self) -> Vec<TwilioRequest> {
        lock(&self.shared.state).requests.clone()
    }

    /// The messages and calls accepted so far, in order.
    pub fn accepted(&self) -> Vec<TwilioMessage> {
        lock(&self.shared.state).accepted.clone()
    }

    /// When each message or call of [`accepted`](Self::accepted) was accepted (as its request
    /// was decided, before the latency), in the same order: a rate as the provider meters it.
    pub fn accepted_times(&self) -> Vec<Instant> {
        lock(&self.shared.state).accepted_at.clone()
    }

    /// How many messages and calls each `To` number was accepted for (filter
    /// [`accepted`](Self::accepted) by [`TwilioMessage::is_sms`] to count one kind only).
    pub fn accepted_count_by_to(&self) -> BTreeMap<String, usize> {
        let state = lock(&self.shared.state);
        let mut counts = BTreeMap::new();
        for m in &state.accepted {
            *counts.entry(m.to.clone()).or_insert(0) += 1;
        }
        counts
    }

    /// `X-Twilio-Signature` for a callback to `url` with these POST parameters, signed with this
    /// fake's auth token (as Twilio signs its webhooks).
    pub fn sign<K: AsRef<str>, V: AsRef<str>>(&self, url: &str, params: &[(K, V)]) -> String {
        let params: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| (k.as_ref().to_string(), v.as_ref().to_string()))
            .collect();
        herald_channels::twilio_signature(&self.shared.auth_token, url, &params)
    }
}

/// What Herald answered a webhook the fake posted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookReply {
    pub status: u16,
    /// The `Content-Type`, if any.
    pub content_type: Option<String>,
    /// The body (TwiML for an inbound message).
    pub body: String,
}

/// An inbound SMS the fake delivered to Herald.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundSms {
    /// The `MessageSid` it carried (`SM` + 32 hex digits); post it again to replay it.
    pub sid: String,
    pub params: Vec<(String, String)>,
    pub reply: WebhookReply,
}

impl FakeTwilio {
    /// Posts `params` to `url` as Twilio posts a webhook: form-encoded, with
    /// `X-Twilio-Signature` computed over the URL and the parameters with this fake's auth token.
    /// `signature` replaces the computed one when given (a forgery test); `Some("")` sends none.
    pub async fn post_webhook(
        &self,
        url: &str,
        params: &[(String, String)],
        signature: Option<&str>,
    ) -> WebhookReply {
        let computed = self.sign(url, params);
        let signature = signature.unwrap_or(&computed);
        let mut request = reqwest::Client::new().post(url).form(params);
        if !signature.is_empty() {
            request = request.header("X-Twilio-Signature", signature);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("fake twilio: posting a webhook to {url}: {e}"));
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = response.text().await.unwrap_or_default();
        WebhookReply {
            status,
            content_type,
            body,
        }
    }

    /// The status callback of an accepted message, as Twilio posts it to the message's
    /// `StatusCallback` URL: `MessageSid`, `MessageStatus` (`sent`, `delivered`, `undelivered`,
    /// `failed`), `ErrorCode` when given, and the message's `To`/`From`. Panics if the fake
    /// accepted no message with that sid or it had no `StatusCallback`.
    pub fn status_params(
        &self,
        sid: &str,
        status: &str,
        error_code: Option<&str>,
    ) -> (String, Vec<(String, String)>) {
        let m = self
            .accepted()
            .into_iter()
            .find(|m| m.sid == sid)
            .unwrap_or_else(|| panic!("fake twilio accepted no message {sid}"));
        let url = m
            .status_callback
            .clone()
            .unwrap_or_else(|| panic!("message {sid} was sent without a StatusCallback"));
        let mut params = vec![
            ("AccountSid".to_string(), self.account_sid().to_string()),
            ("MessageSid".to_string(), m.sid.clone()),
            ("SmsSid".to_string(), m.sid.clone()),
            ("MessageStatus".to_string(), status.to_string()),
            ("SmsStatus".to_string(), status.to_string()),
            ("To".to_string(), m.to.clone()),
            ("From".to_string(), m.from.clone()),
            ("ApiVersion".to_string(), "2010-04-01".to_string()),
        ];
        if let Some(code) = error_code {
            params.push(("ErrorCode".to_string(), code.to_string()));
        }
        (url, params)
    }

    /// Posts the signed status callback of an accepted message (see
    /// [`status_params`](Self::status_params)).
    pub async fn post_status(
        &self,
        sid: &str,
        status: &str,
        error_code: Option<&str>,
    ) -> WebhookReply {
        let (url, params) = self.status_params(sid, status, error_code);
        self.post_webhook(&url, &params, None).await
    }

    /// A customer texts `body` from `from` to the number `to`: the fake posts Twilio's inbound
    /// message webhook (`MessageSid`, `From`, `To`, `Body`, `NumMedia` ...) to `url`, signed.
    pub async fn send_inbound(&self, url: &str, from: &str, to: &str, body: &str) -> InboundSms {
        let n = self.shared.created.fetch_add(1, Ordering::Relaxed);
        // The counter accepted messages use: never the sid of one of them.
        let low = mix(n ^ self.shared.seed);
        let sid = format!("SM{:016x}{low:016x}", mix(low));
        let params = vec![
            ("ToCountry".to_string(), "US".to_string()),
            ("SmsMessageSid".to_string(), sid.clone()),
            ("NumMedia".to_string(), "0".to_string()),
            ("SmsSid".to_string(), sid.clone()),
            ("SmsStatus".to_string(), "received".to_string()),
            ("Body".to_string(), body.to_string()),
            ("To".to_string(), to.to_string()),
            ("NumSegments".to_string(), "1".to_string()),
            ("MessageSid".to_string(), sid.clone()),
            ("AccountSid".to_string(), self.account_sid().to_string()),
            ("From".to_string(), from.to_string()),
            ("ApiVersion".to_string(), "2010-04-01".to_string()),
        ];
        let reply = self.post_webhook(url, &params, None).await;
        InboundSms { sid, params, reply }
    }
}

impl std::fmt::Debug for FakeTwilio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeTwilio")
            .field("addr", &self.addr())
            .field("account_sid", &self.shared.account_sid)
            .finish_non_exhaustive()
    }
}

/// A TOML basic string (JSON's escapes are TOML's).
pub(crate) fn toml_string(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// What the fake decided to answer.
enum Outcome {
    Created(Value),
    Error {
        status: StatusCode,
        code: u32,
        message: String,
        retry_after: Option<&'static str>,
    },
}

impl Outcome {
    fn error(status: StatusCode, code: u32, message: impl Into<String>) -> Self {
        Outcome::Error {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }
}

fn authorized(shared: &Shared, headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some((scheme, encoded)) = value.trim().split_once(' ') else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return false;
    }
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
        return false;
    };
    let expected = format!("{}:{}", shared.account_sid, shared.auth_token);
    decoded == expected.as_bytes()
}

/// `/2010-04-01/Accounts/{sid}/{Messages|Calls}.json` → (sid, resource).
fn parse_path(path: &str) -> Option<(&str, Option<TwilioResource>)> {
    let rest = path.strip_prefix("/2010-04-01/Accounts/")?;
    let (sid, resource) = rest.split_once('/')?;
    let resource = match resource {
        "Messages.json" => Some(TwilioResource::Messages),
        "Calls.json" => Some(TwilioResource::Calls),
        _ => None,
    };
    Some((sid, resource))
}

#[allow(clippy::disallowed_methods)] // a fake provider stamps its answers as the real one does
fn date_now() -> String {
    // Twilio writes RFC 2822 dates: "Thu, 30 Jul 2015 20:12:31 +0000".
    httpdate::fmt_http_date(SystemTime::now()).replace(" GMT", " +0000")
}

fn resource_json(shared: &Shared, m: &TwilioMessage) -> Value {
    let now = date_now();
    let uri = format!(
        "/2010-04-01/Accounts/{}/{}/{}.json",
        shared.account_sid,
        m.resource.name(),
        m.sid
    );
    match m.resource {
        TwilioResource::Messages => json!({
            "account_sid": shared.account_sid,
            "api_version": "2010-04-01",
            "body": m.body,
            "date_created": now,
            "date_sent": null,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": null,
            "error_message": null,
            "from": m.from,
            "messaging_service_sid": null,
            "num_media": "0",
            "num_segments": "1",
            "price": null,
            "price_unit": "USD",
            "sid": m.sid,
            "status": "queued",
            "subresource_uris": { "media": uri.replace(".json", "/Media.json") },
            "to": m.to,
            "uri": uri,
        }),
        TwilioResource::Calls => json!({
            "account_sid": shared.account_sid,
            "answered_by": null,
            "api_version": "2010-04-01",
            "caller_name": null,
            "date_created": now,
            "date_updated": now,
            "direction": "outbound-api",
            "duration": null,
            "end_time": null,
            "from": m.from,
            "from_formatted": m.from,
            "parent_call_sid": null,
            "price": null,
            "price_unit": "USD",
            "sid": m.sid,
            "start_time": null,
            "status": "queued",
            "to": m.to,
            "to_formatted": m.to,
            "uri": uri,
        }),
    }
}

/// Decides the answer and records the request, under one short lock.
fn decide(
    shared: &Shared,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Outcome {
    let form: Vec<(String, String)> = url::form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let recorded_headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let rate = f64::from_bits(shared.transient_rate.load(Ordering::Relaxed));

    let mut state = lock(&shared.state);
    let outcome = decide_locked(shared, &mut state, method, path, headers, &form, rate);
    let (status, error_code) = match &outcome {
        Outcome::Created(_) => (201, None),
        Outcome::Error { status, code, .. } => (status.as_u16(), Some(*code)),
    };
    state.requests.push(TwilioRequest {
        method: method.to_string(),
        path: path.to_string(),
        headers: recorded_headers,
        form,
        status,
        error_code,
    });
    outcome
}

fn decide_locked(
    shared: &Shared,
    state: &mut Records,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    form: &[(String, String)],
    rate: f64,
) -> Outcome {
    let not_found = || {
        Outcome::error(
            StatusCode::NOT_FOUND,
            20404,
            format!("The requested resource {path} was not found"),
        )
    };
    if !authorized(shared, headers) {
        return Outcome::error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    }
    let Some((sid, Some(resource))) = parse_path(path) else {
        return not_found();
    };
    if sid != shared.account_sid {
        return not_found();
    }
    if method != Method::POST {
        return Outcome::error(
            StatusCode::METHOD_NOT_ALLOWED,
            20004,
            format!("Method {method} not allowed"),
        );
    }
    let to = field(form, "To").filter(|s| !s.is_empty());
    let from = field(form, "From").filter(|s| !s.is_empty());
    let bad = |code: u32, message: &str| Outcome::error(StatusCode::BAD_REQUEST, code, message);
    let (Some(to), Some(from)) = (to, from) else {
        return match (resource, to.is_none()) {
            (TwilioResource::Messages, true) => bad(21604, "A 'To' phone number is required."),
            (TwilioResource::Messages, false) => bad(21603, "A 'From' phone number is required."),
            (TwilioResource::Calls, true) => bad(21201, "No 'To' number is specified"),
            (TwilioResource::Calls, false) => bad(21213, "No 'From' number is specified"),
        };
    };
    match resource {
        TwilioResource::Messages if field(form, "Body").is_none_or(str::is_empty) => {
            return bad(21602, "Message body is required.");
        }
        TwilioResource::Calls
            if field(form, "Twiml").is_none_or(str::is_empty)
                && field(form, "Url").is_none_or(str::is_empty) =>
        {
            return bad(21205, "Url parameter is required.");
        }
        _ => {}
    }

    let attempt = {
        let n = state
            .attempts
            .entry((resource, to.to_string()))
            .or_insert(0);
        *n += 1;
        *n
    };
    if let Some(failure) = state.failing_numbers.get(to) {
        return Outcome::error(
            StatusCode::BAD_REQUEST,
            failure.code,
            failure.message.clone(),
        );
    }
    if rate > 0.0 {
        let d = draw(
            shared.seed,
            &[
                resource.name().as_bytes(),
                to.as_bytes(),
                &attempt.to_le_bytes(),
            ],
        );
        if unit(d) < rate {
            // The lowest bit, independent of the high ones that made the decision.
            return if d & 1 == 0 {
                Outcome::Error {
                    status: StatusCode::TOO_MANY_REQUESTS,
                    code: 20429,
                    message: "Too Many Requests".to_string(),
                    retry_after: Some("1"),
                }
            } else {
                Outcome::error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    20500,
                    "An internal server error has occurred",
                )
            };
        }
    }

    let n = shared.created.fetch_add(1, Ordering::Relaxed);
    // `low` is a bijection of the counter, so no two sids of one fake are the same.
    let low = mix(n ^ shared.seed);
    let sid = format!("{}{:016x}{low:016x}", resource.sid_prefix(), mix(low));
    let owned = |name: &str| field(form, name).map(str::to_string);
    let message = TwilioMessage {
        resource,
        sid,
        to: to.to_string(),
        from: from.to_string(),
        body: owned("Body"),
        twiml: owned("Twiml"),
        url: owned("Url"),
        machine_detection: owned("MachineDetection"),
        status_callback: owned("StatusCallback"),
        form: form.to_vec(),
    };
    let json = resource_json(shared, &message);
    state.accepted.push(message);
    state.accepted_at.push(Instant::now());
    Outcome::Created(json)
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let outcome = decide(&shared, &method, uri.path(), &headers, &body);
    let latency = shared.latency_micros.load(Ordering::Relaxed);
    if latency > 0 {
        tokio::time::sleep(Duration::from_micros(latency)).await;
    }
    match outcome {
        Outcome::Created(json) => (StatusCode::CREATED, axum::Json(json)).into_response(),
        Outcome::Error {
            status,
            code,
            message,
            retry_after,
        } => {
            let body = json!({
                "code": code,
                "message": message,
                "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
                "status": status.as_u16(),
            });
            let mut response = (status, axum::Json(body)).into_response();
            if let Some(seconds) = retry_after {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static(seconds));
            }
            if status == StatusCode::UNAUTHORIZED {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"Twilio API\""),
                );
            }
            response
        }
    }
}
