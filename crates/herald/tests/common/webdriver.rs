//! Headless Chromium driven over WebDriver (`chromedriver`), shared by the browser suites:
//! finding the tools, a driver in a process group of its own, and a [`Browser`] session with
//! the waits and checks the flows need. Every wait fails with the page's URL, the start of its
//! `<main>` and a screenshot.

use base64::Engine;
use reqwest::Method;
use serde_json::{Value, json};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a page gets to show what a step waits for.
pub const WAIT: Duration = Duration::from_secs(10);
/// The W3C WebDriver key of an element reference.
pub const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// The UUID in `url` right after `prefix`, if any.
pub fn uuid_after(url: &str, prefix: &str) -> Option<uuid::Uuid> {
    let rest = url.split(prefix).nth(1)?;
    let id = rest.split(['/', '?', '#']).next()?;
    id.parse().ok()
}

/// The browser and its driver, found on `PATH` (or named by `CHROME_BIN`, `CHROMEDRIVER`).
pub struct Tools {
    pub chromedriver: PathBuf,
    pub chromium: PathBuf,
}

impl Tools {
    pub fn find() -> Option<Tools> {
        let from_env = |name: &str| std::env::var_os(name).map(PathBuf::from);
        let chromedriver = from_env("CHROMEDRIVER").or_else(|| which("chromedriver"));
        let chromium = from_env("CHROME_BIN").or_else(|| {
            [
                "chromium",
                "chromium-browser",
                "google-chrome",
                "google-chrome-stable",
            ]
            .into_iter()
            .find_map(which)
        });
        match (chromedriver, chromium) {
            (Some(chromedriver), Some(chromium)) => Some(Tools {
                chromedriver,
                chromium,
            }),
            (driver, browser) => {
                let missing = [
                    driver.is_none().then_some("chromedriver"),
                    browser.is_none().then_some("chromium"),
                ]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" and ");
                let why = format!(
                    "the browser test needs chromium and chromedriver on PATH; missing: {missing} \
                     (on Debian: apt-get install chromium chromium-driver)"
                );
                assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
                eprintln!("skipping: {why}");
                None
            }
        }
    }
}

