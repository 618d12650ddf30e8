//! What providers call: Twilio's messaging and voice callbacks. Not under `/api/v1` and without bearer tokens;
//! every request must instead carry a valid `X-Twilio-Signature` (HMAC-SHA1 of Herald's public
//! URL of the request and its form parameters, keyed with the account's auth token). A missing or
//! wrong signature gets 403 and nothing else happens.
//!
//! Twilio's signature runs the sorted names and values together (`MessageSid` `SM…` signs the
//! same as `MessageSi` `dSM…`), so a captured request can be re-split into a validly signed one
//! without its `MessageSid` — which would dodge the replay check. A signed request is therefore
//! also checked for its shape (`check_shape`) before anything else: only the parameter names
//! Twilio documents for these webhooks, each once, and every `…Sid` of Twilio's form (`SM`/`MM`,
//! `CA`, `AC`, `MG` and 32 lower-case hex digits). Anything else gets 400.
//!
//! - `POST /webhooks/twilio/sms` — a customer's text (`From`, `To`, `Body`, `MessageSid`): routed
//!   to the conversation of the sender whose number it was sent to (see
//!   [`herald_engine::replies`]); STOP/START/HELP are acted on; a replayed `MessageSid` changes
//!   nothing. Answered with TwiML (`<Message>` for HELP).
//! - `POST /webhooks/twilio/status` — a message's (`MessageSid`, `MessageStatus`, `ErrorCode`) or
//!   a call's (`CallSid`, `CallStatus`) status: updates the message and its recipient's delivery
//!   state. A report that arrives before Herald recorded the send is kept and applied then.
//! - `POST /webhooks/twilio/voice?…` — Twilio fetches a call's TwiML here once answering-machine
//!   detection decided (`AnsweredBy`): a machine is left the message; a person hears it and
//!   the campaign's press-one prompt ("Press 1 to speak to an agent." by default) when the
//!   sender's inbox has an agent number.
//! - `POST /webhooks/twilio/voice/gather?…` — the digit pressed: `1` dials the agent.
//! - `POST /webhooks/twilio/voice/dialed?…` — the outcome of that `<Dial>` (`DialCallStatus`):
//!   when the agent did not take the call, the campaign's agent-unavailable message.
//!
//! The voice callbacks speak as the campaign says (voice, spoken language, prompts: its
//! `voice_settings`), read by the campaign id the signed URL carries.

use crate::AppState;
use crate::error::ApiError;
use axum::Router;
use axum::extract::{OriginalUri, Query, State};
use axum::http::{HeaderMap, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use herald_core::outreach::DeliveryState;
use herald_core::{Channel, E164, Language};
use herald_store::{StatusApplied, StatusReport};
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
        .route("/twilio/sms", post(inbound_sms))
        .route("/twilio/status", post(status))
        .route("/twilio/voice", post(voice))
        .route("/twilio/voice/gather", post(gather))
        .route("/twilio/voice/dialed", post(dialed))
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
    campaign_id: Uuid,
    agent: String,
    language: String,
}

#[derive(Debug, Deserialize)]
struct DialedQuery {
    campaign_id: Uuid,
    language: String,
}

/// Which webhook a request is, for the parameters it must carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hook {
    InboundMessage,
    Status,
    Voice,
}

