//! The listener's bounds under attack, over real TCP at a reduced size: a session cap
//! (the connection beyond it gets `421`), a buffer budget across sessions (sessions that
//! never end DATA cannot make the listener hold more), and a session's longest life.
//!
//! Its own test binary, so that the memory it measures is its own.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use herald_smtp_in::{Mailbox, ReceivedMail, Reject, SmtpConfig, SmtpUsage, serve_observed};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::{
        TcpListener, TcpStream,
        tcp::{OwnedReadHalf, OwnedWriteHalf},
    },
};

const WAIT: Duration = Duration::from_secs(30);
const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;

#[derive(Default)]
struct Counting {
    delivered: Mutex<Vec<usize>>,
}

#[async_trait::async_trait]
impl Mailbox for Counting {
    async fn accepts(&self, rcpt: &str) -> Result<bool, String> {
        Ok(rcpt.ends_with("@example.com"))
    }
    async fn deliver(&self, mail: ReceivedMail) -> Result<(), Reject> {
        self.delivered.lock().unwrap().push(mail.size);
        Ok(())
    }
}

async fn start(config: SmtpConfig) -> (SocketAddr, Arc<SmtpUsage>, Arc<Counting>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let usage = Arc::new(SmtpUsage::default());
    let mailbox = Arc::new(Counting::default());
    tokio::spawn(serve_observed(
        listener,
        mailbox.clone(),
        config,
        usage.clone(),
        std::future::pending(),
    ));
    (addr, usage, mailbox)
}

struct Client {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl Client {
    /// Connects and reads the first line the server says.
    async fn connect(addr: SocketAddr) -> (Client, String) {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (read, writer) = stream.into_split();
        let mut client = Client {
            reader: BufReader::new(read),
            writer,
        };
        let greeting = client.line().await;
        (client, greeting)
    }

    async fn line(&mut self) -> String {
        let mut line = String::new();
        tokio::time::timeout(WAIT, self.reader.read_line(&mut line))
            .await
            .expect("a reply in time")
            .unwrap();
        line.trim_end().to_owned()
    }

    /// One reply, multi-line ones read to their last line (which is returned).
    async fn reply(&mut self) -> String {
        loop {
            let line = self.line().await;
            if line.as_bytes().get(3) != Some(&b'-') {
                return line;
            }
        }
    }

    async fn cmd(&mut self, line: &str) -> String {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .unwrap();
        self.reply().await
    }

    async fn begin(&mut self) {
        assert!(self.cmd("EHLO attacker.example").await.starts_with("250"));
        assert!(
            self.cmd("MAIL FROM:<a@attacker.example>")
                .await
                .starts_with("250")
        );
        assert!(
            self.cmd("RCPT TO:<support@example.com>")
                .await
                .starts_with("250")
        );
        assert!(self.cmd("DATA").await.starts_with("354"));
    }

    /// Sends `bytes` of message data (1000-byte lines), without ending it.
    async fn data(&mut self, bytes: usize) {
        let line = format!("{}\r\n", "x".repeat(998));
        let chunk = line.repeat(64);
        let mut sent = 0;
        while sent < bytes {
            self.writer.write_all(chunk.as_bytes()).await.unwrap();
            sent += chunk.len();
        }
    }
}

/// Waits until `check` holds (polling), or fails with `what`.
async fn until(what: &str, check: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn vm_rss_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status");
    kib * KIB
}

/// The attack of the report at a reduced size: N sessions that never end DATA. The listener
/// holds no more than its buffer budget, the N+1th connection is told `421`, the messages
/// that did not fit are refused `452` when they end, and a slot frees when a session ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_that_never_end_data_are_capped_in_number_and_bytes() {
    const SESSIONS: usize = 8;
    const BUDGET: usize = MIB;
    const EACH: usize = 384 * KIB;
    let config = SmtpConfig {
        max_sessions: SESSIONS,
        max_buffered_bytes: BUDGET,
        max_message_bytes: 512 * KIB,
        ..SmtpConfig::new("mx.test.example")
    };
    let (addr, usage, mailbox) = start(config).await;

    let mut clients = Vec::new();
    for _ in 0..SESSIONS {
        let (mut client, greeting) = Client::connect(addr).await;
        assert!(greeting.starts_with("220"), "{greeting}");
        client.begin().await;
        client.data(EACH).await;
        clients.push(client);
    }
    // Every byte sent has been read (the sessions wait for more).
    until("the sessions read what was sent", || {
        usage.data_bytes() >= (SESSIONS * EACH) as u64
    })
    .await;
    assert_eq!(usage.sessions(), SESSIONS);

    // The N+1th connection is refused at once, before any command.
    let (mut extra, greeting) = Client::connect(addr).await;
    assert!(
        greeting.starts_with("421 4.3.2") && greeting.contains("too many connections"),
        "{greeting}"
    );
    assert_eq!(extra.line().await, "", "the refused connection is closed");
    assert_eq!(usage.refused_sessions(), 1);

