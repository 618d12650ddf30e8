//! Live chat: a visitor's side of a chat conversation, for the widget. Public routes (no
//! token of Herald's; every caller may be an attacker), under `/chat/v1/sites/{key}/`:
//!
//! - `POST conversations`: the visitor answers a live campaign's greeting. The first message
//!   opens a conversation in the campaign's inbox (the conversations and messages every channel
//!   uses, with a chat sender per campaign: `herald_store::ChatSites::chat_sender`), records the
//!   page and greeting on its timeline, and returns a **conversation token**;
//! - `POST conversations/messages`: a further message (token in the `Herald-Chat-Token` header);
//! - `GET conversations/messages?after=`: the conversation as the visitor sees it (on reload);
//! - `GET conversations/events?token=&after=`: a `text/event-stream` of new messages (the
//!   agents' answers), for `EventSource`, which cannot send headers.
//!
//! The token is `conversation.site.since.mac`: HMAC-SHA256 with a key derived from
//! `server.secret` over the conversation, the site and the instant the visitor's chat began; the
//! visitor reads only that conversation, and only from that instant on (a visitor matched to a
//! known customer by email does not read the customer's earlier chats).
//!
//! Bounds ([`ChatLimits`]): message size, a token bucket per conversation and per client
//! address, event streams per node and per conversation. The streams of a node are woken by
//! one poller ([`ChatLive`]), which asks the store every [`ChatLimits::poll_interval`] which
//! conversations got a message in the last [`LOOKBACK`] (one query, whatever the number of
//! streams: a range of an index on `conversations.last_message_at`) and wakes the streams of
//! those whose newest message changed: an answer written through another node on the same
//! PostgreSQL reaches the visitor within an interval. A message written on this node wakes its
//! streams at once.

use super::chat::SiteEntry;
use crate::AppState;
use crate::error::ApiError;
use crate::limits::Busy;
use crate::web::limits::ClientAddr;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use herald_core::{Address, EmailAddress};
use herald_store::{Author, ChatStart, Direction, InboundMessage, Message, Store};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use uuid::Uuid;

/// The header that carries the conversation token.
pub const TOKEN_HEADER: &str = "herald-chat-token";
/// How often an event stream sends a comment, so that proxies keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// The most bytes a request body of these routes may have (a message at its largest, escaped).
const BODY_MAX: usize = 32 * 1024;
/// The longest page URL a chat start records.
const PAGE_URL_MAX: usize = 2_048;
/// Messages one read of a conversation returns; a visitor's view reads at most
/// [`VIEW_PAGES`] of them.
const VIEW_PAGE: u32 = 100;
const VIEW_PAGES: usize = 10;
/// The most rate-limit buckets kept at once (conversations and client addresses together).
const BUCKETS_MAX: usize = 100_000;
/// How far back the poller looks for conversations with new messages: a message's time is
/// taken by the node that writes it before its transaction commits, so one committed late, or
/// written by a node whose clock is a little behind, is still seen.
pub const LOOKBACK: SignedDuration = SignedDuration::from_secs(10);
/// The most conversations one poll reads (the most recently active first).
const RECENT_MAX: u32 = 20_000;

/// Bounds on what visitors may cause. Defaults are in `docs/security.md`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatLimits {
    /// Longest visitor message, in characters.
    pub max_message_chars: usize,
    /// Messages one conversation may receive per minute (a token bucket of this size).
    pub messages_per_minute_per_conversation: u32,
    /// Messages (chat starts included) one client address may send per minute.
    pub messages_per_minute_per_address: u32,
    /// Event streams open on this node at once.
    pub streams_per_node: usize,
    /// Event streams open on one conversation at once (its visitor's tabs).
    pub streams_per_conversation: usize,
    /// How often a conversation with open streams is read from the store.
    pub poll_interval: Duration,
}

impl Default for ChatLimits {
    fn default() -> Self {
        Self {
            max_message_chars: 2_000,
            messages_per_minute_per_conversation: 10,
            messages_per_minute_per_address: 30,
            streams_per_node: 2_000,
            streams_per_conversation: 3,
            poll_interval: Duration::from_millis(500),
        }
    }
}

pub fn router() -> axum::Router<AppState> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route(
            "/chat/v1/sites/{key}/conversations",
            post(start).options(preflight),
        )
        .route(
            "/chat/v1/sites/{key}/conversations/messages",
            get(list_messages).post(send_message).options(preflight),
        )
        .route(
            "/chat/v1/sites/{key}/conversations/events",
            get(events).options(preflight),
        )
        .route(
            "/chat/v1/sites/{key}/events",
            post(super::chat_figures::post_events).options(preflight),
        )
}

