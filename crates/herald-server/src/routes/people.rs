//! People and access, for admins: users (invite with a one-time link, send it again, change a
//! role, deactivate: a deactivated user's sessions end at once), API tokens (created with a name
//! and a role and shown once, listed with their last use, revoked) and the audit log that
//! records each of those changes and every change to the opt-out list (who, what, when, from
//! which address).
//!
//! Every route here needs an admin token, reading included: who has access is not an agent's
//! business.

use super::PageQuery;
use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::web::limits::ClientAddr;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};
use herald_core::{EmailAddress, Listing, Role, ValidationError};
use herald_store::{
    Actor, AuditContext, AuditEntry, Invitation, NewToken, StoreError, TokenInfo, UserAccount,
    UserChange,
};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

/// How long an invitation's link works.
pub const INVITE_LINK_VALID: jiff::SignedDuration = jiff::SignedDuration::from_hours(7 * 24);

/// The longest token name.
const TOKEN_NAME_MAX: usize = 100;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_users, invite_user))
        .routes(routes!(get_user, update_user))
        .routes(routes!(list_invitations))
        .routes(routes!(resend_invitation))
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(revoke_token))
        .routes(routes!(list_audit))
}

/// 403 unless the caller's token is an admin's (the auth layer lets agents GET everything else).
fn admin_only(caller: &Caller) -> ApiResult<()> {
    if caller.0.role == Role::Admin {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "token `{}` has the {} role; only admins may see or change users, tokens and the \
             audit log",
            caller.0.name, caller.0.role
        )))
    }
}

/// Who is making a change through the API, for the audit log.
pub(crate) fn api_context(s: &AppState, caller: &Caller, client: ClientAddr) -> AuditContext {
    AuditContext {
        actor: Actor::Token(caller.0.name.clone()),
        client_addr: Some(client.0.to_string()),
        at: s.clock.now(),
    }
}

/// Where a setup link points: under `server.public_url`, else under the host the request was
/// sent to.
pub(crate) fn setup_link(s: &AppState, headers: &HeaderMap, secret: &str) -> String {
    let base = if s.public_url.is_empty() {
        let host = headers
            .get(axum::http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost");
        format!("http://{host}")
    } else {
        s.public_url.clone()
    };
    format!("{base}/setup/{secret}")
}

/// A new invitation's link, stored (only its hash) with the audit entry: the link and when it
/// stops working, and whether it replaced an earlier one.
pub(crate) async fn invite(
    s: &AppState,
    headers: &HeaderMap,
    email: &str,
    role: Role,
    ctx: &AuditContext,
) -> Result<InvitationLink, StoreError> {
    use crate::web::session::{new_secret, secret_hash};
    let secret = new_secret();
    let expires_at = ctx
        .at
        .checked_add(INVITE_LINK_VALID)
        .unwrap_or(Timestamp::MAX);
    let resent = s
        .store
        .invite_user(email, role, &secret_hash(&secret), expires_at, ctx)
        .await?;
    Ok(InvitationLink {
        email: herald_store::users::normalize_email(email),
        role,
        link: setup_link(s, headers, &secret),
        expires_at,
        replaced_earlier_link: resent,
    })
}

/// `{"email": ..., "role": "agent"}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct InviteInput {
    #[serde(default)]
    pub email: String,
    pub role: Role,
}

/// A one-time link that creates the invited user: shown only in this answer (only its hash is
/// stored). Give it to the person; it works once, until `expires_at`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InvitationLink {
    pub email: String,
    pub role: Role,
    pub link: String,
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: Timestamp,
    /// True when the email had an earlier link, which no longer works.
    pub replaced_earlier_link: bool,
}

/// `{"role": "admin", "active": false}`; either may be left out.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct UserPatch {
    pub role: Option<Role>,
    /// False deactivates the user: they cannot sign in and their open sessions end at once.
    pub active: Option<bool>,
}

/// `{"email": ...}`: whose invitation to send again.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ResendInput {
    #[serde(default)]
    pub email: String,
}

