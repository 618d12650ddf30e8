//! Property tests: no input makes the import panic; a refused file reaches the sink not at
//! all; a well-formed file written by a real CSV writer comes back field for field, on the
//! right lines, in any dialect.

use herald_core::Channel;
use herald_import::{CollectSink, ImportError, ImportOptions, import, no_suppressions};
use proptest::prelude::*;
use std::io::Cursor;

fn check_invariants(bytes: Vec<u8>, opts: &ImportOptions) {
    let mut sink = CollectSink::default();
    let result = import(
        Cursor::new(bytes),
        opts,
        &no_suppressions,
        &mut sink,
        &|_| {},
    );
    match result {
        Ok(s) => {
            assert_eq!(s.rows, s.accepted + s.invalid + s.duplicates);
            assert_eq!(sink.recipients.len() as u64, s.accepted);
            assert!(s.suppressed <= s.accepted);
            assert_eq!(sink.finished.as_ref(), Some(&s));
            assert!(sink.recipients.windows(2).all(|w| w[0].line < w[1].line));
            assert!(sink.row_errors.windows(2).all(|w| w[0].line <= w[1].line));
            for r in &sink.recipients {
                let v: serde_json::Value = serde_json::from_str(&r.variables_json)
                    .unwrap_or_else(|e| panic!("{:?}: {e}", r.variables_json));
                assert!(v.is_object());
            }
        }
        Err(ImportError::File(_)) => {
            assert_eq!(sink.calls, 0, "a refused file must not reach the sink");
        }
        Err(e) => panic!("unexpected error for an in-memory file: {e}"),
    }
}

fn soup() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        Just(b"phone".to_vec()),
        Just(b"email".to_vec()),
        Just(b"First Name".to_vec()),
        Just(b"timezone".to_vec()),
        Just(b",".to_vec()),
        Just(b";".to_vec()),
        Just(b"\t".to_vec()),
        Just(b"\"".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\r".to_vec()),
        Just(b" ".to_vec()),
        Just(b"+14155552671".to_vec()),
        Just(b"(415) 555-2672".to_vec()),
        Just(b"jane@Example.com".to_vec()),
        Just(b"Europe/Berlin".to_vec()),
        Just("é".as_bytes().to_vec()),
        Just(b"\xE9".to_vec()),
        Just(b"\xEF\xBB\xBF".to_vec()),
        Just(b"\xFF\xFE".to_vec()),
        Just(b"\x00".to_vec()),
        proptest::collection::vec(any::<u8>(), 1..4),
    ];
    proptest::collection::vec(token, 0..60).prop_map(|tokens| tokens.concat())
}

fn options() -> impl Strategy<Value = ImportOptions> {
    (
        prop_oneof![Just(Channel::Sms), Just(Channel::Email)],
        any::<bool>(),
        1usize..5,
        1u64..20,
        prop_oneof![Just(1usize), Just(2usize), Just(4usize)],
        any::<bool>(),
    )
        .prop_map(|(channel, region, batch, max_rows, workers, require)| {
            let mut o = ImportOptions::new(channel);
            if region {
                o.default_region = Some("US".into());
            }
            o.batch_size = batch;
            o.max_rows = max_rows;
            o.workers = workers;
            if require {
                o.required_variables.insert("first_name".into());
            }
            o
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2000), opts in options()) {
        check_invariants(bytes, &opts);
    }

    #[test]
    fn csv_like_soup_never_panics(mut bytes in soup(), header in any::<bool>(), opts in options()) {
        if header {
            let mut with_header = b"phone,email,First Name,timezone\n".to_vec();
            with_header.append(&mut bytes);
            bytes = with_header;
        }
        check_invariants(bytes, &opts);
    }

    #[test]
    fn well_formed_files_round_trip_in_any_dialect(
        values in proptest::collection::vec(("[^\u{0}]{0,12}", "[ -~\n\r\t\u{e9}\u{fc}]{0,12}"), 1..30),
        delimiter in prop_oneof![Just(b','), Just(b';'), Just(b'\t')],
        crlf in any::<bool>(),
    ) {
        let mut w = csv::WriterBuilder::new()
            .delimiter(delimiter)
            .terminator(if crlf { csv::Terminator::CRLF } else { csv::Terminator::Any(b'\n') })
            .from_writer(Vec::new());
        w.write_record(["phone", "a", "b"]).unwrap();
        let mut lines = Vec::new();
        let mut expect = Vec::new();
        for (i, (a, b)) in values.iter().enumerate() {
            // Count lines before this record: header and previous records.
            w.flush().unwrap();
            let so_far = w.get_ref().iter().filter(|&&c| c == b'\n').count() as u64;
            let phone = format!("+1415555{:04}", i);
            w.write_record([phone.as_str(), a, b]).unwrap();
            lines.push(so_far + 1);
            expect.push(serde_json::json!({"a": a.trim(), "b": b.trim()}));
        }
        let bytes = w.into_inner().unwrap();
        let mut sink = CollectSink::default();
        let s = import(Cursor::new(bytes), &ImportOptions::new(Channel::Sms), &no_suppressions, &mut sink, &|_| {})
            .unwrap();
        prop_assert_eq!(s.accepted, values.len() as u64);
        let got_lines: Vec<u64> = sink.recipients.iter().map(|r| r.line).collect();
        prop_assert_eq!(got_lines, lines);
        let got: Vec<serde_json::Value> = sink
            .recipients
            .iter()
            .map(|r| serde_json::from_str(&r.variables_json).unwrap())
            .collect();
        prop_assert_eq!(got, expect);
    }
}
