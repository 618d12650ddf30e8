//! People and access (issue #17 item 2) over real HTTP on both backends: users invited,
//! re-invited, re-roled and deactivated through the API and the web admin (a deactivated user's
//! open session is refused on its next request), API tokens created, used, listed and revoked,
//! opt-outs added and removed, and the audit log of all of it with the client address each
//! change came from. The server is started with the peer's address (as `herald serve` is), so
//! the address recorded is the test client's own, 127.0.0.1.

mod common;

use common::App;
use common::web::{Browser, PASSWORD, csrf_of, element, sign_in};
use herald_core::Role;
use herald_server::auth::generate_token;
use herald_store::NewToken;
use herald_store::testing::TestStore;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::net::SocketAddr;

herald_store::on_both_backends!(
    with crate::start:
    users_are_invited_changed_and_deactivated_through_the_api,
    the_people_routes_are_for_admins_only,
    tokens_are_created_used_listed_and_revoked_through_the_api,
    api_opt_outs_are_audited_with_reason_actor_and_address,
    the_web_admin_invites_deactivates_and_the_session_is_refused,
    the_web_admin_creates_and_revokes_tokens,
    the_web_admin_adds_and_removes_opt_outs_and_the_audit_log_shows_both,
    agents_get_the_styled_403_on_the_people_pages,
);

/// [`common::start`], but with the peer's address on each request, as `herald serve` does.
async fn start(db: TestStore) -> App {
    let db = std::sync::Arc::new(db);
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
    let app = herald_server::app(herald_server::AppState::new(db.store.clone()));
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    App {
        base: format!("http://{addr}"),
        http: reqwest::Client::new(),
        agent: secrets.pop().unwrap(),
        admin: secrets.pop().unwrap(),
        db,
    }
}

/// The audit log through the API, newest first, as `action subject [detail] by actor from addr`.
async fn audit(app: &App) -> Vec<String> {
    let (s, v) = app
        .admin(Method::GET, "/api/v1/audit?limit=500", None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{} {} [{}] by {} {} from {}",
                e["action"].as_str().unwrap(),
                e["subject"].as_str().unwrap(),
                e["detail"].as_str().unwrap(),
                e["actor_kind"].as_str().unwrap(),
                e["actor"].as_str().unwrap(),
                e["client_addr"].as_str().unwrap_or("-"),
            )
        })
        .collect()
}

fn path_of(link: &str) -> String {
    let at = link.find("/setup/").expect("a setup link");
    link[at..].to_string()
}

