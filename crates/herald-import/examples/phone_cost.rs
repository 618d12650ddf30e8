//! Where phone validation time goes (a program that prints figures). Phone parsing is the hot
//! spot of an SMS import: `herald_core::E164::parse` calls `phonenumber`, whose metadata
//! regexes sit behind one process-wide `Mutex<LruCache>` (crate `regex-cache`): every regex use
//! locks it, hashes the pattern text, and matches while holding the lock. This prints the cost
//! per call on one thread and the combined throughput of two threads.
//!
//! With `PHONENUMBER_XML=/path/to/PhoneNumberMetadata.xml` (the file ships in the phonenumber
//! crate's `assets/`) it also measures a private `Database` per thread, which removes the
//! contention (but not the per-call locking and hashing).

use herald_core::E164;
use std::time::Instant;

fn inputs(n: u64) -> Vec<String> {
    (0..n)
        .map(|i| format!("+1415{:07}", 2_000_000 + (i % 7_000_000)))
        .collect()
}

fn per_call(label: &str, n: usize, t: Instant) {
    println!(
        "{label:<44} {:6.2} us/call",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
}

fn two_threads(label: &str, inputs: &[String], f: impl Fn(&str) -> bool + Sync) {
    let t = Instant::now();
    let halves = inputs.split_at(inputs.len() / 2);
    std::thread::scope(|s| {
        for half in [halves.0, halves.1] {
            let f = &f;
            s.spawn(move || half.iter().filter(|x| f(x)).count());
        }
    });
    let secs = t.elapsed().as_secs_f64();
    println!("{label:<44} {:8.0} numbers/s", inputs.len() as f64 / secs);
}

fn main() {
    let inputs = inputs(200_000);
    let _ = E164::parse("+14155552671", None); // load the metadata
    let t = Instant::now();
    for s in &inputs {
        let _ = E164::parse(s, None);
    }
    per_call("E164::parse, 1 thread", inputs.len(), t);
    let t = Instant::now();
    for s in &inputs {
        let _ = phonenumber::parse(None, s);
    }
    per_call("  of which phonenumber::parse", inputs.len(), t);
    let parsed: Vec<_> = inputs
        .iter()
        .filter_map(|s| phonenumber::parse(None, s).ok())
        .collect();
    let t = Instant::now();
    for p in &parsed {
        let _ = phonenumber::is_valid(p);
    }
    per_call("  of which phonenumber::is_valid", parsed.len(), t);
    let t = Instant::now();
    for p in &parsed {
        let _ = p.format().mode(phonenumber::Mode::E164).to_string();
    }
    per_call("  of which format(E164)", parsed.len(), t);
    let n = inputs.len() as f64;
    println!(
        "{:<44} {:8.0} numbers/s",
        "E164::parse, 1 thread",
        n / {
            let t = Instant::now();
            inputs.iter().for_each(|s| drop(E164::parse(s, None)));
            t.elapsed().as_secs_f64()
        }
    );
    two_threads("E164::parse, 2 threads (shared Mutex)", &inputs, |s| {
        E164::parse(s, None).is_ok()
    });

    if let Ok(path) = std::env::var("PHONENUMBER_XML") {
        let t = Instant::now();
        let db = phonenumber::metadata::Database::load(&path).expect("metadata XML");
        println!("loading a private Database took {:.1?}", t.elapsed());
        let valid = |db: &phonenumber::metadata::Database, s: &str| {
            phonenumber::parse_with(db, None, s)
                .map(|p| phonenumber::is_valid_with(db, &p))
                .unwrap_or(false)
        };
        let t = Instant::now();
        for s in &inputs {
            valid(&db, s);
        }
        per_call("private Database, 1 thread", inputs.len(), t);
        let dbs = [
            db.clone(),
            phonenumber::metadata::Database::load(&path).expect("XML"),
        ];
        // `Database::clone` shares the cache: load a second one for the second thread.
        let t = Instant::now();
        let halves = inputs.split_at(inputs.len() / 2);
        std::thread::scope(|s| {
            for (half, db) in [halves.0, halves.1].into_iter().zip(&dbs) {
                s.spawn(move || half.iter().filter(|x| valid(db, x)).count());
            }
        });
        println!(
            "{:<44} {:8.0} numbers/s",
            "private Database per thread, 2 threads",
            n / t.elapsed().as_secs_f64()
        );
    }
}
