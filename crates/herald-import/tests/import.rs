//! Imports of real files from `tests/fixtures/` (made by `fixtures/make_fixtures.py`): every
//! dialect, every row error, every whole-file refusal, with exact summaries.

use herald_core::{Address, Channel};
use herald_import::{
    CollectSink, Delimiter, FileError, ImportError, ImportOptions, ImportSink, ImportSummary,
    Recipient, RowError, TextEncoding, import, no_suppressions, write_error_report,
};
use std::convert::Infallible;
use std::io::Cursor;

type Outcome = (Result<ImportSummary, ImportError<Infallible>>, CollectSink);

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn sms() -> ImportOptions {
    let mut opts = ImportOptions::new(Channel::Sms);
    opts.default_region = Some("US".into());
    opts
}

fn run_with(
    bytes: Vec<u8>,
    opts: &ImportOptions,
    hook: &(dyn Fn(&Address) -> bool + Sync),
) -> Outcome {
    let mut sink = CollectSink::default();
    let result = import(Cursor::new(bytes), opts, hook, &mut sink, &|_| {});
    (result, sink)
}

fn run(name: &str, opts: &ImportOptions) -> Outcome {
    run_with(fixture(name), opts, &no_suppressions)
}

fn ok(outcome: Outcome) -> (ImportSummary, CollectSink) {
    let (result, sink) = outcome;
    let summary = result.unwrap_or_else(|e| panic!("import failed: {e}"));
    assert_eq!(
        sink.finished.as_ref(),
        Some(&summary),
        "finish gets the summary"
    );
    assert_eq!(sink.recipients.len() as u64, summary.accepted);
    assert_eq!(
        summary.rows,
        summary.accepted + summary.invalid + summary.duplicates
    );
    (summary, sink)
}

fn refused(outcome: Outcome) -> FileError {
    let (result, sink) = outcome;
    assert_eq!(sink.calls, 0, "a refused file reaches the sink not at all");
    match result {
        Err(ImportError::File(e)) => e,
        other => panic!("expected a file error, got {other:?}"),
    }
}

fn summary(encoding: TextEncoding, delimiter: Delimiter) -> ImportSummary {
    ImportSummary {
        rows: 3,
        accepted: 3,
        invalid: 0,
        duplicates: 0,
        suppressed: 0,
        blank: 0,
        encoding,
        delimiter,
        contact_column: "Phone".into(),
        timezone_column: Some("Timezone".into()),
        variables: vec!["first_name".into(), "last_name".into(), "plan".into()],
    }
}

fn phone(s: &str) -> Address {
    Address::Phone(herald_core::E164::parse(s, None).unwrap())
}

fn basic_recipients() -> Vec<Recipient> {
    vec![
        Recipient {
            line: 2,
            address: phone("+14155552671"),
            raw_contact: Some(String::new()),
            timezone: Some("America/New_York".into()),
            variables_json: r#"{"first_name":"Jane","last_name":"Doe","plan":"pro"}"#.into(),
            suppressed: false,
        },
        Recipient {
            line: 3,
            address: phone("+14155552672"),
            raw_contact: Some(String::new()),
            timezone: None,
            variables_json: r#"{"first_name":"John","last_name":"Smith","plan":"basic"}"#.into(),
            suppressed: false,
        },
        Recipient {
            line: 4,
            address: phone("+442079460958"),
            raw_contact: Some(String::new()),
            timezone: Some("Europe/London".into()),
            variables_json: r#"{"first_name":"Amélie","last_name":"Müller","plan":"pro"}"#.into(),
            suppressed: false,
        },
    ]
}

#[test]
fn every_dialect_reads_the_same_recipients() {
    let cases = [
        ("comma.csv", TextEncoding::Utf8, Delimiter::Comma),
        ("semicolon.csv", TextEncoding::Utf8, Delimiter::Semicolon),
        ("tab.tsv", TextEncoding::Utf8, Delimiter::Tab),
        ("crlf.csv", TextEncoding::Utf8, Delimiter::Comma),
        ("bom_utf8.csv", TextEncoding::Utf8, Delimiter::Comma),
        ("utf16le.csv", TextEncoding::Utf16Le, Delimiter::Comma),
        ("utf16be.csv", TextEncoding::Utf16Be, Delimiter::Semicolon),
        (
            "windows1252.csv",
            TextEncoding::Windows1252,
            Delimiter::Semicolon,
        ),
    ];
    for (name, encoding, delimiter) in cases {
        let (summary_got, sink) = ok(run(name, &sms()));
        assert_eq!(summary_got, summary(encoding, delimiter), "{name}");
        assert_eq!(sink.recipients, basic_recipients(), "{name}");
        assert!(sink.row_errors.is_empty(), "{name}: {:?}", sink.row_errors);
    }
}

