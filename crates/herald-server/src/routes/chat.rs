//! Proactive chat over HTTP.
//!
//! Admin routes (under `/api/v1`, writes need an admin token): chat sites and the chat settings
//! of a chat campaign. Public routes, called by every page of every site that embeds the widget:
//! `GET /chat/widget.js` and `GET /chat/v1/sites/{key}/config`. The configuration is served from
//! [`ChatConfigs`], a snapshot of every site rebuilt at most once every [`CONFIG_REFRESH`]
//! whatever the number of callers; a key not in it (or not shaped like a key) is answered 404
//! from memory, so no caller reaches the database.

use super::PageQuery;
use crate::AppState;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use herald_core::chat::{
    ChatSettings, ChatSettingsInput, ChatSite, ChatSiteInput, Trigger, compile_triggers,
};
use herald_core::{Listing, PAGE_MAX, Page};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

/// How often, at most, a node rebuilds its snapshot of the sites' configurations.
pub const CONFIG_REFRESH: Duration = Duration::from_secs(5);
/// How long a browser may keep a configuration: with [`CONFIG_REFRESH`], a change shows within
/// 35 seconds.
pub const CONFIG_CACHE_CONTROL: &str = "public, max-age=30";
/// Length of a site key: 32 lower-case hex characters (128 random bits).
pub const SITE_KEY_LEN: usize = 32;

/// A new site key: 128 bits from a CSPRNG, as hex.
pub fn new_site_key() -> String {
    let mut bytes = [0u8; SITE_KEY_LEN / 2];
    rand::fill(&mut bytes);
    hex::encode(bytes)
}

fn is_site_key(key: &str) -> bool {
    key.len() == SITE_KEY_LEN && key.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_sites, create_site))
        .routes(routes!(get_site, update_site, delete_site))
        .routes(routes!(get_chat_settings, set_chat_settings))
        .routes(routes!(super::chat_figures::get_figures))
}

/// The public routes (no token): the widget, its configuration, and live chat
/// ([`super::chat_live`]).
pub fn public_router() -> axum::Router<AppState> {
    super::chat_live::router()
        .route("/chat/widget.js", axum::routing::get(widget_js))
        .route(
            "/chat/v1/sites/{key}/config",
            axum::routing::get(site_config),
        )
}

// ---------------------------------------------------------------- admin: sites

/// A site with the snippet that embeds its widget.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChatSiteView {
    #[serde(flatten)]
    pub site: ChatSite,
    /// Paste before `</body>` on every page of the site.
    pub snippet: String,
}

/// The `<script>` tag that embeds a site's widget.
pub fn snippet(public_url: &str, key: &str) -> String {
    format!(
        "<script src=\"{}/chat/widget.js\" data-site=\"{key}\" async></script>",
        public_url.trim_end_matches('/')
    )
}

fn view(s: &AppState, site: ChatSite) -> ChatSiteView {
    ChatSiteView {
        snippet: snippet(&s.public_url, &site.key),
        site,
    }
}

/// Chat sites in creation order.
#[utoipa::path(get, path = "/chat/sites", tag = "chat", params(PageQuery),
    security(("bearer" = [])),
    responses((status = 200, body = Listing<ChatSiteView>), (status = 401, body = Problem)))]
async fn list_sites(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Listing<ChatSiteView>>> {
    let listing = s.store.list_chat_sites(q.page()?).await?;
    Ok(Json(Listing {
        items: listing.items.into_iter().map(|x| view(&s, x)).collect(),
        next_after: listing.next_after,
    }))
}

/// Creates a chat site with a new random key; the answer holds the snippet to embed.
#[utoipa::path(post, path = "/chat/sites", tag = "chat", request_body = ChatSiteInput,
    security(("bearer" = ["admin"])),
    responses((status = 201, body = ChatSiteView), (status = 422, body = Problem), (status = 403, body = Problem)))]
async fn create_site(
    State(s): State<AppState>,
    ApiJson(input): ApiJson<ChatSiteInput>,
) -> ApiResult<(StatusCode, Json<ChatSiteView>)> {
    let spec = input.validate()?;
    let site = s.store.create_chat_site(&spec, &new_site_key()).await?;
    s.chat.invalidate();
    Ok((StatusCode::CREATED, Json(view(&s, site))))
}

