//! A large import on SQLite does not block the service (#15, F4), end to end: a real
//! `herald serve` on a SQLite file takes an upload of many rows through the HTTP API while the
//! test makes API writes in a loop; each must succeed within a second. Then a `herald serve` is
//! killed with SIGKILL in the middle of another import and started again: the half-written
//! rows must be gone and the service must work.
//!
//! `HERALD_IMPORT_ROWS` sets the size of the list (default 1,000,000 rows: about 13 s of import
//! on a loaded two-core machine).

use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};

mod common;

use common::outreach::{Api, wait_until};
use common::serve;

/// The longest an API write may take while the import runs.
const WRITE_LIMIT: Duration = Duration::from_secs(1);

fn rows() -> usize {
    std::env::var("HERALD_IMPORT_ROWS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(1_000_000)
}

/// A list of `n` distinct San Francisco numbers with a name each.
fn write_csv(path: &Path, n: usize) {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(out, "phone,name").unwrap();
    for i in 0..n {
        writeln!(out, "+1415{:07},Customer {i}", 2_000_000 + i).unwrap();
    }
    out.flush().unwrap();
}

/// A campaign on SMS ready for a list, and another sender of the inbox (which no outreach
/// uses): their ids.
async fn campaign(api: &Api, base: &str) -> (String, String) {
    let inbox = api.post(base, "inboxes", json!({"name": "Care"})).await;
    let other = api
        .post(
            base,
            "senders",
            json!({"channel": "sms", "address": "+14155550199", "inbox_id": inbox["id"]}),
        )
        .await;
    let sender = api
        .post(
            base,
            "senders",
            json!({"channel": "sms", "address": "+14155550100", "inbox_id": inbox["id"]}),
        )
        .await;
    let answer = api
        .post(
            base,
            "answers",
            json!({"name": "Late", "variants": [{"language": "en", "body": "Hi {{ name }}"}]}),
        )
        .await;
    let campaign = api
        .post(
            base,
            "campaigns",
            json!({"name": "Late orders", "channel": "sms", "sender_id": sender["id"],
                   "language": "en", "answer_id": answer["id"],
                   "schedule": {"timezone": "UTC", "days": {"mon": ["00:00-24:00"]}}}),
        )
        .await;
    let id = |v: &Value| v["id"].as_str().unwrap().to_string();
    (id(&campaign), id(&other))
}

/// Uploads the list at `csv` as an outreach of `campaign`: the response's status and body.
async fn upload(api: &Api, base: &str, campaign: &str, csv: &Path) -> (u16, Value) {
    try_upload(api, base, campaign, csv)
        .await
        .expect("the upload's response")
}

/// [`upload`], or the error of a request that got no response (its server was killed).
async fn try_upload(
    api: &Api,
    base: &str,
    campaign: &str,
    csv: &Path,
) -> Result<(u16, Value), reqwest::Error> {
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(std::fs::read(csv).unwrap()).file_name("list.csv"),
    );
    let res = api
        .http
        .post(format!("{base}/api/v1/campaigns/{campaign}/outreaches"))
        .bearer_auth(&api.token)
        .multipart(form)
        .timeout(Duration::from_secs(1800))
        .send()
        .await?;
    let status = res.status().as_u16();
    Ok((status, res.json().await.unwrap_or(Value::Null)))
}

/// The `i`th API write of the loop: an inbox, an answer or an opt-out for `sender`, in turn.
///
/// The opt-outs are for a sender no outreach uses: one for the sender of a live outreach also
/// skips the address among that outreach's pending recipients, a walk of all of them (about
/// 1.7 s for 5,000,000 on a loaded two-core machine, once the import has committed), which is
/// the cost of that outreach's size, not of an import.
async fn one_write(api: &Api, base: &str, sender: &str, i: usize) -> Result<(), String> {
    let (path, body) = match i % 3 {
        0 => ("inboxes", json!({"name": format!("Inbox {i}")})),
        1 => (
            "answers",
            json!({"name": format!("Answer {i}"), "variants": [{"language": "en", "body": "Hello"}]}),
        ),
        _ => (
            "suppressions",
            json!({"address": format!("+1628{:07}", 2_000_000 + i), "reason": "STOP",
                   "sender_id": sender}),
        ),
    };
    let res = api
        .http
        .post(format!("{base}/api/v1/{path}"))
        .bearer_auth(&api.token)
        .json(&body)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .map_err(|e| format!("{path}: {e}"))?;
    let status = res.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!(
            "{path}: {status} {}",
            res.text().await.unwrap_or_default()
        ))
    }
}

