//! Replies end to end, on SQLite and PostgreSQL: an outreach goes out through the real
//! dispatcher to a fake Twilio over HTTP; the fake posts signed status callbacks and customers'
//! texts back to Herald's webhooks; replies land in the sender's inbox attributed to the
//! campaign; agents answer through the API and the fake receives it. STOP/START/HELP, forged and
//! replayed webhooks, the opt-out list and email unsubscribes.

#![allow(clippy::disallowed_methods)] // tests set up data relative to the real time

mod common;

use common::App;
use herald_channels::{Transports, TwilioTransport};
use herald_core::Provider;
use herald_engine::{DispatchConfig, Dispatcher, RateConfig, Replies, RepliesConfig, SystemClock};
use herald_store::testing::TestStore;
use herald_testkit::FakeTwilio;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::sync::Arc;
use uuid::Uuid;

herald_store::on_both_backends!(
    a_reply_reaches_the_inbox_attributed_and_the_agent_answer_reaches_the_customer,
    status_callbacks_update_the_delivery_record_once,
    stop_mid_outreach_skips_the_number_for_that_sender_only,
    a_stop_reply_counts_as_an_opt_out_of_its_outreach,
    keywords_are_single_words_in_any_case,
    start_lifts_the_opt_out_and_help_answers,
    forged_and_missing_signatures_change_nothing,
    a_resplit_replay_of_start_is_refused_and_the_stop_holds,
    suppressions_are_managed_through_the_api,
    international_numbers_are_their_own_numbers_and_their_replies_land_with_them,
);

const SENDER: &str = "+14155550100";
const OTHER_SENDER: &str = "+14155550199";
const HELP: &str = "Acme Care: call 415-555-0100 for help. Reply STOP to opt out.";

struct Setup {
    app: App,
    twilio: FakeTwilio,
    dispatcher: Dispatcher,
    base: String,
    inbox: String,
    campaign: String,
}

impl Setup {
    fn sms_url(&self) -> String {
        format!("{}/webhooks/twilio/sms", self.base)
    }

    async fn get(&self, path: &str) -> Value {
        let (s, v) = self.app.admin(Method::GET, path, None).await;
        assert_eq!(s, StatusCode::OK, "GET {path}: {v}");
        v
    }
}

/// A fake Twilio; Herald serving webhooks for it; an SMS sender (inbox "Care") and a campaign
/// open around the clock.
async fn setup(db: TestStore) -> Setup {
    let twilio = FakeTwilio::start();
    let db = Arc::new(db);
    let mut built = None;
    let app = common::start_at(db.clone(), |state, base| {
        let mut transports = Transports::new();
        transports.insert(
            Provider::Twilio,
            Arc::new(TwilioTransport::new(&twilio.config().with_public_url(base)).unwrap()),
        );
        let replies = Replies::new(
            state.store.clone(),
            Arc::new(transports.clone()),
            RepliesConfig {
                help_text: HELP.to_string(),
                ..RepliesConfig::default()
            },
        );
        *state = state
            .clone()
            .with_twilio(twilio.auth_token(), base)
            .with_replies(replies);
        built = Some((transports, base.to_string()));
    })
    .await;
    let (transports, base) = built.unwrap();
    let dispatcher = Dispatcher::new(
        db.store.clone(),
        transports,
        Arc::new(SystemClock),
        DispatchConfig {
            rates: RateConfig {
                sms: f64::INFINITY,
                ..RateConfig::default()
            },
            ..DispatchConfig::default()
        },
    );
    let inbox = app.create("/api/v1/inboxes", json!({"name": "Care"})).await;
    let campaign = campaign(&app, &inbox, SENDER, "Late order").await;
    Setup {
        app,
        twilio,
        dispatcher,
        base,
        inbox: inbox["id"].as_str().unwrap().to_string(),
        campaign,
    }
}

/// An SMS campaign sending from `number` (a new Twilio sender in `inbox`); its id.
async fn campaign(app: &App, inbox: &Value, number: &str, name: &str) -> String {
    let sender = app
        .create(
            "/api/v1/senders",
            json!({"channel": "sms", "address": number, "inbox_id": inbox["id"],
                   "provider": "twilio"}),
        )
        .await;
    let answer = app
        .create(
            "/api/v1/answers",
            json!({"name": format!("{name} answer"), "variants": [{"language": "en",
                   "body": "Hi {{ first_name }}, your order is late. Reply to talk to us."}]}),
        )
        .await;
    let all_day = json!(["00:00-24:00"]);
    let campaign = app
        .create(
            "/api/v1/campaigns",
            json!({"name": name, "channel": "sms", "language": "en",
                   "sender_id": sender["id"], "answer_id": answer["id"], "quiet_hours": false,
                   "schedule": {"timezone": "UTC", "days": {"mon": all_day, "tue": all_day,
                     "wed": all_day, "thu": all_day, "fri": all_day, "sat": all_day,
                     "sun": all_day}}}),
        )
        .await;
    campaign["id"].as_str().unwrap().to_string()
}

