//! Campaigns: the list per channel (tabs SMS / Email / Voice / Chat), the create and edit form
//! (sender of the channel, language, the answers that have that language — refreshed by htmx
//! from `GET /campaigns/answers-for` — and the weekly schedule), delete, and the campaign page
//! with its outreach tabs (rendered by [`super::outreaches::section_html`]).
//!
//! Everyone signed in can read campaigns; creating, changing and deleting them needs an admin.
//! The form is checked with `herald_core::CampaignInput::validate` and
//! `check_campaign_references`, as the API's `POST /api/v1/campaigns` is, so the messages are
//! the API's; each is shown next to its field (schedule errors next to the schedule table).

use super::render_status;
use super::session::{Admin, Chrome, CurrentUser};
use super::settings::{
    Choice, CsrfForm, FieldErrors, FormPairs, collect_all, error_page, parse_id,
};
use crate::AppState;
use crate::web::session::WebId;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use herald_core::schedule::{ScheduleInput, WEEKDAYS, Window};
use herald_core::{
    Answer, Campaign, CampaignInput, CampaignSpec, Channel, FrequencyCap, Language, Schedule,
    Sender, ValidationError, VoiceSettings, check_campaign_references,
};
use herald_store::StoreError;
use jiff::Timestamp;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::OnceLock;
use uuid::Uuid;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/campaigns", get(list).post(create))
        .route("/campaigns/new", get(new_form))
        .route("/campaigns/answers-for", get(answers_for))
        .route("/campaigns/{id}", get(show).post(update))
        .route("/campaigns/{id}/edit", get(edit_form))
        .route("/campaigns/{id}/delete", post(delete))
        .route("/campaigns/{id}/test-send", post(test_send))
        .route("/campaigns/{id}/figures.csv", get(figures_csv))
}

type PageResult = Result<Response, Response>;

/// The tabs, in the order the list shows them.
const TABS: [Channel; 4] = [Channel::Sms, Channel::Email, Channel::Voice, Channel::Chat];

const DAY_LABELS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// `SMS`, `Email`, `Voice`, `Chat`.
pub fn channel_label(c: Channel) -> &'static str {
    match c {
        Channel::Sms => "SMS",
        Channel::Email => "Email",
        Channel::Voice => "Voice",
        Channel::Chat => "Chat",
    }
}

/// What the sender select is called for a channel (`None`: chat campaigns have no sender).
fn sender_label(c: Channel) -> Option<&'static str> {
    match c {
        Channel::Sms | Channel::Voice => Some("Phone Number"),
        Channel::Email => Some("Email Address"),
        Channel::Chat => None,
    }
}

/// `?channel=`; missing or unknown is SMS.
fn channel_param(raw: Option<&str>) -> Channel {
    raw.and_then(|c| c.parse().ok()).unwrap_or(Channel::Sms)
}

pub(super) fn campaigns_err(user: &CurrentUser) -> impl Fn(StoreError) -> Response + '_ {
    move |e| error_page(user, "campaigns", e)
}

fn date(ts: Timestamp) -> String {
    ts.strftime("%Y-%m-%d %H:%M UTC").to_string()
}

