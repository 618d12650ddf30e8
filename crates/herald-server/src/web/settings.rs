//! Settings (admins only): inboxes, senders and answers, with the answer's live preview.
//!
//! Every form is checked with the same `herald_core::*Input::validate` as the JSON API, so the
//! messages are the API's; each error is shown next to its field (`<p class="field-error"
//! id="{field}-error">`) and the form comes back with what was typed and status 422.
//!
//! Also shared with [`super::campaigns`]: [`FieldErrors`], [`MessagePage`], [`error_page`],
//! [`collect_all`], [`FormPairs`] and [`CsrfForm`].

use super::render_status;
use super::session::{Admin, Chrome, CurrentUser};
use crate::AppState;
use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use herald_core::render::Renderer;
use herald_core::{
    AnswerInput, AnswerVariantInput, Inbox, InboxInput, Listing, PAGE_MAX, Page, Sender,
    SenderInput, ValidationError,
};
use herald_store::StoreError;
use serde::Deserialize;
use std::collections::{BTreeSet, HashMap};
use uuid::Uuid;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/settings", get(overview))
        .route("/settings/inboxes", get(list_inboxes).post(create_inbox))
        .route("/settings/inboxes/{id}", get(edit_inbox).post(update_inbox))
        .route("/settings/inboxes/{id}/delete", post(delete_inbox))
        .route("/settings/senders", get(list_senders).post(create_sender))
        .route(
            "/settings/senders/{id}",
            get(edit_sender).post(update_sender),
        )
        .route("/settings/senders/{id}/delete", post(delete_sender))
        .route("/settings/answers", get(list_answers).post(create_answer))
        .route("/settings/answers/new", get(new_answer))
        .route("/settings/answers/preview", post(preview_answer))
        .route(
            "/settings/answers/{id}",
            get(edit_answer).post(update_answer),
        )
        .route("/settings/answers/{id}/delete", post(delete_answer))
}

type PageResult = Result<Response, Response>;

// ------------------------------------------------------------------ shared helpers

/// Field errors of a form, keyed by the form field's name (`name`, `body_0`, `schedule`...).
/// Several messages for one field are joined.
#[derive(Debug, Clone, Default)]
pub struct FieldErrors(Vec<(String, String)>);

impl FieldErrors {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push((field.into(), message.into()));
    }

    /// The API's errors placed on form fields: `place` maps an API field path (`name`,
    /// `variants[0].body`, `schedule.days.mon[0]`) to the form field it belongs next to and the
    /// words to put before the message when it starts with "is ..." (`Name is required`).
    pub fn from_validation(
        e: &ValidationError,
        place: impl Fn(&str) -> (String, &'static str),
    ) -> Self {
        let mut out = Self::new();
        for fe in &e.0 {
            let (field, label) = place(&fe.field);
            out.push(field, with_label(label, &fe.message));
        }
        out
    }

    /// Every message for `field`, joined; `None` when the field is fine.
    pub fn get(&self, field: &str) -> Option<String> {
        let msgs: Vec<&str> = self
            .0
            .iter()
            .filter(|(f, _)| f == field)
            .map(|(_, m)| m.as_str())
            .collect();
        (!msgs.is_empty()).then(|| msgs.join("; "))
    }

    pub fn has(&self, field: &str) -> bool {
        self.0.iter().any(|(f, _)| f == field)
    }

    /// Forgets the messages of `field` (to say something more precise instead).
    pub fn remove(&mut self, field: &str) {
        self.0.retain(|(f, _)| f != field);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn count(&self) -> usize {
        self.0.len()
    }
}

/// `is required` next to the Name field reads better as `Name is required`.
fn with_label(label: &str, message: &str) -> String {
    let bare = ["is ", "needs ", "has "]
        .iter()
        .any(|p| message.starts_with(p));
    if bare && !label.is_empty() {
        format!("{label} {message}")
    } else {
        message.to_string()
    }
}

/// A page that only says something (not found, in use, a storage failure).
#[derive(Template)]
#[template(path = "settings_message.html")]
pub struct MessagePage {
    pub chrome: Chrome,
    pub message: String,
    pub back_href: String,
    pub back_label: String,
}

/// A store failure as a page: 404 for a missing row, 409 for one in use, 500 (logged, no
/// internals shown) for the rest.
pub fn error_page(user: &CurrentUser, section: &'static str, e: StoreError) -> Response {
    let (status, title, message) = match &e {
        StoreError::NotFound { .. } => (StatusCode::NOT_FOUND, "Not found", e.to_string()),
        StoreError::InUse(m) | StoreError::Conflict(m) => {
            (StatusCode::CONFLICT, "Cannot do that", m.clone())
        }
        StoreError::Invalid { .. } => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "Cannot do that",
            e.to_string(),
        ),
        _ => {
            tracing::error!(error = %e, "storage failure");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "The database could not complete the request; see the server log.".to_string(),
            )
        }
    };
    let (back_href, back_label) = match section {
        "settings" => ("/settings", "Back to Settings"),
        _ => ("/campaigns", "Back to Campaigns"),
    };
    render_status(
        status,
        &MessagePage {
            chrome: Chrome::new(user, title, section),
            message,
            back_href: back_href.into(),
            back_label: back_label.into(),
        },
    )
}

