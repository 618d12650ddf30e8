//! The inbox as a team works it, over real HTTP against SQLite and PostgreSQL: each agent's
//! unread counts (per conversation and per inbox) and the last message's preview; reading a
//! conversation clears its unread count for that agent only; the list and the open
//! conversation arrive as server-sent events when a customer writes, from the store, so a
//! message received by another node shows too; assignment and closing (web and API); an
//! answer names the agent who wrote it; SMS threads show no subject; agents start in the inbox.

mod common;

use common::App;
use common::web::{Browser, element, sign_in};
use herald_core::Role;
use herald_store::InboundMessage;
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

herald_store::on_both_backends!(
    with crate::start_bounded:
    a_users_live_streams_are_bounded,
);

herald_store::on_both_backends!(
    with crate::start:
    unread_counts_previews_and_reads_are_each_agents_own,
    the_list_and_the_conversation_update_live_as_customers_write,
    agents_assign_close_and_answer_under_their_own_name,
);

const CUSTOMER: &str = "+14155550199";

/// A server whose event streams read the store every 100 ms, and whose file provider writes to
/// an outbox in the returned directory (so agents' answers by SMS are sent).
async fn start(db: herald_store::testing::TestStore) -> (App, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("dir");
    let outbox = dir.path().join("outbox.jsonl");
    let app = common::start_with(db, move |state| {
        state.events_interval = Duration::from_millis(100);
        let mut transports = herald_channels::Transports::new();
        transports.insert(
            herald_core::Provider::File,
            Arc::new(herald_channels::FileTransport::new(outbox)),
        );
        let replies = herald_engine::Replies::new(
            state.store.clone(),
            Arc::new(transports),
            herald_engine::RepliesConfig::default(),
        );
        *state = state.clone().with_replies(replies);
    })
    .await;
    (app, dir)
}

/// A server where one caller may hold 2 event streams (the default is 10).
async fn start_bounded(db: herald_store::testing::TestStore) -> App {
    common::start_with(db, |s| {
        *s = s
            .clone()
            .with_outreach_limits(&herald_server::limits::OutreachLimits {
                event_streams_per_caller: 2,
                ..Default::default()
            });
    })
    .await
}

