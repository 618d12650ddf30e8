//! Outreaches as stored: the record of one upload, its recipients and its import report.

use async_trait::async_trait;
use herald_core::outreach::{OutreachStatus, Progress};
use jiff::Timestamp;
use serde::Serialize;
use uuid::Uuid;

use crate::Result;

/// An outreach about to be created by an import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOutreach {
    pub campaign_id: Uuid,
    pub file_name: String,
    pub start_at: Timestamp,
    pub end_at: Option<Timestamp>,
    pub default_region: Option<String>,
}

/// One accepted row, as the import hands it over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedRecipient {
    pub line: u64,
    /// E.164 or normalized email.
    pub address: String,
    /// The phone number as the file wrote it, when that differs from `address`.
    pub raw_address: Option<String>,
    pub timezone: Option<String>,
    /// A JSON object of the row's variables.
    pub variables_json: String,
    /// On the opt-out list: stored as `skipped: suppressed`, never messaged.
    pub suppressed: bool,
}

/// Why one row of an upload was not imported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImportErrorRecord {
    pub line: u64,
    pub column: Option<String>,
    pub value: String,
    pub reason: String,
}

/// What an import counted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImportSummary {
    /// Data rows in the file (blank rows not counted).
    pub rows: u64,
    /// Rows stored as recipients (suppressed ones included).
    pub accepted: u64,
    /// Rows refused; see the error report.
    pub invalid: u64,
    /// Rows whose address appeared on an earlier line.
    pub duplicates: u64,
    /// Accepted rows on the opt-out list: never messaged.
    pub suppressed: u64,
    /// `utf-8`, `utf-16le`, `utf-16be` or `windows-1252`.
    pub encoding: String,
}

/// One launch of a campaign to one uploaded list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Outreach {
    pub id: Uuid,
    pub campaign_id: Uuid,
    pub status: OutreachStatus,
    pub file_name: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub start_at: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub end_at: Option<Timestamp>,
    pub default_region: Option<String>,
    pub summary: ImportSummary,
    /// How far sending got: `{total, sent, delivered, failed, skipped, pending, replied}`.
    pub progress: Progress,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub finished_at: Option<Timestamp>,
}

/// An import in progress. Nothing of it is visible (to claims, lists or reads) until
/// [`OutreachImport::commit`] returns; a refused upload calls [`OutreachImport::abort`], and one
/// dropped without either stores nothing either.
///
/// On PostgreSQL an import is one transaction (its `COPY` blocks no other writer). On SQLite,
/// which has one writer at a time, it is written in short transactions of a few thousand rows
/// that other writers take turns with; its rows belong to no outreach until the commit inserts
/// it, and an abort, a drop (in a task of its own) or, after a crash, the next start of the store
/// deletes them (see `migrations/sqlite/0015_imports_in_progress.sql`).
#[async_trait]
pub trait OutreachImport: Send {
    /// The outreach's id (fixed when the import began).
    fn outreach_id(&self) -> Uuid;
    async fn recipients(&mut self, batch: &[ImportedRecipient]) -> Result<()>;
    async fn row_errors(&mut self, batch: &[ImportErrorRecord]) -> Result<()>;
    /// Records the summary and makes the outreach and its recipients visible at once. If it
    /// fails, what was written is deleted before it returns.
    async fn commit(self: Box<Self>, summary: &ImportSummary) -> Result<Outreach>;
    /// Gives the import up: what it wrote is deleted before this returns.
    async fn abort(self: Box<Self>) -> Result<()> {
        drop(self);
        Ok(())
    }
}

/// Appends `s` to a PostgreSQL COPY text-format buffer, escaped.
pub(crate) fn copy_text(buf: &mut Vec<u8>, s: &str) {
    for b in s.bytes() {
        match b {
            b'\\' => buf.extend_from_slice(b"\\\\"),
            b'\t' => buf.extend_from_slice(b"\\t"),
            b'\n' => buf.extend_from_slice(b"\\n"),
            b'\r' => buf.extend_from_slice(b"\\r"),
            _ => buf.push(b),
        }
    }
}

/// An outreach row as selected (instants as [`crate::Ts`], native on both backends).
pub(crate) struct OutreachRow {
    pub id: Uuid,
    pub campaign_id: Uuid,
    pub status: String,
    pub file_name: String,
    pub encoding: String,
    pub default_region: Option<String>,
    pub start_us: crate::Ts,
    pub end_us: Option<crate::Ts>,
    pub rows_total: i64,
    pub accepted: i64,
    pub invalid: i64,
    pub duplicates: i64,
    pub suppressed: i64,
    pub created_us: crate::Ts,
    pub updated_us: crate::Ts,
    pub finished_us: Option<crate::Ts>,
}

