//! Email replies over real SMTP, on SQLite and PostgreSQL: an outreach email goes out through the
//! dispatcher to a fake SMTP server; the customer's reply comes back through Herald's SMTP
//! listener and threads (by `In-Reply-To`) into the conversation of that outreach message; the
//! agent's answer goes out by email; the one-click unsubscribe link is signed and honoured.
//!
//! Only an email whose From the trusted MX (`[replies] trusted_authserv_id`) authenticated in
//! its `Authentication-Results` changes a recipient's state; a forged From is kept, shown as
//! "unverified sender", and changes nothing. RCPT answers do not tell which addresses exist.

mod common;

use common::App;
use herald_channels::{SmtpTransport, Transports};
use herald_core::Provider;
use herald_engine::{
    DispatchConfig, Dispatcher, EmailInbox, Replies, RepliesConfig, SystemClock, UnsubscribeLinks,
};
use herald_store::testing::TestStore;
use herald_testkit::FakeSmtp;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::sync::Arc;

herald_store::on_both_backends!(
    an_email_reply_threads_into_the_outreach_conversation,
    a_forged_from_lands_unverified_and_changes_no_state,
    without_a_trusted_mx_every_email_is_unverified,
    rcpt_answers_do_not_tell_which_addresses_exist,
    the_unsubscribe_link_is_signed_and_one_click,
);

const SENDER: &str = "care@shop.example";
/// The authserv-id of the MX in front of Herald, as configured.
const MX: &str = "mx.shop.example";

struct Setup {
    app: App,
    smtp: FakeSmtp,
    dispatcher: Dispatcher,
    inbox: String,
    outreach: String,
    /// Herald's SMTP listener.
    smtp_in: std::net::SocketAddr,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn setup(db: TestStore, customers: &[&str]) -> Setup {
    setup_trusting(db, customers, MX).await
}

async fn setup_trusting(db: TestStore, customers: &[&str], trusted: &str) -> Setup {
    let smtp = FakeSmtp::start();
    let db = Arc::new(db);
    let mut built = None;
    let app = common::start_at(db.clone(), |state, base| {
        let mut transports = Transports::new();
        transports.insert(
            Provider::Smtp,
            Arc::new(SmtpTransport::new(&smtp.config()).unwrap()),
        );
        let links = UnsubscribeLinks::new(base, b"unsubscribe test key");
        let replies = Replies::new(
            state.store.clone(),
            Arc::new(transports.clone()),
            RepliesConfig {
                trusted_authserv_id: trusted.to_string(),
                ..RepliesConfig::default()
            },
        )
        .with_unsubscribe_links(links.clone());
        *state = state.clone().with_replies(replies.clone());
        built = Some((transports, links, replies));
    })
    .await;
    let (transports, links, replies) = built.unwrap();
    let dispatcher = Dispatcher::new(
        db.store.clone(),
        transports,
        Arc::new(SystemClock),
        DispatchConfig::default(),
    )
    .with_unsubscribe_links(links);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let smtp_in = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(herald_smtp_in::serve(
        listener,
        Arc::new(EmailInbox::new(replies)),
        herald_smtp_in::SmtpConfig {
            hostname: "herald.test".into(),
            ..herald_smtp_in::SmtpConfig::default()
        },
        async move {
            let _ = stopped.await;
        },
    ));

    let inbox = app.create("/api/v1/inboxes", json!({"name": "Care"})).await;
    let sender = app
        .create(
            "/api/v1/senders",
            json!({"channel": "email", "address": SENDER, "inbox_id": inbox["id"],
                   "provider": "smtp"}),
        )
        .await;
    let answer = app
        .create(
            "/api/v1/answers",
            json!({"name": "Late", "variants": [{"language": "en",
                   "subject": "Your order {{ order }}",
                   "body": "Dear {{ name }}, order {{ order }} is late."}]}),
        )
        .await;
    let all_day = json!(["00:00-24:00"]);
    let campaign = app
        .create(
            "/api/v1/campaigns",
            json!({"name": "Late email", "channel": "email", "language": "en",
                   "sender_id": sender["id"], "answer_id": answer["id"],
                   "schedule": {"timezone": "UTC", "days": {"mon": all_day, "tue": all_day,
                     "wed": all_day, "thu": all_day, "fri": all_day, "sat": all_day,
                     "sun": all_day}}}),
        )
        .await;
    let mut csv = String::from("email,name,order\n");
    for (i, c) in customers.iter().enumerate() {
        csv.push_str(&format!("{c},Customer {i},B-{i}\n"));
    }
    let (status, o) = app
        .upload(campaign["id"].as_str().unwrap(), &csv, &[])
        .await;
    assert_eq!(status, StatusCode::CREATED, "{o}");
    let outreach = o["id"].as_str().unwrap().to_string();
    let s = Setup {
        app,
        smtp,
        dispatcher,
        inbox: inbox["id"].as_str().unwrap().to_string(),
        outreach,
        smtp_in,
        _stop: stop,
    };
    for _ in 0..50 {
        s.dispatcher.tick().await.unwrap();
        let (_, o) = s
            .app
            .admin(
                Method::GET,
                &format!("/api/v1/outreaches/{}", s.outreach),
                None,
            )
            .await;
        if o["status"] == "completed" {
            return s;
        }
    }
    panic!("the email outreach did not complete");
}

async fn get(app: &App, path: &str) -> Value {
    let (s, v) = app.admin(Method::GET, path, None).await;
    assert_eq!(s, StatusCode::OK, "GET {path}: {v}");
    v
}

fn mail_to(smtp: &FakeSmtp, to: &str) -> herald_testkit::SmtpMessage {
    smtp.messages()
        .into_iter()
        .find(|m| m.recipients() == vec![to.to_string()])
        .unwrap_or_else(|| panic!("no email to {to}"))
}

async fn recipient_state(app: &App, outreach: &str, address: &str) -> Value {
    let v = get(app, &format!("/api/v1/outreaches/{outreach}/recipients")).await;
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["address"] == address)
        .cloned()
        .unwrap()
}

