//! `herald-bench dispatch --recipients N [--batch B] [--postgres URL] [--profile]
//! [--no-journal]`: one outreach of N email recipients sent through Herald's real dispatcher
//! (claim, render, send, record; the local journal on, as `herald serve` runs it, unless
//! `--no-journal`) to a transport that accepts every message at once, beside the bare store
//! limit: N recipient rows of another outreach in the same database set to `sent` by plain SQL,
//! `B` rows a transaction.
//!
//! The database is filled by a child process (`herald-bench prepare`, hidden), so the import's
//! memory is not in this process: `peak_rss_mb` is the high-water mark of the dispatch alone
//! (reset just before it, so it includes the process at rest: runtime, pool, connections).

use crate::{peak_rss_mb, reset_peak_rss, with_database};
use anyhow::{Context, bail, ensure};
use async_trait::async_trait;
use herald_channels::{Accepted, OutboundMessage, SendError, Transport, Transports};
use herald_core::outreach::{CrashPolicy, DeliveryState, OutreachStatus, Progress, SkipReason};
use herald_core::schedule::ScheduleInput;
use herald_core::{
    Address, Answer, AnswerSpec, AnswerVariantInput, ApiToken, Campaign, CampaignSpec, Channel,
    EmailAddress, Inbox, InboxSpec, Listing, Page, Provider, Sender, SenderSpec,
};
use herald_engine::{Clock, DispatchConfig, Dispatcher, RateConfig, SystemClock, UnsubscribeLinks};
use herald_store::{
    ClaimedRecipient, Conversation, Customer, DeliveryResult, ImportErrorRecord, InboundMessage,
    LiveOutreach, Message, NewOutreach, NewToken, OutboundRecord, Outreach, OutreachImport,
    Received, RecipientRecord, SentMessage, StatusApplied, StatusReport, Store, Suppression,
};
use jiff::{SignedDuration, Timestamp};
use std::collections::HashSet;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// What `prepare` made, for the parent to find.
#[derive(serde::Serialize, serde::Deserialize)]
struct Prepared {
    /// Starts an hour ago: the dispatcher sends it.
    herald: Uuid,
    /// Starts in a year: the dispatcher leaves it alone; the baseline updates its rows.
    baseline: Uuid,
    /// With `--profile`: like `baseline`, for the two-update floor.
    floor: Option<Uuid>,
}

// ---------------------------------------------------------------- prepare (child process)

const NAMES: &[&str] = &[
    "Ana", "Ben", "Chloé", "Dmitri", "Eve", "Farah", "Günter", "Hana", "Ivan", "Jo", "Kofi",
    "Lena", "Mateo", "Nia", "Omar", "Priya",
];

/// `email,name,order_id`: N distinct addresses.
fn generate(path: &Path, rows: u64) -> anyhow::Result<()> {
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    writeln!(out, "email,name,order_id")?;
    for i in 0..rows {
        let name = NAMES[(i % NAMES.len() as u64) as usize];
        writeln!(
            out,
            "{}.{i}@example.com,{name},ORD-{:08}",
            name.to_lowercase(),
            (i * 7919) % 100_000_000
        )?;
    }
    out.flush()?;
    Ok(())
}

/// An email campaign open all day, every day, with a subject and a body that use variables.
async fn email_campaign(store: &dyn Store) -> anyhow::Result<Uuid> {
    let days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        .map(|d| (d.to_string(), vec!["00:00-24:00".to_string()]))
        .into();
    crate::bench_campaign(
        store,
        Channel::Email,
        Address::Email(EmailAddress::parse("orders@shop.example.com")?),
        AnswerVariantInput {
            language: "en-US".into(),
            subject: Some("Your order {{ order_id }} has shipped".into()),
            body: "Hello {{ name }}, your order {{ order_id }} is on its way and should \
                   arrive within three days. Reply to this email if anything is wrong."
                .into(),
            voice: None,
        },
        ScheduleInput {
            timezone: "UTC".into(),
            days,
            closed_dates: Vec::new(),
        },
    )
    .await
}

async fn import(
    store: Arc<dyn Store>,
    campaign_id: Uuid,
    csv: &Path,
    start_at: Timestamp,
) -> anyhow::Result<Uuid> {
    let outreach = herald_engine::import_outreach(
        store,
        herald_engine::OutreachUpload {
            campaign_id,
            file: std::fs::File::open(csv)?,
            file_name: "bench.csv".into(),
            start_at,
            end_at: None,
            default_region: None,
            limits: herald_engine::ImportLimits::default(),
        },
        Arc::new(|_| {}),
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(outreach.id)
}

/// `herald-bench prepare`: migrates the database at `url` and imports two outreaches of
/// `recipients` each (three with `floor`); prints their ids as one JSON line.
pub async fn prepare(url: &str, recipients: u64, floor: bool) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let csv = dir.path().join("recipients.csv");
    generate(&csv, recipients)?;
    let (store, pool) = open(url).await?;
    store.migrate().await?;
    let campaign_id = email_campaign(store.as_ref()).await?;
    let now = SystemClock.now();
    let herald = import(
        store.clone(),
        campaign_id,
        &csv,
        now - SignedDuration::from_hours(1),
    )
    .await?;
    let baseline = import(
        store.clone(),
        campaign_id,
        &csv,
        now + SignedDuration::from_hours(24 * 365),
    )
    .await?;
    let floor = match floor {
        true => Some(
            import(
                store.clone(),
                campaign_id,
                &csv,
                now + SignedDuration::from_hours(24 * 365),
            )
            .await?,
        ),
        false => None,
    };
    for id in [herald, baseline].into_iter().chain(floor) {
        let accepted = store.get_outreach(id).await?.summary.accepted;
        ensure!(
            accepted == recipients,
            "outreach {id} accepted {accepted} of {recipients} rows"
        );
    }
    // Leave nothing of the import for the timed runs to pay: SQLite's write-ahead log is
    // copied into the database and emptied (else the first commit of the Herald run would
    // checkpoint it); PostgreSQL's new rows are vacuumed (hint bits, visibility map) and the
    // table analyzed, as autovacuum would do some time after an import.
    match &pool {
        Pool::Sqlite(p) => {
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(p)
                .await?;
        }
        Pool::Postgres(p) => {
            sqlx::query("VACUUM ANALYZE recipients").execute(p).await?;
        }
    }
    pool.close().await;
    println!(
        "{}",
        serde_json::to_string(&Prepared {
            herald,
            baseline,
            floor
        })?
    );
    Ok(())
}

