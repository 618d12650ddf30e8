//! `herald-bench`: Herald's figures beside a bare baseline, measured in the same run.
//!
//! `herald-bench import --rows N [--postgres URL]` generates a realistic recipient CSV, imports it
//! through Herald's real import path (validation, normalization, deduplication, storage) into a
//! fresh database, and times the database's own bulk loader on the same file into a bare table:
//! the `sqlite3` CLI's `.import`, and `psql`'s `\copy`. One JSON line per backend.
//!
//! `herald-bench dispatch --recipients N [--batch B] [--postgres URL] [--profile]` sends an
//! outreach of N recipients through Herald's real dispatcher to a channel that accepts at once,
//! and sets as many rows of another outreach to `sent` by plain SQL, B a transaction: the bare
//! store limit. One JSON line per backend (see [`dispatch`]).
//!
//! `herald-bench plot --output curve.svg FILE...` draws what `import` and `dispatch` printed at
//! several sizes (`--rows 100000,1000000,5000000`) as seconds and peak memory against rows (see
//! [`plot`]).
//!
//! `herald-bench cluster --postgres URL [--herald PATH] [--nodes 3] [--latency-ms 20] ...`
//! starts real `herald serve` processes on one PostgreSQL database against a fake Twilio that
//! answers after a latency: messages a second from one node and from several, then the aggregate
//! rate of one rate-limited sender from one node and from several. One JSON line per run and per
//! comparison (see [`cluster`]).
//!
//! `herald-bench chat [--herald PATH] [--postgres URL] [--wrk PATH] [--connections 256]
//! [--duration-secs 10] [--streams 10000] ...` starts one real `herald serve` (SQLite in a
//! temporary directory by default) with a chat site and campaigns, and measures in that one run:
//! the widget's configuration route under `wrk` against a bare axum route answering the same
//! bytes, the widget's gzipped size, and the server's memory with 10,000 idle visitor event
//! streams. One JSON line per run and per figure, and a summary on stderr (see [`chat`]).

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use herald_core::schedule::ScheduleInput;
use herald_core::{
    Address, AnswerInput, AnswerVariantInput, CampaignInput, E164, InboxSpec, Provider, SenderSpec,
};
use herald_store::Store;
use rand::{RngExt, SeedableRng};
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

mod chat;
mod cluster;
mod dispatch;
mod plot;

#[derive(Parser)]
#[command(
    name = "herald-bench",
    about = "Herald's benchmarks, each with its baseline"
)]
struct Cli {
    #[command(subcommand)]
    command: Bench,
}