async fn an_email_reply_threads_into_the_outreach_conversation(db: TestStore) {
    let s = setup(db, &["ada@example.com", "bob@example.com"]).await;
    let sent = mail_to(&s.smtp, "ada@example.com");
    let message_id = sent.message_id.clone().unwrap();

    // Ada answers from her mail client: a quoted reply, threaded to the outreach email.
    let reply = Message::builder()
        .from("Ada Lovelace <Ada@Example.com>".parse().unwrap())
        .to(SENDER.parse().unwrap())
        .subject("Re: Your order B-0")
        .message_id(Some("<ada-reply-1@example.com>".into()))
        .in_reply_to(message_id.clone())
        .references(message_id.clone())
        .header(AuthResults(format!(
            "{MX}; spf=pass smtp.mailfrom=ada@example.com; dkim=pass header.d=example.com; dmarc=pass header.from=example.com"
        )))
        .body(String::from(
            "Thanks, when will it arrive?\r\n\r\nOn Mon, 1 Dec 2026 at 09:00, Care <care@shop.example> wrote:\r\n> Dear Customer 0, order B-0 is late.\r\n",
        ))
        .unwrap();
    let client =
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(s.smtp_in.ip().to_string())
            .port(s.smtp_in.port())
            .build();
    client.send(reply).await.expect("Herald accepts the reply");

    let list = get(
        &s.app,
        &format!("/api/v1/inboxes/{}/conversations", s.inbox),
    )
    .await;
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list}");
    assert_eq!(items[0]["customer_address"], "ada@example.com");
    assert_eq!(items[0]["outreach_id"], s.outreach.as_str());
    assert_eq!(items[0]["channel"], "email");
    let id = items[0]["id"].as_str().unwrap().to_string();
    let view = get(&s.app, &format!("/api/v1/conversations/{id}")).await;
    let messages = view["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2, "{view}");
    assert_eq!(messages[0]["author"], "outreach");
    assert_eq!(messages[0]["subject"], "Your order B-0");
    assert_eq!(messages[1]["direction"], "inbound");
    assert_eq!(messages[1]["subject"], "Re: Your order B-0");
    assert_eq!(messages[1]["body"], "Thanks, when will it arrive?");
    assert_eq!(messages[1]["unverified_sender"], false);
    assert_eq!(
        recipient_state(&s.app, &s.outreach, "ada@example.com").await["state"],
        "replied"
    );
    assert_eq!(
        recipient_state(&s.app, &s.outreach, "bob@example.com").await["state"],
        "sent"
    );

    // The agent answers by email, from the campaign's address, in the same thread subject.
    let agent = s.app.agent.clone();
    let (st, answer, _) = s
        .app
        .call(
            Some(&agent),
            Method::POST,
            &format!("/api/v1/conversations/{id}/messages"),
            Some(json!({"body": "It ships tomorrow morning."})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{answer}");
    let out = s
        .smtp
        .messages()
        .into_iter()
        .rfind(|m| m.recipients() == vec!["ada@example.com".to_string()])
        .unwrap();
    assert_eq!(out.subject.as_deref(), Some("Re: Your order B-0"));
    assert!(out.mail_from.contains(SENDER), "{}", out.mail_from);
    // Threaded under Ada's email in her mail client.
    assert_eq!(
        out.header("In-Reply-To").as_deref(),
        Some("<ada-reply-1@example.com>")
    );
    assert_eq!(
        out.header("References").as_deref(),
        Some("<ada-reply-1@example.com>")
    );
    assert!(out.data.contains("It ships tomorrow morning."));

    // Mail for an address of the sender's domain that is no sender is taken (so that RCPT
    // does not tell which addresses exist) and dropped; for another domain it is refused.
    let stray = |to: &str| {
        Message::builder()
            .from("ada@example.com".parse().unwrap())
            .to(to.parse().unwrap())
            .subject("hello")
            .header(AutoHeader("no".into()))
            .body(String::from("anyone?"))
            .unwrap()
    };
    client
        .send(stray("nobody@shop.example"))
        .await
        .expect("accepted alike, then dropped");
    assert!(
        client
            .send(stray("nobody@elsewhere.example"))
            .await
            .is_err(),
        "mail for a domain Herald does not serve was accepted"
    );
    let list = get(
        &s.app,
        &format!("/api/v1/inboxes/{}/conversations", s.inbox),
    )
    .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);

    // An out-of-office reply is taken (no bounce loops) but is not a customer's reply.
    let ooo = Message::builder()
        .from("bob@example.com".parse().unwrap())
        .to(SENDER.parse().unwrap())
        .subject("Out of office")
        .header(AutoHeader("auto-replied".into()))
        .body(String::from("I am away until Monday."))
        .unwrap();
    client.send(ooo).await.expect("accepted");
    assert_eq!(
        recipient_state(&s.app, &s.outreach, "bob@example.com").await["state"],
        "sent"
    );
}

/// `Authentication-Results: <value>`, as an MX writes it (one per message: lettre sets a header
/// once).
#[derive(Clone)]
struct AuthResults(String);

impl lettre::message::header::Header for AuthResults {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Authentication-Results")
    }
    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self(s.to_string()))
    }
    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
}

