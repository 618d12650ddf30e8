//! A chat campaign's settings in the admin (`/campaigns/{id}/chat`): the site it shows on, the
//! inbox its chats land in, its order, live or paused, start and end, onboarding, and its
//! triggers; and the URL tester of a site (`/settings/sites/test`), which says for each of the
//! site's campaigns whether it would show on a URL, and why not.
//!
//! The form holds one trigger of each kind (URL rules, time on page, visitor, page language,
//! site event), which is what the category's products offer; settings written through the API
//! in a shape the form cannot show (two URL triggers, say) are kept as they are and named on
//! the form, never rewritten by it. Checks are `ChatSettingsInput::validate`'s, as the API's
//! `PUT /api/v1/campaigns/{id}/chat`, with each message next to its field.

use super::campaigns::campaigns_err as err;
use super::outreaches::parse_local;
use super::session::{Admin, Chrome, CurrentUser, WebId};
use super::settings::{Choice, FieldErrors, FormPairs, collect_all};
use crate::AppState;
use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use herald_core::chat::{
    ChatSettings, ChatSettingsInput, Comparison, EventCondition, TriggerInput, UrlRule,
    VisitorKind, url_verdict,
};
use herald_core::{Campaign, Channel};
use herald_store::StoreError;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::Deserialize;
use uuid::Uuid;

type PageResult = Result<Response, Response>;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/campaigns/{id}/chat", get(edit).post(save))
        .route("/settings/sites/test", get(test_url))
}

/// The form's fields as typed (or as the stored settings read).
#[derive(Debug, Clone, Default)]
struct ChatForm {
    site_id: String,
    inbox_id: String,
    order: String,
    paused: bool,
    onboarding: bool,
    starts_at: String,
    ends_at: String,
    /// One rule a line: `starts with /pricing`.
    include: String,
    exclude: String,
    seconds: String,
    /// `` (anyone), `new` or `returning`.
    visitor: String,
    /// `en, fr`.
    languages: String,
    event: String,
    /// `` (any value), `gte`, `lte` or `eq`.
    event_op: String,
    event_value: String,
}

/// Wall-clock time in `tz`, as the form shows it: `2026-12-24 18:00`.
fn local(ts: Timestamp, tz: &TimeZone) -> String {
    ts.to_zoned_datetime(tz.clone())
        .strftime("%Y-%m-%d %H:%M")
        .to_string()
}

fn op_value(op: Comparison) -> &'static str {
    match op {
        Comparison::Gte => "gte",
        Comparison::Lte => "lte",
        Comparison::Eq => "eq",
    }
}