/// One chat site.
#[utoipa::path(get, path = "/chat/sites/{id}", tag = "chat", params(("id" = Uuid, Path)),
    security(("bearer" = [])),
    responses((status = 200, body = ChatSiteView), (status = 404, body = Problem)))]
async fn get_site(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<ChatSiteView>> {
    let site = s.store.get_chat_site(id).await?;
    Ok(Json(view(&s, site)))
}

/// Changes a site's name, allowed origins and visibility per visit (the key stays).
#[utoipa::path(put, path = "/chat/sites/{id}", tag = "chat", params(("id" = Uuid, Path)),
    request_body = ChatSiteInput, security(("bearer" = ["admin"])),
    responses((status = 200, body = ChatSiteView), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn update_site(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(input): ApiJson<ChatSiteInput>,
) -> ApiResult<Json<ChatSiteView>> {
    let spec = input.validate()?;
    let site = s.store.update_chat_site(id, &spec).await?;
    s.chat.invalidate();
    Ok(Json(view(&s, site)))
}

/// Deletes a site no campaign shows on.
#[utoipa::path(delete, path = "/chat/sites/{id}", tag = "chat", params(("id" = Uuid, Path)),
    security(("bearer" = ["admin"])),
    responses((status = 204), (status = 404, body = Problem), (status = 409, description = "A campaign shows on it", body = Problem)))]
async fn delete_site(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<StatusCode> {
    s.store.delete_chat_site(id).await?;
    s.chat.invalidate();
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------- admin: a campaign's settings

/// The chat settings of a chat campaign.
#[utoipa::path(get, path = "/campaigns/{id}/chat", tag = "chat", params(("id" = Uuid, Path)),
    security(("bearer" = [])),
    responses((status = 200, body = ChatSettings), (status = 404, body = Problem)))]
