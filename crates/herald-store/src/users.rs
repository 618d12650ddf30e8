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
