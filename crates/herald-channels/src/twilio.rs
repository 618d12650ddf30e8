//! SMS and voice through Twilio's REST API (or anything that speaks it, such as a test's fake).
//!
//! - SMS: `POST {base}/2010-04-01/Accounts/{sid}/Messages.json` with `To`, `From`, `Body` and,
//!   when configured, `StatusCallback`.
//! - Voice: `POST {base}/2010-04-01/Accounts/{sid}/Calls.json` with `To`, `From`, `Twiml`,
//!   `MachineDetection=Enable` and `StatusCallback`.
//!
//! Both use HTTP basic auth (`account_sid:auth_token`); a `201` answer's `sid` becomes the
//! provider message id.
//!
//! # Voice calls
//!
//! When a call is created nobody knows yet who will answer. With a public callback URL the call
//! is created with `Url={voice_callback_base}/webhooks/twilio/voice?…` ([`voice_answer_url`]) and
//! `MachineDetection=Enable`: Twilio first listens to who picked up, then fetches the TwiML from
//! Herald with `AnsweredBy` set, and the server answers with [`voice_answer_twiml`]: an answering
//! machine (`machine_*`, `fax`) is left the message only ([`voice_twiml_machine`]); a person hears
//! the message, then "Press 1 to speak to an agent." ([`voice_twiml_person`]), whose digit Twilio
//! posts to `{voice_callback_base}/webhooks/twilio/voice/gather?…` ([`gather_action_url`]),
//! answered with [`gather_response_twiml`] (a `<Dial>` to the agent number on `1`, whose outcome
//! Twilio posts to [`dialed_url`], answered with [`dialed_response_twiml`]: the agent-unavailable
//! message when nobody took the call). The URLs carry what the answers need (message, language,
//! agent number, campaign id); Twilio signs the full URL with the account's auth token, so the
//! server can trust them after [`verify_twilio_signature`]. How a call speaks ([`Speech`]: the
//! `<Say>` voice and language, the prompts) comes from the campaign's
//! [`VoiceSettings`]: in the message for the inline TwiML, read by
//! the campaign id in the callbacks, so long prompts never lengthen a URL.
//!
//! Without a public callback URL (or when the message is too long for a URL) the call carries
//! inline TwiML: the message only, or — with an agent number and a callback base — the person's
//! version.
//!
//! # Errors
//!
//! HTTP 429 and 5xx are [`SendError::Transient`] (with `Retry-After`, seconds or HTTP date);
//! timeouts and connection failures too. Other 4xx are [`SendError::Permanent`] with Twilio's
//! numeric `code` (21610: the recipient opted out, see [`SendError::is_opted_out`]; 21211: invalid
//! number) and its `message`.
//!
//! # Webhook signatures
//!
//! [`twilio_signature`] and [`verify_twilio_signature`] implement `X-Twilio-Signature` for the
//! server's webhook handlers.

use crate::config::{ConfigError, TwilioConfig, http_url};
use crate::http::{HttpClient, HttpResponse, basic_auth, body_excerpt, retry_after};
use crate::{Accepted, OutboundMessage, SendError, Transport, codes, unsupported};
use async_trait::async_trait;
use base64::Engine;
use bytes::Bytes;
use herald_core::{Address, Channel, E164, Language, VoiceSettings};
use hmac::{Hmac, KeyInit, Mac};
use http::{Request, StatusCode, Uri, header};
use http_body_util::Full;
use sha1::Sha1;
use std::fmt;
use uuid::Uuid;

/// Twilio refuses inline TwiML longer than this many characters.
pub const MAX_TWIML_CHARS: usize = 4000;
/// Twilio refuses callback URLs longer than this many characters.
pub const MAX_URL_CHARS: usize = 4000;

/// Sends SMS and places voice calls through Twilio.
pub struct TwilioTransport {
    http: HttpClient,
    messages_uri: Uri,
    calls_uri: Uri,
    account_sid: String,
    authorization: http::HeaderValue,
    status_callback_url: Option<String>,
    voice_callback_base: Option<String>,
}

impl fmt::Debug for TwilioTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwilioTransport")
            .field("messages_uri", &self.messages_uri)
            .field("calls_uri", &self.calls_uri)
            .field("account_sid", &self.account_sid)
            .field("auth_token", &"***")
            .field("status_callback_url", &self.status_callback_url)
            .field("voice_callback_base", &self.voice_callback_base)
            .finish_non_exhaustive()
    }
}