/// Runs `prepare` in a child process.
fn prepare_in_child(url: &str, recipients: u64, floor: bool) -> anyhow::Result<Prepared> {
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    cmd.args(["prepare", "--url", url, "--recipients"])
        .arg(recipients.to_string());
    if floor {
        cmd.arg("--floor");
    }
    let out = cmd.output().context("cannot run herald-bench prepare")?;
    if !out.status.success() {
        bail!("prepare failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let stdout = String::from_utf8(out.stdout)?;
    let line = stdout.lines().last().context("prepare printed nothing")?;
    Ok(serde_json::from_str(line)?)
}

const LINK_BASE: &str = "https://herald.example.com";
const LINK_KEY: &[u8] = b"bench secret, 32 bytes or so....";

// ---------------------------------------------------------------- the channel

/// Accepts every message at once, and counts them. Its answer carries the message id an SMTP
/// server's acceptance gives Herald (the `Message-ID` it wrote), as a real provider's does: the
/// store keeps it and indexes it for status reports.
#[derive(Default)]
struct NullTransport {
    sent: AtomicU64,
}

#[async_trait]
impl Transport for NullTransport {
    fn name(&self) -> &'static str {
        "file"
    }

    async fn send(&self, msg: &OutboundMessage) -> Result<Accepted, SendError> {
        self.sent.fetch_add(1, Ordering::Relaxed);
        Ok(Accepted {
            provider_message_id: Some(herald_channels::smtp::message_id(msg)?),
        })
    }
}

// ---------------------------------------------------------------- the two runs

/// The store a backend was opened as: the trait object the dispatcher uses, and the same pool
/// for the baseline's plain SQL.
enum Pool {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl Pool {
    async fn close(&self) {
        match self {
            Pool::Sqlite(p) => p.close().await,
            Pool::Postgres(p) => p.close().await,
        }
    }
}

async fn open(url: &str) -> anyhow::Result<(Arc<dyn Store>, Pool)> {
    if url.starts_with("sqlite:") {
        let store = herald_store::SqliteStore::connect(url).await?;
        let pool = Pool::Sqlite(store.pool().clone());
        Ok((Arc::new(store), pool))
    } else {
        let store = herald_store::PgStore::connect(url).await?;
        let pool = Pool::Postgres(store.pool().clone());
        Ok((Arc::new(store), pool))
    }
}

/// Set by `--no-journal`: the dispatcher runs without its local journal (as before the journal
/// recorded each send), to measure what the journal costs.
pub static NO_JOURNAL: AtomicBool = AtomicBool::new(false);

/// Herald's run: ticks the dispatcher until the outreach is completed. Seconds, and the
/// breakdown when profiling.
async fn herald_run(
    store: Arc<dyn Store>,
    outreach: Uuid,
    recipients: u64,
    batch: u32,
    profile: bool,
) -> anyhow::Result<(f64, Option<serde_json::Value>)> {
    let timed = profile.then(|| Arc::new(TimedStore::new(store.clone())));
    let dispatch_store: Arc<dyn Store> = match &timed {
        Some(t) => t.clone(),
        None => store.clone(),
    };
    let transport = Arc::new(NullTransport::default());
    let mut transports = Transports::new();
    transports.insert(Provider::File, transport.clone());
    let journal_dir = tempfile::tempdir()?;
    let config = DispatchConfig {
        batch_size: batch,
        // As `herald serve` runs it: every send is written to the journal before it is made.
        journal: (!NO_JOURNAL.load(Ordering::Relaxed))
            .then(|| journal_dir.path().join("herald-dispatch-journal.jsonl")),
        rates: RateConfig {
            sms: f64::INFINITY,
            voice: f64::INFINITY,
            email: f64::INFINITY,
            ..RateConfig::default()
        },
        ..DispatchConfig::default()
    };
    // As `herald serve` builds it: emails carry signed unsubscribe links.
    let dispatcher = Dispatcher::new(dispatch_store, transports, Arc::new(SystemClock), config)
        .with_unsubscribe_links(UnsubscribeLinks::new(LINK_BASE, LINK_KEY));
    // As `run` does first: takes the journal's slot (and finds it empty).
    dispatcher
        .replay_journal()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;

    let started = Instant::now();
    let mut ticks = 0u64;
    let mut idle = 0u32;
    loop {
        let report = dispatcher
            .tick()
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        ticks += 1;
        if store.outreach_status(outreach).await? == OutreachStatus::Completed {
            break;
        }
        let busy = report.sent + report.completed + report.started + report.retried;
        idle = if busy == 0 { idle + 1 } else { 0 };
        ensure!(
            idle < 100,
            "the dispatcher made no progress for 100 ticks: {report:?}"
        );
    }
    let secs = started.elapsed().as_secs_f64();

    let sent = transport.sent.load(Ordering::Relaxed);
    ensure!(
        sent == recipients,
        "the transport carried {sent} messages, not {recipients}"
    );
    let progress = store.outreach_progress(outreach).await?;
    ensure!(
        progress.sent == recipients && progress.total == recipients,
        "the outreach shows {progress:?}, not {recipients} sent"
    );
    let breakdown = timed.map(|t| t.report(secs, ticks));
    Ok((secs, breakdown))
}

/// The smallest recipient id of the outreach (not timed).
async fn first_id(pool: &Pool, outreach: Uuid) -> anyhow::Result<i64> {
    let sql = "SELECT coalesce(min(id), 1) FROM recipients WHERE outreach_id = $1";
    Ok(match pool {
        Pool::Sqlite(p) => {
            sqlx::query_as::<_, (i64,)>(sql)
                .bind(outreach)
                .fetch_one(p)
                .await?
        }
        Pool::Postgres(p) => {
            sqlx::query_as::<_, (i64,)>(sql)
                .bind(outreach)
                .fetch_one(p)
                .await?
        }
    }
    .0)
}

/// The bare store limit: the outreach's pending rows set to `sent`, `batch` at a time, one
/// transaction each, in id order. Seconds.
async fn baseline_run(
    pool: &Pool,
    outreach: Uuid,
    recipients: u64,
    batch: u32,
) -> anyhow::Result<f64> {
    // PostgreSQL walks the outreach's rows by id from the last one updated (keyset): its planner
    // otherwise scans the primary key from the first recipient of the database, through every
    // row of the other outreaches, for each batch (1M recipients took 631 s so).
    let mut after = first_id(pool, outreach).await? - 1;
    let started = Instant::now();
    let mut updated = 0u64;
    loop {
        let now_us = SystemClock.now().as_microsecond();
        let n = match pool {
            Pool::Sqlite(pool) => {
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                let n = sqlx::query(
                    "UPDATE recipients SET state = 'sent', sent_at = $1, updated_at = $1 \
                     WHERE id IN (SELECT id FROM recipients \
                                  WHERE outreach_id = $2 AND state = 'pending' \
                                  ORDER BY id LIMIT $3)",
                )
                .bind(now_us)
                .bind(outreach)
                .bind(i64::from(batch))
                .execute(&mut *tx)
                .await?
                .rows_affected();
                tx.commit().await?;
                n
            }
            Pool::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let (n, last): (i64, i64) = sqlx::query_as(
                    "WITH done AS ( \
                       UPDATE recipients \
                       SET state = 'sent', \
                           sent_at = timestamptz 'epoch' + $1::int8 * interval '1 microsecond', \
                           updated_at = timestamptz 'epoch' + $1::int8 * interval '1 microsecond' \
                       WHERE id IN (SELECT id FROM recipients \
                                    WHERE outreach_id = $2 AND state = 'pending' AND id > $4 \
                                    ORDER BY id LIMIT $3) \
                       RETURNING id) \
                     SELECT count(*), coalesce(max(id), 0) FROM done",
                )
                .bind(now_us)
                .bind(outreach)
                .bind(i64::from(batch))
                .bind(after)
                .fetch_one(&mut *tx)
                .await?;
                tx.commit().await?;
                after = last;
                n as u64
            }
        };
        if n == 0 {
            break;
        }
        updated += n;
    }
    let secs = started.elapsed().as_secs_f64();
    ensure!(
        updated == recipients,
        "the baseline updated {updated} rows, not {recipients}"
    );
    Ok(secs)
}

/// The floor of a claim-then-record design, by plain SQL: each batch of the outreach's pending
/// rows written twice, as Herald writes them: claimed (`sending`, leased, `attempts + 1`) in one
/// statement, then `sent` (lease cleared) in a second transaction. No read-back, no rendering.
/// Seconds in all, in the first statements and in the second.
async fn two_updates_run(
    pool: &Pool,
    outreach: Uuid,
    recipients: u64,
    batch: u32,
) -> anyhow::Result<(f64, f64, f64)> {
    // PostgreSQL walks the outreach's rows by id from the last one updated (keyset): its planner
    // otherwise scans the primary key from the first recipient of the database, through every
    // row of the other outreaches, for each batch (1M recipients took 631 s so).
    let mut after = first_id(pool, outreach).await? - 1;
    let started = Instant::now();
    let mut updated = 0u64;
    let (mut first, mut second) = (Duration::ZERO, Duration::ZERO);
    loop {
        let t0 = Instant::now();
        let t1: Instant;
        let now_us = SystemClock.now().as_microsecond();
        let lease_us = now_us + 120_000_000;
        let n = match pool {
            Pool::Sqlite(pool) => {
                let n = sqlx::query(
                    "UPDATE recipients SET state = 'sending', lease_until = $1, \
                     attempts = attempts + 1, updated_at = $2 \
                     WHERE id IN (SELECT id FROM recipients \
                                  WHERE outreach_id = $3 AND state = 'pending' \
                                  ORDER BY id LIMIT $4)",
                )
                .bind(lease_us)
                .bind(now_us)
                .bind(outreach)
                .bind(i64::from(batch))
                .execute(pool)
                .await?
                .rows_affected();
                t1 = Instant::now();
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                sqlx::query(
                    "UPDATE recipients SET state = 'sent', lease_until = NULL, sent_at = $1, \
                     updated_at = $1 WHERE outreach_id = $2 AND state = 'sending'",
                )
                .bind(now_us)
                .bind(outreach)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                n
            }
            Pool::Postgres(pool) => {
                let (n, last): (i64, i64) = sqlx::query_as(
                    "WITH done AS ( \
                       UPDATE recipients \
                       SET state = 'sending', \
                           lease_until = timestamptz 'epoch' + $1::int8 * interval '1 microsecond', \
                           attempts = attempts + 1, \
                           updated_at = timestamptz 'epoch' + $2::int8 * interval '1 microsecond' \
                       WHERE id IN (SELECT id FROM recipients \
                                    WHERE outreach_id = $3 AND state = 'pending' AND id > $5 \
                                    ORDER BY id LIMIT $4) \
                       RETURNING id) \
                     SELECT count(*), coalesce(max(id), 0) FROM done",
                )
                .bind(lease_us)
                .bind(now_us)
                .bind(outreach)
                .bind(i64::from(batch))
                .bind(after)
                .fetch_one(pool)
                .await?;
                let n = n as u64;
                t1 = Instant::now();
                let mut tx = pool.begin().await?;
                sqlx::query(
                    "UPDATE recipients \
                     SET state = 'sent', lease_until = NULL, \
                         sent_at = timestamptz 'epoch' + $1::int8 * interval '1 microsecond', \
                         updated_at = timestamptz 'epoch' + $1::int8 * interval '1 microsecond' \
                     WHERE outreach_id = $2 AND state = 'sending' AND id > $3 AND id <= $4",
                )
                .bind(now_us)
                .bind(outreach)
                .bind(after)
                .bind(last)
                .execute(&mut *tx)
                .await?;
                after = last;
                tx.commit().await?;
                n
            }
        };
        first += t1 - t0;
        second += t1.elapsed();
        if n == 0 {
            break;
        }
        updated += n;
    }
    let secs = started.elapsed().as_secs_f64();
    ensure!(
        updated == recipients,
        "the two-update floor updated {updated} rows, not {recipients}"
    );
    Ok((secs, first.as_secs_f64(), second.as_secs_f64()))
}

/// The dispatcher's own steps for one email, each timed over every recipient on this thread:
/// parsing the stored address, rendering subject and body, the idempotency key and signed
/// unsubscribe link. The inputs are the rows `prepare` imported, made again in memory.
async fn message_steps(
    store: &dyn Store,
    outreach: Uuid,
    recipients: u64,
    batch: u32,
) -> anyhow::Result<serde_json::Value> {
    let campaign = store
        .get_campaign(store.get_outreach(outreach).await?.campaign_id)
        .await?;
    let answer = store.get_answer(campaign.answer_id).await?;
    let variant = answer
        .variant(&campaign.language)
        .context("the answer has no variant")?;
    let renderer = herald_core::Renderer::new(variant)?;
    let links = UnsubscribeLinks::new(LINK_BASE, LINK_KEY);
    let (mut parse, mut render, mut link) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let mut sink = 0usize;
    let mut i = 0u64;
    while i < recipients {
        let rows: Vec<(String, String)> = (i..recipients.min(i + u64::from(batch)))
            .map(|i| {
                let name = NAMES[(i % NAMES.len() as u64) as usize];
                (
                    format!("{}.{i}@example.com", name.to_lowercase()),
                    format!(
                        r#"{{"name":"{name}","order_id":"ORD-{:08}"}}"#,
                        (i * 7919) % 100_000_000
                    ),
                )
            })
            .collect();
        let t = Instant::now();
        for (address, _) in &rows {
            sink += EmailAddress::parse(address)?.as_str().len();
        }
        parse += t.elapsed();
        let t = Instant::now();
        for (_, variables) in &rows {
            sink += renderer.render_json(variables)?.body.len();
        }
        render += t.elapsed();
        let t = Instant::now();
        for (n, _) in rows.iter().enumerate() {
            let key = herald_core::outreach::idempotency_key(outreach, (i as i64) + n as i64);
            sink += links.url(&key).len();
        }
        link += t.elapsed();
        i += rows.len() as u64;
    }
    std::hint::black_box(sink);
    let per = |d: Duration| round(d.as_secs_f64() * 1e6 / recipients as f64, 100.0);
    Ok(serde_json::json!({
        "parse_address_us": per(parse),
        "render_us": per(render),
        "key_and_link_us": per(link),
        "total_s": round((parse + render + link).as_secs_f64(), 1000.0),
    }))
}

/// The printed line, in this order.
#[derive(serde::Serialize)]
struct Line<'a> {
    backend: &'a str,
    recipients: u64,
    herald_s: f64,
    baseline_s: f64,
    ratio: f64,
    peak_rss_mb: f64,
    batch: u32,
    journal: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    profile: Option<serde_json::Value>,
}

