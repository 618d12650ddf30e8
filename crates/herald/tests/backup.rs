//! `herald backup --to FILE` copies a SQLite database that a running `herald serve` is writing,
//! and the copy is a whole database as it stood at one moment.

use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

mod common;

use common::outreach::{Api, launch};
use common::{herald, serve};

/// Every inbox name in the database at `url`, in creation order.
async fn inbox_names(url: &str) -> Vec<String> {
    let store = herald_store::connect(url).await.expect("open the copy");
    assert_eq!(
        store.pending_migrations().await.expect("migrations"),
        0,
        "the copy holds every migration"
    );
    let mut names = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_inboxes(herald_core::Page::new(Some(500), after).unwrap())
            .await
            .expect("list inboxes");
        names.extend(page.items.iter().map(|i| i.name.clone()));
        match page.next_after {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_sqlite_database_is_copied_whole_while_it_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let db = format!("sqlite://{}", dir.join("herald.db").display());
    let api = Api {
        http: reqwest::Client::new(),
        token: common::admin_token(dir, &db),
    };
    let (node, base) = serve(dir, &db);
    // Some bulk, so the copy takes a moment: a list of 100,000 recipients, which the node then
    // starts sending (more writes while the backup runs).
    let mut csv = String::from("phone,name\n");
    for i in 0..100_000 {
        csv.push_str(&format!("+1415{:07},Customer {i}\n", 2_000_000 + i));
    }
    launch(dir, &db, &base, &api, "sms", "+14155550100", "file", &csv).await;

    // A writer that creates inboxes one after another, as fast as the node takes them; `acked`
    // counts those the node answered 201 for.
    let acked = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (acked, stop, base, http, token) = (
            acked.clone(),
            stop.clone(),
            base.clone(),
            api.http.clone(),
            api.token.clone(),
        );
        tokio::spawn(async move {
            let mut i = 0usize;
            while stop.load(Ordering::SeqCst) == 0 {
                let res = http
                    .post(format!("{base}/api/v1/inboxes"))
                    .bearer_auth(&token)
                    .json(&json!({"name": format!("inbox-{i:06}")}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
                i += 1;
                acked.store(i, Ordering::SeqCst);
            }
        })
    };
    while acked.load(Ordering::SeqCst) < 20 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let before = acked.load(Ordering::SeqCst);
    let out = tokio::task::spawn_blocking({
        let (dir, db) = (dir.to_path_buf(), db.clone());
        move || {
            herald(&dir, &db)
                .args(["backup", "--to", "copy.db"])
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let after = acked.load(Ordering::SeqCst);
    // The writer goes on a little past the backup: the live database moved on.
    while acked.load(Ordering::SeqCst) < after + 20 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.store(1, Ordering::SeqCst);
    writer.await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "herald backup failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("copy.db"), "{stdout}");
    assert!(
        after > before,
        "the node took no write while the backup ran ({before} before, {after} after)"
    );
    let copy = dir.join("copy.db");
    assert!(!dir.join("copy.db.partial").exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&copy).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the copy holds personal data: owner only");
    }

    // The copy opens, and holds the inboxes in a prefix: every one acknowledged before the
    // backup began, none that did not exist when it ended, and no gap (one moment's state).
    let names = inbox_names(&format!("sqlite://{}", copy.display())).await;
    let created: Vec<String> = names
        .iter()
        .filter(|n| n.starts_with("inbox-"))
        .cloned()
        .collect();
    let expected: Vec<String> = (0..created.len())
        .map(|i| format!("inbox-{i:06}"))
        .collect();
    assert_eq!(created, expected, "the copy is no single moment's state");
    assert!(
        (before..=after).contains(&created.len()),
        "the copy has {} inboxes; {before} were acknowledged before the backup and {after} by its end",
        created.len()
    );
    // The live database went on to hold more than the copy.
    node.stop();
    let live = inbox_names(&db).await;
    assert!(
        live.len() > names.len(),
        "{} vs {}",
        live.len(),
        names.len()
    );
    // The copy serves: a node started on it answers with the same admin token.
    let copy_url = format!("sqlite://{}", copy.display());
    let (copy_node, copy_base) = serve(dir, &copy_url);
    let ready = api
        .http
        .get(format!("{copy_base}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let listing = api.get(&copy_base, "inboxes?limit=1").await;
    assert_eq!(listing["items"].as_array().map(Vec::len), Some(1));
    copy_node.stop();
}

#[test]
fn a_backup_never_overwrites_and_points_postgres_to_pg_dump() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let db = format!("sqlite://{}", dir.join("herald.db").display());
    let run = |db: &str, to: &str| {
        let out = herald(dir, db)
            .args(["backup", "--to", to])
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    // No database there: an error, and nothing is created on either side.
    let (ok, err) = run(&db, "copy.db");
    assert!(!ok);
    assert!(err.contains("there is no database at"), "{err}");
    assert!(!dir.join("herald.db").exists() && !dir.join("copy.db").exists());

    let out = herald(dir, &db).arg("migrate").output().unwrap();
    assert!(out.status.success());
    std::fs::write(dir.join("taken.db"), b"keep me").unwrap();
    let (ok, err) = run(&db, "taken.db");
    assert!(!ok);
    assert!(err.contains("exists already"), "{err}");
    assert_eq!(std::fs::read(dir.join("taken.db")).unwrap(), b"keep me");

    let (ok, err) = run("postgres://herald@127.0.0.1:1/herald", "copy.db");
    assert!(!ok);
    assert!(err.contains("pg_dump"), "{err}");

    let (ok, err) = run(&db, "copy.db");
    assert!(ok, "{err}");
}
