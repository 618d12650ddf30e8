//! The listener end to end: real mail from `lettre`, and hand-written SMTP conversations.

use std::{
    collections::VecDeque,
    io,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use herald_smtp_in::{Mailbox, ReceivedMail, Reject, SmtpConfig, serve};
use lettre::{
    AsyncSmtpTransport, AsyncTransport, Tokio1Executor,
    message::{
        MultiPart, SinglePart,
        header::{ContentTransferEncoding, ContentType},
    },
};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{
        TcpListener, TcpStream,
        tcp::{OwnedReadHalf, OwnedWriteHalf},
    },
    sync::{Notify, Semaphore, oneshot},
    task::JoinHandle,
};

const WAIT: Duration = Duration::from_secs(10);

/// Accepts `support@`, `sales@` and `billing@example.com`; `broken@example.com` fails
/// the lookup. Records what it is given.
#[derive(Default)]
struct TestMailbox {
    delivered: Mutex<Vec<ReceivedMail>>,
    /// Answers for the next `deliver` calls, before any succeeds.
    failures: Mutex<VecDeque<Reject>>,
    /// When set, `deliver` waits for a permit (after announcing itself on `entered`).
    hold: Option<Arc<Semaphore>>,
    entered: Notify,
}

#[async_trait::async_trait]
impl Mailbox for TestMailbox {
    async fn accepts(&self, rcpt: &str) -> Result<bool, String> {
        match rcpt {
            "support@example.com" | "sales@example.com" | "billing@example.com" => Ok(true),
            "broken@example.com" => Err("lookup failed".to_owned()),
            _ => Ok(false),
        }
    }

    async fn deliver(&self, mail: ReceivedMail) -> Result<(), Reject> {
        if let Some(hold) = &self.hold {
            self.entered.notify_one();
            hold.acquire().await.expect("semaphore open").forget();
        }
        if let Some(failure) = self.failures.lock().unwrap().pop_front() {
            return Err(failure);
        }
        self.delivered.lock().unwrap().push(mail);
        Ok(())
    }
}

impl TestMailbox {
    fn delivered(&self) -> Vec<ReceivedMail> {
        self.delivered.lock().unwrap().clone()
    }
}

struct Server {
    addr: SocketAddr,
    mailbox: Arc<TestMailbox>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<io::Result<()>>,
}

impl Server {
    async fn start() -> Server {
        Server::start_with(TestMailbox::default(), config()).await
    }

    async fn start_with(mailbox: TestMailbox, config: SmtpConfig) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mailbox = Arc::new(mailbox);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, mailbox.clone(), config, async {
            let _ = stopped.await;
        }));
        Server {
            addr,
            mailbox,
            stop: Some(stop),
            task,
        }
    }

    fn shutdown(&mut self) {
        let _ = self.stop.take().expect("not yet stopped").send(());
    }

    async fn client(&self) -> Client {
        Client::connect(self.addr).await
    }

    fn transport(&self) -> AsyncSmtpTransport<Tokio1Executor> {
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(self.addr.ip().to_string())
            .port(self.addr.port())
            .timeout(Some(WAIT))
            .build()
    }
}

fn config() -> SmtpConfig {
    SmtpConfig::new("mx.test.example")
}

#[derive(Debug)]
struct Reply {
    code: u16,
    lines: Vec<String>,
}

impl Reply {
    fn text(&self) -> String {
        self.lines.join("\n")
    }
}

