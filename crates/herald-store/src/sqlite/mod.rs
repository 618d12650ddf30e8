//! The SQLite store: Herald's embedded default. One file, WAL journal, foreign keys on.
//!
//! Writes that read before they write run in `BEGIN IMMEDIATE` transactions, so the check and the
//! write see the same database (a deferred transaction could fail to upgrade its lock under
//! concurrent writers); the busy timeout makes concurrent writers wait their turn. An import is
//! the one long writer: it writes in short transactions and gives way between them (see
//! `outreach.rs`).

use crate::{Result, StoreError};
use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};
use std::str::FromStr;
use std::time::Duration;

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
type Backend = SqliteStore;
type DbRow = sqlx::sqlite::SqliteRow;
type Db = Sqlite;
type DbConn = sqlx::SqliteConnection;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long a connection waits for another writer before giving up with "database is locked".
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Each connection's page cache, in KiB (SQLite's `cache_size`, negative for KiB): at most
/// [`CONNECTIONS`] times this stays resident for pages read, whatever the database's size.
/// SQLite's default is 2,000 KiB; a page that falls out is read again from the operating
/// system's file cache (a `pread` of one page), so a small cache costs a read its system call,
/// not a disk access, while every connection's thread keeps its own cache.
pub const CACHE_KIB: u32 = 256;

/// Connections in the pool of a file database (readers in parallel in WAL mode; one writer at
/// a time).
pub const CONNECTIONS: u32 = 8;

/// [`crate::Store`] on SQLite.
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens `sqlite://PATH` (creating the file if missing; the directory must exist),
    /// `sqlite:PATH` or `sqlite::memory:`. Does not migrate: call [`crate::Schema::migrate`].
    pub async fn connect(url: &str) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT)
            .synchronous(SqliteSynchronous::Normal)
            .pragma("cache_size", format!("-{CACHE_KIB}"));
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        if !in_memory {
            create_private(options.get_filename())?;
        }
        let pool = if in_memory {
            // An in-memory database lives as long as one connection to it: keep exactly one,
            // for ever.
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(options)
                .await?
        } else {
            SqlitePoolOptions::new()
                .max_connections(CONNECTIONS)
                .connect_with(options)
                .await?
        };
        tracing::debug!(in_memory, "opened sqlite store");
        Ok(Self { pool })
    }

    /// The connection pool, for queries this crate does not offer yet (and for tests).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    async fn write(&self) -> Result<Transaction<'static, Sqlite>> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }
}

/// Creates the database file, readable and writable by its owner only (0600 on Unix), if it
/// does not exist yet: it holds customers' addresses and password hashes. SQLite gives its
/// `-wal` and `-shm` files the database file's permissions. An existing file is left as it is.
fn create_private(path: &std::path::Path) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        // A directory that does not exist: let SQLite say so, as it did.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::Database(sqlx::Error::Io(e))),
    }
}

#[async_trait]
impl crate::Schema for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn migrate(&self) -> Result<()> {
        MIGRATOR.run(&self.pool).await?;
        tracing::info!(backend = "sqlite", "database schema is up to date");
        // What a process killed in the middle of an import left behind goes before anyone
        // works on this database (see `outreach::purge_abandoned_imports`).
        outreach::purge_abandoned_imports(&self.pool).await?;
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
