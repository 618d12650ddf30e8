//! Rendering answer variants per recipient: subjects and bodies, unicode, the three ways to pass
//! variables, missing variables named, fuel exhaustion, and errors a person can act on.

use herald_core::render::{Part, RenderError, Rendered, Renderer, render};
use herald_core::{AnswerInput, AnswerVariant, AnswerVariantInput};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

fn variant(subject: Option<&str>, body: &str) -> AnswerVariant {
    AnswerInput {
        name: "test".into(),
        variants: vec![AnswerVariantInput {
            language: "en".into(),
            subject: subject.map(str::to_string),
            body: body.into(),
            voice: None,
        }],
    }
    .validate()
    .unwrap()
    .variants
    .remove(0)
}

fn vars(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("not an object"),
    }
}

#[test]
fn renders_subject_and_body() {
    let v = variant(
        Some("Your order {{ order }}"),
        "Hi {{ first_name }}, order {{ order }} ships {{ day }}.",
    );
    let out = render(
        &v,
        &vars(json!({"first_name": "Jane", "order": "A-17", "day": "Tuesday", "unused": "x"})),
    )
    .unwrap();
    assert_eq!(
        out,
        Rendered {
            subject: Some("Your order A-17".into()),
            body: "Hi Jane, order A-17 ships Tuesday.".into(),
            html: None,
        }
    );
}

#[test]
fn a_variant_without_subject_renders_none() {
    let v = variant(None, "Hello");
    assert_eq!(render(&v, &Map::new()).unwrap().subject, None);
    assert_eq!(render(&v, &Map::new()).unwrap().body, "Hello");
}

#[test]
fn unicode_in_templates_and_values() {
    let v = variant(
        Some("🎉 {{ name }}"),
        "Привет, {{ name }}! 你好 {{ city }} — {{ name | upper }} ¿{{ greeting }}? 👋🏽",
    );
    let out = render(
        &v,
        &vars(json!({"name": "Straße", "city": "北京", "greeting": "مرحبا"})),
    )
    .unwrap();
    assert_eq!(out.subject.as_deref(), Some("🎉 Straße"));
    assert_eq!(out.body, "Привет, Straße! 你好 北京 — STRASSE ¿مرحبا? 👋🏽");
}

#[test]
fn nothing_is_html_escaped() {
    let v = variant(None, "{{ a }} & <b>{{ b }}</b>");
    let out = render(&v, &vars(json!({"a": "Tom & Jerry", "b": "<i>\"x\"</i>"}))).unwrap();
    assert_eq!(out.body, "Tom & Jerry & <b><i>\"x\"</i></b>");
}

#[test]
fn empty_values_render_empty() {
    let v = variant(None, "[{{ a }}]");
    assert_eq!(render(&v, &vars(json!({"a": ""}))).unwrap().body, "[]");
}

#[test]
fn a_missing_variable_is_named() {
    let v = variant(None, "Hi {{ first_name }}, your code is {{ code }}.");
    let err = render(&v, &vars(json!({"code": "123"}))).unwrap_err();
    assert_eq!(
        err,
        RenderError::MissingVariables {
            part: Part::Body,
            names: vec!["first_name".into()],
        }
    );
    assert!(err.to_string().contains("`first_name`"), "{err}");
    // All of them, sorted.
    let err = render(&v, &Map::new()).unwrap_err();
    assert_eq!(
        err,
        RenderError::MissingVariables {
            part: Part::Body,
            names: vec!["code".into(), "first_name".into()],
        }
    );
}

#[test]
fn a_missing_variable_in_the_subject_names_the_subject() {
    let v = variant(Some("About {{ topic }}"), "Hi {{ name }}");
    let err = render(&v, &vars(json!({"name": "Jo"}))).unwrap_err();
    assert_eq!(
        err,
        RenderError::MissingVariables {
            part: Part::Subject,
            names: vec!["topic".into()],
        }
    );
    assert!(
        err.to_string().starts_with("the subject uses `topic`"),
        "{err}"
    );
}

#[test]
fn a_missing_variable_inside_a_filter_or_condition_is_named() {
    let v = variant(None, "{{ name | upper }}");
    assert!(matches!(
        render(&v, &Map::new()),
        Err(RenderError::MissingVariables { names, .. }) if names == ["name"]
    ));
    let v = variant(None, "{% if vip == 'yes' %}Dear{% else %}Hi{% endif %} you");
    assert!(matches!(
        render(&v, &Map::new()),
        Err(RenderError::MissingVariables { names, .. }) if names == ["vip"]
    ));
}

