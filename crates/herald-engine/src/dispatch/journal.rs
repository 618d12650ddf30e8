//! The dispatcher's local journal: what the batch under way did that the store does not know
//! yet, so that a process killed mid-batch loses nothing and leaves uncertain only the sends
//! that were really in flight. One JSON line per entry:
//!
//! - `marked`: sends marked begun in the store at `at` ([`herald_store::Dispatch::start_sends`]);
//! - `begun`: the send of one recipient is about to be made (written to the file before the
//!   request leaves);
//! - `done`: one send's outcome and, if sent, its timeline entry (written with the next `begun`
//!   line, or kept in memory until the batch is recorded);
//! - `kept`: a batch's results that could not be written before Herald stopped, with the lease
//!   the batch held (waited for on disk).
//!
//! A batch whose results are written to the store empties the file. On the next start, before
//! anything is claimed, the dispatcher writes every `done` and `kept` result, and gives back to
//! the queue every recipient `marked` but never `begun` ([`herald_store::Dispatch::release_unbegun`]).
//! What is left uncertain after a `kill -9` is the sends begun whose outcome was not yet on
//! file: at most the sends in flight (`concurrency`). Lines are written without waiting for the
//! disk (a process that dies leaves them in the kernel's cache); a machine that loses power
//! loses them, and then lease recovery decides, as without a journal.
//!
//! Several processes may share a working directory (and so the configured path): each takes
//! the first of the slots `NAME.EXT`, `NAME-2.EXT`, `NAME-3.EXT`… it can lock, keeps it locked
//! while it runs, and on start also empties the slots no running process holds (a dead one's).
//!
//! Writing a result again is harmless: the store applies a result only to a recipient still
//! `sending` (or, for a send, `unknown`), and puts a message on the timeline only for the
//! results it applied. A result other than a send applies only while the claim it came from
//! still holds the recipient (`herald_store::Held`): a `done` result under the mark of its
//! `marked` line, a `kept` one under its batch's lease. A recipient another node claimed since
//! is left to that node.

use herald_store::{DeliveryResult, Held, Outcome, SentMessage};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

/// The most processes that can share one journal path.
const SLOTS: usize = 64;

/// One line of the journal.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Entry {
    Marked {
        at: Timestamp,
        ids: Vec<i64>,
    },
    Begun {
        id: i64,
    },
    Done {
        result: DeliveryResult,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sent: Option<Box<SentMessage>>,
    },
    Kept {
        results: Vec<DeliveryResult>,
        timeline: Vec<SentMessage>,
        /// The claim the results come from (`unchecked` in journals written before it was kept).
        #[serde(default)]
        held: Held,
    },
}

/// A line in the shape the journal had before it held more than kept batches.
#[derive(Debug, Deserialize)]
struct OldKept {
    results: Vec<DeliveryResult>,
    timeline: Vec<SentMessage>,
}

/// The journal of this process.
#[derive(Debug)]
pub(super) struct Journal {
    base: PathBuf,
    inner: std::sync::Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// This process's slot, locked while it runs; `None` until [`Journal::recover`].
    slot: Option<(PathBuf, File)>,
    /// `done` lines not yet written.
    pending: Vec<u8>,
}

/// What the journals of this and dead processes held, read by [`Journal::recover`].
pub(super) struct Recovered {
    /// Outcomes to write, one per recipient (the last one on file), `Defer` left out: a send
    /// never made is given back by [`Recovered::unbegun`] instead. By the claim they come from,
    /// in its order.
    pub(super) results: Vec<(Held, DeliveryResult)>,
    pub(super) timeline: Vec<SentMessage>,
    /// Recipients marked begun and never sent, by the instant of their mark.
    pub(super) unbegun: BTreeMap<Timestamp, Vec<i64>>,
    /// The slots read, still locked: emptied by [`Journal::clear`].
    files: Vec<(PathBuf, File)>,
}