#[test]
fn summary_serializes_with_encoding_names() {
    let (s, _) = ok(run("windows1252.csv", &sms()));
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["encoding"], "windows-1252");
    assert_eq!(json["delimiter"], ";");
    let (s, _) = ok(run("tab.tsv", &sms()));
    assert_eq!(serde_json::to_value(&s).unwrap()["delimiter"], "\t");
}

#[test]
fn quoted_fields_keep_their_line_breaks_and_lines_follow_the_file() {
    let (s, sink) = ok(run("quoted_newline.csv", &sms()));
    assert_eq!((s.rows, s.accepted, s.blank), (3, 3, 0));
    let lines: Vec<u64> = sink.recipients.iter().map(|r| r.line).collect();
    assert_eq!(lines, [2, 4, 7]);
    assert_eq!(
        sink.recipients[0].variables_json,
        r#"{"note":"line one\nline two","first_name":"Jane"}"#
    );
    assert_eq!(
        sink.recipients[1].variables_json,
        r#"{"note":"say \"hi\", then\r\nleave","first_name":"John"}"#
    );
    assert_eq!(s.timezone_column, None);
}

#[test]
fn each_row_error_names_line_column_value_and_reason() {
    let mut opts = sms();
    opts.required_variables.insert("First Name".into());
    let (s, sink) = ok(run("row_errors.csv", &opts));
    assert_eq!(
        (s.rows, s.accepted, s.invalid, s.duplicates),
        (8, 1, 7, 0),
        "{:#?}",
        sink.row_errors
    );
    assert_eq!(sink.recipients[0].line, 9);
    let got: Vec<(u64, Option<&str>, &str, &str)> = sink
        .row_errors
        .iter()
        .map(|e| {
            (
                e.line,
                e.column.as_deref(),
                e.value.as_str(),
                e.reason.as_str(),
            )
        })
        .collect();
    let want: Vec<(u64, Option<&str>, &str, &str)> = vec![
        (
            2,
            Some("phone"),
            "call me",
            "`call me` is not a phone number",
        ),
        (
            3,
            Some("phone"),
            "+1 555",
            "`+1 555` is not a valid phone number for its country",
        ),
        (
            4,
            Some("timezone"),
            "Mars/Olympus_Mons",
            "`Mars/Olympus_Mons` is not a known IANA time zone (e.g. Europe/Berlin)",
        ),
        (
            5,
            Some("first_name"),
            "",
            "`first_name` is empty, but the answer uses it",
        ),
        (6, None, "", "expected 3 fields, found 2"),
        (7, None, "", "expected 3 fields, found 4"),
        (
            8,
            Some("phone"),
            "nonsense",
            "`nonsense` is not a phone number",
        ),
        (
            8,
            Some("timezone"),
            "Nowhere/Zone",
            "`Nowhere/Zone` is not a known IANA time zone (e.g. Europe/Berlin)",
        ),
        (
            8,
            Some("first_name"),
            "",
            "`first_name` is empty, but the answer uses it",
        ),
    ];
    assert_eq!(got, want);
}

#[test]
fn without_required_variables_an_empty_one_is_fine() {
    let (s, _) = ok(run("row_errors.csv", &sms()));
    assert_eq!((s.accepted, s.invalid), (2, 6));
}

#[test]
fn without_a_default_region_national_numbers_need_a_country() {
    let mut opts = sms();
    opts.default_region = None;
    let (s, sink) = ok(run("comma.csv", &opts));
    assert_eq!((s.accepted, s.invalid), (2, 1));
    assert_eq!(sink.row_errors[0].line, 3);
    assert!(
        sink.row_errors[0].reason.contains("no country code"),
        "{:?}",
        sink.row_errors
    );
}

