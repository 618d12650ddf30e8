//! Settings → Answers: the messages campaigns send, one variant per language, with the
//! answer's live preview (rendered text, SMS segments and encoding).

use crate::AppState;
use crate::web::render_status;
use crate::web::session::WebId;
use crate::web::session::{Admin, Chrome, CurrentUser};
use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use herald_core::render::Renderer;
use herald_core::{AnswerInput, AnswerVariantInput, ValidationError};
use std::collections::BTreeSet;
use uuid::Uuid;

use super::PageResult;
use super::forms::{CsrfForm, FieldErrors, FormPairs, collect_all, deleted, saved, settings_err};

struct AnswerRow {
    id: Uuid,
    name: String,
    languages: Vec<String>,
}

#[derive(Template)]
#[template(path = "settings_answers.html")]
struct AnswersPage {
    chrome: Chrome,
    answers: Vec<AnswerRow>,
    notice: Option<String>,
}

/// One language variant of the answer form (`language_{index}`, `subject_{index}`,
/// `body_{index}`, `voice_{index}`).
struct VariantRow {
    index: usize,
    language: String,
    subject: String,
    body: String,
    voice: String,
    language_error: Option<String>,
    subject_error: Option<String>,
    body_error: Option<String>,
    voice_error: Option<String>,
}

#[derive(Template)]
#[template(path = "settings_answer_form.html")]
struct AnswerFormPage {
    chrome: Chrome,
    /// `None` for a new answer.
    id: Option<Uuid>,
    name: String,
    variants: Vec<VariantRow>,
    sample: String,
    errors: FieldErrors,
    preview: PreviewView,
}

/// The content of `#preview`.
#[derive(Default)]
struct PreviewView {
    subject: Option<String>,
    body: String,
    segments: u32,
    encoding: String,
    units: u32,
    /// The body as an email campaign sends it: both parts, with the unsubscribe footer.
    email: crate::routes::answers::EmailPreview,
    error: Option<String>,
    /// Variables the sample does not give, shown as `[name]`.
    unsampled: Vec<String>,
    /// The variables the subject and body read.
    variables: Vec<String>,
    /// Variables that no recent recipient list of the campaigns using the answer had as a
    /// column (a misspelling, most likely), and the columns those lists had.
    unknown_columns: Vec<String>,
    recent_columns: String,
    /// Nothing typed yet.
    empty: bool,
}

impl PreviewView {
    fn segments_text(&self) -> String {
        if self.segments == 1 {
            "1 segment".to_string()
        } else {
            format!("{} segments", self.segments)
        }
    }
}

#[derive(Template)]
#[template(path = "settings_answer_preview.html")]
struct PreviewFragment {
    preview: PreviewView,
}

/// The answer form as submitted: the name, the numbered variants in form order, the sample.
struct AnswerSubmission {
    name: String,
    /// `(form index, language, subject, body)`, blank variants included.
    variants: Vec<(usize, String, String, String)>,
    /// The voice script of each form index that has one.
    voices: std::collections::BTreeMap<usize, String>,
    sample: String,
}

impl AnswerSubmission {
    fn parse(form: &FormPairs) -> Self {
        let mut indices = BTreeSet::new();
        for (key, _) in &form.0 {
            for prefix in ["language_", "subject_", "body_", "voice_"] {
                if let Some(n) = key
                    .strip_prefix(prefix)
                    .and_then(|n| n.parse::<usize>().ok())
                {
                    indices.insert(n);
                }
            }
        }
        let variants = indices
            .into_iter()
            .map(|i| {
                (
                    i,
                    form.get(&format!("language_{i}")).to_string(),
                    form.get(&format!("subject_{i}")).to_string(),
                    form.get(&format!("body_{i}")).to_string(),
                )
            })
            .collect::<Vec<_>>();
        let voices = variants
            .iter()
            .map(|(i, ..)| (*i, form.get(&format!("voice_{i}")).to_string()))
            .filter(|(_, v)| !v.trim().is_empty())
            .collect();
        Self {
            name: form.get("name").to_string(),
            variants,
            voices,
            sample: form.get("sample").to_string(),
        }
    }

