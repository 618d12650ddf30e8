use crate::common::{closed_port, email, sms};
use base64::Engine;
use herald_channels::{SmtpConfig, SmtpTransport, Transport, codes};
use herald_testkit::FakeSmtp;

/// Splits a raw message into (unfolded headers, body).
fn parse(data: &str) -> (Vec<(String, String)>, String) {
    let (head, body) = data.split_once("\r\n\r\n").expect("header/body separator");
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            let last = headers.last_mut().expect("continuation after a header");
            last.1.push(' ');
            last.1.push_str(line.trim());
        } else {
            let (name, value) = line.split_once(':').expect("header line");
            headers.push((name.to_string(), value.trim().to_string()));
        }
    }
    (headers, body.to_string())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The text of a body in its Content-Transfer-Encoding.
fn decode_body(headers: &[(String, String)], body: &str) -> String {
    let encoding = header(headers, "Content-Transfer-Encoding")
        .unwrap_or("7bit")
        .to_ascii_lowercase();
    let bytes = match encoding.as_str() {
        "base64" => base64::engine::general_purpose::STANDARD
            .decode(body.replace("\r\n", ""))
            .expect("base64 body"),
        "quoted-printable" => {
            quoted_printable::decode(body, quoted_printable::ParseMode::Strict).expect("qp body")
        }
        _ => body.as_bytes().to_vec(),
    };
    String::from_utf8(bytes)
        .expect("utf-8 body")
        .trim_end_matches("\r\n")
        .to_string()
}

fn transport(url: &str) -> SmtpTransport {
    SmtpTransport::new(&SmtpConfig::new(url)).expect("smtp transport")
}

const BODY: &str = "Grüße, Jane!\nВаш заказ готов ✓ — 注文の準備ができました。";

