//! Proactive chat over real HTTP, against SQLite and PostgreSQL: sites and chat settings (admin
//! API), the public configuration (cache validators, CORS only for the site's origins, only
//! live campaigns) and the widget's script (within its size budget).

mod common;

use common::{App, has_error};
use herald_engine::ManualClock;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::sync::Arc;

herald_store::on_both_backends!(
    with crate::common::start:
    sites_are_created_with_a_random_key_and_their_snippet,
    bad_sites_and_settings_are_refused_by_field,
    chat_settings_round_trip_on_chat_campaigns_only,
    the_widget_script_is_served_within_its_budget,
    admins_register_sites_in_the_settings_pages,
);

herald_store::on_both_backends!(
    with crate::start_on_a_tuesday:
    config_lists_live_campaigns_with_validators_and_cors_for_allowed_origins,
);

/// A server whose clock stands at Tuesday 2026-06-02 12:00 UTC.
async fn start_on_a_tuesday(db: herald_store::testing::TestStore) -> App {
    let clock = Arc::new(ManualClock::new(
        "2026-06-02T12:00:00Z".parse().expect("time"),
    ));
    common::start_with(db, move |s| {
        *s = s
            .clone()
            .with_clock(clock)
            .with_public_url("http://herald.test/");
    })
    .await
}

async fn site(app: &App, name: &str, origins: &[&str], max: Value) -> Value {
    app.create(
        "/api/v1/chat/sites",
        json!({"name": name, "allowed_origins": origins, "max_per_visit": max}),
    )
    .await
}

/// A chat campaign open on `days` (`["tue"]`) all day in UTC, greeting "Need a hand, {name}?".
async fn chat_campaign(app: &App, name: &str, days: &[&str]) -> String {
    let answer = app
        .create(
            "/api/v1/answers",
            json!({"name": format!("{name} greeting"), "variants": [
                {"language": "en", "body": format!("Need a hand with {name}?")},
                {"language": "fr", "body": "Besoin d'aide ?"}]}),
        )
        .await;
    let mut open = serde_json::Map::new();
    for d in days {
        open.insert(d.to_string(), json!(["00:00-24:00"]));
    }
    let c = app
        .create(
            "/api/v1/campaigns",
            json!({"name": name, "channel": "chat", "language": "en",
                   "answer_id": answer["id"],
                   "schedule": {"timezone": "UTC", "days": open}}),
        )
        .await;
    c["id"].as_str().expect("campaign id").to_string()
}

fn settings(site_id: &Value, order: u32) -> Value {
    json!({
        "site_id": site_id,
        "order": order,
        "triggers": [
            {"kind": "url", "include": [{"match": "wildcard", "value": "/shop/*"}],
             "exclude": [{"match": "equals", "value": "/shop/checkout"}]},
            {"kind": "time_on_page", "seconds": 3}
        ]
    })
}

