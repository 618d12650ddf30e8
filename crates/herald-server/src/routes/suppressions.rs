//! The opt-out list: addresses Herald must not message, for one sender (an SMS STOP, as
//! carriers do) or for every sender (an email unsubscribe, an address added here without a
//! sender). Uploads store suppressed rows as `skipped: suppressed`; the dispatcher checks the
//! list again just before sending, so an address added now holds for outreaches already under
//! way.

use super::conversations::normalize_address;
use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiResult, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::web::limits::ClientAddr;
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use herald_core::outreach::SkipReason;
use herald_core::{Listing, Page};
use herald_store::{StoreError, Suppression};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_suppressions, create_suppression))
        .routes(routes!(get_suppression, delete_suppression))
}

/// `?address=&limit=&after=`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SuppressionQuery {
    /// Only suppressions of this address (E.164 or email).
    pub address: Option<String>,
    /// Items per page, 1 to 500 (default 50).
    pub limit: Option<u32>,
    /// The `next_after` of the previous page.
    pub after: Option<Uuid>,
}

/// An address to suppress.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct SuppressionInput {
    /// A phone number (E.164, or national with `region`) or an email address.
    #[serde(default)]
    pub address: String,
    pub region: Option<String>,
    /// Only for this sender; omit to keep every sender from messaging the address.
    pub sender_id: Option<Uuid>,
    /// Why (shown to agents who try to message the customer).
    pub reason: Option<String>,
}

/// What adding a suppression did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SuppressionCreated {
    pub suppression: Suppression,
    /// Whether it was new (false: the address was already suppressed that way).
    pub created: bool,
    /// Recipients of scheduled or in-progress outreaches skipped because of it.
    pub skipped_recipients: u64,
}

/// The opt-out list, newest first.
#[utoipa::path(get, path = "/suppressions", tag = "suppressions", params(SuppressionQuery),
    security(("bearer" = [])),
    responses((status = 200, body = Listing<Suppression>), (status = 400, body = Problem)))]
async fn list_suppressions(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<SuppressionQuery>,
) -> ApiResult<Json<Listing<Suppression>>> {
    let address = match q.address.as_deref().filter(|a| !a.trim().is_empty()) {
        Some(a) => Some(normalize_address(a, None)?),
        None => None,
    };
    let page = Page::new(q.limit, q.after)?;
    Ok(Json(
        s.store.list_suppressions(address.as_deref(), page).await?,
    ))
}

/// Suppresses an address (for one sender or all of them) and skips its recipients in
/// outreaches not yet sent to it. Adding one that exists changes nothing (`created: false`).
/// A new one is written to the audit log (`suppression.added`, with the reason and the token).
#[utoipa::path(post, path = "/suppressions", tag = "suppressions",
    request_body = SuppressionInput, security(("bearer" = ["admin"])),
    responses((status = 201, body = SuppressionCreated), (status = 200, body = SuppressionCreated),
        (status = 400, body = Problem), (status = 422, body = Problem)))]
async fn create_suppression(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    client: ClientAddr,
    ApiJson(input): ApiJson<SuppressionInput>,
) -> ApiResult<(StatusCode, Json<SuppressionCreated>)> {
    let address = normalize_address(&input.address, input.region.as_deref())?;
    if let Some(id) = input.sender_id {
        match s.store.get_sender(id).await {
            Ok(_) => {}
            Err(StoreError::NotFound { .. }) => {
                return Err(herald_core::ValidationError::single(
                    "sender_id",
                    format!("no sender has id {id}"),
                )
                .into());
            }
            Err(e) => return Err(e.into()),
        }
    }
    let reason = input
        .reason
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .unwrap_or("added by an administrator")
        .to_string();
    let ctx = super::people::api_context(&s, &caller, client);
    let created = s
        .store
        .add_suppression_audited(&address, input.sender_id, &reason, &ctx)
        .await?;
    let skipped_recipients = s
        .store
        .skip_pending_for_address(
            &address,
            input.sender_id,
            SkipReason::Suppressed,
            s.clock.now(),
        )
        .await?;
    let listing = s
        .store
        .list_suppressions(Some(&address), Page::new(Some(500), None)?)
        .await?;
    let suppression = listing
        .items
        .into_iter()
        .find(|x| x.sender_id == input.sender_id)
        .ok_or_else(|| {
            crate::error::ApiError::internal("the suppression was stored but cannot be read back")
        })?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(SuppressionCreated {
            suppression,
            created,
            skipped_recipients,
        }),
    ))
}

/// One suppression.
#[utoipa::path(get, path = "/suppressions/{id}", tag = "suppressions",
    params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 200, body = Suppression), (status = 404, body = Problem)))]
async fn get_suppression(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<Suppression>> {
    Ok(Json(s.store.get_suppression(id).await?))
}

/// Lifts a suppression: the address may be messaged again (recipients already skipped stay
/// skipped). Written to the audit log (`suppression.removed`, with its reason and the token).
#[utoipa::path(delete, path = "/suppressions/{id}", tag = "suppressions",
    params(("id" = Uuid, Path)), security(("bearer" = ["admin"])),
    responses((status = 204), (status = 404, body = Problem)))]
async fn delete_suppression(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    client: ClientAddr,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<StatusCode> {
    let ctx = super::people::api_context(&s, &caller, client);
    s.store.delete_suppression_audited(id, &ctx).await?;
    Ok(StatusCode::NO_CONTENT)
}