#[test]
fn duplicates_are_found_on_the_normalized_address_first_row_wins() {
    let (s, sink) = ok(run("duplicates.csv", &sms()));
    assert_eq!((s.rows, s.accepted, s.duplicates, s.invalid), (5, 2, 3, 0));
    let lines: Vec<u64> = sink.recipients.iter().map(|r| r.line).collect();
    assert_eq!(lines, [2, 4]);
    assert_eq!(sink.recipients[0].variables_json, r#"{"name":"first"}"#);
    let dups: Vec<(u64, &str, &str)> = sink
        .row_errors
        .iter()
        .map(|e| (e.line, e.value.as_str(), e.reason.as_str()))
        .collect();
    assert_eq!(
        dups,
        [
            (3, "+14155552671", "duplicate of line 2"),
            (5, "+14155552671", "duplicate of line 2"),
            (6, "+14155552672", "duplicate of line 4"),
        ]
    );
    assert!(
        sink.row_errors
            .iter()
            .all(|e| e.column.as_deref() == Some("phone"))
    );
}

#[test]
fn email_lists_lowercase_the_domain_and_dedupe_on_it() {
    let opts = ImportOptions::new(Channel::Email);
    let (s, sink) = ok(run("email.csv", &opts));
    assert_eq!((s.rows, s.accepted, s.invalid, s.duplicates), (5, 2, 2, 1));
    assert_eq!(s.contact_column, "Email Address");
    let addresses: Vec<&str> = sink.recipients.iter().map(|r| r.address.as_str()).collect();
    assert_eq!(addresses, ["Jane.Doe@example.com", "john@example.org"]);
    let errors: Vec<(u64, &str)> = sink
        .row_errors
        .iter()
        .map(|e| (e.line, e.reason.as_str()))
        .collect();
    assert_eq!(
        errors,
        [
            (3, "duplicate of line 2"),
            (
                4,
                "`root@localhost` has no domain with a dot (like example.com)"
            ),
            (5, "`not an email` is not a valid email address"),
        ]
    );
}

#[test]
fn the_suppression_hook_flags_rows_which_are_still_accepted() {
    let hook = |a: &Address| a.as_str().starts_with("+44");
    let (s, sink) = ok(run_with(fixture("comma.csv"), &sms(), &hook));
    assert_eq!((s.accepted, s.suppressed), (3, 1));
    let flags: Vec<bool> = sink.recipients.iter().map(|r| r.suppressed).collect();
    assert_eq!(flags, [false, false, true]);
}

#[test]
fn batches_arrive_in_line_order_and_bounded_size() {
    struct Batches {
        recipients: Vec<usize>,
        errors: Vec<usize>,
        last_line: u64,
        finished: bool,
    }
    impl ImportSink for Batches {
        type Error = Infallible;
        fn recipients(&mut self, batch: Vec<Recipient>) -> Result<(), Infallible> {
            for r in &batch {
                assert!(r.line > self.last_line);
                self.last_line = r.line;
            }
            self.recipients.push(batch.len());
            Ok(())
        }
        fn row_errors(&mut self, batch: Vec<RowError>) -> Result<(), Infallible> {
            self.errors.push(batch.len());
            Ok(())
        }
        fn finish(&mut self, _: &ImportSummary) -> Result<(), Infallible> {
            self.finished = true;
            Ok(())
        }
    }
    let mut csv = String::from("phone,n\n");
    for i in 0..10_000 {
        // Every 10th is a duplicate of the row before it.
        let n = if i % 10 == 9 { i - 1 } else { i };
        csv.push_str(&format!("+1415555{:04},{i}\n", n));
    }
    let mut opts = sms();
    opts.batch_size = 1000;
    opts.workers = 3;
    let mut sink = Batches {
        recipients: vec![],
        errors: vec![],
        last_line: 0,
        finished: false,
    };
    let progress = std::sync::Mutex::new(Vec::new());
    let s = import(
        Cursor::new(csv.clone().into_bytes()),
        &opts,
        &no_suppressions,
        &mut sink,
        &|b| progress.lock().unwrap().push(b),
    )
    .unwrap();
    assert_eq!((s.rows, s.accepted, s.duplicates), (10_000, 9_000, 1_000));
    assert_eq!(sink.recipients, vec![1000; 9]);
    assert_eq!(sink.errors, vec![1000]);
    assert!(sink.finished);
    let progress = progress.into_inner().unwrap();
    assert!(progress.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(progress.last().copied(), Some(csv.len() as u64));
}

#[test]
fn blank_lines_are_skipped_and_counted() {
    let csv = "\n\nphone,name\n\n+14155552671,a\n   \n,\n+14155552672,b\n\n";
    let (s, sink) = ok(run_with(csv.into(), &sms(), &no_suppressions));
    // Empty lines are ignored; `   ` and `,` (no values) are counted as blank.
    assert_eq!((s.rows, s.accepted, s.blank, s.invalid), (2, 2, 2, 0));
    let lines: Vec<u64> = sink.recipients.iter().map(|r| r.line).collect();
    assert_eq!(lines, [5, 8]);
    // A row with one value is not blank.
    let csv = "phone,name
,Jane
";
    let (s, sink) = ok(run_with(csv.into(), &sms(), &no_suppressions));
    assert_eq!((s.rows, s.invalid, s.blank), (1, 1, 0));
    assert_eq!(sink.row_errors[0].line, 2);
    assert_eq!(sink.row_errors[0].reason, "phone number is empty");
}

#[test]
fn time_zones_are_canonical_names() {
    let csv = "phone,tz\n+14155552671,america/new_york\n+14155552672, UTC \n";
    let (_, sink) = ok(run_with(csv.into(), &sms(), &no_suppressions));
    let zones: Vec<Option<&str>> = sink
        .recipients
        .iter()
        .map(|r| r.timezone.as_deref())
        .collect();
    assert_eq!(zones, [Some("America/New_York"), Some("UTC")]);
}

#[test]
fn variables_json_is_valid_json_for_awkward_values() {
    let csv = "phone,Note,Quote-Mark\n+14155552671,\"a\\b\tc\u{1}\",\"\"\"x\"\"\"\n";
    let (_, sink) = ok(run_with(csv.into(), &sms(), &no_suppressions));
    let v: serde_json::Value = serde_json::from_str(&sink.recipients[0].variables_json).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"note": "a\\b\tc\u{1}", "quote_mark": "\"x\""})
    );
}

