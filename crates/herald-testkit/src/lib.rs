//! Fake providers for Herald's tests, on real TCP on 127.0.0.1, so the code under test (or a
//! child `herald serve` process configured with their URLs) talks to them as to the real ones:
//!
//! | fake | stands in for | point Herald at it with |
//! | --- | --- | --- |
//! | [`FakeTwilio`] | Twilio's Messages and Calls APIs | [`FakeTwilio::config`], [`FakeTwilio::config_toml`] (`base_url`) |
//! | [`FakeSmtp`] | an SMTP relay | [`FakeSmtp::config`], [`FakeSmtp::config_toml`] (`url`) |
//! | [`FakeHttp`] | any HTTP endpoint (webhook gateways) | [`FakeHttp::url`] |
//!
//! Each runs on a thread and tokio runtime of its own, so it answers whatever the test's own
//! thread does (blocking on a child process, paused time, no runtime at all), and its
//! constructor is an ordinary function callable anywhere. It stays up until the value is dropped;
//! dropping it closes the port and every open connection.
//!
//! The failures the fakes inject at a rate are drawn deterministically from a seed and what the
//! request is about (the recipient and how many times it was tried), not from arrival order, so a
//! test run with many concurrent sends is reproducible.

mod http;
mod server;
pub mod smtp;
pub mod twilio;

pub use http::{FakeHttp, RecordedRequest, Reply};
pub use smtp::{FakeSmtp, FakeSmtpBuilder, SmtpMessage, SmtpRejection, SmtpStage};
pub use twilio::{
    FakeTwilio, FakeTwilioBuilder, TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, TwilioMessage, TwilioRequest,
    TwilioResource,
};

/// A port on 127.0.0.1 where nothing listens (bound, then released).
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}