fn round(x: f64, per: f64) -> f64 {
    (x * per).round() / per
}

/// Fills the database at `url` (in a child), then times Herald and the baseline on it and prints
/// the line.
async fn bench_backend(
    backend: &str,
    url: &str,
    recipients: u64,
    batch: u32,
    profile: bool,
) -> anyhow::Result<()> {
    let prepared = prepare_in_child(url, recipients, profile)?;
    let (store, pool) = open(url).await?;
    store.ping().await?;
    reset_peak_rss();
    // Just after a reset the peak is the resident set now: the process at rest.
    let at_rest = peak_rss_mb();
    let (herald_s, mut breakdown) =
        herald_run(store.clone(), prepared.herald, recipients, batch, profile).await?;
    if let Some(b) = &mut breakdown {
        b["rss_at_start_mb"] = at_rest.round().into();
    }
    let peak = peak_rss_mb();
    let baseline_s = baseline_run(&pool, prepared.baseline, recipients, batch).await?;
    let breakdown = match (breakdown, prepared.floor) {
        (Some(mut b), Some(floor)) => {
            let (floor_s, claim_s, sent_s) =
                two_updates_run(&pool, floor, recipients, batch).await?;
            b["two_updates"] = serde_json::json!({
                "s": round(floor_s, 1000.0),
                "ratio": round(floor_s / baseline_s, 100.0),
                "claim_update_s": round(claim_s, 1000.0),
                "sent_update_s": round(sent_s, 1000.0),
            });
            b["message_steps"] =
                message_steps(store.as_ref(), prepared.herald, recipients, batch).await?;
            Some(b)
        }
        (b, _) => b,
    };
    let line = Line {
        backend,
        recipients,
        herald_s: round(herald_s, 1000.0),
        baseline_s: round(baseline_s, 1000.0),
        ratio: round(herald_s / baseline_s, 100.0),
        peak_rss_mb: peak.round(),
        batch,
        journal: !NO_JOURNAL.load(Ordering::Relaxed),
        profile: breakdown,
    };
    println!("{}", serde_json::to_string(&line)?);
    pool.close().await;
    Ok(())
}

