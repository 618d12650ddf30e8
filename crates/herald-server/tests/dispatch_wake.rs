//! An upload wakes the dispatcher, on SQLite and PostgreSQL: with a poll interval of a minute, an
//! outreach uploaded through the API or through the web form reaches a fake Twilio within
//! seconds, not at the next poll.

mod common;

use common::App;
use herald_channels::{Transports, TwilioTransport};
use herald_core::{Provider, Role};
use herald_engine::{DispatchConfig, Dispatcher, RateConfig, SystemClock};
use herald_store::testing::TestStore;
use herald_testkit::FakeTwilio;
use reqwest::StatusCode;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

herald_store::on_both_backends!(
    an_api_upload_is_sent_before_the_next_poll,
    a_web_upload_is_sent_before_the_next_poll,
);

/// Far longer than the test may take: only a wake makes the dispatcher look again.
const POLL: Duration = Duration::from_secs(60);
/// What "at once" means here.
const SOON: Duration = Duration::from_secs(3);

struct Setup {
    app: App,
    twilio: FakeTwilio,
    campaign: String,
    /// Ends the dispatcher's loop when dropped.
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// Herald with a running dispatcher that polls once a minute, sending through a fake Twilio; an
/// SMS campaign open around the clock. Returns once the dispatcher has found nothing to do and
/// is waiting for its next poll.
async fn setup(db: TestStore) -> Setup {
    let twilio = FakeTwilio::start();
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
            Arc::new(SystemClock),
            DispatchConfig {
                poll_ms: POLL.as_millis() as u64,
                rates: RateConfig {
                    sms: f64::INFINITY,
                    ..RateConfig::default()
                },
                ..DispatchConfig::default()
            },
        ));
        *state = state.clone().with_dispatcher(dispatcher.clone());
        built = Some(dispatcher);
    })
    .await;
    let campaign = campaign(&app).await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(built.unwrap().run(async move {
        let _ = stopped.await;
    }));
    // Its first tick finds no outreach; then it waits for a wake or the next poll.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(twilio.accepted().is_empty());
    Setup {
        app,
        twilio,
        campaign,
        _stop: stop,
    }
}

/// An SMS campaign from a Twilio number, open every hour of every day; its id.
async fn campaign(app: &App) -> String {
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
                   "body": "Hi {{ first_name }}, your order is late."}]}),
        )
        .await;
    let all_day = json!(["00:00-24:00"]);
    let campaign = app
        .create(
            "/api/v1/campaigns",
            json!({"name": "Late", "channel": "sms", "language": "en",
                   "sender_id": sender["id"], "answer_id": answer["id"], "quiet_hours": false,
                   "schedule": {"timezone": "UTC", "days": {"mon": all_day, "tue": all_day,
                     "wed": all_day, "thu": all_day, "fri": all_day, "sat": all_day,
                     "sun": all_day}}}),
        )
        .await;
    campaign["id"].as_str().unwrap().to_string()
}

/// Waits (at most [`SOON`]) until the fake Twilio has taken a message to `to`: how long it took.
async fn sent_to(twilio: &FakeTwilio, to: &str, uploaded: Instant) -> Duration {
    loop {
        if twilio.accepted().iter().any(|m| {
            m.to == to
                && m.body
                    .as_deref()
                    .is_some_and(|b| b.contains("your order is late"))
        }) {
            return uploaded.elapsed();
        }
        assert!(
            uploaded.elapsed() < SOON,
            "nothing was sent to {to} within {SOON:?} of the upload (the poll is {POLL:?})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn an_api_upload_is_sent_before_the_next_poll(db: TestStore) {
    let s = setup(db).await;
    let uploaded = Instant::now();
    let (status, o) = s
        .app
        .upload(&s.campaign, "phone,first_name\n+14155552671,Ann\n", &[])
        .await;
    assert_eq!(status, StatusCode::CREATED, "{o}");
    let took = sent_to(&s.twilio, "+14155552671", uploaded).await;
    assert!(took < SOON, "{took:?}");
}

async fn a_web_upload_is_sent_before_the_next_poll(db: TestStore) {
    let s = setup(db).await;
    let admin = common::web::sign_in(&s.app, "admin@example.com", Role::Admin).await;
    let form = reqwest::multipart::Form::new()
        .text("csrf", admin.csrf.clone())
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"phone,first_name\n+14155552672,Bo\n".to_vec())
                .file_name("late.csv"),
        )
        .text("start_at", "")
        .text("end_at", "")
        .text("timezone_of_times", "");
    let uploaded = Instant::now();
    let res = admin
        .post_multipart(&format!("/campaigns/{}/outreaches", s.campaign), form, &[])
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let took = sent_to(&s.twilio, "+14155552672", uploaded).await;
    assert!(took < SOON, "{took:?}");
}
