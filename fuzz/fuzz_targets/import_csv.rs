//! Feeds arbitrary bytes through `herald_import::import` as an uploaded file. The first byte
//! picks the options; the rest is the file. Checks that nothing panics, that the summary adds
//! up, and that a refused file never reached the sink.
#![no_main]

use herald_core::Channel;
use herald_import::{CollectSink, ImportError, ImportOptions, import, no_suppressions};
use libfuzzer_sys::fuzz_target;
use std::io::Cursor;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, file)) = data.split_first() else {
        return;
    };
    let mut opts = ImportOptions::new(if flags & 1 == 0 {
        Channel::Sms
    } else {
        Channel::Email
    });
    if flags & 2 != 0 {
        opts.default_region = Some("US".into());
    }
    if flags & 4 != 0 {
        opts.required_variables.insert("first_name".into());
    }
    opts.workers = if flags & 8 != 0 { 2 } else { 1 };
    opts.batch_size = 1 + usize::from(flags >> 6);
    if flags & 16 != 0 {
        opts.max_rows = 3;
        opts.max_bytes = 200;
    }
    let mut sink = CollectSink::default();
    match import(
        Cursor::new(file),
        &opts,
        &no_suppressions,
        &mut sink,
        &|_| {},
    ) {
        Ok(s) => {
            assert_eq!(s.rows, s.accepted + s.invalid + s.duplicates);
            assert_eq!(sink.recipients.len() as u64, s.accepted);
            assert_eq!(sink.finished.as_ref(), Some(&s));
            assert!(sink.recipients.windows(2).all(|w| w[0].line < w[1].line));
        }
        Err(ImportError::File(_)) => assert_eq!(sink.calls, 0),
        Err(e) => panic!("in-memory import failed: {e}"),
    }
});
