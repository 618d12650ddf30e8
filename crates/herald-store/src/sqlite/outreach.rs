//! Outreach storage on SQLite: an import is written in short `BEGIN IMMEDIATE` transactions of
//! at most [`CHUNK`] rows (multi-row INSERTs of bound values), so that SQLite's one writer at a
//! time is never held for long: the API and the dispatcher write between two chunks.
//!
//! Until its commit the outreach row does not exist, so nothing reads the rows written so far;
//! a mark in `outreach_imports` says whose they are. The commit inserts the outreach and removes
//! the mark in one transaction. An abort, a failed commit or a drop (in a task of its own) deletes
//! the rows chunk by chunk and then the mark; after a crash, [`purge_abandoned_imports`] does,
//! when the store is next migrated (`herald serve` and every command do that first).
//!
//! Taking turns: SQLite's busy handler does not queue writers. A writer that finds the database
//! locked sleeps and retries (after 1, 2, 5, 10 ms ... up to 100 ms between tries), so an
//! import that began its next chunk the moment it committed the last would almost always win the
//! lock again. Before each chunk the import therefore waits, up to [`GIVE_WAY`], until no other
//! connection of the pool is in use: a writer waiting for the lock holds one, and the lock stays
//! free long enough for its next try.

use super::SqliteStore;
use crate::outreach::ImportedRecipient;
use sqlx::{Sqlite, SqlitePool, Transaction};
use std::time::{Duration, Instant};

/// Rows per transaction of an import: about 10-40 ms of writing on a loaded machine.
pub(crate) const CHUNK: usize = 5_000;

/// The longest an import waits before a chunk for other users of the pool to finish. Longer than
/// the 100 ms a waiting writer sleeps at most between two tries, so its next try finds the lock
/// free; short enough that a connection held for long (a streamed export) only slows the import.
pub(crate) const GIVE_WAY: Duration = Duration::from_millis(150);

/// A mark whose import has not written for this long is abandoned, whatever its node says
/// (another machine's process, or one whose liveness cannot be checked here).
pub(crate) const IMPORT_STALE: jiff::SignedDuration = jiff::SignedDuration::from_mins(10);

pub(crate) struct SqliteImport {
    pool: SqlitePool,
    id: Uuid,
    new: NewOutreach,
    created_us: Ts,
    /// The outreach's start, the first due time of its recipients.
    start_us: Ts,
    /// Committed or deleted: nothing is left for the drop to clean up.
    settled: bool,
}

/// Starts an import: checks the campaign and marks the import in progress.
async fn begin_import(store: &SqliteStore, new: &NewOutreach) -> Result<Box<dyn OutreachImport>> {
    let id = Uuid::now_v7();
    let (_, now_us) = common::now();
    let mut tx = store.write().await?;
    check_campaign(&mut tx, new.campaign_id).await?;
    sqlx::query(
        "INSERT INTO outreach_imports (outreach_id, campaign_id, node, started_at, heartbeat_at) \
         VALUES ($1, $2, $3, $4, $4)",
    )
    .bind(id)
    .bind(new.campaign_id)
    .bind(node::this())
    .bind(now_us)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Box::new(SqliteImport {
        pool: store.pool.clone(),
        id,
        new: new.clone(),
        created_us: now_us,
        start_us: Ts::new(new.start_at),
        settled: false,
    }))
}

/// Waits, up to [`GIVE_WAY`], until no connection of the pool is in use (see the module's notes).
async fn give_way(pool: &SqlitePool) {
    let until = Instant::now() + GIVE_WAY;
    while (pool.size() as usize) > pool.num_idle() && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Copies the write-ahead log into the database, after a chunk and outside its transaction.
/// Otherwise the commit that next finds the log past its 1,000 pages does it (SQLite's automatic
/// checkpoint), and during an import that is mostly an API write, which then waits for the copy
/// and its `fsync` of chunks it did not write.
async fn checkpoint(pool: &SqlitePool) -> Result<()> {
    sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
        .execute(pool)
        .await?;
    Ok(())
}

/// One chunk's transaction: begun after giving way, and refused if the import's mark is gone (a
/// purge took it for abandoned), so that no row is written for an import nobody will clean up.
async fn chunk_tx(pool: &SqlitePool, id: Uuid) -> Result<Transaction<'static, Sqlite>> {
    give_way(pool).await;
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let (_, now_us) = common::now();
    let marked =
        sqlx::query("UPDATE outreach_imports SET heartbeat_at = $2 WHERE outreach_id = $1")
            .bind(id)
            .bind(now_us)
            .execute(&mut *tx)
            .await?
            .rows_affected();
    if marked == 0 {
        return Err(StoreError::Conflict(format!(
            "the import of outreach {id} was given up as abandoned"
        )));
    }
    Ok(tx)
}

