//! [`FakeSmtp`]: an SMTP server (the RFC 5321 subset EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP,
//! QUIT; no TLS, no AUTH) on 127.0.0.1 that keeps what it receives and can refuse on demand.
//!
//! Any number of connections at once, each carrying any number of messages (a pooled client's
//! way), with RSET between them or not.
//!
//! # Failure injection
//!
//! - [`FakeSmtp::fail_next_rcpt`] / [`FakeSmtp::fail_next_data`]: the next RCPT TO, or the next
//!   end of DATA, gets the given reply (any code), in the order queued.
//! - [`FakeSmtpBuilder::transient_rate`]: that share of transactions gets `451`, either at the
//!   first RCPT TO or after the message data. Whether the `n`-th transaction for a recipient (the
//!   first RCPT TO's address) fails, and where, depends only on the seed, the address and `n`, so
//!   a run is reproducible however connections interleave.

use crate::server::{Background, check_rate, draw, lock, unit};
use base64::Engine;
use herald_channels::SmtpConfig;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// The reply of an injected transient failure.
pub const INJECTED_451: &str = "451 4.3.0 Temporary failure, please try again later";

/// One message the server accepted (answered `250` to its data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpMessage {
    /// The MAIL FROM path as sent, angle brackets included: `<support@acme.example.com>`.
    pub mail_from: String,
    /// The RCPT TO paths as sent, angle brackets included.
    pub rcpt_to: Vec<String>,
    /// The message as sent after DATA, dot-unstuffed, with CRLF line ends (bytes that are not
    /// UTF-8 replaced).
    pub data: String,
    /// The `Message-ID` header, angle brackets included.
    pub message_id: Option<String>,
    /// The `Subject` header, RFC 2047 encoded words decoded.
    pub subject: Option<String>,
    /// Which connection carried it (1 for the first the server accepted).
    pub connection: usize,
}

impl SmtpMessage {
    /// The envelope recipients without angle brackets.
    pub fn recipients(&self) -> Vec<String> {
        self.rcpt_to.iter().map(|r| strip_path(r)).collect()
    }

    /// The header fields, unfolded, in order (values trimmed, not decoded).
    pub fn headers(&self) -> Vec<(String, String)> {
        parse_headers(&self.data)
    }

    /// The first header of that name (any case), unfolded, not decoded.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers()
            .into_iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// What follows the blank line after the headers, as sent (still transfer-encoded).
    pub fn body(&self) -> &str {
        self.data
            .split_once("\r\n\r\n")
            .map(|(_, body)| body)
            .unwrap_or("")
    }
}

/// Where a transaction was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpStage {
    Rcpt,
    Data,
}

/// A transaction the server refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpRejection {
    pub stage: SmtpStage,
    /// The recipient the RCPT TO named (RCPT) or the first recipient (DATA), without brackets.
    pub recipient: String,
    /// The reply given, such as `451 4.3.0 ...`.
    pub reply: String,
    /// Whether [`FakeSmtpBuilder::transient_rate`] chose it (rather than a queued failure).
    pub injected: bool,
}

#[derive(Default)]
struct Records {
    messages: Vec<SmtpMessage>,
    rejections: Vec<SmtpRejection>,
    /// Replies for the next RCPT TO commands.
    rcpt_failures: VecDeque<String>,
    /// Replies for the next ends of DATA.
    data_failures: VecDeque<String>,
    /// Transactions so far per first recipient.
    attempts: HashMap<String, u64>,
}

struct Shared {
    seed: u64,
    /// An `f64`'s bits.
    transient_rate: AtomicU64,
    connections: AtomicUsize,
    open: AtomicUsize,
    max_open: AtomicUsize,
    records: Mutex<Records>,
}

/// Sets up a [`FakeSmtp`]; [`FakeSmtp::builder`].
#[derive(Debug, Clone, Default)]
pub struct FakeSmtpBuilder {
    seed: u64,
    transient_rate: f64,
    silent: bool,
}

impl FakeSmtpBuilder {
    /// The seed of the failure draws (default 0).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The share of transactions (0 to 1) refused with `451`, at RCPT or after DATA.
    pub fn transient_rate(mut self, rate: f64) -> Self {
        self.transient_rate = check_rate(rate);
        self
    }

    /// Accepts connections and never says anything (for timeouts).
    pub fn silent(mut self) -> Self {
        self.silent = true;
        self
    }

