//! The header row: the delimiter, column names, and which column plays which part.

use crate::error::FileError;
use crate::model::{Delimiter, ImportOptions};
use herald_core::Channel;
use std::collections::HashMap;

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
        // Each name's first column, in one pass: the duplicate check and every look-up below
        // stay linear in the number of columns.
        let mut first_of: HashMap<&str, usize> = HashMap::with_capacity(normalized.len());
        for (i, name) in normalized.iter().enumerate() {
            if name.is_empty() {
                continue;
            }
            if let Some(&j) = first_of.get(name.as_str()) {
                return Err(FileError::DuplicateColumn {
                    first: original.get(j).cloned().unwrap_or_default(),
                    second: original.get(i).cloned().unwrap_or_default(),
                    normalized: name.clone(),
                });
            }
            first_of.insert(name, i);
        }
        let position = |names: &[&str]| names.iter().find_map(|want| first_of.get(want).copied());
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
            match first_of.get(want_norm.as_str()).copied() {
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

    fn wide_header(columns: usize) -> Vec<String> {
        let mut header = vec!["phone".to_string()];
        header.extend((1..columns).map(|i| format!("Column {i}")));
        header
    }

    #[test]
    fn the_header_check_is_linear_in_the_columns() {
        // 200,000 columns: a pairwise check is 2e10 comparisons (minutes); one pass is a blink.
        // The bound is generous for a loaded machine and a debug build, and far below quadratic.
        let mut header = wide_header(200_000);
        let opts = ImportOptions::new(Channel::Sms);
        let started = std::time::Instant::now();
        let plan = Plan::new(&header, &opts).expect("distinct columns");
        assert_eq!(plan.variables.len(), 199_999);
        assert_eq!(plan.contact, 0);

        // The duplicate is the very last column, as far as possible from its first.
        header.push("COLUMN-1".into());
        match Plan::new(&header, &opts) {
            Err(FileError::DuplicateColumn {
                first,
                second,
                normalized,
            }) => {
                assert_eq!(
                    (first.as_str(), second.as_str(), normalized.as_str()),
                    ("Column 1", "COLUMN-1", "column_1")
                );
            }
            other => panic!("expected a duplicate column, got {other:?}"),
        }
        let elapsed = started.elapsed();
        assert!(
            elapsed < std::time::Duration::from_secs(10),
            "two header checks of 200,000 columns took {elapsed:?}"
        );
    }

    #[test]
    fn required_variables_are_found_among_many_columns() {
        let header = wide_header(50_000);
        let mut opts = ImportOptions::new(Channel::Sms);
        opts.required_variables.insert("column 49999".into());
        opts.required_variables.insert("Column-7".into());
        let plan = Plan::new(&header, &opts).expect("plan");
        assert_eq!(plan.required, vec![7, 49_999]);
        opts.required_variables.insert("nickname".into());
        match Plan::new(&header, &opts) {
            Err(FileError::MissingVariable { name, found }) => {
                assert_eq!(name, "nickname");
                assert_eq!(found.len(), 50_000);
                // The message names the first columns, not fifty thousand of them.
                let message = FileError::MissingVariable { name, found }.to_string();
                assert!(message.len() < 1_000, "{}", message.len());
                assert!(message.ends_with("and 49980 more"), "{message}");
            }
            other => panic!("expected a missing variable, got {other:?}"),
        }
    }
}
