//! The error report a person downloads: `line,column,value,reason` as CSV, safe to open in a
//! spreadsheet.

use crate::model::RowError;
use std::io::{self, Write};

/// Makes a cell safe to open in a spreadsheet: one that starts with `=`, `+`, `-`, `@`, tab or
/// carriage return (which a spreadsheet may run as a formula) gets a leading `'`.
pub fn neutralize_cell(s: &str) -> String {
    match s.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{s}"),
        _ => s.to_string(),
    }
}

/// Writes `errors` as a CSV report with the header `line,column,value,reason`, every text cell
/// neutralized (see [`neutralize_cell`]).
pub fn write_error_report<'a, W: Write>(
    errors: impl IntoIterator<Item = &'a RowError>,
    w: W,
) -> io::Result<()> {
    let mut out = csv::Writer::from_writer(w);
    out.write_record(["line", "column", "value", "reason"])?;
    for e in errors {
        out.write_record([
            e.line.to_string(),
            neutralize_cell(e.column.as_deref().unwrap_or("")),
            neutralize_cell(&e.value),
            neutralize_cell(&e.reason),
        ])?;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_starts_are_neutralized() {
        assert_eq!(neutralize_cell("=1+1"), "'=1+1");
        assert_eq!(neutralize_cell("+14155550123"), "'+14155550123");
        assert_eq!(neutralize_cell("-x"), "'-x");
        assert_eq!(neutralize_cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(neutralize_cell("\tx"), "'\tx");
        assert_eq!(neutralize_cell("\rx"), "'\rx");
        assert_eq!(neutralize_cell("Jane"), "Jane");
        assert_eq!(neutralize_cell(""), "");
    }

    #[test]
    fn report_is_csv_with_a_header() {
        let errors = [
            RowError {
                line: 3,
                column: Some("Phone".into()),
                value: "=HYPERLINK(\"x\")".into(),
                reason: "`=HYPERLINK(\"x\")` is not a phone number".into(),
            },
            RowError {
                line: 4,
                column: None,
                value: String::new(),
                reason: "expected 3 fields, found 2".into(),
            },
        ];
        let mut out = Vec::new();
        write_error_report(&errors, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "line,column,value,reason\n\
             3,Phone,\"'=HYPERLINK(\"\"x\"\")\",\"`=HYPERLINK(\"\"x\"\")` is not a phone number\"\n\
             4,,,\"expected 3 fields, found 2\"\n"
        );
    }
}