/// Every item of a paginated store listing.
pub async fn collect_all<T, F, Fut>(mut list: F) -> Result<Vec<T>, StoreError>
where
    F: FnMut(Page) -> Fut,
    Fut: Future<Output = Result<Listing<T>, StoreError>>,
{
    let mut out = Vec::new();
    let mut page = Page {
        limit: PAGE_MAX,
        after: None,
    };
    loop {
        let listing = list(page).await?;
        out.extend(listing.items);
        match listing.next_after {
            Some(after) => page.after = Some(after),
            None => return Ok(out),
        }
    }
}

/// A submitted form as its `name=value` pairs (for checkboxes and numbered fields).
#[derive(Debug, Default)]
pub struct FormPairs(pub Vec<(String, String)>);

impl FormPairs {
    /// The value of a field, `""` when it was not sent.
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    /// Whether a field was sent at all (a ticked checkbox).
    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }
}

/// An optional id from a `<select>`: empty is `None`; something that is not an id is an error
/// for `field`.
pub fn parse_id(errors: &mut FieldErrors, field: &str, raw: &str) -> Option<Uuid> {
    let raw = raw.trim();
    if raw.is_empty() {
        return None;
    }
    match raw.parse() {
        Ok(id) => Some(id),
        Err(_) => {
            errors.push(
                field,
                format!("`{raw}` is not an id; choose one from the list"),
            );
            None
        }
    }
}

/// One `<option>`.
#[derive(Debug, Clone)]
pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

fn settings_err(user: &CurrentUser) -> impl Fn(StoreError) -> Response + '_ {
    move |e| error_page(user, "settings", e)
}

/// The form field a store refusal belongs next to (`Conflict`: `default_field`; `Invalid`:
/// its field), or the refusal itself when it is not about the form.
fn store_form_errors(e: StoreError, default_field: &str) -> Result<FieldErrors, StoreError> {
    let mut errors = FieldErrors::new();
    match e {
        StoreError::Conflict(m) | StoreError::InUse(m) => errors.push(default_field, m),
        StoreError::Invalid { field, message } => errors.push(field, message),
        other => return Err(other),
    }
    Ok(errors)
}

/// What a form's store write leads to. Saved: the redirect to `to`; a failure: the error page;
/// both as the `Err` that ends the handler (`?`), as a refused CSRF token does. Refused by the
/// store: its reason next to the form field it is about (see [`store_form_errors`]), to show
/// the form again.
#[allow(clippy::result_large_err)] // the page to answer with, as `CurrentUser::check_csrf`'s
fn saved<T>(
    user: &CurrentUser,
    result: Result<T, StoreError>,
    to: &str,
    default_field: &str,
) -> Result<FieldErrors, Response> {
    match result {
        Ok(_) => Err(Redirect::to(to).into_response()),
        Err(e) => store_form_errors(e, default_field).map_err(settings_err(user)),
    }
}

/// What a delete from a settings list leads to. Done: the redirect to the list at `to`; a
/// failure: the error page; both as the `Err` that ends the handler, as in [`saved`]. Refused
/// because the row is in use: the store's message, for the list to say (409).
#[allow(clippy::result_large_err)] // the page to answer with, as `CurrentUser::check_csrf`'s
fn deleted(
    user: &CurrentUser,
    result: Result<(), StoreError>,
    to: &str,
) -> Result<String, Response> {
    match result {
        Ok(()) => Err(Redirect::to(to).into_response()),
        Err(StoreError::InUse(m)) => Ok(m),
        Err(e) => Err(error_page(user, "settings", e)),
    }
}

/// A form with nothing but the CSRF token (delete buttons).
#[derive(Debug, Default, Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    pub csrf: String,
}

// ------------------------------------------------------------------ overview

#[derive(Template)]
#[template(path = "settings.html")]
struct OverviewPage {
    chrome: Chrome,
    inboxes: usize,
    senders: usize,
    answers: usize,
}

async fn overview(State(s): State<AppState>, Admin(user): Admin) -> PageResult {
    let err = settings_err(&user);
    let inboxes = collect_all(|p| s.store.list_inboxes(p))
        .await
        .map_err(&err)?;
    let senders = collect_all(|p| s.store.list_senders(p))
        .await
        .map_err(&err)?;
    let answers = collect_all(|p| s.store.list_answers(p))
        .await
        .map_err(&err)?;
    Ok(super::render(&OverviewPage {
        chrome: Chrome::new(&user, "Settings", "settings"),
        inboxes: inboxes.len(),
        senders: senders.len(),
        answers: answers.len(),
    }))
}

