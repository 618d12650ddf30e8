//! What the web UI suites share: a browser, more or less (it keeps cookies and never follows a
//! redirect, so tests see them), signing in through `/login` as a person would, and reading a
//! page's CSRF token and elements.

use super::App;
use herald_core::Role;
use reqwest::header::{HeaderMap, HeaderValue, LOCATION, SET_COOKIE};
use reqwest::{Method, RequestBuilder, StatusCode};

/// The password of every user the suites create.
pub const PASSWORD: &str = "correct horse battery staple";

/// An HTTP client with a cookie jar (as a browser has) that follows no redirect.
pub struct Browser {
    base: String,
    http: reqwest::Client,
    /// The session's CSRF token, read from a page once signed in (empty before).
    pub csrf: String,
}

/// A response, read whole.
pub struct Page {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    /// The `Location` header, `""` without one.
    pub fn location(&self) -> &str {
        self.headers
            .get(LOCATION)
            .map_or("", |l| l.to_str().unwrap())
    }

    /// The `Set-Cookie` header setting `name`, if any.
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .find(|v| v.starts_with(&format!("{name}=")))
    }
}

impl Browser {
    /// A browser with no cookies yet, for the server at `base`.
    pub fn new(base: &str) -> Self {
        Self {
            base: base.to_string(),
            http: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            csrf: String::new(),
        }
    }

    /// A request to `path` on the server, with the browser's cookies (to add to, then
    /// [`Browser::send`]).
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base))
    }

    /// Sends a request made with [`Browser::request`]; the cookies it sets are kept.
    pub async fn send(&self, req: RequestBuilder) -> Page {
        let res = req.send().await.expect("request");
        Page {
            status: res.status(),
            headers: res.headers().clone(),
            body: res.text().await.unwrap_or_default(),
        }
    }

    pub async fn get(&self, path: &str) -> Page {
        self.send(self.request(Method::GET, path)).await
    }

    /// A page that must answer 200.
    pub async fn page(&self, path: &str) -> String {
        let p = self.get(path).await;
        assert_eq!(p.status, StatusCode::OK, "GET {path}: {}", p.body);
        p.body
    }

    /// Posts a form as is (no CSRF token added).
    pub async fn post_raw(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        self.send(self.request(Method::POST, path).form(fields))
            .await
    }

    /// Posts a form with the session's CSRF token, as the page's form does.
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let mut all = vec![("csrf", self.csrf.as_str())];
        all.extend_from_slice(fields);
        self.post_raw(path, &all).await
    }

    /// Posts a multipart form as is, with extra headers.
    pub async fn post_multipart(
        &self,
        path: &str,
        form: reqwest::multipart::Form,
        headers: &[(&str, &str)],
    ) -> Page {
        let mut req = self.request(Method::POST, path).multipart(form);
        for (k, v) in headers {
            req = req.header(*k, HeaderValue::from_str(v).unwrap());
        }
        self.send(req).await
    }

    /// `POST /login` from the sign-in page, as a person would: the response.
    pub async fn log_in(&self, email: &str, password: &str, next: &str) -> Page {
        let page = self.get("/login").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let csrf = csrf_of(&page.body);
        self.post_raw(
            "/login",
            &[
                ("email", email),
                ("password", password),
                ("next", next),
                ("csrf", &csrf),
            ],
        )
        .await
    }
}

/// The value of the first hidden `csrf` input of a page.
pub fn csrf_of(html: &str) -> String {
    let start = html
        .find("name=\"csrf\" value=\"")
        .unwrap_or_else(|| panic!("no csrf input in {html}"))
        + "name=\"csrf\" value=\"".len();
    html[start..].split('"').next().unwrap().to_string()
}

/// Creates a user with [`PASSWORD`] through the store.
pub async fn create_user(app: &App, email: &str, role: Role) {
    app.db
        .store
        .create_user(
            email,
            role,
            &herald_server::web::auth::hash_password(PASSWORD),
        )
        .await
        .expect("create user");
}

/// Creates a user and signs in through `/login`: a browser with the session's CSRF token.
pub async fn sign_in(app: &App, email: &str, role: Role) -> Browser {
    create_user(app, email, role).await;
    let mut b = Browser::new(&app.base);
    let res = b.log_in(email, PASSWORD, "/campaigns").await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "sign-in: {}", res.body);
    b.csrf = csrf_of(&b.page("/campaigns").await);
    assert!(!b.csrf.is_empty());
    b
}

/// The HTML of the element with `id`, from its opening tag to the first closing tag of the same
/// name (good enough for the elements these pages have, which do not nest), or `None`.
pub fn element<'a>(html: &'a str, id: &str) -> Option<&'a str> {
    let at = html.find(&format!("id=\"{id}\""))?;
    let open = html[..at].rfind('<')?;
    let tag: String = html[open + 1..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    let close = format!("</{tag}>");
    let end = html[at..].find(&close).map(|e| at + e + close.len())?;
    Some(&html[open..end])
}