/// The bound of docs/security.md at a reduced size: a user's third live stream is refused with
/// 429 while two are open, and taken once one closes; another user's are their own.
async fn a_users_live_streams_are_bounded(app: App) {
    let (_, inbox) = sms_sender(&app).await;
    let bo = sign_in(&app, "bo@example.com", Role::Agent).await;
    let first = Events::open(&bo, "/inbox/events").await;
    let _second = Events::open(&bo, &format!("/inbox/events?inbox={inbox}")).await;
    let third = bo.get("/inbox/events").await;
    assert_eq!(
        third.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        third.body
    );
    assert!(third.headers.contains_key("retry-after"));
    let ada = sign_in(&app, "ada@example.com", Role::Admin).await;
    let _hers = Events::open(&ada, "/inbox/events").await;
    drop(first);
    let mut again = None;
    for _ in 0..50 {
        let res = bo
            .request(Method::GET, "/inbox/events")
            .send()
            .await
            .expect("request");
        if res.status() == StatusCode::OK {
            again = Some(res);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(again.is_some(), "a closed stream gives its place back");
}

/// What the SMS sender of [`App::sms_campaign`] is: (sender id, inbox id).
async fn sms_sender(app: &App) -> (uuid::Uuid, String) {
    app.sms_campaign().await;
    let (_, senders) = app.admin(Method::GET, "/api/v1/senders", None).await;
    let sender = &senders["items"][0];
    (
        sender["id"].as_str().unwrap().parse().unwrap(),
        sender["inbox_id"].as_str().unwrap().to_string(),
    )
}

/// The customer texts the sender (as a verified Twilio webhook would have it stored): the
/// conversation's id.
async fn customer_writes(app: &App, sender_id: uuid::Uuid, body: &str) -> String {
    let now = herald_engine::Clock::now(&herald_engine::SystemClock);
    let received = app
        .db
        .store
        .receive_message(&InboundMessage {
            sender_id,
            from: CUSTOMER.into(),
            to: "+14155550100".into(),
            subject: Some("Re: your order".into()),
            body: body.into(),
            provider_message_id: Some(format!("SM{}", uuid::Uuid::now_v7().simple())),
            received_at: now,
            attribute_since: now,
            in_reply_to: None,
            unverified_sender: false,
        })
        .await
        .expect("received");
    received.conversation.id.to_string()
}

/// The `<li>` of a conversation in an inbox page.
fn row(page: &str, id: &str) -> String {
    element(page, &format!("conversation-{id}"))
        .unwrap_or_else(|| panic!("conversation {id} listed: {page}"))
        .to_string()
}

async fn unread_counts_previews_and_reads_are_each_agents_own(
    (app, _outbox): (App, tempfile::TempDir),
) {
    let (sender, inbox) = sms_sender(&app).await;
    let ada = sign_in(&app, "ada@example.com", Role::Admin).await;
    let bo = sign_in(&app, "bo@example.com", Role::Agent).await;
    // Agents start in the inbox, admins with the campaigns.
    assert_eq!(bo.get("/").await.location(), "/inbox");
    assert_eq!(ada.get("/").await.location(), "/campaigns");

    let id = customer_writes(&app, sender, "Where is my parcel?").await;
    customer_writes(&app, sender, "It was due   yesterday.\nPlease check.").await;
    for b in [&ada, &bo] {
        let page = b.page(&format!("/inbox/{inbox}")).await;
        let li = row(&page, &id);
        assert!(li.contains("class=\"unread\""), "{li}");
        assert!(
            li.contains(">2<span class=\"visually-hidden\"> unread"),
            "{li}"
        );
        assert!(
            li.contains("It was due yesterday. Please check."),
            "the last message, on one line: {li}"
        );
        assert!(li.contains("Unassigned"), "{li}");
        let tabs = page.split("<ul id=\"conversations\"").next().unwrap();
        assert!(
            tabs.contains("Care <span class=\"count\""),
            "the inbox tab counts it: {tabs}"
        );
    }

    // Bo reads it: his count goes, Ada's stays.
    let conversation = bo.page(&format!("/conversations/{id}")).await;
    assert!(
        !conversation.contains("class=\"subject\""),
        "an SMS thread shows no subject: {conversation}"
    );
    let page = bo.page(&format!("/inbox/{inbox}")).await;
    assert!(!row(&page, &id).contains("class=\"unread\""), "{page}");
    assert!(!page.contains("<span class=\"count\""), "{page}");
    let page = ada.page("/inbox").await;
    assert!(row(&page, &id).contains("class=\"unread\""), "{page}");

    // A new message is unread again, and counted alone.
    customer_writes(&app, sender, "Hello?").await;
    let page = bo.page(&format!("/inbox/{inbox}")).await;
    let li = row(&page, &id);
    assert!(
        li.contains(">1<span class=\"visually-hidden\"> unread"),
        "{li}"
    );
}

/// Reads a server-sent event stream: the data of the next event named `name`.
struct Events {
    res: reqwest::Response,
    buf: String,
}

impl Events {
    async fn open(b: &Browser, path: &str) -> Events {
        let res = b
            .request(Method::GET, path)
            .send()
            .await
            .expect("event stream");
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["content-type"], "text/event-stream");
        Events {
            res,
            buf: String::new(),
        }
    }

    async fn next(&mut self, name: &str) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut event = "message";
                let mut data = Vec::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event = if v.trim() == name { name } else { "other" };
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push(v.strip_prefix(' ').unwrap_or(v).to_string());
                    }
                }
                if event == name {
                    return data.join("\n");
                }
            }
            let chunk = tokio::time::timeout_at(deadline, self.res.chunk())
                .await
                .unwrap_or_else(|_| panic!("no `{name}` event within 10 s; so far: {}", self.buf))
                .expect("stream")
                .expect("the stream ended");
            self.buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

