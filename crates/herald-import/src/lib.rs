//! Herald's recipient import: an uploaded CSV becomes validated [`Recipient`]s plus a per-row
//! error report ([`RowError`]), handed in batches to an [`ImportSink`] (the store implements it
//! over one transaction). No database I/O happens here.
//!
//! ```no_run
//! use herald_core::Channel;
//! use herald_import::{CollectSink, ImportOptions, import, no_suppressions};
//!
//! let file = std::fs::File::open("recipients.csv")?;
//! let mut opts = ImportOptions::new(Channel::Sms);
//! opts.default_region = Some("US".into());
//! opts.required_variables.insert("first_name".into());
//! let mut sink = CollectSink::default();
//! let summary = import(file, &opts, &no_suppressions, &mut sink, &|_bytes| {})?;
//! println!("{} accepted, {} invalid", summary.accepted, summary.invalid);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The file
//! - A header row is required. Column names match case- and space-insensitively
//!   ([`normalize_column`]: `First Name` == `first_name`).
//! - The contact column is `phone` (or `phone_number`, `mobile`, `number`) for SMS and voice,
//!   `email` (or `email_address`) for email. An optional `timezone` (or `time_zone`, `tz`)
//!   column holds IANA names. Every other named column is a template variable.
//! - The delimiter (`,`, `;` or tab) is whichever occurs most in the header line outside quotes.
//!   Quoted fields may hold delimiters, quotes (`""`) and line breaks; lines may end in LF, CRLF
//!   or CR. Empty lines are ignored; rows with no value at all (only delimiters or
//!   whitespace, like the `,,,` rows spreadsheets leave) are skipped and counted as `blank`.
//! - At most [`ImportOptions::max_columns`] columns (1,000 by default) and
//!   [`ImportOptions::max_row_bytes`] per row (64 KiB by default, quoted line breaks included):
//!   beyond either the file is refused, and the check costs one pass over the header.
//! - Text is UTF-8 (with or without BOM) or UTF-16 LE/BE with a BOM; anything else that is not
//!   valid UTF-8 is read as Windows-1252 and the summary says so.
//!
//! # Two passes
//! The input must be `Read + Seek` (the server spools uploads to a temporary file). A first,
//! fast pass validates UTF-8, looks for binary content, reads the header, counts rows and
//! checks the limits; any [`FileError`] comes from it, before the sink sees anything. The
//! second pass splits records on a reader thread, validates chunks of 1024 rows on
//! [`ImportOptions::workers`] threads, and feeds the sink from the calling thread in file order.
//!
//! # Rows
//! Phone numbers are normalized to E.164 (numbers without `+country` are read in
//! [`ImportOptions::default_region`]); emails are checked and their domain lower-cased; time
//! zones must be known IANA names; variables in [`ImportOptions::required_variables`] must be
//! non-empty. A row with the wrong number of fields is an error. The first row with a given
//! normalized address wins (emails compare ignoring letter case); later ones are reported as
//! `duplicate of line N`. Rows the
//! suppression hook matches are accepted with `suppressed: true`.
//!
//! # Speed and memory
//! Measured on the 2-core development machine while other people were compiling on it, 1,000,000
//! rows (88 MB; phone, first/last name, email, timezone, two more variables), release build,
//! `examples/bench_import.rs`:
//! - by email (no phone parsing): 2.2–2.4 s of CPU time, 285–420k rows/s wall, about 57 MB
//!   peak RSS;
//! - by phone: 62–80k rows/s, about 65 MB peak RSS, when `herald_core::E164::parse` still went
//!   through the `phonenumber` crate (its regexes sit behind one process-wide mutex). Herald now
//!   reads numbers with lock-free automata of its own (`herald-core/src/phone.rs`,
//!   `examples/phone_bench.rs` there); `docs/benchmarks.md` has the current figures.
//!
//! The largest allocation is the duplicate index (`dedup.rs`): 12 bytes a slot in a table at
//! most three quarters full, sized once from the row count of the first pass (16 MB at 1,000,000
//! rows). A file longer than [`ImportOptions::dedup_memory_rows`] (1,000,000 by default) has its
//! repeats found on disk instead (`spill.rs`), a few MB at a time. Everything else in flight is
//! bounded by the chunk, batch and channel sizes, whatever the file's length.

mod dedup;
mod error;
mod header;
mod model;
mod pipeline;
mod report;
mod row;
mod scan;
mod spill;
mod split;
mod text;

pub use error::{FileError, ImportError};
pub use header::normalize_column;
pub use model::{
    CollectSink, Delimiter, ImportOptions, ImportSink, ImportSummary, Recipient, RowError,
    TextEncoding, no_suppressions,
};
pub use pipeline::import;
pub use report::{neutralize_cell, write_error_report};
