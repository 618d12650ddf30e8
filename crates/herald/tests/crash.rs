//! Crash safety, end to end: a real `herald serve` sending a 10,000-recipient outreach is killed
//! with SIGKILL mid-send and started again. Every recipient must end terminal; no SMS may reach
//! a number twice (at-most-once), and every email re-sent after the crash must carry the
//! `Message-ID` of its first try (at-least-once).

use herald_testkit::{FakeSmtp, FakeTwilio};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

const RECIPIENTS: usize = 10_000;

mod common;

use common::outreach::{Api, launch, wait_until};
use common::serve;

fn token(dir: &Path, db: &str) -> String {
    common::admin_token(dir, db)
}

/// Sends in flight at once, as `config` sets them.
const CONCURRENCY: usize = 8;
/// Recipients claimed at once, as `config` sets them.
const BATCH: usize = 100;

fn config(dir: &Path, channels: &str) {
    std::fs::write(
        dir.join("herald.toml"),
        format!(
            "{channels}\n[dispatch]\nlease_secs = 2\nbatch_size = {BATCH}\nconcurrency = {CONCURRENCY}\n\
             poll_ms = 50\nshutdown_grace_secs = 1\n[dispatch.rates]\nsms = inf\nemail = inf\n"
        ),
    )
    .unwrap();
}

/// A `herald serve` in `dir` on `db` sending an SMS outreach to `n` numbers (from `first`)
/// through `twilio`: the API client, the instance, its base URL and the outreach id.
async fn sms_outreach(
    dir: &Path,
    db: &str,
    twilio: &FakeTwilio,
    n: usize,
    first: usize,
) -> (Api, common::Herald, String, String) {
    config(dir, &twilio.config_toml());
    let api = Api {
        http: reqwest::Client::new(),
        token: token(dir, db),
    };
    let (child, base) = serve(dir, db);
    let mut csv = String::from("phone,name\n");
    for i in 0..n {
        csv.push_str(&format!("+1415{:07},Customer {i}\n", first + i));
    }
    let outreach = launch(dir, db, &base, &api, "sms", "+14155550100", "twilio", &csv).await;
    (api, child, base, outreach)
}

async fn sms_crash(db: &str) {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let twilio = FakeTwilio::builder()
        .latency(Duration::from_millis(2))
        .start();
    let (api, child, _, outreach) = sms_outreach(dir, db, &twilio, RECIPIENTS, 2_000_000).await;

    // Kill it somewhere in the middle.
    wait_until(Duration::from_secs(120), "the first sends", async || {
        twilio.accepted().len() >= RECIPIENTS / 5
    })
    .await;
    child.kill9();
    let at_kill = twilio.accepted().len();
    assert!(
        at_kill < RECIPIENTS,
        "the crash came too late to test anything"
    );

    let (child, base) = serve(dir, db);
    wait_until(
        Duration::from_secs(300),
        "the outreach to complete",
        async || api.get(&base, &format!("outreaches/{outreach}")).await["status"] == "completed",
    )
    .await;

    let recipients = api.all_recipients(&base, &outreach).await;
    assert_eq!(recipients.len(), RECIPIENTS, "no recipient vanished");
    let states: BTreeMap<String, usize> = recipients.iter().fold(BTreeMap::new(), |mut m, r| {
        *m.entry(r["state"].as_str().unwrap().to_string())
            .or_default() += 1;
        m
    });
    assert!(
        states.keys().all(|s| s == "sent" || s == "unknown"),
        "every recipient sent, or unknown if the crash hit its send: {states:?}"
    );
    let by_to = twilio.accepted_count_by_to();
    let twice: Vec<_> = by_to.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "numbers texted twice: {twice:?}");
    // Everything marked sent reached Twilio. Only the sends in flight at the kill are
    // uncertain: the journal gave the rest of their batch back to the queue (sent after the
    // restart) and wrote the outcomes of the sends that had finished.
    for r in &recipients {
        if r["state"] == "sent" {
            assert!(by_to.contains_key(r["address"].as_str().unwrap()), "{r}");
        }
    }
    let unknown: Vec<&Value> = recipients
        .iter()
        .filter(|r| r["state"] == "unknown")
        .collect();
    eprintln!("uncertain after the kill: {}", unknown.len());
    assert!(
        unknown.len() <= CONCURRENCY,
        "only the sends in flight at the crash are uncertain: {} (concurrency {CONCURRENCY})",
        unknown.len()
    );
    let progress = api.get(&base, &format!("outreaches/{outreach}")).await["progress"].clone();
    assert_eq!(progress["pending"], 0, "{progress}");
    assert_eq!(progress["total"], RECIPIENTS, "{progress}");
    child.stop();
}

