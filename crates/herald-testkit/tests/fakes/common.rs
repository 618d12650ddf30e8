use herald_channels::{OutboundMessage, idempotency_key};
use herald_core::{Address, Channel, E164, EmailAddress, Language};
use std::io::{Read, Write};
use std::net::SocketAddr;
use uuid::Uuid;

pub const OUTREACH: Uuid = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0002);

pub fn phone(s: &str) -> Address {
    Address::Phone(E164::parse(s, None).expect("test phone number"))
}

pub fn email_address(s: &str) -> Address {
    Address::Email(EmailAddress::parse(s).expect("test email address"))
}

pub fn message(
    channel: Channel,
    from: Address,
    to: Address,
    recipient_id: i64,
    body: &str,
) -> OutboundMessage {
    OutboundMessage {
        idempotency_key: idempotency_key(OUTREACH, recipient_id),
        channel,
        from,
        to,
        subject: None,
        body: body.to_string(),
        html: None,
        language: Language::parse("en-US").expect("language"),
        campaign_id: Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001),
        outreach_id: OUTREACH,
        recipient_id,
        unsubscribe_url: None,
        agent_number: None,
        voice_settings: Default::default(),
        in_reply_to: None,
    }
}

/// The `i`-th test phone number: +1415555xxxx.
pub fn number(i: usize) -> String {
    format!("+1415555{:04}", i % 10_000)
}

pub fn sms_to(i: usize, body: &str) -> OutboundMessage {
    message(
        Channel::Sms,
        phone("+14155550100"),
        phone(&number(i)),
        i as i64,
        body,
    )
}

pub fn email_to(i: usize, subject: &str, body: &str) -> OutboundMessage {
    let mut m = message(
        Channel::Email,
        email_address("support@acme.example.com"),
        email_address(&format!("user{i}@example.org")),
        i as i64,
        body,
    );
    m.subject = Some(subject.to_string());
    m
}

/// A raw HTTP/1.1 exchange over a blocking socket: (status, headers, body).
pub fn raw_http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Vec<(String, String)>, String) {
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let (head, body) = response.split_once("\r\n\r\n").expect("head and body");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, body.to_string())
}

pub fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}
