//! Proactive chat: the sites that embed the widget, a chat campaign's settings, and its triggers.
//!
//! A campaign's triggers are stored as [`TriggerInput`]s (what the admin wrote, checked) and
//! compiled into [`Trigger`]s for the widget. Every URL rule compiles to one regular expression
//! over a small target string built from the page URL (see [`UrlTarget`]), so the widget's
//! JavaScript only builds the same target and runs the expression: the two matchers cannot
//! drift apart. `crates/herald-core/tests/chat_url_cases.json` is the table of cases both run.
//!
//! URL rules, in words:
//! - A value that starts with `/` is compared with the page's path; any other value with the
//!   page's host and path (`shop.example.com/cart`; a leading `http://` or `https://` is
//!   dropped, the port is never compared). Hosts are compared without case, paths with it.
//! - The query (`?a=1`) is compared only when the value has a `?`, the fragment only when it
//!   has a `#`.
//! - `equals` and `starts_with` compare the whole target or its start; `contains` looks for the
//!   value anywhere in the host, path (and query or fragment, when named).
//! - `wildcard`: `*` stands for any run of characters within its part (any run of path segments
//!   in the path, any run of labels in the host); a host `*.example.com` matches every
//!   sub-domain of `example.com` (not `example.com` itself). A host without a path means every
//!   page of that host.
//! - `regex`: a regular expression searched for in `host + path` (plus the query when it names
//!   `\?`, the fragment when it names `#`), in the syntax Rust and JavaScript share; inline flags
//!   are refused, and so is an expression that compiles larger than [`REGEX_SIZE_MAX`].

use crate::error::{Errors, ValidationError};
use crate::language::Language;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The most rules in one include or exclude list.
pub const RULES_MAX: usize = 50;
/// The most triggers of one campaign.
pub const TRIGGERS_MAX: usize = 20;
/// The longest URL rule value, in bytes.
pub const RULE_VALUE_MAX: usize = 500;
/// The most memory a compiled regular expression may take.
pub const REGEX_SIZE_MAX: usize = 64 * 1024;
/// The longest time on page a trigger may wait for (one hour).
pub const TIME_ON_PAGE_MAX: u32 = 3_600;
/// The most allowed origins of one site.
pub const ORIGINS_MAX: usize = 20;
/// The longest event name.
pub const EVENT_NAME_MAX: usize = 100;

// ---------------------------------------------------------------- triggers, as written

/// How a URL rule compares its value with the page's URL.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UrlMatch {
    Equals,
    StartsWith,
    Contains,
    Wildcard,
    Regex,
}

/// One URL rule: `{"match": "wildcard", "value": "*.example.com/shop/*"}`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UrlRule {
    #[serde(rename = "match")]
    pub kind: UrlMatch,
    pub value: String,
}

/// Whether the visitor has been to the site before this visit.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VisitorKind {
    New,
    Returning,
}

/// How an event's number compares with the condition's.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Comparison {
    /// At least (≥).
    Gte,
    /// At most (≤).
    Lte,
    /// Equal (=).
    Eq,
}

/// `{"field": "value", "op": "gte", "value": 250}`: the event's `data.value` is at least 250.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventCondition {
    #[serde(default = "default_field")]
    pub field: String,
    pub op: Comparison,
    pub value: f64,
}

fn default_field() -> String {
    "value".to_string()
}

/// One trigger of a chat campaign as the admin writes it; all of a campaign's must hold.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TriggerInput {
    /// The page URL matches one `include` rule (or there are none) and no `exclude` rule.
    Url {
        #[serde(default)]
        include: Vec<UrlRule>,
        #[serde(default)]
        exclude: Vec<UrlRule>,
    },
    /// The visitor has been on the page at least this many seconds.
    TimeOnPage { seconds: u32 },
    /// The visitor is new, or returning.
    Visitor { visitor: VisitorKind },
    /// The page's language is one of these (`en` takes `en-US` too; `en-US` only `en-US`).
    Language { languages: Vec<String> },
    /// The page called `Herald.trigger(name, data)`, with data meeting the condition if any.
    Event {
        name: String,
        #[serde(default)]
        condition: Option<EventCondition>,
    },
}

// ---------------------------------------------------------------- triggers, compiled

