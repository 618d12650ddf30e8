//! The file sink: one JSON line per message, so a new user sees what Herald would send.

use crate::{Accepted, OutboundMessage, SendError, Transport, codes, unsupported};
use async_trait::async_trait;
use herald_core::{Address, Channel, Language};
use jiff::Timestamp;
use serde::Serialize;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use uuid::Uuid;

/// Where the time of `sent_at` comes from; the system clock unless a test injects another.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// Appends one JSON object per line to a file (default `outbox.jsonl`):
///
/// ```json
/// {"idempotency_key":"…","channel":"sms","from":"+1…","to":"+1…","subject":null,"body":"…",
///  "language":"en-US","campaign_id":"…","outreach_id":"…","recipient_id":42,
///  "sent_at":"2026-03-01T14:00:00Z"}
/// ```
///
/// An email also has `"html"`, its HTML part (a fragment; `body` is its plain-text part).
///
/// The file is opened (created if missing, with its parent directory) in append mode at the first
/// send, so configuring the transport creates nothing. Each line is written with a single
/// `write` call under a mutex and flushed before `send` returns: lines from concurrent sends never
/// interleave. The provider message id is `file-<idempotency key>`.
pub struct FileTransport {
    path: PathBuf,
    file: Arc<Mutex<Option<File>>>,
    clock: Clock,
}

#[derive(Serialize)]
struct Line<'a> {
    idempotency_key: &'a str,
    channel: Channel,
    from: &'a Address,
    to: &'a Address,
    subject: Option<&'a str>,
    body: &'a str,
    /// An email's HTML part; absent for other messages.
    #[serde(skip_serializing_if = "Option::is_none")]
    html: Option<&'a str>,
    language: &'a Language,
    campaign_id: Uuid,
    outreach_id: Uuid,
    recipient_id: i64,
    sent_at: Timestamp,
}

impl FileTransport {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        #[allow(clippy::disallowed_methods)] // the system default of this transport's own clock
        let clock: Clock = Arc::new(Timestamp::now);
        Self {
            path: path.into(),
            file: Arc::new(Mutex::new(None)),
            clock,
        }
    }

    /// Uses `clock` for `sent_at` instead of the system clock.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The JSON line (with its `\n`) written for a message sent at `sent_at`.
    pub fn line(msg: &OutboundMessage, sent_at: Timestamp) -> Result<Vec<u8>, SendError> {
        let line = Line {
            idempotency_key: &msg.idempotency_key,
            channel: msg.channel,
            from: &msg.from,
            to: &msg.to,
            subject: msg.subject.as_deref(),
            body: &msg.body,
            html: msg.html.as_deref(),
            language: &msg.language,
            campaign_id: msg.campaign_id,
            outreach_id: msg.outreach_id,
            recipient_id: msg.recipient_id,
            sent_at,
        };
        let mut bytes = serde_json::to_vec(&line)
            .map_err(|e| SendError::permanent(codes::INVALID_MESSAGE, e.to_string()))?;
        bytes.push(b'\n');
        Ok(bytes)
    }
}

impl std::fmt::Debug for FileTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileTransport")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn append(path: &Path, slot: &Mutex<Option<File>>, line: &[u8]) -> std::io::Result<()> {
    // A panic while holding the lock cannot leave a half-built `File`; keep using it.
    let mut guard = slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if guard.is_none() {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let mut options = OpenOptions::new();
        options.create(true).append(true);
        // The outbox holds customers' addresses and messages: readable by its owner only.
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        *guard = Some(options.open(path)?);
    }
    let Some(file) = guard.as_mut() else {
        return Err(std::io::Error::other("outbox file is not open"));
    };
    let result = file.write_all(line).and_then(|()| file.flush());
    if result.is_err() {
        // Reopen next time: the file may have been removed or its disk replaced.
        *guard = None;
    }
    result
}

#[async_trait]
impl Transport for FileTransport {
    fn name(&self) -> &'static str {
        "file"
    }

    #[tracing::instrument(
        name = "file.send",
        skip_all,
        fields(
            campaign_id = %msg.campaign_id,
            outreach_id = %msg.outreach_id,
            recipient_id = %msg.recipient_id,
            channel = %msg.channel,
        )
    )]
    async fn send(&self, msg: &OutboundMessage) -> Result<Accepted, SendError> {
        if !self.supports(msg.channel) {
            return Err(unsupported(self.name(), msg.channel));
        }
        let line = Self::line(msg, (self.clock)())?;
        let path = self.path.clone();
        let slot = Arc::clone(&self.file);
        let written = tokio::task::spawn_blocking(move || append(&path, &slot, &line)).await;
        match written {
            Ok(Ok(())) => {
                tracing::debug!(path = %self.path.display(), "message written to the outbox");
                Ok(Accepted {
                    provider_message_id: Some(format!("file-{}", msg.idempotency_key)),
                })
            }
            Ok(Err(e)) => {
                tracing::warn!(path = %self.path.display(), error = %e, "writing the outbox failed");
                Err(SendError::transient(
                    codes::IO,
                    format!("cannot append to {}: {e}", self.path.display()),
                ))
            }
            Err(e) => Err(SendError::transient(
                codes::IO,
                format!("writing {} did not finish: {e}", self.path.display()),
            )),
        }
    }
}