    /// The API input (blank variants left out) and, for each of its variants, the form index.
    fn input(&self) -> (AnswerInput, Vec<usize>) {
        let mut indices = Vec::new();
        let mut variants = Vec::new();
        for (i, language, subject, body) in &self.variants {
            let voice = self.voices.get(i);
            if language.trim().is_empty()
                && subject.trim().is_empty()
                && body.trim().is_empty()
                && voice.is_none()
            {
                continue;
            }
            indices.push(*i);
            variants.push(AnswerVariantInput {
                language: language.clone(),
                subject: Some(subject.clone()),
                body: body.clone(),
                voice: voice.cloned(),
            });
        }
        (
            AnswerInput {
                name: self.name.clone(),
                variants,
            },
            indices,
        )
    }
}

/// Places the API's answer errors (`variants[1].body`) on the form's fields (`body_3`).
fn answer_errors(e: &ValidationError, indices: &[usize]) -> FieldErrors {
    FieldErrors::from_validation(e, |field| {
        if field == "name" {
            return ("name".into(), "Name");
        }
        if let Some(rest) = field.strip_prefix("variants[")
            && let Some((n, part)) = rest.split_once("].")
            && let Some(index) = n.parse::<usize>().ok().and_then(|k| indices.get(k))
        {
            let label = match part {
                "language" => "Language",
                "subject" => "Subject",
                "voice" => "Voice script",
                _ => "Body",
            };
            return (format!("{part}_{index}"), label);
        }
        ("variants".into(), "The answer")
    })
}

fn variant_rows(sub: &AnswerSubmission, errors: &FieldErrors) -> Vec<VariantRow> {
    let mut rows: Vec<VariantRow> = sub
        .variants
        .iter()
        .map(|(i, language, subject, body)| VariantRow {
            index: *i,
            language: language.clone(),
            subject: subject.clone(),
            body: body.clone(),
            voice: sub.voices.get(i).cloned().unwrap_or_default(),
            language_error: errors.get(&format!("language_{i}")),
            subject_error: errors.get(&format!("subject_{i}")),
            body_error: errors.get(&format!("body_{i}")),
            voice_error: errors.get(&format!("voice_{i}")),
        })
        .collect();
    // Always one blank variant at the end, to add a language.
    let has_blank = rows.last().is_some_and(|r| {
        r.language.trim().is_empty()
            && r.subject.trim().is_empty()
            && r.body.trim().is_empty()
            && r.voice.trim().is_empty()
    });
    if !has_blank || rows.len() < 2 {
        let next = rows.iter().map(|r| r.index + 1).max().unwrap_or(0);
        for index in next..next + if rows.is_empty() { 2 } else { 1 } {
            rows.push(VariantRow {
                index,
                language: String::new(),
                subject: String::new(),
                body: String::new(),
                voice: String::new(),
                language_error: None,
                subject_error: None,
                body_error: None,
                voice_error: None,
            });
        }
    }
    rows
}

/// Sample variables as `name=value` lines; blank lines are skipped.
fn parse_sample(sample: &str) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    let mut vars = serde_json::Map::new();
    for (n, line) in sample.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match line.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                vars.insert(
                    k.trim().to_string(),
                    serde_json::Value::String(v.trim().to_string()),
                );
            }
            _ => {
                return Err(format!(
                    "sample line {}: write each sample variable as name=value",
                    n + 1
                ));
            }
        }
    }
    Ok(vars)
}