#[tokio::test]
async fn an_email_goes_through_a_real_smtp_conversation() {
    let server = FakeSmtp::start();
    let smtp = transport(&server.url());
    let mut msg = email("Your order is ready", BODY);
    msg.unsubscribe_url = Some("https://herald.example.com/unsubscribe/abc?sig=1".into());

    let accepted = smtp.send(&msg).await.expect("accepted");
    let message_id = format!("<{}@acme.example.com>", msg.idempotency_key);
    assert_eq!(
        message_id,
        "<01900000000070008000000000000002-3@acme.example.com>"
    );
    assert_eq!(
        accepted.provider_message_id.as_deref(),
        Some(message_id.as_str())
    );

    let received = server.messages();
    assert_eq!(received.len(), 1);
    let got = &received[0];
    assert_eq!(got.mail_from, "<support@acme.example.com>");
    assert_eq!(got.rcpt_to, vec!["<jane.doe@example.org>".to_string()]);
    let (headers, body) = parse(&got.data);
    assert_eq!(header(&headers, "Message-ID"), Some(message_id.as_str()));
    assert_eq!(header(&headers, "From"), Some("support@acme.example.com"));
    assert_eq!(header(&headers, "To"), Some("jane.doe@example.org"));
    assert_eq!(header(&headers, "Subject"), Some("Your order is ready"));
    assert_eq!(
        header(&headers, "List-Unsubscribe"),
        Some("<https://herald.example.com/unsubscribe/abc?sig=1>")
    );
    assert_eq!(
        header(&headers, "List-Unsubscribe-Post"),
        Some("List-Unsubscribe=One-Click")
    );
    assert_eq!(
        header(&headers, "Content-Type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(header(&headers, "Content-Language"), Some("en-US"));
    assert!(header(&headers, "Date").is_some());
    assert_eq!(decode_body(&headers, &body), BODY.replace('\n', "\r\n"));
}

#[tokio::test]
async fn a_resend_carries_the_same_message_id_and_reuses_the_connection() {
    let server = FakeSmtp::start();
    let smtp = transport(&server.url());
    let msg = email("Reminder", "See you tomorrow.");
    for _ in 0..3 {
        smtp.send(&msg).await.expect("accepted");
        // lettre hands a connection back to its pool in a task of its own; let it run.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let ids: Vec<String> = server
        .messages()
        .iter()
        .map(|m| {
            let (headers, _) = parse(&m.data);
            header(&headers, "Message-ID").expect("id").to_string()
        })
        .collect();
    assert_eq!(ids.len(), 3);
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    assert_eq!(
        server.connections(),
        1,
        "the pool keeps one connection open"
    );
}

#[tokio::test]
async fn no_list_unsubscribe_without_a_url() {
    let server = FakeSmtp::start();
    let smtp = transport(&server.url());
    smtp.send(&email("Hi", "Plain ASCII body."))
        .await
        .expect("accepted");
    let (headers, body) = parse(&server.messages()[0].data);
    assert_eq!(header(&headers, "List-Unsubscribe"), None);
    assert_eq!(header(&headers, "List-Unsubscribe-Post"), None);
    assert_eq!(decode_body(&headers, &body), "Plain ASCII body.");
}

#[tokio::test]
async fn smtp_4xx_is_transient_and_5xx_permanent() {
    let server = FakeSmtp::start();
    let smtp = transport(&server.url());
    let msg = email("Hi", "body");

    server.fail_next_rcpt("451 4.3.0 mailbox busy, try later");
    let err = smtp.send(&msg).await.expect_err("451");
    assert!(err.is_transient(), "{err}");
    assert_eq!(err.code(), Some("451"));
    assert!(err.message().contains("try later"), "{err}");

    server.fail_next_rcpt("550 5.1.1 no such user");
    let err = smtp.send(&msg).await.expect_err("550");
    assert!(!err.is_transient(), "{err}");
    assert_eq!(err.code(), Some("550"));

    server.fail_next_data("554 5.7.1 rejected as spam");
    let err = smtp.send(&msg).await.expect_err("554");
    assert!(!err.is_transient(), "{err}");
    assert_eq!(err.code(), Some("554"));

    server.fail_next_data("452 4.3.1 insufficient storage");
    let err = smtp.send(&msg).await.expect_err("452");
    assert!(err.is_transient(), "{err}");
    assert_eq!(err.code(), Some("452"));

    // After all that the server still takes mail.
    smtp.send(&msg).await.expect("accepted");
    assert_eq!(server.messages().len(), 1);
}

#[tokio::test]
async fn a_refused_connection_is_transient() {
    let port = closed_port();
    let smtp = transport(&format!("smtp://127.0.0.1:{port}"));
    let err = smtp.send(&email("Hi", "body")).await.expect_err("refused");
    assert!(err.is_transient(), "{err}");
    assert_eq!(err.code(), Some(codes::CONNECT), "{err}");
    assert!(!err.may_have_been_sent());
}

#[tokio::test]
async fn a_silent_server_times_out_as_transient() {
    let server = FakeSmtp::start_silent();
    let mut config = SmtpConfig::new(server.url());
    config.timeout_secs = 1;
    let smtp = SmtpTransport::new(&config).expect("transport");
    let started = std::time::Instant::now();
    let err = smtp.send(&email("Hi", "body")).await.expect_err("timeout");
    assert!(err.is_transient(), "{err}");
    assert_eq!(err.code(), Some(codes::TIMEOUT), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[tokio::test]
async fn implicit_tls_against_a_plain_server_fails_as_transient_tls() {
    // Exercises rustls with the ring provider end to end: the handshake starts and fails.
    let server = FakeSmtp::start();
    let mut config = SmtpConfig::new(format!("smtps://127.0.0.1:{}", server.port()));
    config.timeout_secs = 2;
    let smtp = SmtpTransport::new(&config).expect("transport");
    let err = smtp.send(&email("Hi", "body")).await.expect_err("tls");
    assert!(err.is_transient(), "{err}");
    assert_eq!(err.code(), Some(codes::TLS), "{err}");
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn only_email_and_only_email_addresses() {
    let server = FakeSmtp::start();
    let smtp = transport(&server.url());
    let err = smtp.send(&sms("hi")).await.expect_err("sms");
    assert_eq!(err.code(), Some(codes::UNSUPPORTED_CHANNEL));
    let mut msg = sms("hi");
    msg.channel = herald_core::Channel::Email;
    let err = smtp.send(&msg).await.expect_err("phone numbers");
    assert_eq!(err.code(), Some(codes::INVALID_ADDRESS));
    let mut msg = email("Hi", "body");
    msg.unsubscribe_url = Some("javascript:alert(1)".into());
    let err = smtp.send(&msg).await.expect_err("bad url");
    assert_eq!(err.code(), Some(codes::INVALID_MESSAGE));
    assert!(!err.is_transient());
    assert_eq!(server.connections(), 0);
}

#[tokio::test]
async fn a_line_break_in_the_subject_cannot_add_headers() {
    let server = FakeSmtp::start();
    let smtp = transport(&server.url());
    smtp.send(&email("Hello\r\nBcc: evil@example.net", "body"))
        .await
        .expect("accepted");
    let (headers, _) = parse(&server.messages()[0].data);
    assert_eq!(header(&headers, "Bcc"), None);
    assert_eq!(
        header(&headers, "Subject"),
        Some("Hello  Bcc: evil@example.net")
    );
}
