//! The web UI's outreach and inbox pages over real HTTP, signed in with a session cookie as a
//! browser is: uploads and their summary, the outreach tabs, stopping, recipients, the live
//! progress stream, and the inbox. Campaigns are made through the API (the campaign pages are
//! not what is tested here); sending is driven through the store.

#![allow(clippy::disallowed_methods)] // tests set up data relative to the real time

mod common;

use common::App;
use common::web::{self, Browser};
use herald_core::Role;
use herald_store::{DeliveryResult, InboundMessage, Outcome, Store};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// Upload size limit of these servers (small, so a "too large" file is small too).
const MAX_BYTES: u64 = 64 * 1024;

herald_store::on_both_backends!(
    with crate::start:
    upload_reports_bad_rows_and_refuses_bad_files,
    outreach_tabs_list_by_status_with_progress,
    stopping_needs_an_admin_and_the_csrf_token,
    recipients_are_filtered_by_state_and_escaped,
    uncertain_recipients_are_shown_and_requeued_only_when_confirmed,
    a_completed_outreach_says_what_failed_and_offers_the_retry,
    a_waiting_outreach_says_when_and_why_and_a_saved_schedule_releases_it,
    the_report_draws_the_figures_the_api_gives,
    the_event_stream_follows_the_progress,
    the_inbox_shows_conversations_and_refuses_opted_out_customers,
    the_upload_form_reads_national_numbers_in_the_chosen_region,
);

/// A server whose file provider writes to an outbox in the returned directory (agent replies
/// through a `file` sender succeed; other providers are not configured and refuse).
async fn start(db: herald_store::testing::TestStore) -> (App, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("outbox.jsonl");
    let app = common::start_with(db, move |state| {
        state.events_interval = Duration::from_millis(50);
        state.import_limits.max_bytes = MAX_BYTES;
        let mut transports = herald_channels::Transports::new();
        transports.insert(
            herald_core::Provider::File,
            Arc::new(herald_channels::FileTransport::new(outbox)),
        );
        let replies = herald_engine::Replies::new(
            state.store.clone(),
            Arc::new(transports),
            herald_engine::RepliesConfig::default(),
        );
        *state = state.clone().with_replies(replies);
    })
    .await;
    (app, dir)
}

// ---------------------------------------------------------------- reading pages

/// The `value` of the first input named `name`.
fn input_value(html: &str, name: &str) -> String {
    let at = html
        .find(&format!("name=\"{name}\""))
        .unwrap_or_else(|| panic!("no input {name} in:\n{html}"));
    let rest = &html[at..];
    let v = rest.find("value=\"").expect("a value") + "value=\"".len();
    rest[v..v + rest[v..].find('"').unwrap()].to_string()
}

/// The text of the element with the id, up to its first child tag.
fn text_of(html: &str, id: &str) -> Option<String> {
    let at = html.find(&format!("id=\"{id}\""))?;
    let rest = &html[at..];
    let open = rest.find('>')? + 1;
    let close = rest[open..].find('<')?;
    Some(rest[open..open + close].trim().to_string())
}

/// The HTML of the element with the id, which the page must have (see [`web::element`]).
fn element<'a>(html: &'a str, id: &str) -> &'a str {
    web::element(html, id).unwrap_or_else(|| panic!("no #{id} in:\n{html}"))
}

/// Creates a user with the role (a new email each time) and signs in through `/login`.
async fn sign_in(app: &App, role: Role) -> Browser {
    let email = format!("{}-{}@example.com", role.as_str(), Uuid::now_v7().simple());
    web::sign_in(app, &email, role).await
}

// ---------------------------------------------------------------- campaigns and outreaches

struct Campaign {
    id: Uuid,
    sender_id: Uuid,
    inbox_id: Uuid,
    answer_id: Uuid,
}

/// An SMS campaign scheduled in Europe/Paris whose answer uses `first_name`. `n` tells names
/// apart when a test needs two.
async fn campaign(app: &App, n: u32) -> Campaign {
    let schedule = json!({"timezone": "Europe/Paris", "days": {"mon": ["09:00-17:00"]}});
    campaign_with(app, n, schedule).await
}

/// The body of a campaign `n` as [`campaign_with`] creates it, with this schedule.
fn campaign_body(n: u32, sender_id: &Value, answer_id: &Value, schedule: &Value) -> Value {
    json!({"name": format!("Late orders {n}"), "channel": "sms", "language": "en",
           "sender_id": sender_id, "answer_id": answer_id, "schedule": schedule})
}

/// [`campaign`] with another schedule.
async fn campaign_with(app: &App, n: u32, schedule: Value) -> Campaign {
    let inbox = app
        .create("/api/v1/inboxes", json!({"name": format!("Care {n}")}))
        .await;
    let sender = app
        .create(
            "/api/v1/senders",
            json!({"channel": "sms", "address": format!("+1415555{:04}", 100 + n),
                   "inbox_id": inbox["id"]}),
        )
        .await;
    let answer = app
        .create(
            "/api/v1/answers",
            json!({"name": format!("Delay {n}"), "variants": [{"language": "en",
                   "body": "Hi {{ first_name }}, your order is late."}]}),
        )
        .await;
    let campaign = app
        .create(
            "/api/v1/campaigns",
            campaign_body(n, &sender["id"], &answer["id"], &schedule),
        )
        .await;
    let id = |v: &Value| Uuid::parse_str(v["id"].as_str().unwrap()).unwrap();
    Campaign {
        id: id(&campaign),
        sender_id: id(&sender),
        inbox_id: id(&inbox),
        answer_id: id(&answer),
    }
}

/// An outreach of the campaign through the API (token auth), from CSV text.
async fn api_outreach(app: &App, campaign: Uuid, name: &str, csv: &str) -> Uuid {
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(csv.as_bytes().to_vec()).file_name(name.to_string()),
    );
    let res = app
        .http
        .post(format!(
            "{}/api/v1/campaigns/{campaign}/outreaches",
            app.base
        ))
        .bearer_auth(&app.admin)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let o: Value = res.json().await.unwrap();
    Uuid::parse_str(o["id"].as_str().unwrap()).unwrap()
}

