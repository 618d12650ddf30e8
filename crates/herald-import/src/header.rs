//! The header row: the delimiter, column names, and which column plays which part.

use crate::error::FileError;
use crate::model::{Delimiter, ImportOptions};
use herald_core::Channel;

/// Column names compare case- and space-insensitively: trimmed, lower-cased, and each run of
/// spaces, hyphens or underscores written as one `_` (`First Name` == `first_name` ==
/// `first-name`).
pub fn normalize_column(name: &str) -> String {
    let name = name.trim_matches(|c: char| c.is_whitespace() || c == '\u{FEFF}');
    let mut out = String::with_capacity(name.len());
    let mut gap = false;
    for c in name.chars() {
        if c.is_whitespace() || c == '-' || c == '_' {
            gap = true;
            continue;
        }
        if gap && !out.is_empty() {
            out.push('_');
        }
        gap = false;
        out.extend(c.to_lowercase());
    }
    out
}

/// Picks the delimiter from the header line: whichever of `,` `;` tab occurs most often outside
/// quotes (`,` on a tie or when none occurs).
pub(crate) fn detect_delimiter(text: &[u8]) -> Delimiter {
    let mut counts = [0usize; 3];
    let mut in_quotes = false;
    // Blank lines before the header are skipped, as the splitter skips them.
    let first = text
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b'\x0C'))
        .unwrap_or(text.len());
    for &b in text.get(first..).unwrap_or_default() {
        match b {
            b'"' => in_quotes = !in_quotes,
            b'\r' | b'\n' if !in_quotes => break,
            b',' if !in_quotes => counts[0] += 1,
            b';' if !in_quotes => counts[1] += 1,
            b'\t' if !in_quotes => counts[2] += 1,
            _ => {}
        }
    }
    let [comma, semicolon, tab] = counts;
    if semicolon > comma && semicolon >= tab {
        Delimiter::Semicolon
    } else if tab > comma && tab > semicolon {
        Delimiter::Tab
    } else {
        Delimiter::Comma
    }
}

const PHONE_COLUMNS: [&str; 4] = ["phone", "phone_number", "mobile", "number"];
const EMAIL_COLUMNS: [&str; 2] = ["email", "email_address"];
const TIMEZONE_COLUMNS: [&str; 3] = ["timezone", "time_zone", "tz"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ContactKind {
    Phone,
    Email,
}

/// What each column is for, decided once per import from the header.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// Header names as spelled in the file (trimmed).
    pub(crate) original: Vec<String>,
    /// Header names normalized ([`normalize_column`]).
    pub(crate) normalized: Vec<String>,
    pub(crate) contact: usize,
    pub(crate) kind: ContactKind,
    pub(crate) timezone: Option<usize>,
    /// Variable columns: index and normalized name.
    pub(crate) variables: Vec<(usize, String)>,
    /// Columns that must be non-empty in every accepted row (required variables).
    pub(crate) required: Vec<usize>,
}

impl Plan {
    pub(crate) fn new(header: &[String], opts: &ImportOptions) -> Result<Plan, FileError> {
        let original: Vec<String> = header
            .iter()
            .map(|h| {
                h.trim_matches(|c: char| c.is_whitespace() || c == '\u{FEFF}')
                    .to_string()
            })
            .collect();
        let found =
            || -> Vec<String> { original.iter().filter(|n| !n.is_empty()).cloned().collect() };
        if let Some(name) = original
            .iter()
            .find(|n| n.chars().any(|c| c.is_control() && c != '\t'))
        {
            return Err(FileError::NotCsv {
                reason: format!(
                    "the header row has control characters ({:?}); is this a text file?",
                    name.chars().take(40).collect::<String>()
                ),
            });
        }
        let normalized: Vec<String> = original.iter().map(|n| normalize_column(n)).collect();
        for (i, name) in normalized.iter().enumerate() {
            if name.is_empty() {
                continue;
            }
            if let Some(j) = normalized.iter().take(i).position(|other| other == name) {
                return Err(FileError::DuplicateColumn {
                    first: original.get(j).cloned().unwrap_or_default(),
                    second: original.get(i).cloned().unwrap_or_default(),
                    normalized: name.clone(),
                });
            }
        }
        let position = |names: &[&str]| {
            names
                .iter()
                .find_map(|want| normalized.iter().position(|n| n == want))
        };
        let (kind, aliases) = if opts.channel == Channel::Email {
            (ContactKind::Email, &EMAIL_COLUMNS[..])
        } else {
            (ContactKind::Phone, &PHONE_COLUMNS[..])
        };
        let Some(contact) = position(aliases) else {
            let expected = aliases.first().copied().unwrap_or("phone").to_string();
            let named: Vec<&String> = original.iter().filter(|n| !n.is_empty()).collect();
            if header.len() <= 1 {
                let reason = match named.first() {
                    Some(name) => format!(
                        "found a single column `{name}` and no `,`, `;` or tab between columns; \
                         a recipient list needs a `{expected}` column"
                    ),
                    None => format!("found no column names; expected a `{expected}` column"),
                };
                return Err(FileError::NotCsv { reason });
            }
            return Err(FileError::MissingContactColumn {
                expected,
                found: found(),
            });
        };
        let timezone = position(&TIMEZONE_COLUMNS);
        let variables: Vec<(usize, String)> = normalized
            .iter()
            .enumerate()
            .filter(|(i, n)| *i != contact && Some(*i) != timezone && !n.is_empty())
            .map(|(i, n)| (i, n.clone()))
            .collect();
        let mut required = Vec::new();
        for want in &opts.required_variables {
            let want_norm = normalize_column(want);
            if want_norm.is_empty() {
                continue;
            }
            match normalized.iter().position(|n| *n == want_norm) {
                Some(i) => required.push(i),
                None => {
                    return Err(FileError::MissingVariable {
                        name: want_norm,
                        found: found(),
                    });
                }
            }
        }
        required.sort_unstable();
        required.dedup();
        Ok(Plan {
            original,
            normalized,
            contact,
            kind,
            timezone,
            variables,
            required,
        })
    }

    pub(crate) fn column_name(&self, index: usize) -> String {
        self.original.get(index).cloned().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_normalize() {
        assert_eq!(normalize_column("  First Name "), "first_name");
        assert_eq!(normalize_column("first-name"), "first_name");
        assert_eq!(normalize_column("FIRST__NAME"), "first_name");
        assert_eq!(normalize_column("\u{FEFF}Phone"), "phone");
        assert_eq!(normalize_column("Straße"), "straße");
        assert_eq!(normalize_column(" - "), "");
    }

    #[test]
    fn delimiter_is_counted_outside_quotes() {
        assert_eq!(detect_delimiter(b"phone,name\n1;2;3;4"), Delimiter::Comma);
        assert_eq!(
            detect_delimiter(b"\"a,b,c\";phone;x\n"),
            Delimiter::Semicolon
        );
        assert_eq!(detect_delimiter(b"phone\tname\tx,y\r\n"), Delimiter::Tab);
        assert_eq!(detect_delimiter(b"phone\n"), Delimiter::Comma);
        assert_eq!(detect_delimiter(b"\n\nphone;x\n"), Delimiter::Semicolon);
    }
}
