//! Configuration: defaults, then `herald.toml` (or the file named by `--config`), then
//! `HERALD_*` environment variables (`HERALD_DATABASE_URL`, `HERALD_SERVER__BIND`).

use anyhow::Context;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::Path;

#[derive(Clone, Serialize, Deserialize)]
pub struct Config {
    /// `sqlite://herald.db` (default) or `postgres://user@host/db`.
    pub database_url: String,
    pub server: ServerConfig,
    pub log: LogConfig,
    /// `[channels]`: the providers messages go out through (the file sink is always there).
    #[serde(default, skip_serializing)]
    pub channels: herald_channels::ChannelsConfig,
    /// `[dispatch]`: batch size, concurrency, lease, retries, rates per sender.
    #[serde(default, skip_serializing)]
    pub dispatch: herald_engine::DispatchConfig,
    /// `[replies]`: the attribution window, the HELP text and opt-out confirmations.
    #[serde(default, skip_serializing)]
    pub replies: herald_engine::RepliesConfig,
    /// `[outreaches]`: limits on recipient lists, uploads at once and progress streams.
    #[serde(default, skip_serializing)]
    pub outreaches: herald_server::limits::OutreachLimits,
    /// `[http]`: header read timeout, idle timeout, connection cap.
    #[serde(default, skip_serializing)]
    pub http: HttpConfig,
    /// `[sign_in]`: concurrent password hashes, sign-in attempts per client address.
    #[serde(default, skip_serializing)]
    pub sign_in: SignInConfig,
    /// `[chat]`: bounds on chat visitors: messages per minute, event streams.
    #[serde(default, skip_serializing)]
    pub chat: ChatConfig,
}

/// `[http]`: bounds on HTTP connections (see docs/security.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// A request's headers must arrive within this (also closes idle keep-alive connections).
    pub header_read_timeout_secs: u64,
    /// A connection on which no byte moves for this long is closed.
    pub idle_timeout_secs: u64,
    /// Open connections at most (the idlest is closed to make room for a new one).
    pub max_connections: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        let d = herald_server::serve::HttpLimits::default();
        Self {
            header_read_timeout_secs: d.header_read_timeout.as_secs(),
            idle_timeout_secs: d.idle_timeout.as_secs(),
            max_connections: d.max_connections,
        }
    }
}

impl HttpConfig {
    pub fn limits(&self) -> herald_server::serve::HttpLimits {
        herald_server::serve::HttpLimits {
            header_read_timeout: std::time::Duration::from_secs(
                self.header_read_timeout_secs.max(1),
            ),
            idle_timeout: std::time::Duration::from_secs(self.idle_timeout_secs.max(1)),
            max_connections: self.max_connections.max(1),
        }
    }
}

/// `[sign_in]`: bounds on sign-in and setup work (see docs/security.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SignInConfig {
    /// Password hashes running at once (default: the machine's cores); more wait briefly, then
    /// get 503.
    pub concurrent_hashes: usize,
    /// Sign-in and setup posts per client address and minute; more get 429.
    pub attempts_per_minute: u32,
}

impl Default for SignInConfig {
    fn default() -> Self {
        let d = herald_server::web::limits::SignInLimits::default();
        Self {
            concurrent_hashes: d.concurrent_hashes,
            attempts_per_minute: d.attempts_per_minute,
        }
    }
}

/// `[chat]`: bounds on what chat visitors may cause (see docs/security.md). The longest message
/// (2,000 characters) and the poll interval are fixed.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChatConfig {
    /// Messages one conversation may receive per minute; more get 429.
    pub messages_per_minute_per_conversation: u32,
    /// Messages and chat starts per client address and minute; more get 429. Behind a proxy
    /// the address is the proxy's, for every visitor: raise it, and limit per client there.
    pub messages_per_minute_per_address: u32,
    /// Event streams open on one node.
    pub streams_per_node: usize,
    /// Event streams open on one conversation.
    pub streams_per_conversation: usize,
}

impl Default for ChatConfig {
    fn default() -> Self {
        let d = herald_server::routes::chat_live::ChatLimits::default();
        Self {
            messages_per_minute_per_conversation: d.messages_per_minute_per_conversation,
            messages_per_minute_per_address: d.messages_per_minute_per_address,
            streams_per_node: d.streams_per_node,
            streams_per_conversation: d.streams_per_conversation,
        }
    }
}