// ------------------------------------------------------------------ inboxes

#[derive(Debug, Clone, Default, Deserialize)]
pub struct InboxForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    agent_number: String,
}

struct InboxRow {
    id: Uuid,
    name: String,
    agent_number: String,
    senders: usize,
}

#[derive(Template)]
#[template(path = "settings_inboxes.html")]
struct InboxesPage {
    chrome: Chrome,
    inboxes: Vec<InboxRow>,
    form: InboxForm,
    errors: FieldErrors,
    notice: Option<String>,
}

#[derive(Template)]
#[template(path = "settings_inbox_edit.html")]
struct InboxEditPage {
    chrome: Chrome,
    id: Uuid,
    form: InboxForm,
    errors: FieldErrors,
}

fn inbox_place(field: &str) -> (String, &'static str) {
    match field {
        "name" => ("name".into(), "Name"),
        "agent_number" => ("agent_number".into(), "Agent number"),
        _ => ("form".into(), ""),
    }
}

fn inbox_input(form: &InboxForm) -> InboxInput {
    InboxInput {
        name: form.name.clone(),
        agent_number: Some(form.agent_number.clone()),
    }
}

async fn inboxes_page(
    s: &AppState,
    user: &CurrentUser,
    status: StatusCode,
    form: InboxForm,
    errors: FieldErrors,
    notice: Option<String>,
) -> PageResult {
    let err = settings_err(user);
    let inboxes = collect_all(|p| s.store.list_inboxes(p))
        .await
        .map_err(&err)?;
    let senders = collect_all(|p| s.store.list_senders(p))
        .await
        .map_err(&err)?;
    let rows = inboxes
        .into_iter()
        .map(|i| InboxRow {
            senders: senders.iter().filter(|x| x.inbox_id == i.id).count(),
            id: i.id,
            name: i.name,
            agent_number: i.agent_number.map(|n| n.to_string()).unwrap_or_default(),
        })
        .collect();
    Ok(render_status(
        status,
        &InboxesPage {
            chrome: Chrome::new(user, "Inboxes", "settings"),
            inboxes: rows,
            form,
            errors,
            notice,
        },
    ))
}

async fn list_inboxes(State(s): State<AppState>, Admin(user): Admin) -> PageResult {
    inboxes_page(
        &s,
        &user,
        StatusCode::OK,
        InboxForm::default(),
        FieldErrors::new(),
        None,
    )
    .await
}

async fn create_inbox(
    State(s): State<AppState>,
    Admin(user): Admin,
    Form(form): Form<InboxForm>,
) -> PageResult {
    user.check_csrf(&form.csrf)?;
    let errors = match inbox_input(&form).validate() {
        Ok(spec) => {
            let result = s.store.create_inbox(&spec).await;
            saved(&user, result, "/settings/inboxes", "name")?
        }
        Err(e) => FieldErrors::from_validation(&e, inbox_place),
    };
    inboxes_page(
        &s,
        &user,
        StatusCode::UNPROCESSABLE_ENTITY,
        form,
        errors,
        None,
    )
    .await
}

/// The edit page of `inbox`, its form as stored or as submitted.
fn inbox_edit_page(
    user: &CurrentUser,
    inbox: &Inbox,
    form: InboxForm,
    errors: FieldErrors,
) -> InboxEditPage {
    InboxEditPage {
        chrome: Chrome::new(user, format!("Inbox {}", inbox.name), "settings"),
        id: inbox.id,
        form,
        errors,
    }
}

async fn edit_inbox(
    State(s): State<AppState>,
    Admin(user): Admin,
    Path(id): Path<Uuid>,
) -> PageResult {
    let inbox = s.store.get_inbox(id).await.map_err(settings_err(&user))?;
    let form = InboxForm {
        csrf: String::new(),
        name: inbox.name.clone(),
        agent_number: inbox
            .agent_number
            .as_ref()
            .map(|n| n.to_string())
            .unwrap_or_default(),
    };
    let page = inbox_edit_page(&user, &inbox, form, FieldErrors::new());
    Ok(super::render(&page))
}

async fn update_inbox(
    State(s): State<AppState>,
    Admin(user): Admin,
    Path(id): Path<Uuid>,
    Form(form): Form<InboxForm>,
) -> PageResult {
    user.check_csrf(&form.csrf)?;
    let current = s.store.get_inbox(id).await.map_err(settings_err(&user))?;
    let errors = match inbox_input(&form).validate() {
        Ok(spec) => {
            let result = s.store.update_inbox(id, &spec).await;
            saved(&user, result, "/settings/inboxes", "name")?
        }
        Err(e) => FieldErrors::from_validation(&e, inbox_place),
    };
    Ok(render_status(
        StatusCode::UNPROCESSABLE_ENTITY,
        &inbox_edit_page(&user, &current, form, errors),
    ))
}

