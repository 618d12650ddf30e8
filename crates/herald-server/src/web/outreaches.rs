//! Outreaches in the web UI: a campaign's outreach tabs (an htmx fragment of the campaign page),
//! its CSV template, the upload form, an outreach's summary with live progress (Server-Sent
//! Events), stopping it, and its recipients.
//!
//! The work is the API's: uploads go through [`herald_engine::import_outreach`] (spooled as the
//! API spools them), the event stream and the error report are the API's own handlers behind a
//! session instead of a token.

use super::session::{Admin, Chrome, CurrentUser};
use super::{render, render_status};
use crate::AppState;
use crate::error::ApiError;
use crate::extract::{ApiPath, ApiQuery};
use crate::limits::{Busy, Refusal, UploadPermit};
use crate::routes::outreaches::{clip, drain, read_text, spool};
use crate::web::session::WebId;
use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Multipart, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use herald_core::outreach::{DeliveryState, OutreachStatus, Progress, SkipReason};
use herald_core::{Campaign, Channel, FieldError, Page, SendingHours};
use herald_engine::{OutreachUpload, import_outreach};
use herald_store::{Outreach, RecipientRecord, Store, StoreError};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use uuid::Uuid;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/campaigns/{id}/outreaches-section", get(section))
        .route("/campaigns/{id}/template.csv", get(template_csv))
        .route("/campaigns/{id}/outreaches/new", get(new_outreach))
        .route(
            "/campaigns/{id}/outreaches",
            // The file is spooled to disk and limited by `import_limits`, not by the body limit.
            post(upload).layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/campaigns/{id}/outreaches/review",
            post(super::review::review).layer(DefaultBodyLimit::disable()),
        )
        .route("/outreaches/{id}", get(show))
        .route("/outreaches/{id}/errors.csv", get(errors_csv))
        .route("/outreaches/{id}/recipients.csv", get(recipients_csv))
        .route("/outreaches/{id}/events", get(events))
        .route("/outreaches/{id}/stop", post(stop))
        .route("/outreaches/{id}/recipients", get(recipients))
        .route("/outreaches/{id}/retry-failed", post(retry_failed))
        .route(
            "/outreaches/{id}/requeue-uncertain",
            post(requeue_uncertain),
        )
}

// ---------------------------------------------------------------- shared by the web pages

/// A page that only says what went wrong (an unknown id, a refused action, a storage failure).
#[derive(Template)]
#[template(path = "outreach_problem.html")]
struct ProblemPage {
    chrome: Chrome,
    message: String,
}

/// A page saying what went wrong, with the status.
pub(crate) fn problem(
    user: &CurrentUser,
    status: StatusCode,
    message: impl Into<String>,
) -> Response {
    let title = match status {
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::CONFLICT => "Not possible now",
        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => "Not understood",
        _ => "Something went wrong",
    };
    render_status(
        status,
        &ProblemPage {
            chrome: Chrome::new(user, title, ""),
            message: super::plain_words(&message.into()),
        },
    )
}

/// A store error as a page: unknown ids are 404, refused changes 409; a failure is logged and
/// the person is told no more than that.
pub(crate) fn store_problem(user: &CurrentUser, e: StoreError) -> Response {
    match e {
        StoreError::NotFound { .. } => problem(user, StatusCode::NOT_FOUND, e.to_string()),
        StoreError::Conflict(m) | StoreError::InUse(m) => problem(user, StatusCode::CONFLICT, m),
        StoreError::Invalid { .. } => {
            problem(user, StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
        }
        other => {
            tracing::error!(error = %other, "storage failure on a web page");
            problem(
                user,
                StatusCode::INTERNAL_SERVER_ERROR,
                "Herald could not read or write its database; see the server log.",
            )
        }
    }
}

/// The fields of a posted `application/x-www-form-urlencoded` form once its CSRF token is
/// checked: the `X-CSRF-Token` header htmx adds, else the `csrf` field (a missing or malformed
/// body is an empty form, so it fails the check rather than the parser). `Err` is the 403 page.
#[allow(clippy::result_large_err)] // the page to answer with, as `CurrentUser::check_csrf`'s
pub(crate) fn checked_form(
    user: &CurrentUser,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<HashMap<String, String>, Response> {
    let fields: HashMap<String, String> = url::form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    user.check_csrf_headers(headers, fields.get("csrf").map(String::as_str))?;
    Ok(fields)
}

/// `2026-05-01 09:30 CEST`: an instant as the wall clock of `tz` shows it.
pub(crate) fn when(ts: Timestamp, tz: &TimeZone) -> String {
    ts.to_zoned_datetime(tz.clone())
        .strftime("%Y-%m-%d %H:%M %Z")
        .to_string()
}

fn status_label(s: OutreachStatus) -> &'static str {
    match s {
        OutreachStatus::Scheduled => "Scheduled",
        OutreachStatus::InProgress => "In Progress",
        OutreachStatus::Completed => "Completed",
        OutreachStatus::Stopped => "Stopped",
    }
}

/// The status as a person reads it: a completed outreach says what did not go well
/// ("Completed — 3 failed, 2 uncertain"); `static/app.js` words live updates the same way.
fn outcome_label(s: OutreachStatus, p: &Progress) -> String {
    let mut label = status_label(s).to_string();
    if s == OutreachStatus::Completed {
        let mut left = Vec::new();
        if p.failed > 0 {
            left.push(format!("{} failed", p.failed));
        }
        if p.uncertain > 0 {
            left.push(format!("{} uncertain", p.uncertain));
        }
        if !left.is_empty() {
            label = format!("{label} — {}", left.join(", "));
        }
    }
    label
}

fn state_label(s: DeliveryState) -> &'static str {
    match s {
        DeliveryState::Pending => "Pending",
        DeliveryState::Sending => "Sending",
        DeliveryState::Sent => "Sent",
        DeliveryState::Delivered => "Delivered",
        DeliveryState::Failed => "Failed",
        DeliveryState::Undelivered => "Undelivered",
        DeliveryState::Skipped => "Skipped",
        DeliveryState::Replied => "Replied",
        DeliveryState::Unknown => "Uncertain",
    }
}