impl ChatConfig {
    pub fn limits(&self) -> herald_server::routes::chat_live::ChatLimits {
        herald_server::routes::chat_live::ChatLimits {
            messages_per_minute_per_conversation: self.messages_per_minute_per_conversation.max(1),
            messages_per_minute_per_address: self.messages_per_minute_per_address.max(1),
            streams_per_node: self.streams_per_node,
            streams_per_conversation: self.streams_per_conversation,
            ..herald_server::routes::chat_live::ChatLimits::default()
        }
    }
}

impl SignInConfig {
    pub fn limits(&self) -> herald_server::web::limits::SignInLimits {
        let hashes = self.concurrent_hashes.max(1);
        herald_server::web::limits::SignInLimits {
            concurrent_hashes: hashes,
            hash_queue: hashes * 4,
            attempts_per_minute: self.attempts_per_minute.max(1),
            ..herald_server::web::limits::SignInLimits::default()
        }
    }
}

#[derive(Clone, Serialize, Deserialize)]
pub struct ServerConfig {
    pub bind: SocketAddr,
    /// The URL providers and customers reach Herald at (status callbacks, voice callbacks,
    /// unsubscribe links). Default `http://<bind>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// The key that signs unsubscribe links. Without it Herald makes one per start, and links
    /// sent before a restart stop working.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Where to accept customers' email replies over SMTP (`127.0.0.1:2525`); off when unset.
    /// Point the MX (or a forwarding rule) of the email senders' domain at it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_bind: Option<SocketAddr>,
}

impl ServerConfig {
    /// `public_url` without a trailing slash, else `http://<bind>`.
    pub fn public_url(&self) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => format!("http://{}", self.bind),
        }
    }

    /// Where people reach the web UI of a server listening on `addr`: `public_url` (without a
    /// trailing slash), else `http://<addr>` (the address really bound, so port 0 is resolved).
    pub fn web_url(&self, addr: SocketAddr) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => format!("http://{addr}"),
        }
    }

    /// Whether the web UI's cookies must be `Secure`: when people reach it over https.
    pub fn secure_cookies(&self) -> bool {
        self.public_url
            .as_deref()
            .is_some_and(|u| u.trim().to_ascii_lowercase().starts_with("https://"))
    }
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("bind", &self.bind)
            .field("public_url", &self.public_url)
            .field("secret", &self.secret.as_ref().map(|_| "***"))
            .field("smtp_bind", &self.smtp_bind)
            .finish()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogConfig {
    /// `text` (default) or `json`.
    pub format: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            database_url: "sqlite://herald.db".into(),
            server: ServerConfig {
                bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
                public_url: None,
                secret: None,
                smtp_bind: None,
            },
            log: LogConfig {
                format: "text".into(),
            },
            channels: herald_channels::ChannelsConfig::default(),
            dispatch: herald_engine::DispatchConfig::default(),
            replies: herald_engine::RepliesConfig::default(),
            outreaches: herald_server::limits::OutreachLimits::default(),
            http: HttpConfig::default(),
            sign_in: SignInConfig::default(),
            chat: ChatConfig::default(),
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("database_url", &redact_url(&self.database_url))
            .field("server", &self.server)
            .field("log", &self.log)
            .field("channels", &self.channels)
            .field("dispatch", &self.dispatch)
            .field("replies", &self.replies)
            .field("outreaches", &self.outreaches)
            .field("http", &self.http)
            .field("sign_in", &self.sign_in)
            .field("chat", &self.chat)
            .finish()
    }
}

/// A database URL with any password replaced, safe for logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

