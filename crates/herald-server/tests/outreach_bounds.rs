//! The attacks of issue #18 on uploads, recipient lists and progress streams, each reproduced at
//! a reduced size against the real router on a real socket, over SQLite and PostgreSQL, showing
//! the bound holding: column and row caps (S4, S12), text fields of the upload form (S11), uploads
//! at once and their temporary bytes, the recipients page of a very wide list (S3), and many
//! progress streams on a large outreach (S5).

#![allow(clippy::disallowed_methods)] // tests set up data relative to the real time

mod common;

use common::web::{Browser, element, sign_in};
use common::{App, has_error};
use herald_core::Role;
use herald_server::limits::OutreachLimits;
use herald_store::{ImportSummary, ImportedRecipient, NewOutreach, Store};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

herald_store::on_both_backends!(
    with crate::common::start:
    too_many_columns_are_refused_and_store_nothing,
    a_huge_header_is_refused_fast,
    long_text_fields_are_refused_without_being_echoed,
    the_recipients_page_of_a_very_wide_list_is_bounded,
    progress_streams_per_caller_are_capped,
);

herald_store::on_both_backends!(
    uploads_at_once_are_capped,
    uploads_together_hold_bounded_temp_space,
    many_progress_streams_share_one_poller,
    a_list_past_dedup_memory_rows_finds_its_repeats_on_disk,
);

fn store(app: &App) -> &dyn Store {
    &*app.db.store
}

/// An SMS campaign whose answer uses `{{ first_name }}`: its id.
async fn campaign(app: &App) -> String {
    app.sms_campaign().await
}

/// A list of `rows` numbers whose header has `columns` columns: `phone`, `first_name`, then
/// `c2`, `c3`... left empty.
fn wide_csv(columns: usize, rows: usize) -> String {
    let mut csv = String::from("phone,first_name");
    for i in 2..columns {
        csv.push_str(&format!(",c{i}"));
    }
    csv.push('\n');
    for r in 0..rows {
        csv.push_str(&format!("+1415555{:04},R{r}", 2600 + r));
        csv.push_str(&",".repeat(columns - 2));
        csv.push('\n');
    }
    csv
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

// ---------------------------------------------------------------- S4, S12: columns and rows

async fn too_many_columns_are_refused_and_store_nothing(app: App) {
    let c = campaign(&app).await;
    // 5,000 columns (S4 was 100k): refused as a whole, naming the cap.
    let (s, v) = app.upload(&c, &wide_csv(5_000, 20), &[]).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        has_error(
            &v,
            "file",
            "more than 1000 columns, the most one upload may have"
        ),
        "{v}"
    );
    // A row over 64 KiB is refused too, naming its line and the cap.
    let long = "y".repeat(70_000);
    let csv = format!("phone,first_name\n+14155552601,Ann\n+14155552602,{long}\n");
    let (s, v) = app.upload(&c, &csv, &[]).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        has_error(
            &v,
            "file",
            "the row starting at line 3 is longer than 64 KiB"
        ),
        "{v}"
    );
    assert_eq!(
        outreach_count(&app, &c).await,
        0,
        "a refused file stores nothing"
    );

    // At the cap the list is taken.
    let (s, v) = app.upload(&c, &wide_csv(1_000, 20), &[]).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["summary"]["accepted"], 20, "{v}");

    // The web form says it next to the file field.
    let admin = sign_in(&app, "admin@example.com", Role::Admin).await;
    let form = reqwest::multipart::Form::new()
        .text("csrf", admin.csrf.clone())
        .part(
            "file",
            reqwest::multipart::Part::bytes(wide_csv(5_000, 20).into_bytes()).file_name("wide.csv"),
        );
    let page = admin
        .post_multipart(&format!("/campaigns/{c}/outreaches"), form, &[])
        .await;
    assert_eq!(
        page.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        page.body
    );
    let error = element(&page.body, "file-error").expect("an error next to the file field");
    assert!(error.contains("more than 1000 columns"), "{error}");
    assert_eq!(outreach_count(&app, &c).await, 1);
}