impl Journal {
    pub(super) fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            base: path.into(),
            inner: std::sync::Mutex::new(Inner::default()),
        }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// This process's file: its slot once taken, else the configured path.
    pub(super) fn path(&self) -> PathBuf {
        match &self.inner().slot {
            Some((path, _)) => path.clone(),
            None => self.base.clone(),
        }
    }

    /// The path of slot `k` (from 1).
    fn slot_path(&self, k: usize) -> PathBuf {
        if k == 1 {
            return self.base.clone();
        }
        let stem = self
            .base
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = match self.base.extension() {
            Some(ext) => format!("{stem}-{k}.{}", ext.to_string_lossy()),
            None => format!("{stem}-{k}"),
        };
        self.base.with_file_name(name)
    }

    /// Opens `path` and locks it without waiting: `None` if another process holds it.
    fn lock(path: &Path, create: bool) -> std::io::Result<Option<File>> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .create(create)
            .open(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(file)),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }

    /// Takes this process's slot (once), and reads it and every slot no running process holds.
    pub(super) fn recover(&self) -> std::io::Result<Recovered> {
        let mut inner = self.inner();
        if inner.slot.is_none() {
            for k in 1..=SLOTS {
                let path = self.slot_path(k);
                if let Some(file) = Self::lock(&path, true)? {
                    inner.slot = Some((path, file));
                    break;
                }
            }
        }
        let Some((mine, _)) = &inner.slot else {
            return Err(std::io::Error::other(format!(
                "all {SLOTS} journal slots beside {} are held by running processes",
                self.base.display()
            )));
        };
        let mut files = Vec::new();
        for k in 1..=SLOTS {
            let path = self.slot_path(k);
            if &path == mine || !path.exists() {
                continue;
            }
            if let Some(file) = Self::lock(&path, false)? {
                files.push((path, file));
            }
        }
        let mut entries = Vec::new();
        let (mine, file) = inner.slot.as_ref().expect("taken above");
        read_entries(mine, file, &mut entries)?;
        for (path, file) in &files {
            read_entries(path, file, &mut entries)?;
        }
        Ok(Recovered::from_entries(entries, files))
    }

    /// Empties what [`Journal::recover`] read, once it is in the store.
    pub(super) fn clear(&self, recovered: Recovered) -> std::io::Result<()> {
        let mut inner = self.inner();
        inner.pending.clear();
        if let Some((_, file)) = &inner.slot {
            file.set_len(0)?;
        }
        for (_, file) in recovered.files {
            file.set_len(0)?;
        }
        Ok(())
    }

    /// Writes `line` (after the `done` lines waiting) to this process's slot; nothing before
    /// [`Journal::recover`] took one.
    fn write(inner: &mut Inner, entry: &Entry) -> std::io::Result<()> {
        let Some((_, file)) = &inner.slot else {
            return Ok(());
        };
        let mut file = file;
        serde_json::to_writer(&mut inner.pending, entry)?;
        inner.pending.push(b'\n');
        let written = file.write_all(&inner.pending);
        inner.pending.clear();
        written
    }

    /// Sends marked begun in the store at `at`.
    pub(super) fn marked(&self, at: Timestamp, ids: &[i64]) -> std::io::Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let entry = Entry::Marked {
            at,
            ids: ids.to_vec(),
        };
        Self::write(&mut self.inner(), &entry)
    }

    /// The send of recipient `id` is about to be made: on file (with the outcomes waiting)
    /// before this returns. A send whose line cannot be written must not be made.
    pub(super) fn begun(&self, id: i64) -> std::io::Result<()> {
        Self::write(&mut self.inner(), &Entry::Begun { id })
    }

    /// One send's outcome, written with the next line.
    pub(super) fn done(&self, result: &DeliveryResult, sent: Option<&SentMessage>) {
        let mut inner = self.inner();
        if inner.slot.is_none() {
            return;
        }
        let entry = Entry::Done {
            result: result.clone(),
            sent: sent.cloned().map(Box::new),
        };
        if serde_json::to_writer(&mut inner.pending, &entry).is_ok() {
            inner.pending.push(b'\n');
        }
    }

    /// The batch's results are in the store: its lines are no longer needed.
    pub(super) fn settled(&self) -> std::io::Result<()> {
        let mut inner = self.inner();
        inner.pending.clear();
        match &inner.slot {
            Some((_, file)) => file.set_len(0),
            None => Ok(()),
        }
    }

    /// Appends a batch's results and waits until they are on disk.
    pub(super) fn keep(
        &self,
        held: Held,
        results: &[DeliveryResult],
        timeline: &[SentMessage],
    ) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(&KeptRef::Kept {
            results,
            timeline,
            held,
        })?;
        line.push(b'\n');
        let inner = self.inner();
        let opened;
        let mut file = match &inner.slot {
            Some((_, file)) => file,
            None => {
                opened = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.base)?;
                &opened
            }
        };
        file.write_all(&line)?;
        file.sync_all()
    }
}