impl TwilioTransport {
    pub fn new(config: &TwilioConfig) -> Result<Self, ConfigError> {
        let sid = config.account_sid.trim();
        if sid.is_empty() || !sid.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(ConfigError::Invalid {
                field: "twilio.account_sid",
                reason: "must be the account SID (letters and digits, like AC0123…)".to_string(),
            });
        }
        if config.auth_token.is_empty() {
            return Err(ConfigError::Invalid {
                field: "twilio.auth_token",
                reason: "is empty".to_string(),
            });
        }
        let base = http_url("twilio.base_url", &config.base_url)?;
        let base = base.as_str().trim_end_matches('/');
        let uri = |resource: &str| -> Result<Uri, ConfigError> {
            format!("{base}/2010-04-01/Accounts/{sid}/{resource}.json")
                .parse::<Uri>()
                .map_err(|e| ConfigError::InvalidUrl {
                    field: "twilio.base_url",
                    value: crate::config::redact_url(base),
                    reason: e.to_string(),
                })
        };
        if let Some(url) = &config.status_callback_url {
            http_url("twilio.status_callback_url", url)?;
        }
        if let Some(url) = &config.voice_callback_base {
            http_url("twilio.voice_callback_base", url)?;
        }
        let http =
            HttpClient::new(config.timeouts()).map_err(|e| ConfigError::Tls(e.to_string()))?;
        Ok(Self {
            http,
            messages_uri: uri("Messages")?,
            calls_uri: uri("Calls")?,
            account_sid: sid.to_string(),
            authorization: basic_auth(sid, config.auth_token.expose()),
            status_callback_url: config.status_callback_url.clone(),
            voice_callback_base: config
                .voice_callback_base
                .as_deref()
                .map(|b| b.trim_end_matches('/').to_string()),
        })
    }

    /// The form fields of an SMS, in the order they are sent.
    pub fn sms_form(
        &self,
        msg: &OutboundMessage,
    ) -> Result<Vec<(&'static str, String)>, SendError> {
        let (from, to) = phones(msg)?;
        let mut form = vec![
            ("To", to.to_string()),
            ("From", from.to_string()),
            ("Body", msg.body.clone()),
        ];
        if let Some(cb) = &self.status_callback_url {
            form.push(("StatusCallback", cb.clone()));
        }
        Ok(form)
    }

    /// The inline TwiML of a call that cannot use [`voice_answer_url`]: for a person when the
    /// message has an agent number and a voice callback base is configured, else the message only.
    pub fn voice_twiml(&self, msg: &OutboundMessage) -> String {
        let speech = Speech::new(&msg.language, &msg.voice_settings);
        match (&self.voice_callback_base, &msg.agent_number) {
            (Some(base), Some(agent)) => {
                voice_twiml_person(&msg.body, &speech, &gather_action_url(base, msg, agent))
            }
            _ => voice_twiml_machine(&msg.body, &speech),
        }
    }

    /// The form fields of a call, in the order they are sent.
    pub fn voice_form(
        &self,
        msg: &OutboundMessage,
    ) -> Result<Vec<(&'static str, String)>, SendError> {
        let (from, to) = phones(msg)?;
        let twiml = self.voice_twiml(msg);
        let length = twiml.chars().count();
        if length > MAX_TWIML_CHARS {
            return Err(SendError::permanent(
                codes::INVALID_MESSAGE,
                format!(
                    "the call's TwiML is {length} characters; Twilio takes at most {MAX_TWIML_CHARS}: shorten the message"
                ),
            ));
        }
        let answer_url = self
            .voice_callback_base
            .as_deref()
            .map(|base| voice_answer_url(base, msg))
            .filter(|url| url.len() <= MAX_URL_CHARS);
        let mut form = vec![("To", to.to_string()), ("From", from.to_string())];
        match answer_url {
            Some(url) => {
                form.push(("Url", url));
                form.push(("Method", "POST".to_string()));
            }
            None => form.push(("Twiml", twiml)),
        }
        form.push(("MachineDetection", "Enable".to_string()));
        if let Some(cb) = &self.status_callback_url {
            form.push(("StatusCallback", cb.clone()));
        }
        Ok(form)
    }

    async fn post(
        &self,
        uri: &Uri,
        form: &[(&'static str, String)],
    ) -> Result<Accepted, SendError> {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form.iter().map(|(k, v)| (*k, v.as_str())))
            .finish();
        let request = Request::post(uri.clone())
            .header(header::AUTHORIZATION, self.authorization.clone())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "application/json")
            .header(
                header::USER_AGENT,
                concat!("herald/", env!("CARGO_PKG_VERSION")),
            )
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| SendError::permanent(codes::INVALID_MESSAGE, e.to_string()))?;
        let response = self.http.send(request).await?;
        outcome(&response)
    }
}

