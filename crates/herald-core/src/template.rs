//! Message templates: minijinja syntax with `{{variables}}`, checked when an answer is saved.

use serde::Serialize;
use std::collections::BTreeSet;

/// A template body that parses, with the variables it uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Template {
    source: String,
    #[serde(skip)]
    variables: BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct TemplateError {
    pub line: usize,
    pub reason: String,
}

/// The environment every template is parsed and rendered in: strict about undefined variables,
/// with a fuel limit so a template cannot loop for ever.
pub fn environment() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.set_fuel(Some(50_000));
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env
}

impl Template {
    pub fn parse(source: &str) -> Result<Self, TemplateError> {
        let env = environment();
        let tmpl = env.template_from_str(source).map_err(|e| TemplateError {
            line: e.line().unwrap_or(1),
            reason: e
                .detail()
                .map(str::to_string)
                .unwrap_or_else(|| e.kind().to_string()),
        })?;
        let variables = tmpl
            .undeclared_variables(false)
            .into_iter()
            .collect::<BTreeSet<_>>();
        Ok(Self {
            source: source.to_string(),
            variables,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// The top-level variables the template reads (`first_name` for `{{ first_name | upper }}`).
    pub fn variables(&self) -> &BTreeSet<String> {
        &self.variables
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_variables_a_body_uses() {
        let t = Template::parse("Hi {{ first_name }}, order {{order.id}} is {{ status | upper }}")
            .unwrap();
        let vars: Vec<_> = t.variables().iter().map(String::as_str).collect();
        assert_eq!(vars, ["first_name", "order", "status"]);
    }

    #[test]
    fn a_broken_template_names_line_and_reason() {
        let err = Template::parse("Hello\n{{ first_name ").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(!err.reason.is_empty());
        let err = Template::parse("{% if x %}open").unwrap_err();
        assert!(err.to_string().starts_with("line 1:"), "{err}");
    }
}