fn smtp_client(s: &Setup) -> AsyncSmtpTransport<Tokio1Executor> {
    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(s.smtp_in.ip().to_string())
        .port(s.smtp_in.port())
        .build()
}

/// An email "from Ada" answering her outreach email, with these `Authentication-Results`
/// headers on top, in this order (lettre sets a header once; an MX prepends raw lines).
struct Raw {
    envelope: lettre::address::Envelope,
    bytes: Vec<u8>,
}

fn reply_from_ada(in_reply_to: &str, id: &str, auth: &[&str], body: &str) -> Raw {
    let message = Message::builder()
        .from("Ada Lovelace <ada@example.com>".parse().unwrap())
        .to(SENDER.parse().unwrap())
        .subject("Re: Your order B-0")
        .message_id(Some(format!("<{id}@attacker.example>")))
        .in_reply_to(in_reply_to.to_string())
        .body(body.to_string())
        .unwrap();
    let mut bytes = Vec::new();
    for header in auth {
        bytes.extend_from_slice(format!("Authentication-Results: {header}\r\n").as_bytes());
    }
    bytes.extend_from_slice(&message.formatted());
    Raw {
        envelope: message.envelope().clone(),
        bytes,
    }
}

async fn send_raw(client: &AsyncSmtpTransport<Tokio1Executor>, raw: Raw) {
    client
        .send_raw(&raw.envelope, &raw.bytes)
        .await
        .expect("Herald takes the email");
}

async fn the_conversation(s: &Setup) -> (String, Value) {
    let list = get(
        &s.app,
        &format!("/api/v1/inboxes/{}/conversations", s.inbox),
    )
    .await;
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list}");
    let id = items[0]["id"].as_str().unwrap().to_string();
    let view = get(&s.app, &format!("/api/v1/conversations/{id}")).await;
    (id, view)
}

