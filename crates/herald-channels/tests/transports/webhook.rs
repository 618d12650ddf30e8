#![allow(clippy::disallowed_methods)] // tests set up data relative to the real time

use crate::common::{closed_port, email, sms};
use herald_channels::{
    Transport, WebhookConfig, WebhookTransport, codes, verify_webhook_signature,
};
use herald_testkit::{FakeHttp, Reply};
use std::time::Duration;

fn transport(url: &str, secret: Option<&str>) -> WebhookTransport {
    let mut c = WebhookConfig::new(url);
    c.secret = secret.map(Into::into);
    WebhookTransport::new(&c).expect("webhook transport")
}

#[tokio::test]
async fn posts_the_message_as_json_with_an_idempotency_key_and_signature() {
    let fake = FakeHttp::start(Reply::new(202, r#"{"id":"gw-123","status":"queued"}"#));
    let hook = transport(&format!("{}/send", fake.base_url()), Some("shared-secret"));
    let mut msg = email("Your order", "Grüße ✓");
    msg.unsubscribe_url = Some("https://h.example.com/u/1".into());
    let accepted = hook.send(&msg).await.expect("accepted");
    assert_eq!(accepted.provider_message_id.as_deref(), Some("gw-123"));

    let r = &fake.requests()[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/send");
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(
        r.header("idempotency-key").as_deref(),
        Some("01900000000070008000000000000002-3")
    );
    assert_eq!(
        r.json(),
        serde_json::json!({
            "idempotency_key": msg.idempotency_key,
            "channel": "email",
            "from": "support@acme.example.com",
            "to": "jane.doe@example.org",
            "subject": "Your order",
            "body": "Grüße ✓",
            "language": "en-US",
            "campaign_id": "01900000-0000-7000-8000-000000000001",
            "outreach_id": "01900000-0000-7000-8000-000000000002",
            "recipient_id": 3,
            "unsubscribe_url": "https://h.example.com/u/1",
            "agent_number": null,
        })
    );
    let signature = r.header("x-herald-signature").expect("signed");
    let now = jiff::Timestamp::now().as_second();
    assert!(verify_webhook_signature(
        "shared-secret",
        &signature,
        &r.body,
        now,
        60
    ));
    assert!(!verify_webhook_signature(
        "other-secret",
        &signature,
        &r.body,
        now,
        60
    ));
}

#[tokio::test]
async fn unsigned_without_a_secret_and_ids_are_optional() {
    let fake = FakeHttp::start(Reply::new(204, ""));
    let hook = transport(&fake.base_url(), None);
    let accepted = hook.send(&sms("hi")).await.expect("accepted");
    assert_eq!(accepted.provider_message_id, None);
    assert_eq!(fake.requests()[0].header("x-herald-signature"), None);

    fake.then(Reply::new(200, r#"{"id":42}"#));
    let accepted = hook.send(&sms("hi")).await.expect("accepted");
    assert_eq!(accepted.provider_message_id.as_deref(), Some("42"));
}

#[tokio::test]
async fn webhook_errors_map_to_transient_or_permanent() {
    let fake = FakeHttp::start(Reply::new(200, "{}"));
    let hook = transport(&fake.base_url(), None);
    let msg = sms("hi");

    fake.then(Reply::new(429, "slow down").header("retry-after", "12"));
    let err = hook.send(&msg).await.expect_err("429");
    assert!(err.is_transient());
    assert_eq!(err.code(), Some("429"));
    assert_eq!(err.retry_after(), Some(Duration::from_secs(12)));
    assert!(err.message().contains("slow down"), "{err}");

    for status in [500, 502, 503, 408] {
        fake.then(Reply::new(status, ""));
        let err = hook.send(&msg).await.expect_err("5xx");
        assert!(err.is_transient(), "{status}");
        assert_eq!(err.code(), Some(status.to_string().as_str()));
    }
    for status in [400, 401, 404, 422] {
        fake.then(Reply::new(status, r#"{"error":"no"}"#));
        let err = hook.send(&msg).await.expect_err("4xx");
        assert!(!err.is_transient(), "{status}");
        assert_eq!(err.code(), Some(status.to_string().as_str()));
    }
}

#[tokio::test]
async fn an_unreachable_gateway_is_transient() {
    let port = closed_port();
    let hook = transport(&format!("http://127.0.0.1:{port}/send"), None);
    let err = hook.send(&sms("hi")).await.expect_err("refused");
    assert!(err.is_transient());
    assert_eq!(err.code(), Some(codes::CONNECT));
}

#[tokio::test]
async fn a_slow_gateway_times_out() {
    let fake = FakeHttp::start(Reply::new(200, "{}"));
    fake.then(Reply::new(200, "{}").delayed(Duration::from_secs(5)));
    let mut c = WebhookConfig::new(fake.base_url());
    c.timeout_secs = 1;
    let hook = WebhookTransport::new(&c).expect("transport");
    let err = hook.send(&sms("hi")).await.expect_err("timeout");
    assert!(err.is_transient());
    assert_eq!(err.code(), Some(codes::TIMEOUT));
}

#[test]
fn secrets_and_url_queries_never_show() {
    let mut c = WebhookConfig::new("https://gw.example.com/send?token=tok-in-url");
    c.secret = Some("hmac-secret".into());
    let shown = format!("{c:?} {:?}", WebhookTransport::new(&c).expect("transport"));
    assert!(!shown.contains("hmac-secret"), "{shown}");
    assert!(!shown.contains("tok-in-url"), "{shown}");
    assert!(WebhookTransport::new(&WebhookConfig::new("ftp://gw.example.com")).is_err());
}