/// The parameters Twilio documents for its inbound-message, message status, call status and
/// voice (TwiML fetch, answering-machine detection, `<Gather>`) webhooks. `MediaUrl{N}` and
/// `MediaContentType{N}` are matched by prefix ([`known_param`]).
const TWILIO_PARAMS: &[&str] = &[
    // Every webhook.
    "AccountSid",
    "ApiVersion",
    "From",
    "To",
    "FromCity",
    "FromState",
    "FromZip",
    "FromCountry",
    "ToCity",
    "ToState",
    "ToZip",
    "ToCountry",
    // Messaging: an incoming message.
    "MessageSid",
    "SmsSid",
    "SmsMessageSid",
    "SmsStatus",
    "MessagingServiceSid",
    "Body",
    "NumMedia",
    "NumSegments",
    "MessageType",
    "ProfileName",
    "WaId",
    "Forwarded",
    "FrequentlyForwarded",
    "ButtonText",
    "ButtonPayload",
    "Latitude",
    "Longitude",
    "Address",
    "Label",
    "OptOutType",
    "AddOns",
    "ChannelMetadata",
    "OriginalRepliedMessageSender",
    "OriginalRepliedMessageSid",
    "ReferralNumMedia",
    "ReferralBody",
    "ReferralHeadline",
    "ReferralSourceId",
    "ReferralSourceType",
    "ReferralSourceUrl",
    "ReferralMediaId",
    "ReferralMediaContentType",
    "ReferralMediaUrl",
    "ReferralCtwaClid",
    // Messaging: a status callback.
    "MessageStatus",
    "ErrorCode",
    "ErrorMessage",
    "RawDlrDoneDate",
    "ChannelInstallSid",
    "ChannelPrefix",
    "ChannelToAddress",
    "StructuredMessage",
    // Voice: the call, its status callbacks, answering-machine detection, <Gather>.
    "CallSid",
    "CallStatus",
    "CallToken",
    "Direction",
    "ForwardedFrom",
    "CallerName",
    "ParentCallSid",
    "Caller",
    "CallerCity",
    "CallerState",
    "CallerZip",
    "CallerCountry",
    "Called",
    "CalledCity",
    "CalledState",
    "CalledZip",
    "CalledCountry",
    "StirVerstat",
    "StirPassportToken",
    "AnsweredBy",
    "MachineDetectionDuration",
    "CallDuration",
    "Duration",
    "SipResponseCode",
    "RecordingUrl",
    "RecordingSid",
    "RecordingDuration",
    "Timestamp",
    "CallbackSource",
    "SequenceNumber",
    "QueueTime",
    "Digits",
    "FinishedOnKey",
    "DialCallStatus",
    "DialCallSid",
    "DialCallDuration",
    "DialBridged",
    "SpeechResult",
    "Confidence",
    "msg",
];