pub fn which(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

/// A running `chromedriver` in a process group of its own: dropping it kills the group (the
/// driver and the browsers it started).
pub struct Driver {
    pub child: Child,
    pub port: u16,
}

impl Driver {
    pub async fn start(tools: &Tools) -> Driver {
        let port = herald_testkit::closed_port();
        let log = Path::new(env!("CARGO_TARGET_TMPDIR")).join("chromedriver.log");
        let child = Command::new(&tools.chromedriver)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", tools.chromedriver.display()));
        let driver = Driver { child, port };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let status = reqwest::get(format!("http://127.0.0.1:{port}/status")).await;
            if let Ok(response) = status
                && let Ok(body) = response.json::<Value>().await
                && body["value"]["ready"] == json!(true)
            {
                return driver;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not answer on port {port} within 20s (log: {})",
                log.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let group = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// A WebDriver error: its `error` code and message.
#[derive(Debug)]
pub struct WdError {
    pub error: String,
    pub message: String,
}

impl std::fmt::Display for WdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error, self.message)
    }
}

/// An element reference.
#[derive(Debug, Clone)]
pub struct El(pub String);

/// Writes a WebDriver screenshot (base64 PNG) as `{name}.png`: into `docs/screenshots` when
/// `HERALD_UPDATE_SCREENSHOTS=1`, else beside the test's build.
fn save_png(name: &str, png: &Value) {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(png.as_str().unwrap_or(""))
        .expect("a base64 screenshot");
    let dir = if std::env::var("HERALD_UPDATE_SCREENSHOTS").as_deref() == Ok("1") {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots")
    } else {
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots")
    };
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.png")), bytes).unwrap();
}

impl El {
    pub fn json(&self) -> Value {
        json!({ ELEMENT: self.0 })
    }
}

/// A headless Chromium session on one Herald, with the helpers the flows need. Every wait
/// fails with the page's URL, the start of its `<main>` and a screenshot.
pub struct Browser {
    pub http: reqwest::Client,
    /// `http://127.0.0.1:{driver port}/session/{id}`.
    pub session: String,
    /// Herald's base URL.
    pub base: String,
    /// JavaScript errors and pages too wide for a phone seen so far, with their page.
    pub problems: Vec<String>,
    pub driver: Driver,
}

impl Browser {
    pub async fn start(tools: &Tools, base: &str) -> Browser {
        let driver = Driver::start(tools).await;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "unhandledPromptBehavior": "ignore",
            "goog:loggingPrefs": {"browser": "ALL"},
            "goog:chromeOptions": {
                "binary": tools.chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,900", "--lang=en-US"],
            },
        }}});
        let response = http
            .post(format!("http://127.0.0.1:{}/session", driver.port))
            .json(&capabilities)
            .send()
            .await
            .expect("chromedriver: new session");
        let body: Value = response.json().await.expect("chromedriver: new session");
        let id = body["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("chromedriver could not start chromium: {body}"))
            .to_string();
        let browser = Browser {
            http,
            session: format!("http://127.0.0.1:{}/session/{id}", driver.port),
            base: base.to_string(),
            problems: Vec::new(),
            driver,
        };
        // The viewport of the screenshots, whatever the window decorations take.
        browser.viewport(1280, 900).await;
        browser
    }

    pub async fn cmd(&self, method: Method, path: &str, body: Value) -> Result<Value, WdError> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.session));
        if method == Method::POST {
            request = request.json(&body);
        }
        let transport = |e: reqwest::Error| WdError {
            error: "transport".into(),
            message: e.to_string(),
        };
        let response = request.send().await.map_err(transport)?;
        let ok = response.status().is_success();
        let body: Value = response.json().await.map_err(transport)?;
        let value = body.get("value").cloned().unwrap_or(Value::Null);
        if ok {
            Ok(value)
        } else {
            Err(WdError {
                error: value["error"].as_str().unwrap_or("unknown").to_string(),
                message: value["message"]
                    .as_str()
                    .unwrap_or("")
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string(),
            })
        }
    }

    /// A command that must succeed.
    pub async fn must(&self, method: Method, path: &str, body: Value) -> Value {
        match self.cmd(method, path, body).await {
            Ok(value) => value,
            Err(e) => self.fail(&format!("WebDriver {path}: {e}")).await,
        }
    }

    /// Panics with `msg` and what the browser shows.
    pub async fn fail<T>(&self, msg: &str) -> T {
        let mut context = String::new();
        if let Ok(text) = self.cmd(Method::GET, "/alert/text", Value::Null).await {
            context.push_str(&format!("\n  an alert is open: {text}"));
        }
        let url = self.cmd(Method::GET, "/url", Value::Null).await;
        context.push_str(&format!(
            "\n  page: {}",
            url.map(|u| u.as_str().unwrap_or("").to_string())
                .unwrap_or_else(|e| e.to_string())
        ));
        let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-failure.png");
        if let Ok(Value::String(png)) = self.cmd(Method::GET, "/screenshot", Value::Null).await
            && let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(png)
            && std::fs::write(&shot, bytes).is_ok()
        {
            context.push_str(&format!("\n  screenshot: {}", shot.display()));
        }
        let html = self
            .cmd(
                Method::POST,
                "/execute/sync",
                json!({"script": "const m = document.querySelector('main') || document.body;
                                  return m ? m.outerHTML : document.documentElement.outerHTML",
                       "args": []}),
            )
            .await;
        if let Ok(Value::String(html)) = html {
            let snippet: String = html.chars().take(4000).collect();
            context.push_str(&format!("\n  HTML:\n{snippet}"));
        }
        panic!("{msg}{context}");
    }

    /// Opens a path of Herald (or a full URL).
    pub async fn goto(&mut self, path: &str) {
        let url = if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        };
        self.must(Method::POST, "/url", json!({ "url": url })).await;
        self.collect_console().await;
    }

    pub async fn url(&self) -> String {
        self.must(Method::GET, "/url", Value::Null)
            .await
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    pub async fn find(&self, css: &str) -> Option<El> {
        self.look(css, false).await
    }

    /// The first element matching `css`, if any. `polling`: a page being replaced while the
    /// browser looked (a redirect after a form, a link followed) counts as not found yet, for the
    /// poll to look again on the new page; otherwise it fails the test.
    async fn look(&self, css: &str, polling: bool) -> Option<El> {
        let found = self
            .cmd(
                Method::POST,
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        match found {
            Ok(v) => v[ELEMENT].as_str().map(|id| El(id.to_string())),
            Err(e) if e.error == "no such element" => None,
            Err(e) if polling && e.error.contains("aborted by navigation") => None,
            Err(e) => self.fail(&format!("looking for `{css}`: {e}")).await,
        }
    }

    /// Polls `attempt` until it gives something, for `timeout`; fails naming `what`.
    pub async fn poll<T>(
        &self,
        what: &str,
        timeout: Duration,
        attempt: impl AsyncFn(&Self) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(found) = attempt(self).await {
                return found;
            }
            if Instant::now() > deadline {
                return self.fail(&format!("waited {timeout:?} for {what}")).await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The first element matching `css`, once there is one.
    pub async fn wait(&self, css: &str) -> El {
        self.poll(&format!("an element `{css}`"), WAIT, async |b| {
            b.look(css, true).await
        })
        .await
    }

    /// The visible text of the first element matching `css` once `ok` accepts it.
    pub async fn wait_text(&self, css: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
        self.wait_text_for(css, what, WAIT, ok).await
    }

    pub async fn wait_text_for(
        &self,
        css: &str,
        what: &str,
        timeout: Duration,
        ok: impl Fn(&str) -> bool,
    ) -> String {
        self.poll(&format!("`{css}` to show {what}"), timeout, async |b| {
            let el = b.look(css, true).await?;
            let text = b.element_text(&el).await?;
            ok(&text).then_some(text)
        })
        .await
    }

    /// The current URL once `ok` accepts it.
    pub async fn wait_url(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        self.poll(what, WAIT, async |b| {
            let url = b.cmd(Method::GET, "/url", Value::Null).await.ok()?;
            let url = url.as_str()?.to_string();
            let complete = b
                .cmd(
                    Method::POST,
                    "/execute/sync",
                    json!({"script": "return document.readyState", "args": []}),
                )
                .await
                .ok()?;
            (ok(&url) && complete == json!("complete")).then_some(url)
        })
        .await
    }

    /// Once `script` returns something truthy.
    pub async fn wait_js(&self, what: &str, script: &str) -> Value {
        self.poll(what, WAIT, async |b| {
            let value = b
                .cmd(
                    Method::POST,
                    "/execute/sync",
                    json!({"script": script, "args": []}),
                )
                .await
                .ok()?;
            let truthy = !matches!(&value, Value::Null | Value::Bool(false))
                && value != json!(0)
                && value != json!("");
            truthy.then_some(value)
        })
        .await
    }

    pub async fn element_text(&self, el: &El) -> Option<String> {
        let text = self
            .cmd(Method::GET, &format!("/element/{}/text", el.0), Value::Null)
            .await
            .ok()?;
        text.as_str().map(str::to_string)
    }

    pub async fn text(&self, css: &str) -> String {
        let el = self.wait(css).await;
        match self.element_text(&el).await {
            Some(text) => text,
            None => self.fail(&format!("reading the text of `{css}`")).await,
        }
    }

    pub async fn attr(&self, css: &str, name: &str) -> String {
        let el = self.wait(css).await;
        let value = self
            .must(
                Method::GET,
                &format!("/element/{}/attribute/{name}", el.0),
                Value::Null,
            )
            .await;
        match value.as_str() {
            Some(value) => value.to_string(),
            None => self.fail(&format!("`{css}` has no {name}")).await,
        }
    }

    pub async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.must(
            Method::POST,
            "/execute/sync",
            json!({"script": script, "args": args}),
        )
        .await
    }

    /// Scrolls `el` to the middle of the window and clicks it.
    pub async fn click_el(&mut self, el: &El) {
        self.js(
            "arguments[0].scrollIntoView({block: 'center'})",
            vec![el.json()],
        )
        .await;
        self.must(Method::POST, &format!("/element/{}/click", el.0), json!({}))
            .await;
        self.collect_console().await;
    }

    pub async fn click(&mut self, css: &str) {
        let el = self.wait(css).await;
        self.click_el(&el).await;
    }

    /// Replaces the value of a text field by typing `text`.
    pub async fn fill(&mut self, css: &str, text: &str) {
        let el = self.wait(css).await;
        self.must(Method::POST, &format!("/element/{}/clear", el.0), json!({}))
            .await;
        self.send_keys(&el, text).await;
    }

    /// Types `text` at the end of a field.
    pub async fn type_keys(&mut self, css: &str, text: &str) {
        let el = self.wait(css).await;
        self.send_keys(&el, text).await;
    }

    pub async fn send_keys(&self, el: &El, text: &str) {
        self.must(
            Method::POST,
            &format!("/element/{}/value", el.0),
            json!({ "text": text }),
        )
        .await;
    }

    /// Chooses a file for a file input.
    pub async fn upload(&mut self, css: &str, file: &Path) {
        let el = self.wait(css).await;
        self.send_keys(&el, &file.display().to_string()).await;
    }

    /// Sets a field that typing does not drive reliably (time, datetime-local), with the
    /// events a user's change fires.
    pub async fn set_value(&self, css: &str, value: &str) {
        self.wait(css).await;
        let set = self
            .js(
                "const el = document.querySelector(arguments[0]);
                 el.value = arguments[1];
                 el.dispatchEvent(new Event('input', {bubbles: true}));
                 el.dispatchEvent(new Event('change', {bubbles: true}));
                 return el.value",
                vec![json!(css), json!(value)],
            )
            .await;
        if set != json!(value) {
            self.fail::<()>(&format!("`{css}` did not take {value:?} (has {set})"))
                .await;
        }
    }

    /// Picks the option of a `<select>` whose value is `wanted`, else the first whose text
    /// contains it, by clicking it.
    pub async fn select(&mut self, css: &str, wanted: &str) {
        self.wait(css).await;
        let option = self
            .js(
                "const options = [...document.querySelector(arguments[0]).options];
                 return options.find(o => o.value === arguments[1])
                     || options.find(o => o.textContent.includes(arguments[1])) || null",
                vec![json!(css), json!(wanted)],
            )
            .await;
        let Some(id) = option[ELEMENT].as_str() else {
            let options = self
                .js(
                    "return [...document.querySelector(arguments[0]).options]
                         .map(o => o.value + ' = ' + o.textContent.trim())",
                    vec![json!(css)],
                )
                .await;
            return self
                .fail(&format!("`{css}` has no option {wanted:?}: {options}"))
                .await;
        };
        self.click_el(&El(id.to_string())).await;
    }

    /// A `<select>` or a text field, whichever the page has.
    pub async fn choose(&mut self, css: &str, value: &str) {
        let el = self.wait(css).await;
        let tag = self
            .js("return arguments[0].tagName", vec![el.json()])
            .await;
        if tag == json!("SELECT") {
            self.select(css, value).await;
        } else {
            self.fill(css, value).await;
            self.js(
                "arguments[0].dispatchEvent(new Event('change', {bubbles: true}))",
                vec![el.json()],
            )
            .await;
        }
    }

    pub async fn set_checked(&mut self, css: &str, checked: bool) {
        let el = self.wait(css).await;
        let now = self
            .must(
                Method::GET,
                &format!("/element/{}/selected", el.0),
                Value::Null,
            )
            .await;
        if now != json!(checked) {
            self.click_el(&el).await;
        }
    }

    /// Clicks the submit button of the form that holds `css`.
    pub async fn submit(&mut self, css: &str) {
        self.wait(css).await;
        let button = self
            .js(
                "const f = document.querySelector(arguments[0]).form;
                 return f && f.querySelector('button[type=submit], button:not([type]), input[type=submit]')",
                vec![json!(css)],
            )
            .await;
        match button[ELEMENT].as_str() {
            Some(id) => self.click_el(&El(id.to_string())).await,
            None => {
                self.fail(&format!("the form of `{css}` has no submit button"))
                    .await
            }
        }
    }

    /// The outreach of the page, from its recipients link.
    pub async fn outreach_id(&self) -> uuid::Uuid {
        let href = self.attr("#recipients-link", "href").await;
        match uuid_after(&href, "/outreaches/") {
            Some(id) => id,
            None => {
                self.fail(&format!("#recipients-link points nowhere: {href}"))
                    .await
            }
        }
    }

    /// GETs `url` from the page (with its session): the status and the body.
    pub async fn fetch(&self, url: &str) -> (u64, String) {
        let got = self
            .must(
                Method::POST,
                "/execute/async",
                json!({"script": "const done = arguments[arguments.length - 1];
                    fetch(arguments[0]).then(r => r.text().then(t => done([r.status, t])))
                        .catch(e => done([0, String(e)]))",
                       "args": [url]}),
            )
            .await;
        (
            got[0].as_u64().unwrap_or(0),
            got[1].as_str().unwrap_or("").to_string(),
        )
    }

    pub async fn alert_text(&self) -> Option<String> {
        match self.cmd(Method::GET, "/alert/text", Value::Null).await {
            Ok(text) => text.as_str().map(str::to_string),
            Err(e) if e.error == "no such alert" => None,
            Err(e) => self.fail(&format!("reading the alert: {e}")).await,
        }
    }

    pub async fn accept_alert(&mut self) {
        self.must(Method::POST, "/alert/accept", json!({})).await;
        self.collect_console().await;
    }

    pub async fn viewport(&self, width: u32, height: u32) {
        self.must(
            Method::POST,
            "/goog/cdp/execute",
            json!({"cmd": "Emulation.setDeviceMetricsOverride",
                   "params": {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}}),
        )
        .await;
    }

    /// Saves the page as `{name}.png` in the screenshot folder (see the module docs): 1280 px
    /// wide, as tall as the page (900 to 1600 px).
    pub async fn screenshot(&self, name: &str) {
        let height = self
            .js(
                "window.scrollTo(0, 0); return document.documentElement.scrollHeight",
                vec![],
            )
            .await
            .as_u64()
            .unwrap_or(900)
            .clamp(900, 1600);
        self.viewport(1280, height as u32).await;
        let png = self.must(Method::GET, "/screenshot", Value::Null).await;
        self.viewport(1280, 900).await;
        save_png(name, &png);
    }

    /// Saves a PNG of the element `css` alone, as [`Browser::screenshot`] saves a page.
    pub async fn screenshot_element(&mut self, css: &str, name: &str) {
        let el = self.wait(css).await;
        // Tall enough that the element is not cut at the window's bottom.
        self.viewport(1280, 1600).await;
        let png = self
            .must(
                Method::GET,
                &format!("/element/{}/screenshot", el.0),
                Value::Null,
            )
            .await;
        self.viewport(1280, 900).await;
        save_png(name, &png);
    }

    /// At 390×844 the page must be no wider than the screen (tables scroll inside
    /// `.table-wrap`); kept for [`Self::assert_no_problems`] if it is.
    pub async fn check_phone_width(&mut self) {
        let url = self.url().await;
        self.viewport(390, 844).await;
        let width = self
            .js(
                "const d = document.documentElement;
                 const clipped = e => {
                     for (let p = e.parentElement; p; p = p.parentElement) {
                         if (p === d || p === document.body) return false;
                         if (getComputedStyle(p).overflowX !== 'visible') return true;
                     }
                     return false;
                 };
                 const name = e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '')
                     + (typeof e.className === 'string' && e.className.trim()
                         ? '.' + e.className.trim().split(/\\s+/).join('.') : '');
                 const all = [...document.querySelectorAll('body *')].filter(e => !clipped(e));
                 // Elements past the right edge, then boxes whose content overflows them.
                 const wide = all
                     .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
                     .map(e => name(e) + ' (right edge ' + e.getBoundingClientRect().right.toFixed(1) + ')')
                     .concat(all
                         .filter(e => getComputedStyle(e).overflowX === 'visible'
                             && e.scrollWidth > e.clientWidth + 1 && e.clientWidth > 0)
                         .map(e => name(e) + ' (content ' + e.scrollWidth + ' px in ' + e.clientWidth + ' px)'))
                     .slice(0, 12);
                 // The deepest element whose hiding makes the page fit.
                 const fits = () => d.scrollWidth <= window.innerWidth + 1;
                 let scope = document.body, culprit = null;
                 search: while (scope && !fits()) {
                     for (const c of scope.children) {
                         const old = c.style.display;
                         c.style.display = 'none';
                         const ok = fits();
                         c.style.display = old;
                         if (ok) { culprit = c; scope = c; continue search; }
                     }
                     break;
                 }
                 if (culprit) {
                     const r = culprit.getBoundingClientRect(), st = getComputedStyle(culprit);
                     wide.push('hiding ' + name(culprit) + ' makes it fit (left ' + r.left.toFixed(1)
                         + ', right ' + r.right.toFixed(1) + ', margin-right ' + st.marginRight + ')');
                 }
                 return [d.scrollWidth, window.innerWidth, wide]",
                vec![],
            )
            .await;
        self.viewport(1280, 900).await;
        let (scroll, inner) = (
            width[0].as_u64().unwrap_or(0),
            width[1].as_u64().unwrap_or(0),
        );
        if inner != 390 || scroll > inner + 1 {
            self.problems.push(format!(
                "{url}: at 390 px wide the page is {scroll} px wide (window {inner} px); too wide: {}",
                width[2]
            ));
        }
    }

    /// Every visible field has a `<label for>` (or is inside a label, or has an aria-label).
    pub async fn check_labels(&self) {
        let unlabelled = self
            .js(
                "return [...document.querySelectorAll('main input, main select, main textarea')]
                     .filter(e => e.type !== 'hidden' && e.type !== 'submit' && e.type !== 'button')
                     .filter(e => !(e.id && document.querySelector(`label[for='${e.id}']`))
                         && !e.closest('label') && !e.getAttribute('aria-label'))
                     .map(e => e.name || e.id || e.outerHTML)",
                vec![],
            )
            .await;
        if unlabelled != json!([]) {
            self.fail::<()>(&format!("fields without a label: {unlabelled}"))
                .await;
        }
    }

    /// Reads the browser's log: JavaScript errors (and failed loads other than the statuses
    /// Herald's pages answer on purpose) are kept for [`Self::assert_no_problems`]. Violations
    /// of Herald's Content-Security-Policy (an inline style or script) are SEVERE entries too,
    /// so a page that needs more than the CSP allows fails here.
    pub async fn collect_console(&mut self) {
        let Ok(entries) = self
            .cmd(Method::POST, "/se/log", json!({"type": "browser"}))
            .await
        else {
            return; // an alert is open; read it next time
        };
        let url = match self.cmd(Method::GET, "/url", Value::Null).await {
            Ok(Value::String(url)) => url,
            _ => "?".to_string(),
        };
        for entry in entries.as_array().into_iter().flatten() {
            let message = entry["message"].as_str().unwrap_or("");
            let expected = message.contains("favicon.ico")
                || (message.contains("Failed to load resource")
                    && ["status of 401", "status of 410", "status of 422"]
                        .iter()
                        .any(|s| message.contains(s)));
            if entry["level"] == json!("SEVERE") && !expected {
                self.problems.push(format!("{url}: {message}"));
            }
        }
    }

    pub async fn assert_no_problems(&mut self) {
        self.collect_console().await;
        assert!(
            self.problems.is_empty(),
            "JavaScript errors or pages too wide for a phone:\n{}",
            self.problems.join("\n")
        );
    }
}

impl Drop for Browser {
    /// Ends the session (closing Chromium) before the driver is killed; best effort.
    fn drop(&mut self) {
        use std::io::{Read, Write};
        let port = self.driver.port;
        let path = self
            .session
            .split_once(&format!(":{port}"))
            .map(|(_, p)| p.to_string())
            .unwrap_or_default();
        if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = write!(
                stream,
                "DELETE {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
            );
            let _ = stream.read(&mut [0; 256]);
        }
    }
}
