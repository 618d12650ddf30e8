use crate::common::email_to;
use herald_channels::{SendError, SmtpTransport, Transport};
use herald_testkit::smtp::INJECTED_451;
use herald_testkit::{FakeSmtp, SmtpStage};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

fn transport(server: &FakeSmtp, pool_size: u32) -> SmtpTransport {
    let mut config = server.config();
    config.pool_size = pool_size;
    config.timeout_secs = 10;
    SmtpTransport::new(&config).expect("smtp transport")
}

#[tokio::test]
async fn records_the_envelope_the_message_id_and_the_subject() {
    let server = FakeSmtp::start();
    let smtp = transport(&server, 2);
    let msg = email_to(7, "Grüße — your order ✓", "Body text.");
    let accepted = smtp.send(&msg).await.expect("accepted");

    let messages = server.messages();
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    assert_eq!(m.mail_from, "<support@acme.example.com>");
    assert_eq!(m.rcpt_to, vec!["<user7@example.org>".to_string()]);
    assert_eq!(m.recipients(), vec!["user7@example.org".to_string()]);
    let id = format!("<{}@acme.example.com>", msg.idempotency_key);
    assert_eq!(id, "<01900000000070008000000000000002-7@acme.example.com>");
    assert_eq!(m.message_id.as_deref(), Some(id.as_str()));
    assert_eq!(accepted.provider_message_id.as_deref(), Some(id.as_str()));
    assert_eq!(m.subject.as_deref(), Some("Grüße — your order ✓"));
    assert_eq!(m.header("content-language").as_deref(), Some("en-US"));
    assert_eq!(m.header("To").as_deref(), Some("user7@example.org"));
    assert!(m.data.contains("\r\n\r\n"));
    assert_eq!(m.body().trim_end(), "Body text.");
    assert_eq!(m.connection, 1);
    assert_eq!(server.count_by_message_id().get(&id), Some(&1));
    assert!(server.rejections().is_empty());
    assert_eq!(
        server.config_toml(),
        format!("[channels.smtp]\nurl = \"{}\"\n", server.url())
    );
}

struct Client {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
}

impl Client {
    async fn connect(server: &FakeSmtp) -> Self {
        let stream = TcpStream::connect(server.addr()).await.expect("connect");
        let (read, writer) = stream.into_split();
        let mut client = Self {
            reader: BufReader::new(read),
            writer,
        };
        assert!(client.reply().await.starts_with("220"));
        client
    }

    /// A whole reply, continuation lines included.
    async fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).await.expect("read");
            assert!(!line.is_empty(), "connection closed");
            all.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return all;
            }
        }
    }

    async fn send(&mut self, command: &str) -> String {
        self.writer
            .write_all(format!("{command}\r\n").as_bytes())
            .await
            .expect("write");
        self.reply().await
    }

    async fn mail(&mut self, from: &str, to: &str, data: &str) -> String {
        assert!(
            self.send(&format!("MAIL FROM:<{from}>"))
                .await
                .starts_with("250")
        );
        assert!(
            self.send(&format!("RCPT TO:<{to}>"))
                .await
                .starts_with("250")
        );
        assert!(self.send("DATA").await.starts_with("354"));
        self.send(&format!("{data}\r\n.")).await
    }
}

#[tokio::test]
async fn many_messages_on_one_connection_with_and_without_rset() {
    let server = FakeSmtp::start();
    let mut c = Client::connect(&server).await;
    assert!(c.send("EHLO client.test").await.contains("250 "));
    let first = c
        .mail(
            "a@x.test",
            "b@y.test",
            "Message-ID: <one@x.test>\r\nSubject: one\r\n\r\nhello\r\n..leading dot",
        )
        .await;
    assert!(first.starts_with("250"), "{first}");
    // A second transaction right away, no RSET.
    let second = c
        .mail(
            "a@x.test",
            "c@y.test",
            "Message-ID: <two@x.test>\r\n\r\nsecond",
        )
        .await;
    assert!(second.starts_with("250"), "{second}");
    // An abandoned transaction.
    assert!(c.send("MAIL FROM:<a@x.test>").await.starts_with("250"));
    assert!(c.send("RCPT TO:<dropped@y.test>").await.starts_with("250"));
    assert!(c.send("RSET").await.starts_with("250"));
    assert!(c.send("DATA").await.starts_with("503"));
    assert!(c.send("NOOP").await.starts_with("250"));
    let third = c
        .mail("a@x.test", "d@y.test", "Subject: three\r\n\r\nthird")
        .await;
    assert!(third.starts_with("250"), "{third}");
    assert!(c.send("QUIT").await.starts_with("221"));

    let messages = server.messages();
    let to: Vec<Vec<String>> = messages.iter().map(|m| m.recipients()).collect();
    assert_eq!(
        to,
        vec![
            vec!["b@y.test".to_string()],
            vec!["c@y.test".to_string()],
            vec!["d@y.test".to_string()]
        ]
    );
    assert_eq!(messages[0].message_id.as_deref(), Some("<one@x.test>"));
    assert_eq!(messages[0].body(), "hello\r\n.leading dot\r\n");
    assert_eq!(messages[1].subject, None);
    assert_eq!(messages[2].message_id, None);
    assert_eq!(messages[2].subject.as_deref(), Some("three"));
    assert!(messages.iter().all(|m| m.connection == 1));
    assert_eq!(server.connections(), 1);
}

