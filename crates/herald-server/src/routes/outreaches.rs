//! Outreaches: upload a recipient list to launch a campaign, read the result and its report.

use crate::AppState;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiPath, ApiQuery};
use crate::limits::{Refusal, UploadPermit};
use axum::Json;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use herald_core::outreach::OutreachStatus;
use herald_core::{Listing, ValidationError};
use herald_engine::{
    ImportOutreachError, OutreachUpload, check_reviewed, import_outreach, review_outreach,
};
use herald_store::{Outreach, Store};
use jiff::Timestamp;
use serde::Deserialize;
use std::io::Write;
use std::sync::Arc;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_outreach, list_outreaches))
        .layer(DefaultBodyLimit::disable())
        .routes(routes!(get_outreach))
        .routes(routes!(outreach_report))
        .routes(routes!(outreach_errors))
}

/// The multipart form of an upload.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // documents the form; the handler reads the fields as a stream
pub struct OutreachForm {
    /// The recipient list: a CSV with a header row and a `phone` (sms, voice) or `email` column.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// RFC 3339; defaults to now.
    start_at: Option<String>,
    /// RFC 3339; when it passes, the outreach completes and unsent recipients expire.
    end_at: Option<String>,
    /// ISO 3166 alpha-2 region for numbers written without `+country`; defaults to the sender
    /// number's region.
    default_region: Option<String>,
    /// The `digest` of the review of this file (`?dry_run=true`): the launch is refused when the
    /// file is not the one reviewed.
    reviewed: Option<String>,
}

/// `?dry_run=true`: review the upload, store nothing.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadQuery {
    /// Read and check the file as a launch would, and answer 200 with what launching it would do
    /// (summary, first row errors, the message for the first rows, warnings, forecast) without
    /// storing anything. Launch by posting the same file without `dry_run`, with the review's
    /// `digest` as `reviewed`.
    #[serde(default)]
    pub dry_run: bool,
}

fn parse_time(field: &'static str, value: &str) -> ApiResult<Timestamp> {
    value.trim().parse::<Timestamp>().map_err(|_| {
        ApiError::invalid(ValidationError::single(
            field,
            format!(
                "`{}` is not an RFC 3339 time such as 2026-12-01T09:00:00Z",
                clip(value.trim(), 40)
            ),
        ))
    })
}

/// The most bytes a text field of an upload form (`start_at`, `default_region`, ...) may have.
pub(crate) const MAX_TEXT_FIELD: usize = 4 * 1024;

/// `text` cut to `max` characters, with `…` when cut: what an error message may quote of what a
/// caller sent.
pub(crate) fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", text.get(..cut).unwrap_or_default()),
        None => text.to_string(),
    }
}

/// Reads a text field of a multipart form, refusing it past [`MAX_TEXT_FIELD`] bytes (the
/// refusal does not quote it).
pub(crate) async fn read_text(
    field: &mut axum::extract::multipart::Field<'_>,
    name: &str,
) -> ApiResult<String> {
    let mut text = Vec::new();
    while let Some(chunk) = field
        .chunk()
        .await
        .map_err(|e| ApiError::bad_request(format!("the form was cut off: {e}")))?
    {
        if text.len() + chunk.len() > MAX_TEXT_FIELD {
            return Err(ApiError::invalid(ValidationError::single(
                clip(name, 64),
                format!(
                    "is longer than {}, the most a text field of this form may have",
                    crate::limits::human_bytes(MAX_TEXT_FIELD as u64)
                ),
            )));
        }
        text.extend_from_slice(&chunk);
    }
    String::from_utf8(text).map_err(|_| {
        ApiError::invalid(ValidationError::single(clip(name, 64), "is not UTF-8 text"))
    })
}

/// Spools a multipart file field to an anonymous temp file, refusing it past `max_bytes`, or
/// Reads and drops what is left of a form that is refused as a whole, so that the client gets
/// the answer rather than a reset connection (the API and the web form both call it). Nothing of
/// it is kept.
pub(crate) async fn drain(form: &mut Multipart) {
    while let Ok(Some(mut field)) = form.next_field().await {
        while let Ok(Some(_)) = field.chunk().await {}
    }
}

/// when the uploads in progress would hold more temporary bytes than `permit`'s gate allows.
pub(crate) async fn spool(
    field: &mut axum::extract::multipart::Field<'_>,
    max_bytes: u64,
    permit: &mut UploadPermit,
) -> Result<std::fs::File, Refusal> {
    let mut file = tempfile::tempfile()
        .map_err(|e| ApiError::internal(format!("cannot spool the upload: {e}")))?;
    let mut written: u64 = 0;
    while let Some(chunk) = field
        .chunk()
        .await
        .map_err(|e| ApiError::bad_request(format!("the upload was cut off: {e}")))?
    {
        written += chunk.len() as u64;
        if written > max_bytes {
            return Err(ApiError::invalid(ValidationError::single(
                "file",
                herald_import::FileError::TooLarge { limit: max_bytes }.to_string(),
            ))
            .into());
        }
        permit.reserve(chunk.len() as u64)?;
        file.write_all(&chunk)
            .map_err(|e| ApiError::internal(format!("cannot spool the upload: {e}")))?;
    }
    Ok(file)
}