struct Client {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (read, writer) = stream.into_split();
        let mut client = Client {
            reader: BufReader::new(read),
            writer,
        };
        let greeting = client.reply().await;
        assert_eq!(greeting.code, 220, "{greeting:?}");
        assert_eq!(greeting.text(), "220 mx.test.example Herald ESMTP");
        client
    }

    async fn send(&mut self, data: &str) {
        self.writer.write_all(data.as_bytes()).await.unwrap();
    }

    /// Reads one (possibly multi-line) reply.
    async fn reply(&mut self) -> Reply {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(WAIT, self.reader.read_line(&mut line))
                .await
                .expect("reply in time")
                .unwrap();
            assert!(
                n > 0,
                "connection closed while waiting for a reply after {lines:?}"
            );
            assert!(
                line.ends_with("\r\n"),
                "reply line not CRLF-terminated: {line:?}"
            );
            let line = line.trim_end().to_owned();
            let more = line.as_bytes().get(3) == Some(&b'-');
            lines.push(line);
            if !more {
                break;
            }
        }
        let code = lines[0][..3].parse().expect("numeric reply code");
        Reply { code, lines }
    }

    async fn cmd(&mut self, line: &str) -> Reply {
        self.send(&format!("{line}\r\n")).await;
        self.reply().await
    }

    async fn expect(&mut self, line: &str, code: u16) -> Reply {
        let reply = self.cmd(line).await;
        assert_eq!(reply.code, code, "{line} -> {reply:?}");
        reply
    }

    /// Whether the server has closed the connection (within the wait).
    async fn closed(&mut self) -> bool {
        let mut rest = Vec::new();
        matches!(
            tokio::time::timeout(WAIT, self.reader.read_to_end(&mut rest)).await,
            Ok(Ok(_))
        ) && rest.is_empty()
    }

    /// EHLO, MAIL FROM, RCPT TO and DATA up to the 354.
    async fn begin(&mut self, from: &str, to: &str) {
        self.expect("EHLO client.example", 250).await;
        self.expect(&format!("MAIL FROM:<{from}>"), 250).await;
        self.expect(&format!("RCPT TO:<{to}>"), 250).await;
        self.expect("DATA", 354).await;
    }
}

fn simple_message(id: &str, body: &str) -> String {
    format!(
        "From: Jane <jane@customer.example>\r\nTo: support@example.com\r\nSubject: Re: hello\r\n\
         Message-ID: <{id}>\r\n\r\n{body}\r\n.\r\n"
    )
}

// ---- real mail from lettre -------------------------------------------------------------

#[tokio::test]
async fn lettre_reply_with_threading_headers_is_delivered_parsed() {
    let server = Server::start().await;
    let message = lettre::Message::builder()
        .from("Jane Doe <Jane.Doe@Customer.Example>".parse().unwrap())
        .to("Support <Support@Example.com>".parse().unwrap())
        .subject("Re: Your appointment")
        .message_id(Some("<reply-1@customer.example>".to_owned()))
        .in_reply_to("<out-2@herald.example>".to_owned())
        .references("<out-1@herald.example> <out-2@herald.example>".to_owned())
        .body(
            "Tuesday works.\n\nJane\n\nOn Mon, Mar 3, 2025 at 10:00 AM Herald <support@example.com> wrote:\n> Can we call on Tuesday?\n"
                .to_owned(),
        )
        .unwrap();
    let response = server.transport().send(message).await.unwrap();
    assert_eq!(u16::from(response.code()), 250);

    let delivered = server.mailbox.delivered();
    assert_eq!(delivered.len(), 1);
    let mail = &delivered[0];
    assert_eq!(mail.envelope_from, "Jane.Doe@Customer.Example");
    assert_eq!(mail.recipients, vec!["support@example.com"]);
    assert_eq!(mail.from.as_deref(), Some("jane.doe@customer.example"));
    assert_eq!(mail.subject.as_deref(), Some("Re: Your appointment"));
    assert_eq!(mail.message_id.as_deref(), Some("reply-1@customer.example"));
    assert_eq!(mail.in_reply_to, vec!["out-2@herald.example"]);
    assert_eq!(
        mail.references,
        vec!["out-1@herald.example", "out-2@herald.example"]
    );
    assert!(
        mail.text.starts_with("Tuesday works.\n\nJane\n\nOn Mon"),
        "{:?}",
        mail.text
    );
    assert!(
        mail.text.ends_with("> Can we call on Tuesday?"),
        "{:?}",
        mail.text
    );
    assert_eq!(mail.reply_text, "Tuesday works.\n\nJane");
    assert!(!mail.auto_submitted);
    assert!(mail.size > 200, "size {}", mail.size);
}

