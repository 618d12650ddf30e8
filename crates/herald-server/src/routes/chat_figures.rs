//! A chat campaign's figures: per UTC day, how often its triggers matched on a page
//! (`eligible`), its greeting was shown, closed, answered (`engaged`), and the conversations
//! those answers opened.
//!
//! The widget counts the first three in the visitor's browser and sends them in one small batch
//! per page view (`POST /chat/v1/sites/{key}/events`, usually by `navigator.sendBeacon`); the
//! server counts the last two when a chat starts. Nothing of it touches the store on the
//! request's path: each node adds the counts up in memory ([`ChatFigures`]) and writes them
//! every [`FLUSH_EVERY`], one upsert per campaign and day, so counting costs the configuration
//! path and the database next to nothing however many pages embed the widget.
//!
//! Bounds: a batch is at most [`EVENTS_BODY_MAX`] bytes and [`EVENTS_MAX`] entries of at most
//! [`EVENT_COUNT_MAX`] each, from an allowed origin, about a campaign live on the site; a client
//! address sends at most [`BATCHES_PER_MINUTE`] batches a minute; a node holds at most
//! [`PENDING_MAX`] campaign-days between two writes. Counts from browsers are as honest as the
//! browsers: a visitor can inflate `eligible`, `shown` and `closed` within these bounds, not the
//! server-counted `engaged` and `conversations`.

use super::chat_live::{check_origin, problem, site, with_cors};
use crate::AppState;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiPath, ApiQuery};
use crate::limits::Busy;
use crate::web::limits::ClientAddr;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use herald_core::Channel;
use herald_store::{ChatDayFigures, Store};
use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use uuid::Uuid;

/// How often a node writes the counts it gathered.
pub const FLUSH_EVERY: Duration = Duration::from_secs(10);
/// The most bytes of one batch of the widget's counts.
pub const EVENTS_BODY_MAX: usize = 4 * 1024;
/// The most entries in one batch.
pub const EVENTS_MAX: usize = 30;
/// The most one entry may count (a page view shows a greeting once).
pub const EVENT_COUNT_MAX: u64 = 10;
/// Batches one client address may send a minute.
pub const BATCHES_PER_MINUTE: u32 = 120;
/// Campaign-days a node keeps between two writes (past it, new ones are dropped and logged).
pub const PENDING_MAX: usize = 50_000;
/// Client addresses the batch limit remembers at once.
const ADDRESSES_MAX: usize = 100_000;
/// The most days one read of the figures covers.
pub const DAYS_MAX: u32 = 366;

/// What one node gathered since its last write.
#[derive(Debug, Default)]
struct Pending {
    counts: HashMap<(Uuid, Date), ChatDayFigures>,
    /// Batches per client address in the current minute.
    batches: HashMap<IpAddr, (u64, u32)>,
    flusher: bool,
}

/// The counts of this node, written to the store every [`FLUSH_EVERY`].
#[derive(Debug)]
pub struct ChatFigures {
    pending: Mutex<Pending>,
    flush_every: Duration,
}

impl Default for ChatFigures {
    fn default() -> Self {
        Self::new(FLUSH_EVERY)
    }
}

/// Which count an event adds to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChatEventKind {
    Eligible,
    Shown,
    Closed,
    Engaged,
    Conversation,
}