async fn users_are_invited_changed_and_deactivated_through_the_api(app: App) {
    let (s, first) = app
        .admin(
            Method::POST,
            "/api/v1/users",
            Some(json!({"email": " Eve@Example.org ", "role": "agent"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{first}");
    assert_eq!(first["email"], "eve@example.org");
    assert_eq!(first["role"], "agent");
    assert_eq!(first["replaced_earlier_link"], false);
    let first_link = first["link"].as_str().unwrap();
    assert!(
        first_link.starts_with(&format!("{}/setup/", app.base)),
        "{first_link}"
    );

    // Sent again: a new link; the first one no longer opens the setup form.
    let (s, again) = app
        .admin(
            Method::POST,
            "/api/v1/invitations/resend",
            Some(json!({"email": "eve@example.org"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{again}");
    assert_eq!(again["replaced_earlier_link"], true);
    assert_eq!(again["role"], "agent");
    let browser = Browser::new(&app.base);
    assert_ne!(
        browser.get(&path_of(first_link)).await.status,
        StatusCode::OK
    );
    let second = browser.get(&path_of(again["link"].as_str().unwrap())).await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.body);
    assert!(second.body.contains("eve@example.org"));
    let (_, waiting) = app.admin(Method::GET, "/api/v1/invitations", None).await;
    assert_eq!(waiting.as_array().unwrap().len(), 1, "{waiting}");

    // Nobody waits under another email; a bad email is a field error.
    let (s, v) = app
        .admin(
            Method::POST,
            "/api/v1/invitations/resend",
            Some(json!({"email": "nobody@example.org"})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("POST /api/v1/users"));
    let (s, v) = app
        .admin(
            Method::POST,
            "/api/v1/users",
            Some(json!({"email": "not an email", "role": "agent"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(common::has_error(&v, "email", ""), "{v}");

    // An existing user: 409. Bob signed in; deactivated, his next request is signed out.
    let bob = sign_in(&app, "bob@example.org", Role::Agent).await;
    let (s, v) = app
        .admin(
            Method::POST,
            "/api/v1/users",
            Some(json!({"email": "bob@example.org", "role": "admin"})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    let (_, users) = app.admin(Method::GET, "/api/v1/users", None).await;
    let bob_json = users["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == "bob@example.org")
        .expect("bob listed")
        .clone();
    assert_eq!(bob_json["active"], true);
    assert!(bob_json["last_sign_in_at"].is_string(), "{bob_json}");
    let bob_id = bob_json["id"].as_str().unwrap();
    assert_eq!(bob.get("/campaigns").await.status, StatusCode::OK);
    let (s, v) = app
        .admin(
            Method::PATCH,
            &format!("/api/v1/users/{bob_id}"),
            Some(json!({"active": false})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["active"], false);
    let refused = bob.get("/campaigns").await;
    assert_eq!(refused.status, StatusCode::SEE_OTHER);
    assert!(
        refused.location().starts_with("/login"),
        "{}",
        refused.location()
    );
    let again = Browser::new(&app.base)
        .log_in("bob@example.org", PASSWORD, "/campaigns")
        .await;
    assert_ne!(
        again.status,
        StatusCode::SEE_OTHER,
        "a deactivated user signed in"
    );

    // The last active admin cannot be demoted; an unknown id is 404.
    common::web::create_user(&app, "ann@example.org", Role::Admin).await;
    let ann_id = app
        .db
        .store
        .find_user_by_email("ann@example.org")
        .await
        .unwrap()
        .unwrap()
        .0
        .id;
    let (s, v) = app
        .admin(
            Method::PATCH,
            &format!("/api/v1/users/{ann_id}"),
            Some(json!({"role": "agent"})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(
        v["detail"].as_str().unwrap().contains("last active admin"),
        "{v}"
    );
    let (s, _) = app
        .admin(
            Method::PATCH,
            &format!("/api/v1/users/{}", uuid::Uuid::now_v7()),
            Some(json!({"active": true})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Reactivated and made an admin in one request.
    let (s, v) = app
        .admin(
            Method::PATCH,
            &format!("/api/v1/users/{bob_id}"),
            Some(json!({"active": true, "role": "admin"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (v["active"].clone(), v["role"].clone()),
        (json!(true), json!("admin"))
    );

    assert_eq!(
        audit(&app).await,
        [
            "user.reactivated bob@example.org [] by token test-admin from 127.0.0.1",
            "user.role_changed bob@example.org [agent → admin] by token test-admin from 127.0.0.1",
            "user.deactivated bob@example.org [1 session(s) ended] by token test-admin from 127.0.0.1",
            "user.invitation_resent eve@example.org [role: agent] by token test-admin from 127.0.0.1",
            "user.invited eve@example.org [role: agent] by token test-admin from 127.0.0.1",
        ]
    );
}

async fn the_people_routes_are_for_admins_only(app: App) {
    for (method, path, body) in [
        (Method::GET, "/api/v1/users", None),
        (Method::GET, "/api/v1/invitations", None),
        (Method::GET, "/api/v1/tokens", None),
        (Method::GET, "/api/v1/audit", None),
        (
            Method::POST,
            "/api/v1/users",
            Some(json!({"email": "x@example.org", "role": "admin"})),
        ),
        (
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"name": "mine", "role": "admin"})),
        ),
    ] {
        let (s, v, _) = app
            .call(Some(&app.agent.clone()), method.clone(), path, body)
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{method} {path}: {v}");
        assert!(v["detail"].as_str().unwrap().contains("test-agent"), "{v}");
    }
    let (s, _, _) = app.call(None, Method::GET, "/api/v1/users", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(audit(&app).await.is_empty());
    // The OpenAPI document describes the routes.
    let (s, doc) = app.admin(Method::GET, "/api/v1/openapi.json", None).await;
    assert_eq!(s, StatusCode::OK);
    for path in [
        "/api/v1/users",
        "/api/v1/users/{id}",
        "/api/v1/invitations",
        "/api/v1/invitations/resend",
        "/api/v1/tokens",
        "/api/v1/tokens/{id}",
        "/api/v1/audit",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is not documented");
    }
    assert!(doc["paths"]["/api/v1/users/{id}"]["patch"].is_object());
}

async fn tokens_are_created_used_listed_and_revoked_through_the_api(app: App) {
    let (s, created) = app
        .admin(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"name": "  nightly import ", "role": "agent"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let secret = created["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("hrld_"), "{secret}");
    assert_eq!(created["token"]["name"], "nightly import");
    let id = created["token"]["id"].as_str().unwrap().to_string();

    // Listed without its secret; never used yet, then used.
    let listed = |v: &Value| -> Value {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == "nightly import")
            .cloned()
            .expect("listed")
    };
    let (_, tokens) = app.admin(Method::GET, "/api/v1/tokens", None).await;
    assert!(!tokens.to_string().contains(&secret));
    assert!(listed(&tokens)["last_used_at"].is_null());
    let (s, _, _) = app
        .call(Some(&secret), Method::GET, "/api/v1/inboxes", None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, tokens) = app.admin(Method::GET, "/api/v1/tokens", None).await;
    assert!(listed(&tokens)["last_used_at"].is_string(), "{tokens}");

    // A name is required.
    let (s, v) = app
        .admin(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"name": "  ", "role": "agent"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(common::has_error(&v, "name", "required"), "{v}");

    // Revoked: refused at once.
    let (s, _) = app
        .admin(Method::DELETE, &format!("/api/v1/tokens/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, v, _) = app
        .call(Some(&secret), Method::GET, "/api/v1/inboxes", None)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    let (s, _) = app
        .admin(Method::DELETE, &format!("/api/v1/tokens/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(
        audit(&app).await,
        [
            "token.revoked nightly import [role: agent] by token test-admin from 127.0.0.1",
            "token.created nightly import [role: agent] by token test-admin from 127.0.0.1",
        ]
    );
}

async fn api_opt_outs_are_audited_with_reason_actor_and_address(app: App) {
    let (s, v) = app
        .admin(
            Method::POST,
            "/api/v1/suppressions",
            Some(json!({"address": "+1 415 555 0111", "reason": "asked on the phone"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = v["suppression"]["id"].as_str().unwrap().to_string();
    assert_eq!(v["suppression"]["added_by"], "token test-admin");
    // Added again: nothing new, nothing audited.
    let (s, _) = app
        .admin(
            Method::POST,
            "/api/v1/suppressions",
            Some(json!({"address": "+14155550111"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = app
        .admin(Method::DELETE, &format!("/api/v1/suppressions/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(
        audit(&app).await,
        [
            "suppression.removed +14155550111 [asked on the phone (every sender)] by token test-admin from 127.0.0.1",
            "suppression.added +14155550111 [asked on the phone (every sender)] by token test-admin from 127.0.0.1",
        ]
    );
}

async fn the_web_admin_invites_deactivates_and_the_session_is_refused(app: App) {
    let admin = sign_in(&app, "ann@example.org", Role::Admin).await;
    let overview = admin.page("/settings").await;
    assert!(element(&overview, "settings-people").is_some());
    let page = admin.page("/settings/people").await;
    assert!(page.contains("ann@example.org"));

    // Invite: the link is shown once, on the answer to the form.
    let res = admin
        .post(
            "/settings/people",
            &[("email", "eve@example.org"), ("role", "agent")],
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
    let link = element(&res.body, "invite-link").expect("the link is shown");
    assert!(link.contains("/setup/"), "{link}");
    let page = admin.page("/settings/people").await;
    assert!(element(&page, "invite-link").is_none(), "shown only once");
    assert!(
        element(&page, "invitation-list")
            .unwrap()
            .contains("eve@example.org")
    );
    // A bad email is shown next to its field.
    let res = admin
        .post("/settings/people", &[("email", "eve"), ("role", "agent")])
        .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(element(&res.body, "email-error").is_some(), "{}", res.body);
    // Sent again.
    let res = admin
        .post(
            "/settings/people/invitations/resend",
            &[("email", "eve@example.org")],
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
    assert!(
        element(&res.body, "new-link")
            .unwrap()
            .contains("earlier one no longer works")
    );

    // Bob's open session is refused once he is deactivated; his role shows in the list.
    let bob = sign_in(&app, "bob@example.org", Role::Agent).await;
    assert_eq!(bob.get("/inbox").await.status, StatusCode::OK);
    let bob_id = app
        .db
        .store
        .find_user_by_email("bob@example.org")
        .await
        .unwrap()
        .unwrap()
        .0
        .id;
    let res = admin
        .post(
            &format!("/settings/people/{bob_id}"),
            &[("active", "false")],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let refused = bob.get("/inbox").await;
    assert_eq!(refused.status, StatusCode::SEE_OTHER);
    assert!(refused.location().starts_with("/login"));
    let page = admin.page("/settings/people").await;
    let row = element(&page, &format!("user-{bob_id}")).unwrap();
    assert!(
        row.contains("deactivated") && row.contains("Reactivate"),
        "{row}"
    );

    // The admin cannot deactivate herself, nor demote the last admin.
    let ann_id = app
        .db
        .store
        .find_user_by_email("ann@example.org")
        .await
        .unwrap()
        .unwrap()
        .0
        .id;
    let res = admin
        .post(
            &format!("/settings/people/{ann_id}"),
            &[("active", "false")],
        )
        .await;
    assert_eq!(res.status, StatusCode::CONFLICT);
    assert!(
        element(&res.body, "notice")
            .unwrap()
            .contains("cannot deactivate yourself")
    );
    let res = admin
        .post(&format!("/settings/people/{ann_id}"), &[("role", "agent")])
        .await;
    assert_eq!(res.status, StatusCode::CONFLICT);
    assert!(
        element(&res.body, "notice")
            .unwrap()
            .contains("last active admin")
    );
    // Role changed and reactivated.
    for fields in [[("role", "admin")], [("active", "true")]] {
        let res = admin
            .post(&format!("/settings/people/{bob_id}"), &fields)
            .await;
        assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    }
    // A form without the CSRF token changes nothing.
    let res = admin
        .post_raw(
            &format!("/settings/people/{bob_id}"),
            &[("active", "false")],
        )
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);

    let log = audit(&app).await;
    let by_ann = |s: &str| format!("{s} by user ann@example.org from 127.0.0.1");
    assert_eq!(
        log,
        [
            by_ann("user.reactivated bob@example.org []"),
            by_ann("user.role_changed bob@example.org [agent → admin]"),
            by_ann("user.deactivated bob@example.org [1 session(s) ended]"),
            by_ann("user.invitation_resent eve@example.org [role: agent]"),
            by_ann("user.invited eve@example.org [role: agent]"),
        ]
    );
}

async fn the_web_admin_creates_and_revokes_tokens(app: App) {
    let admin = sign_in(&app, "ann@example.org", Role::Admin).await;
    let res = admin
        .post("/settings/tokens", &[("name", "zapier"), ("role", "agent")])
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
    let code = element(&res.body, "token-secret").expect("secret shown");
    let secret = code
        .trim_start_matches(|c| c != '>')
        .trim_start_matches('>')
        .split('<')
        .next()
        .unwrap()
        .to_string();
    assert!(secret.starts_with("hrld_"), "{secret}");
    let (s, _, _) = app
        .call(Some(&secret), Method::GET, "/api/v1/campaigns", None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let page = admin.page("/settings/tokens").await;
    assert!(!page.contains(&secret), "the secret is shown only once");
    let (_, tokens) = app.admin(Method::GET, "/api/v1/tokens", None).await;
    let id = tokens["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "zapier")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let row = element(&page, &format!("token-{id}")).unwrap();
    assert!(
        row.contains("zapier") && !row.contains("never"),
        "used: {row}"
    );
    let res = admin
        .post("/settings/tokens", &[("name", ""), ("role", "agent")])
        .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(element(&res.body, "name-error").is_some(), "{}", res.body);

    let res = admin
        .post(&format!("/settings/tokens/{id}/revoke"), &[])
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let (s, _, _) = app
        .call(Some(&secret), Method::GET, "/api/v1/campaigns", None)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(
        element(
            &admin.page("/settings/tokens").await,
            &format!("token-{id}")
        )
        .is_none()
    );
    assert_eq!(
        audit(&app).await,
        [
            "token.revoked zapier [role: agent] by user ann@example.org from 127.0.0.1",
            "token.created zapier [role: agent] by user ann@example.org from 127.0.0.1",
        ]
    );
}

async fn the_web_admin_adds_and_removes_opt_outs_and_the_audit_log_shows_both(app: App) {
    let admin = sign_in(&app, "ann@example.org", Role::Admin).await;
    let res = admin
        .post(
            "/settings/opt-outs",
            &[
                ("address", "cy@Example.ORG"),
                ("reason", "wrote to support"),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
    assert!(
        element(&res.body, "notice")
            .unwrap()
            .contains("cy@example.org")
    );
    // Refused: no reason, or not an address.
    let res = admin
        .post("/settings/opt-outs", &[("address", "12"), ("reason", "")])
        .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(element(&res.body, "address-error").is_some());
    assert!(element(&res.body, "reason-error").is_some());

    // Found by a search, its domain in another case (the local part is kept as typed).
    let page = admin
        .page("/settings/opt-outs?address=cy%40EXAMPLE.org")
        .await;
    let table = element(&page, "opt-outs").unwrap();
    assert!(
        table.contains("wrote to support") && table.contains("every sender"),
        "{table}"
    );
    assert!(table.contains("ann@example.org"), "who added it: {table}");
    let page = admin
        .page("/settings/opt-outs?address=%2B14155550100")
        .await;
    assert!(
        element(&page, "opt-outs")
            .unwrap()
            .contains("not on the list")
    );

    let listed = app
        .db
        .store
        .list_suppressions(
            Some("cy@example.org"),
            herald_core::Page::new(None, None).unwrap(),
        )
        .await
        .unwrap();
    let id = listed.items[0].id;
    let res = admin
        .post(&format!("/settings/opt-outs/{id}/delete"), &[])
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert!(
        app.db
            .store
            .list_suppressions(
                Some("cy@example.org"),
                herald_core::Page::new(None, None).unwrap()
            )
            .await
            .unwrap()
            .items
            .is_empty()
    );

    let page = admin.page("/settings/audit").await;
    let table = element(&page, "audit").unwrap();
    let removed = table.find("Removed opt-out").expect("removal shown");
    let added = table.find("Added opt-out").expect("addition shown");
    assert!(removed < added, "newest first: {table}");
    assert!(
        table.contains("ann@example.org") && table.contains("127.0.0.1"),
        "{table}"
    );
    assert!(table.contains("wrote to support"), "{table}");
}

async fn agents_get_the_styled_403_on_the_people_pages(app: App) {
    let agent = sign_in(&app, "bob@example.org", Role::Agent).await;
    for path in [
        "/settings/people",
        "/settings/tokens",
        "/settings/opt-outs",
        "/settings/audit",
    ] {
        let res = agent.get(path).await;
        assert_eq!(res.status, StatusCode::FORBIDDEN, "{path}");
        assert!(res.body.contains("Only admins"), "{path}: {}", res.body);
    }
    let csrf = csrf_of(&agent.page("/campaigns").await);
    let res = agent
        .post_raw(
            "/settings/tokens",
            &[("csrf", &csrf), ("name", "mine"), ("role", "admin")],
        )
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    let (_, tokens) = app.admin(Method::GET, "/api/v1/tokens", None).await;
    assert_eq!(tokens["items"].as_array().unwrap().len(), 2, "{tokens}");
}