impl From<ImportOutreachError> for ApiError {
    fn from(e: ImportOutreachError) -> Self {
        match e {
            ImportOutreachError::Invalid { field, message } => {
                ApiError::invalid(ValidationError::single(field, message))
            }
            ImportOutreachError::File(e) => {
                ApiError::invalid(ValidationError::single("file", e.to_string()))
            }
            ImportOutreachError::Store(e) => e.into(),
            ImportOutreachError::Io(e) => {
                ApiError::internal(format!("reading the upload failed: {e}"))
            }
            ImportOutreachError::Internal(m) => ApiError::internal(m),
        }
    }
}

/// Launches an outreach of the campaign to an uploaded recipient list (multipart form).
///
/// The file is checked as a whole first: a refused file stores nothing. Rows that fail are
/// counted in the summary and listed in `errors.csv`; duplicates (by normalized address) keep
/// their first row; addresses on the opt-out list are stored as suppressed, never messaged.
/// Lists are limited in size, rows, columns (1,000) and bytes per row (64 KiB); text fields to
/// 4 KiB. A few uploads are taken at once (`outreaches.concurrent_uploads`); past that, or past
/// the temporary space they may hold together, the answer is 503 with `Retry-After`.
#[utoipa::path(post, path = "/campaigns/{id}/outreaches", tag = "outreaches",
    params(("id" = Uuid, Path, description = "campaign id")),
    params(UploadQuery),
    request_body(content = OutreachForm, content_type = "multipart/form-data"),
    security(("bearer" = ["admin"])),
    responses((status = 201, description = "launched", body = Outreach),
        (status = 200, description = "`dry_run=true`: what launching would do; nothing stored", body = herald_engine::OutreachReview),
        (status = 404, body = Problem), (status = 422, body = Problem),
        (status = 503, description = "Herald takes no more uploads at the moment; see `Retry-After`", body = Problem)))]
async fn create_outreach(
    State(s): State<AppState>,
    ApiPath(campaign_id): ApiPath<Uuid>,
    ApiQuery(q): ApiQuery<UploadQuery>,
    mut form: Multipart,
) -> Result<Response, Refusal> {
    // Refuse an unknown campaign before reading the file.
    s.store
        .get_campaign(campaign_id)
        .await
        .map_err(ApiError::from)?;
    // Held until the import is over and the spooled file is gone.
    let mut permit = s.gates.uploads.enter()?;
    let mut file = None;
    let mut file_name = String::new();
    let mut start_at = None;
    let mut end_at = None;
    let mut default_region = None;
    let mut reviewed = None;
    // A refusal reads and drops the rest of the form (bounded by the route's body limit), so
    // that the client gets the answer rather than a reset connection.
    let read = async {
        while let Some(mut field) = form
            .next_field()
            .await
            .map_err(|e| ApiError::bad_request(format!("the form could not be read: {e}")))?
        {
            let name = field.name().unwrap_or_default().to_string();
            match name.as_str() {
                "file" => {
                    file_name = clip(field.file_name().unwrap_or("recipients.csv"), 200);
                    file = Some(spool(&mut field, s.import_limits.max_bytes, &mut permit).await?);
                }
                "start_at" | "end_at" | "default_region" | "reviewed" => {
                    let text = read_text(&mut field, &name).await?;
                    if text.trim().is_empty() {
                        continue;
                    }
                    match name.as_str() {
                        "start_at" => start_at = Some(parse_time("start_at", &text)?),
                        "end_at" => end_at = Some(parse_time("end_at", &text)?),
                        "reviewed" => reviewed = Some(text.trim().to_string()),
                        _ => default_region = Some(text.trim().to_string()),
                    }
                }
                other => {
                    return Err(ApiError::invalid(ValidationError::single(
                        clip(other, 64),
                        "is not a field of this form; send file, start_at, end_at, default_region, \
                         reviewed",
                    ))
                    .into());
                }
            }
        }
        Ok::<(), Refusal>(())
    }
    .await;
    if let Err(refusal) = read {
        drain(&mut form).await;
        return Err(refusal);
    }
    let Some(mut file) = file else {
        return Err(ApiError::invalid(ValidationError::single(
            "file",
            "is required: the CSV of recipients",
        ))
        .into());
    };
    let now = s.clock.now();
    if let Some(digest) = reviewed.as_deref().filter(|_| !q.dry_run) {
        check_reviewed(&mut file, digest).map_err(ApiError::from)?;
    }
    let upload = OutreachUpload {
        campaign_id,
        file,
        file_name,
        start_at: start_at.unwrap_or(now),
        end_at,
        default_region,
        limits: s.import_limits,
    };
    if q.dry_run {
        let review = review_outreach(s.store.clone(), upload, &s.dispatch_config(), now)
            .await
            .map_err(ApiError::from)?;
        drop(permit);
        return Ok((StatusCode::OK, Json(review)).into_response());
    }
    let outreach = import_outreach(s.store.clone(), upload, Arc::new(|_| {}))
        .await
        .map_err(ApiError::from)?;
    drop(permit);
    s.outreach_created(outreach.summary.rows);
    Ok((StatusCode::CREATED, Json(outreach)).into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OutreachQuery {
    /// Only outreaches of this status (the UI's tabs).
    pub status: Option<OutreachStatus>,
    pub limit: Option<u32>,
    pub after: Option<Uuid>,
}

/// A campaign's outreaches in creation order.
#[utoipa::path(get, path = "/campaigns/{id}/outreaches", tag = "outreaches",
    params(("id" = Uuid, Path, description = "campaign id"), OutreachQuery),
    security(("bearer" = [])),
    responses((status = 200, body = Listing<Outreach>), (status = 404, body = Problem)))]
