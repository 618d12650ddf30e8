#![allow(clippy::disallowed_methods)] // tests set up data relative to the real time

use crate::common::{closed_port, email, message, phone, sms};
use herald_channels::{Transport, TwilioConfig, TwilioTransport, codes};
use herald_core::{Channel, E164, Language};
use herald_testkit::{FakeHttp, Reply};
use std::time::Duration;

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "twilio-auth-token-secret";

fn fake_twilio() -> FakeHttp {
    FakeHttp::start(Reply::new(
        201,
        r#"{"sid":"SM00000000000000000000000000000001","status":"queued"}"#,
    ))
}

fn config(base: &str) -> TwilioConfig {
    let mut c = TwilioConfig::new(SID, TOKEN);
    c.base_url = base.to_string();
    c.with_public_url("https://herald.example.com")
}

fn transport(base: &str) -> TwilioTransport {
    TwilioTransport::new(&config(base)).expect("twilio transport")
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

#[tokio::test]
async fn sms_posts_the_exact_form_with_basic_auth() {
    let fake = fake_twilio();
    let twilio = transport(&fake.base_url());
    let body = "Hi Jane & co: 50% off = today+tomorrow ✓";
    let accepted = twilio.send(&sms(body)).await.expect("accepted");
    assert_eq!(
        accepted.provider_message_id.as_deref(),
        Some("SM00000000000000000000000000000001")
    );

    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, format!("/2010-04-01/Accounts/{SID}/Messages.json"));
    assert_eq!(r.header("authorization"), Some(basic(SID, TOKEN)));
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        r.form(),
        pairs(&[
            ("To", "+14155550199"),
            ("From", "+14155550100"),
            ("Body", body),
            (
                "StatusCallback",
                "https://herald.example.com/webhooks/twilio/status"
            ),
        ])
    );
}

#[tokio::test]
async fn no_status_callback_without_a_public_url() {
    let fake = fake_twilio();
    let mut c = TwilioConfig::new(SID, TOKEN);
    c.base_url = fake.base_url();
    let twilio = TwilioTransport::new(&c).expect("transport");
    twilio.send(&sms("hello")).await.expect("accepted");
    assert_eq!(
        fake.requests()[0].form(),
        pairs(&[
            ("To", "+14155550199"),
            ("From", "+14155550100"),
            ("Body", "hello")
        ])
    );
}

#[tokio::test]
async fn a_voice_call_speaks_the_message_and_offers_an_agent() {
    let fake = FakeHttp::start(Reply::new(
        201,
        r#"{"sid":"CA00000000000000000000000000000009"}"#,
    ));
    let twilio = transport(&fake.base_url());
    let mut call = message(
        Channel::Voice,
        phone("+14155550100"),
        phone("+14155550199"),
        "Your appointment is tomorrow at 10 & not later.",
    );
    call.agent_number = Some(E164::parse("+14155550142", None).expect("agent"));
    let accepted = twilio.send(&call).await.expect("accepted");
    assert_eq!(
        accepted.provider_message_id.as_deref(),
        Some("CA00000000000000000000000000000009")
    );

    let r = &fake.requests()[0];
    assert_eq!(r.path, format!("/2010-04-01/Accounts/{SID}/Calls.json"));
    assert_eq!(r.header("authorization"), Some(basic(SID, TOKEN)));
    // The call fetches its TwiML from Herald once answering-machine detection has decided.
    let answer_url = concat!(
        "https://herald.example.com/webhooks/twilio/voice",
        "?campaign_id=01900000-0000-7000-8000-000000000001",
        "&outreach_id=01900000-0000-7000-8000-000000000002",
        "&recipient_id=3&language=en-US",
        "&body=Your+appointment+is+tomorrow+at+10+%26+not+later.",
        "&agent=%2B14155550142"
    );
    assert_eq!(
        r.form(),
        pairs(&[
            ("To", "+14155550199"),
            ("From", "+14155550100"),
            ("Url", answer_url),
            ("Method", "POST"),
            ("MachineDetection", "Enable"),
            (
                "StatusCallback",
                "https://herald.example.com/webhooks/twilio/status"
            ),
        ])
    );

    // What Herald answers at that URL: a person hears the message and the offer of an agent...
    let gather = herald_channels::gather_url_for(
        "https://herald.example.com",
        call.campaign_id,
        call.outreach_id,
        call.recipient_id,
        call.agent_number.as_ref().unwrap(),
        &call.language,
    );
    let speech = herald_channels::Speech::new(&call.language, &call.voice_settings);
    let person = concat!(
        "<Response>",
        "<Say language=\"en-US\">Your appointment is tomorrow at 10 &amp; not later.</Say>",
        "<Gather numDigits=\"1\" timeout=\"5\" action=\"https://herald.example.com/webhooks/twilio/voice/gather",
        "?campaign_id=01900000-0000-7000-8000-000000000001",
        "&amp;outreach_id=01900000-0000-7000-8000-000000000002",
        "&amp;recipient_id=3",
        "&amp;agent=%2B14155550142&amp;language=en-US\" method=\"POST\">",
        "<Say language=\"en-US\">Press 1 to speak to an agent.</Say>",
        "</Gather>",
        "</Response>"
    );
    for human in ["human", "unknown", ""] {
        assert_eq!(
            herald_channels::voice_answer_twiml(human, &call.body, &speech, Some(&gather)),
            person,
            "{human}"
        );
    }
    // ...an answering machine the message only.
    let machine = concat!(
        "<Response>",
        "<Say language=\"en-US\">Your appointment is tomorrow at 10 &amp; not later.</Say>",
        "</Response>"
    );
    for answered_by in [
        "machine_start",
        "machine_end_beep",
        "machine_end_silence",
        "fax",
    ] {
        assert_eq!(
            herald_channels::voice_answer_twiml(answered_by, &call.body, &speech, Some(&gather)),
            machine,
            "{answered_by}"
        );
    }
}