impl Config {
    /// Reads the configuration. An explicitly named file must exist; `herald.toml` in the
    /// working directory is read when present.
    pub fn load(explicit: Option<&Path>) -> anyhow::Result<Self> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match explicit {
            Some(path) => {
                anyhow::ensure!(
                    path.exists(),
                    "configuration file {} does not exist",
                    path.display()
                );
                figment = figment.merge(Toml::file(path));
            }
            None => figment = figment.merge(Toml::file("herald.toml")),
        }
        figment
            .merge(Env::prefixed("HERALD_").split("__"))
            .extract()
            .context("the configuration is not valid (herald.toml and HERALD_* variables)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn web_links_and_cookies_follow_the_public_url() {
        let addr: SocketAddr = "127.0.0.1:41234".parse().unwrap();
        let mut server = Config::default().server;
        assert_eq!(server.web_url(addr), "http://127.0.0.1:41234");
        assert!(!server.secure_cookies());
        server.public_url = Some("HTTPS://herald.example.com/".into());
        assert_eq!(server.web_url(addr), "HTTPS://herald.example.com");
        assert!(server.secure_cookies());
        server.public_url = Some("http://herald.example.com".into());
        assert!(!server.secure_cookies());
    }

    #[test]
    fn passwords_never_reach_the_log() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/herald"),
            "postgres://app:***@db:5432/herald"
        );
        assert_eq!(redact_url("sqlite://herald.db"), "sqlite://herald.db");
        let cfg = Config {
            database_url: "postgres://app:s3cret@db/herald".into(),
            ..Config::default()
        };
        assert!(!format!("{cfg:?}").contains("s3cret"));
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's test jail returns its own error type
    fn file_then_environment() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "herald.toml",
                "database_url = \"sqlite://from-file.db\"\n[server]\nbind = \"127.0.0.1:9999\"\n",
            )?;
            let cfg = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(cfg.database_url, "sqlite://from-file.db");
            assert_eq!(cfg.server.bind.port(), 9999);
            jail.set_env("HERALD_DATABASE_URL", "sqlite://from-env.db");
            jail.set_env("HERALD_SERVER__BIND", "127.0.0.1:7777");
            let cfg = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(cfg.database_url, "sqlite://from-env.db");
            assert_eq!(cfg.server.bind.port(), 7777);
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn channels_and_dispatch_come_from_the_file() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "herald.toml",
                r#"
[server]
bind = "127.0.0.1:9999"
public_url = "https://herald.example.com/"
secret = "s3cret-key"
[channels.file]
path = "out/outbox.jsonl"
[channels.twilio]
account_sid = "AC123"
auth_token = "tok3n"
base_url = "http://127.0.0.1:4010"
[dispatch]
batch_size = 50
[dispatch.rates]
email = 5.0
[dispatch.rates.senders]
"+15550001234" = 100.0
"#,
            )?;
            let cfg = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(cfg.server.public_url(), "https://herald.example.com");
            assert_eq!(
                cfg.channels.file.path,
                std::path::PathBuf::from("out/outbox.jsonl")
            );
            let twilio = cfg.channels.twilio.as_ref().expect("twilio");
            assert_eq!(twilio.base_url, "http://127.0.0.1:4010");
            assert_eq!(cfg.dispatch.batch_size, 50);
            assert_eq!(cfg.dispatch.rates.email, 5.0);
            assert_eq!(cfg.dispatch.rates.sms, 1.0, "defaults stay");
            assert_eq!(cfg.dispatch.rates.senders["+15550001234"], 100.0);
            let shown = format!("{cfg:?}");
            assert!(
                !shown.contains("tok3n") && !shown.contains("s3cret-key"),
                "{shown}"
            );
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn outreach_limits_come_from_the_file() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "herald.toml",
                "[outreaches]\nmax_columns = 50\nconcurrent_uploads = 2\n",
            )?;
            let cfg = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(cfg.outreaches.max_columns, 50);
            assert_eq!(cfg.outreaches.concurrent_uploads, 2);
            assert_eq!(cfg.outreaches.max_row_bytes, 64 * 1024, "defaults stay");
            assert_eq!(cfg.outreaches.event_streams_per_caller, 10);
            jail.set_env("HERALD_OUTREACHES__MAX_COLUMNS", "70");
            let cfg = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(cfg.outreaches.max_columns, 70);
            jail.create_file("herald.toml", "[outreaches]\nmax_colums = 50\n")?;
            assert!(Config::load(None).is_err(), "a misspelt key is an error");
            Ok(())
        });
    }

    #[test]
    fn public_url_defaults_to_the_bind_address() {
        assert_eq!(
            Config::default().server.public_url(),
            "http://127.0.0.1:8080"
        );
    }
}
