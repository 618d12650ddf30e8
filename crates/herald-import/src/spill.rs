//! Finding repeats on disk, for a file too long for the in-memory table (`dedup::Seen`) to stay
//! small: memory then stays the same however many rows the file has.
//!
//! A first pass validates every row (without building its variables) and appends each valid
//! row's `(key, line)` to one of several unnamed temporary files, chosen by the key's hash, so
//! that every repeat of an address lands in the same file. Each file is then read back on its
//! own into a small table; a line whose key the table already holds is a repeat, and is written,
//! with the line it repeats, to a second set of files chosen by line range. The import pass reads
//! those back one range at a time, in file order, and so knows every repeat when it reaches it,
//! exactly as the in-memory table would have told it: the first valid row of an address is
//! kept, every later one is reported with the first one's line.
//!
//! The files are made with `tempfile::tempfile` (in `$TMPDIR`, already unlinked), so they go
//! away when the import ends, whichever way it ends, and when the process is killed. They hold
//! 16 bytes a valid row, and 20 bytes a repeat: at most 180 MB at the 5,000,000-row limit, 80 MB
//! for a list without repeats. In memory: the write buffers (64 KiB a file), then one file's
//! table or one line range's repeats at a time.

use crate::dedup::{DedupKey, Seen};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};

/// Keys per temporary file, about: its table is then about 3 MB.
const PART_ROWS: u64 = 1 << 18;
/// At most this many temporary files of each kind.
const MAX_PARTS: u64 = 256;
/// The write buffer of each file.
const BUFFER: usize = 64 * 1024;

/// A key and its line, as written to a partition file.
const KEY_RECORD: usize = 16;
/// A repeat's line, the line it repeats (as `Seen` gives it) and its key.
const REPEAT_RECORD: usize = 20;

/// The `(key, line)` of every valid row, spread over files by key.
pub(crate) struct KeySpill {
    parts: Vec<BufWriter<File>>,
    counts: Vec<u64>,
    max_line: u64,
}

impl KeySpill {
    /// Files for about `rows` keys.
    pub(crate) fn new(rows: u64) -> io::Result<Self> {
        let n = rows.div_ceil(PART_ROWS).clamp(1, MAX_PARTS) as usize;
        let mut parts = Vec::with_capacity(n);
        for _ in 0..n {
            parts.push(BufWriter::with_capacity(BUFFER, tempfile::tempfile()?));
        }
        Ok(KeySpill {
            parts,
            counts: vec![0; n],
            max_line: 0,
        })
    }

    /// Records the valid row at `line` (lines come in increasing order).
    pub(crate) fn push(&mut self, key: DedupKey, line: u64) -> io::Result<()> {
        let i = pick(key.mixed(), self.parts.len());
        let mut record = [0u8; KEY_RECORD];
        record[..8].copy_from_slice(&key.raw().to_le_bytes());
        record[8..].copy_from_slice(&line.to_le_bytes());
        self.parts[i].write_all(&record)?;
        self.counts[i] += 1;
        self.max_line = self.max_line.max(line);
        Ok(())
    }

    /// Finds every repeat, one file at a time.
    pub(crate) fn resolve(self) -> io::Result<Repeats> {
        let n = self.parts.len();
        let width = self.max_line / n as u64 + 1;
        let mut out: Vec<BufWriter<File>> = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(BufWriter::with_capacity(BUFFER, tempfile::tempfile()?));
        }
        let mut found = 0u64;
        for (part, count) in self.parts.into_iter().zip(self.counts) {
            let mut file = part.into_inner().map_err(io::IntoInnerError::into_error)?;
            file.seek(SeekFrom::Start(0))?;
            let mut seen = Seen::with_rows(usize::try_from(count).unwrap_or(usize::MAX));
            let mut reader = BufReader::with_capacity(BUFFER, file);
            let mut record = [0u8; KEY_RECORD];
            for _ in 0..count {
                reader.read_exact(&mut record)?;
                let key = le64(&record[..8]);
                let line = le64(&record[8..]);
                let short = u32::try_from(line).unwrap_or(u32::MAX);
                if let Some(first) = seen.insert(DedupKey::from_raw(key), short) {
                    let mut r = [0u8; REPEAT_RECORD];
                    r[..8].copy_from_slice(&line.to_le_bytes());
                    r[8..12].copy_from_slice(&first.to_le_bytes());
                    r[12..].copy_from_slice(&key.to_le_bytes());
                    out[range_of(line, width, n)].write_all(&r)?;
                    found += 1;
                }
            }
        }
        let mut buckets = Vec::with_capacity(n);
        for w in out {
            let mut file = w.into_inner().map_err(io::IntoInnerError::into_error)?;
            file.seek(SeekFrom::Start(0))?;
            buckets.push(Some(file));
        }
        Ok(Repeats {
            buckets,
            width,
            current: None,
            loaded: Vec::new(),
            pos: 0,
            found,
        })
    }
}