fn phones(msg: &OutboundMessage) -> Result<(&E164, &E164), SendError> {
    fn phone<'a>(role: &str, address: &'a Address) -> Result<&'a E164, SendError> {
        match address {
            Address::Phone(p) => Ok(p),
            Address::Email(e) => Err(SendError::permanent(
                codes::INVALID_ADDRESS,
                format!("the {role} `{e}` is not a phone number"),
            )),
        }
    }
    Ok((phone("sender", &msg.from)?, phone("recipient", &msg.to)?))
}

/// Reads Twilio's answer: 2xx accepted (with `sid`), 429/5xx transient, other statuses permanent.
fn outcome(response: &HttpResponse) -> Result<Accepted, SendError> {
    let json: Option<serde_json::Value> = serde_json::from_slice(&response.body).ok();
    let status = response.status;
    if status.is_success() {
        let sid = json
            .as_ref()
            .and_then(|j| j.get("sid"))
            .and_then(|s| s.as_str())
            .map(str::to_string);
        if sid.is_none() {
            // Twilio took it; not knowing its sid is no reason to send it again.
            tracing::warn!(status = %status, "Twilio accepted the request without a sid");
        }
        return Ok(Accepted {
            provider_message_id: sid,
        });
    }
    let code = json.as_ref().and_then(|j| match j.get("code") {
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        Some(serde_json::Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    });
    let message = json
        .as_ref()
        .and_then(|j| j.get("message"))
        .and_then(|m| m.as_str())
        .map(str::to_string)
        .unwrap_or_else(|| format!("HTTP {status}: {}", body_excerpt(&response.body)));
    let code = Some(code.unwrap_or_else(|| status.as_str().to_string()));
    if status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.is_server_error()
    {
        Err(SendError::Transient {
            code,
            message,
            retry_after: retry_after(&response.headers),
        })
    } else {
        Err(SendError::Permanent { code, message })
    }
}

#[async_trait]
impl Transport for TwilioTransport {
    fn name(&self) -> &'static str {
        "twilio"
    }

    fn supports(&self, channel: Channel) -> bool {
        channel.is_phone()
    }

    #[tracing::instrument(
        name = "twilio.send",
        skip_all,
        fields(
            campaign_id = %msg.campaign_id,
            outreach_id = %msg.outreach_id,
            recipient_id = %msg.recipient_id,
            channel = %msg.channel,
        )
    )]
    async fn send(&self, msg: &OutboundMessage) -> Result<Accepted, SendError> {
        let result = match msg.channel {
            Channel::Sms => {
                let form = self.sms_form(msg)?;
                self.post(&self.messages_uri, &form).await
            }
            Channel::Voice => {
                let form = self.voice_form(msg)?;
                self.post(&self.calls_uri, &form).await
            }
            other => return Err(unsupported(self.name(), other)),
        };
        match &result {
            Ok(a) => tracing::debug!(sid = ?a.provider_message_id, "Twilio accepted"),
            Err(e) => tracing::warn!(error = %e, "Twilio did not accept"),
        }
        result
    }
}

/// Escapes text for XML content and attribute values.
pub fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Characters XML 1.0 cannot hold at all.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// What a call says around the message, in a few languages (English otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VoicePrompts {
    pub press_one: &'static str,
    pub connecting: &'static str,
    pub goodbye: &'static str,
    pub agent_unavailable: &'static str,
}

