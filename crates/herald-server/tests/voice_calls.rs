//! Voice scripts (#17 item 5), on SQLite and PostgreSQL: a voice campaign's call reaches a fake
//! Twilio over real HTTP saying the answer's voice script (not its SMS body), and every TwiML
//! Herald then answers Twilio's signed callbacks with — who answered, the digit pressed, the
//! outcome of the call to the agent — speaks in the campaign's spoken language and voice, with
//! its own press-1 prompt and agent-unavailable message, XML-escaped. The API keeps the new
//! fields and refuses a bad voice with a field error.

#![allow(clippy::disallowed_methods)] // tests set up data relative to the real time

mod common;

use common::{App, has_error};
use herald_channels::{Transports, TwilioTransport};
use herald_core::Provider;
use herald_engine::{Replies, RepliesConfig};
use herald_store::testing::TestStore;
use herald_testkit::FakeTwilio;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::sync::Arc;

herald_store::on_both_backends!(
    a_voice_call_says_the_script_in_the_campaigns_voice_and_prompts,
    the_api_keeps_voice_settings_and_refuses_a_bad_voice,
);

const SENDER: &str = "+14155550100";
const AGENT: &str = "+14155550142";
const ADMIN_PHONE: &str = "+14155559999";
const CALL: &str = "CA0123456789abcdef0123456789abcdef";
const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";

struct Setup {
    app: App,
    twilio: FakeTwilio,
    base: String,
    sender: Value,
    answer: Value,
}

fn schedule() -> Value {
    let all_day = json!(["00:00-24:00"]);
    json!({"timezone": "UTC", "days": {"mon": all_day, "tue": all_day,
        "wed": all_day, "thu": all_day, "fri": all_day, "sat": all_day, "sun": all_day}})
}