    /// Starts the server on 127.0.0.1 (a port of its own); it runs until the value is dropped.
    pub fn start(self) -> FakeSmtp {
        let shared = Arc::new(Shared {
            seed: self.seed,
            transient_rate: AtomicU64::new(self.transient_rate.to_bits()),
            connections: AtomicUsize::new(0),
            open: AtomicUsize::new(0),
            max_open: AtomicUsize::new(0),
            records: Mutex::default(),
        });
        let accept_shared = Arc::clone(&shared);
        let silent = self.silent;
        let server = Background::start("fake-smtp", move |listener| {
            accept(listener, accept_shared, silent)
        });
        FakeSmtp { shared, server }
    }
}

/// An SMTP server on 127.0.0.1; see the [module docs](self).
pub struct FakeSmtp {
    shared: Arc<Shared>,
    server: Background,
}

impl FakeSmtp {
    /// A server that takes every message.
    pub fn start() -> Self {
        Self::builder().start()
    }

    /// A server that accepts connections and never says anything.
    pub fn start_silent() -> Self {
        Self::builder().silent().start()
    }

    pub fn builder() -> FakeSmtpBuilder {
        FakeSmtpBuilder::default()
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    pub fn port(&self) -> u16 {
        self.addr().port()
    }

    /// `smtp://127.0.0.1:{port}`: the `[channels.smtp] url` for Herald.
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr())
    }

    /// A `[channels.smtp]` configuration pointing at this server.
    pub fn config(&self) -> SmtpConfig {
        SmtpConfig::new(self.url())
    }

    /// The `[channels.smtp]` table of a `herald.toml` pointing at this server.
    pub fn config_toml(&self) -> String {
        format!(
            "[channels.smtp]\nurl = {}\n",
            crate::twilio::toml_string(&self.url())
        )
    }

    /// Changes the transient failure rate from now on.
    pub fn set_transient_rate(&self, rate: f64) {
        self.shared
            .transient_rate
            .store(check_rate(rate).to_bits(), Ordering::Relaxed);
    }

    /// Answers the next RCPT TO with `reply` (like `451 4.3.0 try later` or `550 5.1.1 no such
    /// user`).
    pub fn fail_next_rcpt(&self, reply: &str) {
        lock(&self.shared.records)
            .rcpt_failures
            .push_back(reply.to_string());
    }

    /// Answers the next end of DATA with `reply`.
    pub fn fail_next_data(&self, reply: &str) {
        lock(&self.shared.records)
            .data_failures
            .push_back(reply.to_string());
    }

    /// The messages accepted so far, in order.
    pub fn messages(&self) -> Vec<SmtpMessage> {
        lock(&self.shared.records).messages.clone()
    }

    /// The transactions refused so far, in order.
    pub fn rejections(&self) -> Vec<SmtpRejection> {
        lock(&self.shared.records).rejections.clone()
    }

    /// How many accepted messages carried each `Message-ID` (messages without one are left out).
    pub fn count_by_message_id(&self) -> BTreeMap<String, usize> {
        let records = lock(&self.shared.records);
        let mut counts = BTreeMap::new();
        for m in &records.messages {
            if let Some(id) = &m.message_id {
                *counts.entry(id.clone()).or_insert(0) += 1;
            }
        }
        counts
    }

    /// How many connections the server has accepted.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// The most connections that were open at the same time.
    pub fn max_concurrent_connections(&self) -> usize {
        self.shared.max_open.load(Ordering::SeqCst)
    }
}

impl std::fmt::Debug for FakeSmtp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeSmtp")
            .field("addr", &self.addr())
            .finish_non_exhaustive()
    }
}

async fn accept(listener: TcpListener, shared: Arc<Shared>, silent: bool) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors and the like: try again shortly.
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            continue;
        };
        let number = shared.connections.fetch_add(1, Ordering::SeqCst) + 1;
        let open = shared.open.fetch_add(1, Ordering::SeqCst) + 1;
        shared.max_open.fetch_max(open, Ordering::SeqCst);
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            if silent {
                let _stream = stream;
                std::future::pending::<()>().await;
            } else {
                let _ = session(stream, &shared, number).await;
            }
            shared.open.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

/// `<a@b>` (or `a@b`, with parameters after it) → `a@b`.
fn strip_path(path: &str) -> String {
    let path = path.split_whitespace().next().unwrap_or("");
    path.trim_start_matches('<')
        .trim_end_matches('>')
        .to_string()
}

/// The argument of `MAIL FROM:` / `RCPT TO:`: the path, without parameters.
fn argument(command: &str, prefix_len: usize) -> String {
    command[prefix_len..]
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string()
}

/// What the transient-rate draw decided for a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Injected {
    None,
    AtRcpt,
    AtData,
}

