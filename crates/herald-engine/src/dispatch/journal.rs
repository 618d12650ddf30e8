//! Results the dispatcher could not write before Herald stopped: kept in a local file, one JSON
//! line per batch, and written on the next start before anything is claimed.
//!
//! Writing a kept batch again is harmless: the store applies a result only to a recipient still
//! `sending` (or, for a send, `unknown`), and puts a message on the timeline only for the
//! results it applied, so a batch that had in fact been written changes nothing the second time.

use herald_store::{DeliveryResult, SentMessage};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

/// One batch's results and the timeline entries of its sends.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Kept {
    pub(super) results: Vec<DeliveryResult>,
    pub(super) timeline: Vec<SentMessage>,
}

/// The journal file.
#[derive(Debug, Clone)]
pub(super) struct Journal {
    path: PathBuf,
}

impl Journal {
    pub(super) fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Appends a batch and waits until it is on disk.
    pub(super) fn keep(
        &self,
        results: &[DeliveryResult],
        timeline: &[SentMessage],
    ) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(&KeptRef { results, timeline })?;
        line.push(b'\n');
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        file.write_all(&line)?;
        file.sync_all()
    }

    /// The kept batches, oldest first. A last line cut short (Herald died while writing it) is
    /// left out: its batch was not acknowledged as kept.
    pub(super) fn read(&self) -> std::io::Result<Vec<Kept>> {
        let file = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut kept = Vec::new();
        for line in std::io::BufReader::new(file).lines() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Kept>(&line) {
                Ok(k) => kept.push(k),
                Err(e) => tracing::warn!(
                    journal = %self.path.display(),
                    error = %e,
                    "a line of the dispatch journal cannot be read; it is left out"
                ),
            }
        }
        Ok(kept)
    }

    /// Forgets every kept batch (once all are written).
    pub(super) fn clear(&self) -> std::io::Result<()> {
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

#[derive(Serialize)]
struct KeptRef<'a> {
    results: &'a [DeliveryResult],
    timeline: &'a [SentMessage],
}
