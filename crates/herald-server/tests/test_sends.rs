//! Test sends (#16, item 2), on SQLite and PostgreSQL: a campaign's message rendered for one
//! row goes to the admin's own number or address through the campaign's sender — over real
//! HTTP to a fake Twilio, over a real SMTP conversation to a fake SMTP server — and is recorded
//! as a test, outside any outreach. Refusals (bad address, opted out, agent) send and record
//! nothing; a provider failure is recorded as failed and said in words. The web form does the
//! same for a signed-in admin.

#![allow(clippy::disallowed_methods)] // tests set up data relative to the real time

mod common;

use common::App;
use common::web::sign_in;
use herald_channels::{SmtpTransport, Transports, TwilioTransport};
use herald_core::{Provider, Role};
use herald_engine::{Replies, RepliesConfig};
use herald_store::testing::TestStore;
use herald_testkit::{FakeSmtp, FakeTwilio};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::sync::Arc;

herald_store::on_both_backends!(
    a_test_sms_reaches_the_admin_rendered_and_is_recorded_outside_any_outreach,
    refused_tests_send_and_record_nothing,
    a_provider_failure_is_recorded_and_said_in_words,
    a_test_email_goes_over_smtp_with_its_subject,
    the_campaign_page_sends_a_test_with_the_values_typed_in,
);

const SENDER: &str = "+14155550100";
const EMAIL_SENDER: &str = "care@acme.example";
const ADMIN_PHONE: &str = "+14155559999";

struct Setup {
    app: App,
    twilio: FakeTwilio,
    smtp: FakeSmtp,
    sms_campaign: String,
    email_campaign: String,
}

async fn setup(db: TestStore, twilio: FakeTwilio) -> Setup {
    let smtp = FakeSmtp::start();
    let app = common::start_at(Arc::new(db), |state, base| {
        let mut transports = Transports::new();
        transports.insert(
            Provider::Twilio,
            Arc::new(TwilioTransport::new(&twilio.config().with_public_url(base)).unwrap()),
        );
        transports.insert(
            Provider::Smtp,
            Arc::new(SmtpTransport::new(&smtp.config()).unwrap()),
        );
        let replies = Replies::new(
            state.store.clone(),
            Arc::new(transports),
            RepliesConfig::default(),
        );
        *state = state
            .clone()
            .with_twilio(twilio.auth_token(), base)
            .with_replies(replies);
    })
    .await;
    let inbox = app.create("/api/v1/inboxes", json!({"name": "Care"})).await;
    let all_day = json!(["00:00-24:00"]);
    let schedule = json!({"timezone": "UTC", "days": {"mon": all_day, "tue": all_day,
        "wed": all_day, "thu": all_day, "fri": all_day, "sat": all_day, "sun": all_day}});
    let mut ids = Vec::new();
    for (channel, address, provider, subject) in [
        ("sms", SENDER, "twilio", None),
        (
            "email",
            EMAIL_SENDER,
            "smtp",
            Some("Your order {{ order }}"),
        ),
    ] {
        let sender = app
            .create(
                "/api/v1/senders",
                json!({"channel": channel, "address": address, "inbox_id": inbox["id"],
                       "provider": provider}),
            )
            .await;
        let answer = app
            .create(
                "/api/v1/answers",
                json!({"name": format!("Late {channel}"), "variants": [{"language": "en",
                       "subject": subject,
                       "body": "Hi {{ first_name }}, order {{ order }} is late."}]}),
            )
            .await;
        let campaign = app
            .create(
                "/api/v1/campaigns",
                json!({"name": "Late order", "channel": channel, "language": "en",
                       "sender_id": sender["id"], "answer_id": answer["id"],
                       "quiet_hours": false, "schedule": schedule}),
            )
            .await;
        ids.push(campaign["id"].as_str().unwrap().to_string());
    }
    Setup {
        app,
        twilio,
        smtp,
        sms_campaign: ids[0].clone(),
        email_campaign: ids[1].clone(),
    }
}

async fn test_send(s: &Setup, campaign: &str, body: Value) -> (StatusCode, Value) {
    s.app
        .admin(
            Method::POST,
            &format!("/api/v1/campaigns/{campaign}/test-sends"),
            Some(body),
        )
        .await
}

