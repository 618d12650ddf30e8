//! docs/deploy.md's nginx configuration, run as written: the block fenced as ```nginx deploy is
//! taken out of the page (only addresses, ports and certificate paths are substituted) and run
//! with Debian's nginx, with a self-signed certificate made by the `openssl` command, in front of
//! two real `herald serve` nodes on one PostgreSQL database. Requests go over HTTPS (HTTP/2)
//! through the `curl` command. A second nginx, with the same block made to buffer and compress
//! event streams (and without the raised body limit), is the
//! control: the checks fail against it, so they can fail.

use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod common;

use common::outreach::Api;
use herald_testkit::FakeTwilio;

/// The host name of the certificate and of `public_url`; curl resolves it to 127.0.0.1.
const HOST: &str = "herald.test";

/// The documented block: ```nginx deploy … ``` in docs/deploy.md.
fn documented_block() -> String {
    let page =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/deploy.md"))
            .expect("docs/deploy.md");
    let mut block = String::new();
    let mut inside = false;
    for line in page.lines() {
        if line.trim() == "```nginx deploy" {
            inside = true;
        } else if inside && line.trim() == "```" {
            break;
        } else if inside {
            block.push_str(line);
            block.push('\n');
        }
    }
    assert!(
        block.contains("upstream herald"),
        "no ```nginx deploy block with an upstream in docs/deploy.md"
    );
    block
}

/// `text` with `from` replaced by `to`; `from` must be there (else the page changed and the
/// test no longer knows what it runs).
fn swap(text: &str, from: &str, to: &str) -> String {
    assert!(
        text.contains(from),
        "docs/deploy.md's nginx block no longer contains {from:?}; update crates/herald/tests/proxy.rs"
    );
    text.replace(from, to)
}

/// Whether `program` runs. Missing under CI=true is a failure.
fn have(program: &str, arg: &str) -> bool {
    let ok = Command::new(program)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "`{program}` is needed by the proxy test and must be installed in CI (.ci/run installs it)"
        );
        eprintln!("`{program}` is not installed; skipping the proxy test");
    }
    ok
}

fn nginx_binary() -> &'static str {
    if Path::new("/usr/sbin/nginx").exists() {
        "/usr/sbin/nginx"
    } else {
        "nginx"
    }
}

/// A port free now for nginx to listen on, below Linux's ephemeral range (32768–60999): a port
/// taken from that range and let go could be handed out again to any socket bound to port 0
/// meanwhile (a Herald node, the fake Twilio), and nginx would then fail to listen while curl
/// reached the other socket.
fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    // Any varying number will do: an ephemeral port, mixed with the process id.
    let ephemeral = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_or(0, |a| u32::from(a.port()));
    let seed = ephemeral.wrapping_mul(40_503) ^ std::process::id().wrapping_mul(2_654_435_761);
    for _ in 0..1000 {
        let n = seed.wrapping_add(NEXT.fetch_add(7_919, Ordering::Relaxed));
        let port = 20_000 + (n % 12_000) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between 20000 and 32000");
}

/// A self-signed certificate for [`HOST`] made with the `openssl` command: (cert, key).
fn certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .args(["-subj", &format!("/CN={HOST}")])
        .args(["-addext", &format!("subjectAltName=DNS:{HOST}")])
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl req failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

/// An nginx process of its own (prefix, pid, logs and temp files in a temp dir), in the
/// foreground; stopped when dropped.
struct Nginx {
    child: Child,
    dir: tempfile::TempDir,
    https: u16,
}

