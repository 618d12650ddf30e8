//! `herald-bench chat [--herald PATH] [--postgres URL] [--wrk PATH] [--connections 256]
//! [--duration-secs 10] [--rounds 2] [--streams 10000] [--streams-per-conversation 1] [--no-pin]`:
//! one real `herald serve` (on a fresh SQLite file in a temporary directory, or a throw-away
//! database on `--postgres`), set up through its admin API with a chat site, an inbox and two live chat
//! campaigns, then three figures:
//!
//! 1. **config**: `GET /chat/v1/sites/{key}/config` (with an allowed `Origin`, as the widget sends
//!    it) loaded by `wrk --latency` (`--connections`, `--threads`, `--duration-secs`), beside a
//!    bare axum route inside this process that answers the very bytes and headers Herald
//!    answered (fetched once, compared header by header before the runs). After a short warm-up
//!    of each, the runs alternate Herald, bare, Herald, bare… (`--rounds` of each); the figures
//!    are both requests/s, their ratio (Herald's median over the bare median) and the 99th
//!    percentile latencies. Targets: ratio ≥ 0.8, Herald's p99 < 5 ms. Where the machine has
//!    two CPUs and `taskset`, the servers (this process, so the bare route, and `herald`) run
//!    on CPU 0 and wrk on CPU 1, unless `--no-pin`: on two CPUs shared by both, the ratio of
//!    single runs of the same binaries varied from 0.65 to 1.06.
//!
//!    At saturation a closed loop's latency is its queue: 256 connections each waiting for its
//!    answer make a mean latency of 256 ÷ requests/s (Little's law), 4 ms at 64,000 requests/s,
//!    whatever the server, so the saturated p99 says how fast the machine is, not how long a
//!    request waits in Herald. The **paced** runs measure that: the same 256 connections, each
//!    waiting `--pace-ms` (10) after each answer before its next request (a wrk script's
//!    `delay()`), so that the load (about 25,000 requests/s at 10 ms) stays below what either
//!    route can serve; their p99 is judged against the target, and both p99s are printed.
//! 2. **widget**: `GET /chat/widget.js` with and without `Accept-Encoding: gzip`; if Herald does
//!    not compress it, the bench compresses its bytes with `gzip -9`. Target: ≤ 15,000 bytes.
//! 3. **streams**: `--streams` visitor event streams (`GET …/conversations/events?token=`, as the
//!    widget's `EventSource` opens them), on `streams / --streams-per-conversation`
//!    conversations started through the public chat route, held open and idle. The server's
//!    resident set (`VmRSS`) is read once the conversations exist (idle) and once the streams
//!    have settled; the figure is the difference, and per stream. Target: ≤ 50 MiB above idle
//!    for 10,000 streams. The server's CPU use is read over a few seconds before and with the
//!    streams open (each conversation with a stream is polled from the store).
//!
//! For the streams to fit, the bench's `herald.toml` raises limits that are lower by default,
//! and says so in its first line: `[http] max_connections`, `[chat] streams_per_node`,
//! `streams_per_conversation` and `messages_per_minute_per_address` (every visitor of the bench
//! comes from 127.0.0.1). The server logs with its default filter unless `--rust-log` is given.
//!
//! Output: one JSON line per run and per figure on stdout, and a readable summary on stderr.

use crate::cluster::Node;
use crate::{median, with_database};
use anyhow::{Context, bail, ensure};
use axum::http::{HeaderMap, HeaderName, header};
use bytes::Bytes;
use serde_json::{Value, json};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The origin of the bench's chat site: the pages that embed its widget.
const ORIGIN: &str = "https://shop.example";
/// The page a visitor starts a chat on.
const PAGE: &str = "https://shop.example/shoes/red";
/// The config route must serve at least this share of the bare route's requests a second.
const RATIO_TARGET: f64 = 0.8;
/// … with a 99th percentile latency below this, in milliseconds.
const P99_TARGET_MS: f64 = 5.0;
/// The widget's gzipped size, at most, in bytes (15 KB).
const WIDGET_TARGET_BYTES: usize = 15_000;
/// 10,000 idle streams may cost at most this many MiB above the idle process.
const STREAMS_TARGET_MB: f64 = 50.0;
/// The stream count that target is for.
const STREAMS_TARGET_COUNT: usize = 10_000;
/// How long each warm-up run of wrk lasts.
const WARM_UP: Duration = Duration::from_secs(2);
/// Chat starts in flight at once while the conversations are made.
const START_CONCURRENCY: usize = 8;
/// Streams being opened at once (below the listen backlog).
const OPEN_CONCURRENCY: usize = 64;
/// File descriptors this process keeps for everything but the streams.
const SPARE_FDS: u64 = 256;

/// What `herald-bench chat` was asked for.
#[derive(Debug, Clone)]
pub struct Options {
    pub herald: PathBuf,
    pub postgres: Option<String>,
    pub wrk: PathBuf,
    pub connections: u32,
    pub threads: u32,
    pub duration_secs: u64,
    pub rounds: usize,
    pub pace_ms: u32,
    pub streams: usize,
    pub streams_per_conversation: usize,
    pub rust_log: Option<String>,
    /// Pin the servers (this process, so the bare route, and the `herald` it starts) to CPU 0
    /// and wrk to CPU 1, where there are two CPUs and `taskset`; turned off where not.
    pub pin: bool,
}