#[tokio::test]
async fn queued_failures_come_first_and_are_recorded() {
    let server = FakeSmtp::start();
    server.fail_next_rcpt("550 5.1.1 no such user");
    server.fail_next_data("452 4.3.1 insufficient storage");
    let mut c = Client::connect(&server).await;
    c.send("HELO client.test").await;
    assert!(c.send("MAIL FROM:<a@x.test>").await.starts_with("250"));
    assert!(c.send("RCPT TO:<b@y.test>").await.starts_with("550"));
    assert!(c.send("RSET").await.starts_with("250"));
    let reply = c.mail("a@x.test", "b@y.test", "\r\nbody").await;
    assert!(reply.starts_with("452"), "{reply}");
    let rejections = server.rejections();
    assert_eq!(rejections.len(), 2);
    assert_eq!(rejections[0].stage, SmtpStage::Rcpt);
    assert_eq!(rejections[0].recipient, "b@y.test");
    assert_eq!(rejections[0].reply, "550 5.1.1 no such user");
    assert!(!rejections[0].injected);
    assert_eq!(rejections[1].stage, SmtpStage::Data);
    assert!(server.messages().is_empty());
}

/// Sends to `count` addresses, each until it is accepted (at most 20 tries), one at a time.
async fn run(server: &FakeSmtp, count: usize) -> Vec<(usize, Result<(), SendError>)> {
    let smtp = transport(server, 4);
    let mut outcomes = Vec::new();
    for i in 0..count {
        for _ in 0..20 {
            let result = smtp.send(&email_to(i, "Hi", "body")).await.map(|_| ());
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
    let a = FakeSmtp::builder().seed(42).transient_rate(0.3).start();
    let b = FakeSmtp::builder().seed(42).transient_rate(0.3).start();
    let c = FakeSmtp::builder().seed(43).transient_rate(0.3).start();
    let run_a = run(&a, 80).await;
    assert_eq!(run_a, run(&b, 80).await);
    assert_ne!(run_a, run(&c, 80).await);

    let failures: Vec<&SendError> = run_a.iter().filter_map(|(_, r)| r.as_ref().err()).collect();
    let share = failures.len() as f64 / run_a.len() as f64;
    assert!((0.15..0.45).contains(&share), "{share}");
    for e in &failures {
        assert!(e.is_transient(), "{e}");
        assert_eq!(e.code(), Some("451"));
    }
    let rejections = a.rejections();
    assert_eq!(rejections.len(), failures.len());
    assert!(
        rejections
            .iter()
            .all(|r| r.injected && r.reply == INJECTED_451)
    );
    let stages: BTreeSet<String> = rejections
        .iter()
        .map(|r| format!("{:?}", r.stage))
        .collect();
    assert_eq!(stages.len(), 2, "both RCPT and DATA refusals occur");
    // A message refused after its data is not kept; everyone got exactly one in the end.
    assert_eq!(a.messages().len(), 80);
    assert_eq!(a.count_by_message_id().len(), 80);
    assert!(a.count_by_message_id().values().all(|&n| n == 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_pooled_connections() {
    let server = FakeSmtp::builder().seed(1).transient_rate(0.2).start();
    let smtp = Arc::new(transport(&server, 16));
    let total = 400;
    let mut tasks = Vec::new();
    for worker in 0..32 {
        let smtp = Arc::clone(&smtp);
        tasks.push(tokio::spawn(async move {
            for i in (worker..total).step_by(32) {
                let msg = email_to(i, "Load", "body");
                let mut tries = 0;
                while let Err(e) = smtp.send(&msg).await {
                    assert!(e.is_transient(), "{e}");
                    tries += 1;
                    assert!(tries < 20, "{e}");
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    let counts = server.count_by_message_id();
    assert_eq!(counts.len(), total);
    assert!(counts.values().all(|&n| n == 1));
    assert!(!server.rejections().is_empty());
    assert!(server.max_concurrent_connections() > 1);
    let connections: BTreeSet<usize> = server.messages().iter().map(|m| m.connection).collect();
    assert!(
        connections.len() < total,
        "pooled connections carry several messages"
    );
}

#[tokio::test]
async fn a_silent_server_says_nothing_and_a_dropped_one_is_gone() {
    let silent = FakeSmtp::start_silent();
    let mut stream = TcpStream::connect(silent.addr()).await.expect("connect");
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(
        Duration::from_millis(200),
        tokio::io::AsyncReadExt::read(&mut stream, &mut buf),
    )
    .await;
    assert!(read.is_err(), "no greeting");
    let addr = silent.addr();
    drop(silent);
    // The open connection was closed and the port no longer listens.
    let n = tokio::io::AsyncReadExt::read(&mut stream, &mut buf)
        .await
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert!(TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn one_pooled_connection_carries_messages_without_delayed_ack_stalls() {
    // lettre writes the data and its final "." separately; without quick ACKs each message
    // would wait ~40 ms for Linux's delayed ACK (100 messages: over 4 s).
    let server = FakeSmtp::start();
    let smtp = transport(&server, 1);
    let started = std::time::Instant::now();
    for i in 0..100 {
        smtp.send(&email_to(i, "Hi", "body"))
            .await
            .expect("accepted");
    }
    let elapsed = started.elapsed();
    assert_eq!(server.messages().len(), 100);
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
}
