//! Outreach storage on SQLite: an import is one `BEGIN IMMEDIATE` transaction; recipients go in
//! multi-row INSERTs of bound values.

use crate::outreach::{
    ImportErrorRecord, ImportSummary, ImportedRecipient, NewOutreach, Outreach, OutreachImport,
    micros, outreach_cols_sqlite, outreach_row,
};
use crate::{Result, StoreError, common};
use async_trait::async_trait;
use herald_core::outreach::OutreachStatus;
use herald_core::{Listing, Page};
use sqlx::{Sqlite, SqliteConnection, SqlitePool, Transaction};
use std::collections::HashSet;
use uuid::Uuid;

pub(crate) struct SqliteImport {
    tx: Transaction<'static, Sqlite>,
    pool: SqlitePool,
    id: Uuid,
    /// The outreach's start, the first due time of its recipients (unix microseconds).
    start_us: i64,
}

pub(crate) async fn begin(pool: &SqlitePool, new: &NewOutreach) -> Result<Box<dyn OutreachImport>> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let found = sqlx::query("SELECT 1 FROM campaigns WHERE id = $1")
        .bind(new.campaign_id)
        .fetch_optional(&mut *tx)
        .await?;
    if found.is_none() {
        return Err(StoreError::NotFound {
            entity: "campaign",
            id: new.campaign_id,
        });
    }
    let id = Uuid::now_v7();
    let (_, now_us) = common::now();
    sqlx::query(
        "INSERT INTO outreaches (id, campaign_id, status, file_name, encoding, default_region, \
         start_at, end_at, rows_total, accepted, invalid, duplicates, suppressed, created_at, \
         updated_at) VALUES ($1, $2, 'scheduled', $3, 'utf-8', $4, $5, $6, 0, 0, 0, 0, 0, $7, $7)",
    )
    .bind(id)
    .bind(new.campaign_id)
    .bind(&new.file_name)
    .bind(&new.default_region)
    .bind(micros(new.start_at))
    .bind(new.end_at.map(micros))
    .bind(now_us)
    .execute(&mut *tx)
    .await?;
    Ok(Box::new(SqliteImport {
        tx,
        pool: pool.clone(),
        id,
        start_us: micros(new.start_at),
    }))
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
                self.start_us,
                self.start_us
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

    async fn commit(mut self: Box<Self>, summary: &ImportSummary) -> Result<Outreach> {
        let (_, now_us) = common::now();
        sqlx::query(
            "UPDATE outreaches SET rows_total = $2, accepted = $3, invalid = $4, duplicates = $5, \
             suppressed = $6, encoding = $7, updated_at = $8 WHERE id = $1",
        )
        .bind(self.id)
        .bind(summary.rows as i64)
        .bind(summary.accepted as i64)
        .bind(summary.invalid as i64)
        .bind(summary.duplicates as i64)
        .bind(summary.suppressed as i64)
        .bind(&summary.encoding)
        .bind(now_us)
        .execute(&mut *self.tx)
        .await?;
        let SqliteImport { tx, pool, id, .. } = *self;
        tx.commit().await?;
        get(&pool, id).await
    }
}

pub(crate) async fn get(pool: &SqlitePool, id: Uuid) -> Result<Outreach> {
    let mut conn = pool.acquire().await?;
    get_in(&mut conn, id).await
}

/// The outreach with its progress, read on one connection (inside a transaction, if it is in
/// one).
pub(crate) async fn get_in(conn: &mut SqliteConnection, id: Uuid) -> Result<Outreach> {
    let row = sqlx::query(concat!(
        "SELECT ",
        outreach_cols_sqlite!(),
        " FROM outreaches WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(StoreError::NotFound {
        entity: "outreach",
        id,
    })?;
    let outreach = outreach_row(&row)?.parse()?;
    crate::sqlite_dispatch::with_progress(conn, outreach).await
}

pub(crate) async fn list(
    pool: &SqlitePool,
    campaign_id: Uuid,
    status: Option<OutreachStatus>,
    page: Page,
) -> Result<Listing<Outreach>> {
    let mut conn = pool.acquire().await?;
    let rows = sqlx::query(concat!(
        "SELECT ",
        outreach_cols_sqlite!(),
        " FROM outreaches \
         WHERE campaign_id = $1 AND ($2 IS NULL OR status = $2) AND ($3 IS NULL OR id > $3) \
         ORDER BY id LIMIT $4"
    ))
    .bind(campaign_id)
    .bind(status.map(|s| s.as_str()))
    .bind(page.after)
    .bind(common::fetch_count(&page))
    .fetch_all(&mut *conn)
    .await?;
    let items = rows
        .iter()
        .map(|r| outreach_row(r)?.parse())
        .collect::<Result<Vec<_>>>()?;
    let mut listing = common::listing(&page, items, |o| o.id);
    for o in &mut listing.items {
        o.progress = crate::sqlite_dispatch::progress(&mut conn, o.id).await?;
    }
    Ok(listing)
}

pub(crate) async fn import_errors(
    pool: &SqlitePool,
    outreach_id: Uuid,
    after: i64,
    limit: u32,
) -> Result<Vec<(i64, ImportErrorRecord)>> {
    let rows: Vec<crate::outreach::ErrorRow> = sqlx::query_as(
        "SELECT id, line, column_name, value, reason FROM import_errors \
         WHERE outreach_id = $1 AND id > $2 ORDER BY id LIMIT $3",
    )
    .bind(outreach_id)
    .bind(after)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    Ok(crate::outreach::error_records(rows))
}

pub(crate) async fn suppressed_addresses(
    pool: &SqlitePool,
    sender_id: Option<Uuid>,
) -> Result<HashSet<String>> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT address FROM suppressions WHERE sender_id IS NULL OR sender_id = $1",
    )
    .bind(sender_id)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|(a,)| a).collect())
}

pub(crate) async fn add_suppression(
    pool: &SqlitePool,
    address: &str,
    sender_id: Option<Uuid>,
    reason: &str,
) -> Result<bool> {
    let (_, now_us) = common::now();
    let done = sqlx::query(
        "INSERT INTO suppressions (id, address, sender_id, reason, created_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
    )
    .bind(Uuid::now_v7())
    .bind(address)
    .bind(sender_id)
    .bind(reason)
    .bind(now_us)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}