fn store(app: &App) -> &dyn Store {
    &*app.db.store
}

/// Starts the outreach and records one outcome for each of the next due recipients.
async fn send(app: &App, id: Uuid, outcomes: Vec<Outcome>) {
    let now = Timestamp::now();
    store(app).start_outreach(id, now).await.unwrap();
    let claimed = store(app)
        .claim_due(
            id,
            now,
            now + SignedDuration::from_secs(60),
            outcomes.len() as u32,
        )
        .await
        .unwrap();
    assert_eq!(claimed.len(), outcomes.len());
    let results: Vec<DeliveryResult> = claimed
        .iter()
        .zip(outcomes)
        .map(|(c, outcome)| DeliveryResult {
            recipient_id: c.id,
            outcome,
        })
        .collect();
    store(app).record_results(now, &results).await.unwrap();
}

fn sent() -> Outcome {
    Outcome::Sent {
        provider_message_id: Some("SM1".into()),
    }
}

fn failed() -> Outcome {
    Outcome::Failed {
        code: Some("30003".into()),
        message: "unreachable handset".into(),
    }
}

async fn outreach_count(app: &App, campaign: Uuid) -> usize {
    store(app)
        .list_outreaches(campaign, None, herald_core::Page::default())
        .await
        .unwrap()
        .items
        .len()
}

fn csv_part(bytes: Vec<u8>, name: &str) -> reqwest::multipart::Part {
    reqwest::multipart::Part::bytes(bytes)
        .file_name(name.to_string())
        .mime_str("text/csv")
        .unwrap()
}

// ---------------------------------------------------------------- the tests