async fn a_huge_header_is_refused_fast(app: App) {
    let c = campaign(&app).await;
    // 100,000 columns in the header (S12: 140k took 19 s of CPU in the duplicate check).
    let csv = wide_csv(100_000, 3);
    let started = Instant::now();
    let (s, v) = app.upload(&c, &csv, &[]).await;
    let took = started.elapsed();
    eprintln!("a 100,000-column upload was refused in {took:?}");
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(has_error(&v, "file", "more than 1000 columns"), "{v}");
    // Generous for a loaded 2-core machine and a debug build; the quadratic check took seconds
    // even in release.
    assert!(took < Duration::from_secs(5), "refused in {took:?}");
    assert!(v.to_string().len() < 2_000, "the refusal stays short");
    assert_eq!(outreach_count(&app, &c).await, 0);
}

// ---------------------------------------------------------------- S11: text fields

async fn long_text_fields_are_refused_without_being_echoed(app: App) {
    let c = campaign(&app).await;
    let csv = "phone,first_name\n+14155552601,Ann\n";
    // A 1 MB start_at (S11 was 300 MB, answered with 600 MB).
    let huge = "9".repeat(1 << 20);
    let (s, v) = app.upload(&c, csv, &[("start_at", &huge)]).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        has_error(
            &v,
            "start_at",
            "is longer than 4 KiB, the most a text field of this form may have"
        ),
        "{v}"
    );
    assert!(v.to_string().len() < 1_000, "{} bytes", v.to_string().len());
    // A wrong value under the cap is quoted, cut short.
    let wrong = "x".repeat(4_000);
    let (s, v) = app.upload(&c, csv, &[("start_at", &wrong)]).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(has_error(&v, "start_at", "is not an RFC 3339 time"), "{v}");
    assert!(v.to_string().len() < 1_000, "{} bytes", v.to_string().len());
    // An unknown field with a long name is named short.
    let name = "n".repeat(10_000);
    let (s, v) = app.upload(&c, csv, &[(&name, "x")]).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(v.to_string().len() < 1_000, "{} bytes", v.to_string().len());
    assert_eq!(outreach_count(&app, &c).await, 0);

    // The web form: the message next to the field, and a page of ordinary size.
    let admin = sign_in(&app, "admin@example.com", Role::Admin).await;
    for field in ["start_at", "default_region", "something_else"] {
        let form = reqwest::multipart::Form::new()
            .text("csrf", admin.csrf.clone())
            .part(
                "file",
                reqwest::multipart::Part::bytes(csv.as_bytes().to_vec()).file_name("a.csv"),
            )
            .text(field, huge.clone());
        let page = admin
            .post_multipart(&format!("/campaigns/{c}/outreaches"), form, &[])
            .await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{field}");
        // The form's time-zone suggestions are ~15 KB of the page; the 1 MiB value is not.
        assert!(
            page.body.len() < 40_000,
            "{field}: {} bytes",
            page.body.len()
        );
        assert!(
            page.body.contains("is longer than 4 KiB"),
            "{field}: {}",
            page.body
        );
    }
    let page = admin.get(&format!("/campaigns/{c}/outreaches/new")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(outreach_count(&app, &c).await, 0);
}

// ---------------------------------------------------------------- uploads at once

/// An upload sent over a raw connection in two parts, so that it stays in progress between them.
struct SlowUpload {
    conn: tokio::net::TcpStream,
    rest: Vec<u8>,
}

impl SlowUpload {
    /// Sends the request's head and the first `first` bytes of a file field holding `csv`.
    async fn start(app: &App, campaign: &str, csv: &[u8], first: usize) -> SlowUpload {
        let boundary = "herald-test-boundary";
        let mut body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; \
             filename=\"slow.csv\"\r\nContent-Type: text/csv\r\n\r\n"
        )
        .into_bytes();
        let head_len = body.len();
        body.extend_from_slice(csv);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let host = app.base.trim_start_matches("http://");
        let head = format!(
            "POST /api/v1/campaigns/{campaign}/outreaches HTTP/1.1\r\nHost: {host}\r\n\
             Authorization: Bearer {}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            app.admin,
            body.len()
        );
        let mut conn = tokio::net::TcpStream::connect(host).await.unwrap();
        conn.write_all(head.as_bytes()).await.unwrap();
        let rest = body.split_off(head_len + first);
        conn.write_all(&body).await.unwrap();
        conn.flush().await.unwrap();
        SlowUpload { conn, rest }
    }

    /// Sends the rest and reads the answer: its status and body.
    async fn finish(mut self) -> (u16, String) {
        self.conn.write_all(&self.rest).await.unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(60), self.conn.read_to_end(&mut answer))
            .await
            .expect("an answer within 60 s")
            .unwrap();
        let answer = String::from_utf8_lossy(&answer).into_owned();
        let status = answer
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = answer
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    }
}

