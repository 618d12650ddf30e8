//! `herald-bench cluster --postgres URL [--herald PATH] [--nodes 3] [--latency-ms 20]
//! [--recipients N] [--rate R] [--limited-secs S]`: real `herald serve` processes on one
//! PostgreSQL database, sending SMS to a fake Twilio on a real socket that answers after a fixed
//! latency. Four runs, each on a fresh database with fresh processes:
//!
//! 1. one node, a sender without a rate limit, N recipients;
//! 2. `--nodes` nodes, the same;
//! 3. one node, the sender limited to R messages a second, `R × S` recipients;
//! 4. `--nodes` nodes, the same.
//!
//! Every time is taken where a carrier would meter it: when the fake Twilio accepted the message.
//! The unlimited runs print their steady rate (the messages between the 10th and the 90th
//! percentile send, over the time between them: the start-up and the tail are left out) and the
//! ratio of the two; the limited runs print the busiest 10 s window (start-up burst included),
//! the mean rate from first send to last, and their ratios. One JSON line per run, one per
//! comparison. After each run the bench checks that every recipient was accepted exactly once and
//! that the outreach shows them all sent, or fails.

use crate::with_database;
use anyhow::{Context, bail, ensure};
use herald_core::outreach::OutreachStatus;
use herald_core::schedule::ScheduleInput;
use herald_core::{
    Address, AnswerInput, AnswerVariantInput, CampaignInput, Channel, E164, InboxSpec, Provider,
    SenderSpec,
};
use herald_store::Store;
use herald_testkit::FakeTwilio;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// The sender every run sends from.
const SENDER: &str = "+14155550100";
/// The window of the busiest-window figure: a carrier's limit is kept over any ten seconds.
pub const WINDOW: Duration = Duration::from_secs(10);
/// The most recipients a run may have (their numbers are `+1415` and seven digits).
const MAX_RECIPIENTS: u64 = 1_000_000;

/// What `herald-bench cluster` was asked for.
#[derive(Debug, Clone)]
pub struct Options {
    pub herald: PathBuf,
    pub postgres: String,
    pub nodes: usize,
    pub latency_ms: u64,
    pub recipients: u64,
    pub rate: f64,
    pub limited_secs: f64,
    pub batch: u32,
    pub concurrency: usize,
}

impl Options {
    /// Refuses what would measure nothing, with what to pass instead.
    fn check(&self) -> anyhow::Result<()> {
        ensure!(
            self.nodes >= 2,
            "--nodes {} compares nothing: give 2 or more (the other run has one node)",
            self.nodes
        );
        ensure!(
            self.nodes <= 16,
            "--nodes {}: at most 16 processes on one machine",
            self.nodes
        );
        ensure!(
            (10..=MAX_RECIPIENTS).contains(&self.recipients),
            "--recipients {}: give 10 to {MAX_RECIPIENTS} (the steady rate is taken between the \
             10th and the 90th percentile)",
            self.recipients
        );
        ensure!(
            self.rate.is_finite() && self.rate >= 1.0 && self.rate <= 10_000.0,
            "--rate {}: give a limit of 1 to 10000 messages a second",
            self.rate
        );
        ensure!(
            self.limited_secs.is_finite() && self.limited_secs >= WINDOW.as_secs_f64() + 1.0,
            "--limited-secs {}: give at least {} (the busiest {} s window must fit in the run)",
            self.limited_secs,
            WINDOW.as_secs() + 1,
            WINDOW.as_secs()
        );
        ensure!(
            self.rate * self.limited_secs <= MAX_RECIPIENTS as f64,
            "--rate × --limited-secs is more than {MAX_RECIPIENTS} recipients"
        );
        ensure!(
            self.latency_ms <= 10_000,
            "--latency-ms {}: at most 10000",
            self.latency_ms
        );
        ensure!(
            self.batch >= 1 && self.concurrency >= 1,
            "--batch and --concurrency must be at least 1"
        );
        ensure!(
            self.herald.is_file(),
            "no herald binary at {} (build it: cargo build --release -p herald; or pass --herald PATH)",
            self.herald.display()
        );
        Ok(())
    }
}

