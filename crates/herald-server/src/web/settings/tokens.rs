//! Settings → API tokens: the tokens of the JSON API with their role and last use. Creating one
//! shows its secret once (Herald keeps only a hash); revoking one refuses its next request.
//! Both go into the audit log.

use crate::AppState;
use crate::routes::people::{TokenCreated, new_token, token_name};
use crate::web::limits::ClientAddr;
use crate::web::render_status;
use crate::web::session::{Admin, Chrome, CurrentUser, WebId};
use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use herald_core::Role;

use super::PageResult;
use super::forms::{CsrfForm, FieldErrors, FormPairs, collect_all, settings_err};
use super::people::{web_context, when};

struct TokenRow {
    id: String,
    name: String,
    role: &'static str,
    created: String,
    last_used: String,
}

#[derive(Debug, Clone, Default)]
struct TokenForm {
    name: String,
    role: String,
}

#[derive(Template)]
#[template(path = "settings_tokens.html")]
struct TokensPage {
    chrome: Chrome,
    tokens: Vec<TokenRow>,
    form: TokenForm,
    errors: FieldErrors,
    /// A token just made: its secret, shown once.
    created: Option<TokenCreated>,
}

async fn tokens_page(
    s: &AppState,
    user: &CurrentUser,
    status: StatusCode,
    form: TokenForm,
    errors: FieldErrors,
    created: Option<TokenCreated>,
) -> PageResult {
    let tokens = collect_all(|p| s.store.list_tokens(p))
        .await
        .map_err(settings_err(user))?;
    Ok(render_status(
        status,
        &TokensPage {
            chrome: Chrome::new(user, "API tokens", "settings"),
            tokens: tokens
                .into_iter()
                .map(|t| TokenRow {
                    id: t.id.to_string(),
                    name: t.name,
                    role: t.role.as_str(),
                    created: when(t.created_at),
                    last_used: t.last_used_at.map(when).unwrap_or_default(),
                })
                .collect(),
            form,
            errors,
            created,
        },
    ))
}

pub(super) async fn list_tokens(State(s): State<AppState>, Admin(user): Admin) -> PageResult {
    tokens_page(
        &s,
        &user,
        StatusCode::OK,
        TokenForm::default(),
        FieldErrors::new(),
        None,
    )
    .await
}

pub(super) async fn create_token(
    State(s): State<AppState>,
    Admin(user): Admin,
    client: ClientAddr,
    axum::Form(pairs): axum::Form<Vec<(String, String)>>,
) -> PageResult {
    let form = FormPairs(pairs);
    user.check_csrf(form.get("csrf"))?;
    let typed = TokenForm {
        name: form.get("name").to_string(),
        role: form.get("role").to_string(),
    };
    let mut errors = FieldErrors::new();
    let name = match token_name(&typed.name) {
        Ok(n) => Some(n),
        Err(e) => {
            errors = FieldErrors::from_validation(&e, |f| (f.to_string(), "Name"));
            None
        }
    };
    let role = match typed.role.parse::<Role>() {
        Ok(r) => Some(r),
        Err(e) => {
            errors.push("role", e);
            None
        }
    };
    if let (Some(name), Some(role)) = (name, role) {
        let ctx = web_context(&s, &user, client);
        let created = new_token(&s, &name, role, &ctx)
            .await
            .map_err(settings_err(&user))?;
        return tokens_page(
            &s,
            &user,
            StatusCode::CREATED,
            TokenForm::default(),
            FieldErrors::new(),
            Some(created),
        )
        .await;
    }
    tokens_page(
        &s,
        &user,
        StatusCode::UNPROCESSABLE_ENTITY,
        typed,
        errors,
        None,
    )
    .await
}

pub(super) async fn revoke_token(
    State(s): State<AppState>,
    Admin(user): Admin,
    client: ClientAddr,
    WebId(id): WebId,
    axum::Form(form): axum::Form<CsrfForm>,
) -> PageResult {
    user.check_csrf(&form.csrf)?;
    let ctx = web_context(&s, &user, client);
    s.store
        .revoke_token(id, &ctx)
        .await
        .map_err(settings_err(&user))?;
    Ok(Redirect::to("/settings/tokens").into_response())
}
