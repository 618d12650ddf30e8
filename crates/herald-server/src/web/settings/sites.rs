//! Settings → Chat sites: the websites that embed the chat widget. Creating one gives its key
//! and the snippet to paste into the site's pages (`routes::chat::snippet`).

use crate::AppState;
use crate::web::render_status;
use crate::web::session::WebId;
use crate::web::session::{Admin, Chrome, CurrentUser};
use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use herald_core::chat::ChatSiteInput;
use uuid::Uuid;

use super::PageResult;
use super::forms::{CsrfForm, FieldErrors, FormPairs, collect_all, deleted, saved, settings_err};

/// What the new-site form shows: the fields as typed.
#[derive(Debug, Clone, Default)]
pub struct SiteForm {
    name: String,
    /// One origin a line.
    origins: String,
    /// Empty for no limit.
    max_per_visit: String,
}

struct SiteRow {
    id: Uuid,
    name: String,
    origins: String,
    visibility: String,
    snippet: String,
}

#[derive(Template)]
#[template(path = "settings_sites.html")]
struct SitesPage {
    chrome: Chrome,
    sites: Vec<SiteRow>,
    form: SiteForm,
    errors: FieldErrors,
    notice: Option<String>,
}

fn site_place(field: &str) -> (String, &'static str) {
    match field {
        "name" => ("name".into(), "Name"),
        f if f.starts_with("allowed_origins") => ("origins".into(), "Allowed origins"),
        "max_per_visit" => ("max_per_visit".into(), "Campaigns per visit"),
        _ => ("form".into(), ""),
    }
}

async fn sites_page(
    s: &AppState,
    user: &CurrentUser,
    status: StatusCode,
    form: SiteForm,
    errors: FieldErrors,
    notice: Option<String>,
) -> PageResult {
    let err = settings_err(user);
    let sites = collect_all(|p| s.store.list_chat_sites(p))
        .await
        .map_err(&err)?;
    let rows = sites
        .into_iter()
        .map(|x| SiteRow {
            snippet: crate::routes::chat::snippet(&s.public_url, &x.key),
            id: x.id,
            name: x.name,
            origins: x.allowed_origins.join(", "),
            visibility: match x.max_per_visit {
                None => "Unlimited".to_string(),
                Some(0) => "None".to_string(),
                Some(n) => format!("At most {n}"),
            },
        })
        .collect();
    Ok(render_status(
        status,
        &SitesPage {
            chrome: Chrome::new(user, "Chat sites", "settings"),
            sites: rows,
            form,
            errors,
            notice,
        },
    ))
}

pub(super) async fn list_sites(State(s): State<AppState>, Admin(user): Admin) -> PageResult {
    sites_page(
        &s,
        &user,
        StatusCode::OK,
        SiteForm::default(),
        FieldErrors::new(),
        None,
    )
    .await
}

pub(super) async fn create_site(
    State(s): State<AppState>,
    Admin(user): Admin,
    axum::Form(pairs): axum::Form<Vec<(String, String)>>,
) -> PageResult {
    let form = FormPairs(pairs);
    user.check_csrf(form.get("csrf"))?;
    let typed = SiteForm {
        name: form.get("name").to_string(),
        origins: form.get("origins").to_string(),
        max_per_visit: form.get("max_per_visit").trim().to_string(),
    };
    let mut errors = FieldErrors::new();
    let max_per_visit = if typed.max_per_visit.is_empty() {
        None
    } else {
        match typed.max_per_visit.parse::<u32>() {
            Ok(n) => Some(n),
            Err(_) => {
                errors.push(
                    "max_per_visit",
                    "Campaigns per visit: a whole number (0 for none), or empty for no limit",
                );
                None
            }
        }
    };
    let input = ChatSiteInput {
        name: typed.name.clone(),
        allowed_origins: typed
            .origins
            .split(['\n', ','])
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map(str::to_string)
            .collect(),
        max_per_visit,
    };
    if errors.is_empty() {
        errors = match input.validate() {
            Ok(spec) => {
                let key = crate::routes::chat::new_site_key();
                let result = s.store.create_chat_site(&spec, &key).await;
                if result.is_ok() {
                    s.chat.invalidate();
                }
                saved(&user, result, "/settings/sites", "name")?
            }
            Err(e) => FieldErrors::from_validation(&e, site_place),
        };
    }
    sites_page(
        &s,
        &user,
        StatusCode::UNPROCESSABLE_ENTITY,
        typed,
        errors,
        None,
    )
    .await
}

pub(super) async fn delete_site(
    State(s): State<AppState>,
    Admin(user): Admin,
    WebId(id): WebId,
    axum::Form(form): axum::Form<CsrfForm>,
) -> PageResult {
    user.check_csrf(&form.csrf)?;
    let result = s.store.delete_chat_site(id).await;
    if result.is_ok() {
        s.chat.invalidate();
    }
    let in_use = deleted(&user, result, "/settings/sites")?;
    sites_page(
        &s,
        &user,
        StatusCode::CONFLICT,
        SiteForm::default(),
        FieldErrors::new(),
        Some(in_use),
    )
    .await
}
