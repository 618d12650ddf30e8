use super::PageQuery;
use crate::AppState;
use crate::error::{ApiResult, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use herald_core::{Inbox, InboxInput, Listing};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_inboxes, create_inbox))
        .routes(routes!(get_inbox, update_inbox, delete_inbox))
}

/// Inboxes in creation order.
#[utoipa::path(get, path = "/inboxes", tag = "inboxes", params(PageQuery),
    security(("bearer" = [])),
    responses((status = 200, body = Listing<Inbox>), (status = 401, body = Problem)))]
async fn list_inboxes(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Listing<Inbox>>> {
    Ok(Json(s.store.list_inboxes(q.page()?).await?))
}

/// Creates an inbox.
#[utoipa::path(post, path = "/inboxes", tag = "inboxes", request_body = InboxInput,
    security(("bearer" = ["admin"])),
    responses((status = 201, body = Inbox), (status = 422, body = Problem), (status = 403, body = Problem)))]
async fn create_inbox(
    State(s): State<AppState>,
    ApiJson(input): ApiJson<InboxInput>,
) -> ApiResult<(StatusCode, Json<Inbox>)> {
    let spec = input.validate()?;
    Ok((
        StatusCode::CREATED,
        Json(s.store.create_inbox(&spec).await?),
    ))
}

/// One inbox.
#[utoipa::path(get, path = "/inboxes/{id}", tag = "inboxes", params(("id" = Uuid, Path)),
    security(("bearer" = [])),
    responses((status = 200, body = Inbox), (status = 404, body = Problem)))]
async fn get_inbox(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<Inbox>> {
    Ok(Json(s.store.get_inbox(id).await?))
}

/// Renames an inbox.
#[utoipa::path(put, path = "/inboxes/{id}", tag = "inboxes", params(("id" = Uuid, Path)),
    request_body = InboxInput, security(("bearer" = ["admin"])),
    responses((status = 200, body = Inbox), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn update_inbox(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(input): ApiJson<InboxInput>,
) -> ApiResult<Json<Inbox>> {
    let spec = input.validate()?;
    Ok(Json(s.store.update_inbox(id, &spec).await?))
}

/// Deletes an inbox no sender links to.
#[utoipa::path(delete, path = "/inboxes/{id}", tag = "inboxes", params(("id" = Uuid, Path)),
    security(("bearer" = ["admin"])),
    responses((status = 204), (status = 404, body = Problem), (status = 409, description = "A sender links to it", body = Problem)))]
async fn delete_inbox(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<StatusCode> {
    s.store.delete_inbox(id).await?;
    Ok(StatusCode::NO_CONTENT)
}
