//! A chat campaign set up in the web admin, against SQLite and PostgreSQL: its Chat settings
//! page (site, inbox, order, state, dates, onboarding and one trigger of each kind) stores what
//! the API's `PUT /api/v1/campaigns/{id}/chat` would, refuses bad fields next to them and stores
//! nothing, keeps triggers it cannot show, and feeds the widget's configuration at once; the
//! campaign page says where it shows; Settings → Chat sites → Test a URL says which campaigns
//! would greet a visitor on a URL, and why the others would not.

mod common;

use common::App;
use common::web::{element, sign_in};
use herald_core::Role;
use herald_engine::ManualClock;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::sync::Arc;

herald_store::on_both_backends!(
    with crate::start_on_a_tuesday:
    admins_set_a_chat_campaign_up_in_its_settings_page,
    settings_the_form_cannot_show_are_kept_as_they_are,
    the_url_tester_says_which_campaigns_show_and_why_not,
);

const ORIGIN: &str = "https://shop.example.com";

/// A server whose clock stands at Tuesday 2026-06-02 12:00 UTC.
async fn start_on_a_tuesday(db: herald_store::testing::TestStore) -> App {
    let clock = Arc::new(ManualClock::new(
        "2026-06-02T12:00:00Z".parse().expect("time"),
    ));
    common::start_with(db, move |s| {
        *s = s.clone().with_clock(clock);
    })
    .await
}

/// A chat campaign open all day on `days` in Europe/Paris: its id.
async fn chat_campaign(app: &App, name: &str, days: &[&str]) -> String {
    let answer = app
        .create(
            "/api/v1/answers",
            json!({"name": format!("{name} greeting"),
                   "variants": [{"language": "en", "body": format!("Need a hand with {name}?")}]}),
        )
        .await;
    let mut open = serde_json::Map::new();
    for d in days {
        open.insert(d.to_string(), json!(["00:00-24:00"]));
    }
    let c = app
        .create(
            "/api/v1/campaigns",
            json!({"name": name, "channel": "chat", "language": "en", "answer_id": answer["id"],
                   "schedule": {"timezone": "Europe/Paris", "days": open}}),
        )
        .await;
    c["id"].as_str().expect("campaign id").to_string()
}

async fn site(app: &App, max_per_visit: Value) -> Value {
    app.create(
        "/api/v1/chat/sites",
        json!({"name": "Shop", "allowed_origins": [ORIGIN], "max_per_visit": max_per_visit}),
    )
    .await
}

/// The opening tag of the element with `id` (an `<input>` has no closing one).
fn tag<'a>(html: &'a str, id: &str) -> Option<&'a str> {
    let at = html.find(&format!("id=\"{id}\""))?;
    let open = html[..at].rfind('<')?;
    let end = html[at..].find('>')? + at + 1;
    Some(&html[open..end])
}

async fn stored(app: &App, id: &str) -> (StatusCode, Value) {
    app.admin(Method::GET, &format!("/api/v1/campaigns/{id}/chat"), None)
        .await
}

/// The campaign ids the site's configuration lists, as the widget reads it.
async fn configured(app: &App, key: &str) -> Vec<String> {
    let res = app
        .http
        .get(format!("{}/chat/v1/sites/{key}/config", app.base))
        .header("origin", ORIGIN)
        .send()
        .await
        .expect("config");
    assert_eq!(res.status(), StatusCode::OK);
    let config: Value = res.json().await.expect("json");
    config["campaigns"]
        .as_array()
        .expect("campaigns")
        .iter()
        .map(|c| c["id"].as_str().expect("id").to_string())
        .collect()
}

