//! The import pass: a reader thread splits records into chunks, worker threads validate the
//! chunks, and the calling thread takes the results back in file order, drops duplicates and
//! feeds the sink. Channels are bounded, so what is in flight stays the same however long the
//! file is. Up to [`ImportOptions::dedup_memory_rows`] rows, repeats are found in a table of the
//! addresses seen (`dedup::Seen`, 12 bytes a slot); a longer file's are found on disk by a first
//! pass of the same threads (`spill.rs`), so memory does not grow with the file.

use crate::dedup::{DedupKey, Seen};
use crate::error::{FileError, ImportError};
use crate::header::Plan;
use crate::model::{ImportOptions, ImportSink, ImportSummary, Recipient, RowError};
use crate::row::{Outcome, Validator};
use crate::scan::{Fail, Scan, scan};
use crate::spill::{KeySpill, Repeats};
use crate::split::{ByteBuf, Splitter, is_blank};
use crate::text::{Counted, TextSource};
use crossbeam_channel::{Receiver, Sender, bounded};
use herald_core::{Address, Channel};
use std::io::{Read, Seek, SeekFrom};
use std::sync::atomic::{AtomicBool, Ordering};

/// Rows per chunk handed to a worker.
const CHUNK_ROWS: usize = 1024;
/// A chunk is also handed over once its field bytes pass this size.
const CHUNK_BYTES: usize = 1 << 20;
/// More validation threads than this buy nothing.
const MAX_WORKERS: usize = 64;
/// A batch of recipients also goes to the sink once their variables pass this size, so that
/// wide rows cannot make one batch (and the sink's queue of them) arbitrarily large.
const BATCH_BYTES: usize = 2 << 20;

/// Reads a CSV recipient list, validates every row, and hands accepted recipients and row
/// errors to `sink` in batches, in file order.
///
/// `input` is read twice: a fast validation pass settles every whole-file question (size,
/// encoding, binary content, header, row count) before anything reaches the sink, then the
/// import pass validates rows on [`ImportOptions::workers`] threads. A file of more than
/// [`ImportOptions::dedup_memory_rows`] rows is read once more between the two, on the same
/// threads, to find its repeated addresses on disk. `suppressions` is asked about every valid
/// row (from the worker threads); `progress` is told the bytes read so far during the import
/// pass (from the calling thread, as is every sink call), or, when repeats were found on disk,
/// half of the bytes of each of the two last passes, so that it still ends at the file's size.
///
/// On `Err`, `sink.finish` was not called; see [`ImportSink`] for when batches may already have
/// been handed over.
pub fn import<R, S>(
    mut input: R,
    opts: &ImportOptions,
    suppressions: &(dyn Fn(&Address) -> bool + Sync),
    sink: &mut S,
    progress: &dyn Fn(u64),
) -> Result<ImportSummary, ImportError<S::Error>>
where
    R: Read + Seek + Send,
    S: ImportSink,
{
    if opts.channel == Channel::Chat {
        return Err(ImportError::Options(
            "chat campaigns greet visitors on a web page; they have no recipient lists".into(),
        ));
    }
    if opts.batch_size == 0 {
        return Err(ImportError::Options("batch_size must be at least 1".into()));
    }
    let region = match &opts.default_region {
        Some(code) => {
            herald_core::address::parse_region(code)
                .map_err(|e| ImportError::Options(e.to_string()))?;
            Some(code.trim().to_ascii_uppercase())
        }
        None => None,
    };

    let scan = scan(&mut input, opts).map_err(fail_to_import)?;
    let plan = Plan::new(&scan.header, opts)?;
    if scan.rows == 0 {
        return Err(FileError::NoRows.into());
    }
    input.seek(SeekFrom::Start(0))?;

    let validator = Validator::new(&plan, scan.decode, region.as_deref(), suppressions);
    let workers = match opts.workers {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    }
    .min(MAX_WORKERS);

    // A long file's repeats are found on disk first (`spill.rs`); progress then counts the
    // first pass as the first half of the file's bytes.
    let (dedup, progress_base) = if scan.rows > opts.dedup_memory_rows {
        let mut spill = KeySpill::new(scan.rows).map_err(spill_failed)?;
        let mut spill_error = None;
        let mut total = 0;
        let lost = run_pass(
            &mut input,
            &scan,
            opts,
            &validator,
            workers,
            Pass::Keys,
            &mut |done| {
                for &(line, key) in &done.keys {
                    if let Err(e) = spill.push(key, line) {
                        spill_error = Some(e);
                        return false;
                    }
                }
                total = done.bytes_read;
                progress(total / 2);
                true
            },
        )
        .map_err(fail_to_import)?;
        if let Some(e) = spill_error {
            return Err(spill_failed(e));
        }
        if lost {
            return Err(lost_worker());
        }
        input.seek(SeekFrom::Start(0))?;
        (
            Dedup::Disk(spill.resolve().map_err(spill_failed)?),
            Some(total / 2),
        )
    } else {
        let rows = usize::try_from(scan.rows).unwrap_or(usize::MAX);
        (Dedup::Memory(Seen::with_rows(rows)), None)
    };

    let mut consumer = Consumer::new(&plan, &scan, opts, dedup, sink);
    let pass = run_pass(
        input,
        &scan,
        opts,
        &validator,
        workers,
        Pass::Import,
        &mut |done| {
            if consumer.take(done).is_err() {
                return false;
            }
            match progress_base {
                // Rounded up, so that the last call is the file's size.
                Some(base) => progress(base + consumer.bytes_read.div_ceil(2)),
                None => progress(consumer.bytes_read),
            }
            true
        },
    );

    if let Some(e) = consumer.sink_error.take() {
        return Err(ImportError::Sink(e));
    }
    if let Some(e) = consumer.io_error.take() {
        return Err(match e.kind() {
            // The file changed under the import (`spill::CHANGED`).
            std::io::ErrorKind::InvalidData => ImportError::Io(e),
            _ => spill_failed(e),
        });
    }
    if pass.map_err(fail_to_import)? {
        return Err(lost_worker());
    }
    consumer.finish().map_err(ImportError::Sink)
}

