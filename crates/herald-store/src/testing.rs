//! Fresh, migrated databases for tests, in this crate and in the crates above it.
//!
//! ```no_run
//! # async fn example() {
//! let t = herald_store::testing::sqlite().await;
//! t.store.ping().await.unwrap();
//! if let Some(pg) = herald_store::testing::postgres().await {
//!     pg.store.ping().await.unwrap();
//! }
//! # }
//! ```
//!
//! These helpers are for tests: they panic when the database they were asked for cannot be made.

use crate::{PgStore, Schema, SqliteStore, Store};
use std::sync::Arc;
use std::sync::Once;
use std::time::Duration;
use uuid::Uuid;

/// The variable naming the PostgreSQL server tests may create databases on, e.g.
/// `postgres://root@127.0.0.1:5432/postgres`. The user must be allowed to create databases.
pub const POSTGRES_URL_VAR: &str = "HERALD_TEST_POSTGRES_URL";

/// How long dropping a [`TestStore`] waits for its Postgres database to be dropped.
const CLEANUP_WAIT: Duration = Duration::from_secs(15);

/// A migrated store on a database of its own, removed when this is dropped.
pub struct TestStore {
    pub store: Arc<dyn Store>,
    /// The url the store was opened with (for tests that start a process on the same database).
    pub url: String,
    // Dropped after `store` (fields drop in order), so the database outlives the pool handle.
    _guard: Guard,
}

impl std::fmt::Debug for TestStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestStore")
            .field("backend", &self.store.backend())
            .finish_non_exhaustive()
    }
}

impl std::ops::Deref for TestStore {
    type Target = dyn Store;
    fn deref(&self) -> &Self::Target {
        &*self.store
    }
}

/// Held only for what its drop does.
#[allow(dead_code)]
enum Guard {
    /// The directory holding the database file; deleted on drop.
    Sqlite(tempfile::TempDir),
    /// The database; dropped on drop.
    Postgres(PgDatabase),
}

/// A fresh SQLite database in a temporary directory, migrated.
///
/// # Panics
/// When the directory or the database cannot be made: this is for tests.
pub async fn sqlite() -> TestStore {
    let dir = tempfile::Builder::new()
        .prefix("herald-test-")
        .tempdir()
        .unwrap_or_else(|e| panic!("cannot make a temporary directory for a test database: {e}"));
    let url = format!("sqlite://{}", dir.path().join("herald.db").display());
    let store = SqliteStore::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("cannot open test database {url}: {e}"));
    store
        .migrate()
        .await
        .unwrap_or_else(|e| panic!("cannot migrate test database {url}: {e}"));
    TestStore {
        store: Arc::new(store),
        url,
        _guard: Guard::Sqlite(dir),
    }
}

/// A fresh database `herald_test_<random>` on the server [`POSTGRES_URL_VAR`] names, migrated;
/// it is dropped again when the [`TestStore`] is.
///
/// Without the variable this prints a notice and returns `None`, so a developer without
/// PostgreSQL can still run the SQLite half of a suite — except in CI (`CI=true`), where it
/// panics: the Postgres suite must run there.
///
/// # Panics
/// In CI without the variable, and whenever the variable is set but the database cannot be made.
pub async fn postgres() -> Option<TestStore> {
    let admin_url = match std::env::var(POSTGRES_URL_VAR) {
        Ok(url) if !url.trim().is_empty() => url.trim().to_string(),
        _ => {
            if std::env::var("CI").is_ok_and(|v| v.trim().eq_ignore_ascii_case("true")) {
                panic!(
                    "{POSTGRES_URL_VAR} is not set, and CI=true: the Postgres suite must run in CI. \
                     Start PostgreSQL and set {POSTGRES_URL_VAR}=postgres://USER@HOST:PORT/postgres \
                     (a user that may create databases)."
                );
            }
            static NOTICE: Once = Once::new();
            NOTICE.call_once(|| {
                // Written to the stream itself, not through `eprintln!`, so the test harness
                // does not swallow it.
                use std::io::Write;
                let _ = writeln!(
                    std::io::stderr(),
                    "note: {POSTGRES_URL_VAR} is not set; skipping the Postgres tests \
                     (set it to postgres://USER@HOST:PORT/postgres to run them)"
                );
            });
            return None;
        }
    };
    let name = format!("herald_test_{}", Uuid::now_v7().simple());
    create_database(&admin_url, &name).await;
    let guard = PgDatabase {
        admin_url: admin_url.clone(),
        name: name.clone(),
    };
    let url = with_database(&admin_url, &name);
    let store = PgStore::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("cannot open test database {name}: {e}"));
    store
        .migrate()
        .await
        .unwrap_or_else(|e| panic!("cannot migrate test database {name}: {e}"));
    Some(TestStore {
        store: Arc::new(store),
        url,
        _guard: Guard::Postgres(guard),
    })
}

