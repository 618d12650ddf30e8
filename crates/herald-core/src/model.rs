//! The entities of DESIGN.md. `*Input` is what a request carries (plain strings); `*Spec` is the
//! checked form a store accepts; the bare name is what a store returns (with id and timestamps).

use crate::address::{Address, E164, EmailAddress};
use crate::channel::{Channel, Provider};
use crate::error::{Errors, ValidationError};
use crate::language::Language;
use crate::schedule::{Schedule, ScheduleInput};
use crate::template::Template;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub const NAME_MAX: usize = 200;
pub const DESCRIPTION_MAX: usize = 2_000;
pub const BODY_MAX: usize = 20_000;

pub(crate) fn check_name(errors: &mut Errors, field: &str, name: &str) -> String {
    let name = name.trim();
    if name.is_empty() {
        errors.push(field, "is required");
    } else if name.chars().count() > NAME_MAX {
        errors.push(field, format!("is longer than {NAME_MAX} characters"));
    }
    name.to_string()
}

// ---------------------------------------------------------------- inbox

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Deserialize, Default)]
pub struct InboxInput {
    #[serde(default)]
    pub name: String,
    /// The phone number a person who answers a campaign call and presses 1 is connected to.
    #[serde(default)]
    pub agent_number: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InboxSpec {
    pub name: String,
    pub agent_number: Option<E164>,
}

impl InboxInput {
    pub fn validate(&self) -> Result<InboxSpec, ValidationError> {
        let mut errors = Errors::new();
        let name = check_name(&mut errors, "name", &self.name);
        let agent_number = match self.agent_number.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(raw) => match E164::parse(raw, None) {
                Ok(n) => Some(n),
                Err(e) => {
                    errors.push(
                        "agent_number",
                        format!("{e}; give the number with its country code, like +14155550142"),
                    );
                    None
                }
            },
        };
        errors.finish()?;
        Ok(InboxSpec { name, agent_number })
    }
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Inbox {
    pub id: Uuid,
    pub name: String,
    /// Where campaign calls connect a person who presses 1 (E.164), if anywhere.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub agent_number: Option<E164>,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: Timestamp,
}

// ---------------------------------------------------------------- sender

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Deserialize, Default)]
pub struct SenderInput {
    #[serde(default)]
    pub channel: String,
    #[serde(default)]
    pub address: String,
    pub inbox_id: Option<Uuid>,
    /// `file` when not given.
    pub provider: Option<String>,
    /// ISO 3166 region for a phone number written without `+country`.
    pub default_region: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderSpec {
    pub channel: Channel,
    pub address: Address,
    pub inbox_id: Uuid,
    pub provider: Provider,
}

impl SenderInput {
    pub fn validate(&self) -> Result<SenderSpec, ValidationError> {
        let mut errors = Errors::new();
        let channel = errors.take("channel", self.channel.parse::<Channel>());
        if channel == Some(Channel::Chat) {
            errors.push(
                "channel",
                "chat campaigns have no sender; use sms, voice or email",
            );
        }
        let address = match channel {
            Some(c) if c.is_phone() => errors
                .take(
                    "address",
                    E164::parse(&self.address, self.default_region.as_deref()),
                )
                .map(Address::Phone),
            Some(Channel::Email) => errors
                .take("address", EmailAddress::parse(&self.address))
                .map(Address::Email),
            _ => None,
        };
        if self.inbox_id.is_none() {
            errors.push(
                "inbox_id",
                "is required: replies to this sender land in that inbox",
            );
        }
        let provider = match &self.provider {
            None => Some(Provider::default()),
            Some(p) => errors.take("provider", p.parse::<Provider>()),
        };
        if let (Some(p), Some(c)) = (provider, channel)
            && c != Channel::Chat
            && !p.supports(c)
        {
            errors.push("provider", format!("{p} cannot carry {c} messages"));
        }
        errors.finish()?;
        match (channel, address, self.inbox_id, provider) {
            (Some(channel), Some(address), Some(inbox_id), Some(provider)) => Ok(SenderSpec {
                channel,
                address,
                inbox_id,
                provider,
            }),
            _ => Err(ValidationError::single("", "incomplete sender")),
        }
    }
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sender {
    pub id: Uuid,
    pub channel: Channel,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub address: Address,
    pub inbox_id: Uuid,
    pub provider: Provider,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: Timestamp,
}

// ---------------------------------------------------------------- answer

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Deserialize, Default)]
pub struct AnswerVariantInput {
    #[serde(default)]
    pub language: String,
    pub subject: Option<String>,
    #[serde(default)]
    pub body: String,
    /// What a voice call says instead of `body` (a template like it); a call says `body` when
    /// this is absent or blank.
    #[serde(default)]
    pub voice: Option<String>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Deserialize, Default)]
