use super::PageQuery;
use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiResult, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use herald_core::{
    Campaign, CampaignInput, CampaignSpec, Channel, Listing, PAGE_MAX, Page,
    check_campaign_references,
};
use herald_store::{StoreError, TestSend};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_campaigns, create_campaign))
        .routes(routes!(get_campaign, update_campaign, delete_campaign))
        .routes(routes!(list_test_sends, create_test_send))
        .routes(routes!(campaign_report))
        .routes(routes!(campaign_report_csv))
}

/// Every campaign that matches, across all pages.
pub(crate) async fn all_campaigns(
    s: &AppState,
    keep: impl Fn(&Campaign) -> bool,
) -> ApiResult<Vec<Campaign>> {
    let mut out = Vec::new();
    let mut page = Page {
        limit: PAGE_MAX,
        after: None,
    };
    loop {
        let listing = s.store.list_campaigns(None, page).await?;
        out.extend(listing.items.into_iter().filter(&keep));
        match listing.next_after {
            Some(after) => page.after = Some(after),
            None => return Ok(out),
        }
    }
}

fn absent<T>(r: Result<T, StoreError>) -> ApiResult<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(StoreError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Checks a campaign input on its own and against the sender and answer it names.
async fn checked(s: &AppState, input: &CampaignInput) -> ApiResult<CampaignSpec> {
    let spec = input.validate()?;
    let sender = match spec.sender_id {
        Some(id) => absent(s.store.get_sender(id).await)?,
        None => None,
    };
    let answer = absent(s.store.get_answer(spec.answer_id).await)?;
    check_campaign_references(&spec, sender.as_ref(), answer.as_ref())?;
    Ok(spec)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CampaignQuery {
    /// Only campaigns of this channel.
    pub channel: Option<Channel>,
    pub limit: Option<u32>,
    pub after: Option<Uuid>,
}

/// Campaigns in creation order, optionally of one channel.
#[utoipa::path(get, path = "/campaigns", tag = "campaigns", params(CampaignQuery),
    security(("bearer" = [])),
    responses((status = 200, body = Listing<Campaign>), (status = 401, body = Problem)))]
async fn list_campaigns(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<CampaignQuery>,
) -> ApiResult<Json<Listing<Campaign>>> {
    let page = PageQuery {
        limit: q.limit,
        after: q.after,
    }
    .page()?;
    Ok(Json(s.store.list_campaigns(q.channel, page).await?))
}

/// Creates a campaign. The sender must be of the campaign's channel, the answer must have a
/// variant in the campaign's language, and names are unique per channel.
#[utoipa::path(post, path = "/campaigns", tag = "campaigns", request_body = CampaignInput,
    security(("bearer" = ["admin"])),
    responses((status = 201, body = Campaign), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn create_campaign(
    State(s): State<AppState>,
    ApiJson(input): ApiJson<CampaignInput>,
) -> ApiResult<(StatusCode, Json<Campaign>)> {
    let spec = checked(&s, &input).await?;
    Ok((
        StatusCode::CREATED,
        Json(s.store.create_campaign(&spec).await?),
    ))
}

/// One campaign.
#[utoipa::path(get, path = "/campaigns/{id}", tag = "campaigns", params(("id" = Uuid, Path)),
    security(("bearer" = [])),
    responses((status = 200, body = Campaign), (status = 404, body = Problem)))]
async fn get_campaign(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<Campaign>> {
    Ok(Json(s.store.get_campaign(id).await?))
}

/// Replaces a campaign's details, under the same rules as creation.
#[utoipa::path(put, path = "/campaigns/{id}", tag = "campaigns", params(("id" = Uuid, Path)),
    request_body = CampaignInput, security(("bearer" = ["admin"])),
    responses((status = 200, body = Campaign), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn update_campaign(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(input): ApiJson<CampaignInput>,
) -> ApiResult<Json<Campaign>> {
    s.store.get_campaign(id).await?;
    let spec = checked(&s, &input).await?;
    Ok(Json(s.store.update_campaign(id, &spec).await?))
}

/// Deletes a campaign.
#[utoipa::path(delete, path = "/campaigns/{id}", tag = "campaigns", params(("id" = Uuid, Path)),
    security(("bearer" = ["admin"])),
    responses((status = 204), (status = 404, body = Problem)))]
async fn delete_campaign(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<StatusCode> {
    s.store.delete_campaign(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A test send: the campaign's message for one row, to your own number or address.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestSendInput {
    /// The number (E.164, with `+` and country code) for SMS and voice campaigns, the email
    /// address for email campaigns.
    pub to: String,
    /// The row's values by column name, as the CSV would give them (`{"first_name": "Ada"}`).
    /// Every variable the answer uses needs a value, as in an outreach (422 names the missing
    /// ones).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub variables: serde_json::Map<String, serde_json::Value>,
}

/// How many test sends of a campaign are listed.
const TEST_SENDS_LISTED: u32 = 50;

/// Sends the campaign's message, rendered for `variables`, to `to` through the campaign's
/// sender, outside any outreach (no recipient, no progress), and records it as a test: 201 when
/// the provider took it, 502 when it did not (the record says `failed` with the reason).
#[utoipa::path(post, path = "/campaigns/{id}/test-sends", tag = "campaigns",
    params(("id" = Uuid, Path)), request_body = TestSendInput, security(("bearer" = ["admin"])),
    responses((status = 201, body = TestSend), (status = 404, body = Problem),
        (status = 409, description = "The address opted out of the sender", body = Problem),
        (status = 422, body = Problem),
        (status = 502, description = "The provider did not take the message", body = Problem)))]