fn skip_label(r: SkipReason) -> &'static str {
    match r {
        SkipReason::Suppressed => "suppressed: on the opt-out list",
        SkipReason::Invalid => "invalid: the address cannot be sent to",
        SkipReason::Expired => "expired: the outreach ended before it was sent",
        SkipReason::Stopped => "stopped: the outreach was stopped before it was sent",
        SkipReason::OptedOut => "opted out: the recipient asked not to be messaged",
        SkipReason::FrequencyCap => {
            "frequency cap: the customer was already contacted as often as the cap allows"
        }
    }
}

/// Whether the request came from htmx (it then wants `HX-Redirect` rather than a 303).
fn is_htmx(headers: &HeaderMap) -> bool {
    headers.contains_key("hx-request")
}

/// A 303 to `to`, or for htmx a 200 whose `HX-Redirect` makes the browser go there.
fn go_to(headers: &HeaderMap, to: &str) -> Response {
    if is_htmx(headers) {
        let mut res = StatusCode::OK.into_response();
        if let Ok(v) = HeaderValue::from_str(to) {
            res.headers_mut().insert("hx-redirect", v);
        }
        res
    } else {
        Redirect::to(to).into_response()
    }
}

async fn campaign_or_page(
    store: &dyn Store,
    user: &CurrentUser,
    id: Uuid,
) -> Result<Campaign, Response> {
    store
        .get_campaign(id)
        .await
        .map_err(|e| store_problem(user, e))
}

// ---------------------------------------------------------------- the campaign's outreach tabs

#[derive(Debug, Deserialize)]
struct SectionQuery {
    status: Option<String>,
    after: Option<Uuid>,
}

struct Tab {
    key: &'static str,
    label: &'static str,
    current: bool,
}

struct OutreachRow {
    id: Uuid,
    created: String,
    file_name: String,
    status: String,
    progress: String,
}

#[derive(Template)]
#[template(path = "outreach_section.html")]
struct SectionFragment {
    campaign_id: Uuid,
    tabs: Vec<Tab>,
    current_key: &'static str,
    current_label: &'static str,
    rows: Vec<OutreachRow>,
    next_after: Option<Uuid>,
    notice: Option<String>,
}

/// How many outreaches one tab shows before a "More" link.
const SECTION_PAGE: u32 = 100;

/// The outreach tabs of a campaign as HTML (what `GET /campaigns/{id}/outreaches-section`
/// answers): `status` picks the tab (default: In Progress if the campaign has any, else
/// Scheduled); `after` is the last outreach of the previous page of that tab. The campaign page
/// may embed it directly instead of loading it with htmx.
pub async fn section_html(
    store: &dyn Store,
    campaign: &Campaign,
    status: Option<&str>,
    after: Option<Uuid>,
) -> Result<String, StoreError> {
    let fragment = build_section(store, campaign, status, after).await?;
    Ok(fragment.render().unwrap_or_else(|e| {
        tracing::error!(error = %e, "the outreach tabs could not be rendered");
        "<p class=\"error\">The outreaches could not be shown; see the server log.</p>".into()
    }))
}

async fn build_section(
    store: &dyn Store,
    campaign: &Campaign,
    status: Option<&str>,
    after: Option<Uuid>,
) -> Result<SectionFragment, StoreError> {
    let mut notice = None;
    let chosen = match status.map(str::trim).filter(|s| !s.is_empty()) {
        Some(name) => match name.parse::<OutreachStatus>() {
            Ok(s) => Some(s),
            Err(e) => {
                notice = Some(e.to_string());
                None
            }
        },
        None => None,
    };
    let current = match chosen {
        Some(s) => s,
        None => {
            let one = Page {
                limit: 1,
                after: None,
            };
            let running = store
                .list_outreaches(campaign.id, Some(OutreachStatus::InProgress), one)
                .await?;
            if running.items.is_empty() {
                OutreachStatus::Scheduled
            } else {
                OutreachStatus::InProgress
            }
        }
    };
    let page = Page {
        limit: SECTION_PAGE,
        after,
    };
    let listing = store
        .list_outreaches(campaign.id, Some(current), page)
        .await?;
    let tz = campaign.schedule.timezone();
    let rows = listing
        .items
        .iter()
        .map(|o| OutreachRow {
            id: o.id,
            created: when(o.created_at, tz),
            file_name: o.file_name.clone(),
            status: outcome_label(o.status, &o.progress),
            progress: o.progress.label(),
        })
        .collect();
    Ok(SectionFragment {
        campaign_id: campaign.id,
        tabs: OutreachStatus::ALL
            .into_iter()
            .map(|s| Tab {
                key: s.as_str(),
                label: status_label(s),
                current: s == current,
            })
            .collect(),
        current_key: current.as_str(),
        current_label: status_label(current),
        rows,
        next_after: listing.next_after,
        notice,
    })
}

async fn section(
    user: CurrentUser,
    State(s): State<AppState>,
    WebId(id): WebId,
    Query(q): Query<SectionQuery>,
) -> Response {
    let campaign = match campaign_or_page(&*s.store, &user, id).await {
        Ok(c) => c,
        Err(page) => return page,
    };
    match build_section(&*s.store, &campaign, q.status.as_deref(), q.after).await {
        Ok(fragment) => render(&fragment),
        Err(e) => store_problem(&user, e),
    }
}

// ---------------------------------------------------------------- CSV template

/// The column that holds each recipient's address on the campaign's channel.
fn contact_column(channel: Channel) -> &'static str {
    if channel.is_phone() { "phone" } else { "email" }
}

/// The variables the campaign's answer (in the campaign's language) uses, subject included.
async fn answer_variables(
    store: &dyn Store,
    campaign: &Campaign,
) -> Result<Vec<String>, StoreError> {
    let answer = store.get_answer(campaign.answer_id).await?;
    let mut vars = std::collections::BTreeSet::new();
    if let Some(v) = answer.variant(&campaign.language) {
        vars.extend(v.body.variables().iter().cloned());
        if let Some(subject) = &v.subject {
            vars.extend(subject.variables().iter().cloned());
        }
    }
    Ok(vars.into_iter().collect())
}