pub struct AnswerInput {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub variants: Vec<AnswerVariantInput>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AnswerVariant {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub language: Language,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub subject: Option<Template>,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub body: Template,
    /// What a voice call says instead of `body`, when set.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub voice: Option<Template>,
}

impl AnswerVariant {
    /// The template a message of `channel` renders as its body: a voice call's script when the
    /// variant has one, the body otherwise.
    pub fn body_for(&self, channel: Channel) -> &Template {
        match (&self.voice, channel) {
            (Some(script), Channel::Voice) => script,
            _ => &self.body,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerSpec {
    pub name: String,
    pub variants: Vec<AnswerVariant>,
}

impl AnswerInput {
    pub fn validate(&self) -> Result<AnswerSpec, ValidationError> {
        let mut errors = Errors::new();
        let name = check_name(&mut errors, "name", &self.name);
        if self.variants.is_empty() {
            errors.push("variants", "needs at least one language variant");
        }
        let mut variants: Vec<AnswerVariant> = Vec::new();
        for (i, v) in self.variants.iter().enumerate() {
            let field = |f: &str| format!("variants[{i}].{f}");
            let language = errors.take(field("language"), Language::parse(&v.language));
            if let Some(lang) = &language
                && variants.iter().any(|o| &o.language == lang)
            {
                errors.push(
                    field("language"),
                    format!("{lang} has more than one variant"),
                );
            }
            let subject = match v.subject.as_deref().map(str::trim) {
                None | Some("") => None,
                Some(s) => errors.take(
                    field("subject"),
                    Template::parse(s).and_then(|t| t.check_names().map(|()| t)),
                ),
            };
            if v.body.trim().is_empty() {
                errors.push(field("body"), "is required");
            } else if v.body.len() > BODY_MAX {
                errors.push(field("body"), format!("is longer than {BODY_MAX} bytes"));
            }
            let body = errors.take(
                field("body"),
                Template::parse(&v.body).and_then(|t| t.check_names().map(|()| t)),
            );
            let voice = match v.voice.as_deref().map(str::trim) {
                None | Some("") => None,
                Some(s) if s.len() > BODY_MAX => {
                    errors.push(field("voice"), format!("is longer than {BODY_MAX} bytes"));
                    None
                }
                Some(s) => errors.take(
                    field("voice"),
                    Template::parse(s).and_then(|t| t.check_names().map(|()| t)),
                ),
            };
            if let (Some(language), Some(body)) = (language, body) {
                variants.push(AnswerVariant {
                    language,
                    subject,
                    body,
                    voice,
                });
            }
        }
        errors.finish()?;
        Ok(AnswerSpec { name, variants })
    }
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Answer {
    pub id: Uuid,
    pub name: String,
    pub variants: Vec<AnswerVariant>,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: Timestamp,
}

impl Answer {
    pub fn variant(&self, language: &Language) -> Option<&AnswerVariant> {
        self.variants.iter().find(|v| &v.language == language)
    }

    pub fn languages(&self) -> Vec<&Language> {
        self.variants.iter().map(|v| &v.language).collect()
    }
}

// ---------------------------------------------------------------- campaign

/// A frequency cap: at most `messages` proactive messages to one customer (address) in `days`
/// days, counting the outreach messages of every campaign and sender on the customer's
/// timeline. Herald has one for the workspace (`[dispatch.frequency_cap]`) and each campaign
/// may have its own; a recipient over either is skipped with reason `frequency_cap`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrequencyCap {
    /// Messages a customer may get in `days` (at least 1).
    pub messages: u32,
    /// The length of the window, in days of 24 hours (1 to 3650).
    pub days: u32,
}

impl FrequencyCap {
    /// The longest window: ten years.
    pub const DAYS_MAX: u32 = 3_650;

    /// What makes the cap unusable, by field (`messages`, `days`); empty when it can hold.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if self.messages == 0 {
            out.push((
                "messages",
                "must be at least 1: a cap of 0 messages would never send; leave the cap out \
                 to have none"
                    .to_string(),
            ));
        }
        if self.days == 0 {
            out.push(("days", "must be at least 1".to_string()));
        } else if self.days > Self::DAYS_MAX {
            out.push((
                "days",
                format!(
                    "is {}, more than ten years ({} days)",
                    self.days,
                    Self::DAYS_MAX
                ),
            ));
        }
        out
    }

    /// [`FrequencyCap::problems`] in one sentence, for a configuration file.
    pub fn check(&self) -> Result<(), String> {
        let problems = self.problems();
        if problems.is_empty() {
            return Ok(());
        }
        Err(problems
            .iter()
            .map(|(field, message)| format!("{field} {message}"))
            .collect::<Vec<_>>()
            .join("; "))
    }

    /// Where the window of a message sent at `at` begins: messages since then count.
    pub fn since(&self, at: Timestamp) -> Timestamp {
        at.checked_sub(jiff::SignedDuration::from_hours(24 * i64::from(self.days)))
            .unwrap_or(Timestamp::MIN)
    }
}

impl std::fmt::Display for FrequencyCap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let plural = |n: u32, one: &str, many: &str| {
            if n == 1 {
                format!("{n} {one}")
            } else {
                format!("{n} {many}")
            }
        };
        write!(
            f,
            "at most {} in {}",
            plural(self.messages, "message", "messages"),
            plural(self.days, "day", "days")
        )
    }
}

