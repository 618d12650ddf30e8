//! Herald's HTTP face: the JSON API under `/api/v1` (documented by a generated OpenAPI 3.1
//! document), bearer-token auth, and health.

pub mod auth;
pub mod error;
pub mod extract;
pub mod headers;
pub mod limits;
mod progress;
pub mod routes;
pub mod serve;
pub mod web;

use axum::Router;
use axum::http::Request;
use herald_store::Store;
use std::sync::Arc;
use std::time::Duration;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;

/// What every handler can reach, behind one pointer: axum clones the state for every request
/// (and every `State` extractor clones it again), so a clone is one reference count, not a copy
/// of each part. The parts are reached through it (`state.store`, …); changing one
/// (`state.events_interval = …`, the `with_*` builders) changes this state's own copy only, as
/// when the parts were copied.
#[derive(Clone)]
pub struct AppState(Arc<AppParts>);

impl std::ops::Deref for AppState {
    type Target = AppParts;

    fn deref(&self) -> &AppParts {
        &self.0
    }
}

impl std::ops::DerefMut for AppState {
    fn deref_mut(&mut self) -> &mut AppParts {
        Arc::make_mut(&mut self.0)
    }
}

/// The parts of [`AppState`].
#[derive(Clone)]
pub struct AppParts {
    pub store: Arc<dyn Store>,
    /// Size and row limits of one recipient upload.
    pub import_limits: herald_engine::ImportLimits,
    /// How often an outreach's event stream (`GET /outreaches/{id}/events`) looks at the store
    /// for a change of progress.
    pub events_interval: Duration,
    /// Uploads and progress streams in progress, bounded by [`limits::OutreachLimits`].
    pub(crate) gates: Arc<limits::Gates>,
    /// Set by [`AppState::close_event_streams`]; every open event stream ends when it is.
    events_closed: Arc<tokio::sync::watch::Sender<bool>>,
    /// Checks Twilio's webhooks; `None` when Twilio is not configured (they answer 404).
    pub twilio: Option<routes::webhooks::TwilioWebhooks>,
    /// Inbound messages, agent replies and unsubscribes.
    pub replies: herald_engine::Replies,
    /// Web UI cookies carry `Secure` (set when the public URL is https).
    pub secure_cookies: bool,
    /// Bounds on sign-in and setup work: concurrent password hashes, attempts per client
    /// address; the per-account lockout's limits.
    pub sign_in: Arc<web::limits::SignInGuard>,
    /// Where handlers read the time (the system clock unless [`AppState::with_clock`]).
    pub clock: Arc<dyn herald_engine::Clock>,
    /// Woken after an upload, so a new outreach is sent at once rather than at the next poll;
    /// `None` when no dispatcher runs in this process.
    pub dispatcher: Option<Arc<herald_engine::Dispatcher>>,
    /// This process's counters (`GET /metrics`): the dispatcher's, when one runs here, and the
    /// server's own (uploads, webhooks).
    pub metrics: Arc<herald_engine::Metrics>,
    /// Where browsers reach this server (`server.public_url`), for the chat widget's snippet.
    pub public_url: String,
    /// The chat sites' configurations as the widget reads them, rebuilt every few seconds.
    pub chat: Arc<routes::chat::ChatConfigs>,
    /// Live chat on this node: the conversation tokens' key, visitors' rate buckets, open
    /// streams and their pollers.
    pub chat_live: Arc<routes::chat_live::ChatLive>,
    /// The chat campaigns' counts gathered on this node, written every few seconds.
    pub chat_figures: Arc<routes::chat_figures::ChatFigures>,
}

/// The default of [`AppParts::events_interval`].
pub const EVENTS_INTERVAL: Duration = Duration::from_secs(1);

