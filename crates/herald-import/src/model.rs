//! The plain data an import takes and gives: options, recipients, row errors, the summary, and
//! the sink that receives them.

use herald_core::{Address, Channel};
use serde::Serialize;
use std::collections::BTreeSet;

/// How to read one uploaded recipient list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportOptions {
    /// The campaign's channel: `sms`/`voice` need a phone column, `email` an email column.
    /// `chat` campaigns have no recipient lists.
    pub channel: Channel,
    /// Region (ISO 3166 alpha-2, e.g. `US`) that numbers written without `+country` are read in.
    pub default_region: Option<String>,
    /// Variables the campaign's answer uses (as written in `{{name}}`; normalized like column
    /// names). Each must be a column, and non-empty in every accepted row.
    pub required_variables: BTreeSet<String>,
    /// Largest upload accepted, in bytes (default 1 GiB).
    pub max_bytes: u64,
    /// Most data rows accepted (default 5,000,000; blank lines do not count).
    pub max_rows: u64,
    /// Most columns the header row may have (default 1,000). Every column but the contact and
    /// time zone ones is stored as a variable of every recipient.
    pub max_columns: usize,
    /// Most bytes one row (a record, quoted line breaks included) may span (default 64 KiB).
    pub max_row_bytes: usize,
    /// Recipients and row errors reach the sink in batches of this many (default 4,096).
    pub batch_size: usize,
    /// Validation threads; 0 means one per available core (the default).
    pub workers: usize,
    /// Files of up to this many rows find repeated addresses in memory, 16 bytes a row
    /// (default 1,000,000); a longer file's are found on disk, in unnamed temporary files in
    /// `$TMPDIR` (16 bytes a valid row), by one more pass over the file: about an eighth more
    /// time, for memory that stays the same however long the file is (`docs/benchmarks.md`).
    pub dedup_memory_rows: u64,
}

impl ImportOptions {
    pub const DEFAULT_MAX_BYTES: u64 = 1 << 30;
    pub const DEFAULT_MAX_ROWS: u64 = 5_000_000;
    pub const DEFAULT_BATCH_SIZE: usize = 4_096;
    pub const DEFAULT_MAX_COLUMNS: usize = 1_000;
    pub const DEFAULT_MAX_ROW_BYTES: usize = 64 * 1024;
    pub const DEFAULT_DEDUP_MEMORY_ROWS: u64 = 1_000_000;

    /// Options with the defaults for everything but the channel.
    pub fn new(channel: Channel) -> Self {
        Self {
            channel,
            default_region: None,
            required_variables: BTreeSet::new(),
            max_bytes: Self::DEFAULT_MAX_BYTES,
            max_rows: Self::DEFAULT_MAX_ROWS,
            max_columns: Self::DEFAULT_MAX_COLUMNS,
            max_row_bytes: Self::DEFAULT_MAX_ROW_BYTES,
            batch_size: Self::DEFAULT_BATCH_SIZE,
            workers: 0,
            dedup_memory_rows: Self::DEFAULT_DEDUP_MEMORY_ROWS,
        }
    }
}

/// One accepted row, ready to store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recipient {
    /// 1-based physical line where the row starts (the header is line 1).
    pub line: u64,
    /// Normalized contact address: E.164 phone number or email with a lower-cased domain.
    pub address: Address,
    /// A phone number as written in the file (trimmed, at most 64 characters) when that differs
    /// from `address`; empty when the file wrote `address`'s own digits in another layout
    /// (`(415) 555-2671` for `+14155552671` in region US); `None` for emails and for numbers
    /// written exactly in E.164.
    pub raw_contact: Option<String>,
    /// Canonical IANA time zone name from the `timezone` column, when the row has one.
    pub timezone: Option<String>,
    /// The row's template variables as a JSON object (`{"first_name":"Jane",...}`), keys being
    /// the normalized column names in file order, values trimmed. Ready to store as is.
    pub variables_json: String,
    /// The suppression hook matched: store the recipient, but never message it.
    pub suppressed: bool,
}

/// Why one row (or one cell of it) was not imported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowError {
    /// 1-based physical line where the row starts (the header is line 1).
    pub line: u64,
    /// The column as spelled in the file's header; `None` for problems with the whole row.
    pub column: Option<String>,
    /// The offending value as written (trimmed; cut to 200 characters).
    pub value: String,
    /// What is wrong, in words a person can act on.
    pub reason: String,
}