/// Which parts of the page URL a compiled URL rule's expression is run over.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UrlTarget {
    /// The lower-case host name comes first.
    pub host: bool,
    /// `?query` follows the path (when the page has one).
    pub query: bool,
    /// `#fragment` follows (when the page has one).
    pub fragment: bool,
}

impl UrlTarget {
    /// The string this target makes of a page URL: `[host] path [?query] [#fragment]`.
    /// The widget builds the same from `location` (`hostname`, `pathname`, `search`, `hash`).
    pub fn of(self, url: &url::Url) -> String {
        let mut s = String::new();
        if self.host {
            s.push_str(&url.host_str().unwrap_or("").to_lowercase());
        }
        s.push_str(url.path());
        if self.query
            && let Some(q) = url.query().filter(|q| !q.is_empty())
        {
            s.push('?');
            s.push_str(q);
        }
        if self.fragment
            && let Some(f) = url.fragment().filter(|f| !f.is_empty())
        {
            s.push('#');
            s.push_str(f);
        }
        s
    }
}

/// A URL rule as the widget runs it: an expression (Rust and JavaScript syntax alike) over a
/// target string.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CompiledUrlRule {
    #[serde(flatten)]
    pub target: UrlTarget,
    /// The expression's source, for `new RegExp(source)`.
    pub pattern: String,
    #[serde(skip)]
    regex: Option<regex::Regex>,
}

impl CompiledUrlRule {
    pub fn matches(&self, url: &url::Url) -> bool {
        self.regex
            .as_ref()
            .is_some_and(|re| re.is_match(&self.target.of(url)))
    }
}

/// A trigger as the widget runs it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Trigger {
    Url {
        include: Vec<CompiledUrlRule>,
        exclude: Vec<CompiledUrlRule>,
    },
    TimeOnPage {
        seconds: u32,
    },
    Visitor {
        visitor: VisitorKind,
    },
    Language {
        #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
        languages: Vec<Language>,
    },
    Event {
        name: String,
        condition: Option<EventCondition>,
    },
}

/// What the widget knows of a page view when it checks a campaign.
#[derive(Debug, Clone)]
pub struct PageView<'a> {
    pub url: &'a url::Url,
    pub seconds_on_page: u32,
    pub returning: bool,
    pub language: Option<&'a Language>,
    /// Events the page has fired: name and its data (a JSON object).
    pub events: &'a [(String, serde_json::Value)],
}

impl Trigger {
    /// Whether this trigger holds for the page view.
    pub fn holds(&self, view: &PageView<'_>) -> bool {
        match self {
            Trigger::Url { include, exclude } => {
                (include.is_empty() || include.iter().any(|r| r.matches(view.url)))
                    && !exclude.iter().any(|r| r.matches(view.url))
            }
            Trigger::TimeOnPage { seconds } => view.seconds_on_page >= *seconds,
            Trigger::Visitor { visitor } => match visitor {
                VisitorKind::New => !view.returning,
                VisitorKind::Returning => view.returning,
            },
            Trigger::Language { languages } => view.language.is_some_and(|page| {
                languages.iter().any(|l| {
                    l == page || (!l.as_str().contains('-') && l.primary() == page.primary())
                })
            }),
            Trigger::Event { name, condition } => view.events.iter().any(|(fired, data)| {
                fired == name
                    && condition.as_ref().is_none_or(|c| {
                        data.get(&c.field)
                            .and_then(serde_json::Value::as_f64)
                            .is_some_and(|n| match c.op {
                                Comparison::Gte => n >= c.value,
                                Comparison::Lte => n <= c.value,
                                Comparison::Eq => n == c.value,
                            })
                    })
            }),
        }
    }
}

/// Whether every trigger holds (a campaign's triggers combine with AND).
pub fn all_hold(triggers: &[Trigger], view: &PageView<'_>) -> bool {
    !triggers.is_empty() && triggers.iter().all(|t| t.holds(view))
}

// ---------------------------------------------------------------- compiling