pub async fn dispatch_bench(
    recipients: u64,
    batch: u32,
    postgres: Option<&str>,
    profile: bool,
) -> anyhow::Result<()> {
    ensure!(recipients > 0, "--recipients must be at least 1");
    ensure!(batch > 0, "--batch must be at least 1");
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("herald.db");
    bench_backend(
        "sqlite",
        &format!("sqlite://{}", db.display()),
        recipients,
        batch,
        profile,
    )
    .await?;

    if let Some(url) = postgres {
        let name = format!("herald_bench_{}", Uuid::now_v7().simple());
        let admin = sqlx::PgPool::connect(url).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&admin)
            .await?;
        let result = bench_backend(
            "postgres",
            &with_database(url, &name),
            recipients,
            batch,
            profile,
        )
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

// ---------------------------------------------------------------- --profile

/// Time spent in one kind of store call.
#[derive(Default)]
struct Tally {
    calls: AtomicU64,
    nanos: AtomicU64,
}

impl Tally {
    fn add(&self, since: Instant) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.nanos
            .fetch_add(since.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }

    fn secs(&self) -> f64 {
        Duration::from_nanos(self.nanos.load(Ordering::Relaxed)).as_secs_f64()
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "calls": self.calls.load(Ordering::Relaxed),
            "s": round(self.secs(), 1000.0),
        })
    }
}

/// A store that times the calls the dispatcher makes (wall clock, as the dispatcher waits for
/// them) and passes everything through. What is not in the store is the dispatcher's own work:
/// rendering, building messages, sending (instant here) and its bookkeeping.
struct TimedStore {
    inner: Arc<dyn Store>,
    claim: Tally,
    record: Tally,
    live: Tally,
    status: Tally,
    /// The campaign, sender and answer, read once per tick.
    context: Tally,
    /// Start, complete, expire, lease recovery, suppression (the opt-out checks of each batch
    /// included).
    other: Tally,
}

impl TimedStore {
    fn new(inner: Arc<dyn Store>) -> Self {
        Self {
            inner,
            claim: Tally::default(),
            record: Tally::default(),
            live: Tally::default(),
            status: Tally::default(),
            context: Tally::default(),
            other: Tally::default(),
        }
    }

    fn report(&self, total: f64, ticks: u64) -> serde_json::Value {
        let store = self.claim.secs()
            + self.record.secs()
            + self.live.secs()
            + self.status.secs()
            + self.context.secs()
            + self.other.secs();
        serde_json::json!({
            "ticks": ticks,
            "claim_due": self.claim.json(),
            "record_results": self.record.json(),
            "live_outreaches": self.live.json(),
            "outreach_status": self.status.json(),
            "campaign_sender_answer": self.context.json(),
            "other_store": self.other.json(),
            "outside_store_s": round(total - store, 1000.0),
        })
    }
}

macro_rules! timed {
    ($tally:expr, $call:expr) => {{
        let started = Instant::now();
        let result = $call.await;
        $tally.add(started);
        result
    }};
}

#[async_trait]
impl herald_store::Schema for TimedStore {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    async fn migrate(&self) -> herald_store::Result<()> {
        self.inner.migrate().await
    }
    async fn ping(&self) -> herald_store::Result<()> {
        self.inner.ping().await
    }
    async fn pending_migrations(&self) -> herald_store::Result<usize> {
        self.inner.pending_migrations().await
    }
}