impl Nginx {
    /// Runs `block` (an `http { }` fragment) in front of `nodes`, with TLS on `https`.
    fn start(block: &str, nodes: [&str; 2], cert: &Path, key: &Path, https: u16) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        // Workers run as an unprivileged user when the test runs as root: they need to reach
        // their temp directories.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        for sub in ["logs", "tmp"] {
            std::fs::create_dir(root.join(sub)).unwrap();
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(root.join(sub), std::fs::Permissions::from_mode(0o777))
                    .unwrap();
            }
        }
        let http = free_port();
        let mut conf = swap(
            block,
            "server 10.0.0.11:8080",
            &format!("server {}", nodes[0]),
        );
        conf = swap(
            &conf,
            "server 10.0.0.12:8080",
            &format!("server {}", nodes[1]),
        );
        conf = swap(&conf, "listen 443 ", &format!("listen 127.0.0.1:{https} "));
        conf = swap(&conf, "listen 80;", &format!("listen 127.0.0.1:{http};"));
        conf = swap(
            &conf,
            "/etc/ssl/herald/fullchain.pem",
            cert.to_str().unwrap(),
        );
        conf = swap(&conf, "/etc/ssl/herald/privkey.pem", key.to_str().unwrap());
        conf = swap(
            &conf,
            "server_name herald.example.com;",
            &format!("server_name {HOST};"),
        );
        std::fs::write(root.join("herald.conf"), &conf).unwrap();
        let r = root.display();
        std::fs::write(
            root.join("nginx.conf"),
            format!(
                "daemon off;\nworker_processes 1;\npid {r}/nginx.pid;\nerror_log {r}/logs/error.log warn;\n\
                 events {{ worker_connections 256; }}\n\
                 http {{\n  access_log {r}/logs/access.log;\n  client_body_temp_path {r}/tmp/body;\n  \
                 proxy_temp_path {r}/tmp/proxy;\n  fastcgi_temp_path {r}/tmp/fastcgi;\n  \
                 uwsgi_temp_path {r}/tmp/uwsgi;\n  scgi_temp_path {r}/tmp/scgi;\n  \
                 include {r}/herald.conf;\n}}\n"
            ),
        )
        .unwrap();
        let args = |cmd: &mut Command| {
            cmd.arg("-p")
                .arg(root)
                .arg("-c")
                .arg(root.join("nginx.conf"))
                .arg("-e")
                .arg(root.join("logs/error.log"));
        };
        let mut check = Command::new(nginx_binary());
        args(&mut check);
        let out = check.arg("-t").output().expect("run nginx -t");
        assert!(
            out.status.success(),
            "nginx -t refuses the documented configuration:\n{}\n{conf}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut cmd = Command::new(nginx_binary());
        args(&mut cmd);
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        let nginx = Self { child, dir, https };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", https)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nginx did not listen on {https}: {}",
                nginx.error_log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        nginx
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("logs/error.log")).unwrap_or_default()
    }

    /// `https://herald.test:PORT`.
    fn url(&self) -> String {
        format!("https://{HOST}:{}", self.https)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGQUIT: graceful stop of the master and its worker.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGQUIT,
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `curl` over HTTPS to `nginx`, checking the certificate, HTTP/2 where TLS offers it.
fn curl(nginx: &Nginx, cert: &Path) -> Command {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--http2", "--max-time", "60"])
        .arg("--cacert")
        .arg(cert)
        .arg("--resolve")
        .arg(format!("{HOST}:{}:127.0.0.1", nginx.https));
    cmd
}

/// A finished request: status, HTTP version, response headers (lower-case names) and body.
struct Reply {
    status: u16,
    version: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }

    fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// Runs a curl command built by [`curl`] for `path` with `extra` arguments.
fn request(nginx: &Nginx, cert: &Path, path: &str, extra: &[&str]) -> Reply {
    let dir = tempfile::tempdir().unwrap();
    let headers = dir.path().join("headers");
    let out = curl(nginx, cert)
        .args(extra)
        .arg("-D")
        .arg(&headers)
        .args(["-w", "\n%{http_code} %{http_version}"])
        .arg(format!("{}{path}", nginx.url()))
        .output()
        .expect("run curl");
    // A refused upload may end in a reset stream (curl then fails after the answer came): the
    // status curl saw is what counts; 000 means no answer at all.
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let failed = || {
        format!(
            "curl {path}: no answer ({}): {}{stdout}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let (body, last) = stdout
        .rsplit_once('\n')
        .unwrap_or_else(|| panic!("{}", failed()));
    let (status, version) = last
        .split_once(' ')
        .unwrap_or_else(|| panic!("{}", failed()));
    assert_ne!(status, "000", "{}", failed());
    let headers = std::fs::read_to_string(&headers)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Reply {
        status: status.parse().expect("status"),
        version: version.to_string(),
        headers,
        body: body.to_string(),
    }
}

/// An open event stream read by curl: every output line with when it came.
struct Stream {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Stream {
    fn open(nginx: &Nginx, cert: &Path, token: &str, path: &str) -> Self {
        let mut child = curl(nginx, cert)
            .args(["-N", "-i", "--compressed", "--max-time", "300"])
            .args(["-H", &format!("Authorization: Bearer {token}")])
            .arg(format!("{}{path}", nginx.url()))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run curl");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line.trim_end_matches('\r').to_string()).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Reads what came until `until`, or until a line satisfies `wanted`: whether one did.
    fn read_until(&mut self, until: Instant, wanted: impl Fn(&str) -> bool) -> bool {
        if self.seen.iter().any(|l| wanted(l)) {
            return true;
        }
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let hit = wanted(&line);
                    self.seen.push(line);
                    if hit {
                        return true;
                    }
                }
                Err(_) => return false,
            }
        }
    }

    /// Whether the response is still open (curl still reading it).
    fn open_still(&mut self) -> bool {
        self.child.try_wait().expect("curl").is_none()
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sets up a campaign that sends SMS through Twilio; its id.
async fn campaign(api: &Api, base: &str) -> String {
    let inbox = api.post(base, "inboxes", json!({"name": "Care"})).await;
    let sender = api
        .post(
            base,
            "senders",
            json!({"channel": "sms", "address": "+14155550100", "inbox_id": inbox["id"], "provider": "twilio"}),
        )
        .await;
    let answer = api
        .post(
            base,
            "answers",
            json!({"name": "Late", "variants": [{"language": "en", "body": "Hi {{ name }}, your order is late."}]}),
        )
        .await;
    let days: serde_json::Map<String, Value> = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        .into_iter()
        .map(|d| (d.to_string(), json!(["00:00-24:00"])))
        .collect();
    let campaign = api
        .post(
            base,
            "campaigns",
            json!({"name": "Late orders", "channel": "sms", "sender_id": sender["id"], "language": "en",
                   "answer_id": answer["id"], "quiet_hours": false,
                   "schedule": {"timezone": "UTC", "days": days}}),
        )
        .await;
    campaign["id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_nginx_config_serves_a_two_node_cluster() {
    if !(have(nginx_binary(), "-v") && have("openssl", "version") && have("curl", "--version")) {
        return;
    }
    let Some(pg) = herald_store::testing::postgres().await else {
        return;
    };
    let db = pg.url.clone();
    let block = documented_block();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let (cert, key) = certificate(dir);

    // The public URL must be known before the nodes start, so the proxy's port is chosen now
    // and handed to nginx below.
    let https = free_port();
    let public = format!("https://{HOST}:{https}");
    let twilio = FakeTwilio::builder().start();
    std::fs::write(
        dir.join("herald.toml"),
        format!(
            "[server]\npublic_url = \"{public}\"\nsecret = \"one secret for every node\"\n{}",
            twilio.config_toml()
        ),
    )
    .unwrap();
    let token = common::admin_token(dir, &db);
    let (node_a, base_a) = common::serve(dir, &db);
    let (node_b, base_b) = common::serve(dir, &db);
    let addr = |base: &str| base.trim_start_matches("http://").to_string();
    let nodes = [addr(&base_a), addr(&base_b)];
    let nodes = [nodes[0].as_str(), nodes[1].as_str()];
    let proxy = Nginx::start(&block, nodes, &cert, &key, https);
    // The control: the same block, made to buffer (and to ignore Herald's
    // `X-Accel-Buffering: no`), without the raised body limit.
    let buffering = swap(
        &block,
        "proxy_buffering off;",
        "proxy_buffering on; proxy_ignore_headers X-Accel-Buffering;",
    );
    let buffering = swap(
        &buffering,
        "gzip off;",
        "gzip on; gzip_types text/event-stream; gzip_min_length 0;",
    );
    let buffering = swap(&buffering, "client_max_body_size 1025m;", "");
    let control = Nginx::start(&buffering, nodes, &cert, &key, free_port());

    let api = Api {
        http: reqwest::Client::new(),
        token: token.clone(),
    };
    let campaign = campaign(&api, &base_a).await;
    let auth = format!("Authorization: Bearer {token}");

    // An upload larger than nginx's default body limit (1 MB) passes, over HTTP/2; the control
    // without the raised limit refuses it.
    let mut csv = String::from("phone,name\n");
    let rows = 50_000;
    for i in 0..rows {
        csv.push_str(&format!("+1415{:07},Customer {i}\n", 3_000_000 + i));
    }
    assert!(csv.len() > 1 << 20, "{} bytes", csv.len());
    std::fs::write(dir.join("list.csv"), &csv).unwrap();
    let tomorrow = herald_engine::Clock::now(&herald_engine::SystemClock)
        .checked_add(jiff::SignedDuration::from_hours(24))
        .unwrap();
    let file_arg = format!("file=@{};type=text/csv", dir.join("list.csv").display());
    let start_arg = format!("start_at={tomorrow}");
    let upload_path = format!("/api/v1/campaigns/{campaign}/outreaches");
    let upload_args = ["-H", &auth, "-F", &file_arg, "-F", &start_arg];
    let refused = request(&control, &cert, &upload_path, &upload_args);
    assert_eq!(refused.status, 413, "the control takes a 1 MB+ upload");
    let created = request(&proxy, &cert, &upload_path, &upload_args);
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.version, "2", "HTTP/2 through the proxy");
    let outreach = created.json();
    assert_eq!(outreach["summary"]["accepted"], rows, "{outreach}");
    let outreach = outreach["id"].as_str().unwrap().to_string();

    // The progress stream delivers its first event while the response is open; through the
    // buffering control, no event's data arrives while it is open (nginx may pass on the first
    // few bytes, but an `EventSource` sees an event only once its `data:` lines have come).
    let events = format!("/api/v1/outreaches/{outreach}/events");
    let opened = Instant::now();
    let mut stream = Stream::open(&proxy, &cert, &token, &events);
    let mut held = Stream::open(&control, &cert, &token, &events);
    assert!(
        stream.read_until(opened + Duration::from_secs(15), |l| l.starts_with("data:")
            && l.contains("\"scheduled\"")),
        "no progress event through the proxy within 15 s: {:?}",
        stream.seen
    );
    assert!(
        stream.seen.iter().any(|l| l == "event: progress"),
        "{:?}",
        stream.seen
    );
    assert!(stream.open_still(), "the stream ended: {:?}", stream.seen);
    let delivered_after = opened.elapsed();
    assert!(
        !held.read_until(
            Instant::now() + delivered_after.max(Duration::from_secs(6)),
            |l| l.starts_with("data:")
        ),
        "the buffering control delivered an event's data: {:?}",
        held.seen
    );
    assert!(
        held.open_still(),
        "the control's stream ended (so it proves nothing): {:?}",
        held.seen
    );

    // Links and signatures use the public URL: Twilio signs the URL it posted to, which is the
    // public one; a signature over a node's own address is refused; the TwiML's <Gather>
    // action is a public https link.
    let voice = format!(
        "/webhooks/twilio/voice?campaign_id={campaign}&outreach_id={outreach}&recipient_id=1\
         &language=en&body=Hello&agent=%2B14155550199"
    );
    let params = [
        ("AccountSid", twilio.account_sid().to_string()),
        ("CallSid", format!("CA{}", "0123456789abcdef".repeat(2))),
    ];
    let form = format!("AccountSid={}&CallSid={}", params[0].1, params[1].1);
    let sig = twilio.sign(&format!("{public}{voice}"), &params);
    let answered = request(
        &proxy,
        &cert,
        &voice,
        &["-H", &format!("X-Twilio-Signature: {sig}"), "--data", &form],
    );
    assert_eq!(answered.status, 200, "{}", answered.body);
    assert!(
        answered
            .body
            .contains(&format!("action=\"{public}/webhooks/twilio/voice/gather?")),
        "the TwiML's link is not the public URL: {}",
        answered.body
    );
    let inner_sig = twilio.sign(&format!("{base_a}{voice}"), &params);
    let forged = request(
        &proxy,
        &cert,
        &voice,
        &[
            "-H",
            &format!("X-Twilio-Signature: {inner_sig}"),
            "--data",
            &form,
        ],
    );
    assert_eq!(forged.status, 403, "{}", forged.body);
    // The web UI's cookies are Secure behind https.
    let login = request(&proxy, &cert, "/login", &[]);
    assert_eq!(login.status, 200);
    let cookies = login.header_values("set-cookie");
    assert!(
        !cookies.is_empty() && cookies.iter().all(|c| c.contains("Secure")),
        "{cookies:?}"
    );
    // /metrics is not served through the proxy (each node is scraped at its own address).
    let metrics = request(&proxy, &cert, "/metrics", &["-H", &auth]);
    assert_eq!(metrics.status, 404);

    // The stream is not timed out: Herald's keep-alive comment (every 15 s) comes through and
    // the response stays open.
    assert!(
        stream.read_until(opened + Duration::from_secs(40), |l| l.starts_with(':')),
        "no keep-alive comment came through within 40 s: {:?}",
        stream.seen
    );
    assert!(stream.open_still(), "the stream ended: {:?}", stream.seen);

    // The control held the events back, it did not lose them: once the outreach is final and
    // the stream ends, they all come at once.
    api.post(&base_b, &format!("outreaches/{outreach}/stop"), json!({}))
        .await;
    assert!(
        held.read_until(Instant::now() + Duration::from_secs(20), |l| l
            .contains("\"stopped\"")),
        "{:?}",
        held.seen
    );
    assert!(held.seen.iter().any(|l| l.contains("\"scheduled\"")));
    assert!(
        held.seen.iter().any(|l| l.starts_with("HTTP/2 200")),
        "the control's stream was not answered 200: {:?}",
        held.seen
    );
    drop((stream, held));

    // One node killed with SIGKILL: requests still succeed through the proxy.
    node_a.kill9();
    for i in 0..20 {
        let got = request(
            &proxy,
            &cert,
            &format!("/api/v1/outreaches/{outreach}"),
            &["-H", &auth],
        );
        assert_eq!(got.status, 200, "request {i} after the kill: {}", got.body);
        assert_eq!(got.json()["status"], "stopped");
    }
    let created = request(
        &proxy,
        &cert,
        "/api/v1/inboxes",
        &[
            "-H",
            &auth,
            "-H",
            "Content-Type: application/json",
            "--data",
            "{\"name\": \"After the kill\"}",
        ],
    );
    assert_eq!(created.status, 201, "{}", created.body);
    let ready = request(&proxy, &cert, "/readyz", &[]);
    assert_eq!(ready.status, 200, "{}", ready.body);
    // And nginx did try the dead node, and passed its requests on.
    let log = proxy.error_log();
    assert!(
        log.contains(nodes[0]),
        "nginx logged nothing about the dead node {}: {log}",
        nodes[0]
    );
    node_b.stop();
}
