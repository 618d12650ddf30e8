// Web accounts: users, sessions, setup tokens (see `crate::users`). Written once for both
// backends: `sqlite/users.rs` and `postgres/users.rs` include this file, over the names their
// `mod.rs` defines (`Backend`, `DbRow`) and the SQL pieces of their `sql.rs`.

use super::{Backend, DbRow};
use crate::Ts;
use crate::common::{self, TokenRow, Violation, col};
use crate::users::{
    User, UserRow, invalid_email, login_attempt, max_attempts_sql, normalize_email, parse_role,
    user_conflict,
};
use crate::{NewToken, Result, StoreError};
use async_trait::async_trait;
use herald_core::{ApiToken, Role};
use jiff::Timestamp;
use uuid::Uuid;
pub(super) fn token_row(r: &DbRow) -> Result<TokenRow> {
    let e = "token";
    let id: Uuid = col(r, e, None, "id")?;
    Ok(TokenRow {
        id,
        name: col(r, e, Some(id), "name")?,
        role: col(r, e, Some(id), "role")?,
        created_us: col(r, e, Some(id), "created_at")?,
    })
}

pub(super) fn user_row(r: &DbRow) -> Result<UserRow> {
    let e = "user";
    let id: Uuid = col(r, e, None, "id")?;
    Ok(UserRow {
        id,
        email: col(r, e, Some(id), "email")?,
        role: col(r, e, Some(id), "role")?,
        created_us: col(r, e, Some(id), "created_at")?,
    })
}

#[async_trait]
impl crate::Accounts for Backend {
    async fn create_token(&self, token: &NewToken) -> Result<ApiToken> {
        let id = Uuid::now_v7();
        let (now, now_us) = common::now();
        sqlx::query(
            "INSERT INTO api_tokens (id, name, role, hash_hex, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(&token.name)
        .bind(token.role.as_str())
        .bind(&token.hash_hex)
        .bind(now_us)
        .execute(&self.pool)
        .await
        .map_err(|e| match Violation::of(e) {
            Violation::Unique(_) => common::token_conflict(),
            v => v.into(),
        })?;
        tracing::debug!(token_id = %id, role = %token.role, "created api token");
        Ok(ApiToken {
            id,
            name: token.name.clone(),
            role: token.role,
            created_at: now,
        })
    }

    async fn find_token(&self, hash_hex: &str) -> Result<Option<ApiToken>> {
        let row = sqlx::query(
            "SELECT id, name, role, created_at \
             FROM api_tokens WHERE hash_hex = $1",
        )
        .bind(hash_hex)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| token_row(&r)?.parse()).transpose()
    }