#[tokio::test]
async fn lettre_multipart_alternative_quoted_printable() {
    let server = Server::start().await;
    let plain = "Grüße aus München! This line is long enough that quoted-printable has to wrap it with a soft line break somewhere.\nZweite Zeile = zwei.";
    let message = lettre::Message::builder()
        .from("jane@customer.example".parse().unwrap())
        .to("support@example.com".parse().unwrap())
        .subject("QP")
        .multipart(
            MultiPart::alternative()
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_PLAIN)
                        .header(ContentTransferEncoding::QuotedPrintable)
                        .body(plain.to_owned()),
                )
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_HTML)
                        .header(ContentTransferEncoding::QuotedPrintable)
                        .body("<p>HTML version</p>".to_owned()),
                ),
        )
        .unwrap();
    let raw = String::from_utf8(message.formatted()).unwrap();
    assert!(
        raw.contains("quoted-printable") && raw.contains("=\r\n"),
        "really QP: {raw}"
    );
    server.transport().send(message).await.unwrap();

    let delivered = server.mailbox.delivered();
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].text, plain);
    assert_eq!(delivered[0].reply_text, plain);
}

#[tokio::test]
async fn lettre_utf8_subject_is_decoded() {
    let server = Server::start().await;
    let subject =
        "Réponse : café ☕ お茶の時間です、ありがとうございます — a fairly long subject line";
    let message = lettre::Message::builder()
        .from("jane@customer.example".parse().unwrap())
        .to("support@example.com".parse().unwrap())
        .subject(subject)
        .body("ok".to_owned())
        .unwrap();
    let raw = String::from_utf8(message.formatted()).unwrap();
    assert!(
        raw.to_lowercase().contains("=?utf-8?"),
        "encoded subject: {raw}"
    );
    server.transport().send(message).await.unwrap();

    let delivered = server.mailbox.delivered();
    assert_eq!(delivered[0].subject.as_deref(), Some(subject));
    assert_eq!(delivered[0].text, "ok");
}

#[tokio::test]
async fn lettre_unknown_recipient_is_refused_permanently() {
    let server = Server::start().await;
    let message = lettre::Message::builder()
        .from("jane@customer.example".parse().unwrap())
        .to("nobody@example.com".parse().unwrap())
        .subject("hi")
        .body("hello".to_owned())
        .unwrap();
    let err = server.transport().send(message).await.unwrap_err();
    assert!(err.is_permanent(), "{err:?}");
    assert_eq!(err.status().map(u16::from), Some(550));
    assert!(server.mailbox.delivered().is_empty());
}

#[tokio::test]
async fn lettre_dot_lines_round_trip() {
    let server = Server::start().await;
    let body = ".starts with a dot\n..two dots\n.\nend";
    let message = lettre::Message::builder()
        .from("jane@customer.example".parse().unwrap())
        .to("support@example.com".parse().unwrap())
        .subject("dots")
        .body(body.to_owned())
        .unwrap();
    server.transport().send(message).await.unwrap();
    assert_eq!(server.mailbox.delivered()[0].text, body);
}

// ---- raw SMTP conversations -------------------------------------------------------------

#[tokio::test]
async fn ehlo_advertises_extensions() {
    let server = Server::start().await;
    let mut client = server.client().await;
    let reply = client.expect("EHLO client.example", 250).await;
    assert!(
        reply.lines[0].starts_with("250-mx.test.example"),
        "{reply:?}"
    );
    let lines = &reply.lines[1..];
    assert_eq!(
        lines,
        [
            "250-SIZE 10485760",
            "250-8BITMIME",
            "250-PIPELINING",
            "250 ENHANCEDSTATUSCODES"
        ]
    );
    client.expect("HELO client.example", 250).await;
    client.expect("EHLO", 501).await;
}

#[tokio::test]
async fn unknown_recipient_gets_550_and_nothing_is_delivered() {
    let server = Server::start().await;
    let mut client = server.client().await;
    client.expect("EHLO client.example", 250).await;
    client
        .expect("MAIL FROM:<jane@customer.example>", 250)
        .await;
    let reply = client.expect("RCPT TO:<nobody@example.com>", 550).await;
    assert_eq!(
        reply.text(),
        "550 5.7.1 relaying denied: not a domain served here"
    );
    client.expect("DATA", 503).await;
    // The message text, sent anyway by a careless client, is taken as (bad) commands.
    client.expect("Subject: hi", 500).await;
    client.expect("QUIT", 221).await;
    assert!(client.closed().await);
    assert!(server.mailbox.delivered().is_empty());
}

