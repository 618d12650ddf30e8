//! What agents work with: an inbox's conversations, a conversation's timeline (the proactive
//! outreach message included), replies through the conversation's sender, and customers.

use super::PageQuery;
use crate::AppState;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use herald_core::{Address, Listing};
use herald_engine::ReplyError;
use herald_store::{ChatStartRecord, Conversation, ConversationStatus, Customer, Message, Store};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_conversations))
        .routes(routes!(get_conversation, update_conversation))
        .routes(routes!(reply))
        .routes(routes!(find_customer))
        .routes(routes!(get_customer))
}

/// How much of a timeline one response holds.
const TIMELINE_LIMIT: u32 = 500;

/// `?after=<message id>&limit=`: the next part of a timeline.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TimelineQuery {
    /// Only messages after this one (the `next_after` of the previous response).
    pub after: Option<Uuid>,
    /// At most this many messages, 1 to 500 (default 500).
    pub limit: Option<u32>,
}

impl TimelineQuery {
    fn limit(&self) -> ApiResult<u32> {
        match self.limit {
            None => Ok(TIMELINE_LIMIT),
            Some(n) if (1..=TIMELINE_LIMIT).contains(&n) => Ok(n),
            Some(_) => Err(ApiError::bad_param(
                "limit",
                format!("must be between 1 and {TIMELINE_LIMIT}"),
            )),
        }
    }
}

/// A conversation and its timeline, oldest message first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConversationView {
    pub conversation: Conversation,
    pub customer: Customer,
    pub messages: Vec<Message>,
    /// Pass as `after` for the rest of the timeline; `null` when this is all of it.
    pub next_after: Option<Uuid>,
    /// Whether the customer opted out of messages from this conversation's sender: replies are
    /// refused until they opt back in.
    pub opted_out: bool,
    /// A chat conversation's starts, oldest first: the campaign whose greeting the visitor
    /// answered, and on which page. Empty on other channels.
    pub chat_starts: Vec<ChatStartView>,
}

/// The start of a chat, as its conversation shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChatStartView {
    #[serde(flatten)]
    pub start: ChatStartRecord,
    /// The campaign's name and description (`null` once the campaign is deleted).
    pub campaign_name: Option<String>,
    pub campaign_description: Option<String>,
}

/// A customer and their whole timeline (every sender).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CustomerView {
    pub customer: Customer,
    pub messages: Vec<Message>,
    pub next_after: Option<Uuid>,
}

/// An agent's reply.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ReplyInput {
    /// The text to send.
    #[serde(default)]
    pub body: String,
    /// Email only: the subject (default "Re: " and the customer's last subject).
    pub subject: Option<String>,
}

/// A change of a conversation: its status, its assignee, or both.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConversationChange {
    /// `open` or `closed`.
    pub status: Option<ConversationStatus>,
    /// The user to assign it to; `null` to unassign. Leave out to keep the assignee.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Uuid>)]
    pub assignee_id: Option<Option<Uuid>>,
}

/// A field that is present, `null` or not: `Some(None)` for `null` (absent is `None`, by
/// `default`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<Uuid>>, D::Error> {
    Option::<Uuid>::deserialize(d).map(Some)
}

/// `?address=+15551234567`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CustomerQuery {
    /// A phone number (E.164, or national with `region`) or an email address.
    pub address: String,
    /// The region a national phone number is in (`US`, `GB`, ...).
    pub region: Option<String>,
}

fn next_after(messages: &[Message], limit: u32) -> Option<Uuid> {
    (messages.len() as u32 == limit)
        .then(|| messages.last().map(|m| m.id))
        .flatten()
}

/// An inbox's conversations, the most recently active first.
#[utoipa::path(get, path = "/inboxes/{id}/conversations", tag = "conversations",
    params(("id" = Uuid, Path), PageQuery), security(("bearer" = [])),
    responses((status = 200, body = Listing<Conversation>), (status = 404, body = Problem)))]
async fn list_conversations(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Listing<Conversation>>> {
    s.store.get_inbox(id).await?;
    Ok(Json(s.store.list_conversations(id, q.page()?).await?))
}

/// A conversation with its timeline: the outreach message the customer answered, their
/// replies, and the agents' answers, oldest first.
#[utoipa::path(get, path = "/conversations/{id}", tag = "conversations",
    params(("id" = Uuid, Path), TimelineQuery), security(("bearer" = [])),
    responses((status = 200, body = ConversationView), (status = 404, body = Problem)))]
async fn get_conversation(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(q): ApiQuery<TimelineQuery>,
) -> ApiResult<Json<ConversationView>> {
    let limit = q.limit()?;
    let conversation = s.store.get_conversation(id).await?;
    let customer = s.store.get_customer(conversation.customer_id).await?;
    let messages = s.store.conversation_messages(id, q.after, limit).await?;
    let opted_out = s
        .store
        .suppression_for(&conversation.customer_address, conversation.sender_id)
        .await?
        .is_some();
    let mut chat_starts = Vec::new();
    if conversation.channel == herald_core::Channel::Chat {
        for start in s.store.chat_starts(id).await? {
            let campaign = s.store.get_campaign(start.campaign_id).await.ok();
            chat_starts.push(ChatStartView {
                campaign_name: campaign.as_ref().map(|c| c.name.clone()),
                campaign_description: campaign.map(|c| c.description),
                start,
            });
        }
    }
    Ok(Json(ConversationView {
        chat_starts,
        next_after: next_after(&messages, limit),
        conversation,
        customer,
        messages,
        opted_out,
    }))
}

