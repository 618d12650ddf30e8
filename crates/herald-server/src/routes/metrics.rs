//! `GET /metrics`: this process's counters in Prometheus' text format (see
//! [`herald_engine::Metrics`]), for an admin's token; and the count of provider webhook requests
//! by webhook and status that feeds it.

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use herald_core::Role;

/// `/metrics`, behind the API's token check.
pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/metrics", get(metrics))
        .route_layer(axum::middleware::from_fn_with_state(
            state,
            crate::auth::require_token,
        ))
}

/// The counters, and the recipients due and waiting in the whole database (one indexed count;
/// left out if the database does not answer). Admins only: the labels name senders.
async fn metrics(State(s): State<AppState>, Extension(caller): Extension<Caller>) -> Response {
    if caller.0.role != Role::Admin {
        return ApiError::forbidden(format!(
            "token `{}` has the {} role; only admins may read /metrics",
            caller.0.name, caller.0.role
        ))
        .into_response();
    }
    let due = match s.store.due_recipients(s.clock.now()).await {
        Ok(n) => Some(n),
        Err(e) => {
            tracing::warn!(error = %e, "metrics: cannot count the due recipients");
            None
        }
    };
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.metrics.render(due),
    )
        .into_response()
}

/// Counts every request to a provider webhook by the route it matched (`twilio/sms`) and its
/// status. It runs only for the webhook routes, so a caller cannot invent labels.
pub async fn count_webhook(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let hook = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().trim_start_matches("/webhooks/").to_string())
        .unwrap_or_else(|| "other".to_string());
    let res = next.run(req).await;
    s.metrics.webhook(&hook, res.status().as_u16());
    res
}
