//! The database going away under running `herald serve` processes, end to end: a PostgreSQL
//! server of the test's own ([`common::pg::PrivatePg`], never the shared one) is restarted, or
//! stopped for 20 s, while two Herald nodes send an SMS outreach through a fake Twilio on a real
//! socket. The outreach must still finish with every recipient terminal, no number texted twice,
//! and every message the provider accepted recorded on its recipient with the provider's id:
//! results that could not be written while the database was away are written when it is back.
//! While it is down, `/healthz` (liveness) answers 200 and `/readyz` 503, each within a second.

use herald_testkit::FakeTwilio;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;

use common::Herald;
use common::outreach::{Api, launch, wait_until};
use common::pg::PrivatePg;

/// Recipients of the outreach.
const RECIPIENTS: usize = 1_200;
/// Sends in flight at once per node, as `config` sets them.
const CONCURRENCY: usize = 8;
/// Herald nodes on the one database.
const NODES: usize = 2;
/// The fake provider's answer time: slow enough that a batch's sends are under way whenever
/// the database goes, so that results are waiting to be written.
const LATENCY: Duration = Duration::from_millis(100);

/// `herald.toml` in `dir`: the fake Twilio, unlimited rate, small batches, and a lease (30 s)
/// longer than the outage, so that no live claim expires while its node cannot renew it.
fn config(dir: &Path, twilio: &FakeTwilio) {
    std::fs::write(
        dir.join("herald.toml"),
        format!(
            "{}\n[dispatch]\nlease_secs = 30\nbatch_size = 60\nconcurrency = {CONCURRENCY}\n\
             poll_ms = 100\nshutdown_grace_secs = 2\n[dispatch.rates]\nsms = inf\n",
            twilio.config_toml()
        ),
    )
    .unwrap();
}

/// A `herald serve` in `dir` on `db`, and every line it writes to stderr (warnings and up).
fn node(dir: &Path, db: &str) -> (Herald, String, Arc<Mutex<Vec<String>>>) {
    let mut child = common::herald(dir, db)
        .args(["serve", "--bind", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn herald serve");
    let stderr = child.stderr.take().expect("stderr");
    let herald = Herald::adopt(child);
    let log = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    {
        let log = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("panicked") {
                    eprintln!("herald: {line}");
                }
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_string());
                }
                log.lock().unwrap().push(line);
            }
        });
    }
    let base = rx
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|e| {
            panic!(
                "herald serve did not listen ({e}); its stderr:\n{}",
                log.lock().unwrap().join("\n")
            )
        });
    (herald, base, log)
}

