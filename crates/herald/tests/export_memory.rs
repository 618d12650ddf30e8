//! The recipients export of a large outreach is streamed in constant memory, end to end: a real
//! `herald serve` holds an outreach of 100,000 recipients (imported by `herald outreach create`,
//! another process, so the import's memory is not the server's), and the test downloads
//! `GET /api/v1/outreaches/{id}/recipients.csv` while reading the server's peak resident memory
//! (`VmHWM` in `/proc/PID/status`). The export must be whole (every row, in upload order, a cell
//! that would run as a formula neutralized), and the peak must grow by less than
//! [`GROWTH_LIMIT`] over what a 10,000-recipient export already took: a server that held the
//! whole file (about 105 MB here) or its rows would go far past it.

use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};

mod common;

use common::outreach::Api;
use common::serve;

/// Recipients of the large outreach.
const ROWS: usize = 100_000;
/// Recipients of the outreach exported first, to warm the server up to its steady state.
const WARM_UP_ROWS: usize = 10_000;
/// The most the server's peak memory may grow while it sends the large export: a page of the
/// export (1,000 recipients) and its CSV take about 1 MB, and on SQLite each of the 8 reading
/// connections fills its page cache (2 MB by default) as it reads; together about 18 MB, which
/// no size of export changes. The whole export is about 105 MB.
const GROWTH_LIMIT: u64 = 32 << 20;
/// The row whose `note` starts with `=`.
const FORMULA_ROW: usize = 4_242;

/// A list of `n` numbers with a name and a note of about 1,000 characters each; row
/// [`FORMULA_ROW`]'s note is a formula.
fn write_csv(path: &Path, n: usize) {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(out, "phone,name,note").unwrap();
    let filler = "x".repeat(1_000);
    for i in 0..n {
        let note = if i == FORMULA_ROW {
            "=1+2".to_string()
        } else {
            format!("note {i} {filler}")
        };
        writeln!(out, "+1415{:07},Customer {i},{note}", 2_000_000 + i).unwrap();
    }
    out.flush().unwrap();
}

/// A field of `/proc/PID/status` in bytes (`VmHWM`, the peak resident set; `VmRSS`).
fn status_bytes(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let line = status
        .lines()
        .find(|l| l.starts_with(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"));
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("unreadable {line}"));
    kib * 1024
}

/// Resets the process's peak (`VmHWM`) to its current resident set, where the kernel allows it
/// (`/proc/PID/clear_refs`, value 5); the peak to measure from.
fn reset_peak(pid: u32) -> u64 {
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
    status_bytes(pid, "VmHWM")
}

/// What a download of the export was.
struct Export {
    /// Data rows (the header row not counted).
    rows: usize,
    bytes: u64,
    /// The line of the row whose note is a formula.
    formula_line: Option<String>,
    /// Row numbers (`line`) not in upload order.
    out_of_order: usize,
}

/// Downloads the outreach's export a chunk at a time (the test never holds it whole either).
async fn export(api: &Api, base: &str, outreach: &str) -> Export {
    let mut res = api
        .http
        .get(format!(
            "{base}/api/v1/outreaches/{outreach}/recipients.csv"
        ))
        .bearer_auth(&api.token)
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv"),
        "{:?}",
        res.headers()
    );
    // Sent as it is made: no length known in advance.
    assert_eq!(
        res.headers()
            .get("transfer-encoding")
            .map(|v| v.to_str().unwrap()),
        Some("chunked"),
        "{:?}",
        res.headers()
    );
    let mut out = Export {
        rows: 0,
        bytes: 0,
        formula_line: None,
        out_of_order: 0,
    };
    let mut partial: Vec<u8> = Vec::new();
    let mut header: Option<Vec<String>> = None;
    let mut last_line = 0u64;
    while let Some(chunk) = res.chunk().await.unwrap() {
        out.bytes += chunk.len() as u64;
        partial.extend_from_slice(&chunk);
        let Some(end) = partial.iter().rposition(|b| *b == b'\n') else {
            continue;
        };
        let complete: Vec<u8> = partial.drain(..=end).collect();
        for line in String::from_utf8(complete).unwrap().lines() {
            let Some(columns) = &header else {
                header = Some(line.split(',').map(str::to_string).collect());
                continue;
            };
            out.rows += 1;
            let fields: Vec<&str> = line.split(',').collect();
            assert_eq!(fields.len(), columns.len(), "{line}");
            let n: u64 = fields[0].parse().unwrap();
            if n <= last_line {
                out.out_of_order += 1;
            }
            last_line = n;
            if line.contains("=1+2") {
                out.formula_line = Some(line.to_string());
            }
        }
    }
    assert!(partial.is_empty(), "the export ends with a newline");
    let header = header.expect("a header row");
    assert_eq!(header[0], "line");
    assert!(
        header.ends_with(&["name".to_string(), "note".to_string()]),
        "the upload's columns follow Herald's: {header:?}"
    );
    out
}