async fn delete_inbox(
    State(s): State<AppState>,
    Admin(user): Admin,
    Path(id): Path<Uuid>,
    Form(form): Form<CsrfForm>,
) -> PageResult {
    user.check_csrf(&form.csrf)?;
    let in_use = deleted(&user, s.store.delete_inbox(id).await, "/settings/inboxes")?;
    inboxes_page(
        &s,
        &user,
        StatusCode::CONFLICT,
        InboxForm::default(),
        FieldErrors::new(),
        Some(in_use),
    )
    .await
}

// ------------------------------------------------------------------ senders

#[derive(Debug, Clone, Default, Deserialize)]
pub struct SenderForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    channel: String,
    #[serde(default)]
    address: String,
    #[serde(default)]
    inbox_id: String,
    #[serde(default)]
    provider: String,
}

impl SenderForm {
    /// The add form as first shown: an SMS sender through the file provider.
    fn blank() -> Self {
        Self {
            channel: "sms".into(),
            provider: "file".into(),
            ..Self::default()
        }
    }
}

struct SenderRow {
    id: Uuid,
    address: String,
    channel: String,
    inbox_name: String,
    provider: String,
}

/// What the sender fields partial (`settings_sender_fields.html`) needs.
struct SenderChoices {
    channels: Vec<Choice>,
    inboxes: Vec<Choice>,
    providers: Vec<Choice>,
}

#[derive(Template)]
#[template(path = "settings_senders.html")]
struct SendersPage {
    chrome: Chrome,
    senders: Vec<SenderRow>,
    form: SenderForm,
    choices: SenderChoices,
    errors: FieldErrors,
    notice: Option<String>,
}

#[derive(Template)]
#[template(path = "settings_sender_edit.html")]
struct SenderEditPage {
    chrome: Chrome,
    id: Uuid,
    form: SenderForm,
    choices: SenderChoices,
    errors: FieldErrors,
}

fn sender_place(field: &str) -> (String, &'static str) {
    match field {
        "channel" => ("channel".into(), "Channel"),
        "address" => ("address".into(), "Address"),
        "inbox_id" => ("inbox_id".into(), "Inbox"),
        "provider" => ("provider".into(), "Provider"),
        _ => ("form".into(), ""),
    }
}

fn choices(options: &[(&str, &str)], current: &str) -> Vec<Choice> {
    options
        .iter()
        .map(|(value, label)| Choice {
            value: (*value).to_string(),
            label: (*label).to_string(),
            selected: *value == current,
        })
        .collect()
}

async fn sender_choices(s: &AppState, form: &SenderForm) -> Result<SenderChoices, StoreError> {
    let inboxes = collect_all(|p| s.store.list_inboxes(p)).await?;
    Ok(SenderChoices {
        channels: choices(
            &[("sms", "SMS"), ("voice", "Voice"), ("email", "Email")],
            &form.channel,
        ),
        inboxes: inboxes
            .into_iter()
            .map(|i| Choice {
                selected: i.id.to_string() == form.inbox_id,
                value: i.id.to_string(),
                label: i.name,
            })
            .collect(),
        providers: choices(
            &[
                ("file", "File (local outbox)"),
                ("smtp", "SMTP"),
                ("twilio", "Twilio"),
                ("webhook", "Webhook"),
            ],
            if form.provider.is_empty() {
                "file"
            } else {
                &form.provider
            },
        ),
    })
}

/// Checks a sender form as the API does (including that its inbox exists).
async fn checked_sender(
    s: &AppState,
    form: &SenderForm,
) -> Result<Result<herald_core::SenderSpec, FieldErrors>, StoreError> {
    let mut errors = FieldErrors::new();
    let inbox_id = parse_id(&mut errors, "inbox_id", &form.inbox_id);
    let input = SenderInput {
        channel: form.channel.clone(),
        address: form.address.clone(),
        inbox_id,
        provider: (!form.provider.trim().is_empty()).then(|| form.provider.clone()),
        default_region: None,
    };
    let spec = match input.validate() {
        Ok(spec) => spec,
        Err(e) => {
            let mut all = FieldErrors::from_validation(&e, sender_place);
            // An unreadable id says so rather than "is required".
            if errors.has("inbox_id") {
                all.remove("inbox_id");
            }
            all.0.extend(errors.0);
            return Ok(Err(all));
        }
    };
    match s.store.get_inbox(spec.inbox_id).await {
        Ok(_) => Ok(Ok(spec)),
        Err(StoreError::NotFound { id, .. }) => {
            errors.push(
                "inbox_id",
                format!("no inbox has id {id}; create the inbox first"),
            );
            Ok(Err(errors))
        }
        Err(e) => Err(e),
    }
}