/// What the nodes wrote, to explain a failure.
fn logs(all: &[Arc<Mutex<Vec<String>>>]) -> String {
    all.iter()
        .enumerate()
        .map(|(i, l)| format!("node {i}:\n{}", l.lock().unwrap().join("\n")))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `GET base/path` within a second: its status and how long it took.
async fn probe(http: &reqwest::Client, base: &str, path: &str) -> (u16, Duration) {
    let began = Instant::now();
    let res = http
        .get(format!("{base}{path}"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{path} did not answer: {e}"));
    (res.status().as_u16(), began.elapsed())
}

/// While the database is down: `/healthz` says the process lives (200) and `/readyz` that the
/// node should take no traffic (503), each at once rather than after the pool's acquire timeout.
async fn health_while_down(http: &reqwest::Client, bases: &[String]) {
    for base in bases {
        let (status, took) = probe(http, base, "/healthz").await;
        assert_eq!(status, 200, "/healthz while the database is down");
        assert!(
            took < Duration::from_secs(1),
            "/healthz took {took:?} while the database is down"
        );
        let (status, took) = probe(http, base, "/readyz").await;
        assert_eq!(status, 503, "/readyz while the database is down");
        assert!(
            took < Duration::from_secs(1),
            "/readyz took {took:?} while the database is down"
        );
    }
}

/// The fault done to the database mid-send.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// `pg_ctl stop -m fast`, then start at once.
    Restart,
    /// Stopped for this long, then started.
    Outage(Duration),
}

async fn survive(fault: Fault) {
    let Some(pg) = PrivatePg::start() else {
        return;
    };
    let db = pg.url();
    let top = tempfile::tempdir().unwrap();
    let twilio = FakeTwilio::builder().latency(LATENCY).start();
    // A working directory per node: each its own journal, as on separate machines.
    let dirs: Vec<_> = (0..NODES)
        .map(|i| {
            let dir = top.path().join(format!("node{i}"));
            std::fs::create_dir(&dir).unwrap();
            config(&dir, &twilio);
            dir
        })
        .collect();
    let api = Api {
        http: reqwest::Client::new(),
        token: common::admin_token(&dirs[0], &db),
    };
    let mut nodes = Vec::new();
    for dir in &dirs {
        nodes.push(node(dir, &db));
    }
    let bases: Vec<String> = nodes.iter().map(|n| n.1.clone()).collect();
    let node_logs: Vec<_> = nodes.iter().map(|n| n.2.clone()).collect();
    let mut csv = String::from("phone,name\n");
    for i in 0..RECIPIENTS {
        csv.push_str(&format!("+1415{:07},Customer {i}\n", 5_000_000 + i));
    }
    let outreach = launch(
        &dirs[0],
        &db,
        &bases[0],
        &api,
        "sms",
        "+14155550100",
        "twilio",
        &csv,
    )
    .await;

    wait_until(Duration::from_secs(120), "the first sends", async || {
        twilio.accepted().len() >= RECIPIENTS / 5
    })
    .await;
    let before = twilio.accepted().len();
    match fault {
        Fault::Restart => pg.restart(),
        Fault::Outage(outage) => {
            let down = Instant::now();
            pg.stop_server();
            // Sends that were in flight finish while the database is gone; their results wait.
            tokio::time::sleep(Duration::from_millis(500)).await;
            health_while_down(&api.http, &bases).await;
            tokio::time::sleep(outage / 2).await;
            health_while_down(&api.http, &bases).await;
            tokio::time::sleep(outage.saturating_sub(down.elapsed())).await;
            pg.start_server();
        }
    }
    let during = twilio.accepted().len() - before;
    eprintln!("{fault:?}: {before} accepted before it, {during} from then until it ended");
    assert!(
        before < RECIPIENTS,
        "the fault came after the last send: nothing was tested"
    );

    wait_until(
        Duration::from_secs(180),
        "the outreach to complete after the database came back",
        async || {
            api.get(&bases[0], &format!("outreaches/{outreach}")).await["status"] == "completed"
        },
    )
    .await;
    for base in &bases {
        let (status, _) = probe(&api.http, base, "/readyz").await;
        assert_eq!(status, 200, "/readyz once the database is back");
    }

    let recipients = api.all_recipients(&bases[0], &outreach).await;
    assert_eq!(recipients.len(), RECIPIENTS, "no recipient vanished");
    let accepted = twilio.accepted();
    // No number texted twice.
    let by_to = twilio.accepted_count_by_to();
    let twice: Vec<_> = by_to.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "numbers texted twice: {twice:?}");
    // Every message the provider accepted is on its recipient, with the provider's id: no
    // result was dropped.
    let by_address: BTreeMap<&str, &Value> = recipients
        .iter()
        .map(|r| (r["address"].as_str().unwrap(), r))
        .collect();
    for m in &accepted {
        let r = by_address
            .get(m.to.as_str())
            .unwrap_or_else(|| panic!("the provider texted {}, not a recipient", m.to));
        assert_eq!(
            (r["state"].as_str(), r["provider_message_id"].as_str()),
            (Some("sent"), Some(m.sid.as_str())),
            "the provider accepted {} as {}, but Herald recorded {r}\n{}",
            m.to,
            m.sid,
            logs(&node_logs)
        );
    }
    // Every recipient ended terminal: sent (each of which reached the provider, above and
    // below), or uncertain only if its send was in flight when the fault hit and it never
    // reached the provider — and then it says why.
    let states: BTreeMap<&str, usize> = recipients.iter().fold(BTreeMap::new(), |mut m, r| {
        *m.entry(r["state"].as_str().unwrap()).or_default() += 1;
        m
    });
    eprintln!("{fault:?}: recipients by state {states:?}");
    let texted: BTreeSet<&str> = accepted.iter().map(|m| m.to.as_str()).collect();
    let mut unknown = 0;
    for r in &recipients {
        match r["state"].as_str().unwrap() {
            "sent" => assert!(texted.contains(r["address"].as_str().unwrap()), "{r}"),
            "unknown" => {
                unknown += 1;
                assert!(
                    r["error_message"].as_str().is_some_and(|m| !m.is_empty()),
                    "an uncertain recipient without a reason: {r}"
                );
            }
            other => panic!(
                "recipient in state {other} after the outreach completed: {r}\n{}",
                logs(&node_logs)
            ),
        }
    }
    assert!(
        unknown <= CONCURRENCY * NODES,
        "{unknown} uncertain: more than the sends that can be in flight ({})",
        CONCURRENCY * NODES
    );
    let progress = api.get(&bases[0], &format!("outreaches/{outreach}")).await["progress"].clone();
    assert_eq!(progress["pending"], 0, "{progress}");
    assert_eq!(progress["total"], RECIPIENTS, "{progress}");
    if let Fault::Outage(_) = fault {
        // The fault hit while results were waiting: some node could not write a batch and
        // wrote it later (checked above: every accepted send is recorded).
        let all = logs(&node_logs);
        assert!(
            all.contains("cannot write a batch's results"),
            "no node had results to write during the outage, so the test proved nothing:\n{all}"
        );
    }
    for (herald, _, _) in nodes {
        herald.stop();
    }
    drop(pg);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_mid_send_loses_no_result_and_sends_nothing_twice() {
    survive(Fault::Restart).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_20s_mid_send_loses_no_result_and_sends_nothing_twice() {
    survive(Fault::Outage(Duration::from_secs(20))).await;
}
