//! Bounds on the work outreaches may cause at once: uploads being spooled and imported (how many,
//! and how many temporary bytes they hold), and the progress streams each caller keeps open.
//!
//! The `[outreaches]` section of the configuration sets them ([`OutreachLimits`]); past a bound a
//! caller gets a `problem+json` answer that names it ([`Busy`]): 503 with `Retry-After` when the
//! server as a whole is busy with uploads, 429 when one caller has too many streams open.

use crate::error::{ApiError, PROBLEM_JSON, Problem};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// `[outreaches]`: limits on uploads and progress streams. Every key is optional.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutreachLimits {
    /// Largest recipient list accepted, in bytes.
    pub max_upload_bytes: u64,
    /// Most data rows in one list.
    pub max_rows: u64,
    /// Most columns in one list's header (each is stored as a variable of every recipient).
    pub max_columns: usize,
    /// Most bytes one row of a list may span.
    pub max_row_bytes: usize,
    /// Lists of up to this many rows find repeated addresses in memory (16 bytes a row); longer
    /// ones find them on disk, in temporary files, with memory that does not grow with the list.
    pub dedup_memory_rows: u64,
    /// Uploads spooled or imported at the same time, over the API and the web UI together.
    pub concurrent_uploads: usize,
    /// Temporary disk space all uploads in progress may hold together, in bytes.
    pub upload_temp_bytes: u64,
    /// Progress streams (`/outreaches/{id}/events`) one token or one web user may have open.
    pub event_streams_per_caller: usize,
}

impl OutreachLimits {
    pub const DEFAULT_CONCURRENT_UPLOADS: usize = 4;
    pub const DEFAULT_UPLOAD_TEMP_BYTES: u64 = 2 << 30;
    pub const DEFAULT_EVENT_STREAMS_PER_CALLER: usize = 10;

    /// The limits of one import.
    pub fn import(&self) -> herald_engine::ImportLimits {
        herald_engine::ImportLimits {
            max_bytes: self.max_upload_bytes,
            max_rows: self.max_rows,
            max_columns: self.max_columns,
            max_row_bytes: self.max_row_bytes,
            dedup_memory_rows: self.dedup_memory_rows,
        }
    }
}

impl Default for OutreachLimits {
    fn default() -> Self {
        let import = herald_engine::ImportLimits::default();
        Self {
            max_upload_bytes: import.max_bytes,
            max_rows: import.max_rows,
            max_columns: import.max_columns,
            max_row_bytes: import.max_row_bytes,
            dedup_memory_rows: import.dedup_memory_rows,
            concurrent_uploads: Self::DEFAULT_CONCURRENT_UPLOADS,
            upload_temp_bytes: Self::DEFAULT_UPLOAD_TEMP_BYTES,
            event_streams_per_caller: Self::DEFAULT_EVENT_STREAMS_PER_CALLER,
        }
    }
}

/// The live state behind the limits: uploads in progress, streams open, progress pollers.
#[derive(Debug)]
pub(crate) struct Gates {
    pub(crate) uploads: Arc<UploadGate>,
    pub(crate) streams: Arc<StreamGate>,
    pub(crate) progress: Arc<crate::progress::ProgressHub>,
}

impl Gates {
    pub(crate) fn new(limits: &OutreachLimits) -> Self {
        Self {
            uploads: Arc::new(UploadGate::new(
                limits.concurrent_uploads,
                limits.upload_temp_bytes,
            )),
            streams: Arc::new(StreamGate::new(limits.event_streams_per_caller)),
            progress: Arc::default(),
        }
    }
}

/// A refusal because a bound on concurrent work is reached: the status (503 or 429), what to do,
/// and when to try again.
#[derive(Debug, Clone)]
pub struct Busy {
    pub status: StatusCode,
    pub detail: String,
    /// Seconds, sent as `Retry-After`.
    pub retry_after: u64,
}

impl Busy {
    pub fn to_problem(&self) -> Problem {
        Problem {
            kind: "https://herald.dev/problems/busy".into(),
            title: self.status.canonical_reason().unwrap_or("Busy").to_string(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            errors: Vec::new(),
        }
    }

    /// Adds `Retry-After` to a response.
    pub fn retry_after_header(&self, res: &mut Response) {
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(self.retry_after));
    }
}

impl IntoResponse for Busy {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.to_problem()).unwrap_or_default();
        let mut res = (self.status, body).into_response();
        res.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        self.retry_after_header(&mut res);
        res
    }
}

/// Why a request was refused: a problem with it, or a bound on concurrent work.
#[derive(Debug)]
pub enum Refusal {
    Api(ApiError),
    Busy(Busy),
}

impl From<ApiError> for Refusal {
    fn from(e: ApiError) -> Self {
        Refusal::Api(e)
    }
}

impl From<Busy> for Refusal {
    fn from(b: Busy) -> Self {
        Refusal::Busy(b)
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Api(e) => e.into_response(),
            Refusal::Busy(b) => b.into_response(),
        }
    }
}

/// How many uploads are in progress and how many temporary bytes they hold.
#[derive(Debug)]
pub(crate) struct UploadGate {
    max_uploads: usize,
    max_bytes: u64,
    /// (uploads in progress, bytes they hold)
    used: Mutex<(usize, u64)>,
}

/// Seconds a refused upload is told to wait.
const UPLOAD_RETRY_AFTER: u64 = 30;

impl UploadGate {
    pub(crate) fn new(max_uploads: usize, max_bytes: u64) -> Self {
        Self {
            max_uploads,
            max_bytes,
            used: Mutex::new((0, 0)),
        }
    }

