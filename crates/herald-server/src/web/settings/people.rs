//! Settings → People: the users of the web UI and the invitations waiting. An admin invites
//! someone (the page shows the one-time link once, to give them), sends an invitation again (a
//! new link; the old one stops working), changes a role, and deactivates a user (their open
//! sessions end at once) or reactivates them. Each change goes into the audit log, from the
//! store, in the same transaction.

use crate::AppState;
use crate::routes::people::{InvitationLink, invite};
use crate::web::limits::ClientAddr;
use crate::web::render_status;
use crate::web::session::{Admin, Chrome, CurrentUser, WebId};
use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect};
use herald_core::{EmailAddress, Role};
use herald_store::{Actor, AuditContext, StoreError, UserChange};

use super::PageResult;
use super::forms::{FieldErrors, FormPairs, collect_all, settings_err};

/// Who is making a change in the web UI, for the audit log.
pub(super) fn web_context(s: &AppState, user: &CurrentUser, client: ClientAddr) -> AuditContext {
    AuditContext {
        actor: Actor::User(user.email.clone()),
        client_addr: Some(client.0.to_string()),
        at: s.clock.now(),
    }
}

/// An instant as the settings pages show it.
pub(super) fn when(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M UTC").to_string()
}

struct UserRow {
    id: String,
    email: String,
    role: &'static str,
    active: bool,
    is_me: bool,
    created: String,
    last_sign_in: String,
}

struct InvitationRow {
    email: String,
    role: &'static str,
    expires: String,
    expired: bool,
}

#[derive(Debug, Clone, Default)]
struct InviteForm {
    email: String,
    role: String,
}

#[derive(Template)]
#[template(path = "settings_people.html")]
struct PeoplePage {
    chrome: Chrome,
    users: Vec<UserRow>,
    invitations: Vec<InvitationRow>,
    form: InviteForm,
    errors: FieldErrors,
    /// A link just made: shown once.
    new_link: Option<InvitationLink>,
    /// A refusal about the list (the last admin, yourself).
    notice: Option<String>,
}

async fn people_page(
    s: &AppState,
    user: &CurrentUser,
    status: StatusCode,
    form: InviteForm,
    errors: FieldErrors,
    new_link: Option<InvitationLink>,
    notice: Option<String>,
) -> PageResult {
    let err = settings_err(user);
    let users = collect_all(|p| s.store.list_users(p)).await.map_err(&err)?;
    let now = s.clock.now();
    let invitations = s.store.list_invitations().await.map_err(&err)?;
    Ok(render_status(
        status,
        &PeoplePage {
            chrome: Chrome::new(user, "People", "settings"),
            users: users
                .into_iter()
                .map(|u| UserRow {
                    id: u.id.to_string(),
                    is_me: u.id == user.id,
                    email: u.email,
                    role: u.role.as_str(),
                    active: u.active,
                    created: when(u.created_at),
                    last_sign_in: u.last_sign_in_at.map(when).unwrap_or_default(),
                })
                .collect(),
            invitations: invitations
                .into_iter()
                .map(|i| InvitationRow {
                    email: i.email,
                    role: i.role.as_str(),
                    expires: when(i.expires_at),
                    expired: i.expires_at <= now,
                })
                .collect(),
            form,
            errors,
            new_link,
            notice,
        },
    ))
}

pub(super) async fn list_people(State(s): State<AppState>, Admin(user): Admin) -> PageResult {
    people_page(
        &s,
        &user,
        StatusCode::OK,
        InviteForm {
            role: "agent".into(),
            ..InviteForm::default()
        },
        FieldErrors::new(),
        None,
        None,
    )
    .await
}

fn parse_role(errors: &mut FieldErrors, raw: &str) -> Option<Role> {
    match raw.parse::<Role>() {
        Ok(r) => Some(r),
        Err(e) => {
            errors.push("role", e);
            None
        }
    }
}

