//! Splits CSV text into records with `csv_core`, tracking the physical line each record starts
//! on and refusing records that grow past a bound (an unclosed quote would otherwise swallow
//! the rest of the file into one field).

use std::io::{self, Read};

const INPUT_BUFFER: usize = 256 * 1024;

/// Append-only byte storage that csv_core writes into without re-zeroing on every record.
#[derive(Debug, Default)]
pub(crate) struct ByteBuf {
    data: Vec<u8>,
    used: usize,
}

impl ByteBuf {
    pub(crate) fn with_capacity(n: usize) -> Self {
        Self {
            data: vec![0; n],
            used: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.used
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        self.data.get(..self.used).unwrap_or_default()
    }

    pub(crate) fn clear(&mut self) {
        self.used = 0;
    }

    pub(crate) fn truncate(&mut self, len: usize) {
        self.used = self.used.min(len);
    }

    fn spare(&mut self) -> &mut [u8] {
        if self.data.len() - self.used < 4096 {
            let new_len = (self.data.len() * 2).max(self.used + 64 * 1024);
            self.data.resize(new_len, 0);
        }
        self.data.get_mut(self.used..).unwrap_or_default()
    }
}

#[derive(Debug)]
pub(crate) enum SplitError {
    Io(io::Error),
    /// The record starting on `line` spans more than the splitter's bound; `fields` is how many
    /// fields it had ended by then.
    RecordTooLong {
        line: u64,
        fields: usize,
    },
}

impl From<io::Error> for SplitError {
    fn from(e: io::Error) -> Self {
        SplitError::Io(e)
    }
}

pub(crate) struct Splitter<R> {
    src: R,
    buf: Box<[u8]>,
    pos: usize,
    filled: usize,
    eof: bool,
    core: csv_core::Reader,
    /// Physical line (1-based) of the next unread byte.
    line: u64,
    ends: Vec<usize>,
    nends: usize,
    /// The most input bytes one record may span.
    max_record_bytes: usize,
}

impl<R: Read> Splitter<R> {
    /// Splits `src` on `delimiter`, refusing records that span more than `max_record_bytes`.
    pub(crate) fn new(src: R, delimiter: u8, max_record_bytes: usize) -> Self {
        Self {
            src,
            buf: vec![0; INPUT_BUFFER].into_boxed_slice(),
            pos: 0,
            filled: 0,
            eof: false,
            core: csv_core::ReaderBuilder::new().delimiter(delimiter).build(),
            line: 1,
            ends: vec![0; 64],
            nends: 0,
            max_record_bytes,
        }
    }

    pub(crate) fn get_ref(&self) -> &R {
        &self.src
    }

    /// End offsets of the last record's fields, relative to where its bytes start in `out`.
    pub(crate) fn ends(&self) -> &[usize] {
        self.ends.get(..self.nends).unwrap_or_default()
    }

