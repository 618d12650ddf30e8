//! Signing in and out, and the one-time setup links that create users (the first admin, invited
//! users).
//!
//! - `GET /` sends to `/campaigns` (which sends a signed-out visitor to `/login`).
//! - `GET/POST /login`: email and password. The form is protected from login CSRF by a random
//!   token in a short-lived `herald_login_csrf` cookie that the form must repeat. A wrong
//!   password and an unknown email get the same answer in the same time (a password is verified
//!   against a dummy hash when the email is unknown).
//! - `POST /logout`: needs the session's CSRF token; deletes the session.
//! - `GET/POST /setup/{token}`: creates the user the link was made for (argon2id password hash),
//!   signs them in. A link works once, until it expires.
//!
//! Passwords are hashed with argon2id (PHC strings) on the blocking pool, so a sign-in does not
//! stall the async workers, and never more at once than the hash gate allows (503 with
//! `Retry-After` beyond it); sign-in and setup posts are limited per client address (429 with
//! `Retry-After`), and each sign-in attempt for an email is counted in the database BEFORE its
//! password is checked, so the lockout holds against parallel guesses and across processes
//! (see [`crate::web::limits`]).

use crate::AppState;
use crate::web::limits::{Busy, ClientAddr};
use crate::web::render_status;
use crate::web::session::{
    CurrentUser, MessagePage, SESSION_COOKIE, SESSION_TTL, cookie, new_secret, same_secret,
    secret_hash, session_user, set_cookie,
};
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use herald_core::{EmailAddress, Role};
use herald_store::{LoginAttempt, StoreError, User};
use serde::Deserialize;
use std::sync::LazyLock;

/// The cookie holding the sign-in and setup forms' CSRF token (there is no session yet).
pub const LOGIN_CSRF_COOKIE: &str = "herald_login_csrf";
/// How long a sign-in form stays usable.
const LOGIN_CSRF_MAX_AGE_SECS: i64 = 3600;
/// The shortest password a user may choose.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// The longest (hashing cost grows with the length).
pub const MAX_PASSWORD_CHARS: usize = 1000;
/// Where a sign-in goes when it was not sent from a page.
/// Home: [`home`] sends each person to where they work.
const HOME: &str = "/";
const BAD_CREDENTIALS: &str = "Wrong email or password.";
const TOO_MANY: &str = "Too many failed sign-ins for this email address.";
const SLOW_DOWN: &str = "Too many attempts from your network.";
const BUSY: &str = "Herald is busy checking other sign-ins. Try again in a moment.";
/// The longest email a sign-in looks up (longer ones cannot belong to a user).
const MAX_EMAIL_BYTES: usize = 320;
/// What a 503 from the hash gate asks the client to wait.
const BUSY_RETRY_SECS: u64 = 2;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/setup/{token}", get(setup_page).post(setup))
}

// ---------------------------------------------------------------- passwords

/// The argon2id hash of a password as a PHC string (`$argon2id$v=19$…`), with a random salt.
pub fn hash_password(password: &str) -> String {
    let mut salt = [0u8; 16];
    rand::fill(&mut salt);
    let salt = SaltString::encode_b64(&salt).expect("16 bytes make a valid salt");
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with its default parameters hashes any password")
        .to_string()
}

/// Whether `password` matches the PHC hash (false for a hash that cannot be read).
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|hash| {
        Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok()
    })
}

/// Verified against when the email is unknown, so that case takes as long as a wrong password.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| hash_password("no such user at all"));

/// [`verify_password`] on the blocking pool, within the hash gate (a slot must be held: see
/// [`crate::web::limits::HashGate::enter`]); `None` hash: the dummy one (always false).
async fn verify_blocking(password: String, phc: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || {
        let known = phc.is_some();
        let phc = phc.unwrap_or_else(|| DUMMY_HASH.clone());
        verify_password(&password, &phc) && known
    })
    .await
    .unwrap_or(false)
}

/// [`hash_password`] on the blocking pool within the hash gate: `Err(Busy)` when it is full.
async fn hash_blocking(
    state: &AppState,
    password: String,
) -> Result<Result<String, Busy>, Response> {
    match state
        .sign_in
        .hashes
        .run(move || hash_password(&password))
        .await
    {
        Ok(Some(hash)) => Ok(Ok(hash)),
        Ok(None) => {
            tracing::error!("hashing a password failed");
            Err(server_error())
        }
        Err(Busy) => Ok(Err(Busy)),
    }
}

