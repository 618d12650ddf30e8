//! The admin web UI: server-rendered HTML (askama templates in `templates/`) with htmx (vendored
//! in `static/`, served from the binary: no CDN, no Node build step).
//!
//! Every page needs a signed-in user ([`session::CurrentUser`]); pages that change campaigns,
//! senders, answers, inboxes or outreaches need an admin ([`session::Admin`]). Every form carries
//! the session's CSRF token, checked by [`session::CurrentUser::check_csrf`]; htmx requests send
//! it as the `X-CSRF-Token` header (set once on `<body hx-headers>`).
//!
//! Modules: [`session`] and [`auth`] (sign-in, first admin, sessions, CSRF), [`settings`]
//! (inboxes, senders, answers with live preview), [`campaigns`], [`outreaches`] (upload, tracking,
//! recipients), [`inbox`] (conversations and replies).

use crate::AppState;
use askama::Template;
use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

pub mod auth;
pub mod campaigns;
pub mod charts;
pub mod chat;
pub mod inbox;
pub mod limits;
pub mod outreaches;
pub mod review;
pub mod session;
pub mod settings;

/// The web UI's routes (merged at the root of the app, beside `/api/v1` and `/webhooks`).
pub fn router() -> Router<AppState> {
    Router::new()
        .merge(auth::router())
        .merge(settings::router())
        .merge(campaigns::router())
        .merge(outreaches::router())
        .merge(inbox::router())
        .merge(chat::router())
        .route("/static/htmx.min.js", axum::routing::get(htmx_js))
        .route("/static/app.css", axum::routing::get(app_css))
        .route("/static/app.js", axum::routing::get(app_js))
}

/// A message written for the API (which quotes values in backticks, as Markdown would) in the
/// words a page shows: each `value` between backticks in curly quotes, “value”. A lone backtick
/// is left as it is.
pub fn plain_words(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(open) = rest.find('`') {
        let Some(len) = rest[open + 1..].find('`') else {
            break;
        };
        out.push_str(&rest[..open]);
        out.push('“');
        out.push_str(&rest[open + 1..open + 1 + len]);
        out.push('”');
        rest = &rest[open + 2 + len..];
    }
    out.push_str(rest);
    out
}

/// Renders a template as a page; a template error (a bug) is a plain 500 page.
pub fn render(template: &impl Template) -> Response {
    render_status(StatusCode::OK, template)
}

/// The 500 page of a request Herald could not carry out (the store failed, say): styled like
/// the sign-in pages, since the session itself may be what could not be read. The cause is in
/// the server log, not on the page.
pub fn server_error_page(what: &str) -> Response {
    render_status(
        StatusCode::INTERNAL_SERVER_ERROR,
        &session::MessagePage {
            title: "Something went wrong".to_string(),
            message: format!(
                "Herald could not {what}. Nothing else was changed; try again in a moment. The \
                 server log says why."
            ),
            link: Some(("/".to_string(), "Back to Herald".to_string())),
        },
    )
}

/// [`render`] with another status (422 for a form with errors, 404, 403...).
pub fn render_status(status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a page could not be rendered");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Html("<!doctype html><title>Error</title><p>This page could not be shown; see the server log.</p>".to_string()),
            )
                .into_response()
        }
    }
}

/// Static files are compiled into the binary; they change only with it.
pub(crate) fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

async fn htmx_js() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("../../static/htmx.min.js"),
    )
}

async fn app_css() -> Response {
    asset(
        "text/css; charset=utf-8",
        include_str!("../../static/app.css"),
    )
}

async fn app_js() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("../../static/app.js"),
    )
}

#[cfg(test)]
mod plain_words_tests {
    use super::plain_words;

    #[test]
    fn backticks_become_curly_quotes_in_pairs() {
        assert_eq!(
            plain_words("`New York` is not a time zone; use `America/New_York`"),
            "“New York” is not a time zone; use “America/New_York”"
        );
        assert_eq!(plain_words("no quotes"), "no quotes");
        assert_eq!(plain_words("a lone ` stays"), "a lone ` stays");
        assert_eq!(plain_words("``"), "“”");
    }
}