impl Options {
    /// Refuses what would measure nothing or cannot run here, with what to do instead.
    fn check(&self) -> anyhow::Result<()> {
        ensure!(
            (1..=20_000).contains(&self.connections),
            "--connections {}: give 1 to 20000",
            self.connections
        );
        ensure!(
            self.threads >= 1 && self.threads <= self.connections,
            "--threads {}: give 1 to --connections",
            self.threads
        );
        ensure!(
            (1..=600).contains(&self.duration_secs),
            "--duration-secs {}: give 1 to 600",
            self.duration_secs
        );
        ensure!(
            (1..=10).contains(&self.rounds),
            "--rounds {}: give 1 to 10",
            self.rounds
        );
        ensure!(
            self.streams <= 100_000,
            "--streams {}: at most 100000 (0 leaves the figure out)",
            self.streams
        );
        ensure!(
            self.streams_per_conversation >= 1,
            "--streams-per-conversation must be at least 1"
        );
        ensure!(
            self.herald.is_file(),
            "no herald binary at {} (build it: cargo build --release -p herald; or pass --herald PATH)",
            self.herald.display()
        );
        match Command::new(&self.wrk)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
        {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
                "wrk is not installed (no {}): install it (Debian: apt-get install wrk) or pass \
                 --wrk PATH",
                self.wrk.display()
            ),
            Err(e) => bail!("cannot run {}: {e}", self.wrk.display()),
        }
        if let Some(soft) = open_file_limit() {
            let need = self.streams as u64 + SPARE_FDS;
            ensure!(
                soft >= need,
                "{} streams need {need} open files in this process, and ulimit -n is {soft}: \
                 raise it (ulimit -n {need}) or pass a smaller --streams",
                self.streams
            );
        }
        Ok(())
    }

    /// `[http] max_connections`, `[chat] streams_per_node` and `streams_per_conversation` of
    /// the server: room for the streams and wrk's connections, never below the defaults.
    fn raised_limits(&self) -> (usize, usize, usize) {
        (
            (self.streams + self.connections as usize + 256).max(1024),
            (self.streams + 16).max(2000),
            self.streams_per_conversation.max(3),
        )
    }

    /// The server's `herald.toml`: the defaults, but with room for the streams and for the chat
    /// starts of one address.
    fn config(&self) -> String {
        let (max_connections, per_node, per_conversation) = self.raised_limits();
        format!(
            "# herald-bench chat: limits raised for {streams} streams from one address\n\
             [http]\nmax_connections = {max_connections}\n\
             [chat]\nstreams_per_node = {per_node}\nstreams_per_conversation = {per_conversation}\n\
             messages_per_minute_per_address = 1000000\n",
            streams = self.streams,
        )
    }
}

/// This process's soft limit of open files (`ulimit -n`), if it has one.
fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

pub async fn chat_bench(mut options: Options) -> anyhow::Result<()> {
    options.check()?;
    if options.pin {
        options.pin = pin_servers();
    }
    match options.postgres.clone() {
        None => {
            let dir = tempfile::tempdir()?;
            run(&options, dir.path(), "sqlite://herald.db", "sqlite").await
        }
        Some(server) => {
            let name = format!("herald_bench_{}", uuid::Uuid::now_v7().simple());
            let admin = sqlx::PgPool::connect(&server)
                .await
                .context("cannot connect to --postgres")?;
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&admin)
                .await?;
            let dir = tempfile::tempdir()?;
            let result = run(
                &options,
                dir.path(),
                &with_database(&server, &name),
                "postgres",
            )
            .await;
            let dropped = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&admin)
            .await;
            admin.close().await;
            result?;
            dropped?;
            Ok(())
        }
    }
}

/// Everything against one server in `dir` on `url`.
async fn run(options: &Options, dir: &Path, url: &str, backend: &str) -> anyhow::Result<()> {
    let config = options.config();
    std::fs::write(dir.join("herald.toml"), &config)?;
    println!(
        "{}",
        json!({
            "bench": "chat",
            "backend": backend,
            "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
            "connections": options.connections,
            "threads": options.threads,
            "duration_s": options.duration_secs,
            "rounds": options.rounds,
            "pace_ms": options.pace_ms,
            "streams": options.streams,
            "streams_per_conversation": options.streams_per_conversation,
            "rust_log": options.rust_log.as_deref().unwrap_or("(herald's default)"),
            "herald_toml": config,
            "load_average": load_average(),
        })
    );

    let token = admin_token(&options.herald, dir, url)?;
    let mut node = Node::start_logging(&options.herald, dir, url, 0, options.rust_log.as_deref())?;
    let base = node.wait_listening(Duration::from_secs(60))?;
    let pid = node.pid().context("herald is not running")?;
    let api = Api {
        http: reqwest::Client::new(),
        base: base.clone(),
        token,
    };
    let site = set_up(&api).await?;

    let mut summary = Vec::new();
    config_bench(options, dir, &api, &site, &mut node, &mut summary).await?;
    widget_bench(&api, &mut summary).await?;
    if options.streams > 0 {
        streams_bench(options, &api, &site, pid, &mut node, &mut summary).await?;
    }
    node.check_alive()?;
    node.stop()?;

    eprintln!("\nherald-bench chat ({backend}):");
    for line in &summary {
        eprintln!("  {line}");
    }
    Ok(())
}