/// Checks and compiles one URL rule; the error says what is wrong with its value.
pub fn compile_url_rule(rule: &UrlRule) -> Result<CompiledUrlRule, String> {
    let value = rule.value.trim();
    if value.is_empty() {
        return Err(
            "is empty; write a path (/pricing) or a host and path (shop.example.com/cart)".into(),
        );
    }
    if value.len() > RULE_VALUE_MAX {
        return Err(format!("is longer than {RULE_VALUE_MAX} bytes"));
    }
    if value.chars().any(char::is_control) {
        return Err("holds a control character".into());
    }
    let (target, pattern) = match rule.kind {
        UrlMatch::Regex => {
            if let Some((at, _)) = value
                .match_indices("(?")
                .find(|&(i, _)| !value[i..].starts_with("(?:") && !value[..i].ends_with('\\'))
            {
                return Err(format!(
                    "has a `(?` group at byte {at}; of the special groups only `(?:...)` works alike in Rust and in browsers"
                ));
            }
            let target = UrlTarget {
                host: true,
                query: value.contains("\\?"),
                fragment: value.contains('#'),
            };
            (target, value.to_string())
        }
        kind => {
            let value = strip_scheme(value);
            let query = value.contains('?');
            let fragment = value.contains('#');
            let host = !value.starts_with('/') || kind == UrlMatch::Contains;
            let target = UrlTarget {
                host,
                query,
                fragment,
            };
            let value = if value.starts_with('/') || kind == UrlMatch::Contains {
                value.to_string()
            } else {
                host_form(value, kind)
            };
            let pattern = match kind {
                UrlMatch::Equals => format!("^{}$", escape(&value)),
                UrlMatch::StartsWith => format!("^{}", escape(&value)),
                UrlMatch::Contains => escape(&value),
                _ => wildcard(&value, !value.starts_with('/')),
            };
            (target, pattern)
        }
    };
    let regex = regex::RegexBuilder::new(&pattern)
        .size_limit(REGEX_SIZE_MAX)
        .dfa_size_limit(REGEX_SIZE_MAX)
        .build()
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(_) => {
                format!("compiles to more than {REGEX_SIZE_MAX} bytes; write a simpler expression")
            }
            e => format!("is not a valid regular expression: {e}"),
        })?;
    Ok(CompiledUrlRule {
        target,
        pattern,
        regex: Some(regex),
    })
}

fn strip_scheme(value: &str) -> &str {
    for scheme in ["https://", "http://"] {
        if value.len() >= scheme.len() && value[..scheme.len()].eq_ignore_ascii_case(scheme) {
            return &value[scheme.len()..];
        }
    }
    value
}

/// A host-and-path value with its host in lower case, and a path when it had none: `/` for
/// `equals` and `starts_with` (so `example.com` does not start `example.com.evil.test`), every
/// page for `wildcard`.
fn host_form(value: &str, kind: UrlMatch) -> String {
    let split = value.find(['/', '?', '#']).unwrap_or(value.len());
    let (host, rest) = value.split_at(split);
    let host = host.to_lowercase();
    let rest = if rest.starts_with('/') {
        rest.to_string()
    } else if kind == UrlMatch::Wildcard {
        format!("/*{rest}")
    } else {
        format!("/{rest}")
    };
    format!("{host}{rest}")
}