impl ChatFigures {
    pub fn new(flush_every: Duration) -> Self {
        Self {
            pending: Mutex::new(Pending::default()),
            flush_every,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds `n` to the campaign's `kind` count of the day of `at`; the first count starts the
    /// node's writer.
    pub fn record(
        self: &Arc<Self>,
        store: &Arc<dyn Store>,
        campaign_id: Uuid,
        at: Timestamp,
        kind: ChatEventKind,
        n: u64,
    ) {
        let day = at.to_zoned_datetime(jiff::tz::TimeZone::UTC).date();
        let start = {
            let mut p = self.lock();
            let full = p.counts.len() >= PENDING_MAX;
            match p.counts.get_mut(&(campaign_id, day)) {
                Some(f) => add(f, kind, n),
                None if full => {
                    tracing::warn!(%campaign_id, "chat figures: too many campaign-days pending; a count was dropped");
                }
                None => {
                    let mut f = ChatDayFigures {
                        day,
                        ..ChatDayFigures::default()
                    };
                    add(&mut f, kind, n);
                    p.counts.insert((campaign_id, day), f);
                }
            }
            !std::mem::replace(&mut p.flusher, true)
        };
        if start {
            spawn_flusher(Arc::downgrade(self), store.clone(), self.flush_every);
        }
    }

    /// Whether a client address may send another batch this minute.
    fn admit(&self, ip: IpAddr, at: Timestamp) -> bool {
        let now = u64::try_from(at.as_second() / 60).unwrap_or(0);
        let mut p = self.lock();
        if p.batches.len() >= ADDRESSES_MAX {
            p.batches.retain(|_, (m, _)| *m == now);
            if p.batches.len() >= ADDRESSES_MAX {
                return false;
            }
        }
        let entry = p.batches.entry(ip).or_insert((now, 0));
        if entry.0 != now {
            *entry = (now, 0);
        }
        entry.1 += 1;
        entry.1 <= BATCHES_PER_MINUTE
    }

    /// Writes what this node gathered; on failure it is kept for the next write.
    pub async fn flush(&self, store: &dyn Store) -> herald_store::Result<()> {
        let taken = std::mem::take(&mut self.lock().counts);
        if taken.is_empty() {
            return Ok(());
        }
        let rows: Vec<(Uuid, ChatDayFigures)> = taken
            .iter()
            .map(|((campaign, _), f)| (*campaign, *f))
            .collect();
        if let Err(e) = store.add_chat_figures(&rows).await {
            let mut p = self.lock();
            for (key, f) in taken {
                if p.counts.len() >= PENDING_MAX && !p.counts.contains_key(&key) {
                    continue;
                }
                p.counts
                    .entry(key)
                    .or_insert(ChatDayFigures {
                        day: f.day,
                        ..ChatDayFigures::default()
                    })
                    .add(&f);
            }
            return Err(e);
        }
        Ok(())
    }
}

fn add(f: &mut ChatDayFigures, kind: ChatEventKind, n: u64) {
    let c = match kind {
        ChatEventKind::Eligible => &mut f.eligible,
        ChatEventKind::Shown => &mut f.shown,
        ChatEventKind::Closed => &mut f.closed,
        ChatEventKind::Engaged => &mut f.engaged,
        ChatEventKind::Conversation => &mut f.conversations,
    };
    *c = c.saturating_add(n);
}

/// Writes the node's counts every `every` for as long as the figures are in use.
fn spawn_flusher(figures: Weak<ChatFigures>, store: Arc<dyn Store>, every: Duration) {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    handle.spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            let Some(figures) = figures.upgrade() else {
                return;
            };
            if let Err(e) = figures.flush(store.as_ref()).await {
                tracing::warn!(error = %e, "chat figures: could not write; kept for the next try");
            }
        }
    });
}

// ---------------------------------------------------------------- public: the widget's batch

/// One count of the widget's batch.
#[derive(Debug, Deserialize)]
struct EventIn {
    campaign: Uuid,
    kind: ChatEventKind,
    #[serde(default = "one")]
    n: u64,
}

fn one() -> u64 {
    1
}

#[derive(Debug, Deserialize)]
struct EventsIn {
    events: Vec<EventIn>,
}

/// `POST /chat/v1/sites/{key}/events`: the widget's counts of one page view. Any content type
/// (`sendBeacon` sends text); 204 once counted.
pub(super) async fn post_events(
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
    let res = match count_events(&s, &site, ip, &headers, body).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(res) => res,
    };
    with_cors(res, &site, &headers)
}