fn example_value(variable: &str) -> String {
    match variable {
        "first_name" | "firstname" => "Jane".into(),
        "last_name" | "lastname" => "Doe".into(),
        "name" | "full_name" => "Jane Doe".into(),
        other => format!("{other} value"),
    }
}

async fn template_csv(user: CurrentUser, State(s): State<AppState>, WebId(id): WebId) -> Response {
    let campaign = match campaign_or_page(&*s.store, &user, id).await {
        Ok(c) => c,
        Err(page) => return page,
    };
    if campaign.channel == Channel::Chat {
        return problem(
            &user,
            StatusCode::NOT_FOUND,
            "Chat campaigns greet visitors on web pages; they take no recipient list.",
        );
    }
    let variables = match answer_variables(&*s.store, &campaign).await {
        Ok(v) => v,
        Err(e) => return store_problem(&user, e),
    };
    let contact = contact_column(campaign.channel);
    let variables: Vec<String> = variables
        .into_iter()
        .filter(|v| v != contact && v != "timezone")
        .collect();
    let mut header_row = vec![contact.to_string(), "timezone".to_string()];
    header_row.extend(variables.iter().cloned());
    let mut example = vec![
        if campaign.channel.is_phone() {
            "+14155550123".to_string()
        } else {
            "jane.doe@example.com".to_string()
        },
        campaign.schedule.timezone_name().to_string(),
    ];
    example.extend(variables.iter().map(|v| example_value(v)));
    let mut w = csv::Writer::from_writer(Vec::new());
    let written = w
        .write_record(&header_row)
        .and_then(|()| w.write_record(&example));
    let body = match (written, w.into_inner()) {
        (Ok(()), Ok(bytes)) => bytes,
        _ => {
            return problem(
                &user,
                StatusCode::INTERNAL_SERVER_ERROR,
                "The template could not be written.",
            );
        }
    };
    let stem: String = campaign
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let stem = stem.trim_matches('-');
    let stem = if stem.is_empty() { "recipients" } else { stem };
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{stem}-template.csv\""),
            ),
        ],
        body,
    )
        .into_response()
}

// ---------------------------------------------------------------- upload

/// Field errors of a form, shown next to their fields.
#[derive(Debug, Default)]
pub(crate) struct FieldErrors(pub Vec<FieldError>);

impl FieldErrors {
    /// The message of `field`, if it has one.
    pub fn get(&self, field: &str) -> Option<String> {
        self.0
            .iter()
            .find(|e| e.field == field)
            .map(|e| super::plain_words(&e.message))
    }

    /// Messages of fields that are not on the form (`campaign`, `default_region`...).
    pub fn others(&self, shown: &[&str]) -> Vec<String> {
        self.0
            .iter()
            .filter(|e| !shown.contains(&e.field.as_str()))
            .map(|e| {
                if e.field.is_empty() || e.field == "campaign" {
                    super::plain_words(&e.message)
                } else {
                    format!("{}: {}", e.field, super::plain_words(&e.message))
                }
            })
            .collect()
    }

