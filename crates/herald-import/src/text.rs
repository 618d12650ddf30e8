//! Bytes to text: byte-order marks, UTF-16 transcoding, UTF-8 validation, Windows-1252
//! fallback, and the byte counter that enforces the size limit.

use crate::model::TextEncoding;
use encoding_rs_io::{DecodeReaderBytes, DecodeReaderBytesBuilder};
use std::borrow::Cow;
use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The byte-order mark a file starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bom {
    None,
    Utf8,
    Utf16Le,
    Utf16Be,
}

impl Bom {
    pub(crate) fn sniff(start: &[u8]) -> Bom {
        if start.starts_with(b"\xEF\xBB\xBF") {
            Bom::Utf8
        } else if start.starts_with(b"\xFF\xFE") {
            Bom::Utf16Le
        } else if start.starts_with(b"\xFE\xFF") {
            Bom::Utf16Be
        } else {
            Bom::None
        }
    }

    fn len(self) -> usize {
        match self {
            Bom::None => 0,
            Bom::Utf8 => 3,
            Bom::Utf16Le | Bom::Utf16Be => 2,
        }
    }

    pub(crate) fn is_utf16(self) -> bool {
        matches!(self, Bom::Utf16Le | Bom::Utf16Be)
    }
}

/// How field bytes (after any transcoding) become text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldDecode {
    /// UTF-8; invalid sequences (possible only in a file that declares UTF-8 with a BOM)
    /// become U+FFFD.
    Utf8,
    Windows1252,
}

impl FieldDecode {
    pub(crate) fn decode(self, bytes: &[u8]) -> Cow<'_, str> {
        match self {
            FieldDecode::Utf8 => match simdutf8::basic::from_utf8(bytes) {
                Ok(s) => Cow::Borrowed(s),
                Err(_) => String::from_utf8_lossy(bytes),
            },
            FieldDecode::Windows1252 => {
                encoding_rs::WINDOWS_1252
                    .decode_without_bom_handling(bytes)
                    .0
            }
        }
    }
}

/// Marks the I/O error raised when the upload grows past `max_bytes`.
#[derive(Debug)]
pub(crate) struct OverLimit;

impl std::fmt::Display for OverLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the upload is larger than the limit")
    }
}

impl std::error::Error for OverLimit {}

pub(crate) fn is_over_limit(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<OverLimit>())
}

/// Counts the raw bytes read and refuses to read past the limit.
pub(crate) struct Counted<R> {
    inner: R,
    count: Arc<AtomicU64>,
    limit: u64,
}

impl<R> Counted<R> {
    pub(crate) fn new(inner: R, limit: u64) -> Self {
        Self {
            inner,
            count: Arc::new(AtomicU64::new(0)),
            limit,
        }
    }

    pub(crate) fn counter(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.count)
    }
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let total = self.count.load(Ordering::Relaxed).saturating_add(n as u64);
        self.count.store(total, Ordering::Relaxed);
        if total > self.limit {
            return Err(io::Error::other(OverLimit));
        }
        Ok(n)
    }
}

/// The file as a stream of ASCII-compatible text bytes for the CSV splitter: the BOM skipped,
/// UTF-16 transcoded to UTF-8, anything else passed through.
pub(crate) enum TextSource<R: Read> {
    Raw(Counted<R>),
    Utf16(Box<DecodeReaderBytes<Counted<R>, Vec<u8>>>),
}

impl<R: Read> TextSource<R> {
    /// `input` must be at the start of the file.
    pub(crate) fn open(mut input: Counted<R>, bom: Bom) -> io::Result<Self> {
        let mut skip = [0u8; 3];
        let n = bom.len();
        if let Some(skip) = skip.get_mut(..n) {
            input.read_exact(skip)?;
        }
        Ok(match bom {
            Bom::None | Bom::Utf8 => TextSource::Raw(input),
            Bom::Utf16Le | Bom::Utf16Be => {
                let encoding = if bom == Bom::Utf16Le {
                    encoding_rs::UTF_16LE
                } else {
                    encoding_rs::UTF_16BE
                };
                TextSource::Utf16(Box::new(
                    DecodeReaderBytesBuilder::new()
                        .encoding(Some(encoding))
                        .bom_sniffing(false)
                        .build(input),
                ))
            }
        })
    }
}

impl<R: Read> Read for TextSource<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            TextSource::Raw(r) => r.read(buf),
            TextSource::Utf16(r) => r.read(buf),
        }
    }
}

/// Validates UTF-8 over a stream of chunks, handling sequences split across chunk boundaries.
#[derive(Debug, Default)]
pub(crate) struct Utf8Check {
    carry: [u8; 4],
    carry_len: usize,
    invalid: bool,
}

impl Utf8Check {
    pub(crate) fn is_valid(&self) -> bool {
        !self.invalid
    }

    pub(crate) fn feed(&mut self, mut data: &[u8]) {
        if self.invalid || data.is_empty() {
            return;
        }
        if self.carry_len > 0 {
            let need: usize = match self.carry[0] {
                0xC0..=0xDF => 2,
                0xE0..=0xEF => 3,
                _ => 4,
            };
            let take = need.saturating_sub(self.carry_len).min(data.len());
            let (head, rest) = data.split_at(take);
            for &b in head {
                if let Some(slot) = self.carry.get_mut(self.carry_len) {
                    *slot = b;
                    self.carry_len += 1;
                }
            }
            if self.carry_len < need {
                return; // still incomplete: wait for more
            }
            if validate(&self.carry[..self.carry_len]).is_err() {
                self.invalid = true;
                return;
            }
            self.carry_len = 0;
            data = rest;
        }
        if let Err(e) = validate(data) {
            match e.error_len() {
                Some(_) => self.invalid = true,
                None => {
                    let tail = data.get(e.valid_up_to()..).unwrap_or_default();
                    if tail.len() >= 4 {
                        self.invalid = true;
                        return;
                    }
                    self.carry[..tail.len()].copy_from_slice(tail);
                    self.carry_len = tail.len();
                }
            }
        }
    }