#[tokio::test]
async fn bare_postmaster_is_always_accepted() {
    // RFC 5321 4.5.1: `postmaster` without a domain, whatever the mailbox says.
    let server = Server::start().await;
    let mut client = server.client().await;
    client.begin("jane@customer.example", "postmaster").await;
    client
        .send(&simple_message("pm@x", "to the postmaster"))
        .await;
    assert_eq!(client.reply().await.code, 250);
    let delivered = server.mailbox.delivered();
    assert_eq!(delivered[0].recipients, vec!["postmaster"]);
    // Any other address is still the mailbox's to judge.
    client
        .expect("MAIL FROM:<jane@customer.example>", 250)
        .await;
    client
        .expect("RCPT TO:<postmaster@elsewhere.example>", 550)
        .await;
}

#[tokio::test]
async fn commands_out_of_sequence_get_503() {
    let server = Server::start().await;
    let mut client = server.client().await;
    client
        .expect("MAIL FROM:<jane@customer.example>", 503)
        .await;
    client.expect("EHLO client.example", 250).await;
    client.expect("RCPT TO:<support@example.com>", 503).await;
    client.expect("DATA", 503).await;
    client
        .expect("MAIL FROM:<jane@customer.example>", 250)
        .await;
    client
        .expect("MAIL FROM:<jane@customer.example>", 503)
        .await;
    client.expect("DATA", 503).await;
    client.expect("RCPT TO:<support@example.com>", 250).await;
    client.expect("DATA", 354).await;
    client.send(&simple_message("seq@x", "in order now")).await;
    assert_eq!(client.reply().await.code, 250);
    assert_eq!(server.mailbox.delivered()[0].text, "in order now");
}

#[tokio::test]
async fn syntax_errors_and_misc_commands() {
    let server = Server::start().await;
    let mut client = server.client().await;
    client.expect("EHLO client.example", 250).await;
    client.expect("MAIL jane@customer.example", 501).await;
    client
        .expect("MAIL FROM:<jane@customer.example> SIZE=abc", 501)
        .await;
    client
        .expect("MAIL FROM:<jane@customer.example> SMTPUTF8", 555)
        .await;
    client
        .expect(
            "MAIL FROM:<jane@customer.example> BODY=8BITMIME SIZE=100",
            250,
        )
        .await;
    client.expect("RCPT TO:<>", 501).await;
    client.expect("RCPT TO:<support@example.com", 501).await;
    client.expect("VRFY support", 252).await;
    client.expect("EXPN list", 502).await;
    client.expect("FOO bar", 500).await;
    client.expect("", 500).await;
    client.expect("NOOP", 250).await;
    // Case-insensitive verbs; the envelope survived all of the above.
    client.expect("rcpt to:<support@example.com>", 250).await;
    client.expect("data", 354).await;
    client.send(&simple_message("misc@x", "still fine")).await;
    assert_eq!(client.reply().await.code, 250);
    assert_eq!(
        server.mailbox.delivered()[0].envelope_from,
        "jane@customer.example"
    );
}

#[tokio::test]
async fn overlong_command_line_gets_500_and_session_goes_on() {
    let server = Server::start().await;
    let mut client = server.client().await;
    let long = format!("NOOP {}", "x".repeat(1200));
    let reply = client.expect(&long, 500).await;
    assert!(reply.text().contains("too long"), "{reply:?}");
    // A line of exactly 1000 bytes with its CRLF is still a command.
    let max = format!("NOOP {}", "y".repeat(1000 - 7));
    client.expect(&max, 250).await;
    client.expect("NOOP", 250).await;
}

