//! Running the real `herald` binary from a test: commands, a served instance, stopping it.
#![allow(dead_code)] // each suite uses a part

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub mod outreach;
pub mod pg;
pub mod webdriver;

/// `herald` in `dir` on the database `db`, logging warnings only.
pub fn herald(dir: &Path, db: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_herald"));
    cmd.current_dir(dir)
        .env("HERALD_DATABASE_URL", db)
        .env("RUST_LOG", "warn");
    cmd
}

/// `herald user create --password-stdin`: a user who signs in with `password` (the command must
/// succeed).
pub fn create_user(dir: &Path, db: &str, email: &str, role: &str, password: &str) {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = herald(dir, db)
        .args(["user", "create", "--email", email, "--role", role])
        .arg("--password-stdin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn herald user create");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{password}\n").as_bytes())
        .expect("write the password");
    let out = child.wait_with_output().expect("herald user create");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `herald token create` for an admin token: the token (the command must succeed).
pub fn admin_token(dir: &Path, db: &str) -> String {
    let out = herald(dir, db)
        .args(["token", "create", "--name", "ops", "--role", "admin"])
        .output()
        .expect("token create");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A running `herald serve`; killed if the test fails before it stops it.
pub struct Herald(Option<Child>);

impl Herald {
    /// Takes charge of a `herald serve` started by the test itself.
    pub fn adopt(child: Child) -> Self {
        Self(Some(child))
    }

    /// The process id (to read its memory in /proc).
    pub fn pid(&self) -> u32 {
        self.0.as_ref().expect("running").id()
    }

    fn take(mut self) -> Child {
        self.0.take().expect("running")
    }

    fn signal(child: &Child, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal)
            .expect("signal herald");
    }

    /// SIGTERM; it must exit successfully within 10 s.
    pub fn stop(self) {
        let mut child = self.take();
        Self::signal(&child, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                assert!(
                    status.success(),
                    "herald exited with {status} after SIGTERM"
                );
                return;
            }
            assert!(
                Instant::now() < deadline,
                "herald did not stop within 10s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: dies on the spot, mid-whatever it was doing.
    pub fn kill9(self) {
        let mut child = self.take();
        Self::signal(&child, nix::sys::signal::Signal::SIGKILL);
        child.wait().expect("reap");
    }
}

impl Drop for Herald {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts `herald serve` on a free port; the running instance and its base URL. Its log lines
/// with errors or panics are echoed to the test's output.
pub fn serve(dir: &Path, db: &str) -> (Herald, String) {
    let (herald, base, _) = serve_with(dir, db, &[]);
    (herald, base)
}

/// [`serve`] with more arguments; with `--smtp-bind`, also the address of the SMTP listener.
pub fn serve_with(dir: &Path, db: &str, args: &[&str]) -> (Herald, String, Option<String>) {
    let mut child = herald(dir, db)
        .args(["serve", "--bind", "127.0.0.1:0"])
        .args(args)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn herald serve");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let wants_smtp = args.contains(&"--smtp-bind");
    let (mut base, mut smtp) = (None, None);
    while base.is_none() || (wants_smtp && smtp.is_none()) {
        let line = lines
            .next()
            .expect("herald serve exited before listening")
            .expect("read stderr");
        if let Some(rest) = line.split("listening on ").nth(1) {
            base = Some(rest.split_whitespace().next().unwrap().to_string());
        }
        if let Some(rest) = line.split("over SMTP on ").nth(1) {
            smtp = Some(rest.trim().to_string());
        }
    }
    let base = base.unwrap();
    // Keep draining stderr so the child never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if line.contains("ERROR") || line.contains("panicked") {
                eprintln!("herald: {line}");
            }
        }
    });
    (Herald(Some(child)), base, smtp)
}