/// `{"name": "deploy", "role": "agent"}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct TokenInput {
    #[serde(default)]
    pub name: String,
    pub role: Role,
}

/// A new token. `secret` is shown only in this answer: Herald keeps only its hash.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenCreated {
    pub token: TokenInfo,
    pub secret: String,
}

fn parse_email(raw: &str) -> ApiResult<String> {
    EmailAddress::parse(raw)
        .map(|e| e.as_str().to_lowercase())
        .map_err(|e| ValidationError::single("email", e.to_string()).into())
}

/// The users of the web UI in creation order, deactivated ones included.
#[utoipa::path(get, path = "/users", tag = "people", params(PageQuery),
    security(("bearer" = ["admin"])),
    responses((status = 200, body = Listing<UserAccount>), (status = 403, body = Problem)))]
async fn list_users(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Listing<UserAccount>>> {
    admin_only(&caller)?;
    Ok(Json(s.store.list_users(q.page()?).await?))
}

/// Invites a user: a one-time link that lets them set their password (shown only in this
/// answer). Inviting an email again replaces its earlier link. 409 if the email has an account.
#[utoipa::path(post, path = "/users", tag = "people", request_body = InviteInput,
    security(("bearer" = ["admin"])),
    responses((status = 201, body = InvitationLink), (status = 409, body = Problem),
        (status = 422, body = Problem)))]
async fn invite_user(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    client: ClientAddr,
    headers: HeaderMap,
    ApiJson(input): ApiJson<InviteInput>,
) -> ApiResult<(StatusCode, Json<InvitationLink>)> {
    let email = parse_email(&input.email)?;
    let ctx = api_context(&s, &caller, client);
    let link = invite(&s, &headers, &email, input.role, &ctx).await?;
    Ok((StatusCode::CREATED, Json(link)))
}

/// One user.
#[utoipa::path(get, path = "/users/{id}", tag = "people", params(("id" = Uuid, Path)),
    security(("bearer" = ["admin"])),
    responses((status = 200, body = UserAccount), (status = 404, body = Problem)))]
async fn get_user(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<UserAccount>> {
    admin_only(&caller)?;
    Ok(Json(s.store.get_user_account(id).await?))
}

/// Changes a user's role, or deactivates (`"active": false`) or reactivates them. A deactivated
/// user cannot sign in, and their open sessions end at once. 409 if it would leave no active
/// admin.
#[utoipa::path(patch, path = "/users/{id}", tag = "people", params(("id" = Uuid, Path)),
    request_body = UserPatch, security(("bearer" = ["admin"])),
    responses((status = 200, body = UserAccount), (status = 404, body = Problem),
        (status = 409, body = Problem)))]
async fn update_user(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    client: ClientAddr,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(input): ApiJson<UserPatch>,
) -> ApiResult<Json<UserAccount>> {
    let ctx = api_context(&s, &caller, client);
    let change = UserChange {
        role: input.role,
        active: input.active,
    };
    Ok(Json(s.store.update_user(id, change, &ctx).await?))
}

/// Invitations not taken yet (expired ones included: send them again).
#[utoipa::path(get, path = "/invitations", tag = "people", security(("bearer" = ["admin"])),
    responses((status = 200, body = Vec<Invitation>), (status = 403, body = Problem)))]
async fn list_invitations(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<Vec<Invitation>>> {
    admin_only(&caller)?;
    Ok(Json(s.store.list_invitations().await?))
}

/// Sends an invitation again: a new link with the same role (shown only in this answer); the
/// earlier link stops working. 404 if the email has no invitation waiting.
#[utoipa::path(post, path = "/invitations/resend", tag = "people", request_body = ResendInput,
    security(("bearer" = ["admin"])),
    responses((status = 201, body = InvitationLink), (status = 404, body = Problem),
        (status = 422, body = Problem)))]
