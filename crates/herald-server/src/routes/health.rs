use crate::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use std::time::Duration;

/// How long `/healthz` waits for the database to answer before it says `down`. Liveness does
/// not depend on it: a process whose database is away is alive, and restarting it would help
/// nothing.
const HEALTH_DB_WAIT: Duration = Duration::from_millis(300);

/// How long `/readyz` waits for the database before the node is not ready: well under a
/// prober's usual one-second timeout, and far under the pool's acquire timeout (which a probe
/// must not wait out while the database is down).
const READY_DB_WAIT: Duration = Duration::from_millis(500);

/// `f` within `wait`, or the database counts as down.
async fn within<T>(
    wait: Duration,
    f: impl std::future::Future<Output = herald_store::Result<T>>,
) -> Result<T, String> {
    match tokio::time::timeout(wait, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {} ms", wait.as_millis())),
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok` when the process and the database answer, `degraded` when the database does not
    /// (within 300 ms).
    pub status: &'static str,
    /// `up` or `down`.
    pub database: &'static str,
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
    pub version: &'static str,
}

/// Liveness: the process answers (always 200, within about 300 ms), and says whether its
/// database does. Whether the node should take traffic is `/readyz`. Needs no token.
#[utoipa::path(get, path = "/healthz", tag = "health", responses(
    (status = 200, description = "The process is alive; `database` says whether the database answers", body = Health),
))]
pub async fn healthz(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let up = within(HEALTH_DB_WAIT, state.store.ping()).await;
    if let Err(e) = &up {
        tracing::warn!(error = %e, "health check: database is down");
    }
    (
        StatusCode::OK,
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
/// probe): the database answers and its schema is this build's, both within 500 ms (a database
/// that does not answer makes the node not ready at once, not after the pool's acquire
/// timeout). Needs no token; costs two small queries.
#[utoipa::path(get, path = "/readyz", tag = "health", responses(
    (status = 200, description = "Ready", body = Readiness),
    (status = 503, description = "The database does not answer, or migrations are pending", body = Readiness),
))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let pending = within(READY_DB_WAIT, async {
        state.store.ping().await?;
        state.store.pending_migrations().await
    })
    .await;
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
