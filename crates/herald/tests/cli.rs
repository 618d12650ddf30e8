//! The `herald` binary as a user runs it: migrate, create a token, serve, stop on SIGTERM,
//! create web UI users.

use serde_json::Value;
use std::path::Path;

mod common;

use common::{herald, serve};

async fn walk_through(dir: &Path, db: &str) {
    let out = herald(dir, db).arg("migrate").output().expect("migrate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("up to date"));

    let token = common::admin_token(dir, db);
    assert!(token.starts_with("hrld_") && token.len() == 69, "{token}");
    let out = herald(dir, db)
        .args(["token", "create", "--name", "x", "--role", "owner"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("use admin or agent"));

    let (child, base) = serve(dir, db);
    let http = reqwest::Client::new();
    let health: Value = http
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["database"], "up");
    let res = http
        .post(format!("{base}/api/v1/inboxes"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"name": "Support"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let res = http
        .get(format!("{base}/api/v1/inboxes"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);

    // A campaign, then an outreach from a CSV through the CLI.
    let post = |path: &str, body: Value| {
        let req = http
            .post(format!("{base}/api/v1/{path}"))
            .bearer_auth(&token)
            .json(&body);
        async move {
            let res = req.send().await.unwrap();
            assert_eq!(res.status(), 201);
            res.json::<Value>().await.unwrap()
        }
    };
    let inbox = post("inboxes", serde_json::json!({"name": "Care"})).await;
    let sender = post(
        "senders",
        serde_json::json!({"channel": "sms", "address": "+14155550100", "inbox_id": inbox["id"]}),
    )
    .await;
    let answer = post(
        "answers",
        serde_json::json!({"name": "A", "variants": [{"language": "en", "body": "Hi {{ name }}"}]}),
    )
    .await;
    let campaign = post(
        "campaigns",
        serde_json::json!({"name": "C", "channel": "sms", "sender_id": sender["id"], "language": "en",
               "answer_id": answer["id"], "schedule": {"timezone": "UTC", "days": {"mon": ["09:00-17:00"]}}}),
    )
    .await;
    std::fs::write(
        dir.join("list.csv"),
        "phone,name\n(415) 555-2671,Ann\n+14155552671,Ann again\nnope,Bob\n+442079460958,Cy\n",
    )
    .unwrap();
    let out = herald(dir, db)
        .args([
            "outreach",
            "create",
            "--campaign",
            campaign["id"].as_str().unwrap(),
        ])
        .args(["--csv", "list.csv", "--start", "2026-12-01T09:00:00Z"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("rows 4  accepted 2  invalid 1  duplicates 1  suppressed 0"),
        "{stdout}"
    );
    let outreach_id = stdout.split_whitespace().nth(1).unwrap().to_string();
    let got: Value = http
        .get(format!("{base}/api/v1/outreaches/{outreach_id}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["summary"]["accepted"], 2, "{got}");
    assert_eq!(got["start_at"], "2026-12-01T09:00:00Z");
    // A refused file: a clear message and a failing exit code.
    std::fs::write(dir.join("bad.csv"), "Tel,Name\n+14155552671,Ann\n").unwrap();
    let out = herald(dir, db)
        .args([
            "outreach",
            "create",
            "--campaign",
            campaign["id"].as_str().unwrap(),
            "--csv",
            "bad.csv",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("column `phone` is missing; found: Tel, Name"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    child.stop();

    // The data outlives the process.
    let (child, base) = serve(dir, db);
    let list: Value = http
        .get(format!("{base}/api/v1/inboxes"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"][0]["name"], "Support");
    child.stop();
}

#[tokio::test]
async fn sqlite_default_file_in_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    walk_through(dir.path(), "sqlite://herald.db").await;
    assert!(
        dir.path().join("herald.db").exists(),
        "the database file is created where Herald runs"
    );
}

#[tokio::test]
async fn postgres() {
    let Some(db) = herald_store::testing::postgres().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    walk_through(dir.path(), &db.url).await;
}

#[test]
fn an_unknown_database_scheme_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let out = herald(dir.path(), "mysql://root@localhost/herald")
        .arg("migrate")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("mysql://"), "{err}");
}

#[test]
fn serve_takes_email_replies_over_smtp_only_when_asked() {
    use std::io::{BufRead, BufReader, Write};
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("herald.db").display());
    let (herald, _, smtp) = common::serve_with(dir.path(), &db, &["--smtp-bind", "127.0.0.1:0"]);
    let smtp = smtp.expect("the SMTP listener's address is printed");
    let stream = std::net::TcpStream::connect(&smtp).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    let mut reply = |command: Option<&str>| -> String {
        if let Some(c) = command {
            writer.write_all(format!("{c}\r\n").as_bytes()).unwrap();
        }
        // The last line of a reply has a space after the code.
        let mut last = String::new();
        loop {
            last.clear();
            reader.read_line(&mut last).unwrap();
            if last.len() < 4 || last.as_bytes()[3] == b' ' {
                return last;
            }
        }
    };
    assert!(reply(None).starts_with("220 "), "greeting");
    assert!(reply(Some("EHLO test.example")).starts_with("250 "));
    assert!(reply(Some("MAIL FROM:<ada@example.com>")).starts_with("250"));
    // No email sender is at this domain: refused at once, nothing stored.
    let refused = reply(Some("RCPT TO:<nobody@shop.example>"));
    assert!(refused.starts_with("550"), "{refused}");
    assert!(reply(Some("QUIT")).starts_with("221"));
    herald.stop();

    let (herald, _, smtp) = common::serve_with(dir.path(), &db, &[]);
    assert!(smtp.is_none(), "SMTP is off by default");
    herald.stop();
}

/// `herald user create` with the password on stdin: the output and whether it succeeded.
fn user_create_stdin(
    dir: &Path,
    db: &str,
    email: &str,
    role: &str,
    password: &str,
) -> (bool, String) {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = herald(dir, db)
        .args([
            "user",
            "create",
            "--email",
            email,
            "--role",
            role,
            "--password-stdin",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn herald user create");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The `/setup/TOKEN` path of a printed link, checking the token is 64 hex characters.
fn setup_path(link: &str) -> String {
    let token = link.rsplit("/setup/").next().unwrap().trim();
    assert!(
        token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit()),
        "{link}"
    );
    format!("/setup/{token}")
}

#[tokio::test]
async fn web_users_first_admin_link_and_user_create() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let db = format!("sqlite://{}", dir.join("herald.db").display());
    let wait = std::time::Duration::from_secs(30);

    // An empty database: `serve` offers a link to create the first admin, which works.
    let (child, base, lines) =
        common::serve_reading(dir, &db, &[], &[], Some("Create the first admin:"), wait);
    let link = lines
        .iter()
        .find_map(|l| l.split("Create the first admin: ").nth(1))
        .unwrap()
        .to_string();
    assert!(
        link.starts_with(&format!("{base}/setup/")),
        "{link} vs {base}"
    );
    let page = reqwest::get(&link).await.unwrap();
    assert_eq!(page.status(), 200);
    child.stop();

    // A user with the password from stdin; the email is kept lower-cased.
    let (ok, out) = user_create_stdin(dir, &db, "Ann@Example.com", "admin", "long enough secret");
    assert!(ok, "{out}");
    assert!(out.contains("Created admin user ann@example.com"), "{out}");
    // The same email again (whatever its case) is refused, clearly.
    let (ok, out) = user_create_stdin(dir, &db, "ann@EXAMPLE.com", "agent", "another long one");
    assert!(!ok);
    assert!(
        out.contains("a user with the email ann@example.com already exists"),
        "{out}"
    );
    // Passwords follow the web UI's rules; roles are admin or agent.
    let (ok, out) = user_create_stdin(dir, &db, "cy@example.com", "agent", "short");
    assert!(!ok);
    assert!(out.contains("at least 10 characters"), "{out}");
    let (ok, out) = user_create_stdin(dir, &db, "cy@example.com", "owner", "long enough secret");
    assert!(!ok);
    assert!(out.contains("use admin or agent"), "{out}");

    // Without --password-stdin: a one-time link for that email and role.
    let out = herald(dir, &db)
        .args([
            "user",
            "create",
            "--email",
            "bob@example.com",
            "--role",
            "agent",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let invite = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Set the password at: "))
        .unwrap_or_else(|| panic!("no link in {stdout}"));
    let invite = setup_path(invite);

    // A user exists now: no first-admin link on the next start.
    let (child, base, lines) = common::serve_reading(dir, &db, &[], &[], None, wait);
    assert!(
        !lines.iter().any(|l| l.contains("Create the first admin")),
        "{lines:?}"
    );
    // The user signs in over HTTP; a wrong password is refused.
    let session = common::web_sign_in(&base, "ann@example.com", "long enough secret")
        .await
        .expect("signed in");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = http
        .get(format!("{base}/campaigns"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("ann@example.com"));
    assert_eq!(
        common::web_sign_in(&base, "ann@example.com", "not the password").await,
        Err(401)
    );
    // The invitation shows bob's email, fixed.
    let page = reqwest::get(format!("{base}{invite}")).await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains(r#"value="bob@example.com""#) && html.contains("readonly"),
        "{html}"
    );
    child.stop();
}

/// `herald token create` and `herald user create` are written in the audit log, by the command
/// line (no client address); an email whose account is deactivated is not invited again.
#[tokio::test]
#[allow(clippy::disallowed_methods)] // the deactivation is made at the real time
async fn command_line_changes_are_in_the_audit_log() {
    use herald_store::{Actor, AuditContext, UserChange};
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("herald.db").display());
    let _token = common::admin_token(dir.path(), &db);
    let out = herald(dir.path(), &db)
        .args([
            "user",
            "create",
            "--email",
            "eve@example.com",
            "--role",
            "agent",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let store = herald_store::connect(&db).await.unwrap();
    let page = herald_core::Page::new(None, None).unwrap();
    let log: Vec<String> = store
        .list_audit(page)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|e| {
            format!(
                "{} {} by {} {}{}",
                e.action,
                e.subject,
                e.actor_kind,
                e.actor,
                e.client_addr
                    .map(|a| format!(" from {a}"))
                    .unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(
        log,
        [
            "user.invited eve@example.com by cli herald (command line)",
            "token.created ops by cli herald (command line)",
        ]
    );

    let cy = store
        .create_user("cy@example.com", herald_core::Role::Agent, "not a hash")
        .await
        .unwrap();
    let ctx = AuditContext {
        actor: Actor::Cli,
        client_addr: None,
        at: jiff::Timestamp::now(),
    };
    let change = UserChange {
        role: None,
        active: Some(false),
    };
    store.update_user(cy.id, change, &ctx).await.unwrap();
    let out = herald(dir.path(), &db)
        .args([
            "user",
            "create",
            "--email",
            "cy@example.com",
            "--role",
            "agent",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cy@example.com has an account that is deactivated"),
        "{stderr}"
    );
}