/// `herald token create --role admin` on the bench's database: the token of its API calls.
fn admin_token(herald: &Path, dir: &Path, url: &str) -> anyhow::Result<String> {
    let out = Command::new(herald)
        .current_dir(dir)
        .env("HERALD_DATABASE_URL", url)
        .env("RUST_LOG", "warn")
        .args(["token", "create", "--name", "bench", "--role", "admin"])
        .output()
        .with_context(|| format!("cannot run {} token create", herald.display()))?;
    ensure!(
        out.status.success(),
        "herald token create failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout)?.trim().to_string();
    ensure!(!token.is_empty(), "herald token create printed no token");
    Ok(token)
}

// ---------------------------------------------------------------- set-up

struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> anyhow::Result<Value> {
        let res = self
            .http
            .request(method.clone(), format!("{}/api/v1{path}", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .with_context(|| format!("{method} /api/v1{path}"))?;
        let status = res.status();
        let text = res.text().await?;
        ensure!(
            status.is_success(),
            "{method} /api/v1{path}: {status} {text}"
        );
        Ok(serde_json::from_str(&text)?)
    }

    async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.send(reqwest::Method::POST, path, body).await
    }

    /// A chat campaign greeting `greeting`, open all week, with these chat settings.
    async fn chat_campaign(
        &self,
        name: &str,
        greeting: &str,
        settings: Value,
    ) -> anyhow::Result<String> {
        let answer = self
            .post(
                "/answers",
                json!({"name": name, "variants": [{"language": "en", "body": greeting}]}),
            )
            .await?;
        let days: serde_json::Map<String, Value> =
            ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
                .iter()
                .map(|d| (d.to_string(), json!(["00:00-24:00"])))
                .collect();
        let campaign = self
            .post(
                "/campaigns",
                json!({"name": name, "channel": "chat", "language": "en",
                       "answer_id": answer["id"], "schedule": {"timezone": "UTC", "days": days}}),
            )
            .await?;
        let id = campaign["id"]
            .as_str()
            .context("a campaign without id")?
            .to_string();
        self.send(
            reqwest::Method::PUT,
            &format!("/campaigns/{id}/chat"),
            settings,
        )
        .await?;
        Ok(id)
    }
}

/// The chat site the bench measures.
struct Site {
    key: String,
    /// The campaign visitors start chats on.
    campaign: String,
}

/// A site of [`ORIGIN`] with an inbox and two live campaigns, as a shop would set it up: a
/// product-page greeting after a few seconds, and a big-cart greeting on the widget's event.
async fn set_up(api: &Api) -> anyhow::Result<Site> {
    let site = api
        .post(
            "/chat/sites",
            json!({"name": "Bench shop", "allowed_origins": [ORIGIN], "max_per_visit": 1}),
        )
        .await?;
    let inbox = api.post("/inboxes", json!({"name": "Web chats"})).await?;
    let campaign = api
        .chat_campaign(
            "Shoes",
            "Need a hand choosing shoes?",
            json!({"site_id": site["id"], "inbox_id": inbox["id"], "order": 1, "triggers": [
                {"kind": "url", "include": [{"match": "wildcard", "value": "/shoes/*"}],
                 "exclude": [{"match": "equals", "value": "/shoes/checkout"}]},
                {"kind": "time_on_page", "seconds": 5}]}),
        )
        .await?;
    api.chat_campaign(
        "Big carts",
        "Big cart! Free shipping today.",
        json!({"site_id": site["id"], "inbox_id": inbox["id"], "order": 2, "triggers": [
            {"kind": "event", "name": "cart", "condition": {"op": "gte", "value": 250}}]}),
    )
    .await?;
    Ok(Site {
        key: site["key"]
            .as_str()
            .context("a site without key")?
            .to_string(),
        campaign,
    })
}

// ---------------------------------------------------------------- config

/// One wrk run's figures.
#[derive(Debug, Clone, Copy, PartialEq)]
struct WrkRun {
    requests_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    requests: u64,
    /// Responses other than 2xx or 3xx.
    non_2xx: u64,
    /// Connect, read, write errors and timeouts, together.
    socket_errors: u64,
}

/// A latency as wrk prints it (`812.00us`, `1.23ms`, `1.00s`, `2.00m`), in milliseconds.
fn wrk_millis(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().ok()?;
    Some(match unit {
        "us" => value / 1000.0,
        "ms" => value,
        "s" => value * 1000.0,
        "m" => value * 60_000.0,
        "h" => value * 3_600_000.0,
        _ => return None,
    })
}

/// The figures of `wrk --latency`'s report.
fn parse_wrk(out: &str) -> anyhow::Result<WrkRun> {
    let mut rps = None;
    let mut p50 = None;
    let mut p99 = None;
    let mut requests = None;
    let mut non_2xx = 0;
    let mut socket_errors = 0;
    for line in out.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", n] => rps = n.parse().ok(),
            ["50%", t] => p50 = wrk_millis(t),
            ["99%", t] => p99 = wrk_millis(t),
            [n, "requests", "in", ..] => requests = n.parse().ok(),
            ["Non-2xx", "or", "3xx", "responses:", n] => non_2xx = n.parse().unwrap_or(0),
            ["Socket", "errors:", rest @ ..] => {
                socket_errors = rest
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok())
                    .sum();
            }
            _ => {}
        }
    }
    match (rps, p50, p99, requests) {
        (Some(requests_per_s), Some(p50_ms), Some(p99_ms), Some(requests)) => Ok(WrkRun {
            requests_per_s,
            p50_ms,
            p99_ms,
            requests,
            non_2xx,
            socket_errors,
        }),
        _ => bail!("cannot read wrk's report (was --latency given?):\n{out}"),
    }
}