/// Renders a subject and body with the sample variables, as the API's
/// `POST /api/v1/answers/preview` does (same renderer, same SMS analysis); errors are shown,
/// never a failure.
fn preview(subject: &str, body: &str, sample: &str) -> PreviewView {
    if body.trim().is_empty() && subject.trim().is_empty() {
        return PreviewView {
            empty: true,
            ..PreviewView::default()
        };
    }
    let subject = (!subject.trim().is_empty()).then_some(subject);
    let mut unsampled = Vec::new();
    let mut variables = Vec::new();
    let result = parse_sample(sample).and_then(|mut vars| {
        Renderer::from_sources(subject, body)
            .and_then(|r| {
                // A variable the sample does not give is shown by its name, not as an error:
                // the answer is fine, the sample is just not filled in (yet).
                variables = r.variables().iter().map(|v| v.to_string()).collect();
                for v in r.variables() {
                    if !vars.contains_key(v) {
                        unsampled.push(v.to_string());
                        vars.insert(v.to_string(), serde_json::Value::String(format!("[{v}]")));
                    }
                }
                r.render(&vars)
            })
            .and_then(|rendered| {
                crate::routes::answers::email_preview(subject, body, &vars)
                    .map(|email| (rendered, email))
            })
            .map_err(|e| e.to_string())
    });
    match result {
        Ok((rendered, email)) => {
            let sms = herald_core::sms::analyze(&rendered.body);
            PreviewView {
                subject: rendered.subject,
                body: rendered.body,
                segments: sms.segments,
                encoding: sms.encoding.to_string(),
                units: sms.units,
                email,
                error: None,
                unsampled,
                variables,
                empty: false,
                ..PreviewView::default()
            }
        }
        Err(error) => PreviewView {
            error: Some(error),
            ..PreviewView::default()
        },
    }
}

/// How many of the latest recipient lists an answer's variables are checked against.
const RECENT_LISTS: u32 = 5;

/// Adds to `preview` the variables that none of the latest recipient lists of the campaigns
/// using answer `id` had as a column. Nothing when no list was uploaded yet (or the store cannot
/// say: a preview never fails for it).
async fn check_columns(s: &AppState, id: Option<Uuid>, mut preview: PreviewView) -> PreviewView {
    let Some(id) = id else {
        return preview;
    };
    let columns = match s.store.recent_columns(id, RECENT_LISTS).await {
        Ok(c) if !c.is_empty() => c,
        Ok(_) => return preview,
        Err(e) => {
            tracing::warn!(error = %e, "could not read the columns of recent lists");
            return preview;
        }
    };
    preview.unknown_columns = preview
        .variables
        .iter()
        .filter(|v| !columns.contains(*v))
        .cloned()
        .collect();
    preview.recent_columns = columns.into_iter().collect::<Vec<_>>().join(", ");
    preview
}

/// The preview of the variant the form is being typed in (`variant`, default the first).
fn preview_of(form: &FormPairs, sub: &AnswerSubmission) -> PreviewView {
    let wanted = form.get("variant").trim().parse::<usize>().ok();
    let chosen = sub
        .variants
        .iter()
        .find(|v| Some(v.0) == wanted)
        .or_else(|| {
            sub.variants
                .iter()
                .find(|v| !v.3.trim().is_empty() || !v.2.trim().is_empty())
        });
    match chosen {
        Some((_, _, subject, body)) => preview(subject, body, &sub.sample),
        None => preview("", "", &sub.sample),
    }
}

async fn answers_page(
    s: &AppState,
    user: &CurrentUser,
    status: StatusCode,
    notice: Option<String>,
) -> PageResult {
    let answers = collect_all(|p| s.store.list_answers(p))
        .await
        .map_err(settings_err(user))?;
    let rows = answers
        .into_iter()
        .map(|a| AnswerRow {
            id: a.id,
            languages: a.languages().iter().map(|l| l.to_string()).collect(),
            name: a.name,
        })
        .collect();
    Ok(render_status(
        status,
        &AnswersPage {
            chrome: Chrome::new(user, "Answers", "settings"),
            answers: rows,
            notice,
        },
    ))
}

