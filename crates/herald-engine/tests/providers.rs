//! The dispatcher against fake providers over real HTTP and SMTP: a flaky Twilio (30% 5xx and
//! 429 with `Retry-After`), the exact form fields and TwiML Twilio receives, and email through a
//! real SMTP conversation.

use herald_channels::{SmtpTransport, Transports, TwilioTransport};
use herald_core::outreach::{DeliveryState, OutreachStatus};
use herald_core::schedule::ScheduleInput;
use herald_core::{
    Address, AnswerSpec, AnswerVariant, CampaignSpec, Channel, E164, EmailAddress, InboxSpec,
    Language, Provider, Schedule, SenderSpec, Template,
};
use herald_engine::{
    DispatchConfig, Dispatcher, ManualClock, OutreachUpload, RateConfig, UnsubscribeLinks,
    import_outreach,
};
use herald_store::Store;
use herald_testkit::{FakeSmtp, FakeTwilio};
use jiff::{SignedDuration, Timestamp};
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use uuid::Uuid;

const PUBLIC: &str = "https://herald.example.com";

fn now() -> Timestamp {
    "2026-03-02T15:00:00Z".parse().unwrap()
}

fn config(max_attempts: u32) -> DispatchConfig {
    DispatchConfig {
        max_attempts,
        backoff_base_ms: 500,
        backoff_max_secs: 8,
        batch_size: 50,
        concurrency: 16,
        rates: RateConfig {
            sms: f64::INFINITY,
            voice: f64::INFINITY,
            email: f64::INFINITY,
            senders: BTreeMap::new(),
        },
        ..DispatchConfig::default()
    }
}

/// An always-open campaign on `channel` from `from` through `provider`; returns its id.
async fn campaign(
    store: &dyn Store,
    channel: Channel,
    from: Address,
    provider: Provider,
    body: &str,
) -> Uuid {
    let inbox = store
        .create_inbox(&InboxSpec {
            name: "Care".into(),
            // Voice: a person who presses 1 is connected here.
            agent_number: (channel == Channel::Voice)
                .then(|| E164::parse("+14155550142", None).unwrap()),
        })
        .await
        .unwrap()
        .id;
    let sender = store
        .create_sender(&SenderSpec {
            channel,
            address: from,
            inbox_id: inbox,
            provider,
        })
        .await
        .unwrap()
        .id;
    let language = Language::parse("en-US").unwrap();
    let answer = store
        .create_answer(&AnswerSpec {
            name: "Late".into(),
            variants: vec![AnswerVariant {
                language: language.clone(),
                subject: (channel == Channel::Email)
                    .then(|| Template::parse("Your order {{ order }}").unwrap()),
                // A call says the voice script; the SMS body is never read aloud.
                body: Template::parse(match channel {
                    Channel::Voice => "Reply here about your order.",
                    _ => body,
                })
                .unwrap(),
                voice: (channel == Channel::Voice).then(|| Template::parse(body).unwrap()),
            }],
        })
        .await
        .unwrap()
        .id;
    let days = herald_core::schedule::WEEKDAYS
        .iter()
        .map(|d| (d.to_string(), vec!["00:00-24:00".to_string()]))
        .collect();
    store
        .create_campaign(&CampaignSpec {
            name: "Late orders".into(),
            description: String::new(),
            channel,
            sender_id: Some(sender),
            language,
            answer_id: answer,
            schedule: Schedule::parse(&ScheduleInput {
                timezone: "UTC".into(),
                days,
                closed_dates: Vec::new(),
            })
            .unwrap(),
            quiet_hours: false,
            frequency_cap: None,
            voice_settings: Default::default(),
        })
        .await
        .unwrap()
        .id
}

async fn outreach(store: Arc<dyn Store>, campaign: Uuid, csv: &str) -> Uuid {
    let mut file = tempfile::tempfile().unwrap();
    file.write_all(csv.as_bytes()).unwrap();
    import_outreach(
        store,
        OutreachUpload {
            campaign_id: campaign,
            file,
            file_name: "list.csv".into(),
            start_at: now(),
            end_at: None,
            default_region: None,
            limits: Default::default(),
        },
        Arc::new(|_| {}),
    )
    .await
    .expect("import")
    .id
}