    async fn count_users(&self) -> Result<u64> {
        let pool = &self.pool;
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
            .fetch_one(pool)
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn create_user(&self, email: &str, role: Role, password_hash: &str) -> Result<User> {
        let pool = &self.pool;
        let email = normalize_email(email);
        if email.is_empty() {
            return Err(invalid_email());
        }
        let id = Uuid::now_v7();
        let (now, now_us) = common::now();
        sqlx::query(
            "INSERT INTO users (id, email, role, password_hash, created_at) VALUES ($1, $2, $3, $4, $5)",
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

    async fn find_user_by_email(&self, email: &str) -> Result<Option<(User, String)>> {
        let pool = &self.pool;
        let row = sqlx::query(
            "SELECT id, email, role, password_hash, created_at \
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

    async fn get_user(&self, id: Uuid) -> Result<User> {
        let pool = &self.pool;
        let row = sqlx::query("SELECT id, email, role, created_at FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await?
            .ok_or(StoreError::NotFound { entity: "user", id })?;
        user_row(&row)?.parse()
    }

    async fn create_setup_token(
        &self,
        hash_hex: &str,
        email: Option<&str>,
        role: Role,
        expires_at: Timestamp,
    ) -> Result<()> {
        let (_, now_us) = common::now();
        let email = email.map(normalize_email);
        let mut tx = self.write().await?;
        // A re-issued link replaces the unused ones it stands for: the same email's, or (no email)
        // every other first-admin link.
        match &email {
            Some(email) => {
                sqlx::query("DELETE FROM setup_tokens WHERE email = $1 AND used_at IS NULL")
                    .bind(email)
                    .execute(&mut *tx)
                    .await?;
            }
            None => {
                sqlx::query("DELETE FROM setup_tokens WHERE email IS NULL AND used_at IS NULL")
                    .execute(&mut *tx)
                    .await?;
            }
        }
        sqlx::query(
            "INSERT INTO setup_tokens (hash_hex, email, role, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(hash_hex)
        .bind(&email)
        .bind(role.as_str())
        .bind(now_us)
        .bind(Ts::new(expires_at))
        .execute(&mut *tx)
        .await
        .map_err(|e| match Violation::of(e) {
            Violation::Unique(_) => common::token_conflict(),
            v => v.into(),
        })?;
        tx.commit().await?;
        Ok(())
    }

    async fn find_setup_token(
        &self,
        hash_hex: &str,
        now: Timestamp,
    ) -> Result<Option<(Option<String>, Role)>> {
        let pool = &self.pool;
        let row: Option<(Option<String>, String)> = sqlx::query_as(
            "SELECT email, role FROM setup_tokens \
             WHERE hash_hex = $1 AND used_at IS NULL AND expires_at > $2 \
             AND (email IS NOT NULL OR NOT EXISTS (SELECT 1 FROM users WHERE role = 'admin'))",
        )
        .bind(hash_hex)
        .bind(Ts::new(now))
        .fetch_optional(pool)
        .await?;
        row.map(|(email, role)| Ok((email, parse_role(&role)?)))
            .transpose()
    }

    async fn take_setup_token(
        &self,
        hash_hex: &str,
        now: Timestamp,
    ) -> Result<Option<(Option<String>, Role)>> {
        let pool = &self.pool;
        // One statement: two concurrent takers cannot both see it unused.
        let row: Option<(Option<String>, String)> = sqlx::query_as(
            "UPDATE setup_tokens SET used_at = $2 \
             WHERE hash_hex = $1 AND used_at IS NULL AND expires_at > $2 \
             AND (email IS NOT NULL OR NOT EXISTS (SELECT 1 FROM users WHERE role = 'admin')) \
             RETURNING email, role",
        )
        .bind(hash_hex)
        .bind(Ts::new(now))
        .fetch_optional(pool)
        .await?;
        row.map(|(email, role)| Ok((email, parse_role(&role)?)))
            .transpose()
    }

    async fn create_session(
        &self,
        hash_hex: &str,
        user_id: Uuid,
        csrf_token: &str,
        expires_at: Timestamp,
    ) -> Result<()> {
        let pool = &self.pool;
        let (_, now_us) = common::now();
        // Sessions that expired are of no use to anyone: sweep them as new ones come.
        sqlx::query("DELETE FROM web_sessions WHERE expires_at <= $1")
            .bind(now_us)
            .execute(pool)
            .await?;
        sqlx::query(
            "INSERT INTO web_sessions (hash_hex, user_id, csrf_token, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(hash_hex)
        .bind(user_id)
        .bind(csrf_token)
        .bind(now_us)
        .bind(Ts::new(expires_at))
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

    async fn find_session(&self, hash_hex: &str, now: Timestamp) -> Result<Option<(User, String)>> {
        let pool = &self.pool;
        let row = sqlx::query(
            "SELECT u.id, u.email, u.role, u.created_at, s.csrf_token \
             FROM web_sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.hash_hex = $1 AND s.expires_at > $2",
        )
        .bind(hash_hex)
        .bind(Ts::new(now))
        .fetch_optional(pool)
        .await?;
        row.map(|r| {
            let user = user_row(&r)?.parse()?;
            let csrf: String = col(&r, "user", Some(user.id), "csrf_token")?;
            Ok((user, csrf))
        })
        .transpose()
    }

    async fn delete_session(&self, hash_hex: &str) -> Result<()> {
        let pool = &self.pool;
        sqlx::query("DELETE FROM web_sessions WHERE hash_hex = $1")
            .bind(hash_hex)
            .execute(pool)
            .await?;
        Ok(())
    }

    async fn reserve_login_attempt(
        &self,
        email: &str,
        now: Timestamp,
        max_attempts: u32,
        window: jiff::SignedDuration,
    ) -> Result<crate::LoginAttempt> {
        let pool = &self.pool;
        let now_us = Ts::new(now);
        let cutoff_us = Ts::new(now.checked_sub(window).unwrap_or(Timestamp::MIN));
        sqlx::query("DELETE FROM login_attempts WHERE last_at <= $1")
            .bind(cutoff_us)
            .execute(pool)
            .await?;
        // One statement: the count goes up before the password is checked, and two concurrent
        // attempts cannot both read the same count. A locked address's count stops at the limit
        // plus one, and its window is not extended.
        let (attempts, last_at): (i32, Ts) = sqlx::query_as(
            "INSERT INTO login_attempts (email, attempts, last_at) VALUES ($1, 1, $2) \
             ON CONFLICT (email) DO UPDATE SET \
               attempts = CASE WHEN login_attempts.last_at <= $3 THEN 1 \
                               WHEN login_attempts.attempts >= $4 THEN $4 + 1 \
                               ELSE login_attempts.attempts + 1 END, \
               last_at = CASE WHEN login_attempts.last_at > $3 AND login_attempts.attempts >= $4 \
                              THEN login_attempts.last_at ELSE $2 END \
             RETURNING attempts, last_at",
        )
        .bind(normalize_email(email))
        .bind(now_us)
        .bind(cutoff_us)
        .bind(max_attempts_sql(max_attempts))
        .fetch_one(pool)
        .await?;
        Ok(login_attempt(
            i64::from(attempts),
            last_at.0,
            max_attempts,
            window,
        ))
    }

    async fn clear_login_attempts(&self, email: &str) -> Result<()> {
        let pool = &self.pool;
        sqlx::query("DELETE FROM login_attempts WHERE email = $1")
            .bind(normalize_email(email))
            .execute(pool)
            .await?;
        Ok(())
    }
}