/// The attack of the report: a forged `From:` with the real `In-Reply-To` of the victim's
/// outreach email. It lands in the conversation marked as from an unverified sender and the
/// recipient is not `replied` — also with a header the attacker wrote claiming a pass, or one
/// from the MX saying fail. The same email authenticated by the trusted MX counts.
async fn a_forged_from_lands_unverified_and_changes_no_state(db: TestStore) {
    let s = setup(db, &["ada@example.com"]).await;
    let outreach_mail = mail_to(&s.smtp, "ada@example.com");
    let parent = outreach_mail.message_id.clone().unwrap();
    let client = smtp_client(&s);

    let forged: [(&str, Vec<String>); 4] = [
        ("no-results", vec![]),
        (
            "other-authserv",
            vec!["mx.attacker.example; dmarc=pass header.from=example.com".into()],
        ),
        (
            "mx-says-fail",
            vec![
                format!(
                    "{MX}; spf=fail smtp.mailfrom=ada@example.com; dmarc=fail header.from=example.com"
                ),
                // A pass further down (written by the attacker) does not count.
                format!("{MX}; dmarc=pass header.from=example.com"),
            ],
        ),
        (
            "unaligned-pass",
            vec![format!(
                "{MX}; spf=pass smtp.mailfrom=bounce@attacker.example; dkim=pass header.d=attacker.example"
            )],
        ),
    ];
    for (id, auth) in &forged {
        let auth: Vec<&str> = auth.iter().map(String::as_str).collect();
        send_raw(
            &client,
            reply_from_ada(&parent, id, &auth, "Cancel my order. Ada"),
        )
        .await;
    }
    let (id, view) = the_conversation(&s).await;
    let messages = view["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1 + forged.len(), "{view}");
    for m in &messages[1..] {
        assert_eq!(m["direction"], "inbound");
        assert_eq!(m["unverified_sender"], true, "{m}");
        assert_eq!(m["campaign_id"], Value::Null, "{m}");
    }
    assert_eq!(messages[0]["unverified_sender"], false);
    assert_eq!(view["conversation"]["outreach_id"], Value::Null, "{view}");
    assert_eq!(
        recipient_state(&s.app, &s.outreach, "ada@example.com").await["state"],
        "sent",
        "a forged email made the recipient replied"
    );

    // The web inbox shows it as from an unverified sender.
    let browser =
        common::web::sign_in(&s.app, "agent@shop.example", herald_core::Role::Agent).await;
    let html = browser.page(&format!("/conversations/{id}")).await;
    let timeline = common::web::element(&html, "timeline").unwrap_or(&html);
    assert_eq!(
        timeline.matches("unverified sender</span>").count(),
        forged.len(),
        "{timeline}"
    );

    // Ada's own reply, authenticated by the trusted MX (its header topmost): replied.
    let real = reply_from_ada(
        &parent,
        "real",
        &[
            &format!(
                "{MX}; dkim=pass header.d=example.com header.s=s1; dmarc=pass (p=reject) header.from=example.com"
            ),
            "mx.attacker.example; dmarc=fail",
        ],
        "When will it arrive?",
    );
    send_raw(&client, real).await;
    let (_, view) = the_conversation(&s).await;
    let last = view["messages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["body"], "When will it arrive?");
    assert_eq!(last["unverified_sender"], false, "{last}");
    assert_eq!(view["conversation"]["outreach_id"], s.outreach.as_str());
    assert_eq!(
        recipient_state(&s.app, &s.outreach, "ada@example.com").await["state"],
        "replied"
    );
}

/// With no trusted MX configured nothing can vouch for a From: every email is shown as from an
/// unverified sender and none changes a recipient's state, whatever headers it carries.
async fn without_a_trusted_mx_every_email_is_unverified(db: TestStore) {
    let s = setup_trusting(db, &["ada@example.com"], "").await;
    let parent = mail_to(&s.smtp, "ada@example.com").message_id.unwrap();
    let claim = format!("{MX}; dmarc=pass header.from=example.com");
    send_raw(
        &smtp_client(&s),
        reply_from_ada(&parent, "x", &[&claim], "Hello"),
    )
    .await;
    let (_, view) = the_conversation(&s).await;
    let last = view["messages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["body"], "Hello");
    assert_eq!(last["unverified_sender"], true);
    assert_eq!(
        recipient_state(&s.app, &s.outreach, "ada@example.com").await["state"],
        "sent"
    );
}

/// Raw SMTP: every address of the sender's domain gets the same answer at RCPT, whether it is a
/// sender, `postmaster` (RFC 5321) or nothing; another domain is refused; mail for postmaster and
/// for an unknown address is taken and recorded nowhere.
async fn rcpt_answers_do_not_tell_which_addresses_exist(db: TestStore) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let s = setup(db, &["ada@example.com"]).await;
    let stream = tokio::net::TcpStream::connect(s.smtp_in).await.unwrap();
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let mut line = String::new();
    read.read_line(&mut line).await.unwrap();
    assert!(line.starts_with("220"), "{line}");
    let mut cmd = async |c: &str| -> String {
        write
            .write_all(format!("{c}\r\n").as_bytes())
            .await
            .unwrap();
        loop {
            let mut l = String::new();
            read.read_line(&mut l).await.unwrap();
            if l.as_bytes().get(3) != Some(&b'-') {
                return l.trim_end().to_string();
            }
        }
    };
    assert!(cmd("EHLO prober.example").await.starts_with("250"));
    assert!(cmd("MAIL FROM:<p@prober.example>").await.starts_with("250"));
    let known = cmd(&format!("RCPT TO:<{SENDER}>")).await;
    let unknown = cmd("RCPT TO:<nobody-here@shop.example>").await;
    let postmaster = cmd("RCPT TO:<postmaster@shop.example>").await;
    let bare = cmd("RCPT TO:<postmaster>").await;
    assert_eq!(known, "250 2.1.5 OK");
    assert_eq!(unknown, known);
    assert_eq!(postmaster, known);
    assert_eq!(bare, known);
    let other = cmd("RCPT TO:<care@elsewhere.example>").await;
    assert!(other.starts_with("550"), "{other}");
    assert!(cmd("RSET").await.starts_with("250"));
    // Only postmaster and an unknown address: taken, recorded nowhere.
    assert!(cmd("MAIL FROM:<p@prober.example>").await.starts_with("250"));
    assert!(
        cmd("RCPT TO:<postmaster@shop.example>")
            .await
            .starts_with("250")
    );
    assert!(
        cmd("RCPT TO:<nobody-here@shop.example>")
            .await
            .starts_with("250")
    );
    assert!(cmd("DATA").await.starts_with("354"));
    let end = cmd("From: p@prober.example\r\nSubject: hi\r\n\r\nhello postmaster\r\n.").await;
    assert!(end.starts_with("250"), "{end}");
    let list = get(
        &s.app,
        &format!("/api/v1/inboxes/{}/conversations", s.inbox),
    )
    .await;
    assert!(list["items"].as_array().unwrap().is_empty(), "{list}");
}

/// `Auto-Submitted: <value>`.
#[derive(Clone)]
struct AutoHeader(String);

impl lettre::message::header::Header for AutoHeader {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Auto-Submitted")
    }
    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self(s.to_string()))
    }
    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
}