    fn push(&mut self, field: &str, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The fields the upload form shows its errors next to.
const UPLOAD_FIELDS: [&str; 5] = [
    "file",
    "start_at",
    "end_at",
    "timezone_of_times",
    "default_region",
];

#[derive(Template)]
#[template(path = "outreach_new.html")]
pub(crate) struct UploadPage {
    chrome: Chrome,
    campaign_id: Uuid,
    campaign_name: String,
    contact: &'static str,
    /// Why this campaign takes no upload (chat), instead of the form.
    refused: Option<String>,
    start_at: String,
    end_at: String,
    timezone_of_times: String,
    /// Every IANA zone, for the time zone field's suggestions.
    timezones: &'static [String],
    /// Phone campaigns: the region numbers written without a country code are read in, and the
    /// choices (code, label).
    default_region: String,
    regions: Vec<(String, String)>,
    errors: FieldErrors,
    other_errors: Vec<String>,
    max_mb: u64,
}

impl UploadPage {
    fn new(
        user: &CurrentUser,
        campaign: &Campaign,
        limits: herald_engine::ImportLimits,
        now: Timestamp,
    ) -> Self {
        let tz = campaign.schedule.timezone();
        Self {
            chrome: Chrome::new(
                user,
                format!("Add recipients to {}", campaign.name),
                "campaigns",
            ),
            campaign_id: campaign.id,
            campaign_name: campaign.name.clone(),
            contact: contact_column(campaign.channel),
            refused: (campaign.channel == Channel::Chat).then(|| {
                "Chat campaigns greet visitors on web pages; they take no recipient list.".into()
            }),
            start_at: now
                .to_zoned_datetime(tz.clone())
                .strftime("%Y-%m-%d %H:%M")
                .to_string(),
            end_at: String::new(),
            timezone_of_times: campaign.schedule.timezone_name().to_string(),
            timezones: super::campaigns::timezones(),
            default_region: String::new(),
            regions: match campaign.channel {
                Channel::Sms | Channel::Voice => herald_core::address::phone_regions()
                    .into_iter()
                    .map(|(code, cc)| (code.to_string(), format!("{code} (+{cc})")))
                    .collect(),
                _ => Vec::new(),
            },
            errors: FieldErrors::default(),
            other_errors: Vec::new(),
            max_mb: limits.max_bytes.div_ceil(1024 * 1024),
        }
    }

    fn with_errors(mut self, errors: FieldErrors) -> Self {
        self.other_errors = errors.others(&UPLOAD_FIELDS);
        self.errors = errors;
        self
    }
}

async fn new_outreach(Admin(user): Admin, State(s): State<AppState>, WebId(id): WebId) -> Response {
    match campaign_or_page(&*s.store, &user, id).await {
        Ok(campaign) => {
            let mut page = UploadPage::new(&user, &campaign, s.import_limits, s.clock.now());
            page.default_region = sender_region(&*s.store, &campaign).await;
            render(&page)
        }
        Err(page) => page,
    }
}

/// The region of the campaign's phone number sender: the default for numbers written without a
/// country code (empty when the sender is not a phone number or its region is unknown).
async fn sender_region(store: &dyn Store, campaign: &Campaign) -> String {
    let Some(id) = campaign.sender_id else {
        return String::new();
    };
    match store.get_sender(id).await {
        Ok(sender) => match &sender.address {
            herald_core::Address::Phone(p) => p.region().unwrap_or_default(),
            herald_core::Address::Email(_) => String::new(),
        },
        Err(_) => String::new(),
    }
}

/// A date and 24-hour time (`2026-05-01 09:30`, or `2026-05-01T09:30`) read as the wall clock of
/// `tz`; an RFC 3339 time with an offset is taken as it is.
pub(crate) fn parse_local(value: &str, tz: &TimeZone) -> Result<Timestamp, String> {
    let value = value.trim();
    if let Ok(ts) = value.parse::<Timestamp>() {
        return Ok(ts);
    }
    let shown = clip(value, 40);
    let civil: jiff::civil::DateTime = value
        .parse()
        .map_err(|_| format!("`{shown}` is not a date and time such as 2026-12-01 09:00"))?;
    civil
        .to_zoned_datetime(tz.clone())
        .map(|z| z.timestamp())
        .map_err(|e| {
            format!(
                "`{shown}` cannot be read in {}: {e}",
                tz.iana_name().unwrap_or("that zone")
            )
        })
}

/// The upload form as posted: text fields, and the file spooled to disk.
#[derive(Default)]
struct Upload {
    csrf: Option<String>,
    file: Option<(std::fs::File, String)>,
    start_at: String,
    end_at: String,
    timezone_of_times: String,
    /// `None` when the form has no such field (then the sender's region), `Some("")` for "none".
    default_region: Option<String>,
    /// The digest of the review the form was launched from.
    reviewed: Option<String>,
}

/// Reads the multipart form; problems with the file or a text field become field errors (the
/// rest of a file refused is read and dropped, not stored, so the browser gets the answer rather
/// than a reset connection). `Some(busy)` when the uploads in progress hold all the temporary
/// space they may.
async fn read_upload(
    form: &mut Multipart,
    max_bytes: u64,
    permit: &mut UploadPermit,
    errors: &mut FieldErrors,
) -> (Upload, Option<Busy>) {
    let mut up = Upload::default();
    let mut busy = None;
    loop {
        let mut field = match form.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                errors.push("file", format!("the upload was cut off: {e}"));
                break;
            }
        };
        let name = field.name().unwrap_or_default().to_string();
        if name == "file" {
            let file_name = clip(field.file_name().unwrap_or_default().trim(), 200);
            match spool(&mut field, max_bytes, permit).await {
                Ok(file) => {
                    // A form posted without choosing a file sends an empty, nameless part.
                    let empty = file.metadata().map(|m| m.len() == 0).unwrap_or(false);
                    if !(file_name.is_empty() && empty) {
                        let file_name = if file_name.is_empty() {
                            "recipients.csv".to_string()
                        } else {
                            file_name
                        };
                        up.file = Some((file, file_name));
                    }
                }
                Err(Refusal::Api(e)) => {
                    let p = e.to_problem();
                    match p.errors.first() {
                        Some(fe) => errors.push("file", fe.message.clone()),
                        None => errors.push("file", p.detail),
                    }
                    while let Ok(Some(_)) = field.chunk().await {}
                }
                Err(Refusal::Busy(b)) => {
                    errors.push("file", b.detail.clone());
                    busy = Some(b);
                    while let Ok(Some(_)) = field.chunk().await {}
                }
            }
            continue;
        }
        let text = match read_text(&mut field, &name).await {
            Ok(t) => t,
            Err(e) => {
                let p = e.to_problem();
                let field_name = if UPLOAD_FIELDS.contains(&name.as_str()) {
                    name.as_str()
                } else {
                    "file"
                };
                match p.errors.first() {
                    Some(fe) if field_name == "file" && name != "file" => {
                        errors.push("file", format!("field `{}` {}", fe.field, fe.message));
                    }
                    Some(fe) => errors.push(field_name, fe.message.clone()),
                    None => errors.push(field_name, p.detail),
                }
                while let Ok(Some(_)) = field.chunk().await {}
                continue;
            }
        };
        match name.as_str() {
            "csrf" => up.csrf = Some(text),
            "start_at" => up.start_at = text,
            "end_at" => up.end_at = text,
            "timezone_of_times" => up.timezone_of_times = text,
            "default_region" => up.default_region = Some(text),
            "reviewed" => up.reviewed = Some(text),
            _ => {}
        }
    }
    (up, busy)
}

/// The upload form again with what went wrong, with `status` (and `Retry-After` when busy).
fn refused_page(page: UploadPage, errors: FieldErrors, busy: Option<&Busy>) -> Response {
    let status = busy.map_or(StatusCode::UNPROCESSABLE_ENTITY, |b| b.status);
    let mut res = render_status(status, &page.with_errors(errors));
    if let Some(b) = busy {
        b.retry_after_header(&mut res);
    }
    res
}

/// An upload form read and checked, ready to be reviewed or launched.
pub(crate) struct Received {
    pub user: CurrentUser,
    pub campaign: Campaign,
    pub page: UploadPage,
    pub upload: OutreachUpload,
    /// The review's digest the form carries, if it was reviewed.
    pub reviewed: Option<String>,
    /// Held until the import is over and the spooled file is gone.
    pub permit: UploadPermit,
}

/// What became of a posted upload form.
pub(crate) enum Receipt {
    Ready(Box<Received>),
    /// Refused with field errors (and, when the uploads in progress hold all the temporary
    /// space they may, the `Busy` answer).
    Refused(Box<UploadPage>, FieldErrors, Option<Busy>),
    /// Answered already (an unknown campaign, a failed CSRF check).
    Answered(Response),
}

