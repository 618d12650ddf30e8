//! The SMTP server: accept loop and one session per connection.

use std::{
    future::Future,
    io,
    net::SocketAddr,
    pin::pin,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::watch,
    task::JoinSet,
    time::Instant,
};
use tracing::{Instrument, debug, error, info, warn};

use crate::{Mailbox, ReceivedMail, Reject, SmtpConfig, parse::parse};

/// Longest command line accepted, line ending included (RFC 5321's text line limit).
const MAX_COMMAND_LINE: usize = 1000;
/// A data line longer than this is passed through in pieces rather than buffered whole.
const MAX_BUFFERED_DATA_LINE: usize = 64 * 1024;
const READ_CHUNK: usize = 16 * 1024;
/// The smallest step by which a message's share of the buffer budget grows.
const RESERVE_STEP: usize = 64 * 1024;

/// What the listener holds right now: its sessions and the message data they buffer.
///
/// [`serve`] keeps its own; give one to [`serve_observed`] to watch it (metrics, tests).
#[derive(Debug, Default)]
pub struct SmtpUsage {
    sessions: AtomicUsize,
    buffered: AtomicUsize,
    peak_buffered: AtomicUsize,
    refused_sessions: AtomicU64,
    refused_messages: AtomicU64,
    data_bytes: AtomicU64,
}

impl SmtpUsage {
    /// Sessions open now.
    pub fn sessions(&self) -> usize {
        self.sessions.load(Ordering::Relaxed)
    }

    /// Bytes of message data buffered now, across all sessions (a message's buffer is
    /// counted by the space set aside for it, which is at most twice what it holds).
    pub fn buffered_bytes(&self) -> usize {
        self.buffered.load(Ordering::Relaxed)
    }

    /// The most [`buffered_bytes`](Self::buffered_bytes) ever was.
    pub fn peak_buffered_bytes(&self) -> usize {
        self.peak_buffered.load(Ordering::Relaxed)
    }

    /// Connections answered `421` because [`SmtpConfig::max_sessions`] were open.
    pub fn refused_sessions(&self) -> u64 {
        self.refused_sessions.load(Ordering::Relaxed)
    }

    /// Messages answered `452` because the buffer budget was spent.
    pub fn refused_messages(&self) -> u64 {
        self.refused_messages.load(Ordering::Relaxed)
    }

    /// Bytes of message data read so far, kept or not.
    pub fn data_bytes(&self) -> u64 {
        self.data_bytes.load(Ordering::Relaxed)
    }