async fn email_crash(db: &str) {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let smtp = FakeSmtp::start();
    config(dir, &smtp.config_toml());
    let api = Api {
        http: reqwest::Client::new(),
        token: token(dir, db),
    };
    let (child, base) = serve(dir, db);
    let mut csv = String::from("email,name\n");
    for i in 0..RECIPIENTS {
        csv.push_str(&format!("customer{i}@example.com,Customer {i}\n"));
    }
    let outreach = launch(
        dir,
        db,
        &base,
        &api,
        "email",
        "care@shop.example",
        "smtp",
        &csv,
    )
    .await;
    wait_until(Duration::from_secs(120), "the first emails", async || {
        smtp.messages().len() >= RECIPIENTS / 5
    })
    .await;
    child.kill9();
    assert!(
        smtp.messages().len() < RECIPIENTS,
        "the crash came too late"
    );

    let (child, base) = serve(dir, db);
    wait_until(
        Duration::from_secs(300),
        "the outreach to complete",
        async || api.get(&base, &format!("outreaches/{outreach}")).await["status"] == "completed",
    )
    .await;
    let recipients = api.all_recipients(&base, &outreach).await;
    assert_eq!(recipients.len(), RECIPIENTS);
    assert!(
        recipients.iter().all(|r| r["state"] == "sent"),
        "at-least-once: every email ends sent"
    );
    // Every address got mail, and all of an address's copies share one Message-ID.
    let mut ids: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for m in smtp.messages() {
        let id = m.header("Message-ID").expect("Message-ID");
        for to in m.recipients() {
            ids.entry(to).or_default().insert(id.clone());
        }
    }
    assert_eq!(ids.len(), RECIPIENTS, "every customer got the email");
    let differing: Vec<_> = ids.iter().filter(|(_, set)| set.len() > 1).collect();
    assert!(
        differing.is_empty(),
        "re-sends with a new Message-ID: {differing:?}"
    );
    let unsubscribe = smtp.messages()[0]
        .header("List-Unsubscribe")
        .expect("List-Unsubscribe");
    assert!(unsubscribe.contains("/unsubscribe/"), "{unsubscribe}");
    assert_eq!(
        smtp.messages()[0]
            .header("List-Unsubscribe-Post")
            .as_deref(),
        Some("List-Unsubscribe=One-Click")
    );
    child.stop();
}

/// SIGTERM while a slow provider holds a group of sends: Herald begins no further send, waits
/// for those in flight no longer than `shutdown_grace_secs`, and exits; the next start sends
/// the rest, and texts no number twice.
async fn sms_sigterm(db: &str) {
    const N: usize = 40;
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let twilio = FakeTwilio::builder()
        .latency(Duration::from_secs(3))
        .start();
    let (api, child, _, outreach) = sms_outreach(dir, db, &twilio, N, 3_000_000).await;
    wait_until(
        Duration::from_secs(60),
        "the first group of sends",
        async || twilio.accepted().len() >= CONCURRENCY,
    )
    .await;
    let signal = Instant::now();
    child.stop(); // SIGTERM, and a clean exit
    let took = signal.elapsed();
    assert!(
        took < Duration::from_millis(3500),
        "exit took {took:?}: the grace is 1 s and the provider answers after 3 s"
    );
    assert_eq!(
        twilio.accepted().len(),
        CONCURRENCY,
        "no send began after SIGTERM"
    );

    twilio.set_latency(Duration::ZERO);
    let (child, base) = serve(dir, db);
    wait_until(
        Duration::from_secs(120),
        "the outreach to complete",
        async || api.get(&base, &format!("outreaches/{outreach}")).await["status"] == "completed",
    )
    .await;
    let recipients = api.all_recipients(&base, &outreach).await;
    assert_eq!(recipients.len(), N);
    let by_to = twilio.accepted_count_by_to();
    assert!(by_to.values().all(|n| *n == 1), "a number texted twice");
    let state = |r: &Value| r["state"].as_str().unwrap().to_string();
    let texted = |r: &Value| by_to.contains_key(r["address"].as_str().unwrap());
    let unknown: Vec<&Value> = recipients
        .iter()
        .filter(|r| state(r) == "unknown")
        .collect();
    let sent: Vec<&Value> = recipients.iter().filter(|r| state(r) == "sent").collect();
    assert_eq!(sent.len() + unknown.len(), N, "every recipient is terminal");
    assert!(
        sent.iter().all(|r| texted(r)),
        "a recipient marked sent was not texted"
    );
    // Only the group cut off by the grace is uncertain: a quarter of the claimed 40, of which
    // the eight in flight reached Twilio (Herald could not know) and two were never sent.
    assert!(unknown.len() <= 10, "{} unknown", unknown.len());
    let reached = unknown.iter().filter(|r| texted(r)).count();
    assert_eq!(
        reached, CONCURRENCY,
        "the sends in flight at SIGTERM are among the uncertain"
    );
    child.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_sms_sigterm_waits_only_its_grace_and_loses_no_recipient() {
    sms_sigterm("sqlite://herald.db").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_sms_killed_mid_outreach_sends_no_sms_twice() {
    sms_crash("sqlite://herald.db").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_email_killed_mid_outreach_resends_with_the_same_message_id() {
    email_crash("sqlite://herald.db").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sms_killed_mid_outreach_sends_no_sms_twice() {
    let Some(db) = herald_store::testing::postgres().await else {
        return;
    };
    sms_crash(&db.url).await;
}