fn absent<T>(r: Result<T, StoreError>) -> Result<Option<T>, StoreError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(StoreError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

// ------------------------------------------------------------------ list

#[derive(Deserialize)]
struct ListQuery {
    channel: Option<String>,
}

struct Tab {
    key: &'static str,
    label: &'static str,
    current: bool,
}

struct CampaignRow {
    id: Uuid,
    name: String,
    sender: String,
    language: String,
    answer: String,
    timezone: String,
    created: String,
}

#[derive(Template)]
#[template(path = "campaigns.html")]
struct ListPage {
    chrome: Chrome,
    channel: &'static str,
    channel_label: &'static str,
    has_senders: bool,
    tabs: Vec<Tab>,
    rows: Vec<CampaignRow>,
}

async fn list(
    State(s): State<AppState>,
    user: CurrentUser,
    Query(q): Query<ListQuery>,
) -> PageResult {
    let err = campaigns_err(&user);
    let channel = channel_param(q.channel.as_deref());
    let campaigns = collect_all(|p| s.store.list_campaigns(Some(channel), p))
        .await
        .map_err(&err)?;
    let senders: HashMap<Uuid, String> = collect_all(|p| s.store.list_senders(p))
        .await
        .map_err(&err)?
        .into_iter()
        .map(|x| (x.id, x.address.to_string()))
        .collect();
    let answers: HashMap<Uuid, String> = collect_all(|p| s.store.list_answers(p))
        .await
        .map_err(&err)?
        .into_iter()
        .map(|a| (a.id, a.name))
        .collect();
    let rows = campaigns
        .into_iter()
        .map(|c| CampaignRow {
            id: c.id,
            sender: c
                .sender_id
                .and_then(|id| senders.get(&id).cloned())
                .unwrap_or_default(),
            language: c.language.to_string(),
            answer: answers.get(&c.answer_id).cloned().unwrap_or_default(),
            timezone: c.schedule.timezone_name().to_string(),
            created: date(c.created_at),
            name: c.name,
        })
        .collect();
    Ok(super::render(&ListPage {
        chrome: Chrome::new(&user, "Campaigns", "campaigns"),
        channel: channel.as_str(),
        channel_label: channel_label(channel),
        has_senders: channel.has_senders(),
        tabs: TABS
            .iter()
            .map(|c| Tab {
                key: c.as_str(),
                label: channel_label(*c),
                current: *c == channel,
            })
            .collect(),
        rows,
    }))
}

// ------------------------------------------------------------------ the form

/// One weekday row of the schedule table.
struct DayRow {
    key: &'static str,
    label: &'static str,
    /// `Mon`, for narrow screens.
    short: &'static str,
    closed: bool,
    from: String,
    to: String,
    /// Further windows of the day, written `13:00-17:00, 18:00-20:00`.
    extra: String,
}

/// What the form shows in its fields.
struct CampaignValues {
    name: String,
    description: String,
    sender_id: String,
    language: String,
    answer_id: String,
    timezone: String,
    quiet_hours: bool,
    /// The campaign's own frequency cap as typed: messages, and days (both empty: none).
    cap_messages: String,
    cap_days: String,
    /// Voice campaigns: the voice, spoken language and prompts as typed (empty: the default).
    voice: VoiceSettings,
    days: Vec<DayRow>,
    /// Holidays, one `YYYY-MM-DD` a line.
    closed_dates: String,
}

impl CampaignValues {
    fn blank() -> Self {
        Self {
            name: String::new(),
            description: String::new(),
            sender_id: String::new(),
            language: String::new(),
            answer_id: String::new(),
            timezone: "UTC".into(),
            quiet_hours: true,
            cap_messages: String::new(),
            cap_days: String::new(),
            voice: VoiceSettings::default(),
            days: WEEKDAYS
                .iter()
                .zip(DAY_LABELS)
                .map(|(key, label)| DayRow {
                    key,
                    label,
                    short: &label[..3],
                    // Office hours, Monday to Friday: a new campaign cannot be saved never
                    // to send by accident.
                    closed: matches!(*key, "sat" | "sun"),
                    from: "09:00".into(),
                    to: "17:00".into(),
                    extra: String::new(),
                })
                .collect(),
            closed_dates: String::new(),
        }
    }

    fn of(c: &Campaign) -> Self {
        let days = WEEKDAYS
            .iter()
            .zip(DAY_LABELS)
            .enumerate()
            .map(|(i, (key, label))| {
                let windows = c.schedule.windows(i);
                let (from, to) = match windows.first() {
                    Some(w) => (hhmm(w.start), hhmm(w.end)),
                    None => ("09:00".into(), "17:00".into()),
                };
                DayRow {
                    key,
                    label,
                    short: &label[..3],
                    closed: windows.is_empty(),
                    from,
                    to,
                    extra: windows
                        .iter()
                        .skip(1)
                        .map(Window::to_string)
                        .collect::<Vec<_>>()
                        .join(", "),
                }
            })
            .collect();
        Self {
            name: c.name.clone(),
            description: c.description.clone(),
            sender_id: c.sender_id.map(|id| id.to_string()).unwrap_or_default(),
            language: c.language.to_string(),
            answer_id: c.answer_id.to_string(),
            timezone: c.schedule.timezone_name().to_string(),
            quiet_hours: c.quiet_hours,
            cap_messages: c
                .frequency_cap
                .map(|f| f.messages.to_string())
                .unwrap_or_default(),
            cap_days: c
                .frequency_cap
                .map(|f| f.days.to_string())
                .unwrap_or_default(),
            voice: c.voice_settings.clone(),
            days,
            closed_dates: closed_dates_text(&c.schedule, "\n"),
        }
    }

    fn submitted(form: &FormPairs) -> Self {
        Self {
            name: form.get("name").to_string(),
            description: form.get("description").to_string(),
            sender_id: form.get("sender_id").to_string(),
            language: form.get("language").to_string(),
            answer_id: form.get("answer_id").to_string(),
            timezone: form.get("timezone").to_string(),
            quiet_hours: form.has("quiet_hours"),
            cap_messages: form.get("frequency_cap_messages").trim().to_string(),
            cap_days: form.get("frequency_cap_days").trim().to_string(),
            voice: VoiceSettings {
                voice: Some(form.get("voice").to_string()),
                spoken_language: Some(form.get("spoken_language").to_string()),
                press_one_prompt: Some(form.get("press_one_prompt").to_string()),
                agent_unavailable: Some(form.get("agent_unavailable").to_string()),
            },
            days: WEEKDAYS
                .iter()
                .zip(DAY_LABELS)
                .map(|(key, label)| DayRow {
                    key,
                    label,
                    short: &label[..3],
                    closed: form.has(&format!("{key}_closed")),
                    from: form.get(&format!("{key}_from")).to_string(),
                    to: form.get(&format!("{key}_to")).to_string(),
                    extra: form.get(&format!("{key}_extra")).to_string(),
                })
                .collect(),
            closed_dates: form.get("closed_dates").to_string(),
        }
    }

    /// The frequency cap as the API takes it: none when both boxes are empty; a box left empty
    /// or not holding a whole number is an error for `frequency_cap`.
    fn frequency_cap(&self, errors: &mut FieldErrors) -> Option<FrequencyCap> {
        let (messages, days) = (self.cap_messages.as_str(), self.cap_days.as_str());
        if messages.is_empty() && days.is_empty() {
            return None;
        }
        if messages.is_empty() || days.is_empty() {
            errors.push(
                "frequency_cap",
                "Give both the messages and the days, or leave both empty for no cap of this \
                 campaign's own",
            );
            return None;
        }
        let number = |errors: &mut FieldErrors, what: &str, raw: &str| match raw.parse::<u32>() {
            Ok(n) => Some(n),
            Err(_) => {
                errors.push(
                    "frequency_cap",
                    format!("{what}: `{raw}` is not a whole number"),
                );
                None
            }
        };
        let messages = number(errors, "Messages", messages);
        let days = number(errors, "Days", days);
        Some(FrequencyCap {
            messages: messages?,
            days: days?,
        })
    }

    /// The schedule as the API takes it: a window per open day (plus its kept extra windows).
    fn schedule(&self) -> ScheduleInput {
        let mut days = BTreeMap::new();
        for d in &self.days {
            if d.closed {
                continue;
            }
            let mut windows = vec![format!(
                "{}-{}",
                time_value(&d.from),
                end_value(&time_value(&d.to))
            )];
            windows.extend(
                d.extra
                    .split(',')
                    .map(str::trim)
                    .filter(|w| !w.is_empty())
                    .map(str::to_string),
            );
            days.insert(d.key.to_string(), windows);
        }
        ScheduleInput {
            timezone: zone_named(&self.timezone),
            days,
            closed_dates: self
                .closed_dates
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|d| !d.is_empty())
                .map(str::to_string)
                .collect(),
        }
    }
}