async fn the_list_and_the_conversation_update_live_as_customers_write(
    (app, _outbox): (App, tempfile::TempDir),
) {
    let (sender, inbox) = sms_sender(&app).await;
    let bo = sign_in(&app, "bo@example.com", Role::Agent).await;
    let page = bo.page(&format!("/inbox/{inbox}")).await;
    assert!(
        page.contains(&format!("data-live-url=\"/inbox/events?inbox={inbox}\"")),
        "{page}"
    );
    let mut list = Events::open(&bo, &format!("/inbox/events?inbox={inbox}")).await;
    let first = list.next("list").await;
    assert!(first.contains("No conversations yet"), "{first}");

    // Written to the store (as another node would): the list comes with it.
    let id = customer_writes(&app, sender, "Is anyone there?").await;
    let update = list.next("list").await;
    let li = row(&update, &id);
    assert!(li.contains("Is anyone there?"), "{li}");
    assert!(
        li.contains(">1<span class=\"visually-hidden\"> unread"),
        "{li}"
    );

    // The open conversation: its timeline as the customer writes, and read as it arrives.
    let mut open = Events::open(&bo, &format!("/conversations/{id}/events")).await;
    let shown = open.next("conversation").await;
    assert!(
        element(&shown, "timeline").is_some_and(|t| t.contains("Is anyone there?")),
        "{shown}"
    );
    customer_writes(&app, sender, "Second try.").await;
    let shown = open.next("conversation").await;
    assert!(shown.contains("Second try."), "{shown}");
    // Seen in the open conversation, so read: the list's count goes.
    let update = list.next("list").await;
    let mut li = row(&update, &id);
    for _ in 0..5 {
        if !li.contains("class=\"unread\"") {
            break;
        }
        li = row(&list.next("list").await, &id);
    }
    assert!(!li.contains("class=\"unread\""), "{li}");
    assert!(li.contains("Second try."), "{li}");

    // Another user's streams are not this one's; an unknown conversation is a 404.
    let missing = bo
        .get(&format!("/conversations/{}/events", uuid::Uuid::now_v7()))
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

async fn agents_assign_close_and_answer_under_their_own_name(
    (app, _outbox): (App, tempfile::TempDir),
) {
    let (sender, inbox) = sms_sender(&app).await;
    let ada = sign_in(&app, "ada@example.com", Role::Admin).await;
    let bo = sign_in(&app, "bo@example.com", Role::Agent).await;
    let id = customer_writes(&app, sender, "Can someone call me?").await;

    // Bo takes it.
    let page = bo.page(&format!("/conversations/{id}")).await;
    assert!(
        element(&page, "assignee").is_some_and(|e| e.contains("Nobody")),
        "{page}"
    );
    let res = bo
        .post(&format!("/conversations/{id}/assign"), &[("assignee", "")])
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    let page = bo.page(&format!("/conversations/{id}")).await;
    let me_form = element(&page, "assign-me-form").expect("assign to me");
    let me = me_form
        .split("name=\"assignee\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("the viewer's id")
        .to_string();
    let res = bo
        .post(&format!("/conversations/{id}/assign"), &[("assignee", &me)])
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let page = bo.page(&format!("/conversations/{id}")).await;
    assert!(
        element(&page, "assignee").is_some_and(|e| e.contains("bo@example.com (you)")),
        "{page}"
    );
    let list = ada.page(&format!("/inbox/{inbox}")).await;
    assert!(
        row(&list, &id).contains("Assigned to bo@example.com"),
        "{list}"
    );
    // Ada can hand it to anyone on the team: both are offered, Bo chosen.
    let page = ada.page(&format!("/conversations/{id}")).await;
    let select = element(&page, "assignee-select").expect("the assignee list");
    assert!(
        select.contains(&format!("value=\"{me}\" selected>bo@example.com"))
            && select.contains(">ada@example.com<"),
        "{select}"
    );
    let bad = bo
        .post(
            &format!("/conversations/{id}/assign"),
            &[("assignee", &uuid::Uuid::now_v7().to_string())],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.body);
    assert!(bad.body.contains("no user has the id"), "{}", bad.body);

    // His answer carries his name; one through the API says so.
    let res = bo
        .post(
            &format!("/conversations/{id}/reply"),
            &[("body", "Calling you in 5 minutes.")],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let (s, _, _) = app
        .call(
            Some(&app.agent),
            Method::POST,
            &format!("/api/v1/conversations/{id}/messages"),
            Some(json!({"body": "Done."})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let page = ada.page(&format!("/conversations/{id}")).await;
    let timeline = element(&page, "timeline").expect("timeline");
    assert!(
        timeline.contains("<strong class=\"author\">bo@example.com</strong>"),
        "{timeline}"
    );
    assert!(
        timeline.contains("<strong class=\"author\">Agent (through the API)</strong>"),
        "{timeline}"
    );

    // Closed: out of the unread counts; the customer's next message opens it again.
    let res = bo
        .post(
            &format!("/conversations/{id}/status"),
            &[("status", "closed")],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    let list = ada.page(&format!("/inbox/{inbox}")).await;
    assert!(row(&list, &id).contains("closed-badge"), "{list}");
    assert!(
        !list.contains("<span class=\"count\""),
        "a closed conversation counts in no tab: {list}"
    );
    customer_writes(&app, sender, "One more thing.").await;
    let (_, view, _) = app
        .call(
            Some(&app.agent),
            Method::GET,
            &format!("/api/v1/conversations/{id}"),
            None,
        )
        .await;
    assert_eq!(view["conversation"]["status"], "open", "{view}");
    assert_eq!(view["conversation"]["assignee_id"], me.as_str());

    // The API: an agent unassigns and closes it; an unknown user is refused by field.
    let (s, body, _) = app
        .call(
            Some(&app.agent),
            Method::PATCH,
            &format!("/api/v1/conversations/{id}"),
            Some(json!({"assignee_id": null, "status": "closed"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["assignee_id"], serde_json::Value::Null);
    assert_eq!(body["status"], "closed");
    let (s, body, _) = app
        .call(
            Some(&app.agent),
            Method::PATCH,
            &format!("/api/v1/conversations/{id}"),
            Some(json!({"assignee_id": uuid::Uuid::now_v7()})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(common::has_error(&body, "assignee_id", "no user"), "{body}");
}
