//! The API's handlers, one module per resource.

pub mod answers;
pub mod campaigns;
pub mod chat;
pub mod chat_figures;
pub mod chat_live;
pub mod conversations;
pub mod health;
pub mod inboxes;
pub mod metrics;
pub mod outreaches;
pub mod people;
pub mod senders;
pub mod suppressions;
pub mod tracking;
pub mod unsubscribe;
pub mod webhooks;

use crate::error::{ApiError, ApiResult};
use axum::http::Uri;
use herald_core::Page;
use serde::Deserialize;
use uuid::Uuid;

/// `?limit=50&after=<id>`: keyset pagination in creation order.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page, 1 to 500 (default 50).
    pub limit: Option<u32>,
    /// The `next_after` of the previous page.
    pub after: Option<Uuid>,
}

impl PageQuery {
    pub fn page(&self) -> ApiResult<Page> {
        Ok(Page::new(self.limit, self.after)?)
    }
}

pub async fn not_found(uri: Uri, headers: axum::http::HeaderMap) -> axum::response::Response {
    use axum::response::IntoResponse;
    // A browser asking for a page gets the admin's styled page; API clients the problem JSON.
    let wants_html = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"));
    if wants_html && !uri.path().starts_with("/api/") {
        return crate::web::session::not_found_page(uri.path());
    }
    ApiError::not_found(format!(
        "nothing at {}; the API lives under /api/v1 (see /api/v1/openapi.json)",
        uri.path()
    ))
    .into_response()
}