impl SqliteImport {
    async fn write_recipients(&mut self, batch: &[ImportedRecipient]) -> Result<()> {
        for chunk in batch.chunks(CHUNK) {
            let mut tx = chunk_tx(&self.pool, self.id).await?;
            // Multi-row INSERTs with bound values: far fewer statements than rows, and no text
            // re-parsing inside SQLite. 5,000 rows x 5 bound values stays under SQLite's 32,766.
            let mut q = sqlx::QueryBuilder::<Sqlite>::new(
                "INSERT INTO recipients (outreach_id, due_at, updated_at, line, address, \
                 raw_address, timezone, variables, state, skip_reason) ",
            );
            let prefix = format!(
                "X'{}', {}, {}, ",
                self.id.simple(),
                self.start_us.micros(),
                self.start_us.micros()
            );
            q.push_values(chunk, |mut b, r| {
                b.push_unseparated(&prefix)
                    .push_bind(r.line as i64)
                    .push_bind(r.address.as_str())
                    .push_bind(r.raw_address.as_deref())
                    .push_bind(r.timezone.as_deref())
                    .push_bind(r.variables_json.as_str());
                if r.suppressed {
                    b.push("'skipped', 'suppressed'");
                } else {
                    b.push("'pending', NULL");
                }
            });
            q.build().execute(&mut *tx).await?;
            tx.commit().await?;
            checkpoint(&self.pool).await?;
        }
        Ok(())
    }

    async fn write_errors(&mut self, batch: &[ImportErrorRecord]) -> Result<()> {
        for chunk in batch.chunks(CHUNK) {
            let mut tx = chunk_tx(&self.pool, self.id).await?;
            for part in chunk.chunks(1000) {
                let mut q = sqlx::QueryBuilder::<Sqlite>::new(
                    "INSERT INTO import_errors (outreach_id, line, column_name, value, reason) ",
                );
                q.push_values(part, |mut b, e| {
                    b.push_bind(self.id)
                        .push_bind(e.line as i64)
                        .push_bind(&e.column)
                        .push_bind(&e.value)
                        .push_bind(&e.reason);
                });
                q.build().execute(&mut *tx).await?;
            }
            tx.commit().await?;
        }
        Ok(())
    }