/// A count read straight from the database file.
async fn count(db: &sqlx::SqlitePool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(db).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn api_writes_stay_fast_during_a_large_import_and_a_killed_one_leaves_nothing() {
    let n = rows();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let db = format!("sqlite://{}", dir.join("herald.db").display());
    let api = Api {
        http: reqwest::Client::new(),
        token: common::admin_token(dir, &db),
    };
    let (herald, base) = serve(dir, &db);
    let (campaign, other_sender) = campaign(&api, &base).await;
    let csv = dir.join("list.csv");
    write_csv(&csv, n);
    let file = herald_store::SqliteStore::connect(&db).await.unwrap();
    let raw = file.pool().clone();

    // The import, and API writes in a loop while it runs.
    let started = Instant::now();
    let import = tokio::spawn({
        let (api, base, campaign, csv) = (
            Api {
                http: api.http.clone(),
                token: api.token.clone(),
            },
            base.clone(),
            campaign.clone(),
            csv.clone(),
        );
        async move { upload(&api, &base, &campaign, &csv).await }
    });
    let (mut writes, mut during_import, mut longest) = (0, 0, Duration::ZERO);
    while !import.is_finished() {
        let importing = count(&raw, "SELECT count(*) FROM outreach_imports").await > 0;
        let t = Instant::now();
        if let Err(e) = one_write(&api, &base, &other_sender, writes).await {
            panic!("API write {writes} failed during the import: {e}");
        }
        let took = t.elapsed();
        assert!(
            took < WRITE_LIMIT,
            "API write {writes} took {took:?} during the import, {:?} after its start \
             (rows were {}being written when it began)",
            t.duration_since(started),
            if importing { "" } else { "not " }
        );
        longest = longest.max(took);
        writes += 1;
        during_import += usize::from(importing);
    }
    let (status, outreach) = import.await.unwrap();
    let import_time = started.elapsed();
    assert_eq!(status, 201, "{outreach}");
    assert_eq!(outreach["summary"]["accepted"], json!(n), "{outreach}");
    eprintln!(
        "imported {n} rows in {import_time:?}; {writes} API writes meanwhile \
         ({during_import} while rows were being written), the longest {longest:?}"
    );
    // The writes really overlapped the writing of rows, not only the upload.
    assert!(
        during_import >= 10,
        "only {during_import} writes while the rows were written"
    );
    assert_eq!(
        count(&raw, "SELECT count(*) FROM recipients").await,
        n as i64
    );

    // Another import of the same list, killed midway.
    let import = tokio::spawn({
        let (api, base, campaign, csv) = (
            Api {
                http: api.http.clone(),
                token: api.token.clone(),
            },
            base.clone(),
            campaign.clone(),
            csv.clone(),
        );
        async move { try_upload(&api, &base, &campaign, &csv).await }
    });
    wait_until(
        Duration::from_secs(600),
        "the second import's rows",
        async || count(&raw, "SELECT count(*) FROM recipients").await > (n + n / 10) as i64,
    )
    .await;
    herald.kill9();
    assert!(import.await.unwrap().is_err(), "the killed import answered");
    let left = count(&raw, "SELECT count(*) FROM recipients").await;
    assert!(
        left > n as i64 && left < 2 * n as i64,
        "{left} recipients after the kill: the import was not midway"
    );
    assert_eq!(
        count(&raw, "SELECT count(*) FROM outreach_imports").await,
        1
    );

    // Started again: the half-written import is gone before it serves, the first is whole.
    let (herald, base) = serve(dir, &db);
    assert_eq!(
        count(&raw, "SELECT count(*) FROM recipients").await,
        n as i64
    );
    assert_eq!(
        count(&raw, "SELECT count(*) FROM outreach_imports").await,
        0
    );
    assert_eq!(count(&raw, "SELECT count(*) FROM import_errors").await, 0);
    let listing = api
        .get(&base, &format!("campaigns/{campaign}/outreaches"))
        .await;
    let items = listing["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{listing}");
    assert_eq!(items[0]["id"], outreach["id"]);
    assert_eq!(items[0]["progress"]["total"], json!(n));
    // And it works: a write, and a small import.
    one_write(&api, &base, &other_sender, 0)
        .await
        .expect("a write after the restart");
    let small = dir.join("small.csv");
    write_csv(&small, 10);
    let (status, body) = upload(&api, &base, &campaign, &small).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        count(&raw, "SELECT count(*) FROM recipients").await,
        n as i64 + 10
    );
    raw.close().await;
    herald.stop();
}