async fn setup(db: TestStore) -> Setup {
    let twilio = FakeTwilio::start();
    let mut public = String::new();
    let app = common::start_at(Arc::new(db), |state, base| {
        public = base.to_string();
        let mut transports = Transports::new();
        transports.insert(
            Provider::Twilio,
            Arc::new(TwilioTransport::new(&twilio.config().with_public_url(base)).unwrap()),
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
    let inbox = app
        .create(
            "/api/v1/inboxes",
            json!({"name": "Care", "agent_number": AGENT}),
        )
        .await;
    let sender = app
        .create(
            "/api/v1/senders",
            json!({"channel": "voice", "address": SENDER, "inbox_id": inbox["id"],
                   "provider": "twilio"}),
        )
        .await;
    let answer = app
        .create(
            "/api/v1/answers",
            json!({"name": "Late order", "variants": [{"language": "en",
                   "body": "Reply here: order {{ order }} is late.",
                   "voice": "Hello {{ first_name }}, your order {{ order }} is late & we're sorry."}]}),
        )
        .await;
    Setup {
        base: public.trim_end_matches('/').to_string(),
        app,
        twilio,
        sender,
        answer,
    }
}

/// POSTs Twilio's form to `url` (Herald's public URL, as Twilio calls it), signed as Twilio
/// signs; the TwiML answered.
async fn callback(s: &Setup, url: &str, form: &[(&str, &str)]) -> String {
    let signature = s.twilio.sign(url, form);
    let res = s
        .app
        .http
        .post(url)
        .header("X-Twilio-Signature", signature)
        .form(form)
        .send()
        .await
        .unwrap();
    let status = res.status();
    let body = res.text().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{url}: {body}");
    body
}

/// The value of the first `name="…"` attribute in `xml`, unescaped.
fn attribute(xml: &str, name: &str) -> String {
    let start = xml.find(&format!("{name}=\"")).expect(name) + name.len() + 2;
    let end = start + xml[start..].find('"').unwrap();
    xml[start..end].replace("&amp;", "&")
}

async fn a_voice_call_says_the_script_in_the_campaigns_voice_and_prompts(db: TestStore) {
    let s = setup(db).await;
    let campaign = s
        .app
        .create(
            "/api/v1/campaigns",
            json!({"name": "Late order call", "channel": "voice", "language": "en",
                   "sender_id": s.sender["id"], "answer_id": s.answer["id"],
                   "quiet_hours": false, "schedule": schedule(),
                   "voice_settings": {"voice": "Polly.Amy", "spoken_language": "en-GB",
                       "press_one_prompt": "Press 1 for <Care> & more.",
                       "agent_unavailable": "Nobody's free; we'll call back."}}),
        )
        .await;
    let id = campaign["id"].as_str().unwrap();
    let (st, sent) = s
        .app
        .admin(
            Method::POST,
            &format!("/api/v1/campaigns/{id}/test-sends"),
            Some(json!({"to": ADMIN_PHONE, "variables": {"first_name": "Ada", "order": "A-17"}})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{sent}");
    assert_eq!(sent["state"], "sent", "{sent}");

    // The call reached the fake Twilio, fetching its TwiML from Herald once it knows who answered.
    let calls: Vec<_> = s
        .twilio
        .accepted()
        .into_iter()
        .filter(|m| m.is_call())
        .collect();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].to, ADMIN_PHONE);
    let url = calls[0].url.clone().expect("the call's TwiML URL");
    assert!(
        url.starts_with(&format!("{}/webhooks/twilio/voice?", s.base)),
        "{url}"
    );
    assert!(!url.contains("Reply+here"), "{url}");

    // A person answers: the voice script, then the campaign's press-1 prompt, in its language
    // and voice.
    let say = "<Say language=\"en-GB\" voice=\"Polly.Amy\">";
    let person = callback(
        &s,
        &url,
        &[
            ("CallSid", CALL),
            ("AccountSid", ACCOUNT),
            ("AnsweredBy", "human"),
        ],
    )
    .await;
    assert!(
        person.starts_with(&format!(
            "<Response>{say}Hello Ada, your order A-17 is late &amp; we&apos;re sorry.</Say><Gather "
        )),
        "{person}"
    );
    assert!(
        person.ends_with(&format!(
            "{say}Press 1 for &lt;Care&gt; &amp; more.</Say></Gather></Response>"
        )),
        "{person}"
    );
    assert!(!person.contains("Reply here"), "{person}");
    // An answering machine is left the script only, in the same voice.
    let machine = callback(
        &s,
        &url,
        &[
            ("CallSid", CALL),
            ("AccountSid", ACCOUNT),
            ("AnsweredBy", "machine_end_beep"),
        ],
    )
    .await;
    assert_eq!(
        machine,
        format!(
            "<Response>{say}Hello Ada, your order A-17 is late &amp; we&apos;re sorry.</Say></Response>"
        )
    );

    // The person presses 1: connected to the agent, the outcome posted back to Herald.
    let gather = attribute(&person, "action");
    assert!(
        gather.starts_with(&format!("{}/webhooks/twilio/voice/gather?", s.base)),
        "{gather}"
    );
    let dial = callback(
        &s,
        &gather,
        &[("CallSid", CALL), ("AccountSid", ACCOUNT), ("Digits", "1")],
    )
    .await;
    assert!(
        dial.starts_with(&format!(
            "<Response>{say}Connecting you to an agent.</Say><Dial action=\""
        )),
        "{dial}"
    );
    assert!(
        dial.ends_with(&format!(">{AGENT}</Dial></Response>")),
        "{dial}"
    );
    let dialed = attribute(&dial, "action");
    assert!(
        dialed.starts_with(&format!("{}/webhooks/twilio/voice/dialed?", s.base)),
        "{dialed}"
    );

    // Nobody took the call: the campaign's agent-unavailable message.
    for status in ["no-answer", "busy", "failed"] {
        let unavailable = callback(
            &s,
            &dialed,
            &[
                ("CallSid", CALL),
                ("AccountSid", ACCOUNT),
                ("DialCallStatus", status),
            ],
        )
        .await;
        assert_eq!(
            unavailable,
            format!(
                "<Response>{say}Nobody&apos;s free; we&apos;ll call back.</Say><Hangup/></Response>"
            ),
            "{status}"
        );
    }
    // After a call the agent took, Herald only hangs up.
    let done = callback(
        &s,
        &dialed,
        &[
            ("CallSid", CALL),
            ("AccountSid", ACCOUNT),
            ("DialCallStatus", "completed"),
        ],
    )
    .await;
    assert_eq!(done, "<Response><Hangup/></Response>");

    // Settings changed since the call was placed are what the next callback says.
    let mut changed = campaign.clone();
    changed["voice_settings"] = json!({"agent_unavailable": "Try again tomorrow."});
    let (st, v) = s
        .app
        .admin(
            Method::PUT,
            &format!("/api/v1/campaigns/{id}"),
            Some(changed),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let unavailable = callback(
        &s,
        &dialed,
        &[
            ("CallSid", CALL),
            ("AccountSid", ACCOUNT),
            ("DialCallStatus", "no-answer"),
        ],
    )
    .await;
    assert_eq!(
        unavailable,
        "<Response><Say language=\"en\">Try again tomorrow.</Say><Hangup/></Response>"
    );
}

async fn the_api_keeps_voice_settings_and_refuses_a_bad_voice(db: TestStore) {
    let s = setup(db).await;
    // The OpenAPI document describes the new fields.
    let (_, spec) = s.app.admin(Method::GET, "/api/v1/openapi.json", None).await;
    let schemas = &spec["components"]["schemas"];
    for field in [
        "voice",
        "spoken_language",
        "press_one_prompt",
        "agent_unavailable",
    ] {
        assert!(
            schemas["VoiceSettings"]["properties"][field].is_object(),
            "{field}: {}",
            schemas["VoiceSettings"]
        );
    }
    assert!(
        schemas["AnswerVariantInput"]["properties"]["voice"].is_object(),
        "{}",
        schemas["AnswerVariantInput"]
    );
    assert_eq!(
        s.answer["variants"][0]["voice"],
        "Hello {{ first_name }}, your order {{ order }} is late & we're sorry."
    );
    let (_, answer) = s
        .app
        .admin(
            Method::GET,
            &format!("/api/v1/answers/{}", s.answer["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(
        answer["variants"][0]["voice"],
        s.answer["variants"][0]["voice"]
    );
    // A misspelt voice script is refused as a body is, on its own field.
    let (st, v) = s
        .app
        .admin(
            Method::POST,
            "/api/v1/answers",
            Some(
                json!({"name": "Broken", "variants": [{"language": "en", "body": "Hi",
                        "voice": "Hi {{ first_name "}]}),
            ),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(has_error(&v, "variants[0].voice", ""), "{v}");

    let body = json!({"name": "Calls", "channel": "voice", "language": "en",
        "sender_id": s.sender["id"], "answer_id": s.answer["id"], "schedule": schedule(),
        "voice_settings": {"voice": " alice ", "spoken_language": "es_mx",
            "press_one_prompt": "Pulse 1."}});
    let created = s.app.create("/api/v1/campaigns", body.clone()).await;
    let expected = json!({"voice": "alice", "spoken_language": "es-MX",
        "press_one_prompt": "Pulse 1.", "agent_unavailable": null});
    assert_eq!(created["voice_settings"], expected, "{created}");
    let (_, got) = s
        .app
        .admin(
            Method::GET,
            &format!("/api/v1/campaigns/{}", created["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(got["voice_settings"], expected, "{got}");

    for (settings, field, needle) in [
        (
            json!({"voice": "Polly Joanna\"/>"}),
            "voice_settings.voice",
            "letters, digits",
        ),
        (
            json!({"voice": "a".repeat(65)}),
            "voice_settings.voice",
            "64",
        ),
        (
            json!({"spoken_language": "english!"}),
            "voice_settings.spoken_language",
            "",
        ),
        (
            json!({"press_one_prompt": "x".repeat(501)}),
            "voice_settings.press_one_prompt",
            "500",
        ),
    ] {
        let mut bad = body.clone();
        bad["name"] = json!("Refused");
        bad["voice_settings"] = settings.clone();
        let (st, v) = s
            .app
            .admin(Method::POST, "/api/v1/campaigns", Some(bad))
            .await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{settings}: {v}");
        assert!(has_error(&v, field, needle), "{settings}: {v}");
    }
    // Only voice campaigns speak.
    let mut sms = body.clone();
    sms["channel"] = json!("sms");
    let (st, v) = s
        .app
        .admin(Method::POST, "/api/v1/campaigns", Some(sms))
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        has_error(&v, "voice_settings", "only voice campaigns"),
        "{v}"
    );
}
