//! The PostgreSQL store: how Herald scales past one machine.
//!
//! Timestamps are `timestamptz` columns, bound and read as [`crate::Ts`] (binary, exact to the
//! microsecond), so the SQL converts nothing. A write that checks before it writes
//! locks the row it checks (`FOR UPDATE`), so a concurrent writer cannot slip in between; the
//! foreign keys stay as the backstop (recipients and import errors have none: a trigger deletes
//! them with their outreach, see `migrations/postgres/0010_recipients_go_by_trigger.sql`).

use crate::Result;
use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};
use std::str::FromStr;
use std::time::Duration;

#[allow(unused_imports)]
#[macro_use]
mod sql;
mod catalog;
mod chat;
mod conversation;
mod dispatch;
mod outreach;
mod test_send;
mod users;

// The names the files in `../shared/` are written against: each of them is compiled once per
// backend, inside this backend's module of the same name.
type Backend = PgStore;
type DbRow = sqlx::postgres::PgRow;
type Db = Postgres;
type DbConn = sqlx::PgConnection;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// How long a caller waits for a free connection before the pool gives up.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// [`crate::Store`] on PostgreSQL.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl std::fmt::Debug for PgStore {
    // The pool's options hold the password: show none of them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").finish_non_exhaustive()
    }
}

impl PgStore {
    /// Opens `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?OPTIONS]` (or `postgresql://`).
    /// Does not migrate: call [`crate::Schema::migrate`].
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(PgConnectOptions::from_str(url)?).await
    }

    /// Opens the database `options` name.
    pub async fn connect_with(options: PgConnectOptions) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(10)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await?;
        tracing::debug!("opened postgres store");
        Ok(Self { pool })
    }

    /// The connection pool, for queries this crate does not offer yet (and for tests).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn write(&self) -> Result<Transaction<'static, Postgres>> {
        Ok(self.pool.begin().await?)
    }
}

#[async_trait]
impl crate::Schema for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn migrate(&self) -> Result<()> {
        MIGRATOR.run(&self.pool).await?;
        tracing::info!(backend = "postgres", "database schema is up to date");
        Ok(())
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn pending_migrations(&self) -> Result<usize> {
        let applied = sqlx::query_scalar(crate::common::APPLIED_MIGRATIONS)
            .fetch_all(&self.pool)
            .await;
        crate::common::pending_migrations(&MIGRATOR, applied)
    }
}