/// Whether `path` is a visitor's event stream (`/chat/v1/sites/{key}/conversations/events`),
/// which `crate::serve` answers on a lean connection.
pub fn is_events_path(path: &str) -> bool {
    path.strip_prefix("/chat/v1/sites/")
        .and_then(|rest| rest.strip_suffix("/conversations/events"))
        .is_some_and(|key| !key.is_empty() && !key.contains('/'))
}

// ---------------------------------------------------------------- the token

/// What a valid token says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claims {
    pub conversation_id: Uuid,
    pub site_id: Uuid,
    /// The visitor reads the conversation's messages from this instant on.
    pub since: Timestamp,
}

/// Whose messages a bucket counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum BucketKey {
    Conversation(Uuid),
    Address(IpAddr),
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// What wakes the streams of one conversation: a count that goes up when it gets a message
/// (a stream reads the conversation when the count is not the one it last read at), and the
/// streams waiting for it. (Lighter than a `watch` channel, which costs 350 bytes.)
#[derive(Debug, Default)]
struct Wake {
    count: AtomicU64,
    notify: tokio::sync::Notify,
}

impl Wake {
    fn bump(&self) {
        self.count.fetch_add(1, Ordering::AcqRel);
        self.notify.notify_waiters();
    }

    fn count(&self) -> u64 {
        self.count.load(Ordering::Acquire)
    }

    /// Returns once the count is not `seen` (at once if it is not already).
    async fn changed(&self, seen: u64) {
        loop {
            let notified = self.notify.notified();
            let mut notified = std::pin::pin!(notified);
            // Registered before the count is read: a bump in between still wakes it.
            notified.as_mut().enable();
            if self.count() != seen {
                return;
            }
            notified.await;
        }
    }
}

/// A conversation with open streams on this node.
#[derive(Debug)]
struct Watch {
    wake: Arc<Wake>,
    /// Its newest message's time as the poller last saw it.
    seen: Option<Timestamp>,
}

/// The conversations with open streams on this node, and whether the poller runs.
#[derive(Debug, Default)]
struct Watched {
    conversations: HashMap<Uuid, Watch>,
    polling: bool,
}

/// The live side of chat on one node: the token key, the rate buckets, the open streams and
/// the poller that wakes them.
pub struct ChatLive {
    key: [u8; 32],
    limits: ChatLimits,
    buckets: Mutex<HashMap<BucketKey, Bucket>>,
    /// Open streams by conversation, and their total.
    streams: Mutex<(HashMap<Uuid, usize>, usize)>,
    watched: Mutex<Watched>,
    /// Reads of the store by the poller, for tests and diagnostics.
    polls: AtomicU64,
}