#[async_trait]
impl herald_store::Catalog for TimedStore {
    async fn create_inbox(&self, spec: &InboxSpec) -> herald_store::Result<Inbox> {
        self.inner.create_inbox(spec).await
    }
    async fn get_inbox(&self, id: Uuid) -> herald_store::Result<Inbox> {
        self.inner.get_inbox(id).await
    }
    async fn list_inboxes(&self, page: Page) -> herald_store::Result<Listing<Inbox>> {
        self.inner.list_inboxes(page).await
    }
    async fn update_inbox(&self, id: Uuid, spec: &InboxSpec) -> herald_store::Result<Inbox> {
        self.inner.update_inbox(id, spec).await
    }
    async fn delete_inbox(&self, id: Uuid) -> herald_store::Result<()> {
        self.inner.delete_inbox(id).await
    }
    async fn create_sender(&self, spec: &SenderSpec) -> herald_store::Result<Sender> {
        self.inner.create_sender(spec).await
    }
    async fn get_sender(&self, id: Uuid) -> herald_store::Result<Sender> {
        timed!(self.context, self.inner.get_sender(id))
    }
    async fn list_senders(&self, page: Page) -> herald_store::Result<Listing<Sender>> {
        self.inner.list_senders(page).await
    }
    async fn update_sender(&self, id: Uuid, spec: &SenderSpec) -> herald_store::Result<Sender> {
        self.inner.update_sender(id, spec).await
    }
    async fn delete_sender(&self, id: Uuid) -> herald_store::Result<()> {
        self.inner.delete_sender(id).await
    }
    async fn create_answer(&self, spec: &AnswerSpec) -> herald_store::Result<Answer> {
        self.inner.create_answer(spec).await
    }
    async fn get_answer(&self, id: Uuid) -> herald_store::Result<Answer> {
        timed!(self.context, self.inner.get_answer(id))
    }
    async fn list_answers(&self, page: Page) -> herald_store::Result<Listing<Answer>> {
        self.inner.list_answers(page).await
    }
    async fn update_answer(&self, id: Uuid, spec: &AnswerSpec) -> herald_store::Result<Answer> {
        self.inner.update_answer(id, spec).await
    }
    async fn delete_answer(&self, id: Uuid) -> herald_store::Result<()> {
        self.inner.delete_answer(id).await
    }
    async fn recent_columns(
        &self,
        answer_id: Uuid,
        lists: u32,
    ) -> herald_store::Result<std::collections::BTreeSet<String>> {
        self.inner.recent_columns(answer_id, lists).await
    }
    async fn create_campaign(&self, spec: &CampaignSpec) -> herald_store::Result<Campaign> {
        self.inner.create_campaign(spec).await
    }
    async fn get_campaign(&self, id: Uuid) -> herald_store::Result<Campaign> {
        timed!(self.context, self.inner.get_campaign(id))
    }
    async fn list_campaigns(
        &self,
        channel: Option<Channel>,
        page: Page,
    ) -> herald_store::Result<Listing<Campaign>> {
        self.inner.list_campaigns(channel, page).await
    }
    async fn update_campaign(
        &self,
        id: Uuid,
        spec: &CampaignSpec,
    ) -> herald_store::Result<Campaign> {
        self.inner.update_campaign(id, spec).await
    }
    async fn delete_campaign(&self, id: Uuid) -> herald_store::Result<()> {
        self.inner.delete_campaign(id).await
    }
    async fn find_sender(
        &self,
        channel: Channel,
        address: &str,
    ) -> herald_store::Result<Option<Sender>> {
        self.inner.find_sender(channel, address).await
    }
    async fn serves_email_domain(&self, domain: &str) -> herald_store::Result<bool> {
        self.inner.serves_email_domain(domain).await
    }
}

#[async_trait]
impl herald_store::Outreaches for TimedStore {
    async fn outreach_report(
        &self,
        id: Uuid,
    ) -> herald_store::Result<herald_store::OutreachReport> {
        self.inner.outreach_report(id).await
    }
    async fn campaign_report(
        &self,
        campaign_id: Uuid,
    ) -> herald_store::Result<herald_store::OutreachReport> {
        self.inner.campaign_report(campaign_id).await
    }
    async fn release_waiting(
        &self,
        campaign_id: Uuid,
        now: Timestamp,
    ) -> herald_store::Result<u64> {
        self.inner.release_waiting(campaign_id, now).await
    }
    async fn record_opt_out(
        &self,
        outreach_id: Uuid,
        recipient_id: i64,
        at: Timestamp,
    ) -> herald_store::Result<bool> {
        self.inner
            .record_opt_out(outreach_id, recipient_id, at)
            .await
    }
    async fn opted_out_by_outreach(
        &self,
        campaign_id: Uuid,
    ) -> herald_store::Result<std::collections::HashMap<Uuid, u64>> {
        self.inner.opted_out_by_outreach(campaign_id).await
    }
    async fn begin_outreach(
        &self,
        new: &NewOutreach,
    ) -> herald_store::Result<Box<dyn OutreachImport>> {
        self.inner.begin_outreach(new).await
    }
    async fn get_outreach(&self, id: Uuid) -> herald_store::Result<Outreach> {
        self.inner.get_outreach(id).await
    }
    async fn list_outreaches(
        &self,
        campaign_id: Uuid,
        status: Option<OutreachStatus>,
        page: Page,
    ) -> herald_store::Result<Listing<Outreach>> {
        self.inner.list_outreaches(campaign_id, status, page).await
    }
    async fn import_errors(
        &self,
        outreach_id: Uuid,
        after: i64,
        limit: u32,
    ) -> herald_store::Result<Vec<(i64, ImportErrorRecord)>> {
        self.inner.import_errors(outreach_id, after, limit).await
    }
    async fn get_recipient(
        &self,
        outreach_id: Uuid,
        recipient_id: i64,
    ) -> herald_store::Result<RecipientRecord> {
        self.inner.get_recipient(outreach_id, recipient_id).await
    }
    async fn stop_outreach(&self, id: Uuid, now: Timestamp) -> herald_store::Result<Outreach> {
        self.inner.stop_outreach(id, now).await
    }
    async fn retry_failed(&self, id: Uuid, now: Timestamp) -> herald_store::Result<u64> {
        self.inner.retry_failed(id, now).await
    }
    async fn requeue_uncertain(&self, id: Uuid, now: Timestamp) -> herald_store::Result<u64> {
        self.inner.requeue_uncertain(id, now).await
    }
    async fn outreach_progress(&self, id: Uuid) -> herald_store::Result<Progress> {
        self.inner.outreach_progress(id).await
    }
    async fn list_recipients(
        &self,
        outreach_id: Uuid,
        state: Option<DeliveryState>,
        after: i64,
        limit: u32,
    ) -> herald_store::Result<Vec<RecipientRecord>> {
        self.inner
            .list_recipients(outreach_id, state, after, limit)
            .await
    }
}

