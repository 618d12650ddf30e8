//! A small SMTP server (RFC 5321 subset: EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT) on
//! 127.0.0.1 that stores what it receives and can refuse on demand.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    /// The message as sent after DATA, dot-unstuffed, with CRLF line ends.
    pub data: String,
}

#[derive(Default)]
struct Shared {
    messages: Mutex<Vec<Received>>,
    /// Replies (like "451 4.3.0 try later") for the next RCPT TO commands.
    rcpt_failures: Mutex<VecDeque<String>>,
    /// Replies for the next end-of-DATA.
    data_failures: Mutex<VecDeque<String>>,
    connections: AtomicUsize,
}

pub struct FakeSmtp {
    pub url: String,
    pub port: u16,
    shared: Arc<Shared>,
}

impl FakeSmtp {
    pub async fn start() -> Self {
        Self::start_with(false).await
    }

    /// A server that accepts connections and never says anything.
    pub async fn start_silent() -> Self {
        Self::start_with(true).await
    }

    async fn start_with(silent: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let shared = Arc::new(Shared::default());
        let accept_shared = Arc::clone(&shared);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                accept_shared.connections.fetch_add(1, Ordering::SeqCst);
                let shared = Arc::clone(&accept_shared);
                tokio::spawn(async move {
                    if silent {
                        tokio::time::sleep(std::time::Duration::from_secs(30)).await;
                        drop(stream);
                    } else {
                        let _ = session(stream, shared).await;
                    }
                });
            }
        });
        Self {
            url: format!("smtp://127.0.0.1:{port}"),
            port,
            shared,
        }
    }

    pub fn fail_next_rcpt(&self, reply: &str) {
        self.shared
            .rcpt_failures
            .lock()
            .unwrap()
            .push_back(reply.to_string());
    }

    pub fn fail_next_data(&self, reply: &str) {
        self.shared
            .data_failures
            .lock()
            .unwrap()
            .push_back(reply.to_string());
    }

    pub fn messages(&self) -> Vec<Received> {
        self.shared.messages.lock().unwrap().clone()
    }

    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }
}

async fn session(stream: tokio::net::TcpStream, shared: Arc<Shared>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    write.write_all(b"220 fake.test ESMTP ready\r\n").await?;
    let mut mail_from: Option<String> = None;
    let mut rcpt_to: Vec<String> = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end_matches(['\r', '\n']).to_string();
        let upper = command.to_ascii_uppercase();
        let reply: String = if upper.starts_with("EHLO") {
            "250-fake.test\r\n250 8BITMIME".into()
        } else if upper.starts_with("HELO") {
            "250 fake.test".into()
        } else if upper.starts_with("MAIL FROM:") {
            mail_from = command["MAIL FROM:".len()..]
                .split_whitespace()
                .next()
                .map(str::to_string);
            rcpt_to.clear();
            "250 2.1.0 OK".into()
        } else if upper.starts_with("RCPT TO:") {
            let failure = shared.rcpt_failures.lock().unwrap().pop_front();
            match failure {
                Some(reply) => reply,
                None => {
                    rcpt_to.push(command["RCPT TO:".len()..].trim().to_string());
                    "250 2.1.5 OK".into()
                }
            }
        } else if upper == "DATA" {
            if mail_from.is_none() || rcpt_to.is_empty() {
                "503 5.5.1 need MAIL and RCPT first".into()
            } else {
                write.write_all(b"354 go ahead\r\n").await?;
                let mut data = String::new();
                loop {
                    line.clear();
                    if reader.read_line(&mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" || line == ".\n" {
                        break;
                    }
                    let unstuffed = line.strip_prefix('.').unwrap_or(&line);
                    data.push_str(unstuffed);
                }
                let failure = shared.data_failures.lock().unwrap().pop_front();
                match failure {
                    Some(reply) => reply,
                    None => {
                        shared.messages.lock().unwrap().push(Received {
                            mail_from: mail_from.take().unwrap_or_default(),
                            rcpt_to: std::mem::take(&mut rcpt_to),
                            data,
                        });
                        "250 2.0.0 queued".into()
                    }
                }
            }
        } else if upper == "RSET" {
            mail_from = None;
            rcpt_to.clear();
            "250 2.0.0 OK".into()
        } else if upper == "NOOP" {
            "250 2.0.0 OK".into()
        } else if upper == "QUIT" {
            write.write_all(b"221 2.0.0 bye\r\n").await?;
            return Ok(());
        } else {
            "502 5.5.2 command not recognized".into()
        };
        write.write_all(format!("{reply}\r\n").as_bytes()).await?;
    }
}