fn known_param(name: &str) -> bool {
    if TWILIO_PARAMS.contains(&name) {
        return true;
    }
    ["MediaUrl", "MediaContentType"].iter().any(|prefix| {
        name.strip_prefix(prefix)
            .is_some_and(|n| !n.is_empty() && n.len() <= 2 && n.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// The prefixes a Twilio sid parameter may have: `SM` + 32 lower-case hex digits, ...
fn sid_prefixes(name: &str) -> Option<&'static [&'static str]> {
    Some(match name {
        "MessageSid" | "SmsSid" | "SmsMessageSid" | "OriginalRepliedMessageSid" => &["SM", "MM"],
        "CallSid" | "ParentCallSid" | "DialCallSid" => &["CA"],
        "AccountSid" => &["AC"],
        "MessagingServiceSid" => &["MG"],
        "RecordingSid" => &["RE"],
        _ => return None,
    })
}

fn is_sid(value: &str, prefixes: &[&str]) -> bool {
    prefixes.iter().any(|p| {
        value.strip_prefix(p).is_some_and(|hex| {
            hex.len() == 32 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        })
    })
}

/// A signed request's parameters are Twilio's, each once and of Twilio's form, and the sids the
/// webhook needs are there (see the module docs); 400 naming the parameter otherwise.
fn check_shape(hook: Hook, params: &[(String, String)]) -> Result<(), ApiError> {
    let mut seen = std::collections::HashSet::new();
    for (name, value) in params {
        if !known_param(name) {
            let shown: String = name.chars().take(64).collect();
            return Err(ApiError::bad_param(
                shown.clone(),
                format!(
                    "`{shown}` is not a parameter of Twilio's webhooks; this request was not made                      by Twilio as it was signed, and changed nothing"
                ),
            ));
        }
        if !seen.insert(name.as_str()) {
            return Err(ApiError::bad_param(
                name.clone(),
                "is given twice; Twilio sends each parameter once, so the request changed nothing",
            ));
        }
        if let Some(prefixes) = sid_prefixes(name)
            && !is_sid(value, prefixes)
        {
            return Err(ApiError::bad_param(
                name.clone(),
                format!(
                    "is not a Twilio sid ({} and 32 lower-case hex digits); the request changed nothing",
                    prefixes.join(" or ")
                ),
            ));
        }
    }
    let has = |name: &str| seen.contains(name);
    let missing = if !has("AccountSid") {
        Some("AccountSid")
    } else {
        match hook {
            Hook::InboundMessage if !has("MessageSid") => Some("MessageSid"),
            Hook::Status if !has("MessageSid") && !has("CallSid") => Some("MessageSid"),
            Hook::Voice if !has("CallSid") => Some("CallSid"),
            _ => None,
        }
    };
    match missing {
        Some(name) => Err(ApiError::bad_param(
            name,
            "is missing; Twilio sends it with every request to this webhook, so the request changed nothing",
        )),
        None => Ok(()),
    }
}

/// The form parameters of a request whose Twilio signature is valid (403 otherwise) and whose
/// parameters have the shape of `hook`'s (400 otherwise, see [`check_shape`]).
fn verified(
    state: &AppState,
    hook: Hook,
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
    check_shape(hook, &params)?;
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

/// How the campaign's calls speak. The callbacks carry only the campaign's id (and its
/// language), so long prompts never lengthen a URL; a campaign deleted since the call was
/// placed speaks with the defaults.
async fn speech(
    state: &AppState,
    campaign_id: Uuid,
    language: &Language,
) -> herald_channels::Speech {
    let settings = match state.store.get_campaign(campaign_id).await {
        Ok(campaign) => campaign.voice_settings,
        Err(e) => {
            tracing::warn!(campaign = %campaign_id, error = %e, "a call's campaign could not be read; speaking with the defaults");
            herald_core::VoiceSettings::default()
        }
    };
    herald_channels::Speech::new(language, &settings)
}

async fn voice(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    Query(q): Query<VoiceQuery>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let (twilio, params) = verified(&state, Hook::Voice, &uri, &headers, &body)?;
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
    let speech = speech(&state, q.campaign_id, &language).await;
    Ok(twiml(herald_channels::voice_answer_twiml(
        answered_by,
        &q.body,
        &speech,
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
    let (twilio, params) = verified(&state, Hook::Voice, &uri, &headers, &body)?;
    let language = language(&q.language)?;
    let agent = agent(&q.agent)?;
    let speech = speech(&state, q.campaign_id, &language).await;
    let dialed = herald_channels::dialed_url(&twilio.public_url, q.campaign_id, &language);
    Ok(twiml(herald_channels::gather_response_twiml(
        param(&params, "Digits"),
        Some(&agent),
        &speech,
        Some(&dialed),
    )))
}

/// The outcome of the `<Dial>` to the agent: when nobody took the call, the campaign's
/// agent-unavailable message.
async fn dialed(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    Query(q): Query<DialedQuery>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let (_, params) = verified(&state, Hook::Voice, &uri, &headers, &body)?;
    let language = language(&q.language)?;
    let status = param(&params, "DialCallStatus");
    tracing::info!(campaign = %q.campaign_id, status, "call to the agent ended");
    let speech = speech(&state, q.campaign_id, &language).await;
    Ok(twiml(herald_channels::dialed_response_twiml(
        status, &speech,
    )))
}

/// `<Response/>`, or `<Response><Message>text</Message></Response>`.
fn message_twiml(reply: Option<&str>) -> Response {
    twiml(match reply {
        Some(text) => format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Message>{}</Message></Response>",
            herald_channels::xml_escape(text)
        ),
        None => "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response/>".to_string(),
    })
}

async fn inbound_sms(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let (_, params) = verified(&state, Hook::InboundMessage, &uri, &headers, &body)?;
    let to_raw = param(&params, "To");
    let to = E164::parse(to_raw, None)
        .map_err(|e| ApiError::bad_param("To", format!("`{to_raw}`: {e}")))?;
    let from_raw = param(&params, "From");
    let from = E164::parse(from_raw, None)
        .map_err(|e| ApiError::bad_param("From", format!("`{from_raw}`: {e}")))?;
    let Some(sender) = state.store.find_sender(Channel::Sms, to.as_str()).await? else {
        tracing::warn!(to = %to, "an SMS arrived for a number that is not an SMS sender");
        return Err(ApiError::not_found(format!(
            "no SMS sender has the number {to}; add it under /api/v1/senders so its replies reach an inbox"
        )));
    };
    let sid = Some(param(&params, "MessageSid")).filter(|s| !s.is_empty());
    let inbound = state
        .replies
        .receive_sms(
            &sender,
            &from,
            param(&params, "Body"),
            sid,
            state.clock.now(),
        )
        .await?;
    tracing::info!(
        conversation = %inbound.received.conversation.id,
        duplicate = inbound.received.duplicate,
        attributed = inbound.received.attributed.is_some(),
        keyword = inbound.keyword.map(|k| k.as_str()),
        "inbound SMS"
    );
    Ok(message_twiml(inbound.auto_reply.as_deref()))
}

/// Twilio's message and call statuses in Herald's words; `None` for the ones on the way
/// (`queued`, `sending`, `ringing`, ...), which change nothing.
fn reported_state(status: &str) -> Option<DeliveryState> {
    match status {
        "sent" => Some(DeliveryState::Sent),
        "delivered" | "read" | "completed" => Some(DeliveryState::Delivered),
        "undelivered" | "busy" | "no-answer" => Some(DeliveryState::Undelivered),
        "failed" | "canceled" => Some(DeliveryState::Failed),
        _ => None,
    }
}

async fn status(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let (_, params) = verified(&state, Hook::Status, &uri, &headers, &body)?;
    let (sid, status) = match param(&params, "MessageSid") {
        "" => (param(&params, "CallSid"), param(&params, "CallStatus")),
        sid => (sid, param(&params, "MessageStatus")),
    };
    if sid.is_empty() {
        return Err(ApiError::bad_param(
            "MessageSid",
            "is missing (and so is CallSid)",
        ));
    }
    let Some(reported) = reported_state(status) else {
        return Ok(axum::http::StatusCode::NO_CONTENT.into_response());
    };
    let error_code = Some(param(&params, "ErrorCode"))
        .filter(|c| !c.is_empty() && *c != "0")
        .map(str::to_string);
    let error_message = error_code.as_deref().map(twilio_error_text).or_else(|| {
        matches!(reported, DeliveryState::Undelivered | DeliveryState::Failed)
            .then(|| format!("Twilio reports the message {status}"))
    });
    let applied = state
        .store
        .apply_status(&StatusReport {
            provider_message_id: sid.to_string(),
            state: reported,
            error_code,
            error_message,
            at: state.clock.now(),
        })
        .await?;
    tracing::debug!(sid, status, ?applied, "provider status");
    if applied == StatusApplied::Kept {
        tracing::info!(
            sid,
            status,
            "status report for a send not recorded yet; kept for it"
        );
    }
    Ok(axum::http::StatusCode::NO_CONTENT.into_response())
}

/// Words for Twilio's delivery error codes (the ones a status callback carries).
fn twilio_error_text(code: &str) -> String {
    let text = match code {
        "30001" => "queue overflow at Twilio",
        "30002" => "the Twilio account is suspended",
        "30003" => "the handset is unreachable (off or out of coverage)",
        "30004" => "the message was blocked (the number cannot receive it, or blocked the sender)",
        "30005" => "the number is unknown or no longer exists",
        "30006" => "the number is a landline or cannot receive texts",
        "30007" => "the carrier filtered the message as spam",
        "30008" => "the carrier reported an unknown error",
        "30034" => "the sender number is not registered for A2P 10DLC",
        "21610" => "the recipient opted out (replied STOP)",
        _ => "Twilio reported an error",
    };
    format!("{text} (Twilio {code})")
}
