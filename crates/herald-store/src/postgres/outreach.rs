//! Outreach storage on PostgreSQL: an import is one transaction; recipients go in with `COPY`,
//! one for every run of batches that no batch of import errors interrupts.
//!
//! Recipients are sent in `COPY`'s binary format: the server then neither splits escaped text
//! fields nor runs `uuid_in`, `int8in` and `timestamptz_in` on every row, which was 31% of its
//! time in a 1,000,000-row import (docs/benchmarks.md). Text columns go as their UTF-8 bytes,
//! which the server still checks. Import errors, few and small, stay in the text format.

use super::PgStore;
use crate::outreach::{ImportedRecipient, copy_text};
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The `COPY` of recipients, in `COPY`'s binary format.
const RECIPIENTS_COPY: &str = "COPY recipients (outreach_id, line, address, raw_address, \
     timezone, variables, state, skip_reason, due_at) FROM STDIN (FORMAT binary)";

/// Batches encoded and waiting for the writing task: each is one batch of the import (4,096
/// rows by default), so this bounds what is held beyond the batch being sent.
const PARTS_IN_FLIGHT: usize = 1;

/// A `COPY` of recipients ends, and the next batch begins another, past this many bytes: the
/// server answers a refused row only when its `COPY` ends, so an import learns of it within
/// about 64 MiB of the list (some 250,000 rows), not only at its end.
const COPY_BYTES: usize = 64 << 20;

/// One batch for the writing task, already in `COPY`'s format.
enum Part {
    /// Binary tuples of recipients, without the header and the trailer.
    Recipients(Vec<u8>),
    /// Text rows of import errors.
    Errors(Vec<u8>),
}

/// An import in progress: the batches are encoded here and written by a task of their own, which
/// holds the transaction and keeps one `COPY` of recipients open across batches. One `COPY` per
/// batch cost the server 15% more than one for the whole list (docs/benchmarks.md), and the next
/// batch is encoded while the last one is sent.
pub(crate) struct PgImport {
    pool: PgPool,
    id: Uuid,
    /// `start_at`, the recipients' first due time, as binary COPY writes a `timestamptz`.
    start_binary: i64,
    /// Buffers the writing task has sent, back for the next batches: two or three buffers go
    /// round, rather than one allocated on this thread and freed on the task's for every batch
    /// (which grew the import's peak memory by 5–9 MB, docs/benchmarks.md).
    spare: mpsc::Receiver<Vec<u8>>,
    /// Closed (None) when the import ends, which ends the writing task.
    parts: Option<mpsc::Sender<Part>>,
    /// The writing task; it hands the transaction back once every part is written.
    writer: Option<JoinHandle<Result<Transaction<'static, Postgres>>>>,
}

impl PgImport {
    /// Starts the writing task on the import's transaction.
    fn start(
        tx: Transaction<'static, Postgres>,
        pool: PgPool,
        id: Uuid,
        start_binary: i64,
    ) -> Self {
        Self::start_with(tx, pool, id, start_binary, COPY_BYTES)
    }

    fn start_with(
        tx: Transaction<'static, Postgres>,
        pool: PgPool,
        id: Uuid,
        start_binary: i64,
        copy_bytes: usize,
    ) -> Self {
        let (parts, received) = mpsc::channel(PARTS_IN_FLIGHT);
        let (done, spare) = mpsc::channel(PARTS_IN_FLIGHT + 1);
        PgImport {
            pool,
            id,
            start_binary,
            spare,
            parts: Some(parts),
            writer: Some(tokio::spawn(write_parts(tx, received, done, copy_bytes))),
        }
    }

    /// Hands an encoded batch to the writing task, or answers the error that stopped it.
    async fn send(&mut self, part: Part) -> Result<()> {
        let sent = match &self.parts {
            Some(parts) => parts.send(part).await.is_ok(),
            None => false,
        };
        if sent {
            return Ok(());
        }
        // The task ended early: only an error ends it while batches still come.
        match self.written().await {
            Ok(_) => Err(StoreError::Database(sqlx::Error::WorkerCrashed)),
            Err(e) => Err(e),
        }
    }

    /// Ends the writing task once it has written everything sent, and takes the transaction back.
    async fn written(&mut self) -> Result<Transaction<'static, Postgres>> {
        self.parts = None;
        match self.writer.take() {
            Some(task) => task
                .await
                .map_err(|_| StoreError::Database(sqlx::Error::WorkerCrashed))?,
            None => Err(StoreError::Database(sqlx::Error::WorkerCrashed)),
        }
    }
}

/// The writing task: every part in order, the recipients of consecutive parts in one `COPY` (of
/// about `copy_bytes` at most: [`COPY_BYTES`]).
/// Ends, handing the transaction back, when the channel closes; an error ends it at once, and the
/// dropped transaction rolls back.
async fn write_parts(
    mut tx: Transaction<'static, Postgres>,
    mut parts: mpsc::Receiver<Part>,
    done: mpsc::Sender<Vec<u8>>,
    copy_bytes: usize,
) -> Result<Transaction<'static, Postgres>> {
    let mut next = parts.recv().await;
    loop {
        match next.take() {
            None => return Ok(tx),
            Some(Part::Errors(rows)) => {
                copy_errors(&mut tx, &rows).await?;
                next = parts.recv().await;
            }
            Some(Part::Recipients(first)) => {
                let mut copy = tx.copy_in_raw(RECIPIENTS_COPY).await?;
                copy.send(BINARY_HEADER).await?;
                let mut tuples = first;
                let mut sent = 0;
                loop {
                    sent += tuples.len();
                    copy.send(tuples.as_slice()).await?;
                    // Kept only while the encoder has fewer than it can use.
                    let _ = done.try_send(tuples);
                    next = parts.recv().await;
                    if sent >= copy_bytes {
                        break;
                    }
                    match next.take() {
                        Some(Part::Recipients(more)) => tuples = more,
                        other => {
                            next = other;
                            break;
                        }
                    }
                }
                copy.send(&BINARY_TRAILER[..]).await?;
                copy.finish().await?;
            }
        }
    }
}