fn rule_lines(rules: &[UrlRule]) -> String {
    rules
        .iter()
        .map(UrlRule::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

impl ChatForm {
    /// The form of stored settings, or `None` when their triggers do not fit the form's one
    /// trigger per kind.
    fn of(settings: &ChatSettings, tz: &TimeZone) -> Option<ChatForm> {
        let mut f = ChatForm {
            site_id: settings.site_id.to_string(),
            inbox_id: settings.inbox_id.map(|i| i.to_string()).unwrap_or_default(),
            order: settings.order.to_string(),
            paused: settings.paused,
            onboarding: settings.onboarding,
            starts_at: settings.starts_at.map(|t| local(t, tz)).unwrap_or_default(),
            ends_at: settings.ends_at.map(|t| local(t, tz)).unwrap_or_default(),
            ..ChatForm::default()
        };
        let mut seen = [false; 5];
        for t in &settings.triggers {
            let kind = match t {
                TriggerInput::Url { include, exclude } => {
                    f.include = rule_lines(include);
                    f.exclude = rule_lines(exclude);
                    0
                }
                TriggerInput::TimeOnPage { seconds } => {
                    f.seconds = seconds.to_string();
                    1
                }
                TriggerInput::Visitor { visitor } => {
                    f.visitor = match visitor {
                        VisitorKind::New => "new",
                        VisitorKind::Returning => "returning",
                    }
                    .to_string();
                    2
                }
                TriggerInput::Language { languages } => {
                    f.languages = languages.join(", ");
                    3
                }
                TriggerInput::Event { name, condition } => {
                    f.event = name.clone();
                    if let Some(c) = condition {
                        if c.field != "value" {
                            return None;
                        }
                        f.event_op = op_value(c.op).to_string();
                        f.event_value = c.value.to_string();
                    }
                    4
                }
            };
            if std::mem::replace(&mut seen[kind], true) {
                return None;
            }
        }
        Some(f)
    }

    fn read(form: &FormPairs) -> ChatForm {
        let text = |name: &str| form.get(name).trim().to_string();
        ChatForm {
            site_id: text("site_id"),
            inbox_id: text("inbox_id"),
            order: text("order"),
            paused: form.get("state") == "paused",
            onboarding: form.has("onboarding"),
            starts_at: text("starts_at"),
            ends_at: text("ends_at"),
            include: form.get("include").to_string(),
            exclude: form.get("exclude").to_string(),
            seconds: text("seconds"),
            visitor: text("visitor"),
            languages: text("languages"),
            event: text("event"),
            event_op: text("event_op"),
            event_value: text("event_value"),
        }
    }

    /// The triggers the form's fields make, each with the field its errors belong to.
    fn triggers(&self, errors: &mut FieldErrors) -> Vec<(TriggerInput, &'static str)> {
        let lines = |text: &str| -> Vec<UrlRule> {
            text.lines()
                .filter(|l| !l.trim().is_empty())
                .map(UrlRule::from_line)
                .collect()
        };
        let mut out = Vec::new();
        let (include, exclude) = (lines(&self.include), lines(&self.exclude));
        if !include.is_empty() || !exclude.is_empty() {
            out.push((TriggerInput::Url { include, exclude }, "include"));
        }
        if !self.seconds.is_empty() {
            match self.seconds.parse::<u32>() {
                Ok(seconds) => out.push((TriggerInput::TimeOnPage { seconds }, "seconds")),
                Err(_) => errors.push("seconds", "Time on page: a whole number of seconds"),
            }
        }
        match self.visitor.as_str() {
            "new" => out.push((
                TriggerInput::Visitor {
                    visitor: VisitorKind::New,
                },
                "visitor",
            )),
            "returning" => out.push((
                TriggerInput::Visitor {
                    visitor: VisitorKind::Returning,
                },
                "visitor",
            )),
            _ => {}
        }
        if !self.languages.is_empty() {
            out.push((
                TriggerInput::Language {
                    languages: self
                        .languages
                        .split([',', ' '])
                        .filter(|l| !l.is_empty())
                        .map(str::to_string)
                        .collect(),
                },
                "languages",
            ));
        }
        if !self.event.is_empty() {
            let op = match self.event_op.as_str() {
                "gte" => Some(Comparison::Gte),
                "lte" => Some(Comparison::Lte),
                "eq" => Some(Comparison::Eq),
                _ => None,
            };
            let condition = match op {
                None => None,
                Some(op) => match self.event_value.replace(',', ".").parse::<f64>() {
                    Ok(value) => Some(EventCondition {
                        field: "value".into(),
                        op,
                        value,
                    }),
                    Err(_) => {
                        errors.push("event_value", "Value: a number, such as 200 or 49.90");
                        None
                    }
                },
            };
            out.push((
                TriggerInput::Event {
                    name: self.event.clone(),
                    condition,
                },
                "event",
            ));
        } else if !self.event_op.is_empty() {
            errors.push(
                "event",
                "Site event: the name the site passes to Herald.trigger, for the value condition to apply to",
            );
        }
        out
    }
}

/// The label a field's message starts with, and the form field it is shown next to.
fn place(field: &str, trigger_fields: &[&'static str]) -> (&'static str, &'static str) {
    if let Some(rest) = field.strip_prefix("triggers[") {
        let i: usize = rest
            .split(']')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(usize::MAX);
        return match trigger_fields.get(i).copied() {
            Some("include") if rest.contains(".exclude") => ("exclude", "Don't show on"),
            Some("include") => ("include", "Show on"),
            Some("seconds") => ("seconds", "Time on page"),
            Some("visitor") => ("visitor", "Visitors"),
            Some("languages") => ("languages", "Page language"),
            Some("event") if rest.contains(".condition") => ("event_value", "Value"),
            Some("event") => ("event", "Site event"),
            _ => ("triggers", "Triggers"),
        };
    }
    match field {
        "site_id" => ("site_id", "Site"),
        "order" => ("order", "Order"),
        "ends_at" => ("ends_at", "Ends"),
        "starts_at" => ("starts_at", "Starts"),
        "triggers" => ("triggers", "Triggers"),
        _ => ("form", ""),
    }
}

/// A rule's position in its list, for a message: `triggers[0].include[2].value` → `line 3`.
fn line_of(field: &str) -> Option<usize> {
    let list = field
        .rsplit_once(".include[")
        .or(field.rsplit_once(".exclude["))?;
    list.1
        .split(']')
        .next()?
        .parse::<usize>()
        .ok()
        .map(|i| i + 1)
}

#[derive(Template)]
#[template(path = "campaign_chat.html")]
struct ChatPage {
    chrome: Chrome,
    id: Uuid,
    name: String,
    timezone: String,
    form: ChatForm,
    sites: Vec<Choice>,
    inboxes: Vec<Choice>,
    /// The stored triggers in words when the form cannot show them (they are kept on save).
    kept: Option<Vec<String>>,
    errors: FieldErrors,
}

async fn page(
    s: &AppState,
    user: &CurrentUser,
    c: &Campaign,
    form: ChatForm,
    kept: Option<Vec<String>>,
    errors: FieldErrors,
    status: StatusCode,
) -> PageResult {
    let err = err(user);
    let sites = collect_all(|p| s.store.list_chat_sites(p))
        .await
        .map_err(&err)?
        .into_iter()
        .map(|x| Choice {
            selected: x.id.to_string() == form.site_id,
            value: x.id.to_string(),
            label: x.name,
        })
        .collect();
    let inboxes = collect_all(|p| s.store.list_inboxes(p))
        .await
        .map_err(&err)?
        .into_iter()
        .map(|x| Choice {
            selected: x.id.to_string() == form.inbox_id,
            value: x.id.to_string(),
            label: x.name,
        })
        .collect();
    Ok(super::render_status(
        status,
        &ChatPage {
            chrome: Chrome::new(user, format!("Chat settings: {}", c.name), "campaigns"),
            id: c.id,
            name: c.name.clone(),
            timezone: c.schedule.timezone_name().to_string(),
            form,
            sites,
            inboxes,
            kept,
            errors,
        },
    ))
}

/// The campaign, refused with a styled page unless it is a chat campaign.
async fn chat_campaign(s: &AppState, user: &CurrentUser, id: Uuid) -> Result<Campaign, Response> {
    let c = s.store.get_campaign(id).await.map_err(err(user))?;
    if c.channel != Channel::Chat {
        return Err(super::outreaches::problem(
            user,
            StatusCode::NOT_FOUND,
            "Only chat campaigns have chat settings.".to_string(),
        ));
    }
    Ok(c)
}

async fn edit(State(s): State<AppState>, Admin(user): Admin, WebId(id): WebId) -> PageResult {
    let c = chat_campaign(&s, &user, id).await?;
    let tz = c.schedule.timezone().clone();
    let stored = s.store.get_chat_settings(id).await.map_err(err(&user))?;
    let (form, kept) = match &stored {
        None => {
            // A new campaign's first settings: the only site, if there is one; shown after
            // 10 s on the page, live.
            let sites = collect_all(|p| s.store.list_chat_sites(p))
                .await
                .map_err(err(&user))?;
            let form = ChatForm {
                site_id: match sites.as_slice() {
                    [only] => only.id.to_string(),
                    _ => String::new(),
                },
                order: "1".into(),
                seconds: "10".into(),
                ..ChatForm::default()
            };
            (form, None)
        }
        Some(settings) => match ChatForm::of(settings, &tz) {
            Some(form) => (form, None),
            None => {
                let form = ChatForm::of(
                    &ChatSettings {
                        triggers: Vec::new(),
                        ..settings.clone()
                    },
                    &tz,
                )
                .unwrap_or_default();
                (
                    form,
                    Some(
                        settings
                            .triggers
                            .iter()
                            .map(TriggerInput::describe)
                            .collect(),
                    ),
                )
            }
        },
    };
    page(
        &s,
        &user,
        &c,
        form,
        kept,
        FieldErrors::new(),
        StatusCode::OK,
    )
    .await
}

async fn save(
    State(s): State<AppState>,
    Admin(user): Admin,
    WebId(id): WebId,
    axum::Form(pairs): axum::Form<Vec<(String, String)>>,
) -> PageResult {
    let pairs = FormPairs(pairs);
    user.check_csrf(pairs.get("csrf"))?;
    let c = chat_campaign(&s, &user, id).await?;
    let tz = c.schedule.timezone().clone();
    let form = ChatForm::read(&pairs);
    let mut errors = FieldErrors::new();
    let stored = s.store.get_chat_settings(id).await.map_err(err(&user))?;
    let kept = stored
        .as_ref()
        .filter(|st| ChatForm::of(st, &tz).is_none())
        .map(|st| st.triggers.clone());
    let (triggers, trigger_fields): (Vec<TriggerInput>, Vec<&'static str>) = match &kept {
        Some(triggers) => (triggers.clone(), Vec::new()),
        None => form.triggers(&mut errors).into_iter().unzip(),
    };
    let mut id_of = |field: &'static str, raw: &str, label: &str| -> Option<Uuid> {
        if raw.is_empty() {
            return None;
        }
        match raw.parse::<Uuid>() {
            Ok(id) => Some(id),
            Err(_) => {
                errors.push(field, format!("{label}: choose one from the list"));
                None
            }
        }
    };
    let site_id = id_of("site_id", &form.site_id, "Site");
    let inbox_id = id_of("inbox_id", &form.inbox_id, "Inbox");
    let order = if form.order.is_empty() {
        None
    } else {
        match form.order.parse::<u32>() {
            Ok(n) => Some(n),
            Err(_) => {
                errors.push("order", "Order: a whole number, 1 for the highest priority");
                None
            }
        }
    };
    let mut time = |field: &'static str, raw: &str, label: &str| -> Option<Timestamp> {
        if raw.is_empty() {
            return None;
        }
        parse_local(raw, &tz)
            .map_err(|e| errors.push(field, format!("{label}: {}", super::plain_words(&e))))
            .ok()
    };
    let starts_at = time("starts_at", &form.starts_at, "Starts");
    let ends_at = time("ends_at", &form.ends_at, "Ends");
    let input = ChatSettingsInput {
        site_id,
        inbox_id,
        order,
        triggers,
        onboarding: form.onboarding,
        starts_at,
        ends_at,
        paused: form.paused,
    };
    match input.validate() {
        Ok(settings) if errors.is_empty() => match s.store.set_chat_settings(id, &settings).await {
            Ok(_) => {
                s.chat.invalidate();
                return Ok(Redirect::to(&format!("/campaigns/{id}")).into_response());
            }
            Err(StoreError::Invalid { field, message }) => {
                let (f, label) = place(field, &trigger_fields);
                errors.push(f, format!("{label}: {}", super::plain_words(&message)));
            }
            Err(StoreError::NotFound { .. }) if site_id.is_some() => {
                errors.push("site_id", "Site: that site was deleted; choose another");
            }
            Err(e) => return Err(err(&user)(e)),
        },
        Ok(_) => {}
        Err(e) => {
            for fe in e.0 {
                let (f, label) = place(&fe.field, &trigger_fields);
                let message = super::plain_words(&fe.message);
                let message = match line_of(&fe.field) {
                    Some(n) => format!("line {n} {message}"),
                    None => message,
                };
                if !errors.has(f) {
                    errors.push(
                        f,
                        if label.is_empty() {
                            message
                        } else {
                            format!("{label}: {message}")
                        },
                    );
                }
            }
        }
    }
    let kept_words = kept.map(|t| t.iter().map(TriggerInput::describe).collect());
    page(
        &s,
        &user,
        &c,
        form,
        kept_words,
        errors,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await
}

// ---------------------------------------------------------------- the URL tester

#[derive(Debug, Deserialize)]
struct TestQuery {
    #[serde(default)]
    site: String,
    #[serde(default)]
    url: String,
}

/// One campaign's answer to "would it show on this URL?".
struct Verdict {
    order: u32,
    id: Uuid,
    name: String,
    shows: bool,
    /// Why not, or what else must hold on the visit.
    detail: String,
}

#[derive(Template)]
#[template(path = "settings_sites_test.html")]
struct TestPage {
    chrome: Chrome,
    sites: Vec<Choice>,
    url: String,
    error: Option<String>,
    /// `None` before a URL is tested.
    verdicts: Option<Vec<Verdict>>,
    visibility: String,
}

/// What a campaign needs besides the URL, in words (`after 10 s on the page; …`).
fn also_needs(triggers: &[TriggerInput]) -> String {
    triggers
        .iter()
        .filter(|t| !matches!(t, TriggerInput::Url { .. }))
        .map(TriggerInput::describe)
        .collect::<Vec<_>>()
        .join("; ")
}

async fn test_url(
    State(s): State<AppState>,
    Admin(user): Admin,
    Query(q): Query<TestQuery>,
) -> PageResult {
    let e = err(&user);
    let all = collect_all(|p| s.store.list_chat_sites(p))
        .await
        .map_err(&e)?;
    let chosen = match q.site.parse::<Uuid>() {
        Ok(id) => all.iter().find(|x| x.id == id),
        Err(_) if all.len() == 1 => all.first(),
        Err(_) => None,
    };
    let sites = all
        .iter()
        .map(|x| Choice {
            selected: chosen.is_some_and(|c| c.id == x.id),
            value: x.id.to_string(),
            label: x.name.clone(),
        })
        .collect();
    let url_text = q.url.trim().to_string();
    let mut error = None;
    let mut verdicts = None;
    let visibility = match chosen.map(|x| x.max_per_visit) {
        Some(None) | None => String::new(),
        Some(Some(0)) => "This site shows no campaign to anyone (campaigns per visit: 0).".into(),
        Some(Some(n)) => format!(
            "At most {n} campaign{} per visit: when several would show, the first in order wins.",
            if n == 1 { "" } else { "s" }
        ),
    };
    if !url_text.is_empty() {
        match (chosen, url::Url::parse(&url_text)) {
            (None, _) => error = Some("Choose the site the page belongs to.".to_string()),
            (Some(_), Err(_)) => {
                error = Some(format!(
                    "“{}” is not a full URL; write it as https://shop.example.com/cart",
                    url_text.chars().take(80).collect::<String>()
                ))
            }
            (Some(site), Ok(url)) => {
                let now = s.clock.now();
                let mut out = Vec::new();
                for (c, settings) in s.store.site_campaigns(site.id).await.map_err(&e)? {
                    let state = if settings.paused {
                        Err("it is paused".to_string())
                    } else if settings.starts_at.is_some_and(|t| now < t) {
                        Err("it has not started yet".to_string())
                    } else if settings.ends_at.is_some_and(|t| t <= now) {
                        Err("it has ended".to_string())
                    } else if !c.schedule.is_open(now, None) {
                        Err(format!(
                            "its schedule is closed now ({})",
                            c.schedule.timezone_name()
                        ))
                    } else {
                        Ok(())
                    };
                    let verdict = state.and_then(|()| url_verdict(&settings.triggers, &url));
                    let (shows, detail) = match verdict {
                        Ok(()) => {
                            let more = also_needs(&settings.triggers);
                            (
                                true,
                                if more.is_empty() {
                                    "on every visit to this URL".to_string()
                                } else {
                                    format!("when also {more}")
                                },
                            )
                        }
                        Err(why) => (false, format!("because {why}")),
                    };
                    out.push(Verdict {
                        order: settings.order,
                        id: c.id,
                        name: c.name,
                        shows,
                        detail,
                    });
                }
                verdicts = Some(out);
            }
        }
    }
    Ok(super::render(&TestPage {
        chrome: Chrome::new(&user, "Test a URL", "settings"),
        sites,
        url: url_text,
        error,
        verdicts,
        visibility,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_of_trigger_errors_find_their_form_field() {
        let fields = ["include", "seconds", "event"];
        assert_eq!(
            place("triggers[0].exclude[1].value", &fields),
            ("exclude", "Don't show on")
        );
        assert_eq!(
            place("triggers[0].include[0].value", &fields),
            ("include", "Show on")
        );
        assert_eq!(place("triggers[1].seconds", &fields).0, "seconds");
        assert_eq!(
            place("triggers[2].condition.value", &fields).0,
            "event_value"
        );
        assert_eq!(place("triggers", &fields).0, "triggers");
        assert_eq!(line_of("triggers[0].exclude[1].value"), Some(2));
        assert_eq!(line_of("triggers[1].seconds"), None);
    }
}