/// A temporary file of repeats could not be made, written or read (a full or read-only
/// `$TMPDIR`, most likely): said as such, not as a problem with the upload.
fn spill_failed<E: std::error::Error + 'static>(e: std::io::Error) -> ImportError<E> {
    ImportError::Io(std::io::Error::new(
        e.kind(),
        format!(
            "finding repeated addresses in temporary files in {}: {e}",
            std::env::temp_dir().display()
        ),
    ))
}

fn lost_worker<E: std::error::Error + 'static>() -> ImportError<E> {
    ImportError::Io(std::io::Error::other(
        "a validation thread stopped before answering",
    ))
}

/// What the workers make of the rows.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pass {
    /// Only each valid row's key, for finding repeats on disk.
    Keys,
    /// Every row's outcome.
    Import,
}

/// One threaded pass over `input`: the reader thread splits it into chunks, the workers validate
/// them, and `take` gets each chunk's results on the calling thread, in file order, until it
/// returns false. True if a worker went away without answering (it panicked).
fn run_pass<R: Read + Send>(
    input: R,
    scan: &Scan,
    opts: &ImportOptions,
    validator: &Validator<'_>,
    workers: usize,
    pass: Pass,
    take: &mut dyn FnMut(Done) -> bool,
) -> Result<bool, Fail> {
    let cancel = AtomicBool::new(false);
    let mut lost = false;
    std::thread::scope(|s| -> Result<(), Fail> {
        let (work_tx, work_rx) = bounded::<Job>(workers);
        let (order_tx, order_rx) = bounded::<Receiver<Done>>(workers + 2);
        let cancel = &cancel;
        let mut started = 0;
        for i in 0..workers {
            let work_rx = work_rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("herald-import-{i}"))
                .spawn_scoped(s, move || {
                    for job in work_rx.iter() {
                        if cancel.load(Ordering::Relaxed) {
                            continue;
                        }
                        let done = validate_chunk(validator, job.chunk, pass);
                        let _ = job.reply.send(done);
                    }
                });
            match spawned {
                Ok(_) => started += 1,
                Err(e) if started == 0 => return Err(Fail::Io(e)),
                Err(_) => break, // go on with the threads we have
            }
        }
        drop(work_rx);
        let reader = std::thread::Builder::new()
            .name("herald-import-read".into())
            .spawn_scoped(s, move || {
                read_pass(input, scan, opts, cancel, &work_tx, &order_tx)
            })
            // A reader that never started dropped its senders: the workers end by themselves.
            .map_err(Fail::Io)?;
        for reply in order_rx.iter() {
            let Ok(done) = reply.recv() else {
                // A worker went away without answering: it panicked, and the scope will say so.
                lost = true;
                break;
            };
            if !take(done) {
                cancel.store(true, Ordering::Relaxed);
                break;
            }
        }
        if lost {
            cancel.store(true, Ordering::Relaxed);
        }
        drop(order_rx);
        match reader.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })?;
    Ok(lost)
}

fn fail_to_import<E: std::error::Error + 'static>(fail: Fail) -> ImportError<E> {
    match fail {
        Fail::File(e) => ImportError::File(e),
        Fail::Io(e) => ImportError::Io(e),
    }
}

struct Rec {
    line: u64,
    /// Offset of the record's first byte in `Chunk::data`.
    start: u32,
    /// Index of its first field end in `Chunk::ends`.
    first: u32,
    fields: u32,
}

