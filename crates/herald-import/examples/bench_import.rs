//! Throughput of a whole import on a generated realistic file (a program that prints figures,
//! not a test). `cargo run --release -p herald-import --example bench_import -- [rows] [path]`
//!
//! Columns: phone, first_name, last_name, email, timezone, customer_id, plan. 2% of rows are
//! duplicates, 1% have a bad phone number. Set `CHANNEL=email` to import by email instead.

use herald_core::Channel;
use herald_import::{ImportOptions, ImportSink, Recipient, RowError, import};
use std::io::{BufWriter, Write};
use std::time::Instant;

struct CountSink {
    recipients: u64,
    errors: u64,
    bytes: u64,
}

impl ImportSink for CountSink {
    type Error = std::convert::Infallible;
    fn recipients(&mut self, batch: Vec<Recipient>) -> Result<(), Self::Error> {
        self.recipients += batch.len() as u64;
        self.bytes += batch
            .iter()
            .map(|r| (r.address.as_str().len() + r.variables_json.len()) as u64)
            .sum::<u64>();
        Ok(())
    }
    fn row_errors(&mut self, batch: Vec<RowError>) -> Result<(), Self::Error> {
        self.errors += batch.len() as u64;
        Ok(())
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

fn generate(path: &str, rows: u64) -> std::io::Result<()> {
    const AREAS: [&str; 10] = [
        "212", "415", "312", "617", "206", "303", "512", "702", "305", "404",
    ];
    const FIRST: [&str; 8] = [
        "Jane", "John", "Amélie", "Jürgen", "María", "Wei", "Olu", "Sam",
    ];
    const LAST: [&str; 8] = [
        "Doe", "Smith", "Müller", "García", "O'Brien", "Nakamura", "Okafor", "Lee",
    ];
    const TZ: [&str; 6] = [
        "America/New_York",
        "America/Chicago",
        "America/Denver",
        "America/Los_Angeles",
        "Europe/London",
        "",
    ];
    const PLANS: [&str; 3] = ["basic", "pro", "enterprise"];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    writeln!(
        w,
        "Phone,First Name,Last Name,Email,Timezone,Customer ID,Plan"
    )?;
    for i in 0..rows {
        // Every number is unique but for the 2% duplicates (i % 50 == 49 repeats row i - 7,
        // possibly written another way); 1% of numbers are invalid.
        let n = if i % 50 == 49 { i - 7 } else { i };
        let (area, exchange, line) = (
            AREAS[(n % 10) as usize],
            200 + (n / 10) % 800,
            (n / 8000) % 10_000,
        );
        let phone = match i % 3 {
            _ if i % 100 == 13 => "555-CALL-NOW".to_string(),
            0 => format!("({area}) {exchange}-{line:04}"),
            1 => format!("+1{area}{exchange}{line:04}"),
            _ => format!("+1 {area}-{exchange}-{line:04}"),
        };
        let first = rng.pick(&FIRST);
        let last = rng.pick(&LAST);
        writeln!(
            w,
            "{phone},{first},{last},{}.{}{i}@Example.com,{},C{:08},{}",
            first.to_lowercase(),
            last.to_lowercase().replace('\'', ""),
            rng.pick(&TZ),
            rng.next() % 100_000_000,
            rng.pick(&PLANS),
        )?;
    }
    w.flush()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let rows: u64 = args.get(1).map_or(Ok(1_000_000), |s| s.parse())?;
    let path = args
        .get(2)
        .cloned()
        .unwrap_or_else(|| format!("/tmp/herald-import-bench-{rows}.csv"));
    if !std::path::Path::new(&path).exists() {
        let t = Instant::now();
        generate(&path, rows)?;
        eprintln!("generated {path} in {:.1?}", t.elapsed());
    }
    let size = std::fs::metadata(&path)?.len();
    let channel = match std::env::var("CHANNEL").as_deref() {
        Ok("email") => Channel::Email,
        _ => Channel::Sms,
    };
    let mut opts = ImportOptions::new(channel);
    opts.default_region = Some("US".into());
    opts.required_variables.insert("first_name".into());
    if let Ok(w) = std::env::var("WORKERS") {
        opts.workers = w.parse()?;
    }
    let mut sink = CountSink {
        recipients: 0,
        errors: 0,
        bytes: 0,
    };
    let file = std::fs::File::open(&path)?;
    let t = Instant::now();
    let summary = import(file, &opts, &|_| false, &mut sink, &|_| {})?;
    let secs = t.elapsed().as_secs_f64();
    println!("{}", serde_json::to_string(&summary)?);
    println!(
        "{} rows ({:.1} MB, channel {channel}) in {secs:.2} s: {:.0} rows/s, {:.0} MB/s; \
         sink got {} recipients, {} errors",
        summary.rows,
        size as f64 / 1e6,
        summary.rows as f64 / secs,
        size as f64 / 1e6 / secs,
        sink.recipients,
        sink.errors,
    );
    Ok(())
}