pub(super) async fn invite_person(
    State(s): State<AppState>,
    Admin(user): Admin,
    client: ClientAddr,
    headers: HeaderMap,
    axum::Form(pairs): axum::Form<Vec<(String, String)>>,
) -> PageResult {
    let form = FormPairs(pairs);
    user.check_csrf(form.get("csrf"))?;
    let typed = InviteForm {
        email: form.get("email").trim().to_string(),
        role: form.get("role").to_string(),
    };
    let mut errors = FieldErrors::new();
    let email = match EmailAddress::parse(&typed.email) {
        Ok(e) => Some(e.as_str().to_lowercase()),
        Err(e) => {
            errors.push("email", e.to_string());
            None
        }
    };
    let role = parse_role(&mut errors, &typed.role);
    if let (Some(email), Some(role)) = (email, role) {
        let ctx = web_context(&s, &user, client);
        match invite(&s, &headers, &email, role, &ctx).await {
            Ok(link) => {
                let fresh = InviteForm {
                    role: "agent".into(),
                    ..InviteForm::default()
                };
                return people_page(
                    &s,
                    &user,
                    StatusCode::CREATED,
                    fresh,
                    errors,
                    Some(link),
                    None,
                )
                .await;
            }
            Err(StoreError::Conflict(m)) => errors.push("email", m),
            Err(e) => return Err(settings_err(&user)(e)),
        }
    }
    people_page(
        &s,
        &user,
        StatusCode::UNPROCESSABLE_ENTITY,
        typed,
        errors,
        None,
        None,
    )
    .await
}

pub(super) async fn resend_invitation(
    State(s): State<AppState>,
    Admin(user): Admin,
    client: ClientAddr,
    headers: HeaderMap,
    axum::Form(pairs): axum::Form<Vec<(String, String)>>,
) -> PageResult {
    let form = FormPairs(pairs);
    user.check_csrf(form.get("csrf"))?;
    let email = form.get("email").trim().to_lowercase();
    let err = settings_err(&user);
    let waiting = s.store.list_invitations().await.map_err(&err)?;
    let Some(invitation) = waiting.into_iter().find(|i| i.email == email) else {
        let notice = format!("No invitation of {email} is waiting: it was taken or never sent.");
        return people_page(
            &s,
            &user,
            StatusCode::NOT_FOUND,
            InviteForm::default(),
            FieldErrors::new(),
            None,
            Some(notice),
        )
        .await;
    };
    let ctx = web_context(&s, &user, client);
    let link = invite(&s, &headers, &email, invitation.role, &ctx)
        .await
        .map_err(&err)?;
    people_page(
        &s,
        &user,
        StatusCode::CREATED,
        InviteForm::default(),
        FieldErrors::new(),
        Some(link),
        None,
    )
    .await
}

/// `role=admin|agent` or `active=true|false`: one change of one user.
pub(super) async fn change_person(
    State(s): State<AppState>,
    Admin(user): Admin,
    client: ClientAddr,
    WebId(id): WebId,
    axum::Form(pairs): axum::Form<Vec<(String, String)>>,
) -> PageResult {
    let form = FormPairs(pairs);
    user.check_csrf(form.get("csrf"))?;
    let mut errors = FieldErrors::new();
    let mut change = UserChange::default();
    if form.has("role") {
        change.role = parse_role(&mut errors, form.get("role"));
    }
    if form.has("active") {
        change.active = Some(form.get("active") == "true");
    }
    let refuse = |notice: String| {
        let s = s.clone();
        let user = user.clone();
        async move {
            people_page(
                &s,
                &user,
                StatusCode::CONFLICT,
                InviteForm::default(),
                FieldErrors::new(),
                None,
                Some(notice),
            )
            .await
        }
    };
    if let Some(msg) = errors.get("role") {
        return refuse(msg).await;
    }
    if id == user.id && change.active == Some(false) {
        return refuse(
            "You cannot deactivate yourself: ask another admin, so that someone can still sign in."
                .to_string(),
        )
        .await;
    }
    let ctx = web_context(&s, &user, client);
    match s.store.update_user(id, change, &ctx).await {
        // An admin who made herself an agent can no longer see this page.
        Ok(_) if id == user.id && change.role == Some(Role::Agent) => {
            Ok(Redirect::to("/campaigns").into_response())
        }
        Ok(_) => Ok(Redirect::to("/settings/people").into_response()),
        Err(StoreError::Conflict(m)) => refuse(crate::web::plain_words(&m)).await,
        Err(e) => Err(settings_err(&user)(e)),
    }
}