/// Closes or reopens a conversation, or assigns it (to a user id, or `null` for nobody). Agents
/// may do this. A customer's new message reopens a closed conversation.
#[utoipa::path(patch, path = "/conversations/{id}", tag = "conversations",
    params(("id" = Uuid, Path)), request_body = ConversationChange, security(("bearer" = [])),
    responses(
        (status = 200, body = Conversation),
        (status = 404, body = Problem),
        (status = 422, description = "An unknown user", body = Problem)))]
async fn update_conversation(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(change): ApiJson<ConversationChange>,
) -> ApiResult<Json<Conversation>> {
    let mut conversation = s.store.get_conversation(id).await?;
    if let Some(assignee) = change.assignee_id {
        conversation = s.store.assign_conversation(id, assignee).await?;
    }
    if let Some(status) = change.status {
        conversation = s.store.set_conversation_status(id, status).await?;
    }
    Ok(Json(conversation))
}

/// Replies to the customer through the conversation's sender and channel (SMS or email). Agents
/// may do this. Refused (409) when the customer opted out of that sender; 502 when the provider
/// refused the message; nothing is recorded unless the provider accepted it.
#[utoipa::path(post, path = "/conversations/{id}/messages", tag = "conversations",
    params(("id" = Uuid, Path)), request_body = ReplyInput, security(("bearer" = [])),
    responses(
        (status = 201, body = Message),
        (status = 404, body = Problem),
        (status = 409, description = "The customer opted out", body = Problem),
        (status = 422, body = Problem),
        (status = 502, description = "The provider did not take the message", body = Problem)))]
async fn reply(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(input): ApiJson<ReplyInput>,
) -> ApiResult<(StatusCode, Json<Message>)> {
    match s
        .replies
        .agent_reply(id, None, input.subject.as_deref(), &input.body)
        .await
    {
        Ok(m) => {
            // A chat visitor's stream on this node reads it now.
            s.chat_live.poke(id);
            Ok((StatusCode::CREATED, Json(m)))
        }
        Err(e) => Err(reply_problem(e)),
    }
}

/// How a refused or failed send reads over the API: 409 opted out, 422 invalid, 502 the
/// provider did not take it.
pub(crate) fn reply_problem(e: ReplyError) -> ApiError {
    match e {
        ReplyError::OptedOut(msg) => ApiError::conflict(msg),
        ReplyError::Invalid { field, message } => {
            ApiError::invalid(herald_core::ValidationError::single(field, message))
        }
        ReplyError::Send(e) => ApiError::bad_gateway(format!(
            "the message was not sent: {}{}",
            e.message(),
            e.code().map(|c| format!(" (code {c})")).unwrap_or_default()
        )),
        ReplyError::Store(e) => e.into(),
    }
}

/// The customer with an address, with their timeline.
#[utoipa::path(get, path = "/customers", tag = "conversations",
    params(CustomerQuery), security(("bearer" = [])),
    responses((status = 200, body = CustomerView), (status = 404, body = Problem), (status = 400, body = Problem)))]
async fn find_customer(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<CustomerQuery>,
) -> ApiResult<Json<CustomerView>> {
    let address = normalize_address(&q.address, q.region.as_deref())?;
    let Some(customer) = s.store.find_customer(&address).await? else {
        return Err(ApiError::not_found(format!(
            "no customer has the address {address}"
        )));
    };
    customer_view(&*s.store, customer, None, TIMELINE_LIMIT).await
}

/// A customer and their timeline across every sender.
#[utoipa::path(get, path = "/customers/{id}", tag = "conversations",
    params(("id" = Uuid, Path), TimelineQuery), security(("bearer" = [])),
    responses((status = 200, body = CustomerView), (status = 404, body = Problem)))]
async fn get_customer(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(q): ApiQuery<TimelineQuery>,
) -> ApiResult<Json<CustomerView>> {
    let limit = q.limit()?;
    let customer = s.store.get_customer(id).await?;
    customer_view(&*s.store, customer, q.after, limit).await
}

async fn customer_view(
    store: &dyn Store,
    customer: Customer,
    after: Option<Uuid>,
    limit: u32,
) -> ApiResult<Json<CustomerView>> {
    let messages = store.customer_messages(customer.id, after, limit).await?;
    Ok(Json(CustomerView {
        next_after: next_after(&messages, limit),
        customer,
        messages,
    }))
}

/// A phone number (E.164) or an email address as Herald keys it.
pub(crate) fn normalize_address(raw: &str, region: Option<&str>) -> ApiResult<String> {
    let raw = raw.trim();
    let parsed = if raw.contains('@') {
        herald_core::EmailAddress::parse(raw)
            .map(Address::Email)
            .map_err(|e| e.to_string())
    } else {
        herald_core::E164::parse(raw, region)
            .map(Address::Phone)
            .map_err(|e| e.to_string())
    };
    parsed
        .map(|a| a.to_string())
        .map_err(|e| ApiError::bad_param("address", e))
}
