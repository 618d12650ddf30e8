//! Following an outreach once it is launched: stop it, retry its failed recipients, list its
//! recipients, and watch its progress live as Server-Sent Events.

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::limits::{Refusal, StreamPermit};
use crate::progress::{Closed, Snapshot};
use axum::extract::State;
use axum::http::header::HeaderName;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures_util::Stream;
use herald_core::Page;
use herald_core::outreach::{DeliveryState, OutreachStatus, Progress};
use herald_store::{Outreach, RecipientRecord};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tokio::sync::watch;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(stop_outreach))
        .routes(routes!(retry_failed))
        .routes(routes!(requeue_uncertain))
        .routes(routes!(list_recipients))
        .routes(routes!(recipients_csv))
        .routes(routes!(outreach_events))
}

/// Stops an outreach: no recipient is messaged from now on. Recipients still waiting become
/// `skipped` (reason `stopped`); sends already handed to a provider are still recorded. A stopped
/// outreach cannot be restarted.
#[utoipa::path(post, path = "/outreaches/{id}/stop", tag = "outreaches",
    params(("id" = Uuid, Path)), security(("bearer" = ["admin"])),
    responses(
        (status = 200, description = "The stopped outreach", body = Outreach),
        (status = 404, body = Problem),
        (status = 409, description = "The outreach is already completed or stopped", body = Problem)))]
async fn stop_outreach(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<Outreach>> {
    Ok(Json(s.store.stop_outreach(id, s.clock.now()).await?))
}

/// What `retry-failed` (or `requeue-uncertain`) did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RetryFailed {
    /// Failed (or uncertain) recipients put back in the queue.
    pub requeued: u64,
    /// The outreach afterwards (a completed one is `in_progress` again).
    pub outreach: Outreach,
}

/// Queues every `failed` recipient of the outreach again (their attempts start over). A
/// completed outreach goes back to `in_progress`. Refused for a stopped outreach and for one
/// whose end time has passed.
#[utoipa::path(post, path = "/outreaches/{id}/retry-failed", tag = "outreaches",
    params(("id" = Uuid, Path)), security(("bearer" = ["admin"])),
    responses(
        (status = 200, body = RetryFailed),
        (status = 404, body = Problem),
        (status = 409, description = "The outreach is stopped or past its end time", body = Problem)))]
async fn retry_failed(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<RetryFailed>> {
    let requeued = s.store.retry_failed(id, s.clock.now()).await?;
    let outreach = s.store.get_outreach(id).await?;
    Ok(Json(RetryFailed { requeued, outreach }))
}

/// The confirmation `requeue-uncertain` needs.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequeueUncertain {
    /// Must be `true`: each of these customers may already have the message and would then get
    /// it twice.
    pub may_send_twice: bool,
}

/// Queues the `unknown` recipients of the outreach again: sends a crash cut short, which may or
/// may not have reached the customer (they count as `uncertain` in the progress, never as
/// sent). Sending again may deliver a second message, so the body must say
/// `{"may_send_twice": true}`. Otherwise as `retry-failed`: attempts start over, a completed
/// outreach goes back to `in_progress`, refused for a stopped outreach and after its end time.
#[utoipa::path(post, path = "/outreaches/{id}/requeue-uncertain", tag = "outreaches",
    params(("id" = Uuid, Path)), request_body = RequeueUncertain,
    security(("bearer" = ["admin"])),
    responses(
        (status = 200, body = RetryFailed),
        (status = 400, description = "The body is not `{\"may_send_twice\": true|false}`", body = Problem),
        (status = 404, body = Problem),
        (status = 409, description = "The outreach is stopped or past its end time", body = Problem),
        (status = 422, description = "`may_send_twice` is not `true`", body = Problem)))]
async fn requeue_uncertain(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(confirm): ApiJson<RequeueUncertain>,
) -> ApiResult<Json<RetryFailed>> {
    if !confirm.may_send_twice {
        return Err(ApiError::invalid(herald_core::ValidationError::single(
            "may_send_twice",
            "must be true: an uncertain recipient may already have the message, and sending it \
             again may deliver a second one",
        )));
    }
    let requeued = s.store.requeue_uncertain(id, s.clock.now()).await?;
    let outreach = s.store.get_outreach(id).await?;
    Ok(Json(RetryFailed { requeued, outreach }))
}

/// `?state=failed&limit=50&after=0`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RecipientQuery {
    /// Only recipients in this delivery state.
    #[param(value_type = Option<DeliveryState>)]
    pub state: Option<String>,
    /// Items per page, 1 to 500 (default 50).
    pub limit: Option<u32>,
    /// The `next_after` of the previous page (recipient ids are integers; omit or send 0 for the
    /// first page).
    #[param(minimum = 0)]
    pub after: Option<i64>,
}

/// One page of an outreach's recipients and the cursor for the next, if there is one.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RecipientListing {
    pub items: Vec<RecipientRecord>,
    /// Send it as `after` for the next page; null on the last page.
    pub next_after: Option<i64>,
}

