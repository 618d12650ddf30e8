//! Rendering an answer variant for one recipient, with the row's variables.
//!
//! Templates run in [`crate::template::environment`]: strict about undefined variables (a
//! variable the template uses and the recipient lacks is an error naming it, never an empty
//! string) and with a fuel limit (a template that loops too long stops with an error instead of
//! holding the dispatcher). Nothing is HTML-escaped: SMS and plain-text email go out as written.
//!
//! [`render`] renders one recipient. On the dispatcher's path build a [`Renderer`] once per
//! outreach: it compiles the subject and body once, then renders each recipient from its
//! variables as stored (a JSON object, [`Renderer::render_json`]), as `(name, value)` pairs
//! ([`Renderer::render_pairs`]), or as any serializable map ([`Renderer::render`]).

use crate::model::AnswerVariant;
use minijinja::value::{Serde, Value, ValueKind};
use minijinja::{Environment, ErrorKind};
use serde::Serialize;
use std::collections::BTreeSet;
use std::fmt;

/// A rendered message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rendered {
    /// The subject, for a variant that has one (email).
    pub subject: Option<String>,
    pub body: String,
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
    has_subject: bool,
    subject_variables: Vec<String>,
    body_variables: Vec<String>,
}

impl Renderer {
    /// Compiles the subject (if any) and body of `variant`.
    pub fn new(variant: &AnswerVariant) -> Result<Self, RenderError> {
        Self::from_sources(
            variant.subject.as_ref().map(|t| t.source()),
            variant.body.source(),
        )
    }

    /// Compiles a subject (if any) and body given as template source.
    pub fn from_sources(subject: Option<&str>, body: &str) -> Result<Self, RenderError> {
        let mut env = crate::template::environment();
        if let Some(subject) = subject {
            env.add_template_owned(SUBJECT, subject.to_string())
                .map_err(|e| template_error(Part::Subject, &e))?;
        }
        env.add_template_owned(BODY, body.to_string())
            .map_err(|e| template_error(Part::Body, &e))?;
        let globals: BTreeSet<String> = env.globals().map(|(n, _)| n.to_string()).collect();
        let variables = |name: &str| -> Vec<String> {
            env.get_template(name)
                .map(|t| {
                    t.undeclared_variables(false)
                        .into_iter()
                        .filter(|v| !globals.contains(v))
                        .collect::<BTreeSet<_>>()
                        .into_iter()
                        .collect()
                })
                .unwrap_or_default()
        };
        let subject_variables = if subject.is_some() {
            variables(SUBJECT)
        } else {
            Vec::new()
        };
        let body_variables = variables(BODY);
        Ok(Self {
            env,
            has_subject: subject.is_some(),
            subject_variables,
            body_variables,
        })
    }

    /// Every variable the subject or body reads, sorted.
    pub fn variables(&self) -> BTreeSet<&str> {
        self.subject_variables
            .iter()
            .chain(&self.body_variables)
            .map(String::as_str)
            .collect()
    }

    /// Renders for a recipient whose variables are any serializable map (a
    /// `serde_json::Map`, a `BTreeMap<String, String>`, a `HashMap`, ...).
    pub fn render<V: Serialize + ?Sized>(&self, vars: &V) -> Result<Rendered, RenderError> {
        self.render_value(Value::from(Serde(vars)))
    }

    /// Renders for a recipient whose variables are `(name, value)` pairs, such as the columns of
    /// a CSV row. A later pair wins over an earlier one with the same name.
    pub fn render_pairs<K: AsRef<str>, V: AsRef<str>>(
        &self,
        pairs: &[(K, V)],
    ) -> Result<Rendered, RenderError> {
        self.render_value(Value::from_pairs(
            pairs.iter().map(|(k, v)| (k.as_ref(), v.as_ref())),
        ))
    }

    /// Renders for a recipient whose variables are a JSON object, as stored
    /// (`{"first_name":"Jane","order":"A-1"}`). The fast path for the dispatcher.
    pub fn render_json(&self, variables_json: &str) -> Result<Rendered, RenderError> {
        let vars: Value =
            serde_json::from_str(variables_json).map_err(|e| RenderError::InvalidVariables {
                reason: e.to_string(),
            })?;
        self.render_value(vars)
    }

    fn render_value(&self, ctx: Value) -> Result<Rendered, RenderError> {
        if ctx.kind() != ValueKind::Map {
            return Err(RenderError::InvalidVariables {
                reason: format!("got {} instead", ctx.kind()),
            });
        }
        let subject = if self.has_subject {
            Some(self.render_part(Part::Subject, &ctx)?)
        } else {
            None
        };
        let body = self.render_part(Part::Body, &ctx)?;
        Ok(Rendered { subject, body })
    }

    fn render_part(&self, part: Part, ctx: &Value) -> Result<String, RenderError> {
        let (name, variables) = match part {
            Part::Subject => (SUBJECT, &self.subject_variables),
            Part::Body => (BODY, &self.body_variables),
        };
        let template = self
            .env
            .get_template(name)
            .map_err(|e| template_error(part, &e))?;
        template.render(ctx).map_err(|e| match e.kind() {
            ErrorKind::UndefinedError => {
                let names: Vec<String> = variables
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
}