#[tokio::test]
async fn too_many_recipients_get_452() {
    let config = SmtpConfig {
        max_recipients: 2,
        ..config()
    };
    let server = Server::start_with(TestMailbox::default(), config).await;
    let mut client = server.client().await;
    client.expect("EHLO client.example", 250).await;
    client
        .expect("MAIL FROM:<jane@customer.example>", 250)
        .await;
    client.expect("RCPT TO:<Support@Example.COM>", 250).await;
    client.expect("RCPT TO:<sales@example.com>", 250).await;
    // A repeated recipient is no new one.
    client.expect("RCPT TO:<support@example.com>", 250).await;
    client.expect("RCPT TO:<billing@example.com>", 452).await;
    client.expect("DATA", 354).await;
    client.send(&simple_message("many@x", "hi all")).await;
    assert_eq!(client.reply().await.code, 250);
    assert_eq!(
        server.mailbox.delivered()[0].recipients,
        vec!["support@example.com", "sales@example.com"]
    );
}

#[tokio::test]
async fn recipient_lookup_failure_gets_451() {
    let server = Server::start().await;
    let mut client = server.client().await;
    client.expect("EHLO client.example", 250).await;
    client
        .expect("MAIL FROM:<jane@customer.example>", 250)
        .await;
    let reply = client.expect("RCPT TO:<broken@example.com>", 451).await;
    assert!(reply.text().starts_with("451 4.3.0"), "{reply:?}");
    assert!(
        !reply.text().contains("lookup failed"),
        "internal error leaked: {reply:?}"
    );
    client.expect("DATA", 503).await;
}

#[tokio::test]
async fn oversize_message_is_refused_with_552_and_not_delivered() {
    let config = SmtpConfig {
        max_message_bytes: 1000,
        ..config()
    };
    let server = Server::start_with(TestMailbox::default(), config).await;
    let mut client = server.client().await;
    let ehlo = client.expect("EHLO client.example", 250).await;
    assert!(ehlo.lines.contains(&"250-SIZE 1000".to_owned()), "{ehlo:?}");
    // Declared up front: refused at once.
    let reply = client
        .expect("MAIL FROM:<jane@customer.example> SIZE=5000", 552)
        .await;
    assert!(reply.text().starts_with("552 5.3.4"), "{reply:?}");
    client
        .expect("MAIL FROM:<jane@customer.example> SIZE=900", 250)
        .await;
    client.expect("RCPT TO:<support@example.com>", 250).await;
    client.expect("DATA", 354).await;
    // Undeclared (or understated): read to the end, then refused.
    let body = "0123456789abcdef\r\n".repeat(200);
    client.send(&simple_message("big@x", &body)).await;
    let reply = client.reply().await;
    assert_eq!(reply.code, 552, "{reply:?}");
    assert!(server.mailbox.delivered().is_empty());
    // The rest of the data was not taken for commands, and the session goes on.
    client.expect("NOOP", 250).await;
    client
        .expect("MAIL FROM:<jane@customer.example>", 250)
        .await;
    client.expect("RCPT TO:<support@example.com>", 250).await;
    client.expect("DATA", 354).await;
    client.send(&simple_message("small@x", "small")).await;
    assert_eq!(client.reply().await.code, 250);
    let delivered = server.mailbox.delivered();
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].message_id.as_deref(), Some("small@x"));
}

#[tokio::test]
async fn oversize_single_line_without_breaks_is_refused() {
    let config = SmtpConfig {
        max_message_bytes: 100_000,
        ..config()
    };
    let server = Server::start_with(TestMailbox::default(), config).await;
    let mut client = server.client().await;
    client
        .begin("jane@customer.example", "support@example.com")
        .await;
    // 300 kB on one line, sent in pieces.
    client.send("Subject: wide\r\n\r\n").await;
    for _ in 0..30 {
        client.send(&"z".repeat(10_000)).await;
    }
    client.send("\r\n.\r\n").await;
    assert_eq!(client.reply().await.code, 552);
    client.expect("NOOP", 250).await;
    assert!(server.mailbox.delivered().is_empty());
}

#[tokio::test]
async fn long_data_line_under_the_limit_is_kept_whole() {
    let server = Server::start().await;
    let mut client = server.client().await;
    client
        .begin("jane@customer.example", "support@example.com")
        .await;
    let line = format!(".{}", "w".repeat(150_000));
    client.send("Subject: wide\r\n\r\n.").await;
    client.send(&line).await;
    client.send("\r\n.\r\n").await;
    assert_eq!(client.reply().await.code, 250);
    // The leading dot was stuffing: one is removed, the one in `line` stays.
    assert_eq!(server.mailbox.delivered()[0].text, line);
}

