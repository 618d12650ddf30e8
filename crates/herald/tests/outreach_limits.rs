//! `[outreaches]` of `herald.toml` reaches a real `herald serve` and `herald outreach create`:
//! the column cap and the per-caller stream cap, as configured.

use reqwest::StatusCode;
use serde_json::{Value, json};
use std::path::Path;

mod common;

use common::{herald, serve};

async fn post(http: &reqwest::Client, base: &str, token: &str, path: &str, body: Value) -> Value {
    let res = http
        .post(format!("{base}/api/v1{path}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED, "POST {path}");
    res.json().await.unwrap()
}

async fn configured_caps_hold(dir: &Path, db: &str) {
    std::fs::write(
        dir.join("herald.toml"),
        "[outreaches]\nmax_columns = 4\nevent_streams_per_caller = 1\n",
    )
    .unwrap();
    let token = common::admin_token(dir, db);

    let (child, base) = serve(dir, db);
    let http = reqwest::Client::new();
    let inbox = post(&http, &base, &token, "/inboxes", json!({"name": "Care"})).await;
    let sender = post(
        &http,
        &base,
        &token,
        "/senders",
        json!({"channel": "sms", "address": "+14155550100", "inbox_id": inbox["id"]}),
    )
    .await;
    let answer = post(
        &http,
        &base,
        &token,
        "/answers",
        json!({"name": "Delay", "variants": [{"language": "en", "body": "Hi {{ first_name }}"}]}),
    )
    .await;
    let campaign = post(
        &http,
        &base,
        &token,
        "/campaigns",
        json!({"name": "Late", "channel": "sms", "language": "en", "sender_id": sender["id"],
               "answer_id": answer["id"],
               "schedule": {"timezone": "UTC", "days": {"mon": ["00:00-24:00"]}}}),
    )
    .await;
    let campaign = campaign["id"].as_str().unwrap().to_string();
    let upload = |csv: &'static str| {
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(csv.as_bytes().to_vec()).file_name("list.csv"),
        );
        http.post(format!("{base}/api/v1/campaigns/{campaign}/outreaches"))
            .bearer_auth(&token)
            .multipart(form)
            .send()
    };

    let res = upload("phone,first_name,a,b,c\n+14155552671,Ann,,,\n")
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let problem: Value = res.json().await.unwrap();
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("the header row has more than 4 columns"),
        "{problem}"
    );
    let res = upload("phone,first_name,a,b\n+14155552671,Ann,,\n")
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let outreach: Value = res.json().await.unwrap();
    let events = format!(
        "{base}/api/v1/outreaches/{}/events",
        outreach["id"].as_str().unwrap()
    );

    // One stream per caller, as configured; the second is refused.
    let first = http.get(&events).bearer_auth(&token).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let second = http.get(&events).bearer_auth(&token).send().await.unwrap();
    assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS);

    // The command line applies the same caps.
    std::fs::write(
        dir.join("wide.csv"),
        "phone,first_name,a,b,c\n+14155552672,Ben,,,\n",
    )
    .unwrap();
    let out = herald(dir, db)
        .args([
            "outreach",
            "create",
            "--campaign",
            &campaign,
            "--csv",
            "wide.csv",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("more than 4 columns"), "{err}");

    // SIGTERM with a stream open still stops Herald promptly.
    child.stop();
    drop(first);
}

#[tokio::test]
async fn sqlite() {
    let dir = tempfile::tempdir().unwrap();
    configured_caps_hold(dir.path(), "sqlite://herald.db").await;
}

#[tokio::test]
async fn postgres() {
    let Some(db) = herald_store::testing::postgres().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    configured_caps_hold(dir.path(), &db.url).await;
}