async fn senders_page(
    s: &AppState,
    user: &CurrentUser,
    status: StatusCode,
    form: SenderForm,
    errors: FieldErrors,
    notice: Option<String>,
) -> PageResult {
    let err = settings_err(user);
    let senders = collect_all(|p| s.store.list_senders(p))
        .await
        .map_err(&err)?;
    let inboxes: HashMap<Uuid, String> = collect_all(|p| s.store.list_inboxes(p))
        .await
        .map_err(&err)?
        .into_iter()
        .map(|i| (i.id, i.name))
        .collect();
    let rows = senders
        .into_iter()
        .map(|x| SenderRow {
            id: x.id,
            address: x.address.to_string(),
            channel: x.channel.to_string(),
            inbox_name: inboxes.get(&x.inbox_id).cloned().unwrap_or_default(),
            provider: x.provider.to_string(),
        })
        .collect();
    let choices = sender_choices(s, &form).await.map_err(&err)?;
    Ok(render_status(
        status,
        &SendersPage {
            chrome: Chrome::new(user, "Senders", "settings"),
            senders: rows,
            form,
            choices,
            errors,
            notice,
        },
    ))
}

async fn list_senders(State(s): State<AppState>, Admin(user): Admin) -> PageResult {
    let form = SenderForm::blank();
    senders_page(&s, &user, StatusCode::OK, form, FieldErrors::new(), None).await
}

async fn create_sender(
    State(s): State<AppState>,
    Admin(user): Admin,
    Form(form): Form<SenderForm>,
) -> PageResult {
    user.check_csrf(&form.csrf)?;
    let errors = match checked_sender(&s, &form)
        .await
        .map_err(settings_err(&user))?
    {
        Ok(spec) => {
            let result = s.store.create_sender(&spec).await;
            saved(&user, result, "/settings/senders", "address")?
        }
        Err(errors) => errors,
    };
    senders_page(
        &s,
        &user,
        StatusCode::UNPROCESSABLE_ENTITY,
        form,
        errors,
        None,
    )
    .await
}

/// The edit page of `sender`, its form as stored or as submitted.
async fn sender_edit_page(
    s: &AppState,
    user: &CurrentUser,
    sender: &Sender,
    form: SenderForm,
    errors: FieldErrors,
) -> Result<SenderEditPage, StoreError> {
    let choices = sender_choices(s, &form).await?;
    Ok(SenderEditPage {
        chrome: Chrome::new(user, format!("Sender {}", sender.address), "settings"),
        id: sender.id,
        form,
        choices,
        errors,
    })
}

async fn edit_sender(
    State(s): State<AppState>,
    Admin(user): Admin,
    Path(id): Path<Uuid>,
) -> PageResult {
    let err = settings_err(&user);
    let sender = s.store.get_sender(id).await.map_err(&err)?;
    let form = SenderForm {
        csrf: String::new(),
        channel: sender.channel.to_string(),
        address: sender.address.to_string(),
        inbox_id: sender.inbox_id.to_string(),
        provider: sender.provider.to_string(),
    };
    let page = sender_edit_page(&s, &user, &sender, form, FieldErrors::new())
        .await
        .map_err(&err)?;
    Ok(super::render(&page))
}

async fn update_sender(
    State(s): State<AppState>,
    Admin(user): Admin,
    Path(id): Path<Uuid>,
    Form(mut form): Form<SenderForm>,
) -> PageResult {
    user.check_csrf(&form.csrf)?;
    let err = settings_err(&user);
    let current = s.store.get_sender(id).await.map_err(&err)?;
    // The channel cannot change (campaigns rely on it); the page shows it read-only.
    form.channel = current.channel.to_string();
    let errors = match checked_sender(&s, &form).await.map_err(&err)? {
        Ok(spec) => {
            let result = s.store.update_sender(id, &spec).await;
            saved(&user, result, "/settings/senders", "address")?
        }
        Err(errors) => errors,
    };
    let page = sender_edit_page(&s, &user, &current, form, errors)
        .await
        .map_err(&err)?;
    Ok(render_status(StatusCode::UNPROCESSABLE_ENTITY, &page))
}

async fn delete_sender(
    State(s): State<AppState>,
    Admin(user): Admin,
    Path(id): Path<Uuid>,
    Form(form): Form<CsrfForm>,
) -> PageResult {
    user.check_csrf(&form.csrf)?;
    let in_use = deleted(&user, s.store.delete_sender(id).await, "/settings/senders")?;
    senders_page(
        &s,
        &user,
        StatusCode::CONFLICT,
        SenderForm::blank(),
        FieldErrors::new(),
        Some(in_use),
    )
    .await
}

// ------------------------------------------------------------------ answers

struct AnswerRow {
    id: Uuid,
    name: String,
    languages: Vec<String>,
}

#[derive(Template)]
#[template(path = "settings_answers.html")]
struct AnswersPage {
    chrome: Chrome,
    answers: Vec<AnswerRow>,
    notice: Option<String>,
}

/// One language variant of the answer form (`language_{index}`, `subject_{index}`,
/// `body_{index}`).
struct VariantRow {
    index: usize,
    language: String,
    subject: String,
    body: String,
    language_error: Option<String>,
    subject_error: Option<String>,
    body_error: Option<String>,
}