/// Pins this process's threads (the bare route's runtime among them, and every process it
/// starts after, `herald` among them) to CPU 0, for wrk to have CPU 1 to itself: on a machine
/// of two CPUs, the load generator and the server otherwise take each other's time in a way
/// that changes from run to run (single runs of the same binaries varied from 0.65 to 1.06 in
/// ratio unpinned). Whether it pinned; says why not on stderr.
fn pin_servers() -> bool {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpus < 2 {
        eprintln!("not pinned: one CPU");
        return false;
    }
    match Command::new("taskset")
        .args(["-a", "-p", "-c", "0", &std::process::id().to_string()])
        .stdout(Stdio::null())
        .status()
    {
        Ok(status) if status.success() => true,
        Ok(status) => {
            eprintln!("not pinned: taskset exited with {status}");
            false
        }
        Err(e) => {
            eprintln!("not pinned: cannot run taskset ({e})");
            false
        }
    }
}

/// `wrk --latency` against `url` with the widget's `Origin`; its figures.
async fn wrk(
    options: &Options,
    url: &str,
    duration: Duration,
    script: Option<&Path>,
) -> anyhow::Result<WrkRun> {
    let mut command = if options.pin {
        let mut taskset = Command::new("taskset");
        taskset.args(["-c", "1"]).arg(&options.wrk);
        taskset
    } else {
        Command::new(&options.wrk)
    };
    if let Some(script) = script {
        command.arg("-s").arg(script);
    }
    command
        .arg(format!("-t{}", options.threads))
        .arg(format!("-c{}", options.connections))
        .arg(format!("-d{}s", duration.as_secs().max(1)))
        .arg("--latency")
        .args(["-H", &format!("Origin: {ORIGIN}")])
        .arg(url);
    let wrk = options.wrk.display().to_string();
    // On a blocking thread: the bare server runs on this process's runtime meanwhile.
    let out = tokio::task::spawn_blocking(move || command.output())
        .await?
        .with_context(|| format!("cannot run {wrk}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "{} failed ({}): {}{}",
        options.wrk.display(),
        out.status,
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    parse_wrk(&stdout)
}

/// Headers the bare route does not copy: those of the connection, not of the answer.
fn hop_header(name: &HeaderName) -> bool {
    [
        header::DATE,
        header::CONTENT_LENGTH,
        header::TRANSFER_ENCODING,
        header::CONNECTION,
    ]
    .contains(name)
}

/// A bare axum server in this process answering `path` with `headers` and `body`; its address.
async fn bare_server(path: &str, headers: HeaderMap, body: Bytes) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new().route(
        path,
        axum::routing::get(move || {
            let (headers, body) = (headers.clone(), body.clone());
            async move { (headers, body) }
        }),
    );
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("the bare server stopped: {e}");
        }
    });
    Ok(addr)
}

/// A GET with the widget's `Origin`: status, headers (without the connection's) and body.
async fn get(http: &reqwest::Client, url: &str) -> anyhow::Result<(u16, HeaderMap, Bytes)> {
    let res = http
        .get(url)
        .header(header::ORIGIN, ORIGIN)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    let status = res.status().as_u16();
    let mut headers = res.headers().clone();
    let hop: Vec<HeaderName> = headers.keys().filter(|n| hop_header(n)).cloned().collect();
    for name in hop {
        headers.remove(name);
    }
    Ok((status, headers, res.bytes().await?))
}