/// The schedule's holidays as `YYYY-MM-DD` dates joined by `sep` (empty without any).
fn closed_dates_text(schedule: &Schedule, sep: &str) -> String {
    schedule
        .closed_dates()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join(sep)
}

/// `HH:MM` for a minute of the day; the end of the day (24:00) is `00:00`, as a time input
/// shows it.
fn hhmm(minute: u16) -> String {
    let minute = minute % 1440;
    format!("{:02}:{:02}", minute / 60, minute % 60)
}

/// A time input's value without seconds (`09:00:00` → `09:00`).
fn time_value(raw: &str) -> String {
    let raw = raw.trim();
    match raw.len() {
        8 if raw.ends_with(":00") => raw[..5].to_string(),
        _ => raw.to_string(),
    }
}

/// A window ending at `00:00` ends at midnight: `24:00`.
fn end_value(to: &str) -> String {
    if to == "00:00" {
        "24:00".into()
    } else {
        to.to_string()
    }
}

/// The answer select (`#answer-select`), alone as the htmx fragment or inside the form.
struct AnswerSelect {
    language: String,
    options: Vec<AnswerOption>,
    invalid: bool,
}

struct AnswerOption {
    value: String,
    label: String,
    selected: bool,
    disabled: bool,
}

/// The answers that have a variant in `language`; for email, those without a subject in it are
/// listed but cannot be chosen.
fn answer_select(
    answers: &[Answer],
    channel: Channel,
    language: &str,
    selected: &str,
    invalid: bool,
) -> AnswerSelect {
    let options = match Language::parse(language) {
        Err(_) => Vec::new(),
        Ok(lang) => answers
            .iter()
            .filter_map(|a| {
                let v = a.variant(&lang)?;
                let no_subject = channel == Channel::Email && v.subject.is_none();
                Some(AnswerOption {
                    value: a.id.to_string(),
                    label: if no_subject {
                        format!("{} (no subject in {lang}: email needs one)", a.name)
                    } else {
                        a.name.clone()
                    },
                    selected: a.id.to_string() == selected.trim(),
                    disabled: no_subject,
                })
            })
            .collect(),
    };
    AnswerSelect {
        language: language.trim().to_string(),
        options,
        invalid,
    }
}

#[derive(Template)]
#[template(path = "campaign_answer_select.html")]
struct AnswerSelectFragment {
    answer_select: AnswerSelect,
}

#[derive(Template)]
#[template(path = "campaign_form.html")]
struct FormPage {
    chrome: Chrome,
    /// `None` for a new campaign.
    id: Option<Uuid>,
    channel: &'static str,
    channel_label: &'static str,
    sender_label: Option<&'static str>,
    phone: bool,
    values: CampaignValues,
    senders: Vec<Choice>,
    languages: Vec<Choice>,
    answer_select: AnswerSelect,
    timezones: &'static [String],
    errors: FieldErrors,
    /// A new campaign's first form: the browser puts its own time zone in place of `UTC`.
    suggest_zone: bool,
}

/// The IANA name a person meant by a city: `New York` or `new_york` is `America/New_York`,
/// when exactly one zone ends with that city; anything else is left as typed (to be checked,
/// and explained, as the API does).
pub(crate) fn zone_named(typed: &str) -> String {
    let typed = typed.trim();
    if typed.is_empty() || jiff::tz::TimeZone::get(typed).is_ok() {
        return typed.to_string();
    }
    let city = typed.replace(' ', "_").to_lowercase();
    let mut found = timezones().iter().filter(|z| {
        z.rsplit('/')
            .next()
            .is_some_and(|c| c.to_lowercase() == city)
    });
    match (found.next(), found.next()) {
        (Some(zone), None) => zone.clone(),
        _ => typed.to_string(),
    }
}

/// Every IANA time zone name, for the time zone field's suggestions.
pub(crate) fn timezones() -> &'static [String] {
    static ZONES: OnceLock<Vec<String>> = OnceLock::new();
    ZONES.get_or_init(|| {
        let mut zones: Vec<String> = jiff::tz::db()
            .available()
            .map(|n| n.as_str().to_string())
            .filter(|n| n.contains('/') && !n.starts_with("Etc/"))
            .collect();
        zones.push("UTC".into());
        zones.sort();
        zones.dedup();
        zones
    })
}

