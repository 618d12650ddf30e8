//! The JSON API over real HTTP, against SQLite and PostgreSQL.

mod common;

use common::{App, field_messages, has_error};
use herald_server::auth::AGENT_WRITABLE;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

herald_store::on_both_backends!(
    with crate::common::start:
    health_needs_no_token,
    every_route_needs_a_token_and_admin_routes_refuse_agents,
    openapi_is_3_1_and_lists_the_routes,
    full_crud_of_every_resource,
    campaign_rules_are_enforced_with_specific_messages,
    a_campaigns_frequency_cap_round_trips_and_is_checked,
    pagination_walks_every_item_once,
    malformed_requests_get_problem_json,
    in_use_resources_cannot_be_deleted,
    a_campaign_keeps_two_windows_a_day_and_its_closed_dates,
);

async fn health_needs_no_token(app: App) {
    let (s, v, _) = app.call(None, Method::GET, "/healthz", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["status"], "ok");
    assert_eq!(v["database"], "up");
    assert!(v["backend"] == "sqlite" || v["backend"] == "postgres");
    // Migrated by this build: ready.
    let (s, v, _) = app.call(None, Method::GET, "/readyz", None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "ready", "{v}");
    assert_eq!(v["migrations_pending"], 0, "{v}");
}

/// A node whose database has not been migrated answers /healthz but is not ready, and says how
/// many migrations are missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_on_an_unmigrated_database_is_not_ready() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("new.db").display());
    let store = herald_store::connect(&url).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = herald_server::app(herald_server::AppState::new(store.clone()));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let get = |path: &'static str| {
        let base = base.clone();
        async move {
            let res = reqwest::get(format!("{base}{path}")).await.unwrap();
            let status = res.status();
            (status, res.json::<serde_json::Value>().await.unwrap())
        }
    };
    // Every migration file of the crate is missing.
    let files = std::fs::read_dir(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../herald-store/migrations/sqlite"
    ))
    .unwrap()
    .filter(|e| {
        e.as_ref()
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".sql")
    })
    .count();
    assert!(files >= 11);
    let (s, v) = get("/readyz").await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["status"], "not_ready", "{v}");
    assert_eq!(v["database"], "up", "{v}");
    assert_eq!(v["migrations_pending"], files, "{v}");
    let (s, _) = get("/healthz").await;
    assert_eq!(s, StatusCode::OK, "the process is alive");
    store.migrate().await.unwrap();
    let (s, v) = get("/readyz").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["migrations_pending"], 0, "{v}");
}