async fn get_chat_settings(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<ChatSettings>> {
    s.store.get_campaign(id).await?;
    match s.store.get_chat_settings(id).await? {
        Some(settings) => Ok(Json(settings)),
        None => Err(ApiError::not_found(format!(
            "campaign {id} has no chat settings yet; PUT them to this address"
        ))),
    }
}

/// Sets the chat settings of a chat campaign: its site, order (1 = highest priority),
/// triggers (at least one; all must hold), onboarding, optional start and end, paused.
#[utoipa::path(put, path = "/campaigns/{id}/chat", tag = "chat", params(("id" = Uuid, Path)),
    request_body = ChatSettingsInput, security(("bearer" = ["admin"])),
    responses((status = 200, body = ChatSettings), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn set_chat_settings(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(input): ApiJson<ChatSettingsInput>,
) -> ApiResult<Json<ChatSettings>> {
    let settings = input.validate()?;
    let saved = s.store.set_chat_settings(id, &settings).await?;
    s.chat.invalidate();
    Ok(Json(saved))
}

// ---------------------------------------------------------------- public: the configuration

/// One campaign as the widget sees it.
#[derive(Debug, Serialize)]
struct WidgetCampaign {
    id: Uuid,
    order: u32,
    greeting: String,
    onboarding: bool,
    triggers: Vec<Trigger>,
}

/// A site's configuration as the widget reads it.
#[derive(Debug, Serialize)]
struct WidgetConfig {
    max_per_visit: Option<u32>,
    campaigns: Vec<WidgetCampaign>,
}

/// One site's answer, made once per snapshot.
#[derive(Debug)]
pub(crate) struct SiteEntry {
    pub(crate) id: Uuid,
    pub(crate) origins: Vec<String>,
    /// The live campaigns' ids and greetings: a chat starts only on one of them.
    pub(crate) greetings: HashMap<Uuid, String>,
    etag: HeaderValue,
    body: Bytes,
}

impl SiteEntry {
    /// `origin` if the site allows it (a page of one of its allowed origins).
    pub(crate) fn allows(&self, origin: &HeaderValue) -> bool {
        origin
            .to_str()
            .is_ok_and(|o| self.origins.iter().any(|allowed| allowed == o))
    }
}

#[derive(Debug, Default)]
struct Snapshot {
    built: Option<Instant>,
    sites: HashMap<String, Arc<SiteEntry>>,
}

/// Every site's configuration on this node, rebuilt from the store at most once every
/// [`CONFIG_REFRESH`] (and after an admin's change made on this node).
#[derive(Debug, Default)]
pub struct ChatConfigs {
    snapshot: RwLock<Arc<Snapshot>>,
    rebuild: tokio::sync::Mutex<()>,
}

impl ChatConfigs {
    fn current(&self) -> Arc<Snapshot> {
        match self.snapshot.read() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn replace(&self, snap: Snapshot) {
        let snap = Arc::new(snap);
        match self.snapshot.write() {
            Ok(mut s) => *s = snap,
            Err(poisoned) => *poisoned.into_inner() = snap,
        }
    }

    /// The next request rebuilds the snapshot.
    pub fn invalidate(&self) {
        let sites = self.current().sites.clone();
        self.replace(Snapshot { built: None, sites });
    }

    fn fresh(snap: &Snapshot) -> bool {
        snap.built.is_some_and(|at| at.elapsed() < CONFIG_REFRESH)
    }

    /// The site whose key is `key` in the current snapshot (rebuilt first if it is old).
    pub(crate) async fn site(&self, s: &AppState, key: &str) -> Option<Arc<SiteEntry>> {
        if !is_site_key(key) {
            return None;
        }
        self.get(s).await.sites.get(key).cloned()
    }

    /// The snapshot, rebuilt first if it is older than [`CONFIG_REFRESH`]. One caller rebuilds
    /// it; the others meanwhile get the old one at once, so no page view waits on the store
    /// but the first after a start or an admin's change (which wait, to see that change). If
    /// the store fails, the old snapshot is served.
    async fn get(&self, s: &AppState) -> Arc<Snapshot> {
        let snap = self.current();
        if Self::fresh(&snap) {
            return snap;
        }
        let _one = if snap.built.is_some() {
            match self.rebuild.try_lock() {
                Ok(one) => one,
                Err(_) => return snap,
            }
        } else {
            self.rebuild.lock().await
        };
        let snap = self.current();
        if Self::fresh(&snap) {
            return snap;
        }
        self.rebuild_from(s, &snap).await
    }

    /// Builds a new snapshot from the store (the old one's sites if it fails), under `rebuild`.
    async fn rebuild_from(&self, s: &AppState, snap: &Snapshot) -> Arc<Snapshot> {
        match build(s).await {
            Ok(sites) => self.replace(Snapshot {
                built: Some(Instant::now()),
                sites,
            }),
            Err(e) => {
                tracing::warn!(error = ?e, "cannot rebuild the chat configurations; serving the last ones");
                self.replace(Snapshot {
                    built: Some(Instant::now()),
                    sites: snap.sites.clone(),
                });
            }
        }
        self.current()
    }
}

/// Every site's configuration: its campaigns that are live now (not paused, within start and
/// end, in their schedule's hours), in order, with their triggers compiled.
async fn build(s: &AppState) -> ApiResult<HashMap<String, Arc<SiteEntry>>> {
    let now = s.clock.now();
    let mut out = HashMap::new();
    let mut page = Page {
        limit: PAGE_MAX,
        after: None,
    };
    loop {
        let listing = s.store.list_chat_sites(page).await?;
        for site in &listing.items {
            let mut campaigns = Vec::new();
            let mut greetings = HashMap::new();
            for (campaign, settings) in s.store.site_campaigns(site.id).await? {
                if !settings.live_at(now) || !campaign.schedule.is_open(now, None) {
                    continue;
                }
                let triggers = match compile_triggers(&settings.triggers) {
                    Ok(t) => t,
                    Err(e) => {
                        tracing::warn!(campaign_id = %campaign.id, error = %e, "stored chat triggers do not compile; campaign left out");
                        continue;
                    }
                };
                let answer = s.store.get_answer(campaign.answer_id).await?;
                let Some(variant) = answer.variant(&campaign.language) else {
                    continue;
                };
                greetings.insert(campaign.id, variant.body.source().to_string());
                campaigns.push(WidgetCampaign {
                    id: campaign.id,
                    order: settings.order,
                    greeting: variant.body.source().to_string(),
                    onboarding: settings.onboarding,
                    triggers,
                });
            }
            let body = serde_json::to_vec(&WidgetConfig {
                max_per_visit: site.max_per_visit,
                campaigns,
            })
            .map_err(|e| ApiError::internal(format!("chat configuration: {e}")))?;
            let etag = format!("\"{}\"", hex::encode(&Sha256::digest(&body)[..16]));
            out.insert(
                site.key.clone(),
                Arc::new(SiteEntry {
                    id: site.id,
                    origins: site.allowed_origins.clone(),
                    greetings,
                    etag: HeaderValue::from_str(&etag)
                        .map_err(|e| ApiError::internal(e.to_string()))?,
                    body: Bytes::from(body),
                }),
            );
        }
        match listing.next_after {
            Some(after) => page.after = Some(after),
            None => return Ok(out),
        }
    }
}

/// `GET /chat/v1/sites/{key}/config`: the site's live campaigns for the widget.
async fn site_config(
    State(s): State<AppState>,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> Response {
    let unknown = || {
        (
            StatusCode::NOT_FOUND,
            [(header::CACHE_CONTROL, "public, max-age=60")],
            "no chat site has this key",
        )
            .into_response()
    };
    if !is_site_key(&key) {
        return unknown();
    }
    let snap = s.chat.get(&s).await;
    let Some(site) = snap.sites.get(&key).cloned() else {
        return unknown();
    };
    let mut res = if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == site.etag.as_bytes())
    {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(header::CONTENT_TYPE, "application/json")],
            site.body.clone(),
        )
            .into_response()
    };
    let h = res.headers_mut();
    h.insert(header::ETAG, site.etag.clone());
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(CONFIG_CACHE_CONTROL),
    );
    h.insert(header::VARY, HeaderValue::from_static("Origin"));
    if let Some(origin) = headers.get(header::ORIGIN)
        && site.allows(origin)
    {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    }
    res
}