/// Ticks, moving the clock on by `step` each time, until the outreach is final.
async fn run_to_the_end(
    d: &Dispatcher,
    clock: &ManualClock,
    store: &dyn Store,
    id: Uuid,
    step: SignedDuration,
) -> u32 {
    for round in 0..500 {
        d.tick().await.expect("tick");
        if store.outreach_status(id).await.unwrap() == OutreachStatus::Completed {
            return round;
        }
        clock.advance(step);
    }
    panic!("the outreach never completed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_percent_transient_failures_and_429s_still_end_every_recipient_terminal() {
    let db = herald_store::testing::sqlite().await;
    let store = db.store.clone();
    let twilio = FakeTwilio::builder().seed(7).transient_rate(0.3).start();
    let mut transports = Transports::new();
    transports.insert(
        Provider::Twilio,
        Arc::new(TwilioTransport::new(&twilio.config().with_public_url(PUBLIC)).unwrap()),
    );
    let clock = Arc::new(ManualClock::new(now()));
    let max_attempts = 6;
    let d = Dispatcher::new(
        store.clone(),
        transports,
        clock.clone(),
        config(max_attempts),
    );
    let c = campaign(
        &*store,
        Channel::Sms,
        Address::Phone(E164::parse("+14155550100", None).unwrap()),
        Provider::Twilio,
        "Hi {{ name }}, your order {{ order }} is late.",
    )
    .await;
    let n = 300;
    let mut csv = String::from("phone,name,order\n");
    for i in 0..n {
        csv.push_str(&format!("+1415{:07},Customer {i},A-{i}\n", 3_000_000 + i));
    }
    let o = outreach(store.clone(), c, &csv).await;
    run_to_the_end(&d, &clock, &*store, o, SignedDuration::from_secs(2)).await;

    let requests = twilio.requests();
    let statuses: BTreeMap<u16, usize> = requests.iter().fold(BTreeMap::new(), |mut m, r| {
        *m.entry(r.status).or_default() += 1;
        m
    });
    assert!(
        statuses.get(&429).copied().unwrap_or(0) > 10,
        "{statuses:?}"
    );
    assert!(
        statuses.get(&500).copied().unwrap_or(0) > 10,
        "{statuses:?}"
    );

    let recipients = store.list_recipients(o, None, 0, 1000).await.unwrap();
    assert_eq!(recipients.len(), n);
    let accepted = twilio.accepted_count_by_to();
    for r in &recipients {
        assert!(r.state.is_terminal(), "{r:?}");
        assert!(r.attempts >= 1 && r.attempts <= max_attempts, "{r:?}");
        match r.state {
            DeliveryState::Sent => {
                assert_eq!(
                    accepted.get(&r.address),
                    Some(&1),
                    "sent exactly once: {r:?}"
                );
                assert!(
                    r.provider_message_id
                        .as_deref()
                        .is_some_and(|s| s.starts_with("SM"))
                );
            }
            DeliveryState::Failed => {
                assert_eq!(r.attempts, max_attempts, "fails only when retries run out");
                assert!(!accepted.contains_key(&r.address));
            }
            other => panic!("unexpected {other}: {r:?}"),
        }
    }
    // Each number's requests: one per attempt, never more.
    let mut tries: BTreeMap<String, u32> = BTreeMap::new();
    for r in &requests {
        *tries.entry(r.field("To").unwrap().to_string()).or_default() += 1;
    }
    for r in &recipients {
        assert_eq!(tries.get(&r.address).copied(), Some(r.attempts), "{r:?}");
    }
    let retried = recipients.iter().filter(|r| r.attempts > 1).count();
    assert!(retried > 50, "the failures were retried: {retried}");
    let sent = recipients
        .iter()
        .filter(|r| r.state == DeliveryState::Sent)
        .count();
    assert!(
        sent >= n - 2,
        "with 6 attempts at 30% nearly all get through: {sent}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilio_gets_exact_sms_fields_and_call_twiml() {
    let db = herald_store::testing::sqlite().await;
    let store = db.store.clone();
    let twilio = FakeTwilio::start();
    let mut transports = Transports::new();
    transports.insert(
        Provider::Twilio,
        Arc::new(TwilioTransport::new(&twilio.config().with_public_url(PUBLIC)).unwrap()),
    );
    let clock = Arc::new(ManualClock::new(now()));
    let d = Dispatcher::new(store.clone(), transports, clock.clone(), config(3));
    let sms = campaign(
        &*store,
        Channel::Sms,
        Address::Phone(E164::parse("+14155550100", None).unwrap()),
        Provider::Twilio,
        "Hi {{ name }} & co, order {{ order }} <late>.",
    )
    .await;
    let o = outreach(
        store.clone(),
        sms,
        "phone,name,order\n(415) 555-0123,Ann,A-1\n",
    )
    .await;
    run_to_the_end(&d, &clock, &*store, o, SignedDuration::from_secs(1)).await;
    let accepted = twilio.accepted();
    assert_eq!(accepted.len(), 1);
    let m = &accepted[0];
    assert!(m.is_sms());
    assert_eq!(
        m.form,
        vec![
            ("To".to_string(), "+14155550123".to_string()),
            ("From".to_string(), "+14155550100".to_string()),
            (
                "Body".to_string(),
                "Hi Ann & co, order A-1 <late>.".to_string()
            ),
            (
                "StatusCallback".to_string(),
                format!("{PUBLIC}/webhooks/twilio/status")
            ),
        ]
    );
    let r = &store.list_recipients(o, None, 0, 10).await.unwrap()[0];
    assert_eq!(r.provider_message_id.as_deref(), Some(m.sid.as_str()));
    let request = &twilio.requests()[0];
    assert_eq!(
        request.path,
        format!(
            "/2010-04-01/Accounts/{}/Messages.json",
            twilio.account_sid()
        )
    );
    assert_eq!(
        request.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );

    // A voice campaign: a call whose TwiML speaks the answer's voice script (not its SMS body)
    // in the campaign's language.
    let inbox_store = store.clone();
    let voice = campaign(
        &*inbox_store,
        Channel::Voice,
        Address::Phone(E164::parse("+14155550199", None).unwrap()),
        Provider::Twilio,
        "Hello {{ name }}, your order is late.",
    )
    .await;
    let o = outreach(store.clone(), voice, "phone,name\n+14155550124,Bo\n").await;
    run_to_the_end(&d, &clock, &*store, o, SignedDuration::from_secs(1)).await;
    let call = twilio
        .accepted()
        .into_iter()
        .find(|m| m.is_call())
        .expect("a call");
    assert_eq!(call.to, "+14155550124");
    assert_eq!(call.from, "+14155550199");
    // The call fetches its TwiML from Herald once answering-machine detection has decided.
    let call_recipient = &store.list_recipients(o, None, 0, 10).await.unwrap()[0];
    assert_eq!(
        call.url.as_deref(),
        Some(
            format!(
                "{PUBLIC}/webhooks/twilio/voice?campaign_id={voice}&outreach_id={o}&recipient_id={}\
                 &language=en-US&body=Hello+Bo%2C+your+order+is+late.&agent=%2B14155550142",
                call_recipient.id
            )
            .as_str()
        )
    );
    assert_eq!(call.twiml, None);
    assert!(
        call.form
            .contains(&("Method".to_string(), "POST".to_string()))
    );
    assert_eq!(call.machine_detection.as_deref(), Some("Enable"));
    assert_eq!(
        call.status_callback.as_deref(),
        Some(format!("{PUBLIC}/webhooks/twilio/status").as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_goes_through_a_real_smtp_conversation_with_unsubscribe_headers() {
    let db = herald_store::testing::sqlite().await;
    let store = db.store.clone();
    let smtp = FakeSmtp::builder().seed(3).transient_rate(0.3).start();
    let mut transports = Transports::new();
    transports.insert(
        Provider::Smtp,
        Arc::new(SmtpTransport::new(&smtp.config()).unwrap()),
    );
    let clock = Arc::new(ManualClock::new(now()));
    let links = UnsubscribeLinks::new(PUBLIC, b"test key");
    let d = Dispatcher::new(store.clone(), transports, clock.clone(), config(8))
        .with_unsubscribe_links(links.clone());
    let c = campaign(
        &*store,
        Channel::Email,
        Address::Email(EmailAddress::parse("care@shop.example").unwrap()),
        Provider::Smtp,
        "Dear {{ name }}, order {{ order }} is late.",
    )
    .await;
    let mut csv = String::from("email,name,order\n");
    for i in 0..40 {
        csv.push_str(&format!("c{i}@example.com,Customer {i},B-{i}\n"));
    }
    let o = outreach(store.clone(), c, &csv).await;
    run_to_the_end(&d, &clock, &*store, o, SignedDuration::from_secs(10)).await;
    assert!(!smtp.rejections().is_empty(), "failures were injected");
    let recipients = store.list_recipients(o, None, 0, 100).await.unwrap();
    assert!(recipients.iter().all(|r| r.state == DeliveryState::Sent));
    let messages = smtp.messages();
    assert_eq!(messages.len(), 40, "each email accepted once");
    let first = recipients
        .iter()
        .find(|r| r.address == "c0@example.com")
        .unwrap();
    let m = messages
        .iter()
        .find(|m| m.recipients() == vec!["c0@example.com".to_string()])
        .unwrap();
    let key = herald_core::outreach::idempotency_key(o, first.id);
    assert_eq!(
        m.header("Message-ID").as_deref(),
        Some(format!("<{key}@shop.example>").as_str())
    );
    assert_eq!(m.subject.as_deref(), Some("Your order B-0"));
    assert!(m.body().contains("Dear Customer 0, order B-0 is late."));
    let unsubscribe = m.header("List-Unsubscribe").unwrap();
    assert_eq!(unsubscribe, format!("<{}>", links.url(&key)));
    assert!(links.verify(&key, &links.sign(&key)));
    assert!(!links.verify(
        &herald_core::outreach::idempotency_key(o, first.id + 1),
        &links.sign(&key)
    ));
    assert_eq!(
        m.header("List-Unsubscribe-Post").as_deref(),
        Some("List-Unsubscribe=One-Click")
    );
}

/// An email answer is Markdown: the recipient gets `multipart/alternative` of a UTF-8 text part
/// and a UTF-8 HTML part, the CSV's values are text in both (never markup, never Markdown), and
/// each part ends with the unsubscribe footer, a link in the HTML. The message is read by
/// mail-parser, not by the builder that wrote it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_markdown_email_is_html_and_text_with_escaped_values_and_the_footer() {
    use mail_parser::{MessageParser, MimeHeaders, PartType};
    let db = herald_store::testing::sqlite().await;
    let store = db.store.clone();
    let smtp = FakeSmtp::start();
    let mut transports = Transports::new();
    transports.insert(
        Provider::Smtp,
        Arc::new(SmtpTransport::new(&smtp.config()).unwrap()),
    );
    let clock = Arc::new(ManualClock::new(now()));
    let links = UnsubscribeLinks::new(PUBLIC, b"test key");
    let d = Dispatcher::new(store.clone(), transports, clock.clone(), config(3))
        .with_unsubscribe_links(links.clone());
    let c = campaign(
        &*store,
        Channel::Email,
        Address::Email(EmailAddress::parse("care@shop.example").unwrap()),
        Provider::Smtp,
        "Dear **{{ name }}**,\n\nyour order _{{ order }}_ is [late](https://shop.example/t).\n\n- one\n- two",
    )
    .await;
    let csv = "email,name,order\n\
               ada@example.com,<script>alert(1)</script>,\"Tom & Jerry **x** [y](javascript:z) &amp;\"\n";
    let o = outreach(store.clone(), c, csv).await;
    run_to_the_end(&d, &clock, &*store, o, SignedDuration::from_secs(10)).await;
    let recipients = store.list_recipients(o, None, 0, 10).await.unwrap();
    assert_eq!(recipients[0].state, DeliveryState::Sent, "{recipients:?}");
    let url = links.url(&herald_core::outreach::idempotency_key(o, recipients[0].id));

    let sent = smtp.messages();
    assert_eq!(sent.len(), 1);
    let message = MessageParser::default()
        .parse(sent[0].data.as_bytes())
        .expect("a parseable message");
    let root = message.root_part().content_type().expect("Content-Type");
    assert_eq!(
        (root.ctype(), root.subtype()),
        ("multipart", Some("alternative"))
    );
    let children = message.root_part().sub_parts().expect("parts");
    assert_eq!(children.len(), 2, "a text and an HTML part");
    let part = |i: usize| &message.parts[children[i] as usize];
    let (text_part, html_part) = (part(0), part(1));
    for (p, subtype) in [(text_part, "plain"), (html_part, "html")] {
        let ct = p.content_type().expect("a part's Content-Type");
        assert_eq!((ct.ctype(), ct.subtype()), ("text", Some(subtype)));
        assert_eq!(
            ct.attribute("charset")
                .map(str::to_ascii_lowercase)
                .as_deref(),
            Some("utf-8")
        );
    }
    let PartType::Text(text) = &text_part.body else {
        panic!("the first part is not text: {:?}", text_part.body);
    };
    let PartType::Html(html) = &html_part.body else {
        panic!("the second part is not HTML: {:?}", html_part.body);
    };
    // Lines end in CRLF on the wire.
    let (text, html) = (text.replace("\r\n", "\n"), html.replace("\r\n", "\n"));

    // The text reads as text: no Markdown marks, the link's target beside it, values verbatim.
    assert!(
        text.starts_with(
            "Dear <script>alert(1)</script>,\n\nyour order Tom & Jerry **x** [y](javascript:z) &amp; \
             is late (https://shop.example/t).\n\n- one\n- two"
        ),
        "{text}"
    );
    assert!(
        text.trim_end().ends_with(&url),
        "no unsubscribe footer: {text}"
    );

    // The HTML: the answer's markup, the values as escaped text, the footer as a link.
    assert!(
        html.contains("<strong>&lt;script&gt;alert(1)&lt;/script&gt;</strong>"),
        "{html}"
    );
    assert!(
        html.contains("<em>Tom &amp; Jerry **x** [y](javascript:z) &amp;amp;</em>"),
        "{html}"
    );
    assert!(
        !html.contains("<script") && !html.contains("javascript:z\""),
        "{html}"
    );
    assert!(
        html.contains("<a href=\"https://shop.example/t\">late</a>"),
        "{html}"
    );
    assert!(html.contains("<li>two</li>"), "{html}");
    let href = url.replace('&', "&amp;");
    assert!(
        html.contains(&format!("<a href=\"{href}\">unsubscribe</a>")),
        "no unsubscribe link in the HTML: {html}"
    );
    assert!(
        html.contains("<html lang=\"en-US\">") && html.contains("charset=\"utf-8\""),
        "{html}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_takes_effect_within_a_second_even_mid_batch() {
    let db = herald_store::testing::sqlite().await;
    let store = db.store.clone();
    // A slow Twilio: 200 ms a message, one at a time, 50 to a batch (10 s of sending).
    let twilio = FakeTwilio::builder()
        .latency(std::time::Duration::from_millis(200))
        .start();
    let mut transports = Transports::new();
    transports.insert(
        Provider::Twilio,
        Arc::new(TwilioTransport::new(&twilio.config()).unwrap()),
    );
    let clock = Arc::new(ManualClock::new(now()));
    let mut cfg = config(3);
    cfg.concurrency = 1;
    let d = Arc::new(Dispatcher::new(store.clone(), transports, clock, cfg));
    let c = campaign(
        &*store,
        Channel::Sms,
        Address::Phone(E164::parse("+14155550100", None).unwrap()),
        Provider::Twilio,
        "Hi {{ name }}",
    )
    .await;
    let mut csv = String::from("phone,name\n");
    for i in 0..50 {
        csv.push_str(&format!("+1415{:07},C{i}\n", 4_000_000 + i));
    }
    let o = outreach(store.clone(), c, &csv).await;
    let ticking = tokio::spawn({
        let d = d.clone();
        async move { d.tick().await.expect("tick") }
    });
    while twilio.accepted().len() < 3 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let stopped_at = std::time::Instant::now();
    store.stop_outreach(o, now()).await.expect("stop");
    let at_stop = twilio.accepted().len();
    let report = ticking.await.unwrap();
    let after = twilio.accepted().len() - at_stop;
    assert!(
        stopped_at.elapsed() < std::time::Duration::from_secs(3),
        "the batch ended soon after the stop"
    );
    // 250 ms to notice, one send in flight at 200 ms: a few at most, never the other 40-odd.
    assert!(after <= 3, "{after} messages went out after the stop");
    let recipients = store.list_recipients(o, None, 0, 100).await.unwrap();
    let sent = recipients
        .iter()
        .filter(|r| r.state == DeliveryState::Sent)
        .count();
    assert_eq!(sent, twilio.accepted().len(), "every send made is recorded");
    assert_eq!(report.sent as usize, sent);
    assert!(
        recipients.iter().all(|r| r.state.is_terminal()),
        "nothing left pending or sending"
    );
    assert!(
        recipients
            .iter()
            .filter(|r| r.state == DeliveryState::Skipped)
            .all(|r| r.skip_reason == Some(herald_core::outreach::SkipReason::Stopped))
    );
    assert_eq!(
        store.outreach_status(o).await.unwrap(),
        OutreachStatus::Stopped
    );
}