    /// Call at the end of the stream: a sequence cut off by the end is invalid.
    pub(crate) fn finish(&mut self) {
        if self.carry_len > 0 {
            self.invalid = true;
        }
    }
}

/// `simdutf8` measured faster than `std::str::from_utf8` on non-ASCII text and equal on ASCII
/// (see `examples/utf8bench.rs`); both report the same error positions.
fn validate(data: &[u8]) -> Result<(), simdutf8::compat::Utf8Error> {
    simdutf8::compat::from_utf8(data).map(|_| ())
}

/// Looks at every text byte on its way to the splitter during the validation pass.
pub(crate) struct Inspect<R> {
    inner: R,
    /// UTF-8 validation, for files not transcoded from UTF-16.
    pub(crate) utf8: Option<Utf8Check>,
    /// A NUL byte was seen: binary content.
    pub(crate) nul: bool,
}

impl<R> Inspect<R> {
    pub(crate) fn new(inner: R, check_utf8: bool) -> Self {
        Self {
            inner,
            utf8: check_utf8.then(Utf8Check::default),
            nul: false,
        }
    }
}

impl<R: Read> Read for Inspect<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let data = buf.get(..n).unwrap_or_default();
        if !self.nul && memchr::memchr(0, data).is_some() {
            self.nul = true;
        }
        if let Some(check) = &mut self.utf8 {
            if n == 0 {
                check.finish();
            } else {
                check.feed(data);
            }
        }
        Ok(n)
    }
}

/// Which encoding a file is read in, and how its fields decode.
pub(crate) fn decide(bom: Bom, valid_utf8: bool) -> (TextEncoding, FieldDecode) {
    match bom {
        Bom::Utf16Le => (TextEncoding::Utf16Le, FieldDecode::Utf8),
        Bom::Utf16Be => (TextEncoding::Utf16Be, FieldDecode::Utf8),
        Bom::Utf8 => (TextEncoding::Utf8, FieldDecode::Utf8),
        Bom::None if valid_utf8 => (TextEncoding::Utf8, FieldDecode::Utf8),
        Bom::None => (TextEncoding::Windows1252, FieldDecode::Windows1252),
    }
}

/// A short name for what a binary file probably is, from its first bytes.
pub(crate) fn binary_kind(start: &[u8]) -> Option<&'static str> {
    const MAGIC: [(&[u8], &str); 5] = [
        (
            b"PK\x03\x04",
            "it is a ZIP archive (an Excel .xlsx or OpenDocument spreadsheet?); save it as CSV",
        ),
        (
            b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1",
            "it is an old Excel (.xls) or Office file; save it as CSV",
        ),
        (b"%PDF-", "it is a PDF document"),
        (b"\x1F\x8B", "it is gzip-compressed; decompress it first"),
        (b"\x89PNG", "it is a PNG image"),
    ];
    MAGIC
        .iter()
        .find(|(magic, _)| start.starts_with(magic))
        .map(|(_, what)| *what)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_in_pieces(data: &[u8], piece: usize) -> bool {
        let mut c = Utf8Check::default();
        for chunk in data.chunks(piece.max(1)) {
            c.feed(chunk);
        }
        c.finish();
        c.is_valid()
    }

    #[test]
    fn utf8_check_handles_sequences_split_across_chunks() {
        let text = "aé€𝄞ü,ß\n".repeat(5);
        for piece in 1..12 {
            assert!(check_in_pieces(text.as_bytes(), piece), "piece {piece}");
        }
        let mut bad = text.clone().into_bytes();
        bad.insert(3, 0xE9); // a lone Windows-1252 é
        for piece in 1..12 {
            assert!(!check_in_pieces(&bad, piece), "piece {piece}");
        }
        // Cut off at the end.
        let cut = &text.as_bytes()[..2];
        assert!(!check_in_pieces(cut, 1));
        assert!(!check_in_pieces(cut, 5));
    }

    proptest::proptest! {
        #[test]
        fn utf8_check_agrees_with_std(
            data in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::strategy::Just(0xC3u8), proptest::strategy::Just(0xA9u8),
                    proptest::strategy::Just(0xE2u8), proptest::strategy::Just(0x82u8),
                    proptest::strategy::Just(0xACu8), proptest::strategy::Just(0xF0u8),
                    proptest::strategy::Just(0x9Fu8), proptest::strategy::Just(b'a'),
                    proptest::arbitrary::any::<u8>(),
                ],
                0..64,
            ),
            piece in 1usize..9,
        ) {
            proptest::prop_assert_eq!(check_in_pieces(&data, piece), std::str::from_utf8(&data).is_ok());
        }
    }

    #[test]
    fn windows_1252_decodes_the_upper_half() {
        assert_eq!(
            FieldDecode::Windows1252.decode(b"Jos\xE9 M\xFCller \x80"),
            "José Müller €"
        );
    }
}
