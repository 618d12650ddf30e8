//! Signing in to the web UI over real HTTP, against SQLite and PostgreSQL: the redirect of a
//! signed-out visitor, `/login`, `/logout` and its CSRF check, the one-time setup links, and
//! admin-only pages refusing agents.

#![allow(clippy::disallowed_methods)] // tests set up data relative to the real time

mod common;

use common::App;
use common::web::{Browser, PASSWORD, create_user, csrf_of, sign_in};
use herald_core::Role;
use herald_server::web::auth::verify_password;
use herald_server::web::session::{new_secret, secret_hash};
use jiff::{SignedDuration, Timestamp};
use reqwest::{Method, StatusCode};

herald_store::on_both_backends!(
    with crate::common::start:
    repeated_failures_lock_the_address_for_a_while,
    signed_out_visitors_are_sent_to_login_with_next,
    bad_credentials_get_401_and_no_session,
    good_credentials_start_a_session_and_go_to_next,
    logout_needs_the_csrf_token_and_ends_the_session,
    setup_links_create_one_user_once,
    setup_links_for_an_email_fix_it,
    agents_are_refused_admin_pages,
);

async fn setup_link(app: &App, email: Option<&str>, role: Role, valid: SignedDuration) -> String {
    let secret = new_secret();
    app.db
        .store
        .create_setup_token(
            &secret_hash(&secret),
            email,
            role,
            Timestamp::now().checked_add(valid).unwrap(),
        )
        .await
        .unwrap();
    format!("/setup/{secret}")
}

// ---------------------------------------------------------------- tests