async fn admins_set_a_chat_campaign_up_in_its_settings_page(app: App) {
    let site = site(&app, json!(null)).await;
    let key = site["key"].as_str().expect("key");
    let inbox = app
        .create("/api/v1/inboxes", json!({"name": "Web chats"}))
        .await;
    let id = chat_campaign(&app, "Shoes", &["tue"]).await;
    let admin = sign_in(&app, "ada@example.com", Role::Admin).await;

    // Before its settings: the page says it shows nowhere, and offers no CSV upload.
    let page = admin.page(&format!("/campaigns/{id}")).await;
    assert!(element(&page, "chat-unset").is_some(), "{page}");
    assert!(element(&page, "add-recipients").is_none(), "{page}");
    assert!(element(&page, "outreach-section").is_none(), "{page}");
    assert!(
        page.contains(&format!("href=\"/campaigns/{id}/chat\"")),
        "{page}"
    );

    // The form starts on the only site, after 10 s on the page.
    let form = admin.page(&format!("/campaigns/{id}/chat")).await;
    let site_select = element(&form, "site_id").expect("site select");
    assert!(
        site_select.contains(&format!(
            "value=\"{}\" selected",
            site["id"].as_str().unwrap()
        )),
        "{site_select}"
    );
    assert!(
        tag(&form, "seconds").is_some_and(|e| e.contains("value=\"10\"")),
        "{form}"
    );

    // Refused: each message next to its field, nothing stored.
    let bad = admin
        .post(
            &format!("/campaigns/{id}/chat"),
            &[
                ("site_id", site["id"].as_str().unwrap()),
                ("state", "live"),
                ("order", "1"),
                ("include", "wildcard /shop/*\nregex (?i)/SHOP"),
                ("seconds", "ten"),
                ("starts_at", "2026-06-10 09:00"),
                ("ends_at", "2026-06-09 09:00"),
                ("event_op", "gte"),
                ("event_value", "200"),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.body);
    let include = element(&bad.body, "include-error").unwrap_or_else(|| panic!("{}", bad.body));
    assert!(
        include.contains("Show on: line 2") && include.contains("(?"),
        "{include}"
    );
    assert!(
        element(&bad.body, "seconds-error").is_some_and(|e| e.contains("whole number")),
        "{}",
        bad.body
    );
    assert!(
        element(&bad.body, "event-error").is_some_and(|e| e.contains("Herald.trigger")),
        "{}",
        bad.body
    );
    assert!(
        element(&bad.body, "include").is_some_and(|e| e.contains("regex (?i)/SHOP")),
        "what was typed stays: {}",
        bad.body
    );
    assert_eq!(stored(&app, &id).await.0, StatusCode::NOT_FOUND);

    // Saved: what the API reads back is what the form said, times in the campaign's zone.
    let saved = admin
        .post(
            &format!("/campaigns/{id}/chat"),
            &[
                ("site_id", site["id"].as_str().unwrap()),
                ("inbox_id", inbox["id"].as_str().unwrap()),
                ("state", "paused"),
                ("order", "2"),
                ("onboarding", "on"),
                ("include", "wildcard /shop/*\n\n"),
                ("exclude", "starts with /shop/checkout"),
                ("seconds", "5"),
                ("visitor", "new"),
                ("languages", "en, fr-CA"),
                ("event", "cart"),
                ("event_op", "gte"),
                ("event_value", "199,90"),
                ("starts_at", "2026-06-01 09:00"),
                ("ends_at", ""),
            ],
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    assert_eq!(saved.location(), format!("/campaigns/{id}"));
    let (s, settings) = stored(&app, &id).await;
    assert_eq!(s, StatusCode::OK, "{settings}");
    assert_eq!(
        settings,
        json!({
            "site_id": site["id"], "inbox_id": inbox["id"], "order": 2, "onboarding": true,
            "paused": true, "starts_at": "2026-06-01T07:00:00Z", "ends_at": null,
            "triggers": [
                {"kind": "url", "include": [{"match": "wildcard", "value": "/shop/*"}],
                 "exclude": [{"match": "starts_with", "value": "/shop/checkout"}]},
                {"kind": "time_on_page", "seconds": 5},
                {"kind": "visitor", "visitor": "new"},
                {"kind": "language", "languages": ["en", "fr-CA"]},
                {"kind": "event", "name": "cart",
                 "condition": {"field": "value", "op": "gte", "value": 199.9}}
            ]
        })
    );
    assert!(
        configured(&app, key).await.is_empty(),
        "a paused campaign is not in the configuration"
    );

    // The campaign page says it in words; the form reads back what it stored.
    let page = admin.page(&format!("/campaigns/{id}")).await;
    let summary = element(&page, "chat-settings-summary").expect("summary");
    for needle in ["Paused", "Shop", "Web chats", "name and email"] {
        assert!(summary.contains(needle), "{needle}: {summary}");
    }
    let triggers = element(&page, "chat-triggers").expect("triggers");
    for needle in [
        "“wildcard /shop/*” and none of “starts with /shop/checkout”",
        "on the page 5 s",
        "new to the site",
        "en or fr-CA",
        "Herald.trigger(&#34;cart&#34;) with value ≥ 199.9",
    ] {
        assert!(
            triggers.contains(needle) || triggers.contains(&needle.replace("&#34;", "&quot;")),
            "{needle}: {triggers}"
        );
    }
    let form = admin.page(&format!("/campaigns/{id}/chat")).await;
    assert!(
        tag(&form, "starts_at").is_some_and(|e| e.contains("value=\"2026-06-01 09:00\"")),
        "{form}"
    );
    assert!(
        element(&form, "exclude").is_some_and(|e| e.contains("starts with /shop/checkout")),
        "{form}"
    );
    assert!(
        tag(&form, "state-paused").is_some_and(|e| e.contains("checked")),
        "{form}"
    );

    // Set live in the form: the configuration has it at once (the snapshot is rebuilt).
    let live = admin
        .post(
            &format!("/campaigns/{id}/chat"),
            &[
                ("site_id", site["id"].as_str().unwrap()),
                ("state", "live"),
                ("order", "2"),
                ("include", "wildcard /shop/*"),
            ],
        )
        .await;
    assert_eq!(live.status, StatusCode::SEE_OTHER, "{}", live.body);
    assert_eq!(configured(&app, key).await, std::slice::from_ref(&id));
    let (_, settings) = stored(&app, &id).await;
    assert_eq!(settings["inbox_id"], Value::Null, "the inbox was unset");
    assert_eq!(settings["triggers"].as_array().map(Vec::len), Some(1));

    // Agents read the campaign but may not change its settings; only chat campaigns have them.
    let sms = app.sms_campaign().await;
    let page = admin.get(&format!("/campaigns/{sms}/chat")).await;
    assert_eq!(
        page.status,
        StatusCode::NOT_FOUND,
        "{} {:?}",
        page.body,
        page.headers
    );
    let agent = sign_in(&app, "bo@example.com", Role::Agent).await;
    assert_eq!(
        agent.get(&format!("/campaigns/{id}/chat")).await.status,
        StatusCode::FORBIDDEN
    );
}

/// Triggers written through the API that the form cannot show (two URL triggers) are named on
/// the form and kept when it saves the rest.
async fn settings_the_form_cannot_show_are_kept_as_they_are(app: App) {
    let site = site(&app, json!(null)).await;
    let id = chat_campaign(&app, "Hats", &["tue"]).await;
    let triggers = json!([
        {"kind": "url", "include": [{"match": "contains", "value": "hat"}], "exclude": []},
        {"kind": "url", "include": [], "exclude": [{"match": "equals", "value": "/hats/sale"}]}
    ]);
    let (s, body) = app
        .admin(
            Method::PUT,
            &format!("/api/v1/campaigns/{id}/chat"),
            Some(json!({"site_id": site["id"], "triggers": triggers})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let admin = sign_in(&app, "ada@example.com", Role::Admin).await;
    let form = admin.page(&format!("/campaigns/{id}/chat")).await;
    assert!(element(&form, "kept-triggers").is_some(), "{form}");
    assert!(element(&form, "include").is_none(), "{form}");
    assert!(form.contains("“equals /hats/sale”"), "{form}");
    let saved = admin
        .post(
            &format!("/campaigns/{id}/chat"),
            &[
                ("site_id", site["id"].as_str().unwrap()),
                ("state", "live"),
                ("order", "7"),
            ],
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    let (_, settings) = stored(&app, &id).await;
    assert_eq!(settings["order"], 7);
    assert_eq!(settings["triggers"], triggers);
}

async fn the_url_tester_says_which_campaigns_show_and_why_not(app: App) {
    let site = site(&app, json!(1)).await;
    let shoes = chat_campaign(&app, "Shoes", &["tue"]).await;
    let hats = chat_campaign(&app, "Hats", &["tue"]).await;
    let gloves = chat_campaign(&app, "Gloves", &["mon"]).await;
    for (id, order, paused) in [(&shoes, 1, false), (&hats, 2, true), (&gloves, 3, false)] {
        let (s, body) = app
            .admin(
                Method::PUT,
                &format!("/api/v1/campaigns/{id}/chat"),
                Some(
                    json!({"site_id": site["id"], "order": order, "paused": paused,
                    "triggers": [
                        {"kind": "url", "include": [{"match": "wildcard", "value": "/shop/*"}],
                         "exclude": [{"match": "equals", "value": "/shop/checkout"}]},
                        {"kind": "time_on_page", "seconds": 3}]}),
                ),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{body}");
    }
    let admin = sign_in(&app, "ada@example.com", Role::Admin).await;
    assert!(
        admin
            .page("/settings/sites")
            .await
            .contains("href=\"/settings/sites/test\""),
        "the sites page links to the tester"
    );
    let site_id = site["id"].as_str().unwrap();
    let test = |url: &str| {
        let path = format!(
            "/settings/sites/test?site={site_id}&url={}",
            url.replace(':', "%3A").replace('/', "%2F")
        );
        let admin = &admin;
        async move { admin.page(&path).await }
    };
    let row = |page: &str, id: &str| -> String {
        element(page, &format!("verdict-{id}"))
            .unwrap_or_else(|| panic!("{id}: {page}"))
            .to_string()
    };

    let page = test("https://shop.example.com/shop/shoes").await;
    let shows = row(&page, &shoes);
    assert!(
        shows.contains("<strong>Shows</strong>") && shows.contains("on the page 3 s"),
        "{shows}"
    );
    assert!(row(&page, &hats).contains("because it is paused"), "{page}");
    assert!(
        row(&page, &gloves).contains("its schedule is closed now (Europe/Paris)"),
        "{page}"
    );
    assert!(
        element(&page, "test-url-visibility").is_some_and(|e| e.contains("At most 1 campaign")),
        "{page}"
    );

    let page = test("https://shop.example.com/shop/checkout").await;
    assert!(
        row(&page, &shoes).contains("exclude rule “equals /shop/checkout”"),
        "{page}"
    );
    let page = test("https://shop.example.com/blog").await;
    assert!(row(&page, &shoes).contains("no include rule"), "{page}");

    let page = test("shop.example.com/shop").await;
    assert!(
        element(&page, "test-url-error").is_some_and(|e| e.contains("not a full URL")),
        "{page}"
    );
    let agent = sign_in(&app, "bo@example.com", Role::Agent).await;
    assert_eq!(
        agent.get("/settings/sites/test").await.status,
        StatusCode::FORBIDDEN
    );
}