/// The prompts for a language, chosen by its primary subtag; English for the rest.
pub fn voice_prompts(language: &Language) -> VoicePrompts {
    match language.primary() {
        "es" => VoicePrompts {
            press_one: "Pulse 1 para hablar con un agente.",
            connecting: "Le comunicamos con un agente.",
            goodbye: "Adiós.",
            agent_unavailable: "Lo sentimos, ningún agente está disponible ahora. Adiós.",
        },
        "fr" => VoicePrompts {
            press_one: "Appuyez sur 1 pour parler à un conseiller.",
            connecting: "Nous vous mettons en relation avec un conseiller.",
            goodbye: "Au revoir.",
            agent_unavailable: "Désolé, aucun conseiller n'est disponible pour le moment. Au revoir.",
        },
        "de" => VoicePrompts {
            press_one: "Drücken Sie die 1, um mit einem Mitarbeiter zu sprechen.",
            connecting: "Sie werden mit einem Mitarbeiter verbunden.",
            goodbye: "Auf Wiederhören.",
            agent_unavailable: "Leider ist gerade kein Mitarbeiter erreichbar. Auf Wiederhören.",
        },
        "pt" => VoicePrompts {
            press_one: "Pressione 1 para falar com um atendente.",
            connecting: "Estamos transferindo você para um atendente.",
            goodbye: "Até logo.",
            agent_unavailable: "Desculpe, nenhum atendente está disponível agora. Até logo.",
        },
        "it" => VoicePrompts {
            press_one: "Premi 1 per parlare con un operatore.",
            connecting: "Ti mettiamo in contatto con un operatore.",
            goodbye: "Arrivederci.",
            agent_unavailable: "Spiacenti, nessun operatore è disponibile ora. Arrivederci.",
        },
        _ => VoicePrompts {
            press_one: "Press 1 to speak to an agent.",
            connecting: "Connecting you to an agent.",
            goodbye: "Goodbye.",
            agent_unavailable: "Sorry, no agent is available right now. Goodbye.",
        },
    }
}

/// How one call speaks: the `<Say>` attributes and the prompts, from the campaign's language
/// and its [`VoiceSettings`] (each absent setting takes its default: the campaign's language,
/// Twilio's voice for it, the prompts of [`voice_prompts`] in the spoken language).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Speech {
    pub language: String,
    pub voice: Option<String>,
    pub press_one: String,
    pub connecting: String,
    pub goodbye: String,
    pub agent_unavailable: String,
}

impl Speech {
    pub fn new(language: &Language, settings: &VoiceSettings) -> Self {
        let spoken = settings
            .spoken_language
            .as_deref()
            .and_then(|l| Language::parse(l).ok())
            .unwrap_or_else(|| language.clone());
        let defaults = voice_prompts(&spoken);
        let text = |set: &Option<String>, default: &str| {
            set.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .unwrap_or(default)
                .to_string()
        };
        Speech {
            language: spoken.as_str().to_string(),
            voice: settings
                .voice
                .as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            press_one: text(&settings.press_one_prompt, defaults.press_one),
            connecting: defaults.connecting.to_string(),
            goodbye: defaults.goodbye.to_string(),
            agent_unavailable: text(&settings.agent_unavailable, defaults.agent_unavailable),
        }
    }

    /// `<Say language="…" voice="…">text</Say>`, every value escaped.
    pub fn say(&self, text: &str) -> String {
        let voice = self
            .voice
            .as_deref()
            .map(|v| format!(" voice=\"{}\"", xml_escape(v)))
            .unwrap_or_default();
        format!(
            "<Say language=\"{}\"{voice}>{}</Say>",
            xml_escape(&self.language),
            xml_escape(text)
        )
    }
}

/// TwiML for an answering machine (and for calls that cannot offer an agent): the message only.
///
/// `<Response><Say language="en-US">{body}</Say></Response>`
pub fn voice_twiml_machine(body: &str, speech: &Speech) -> String {
    format!("<Response>{}</Response>", speech.say(body))
}

/// TwiML for a person: the message, then one digit gathered with the press-one prompt ("Press 1
/// to speak to an agent." unless the campaign has its own) posted to `gather_action_url`.
///
/// `<Response><Say language="en-US">{body}</Say><Gather numDigits="1" timeout="5"
/// action="{url}" method="POST"><Say language="en-US">Press 1 to speak to an agent.</Say></Gather>
/// </Response>` (on one line)
pub fn voice_twiml_person(body: &str, speech: &Speech, gather_action_url: &str) -> String {
    format!(
        "<Response>{}<Gather numDigits=\"1\" timeout=\"5\" action=\"{}\" method=\"POST\">{}</Gather></Response>",
        speech.say(body),
        xml_escape(gather_action_url),
        speech.say(&speech.press_one),
    )
}