/// The `herald` binary next to this program's own (`target/release/herald` beside
/// `target/release/herald-bench`).
pub fn default_herald() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("herald")))
        .unwrap_or_else(|| PathBuf::from("herald"))
}

/// What one run measured.
struct Run {
    /// When the fake Twilio accepted each message, in order.
    times: Vec<Instant>,
    /// From the outreach becoming visible (its import committed) to the last acceptance.
    sending_s: f64,
}

pub async fn cluster_bench(options: Options) -> anyhow::Result<()> {
    options.check()?;
    println!(
        "{}",
        serde_json::json!({
            "bench": "cluster",
            "nodes": options.nodes,
            "latency_ms": options.latency_ms,
            "batch": options.batch,
            "concurrency": options.concurrency,
            "load_average": load_average(),
        })
    );

    let unlimited = options.recipients;
    let one = run(&options, 1, None, unlimited).await?;
    let one_rate = steady_rate(&one.times);
    print_unlimited(1, unlimited, &one);
    let many = run(&options, options.nodes, None, unlimited).await?;
    let many_rate = steady_rate(&many.times);
    print_unlimited(options.nodes, unlimited, &many);
    println!(
        "{}",
        serde_json::json!({
            "compare": "unlimited",
            "nodes": [1, options.nodes],
            "msgs_per_s": [round(one_rate, 10.0), round(many_rate, 10.0)],
            "ratio": round(many_rate / one_rate, 100.0),
        })
    );

    let limited = (options.rate * options.limited_secs).ceil() as u64;
    let one = run(&options, 1, Some(options.rate), limited).await?;
    print_limited(1, limited, options.rate, &one);
    let many = run(&options, options.nodes, Some(options.rate), limited).await?;
    print_limited(options.nodes, limited, options.rate, &many);
    let (one_busiest, many_busiest) = (busiest_rate(&one.times), busiest_rate(&many.times));
    let (one_mean, many_mean) = (mean_rate(&one.times), mean_rate(&many.times));
    println!(
        "{}",
        serde_json::json!({
            "compare": "limited",
            "nodes": [1, options.nodes],
            "rate": options.rate,
            "busiest_10s_per_s": [round(one_busiest, 100.0), round(many_busiest, 100.0)],
            "busiest_ratio": round(many_busiest / one_busiest, 1000.0),
            "mean_per_s": [round(one_mean, 100.0), round(many_mean, 100.0)],
            "mean_ratio": round(many_mean / one_mean, 1000.0),
            "load_average": load_average(),
        })
    );
    Ok(())
}

fn print_unlimited(nodes: usize, recipients: u64, run: &Run) {
    println!(
        "{}",
        serde_json::json!({
            "run": "unlimited",
            "nodes": nodes,
            "recipients": recipients,
            "msgs_per_s": round(steady_rate(&run.times), 10.0),
            "mean_per_s": round(mean_rate(&run.times), 10.0),
            "sending_s": round(run.sending_s, 100.0),
        })
    );
}

fn print_limited(nodes: usize, recipients: u64, rate: f64, run: &Run) {
    println!(
        "{}",
        serde_json::json!({
            "run": "limited",
            "nodes": nodes,
            "recipients": recipients,
            "rate": rate,
            "busiest_10s": busiest(&run.times, WINDOW),
            "busiest_10s_per_s": round(busiest_rate(&run.times), 100.0),
            "mean_per_s": round(mean_rate(&run.times), 100.0),
            "steady_per_s": round(steady_rate(&run.times), 100.0),
            "sending_s": round(run.sending_s, 100.0),
        })
    );
}

// ---------------------------------------------------------------- figures