async fn form_page(
    s: &AppState,
    user: &CurrentUser,
    status: StatusCode,
    id: Option<Uuid>,
    channel: Channel,
    mut values: CampaignValues,
    errors: FieldErrors,
) -> PageResult {
    let err = campaigns_err(user);
    let answers = collect_all(|p| s.store.list_answers(p))
        .await
        .map_err(&err)?;
    let senders: Vec<Sender> = collect_all(|p| s.store.list_senders(p))
        .await
        .map_err(&err)?
        .into_iter()
        .filter(|x| x.channel == channel)
        .collect();
    let mut languages: BTreeSet<String> = answers
        .iter()
        .flat_map(|a| a.languages())
        .map(|l| l.to_string())
        .collect();
    if values.language.trim().is_empty() {
        values.language = languages.iter().next().cloned().unwrap_or_default();
    } else {
        languages.insert(values.language.trim().to_string());
    }
    let title = match id {
        None => format!("New {} campaign", channel_label(channel)),
        Some(_) => format!("Edit campaign {}", values.name),
    };
    let page = FormPage {
        suggest_zone: id.is_none() && status == StatusCode::OK,
        chrome: Chrome::new(user, title, "campaigns"),
        id,
        channel: channel.as_str(),
        channel_label: channel_label(channel),
        sender_label: sender_label(channel),
        phone: channel.is_phone(),
        senders: senders
            .iter()
            .map(|x| Choice {
                value: x.id.to_string(),
                label: x.address.to_string(),
                selected: x.id.to_string() == values.sender_id.trim(),
            })
            .collect(),
        languages: languages
            .into_iter()
            .map(|l| Choice {
                selected: l == values.language.trim(),
                value: l.clone(),
                label: l,
            })
            .collect(),
        answer_select: answer_select(
            &answers,
            channel,
            &values.language,
            &values.answer_id,
            errors.has("answer_id"),
        ),
        timezones: timezones(),
        values,
        errors,
    };
    Ok(render_status(status, &page))
}

#[derive(Deserialize)]
struct NewQuery {
    channel: Option<String>,
}

async fn new_form(
    State(s): State<AppState>,
    Admin(user): Admin,
    Query(q): Query<NewQuery>,
) -> PageResult {
    let channel = channel_param(q.channel.as_deref());
    form_page(
        &s,
        &user,
        StatusCode::OK,
        None,
        channel,
        CampaignValues::blank(),
        FieldErrors::new(),
    )
    .await
}

async fn edit_form(State(s): State<AppState>, Admin(user): Admin, WebId(id): WebId) -> PageResult {
    let c = s
        .store
        .get_campaign(id)
        .await
        .map_err(campaigns_err(&user))?;
    form_page(
        &s,
        &user,
        StatusCode::OK,
        Some(id),
        c.channel,
        CampaignValues::of(&c),
        FieldErrors::new(),
    )
    .await
}

#[derive(Deserialize)]
struct AnswersForQuery {
    #[serde(default)]
    language: String,
    channel: Option<String>,
    #[serde(default)]
    answer_id: String,
}

/// `<select id="answer-select" name="answer_id">` with the answers that have a variant in
/// `language` (the language select's htmx refresh).
async fn answers_for(
    State(s): State<AppState>,
    Admin(user): Admin,
    Query(q): Query<AnswersForQuery>,
) -> PageResult {
    let answers = collect_all(|p| s.store.list_answers(p))
        .await
        .map_err(campaigns_err(&user))?;
    let channel = channel_param(q.channel.as_deref());
    Ok(super::render(&AnswerSelectFragment {
        answer_select: answer_select(&answers, channel, &q.language, &q.answer_id, false),
    }))
}

/// Where an API error about a campaign field goes on the form, and its message there.
fn place_error(field: &str, message: &str) -> (String, String) {
    let label = |l: &str| {
        if message.starts_with("is ") {
            format!("{l} {message}")
        } else {
            message.to_string()
        }
    };
    match field {
        "name" => ("name".into(), label("Name")),
        "description" => ("description".into(), label("Description")),
        "sender_id" => ("sender_id".into(), label("Sender")),
        "language" => ("language".into(), label("Language")),
        "answer_id" => ("answer_id".into(), label("Answer")),
        "quiet_hours" => ("quiet_hours".into(), message.to_string()),
        "frequency_cap.messages" => ("frequency_cap".into(), format!("Messages {message}")),
        "frequency_cap.days" => ("frequency_cap".into(), format!("Days {message}")),
        "frequency_cap" => ("frequency_cap".into(), message.to_string()),
        "voice_settings.voice" => ("voice".into(), label("Voice")),
        "voice_settings.spoken_language" => ("spoken_language".into(), label("Spoken language")),
        "voice_settings.press_one_prompt" => {
            ("press_one_prompt".into(), label("The press-1 prompt"))
        }
        "voice_settings.agent_unavailable" => (
            "agent_unavailable".into(),
            label("The agent-unavailable message"),
        ),
        "schedule.timezone" | "timezone" => ("timezone".into(), message.to_string()),
        f if f.starts_with("schedule.closed_dates") => ("closed_dates".into(), message.to_string()),
        f if f.starts_with("schedule") => {
            // `schedule.days.mon[0]` → "Monday: ..."
            let day = f
                .strip_prefix("schedule.days.")
                .and_then(|rest| WEEKDAYS.iter().position(|d| rest.starts_with(d)))
                .map(|i| DAY_LABELS[i]);
            match day {
                Some(day) => ("schedule".into(), format!("{day}: {message}")),
                None => ("schedule".into(), label("The schedule")),
            }
        }
        _ => ("form".into(), message.to_string()),
    }
}