/// Waits until the server counts `uploads` uploads in progress holding at least `bytes`.
async fn wait_for_uploads(state: &herald_server::AppState, uploads: usize, bytes: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (n, held) = state.uploads_in_progress();
        if n == uploads && held >= bytes {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "uploads in progress: {n} holding {held} bytes"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn start_limited(
    db: herald_store::testing::TestStore,
    limits: OutreachLimits,
) -> (App, herald_server::AppState) {
    let mut state = None;
    let app = common::start_with(db, |s| {
        *s = s.clone().with_outreach_limits(&limits);
        state = Some(s.clone());
    })
    .await;
    (app, state.unwrap())
}

/// `rows` rows of about 20 bytes each.
fn list(rows: usize, from: usize) -> String {
    let mut csv = String::from("phone,first_name\n");
    for i in from..from + rows {
        csv.push_str(&format!("+1415555{:04},Name{i}\n", i % 10_000));
    }
    csv
}

async fn uploads_at_once_are_capped(db: herald_store::testing::TestStore) {
    let limits = OutreachLimits {
        concurrent_uploads: 1,
        ..OutreachLimits::default()
    };
    let (app, state) = start_limited(db, limits).await;
    let c = campaign(&app).await;
    let csv = list(50, 0);
    let slow = SlowUpload::start(&app, &c, csv.as_bytes(), 100).await;
    wait_for_uploads(&state, 1, 100).await;

    // The second upload while the first is in progress: 503, Retry-After, and why.
    let (s, v, h) = upload_with_headers(&app, &c, &list(5, 100)).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(h["content-type"], "application/problem+json");
    assert!(h.contains_key("retry-after"), "{h:?}");
    let detail = v["detail"].as_str().unwrap();
    assert!(
        detail.contains("the most Herald takes at once (`outreaches.concurrent_uploads`)"),
        "{detail}"
    );
    // The web form says it too, next to the file field, with the same status.
    let admin = sign_in(&app, "admin@example.com", Role::Admin).await;
    let page = web_upload(&admin, &c, &list(5, 200)).await;
    assert_eq!(
        page.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        page.body
    );
    assert!(page.headers.contains_key("retry-after"));
    let error = element(&page.body, "file-error").expect("an error next to the file field");
    assert!(error.contains("concurrent_uploads"), "{error}");

    // The first finishes; its place is free again.
    let (status, body) = slow.finish().await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(state.uploads_in_progress(), (0, 0));
    let (s, v) = app.upload(&c, &list(5, 300), &[]).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(outreach_count(&app, &c).await, 2);
}

async fn uploads_together_hold_bounded_temp_space(db: herald_store::testing::TestStore) {
    let limits = OutreachLimits {
        concurrent_uploads: 3,
        upload_temp_bytes: 64 * 1024,
        ..OutreachLimits::default()
    };
    let (app, state) = start_limited(db, limits).await;
    let c = campaign(&app).await;
    // The first upload holds 40 KiB of its 44 KiB.
    let first = list(2_200, 0);
    assert!(first.len() > 42_000, "{}", first.len());
    let slow = SlowUpload::start(&app, &c, first.as_bytes(), 40 * 1024).await;
    wait_for_uploads(&state, 1, 40 * 1024).await;

    // A second one of 40 KiB would make 80 KiB: refused, saying why, and it holds nothing after.
    let (s, v, h) = upload_with_headers(&app, &c, &list(2_000, 5_000)).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert!(h.contains_key("retry-after"), "{h:?}");
    let detail = v["detail"].as_str().unwrap();
    assert!(
        detail.contains("hold the 64 KiB of temporary space Herald allows them"),
        "{detail}"
    );
    wait_for_uploads(&state, 1, 40 * 1024).await;
    assert!(state.uploads_in_progress().1 <= 64 * 1024);

    let (status, body) = slow.finish().await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(state.uploads_in_progress(), (0, 0));
    // With the space given back, the second list goes through.
    let (s, v) = app.upload(&c, &list(2_000, 5_000), &[]).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(outreach_count(&app, &c).await, 2);
}

/// Past `dedup_memory_rows` (3 here, 1,000,000 by default) the repeats are found on disk:
/// the same outreach is stored, the first row of each number kept and every later one reported
/// with that row's line, as a short list gets in memory.
async fn a_list_past_dedup_memory_rows_finds_its_repeats_on_disk(
    db: herald_store::testing::TestStore,
) {
    let limits = OutreachLimits {
        dedup_memory_rows: 3,
        ..OutreachLimits::default()
    };
    let (app, _state) = start_limited(db, limits).await;
    let c = campaign(&app).await;
    // Row i (line i + 2) is number i % 4, written three ways. Row 1 (number 1, line 3) has no
    // first name, which the answer needs: invalid, so never the row a repeat is measured
    // against; number 1's first row is row 5 (line 7).
    let bad = 1;
    let mut csv = String::from("phone,first_name\n");
    for i in 0..12 {
        let n = 2671 + i % 4;
        let phone = match i % 3 {
            0 => format!("+1415555{n}"),
            1 => format!("(415) 555-{n}"),
            _ => format!("1-415-555-{n}"),
        };
        let name = if i == bad {
            String::new()
        } else {
            format!("R{i}")
        };
        csv.push_str(&format!("{phone},{name}\n"));
    }
    let (s, o) = app.upload(&c, &csv, &[]).await;
    assert_eq!(s, StatusCode::CREATED, "{o}");
    assert_eq!(o["summary"]["accepted"], 4, "{o}");
    assert_eq!(o["summary"]["invalid"], 1, "{o}");
    assert_eq!(o["summary"]["duplicates"], 7, "{o}");
    let id = o["id"].as_str().unwrap();
    let (s, v) = app
        .admin(
            Method::GET,
            &format!("/api/v1/outreaches/{id}/recipients"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let kept: Vec<(u64, String, String)> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["line"].as_u64().unwrap(),
                r["address"].as_str().unwrap().to_string(),
                r["variables"]["first_name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    // Numbers 0, 2, 3 keep rows 0, 2, 3; number 1 keeps row 5, its first valid row.
    assert_eq!(
        kept,
        [
            (2, "+14155552671", "R0"),
            (4, "+14155552673", "R2"),
            (5, "+14155552674", "R3"),
            (7, "+14155552672", "R5"),
        ]
        .map(|(l, a, n)| (l, a.to_string(), n.to_string()))
    );
    let (s, report) = app
        .admin(
            Method::GET,
            &format!("/api/v1/outreaches/{id}/errors.csv"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{report}");
    let report = report.as_str().unwrap();
    for (line, first) in [(6, 2), (8, 4), (9, 5), (10, 2), (11, 7), (12, 4), (13, 5)] {
        let number = 2671 + (line - 2) % 4;
        let row = format!("\n{line},phone,'+1415555{number},duplicate of line {first}");
        assert!(report.contains(&row), "no {row:?} in {report}");
    }
    assert_eq!(report.matches("duplicate of line").count(), 7, "{report}");
}

async fn upload_with_headers(
    app: &App,
    campaign: &str,
    csv: &str,
) -> (StatusCode, Value, reqwest::header::HeaderMap) {
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(csv.as_bytes().to_vec()).file_name("list.csv"),
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
        .expect("upload");
    let status = res.status();
    let headers = res.headers().clone();
    let text = res.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
        headers,
    )
}

async fn web_upload(browser: &Browser, campaign: &str, csv: &str) -> common::web::Page {
    let form = reqwest::multipart::Form::new()
        .text("csrf", browser.csrf.clone())
        .part(
            "file",
            reqwest::multipart::Part::bytes(csv.as_bytes().to_vec()).file_name("list.csv"),
        );
    browser
        .post_multipart(&format!("/campaigns/{campaign}/outreaches"), form, &[])
        .await
}

// ---------------------------------------------------------------- S3: the recipients page

/// An outreach written straight to the store, as lists uploaded before the column cap were:
/// `rows` recipients with `columns` variables each. Its id.
async fn stored_outreach(app: &App, campaign: &str, rows: usize, columns: usize) -> Uuid {
    let mut writer = store(app)
        .begin_outreach(&NewOutreach {
            campaign_id: Uuid::parse_str(campaign).unwrap(),
            file_name: "stored.csv".into(),
            start_at: jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24),
            end_at: None,
            default_region: None,
        })
        .await
        .unwrap();
    let id = writer.outreach_id();
    let mut batch = Vec::new();
    for r in 0..rows {
        let mut vars = serde_json::Map::new();
        vars.insert("first_name".into(), Value::String(format!("R{r}")));
        for c in 1..columns {
            vars.insert(format!("c{c}"), Value::String(String::new()));
        }
        batch.push(ImportedRecipient {
            line: r as u64 + 2,
            address: format!("+1415{:07}", 5_000_000 + r),
            raw_address: None,
            timezone: None,
            variables_json: Value::Object(vars).to_string(),
            suppressed: false,
        });
        if batch.len() == 5_000 {
            writer.recipients(&batch).await.unwrap();
            batch.clear();
        }
    }
    writer.recipients(&batch).await.unwrap();
    writer
        .commit(&ImportSummary {
            rows: rows as u64,
            accepted: rows as u64,
            invalid: 0,
            duplicates: 0,
            suppressed: 0,
            encoding: "utf-8".into(),
        })
        .await
        .unwrap();
    id
}

async fn the_recipients_page_of_a_very_wide_list_is_bounded(app: App) {
    let c = campaign(&app).await;
    // 50 recipients (one page) of 20,000 variables each (S3: 11 s a page, /healthz stalled).
    let id = stored_outreach(&app, &c, 50, 20_000).await;
    let agent = sign_in(&app, "agent@example.com", Role::Agent).await;
    let path = format!("/outreaches/{id}/recipients");
    let started = Instant::now();
    let (page, health) = tokio::join!(agent.get(&path), async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let t = Instant::now();
        let res = reqwest::get(format!("{}/healthz", app.base)).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        t.elapsed()
    });
    let took = started.elapsed();
    eprintln!(
        "a recipients page of 50 x 20,000 variables took {took:?}; /healthz meanwhile {health:?}"
    );
    assert_eq!(page.status, StatusCode::OK);
    // Generous bounds for a loaded machine and a debug build; most of this is reading 50 rows
    // of 20,000 variables from the database.
    assert!(took < Duration::from_secs(10), "the page took {took:?}");
    assert!(health < Duration::from_secs(2), "/healthz took {health:?}");
    let table = element(&page.body, "recipients").expect("the table");
    let head = &table[..table.find("</thead>").unwrap()];
    assert_eq!(
        head.matches("<th scope=\"col\">").count(),
        6 + 100,
        "100 variables shown"
    );
    let note = element(&page.body, "hidden-columns").expect("a note on the hidden columns");
    assert!(note.contains("19900 more"), "{note}");
    assert!(page.body.len() < 1_000_000, "{} bytes", page.body.len());
    assert_eq!(page.body.matches("<tr id=\"recipient-").count(), 50);
}

// ---------------------------------------------------------------- S5: progress streams

/// A Server-Sent Events stream read from a live response.
struct Events {
    res: reqwest::Response,
    buf: Vec<u8>,
}

impl Events {
    async fn open(http: &reqwest::Client, base: &str, token: &str, id: Uuid) -> Events {
        let res = http
            .get(format!("{base}/api/v1/outreaches/{id}/events"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        Events {
            res,
            buf: Vec::new(),
        }
    }

    /// The next event's data (comments skipped).
    async fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(end) = self.buf.windows(2).position(|w| w == b"\n\n") {
                let frame = String::from_utf8(self.buf.drain(..end + 2).collect()).unwrap();
                let data: String = frame
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(str::trim_start)
                    .collect();
                if data.is_empty() {
                    continue;
                }
                return Some(serde_json::from_str(&data).unwrap());
            }
            let chunk = tokio::time::timeout(Duration::from_secs(30), self.res.chunk())
                .await
                .expect("no event within 30 s")
                .expect("the stream broke")?;
            self.buf.extend_from_slice(&chunk);
        }
    }
}

async fn progress_streams_per_caller_are_capped(app: App) {
    let c = campaign(&app).await;
    let id = stored_outreach(&app, &c, 3, 2).await;
    let http = reqwest::Client::new();
    let mut open = Vec::new();
    for _ in 0..OutreachLimits::DEFAULT_EVENT_STREAMS_PER_CALLER {
        let mut e = Events::open(&http, &app.base, &app.agent, id).await;
        assert_eq!(e.next().await.unwrap()["status"], "scheduled");
        open.push(e);
    }
    let (s, v, h) = app
        .call(
            Some(&app.agent),
            Method::GET,
            &format!("/api/v1/outreaches/{id}/events"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{v}");
    assert_eq!(h["content-type"], "application/problem+json");
    assert_eq!(
        v["detail"],
        "token `test-agent` has 10 progress streams open, the most one caller may have \
         (`outreaches.event_streams_per_caller`); close one first"
    );
    // Another caller is not affected.
    let mut other = Events::open(&http, &app.base, &app.admin, id).await;
    assert_eq!(other.next().await.unwrap()["status"], "scheduled");

    // A stream the client closes gives its place back.
    drop(open.pop());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let res = http
            .get(format!("{}/api/v1/outreaches/{id}/events", app.base))
            .bearer_auth(&app.agent)
            .send()
            .await
            .unwrap();
        if res.status() == StatusCode::OK {
            break;
        }
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(Instant::now() < deadline, "the closed stream still counts");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A web user's streams are capped the same way.
    let user = sign_in(&app, "agent@example.com", Role::Agent).await;
    let mut web = Vec::new();
    for _ in 0..OutreachLimits::DEFAULT_EVENT_STREAMS_PER_CALLER {
        let res = user
            .request(Method::GET, &format!("/outreaches/{id}/events"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        web.push(res);
    }
    let page = user.get(&format!("/outreaches/{id}/events")).await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS, "{}", page.body);
    assert!(
        page.body
            .contains("user `agent@example.com` has 10 progress streams open"),
        "{}",
        page.body
    );
}

async fn many_progress_streams_share_one_poller(db: herald_store::testing::TestStore) {
    const STREAMS: usize = 500;
    let interval = Duration::from_millis(200);
    let mut state = None;
    let app = common::start_with(db, |s| {
        *s = s.clone().with_outreach_limits(&OutreachLimits {
            event_streams_per_caller: STREAMS,
            ..OutreachLimits::default()
        });
        s.events_interval = interval;
        state = Some(s.clone());
    })
    .await;
    let state = state.unwrap();
    let c = campaign(&app).await;
    // 20,000 recipients (S5: 1,000 streams on 200,000 recipients kept both cores busy).
    let id = stored_outreach(&app, &c, 20_000, 3).await;

    let http = reqwest::Client::new();
    let mut streams = Vec::with_capacity(STREAMS);
    for chunk in 0..STREAMS / 50 {
        let opened = futures_util::future::join_all((0..50).map(|_| async {
            let mut e = Events::open(&http, &app.base, &app.agent, id).await;
            let first = e.next().await.unwrap();
            assert_eq!(first["label"], "0/20000", "{first}");
            e
        }))
        .await;
        streams.extend(opened);
        assert_eq!(streams.len(), (chunk + 1) * 50);
    }

    // With every stream open, other calls stay fast, and the store is read once per interval
    // for all of them.
    let polls_before = state.progress_polls();
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    let mut total = Duration::ZERO;
    let calls = 20;
    for _ in 0..calls {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let t = Instant::now();
        let (s, v) = app
            .admin(Method::GET, &format!("/api/v1/campaigns/{c}"), None)
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let res = reqwest::get(format!("{}/healthz", app.base)).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let took = t.elapsed();
        slowest = slowest.max(took);
        total += took;
    }
    let elapsed = started.elapsed();
    let polls = state.progress_polls() - polls_before;
    let ticks = elapsed.as_millis() / interval.as_millis();
    eprintln!(
        "{STREAMS} streams over {elapsed:?}: {polls} reads of the progress ({ticks} intervals); \
         two API calls took {:?} on average, {slowest:?} at most",
        total / calls
    );
    assert!(
        polls as u128 <= ticks + 2,
        "{polls} reads in {ticks} intervals: not one per interval"
    );
    assert!(polls >= 1, "the poller stopped");
    assert!(
        slowest < Duration::from_secs(1),
        "an API call took {slowest:?}"
    );

    // A change still reaches every stream.
    store(&app)
        .start_outreach(id, jiff::Timestamp::now())
        .await
        .unwrap();
    for e in &mut streams {
        let ev = e.next().await.unwrap();
        assert_eq!(ev["status"], "in_progress", "{ev}");
    }
    let (s, v) = app
        .admin(Method::POST, &format!("/api/v1/outreaches/{id}/stop"), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    for e in &mut streams {
        let ev = e.next().await.unwrap();
        assert_eq!(ev["status"], "stopped", "{ev}");
        assert!(
            e.next().await.is_none(),
            "the stream ends with the outreach"
        );
    }
}