/// Messages a second between the 10th and the 90th percentile acceptance: the start-up (the
/// processes finding the outreach) and the tail (the last batches draining) are left out.
pub fn steady_rate(times: &[Instant]) -> f64 {
    let n = times.len();
    if n < 2 {
        return 0.0;
    }
    let (lo, hi) = (n / 10, (n * 9 / 10).min(n - 1));
    let span = times[hi].duration_since(times[lo]).as_secs_f64();
    if hi <= lo || span <= 0.0 {
        return mean_rate(times);
    }
    (hi - lo) as f64 / span
}

/// Messages a second from the first acceptance to the last.
pub fn mean_rate(times: &[Instant]) -> f64 {
    match (times.first(), times.last()) {
        (Some(first), Some(last)) if times.len() >= 2 => {
            let span = last.duration_since(*first).as_secs_f64();
            if span > 0.0 {
                (times.len() - 1) as f64 / span
            } else {
                0.0
            }
        }
        _ => 0.0,
    }
}

/// The most acceptances in any window `[t, t + window)`; `times` in order.
pub fn busiest(times: &[Instant], window: Duration) -> usize {
    let mut start = 0;
    let mut most = 0;
    for (end, t) in times.iter().enumerate() {
        while t.duration_since(times[start]) >= window {
            start += 1;
        }
        most = most.max(end + 1 - start);
    }
    most
}

/// [`busiest`] over [`WINDOW`], a second.
fn busiest_rate(times: &[Instant]) -> f64 {
    busiest(times, WINDOW) as f64 / WINDOW.as_secs_f64()
}

fn round(x: f64, per: f64) -> f64 {
    (x * per).round() / per
}

/// The machine's load average over the last minute (`/proc/loadavg`), to read a figure by.
fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

// ---------------------------------------------------------------- one run

/// A fresh database on the server, dropped (forcibly) at the end whatever happened.
async fn run(
    options: &Options,
    nodes: usize,
    rate: Option<f64>,
    recipients: u64,
) -> anyhow::Result<Run> {
    let name = format!("herald_bench_{}", Uuid::now_v7().simple());
    let admin = sqlx::PgPool::connect(&options.postgres)
        .await
        .with_context(|| "cannot connect to --postgres")?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await?;
    let url = with_database(&options.postgres, &name);
    let result = run_on(options, &url, nodes, rate, recipients).await;
    let dropped = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&admin)
    .await;
    admin.close().await;
    let run = result?;
    dropped?;
    Ok(run)
}

