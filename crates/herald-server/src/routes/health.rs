use crate::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok` when the process and the database answer.
    pub status: &'static str,
    /// `up` or `down`.
    pub database: &'static str,
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
    pub version: &'static str,
}

/// The process and its database are up. Needs no token.
#[utoipa::path(get, path = "/healthz", tag = "health", responses(
    (status = 200, description = "Process and database are up", body = Health),
    (status = 503, description = "The database does not answer", body = Health),
))]
pub async fn healthz(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let up = state.store.ping().await;
    if let Err(e) = &up {
        tracing::warn!(error = %e, "health check: database is down");
    }
    let status = if up.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(Health {
            status: if up.is_ok() { "ok" } else { "degraded" },
            database: if up.is_ok() { "up" } else { "down" },
            backend: state.store.backend(),
            version: env!("CARGO_PKG_VERSION"),
        }),
    )
}