// ---- whole-file refusals ----

#[test]
fn empty_files_are_refused() {
    assert_eq!(refused(run("empty.csv", &sms())), FileError::Empty);
    assert_eq!(refused(run("blank_lines.csv", &sms())), FileError::Empty);
    assert_eq!(refused(run("header_only.csv", &sms())), FileError::NoRows);
}

#[test]
fn a_missing_contact_column_lists_the_columns_found() {
    let e = refused(run("no_contact.csv", &sms()));
    assert_eq!(e.to_string(), "column `phone` is missing; found: Tel, Name");
    let e = refused(run("comma.csv", &ImportOptions::new(Channel::Email)));
    assert_eq!(
        e.to_string(),
        "column `email` is missing; found: Phone, First Name, last-name, Timezone, Plan"
    );
}

#[test]
fn a_single_column_that_is_not_the_contact_is_not_a_csv() {
    let e = refused(run("single_column.csv", &sms()));
    assert!(matches!(e, FileError::NotCsv { .. }), "{e:?}");
    assert!(e.to_string().contains("single column `Name`"), "{e}");
    // A single column that is the contact column is fine.
    let (s, _) = ok(run_with(
        "phone\n+14155552671\n".into(),
        &sms(),
        &no_suppressions,
    ));
    assert_eq!(s.accepted, 1);
}

#[test]
fn binary_files_are_refused() {
    let e = refused(run("nul_bytes.csv", &sms()));
    assert!(e.to_string().contains("NUL bytes"), "{e}");
    let e = refused(run("zip.xlsx", &sms()));
    assert!(e.to_string().contains("xlsx"), "{e}");
    let e = refused(run("utf16_no_bom.csv", &sms()));
    assert!(e.to_string().contains("UTF-16"), "{e}");
}

#[test]
fn a_required_variable_must_be_a_column() {
    let mut opts = sms();
    opts.required_variables.insert("first_name".into());
    opts.required_variables.insert("Order Number".into());
    let e = refused(run("comma.csv", &opts));
    assert_eq!(
        e,
        FileError::MissingVariable {
            name: "order_number".into(),
            found: ["Phone", "First Name", "last-name", "Timezone", "Plan"]
                .map(String::from)
                .to_vec(),
        }
    );
    assert!(
        e.to_string()
            .starts_with("the answer uses the variable `order_number`")
    );
}