async fn listed(s: &Setup, campaign: &str) -> Vec<Value> {
    let (st, v) = s
        .app
        .admin(
            Method::GET,
            &format!("/api/v1/campaigns/{campaign}/test-sends"),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    v.as_array().unwrap().clone()
}

async fn a_test_sms_reaches_the_admin_rendered_and_is_recorded_outside_any_outreach(db: TestStore) {
    let s = setup(db, FakeTwilio::start()).await;
    let (st, t) = test_send(
        &s,
        &s.sms_campaign,
        json!({"to": ADMIN_PHONE, "variables": {"first_name": "Ada", "order": "A-17"}}),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{t}");
    assert_eq!(t["state"], "sent", "{t}");
    assert_eq!(t["to"], ADMIN_PHONE);
    assert_eq!(t["body"], "Hi Ada, order A-17 is late.");
    assert_eq!(t["requested_by"], "API token `test-admin`");

    let accepted = s.twilio.accepted();
    assert_eq!(accepted.len(), 1, "{accepted:?}");
    assert_eq!(accepted[0].to, ADMIN_PHONE);
    assert_eq!(accepted[0].from, SENDER);
    assert_eq!(
        accepted[0].body.as_deref(),
        Some("Hi Ada, order A-17 is late.")
    );
    assert_eq!(t["provider_message_id"], accepted[0].sid.as_str());

    let list = listed(&s, &s.sms_campaign).await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0], t);
    // Outside any outreach: the campaign has none, and no customer timeline holds the test.
    let (_, outreaches) = s
        .app
        .admin(
            Method::GET,
            &format!("/api/v1/campaigns/{}/outreaches", s.sms_campaign),
            None,
        )
        .await;
    assert_eq!(outreaches["items"], json!([]), "{outreaches}");
    let (st, customer) = s
        .app
        .admin(
            Method::GET,
            "/api/v1/customers?address=%2B14155559999",
            None,
        )
        .await;
    assert!(
        st == StatusCode::NOT_FOUND || customer["messages"] == json!([]),
        "{st} {customer}"
    );
}

async fn refused_tests_send_and_record_nothing(db: TestStore) {
    let s = setup(db, FakeTwilio::start()).await;
    let path = format!("/api/v1/campaigns/{}/test-sends", s.sms_campaign);

    // A number without its country code is not guessed.
    let (st, p) = test_send(&s, &s.sms_campaign, json!({"to": "4155559999"})).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    assert!(common::has_error(&p, "to", ""), "{p}");
    // An email address for an SMS campaign.
    let (st, p) = test_send(&s, &s.sms_campaign, json!({"to": "me@example.com"})).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    // Unknown fields are refused, not ignored, and named.
    let (st, p) = test_send(
        &s,
        &s.sms_campaign,
        json!({"to": ADMIN_PHONE, "row": {"first_name": "Ada"}}),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{p}");
    assert!(p["detail"].as_str().unwrap().contains("`row`"), "{p}");
    // A value the answer needs is missing.
    let (st, p) = test_send(
        &s,
        &s.sms_campaign,
        json!({"to": ADMIN_PHONE, "variables": {"first_name": "Ada"}}),
    )
    .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    assert!(common::has_error(&p, "variables", "order"), "{p}");
    // Agents read campaigns; only admins send.
    let (st, p, _) = s
        .app
        .call(
            Some(&s.app.agent),
            Method::POST,
            &path,
            Some(json!({"to": ADMIN_PHONE})),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{p}");
    // An opted-out number stays opted out, for tests too.
    let (st, p) = s
        .app
        .admin(
            Method::POST,
            "/api/v1/suppressions",
            Some(json!({"address": ADMIN_PHONE, "reason": "asked by phone"})),
        )
        .await;
    assert!(st.is_success(), "{st} {p}");
    let (st, p) = test_send(&s, &s.sms_campaign, json!({"to": ADMIN_PHONE})).await;
    assert_eq!(st, StatusCode::CONFLICT, "{p}");
    assert!(p["detail"].as_str().unwrap().contains("opted out"), "{p}");
    // An unknown campaign.
    let (st, _) = test_send(
        &s,
        "0191e9a4-0000-7000-8000-000000000000",
        json!({"to": ADMIN_PHONE}),
    )
    .await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    assert!(s.twilio.requests().is_empty(), "nothing reached Twilio");
    assert!(listed(&s, &s.sms_campaign).await.is_empty());
}

async fn a_provider_failure_is_recorded_and_said_in_words(db: TestStore) {
    let twilio = FakeTwilio::builder().invalid_number(ADMIN_PHONE).start();
    let s = setup(db, twilio).await;
    let (st, p) = test_send(
        &s,
        &s.sms_campaign,
        json!({"to": ADMIN_PHONE, "variables": {"first_name": "Ada", "order": "A-17"}}),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_GATEWAY, "{p}");
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .starts_with("the message was not sent"),
        "{p}"
    );
    let list = listed(&s, &s.sms_campaign).await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["state"], "failed");
    assert!(
        list[0]["error"].as_str().unwrap().contains("21211"),
        "{list:?}"
    );
    assert!(list[0]["provider_message_id"].is_null());
    assert!(list[0]["finished_at"].is_string());
}