/// The outreach's recipients in upload order (by id), optionally of one delivery state: what
/// each was sent, when, and why it failed or was skipped.
#[utoipa::path(get, path = "/outreaches/{id}/recipients", tag = "outreaches",
    params(("id" = Uuid, Path), RecipientQuery), security(("bearer" = [])),
    responses(
        (status = 200, body = RecipientListing),
        (status = 400, description = "`state` is not a delivery state", body = Problem),
        (status = 404, body = Problem),
        (status = 422, description = "`limit` is out of range", body = Problem)))]
async fn list_recipients(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(q): ApiQuery<RecipientQuery>,
) -> ApiResult<Json<RecipientListing>> {
    let state = state_param(q.state.as_deref())?;
    let limit = Page::new(q.limit, None)?.limit;
    let after = q.after.unwrap_or(0);
    if after < 0 {
        return Err(ApiError::bad_param(
            "after",
            "must be 0 or the `next_after` of the previous page",
        ));
    }
    // One more than asked tells whether another page follows without a second query.
    let mut items = s.store.list_recipients(id, state, after, limit + 1).await?;
    let next_after = if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last().map(|r| r.id)
    } else {
        None
    };
    Ok(Json(RecipientListing { items, next_after }))
}

/// Recipients per page of the export.
const EXPORT_PAGE: u32 = 1_000;

/// `?state=failed`: the export's filter.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// Only recipients in this delivery state.
    #[param(value_type = Option<DeliveryState>)]
    pub state: Option<String>,
}

/// The columns of the export before the upload's own.
const EXPORT_COLUMNS: [&str; 11] = [
    "line",
    "address",
    "state",
    "skip_reason",
    "attempts",
    "sent_at",
    "updated_at",
    "provider_message_id",
    "error_code",
    "error_message",
    "timezone",
];

/// Every recipient of the outreach (or those of one state) as CSV, in upload order: who got
/// what and when — line, address, delivery state, skip reason, attempts, times, the provider's
/// message id and error — then the columns of the uploaded file. Streamed a page at a time;
/// cells a spreadsheet would run as a formula (starting with `=`, `+`, `-`, `@`) are prefixed
/// with `'`, except phone numbers in E.164.
#[utoipa::path(get, path = "/outreaches/{id}/recipients.csv", tag = "outreaches",
    params(("id" = Uuid, Path), ExportQuery), security(("bearer" = [])),
    responses(
        (status = 200, content_type = "text/csv", body = String),
        (status = 400, description = "`state` is not a delivery state", body = Problem),
        (status = 404, body = Problem)))]
pub(crate) async fn recipients_csv(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(q): ApiQuery<ExportQuery>,
) -> ApiResult<Response> {
    let state = state_param(q.state.as_deref())?;
    let outreach = s.store.get_outreach(id).await?;
    // The upload's columns, as its first recipient holds them (every row has them all).
    let first = s.store.list_recipients(id, None, 0, 1).await?;
    let variables: Vec<String> = first
        .first()
        .and_then(|r| r.variables.as_object())
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    let mut header_row: Vec<String> = EXPORT_COLUMNS.iter().map(|c| c.to_string()).collect();
    header_row.extend(variables.iter().map(|v| export_cell(v)));
    let header_row = csv_bytes(std::iter::once(header_row));
    let store = s.store.clone();
    let pages = futures_util::stream::unfold(Some(0i64), move |cursor| {
        let (store, variables) = (store.clone(), variables.clone());
        async move {
            let after = cursor?;
            match store.list_recipients(id, state, after, EXPORT_PAGE).await {
                Ok(page) if page.is_empty() => None,
                Ok(page) => {
                    let next = page.last().map(|r| r.id);
                    let done = page.len() < EXPORT_PAGE as usize;
                    let bytes = csv_bytes(page.iter().map(|r| export_row(r, &variables)));
                    Some((Ok(bytes), if done { None } else { next }))
                }
                Err(e) => {
                    tracing::error!(error = %e, outreach_id = %id, "reading the export failed");
                    Some((Err(std::io::Error::other(e.to_string())), None))
                }
            }
        }
    });
    crate::routes::outreaches::csv_attachment(&outreach.file_name, "recipients", header_row, pages)
}

/// A recipient as a row of the export.
fn export_row(r: &RecipientRecord, variables: &[String]) -> Vec<String> {
    let time = |t: Option<jiff::Timestamp>| t.map(|t| t.to_string()).unwrap_or_default();
    let mut row = vec![
        r.line.to_string(),
        export_cell(&r.address),
        r.state.as_str().to_string(),
        r.skip_reason
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        r.attempts.to_string(),
        time(r.sent_at),
        time(r.updated_at),
        export_cell(r.provider_message_id.as_deref().unwrap_or("")),
        export_cell(r.error_code.as_deref().unwrap_or("")),
        export_cell(r.error_message.as_deref().unwrap_or("")),
        export_cell(r.timezone.as_deref().unwrap_or("")),
    ];
    row.extend(variables.iter().map(|name| match r.variables.get(name) {
        Some(serde_json::Value::String(v)) => export_cell(v),
        Some(serde_json::Value::Null) | None => String::new(),
        Some(other) => export_cell(&other.to_string()),
    }));
    row
}

