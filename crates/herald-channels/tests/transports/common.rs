use herald_channels::{OutboundMessage, idempotency_key};
use herald_core::{Address, Channel, E164, EmailAddress, Language};
pub use herald_testkit::closed_port;
use std::path::PathBuf;
use uuid::Uuid;

pub fn phone(s: &str) -> Address {
    Address::Phone(E164::parse(s, None).expect("test phone number"))
}

pub fn email_address(s: &str) -> Address {
    Address::Email(EmailAddress::parse(s).expect("test email address"))
}

pub fn message(channel: Channel, from: Address, to: Address, body: &str) -> OutboundMessage {
    let outreach_id = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0002);
    let recipient_id: i64 = 3;
    OutboundMessage {
        idempotency_key: idempotency_key(outreach_id, recipient_id),
        channel,
        from,
        to,
        subject: None,
        body: body.to_string(),
        html: None,
        language: Language::parse("en-US").expect("language"),
        campaign_id: Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001),
        outreach_id,
        recipient_id,
        unsubscribe_url: None,
        agent_number: None,
        voice_settings: Default::default(),
        in_reply_to: None,
    }
}

pub fn sms(body: &str) -> OutboundMessage {
    message(
        Channel::Sms,
        phone("+14155550100"),
        phone("+14155550199"),
        body,
    )
}

pub fn email(subject: &str, body: &str) -> OutboundMessage {
    let mut m = message(
        Channel::Email,
        email_address("support@acme.example.com"),
        email_address("jane.doe@example.org"),
        body,
    );
    m.subject = Some(subject.to_string());
    m
}

/// A fresh directory under the system temp dir, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("herald-channels-{}", Uuid::now_v7()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