/// The answer to Twilio's gather callback: on `1` with an agent number, "Connecting you to an
/// agent." and `<Dial>` to it (whose outcome Twilio posts to `dialed_url`, see
/// [`dialed_response_twiml`]); otherwise "Goodbye." and hang up.
pub fn gather_response_twiml(
    digits: &str,
    agent_number: Option<&E164>,
    speech: &Speech,
    dialed_url: Option<&str>,
) -> String {
    match agent_number {
        Some(agent) if digits.trim() == "1" => {
            let action = dialed_url
                .map(|u| format!(" action=\"{}\" method=\"POST\"", xml_escape(u)))
                .unwrap_or_default();
            format!(
                "<Response>{}<Dial{action}>{}</Dial></Response>",
                speech.say(&speech.connecting),
                xml_escape(agent.as_str()),
            )
        }
        _ => format!(
            "<Response>{}<Hangup/></Response>",
            speech.say(&speech.goodbye)
        ),
    }
}

/// The answer to the `<Dial>`'s action: when the agent did not take the call
/// (`DialCallStatus` busy, no-answer, failed or canceled) the agent-unavailable message, then
/// hang up; after a call that took place, hang up.
pub fn dialed_response_twiml(dial_call_status: &str, speech: &Speech) -> String {
    match dial_call_status.trim() {
        "completed" | "answered" => "<Response><Hangup/></Response>".to_string(),
        _ => format!(
            "<Response>{}<Hangup/></Response>",
            speech.say(&speech.agent_unavailable)
        ),
    }
}

/// Where Twilio fetches a call's TwiML once it knows who answered:
/// `{base}/webhooks/twilio/voice?outreach_id=…&recipient_id=42&language=…&body=…[&agent=%2B…]`.
/// Twilio signs the full URL, so the server can trust the values after
/// [`verify_twilio_signature`].
pub fn voice_answer_url(base: &str, msg: &OutboundMessage) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query
        .append_pair("campaign_id", &msg.campaign_id.to_string())
        .append_pair("outreach_id", &msg.outreach_id.to_string())
        .append_pair("recipient_id", &msg.recipient_id.to_string())
        .append_pair("language", msg.language.as_str())
        .append_pair("body", &msg.body);
    if let Some(agent) = &msg.agent_number {
        query.append_pair("agent", agent.as_str());
    }
    format!(
        "{}/webhooks/twilio/voice?{}",
        base.trim_end_matches('/'),
        query.finish()
    )
}

/// Whether Twilio's `AnsweredBy` says a machine (or a fax) picked up.
pub fn answered_by_machine(answered_by: &str) -> bool {
    let a = answered_by.trim();
    a.starts_with("machine") || a == "fax"
}

/// The TwiML for [`voice_answer_url`]: a machine gets the message only; a person the message and,
/// when there is an agent number, "Press 1 to speak to an agent." gathered to `gather_url`.
pub fn voice_answer_twiml(
    answered_by: &str,
    body: &str,
    speech: &Speech,
    gather_url: Option<&str>,
) -> String {
    match gather_url {
        Some(url) if !answered_by_machine(answered_by) => voice_twiml_person(body, speech, url),
        _ => voice_twiml_machine(body, speech),
    }
}

/// Where Twilio posts the outcome of the `<Dial>` to the agent:
/// `{base}/webhooks/twilio/voice/dialed?campaign_id=…&language=…`.
pub fn dialed_url(base: &str, campaign_id: Uuid, language: &Language) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("campaign_id", &campaign_id.to_string())
        .append_pair("language", language.as_str())
        .finish();
    format!(
        "{}/webhooks/twilio/voice/dialed?{query}",
        base.trim_end_matches('/')
    )
}