    /// Sets `bytes` more aside if the total stays within `max`.
    fn reserve(&self, bytes: usize, max: usize) -> bool {
        let reserved = self
            .buffered
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|&total| total <= max)
            });
        match reserved {
            Ok(before) => {
                self.peak_buffered
                    .fetch_max(before + bytes, Ordering::Relaxed);
                true
            }
            Err(_) => false,
        }
    }

    fn release(&self, bytes: usize) {
        self.buffered.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// A session's place among [`SmtpConfig::max_sessions`]; given back when dropped.
struct SessionSlot(Arc<SmtpUsage>);

impl Drop for SessionSlot {
    fn drop(&mut self) {
        self.0.sessions.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Bytes of the buffer budget set aside for one message; given back when dropped.
struct Reservation {
    usage: Arc<SmtpUsage>,
    max: usize,
    bytes: usize,
}

impl Reservation {
    /// Sets aside up to `bytes` in total (at least `needed`); false when the budget is spent.
    fn grow(&mut self, needed: usize, bytes: usize) -> bool {
        for total in [bytes, needed.next_multiple_of(RESERVE_STEP), needed] {
            if total <= self.bytes {
                return true;
            }
            if self.usage.reserve(total - self.bytes, self.max) {
                self.bytes = total;
                return true;
            }
        }
        false
    }

    fn clear(&mut self) {
        self.usage.release(self.bytes);
        self.bytes = 0;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.clear();
    }
}

/// Serves SMTP on `listener` until `shutdown` resolves.
///
/// At most [`SmtpConfig::max_sessions`] connections are served at once; one more is
/// answered `421` and closed at once (its server retries later).
///
/// Each connection runs on its own task. When `shutdown` resolves the listener is
/// closed at once; sessions finish the command they are in (a message being received
/// is still read and delivered) and are then told `421 shutting down`; `serve` returns
/// once they all have ended. Failures to accept a connection are logged and retried,
/// so this returns `Ok(())` after a shutdown.
pub async fn serve(
    listener: TcpListener,
    mailbox: Arc<dyn Mailbox>,
    config: SmtpConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let usage = Arc::new(SmtpUsage::default());
    serve_observed(listener, mailbox, config, usage, shutdown).await
}

/// [`serve`], keeping its sessions and buffered bytes in `usage` for the caller to watch.
pub async fn serve_observed(
    listener: TcpListener,
    mailbox: Arc<dyn Mailbox>,
    config: SmtpConfig,
    usage: Arc<SmtpUsage>,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let config = Arc::new(config);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut sessions = JoinSet::new();
    let mut shutdown = pin!(shutdown);
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, hostname = %config.hostname, "SMTP listener started");
    }
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(ended) = sessions.join_next(), if !sessions.is_empty() => {
                if let Err(e) = ended {
                    error!(error = %e, "SMTP session task failed");
                }
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if usage.sessions.load(Ordering::Acquire) >= config.max_sessions {
                        refuse(stream, peer, &config, &usage);
                        continue;
                    }
                    usage.sessions.fetch_add(1, Ordering::AcqRel);
                    let slot = SessionSlot(usage.clone());
                    let session = Session::new(stream, peer, mailbox.clone(), config.clone(), usage.clone(), stop_rx.clone());
                    sessions.spawn(async move {
                        session.run().await;
                        drop(slot);
                    }.instrument(tracing::info_span!("smtp", %peer)));
                }
                Err(e) => {
                    warn!(error = %e, "SMTP accept failed");
                    if !is_per_connection(&e) {
                        // Out of file descriptors or memory: give the system a moment.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            },
        }
    }
    drop(listener);
    stop_tx.send_replace(true);
    info!(sessions = sessions.len(), "SMTP listener shutting down");
    while let Some(ended) = sessions.join_next().await {
        if let Err(e) = ended {
            error!(error = %e, "SMTP session task failed");
        }
    }
    Ok(())
}

/// Answers a connection beyond [`SmtpConfig::max_sessions`] `421` and closes it, without
/// waiting for it: the line goes into the socket's (empty) send buffer or not at all.
fn refuse(stream: TcpStream, peer: SocketAddr, config: &SmtpConfig, usage: &SmtpUsage) {
    usage.refused_sessions.fetch_add(1, Ordering::Relaxed);
    let line = format!(
        "421 4.3.2 {} too many connections, try again later\r\n",
        config.hostname
    );
    let _ = stream.try_write(line.as_bytes());
    warn!(%peer, max = config.max_sessions, "SMTP connection refused: too many sessions");
}

fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

/// How a wait for the client ended other than with input.
enum Stop {
    /// The client closed the connection (or it broke).
    Closed,
    /// No input within the command timeout.
    TimedOut,
    /// The server is shutting down.
    Shutdown,
}

enum CommandLine {
    Line(String),
    TooLong,
}

enum Data {
    /// The message, and its share of the buffer budget (held until it is delivered).
    Complete(Vec<u8>, Reservation),
    TooBig(usize),
    /// The buffer budget was spent: the message was read to its end but not kept.
    NoRoom(usize),
}

/// Where message data goes while it is read: kept while it fits the message size limit
/// and the buffer budget, else only counted.
struct Sink {
    data: Vec<u8>,
    size: usize,
    max: usize,
    no_room: bool,
    reservation: Reservation,
}

impl Sink {
    fn push(&mut self, piece: &[u8]) {
        self.size += piece.len();
        self.reservation
            .usage
            .data_bytes
            .fetch_add(piece.len() as u64, Ordering::Relaxed);
        if self.size > self.max || self.no_room {
            self.drop_data();
            return;
        }
        let needed = self.data.len() + piece.len();
        if needed > self.reservation.bytes {
            let want = needed
                .max(self.reservation.bytes.saturating_mul(2))
                .max(RESERVE_STEP)
                .min(self.max);
            if !self.reservation.grow(needed, want) {
                self.no_room = true;
                self.drop_data();
                return;
            }
            self.data
                .reserve_exact(self.reservation.bytes.saturating_sub(self.data.len()));
        }
        self.data.extend_from_slice(piece);
    }

    fn drop_data(&mut self) {
        if self.data.capacity() > 0 {
            self.data = Vec::new();
        }
        self.reservation.clear();
    }

    fn finish(self) -> Data {
        if self.size > self.max {
            Data::TooBig(self.size)
        } else if self.no_room {
            Data::NoRoom(self.size)
        } else {
            Data::Complete(self.data, self.reservation)
        }
    }
}

/// The buffered connection: input waiting to be consumed and replies waiting to be sent.
struct Conn {
    stream: TcpStream,
    input: Vec<u8>,
    /// Bytes of `input` already consumed.
    pos: usize,
    output: Vec<u8>,
    timeout: Duration,
    /// The end of the session ([`SmtpConfig::session_timeout`]).
    deadline: Instant,
}

impl Conn {
    fn reply(&mut self, line: &str) {
        self.output.extend_from_slice(line.as_bytes());
        self.output.extend_from_slice(b"\r\n");
    }

    async fn flush(&mut self) -> Result<(), Stop> {
        if self.output.is_empty() {
            return Ok(());
        }
        let timeout = self.wait();
        let write = self.stream.write_all(&self.output);
        match tokio::time::timeout(timeout, write).await {
            Ok(Ok(())) => {
                self.output.clear();
                Ok(())
            }
            Ok(Err(e)) => {
                debug!(error = %e, "write failed");
                Err(Stop::Closed)
            }
            Err(_) => Err(Stop::TimedOut),
        }
    }

    /// How long to wait for the client now: the command timeout, cut short by the session's end.
    fn wait(&self) -> Duration {
        self.timeout
            .min(self.deadline.saturating_duration_since(Instant::now()))
    }

    /// Sends pending replies, then waits for more input (up to the command timeout,
    /// and, if `stop` is given, until the server shuts down).
    async fn fill(&mut self, stop: Option<&mut watch::Receiver<bool>>) -> Result<(), Stop> {
        self.flush().await?;
        if self.pos > 0 {
            self.input.drain(..self.pos);
            self.pos = 0;
        }
        self.input.reserve(READ_CHUNK);
        let timeout = self.wait();
        let read = tokio::time::timeout(timeout, self.stream.read_buf(&mut self.input));
        let result = match stop {
            Some(stop) => tokio::select! {
                result = read => result,
                _ = stop.wait_for(|stopping| *stopping) => return Err(Stop::Shutdown),
            },
            None => read.await,
        };
        match result {
            Ok(Ok(0)) => Err(Stop::Closed),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => {
                debug!(error = %e, "read failed");
                Err(Stop::Closed)
            }
            Err(_) => Err(Stop::TimedOut),
        }
    }

    fn pending(&self) -> &[u8] {
        &self.input[self.pos..]
    }

    /// Takes the next complete line (line ending included) from the buffer.
    fn take_line(&mut self) -> Option<&[u8]> {
        let newline = self.pending().iter().position(|&b| b == b'\n')?;
        let start = self.pos;
        self.pos += newline + 1;
        Some(&self.input[start..self.pos])
    }

    /// Reads the next command line; one longer than [`MAX_COMMAND_LINE`] is read to its
    /// end and discarded.
    async fn command(&mut self, stop: &mut watch::Receiver<bool>) -> Result<CommandLine, Stop> {
        let mut too_long = false;
        loop {
            if let Some(line) = self.take_line() {
                if too_long || line.len() > MAX_COMMAND_LINE {
                    return Ok(CommandLine::TooLong);
                }
                let line = String::from_utf8_lossy(line);
                return Ok(CommandLine::Line(
                    line.trim_end_matches(['\r', '\n']).to_owned(),
                ));
            }
            if self.pending().len() > MAX_COMMAND_LINE {
                too_long = true;
                self.pos = self.input.len();
            }
            self.fill(Some(stop)).await?;
        }
    }

    /// Reads message data up to the `.` line, undoing dot-stuffing. Past `max` bytes, or
    /// once `reservation` cannot grow within the buffer budget, the data is read on to its
    /// end but not kept.
    async fn data(&mut self, max: usize, reservation: Reservation) -> Result<Data, Stop> {
        let mut sink = Sink {
            data: Vec::new(),
            size: 0,
            max,
            no_room: false,
            reservation,
        };
        let mut at_line_start = true;
        loop {
            while let Some(line) = self.take_line() {
                let mut line = line;
                if at_line_start {
                    if line == b".\r\n" || line == b".\n" {
                        return Ok(sink.finish());
                    }
                    if line.first() == Some(&b'.') {
                        line = &line[1..];
                    }
                }
                sink.push(line);
                at_line_start = true;
            }
            if self.pending().len() > MAX_BUFFERED_DATA_LINE {
                // A very long line: keep its start, wait for the rest.
                let mut piece = self.pending();
                if at_line_start && piece.first() == Some(&b'.') {
                    piece = &piece[1..];
                }
                sink.push(piece);
                // A lone CR at the end of a piece would belong to the line ending; it is
                // kept either way, as the line is not the terminator.
                at_line_start = false;
                self.pos = self.input.len();
            }
            self.fill(None).await?;
        }
    }
}

/// One transaction's envelope.
struct Envelope {
    from: String,
    recipients: Vec<String>,
}

struct Session {
    conn: Conn,
    peer: SocketAddr,
    mailbox: Arc<dyn Mailbox>,
    config: Arc<SmtpConfig>,
    usage: Arc<SmtpUsage>,
    stop: watch::Receiver<bool>,
    greeted: bool,
    envelope: Option<Envelope>,
}

/// What to do after a command.
enum Next {
    Continue,
    Quit,
}

impl Session {
    fn new(
        stream: TcpStream,
        peer: SocketAddr,
        mailbox: Arc<dyn Mailbox>,
        config: Arc<SmtpConfig>,
        usage: Arc<SmtpUsage>,
        stop: watch::Receiver<bool>,
    ) -> Self {
        let _ = stream.set_nodelay(true);
        Session {
            conn: Conn {
                stream,
                input: Vec::new(),
                pos: 0,
                output: Vec::new(),
                timeout: config.command_timeout,
                deadline: Instant::now() + config.session_timeout,
            },
            peer,
            mailbox,
            config,
            usage,
            stop,
            greeted: false,
            envelope: None,
        }
    }

    async fn run(mut self) {
        debug!("connection opened");
        let host = self.config.hostname.clone();
        self.conn.reply(&format!("220 {host} Herald ESMTP"));
        let stop = loop {
            if *self.stop.borrow() {
                break Stop::Shutdown;
            }
            let line = match self.conn.command(&mut self.stop).await {
                Ok(line) => line,
                Err(stop) => break stop,
            };
            let next = match line {
                CommandLine::TooLong => {
                    self.conn.reply("500 5.5.2 line too long");
                    Ok(Next::Continue)
                }
                CommandLine::Line(line) => self.command(&line).await,
            };
            match next {
                Ok(Next::Continue) => {}
                Ok(Next::Quit) => {
                    let _ = self.conn.flush().await;
                    let _ = self.conn.stream.shutdown().await;
                    debug!("connection closed by QUIT");
                    return;
                }
                Err(stop) => break stop,
            }
        };
        match stop {
            Stop::Closed => {
                debug!("connection closed by client");
                return;
            }
            Stop::TimedOut => {
                debug!("command timeout");
                self.conn
                    .reply(&format!("421 4.4.2 {host} timeout, closing connection"));
            }
            Stop::Shutdown => {
                self.conn.reply(&format!("421 4.3.2 {host} shutting down"));
            }
        }
        let _ = self.conn.flush().await;
        let _ = self.conn.stream.shutdown().await;
    }

    async fn command(&mut self, line: &str) -> Result<Next, Stop> {
        let (verb, args) = match line.split_once(' ') {
            Some((verb, args)) => (verb, args.trim()),
            None => (line.trim(), ""),
        };
        debug!(command = %verb, "command");
        match verb.to_ascii_uppercase().as_str() {
            "EHLO" | "HELO" if args.is_empty() => self
                .conn
                .reply(&format!("501 5.5.4 syntax: {verb} <domain>")),
            "EHLO" => {
                self.greeted = true;
                self.envelope = None;
                let host = &self.config.hostname;
                self.conn
                    .reply(&format!("250-{host} Hello {}", sanitize(args)));
                self.conn
                    .reply(&format!("250-SIZE {}", self.config.max_message_bytes));
                self.conn.reply("250-8BITMIME");
                self.conn.reply("250-PIPELINING");
                self.conn.reply("250 ENHANCEDSTATUSCODES");
            }
            "HELO" => {
                self.greeted = true;
                self.envelope = None;
                let host = self.config.hostname.clone();
                self.conn.reply(&format!("250 {host}"));
            }
            "MAIL" => self.mail(args),
            "RCPT" => self.rcpt(args).await,
            "DATA" => self.data(args).await?,
            "RSET" => {
                self.envelope = None;
                self.conn.reply("250 2.0.0 OK");
            }
            "NOOP" => self.conn.reply("250 2.0.0 OK"),
            "QUIT" => {
                let host = self.config.hostname.clone();
                self.conn
                    .reply(&format!("221 2.0.0 {host} closing connection"));
                return Ok(Next::Quit);
            }
            "VRFY" => self.conn.reply(
                "252 2.5.0 cannot VRFY user, but will accept the message and attempt delivery",
            ),
            "HELP" => self
                .conn
                .reply("214 2.0.0 commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY"),
            "EXPN" | "STARTTLS" | "AUTH" | "BDAT" | "ETRN" | "TURN" => {
                self.conn.reply("502 5.5.1 command not implemented")
            }
            _ => self.conn.reply("500 5.5.2 command not recognized"),
        }
        Ok(Next::Continue)
    }

    fn mail(&mut self, args: &str) {
        if !self.greeted {
            return self.conn.reply("503 5.5.1 send HELO or EHLO first");
        }
        if self.envelope.is_some() {
            return self.conn.reply("503 5.5.1 nested MAIL command");
        }
        let Some((from, params)) = strip_keyword(args, "FROM:").and_then(path) else {
            return self.conn.reply("501 5.5.4 syntax: MAIL FROM:<address>");
        };
        for param in params.split_whitespace() {
            let (key, value) = param.split_once('=').unwrap_or((param, ""));
            match key.to_ascii_uppercase().as_str() {
                "SIZE" => match value.parse::<u64>() {
                    Ok(size) if size > self.config.max_message_bytes as u64 => {
                        return self.conn.reply(&format!(
                            "552 5.3.4 message size exceeds the limit of {} bytes",
                            self.config.max_message_bytes
                        ));
                    }
                    Ok(size)
                        if size
                            > self
                                .config
                                .max_buffered_bytes
                                .saturating_sub(self.usage.buffered_bytes())
                                as u64 =>
                    {
                        return self
                            .conn
                            .reply("452 4.3.1 insufficient system storage, try again later");
                    }
                    Ok(_) => {}
                    Err(_) => return self.conn.reply("501 5.5.4 bad SIZE parameter"),
                },
                "BODY"
                    if value.eq_ignore_ascii_case("7BIT")
                        || value.eq_ignore_ascii_case("8BITMIME") => {}
                _ => {
                    return self.conn.reply(&format!(
                        "555 5.5.4 parameter {} not supported",
                        sanitize(key)
                    ));
                }
            }
        }
        debug!(from = %from, "MAIL FROM accepted");
        self.envelope = Some(Envelope {
            from,
            recipients: Vec::new(),
        });
        self.conn.reply("250 2.1.0 OK");
    }

    async fn rcpt(&mut self, args: &str) {
        let Some(envelope) = &self.envelope else {
            return self.conn.reply("503 5.5.1 need MAIL before RCPT");
        };
        let rcpt = match strip_keyword(args, "TO:").and_then(path) {
            Some((rcpt, params)) if !rcpt.is_empty() && params.is_empty() => rcpt.to_lowercase(),
            Some((_, params)) if !params.is_empty() => {
                return self.conn.reply("555 5.5.4 RCPT parameters not supported");
            }
            _ => return self.conn.reply("501 5.5.4 syntax: RCPT TO:<address>"),
        };
        if envelope.recipients.contains(&rcpt) {
            return self.conn.reply("250 2.1.5 OK");
        }
        if envelope.recipients.len() >= self.config.max_recipients {
            return self.conn.reply("452 4.5.3 too many recipients");
        }
        // RFC 5321 4.5.1: `postmaster` without a domain is always accepted.
        let accepted = if rcpt == "postmaster" {
            Ok(true)
        } else {
            self.mailbox.accepts(&rcpt).await
        };
        match accepted {
            Ok(true) => {
                debug!(rcpt = %rcpt, "RCPT TO accepted");
                if let Some(envelope) = &mut self.envelope {
                    envelope.recipients.push(rcpt);
                }
                self.conn.reply("250 2.1.5 OK");
            }
            Ok(false) => {
                info!(rcpt = %rcpt, "RCPT TO refused");
                self.conn
                    .reply("550 5.7.1 relaying denied: not a domain served here");
            }
            Err(e) => {
                warn!(rcpt = %rcpt, error = %e, "RCPT TO lookup failed");
                self.conn
                    .reply("451 4.3.0 temporary failure, try again later");
            }
        }
    }

    async fn data(&mut self, args: &str) -> Result<(), Stop> {
        if !args.is_empty() {
            self.conn.reply("501 5.5.4 syntax: DATA");
            return Ok(());
        }
        let ready = self
            .envelope
            .as_ref()
            .is_some_and(|envelope| !envelope.recipients.is_empty());
        if !ready {
            let reply = if self.envelope.is_none() {
                "503 5.5.1 need MAIL and RCPT before DATA"
            } else {
                "503 5.5.1 no valid recipients"
            };
            self.conn.reply(reply);
            return Ok(());
        }
        let Some(envelope) = self.envelope.take() else {
            return Ok(());
        };
        self.conn
            .reply("354 start mail input; end with <CRLF>.<CRLF>");
        let max = self.config.max_message_bytes;
        let reservation = Reservation {
            usage: self.usage.clone(),
            max: self.config.max_buffered_bytes,
            bytes: 0,
        };
        let (raw, reservation) = match self.conn.data(max, reservation).await? {
            Data::Complete(raw, reservation) => (raw, reservation),
            Data::TooBig(size) => {
                info!(size, max, "message refused: too big");
                self.conn.reply(&format!(
                    "552 5.3.4 message size exceeds the limit of {max} bytes"
                ));
                return Ok(());
            }
            Data::NoRoom(size) => {
                self.usage.refused_messages.fetch_add(1, Ordering::Relaxed);
                warn!(
                    size,
                    max_buffered = self.config.max_buffered_bytes,
                    "message refused: the listener's buffer budget is spent"
                );
                self.conn
                    .reply("452 4.3.1 insufficient system storage, try again later");
                return Ok(());
            }
        };
        let reply = self.deliver(envelope, raw).await;
        drop(reservation);
        self.conn.reply(&reply);
        Ok(())
    }

    /// Parses and delivers a message; the reply to send.
    async fn deliver(&mut self, envelope: Envelope, raw: Vec<u8>) -> String {
        // Parsing is CPU work (up to the size limit) and runs off the async threads; a
        // panic in it must not take the session down without an answer.
        let mail = match tokio::task::spawn_blocking(move || parse(&raw)).await {
            Ok(mail) => mail,
            Err(e) => {
                error!(error = %e, "parsing a message failed");
                return "451 4.3.0 could not process the message, try again later".to_owned();
            }
        };
        let mail = ReceivedMail {
            auto_submitted: mail.auto_submitted || envelope.from.is_empty(),
            envelope_from: envelope.from,
            recipients: envelope.recipients,
            ..mail
        };
        let summary = format!(
            "from=<{}> rcpts={:?} size={} message_id={:?} auto={}",
            mail.envelope_from, mail.recipients, mail.size, mail.message_id, mail.auto_submitted
        );
        match self.mailbox.deliver(mail).await {
            Ok(()) => {
                info!(peer = %self.peer, "message delivered: {summary}");
                "250 2.0.0 OK: message accepted".to_owned()
            }
            Err(Reject::Temporary(reason)) => {
                warn!(reason = %reason, "delivery failed temporarily: {summary}");
                format!(
                    "451 4.3.0 {}",
                    reason_text(&reason, "temporary failure, try again later")
                )
            }
            Err(Reject::Permanent(reason)) => {
                info!(reason = %reason, "message rejected: {summary}");
                format!("554 5.3.0 {}", reason_text(&reason, "message rejected"))
            }
        }
    }
}

/// `args` after a case-insensitive `keyword` (such as `FROM:`), spaces after it skipped.
fn strip_keyword<'a>(args: &'a str, keyword: &str) -> Option<&'a str> {
    let head = args.get(..keyword.len())?;
    head.eq_ignore_ascii_case(keyword)
        .then(|| args[keyword.len()..].trim_start())
}