/// Sets `Retry-After` (whole seconds, at least 1).
fn with_retry_after(mut response: Response, wait: std::time::Duration) -> Response {
    let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    response
}

fn minutes(wait: std::time::Duration) -> u64 {
    wait.as_secs().div_ceil(60).max(1)
}

// ---------------------------------------------------------------- helpers

fn server_error() -> Response {
    super::server_error_page("do this")
}

fn store_failed(e: StoreError) -> Response {
    tracing::error!(error = %e, "web sign-in: store error");
    server_error()
}

/// Where a signed-in person starts: agents in the inbox, admins with the campaigns.
async fn home(user: super::session::CurrentUser) -> Redirect {
    Redirect::to(if user.is_admin() {
        "/campaigns"
    } else {
        "/inbox"
    })
}

/// `next` if it is a path on this site (not `//host`, not the sign-in page itself), else home.
fn safe_next(next: &str) -> &str {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && !next.starts_with("/login")
        && !next.starts_with("/logout")
        && next.len() <= 2000
        && next.bytes().all(|b| b.is_ascii_graphic());
    if ok { next } else { HOME }
}

/// The pre-session CSRF token: the browser's `herald_login_csrf` cookie if it has a sound one,
/// else a new one. The cookie is (re)set on the page.
fn login_csrf(headers: &HeaderMap) -> String {
    cookie(headers, LOGIN_CSRF_COOKIE)
        .filter(|c| c.len() == 64 && c.bytes().all(|b| b.is_ascii_hexdigit()))
        .map_or_else(new_secret, str::to_string)
}

fn login_csrf_ok(headers: &HeaderMap, submitted: &str) -> bool {
    cookie(headers, LOGIN_CSRF_COOKIE).is_some_and(|c| same_secret(c, submitted.trim()))
}