/// [`gather_action_url`] from the values of a [`voice_answer_url`].
pub fn gather_url_for(
    base: &str,
    campaign_id: Uuid,
    outreach_id: Uuid,
    recipient_id: i64,
    agent: &E164,
    language: &Language,
) -> String {
    gather_url(
        base,
        campaign_id,
        outreach_id,
        recipient_id,
        agent,
        language,
    )
}

/// Where Twilio posts the digit a person pressed:
/// `{base}/webhooks/twilio/voice/gather?campaign_id=…&outreach_id=…&recipient_id=42&agent=%2B…&language=…`
/// (the campaign and outreach as hyphenated UUIDs, the recipient's store id in decimal).
/// The query carries what [`gather_response_twiml`] needs, so the handler needs no lookup; Twilio
/// signs the full URL, so [`verify_twilio_signature`] also protects these values.
pub fn gather_action_url(base: &str, msg: &OutboundMessage, agent: &E164) -> String {
    gather_url(
        base,
        msg.campaign_id,
        msg.outreach_id,
        msg.recipient_id,
        agent,
        &msg.language,
    )
}

fn gather_url(
    base: &str,
    campaign_id: Uuid,
    outreach_id: Uuid,
    recipient_id: i64,
    agent: &E164,
    language: &Language,
) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("campaign_id", &campaign_id.to_string())
        .append_pair("outreach_id", &outreach_id.to_string())
        .append_pair("recipient_id", &recipient_id.to_string())
        .append_pair("agent", agent.as_str())
        .append_pair("language", language.as_str())
        .finish();
    format!(
        "{}/webhooks/twilio/voice/gather?{query}",
        base.trim_end_matches('/')
    )
}

fn hmac_sha1(key: &[u8], data: &[u8]) -> Option<Hmac<Sha1>> {
    // HMAC takes keys of any length, so this never fails.
    let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(key).ok()?;
    mac.update(data);
    Some(mac)
}

fn signed_data(url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut data = String::from(url);
    for (k, v) in sorted {
        data.push_str(k);
        data.push_str(v);
    }
    data
}

/// `X-Twilio-Signature`: base64(HMAC-SHA1(auth token, URL + each POST parameter as key+value,
/// sorted by key)). `url` is the full URL Twilio requested, query string included.
pub fn twilio_signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let data = signed_data(url, params);
    match hmac_sha1(auth_token.as_bytes(), data.as_bytes()) {
        Some(mac) => base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()),
        None => String::new(),
    }
}

