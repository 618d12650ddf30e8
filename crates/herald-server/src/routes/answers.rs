use super::PageQuery;
use super::campaigns::all_campaigns;
use crate::AppState;
use crate::error::{ApiResult, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use herald_core::{Answer, AnswerInput, AnswerSpec, Campaign, Channel, Listing, ValidationError};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_answers, create_answer))
        .routes(routes!(preview_answer))
        .routes(routes!(get_answer, update_answer, delete_answer))
}

/// What to preview: a variant's subject and body as typed, and sample variables.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
pub struct PreviewInput {
    pub subject: Option<String>,
    pub body: String,
    /// Sample values, as a row of the recipient list would give them.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub variables: serde_json::Map<String, serde_json::Value>,
}

/// A rendered preview, with what the body costs as an SMS and the two parts of it as an email.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Preview {
    pub subject: Option<String>,
    /// The body as an SMS or a call carries it: as typed, the variables substituted.
    pub body: String,
    /// Encoding (GSM-7 or UCS-2), segments and length of the body sent as an SMS.
    pub sms: herald_core::SmsInfo,
    /// The body as an email campaign sends it (the body is Markdown there).
    pub email: EmailPreview,
}

/// The two parts of an email, each ending with the unsubscribe footer; the footer's link here
/// is [`PREVIEW_UNSUBSCRIBE_URL`], where each recipient gets their own.
#[derive(Debug, Clone, Default, serde::Serialize, utoipa::ToSchema)]
pub struct EmailPreview {
    /// The `text/plain` part.
    pub text: String,
    /// The `text/html` part's body: the Markdown as HTML, the variables escaped.
    pub html: String,
}

/// The link in a preview's unsubscribe footer, standing for each recipient's own.
pub const PREVIEW_UNSUBSCRIBE_URL: &str =
    "https://herald.example/unsubscribe/each-recipient-gets-their-own-link";

/// The email parts of a body, as an email campaign renders them for a recipient with `vars`.
/// The API's preview and the web form's both show it.
pub(crate) fn email_preview<V: serde::Serialize + ?Sized>(
    subject: Option<&str>,
    body: &str,
    vars: &V,
) -> Result<EmailPreview, herald_core::RenderError> {
    let rendered = herald_core::Renderer::email_from_sources(subject, body)?.render(vars)?;
    let mut text = rendered.body;
    let mut html = rendered.html.unwrap_or_default();
    herald_core::markdown::add_footer(&mut text, &mut html, PREVIEW_UNSUBSCRIBE_URL);
    Ok(EmailPreview { text, html })
}

/// Renders a subject and body with sample variables, as a recipient would get them, and says
/// how many SMS segments the body takes and in which encoding, and what an email campaign sends:
/// the body as Markdown in a plain-text part and an HTML part, with the unsubscribe footer.
/// Nothing is stored: call it as the answer is typed.
#[utoipa::path(post, path = "/answers/preview", tag = "answers", request_body = PreviewInput,
    security(("bearer" = ["admin"])),
    responses((status = 200, body = Preview), (status = 422, body = Problem)))]
async fn preview_answer(ApiJson(input): ApiJson<PreviewInput>) -> ApiResult<Json<Preview>> {
    use herald_core::render::{Part, RenderError, Renderer};
    let field = |part: Part| match part {
        Part::Subject => "subject",
        Part::Body => "body",
    };
    let renderer = Renderer::from_sources(input.subject.as_deref(), &input.body).map_err(|e| {
        let part = match &e {
            RenderError::Template { part, .. } => *part,
            _ => Part::Body,
        };
        ValidationError::single(field(part), e.to_string())
    })?;
    let rendered = renderer
        .render(&input.variables)
        .map_err(|e| ValidationError::single("variables", e.to_string()))?;
    // It compiled and rendered as text; as Markdown it can fail only the same ways.
    let email = email_preview(input.subject.as_deref(), &input.body, &input.variables)
        .map_err(|e| ValidationError::single("body", e.to_string()))?;
    Ok(Json(Preview {
        sms: herald_core::sms::analyze(&rendered.body),
        subject: rendered.subject,
        body: rendered.body,
        email,
    }))
}

/// Answers in creation order.
#[utoipa::path(get, path = "/answers", tag = "answers", params(PageQuery),
    security(("bearer" = [])),
    responses((status = 200, body = Listing<Answer>), (status = 401, body = Problem)))]
async fn list_answers(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Listing<Answer>>> {
    Ok(Json(s.store.list_answers(q.page()?).await?))
}

/// Saves an answer. Every variant's body (and subject) must be a template that parses; a
/// broken one is refused with its line and the reason.
#[utoipa::path(post, path = "/answers", tag = "answers", request_body = AnswerInput,
    security(("bearer" = ["admin"])),
    responses((status = 201, body = Answer), (status = 422, body = Problem)))]
async fn create_answer(
    State(s): State<AppState>,
    ApiJson(input): ApiJson<AnswerInput>,
) -> ApiResult<(StatusCode, Json<Answer>)> {
    let spec = input.validate()?;
    Ok((
        StatusCode::CREATED,
        Json(s.store.create_answer(&spec).await?),
    ))
}

/// One answer with its variants.
#[utoipa::path(get, path = "/answers/{id}", tag = "answers", params(("id" = Uuid, Path)),
    security(("bearer" = [])),
    responses((status = 200, body = Answer), (status = 404, body = Problem)))]
async fn get_answer(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<Answer>> {
    Ok(Json(s.store.get_answer(id).await?))
}

/// Replaces an answer's name and variants. A variant that a campaign uses cannot be removed
/// (nor lose its subject, for email campaigns).
#[utoipa::path(put, path = "/answers/{id}", tag = "answers", params(("id" = Uuid, Path)),
    request_body = AnswerInput, security(("bearer" = ["admin"])),
    responses((status = 200, body = Answer), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn update_answer(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(input): ApiJson<AnswerInput>,
) -> ApiResult<Json<Answer>> {
    s.store.get_answer(id).await?;
    let spec = input.validate()?;
    let errors = variants_still_needed(&spec, &all_campaigns(&s, |c| c.answer_id == id).await?);
    if !errors.is_empty() {
        return Err(ValidationError::single("variants", errors.join("; ")).into());
    }
    Ok(Json(s.store.update_answer(id, &spec).await?))
}

/// What the new variants of an answer take away from the campaigns that send it (`campaigns`:
/// those using the answer): a variant in a campaign's language, or its subject for an email
/// campaign. Empty when the update may go ahead. The API and the web form both refuse with it.
pub(crate) fn variants_still_needed(spec: &AnswerSpec, campaigns: &[Campaign]) -> Vec<String> {
    let mut problems = Vec::new();
    for c in campaigns {
        match spec.variants.iter().find(|v| v.language == c.language) {
            None => problems.push(format!(
                "campaign `{}` sends the {} variant",
                c.name, c.language
            )),
            Some(v) if c.channel == Channel::Email && v.subject.is_none() => {
                problems.push(format!(
                    "email campaign `{}` needs a subject in {}",
                    c.name, c.language
                ))
            }
            Some(_) => {}
        }
    }
    problems
}

/// Deletes an answer no campaign uses.
#[utoipa::path(delete, path = "/answers/{id}", tag = "answers", params(("id" = Uuid, Path)),
    security(("bearer" = ["admin"])),
    responses((status = 204), (status = 404, body = Problem), (status = 409, description = "A campaign uses it", body = Problem)))]
async fn delete_answer(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<StatusCode> {
    s.store.delete_answer(id).await?;
    Ok(StatusCode::NO_CONTENT)
}
