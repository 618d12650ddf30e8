//! Review before launch (`POST /campaigns/{id}/outreaches?dry_run=true`), over HTTP on SQLite
//! and PostgreSQL: a review stores nothing, a launch of the reviewed file goes through and a
//! changed one is refused, the warnings come from what the store holds, and the forecast agrees
//! with what the dispatcher then does under the same (hand-driven) clock.

mod common;

use common::App;
use herald_channels::{Transports, TwilioTransport};
use herald_core::{Provider, Role};
use herald_engine::{Clock, DispatchConfig, Dispatcher, FrequencyCap, ManualClock, RateConfig};
use herald_store::testing::TestStore;
use herald_testkit::FakeTwilio;
use jiff::{SignedDuration, Timestamp};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::sync::Arc;

herald_store::on_both_backends!(
    a_review_stores_nothing_and_the_reviewed_file_launches,
    the_review_shows_the_first_messages_and_the_row_errors,
    the_review_warns_of_recipients_sent_recently_and_capped,
    the_forecast_is_when_the_dispatcher_finishes,
    the_web_form_reviews_then_launches_the_same_file,
    the_campaigns_own_frequency_cap_warns_too,
);

/// Monday 2026-12-07, 08:30 UTC.
fn monday_0830() -> Timestamp {
    "2026-12-07T08:30:00Z".parse().unwrap()
}

struct Setup {
    app: App,
    twilio: FakeTwilio,
    clock: Arc<ManualClock>,
    dispatcher: Arc<Dispatcher>,
}

/// Herald on a hand-driven clock with a dispatcher (not running: the test ticks it) that sends
/// through a fake Twilio at `config`'s rates.
async fn setup(db: TestStore, config: DispatchConfig) -> Setup {
    let twilio = FakeTwilio::start();
    let clock = Arc::new(ManualClock::new(monday_0830()));
    let mut built = None;
    let app = common::start_at(Arc::new(db), |state, base| {
        let mut transports = Transports::new();
        transports.insert(
            Provider::Twilio,
            Arc::new(TwilioTransport::new(&twilio.config().with_public_url(base)).unwrap()),
        );
        let dispatcher = Arc::new(Dispatcher::new(
            state.store.clone(),
            transports,
            clock.clone(),
            config,
        ));
        *state = state
            .clone()
            .with_clock(clock.clone())
            .with_dispatcher(dispatcher.clone());
        built = Some(dispatcher);
    })
    .await;
    Setup {
        app,
        twilio,
        clock,
        dispatcher: built.unwrap(),
    }
}

/// An SMS campaign open at `windows` on Mondays (UTC), quiet hours off; its id.
async fn campaign(app: &App, windows: &[&str]) -> String {
    let inbox = app.create("/api/v1/inboxes", json!({"name": "Care"})).await;
    let sender = app
        .create(
            "/api/v1/senders",
            json!({"channel": "sms", "address": "+14155550100", "inbox_id": inbox["id"],
                   "provider": "twilio"}),
        )
        .await;
    let answer = app
        .create(
            "/api/v1/answers",
            json!({"name": "Delay", "variants": [{"language": "en",
                   "body": "Hi {{ first_name }}, your order {{ order }} is late."}]}),
        )
        .await;
    let c = app
        .create(
            "/api/v1/campaigns",
            json!({"name": "Late", "channel": "sms", "language": "en",
                   "sender_id": sender["id"], "answer_id": answer["id"], "quiet_hours": false,
                   "schedule": {"timezone": "UTC", "days": {"mon": windows}}}),
        )
        .await;
    c["id"].as_str().unwrap().to_string()
}

/// `n` recipients with US numbers (whose hours are read in the schedule's zone).
fn list(n: usize) -> String {
    let mut csv = String::from("phone,first_name,order\n");
    for i in 0..n {
        csv.push_str(&format!("+1415555{:04},Ann{i},A-{i}\n", 1000 + i));
    }
    csv
}