/// A reverse- or forward-path (`<user@host>`, `<>`, or leniently a bare address) and the
/// parameters after it. A source route (`<@a,@b:user@host>`) is dropped.
fn path(s: &str) -> Option<(String, &str)> {
    let (address, rest) = if let Some(inner) = s.strip_prefix('<') {
        let end = inner.find('>')?;
        (&inner[..end], &inner[end + 1..])
    } else {
        s.split_once(' ').unwrap_or((s, ""))
    };
    let address = match address.strip_prefix('@') {
        Some(routed) => routed.split_once(':')?.1,
        None => address,
    };
    let valid = address.len() <= 320
        && !address
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>'));
    valid.then(|| (address.to_owned(), rest.trim()))
}

/// Text safe to put on one reply line.
fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect()
}

fn reason_text(reason: &str, default: &str) -> String {
    let reason = sanitize(reason);
    let reason = reason.trim();
    if reason.is_empty() {
        default.to_owned()
    } else {
        reason.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(path("<a@b.c>"), Some(("a@b.c".to_owned(), "")));
        assert_eq!(path("<> SIZE=10"), Some((String::new(), "SIZE=10")));
        assert_eq!(
            path("<@relay.example:a@b.c>"),
            Some(("a@b.c".to_owned(), ""))
        );
        assert_eq!(
            path("a@b.c BODY=8BITMIME"),
            Some(("a@b.c".to_owned(), "BODY=8BITMIME"))
        );
        assert_eq!(path("<a@b.c"), None);
        assert_eq!(path("<a b@c>"), None);
        assert_eq!(strip_keyword("from: <x@y>", "FROM:"), Some("<x@y>"));
        assert_eq!(strip_keyword("FROMX", "FROM:"), None);
        assert_eq!(strip_keyword("é", "FROM:"), None);
    }

    #[test]
    fn reasons_stay_on_one_line() {
        assert_eq!(reason_text("db\r\n250 fake", "x"), "db  250 fake");
        assert_eq!(reason_text("  ", "default"), "default");
    }
}