impl std::fmt::Debug for ChatLive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatLive")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Default for ChatLive {
    /// A key made for this process only (tokens stop working at a restart).
    fn default() -> Self {
        Self::new(&rand::random::<[u8; 32]>(), ChatLimits::default())
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn mac(key: &[u8], data: &[u8]) -> [u8; 32] {
    use hmac::{KeyInit, Mac};
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

impl ChatLive {
    /// `secret` is `server.secret` (the key of unsubscribe links); the tokens' key is derived
    /// from it, so that neither signature can stand for the other.
    pub fn new(secret: &[u8], limits: ChatLimits) -> Self {
        Self {
            key: mac(secret, b"herald chat conversation token v1"),
            limits,
            buckets: Mutex::new(HashMap::new()),
            streams: Mutex::new((HashMap::new(), 0)),
            watched: Mutex::new(Watched::default()),
            polls: AtomicU64::new(0),
        }
    }

    pub fn limits(&self) -> &ChatLimits {
        &self.limits
    }

    /// How many times the poller read the store.
    pub fn polls(&self) -> u64 {
        self.polls.load(Ordering::Relaxed)
    }

    /// The token of a visitor's conversation.
    pub fn sign(&self, c: &Claims) -> String {
        let payload = format!(
            "{}.{}.{}",
            c.conversation_id.simple(),
            c.site_id.simple(),
            c.since.as_microsecond()
        );
        let sig = hex::encode(mac(&self.key, payload.as_bytes()));
        format!("{payload}.{sig}")
    }

    /// What `token` says, if this server signed it.
    pub fn verify(&self, token: &str) -> Option<Claims> {
        if token.len() > 200 {
            return None;
        }
        let (payload, sig) = token.rsplit_once('.')?;
        let sig = hex::decode(sig).ok()?;
        let expected = mac(&self.key, payload.as_bytes());
        if sig.len() != expected.len()
            || sig
                .iter()
                .zip(expected.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                != 0
        {
            return None;
        }
        let mut parts = payload.split('.');
        let conversation_id = Uuid::parse_str(parts.next()?).ok()?;
        let site_id = Uuid::parse_str(parts.next()?).ok()?;
        let since = Timestamp::from_microsecond(parts.next()?.parse().ok()?).ok()?;
        parts.next().is_none().then_some(Claims {
            conversation_id,
            site_id,
            since,
        })
    }

    /// The size of a bucket, in messages (it refills that many a minute).
    fn per_minute(&self, key: &BucketKey) -> f64 {
        f64::from(
            match key {
                BucketKey::Conversation(_) => self.limits.messages_per_minute_per_conversation,
                BucketKey::Address(_) => self.limits.messages_per_minute_per_address,
            }
            .max(1),
        )
    }

    /// Takes a message from each bucket, or says in how many seconds to try again. Nothing is
    /// taken unless every bucket has one.
    fn take(&self, keys: &[BucketKey]) -> Result<(), u64> {
        let now = Instant::now();
        let level = |key: &BucketKey, b: &Bucket| {
            let capacity = self.per_minute(key);
            (b.tokens + now.duration_since(b.at).as_secs_f64() * capacity / 60.0).min(capacity)
        };
        let mut buckets = lock(&self.buckets);
        if buckets.len() >= BUCKETS_MAX {
            // A full bucket says nothing a new one would not: drop those.
            buckets.retain(|k, b| level(k, b) < self.per_minute(k));
        }
        let mut wait = 0u64;
        let mut levels = Vec::with_capacity(keys.len());
        for key in keys {
            let capacity = self.per_minute(key);
            let tokens = match buckets.get(key) {
                Some(b) => level(key, b),
                None if buckets.len() >= BUCKETS_MAX => return Err(60),
                None => capacity,
            };
            if tokens < 1.0 {
                wait = wait.max(((1.0 - tokens) * 60.0 / capacity).ceil() as u64);
            }
            levels.push((*key, tokens));
        }
        if wait > 0 {
            return Err(wait.max(1));
        }
        for (key, tokens) in levels {
            buckets.insert(
                key,
                Bucket {
                    tokens: tokens - 1.0,
                    at: now,
                },
            );
        }
        Ok(())
    }

    /// A slot for one more stream on `conversation_id`, or the refusal.
    fn open_stream(self: &Arc<Self>, conversation_id: Uuid) -> Result<StreamSlot, Busy> {
        let mut streams = lock(&self.streams);
        if streams.1 >= self.limits.streams_per_node {
            return Err(Busy {
                status: StatusCode::SERVICE_UNAVAILABLE,
                detail: format!(
                    "this server has {} chat streams open, its most; try again shortly",
                    self.limits.streams_per_node
                ),
                retry_after: 5,
            });
        }
        let n = streams.0.entry(conversation_id).or_insert(0);
        if *n >= self.limits.streams_per_conversation {
            return Err(Busy {
                status: StatusCode::TOO_MANY_REQUESTS,
                detail: format!(
                    "this conversation has {} streams open, its most; close one (another tab) first",
                    self.limits.streams_per_conversation
                ),
                retry_after: 5,
            });
        }
        *n += 1;
        streams.1 += 1;
        Ok(StreamSlot {
            live: self.clone(),
            conversation_id,
        })
    }

    /// Wakes the streams of `conversation_id` on this node now (a message was written here),
    /// rather than at the poller's next interval.
    pub fn poke(&self, conversation_id: Uuid) {
        if let Some(w) = lock(&self.watched).conversations.get(&conversation_id) {
            w.wake.bump();
        }
    }

    /// Wakes when the conversation gets a message; starts the node's poller if it is not
    /// running.
    fn subscribe(self: &Arc<Self>, s: &AppState, conversation_id: Uuid) -> Arc<Wake> {
        let mut watched = lock(&self.watched);
        let wake = watched
            .conversations
            .entry(conversation_id)
            .or_insert_with(|| Watch {
                wake: Arc::new(Wake::default()),
                seen: None,
            })
            .wake
            .clone();
        if !watched.polling {
            watched.polling = true;
            tokio::spawn(self.clone().poll(
                s.store.clone(),
                s.clock.clone(),
                Box::pin(s.event_streams_closed()),
            ));
        }
        wake
    }

    /// The node's poller: runs while any conversation has open streams.
    async fn poll(
        self: Arc<Self>,
        store: Arc<dyn Store>,
        clock: Arc<dyn herald_engine::Clock>,
        mut closed: crate::progress::Closed,
    ) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(self.limits.poll_interval) => {}
                () = &mut closed => break,
            }
            {
                // Under the lock: a new stream either is seen here, or finds the poller
                // stopped and starts another.
                let mut watched = lock(&self.watched);
                watched
                    .conversations
                    .retain(|_, w| Arc::strong_count(&w.wake) > 1);
                if watched.conversations.is_empty() {
                    watched.polling = false;
                    return;
                }
            }
            self.polls.fetch_add(1, Ordering::Relaxed);
            let since = clock.now() - LOOKBACK;
            match store.recent_conversations(since, RECENT_MAX).await {
                Ok(recent) => {
                    let mut watched = lock(&self.watched);
                    for (id, at) in recent {
                        if let Some(w) = watched.conversations.get_mut(&id)
                            && w.seen != Some(at)
                        {
                            // Seen for the first time, the message may be older than the
                            // stream's first read: one read too many, never one too few.
                            w.seen = Some(at);
                            w.wake.bump();
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the chat conversations that changed; trying again");
                }
            }
        }
        lock(&self.watched).polling = false;
    }
}

/// One open stream, counted until it is dropped.
struct StreamSlot {
    live: Arc<ChatLive>,
    conversation_id: Uuid,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut streams = lock(&self.live.streams);
        streams.1 = streams.1.saturating_sub(1);
        if let Some(n) = streams.0.get_mut(&self.conversation_id) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                streams.0.remove(&self.conversation_id);
            }
        }
    }
}