async fn count_events(
    s: &AppState,
    site: &super::chat::SiteEntry,
    ip: IpAddr,
    headers: &HeaderMap,
    body: Body,
) -> Result<(), Response> {
    check_origin(site, headers).map_err(problem)?;
    if !s.chat_figures.admit(ip, s.clock.now()) {
        return Err(Busy {
            status: StatusCode::TOO_MANY_REQUESTS,
            detail: "too many batches of counts from this address; wait a minute".into(),
            retry_after: 60,
        }
        .into_response());
    }
    let bytes = axum::body::to_bytes(body, EVENTS_BODY_MAX)
        .await
        .map_err(|_| {
            problem(ApiError::too_large(format!(
                "a batch of counts is at most {EVENTS_BODY_MAX} bytes"
            )))
        })?;
    let batch: EventsIn = serde_json::from_slice(&bytes).map_err(|e| {
        problem(ApiError::bad_request(format!(
            "the body is not a batch of counts ({{\"events\": [{{\"campaign\", \"kind\", \"n\"}}]}}): {e}"
        )))
    })?;
    if batch.events.len() > EVENTS_MAX {
        return Err(problem(ApiError::invalid(
            herald_core::ValidationError::single(
                "events",
                format!("has {} entries; at most {EVENTS_MAX}", batch.events.len()),
            ),
        )));
    }
    let now = s.clock.now();
    for e in batch.events {
        // The server counts answers itself; a campaign not live on the site counts nothing.
        if matches!(e.kind, ChatEventKind::Engaged | ChatEventKind::Conversation)
            || !site.greetings.contains_key(&e.campaign)
            || e.n == 0
        {
            continue;
        }
        s.chat_figures
            .record(&s.store, e.campaign, now, e.kind, e.n.min(EVENT_COUNT_MAX));
    }
    Ok(())
}

// ---------------------------------------------------------------- admin: the figures

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FiguresQuery {
    /// Days back from today (UTC), today included; 30 unless given, at most 366.
    pub days: Option<u32>,
}

/// A chat campaign's figures over some days.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChatFiguresView {
    pub campaign_id: Uuid,
    #[schema(value_type = String, format = Date)]
    pub from: Date,
    #[schema(value_type = String, format = Date)]
    pub to: Date,
    /// The days with any count, oldest first.
    pub days: Vec<ChatDayFigures>,
    /// The days added up (`day` is `to`).
    pub total: ChatDayFigures,
}

/// The figures of campaign `id` for the last `days` UTC days (this node's pending counts written
/// first; another node's within [`FLUSH_EVERY`]).
pub(crate) async fn figures_of(s: &AppState, id: Uuid, days: u32) -> ApiResult<ChatFiguresView> {
    if let Err(e) = s.chat_figures.flush(s.store.as_ref()).await {
        tracing::warn!(error = %e, "chat figures: could not write before a read");
    }
    let to = s
        .clock
        .now()
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date();
    let back = i64::from(days.clamp(1, DAYS_MAX)) - 1;
    let from = to.checked_sub(jiff::Span::new().days(back)).unwrap_or(to);
    let rows = s.store.chat_figures(id, from, to).await?;
    let mut total = ChatDayFigures {
        day: to,
        ..ChatDayFigures::default()
    };
    for r in &rows {
        total.add(r);
    }
    Ok(ChatFiguresView {
        campaign_id: id,
        from,
        to,
        days: rows,
        total,
    })
}

/// A chat campaign's figures per UTC day: eligible (its triggers held on a page view), shown,
/// closed, engaged (the visitor answered) and conversations opened, with their sum.
#[utoipa::path(get, path = "/campaigns/{id}/chat/figures", tag = "chat",
    params(("id" = Uuid, Path, description = "campaign id"), FiguresQuery),
    security(("bearer" = [])),
    responses((status = 200, body = ChatFiguresView), (status = 404, body = Problem),
        (status = 422, body = Problem)))]
pub(super) async fn get_figures(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(q): ApiQuery<FiguresQuery>,
) -> ApiResult<Json<ChatFiguresView>> {
    let campaign = s.store.get_campaign(id).await?;
    if campaign.channel != Channel::Chat {
        return Err(ApiError::invalid(herald_core::ValidationError::single(
            "id",
            format!(
                "`{}` is a {} campaign; only chat campaigns have these figures",
                campaign.name, campaign.channel
            ),
        )));
    }
    Ok(Json(figures_of(&s, id, q.days.unwrap_or(30)).await?))
}
