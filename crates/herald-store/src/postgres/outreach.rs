//! Outreach storage on PostgreSQL: an import is one transaction; recipients go in with `COPY`,
//! one per batch.
//!
//! Recipients are sent in `COPY`'s binary format: the server then neither splits escaped text
//! fields nor runs `uuid_in`, `int8in` and `timestamptz_in` on every row, which was 31% of its
//! time in a 1,000,000-row import (docs/benchmarks.md). Text columns go as their UTF-8 bytes,
//! which the server still checks. Import errors, few and small, stay in the text format.

use super::PgStore;
use crate::outreach::{ImportedRecipient, copy_text};
use sqlx::{PgPool, Postgres, Transaction};

pub(crate) struct PgImport {
    tx: Transaction<'static, Postgres>,
    pool: PgPool,
    id: Uuid,
    /// `start_at`, the recipients' first due time, as binary COPY writes a `timestamptz`.
    start_binary: i64,
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
        let buf = &mut self.buf;
        buf.clear();
        buf.extend_from_slice(BINARY_HEADER);
        for r in batch {
            // Nine fields, in the order of the COPY's column list.
            buf.extend_from_slice(&9i16.to_be_bytes());
            field(buf, Some(self.id.as_bytes()))?;
            let line = i64::try_from(r.line).map_err(|_| line_too_large(r.line))?;
            field(buf, Some(&line.to_be_bytes()))?;
            field(buf, Some(r.address.as_bytes()))?;
            field(buf, r.raw_address.as_deref().map(str::as_bytes))?;
            field(buf, r.timezone.as_deref().map(str::as_bytes))?;
            field(buf, Some(r.variables_json.as_bytes()))?;
            let (state, skip_reason) = match r.suppressed {
                true => ("skipped", Some("suppressed")),
                false => ("pending", None),
            };
            field(buf, Some(state.as_bytes()))?;
            field(buf, skip_reason.map(str::as_bytes))?;
            field(buf, Some(&self.start_binary.to_be_bytes()))?;
        }
        buf.extend_from_slice(&(-1i16).to_be_bytes());
        let mut copy = self
            .tx
            .copy_in_raw(
                "COPY recipients (outreach_id, line, address, raw_address, timezone, variables, \
                 state, skip_reason, due_at) FROM STDIN (FORMAT binary)",
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

/// The binary `COPY` header: its signature, no flags, no header extension.
const BINARY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// One field of a binary `COPY` tuple: its length and bytes, or -1 for NULL.
fn field(buf: &mut Vec<u8>, value: Option<&[u8]>) -> Result<()> {
    match value {
        None => buf.extend_from_slice(&(-1i32).to_be_bytes()),
        Some(v) => {
            let len = i32::try_from(v.len()).map_err(|_| StoreError::Invalid {
                field: "recipients",
                message: format!(
                    "a recipient's field of {} bytes is more than PostgreSQL can take",
                    v.len()
                ),
            })?;
            buf.extend_from_slice(&len.to_be_bytes());
            buf.extend_from_slice(v);
        }
    }
    Ok(())
}

fn line_too_large(line: u64) -> StoreError {
    StoreError::Invalid {
        field: "line",
        message: format!("line {line} is beyond what the store can number"),
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
        start_binary: Ts::new(new.start_at).pg_micros(),
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
    imported_in(&mut conn, id, summary).await
}

include!("../shared/outreach.rs");
