//! The shared table of URL rule cases, run through the Rust matcher. The widget's JavaScript
//! runs the same table in Chromium (`crates/herald/tests/chat_browser.rs`).

use herald_core::chat::{UrlMatch, UrlRule, compile_url_rule};
use serde::Deserialize;

#[derive(Deserialize)]
struct Table {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    #[serde(rename = "match")]
    kind: UrlMatch,
    value: String,
    url: Option<String>,
    matches: Option<bool>,
    refused: Option<String>,
}

#[test]
fn every_case_of_the_shared_table() {
    let table: Table = serde_json::from_str(include_str!("chat_url_cases.json"))
        .unwrap_or_else(|e| panic!("chat_url_cases.json: {e}"));
    assert!(table.cases.len() >= 50, "the table lost cases");
    let mut failures = Vec::new();
    for (i, case) in table.cases.iter().enumerate() {
        let rule = UrlRule {
            kind: case.kind,
            value: case.value.clone(),
        };
        match (
            compile_url_rule(&rule),
            &case.refused,
            &case.url,
            case.matches,
        ) {
            (Err(e), Some(want), _, _) if e.contains(want.as_str()) => {}
            (Err(e), _, _, _) => failures.push(format!("case {i} ({}): refused: {e}", case.value)),
            (Ok(_), Some(want), _, _) => failures.push(format!(
                "case {i} ({}): accepted, want refusal `{want}`",
                case.value
            )),
            (Ok(compiled), None, Some(url), Some(want)) => {
                let url = url::Url::parse(url).unwrap_or_else(|e| panic!("case {i}: {e}"));
                if compiled.matches(&url) != want {
                    failures.push(format!(
                        "case {i}: {:?} `{}` against {url}: want {want}, pattern {}",
                        case.kind, case.value, compiled.pattern
                    ));
                }
            }
            (Ok(_), None, _, _) => failures.push(format!("case {i}: needs url and matches")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