/// How a voice campaign's calls speak: Twilio's `<Say voice="…" language="…">` and the prompts
/// said around the message. Every field is optional; an absent one takes the default (Twilio's
/// voice for the language, the campaign's language, the prompts in that language).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoiceSettings {
    /// Twilio's voice, e.g. `Polly.Joanna`, `Google.en-US-Standard-C` or `alice`.
    #[serde(default)]
    pub voice: Option<String>,
    /// The language the call is spoken in (`<Say language>`), e.g. `en-GB`; the campaign's
    /// language when absent.
    #[serde(default)]
    pub spoken_language: Option<String>,
    /// What a person hears after the message, before pressing 1 for an agent.
    #[serde(default)]
    pub press_one_prompt: Option<String>,
    /// What a person who pressed 1 hears when no agent picked up.
    #[serde(default)]
    pub agent_unavailable: Option<String>,
}

impl VoiceSettings {
    /// The longest voice name.
    pub const VOICE_MAX: usize = 64;
    /// The longest prompt, in characters.
    pub const PROMPT_MAX: usize = 500;

    /// Whether every field takes its default.
    pub fn is_default(&self) -> bool {
        self == &Self::default()
    }

    /// The settings trimmed (blank fields absent, the language in its canonical form) and what
    /// makes them unusable, by field (`voice`, `spoken_language`, `press_one_prompt`,
    /// `agent_unavailable`).
    pub fn normalized(&self) -> (VoiceSettings, Vec<(&'static str, String)>) {
        fn given(v: &Option<String>) -> Option<String> {
            v.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        }
        let mut problems = Vec::new();
        let voice = given(&self.voice);
        if let Some(v) = &voice {
            if v.chars().count() > Self::VOICE_MAX {
                problems.push((
                    "voice",
                    format!("is longer than {} characters", Self::VOICE_MAX),
                ));
            } else if !v
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
            {
                problems.push((
                    "voice",
                    "may hold only letters, digits, dots, hyphens and underscores, like Polly.Joanna or alice".to_string(),
                ));
            }
        }
        let spoken_language = match given(&self.spoken_language) {
            None => None,
            Some(raw) => match Language::parse(&raw) {
                Ok(l) => Some(l.as_str().to_string()),
                Err(e) => {
                    problems.push(("spoken_language", e.to_string()));
                    None
                }
            },
        };
        let mut prompt = |field: &'static str, v: &Option<String>| {
            let text = given(v);
            if let Some(t) = &text
                && t.chars().count() > Self::PROMPT_MAX
            {
                problems.push((
                    field,
                    format!("is longer than {} characters", Self::PROMPT_MAX),
                ));
            }
            text
        };
        let press_one_prompt = prompt("press_one_prompt", &self.press_one_prompt);
        let agent_unavailable = prompt("agent_unavailable", &self.agent_unavailable);
        (
            VoiceSettings {
                voice,
                spoken_language,
                press_one_prompt,
                agent_unavailable,
            },
            problems,
        )
    }
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Deserialize, Default)]
pub struct CampaignInput {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub channel: String,
    pub sender_id: Option<Uuid>,
    #[serde(default)]
    pub language: String,
    pub answer_id: Option<Uuid>,
    pub schedule: Option<ScheduleInput>,
    /// Never send SMS or voice before 08:00 or after 21:00 recipient-local time (default on).
    pub quiet_hours: Option<bool>,
    /// This campaign's own frequency cap (none when absent or null): a recipient whose customer
    /// was already sent `messages` proactive messages (by any campaign) in the last `days`
    /// days is skipped with reason `frequency_cap`. The workspace's cap
    /// (`[dispatch.frequency_cap]`) applies as well; whichever is stricter decides.
    #[serde(default)]
    pub frequency_cap: Option<FrequencyCap>,
    /// Voice campaigns only: the voice, spoken language and prompts of its calls.
    #[serde(default)]
    pub voice_settings: Option<VoiceSettings>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CampaignSpec {
    pub name: String,
    pub description: String,
    pub channel: Channel,
    pub sender_id: Option<Uuid>,
    pub language: Language,
    pub answer_id: Uuid,
    pub schedule: Schedule,
    pub quiet_hours: bool,
    pub frequency_cap: Option<FrequencyCap>,
    pub voice_settings: VoiceSettings,
}

impl CampaignInput {
    /// Checks the fields on their own; [`check_campaign_references`] checks them against the
    /// sender and answer they name.
    pub fn validate(&self) -> Result<CampaignSpec, ValidationError> {
        let mut errors = Errors::new();
        let name = check_name(&mut errors, "name", &self.name);
        let description = self.description.trim().to_string();
        if description.chars().count() > DESCRIPTION_MAX {
            errors.push(
                "description",
                format!("is longer than {DESCRIPTION_MAX} characters"),
            );
        }
        let channel = errors.take("channel", self.channel.parse::<Channel>());
        match (channel, self.sender_id) {
            (Some(Channel::Chat), Some(_)) => {
                errors.push("sender_id", "chat campaigns have no sender; leave it out")
            }
            (Some(c), None) if c.has_senders() => errors.push(
                "sender_id",
                format!("is required: the {c} sender this campaign sends from"),
            ),
            _ => {}
        }
        let language = errors.take("language", Language::parse(&self.language));
        if self.answer_id.is_none() {
            errors.push("answer_id", "is required: the answer this campaign sends");
        }
        let schedule = match &self.schedule {
            None => {
                errors.push(
                    "schedule",
                    "is required: the hours Herald may send, e.g. {\"timezone\": \"America/New_York\", \"days\": {\"mon\": [\"09:00-17:00\"]}}",
                );
                None
            }
            Some(s) => match Schedule::parse(s) {
                Ok(s) => Some(s),
                Err(e) => {
                    errors.extend_prefixed("schedule", e);
                    None
                }
            },
        };
        if let Some(cap) = &self.frequency_cap {
            if channel == Some(Channel::Chat) {
                errors.push(
                    "frequency_cap",
                    "chat campaigns send no messages to cap; leave it out",
                );
            }
            for (field, message) in cap.problems() {
                errors.push(format!("frequency_cap.{field}"), message);
            }
        }
        let mut voice_settings = VoiceSettings::default();
        if let Some(settings) = &self.voice_settings {
            let (normalized, problems) = settings.normalized();
            if channel.is_some_and(|c| c != Channel::Voice) && !normalized.is_default() {
                errors.push(
                    "voice_settings",
                    "only voice campaigns make calls; leave it out",
                );
            }
            for (field, message) in problems {
                errors.push(format!("voice_settings.{field}"), message);
            }
            voice_settings = normalized;
        }
        errors.finish()?;
        match (channel, language, self.answer_id, schedule) {
            (Some(channel), Some(language), Some(answer_id), Some(schedule)) => Ok(CampaignSpec {
                name,
                description,
                channel,
                sender_id: self.sender_id,
                language,
                answer_id,
                schedule,
                quiet_hours: self.quiet_hours.unwrap_or(true),
                frequency_cap: self.frequency_cap,
                voice_settings,
            }),
            _ => Err(ValidationError::single("", "incomplete campaign")),
        }
    }
}

/// The rules that tie a campaign to its sender and answer: the sender's channel is the
/// campaign's, and the answer has a variant in the campaign's language (with a subject, for email).
pub fn check_campaign_references(
    spec: &CampaignSpec,
    sender: Option<&Sender>,
    answer: Option<&Answer>,
) -> Result<(), ValidationError> {
    let mut errors = Errors::new();
    if let Some(sender_id) = spec.sender_id {
        match sender {
            None => errors.push("sender_id", format!("no sender has id {sender_id}")),
            Some(s) if s.channel != spec.channel => errors.push(
                "sender_id",
                format!(
                    "sender {} is a {} sender; a {} campaign needs a {} sender",
                    s.address, s.channel, spec.channel, spec.channel
                ),
            ),
            Some(_) => {}
        }
    }
    match answer {
        None => errors.push("answer_id", format!("no answer has id {}", spec.answer_id)),
        Some(a) => match a.variant(&spec.language) {
            None => {
                let have: Vec<_> = a.languages().iter().map(|l| l.to_string()).collect();
                errors.push(
                    "language",
                    format!(
                        "answer `{}` has no {} variant; it is available in: {}",
                        a.name,
                        spec.language,
                        have.join(", ")
                    ),
                )
            }
            Some(v) if spec.channel == Channel::Email && v.subject.is_none() => errors.push(
                "answer_id",
                format!(
                    "answer `{}` has no subject in {}; email campaigns need one",
                    a.name, spec.language
                ),
            ),
            Some(_) => {}
        },
    }
    errors.finish()
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Campaign {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    pub channel: Channel,
    pub sender_id: Option<Uuid>,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub language: Language,
    pub answer_id: Uuid,
    #[cfg_attr(feature = "openapi", schema(value_type = crate::schedule::ScheduleInput))]
    pub schedule: Schedule,
    pub quiet_hours: bool,
    /// The campaign's own frequency cap, or null (the workspace's, if any, still applies).
    pub frequency_cap: Option<FrequencyCap>,
    /// How the campaign's calls speak (voice campaigns; every field null means the defaults).
    pub voice_settings: VoiceSettings,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: Timestamp,
}

// ---------------------------------------------------------------- API tokens

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Creates and changes campaigns, senders, answers and inboxes.
    Admin,
    /// Reads everything and works conversations; changes no configuration.
    Agent,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Agent => "agent",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "admin" => Ok(Role::Admin),
            "agent" => Ok(Role::Agent),
            _ => Err(format!("`{s}` is not a role; use admin or agent")),
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An API token as stored: only the SHA-256 of the secret is kept.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiToken {
    pub id: Uuid,
    pub name: String,
    pub role: Role,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
}

// ---------------------------------------------------------------- pagination

pub const PAGE_DEFAULT: u32 = 50;
pub const PAGE_MAX: u32 = 500;

/// Keyset pagination: items come in id order (uuid v7, so creation order), `after` is the last
/// id of the previous page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub limit: u32,
    pub after: Option<Uuid>,
}

impl Page {
    pub fn new(limit: Option<u32>, after: Option<Uuid>) -> Result<Self, ValidationError> {
        let limit = limit.unwrap_or(PAGE_DEFAULT);
        if limit == 0 || limit > PAGE_MAX {
            return Err(ValidationError::single(
                "limit",
                format!("must be between 1 and {PAGE_MAX}"),
            ));
        }
        Ok(Self { limit, after })
    }
}

impl Default for Page {
    fn default() -> Self {
        Self {
            limit: PAGE_DEFAULT,
            after: None,
        }
    }
}

/// One page of a list and the cursor for the next, if there is one.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Listing<T> {
    pub items: Vec<T>,
    pub next_after: Option<Uuid>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frequency_cap_counts_whole_days_back_and_is_checked_by_field() {
        let cap = FrequencyCap {
            messages: 2,
            days: 7,
        };
        assert_eq!(cap.check(), Ok(()));
        assert_eq!(cap.to_string(), "at most 2 messages in 7 days");
        let at: Timestamp = "2026-03-10T12:00:00Z".parse().unwrap();
        assert_eq!(
            cap.since(at),
            "2026-03-03T12:00:00Z".parse::<Timestamp>().unwrap()
        );
        assert_eq!(
            FrequencyCap {
                messages: 1,
                days: 1
            }
            .to_string(),
            "at most 1 message in 1 day"
        );
        let fields = |c: FrequencyCap| -> Vec<&'static str> {
            c.problems().into_iter().map(|(f, _)| f).collect()
        };
        assert_eq!(
            fields(FrequencyCap {
                messages: 0,
                days: 0
            }),
            ["messages", "days"]
        );
        assert_eq!(
            fields(FrequencyCap {
                messages: 1,
                days: FrequencyCap::DAYS_MAX + 1
            }),
            ["days"]
        );
        assert!(
            FrequencyCap {
                messages: 1,
                days: FrequencyCap::DAYS_MAX
            }
            .check()
            .is_ok()
        );
        // The longest window still has a start, however early `at` is.
        assert_eq!(
            FrequencyCap {
                messages: 1,
                days: FrequencyCap::DAYS_MAX
            }
            .since(Timestamp::MIN),
            Timestamp::MIN
        );
    }
}
