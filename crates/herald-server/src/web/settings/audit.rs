//! Settings → Audit log: every change to people, API tokens and the opt-out list, newest first:
//! who (a user's email or a token's name), what, to what, when, and from which address.

use crate::AppState;
use crate::web::render_status;
use crate::web::session::{Admin, Chrome};
use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use herald_core::Page;
use serde::Deserialize;

use super::PageResult;
use super::forms::settings_err;
use super::people::when;

const PER_PAGE: u32 = 100;

struct EntryRow {
    at: String,
    actor: String,
    action: String,
    subject: String,
    detail: String,
    client: String,
}

#[derive(Template)]
#[template(path = "settings_audit.html")]
struct AuditPage {
    chrome: Chrome,
    entries: Vec<EntryRow>,
    older: Option<String>,
}

/// `?after=`: the last entry of the previous page.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct AuditQuery {
    after: String,
}

/// An action in words (`user.deactivated` → `Deactivated user`); unknown ones as they are.
fn action_words(action: &str) -> String {
    match action {
        "user.invited" => "Invited user",
        "user.invitation_resent" => "Sent an invitation again",
        "user.role_changed" => "Changed a role",
        "user.deactivated" => "Deactivated user",
        "user.reactivated" => "Reactivated user",
        "token.created" => "Created API token",
        "token.revoked" => "Revoked API token",
        "suppression.added" => "Added opt-out",
        "suppression.removed" => "Removed opt-out",
        other => other,
    }
    .to_string()
}

pub(super) async fn list_audit(
    State(s): State<AppState>,
    Admin(user): Admin,
    Query(q): Query<AuditQuery>,
) -> PageResult {
    let page = Page {
        limit: PER_PAGE,
        after: q.after.trim().parse().ok(),
    };
    let listing = s
        .store
        .list_audit(page)
        .await
        .map_err(settings_err(&user))?;
    Ok(render_status(
        StatusCode::OK,
        &AuditPage {
            chrome: Chrome::new(&user, "Audit log", "settings"),
            older: listing
                .next_after
                .map(|a| format!("/settings/audit?after={a}")),
            entries: listing
                .items
                .into_iter()
                .map(|e| EntryRow {
                    at: when(e.at),
                    actor: match e.actor_kind.as_str() {
                        "token" => format!("token “{}”", e.actor),
                        _ => e.actor,
                    },
                    action: action_words(&e.action),
                    subject: e.subject,
                    detail: e.detail,
                    client: e.client_addr.unwrap_or_default(),
                })
                .collect(),
        },
    ))
}
