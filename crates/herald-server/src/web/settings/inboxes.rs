//! Settings → Inboxes: list, create, edit and delete the inboxes replies land in.

use crate::AppState;
use crate::web::render_status;
use crate::web::session::WebId;
use crate::web::session::{Admin, Chrome, CurrentUser};
use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use herald_core::{Inbox, InboxInput};
use serde::Deserialize;
use uuid::Uuid;

use super::PageResult;
use super::forms::{CsrfForm, FieldErrors, collect_all, deleted, saved, settings_err};

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

pub(super) async fn list_inboxes(State(s): State<AppState>, Admin(user): Admin) -> PageResult {
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

pub(super) async fn create_inbox(
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

pub(super) async fn edit_inbox(
    State(s): State<AppState>,
    Admin(user): Admin,
    WebId(id): WebId,
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
    Ok(crate::web::render(&page))
}

pub(super) async fn update_inbox(
    State(s): State<AppState>,
    Admin(user): Admin,
    WebId(id): WebId,
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

pub(super) async fn delete_inbox(
    State(s): State<AppState>,
    Admin(user): Admin,
    WebId(id): WebId,
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