#[async_trait]
impl herald_store::Dispatch for TimedStore {
    fn concurrent_writes(&self) -> bool {
        self.inner.concurrent_writes()
    }
    async fn live_outreaches(&self) -> herald_store::Result<Vec<LiveOutreach>> {
        timed!(self.live, self.inner.live_outreaches())
    }
    async fn outreach_status(&self, id: Uuid) -> herald_store::Result<OutreachStatus> {
        timed!(self.status, self.inner.outreach_status(id))
    }
    async fn start_outreach(&self, id: Uuid, now: Timestamp) -> herald_store::Result<bool> {
        timed!(self.other, self.inner.start_outreach(id, now))
    }
    async fn complete_outreach(&self, id: Uuid, now: Timestamp) -> herald_store::Result<bool> {
        timed!(self.other, self.inner.complete_outreach(id, now))
    }
    async fn expire_pending(&self, id: Uuid, now: Timestamp) -> herald_store::Result<u64> {
        timed!(self.other, self.inner.expire_pending(id, now))
    }
    async fn claim_due(
        &self,
        outreach_id: Uuid,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> herald_store::Result<Vec<ClaimedRecipient>> {
        timed!(
            self.claim,
            self.inner.claim_due(outreach_id, now, lease_until, limit)
        )
    }
    async fn record_batch(
        &self,
        now: Timestamp,
        held: herald_store::Held,
        results: &[DeliveryResult],
        sent: &[SentMessage],
    ) -> herald_store::Result<()> {
        timed!(
            self.record,
            self.inner.record_batch(now, held, results, sent)
        )
    }
    async fn start_sends(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        ids: &[i64],
    ) -> herald_store::Result<Vec<i64>> {
        timed!(self.other, self.inner.start_sends(now, lease_until, ids))
    }
    async fn release_unbegun(
        &self,
        now: Timestamp,
        marked_at: Timestamp,
        ids: &[i64],
    ) -> herald_store::Result<u64> {
        timed!(self.other, self.inner.release_unbegun(now, marked_at, ids))
    }
    async fn due_recipients(&self, now: Timestamp) -> herald_store::Result<u64> {
        timed!(self.other, self.inner.due_recipients(now))
    }
    async fn take_tokens(
        &self,
        sender_id: Uuid,
        rate: f64,
        burst: f64,
        now: Timestamp,
        want: u32,
        daily: Option<herald_store::DailyCap>,
    ) -> herald_store::Result<herald_store::Grant> {
        timed!(
            self.other,
            self.inner
                .take_tokens(sender_id, rate, burst, now, want, daily)
        )
    }
    async fn adjust_tokens(
        &self,
        sender_id: Uuid,
        rate: f64,
        burst: f64,
        now: Timestamp,
        delta: i64,
        daily: Option<herald_store::DailyCap>,
    ) -> herald_store::Result<()> {
        timed!(
            self.other,
            self.inner
                .adjust_tokens(sender_id, rate, burst, now, delta, daily)
        )
    }
    async fn renew_leases(
        &self,
        ids: &[i64],
        lease_until: Timestamp,
        new_lease_until: Timestamp,
    ) -> herald_store::Result<u64> {
        timed!(
            self.other,
            self.inner.renew_leases(ids, lease_until, new_lease_until)
        )
    }
    async fn recover_expired_leases(
        &self,
        outreach_id: Uuid,
        now: Timestamp,
        policy: CrashPolicy,
    ) -> herald_store::Result<u64> {
        timed!(
            self.other,
            self.inner.recover_expired_leases(outreach_id, now, policy)
        )
    }
}

#[async_trait]
impl herald_store::Suppressions for TimedStore {
    async fn contacts_since(
        &self,
        addresses: &[String],
        since: Timestamp,
    ) -> herald_store::Result<std::collections::HashMap<String, u64>> {
        self.inner.contacts_since(addresses, since).await
    }
    async fn campaign_contacts_among(
        &self,
        campaign_id: Uuid,
        addresses: &[String],
        since: Timestamp,
    ) -> herald_store::Result<u64> {
        self.inner
            .campaign_contacts_among(campaign_id, addresses, since)
            .await
    }
    async fn suppressed_addresses(
        &self,
        sender_id: Option<Uuid>,
    ) -> herald_store::Result<HashSet<String>> {
        self.inner.suppressed_addresses(sender_id).await
    }
    async fn add_suppression(
        &self,
        address: &str,
        sender_id: Option<Uuid>,
        reason: &str,
    ) -> herald_store::Result<bool> {
        timed!(
            self.other,
            self.inner.add_suppression(address, sender_id, reason)
        )
    }
    async fn suppressed_among(
        &self,
        sender_id: Uuid,
        addresses: &[String],
    ) -> herald_store::Result<HashSet<String>> {
        timed!(
            self.other,
            self.inner.suppressed_among(sender_id, addresses)
        )
    }
    async fn suppression_for(
        &self,
        address: &str,
        sender_id: Uuid,
    ) -> herald_store::Result<Option<Suppression>> {
        self.inner.suppression_for(address, sender_id).await
    }
    async fn list_suppressions(
        &self,
        address: Option<&str>,
        page: Page,
    ) -> herald_store::Result<Listing<Suppression>> {
        self.inner.list_suppressions(address, page).await
    }
    async fn get_suppression(&self, id: Uuid) -> herald_store::Result<Suppression> {
        self.inner.get_suppression(id).await
    }
    async fn delete_suppression(&self, id: Uuid) -> herald_store::Result<()> {
        self.inner.delete_suppression(id).await
    }
    async fn remove_suppression(
        &self,
        address: &str,
        sender_id: Option<Uuid>,
    ) -> herald_store::Result<bool> {
        self.inner.remove_suppression(address, sender_id).await
    }
    async fn skip_pending_for_address(
        &self,
        address: &str,
        sender_id: Option<Uuid>,
        reason: SkipReason,
        now: Timestamp,
    ) -> herald_store::Result<u64> {
        timed!(
            self.other,
            self.inner
                .skip_pending_for_address(address, sender_id, reason, now)
        )
    }
}

#[async_trait]
impl herald_store::Conversations for TimedStore {
    async fn receive_message(&self, msg: &InboundMessage) -> herald_store::Result<Received> {
        self.inner.receive_message(msg).await
    }
    async fn add_outbound(&self, msg: &OutboundRecord) -> herald_store::Result<Message> {
        self.inner.add_outbound(msg).await
    }
    async fn get_conversation(&self, id: Uuid) -> herald_store::Result<Conversation> {
        self.inner.get_conversation(id).await
    }
    async fn list_conversations(
        &self,
        inbox_id: Uuid,
        page: Page,
    ) -> herald_store::Result<Listing<Conversation>> {
        self.inner.list_conversations(inbox_id, page).await
    }
    async fn conversation_messages(
        &self,
        conversation_id: Uuid,
        after: Option<Uuid>,
        limit: u32,
    ) -> herald_store::Result<Vec<Message>> {
        self.inner
            .conversation_messages(conversation_id, after, limit)
            .await
    }
    async fn get_customer(&self, id: Uuid) -> herald_store::Result<Customer> {
        self.inner.get_customer(id).await
    }
    async fn set_conversation_status(
        &self,
        id: Uuid,
        status: herald_store::ConversationStatus,
    ) -> herald_store::Result<herald_store::Conversation> {
        self.inner.set_conversation_status(id, status).await
    }
    async fn assign_conversation(
        &self,
        id: Uuid,
        assignee: Option<Uuid>,
    ) -> herald_store::Result<herald_store::Conversation> {
        self.inner.assign_conversation(id, assignee).await
    }
    async fn mark_conversation_read(
        &self,
        id: Uuid,
        user_id: Uuid,
        at: jiff::Timestamp,
    ) -> herald_store::Result<()> {
        self.inner.mark_conversation_read(id, user_id, at).await
    }
    async fn conversation_glances(
        &self,
        ids: &[Uuid],
        user_id: Uuid,
    ) -> herald_store::Result<std::collections::HashMap<Uuid, herald_store::ConversationGlance>>
    {
        self.inner.conversation_glances(ids, user_id).await
    }
    async fn unread_by_inbox(
        &self,
        user_id: Uuid,
    ) -> herald_store::Result<std::collections::HashMap<Uuid, u64>> {
        self.inner.unread_by_inbox(user_id).await
    }
    async fn set_customer_name(&self, id: Uuid, name: &str) -> herald_store::Result<()> {
        self.inner.set_customer_name(id, name).await
    }
    async fn find_customer(&self, address: &str) -> herald_store::Result<Option<Customer>> {
        self.inner.find_customer(address).await
    }
    async fn customer_messages(
        &self,
        customer_id: Uuid,
        after: Option<Uuid>,
        limit: u32,
    ) -> herald_store::Result<Vec<Message>> {
        self.inner
            .customer_messages(customer_id, after, limit)
            .await
    }
    async fn apply_status(&self, report: &StatusReport) -> herald_store::Result<StatusApplied> {
        self.inner.apply_status(report).await
    }
    async fn purge_kept_status_reports(&self, before: Timestamp) -> herald_store::Result<u64> {
        self.inner.purge_kept_status_reports(before).await
    }
}

#[async_trait]
impl herald_store::Accounts for TimedStore {
    async fn create_token(&self, token: &NewToken) -> herald_store::Result<ApiToken> {
        self.inner.create_token(token).await
    }
    async fn find_token(&self, hash_hex: &str) -> herald_store::Result<Option<ApiToken>> {
        self.inner.find_token(hash_hex).await
    }
    async fn count_users(&self) -> herald_store::Result<u64> {
        self.inner.count_users().await
    }
    async fn create_user(
        &self,
        email: &str,
        role: herald_core::Role,
        password_hash: &str,
    ) -> herald_store::Result<herald_store::User> {
        self.inner.create_user(email, role, password_hash).await
    }
    async fn find_user_by_email(
        &self,
        email: &str,
    ) -> herald_store::Result<Option<(herald_store::User, String)>> {
        self.inner.find_user_by_email(email).await
    }
    async fn get_user(&self, id: Uuid) -> herald_store::Result<herald_store::User> {
        self.inner.get_user(id).await
    }
    async fn create_setup_token(
        &self,
        hash_hex: &str,
        email: Option<&str>,
        role: herald_core::Role,
        expires_at: Timestamp,
    ) -> herald_store::Result<()> {
        self.inner
            .create_setup_token(hash_hex, email, role, expires_at)
            .await
    }
    async fn find_setup_token(
        &self,
        hash_hex: &str,
        now: Timestamp,
    ) -> herald_store::Result<Option<(Option<String>, herald_core::Role)>> {
        self.inner.find_setup_token(hash_hex, now).await
    }
    async fn take_setup_token(
        &self,
        hash_hex: &str,
        now: Timestamp,
    ) -> herald_store::Result<Option<(Option<String>, herald_core::Role)>> {
        self.inner.take_setup_token(hash_hex, now).await
    }
    async fn create_session(
        &self,
        hash_hex: &str,
        user_id: Uuid,
        csrf_token: &str,
        expires_at: Timestamp,
    ) -> herald_store::Result<()> {
        self.inner
            .create_session(hash_hex, user_id, csrf_token, expires_at)
            .await
    }
    async fn find_session(
        &self,
        hash_hex: &str,
        now: Timestamp,
    ) -> herald_store::Result<Option<(herald_store::User, String)>> {
        self.inner.find_session(hash_hex, now).await
    }
    async fn delete_session(&self, hash_hex: &str) -> herald_store::Result<()> {
        self.inner.delete_session(hash_hex).await
    }
    async fn reserve_login_attempt(
        &self,
        email: &str,
        now: Timestamp,
        max_attempts: u32,
        window: SignedDuration,
    ) -> herald_store::Result<herald_store::LoginAttempt> {
        self.inner
            .reserve_login_attempt(email, now, max_attempts, window)
            .await
    }
    async fn clear_login_attempts(&self, email: &str) -> herald_store::Result<()> {
        self.inner.clear_login_attempts(email).await
    }
    async fn list_users(
        &self,
        page: Page,
    ) -> herald_store::Result<Listing<herald_store::UserAccount>> {
        self.inner.list_users(page).await
    }
    async fn get_user_account(&self, id: Uuid) -> herald_store::Result<herald_store::UserAccount> {
        self.inner.get_user_account(id).await
    }
    async fn list_invitations(&self) -> herald_store::Result<Vec<herald_store::Invitation>> {
        self.inner.list_invitations().await
    }
    async fn invite_user(
        &self,
        email: &str,
        role: herald_core::Role,
        hash_hex: &str,
        expires_at: Timestamp,
        ctx: &herald_store::AuditContext,
    ) -> herald_store::Result<bool> {
        self.inner
            .invite_user(email, role, hash_hex, expires_at, ctx)
            .await
    }
    async fn update_user(
        &self,
        id: Uuid,
        change: herald_store::UserChange,
        ctx: &herald_store::AuditContext,
    ) -> herald_store::Result<herald_store::UserAccount> {
        self.inner.update_user(id, change, ctx).await
    }
    async fn list_tokens(
        &self,
        page: Page,
    ) -> herald_store::Result<Listing<herald_store::TokenInfo>> {
        self.inner.list_tokens(page).await
    }
    async fn create_token_audited(
        &self,
        token: &NewToken,
        ctx: &herald_store::AuditContext,
    ) -> herald_store::Result<ApiToken> {
        self.inner.create_token_audited(token, ctx).await
    }
    async fn revoke_token(
        &self,
        id: Uuid,
        ctx: &herald_store::AuditContext,
    ) -> herald_store::Result<herald_store::TokenInfo> {
        self.inner.revoke_token(id, ctx).await
    }
    async fn use_token(
        &self,
        hash_hex: &str,
        now: Timestamp,
    ) -> herald_store::Result<Option<ApiToken>> {
        self.inner.use_token(hash_hex, now).await
    }
    async fn add_suppression_audited(
        &self,
        address: &str,
        sender_id: Option<Uuid>,
        reason: &str,
        ctx: &herald_store::AuditContext,
    ) -> herald_store::Result<bool> {
        self.inner
            .add_suppression_audited(address, sender_id, reason, ctx)
            .await
    }
    async fn delete_suppression_audited(
        &self,
        id: Uuid,
        ctx: &herald_store::AuditContext,
    ) -> herald_store::Result<herald_store::Suppression> {
        self.inner.delete_suppression_audited(id, ctx).await
    }
    async fn record_audit(
        &self,
        ctx: &herald_store::AuditContext,
        action: &str,
        subject: &str,
        detail: &str,
    ) -> herald_store::Result<()> {
        self.inner.record_audit(ctx, action, subject, detail).await
    }
    async fn list_audit(
        &self,
        page: Page,
    ) -> herald_store::Result<Listing<herald_store::AuditEntry>> {
        self.inner.list_audit(page).await
    }
}

#[async_trait]
impl herald_store::PhoneAudit for TimedStore {
    async fn recipient_phones(
        &self,
        after: i64,
        limit: u32,
    ) -> herald_store::Result<Vec<herald_store::RecipientPhone>> {
        self.inner.recipient_phones(after, limit).await
    }
    async fn stored_phones(
        &self,
        table: herald_store::PhoneTable,
        after: Uuid,
        limit: u32,
    ) -> herald_store::Result<Vec<(Uuid, String)>> {
        self.inner.stored_phones(table, after, limit).await
    }
}

#[async_trait]
impl herald_store::TestSends for TimedStore {
    async fn begin_test_send(
        &self,
        send: &herald_store::NewTestSend,
    ) -> herald_store::Result<herald_store::TestSend> {
        self.inner.begin_test_send(send).await
    }
    async fn finish_test_send(
        &self,
        id: Uuid,
        provider_message_id: Option<&str>,
        error: Option<&str>,
    ) -> herald_store::Result<herald_store::TestSend> {
        self.inner
            .finish_test_send(id, provider_message_id, error)
            .await
    }
    async fn list_test_sends(
        &self,
        campaign_id: Uuid,
        limit: u32,
    ) -> herald_store::Result<Vec<herald_store::TestSend>> {
        self.inner.list_test_sends(campaign_id, limit).await
    }
}

#[async_trait]
impl herald_store::ChatSites for TimedStore {
    async fn create_chat_site(
        &self,
        spec: &herald_core::chat::ChatSiteSpec,
        key: &str,
    ) -> herald_store::Result<herald_core::chat::ChatSite> {
        self.inner.create_chat_site(spec, key).await
    }
    async fn get_chat_site(&self, id: Uuid) -> herald_store::Result<herald_core::chat::ChatSite> {
        self.inner.get_chat_site(id).await
    }
    async fn find_chat_site(
        &self,
        key: &str,
    ) -> herald_store::Result<Option<herald_core::chat::ChatSite>> {
        self.inner.find_chat_site(key).await
    }
    async fn list_chat_sites(
        &self,
        page: herald_core::Page,
    ) -> herald_store::Result<herald_core::Listing<herald_core::chat::ChatSite>> {
        self.inner.list_chat_sites(page).await
    }
    async fn update_chat_site(
        &self,
        id: Uuid,
        spec: &herald_core::chat::ChatSiteSpec,
    ) -> herald_store::Result<herald_core::chat::ChatSite> {
        self.inner.update_chat_site(id, spec).await
    }
    async fn delete_chat_site(&self, id: Uuid) -> herald_store::Result<()> {
        self.inner.delete_chat_site(id).await
    }
    async fn set_chat_settings(
        &self,
        campaign_id: Uuid,
        settings: &herald_core::chat::ChatSettings,
    ) -> herald_store::Result<herald_core::chat::ChatSettings> {
        self.inner.set_chat_settings(campaign_id, settings).await
    }
    async fn get_chat_settings(
        &self,
        campaign_id: Uuid,
    ) -> herald_store::Result<Option<herald_core::chat::ChatSettings>> {
        self.inner.get_chat_settings(campaign_id).await
    }
    async fn site_campaigns(
        &self,
        site_id: Uuid,
    ) -> herald_store::Result<Vec<(herald_core::Campaign, herald_core::chat::ChatSettings)>> {
        self.inner.site_campaigns(site_id).await
    }
    async fn chat_sender(&self, campaign_id: Uuid, inbox_id: Uuid) -> herald_store::Result<Uuid> {
        self.inner.chat_sender(campaign_id, inbox_id).await
    }
    async fn record_chat_start(
        &self,
        start: &herald_store::ChatStart,
    ) -> herald_store::Result<herald_store::Message> {
        self.inner.record_chat_start(start).await
    }
    async fn chat_starts(
        &self,
        conversation_id: Uuid,
    ) -> herald_store::Result<Vec<herald_store::ChatStartRecord>> {
        self.inner.chat_starts(conversation_id).await
    }
    async fn recent_conversations(
        &self,
        since: jiff::Timestamp,
        limit: u32,
    ) -> herald_store::Result<Vec<(Uuid, jiff::Timestamp)>> {
        self.inner.recent_conversations(since, limit).await
    }
    async fn add_chat_figures(
        &self,
        rows: &[(Uuid, herald_store::ChatDayFigures)],
    ) -> herald_store::Result<()> {
        self.inner.add_chat_figures(rows).await
    }
    async fn chat_figures(
        &self,
        campaign_id: Uuid,
        from: jiff::civil::Date,
        to: jiff::civil::Date,
    ) -> herald_store::Result<Vec<herald_store::ChatDayFigures>> {
        self.inner.chat_figures(campaign_id, from, to).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_file_has_distinct_addresses() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.csv");
        generate(&path, 500).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 501);
        assert_eq!(lines[0], "email,name,order_id");
        let emails: HashSet<&str> = lines[1..]
            .iter()
            .map(|l| l.split(',').next().unwrap())
            .collect();
        assert_eq!(emails.len(), 500);
        assert!(emails.iter().all(|e| EmailAddress::parse(e).is_ok()));
    }