#[tokio::test]
async fn dot_stuffing_is_undone() {
    let server = Server::start().await;
    let mut client = server.client().await;
    client
        .begin("jane@customer.example", "support@example.com")
        .await;
    client
        .send("Subject: dots\r\n\r\n..hidden line\r\n...\r\n..\r\nmiddle . dot\r\n. leading dot and space\r\n.\r\n")
        .await;
    assert_eq!(client.reply().await.code, 250);
    let mail = &server.mailbox.delivered()[0];
    assert_eq!(
        mail.text,
        ".hidden line\n..\n.\nmiddle . dot\n leading dot and space"
    );
    let raw_len = "Subject: dots\r\n\r\n.hidden line\r\n..\r\n.\r\nmiddle . dot\r\n leading dot and space\r\n".len();
    assert_eq!(mail.size, raw_len);
}

#[tokio::test]
async fn bare_lf_line_endings_are_tolerated() {
    let server = Server::start().await;
    let mut client = server.client().await;
    client.send("EHLO client.example\n").await;
    assert_eq!(client.reply().await.code, 250);
    client
        .send("MAIL FROM:<jane@customer.example>\nRCPT TO:<support@example.com>\nDATA\n")
        .await;
    for code in [250, 250, 354] {
        assert_eq!(client.reply().await.code, code);
    }
    client
        .send("Subject: lf only\nMessage-ID: <lf@x>\n\nline one\n..dot\nline three\n.\n")
        .await;
    assert_eq!(client.reply().await.code, 250);
    let mail = &server.mailbox.delivered()[0];
    assert_eq!(mail.subject.as_deref(), Some("lf only"));
    assert_eq!(mail.message_id.as_deref(), Some("lf@x"));
    assert_eq!(mail.text, "line one\n.dot\nline three");
}

#[tokio::test]
async fn two_messages_in_one_session() {
    let server = Server::start().await;
    let mut client = server.client().await;
    client
        .begin("first@customer.example", "support@example.com")
        .await;
    client.send(&simple_message("one@x", "first message")).await;
    assert_eq!(client.reply().await.code, 250);
    client
        .expect("MAIL FROM:<second@customer.example>", 250)
        .await;
    client.expect("RCPT TO:<sales@example.com>", 250).await;
    client.expect("DATA", 354).await;
    client
        .send(&simple_message("two@x", "second message"))
        .await;
    assert_eq!(client.reply().await.code, 250);
    client.expect("QUIT", 221).await;

    let delivered = server.mailbox.delivered();
    assert_eq!(delivered.len(), 2);
    assert_eq!(delivered[0].envelope_from, "first@customer.example");
    assert_eq!(delivered[0].recipients, vec!["support@example.com"]);
    assert_eq!(delivered[0].text, "first message");
    assert_eq!(delivered[1].envelope_from, "second@customer.example");
    assert_eq!(delivered[1].recipients, vec!["sales@example.com"]);
    assert_eq!(delivered[1].text, "second message");
}

#[tokio::test]
async fn rset_clears_the_envelope() {
    let server = Server::start().await;
    let mut client = server.client().await;
    client.expect("EHLO client.example", 250).await;
    client.expect("MAIL FROM:<old@customer.example>", 250).await;
    client.expect("RCPT TO:<support@example.com>", 250).await;
    client.expect("RSET", 250).await;
    client.expect("DATA", 503).await;
    client.expect("RCPT TO:<support@example.com>", 503).await;
    client.expect("MAIL FROM:<new@customer.example>", 250).await;
    client.expect("RCPT TO:<sales@example.com>", 250).await;
    client.expect("DATA", 354).await;
    client.send(&simple_message("rset@x", "after reset")).await;
    assert_eq!(client.reply().await.code, 250);
    let mail = &server.mailbox.delivered()[0];
    assert_eq!(mail.envelope_from, "new@customer.example");
    assert_eq!(mail.recipients, vec!["sales@example.com"]);
}