#[derive(Subcommand)]
enum Bench {
    /// CSV import: Herald's import path against the database's bare bulk load of the same file.
    Import {
        /// Recipients in the generated file; several sizes (`100000,1000000,5000000`) measure
        /// each in turn, a scale curve.
        #[arg(long, value_delimiter = ',', default_value = "1000000")]
        rows: Vec<u64>,
        /// Also measure PostgreSQL on this server (a throw-away database is created there).
        #[arg(long, value_name = "URL")]
        postgres: Option<String>,
        /// Seed of the generated file, for repeatable runs.
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Lists of up to this many rows find repeats in memory, longer ones on disk (default:
        /// Herald's, 1,000,000); 0 always takes the disk path, a large value the memory one.
        #[arg(long)]
        dedup_memory_rows: Option<u64>,
    },
    /// Dispatch: an outreach sent through Herald's dispatcher against the same rows set to
    /// `sent` by plain SQL.
    Dispatch {
        /// Recipients in the outreach; several sizes (`100000,1000000,5000000`) measure each in
        /// turn, a scale curve.
        #[arg(long, value_delimiter = ',', default_value = "100000")]
        recipients: Vec<u64>,
        /// Recipients claimed (and recorded) per batch by Herald, rows per transaction by the
        /// baseline.
        #[arg(long, default_value_t = 1000)]
        batch: u32,
        /// Also measure PostgreSQL on this server (a throw-away database is created there).
        #[arg(long, value_name = "URL")]
        postgres: Option<String>,
        /// Add where Herald's time went (each kind of store call, and the rest) and the floor of
        /// its design: the same rows written twice by plain SQL (claimed, then sent).
        #[arg(long)]
        profile: bool,
        /// Run the dispatcher without its local journal, to measure what the journal costs.
        #[arg(long)]
        no_journal: bool,
    },
    /// Cluster: `herald serve` processes on one PostgreSQL against a fake Twilio with a latency:
    /// messages a second from one node and from `--nodes`, then one rate-limited sender's
    /// aggregate rate from one node and from `--nodes`.
    Cluster {
        /// The PostgreSQL server (a throw-away database is created there for each run).
        #[arg(long, value_name = "URL")]
        postgres: String,
        /// The `herald` binary to run (default: the one beside this program).
        #[arg(long, value_name = "PATH")]
        herald: Option<std::path::PathBuf>,
        /// Nodes of the larger cluster (the other runs have one).
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// How long the fake Twilio takes to answer each request, in milliseconds.
        #[arg(long, default_value_t = 20)]
        latency_ms: u64,
        /// Recipients of each unlimited run.
        #[arg(long, default_value_t = 8000)]
        recipients: u64,
        /// The rate-limited sender's limit, messages a second.
        #[arg(long, default_value_t = 50.0)]
        rate: f64,
        /// How long each rate-limited run lasts at its rate (recipients = rate × this).
        #[arg(long, default_value_t = 20.0)]
        limited_secs: f64,
        /// Each node's `[dispatch] batch_size`.
        #[arg(long, default_value_t = 100)]
        batch: u32,
        /// Each node's `[dispatch] concurrency` (sends in flight at once).
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
    },
    /// Chat: the widget's configuration route against a bare axum route serving the same bytes
    /// (wrk), the widget's gzipped size, and the memory of idle visitor event streams, all
    /// against one `herald serve`.
    Chat {
        /// The `herald` binary to run (default: the one beside this program).
        #[arg(long, value_name = "PATH")]
        herald: Option<std::path::PathBuf>,
        /// Run on this PostgreSQL server (a throw-away database is created there) instead of
        /// SQLite in a temporary directory.
        #[arg(long, value_name = "URL")]
        postgres: Option<String>,
        /// The `wrk` load generator to run.
        #[arg(long, value_name = "PATH", default_value = "wrk")]
        wrk: std::path::PathBuf,
        /// wrk's connections.
        #[arg(long, default_value_t = 256)]
        connections: u32,
        /// wrk's threads.
        #[arg(long, default_value_t = 2)]
        threads: u32,
        /// Seconds of each measured wrk run.
        #[arg(long, default_value_t = 10)]
        duration_secs: u64,
        /// Measured runs of each route, alternating Herald and bare.
        #[arg(long, default_value_t = 2)]
        rounds: usize,
        /// Think time of each wrk connection, in ms, in the paced runs that measure latency
        /// under a load below saturation (0: leave them out).
        #[arg(long, default_value_t = 10)]
        pace_ms: u32,
        /// Idle visitor event streams to open (0: leave that figure out).
        #[arg(long, default_value_t = 10_000)]
        streams: usize,
        /// Streams on each conversation (1: every stream a visitor of its own).
        #[arg(long, default_value_t = 1)]
        streams_per_conversation: usize,
        /// The server's `RUST_LOG` (default: Herald's own filter, which logs each request).
        #[arg(long, value_name = "FILTER")]
        rust_log: Option<String>,
        /// Leave the processes unpinned (by default the servers run on CPU 0 and wrk on CPU 1).
        #[arg(long)]
        no_pin: bool,
    },
    /// Draws the JSON lines of `import` and `dispatch` runs (a scale curve) as an SVG of seconds
    /// and peak memory against rows, one line per bench and backend.
    Plot {
        /// Files of JSON lines as the benches print them (other lines are ignored).
        #[arg(required = true)]
        inputs: Vec<std::path::PathBuf>,
        /// Where to write the SVG.
        #[arg(long, short)]
        output: std::path::PathBuf,
    },
    /// Fills a database for `dispatch` (run by it as a child process, so that the import's
    /// memory is not counted in the dispatch's peak).
    #[command(hide = true)]
    Prepare {
        #[arg(long)]
        url: String,
        #[arg(long)]
        recipients: u64,
        /// A third outreach, for `--profile`'s two-update floor.
        #[arg(long)]
        floor: bool,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Bench::Import {
            rows,
            postgres,
            seed,
            dedup_memory_rows,
        } => {
            let mut limits = herald_engine::ImportLimits::default();
            if let Some(n) = dedup_memory_rows {
                limits.dedup_memory_rows = n;
            }
            for rows in rows {
                import_bench(rows, postgres.as_deref(), seed, &limits).await?;
            }
            Ok(())
        }
        Bench::Dispatch {
            recipients,
            batch,
            postgres,
            profile,
            no_journal,
        } => {
            dispatch::NO_JOURNAL.store(no_journal, std::sync::atomic::Ordering::Relaxed);
            for recipients in recipients {
                dispatch::dispatch_bench(recipients, batch, postgres.as_deref(), profile).await?;
            }
            Ok(())
        }
        Bench::Plot { inputs, output } => plot::plot_files(&inputs, &output),
        Bench::Cluster {
            postgres,
            herald,
            nodes,
            latency_ms,
            recipients,
            rate,
            limited_secs,
            batch,
            concurrency,
        } => {
            cluster::cluster_bench(cluster::Options {
                herald: herald.unwrap_or_else(cluster::default_herald),
                postgres,
                nodes,
                latency_ms,
                recipients,
                rate,
                limited_secs,
                batch,
                concurrency,
            })
            .await
        }
        Bench::Chat {
            herald,
            postgres,
            wrk,
            connections,
            threads,
            duration_secs,
            rounds,
            pace_ms,
            streams,
            streams_per_conversation,
            rust_log,
            no_pin,
        } => {
            chat::chat_bench(chat::Options {
                herald: herald.unwrap_or_else(cluster::default_herald),
                postgres,
                wrk,
                connections,
                threads,
                duration_secs,
                rounds,
                pace_ms,
                streams,
                streams_per_conversation,
                rust_log,
                pin: !no_pin,
            })
            .await
        }
        Bench::Prepare {
            url,
            recipients,
            floor,
        } => dispatch::prepare(&url, recipients, floor).await,
    }
}

// ---------------------------------------------------------------- the file

const FIRST: &[&str] = &[
    "Ana", "Ben", "Chloé", "Dmitri", "Eve", "Farah", "Günter", "Hana", "Ivan", "Jo", "Kofi",
    "Lena", "Mateo", "Nia", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tariq", "Uma", "Viktor",
    "Wen", "Yara",
];
const LAST: &[&str] = &[
    "Smith", "García", "Müller", "Nguyen", "O'Brien", "Kowalski", "Rossi", "Haddad", "Kim",
    "Silva", "Johnson", "Dubois", "Novak", "Tanaka", "Okafor", "Larsen",
];
const ZONES: &[&str] = &[
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "America/Phoenix",
    "Europe/London",
    "Europe/Berlin",
    "",
];
const AREA: &[u32] = &[
    212, 213, 305, 312, 404, 415, 503, 512, 617, 702, 720, 206, 214, 303,
];
const CITIES: &[&str] = &[
    "Springfield",
    "Riverside",
    "Franklin",
    "Greenville",
    "Bristol",
    "Salem",
];

/// Writes `rows` recipients: phone (US numbers in several spellings, some UK), names, email,
/// time zone, order id and city; about 2% invalid numbers and 1% repeated numbers.
fn generate(path: &Path, rows: u64, seed: u64) -> anyhow::Result<()> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    writeln!(
        out,
        "phone,first_name,last_name,email,timezone,order_id,city"
    )?;
    let mut recent: Vec<String> = Vec::with_capacity(1024);
    for i in 0..rows {
        let roll = rng.random_range(0..1000u32);
        let phone = if roll < 20 {
            [
                "555-01",
                "call me",
                "+1 212 000 0000",
                "12345",
                "+999 12 3456",
            ][i as usize % 5]
                .to_string()
        } else if roll < 30 && !recent.is_empty() {
            recent[rng.random_range(0..recent.len())].clone()
        } else {
            let area = AREA[rng.random_range(0..AREA.len())];
            let exchange = rng.random_range(200..999u32);
            let exchange = if exchange % 100 == 11 {
                exchange + 1
            } else {
                exchange
            };
            let line = rng.random_range(0..10_000u32);
            let p = match roll % 4 {
                0 => format!("+1 ({area}) {exchange}-{line:04}"),
                1 => format!("({area}) {exchange}-{line:04}"),
                2 => format!("+1{area}{exchange}{line:04}"),
                _ if roll % 50 == 3 => format!("+44 7911 {:06}", rng.random_range(0..1_000_000u32)),
                _ => format!("{area}.{exchange}.{line:04}"),
            };
            if recent.len() < 1024 {
                recent.push(p.clone());
            } else {
                let k = rng.random_range(0..1024);
                recent[k] = p.clone();
            }
            p
        };
        let first = FIRST[rng.random_range(0..FIRST.len())];
        let last = LAST[rng.random_range(0..LAST.len())];
        let zone = ZONES[rng.random_range(0..ZONES.len())];
        let city = CITIES[rng.random_range(0..CITIES.len())];
        writeln!(
            out,
            "{phone},{first},\"{last}\",{}.{}{i}@example.com,{zone},ORD-{:08},{city}",
            first.to_lowercase(),
            last.to_lowercase().replace('\'', ""),
            rng.random_range(0..100_000_000u32)
        )?;
    }
    out.flush()?;
    Ok(())
}

