//! Uploads: CSV file -> validated recipients -> one outreach, visible all at once or not at all.

use herald_core::{Address, Campaign, Channel, Renderer};
use herald_import::{ImportOptions, ImportSink, Recipient, RowError};
use herald_store::{
    ImportErrorRecord, ImportSummary, ImportedRecipient, NewOutreach, Outreach, Store, StoreError,
};
use jiff::Timestamp;
use std::collections::HashSet;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Limits on one upload (configurable; defaults 1 GiB, 5,000,000 rows, 1,000 columns and
/// 64 KiB per row).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportLimits {
    pub max_bytes: u64,
    pub max_rows: u64,
    /// Most columns of the header row: each one is stored as a variable of every recipient.
    pub max_columns: usize,
    /// Most bytes one row may span.
    pub max_row_bytes: usize,
    /// Lists of up to this many rows find repeated addresses in memory, longer ones on disk
    /// (see `herald_import::ImportOptions::dedup_memory_rows`).
    pub dedup_memory_rows: u64,
}

impl Default for ImportLimits {
    fn default() -> Self {
        Self {
            max_bytes: ImportOptions::DEFAULT_MAX_BYTES,
            max_rows: ImportOptions::DEFAULT_MAX_ROWS,
            max_columns: ImportOptions::DEFAULT_MAX_COLUMNS,
            max_row_bytes: ImportOptions::DEFAULT_MAX_ROW_BYTES,
            dedup_memory_rows: ImportOptions::DEFAULT_DEDUP_MEMORY_ROWS,
        }
    }
}

/// One uploaded list for one campaign.
#[derive(Debug)]
pub struct OutreachUpload {
    pub campaign_id: uuid::Uuid,
    /// The upload, spooled to a file (read twice; never held in memory).
    pub file: std::fs::File,
    pub file_name: String,
    pub start_at: Timestamp,
    pub end_at: Option<Timestamp>,
    /// ISO 3166 alpha-2 region for numbers without `+country`; defaults to the sender's.
    pub default_region: Option<String>,
    pub limits: ImportLimits,
}

/// Why an upload did not become an outreach. Nothing was stored in any case.
#[derive(Debug, thiserror::Error)]
pub enum ImportOutreachError {
    /// The request cannot be carried out as asked (chat campaign, end before start, ...).
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// The file was refused as a whole.
    #[error(transparent)]
    File(#[from] herald_import::FileError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("reading the upload failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("the import stopped unexpectedly: {0}")]
    Internal(String),
}

pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> ImportOutreachError {
    ImportOutreachError::Invalid {
        field,
        message: message.into(),
    }
}

/// What the reading thread hands the writing task.
enum Batch {
    Recipients(Vec<ImportedRecipient>),
    Errors(Vec<ImportErrorRecord>),
}

/// Carries batches from the blocking import to the async writer; a closed channel means the
/// writer failed, which stops the import.
struct ChannelSink {
    tx: mpsc::Sender<Batch>,
}

#[derive(Debug, thiserror::Error)]
#[error("the database writer stopped")]
struct WriterGone;

impl ImportSink for ChannelSink {
    type Error = WriterGone;

    fn recipients(&mut self, batch: Vec<Recipient>) -> Result<(), Self::Error> {
        let batch = batch
            .into_iter()
            .map(|r| ImportedRecipient {
                line: r.line,
                address: r.address.into_string(),
                raw_address: r.raw_contact,
                timezone: r.timezone,
                variables_json: r.variables_json,
                suppressed: r.suppressed,
            })
            .collect();
        self.tx
            .blocking_send(Batch::Recipients(batch))
            .map_err(|_| WriterGone)
    }