async fn upload_reports_bad_rows_and_refuses_bad_files((app, _outbox): (App, tempfile::TempDir)) {
    let c = campaign(&app, 1).await;
    store(&app)
        .add_suppression("+14155552603", None, "asked by phone")
        .await
        .unwrap();
    let admin = sign_in(&app, Role::Admin).await;
    let new = format!("/campaigns/{}/outreaches/new", c.id);
    let post = format!("/campaigns/{}/outreaches", c.id);

    let form = admin.page(&new).await;
    assert!(form.contains("enctype=\"multipart/form-data\""), "{form}");
    assert!(
        form.contains("hx-encoding=\"multipart/form-data\""),
        "{form}"
    );
    assert!(form.contains("id=\"upload-progress\""), "{form}");
    assert_eq!(input_value(&form, "timezone_of_times"), "Europe/Paris");

    // Five rows: three good (one of them on the opt-out list), one bad number, one duplicate.
    let csv = "phone,first_name\n+14155552601,Ann\nnot a number,Bob\n+14155552602,Cy\n\
               +14155552601,Ann again\n+14155552603,Di\n";
    let upload = reqwest::multipart::Form::new()
        .text("csrf", admin.csrf.clone())
        .part("file", csv_part(csv.as_bytes().to_vec(), "late.csv"))
        .text("start_at", "2030-01-07T09:30")
        .text("end_at", "")
        .text("timezone_of_times", "");
    let res = admin.post_multipart(&post, upload, &[]).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let path = res.location().to_string();
    let id = Uuid::parse_str(path.strip_prefix("/outreaches/").unwrap()).unwrap();
    let stored = store(&app).get_outreach(id).await.unwrap();
    // 09:30 in Paris in January is 08:30 UTC.
    assert_eq!(
        stored.start_at,
        "2030-01-07T08:30:00Z".parse::<Timestamp>().unwrap()
    );
    assert_eq!(stored.file_name, "late.csv");

    let page = admin.page(&path).await;
    assert_eq!(text_of(&page, "summary-accepted").as_deref(), Some("3"));
    assert_eq!(text_of(&page, "summary-invalid").as_deref(), Some("1"));
    assert_eq!(text_of(&page, "summary-duplicates").as_deref(), Some("1"));
    assert_eq!(text_of(&page, "summary-suppressed").as_deref(), Some("1"));
    assert_eq!(text_of(&page, "status").as_deref(), Some("Scheduled"));
    assert_eq!(text_of(&page, "progress").as_deref(), Some("0/3 sent"));
    assert!(
        page.contains(&format!(
            "id=\"errors-csv\" href=\"/outreaches/{id}/errors.csv\""
        )),
        "{page}"
    );
    let report = admin.get(&format!("/outreaches/{id}/errors.csv")).await;
    assert_eq!(report.status, StatusCode::OK);
    assert!(
        report.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let mut lines = report.body.lines();
    assert_eq!(lines.next(), Some("line,column,value,reason"));
    let row = lines.next().expect("one error row");
    assert!(row.starts_with("3,phone,not a number,"), "{row}");
    let row = lines.next().expect("the duplicate is reported too");
    assert!(row.starts_with("5,phone,"), "{row}");
    assert!(row.contains("duplicate of line 2"), "{row}");
    assert_eq!(lines.next(), None);

    // htmx sends the token as a header and wants HX-Redirect rather than a 303.
    let upload = reqwest::multipart::Form::new().part(
        "file",
        csv_part(b"phone,first_name\n+14155552611,Eve\n".to_vec(), "one.csv"),
    );
    let res = admin
        .post_multipart(
            &post,
            upload,
            &[("hx-request", "true"), ("x-csrf-token", &admin.csrf)],
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    let target = res.headers["hx-redirect"].to_str().unwrap();
    assert!(target.starts_with("/outreaches/"), "{target}");
    assert_eq!(outreach_count(&app, c.id).await, 2);

    // A file that is not UTF-8 is read as Windows-1252, and the page says so.
    let upload = reqwest::multipart::Form::new()
        .text("csrf", admin.csrf.clone())
        .part(
            "file",
            csv_part(
                b"phone,first_name\n+14155552651,Ren\xe9\n".to_vec(),
                "latin.csv",
            ),
        );
    let res = admin.post_multipart(&post, upload, &[]).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let latin = admin.page(res.location()).await;
    assert_eq!(
        text_of(&latin, "summary-encoding").as_deref(),
        Some("windows-1252")
    );
    assert!(
        text_of(&latin, "encoding-note")
            .unwrap()
            .contains("not UTF-8")
    );
    assert!(
        !latin.contains("id=\"errors-csv\""),
        "no invalid rows, no report"
    );
    assert_eq!(outreach_count(&app, c.id).await, 3);

    // Refused files: the form again with the reason, 422, nothing stored.
    let big = {
        let mut s = String::from("phone,first_name\n");
        while s.len() as u64 <= MAX_BYTES {
            s.push_str("+14155552699,Someone with a rather long name\n");
        }
        s.into_bytes()
    };
    let refused: Vec<(Vec<u8>, &str)> = vec![
        (
            b"customer,first_name\n+14155552621,Fay\n".to_vec(),
            "column “phone” is missing",
        ),
        (
            vec![0u8, 159, 146, 150, 0, 1, 2, 3, 0, 0, 255, 254, 0, 0],
            "not a CSV file",
        ),
        (big, "larger than the limit"),
    ];
    for (bytes, needle) in refused {
        let upload = reqwest::multipart::Form::new()
            .text("csrf", admin.csrf.clone())
            .part("file", csv_part(bytes, "bad.csv"))
            .text("start_at", "2030-01-07T09:30");
        let res = admin.post_multipart(&post, upload, &[]).await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", res.body);
        let reason = text_of(&res.body, "file-error").expect("a reason next to the file");
        assert!(reason.contains(needle), "{reason}");
        assert!(res.body.contains("id=\"upload-form\""), "the form again");
        assert_eq!(
            input_value(&res.body, "start_at"),
            "2030-01-07T09:30",
            "the submitted values are kept"
        );
    }
    assert_eq!(outreach_count(&app, c.id).await, 3, "nothing was stored");

    // Field errors without a file problem.
    let upload = reqwest::multipart::Form::new()
        .text("csrf", admin.csrf.clone())
        .part("file", csv_part(b"phone\n+14155552631\n".to_vec(), "x.csv"))
        .text("start_at", "2030-01-07T09:30")
        .text("end_at", "2030-01-07T08:00")
        .text("timezone_of_times", "Europe/Paris");
    let res = admin.post_multipart(&post, upload, &[]).await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", res.body);
    assert!(text_of(&res.body, "end_at-error").is_some(), "{}", res.body);
    let upload = reqwest::multipart::Form::new()
        .text("csrf", admin.csrf.clone())
        .part("file", csv_part(b"phone\n+14155552631\n".to_vec(), "x.csv"))
        .text("timezone_of_times", "Mars/Olympus");
    let res = admin.post_multipart(&post, upload, &[]).await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", res.body);
    assert!(
        text_of(&res.body, "timezone_of_times-error")
            .unwrap()
            .contains("Mars/Olympus")
    );

    // Without the CSRF token (or with another session's), nothing is imported.
    let good = || csv_part(b"phone\n+14155552641\n".to_vec(), "ok.csv");
    let res = admin
        .post_multipart(
            &post,
            reqwest::multipart::Form::new().part("file", good()),
            &[],
        )
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    let other = sign_in(&app, Role::Admin).await;
    let res = admin
        .post_multipart(
            &post,
            reqwest::multipart::Form::new()
                .text("csrf", other.csrf.clone())
                .part("file", good()),
            &[],
        )
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert_eq!(outreach_count(&app, c.id).await, 3);

    // Agents read outreaches but do not upload.
    let agent = sign_in(&app, Role::Agent).await;
    assert_eq!(agent.get(&new).await.status, StatusCode::FORBIDDEN);
    let res = agent
        .post_multipart(
            &post,
            reqwest::multipart::Form::new()
                .text("csrf", agent.csrf.clone())
                .part("file", good()),
            &[],
        )
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert_eq!(outreach_count(&app, c.id).await, 3);
    let page = agent.page(&path).await;
    assert_eq!(text_of(&page, "summary-accepted").as_deref(), Some("3"));
    assert!(!page.contains("id=\"stop-form\""), "agents cannot stop");

    // Signed out: to the sign-in page.
    let anonymous = Browser::new(&app.base);
    let res = anonymous.get(&path).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert!(res.location().starts_with("/login"), "{}", res.location());
}

async fn outreach_tabs_list_by_status_with_progress((app, _outbox): (App, tempfile::TempDir)) {
    let c = campaign(&app, 2).await;
    let running = api_outreach(
        &app,
        c.id,
        "running.csv",
        "phone,first_name\n+14155552701,A\n+14155552702,B\n+14155552703,C\n",
    )
    .await;
    send(&app, running, vec![sent()]).await;
    let waiting = api_outreach(
        &app,
        c.id,
        "waiting.csv",
        "phone,first_name\n+14155552711,A\n+14155552712,B\n",
    )
    .await;
    let stopped = api_outreach(
        &app,
        c.id,
        "stopped.csv",
        "phone,first_name\n+14155552721,A\n",
    )
    .await;
    store(&app)
        .stop_outreach(stopped, Timestamp::now())
        .await
        .unwrap();

    let agent = sign_in(&app, Role::Agent).await;
    let section = format!("/campaigns/{}/outreaches-section", c.id);

    // In Progress is the default while an outreach runs.
    let html = agent.page(&section).await;
    let table = element(&html, "outreaches");
    let row = element(table, &format!("outreach-{running}"));
    assert!(row.contains("<td class=\"num\">1/3</td>"), "{row}");
    assert!(
        row.contains("running.csv") && row.contains("In Progress"),
        "{row}"
    );
    assert!(
        row.contains(&format!("href=\"/outreaches/{running}\"")),
        "{row}"
    );
    let created = store(&app).get_outreach(running).await.unwrap().created_at;
    let paris = TimeZone::get("Europe/Paris").unwrap();
    let shown = created
        .to_zoned_datetime(paris)
        .strftime("%Y-%m-%d %H:%M %Z")
        .to_string();
    assert!(
        row.contains(&shown),
        "Created On in the campaign's zone: {row}"
    );
    assert!(!table.contains(&waiting.to_string()));
    assert!(!table.contains(&stopped.to_string()));
    for (key, label) in [
        ("scheduled", "Scheduled"),
        ("in_progress", "In Progress"),
        ("completed", "Completed"),
        ("stopped", "Stopped"),
    ] {
        assert!(
            html.contains(&format!(
                "href=\"/campaigns/{}?status={key}\" hx-get=\"/campaigns/{}/outreaches-section?status={key}\"",
                c.id, c.id
            )),
            "{html}"
        );
        assert!(html.contains(&format!(">{label}</a>")), "{html}");
    }
    assert!(
        html.contains("aria-current=\"page\">In Progress</a>"),
        "{html}"
    );

    let html = agent.page(&format!("{section}?status=scheduled")).await;
    let table = element(&html, "outreaches");
    let row = element(table, &format!("outreach-{waiting}"));
    assert!(row.contains("<td class=\"num\">0/2</td>"), "{row}");
    assert!(!table.contains(&running.to_string()));
    assert!(
        html.contains("aria-current=\"page\">Scheduled</a>"),
        "{html}"
    );

    let html = agent.page(&format!("{section}?status=stopped")).await;
    let row = element(&html, &format!("outreach-{stopped}"));
    assert!(
        row.contains("<td class=\"num\">0/1</td>") && row.contains("Stopped"),
        "{row}"
    );

    let html = agent.page(&format!("{section}?status=completed")).await;
    let table = element(&html, "outreaches");
    assert!(!table.contains("id=\"outreach-"), "{table}");

    // Without a running outreach, Scheduled is the default.
    store(&app)
        .stop_outreach(running, Timestamp::now())
        .await
        .unwrap();
    let html = agent.page(&section).await;
    assert!(
        html.contains(&format!("id=\"outreach-{waiting}\"")),
        "{html}"
    );

    // The CSV template of the campaign: its contact column, timezone, then its variables.
    let res = agent
        .get(&format!("/campaigns/{}/template.csv", c.id))
        .await;
    assert_eq!(res.status, StatusCode::OK);
    assert!(
        res.headers["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment;")
    );
    let mut lines = res.body.lines();
    assert_eq!(lines.next(), Some("phone,timezone,first_name"));
    let example = lines.next().unwrap();
    assert!(
        example.starts_with("+1") && example.contains(",Europe/Paris,"),
        "{example}"
    );
    assert_eq!(lines.next(), None);
}

async fn stopping_needs_an_admin_and_the_csrf_token((app, _outbox): (App, tempfile::TempDir)) {
    let c = campaign(&app, 3).await;
    let id = api_outreach(&app, c.id, "list.csv", "phone,first_name\n+14155552801,A\n").await;
    let stop = format!("/outreaches/{id}/stop");
    let page_path = format!("/outreaches/{id}");

    let agent = sign_in(&app, Role::Agent).await;
    let res = agent.post(&stop, &[]).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);

    let admin = sign_in(&app, Role::Admin).await;
    let page = admin.page(&page_path).await;
    let form = element(&page, "stop-form");
    assert!(form.contains(&format!("action=\"{stop}\"")), "{form}");
    assert!(
        form.contains("data-confirm=\"Stop this outreach? It cannot be restarted.\""),
        "{form}"
    );
    assert!(form.contains(&admin.csrf), "{form}");

    let res = admin.post_raw(&stop, &[]).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    let res = admin.post_raw(&stop, &[("csrf", "forged")]).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert_eq!(
        store(&app).get_outreach(id).await.unwrap().status.as_str(),
        "scheduled",
        "nothing changed without the token"
    );

    let res = admin.post(&stop, &[]).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert_eq!(res.location(), page_path);
    assert_eq!(
        store(&app).get_outreach(id).await.unwrap().status.as_str(),
        "stopped"
    );
    let page = admin.page(&page_path).await;
    assert_eq!(text_of(&page, "status").as_deref(), Some("Stopped"));
    assert!(
        !page.contains("id=\"stop-form\""),
        "a stopped outreach has no stop button"
    );
    assert!(
        !page.contains("data-events-url"),
        "a final outreach has nothing to follow"
    );

    // Stopping again is refused in words, not with a 500.
    let res = admin.post(&stop, &[]).await;
    assert_eq!(res.status, StatusCode::CONFLICT);
    assert!(
        text_of(&res.body, "problem")
            .unwrap()
            .contains("already stopped"),
        "{}",
        res.body
    );
    let unknown = admin.get(&format!("/outreaches/{}", Uuid::now_v7())).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}

async fn recipients_are_filtered_by_state_and_escaped((app, _outbox): (App, tempfile::TempDir)) {
    let c = campaign(&app, 4).await;
    let id = api_outreach(
        &app,
        c.id,
        "xss.csv",
        "phone,first_name\n+14155552901,<script>alert(1)</script>\n+14155552902,Bo\n\
         +14155552903,Cy\n",
    )
    .await;
    send(&app, id, vec![sent(), failed()]).await;
    let path = format!("/outreaches/{id}/recipients");

    let agent = sign_in(&app, Role::Agent).await;
    let html = agent.page(&path).await;
    let table = element(&html, "recipients");
    assert!(
        table.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
        "the variable is shown, escaped: {table}"
    );
    assert!(!html.contains("<script>alert"), "{html}");
    assert!(table.contains(">first_name</th>"), "{table}");
    for phone in ["+14155552901", "+14155552902", "+14155552903"] {
        assert!(table.contains(phone), "{table}");
    }
    assert!(!html.contains("id=\"retry-failed\""), "agents cannot retry");
    // The export, for a signed-in user: the whole list, or the state the page shows.
    assert!(html.contains(&format!("href=\"{path}.csv\"")), "{html}");
    let csv = agent.get(&format!("{path}.csv")).await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(csv.body.starts_with("line,address,state,"), "{}", csv.body);
    assert_eq!(csv.body.lines().count(), 4, "{}", csv.body);
    assert!(csv.body.contains("+14155552902,failed,"), "{}", csv.body);
    let failed_page = agent.page(&format!("{path}?state=failed")).await;
    assert!(failed_page.contains(&format!("href=\"{path}.csv?state=failed\"")));
    for state in ["pending", "sent", "failed", "skipped", "delivered"] {
        assert!(
            html.contains(&format!("href=\"{path}?state={state}\"")),
            "{html}"
        );
    }

    let html = agent.page(&format!("{path}?state=failed")).await;
    let table = element(&html, "recipients");
    assert!(table.contains("+14155552902"), "{table}");
    assert!(table.contains("30003: unreachable handset"), "{table}");
    assert!(!table.contains("+14155552901") && !table.contains("+14155552903"));

    let html = agent.page(&format!("{path}?state=sent")).await;
    let table = element(&html, "recipients");
    assert!(table.contains("+14155552901"), "{table}");
    assert!(!table.contains("+14155552902") && !table.contains("+14155552903"));

    let html = agent.page(&format!("{path}?state=delivered")).await;
    assert!(!element(&html, "recipients").contains("+1415555290"));

    let bad = agent.get(&format!("{path}?state=lost")).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);

    // Fifty recipients a page, and a link to the next.
    let mut csv = String::from("phone,first_name\n");
    for i in 0..52 {
        csv.push_str(&format!("+1415555{},N{i}\n", 4000 + i));
    }
    let long = api_outreach(&app, c.id, "long.csv", &csv).await;
    let html = agent
        .page(&format!("/outreaches/{long}/recipients?state=pending"))
        .await;
    let table = element(&html, "recipients");
    assert_eq!(table.matches("<tr id=\"recipient-").count(), 50);
    assert!(table.contains("+14155554000") && !table.contains("+14155554050"));
    let next = element(&html, "next-page");
    let href = &next[next.find("href=\"").unwrap() + 6..];
    let href = href[..href.find('"').unwrap()]
        .replace("&#38;", "&")
        .replace("&amp;", "&");
    assert!(href.contains("state=pending"), "{href}");
    let html = agent.page(&href).await;
    let table = element(&html, "recipients");
    assert_eq!(table.matches("<tr id=\"recipient-").count(), 2);
    assert!(table.contains("+14155554050") && table.contains("+14155554051"));
    assert!(!html.contains("id=\"next-page\""), "the last page");

    // Retrying the failed: admins only, with the token.
    let retry = format!("/outreaches/{id}/retry-failed");
    let res = agent.post(&retry, &[]).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    let admin = sign_in(&app, Role::Admin).await;
    let html = admin.page(&path).await;
    assert!(html.contains("id=\"retry-failed\""), "{html}");
    let res = admin.post_raw(&retry, &[]).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    let res = admin.post(&retry, &[]).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let failed_now = store(&app)
        .list_recipients(
            id,
            Some(herald_core::outreach::DeliveryState::Failed),
            0,
            10,
        )
        .await
        .unwrap();
    assert!(
        failed_now.is_empty(),
        "the failed recipient is queued again"
    );
    let html = admin.page(res.location()).await;
    assert!(
        text_of(&html, "notice")
            .unwrap()
            .contains("1 failed recipient"),
        "{html}"
    );
}