fn with_cookies(
    mut response: Response,
    cookies: impl IntoIterator<Item = HeaderValue>,
) -> Response {
    for c in cookies {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response
}

/// Creates a session for the user: the `Set-Cookie` of its secret.
async fn start_session(state: &AppState, user: &User) -> Result<HeaderValue, Response> {
    let secret = new_secret();
    let csrf = new_secret();
    let expires_at = state
        .clock
        .now()
        .checked_add(SESSION_TTL)
        .map_err(|_| server_error())?;
    state
        .store
        .create_session(&secret_hash(&secret), user.id, &csrf, expires_at)
        .await
        .map_err(store_failed)?;
    tracing::info!(user_id = %user.id, role = %user.role, "web sign-in");
    Ok(set_cookie(
        SESSION_COOKIE,
        &secret,
        SESSION_TTL.as_secs(),
        state.secure_cookies,
    ))
}

/// Signs out the session the browser had, if any (a new sign-in replaces it).
async fn end_previous_session(state: &AppState, headers: &HeaderMap) {
    if let Some(old) = cookie(headers, SESSION_COOKIE)
        && let Err(e) = state.store.delete_session(&secret_hash(old)).await
    {
        tracing::warn!(error = %e, "could not delete the previous web session");
    }
}

// ---------------------------------------------------------------- sign in

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    csrf: String,
    next: String,
    email: String,
    error: Option<&'static str>,
    /// With [`TOO_MANY`]: how long until the address may try again.
    retry_minutes: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct NextQuery {
    next: String,
}

fn login_response(status: StatusCode, page: &LoginPage, secure: bool) -> Response {
    let c = set_cookie(
        LOGIN_CSRF_COOKIE,
        &page.csrf,
        LOGIN_CSRF_MAX_AGE_SECS,
        secure,
    );
    with_cookies(render_status(status, page), [c])
}

async fn login_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<NextQuery>,
) -> Response {
    if let Ok(Some(_)) = session_user(&state, &headers).await {
        return Redirect::to(safe_next(&q.next)).into_response();
    }
    let page = LoginPage {
        csrf: login_csrf(&headers),
        next: safe_next(&q.next).to_string(),
        email: String::new(),
        error: None,
        retry_minutes: None,
    };
    login_response(StatusCode::OK, &page, state.secure_cookies)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct LoginForm {
    email: String,
    password: String,
    next: String,
    csrf: String,
}

async fn login(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let mut page = LoginPage {
        csrf: login_csrf(&headers),
        next: safe_next(&form.next).to_string(),
        email: form.email.trim().to_string(),
        error: None,
        retry_minutes: None,
    };
    if !login_csrf_ok(&headers, &form.csrf) {
        page.csrf = new_secret();
        page.error = Some("This sign-in form has expired. Sign in again.");
        return login_response(StatusCode::FORBIDDEN, &page, state.secure_cookies);
    }
    let secure = state.secure_cookies;
    // Per client address, before any work.
    if let Err(wait) = state
        .sign_in
        .addresses
        .check(client, std::time::Instant::now())
    {
        tracing::warn!(%client, "web sign-in refused: too many attempts from the address");
        page.error = Some(SLOW_DOWN);
        page.retry_minutes = Some(minutes(wait));
        let res = login_response(StatusCode::TOO_MANY_REQUESTS, &page, secure);
        return with_retry_after(res, wait);
    }
    if page.email.is_empty() || page.email.len() > MAX_EMAIL_BYTES {
        page.error = Some(BAD_CREDENTIALS);
        return login_response(StatusCode::UNAUTHORIZED, &page, secure);
    }
    // A hash slot first (503 beyond the gate, which counts no attempt)...
    let Ok(slot) = state.sign_in.hashes.enter().await else {
        tracing::warn!("web sign-in refused: the password hash gate is full");
        page.error = Some(BUSY);
        let res = login_response(StatusCode::SERVICE_UNAVAILABLE, &page, secure);
        return with_retry_after(res, std::time::Duration::from_secs(BUSY_RETRY_SECS));
    };
    // ...then the attempt is counted, before the password is checked: parallel guesses cannot
    // all be evaluated before the lockout sees them.
    let limits = &state.sign_in.limits;
    let window = jiff::SignedDuration::try_from(limits.lockout)
        .unwrap_or(jiff::SignedDuration::from_mins(15));
    let now = state.clock.now();
    match state
        .store
        .reserve_login_attempt(&page.email, now, limits.max_failures, window)
        .await
    {
        Ok(LoginAttempt::Allowed { .. }) => {}
        Ok(LoginAttempt::Locked { until }) => {
            tracing::warn!("web sign-in refused: too many failures for the email address");
            let wait =
                std::time::Duration::try_from(until.duration_since(now)).unwrap_or(limits.lockout);
            page.error = Some(TOO_MANY);
            page.retry_minutes = Some(minutes(wait));
            let res = login_response(StatusCode::TOO_MANY_REQUESTS, &page, secure);
            return with_retry_after(res, wait);
        }
        Err(e) => return store_failed(e),
    }
    let (user, phc) = match state.store.find_user_by_email(&page.email).await {
        Ok(Some((user, phc))) => (Some(user), Some(phc)),
        Ok(None) => (None, None),
        Err(e) => return store_failed(e),
    };
    // Always verify (against a dummy hash for an unknown email): no timing difference.
    let ok = verify_blocking(form.password, phc).await;
    drop(slot);
    let Some(user) = user.filter(|_| ok) else {
        tracing::info!("web sign-in refused");
        page.error = Some(BAD_CREDENTIALS);
        return login_response(StatusCode::UNAUTHORIZED, &page, secure);
    };
    if let Err(e) = state.store.clear_login_attempts(&page.email).await {
        return store_failed(e);
    }
    end_previous_session(&state, &headers).await;
    let session = match start_session(&state, &user).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let clear = set_cookie(LOGIN_CSRF_COOKIE, "", 0, state.secure_cookies);
    with_cookies(Redirect::to(&page.next).into_response(), [session, clear])
}

// ---------------------------------------------------------------- sign out

async fn logout(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let user: CurrentUser = match session_user(&state, &headers).await {
        Err(r) => return r,
        Ok(Some(user)) => user,
        Ok(None) => {
            let clear = set_cookie(SESSION_COOKIE, "", 0, state.secure_cookies);
            return with_cookies(Redirect::to("/login").into_response(), [clear]);
        }
    };
    let csrf = url::form_urlencoded::parse(&body)
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.into_owned());
    if let Err(r) = user.check_csrf_headers(&headers, csrf.as_deref()) {
        return r;
    }
    if let Some(secret) = cookie(&headers, SESSION_COOKIE)
        && let Err(e) = state.store.delete_session(&secret_hash(secret)).await
    {
        return store_failed(e);
    }
    tracing::info!(user_id = %user.id, "web sign-out");
    let clear = set_cookie(SESSION_COOKIE, "", 0, state.secure_cookies);
    with_cookies(Redirect::to("/login").into_response(), [clear])
}