/// Reads the upload form posted for campaign `id` (the launch's and the review's): the file
/// spooled, the times read in the form's zone, every problem a field error.
pub(crate) async fn receive(
    user: CurrentUser,
    s: &AppState,
    id: Uuid,
    headers: &HeaderMap,
    mut form: Multipart,
) -> Receipt {
    let campaign = match campaign_or_page(&*s.store, &user, id).await {
        Ok(c) => c,
        Err(page) => return Receipt::Answered(page),
    };
    let page = UploadPage::new(&user, &campaign, s.import_limits, s.clock.now());
    let mut permit = match s.gates.uploads.enter() {
        Ok(p) => p,
        Err(busy) => {
            drain(&mut form).await;
            let mut errors = FieldErrors::default();
            errors.push("file", busy.detail.clone());
            return Receipt::Refused(Box::new(page), errors, Some(busy));
        }
    };
    let mut errors = FieldErrors::default();
    let (up, busy) = read_upload(
        &mut form,
        s.import_limits.max_bytes,
        &mut permit,
        &mut errors,
    )
    .await;
    if let Err(refused) = user.check_csrf_headers(headers, up.csrf.as_deref()) {
        return Receipt::Answered(refused);
    }
    let mut page = page;
    page.default_region = match &up.default_region {
        None => sender_region(&*s.store, &campaign).await,
        Some(chosen) => chosen.trim().to_ascii_uppercase(),
    };
    page.start_at = up.start_at.trim().to_string();
    page.end_at = up.end_at.trim().to_string();
    if !up.timezone_of_times.trim().is_empty() {
        page.timezone_of_times = super::campaigns::zone_named(&up.timezone_of_times);
    }
    if busy.is_some() {
        return Receipt::Refused(Box::new(page), errors, busy);
    }
    let tz = match herald_core::schedule::parse_timezone(&page.timezone_of_times) {
        Ok(tz) => Some(tz),
        Err(e) => {
            errors.push("timezone_of_times", e);
            None
        }
    };
    let mut start_at = s.clock.now();
    let mut end_at = None;
    if let Some(tz) = &tz {
        if !page.start_at.is_empty() {
            match parse_local(&page.start_at, tz) {
                Ok(t) => start_at = t,
                Err(e) => errors.push("start_at", e),
            }
        }
        if !page.end_at.is_empty() {
            match parse_local(&page.end_at, tz) {
                Ok(t) => end_at = Some(t),
                Err(e) => errors.push("end_at", e),
            }
        }
    }
    if up.file.is_none() && errors.get("file").is_none() {
        errors.push("file", "is required: choose the CSV file of recipients");
    }
    let file = match up.file {
        Some(f) if errors.is_empty() => f,
        _ => return Receipt::Refused(Box::new(page), errors, None),
    };
    let upload = OutreachUpload {
        campaign_id: campaign.id,
        file: file.0,
        file_name: file.1,
        start_at,
        end_at,
        default_region: Some(page.default_region.clone()).filter(|r| !r.is_empty()),
        limits: s.import_limits,
    };
    Receipt::Ready(Box::new(Received {
        user,
        campaign,
        page,
        upload,
        reviewed: up.reviewed.filter(|r| !r.trim().is_empty()),
        permit,
    }))
}

/// The field errors of an upload the engine refused (422), or the page that says what else
/// went wrong.
pub(crate) fn refusal_errors(
    user: &CurrentUser,
    e: herald_engine::ImportOutreachError,
) -> Result<FieldErrors, Box<Response>> {
    let e = ApiError::from(e);
    if e.status() == StatusCode::UNPROCESSABLE_ENTITY {
        let p = e.to_problem();
        let mut errors = FieldErrors::default();
        if p.errors.is_empty() {
            errors.push("file", p.detail);
        }
        errors.0.extend(p.errors);
        Ok(errors)
    } else {
        let p = e.to_problem();
        Err(Box::new(problem(user, e.status(), p.detail)))
    }
}

async fn upload(
    Admin(user): Admin,
    State(s): State<AppState>,
    WebId(id): WebId,
    headers: HeaderMap,
    form: Multipart,
) -> Response {
    let r = match receive(user, &s, id, &headers, form).await {
        Receipt::Ready(r) => *r,
        Receipt::Refused(page, errors, busy) => return refused_page(*page, errors, busy.as_ref()),
        Receipt::Answered(res) => return res,
    };
    let Received {
        user,
        page,
        mut upload,
        reviewed,
        permit,
        ..
    } = r;
    let imported = match reviewed {
        Some(digest) => match herald_engine::check_reviewed(&mut upload.file, &digest) {
            Ok(()) => import_outreach(s.store.clone(), upload, Arc::new(|_| {})).await,
            Err(e) => Err(e),
        },
        None => import_outreach(s.store.clone(), upload, Arc::new(|_| {})).await,
    };
    drop(permit);
    match imported {
        Ok(outreach) => {
            s.outreach_created(outreach.summary.rows);
            go_to(&headers, &format!("/outreaches/{}", outreach.id))
        }
        Err(e) => match refusal_errors(&user, e) {
            Ok(errors) => refused_page(page, errors, None),
            Err(res) => *res,
        },
    }
}

// ---------------------------------------------------------------- one outreach

/// What the outreach and recipients pages show of an outreach.
struct OutreachView {
    id: Uuid,
    campaign_id: Uuid,
    campaign_name: String,
    file_name: String,
    status: OutreachStatus,
    status_key: &'static str,
    status_label: String,
    is_final: bool,
    progress: Progress,
    progress_label: String,
    created: String,
    start: String,
    end: Option<String>,
    finished: Option<String>,
    rows: u64,
    accepted: u64,
    invalid: u64,
    duplicates: u64,
    suppressed: u64,
    encoding: String,
    encoding_note: Option<String>,
    zone: String,
    /// While nothing can go out: when sending opens next and why not before.
    opens: Option<String>,
    /// What decides when a waiting recipient goes out (`None` without the campaign).
    wait: Option<Waiting>,
}

/// When a live outreach's recipients may go out, as of `now`.
struct Waiting {
    now: Timestamp,
    live: bool,
    /// The campaign's schedule, and its hours as quiet hours narrow them.
    schedule: herald_core::Schedule,
    hours: SendingHours,
}

