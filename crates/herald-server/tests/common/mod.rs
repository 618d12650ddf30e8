//! What the API test suites share: a real server on a free port over a fresh database (and, in
//! [`web`], what the web UI suites share: a browser signed in over real HTTP).
#![allow(dead_code)] // each suite uses a part

pub mod web;

use herald_core::Role;
use herald_server::auth::generate_token;
use herald_store::NewToken;
use herald_store::testing::TestStore;
use reqwest::{Method, StatusCode};
use serde_json::Value;

pub struct App {
    pub base: String,
    pub http: reqwest::Client,
    pub admin: String,
    pub agent: String,
    pub db: std::sync::Arc<TestStore>,
}

pub async fn start(db: TestStore) -> App {
    start_with(db, |_| {}).await
}

pub async fn start_with(
    db: TestStore,
    configure: impl FnOnce(&mut herald_server::AppState),
) -> App {
    start_shared(std::sync::Arc::new(db), configure).await
}

/// Another server over the same database (for instance with other settings).
pub async fn start_shared(
    db: std::sync::Arc<TestStore>,
    configure: impl FnOnce(&mut herald_server::AppState),
) -> App {
    start_at(db, |state, _| configure(state)).await
}

/// A server whose settings need its own base URL (`http://127.0.0.1:port`), as providers'
/// callbacks do: `configure` gets it.
pub async fn start_at(
    db: std::sync::Arc<TestStore>,
    configure: impl FnOnce(&mut herald_server::AppState, &str),
) -> App {
    let mut secrets = Vec::new();
    for (name, role) in [("test-admin", Role::Admin), ("test-agent", Role::Agent)] {
        let t = generate_token();
        db.store
            .create_token(&NewToken {
                name: name.into(),
                role,
                hash_hex: t.hash_hex.clone(),
            })
            .await
            .expect("create token");
        secrets.push(t.secret);
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut state = herald_server::AppState::new(db.store.clone());
    configure(&mut state, &format!("http://{addr}"));
    let app = herald_server::app(state);
    // Herald's own serving loop, as `herald serve` runs it (bounds, lean event streams).
    tokio::spawn(herald_server::serve::serve(
        listener,
        app,
        herald_server::serve::HttpLimits::default(),
        std::future::pending(),
    ));
    App {
        base: format!("http://{addr}"),
        http: reqwest::Client::new(),
        agent: secrets.pop().unwrap(),
        admin: secrets.pop().unwrap(),
        db,
    }
}

impl App {
    /// An SMS campaign "Late" sending from +14155550100 (inbox "Care") at any hour on Mondays in
    /// UTC, whose answer is "Hi {{ first_name }}, your order is late.": its id.
    pub async fn sms_campaign(&self) -> String {
        let inbox = self
            .create("/api/v1/inboxes", serde_json::json!({"name": "Care"}))
            .await;
        let sender = self
            .create(
                "/api/v1/senders",
                serde_json::json!({"channel": "sms", "address": "+14155550100", "inbox_id": inbox["id"]}),
            )
            .await;
        let answer = self
            .create(
                "/api/v1/answers",
                serde_json::json!({"name": "Delay", "variants": [{"language": "en",
                       "body": "Hi {{ first_name }}, your order is late."}]}),
            )
            .await;
        let c = self
            .create(
                "/api/v1/campaigns",
                serde_json::json!({"name": "Late", "channel": "sms", "language": "en",
                       "sender_id": sender["id"], "answer_id": answer["id"],
                       "schedule": {"timezone": "UTC", "days": {"mon": ["00:00-24:00"]}}}),
            )
            .await;
        c["id"].as_str().expect("campaign id").to_string()
    }

    pub async fn call(
        &self,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value, reqwest::header::HeaderMap) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("request");
        let status = res.status();
        let headers = res.headers().clone();
        let text = res.text().await.unwrap_or_default();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value, headers)
    }

    pub async fn admin(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let (s, v, _) = self
            .call(Some(&self.admin.clone()), method, path, body)
            .await;
        (s, v)
    }

    /// Uploads `csv` (as `list.csv`) as a new outreach of the campaign through the API, with
    /// extra form fields (`start_at`, `end_at`, ...): the status and the answer.
    pub async fn upload(
        &self,
        campaign_id: &str,
        csv: &str,
        fields: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let mut form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(csv.as_bytes().to_vec()).file_name("list.csv"),
        );
        for (k, v) in fields {
            form = form.text(k.to_string(), v.to_string());
        }
        let res = self
            .http
            .post(format!(
                "{}/api/v1/campaigns/{campaign_id}/outreaches",
                self.base
            ))
            .bearer_auth(&self.admin)
            .multipart(form)
            .send()
            .await
            .expect("upload");
        let status = res.status();
        let text = res.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn create(&self, path: &str, body: Value) -> Value {
        let (s, v) = self.admin(Method::POST, path, Some(body)).await;
        assert_eq!(s, StatusCode::CREATED, "POST {path}: {v}");
        v
    }
}

pub fn field_messages(problem: &Value) -> Vec<(String, String)> {
    problem["errors"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    (
                        e["field"].as_str().unwrap_or("").to_string(),
                        e["message"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

pub fn has_error(problem: &Value, field: &str, needle: &str) -> bool {
    field_messages(problem)
        .iter()
        .any(|(f, m)| f == field && m.contains(needle))
}