/// Starts `herald serve` with `args` (`--bind 127.0.0.1:0` unless they name a `--bind`) and
/// extra environment variables, and reads its stderr and stdout (where the first-admin link
/// goes) until it is listening and, when `wanted` is given, until a line containing `wanted`
/// was printed (before or after listening). Returns
/// the instance, its base URL (the `listening on` address) and every stderr line read so far.
/// Panics with those lines if `timeout` passes or herald exits first. Later lines with errors or
/// panics are echoed to the test's output.
pub fn serve_reading(
    dir: &Path,
    db: &str,
    args: &[&str],
    envs: &[(&str, &str)],
    wanted: Option<&str>,
    timeout: Duration,
) -> (Herald, String, Vec<String>) {
    let mut cmd = herald(dir, db);
    cmd.arg("serve");
    if !args.contains(&"--bind") {
        cmd.args(["--bind", "127.0.0.1:0"]);
    }
    let mut child = cmd
        .args(args)
        .envs(envs.iter().copied())
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn herald serve");
    let stderr = child.stderr.take().expect("stderr");
    let stdout = child.stdout.take().expect("stdout");
    let herald = Herald(Some(child));
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let out_tx = tx.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = out_tx.send(line);
        }
    });
    std::thread::spawn(move || {
        let mut echo = false;
        for mut line in BufReader::new(stderr).lines().map_while(Result::ok) {
            // Once the test stops listening, keep draining so herald never blocks on the pipe.
            if !echo {
                match tx.send(line) {
                    Ok(()) => continue,
                    Err(returned) => (echo, line) = (true, returned.0),
                }
            }
            if line.contains("ERROR") || line.contains("panicked") {
                eprintln!("herald: {line}");
            }
        }
    });
    let deadline = Instant::now() + timeout;
    let (mut base, mut seen, mut lines) = (None, wanted.is_none(), Vec::new());
    while base.is_none() || !seen {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = match rx.recv_timeout(left) {
            Ok(line) => line,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!(
                "herald serve did not print {:?} within {timeout:?}; its stderr so far:\n{}",
                wanted.unwrap_or("listening on"),
                lines.join("\n")
            ),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => panic!(
                "herald serve exited before printing {:?}; its stderr:\n{}",
                wanted.unwrap_or("listening on"),
                lines.join("\n")
            ),
        };
        if let Some(rest) = line.split("listening on ").nth(1) {
            base = rest.split_whitespace().next().map(str::to_string);
        }
        if wanted.is_some_and(|w| line.contains(w)) {
            seen = true;
        }
        lines.push(line);
    }
    drop(rx);
    (herald, base.expect("listening"), lines)
}

/// `application/x-www-form-urlencoded` of the pairs (every byte but ASCII letters and digits
/// percent-encoded).
pub fn form_body(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect::<String>()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The value a response's `Set-Cookie` headers give the cookie `name`, if any.
pub fn set_cookie_value(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next()?.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// The value of the first hidden `csrf` input of a page.
pub fn csrf_of(html: &str) -> String {
    let start = html
        .find("name=\"csrf\" value=\"")
        .unwrap_or_else(|| panic!("no csrf input in {html}"))
        + "name=\"csrf\" value=\"".len();
    html[start..].split('"').next().unwrap().to_string()
}

/// Signs in to the web UI at `base` through `/login` as a browser would; the session cookie
/// (`herald_session=…`) on success, the status of `POST /login` otherwise.
pub async fn web_sign_in(base: &str, email: &str, password: &str) -> Result<String, u16> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = http.get(format!("{base}/login")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let login_csrf = set_cookie_value(&page, "herald_login_csrf").expect("login csrf cookie");
    let csrf = csrf_of(&page.text().await.unwrap());
    let res = http
        .post(format!("{base}/login"))
        .header("cookie", format!("herald_login_csrf={login_csrf}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(&[
            ("email", email),
            ("password", password),
            ("csrf", &csrf),
        ]))
        .send()
        .await
        .unwrap();
    match set_cookie_value(&res, "herald_session") {
        Some(session) if res.status() == 303 => Ok(format!("herald_session={session}")),
        _ => Err(res.status().as_u16()),
    }
}
