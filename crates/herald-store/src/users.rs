//! Accounts of the web UI: users (email, role, argon2 password hash), their sign-in sessions and
//! the one-time setup links that create a user (the first admin, invited users).
//!
//! Only SHA-256 hashes (lower-case hex) of session and setup tokens are stored: the tokens
//! themselves live in the browser's cookie and in the link, never in the database.

use crate::common::corrupt;
use crate::{Result, StoreError};
use herald_core::Role;
use jiff::Timestamp;
use uuid::Uuid;

/// A user of the web UI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: Uuid,
    /// Lower-cased, trimmed.
    pub email: String,
    pub role: Role,
    pub created_at: Timestamp,
}

/// An email as users are keyed: trimmed and lower-cased, so `Ann@X.org` and `ann@x.org` are one
/// user.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

pub(crate) fn user_conflict(email: &str) -> StoreError {
    StoreError::Conflict(format!("a user with the email {email} already exists"))
}

pub(crate) fn invalid_email() -> StoreError {
    StoreError::Invalid {
        field: "email",
        message: "must not be empty".to_string(),
    }
}

/// A `users` row as selected.
pub(crate) struct UserRow {
    pub id: Uuid,
    pub email: String,
    pub role: String,
    pub created_us: crate::Ts,
}

impl UserRow {
    pub fn parse(self) -> Result<User> {
        let id = self.id;
        let role: Role = self
            .role
            .parse()
            .map_err(|e: String| corrupt("user", id, format!("role: {e}")))?;
        let created_at = self.created_us.0;
        Ok(User {
            id,
            email: self.email,
            role,
            created_at,
        })
    }
}

/// A setup token's role column.
pub(crate) fn parse_role(role: &str) -> Result<Role> {
    role.parse().map_err(|e: String| StoreError::Corrupt {
        entity: "setup token",
        id: "(hash withheld)".to_string(),
        reason: format!("role: {e}"),
    })
}

/// What [`crate::Accounts::reserve_login_attempt`] decided about one sign-in attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginAttempt {
    /// The attempt is counted (the `n`th of the window): check the password now. A successful
    /// sign-in clears the count ([`crate::Accounts::clear_login_attempts`]).
    Allowed { attempt: u32 },
    /// The address used up its attempts: refuse without checking the password, until `until`.
    Locked { until: Timestamp },
}

/// [`LoginAttempt`] of the `(attempts, last_at)` the upsert returned.
pub(crate) fn login_attempt(
    attempts: i64,
    last_at: Timestamp,
    max_attempts: u32,
    window: jiff::SignedDuration,
) -> LoginAttempt {
    match u32::try_from(attempts) {
        Ok(n) if n <= max_attempts => LoginAttempt::Allowed { attempt: n },
        _ => LoginAttempt::Locked {
            until: last_at.checked_add(window).unwrap_or(Timestamp::MAX),
        },
    }
}

/// The attempts a limit allows, as the `integer` bound in SQL (at least 1; the count may reach
/// one more, so the largest limit leaves room for it).
pub(crate) fn max_attempts_sql(max_attempts: u32) -> i32 {
    i32::try_from(max_attempts.max(1)).map_or(i32::MAX - 1, |n| n.min(i32::MAX - 1))
}

// ---------------------------------------------------------------- people and access

/// A user as the admin's People page and `GET /api/v1/users` list them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserAccount {
    pub id: Uuid,
    pub email: String,
    pub role: Role,
    /// False once deactivated: they cannot sign in, and their sessions ended.
    pub active: bool,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub deactivated_at: Option<Timestamp>,
    /// The last time they signed in to the web UI (none before this was recorded).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub last_sign_in_at: Option<Timestamp>,
}

/// An invitation not taken yet: a setup link for that email (expired or not; sending it again
/// makes a new link and ends the old one).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Invitation {
    pub email: String,
    pub role: Role,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub expires_at: Timestamp,
}

/// An API token as listed: never its secret (only its hash is stored).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenInfo {
    pub id: Uuid,
    pub name: String,
    pub role: Role,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    /// When it last authenticated a request, to the minute (none if never).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub last_used_at: Option<Timestamp>,
}

/// How often a token's `last_used_at` is written: a request within this of the last write
/// leaves it as it is, so that authenticating stays a read.
pub const TOKEN_USE_RESOLUTION: jiff::SignedDuration = jiff::SignedDuration::from_secs(60);

/// What [`crate::Accounts::update_user`] changes; `None` leaves it as it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UserChange {
    pub role: Option<Role>,
    pub active: Option<bool>,
}

/// Who made a change: a signed-in user, an API token, or the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A web UI user, by email.
    User(String),
    /// An API token, by name.
    Token(String),
    /// `herald` on the server's command line.
    Cli,
}

impl Actor {
    pub fn kind(&self) -> &'static str {
        match self {
            Actor::User(_) => "user",
            Actor::Token(_) => "token",
            Actor::Cli => "cli",
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Actor::User(n) | Actor::Token(n) => n,
            Actor::Cli => "herald (command line)",
        }
    }

    /// In a few words: a user's email, `token NAME`, or the command line.
    pub fn described(&self) -> String {
        match self {
            Actor::Token(n) => format!("token {n}"),
            other => other.name().to_string(),
        }
    }
}

/// Who is making a change and from which address: written into the audit log with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditContext {
    pub actor: Actor,
    /// The client's IP address as the server saw it (`None` from the command line).
    pub client_addr: Option<String>,
    pub at: Timestamp,
}

/// The actions the audit log records.
pub mod action {
    pub const USER_INVITED: &str = "user.invited";
    pub const USER_INVITATION_RESENT: &str = "user.invitation_resent";
    pub const USER_ROLE_CHANGED: &str = "user.role_changed";
    pub const USER_DEACTIVATED: &str = "user.deactivated";
    pub const USER_REACTIVATED: &str = "user.reactivated";
    pub const TOKEN_CREATED: &str = "token.created";
    pub const TOKEN_REVOKED: &str = "token.revoked";
    pub const SUPPRESSION_ADDED: &str = "suppression.added";
    pub const SUPPRESSION_REMOVED: &str = "suppression.removed";
}

/// One entry of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    pub id: Uuid,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub at: Timestamp,
    /// `user`, `token` or `cli`.
    pub actor_kind: String,
    /// The user's email or the token's name, as they were then.
    pub actor: String,
    /// As `user.deactivated` (see the API's description of the audit log for the list).
    pub action: String,
    /// What it was done to: an email, a token's name, an address on the opt-out list.
    pub subject: String,
    /// More words: the new role, the reason of an opt-out.
    pub detail: String,
    /// The client's IP address (none from the command line).
    pub client_addr: Option<String>,
}

pub(crate) fn last_admin() -> StoreError {
    StoreError::Conflict(
        "this is the last active admin: make someone else an admin first, so that someone can \
         still change Herald's settings"
            .to_string(),
    )
}

pub(crate) fn user_exists_for_invite(email: &str, active: bool) -> StoreError {
    if active {
        StoreError::Conflict(format!("{email} already has an account"))
    } else {
        StoreError::Conflict(format!(
            "{email} has an account that is deactivated: reactivate it instead of inviting them"
        ))
    }
}