// ---------------------------------------------------------------- measuring

/// The process's peak resident set since the last reset, in MiB.
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Resets the peak resident set (Linux: writing 5 to clear_refs), so each backend reports its own.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// A campaign on `channel` from `from` (provider `file`, in a new inbox) with one answer variant
/// and `schedule`: the world both benchmarks set up before they measure.
pub(crate) async fn bench_campaign(
    store: &dyn Store,
    channel: herald_core::Channel,
    from: Address,
    variant: AnswerVariantInput,
    schedule: ScheduleInput,
) -> anyhow::Result<uuid::Uuid> {
    let inbox = store
        .create_inbox(&InboxSpec {
            name: "Bench".into(),
            ..Default::default()
        })
        .await?;
    let sender = store
        .create_sender(&SenderSpec {
            channel,
            address: from,
            inbox_id: inbox.id,
            provider: Provider::File,
        })
        .await?;
    let language = variant.language.clone();
    let answer = store
        .create_answer(
            &AnswerInput {
                name: "Bench answer".into(),
                variants: vec![variant],
            }
            .validate()?,
        )
        .await?;
    let spec = CampaignInput {
        name: "Bench".into(),
        channel: channel.to_string(),
        sender_id: Some(sender.id),
        language,
        answer_id: Some(answer.id),
        schedule: Some(schedule),
        ..CampaignInput::default()
    }
    .validate()?;
    Ok(store.create_campaign(&spec).await?.id)
}

