//! Outreach storage on PostgreSQL: an import is one transaction; recipients go in with `COPY`,
//! one per batch.

use super::PgStore;
use crate::outreach::{ImportedRecipient, copy_text};
use sqlx::{PgPool, Postgres, Transaction};

pub(crate) struct PgImport {
    tx: Transaction<'static, Postgres>,
    pool: PgPool,
    id: Uuid,
    /// `start_at` as COPY text, the recipients' first due time.
    start_text: String,
    buf: Vec<u8>,
}

#[async_trait]
impl OutreachImport for PgImport {
    fn outreach_id(&self) -> Uuid {
        self.id
    }

    async fn recipients(&mut self, batch: &[ImportedRecipient]) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let id = self.id.to_string();
        let buf = &mut self.buf;
        buf.clear();
        for r in batch {
            buf.extend_from_slice(id.as_bytes());
            buf.push(b'\t');
            buf.extend_from_slice(r.line.to_string().as_bytes());
            buf.push(b'\t');
            copy_text(buf, &r.address);
            buf.push(b'\t');
            match &r.raw_address {
                Some(raw) => copy_text(buf, raw),
                None => buf.extend_from_slice(b"\\N"),
            }
            buf.push(b'\t');
            match &r.timezone {
                Some(tz) => copy_text(buf, tz),
                None => buf.extend_from_slice(b"\\N"),
            }
            buf.push(b'\t');
            copy_text(buf, &r.variables_json);
            buf.extend_from_slice(if r.suppressed {
                b"\tskipped\tsuppressed\t"
            } else {
                b"\tpending\t\\N\t"
            });
            buf.extend_from_slice(self.start_text.as_bytes());
            buf.push(b'\n');
        }
        let mut copy = self
            .tx
            .copy_in_raw(
                "COPY recipients (outreach_id, line, address, raw_address, timezone, variables, \
                 state, skip_reason, due_at) FROM STDIN",
            )
            .await?;
        copy.send(buf.as_slice()).await?;
        copy.finish().await?;
        Ok(())
    }

    async fn row_errors(&mut self, batch: &[ImportErrorRecord]) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let id = self.id.to_string();
        let buf = &mut self.buf;
        buf.clear();
        for e in batch {
            buf.extend_from_slice(id.as_bytes());
            buf.push(b'\t');
            buf.extend_from_slice(e.line.to_string().as_bytes());
            buf.push(b'\t');
            match &e.column {
                Some(c) => copy_text(buf, c),
                None => buf.extend_from_slice(b"\\N"),
            }
            buf.push(b'\t');
            copy_text(buf, &e.value);
            buf.push(b'\t');
            copy_text(buf, &e.reason);
            buf.push(b'\n');
        }
        let mut copy = self
            .tx
            .copy_in_raw(
                "COPY import_errors (outreach_id, line, column_name, value, reason) FROM STDIN",
            )
            .await?;
        copy.send(buf.as_slice()).await?;
        copy.finish().await?;
        Ok(())
    }

    async fn commit(self: Box<Self>, summary: &ImportSummary) -> Result<Outreach> {
        let PgImport { tx, pool, id, .. } = *self;
        finish_import(tx, pool, id, summary).await
    }

    async fn abort(self: Box<Self>) -> Result<()> {
        self.tx.rollback().await?;
        Ok(())
    }
}

/// Starts the import: one transaction that inserts the outreach and then its rows, all visible
/// at its commit.
async fn begin_import(store: &PgStore, new: &NewOutreach) -> Result<Box<dyn OutreachImport>> {
    let mut tx = store.write().await?;
    check_campaign(&mut tx, new.campaign_id).await?;
    let id = Uuid::now_v7();
    let (_, now_us) = common::now();
    let summary = ImportSummary {
        encoding: "utf-8".into(),
        ..ImportSummary::default()
    };
    insert_outreach(&mut tx, id, new, &summary, now_us, now_us).await?;
    Ok(Box::new(PgImport {
        tx,
        pool: store.pool.clone(),
        id,
        start_text: new.start_at.to_string(),
        buf: Vec::new(),
    }))
}

/// Ends an import: writes its summary on the outreach, commits, and reads the outreach back.
async fn finish_import(
    mut tx: Transaction<'static, Postgres>,
    pool: PgPool,
    id: Uuid,
    summary: &ImportSummary,
) -> Result<Outreach> {
    let (_, now_us) = common::now();
    sqlx::query(
        "UPDATE outreaches SET rows_total = $2, accepted = $3, invalid = $4, duplicates = $5, \
         suppressed = $6, encoding = $7, updated_at = $8 WHERE id = $1",
    )
    .bind(id)
    .bind(summary.rows as i64)
    .bind(summary.accepted as i64)
    .bind(summary.invalid as i64)
    .bind(summary.duplicates as i64)
    .bind(summary.suppressed as i64)
    .bind(&summary.encoding)
    .bind(now_us)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    let mut conn = pool.acquire().await?;
    get_in(&mut conn, id).await
}

include!("../shared/outreach.rs");