impl Recovered {
    fn from_entries(entries: Vec<Entry>, files: Vec<(PathBuf, File)>) -> Self {
        let mut results: BTreeMap<i64, (Held, DeliveryResult)> = BTreeMap::new();
        let mut timeline: BTreeMap<i64, SentMessage> = BTreeMap::new();
        let mut marked: Vec<(Timestamp, Vec<i64>)> = Vec::new();
        // The mark each recipient's send was last marked begun under.
        let mut mark_of: HashMap<i64, Timestamp> = HashMap::new();
        let mut begun: HashSet<i64> = HashSet::new();
        let mut take = |held: Held, r: DeliveryResult| {
            if !matches!(r.outcome, Outcome::Defer { .. }) {
                results.insert(r.recipient_id, (held, r));
            }
        };
        let mut sent_list = Vec::new();
        for entry in entries {
            match entry {
                Entry::Marked { at, ids } => {
                    mark_of.extend(ids.iter().map(|&id| (id, at)));
                    marked.push((at, ids));
                }
                Entry::Begun { id } => {
                    begun.insert(id);
                }
                Entry::Done { result, sent } => {
                    // A `done` line always follows its `marked` line; a journal cut short
                    // before it leaves the claim unknown.
                    let held = mark_of
                        .get(&result.recipient_id)
                        .map_or(Held::Unchecked, |&at| Held::Begun(at));
                    take(held, result);
                    sent_list.extend(sent.map(|s| *s));
                }
                Entry::Kept {
                    results,
                    timeline: t,
                    held,
                } => {
                    results.into_iter().for_each(|r| take(held, r));
                    sent_list.extend(t);
                }
            }
        }
        for s in sent_list {
            timeline.insert(s.recipient_id, s);
        }
        let mut unbegun: BTreeMap<Timestamp, Vec<i64>> = BTreeMap::new();
        for (at, ids) in marked {
            let left: Vec<i64> = ids
                .into_iter()
                .filter(|id| !begun.contains(id) && !results.contains_key(id))
                .collect();
            if !left.is_empty() {
                unbegun.entry(at).or_default().extend(left);
            }
        }
        let mut results: Vec<(Held, DeliveryResult)> = results.into_values().collect();
        results.sort_by_key(|(held, r)| (*held, r.recipient_id));
        Self {
            results,
            timeline: timeline.into_values().collect(),
            unbegun,
            files,
        }
    }

    /// Whether there was nothing to do.
    pub(super) fn is_empty(&self) -> bool {
        self.results.is_empty() && self.unbegun.is_empty()
    }
}