async fn a_large_export_is_streamed_in_constant_memory(dir: &Path, db: &str) {
    let token = common::admin_token(dir, db);
    let (herald, base) = serve(dir, db);
    let pid = herald.pid();
    let api = Api {
        // Herald closes a keep-alive connection idle for 10 s (`header_read_timeout`); a long
        // import between two calls must not leave the next on a connection being closed.
        http: reqwest::Client::builder()
            .pool_idle_timeout(Duration::from_secs(5))
            .build()
            .expect("client"),
        token,
    };
    let inbox = api.post(&base, "inboxes", json!({"name": "Care"})).await;
    let sender = api
        .post(
            &base,
            "senders",
            json!({"channel": "sms", "address": "+14155550100", "inbox_id": inbox["id"]}),
        )
        .await;
    let answer = api
        .post(
            &base,
            "answers",
            json!({"name": "Late", "variants": [{"language": "en", "body": "Hi {{ name }}"}]}),
        )
        .await;
    let campaign = api
        .post(
            &base,
            "campaigns",
            json!({"name": "Late orders", "channel": "sms", "sender_id": sender["id"],
                   "language": "en", "answer_id": answer["id"],
                   "schedule": {"timezone": "UTC", "days": {"mon": ["00:00-24:00"]}}}),
        )
        .await;
    let campaign = campaign["id"].as_str().unwrap();
    // Imported by the command line, starting in 2099: nothing is sent meanwhile.
    let import = |file: &str, rows: usize| {
        write_csv(&dir.join(file), rows);
        let began = Instant::now();
        let out = common::herald(dir, db)
            .args(["outreach", "create", "--campaign", campaign, "--csv", file])
            .args(["--start", "2099-01-05T00:00:00Z"])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("imported {rows} rows in {:?}", began.elapsed());
        stdout.split_whitespace().nth(1).unwrap().to_string()
    };
    let small = import("small.csv", WARM_UP_ROWS);
    let large = import("large.csv", ROWS);

    let at_start = status_bytes(pid, "VmHWM");
    let began = Instant::now();
    let warm = export(&api, &base, &small).await;
    assert_eq!(warm.rows, WARM_UP_ROWS);
    let after_warm_up = status_bytes(pid, "VmHWM");

    let before = reset_peak(pid);
    let began_large = Instant::now();
    let got = export(&api, &base, &large).await;
    let peak = status_bytes(pid, "VmHWM");
    let growth = peak.saturating_sub(before);
    eprintln!(
        "exports: {} rows in {:?}, then {} rows ({} MB) in {:?}; peak memory {} MB at start, \
         {} MB after the small export, {} MB before the large one, {} MB after it (+{} KB)",
        warm.rows,
        began_large - began,
        got.rows,
        got.bytes >> 20,
        began_large.elapsed(),
        at_start >> 20,
        after_warm_up >> 20,
        before >> 20,
        peak >> 20,
        growth >> 10,
    );

    assert_eq!(got.rows, ROWS, "every recipient is in the export");
    assert_eq!(got.out_of_order, 0, "in upload order");
    assert!(
        got.bytes > 3 * GROWTH_LIMIT,
        "the export ({} bytes) must dwarf the bound to prove anything",
        got.bytes
    );
    let formula = got.formula_line.expect("the formula row");
    assert!(formula.ends_with(",'=1+2"), "neutralized: {formula}");
    assert!(
        formula.starts_with(&format!(
            "{},+1415{:07},",
            FORMULA_ROW + 2,
            2_000_000 + FORMULA_ROW
        )),
        "its line in the file and its number: {formula}"
    );
    assert!(
        growth < GROWTH_LIMIT,
        "the server's peak memory grew by {} KB during an export of {} MB (limit {} KB): the \
         export is not streamed",
        growth >> 10,
        got.bytes >> 20,
        GROWTH_LIMIT >> 10
    );
    herald.stop();
}

#[tokio::test]
async fn sqlite() {
    let dir = tempfile::tempdir().unwrap();
    a_large_export_is_streamed_in_constant_memory(dir.path(), "sqlite://herald.db").await;
}

#[tokio::test]
async fn postgres() {
    let Some(db) = herald_store::testing::postgres().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    a_large_export_is_streamed_in_constant_memory(dir.path(), &db.url).await;
}