    fn used(&self) -> std::sync::MutexGuard<'_, (usize, u64)> {
        // The counters stay consistent even if a holder panicked: each update is one statement.
        self.used.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A place for one more upload, or 503 when `concurrent_uploads` are in progress.
    pub(crate) fn enter(self: &Arc<Self>) -> Result<UploadPermit, Busy> {
        let mut used = self.used();
        if used.0 >= self.max_uploads {
            return Err(Busy {
                status: StatusCode::SERVICE_UNAVAILABLE,
                detail: format!(
                    "{} recipient lists are being uploaded already, the most Herald takes at \
                     once (`outreaches.concurrent_uploads`); try again in a minute",
                    used.0
                ),
                retry_after: UPLOAD_RETRY_AFTER,
            });
        }
        used.0 += 1;
        Ok(UploadPermit {
            gate: self.clone(),
            bytes: 0,
        })
    }

    /// Uploads in progress and the temporary bytes they hold.
    pub(crate) fn in_use(&self) -> (usize, u64) {
        *self.used()
    }
}

/// One upload in progress; it gives its place and its bytes back when dropped (after the
/// import, when the spooled file is gone too).
#[derive(Debug)]
pub(crate) struct UploadPermit {
    gate: Arc<UploadGate>,
    bytes: u64,
}

impl UploadPermit {
    /// Counts `n` more bytes spooled to disk, or 503 when the uploads in progress would hold
    /// more than `upload_temp_bytes` together.
    pub(crate) fn reserve(&mut self, n: u64) -> Result<(), Busy> {
        let mut used = self.gate.used();
        let total = used.1.saturating_add(n);
        if total > self.gate.max_bytes {
            return Err(Busy {
                status: StatusCode::SERVICE_UNAVAILABLE,
                detail: format!(
                    "the uploads in progress hold the {} of temporary space Herald allows them \
                     (`outreaches.upload_temp_bytes`); try again when they are done",
                    human_bytes(self.gate.max_bytes)
                ),
                retry_after: UPLOAD_RETRY_AFTER,
            });
        }
        used.1 = total;
        self.bytes += n;
        Ok(())
    }
}

impl Drop for UploadPermit {
    fn drop(&mut self) {
        let mut used = self.gate.used();
        used.0 = used.0.saturating_sub(1);
        used.1 = used.1.saturating_sub(self.bytes);
    }
}

/// `2 GiB`, `64 KiB`, `1000 bytes`.
pub(crate) fn human_bytes(n: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (unit, size) in UNITS {
        if n >= size && n.is_multiple_of(size) {
            return format!("{} {unit}", n / size);
        }
    }
    format!("{n} bytes")
}

/// The progress streams each caller has open.
#[derive(Debug)]
pub(crate) struct StreamGate {
    per_caller: usize,
    open: Mutex<HashMap<String, usize>>,
}

impl StreamGate {
    pub(crate) fn new(per_caller: usize) -> Self {
        Self {
            per_caller,
            open: Mutex::new(HashMap::new()),
        }
    }

    fn open(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One more stream for `caller` (a key such as `token:<id>`), or 429 when it has
    /// `event_streams_per_caller` open; `who` names the caller in the message.
    pub(crate) fn enter(self: &Arc<Self>, caller: String, who: &str) -> Result<StreamPermit, Busy> {
        let mut open = self.open();
        let n = open.entry(caller.clone()).or_insert(0);
        if *n >= self.per_caller {
            return Err(Busy {
                status: StatusCode::TOO_MANY_REQUESTS,
                detail: format!(
                    "{who} has {} progress streams open, the most one caller may have \
                     (`outreaches.event_streams_per_caller`); close one first",
                    *n
                ),
                retry_after: 5,
            });
        }
        *n += 1;
        Ok(StreamPermit {
            gate: self.clone(),
            caller,
        })
    }

    #[cfg(test)]
    fn count(&self, caller: &str) -> usize {
        self.open().get(caller).copied().unwrap_or(0)
    }
}

/// One open progress stream; dropped with the response body (when the stream ends or the
/// client goes away).
#[derive(Debug)]
pub(crate) struct StreamPermit {
    gate: Arc<StreamGate>,
    caller: String,
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        let mut open = self.gate.open();
        if let Some(n) = open.get_mut(&self.caller) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.caller);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_give_back_their_place_and_bytes() {
        let gate = Arc::new(UploadGate::new(2, 100));
        let mut a = gate.enter().unwrap();
        let mut b = gate.enter().unwrap();
        let refused = gate.enter().unwrap_err();
        assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(refused.detail.contains("concurrent_uploads"), "{refused:?}");
        a.reserve(60).unwrap();
        let full = b.reserve(41).unwrap_err();
        assert!(full.detail.contains("100 bytes"), "{full:?}");
        b.reserve(40).unwrap();
        assert_eq!(gate.in_use(), (2, 100));
        drop(a);
        assert_eq!(gate.in_use(), (1, 40));
        let _c = gate.enter().unwrap();
        drop(b);
        assert_eq!(gate.in_use(), (1, 0));
    }

    #[test]
    fn streams_are_counted_per_caller() {
        let gate = Arc::new(StreamGate::new(2));
        let a1 = gate.enter("token:a".into(), "token `a`").unwrap();
        let _a2 = gate.enter("token:a".into(), "token `a`").unwrap();
        let refused = gate.enter("token:a".into(), "token `a`").unwrap_err();
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(refused.detail.starts_with("token `a` has 2"), "{refused:?}");
        let _b = gate.enter("token:b".into(), "token `b`").unwrap();
        drop(a1);
        assert_eq!(gate.count("token:a"), 1);
        let _a3 = gate.enter("token:a".into(), "token `a`").unwrap();
    }
}