pub(super) async fn list_answers(State(s): State<AppState>, Admin(user): Admin) -> PageResult {
    answers_page(&s, &user, StatusCode::OK, None).await
}

fn answer_form_page(
    user: &CurrentUser,
    id: Option<Uuid>,
    title: String,
    sub: &AnswerSubmission,
    errors: FieldErrors,
    preview: PreviewView,
) -> AnswerFormPage {
    AnswerFormPage {
        chrome: Chrome::new(user, title, "settings"),
        id,
        name: sub.name.clone(),
        variants: variant_rows(sub, &errors),
        sample: sub.sample.clone(),
        errors,
        preview,
    }
}

pub(super) async fn new_answer(Admin(user): Admin) -> Response {
    let sub = AnswerSubmission {
        name: String::new(),
        variants: Vec::new(),
        voices: Default::default(),
        sample: String::new(),
    };
    crate::web::render(&answer_form_page(
        &user,
        None,
        "New answer".into(),
        &sub,
        FieldErrors::new(),
        PreviewView {
            empty: true,
            ..PreviewView::default()
        },
    ))
}

pub(super) async fn create_answer(
    State(s): State<AppState>,
    Admin(user): Admin,
    Form(pairs): Form<Vec<(String, String)>>,
) -> PageResult {
    let form = FormPairs(pairs);
    user.check_csrf(form.get("csrf"))?;
    let sub = AnswerSubmission::parse(&form);
    let (input, indices) = sub.input();
    let errors = match input.validate() {
        Ok(spec) => {
            let result = s.store.create_answer(&spec).await;
            saved(&user, result, "/settings/answers", "name")?
        }
        Err(e) => answer_errors(&e, &indices),
    };
    let preview = preview_of(&form, &sub);
    Ok(render_status(
        StatusCode::UNPROCESSABLE_ENTITY,
        &answer_form_page(&user, None, "New answer".into(), &sub, errors, preview),
    ))
}

pub(super) async fn edit_answer(
    State(s): State<AppState>,
    Admin(user): Admin,
    WebId(id): WebId,
) -> PageResult {
    let answer = s.store.get_answer(id).await.map_err(settings_err(&user))?;
    let sub = AnswerSubmission {
        name: answer.name.clone(),
        variants: answer
            .variants
            .iter()
            .enumerate()
            .map(|(i, v)| {
                (
                    i,
                    v.language.to_string(),
                    v.subject
                        .as_ref()
                        .map(|t| t.source().to_string())
                        .unwrap_or_default(),
                    v.body.source().to_string(),
                )
            })
            .collect(),
        voices: answer
            .variants
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.voice.as_ref().map(|t| (i, t.source().to_string())))
            .collect(),
        sample: String::new(),
    };
    let preview = check_columns(&s, Some(id), preview_of(&FormPairs::default(), &sub)).await;
    Ok(crate::web::render(&answer_form_page(
        &user,
        Some(id),
        format!("Answer {}", answer.name),
        &sub,
        FieldErrors::new(),
        preview,
    )))
}

pub(super) async fn update_answer(
    State(s): State<AppState>,
    Admin(user): Admin,
    WebId(id): WebId,
    Form(pairs): Form<Vec<(String, String)>>,
) -> PageResult {
    let form = FormPairs(pairs);
    user.check_csrf(form.get("csrf"))?;
    let err = settings_err(&user);
    let current = s.store.get_answer(id).await.map_err(&err)?;
    let sub = AnswerSubmission::parse(&form);
    let (input, indices) = sub.input();
    let errors = match input.validate() {
        Ok(spec) => {
            // As the API: a variant a campaign sends cannot go (nor lose its subject, for email).
            let campaigns = collect_all(|p| s.store.list_campaigns(None, p))
                .await
                .map_err(&err)?;
            let users: Vec<_> = campaigns
                .into_iter()
                .filter(|c| c.answer_id == id)
                .collect();
            let problems = crate::routes::answers::variants_still_needed(&spec, &users);
            if problems.is_empty() {
                let result = s.store.update_answer(id, &spec).await;
                saved(&user, result, "/settings/answers", "name")?
            } else {
                let mut errors = FieldErrors::new();
                errors.push("variants", problems.join("; "));
                errors
            }
        }
        Err(e) => answer_errors(&e, &indices),
    };
    let preview = check_columns(&s, Some(id), preview_of(&form, &sub)).await;
    Ok(render_status(
        StatusCode::UNPROCESSABLE_ENTITY,
        &answer_form_page(
            &user,
            Some(id),
            format!("Answer {}", current.name),
            &sub,
            errors,
            preview,
        ),
    ))
}