#[test]
fn columns_that_normalize_alike_are_refused() {
    let e = refused(run("duplicate_columns.csv", &sms()));
    assert_eq!(
        e.to_string(),
        "columns `First Name` and `first_name` both name the variable `first_name`; rename one"
    );
}

#[test]
fn limits_refuse_before_anything_reaches_the_sink() {
    let mut opts = sms();
    opts.max_bytes = 100;
    assert_eq!(
        refused(run("comma.csv", &opts)),
        FileError::TooLarge { limit: 100 }
    );
    let mut opts = sms();
    opts.max_rows = 2;
    assert_eq!(
        refused(run("comma.csv", &opts)),
        FileError::TooManyRows { limit: 2 }
    );
    // Exactly at the limits is fine.
    let mut opts = sms();
    opts.max_rows = 3;
    opts.max_bytes = fixture("comma.csv").len() as u64;
    ok(run("comma.csv", &opts));
}

#[test]
fn an_unclosed_quote_is_refused_with_its_line() {
    let mut csv = b"phone,note\n+14155552671,ok\n+14155552672,\"never closed\n".to_vec();
    csv.extend(std::iter::repeat_n(b'x', 1_100_000));
    let e = refused(run_with(csv, &sms(), &no_suppressions));
    assert_eq!(
        e,
        FileError::RowTooLong {
            line: 3,
            limit: 64 * 1024
        }
    );
    assert_eq!(
        e.to_string(),
        "the row starting at line 3 is longer than 64 KiB, the most one row may have; \
         is a quote (\") left open?"
    );
}

/// A list whose header has `columns` columns (`phone` first) and `rows` rows of `+1415555…`
/// numbers and empty variables.
fn wide_csv(columns: usize, rows: usize) -> Vec<u8> {
    let mut csv = String::from("phone");
    for i in 1..columns {
        csv.push_str(&format!(",c{i}"));
    }
    csv.push('\n');
    for r in 0..rows {
        csv.push_str(&format!("+1415555{:04}", 2600 + r));
        csv.push_str(&",".repeat(columns - 1));
        csv.push('\n');
    }
    csv.into_bytes()
}

#[test]
fn columns_are_capped() {
    // The cap is 1,000 by default: exactly 1,000 is fine, one more is refused.
    let (summary, sink) = ok(run_with(wide_csv(1_000, 3), &sms(), &no_suppressions));
    assert_eq!(summary.accepted, 3);
    assert_eq!(summary.variables.len(), 999);
    assert!(sink.recipients[0].variables_json.contains("\"c999\":\"\""));
    let e = refused(run_with(wide_csv(1_001, 3), &sms(), &no_suppressions));
    assert_eq!(e, FileError::TooManyColumns { limit: 1_000 });
    assert_eq!(
        e.to_string(),
        "the header row has more than 1000 columns, the most one upload may have; keep the \
         contact column and the variables the answer uses"
    );
    // The cap is an option.
    let mut opts = sms();
    opts.max_columns = 10;
    assert_eq!(
        refused(run_with(wide_csv(11, 1), &opts, &no_suppressions)),
        FileError::TooManyColumns { limit: 10 }
    );
    ok(run_with(wide_csv(10, 1), &opts, &no_suppressions));
}

#[test]
fn a_header_of_100k_columns_is_refused_at_once_by_the_column_cap() {
    // 100,000 columns (about 690 KB of header) pass the 64 KiB row bound: the refusal names
    // the column cap, and comes after reading one row's worth, not after the whole header.
    let csv = wide_csv(100_000, 2);
    let started = std::time::Instant::now();
    let e = refused(run_with(csv, &sms(), &no_suppressions));
    assert_eq!(e, FileError::TooManyColumns { limit: 1_000 });
    // With a row bound large enough for the header, the column count alone refuses it, and the
    // count is linear too.
    let mut opts = sms();
    opts.max_row_bytes = 4 << 20;
    let e = refused(run_with(wide_csv(100_000, 2), &opts, &no_suppressions));
    assert_eq!(e, FileError::TooManyColumns { limit: 1_000 });
    let elapsed = started.elapsed();
    assert!(
        elapsed < std::time::Duration::from_secs(10),
        "refusing two 100,000-column headers took {elapsed:?}"
    );
}