async fn every_route_needs_a_token_and_admin_routes_refuse_agents(app: App) {
    let (s, spec) = app.admin(Method::GET, "/api/v1/openapi.json", None).await;
    assert_eq!(s, StatusCode::OK);
    let paths = spec["paths"].as_object().expect("paths");
    let mut checked = 0;
    for (path, item) in paths {
        if !path.starts_with("/api/v1/") {
            continue;
        }
        let concrete = path.replace("{id}", &uuid::Uuid::now_v7().to_string());
        for (method, op) in item.as_object().unwrap() {
            let Ok(m) = method.to_uppercase().parse::<Method>() else {
                continue;
            };
            let body = (m != Method::GET && m != Method::DELETE).then(|| json!({}));
            // No token, and a token Herald never issued: 401 with a problem document.
            let (s, v, h) = app.call(None, m.clone(), &concrete, body.clone()).await;
            assert_eq!(
                s,
                StatusCode::UNAUTHORIZED,
                "{method} {path} without token: {v}"
            );
            assert_eq!(h["content-type"], "application/problem+json");
            assert!(h.contains_key("www-authenticate"));
            let (s, _, _) = app
                .call(
                    Some("hrld_not-a-real-token"),
                    m.clone(),
                    &concrete,
                    body.clone(),
                )
                .await;
            assert_eq!(
                s,
                StatusCode::UNAUTHORIZED,
                "{method} {path} with unknown token"
            );

            let scopes: Vec<String> = op["security"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r["bearer"].as_array())
                .flatten()
                .filter_map(|s| s.as_str().map(String::from))
                .collect();
            assert!(
                op["security"].as_array().is_some_and(|a| !a.is_empty()),
                "{method} {path} documents no security requirement"
            );
            let api_path = path.trim_start_matches("/api/v1");
            let agent_writable = AGENT_WRITABLE
                .iter()
                .any(|(am, ap)| am.eq_ignore_ascii_case(method) && *ap == api_path);
            if m != Method::GET && !agent_writable {
                assert!(
                    scopes.iter().any(|s| s == "admin"),
                    "{method} {path} changes data but is not documented as admin-only"
                );
            }
            let (s, v, _) = app
                .call(Some(&app.agent), m.clone(), &concrete, body.clone())
                .await;
            if scopes.iter().any(|s| s == "admin") {
                assert_eq!(s, StatusCode::FORBIDDEN, "{method} {path} as agent: {v}");
                assert!(v["detail"].as_str().unwrap_or("").contains("only admins"));
            } else {
                assert!(
                    s != StatusCode::UNAUTHORIZED && s != StatusCode::FORBIDDEN,
                    "{method} {path} as agent got {s}"
                );
            }
            checked += 1;
        }
    }
    // Inboxes, senders, answers, campaigns: 5 operations each.
    assert!(checked >= 20, "only {checked} operations found");
    let (s, _, _) = app
        .call(None, Method::GET, "/api/v1/openapi.json", None)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

async fn openapi_is_3_1_and_lists_the_routes(app: App) {
    let (_, spec) = app.admin(Method::GET, "/api/v1/openapi.json", None).await;
    assert!(
        spec["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        spec["openapi"]
    );
    for p in [
        "/healthz",
        "/readyz",
        "/api/v1/inboxes",
        "/api/v1/inboxes/{id}",
        "/api/v1/senders/{id}",
        "/api/v1/answers",
        "/api/v1/campaigns/{id}",
        "/api/v1/outreaches/{id}",
        "/api/v1/outreaches/{id}/stop",
        "/api/v1/outreaches/{id}/retry-failed",
        "/api/v1/outreaches/{id}/requeue-uncertain",
        "/api/v1/outreaches/{id}/recipients",
        "/api/v1/outreaches/{id}/events",
    ] {
        assert!(
            spec["paths"].get(p).is_some(),
            "{p} missing from the OpenAPI document"
        );
    }
    assert!(spec["components"]["schemas"].get("Campaign").is_some());
    // Outreaches show how far sending got.
    let schemas = &spec["components"]["schemas"];
    assert_eq!(
        schemas["Outreach"]["properties"]["progress"]["$ref"], "#/components/schemas/Progress",
        "{}",
        schemas["Outreach"]
    );
    for field in [
        "total",
        "sent",
        "delivered",
        "failed",
        "skipped",
        "pending",
        "replied",
    ] {
        assert!(
            schemas["Progress"]["properties"].get(field).is_some(),
            "Progress.{field} missing: {}",
            schemas["Progress"]
        );
    }
    let events = &spec["paths"]["/api/v1/outreaches/{id}/events"]["get"];
    assert!(
        events["responses"]["200"]["content"]
            .get("text/event-stream")
            .is_some(),
        "{events}"
    );
    let recipients = &spec["paths"]["/api/v1/outreaches/{id}/recipients"]["get"];
    let params: Vec<&str> = recipients["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(params, ["id", "state", "limit", "after"], "{recipients}");
    assert!(
        spec["components"]["securitySchemes"]
            .get("bearer")
            .is_some()
    );
}

async fn setup_sms(app: &App) -> (Value, Value, Value) {
    let inbox = app
        .create("/api/v1/inboxes", json!({"name": "Support"}))
        .await;
    let sender = app
        .create(
            "/api/v1/senders",
            json!({"channel": "sms", "address": "(415) 555-2671", "default_region": "US", "inbox_id": inbox["id"]}),
        )
        .await;
    let answer = app
        .create(
            "/api/v1/answers",
            json!({"name": "Order delay", "variants": [
                {"language": "en-us", "body": "Hi {{ first_name }}, order {{ order }} is late."},
                {"language": "es", "body": "Hola {{ first_name }}, su pedido {{ order }} llega tarde."}
            ]}),
        )
        .await;
    (inbox, sender, answer)
}

fn schedule() -> Value {
    json!({"timezone": "America/New_York", "days": {"mon": ["09:00-17:00"], "fri": ["09:00-12:00", "13:00-17:00"]}})
}

async fn full_crud_of_every_resource(app: App) {
    let (inbox, sender, answer) = setup_sms(&app).await;
    assert_eq!(sender["address"], "+14155552671", "stored in E.164");
    assert_eq!(sender["provider"], "file");
    assert_eq!(answer["variants"][0]["language"], "en-US");

    let campaign = app
        .create(
            "/api/v1/campaigns",
            json!({"name": "Late orders", "description": "Tell customers their order is late",
                   "channel": "sms", "sender_id": sender["id"], "language": "en-US",
                   "answer_id": answer["id"], "schedule": schedule()}),
        )
        .await;
    assert_eq!(
        campaign["schedule"]["days"]["fri"],
        json!(["09:00-12:00", "13:00-17:00"])
    );
    assert_eq!(campaign["schedule"]["days"]["sun"], json!([]));
    assert_eq!(campaign["quiet_hours"], true);

    let id = campaign["id"].as_str().unwrap();
    let (s, got, _) = app
        .call(
            Some(&app.agent),
            Method::GET,
            &format!("/api/v1/campaigns/{id}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "agents may read");
    assert_eq!(got, campaign);

    let (s, updated) = app
        .admin(
            Method::PUT,
            &format!("/api/v1/campaigns/{id}"),
            Some(
                json!({"name": "Late orders (Spanish)", "description": "", "channel": "sms",
                        "sender_id": sender["id"], "language": "es", "answer_id": answer["id"],
                        "schedule": schedule(), "quiet_hours": false}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{updated}");
    assert_eq!(updated["language"], "es");
    assert_eq!(updated["quiet_hours"], false);
    assert_eq!(updated["created_at"], campaign["created_at"]);

    let (s, list) = app
        .admin(Method::GET, "/api/v1/campaigns?channel=sms", None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let (_, list) = app
        .admin(Method::GET, "/api/v1/campaigns?channel=email", None)
        .await;
    assert_eq!(list["items"], json!([]));

    let iid = inbox["id"].as_str().unwrap();
    let (s, renamed) = app
        .admin(
            Method::PUT,
            &format!("/api/v1/inboxes/{iid}"),
            Some(json!({"name": "Care"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(renamed["name"], "Care");

    // Delete in dependency order; each resource is gone afterwards.
    for path in [
        format!("/api/v1/campaigns/{id}"),
        format!("/api/v1/senders/{}", sender["id"].as_str().unwrap()),
        format!("/api/v1/answers/{}", answer["id"].as_str().unwrap()),
        format!("/api/v1/inboxes/{iid}"),
    ] {
        let (s, v) = app.admin(Method::DELETE, &path, None).await;
        assert_eq!(s, StatusCode::NO_CONTENT, "DELETE {path}: {v}");
        let (s, v) = app.admin(Method::GET, &path, None).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}");
        assert!(v["detail"].as_str().unwrap().contains("no "), "{v}");
    }
}

/// A campaign's own frequency cap: written on create, read back, changed and removed by an
/// update (a `PUT` without it has none), described in the OpenAPI document; a cap that could
/// never send, one longer than ten years, one on a chat campaign and a half one are refused
/// with the field that is wrong.
async fn a_campaigns_frequency_cap_round_trips_and_is_checked(app: App) {
    let (_, sender, answer) = setup_sms(&app).await;
    let mut body = json!({"name": "Capped", "channel": "sms", "sender_id": sender["id"],
                          "language": "en-US", "answer_id": answer["id"], "schedule": schedule(),
                          "frequency_cap": {"messages": 2, "days": 7}});
    let created = app.create("/api/v1/campaigns", body.clone()).await;
    assert_eq!(created["frequency_cap"], json!({"messages": 2, "days": 7}));
    let id = created["id"].as_str().unwrap();
    let (s, got) = app
        .admin(Method::GET, &format!("/api/v1/campaigns/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(got["frequency_cap"], json!({"messages": 2, "days": 7}));

    body["frequency_cap"] = json!({"messages": 1, "days": 30});
    let (s, updated) = app
        .admin(
            Method::PUT,
            &format!("/api/v1/campaigns/{id}"),
            Some(body.clone()),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{updated}");
    assert_eq!(updated["frequency_cap"], json!({"messages": 1, "days": 30}));
    let (_, got) = app
        .admin(Method::GET, &format!("/api/v1/campaigns/{id}"), None)
        .await;
    assert_eq!(got["frequency_cap"], json!({"messages": 1, "days": 30}));

    body.as_object_mut().unwrap().remove("frequency_cap");
    let (s, updated) = app
        .admin(
            Method::PUT,
            &format!("/api/v1/campaigns/{id}"),
            Some(body.clone()),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{updated}");
    assert_eq!(updated["frequency_cap"], Value::Null);
    let (_, got) = app
        .admin(Method::GET, &format!("/api/v1/campaigns/{id}"), None)
        .await;
    assert_eq!(got["frequency_cap"], Value::Null);

    for (cap, field, needle) in [
        (
            json!({"messages": 0, "days": 7}),
            "frequency_cap.messages",
            "must be at least 1",
        ),
        (
            json!({"messages": 1, "days": 0}),
            "frequency_cap.days",
            "must be at least 1",
        ),
        (
            json!({"messages": 1, "days": 3651}),
            "frequency_cap.days",
            "more than ten years",
        ),
    ] {
        body["frequency_cap"] = cap.clone();
        let (s, v) = app
            .admin(
                Method::PUT,
                &format!("/api/v1/campaigns/{id}"),
                Some(body.clone()),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{cap}: {v}");
        assert!(has_error(&v, field, needle), "{cap}: {v}");
    }
    body["frequency_cap"] = json!({"messages": 2});
    let (s, v) = app
        .admin(Method::POST, "/api/v1/campaigns", Some(body.clone()))
        .await;
    assert!(s.is_client_error(), "{v}");
    assert!(v["detail"].as_str().unwrap().contains("days"), "{v}");
    let (s, v) = app
        .admin(
            Method::POST,
            "/api/v1/campaigns",
            Some(
                json!({"name": "Hello", "channel": "chat", "language": "en-US",
                        "answer_id": answer["id"], "schedule": schedule(),
                        "frequency_cap": {"messages": 1, "days": 1}}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(has_error(&v, "frequency_cap", "chat campaigns"), "{v}");
    // Nothing refused was saved.
    let (_, got) = app
        .admin(Method::GET, &format!("/api/v1/campaigns/{id}"), None)
        .await;
    assert_eq!(got["frequency_cap"], Value::Null);

    let (_, spec) = app.admin(Method::GET, "/api/v1/openapi.json", None).await;
    let schemas = &spec["components"]["schemas"];
    assert_eq!(
        schemas["FrequencyCap"]["required"],
        json!(["messages", "days"]),
        "{}",
        schemas["FrequencyCap"]
    );
    for schema in ["Campaign", "CampaignInput"] {
        let field = schemas[schema]["properties"]["frequency_cap"].to_string();
        assert!(
            field.contains("#/components/schemas/FrequencyCap"),
            "{schema}: {field}"
        );
    }
}

async fn campaign_rules_are_enforced_with_specific_messages(app: App) {
    let (inbox, sms, answer) = setup_sms(&app).await;
    // The same number may be a voice sender too, but not a second SMS sender.
    let voice = app
        .create(
            "/api/v1/senders",
            json!({"channel": "voice", "address": "+14155552671", "inbox_id": inbox["id"]}),
        )
        .await;
    let (s, v) = app
        .admin(
            Method::POST,
            "/api/v1/senders",
            Some(json!({"channel": "sms", "address": "+1 415 555 2671", "inbox_id": inbox["id"]})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(
        v["detail"].as_str().unwrap().contains("+14155552671"),
        "{v}"
    );

    // Sender of another channel.
    let mut body = json!({"name": "Calls", "channel": "sms", "sender_id": voice["id"], "language": "en-US",
                          "answer_id": answer["id"], "schedule": schedule()});
    let (s, v) = app
        .admin(Method::POST, "/api/v1/campaigns", Some(body.clone()))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(has_error(&v, "sender_id", "is a voice sender"), "{v}");

    // Answer not available in the language.
    body["sender_id"] = sms["id"].clone();
    body["language"] = json!("fr-CA");
    let (s, v) = app
        .admin(Method::POST, "/api/v1/campaigns", Some(body.clone()))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(has_error(&v, "language", "no fr-CA variant"), "{v}");
    assert!(has_error(&v, "language", "en-US, es"), "{v}");

    // Overlapping windows, bad zone: every problem listed at once.
    body["language"] = json!("en-US");
    body["schedule"] =
        json!({"timezone": "Mars/Base", "days": {"mon": ["09:00-12:00", "11:00-13:00"]}});
    let (s, v) = app
        .admin(Method::POST, "/api/v1/campaigns", Some(body.clone()))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(has_error(&v, "schedule.timezone", "Mars/Base"), "{v}");
    assert!(has_error(&v, "schedule.days.mon", "overlap"), "{v}");

    // Names are unique per channel.
    body["schedule"] = schedule();
    app.create("/api/v1/campaigns", body.clone()).await;
    let (s, v) = app
        .admin(Method::POST, "/api/v1/campaigns", Some(body.clone()))
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("Calls"), "{v}");
    body["channel"] = json!("voice");
    body["sender_id"] = voice["id"].clone();
    app.create("/api/v1/campaigns", body.clone()).await;

    // Email campaigns need an email sender; chat campaigns have none.
    body["channel"] = json!("chat");
    let (s, v) = app
        .admin(Method::POST, "/api/v1/campaigns", Some(body.clone()))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        has_error(&v, "sender_id", "chat campaigns have no sender"),
        "{v}"
    );

    // A template that does not parse is refused with its line.
    let (s, v) = app
        .admin(
            Method::POST,
            "/api/v1/answers",
            Some(json!({"name": "Broken", "variants": [{"language": "en", "body": "Hello\n{{ name "}]})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(has_error(&v, "variants[0].body", "line 2"), "{v}");

    // An email address without a dot in its domain.
    let (s, v) = app
        .admin(
            Method::POST,
            "/api/v1/senders",
            Some(json!({"channel": "email", "address": "support@localhost", "inbox_id": inbox["id"]})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(has_error(&v, "address", "domain with a dot"), "{v}");

    // Removing a variant a campaign uses is refused.
    let aid = answer["id"].as_str().unwrap();
    let (s, v) = app
        .admin(
            Method::PUT,
            &format!("/api/v1/answers/{aid}"),
            Some(json!({"name": "Order delay", "variants": [{"language": "es", "body": "Hola"}]})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        has_error(&v, "variants", "campaign `Calls` sends the en-US variant"),
        "{v}"
    );
}

async fn pagination_walks_every_item_once(app: App) {
    let mut made = Vec::new();
    for i in 0..7 {
        let v = app
            .create("/api/v1/inboxes", json!({"name": format!("Inbox {i}")}))
            .await;
        made.push(v["id"].as_str().unwrap().to_string());
    }
    let mut seen = Vec::new();
    let mut path = "/api/v1/inboxes?limit=3".to_string();
    let mut pages = 0;
    loop {
        let (s, page) = app.admin(Method::GET, &path, None).await;
        assert_eq!(s, StatusCode::OK);
        pages += 1;
        for item in page["items"].as_array().unwrap() {
            seen.push(item["id"].as_str().unwrap().to_string());
        }
        match page["next_after"].as_str() {
            Some(after) => path = format!("/api/v1/inboxes?limit=3&after={after}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, made, "creation order, each once");
    let (s, v) = app
        .admin(Method::GET, "/api/v1/inboxes?limit=0", None)
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(has_error(&v, "limit", "between 1 and"), "{v}");
}

async fn malformed_requests_get_problem_json(app: App) {
    let res = app
        .http
        .post(format!("{}/api/v1/inboxes", app.base))
        .bearer_auth(&app.admin)
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let v: Value = res.json().await.unwrap();
    assert!(
        v["detail"].as_str().unwrap().contains("not valid JSON"),
        "{v}"
    );
    assert_eq!(v["status"], 400);

    let (s, v) = app
        .admin(Method::GET, "/api/v1/campaigns/not-a-uuid", None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(v["detail"].as_str().unwrap().contains("UUID"), "{v}");

    let (s, v) = app
        .admin(Method::POST, "/api/v1/inboxes", Some(json!({"name": "  "})))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(has_error(&v, "name", "is required"), "{v}");

    let (s, v) = app
        .admin(Method::POST, "/api/v1/campaigns", Some(json!({})))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<String> = field_messages(&v).into_iter().map(|(f, _)| f).collect();
    for f in ["name", "channel", "language", "answer_id", "schedule"] {
        assert!(fields.iter().any(|x| x == f), "{f} not reported: {v}");
    }

    let (s, _) = app.admin(Method::GET, "/nowhere", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

async fn in_use_resources_cannot_be_deleted(app: App) {
    let (inbox, sender, answer) = setup_sms(&app).await;
    app.create(
        "/api/v1/campaigns",
        json!({"name": "Appointment moved", "channel": "sms", "sender_id": sender["id"],
               "language": "es", "answer_id": answer["id"], "schedule": schedule()}),
    )
    .await;
    for (path, needle) in [
        (
            format!("/api/v1/senders/{}", sender["id"].as_str().unwrap()),
            "Appointment moved",
        ),
        (
            format!("/api/v1/answers/{}", answer["id"].as_str().unwrap()),
            "Appointment moved",
        ),
        (
            format!("/api/v1/inboxes/{}", inbox["id"].as_str().unwrap()),
            "+14155552671",
        ),
    ] {
        let (s, v) = app.admin(Method::DELETE, &path, None).await;
        assert_eq!(s, StatusCode::CONFLICT, "DELETE {path}: {v}");
        assert!(v["detail"].as_str().unwrap().contains(needle), "{v}");
        let (s, _) = app.admin(Method::GET, &path, None).await;
        assert_eq!(s, StatusCode::OK, "still there: {path}");
    }
}

async fn a_campaign_keeps_two_windows_a_day_and_its_closed_dates(app: App) {
    let id = app.sms_campaign().await;
    let (s, c) = app
        .admin(Method::GET, &format!("/api/v1/campaigns/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let mut body = c.clone();
    body["schedule"] = serde_json::json!({"timezone": "Europe/Berlin",
        "days": {"mon": ["13:00-17:00", "09:00-12:00"]},
        "closed_dates": ["2026-12-25", "2026-12-24"]});
    let (s, saved) = app
        .admin(
            Method::PUT,
            &format!("/api/v1/campaigns/{id}"),
            Some(body.clone()),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{saved}");
    let (_, read) = app
        .admin(Method::GET, &format!("/api/v1/campaigns/{id}"), None)
        .await;
    assert_eq!(
        read["schedule"]["days"]["mon"],
        serde_json::json!(["09:00-12:00", "13:00-17:00"]),
        "{read}"
    );
    assert_eq!(
        read["schedule"]["closed_dates"],
        serde_json::json!(["2026-12-24", "2026-12-25"]),
        "{read}"
    );
    body["schedule"]["closed_dates"] = serde_json::json!(["25.12.2026"]);
    let (s, problem) = app
        .admin(Method::PUT, &format!("/api/v1/campaigns/{id}"), Some(body))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert!(
        common::has_error(&problem, "schedule.closed_dates[0]", "is not a date"),
        "{problem}"
    );
}