pub(super) async fn delete_answer(
    State(s): State<AppState>,
    Admin(user): Admin,
    WebId(id): WebId,
    Form(form): Form<CsrfForm>,
) -> PageResult {
    user.check_csrf(&form.csrf)?;
    let in_use = deleted(&user, s.store.delete_answer(id).await, "/settings/answers")?;
    answers_page(&s, &user, StatusCode::CONFLICT, Some(in_use)).await
}

/// `#preview`'s content for the answer form as typed: htmx posts the whole form (with
/// `variant` naming the variant being edited) and swaps this fragment in. Always 200 (htmx
/// does not swap error statuses): a template error is shown in the preview.
pub(super) async fn preview_answer(
    State(s): State<AppState>,
    Admin(user): Admin,
    headers: HeaderMap,
    Form(pairs): Form<Vec<(String, String)>>,
) -> PageResult {
    let form = FormPairs(pairs);
    let token = if form.has("csrf") {
        form.get("csrf").to_string()
    } else {
        headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    user.check_csrf(&token)?;
    let sub = AnswerSubmission::parse(&form);
    let answer = form.get("answer").trim().parse::<Uuid>().ok();
    Ok(crate::web::render(&PreviewFragment {
        preview: check_columns(&s, answer, preview_of(&form, &sub)).await,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preview_counts_segments_and_shows_errors() {
        let p = preview("", &format!("{}🙂", "a".repeat(69)), "");
        assert_eq!(p.segments, 2);
        assert_eq!(p.encoding, "UCS-2");
        assert_eq!(p.segments_text(), "2 segments");
        let p = preview("", "Hi {{ name }}", "name=Ana");
        assert_eq!(p.body, "Hi Ana");
        assert_eq!(p.segments_text(), "1 segment");
        assert_eq!(p.encoding, "GSM-7");
        let p = preview("", "Hi {{ name", "");
        assert!(p.error.is_some());
        // An untouched sample is no error: the variable shows by its name.
        let p = preview("", "Hi {{ name }}", "");
        assert_eq!(p.error, None);
        assert_eq!(p.body, "Hi [name]");
        assert_eq!(p.unsampled, vec!["name".to_string()]);
        let p = preview("", "Hi", "no equals sign");
        assert!(p.error.unwrap().contains("name=value"));
    }

    #[test]
    fn answer_errors_land_on_the_form_index() {
        let form = FormPairs(vec![
            ("name".into(), "".into()),
            ("language_0".into(), "".into()),
            ("body_0".into(), "".into()),
            ("language_3".into(), "xx-1".into()),
            ("body_3".into(), "{{ oops".into()),
        ]);
        let sub = AnswerSubmission::parse(&form);
        let (input, indices) = sub.input();
        assert_eq!(indices, vec![3]);
        let errors = answer_errors(&input.validate().unwrap_err(), &indices);
        assert_eq!(errors.get("name").as_deref(), Some("Name is required"));
        assert!(errors.has("language_3"), "{errors:?}");
        assert!(errors.has("body_3"), "{errors:?}");
        assert!(!errors.has("body_0"));
    }
}