/// The widget's script, compiled into the binary.
pub const WIDGET_JS: &str = include_str!("../../static/chat/widget.js");

/// [`WIDGET_JS`] gzipped at the best level, made at its first request.
fn widget_gz() -> &'static Bytes {
    static GZ: std::sync::OnceLock<Bytes> = std::sync::OnceLock::new();
    GZ.get_or_init(|| {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(WIDGET_JS.as_bytes())
            .and_then(|()| gz.finish())
            .map(Bytes::from)
            .expect("gzip into memory does not fail")
    })
}

/// Whether `Accept-Encoding` takes gzip (named, or `*`, without `q=0`).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
        })
}

/// The widget's script: gzipped for a browser that takes it (every browser does), as sent on
/// every page of every site that embeds it.
async fn widget_js(headers: HeaderMap) -> Response {
    let mut res = if accepts_gzip(&headers) {
        let mut res = crate::web::asset("text/javascript; charset=utf-8", "");
        *res.body_mut() = axum::body::Body::from(widget_gz().clone());
        res.headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        res
    } else {
        crate::web::asset("text/javascript; charset=utf-8", WIDGET_JS)
    };
    res.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_hex_of_their_length() {
        let a = new_site_key();
        assert!(is_site_key(&a), "{a}");
        assert_ne!(a, new_site_key());
        assert!(!is_site_key("ABCDEF0123456789abcdef0123456789"));
        assert!(!is_site_key("abc"));
        assert_eq!(
            snippet("https://herald.example.com/", "k"),
            "<script src=\"https://herald.example.com/chat/widget.js\" data-site=\"k\" async></script>"
        );
    }

    #[test]
    fn gzip_is_sent_only_where_accepted() {
        let accepts = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(
                header::ACCEPT_ENCODING,
                HeaderValue::from_str(v).expect("value"),
            );
            accepts_gzip(&h)
        };
        assert!(accepts("gzip, deflate, br, zstd"));
        assert!(accepts("br;q=1.0, GZIP;q=0.5"));
        assert!(accepts("*"));
        assert!(!accepts("gzip;q=0"));
        assert!(!accepts("gzip; q=0.0, identity"));
        assert!(!accepts("br, deflate"));
        assert!(!accepts("xgzip"));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }
}
