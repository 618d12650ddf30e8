//! `herald backup --to FILE`: a consistent copy of a live SQLite database, taken while Herald
//! serves and writes to it (SQLite's `VACUUM INTO`: one read transaction, so the copy is the
//! database as it stood at one moment; writers go on meanwhile, WAL readers never block them).
//! PostgreSQL is backed up with `pg_dump` instead (docs/deploy.md).

use anyhow::Context;
use sqlx::ConnectOptions;
use sqlx::sqlite::SqliteConnectOptions;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// What a finished backup reports.
pub struct Backup {
    pub bytes: u64,
}

/// Copies the SQLite database at `url` to `to`, which must not exist yet. The copy is written
/// beside `to` under a temporary name, checked (`PRAGMA quick_check`) and then renamed, so `to`
/// is either a whole, readable database or absent. It is created readable by its owner only:
/// it holds every recipient and token hash.
pub async fn sqlite(url: &str, to: &Path) -> anyhow::Result<Backup> {
    let scheme = url.split(':').next().unwrap_or("").to_ascii_lowercase();
    if scheme == "postgres" || scheme == "postgresql" {
        anyhow::bail!(
            "herald backup copies a SQLite database; back up PostgreSQL with pg_dump \
             (pg_dump --format=custom --file=herald.dump \"$HERALD_DATABASE_URL\", see docs/deploy.md)"
        );
    }
    anyhow::ensure!(
        scheme == "sqlite",
        "`{}` is not a SQLite database URL (sqlite://PATH)",
        crate::config::redact_url(url)
    );
    anyhow::ensure!(
        !url.contains(":memory:") && !url.contains("mode=memory"),
        "an in-memory database has nothing on disk to back up"
    );
    let options = SqliteConnectOptions::from_str(url)
        .with_context(|| format!("`{url}` is not a SQLite database URL"))?
        // Never create the database being backed up: a wrong path must be an error.
        .create_if_missing(false)
        .busy_timeout(Duration::from_secs(30));
    let source = options.get_filename().to_path_buf();
    anyhow::ensure!(
        source.is_file(),
        "there is no database at {} (from {url})",
        source.display()
    );
    anyhow::ensure!(
        !to.exists(),
        "{} exists already; give a new file name (a backup never overwrites)",
        to.display()
    );
    let partial = partial_path(to);
    // VACUUM INTO writes into an empty file that exists; creating it first sets its mode.
    create_private(&partial).with_context(|| format!("cannot create {}", partial.display()))?;
    let result = copy(options, &partial).await;
    if let Err(e) = result {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    std::fs::rename(&partial, to)
        .with_context(|| format!("cannot rename {} to {}", partial.display(), to.display()))?;
    let bytes = std::fs::metadata(to).map(|m| m.len()).unwrap_or(0);
    Ok(Backup { bytes })
}

async fn copy(options: SqliteConnectOptions, partial: &Path) -> anyhow::Result<()> {
    let mut conn = options
        .connect()
        .await
        .context("cannot open the database to back it up")?;
    let target = partial
        .to_str()
        .context("the backup's path is not valid UTF-8")?;
    sqlx::query("VACUUM INTO ?")
        .bind(target)
        .execute(&mut conn)
        .await
        .context("the copy failed (VACUUM INTO)")?;
    drop(conn);
    let mut copy = SqliteConnectOptions::new()
        .filename(partial)
        .read_only(true)
        .connect()
        .await
        .context("cannot open the copy to check it")?;
    let check: String = sqlx::query_scalar("PRAGMA quick_check")
        .fetch_one(&mut copy)
        .await
        .context("cannot check the copy")?;
    anyhow::ensure!(check == "ok", "the copy is damaged: {check}");
    Ok(())
}

/// `FILE.partial` beside `FILE`.
fn partial_path(to: &Path) -> PathBuf {
    let mut name = to.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    to.with_file_name(name)
}

fn create_private(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map(|_| ())
}