async fn run_on(
    options: &Options,
    url: &str,
    nodes: usize,
    rate: Option<f64>,
    recipients: u64,
) -> anyhow::Result<Run> {
    let store = herald_store::connect(url).await?;
    store.migrate().await?;
    let campaign = sms_campaign(store.as_ref()).await?;
    let twilio = FakeTwilio::builder()
        .latency(Duration::from_millis(options.latency_ms))
        .start();
    let dir = tempfile::tempdir()?;
    let config = format!(
        "{}\n[dispatch]\nbatch_size = {}\nconcurrency = {}\n\
         [dispatch.rates]\nsms = inf\n[dispatch.rates.senders]\n\"{SENDER}\" = {}\n",
        twilio.config_toml(),
        options.batch,
        options.concurrency,
        rate.map_or("inf".to_string(), |r| r.to_string()),
    );
    let mut running = Vec::with_capacity(nodes);
    for i in 0..nodes {
        // Each node in a directory of its own: its own journal file, as on its own machine.
        let node_dir = dir.path().join(format!("node-{i}"));
        std::fs::create_dir(&node_dir)?;
        std::fs::write(node_dir.join("herald.toml"), &config)?;
        running.push(Node::start(&options.herald, &node_dir, url, i)?);
    }
    for node in &mut running {
        node.wait_listening(Duration::from_secs(60))?;
    }

    let csv = dir.path().join("recipients.csv");
    write_recipients(&csv, recipients)?;
    let outreach = crate::import_file(store.clone(), campaign, &csv, Default::default()).await?;
    ensure!(
        outreach.summary.accepted == recipients,
        "the import accepted {} of {recipients} recipients",
        outreach.summary.accepted
    );
    let visible = Instant::now();

    // Until the fake has every message; a run that stops moving for a minute fails.
    let mut seen = 0;
    let mut moved = Instant::now();
    loop {
        let n = twilio.accepted_times().len();
        if n as u64 >= recipients {
            break;
        }
        if n != seen {
            (seen, moved) = (n, Instant::now());
        }
        for node in &mut running {
            node.check_alive()?;
        }
        ensure!(
            moved.elapsed() < Duration::from_secs(60),
            "no message reached the fake Twilio for 60 s ({n} of {recipients} so far)"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while store.outreach_status(outreach.id).await? != OutreachStatus::Completed {
        ensure!(
            Instant::now() < deadline,
            "the outreach was not completed 60 s after its last message was accepted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for node in running {
        node.stop()?;
    }

    let times = twilio.accepted_times();
    let by_to = twilio.accepted_count_by_to();
    let twice = by_to.values().filter(|n| **n > 1).count();
    ensure!(twice == 0, "{twice} numbers were texted more than once");
    ensure!(
        by_to.len() as u64 == recipients && times.len() as u64 == recipients,
        "the fake Twilio accepted {} messages to {} numbers, not {recipients}",
        times.len(),
        by_to.len()
    );
    let progress = store.outreach_progress(outreach.id).await?;
    ensure!(
        progress.sent == recipients && progress.total == recipients,
        "the outreach shows {progress:?}, not {recipients} sent"
    );
    let sending_s = times
        .last()
        .map_or(0.0, |t| t.duration_since(visible).as_secs_f64());
    Ok(Run { times, sending_s })
}

/// `phone,name`: `count` distinct San Francisco numbers.
fn write_recipients(path: &Path, count: u64) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(out, "phone,name")?;
    for i in 0..count {
        writeln!(out, "+1415{:07},Customer {i}", 4_000_000 + i)?;
    }
    out.flush()?;
    Ok(())
}

/// An SMS campaign from [`SENDER`] over Twilio, open all day every day, no quiet hours (the
/// bench must measure the same at any hour).
async fn sms_campaign(store: &dyn Store) -> anyhow::Result<Uuid> {
    let inbox = store
        .create_inbox(&InboxSpec {
            name: "Bench".into(),
            ..Default::default()
        })
        .await?;
    let sender = store
        .create_sender(&SenderSpec {
            channel: Channel::Sms,
            address: Address::Phone(E164::parse(SENDER, None)?),
            inbox_id: inbox.id,
            provider: Provider::Twilio,
        })
        .await?;
    let answer = store
        .create_answer(
            &AnswerInput {
                name: "Bench answer".into(),
                variants: vec![AnswerVariantInput {
                    language: "en".into(),
                    subject: None,
                    body: "Hi {{ name }}, your order has shipped.".into(),
                    voice: None,
                }],
            }
            .validate()?,
        )
        .await?;
    let days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        .map(|d| (d.to_string(), vec!["00:00-24:00".to_string()]))
        .into();
    let spec = CampaignInput {
        name: "Bench".into(),
        channel: "sms".into(),
        sender_id: Some(sender.id),
        language: "en".into(),
        answer_id: Some(answer.id),
        schedule: Some(ScheduleInput {
            timezone: "UTC".into(),
            days,
            closed_dates: Vec::new(),
        }),
        quiet_hours: Some(false),
        ..CampaignInput::default()
    }
    .validate()?;
    Ok(store.create_campaign(&spec).await?.id)
}

// ---------------------------------------------------------------- the processes

/// The last lines a node wrote to stderr, for the error when it fails.
type Tail = Arc<Mutex<VecDeque<String>>>;

/// A running `herald serve`; killed if the bench fails before it stops it.
pub(crate) struct Node {
    child: Option<Child>,
    index: usize,
    tail: Tail,
    listening: std::sync::mpsc::Receiver<String>,
}

impl Node {
    fn start(herald: &Path, dir: &Path, url: &str, index: usize) -> anyhow::Result<Node> {
        Self::start_logging(herald, dir, url, index, Some("warn"))
    }

    /// `herald serve` in `dir` (its `herald.toml`) on `url`, with `RUST_LOG` set to `log` (or
    /// left to Herald's default filter when `None`).
    pub(crate) fn start_logging(
        herald: &Path,
        dir: &Path,
        url: &str,
        index: usize,
        log: Option<&str>,
    ) -> anyhow::Result<Node> {
        let mut command = Command::new(herald);
        command
            .current_dir(dir)
            .env("HERALD_DATABASE_URL", url)
            .env_remove("RUST_LOG");
        if let Some(log) = log {
            command.env("RUST_LOG", log);
        }
        let mut child = command
            .args(["serve", "--bind", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {} serve", herald.display()))?;
        let stderr = child.stderr.take().context("no stderr")?;
        let tail: Tail = Arc::default();
        let (tx, listening) = std::sync::mpsc::channel();
        let keep = tail.clone();
        // Drains stderr so the node never blocks on a full pipe; keeps the last lines.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_string());
                }
                let mut tail = keep.lock().unwrap_or_else(|e| e.into_inner());
                if tail.len() == 20 {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
        });
        Ok(Node {
            child: Some(child),
            index,
            tail,
            listening,
        })
    }

    fn tail(&self) -> String {
        let tail = self.tail.lock().unwrap_or_else(|e| e.into_inner());
        tail.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    /// The process id (to read its memory and CPU time in `/proc`).
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Waits for the line that says where it listens; returns that URL (`http://host:port`).
    pub(crate) fn wait_listening(&mut self, limit: Duration) -> anyhow::Result<String> {
        match self.listening.recv_timeout(limit) {
            Ok(url) => Ok(url),
            Err(_) => {
                self.check_alive()?;
                bail!(
                    "node {} did not listen within {limit:?}; its stderr:\n{}",
                    self.index,
                    self.tail()
                )
            }
        }
    }

    pub(crate) fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(child) = &mut self.child
            && let Some(status) = child.try_wait()?
        {
            // Let the reader thread take the last lines.
            std::thread::sleep(Duration::from_millis(100));
            bail!(
                "node {} exited with {status}; its stderr:\n{}",
                self.index,
                self.tail()
            );
        }
        Ok(())
    }

    /// SIGTERM (as a service manager stops it); SIGKILL if it has not exited within 30 s.
    pub(crate) fn stop(mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .context("cannot run kill")?;
        ensure!(status.success(), "kill -TERM {} failed", child.id());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait()? {
                ensure!(
                    status.success(),
                    "node {} exited with {status} after SIGTERM; its stderr:\n{}",
                    self.index,
                    self.tail()
                );
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("node {} did not stop within 30 s of SIGTERM", self.index);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(start: Instant, ms: &[u64]) -> Vec<Instant> {
        ms.iter()
            .map(|m| start + Duration::from_millis(*m))
            .collect()
    }

    #[test]
    fn busiest_window_is_half_open() {
        let t = at(Instant::now(), &[0, 100, 9_999, 10_000, 10_500, 19_000]);
        // [0, 10 s) holds 3; [100 ms, 10.1 s) holds 0.1, 9.999, 10.0 = 3; [9.999, 19.999) 4.
        assert_eq!(busiest(&t, WINDOW), 4);
        assert_eq!(busiest(&t, Duration::from_millis(1)), 1);
        assert_eq!(busiest(&[], WINDOW), 0);
    }

    #[test]
    fn steady_rate_leaves_out_the_start_and_the_tail() {
        // A slow start (10 messages over 5 s), 80 messages at 100/s, a slow tail.
        let mut ms: Vec<u64> = (0..10).map(|i| i * 500).collect();
        ms.extend((0..80).map(|i| 5_000 + i * 10));
        ms.extend((0..10).map(|i| 5_800 + i * 500));
        let t = at(Instant::now(), &ms);
        let steady = steady_rate(&t);
        assert!((steady - 100.0).abs() < 2.0, "{steady}");
        let mean = mean_rate(&t);
        assert!(mean < 10.0, "{mean}");
    }
}
