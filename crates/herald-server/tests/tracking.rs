//! Following a launched outreach through the HTTP API: stop, retry-failed, the recipient list
//! and the live progress stream, against SQLite and PostgreSQL. Sending is driven through the
//! store directly (no dispatcher runs in these tests).

#![allow(clippy::disallowed_methods)] // tests set up data relative to the real time

mod common;

use common::{App, has_error};
use herald_store::{DeliveryResult, Outcome, Store};
use jiff::{SignedDuration, Timestamp};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;
use uuid::Uuid;

herald_store::on_both_backends!(
    with crate::common::start:
    stopping_skips_the_recipients_left,
    retry_failed_requeues_the_failed_recipients,
    uncertain_recipients_are_requeued_only_when_a_duplicate_is_accepted,
    metrics_are_for_admins_and_count_uploads_webhooks_and_due_work,
    recipients_export_as_csv_with_what_happened_to_each,
    recipients_are_listed_by_state_a_page_at_a_time,
    events_follow_the_progress_until_the_outreach_is_final,
    events_of_a_final_outreach_end_after_one,
    event_streams_close_when_the_server_shuts_down,
);

/// An SMS campaign and an outreach of it to `n` recipients (`+1415555260i`, first names `R0`…).
/// `suppressed` recipients (by index) are on the opt-out list.
async fn outreach(app: &App, n: usize, suppressed: &[usize]) -> (Uuid, Value) {
    let campaign = app.sms_campaign().await;
    let mut csv = String::from("phone,first_name\n");
    for i in 0..n {
        let phone = format!("+1415555{}", 2600 + i);
        if suppressed.contains(&i) {
            app.db
                .store
                .add_suppression(&phone, None, "asked by phone")
                .await
                .unwrap();
        }
        csv.push_str(&format!("{phone},R{i}\n"));
    }
    let (status, o) = app.upload(&campaign, &csv, &[]).await;
    assert_eq!(status, StatusCode::CREATED, "{o}");
    assert_eq!(o["summary"]["accepted"], n, "{o}");
    (Uuid::parse_str(o["id"].as_str().unwrap()).unwrap(), o)
}

fn store(app: &App) -> &dyn Store {
    &*app.db.store
}

/// Claims up to `outcomes.len()` due recipients (starting the outreach if it is scheduled) and
/// records one outcome for each, in claim order. The ids claimed.
async fn send(app: &App, id: Uuid, outcomes: Vec<Outcome>) -> Vec<i64> {
    let now = Timestamp::now();
    store(app).start_outreach(id, now).await.unwrap();
    let claimed = store(app)
        .claim_due(
            id,
            now,
            now + SignedDuration::from_secs(60),
            outcomes.len() as u32,
        )
        .await
        .unwrap();
    assert_eq!(claimed.len(), outcomes.len(), "not enough due recipients");
    let results: Vec<DeliveryResult> = claimed
        .iter()
        .zip(outcomes)
        .map(|(c, outcome)| DeliveryResult {
            recipient_id: c.id,
            outcome,
        })
        .collect();
    store(app).record_results(now, &results).await.unwrap();
    claimed.iter().map(|c| c.id).collect()
}

fn sent() -> Outcome {
    Outcome::Sent {
        provider_message_id: Some("SM1".into()),
    }
}

fn failed() -> Outcome {
    Outcome::Failed {
        code: Some("30003".into()),
        message: "unreachable handset".into(),
    }
}

async fn get(app: &App, path: &str) -> Value {
    let (s, v) = app.admin(Method::GET, path, None).await;
    assert_eq!(s, StatusCode::OK, "GET {path}: {v}");
    v
}

/// Every recipient of the outreach in the state, walking all pages.
async fn recipients(app: &App, id: Uuid, state: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = get(
            app,
            &format!("/api/v1/outreaches/{id}/recipients?state={state}&limit=2&after={after}"),
        )
        .await;
        out.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_after"].as_i64() {
            Some(next) => after = next,
            None => return out,
        }
    }
}