    fn row_errors(&mut self, batch: Vec<RowError>) -> Result<(), Self::Error> {
        let batch = batch
            .into_iter()
            .map(|e| ImportErrorRecord {
                line: e.line,
                column: e.column,
                value: e.value,
                reason: e.reason,
            })
            .collect();
        self.tx
            .blocking_send(Batch::Errors(batch))
            .map_err(|_| WriterGone)
    }
}

/// The campaign's message as its channel renders it (an email's Markdown, a call's voice
/// script): from the answer's variant in the campaign's language.
async fn campaign_renderer(
    store: &dyn Store,
    campaign: &Campaign,
) -> Result<Renderer, ImportOutreachError> {
    let answer = store.get_answer(campaign.answer_id).await?;
    let variant = answer.variant(&campaign.language).ok_or_else(|| {
        invalid(
            "campaign",
            format!(
                "answer `{}` has no {} variant any more; fix the campaign first",
                answer.name, campaign.language
            ),
        )
    })?;
    Renderer::for_channel(variant, campaign.channel).map_err(|e| invalid("campaign", e.to_string()))
}

/// What an upload is read with, once its campaign and form are checked.
pub(crate) struct Prepared {
    pub campaign: Campaign,
    pub sender: Option<herald_core::Sender>,
    /// The message as the campaign's channel renders it; its variables must be columns.
    pub renderer: Renderer,
    pub options: ImportOptions,
    /// Addresses on the sender's opt-out list.
    pub suppressed: HashSet<String>,
    pub default_region: Option<String>,
}

/// Checks the campaign and the form (not a chat campaign, end after start, a known region) and
/// builds the import's options.
pub(crate) async fn prepare(
    store: &dyn Store,
    upload: &OutreachUpload,
) -> Result<Prepared, ImportOutreachError> {
    let campaign = store.get_campaign(upload.campaign_id).await?;
    if campaign.channel == Channel::Chat {
        return Err(invalid(
            "campaign",
            "chat campaigns greet visitors on web pages; they take no recipient list",
        ));
    }
    if let Some(end) = upload.end_at
        && end <= upload.start_at
    {
        return Err(invalid(
            "end_at",
            format!("ends at {end}, not after the start at {}", upload.start_at),
        ));
    }
    let sender = match campaign.sender_id {
        Some(id) => Some(store.get_sender(id).await?),
        None => None,
    };
    let default_region = match (&upload.default_region, &sender) {
        (Some(region), _) => Some(region.trim().to_ascii_uppercase()),
        (None, Some(s)) => match &s.address {
            Address::Phone(p) => p.region(),
            Address::Email(_) => None,
        },
        (None, None) => None,
    };
    if let Some(region) = &default_region {
        herald_core::address::parse_region(region)
            .map_err(|e| invalid("default_region", e.to_string()))?;
    }
    let mut options = ImportOptions::new(campaign.channel);
    options.default_region = default_region.clone();
    let renderer = campaign_renderer(store, &campaign).await?;
    options.required_variables = renderer
        .variables()
        .into_iter()
        .map(str::to_string)
        .collect();
    options.max_bytes = upload.limits.max_bytes;
    options.max_rows = upload.limits.max_rows;
    options.max_columns = upload.limits.max_columns;
    options.max_row_bytes = upload.limits.max_row_bytes;
    options.dedup_memory_rows = upload.limits.dedup_memory_rows;
    let suppressed: HashSet<String> = store.suppressed_addresses(campaign.sender_id).await?;
    Ok(Prepared {
        campaign,
        sender,
        renderer,
        options,
        suppressed,
        default_region,
    })
}

/// What the reading thread's result means for the upload.
pub(crate) fn read_outcome<E: std::error::Error + 'static>(
    read: Result<
        Result<herald_import::ImportSummary, herald_import::ImportError<E>>,
        tokio::task::JoinError,
    >,
) -> Result<herald_import::ImportSummary, ImportOutreachError> {
    match read {
        Err(e) => Err(ImportOutreachError::Internal(e.to_string())),
        Ok(Ok(summary)) => Ok(summary),
        Ok(Err(e)) => Err(match e {
            herald_import::ImportError::File(e) => e.into(),
            herald_import::ImportError::Io(e) => e.into(),
            herald_import::ImportError::Options(m) => invalid("file", m),
            herald_import::ImportError::Sink(e) => ImportOutreachError::Internal(e.to_string()),
        }),
    }
}

/// Imports an uploaded list as a new outreach of the campaign and returns it with its summary.
///
/// Rows are validated on blocking threads while the store writes batches (on PostgreSQL in one
/// transaction, on SQLite in short ones that let other writers in); the outreach and its
/// recipients become visible together at commit. A refused file, a failed write or a read error
/// leaves nothing behind, and neither does a caller that drops this future (see
/// [`herald_store::OutreachImport`]).
pub async fn import_outreach(
    store: Arc<dyn Store>,
    upload: OutreachUpload,
    progress: Arc<dyn Fn(u64) + Send + Sync>,
) -> Result<Outreach, ImportOutreachError> {
    let Prepared {
        campaign,
        options,
        suppressed,
        default_region,
        ..
    } = prepare(store.as_ref(), &upload).await?;
    let mut writer = store
        .begin_outreach(&NewOutreach {
            campaign_id: campaign.id,
            file_name: upload.file_name.clone(),
            start_at: upload.start_at,
            end_at: upload.end_at,
            default_region,
        })
        .await?;
    let outreach_id = writer.outreach_id();

    let (tx, mut rx) = mpsc::channel::<Batch>(2);
    let file = upload.file;
    let reader = tokio::task::spawn_blocking(move || {
        let check = |a: &Address| suppressed.contains(a.as_str());
        let mut sink = ChannelSink { tx };
        let progress = |bytes: u64| progress(bytes);
        herald_import::import(file, &options, &check, &mut sink, &progress)
    });

    let mut write_error = None;
    while let Some(batch) = rx.recv().await {
        let done = match &batch {
            Batch::Recipients(b) => writer.recipients(b).await,
            Batch::Errors(b) => writer.row_errors(b).await,
        };
        if let Err(e) = done {
            write_error = Some(e);
            break;
        }
    }
    drop(rx); // a failed writer stops the reader at its next batch
    let read = reader.await;
    let summary = match write_error {
        Some(e) => Err(e.into()),
        None => read_outcome(read),
    };
    let summary = match summary {
        Ok(summary) => summary,
        Err(e) => {
            // Refused: what was written goes before the refusal is answered (on SQLite the rows
            // were committed chunk by chunk, invisible until the commit below).
            if let Err(cleanup) = writer.abort().await {
                tracing::warn!(
                    outreach_id = %outreach_id,
                    error = %cleanup,
                    "could not delete a refused import's rows; the next start will"
                );
            }
            return Err(e);
        }
    };
    let outreach = writer
        .commit(&ImportSummary {
            rows: summary.rows,
            accepted: summary.accepted,
            invalid: summary.invalid,
            duplicates: summary.duplicates,
            suppressed: summary.suppressed,
            encoding: summary.encoding.as_str().to_string(),
        })
        .await?;
    tracing::info!(
        campaign_id = %campaign.id,
        outreach_id = %outreach_id,
        rows = summary.rows,
        accepted = summary.accepted,
        invalid = summary.invalid,
        duplicates = summary.duplicates,
        suppressed = summary.suppressed,
        "outreach imported"
    );
    Ok(outreach)
}