fn placed(e: &ValidationError) -> FieldErrors {
    let mut out = FieldErrors::new();
    for fe in &e.0 {
        let (field, message) = place_error(&fe.field, &fe.message);
        out.push(field, message);
    }
    out
}

/// The form checked as the API checks a campaign: on its own, then against its sender and
/// answer. `Ok(Err(errors))` when the form must be shown again.
async fn checked(
    s: &AppState,
    channel: Channel,
    values: &CampaignValues,
) -> Result<Result<CampaignSpec, FieldErrors>, StoreError> {
    let mut unreadable = FieldErrors::new();
    let sender_id = if channel.has_senders() {
        parse_id(&mut unreadable, "sender_id", &values.sender_id)
    } else {
        None
    };
    let answer_id = parse_id(&mut unreadable, "answer_id", &values.answer_id);
    let frequency_cap = if channel.has_senders() {
        values.frequency_cap(&mut unreadable)
    } else {
        None
    };
    let input = CampaignInput {
        name: values.name.clone(),
        description: values.description.clone(),
        channel: channel.as_str().to_string(),
        sender_id,
        language: values.language.clone(),
        answer_id,
        schedule: Some(values.schedule()),
        quiet_hours: channel.is_phone().then_some(values.quiet_hours),
        frequency_cap,
        voice_settings: (channel == Channel::Voice).then(|| values.voice.clone()),
    };
    let spec = match input.validate() {
        Ok(spec) if unreadable.is_empty() => spec,
        Ok(_) => return Ok(Err(unreadable)),
        Err(e) => {
            let mut errors = placed(&e);
            for field in ["sender_id", "answer_id", "frequency_cap"] {
                if let Some(m) = unreadable.get(field) {
                    // Said instead of "is required".
                    errors.remove(field);
                    errors.push(field, m);
                }
            }
            return Ok(Err(errors));
        }
    };
    let sender = match spec.sender_id {
        Some(id) => absent(s.store.get_sender(id).await)?,
        None => None,
    };
    let answer = absent(s.store.get_answer(spec.answer_id).await)?;
    match check_campaign_references(&spec, sender.as_ref(), answer.as_ref()) {
        Ok(()) => Ok(Ok(spec)),
        Err(e) => Ok(Err(placed(&e))),
    }
}

/// What saving the form leads to, as for the settings forms. Saved: the redirect to the
/// campaign's page; a failure: the error page; both as the `Err` that ends the handler (`?`).
/// Refused by the store: its reason on the form (a name taken on the channel goes next to the
/// name), to show the form again.
#[allow(clippy::result_large_err)] // the page to answer with, as `CurrentUser::check_csrf`'s
fn saved(
    user: &CurrentUser,
    result: Result<Campaign, StoreError>,
) -> Result<FieldErrors, Response> {
    let mut errors = FieldErrors::new();
    match result {
        Ok(c) => return Err(Redirect::to(&format!("/campaigns/{}", c.id)).into_response()),
        Err(StoreError::Conflict(m)) => errors.push("name", m),
        Err(StoreError::Invalid { field, message }) => {
            let (f, m) = place_error(field, &message);
            errors.push(f, m);
        }
        Err(other) => return Err(error_page(user, "campaigns", other)),
    }
    Ok(errors)
}

async fn create(
    State(s): State<AppState>,
    Admin(user): Admin,
    Form(pairs): Form<Vec<(String, String)>>,
) -> PageResult {
    let form = FormPairs(pairs);
    user.check_csrf(form.get("csrf"))?;
    let err = campaigns_err(&user);
    let values = CampaignValues::submitted(&form);
    let channel = match form.get("channel").parse::<Channel>() {
        Ok(c) => c,
        Err(e) => {
            let mut errors = FieldErrors::new();
            errors.push("form", e.to_string());
            return form_page(
                &s,
                &user,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                Channel::Sms,
                values,
                errors,
            )
            .await;
        }
    };
    let errors = match checked(&s, channel, &values).await.map_err(&err)? {
        Ok(spec) => saved(&user, s.store.create_campaign(&spec).await)?,
        Err(errors) => errors,
    };
    form_page(
        &s,
        &user,
        StatusCode::UNPROCESSABLE_ENTITY,
        None,
        channel,
        values,
        errors,
    )
    .await
}

async fn update(
    State(s): State<AppState>,
    Admin(user): Admin,
    WebId(id): WebId,
    Form(pairs): Form<Vec<(String, String)>>,
) -> PageResult {
    let form = FormPairs(pairs);
    user.check_csrf(form.get("csrf"))?;
    let err = campaigns_err(&user);
    let current = s.store.get_campaign(id).await.map_err(&err)?;
    // The form edits a campaign within its channel.
    let channel = current.channel;
    let values = CampaignValues::submitted(&form);
    let errors = match checked(&s, channel, &values).await.map_err(&err)? {
        Ok(spec) => saved(&user, s.store.update_campaign(id, &spec).await)?,
        Err(errors) => errors,
    };
    form_page(
        &s,
        &user,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some(id),
        channel,
        values,
        errors,
    )
    .await
}