/// Records on their way to a worker, stored flat: one byte buffer, one list of field ends.
struct Chunk {
    data: ByteBuf,
    ends: Vec<u32>,
    records: Vec<Rec>,
    blank: u64,
    bytes_read: u64,
}

impl Default for Chunk {
    fn default() -> Self {
        Chunk {
            data: ByteBuf::with_capacity(128 * 1024),
            ends: Vec::with_capacity(CHUNK_ROWS * 8),
            records: Vec::with_capacity(CHUNK_ROWS),
            blank: 0,
            bytes_read: 0,
        }
    }
}

struct Job {
    chunk: Chunk,
    reply: Sender<Done>,
}

struct Done {
    outcomes: Vec<Outcome>,
    /// The valid rows' lines and keys, in a [`Pass::Keys`].
    keys: Vec<(u64, DedupKey)>,
    blank: u64,
    bytes_read: u64,
}

fn validate_chunk(validator: &Validator<'_>, chunk: Chunk, pass: Pass) -> Done {
    let data = chunk.data.as_slice();
    let mut outcomes = Vec::new();
    let mut keys = Vec::new();
    match pass {
        Pass::Import => outcomes.reserve(chunk.records.len()),
        Pass::Keys => keys.reserve(chunk.records.len()),
    }
    let mut fields: Vec<&[u8]> = Vec::new();
    for rec in &chunk.records {
        fields.clear();
        let first = rec.first as usize;
        let ends = chunk
            .ends
            .get(first..first + rec.fields as usize)
            .unwrap_or_default();
        let mut start = rec.start as usize;
        for &end in ends {
            fields.push(data.get(start..end as usize).unwrap_or_default());
            start = end as usize;
        }
        match pass {
            Pass::Import => outcomes.push(validator.row(rec.line, &fields)),
            Pass::Keys => {
                if let Some(key) = validator.key(rec.line, &fields) {
                    keys.push((rec.line, key));
                }
            }
        }
    }
    Done {
        outcomes,
        keys,
        blank: chunk.blank,
        bytes_read: chunk.bytes_read,
    }
}

/// The reader thread: splits the file into chunks of records and hands each to the workers,
/// and its reply slot to the calling thread, in file order.
fn read_pass<R: Read>(
    input: R,
    scan: &Scan,
    opts: &ImportOptions,
    cancel: &AtomicBool,
    work_tx: &Sender<Job>,
    order_tx: &Sender<Receiver<Done>>,
) -> Result<(), Fail> {
    let max_bytes = opts.max_bytes;
    let counted = Counted::new(input, max_bytes);
    let counter = counted.counter();
    let text = TextSource::open(counted, scan.bom).map_err(|e| Fail::from_io(e, max_bytes))?;
    let mut splitter = Splitter::new(text, scan.delimiter.as_byte(), opts.max_row_bytes);
    let mut chunk = Chunk::default();
    let mut header_seen = false;
    let mut rows = 0u64;
    // Hands a chunk over; false when the calling thread has stopped listening.
    let send = |mut chunk: Chunk| -> bool {
        chunk.bytes_read = counter.load(Ordering::Relaxed);
        let (reply, slot) = bounded(1);
        work_tx.send(Job { chunk, reply }).is_ok() && order_tx.send(slot).is_ok()
    };
    loop {
        let start = chunk.data.len();
        let Some(line) = splitter
            .next_record(&mut chunk.data)
            .map_err(|e| Fail::from_split(e, opts))?
        else {
            break;
        };
        let bytes = chunk.data.as_slice().get(start..).unwrap_or_default();
        if is_blank(bytes) {
            chunk.data.truncate(start);
            if header_seen {
                chunk.blank += 1;
            }
            continue;
        }
        if !header_seen {
            header_seen = true;
            chunk.data.truncate(start);
            continue;
        }
        rows += 1;
        if rows > opts.max_rows {
            // Only if the file changed since the validation pass, which counted the rows.
            return Err(FileError::TooManyRows {
                limit: opts.max_rows,
            }
            .into());
        }
        let first = chunk.ends.len() as u32;
        let ends = splitter.ends();
        chunk.ends.extend(ends.iter().map(|&e| (start + e) as u32));
        chunk.records.push(Rec {
            line,
            start: start as u32,
            first,
            fields: ends.len() as u32,
        });
        let full = chunk.records.len() >= CHUNK_ROWS || chunk.data.len() >= CHUNK_BYTES;
        if full && (cancel.load(Ordering::Relaxed) || !send(std::mem::take(&mut chunk))) {
            return Ok(());
        }
    }
    if !chunk.records.is_empty() || chunk.blank > 0 {
        send(chunk);
    }
    Ok(())
}