#[test]
fn optional_variables_can_be_guarded() {
    let v = variant(
        None,
        "Hi {% if nickname is defined %}{{ nickname }}{% else %}{{ first_name }}{% endif %}, {{ team | default('the team') }}",
    );
    assert_eq!(
        render(&v, &vars(json!({"first_name": "Jane"})))
            .unwrap()
            .body,
        "Hi Jane, the team"
    );
    assert_eq!(
        render(&v, &vars(json!({"nickname": "JJ", "team": "Support"})))
            .unwrap()
            .body,
        "Hi JJ, Support"
    );
}

#[test]
fn an_attribute_of_a_plain_value_is_a_template_error_not_a_missing_column() {
    let v = variant(None, "Order {{ order.id }}");
    let err = render(&v, &vars(json!({"order": "A-1"}))).unwrap_err();
    assert!(
        matches!(
            err,
            RenderError::Template {
                part: Part::Body,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with("the body could not be rendered"),
        "{err}"
    );
}

#[test]
fn a_long_loop_runs_out_of_fuel() {
    let v = variant(None, "{% for i in range(100000) %}x{% endfor %}");
    let err = render(&v, &Map::new()).unwrap_err();
    assert_eq!(err, RenderError::OutOfFuel { part: Part::Body });
    assert!(err.to_string().contains("ran out of fuel"), "{err}");
    // Nested loops too.
    let v = variant(
        Some("{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}"),
        "ok",
    );
    assert_eq!(
        render(&v, &Map::new()).unwrap_err(),
        RenderError::OutOfFuel {
            part: Part::Subject
        }
    );
    // A short loop is fine.
    let v = variant(None, "{% for i in range(3) %}{{ i }}{% endfor %}");
    assert_eq!(render(&v, &Map::new()).unwrap().body, "012");
}

#[test]
fn the_renderer_serves_many_recipients() {
    let r = Renderer::new(&variant(
        Some("Re: {{ order }}"),
        "Hi {{ name }} ({{ order }})",
    ))
    .unwrap();
    assert_eq!(
        r.variables().into_iter().collect::<Vec<_>>(),
        ["name", "order"]
    );
    for i in 0..100 {
        let out = r
            .render_json(&format!(r#"{{"name":"n{i}","order":"o{i}"}}"#))
            .unwrap();
        assert_eq!(out.subject, Some(format!("Re: o{i}")));
        assert_eq!(out.body, format!("Hi n{i} (o{i})"));
    }
    // A failure for one recipient does not affect the next.
    assert!(r.render_json(r#"{"name":"x"}"#).is_err());
    assert_eq!(
        r.render_json(r#"{"name":"x","order":"y"}"#).unwrap().body,
        "Hi x (y)"
    );
}

#[test]
fn the_three_ways_to_pass_variables_agree() {
    let r = Renderer::from_sources(None, "{{ a }}-{{ b }}").unwrap();
    let expected = "1-two";
    let pairs = [("a", "1"), ("b", "two")];
    assert_eq!(r.render_pairs(&pairs).unwrap().body, expected);
    let owned: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(r.render_pairs(&owned).unwrap().body, expected);
    assert_eq!(
        r.render_json(r#"{"a":"1","b":"two"}"#).unwrap().body,
        expected
    );
    let map: BTreeMap<&str, &str> = pairs.into_iter().collect();
    assert_eq!(r.render(&map).unwrap().body, expected);
    assert_eq!(
        r.render(&vars(json!({"a": "1", "b": "two"}))).unwrap().body,
        expected
    );
    // A later pair wins.
    assert_eq!(
        r.render_pairs(&[("a", "1"), ("b", "x"), ("b", "y")])
            .unwrap()
            .body,
        "1-y"
    );
    // Missing through any route is named the same way.
    assert_eq!(
        r.render_pairs(&[("a", "1")]).unwrap_err(),
        RenderError::MissingVariables {
            part: Part::Body,
            names: vec!["b".into()],
        }
    );
}

#[test]
fn values_that_are_not_strings_still_render() {
    // Numbers and booleans go through the engine, which writes booleans the Python way.
    let r = Renderer::from_sources(None, "{{ n }} {{ ok }} {{ s }}").unwrap();
    assert_eq!(
        r.render_json(r#"{"n": 5, "ok": true, "s": "x\u00e9\n"}"#)
            .unwrap()
            .body,
        "5 True x\u{e9}\n"
    );
    assert_eq!(
        r.render(&vars(json!({"n": 1.5, "ok": false, "s": ""})))
            .unwrap()
            .body,
        "1.5 False "
    );
}

#[test]
fn variables_that_are_not_an_object_are_refused() {
    let r = Renderer::from_sources(None, "{{ a }}").unwrap();
    for bad in ["", "[1,2]", "\"a\"", "{\"a\":", "null"] {
        assert!(
            matches!(
                r.render_json(bad),
                Err(RenderError::InvalidVariables { .. })
            ),
            "{bad:?}"
        );
    }
    assert!(matches!(
        r.render(&vec!["a"]),
        Err(RenderError::InvalidVariables { .. })
    ));
    let err = r.render_json("[1]").unwrap_err();
    assert!(err.to_string().contains("not a JSON object"), "{err}");
}

#[test]
fn a_broken_source_is_refused_at_compile_time() {
    let err = Renderer::from_sources(Some("{{ a "), "ok").unwrap_err();
    assert!(
        matches!(
            err,
            RenderError::Template {
                part: Part::Subject,
                line: Some(1),
                ..
            }
        ),
        "{err:?}"
    );
    let err = Renderer::from_sources(None, "ok\n{% if %}").unwrap_err();
    assert!(
        matches!(
            err,
            RenderError::Template {
                part: Part::Body,
                line: Some(2),
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn values_never_run_as_template_code() {
    let r = Renderer::from_sources(None, "Hi {{ name }}").unwrap();
    assert_eq!(
        r.render_pairs(&[(
            "name",
            "{{ 7 * 7 }}{% for i in range(100000) %}{% endfor %}"
        )])
        .unwrap()
        .body,
        "Hi {{ 7 * 7 }}{% for i in range(100000) %}{% endfor %}"
    );
}

#[test]
fn output_near_the_fuel_limit_is_decided_by_the_engine() {
    // minijinja charges a fuel per 64 bytes written: 50,000 fuel is about 3.2 MB of output.
    let r = Renderer::from_sources(None, "<{{ a }}>").unwrap();
    let big = "x".repeat(1_000_000);
    assert_eq!(
        r.render_pairs(&[("a", big.as_str())]).unwrap().body.len(),
        1_000_002
    );
    let huge = "x".repeat(4_000_000);
    assert_eq!(
        r.render_pairs(&[("a", huge.as_str())]).unwrap_err(),
        RenderError::OutOfFuel { part: Part::Body }
    );
    let json = serde_json::to_string(&json!({ "a": huge })).unwrap();
    assert_eq!(
        r.render_json(&json).unwrap_err(),
        RenderError::OutOfFuel { part: Part::Body }
    );
    // Many placeholders: the engine runs out of fuel, and so does the renderer.
    let many = "{{ a }}".repeat(30_000);
    let r = Renderer::from_sources(None, &many).unwrap();
    assert_eq!(
        r.render_pairs(&[("a", "")]).unwrap_err(),
        RenderError::OutOfFuel { part: Part::Body }
    );
}

/// What minijinja itself renders, in Herald's environment: the reference for the fast path.
fn oracle(source: &str, pairs: &[(String, String)]) -> Result<String, ()> {
    let env = herald_core::template::environment();
    let ctx = minijinja::Value::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    env.render_str(source, ctx).map_err(|_| ())
}

mod properties {
    use super::*;
    use proptest::prelude::*;
    use proptest::sample::select;

    /// Templates mostly made of text and `{{ name }}` placeholders, with characters that come
    /// close to template syntax, and now and then something only the engine can render.
    fn template() -> impl Strategy<Value = String> {
        let text = prop::collection::vec(
            select(vec![
                "a", "Hi ", " ", "\n", "\r", "\r\n", "{", "}", "}}", "%", "#", "-", "ж", "😀",
                "{ {", "{%", "{#", "#}", "%}",
            ]),
            0..4,
        )
        .prop_map(|v| v.concat());
        let ws = || select(vec!["", " ", "  ", "\n", "\t"]);
        let var = (
            ws(),
            select(vec!["a", "b", "first_name", "range", "true", "loop"]),
            ws(),
        )
            .prop_map(|(l, n, r)| format!("{{{{{l}{n}{r}}}}}"));
        let other = select(vec![
            "{{ a | upper }}",
            "{{- a }}",
            "{{ a -}}",
            "{% if a %}A{% endif %}",
            "{# c #}",
            "{{ a ~ b }}",
        ])
        .prop_map(str::to_string);
        let piece = prop_oneof![4 => text, 4 => var, 1 => other];
        prop::collection::vec(piece, 0..8).prop_map(|v| v.concat())
    }

    fn pairs() -> impl Strategy<Value = Vec<(String, String)>> {
        prop::collection::vec(
            (
                select(vec!["a", "b", "first_name", "loop", "c"]).prop_map(str::to_string),
                prop_oneof![
                    any::<String>(),
                    select(vec!["", "{{ a }}", "x\n", "Jane"]).prop_map(str::to_string)
                ],
            ),
            0..5,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        /// The renderer, whichever path it takes, renders what minijinja renders, and fails
        /// where minijinja fails.
        #[test]
        fn agrees_with_minijinja(source in template(), vars in pairs()) {
            let expected = oracle(&source, &vars);
            let Ok(r) = Renderer::from_sources(Some(&source), &source) else {
                prop_assert!(expected.is_err(), "compiles in minijinja: {:?}", source);
                return Ok(());
            };
            let by_pairs = r.render_pairs(&vars);
            let map: serde_json::Map<String, Value> = vars
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            let by_json = r.render_json(&serde_json::to_string(&Value::Object(map.clone())).unwrap());
            let by_map = r.render(&map);
            match &expected {
                Ok(body) => {
                    // A subject is the same, made safe for a header line.
                    let subject = herald_core::render::sanitize_subject(body);
                    for got in [&by_pairs, &by_json, &by_map] {
                        let got = got.as_ref().map_err(|e| e.to_string());
                        prop_assert_eq!(got.as_ref().map(|g| g.body.as_str()), Ok(body.as_str()), "{:?}", source);
                        prop_assert_eq!(got.as_ref().map(|g| g.subject.as_deref()), Ok(Some(subject.as_str())));
                    }
                }
                Err(()) => {
                    prop_assert!(by_pairs.is_err(), "{:?} rendered {:?}", source, by_pairs);
                    prop_assert!(by_json.is_err(), "{:?} rendered {:?}", source, by_json);
                    prop_assert!(by_map.is_err(), "{:?} rendered {:?}", source, by_map);
                    // The three routes give the same error.
                    prop_assert_eq!(by_pairs.as_ref().err(), by_json.as_ref().err());
                    prop_assert_eq!(by_pairs.as_ref().err(), by_map.as_ref().err());
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any string value comes out exactly as it went in.
        #[test]
        fn values_render_verbatim(value in any::<String>(), name in "[a-z_][a-z0-9_]{0,12}") {
            let r = Renderer::from_sources(None, &format!("<{{{{ {name} }}}}>")).unwrap();
            let out = r.render_pairs(&[(name.as_str(), value.as_str())]).unwrap();
            prop_assert_eq!(out.body, format!("<{value}>"));
        }

        /// An email's values are text in both parts, whatever they hold, on the fast path and
        /// through the engine alike: never markup, never Markdown.
        #[test]
        fn email_values_are_text(value in "[ -~\né😀]{0,40}") {
            let fast = Renderer::email_from_sources(None, "Hi {{ a }}!").unwrap();
            let engine = Renderer::email_from_sources(None, "Hi {{ a ~ '' }}!").unwrap();
            let pairs = [("a", value.as_str())];
            let (fast, engine) = (fast.render_pairs(&pairs).unwrap(), engine.render_pairs(&pairs).unwrap());
            prop_assert_eq!(&fast, &engine);
            let flat = value.replace('\n', " ");
            let mut html = String::new();
            pulldown_cmark_escape::escape_html_body_text(&mut html, &flat).unwrap();
            let want = format!("<p>Hi {html}!</p>\n");
            prop_assert_eq!(fast.html.as_deref(), Some(want.as_str()));
            prop_assert_eq!(fast.body, format!("Hi {flat}!"));
        }

        /// Rendering never panics, whatever the template and variables.
        #[test]
        fn never_panics(source in any::<String>(), json in any::<String>()) {
            if let Ok(r) = Renderer::from_sources(Some(&source), &source) {
                let _ = r.render_json(&json);
                let _ = r.render_pairs(&[("a", json.as_str())]);
            }
        }
    }
}