// ---------------------------------------------------------------- setup links

#[derive(Template)]
#[template(path = "setup.html")]
struct SetupPage {
    title: &'static str,
    token: String,
    csrf: String,
    email: String,
    email_fixed: bool,
    role_is_admin: bool,
    min_len: usize,
    error: Option<&'static str>,
    email_error: Option<String>,
    password_error: Option<String>,
    password_confirm_error: Option<String>,
}

impl SetupPage {
    fn new(token: &str, csrf: String, email: Option<String>, role: Role) -> Self {
        Self {
            title: if email.is_some() {
                "Set your password"
            } else if role == Role::Admin {
                "Create an admin account"
            } else {
                "Create your account"
            },
            token: token.to_string(),
            csrf,
            email_fixed: email.is_some(),
            email: email.unwrap_or_default(),
            role_is_admin: role == Role::Admin,
            min_len: MIN_PASSWORD_CHARS,
            error: None,
            email_error: None,
            password_error: None,
            password_confirm_error: None,
        }
    }

    fn has_errors(&self) -> bool {
        self.email_error.is_some()
            || self.password_error.is_some()
            || self.password_confirm_error.is_some()
    }

    fn respond(&self, status: StatusCode, secure: bool) -> Response {
        let c = set_cookie(
            LOGIN_CSRF_COOKIE,
            &self.csrf,
            LOGIN_CSRF_MAX_AGE_SECS,
            secure,
        );
        with_cookies(render_status(status, self), [c])
    }
}

/// A setup link that was used, expired or never existed.
fn gone() -> Response {
    render_status(
        StatusCode::GONE,
        &MessagePage {
            title: "This link cannot be used".to_string(),
            message: "This setup link was already used or has expired. If you already chose your password, sign in; otherwise ask an admin for a new link (herald user create --email EMAIL --role ROLE).".to_string(),
            link: Some(("/login".to_string(), "Sign in".to_string())),
        },
    )
}

/// The password rules: the errors of the password and of its confirmation.
pub fn password_errors(password: &str, confirm: &str) -> (Option<String>, Option<String>) {
    let chars = password.chars().count();
    let password_error = if chars < MIN_PASSWORD_CHARS {
        Some(format!("Use at least {MIN_PASSWORD_CHARS} characters."))
    } else if chars > MAX_PASSWORD_CHARS {
        Some(format!("Use at most {MAX_PASSWORD_CHARS} characters."))
    } else {
        None
    };
    let confirm_error =
        (password != confirm).then(|| "The two passwords are not the same.".to_string());
    (password_error, confirm_error)
}