#[tokio::test]
async fn pipelined_commands_are_answered_in_order() {
    let server = Server::start().await;
    let mut client = server.client().await;
    client
        .send("EHLO client.example\r\nMAIL FROM:<jane@customer.example>\r\nRCPT TO:<support@example.com>\r\nRCPT TO:<nobody@example.com>\r\nRCPT TO:<sales@example.com>\r\nDATA\r\n")
        .await;
    let ehlo = client.reply().await;
    assert_eq!(ehlo.code, 250);
    assert!(ehlo.lines.contains(&"250-PIPELINING".to_owned()));
    for code in [250, 250, 550, 250, 354] {
        let reply = client.reply().await;
        assert_eq!(reply.code, code, "{reply:?}");
    }
    // The message and the next commands in one go as well.
    let message = simple_message("pipe@x", "pipelined");
    client
        .send(&format!("{message}RSET\r\nNOOP\r\nQUIT\r\n"))
        .await;
    for code in [250, 250, 250, 221] {
        let reply = client.reply().await;
        assert_eq!(reply.code, code, "{reply:?}");
    }
    assert!(client.closed().await);
    let delivered = server.mailbox.delivered();
    assert_eq!(delivered.len(), 1);
    assert_eq!(
        delivered[0].recipients,
        vec!["support@example.com", "sales@example.com"]
    );
}

#[tokio::test]
async fn temporary_delivery_failure_gets_451_and_a_retry_succeeds() {
    let mailbox = TestMailbox::default();
    mailbox
        .failures
        .lock()
        .unwrap()
        .extend([Reject::Temporary("database busy\r\n250 ok".to_owned())]);
    let server = Server::start_with(mailbox, config()).await;
    let mut client = server.client().await;
    client
        .begin("jane@customer.example", "support@example.com")
        .await;
    client
        .send(&simple_message("retry@x", "please store me"))
        .await;
    let reply = client.reply().await;
    assert_eq!(reply.code, 451, "{reply:?}");
    assert_eq!(reply.text(), "451 4.3.0 database busy  250 ok");
    assert!(server.mailbox.delivered().is_empty());

    // The sending server retries, here on a new connection.
    let mut client = server.client().await;
    client
        .begin("jane@customer.example", "support@example.com")
        .await;
    client
        .send(&simple_message("retry@x", "please store me"))
        .await;
    assert_eq!(client.reply().await.code, 250);
    let delivered = server.mailbox.delivered();
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].text, "please store me");
}

#[tokio::test]
async fn permanent_delivery_failure_gets_554() {
    let mailbox = TestMailbox::default();
    mailbox
        .failures
        .lock()
        .unwrap()
        .extend([Reject::Permanent("conversation closed".to_owned())]);
    let server = Server::start_with(mailbox, config()).await;
    let mut client = server.client().await;
    client
        .begin("jane@customer.example", "support@example.com")
        .await;
    client.send(&simple_message("perm@x", "hello")).await;
    let reply = client.reply().await;
    assert_eq!(reply.text(), "554 5.3.0 conversation closed");
    // The transaction is over either way.
    client.expect("DATA", 503).await;
    assert!(server.mailbox.delivered().is_empty());
}

#[tokio::test]
async fn bounces_and_auto_replies_are_flagged() {
    let server = Server::start().await;
    let mut client = server.client().await;
    // A bounce: empty reverse path.
    client.begin("", "support@example.com").await;
    client
        .send(&simple_message("bounce@x", "Delivery failed"))
        .await;
    assert_eq!(client.reply().await.code, 250);
    // An out-of-office reply.
    client
        .expect("MAIL FROM:<jane@customer.example>", 250)
        .await;
    client.expect("RCPT TO:<support@example.com>", 250).await;
    client.expect("DATA", 354).await;
    client
        .send("From: jane@customer.example\r\nSubject: Out of office\r\nAuto-Submitted: auto-replied\r\n\r\nI am away.\r\n.\r\n")
        .await;
    assert_eq!(client.reply().await.code, 250);
    // A person's reply.
    client
        .expect("MAIL FROM:<jane@customer.example>", 250)
        .await;
    client.expect("RCPT TO:<support@example.com>", 250).await;
    client.expect("DATA", 354).await;
    client
        .send("From: jane@customer.example\r\nSubject: Re: hi\r\nAuto-Submitted: no\r\n\r\nI am here.\r\n.\r\n")
        .await;
    assert_eq!(client.reply().await.code, 250);

    let delivered = server.mailbox.delivered();
    assert_eq!(delivered.len(), 3);
    assert_eq!(delivered[0].envelope_from, "");
    assert!(delivered[0].auto_submitted, "bounce");
    assert!(delivered[1].auto_submitted, "auto-reply");
    assert!(!delivered[2].auto_submitted, "person");
}