impl Waiting {
    /// Why a waiting recipient waits, and until when, in words (empty when it does not wait).
    /// A recipient deferred by the dispatcher is due at its next sending window; one with an
    /// error waits for a retry; one due now waits its turn at the sender's rate.
    fn reason(&self, r: &RecipientRecord, tz: &TimeZone) -> String {
        if r.state != DeliveryState::Pending || !self.live {
            return String::new();
        }
        let zone = r
            .timezone
            .as_deref()
            .and_then(|z| herald_core::schedule::parse_timezone(z).ok());
        match r.due_at.filter(|due| *due > self.now) {
            Some(due) if r.error_code.is_some() => {
                format!("Tried again {}, after this error", when(due, tz))
            }
            Some(due) => {
                let why =
                    if self.hours.quiet_hours() && self.schedule.is_open(self.now, zone.as_ref()) {
                        "quiet hours: no texts or calls between 21:00 and 08:00 in its time zone"
                    } else {
                        "outside the campaign's sending hours in its time zone"
                    };
                format!("Waits until {} ({why})", when(due, tz))
            }
            None if self.hours.may_send_now(self.now, zone.as_ref()) => {
                "Due now: waits its turn within the sender's rate".to_string()
            }
            None => "Waits for its sending hours to open".to_string(),
        }
    }
}

/// `in 2 d 7 h`, `in 3 h 5 min`, `in 12 min`: how far off `later` is, to the minute.
pub(crate) fn relative(now: Timestamp, later: Timestamp) -> String {
    let minutes = (later.as_second() - now.as_second())
        .max(0)
        .unsigned_abs()
        .div_ceil(60);
    let (d, h, m) = (minutes / 1440, minutes % 1440 / 60, minutes % 60);
    match (d, h, m) {
        (0, 0, 0) => "in less than a minute".to_string(),
        (0, 0, m) => format!("in {m} min"),
        (0, h, m) => format!("in {h} h {m} min"),
        (d, h, _) => format!("in {d} d {h} h"),
    }
}

/// While a live outreach has recipients waiting and its campaign's hours are closed: when
/// sending opens next, in the campaign's zone and relative to `now`, and why not before.
/// Recipients with a time zone of their own follow their own clock; the line says so.
fn opens_note(o: &Outreach, c: &Campaign, hours: &SendingHours, now: Timestamp) -> Option<String> {
    if o.status.is_final() || o.progress.pending == 0 {
        return None;
    }
    if hours.never_sends() {
        return Some(
            "Nothing will be sent: the campaign's sending hours are closed on every day. Open \
             some hours on the campaign; waiting recipients then go out in them."
                .to_string(),
        );
    }
    let from = o.start_at.max(now);
    let next = hours.next_send_time(from, None)?;
    if next <= now {
        return None;
    }
    let tz = c.schedule.timezone();
    let at = next.to_zoned_datetime(tz.clone());
    let shown = if next.as_second() - now.as_second() < 6 * 86_400 {
        at.strftime("%a %H:%M %Z").to_string()
    } else {
        at.strftime("%a %Y-%m-%d %H:%M %Z").to_string()
    };
    let why = if from > now && next == from {
        "the outreach starts then"
    } else if hours.quiet_hours() && c.schedule.is_open(from, None) {
        "quiet hours: no texts or calls between 21:00 and 08:00"
    } else {
        "outside the campaign's sending hours"
    };
    let mut note = format!("Sending opens {shown}, {} ({why}).", relative(now, next));
    if o.end_at.is_some_and(|end| end <= next) {
        note.push_str(
            " The outreach ends before then: recipients still waiting at its end are skipped.",
        );
    }
    Some(note)
}

impl OutreachView {
    fn new(o: &Outreach, campaign: Option<&Campaign>, now: Timestamp) -> Self {
        let wait = campaign.map(|c| Waiting {
            now,
            live: !o.status.is_final(),
            schedule: c.schedule.clone(),
            hours: SendingHours::new(&c.schedule, c.channel, c.quiet_hours),
        });
        let tz = campaign
            .map(|c| c.schedule.timezone().clone())
            .unwrap_or(TimeZone::UTC);
        let encoding = o.summary.encoding.clone();
        let encoding_note = (!encoding.eq_ignore_ascii_case("utf-8")).then(|| {
            format!(
                "The file was not UTF-8; it was read as {encoding}. Check that names with accents look right below."
            )
        });
        Self {
            id: o.id,
            campaign_id: o.campaign_id,
            campaign_name: campaign.map(|c| c.name.clone()).unwrap_or_default(),
            file_name: o.file_name.clone(),
            status: o.status,
            status_key: o.status.as_str(),
            status_label: outcome_label(o.status, &o.progress),
            is_final: o.status.is_final(),
            progress: o.progress,
            progress_label: o.progress.label(),
            created: when(o.created_at, &tz),
            start: when(o.start_at, &tz),
            end: o.end_at.map(|t| when(t, &tz)),
            finished: o.finished_at.map(|t| when(t, &tz)),
            rows: o.summary.rows,
            accepted: o.summary.accepted,
            invalid: o.summary.invalid,
            duplicates: o.summary.duplicates,
            suppressed: o.summary.suppressed,
            encoding,
            encoding_note,
            zone: tz.iana_name().unwrap_or("UTC").to_string(),
            opens: wait
                .as_ref()
                .zip(campaign)
                .and_then(|(w, c)| opens_note(o, c, &w.hours, now)),
            wait,
        }
    }
}

/// The outreach and its campaign (gone campaigns delete their outreaches, but a race may leave
/// the outreach readable a moment longer).
async fn outreach_view(
    store: &dyn Store,
    user: &CurrentUser,
    id: Uuid,
    now: Timestamp,
) -> Result<OutreachView, Response> {
    let o = store
        .get_outreach(id)
        .await
        .map_err(|e| store_problem(user, e))?;
    let campaign = store.get_campaign(o.campaign_id).await.ok();
    Ok(OutreachView::new(&o, campaign.as_ref(), now))
}

#[derive(Template)]
#[template(path = "outreach.html")]
struct OutreachPage {
    chrome: Chrome,
    o: OutreachView,
    can_stop: bool,
    can_retry: bool,
    report: ReportView,
}

/// The outreach's report as the page shows it: charts (SVG markup made by `charts`, which
/// escapes every label) and rates in words.
struct ReportView {
    funnel: String,
    /// `None` when there is nothing to draw.
    per_hour: Option<String>,
    failures: Option<String>,
    skipped: Option<String>,
    reply_rate: String,
    opt_out_rate: String,
    median_reply: String,
}

