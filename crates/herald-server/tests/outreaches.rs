//! Uploading recipient lists through the HTTP API, with the fixture files of every dialect,
//! encoding and error case, against SQLite and PostgreSQL.

mod common;

use common::{App, has_error};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../herald-import/tests/fixtures"
);

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}/{name}")).unwrap_or_else(|e| panic!("{name}: {e}"))
}

struct Campaigns {
    sms: String,
    email: String,
    chat: String,
    sms_sender: String,
}

/// An SMS, an email and a chat campaign whose answers use `{{ first_name }}`.
async fn campaigns(app: &App) -> Campaigns {
    let inbox = app.create("/api/v1/inboxes", json!({"name": "Care"})).await;
    let sms_sender = app
        .create(
            "/api/v1/senders",
            json!({"channel": "sms", "address": "+14155550100", "inbox_id": inbox["id"]}),
        )
        .await;
    let email_sender = app
        .create(
            "/api/v1/senders",
            json!({"channel": "email", "address": "care@shop.example.com", "inbox_id": inbox["id"]}),
        )
        .await;
    let answer = app
        .create(
            "/api/v1/answers",
            json!({"name": "Delay", "variants": [{"language": "en", "subject": "Your order",
                   "body": "Hi {{ first_name }}, your order is late."}]}),
        )
        .await;
    let schedule = json!({"timezone": "UTC", "days": {"mon": ["00:00-24:00"]}});
    let mut ids = Vec::new();
    for (channel, sender) in [
        ("sms", Some(&sms_sender)),
        ("email", Some(&email_sender)),
        ("chat", None),
    ] {
        let mut body = json!({"name": format!("Late {channel}"), "channel": channel, "language": "en",
                              "answer_id": answer["id"], "schedule": schedule});
        if let Some(s) = sender {
            body["sender_id"] = s["id"].clone();
        }
        let c = app.create("/api/v1/campaigns", body).await;
        ids.push(c["id"].as_str().unwrap().to_string());
    }
    Campaigns {
        sms: ids[0].clone(),
        email: ids[1].clone(),
        chat: ids[2].clone(),
        sms_sender: sms_sender["id"].as_str().unwrap().to_string(),
    }
}

async fn upload(
    app: &App,
    campaign: &str,
    name: &str,
    bytes: Vec<u8>,
    extra: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(bytes).file_name(name.to_string()),
    );
    for (k, v) in extra {
        form = form.text(k.to_string(), v.to_string());
    }
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
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn errors_csv(app: &App, outreach: &Value) -> String {
    let res = app
        .http
        .get(format!(
            "{}/api/v1/outreaches/{}/errors.csv",
            app.base,
            outreach["id"].as_str().unwrap()
        ))
        .bearer_auth(&app.agent)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    res.text().await.unwrap()
}

