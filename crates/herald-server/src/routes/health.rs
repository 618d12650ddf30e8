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

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// `ready` when this node may take traffic: its database answers and holds every migration
    /// this build needs; `not_ready` otherwise.
    pub status: &'static str,
    /// `up` or `down`.
    pub database: &'static str,
    /// Migrations this build knows that the database has not applied (null when the database
    /// does not answer). A node started before `herald migrate` ran is not ready.
    pub migrations_pending: Option<usize>,
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
    pub version: &'static str,
}

/// Whether this node may take traffic (for a load balancer or an orchestrator's readiness
/// probe): the database answers and its schema is this build's. Needs no token; costs two small
/// queries.
#[utoipa::path(get, path = "/readyz", tag = "health", responses(
    (status = 200, description = "Ready", body = Readiness),
    (status = 503, description = "The database does not answer, or migrations are pending", body = Readiness),
))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let pending = match state.store.ping().await {
        Ok(()) => state.store.pending_migrations().await,
        Err(e) => Err(e),
    };
    let (status, database, migrations_pending) = match pending {
        Ok(0) => (StatusCode::OK, "up", Some(0)),
        Ok(n) => {
            tracing::warn!(pending = n, "readiness: migrations are pending");
            (StatusCode::SERVICE_UNAVAILABLE, "up", Some(n))
        }
        Err(e) => {
            tracing::warn!(error = %e, "readiness: database is down");
            (StatusCode::SERVICE_UNAVAILABLE, "down", None)
        }
    };
    (
        status,
        Json(Readiness {
            status: if status == StatusCode::OK {
                "ready"
            } else {
                "not_ready"
            },
            database,
            migrations_pending,
            backend: state.store.backend(),
            version: env!("CARGO_PKG_VERSION"),
        }),
    )
}
