// Web accounts: users, sessions, setup tokens (see `crate::users`). Written once for both
// backends: `sqlite/users.rs` and `postgres/users.rs` include this file, over the names their
// `mod.rs` defines (`Backend`, `DbRow`) and the SQL pieces of their `sql.rs`.

use super::{Backend, DbRow};
use crate::Ts;
use crate::common::{self, TokenRow, Violation, col};
use crate::conversation::{Suppression, SuppressionRow};
use crate::users::{
    AuditContext, AuditEntry, Invitation, TOKEN_USE_RESOLUTION, TokenInfo, User, UserAccount,
    UserChange, UserRow, action, invalid_email, last_admin, login_attempt, max_attempts_sql,
    normalize_email, parse_role, user_conflict, user_exists_for_invite,
};
use crate::{NewToken, Result, StoreError};
use async_trait::async_trait;
use herald_core::{ApiToken, Role};
use herald_core::{Listing, Page};
use jiff::Timestamp;
use uuid::Uuid;
/// The columns [`account`] reads.
macro_rules! account_cols {
    () => {
        "id, email, role, created_at, deactivated_at, last_sign_in_at"
    };
}

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
        let mut conn = self.pool.acquire().await?;
        insert_token(&mut conn, token).await
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
             FROM users WHERE email = $1 AND deactivated_at IS NULL",
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
        sqlx::query("UPDATE users SET last_sign_in_at = $2 WHERE id = $1")
            .bind(user_id)
            .bind(now_us)
            .execute(pool)
            .await?;
        Ok(())
    }

    async fn find_session(&self, hash_hex: &str, now: Timestamp) -> Result<Option<(User, String)>> {
        let pool = &self.pool;
        let row = sqlx::query(
            "SELECT u.id, u.email, u.role, u.created_at, s.csrf_token \
             FROM web_sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.hash_hex = $1 AND s.expires_at > $2 AND u.deactivated_at IS NULL",
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

    // ---------------------------------------------------------------- people and access

    async fn list_users(&self, page: Page) -> Result<Listing<UserAccount>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            account_cols!(),
            " FROM users WHERE ($1 IS NULL OR id > $1) ORDER BY id LIMIT $2"
        ))
        .bind(page.after)
        .bind(common::fetch_count(&page))
        .fetch_all(&self.pool)
        .await?;
        let items = rows.iter().map(account).collect::<Result<Vec<_>>>()?;
        Ok(common::listing(&page, items, |u| u.id))
    }

    async fn get_user_account(&self, id: Uuid) -> Result<UserAccount> {
        let row = sqlx::query(concat!(
            "SELECT ",
            account_cols!(),
            " FROM users WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound { entity: "user", id })?;
        account(&row)
    }

    async fn list_invitations(&self) -> Result<Vec<Invitation>> {
        let rows: Vec<(String, String, Ts, Ts)> = sqlx::query_as(
            "SELECT email, role, created_at, expires_at FROM setup_tokens \
             WHERE email IS NOT NULL AND used_at IS NULL ORDER BY created_at, email LIMIT 500",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(email, role, created, expires)| {
                Ok(Invitation {
                    email,
                    role: parse_role(&role)?,
                    created_at: created.0,
                    expires_at: expires.0,
                })
            })
            .collect()
    }

    async fn invite_user(
        &self,
        email: &str,
        role: Role,
        hash_hex: &str,
        expires_at: Timestamp,
        ctx: &AuditContext,
    ) -> Result<bool> {
        let email = normalize_email(email);
        if email.is_empty() {
            return Err(invalid_email());
        }
        let mut tx = self.write().await?;
        let existing: Option<(Option<Ts>,)> =
            sqlx::query_as("SELECT deactivated_at FROM users WHERE email = $1")
                .bind(&email)
                .fetch_optional(&mut *tx)
                .await?;
        if let Some((deactivated,)) = existing {
            return Err(user_exists_for_invite(&email, deactivated.is_none()));
        }
        // A new link replaces the unused ones of the email: only the newest works.
        let replaced = sqlx::query("DELETE FROM setup_tokens WHERE email = $1 AND used_at IS NULL")
            .bind(&email)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            > 0;
        sqlx::query(
            "INSERT INTO setup_tokens (hash_hex, email, role, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(hash_hex)
        .bind(&email)
        .bind(role.as_str())
        .bind(Ts::new(ctx.at))
        .bind(Ts::new(expires_at))
        .execute(&mut *tx)
        .await
        .map_err(|e| match Violation::of(e) {
            Violation::Unique(_) => common::token_conflict(),
            v => v.into(),
        })?;
        let what = if replaced {
            action::USER_INVITATION_RESENT
        } else {
            action::USER_INVITED
        };
        insert_audit(&mut tx, ctx, what, &email, &format!("role: {role}")).await?;
        tx.commit().await?;
        Ok(replaced)
    }

    async fn update_user(
        &self,
        id: Uuid,
        change: UserChange,
        ctx: &AuditContext,
    ) -> Result<UserAccount> {
        let mut tx = self.write().await?;
        // The active admins are locked first (PostgreSQL), so that two changes at once cannot
        // each see the other admin and leave none.
        let admins: Vec<(Uuid,)> = sqlx::query_as(concat!(
            "SELECT id FROM users WHERE role = 'admin' AND deactivated_at IS NULL ORDER BY id ",
            for_update!()
        ))
        .fetch_all(&mut *tx)
        .await?;
        let row = sqlx::query(concat!(
            "SELECT ",
            account_cols!(),
            " FROM users WHERE id = $1 ",
            for_update!()
        ))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound { entity: "user", id })?;
        let before = account(&row)?;
        let role = change.role.unwrap_or(before.role);
        let active = change.active.unwrap_or(before.active);
        let stays_admin = role == Role::Admin && active;
        let was_admin = before.role == Role::Admin && before.active;
        if was_admin && !stays_admin && admins.len() <= 1 {
            return Err(last_admin());
        }
        if role != before.role {
            sqlx::query("UPDATE users SET role = $2 WHERE id = $1")
                .bind(id)
                .bind(role.as_str())
                .execute(&mut *tx)
                .await?;
            let detail = format!("{} → {role}", before.role);
            insert_audit(
                &mut tx,
                ctx,
                action::USER_ROLE_CHANGED,
                &before.email,
                &detail,
            )
            .await?;
        }
        if active != before.active {
            if active {
                sqlx::query("UPDATE users SET deactivated_at = NULL WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                insert_audit(&mut tx, ctx, action::USER_REACTIVATED, &before.email, "").await?;
            } else {
                sqlx::query("UPDATE users SET deactivated_at = $2 WHERE id = $1")
                    .bind(id)
                    .bind(Ts::new(ctx.at))
                    .execute(&mut *tx)
                    .await?;
                // Their browsers are signed out at once: the sessions go with the change.
                let ended = sqlx::query("DELETE FROM web_sessions WHERE user_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                let detail = format!("{ended} session(s) ended");
                insert_audit(
                    &mut tx,
                    ctx,
                    action::USER_DEACTIVATED,
                    &before.email,
                    &detail,
                )
                .await?;
            }
        }
        let row = sqlx::query(concat!(
            "SELECT ",
            account_cols!(),
            " FROM users WHERE id = $1"
        ))
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        let after = account(&row)?;
        tx.commit().await?;
        if after != before {
            tracing::info!(user_id = %id, role = %after.role, active = after.active, "user changed");
        }
        Ok(after)
    }

    async fn list_tokens(&self, page: Page) -> Result<Listing<TokenInfo>> {
        let rows = sqlx::query(
            "SELECT id, name, role, created_at, last_used_at FROM api_tokens \
             WHERE ($1 IS NULL OR id > $1) ORDER BY id LIMIT $2",
        )
        .bind(page.after)
        .bind(common::fetch_count(&page))
        .fetch_all(&self.pool)
        .await?;
        let items = rows.iter().map(token_info).collect::<Result<Vec<_>>>()?;
        Ok(common::listing(&page, items, |t| t.id))
    }

    async fn create_token_audited(&self, token: &NewToken, ctx: &AuditContext) -> Result<ApiToken> {
        let mut tx = self.write().await?;
        let created = insert_token(&mut tx, token).await?;
        let detail = format!("role: {}", token.role);
        insert_audit(&mut tx, ctx, action::TOKEN_CREATED, &token.name, &detail).await?;
        tx.commit().await?;
        Ok(created)
    }

    async fn revoke_token(&self, id: Uuid, ctx: &AuditContext) -> Result<TokenInfo> {
        let mut tx = self.write().await?;
        let row = sqlx::query(concat!(
            "SELECT id, name, role, created_at, last_used_at FROM api_tokens WHERE id = $1 ",
            for_update!()
        ))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound {
            entity: "token",
            id,
        })?;
        let info = token_info(&row)?;
        sqlx::query("DELETE FROM api_tokens WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let detail = format!("role: {}", info.role);
        insert_audit(&mut tx, ctx, action::TOKEN_REVOKED, &info.name, &detail).await?;
        tx.commit().await?;
        tracing::info!(token_id = %id, "revoked api token");
        Ok(info)
    }

    async fn use_token(&self, hash_hex: &str, now: Timestamp) -> Result<Option<ApiToken>> {
        let Some(row) = sqlx::query(
            "SELECT id, name, role, created_at, last_used_at FROM api_tokens WHERE hash_hex = $1",
        )
        .bind(hash_hex)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let info = token_info(&row)?;
        let stale_before = now.checked_sub(TOKEN_USE_RESOLUTION).unwrap_or(now);
        if info.last_used_at.is_none_or(|t| t < stale_before) {
            // Conditional, so that of several requests at once only one writes.
            sqlx::query(
                "UPDATE api_tokens SET last_used_at = $2 \
                 WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $3)",
            )
            .bind(info.id)
            .bind(Ts::new(now))
            .bind(Ts::new(stale_before))
            .execute(&self.pool)
            .await?;
        }
        Ok(Some(ApiToken {
            id: info.id,
            name: info.name,
            role: info.role,
            created_at: info.created_at,
        }))
    }

    async fn add_suppression_audited(
        &self,
        address: &str,
        sender_id: Option<Uuid>,
        reason: &str,
        ctx: &AuditContext,
    ) -> Result<bool> {
        let mut tx = self.write().await?;
        let created = sqlx::query(
            "INSERT INTO suppressions (id, address, sender_id, reason, created_at, added_by) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(Uuid::now_v7())
        .bind(address)
        .bind(sender_id)
        .bind(reason)
        .bind(Ts::new(ctx.at))
        .bind(ctx.actor.described())
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if created {
            let detail = suppression_detail(reason, sender_id);
            insert_audit(&mut tx, ctx, action::SUPPRESSION_ADDED, address, &detail).await?;
        }
        tx.commit().await?;
        Ok(created)
    }

    async fn delete_suppression_audited(
        &self,
        id: Uuid,
        ctx: &AuditContext,
    ) -> Result<Suppression> {
        let mut tx = self.write().await?;
        let row: SuppressionRow = sqlx::query_as(concat!(
            "SELECT ",
            suppression_cols!(),
            " FROM suppressions WHERE id = $1 ",
            for_update!()
        ))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound {
            entity: "suppression",
            id,
        })?;
        let gone = crate::conversation::suppression(row)?;
        sqlx::query("DELETE FROM suppressions WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let detail = suppression_detail(&gone.reason, gone.sender_id);
        insert_audit(
            &mut tx,
            ctx,
            action::SUPPRESSION_REMOVED,
            &gone.address,
            &detail,
        )
        .await?;
        tx.commit().await?;
        Ok(gone)
    }

    async fn record_audit(
        &self,
        ctx: &AuditContext,
        what: &str,
        subject: &str,
        detail: &str,
    ) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        insert_audit(&mut conn, ctx, what, subject, detail).await
    }

    async fn list_audit(&self, page: Page) -> Result<Listing<AuditEntry>> {
        type AuditRow = (
            Uuid,
            Ts,
            String,
            String,
            String,
            String,
            String,
            Option<String>,
        );
        let rows: Vec<AuditRow> = sqlx::query_as(
            "SELECT id, at, actor_kind, actor, action, subject, detail, client_addr \
             FROM audit_log WHERE ($1 IS NULL OR id < $1) ORDER BY id DESC LIMIT $2",
        )
        .bind(page.after)
        .bind(common::fetch_count(&page))
        .fetch_all(&self.pool)
        .await?;
        let items = rows
            .into_iter()
            .map(
                |(id, at, actor_kind, actor, action, subject, detail, client_addr)| AuditEntry {
                    id,
                    at: at.0,
                    actor_kind,
                    actor,
                    action,
                    subject,
                    detail,
                    client_addr,
                },
            )
            .collect();
        Ok(common::listing(&page, items, |e| e.id))
    }
}

fn account(r: &DbRow) -> Result<UserAccount> {
    let user = user_row(r)?.parse()?;
    let deactivated: Option<Ts> = col(r, "user", Some(user.id), "deactivated_at")?;
    let last_sign_in: Option<Ts> = col(r, "user", Some(user.id), "last_sign_in_at")?;
    Ok(UserAccount {
        id: user.id,
        email: user.email,
        role: user.role,
        active: deactivated.is_none(),
        created_at: user.created_at,
        deactivated_at: deactivated.map(|t| t.0),
        last_sign_in_at: last_sign_in.map(|t| t.0),
    })
}

fn token_info(r: &DbRow) -> Result<TokenInfo> {
    let token = token_row(r)?.parse()?;
    let last_used: Option<Ts> = col(r, "token", Some(token.id), "last_used_at")?;
    Ok(TokenInfo {
        id: token.id,
        name: token.name,
        role: token.role,
        created_at: token.created_at,
        last_used_at: last_used.map(|t| t.0),
    })
}

/// An opt-out's audit detail: its reason, and the sender it is for.
fn suppression_detail(reason: &str, sender_id: Option<Uuid>) -> String {
    match sender_id {
        Some(id) => format!("{reason} (sender {id})"),
        None => format!("{reason} (every sender)"),
    }
}

async fn insert_token(conn: &mut super::DbConn, token: &NewToken) -> Result<ApiToken> {
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
    .execute(&mut *conn)
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

/// One audit entry, on the connection (or in the transaction) of the change it records.
async fn insert_audit(
    conn: &mut super::DbConn,
    ctx: &AuditContext,
    what: &str,
    subject: &str,
    detail: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit_log (id, at, actor_kind, actor, action, subject, detail, client_addr) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(Uuid::now_v7())
    .bind(Ts::new(ctx.at))
    .bind(ctx.actor.kind())
    .bind(ctx.actor.name())
    .bind(what)
    .bind(subject)
    .bind(detail)
    .bind(ctx.client_addr.as_deref())
    .execute(&mut *conn)
    .await?;
    Ok(())
}