async fn resend_invitation(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    client: ClientAddr,
    headers: HeaderMap,
    ApiJson(input): ApiJson<ResendInput>,
) -> ApiResult<(StatusCode, Json<InvitationLink>)> {
    let email = parse_email(&input.email)?;
    let waiting = s.store.list_invitations().await?;
    let Some(invitation) = waiting.into_iter().find(|i| i.email == email) else {
        return Err(ApiError::not_found(format!(
            "no invitation of {email} is waiting; invite them with POST /api/v1/users"
        )));
    };
    let ctx = api_context(&s, &caller, client);
    let link = invite(&s, &headers, &email, invitation.role, &ctx).await?;
    Ok((StatusCode::CREATED, Json(link)))
}

/// API tokens in creation order, with their last use (never their secrets).
#[utoipa::path(get, path = "/tokens", tag = "people", params(PageQuery),
    security(("bearer" = ["admin"])),
    responses((status = 200, body = Listing<TokenInfo>), (status = 403, body = Problem)))]
async fn list_tokens(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Listing<TokenInfo>>> {
    admin_only(&caller)?;
    Ok(Json(s.store.list_tokens(q.page()?).await?))
}

/// The name a token is created with: trimmed, 1 to 100 characters.
pub(crate) fn token_name(raw: &str) -> Result<String, ValidationError> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(ValidationError::single("name", "is required"));
    }
    if name.chars().count() > TOKEN_NAME_MAX {
        return Err(ValidationError::single(
            "name",
            format!("is longer than {TOKEN_NAME_MAX} characters"),
        ));
    }
    Ok(name.to_string())
}

/// Creates an API token with a name and a role. Its secret is in this answer only.
#[utoipa::path(post, path = "/tokens", tag = "people", request_body = TokenInput,
    security(("bearer" = ["admin"])),
    responses((status = 201, body = TokenCreated), (status = 422, body = Problem)))]
async fn create_token(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    client: ClientAddr,
    ApiJson(input): ApiJson<TokenInput>,
) -> ApiResult<(StatusCode, Json<TokenCreated>)> {
    let name = token_name(&input.name)?;
    let ctx = api_context(&s, &caller, client);
    let created = new_token(&s, &name, input.role, &ctx).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// A token made and stored (its hash) with its audit entry.
pub(crate) async fn new_token(
    s: &AppState,
    name: &str,
    role: Role,
    ctx: &AuditContext,
) -> Result<TokenCreated, StoreError> {
    let secret = crate::auth::generate_token();
    let token = s
        .store
        .create_token_audited(
            &NewToken {
                name: name.to_string(),
                role,
                hash_hex: secret.hash_hex.clone(),
            },
            ctx,
        )
        .await?;
    Ok(TokenCreated {
        token: TokenInfo {
            id: token.id,
            name: token.name,
            role: token.role,
            created_at: token.created_at,
            last_used_at: None,
        },
        secret: secret.secret,
    })
}

/// Revokes a token: the next request that sends it is refused.
#[utoipa::path(delete, path = "/tokens/{id}", tag = "people", params(("id" = Uuid, Path)),
    security(("bearer" = ["admin"])),
    responses((status = 204), (status = 404, body = Problem)))]
async fn revoke_token(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    client: ClientAddr,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<StatusCode> {
    let ctx = api_context(&s, &caller, client);
    s.store.revoke_token(id, &ctx).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The audit log, newest first: who (a user's email or a token's name) did what
/// (`user.invited`, `user.invitation_resent`, `user.role_changed`, `user.deactivated`,
/// `user.reactivated`, `token.created`, `token.revoked`, `suppression.added`,
/// `suppression.removed`), to what, when, and from which client address.
#[utoipa::path(get, path = "/audit", tag = "people", params(PageQuery),
    security(("bearer" = ["admin"])),
    responses((status = 200, body = Listing<AuditEntry>), (status = 403, body = Problem)))]
async fn list_audit(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Listing<AuditEntry>>> {
    admin_only(&caller)?;
    Ok(Json(s.store.list_audit(q.page()?).await?))
}