/// A cell as a spreadsheet may open it safely: [`herald_import::neutralize_cell`], except an
/// E.164 number (`+` and digits only), which no spreadsheet runs and which must stay as it is.
fn export_cell(value: &str) -> String {
    match value.strip_prefix('+') {
        Some(digits) if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
            value.to_string()
        }
        _ => herald_import::neutralize_cell(value),
    }
}

pub(crate) fn csv_bytes(rows: impl IntoIterator<Item = Vec<String>>) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    for row in rows {
        if let Err(e) = w.write_record(&row) {
            tracing::error!(error = %e, "writing the export failed");
        }
    }
    w.into_inner().unwrap_or_default()
}

/// The `state` query parameter: none when absent or blank.
fn state_param(state: Option<&str>) -> ApiResult<Option<DeliveryState>> {
    match state.map(str::trim) {
        None | Some("") => Ok(None),
        Some(name) => name
            .parse::<DeliveryState>()
            .map(Some)
            .map_err(|e| ApiError::bad_param("state", e.to_string())),
    }
}

/// The data of a `progress` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ProgressEvent {
    /// The outreach.
    pub id: Uuid,
    pub status: OutreachStatus,
    pub progress: Progress,
    /// `sent/total`, e.g. `7/11`.
    pub label: String,
}

impl ProgressEvent {
    pub(crate) fn of(o: &Outreach) -> Self {
        Self {
            id: o.id,
            status: o.status,
            progress: o.progress,
            label: o.progress.label(),
        }
    }
}

/// How often an idle event stream sends a comment, so proxies keep the connection open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The outreach's progress as it changes, as Server-Sent Events (`text/event-stream`).
///
/// An event `progress` comes at once, then again whenever the status or a count changes; its
/// data is a `ProgressEvent`. Once the outreach is completed or stopped, its last `progress`
/// event is sent and the stream ends (an `EventSource` should `close()` when it sees a final
/// status, or it reconnects and gets that last event again). If the outreach cannot be read
/// any more, an event `error` carries a problem document and the stream ends. A comment every
/// 15 s keeps an idle connection open. However many streams watch an outreach, Herald reads its
/// progress once per interval for all of them. One token may have a few streams open at once
/// (`outreaches.event_streams_per_caller`, 10 by default); past that the answer is 429.
#[utoipa::path(get, path = "/outreaches/{id}/events", tag = "outreaches",
    params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses(
        (status = 200, description = "`progress` events whose data is a ProgressEvent",
            content_type = "text/event-stream", body = ProgressEvent),
        (status = 404, body = Problem),
        (status = 429, description = "This token has as many streams open as it may", body = Problem)))]
pub(crate) async fn outreach_events(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<impl IntoResponse, Refusal> {
    let token = &caller.0;
    events_for(
        &s,
        id,
        format!("token:{}", token.id),
        &format!("token `{}`", token.name),
    )
    .await
}

/// The event stream of an outreach for a caller (`key` counts its streams, `who` names it in a
/// refusal): the API's and the web UI's.
pub(crate) async fn events_for(
    s: &AppState,
    id: Uuid,
    key: String,
    who: &str,
) -> Result<impl IntoResponse + use<>, Refusal> {
    let permit = s.gates.streams.enter(key, who)?;
    // An unknown outreach is a 404, not a stream.
    let rx = s
        .gates
        .progress
        .subscribe(
            &s.store,
            id,
            s.events_interval,
            Box::pin(s.event_streams_closed()),
        )
        .await?;
    let stream = progress_events(rx, Box::pin(s.event_streams_closed()), permit);
    Ok((
        // Tells nginx and the like not to buffer the stream.
        [(HeaderName::from_static("x-accel-buffering"), "no")],
        Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)),
    ))
}

struct Watching {
    rx: watch::Receiver<Snapshot>,
    closed: Closed,
    /// What this stream sent last.
    sent: Option<Snapshot>,
    /// Held while the stream lives: it counts against the caller's streams.
    _permit: StreamPermit,
}

fn progress_events(
    rx: watch::Receiver<Snapshot>,
    closed: Closed,
    permit: StreamPermit,
) -> impl Stream<Item = Result<Event, axum::Error>> {
    let start = Watching {
        rx,
        closed,
        sent: None,
        _permit: permit,
    };
    futures_util::stream::unfold(Some(start), |state| async move {
        let mut w = state?;
        loop {
            let now = w.rx.borrow_and_update().clone();
            if w.sent.as_ref() != Some(&now) {
                let event = match &now {
                    Snapshot::Progress(ev) => Event::default().event("progress").json_data(ev),
                    Snapshot::Gone(problem) => Event::default().event("error").json_data(problem),
                };
                let last = now.is_last();
                w.sent = Some(now);
                return Some((event, (!last).then_some(w)));
            }
            tokio::select! {
                changed = w.rx.changed() => {
                    // The poller is gone and this stream has seen its last value.
                    if changed.is_err() {
                        return None;
                    }
                }
                () = &mut w.closed => return None,
            }
        }
    })
}