fn draw_transaction(shared: &Shared, records: &mut Records, recipient: &str) -> Injected {
    let rate = f64::from_bits(shared.transient_rate.load(Ordering::Relaxed));
    let key = recipient.to_ascii_lowercase();
    let n = records.attempts.entry(key.clone()).or_insert(0);
    *n += 1;
    if rate <= 0.0 {
        return Injected::None;
    }
    let d = draw(shared.seed, &[b"smtp", key.as_bytes(), &n.to_le_bytes()]);
    if unit(d) >= rate {
        Injected::None
    } else if d & 1 == 0 {
        Injected::AtRcpt
    } else {
        Injected::AtData
    }
}

async fn session(stream: TcpStream, shared: &Shared, connection: usize) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    write.write_all(b"220 fake.test ESMTP ready\r\n").await?;
    let mut mail_from: Option<String> = None;
    let mut rcpt_to: Vec<String> = Vec::new();
    let mut injected = Injected::None;
    let mut line: Vec<u8> = Vec::new();
    loop {
        line.clear();
        quick_ack(&reader);
        if reader.read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        let command = String::from_utf8_lossy(&line)
            .trim_end_matches(['\r', '\n'])
            .to_string();
        let upper = command.to_ascii_uppercase();
        let reply: String = if upper.starts_with("EHLO") {
            "250-fake.test\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 ENHANCEDSTATUSCODES".into()
        } else if upper.starts_with("HELO") {
            "250 fake.test".into()
        } else if upper.starts_with("MAIL FROM:") {
            if mail_from.is_some() {
                "503 5.5.1 nested MAIL command".into()
            } else {
                mail_from = Some(argument(&command, "MAIL FROM:".len()));
                rcpt_to.clear();
                injected = Injected::None;
                "250 2.1.0 OK".into()
            }
        } else if upper.starts_with("RCPT TO:") {
            if mail_from.is_none() {
                "503 5.5.1 need MAIL first".into()
            } else {
                let path = argument(&command, "RCPT TO:".len());
                let recipient = strip_path(&path);
                let mut records = lock(&shared.records);
                if rcpt_to.is_empty() {
                    injected = draw_transaction(shared, &mut records, &recipient);
                }
                let queued = records.rcpt_failures.pop_front();
                let refusal = match queued {
                    Some(reply) => Some((reply, false)),
                    None if injected == Injected::AtRcpt => {
                        // Only the first RCPT of the transaction is refused.
                        injected = Injected::None;
                        Some((INJECTED_451.to_string(), true))
                    }
                    None => None,
                };
                match refusal {
                    Some((reply, was_injected)) => {
                        records.rejections.push(SmtpRejection {
                            stage: SmtpStage::Rcpt,
                            recipient,
                            reply: reply.clone(),
                            injected: was_injected,
                        });
                        reply
                    }
                    None => {
                        rcpt_to.push(path);
                        "250 2.1.5 OK".into()
                    }
                }
            }
        } else if upper == "DATA" {
            if mail_from.is_none() || rcpt_to.is_empty() {
                "503 5.5.1 need MAIL and RCPT first".into()
            } else {
                write.write_all(b"354 go ahead\r\n").await?;
                let mut data: Vec<u8> = Vec::new();
                loop {
                    line.clear();
                    quick_ack(&reader);
                    if reader.read_until(b'\n', &mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == b".\r\n" || line == b".\n" {
                        break;
                    }
                    let unstuffed = line.strip_prefix(b".").unwrap_or(&line);
                    data.extend_from_slice(unstuffed);
                }
                let data = String::from_utf8_lossy(&data).into_owned();
                let from = mail_from.take().unwrap_or_default();
                let to = std::mem::take(&mut rcpt_to);
                let mut records = lock(&shared.records);
                let queued = records.data_failures.pop_front();
                let refusal = match queued {
                    Some(reply) => Some((reply, false)),
                    None if injected == Injected::AtData => Some((INJECTED_451.to_string(), true)),
                    None => None,
                };
                injected = Injected::None;
                match refusal {
                    Some((reply, was_injected)) => {
                        records.rejections.push(SmtpRejection {
                            stage: SmtpStage::Data,
                            recipient: to.first().map(|r| strip_path(r)).unwrap_or_default(),
                            reply: reply.clone(),
                            injected: was_injected,
                        });
                        reply
                    }
                    None => {
                        let headers = parse_headers(&data);
                        let get = |name: &str| {
                            headers
                                .iter()
                                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                                .map(|(_, v)| v.clone())
                        };
                        let message_id = get("Message-ID");
                        let subject = get("Subject").map(|s| decode_words(&s));
                        records.messages.push(SmtpMessage {
                            mail_from: from,
                            rcpt_to: to,
                            data,
                            message_id,
                            subject,
                            connection,
                        });
                        "250 2.0.0 queued".into()
                    }
                }
            }
        } else if upper == "RSET" {
            mail_from = None;
            rcpt_to.clear();
            injected = Injected::None;
            "250 2.0.0 OK".into()
        } else if upper == "NOOP" || upper.starts_with("NOOP ") {
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

/// Acknowledges what arrives at once instead of after Linux's delayed-ACK timer. lettre writes
/// a message and its terminating `.` in two writes; with Nagle's algorithm on its side the `.`
/// waits for the ACK of the message, which would cost every message about 40 ms.
fn quick_ack(reader: &BufReader<tokio::net::tcp::OwnedReadHalf>) {
    #[cfg(target_os = "linux")]
    {
        let stream: &TcpStream = reader.get_ref().as_ref();
        let _ = socket2::SockRef::from(stream).set_tcp_quickack(true);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = reader;
}

/// The header fields of a raw message, unfolded, in order.
pub(crate) fn parse_headers(data: &str) -> Vec<(String, String)> {
    let head = data.split_once("\r\n\r\n").map_or(data, |(head, _)| head);
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = headers.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_string(), value.trim().to_string()));
        }
    }
    headers
}

