use super::PageQuery;
use crate::AppState;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use herald_core::{Listing, Sender, SenderInput, SenderSpec, ValidationError};
use herald_store::StoreError;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_senders, create_sender))
        .routes(routes!(get_sender, update_sender, delete_sender))
}

/// Checks a sender input, including that its inbox exists.
async fn checked(s: &AppState, input: &SenderInput) -> ApiResult<SenderSpec> {
    let spec = input.validate()?;
    match s.store.get_inbox(spec.inbox_id).await {
        Ok(_) => Ok(spec),
        Err(StoreError::NotFound { id, .. }) => Err(ValidationError::single(
            "inbox_id",
            format!("no inbox has id {id}; create the inbox first"),
        )
        .into()),
        Err(e) => Err(e.into()),
    }
}

/// Senders in creation order.
#[utoipa::path(get, path = "/senders", tag = "senders", params(PageQuery),
    security(("bearer" = [])),
    responses((status = 200, body = Listing<Sender>), (status = 401, body = Problem)))]
async fn list_senders(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Listing<Sender>>> {
    Ok(Json(s.store.list_senders(q.page()?).await?))
}

/// Registers a phone number (sms or voice, stored in E.164) or an email address as a sender.
#[utoipa::path(post, path = "/senders", tag = "senders", request_body = SenderInput,
    security(("bearer" = ["admin"])),
    responses((status = 201, body = Sender), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn create_sender(
    State(s): State<AppState>,
    ApiJson(input): ApiJson<SenderInput>,
) -> ApiResult<(StatusCode, Json<Sender>)> {
    let spec = checked(&s, &input).await?;
    Ok((
        StatusCode::CREATED,
        Json(s.store.create_sender(&spec).await?),
    ))
}

/// One sender.
#[utoipa::path(get, path = "/senders/{id}", tag = "senders", params(("id" = Uuid, Path)),
    security(("bearer" = [])),
    responses((status = 200, body = Sender), (status = 404, body = Problem)))]
async fn get_sender(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<Sender>> {
    Ok(Json(s.store.get_sender(id).await?))
}

/// Changes a sender's address, inbox or provider. Its channel cannot change, since campaigns
/// rely on it: register a new sender instead.
#[utoipa::path(put, path = "/senders/{id}", tag = "senders", params(("id" = Uuid, Path)),
    request_body = SenderInput, security(("bearer" = ["admin"])),
    responses((status = 200, body = Sender), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn update_sender(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(input): ApiJson<SenderInput>,
) -> ApiResult<Json<Sender>> {
    let current = s.store.get_sender(id).await?;
    let spec = checked(&s, &input).await?;
    if spec.channel != current.channel {
        return Err(ApiError::invalid(ValidationError::single(
            "channel",
            format!(
                "a {} sender cannot become a {} sender; register a new sender instead",
                current.channel, spec.channel
            ),
        )));
    }
    Ok(Json(s.store.update_sender(id, &spec).await?))
}

/// Deletes a sender no campaign uses.
#[utoipa::path(delete, path = "/senders/{id}", tag = "senders", params(("id" = Uuid, Path)),
    security(("bearer" = ["admin"])),
    responses((status = 204), (status = 404, body = Problem), (status = 409, description = "A campaign uses it", body = Problem)))]
async fn delete_sender(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<StatusCode> {
    s.store.delete_sender(id).await?;
    Ok(StatusCode::NO_CONTENT)
}