/// Escapes the characters that mean something in an expression, the same way for Rust and
/// JavaScript (every escape here is valid in both).
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `*` becomes a run of characters that stays in its part: the host (no `/`), the path (no
/// `?` or `#`), the query (no `#`) or the fragment; `*.` at the start of a host is one or more
/// sub-domain labels.
fn wildcard(value: &str, has_host: bool) -> String {
    let mut out = String::from("^");
    let mut part = if has_host { 0 } else { 1 }; // 0 host, 1 path, 2 query, 3 fragment
    let mut rest = value;
    if has_host && let Some(after) = rest.strip_prefix("*.") {
        out.push_str("(?:[^/.]+\\.)+");
        rest = after;
    }
    for c in rest.chars() {
        match c {
            '/' if part == 0 => part = 1,
            '?' if part == 1 => part = 2,
            '#' if part < 3 => part = 3,
            _ => {}
        }
        if c == '*' {
            out.push_str(match part {
                0 => "[^/]*",
                1 => "[^?#]*",
                2 => "[^#]*",
                _ => ".*",
            });
        } else {
            out.push_str(&escape(&c.to_string()));
        }
    }
    out.push('$');
    out
}

/// Checks a campaign's triggers and compiles them; every problem is named by its field
/// (`triggers[1].include[0].value`).
pub fn compile_triggers(triggers: &[TriggerInput]) -> Result<Vec<Trigger>, ValidationError> {
    let mut errors = Errors::new();
    if triggers.is_empty() {
        errors.push(
            "triggers",
            "needs at least one trigger, e.g. {\"kind\": \"time_on_page\", \"seconds\": 10}",
        );
    }
    if triggers.len() > TRIGGERS_MAX {
        errors.push("triggers", format!("has more than {TRIGGERS_MAX} triggers"));
    }
    let mut out = Vec::new();
    for (i, t) in triggers.iter().enumerate() {
        let field = |f: &str| format!("triggers[{i}]{f}");
        match t {
            TriggerInput::Url { include, exclude } => {
                if include.is_empty() && exclude.is_empty() {
                    errors.push(
                        field(""),
                        "a URL trigger needs an include or an exclude rule",
                    );
                }
                let mut lists = [Vec::new(), Vec::new()];
                for (list, (name, rules)) in [("include", include), ("exclude", exclude)]
                    .iter()
                    .enumerate()
                {
                    if rules.len() > RULES_MAX {
                        errors.push(
                            field(&format!(".{name}")),
                            format!("has more than {RULES_MAX} rules"),
                        );
                    }
                    for (j, rule) in rules.iter().enumerate() {
                        if let Some(c) = errors.take(
                            field(&format!(".{name}[{j}].value")),
                            compile_url_rule(rule),
                        ) {
                            lists[list].push(c);
                        }
                    }
                }
                let [include, exclude] = lists;
                out.push(Trigger::Url { include, exclude });
            }
            TriggerInput::TimeOnPage { seconds } => {
                if *seconds > TIME_ON_PAGE_MAX {
                    errors.push(
                        field(".seconds"),
                        format!("is more than {TIME_ON_PAGE_MAX} seconds"),
                    );
                }
                out.push(Trigger::TimeOnPage { seconds: *seconds });
            }
            TriggerInput::Visitor { visitor } => out.push(Trigger::Visitor { visitor: *visitor }),
            TriggerInput::Language { languages } => {
                if languages.is_empty() {
                    errors.push(
                        field(".languages"),
                        "needs at least one language, e.g. [\"en\"]",
                    );
                }
                let parsed = languages
                    .iter()
                    .enumerate()
                    .filter_map(|(j, l)| {
                        errors.take(field(&format!(".languages[{j}]")), Language::parse(l))
                    })
                    .collect();
                out.push(Trigger::Language { languages: parsed });
            }
            TriggerInput::Event { name, condition } => {
                let name = name.trim();
                if name.is_empty() {
                    errors.push(
                        field(".name"),
                        "is required: the name passed to Herald.trigger",
                    );
                } else if name.len() > EVENT_NAME_MAX {
                    errors.push(
                        field(".name"),
                        format!("is longer than {EVENT_NAME_MAX} bytes"),
                    );
                }
                if let Some(c) = condition {
                    if !c.value.is_finite() {
                        errors.push(field(".condition.value"), "must be a finite number");
                    }
                    if c.field.trim().is_empty() {
                        errors.push(field(".condition.field"), "is required, e.g. \"value\"");
                    }
                }
                out.push(Trigger::Event {
                    name: name.to_string(),
                    condition: condition.clone(),
                });
            }
        }
    }
    errors.finish()?;
    Ok(out)
}

// ---------------------------------------------------------------- triggers, in words

impl UrlMatch {
    /// Every kind, in the order a form offers them.
    pub const ALL: [UrlMatch; 5] = [
        UrlMatch::Equals,
        UrlMatch::StartsWith,
        UrlMatch::Contains,
        UrlMatch::Wildcard,
        UrlMatch::Regex,
    ];

    /// The words a rule line starts with: `starts with /pricing`.
    pub fn words(self) -> &'static str {
        match self {
            UrlMatch::Equals => "equals",
            UrlMatch::StartsWith => "starts with",
            UrlMatch::Contains => "contains",
            UrlMatch::Wildcard => "wildcard",
            UrlMatch::Regex => "regex",
        }
    }
}

impl std::fmt::Display for UrlRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind.words(), self.value)
    }
}