    /// The last step: the outreach appears with its summary and the mark goes, at once.
    async fn finish(&mut self, summary: &ImportSummary) -> Result<()> {
        give_way(&self.pool).await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let marked = sqlx::query("DELETE FROM outreach_imports WHERE outreach_id = $1")
            .bind(self.id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if marked == 0 {
            return Err(StoreError::Conflict(format!(
                "the import of outreach {} was given up as abandoned",
                self.id
            )));
        }
        // The campaign may have been deleted while its list was read.
        check_campaign(&mut tx, self.new.campaign_id).await?;
        let (_, now_us) = common::now();
        insert_outreach(
            &mut tx,
            self.id,
            &self.new,
            summary,
            self.created_us,
            now_us,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Deletes the rows of the unfinished import of outreach `id`, chunk by chunk (giving way before
/// each), then its mark. Never touches a committed outreach's rows. The rows deleted.
async fn delete_import(pool: &SqlitePool, id: Uuid) -> Result<u64> {
    let mut deleted = 0;
    for table in ["recipients", "import_errors"] {
        loop {
            give_way(pool).await;
            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
            let committed = sqlx::query("SELECT 1 FROM outreaches WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            if committed.is_some() {
                // Its commit won: the rows are the outreach's now.
                return Ok(deleted);
            }
            let sql = format!(
                "DELETE FROM {table} WHERE rowid IN \
                 (SELECT rowid FROM {table} WHERE outreach_id = $1 LIMIT {CHUNK})"
            );
            let n = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await?;
            deleted += n;
            if n < CHUNK as u64 {
                break;
            }
        }
    }
    sqlx::query("DELETE FROM outreach_imports WHERE outreach_id = $1")
        .bind(id)
        .execute(pool)
        .await?;
    Ok(deleted)
}

/// Deletes every import whose process is gone (see [`node::is_gone`]) or that has not written
/// for [`IMPORT_STALE`]: what a crash or a kill in the middle of an import left behind. The
/// imports deleted.
pub(crate) async fn purge_abandoned_imports(pool: &SqlitePool) -> Result<u64> {
    let marks: Vec<(Uuid, String, Ts)> =
        sqlx::query_as("SELECT outreach_id, node, heartbeat_at FROM outreach_imports")
            .fetch_all(pool)
            .await?;
    let (now, _) = common::now();
    let stale = now
        .checked_sub(IMPORT_STALE)
        .map_err(|e| StoreError::Conflict(e.to_string()))?;
    let mut purged = 0;
    for (id, node, heartbeat) in marks {
        if heartbeat.0 >= stale && !node::is_gone(&node) {
            continue;
        }
        let rows = delete_import(pool, id).await?;
        tracing::warn!(
            outreach_id = %id,
            node = %node,
            rows,
            "deleted an import that never finished"
        );
        purged += 1;
    }
    Ok(purged)
}

#[async_trait]
impl OutreachImport for SqliteImport {
    fn outreach_id(&self) -> Uuid {
        self.id
    }

    async fn recipients(&mut self, batch: &[ImportedRecipient]) -> Result<()> {
        self.write_recipients(batch).await
    }

    async fn row_errors(&mut self, batch: &[ImportErrorRecord]) -> Result<()> {
        self.write_errors(batch).await
    }

    async fn commit(mut self: Box<Self>, summary: &ImportSummary) -> Result<Outreach> {
        if let Err(e) = self.finish(summary).await {
            self.abort().await?;
            return Err(e);
        }
        self.settled = true;
        let mut conn = self.pool.acquire().await?;
        imported_in(&mut conn, self.id, summary).await
    }

    async fn abort(mut self: Box<Self>) -> Result<()> {
        let deleted = delete_import(&self.pool, self.id).await?;
        self.settled = true;
        tracing::info!(outreach_id = %self.id, rows = deleted, "import given up; its rows deleted");
        Ok(())
    }
}

impl Drop for SqliteImport {
    /// Dropped unfinished (a refused upload whose caller did not abort, a client that went away):
    /// the rows are deleted in a task of their own; if that cannot run, the next start does it.
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let (pool, id) = (self.pool.clone(), self.id);
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(async move {
                    if let Err(e) = delete_import(&pool, id).await {
                        tracing::warn!(
                            outreach_id = %id,
                            error = %e,
                            "could not delete a dropped import; the next start will"
                        );
                    }
                });
            }
            Err(_) => tracing::warn!(
                outreach_id = %id,
                "a dropped import is left for the next start to delete"
            ),
        }
    }
}

/// Which process an import belongs to, and whether that process still runs.
pub(crate) mod node {
    use std::sync::OnceLock;

    /// This process: `BOOT_ID/PID/START` on Linux (the boot, the process id and its start time
    /// in clock ticks since boot, which together never name two processes), `pid/PID` elsewhere.
    pub(crate) fn this() -> &'static str {
        static THIS: OnceLock<String> = OnceLock::new();
        THIS.get_or_init(|| {
            let pid = std::process::id();
            match (boot_id(), start_time(pid)) {
                (Some(boot), Some(start)) => format!("{boot}/{pid}/{start}"),
                _ => format!("pid/{pid}"),
            }
        })
    }

    /// Whether the process `node` names has certainly stopped: it ran on this boot of this
    /// machine and no process with its id and start time runs now. `false` when that cannot be
    /// told (another machine, another system): the heartbeat decides then.
    pub(crate) fn is_gone(node: &str) -> bool {
        let mut parts = node.split('/');
        let (Some(boot), Some(pid), Some(start), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return false;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            return false;
        };
        match boot_id() {
            Some(ours) if ours == boot => start_time(pid).as_deref() != Some(start),
            _ => false,
        }
    }

    fn boot_id() -> Option<String> {
        let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
        Some(id.trim().to_string())
    }

    /// Field 22 of `/proc/PID/stat`, after the command name (which may hold spaces and
    /// parentheses, so the fields are counted from its closing parenthesis).
    fn start_time(pid: u32) -> Option<String> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let rest = &stat[stat.rfind(')')? + 1..];
        rest.split_whitespace().nth(19).map(str::to_string)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn this_process_runs_and_a_finished_one_is_gone() {
            assert!(!is_gone(this()));
            assert!(!is_gone("another-machine/1/1"));
            assert!(!is_gone("pid/1"));
            if this().starts_with("pid/") {
                return; // no /proc here: only the heartbeat can tell.
            }
            let mut child = std::process::Command::new("true")
                .spawn()
                .expect("spawn true");
            let pid = child.id();
            let start = start_time(pid);
            child.wait().expect("wait");
            let boot = boot_id().expect("boot id");
            let start = start.unwrap_or_else(|| "1".into());
            assert!(is_gone(&format!("{boot}/{pid}/{start}")));
            // Same pid and boot, another start time: a later process that reused the id.
            let own = std::process::id();
            assert!(is_gone(&format!("{boot}/{own}/0")));
        }
    }
}

include!("../shared/outreach.rs");