#[tokio::test]
async fn a_call_without_an_agent_number_only_speaks_the_message() {
    let fake = FakeHttp::start(Reply::new(201, r#"{"sid":"CA1"}"#));
    let twilio = transport(&fake.base_url());
    let mut call = message(
        Channel::Voice,
        phone("+14155550100"),
        phone("+14155550199"),
        "Bonjour <Jeanne>",
    );
    call.language = Language::parse("fr-FR").expect("lang");
    // Without a public callback URL the call carries its TwiML inline: the message only.
    let mut config = herald_channels::TwilioConfig::new(SID, TOKEN);
    config.base_url = fake.base_url();
    let inline = TwilioTransport::new(&config).expect("transport");
    inline.send(&call).await.expect("accepted");
    let form = fake.requests()[0].form();
    assert_eq!(
        form[2],
        (
            "Twiml".to_string(),
            "<Response><Say language=\"fr-FR\">Bonjour &lt;Jeanne&gt;</Say></Response>".to_string()
        )
    );
    // With one, a call without an agent number gets the message only, whoever answers.
    twilio.send(&call).await.expect("accepted");
    let form = fake.requests()[1].form();
    assert_eq!(form[2].0, "Url");
    assert!(!form[2].1.contains("agent="), "{}", form[2].1);
    assert_eq!(
        herald_channels::voice_answer_twiml(
            "human",
            &call.body,
            &herald_channels::Speech::new(&call.language, &call.voice_settings),
            None
        ),
        "<Response><Say language=\"fr-FR\">Bonjour &lt;Jeanne&gt;</Say></Response>"
    );
}

#[tokio::test]
async fn a_call_whose_twiml_is_too_long_is_refused_before_sending() {
    let fake = fake_twilio();
    let twilio = transport(&fake.base_url());
    let call = message(
        Channel::Voice,
        phone("+14155550100"),
        phone("+14155550199"),
        &"a".repeat(5000),
    );
    let err = twilio.send(&call).await.expect_err("too long");
    assert_eq!(err.code(), Some(codes::INVALID_MESSAGE));
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn twilio_errors_map_to_transient_or_permanent() {
    let fake = fake_twilio();
    let twilio = transport(&fake.base_url());
    let msg = sms("hello");

    fake.then(
        Reply::new(
            429,
            r#"{"code":20429,"message":"Too Many Requests","status":429}"#,
        )
        .header("retry-after", "3"),
    );
    let err = twilio.send(&msg).await.expect_err("429");
    assert!(err.is_transient());
    assert_eq!(err.code(), Some("20429"));
    assert_eq!(err.message(), "Too Many Requests");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(3)));
    assert!(!err.may_have_been_sent());

    let in_a_minute =
        httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(60));
    fake.then(Reply::new(429, "").header("retry-after", &in_a_minute));
    let err = twilio.send(&msg).await.expect_err("429 with a date");
    let wait = err.retry_after().expect("retry after");
    assert!(
        wait > Duration::from_secs(55) && wait <= Duration::from_secs(60),
        "{wait:?}"
    );
    assert_eq!(err.code(), Some("429"));

    fake.then(Reply::new(500, "internal error"));
    let err = twilio.send(&msg).await.expect_err("500");
    assert!(err.is_transient());
    assert_eq!(err.code(), Some("500"));
    assert_eq!(err.retry_after(), None);

    fake.then(Reply::new(
        503,
        r#"{"code":20503,"message":"Service Unavailable"}"#,
    ));
    let err = twilio.send(&msg).await.expect_err("503");
    assert!(err.is_transient());
    assert_eq!(err.code(), Some("20503"));

    fake.then(Reply::new(
        400,
        r#"{"code":21610,"message":"Attempt to send to unsubscribed recipient","more_info":"https://www.twilio.com/docs/errors/21610","status":400}"#,
    ));
    let err = twilio.send(&msg).await.expect_err("21610");
    assert!(!err.is_transient());
    assert!(err.is_opted_out());
    assert_eq!(err.code(), Some(codes::TWILIO_OPTED_OUT));
    assert_eq!(err.message(), "Attempt to send to unsubscribed recipient");

    fake.then(Reply::new(
        400,
        r#"{"code":21211,"message":"The 'To' number +1415555 is not a valid phone number."}"#,
    ));
    let err = twilio.send(&msg).await.expect_err("21211");
    assert!(!err.is_transient());
    assert!(!err.is_opted_out());
    assert_eq!(err.code(), Some(codes::TWILIO_INVALID_NUMBER));

    fake.then(Reply::new(
        401,
        r#"{"code":20003,"message":"Authenticate"}"#,
    ));
    let err = twilio.send(&msg).await.expect_err("401");
    assert!(!err.is_transient());
    assert_eq!(err.code(), Some("20003"));

    // A success after all that.
    assert!(twilio.send(&msg).await.is_ok());
    assert_eq!(fake.requests().len(), 8);
}