impl ReportView {
    fn new(r: &herald_store::OutreachReport, tz: &TimeZone) -> Self {
        use super::charts;
        Self {
            funnel: charts::funnel(&r.progress),
            per_hour: (!r.sent_per_hour.is_empty()).then(|| charts::per_hour(&r.sent_per_hour, tz)),
            failures: (!r.failures.is_empty())
                .then(|| charts::reasons("Failures by error code", &r.failures, "bar bad")),
            skipped: (!r.skipped.is_empty())
                .then(|| charts::reasons("Skipped by reason", &r.skipped, "bar muted")),
            reply_rate: charts::rate(r.progress.replied, r.progress.sent),
            opt_out_rate: charts::rate(r.opted_out, r.progress.total),
            median_reply: r
                .median_reply_seconds
                .map_or_else(|| "—".to_string(), charts::duration),
        }
    }
}

async fn show(user: CurrentUser, State(s): State<AppState>, WebId(id): WebId) -> Response {
    let o = match outreach_view(&*s.store, &user, id, s.clock.now()).await {
        Ok(o) => o,
        Err(page) => return page,
    };
    let report = match s.store.outreach_report(id).await {
        Ok(r) => r,
        Err(e) => return store_problem(&user, e),
    };
    let tz = herald_core::schedule::parse_timezone(&o.zone).unwrap_or(TimeZone::UTC);
    render(&OutreachPage {
        report: ReportView::new(&report, &tz),
        chrome: Chrome::new(&user, format!("Outreach {}", o.file_name), "campaigns"),
        can_stop: user.is_admin() && !o.is_final,
        can_retry: user.is_admin() && o.progress.failed > 0 && o.status != OutreachStatus::Stopped,
        o,
    })
}

async fn errors_csv(user: CurrentUser, State(s): State<AppState>, WebId(id): WebId) -> Response {
    if let Err(e) = s.store.get_outreach(id).await {
        return store_problem(&user, e);
    }
    match crate::routes::outreaches::outreach_errors(State(s), ApiPath(id)).await {
        Ok(res) => res,
        Err(e) => problem(&user, e.status(), e.to_problem().detail),
    }
}

/// The API's export of the recipients, for a signed-in user.
async fn recipients_csv(
    user: CurrentUser,
    State(s): State<AppState>,
    WebId(id): WebId,
    Query(q): Query<crate::routes::tracking::ExportQuery>,
) -> Response {
    if let Err(e) = s.store.get_outreach(id).await {
        return store_problem(&user, e);
    }
    match crate::routes::tracking::recipients_csv(State(s), ApiPath(id), ApiQuery(q)).await {
        Ok(res) => res,
        Err(e) => problem(&user, e.status(), e.to_problem().detail),
    }
}

/// The API's event stream; a web user's streams count against `event_streams_per_caller` as a
/// token's do.
async fn events(user: CurrentUser, State(s): State<AppState>, WebId(id): WebId) -> Response {
    let who = format!("user `{}`", user.email);
    match crate::routes::tracking::events_for(&s, id, format!("user:{}", user.id), &who).await {
        Ok(stream) => stream.into_response(),
        Err(Refusal::Busy(busy)) => busy.into_response(),
        Err(Refusal::Api(e)) => problem(&user, e.status(), e.to_problem().detail),
    }
}

async fn stop(
    Admin(user): Admin,
    State(s): State<AppState>,
    WebId(id): WebId,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(refused) = checked_form(&user, &headers, &body) {
        return refused;
    }
    match s.store.stop_outreach(id, s.clock.now()).await {
        Ok(_) => go_to(&headers, &format!("/outreaches/{id}")),
        Err(e) => store_problem(&user, e),
    }
}

// ---------------------------------------------------------------- recipients

#[derive(Debug, Deserialize)]
struct RecipientsQuery {
    state: Option<String>,
    after: Option<i64>,
    retried: Option<u64>,
    requeued: Option<u64>,
}

impl RecipientsQuery {
    /// The first page of the recipients in `state`.
    fn of_state(state: &str) -> Self {
        Self {
            state: Some(state.into()),
            after: None,
            retried: None,
            requeued: None,
        }
    }
}

/// Recipients per page.
const RECIPIENT_PAGE: u32 = 50;
/// Variable columns the page shows at most (the API lists them all).
const PAGE_COLUMNS: usize = 100;
/// Characters of a variable's value the page shows at most.
const PAGE_VALUE_CHARS: usize = 200;

struct Filter {
    href: String,
    label: &'static str,
    current: bool,
}

struct RecipientRow {
    id: i64,
    line: u64,
    address: String,
    state_key: &'static str,
    state_label: &'static str,
    detail: String,
    attempts: u32,
    sent_at: String,
    values: Vec<String>,
}

#[derive(Template)]
#[template(path = "outreach_recipients.html")]
struct RecipientsPage {
    chrome: Chrome,
    o: OutreachView,
    filters: Vec<Filter>,
    state_label: Option<&'static str>,
    /// The filter's state as the URL names it (`unknown`).
    state_key: Option<&'static str>,
    variables: Vec<String>,
    /// Variable columns on this page beyond the ones shown.
    hidden_columns: usize,
    rows: Vec<RecipientRow>,
    next_href: Option<String>,
    first_href: Option<String>,
    can_retry: bool,
    can_requeue: bool,
    notice: Option<String>,
    error: Option<String>,
}

fn recipient_row(
    r: &RecipientRecord,
    variables: &[String],
    tz: &TimeZone,
    wait: Option<&Waiting>,
) -> RecipientRow {
    let mut detail = Vec::new();
    if let Some(why) = wait.map(|w| w.reason(r, tz)).filter(|w| !w.is_empty()) {
        detail.push(why);
    }
    if let Some(reason) = r.skip_reason {
        detail.push(skip_label(reason).to_string());
    }
    match (&r.error_code, &r.error_message) {
        (Some(code), Some(msg)) => detail.push(format!("{code}: {msg}")),
        (Some(code), None) => detail.push(code.clone()),
        (None, Some(msg)) => detail.push(msg.clone()),
        (None, None) => {}
    }
    RecipientRow {
        id: r.id,
        line: r.line,
        address: r.address.clone(),
        state_key: r.state.as_str(),
        state_label: state_label(r.state),
        detail: detail.join("; "),
        attempts: r.attempts,
        sent_at: r.sent_at.map(|t| when(t, tz)).unwrap_or_default(),
        values: variables
            .iter()
            .map(|name| match r.variables.get(name) {
                Some(serde_json::Value::String(s)) => clip(s, PAGE_VALUE_CHARS),
                Some(serde_json::Value::Null) | None => String::new(),
                Some(other) => clip(&other.to_string(), PAGE_VALUE_CHARS),
            })
            .collect(),
    }
}

