//! Outreach storage on SQLite: an import is one `BEGIN IMMEDIATE` transaction; recipients go in
//! multi-row INSERTs of bound values.

use crate::outreach::ImportedRecipient;
use sqlx::{Sqlite, SqlitePool};

pub(crate) struct SqliteImport {
    tx: Transaction<'static, Sqlite>,
    pool: SqlitePool,
    id: Uuid,
    /// The outreach's start, the first due time of its recipients.
    start_us: Ts,
}

#[async_trait]
impl OutreachImport for SqliteImport {
    fn outreach_id(&self) -> Uuid {
        self.id
    }

    async fn recipients(&mut self, batch: &[ImportedRecipient]) -> Result<()> {
        // Multi-row INSERTs with bound values: far fewer statements than rows, and no text
        // re-parsing inside SQLite. 6,000 rows x 5 bound values stays under SQLite's 32,766 limit.
        for chunk in batch.chunks(6_000) {
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
            q.build().execute(&mut *self.tx).await?;
        }
        Ok(())
    }

    async fn row_errors(&mut self, batch: &[ImportErrorRecord]) -> Result<()> {
        for chunk in batch.chunks(1000) {
            let mut q = sqlx::QueryBuilder::<Sqlite>::new(
                "INSERT INTO import_errors (outreach_id, line, column_name, value, reason) ",
            );
            q.push_values(chunk, |mut b, e| {
                b.push_bind(self.id)
                    .push_bind(e.line as i64)
                    .push_bind(&e.column)
                    .push_bind(&e.value)
                    .push_bind(&e.reason);
            });
            q.build().execute(&mut *self.tx).await?;
        }
        Ok(())
    }

    async fn commit(self: Box<Self>, summary: &ImportSummary) -> Result<Outreach> {
        let SqliteImport { tx, pool, id, .. } = *self;
        finish_import(tx, pool, id, summary).await
    }
}

/// The import of outreach `id` in `tx`: its recipients are due from `start_at`.
fn importer(
    tx: Transaction<'static, Sqlite>,
    pool: SqlitePool,
    id: Uuid,
    start_at: Timestamp,
) -> Box<dyn OutreachImport> {
    Box::new(SqliteImport {
        tx,
        pool,
        id,
        start_us: Ts::new(start_at),
    })
}

include!("../shared/outreach.rs");
