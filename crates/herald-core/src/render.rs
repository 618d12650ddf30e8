//! Rendering an answer variant for one recipient, with the row's variables.
//!
//! Templates run in [`crate::template::environment`]: strict about undefined variables (a
//! variable the template uses and the recipient lacks is an error naming it, never an empty
//! string) and with a fuel limit (a template that loops too long stops with an error instead of
//! holding the dispatcher). Nothing is HTML-escaped: SMS goes out as written.
//!
//! Email bodies are Markdown ([`Renderer::email`]): the body's values are escaped for Markdown as
//! they are substituted, and the result is written as HTML and as plain text (see
//! [`crate::markdown`] for why in that order). Subjects are never Markdown.
//!
//! [`render`] renders one recipient. On the dispatcher's path build a [`Renderer`] once per
//! outreach: it compiles the subject and body once, then renders each recipient from its
//! variables as stored (a JSON object, [`Renderer::render_json`]), as `(name, value)` pairs
//! ([`Renderer::render_pairs`]), or as any serializable map ([`Renderer::render`]).
//!
//! Most answers are plain text with `{{ name }}` placeholders. For those the renderer substitutes
//! string values directly, without starting the template engine, and reads a stored JSON object
//! without building engine values: the output is the same as minijinja's (a property test holds
//! the two to it), at a fraction of the cost. Anything else — filters, conditions, loops, a
//! value that is not a string, a missing variable, an output large enough to approach the fuel
//! limit — goes through minijinja, which also produces every error.

use crate::channel::Channel;
use crate::model::AnswerVariant;
use minijinja::value::{Serde, Value, ValueKind};
use minijinja::{Environment, ErrorKind};
use serde::Serialize;
use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fmt;

/// A rendered message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rendered {
    /// The subject, for a variant that has one (email).
    pub subject: Option<String>,
    /// The SMS text, what a call says, or an email's plain-text part.
    pub body: String,
    /// An email's HTML part (a fragment, without `<html>` or `<body>`); `None` for other channels.
    pub html: Option<String>,
}

/// The part of a message a template belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Part {
    Subject,
    Body,
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Part::Subject => "subject",
            Part::Body => "body",
        })
    }
}

/// Why a message could not be rendered for a recipient.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// The template uses variables the recipient has no value for.
    #[error(
        "the {part} uses {}, which this recipient has no value for; add {} to the recipient list or remove {} from the answer",
        list(names),
        plural(names, "that column", "those columns"),
        plural(names, "it", "them")
    )]
    MissingVariables { part: Part, names: Vec<String> },
    /// The template ran too long (a loop over a large range, say) and was stopped.
    #[error(
        "the {part} ran out of fuel: it does too much work per recipient (a long loop?); simplify the template"
    )]
    OutOfFuel { part: Part },
    /// The recipient's variables are not a map from names to values.
    #[error("the recipient's variables are not a JSON object of names and values: {reason}")]
    InvalidVariables { reason: String },
    /// Any other template error (a filter given the wrong kind of value, say).
    #[error("the {part} could not be rendered{}: {reason}", line.map(|l| format!(" (line {l})")).unwrap_or_default())]
    Template {
        part: Part,
        line: Option<usize>,
        reason: String,
    },
}

fn list(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn plural(names: &[String], one: &'static str, many: &'static str) -> &'static str {
    if names.len() == 1 { one } else { many }
}

const SUBJECT: &str = "subject";
const BODY: &str = "body";