/// Which of `n` files a mixed key goes to: by its low half, since `Seen` places keys by their
/// high bits, and a file whose keys shared those would crowd one end of its table.
fn pick(mixed: u64, n: usize) -> usize {
    ((u64::from(mixed as u32) * n as u64) >> 32) as usize
}

/// The little-endian `u64` of 8 bytes of a record.
fn le64(bytes: &[u8]) -> u64 {
    u64::from_le_bytes(bytes.try_into().unwrap_or_default())
}

/// Which of `n` line ranges of `width` lines holds `line` (the last one takes any beyond).
fn range_of(line: u64, width: u64, n: usize) -> usize {
    usize::try_from(line / width).map_or(n - 1, |i| i.min(n - 1))
}

/// The repeats of a file, by line range, read back in file order.
pub(crate) struct Repeats {
    buckets: Vec<Option<File>>,
    width: u64,
    current: Option<usize>,
    /// The current range's repeats, by line: `(line, first line, key)`.
    loaded: Vec<(u64, u32, u64)>,
    pos: usize,
    found: u64,
}

/// The file changed between the passes: a row the first pass took for a repeat is not the same
/// address now.
pub(crate) const CHANGED: &str = "the file changed while it was being imported";

impl Repeats {
    /// How many repeats the first pass found.
    #[cfg(test)]
    pub(crate) fn found(&self) -> u64 {
        self.found
    }

    /// If the valid row at `line` with `key` repeats an earlier one, that one's line (as
    /// `Seen::insert` gives it). Lines must be asked in increasing order.
    pub(crate) fn first_of(&mut self, key: DedupKey, line: u64) -> io::Result<Option<u32>> {
        if self.found == 0 {
            return Ok(None);
        }
        let bucket = range_of(line, self.width, self.buckets.len());
        if self.current != Some(bucket) {
            self.load(bucket)?;
        }
        while let Some(&(l, first, k)) = self.loaded.get(self.pos) {
            if l > line {
                break;
            }
            self.pos += 1;
            if l == line {
                if k != key.raw() {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, CHANGED));
                }
                return Ok(Some(first));
            }
        }
        Ok(None)
    }

    fn load(&mut self, bucket: usize) -> io::Result<()> {
        self.loaded.clear();
        self.pos = 0;
        self.current = Some(bucket);
        let Some(file) = self.buckets.get_mut(bucket).and_then(Option::take) else {
            return Ok(());
        };
        let mut bytes = Vec::new();
        BufReader::new(file).read_to_end(&mut bytes)?;
        self.loaded.reserve(bytes.len() / REPEAT_RECORD);
        for r in bytes.chunks_exact(REPEAT_RECORD) {
            let line = le64(&r[..8]);
            let first = u32::from_le_bytes(r[8..12].try_into().unwrap_or_default());
            let key = le64(&r[12..]);
            self.loaded.push((line, first, key));
        }
        self.loaded.sort_unstable_by_key(|r| r.0);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u64) -> DedupKey {
        DedupKey::from_raw(n | 1 << 63)
    }

    /// The disk path tells every row exactly what the in-memory table tells it, over many files
    /// and line ranges, with lines past 32 bits.
    #[test]
    fn the_files_find_what_the_table_finds() {
        let rows = 3 * PART_ROWS + 1234;
        let mut spill = KeySpill::new(rows).unwrap();
        assert_eq!(spill.parts.len(), 4);
        let mut table = Seen::with_rows(rows as usize);
        let mut expected = Vec::new();
        let address = |i: u64| (i * 2_654_435_761) % (rows * 7 / 10);
        let line_of = |i: u64| {
            if i > rows - 100 {
                i + (1 << 33)
            } else {
                i * 2 + 2
            }
        };
        for i in 0..rows {
            let (k, line) = (key(address(i) + 1), line_of(i));
            spill.push(k, line).unwrap();
            expected.push(table.insert(k, u32::try_from(line).unwrap_or(u32::MAX)));
        }
        let mut repeats = spill.resolve().unwrap();
        let want = expected.iter().filter(|e| e.is_some()).count() as u64;
        assert!(want > rows / 4, "the test list has repeats: {want}");
        assert_eq!(repeats.found(), want);
        for i in 0..rows {
            let got = repeats.first_of(key(address(i) + 1), line_of(i)).unwrap();
            assert_eq!(got, expected[i as usize], "row {i}");
        }
    }

    #[test]
    fn a_changed_row_is_an_error_not_a_wrong_answer() {
        let mut spill = KeySpill::new(10).unwrap();
        spill.push(key(5), 2).unwrap();
        spill.push(key(5), 3).unwrap();
        let mut repeats = spill.resolve().unwrap();
        assert_eq!(repeats.first_of(key(5), 2).unwrap(), None);
        let e = repeats.first_of(key(6), 3).unwrap_err();
        assert_eq!(e.to_string(), CHANGED);
    }
}
