//! People and access in a real browser (issue #17 item 2): headless Chromium, driven over
//! WebDriver, against a real `herald serve`. The first admin invites an agent, who sets a
//! password through the link in a second browser; the admin deactivates them and the agent's
//! open session is refused at its next page; an API token is created (its secret shown once,
//! and working) and revoked (refused at once); an opt-out is added and removed, and the audit
//! log shows both, with who did it and from where.
//!
//! Saves the screenshots `people` and `opt-outs` (see `browser.rs` for where they go). Needs
//! `chromium` and `chromedriver` on `PATH` (see `common/webdriver.rs`).

#![allow(clippy::disallowed_methods)] // tests set up data relative to the real time

mod common;

use common::serve_reading;
use common::webdriver::{Browser, Tools};
use std::time::Duration;

const PASSWORD: &str = "correct horse battery staple";
const AGENT_PASSWORD: &str = "another long enough password";

/// Clicks a button that asks first (`data-confirm`), checks the question and says yes.
async fn click_and_confirm(b: &mut Browser, css: &str, question_has: &str) {
    b.click(css).await;
    let question = b.alert_text().await.unwrap_or_default();
    assert!(
        question.contains(question_has),
        "`{css}` asks first: {question:?}"
    );
    b.accept_alert().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_manage_people_tokens_and_opt_outs_in_a_browser() {
    let Some(tools) = Tools::find() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("herald.toml"),
        "[server]\nsecret = \"people browser test secret\"\n",
    )
    .unwrap();
    let port = herald_testkit::closed_port();
    let base = format!("http://127.0.0.1:{port}");
    let bind = format!("127.0.0.1:{port}");
    let (server, _, lines) = serve_reading(
        dir.path(),
        "sqlite://herald.db",
        &["--bind", &bind],
        &[("HERALD_SERVER__PUBLIC_URL", &base)],
        Some("Create the first admin:"),
        Duration::from_secs(60),
    );
    let setup_url = lines
        .iter()
        .find_map(|l| l.split("Create the first admin: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the first-admin line names a URL")
        .to_string();

    // --- The first admin.
    let mut b = Browser::start(&tools, &base).await;
    b.goto(&setup_url).await;
    b.fill("input[name=email]", "admin@example.com").await;
    b.fill("input[name=password]", PASSWORD).await;
    b.fill("input[name=password_confirm]", PASSWORD).await;
    b.submit("input[name=password_confirm]").await;
    b.wait_url("the campaigns after signing up", |u| {
        u.contains("/campaigns")
    })
    .await;

    // --- Settings → People: invite an agent; the link is shown once.
    b.goto("/settings").await;
    b.click("#settings-people").await;
    b.wait_url("the people page", |u| u.ends_with("/settings/people"))
        .await;
    b.fill("#email", "agent@example.com").await;
    b.select("#role", "agent").await;
    b.check_labels().await;
    b.submit("#email").await;
    let link = b
        .wait_text("#invite-link", "the invitation link", |t| {
            t.contains("/setup/")
        })
        .await;
    let link = link.trim().to_string();
    assert!(link.starts_with(&format!("{base}/setup/")), "{link}");
    b.wait_text("#invitation-list", "the invitation waiting", |t| {
        t.contains("agent@example.com")
    })
    .await;

    // --- The agent takes the link in their own browser and is signed in.
    let mut agent = Browser::start(&tools, &base).await;
    agent.goto(&link).await;
    agent.fill("input[name=password]", AGENT_PASSWORD).await;
    agent
        .fill("input[name=password_confirm]", AGENT_PASSWORD)
        .await;
    agent.submit("input[name=password_confirm]").await;
    // Agents start in the inbox.
    agent
        .wait_url("the agent's inbox, first", |u| u.ends_with("/inbox"))
        .await;

    // --- The admin sees them, then deactivates them.
    b.goto("/settings/people").await;
    let row = "#users tr[data-email='agent@example.com']";
    b.wait_text(row, "the agent in the list", |t| t.contains("active"))
        .await;
    b.screenshot("people").await;
    b.check_phone_width().await;
    click_and_confirm(
        &mut b,
        &format!("{row} form[data-confirm] button"),
        "Deactivate agent@example.com?",
    )
    .await;
    b.wait_text(row, "the agent deactivated", |t| t.contains("deactivated"))
        .await;

    // --- The agent's open session is refused at its next page, and they cannot sign in.
    agent.goto("/inbox").await;
    agent
        .wait_url("the sign-in page for the deactivated agent", |u| {
            u.contains("/login")
        })
        .await;
    agent.fill("input[name=email]", "agent@example.com").await;
    agent.fill("input[name=password]", AGENT_PASSWORD).await;
    agent.submit("input[name=password]").await;
    agent.wait("#login-error").await;
    agent.assert_no_problems().await;
    drop(agent);

    // --- Settings → API tokens: created (the secret once, and it works), then revoked.
    b.goto("/settings").await;
    b.click("#settings-tokens").await;
    b.wait_url("the tokens page", |u| u.ends_with("/settings/tokens"))
        .await;
    b.fill("#name", "nightly export").await;
    b.select("#role", "agent").await;
    b.check_labels().await;
    b.submit("#name").await;
    let secret = b
        .wait_text("#token-secret", "the new token's secret", |t| {
            t.starts_with("hrld_")
        })
        .await
        .trim()
        .to_string();
    let api = reqwest::Client::new();
    let campaigns = format!("{base}/api/v1/campaigns");
    let used = api
        .get(&campaigns)
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(used.status().as_u16(), 200, "the new token works");
    b.goto("/settings/tokens").await;
    let token_row = "#tokens tr[data-name='nightly export']";
    b.wait(token_row).await;
    b.check_phone_width().await;
    let page = b.text("main").await;
    assert!(!page.contains(&secret), "the secret is shown only once");
    click_and_confirm(
        &mut b,
        &format!("{token_row} button"),
        "Revoke the token nightly export?",
    )
    .await;
    b.wait_text("#tokens", "the token gone from the list", |t| {
        !t.contains("nightly export")
    })
    .await;
    let refused = api
        .get(&campaigns)
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 401, "a revoked token is refused");

    // --- Settings → Opt-outs: added with a reason, found, removed.
    b.goto("/settings").await;
    b.click("#settings-opt-outs").await;
    b.wait_url("the opt-outs page", |u| u.ends_with("/settings/opt-outs"))
        .await;
    b.fill("#address", "+1 415 555 0123").await;
    b.fill("#reason", "asked by phone").await;
    b.check_labels().await;
    b.submit("#address").await;
    b.wait_text("#notice", "the opt-out added", |t| {
        t.contains("+14155550123")
    })
    .await;
    b.goto("/settings/opt-outs").await;
    b.fill("#search-address", "+14155550123").await;
    b.submit("#search-address").await;
    let opt_out = "#opt-outs tr[data-address='+14155550123']";
    b.wait_text(opt_out, "the opt-out found", |t| {
        t.contains("asked by phone")
            && t.contains("every sender")
            && t.contains("admin@example.com")
    })
    .await;
    b.screenshot("opt-outs").await;
    b.check_phone_width().await;
    click_and_confirm(
        &mut b,
        &format!("{opt_out} button"),
        "Lift the opt-out of +14155550123?",
    )
    .await;
    b.wait_text("#opt-outs", "the opt-out removed", |t| {
        !t.contains("+14155550123")
    })
    .await;

    // --- The audit log shows all of it, newest first, with who and from where.
    b.goto("/settings").await;
    b.click("#settings-audit").await;
    let audit = b
        .wait_text("#audit", "the audit log", |t| t.contains("Removed opt-out"))
        .await;
    let position = |what: &str| {
        audit
            .find(what)
            .unwrap_or_else(|| panic!("{what} is in the audit log:\n{audit}"))
    };
    assert!(position("Removed opt-out") < position("Added opt-out"));
    assert!(position("Added opt-out") < position("Revoked API token"));
    assert!(position("Revoked API token") < position("Created API token"));
    assert!(position("Created API token") < position("Deactivated user"));
    assert!(position("Deactivated user") < position("Invited user"));
    assert!(audit.contains("admin@example.com") && audit.contains("127.0.0.1"));
    assert!(audit.contains("asked by phone"));
    b.check_phone_width().await;

    b.assert_no_problems().await;
    drop(b);
    server.stop();
}
