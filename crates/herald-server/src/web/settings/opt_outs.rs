//! Settings → Opt-outs: the addresses Herald must not message (for one sender, as an SMS STOP,
//! or for every sender). An admin looks an address up, adds one with a reason (its recipients
//! waiting in outreaches are skipped, as through the API) and lifts one. Both go into the audit
//! log with the reason and who did it.

use crate::AppState;
use crate::routes::conversations::normalize_address;
use crate::web::limits::ClientAddr;
use crate::web::render_status;
use crate::web::session::{Admin, Chrome, CurrentUser, WebId};
use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use herald_core::Page;
use herald_core::outreach::SkipReason;
use serde::Deserialize;
use std::collections::HashMap;
use uuid::Uuid;

use super::PageResult;
use super::forms::{CsrfForm, FieldErrors, FormPairs, collect_all, settings_err};
use super::people::{web_context, when};

/// How many opt-outs one page lists.
const PER_PAGE: u32 = 100;

struct OptOutRow {
    id: String,
    address: String,
    /// The sender's address, or "every sender".
    sender: String,
    reason: String,
    added: String,
    /// Who added it; empty for a customer's own opt-out (or one older than this record).
    added_by: String,
}

#[derive(Debug, Clone, Default)]
struct OptOutForm {
    address: String,
    reason: String,
}

#[derive(Template)]
#[template(path = "settings_opt_outs.html")]
struct OptOutsPage {
    chrome: Chrome,
    rows: Vec<OptOutRow>,
    /// The address searched for, as typed.
    search: String,
    search_error: Option<String>,
    /// The link to the next (older) page.
    older: Option<String>,
    form: OptOutForm,
    errors: FieldErrors,
    notice: Option<String>,
}

/// `?address=&after=`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct OptOutQuery {
    address: String,
    after: String,
}

struct Shown {
    status: StatusCode,
    search: String,
    after: Option<Uuid>,
    form: OptOutForm,
    errors: FieldErrors,
    notice: Option<String>,
}

async fn opt_outs_page(s: &AppState, user: &CurrentUser, shown: Shown) -> PageResult {
    let err = settings_err(user);
    let mut search_error = None;
    let address = match shown.search.trim() {
        "" => None,
        raw => match normalize_address(raw, None) {
            Ok(a) => Some(a),
            Err(e) => {
                search_error = Some(crate::web::plain_words(&e.to_problem().detail));
                None
            }
        },
    };
    let listing = if search_error.is_some() {
        herald_core::Listing {
            items: Vec::new(),
            next_after: None,
        }
    } else {
        s.store
            .list_suppressions(
                address.as_deref(),
                Page {
                    limit: PER_PAGE,
                    after: shown.after,
                },
            )
            .await
            .map_err(&err)?
    };
    let senders: HashMap<Uuid, String> = collect_all(|p| s.store.list_senders(p))
        .await
        .map_err(&err)?
        .into_iter()
        .map(|x| (x.id, format!("{} ({})", x.address, x.channel)))
        .collect();
    let older = listing.next_after.map(|after| {
        let q: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("address", shown.search.trim())
            .append_pair("after", &after.to_string())
            .finish();
        format!("/settings/opt-outs?{q}")
    });
    let rows = listing
        .items
        .into_iter()
        .map(|x| OptOutRow {
            id: x.id.to_string(),
            sender: match x.sender_id {
                None => "every sender".to_string(),
                Some(id) => senders
                    .get(&id)
                    .cloned()
                    .unwrap_or_else(|| format!("sender {id}")),
            },
            address: x.address,
            reason: x.reason,
            added: when(x.created_at),
            added_by: x.added_by.unwrap_or_default(),
        })
        .collect();
    Ok(render_status(
        shown.status,
        &OptOutsPage {
            chrome: Chrome::new(user, "Opt-outs", "settings"),
            rows,
            search: shown.search,
            search_error,
            older,
            form: shown.form,
            errors: shown.errors,
            notice: shown.notice,
        },
    ))
}

pub(super) async fn list_opt_outs(
    State(s): State<AppState>,
    Admin(user): Admin,
    Query(q): Query<OptOutQuery>,
) -> PageResult {
    let after = q.after.trim().parse().ok();
    opt_outs_page(
        &s,
        &user,
        Shown {
            status: StatusCode::OK,
            search: q.address,
            after,
            form: OptOutForm::default(),
            errors: FieldErrors::new(),
            notice: None,
        },
    )
    .await
}

pub(super) async fn add_opt_out(
    State(s): State<AppState>,
    Admin(user): Admin,
    client: ClientAddr,
    axum::Form(pairs): axum::Form<Vec<(String, String)>>,
) -> PageResult {
    let form = FormPairs(pairs);
    user.check_csrf(form.get("csrf"))?;
    let typed = OptOutForm {
        address: form.get("address").trim().to_string(),
        reason: form.get("reason").trim().to_string(),
    };
    let mut errors = FieldErrors::new();
    let address = match normalize_address(&typed.address, None) {
        Ok(a) => Some(a),
        Err(e) => {
            errors.push(
                "address",
                format!(
                    "{} (a phone number in international form, as +14155550100, or an email address)",
                    e.to_problem().detail.trim_start_matches("address: ")
                ),
            );
            None
        }
    };
    if typed.reason.is_empty() {
        errors.push(
            "reason",
            "Reason is required: say why, for whoever looks later",
        );
    } else if typed.reason.chars().count() > 500 {
        errors.push("reason", "Reason is longer than 500 characters");
    }
    let Some(address) = address.filter(|_| errors.is_empty()) else {
        return opt_outs_page(
            &s,
            &user,
            Shown {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                search: String::new(),
                after: None,
                form: typed,
                errors,
                notice: None,
            },
        )
        .await;
    };
    let err = settings_err(&user);
    let ctx = web_context(&s, &user, client);
    let created = s
        .store
        .add_suppression_audited(&address, None, &typed.reason, &ctx)
        .await
        .map_err(&err)?;
    let skipped = s
        .store
        .skip_pending_for_address(&address, None, SkipReason::Suppressed, ctx.at)
        .await
        .map_err(&err)?;
    let notice = match (created, skipped) {
        (false, _) => format!("{address} was already on the list for every sender."),
        (true, 0) => format!("{address} is on the list: no sender will message it."),
        (true, n) => format!(
            "{address} is on the list: no sender will message it; {n} recipient(s) waiting in outreaches were skipped."
        ),
    };
    opt_outs_page(
        &s,
        &user,
        Shown {
            status: if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            },
            search: address,
            after: None,
            form: OptOutForm::default(),
            errors: FieldErrors::new(),
            notice: Some(notice),
        },
    )
    .await
}

pub(super) async fn remove_opt_out(
    State(s): State<AppState>,
    Admin(user): Admin,
    client: ClientAddr,
    WebId(id): WebId,
    axum::Form(form): axum::Form<CsrfForm>,
) -> PageResult {
    user.check_csrf(&form.csrf)?;
    let ctx = web_context(&s, &user, client);
    s.store
        .delete_suppression_audited(id, &ctx)
        .await
        .map_err(settings_err(&user))?;
    Ok(Redirect::to("/settings/opt-outs").into_response())
}
