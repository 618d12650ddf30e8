use herald_channels::{ChannelsConfig, ConfigError, Transports};
use herald_core::Provider;

const TOML: &str = r#"
[channels.file]
path = "var/outbox.jsonl"

[channels.smtp]
url = "smtp+starttls://mail.example.com:587"
username = "herald"
password = "smtp-password"
timeout_secs = 10
pool_size = 4

[channels.twilio]
account_sid = "AC0123456789abcdef0123456789abcdef"
auth_token = "twilio-token"
base_url = "http://127.0.0.1:9"

[channels.webhook]
url = "https://gw.example.com/send"
secret = "webhook-secret"
"#;

#[derive(serde::Deserialize)]
struct HeraldToml {
    channels: ChannelsConfig,
}

#[test]
fn the_channels_table_of_herald_toml() {
    let parsed: HeraldToml = toml::from_str(TOML).expect("valid config");
    let c = parsed.channels;
    assert_eq!(c.file.path, std::path::PathBuf::from("var/outbox.jsonl"));
    let smtp = c.smtp.as_ref().expect("smtp");
    assert_eq!(smtp.url, "smtp+starttls://mail.example.com:587");
    assert_eq!(
        smtp.password.as_ref().map(|p| p.expose()),
        Some("smtp-password")
    );
    assert_eq!((smtp.timeout_secs, smtp.pool_size), (10, 4));
    let twilio = c.twilio.as_ref().expect("twilio");
    assert_eq!(twilio.auth_token.expose(), "twilio-token");
    assert_eq!(twilio.timeout_secs, 30);
    assert_eq!(twilio.connect_timeout_secs, 5);
    let webhook = c.webhook.as_ref().expect("webhook");
    assert_eq!(
        webhook.secret.as_ref().map(|s| s.expose()),
        Some("webhook-secret")
    );

    let shown = format!("{c:?}");
    for secret in ["smtp-password", "twilio-token", "webhook-secret"] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }

    // Built outside any async runtime, and dropped there too.
    let transports =
        Transports::from_config(&c, Some("https://herald.example.com")).expect("built");
    assert_eq!(
        transports.providers(),
        vec![
            Provider::File,
            Provider::Smtp,
            Provider::Twilio,
            Provider::Webhook
        ]
    );
    assert_eq!(
        transports.get(Provider::Twilio).map(|t| t.name()),
        Some("twilio")
    );
    assert!(!format!("{transports:?}").contains("twilio-token"));
}

#[test]
fn defaults_give_a_file_sink_only() {
    let parsed: HeraldToml = toml::from_str("[channels]\n").expect("valid");
    assert_eq!(
        parsed.channels.file.path,
        std::path::PathBuf::from("outbox.jsonl")
    );
    let transports = Transports::from_config(&parsed.channels, None).expect("built");
    assert_eq!(transports.providers(), vec![Provider::File]);
    assert!(transports.get(Provider::Smtp).is_none());
    let empty: ChannelsConfig = toml::from_str("").expect("empty");
    assert!(empty.smtp.is_none());
}

#[test]
fn mistakes_are_named() {
    let typo = toml::from_str::<HeraldToml>(
        "[channels.twilio]\naccount_sid = \"AC1\"\nauth_tokn = \"x\"\n",
    );
    assert!(typo.is_err());
    let bad: HeraldToml =
        toml::from_str("[channels.smtp]\nurl = \"http://u:pw-in-url@mail.example.com\"\n")
            .expect("parses");
    let err = Transports::from_config(&bad.channels, None).expect_err("wrong scheme");
    assert!(
        matches!(
            err,
            ConfigError::InvalidUrl {
                field: "smtp.url",
                ..
            }
        ),
        "{err}"
    );
    assert!(!err.to_string().contains("pw-in-url"), "{err}");
}

#[tokio::test]
async fn built_transports_send() {
    let dir = crate::common::TempDir::new();
    let toml = format!(
        "[channels.file]\npath = {:?}\n",
        dir.0.join("o.jsonl").display().to_string()
    );
    let parsed: HeraldToml = toml::from_str(&toml).expect("valid");
    let transports = Transports::from_config(&parsed.channels, None).expect("built");
    let file = transports.get(Provider::File).expect("file");
    file.send(&crate::common::sms("hi")).await.expect("sent");
    assert!(dir.0.join("o.jsonl").exists());
}