/// Decodes RFC 2047 encoded words (`=?utf-8?b?...?=`, `=?utf-8?q?...?=`); whitespace between two
/// encoded words goes. Other charsets and malformed words stay as they are.
pub(crate) fn decode_words(value: &str) -> String {
    let mut out = String::new();
    let mut pending_space = String::new();
    let mut last_was_word = false;
    for token in value.split_inclusive([' ', '\t']) {
        let word = token.trim_end_matches([' ', '\t']);
        let space = &token[word.len()..];
        if word.is_empty() {
            pending_space.push_str(space);
            continue;
        }
        match decode_word(word) {
            Some(decoded) => {
                if !last_was_word {
                    out.push_str(&pending_space);
                }
                out.push_str(&decoded);
                last_was_word = true;
            }
            None => {
                out.push_str(&pending_space);
                out.push_str(word);
                last_was_word = false;
            }
        }
        pending_space = space.to_string();
    }
    out.push_str(&pending_space);
    out
}

fn decode_word(word: &str) -> Option<String> {
    let inner = word.strip_prefix("=?")?.strip_suffix("?=")?;
    let mut parts = inner.splitn(3, '?');
    let charset = parts.next()?;
    let encoding = parts.next()?;
    let text = parts.next()?;
    let charset = charset.split('*').next()?.to_ascii_lowercase();
    if charset != "utf-8" && charset != "us-ascii" {
        return None;
    }
    let bytes = match encoding {
        "b" | "B" => base64::engine::general_purpose::STANDARD
            .decode(text)
            .ok()?,
        "q" | "Q" => {
            let mut out = Vec::new();
            let bytes = text.as_bytes();
            let mut i = 0;
            while i < bytes.len() {
                match bytes[i] {
                    b'_' => out.push(b' '),
                    b'=' => {
                        let hex = bytes.get(i + 1..i + 3)?;
                        let hex = std::str::from_utf8(hex).ok()?;
                        out.push(u8::from_str_radix(hex, 16).ok()?);
                        i += 2;
                    }
                    b => out.push(b),
                }
                i += 1;
            }
            out
        }
        _ => return None,
    };
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_words_are_decoded() {
        assert_eq!(decode_words("Plain subject"), "Plain subject");
        assert_eq!(
            decode_words("=?utf-8?b?R3LDvMOfZQ==?= =?utf-8?b?IEphbmU=?="),
            "Grüße Jane"
        );
        assert_eq!(
            decode_words("Re: =?UTF-8?Q?Gr=C3=BC=C3=9Fe_Jane?= !"),
            "Re: Grüße Jane !"
        );
        assert_eq!(decode_words("=?iso-8859-1?q?x?="), "=?iso-8859-1?q?x?=");
        assert_eq!(decode_words("=?utf-8?q?bad=Z?="), "=?utf-8?q?bad=Z?=");
    }

    #[test]
    fn headers_unfold() {
        let h = parse_headers("Subject: a\r\n b\r\nMessage-ID: <x@y>\r\n\r\nbody\r\n");
        assert_eq!(
            h,
            vec![
                ("Subject".to_string(), "a b".to_string()),
                ("Message-ID".to_string(), "<x@y>".to_string())
            ]
        );
    }
}