/// Uploads an outreach of `campaign` to `phones` (first names `C0`, `C1`, ...), starting now or
/// at `start_at`; its id.
async fn launch(app: &App, campaign: &str, phones: &[&str], start_at: Option<&str>) -> String {
    let mut csv = String::from("phone,first_name\n");
    for (i, p) in phones.iter().enumerate() {
        csv.push_str(&format!("{p},C{i}\n"));
    }
    let fields: Vec<(&str, &str)> = start_at.map(|at| ("start_at", at)).into_iter().collect();
    let (status, o) = app.upload(campaign, &csv, &fields).await;
    assert_eq!(status, StatusCode::CREATED, "{o}");
    o["id"].as_str().unwrap().to_string()
}

/// Ticks the dispatcher until the outreach is no longer `scheduled`/`in_progress` with pending
/// recipients (at most 50 ticks).
async fn run(s: &Setup, outreach: &str) -> Value {
    for _ in 0..50 {
        s.dispatcher.tick().await.unwrap();
        let o = s.get(&format!("/api/v1/outreaches/{outreach}")).await;
        if o["status"] == "completed" || o["status"] == "stopped" {
            return o;
        }
    }
    panic!("outreach {outreach} did not complete");
}

async fn recipients(s: &Setup, outreach: &str) -> Vec<Value> {
    let v = s
        .get(&format!(
            "/api/v1/outreaches/{outreach}/recipients?limit=500"
        ))
        .await;
    v["items"].as_array().unwrap().clone()
}

fn by_address<'a>(rs: &'a [Value], address: &str) -> &'a Value {
    rs.iter()
        .find(|r| r["address"] == address)
        .unwrap_or_else(|| panic!("no recipient {address} in {rs:?}"))
}

async fn conversations(s: &Setup) -> Vec<Value> {
    let v = s
        .get(&format!("/api/v1/inboxes/{}/conversations", s.inbox))
        .await;
    v["items"].as_array().unwrap().clone()
}

async fn conversation_of(s: &Setup, customer: &str) -> Value {
    let list = conversations(s).await;
    let c = list
        .iter()
        .find(|c| c["customer_address"] == customer)
        .unwrap_or_else(|| panic!("no conversation with {customer} in {list:?}"));
    s.get(&format!(
        "/api/v1/conversations/{}",
        c["id"].as_str().unwrap()
    ))
    .await
}

fn sids_to(twilio: &FakeTwilio, to: &str) -> Vec<String> {
    twilio
        .accepted()
        .into_iter()
        .filter(|m| m.to == to && m.is_sms())
        .map(|m| m.sid)
        .collect()
}