#[derive(Template)]
#[template(path = "settings_answer_form.html")]
struct AnswerFormPage {
    chrome: Chrome,
    /// `None` for a new answer.
    id: Option<Uuid>,
    name: String,
    variants: Vec<VariantRow>,
    sample: String,
    errors: FieldErrors,
    preview: PreviewView,
}

/// The content of `#preview`.
#[derive(Default)]
struct PreviewView {
    subject: Option<String>,
    body: String,
    segments: u32,
    encoding: String,
    units: u32,
    error: Option<String>,
    /// Nothing typed yet.
    empty: bool,
}

impl PreviewView {
    fn segments_text(&self) -> String {
        if self.segments == 1 {
            "1 segment".to_string()
        } else {
            format!("{} segments", self.segments)
        }
    }
}

#[derive(Template)]
#[template(path = "settings_answer_preview.html")]
struct PreviewFragment {
    preview: PreviewView,
}

/// The answer form as submitted: the name, the numbered variants in form order, the sample.
struct AnswerSubmission {
    name: String,
    /// `(form index, language, subject, body)`, blank variants included.
    variants: Vec<(usize, String, String, String)>,
    sample: String,
}

impl AnswerSubmission {
    fn parse(form: &FormPairs) -> Self {
        let mut indices = BTreeSet::new();
        for (key, _) in &form.0 {
            for prefix in ["language_", "subject_", "body_"] {
                if let Some(n) = key
                    .strip_prefix(prefix)
                    .and_then(|n| n.parse::<usize>().ok())
                {
                    indices.insert(n);
                }
            }
        }
        let variants = indices
            .into_iter()
            .map(|i| {
                (
                    i,
                    form.get(&format!("language_{i}")).to_string(),
                    form.get(&format!("subject_{i}")).to_string(),
                    form.get(&format!("body_{i}")).to_string(),
                )
            })
            .collect();
        Self {
            name: form.get("name").to_string(),
            variants,
            sample: form.get("sample").to_string(),
        }
    }

    /// The API input (blank variants left out) and, for each of its variants, the form index.
    fn input(&self) -> (AnswerInput, Vec<usize>) {
        let mut indices = Vec::new();
        let mut variants = Vec::new();
        for (i, language, subject, body) in &self.variants {
            if language.trim().is_empty() && subject.trim().is_empty() && body.trim().is_empty() {
                continue;
            }
            indices.push(*i);
            variants.push(AnswerVariantInput {
                language: language.clone(),
                subject: Some(subject.clone()),
                body: body.clone(),
            });
        }
        (
            AnswerInput {
                name: self.name.clone(),
                variants,
            },
            indices,
        )
    }
}

/// Places the API's answer errors (`variants[1].body`) on the form's fields (`body_3`).
fn answer_errors(e: &ValidationError, indices: &[usize]) -> FieldErrors {
    FieldErrors::from_validation(e, |field| {
        if field == "name" {
            return ("name".into(), "Name");
        }
        if let Some(rest) = field.strip_prefix("variants[")
            && let Some((n, part)) = rest.split_once("].")
            && let Some(index) = n.parse::<usize>().ok().and_then(|k| indices.get(k))
        {
            let label = match part {
                "language" => "Language",
                "subject" => "Subject",
                _ => "Body",
            };
            return (format!("{part}_{index}"), label);
        }
        ("variants".into(), "The answer")
    })
}

fn variant_rows(sub: &AnswerSubmission, errors: &FieldErrors) -> Vec<VariantRow> {
    let mut rows: Vec<VariantRow> = sub
        .variants
        .iter()
        .map(|(i, language, subject, body)| VariantRow {
            index: *i,
            language: language.clone(),
            subject: subject.clone(),
            body: body.clone(),
            language_error: errors.get(&format!("language_{i}")),
            subject_error: errors.get(&format!("subject_{i}")),
            body_error: errors.get(&format!("body_{i}")),
        })
        .collect();
    // Always one blank variant at the end, to add a language.
    let has_blank = rows.last().is_some_and(|r| {
        r.language.trim().is_empty() && r.subject.trim().is_empty() && r.body.trim().is_empty()
    });
    if !has_blank || rows.len() < 2 {
        let next = rows.iter().map(|r| r.index + 1).max().unwrap_or(0);
        for index in next..next + if rows.is_empty() { 2 } else { 1 } {
            rows.push(VariantRow {
                index,
                language: String::new(),
                subject: String::new(),
                body: String::new(),
                language_error: None,
                subject_error: None,
                body_error: None,
            });
        }
    }
    rows
}

/// Sample variables as `name=value` lines; blank lines are skipped.
fn parse_sample(sample: &str) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    let mut vars = serde_json::Map::new();
    for (n, line) in sample.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match line.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                vars.insert(
                    k.trim().to_string(),
                    serde_json::Value::String(v.trim().to_string()),
                );
            }
            _ => {
                return Err(format!(
                    "sample line {}: write each sample variable as name=value",
                    n + 1
                ));
            }
        }
    }
    Ok(vars)
}