/// A subject made safe for a one-line email header, whatever the recipient list held: line
/// breaks and tabs become spaces, other control characters (ESC, NUL, DEL, C1, ...) are removed,
/// and the encoded-word opener `=?` gets an invisible WORD JOINER (U+2060) between its two
/// characters, so that text a CSV supplied as `=?utf-8?B?...?=` is shown as written instead of
/// being decoded by the mail client into something else. Every rendered subject goes through it.
pub fn sanitize_subject(subject: &str) -> String {
    let mut out = String::with_capacity(subject.len());
    for c in subject.chars() {
        match c {
            '\r' | '\n' | '\t' => out.push(' '),
            '?' if out.ends_with('=') => out.push_str("\u{2060}?"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Renders `variant` for one recipient whose variables are `vars` (column name → value).
///
/// Compiles the templates on every call; to render many recipients, build a [`Renderer`] once.
pub fn render(
    variant: &AnswerVariant,
    vars: &serde_json::Map<String, serde_json::Value>,
) -> Result<Rendered, RenderError> {
    Renderer::new(variant)?.render(vars)
}

/// An answer variant compiled once, to render many recipients.
#[derive(Debug)]
pub struct Renderer {
    env: Environment<'static>,
    subject: Option<Plan>,
    body: Plan,
    /// The fuel budget in minijinja's units: 64 a fuel, one per byte written, 64 per instruction
    /// run. The fast path stays inside half of it and leaves anything bigger to the engine.
    fuel_units: u64,
    /// The body is Markdown: values are escaped for it, and it is written as text and HTML.
    markdown: bool,
}

/// One compiled part: its name in the environment, the variables it reads, and, when it is only
/// text and `{{ name }}` placeholders, the pieces to substitute directly.
#[derive(Debug)]
struct Plan {
    part: Part,
    variables: Vec<String>,
    pieces: Option<Vec<Piece>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Var(String),
}

impl Part {
    /// The part's template name in the renderer's environment.
    fn template_name(self) -> &'static str {
        match self {
            Part::Subject => SUBJECT,
            Part::Body => BODY,
        }
    }
}

impl Renderer {
    /// Compiles the subject (if any) and body of `variant`.
    pub fn new(variant: &AnswerVariant) -> Result<Self, RenderError> {
        Self::from_sources(
            variant.subject.as_ref().map(|t| t.source()),
            variant.body.source(),
        )
    }

    /// Compiles `variant` as a message of `channel` renders it: an email's body as Markdown
    /// ([`Renderer::email`]), a call's voice script when the variant has one (its body
    /// otherwise, see [`AnswerVariant::body_for`]), any other message's body as it is.
    pub fn for_channel(variant: &AnswerVariant, channel: Channel) -> Result<Self, RenderError> {
        match channel {
            Channel::Email => Self::email(variant),
            Channel::Voice => Self::from_sources(None, variant.body_for(channel).source()),
            _ => Self::new(variant),
        }
    }

    /// Compiles a subject (if any) and body given as template source.
    pub fn from_sources(subject: Option<&str>, body: &str) -> Result<Self, RenderError> {
        Self::compile(subject, body, false)
    }

    /// Compiles `variant` as an email: its body is Markdown, rendered to an HTML part and a
    /// plain-text part ([`Rendered::html`], [`Rendered::body`]).
    pub fn email(variant: &AnswerVariant) -> Result<Self, RenderError> {
        Self::email_from_sources(
            variant.subject.as_ref().map(|t| t.source()),
            variant.body.source(),
        )
    }

    /// [`Renderer::email`] from template source.
    pub fn email_from_sources(subject: Option<&str>, body: &str) -> Result<Self, RenderError> {
        Self::compile(subject, body, true)
    }

    fn compile(subject: Option<&str>, body: &str, markdown: bool) -> Result<Self, RenderError> {
        let mut env = crate::template::environment();
        if markdown {
            // Every value the body prints is literal text to the Markdown parser.
            env.set_formatter(|out, state, value| {
                if state.name() == BODY && !value.is_undefined() {
                    let mut escaped = String::new();
                    crate::markdown::escape_value(&value.to_string(), &mut escaped);
                    out.write_str(&escaped).map_err(minijinja::Error::from)
                } else {
                    minijinja::escape_formatter(out, state, value)
                }
            });
        }
        if let Some(subject) = subject {
            env.add_template_owned(SUBJECT, subject.to_string())
                .map_err(|e| template_error(Part::Subject, &e))?;
        }
        env.add_template_owned(BODY, body.to_string())
            .map_err(|e| template_error(Part::Body, &e))?;
        let globals: BTreeSet<String> = env.globals().map(|(n, _)| n.to_string()).collect();
        let plan = |part: Part, source: &str| -> Plan {
            let variables: Vec<String> = env
                .get_template(part.template_name())
                .map(|t| {
                    t.undeclared_variables(false)
                        .into_iter()
                        .filter(|v| !globals.contains(v))
                        .collect::<BTreeSet<_>>()
                        .into_iter()
                        .collect()
                })
                .unwrap_or_default();
            let pieces = simple_pieces(source, &variables);
            Plan {
                part,
                variables,
                pieces,
            }
        };
        let subject = subject.map(|s| plan(Part::Subject, s));
        let body = plan(Part::Body, body);
        let fuel_units = env.fuel().unwrap_or(u64::MAX).saturating_mul(64);
        Ok(Self {
            env,
            subject,
            body,
            fuel_units,
            markdown,
        })
    }

    /// Every variable the subject or body reads, sorted.
    pub fn variables(&self) -> BTreeSet<&str> {
        self.subject
            .iter()
            .flat_map(|p| &p.variables)
            .chain(&self.body.variables)
            .map(String::as_str)
            .collect()
    }

    /// Renders for a recipient whose variables are any serializable map (a
    /// `serde_json::Map`, a `BTreeMap<String, String>`, a `HashMap`, ...).
    pub fn render<V: Serialize + ?Sized>(&self, vars: &V) -> Result<Rendered, RenderError> {
        let ctx = Value::from(Serde(vars));
        if ctx.kind() == ValueKind::Map {
            let fast = self.render_fast(|name, out| {
                match ctx.get_attr(name).ok().as_ref().and_then(Value::as_str) {
                    Some(v) => {
                        out.push_str(v);
                        true
                    }
                    None => false,
                }
            });
            if let Some(rendered) = fast {
                return Ok(rendered);
            }
        }
        self.render_value(ctx)
    }

    /// Renders for a recipient whose variables are `(name, value)` pairs, such as the columns of
    /// a CSV row. A later pair wins over an earlier one with the same name.
    pub fn render_pairs<K: AsRef<str>, V: AsRef<str>>(
        &self,
        pairs: &[(K, V)],
    ) -> Result<Rendered, RenderError> {
        let fast = self.render_fast(|name, out| {
            match pairs.iter().rev().find(|(k, _)| k.as_ref() == name) {
                Some((_, v)) => {
                    out.push_str(v.as_ref());
                    true
                }
                None => false,
            }
        });
        match fast {
            Some(rendered) => Ok(rendered),
            None => self.render_value(Value::from_pairs(
                pairs.iter().map(|(k, v)| (k.as_ref(), v.as_ref())),
            )),
        }
    }

    /// Renders for a recipient whose variables are a JSON object, as stored
    /// (`{"first_name":"Jane","order":"A-1"}`). The fast path for the dispatcher.
    pub fn render_json(&self, variables_json: &str) -> Result<Rendered, RenderError> {
        if self.has_fast_path()
            && let Ok(StrPairs(pairs)) = serde_json::from_str::<StrPairs<'_>>(variables_json)
        {
            let fast = self.render_fast(|name, out| {
                match pairs.iter().rev().find(|(k, _)| k.as_ref() == name) {
                    Some((_, v)) => {
                        out.push_str(v);
                        true
                    }
                    None => false,
                }
            });
            if let Some(rendered) = fast {
                return Ok(rendered);
            }
        }
        let vars: Value =
            serde_json::from_str(variables_json).map_err(|e| RenderError::InvalidVariables {
                reason: e.to_string(),
            })?;
        self.render_value(vars)
    }

    fn has_fast_path(&self) -> bool {
        self.body.pieces.is_some() && self.subject.as_ref().is_none_or(|s| s.pieces.is_some())
    }

    /// Substitutes the variables straight into plain `text {{ name }}` templates. `None` when a
    /// part is not that simple, a variable is missing or not a string (`push` returns false), or
    /// the output nears the fuel limit: then the engine must decide.
    fn render_fast(&self, push: impl Fn(&str, &mut String) -> bool) -> Option<Rendered> {
        let subject = match &self.subject {
            Some(plan) => Some(sanitize_subject(
                &self.fill(plan.pieces.as_deref()?, &push)?,
            )),
            None => None,
        };
        let body = if self.markdown {
            // `fill` takes `Fn`; one scratch string for the values, in a cell.
            let value = std::cell::RefCell::new(String::new());
            let escaped_fn = |name: &str, out: &mut String| {
                let mut value = value.borrow_mut();
                value.clear();
                let found = push(name, &mut value);
                crate::markdown::escape_value(&value, out);
                found
            };
            self.fill(self.body.pieces.as_deref()?, &escaped_fn)?
        } else {
            self.fill(self.body.pieces.as_deref()?, &push)?
        };
        Some(self.finish(subject, body))
    }

    /// The rendered message from its rendered subject and body: for an email, the body's
    /// Markdown written as text and HTML.
    fn finish(&self, subject: Option<String>, body: String) -> Rendered {
        if self.markdown {
            Rendered {
                subject,
                html: Some(crate::markdown::to_html(&body)),
                body: crate::markdown::to_text(&body),
            }
        } else {
            Rendered {
                subject,
                body,
                html: None,
            }
        }
    }

    fn fill(&self, pieces: &[Piece], push: &impl Fn(&str, &mut String) -> bool) -> Option<String> {
        let mut out = String::with_capacity(
            pieces
                .iter()
                .map(|p| match p {
                    Piece::Text(t) => t.len(),
                    Piece::Var(_) => 16,
                })
                .sum(),
        );
        for piece in pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Var(name) => {
                    if !push(name, &mut out) {
                        return None;
                    }
                }
            }
        }
        // Generous: four instructions a piece and every byte, against half the budget.
        let cost = u64::try_from(pieces.len())
            .unwrap_or(u64::MAX)
            .saturating_mul(4 * 64)
            .saturating_add(u64::try_from(out.len()).unwrap_or(u64::MAX))
            .saturating_add(16 * 64);
        (cost <= self.fuel_units / 2).then_some(out)
    }

    fn render_value(&self, ctx: Value) -> Result<Rendered, RenderError> {
        if ctx.kind() != ValueKind::Map {
            return Err(RenderError::InvalidVariables {
                reason: format!("got {} instead", ctx.kind()),
            });
        }
        let subject = match &self.subject {
            Some(plan) => Some(sanitize_subject(&self.render_part(plan, &ctx)?)),
            None => None,
        };
        let body = self.render_part(&self.body, &ctx)?;
        Ok(self.finish(subject, body))
    }

    fn render_part(&self, plan: &Plan, ctx: &Value) -> Result<String, RenderError> {
        let part = plan.part;
        let template = self
            .env
            .get_template(part.template_name())
            .map_err(|e| template_error(part, &e))?;
        template.render(ctx).map_err(|e| match e.kind() {
            ErrorKind::UndefinedError => {
                let names: Vec<String> = plan
                    .variables
                    .iter()
                    .filter(|v| ctx.get_attr(v).is_ok_and(|x| x.is_undefined()))
                    .cloned()
                    .collect();
                if names.is_empty() {
                    template_error(part, &e)
                } else {
                    RenderError::MissingVariables { part, names }
                }
            }
            ErrorKind::OutOfFuel => RenderError::OutOfFuel { part },
            _ => template_error(part, &e),
        })
    }
}

/// Splits a template that is only text and `{{ name }}` placeholders (`name` one of the
/// template's own variables) into pieces; `None` for anything else. Mirrors minijinja's lexer: one
/// trailing newline is dropped, `{%` and `{#` start tags, and whitespace control (`{{-`), filters,
/// literals and the rest are left to the engine.
fn simple_pieces(source: &str, variables: &[String]) -> Option<Vec<Piece>> {
    let mut rest = source.strip_suffix('\n').unwrap_or(source);
    rest = rest.strip_suffix('\r').unwrap_or(rest);
    let has_tag = |text: &str| text.contains("{%") || text.contains("{#");
    let mut pieces = Vec::new();
    while !rest.is_empty() {
        let Some(open) = rest.find("{{") else {
            if has_tag(rest) {
                return None;
            }
            pieces.push(Piece::Text(rest.to_string()));
            break;
        };
        let text = rest.get(..open)?;
        if has_tag(text) {
            return None;
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text.to_string()));
        }
        let after = rest.get(open + 2..)?;
        let close = after.find("}}")?;
        let name = after
            .get(..close)?
            .trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\r'));
        if !is_identifier(name) || !variables.iter().any(|v| v == name) {
            return None;
        }
        pieces.push(Piece::Var(name.to_string()));
        rest = after.get(close + 2..)?;
    }
    Some(pieces)
}