async fn a_reply_reaches_the_inbox_attributed_and_the_agent_answer_reaches_the_customer(
    db: TestStore,
) {
    let s = setup(db).await;
    let outreach = launch(
        &s.app,
        &s.campaign,
        &["+14155552601", "+14155552602", "+14155552603"],
        None,
    )
    .await;
    let done = run(&s, &outreach).await;
    assert_eq!(done["progress"]["sent"], 3, "{done}");
    assert_eq!(s.twilio.accepted().len(), 3);

    // The proactive message is on the customer's timeline before they answer.
    let (st, customer) = s
        .app
        .admin(
            Method::GET,
            "/api/v1/customers?address=%2B14155552601",
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{customer}");
    let timeline = customer["messages"].as_array().unwrap();
    assert_eq!(timeline.len(), 1, "{customer}");
    assert_eq!(timeline[0]["author"], "outreach");
    assert_eq!(
        timeline[0]["body"],
        "Hi C0, your order is late. Reply to talk to us."
    );
    assert_eq!(timeline[0]["campaign_id"], s.campaign.as_str());
    assert!(
        conversations(&s).await.is_empty(),
        "no reply, no conversation"
    );

    let reply = s
        .twilio
        .send_inbound(
            &s.sms_url(),
            "+14155552601",
            SENDER,
            "Where is it? Call me please",
        )
        .await;
    assert_eq!(reply.reply.status, 200, "{:?}", reply.reply);
    assert!(
        reply.reply.body.contains("<Response/>"),
        "no automatic answer to a normal reply: {}",
        reply.reply.body
    );

    let list = conversations(&s).await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["campaign_id"], s.campaign.as_str());
    assert_eq!(list[0]["outreach_id"], outreach.as_str());
    assert_eq!(list[0]["inbox_id"], s.inbox.as_str());
    let view = conversation_of(&s, "+14155552601").await;
    let messages = view["messages"].as_array().unwrap();
    let bodies: Vec<(&str, &str)> = messages
        .iter()
        .map(|m| {
            (
                m["direction"].as_str().unwrap(),
                m["body"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        bodies,
        vec![
            (
                "outbound",
                "Hi C0, your order is late. Reply to talk to us."
            ),
            ("inbound", "Where is it? Call me please"),
        ]
    );
    assert_eq!(messages[1]["provider_message_id"], reply.sid.as_str());
    assert_eq!(messages[1]["campaign_id"], s.campaign.as_str());
    assert_eq!(view["opted_out"], false);

    // The recipient is `replied`; the outreach counts it.
    let rs = recipients(&s, &outreach).await;
    assert_eq!(by_address(&rs, "+14155552601")["state"], "replied");
    assert_eq!(by_address(&rs, "+14155552602")["state"], "sent");
    let o = s.get(&format!("/api/v1/outreaches/{outreach}")).await;
    assert_eq!(o["progress"]["replied"], 1, "{o}");

    // A replay of the same webhook changes nothing.
    let again = s
        .twilio
        .post_webhook(&s.sms_url(), &reply.params, None)
        .await;
    assert_eq!(again.status, 200);
    let view = conversation_of(&s, "+14155552601").await;
    assert_eq!(view["messages"].as_array().unwrap().len(), 2, "{view}");
    assert_eq!(conversations(&s).await.len(), 1);

    // An agent answers; the fake Twilio gets it from the same sender.
    let id = view["conversation"]["id"].as_str().unwrap();
    let agent = s.app.agent.clone();
    let (st, sent, _) = s
        .app
        .call(
            Some(&agent),
            Method::POST,
            &format!("/api/v1/conversations/{id}/messages"),
            Some(json!({"body": "Calling you in 5 minutes."})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{sent}");
    assert_eq!(sent["author"], "agent");
    let last = s.twilio.accepted().last().cloned().unwrap();
    assert_eq!(last.to, "+14155552601");
    assert_eq!(last.from, SENDER);
    assert_eq!(last.body.as_deref(), Some("Calling you in 5 minutes."));
    assert_eq!(sent["provider_message_id"], last.sid.as_str());
    let view = conversation_of(&s, "+14155552601").await;
    assert_eq!(view["messages"].as_array().unwrap().len(), 3);

    // Agents may reply, but not change campaigns.
    let (st, _, _) = s
        .app
        .call(
            Some(&agent),
            Method::DELETE,
            &format!("/api/v1/campaigns/{}", s.campaign),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);

    // An empty reply is refused, not sent.
    let before = s.twilio.accepted().len();
    let (st, problem, _) = s
        .app
        .call(
            Some(&agent),
            Method::POST,
            &format!("/api/v1/conversations/{id}/messages"),
            Some(json!({"body": "   "})),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(s.twilio.accepted().len(), before);
}

async fn status_callbacks_update_the_delivery_record_once(db: TestStore) {
    let s = setup(db).await;
    let outreach = launch(
        &s.app,
        &s.campaign,
        &["+14155552611", "+14155552612", "+14155552613"],
        None,
    )
    .await;
    run(&s, &outreach).await;
    let first = sids_to(&s.twilio, "+14155552611").pop().unwrap();
    let second = sids_to(&s.twilio, "+14155552612").pop().unwrap();
    let third = sids_to(&s.twilio, "+14155552613").pop().unwrap();

    for (sid, status, code) in [
        (&first, "sent", None),
        (&first, "delivered", None),
        (&second, "undelivered", Some("30003")),
        (&third, "failed", Some("30006")),
    ] {
        let r = s.twilio.post_status(sid, status, code).await;
        assert!(r.status < 300, "{status}: {r:?}");
    }
    let rs = recipients(&s, &outreach).await;
    assert_eq!(by_address(&rs, "+14155552611")["state"], "delivered");
    let undelivered = by_address(&rs, "+14155552612");
    assert_eq!(undelivered["state"], "undelivered");
    assert_eq!(undelivered["error_code"], "30003");
    assert!(
        undelivered["error_message"]
            .as_str()
            .unwrap()
            .contains("unreachable"),
        "{undelivered}"
    );
    let failed = by_address(&rs, "+14155552613");
    assert_eq!(failed["state"], "failed");
    assert_eq!(failed["error_code"], "30006");

    // Replays and late, older reports change nothing, not even the time of the last change.
    let updated = by_address(&rs, "+14155552611")["updated_at"].clone();
    for status in ["delivered", "sent"] {
        let r = s.twilio.post_status(&first, status, None).await;
        assert!(r.status < 300);
    }
    let rs = recipients(&s, &outreach).await;
    let delivered = by_address(&rs, "+14155552611");
    assert_eq!(delivered["state"], "delivered");
    assert_eq!(delivered["updated_at"], updated);

    // Progress counts them.
    let o = s.get(&format!("/api/v1/outreaches/{outreach}")).await;
    assert_eq!(o["progress"]["delivered"], 1, "{o}");
    assert_eq!(o["progress"]["failed"], 1, "{o}");

    // A report for a message Herald has not recorded yet is kept (not lost, not an error).
    let (url, mut params) = s.twilio.status_params(&first, "delivered", None);
    for p in params.iter_mut() {
        if p.0 == "MessageSid" || p.0 == "SmsSid" {
            p.1 = "SM0000000000000000000000000000beef".into();
        }
    }
    let r = s.twilio.post_webhook(&url, &params, None).await;
    assert!(r.status < 300, "{r:?}");
}

async fn stop_mid_outreach_skips_the_number_for_that_sender_only(db: TestStore) {
    let s = setup(db).await;
    let stopper = "+14155552621";
    // Today's outreach reaches the customer; next week's (same sender) and another sender's
    // are still waiting when they text STOP.
    let today = launch(&s.app, &s.campaign, &[stopper, "+14155552622"], None).await;
    run(&s, &today).await;
    let next_week = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24 * 6)).to_string();
    let later = launch(
        &s.app,
        &s.campaign,
        &["+14155552623", stopper, "+14155552624"],
        Some(&next_week),
    )
    .await;
    let inbox = json!({"id": s.inbox});
    let other_campaign = campaign(&s.app, &inbox, OTHER_SENDER, "Other line").await;
    let other = launch(&s.app, &other_campaign, &[stopper], Some(&next_week)).await;

    let r = s
        .twilio
        .send_inbound(&s.sms_url(), stopper, SENDER, "  Stop \n")
        .await;
    assert_eq!(r.reply.status, 200, "{:?}", r.reply);

    let rs = recipients(&s, &later).await;
    let skipped = by_address(&rs, stopper);
    assert_eq!(skipped["state"], "skipped", "{skipped}");
    assert_eq!(skipped["skip_reason"], "opted_out");
    assert_eq!(by_address(&rs, "+14155552623")["state"], "pending");
    // Another sender's outreach still reaches them: a carrier STOP is per sender.
    let rs = recipients(&s, &other).await;
    assert_eq!(by_address(&rs, stopper)["state"], "pending");

    // The suppression is listed for that sender.
    let list = s.get("/api/v1/suppressions?address=%2B14155552621").await;
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list}");
    assert!(items[0]["sender_id"].is_string());
    assert!(
        items[0]["reason"].as_str().unwrap().contains("STOP"),
        "{list}"
    );

    // An upload after the STOP reports the number as suppressed.
    let (_, upload) = s
        .app
        .upload(
            &s.campaign,
            &format!("phone,first_name\n{stopper},Stu\n+14155552625,Pat\n"),
            &[],
        )
        .await;
    assert_eq!(upload["summary"]["suppressed"], 1, "{upload}");
    let upload_id = upload["id"].as_str().unwrap().to_string();
    run(&s, &upload_id).await;
    assert_eq!(
        sids_to(&s.twilio, stopper).len(),
        1,
        "the number got only the message it received before STOP"
    );
    assert_eq!(sids_to(&s.twilio, "+14155552625").len(), 1);

    // An agent's reply to them is refused with the reason, and nothing is sent.
    let view = conversation_of(&s, stopper).await;
    assert_eq!(view["opted_out"], true);
    let id = view["conversation"]["id"].as_str().unwrap();
    let before = s.twilio.accepted().len();
    let agent = s.app.agent.clone();
    let (st, problem, _) = s
        .app
        .call(
            Some(&agent),
            Method::POST,
            &format!("/api/v1/conversations/{id}/messages"),
            Some(json!({"body": "Are you sure?"})),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{problem}");
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("opted out"), "{detail}");
    assert!(detail.contains("START"), "{detail}");
    assert_eq!(s.twilio.accepted().len(), before);
}

/// A customer who answers an outreach's text with STOP opted out of that outreach: its report
/// counts them beside the number the provider refused as opted out (21610), each recipient
/// once however often they say it, and not the customer who answered something else; the
/// opt-out rate is over all recipients. A later outreach the STOP skipped the number in counts
/// it as its own; the campaign's report and figures CSV add both up.
async fn a_stop_reply_counts_as_an_opt_out_of_its_outreach(db: TestStore) {
    let s = setup(db).await;
    let (refused, stopper, twice, thanks, quiet) = (
        "+14155552631",
        "+14155552632",
        "+14155552633",
        "+14155552634",
        "+14155552635",
    );
    s.twilio
        .fail_number(refused, 21610, "Attempt to send to unsubscribed recipient");
    let today = launch(
        &s.app,
        &s.campaign,
        &[refused, stopper, twice, thanks, quiet],
        None,
    )
    .await;
    run(&s, &today).await;
    let next_week = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24 * 6)).to_string();
    let later = launch(
        &s.app,
        &s.campaign,
        &[stopper, "+14155552636"],
        Some(&next_week),
    )
    .await;
    let report = s.get(&format!("/api/v1/outreaches/{today}/report")).await;
    assert_eq!(report["opted_out"], 1, "the provider's opt-out: {report}");

    for (from, body) in [
        (stopper, "STOP"),
        (twice, "stop"),
        (twice, "UNSUBSCRIBE"),
        (thanks, "Thanks, got it"),
    ] {
        let r = s
            .twilio
            .send_inbound(&s.sms_url(), from, SENDER, body)
            .await;
        assert_eq!(r.reply.status, 200, "{body}: {:?}", r.reply);
    }

    let report = s.get(&format!("/api/v1/outreaches/{today}/report")).await;
    assert_eq!(report["opted_out"], 3, "21610, STOP, STOP twice: {report}");
    assert_eq!(report["progress"]["total"], 5, "{report}");
    assert_eq!(report["progress"]["replied"], 3, "{report}");
    let rs = recipients(&s, &today).await;
    assert_eq!(by_address(&rs, stopper)["state"], "replied");
    assert_eq!(by_address(&rs, refused)["skip_reason"], "opted_out");
    let report = s.get(&format!("/api/v1/outreaches/{later}/report")).await;
    assert_eq!(report["opted_out"], 1, "skipped by the STOP: {report}");
    let report = s
        .get(&format!("/api/v1/campaigns/{}/report", s.campaign))
        .await;
    assert_eq!(
        (&report["opted_out"], &report["progress"]["total"]),
        (&json!(4), &json!(7)),
        "{report}"
    );

    // The rates: 3 of 5, 1 of 2, 4 of 7.
    let (st, csv, _) = s
        .app
        .call(
            Some(s.app.admin.as_str()),
            Method::GET,
            &format!("/api/v1/campaigns/{}/report.csv", s.campaign),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{csv}");
    let csv = csv.as_str().unwrap().to_string();
    let lines: Vec<Vec<&str>> = csv.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(lines.len(), 4, "{csv}");
    let column = |row: &[&str], name: &str| -> String {
        let at = lines[0]
            .iter()
            .position(|c| *c == name)
            .unwrap_or_else(|| panic!("no column {name}: {csv}"));
        row[at].to_string()
    };
    let figures = |row: &[&str]| -> Vec<String> {
        [
            "recipients",
            "replied",
            "opted_out",
            "skipped",
            "reply_rate_pct",
            "opt_out_rate_pct",
        ]
        .iter()
        .map(|c| column(row, c))
        .collect()
    };
    assert_eq!(
        (lines[1][0], lines[2][0], lines[3][0]),
        (today.as_str(), later.as_str(), "total")
    );
    assert_eq!(
        figures(&lines[1]),
        ["5", "3", "3", "1", "75.0", "60.0"],
        "{csv}"
    );
    assert_eq!(
        figures(&lines[2]),
        ["2", "0", "1", "1", "", "50.0"],
        "{csv}"
    );
    assert_eq!(
        figures(&lines[3]),
        ["7", "3", "4", "2", "75.0", "57.1"],
        "{csv}"
    );

    let admin = common::web::sign_in(&s.app, "admin@example.com", herald_core::Role::Admin).await;
    let html = admin.page(&format!("/outreaches/{today}")).await;
    let rate = common::web::element(&html, "opt-out-rate").unwrap_or_default();
    assert!(rate.contains(">60.0%<"), "{rate}");
    let html = admin.page(&format!("/campaigns/{}", s.campaign)).await;
    let rate = common::web::element(&html, "campaign-opt-out-rate").unwrap_or_default();
    assert!(rate.contains(">57.1%<"), "{rate}");
}

async fn keywords_are_single_words_in_any_case(db: TestStore) {
    let s = setup(db).await;
    let outreach = launch(
        &s.app,
        &s.campaign,
        &[
            "+14155552631",
            "+14155552632",
            "+14155552633",
            "+14155552634",
        ],
        None,
    )
    .await;
    run(&s, &outreach).await;
    for (from, body) in [
        ("+14155552631", "stop"),
        ("+14155552632", "Please stop texting me"),
        ("+14155552633", "  UnSubscribe  "),
        (
            "+14155552634",
            "I will cancel my order if this happens again",
        ),
    ] {
        let r = s
            .twilio
            .send_inbound(&s.sms_url(), from, SENDER, body)
            .await;
        assert_eq!(r.reply.status, 200, "{body}: {:?}", r.reply);
    }
    let suppressed: Vec<String> = s.get("/api/v1/suppressions").await["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["address"].as_str().unwrap().to_string())
        .collect();
    let mut suppressed = suppressed;
    suppressed.sort();
    assert_eq!(suppressed, vec!["+14155552631", "+14155552633"]);
    // Every message, keyword or not, is on its conversation for the agents.
    for (from, body) in [
        ("+14155552632", "Please stop texting me"),
        ("+14155552631", "stop"),
    ] {
        let view = conversation_of(&s, from).await;
        let last = view["messages"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(last["body"], body);
    }
}

/// The attack of the report: Twilio's signature runs names and values together, so a captured
/// START re-split as `MessageSi` = `dSM…` is validly signed and has no `MessageSid` for the
/// replay check to recognise. It is refused (400) before anything happens, and a later STOP
/// holds; so is a START whose sid was cut short.
async fn a_resplit_replay_of_start_is_refused_and_the_stop_holds(db: TestStore) {
    let s = setup(db).await;
    let number = "+14155552651";
    let outreach = launch(&s.app, &s.campaign, &[number], None).await;
    run(&s, &outreach).await;

    let start = s
        .twilio
        .send_inbound(&s.sms_url(), number, SENDER, "START")
        .await;
    assert_eq!(start.reply.status, 200);
    let stop = s
        .twilio
        .send_inbound(&s.sms_url(), number, SENDER, "STOP")
        .await;
    assert_eq!(stop.reply.status, 200);
    assert_eq!(conversation_of(&s, number).await["opted_out"], true);

    // The captured START, re-split: the same signature, no MessageSid.
    let resplit: Vec<(String, String)> = start
        .params
        .iter()
        .map(|(k, v)| match k.as_str() {
            "MessageSid" => ("MessageSi".to_string(), format!("d{v}")),
            _ => (k.clone(), v.clone()),
        })
        .collect();
    let signature = s.twilio.sign(&s.sms_url(), &start.params);
    assert_eq!(
        s.twilio.sign(&s.sms_url(), &resplit),
        signature,
        "the re-split request is validly signed"
    );
    let r = s
        .twilio
        .post_webhook(&s.sms_url(), &resplit, Some(&signature))
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.body.contains("MessageSi"), "{r:?}");

    // Nor is a START whose MessageSid is not of Twilio's form (here: one cut short, with the
    // rest run into the next parameter's name).
    let mut short = start.params.clone();
    for (k, v) in short.iter_mut() {
        if k == "MessageSid" {
            v.truncate(10);
        }
    }
    let r = s.twilio.post_webhook(&s.sms_url(), &short, None).await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.body.contains("MessageSid"), "{r:?}");

    // The STOP holds: still opted out, one START and one STOP on the timeline.
    let view = conversation_of(&s, number).await;
    assert_eq!(view["opted_out"], true, "{view}");
    let inbound: Vec<&str> = view["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["direction"] == "inbound")
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(inbound, ["START", "STOP"], "{view}");
    assert_eq!(
        s.get("/api/v1/suppressions").await["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

async fn start_lifts_the_opt_out_and_help_answers(db: TestStore) {
    let s = setup(db).await;
    let number = "+14155552641";
    let outreach = launch(&s.app, &s.campaign, &[number], None).await;
    run(&s, &outreach).await;

    let help = s
        .twilio
        .send_inbound(&s.sms_url(), number, SENDER, "help")
        .await;
    assert_eq!(help.reply.status, 200);
    assert!(
        help.reply
            .content_type
            .as_deref()
            .is_some_and(|c| c.starts_with("text/xml")),
        "{:?}",
        help.reply
    );
    assert!(
        help.reply.body.contains(
            "<Message>Acme Care: call 415-555-0100 for help. Reply STOP to opt out.</Message>"
        ),
        "{}",
        help.reply.body
    );
    // The automatic answer is on the timeline too.
    let view = conversation_of(&s, number).await;
    let last = view["messages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["author"], "auto");
    assert_eq!(last["body"], HELP);

    s.twilio
        .send_inbound(&s.sms_url(), number, SENDER, "STOP")
        .await;
    assert_eq!(conversation_of(&s, number).await["opted_out"], true);
    let start = s
        .twilio
        .send_inbound(&s.sms_url(), number, SENDER, "Start")
        .await;
    assert_eq!(start.reply.status, 200);
    assert_eq!(conversation_of(&s, number).await["opted_out"], false);
    let list = s.get("/api/v1/suppressions").await;
    assert!(list["items"].as_array().unwrap().is_empty(), "{list}");

    // After START the agent may write again.
    let id = conversation_of(&s, number).await["conversation"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (st, v) = s
        .app
        .admin(
            Method::POST,
            &format!("/api/v1/conversations/{id}/messages"),
            Some(json!({"body": "Welcome back!"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(
        s.twilio.accepted().last().unwrap().body.as_deref(),
        Some("Welcome back!")
    );
}

async fn forged_and_missing_signatures_change_nothing(db: TestStore) {
    let s = setup(db).await;
    let number = "+14155552651";
    let outreach = launch(&s.app, &s.campaign, &[number], None).await;
    run(&s, &outreach).await;
    let sid = sids_to(&s.twilio, number).pop().unwrap();

    let params = |body: &str| -> Vec<(String, String)> {
        [
            ("MessageSid", "SM11111111111111111111111111111111"),
            ("From", number),
            ("To", SENDER),
            ("Body", body),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    };
    // Signed with another token; signed for other parameters; no signature at all; signed for
    // another URL.
    let other_token =
        herald_channels::twilio_signature("not-the-token", &s.sms_url(), &params("STOP"));
    let other_params = s.twilio.sign(&s.sms_url(), &params("hello"));
    let other_url = s.twilio.sign(
        "https://elsewhere.example/webhooks/twilio/sms",
        &params("STOP"),
    );
    for signature in [
        other_token.as_str(),
        other_params.as_str(),
        "",
        other_url.as_str(),
    ] {
        let r = s
            .twilio
            .post_webhook(&s.sms_url(), &params("STOP"), Some(signature))
            .await;
        assert_eq!(r.status, 403, "{signature:?}: {r:?}");
    }
    assert!(
        conversations(&s).await.is_empty(),
        "a forged text was recorded"
    );
    let list = s.get("/api/v1/suppressions").await;
    assert!(
        list["items"].as_array().unwrap().is_empty(),
        "a forged STOP suppressed: {list}"
    );

    // A forged status callback changes nothing either.
    let (url, status_params) = s.twilio.status_params(&sid, "failed", Some("30006"));
    let forged = s
        .twilio
        .post_webhook(&url, &status_params, Some("c2lnbmF0dXJl"))
        .await;
    assert_eq!(forged.status, 403);
    let missing = s.twilio.post_webhook(&url, &status_params, Some("")).await;
    assert_eq!(missing.status, 403);
    let rs = recipients(&s, &outreach).await;
    assert_eq!(by_address(&rs, number)["state"], "sent");

    // A replayed STOP (same MessageSid) is one opt-out and one message.
    let stop = s
        .twilio
        .send_inbound(&s.sms_url(), number, SENDER, "STOP")
        .await;
    assert_eq!(stop.reply.status, 200);
    let again = s
        .twilio
        .post_webhook(&s.sms_url(), &stop.params, None)
        .await;
    assert_eq!(again.status, 200);
    let view = conversation_of(&s, number).await;
    let inbound = view["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["direction"] == "inbound")
        .count();
    assert_eq!(inbound, 1, "{view}");
    assert_eq!(
        s.get("/api/v1/suppressions").await["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // A text to a number that is not a sender is refused, and says why.
    let stray = s
        .twilio
        .send_inbound(&s.sms_url(), number, "+14155550777", "hello?")
        .await;
    assert_eq!(stray.reply.status, 404);
    assert!(
        stray.reply.body.contains("+14155550777"),
        "{:?}",
        stray.reply
    );
}

async fn suppressions_are_managed_through_the_api(db: TestStore) {
    let s = setup(db).await;
    let next_week = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24 * 6)).to_string();
    let outreach = launch(
        &s.app,
        &s.campaign,
        &["+14155552661", "+14155552662"],
        Some(&next_week),
    )
    .await;
    let (st, created) = s
        .app
        .admin(
            Method::POST,
            "/api/v1/suppressions",
            Some(json!({"address": "(415) 555-2661", "region": "US", "reason": "asked by phone"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{created}");
    assert_eq!(created["suppression"]["address"], "+14155552661");
    assert_eq!(created["suppression"]["sender_id"], Value::Null);
    assert_eq!(created["skipped_recipients"], 1);
    let rs = recipients(&s, &outreach).await;
    assert_eq!(by_address(&rs, "+14155552661")["state"], "skipped");
    assert_eq!(by_address(&rs, "+14155552662")["state"], "pending");

    // Adding it again is not an error and creates nothing.
    let (st, again) = s
        .app
        .admin(
            Method::POST,
            "/api/v1/suppressions",
            Some(json!({"address": "+14155552661"})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{again}");
    assert_eq!(again["created"], false);
    assert_eq!(again["suppression"]["id"], created["suppression"]["id"]);

    // Bad input is refused with what to fix.
    for (body, field) in [
        (json!({"address": "not a number"}), "address"),
        (
            json!({"address": "+14155552663", "sender_id": Uuid::now_v7()}),
            "sender_id",
        ),
    ] {
        let (st, problem) = s
            .app
            .admin(Method::POST, "/api/v1/suppressions", Some(body))
            .await;
        assert!(st.is_client_error(), "{problem}");
        assert!(common::has_error(&problem, field, ""), "{problem}");
    }
    // Agents may read the list, not change it.
    let agent = s.app.agent.clone();
    let (st, _, _) = s
        .app
        .call(
            Some(&agent),
            Method::POST,
            "/api/v1/suppressions",
            Some(json!({"address": "+14155552664"})),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _, _) = s
        .app
        .call(Some(&agent), Method::GET, "/api/v1/suppressions", None)
        .await;
    assert_eq!(st, StatusCode::OK);

    let id = created["suppression"]["id"].as_str().unwrap();
    let one = s.get(&format!("/api/v1/suppressions/{id}")).await;
    assert_eq!(one["reason"], "asked by phone");
    let (st, _) = s
        .app
        .admin(Method::DELETE, &format!("/api/v1/suppressions/{id}"), None)
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = s
        .app
        .admin(Method::GET, &format!("/api/v1/suppressions/{id}"), None)
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

/// The numbers a newcomer's upload (default region US) stored as strangers' numbers: each is
/// stored, texted and answered as itself, and a German customer's reply lands on the German
/// customer's conversation.
async fn international_numbers_are_their_own_numbers_and_their_replies_land_with_them(
    db: TestStore,
) {
    let s = setup(db).await;
    let csv = "phone,first_name\n\
               +49 1512 3456789,Jonas\n\
               +86 139 1234 5678,Li\n\
               +55 11 91234 5678,Ana\n\
               +39 391 231 2312,Gia\n\
               (415) 555-2671,Sam\n";
    let (status, o) = s
        .app
        .upload(&s.campaign, csv, &[("default_region", "US")])
        .await;
    assert_eq!(status, StatusCode::CREATED, "{o}");
    assert_eq!(o["summary"]["accepted"], 5, "{o}");
    let outreach = o["id"].as_str().unwrap().to_string();
    let mut stored: Vec<String> = recipients(&s, &outreach)
        .await
        .iter()
        .map(|r| r["address"].as_str().unwrap().to_string())
        .collect();
    stored.sort();
    assert_eq!(
        stored,
        [
            "+14155552671",
            "+393912312312",
            "+4915123456789",
            "+5511912345678",
            "+8613912345678"
        ]
    );
    run(&s, &outreach).await;
    let mut texted: Vec<String> = s.twilio.accepted().into_iter().map(|m| m.to).collect();
    texted.sort();
    assert_eq!(texted, stored, "each number texted once, as itself");

    let reply = s
        .twilio
        .send_inbound(
            &s.sms_url(),
            "+4915123456789",
            SENDER,
            "Danke, wann kommt es?",
        )
        .await;
    assert_eq!(reply.reply.status, 200, "{:?}", reply.reply);
    let conversation = conversation_of(&s, "+4915123456789").await;
    let bodies: Vec<&str> = conversation["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        bodies,
        [
            "Hi Jonas, your order is late. Reply to talk to us.",
            "Danke, wann kommt es?"
        ],
        "{conversation}"
    );
    assert_eq!(conversations(&s).await.len(), 1);
}
