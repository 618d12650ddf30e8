//! Email replies over real SMTP, on SQLite and PostgreSQL: an outreach email goes out through the
//! dispatcher to a fake SMTP server; the customer's reply comes back through Herald's SMTP
//! listener and threads (by `In-Reply-To`) into the conversation of that outreach message; the
//! agent's answer goes out by email; the one-click unsubscribe link is signed and honoured.

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

both_db!(
    an_email_reply_threads_into_the_outreach_conversation,
    the_unsubscribe_link_is_signed_and_one_click,
);

const SENDER: &str = "care@shop.example";

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
            RepliesConfig::default(),
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

    // Mail for an address that is not a sender is refused at RCPT; nothing is recorded.
    let stray = Message::builder()
        .from("ada@example.com".parse().unwrap())
        .to("nobody@shop.example".parse().unwrap())
        .subject("hello")
        .header(AutoHeader("no".into()))
        .body(String::from("anyone?"))
        .unwrap();
    assert!(
        client.send(stray).await.is_err(),
        "unknown mailbox accepted"
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
}