async fn list_outreaches(
    State(s): State<AppState>,
    ApiPath(campaign_id): ApiPath<Uuid>,
    ApiQuery(q): ApiQuery<OutreachQuery>,
) -> ApiResult<Json<Listing<Outreach>>> {
    s.store.get_campaign(campaign_id).await?;
    let page = herald_core::Page::new(q.limit, q.after)?;
    Ok(Json(
        s.store.list_outreaches(campaign_id, q.status, page).await?,
    ))
}

/// One outreach with its import summary.
#[utoipa::path(get, path = "/outreaches/{id}", tag = "outreaches",
    params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 200, body = Outreach), (status = 404, body = Problem)))]
async fn get_outreach(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<Outreach>> {
    Ok(Json(s.store.get_outreach(id).await?))
}

/// The outreach's figures: the funnel (recipients → sent → delivered → replied, with failed,
/// skipped, waiting and uncertain), skips and failures by reason, sends per hour, and the
/// median time to reply. The outreach page draws the same figures as charts.
#[utoipa::path(get, path = "/outreaches/{id}/report", tag = "outreaches",
    params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 200, body = herald_store::OutreachReport), (status = 404, body = Problem)))]
async fn outreach_report(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<herald_store::OutreachReport>> {
    Ok(Json(s.store.outreach_report(id).await?))
}

const ERROR_PAGE: u32 = 10_000;

/// The rows of the upload that were not imported, as CSV (`line,column,value,reason`), safe to
/// open in a spreadsheet: cells that start with `=`, `+`, `-` or `@` are neutralized.
#[utoipa::path(get, path = "/outreaches/{id}/errors.csv", tag = "outreaches",
    params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 200, content_type = "text/csv", body = String), (status = 404, body = Problem)))]
pub(crate) async fn outreach_errors(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Response> {
    let outreach = s.store.get_outreach(id).await?;
    let store = s.store.clone();
    let header_row = csv_rows(&[], true);
    let pages = futures_util::stream::unfold(Some(0i64), move |cursor| {
        let store: Arc<dyn Store> = store.clone();
        async move {
            let after = cursor?;
            match store.import_errors(id, after, ERROR_PAGE).await {
                Ok(page) if page.is_empty() => None,
                Ok(page) => {
                    let next = page.last().map(|(c, _)| *c);
                    let done = page.len() < ERROR_PAGE as usize;
                    let records: Vec<_> = page.into_iter().map(|(_, e)| e).collect();
                    let bytes = csv_rows(&records, false);
                    Some((
                        Ok::<_, std::io::Error>(bytes),
                        if done { None } else { next },
                    ))
                }
                Err(e) => {
                    tracing::error!(error = %e, outreach_id = %id, "reading the error report failed");
                    Some((Err(std::io::Error::other(e.to_string())), None))
                }
            }
        }
    });
    csv_attachment(&outreach.file_name, "errors", header_row, pages)
}

/// A CSV download named after the upload (`list-errors.csv` for `list.csv` and `errors`): the
/// header row, then each page as the stream yields it, so memory stays flat however long it is.
pub(crate) fn csv_attachment(
    file_name: &str,
    what: &str,
    header_row: Vec<u8>,
    pages: impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send + 'static,
) -> ApiResult<Response> {
    let body = futures_util::StreamExt::chain(
        futures_util::stream::once(async move { Ok(header_row) }),
        pages,
    );
    let stem = file_name
        .trim_end_matches(".csv")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect::<String>();
    Response::builder()
        .header(header::CONTENT_TYPE, "text/csv; charset=utf-8")
        .header(
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{stem}-{what}.csv\""),
        )
        .body(Body::from_stream(body))
        .map_err(|e| ApiError::internal(e.to_string()))
}

fn csv_rows(records: &[herald_store::ImportErrorRecord], header_only: bool) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let result = if header_only {
        w.write_record(["line", "column", "value", "reason"])
    } else {
        records.iter().try_for_each(|e| {
            w.write_record([
                e.line.to_string(),
                herald_import::neutralize_cell(e.column.as_deref().unwrap_or("")),
                herald_import::neutralize_cell(&e.value),
                herald_import::neutralize_cell(&e.reason),
            ])
        })
    };
    if let Err(e) = result {
        tracing::error!(error = %e, "writing the error report failed");
    }
    w.into_inner().unwrap_or_default()
}
