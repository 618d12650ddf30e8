//! The unsubscribe link of outreach emails: `{public_url}/unsubscribe/{key}?sig=…`, the target
//! of their `List-Unsubscribe` header.
//!
//! - `POST` is the one-click unsubscribe of RFC 8058 (mail clients post
//!   `List-Unsubscribe=One-Click`), and what the page's button sends: the address is suppressed
//!   for every sender and its pending recipients are skipped.
//! - `GET` only shows a page with that button: link scanners and prefetchers open links, and must
//!   not unsubscribe anyone by doing so.
//!
//! The signature (HMAC of the message's key, which names the outreach and the recipient) means a
//! link cannot be made up for someone else's address. No bearer token.

use crate::AppState;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use herald_engine::UnsubscribeError;
use serde::Deserialize;

pub fn router() -> Router<AppState> {
    Router::new().route("/unsubscribe/{key}", get(page).post(unsubscribe))
}

#[derive(Debug, Deserialize)]
struct Sig {
    #[serde(default)]
    sig: String,
}

fn html(status: StatusCode, title: &str, body: &str) -> Response {
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title></head><body style=\"font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem\">\
         <h1>{title}</h1>{body}</body></html>"
    );
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        page,
    )
        .into_response()
}

fn escape(text: &str) -> String {
    herald_channels::xml_escape(text)
}

fn invalid() -> Response {
    html(
        StatusCode::FORBIDDEN,
        "This link is not valid",
        "<p>The unsubscribe link is incomplete or was altered. Use the link in the email you \
         received, or reply to it and ask to be removed.</p>",
    )
}

async fn page(
    Path(key): Path<String>,
    Query(q): Query<Sig>,
    State(s): State<AppState>,
) -> Response {
    if !s.replies.unsubscribe_link_valid(&key, &q.sig) {
        return invalid();
    }
    let action = format!("/unsubscribe/{}?sig={}", escape(&key), escape(&q.sig));
    html(
        StatusCode::OK,
        "Unsubscribe",
        &format!(
            "<p>Stop receiving these emails?</p><form method=\"post\" action=\"{action}\">\
             <input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">\
             <button type=\"submit\">Unsubscribe</button></form>"
        ),
    )
}

async fn unsubscribe(
    Path(key): Path<String>,
    Query(q): Query<Sig>,
    State(s): State<AppState>,
) -> Response {
    match s.replies.unsubscribe(&key, &q.sig).await {
        Ok(address) => html(
            StatusCode::OK,
            "You are unsubscribed",
            &format!(
                "<p>{} will not receive these emails any more.</p>",
                escape(&address)
            ),
        ),
        Err(UnsubscribeError::BadLink) => invalid(),
        Err(UnsubscribeError::Store(e)) => {
            tracing::error!(error = %e, "unsubscribe failed");
            html(
                StatusCode::SERVICE_UNAVAILABLE,
                "Please try again",
                "<p>Herald could not record the unsubscribe just now. Please try again in a minute.</p>",
            )
        }
    }
}