async fn recipients_page(
    s: &AppState,
    user: &CurrentUser,
    id: Uuid,
    q: RecipientsQuery,
    error: Option<String>,
) -> Response {
    let o = match outreach_view(&*s.store, user, id, s.clock.now()).await {
        Ok(o) => o,
        Err(page) => return page,
    };
    let state = match q.state.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(name) => match name.parse::<DeliveryState>() {
            Ok(state) => Some(state),
            Err(e) => return problem(user, StatusCode::BAD_REQUEST, e.to_string()),
        },
    };
    let after = q.after.unwrap_or(0).max(0);
    let mut items = match s
        .store
        .list_recipients(id, state, after, RECIPIENT_PAGE + 1)
        .await
    {
        Ok(items) => items,
        Err(e) => return store_problem(user, e),
    };
    let more = items.len() > RECIPIENT_PAGE as usize;
    items.truncate(RECIPIENT_PAGE as usize);
    let state_param = state
        .map(|st| format!("state={}&", st.as_str()))
        .unwrap_or_default();
    let base = format!("/outreaches/{id}/recipients");
    let next_href = more
        .then(|| {
            items
                .last()
                .map(|r| format!("{base}?{state_param}after={}", r.id))
        })
        .flatten();
    let first_href = (after > 0).then(|| match state {
        Some(st) => format!("{base}?state={}", st.as_str()),
        None => base.clone(),
    });
    // The variables' columns: the names on this page in first-seen order, the first
    // PAGE_COLUMNS of them shown. One pass over each row's names, whatever their number.
    let mut seen: HashSet<&str> = HashSet::new();
    let mut variables: Vec<String> = Vec::new();
    for r in &items {
        if let Some(map) = r.variables.as_object() {
            for name in map.keys() {
                if seen.insert(name.as_str()) && variables.len() < PAGE_COLUMNS {
                    variables.push(name.clone());
                }
            }
        }
    }
    let hidden_columns = seen.len() - variables.len();
    drop(seen);
    let tz = herald_core::schedule::parse_timezone(&o.zone).unwrap_or(TimeZone::UTC);
    let rows = items
        .iter()
        .map(|r| recipient_row(r, &variables, &tz, o.wait.as_ref()))
        .collect();
    let mut filters = vec![Filter {
        href: base.clone(),
        label: "All",
        current: state.is_none(),
    }];
    filters.extend(DeliveryState::ALL.into_iter().map(|st| Filter {
        href: format!("{base}?state={}", st.as_str()),
        label: state_label(st),
        current: state == Some(st),
    }));
    let notice = q
        .retried
        .map(|n| match n {
            0 => "No recipient had failed: nothing was queued again.".to_string(),
            1 => "1 failed recipient was queued again.".to_string(),
            n => format!("{n} failed recipients were queued again."),
        })
        .or(q.requeued.map(|n| match n {
            0 => "No recipient was uncertain: nothing was queued again.".to_string(),
            1 => "1 uncertain recipient was queued again.".to_string(),
            n => format!("{n} uncertain recipients were queued again."),
        }));
    let status = if error.is_some() {
        StatusCode::CONFLICT
    } else {
        StatusCode::OK
    };
    render_status(
        status,
        &RecipientsPage {
            chrome: Chrome::new(user, format!("Recipients of {}", o.file_name), "campaigns"),
            can_retry: user.is_admin()
                && o.progress.failed > 0
                && o.status != OutreachStatus::Stopped,
            can_requeue: user.is_admin()
                && o.progress.uncertain > 0
                && o.status != OutreachStatus::Stopped,
            o,
            filters,
            state_label: state.map(state_label),
            state_key: state.map(DeliveryState::as_str),
            variables,
            hidden_columns,
            rows,
            next_href,
            first_href,
            notice,
            error,
        },
    )
}

async fn recipients(
    user: CurrentUser,
    State(s): State<AppState>,
    WebId(id): WebId,
    Query(q): Query<RecipientsQuery>,
) -> Response {
    recipients_page(&s, &user, id, q, None).await
}

async fn retry_failed(
    Admin(user): Admin,
    State(s): State<AppState>,
    WebId(id): WebId,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(refused) = checked_form(&user, &headers, &body) {
        return refused;
    }
    match s.store.retry_failed(id, s.clock.now()).await {
        Ok(n) => go_to(
            &headers,
            &format!("/outreaches/{id}/recipients?retried={n}"),
        ),
        Err(StoreError::Conflict(message)) => {
            let q = RecipientsQuery::of_state("failed");
            recipients_page(&s, &user, id, q, Some(message)).await
        }
        Err(e) => store_problem(&user, e),
    }
}

/// Queues the uncertain recipients again, once the admin ticked that a customer may get the
/// message twice.
async fn requeue_uncertain(
    Admin(user): Admin,
    State(s): State<AppState>,
    WebId(id): WebId,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fields = match checked_form(&user, &headers, &body) {
        Ok(fields) => fields,
        Err(refused) => return refused,
    };
    let uncertain = || RecipientsQuery::of_state("unknown");
    if fields.get("may_send_twice").map(String::as_str) != Some("yes") {
        let message = "Nothing was queued: tick the box to accept that a customer who already \
                       has the message may get it twice.";
        return recipients_page(&s, &user, id, uncertain(), Some(message.into())).await;
    }
    match s.store.requeue_uncertain(id, s.clock.now()).await {
        Ok(n) => go_to(
            &headers,
            &format!("/outreaches/{id}/recipients?requeued={n}"),
        ),
        Err(StoreError::Conflict(message)) => {
            recipients_page(&s, &user, id, uncertain(), Some(message)).await
        }
        Err(e) => store_problem(&user, e),
    }
}