async fn create_database(admin_url: &str, name: &str) {
    use sqlx::{Connection, Executor};
    let mut conn = sqlx::PgConnection::connect(admin_url)
        .await
        .unwrap_or_else(|e| panic!("cannot reach the Postgres server in {POSTGRES_URL_VAR}: {e}"));
    // `name` is ours: `herald_test_` and hex digits.
    conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .await
        .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
    let _ = conn.close().await;
}

/// `url` with its database (the path) replaced by `name`, query kept.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

/// A test database to drop. Dropping blocks for at most [`CLEANUP_WAIT`]: the work happens on a
/// thread with its own runtime, so it neither needs nor stalls the test's runtime.
struct PgDatabase {
    admin_url: String,
    name: String,
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let admin_url = std::mem::take(&mut self.admin_url);
        let name = std::mem::take(&mut self.name);
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("herald-test-db-cleanup".into())
            .spawn(move || {
                let result = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())
                    .and_then(|rt| {
                        rt.block_on(async {
                            tokio::time::timeout(CLEANUP_WAIT, drop_database(&admin_url, &name))
                                .await
                                .map_err(|_| "timed out".to_string())
                                .and_then(|r| r)
                        })
                    });
                if let Err(e) = result {
                    tracing::warn!(database = %name, error = %e, "could not drop test database");
                }
                let _ = done_tx.send(());
            });
        if spawned.is_ok() {
            let _ = done_rx.recv_timeout(CLEANUP_WAIT + Duration::from_secs(1));
        }
    }
}

async fn drop_database(admin_url: &str, name: &str) -> Result<(), String> {
    use sqlx::{Connection, Executor};
    let mut conn = sqlx::PgConnection::connect(admin_url)
        .await
        .map_err(|e| e.to_string())?;
    // FORCE ends the connections the test's pool may still hold (PostgreSQL 13+).
    conn.execute(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
    )))
    .await
    .map_err(|e| e.to_string())?;
    let _ = conn.close().await;
    Ok(())
}

/// Makes a `sqlite` and a `postgres` test of each named `async fn`, in a module of the fn's
/// name (`name::sqlite`, `name::postgres`), each on a fresh, migrated database of its own. The
/// PostgreSQL test passes without running when [`POSTGRES_URL_VAR`] is unset, except in CI (see
/// [`postgres`]).
///
/// - `on_both_backends!(a, b)`: each fn takes the [`TestStore`];
/// - `on_both_backends!(store: a, b)`: each fn takes `&dyn Store`;
/// - `on_both_backends!(with setup: a, b)`: each fn takes what `setup(TestStore).await` gives
///   (a started server, say); write `setup` from the crate root (`crate::common::start`).
#[macro_export]
macro_rules! on_both_backends {
    (store: $($name:ident),* $(,)?) => {
        $crate::on_both_backends!(@tests () by_ref $($name),*);
    };
    (with $setup:path: $($name:ident),* $(,)?) => {
        $crate::on_both_backends!(@tests ($setup) by_value $($name),*);
    };
    ($($name:ident),* $(,)?) => {
        $crate::on_both_backends!(@tests () plain $($name),*);
    };
    (@tests $setup:tt $mode:ident $($name:ident),*) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = $crate::testing::sqlite().await;
                assert_eq!(db.store.backend(), "sqlite");
                $crate::on_both_backends!(@run $mode $setup super::$name, db);
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(db) = $crate::testing::postgres().await else {
                    return;
                };
                assert_eq!(db.store.backend(), "postgres");
                $crate::on_both_backends!(@run $mode $setup super::$name, db);
            }
        }
    )*};
    (@run plain $setup:tt $f:path, $db:ident) => {
        $f($db).await
    };
    (@run by_ref $setup:tt $f:path, $db:ident) => {
        $f(&*$db.store).await
    };
    (@run by_value $setup:tt $f:path, $db:ident) => {
        $f($setup($db).await).await
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_is_swapped_in_the_url() {
        assert_eq!(
            with_database("postgres://root@127.0.0.1:5432/postgres", "t1"),
            "postgres://root@127.0.0.1:5432/t1"
        );
        assert_eq!(
            with_database("postgres://u:p@h/db?sslmode=disable", "t1"),
            "postgres://u:p@h/t1?sslmode=disable"
        );
        assert_eq!(with_database("postgresql://h", "t1"), "postgresql://h/t1");
    }
}