async fn review(app: &App, campaign: &str, csv: &str, fields: &[(&str, &str)]) -> Value {
    let (status, body) = upload_to(app, campaign, "?dry_run=true", csv, fields).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn upload_to(
    app: &App,
    campaign: &str,
    query: &str,
    csv: &str,
    fields: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(csv.as_bytes().to_vec()).file_name("list.csv"),
    );
    for (k, v) in fields {
        form = form.text(k.to_string(), v.to_string());
    }
    let res = app
        .http
        .post(format!(
            "{}/api/v1/campaigns/{campaign}/outreaches{query}",
            app.base
        ))
        .bearer_auth(&app.admin)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = res.status();
    let text = res.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn outreach_count(app: &App, campaign: &str) -> usize {
    let (s, v) = app
        .admin(
            Method::GET,
            &format!("/api/v1/campaigns/{campaign}/outreaches"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    v["items"].as_array().unwrap().len()
}

/// Ticks the dispatcher until `n` messages reached the fake Twilio, moving the clock a second
/// after a tick that sent and a minute after one that did not. The instant of the last send.
async fn send_all(s: &Setup, n: usize) -> Timestamp {
    let mut last = None;
    for _ in 0..5_000 {
        let before = s.twilio.accepted().len();
        let report = s.dispatcher.tick().await.unwrap();
        let after = s.twilio.accepted().len();
        if after > before {
            last = Some(s.clock.now());
        }
        if after >= n {
            return last.unwrap();
        }
        let step = if report.sent > 0 || report.more_due {
            1
        } else {
            60
        };
        s.clock.advance(SignedDuration::from_secs(step));
    }
    panic!(
        "only {} of {n} messages were sent",
        s.twilio.accepted().len()
    );
}

fn time(v: &Value) -> Timestamp {
    v.as_str()
        .unwrap_or_else(|| panic!("not a time: {v}"))
        .parse()
        .unwrap()
}

async fn a_review_stores_nothing_and_the_reviewed_file_launches(db: TestStore) {
    let s = setup(db, DispatchConfig::default()).await;
    let campaign = campaign(&s.app, &["09:00-17:00"]).await;
    let csv = list(5);
    let r = review(&s.app, &campaign, &csv, &[]).await;
    assert_eq!(r["summary"]["accepted"], 5, "{r}");
    assert_eq!(
        outreach_count(&s.app, &campaign).await,
        0,
        "a review stores no outreach"
    );
    // Reviewing again gives the same digest; nothing was kept in between.
    let again = review(&s.app, &campaign, &csv, &[]).await;
    assert_eq!(r["digest"], again["digest"]);
    assert_eq!(outreach_count(&s.app, &campaign).await, 0);

    // Another file under the reviewed digest is refused, and stores nothing.
    let digest = r["digest"].as_str().unwrap();
    let (status, problem) =
        upload_to(&s.app, &campaign, "", &list(6), &[("reviewed", digest)]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert!(
        common::has_error(&problem, "reviewed", "not the one reviewed"),
        "{problem}"
    );
    assert_eq!(outreach_count(&s.app, &campaign).await, 0);

    // The reviewed file launches.
    let (status, outreach) = upload_to(&s.app, &campaign, "", &csv, &[("reviewed", digest)]).await;
    assert_eq!(status, StatusCode::CREATED, "{outreach}");
    assert_eq!(outreach["summary"]["accepted"], 5);
    assert_eq!(outreach_count(&s.app, &campaign).await, 1);
}

async fn the_review_shows_the_first_messages_and_the_row_errors(db: TestStore) {
    let s = setup(db, DispatchConfig::default()).await;
    let campaign = campaign(&s.app, &["09:00-17:00"]).await;
    let csv = "phone,first_name,order\n+14155551000,Ann,A-1\nnot a number,Bob,B-2\n\
               +14155551001,Zoë,C-3\n+14155551000,Ann again,A-1\n+14155551002,Cy,D-4\n\
               +14155551003,Di,E-5\n";
    let r = review(&s.app, &campaign, csv, &[]).await;
    assert_eq!(r["summary"]["rows"], 6, "{r}");
    assert_eq!(r["summary"]["accepted"], 4);
    assert_eq!(r["summary"]["invalid"], 1);
    assert_eq!(r["summary"]["duplicates"], 1);
    assert_eq!(r["contact_column"], "phone");
    assert_eq!(r["variables"], json!(["first_name", "order"]));
    assert_eq!(r["errors"][0]["line"], 3, "{r}");
    assert_eq!(r["errors"][0]["column"], "phone");
    let samples = r["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 3, "{r}");
    assert_eq!(samples[0]["to"], "+14155551000");
    assert_eq!(samples[0]["body"], "Hi Ann, your order A-1 is late.");
    assert_eq!(samples[0]["sms"]["encoding"], "gsm7");
    assert_eq!(samples[0]["sms"]["segments"], 1);
    // "ë" is GSM-7; the second sample is line 4.
    assert_eq!(samples[1]["line"], 4);
    assert_eq!(samples[1]["body"], "Hi Zoë, your order C-3 is late.");
    assert!(
        r["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["code"] == "invalid_rows" && w["count"] == 1),
        "{r}"
    );
    // Sending opens at 09:00; four recipients at one a second.
    assert_eq!(
        time(&r["forecast"]["first_at"]),
        "2026-12-07T09:00:00Z".parse().unwrap()
    );
    assert_eq!(
        time(&r["forecast"]["last_at"]),
        "2026-12-07T09:00:03Z".parse().unwrap()
    );
    assert_eq!(r["zones"][0]["zone"], "UTC");
    assert_eq!(r["zones"][0]["recipients"], 4);
    // A refused file is refused by the review as it would be by the launch.
    let (status, problem) = upload_to(&s.app, &campaign, "?dry_run=true", "name\nx\n", &[]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(outreach_count(&s.app, &campaign).await, 0);
}

async fn the_review_warns_of_recipients_sent_recently_and_capped(db: TestStore) {
    let s = setup(
        db,
        DispatchConfig {
            rates: RateConfig {
                sms: f64::INFINITY,
                ..RateConfig::default()
            },
            frequency_cap: Some(FrequencyCap {
                messages: 1,
                days: 7,
            }),
            ..DispatchConfig::default()
        },
    )
    .await;
    let campaign = campaign(&s.app, &["00:00-24:00"]).await;
    // Three of them are sent first.
    let (status, o) = upload_to(&s.app, &campaign, "", &list(3), &[]).await;
    assert_eq!(status, StatusCode::CREATED, "{o}");
    send_all(&s, 3).await;

    let r = review(&s.app, &campaign, &list(5), &[]).await;
    let warning = |code: &str| {
        r["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["code"] == code)
            .cloned()
            .unwrap_or_else(|| panic!("no {code} warning: {r}"))
    };
    let recent = warning("sent_recently");
    assert_eq!(recent["count"], 3, "{recent}");
    assert!(
        recent["message"].as_str().unwrap().contains("3 of 5"),
        "{recent}"
    );
    let capped = warning("frequency_cap");
    assert_eq!(capped["count"], 3, "{capped}");
    // The capped ones take no turn: two are forecast to be sent.
    assert_eq!(r["forecast"]["sent"], 2, "{r}");

    // The very same list again: every recipient was sent.
    let r = review(&s.app, &campaign, &list(3), &[]).await;
    let recent = r["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["code"] == "sent_recently")
        .cloned()
        .unwrap();
    assert!(
        recent["message"]
            .as_str()
            .unwrap()
            .contains("every recipient"),
        "{recent}"
    );
}

async fn the_forecast_is_when_the_dispatcher_finishes(db: TestStore) {
    // One a second, across two windows: 300 fit in the first five minutes, the rest from 10:00.
    let s = setup(db, DispatchConfig::default()).await;
    let campaign = campaign(&s.app, &["09:00-09:05", "10:00-10:10"]).await;
    let csv = list(600);
    let r = review(&s.app, &campaign, &csv, &[]).await;
    let first = time(&r["forecast"]["first_at"]);
    let last = time(&r["forecast"]["last_at"]);
    assert_eq!(first, "2026-12-07T09:00:00Z".parse().unwrap(), "{r}");
    assert_eq!(r["forecast"]["sent"], 600);
    assert_eq!(r["forecast"]["expire"], 0);
    // An end time one minute into the second window expires what it leaves.
    let cut = review(
        &s.app,
        &campaign,
        &csv,
        &[("end_at", "2026-12-07T10:01:00Z")],
    )
    .await;
    assert_eq!(cut["forecast"]["sent"], 360, "{cut}");
    assert_eq!(cut["forecast"]["expire"], 240);
    assert!(
        cut["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["code"] == "expire" && w["count"] == 240),
        "{cut}"
    );

    let digest = r["digest"].as_str().unwrap();
    let (status, o) = upload_to(&s.app, &campaign, "", &csv, &[("reviewed", digest)]).await;
    assert_eq!(status, StatusCode::CREATED, "{o}");

    let finished = send_all(&s, 600).await;
    let off = finished.duration_since(last).abs();
    assert!(
        off <= SignedDuration::from_secs(60),
        "forecast {last}, the dispatcher finished at {finished}"
    );
    // And it did use both windows.
    assert!(last > "2026-12-07T10:00:00Z".parse().unwrap(), "{last}");
}

fn web_form(csrf: &str, csv: &str, reviewed: Option<&str>) -> reqwest::multipart::Form {
    let mut form = reqwest::multipart::Form::new()
        .text("csrf", csrf.to_string())
        .part(
            "file",
            reqwest::multipart::Part::bytes(csv.as_bytes().to_vec()).file_name("late.csv"),
        )
        .text("start_at", "")
        .text("end_at", "")
        .text("timezone_of_times", "UTC");
    if let Some(digest) = reviewed {
        form = form.text("reviewed", digest.to_string());
    }
    form
}

async fn the_web_form_reviews_then_launches_the_same_file(db: TestStore) {
    let s = setup(db, DispatchConfig::default()).await;
    let campaign = campaign(&s.app, &["09:00-17:00"]).await;
    let admin = common::web::sign_in(&s.app, "admin@example.com", Role::Admin).await;
    let csv = list(4);

    // The review: a fragment with the summary, the forecast, the first messages and a launch
    // button carrying the file's digest; nothing stored.
    let page = admin
        .post_multipart(
            &format!("/campaigns/{campaign}/outreaches/review"),
            web_form(&admin.csrf, &csv, None),
            &[],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let summary = common::web::element(&page.body, "review-summary").unwrap_or_default();
    assert!(summary.contains("4 recipients"), "{summary}");
    let first = common::web::element(&page.body, "forecast-first").unwrap_or_default();
    assert!(first.contains("Mon 7 Dec 09:00:00 UTC"), "{first}");
    assert!(
        page.body.contains("Hi Ann0, your order A-0 is late."),
        "{}",
        page.body
    );
    assert!(page.body.contains("id=\"launch-submit\""), "{}", page.body);
    let digest = page
        .body
        .split("name=\"reviewed\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the review's digest in the form")
        .to_string();
    assert_eq!(outreach_count(&s.app, &campaign).await, 0);

    // A refused file: the reasons, no launch button, nothing stored.
    let page = admin
        .post_multipart(
            &format!("/campaigns/{campaign}/outreaches/review"),
            web_form(&admin.csrf, "name\nx\n", None),
            &[],
        )
        .await;
    assert_eq!(
        page.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        page.body
    );
    let refused = common::web::element(&page.body, "review-refused").unwrap_or_default();
    assert!(refused.contains("phone"), "{refused}");
    assert!(!page.body.contains("launch-submit"), "{}", page.body);

    // The launch of another file under that digest is refused; the reviewed one goes through.
    let page = admin
        .post_multipart(
            &format!("/campaigns/{campaign}/outreaches"),
            web_form(&admin.csrf, &list(5), Some(&digest)),
            &[],
        )
        .await;
    assert_eq!(
        page.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        page.body
    );
    assert!(page.body.contains("not the one reviewed"), "{}", page.body);
    assert_eq!(outreach_count(&s.app, &campaign).await, 0);
    let page = admin
        .post_multipart(
            &format!("/campaigns/{campaign}/outreaches"),
            web_form(&admin.csrf, &csv, Some(&digest)),
            &[],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(outreach_count(&s.app, &campaign).await, 1);
}

async fn the_campaigns_own_frequency_cap_warns_too(db: TestStore) {
    let s = setup(
        db,
        DispatchConfig {
            rates: RateConfig {
                sms: f64::INFINITY,
                ..RateConfig::default()
            },
            ..DispatchConfig::default()
        },
    )
    .await;
    let campaign = campaign(&s.app, &["00:00-24:00"]).await;
    let (_, mut c) = s
        .app
        .admin(Method::GET, &format!("/api/v1/campaigns/{campaign}"), None)
        .await;
    c["frequency_cap"] = json!({"messages": 1, "days": 7});
    let (status, saved) = s
        .app
        .admin(
            Method::PUT,
            &format!("/api/v1/campaigns/{campaign}"),
            Some(c),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    let (status, o) = upload_to(&s.app, &campaign, "", &list(2), &[]).await;
    assert_eq!(status, StatusCode::CREATED, "{o}");
    send_all(&s, 2).await;
    let r = review(&s.app, &campaign, &list(4), &[]).await;
    let capped = r["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["code"] == "frequency_cap")
        .cloned()
        .unwrap_or_else(|| panic!("no frequency_cap warning: {r}"));
    assert_eq!(capped["count"], 2, "{capped}");
    assert!(
        capped["message"]
            .as_str()
            .unwrap()
            .contains("1 or more messages in the last 7 days"),
        "{capped}"
    );
    assert_eq!(r["forecast"]["sent"], 2, "{r}");
}
