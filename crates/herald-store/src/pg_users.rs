//! Web accounts on PostgreSQL: users, sessions, setup tokens (see [`crate::users`]).

use crate::common::{self, Violation, col};
use crate::outreach::micros;
use crate::users::{User, UserRow, invalid_email, normalize_email, parse_role, user_conflict};
use crate::{Result, StoreError};
use herald_core::Role;
use jiff::Timestamp;
use sqlx::postgres::{PgPool, PgRow};
use uuid::Uuid;

fn user_row(r: &PgRow) -> Result<UserRow> {
    let e = "user";
    let id: Uuid = col(r, e, None, "id")?;
    Ok(UserRow {
        id,
        email: col(r, e, Some(id), "email")?,
        role: col(r, e, Some(id), "role")?,
        created_us: col(r, e, Some(id), "created_at")?,
    })
}

pub(crate) async fn count_users(pool: &PgPool) -> Result<u64> {
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(pool)
        .await?;
    Ok(u64::try_from(n).unwrap_or(0))
}

pub(crate) async fn create_user(
    pool: &PgPool,
    email: &str,
    role: Role,
    password_hash: &str,
) -> Result<User> {
    let email = normalize_email(email);
    if email.is_empty() {
        return Err(invalid_email());
    }
    let id = Uuid::now_v7();
    let (now, now_us) = common::now();
    sqlx::query(
        "INSERT INTO users (id, email, role, password_hash, created_at) VALUES ($1, $2, $3, $4, (timestamptz 'epoch' + $5::int8 * interval '1 microsecond'))",
    )
    .bind(id)
    .bind(&email)
    .bind(role.as_str())
    .bind(password_hash)
    .bind(now_us)
    .execute(pool)
    .await
    .map_err(|e| match Violation::of(e) {
        Violation::Unique(_) => user_conflict(&email),
        v => v.into(),
    })?;
    tracing::debug!(user_id = %id, %role, "created user");
    Ok(User {
        id,
        email,
        role,
        created_at: now,
    })
}

pub(crate) async fn find_user_by_email(
    pool: &PgPool,
    email: &str,
) -> Result<Option<(User, String)>> {
    let row = sqlx::query(
        "SELECT id, email, role, password_hash, (extract(epoch from created_at) * 1000000)::int8 AS created_at \
         FROM users WHERE email = $1",
    )
    .bind(normalize_email(email))
    .fetch_optional(pool)
    .await?;
    row.map(|r| {
        let user = user_row(&r)?.parse()?;
        let hash: String = col(&r, "user", Some(user.id), "password_hash")?;
        Ok((user, hash))
    })
    .transpose()
}

