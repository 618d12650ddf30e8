use crate::common::{basic, message, number, phone, raw_http, sms_to};
use herald_channels::{SendError, Transport, TwilioTransport, codes, verify_twilio_signature};
use herald_core::{Channel, E164};
use herald_testkit::{FakeTwilio, TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, TwilioResource, closed_port};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn transport(fake: &FakeTwilio) -> TwilioTransport {
    TwilioTransport::new(&fake.config().with_public_url("https://herald.example.com"))
        .expect("twilio transport")
}

fn is_sid(sid: &str, prefix: &str) -> bool {
    sid.len() == 34
        && sid.starts_with(prefix)
        && sid[2..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
async fn an_sms_and_a_call_are_accepted_and_recorded() {
    let fake = FakeTwilio::start();
    let twilio = transport(&fake);

    let sms = sms_to(1, "Hi Jane & co: 50% off ✓");
    let accepted = twilio.send(&sms).await.expect("sms accepted");
    let sms_sid = accepted.provider_message_id.expect("sid");
    assert!(is_sid(&sms_sid, "SM"), "{sms_sid}");

    let mut call = message(
        Channel::Voice,
        phone("+14155550100"),
        phone(&number(2)),
        2,
        "Your appointment is tomorrow.",
    );
    call.agent_number = Some(E164::parse("+14155550142", None).expect("agent"));
    let call_sid = twilio
        .send(&call)
        .await
        .expect("call accepted")
        .provider_message_id
        .expect("sid");
    assert!(is_sid(&call_sid, "CA"), "{call_sid}");
    assert_ne!(sms_sid[2..], call_sid[2..]);

    let accepted = fake.accepted();
    assert_eq!(accepted.len(), 2);
    let m = &accepted[0];
    assert!(m.is_sms() && !m.is_call());
    assert_eq!(m.sid, sms_sid);
    assert_eq!(m.to, number(1));
    assert_eq!(m.from, "+14155550100");
    assert_eq!(m.body.as_deref(), Some("Hi Jane & co: 50% off ✓"));
    assert_eq!(
        m.status_callback.as_deref(),
        Some("https://herald.example.com/webhooks/twilio/status")
    );
    assert_eq!(m.twiml, None);
    let c = &accepted[1];
    assert!(c.is_call());
    assert_eq!(c.resource, TwilioResource::Calls);
    assert_eq!(c.sid, call_sid);
    assert_eq!(c.to, number(2));
    assert_eq!(c.body, None);
    assert_eq!(c.machine_detection.as_deref(), Some("Enable"));
    // With a public URL the call fetches its TwiML from Herald (answering-machine detection).
    assert_eq!(c.twiml, None);
    let url = c.url.as_deref().expect("url");
    assert!(
        url.starts_with("https://herald.example.com/webhooks/twilio/voice?"),
        "{url}"
    );
    assert!(url.contains("recipient_id=2&"), "{url}");
    assert!(url.contains("agent=%2B14155550142"), "{url}");

    let requests = fake.requests();
    assert_eq!(requests.len(), 2);
    let r = &requests[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, fake.resource_path(TwilioResource::Messages));
    assert_eq!(
        r.path,
        format!("/2010-04-01/Accounts/{TEST_ACCOUNT_SID}/Messages.json")
    );
    assert_eq!(r.status, 201);
    assert_eq!(r.error_code, None);
    assert_eq!(
        r.header("Authorization"),
        Some(basic(TEST_ACCOUNT_SID, TEST_AUTH_TOKEN).as_str())
    );
    assert_eq!(
        r.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        r.form,
        pairs(&[
            ("To", &number(1)),
            ("From", "+14155550100"),
            ("Body", "Hi Jane & co: 50% off ✓"),
            (
                "StatusCallback",
                "https://herald.example.com/webhooks/twilio/status"
            ),
        ])
    );
    assert_eq!(r.field("Body"), Some("Hi Jane & co: 50% off ✓"));
    assert_eq!(requests[1].path, fake.resource_path(TwilioResource::Calls));

    let counts = fake.accepted_count_by_to();
    assert_eq!(counts.get(&number(1)), Some(&1));
    assert_eq!(counts.get(&number(2)), Some(&1));
    assert_eq!(counts.len(), 2);
}

#[test]
fn the_answer_looks_like_twilios() {
    // A plain #[test] and a blocking client: the fake runs on a runtime of its own.
    let fake = FakeTwilio::start();
    let auth = basic(TEST_ACCOUNT_SID, TEST_AUTH_TOKEN);
    let path = fake.resource_path(TwilioResource::Messages);
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/x-www-form-urlencoded"),
    ];
    let (status, _, body) = raw_http(
        fake.addr(),
        "POST",
        &path,
        &headers,
        "To=%2B14155550199&From=%2B14155550100&Body=hello",
    );
    assert_eq!(status, 201, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(json["status"], "queued");
    assert_eq!(json["to"], "+14155550199");
    assert_eq!(json["from"], "+14155550100");
    assert_eq!(json["body"], "hello");
    assert_eq!(json["account_sid"], TEST_ACCOUNT_SID);
    let sid = json["sid"].as_str().expect("sid");
    assert!(is_sid(sid, "SM"), "{sid}");
    assert_eq!(fake.accepted()[0].sid, sid);

    // Missing fields are refused the way Twilio does.
    let (status, _, body) = raw_http(fake.addr(), "POST", &path, &headers, "To=%2B14155550199");
    assert_eq!(status, 400);
    let json: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(json["code"], 21603);
    assert_eq!(json["status"], 400);
    let calls = fake.resource_path(TwilioResource::Calls);
    let (status, _, body) = raw_http(
        fake.addr(),
        "POST",
        &calls,
        &headers,
        "To=%2B14155550199&From=%2B14155550100",
    );
    assert_eq!(status, 400, "{body}");
    // Another account's path, with this account's credentials.
    let other = calls.replace(TEST_ACCOUNT_SID, "AC11111111111111111111111111111111");
    let (status, _, _) = raw_http(fake.addr(), "POST", &other, &headers, "");
    assert_eq!(status, 404);
    let (status, _, _) = raw_http(fake.addr(), "GET", "/", &headers, "");
    assert_eq!(status, 404);
    // No credentials at all.
    let (status, response_headers, body) = raw_http(fake.addr(), "POST", &path, &[], "");
    assert_eq!(status, 401);
    assert!(
        response_headers
            .iter()
            .any(|(k, v)| k == "www-authenticate" && v.starts_with("Basic")),
        "{response_headers:?}"
    );
    let json: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(json["code"], 20003);

    let statuses: Vec<u16> = fake.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![201, 400, 400, 404, 404, 401]);
    assert_eq!(fake.accepted().len(), 1);
}

#[tokio::test]
async fn wrong_credentials_are_refused_with_401() {
    let fake = FakeTwilio::builder()
        .credentials("AC0123456789abcdef0123456789abcdef", "the-right-token")
        .start();
    let mut config = fake.config();
    config.auth_token = "a-wrong-token".into();
    let twilio = TwilioTransport::new(&config).expect("transport");
    let err = twilio.send(&sms_to(1, "hi")).await.expect_err("401");
    assert!(!err.is_transient());
    assert_eq!(err.code(), Some("20003"));
    assert_eq!(err.message(), "Authenticate");
    assert_eq!(fake.requests()[0].status, 401);
    assert!(fake.accepted().is_empty());

    let twilio = TwilioTransport::new(&fake.config()).expect("transport");
    twilio.send(&sms_to(1, "hi")).await.expect("accepted");
    assert_eq!(fake.account_sid(), "AC0123456789abcdef0123456789abcdef");
    assert!(
        fake.config_toml()
            .contains("auth_token = \"the-right-token\"")
    );
}

#[tokio::test]
async fn numbers_can_fail_permanently() {
    let fake = FakeTwilio::builder()
        .opted_out(&number(1))
        .invalid_number(&number(2))
        .start();
    let twilio = transport(&fake);

    let err = twilio.send(&sms_to(1, "hi")).await.expect_err("opted out");
    assert!(err.is_opted_out(), "{err}");
    assert_eq!(err.code(), Some(codes::TWILIO_OPTED_OUT));
    assert_eq!(err.message(), "Attempt to send to unsubscribed recipient");
    let err = twilio.send(&sms_to(2, "hi")).await.expect_err("invalid");
    assert!(!err.is_transient());
    assert_eq!(err.code(), Some(codes::TWILIO_INVALID_NUMBER));
    twilio.send(&sms_to(3, "hi")).await.expect("accepted");

    fake.fail_number(
        &number(3),
        21612,
        "The 'To' phone number is not currently reachable",
    );
    let err = twilio
        .send(&sms_to(3, "hi"))
        .await
        .expect_err("unreachable");
    assert_eq!(err.code(), Some("21612"));
    fake.heal_number(&number(1));
    twilio
        .send(&sms_to(1, "hi"))
        .await
        .expect("accepted after healing");

    let codes: Vec<Option<u32>> = fake.requests().iter().map(|r| r.error_code).collect();
    assert_eq!(
        codes,
        vec![Some(21610), Some(21211), None, Some(21612), None]
    );
    let to: Vec<String> = fake.accepted().into_iter().map(|m| m.to).collect();
    assert_eq!(to, vec![number(3), number(1)]);
}

/// Sends to `count` numbers, each until it is accepted (at most 20 tries), one at a time; the
/// outcome of every attempt.
async fn run(fake: &FakeTwilio, count: usize) -> Vec<(usize, Result<(), SendError>)> {
    let twilio = transport(fake);
    let mut outcomes = Vec::new();
    for i in 0..count {
        for _ in 0..20 {
            let result = twilio.send(&sms_to(i, "hello")).await.map(|_| ());
            let done = result.is_ok();
            outcomes.push((i, result));
            if done {
                break;
            }
        }
    }
    outcomes
}

#[tokio::test]
async fn transient_failures_are_reproducible_for_a_seed() {
    let a = FakeTwilio::builder().seed(42).transient_rate(0.3).start();
    let b = FakeTwilio::builder().seed(42).transient_rate(0.3).start();
    let c = FakeTwilio::builder().seed(43).transient_rate(0.3).start();
    let run_a = run(&a, 200).await;
    let run_b = run(&b, 200).await;
    let run_c = run(&c, 200).await;
    assert_eq!(run_a, run_b);
    assert_ne!(run_a, run_c);

    let failures: Vec<&SendError> = run_a.iter().filter_map(|(_, r)| r.as_ref().err()).collect();
    let share = failures.len() as f64 / run_a.len() as f64;
    assert!((0.2..0.4).contains(&share), "{share}");
    let mut seen = BTreeSet::new();
    for e in &failures {
        assert!(e.is_transient(), "{e}");
        assert!(!e.may_have_been_sent());
        match e.code() {
            Some("20429") => {
                assert_eq!(e.message(), "Too Many Requests");
                assert_eq!(e.retry_after(), Some(Duration::from_secs(1)));
            }
            Some("20500") => assert_eq!(e.retry_after(), None),
            other => panic!("unexpected code {other:?}"),
        }
        seen.insert(e.code().map(str::to_string));
    }
    assert_eq!(seen.len(), 2, "both 429 and 500 occur");
    // Everyone got exactly one SMS in the end.
    assert_eq!(a.accepted().len(), 200);
    assert!(a.accepted_count_by_to().values().all(|&n| n == 1));
    let statuses: BTreeSet<u16> = a.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, BTreeSet::from([201, 429, 500]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_draws_do_not_depend_on_the_order_of_arrival() {
    let sequential = FakeTwilio::builder().seed(7).transient_rate(0.5).start();
    let outcomes = run(&sequential, 100).await;
    // The first attempt of each number, in the sequential run.
    let mut seen = BTreeSet::new();
    let first_attempt_failed: BTreeSet<usize> = outcomes
        .iter()
        .filter(|(i, _)| seen.insert(*i))
        .filter(|(_, r)| r.is_err())
        .map(|(i, _)| *i)
        .collect();

    let concurrent = FakeTwilio::builder().seed(7).transient_rate(0.5).start();
    let twilio = Arc::new(transport(&concurrent));
    let mut tasks = Vec::new();
    for i in (0..100).rev() {
        let twilio = Arc::clone(&twilio);
        tasks.push(tokio::spawn(async move {
            (i, twilio.send(&sms_to(i, "hello")).await.is_err())
        }));
    }
    let mut failed_concurrently = BTreeSet::new();
    for task in tasks {
        let (i, failed) = task.await.expect("task");
        if failed {
            failed_concurrently.insert(i);
        }
    }
    // Each number's first attempt fails in both runs or in neither.
    assert_eq!(failed_concurrently, first_attempt_failed);
    assert!(!failed_concurrently.is_empty());
}

#[tokio::test]
async fn latency_delays_the_answer_and_a_timed_out_message_still_went_out() {
    let fake = FakeTwilio::builder()
        .latency(Duration::from_millis(300))
        .start();
    let twilio = transport(&fake);
    let started = Instant::now();
    twilio.send(&sms_to(1, "hi")).await.expect("accepted");
    assert!(started.elapsed() >= Duration::from_millis(300));

    fake.set_latency(Duration::from_secs(3));
    let mut config = fake.config();
    config.timeout_secs = 1;
    let impatient = TwilioTransport::new(&config).expect("transport");
    let err = impatient.send(&sms_to(2, "hi")).await.expect_err("timeout");
    assert_eq!(err.code(), Some(codes::TIMEOUT));
    assert!(err.may_have_been_sent());
    // Twilio took it before the client gave up: exactly the at-most-once ambiguity.
    assert_eq!(fake.accepted_count_by_to().get(&number(2)), Some(&1));

    fake.set_latency(Duration::ZERO);
    fake.set_transient_rate(1.0);
    assert!(twilio.send(&sms_to(3, "hi")).await.is_err());
    fake.set_transient_rate(0.0);
    assert!(twilio.send(&sms_to(3, "hi")).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_requests() {
    let fake = FakeTwilio::start();
    let twilio = Arc::new(transport(&fake));
    let total = 3000;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..50 {
        let twilio = Arc::clone(&twilio);
        tasks.push(tokio::spawn(async move {
            for i in (worker..total).step_by(50) {
                twilio.send(&sms_to(i, "load")).await.expect("accepted");
            }
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    let elapsed = started.elapsed();
    eprintln!(
        "{total} SMS in {elapsed:?}: {:.0}/s",
        total as f64 / elapsed.as_secs_f64()
    );
    let accepted = fake.accepted();
    assert_eq!(accepted.len(), total);
    let sids: BTreeSet<&str> = accepted.iter().map(|m| m.sid.as_str()).collect();
    assert_eq!(sids.len(), total, "every sid is unique");
    assert_eq!(fake.accepted_count_by_to().len(), total);
    assert!(elapsed < Duration::from_secs(60), "{elapsed:?}");
}

#[test]
fn signs_callbacks_as_twilio_does() {
    let fake = FakeTwilio::start();
    let url = "https://herald.example.com/webhooks/twilio/status";
    let params = [("MessageSid", "SM123"), ("MessageStatus", "delivered")];
    let signature = fake.sign(url, &params);
    let owned = pairs(&params);
    assert!(verify_twilio_signature(
        TEST_AUTH_TOKEN,
        url,
        &owned,
        &signature
    ));
    assert_eq!(
        signature,
        herald_channels::twilio_signature(fake.auth_token(), url, &owned)
    );
}

#[tokio::test]
async fn a_dropped_fake_is_gone_even_for_pooled_connections() {
    let fake = FakeTwilio::start();
    let addr = fake.addr();
    let twilio = transport(&fake);
    twilio.send(&sms_to(1, "hi")).await.expect("accepted");
    drop(fake);
    assert!(std::net::TcpStream::connect(addr).is_err());
    let err = twilio.send(&sms_to(2, "hi")).await.expect_err("gone");
    assert!(err.is_transient(), "{err}");

    let port = closed_port();
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[test]
fn the_config_tables_are_what_herald_reads() {
    let twilio = FakeTwilio::builder()
        .credentials("AC0123456789abcdef0123456789abcdef", "tok\"en\\")
        .start();
    let smtp = herald_testkit::FakeSmtp::start();
    let text = format!("{}{}", twilio.config_toml(), smtp.config_toml());
    let value: toml::Value = toml::from_str(&text).expect("toml");
    let channels: herald_channels::ChannelsConfig = value
        .get("channels")
        .expect("[channels]")
        .clone()
        .try_into()
        .expect("channels config");
    let t = channels.twilio.expect("twilio");
    assert_eq!(t.account_sid, "AC0123456789abcdef0123456789abcdef");
    assert_eq!(t.auth_token.expose(), "tok\"en\\");
    assert_eq!(t.base_url, twilio.base_url());
    assert_eq!(channels.smtp.expect("smtp").url, smtp.url());
}
