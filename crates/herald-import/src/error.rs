//! Why an import was refused or failed.

use std::fmt;

/// A problem with the whole file: the upload is refused and nothing reaches the sink.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    #[error("the file is empty: it has no header row")]
    Empty,
    #[error("the file has a header row but no recipient rows")]
    NoRows,
    #[error("this is not a CSV file: {reason}")]
    NotCsv { reason: String },
    #[error("column `{expected}` is missing; found: {}", List(found))]
    MissingContactColumn {
        /// The canonical contact column for the channel (`phone` or `email`).
        expected: String,
        /// The header's columns as spelled in the file.
        found: Vec<String>,
    },
    #[error(
        "the answer uses the variable `{name}` but the file has no `{name}` column; found: {}",
        List(found)
    )]
    MissingVariable { name: String, found: Vec<String> },
    #[error("columns `{first}` and `{second}` both name the variable `{normalized}`; rename one")]
    DuplicateColumn {
        first: String,
        second: String,
        normalized: String,
    },
    #[error("the file is larger than the limit of {}", Bytes(*limit))]
    TooLarge { limit: u64 },
    #[error("the file has more than {limit} rows, the most one upload may have")]
    TooManyRows { limit: u64 },
    #[error(
        "the row starting at line {line} is longer than {}, the most one row may have; \
         is a quote (\") left open?",
        Bytes(*limit as u64)
    )]
    RowTooLong { line: u64, limit: usize },
    #[error(
        "the header row has more than {limit} columns, the most one upload may have; keep the \
         contact column and the variables the answer uses"
    )]
    TooManyColumns { limit: usize },
}

/// Why [`crate::import`] returned no summary.
#[derive(Debug, thiserror::Error)]
pub enum ImportError<E: std::error::Error + 'static> {
    /// The file was refused (see [`FileError`]).
    #[error(transparent)]
    File(#[from] FileError),
    /// The sink failed; the import stopped there.
    #[error("storing the recipients failed: {0}")]
    Sink(#[source] E),
    /// Reading the upload failed.
    #[error("reading the upload failed: {0}")]
    Io(#[from] std::io::Error),
    /// The options cannot be used (unknown default region, chat channel, batch size 0).
    #[error("{0}")]
    Options(String),
}

struct List<'a>(&'a [String]);

impl fmt::Display for List<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("no columns");
        }
        // A header may have hundreds of columns: name enough of them to recognise the file.
        const SHOWN: usize = 20;
        for (i, name) in self.0.iter().take(SHOWN).enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            if name.chars().count() > 64 {
                let cut: String = name.chars().take(64).collect();
                write!(f, "{cut}…")?;
            } else {
                f.write_str(name)?;
            }
        }
        if self.0.len() > SHOWN {
            write!(f, " and {} more", self.0.len() - SHOWN)?;
        }
        Ok(())
    }
}

struct Bytes(u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
        for (unit, size) in UNITS {
            if self.0 >= size && self.0.is_multiple_of(size) {
                return write!(f, "{} {unit}", self.0 / size);
            }
        }
        write!(f, "{} bytes", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_what_to_fix() {
        let e = FileError::MissingContactColumn {
            expected: "phone".into(),
            found: vec!["Phone Number".into(), "Name".into()],
        };
        assert_eq!(
            e.to_string(),
            "column `phone` is missing; found: Phone Number, Name"
        );
        assert_eq!(
            FileError::TooLarge { limit: 1 << 30 }.to_string(),
            "the file is larger than the limit of 1 GiB"
        );
        assert_eq!(
            FileError::TooLarge { limit: 1000 }.to_string(),
            "the file is larger than the limit of 1000 bytes"
        );
    }
}