/// The config route against the bare route: requests/s, their ratio, p99s.
async fn config_bench(
    options: &Options,
    dir: &Path,
    api: &Api,
    site: &Site,
    node: &mut Node,
    summary: &mut Vec<String>,
) -> anyhow::Result<()> {
    let path = format!("/chat/v1/sites/{}/config", site.key);
    let herald_url = format!("{}{path}", api.base);
    let (status, headers, body) = get(&api.http, &herald_url).await?;
    ensure!(
        status == 200,
        "GET {path} answered {status}: {}",
        String::from_utf8_lossy(&body)
    );
    ensure!(
        String::from_utf8_lossy(&body).contains(&site.campaign),
        "the site's configuration does not show the bench's campaign: {}",
        String::from_utf8_lossy(&body)
    );
    ensure!(
        headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_some(),
        "the configuration was answered without CORS for {ORIGIN}"
    );
    let bare = bare_server("/chat/v1/sites/{key}/config", headers.clone(), body.clone()).await?;
    let bare_url = format!("http://{bare}{path}");
    let (bare_status, bare_headers, bare_body) = get(&api.http, &bare_url).await?;
    ensure!(
        bare_status == 200 && bare_body == body && bare_headers == headers,
        "the bare route does not answer as Herald does: {bare_status} {bare_headers:?} against \
         {status} {headers:?}"
    );
    println!(
        "{}",
        json!({
            "figure": "config_response",
            "body_bytes": body.len(),
            "headers": headers.iter().map(|(k, v)| format!("{k}: {}", v.to_str().unwrap_or("?"))).collect::<Vec<_>>(),
        })
    );

    // Warm-up, unreported: connections, caches, the allocator, the snapshot.
    wrk(options, &herald_url, WARM_UP, None).await?;
    wrk(options, &bare_url, WARM_UP, None).await?;
    let duration = Duration::from_secs(options.duration_secs);
    let (mut herald_runs, mut bare_runs) = (Vec::new(), Vec::new());
    for round in 1..=options.rounds {
        for (target, url) in [("herald", &herald_url), ("bare", &bare_url)] {
            let run = wrk(options, url, duration, None).await?;
            node.check_alive()?;
            println!(
                "{}",
                json!({
                    "run": "config",
                    "target": target,
                    "round": round,
                    "requests_per_s": round_to(run.requests_per_s, 1.0),
                    "p50_ms": round_to(run.p50_ms, 1000.0),
                    "p99_ms": round_to(run.p99_ms, 1000.0),
                    "requests": run.requests,
                    "non_2xx": run.non_2xx,
                    "socket_errors": run.socket_errors,
                    "load_average": load_average(),
                })
            );
            ensure!(
                run.non_2xx == 0,
                "{target}: {} responses were not 2xx or 3xx",
                run.non_2xx
            );
            if target == "herald" {
                herald_runs.push(run);
            } else {
                bare_runs.push(run);
            }
        }
    }
    let herald_rps = median(herald_runs.iter().map(|r| r.requests_per_s));
    let bare_rps = median(bare_runs.iter().map(|r| r.requests_per_s));
    let saturated_herald_p99 = median(herald_runs.iter().map(|r| r.p99_ms));
    let saturated_bare_p99 = median(bare_runs.iter().map(|r| r.p99_ms));
    let ratio = herald_rps / bare_rps;

    // Paced: latency below saturation.
    let (mut paced_herald, mut paced_bare) = (Vec::new(), Vec::new());
    if options.pace_ms > 0 {
        let script = dir.join("paced.lua");
        std::fs::write(
            &script,
            format!(
                "-- herald-bench chat: each connection waits {pace} ms after each answer\n\
                 function delay()\n  return {pace}\nend\n",
                pace = options.pace_ms
            ),
        )?;
        for round in 1..=options.rounds {
            for (target, url) in [("herald", &herald_url), ("bare", &bare_url)] {
                let run = wrk(options, url, duration, Some(&script)).await?;
                node.check_alive()?;
                println!(
                    "{}",
                    json!({
                        "run": "config_paced",
                        "target": target,
                        "round": round,
                        "pace_ms": options.pace_ms,
                        "requests_per_s": round_to(run.requests_per_s, 1.0),
                        "p50_ms": round_to(run.p50_ms, 1000.0),
                        "p99_ms": round_to(run.p99_ms, 1000.0),
                        "requests": run.requests,
                        "non_2xx": run.non_2xx,
                        "socket_errors": run.socket_errors,
                        "load_average": load_average(),
                    })
                );
                ensure!(
                    run.non_2xx == 0,
                    "{target}: {} responses were not 2xx or 3xx",
                    run.non_2xx
                );
                if target == "herald" {
                    paced_herald.push(run);
                } else {
                    paced_bare.push(run);
                }
            }
        }
    }
    let paced = !paced_herald.is_empty();
    let paced_rps = median(paced_herald.iter().map(|r| r.requests_per_s));
    let herald_p99 = if paced {
        median(paced_herald.iter().map(|r| r.p99_ms))
    } else {
        saturated_herald_p99
    };
    let bare_p99 = if paced {
        median(paced_bare.iter().map(|r| r.p99_ms))
    } else {
        saturated_bare_p99
    };
    let figure = json!({
        "figure": "config",
        "connections": options.connections,
        "herald_requests_per_s": herald_runs.iter().map(|r| round_to(r.requests_per_s, 1.0)).collect::<Vec<_>>(),
        "bare_requests_per_s": bare_runs.iter().map(|r| round_to(r.requests_per_s, 1.0)).collect::<Vec<_>>(),
        "herald_p99_ms": herald_runs.iter().map(|r| round_to(r.p99_ms, 1000.0)).collect::<Vec<_>>(),
        "bare_p99_ms": bare_runs.iter().map(|r| round_to(r.p99_ms, 1000.0)).collect::<Vec<_>>(),
        "pace_ms": options.pace_ms,
        "paced_herald_requests_per_s": paced_herald.iter().map(|r| round_to(r.requests_per_s, 1.0)).collect::<Vec<_>>(),
        "paced_herald_p99_ms": paced_herald.iter().map(|r| round_to(r.p99_ms, 1000.0)).collect::<Vec<_>>(),
        "paced_bare_p99_ms": paced_bare.iter().map(|r| round_to(r.p99_ms, 1000.0)).collect::<Vec<_>>(),
        "p99_judged": if paced { "paced" } else { "saturated" },
        "ratio": round_to(ratio, 1000.0),
        "ratio_target": RATIO_TARGET,
        "ratio_met": ratio >= RATIO_TARGET,
        "pinned": options.pin,
        "p99_target_ms": P99_TARGET_MS,
        "p99_met": herald_p99 < P99_TARGET_MS,
    });
    println!("{figure}");
    summary.push(if options.pin {
        "servers pinned to CPU 0, wrk to CPU 1 (--no-pin: unpinned)".to_string()
    } else {
        "not pinned".to_string()
    });
    summary.push(format!(
        "config route, {} connections, {} s runs, saturated: Herald {:.0} req/s (p99 {:.2} ms), \
         bare axum {:.0} req/s (p99 {:.2} ms), ratio {:.3} (target ≥ {RATIO_TARGET}: {})",
        options.connections,
        options.duration_secs,
        herald_rps,
        saturated_herald_p99,
        bare_rps,
        saturated_bare_p99,
        ratio,
        met(ratio >= RATIO_TARGET),
    ));
    if paced {
        summary.push(format!(
            "config route, {} connections paced at {} ms ({:.0} req/s): Herald p99 {:.2} ms, \
             bare p99 {:.2} ms (target < {P99_TARGET_MS} ms: {})",
            options.connections,
            options.pace_ms,
            paced_rps,
            herald_p99,
            bare_p99,
            met(herald_p99 < P99_TARGET_MS),
        ));
    } else {
        summary.push(format!(
            "Herald p99 at saturation (target < {P99_TARGET_MS} ms: {})",
            met(herald_p99 < P99_TARGET_MS)
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------- widget

/// The widget's size, raw and gzipped.
async fn widget_bench(api: &Api, summary: &mut Vec<String>) -> anyhow::Result<()> {
    let url = format!("{}/chat/widget.js", api.base);
    let plain = api.http.get(&url).send().await?;
    ensure!(
        plain.status().is_success(),
        "GET /chat/widget.js: {}",
        plain.status()
    );
    let raw = plain.bytes().await?;
    // reqwest without its gzip feature neither asks for nor decodes compression: what comes
    // back is what went over the wire.
    let asked = api
        .http
        .get(&url)
        .header(header::ACCEPT_ENCODING, "gzip")
        .send()
        .await?;
    ensure!(
        asked.status().is_success(),
        "GET /chat/widget.js: {}",
        asked.status()
    );
    let encoding = asked
        .headers()
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let wire = asked.bytes().await?;
    let (gzip_bytes, by) = if encoding.as_deref() == Some("gzip") {
        (wire.len(), "herald")
    } else {
        (gzip9(&raw)?, "gzip -9 (herald sends it uncompressed)")
    };
    let figure = json!({
        "figure": "widget",
        "bytes": raw.len(),
        "content_encoding_when_asked": encoding,
        "bytes_when_gzip_asked": wire.len(),
        "gzip_bytes": gzip_bytes,
        "gzipped_by": by,
        "target_bytes": WIDGET_TARGET_BYTES,
        "met": gzip_bytes <= WIDGET_TARGET_BYTES,
    });
    println!("{figure}");
    summary.push(format!(
        "widget.js: {} bytes, {gzip_bytes} gzipped ({by}); target ≤ {WIDGET_TARGET_BYTES}: {}",
        raw.len(),
        met(gzip_bytes <= WIDGET_TARGET_BYTES)
    ));
    Ok(())
}

/// The size of `bytes` after `gzip -9`.
fn gzip9(bytes: &[u8]) -> anyhow::Result<usize> {
    let mut child = Command::new("gzip")
        .args(["-9", "-c", "-n"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot run gzip (install it, e.g. apt-get install gzip)")?;
    let mut stdin = child.stdin.take().context("no stdin")?;
    let input = bytes.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output()?;
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("the gzip writer panicked"))??;
    ensure!(out.status.success(), "gzip -9 failed");
    Ok(out.stdout.len())
}

// ---------------------------------------------------------------- streams

/// A process's resident set, in MiB (`VmRSS` of `/proc/PID/status`).
fn rss_mb(pid: u32) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("cannot read /proc/{pid}/status"))?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse().ok())
        .context("no VmRSS in /proc/PID/status")?;
    Ok(kb / 1024.0)
}

/// A process's CPU time (user and system), in seconds, at 100 clock ticks a second (Linux's
/// `USER_HZ`).
fn cpu_secs(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The fields after the command name, which may hold spaces, in parentheses.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("unreadable stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name.
    let ticks: u64 = fields
        .get(11..13)
        .context("short stat")?
        .iter()
        .map(|f| f.parse::<u64>().unwrap_or(0))
        .sum();
    Ok(ticks as f64 / 100.0)
}

/// The process's CPU use over `span`, in percent of one core.
async fn cpu_percent(pid: u32, span: Duration) -> anyhow::Result<f64> {
    let before = cpu_secs(pid)?;
    let started = Instant::now();
    tokio::time::sleep(span).await;
    let used = cpu_secs(pid)? - before;
    Ok(used / started.elapsed().as_secs_f64() * 100.0)
}

/// Waits until the resident set stops moving (two readings a second apart within 0.5 MiB, at
/// least `min` after the start, at most `max`); the last reading.
async fn settled_rss(pid: u32, min: Duration, max: Duration) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut last = rss_mb(pid)?;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = rss_mb(pid)?;
        let elapsed = started.elapsed();
        if (elapsed >= min && (now - last).abs() <= 0.5) || elapsed >= max {
            return Ok(now);
        }
        last = now;
    }
}

/// Starts `count` conversations through the public route, as many visitors answering the
/// greeting; their tokens.
async fn start_conversations(api: &Api, site: &Site, count: usize) -> anyhow::Result<Vec<String>> {
    let url = Arc::new(format!(
        "{}/chat/v1/sites/{}/conversations",
        api.base, site.key
    ));
    let body = Arc::new(
        json!({"campaign_id": site.campaign, "page_url": PAGE, "body": "Hello, do you ship to Norway?"}),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..START_CONCURRENCY {
        let (http, url, body, next) = (api.http.clone(), url.clone(), body.clone(), next.clone());
        workers.spawn(async move {
            let mut tokens = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < count {
                let res = http
                    .post(url.as_str())
                    .header(header::ORIGIN, ORIGIN)
                    .json(&*body)
                    .send()
                    .await?;
                let status = res.status();
                let text = res.text().await?;
                ensure!(
                    status.as_u16() == 201,
                    "a chat start answered {status}: {text}"
                );
                let started: Value = serde_json::from_str(&text)?;
                tokens.push(
                    started["token"]
                        .as_str()
                        .context("a chat start without token")?
                        .to_string(),
                );
            }
            anyhow::Ok(tokens)
        });
    }
    let mut tokens = Vec::with_capacity(count);
    while let Some(done) = workers.join_next().await {
        tokens.extend(done??);
    }
    Ok(tokens)
}

/// Opens one event stream as `EventSource` does (token in the query), reads its answer's head
/// and checks it is a 200 event stream.
async fn open_stream(addr: SocketAddr, path: &str) -> anyhow::Result<TcpStream> {
    let mut stream = TcpStream::connect(addr).await?;
    stream
        .write_all(
            format!(
                "GET {path} HTTP/1.1\r\nHost: {addr}\r\nOrigin: {ORIGIN}\r\n\
                 Accept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n"
            )
            .as_bytes(),
        )
        .await?;
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        ensure!(n > 0, "closed before its answer's head");
        head.extend_from_slice(&chunk[..n]);
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            let text = String::from_utf8_lossy(&head[..end]);
            ensure!(
                text.starts_with("HTTP/1.1 200")
                    && text.to_ascii_lowercase().contains("text/event-stream"),
                "the stream was answered: {}",
                String::from_utf8_lossy(&head)
            );
            return Ok(stream);
        }
        ensure!(head.len() < 64 * 1024, "an answer's head over 64 KiB");
    }
}