async fn the_unsubscribe_link_is_signed_and_one_click(db: TestStore) {
    let s = setup(db, &["ada@example.com", "bob@example.com"]).await;
    let link = |to: &str| {
        let header = mail_to(&s.smtp, to).header("List-Unsubscribe").unwrap();
        header.trim_matches(['<', '>']).to_string()
    };
    let ada = link("ada@example.com");
    let bob = link("bob@example.com");
    assert!(ada.starts_with(&s.app.base), "{ada}");
    let http = reqwest::Client::new();

    // Opening the link only shows a button: scanners must not unsubscribe anyone.
    let page = http.get(&ada).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("<form method=\"post\""), "{html}");
    let list = get(&s.app, "/api/v1/suppressions").await;
    assert!(list["items"].as_array().unwrap().is_empty());

    // Bob's signature on Ada's key (a forged link for another address) is refused.
    let (ada_path, _) = ada.split_once("?sig=").unwrap();
    let (_, bob_sig) = bob.split_once("?sig=").unwrap();
    for forged in [
        format!("{ada_path}?sig={bob_sig}"),
        ada_path.to_string(),
        format!("{ada_path}?sig=00"),
    ] {
        let res = http
            .post(&forged)
            .form(&[("List-Unsubscribe", "One-Click")])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403, "{forged}");
    }
    let list = get(&s.app, "/api/v1/suppressions").await;
    assert!(list["items"].as_array().unwrap().is_empty(), "{list}");

    // The one-click POST (RFC 8058) suppresses Ada for every sender; doing it twice is fine.
    for _ in 0..2 {
        let res = http
            .post(&ada)
            .form(&[("List-Unsubscribe", "One-Click")])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert!(res.text().await.unwrap().contains("ada@example.com"));
    }
    let list = get(&s.app, "/api/v1/suppressions").await;
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list}");
    assert_eq!(items[0]["address"], "ada@example.com");
    assert_eq!(items[0]["sender_id"], Value::Null);
    // Ada opted out of the outreach whose email she unsubscribed from, once.
    let report = get(&s.app, &format!("/api/v1/outreaches/{}/report", s.outreach)).await;
    assert_eq!(report["opted_out"], 1, "{report}");
    assert_eq!(report["progress"]["total"], 2, "{report}");
}