#[test]
fn rows_are_capped_in_bytes() {
    let mut opts = sms();
    opts.max_row_bytes = 1_000;
    let long = "y".repeat(990);
    let csv = format!("phone,note\n+14155552671,short\n+14155552672,{long}\n");
    assert_eq!(
        refused(run_with(csv.into_bytes(), &opts, &no_suppressions)),
        FileError::RowTooLong {
            line: 3,
            limit: 1_000
        }
    );
    let fits = "y".repeat(900);
    let csv = format!("phone,note\n+14155552671,short\n+14155552672,{fits}\n");
    let (summary, _) = ok(run_with(csv.into_bytes(), &opts, &no_suppressions));
    assert_eq!(summary.accepted, 2);
}

#[test]
fn bad_options_are_refused() {
    let mut opts = sms();
    opts.default_region = Some("XX".into());
    let (result, sink) = run("comma.csv", &opts);
    assert!(matches!(result, Err(ImportError::Options(_))));
    assert_eq!(sink.calls, 0);
    let (result, _) = run("comma.csv", &ImportOptions::new(Channel::Chat));
    assert!(matches!(result, Err(ImportError::Options(_))));
}

#[test]
fn a_failing_sink_stops_the_import_without_finish() {
    #[derive(Debug, thiserror::Error)]
    #[error("disk full")]
    struct Full;
    struct FailSecond {
        calls: usize,
        finished: bool,
    }
    impl ImportSink for FailSecond {
        type Error = Full;
        fn recipients(&mut self, _: Vec<Recipient>) -> Result<(), Full> {
            self.calls += 1;
            if self.calls == 2 { Err(Full) } else { Ok(()) }
        }
        fn row_errors(&mut self, _: Vec<RowError>) -> Result<(), Full> {
            Ok(())
        }
        fn finish(&mut self, _: &ImportSummary) -> Result<(), Full> {
            self.finished = true;
            Ok(())
        }
    }
    let mut csv = String::from("phone\n");
    for i in 0..50_000 {
        csv.push_str(&format!("+1415555{:04}\n", i % 10_000));
        csv.push_str(&format!("+1212555{:04}\n", i % 10_000));
    }
    let mut opts = sms();
    opts.batch_size = 100;
    let mut sink = FailSecond {
        calls: 0,
        finished: false,
    };
    let r = import(
        Cursor::new(csv),
        &opts,
        &no_suppressions,
        &mut sink,
        &|_| {},
    );
    assert!(matches!(r, Err(ImportError::Sink(Full))), "{r:?}");
    assert_eq!(sink.calls, 2);
    assert!(!sink.finished);
}

#[test]
fn the_error_report_is_neutralized_csv() {
    let csv = "phone,name\n=1+1,x\n+14155552671,y\n+1 415 555 2671,z\n";
    let (_, sink) = ok(run_with(csv.into(), &sms(), &no_suppressions));
    let mut out = Vec::new();
    write_error_report(&sink.row_errors, &mut out).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "line,column,value,reason\n\
         2,phone,'=1+1,`=1+1` is not a phone number\n\
         4,phone,'+14155552671,duplicate of line 3\n"
    );
}

#[test]
fn the_file_value_is_kept_when_it_says_more_than_the_stored_number() {
    let mut opts = ImportOptions::new(Channel::Sms);
    opts.default_region = Some("DE".into());
    let csv = "phone\n\
               +4930901820\n\
               +49 30 901821\n\
               30 901822\n\
               030 901823\n\
               0049 30 901824\n\
               +49 (0)30 901825\n\
               +49-30-901826 ext. 7\n";
    let (_, sink) = ok(run_with(csv.as_bytes().to_vec(), &opts, &no_suppressions));
    let kept: Vec<(String, Option<String>)> = sink
        .recipients
        .iter()
        .map(|r| (r.address.to_string(), r.raw_contact.clone()))
        .collect();
    let s = |a: &str, raw: Option<&str>| (a.to_string(), raw.map(str::to_string));
    assert_eq!(
        kept,
        vec![
            // Written exactly as stored: nothing to keep.
            s("+4930901820", None),
            // The stored digits in another layout, whole or after the region's code: empty.
            s("+4930901821", Some("")),
            s("+4930901822", Some("")),
            // A trunk prefix, an international prefix, a bracketed `(0)`, an extension: kept.
            s("+4930901823", Some("030 901823")),
            s("+4930901824", Some("0049 30 901824")),
            s("+4930901825", Some("+49 (0)30 901825")),
            s("+4930901826", Some("+49-30-901826 ext. 7")),
        ]
    );
}