impl UrlRule {
    /// A rule from one line as an admin types it, the way [`UrlRule`]'s `Display` writes it:
    /// `starts with /pricing`, `regex ^/blog/[0-9]+$` (`starts_with` too). A line that names no
    /// kind is a wildcard rule when it has a `*`, else an equals rule.
    pub fn from_line(line: &str) -> UrlRule {
        let line = line.trim();
        for kind in UrlMatch::ALL {
            for words in [kind.words().to_string(), kind.words().replace(' ', "_")] {
                if line.len() > words.len()
                    && line.is_char_boundary(words.len())
                    && line[..words.len()].eq_ignore_ascii_case(&words)
                    && line[words.len()..].starts_with([' ', '\t'])
                {
                    return UrlRule {
                        kind,
                        value: line[words.len()..].trim().to_string(),
                    };
                }
            }
        }
        UrlRule {
            kind: if line.contains('*') {
                UrlMatch::Wildcard
            } else {
                UrlMatch::Equals
            },
            value: line.to_string(),
        }
    }
}

impl std::fmt::Display for Comparison {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Comparison::Gte => "≥",
            Comparison::Lte => "≤",
            Comparison::Eq => "=",
        })
    }
}

fn rules_in_words(rules: &[UrlRule]) -> String {
    rules
        .iter()
        .map(|r| format!("“{r}”"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl TriggerInput {
    /// The trigger in a sentence's words, for the campaign page and the URL tester.
    pub fn describe(&self) -> String {
        match self {
            TriggerInput::Url { include, exclude } => {
                let mut out = String::new();
                if !include.is_empty() {
                    out.push_str("the page URL matches ");
                    if include.len() > 1 {
                        out.push_str("one of ");
                    }
                    out.push_str(&rules_in_words(include));
                }
                if !exclude.is_empty() {
                    out.push_str(if include.is_empty() {
                        "the page URL matches none of "
                    } else {
                        " and none of "
                    });
                    out.push_str(&rules_in_words(exclude));
                }
                out
            }
            TriggerInput::TimeOnPage { seconds } => {
                format!("the visitor has been on the page {seconds} s")
            }
            TriggerInput::Visitor {
                visitor: VisitorKind::New,
            } => "the visitor is new to the site".to_string(),
            TriggerInput::Visitor {
                visitor: VisitorKind::Returning,
            } => "the visitor has been to the site before".to_string(),
            TriggerInput::Language { languages } => {
                format!("the page's language is {}", languages.join(" or "))
            }
            TriggerInput::Event { name, condition } => {
                let mut out = format!("the page calls Herald.trigger(\"{name}\")");
                if let Some(c) = condition {
                    out.push_str(&format!(" with {} {} {}", c.field, c.op, c.value));
                }
                out
            }
        }
    }
}

/// Whether a page URL passes a campaign's URL triggers, and if not, why, naming the admin's own
/// rule. The other triggers depend on the visit, not the URL, and are not checked here.
pub fn url_verdict(triggers: &[TriggerInput], url: &url::Url) -> Result<(), String> {
    for t in triggers {
        let TriggerInput::Url { include, exclude } = t else {
            continue;
        };
        let matches = |rule: &UrlRule| compile_url_rule(rule).is_ok_and(|c| c.matches(url));
        if let Some(rule) = exclude.iter().find(|r| matches(r)) {
            return Err(format!("the URL matches the exclude rule “{rule}”"));
        }
        if !include.is_empty() && !include.iter().any(matches) {
            return Err(format!(
                "the URL matches no include rule ({})",
                rules_in_words(include)
            ));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- sites

/// How many campaigns one visit may see: `None` is unlimited; `Some(0)` none.
pub type MaxPerVisit = Option<u32>;

/// A site as an admin writes it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Deserialize, Default)]
pub struct ChatSiteInput {
    #[serde(default)]
    pub name: String,
    /// Origins whose pages may load the site's configuration, e.g. `https://shop.example.com`.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// At most this many campaigns per visit; leave out (or null) for no limit, 0 for none.
    #[serde(default)]
    pub max_per_visit: Option<u32>,
}

/// A checked site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatSiteSpec {
    pub name: String,
    pub allowed_origins: Vec<String>,
    pub max_per_visit: MaxPerVisit,
}

impl ChatSiteInput {
    pub fn validate(&self) -> Result<ChatSiteSpec, ValidationError> {
        let mut errors = Errors::new();
        let name = crate::model::check_name(&mut errors, "name", &self.name);
        if self.allowed_origins.len() > ORIGINS_MAX {
            errors.push(
                "allowed_origins",
                format!("has more than {ORIGINS_MAX} origins"),
            );
        }
        let mut origins: Vec<String> = Vec::new();
        for (i, o) in self.allowed_origins.iter().enumerate() {
            if let Some(o) = errors.take(format!("allowed_origins[{i}]"), parse_origin(o))
                && !origins.contains(&o)
            {
                origins.push(o);
            }
        }
        errors.finish()?;
        Ok(ChatSiteSpec {
            name,
            allowed_origins: origins,
            max_per_visit: self.max_per_visit,
        })
    }
}

/// An origin as browsers send it in `Origin`: `https://shop.example.com` or
/// `http://127.0.0.1:8080`, scheme and host in lower case, no path.
pub fn parse_origin(input: &str) -> Result<String, String> {
    let raw = input.trim().trim_end_matches('/');
    let url = url::Url::parse(raw).map_err(|e| {
        format!("`{raw}` is not an origin ({e}); write it as https://shop.example.com")
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("`{raw}` is not an http or https origin"));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "`{raw}` has a path; an origin is only scheme, host and port, e.g. https://shop.example.com"
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("`{raw}` holds a user name; an origin has none"));
    }
    Ok(url.origin().ascii_serialization())
}

/// A stored site.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChatSite {
    pub id: Uuid,
    pub name: String,
    /// The public key the snippet names (`data-site`); random, not a secret but unguessable.
    pub key: String,
    pub allowed_origins: Vec<String>,
    pub max_per_visit: MaxPerVisit,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: Timestamp,
}

// ---------------------------------------------------------------- a campaign's chat settings

/// The chat settings of a chat campaign as an admin writes them.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Deserialize)]
pub struct ChatSettingsInput {
    pub site_id: Option<Uuid>,
    /// The inbox a visitor's chat lands in; a campaign without one shows its greeting, but a
    /// visitor's answer is refused.
    pub inbox_id: Option<Uuid>,
    /// 1 is the highest priority; breaks ties when two campaigns fire at once.
    pub order: Option<u32>,
    #[serde(default)]
    pub triggers: Vec<TriggerInput>,
    /// Ask the visitor for name and email before the chat (default off).
    #[serde(default)]
    pub onboarding: bool,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub starts_at: Option<Timestamp>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub ends_at: Option<Timestamp>,
    #[serde(default)]
    pub paused: bool,
}

/// Checked chat settings; `triggers` are the admin's, known to compile.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChatSettings {
    pub site_id: Uuid,
    pub inbox_id: Option<Uuid>,
    pub order: u32,
    pub triggers: Vec<TriggerInput>,
    pub onboarding: bool,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub starts_at: Option<Timestamp>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub ends_at: Option<Timestamp>,
    pub paused: bool,
}

/// The lowest priority an order may give.
pub const ORDER_MAX: u32 = 10_000;

impl ChatSettingsInput {
    pub fn validate(&self) -> Result<ChatSettings, ValidationError> {
        let mut errors = Errors::new();
        if self.site_id.is_none() {
            errors.push(
                "site_id",
                "is required: the chat site this campaign shows on",
            );
        }
        let order = self.order.unwrap_or(1);
        if !(1..=ORDER_MAX).contains(&order) {
            errors.push(
                "order",
                format!("must be between 1 (highest priority) and {ORDER_MAX}"),
            );
        }
        if let Err(e) = compile_triggers(&self.triggers) {
            for fe in e.0 {
                errors.push(fe.field, fe.message);
            }
        }
        if let (Some(s), Some(e)) = (self.starts_at, self.ends_at)
            && e <= s
        {
            errors.push("ends_at", "is not after starts_at");
        }
        errors.finish()?;
        Ok(ChatSettings {
            site_id: self.site_id.unwrap_or_default(),
            inbox_id: self.inbox_id,
            order,
            triggers: self.triggers.clone(),
            onboarding: self.onboarding,
            starts_at: self.starts_at,
            ends_at: self.ends_at,
            paused: self.paused,
        })
    }
}

impl ChatSettings {
    /// Whether the settings let the campaign show at `now` (not paused, within start and end);
    /// the campaign's schedule is checked apart.
    pub fn live_at(&self, now: Timestamp) -> bool {
        !self.paused
            && self.starts_at.is_none_or(|s| s <= now)
            && self.ends_at.is_none_or(|e| now < e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(kind: UrlMatch, value: &str) -> UrlRule {
        UrlRule {
            kind,
            value: value.into(),
        }
    }

    fn view<'a>(url: &'a url::Url, events: &'a [(String, serde_json::Value)]) -> PageView<'a> {
        PageView {
            url,
            seconds_on_page: 0,
            returning: false,
            language: None,
            events,
        }
    }

    #[test]
    fn triggers_combine_with_and_and_need_one() {
        let url =
            url::Url::parse("https://shop.example.com/cart").unwrap_or_else(|e| panic!("{e}"));
        let triggers = compile_triggers(&[
            TriggerInput::Url {
                include: vec![rule(UrlMatch::Equals, "/cart")],
                exclude: vec![],
            },
            TriggerInput::TimeOnPage { seconds: 5 },
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        let mut v = view(&url, &[]);
        assert!(!all_hold(&triggers, &v), "time on page not yet reached");
        v.seconds_on_page = 5;
        assert!(all_hold(&triggers, &v));
        assert!(!all_hold(&[], &v), "no trigger never holds");
        let err = compile_triggers(&[]).expect_err("empty list refused");
        assert_eq!(err.0[0].field, "triggers");
    }

    #[test]
    fn visitor_language_and_event_triggers() {
        let url = url::Url::parse("https://example.com/").unwrap_or_else(|e| panic!("{e}"));
        let events = vec![("cart".to_string(), serde_json::json!({"value": 250}))];
        let en_us = Language::parse("en-US").unwrap_or_else(|e| panic!("{e}"));
        let fr = Language::parse("fr").unwrap_or_else(|e| panic!("{e}"));
        let mut v = view(&url, &events);
        v.language = Some(&en_us);
        let compile = |t: TriggerInput| compile_triggers(&[t]).unwrap_or_else(|e| panic!("{e}"));
        let returning = compile(TriggerInput::Visitor {
            visitor: VisitorKind::Returning,
        });
        assert!(!all_hold(&returning, &v));
        v.returning = true;
        assert!(all_hold(&returning, &v));

        let en = compile(TriggerInput::Language {
            languages: vec!["en".into()],
        });
        assert!(all_hold(&en, &v), "en takes en-US");
        let en_gb = compile(TriggerInput::Language {
            languages: vec!["en-GB".into()],
        });
        assert!(!all_hold(&en_gb, &v), "en-GB does not take en-US");
        v.language = Some(&fr);
        assert!(!all_hold(&en, &v));

        let event = |op, value| {
            compile(TriggerInput::Event {
                name: "cart".into(),
                condition: Some(EventCondition {
                    field: "value".into(),
                    op,
                    value,
                }),
            })
        };
        assert!(all_hold(&event(Comparison::Gte, 250.0), &v));
        assert!(!all_hold(&event(Comparison::Gte, 251.0), &v));
        assert!(all_hold(&event(Comparison::Lte, 250.0), &v));
        assert!(!all_hold(&event(Comparison::Lte, 249.0), &v));
        assert!(all_hold(&event(Comparison::Eq, 250.0), &v));
        assert!(!all_hold(&event(Comparison::Eq, 25.0), &v));
        let other = compile(TriggerInput::Event {
            name: "signup".into(),
            condition: None,
        });
        assert!(!all_hold(&other, &v), "an event not fired does not hold");
    }

    #[test]
    fn bad_triggers_are_named_by_field() {
        let err = compile_triggers(&[
            TriggerInput::TimeOnPage { seconds: 5 },
            TriggerInput::Url {
                include: vec![
                    rule(UrlMatch::Equals, "/ok"),
                    rule(UrlMatch::Regex, "/cart(("),
                ],
                exclude: vec![],
            },
            TriggerInput::Language {
                languages: vec!["english!".into()],
            },
            TriggerInput::TimeOnPage { seconds: 99_999 },
        ])
        .expect_err("three problems");
        let fields: Vec<_> = err.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "triggers[1].include[1].value",
                "triggers[2].languages[0]",
                "triggers[3].seconds"
            ]
        );
        assert!(err.0[0].message.contains("not a valid regular expression"));
    }

    #[test]
    fn huge_regex_is_refused_for_its_size() {
        let err = compile_url_rule(&rule(UrlMatch::Regex, "(?:\\w{50}){50}")).expect_err("too big");
        assert!(err.contains("compiles to more than"), "{err}");
    }

    #[test]
    fn sites_check_their_origins() {
        let spec = ChatSiteInput {
            name: "Shop".into(),
            allowed_origins: vec![
                "HTTPS://Shop.Example.com/".into(),
                "http://127.0.0.1:8080".into(),
            ],
            max_per_visit: Some(1),
        }
        .validate()
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            spec.allowed_origins,
            ["https://shop.example.com", "http://127.0.0.1:8080"]
        );
        let err = ChatSiteInput {
            name: "".into(),
            allowed_origins: vec!["https://shop.example.com/cart".into(), "ftp://x".into()],
            max_per_visit: None,
        }
        .validate()
        .expect_err("bad");
        let fields: Vec<_> = err.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["name", "allowed_origins[0]", "allowed_origins[1]"]);
    }

    #[test]
    fn rule_lines_read_back_what_display_writes() {
        for kind in UrlMatch::ALL {
            let r = rule(kind, "/shop/*");
            assert_eq!(UrlRule::from_line(&r.to_string()), r);
        }
        assert_eq!(
            UrlRule::from_line("  Starts_With   /pricing "),
            rule(UrlMatch::StartsWith, "/pricing")
        );
        assert_eq!(
            UrlRule::from_line("*.example.com/cart"),
            rule(UrlMatch::Wildcard, "*.example.com/cart")
        );
        assert_eq!(
            UrlRule::from_line("/pricing"),
            rule(UrlMatch::Equals, "/pricing")
        );
        // A kind word that is the value's start, not a kind: kept whole.
        assert_eq!(
            UrlRule::from_line("/regexes"),
            rule(UrlMatch::Equals, "/regexes")
        );
    }

    #[test]
    fn url_verdicts_name_the_rule_that_decided() {
        let triggers = vec![
            TriggerInput::Url {
                include: vec![rule(UrlMatch::Wildcard, "/shop/*")],
                exclude: vec![rule(UrlMatch::StartsWith, "/shop/checkout")],
            },
            TriggerInput::TimeOnPage { seconds: 5 },
        ];
        let url = |s: &str| url::Url::parse(s).unwrap();
        assert_eq!(
            url_verdict(&triggers, &url("https://a.example/shop/shoes")),
            Ok(())
        );
        let excluded = url_verdict(&triggers, &url("https://a.example/shop/checkout/pay"));
        assert_eq!(
            excluded,
            Err("the URL matches the exclude rule “starts with /shop/checkout”".to_string())
        );
        let elsewhere = url_verdict(&triggers, &url("https://a.example/blog")).unwrap_err();
        assert!(elsewhere.contains("no include rule"), "{elsewhere}");
        assert_eq!(
            triggers[0].describe(),
            "the page URL matches “wildcard /shop/*” and none of “starts with /shop/checkout”"
        );
        let event = TriggerInput::Event {
            name: "cart".into(),
            condition: Some(EventCondition {
                field: "value".into(),
                op: Comparison::Gte,
                value: 200.0,
            }),
        };
        assert_eq!(
            event.describe(),
            "the page calls Herald.trigger(\"cart\") with value ≥ 200"
        );
    }

    #[test]
    fn settings_live_within_start_and_end_and_unpaused() {
        let at = |s: &str| s.parse::<Timestamp>().unwrap_or_else(|e| panic!("{e}"));
        let input = ChatSettingsInput {
            site_id: Some(Uuid::nil()),
            inbox_id: None,
            order: Some(2),
            triggers: vec![TriggerInput::TimeOnPage { seconds: 1 }],
            onboarding: false,
            starts_at: Some(at("2026-01-01T00:00:00Z")),
            ends_at: Some(at("2026-02-01T00:00:00Z")),
            paused: false,
        };
        let s = input.validate().unwrap_or_else(|e| panic!("{e}"));
        assert!(!s.live_at(at("2025-12-31T23:59:59Z")));
        assert!(s.live_at(at("2026-01-15T00:00:00Z")));
        assert!(!s.live_at(at("2026-02-01T00:00:00Z")));
        let paused = ChatSettings { paused: true, ..s };
        assert!(!paused.live_at(at("2026-01-15T00:00:00Z")));
        let bad = ChatSettingsInput {
            order: Some(0),
            ends_at: Some(at("2025-01-01T00:00:00Z")),
            triggers: vec![],
            ..input
        }
        .validate()
        .expect_err("bad");
        let fields: Vec<_> = bad.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["order", "triggers", "ends_at"]);
    }
}