    /// The whole bench, small, on SQLite: Herald's run and the baseline both account for every
    /// recipient (the child process is this test binary, so `prepare` runs in-process here).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn both_runs_send_every_recipient() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let csv = dir.path().join("r.csv");
        generate(&csv, 2_345).unwrap();
        let store = herald_store::connect(&url).await.unwrap();
        store.migrate().await.unwrap();
        let campaign = email_campaign(store.as_ref()).await.unwrap();
        let now = SystemClock.now();
        let herald = import(
            store.clone(),
            campaign,
            &csv,
            now - SignedDuration::from_hours(1),
        )
        .await
        .unwrap();
        let baseline = import(
            store.clone(),
            campaign,
            &csv,
            now + SignedDuration::from_hours(24),
        )
        .await
        .unwrap();
        drop(store);
        let (store, pool) = open(&url).await.unwrap();
        let (_, profile) = herald_run(store.clone(), herald, 2_345, 1000, true)
            .await
            .unwrap();
        let profile = profile.unwrap();
        assert_eq!(profile["claim_due"]["calls"], 3, "{profile}");
        // Every send's provider id was kept, as a real one's is: the Message-ID the SMTP
        // transport writes, `<outreach-recipient@domain>`.
        let rows = store.list_recipients(herald, None, 0, 3_000).await.unwrap();
        assert_eq!(rows.len(), 2_345);
        for r in &rows {
            let key = herald_core::outreach::idempotency_key(herald, r.id);
            let id = r.provider_message_id.as_deref().unwrap_or_default();
            assert!(id.starts_with(&format!("<{key}@")), "{id}");
        }
        // The baseline outreach was left alone.
        assert_eq!(
            store.outreach_status(baseline).await.unwrap(),
            OutreachStatus::Scheduled
        );
        baseline_run(&pool, baseline, 2_345, 1000).await.unwrap();
        assert_eq!(store.outreach_progress(baseline).await.unwrap().sent, 2_345);
    }
}