#[tokio::test]
async fn a_slow_twilio_times_out_as_transient_and_maybe_sent() {
    let fake = fake_twilio();
    fake.then(Reply::new(201, r#"{"sid":"SM1"}"#).delayed(Duration::from_secs(5)));
    let mut c = config(&fake.base_url());
    c.timeout_secs = 1;
    let twilio = TwilioTransport::new(&c).expect("transport");
    let started = std::time::Instant::now();
    let err = twilio.send(&sms("hi")).await.expect_err("timeout");
    assert!(err.is_transient());
    assert_eq!(err.code(), Some(codes::TIMEOUT));
    assert!(err.may_have_been_sent(), "the request reached Twilio");
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[tokio::test]
async fn a_refused_connection_is_transient_and_not_sent() {
    let port = closed_port();
    let twilio = transport(&format!("http://127.0.0.1:{port}"));
    let err = twilio.send(&sms("hi")).await.expect_err("refused");
    assert!(err.is_transient());
    assert_eq!(err.code(), Some(codes::CONNECT), "{err}");
    assert!(!err.may_have_been_sent());
    // A sentence first, the raw detail after it.
    let message = err.to_string();
    assert!(
        message.contains("the provider could not be reached (connection refused) — "),
        "{message}"
    );
    assert!(message.contains("os error"), "{message}");
}

#[tokio::test]
async fn https_uses_rustls_with_ring() {
    // The fake speaks plain HTTP, so the TLS handshake fails; it must fail as an error, not panic.
    let fake = fake_twilio();
    let https = fake.base_url().replace("http://", "https://");
    let twilio = transport(&https);
    let err = twilio.send(&sms("hi")).await.expect_err("tls");
    assert!(err.is_transient());
    assert_eq!(err.code(), Some(codes::TLS), "{err}");
}

#[tokio::test]
async fn email_is_not_for_twilio() {
    let fake = fake_twilio();
    let twilio = transport(&fake.base_url());
    let err = twilio.send(&email("Hi", "body")).await.expect_err("email");
    assert_eq!(err.code(), Some(codes::UNSUPPORTED_CHANNEL));
    let mut wrong = email("Hi", "body");
    wrong.channel = Channel::Sms;
    let err = twilio.send(&wrong).await.expect_err("email addresses");
    assert_eq!(err.code(), Some(codes::INVALID_ADDRESS));
    assert!(fake.requests().is_empty());
}

#[test]
fn the_auth_token_never_shows() {
    let c = config("https://api.twilio.com");
    assert!(!format!("{c:?}").contains(TOKEN));
    let t = TwilioTransport::new(&c).expect("transport");
    assert!(!format!("{t:?}").contains(TOKEN));
    assert!(TwilioTransport::new(&TwilioConfig::new("AC/../x", "t")).is_err());
    assert!(TwilioTransport::new(&TwilioConfig::new(SID, "")).is_err());
}

#[tokio::test]
async fn a_script_too_long_for_a_url_is_spoken_inline_with_the_campaigns_voice_and_prompt() {
    let fake = fake_twilio();
    let twilio = transport(&fake.base_url());
    // 1,000 "é": 6,000 characters in a URL (too long), 1,000 in TwiML (fine).
    let script = "é".repeat(1000);
    let mut call = message(
        Channel::Voice,
        phone("+14155550100"),
        phone("+14155550199"),
        &script,
    );
    call.agent_number = Some(E164::parse("+14155550142", None).unwrap());
    call.voice_settings = herald_core::VoiceSettings {
        voice: Some("Polly.Lea".into()),
        spoken_language: Some("fr-FR".into()),
        press_one_prompt: Some("Tapez 1 <vite> & parlez-nous.".into()),
        agent_unavailable: None,
    };
    twilio.send(&call).await.expect("accepted");
    let form = fake.requests()[0].form();
    assert!(!form.iter().any(|(k, _)| k == "Url"), "{form:?}");
    let twiml = &form
        .iter()
        .find(|(k, _)| k == "Twiml")
        .expect("inline TwiML")
        .1;
    let say = "<Say language=\"fr-FR\" voice=\"Polly.Lea\">";
    assert!(
        twiml.starts_with(&format!("<Response>{say}{script}</Say><Gather ")),
        "{twiml}"
    );
    assert!(
        twiml.ends_with(&format!(
            "{say}Tapez 1 &lt;vite&gt; &amp; parlez-nous.</Say></Gather></Response>"
        )),
        "{twiml}"
    );
}