pub(crate) fn outreach_row<R>(r: &R) -> Result<OutreachRow>
where
    R: sqlx::Row,
    for<'a> Uuid: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<String>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<i64>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> crate::Ts: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<crate::Ts>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    &'static str: sqlx::ColumnIndex<R>,
{
    use crate::common::col;
    let e = "outreach";
    let id: Uuid = col(r, e, None, "id")?;
    let i = Some(id);
    Ok(OutreachRow {
        id,
        campaign_id: col(r, e, i, "campaign_id")?,
        status: col(r, e, i, "status")?,
        file_name: col(r, e, i, "file_name")?,
        encoding: col(r, e, i, "encoding")?,
        default_region: col(r, e, i, "default_region")?,
        start_us: col(r, e, i, "start_at")?,
        end_us: col(r, e, i, "end_at")?,
        rows_total: col(r, e, i, "rows_total")?,
        accepted: col(r, e, i, "accepted")?,
        invalid: col(r, e, i, "invalid")?,
        duplicates: col(r, e, i, "duplicates")?,
        suppressed: col(r, e, i, "suppressed")?,
        created_us: col(r, e, i, "created_at")?,
        updated_us: col(r, e, i, "updated_at")?,
        finished_us: col(r, e, i, "finished_at")?,
    })
}

impl OutreachRow {
    pub fn parse(self) -> Result<Outreach> {
        let id = self.id;
        let bad =
            |what: &str, e: String| crate::common::corrupt("outreach", id, format!("{what}: {e}"));
        let ts = |_what: &str, at: crate::Ts| -> crate::Result<Timestamp> { Ok(at.0) };
        let opt_ts = |_what: &str, at: Option<crate::Ts>| -> crate::Result<Option<Timestamp>> {
            Ok(at.map(|t| t.0))
        };
        let count = |what: &str, n: i64| u64::try_from(n).map_err(|e| bad(what, e.to_string()));
        Ok(Outreach {
            id,
            campaign_id: self.campaign_id,
            status: self.status.parse().map_err(
                |e: herald_core::outreach::UnknownOutreachStatus| bad("status", e.to_string()),
            )?,
            file_name: self.file_name,
            created_at: ts("created_at", self.created_us)?,
            start_at: ts("start_at", self.start_us)?,
            end_at: opt_ts("end_at", self.end_us)?,
            default_region: self.default_region,
            summary: ImportSummary {
                rows: count("rows_total", self.rows_total)?,
                accepted: count("accepted", self.accepted)?,
                invalid: count("invalid", self.invalid)?,
                duplicates: count("duplicates", self.duplicates)?,
                suppressed: count("suppressed", self.suppressed)?,
                encoding: self.encoding,
            },
            // Filled in by the backend from the recipients (see `Store::outreach_progress`).
            progress: Progress::default(),
            updated_at: ts("updated_at", self.updated_us)?,
            finished_at: opt_ts("finished_at", self.finished_us)?,
        })
    }
}

/// An `import_errors` row as selected: cursor, line, column, value, reason.
pub(crate) type ErrorRow = (i64, i64, Option<String>, String, String);

/// Import-report rows as the store hands them out, each with its paging cursor.
pub(crate) fn error_records(rows: Vec<ErrorRow>) -> Vec<(i64, ImportErrorRecord)> {
    rows.into_iter()
        .map(|(id, line, column, value, reason)| {
            let record = ImportErrorRecord {
                // Lines are written from u64 values; a negative one cannot be stored by Herald.
                line: u64::try_from(line).unwrap_or_default(),
                column,
                value,
                reason,
            };
            (id, record)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_text_escapes_what_copy_would_misread() {
        let mut buf = Vec::new();
        copy_text(&mut buf, "a\tb\\c\nd\re");
        assert_eq!(buf, b"a\\tb\\\\c\\nd\\re");
    }
}

/// An outreach's figures: its funnel, why recipients were skipped or failed, the sends per hour
/// and how soon customers answered ([`crate::Outreaches::outreach_report`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OutreachReport {
    /// Recipients → sent → delivered → replied, with failed, skipped, waiting and uncertain.
    pub progress: Progress,
    /// Recipients who opted out: those skipped because the provider said they had opted out
    /// (or because they opted out of the sender before their turn), and those who answered
    /// the outreach's message with STOP (or its email's unsubscribe link), each once. The
    /// opt-out rate is this over `progress.total`.
    pub opted_out: u64,
    /// Skipped recipients by reason (`opted_out`, `suppressed`, `expired`, …), most first.
    pub skipped: Vec<ReasonCount>,
    /// Failed and undelivered recipients by the provider's error code (`none` when it gave
    /// none), most first; at most [`REPORT_REASONS`].
    pub failures: Vec<ReasonCount>,
    /// Messages the provider accepted, per hour (UTC hour starts), in time order; the last
    /// [`REPORT_HOURS`] hours that had any.
    pub sent_per_hour: Vec<HourCount>,
    /// The median time from a message being sent to its recipient's answer, in seconds.
    pub median_reply_seconds: Option<u64>,
}

/// How many reasons a report lists at most.
pub const REPORT_REASONS: u32 = 20;
/// How many hours of sends a report lists at most (two weeks).
pub const REPORT_HOURS: u32 = 336;

/// A reason and how many recipients it applies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReasonCount {
    pub reason: String,
    pub count: u64,
}

/// Messages sent in the hour that starts at `hour`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HourCount {
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub hour: Timestamp,
    pub sent: u64,
}
