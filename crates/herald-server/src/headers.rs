//! Security headers on every response, by path ([`policy`] is the one place that says which
//! parts of the site get which policy), and the redaction of secrets from logged paths.
//!
//! Every response gets `X-Content-Type-Options: nosniff` and `Referrer-Policy: no-referrer`,
//! and `Cache-Control: no-store` unless its handler chose a caching policy (only the static
//! files do): pages and API answers carry customer data. The admin UI, the sign-in and setup
//! pages and the API get a strict `Content-Security-Policy` (only this origin's scripts and
//! styles, no inline code, no framing) and `X-Frame-Options: DENY`.

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use std::borrow::Cow;

/// What the admin UI needs: its own scripts (vendored htmx, app.js) and stylesheet, requests
/// to itself (htmx, event streams), forms posting to itself; no inline script or style, no
/// plugins, no framing. The favicon is a `data:` URL.
pub const ADMIN_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The unsubscribe page: a self-contained page with inline styles and a form, no script.
pub const UNSUBSCRIBE_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// JSON and everything else that is not a page: nothing may run or load.
pub const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'";

/// The headers one part of the site gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub csp: &'static str,
    /// `X-Frame-Options: DENY` (browsers without `frame-ancestors`).
    pub deny_framing: bool,
}

/// The policy of a path. The chat widget's script and configuration (under `/chat/`) are read
/// by customers' pages but are not pages themselves, so they get the API's policy; a widget
/// that one day frames a page of Herald's will need its own arm here (`frame-ancestors` naming
/// the sites, no `X-Frame-Options`).
pub fn policy(path: &str) -> Policy {
    let csp = if path.starts_with("/unsubscribe/") {
        UNSUBSCRIBE_CSP
    } else if path.starts_with("/api/")
        || path.starts_with("/webhooks/")
        || path.starts_with("/chat/")
        || path == "/healthz"
        || path == "/readyz"
    {
        API_CSP
    } else {
        ADMIN_CSP
    };
    Policy {
        csp,
        deny_framing: true,
    }
}

/// Sets the security headers of [`policy`] on every response (a handler's own
/// `Cache-Control` or `Content-Security-Policy` is kept).
pub async fn security_headers(req: Request, next: Next) -> Response {
    let policy = policy(req.uri().path());
    let res = next.run(req).await;
    apply(policy, res)
}

/// The headers of [`policy`] for `/chat/` on `res`: for the public chat routes, whose policy
/// does not depend on the path (a plain function, so that every page view of every site that
/// embeds the widget pays no middleware's boxing for it).
pub fn chat_headers(res: Response) -> Response {
    apply(policy("/chat/"), res)
}

fn apply(policy: Policy, mut res: Response) -> Response {
    let h = res.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, name: HeaderName, value: &'static str| {
        h.insert(name, HeaderValue::from_static(value));
    };
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        set(h, header::CONTENT_SECURITY_POLICY, policy.csp);
    }
    if policy.deny_framing {
        set(h, header::X_FRAME_OPTIONS, "DENY");
    }
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::REFERRER_POLICY, "no-referrer");
    if !h.contains_key(header::CACHE_CONTROL) {
        set(h, header::CACHE_CONTROL, "no-store");
    }
    res
}

/// A request path as it may be logged: the secret of a setup link (`/setup/{token}`) and the
/// key of an unsubscribe link (`/unsubscribe/{key}`) replaced by `…`.
pub fn loggable_path(path: &str) -> Cow<'_, str> {
    for prefix in ["/setup/", "/unsubscribe/"] {
        if let Some(rest) = path.strip_prefix(prefix)
            && !rest.is_empty()
        {
            return Cow::Owned(format!("{prefix}…"));
        }
    }
    Cow::Borrowed(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_in_paths_are_not_logged() {
        let token = "a".repeat(64);
        assert_eq!(loggable_path(&format!("/setup/{token}")), "/setup/…");
        assert_eq!(loggable_path("/unsubscribe/k3y.v4lue"), "/unsubscribe/…");
        assert_eq!(loggable_path("/campaigns/1"), "/campaigns/1");
        assert_eq!(loggable_path("/setup/"), "/setup/");
    }

    #[test]
    fn pages_and_api_get_their_policies() {
        assert_eq!(policy("/campaigns").csp, ADMIN_CSP);
        assert_eq!(policy("/login").csp, ADMIN_CSP);
        assert_eq!(policy("/api/v1/inboxes").csp, API_CSP);
        assert_eq!(policy("/unsubscribe/x").csp, UNSUBSCRIBE_CSP);
        assert_eq!(policy("/chat/widget.js").csp, API_CSP);
        assert!(policy("/settings").deny_framing);
    }
}