    fn fill(&mut self) -> io::Result<()> {
        loop {
            match self.src.read(&mut self.buf) {
                Ok(0) => {
                    self.eof = true;
                    self.pos = 0;
                    self.filled = 0;
                    return Ok(());
                }
                Ok(n) => {
                    self.pos = 0;
                    self.filled = n.min(self.buf.len());
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads the next record, appending its field bytes to `out`; returns the line it starts
    /// on, or `None` at the end. Empty lines are skipped (as csv_core does).
    pub(crate) fn next_record(&mut self, out: &mut ByteBuf) -> Result<Option<u64>, SplitError> {
        // Skip line ends before the record so that `line` is where its first byte is.
        loop {
            if self.pos >= self.filled {
                if self.eof {
                    break;
                }
                self.fill()?;
                continue;
            }
            match self.buf.get(self.pos) {
                Some(b'\n') => {
                    self.line += 1;
                    self.pos += 1;
                }
                Some(b'\r') => self.pos += 1,
                _ => break,
            }
        }
        let start_line = self.line;
        let start = out.len();
        let mut nends = 0;
        let mut taken = 0usize;
        loop {
            if self.pos >= self.filled && !self.eof {
                self.fill()?;
            }
            if nends >= self.ends.len() {
                let len = self.ends.len() * 2;
                self.ends.resize(len, 0);
            }
            let input = self.buf.get(self.pos..self.filled).unwrap_or_default();
            let at_end = input.is_empty();
            let ends = self.ends.get_mut(nends..).unwrap_or_default();
            let (res, nin, nout, nend) = self.core.read_record(input, out.spare(), ends);
            let consumed = input.get(..nin).unwrap_or_default();
            self.line += memchr::memchr_iter(b'\n', consumed).count() as u64;
            self.pos += nin;
            out.used += nout;
            nends += nend;
            taken = taken.saturating_add(nin);
            if taken > self.max_record_bytes {
                return Err(SplitError::RecordTooLong {
                    line: start_line,
                    fields: nends,
                });
            }
            match res {
                csv_core::ReadRecordResult::Record => {
                    self.nends = nends;
                    return Ok(Some(start_line));
                }
                csv_core::ReadRecordResult::End => {
                    out.truncate(start);
                    self.nends = 0;
                    return Ok(None);
                }
                csv_core::ReadRecordResult::InputEmpty if at_end => {
                    // csv_core always ends with Record or End on empty input; be safe anyway.
                    out.truncate(start);
                    self.nends = 0;
                    return Ok(None);
                }
                _ => {}
            }
        }
    }
}

/// A record with nothing but ASCII whitespace is a blank line, skipped and counted apart.
pub(crate) fn is_blank(record_bytes: &[u8]) -> bool {
    record_bytes
        .iter()
        .all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b'\x0C'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(input: &[u8], delimiter: u8) -> Vec<(u64, Vec<String>)> {
        let mut s = Splitter::new(input, delimiter, 1 << 20);
        let mut out = ByteBuf::with_capacity(16);
        let mut records = Vec::new();
        while let Some(line) = s.next_record(&mut out).unwrap() {
            let bytes = out.as_slice();
            let mut start = 0;
            let fields = s
                .ends()
                .iter()
                .map(|&end| {
                    let f = String::from_utf8(bytes[start..end].to_vec()).unwrap();
                    start = end;
                    f
                })
                .collect();
            records.push((line, fields));
            out.clear();
        }
        records
    }

    #[test]
    fn lines_are_where_records_start() {
        let expect = |input: &[u8], lines: &[u64]| {
            let got: Vec<u64> = split(input, b',').into_iter().map(|(l, _)| l).collect();
            assert_eq!(got, lines, "{:?}", String::from_utf8_lossy(input));
        };
        expect(b"h1,h2\na,b\nc,d\n", &[1, 2, 3]);
        expect(b"h1,h2\r\na,b\r\nc,d\r\n", &[1, 2, 3]);
        expect(b"h1,h2\n\n\na,b\n\"x\ny\",d\ne,f", &[1, 4, 5, 7]);
        expect(b"h1,h2\r\n\r\na,b\r\n\"x\r\ny\",d\r\ne,f", &[1, 3, 4, 6]);
        expect(b"\n\nh\na", &[3, 4]);
    }

    #[test]
    fn fields_are_unquoted() {
        let r = split(b"a;\"b;\"\"c\"\"\";\nx;y;z", b';');
        assert_eq!(r[0].1, vec!["a", "b;\"c\"", ""]);
        assert_eq!(r[1].1, vec!["x", "y", "z"]);
    }

    #[test]
    fn an_open_quote_stops_at_the_bound() {
        let mut input = b"h\n\"".to_vec();
        input.extend(std::iter::repeat_n(b'x', 64 * 1024 + 10));
        let mut s = Splitter::new(&input[..], b',', 64 * 1024);
        let mut out = ByteBuf::default();
        assert_eq!(s.next_record(&mut out).unwrap(), Some(1));
        out.clear();
        assert!(matches!(
            s.next_record(&mut out),
            Err(SplitError::RecordTooLong { line: 2, fields: 0 })
        ));
    }

    #[test]
    fn big_records_grow_the_buffers() {
        let long = "y".repeat(300_000);
        let many = vec!["f"; 1000].join(",");
        let input = format!("h\n{long}\n{many}\n");
        let r = split(input.as_bytes(), b',');
        assert_eq!(r[1].1, vec![long]);
        assert_eq!(r[2].1.len(), 1000);
    }
}