async fn uncertain_recipients_are_shown_and_requeued_only_when_confirmed(
    (app, _outbox): (App, tempfile::TempDir),
) {
    let c = campaign(&app, 5).await;
    let id = api_outreach(
        &app,
        c.id,
        "crash.csv",
        "phone,first_name\n+14155552911,Al\n+14155552912,Bo\n+14155552913,Cy\n",
    )
    .await;
    let cut_short = Outcome::Unknown {
        code: Some("lease_expired".into()),
        message: "Herald stopped while sending".into(),
    };
    send(&app, id, vec![cut_short.clone(), sent(), cut_short]).await;

    // The outreach page counts them apart from the sent, and links to them.
    let admin = sign_in(&app, Role::Admin).await;
    let html = admin.page(&format!("/outreaches/{id}")).await;
    assert_eq!(text_of(&html, "uncertain").as_deref(), Some("2"), "{html}");
    assert!(
        text_of(&html, "progress").unwrap().contains("1/3"),
        "{html}"
    );

    let path = format!("/outreaches/{id}/recipients");
    let agent = sign_in(&app, Role::Agent).await;
    assert!(!agent.page(&path).await.contains("id=\"requeue-uncertain\""));
    let html = admin.page(&format!("{path}?state=unknown")).await;
    let table = element(&html, "recipients");
    assert!(
        table.contains("+14155552911") && table.contains("+14155552913"),
        "{table}"
    );
    assert!(table.contains("Uncertain"), "{table}");
    assert!(html.contains("id=\"requeue-uncertain\""), "{html}");
    assert!(html.contains("name=\"may_send_twice\""), "{html}");

    // Without the box ticked nothing is queued, and the page says why.
    let requeue = format!("/outreaches/{id}/requeue-uncertain");
    let res = admin.post(&requeue, &[]).await;
    assert!(res.status.is_client_error(), "{}", res.status);
    assert!(
        text_of(&res.body, "error")
            .unwrap()
            .contains("tick the box"),
        "{}",
        res.body
    );
    let unknown = Some(herald_core::outreach::DeliveryState::Unknown);
    assert_eq!(
        store(&app)
            .list_recipients(id, unknown, 0, 10)
            .await
            .unwrap()
            .len(),
        2
    );
    let res = agent.post(&requeue, &[("may_send_twice", "yes")]).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);

    let res = admin.post(&requeue, &[("may_send_twice", "yes")]).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert!(
        store(&app)
            .list_recipients(id, unknown, 0, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let html = admin.page(res.location()).await;
    assert!(
        text_of(&html, "notice")
            .unwrap()
            .contains("2 uncertain recipients"),
        "{html}"
    );
}

async fn a_completed_outreach_says_what_failed_and_offers_the_retry(
    (app, _outbox): (App, tempfile::TempDir),
) {
    let c = campaign(&app, 6).await;
    let id = api_outreach(
        &app,
        c.id,
        "few.csv",
        "phone,first_name\n+14155552921,Al\n+14155552922,Bo\n+14155552923,Cy\n",
    )
    .await;
    send(&app, id, vec![failed(), sent(), failed()]).await;
    assert!(
        store(&app)
            .complete_outreach(id, Timestamp::now())
            .await
            .unwrap()
    );
    let page = format!("/outreaches/{id}");
    let admin = sign_in(&app, Role::Admin).await;
    let html = admin.page(&page).await;
    assert_eq!(
        text_of(&html, "status").as_deref(),
        Some("Completed — 2 failed"),
        "{html}"
    );
    assert!(html.contains("id=\"retry-failed-here\""), "{html}");
    let agent = sign_in(&app, Role::Agent).await;
    let html = agent.page(&page).await;
    assert!(
        !html.contains("id=\"retry-failed-here\""),
        "agents cannot retry"
    );
    // The campaign's list says it too.
    let list = agent
        .page(&format!("/campaigns/{}?status=completed", c.id))
        .await;
    assert!(list.contains("Completed — 2 failed"), "{list}");
    // The retry from the outreach page queues them again.
    let res = admin
        .post(&format!("/outreaches/{id}/retry-failed"), &[])
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let html = admin.page(&page).await;
    assert_eq!(text_of(&html, "status").as_deref(), Some("In Progress"));
}

/// An outreach whose campaign opens only three days from now says when sending opens and why
/// each recipient waits; opening the schedule wider releases them at once.
async fn a_waiting_outreach_says_when_and_why_and_a_saved_schedule_releases_it(
    (app, _outbox): (App, tempfile::TempDir),
) {
    let now = Timestamp::now();
    let day = now.to_zoned_datetime(TimeZone::UTC).date() + jiff::ToSpan::days(3);
    let opens = TimeZone::UTC
        .to_ambiguous_timestamp(day.at(9, 0, 0, 0))
        .compatible()
        .unwrap();
    let weekday = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        [day.weekday().to_monday_zero_offset() as usize];
    let narrow = json!({"timezone": "UTC", "days": {weekday: ["09:00-17:00"]}});
    let c = campaign_with(&app, 7, narrow).await;
    let id = api_outreach(
        &app,
        c.id,
        "later.csv",
        "phone,first_name\n+14155552931,Al\n+14155552932,Bo\n",
    )
    .await;
    // The dispatcher defers both to the window (as it does: tested in herald-engine).
    let defer = Outcome::Defer { due_at: opens };
    send(&app, id, vec![defer.clone(), defer]).await;

    let admin = sign_in(&app, Role::Admin).await;
    let html = admin.page(&format!("/outreaches/{id}")).await;
    let note = text_of(&html, "opens").unwrap_or_else(|| panic!("no opening time: {html}"));
    let shown = opens
        .to_zoned_datetime(TimeZone::UTC)
        .strftime("%a 09:00 UTC")
        .to_string();
    let days = (opens.as_second() - now.as_second()) / 86_400;
    assert!(
        note.starts_with(&format!("Sending opens {shown}, in {days} d ")),
        "{note}"
    );
    // (The apostrophe is escaped in the HTML.)
    assert!(
        note.contains("(outside the campaign") && note.ends_with("sending hours)."),
        "{note}"
    );
    let list = admin.page(&format!("/outreaches/{id}/recipients")).await;
    let until = format!("Waits until {} 09:00 UTC (outside", day);
    assert_eq!(list.matches(&until).count(), 2, "{list}");

    // Open every day, all day, without quiet hours: both are due at once, and the page stops
    // saying it waits.
    let wide = json!({"timezone": "UTC", "days": {"mon": ["00:00-24:00"], "tue": ["00:00-24:00"],
        "wed": ["00:00-24:00"], "thu": ["00:00-24:00"], "fri": ["00:00-24:00"],
        "sat": ["00:00-24:00"], "sun": ["00:00-24:00"]}});
    let mut body = campaign_body(7, &json!(c.sender_id), &json!(c.answer_id), &wide);
    // Quiet hours off too, or at night they would still hold the texts back (and say so).
    body["quiet_hours"] = json!(false);
    let (st, v) = app
        .admin(
            reqwest::Method::PUT,
            &format!("/api/v1/campaigns/{}", c.id),
            Some(body),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let after = Timestamp::now();
    let rows = store(&app).list_recipients(id, None, 0, 10).await.unwrap();
    assert_eq!(rows.len(), 2);
    for r in &rows {
        assert!(r.due_at.is_some_and(|d| d <= after), "{r:?}");
    }
    let html = admin.page(&format!("/outreaches/{id}")).await;
    assert_eq!(text_of(&html, "opens"), None, "{html}");
    let list = admin.page(&format!("/outreaches/{id}/recipients")).await;
    assert_eq!(
        list.matches("Due now: waits its turn within the sender")
            .count(),
        2,
        "{list}"
    );
}

/// The outreach page's report: the funnel, sends per hour and failures by code as SVG, the
/// same figures as the API's JSON, and a provider's error text escaped in the chart.
async fn the_report_draws_the_figures_the_api_gives((app, _outbox): (App, tempfile::TempDir)) {
    let c = campaign(&app, 8).await;
    let id = api_outreach(
        &app,
        c.id,
        "report.csv",
        "phone,first_name\n+14155552941,Al\n+14155552942,Bo\n+14155552943,Cy\n+14155552944,Di\n",
    )
    .await;
    let odd = Outcome::Failed {
        code: Some("<b>x</b>".into()),
        message: "odd".into(),
    };
    send(&app, id, vec![sent(), sent(), failed(), odd]).await;
    let (st, r) = app
        .admin(
            reqwest::Method::GET,
            &format!("/api/v1/outreaches/{id}/report"),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{r}");
    assert_eq!(r["progress"]["sent"], 2, "{r}");
    assert_eq!(r["progress"]["failed"], 2, "{r}");
    let codes: Vec<&str> = r["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["reason"].as_str().unwrap())
        .collect();
    assert_eq!(codes, vec!["30003", "<b>x</b>"], "{r}");
    assert_eq!(r["sent_per_hour"].as_array().unwrap().len(), 1, "{r}");
    assert_eq!(r["sent_per_hour"][0]["sent"], 2, "{r}");

    let agent = sign_in(&app, Role::Agent).await;
    let html = agent.page(&format!("/outreaches/{id}")).await;
    for chart in ["funnel-chart", "hours-chart", "failures-chart"] {
        assert!(
            html.contains(&format!("id=\"{chart}\"><svg")),
            "{chart}: {html}"
        );
    }
    assert!(
        !html.contains("id=\"skipped-chart\""),
        "nothing was skipped"
    );
    assert!(html.contains("&lt;b&gt;x&lt;/b&gt;"), "{html}");
    assert!(!html.contains("<b>x</b>"), "{html}");
    assert_eq!(text_of(&html, "reply-rate").as_deref(), Some("0.0%"));
    assert_eq!(text_of(&html, "median-reply").as_deref(), Some("—"));

    // The campaign's figures: a second outreach adds to them.
    let second = api_outreach(
        &app,
        c.id,
        "=HYPERLINK.csv",
        "phone,first_name\n+14155552945,Ed\n",
    )
    .await;
    send(&app, second, vec![sent()]).await;
    let (st, r) = app
        .admin(
            reqwest::Method::GET,
            &format!("/api/v1/campaigns/{}/report", c.id),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{r}");
    assert_eq!(
        (
            &r["progress"]["total"],
            &r["progress"]["sent"],
            &r["progress"]["failed"]
        ),
        (&json!(5), &json!(3), &json!(2)),
        "{r}"
    );
    let html = agent.page(&format!("/campaigns/{}", c.id)).await;
    assert!(html.contains("id=\"campaign-funnel\"><svg"), "{html}");
    let csv = agent
        .page(&format!("/campaigns/{}/figures.csv", c.id))
        .await;
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 4, "{csv}");
    assert!(
        lines[0].starts_with("outreach,file,created_at,status,recipients,sent"),
        "{csv}"
    );
    assert!(lines[1].starts_with(&format!("{id},report.csv,")), "{csv}");
    assert!(lines[1].ends_with(",4,2,0,0,0,2,0,0,0,0.0,0.0"), "{csv}");
    assert!(
        lines[2].contains(",'=HYPERLINK.csv,"),
        "a formula cell is neutralized: {csv}"
    );
    assert_eq!(lines[3], "total,,,,5,3,0,0,0,2,0,0,0,0.0,0.0", "{csv}");
}

/// Reads the stream until a `progress` event with this label arrives (or fails after 10 s).
async fn next_progress(res: &mut reqwest::Response, buf: &mut String, label: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        while let Some(end) = buf.find("\n\n") {
            let event: String = buf.drain(..end + 2).collect();
            if !event.contains("event: progress") {
                continue;
            }
            let data = event
                .lines()
                .find_map(|l| l.strip_prefix("data:"))
                .expect("data");
            let v: Value = serde_json::from_str(data.trim()).unwrap();
            if v["label"] == label {
                return v;
            }
        }
        let chunk = tokio::time::timeout_at(deadline, res.chunk())
            .await
            .unwrap_or_else(|_| panic!("no progress {label} in time; got {buf:?}"))
            .unwrap();
        match chunk {
            Some(bytes) => buf.push_str(&String::from_utf8_lossy(&bytes)),
            None => panic!("the stream ended before progress {label}"),
        }
    }
}

async fn the_event_stream_follows_the_progress((app, _outbox): (App, tempfile::TempDir)) {
    let c = campaign(&app, 5).await;
    let id = api_outreach(
        &app,
        c.id,
        "live.csv",
        "phone,first_name\n+14155553001,A\n+14155553002,B\n",
    )
    .await;
    let events = format!("/outreaches/{id}/events");

    // Signed out: no stream.
    let anonymous = Browser::new(&app.base);
    assert_eq!(anonymous.get(&events).await.status, StatusCode::SEE_OTHER);

    let agent = sign_in(&app, Role::Agent).await;
    let page = agent.page(&format!("/outreaches/{id}")).await;
    assert!(
        page.contains(&format!("data-events-url=\"{events}\"")),
        "{page}"
    );
    let mut res = agent
        .request(reqwest::Method::GET, &events)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut buf = String::new();
    let first = next_progress(&mut res, &mut buf, "0/2").await;
    assert_eq!(first["status"], "scheduled");
    assert_eq!(first["id"], id.to_string());

    send(&app, id, vec![sent()]).await;
    let second = next_progress(&mut res, &mut buf, "1/2").await;
    assert_eq!(second["status"], "in_progress");

    store(&app)
        .stop_outreach(id, Timestamp::now())
        .await
        .unwrap();
    let last = next_progress(&mut res, &mut buf, "1/2").await;
    assert_eq!(last["status"], "stopped");
    let end = tokio::time::timeout(Duration::from_secs(10), res.chunk())
        .await
        .expect("the stream ends once the outreach is final")
        .unwrap();
    assert!(
        end.is_none() || buf.is_empty(),
        "nothing after the final event"
    );

    let unknown = agent
        .get(&format!("/outreaches/{}/events", Uuid::now_v7()))
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}

async fn the_inbox_shows_conversations_and_refuses_opted_out_customers(
    (app, _outbox): (App, tempfile::TempDir),
) {
    let c = campaign(&app, 6).await;
    let sender = store(&app).get_sender(c.sender_id).await.unwrap();
    let customer = "+14155553101";
    let now = Timestamp::now();
    let received = store(&app)
        .receive_message(&InboundMessage {
            sender_id: c.sender_id,
            from: customer.into(),
            to: sender.address.to_string(),
            subject: None,
            body: "Is my order <b>late</b>?".into(),
            provider_message_id: Some("SMin1".into()),
            received_at: now,
            attribute_since: now - SignedDuration::from_hours(24 * 7),
            in_reply_to: None,
            unverified_sender: false,
        })
        .await
        .unwrap();
    let conversation = received.conversation.id;
    let path = format!("/conversations/{conversation}");

    let agent = sign_in(&app, Role::Agent).await;
    for list in ["/inbox".to_string(), format!("/inbox/{}", c.inbox_id)] {
        let html = agent.page(&list).await;
        let ul = element(&html, "conversations");
        assert!(ul.contains(customer), "{list}: {ul}");
        assert!(ul.contains(&format!("href=\"{path}\"")), "{list}: {ul}");
    }

    let html = agent.page(&path).await;
    let timeline = element(&html, "timeline");
    assert!(timeline.contains("<li class=\"inbound\">"), "{timeline}");
    assert!(
        timeline.contains("Is my order &#60;b&#62;late&#60;/b&#62;?"),
        "the body is escaped: {timeline}"
    );
    assert!(!html.contains("id=\"opted-out\""));
    let form = element(&html, "reply-form");
    assert!(form.contains(&format!("action=\"{path}/reply\"")), "{form}");
    assert!(!form.contains("disabled"), "{form}");

    // A reply needs the token; with it, it is sent and lands on the timeline.
    let reply = format!("{path}/reply");
    let res = agent.post_raw(&reply, &[("body", "We are on it.")]).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    let res = agent.post(&reply, &[("body", "We are on it.")]).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let html = agent.page(&path).await;
    let timeline = element(&html, "timeline");
    assert!(
        timeline.contains("<li class=\"outbound\">") && timeline.contains("We are on it."),
        "{timeline}"
    );

    // An empty reply is an error next to the box, not a 500.
    let res = agent.post(&reply, &[("body", "  ")]).await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(text_of(&res.body, "body-error").is_some(), "{}", res.body);

    // Opted out: said on the page, the box disabled, and a posted reply refused above the form.
    store(&app)
        .add_suppression(customer, Some(c.sender_id), "replied STOP")
        .await
        .unwrap();
    let html = agent.page(&path).await;
    let why = text_of(&html, "opted-out").expect("the opt-out is explained");
    assert!(why.contains("replied STOP"), "{why}");
    assert!(why.contains("START"), "{why}");
    let form = element(&html, "reply-form");
    let textarea = &form[form.find("<textarea").unwrap()..];
    let textarea = &textarea[..textarea.find('>').unwrap()];
    assert!(textarea.contains("id=\"reply-body\""), "{textarea}");
    assert!(textarea.contains(" disabled"), "{textarea}");
    let res = agent.post(&reply, &[("body", "Still there?")]).await;
    assert_eq!(res.status, StatusCode::CONFLICT, "{}", res.body);
    let error = text_of(&res.body, "reply-error").expect("the refusal above the form");
    assert!(error.contains("opted out"), "{error}");
    let messages = store(&app)
        .conversation_messages(conversation, None, 100)
        .await
        .unwrap();
    assert!(
        !messages.iter().any(|m| m.body.contains("Still there?")),
        "nothing was sent"
    );
    assert_eq!(messages.len(), 2);

    // A provider that does not take the message: said above the form, not a 500.
    let twilio = app
        .create(
            "/api/v1/senders",
            json!({"channel": "sms", "address": "+14155550190", "provider": "twilio",
                   "inbox_id": c.inbox_id}),
        )
        .await;
    let twilio_id = Uuid::parse_str(twilio["id"].as_str().unwrap()).unwrap();
    let other = store(&app)
        .receive_message(&InboundMessage {
            sender_id: twilio_id,
            from: "+14155553102".into(),
            to: "+14155550190".into(),
            subject: None,
            body: "Hello?".into(),
            provider_message_id: Some("SMin2".into()),
            received_at: Timestamp::now(),
            attribute_since: now - SignedDuration::from_hours(24 * 7),
            in_reply_to: None,
            unverified_sender: false,
        })
        .await
        .unwrap();
    let res = agent
        .post(
            &format!("/conversations/{}/reply", other.conversation.id),
            &[("body", "Hi there")],
        )
        .await;
    assert_eq!(res.status, StatusCode::BAD_GATEWAY, "{}", res.body);
    let error = text_of(&res.body, "reply-error").expect("the refusal above the form");
    assert!(error.contains("not sent"), "{error}");
    assert!(
        res.body.contains(">Hi there</textarea>"),
        "the draft is kept: {}",
        res.body
    );
    let html = agent.page("/inbox").await;
    let ul = element(&html, "conversations");
    let (newer, older) = (ul.find("+14155553102").unwrap(), ul.find(customer).unwrap());
    assert!(newer < older, "the most recent conversation first: {ul}");
}

/// The upload form offers the country that numbers without a country code are read in, the
/// sender's by default; `+` numbers are read with their own country's rules whatever it says.
async fn the_upload_form_reads_national_numbers_in_the_chosen_region(
    (app, _outbox): (App, tempfile::TempDir),
) {
    let c = campaign(&app, 7).await;
    let admin = sign_in(&app, Role::Admin).await;
    let form = admin
        .page(&format!("/campaigns/{}/outreaches/new", c.id))
        .await;
    assert!(form.contains("<select id=\"default_region\""), "{form}");
    assert!(
        form.contains("<option value=\"US\" selected>US (+1)</option>"),
        "the sender's country is chosen: {form}"
    );
    assert!(
        form.contains("<option value=\"DE\">DE (+49)</option>"),
        "{form}"
    );

    let post = format!("/campaigns/{}/outreaches", c.id);
    let csv = "phone,first_name\n030 901820,Ann\n+86 139 1234 5678,Li\n(415) 555-2671,Sam\n";
    let upload = |region: &str| {
        reqwest::multipart::Form::new()
            .text("csrf", admin.csrf.clone())
            .part("file", csv_part(csv.as_bytes().to_vec(), "mixed.csv"))
            .text("start_at", "2030-01-07T09:30")
            .text("timezone_of_times", "")
            .text("default_region", region.to_string())
    };
    let addresses = |id: Uuid| {
        let app = &app;
        async move {
            let mut all: Vec<String> = store(app)
                .list_recipients(id, None, 0, 100)
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.address)
                .collect();
            all.sort();
            all
        }
    };

    let res = admin.post_multipart(&post, upload("DE"), &[]).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let id = Uuid::parse_str(res.location().strip_prefix("/outreaches/").unwrap()).unwrap();
    // Read in Germany, 030 901820 is Berlin and (415) 555-2671 a German number too.
    assert_eq!(
        addresses(id).await,
        ["+4930901820", "+494155552671", "+8613912345678"]
    );

    let res = admin.post_multipart(&post, upload("US"), &[]).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let id = Uuid::parse_str(res.location().strip_prefix("/outreaches/").unwrap()).unwrap();
    assert_eq!(addresses(id).await, ["+14155552671", "+8613912345678"]);

    // No choice: the sender number's country (US).
    let res = admin.post_multipart(&post, upload(""), &[]).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let id = Uuid::parse_str(res.location().strip_prefix("/outreaches/").unwrap()).unwrap();
    assert_eq!(addresses(id).await, ["+14155552671", "+8613912345678"]);
}