#[tokio::test]
async fn idle_client_times_out_with_421() {
    let config = SmtpConfig {
        command_timeout: Duration::from_millis(300),
        ..config()
    };
    let server = Server::start_with(TestMailbox::default(), config).await;
    let mut client = server.client().await;
    client.expect("EHLO client.example", 250).await;
    let started = std::time::Instant::now();
    let reply = client.reply().await;
    assert_eq!(reply.code, 421, "{reply:?}");
    assert!(reply.text().contains("timeout"), "{reply:?}");
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert!(client.closed().await);
}

#[tokio::test]
async fn stalled_data_times_out_and_nothing_is_delivered() {
    let config = SmtpConfig {
        command_timeout: Duration::from_millis(300),
        ..config()
    };
    let server = Server::start_with(TestMailbox::default(), config).await;
    let mut client = server.client().await;
    client
        .begin("jane@customer.example", "support@example.com")
        .await;
    client.send("Subject: unfinished\r\n\r\nhalf a mess").await;
    assert_eq!(client.reply().await.code, 421);
    assert!(client.closed().await);
    assert!(server.mailbox.delivered().is_empty());
}

#[tokio::test]
async fn shutdown_tells_idle_sessions_421_and_stops_listening() {
    let mut server = Server::start().await;
    let mut client = server.client().await;
    client.expect("EHLO client.example", 250).await;
    server.shutdown();
    let reply = client.reply().await;
    assert_eq!(reply.code, 421, "{reply:?}");
    assert!(reply.text().contains("shutting down"), "{reply:?}");
    assert!(client.closed().await);
    tokio::time::timeout(WAIT, &mut server.task)
        .await
        .expect("serve returns")
        .unwrap()
        .unwrap();
    assert!(TcpStream::connect(server.addr).await.is_err());
}

#[tokio::test]
async fn shutdown_lets_a_delivery_in_progress_finish() {
    let hold = Arc::new(Semaphore::new(0));
    let mailbox = TestMailbox {
        hold: Some(hold.clone()),
        ..TestMailbox::default()
    };
    let mut server = Server::start_with(mailbox, config()).await;
    let mut client = server.client().await;
    client
        .begin("jane@customer.example", "support@example.com")
        .await;
    client
        .send(&simple_message("inflight@x", "in flight"))
        .await;
    tokio::time::timeout(WAIT, server.mailbox.entered.notified())
        .await
        .expect("deliver called");
    server.shutdown();
    // `serve` waits for the session.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!server.task.is_finished());
    hold.add_permits(1);
    assert_eq!(client.reply().await.code, 250);
    assert_eq!(client.reply().await.code, 421);
    assert!(client.closed().await);
    tokio::time::timeout(WAIT, &mut server.task)
        .await
        .expect("serve returns")
        .unwrap()
        .unwrap();
    assert_eq!(server.mailbox.delivered().len(), 1);
}

#[tokio::test]
async fn client_vanishing_mid_data_delivers_nothing() {
    let server = Server::start().await;
    let mut client = server.client().await;
    client
        .begin("jane@customer.example", "support@example.com")
        .await;
    client.send("Subject: cut\r\n\r\nhalf").await;
    drop(client);
    // The server is still fine for the next client.
    let mut client = server.client().await;
    client
        .begin("jane@customer.example", "support@example.com")
        .await;
    client.send(&simple_message("whole@x", "whole")).await;
    assert_eq!(client.reply().await.code, 250);
    let delivered = server.mailbox.delivered();
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].text, "whole");
}