/// Renders a subject and body with the sample variables, as the API's
/// `POST /api/v1/answers/preview` does (same renderer, same SMS analysis); errors are shown,
/// never a failure.
fn preview(subject: &str, body: &str, sample: &str) -> PreviewView {
    if body.trim().is_empty() && subject.trim().is_empty() {
        return PreviewView {
            empty: true,
            ..PreviewView::default()
        };
    }
    let subject = (!subject.trim().is_empty()).then_some(subject);
    let result = parse_sample(sample).and_then(|vars| {
        Renderer::from_sources(subject, body)
            .and_then(|r| r.render(&vars))
            .map_err(|e| e.to_string())
    });
    match result {
        Ok(rendered) => {
            let sms = herald_core::sms::analyze(&rendered.body);
            PreviewView {
                subject: rendered.subject,
                body: rendered.body,
                segments: sms.segments,
                encoding: sms.encoding.to_string(),
                units: sms.units,
                error: None,
                empty: false,
            }
        }
        Err(error) => PreviewView {
            error: Some(error),
            ..PreviewView::default()
        },
    }
}

/// The preview of the variant the form is being typed in (`variant`, default the first).
fn preview_of(form: &FormPairs, sub: &AnswerSubmission) -> PreviewView {
    let wanted = form.get("variant").trim().parse::<usize>().ok();
    let chosen = sub
        .variants
        .iter()
        .find(|v| Some(v.0) == wanted)
        .or_else(|| {
            sub.variants
                .iter()
                .find(|v| !v.3.trim().is_empty() || !v.2.trim().is_empty())
        });
    match chosen {
        Some((_, _, subject, body)) => preview(subject, body, &sub.sample),
        None => preview("", "", &sub.sample),
    }
}

async fn answers_page(
    s: &AppState,
    user: &CurrentUser,
    status: StatusCode,
    notice: Option<String>,
) -> PageResult {
    let answers = collect_all(|p| s.store.list_answers(p))
        .await
        .map_err(settings_err(user))?;
    let rows = answers
        .into_iter()
        .map(|a| AnswerRow {
            id: a.id,
            languages: a.languages().iter().map(|l| l.to_string()).collect(),
            name: a.name,
        })
        .collect();
    Ok(render_status(
        status,
        &AnswersPage {
            chrome: Chrome::new(user, "Answers", "settings"),
            answers: rows,
            notice,
        },
    ))
}

async fn list_answers(State(s): State<AppState>, Admin(user): Admin) -> PageResult {
    answers_page(&s, &user, StatusCode::OK, None).await
}

fn answer_form_page(
    user: &CurrentUser,
    id: Option<Uuid>,
    title: String,
    sub: &AnswerSubmission,
    errors: FieldErrors,
    preview: PreviewView,
) -> AnswerFormPage {
    AnswerFormPage {
        chrome: Chrome::new(user, title, "settings"),
        id,
        name: sub.name.clone(),
        variants: variant_rows(sub, &errors),
        sample: sub.sample.clone(),
        errors,
        preview,
    }
}

async fn new_answer(Admin(user): Admin) -> Response {
    let sub = AnswerSubmission {
        name: String::new(),
        variants: Vec::new(),
        sample: String::new(),
    };
    super::render(&answer_form_page(
        &user,
        None,
        "New answer".into(),
        &sub,
        FieldErrors::new(),
        PreviewView {
            empty: true,
            ..PreviewView::default()
        },
    ))
}

async fn create_answer(
    State(s): State<AppState>,
    Admin(user): Admin,
    Form(pairs): Form<Vec<(String, String)>>,
) -> PageResult {
    let form = FormPairs(pairs);
    user.check_csrf(form.get("csrf"))?;
    let sub = AnswerSubmission::parse(&form);
    let (input, indices) = sub.input();
    let errors = match input.validate() {
        Ok(spec) => {
            let result = s.store.create_answer(&spec).await;
            saved(&user, result, "/settings/answers", "name")?
        }
        Err(e) => answer_errors(&e, &indices),
    };
    let preview = preview_of(&form, &sub);
    Ok(render_status(
        StatusCode::UNPROCESSABLE_ENTITY,
        &answer_form_page(&user, None, "New answer".into(), &sub, errors, preview),
    ))
}

async fn edit_answer(
    State(s): State<AppState>,
    Admin(user): Admin,
    Path(id): Path<Uuid>,
) -> PageResult {
    let answer = s.store.get_answer(id).await.map_err(settings_err(&user))?;
    let sub = AnswerSubmission {
        name: answer.name.clone(),
        variants: answer
            .variants
            .iter()
            .enumerate()
            .map(|(i, v)| {
                (
                    i,
                    v.language.to_string(),
                    v.subject
                        .as_ref()
                        .map(|t| t.source().to_string())
                        .unwrap_or_default(),
                    v.body.source().to_string(),
                )
            })
            .collect(),
        sample: String::new(),
    };
    let preview = preview_of(&FormPairs::default(), &sub);
    Ok(super::render(&answer_form_page(
        &user,
        Some(id),
        format!("Answer {}", answer.name),
        &sub,
        FieldErrors::new(),
        preview,
    )))
}