/// A list whose repeats the generator knows: row `i` is person `i * 7 % people`, written in one
/// of four layouts of the same US number (or with a bad time zone, which makes the row invalid
/// and so never the first of its person). Returns the file and, per data row in order, its line,
/// its person and whether it is valid.
fn known_repeats(rows: u64, people: u64) -> (Vec<u8>, Vec<(u64, u64, bool)>) {
    let mut csv = String::from("phone,timezone,n\n");
    let mut truth = Vec::new();
    let mut line = 1;
    for i in 0..rows {
        let person = i * 7 % people;
        let (a, b) = (200 + person / 10_000 % 700, person % 10_000);
        let written = match i % 4 {
            0 => format!("+1415{a:03}{b:04}"),
            1 => format!("(415) {a:03}-{b:04}"),
            2 => format!("+1 415.{a:03}.{b:04}"),
            _ => format!("415-{a:03}-{b:04}"),
        };
        let valid = i % 11 != 5;
        let tz = if valid {
            "America/Chicago"
        } else {
            "Mars/Olympus"
        };
        line += 1;
        if i % 13 == 0 {
            // A blank line: the next row's line number skips it.
            csv.push('\n');
            line += 1;
        }
        csv.push_str(&format!("{written},{tz},{i}\n"));
        truth.push((line, person, valid));
    }
    (csv.into_bytes(), truth)
}

/// Repeats are found the same whether in memory or on disk (a file longer than
/// `dedup_memory_rows`): both give exactly what the generator knows, first valid row kept and
/// every later one reported with its line.
#[test]
fn repeats_on_disk_are_exactly_the_repeats_in_memory() {
    let (mut bytes, truth) = known_repeats(6_000, 2_500);
    if bytes.len() % 2 == 0 {
        bytes.push(b'\n'); // an odd size: the two halves of progress still add up
    }
    let mut first_line = std::collections::HashMap::new();
    let mut kept = Vec::new();
    let mut repeats = Vec::new();
    for &(line, person, valid) in &truth {
        if !valid {
            continue;
        }
        match first_line.get(&person) {
            Some(&first) => repeats.push((line, format!("duplicate of line {first}"))),
            None => {
                first_line.insert(person, line);
                kept.push(line);
            }
        }
    }
    assert!(repeats.len() > 2_000 && kept.len() > 2_000);
    for memory_rows in [ImportOptions::DEFAULT_DEDUP_MEMORY_ROWS, 0, 5_999] {
        let mut opts = sms();
        opts.dedup_memory_rows = memory_rows;
        opts.batch_size = 500;
        let bytes_total = bytes.len() as u64;
        let seen = std::sync::Mutex::new(Vec::new());
        let mut sink = CollectSink::default();
        let result = import(
            Cursor::new(bytes.clone()),
            &opts,
            &no_suppressions,
            &mut sink,
            &|b| seen.lock().unwrap().push(b),
        );
        let (summary, sink) = ok((result, sink));
        let lines: Vec<u64> = sink.recipients.iter().map(|r| r.line).collect();
        assert_eq!(lines, kept, "memory_rows {memory_rows}");
        assert_eq!(summary.duplicates, repeats.len() as u64);
        let got: Vec<(u64, String)> = sink
            .row_errors
            .iter()
            .filter(|e| e.reason.starts_with("duplicate"))
            .map(|e| (e.line, e.reason.clone()))
            .collect();
        assert_eq!(got, repeats, "memory_rows {memory_rows}");
        assert_eq!(
            summary.invalid,
            truth.iter().filter(|t| !t.2).count() as u64
        );
        // Progress only grows and ends at the file's size, whichever way repeats were found.
        let seen = seen.into_inner().unwrap();
        assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
        assert_eq!(seen.last().copied(), Some(bytes_total));
    }
}