pub(crate) async fn get_user(pool: &PgPool, id: Uuid) -> Result<User> {
    let row = sqlx::query("SELECT id, email, role, (extract(epoch from created_at) * 1000000)::int8 AS created_at FROM users WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await?
        .ok_or(StoreError::NotFound { entity: "user", id })?;
    user_row(&row)?.parse()
}

pub(crate) async fn create_setup_token(
    pool: &PgPool,
    hash_hex: &str,
    email: Option<&str>,
    role: Role,
    expires_at: Timestamp,
) -> Result<()> {
    let (_, now_us) = common::now();
    sqlx::query(
        "INSERT INTO setup_tokens (hash_hex, email, role, created_at, expires_at) \
         VALUES ($1, $2, $3, (timestamptz 'epoch' + $4::int8 * interval '1 microsecond'), (timestamptz 'epoch' + $5::int8 * interval '1 microsecond'))",
    )
    .bind(hash_hex)
    .bind(email.map(normalize_email))
    .bind(role.as_str())
    .bind(now_us)
    .bind(micros(expires_at))
    .execute(pool)
    .await
    .map_err(|e| match Violation::of(e) {
        Violation::Unique(_) => common::token_conflict(),
        v => v.into(),
    })?;
    Ok(())
}

pub(crate) async fn find_setup_token(
    pool: &PgPool,
    hash_hex: &str,
    now: Timestamp,
) -> Result<Option<(Option<String>, Role)>> {
    let row: Option<(Option<String>, String)> = sqlx::query_as(
        "SELECT email, role FROM setup_tokens \
         WHERE hash_hex = $1 AND used_at IS NULL AND expires_at > (timestamptz 'epoch' + $2::int8 * interval '1 microsecond')",
    )
    .bind(hash_hex)
    .bind(micros(now))
    .fetch_optional(pool)
    .await?;
    row.map(|(email, role)| Ok((email, parse_role(&role)?)))
        .transpose()
}

pub(crate) async fn take_setup_token(
    pool: &PgPool,
    hash_hex: &str,
    now: Timestamp,
) -> Result<Option<(Option<String>, Role)>> {
    // One statement: two concurrent takers cannot both see it unused.
    let row: Option<(Option<String>, String)> = sqlx::query_as(
        "UPDATE setup_tokens SET used_at = (timestamptz 'epoch' + $2::int8 * interval '1 microsecond') \
         WHERE hash_hex = $1 AND used_at IS NULL AND expires_at > (timestamptz 'epoch' + $2::int8 * interval '1 microsecond') \
         RETURNING email, role",
    )
    .bind(hash_hex)
    .bind(micros(now))
    .fetch_optional(pool)
    .await?;
    row.map(|(email, role)| Ok((email, parse_role(&role)?)))
        .transpose()
}

pub(crate) async fn create_session(
    pool: &PgPool,
    hash_hex: &str,
    user_id: Uuid,
    csrf_token: &str,
    expires_at: Timestamp,
) -> Result<()> {
    let (_, now_us) = common::now();
    // Sessions that expired are of no use to anyone: sweep them as new ones come.
    sqlx::query("DELETE FROM web_sessions WHERE expires_at <= (timestamptz 'epoch' + $1::int8 * interval '1 microsecond')")
        .bind(now_us)
        .execute(pool)
        .await?;
    sqlx::query(
        "INSERT INTO web_sessions (hash_hex, user_id, csrf_token, created_at, expires_at) \
         VALUES ($1, $2, $3, (timestamptz 'epoch' + $4::int8 * interval '1 microsecond'), (timestamptz 'epoch' + $5::int8 * interval '1 microsecond'))",
    )
    .bind(hash_hex)
    .bind(user_id)
    .bind(csrf_token)
    .bind(now_us)
    .bind(micros(expires_at))
    .execute(pool)
    .await
    .map_err(|e| match Violation::of(e) {
        Violation::Unique(_) => common::token_conflict(),
        Violation::ForeignKey(_) => StoreError::NotFound {
            entity: "user",
            id: user_id,
        },
        v => v.into(),
    })?;
    Ok(())
}

pub(crate) async fn find_session(
    pool: &PgPool,
    hash_hex: &str,
    now: Timestamp,
) -> Result<Option<(User, String)>> {
    let row = sqlx::query(
        "SELECT u.id, u.email, u.role, (extract(epoch from u.created_at) * 1000000)::int8 AS created_at, s.csrf_token \
         FROM web_sessions s JOIN users u ON u.id = s.user_id \
         WHERE s.hash_hex = $1 AND s.expires_at > (timestamptz 'epoch' + $2::int8 * interval '1 microsecond')",
    )
    .bind(hash_hex)
    .bind(micros(now))
    .fetch_optional(pool)
    .await?;
    row.map(|r| {
        let user = user_row(&r)?.parse()?;
        let csrf: String = col(&r, "user", Some(user.id), "csrf_token")?;
        Ok((user, csrf))
    })
    .transpose()
}

pub(crate) async fn delete_session(pool: &PgPool, hash_hex: &str) -> Result<()> {
    sqlx::query("DELETE FROM web_sessions WHERE hash_hex = $1")
        .bind(hash_hex)
        .execute(pool)
        .await?;
    Ok(())
}