fn is_identifier(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes
        .next()
        .is_some_and(|b| b == b'_' || b.is_ascii_alphabetic())
        && bytes.all(|b| b == b'_' || b.is_ascii_alphanumeric())
}

/// A JSON object whose values are all strings, read without building engine values; strings
/// without escapes are borrowed from the input. Any other JSON fails, and the caller takes the
/// general path.
struct StrPairs<'de>(Vec<(Cow<'de, str>, Cow<'de, str>)>);

struct StrValue<'de>(Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for StrValue<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = StrValue<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                v: &'de str,
            ) -> Result<Self::Value, E> {
                Ok(StrValue(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(StrValue(Cow::Owned(v.to_string())))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(StrValue(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> serde::Deserialize<'de> for StrPairs<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = StrPairs<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of strings")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(8).min(64));
                while let Some((StrValue(k), StrValue(v))) =
                    map.next_entry::<StrValue<'de>, StrValue<'de>>()?
                {
                    pairs.push((k, v));
                }
                Ok(StrPairs(pairs))
            }
        }
        d.deserialize_map(V)
    }
}

fn template_error(part: Part, e: &minijinja::Error) -> RenderError {
    RenderError::Template {
        part,
        line: e.line(),
        reason: e
            .detail()
            .map(str::to_string)
            .unwrap_or_else(|| e.kind().to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globals_are_not_variables() {
        let r = Renderer::from_sources(
            Some("{{ subject_line }}"),
            "{% for i in range(3) %}{{ name }}{% endfor %}",
        )
        .unwrap();
        assert_eq!(
            r.variables().into_iter().collect::<Vec<_>>(),
            ["name", "subject_line"]
        );
    }

    #[test]
    fn plain_templates_take_the_fast_path() {
        let vars = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let text = |s: &str| Piece::Text(s.into());
        let var = |s: &str| Piece::Var(s.into());
        assert_eq!(
            simple_pieces(
                "Hi {{ name }}, {{order_id}}!\n",
                &vars(&["name", "order_id"])
            ),
            Some(vec![
                text("Hi "),
                var("name"),
                text(", "),
                var("order_id"),
                text("!")
            ])
        );
        assert_eq!(
            simple_pieces("{{\n a \t}}}} x }}", &vars(&["a"])),
            Some(vec![var("a"), text("}} x }}")])
        );
        assert_eq!(simple_pieces("", &[]), Some(vec![]));
        assert_eq!(simple_pieces("\r\n", &[]), Some(vec![]));
        assert_eq!(simple_pieces("a\n\n", &[]), Some(vec![text("a\n")]));
        for slow in [
            "{{ name | upper }}",
            "{{- name }}",
            "{{ name -}}",
            "{{+ name }}",
            "{{ true }}",
            "{{ range }}",
            "{{ 'x' }}",
            "{{ a.b }}",
            "{{{ name }}}",
            "{% if name %}x{% endif %}",
            "{# note #}{{ name }}",
            "{{ name }} {%raw%}",
            "{{ name ",
            "{{ näme }}",
        ] {
            assert_eq!(simple_pieces(slow, &vars(&["name", "a"])), None, "{slow}");
        }
        // A name the engine does not count as a variable (a global, a literal) is not substituted.
        assert_eq!(simple_pieces("{{ x }}", &[]), None);
    }

    #[test]
    fn error_messages_read_well() {
        let one = RenderError::MissingVariables {
            part: Part::Body,
            names: vec!["first_name".into()],
        };
        assert_eq!(
            one.to_string(),
            "the body uses `first_name`, which this recipient has no value for; add that column to the recipient list or remove it from the answer"
        );
        let two = RenderError::MissingVariables {
            part: Part::Subject,
            names: vec!["a".into(), "b".into()],
        };
        assert!(two.to_string().contains("`a`, `b`"), "{two}");
        assert!(two.to_string().contains("those columns"), "{two}");
        let t = RenderError::Template {
            part: Part::Body,
            line: Some(2),
            reason: "oops".into(),
        };
        assert_eq!(
            t.to_string(),
            "the body could not be rendered (line 2): oops"
        );
    }

    #[test]
    fn subjects_lose_control_characters_and_encoded_words() {
        let r = Renderer::from_sources(Some("Order {{ order }}"), "Hi").unwrap();
        for vars in [
            serde_json::json!({"order": "A-1\u{1b}[31m\r\nBcc: x@evil.example"}),
            serde_json::json!({"order": "=?utf-8?B?WW91ciBhY2NvdW50IGlzIGxvY2tlZA==?="}),
        ] {
            let fast = r.render_json(&vars.to_string()).unwrap().subject.unwrap();
            let engine = r
                .render(vars.as_object().unwrap())
                .unwrap()
                .subject
                .unwrap();
            assert_eq!(fast, engine);
            assert!(!fast.chars().any(char::is_control), "{fast:?}");
            assert!(!fast.contains("=?"), "{fast:?}");
        }
        assert_eq!(
            sanitize_subject("A-1\u{1b}[31m\r\nBcc: x"),
            "A-1[31m  Bcc: x"
        );
        assert_eq!(
            sanitize_subject("=?utf-8?q?x?= and 1+1=2? or =?"),
            "=\u{2060}?utf-8?q?x?= and 1+1=2? or =\u{2060}?"
        );
        assert_eq!(sanitize_subject("Your order A-1 ✓"), "Your order A-1 ✓");
        // Bodies are left as written.
        let r = Renderer::from_sources(None, "{{ x }}").unwrap();
        assert_eq!(
            r.render_json(r#"{"x":"=?a?b?c?="}"#).unwrap().body,
            "=?a?b?c?="
        );
    }
}
