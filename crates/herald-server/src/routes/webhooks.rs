//! What providers call: Twilio's voice callbacks. Not under `/api/v1` and without bearer tokens;
//! every request must instead carry a valid `X-Twilio-Signature` (HMAC-SHA1 of Herald's public
//! URL of the request and its form parameters, keyed with the account's auth token). A missing or
//! wrong signature gets 403 and nothing else happens.
//!
//! - `POST /webhooks/twilio/voice?…` — Twilio fetches a call's TwiML here once answering-machine
//!   detection decided (`AnsweredBy`): a machine is left the message; a person hears it and
//!   "Press 1 to speak to an agent." (when the sender's inbox has an agent number).
//! - `POST /webhooks/twilio/voice/gather?…` — the digit pressed: `1` dials the agent.

use crate::AppState;
use crate::error::ApiError;
use axum::Router;
use axum::extract::{OriginalUri, Query, State};
use axum::http::{HeaderMap, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use herald_core::{E164, Language};
use serde::Deserialize;
use uuid::Uuid;

/// How Herald checks Twilio's webhooks.
#[derive(Clone)]
pub struct TwilioWebhooks {
    /// The account's auth token: the key of `X-Twilio-Signature`.
    pub auth_token: String,
    /// Herald's public URL (no trailing slash): Twilio signs the URL it called.
    pub public_url: String,
}

impl std::fmt::Debug for TwilioWebhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwilioWebhooks")
            .field("public_url", &self.public_url)
            .finish_non_exhaustive()
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/twilio/voice", post(voice))
        .route("/twilio/voice/gather", post(gather))
}

#[derive(Debug, Deserialize)]
struct VoiceQuery {
    campaign_id: Uuid,
    outreach_id: Uuid,
    recipient_id: i64,
    language: String,
    body: String,
    agent: Option<String>,
}

#[derive(Debug, Deserialize)]
struct GatherQuery {
    agent: String,
    language: String,
}

/// The form parameters of a request whose Twilio signature is valid; 403 otherwise.
fn verified(
    state: &AppState,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(TwilioWebhooks, Vec<(String, String)>), ApiError> {
    let Some(twilio) = state.twilio.clone() else {
        return Err(ApiError::not_found(
            "Twilio is not configured; add [channels.twilio] to herald.toml",
        ));
    };
    let params: Vec<(String, String)> = url::form_urlencoded::parse(body).into_owned().collect();
    let url = format!(
        "{}{}",
        twilio.public_url,
        uri.path_and_query().map_or("", |p| p.as_str())
    );
    let signature = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if signature.is_empty()
        || !herald_channels::verify_twilio_signature(&twilio.auth_token, &url, &params, signature)
    {
        return Err(ApiError::forbidden(
            "the X-Twilio-Signature header is missing or does not match this request",
        ));
    }
    Ok((twilio, params))
}

fn twiml(xml: String) -> Response {
    ([(header::CONTENT_TYPE, "text/xml; charset=utf-8")], xml).into_response()
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> &'a str {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

fn language(raw: &str) -> Result<Language, ApiError> {
    Language::parse(raw).map_err(|e| ApiError::bad_param("language", e.to_string()))
}

fn agent(raw: &str) -> Result<E164, ApiError> {
    E164::parse(raw, None).map_err(|e| ApiError::bad_param("agent", e.to_string()))
}

async fn voice(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    Query(q): Query<VoiceQuery>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let (twilio, params) = verified(&state, &uri, &headers, &body)?;
    let language = language(&q.language)?;
    let gather = match q.agent.as_deref().filter(|a| !a.is_empty()) {
        Some(raw) => Some(herald_channels::gather_url_for(
            &twilio.public_url,
            q.campaign_id,
            q.outreach_id,
            q.recipient_id,
            &agent(raw)?,
            &language,
        )),
        None => None,
    };
    let answered_by = param(&params, "AnsweredBy");
    tracing::info!(outreach = %q.outreach_id, recipient = q.recipient_id, answered_by, "call answered");
    Ok(twiml(herald_channels::voice_answer_twiml(
        answered_by,
        &q.body,
        &language,
        gather.as_deref(),
    )))
}

async fn gather(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    Query(q): Query<GatherQuery>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let (_, params) = verified(&state, &uri, &headers, &body)?;
    let language = language(&q.language)?;
    let agent = agent(&q.agent)?;
    Ok(twiml(herald_channels::gather_response_twiml(
        param(&params, "Digits"),
        Some(&agent),
        &language,
    )))
}
