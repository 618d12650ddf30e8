//! The validation pass: one quick read of the whole upload that settles every whole-file
//! question (size, encoding, binary content, header, row count, runaway quotes) before a single
//! row reaches the sink.

use crate::error::FileError;
use crate::header::detect_delimiter;
use crate::model::{Delimiter, ImportOptions, TextEncoding};
use crate::split::{ByteBuf, SplitError, Splitter, is_blank};
use crate::text::{
    Bom, Counted, FieldDecode, Inspect, TextSource, binary_kind, decide, is_over_limit,
};
use std::io::{self, Cursor, Read, Seek, SeekFrom};

/// Bytes looked at to find the delimiter.
const HEAD_BYTES: u64 = 64 * 1024;

#[derive(Debug)]
pub(crate) struct Scan {
    pub(crate) bom: Bom,
    pub(crate) encoding: TextEncoding,
    pub(crate) decode: FieldDecode,
    pub(crate) delimiter: Delimiter,
    /// Header fields, decoded.
    pub(crate) header: Vec<String>,
    /// Non-blank data rows.
    pub(crate) rows: u64,
}

#[derive(Debug)]
pub(crate) enum Fail {
    File(FileError),
    Io(io::Error),
}

impl From<FileError> for Fail {
    fn from(e: FileError) -> Self {
        Fail::File(e)
    }
}

impl Fail {
    pub(crate) fn from_io(e: io::Error, max_bytes: u64) -> Fail {
        if is_over_limit(&e) {
            Fail::File(FileError::TooLarge { limit: max_bytes })
        } else {
            Fail::Io(e)
        }
    }

    pub(crate) fn from_split(e: SplitError, opts: &ImportOptions) -> Fail {
        match e {
            SplitError::Io(e) => Fail::from_io(e, opts.max_bytes),
            SplitError::RecordTooLong { line, .. } => Fail::File(FileError::RowTooLong {
                line,
                limit: opts.max_row_bytes,
            }),
        }
    }
}

fn read_up_to<R: Read>(input: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while let Some(rest) = buf.get_mut(n..) {
        if rest.is_empty() {
            break;
        }
        match input.read(rest) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Splits a record's bytes into fields by their end offsets.
pub(crate) fn fields<'a>(bytes: &'a [u8], ends: &'a [usize]) -> impl Iterator<Item = &'a [u8]> {
    let mut start = 0;
    ends.iter().map(move |&end| {
        let field = bytes.get(start..end).unwrap_or_default();
        start = end;
        field
    })
}

pub(crate) fn scan<R: Read + Seek>(input: &mut R, opts: &ImportOptions) -> Result<Scan, Fail> {
    let max_bytes = opts.max_bytes;
    let size = input.seek(SeekFrom::End(0)).map_err(Fail::Io)?;
    if size > max_bytes {
        return Err(FileError::TooLarge { limit: max_bytes }.into());
    }
    input.seek(SeekFrom::Start(0)).map_err(Fail::Io)?;
    let mut start = [0u8; 8];
    let n = read_up_to(input, &mut start).map_err(Fail::Io)?;
    let start = start.get(..n).unwrap_or_default();
    if let Some(what) = binary_kind(start) {
        return Err(FileError::NotCsv {
            reason: what.to_string(),
        }
        .into());
    }
    let bom = Bom::sniff(start);
    let looks_utf16_without_bom = bom == Bom::None && start.iter().take(4).any(|&b| b == 0);
    input.seek(SeekFrom::Start(0)).map_err(Fail::Io)?;

    let text = TextSource::open(Counted::new(&mut *input, max_bytes), bom)
        .map_err(|e| Fail::from_io(e, max_bytes))?;
    let mut inspect = Inspect::new(text, !bom.is_utf16());
    let mut head = Vec::new();
    (&mut inspect)
        .take(HEAD_BYTES)
        .read_to_end(&mut head)
        .map_err(|e| Fail::from_io(e, max_bytes))?;
    let delimiter = detect_delimiter(&head);
    let mut splitter = Splitter::new(
        Cursor::new(head).chain(&mut inspect),
        delimiter.as_byte(),
        opts.max_row_bytes,
    );
    let mut out = ByteBuf::with_capacity(64 * 1024);

    let mut header: Option<Vec<Vec<u8>>> = None;
    let mut rows = 0u64;
    loop {
        out.clear();
        let next = match splitter.next_record(&mut out) {
            Ok(next) => next,
            // A header too long to be a row is most likely one with too many columns: say so.
            Err(SplitError::RecordTooLong { fields, .. })
                if header.is_none() && fields >= opts.max_columns =>
            {
                return Err(FileError::TooManyColumns {
                    limit: opts.max_columns,
                }
                .into());
            }
            Err(e) => return Err(Fail::from_split(e, opts)),
        };
        if splitter.get_ref().get_ref().1.nul {
            break;
        }
        if next.is_none() {
            break;
        }
        if is_blank(out.as_slice()) {
            continue;
        }
        if header.is_none() {
            if splitter.ends().len() > opts.max_columns {
                return Err(FileError::TooManyColumns {
                    limit: opts.max_columns,
                }
                .into());
            }
            header = Some(
                fields(out.as_slice(), splitter.ends())
                    .map(<[u8]>::to_vec)
                    .collect(),
            );
            continue;
        }
        rows += 1;
        if rows > opts.max_rows {
            return Err(FileError::TooManyRows {
                limit: opts.max_rows,
            }
            .into());
        }
    }
    drop(splitter);
    if inspect.nul {
        let reason = if looks_utf16_without_bom {
            "it contains NUL bytes; it looks like UTF-16 text without a byte-order mark: \
             save it as UTF-8 (or UTF-16 with a BOM)"
        } else {
            "it contains NUL bytes, so it is a binary file, not text"
        };
        return Err(FileError::NotCsv {
            reason: reason.to_string(),
        }
        .into());
    }
    let valid_utf8 = inspect.utf8.as_ref().is_none_or(|c| c.is_valid());
    let (encoding, decode) = decide(bom, valid_utf8);
    let Some(header) = header else {
        return Err(FileError::Empty.into());
    };
    let header = header
        .iter()
        .map(|f| decode.decode(f).into_owned())
        .collect();
    Ok(Scan {
        bom,
        encoding,
        decode,
        delimiter,
        header,
        rows,
    })
}
