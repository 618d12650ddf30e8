//! Settings (admins only): inboxes, senders and answers, with the answer's live preview; chat
//! sites; and people and access: users and invitations, API tokens, the opt-out list and the
//! audit log of changes to them.
//!
//! Every form is checked with the same `herald_core::*Input::validate` as the JSON API, so the
//! messages are the API's; each error is shown next to its field (`<p class="field-error"
//! id="{field}-error">`) and the form comes back with what was typed and status 422.
//!
//! Also shared with [`super::campaigns`]: [`FieldErrors`], [`MessagePage`], [`error_page`],
//! [`collect_all`], [`FormPairs`] and [`CsrfForm`] (in `forms.rs`).
//!
//! One file per noun: `inboxes.rs`, `senders.rs`, `answers.rs`, `sites.rs`, `people.rs`,
//! `tokens.rs`, `opt_outs.rs`, `audit.rs`; the overview is here.

mod answers;
mod audit;
mod forms;
mod inboxes;
mod opt_outs;
mod people;
mod senders;
mod sites;
mod tokens;

pub use forms::{
    Choice, CsrfForm, FieldErrors, FormPairs, MessagePage, collect_all, error_page, parse_id,
};

use super::session::Admin;
use super::session::Chrome;
use crate::AppState;
use answers::{
    create_answer, delete_answer, edit_answer, list_answers, new_answer, preview_answer,
    update_answer,
};
use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post};
use forms::settings_err;
use inboxes::{create_inbox, delete_inbox, edit_inbox, list_inboxes, update_inbox};
use senders::{create_sender, delete_sender, edit_sender, list_senders, update_sender};
use sites::{create_site, delete_site, list_sites};

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
        .route("/settings/sites", get(list_sites).post(create_site))
        .route("/settings/sites/{id}/delete", post(delete_site))
        .route(
            "/settings/people",
            get(people::list_people).post(people::invite_person),
        )
        .route(
            "/settings/people/invitations/resend",
            post(people::resend_invitation),
        )
        .route("/settings/people/{id}", post(people::change_person))
        .route(
            "/settings/tokens",
            get(tokens::list_tokens).post(tokens::create_token),
        )
        .route("/settings/tokens/{id}/revoke", post(tokens::revoke_token))
        .route(
            "/settings/opt-outs",
            get(opt_outs::list_opt_outs).post(opt_outs::add_opt_out),
        )
        .route(
            "/settings/opt-outs/{id}/delete",
            post(opt_outs::remove_opt_out),
        )
        .route("/settings/audit", get(audit::list_audit))
}

type PageResult = Result<Response, Response>;

#[derive(Template)]
#[template(path = "settings.html")]
struct OverviewPage {
    chrome: Chrome,
    inboxes: usize,
    senders: usize,
    answers: usize,
    sites: usize,
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
    let sites = collect_all(|p| s.store.list_chat_sites(p))
        .await
        .map_err(&err)?;
    Ok(super::render(&OverviewPage {
        chrome: Chrome::new(&user, "Settings", "settings"),
        sites: sites.len(),
        inboxes: inboxes.len(),
        senders: senders.len(),
        answers: answers.len(),
    }))
}