/// One batch of import errors, in `COPY`'s text format.
async fn copy_errors(conn: &mut PgConnection, rows: &[u8]) -> Result<()> {
    let mut copy = conn
        .copy_in_raw(
            "COPY import_errors (outreach_id, line, column_name, value, reason) FROM STDIN",
        )
        .await?;
    copy.send(rows).await?;
    copy.finish().await?;
    Ok(())
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
        let mut buf = self.spare.try_recv().unwrap_or_default();
        buf.clear();
        for r in batch {
            // Nine fields, in the order of the COPY's column list.
            buf.extend_from_slice(&9i16.to_be_bytes());
            field(&mut buf, Some(self.id.as_bytes()))?;
            let line = i64::try_from(r.line).map_err(|_| line_too_large(r.line))?;
            field(&mut buf, Some(&line.to_be_bytes()))?;
            field(&mut buf, Some(r.address.as_bytes()))?;
            field(&mut buf, r.raw_address.as_deref().map(str::as_bytes))?;
            field(&mut buf, r.timezone.as_deref().map(str::as_bytes))?;
            field(&mut buf, Some(r.variables_json.as_bytes()))?;
            let (state, skip_reason) = match r.suppressed {
                true => ("skipped", Some("suppressed")),
                false => ("pending", None),
            };
            field(&mut buf, Some(state.as_bytes()))?;
            field(&mut buf, skip_reason.map(str::as_bytes))?;
            field(&mut buf, Some(&self.start_binary.to_be_bytes()))?;
        }
        self.send(Part::Recipients(buf)).await
    }

    async fn row_errors(&mut self, batch: &[ImportErrorRecord]) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let id = self.id.to_string();
        let mut buf = Vec::new();
        for e in batch {
            buf.extend_from_slice(id.as_bytes());
            buf.push(b'\t');
            buf.extend_from_slice(e.line.to_string().as_bytes());
            buf.push(b'\t');
            match &e.column {
                Some(c) => copy_text(&mut buf, c),
                None => buf.extend_from_slice(b"\\N"),
            }
            buf.push(b'\t');
            copy_text(&mut buf, &e.value);
            buf.push(b'\t');
            copy_text(&mut buf, &e.reason);
            buf.push(b'\n');
        }
        self.send(Part::Errors(buf)).await
    }

    async fn commit(mut self: Box<Self>, summary: &ImportSummary) -> Result<Outreach> {
        let tx = self.written().await?;
        finish_import(tx, self.pool.clone(), self.id, summary).await
    }

    async fn abort(mut self: Box<Self>) -> Result<()> {
        // A writer that failed dropped the transaction, which rolled it back.
        if let Ok(tx) = self.written().await {
            tx.rollback().await?;
        }
        Ok(())
    }
}

/// The binary `COPY` header: its signature, no flags, no header extension.
const BINARY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// The binary `COPY` trailer: a tuple of -1 fields.
const BINARY_TRAILER: [u8; 2] = (-1i16).to_be_bytes();

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
    Ok(Box::new(PgImport::start(
        tx,
        store.pool.clone(),
        id,
        Ts::new(new.start_at).pg_micros(),
    )))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(from_line: u64, refused: bool) -> Vec<ImportedRecipient> {
        (from_line..from_line + 100)
            .map(|line| ImportedRecipient {
                line,
                address: format!("+1415555{line:04}"),
                raw_address: None,
                // PostgreSQL's text cannot hold a NUL byte.
                timezone: (refused && line == from_line + 50).then(|| "Europe/Ber\u{0}lin".into()),
                variables_json: "{}".into(),
                suppressed: false,
            })
            .collect()
    }

    /// A refused row is learnt when its `COPY` ends: past `copy_bytes`, from a later batch of
    /// the same import; within one `COPY`, only at the commit. Either way the server's own
    /// reason comes back.
    #[tokio::test]
    async fn a_refused_row_is_learnt_when_its_copy_ends() {
        let Some(test) = crate::testing::postgres().await else {
            return;
        };
        let store = PgStore::connect(&test.url).await.expect("connect");
        for (copy_bytes, learnt_from_a_batch) in [(1, true), (COPY_BYTES, false)] {
            let tx = store.pool.begin().await.expect("begin");
            let mut import =
                PgImport::start_with(tx, store.pool.clone(), Uuid::now_v7(), 0, copy_bytes);
            let mut failure = None;
            for n in 0..5u64 {
                if let Err(e) = import.recipients(&batch(2 + n * 100, n == 1)).await {
                    failure = Some(e);
                    break;
                }
            }
            assert_eq!(
                failure.is_some(),
                learnt_from_a_batch,
                "copy_bytes {copy_bytes}"
            );
            let failure = match failure {
                Some(e) => e,
                None => match import.written().await {
                    Ok(_) => panic!("the refused row was written"),
                    Err(e) => e,
                },
            };
            assert!(failure.to_string().contains("0x00"), "{failure}");
        }
        // Nothing of either import stayed.
        let (rows,): (i64,) = sqlx::query_as("SELECT count(*) FROM recipients")
            .fetch_one(&store.pool)
            .await
            .expect("count");
        assert_eq!(rows, 0);
    }
}
