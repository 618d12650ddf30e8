//! The admin web UI in a real browser: headless Chromium, driven over WebDriver (`chromedriver`),
//! goes through the main flows of a real `herald serve` — first admin, settings, an SMS campaign,
//! an upload that sends on the file channel, a stopped outreach, recipients, a reply in the inbox,
//! signing out and in — checking for JavaScript errors and for pages wider than a phone.
//!
//! Every run saves screenshots of the main pages in `target/tmp/screenshots/`; with
//! `HERALD_UPDATE_SCREENSHOTS=1` it writes them to `docs/screenshots/` instead, the pictures of
//! `docs/tour.md` (so a plain test run never changes the working tree).
//!
//! Needs `chromium` (or Chrome) and `chromedriver` on `PATH` (`CHROME_BIN` and `CHROMEDRIVER`
//! name others). Without them it says so and passes, except under `CI=true`, where it fails.

#![allow(clippy::disallowed_methods)] // tests set up data relative to the real time

mod common;

use common::webdriver::{Browser, Tools, WAIT, uuid_after};
use common::{herald, serve_reading};
use herald_testkit::FakeTwilio;
use serde_json::json;
use std::time::{Duration, Instant};

const SENDER: &str = "+14155552671";
const CUSTOMER: &str = "+14155552672";
const SCRIPT: &str = "<script>alert(1)</script>";
const PASSWORD: &str = "correct horse battery staple";
const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_ui_works_in_a_browser() {
    let Some(tools) = Tools::find() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = "sqlite://herald.db";
    // Twilio is configured (pointing at a fake) so that Herald takes the customer's signed reply.
    let twilio = FakeTwilio::start();
    std::fs::write(
        dir.path().join("herald.toml"),
        format!(
            "[server]\nsecret = \"browser test secret\"\n{}",
            twilio.config_toml()
        ),
    )
    .unwrap();
    let port = herald_testkit::closed_port();
    let base = format!("http://127.0.0.1:{port}");
    let bind = format!("127.0.0.1:{port}");
    let (server, listening, lines) = serve_reading(
        dir.path(),
        db,
        &["--bind", &bind],
        &[
            ("HERALD_SERVER__PUBLIC_URL", &base),
            ("HERALD_DISPATCH__RATES__SMS", "50"),
        ],
        Some("Create the first admin:"),
        Duration::from_secs(60),
    );
    assert_eq!(listening, base, "herald listens where it was told");
    let setup_url = lines
        .iter()
        .find_map(|l| l.split("Create the first admin: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the first-admin line names a URL")
        .to_string();
    assert!(
        setup_url.starts_with(&format!("{base}/setup/")),
        "the first-admin link is on the public URL: {setup_url}"
    );

    let mut b = Browser::start(&tools, &base).await;

    // --- Signed out: the sign-in page, then the first admin's set-up link.
    b.goto("/campaigns").await;
    b.wait_url("the sign-in page", |u| u.contains("/login"))
        .await;
    b.wait("form input[name=email]").await;
    b.wait("form input[name=password][type=password]").await;
    b.check_labels().await;
    b.screenshot("login").await;
    b.check_phone_width().await;

    b.goto(&setup_url).await;
    b.fill("input[name=email]", "admin@example.com").await;
    b.fill("input[name=password]", PASSWORD).await;
    b.fill("input[name=password_confirm]", PASSWORD).await;
    b.check_labels().await;
    b.screenshot("setup").await;
    b.submit("input[name=password_confirm]").await;
    b.wait_url("the campaigns after signing up", |u| {
        u.ends_with("/campaigns") || u.contains("/campaigns?")
    })
    .await;
    let used = reqwest::get(&setup_url).await.unwrap();
    assert_eq!(used.status().as_u16(), 410, "a set-up link works once");

    // --- Settings: an inbox, an SMS sender on the file channel, an answer with a live preview.
    b.goto("/settings").await;
    for link in [
        "/settings/inboxes",
        "/settings/senders",
        "/settings/answers",
    ] {
        b.wait(&format!("main a[href='{link}']")).await;
    }
    b.goto("/settings/inboxes").await;
    b.fill("input[name=name]", "Customer care").await;
    b.check_labels().await;
    b.submit("input[name=name]").await;
    b.wait_text("main", "the new inbox in the list", |t| {
        t.contains("Customer care")
    })
    .await;

    b.goto("/settings/senders").await;
    b.select("select[name=channel]", "sms").await;
    b.fill("input[name=address]", SENDER).await;
    b.select("select[name=inbox_id]", "Customer care").await;
    b.select("select[name=provider]", "file").await;
    b.check_labels().await;
    b.submit("input[name=address]").await;
    b.wait_text("main table", "the new sender in the list", |t| {
        t.contains("2671")
    })
    .await;

    b.goto("/settings/answers/new").await;
    b.fill("input[name=name]", "Order delay").await;
    b.choose("[name=language_0]", "en").await;
    b.fill("textarea[name=sample]", "first_name=Ada\norder=A-1001")
        .await;
    b.fill(
        "textarea[name=body_0]",
        "Hi {{ first_name }}, your order {{ order }} is running late.",
    )
    .await;
    b.wait_text("#preview", "the rendered preview", |t| {
        t.contains("Hi Ada, your order A-1001 is running late.")
    })
    .await;
    b.wait_text("#preview-segments", "one segment", |t| t.contains('1'))
        .await;
    b.wait_text("#preview-encoding", "GSM-7", |t| t.trim() == "GSM-7")
        .await;
    // A character outside GSM-7 switches the encoding while typing.
    b.type_keys("textarea[name=body_0]", " ✓").await;
    b.wait_text("#preview-encoding", "UCS-2 after a ✓", |t| {
        t.trim() == "UCS-2"
    })
    .await;
    b.fill(
        "textarea[name=body_0]",
        "Hi {{ first_name }}, your order {{ order }} is running late. Reply here with questions.",
    )
    .await;
    b.wait_text("#preview-encoding", "GSM-7 again", |t| t.trim() == "GSM-7")
        .await;
    b.check_labels().await;
    b.screenshot("answer-preview").await;
    b.submit("input[name=name]").await;
    b.wait_url("the answers after saving", |u| !u.contains("/new"))
        .await;
    b.goto("/settings/answers").await;
    b.wait_text("main", "the new answer in the list", |t| {
        t.contains("Order delay")
    })
    .await;

    // --- An SMS campaign open around the clock; first without a name.
    b.goto("/campaigns").await;
    b.click("#new-campaign").await;
    b.wait_url("the new campaign form", |u| u.contains("/campaigns/new"))
        .await;
    b.fill(
        "[name=description]",
        "Tell customers their order is running late",
    )
    .await;
    b.select("select[name=sender_id]", "2671").await;
    b.choose("[name=language]", "en").await;
    b.wait_js(
        "the answers of the chosen language",
        "return [...document.querySelectorAll('select[name=answer_id] option')]
            .some(o => o.textContent.includes('Order delay'))",
    )
    .await;
    b.select("select[name=answer_id]", "Order delay").await;
    // The time-zone picker: the field searches every IANA zone as one types (its list), and
    // starts in the browser's own zone.
    let picker = b
        .js(
            "const f = document.querySelector('[name=timezone]');
             const list = f.list ? [...f.list.options].map(o => o.value) : [];
             return {n: list.length, ny: list.includes('America/New_York'),
                     paris: list.filter(z => z.toLowerCase().includes('paris')),
                     own: f.value === Intl.DateTimeFormat().resolvedOptions().timeZone}",
            vec![],
        )
        .await;
    assert!(picker["n"].as_u64() > Some(300), "{picker}");
    assert_eq!(picker["ny"], json!(true), "{picker}");
    assert_eq!(picker["paris"], json!(["Europe/Paris"]), "{picker}");
    assert_eq!(picker["own"], json!(true), "{picker}");
    b.choose("[name=timezone]", "Europe/Paris").await;
    b.set_checked("input[name=quiet_hours]", false).await;
    for day in DAYS {
        b.set_checked(&format!("input[name={day}_closed]"), false)
            .await;
        b.set_value(&format!("input[name={day}_from]"), "00:00")
            .await;
        // Two windows a day (they touch, so it sends at any hour but the last minute).
        b.set_value(&format!("input[name={day}_to]"), "12:00").await;
        b.fill(&format!("input[name={day}_extra]"), "12:00-23:59")
            .await;
    }
    b.fill("textarea[name=closed_dates]", "2030-12-25").await;
    b.check_labels().await;
    b.screenshot("campaign-form").await;
    b.js(
        "document.querySelector('[name=name]').form.noValidate = true",
        vec![],
    )
    .await;
    b.submit("[name=name]").await;
    b.wait("#name-error").await;
    let next_to_field = b
        .js(
            "const e = document.getElementById('name-error');
             const i = document.querySelector('[name=name]');
             return !!e && !!i && e.parentElement.contains(i) && e.textContent.trim().length > 0",
            vec![],
        )
        .await;
    assert_eq!(
        next_to_field,
        json!(true),
        "the missing name is explained next to the name field"
    );
    let kept = b
        .js(
            "return [document.querySelector('[name=description]').value,
                     document.querySelector('[name=mon_closed]').checked,
                     document.querySelector('[name=sun_to]').value,
                     document.querySelector('[name=sun_extra]').value,
                     document.querySelector('[name=closed_dates]').value]",
            vec![],
        )
        .await;
    assert_eq!(
        kept,
        json!([
            "Tell customers their order is running late",
            false,
            "12:00",
            "12:00-23:59",
            "2030-12-25"
        ]),
        "the form comes back with what was submitted"
    );
    b.fill("[name=name]", "Order updates").await;
    b.submit("[name=name]").await;
    let campaign_url = b
        .wait_url("the campaign's page", |u| {
            uuid_after(u, "/campaigns/").is_some() && !u.contains("/edit")
        })
        .await;
    let campaign = uuid_after(&campaign_url, "/campaigns/").unwrap();
    b.wait_text("#campaign-schedule", "two windows a day", |t| {
        t.contains("00:00-12:00, 12:00-23:59")
    })
    .await;
    b.wait_text("#campaign-closed-dates", "the holiday", |t| {
        t.contains("2030-12-25")
    })
    .await;

    b.goto("/campaigns?channel=sms").await;
    b.wait(&format!("main a[href='/campaigns/{campaign}']"))
        .await;
    b.wait_text("main", "the campaign in the list", |t| {
        t.contains("Order updates")
    })
    .await;
    b.screenshot("campaigns").await;

    // --- The CSV template, then an upload with bad rows and a hostile first name.
    b.goto(&format!("/campaigns/{campaign}")).await;
    let template = b.attr("#csv-template", "href").await;
    assert!(
        template.ends_with(&format!("/campaigns/{campaign}/template.csv")),
        "the template link: {template}"
    );
    let (status, csv) = b.fetch(&template).await;
    assert_eq!(status, 200, "the CSV template downloads: {csv}");
    let header: Vec<&str> = csv.lines().next().unwrap_or("").split(',').collect();
    for column in ["phone", "timezone", "first_name", "order"] {
        assert!(
            header.contains(&column),
            "the template's header has {column}: {csv}"
        );
    }

    let orders = dir.path().join("orders.csv");
    std::fs::write(
        &orders,
        format!(
            "phone,first_name,order\n\
             +1 415 555 2672,Ada,A-1001\n\
             +1 415 555 2673,{SCRIPT},A-1002\n\
             +1 415 555 2674,Grace,A-1003\n\
             not a number,Cy,A-1004\n\
             +1 415 555 2672,Ada again,A-1005\n"
        ),
    )
    .unwrap();
    b.click("#add-recipients").await;
    b.wait_url("the upload form", |u| u.contains("/outreaches/new"))
        .await;
    b.wait("form[enctype='multipart/form-data'] input[type=file][name=file]")
        .await;
    b.wait("input[name=start_at]").await;
    b.check_labels().await;
    b.upload("input[name=file]", &orders).await;
    // --- The review first: nothing is stored until the reviewed list is launched.
    b.submit("input[name=file]").await;
    b.wait_text("#review-summary", "the review's summary", |t| {
        t.contains("3 recipients") && t.contains("1 refused") && t.contains("1 duplicate left out")
    })
    .await;
    b.wait_text("#forecast-first", "the forecast's first message", |t| {
        t.contains(':')
    })
    .await;
    b.wait_text("#review-samples", "the message for the first rows", |t| {
        t.contains("Ada") && t.contains("A-1001")
    })
    .await;
    b.wait_text("#review-errors", "the refused row", |t| {
        t.contains("not a number")
    })
    .await;
    b.check_labels().await;
    b.screenshot("review").await;
    b.click("#launch-submit").await;
    b.wait("#summary-accepted").await;
    let sent_outreach = b.outreach_id().await;
    assert_eq!(b.text("#summary-accepted").await.trim(), "3");
    assert_eq!(b.text("#summary-invalid").await.trim(), "1");
    assert_eq!(b.text("#summary-duplicates").await.trim(), "1");
    assert_eq!(b.text("#summary-suppressed").await.trim(), "0");
    let errors = b.attr("#errors-csv", "href").await;
    assert!(
        errors.ends_with(&format!("/outreaches/{sent_outreach}/errors.csv")),
        "the error report link: {errors}"
    );
    let (status, report) = b.fetch(&errors).await;
    assert_eq!(status, 200, "the error report downloads: {report}");
    assert!(
        report.starts_with("line,column,value,reason") && report.contains("not a number"),
        "the error report lists the bad row: {report}"
    );

    // --- It sends now, on the file channel; the page follows live.
    b.wait_text_for("#progress", "3/3 sent", Duration::from_secs(60), |t| {
        t.trim() == "3/3 sent"
    })
    .await;
    b.wait_text("#status", "Completed", |t| t.trim() == "Completed")
        .await;
    assert!(
        b.find("#stop-form").await.is_none(),
        "a completed outreach cannot be stopped"
    );
    b.screenshot("outreach").await;
    // --- The report: the funnel drawn on the server, as SVG.
    b.wait("#report #funnel-chart svg").await;
    b.wait_text("#report", "the report's figures", |t| {
        t.contains("Reply rate")
    })
    .await;
    b.screenshot_element("#report", "report").await;
    let outbox = std::fs::read_to_string(dir.path().join("outbox.jsonl")).unwrap_or_default();
    assert_eq!(
        outbox.lines().count(),
        3,
        "one message per accepted recipient:\n{outbox}"
    );

    // --- A second outreach, tomorrow, with an opted-out number; stopped before it starts.
    let token = String::from_utf8(
        herald(dir.path(), db)
            .args(["token", "create", "--name", "browser", "--role", "admin"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let suppressed = reqwest::Client::new()
        .post(format!("{base}/api/v1/suppressions"))
        .bearer_auth(token.trim())
        .json(&json!({"address": "+14155552679", "reason": "asked on the phone"}))
        .send()
        .await
        .unwrap();
    assert!(suppressed.status().is_success(), "{suppressed:?}");
    let later = dir.path().join("later.csv");
    std::fs::write(
        &later,
        "phone,first_name,order\n+1 415 555 2678,Eve,B-1\n+1 415 555 2679,Finn,B-2\n",
    )
    .unwrap();
    let tomorrow = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_hours(24))
        .unwrap()
        .in_tz("Europe/Paris")
        .unwrap()
        .strftime("%Y-%m-%dT%H:%M")
        .to_string();
    b.goto(&format!("/campaigns/{campaign}/outreaches/new"))
        .await;
    b.upload("input[name=file]", &later).await;
    b.set_value("input[name=start_at]", &tomorrow).await;
    b.submit("input[name=file]").await;
    b.wait_text("#review-warnings", "the opted-out recipient", |t| {
        t.contains("1 recipient opted out")
    })
    .await;
    b.click("#launch-submit").await;
    b.wait_text("#summary-accepted", "2 accepted", |t| t.trim() == "2")
        .await;
    let stopped_outreach = b.outreach_id().await;
    assert_ne!(stopped_outreach, sent_outreach);
    assert_eq!(b.text("#summary-suppressed").await.trim(), "1");
    assert!(
        b.find("#errors-csv").await.is_none(),
        "no error report without invalid rows"
    );
    b.wait_text("#status", "Scheduled", |t| t.trim() == "Scheduled")
        .await;
    b.click("#stop-form button, #stop-form input[type=submit]")
        .await;
    let question = b.alert_text().await;
    assert_eq!(
        question.as_deref(),
        Some("Stop this outreach? It cannot be restarted."),
        "stopping asks first"
    );
    b.accept_alert().await;
    b.wait_text("#status", "Stopped", |t| t.trim() == "Stopped")
        .await;

    b.goto(&format!("/campaigns/{campaign}?status=stopped"))
        .await;
    b.wait(&format!("#outreaches #outreach-{stopped_outreach}"))
        .await;
    b.goto(&format!("/campaigns/{campaign}?status=completed"))
        .await;
    b.wait_text(
        &format!("#outreaches #outreach-{sent_outreach}"),
        "the completed outreach's progress",
        |t| t.contains("3/3") && t.contains("orders.csv"),
    )
    .await;
    b.screenshot("campaign").await;

    // --- Recipients: the hostile name is text, never markup.
    b.goto(&format!("/outreaches/{sent_outreach}")).await;
    b.click("#recipients-link").await;
    b.wait_url("the recipients", |u| u.contains("/recipients"))
        .await;
    b.wait_text("#recipients", "the hostile first name, as text", |t| {
        t.contains(SCRIPT)
    })
    .await;
    assert_eq!(b.alert_text().await, None, "no script ran");
    let injected = b
        .js(
            "return document.querySelectorAll('#recipients script').length",
            vec![],
        )
        .await;
    assert_eq!(injected, json!(0), "no script element in the table");
    b.wait_text("#recipients", "every accepted recipient", |t| {
        ["2672", "2673", "2674"].iter().all(|n| t.contains(n)) && t.contains("A-1003")
    })
    .await;
    b.screenshot("recipients").await;

    // --- A customer replies by text while the inbox is open: it shows without a reload,
    // unread; opened, it is read; the agent takes it and answers.
    b.goto("/inbox").await;
    b.wait("#inbox-live").await;
    b.js("window.herald_no_reload = true; return true", vec![])
        .await;
    let inbound = twilio
        .send_inbound(
            &format!("{base}/webhooks/twilio/sms"),
            CUSTOMER,
            SENDER,
            "Where is my order?",
        )
        .await;
    assert_eq!(inbound.reply.status, 200, "{:?}", inbound.reply);
    let row = b
        .wait_text("#conversations", "the customer's conversation, live", |t| {
            t.contains("2672") && t.contains("Where is my order?")
        })
        .await;
    assert!(
        row.contains("Ada (+14155552672)"),
        "the customer by the name their row gave: {row}"
    );
    let unread = b
        .js(
            "return [...document.querySelectorAll('#conversations li.unread .unread-count, .tabs a[aria-current=page] .count')]
                .map(e => e.textContent.trim())",
            vec![],
        )
        .await;
    assert_eq!(
        unread,
        json!(["1 unread", "1 unread"]),
        "the conversation and its inbox tab count it: {row}"
    );
    assert_eq!(
        b.js("return window.herald_no_reload === true", vec![])
            .await,
        json!(true),
        "the list changed without a reload"
    );
    b.click("#conversations a[href^='/conversations/']").await;
    let conversation_url = b
        .wait_url("the conversation", |u| u.contains("/conversations/"))
        .await;
    b.wait_text("#timeline li.inbound", "the customer's message", |t| {
        t.contains("Where is my order?")
    })
    .await;
    b.click("#assign-me").await;
    b.wait_text("#assignee", "assigned to the agent", |t| {
        t.contains("(you)")
    })
    .await;
    // The customer writes again while the conversation is open: it appears, no reload.
    b.js("window.herald_no_reload = true; return true", vec![])
        .await;
    twilio
        .send_inbound(
            &format!("{base}/webhooks/twilio/sms"),
            CUSTOMER,
            SENDER,
            "Any news?",
        )
        .await;
    b.wait_text("#timeline", "the second message, live", |t| {
        t.contains("Any news?")
    })
    .await;
    assert_eq!(
        b.js("return window.herald_no_reload === true", vec![])
            .await,
        json!(true)
    );
    b.fill("#reply-body", "It ships tomorrow, sorry for the wait.")
        .await;
    b.check_labels().await;
    b.submit("#reply-body").await;
    b.wait_text("#timeline", "the agent's reply", |t| {
        t.contains("It ships tomorrow")
    })
    .await;
    b.wait("#timeline li.outbound").await;
    b.screenshot("conversation").await;
    b.goto("/inbox").await;
    let row = b
        .wait_text("#conversations", "the list, read", |t| t.contains("2672"))
        .await;
    assert_eq!(
        b.js(
            "return document.querySelectorAll('#conversations li.unread, .tabs .count').length",
            vec![]
        )
        .await,
        json!(0),
        "read in the open conversation, the counts are gone: {row}"
    );
    assert!(row.contains("Assigned to you"), "{row}");
    b.screenshot("inbox").await;
    let deadline = Instant::now() + WAIT;
    loop {
        let outbox = std::fs::read_to_string(dir.path().join("outbox.jsonl")).unwrap_or_default();
        if outbox.contains("It ships tomorrow") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the reply went out on the file channel:\n{outbox}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // --- Every main page fits a phone.
    for page in [
        "/campaigns".to_string(),
        "/campaigns/new?channel=sms".to_string(),
        format!("/campaigns/{campaign}"),
        format!("/campaigns/{campaign}/edit"),
        format!("/campaigns/{campaign}/outreaches/new"),
        format!("/outreaches/{sent_outreach}"),
        format!("/outreaches/{sent_outreach}/recipients"),
        "/inbox".to_string(),
        conversation_url.clone(),
        "/settings".to_string(),
        "/settings/inboxes".to_string(),
        "/settings/senders".to_string(),
        "/settings/answers".to_string(),
        "/settings/answers/new".to_string(),
    ] {
        b.goto(&page).await;
        b.wait("main").await;
        b.check_phone_width().await;
    }

    // --- Signing out, a wrong password, signing in again.
    b.goto("/campaigns").await;
    b.click("form.signout button").await;
    b.wait_url("the sign-in page after signing out", |u| {
        !u.contains("/campaigns")
    })
    .await;
    b.goto("/inbox").await;
    b.wait_url("the sign-in page", |u| u.contains("/login"))
        .await;
    b.fill("input[name=email]", "admin@example.com").await;
    b.fill("input[name=password]", "not the password").await;
    b.submit("input[name=password]").await;
    b.wait("#login-error").await;
    b.fill("input[name=password]", PASSWORD).await;
    b.submit("input[name=password]").await;
    b.wait_url("the inbox after signing in", |u| u.ends_with("/inbox"))
        .await;

    b.assert_no_problems().await;
    drop(b);
    server.stop();
}