/// Whether `signature` (the `X-Twilio-Signature` header) is right for this URL and these
/// parameters. Compares in constant time; a missing or malformed signature is simply wrong.
pub fn verify_twilio_signature(
    auth_token: &str,
    url: &str,
    params: &[(String, String)],
    signature: &str,
) -> bool {
    let Ok(given) = base64::engine::general_purpose::STANDARD.decode(signature.trim()) else {
        return false;
    };
    let data = signed_data(url, params);
    match hmac_sha1(auth_token.as_bytes(), data.as_bytes()) {
        Some(mac) => mac.verify_slice(&given).is_ok(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";

    #[test]
    fn signature_matches_twilios_documented_example() {
        // Twilio's example (api-snippets, security/signature_validation): checked with Python's
        // hmac module too.
        let params = p(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675310"),
            ("Digits", "1234"),
            ("From", "+14158675310"),
            ("To", "+18005551212"),
        ]);
        assert_eq!(
            twilio_signature("12345", URL, &params),
            "GvWf1cFY/Q7PnoempGyD5oXAezc="
        );
        assert!(verify_twilio_signature(
            "12345",
            URL,
            &params,
            "GvWf1cFY/Q7PnoempGyD5oXAezc="
        ));
        // The same parameters with the other caller number of Twilio's docs page.
        let params = p(&[
            ("To", "+18005551212"),
            ("Digits", "1234"),
            ("CallSid", "CA1234567890ABCDE"),
            ("From", "+12349013030"),
            ("Caller", "+12349013030"),
        ]);
        assert_eq!(
            twilio_signature("12345", URL, &params),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        );
    }

    #[test]
    fn wrong_signatures_are_refused() {
        let params = p(&[("Body", "STOP"), ("From", "+14155550100")]);
        let good = twilio_signature(
            "token",
            "https://h.example.com/webhooks/twilio/sms",
            &params,
        );
        assert!(verify_twilio_signature(
            "token",
            "https://h.example.com/webhooks/twilio/sms",
            &params,
            &good
        ));
        for (token, url, sig) in [
            (
                "other",
                "https://h.example.com/webhooks/twilio/sms",
                good.as_str(),
            ),
            (
                "token",
                "https://h.example.com/webhooks/twilio/sms?x=1",
                good.as_str(),
            ),
            ("token", "https://h.example.com/webhooks/twilio/sms", ""),
            (
                "token",
                "https://h.example.com/webhooks/twilio/sms",
                "not base64!",
            ),
            ("token", "https://h.example.com/webhooks/twilio/sms", "AAAA"),
        ] {
            assert!(
                !verify_twilio_signature(token, url, &params, sig),
                "{token} {url} {sig}"
            );
        }
        let tampered = p(&[("Body", "START"), ("From", "+14155550100")]);
        assert!(!verify_twilio_signature(
            "token",
            "https://h.example.com/webhooks/twilio/sms",
            &tampered,
            &good
        ));
    }

    #[test]
    fn twiml_documents_are_exact_and_escaped() {
        let en = Speech::new(
            &Language::parse("en-US").unwrap(),
            &VoiceSettings::default(),
        );
        assert_eq!(
            voice_twiml_machine("Your order <#42> & more is \"ready\"", &en),
            "<Response><Say language=\"en-US\">Your order &lt;#42&gt; &amp; more is &quot;ready&quot;</Say></Response>"
        );
        assert_eq!(
            voice_twiml_person("Hi", &en, "https://h.example.com/g?a=1&b=2"),
            "<Response><Say language=\"en-US\">Hi</Say><Gather numDigits=\"1\" timeout=\"5\" action=\"https://h.example.com/g?a=1&amp;b=2\" method=\"POST\"><Say language=\"en-US\">Press 1 to speak to an agent.</Say></Gather></Response>"
        );
        let agent = E164::parse("+14155550100", None).unwrap();
        assert_eq!(
            gather_response_twiml("1", Some(&agent), &en, None),
            "<Response><Say language=\"en-US\">Connecting you to an agent.</Say><Dial>+14155550100</Dial></Response>"
        );
        assert_eq!(
            gather_response_twiml(
                "1",
                Some(&agent),
                &en,
                Some("https://h.example.com/d?a=1&b=2")
            ),
            "<Response><Say language=\"en-US\">Connecting you to an agent.</Say><Dial action=\"https://h.example.com/d?a=1&amp;b=2\" method=\"POST\">+14155550100</Dial></Response>"
        );
        for digits in ["2", "", "11", "*"] {
            assert_eq!(
                gather_response_twiml(digits, Some(&agent), &en, None),
                "<Response><Say language=\"en-US\">Goodbye.</Say><Hangup/></Response>"
            );
        }
        assert_eq!(
            gather_response_twiml("1", None, &en, None),
            "<Response><Say language=\"en-US\">Goodbye.</Say><Hangup/></Response>"
        );
        let es = Speech::new(
            &Language::parse("es-MX").unwrap(),
            &VoiceSettings::default(),
        );
        assert_eq!(
            gather_response_twiml("1", Some(&agent), &es, None),
            "<Response><Say language=\"es-MX\">Le comunicamos con un agente.</Say><Dial>+14155550100</Dial></Response>"
        );
        for status in ["busy", "no-answer", "failed", "canceled"] {
            assert_eq!(
                dialed_response_twiml(status, &en),
                "<Response><Say language=\"en-US\">Sorry, no agent is available right now. Goodbye.</Say><Hangup/></Response>",
                "{status}"
            );
        }
        assert_eq!(
            dialed_response_twiml("completed", &en),
            "<Response><Hangup/></Response>"
        );
        assert_eq!(xml_escape("a\u{1}b'"), "a b&apos;");
    }

    #[test]
    fn a_campaigns_voice_language_and_prompts_are_spoken_escaped() {
        let settings = VoiceSettings {
            voice: Some("Polly.\"Joanna\"&<x>".to_string()),
            spoken_language: Some("en-GB".to_string()),
            press_one_prompt: Some("Press 1 for <Ann> & \"Bob\"".to_string()),
            agent_unavailable: Some("Nobody's here <sorry> & bye".to_string()),
        };
        let speech = Speech::new(&Language::parse("fr-FR").unwrap(), &settings);
        assert_eq!(
            voice_twiml_person("Hi <you>", &speech, "https://h.example.com/g"),
            concat!(
                "<Response><Say language=\"en-GB\" voice=\"Polly.&quot;Joanna&quot;&amp;&lt;x&gt;\">Hi &lt;you&gt;</Say>",
                "<Gather numDigits=\"1\" timeout=\"5\" action=\"https://h.example.com/g\" method=\"POST\">",
                "<Say language=\"en-GB\" voice=\"Polly.&quot;Joanna&quot;&amp;&lt;x&gt;\">Press 1 for &lt;Ann&gt; &amp; &quot;Bob&quot;</Say>",
                "</Gather></Response>"
            )
        );
        assert_eq!(
            dialed_response_twiml("no-answer", &speech),
            "<Response><Say language=\"en-GB\" voice=\"Polly.&quot;Joanna&quot;&amp;&lt;x&gt;\">Nobody&apos;s here &lt;sorry&gt; &amp; bye</Say><Hangup/></Response>"
        );
        // Without settings the prompts follow the spoken language, which is the campaign's.
        let only_voice = VoiceSettings {
            voice: Some("alice".to_string()),
            ..VoiceSettings::default()
        };
        let fr = Speech::new(&Language::parse("fr-FR").unwrap(), &only_voice);
        assert_eq!(
            voice_twiml_machine("Bonjour", &fr),
            "<Response><Say language=\"fr-FR\" voice=\"alice\">Bonjour</Say></Response>"
        );
        assert_eq!(fr.press_one, "Appuyez sur 1 pour parler à un conseiller.");
        // A spoken language given switches the default prompts to it.
        let de = Speech::new(
            &Language::parse("en-US").unwrap(),
            &VoiceSettings {
                spoken_language: Some("de-DE".to_string()),
                ..VoiceSettings::default()
            },
        );
        assert_eq!(de.language, "de-DE");
        assert_eq!(
            de.press_one,
            "Drücken Sie die 1, um mit einem Mitarbeiter zu sprechen."
        );
    }

    #[test]
    fn gather_url_carries_what_the_callback_needs() {
        let agent = E164::parse("+14155550100", None).unwrap();
        let lang = Language::parse("fr-CA").unwrap();
        let url = gather_url(
            "https://herald.example.com/",
            Uuid::from_u128(1),
            Uuid::from_u128(2),
            3,
            &agent,
            &lang,
        );
        assert_eq!(
            url,
            "https://herald.example.com/webhooks/twilio/voice/gather?campaign_id=00000000-0000-0000-0000-000000000001&outreach_id=00000000-0000-0000-0000-000000000002&recipient_id=3&agent=%2B14155550100&language=fr-CA"
        );
    }

    fn response(status: u16, headers: &[(&str, &str)], body: &str) -> HttpResponse {
        let mut map = http::HeaderMap::new();
        for (k, v) in headers {
            map.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                http::HeaderValue::from_str(v).unwrap(),
            );
        }
        HttpResponse {
            status: StatusCode::from_u16(status).unwrap(),
            headers: map,
            body: Bytes::from(body.to_string()),
        }
    }

    #[test]
    fn answers_map_to_outcomes() {
        assert_eq!(
            outcome(&response(201, &[], r#"{"sid":"SM1"}"#)).unwrap(),
            Accepted {
                provider_message_id: Some("SM1".into())
            }
        );
        assert_eq!(
            outcome(&response(201, &[], "not json")).unwrap(),
            Accepted::default()
        );
        let e = outcome(&response(400, &[], r#"{"code":21211,"message":"bad To"}"#)).unwrap_err();
        assert_eq!(e, SendError::permanent("21211", "bad To"));
        let e = outcome(&response(404, &[], "<html>nope</html>")).unwrap_err();
        assert_eq!(
            e,
            SendError::permanent("404", "HTTP 404 Not Found: <html>nope</html>")
        );
        let e = outcome(&response(503, &[("retry-after", "7")], "")).unwrap_err();
        assert!(e.is_transient());
        assert_eq!(e.retry_after(), Some(std::time::Duration::from_secs(7)));
        assert_eq!(e.code(), Some("503"));
    }
}