async fn create_test_send(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(input): ApiJson<TestSendInput>,
) -> ApiResult<(StatusCode, Json<TestSend>)> {
    let request = herald_engine::TestSendRequest {
        campaign_id: id,
        to: &input.to,
        variables: &input.variables,
        requested_by: &format!("API token `{}`", caller.0.name),
    };
    match s.replies.test_send(&request).await {
        Ok(t) => Ok((StatusCode::CREATED, Json(t))),
        Err(e) => Err(super::conversations::reply_problem(e)),
    }
}

/// The campaign's latest test sends (at most 50), newest first.
#[utoipa::path(get, path = "/campaigns/{id}/test-sends", tag = "campaigns",
    params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 200, body = Vec<TestSend>), (status = 404, body = Problem)))]
async fn list_test_sends(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<Vec<TestSend>>> {
    s.store.get_campaign(id).await?;
    Ok(Json(s.store.list_test_sends(id, TEST_SENDS_LISTED).await?))
}

/// The campaign's figures over all its outreaches, as [`herald_store::OutreachReport`] gives
/// them for one (the campaign page draws them).
#[utoipa::path(get, path = "/campaigns/{id}/report", tag = "campaigns",
    params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 200, body = herald_store::OutreachReport), (status = 404, body = Problem)))]
async fn campaign_report(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<herald_store::OutreachReport>> {
    Ok(Json(s.store.campaign_report(id).await?))
}

/// The campaign's figures as CSV, one row per outreach in creation order and a last row of
/// totals: recipients, sent, delivered, replied, opted out (as in the report: skipped because
/// they had opted out, or answered STOP or unsubscribed), failed, skipped, waiting, uncertain,
/// the reply rate (replied over sent) and the opt-out rate (opted out over recipients), in
/// percent. Cells a spreadsheet could run are neutralized.
#[utoipa::path(get, path = "/campaigns/{id}/report.csv", tag = "campaigns",
    params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 200, content_type = "text/csv", body = String),
        (status = 404, body = Problem)))]
async fn campaign_report_csv(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<axum::response::Response> {
    Ok(figures_csv_response(
        id,
        campaign_figures_csv(&*s.store, id).await?,
    ))
}

/// The CSV of [`campaign_report_csv`] as a download.
pub(crate) fn figures_csv_response(id: Uuid, csv: Vec<u8>) -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        [
            (
                axum::http::header::CONTENT_TYPE,
                "text/csv; charset=utf-8".to_string(),
            ),
            (
                axum::http::header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"campaign-{id}-figures.csv\""),
            ),
        ],
        csv,
    )
        .into_response()
}

/// A campaign's figures: its outreaches in creation order with the recipients of each who
/// opted out ([`herald_store::OutreachReport::opted_out`]), and the sums over all of them.
pub(crate) struct CampaignFigures {
    pub outreaches: Vec<(herald_store::Outreach, u64)>,
    pub total: herald_core::outreach::Progress,
    pub opted_out: u64,
}

/// The campaign's outreaches in creation order, with their progress and opt-outs summed.
pub(crate) async fn campaign_figures(
    store: &dyn herald_store::Store,
    id: Uuid,
) -> Result<CampaignFigures, StoreError> {
    let outreaches =
        crate::web::settings::collect_all(|p| store.list_outreaches(id, None, p)).await?;
    let opted_out = store.opted_out_by_outreach(id).await?;
    let mut figures = CampaignFigures {
        outreaches: Vec::with_capacity(outreaches.len()),
        total: herald_core::outreach::Progress::default(),
        opted_out: 0,
    };
    for o in outreaches {
        let out = opted_out.get(&o.id).copied().unwrap_or(0);
        figures.total.add_all(&o.progress);
        figures.opted_out = figures.opted_out.saturating_add(out);
        figures.outreaches.push((o, out));
    }
    Ok(figures)
}

/// `part` of `whole` in percent with one decimal, empty when `whole` is 0.
fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return String::new();
    }
    #[allow(clippy::cast_precision_loss)] // counts of recipients, far below 2^52
    let r = part as f64 * 100.0 / whole as f64;
    format!("{r:.1}")
}

/// The rows of [`campaign_report_csv`]: one per outreach, then the totals.
pub(crate) async fn campaign_figures_csv(
    store: &dyn herald_store::Store,
    id: Uuid,
) -> Result<Vec<u8>, StoreError> {
    store.get_campaign(id).await?;
    let figures = |p: &herald_core::outreach::Progress, opted_out: u64| {
        [
            p.total,
            p.sent,
            p.delivered,
            p.replied,
            opted_out,
            p.failed,
            p.skipped,
            p.pending,
            p.uncertain,
        ]
        .iter()
        .map(u64::to_string)
        .chain([percent(p.replied, p.sent), percent(opted_out, p.total)])
        .collect::<Vec<String>>()
    };
    let mut rows = vec![
        [
            "outreach",
            "file",
            "created_at",
            "status",
            "recipients",
            "sent",
            "delivered",
            "replied",
            "opted_out",
            "failed",
            "skipped",
            "waiting",
            "uncertain",
            "reply_rate_pct",
            "opt_out_rate_pct",
        ]
        .map(str::to_string)
        .to_vec(),
    ];
    let all = campaign_figures(store, id).await?;
    for (o, opted_out) in &all.outreaches {
        let mut row = vec![
            o.id.to_string(),
            herald_import::neutralize_cell(&o.file_name),
            o.created_at.to_string(),
            o.status.as_str().to_string(),
        ];
        row.extend(figures(&o.progress, *opted_out));
        rows.push(row);
    }
    let mut last = vec![
        "total".to_string(),
        String::new(),
        String::new(),
        String::new(),
    ];
    last.extend(figures(&all.total, all.opted_out));
    rows.push(last);
    Ok(super::tracking::csv_bytes(rows))
}
