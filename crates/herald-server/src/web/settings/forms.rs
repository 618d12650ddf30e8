//! What the settings forms (and the campaign forms, [`crate::web::campaigns`]) share: field
//! errors placed next to their field, the message page, store failures as pages, paginated
//! listings collected, raw form pairs, `<select>` ids and options, and the CSRF-only form.

use crate::web::render_status;
use crate::web::session::{Chrome, CurrentUser};
use askama::Template;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use herald_core::{Listing, PAGE_MAX, Page, ValidationError};
use herald_store::StoreError;
use serde::Deserialize;
use uuid::Uuid;

/// Field errors of a form, keyed by the form field's name (`name`, `body_0`, `schedule`...).
/// Several messages for one field are joined.
#[derive(Debug, Clone, Default)]
pub struct FieldErrors(pub(super) Vec<(String, String)>);

impl FieldErrors {
    pub fn new() -> Self {
        Self::default()
    }

    /// A message for `field`, in the words a page shows ([`crate::web::plain_words`]).
    pub fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        let message = crate::web::plain_words(&message.into());
        self.0.push((field.into(), message));
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
pub(super) fn with_label(label: &str, message: &str) -> String {
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

pub(super) fn settings_err(user: &CurrentUser) -> impl Fn(StoreError) -> Response + '_ {
    move |e| error_page(user, "settings", e)
}

/// The form field a store refusal belongs next to (`Conflict`: `default_field`; `Invalid`:
/// its field), or the refusal itself when it is not about the form.
pub(super) fn store_form_errors(
    e: StoreError,
    default_field: &str,
) -> Result<FieldErrors, StoreError> {
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
pub(super) fn saved<T>(
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
pub(super) fn deleted(
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