async fn update_answer(
    State(s): State<AppState>,
    Admin(user): Admin,
    Path(id): Path<Uuid>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> PageResult {
    let form = FormPairs(pairs);
    user.check_csrf(form.get("csrf"))?;
    let err = settings_err(&user);
    let current = s.store.get_answer(id).await.map_err(&err)?;
    let sub = AnswerSubmission::parse(&form);
    let (input, indices) = sub.input();
    let errors = match input.validate() {
        Ok(spec) => {
            // As the API: a variant a campaign sends cannot go (nor lose its subject, for email).
            let campaigns = collect_all(|p| s.store.list_campaigns(None, p))
                .await
                .map_err(&err)?;
            let users: Vec<_> = campaigns
                .into_iter()
                .filter(|c| c.answer_id == id)
                .collect();
            let problems = crate::routes::answers::variants_still_needed(&spec, &users);
            if problems.is_empty() {
                let result = s.store.update_answer(id, &spec).await;
                saved(&user, result, "/settings/answers", "name")?
            } else {
                let mut errors = FieldErrors::new();
                errors.push("variants", problems.join("; "));
                errors
            }
        }
        Err(e) => answer_errors(&e, &indices),
    };
    let preview = preview_of(&form, &sub);
    Ok(render_status(
        StatusCode::UNPROCESSABLE_ENTITY,
        &answer_form_page(
            &user,
            Some(id),
            format!("Answer {}", current.name),
            &sub,
            errors,
            preview,
        ),
    ))
}

async fn delete_answer(
    State(s): State<AppState>,
    Admin(user): Admin,
    Path(id): Path<Uuid>,
    Form(form): Form<CsrfForm>,
) -> PageResult {
    user.check_csrf(&form.csrf)?;
    let in_use = deleted(&user, s.store.delete_answer(id).await, "/settings/answers")?;
    answers_page(&s, &user, StatusCode::CONFLICT, Some(in_use)).await
}

/// `#preview`'s content for the answer form as typed: htmx posts the whole form (with
/// `variant` naming the variant being edited) and swaps this fragment in. Always 200 (htmx
/// does not swap error statuses): a template error is shown in the preview.
async fn preview_answer(
    Admin(user): Admin,
    headers: HeaderMap,
    Form(pairs): Form<Vec<(String, String)>>,
) -> PageResult {
    let form = FormPairs(pairs);
    let token = if form.has("csrf") {
        form.get("csrf").to_string()
    } else {
        headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    user.check_csrf(&token)?;
    let sub = AnswerSubmission::parse(&form);
    Ok(super::render(&PreviewFragment {
        preview: preview_of(&form, &sub),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_core::Provider;

    #[test]
    fn provider_options_parse() {
        for p in ["file", "smtp", "twilio", "webhook"] {
            assert!(p.parse::<Provider>().is_ok());
        }
    }

    #[test]
    fn preview_counts_segments_and_shows_errors() {
        let p = preview("", &format!("{}🙂", "a".repeat(69)), "");
        assert_eq!(p.segments, 2);
        assert_eq!(p.encoding, "UCS-2");
        assert_eq!(p.segments_text(), "2 segments");
        let p = preview("", "Hi {{ name }}", "name=Ana");
        assert_eq!(p.body, "Hi Ana");
        assert_eq!(p.segments_text(), "1 segment");
        assert_eq!(p.encoding, "GSM-7");
        let p = preview("", "Hi {{ name", "");
        assert!(p.error.is_some());
        let p = preview("", "Hi {{ name }}", "");
        assert!(p.error.unwrap().contains("name"));
        let p = preview("", "Hi", "no equals sign");
        assert!(p.error.unwrap().contains("name=value"));
    }

    #[test]
    fn answer_errors_land_on_the_form_index() {
        let form = FormPairs(vec![
            ("name".into(), "".into()),
            ("language_0".into(), "".into()),
            ("body_0".into(), "".into()),
            ("language_3".into(), "xx-1".into()),
            ("body_3".into(), "{{ oops".into()),
        ]);
        let sub = AnswerSubmission::parse(&form);
        let (input, indices) = sub.input();
        assert_eq!(indices, vec![3]);
        let errors = answer_errors(&input.validate().unwrap_err(), &indices);
        assert_eq!(errors.get("name").as_deref(), Some("Name is required"));
        assert!(errors.has("language_3"), "{errors:?}");
        assert!(errors.has("body_3"), "{errors:?}");
        assert!(!errors.has("body_0"));
    }
}