// ---------------------------------------------------------------- what the visitor sees

/// A message as the visitor's widget shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct VisitorMessage {
    pub id: Uuid,
    /// `visitor`, `agent`, `greeting` (the campaign's) or `herald`.
    pub from: String,
    pub body: String,
    pub at: String,
}

impl VisitorMessage {
    fn of(m: &Message) -> Self {
        let from = match (m.direction, m.author) {
            (Direction::Inbound, _) => "visitor",
            (_, Author::Agent) => "agent",
            (_, Author::Outreach) => "greeting",
            _ => "herald",
        };
        Self {
            id: m.id,
            from: from.to_string(),
            body: m.body.clone(),
            at: m.created_at.to_string(),
        }
    }
}

/// The messages of a conversation the visitor may read, after `after`.
async fn visible(
    store: &dyn Store,
    claims: &Claims,
    mut after: Option<Uuid>,
) -> Result<Vec<VisitorMessage>, ApiError> {
    let mut out = Vec::new();
    for _ in 0..VIEW_PAGES {
        let page = store
            .conversation_messages(claims.conversation_id, after, VIEW_PAGE)
            .await?;
        let full = page.len() == VIEW_PAGE as usize;
        after = page.last().map(|m| m.id).or(after);
        out.extend(
            page.iter()
                .filter(|m| m.created_at >= claims.since)
                .map(VisitorMessage::of),
        );
        if !full || out.len() >= VIEW_PAGE as usize {
            break;
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------- CORS and checks

/// 422 naming the field.
fn invalid(field: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::invalid(herald_core::ValidationError::single(field, message))
}

pub(super) fn problem(e: ApiError) -> Response {
    e.into_response()
}

/// The site of `key`, or 404 (answered from the configuration snapshot, not the store).
pub(super) async fn site(s: &AppState, key: &str) -> Result<Arc<SiteEntry>, Response> {
    s.chat.site(s, key).await.ok_or_else(|| {
        problem(ApiError::not_found(
            "no chat site has this key (or it was deleted)",
        ))
    })
}

/// Refuses a request from a page not on the site's list of origins (a browser would not let the
/// page read the answer; this makes sure it changes nothing either). A request without `Origin`
/// (not from a browser page) is let through: it could have sent any `Origin` it liked.
pub(super) fn check_origin(site: &SiteEntry, headers: &HeaderMap) -> Result<(), ApiError> {
    match headers.get(header::ORIGIN) {
        Some(origin) if !site.allows(origin) => Err(ApiError::forbidden(
            "this page's origin is not one of the chat site's allowed origins",
        )),
        _ => Ok(()),
    }
}

/// Adds the CORS grant for an allowed origin.
pub(super) fn with_cors(mut res: Response, site: &SiteEntry, headers: &HeaderMap) -> Response {
    let h = res.headers_mut();
    h.insert(header::VARY, HeaderValue::from_static("Origin"));
    if let Some(origin) = headers.get(header::ORIGIN)
        && site.allows(origin)
    {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("retry-after"),
        );
    }
    res
}

pub(super) async fn preflight(
    State(s): State<AppState>,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> Response {
    let site = match site(&s, &key).await {
        Ok(site) => site,
        Err(res) => return res,
    };
    let mut res = StatusCode::NO_CONTENT.into_response();
    if let Some(origin) = headers.get(header::ORIGIN)
        && site.allows(origin)
    {
        let h = res.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("content-type, herald-chat-token"),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
    }
    with_cors(res, &site, &headers)
}

fn claims_of(s: &AppState, site: &SiteEntry, token: Option<&str>) -> Result<Claims, ApiError> {
    let Some(token) = token else {
        return Err(ApiError::unauthorized(format!(
            "send the conversation's token (from starting it) in the {TOKEN_HEADER} header"
        )));
    };
    match s.chat_live.verify(token) {
        Some(c) if c.site_id == site.id => Ok(c),
        _ => Err(ApiError::forbidden(
            "this conversation token is not valid for this site",
        )),
    }
}

fn header_token(headers: &HeaderMap) -> Option<&str> {
    headers.get(TOKEN_HEADER).and_then(|v| v.to_str().ok())
}

/// The body as JSON of `T`, at most [`BODY_MAX`] bytes.
async fn json_body<T: serde::de::DeserializeOwned>(body: Body) -> Result<T, Response> {
    let bytes = axum::body::to_bytes(body, BODY_MAX).await.map_err(|_| {
        problem(ApiError::too_large(format!(
            "the request is larger than {BODY_MAX} bytes"
        )))
    })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        problem(ApiError::bad_request(format!(
            "the body is not valid JSON for this route: {e}"
        )))
    })
}

/// The message's text, or why it is refused (413 too long, 422 empty).
fn check_body(limits: &ChatLimits, body: &str) -> Result<String, ApiError> {
    let chars = body.chars().count();
    if chars > limits.max_message_chars {
        return Err(ApiError::too_large(format!(
            "the message has {chars} characters; at most {} are taken",
            limits.max_message_chars
        )));
    }
    let body = body.trim();
    if body.is_empty() {
        return Err(invalid("body", "is empty; write a message"));
    }
    Ok(body.to_string())
}

fn rate_limited(retry_after: u64) -> Response {
    Busy {
        status: StatusCode::TOO_MANY_REQUESTS,
        detail: format!(
            "too many messages in a short time; wait {retry_after} s before sending another"
        ),
        retry_after,
    }
    .into_response()
}

// ---------------------------------------------------------------- the routes

/// The start of a chat.
#[derive(Debug, Deserialize)]
struct StartInput {
    campaign_id: Option<Uuid>,
    #[serde(default)]
    page_url: String,
    #[serde(default)]
    body: String,
    /// The visitor's email, asked by a campaign with onboarding.
    email: Option<String>,
    /// The visitor's name, asked by a campaign with onboarding.
    name: Option<String>,
}

/// The longest visitor name onboarding takes, in characters.
const NAME_MAX: usize = 100;

/// The name a visitor typed, trimmed: required, at most [`NAME_MAX`] characters, no control
/// characters.
fn check_name(raw: Option<&str>) -> Result<String, ApiError> {
    let name = raw.unwrap_or_default().trim();
    if name.is_empty() {
        return Err(invalid(
            "name",
            "this campaign asks for the visitor's name: write it",
        ));
    }
    if name.chars().count() > NAME_MAX || name.chars().any(char::is_control) {
        return Err(invalid(
            "name",
            format!("must be at most {NAME_MAX} characters, on one line"),
        ));
    }
    Ok(name.to_string())
}

/// What a start returns.
#[derive(Debug, Serialize)]
struct Started {
    token: String,
    conversation_id: Uuid,
    messages: Vec<VisitorMessage>,
}

/// `POST /chat/v1/sites/{key}/conversations`: the visitor's first message opens the chat.
async fn start(
    State(s): State<AppState>,
    Path(key): Path<String>,
    ClientAddr(ip): ClientAddr,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let site = match site(&s, &key).await {
        Ok(site) => site,
        Err(res) => return res,
    };
    let res = match start_chat(&s, &site, ip, &headers, body).await {
        Ok(started) => {
            let mut res = (StatusCode::CREATED, axum::Json(started)).into_response();
            res.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            res
        }
        Err(res) => res,
    };
    with_cors(res, &site, &headers)
}

async fn start_chat(
    s: &AppState,
    site: &SiteEntry,
    ip: IpAddr,
    headers: &HeaderMap,
    body: Body,
) -> Result<Started, Response> {
    check_origin(site, headers).map_err(problem)?;
    let input: StartInput = json_body(body).await?;
    let limits = s.chat_live.limits();
    let text = check_body(limits, &input.body).map_err(problem)?;
    let Some(campaign_id) = input.campaign_id else {
        return Err(problem(invalid(
            "campaign_id",
            "is required: the campaign whose greeting the visitor answers",
        )));
    };
    let Some(greeting) = site.greetings.get(&campaign_id).cloned() else {
        return Err(problem(ApiError::not_found(format!(
            "campaign {campaign_id} is not live on this site"
        ))));
    };
    let page_url = input.page_url.trim();
    if page_url.len() > PAGE_URL_MAX || url::Url::parse(page_url).is_err() {
        return Err(problem(invalid(
            "page_url",
            format!("must be the page's absolute URL, at most {PAGE_URL_MAX} bytes"),
        )));
    }
    let settings = s
        .store
        .get_chat_settings(campaign_id)
        .await
        .map_err(|e| problem(e.into()))?;
    let Some(settings) = settings else {
        return Err(problem(ApiError::not_found(format!(
            "campaign {campaign_id} is not live on this site"
        ))));
    };
    let Some(inbox_id) = settings.inbox_id else {
        return Err(problem(ApiError::conflict(
            "this campaign has no inbox for chats yet; an admin must choose one",
        )));
    };
    let from = if settings.onboarding {
        let raw = input.email.as_deref().unwrap_or_default();
        match EmailAddress::parse(raw.trim()) {
            Ok(email) => Address::Email(email).to_string(),
            Err(e) => {
                return Err(problem(invalid(
                    "email",
                    format!("this campaign asks for the visitor's email: {e}"),
                )));
            }
        }
    } else {
        format!("chat:{}", Uuid::now_v7())
    };
    let name = if settings.onboarding {
        Some(check_name(input.name.as_deref()).map_err(problem)?)
    } else {
        None
    };
    s.chat_live
        .take(&[BucketKey::Address(ip)])
        .map_err(rate_limited)?;
    let store = &s.store;
    let sender_id = store
        .chat_sender(campaign_id, inbox_id)
        .await
        .map_err(|e| problem(e.into()))?;
    let now = s.clock.now();
    // The greeting was shown before the visitor answered it.
    let shown_at = now - SignedDuration::from_millis(1);
    let received = store
        .receive_message(&InboundMessage {
            sender_id,
            from,
            to: herald_store::conversation::chat_sender_address(campaign_id),
            subject: None,
            body: text,
            provider_message_id: None,
            received_at: now,
            attribute_since: now,
            in_reply_to: None,
            unverified_sender: false,
        })
        .await
        .map_err(|e| problem(e.into()))?;
    let conversation_id = received.conversation.id;
    if let Some(name) = &name {
        store
            .set_customer_name(received.conversation.customer_id, name)
            .await
            .map_err(|e| problem(e.into()))?;
    }
    let greeting = store
        .record_chat_start(&ChatStart {
            conversation_id,
            site_id: site.id,
            campaign_id,
            page_url: page_url.to_string(),
            greeting,
            started_at: shown_at,
        })
        .await
        .map_err(|e| problem(e.into()))?;
    // The figures: an answer to the greeting, and a conversation if it opened one (a visitor
    // matched by email may continue the customer's conversation).
    let opened = store
        .chat_starts(conversation_id)
        .await
        .map(|starts| starts.len() == 1)
        .unwrap_or(false);
    s.chat_figures.record(
        &s.store,
        campaign_id,
        now,
        super::chat_figures::ChatEventKind::Engaged,
        1,
    );
    if opened {
        s.chat_figures.record(
            &s.store,
            campaign_id,
            now,
            super::chat_figures::ChatEventKind::Conversation,
            1,
        );
    }
    // The conversation's own bucket starts with this message taken.
    let _ = s
        .chat_live
        .take(&[BucketKey::Conversation(conversation_id)]);
    tracing::info!(%conversation_id, %campaign_id, site_id = %site.id, "chat started");
    let claims = Claims {
        conversation_id,
        site_id: site.id,
        since: shown_at,
    };
    Ok(Started {
        token: s.chat_live.sign(&claims),
        conversation_id,
        messages: vec![
            VisitorMessage::of(&greeting),
            VisitorMessage::of(&received.message),
        ],
    })
}

#[derive(Debug, Deserialize)]
struct MessageInput {
    #[serde(default)]
    body: String,
}

/// `POST /chat/v1/sites/{key}/conversations/messages`: a visitor's further message.
async fn send_message(
    State(s): State<AppState>,
    Path(key): Path<String>,
    ClientAddr(ip): ClientAddr,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let site = match site(&s, &key).await {
        Ok(site) => site,
        Err(res) => return res,
    };
    let res = match post_message(&s, &site, ip, &headers, body).await {
        Ok(m) => (StatusCode::CREATED, axum::Json(m)).into_response(),
        Err(res) => res,
    };
    with_cors(res, &site, &headers)
}

async fn post_message(
    s: &AppState,
    site: &SiteEntry,
    ip: IpAddr,
    headers: &HeaderMap,
    body: Body,
) -> Result<VisitorMessage, Response> {
    check_origin(site, headers).map_err(problem)?;
    let claims = claims_of(s, site, header_token(headers)).map_err(problem)?;
    let input: MessageInput = json_body(body).await?;
    let limits = s.chat_live.limits();
    let text = check_body(limits, &input.body).map_err(problem)?;
    s.chat_live
        .take(&[
            BucketKey::Conversation(claims.conversation_id),
            BucketKey::Address(ip),
        ])
        .map_err(rate_limited)?;
    let conversation = s
        .store
        .get_conversation(claims.conversation_id)
        .await
        .map_err(|e| problem(e.into()))?;
    let now = s.clock.now();
    let received = s
        .store
        .receive_message(&InboundMessage {
            sender_id: conversation.sender_id,
            from: conversation.customer_address.clone(),
            to: String::new(),
            subject: None,
            body: text,
            provider_message_id: None,
            received_at: now,
            attribute_since: now,
            in_reply_to: None,
            unverified_sender: false,
        })
        .await
        .map_err(|e| problem(e.into()))?;
    s.chat_live.poke(claims.conversation_id);
    Ok(VisitorMessage::of(&received.message))
}

#[derive(Debug, Deserialize)]
struct AfterQuery {
    after: Option<Uuid>,
    token: Option<String>,
}

#[derive(Debug, Serialize)]
struct VisitorView {
    conversation_id: Uuid,
    messages: Vec<VisitorMessage>,
}

/// `GET /chat/v1/sites/{key}/conversations/messages?after=`: the visitor's conversation.
async fn list_messages(
    State(s): State<AppState>,
    Path(key): Path<String>,
    Query(q): Query<AfterQuery>,
    headers: HeaderMap,
) -> Response {
    let site = match site(&s, &key).await {
        Ok(site) => site,
        Err(res) => return res,
    };
    let res = async {
        check_origin(&site, &headers).map_err(problem)?;
        let claims = claims_of(&s, &site, header_token(&headers)).map_err(problem)?;
        let messages = visible(&*s.store, &claims, q.after)
            .await
            .map_err(problem)?;
        let mut res = axum::Json(VisitorView {
            conversation_id: claims.conversation_id,
            messages,
        })
        .into_response();
        res.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        Ok::<_, Response>(res)
    }
    .await
    .unwrap_or_else(|res| res);
    with_cors(res, &site, &headers)
}

/// `GET /chat/v1/sites/{key}/conversations/events?token=&after=`: the conversation's new
/// messages as server-sent events (`event: message`, `id:` the message's id, `data:` a
/// [`VisitorMessage`]); `Last-Event-ID` (set by `EventSource` when it reconnects) stands for
/// `after`.
async fn events(
    State(s): State<AppState>,
    Path(key): Path<String>,
    Query(q): Query<AfterQuery>,
    headers: HeaderMap,
) -> Response {
    let site = match site(&s, &key).await {
        Ok(site) => site,
        Err(res) => return res,
    };
    let res = open_events(&s, &site, q, &headers);
    with_cors(res, &site, &headers)
}

struct StreamState {
    store: Arc<dyn Store>,
    claims: Claims,
    wake: Arc<Wake>,
    /// The wake count at the stream's last read.
    read_at: u64,
    cursor: Option<Uuid>,
    pending: VecDeque<VisitorMessage>,
    first: bool,
    /// Set when the server stops.
    closed: watch::Receiver<bool>,
    _slot: StreamSlot,
}

fn open_events(s: &AppState, site: &SiteEntry, q: AfterQuery, headers: &HeaderMap) -> Response {
    if let Err(e) = check_origin(site, headers) {
        return problem(e);
    }
    let claims = match claims_of(s, site, q.token.as_deref()) {
        Ok(c) => c,
        Err(e) => return problem(e),
    };
    let after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| Uuid::parse_str(v).ok())
        .or(q.after);
    let slot = match s.chat_live.open_stream(claims.conversation_id) {
        Ok(slot) => slot,
        Err(busy) => return busy.into_response(),
    };
    let wake = s.chat_live.subscribe(s, claims.conversation_id);
    let state = StreamState {
        store: s.store.clone(),
        claims,
        read_at: wake.count(),
        wake,
        cursor: after,
        pending: VecDeque::new(),
        first: true,
        closed: s.event_streams_closed_flag(),
        _slot: slot,
    };
    let stream = futures_util::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(m) = st.pending.pop_front() {
                let event = Event::default()
                    .event("message")
                    .id(m.id.to_string())
                    .json_data(&m)
                    .unwrap_or_else(|_| Event::default().comment("unencodable"));
                return Some((Ok::<_, std::convert::Infallible>(event), st));
            }
            if !st.first {
                // Idle until the next message: keep nothing the last one needed.
                st.pending = VecDeque::new();
                tokio::select! {
                    () = st.wake.changed(st.read_at) => {}
                    _ = st.closed.wait_for(|closed| *closed) => return None,
                }
            }
            st.first = false;
            // Read at this count: a message after the read bumps it again.
            st.read_at = st.wake.count();
            // Boxed: an idle stream keeps no room for a read it is not doing.
            match Box::pin(visible(&*st.store, &st.claims, st.cursor)).await {
                Ok(messages) => {
                    for m in messages {
                        st.cursor = Some(m.id);
                        st.pending.push_back(m);
                    }
                }
                Err(e) => {
                    tracing::warn!(conversation_id = %st.claims.conversation_id, error = ?e, "chat stream ends: cannot read its conversation");
                    return None;
                }
            }
        }
    });
    let mut res = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res.headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_signed_and_bound_to_their_claims() {
        let live = ChatLive::new(b"secret", ChatLimits::default());
        let claims = Claims {
            conversation_id: Uuid::now_v7(),
            site_id: Uuid::now_v7(),
            since: Timestamp::from_microsecond(1_700_000_000_123_456).expect("time"),
        };
        let token = live.sign(&claims);
        assert_eq!(live.verify(&token), Some(claims));
        // Another key, another conversation, a changed signature: refused.
        assert_eq!(
            ChatLive::new(b"other", ChatLimits::default()).verify(&token),
            None
        );
        let other = Uuid::now_v7().simple().to_string();
        let forged = format!("{other}{}", &token[32..]);
        assert_eq!(live.verify(&forged), None);
        let mut flipped = token.clone();
        let last = flipped.pop().expect("char");
        flipped.push(if last == '0' { '1' } else { '0' });
        assert_eq!(live.verify(&flipped), None);
        assert_eq!(live.verify("x"), None);
    }

    #[test]
    fn buckets_refuse_past_their_size_and_say_when() {
        let live = ChatLive::new(
            b"k",
            ChatLimits {
                messages_per_minute_per_conversation: 3,
                messages_per_minute_per_address: 1,
                ..ChatLimits::default()
            },
        );
        let key = BucketKey::Conversation(Uuid::now_v7());
        for _ in 0..3 {
            assert_eq!(live.take(&[key]), Ok(()));
        }
        let wait = live.take(&[key]).expect_err("the fourth is refused");
        assert!((1..=20).contains(&wait), "{wait}");
        // A refusal takes nothing from the other bucket.
        let ip = BucketKey::Address(IpAddr::from([10, 0, 0, 1]));
        assert!(live.take(&[ip, key]).is_err());
        assert_eq!(live.take(&[ip]), Ok(()));
        assert_eq!(live.take(&[ip]), Err(60), "one a minute: back in a minute");
    }
}