/// The import benchmark's SMS campaign.
async fn campaign(store: &dyn Store) -> anyhow::Result<uuid::Uuid> {
    bench_campaign(
        store,
        herald_core::Channel::Sms,
        Address::Phone(E164::parse("+14155550100", None)?),
        AnswerVariantInput {
            language: "en-US".into(),
            subject: None,
            body: "Hi {{ first_name }}, order {{ order_id }} ships late.".into(),
            voice: None,
        },
        ScheduleInput {
            timezone: "America/New_York".into(),
            days: [("mon".to_string(), vec!["09:00-17:00".to_string()])].into(),
            closed_dates: Vec::new(),
        },
    )
    .await
}

/// Herald's import of the file into `store`: seconds and the summary.
async fn herald_import(
    store: Arc<dyn Store>,
    csv: &Path,
    limits: &herald_engine::ImportLimits,
) -> anyhow::Result<(f64, herald_store::ImportSummary)> {
    let campaign_id = campaign(store.as_ref()).await?;
    reset_peak_rss();
    let started = Instant::now();
    let outreach = import_file(store, campaign_id, csv, *limits).await?;
    Ok((started.elapsed().as_secs_f64(), outreach.summary))
}

/// Imports the file as an outreach of `campaign_id` starting now, as an upload does.
async fn import_file(
    store: Arc<dyn Store>,
    campaign_id: uuid::Uuid,
    csv: &Path,
    limits: herald_engine::ImportLimits,
) -> anyhow::Result<herald_store::Outreach> {
    herald_engine::import_outreach(
        store,
        herald_engine::OutreachUpload {
            campaign_id,
            file: std::fs::File::open(csv)?,
            file_name: "bench.csv".into(),
            start_at: herald_engine::Clock::now(&herald_engine::SystemClock),
            end_at: None,
            default_region: None,
            limits,
        },
        Arc::new(|_| {}),
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))
}