    // 8 × 384 KiB sent, never more than the 1 MiB budget held.
    assert!(
        usage.peak_buffered_bytes() <= BUDGET,
        "peak {} > budget {BUDGET}",
        usage.peak_buffered_bytes()
    );

    // Ending the messages: at most the two that fit the budget are delivered, the others
    // are refused as temporary (their servers retry).
    let mut delivered = 0;
    let mut refused = 0;
    for client in &mut clients {
        let reply = client.cmd(".").await;
        if reply.starts_with("250") {
            delivered += 1;
        } else {
            assert!(reply.starts_with("452 4.3.1"), "{reply}");
            refused += 1;
        }
    }
    assert_eq!(delivered + refused, SESSIONS);
    assert!(delivered <= BUDGET / EACH, "{delivered} delivered");
    assert_eq!(mailbox.delivered.lock().unwrap().len(), delivered);
    assert_eq!(usage.refused_messages(), refused as u64);
    assert_eq!(usage.buffered_bytes(), 0, "every buffer is given back");

    // A session that ends frees its slot; with the budget free again, the next connection's
    // message is delivered.
    assert!(clients[0].cmd("QUIT").await.starts_with("221"));
    until("the session's slot is freed", || {
        usage.sessions() < SESSIONS
    })
    .await;
    let (mut next, greeting) = Client::connect(addr).await;
    assert!(greeting.starts_with("220"), "{greeting}");
    next.begin().await;
    next.data(EACH).await;
    assert!(next.cmd(".").await.starts_with("250"));
    assert_eq!(mailbox.delivered.lock().unwrap().len(), delivered + 1);
}

/// The same attack measured by the process's resident memory: 16 sessions each sending
/// 3 MiB they never end would make an unbounded listener hold 48 MiB; with an 8 MiB budget
/// the process grows by far less.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resident_memory_stays_bounded_by_the_budget() {
    const SESSIONS: usize = 16;
    const BUDGET: usize = 8 * MIB;
    const EACH: usize = 3 * MIB;
    let config = SmtpConfig {
        max_sessions: SESSIONS,
        max_buffered_bytes: BUDGET,
        max_message_bytes: 4 * MIB,
        ..SmtpConfig::new("mx.test.example")
    };
    let (addr, usage, _mailbox) = start(config).await;
    let before = vm_rss_bytes();
    let mut clients = Vec::new();
    for _ in 0..SESSIONS {
        let (mut client, _) = Client::connect(addr).await;
        client.begin().await;
        clients.push(client);
    }
    let sends = clients.iter_mut().map(|c| c.data(EACH));
    futures_join_all(sends).await;
    until("the sessions read what was sent", || {
        usage.data_bytes() >= (SESSIONS * EACH) as u64
    })
    .await;
    let grown = vm_rss_bytes().saturating_sub(before);
    assert!(usage.peak_buffered_bytes() <= BUDGET);
    assert!(
        grown < 32 * MIB,
        "resident memory grew by {} MiB for {} MiB sent",
        grown / MIB,
        SESSIONS * EACH / MIB
    );
    for client in &mut clients {
        let reply = client.cmd(".").await;
        assert!(
            reply.starts_with("250") || reply.starts_with("452"),
            "{reply}"
        );
    }
}

/// Runs the futures concurrently (tokio's JoinSet needs 'static ones).
async fn futures_join_all<F: std::future::Future<Output = ()>>(futures: impl Iterator<Item = F>) {
    let futures: Vec<_> = futures.map(Box::pin).collect();
    let mut pending: Vec<_> = futures.into_iter().map(Some).collect();
    std::future::poll_fn(|cx| {
        let mut done = true;
        for slot in &mut pending {
            if let Some(f) = slot {
                if f.as_mut().poll(cx).is_ready() {
                    *slot = None;
                } else {
                    done = false;
                }
            }
        }
        if done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await
}

/// A client that keeps a session busy (a NOOP well within the idle timeout) is still cut off
/// at the session's longest life.
#[tokio::test]
async fn a_busy_session_ends_at_its_longest_life() {
    let config = SmtpConfig {
        session_timeout: Duration::from_millis(800),
        command_timeout: Duration::from_secs(60),
        ..SmtpConfig::new("mx.test.example")
    };
    let (addr, usage, _) = start(config).await;
    let (mut client, _) = Client::connect(addr).await;
    let started = std::time::Instant::now();
    // Busy for most of its life...
    while started.elapsed() < Duration::from_millis(500) {
        assert!(client.cmd("NOOP").await.starts_with("250"));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // ...and told 421 at its end, long before the idle timeout.
    let ended = client.reply().await;
    assert!(ended.starts_with("421 4.4.2"), "{ended}");
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(started.elapsed() >= Duration::from_millis(700));
    assert_eq!(client.line().await, "", "closed");
    until("the session is gone", || usage.sessions() == 0).await;
}
