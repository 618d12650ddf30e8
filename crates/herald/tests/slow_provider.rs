//! A slow provider does not make a live node look dead: two `herald serve` processes on one
//! PostgreSQL send through a fake Twilio that takes a second a request, with a lease (4 s) far
//! shorter than a batch's sends take (40 recipients, 4 at a time: 10 s). The node sending a
//! batch renews its lease while the sends run, so the other node, which looks for expired
//! leases on every tick, never takes a recipient over: none ends `unknown`, none is texted
//! twice, all are sent, and the provider's id is on each.

use herald_testkit::FakeTwilio;
use std::collections::BTreeMap;
use std::time::Duration;

mod common;

use common::outreach::{Api, launch, wait_until};
use common::serve;

const RECIPIENTS: usize = 160;
const LEASE_SECS: u64 = 4;
const BATCH: usize = 40;
const CONCURRENCY: usize = 4;
const LATENCY: Duration = Duration::from_secs(1);

async fn slow_batches_are_not_taken_over(db: &str) {
    // The premise: one batch's sends take longer than the lease, several times over.
    let batch_takes = LATENCY * (BATCH / CONCURRENCY) as u32;
    assert!(batch_takes >= Duration::from_secs(LEASE_SECS * 2));
    let dir = tempfile::tempdir().unwrap();
    let twilio = FakeTwilio::builder().latency(LATENCY).start();
    let dirs: Vec<_> = (0..2)
        .map(|i| {
            let d = dir.path().join(format!("node{i}"));
            std::fs::create_dir(&d).unwrap();
            std::fs::write(
                d.join("herald.toml"),
                format!(
                    "{}\n[dispatch]\nlease_secs = {LEASE_SECS}\nbatch_size = {BATCH}\n\
                     concurrency = {CONCURRENCY}\npoll_ms = 50\n[dispatch.rates]\nsms = inf\n",
                    twilio.config_toml()
                ),
            )
            .unwrap();
            d
        })
        .collect();
    let api = Api {
        http: reqwest::Client::new(),
        token: common::admin_token(&dirs[0], db),
    };
    let nodes: Vec<_> = dirs.iter().map(|d| serve(d, db)).collect();
    let base = nodes[0].1.clone();
    let mut csv = String::from("phone,name\n");
    for i in 0..RECIPIENTS {
        csv.push_str(&format!("+1415{:07},Customer {i}\n", 6_000_000 + i));
    }
    let outreach = launch(
        &dirs[0],
        db,
        &base,
        &api,
        "sms",
        "+14155550100",
        "twilio",
        &csv,
    )
    .await;
    wait_until(
        Duration::from_secs(240),
        "the outreach to complete",
        async || api.get(&base, &format!("outreaches/{outreach}")).await["status"] == "completed",
    )
    .await;

    let recipients = api.all_recipients(&base, &outreach).await;
    assert_eq!(recipients.len(), RECIPIENTS);
    let states: BTreeMap<&str, usize> = recipients.iter().fold(BTreeMap::new(), |mut m, r| {
        *m.entry(r["state"].as_str().unwrap()).or_default() += 1;
        m
    });
    assert_eq!(
        states,
        BTreeMap::from([("sent", RECIPIENTS)]),
        "a live node's recipients were taken over (unknown) or lost"
    );
    let by_to = twilio.accepted_count_by_to();
    assert_eq!(by_to.len(), RECIPIENTS, "every number was texted");
    assert!(by_to.values().all(|n| *n == 1), "a number texted twice");
    let sids: BTreeMap<String, String> = twilio
        .accepted()
        .into_iter()
        .map(|m| (m.to, m.sid))
        .collect();
    for r in &recipients {
        assert_eq!(
            r["provider_message_id"].as_str(),
            sids.get(r["address"].as_str().unwrap()).map(String::as_str),
            "the owner's result was recorded: {r}"
        );
    }
    // Both nodes sent (the other node was there to take over, had a lease lapsed), and the
    // leases were renewed and none expired.
    let mut renewed = 0.0;
    for (_, node_base) in &nodes {
        let metrics = api
            .http
            .get(format!("{node_base}/metrics"))
            .bearer_auth(&api.token)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let value = |name: &str| -> f64 {
            metrics
                .lines()
                .filter(|l| l.starts_with(name))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum()
        };
        assert_eq!(
            value("herald_lease_recoveries_total"),
            0.0,
            "a node recovered a lease: {metrics}"
        );
        renewed += value("herald_lease_renewals_total");
    }
    assert!(renewed > 0.0, "no lease was renewed");
    for (herald, _) in nodes {
        herald.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_nodes_never_take_over_a_live_slow_batch() {
    let Some(db) = herald_store::testing::postgres().await else {
        return;
    };
    slow_batches_are_not_taken_over(&db.url).await;
}
