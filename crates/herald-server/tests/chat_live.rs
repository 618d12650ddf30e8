//! Live chat over real HTTP, against SQLite and PostgreSQL: a visitor's first reply opens a
//! conversation in the campaign's inbox (page and greeting on its timeline), an agent's answer
//! reaches the visitor's list and event stream, a token reads its own conversation only, and the
//! bounds (size, rate, CORS) refuse without storing anything.

mod common;

use common::App;
use herald_server::routes::chat_live::{ChatLimits, TOKEN_HEADER};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;

herald_store::on_both_backends!(
    with crate::start:
    a_visitor_reply_opens_a_conversation_and_the_agents_answer_reaches_them,
    a_token_reads_and_writes_its_own_conversation_only,
    oversized_messages_are_refused_and_nothing_is_stored,
    a_flood_is_refused_with_retry_after_and_earlier_messages_stay,
    cors_is_granted_to_the_sites_origins_only,
    an_answer_through_another_node_reaches_the_visitors_stream,
    onboarding_matches_the_customer_by_email_and_shows_this_chat_only,
    a_campaign_without_an_inbox_refuses_the_chat_in_words,
    agents_see_the_chat_start_and_answer_from_the_conversation_page,
    event_streams_are_bounded_per_conversation,
    a_fresh_connections_stream_is_chunked_live_and_freed_when_the_visitor_leaves,
    figures_count_what_pages_report_and_the_chats_that_start,
);

const ORIGIN: &str = "https://shop.example.com";
const PAGE: &str = "https://shop.example.com/shop/shoes?size=42";

/// A server whose visitors may send 5 messages a minute per conversation.
async fn start(db: herald_store::testing::TestStore) -> App {
    common::start_with(db, |s| {
        *s = s.clone().with_chat(
            b"test secret",
            ChatLimits {
                messages_per_minute_per_conversation: 5,
                ..ChatLimits::default()
            },
        );
    })
    .await
}

/// A site of [`ORIGIN`] and a chat campaign on it, open every day, with an inbox: (site key,
/// campaign id, inbox id).
async fn chat_setup(app: &App, name: &str) -> (String, String, String) {
    chat_setup_with(app, name, false).await
}