fn run_timed(cmd: &mut Command) -> anyhow::Result<f64> {
    let started = Instant::now();
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    let secs = started.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(secs)
}

fn report(
    backend: &str,
    rows: u64,
    herald_s: f64,
    baseline_s: f64,
    peak: f64,
    summary: &herald_store::ImportSummary,
    limits: &herald_engine::ImportLimits,
) {
    println!(
        "{}",
        serde_json::json!({
            "backend": backend,
            "rows": rows,
            "herald_s": (herald_s * 1000.0).round() / 1000.0,
            "baseline_s": (baseline_s * 1000.0).round() / 1000.0,
            "ratio": ((herald_s / baseline_s) * 100.0).round() / 100.0,
            "peak_rss_mb": peak.round(),
            "accepted": summary.accepted,
            "invalid": summary.invalid,
            "duplicates": summary.duplicates,
            "repeats_found": if rows > limits.dedup_memory_rows { "on disk" } else { "in memory" },
        })
    );
}

async fn import_bench(
    rows: u64,
    postgres: Option<&str>,
    seed: u64,
    limits: &herald_engine::ImportLimits,
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let csv = dir.path().join("recipients.csv");
    generate(&csv, rows, seed)?;
    let csv_text = csv.to_str().context("temp path is not UTF-8")?.to_string();

    // SQLite: Herald into a fresh database file, then sqlite3's .import into a bare table.
    let db = dir.path().join("herald.db");
    let store = herald_store::connect(&format!("sqlite://{}", db.display())).await?;
    store.migrate().await?;
    let (herald_s, summary) = herald_import(store.clone(), &csv, limits).await?;
    let peak = peak_rss_mb();
    drop(store);
    let bare = dir.path().join("bare.db");
    let baseline_s = run_timed(
        Command::new("sqlite3")
            .arg(&bare)
            .arg(".mode csv")
            .arg(format!(".import {csv_text} recipients")),
    )?;
    report("sqlite", rows, herald_s, baseline_s, peak, &summary, limits);

    if let Some(url) = postgres {
        let name = format!("herald_bench_{}", uuid::Uuid::now_v7().simple());
        let admin = sqlx::PgPool::connect(url).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&admin)
            .await?;
        let db_url = with_database(url, &name);
        let result = async {
            let store = herald_store::connect(&db_url).await?;
            store.migrate().await?;
            let (herald_s, summary) = herald_import(store.clone(), &csv, limits).await?;
            let peak = peak_rss_mb();
            drop(store);
            run_timed(Command::new("psql").args([
                &db_url,
                "-q",
                "-c",
                "CREATE TABLE bare (phone text, first_name text, last_name text, email text, \
                 timezone text, order_id text, city text)",
            ]))?;
            let baseline_s = run_timed(Command::new("psql").args([
                &db_url,
                "-q",
                "-c",
                &format!("\\copy bare FROM '{csv_text}' WITH (FORMAT csv, HEADER true)"),
            ]))?;
            report(
                "postgres", rows, herald_s, baseline_s, peak, &summary, limits,
            );
            anyhow::Ok(())
        }
        .await;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&admin)
        .await?;
        result?;
    }
    Ok(())
}

/// The median of `values` (the mean of the middle two for an even count; NaN for none).
pub(crate) fn median(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.into_iter().collect();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The same server url with another database name.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median([3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median([4.0, 1.0]), 2.5);
        assert!(median(std::iter::empty()).is_nan());
    }

    #[test]
    fn database_name_is_replaced() {
        assert_eq!(
            with_database("postgres://root@127.0.0.1:5432/postgres", "b"),
            "postgres://root@127.0.0.1:5432/b"
        );
        assert_eq!(
            with_database("postgres://u:p@h/db?sslmode=disable", "b"),
            "postgres://u:p@h/b?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "b"), "postgres://h/b");
    }

    #[test]
    fn generated_file_has_the_promised_shape() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.csv");
        generate(&path, 2000, 1).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2001);
        assert_eq!(
            lines[0],
            "phone,first_name,last_name,email,timezone,order_id,city"
        );
        let invalid = lines[1..]
            .iter()
            .filter(|l| {
                let phone = l.split(',').next().unwrap();
                E164::parse(phone, Some("US")).is_err()
            })
            .count();
        assert!((20..=70).contains(&invalid), "{invalid} invalid of 2000");
    }
}