impl AppState {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self(Arc::new(AppParts {
            import_limits: herald_engine::ImportLimits::default(),
            events_interval: EVENTS_INTERVAL,
            gates: Arc::new(limits::Gates::new(&limits::OutreachLimits::default())),
            events_closed: Arc::new(tokio::sync::watch::Sender::new(false)),
            twilio: None,
            secure_cookies: false,
            sign_in: Arc::new(web::limits::SignInGuard::default()),
            clock: Arc::new(herald_engine::SystemClock),
            dispatcher: None,
            metrics: Arc::new(herald_engine::Metrics::new()),
            public_url: String::new(),
            chat: Arc::new(routes::chat::ChatConfigs::default()),
            chat_live: Arc::new(routes::chat_live::ChatLive::default()),
            chat_figures: Arc::new(routes::chat_figures::ChatFigures::default()),
            replies: herald_engine::Replies::new(
                store.clone(),
                Arc::new(herald_channels::Transports::new()),
                herald_engine::RepliesConfig::default(),
            ),
            store,
        }))
    }

    /// Handles replies with these (configured transports, `[replies]` settings, unsubscribe
    /// links).
    pub fn with_replies(mut self, replies: herald_engine::Replies) -> Self {
        self.replies = replies;
        self
    }

    /// Names `public_url` (as `https://herald.example.com`) in the chat widget's snippet.
    pub fn with_public_url(mut self, public_url: &str) -> Self {
        self.public_url = public_url.trim_end_matches('/').to_string();
        self
    }

    /// Signs chat conversation tokens with a key derived from `secret` (`server.secret`: every
    /// node of one database must share it) and bounds visitors by `limits`.
    pub fn with_chat(mut self, secret: &[u8], limits: routes::chat_live::ChatLimits) -> Self {
        self.chat_live = Arc::new(routes::chat_live::ChatLive::new(secret, limits));
        self
    }

    /// Reads the time from `clock` instead of the system's.
    pub fn with_clock(mut self, clock: Arc<dyn herald_engine::Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Wakes `dispatcher` after every upload through the API or the web form.
    /// The dispatcher's settings (rates, daily and frequency caps) that a review's forecast
    /// reads: this process's dispatcher's, else the defaults.
    pub fn dispatch_config(&self) -> herald_engine::DispatchConfig {
        self.dispatcher
            .as_ref()
            .map(|d| d.config().clone())
            .unwrap_or_default()
    }

    pub fn with_dispatcher(mut self, dispatcher: Arc<herald_engine::Dispatcher>) -> Self {
        self.metrics = dispatcher.metrics();
        self.dispatcher = Some(dispatcher);
        self
    }

    /// A new outreach of `rows` uploaded rows was stored: counted, and the dispatcher (if one
    /// runs here) looks for work now instead of at its next poll. A dispatcher in another process
    /// finds it at its next poll.
    pub(crate) fn outreach_created(&self, rows: u64) {
        self.metrics.imported(rows);
        if let Some(dispatcher) = &self.dispatcher {
            dispatcher.wake();
        }
    }

    /// Applies `[outreaches]`: the limits of one upload, of uploads at once, and of each
    /// caller's progress streams.
    pub fn with_outreach_limits(mut self, limits: &limits::OutreachLimits) -> Self {
        self.import_limits = limits.import();
        self.gates = Arc::new(limits::Gates::new(limits));
        self
    }

    /// How many times the progress pollers read an outreach's progress from the store (one
    /// poller per outreach with open event streams, one read per interval).
    pub fn progress_polls(&self) -> u64 {
        self.gates.progress.polls()
    }

    /// Uploads in progress and the temporary bytes they hold together.
    pub fn uploads_in_progress(&self) -> (usize, u64) {
        self.gates.uploads.in_use()
    }

    /// Marks the web UI's cookies `Secure` (only sent over https): set it when the public URL is
    /// https.
    pub fn with_secure_cookies(mut self, secure: bool) -> Self {
        self.secure_cookies = secure;
        self
    }

    /// Signs in (and sets passwords) within these limits.
    pub fn with_sign_in_limits(mut self, limits: web::limits::SignInLimits) -> Self {
        self.sign_in = Arc::new(web::limits::SignInGuard::new(limits));
        self
    }

    /// Accepts Twilio's webhooks signed with `auth_token` for URLs under `public_url`.
    pub fn with_twilio(mut self, auth_token: &str, public_url: &str) -> Self {
        self.twilio = Some(routes::webhooks::TwilioWebhooks {
            auth_token: auth_token.to_string(),
            public_url: public_url.trim_end_matches('/').to_string(),
        });
        self
    }

    /// Ends every open event stream (and any opened later). Call it when the server begins a
    /// graceful shutdown: an event stream is a request that otherwise lasts until its outreach
    /// is final, and the shutdown waits for requests in flight.
    pub fn close_event_streams(&self) {
        self.events_closed.send_replace(true);
    }

    /// Resolves once [`AppState::close_event_streams`] has been called.
    /// The flag behind [`Self::event_streams_closed`], for a stream that waits on it often
    /// (`wait_for(|closed| *closed)`) without a boxed future of its own.
    pub(crate) fn event_streams_closed_flag(&self) -> tokio::sync::watch::Receiver<bool> {
        self.events_closed.subscribe()
    }

    pub(crate) fn event_streams_closed(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.events_closed.subscribe();
        async move {
            // The sender lives in the state, which outlives every stream; an error means it is
            // gone, so there is nothing left to wait for either.
            let _ = rx.wait_for(|closed| *closed).await;
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Herald",
        description = "Proactive outreach by SMS, email, voice and web chat. Every `/api/v1` route needs `Authorization: Bearer <token>`; routes whose security names the `admin` scope need an admin token.",
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "inboxes", description = "Where conversations land"),
        (name = "senders", description = "Numbers and addresses Herald sends from"),
        (name = "answers", description = "Message templates, one variant per language"),
        (name = "campaigns", description = "One reason to reach out"),
        (name = "outreaches", description = "One launch of a campaign to an uploaded recipient list"),
        (name = "conversations", description = "Customers' replies, their timelines, and agents' answers"),
        (name = "suppressions", description = "Addresses that must not be messaged"),
        (name = "people", description = "Users, API tokens and the audit log (admins only)"),
        (name = "chat", description = "Proactive chat: sites that embed the widget, and chat campaigns' settings"),
        (name = "health", description = "Liveness"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The `/api/v1` routes with their OpenAPI description (paths relative to `/api/v1`).
fn api_v1() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(routes::inboxes::router())
        .merge(routes::senders::router())
        .merge(routes::answers::router())
        .merge(routes::campaigns::router())
        .merge(routes::outreaches::router())
        .merge(routes::tracking::router())
        .merge(routes::conversations::router())
        .merge(routes::suppressions::router())
        .merge(routes::people::router())
        .merge(routes::chat::router())
}

/// The OpenAPI document of the whole API, generated from the routes themselves.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, api) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(utoipa_axum::routes!(routes::health::healthz))
        .routes(utoipa_axum::routes!(routes::health::readyz))
        .nest("/api/v1", api_v1())
        .split_for_parts();
    api
}

/// The complete HTTP application.
pub fn app(state: AppState) -> Router {
    let (v1, _) = api_v1().split_for_parts();
    let doc = openapi();
    let v1 = v1
        .route(
            "/openapi.json",
            axum::routing::get(move || async move { axum::Json(doc) }),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    Router::new()
        .route("/healthz", axum::routing::get(routes::health::healthz))
        .route("/readyz", axum::routing::get(routes::health::readyz))
        .nest("/api/v1", v1)
        .nest(
            "/webhooks",
            routes::webhooks::router().layer(axum::middleware::from_fn_with_state(
                state.clone(),
                routes::metrics::count_webhook,
            )),
        )
        .merge(routes::metrics::router(state.clone()))
        .merge(routes::unsubscribe::router())
        .merge(web::router())
        .fallback(routes::not_found)
        .layer(axum::middleware::from_fn(headers::security_headers))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request<_>| {
                    tracing::info_span!(
                        "http",
                        method = %req.method(),
                        // Setup and unsubscribe links carry their secret in the path.
                        path = %headers::loggable_path(req.uri().path()),
                        token = tracing::field::Empty,
                    )
                })
                .on_response(
                    tower_http::trace::DefaultOnResponse::new().level(tracing::Level::INFO),
                ),
        )
        // Every page view of every site that embeds the widget calls these: a log line each
        // at the default level cost the config route ~40% of its requests/s (measured by
        // `herald-bench chat`), and a tracing layer and a boxing middleware cost more for
        // nothing. They get their fixed security headers from a plain function and are not
        // logged (`docs/benchmarks.md`, "Chat").
        .merge(
            routes::chat::public_router()
                .layer(tower::util::MapResponseLayer::new(headers::chat_headers)),
        )
        .with_state(state)
}