/// Idle streams: the server's resident set before and with them.
async fn streams_bench(
    options: &Options,
    api: &Api,
    site: &Site,
    pid: u32,
    node: &mut Node,
    summary: &mut Vec<String>,
) -> anyhow::Result<()> {
    let streams = options.streams;
    let per = options.streams_per_conversation;
    let conversations = streams.div_ceil(per);
    let started = Instant::now();
    let tokens = start_conversations(api, site, conversations).await?;
    let start_s = started.elapsed().as_secs_f64();
    node.check_alive()?;

    // Idle: everything made, nothing open; the allocator warmed by the runs before.
    let idle_mb = settled_rss(pid, Duration::from_secs(3), Duration::from_secs(20)).await?;
    let idle_cpu = cpu_percent(pid, Duration::from_secs(5)).await?;

    let addr: SocketAddr = api
        .base
        .trim_start_matches("http://")
        .parse()
        .context("herald's address")?;
    let paths: Arc<Vec<String>> = Arc::new(
        (0..streams)
            .map(|i| {
                format!(
                    "/chat/v1/sites/{}/conversations/events?token={}",
                    site.key,
                    tokens[i / per]
                )
            })
            .collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let closed = Arc::new(AtomicUsize::new(0));
    let holders = Arc::new(std::sync::Mutex::new(tokio::task::JoinSet::new()));
    let opening = Instant::now();
    let mut openers = tokio::task::JoinSet::new();
    for _ in 0..OPEN_CONCURRENCY {
        let (paths, next, closed, holders) =
            (paths.clone(), next.clone(), closed.clone(), holders.clone());
        openers.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(path) = paths.get(i) else {
                    return anyhow::Ok(());
                };
                let mut stream = open_stream(addr, path)
                    .await
                    .with_context(|| format!("stream {i}"))?;
                let closed = closed.clone();
                // Reads (and drops) the events and keep-alives until the server closes it.
                holders
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .spawn(async move {
                        let mut buf = [0u8; 512];
                        while let Ok(n) = stream.read(&mut buf).await {
                            if n == 0 {
                                break;
                            }
                        }
                        closed.fetch_add(1, Ordering::Relaxed);
                    });
            }
        });
    }
    let mut failed = None;
    while let Some(done) = openers.join_next().await {
        if let Err(e) = done? {
            failed.get_or_insert(e);
        }
    }
    if let Some(e) = failed {
        let opened = holders.lock().unwrap_or_else(|e| e.into_inner()).len();
        bail!("{opened} of {streams} streams opened, then: {e:#}");
    }
    let open_s = opening.elapsed().as_secs_f64();
    node.check_alive()?;

    let rss = settled_rss(pid, Duration::from_secs(5), Duration::from_secs(60)).await?;
    let busy_cpu = cpu_percent(pid, Duration::from_secs(5)).await?;
    let gone = closed.load(Ordering::Relaxed);
    ensure!(
        gone == 0,
        "{gone} of {streams} streams were closed by the server while idle"
    );
    holders
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .abort_all();

    let above = rss - idle_mb;
    // The target is for 10,000 streams: scale it to the count measured.
    let target = STREAMS_TARGET_MB * streams as f64 / STREAMS_TARGET_COUNT as f64;
    let figure = json!({
        "figure": "streams",
        "streams": streams,
        "conversations": conversations,
        "streams_per_conversation": per,
        "chat_starts_per_s": round_to(conversations as f64 / start_s, 10.0),
        "open_s": round_to(open_s, 100.0),
        "idle_rss_mb": round_to(idle_mb, 10.0),
        "rss_mb": round_to(rss, 10.0),
        "above_idle_mb": round_to(above, 10.0),
        "kib_per_stream": round_to(above * 1024.0 / streams as f64, 100.0),
        "target_mb": round_to(target, 10.0),
        "met": above <= target,
        "cpu_percent_idle": round_to(idle_cpu, 10.0),
        "cpu_percent_streams_open": round_to(busy_cpu, 10.0),
        "load_average": load_average(),
    });
    println!("{figure}");
    summary.push(format!(
        "{streams} idle streams on {conversations} conversations: {rss:.1} MiB against {idle_mb:.1} \
         MiB idle, {above:.1} MiB above ({:.1} KiB a stream); target ≤ {target:.1} MiB: {}. Server \
         CPU {idle_cpu:.0}% of a core idle, {busy_cpu:.0}% with the streams open",
        above * 1024.0 / streams as f64,
        met(above <= target),
    ));
    let (max_connections, per_node, per_conversation) = options.raised_limits();
    summary.push(format!(
        "(herald.toml raised, for the streams: [http] max_connections = {max_connections}, \
         [chat] streams_per_node = {per_node}, streams_per_conversation = {per_conversation}, \
         messages_per_minute_per_address = 1000000)"
    ));
    Ok(())
}

