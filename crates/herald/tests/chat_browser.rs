//! The chat widget in a real browser: headless Chromium loads demo pages served from another
//! origin (a tiny HTTP server of this test) that embed the widget of a real `herald serve`, and
//! checks what a visitor sees: the greeting after the time on page, nothing where no trigger
//! matches or a rule excludes the page, a closed campaign that stays closed, the limit of one
//! campaign per visit, `Herald.trigger`, a site stylesheet of `* { all: unset }`, a 360 px
//! screen, and no configuration for an origin the site does not allow. The shared table of URL
//! cases (`crates/herald-core/tests/chat_url_cases.json`) runs through the widget's matcher.
//!
//! Needs `chromium` and `chromedriver` on `PATH` (see `common/webdriver.rs`).

mod common;

use common::webdriver::{Browser, Tools};
use common::{admin_token, serve_reading};
use herald_core::chat::{UrlMatch, UrlRule, compile_url_rule};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::time::Duration;

/// The greeting of the page campaign.
const GREETING: &str = "Need a hand choosing <b>shoes</b>?";
const EVENT_GREETING: &str = "Big cart! Free shipping today.";
const PASSWORD: &str = "correct horse battery staple";

/// Serves the demo page on every path of `127.0.0.1:port` (0: any free port), from a thread:
/// it embeds the widget of `herald` for site `key`, under a stylesheet that unsets everything.
/// Its origin.
fn demo_site(port: u16, herald: String, key: String) -> String {
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind demo site");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = vec![0u8; 8192];
            let mut read = 0;
            while !buf[..read].windows(4).any(|w| w == b"\r\n\r\n") && read < buf.len() {
                match stream.read(&mut buf[read..]) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => read += n,
                }
            }
            let head = String::from_utf8_lossy(&buf[..read]);
            let target = head.split_whitespace().nth(1).unwrap_or("/").to_string();
            let page = format!(
                "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
                 <meta name=\"viewport\" content=\"width=device-width\">\
                 <title>Demo shop</title><style>* {{ all: unset }}</style></head>\
                 <body><h1>Demo shop</h1><p>{target}</p>\
                 <script src=\"{herald}/chat/widget.js\" data-site=\"{key}\" async></script>\
                 </body></html>"
            );
            let res = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{page}",
                page.len()
            );
            let _ = stream.write_all(res.as_bytes());
        }
    });
    format!("http://{addr}")
}

struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    async fn send(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let res = self
            .http
            .request(method.clone(), format!("{}/api/v1{path}", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .expect("api");
        let status = res.status();
        let v: Value = res.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{method} {path}: {status} {v}");
        v
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.send(reqwest::Method::POST, path, body).await
    }

    /// A chat campaign greeting `greeting`, open all week, with these chat settings.
    async fn chat_campaign(&self, name: &str, greeting: &str, settings: Value) -> String {
        let answer = self
            .post(
                "/answers",
                json!({"name": name, "variants": [{"language": "en", "body": greeting}]}),
            )
            .await;
        let days: serde_json::Map<String, Value> =
            ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
                .iter()
                .map(|d| (d.to_string(), json!(["00:00-24:00"])))
                .collect();
        let c = self
            .post(
                "/campaigns",
                json!({"name": name, "channel": "chat", "language": "en",
                       "answer_id": answer["id"], "schedule": {"timezone": "UTC", "days": days}}),
            )
            .await;
        let id = c["id"].as_str().expect("id").to_string();
        self.send(
            reqwest::Method::PUT,
            &format!("/campaigns/{id}/chat"),
            settings,
        )
        .await;
        id
    }
}

/// The campaign whose greeting shows (its id), if one does.
async fn shown(b: &Browser) -> Option<String> {
    b.js(
        "const h = document.getElementById('herald-chat'); return h ? h.getAttribute('data-campaign') : null",
        vec![],
    )
    .await
    .as_str()
    .map(str::to_string)
}

/// Nothing shows for `secs` seconds.
async fn nothing_shows_for(b: &Browser, secs: u64, why: &str) {
    let until = std::time::Instant::now() + Duration::from_secs(secs);
    while std::time::Instant::now() < until {
        if let Some(id) = shown(b).await {
            b.fail::<()>(&format!("campaign {id} showed, but {why}"))
                .await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn wait_shown(b: &Browser, what: &str) -> String {
    b.wait_js(
        what,
        "const h = document.getElementById('herald-chat'); return h && h.shadowRoot.querySelector('.t').textContent ? h.getAttribute('data-campaign') : null",
    )
    .await
    .as_str()
    .unwrap_or("")
    .to_string()
}

/// The widget's chat lines, `[from, text]`, once there are `n` of them; the HTML of each line
/// must be its text escaped (never markup).
async fn chat_lines(b: &Browser, what: &str, n: usize) -> Value {
    b.wait_js(
        what,
        &format!(
            "const h = document.getElementById('herald-chat');
             const items = h ? [...h.shadowRoot.querySelectorAll('ol li')] : [];
             if (items.length < {n}) return null;
             if (items.some(li => li.children.length)) return 'markup in a line';
             return items.map(li => [li.getAttribute('data-from'), li.textContent]);"
        ),
    )
    .await
}

async fn fresh_visit(b: &Browser) {
    b.js("localStorage.clear(); return true", vec![]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_widget_greets_visitors_of_another_origin() {
    let Some(tools) = Tools::find() else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    let db = "sqlite://herald.db";
    let token = admin_token(dir.path(), db);
    let port = herald_testkit::closed_port();
    let base = format!("http://127.0.0.1:{port}");
    let (server, _, _) = serve_reading(
        dir.path(),
        db,
        &["--bind", &format!("127.0.0.1:{port}")],
        &[("HERALD_SERVER__PUBLIC_URL", &base)],
        None,
        Duration::from_secs(60),
    );
    let api = Api {
        http: reqwest::Client::new(),
        base: base.clone(),
        token,
    };

    // Two demo origins: the site allows only the first.
    let site_port = herald_testkit::closed_port();
    let allowed = format!("http://127.0.0.1:{site_port}");
    let site = api
        .post(
            "/chat/sites",
            json!({"name": "Demo shop", "allowed_origins": [allowed], "max_per_visit": 1}),
        )
        .await;
    let key = site["key"].as_str().expect("key").to_string();
    assert_eq!(
        site["snippet"],
        format!("<script src=\"{base}/chat/widget.js\" data-site=\"{key}\" async></script>")
    );
    let inbox = api.post("/inboxes", json!({"name": "Web chats"})).await;
    let inbox_id = inbox["id"].as_str().expect("inbox id").to_string();
    let page_campaign = api
        .chat_campaign(
            "Shoes",
            GREETING,
            json!({"site_id": site["id"], "inbox_id": inbox_id, "order": 1, "onboarding": true,
                   "triggers": [
                {"kind": "url", "include": [{"match": "wildcard", "value": "/shop/*"}],
                 "exclude": [{"match": "equals", "value": "/shop/checkout"}]},
                {"kind": "time_on_page", "seconds": 2}]}),
        )
        .await;
    let event_campaign = api
        .chat_campaign(
            "Big carts",
            EVENT_GREETING,
            json!({"site_id": site["id"], "order": 2, "triggers": [
                {"kind": "event", "name": "cart", "condition": {"op": "gte", "value": 250}}]}),
        )
        .await;

    let demo = demo_site(site_port, base.clone(), key.clone());
    assert_eq!(demo, allowed);
    let other = demo_site(0, base.clone(), key.clone());

    let mut b = Browser::start(&tools, &base).await;
    b.viewport(360, 740).await;

    // A page no trigger matches: nothing, even after the time on page.
    b.goto(&format!("{demo}/about")).await;
    fresh_visit(&b).await;
    b.goto(&format!("{demo}/about")).await;
    b.wait_js(
        "the widget to load",
        "return !!(window.Herald && window.Herald.trigger)",
    )
    .await;
    nothing_shows_for(&b, 3, "no trigger matches /about").await;

    // An event below the condition does nothing; one that meets it shows its campaign.
    b.js("Herald.trigger('cart', {value: 100}); return true", vec![])
        .await;
    nothing_shows_for(&b, 1, "a cart of 100 is below the condition").await;
    b.js("Herald.trigger('cart', {value: 300}); return true", vec![])
        .await;
    assert_eq!(wait_shown(&b, "the event campaign").await, event_campaign);

    // A new visit on an excluded page: nothing.
    fresh_visit(&b).await;
    b.goto(&format!("{demo}/shop/checkout")).await;
    nothing_shows_for(&b, 3, "/shop/checkout is excluded").await;

    // A product page: the greeting after two seconds, as text, accessible, on a 360 px screen
    // whose stylesheet unsets everything.
    b.goto(&format!("{demo}/shop/shoes/red?ref=ad")).await;
    assert_eq!(shown(&b).await, None, "not before the time on page");
    assert_eq!(wait_shown(&b, "the greeting").await, page_campaign);
    let look = b
        .js(
            "const root = document.getElementById('herald-chat').shadowRoot;
             const box = root.querySelector('[role=complementary]');
             const text = root.querySelector('.t');
             const close = root.querySelector('button');
             close.focus();
             const r = box.getBoundingClientRect();
             return {text: text.textContent, html: text.innerHTML, live: text.getAttribute('aria-live'),
                     closeLabel: close.getAttribute('aria-label'), focused: root.activeElement === close,
                     left: r.left, right: r.right, top: r.top, bottom: r.bottom, width: r.width,
                     bg: getComputedStyle(box).backgroundColor, position: getComputedStyle(box).position,
                     vw: window.innerWidth, vh: window.innerHeight}",
            vec![],
        )
        .await;
    assert_eq!(look["text"], GREETING, "{look}");
    assert!(
        look["html"].as_str().unwrap_or("").contains("&lt;b&gt;"),
        "the greeting's markup is shown as text: {look}"
    );
    assert_eq!(look["live"], "polite", "{look}");
    assert_eq!(look["closeLabel"], "Close chat message", "{look}");
    assert_eq!(
        look["focused"], true,
        "the close button takes the focus: {look}"
    );
    assert_eq!(look["position"], "fixed", "{look}");
    assert_eq!(
        look["bg"], "rgb(255, 255, 255)",
        "the site's `all: unset` does not reach it: {look}"
    );
    let f = |k: &str| look[k].as_f64().unwrap_or(f64::NAN);
    assert!(
        f("left") >= 0.0 && f("right") <= f("vw") && f("bottom") <= f("vh") && f("width") >= 200.0,
        "the greeting fits a 360 px screen: {look}"
    );

    // Closed by keyboard (Escape on the focused close button): gone, and not back on reload.
    b.js(
        "const root = document.getElementById('herald-chat').shadowRoot;
         root.querySelector('button').dispatchEvent(new KeyboardEvent('keydown', {key: 'Escape', bubbles: true}));
         return true",
        vec![],
    )
    .await;
    assert_eq!(shown(&b).await, None, "closed");
    b.goto(&format!("{demo}/shop/shoes/red")).await;
    nothing_shows_for(&b, 3, "the visitor closed this campaign").await;

    // At most one campaign per visit: the page campaign was this visit's one.
    b.js("Herald.trigger('cart', {value: 300}); return true", vec![])
        .await;
    nothing_shows_for(&b, 1, "the site shows at most one campaign per visit").await;

    // The widget reported what this visitor saw: the greeting eligible, shown and closed.
    let mut figures = Value::Null;
    for _ in 0..60 {
        figures = api
            .send(
                reqwest::Method::GET,
                &format!("/campaigns/{page_campaign}/chat/figures"),
                Value::Null,
            )
            .await;
        let t = &figures["total"];
        if t["shown"].as_u64() >= Some(1) && t["closed"].as_u64() >= Some(1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let t = &figures["total"];
    assert!(
        t["eligible"].as_u64() >= Some(1)
            && t["shown"].as_u64() >= Some(1)
            && t["closed"].as_u64() == Some(1),
        "the campaign's figures: {figures}"
    );

    b.assert_no_problems().await;

    // Live chat. A new visit: the greeting, and the visitor answers it from the keyboard.
    fresh_visit(&b).await;
    let page = format!("{demo}/shop/shoes/blue");
    b.goto(&page).await;
    assert_eq!(wait_shown(&b, "the greeting").await, page_campaign);
    let reply = b
        .js(
            "const root = document.getElementById('herald-chat').shadowRoot;
             const input = root.querySelector('textarea');
             const label = root.querySelector('label[for=' + input.id + ']');
             input.focus();
             return {input, label: label && label.textContent, send: root.querySelector('form button').textContent}",
            vec![],
        )
        .await;
    assert_eq!(reply["label"], "Your reply", "{reply}");
    // Onboarding asks who the visitor is first, with labelled fields.
    let asked = b
        .js(
            "const root = document.getElementById('herald-chat').shadowRoot;
             const out = {};
             for (const [id, value] of [['herald-name', 'Ann Lee'], ['herald-email', 'ann@example.com']]) {
               const f = root.querySelector('#' + id);
               const l = root.querySelector('label[for=' + id + ']');
               out[id] = [f && f.type, l && l.textContent];
               if (f) f.value = value;
             }
             return out",
            vec![],
        )
        .await;
    assert_eq!(
        asked,
        json!({"herald-name": ["text", "Your name"], "herald-email": ["email", "Your email"]}),
        "the onboarding fields"
    );
    assert_eq!(reply["send"], "Send", "{reply}");
    let input = common::webdriver::El(
        reply["input"][common::webdriver::ELEMENT]
            .as_str()
            .expect("the reply box")
            .to_string(),
    );
    b.send_keys(&input, "Do you have them in <i>blue</i>?\u{E007}")
        .await;
    let said = chat_lines(&b, "the visitor's message in the widget", 1).await;
    assert_eq!(
        said,
        json!([["visitor", "Do you have them in <i>blue</i>?"]])
    );

    // It is in the campaign's inbox, with the page and the greeting on the timeline.
    let list = api
        .send(
            reqwest::Method::GET,
            &format!("/inboxes/{inbox_id}/conversations"),
            Value::Null,
        )
        .await;
    let items = list["items"].as_array().expect("conversations");
    assert_eq!(items.len(), 1, "{list}");
    let conversation = items[0]["id"].as_str().expect("id").to_string();
    let view = api
        .send(
            reqwest::Method::GET,
            &format!("/conversations/{conversation}"),
            Value::Null,
        )
        .await;
    assert_eq!(view["chat_starts"][0]["page_url"], page, "{view}");
    assert_eq!(view["chat_starts"][0]["campaign_name"], "Shoes", "{view}");
    let bodies: Vec<_> = view["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["body"].clone())
        .collect();
    assert_eq!(
        bodies,
        [json!(GREETING), json!("Do you have them in <i>blue</i>?")]
    );

    // An agent answers through the API: the widget shows it, as text, within a second or two.
    api.post(
        &format!("/conversations/{conversation}/messages"),
        json!({"body": "Yes: <b>navy</b> and sky blue."}),
    )
    .await;
    let said = chat_lines(&b, "the agent's answer in the widget", 2).await;
    assert_eq!(
        said,
        json!([
            ["visitor", "Do you have them in <i>blue</i>?"],
            ["agent", "Yes: <b>navy</b> and sky blue."]
        ])
    );

    b.screenshot("chat-widget").await;
    let left = b
        .js(
            "return !!document.getElementById('herald-chat').shadowRoot.querySelector('#herald-email')",
            vec![],
        )
        .await;
    assert_eq!(left, false, "onboarding is asked once");

    // The agent's side in the web admin: the visitor by name, and the campaign's figures.
    common::create_user(dir.path(), db, "ada@example.com", "admin", PASSWORD);
    b.goto(&format!("{base}/login")).await;
    b.fill("input[name=email]", "ada@example.com").await;
    b.fill("input[name=password]", PASSWORD).await;
    b.submit("input[name=password]").await;
    b.wait_url("signed in", |u| !u.contains("/login")).await;
    b.goto(&format!("{base}/conversations/{conversation}"))
        .await;
    assert_eq!(b.text("#customer").await, "Ann Lee (ann@example.com)");
    // The figures the page shows once this node has written the chat's own counts (every 10 s).
    for _ in 0..80 {
        let f = api
            .send(
                reqwest::Method::GET,
                &format!("/campaigns/{page_campaign}/chat/figures"),
                Value::Null,
            )
            .await;
        if f["total"]["conversations"].as_u64() >= Some(1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    b.goto(&format!("{base}/campaigns/{page_campaign}")).await;
    assert_eq!(b.text("#chat-conversations").await, "1");
    b.screenshot_element("#chat-figures", "chat-figures").await;
    b.screenshot_element("#chat-where", "chat-where").await;

    // A reload (or another page of the site): the conversation is still there, and live.
    b.goto(&format!("{demo}/about")).await;
    let said = chat_lines(&b, "the conversation after a page change", 2).await;
    assert_eq!(said[1][1], "Yes: <b>navy</b> and sky blue.");
    api.post(
        &format!("/conversations/{conversation}/messages"),
        json!({"body": "Anything else?"}),
    )
    .await;
    chat_lines(&b, "a second answer after the page change", 3).await;
    let list = api
        .send(
            reqwest::Method::GET,
            &format!("/inboxes/{inbox_id}/conversations"),
            Value::Null,
        )
        .await;
    assert_eq!(
        list["items"].as_array().map(Vec::len),
        Some(1),
        "one conversation: {list}"
    );
    b.assert_no_problems().await;

    // An origin the site does not allow gets no configuration, so nothing shows.
    b.goto(&format!("{other}/shop/shoes")).await;
    fresh_visit(&b).await;
    b.goto(&format!("{other}/shop/shoes")).await;
    let fetched = b
        .js(
            "return fetch(arguments[0]).then(() => 'read', () => 'blocked')",
            vec![json!(format!("{base}/chat/v1/sites/{key}/config"))],
        )
        .await;
    assert_eq!(fetched, "blocked", "CORS keeps another origin out");
    nothing_shows_for(&b, 3, "this origin is not allowed").await;
    b.goto(&format!("{demo}/about")).await;
    let fetched = b
        .js(
            "return fetch(arguments[0]).then(r => r.ok ? 'read' : 'status ' + r.status, () => 'blocked')",
            vec![json!(format!("{base}/chat/v1/sites/{key}/config"))],
        )
        .await;
    assert_eq!(fetched, "read", "the allowed origin reads it");

    // The shared table of URL cases through the widget's matcher.
    let table: Value =
        serde_json::from_str(include_str!("../../herald-core/tests/chat_url_cases.json"))
            .expect("case table");
    let mut cases = Vec::new();
    for case in table["cases"].as_array().expect("cases") {
        let (Some(url), Some(want)) = (case["url"].as_str(), case["matches"].as_bool()) else {
            continue;
        };
        let kind: UrlMatch = serde_json::from_value(case["match"].clone()).expect("match");
        let rule = UrlRule {
            kind,
            value: case["value"].as_str().unwrap_or("").to_string(),
        };
        let compiled = compile_url_rule(&rule).unwrap_or_else(|e| panic!("{rule:?}: {e}"));
        cases.push(json!({"rule": compiled, "url": url, "want": want, "value": rule.value}));
    }
    assert!(
        cases.len() >= 45,
        "the table's matching cases: {}",
        cases.len()
    );
    let wrong = b
        .js(
            "return arguments[0].filter(c => Herald._match(c.rule, c.url) !== c.want)
                                .map(c => c.value + ' against ' + c.url + ': want ' + c.want);",
            vec![Value::Array(cases)],
        )
        .await;
    assert_eq!(
        wrong,
        json!([]),
        "the widget's matcher disagrees with the table"
    );

    // The only errors since are the browser's reports of the refused reads.
    b.collect_console().await;
    b.problems
        .retain(|p| !p.contains("CORS policy") && !p.contains("net::ERR_FAILED"));
    b.assert_no_problems().await;
    drop(b);
    server.stop();
}

/// The visitor's widget talks to one `herald serve`, the agent answers through another, both on
/// one PostgreSQL database: each sees the other's messages, live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_visitor_and_an_agent_on_two_nodes_chat_live() {
    let Some(tools) = Tools::find() else {
        return;
    };
    let Some(db) = herald_store::testing::postgres().await else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    let token = admin_token(dir.path(), &db.url);
    let env = [("HERALD_SERVER__SECRET", "one secret for every node")];
    let mut nodes = Vec::new();
    for _ in 0..2 {
        let port = herald_testkit::closed_port();
        let base = format!("http://127.0.0.1:{port}");
        let (server, _, _) = serve_reading(
            dir.path(),
            &db.url,
            &["--bind", &format!("127.0.0.1:{port}")],
            &[env[0], ("HERALD_SERVER__PUBLIC_URL", &base)],
            None,
            Duration::from_secs(60),
        );
        nodes.push((server, base));
    }
    let (visitor_node, agent_node) = (nodes[0].1.clone(), nodes[1].1.clone());
    let agent = Api {
        http: reqwest::Client::new(),
        base: agent_node,
        token,
    };
    let site_port = herald_testkit::closed_port();
    let origin = format!("http://127.0.0.1:{site_port}");
    let site = agent
        .post(
            "/chat/sites",
            json!({"name": "Demo shop", "allowed_origins": [origin]}),
        )
        .await;
    let key = site["key"].as_str().expect("key").to_string();
    let inbox = agent.post("/inboxes", json!({"name": "Web chats"})).await;
    let inbox_id = inbox["id"].as_str().expect("inbox id").to_string();
    let campaign = agent
        .chat_campaign(
            "Shoes",
            GREETING,
            json!({"site_id": site["id"], "inbox_id": inbox_id, "triggers": [
                {"kind": "time_on_page", "seconds": 1}]}),
        )
        .await;
    // The page embeds the widget of the first node.
    let demo = demo_site(site_port, visitor_node.clone(), key);
    let mut b = Browser::start(&tools, &visitor_node).await;
    b.goto(&format!("{demo}/shop")).await;
    fresh_visit(&b).await;
    b.goto(&format!("{demo}/shop")).await;
    assert_eq!(wait_shown(&b, "the greeting").await, campaign);
    let input = b
        .js(
            "const i = document.getElementById('herald-chat').shadowRoot.querySelector('textarea'); i.focus(); return i",
            vec![],
        )
        .await;
    let input = common::webdriver::El(
        input[common::webdriver::ELEMENT]
            .as_str()
            .expect("the reply box")
            .to_string(),
    );
    b.send_keys(&input, "Hello from node one\u{E007}").await;
    chat_lines(&b, "the visitor's message", 1).await;

    // The second node's inbox has it; its agent's answer reaches the widget on the first.
    let conversation = b
        .poll(
            "the conversation on the second node",
            Duration::from_secs(10),
            async |_| {
                let list = agent
                    .send(
                        reqwest::Method::GET,
                        &format!("/inboxes/{inbox_id}/conversations"),
                        Value::Null,
                    )
                    .await;
                list["items"][0]["id"].as_str().map(str::to_string)
            },
        )
        .await;
    agent
        .post(
            &format!("/conversations/{conversation}/messages"),
            json!({"body": "Answered on node two"}),
        )
        .await;
    let said = chat_lines(&b, "the answer from the other node", 2).await;
    assert_eq!(
        said,
        json!([
            ["visitor", "Hello from node one"],
            ["agent", "Answered on node two"]
        ])
    );
    // The visitor's next message is on the second node's timeline.
    b.send_keys(&input, "Thanks!\u{E007}").await;
    chat_lines(&b, "the visitor's second message", 3).await;
    let view = agent
        .send(
            reqwest::Method::GET,
            &format!("/conversations/{conversation}"),
            Value::Null,
        )
        .await;
    let bodies: Vec<_> = view["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["body"].clone())
        .collect();
    assert_eq!(
        bodies,
        [
            json!(GREETING),
            json!("Hello from node one"),
            json!("Answered on node two"),
            json!("Thanks!")
        ]
    );
    b.assert_no_problems().await;
    drop(b);
    for (server, _) in nodes {
        server.stop();
    }
}