async fn a_test_email_goes_over_smtp_with_its_subject(db: TestStore) {
    let s = setup(db, FakeTwilio::start()).await;
    let (st, t) = test_send(
        &s,
        &s.email_campaign,
        json!({"to": "Me@Example.com", "variables": {"first_name": "Ada", "order": "A-17"}}),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{t}");
    assert_eq!(t["subject"], "Your order A-17");
    let mails = s.smtp.messages();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].recipients().len(), 1);
    assert!(
        mails[0].recipients()[0].eq_ignore_ascii_case("me@example.com"),
        "{:?}",
        mails[0].recipients()
    );
    assert_eq!(
        mails[0].header("Subject").as_deref(),
        Some("Your order A-17")
    );
    assert!(mails[0].body().contains("Hi Ada, order A-17 is late."));
    // A test is no subscription: no unsubscribe link or header.
    assert!(mails[0].header("List-Unsubscribe").is_none());
    assert_eq!(
        t["provider_message_id"].as_str(),
        mails[0].header("Message-ID").as_deref().map(|m| m.trim())
    );
}

async fn the_campaign_page_sends_a_test_with_the_values_typed_in(db: TestStore) {
    let s = setup(db, FakeTwilio::start()).await;
    let admin = sign_in(&s.app, "admin@example.com", Role::Admin).await;
    let page_path = format!("/campaigns/{}", s.sms_campaign);
    let page = admin.page(&page_path).await;
    // One box per variable of the answer.
    for id in ["test-to", "test-var-first_name", "test-var-order"] {
        assert!(page.contains(&format!("id=\"{id}\"")), "{id} missing");
    }
    let path = format!("/campaigns/{}/test-send", s.sms_campaign);
    let refused = admin
        .post(&path, &[("to", "555-9999"), ("var_first_name", "Ada")])
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused.body.contains("id=\"test-send-error\""),
        "{}",
        refused.body
    );
    assert!(
        refused.body.contains("value=\"Ada\""),
        "what was typed is kept"
    );
    let sent = admin
        .post(
            &path,
            &[
                ("to", ADMIN_PHONE),
                ("var_first_name", "<b>Ada</b>"),
                ("var_order", "A-17"),
            ],
        )
        .await;
    assert_eq!(sent.status, StatusCode::OK, "{}", sent.body);
    assert!(sent.body.contains("id=\"test-send-sent\""), "{}", sent.body);
    let accepted = s.twilio.accepted();
    assert_eq!(accepted.len(), 1);
    assert_eq!(
        accepted[0].body.as_deref(),
        Some("Hi <b>Ada</b>, order A-17 is late.")
    );
    let table = admin.page(&page_path).await;
    assert!(table.contains("id=\"test-sends\""));
    assert!(table.contains("admin@example.com"));
    assert!(
        !table.contains("<b>Ada</b>"),
        "values are escaped on the page"
    );
    // A forged form (no CSRF token) sends nothing.
    let forged = admin.post_raw(&path, &[("to", ADMIN_PHONE)]).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(s.twilio.accepted().len(), 1);
    // An agent sees the campaign's tests but gets no form.
    let agent = sign_in(&s.app, "agent@example.com", Role::Agent).await;
    let as_agent = agent.page(&page_path).await;
    assert!(!as_agent.contains("id=\"test-send-form\""));
    assert!(as_agent.contains("id=\"test-sends\""));
}