async fn sites_are_created_with_a_random_key_and_their_snippet(app: App) {
    let a = site(&app, "Shop", &["https://shop.example.com"], json!(1)).await;
    let b = site(&app, "Blog", &[], Value::Null).await;
    let key = a["key"].as_str().expect("key");
    assert_eq!(key.len(), 32, "{a}");
    assert!(key.bytes().all(|c| c.is_ascii_hexdigit()), "{key}");
    assert_ne!(a["key"], b["key"]);
    assert_eq!(a["max_per_visit"], 1);
    assert_eq!(b["max_per_visit"], Value::Null, "unlimited");
    let snippet = a["snippet"].as_str().expect("snippet");
    assert_eq!(
        snippet,
        format!("<script src=\"/chat/widget.js\" data-site=\"{key}\" async></script>"),
        "no public URL is configured in this server, so the path is relative"
    );

    let id = a["id"].as_str().expect("id");
    let (s, got) = app
        .admin(Method::GET, &format!("/api/v1/chat/sites/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(got, a);
    let (s, updated) = app
        .admin(
            Method::PUT,
            &format!("/api/v1/chat/sites/{id}"),
            Some(json!({"name": "Shop EU", "allowed_origins": ["https://eu.example.com"], "max_per_visit": 0})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{updated}");
    assert_eq!(updated["key"], a["key"], "the key stays");
    assert_eq!(updated["max_per_visit"], 0);
    let (s, list) = app.admin(Method::GET, "/api/v1/chat/sites", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list["items"].as_array().map(Vec::len), Some(2));

    // Agents read, only admins write.
    let (s, _, _) = app
        .call(Some(&app.agent), Method::GET, "/api/v1/chat/sites", None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, _) = app
        .call(
            Some(&app.agent),
            Method::POST,
            "/api/v1/chat/sites",
            Some(json!({"name": "X"})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    let (s, _) = app
        .admin(Method::DELETE, &format!("/api/v1/chat/sites/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = app
        .admin(Method::GET, &format!("/api/v1/chat/sites/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

async fn bad_sites_and_settings_are_refused_by_field(app: App) {
    let (s, p) = app
        .admin(
            Method::POST,
            "/api/v1/chat/sites",
            Some(json!({"name": "", "allowed_origins": ["https://shop.example.com/cart"]})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    assert!(has_error(&p, "name", "required"), "{p}");
    assert!(has_error(&p, "allowed_origins[0]", "has a path"), "{p}");

    let site = site(&app, "Shop", &[], Value::Null).await;
    let campaign = chat_campaign(&app, "Shoes", &["tue"]).await;
    let (s, p) = app
        .admin(
            Method::PUT,
            &format!("/api/v1/campaigns/{campaign}/chat"),
            Some(json!({"site_id": site["id"], "order": 0, "triggers": [
                {"kind": "url", "include": [{"match": "regex", "value": "/cart(("}]}]})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    assert!(has_error(&p, "order", "between 1"), "{p}");
    assert!(
        has_error(
            &p,
            "triggers[0].include[0].value",
            "not a valid regular expression"
        ),
        "{p}"
    );
    let (s, p) = app
        .admin(
            Method::PUT,
            &format!("/api/v1/campaigns/{campaign}/chat"),
            Some(json!({"site_id": site["id"], "triggers": []})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    assert!(has_error(&p, "triggers", "at least one trigger"), "{p}");
}

async fn chat_settings_round_trip_on_chat_campaigns_only(app: App) {
    let site = site(&app, "Shop", &[], Value::Null).await;
    let campaign = chat_campaign(&app, "Shoes", &["tue"]).await;
    let path = format!("/api/v1/campaigns/{campaign}/chat");
    let (s, _) = app.admin(Method::GET, &path, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "no settings yet");
    let (s, saved) = app
        .admin(Method::PUT, &path, Some(settings(&site["id"], 2)))
        .await;
    assert_eq!(s, StatusCode::OK, "{saved}");
    let (s, got) = app.admin(Method::GET, &path, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(got, saved);
    assert_eq!(got["order"], 2);
    assert_eq!(got["triggers"][1]["seconds"], 3);
    assert_eq!(got["paused"], false);

    let sms = app.sms_campaign().await;
    let (s, p) = app
        .admin(
            Method::PUT,
            &format!("/api/v1/campaigns/{sms}/chat"),
            Some(settings(&site["id"], 1)),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    assert!(p.to_string().contains("only chat campaigns"), "{p}");

    // The site is in use now.
    let (s, p) = app
        .admin(
            Method::DELETE,
            &format!("/api/v1/chat/sites/{}", site["id"].as_str().unwrap_or("")),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{p}");
    assert!(p.to_string().contains("Shoes"), "{p}");
}

async fn the_widget_script_is_served_within_its_budget(app: App) {
    let res = app
        .http
        .get(format!("{}/chat/widget.js", app.base))
        .send()
        .await
        .expect("widget");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers()[reqwest::header::CONTENT_TYPE],
        "text/javascript; charset=utf-8"
    );
    let body = res.bytes().await.expect("body");
    assert!(body.len() > 1000, "the script is there");
    let mut gzip = std::process::Command::new("gzip")
        .args(["-9", "-c"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("gzip");
    {
        use std::io::Write;
        let mut stdin = gzip.stdin.take().expect("stdin");
        stdin.write_all(&body).expect("write to gzip");
    }
    let out = gzip.wait_with_output().expect("gzip output");
    assert!(out.status.success());
    assert!(
        out.stdout.len() <= 15 * 1024,
        "the widget is {} bytes gzipped; the budget is 15 KB",
        out.stdout.len()
    );
    let text = String::from_utf8_lossy(&body);
    assert!(!text.contains("innerHTML"), "the widget never inserts HTML");

    // A browser that takes gzip gets it compressed, and it unpacks (by gzip) to the script.
    let res = app
        .http
        .get(format!("{}/chat/widget.js", app.base))
        .header("accept-encoding", "gzip, deflate, br")
        .send()
        .await
        .expect("widget");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-encoding"], "gzip");
    assert_eq!(res.headers()["vary"], "Accept-Encoding");
    let packed = res.bytes().await.expect("body");
    assert!(
        packed.len() <= 15_000,
        "Herald sends the widget in {} bytes gzipped; the budget is 15 KB",
        packed.len()
    );
    let mut gunzip = std::process::Command::new("gzip")
        .args(["-d", "-c"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("gzip -d");
    {
        use std::io::Write;
        let mut stdin = gunzip.stdin.take().expect("stdin");
        stdin.write_all(&packed).expect("write to gzip");
    }
    let out = gunzip.wait_with_output().expect("gzip output");
    assert!(out.status.success(), "gzip -d refused Herald's gzip");
    assert_eq!(out.stdout, body, "the gzipped widget is the script");
    // `gzip;q=0` refuses it.
    let res = app
        .http
        .get(format!("{}/chat/widget.js", app.base))
        .header("accept-encoding", "gzip;q=0, identity")
        .send()
        .await
        .expect("widget");
    assert!(res.headers().get("content-encoding").is_none());
    assert_eq!(res.bytes().await.expect("body"), body);
}

async fn get_config(
    app: &App,
    key: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut req = app
        .http
        .get(format!("{}/chat/v1/sites/{key}/config", app.base));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = req.send().await.expect("config");
    let status = res.status();
    let h = res.headers().clone();
    let text = res.text().await.unwrap_or_default();
    (
        status,
        h,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn config_lists_live_campaigns_with_validators_and_cors_for_allowed_origins(app: App) {
    let shop = site(&app, "Shop", &["https://shop.example.com"], json!(1)).await;
    let key = shop["key"].as_str().expect("key").to_string();
    assert!(
        shop["snippet"]
            .as_str()
            .unwrap_or("")
            .starts_with("<script src=\"http://herald.test/chat/widget.js\""),
        "{shop}"
    );
    let open = chat_campaign(&app, "Shoes", &["tue"]).await;
    let second = chat_campaign(&app, "Socks", &["tue"]).await;
    let closed_today = chat_campaign(&app, "Hats", &["mon"]).await;
    let paused = chat_campaign(&app, "Belts", &["tue"]).await;
    let ended = chat_campaign(&app, "Scarves", &["tue"]).await;
    for (id, order) in [(&open, 2), (&second, 1), (&closed_today, 3)] {
        let (s, v) = app
            .admin(
                Method::PUT,
                &format!("/api/v1/campaigns/{id}/chat"),
                Some(settings(&shop["id"], order)),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    let mut p = settings(&shop["id"], 1);
    p["paused"] = json!(true);
    app.admin(
        Method::PUT,
        &format!("/api/v1/campaigns/{paused}/chat"),
        Some(p),
    )
    .await;
    let mut e = settings(&shop["id"], 1);
    e["ends_at"] = json!("2026-06-01T00:00:00Z");
    let (s, v) = app
        .admin(
            Method::PUT,
            &format!("/api/v1/campaigns/{ended}/chat"),
            Some(e),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");

    let (s, h, config) = get_config(&app, &key, &[("Origin", "https://shop.example.com")]).await;
    assert_eq!(s, StatusCode::OK, "{config}");
    assert_eq!(config["max_per_visit"], 1);
    let ids: Vec<_> = config["campaigns"]
        .as_array()
        .expect("campaigns")
        .iter()
        .map(|c| c["id"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        ids,
        [second.clone(), open.clone()],
        "live ones only (not closed on Tuesdays, paused or ended), in order"
    );
    let first = &config["campaigns"][0];
    assert_eq!(first["greeting"], "Need a hand with Socks?");
    assert_eq!(first["order"], 1);
    let rule = &first["triggers"][0]["include"][0];
    assert_eq!(rule["pattern"], "^/shop/[^?#]*$", "compiled for the widget");
    assert_eq!(rule["host"], false);
    assert_eq!(first["triggers"][1]["seconds"], 3);

    assert_eq!(
        h.get("access-control-allow-origin").map(|v| v.as_bytes()),
        Some(&b"https://shop.example.com"[..])
    );
    assert_eq!(h.get("vary").map(|v| v.as_bytes()), Some(&b"Origin"[..]));
    // The API's security headers, from the public chat routes' own layer.
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["referrer-policy"], "no-referrer");
    let csp = h["content-security-policy"].to_str().unwrap_or("");
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    let cache = h["cache-control"].to_str().unwrap_or("");
    let max_age: u64 = cache
        .split("max-age=")
        .nth(1)
        .and_then(|v| v.split(',').next())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(u64::MAX);
    assert!(max_age <= 60, "{cache}");
    let etag = h["etag"].to_str().expect("etag").to_string();

    let (s, h, body) = get_config(&app, &key, &[("If-None-Match", &etag)]).await;
    assert_eq!(s, StatusCode::NOT_MODIFIED);
    assert_eq!(body, Value::String(String::new()), "a 304 has no body");
    assert_eq!(h["etag"], etag.as_str());

    // Another origin gets the same answer but no grant to read it.
    let (s, h, _) = get_config(&app, &key, &[("Origin", "https://evil.example.net")]).await;
    assert_eq!(s, StatusCode::OK);
    assert!(h.get("access-control-allow-origin").is_none(), "{h:?}");

    // Unknown and malformed keys.
    let (s, _, _) = get_config(&app, &"0".repeat(32), &[]).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _, _) = get_config(&app, "not-a-key", &[]).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // A change made through this node shows at once, with a new validator.
    let mut p = settings(&shop["id"], 2);
    p["paused"] = json!(true);
    app.admin(
        Method::PUT,
        &format!("/api/v1/campaigns/{open}/chat"),
        Some(p),
    )
    .await;
    let (s, h, config) = get_config(&app, &key, &[("If-None-Match", &etag)]).await;
    assert_eq!(s, StatusCode::OK, "{config}");
    assert_ne!(h["etag"].to_str().unwrap_or(""), etag);
    assert_eq!(config["campaigns"].as_array().map(Vec::len), Some(1));
}

/// Settings → Chat sites: an admin registers a site and gets its snippet; a bad origin is named
/// next to its field and nothing is stored; the API lists what the page made; agents may not.
async fn admins_register_sites_in_the_settings_pages(app: App) {
    use common::web::{element, sign_in};
    let admin = sign_in(&app, "ada@example.com", herald_core::Role::Admin).await;
    let page = admin.page("/settings/sites").await;
    assert!(page.contains("No chat sites yet"), "{page}");

    let bad = admin
        .post(
            "/settings/sites",
            &[
                ("name", "Shop"),
                ("origins", "shop.example.com/path"),
                ("max_per_visit", "1"),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.body);
    let why = element(&bad.body, "origins-error").unwrap_or_else(|| panic!("{}", bad.body));
    assert!(why.contains("shop.example.com/path"), "{why}");
    let none = admin
        .post(
            "/settings/sites",
            &[
                ("name", "Shop"),
                ("origins", "https://shop.example.com"),
                ("max_per_visit", "a few"),
            ],
        )
        .await;
    assert_eq!(none.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        element(&none.body, "max_per_visit-error").is_some(),
        "{}",
        none.body
    );
    let (_, listed, _) = app
        .call(Some(&app.admin), Method::GET, "/api/v1/chat/sites", None)
        .await;
    assert_eq!(listed["items"], json!([]), "refused forms store nothing");

    let made = admin
        .post(
            "/settings/sites",
            &[
                ("name", "Shop"),
                (
                    "origins",
                    "https://shop.example.com\nhttps://www.example.com/",
                ),
                ("max_per_visit", "1"),
            ],
        )
        .await;
    assert_eq!(made.status, StatusCode::SEE_OTHER, "{}", made.body);
    let (_, listed, _) = app
        .call(Some(&app.admin), Method::GET, "/api/v1/chat/sites", None)
        .await;
    let site = &listed["items"][0];
    assert_eq!(
        site["allowed_origins"],
        json!(["https://shop.example.com", "https://www.example.com"])
    );
    assert_eq!(site["max_per_visit"], 1);
    let page = admin.page("/settings/sites").await;
    let key = site["key"].as_str().unwrap();
    assert!(
        page.contains(&format!(
            "/chat/widget.js&quot; data-site=&quot;{key}&quot;"
        )) || page.contains(&format!("/chat/widget.js&#34; data-site=&#34;{key}&#34;")),
        "the escaped snippet with the key: {page}"
    );
    assert!(page.contains("At most 1"), "{page}");

    let agent = sign_in(&app, "bo@example.com", herald_core::Role::Agent).await;
    assert_eq!(
        agent.get("/settings/sites").await.status,
        StatusCode::FORBIDDEN
    );
}