async fn chat_setup_with(app: &App, name: &str, onboarding: bool) -> (String, String, String) {
    let inbox = app
        .create("/api/v1/inboxes", json!({"name": format!("{name} inbox")}))
        .await;
    let site = app
        .create(
            "/api/v1/chat/sites",
            json!({"name": format!("{name} site"), "allowed_origins": [ORIGIN]}),
        )
        .await;
    let answer = app
        .create(
            "/api/v1/answers",
            json!({"name": format!("{name} greeting"), "variants": [
                {"language": "en", "body": format!("Need a hand with {name}?")}]}),
        )
        .await;
    let mut open = serde_json::Map::new();
    for d in ["mon", "tue", "wed", "thu", "fri", "sat", "sun"] {
        open.insert(d.to_string(), json!(["00:00-24:00"]));
    }
    let campaign = app
        .create(
            "/api/v1/campaigns",
            json!({"name": name, "description": format!("Help with {name} sizes"),
                   "channel": "chat", "language": "en", "answer_id": answer["id"],
                   "schedule": {"timezone": "UTC", "days": open}}),
        )
        .await;
    let id = campaign["id"].as_str().expect("campaign id").to_string();
    let (s, saved) = app
        .admin(
            Method::PUT,
            &format!("/api/v1/campaigns/{id}/chat"),
            Some(
                json!({"site_id": site["id"], "inbox_id": inbox["id"], "onboarding": onboarding,
                        "triggers": [{"kind": "time_on_page", "seconds": 1}]}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{saved}");
    assert_eq!(saved["inbox_id"], inbox["id"]);
    (
        site["key"].as_str().expect("key").to_string(),
        id,
        inbox["id"].as_str().expect("inbox id").to_string(),
    )
}

/// A public call as a page of `origin` makes it: (status, headers, JSON body or null).
async fn visitor(
    app: &App,
    method: Method,
    path: &str,
    origin: Option<&str>,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut req = app.http.request(method, format!("{}{path}", app.base));
    if let Some(o) = origin {
        req = req.header("origin", o);
    }
    if let Some(t) = token {
        req = req.header(TOKEN_HEADER, t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.expect("request");
    let status = res.status();
    let headers = res.headers().clone();
    let text = res.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, headers, body)
}

/// Starts a chat: (token, conversation id, the start's answer).
async fn start_chat(app: &App, key: &str, campaign: &str, body: &str) -> (String, String, Value) {
    let (s, h, started) = visitor(
        app,
        Method::POST,
        &format!("/chat/v1/sites/{key}/conversations"),
        Some(ORIGIN),
        None,
        Some(json!({"campaign_id": campaign, "page_url": PAGE, "body": body})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{started}");
    assert_eq!(
        h.get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some(ORIGIN)
    );
    (
        started["token"].as_str().expect("token").to_string(),
        started["conversation_id"].as_str().expect("id").to_string(),
        started,
    )
}

async fn visitor_messages(app: &App, key: &str, token: &str) -> Vec<Value> {
    let (s, _, view) = visitor(
        app,
        Method::GET,
        &format!("/chat/v1/sites/{key}/conversations/messages"),
        Some(ORIGIN),
        Some(token),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{view}");
    view["messages"].as_array().cloned().unwrap_or_default()
}

fn bodies(messages: &[Value]) -> Vec<(String, String)> {
    messages
        .iter()
        .map(|m| {
            (
                m["from"].as_str().unwrap_or_default().to_string(),
                m["body"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

async fn inbox_conversations(app: &App, inbox: &str) -> Vec<Value> {
    let (s, list) = app
        .admin(
            Method::GET,
            &format!("/api/v1/inboxes/{inbox}/conversations"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{list}");
    list["items"].as_array().cloned().unwrap_or_default()
}

async fn timeline(app: &App, conversation: &str) -> Value {
    let (s, view) = app
        .admin(
            Method::GET,
            &format!("/api/v1/conversations/{conversation}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{view}");
    view
}

/// Reads a stream's events until one holds `needle`, at most `within`.
async fn wait_for_event(mut res: reqwest::Response, needle: &str, within: Duration) -> String {
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + within;
    while !seen.contains(needle) {
        match tokio::time::timeout_at(deadline, res.chunk()).await {
            Ok(Ok(Some(chunk))) => seen.push_str(&String::from_utf8_lossy(&chunk)),
            Ok(other) => panic!("the stream ended ({other:?}) before {needle:?}: {seen}"),
            Err(_) => panic!("no {needle:?} within {within:?}; the stream said: {seen}"),
        }
    }
    seen
}

async fn a_visitor_reply_opens_a_conversation_and_the_agents_answer_reaches_them(app: App) {
    let (key, campaign, inbox) = chat_setup(&app, "Shoes").await;
    assert!(inbox_conversations(&app, &inbox).await.is_empty());

    let (token, conversation, started) =
        start_chat(&app, &key, &campaign, "Do you have size 42?").await;
    assert_eq!(
        bodies(started["messages"].as_array().expect("messages")),
        [
            ("greeting".into(), "Need a hand with Shoes?".into()),
            ("visitor".into(), "Do you have size 42?".into())
        ]
    );

    // In the campaign's inbox, with the campaign, its description, the page and the greeting.
    let list = inbox_conversations(&app, &inbox).await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["id"], conversation.as_str());
    assert_eq!(list[0]["channel"], "chat");
    assert_eq!(list[0]["campaign_id"], campaign.as_str());
    let view = timeline(&app, &conversation).await;
    let starts = view["chat_starts"].as_array().expect("chat starts");
    assert_eq!(starts.len(), 1, "{view}");
    assert_eq!(starts[0]["page_url"], PAGE);
    assert_eq!(starts[0]["campaign_name"], "Shoes");
    assert_eq!(starts[0]["campaign_description"], "Help with Shoes sizes");
    let messages = view["messages"].as_array().expect("messages");
    let got: Vec<_> = messages
        .iter()
        .map(|m| {
            (
                m["author"].clone(),
                m["direction"].clone(),
                m["body"].clone(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                json!("outreach"),
                json!("outbound"),
                json!("Need a hand with Shoes?")
            ),
            (
                json!("customer"),
                json!("inbound"),
                json!("Do you have size 42?")
            ),
        ]
    );
    // The visitor's stream is open before the agent answers; the answer arrives on it.
    let after = started["messages"][1]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let stream = app
        .http
        .get(format!(
            "{}/chat/v1/sites/{key}/conversations/events?token={token}&after={after}",
            app.base
        ))
        .header("origin", ORIGIN)
        .send()
        .await
        .expect("events");
    assert_eq!(stream.status(), StatusCode::OK);
    assert_eq!(
        stream
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
    assert_eq!(
        stream
            .headers()
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some(ORIGIN)
    );
    let (s, reply) = app
        .admin(
            Method::POST,
            &format!("/api/v1/conversations/{conversation}/messages"),
            Some(json!({"body": "Yes, in blue and black."})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{reply}");
    assert_eq!(reply["channel"], "chat");
    let said = wait_for_event(stream, "Yes, in blue and black.", Duration::from_secs(3)).await;
    assert!(said.contains("event: message"), "{said}");
    assert!(said.contains("\"from\":\"agent\""), "{said}");
    assert!(
        !said.contains("Do you have size 42?"),
        "the stream starts after `after`: {said}"
    );

    // The visitor's next message lands in the same conversation; a reload lists all four.
    let (s, _, m) = visitor(
        &app,
        Method::POST,
        &format!("/chat/v1/sites/{key}/conversations/messages"),
        Some(ORIGIN),
        Some(&token),
        Some(json!({"body": "Great, thanks!"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{m}");
    assert_eq!(
        bodies(&visitor_messages(&app, &key, &token).await),
        [
            ("greeting".into(), "Need a hand with Shoes?".into()),
            ("visitor".into(), "Do you have size 42?".into()),
            ("agent".into(), "Yes, in blue and black.".into()),
            ("visitor".into(), "Great, thanks!".into()),
        ]
    );
    assert_eq!(inbox_conversations(&app, &inbox).await.len(), 1);
    assert_eq!(
        timeline(&app, &conversation).await["messages"]
            .as_array()
            .map(Vec::len),
        Some(4)
    );
    // The chat's sender is Herald's own: the senders API does not list it.
    let (_, senders) = app.admin(Method::GET, "/api/v1/senders", None).await;
    assert_eq!(senders["items"], json!([]), "{senders}");
}

async fn a_token_reads_and_writes_its_own_conversation_only(app: App) {
    let (key, campaign, inbox) = chat_setup(&app, "Shoes").await;
    let (other_key, other_campaign, _) = chat_setup(&app, "Hats").await;
    let (a, a_id, _) = start_chat(&app, &key, &campaign, "I am visitor A").await;
    let (b, b_id, _) = start_chat(&app, &key, &campaign, "I am visitor B").await;
    assert_ne!(a_id, b_id, "two visitors, two conversations");
    assert_eq!(inbox_conversations(&app, &inbox).await.len(), 2);

    let a_sees = bodies(&visitor_messages(&app, &key, &a).await);
    assert!(
        a_sees.iter().any(|(_, b)| b == "I am visitor A"),
        "{a_sees:?}"
    );
    assert!(
        !a_sees.iter().any(|(_, b)| b == "I am visitor B"),
        "{a_sees:?}"
    );

    // B's signature on A's conversation id is no token.
    let (_, rest) = b.split_once('.').expect("token");
    let forged = format!("{}.{rest}", a_id.replace('-', ""));
    let path = format!("/chat/v1/sites/{key}/conversations/messages");
    for bad in [forged.as_str(), "nonsense", &format!("{a}0")] {
        let (s, _, p) = visitor(&app, Method::GET, &path, Some(ORIGIN), Some(bad), None).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{bad}: {p}");
        let (s, _, p) = visitor(
            &app,
            Method::POST,
            &path,
            Some(ORIGIN),
            Some(bad),
            Some(json!({"body": "let me in"})),
        )
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{bad}: {p}");
        let events = app
            .http
            .get(format!(
                "{}/chat/v1/sites/{key}/conversations/events?token={bad}",
                app.base
            ))
            .send()
            .await
            .expect("events");
        assert_eq!(events.status(), StatusCode::FORBIDDEN);
    }
    // No token at all: 401, in words.
    let (s, _, p) = visitor(&app, Method::GET, &path, Some(ORIGIN), None, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{p}");
    assert!(
        p["detail"].as_str().unwrap_or("").contains(TOKEN_HEADER),
        "{p}"
    );
    // A token of one site is nothing on another.
    let (s, _, p) = visitor(
        &app,
        Method::GET,
        &format!("/chat/v1/sites/{other_key}/conversations/messages"),
        Some(ORIGIN),
        Some(&a),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{p}");
    let _ = other_campaign;

    // Nothing was written by the refused calls.
    let view = timeline(&app, &a_id).await;
    assert_eq!(view["messages"].as_array().map(Vec::len), Some(2), "{view}");
}

async fn oversized_messages_are_refused_and_nothing_is_stored(app: App) {
    let (key, campaign, inbox) = chat_setup(&app, "Shoes").await;
    let max = ChatLimits::default().max_message_chars;
    let too_long = "é".repeat(max + 1);
    let (s, h, p) = visitor(
        &app,
        Method::POST,
        &format!("/chat/v1/sites/{key}/conversations"),
        Some(ORIGIN),
        None,
        Some(json!({"campaign_id": campaign, "page_url": PAGE, "body": too_long})),
    )
    .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{p}");
    assert_eq!(
        h.get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/problem+json")
    );
    assert!(
        p["detail"]
            .as_str()
            .unwrap_or("")
            .contains(&format!("at most {max}")),
        "{p}"
    );
    assert!(
        inbox_conversations(&app, &inbox).await.is_empty(),
        "a refused start opens nothing"
    );

    // Exactly the limit is taken.
    let (token, conversation, _) = start_chat(&app, &key, &campaign, &"é".repeat(max)).await;
    let path = format!("/chat/v1/sites/{key}/conversations/messages");
    let (s, _, p) = visitor(
        &app,
        Method::POST,
        &path,
        Some(ORIGIN),
        Some(&token),
        Some(json!({"body": too_long})),
    )
    .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{p}");
    // A body past the byte bound is refused before it is read as JSON.
    let (s, _, p) = visitor(
        &app,
        Method::POST,
        &path,
        Some(ORIGIN),
        Some(&token),
        Some(json!({"body": "x".repeat(100_000)})),
    )
    .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{p}");
    let (s, _, p) = visitor(
        &app,
        Method::POST,
        &path,
        Some(ORIGIN),
        Some(&token),
        Some(json!({"body": "   "})),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    let view = timeline(&app, &conversation).await;
    assert_eq!(
        view["messages"].as_array().map(Vec::len),
        Some(2),
        "the greeting and the first message only: {view}"
    );
}

async fn a_flood_is_refused_with_retry_after_and_earlier_messages_stay(app: App) {
    let (key, campaign, _) = chat_setup(&app, "Shoes").await;
    let (token, conversation, _) = start_chat(&app, &key, &campaign, "message 0").await;
    let path = format!("/chat/v1/sites/{key}/conversations/messages");
    // The start took one of the five.
    for i in 1..5 {
        let (s, _, p) = visitor(
            &app,
            Method::POST,
            &path,
            Some(ORIGIN),
            Some(&token),
            Some(json!({"body": format!("message {i}")})),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "message {i}: {p}");
    }
    for i in 5..8 {
        let (s, h, p) = visitor(
            &app,
            Method::POST,
            &path,
            Some(ORIGIN),
            Some(&token),
            Some(json!({"body": format!("message {i}")})),
        )
        .await;
        assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "message {i}: {p}");
        let retry: u64 = h
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .expect("Retry-After");
        assert!((1..=60).contains(&retry), "{retry}");
    }
    let view = timeline(&app, &conversation).await;
    let got: Vec<_> = view["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| m["direction"] == "inbound")
        .map(|m| m["body"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        got,
        (0..5).map(|i| format!("message {i}")).collect::<Vec<_>>(),
        "the first five are kept, the flood is not"
    );
    // Another visitor is not held back by this one's flood.
    let (other, _, _) = start_chat(&app, &key, &campaign, "hello").await;
    let (s, _, p) = visitor(
        &app,
        Method::POST,
        &path,
        Some(ORIGIN),
        Some(&other),
        Some(json!({"body": "still there?"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
}

async fn cors_is_granted_to_the_sites_origins_only(app: App) {
    let (key, campaign, inbox) = chat_setup(&app, "Shoes").await;
    let start_path = format!("/chat/v1/sites/{key}/conversations");
    let preflight = |origin: &'static str| {
        app.http
            .request(Method::OPTIONS, format!("{}{start_path}", app.base))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let ok = preflight(ORIGIN).await.expect("preflight");
    assert_eq!(
        ok.headers()
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some(ORIGIN)
    );
    let allowed = ok
        .headers()
        .get("access-control-allow-headers")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(allowed.contains(TOKEN_HEADER), "{allowed}");
    let evil = preflight("https://evil.example.net")
        .await
        .expect("preflight");
    assert!(
        evil.headers().get("access-control-allow-origin").is_none(),
        "{:?}",
        evil.headers()
    );
    assert!(evil.headers().get("access-control-allow-headers").is_none());

    // A page of another origin is refused outright, and nothing is stored.
    let (s, h, p) = visitor(
        &app,
        Method::POST,
        &start_path,
        Some("https://evil.example.net"),
        None,
        Some(json!({"campaign_id": campaign, "page_url": PAGE, "body": "hi"})),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{p}");
    assert!(h.get("access-control-allow-origin").is_none());
    assert!(inbox_conversations(&app, &inbox).await.is_empty());
    let (token, conversation, _) = start_chat(&app, &key, &campaign, "hi").await;
    let (s, h, _) = visitor(
        &app,
        Method::GET,
        &format!("/chat/v1/sites/{key}/conversations/messages"),
        Some("https://evil.example.net"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(h.get("access-control-allow-origin").is_none());
    let (s, _, _) = visitor(
        &app,
        Method::POST,
        &format!("/chat/v1/sites/{key}/conversations/messages"),
        Some("https://evil.example.net"),
        Some(&token),
        Some(json!({"body": "from elsewhere"})),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(
        timeline(&app, &conversation).await["messages"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    // An unknown site key is a 404 in words.
    let (s, _, p) = visitor(
        &app,
        Method::POST,
        "/chat/v1/sites/0123456789abcdef0123456789abcdef/conversations",
        Some(ORIGIN),
        None,
        Some(json!({"campaign_id": campaign, "page_url": PAGE, "body": "hi"})),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{p}");
}

async fn an_answer_through_another_node_reaches_the_visitors_stream(app: App) {
    let (key, campaign, _) = chat_setup(&app, "Shoes").await;
    // A second server on the same database, with the same secret, and no poke between them.
    let other = common::start_shared(app.db.clone(), |s| {
        *s = s.clone().with_chat(b"test secret", ChatLimits::default());
    })
    .await;
    let (token, conversation, started) = start_chat(&app, &key, &campaign, "Anyone there?").await;
    let after = started["messages"][1]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let stream = app
        .http
        .get(format!(
            "{}/chat/v1/sites/{key}/conversations/events?token={token}&after={after}",
            app.base
        ))
        .send()
        .await
        .expect("events");
    assert_eq!(stream.status(), StatusCode::OK);
    let (s, reply) = other
        .admin(
            Method::POST,
            &format!("/api/v1/conversations/{conversation}/messages"),
            Some(json!({"body": "Answered from node two"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{reply}");
    let said = wait_for_event(stream, "Answered from node two", Duration::from_secs(2)).await;
    assert!(said.contains("\"from\":\"agent\""), "{said}");
    // The token works on the other node too: the visitor may land on either.
    assert_eq!(
        bodies(&visitor_messages(&other, &key, &token).await).len(),
        3,
        "greeting, question, answer"
    );
}

async fn onboarding_matches_the_customer_by_email_and_shows_this_chat_only(app: App) {
    let (key, campaign, inbox) = chat_setup_with(&app, "Shoes", true).await;
    let path = format!("/chat/v1/sites/{key}/conversations");
    let (s, _, p) = visitor(
        &app,
        Method::POST,
        &path,
        Some(ORIGIN),
        None,
        Some(json!({"campaign_id": campaign, "page_url": PAGE, "body": "hi"})),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    assert!(
        common::has_error(&p, "email", "asks for the visitor's email"),
        "{p}"
    );
    assert!(inbox_conversations(&app, &inbox).await.is_empty());

    let start = |body: &'static str, name: &'static str| {
        visitor(
            &app,
            Method::POST,
            &path,
            Some(ORIGIN),
            None,
            Some(
                json!({"campaign_id": campaign, "page_url": PAGE, "body": body,
                        "email": "ann@example.com", "name": name}),
            ),
        )
    };
    let (s, _, p) = start("no name", "  ").await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    assert!(
        common::has_error(&p, "name", "asks for the visitor's name"),
        "{p}"
    );
    let (s, _, p) = start("a name of two lines", "Ann\nLee").await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    assert!(common::has_error(&p, "name", "one line"), "{p}");
    assert!(inbox_conversations(&app, &inbox).await.is_empty());

    let (s, _, first) = start("first chat", " Ann Lee ").await;
    assert_eq!(s, StatusCode::CREATED, "{first}");
    let (s, customer) = app
        .admin(
            Method::GET,
            "/api/v1/customers?address=ann@example.com",
            None,
        )
        .await;
    assert_eq!(
        s,
        StatusCode::OK,
        "the visitor is the customer of that email: {customer}"
    );
    assert_eq!(customer["customer"]["name"], "Ann Lee", "{customer}");
    let (s, _, second) = start("second chat", "Ann L.").await;
    assert_eq!(s, StatusCode::CREATED, "{second}");
    assert_eq!(
        first["conversation_id"], second["conversation_id"],
        "the same customer's conversation with the campaign"
    );
    let conversation = first["conversation_id"].as_str().expect("id");
    let view = timeline(&app, conversation).await;
    assert_eq!(
        view["chat_starts"].as_array().map(Vec::len),
        Some(2),
        "{view}"
    );
    assert_eq!(view["conversation"]["customer_address"], "ann@example.com");
    assert_eq!(
        view["conversation"]["customer_name"], "Ann L.",
        "the latest name given: {view}"
    );
    // Whoever types that email reads this chat only, not the customer's earlier one.
    let seen =
        bodies(&visitor_messages(&app, &key, second["token"].as_str().expect("token")).await);
    assert_eq!(
        seen,
        [
            ("greeting".into(), "Need a hand with Shoes?".into()),
            ("visitor".into(), "second chat".into())
        ]
    );
}

async fn a_campaign_without_an_inbox_refuses_the_chat_in_words(app: App) {
    let (key, campaign, inbox) = chat_setup(&app, "Shoes").await;
    let (s, saved) = app
        .admin(
            Method::GET,
            &format!("/api/v1/campaigns/{campaign}/chat"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let mut settings = saved.clone();
    settings["inbox_id"] = Value::Null;
    let (s, p) = app
        .admin(
            Method::PUT,
            &format!("/api/v1/campaigns/{campaign}/chat"),
            Some(settings),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    let (s, _, p) = visitor(
        &app,
        Method::POST,
        &format!("/chat/v1/sites/{key}/conversations"),
        Some(ORIGIN),
        None,
        Some(json!({"campaign_id": campaign, "page_url": PAGE, "body": "hi"})),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{p}");
    assert!(
        p["detail"].as_str().unwrap_or("").contains("no inbox"),
        "{p}"
    );
    assert!(inbox_conversations(&app, &inbox).await.is_empty());
    // An inbox that does not exist is refused when the settings are written.
    let mut settings = saved;
    settings["inbox_id"] = json!(uuid::Uuid::nil());
    let (s, p) = app
        .admin(
            Method::PUT,
            &format!("/api/v1/campaigns/{campaign}/chat"),
            Some(settings),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    assert!(common::has_error(&p, "inbox_id", "inbox"), "{p}");
}

async fn agents_see_the_chat_start_and_answer_from_the_conversation_page(app: App) {
    let (key, campaign, _) = chat_setup(&app, "Shoes").await;
    let (token, conversation, _) =
        start_chat(&app, &key, &campaign, "Is <script>x</script> in stock?").await;
    let agent = common::web::sign_in(&app, "agent@example.com", herald_core::Role::Agent).await;
    let html = agent.page(&format!("/conversations/{conversation}")).await;
    for needle in [
        "Chat started",
        "class=\"chat-campaign\">Shoes</strong>",
        "Help with Shoes sizes",
        "https://shop.example.com/shop/shoes?size=42",
        "Need a hand with Shoes?",
        "Is &#60;script&#62;x&#60;/script&#62; in stock?",
        "Send chat message",
    ] {
        assert!(html.contains(needle), "{needle:?} not on the page: {html}");
    }
    assert!(!html.contains("id=\"cannot-reply\""), "{html}");
    let res = agent
        .post(
            &format!("/conversations/{conversation}/reply"),
            &[("body", "It is, in every size.")],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let seen = bodies(&visitor_messages(&app, &key, &token).await);
    assert_eq!(
        seen.last(),
        Some(&("agent".to_string(), "It is, in every size.".to_string()))
    );
}

async fn event_streams_are_bounded_per_conversation(app: App) {
    let (key, campaign, _) = chat_setup(&app, "Shoes").await;
    let (token, _, _) = start_chat(&app, &key, &campaign, "hi").await;
    let open = || {
        app.http
            .get(format!(
                "{}/chat/v1/sites/{key}/conversations/events?token={token}",
                app.base
            ))
            .send()
    };
    let most = ChatLimits::default().streams_per_conversation;
    let mut streams = Vec::new();
    for _ in 0..most {
        let res = open().await.expect("events");
        assert_eq!(res.status(), StatusCode::OK);
        streams.push(res);
    }
    let refused = open().await.expect("events");
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.headers().get("retry-after").is_some());
    let p: Value = refused.json().await.expect("problem");
    assert!(
        p["detail"].as_str().unwrap_or("").contains("streams open"),
        "{p}"
    );
    // Another visitor's conversation has streams of its own.
    let (other, _, _) = start_chat(&app, &key, &campaign, "me too").await;
    let res = app
        .http
        .get(format!(
            "{}/chat/v1/sites/{key}/conversations/events?token={other}",
            app.base
        ))
        .send()
        .await
        .expect("events");
    assert_eq!(res.status(), StatusCode::OK);
    // The open streams start with what the visitor may read: the greeting and the message.
    let said = wait_for_event(streams.remove(0), "\"body\":\"hi\"", Duration::from_secs(2)).await;
    assert!(said.contains("\"from\":\"greeting\""), "{said}");
}

/// Opens an event stream on a new connection, as a browser's `EventSource` does, and reads
/// its answer's head: (the socket, the head, what came after it).
async fn raw_stream(app: &App, path: &str) -> (tokio::net::TcpStream, String, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = app.base.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(addr).await.expect("connect");
    socket
        .write_all(
            format!(
                "GET {path} HTTP/1.1\r\nHost: {addr}\r\nOrigin: {ORIGIN}\r\n\
                 Accept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .expect("send");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
            return (socket, head, got[end + 4..].to_vec());
        }
        let n = tokio::time::timeout(Duration::from_secs(5), socket.read(&mut buf))
            .await
            .expect("a head within 5 s")
            .expect("read");
        assert!(
            n > 0,
            "closed before a head: {}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
}

/// Decodes a chunked body read so far: its text, and whether its last chunk came.
fn dechunk(mut bytes: &[u8]) -> (String, bool) {
    let mut text = Vec::new();
    loop {
        let Some(eol) = bytes.windows(2).position(|w| w == b"\r\n") else {
            return (String::from_utf8_lossy(&text).into_owned(), false);
        };
        let size = usize::from_str_radix(std::str::from_utf8(&bytes[..eol]).expect("size"), 16)
            .expect("a chunk size in hex");
        if size == 0 {
            return (String::from_utf8_lossy(&text).into_owned(), true);
        }
        let data = &bytes[eol + 2..];
        if data.len() < size + 2 {
            return (String::from_utf8_lossy(&text).into_owned(), false);
        }
        assert_eq!(&data[size..size + 2], b"\r\n", "a chunk ends with CRLF");
        text.extend_from_slice(&data[..size]);
        bytes = &data[size + 2..];
    }
}

/// Reads `socket` (after `got`) until its chunked body holds `needle`.
async fn read_until(socket: &mut tokio::net::TcpStream, mut got: Vec<u8>, needle: &str) -> String {
    use tokio::io::AsyncReadExt;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    let mut buf = [0u8; 4096];
    loop {
        let (text, _) = dechunk(&got);
        if text.contains(needle) {
            return text;
        }
        let n = tokio::time::timeout_at(deadline, socket.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no {needle:?} within 3 s; the stream said: {text}"))
            .expect("read");
        assert!(n > 0, "closed before {needle:?}: {text}");
        got.extend_from_slice(&buf[..n]);
    }
}

/// A stream opened on a new connection is answered by Herald's lean path (`serve.rs`): its
/// answer is a chunked event stream with the site's CORS grant, live (an agent's answer comes
/// as an event), and its slot is given back when the visitor leaves.
async fn a_fresh_connections_stream_is_chunked_live_and_freed_when_the_visitor_leaves(app: App) {
    let (key, campaign, _) = chat_setup(&app, "Shoes").await;
    let (token, conversation, _) = start_chat(&app, &key, &campaign, "hi").await;
    let path = format!("/chat/v1/sites/{key}/conversations/events?token={token}");
    let (mut socket, head, rest) = raw_stream(&app, &path).await;
    assert!(head.starts_with("http/1.1 200 ok"), "{head}");
    for line in [
        "content-type: text/event-stream",
        "transfer-encoding: chunked",
        "connection: close",
        &format!("access-control-allow-origin: {ORIGIN}"),
        "cache-control: no-store",
        "x-content-type-options: nosniff",
    ] {
        assert!(head.contains(line), "no {line:?} in {head}");
    }
    assert!(!head.contains("content-length"), "{head}");
    let said = read_until(&mut socket, rest.clone(), "\"body\":\"hi\"").await;
    assert!(said.contains("event: message"), "{said}");
    let (s, reply) = app
        .admin(
            Method::POST,
            &format!("/api/v1/conversations/{conversation}/messages"),
            Some(json!({"body": "Size 42 is in stock"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{reply}");
    let said = read_until(&mut socket, rest, "Size 42 is in stock").await;
    assert!(said.contains("\"from\":\"agent\""), "{said}");

    // A wrong token is refused on this path too, in a complete answer.
    let (mut bad, head, rest) = raw_stream(
        &app,
        &format!("/chat/v1/sites/{key}/conversations/events?token=x.y.z.w"),
    )
    .await;
    assert!(head.starts_with("http/1.1 4"), "{head}");
    let mut got = rest;
    let mut buf = [0u8; 1024];
    while !dechunk(&got).1 {
        use tokio::io::AsyncReadExt;
        let n = tokio::time::timeout(Duration::from_secs(3), bad.read(&mut buf))
            .await
            .expect("the refusal ends")
            .expect("read");
        assert!(n > 0, "closed before the last chunk");
        got.extend_from_slice(&buf[..n]);
    }
    assert!(dechunk(&got).0.contains("token"), "{}", dechunk(&got).0);

    // The conversation's slots fill; a visitor who leaves gives theirs back.
    let most = ChatLimits::default().streams_per_conversation;
    let mut held = vec![socket];
    for _ in 1..most {
        let (socket, head, _) = raw_stream(&app, &path).await;
        assert!(head.starts_with("http/1.1 200"), "{head}");
        held.push(socket);
    }
    let (_, head, _) = raw_stream(&app, &path).await;
    assert!(head.starts_with("http/1.1 429"), "past the bound: {head}");
    drop(held.pop());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        let (socket, head, _) = raw_stream(&app, &path).await;
        if head.starts_with("http/1.1 200") {
            held.push(socket);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slot of the stream whose visitor left was not given back: {head}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Posts a batch of the widget's counts as `sendBeacon` does (text, no preflight).
async fn beacon(app: &App, key: &str, origin: &str, body: String) -> StatusCode {
    app.http
        .post(format!("{}/chat/v1/sites/{key}/events", app.base))
        .header("origin", origin)
        .header("content-type", "text/plain;charset=UTF-8")
        .body(body)
        .send()
        .await
        .expect("beacon")
        .status()
}

async fn figures_count_what_pages_report_and_the_chats_that_start(app: App) {
    let (key, campaign, _) = chat_setup(&app, "Shoes").await;
    let (_, other, _) = chat_setup(&app, "Socks").await;
    let batch = |events: Value| json!({ "events": events }).to_string();
    let page_view = batch(json!([
        {"campaign": campaign, "kind": "eligible"},
        {"campaign": campaign, "kind": "shown", "n": 1},
        {"campaign": campaign, "kind": "closed"},
        // Answers are counted by the server, not taken from pages.
        {"campaign": campaign, "kind": "engaged", "n": 5},
        // Not a campaign of this site.
        {"campaign": "0191e9a4-0000-7000-8000-000000000000", "kind": "shown"},
        // A page view shows a greeting once: a larger count is cut.
        {"campaign": campaign, "kind": "eligible", "n": 1000}
    ]));
    assert_eq!(
        beacon(&app, &key, ORIGIN, page_view).await,
        StatusCode::NO_CONTENT
    );
    // Another origin, too large a batch, too many entries: refused, nothing counted.
    let one = batch(json!([{"campaign": campaign, "kind": "shown"}]));
    assert_eq!(
        beacon(&app, &key, "https://evil.example", one.clone()).await,
        StatusCode::FORBIDDEN
    );
    let big = batch(json!([{"campaign": campaign, "kind": "shown", "pad": "x".repeat(5000)}]));
    assert_eq!(
        beacon(&app, &key, ORIGIN, big).await,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    let many: Vec<Value> = (0..31)
        .map(|_| json!({"campaign": campaign, "kind": "shown"}))
        .collect();
    assert_eq!(
        beacon(&app, &key, ORIGIN, batch(json!(many))).await,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    // A visitor answers: engaged, and a conversation opened.
    start_chat(&app, &key, &campaign, "Do you have size 42?").await;

    let (s, f) = app
        .admin(
            Method::GET,
            &format!("/api/v1/campaigns/{campaign}/chat/figures?days=7"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{f}");
    assert_eq!(
        f["total"],
        json!({"day": f["to"], "eligible": 11, "shown": 1, "closed": 1, "engaged": 1,
               "conversations": 1}),
        "{f}"
    );
    assert_eq!(f["days"].as_array().map(Vec::len), Some(1), "{f}");
    assert_eq!(f["days"][0]["day"], f["to"]);
    // The other campaign counted nothing; an SMS campaign has no such figures.
    let (_, f) = app
        .admin(
            Method::GET,
            &format!("/api/v1/campaigns/{other}/chat/figures"),
            None,
        )
        .await;
    assert_eq!(f["total"]["shown"], 0, "{f}");
    let sms = app.sms_campaign().await;
    let (s, problem) = app
        .admin(
            Method::GET,
            &format!("/api/v1/campaigns/{sms}/chat/figures"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    // The counts are added, not replaced, by the next batch.
    let again = batch(json!([{"campaign": campaign, "kind": "shown"}]));
    assert_eq!(
        beacon(&app, &key, ORIGIN, again).await,
        StatusCode::NO_CONTENT
    );
    let (_, f) = app
        .admin(
            Method::GET,
            &format!("/api/v1/campaigns/{campaign}/chat/figures"),
            None,
        )
        .await;
    assert_eq!(f["total"]["shown"], 2, "{f}");
    // One address sends at most 120 batches a minute (245 cross any minute's line at most once).
    let mut refused = 0;
    for _ in 0..245 {
        let one = batch(json!([{"campaign": campaign, "kind": "eligible"}]));
        if beacon(&app, &key, ORIGIN, one).await == StatusCode::TOO_MANY_REQUESTS {
            refused += 1;
        }
    }
    assert!(refused > 0, "no batch was refused");
    // The campaign's page shows them by day.
    let admin = common::web::sign_in(&app, "admin@example.com", herald_core::Role::Admin).await;
    let page = admin.get(&format!("/campaigns/{campaign}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let cell = |id: &str| {
        common::web::element(&page.body, id)
            .unwrap_or_default()
            .to_string()
    };
    assert!(cell("chat-shown").ends_with(">2</td>"), "{}", page.body);
    assert!(
        cell("chat-conversations").ends_with(">1</td>"),
        "{}",
        page.body
    );
}
