use crate::common::{TempDir, email, sms};
use herald_channels::{FileTransport, Transport, codes};
use herald_core::Channel;
use std::collections::HashSet;
use std::sync::Arc;

fn fixed_clock() -> herald_channels::Clock {
    Arc::new(|| "2026-03-01T14:00:00Z".parse().expect("timestamp"))
}

#[tokio::test]
async fn writes_one_json_line_per_message() {
    let dir = TempDir::new();
    let path = dir.0.join("nested").join("outbox.jsonl");
    let transport = FileTransport::new(&path).with_clock(fixed_clock());
    assert!(!path.exists(), "nothing is created before the first send");

    let mut msg = email("Your order", "Grüße, Jane — ваш заказ готов ✓");
    msg.unsubscribe_url = Some("https://h.example.com/u/1".into());
    let accepted = transport.send(&msg).await.expect("sent");
    assert_eq!(
        accepted.provider_message_id.as_deref(),
        Some(format!("file-{}", msg.idempotency_key).as_str())
    );
    transport.send(&sms("Hi Jane")).await.expect("sent");

    let text = std::fs::read_to_string(&path).expect("outbox");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(text.ends_with('\n'));
    let first: serde_json::Value = serde_json::from_str(lines[0]).expect("json");
    assert_eq!(
        first,
        serde_json::json!({
            "idempotency_key": msg.idempotency_key,
            "channel": "email",
            "from": "support@acme.example.com",
            "to": "jane.doe@example.org",
            "subject": "Your order",
            "body": "Grüße, Jane — ваш заказ готов ✓",
            "language": "en-US",
            "campaign_id": "01900000-0000-7000-8000-000000000001",
            "outreach_id": "01900000-0000-7000-8000-000000000002",
            "recipient_id": 3,
            "sent_at": "2026-03-01T14:00:00Z",
        })
    );
    let second: serde_json::Value = serde_json::from_str(lines[1]).expect("json");
    assert_eq!(second["channel"], "sms");
    assert_eq!(second["to"], "+14155550199");
    assert_eq!(second["subject"], serde_json::Value::Null);
}

#[tokio::test]
async fn appends_to_what_is_there() {
    let dir = TempDir::new();
    let path = dir.0.join("outbox.jsonl");
    std::fs::write(&path, "{\"earlier\":true}\n").expect("seed");
    let transport = FileTransport::new(&path);
    transport.send(&sms("one")).await.expect("sent");
    let text = std::fs::read_to_string(&path).expect("outbox");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "{\"earlier\":true}");
    let line: serde_json::Value = serde_json::from_str(lines[1]).expect("json");
    // The real clock writes RFC 3339.
    let sent_at = line["sent_at"].as_str().expect("sent_at");
    assert!(sent_at.parse::<jiff::Timestamp>().is_ok(), "{sent_at}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_sends_make_fifty_intact_lines() {
    let dir = TempDir::new();
    let path = dir.0.join("outbox.jsonl");
    let transport = Arc::new(FileTransport::new(&path));
    // A long body makes torn or interleaved writes visible.
    let body = "x".repeat(8 * 1024);
    let mut tasks = Vec::new();
    for i in 0..50i64 {
        let transport = Arc::clone(&transport);
        let mut msg = sms(&body);
        msg.recipient_id = i;
        msg.idempotency_key = herald_channels::idempotency_key(msg.outreach_id, msg.recipient_id);
        tasks.push(tokio::spawn(async move { transport.send(&msg).await }));
    }
    for task in tasks {
        task.await.expect("task").expect("sent");
    }
    let text = std::fs::read_to_string(&path).expect("outbox");
    let mut keys = HashSet::new();
    let mut count = 0;
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("every line is JSON");
        assert_eq!(v["body"].as_str().map(str::len), Some(body.len()));
        keys.insert(v["idempotency_key"].as_str().expect("key").to_string());
        count += 1;
    }
    assert_eq!(count, 50);
    assert_eq!(keys.len(), 50);
}

#[tokio::test]
async fn an_unwritable_outbox_is_a_transient_error() {
    let dir = TempDir::new();
    // A directory where the file should be.
    let transport = FileTransport::new(&dir.0);
    let err = transport.send(&sms("hi")).await.expect_err("cannot write");
    assert!(err.is_transient());
    assert_eq!(err.code(), Some(codes::IO));
}

#[tokio::test]
async fn chat_is_not_a_file_channel() {
    let dir = TempDir::new();
    let transport = FileTransport::new(dir.0.join("o.jsonl"));
    let mut msg = sms("hi");
    msg.channel = Channel::Chat;
    let err = transport.send(&msg).await.expect_err("chat");
    assert_eq!(err.code(), Some(codes::UNSUPPORTED_CHANNEL));
    assert!(!err.is_transient());
}
