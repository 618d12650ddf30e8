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

    /// Checks that every filter, test and function the template calls exists, by rendering it
    /// once with each variable set to a word: minijinja resolves those names only when it meets
    /// them, so `{{ name | uppper }}` would otherwise parse, be saved, and fail at every send.
    /// A branch that a word does not reach (the `else` of `{% if name %}`) is not checked.
    pub fn check_names(&self) -> Result<(), TemplateError> {
        let env = environment();
        let Ok(tmpl) = env.template_from_str(&self.source) else {
            return Ok(()); // parse already said why
        };
        let ctx: std::collections::BTreeMap<&str, &str> = self
            .variables
            .iter()
            .map(|v| (v.as_str(), "sample"))
            .collect();
        match tmpl.render(&ctx) {
            Err(e)
                if matches!(
                    e.kind(),
                    minijinja::ErrorKind::UnknownFilter
                        | minijinja::ErrorKind::UnknownTest
                        | minijinja::ErrorKind::UnknownFunction
                ) =>
            {
                let what = match e.kind() {
                    minijinja::ErrorKind::UnknownFilter => "filter",
                    minijinja::ErrorKind::UnknownTest => "test",
                    _ => "function",
                };
                let name = e.detail().map(str::to_string).unwrap_or_default();
                Err(TemplateError {
                    line: e.line().unwrap_or(1),
                    reason: if name.is_empty() {
                        format!("unknown {what}")
                    } else {
                        format!("unknown {what}: {name}")
                    },
                })
            }
            _ => Ok(()),
        }
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

#[cfg(test)]
mod name_tests {
    use super::Template;

    #[test]
    fn unknown_filters_tests_and_functions_are_named() {
        let e = Template::parse("Hi {{ name | uppper }}")
            .unwrap()
            .check_names()
            .unwrap_err();
        assert!(e.reason.contains("unknown filter"), "{e}");
        assert!(e.reason.contains("uppper"), "{e}");
        let e = Template::parse("{% if name is frobbed %}x{% endif %}")
            .unwrap()
            .check_names()
            .unwrap_err();
        assert!(e.reason.contains("unknown test"), "{e}");
        for good in [
            "Hi {{ name | upper }}",
            "{{ name | default('there') | title }}",
            "{% if name is defined %}{{ name }}{% endif %}",
            // A filter that fails on the sample word is the recipient's problem, not a typo.
            "{{ amount | int + 1 }}",
        ] {
            Template::parse(good).unwrap().check_names().unwrap();
        }
    }
}