async fn stopping_skips_the_recipients_left(app: App) {
    let (id, _) = outreach(&app, 4, &[]).await;
    send(&app, id, vec![sent()]).await;
    let stop = format!("/api/v1/outreaches/{id}/stop");

    let (s, v, _) = app.call(Some(&app.agent), Method::POST, &stop, None).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");

    let (s, stopped) = app.admin(Method::POST, &stop, None).await;
    assert_eq!(s, StatusCode::OK, "{stopped}");
    assert_eq!(stopped["status"], "stopped");
    assert!(stopped["finished_at"].is_string(), "{stopped}");
    assert_eq!(
        stopped["progress"],
        json!({"total": 4, "sent": 1, "delivered": 0, "failed": 0, "skipped": 3,
               "pending": 0, "replied": 0, "uncertain": 0})
    );
    assert_eq!(
        get(&app, &format!("/api/v1/outreaches/{id}")).await,
        stopped
    );

    let skipped = recipients(&app, id, "skipped").await;
    assert_eq!(skipped.len(), 3);
    assert!(
        skipped.iter().all(|r| r["skip_reason"] == "stopped"),
        "{skipped:?}"
    );
    assert!(recipients(&app, id, "pending").await.is_empty());
    assert_eq!(recipients(&app, id, "sent").await.len(), 1);

    // Final: a second stop and a retry are refused in the store's words.
    let (s, v, h) = app.call(Some(&app.admin), Method::POST, &stop, None).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(h["content-type"], "application/problem+json");
    assert_eq!(v["detail"], "the outreach is already stopped", "{v}");
    let (s, v) = app
        .admin(
            Method::POST,
            &format!("/api/v1/outreaches/{id}/retry-failed"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("stopped"), "{v}");

    // A scheduled outreach can be stopped before it starts.
    let (scheduled, _) = second_outreach(&app).await;
    let (s, v) = app
        .admin(
            Method::POST,
            &format!("/api/v1/outreaches/{scheduled}/stop"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["progress"]["skipped"], 2, "{v}");

    let unknown = Uuid::now_v7();
    let (s, v) = app
        .admin(
            Method::POST,
            &format!("/api/v1/outreaches/{unknown}/stop"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
}

/// A second, scheduled outreach of two recipients (its own campaign objects, other names).
async fn second_outreach(app: &App) -> (Uuid, Value) {
    let inbox = app
        .create("/api/v1/inboxes", json!({"name": "Other"}))
        .await;
    let sender = app
        .create(
            "/api/v1/senders",
            json!({"channel": "sms", "address": "+14155550199", "inbox_id": inbox["id"]}),
        )
        .await;
    let answer = app
        .create(
            "/api/v1/answers",
            json!({"name": "Other", "variants": [{"language": "en", "body": "Hello"}]}),
        )
        .await;
    let campaign = app
        .create(
            "/api/v1/campaigns",
            json!({"name": "Other", "channel": "sms", "language": "en", "sender_id": sender["id"],
                   "answer_id": answer["id"],
                   "schedule": {"timezone": "UTC", "days": {"mon": ["00:00-24:00"]}}}),
        )
        .await;
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(b"phone\n+14155552671\n+14155552672\n".to_vec())
            .file_name("two.csv"),
    );
    let res = app
        .http
        .post(format!(
            "{}/api/v1/campaigns/{}/outreaches",
            app.base,
            campaign["id"].as_str().unwrap()
        ))
        .bearer_auth(&app.admin)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let o: Value = res.json().await.unwrap();
    (Uuid::parse_str(o["id"].as_str().unwrap()).unwrap(), o)
}

async fn retry_failed_requeues_the_failed_recipients(app: App) {
    let (id, _) = outreach(&app, 3, &[]).await;
    let ids = send(&app, id, vec![failed(), sent(), failed()]).await;
    let failed_ids = vec![ids[0], ids[2]];
    let listed = recipients(&app, id, "failed").await;
    assert_eq!(
        listed
            .iter()
            .map(|r| r["id"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        failed_ids
    );
    assert_eq!(listed[0]["error_code"], "30003", "{listed:?}");
    assert_eq!(listed[0]["error_message"], "unreachable handset");
    assert_eq!(listed[0]["attempts"], 1);
    // Nothing is left to send: the outreach completes.
    assert!(
        store(&app)
            .complete_outreach(id, Timestamp::now())
            .await
            .unwrap()
    );
    assert_eq!(
        get(&app, &format!("/api/v1/outreaches/{id}")).await["status"],
        "completed"
    );

    let retry = format!("/api/v1/outreaches/{id}/retry-failed");
    let (s, v, _) = app.call(Some(&app.agent), Method::POST, &retry, None).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");

    let (s, v) = app.admin(Method::POST, &retry, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["requeued"], 2, "{v}");
    assert_eq!(v["outreach"]["status"], "in_progress", "{v}");
    assert_eq!(v["outreach"]["finished_at"], Value::Null, "{v}");
    assert_eq!(v["outreach"]["progress"]["pending"], 2, "{v}");
    assert_eq!(v["outreach"]["progress"]["failed"], 0, "{v}");
    assert_eq!(v["outreach"]["progress"]["sent"], 1, "{v}");
    assert_eq!(
        get(&app, &format!("/api/v1/outreaches/{id}")).await,
        v["outreach"]
    );
    let pending = recipients(&app, id, "pending").await;
    assert_eq!(
        pending
            .iter()
            .map(|r| r["id"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        failed_ids
    );
    assert!(pending.iter().all(|r| r["attempts"] == 0), "{pending:?}");
    assert!(recipients(&app, id, "failed").await.is_empty());

    // Nothing failed now: nothing to requeue, and that is not an error.
    let (s, v) = app.admin(Method::POST, &retry, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["requeued"], 0, "{v}");

    // The requeued recipients are claimed again; after a stop they cannot be retried.
    send(&app, id, vec![failed()]).await;
    let (s, v) = app
        .admin(Method::POST, &format!("/api/v1/outreaches/{id}/stop"), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = app.admin(Method::POST, &retry, None).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(!v["detail"].as_str().unwrap().is_empty(), "{v}");
    assert_eq!(recipients(&app, id, "failed").await.len(), 1);

    let (s, v) = app
        .admin(
            Method::POST,
            &format!("/api/v1/outreaches/{}/retry-failed", Uuid::now_v7()),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
}

async fn recipients_are_listed_by_state_a_page_at_a_time(app: App) {
    let (id, _) = outreach(&app, 7, &[4]).await;
    let base = format!("/api/v1/outreaches/{id}/recipients");

    // Every recipient once, in upload order, three at a time; agents may read.
    let mut seen = Vec::new();
    let mut path = format!("{base}?limit=3");
    let mut pages = 0;
    loop {
        let (s, page, _) = app.call(Some(&app.agent), Method::GET, &path, None).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        pages += 1;
        seen.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_after"].as_i64() {
            Some(after) => path = format!("{base}?limit=3&after={after}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let lines: Vec<u64> = seen.iter().map(|r| r["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, (2..=8).collect::<Vec<_>>());
    let ids: Vec<i64> = seen.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    let first = &seen[0];
    assert_eq!(first["address"], "+14155552600");
    assert_eq!(first["variables"]["first_name"], "R0", "{first}");
    assert_eq!(first["state"], "pending");
    assert_eq!(first["attempts"], 0);
    assert_eq!(seen[4]["state"], "skipped");
    assert_eq!(seen[4]["skip_reason"], "suppressed");

    // The default page holds them all; a page that ends exactly at the last has no next.
    let all = get(&app, &base).await;
    assert_eq!(all["items"].as_array().unwrap().len(), 7);
    assert_eq!(all["next_after"], Value::Null);
    let exact = get(&app, &format!("{base}?limit=7")).await;
    assert_eq!(exact["next_after"], Value::Null, "{exact}");

    // By state (names are case-insensitive).
    let skipped = get(&app, &format!("{base}?state=skipped")).await;
    assert_eq!(skipped["items"].as_array().unwrap().len(), 1);
    assert_eq!(skipped["items"][0]["address"], "+14155552604");
    let pending = get(&app, &format!("{base}?state=Pending&limit=5")).await;
    assert_eq!(pending["items"].as_array().unwrap().len(), 5);
    assert!(pending["next_after"].is_i64(), "{pending}");
    send(&app, id, vec![failed()]).await;
    assert_eq!(recipients(&app, id, "failed").await.len(), 1);
    assert_eq!(recipients(&app, id, "pending").await.len(), 5);
    assert_eq!(
        get(&app, &format!("{base}?state=delivered")).await["items"],
        json!([])
    );

    // Mistakes.
    let (s, v, h) = app
        .call(
            Some(&app.agent),
            Method::GET,
            &format!("{base}?state=bounced"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(h["content-type"], "application/problem+json");
    assert!(
        has_error(
            &v,
            "state",
            "`bounced` is not a delivery state; use one of pending, sending, sent"
        ),
        "{v}"
    );
    let (s, v) = app
        .admin(Method::GET, &format!("{base}?limit=0"), None)
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(has_error(&v, "limit", "between 1 and"), "{v}");
    let (s, v) = app
        .admin(Method::GET, &format!("{base}?after=-1"), None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(has_error(&v, "after", "must be 0"), "{v}");
    let (s, v) = app
        .admin(Method::GET, &format!("{base}?after=x"), None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, v) = app
        .admin(
            Method::GET,
            &format!("/api/v1/outreaches/{}/recipients", Uuid::now_v7()),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
}

/// A Server-Sent Events stream read from a live response.
struct Events {
    res: reqwest::Response,
    buf: Vec<u8>,
}

impl Events {
    async fn open(app: &App, id: Uuid) -> Events {
        let res = app
            .http
            .get(format!("{}/api/v1/outreaches/{id}/events", app.base))
            .bearer_auth(&app.agent)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["content-type"], "text/event-stream");
        Events {
            res,
            buf: Vec::new(),
        }
    }

    /// The next event's name and data; None once the server ended the stream. Comments
    /// (keep-alives) are skipped.
    async fn next(&mut self) -> Option<(String, Value)> {
        loop {
            if let Some(end) = self.buf.windows(2).position(|w| w == b"\n\n") {
                let frame = String::from_utf8(self.buf.drain(..end + 2).collect()).unwrap();
                let mut event = String::new();
                let mut data = String::new();
                for line in frame.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if event.is_empty() && data.is_empty() {
                    continue;
                }
                let data = serde_json::from_str(&data).unwrap_or(Value::String(data));
                return Some((event, data));
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.res.chunk())
                .await
                .expect("no event within 10 s")
                .expect("the stream broke")?;
            self.buf.extend_from_slice(&chunk);
        }
    }

    async fn progress(&mut self) -> Value {
        let (name, data) = self.next().await.expect("the stream ended early");
        assert_eq!(name, "progress", "{data}");
        data
    }
}

/// A server over the app's database whose event streams look every 20 ms.
async fn fast(app: &App) -> (App, herald_server::AppState) {
    let mut state = None;
    let fast = common::start_shared(app.db.clone(), |s| {
        s.events_interval = Duration::from_millis(20);
        state = Some(s.clone());
    })
    .await;
    (fast, state.unwrap())
}

async fn events_follow_the_progress_until_the_outreach_is_final(app: App) {
    let (id, _) = outreach(&app, 3, &[]).await;
    let (app, _) = fast(&app).await;

    let (s, v, h) = app
        .call(
            Some(&app.agent),
            Method::GET,
            &format!("/api/v1/outreaches/{}/events", Uuid::now_v7()),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    assert_eq!(h["content-type"], "application/problem+json");

    let mut events = Events::open(&app, id).await;
    let first = events.progress().await;
    assert_eq!(first["id"], id.to_string());
    assert_eq!(first["status"], "scheduled");
    assert_eq!(first["label"], "0/3");
    assert_eq!(
        first["progress"],
        json!({"total": 3, "sent": 0, "delivered": 0, "failed": 0, "skipped": 0,
               "pending": 3, "replied": 0, "uncertain": 0})
    );

    // Nothing changes for a while: no event (the next one is the change below).
    tokio::time::sleep(Duration::from_millis(150)).await;
    store(&app)
        .start_outreach(id, Timestamp::now())
        .await
        .unwrap();
    let started = events.progress().await;
    assert_eq!(started["status"], "in_progress", "{started}");
    assert_eq!(started["label"], "0/3");

    send(&app, id, vec![sent()]).await;
    // Claiming and recording may be seen as two changes; wait for the sent one.
    let mut last = events.progress().await;
    while last["label"] != "1/3" {
        assert_eq!(last["status"], "in_progress", "{last}");
        last = events.progress().await;
    }
    assert_eq!(last["progress"]["pending"], 2, "{last}");

    let (s, v) = app
        .admin(Method::POST, &format!("/api/v1/outreaches/{id}/stop"), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let stopped = events.progress().await;
    assert_eq!(stopped["status"], "stopped", "{stopped}");
    assert_eq!(stopped["label"], "1/3");
    assert_eq!(stopped["progress"]["skipped"], 2, "{stopped}");
    assert!(
        events.next().await.is_none(),
        "the stream goes on after the stop"
    );
}

async fn events_of_a_final_outreach_end_after_one(app: App) {
    let (id, _) = outreach(&app, 2, &[]).await;
    let (s, v) = app
        .admin(Method::POST, &format!("/api/v1/outreaches/{id}/stop"), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let mut events = Events::open(&app, id).await;
    let only = events.progress().await;
    assert_eq!(only["status"], "stopped");
    assert_eq!(only["label"], "0/2");
    assert!(events.next().await.is_none());
}

async fn event_streams_close_when_the_server_shuts_down(app: App) {
    let (id, _) = outreach(&app, 2, &[]).await;
    let (app, state) = fast(&app).await;
    let mut events = Events::open(&app, id).await;
    assert_eq!(events.progress().await["status"], "scheduled");
    state.close_event_streams();
    assert!(events.next().await.is_none());
    // A stream opened afterwards still says where the outreach is, then ends.
    let mut late = Events::open(&app, id).await;
    assert_eq!(late.progress().await["status"], "scheduled");
    assert!(late.next().await.is_none());
}

fn uncertain() -> Outcome {
    Outcome::Unknown {
        code: Some("lease_expired".into()),
        message: "Herald stopped while sending".into(),
    }
}

async fn uncertain_recipients_are_requeued_only_when_a_duplicate_is_accepted(app: App) {
    let (id, _) = outreach(&app, 3, &[]).await;
    let ids = send(&app, id, vec![uncertain(), sent(), uncertain()]).await;
    // Uncertain is its own figure: never counted as sent.
    let o = get(&app, &format!("/api/v1/outreaches/{id}")).await;
    assert_eq!(o["progress"]["uncertain"], 2, "{o}");
    assert_eq!(o["progress"]["sent"], 1, "{o}");
    assert!(
        store(&app)
            .complete_outreach(id, Timestamp::now())
            .await
            .unwrap()
    );

    let path = format!("/api/v1/outreaches/{id}/requeue-uncertain");
    // Without the confirmation: refused, with words that say why; nothing changes.
    let (s, v) = app.admin(Method::POST, &path, None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, v) = app
        .admin(Method::POST, &path, Some(json!({"may_send_twice": false})))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(has_error(&v, "may_send_twice", "second"), "{v}");
    let (s, v, _) = app
        .call(
            Some(&app.agent),
            Method::POST,
            &path,
            Some(json!({"may_send_twice": true})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(recipients(&app, id, "unknown").await.len(), 2);

    let (s, v) = app
        .admin(Method::POST, &path, Some(json!({"may_send_twice": true})))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["requeued"], 2, "{v}");
    assert_eq!(v["outreach"]["status"], "in_progress", "{v}");
    assert_eq!(v["outreach"]["progress"]["pending"], 2, "{v}");
    assert_eq!(v["outreach"]["progress"]["uncertain"], 0, "{v}");
    let pending: Vec<i64> = recipients(&app, id, "pending")
        .await
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(pending, vec![ids[0], ids[2]]);

    // After a stop: refused.
    send(&app, id, vec![uncertain()]).await;
    let (s, v) = app
        .admin(Method::POST, &format!("/api/v1/outreaches/{id}/stop"), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = app
        .admin(Method::POST, &path, Some(json!({"may_send_twice": true})))
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(recipients(&app, id, "unknown").await.len(), 1);
}

async fn metrics_are_for_admins_and_count_uploads_webhooks_and_due_work(app: App) {
    let (s, _, _) = app.call(None, Method::GET, "/metrics", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _, _) = app
        .call(Some(&app.agent), Method::GET, "/metrics", None)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    let (id, _) = outreach(&app, 3, &[]).await;
    // Twilio is not configured here: its webhooks answer 404, and are counted as such.
    for path in [
        "/webhooks/twilio/sms",
        "/webhooks/twilio/sms",
        "/webhooks/made-up",
    ] {
        app.http
            .post(format!("{}{path}", app.base))
            .form(&[("From", "+14155552600")])
            .send()
            .await
            .unwrap();
    }
    let text = |app: &App| {
        let req = app
            .http
            .get(format!("{}/metrics", app.base))
            .bearer_auth(&app.admin);
        async move {
            let res = req.send().await.unwrap();
            assert_eq!(res.status(), StatusCode::OK);
            assert!(
                res.headers()["content-type"]
                    .to_str()
                    .unwrap()
                    .starts_with("text/plain; version=0.0.4")
            );
            res.text().await.unwrap()
        }
    };
    let scraped = text(&app).await;
    assert!(
        scraped.contains("herald_import_rows_total 3\n"),
        "{scraped}"
    );
    assert!(
        scraped
            .contains("herald_webhook_requests_total{webhook=\"twilio/sms\",status=\"404\"} 2\n"),
        "{scraped}"
    );
    // A path that is no webhook is not counted: callers cannot invent labels.
    assert!(!scraped.contains("made-up"), "{scraped}");
    assert_eq!(
        scraped.matches("herald_webhook_requests_total{").count(),
        1,
        "{scraped}"
    );
    // Scheduled work is not due yet; once the outreach is in progress its recipients are.
    assert!(scraped.contains("herald_due_recipients 0\n"), "{scraped}");
    store(&app)
        .start_outreach(id, Timestamp::now())
        .await
        .unwrap();
    assert!(text(&app).await.contains("herald_due_recipients 3\n"));
}

/// The export's rows, header first, read with a CSV parser.
async fn export(app: &App, path: &str, token: &str) -> (StatusCode, String, Vec<Vec<String>>) {
    let res = app
        .http
        .get(format!("{}{path}", app.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = res.status();
    let disposition = res
        .headers()
        .get("content-disposition")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = res.text().await.unwrap();
    let rows = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(body.as_bytes())
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect();
    (status, disposition, rows)
}

async fn recipients_export_as_csv_with_what_happened_to_each(app: App) {
    let campaign = app.sms_campaign().await;
    let mut csv = String::from(
        "phone,first_name,note\n+14155552600,Al,=1+2\n+14155552601,Bo,-3\n+14155552602,Cy,@x\n",
    );
    // Past one page of the export (1,000), so the pages join up.
    for i in 0..2_497 {
        csv.push_str(&format!("+1415556{i:04},N{i},plain\n"));
    }
    let (status, o) = app.upload(&campaign, &csv, &[]).await;
    assert_eq!(status, StatusCode::CREATED, "{o}");
    let id = Uuid::parse_str(o["id"].as_str().unwrap()).unwrap();
    send(&app, id, vec![sent(), failed()]).await;

    let path = format!("/api/v1/outreaches/{id}/recipients.csv");
    let (s, _, _) = app.call(None, Method::GET, &path, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // Agents may read it.
    let (status, disposition, rows) = export(&app, &path, &app.agent).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(disposition, "attachment; filename=\"list-recipients.csv\"");
    assert_eq!(
        rows[0],
        [
            "line",
            "address",
            "state",
            "skip_reason",
            "attempts",
            "sent_at",
            "updated_at",
            "provider_message_id",
            "error_code",
            "error_message",
            "timezone",
            "first_name",
            "note"
        ]
    );
    assert_eq!(rows.len(), 1 + 2_500);
    let lines: Vec<u64> = rows[1..].iter().map(|r| r[0].parse().unwrap()).collect();
    assert_eq!(
        lines,
        (2..2_502).collect::<Vec<u64>>(),
        "every row once, in upload order"
    );
    // E.164 numbers stay as they are; cells a spreadsheet would run are neutralized.
    assert_eq!(rows[1][1], "+14155552600");
    assert_eq!((rows[1][2].as_str(), rows[1][7].as_str()), ("sent", "SM1"));
    assert!(!rows[1][5].is_empty(), "sent_at");
    assert_eq!(rows[2][2], "failed");
    assert_eq!(
        (rows[2][8].as_str(), rows[2][9].as_str()),
        ("30003", "unreachable handset")
    );
    assert_eq!(rows[3][2], "pending");
    assert_eq!(
        (
            rows[1][12].as_str(),
            rows[2][12].as_str(),
            rows[3][12].as_str()
        ),
        ("'=1+2", "'-3", "'@x")
    );
    assert_eq!(rows[1][11], "Al");

    // One state only; a state that does not exist is refused; an unknown outreach is not found.
    let (status, _, rows) = export(&app, &format!("{path}?state=failed"), &app.admin).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1][1], "+14155552601");
    let (status, _, _) = export(&app, &format!("{path}?state=lost"), &app.admin).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let missing = format!("/api/v1/outreaches/{}/recipients.csv", Uuid::now_v7());
    let (status, _, _) = export(&app, &missing, &app.admin).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
