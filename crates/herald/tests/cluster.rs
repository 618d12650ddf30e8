//! Several `herald serve` processes on one PostgreSQL database, against a fake Twilio on a real
//! socket: a sender's rate holds for all of them together, as a carrier meters it.

use herald_testkit::FakeTwilio;
use std::time::{Duration, Instant};

mod common;

use common::outreach::{Api, launch, wait_until};
use common::serve;

/// The sender's limit, messages a second.
const RATE: f64 = 20.0;

/// Starts `nodes` Herald processes on one database, sends one outreach from a sender limited to
/// [`RATE`], and samples what the fake Twilio accepted every 100 ms for `secs` seconds: the
/// counts, oldest first.
async fn aggregate_rate(db: &str, nodes: usize, secs: u64) -> Vec<usize> {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let twilio = FakeTwilio::builder()
        .latency(Duration::from_millis(20))
        .start();
    std::fs::write(
        dir.join("herald.toml"),
        format!(
            "{}\n[dispatch]\nbatch_size = 50\nconcurrency = 8\npoll_ms = 50\n\
             [dispatch.rates]\nsms = inf\n[dispatch.rates.senders]\n\"+14155550100\" = {RATE}\n",
            twilio.config_toml()
        ),
    )
    .unwrap();
    let api = Api {
        http: reqwest::Client::new(),
        token: common::admin_token(dir, db),
    };
    let mut running = Vec::new();
    for _ in 0..nodes {
        running.push(serve(dir, db));
    }
    let base = running[0].1.clone();
    let mut csv = String::from("phone,name\n");
    let n = (RATE as usize) * (secs as usize + 10);
    for i in 0..n {
        csv.push_str(&format!("+1415{:07},Customer {i}\n", 4_000_000 + i));
    }
    launch(dir, db, &base, &api, "sms", "+14155550100", "twilio", &csv).await;
    wait_until(Duration::from_secs(60), "the first sends", async || {
        !twilio.accepted().is_empty()
    })
    .await;
    let mut samples = Vec::new();
    let start = Instant::now();
    for i in 0..=(secs * 10) {
        let at = start + Duration::from_millis(100 * i);
        tokio::time::sleep_until(at.into()).await;
        samples.push(twilio.accepted().len());
    }
    for (herald, _) in running {
        herald.stop();
    }
    let by_to = twilio.accepted_count_by_to();
    assert!(by_to.values().all(|n| *n == 1), "a number texted twice");
    samples
}

/// The most messages in any ten seconds of the samples (taken every 100 ms), leaving out the
/// first second: a full bucket's burst (half a second of the rate) goes at once, and a window
/// that starts with it and ends late by a sampling delay would measure the test, not Herald.
fn busiest_ten_seconds(samples: &[usize]) -> usize {
    samples
        .get(10..)
        .unwrap_or_default()
        .windows(101)
        .map(|w| w[100] - w[0])
        .max()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_share_one_rate_per_sender() {
    let Some(db) = herald_store::testing::postgres().await else {
        return;
    };
    let one = aggregate_rate(&db.url, 1, 13).await;
    let Some(db3) = herald_store::testing::postgres().await else {
        return;
    };
    let three = aggregate_rate(&db3.url, 3, 13).await;
    let limit = (RATE * 10.0 * 1.05).ceil() as usize;
    let (one, three) = (busiest_ten_seconds(&one), busiest_ten_seconds(&three));
    eprintln!("busiest ten seconds: one node {one}, three nodes {three} (limit {limit})");
    assert!(one <= limit, "one node sent {one} in ten seconds");
    assert!(three <= limit, "three nodes sent {three} in ten seconds");
    // And the rate is used, not starved: within 10% of it either way.
    let floor = (RATE * 10.0 * 0.9) as usize;
    assert!(one >= floor, "one node sent only {one} in ten seconds");
    assert!(
        three >= floor,
        "three nodes sent only {three} in ten seconds"
    );
}
