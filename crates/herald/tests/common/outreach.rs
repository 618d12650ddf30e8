//! Driving a running `herald serve` over its API from a test: a client, a launched outreach,
//! and waiting for a condition.

use super::herald;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

pub struct Api {
    pub http: reqwest::Client,
    pub token: String,
}

impl Api {
    pub async fn post(&self, base: &str, path: &str, body: Value) -> Value {
        let res = self
            .http
            .post(format!("{base}/api/v1/{path}"))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = res.status();
        let body: Value = res.json().await.unwrap();
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }

    pub async fn get(&self, base: &str, path: &str) -> Value {
        self.http
            .get(format!("{base}/api/v1/{path}"))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn all_recipients(&self, base: &str, outreach: &str) -> Vec<Value> {
        let mut all = Vec::new();
        let mut after = 0i64;
        loop {
            let page = self
                .get(
                    base,
                    &format!("outreaches/{outreach}/recipients?after={after}&limit=500"),
                )
                .await;
            let items = page["items"].as_array().expect("items").clone();
            if items.is_empty() {
                break;
            }
            after = items.last().unwrap()["id"].as_i64().unwrap();
            all.extend(items);
        }
        all
    }
}

/// Sets up a campaign on `channel` whose sender uses `provider`, uploads `csv` and returns the
/// outreach id.
#[allow(clippy::too_many_arguments)] // one call per channel; a struct would only rename them
pub async fn launch(
    dir: &Path,
    db: &str,
    base: &str,
    api: &Api,
    channel: &str,
    from: &str,
    provider: &str,
    csv: &str,
) -> String {
    let inbox = api.post(base, "inboxes", json!({"name": "Care"})).await;
    let sender = api
        .post(
            base,
            "senders",
            json!({"channel": channel, "address": from, "inbox_id": inbox["id"], "provider": provider}),
        )
        .await;
    let subject = (channel == "email").then_some("Your order");
    let answer = api
        .post(
            base,
            "answers",
            json!({"name": "Late", "variants": [{"language": "en", "subject": subject, "body": "Hi {{ name }}, your order is late."}]}),
        )
        .await;
    let days: BTreeMap<&str, Vec<&str>> = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        .into_iter()
        .map(|d| (d, vec!["00:00-24:00"]))
        .collect();
    let campaign = api
        .post(
            base,
            "campaigns",
            json!({"name": "Late orders", "channel": channel, "sender_id": sender["id"], "language": "en",
                   "answer_id": answer["id"], "quiet_hours": false,
                   "schedule": {"timezone": "UTC", "days": days}}),
        )
        .await;
    std::fs::write(dir.join("list.csv"), csv).unwrap();
    let out = herald(dir, db)
        .args(["outreach", "create", "--campaign"])
        .arg(campaign["id"].as_str().unwrap())
        .args(["--csv", "list.csv"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout.split_whitespace().nth(1).unwrap().to_string()
}

/// Waits until `done()` or panics after `limit`.
pub async fn wait_until(limit: Duration, what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