/// The calling thread's side: dedupe, count, batch, and feed the sink.
struct Consumer<'a, S: ImportSink> {
    sink: &'a mut S,
    summary: ImportSummary,
    batch_size: usize,
    dedup: Dedup,
    recipients: Vec<Recipient>,
    /// Bytes of the variables of `recipients`.
    recipient_bytes: usize,
    errors: Vec<RowError>,
    contact_column: String,
    bytes_read: u64,
    sink_error: Option<S::Error>,
    /// Reading the repeats found on disk failed.
    io_error: Option<std::io::Error>,
}

/// Where the import pass learns that a row repeats an earlier one.
enum Dedup {
    /// A table of the addresses accepted so far, filled as the rows come.
    Memory(Seen),
    /// Every repeat, found by a first pass (`spill.rs`).
    Disk(Repeats),
}

impl<'a, S: ImportSink> Consumer<'a, S> {
    fn new(plan: &Plan, scan: &Scan, opts: &ImportOptions, dedup: Dedup, sink: &'a mut S) -> Self {
        let contact_column = plan.column_name(plan.contact);
        let batch_size = opts.batch_size;
        Consumer {
            sink,
            summary: ImportSummary {
                rows: 0,
                accepted: 0,
                invalid: 0,
                duplicates: 0,
                suppressed: 0,
                blank: 0,
                encoding: scan.encoding,
                delimiter: scan.delimiter,
                contact_column: contact_column.clone(),
                timezone_column: plan.timezone.map(|i| plan.column_name(i)),
                variables: plan.variables.iter().map(|(_, n)| n.clone()).collect(),
            },
            batch_size,
            dedup,
            recipients: Vec::with_capacity(batch_size.min(CHUNK_ROWS * 4)),
            recipient_bytes: 0,
            errors: Vec::new(),
            contact_column,
            bytes_read: 0,
            sink_error: None,
            io_error: None,
        }
    }

    fn take(&mut self, done: Done) -> Result<(), ()> {
        self.summary.blank += done.blank;
        self.bytes_read = done.bytes_read;
        for outcome in done.outcomes {
            self.summary.rows += 1;
            match outcome {
                Outcome::Invalid(errors) => {
                    self.summary.invalid += 1;
                    for e in errors {
                        self.push_error(e)?;
                    }
                }
                Outcome::Valid { recipient, key } => {
                    let repeats = match &mut self.dedup {
                        Dedup::Memory(seen) => {
                            let line = u32::try_from(recipient.line).unwrap_or(u32::MAX);
                            seen.insert(key, line)
                        }
                        Dedup::Disk(repeats) => repeats
                            .first_of(key, recipient.line)
                            .map_err(|e| self.io_error = Some(e))?,
                    };
                    if let Some(first) = repeats {
                        self.summary.duplicates += 1;
                        let reason = match first {
                            u32::MAX => "duplicate of an earlier line".to_string(),
                            line => format!("duplicate of line {line}"),
                        };
                        let e = RowError {
                            line: recipient.line,
                            column: Some(self.contact_column.clone()),
                            value: recipient.address.as_str().to_string(),
                            reason,
                        };
                        self.push_error(e)?;
                    } else {
                        self.summary.accepted += 1;
                        if recipient.suppressed {
                            self.summary.suppressed += 1;
                        }
                        self.recipient_bytes += recipient.variables_json.len();
                        self.recipients.push(recipient);
                        if self.recipients.len() >= self.batch_size
                            || self.recipient_bytes >= BATCH_BYTES
                        {
                            self.flush_recipients()?;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn push_error(&mut self, e: RowError) -> Result<(), ()> {
        self.errors.push(e);
        if self.errors.len() >= self.batch_size {
            self.flush_errors()?;
        }
        Ok(())
    }

    fn flush_recipients(&mut self) -> Result<(), ()> {
        if self.recipients.is_empty() {
            return Ok(());
        }
        let cap = self.batch_size.min(CHUNK_ROWS * 4);
        let batch = std::mem::replace(&mut self.recipients, Vec::with_capacity(cap));
        self.recipient_bytes = 0;
        self.sink
            .recipients(batch)
            .map_err(|e| self.sink_error = Some(e))
    }

    fn flush_errors(&mut self) -> Result<(), ()> {
        if self.errors.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.errors);
        self.sink
            .row_errors(batch)
            .map_err(|e| self.sink_error = Some(e))
    }

    fn finish(mut self) -> Result<ImportSummary, S::Error> {
        let flushed = self.flush_recipients().and_then(|()| self.flush_errors());
        if flushed.is_err()
            && let Some(e) = self.sink_error.take()
        {
            return Err(e);
        }
        self.sink.finish(&self.summary)?;
        Ok(self.summary)
    }
}