async fn outreach_count(app: &App, campaign: &str) -> usize {
    let (s, v) = app
        .admin(
            Method::GET,
            &format!("/api/v1/campaigns/{campaign}/outreaches"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["items"].as_array().unwrap().len()
}

herald_store::on_both_backends!(
    with crate::common::start:
    every_dialect_and_encoding_imports,
    row_errors_are_reported_by_line_and_column,
    duplicates_keep_the_first_row,
    suppressed_addresses_are_kept_but_flagged,
    refused_files_store_nothing,
    limits_refuse_the_upload,
    email_lists_and_times,
);

async fn every_dialect_and_encoding_imports(app: App) {
    let c = campaigns(&app).await;
    for (file, encoding) in [
        ("comma.csv", "utf-8"),
        ("semicolon.csv", "utf-8"),
        ("tab.tsv", "utf-8"),
        ("quoted_newline.csv", "utf-8"),
        ("crlf.csv", "utf-8"),
        ("bom_utf8.csv", "utf-8"),
        ("utf16le.csv", "utf-16le"),
        ("utf16be.csv", "utf-16be"),
        ("windows1252.csv", "windows-1252"),
    ] {
        let (s, o) = upload(&app, &c.sms, file, fixture(file), &[]).await;
        assert_eq!(s, StatusCode::CREATED, "{file}: {o}");
        let sum = &o["summary"];
        assert_eq!(sum["encoding"], encoding, "{file}: {o}");
        assert_eq!(sum["invalid"], 0, "{file}: {o}");
        assert_eq!(sum["accepted"], sum["rows"], "{file}: {o}");
        assert!(sum["accepted"].as_u64().unwrap() >= 2, "{file}: {o}");
        assert_eq!(o["status"], "scheduled");
        assert_eq!(o["file_name"], file);
        // The sender is a US number, so `(415) 555-2672` reads as US without a region.
        assert_eq!(o["default_region"], "US", "{file}");
        let (s, got) = app
            .admin(
                Method::GET,
                &format!("/api/v1/outreaches/{}", o["id"].as_str().unwrap()),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(got, o);
    }
    assert_eq!(outreach_count(&app, &c.sms).await, 9);
    let (_, scheduled) = app
        .admin(
            Method::GET,
            &format!(
                "/api/v1/campaigns/{}/outreaches?status=scheduled&limit=4",
                c.sms
            ),
            None,
        )
        .await;
    assert_eq!(scheduled["items"].as_array().unwrap().len(), 4);
    assert!(scheduled["next_after"].is_string());
    let (_, stopped) = app
        .admin(
            Method::GET,
            &format!("/api/v1/campaigns/{}/outreaches?status=stopped", c.sms),
            None,
        )
        .await;
    assert_eq!(stopped["items"], json!([]));
}

async fn row_errors_are_reported_by_line_and_column(app: App) {
    let c = campaigns(&app).await;
    let (s, o) = upload(
        &app,
        &c.sms,
        "row_errors.csv",
        fixture("row_errors.csv"),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{o}");
    assert_eq!(o["summary"]["rows"], 8, "{o}");
    assert_eq!(o["summary"]["accepted"], 1, "{o}");
    assert_eq!(o["summary"]["invalid"], 7, "{o}");
    let report = errors_csv(&app, &o).await;
    let mut lines = report.lines();
    assert_eq!(lines.next(), Some("line,column,value,reason"));
    let body: Vec<&str> = lines.collect();
    assert!(
        body.iter().any(|l| l.starts_with("2,phone,call me,")),
        "{report}"
    );
    assert!(
        body.iter()
            .any(|l| l.starts_with("4,timezone,Mars/Olympus_Mons,")),
        "{report}"
    );
    assert!(
        body.iter().any(|l| l.starts_with("5,first_name,,")),
        "{report}"
    );
    // Line 7 has a field too many, line 6 one too few.
    assert!(body.iter().any(|l| l.starts_with("6,")), "{report}");
    assert!(body.iter().any(|l| l.starts_with("7,")), "{report}");
    assert!(
        !body.iter().any(|l| l.starts_with("9,")),
        "line 9 is valid: {report}"
    );

    // A cell that a spreadsheet would run as a formula comes back neutralized.
    let csv =
        "phone,first_name\n=HYPERLINK(\"http://evil.example\"),Eve\n+14155552671,Al\n@SUM(1),Mo\n";
    let (s, o) = upload(&app, &c.sms, "formulas.csv", csv.as_bytes().to_vec(), &[]).await;
    assert_eq!(s, StatusCode::CREATED, "{o}");
    let report = errors_csv(&app, &o).await;
    assert!(report.contains("'=HYPERLINK"), "{report}");
    assert!(report.contains("'@SUM(1)"), "{report}");
    assert!(
        !report
            .lines()
            .any(|l| l.split(',').nth(2).is_some_and(|v| v.starts_with('='))),
        "{report}"
    );
}

async fn duplicates_keep_the_first_row(app: App) {
    let c = campaigns(&app).await;
    let csv = "phone,first_name\n+14155552671,First\n(415) 555-2671,Second\n+14155552672,Other\n1-415-555-2671,Third\n";
    let (s, o) = upload(&app, &c.sms, "dups.csv", csv.as_bytes().to_vec(), &[]).await;
    assert_eq!(s, StatusCode::CREATED, "{o}");
    assert_eq!(o["summary"]["accepted"], 2, "{o}");
    assert_eq!(o["summary"]["duplicates"], 2, "{o}");
    let report = errors_csv(&app, &o).await;
    // The report names the normalized number (neutralized: a leading `+` is a formula to a
    // spreadsheet) and the line that won.
    assert!(
        report.contains("3,phone,'+14155552671,duplicate of line 2"),
        "{report}"
    );
    assert!(
        report.contains("5,phone,'+14155552671,duplicate of line 2"),
        "{report}"
    );
    assert!(!report.contains("4,"), "{report}");
}

async fn suppressed_addresses_are_kept_but_flagged(app: App) {
    let c = campaigns(&app).await;
    let sender = uuid::Uuid::parse_str(&c.sms_sender).unwrap();
    app.db
        .store
        .add_suppression("+14155552672", Some(sender), "replied STOP")
        .await
        .unwrap();
    app.db
        .store
        .add_suppression("+14155552673", None, "asked by phone")
        .await
        .unwrap();
    let csv = "phone,first_name\n+14155552671,A\n+14155552672,B\n+14155552673,C\n";
    let (s, o) = upload(&app, &c.sms, "s.csv", csv.as_bytes().to_vec(), &[]).await;
    assert_eq!(s, StatusCode::CREATED, "{o}");
    assert_eq!(o["summary"]["accepted"], 3, "{o}");
    assert_eq!(o["summary"]["suppressed"], 2, "{o}");
}

async fn refused_files_store_nothing(app: App) {
    let c = campaigns(&app).await;
    for (file, bytes, field, needle) in [
        (
            "no_contact.csv",
            fixture("no_contact.csv"),
            "file",
            "column `phone` is missing; found: Tel, Name",
        ),
        ("empty.csv", fixture("empty.csv"), "file", "empty"),
        (
            "nul_bytes.csv",
            fixture("nul_bytes.csv"),
            "file",
            "not a CSV",
        ),
        ("zip.xlsx", fixture("zip.xlsx"), "file", "not a CSV"),
        (
            "header_only.csv",
            fixture("header_only.csv"),
            "file",
            "no recipient rows",
        ),
        (
            "no_name.csv",
            b"phone,last_name\n+14155552671,Doe\n".to_vec(),
            "file",
            "the answer uses the variable `first_name` but the file has no `first_name` column",
        ),
    ] {
        let (s, v) = upload(&app, &c.sms, file, bytes, &[]).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{file}: {v}");
        assert!(has_error(&v, field, needle), "{file}: {v}");
    }
    // An email list for an SMS campaign names the column it lacks.
    let (s, v) = upload(&app, &c.sms, "email.csv", fixture("email.csv"), &[]).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        has_error(
            &v,
            "file",
            "column `phone` is missing; found: Email Address, First Name"
        ),
        "{v}"
    );
    // Chat campaigns take no list.
    let (s, v) = upload(&app, &c.chat, "comma.csv", fixture("comma.csv"), &[]).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(has_error(&v, "campaign", "no recipient list"), "{v}");
    // Bad times and regions.
    let (s, v) = upload(
        &app,
        &c.sms,
        "comma.csv",
        fixture("comma.csv"),
        &[("start_at", "tomorrow")],
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(has_error(&v, "start_at", "RFC 3339"), "{v}");
    let (s, v) = upload(
        &app,
        &c.sms,
        "comma.csv",
        fixture("comma.csv"),
        &[
            ("start_at", "2026-12-01T10:00:00Z"),
            ("end_at", "2026-12-01T09:00:00Z"),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(has_error(&v, "end_at", "not after the start"), "{v}");
    let (s, v) = upload(
        &app,
        &c.sms,
        "comma.csv",
        fixture("comma.csv"),
        &[("default_region", "ZZ")],
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(has_error(&v, "default_region", "ZZ"), "{v}");
    // An unknown campaign.
    let (s, _) = upload(
        &app,
        &uuid::Uuid::now_v7().to_string(),
        "comma.csv",
        fixture("comma.csv"),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    for campaign in [&c.sms, &c.chat] {
        assert_eq!(
            outreach_count(&app, campaign).await,
            0,
            "a refused upload stored something"
        );
    }
}

async fn limits_refuse_the_upload(app: App) {
    let c = campaigns(&app).await;
    // Rebuild the server on the same database with tiny limits.
    let small = common::start_shared(app.db.clone(), |state| {
        state.import_limits.max_bytes = 64;
        state.import_limits.max_rows = 2;
    })
    .await;
    let big = format!(
        "phone,first_name\n{}",
        "+14155552671,Someone with a long name\n".repeat(10)
    );
    let (s, v) = upload(&small, &c.sms, "big.csv", big.into_bytes(), &[]).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        has_error(&v, "file", "larger than the limit of 64 bytes"),
        "{v}"
    );
    let rows = "phone,first_name\n+14155552671,A\n+14155552672,B\n+14155552673,C\n";
    let (s, v) = upload(&small, &c.sms, "rows.csv", rows.as_bytes().to_vec(), &[]).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(has_error(&v, "file", "more than 2 rows"), "{v}");
    assert_eq!(outreach_count(&app, &c.sms).await, 0);
}

async fn email_lists_and_times(app: App) {
    let c = campaigns(&app).await;
    let (s, o) = upload(
        &app,
        &c.email,
        "email.csv",
        fixture("email.csv"),
        &[
            ("start_at", "2026-12-01T09:00:00+01:00"),
            ("end_at", "2026-12-02T17:00:00Z"),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{o}");
    assert_eq!(o["start_at"], "2026-12-01T08:00:00Z");
    assert_eq!(o["end_at"], "2026-12-02T17:00:00Z");
    // Jane twice (domain case folds), root@localhost and "not an email" refused, John kept.
    assert_eq!(o["summary"]["accepted"], 2, "{o}");
    assert_eq!(o["summary"]["duplicates"], 1, "{o}");
    assert_eq!(o["summary"]["invalid"], 2, "{o}");
    assert_eq!(o["default_region"], Value::Null);
    let report = errors_csv(&app, &o).await;
    assert!(report.contains("root@localhost"), "{report}");
}