// ---------------------------------------------------------------- figures

fn round_to(x: f64, per: f64) -> f64 {
    (x * per).round() / per
}

fn met(yes: bool) -> &'static str {
    if yes { "met" } else { "MISSED" }
}

/// The machine's load average over the last minute (`/proc/loadavg`).
fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "Running 10s test @ http://127.0.0.1:8080/chat/v1/sites/k/config
  2 threads and 256 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     4.01ms    2.10ms  40.12ms   80.00%
    Req/Sec    32.10k     2.00k   40.00k    70.00%
  Latency Distribution
     50%  812.00us
     75%    4.50ms
     90%    6.00ms
     99%    1.20s
  640000 requests in 10.00s, 300.00MB read
  Socket errors: connect 0, read 3, write 0, timeout 2
  Non-2xx or 3xx responses: 7
Requests/sec:  63999.50
Transfer/sec:     30.00MB
";

    #[test]
    fn wrk_reports_are_read() {
        let run = parse_wrk(REPORT).unwrap();
        assert_eq!(
            run,
            WrkRun {
                requests_per_s: 63999.5,
                p50_ms: 0.812,
                p99_ms: 1200.0,
                requests: 640000,
                non_2xx: 7,
                socket_errors: 5,
            }
        );
        assert!(parse_wrk("Running 10s test\n").is_err());
        assert_eq!(wrk_millis("2.00m"), Some(120_000.0));
        assert_eq!(wrk_millis("3"), None);
    }

    #[test]
    fn config_raises_the_limits_the_streams_need() {
        let options = Options {
            herald: PathBuf::from("herald"),
            postgres: None,
            wrk: PathBuf::from("wrk"),
            connections: 256,
            threads: 2,
            duration_secs: 10,
            rounds: 2,
            pace_ms: 10,
            streams: 10_000,
            streams_per_conversation: 1,
            rust_log: None,
            pin: false,
        };
        let config: toml::Value = toml::from_str(&options.config()).unwrap();
        assert_eq!(config["http"]["max_connections"].as_integer(), Some(10_512));
        assert_eq!(
            config["chat"]["streams_per_node"].as_integer(),
            Some(10_016)
        );
        assert_eq!(
            config["chat"]["streams_per_conversation"].as_integer(),
            Some(3)
        );
    }
}
