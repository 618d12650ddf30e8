//! Phone normalization throughput: `E164::parse` (the fast way in for common shapes) against
//! `E164::parse_general` (the general way in, with libphonenumber's regular expressions), on
//! ~200k realistic numbers, single-threaded and with 2 threads.
//!
//! cargo run --release -p herald-core --example phone_bench [-- <count> [fast]]
//!
//! With `fast`, only the fast path is timed (for profiling).

use herald_core::E164;
use herald_core::address::PhoneError;
use std::time::Instant;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + self.below(10) as u8))
            .collect()
    }
}

const US_AREA_CODES: &[&str] = &[
    "212", "213", "312", "415", "503", "617", "646", "702", "713", "818", "202", "305", "404",
    "512", "602", "718", "206", "303", "214", "619",
];

/// (default region, E.164 country code, example national numbers) for the international share.
const INTERNATIONAL: &[(&str, &str, &[&str])] = &[
    ("GB", "44", &["7400123456", "2079460958", "1614960000"]),
    ("DE", "49", &["15123456789", "30901820", "1701234567"]),
    ("FR", "33", &["612345678", "123456789"]),
    ("CA", "1", &["5062345678", "4165551234"]),
    ("MX", "52", &["2221234567", "5512345678"]),
    ("BR", "55", &["11961234567", "1123456789"]),
    ("IN", "91", &["8123456789", "1123456789"]),
    ("ES", "34", &["612345678", "810123456"]),
    ("NL", "31", &["612345678", "101234567"]),
    ("AU", "61", &["412345678", "212345678"]),
];

fn corpus(n: usize, us_percent: usize) -> Vec<(String, Option<&'static str>)> {
    let mut rng = Rng(42);
    (0..n)
        .map(|_| {
            if rng.below(100) < us_percent {
                let area = US_AREA_CODES[rng.below(US_AREA_CODES.len())];
                let exchange = format!("{}{}", 2 + rng.below(8), rng.digits(2));
                let line = rng.digits(4);
                let text = match rng.below(6) {
                    0 => format!("({area}) {exchange}-{line}"),
                    1 => format!("{area}-{exchange}-{line}"),
                    2 => format!("+1 {area} {exchange} {line}"),
                    3 => format!("+1{area}{exchange}{line}"),
                    4 => format!("{area}.{exchange}.{line}"),
                    _ => format!("1 {area} {exchange} {line}"),
                };
                (text, Some("US"))
            } else {
                let (region, cc, examples) = INTERNATIONAL[rng.below(INTERNATIONAL.len())];
                let example = examples[rng.below(examples.len())];
                let keep = example.len() - 3;
                let national = format!("{}{}", &example[..keep], rng.digits(3));
                let (head, tail) = national.split_at(national.len() / 2);
                match rng.below(3) {
                    0 => (format!("+{cc}{national}"), None),
                    1 => (format!("+{cc} {head} {tail}"), Some("US")),
                    _ => (format!("+{cc} {head} {tail}"), Some(region)),
                }
            }
        })
        .collect()
}

type Parser = fn(&str, Option<&str>) -> Result<E164, PhoneError>;

fn run(numbers: &[(String, Option<&'static str>)], parse: Parser) -> usize {
    numbers
        .iter()
        .filter(|(text, region)| parse(text, *region).is_ok())
        .count()
}

/// ns per number, wall clock, with `threads` threads sharing the work.
fn measure(numbers: &[(String, Option<&'static str>)], parse: Parser, threads: usize) -> f64 {
    let chunk = numbers.len().div_ceil(threads);
    let start = Instant::now();
    std::thread::scope(|s| {
        for part in numbers.chunks(chunk) {
            s.spawn(move || std::hint::black_box(run(part, parse)));
        }
    });
    start.elapsed().as_nanos() as f64 / numbers.len() as f64
}

/// The general path is timed on this many numbers.
const SLOW_SAMPLE: usize = 20_000;

fn main() {
    let n = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);
    // Cold start: loading phonenumber's metadata and libphonenumber's patterns, then the first
    // fast call compiles the US automata.
    let start = Instant::now();
    let _ = E164::parse_general("+1 415 555 2671", None);
    println!(
        "first general call (metadata and patterns): {:.1} ms",
        start.elapsed().as_secs_f64() * 1e3
    );
    let start = Instant::now();
    let first = E164::parse("(415) 555-2671", Some("US"));
    println!(
        "first call (table + US automata): {:.1} ms -> {first:?}",
        start.elapsed().as_secs_f64() * 1e3
    );
    if std::env::args().nth(2).as_deref() == Some("fast") {
        let numbers = corpus(n, 80);
        for _ in 0..10 {
            let ns = measure(&numbers, E164::parse, 1);
            println!("fast path only, 1 thread: {ns:.0} ns/number");
        }
        return;
    }

    for (name, us_percent) in [("80% US / 20% international", 80), ("US only", 100)] {
        let numbers = corpus(n, us_percent);
        let sample = &numbers[..numbers.len().min(SLOW_SAMPLE)];
        println!(
            "== {name}: {n} numbers (general path timed on {})",
            sample.len()
        );

        // Agreement and coverage, and warm-up of both paths.
        let fast_hits = numbers
            .iter()
            .filter(|(text, region)| E164::parse_fast_only(text, *region).is_some())
            .count();
        let (mut valid, mut mismatches) = (0, 0);
        for (text, region) in sample {
            let slow = E164::parse_general(text, *region);
            if E164::parse(text, *region) != slow {
                mismatches += 1;
            }
            if slow.is_ok() {
                valid += 1;
            }
        }
        println!(
            "fast path answered {fast_hits} of {n}; sample: {valid} valid, {mismatches} mismatches"
        );

        for threads in [1, 2] {
            let fast = measure(&numbers, E164::parse, threads);
            let slow = measure(sample, E164::parse_general, threads);
            println!(
                "{threads} thread(s): fast {fast:6.0} ns/number ({:>8.0} numbers/s)   general {slow:7.0} ns/number ({:>7.0} numbers/s)   x{:.0}",
                1e9 / fast,
                1e9 / slow,
                slow / fast
            );
        }
    }
}