async fn delete(
    State(s): State<AppState>,
    Admin(user): Admin,
    WebId(id): WebId,
    Form(form): Form<CsrfForm>,
) -> PageResult {
    user.check_csrf(&form.csrf)?;
    let err = campaigns_err(&user);
    let c = s.store.get_campaign(id).await.map_err(&err)?;
    s.store.delete_campaign(id).await.map_err(&err)?;
    Ok(Redirect::to(&format!("/campaigns?channel={}", c.channel)).into_response())
}

// ------------------------------------------------------------------ the campaign page

struct DaySummary {
    label: &'static str,
    hours: String,
}

#[derive(Template)]
#[template(path = "campaign.html")]
struct ShowPage {
    chrome: Chrome,
    id: Uuid,
    channel: &'static str,
    channel_label: &'static str,
    sender_label: Option<&'static str>,
    sender: String,
    language: String,
    answer_id: Uuid,
    answer: String,
    description: String,
    timezone: String,
    days: Vec<DaySummary>,
    /// The holidays, `2026-12-25, 2027-01-01`; empty without.
    closed_dates: String,
    never_opens: bool,
    /// `None` when quiet hours do not apply (email, chat).
    quiet_hours: Option<bool>,
    /// The campaign's own frequency cap in words; `None` for chat (nothing to cap).
    frequency_cap: Option<String>,
    created: String,
    /// The outreach tabs, rendered by [`super::outreaches::section_html`] (askama-escaped
    /// HTML, not user input).
    outreaches_html: String,
    status: String,
    /// The "Send a test" form: `None` for chat campaigns (no sender, nothing to test).
    test: Option<TestForm>,
    /// The funnel over all the campaign's outreaches (SVG from `charts`), its reply rate and
    /// its opt-out rate; `None` before the first recipient.
    report: Option<(String, String, String)>,
    /// How a voice campaign's calls speak, one line per setting; `None` for other channels.
    speech: Option<Vec<(&'static str, String)>>,
    /// Where a chat campaign shows, one line per setting, and its triggers in words; `None`
    /// for other channels, `Some` with no lines before its chat settings are set.
    chat: Option<ChatSummary>,
    /// A chat campaign's figures of the last [`CHAT_FIGURE_DAYS`] days: each day, then the sum.
    chat_figures: Option<(
        Vec<herald_store::ChatDayFigures>,
        herald_store::ChatDayFigures,
    )>,
}

/// The campaign page's "Send a test" form and the campaign's latest test sends.
struct TestForm {
    /// What was typed in "To" (kept after a refusal).
    to: String,
    /// One box per variable the answer uses, with what was typed in it.
    variables: Vec<(String, String)>,
    /// Why the last test was refused or failed.
    error: Option<String>,
    /// Set after a test the provider took: "Sent to … (provider id …)".
    sent: Option<String>,
    recent: Vec<TestSendRow>,
}

struct TestSendRow {
    when: String,
    to: String,
    by: String,
    state: &'static str,
    detail: String,
}

/// How many test sends the campaign page lists.
const TEST_SENDS_SHOWN: u32 = 5;

#[derive(Deserialize)]
struct ShowQuery {
    status: Option<String>,
}

fn schedule_summary(schedule: &Schedule) -> Vec<DaySummary> {
    DAY_LABELS
        .iter()
        .enumerate()
        .map(|(i, label)| {
            let windows = schedule.windows(i);
            DaySummary {
                label,
                hours: if windows.is_empty() {
                    "Closed".into()
                } else {
                    windows
                        .iter()
                        .map(Window::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            }
        })
        .collect()
}

async fn show(
    State(s): State<AppState>,
    user: CurrentUser,
    WebId(id): WebId,
    Query(q): Query<ShowQuery>,
) -> PageResult {
    let err = campaigns_err(&user);
    let c = s.store.get_campaign(id).await.map_err(&err)?;
    let test = if c.channel == Channel::Chat {
        None
    } else {
        Some(TestForm::new(&s, &c, None).await.map_err(&err)?)
    };
    show_page(&s, &user, c, q.status.as_deref(), test).await
}

/// The campaign page, with its sender's address and its answer's name looked up.
async fn show_page(
    s: &AppState,
    user: &CurrentUser,
    c: Campaign,
    status: Option<&str>,
    test: Option<TestForm>,
) -> PageResult {
    let err = campaigns_err(user);
    let sender = match c.sender_id {
        Some(sid) => absent(s.store.get_sender(sid).await)
            .map_err(&err)?
            .map(|x| x.address.to_string())
            .unwrap_or_default(),
        None => String::new(),
    };
    let answer = absent(s.store.get_answer(c.answer_id).await)
        .map_err(&err)?
        .map(|a| a.name)
        .unwrap_or_default();
    let id = c.id;
    let q = ShowQuery {
        status: status.map(str::to_string),
    };
    let status = q.status.clone().unwrap_or_default();
    let outreaches_html = super::outreaches::section_html(
        s.store.as_ref(),
        &c,
        q.status.as_deref().filter(|v| !v.is_empty()),
        None,
    )
    .await
    .map_err(&err)?;
    // The same sums as the figures CSV: the outreaches' own counts, added up.
    let figures = crate::routes::campaigns::campaign_figures(&*s.store, id)
        .await
        .map_err(&err)?;
    let total = figures.total;
    let report = (total.total > 0).then(|| {
        (
            super::charts::funnel(&total),
            super::charts::rate(total.replied, total.sent),
            super::charts::rate(figures.opted_out, total.total),
        )
    });
    let chat_figures = if c.channel == herald_core::Channel::Chat {
        let f = crate::routes::chat_figures::figures_of(s, id, CHAT_FIGURE_DAYS)
            .await
            .map_err(|e| super::outreaches::problem(user, e.status(), e.to_problem().detail))?;
        let mut days = f.days;
        days.reverse();
        Some((days, f.total))
    } else {
        None
    };
    let chat = if c.channel == herald_core::Channel::Chat {
        Some(chat_lines(s, &c).await.map_err(&err)?)
    } else {
        None
    };
    Ok(super::render(&ShowPage {
        chrome: Chrome::new(user, c.name.clone(), "campaigns"),
        id,
        channel: c.channel.as_str(),
        channel_label: channel_label(c.channel),
        sender_label: sender_label(c.channel),
        sender,
        language: c.language.to_string(),
        answer_id: c.answer_id,
        answer,
        description: c.description.clone(),
        timezone: c.schedule.timezone_name().to_string(),
        days: schedule_summary(&c.schedule),
        closed_dates: closed_dates_text(&c.schedule, ", "),
        never_opens: c.schedule.is_always_closed(),
        quiet_hours: c.channel.is_phone().then_some(c.quiet_hours),
        frequency_cap: c.channel.has_senders().then(|| match c.frequency_cap {
            Some(cap) => format!("{} (this campaign's own)", upper_first(&cap.to_string())),
            None => "None of this campaign's own".to_string(),
        }),
        created: date(c.created_at),
        outreaches_html,
        status,
        test,
        report,
        chat,
        chat_figures,
        speech: (c.channel == herald_core::Channel::Voice).then(|| speech_lines(&c)),
    }))
}

/// A chat campaign's settings as its page says them: one line per setting, then its triggers
/// in words.
type ChatSummary = (Vec<(&'static str, String)>, Vec<String>);

/// What a chat campaign's page says of where and when it shows, and its triggers in words
/// (nothing before its chat settings are set).
async fn chat_lines(s: &AppState, c: &Campaign) -> Result<ChatSummary, StoreError> {
    let Some(settings) = s.store.get_chat_settings(c.id).await? else {
        return Ok((Vec::new(), Vec::new()));
    };
    let tz = c.schedule.timezone();
    let site = absent(s.store.get_chat_site(settings.site_id).await)?
        .map(|x| x.name)
        .unwrap_or_default();
    let inbox = match settings.inbox_id {
        Some(id) => absent(s.store.get_inbox(id).await)?
            .map(|x| x.name)
            .unwrap_or_default(),
        None => "None: visitors cannot answer".to_string(),
    };
    let now = s.clock.now();
    let state = if settings.paused {
        "Paused".to_string()
    } else if let Some(at) = settings.starts_at.filter(|t| now < *t) {
        format!("Starts {}", super::outreaches::when(at, tz))
    } else if settings.ends_at.is_some_and(|t| t <= now) {
        "Ended".to_string()
    } else {
        match settings.ends_at {
            Some(end) => format!("Live until {}", super::outreaches::when(end, tz)),
            None => "Live".to_string(),
        }
    };
    let lines = vec![
        ("State", state),
        ("Site", site),
        ("Inbox", inbox),
        ("Order", settings.order.to_string()),
        (
            "Onboarding",
            if settings.onboarding {
                "Asks the visitor's name and email".to_string()
            } else {
                "Off".to_string()
            },
        ),
    ];
    let triggers = settings
        .triggers
        .iter()
        .map(herald_core::chat::TriggerInput::describe)
        .collect();
    Ok((lines, triggers))
}

/// What a voice campaign's page says of how its calls speak (defaults said as such).
fn speech_lines(c: &Campaign) -> Vec<(&'static str, String)> {
    let v = &c.voice_settings;
    let or = |value: &Option<String>, default: String| value.clone().unwrap_or(default);
    vec![
        (
            "Spoken language",
            or(
                &v.spoken_language,
                format!("{} (the campaign's)", c.language),
            ),
        ),
        ("Voice", or(&v.voice, "Twilio's default".to_string())),
        (
            "Press-1 prompt",
            or(
                &v.press_one_prompt,
                "the built-in one of the language".to_string(),
            ),
        ),
        (
            "Agent unavailable",
            or(
                &v.agent_unavailable,
                "the built-in one of the language".to_string(),
            ),
        ),
    ]
}

/// Days of figures a chat campaign's page shows.
const CHAT_FIGURE_DAYS: u32 = 14;

/// `at most 2 messages` → `At most 2 messages`.
fn upper_first(words: &str) -> String {
    let mut chars = words.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

impl TestForm {
    /// The form with one empty box per variable of the campaign's answer (or `typed`), and the
    /// campaign's latest test sends.
    async fn new(
        s: &AppState,
        c: &Campaign,
        typed: Option<(&str, &FormPairs)>,
    ) -> Result<Self, StoreError> {
        let names: Vec<String> = match absent(s.store.get_answer(c.answer_id).await)? {
            Some(answer) => answer
                .variants
                .iter()
                .find(|v| v.language == c.language)
                .and_then(|v| herald_core::Renderer::new(v).ok())
                .map(|r| r.variables().into_iter().map(str::to_string).collect())
                .unwrap_or_default(),
            None => Vec::new(),
        };
        let value = |name: &str| {
            typed
                .map(|(_, form)| form.get(&format!("var_{name}")))
                .unwrap_or_default()
                .to_string()
        };
        let variables = names.iter().map(|n| (n.clone(), value(n))).collect();
        let recent = s
            .store
            .list_test_sends(c.id, TEST_SENDS_SHOWN)
            .await?
            .into_iter()
            .map(|t| TestSendRow {
                when: date(t.created_at),
                to: t.to,
                by: t.requested_by,
                state: match t.state {
                    herald_store::TestSendState::Sending => "Sending (outcome unknown)",
                    herald_store::TestSendState::Sent => "Sent",
                    herald_store::TestSendState::Failed => "Failed",
                },
                detail: t.error.or(t.provider_message_id).unwrap_or_default(),
            })
            .collect();
        Ok(Self {
            to: typed.map(|(to, _)| to.to_string()).unwrap_or_default(),
            variables,
            error: None,
            sent: None,
            recent,
        })
    }
}

/// "Send a test": the campaign's message, rendered with the values typed in, to the admin's own
/// number or address. The campaign page comes back with the outcome (and, after a refusal, what
/// was typed).
async fn test_send(
    State(s): State<AppState>,
    Admin(user): Admin,
    WebId(id): WebId,
    Form(pairs): Form<Vec<(String, String)>>,
) -> PageResult {
    let form = FormPairs(pairs);
    user.check_csrf(form.get("csrf"))?;
    let err = campaigns_err(&user);
    let c = s.store.get_campaign(id).await.map_err(&err)?;
    let to = form.get("to").trim().to_string();
    let mut variables = serde_json::Map::new();
    for (k, v) in &form.0 {
        if let Some(name) = k.strip_prefix("var_") {
            variables.insert(name.to_string(), serde_json::Value::String(v.clone()));
        }
    }
    let outcome = s
        .replies
        .test_send(&herald_engine::TestSendRequest {
            campaign_id: id,
            to: &to,
            variables: &variables,
            requested_by: &user.email,
        })
        .await;
    let (status, error, sent) = match outcome {
        Ok(t) => (
            StatusCode::OK,
            None,
            Some(format!(
                "Test sent to {}{}.",
                t.to,
                t.provider_message_id
                    .map(|p| format!(" (provider id {p})"))
                    .unwrap_or_default()
            )),
        ),
        Err(herald_engine::ReplyError::Store(e)) => return Err(err(e)),
        Err(herald_engine::ReplyError::Invalid { field, message }) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(match field {
                "to" => format!("To: {message}"),
                "variables" => format!("The values: {message}"),
                _ => message,
            }),
            None,
        ),
        Err(herald_engine::ReplyError::OptedOut(m)) => (StatusCode::CONFLICT, Some(m), None),
        Err(herald_engine::ReplyError::Send(e)) => (
            StatusCode::BAD_GATEWAY,
            Some(format!("The test was not sent: {}", e.message())),
            None,
        ),
    };
    let mut test = TestForm::new(&s, &c, Some((&to, &form)))
        .await
        .map_err(&err)?;
    test.error = error;
    test.sent = sent;
    if test.sent.is_some() {
        test.to = to;
        for (_, v) in &mut test.variables {
            v.clear();
        }
    }
    let page = show_page(&s, &user, c, None, Some(test)).await?;
    Ok((status, page).into_response())
}

/// The campaign's figures per outreach as CSV (`GET /api/v1/campaigns/{id}/report.csv`), for
/// anyone signed in.
async fn figures_csv(State(s): State<AppState>, user: CurrentUser, WebId(id): WebId) -> PageResult {
    let err = campaigns_err(&user);
    let csv = crate::routes::campaigns::campaign_figures_csv(&*s.store, id)
        .await
        .map_err(&err)?;
    Ok(crate::routes::campaigns::figures_csv_response(id, csv))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> FormPairs {
        FormPairs(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn the_schedule_table_becomes_the_api_schedule() {
        let values = CampaignValues::submitted(&form(&[
            ("timezone", "Europe/Paris"),
            ("mon_from", "09:00"),
            ("mon_to", "17:00"),
            ("tue_closed", "on"),
            ("tue_from", "09:00"),
            ("tue_to", "17:00"),
            ("wed_from", "20:00:00"),
            ("wed_to", "00:00"),
            ("wed_extra", "08:00-09:00"),
            ("thu_closed", "on"),
            ("fri_closed", "on"),
            ("sat_closed", "on"),
            ("sun_closed", "on"),
        ]));
        let s = values.schedule();
        assert_eq!(s.timezone, "Europe/Paris");
        assert_eq!(s.days["mon"], vec!["09:00-17:00"]);
        assert!(!s.days.contains_key("tue"));
        assert_eq!(s.days["wed"], vec!["20:00-24:00", "08:00-09:00"]);
        assert!(Schedule::parse(&s).is_ok());
    }

    #[test]
    fn schedule_errors_go_next_to_the_schedule_and_name_the_day() {
        let (f, m) = place_error(
            "schedule.days.tue[0]",
            "`17:00-09:00` ends before it starts",
        );
        assert_eq!(f, "schedule");
        assert!(m.starts_with("Tuesday: "), "{m}");
        assert_eq!(place_error("schedule.timezone", "x").0, "timezone");
        assert_eq!(zone_named("New York"), "America/New_York");
        assert_eq!(zone_named(" sao_paulo "), "America/Sao_Paulo");
        assert_eq!(zone_named("Europe/Paris"), "Europe/Paris");
        assert_eq!(
            zone_named("Atlantis"),
            "Atlantis",
            "left for the check to explain"
        );
        assert_eq!(place_error("name", "is required").1, "Name is required");
        assert_eq!(place_error("sender_id", "x").0, "sender_id");
    }
}