/// Reads the entries of one slot. A line cut short (Herald died while writing it) or not
/// understood is left out with a warning.
fn read_entries(path: &Path, file: &File, into: &mut Vec<Entry>) -> std::io::Result<()> {
    use std::io::Seek;
    let mut file = file;
    file.seek(std::io::SeekFrom::Start(0))?;
    for line in std::io::BufReader::new(file).lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Entry>(&line) {
            Ok(e) => into.push(e),
            Err(e) => match serde_json::from_str::<OldKept>(&line) {
                Ok(old) => into.push(Entry::Kept {
                    results: old.results,
                    timeline: old.timeline,
                    held: Held::Unchecked,
                }),
                Err(_) => tracing::warn!(
                    journal = %path.display(),
                    error = %e,
                    "a line of the dispatch journal cannot be read; it is left out"
                ),
            },
        }
    }
    Ok(())
}

#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
enum KeptRef<'a> {
    Kept {
        results: &'a [DeliveryResult],
        timeline: &'a [SentMessage],
        held: Held,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(id: i64) -> DeliveryResult {
        DeliveryResult {
            recipient_id: id,
            outcome: Outcome::Sent {
                provider_message_id: Some(format!("SM{id}")),
            },
        }
    }

    #[test]
    fn what_is_left_after_a_kill() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::new(dir.path().join("j.jsonl"));
        assert!(j.recover().unwrap().is_empty());
        let at: Timestamp = "2026-01-01T00:00:00.123456Z".parse().unwrap();
        j.marked(at, &[1, 2, 3, 4, 5]).unwrap();
        j.begun(1).unwrap();
        j.begun(2).unwrap();
        j.done(&sent(1), None);
        // Written with the next begun line.
        j.begun(3).unwrap();
        // Done but never written: 2 and 3 stay uncertain, 4 and 5 never began.
        j.done(&sent(2), None);
        drop(j);

        let again = Journal::new(dir.path().join("j.jsonl"));
        let r = again.recover().unwrap();
        assert_eq!(r.results.len(), 1);
        assert_eq!(r.results[0].1.recipient_id, 1);
        // Applied only while recipient 1 is still under this mark.
        assert_eq!(r.results[0].0, Held::Begun(at));
        assert_eq!(r.unbegun.get(&at), Some(&vec![4, 5]));
        again.clear(r).unwrap();
        assert!(again.recover().unwrap().is_empty());
    }

    #[test]
    fn a_running_process_keeps_its_slot() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("j.jsonl");
        let first = Journal::new(&base);
        first.recover().unwrap();
        let at = Timestamp::UNIX_EPOCH;
        first.marked(at, &[7]).unwrap();
        // A second process on the same path takes the next slot and leaves the first alone.
        let second = Journal::new(&base);
        let r = second.recover().unwrap();
        assert!(r.is_empty());
        assert_eq!(second.path(), dir.path().join("j-2.jsonl"));
        second.marked(at, &[8]).unwrap();
        // The first one dies: a third process takes its slot and its lines.
        drop(first);
        let third = Journal::new(&base);
        let r = third.recover().unwrap();
        assert_eq!(third.path(), base);
        assert_eq!(r.unbegun.get(&at), Some(&vec![7]));
    }

    #[test]
    fn kept_batches_of_the_old_shape_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("j.jsonl");
        let old = serde_json::json!({"results": [sent(9)], "timeline": []});
        std::fs::write(&base, format!("{old}\n{{\"cut short")).unwrap();
        let r = Journal::new(&base).recover().unwrap();
        assert_eq!(r.results.len(), 1);
        assert_eq!(r.results[0].1.recipient_id, 9);
        assert_eq!(r.results[0].0, Held::Unchecked);
    }

    #[test]
    fn kept_batches_keep_their_lease() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("j.jsonl");
        let lease: Timestamp = "2026-01-01T00:00:30Z".parse().unwrap();
        let j = Journal::new(&base);
        j.keep(Held::Lease(lease), &[sent(4), sent(3)], &[])
            .unwrap();
        drop(j);
        let r = Journal::new(&base).recover().unwrap();
        let got: Vec<(Held, i64)> = r
            .results
            .iter()
            .map(|(h, r)| (*h, r.recipient_id))
            .collect();
        assert_eq!(got, vec![(Held::Lease(lease), 3), (Held::Lease(lease), 4)]);
    }
}
