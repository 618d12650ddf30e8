//! Who is signed in to the web UI, and the CSRF check of their forms.
//!
//! INTERFACE (used by every page module; implemented by the sign-in work):
//! - [`CurrentUser`] is an axum extractor. Without a valid session cookie a `GET` is redirected
//!   (303) to `/login?next=<path>`; any other method gets 401. htmx requests (`HX-Request`) get
//!   `HX-Redirect: /login` instead.
//! - [`Admin`] is the same for admin-only pages and actions: an agent gets a 403 page.
//! - [`CurrentUser::check_csrf`] compares a submitted token (form field `csrf`, or the
//!   `X-CSRF-Token` header htmx sends) with the session's, in constant time; a mismatch is a 403
//!   page, and nothing must change.
//! - [`Chrome`] is what the base layout (`templates/base.html`) needs: every page template has a
//!   `chrome: Chrome` field.
//!
//! A session is a random 256-bit secret in the `herald_session` cookie (`HttpOnly`,
//! `SameSite=Lax`, `Path=/`, `Secure` when the public URL is https); the store keeps only its
//! SHA-256, with the user and the session's CSRF token. Sessions last [`SESSION_TTL`].

use crate::AppState;
use askama::Template;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use herald_core::Role;
use jiff::SignedDuration;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "herald_session";
/// How long a session lasts after sign-in (not sliding).
pub const SESSION_TTL: SignedDuration = SignedDuration::from_hours(12);
/// The header htmx sends the CSRF token in (set on `<body hx-headers>` by `base.html`).
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The signed-in user of a request.
#[derive(Debug, Clone)]
pub struct CurrentUser {
    pub id: Uuid,
    pub email: String,
    pub role: Role,
    /// The session's CSRF token: put it in every form (`<input type="hidden" name="csrf">`).
    pub csrf_token: String,
}

impl CurrentUser {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// `Ok` when `submitted` is this session's CSRF token; a 403 page otherwise.
    // The error is the page to answer with, returned straight from handlers (`?`): boxing it
    // would only add noise at every call.
    #[allow(clippy::result_large_err)]
    pub fn check_csrf(&self, submitted: &str) -> Result<(), Response> {
        if same_secret(&self.csrf_token, submitted.trim()) {
            Ok(())
        } else {
            Err(forbidden(
                self,
                "This form has expired or did not come from Herald. Go back, reload the page and try again.",
            ))
        }
    }

    /// [`CurrentUser::check_csrf`] of the `X-CSRF-Token` header when the request has one (htmx
    /// requests), else of `form_value` (the form's `csrf` field; `None` when the form has none).
    #[allow(clippy::result_large_err)]
    pub fn check_csrf_headers(
        &self,
        headers: &HeaderMap,
        form_value: Option<&str>,
    ) -> Result<(), Response> {
        let header = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
        match header.or(form_value) {
            Some(token) => self.check_csrf(token),
            None => self.check_csrf(""),
        }
    }
}

/// Compares two secrets in time that does not depend on where they differ. Empty never matches.
pub(crate) fn same_secret(expected: &str, submitted: &str) -> bool {
    let a = expected.as_bytes();
    let b = submitted.as_bytes();
    !a.is_empty()
        && a.len() == b.len()
        && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A signed-in admin.
#[derive(Debug, Clone)]
pub struct Admin(pub CurrentUser);

/// What the base layout shows around every page.
#[derive(Debug, Clone)]
pub struct Chrome {
    pub user: CurrentUser,
    /// The page's title (also the `<h1>`).
    pub title: String,
    /// The navigation entry to highlight: `campaigns`, `inbox`, `settings`.
    pub section: &'static str,
}

impl Chrome {
    pub fn new(user: &CurrentUser, title: impl Into<String>, section: &'static str) -> Self {
        Self {
            user: user.clone(),
            title: title.into(),
            section,
        }
    }
}

// ---------------------------------------------------------------- secrets and cookies

/// A fresh random secret: 256 bits from a CSPRNG, as 64 hex characters.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    hex::encode(bytes)
}

/// The SHA-256 (lower-case hex) of a session or setup secret: what the store keeps. SHA-256 is
/// enough for 256-bit random secrets (there is no dictionary to guess from).
pub fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// The value of the first cookie called `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| k.trim() == name)
        .map(|(_, v)| v.trim().trim_matches('"'))
        .filter(|v| !v.is_empty())
}

