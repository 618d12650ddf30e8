//! Settings → Senders: the numbers and addresses outreaches send from, each in an inbox.

use crate::AppState;
use crate::web::render_status;
use crate::web::session::WebId;
use crate::web::session::{Admin, Chrome, CurrentUser};
use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use herald_core::{Sender, SenderInput};
use herald_store::StoreError;
use serde::Deserialize;
use std::collections::HashMap;
use uuid::Uuid;

use super::PageResult;
use super::forms::{
    Choice, CsrfForm, FieldErrors, collect_all, deleted, parse_id, saved, settings_err,
};

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

pub(super) async fn list_senders(State(s): State<AppState>, Admin(user): Admin) -> PageResult {
    let form = SenderForm::blank();
    senders_page(&s, &user, StatusCode::OK, form, FieldErrors::new(), None).await
}

pub(super) async fn create_sender(
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

pub(super) async fn edit_sender(
    State(s): State<AppState>,
    Admin(user): Admin,
    WebId(id): WebId,
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
    Ok(crate::web::render(&page))
}

pub(super) async fn update_sender(
    State(s): State<AppState>,
    Admin(user): Admin,
    WebId(id): WebId,
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

pub(super) async fn delete_sender(
    State(s): State<AppState>,
    Admin(user): Admin,
    WebId(id): WebId,
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

#[cfg(test)]
mod tests {
    use herald_core::Provider;

    #[test]
    fn provider_options_parse() {
        for p in ["file", "smtp", "twilio", "webhook"] {
            assert!(p.parse::<Provider>().is_ok());
        }
    }
}