async fn setup_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Response {
    let found = match state
        .store
        .find_setup_token(&secret_hash(&token), state.clock.now())
        .await
    {
        Ok(found) => found,
        Err(e) => return store_failed(e),
    };
    let Some((email, role)) = found else {
        return gone();
    };
    SetupPage::new(&token, login_csrf(&headers), email, role)
        .respond(StatusCode::OK, state.secure_cookies)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SetupForm {
    email: String,
    password: String,
    password_confirm: String,
    csrf: String,
}

async fn setup(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    Path(token): Path<String>,
    Form(form): Form<SetupForm>,
) -> Response {
    // Per client address, before any work (a setup post hashes a password).
    if let Err(wait) = state
        .sign_in
        .addresses
        .check(client, std::time::Instant::now())
    {
        tracing::warn!(%client, "setup refused: too many attempts from the address");
        let res = render_status(
            StatusCode::TOO_MANY_REQUESTS,
            &MessagePage {
                title: "Too many attempts".to_string(),
                message: format!("{SLOW_DOWN} Try again in {} minute(s).", minutes(wait)),
                link: None,
            },
        );
        return with_retry_after(res, wait);
    }
    let hash = secret_hash(&token);
    let found = match state.store.find_setup_token(&hash, state.clock.now()).await {
        Ok(found) => found,
        Err(e) => return store_failed(e),
    };
    let Some((fixed_email, role)) = found else {
        return gone();
    };
    let secure = state.secure_cookies;
    let mut page = SetupPage::new(&token, login_csrf(&headers), fixed_email.clone(), role);
    if !page.email_fixed {
        page.email = form.email.trim().to_string();
    }
    if !login_csrf_ok(&headers, &form.csrf) {
        page.csrf = new_secret();
        page.error = Some("This form has expired. Fill it in again.");
        return page.respond(StatusCode::FORBIDDEN, secure);
    }

    let email = match &fixed_email {
        Some(email) => Some(email.clone()),
        None => match EmailAddress::parse(&form.email) {
            Ok(email) => Some(email.as_str().to_string()),
            Err(e) => {
                page.email_error = Some(e.to_string());
                None
            }
        },
    };
    if let Some(email) = &email {
        match state.store.find_user_by_email(email).await {
            Ok(Some(_)) => {
                page.email_error =
                    Some("A user with this email already exists: sign in instead.".to_string())
            }
            Ok(None) => {}
            Err(e) => return store_failed(e),
        }
    }
    (page.password_error, page.password_confirm_error) =
        password_errors(&form.password, &form.password_confirm);
    let Some(email) = email.filter(|_| !page.has_errors()) else {
        return page.respond(StatusCode::UNPROCESSABLE_ENTITY, secure);
    };

    let password_hash = match hash_blocking(&state, form.password).await {
        Ok(Ok(h)) => h,
        Ok(Err(Busy)) => {
            page.error = Some(BUSY);
            let res = page.respond(StatusCode::SERVICE_UNAVAILABLE, secure);
            return with_retry_after(res, std::time::Duration::from_secs(BUSY_RETRY_SECS));
        }
        Err(r) => return r,
    };
    // Take the link only now that everything is in order: a form with errors leaves it usable.
    match state.store.take_setup_token(&hash, state.clock.now()).await {
        Ok(Some(_)) => {}
        Ok(None) => return gone(),
        Err(e) => return store_failed(e),
    }
    let user = match state.store.create_user(&email, role, &password_hash).await {
        Ok(user) => user,
        Err(StoreError::Conflict(message)) => {
            page.email_error = Some(message);
            return page.respond(StatusCode::UNPROCESSABLE_ENTITY, secure);
        }
        Err(e) => return store_failed(e),
    };
    tracing::info!(user_id = %user.id, role = %user.role, "user created from a setup link");
    end_previous_session(&state, &headers).await;
    let session = match start_session(&state, &user).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let clear = set_cookie(LOGIN_CSRF_COOKIE, "", 0, secure);
    with_cookies(Redirect::to(HOME).into_response(), [session, clear])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_against_their_hash() {
        let h = hash_password("correct horse battery");
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("correct horse batterY", &h));
        assert!(!verify_password("correct horse battery", "not a hash"));
        assert_ne!(h, hash_password("correct horse battery"), "salted");
    }

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(
            safe_next("/campaigns/1?status=completed"),
            "/campaigns/1?status=completed"
        );
        assert_eq!(safe_next("//evil.example/x"), HOME);
        assert_eq!(safe_next("/\\evil.example"), HOME);
        assert_eq!(safe_next("https://evil.example/"), HOME);
        assert_eq!(safe_next("/login?next=/x"), HOME);
        assert_eq!(safe_next("/caf\u{e9}"), HOME);
        assert_eq!(safe_next(""), HOME);
    }

    #[test]
    fn password_rules() {
        assert!(password_errors("short", "short").0.is_some());
        assert_eq!(
            password_errors("long enough pw", "long enough pw"),
            (None, None)
        );
        assert!(
            password_errors("long enough pw", "long enough pX")
                .1
                .is_some()
        );
        assert!(
            password_errors(&"x".repeat(1001), &"x".repeat(1001))
                .0
                .is_some()
        );
    }
}