/// A `Set-Cookie` value: `HttpOnly; SameSite=Lax; Path=/`, `Secure` if asked, and `Max-Age`
/// (0 removes the cookie).
pub fn set_cookie(name: &str, value: &str, max_age_secs: i64, secure: bool) -> HeaderValue {
    let mut s = format!("{name}={value}; HttpOnly; SameSite=Lax; Path=/; Max-Age={max_age_secs}");
    if secure {
        s.push_str("; Secure");
    }
    // Names and values are ours (hex), so this cannot fail; an empty cookie if it ever did.
    HeaderValue::from_str(&s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The signed-in user of the session whose cookie the request carries, if it is valid.
pub async fn session_user(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<CurrentUser>, Response> {
    let Some(secret) = cookie(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    let found = state
        .store
        .find_session(&secret_hash(secret), state.clock.now())
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "could not read a web session");
            crate::web::server_error_page("check your session")
        })?;
    Ok(found.map(|(user, csrf_token)| CurrentUser {
        id: user.id,
        email: user.email,
        role: user.role,
        csrf_token,
    }))
}

/// What a signed-out request gets: GET/HEAD a redirect to the sign-in page (coming back here
/// after), htmx a 401 with `HX-Redirect`, anything else a 401 page.
fn signed_out(parts: &Parts) -> Response {
    if parts.headers.contains_key("hx-request") {
        return (
            StatusCode::UNAUTHORIZED,
            [("hx-redirect", "/login")],
            "Your session has ended; sign in again.",
        )
            .into_response();
    }
    if parts.method == Method::GET || parts.method == Method::HEAD {
        let here = parts
            .uri
            .path_and_query()
            .map_or("/", |pq| pq.as_str())
            .to_string();
        let next: String = url::form_urlencoded::byte_serialize(here.as_bytes()).collect();
        return Redirect::to(&format!("/login?next={next}")).into_response();
    }
    crate::web::render_status(
        StatusCode::UNAUTHORIZED,
        &MessagePage {
            title: "Signed out".to_string(),
            message: "You are not signed in (or your session has ended), so nothing was changed. Sign in and try again.".to_string(),
            link: Some(("/login".to_string(), "Sign in".to_string())),
        },
    )
}

/// A page for a signed-out visitor: a title, a sentence, maybe a link.
#[derive(Template)]
#[template(path = "auth_message.html")]
pub(crate) struct MessagePage {
    pub title: String,
    pub message: String,
    pub link: Option<(String, String)>,
}

/// A 403 page for a signed-in user.
#[derive(Template)]
#[template(path = "auth_forbidden.html")]
struct ForbiddenPage {
    chrome: Chrome,
    message: &'static str,
}

fn forbidden(user: &CurrentUser, message: &'static str) -> Response {
    crate::web::render_status(
        StatusCode::FORBIDDEN,
        &ForbiddenPage {
            chrome: Chrome::new(user, "Not allowed", ""),
            message,
        },
    )
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        // A handler may extract both `Admin` and `CurrentUser`: look the session up once.
        if let Some(user) = parts.extensions.get::<CurrentUser>() {
            return Ok(user.clone());
        }
        match session_user(state, &parts.headers).await? {
            Some(user) => {
                parts.extensions.insert(user.clone());
                Ok(user)
            }
            None => Err(signed_out(parts)),
        }
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let user = CurrentUser::from_request_parts(parts, state).await?;
        if user.is_admin() {
            Ok(Admin(user))
        } else {
            Err(forbidden(
                &user,
                "Only admins can do this. Ask an admin of this Herald.",
            ))
        }
    }
}

/// The id in a web page's path (`/outreaches/{id}`). A path whose id is not a UUID (a typo, a
/// cut-off link) gets the styled "not found" page, not the framework's plain-text 400.
pub struct WebId(pub uuid::Uuid);

impl<S: Send + Sync> FromRequestParts<S> for WebId {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        match axum::extract::Path::<uuid::Uuid>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(id)) => Ok(WebId(id)),
            Err(_) => Err(not_found_page(parts.uri.path())),
        }
    }
}

/// The styled 404 page of the web admin, for a path that names nothing.
pub(crate) fn not_found_page(path: &str) -> Response {
    crate::web::render_status(
        StatusCode::NOT_FOUND,
        &MessagePage {
            title: "Page not found".to_string(),
            message: format!(
                "There is nothing at {path}. The link may be cut off, or what it pointed to was \
                 deleted."
            ),
            link: Some(("/".to_string(), "Back to Herald".to_string())),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; herald_session=abc"),
        );
        h.append(header::COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "b"), Some("2"));
        assert_eq!(cookie(&h, "herald"), None);
    }

    #[test]
    fn secrets_compare_exactly() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "ab"));
        assert!(!same_secret("", ""));
    }

    #[test]
    fn cookies_are_http_only_and_lax() {
        let c = set_cookie(SESSION_COOKIE, "x", 60, true);
        let c = c.to_str().unwrap();
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Lax") && c.contains("Path=/"));
        assert!(c.ends_with("; Secure"), "{c}");
        let c = set_cookie(SESSION_COOKIE, "x", 60, false);
        assert!(!c.to_str().unwrap().contains("Secure"));
    }
}
