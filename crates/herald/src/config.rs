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
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerConfig {
    pub bind: SocketAddr,
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
            },
            log: LogConfig {
                format: "text".into(),
            },
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("database_url", &redact_url(&self.database_url))
            .field("server", &self.server)
            .field("log", &self.log)
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
}