/// The text encoding the file was read in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum TextEncoding {
    #[serde(rename = "utf-8")]
    Utf8,
    #[serde(rename = "utf-16le")]
    Utf16Le,
    #[serde(rename = "utf-16be")]
    Utf16Be,
    /// Text without a byte-order mark that is not valid UTF-8 is read as Windows-1252.
    #[serde(rename = "windows-1252")]
    Windows1252,
}

impl TextEncoding {
    pub fn as_str(self) -> &'static str {
        match self {
            TextEncoding::Utf8 => "utf-8",
            TextEncoding::Utf16Le => "utf-16le",
            TextEncoding::Utf16Be => "utf-16be",
            TextEncoding::Windows1252 => "windows-1252",
        }
    }
}

/// The field delimiter, detected from the header line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Delimiter {
    #[serde(rename = ",")]
    Comma,
    #[serde(rename = ";")]
    Semicolon,
    #[serde(rename = "\t")]
    Tab,
}

impl Delimiter {
    pub fn as_byte(self) -> u8 {
        match self {
            Delimiter::Comma => b',',
            Delimiter::Semicolon => b';',
            Delimiter::Tab => b'\t',
        }
    }
}

/// What an import did. `rows == accepted + invalid + duplicates`; `suppressed` counts accepted
/// rows the suppression hook matched; `blank` counts skipped rows with no value at all, only
/// delimiters or whitespace (like the `,,,` rows spreadsheets leave), which are not in `rows`.
/// Empty lines are ignored altogether.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportSummary {
    pub rows: u64,
    pub accepted: u64,
    pub invalid: u64,
    pub duplicates: u64,
    pub suppressed: u64,
    pub blank: u64,
    pub encoding: TextEncoding,
    pub delimiter: Delimiter,
    /// The contact column as spelled in the header.
    pub contact_column: String,
    /// The time zone column as spelled in the header, if there is one.
    pub timezone_column: Option<String>,
    /// Template variable names (normalized column names) in file order: the keys of every
    /// recipient's `variables_json`. Kept once per import, not per recipient.
    pub variables: Vec<String>,
}

/// Where an import puts its results: the store implements this over one transaction.
///
/// Calls come from the thread that called [`crate::import`], in file order: `recipients` and
/// `row_errors` batches each ascend by line. `finish` is called exactly once, after the last
/// batch, and only when the import succeeds.
///
/// Every whole-file problem ([`crate::FileError`]) is found before the first call, so a refused
/// file calls nothing here. Yet an import can still fail after batches were handed over (a read
/// error on the spooled upload, a sink error, or an upload that changed between the validation
/// pass and the import pass): then `import` returns `Err` without calling `finish`, and the sink
/// must discard what it received (roll its transaction back).
pub trait ImportSink {
    type Error: std::error::Error + Send + Sync + 'static;

    /// Accepted recipients (suppressed ones included, flagged), ascending by line.
    fn recipients(&mut self, batch: Vec<Recipient>) -> Result<(), Self::Error>;

    /// Row errors, ascending by line (a row may have several).
    fn row_errors(&mut self, batch: Vec<RowError>) -> Result<(), Self::Error>;

    /// The import succeeded: commit.
    fn finish(&mut self, summary: &ImportSummary) -> Result<(), Self::Error> {
        let _ = summary;
        Ok(())
    }
}

/// A sink that keeps everything in memory: for tests, previews and small lists.
#[derive(Debug, Default, Clone)]
pub struct CollectSink {
    pub recipients: Vec<Recipient>,
    pub row_errors: Vec<RowError>,
    /// Number of sink calls of any kind (a refused file leaves this at 0).
    pub calls: usize,
    pub finished: Option<ImportSummary>,
}

impl ImportSink for CollectSink {
    type Error = std::convert::Infallible;

    fn recipients(&mut self, batch: Vec<Recipient>) -> Result<(), Self::Error> {
        self.calls += 1;
        self.recipients.extend(batch);
        Ok(())
    }

    fn row_errors(&mut self, batch: Vec<RowError>) -> Result<(), Self::Error> {
        self.calls += 1;
        self.row_errors.extend(batch);
        Ok(())
    }

    fn finish(&mut self, summary: &ImportSummary) -> Result<(), Self::Error> {
        self.calls += 1;
        self.finished = Some(summary.clone());
        Ok(())
    }
}

/// A suppression hook that suppresses nobody.
pub fn no_suppressions(_: &Address) -> bool {
    false
}