async fn signed_out_visitors_are_sent_to_login_with_next(app: App) {
    let http = Browser::new(&app.base);
    let res = http.get("/").await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert!(res.location().starts_with("/login"), "{}", res.location());

    let res = http.get("/campaigns?channel=email").await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert_eq!(res.location(), "/login?next=%2Fcampaigns%3Fchannel%3Demail");
    // The sign-in page carries `next` back in its form.
    let page = http.get(res.location()).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body
            .contains(r#"name="next" value="/campaigns?channel=email""#),
        "{}",
        page.body
    );
    assert!(page.body.contains(r#"<label for="email">"#));
    assert!(page.body.contains(r#"<label for="password">"#));
    let csrf_cookie = page
        .set_cookie("herald_login_csrf")
        .expect("login csrf cookie");
    assert!(csrf_cookie.contains("HttpOnly") && csrf_cookie.contains("SameSite=Lax"));

    // A forged or stale session cookie is no session.
    let stranger = Browser::new(&app.base);
    let res = stranger
        .send(
            stranger
                .request(Method::GET, "/settings")
                .header("cookie", format!("herald_session={}", new_secret())),
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert_eq!(res.location(), "/login?next=%2Fsettings");

    // htmx requests get a 401 telling htmx where to go; other methods a 401.
    let res = http
        .send(
            http.request(Method::GET, "/campaigns")
                .header("HX-Request", "true"),
        )
        .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers["hx-redirect"], "/login");
    let res = http.post_raw("/settings/inboxes", &[("name", "X")]).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
}

async fn bad_credentials_get_401_and_no_session(app: App) {
    create_user(&app, "ann@example.com", Role::Admin).await;
    let http = Browser::new(&app.base);
    let wrong = http.log_in("ann@example.com", "not the password", "").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains(r#"id="login-error""#), "{}", wrong.body);
    assert!(wrong.set_cookie("herald_session").is_none());
    // The email is kept, the password is not.
    assert!(wrong.body.contains(r#"value="ann@example.com""#));
    assert!(!wrong.body.contains("not the password"));

    // An unknown email gets exactly the same answer.
    let unknown = http
        .log_in("nobody@example.com", "not the password", "")
        .await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert!(unknown.set_cookie("herald_session").is_none());
    let message = |body: &str| {
        let at = body.find(r#"id="login-error""#).unwrap();
        body[at..].split('<').next().unwrap().to_string()
    };
    assert_eq!(message(&wrong.body), message(&unknown.body));

    // Without the sign-in page's token (login CSRF), even the right password is refused.
    let fresh = Browser::new(&app.base);
    let res = fresh
        .post_raw(
            "/login",
            &[
                ("email", "ann@example.com"),
                ("password", PASSWORD),
                ("csrf", "forged"),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert!(res.set_cookie("herald_session").is_none());

    // Still signed out.
    let res = http.get("/campaigns").await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert!(res.location().starts_with("/login"));
}

async fn repeated_failures_lock_the_address_for_a_while(app: App) {
    create_user(&app, "ann@example.com", Role::Admin).await;
    create_user(&app, "bob@example.com", Role::Admin).await;
    let http = Browser::new(&app.base);
    for attempt in 0..5 {
        let wrong = http.log_in("Ann@Example.com", "not the password", "").await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "attempt {attempt}");
    }
    // Now even the right password is refused, with the reason and how long to wait.
    let locked = http.log_in("ann@example.com", PASSWORD, "").await;
    assert_eq!(
        locked.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        locked.body
    );
    assert!(locked.set_cookie("herald_session").is_none());
    assert!(
        locked.body.contains("Too many failed sign-ins"),
        "{}",
        locked.body
    );
    assert!(
        locked.body.contains("Try again in 15 minutes"),
        "{}",
        locked.body
    );
    // Other people are not affected.
    let bob = http.log_in("bob@example.com", PASSWORD, "").await;
    assert_eq!(bob.status, StatusCode::SEE_OTHER, "{}", bob.body);
}

async fn good_credentials_start_a_session_and_go_to_next(app: App) {
    create_user(&app, "ann@example.com", Role::Admin).await;
    let http = Browser::new(&app.base);
    // Emails are compared whatever their case.
    let res = http
        .log_in(" Ann@Example.com", PASSWORD, "/campaigns?channel=email")
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert_eq!(res.location(), "/campaigns?channel=email");
    let cookie = res.set_cookie("herald_session").expect("session cookie");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain http: {cookie}");
    // The session secret is 256 random bits; only its hash is stored.
    let secret = cookie
        .trim_start_matches("herald_session=")
        .split(';')
        .next()
        .unwrap();
    assert_eq!(secret.len(), 64);
    let (user, csrf) = app
        .db
        .store
        .find_session(&secret_hash(secret), Timestamp::now())
        .await
        .unwrap()
        .expect("session stored under the secret's hash");
    assert_eq!(user.email, "ann@example.com");
    assert!(
        app.db
            .store
            .find_session(secret, Timestamp::now())
            .await
            .unwrap()
            .is_none()
    );

    let page = http.get("/campaigns").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("ann@example.com"));
    assert_eq!(csrf_of(&page.body), csrf);
    // Signed in, the sign-in page sends on.
    let res = http.get("/login").await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert_eq!(res.location(), "/");
    // Home is where each works: an admin's the campaigns.
    assert_eq!(http.get("/").await.location(), "/campaigns");

    // `next` never leaves the site.
    let other = Browser::new(&app.base);
    let res = other
        .log_in("ann@example.com", PASSWORD, "//evil.example/x")
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert_eq!(res.location(), "/");

    // Behind https, the cookies are Secure.
    let secure = common::start_shared(app.db.clone(), |s| {
        *s = s.clone().with_secure_cookies(true);
    })
    .await;
    let http = Browser::new(&secure.base);
    let page = http.get("/login").await;
    assert!(
        page.set_cookie("herald_login_csrf")
            .unwrap()
            .contains("; Secure")
    );
    let csrf = csrf_of(&page.body);
    let res = http
        .send(
            http.request(Method::POST, "/login")
                // The jar does not send a Secure cookie over http: send it as a browser on https would.
                .header("cookie", format!("herald_login_csrf={csrf}"))
                .form(&[
                    ("email", "ann@example.com"),
                    ("password", PASSWORD),
                    ("csrf", &csrf),
                ]),
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let cookie = res.set_cookie("herald_session").unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Secure"),
        "{cookie}"
    );
}

async fn logout_needs_the_csrf_token_and_ends_the_session(app: App) {
    create_user(&app, "ann@example.com", Role::Agent).await;
    let http = Browser::new(&app.base);
    let res = http.log_in("ann@example.com", PASSWORD, "").await;
    let secret = res
        .set_cookie("herald_session")
        .unwrap()
        .trim_start_matches("herald_session=")
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let page = http.get("/campaigns").await;
    let csrf = csrf_of(&page.body);
    assert!(page.body.contains(r#"action="/logout""#));

    // Without the token, or with another, nothing happens.
    for form in [vec![], vec![("csrf", "forged")]] {
        let res = http.post_raw("/logout", &form).await;
        assert_eq!(res.status, StatusCode::FORBIDDEN, "{form:?}");
        assert_eq!(http.get("/campaigns").await.status, StatusCode::OK);
    }

    let res = http.post_raw("/logout", &[("csrf", &csrf)]).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert_eq!(res.location(), "/login");
    let cleared = res.set_cookie("herald_session").unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    let res = http.get("/campaigns").await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    // The session is gone on the server, not just from the browser.
    assert!(
        app.db
            .store
            .find_session(&secret_hash(&secret), Timestamp::now())
            .await
            .unwrap()
            .is_none()
    );

    // htmx sends the token as a header.
    let http = sign_in(&app, "bob@example.com", Role::Admin).await;
    let res = http
        .send(
            http.request(Method::POST, "/logout")
                .header("X-CSRF-Token", &http.csrf),
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert_eq!(http.get("/campaigns").await.status, StatusCode::SEE_OTHER);
}

async fn setup_links_create_one_user_once(app: App) {
    let link = setup_link(&app, None, Role::Admin, SignedDuration::from_hours(24)).await;
    let http = Browser::new(&app.base);
    let page = http.get(&link).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    for label in ["email", "password", "password_confirm"] {
        assert!(
            page.body.contains(&format!(r#"<label for="{label}">"#)),
            "{label}"
        );
    }
    assert!(!page.body.contains("readonly"));
    let csrf = csrf_of(&page.body);
    let fill = |email: &'static str, password: &'static str, confirm: &'static str| {
        let csrf = csrf.clone();
        let (http, link) = (&http, &link);
        async move {
            http.post_raw(
                link,
                &[
                    ("email", email),
                    ("password", password),
                    ("password_confirm", confirm),
                    ("csrf", &csrf),
                ],
            )
            .await
        }
    };

    // The rules, each next to its field; the link stays usable.
    let res = fill("ann@example.com", "short", "short").await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(res.body.contains(r#"id="password-error""#), "{}", res.body);
    assert!(!res.body.contains(r#"id="password_confirm-error""#));
    assert!(res.body.contains(r#"value="ann@example.com""#));
    let res = fill(
        "ann@example.com",
        "long enough secret",
        "long enough secreT",
    )
    .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        res.body.contains(r#"id="password_confirm-error""#),
        "{}",
        res.body
    );
    assert!(!res.body.contains(r#"id="password-error""#));
    let res = fill("not an email", "long enough secret", "long enough secret").await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(res.body.contains(r#"id="email-error""#), "{}", res.body);
    assert_eq!(app.db.store.count_users().await.unwrap(), 0);

    // A forged form is refused.
    let res = Browser::new(&app.base)
        .post_raw(
            &link,
            &[
                ("email", "eve@example.com"),
                ("password", "long enough secret"),
                ("password_confirm", "long enough secret"),
                ("csrf", "forged"),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert_eq!(app.db.store.count_users().await.unwrap(), 0);

    let res = fill(
        "Ann@Example.com",
        "long enough secret",
        "long enough secret",
    )
    .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert_eq!(
        res.location(),
        "/",
        "home, which sends each user where they work"
    );
    assert!(res.set_cookie("herald_session").is_some());
    let (user, hash) = app
        .db
        .store
        .find_user_by_email("ann@example.com")
        .await
        .unwrap()
        .expect("created");
    assert_eq!(user.role, Role::Admin);
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(verify_password("long enough secret", &hash));
    // Signed in already.
    let page = http.get("/campaigns").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("ann@example.com"));

    // Once only.
    let again = Browser::new(&app.base);
    let res = again.get(&link).await;
    assert_eq!(res.status, StatusCode::GONE);
    let res = fill(
        "bob@example.com",
        "long enough secret",
        "long enough secret",
    )
    .await;
    assert_eq!(res.status, StatusCode::GONE);
    assert_eq!(app.db.store.count_users().await.unwrap(), 1);

    // An expired link, and one that never existed.
    let expired = setup_link(&app, None, Role::Admin, SignedDuration::from_secs(-1)).await;
    assert_eq!(again.get(&expired).await.status, StatusCode::GONE);
    let unknown = format!("/setup/{}", new_secret());
    assert_eq!(again.get(&unknown).await.status, StatusCode::GONE);
}

async fn setup_links_for_an_email_fix_it(app: App) {
    let link = setup_link(
        &app,
        Some("Bob@Example.com"),
        Role::Agent,
        SignedDuration::from_hours(24),
    )
    .await;
    let http = Browser::new(&app.base);
    let page = http.get(&link).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body
            .contains(r#"value="bob@example.com" autocomplete="username" readonly"#),
        "{}",
        page.body
    );
    let csrf = csrf_of(&page.body);
    // Whatever email the form sends, the link's is used.
    let res = http
        .post_raw(
            &link,
            &[
                ("email", "mallory@example.com"),
                ("password", "long enough secret"),
                ("password_confirm", "long enough secret"),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let (user, _) = app
        .db
        .store
        .find_user_by_email("bob@example.com")
        .await
        .unwrap()
        .expect("bob");
    assert_eq!(user.role, Role::Agent);
    assert!(
        app.db
            .store
            .find_user_by_email("mallory@example.com")
            .await
            .unwrap()
            .is_none()
    );

    // A link for an email that already has a user says so (and stays usable).
    let dup = setup_link(
        &app,
        Some("bob@example.com"),
        Role::Admin,
        SignedDuration::from_hours(24),
    )
    .await;
    let http = Browser::new(&app.base);
    let page = http.get(&dup).await;
    let csrf = csrf_of(&page.body);
    let res = http
        .post_raw(
            &dup,
            &[
                ("password", "long enough secret"),
                ("password_confirm", "long enough secret"),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(res.body.contains(r#"id="email-error""#), "{}", res.body);
    assert_eq!(app.db.store.count_users().await.unwrap(), 1);
}

async fn agents_are_refused_admin_pages(app: App) {
    let agent = sign_in(&app, "agent@example.com", Role::Agent).await;
    let res = agent.get("/settings").await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    let res = agent
        .post_raw(
            "/settings/inboxes",
            &[("name", "Sneaky"), ("csrf", &agent.csrf)],
        )
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    // Agents can still read campaigns; admins reach settings.
    assert_eq!(agent.get("/campaigns").await.status, StatusCode::OK);
    let admin = sign_in(&app, "admin@example.com", Role::Admin).await;
    assert_eq!(admin.get("/settings").await.status, StatusCode::OK);
}
