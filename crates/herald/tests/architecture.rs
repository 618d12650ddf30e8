//! ARCHITECTURE.md stays true: every path it names exists, and every `path::function` names a
//! function defined in that file.

use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .and_then(Path::parent)
        .expect("the workspace root")
}

/// The text between backticks that looks like a path of this repository.
fn references(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter(|s| s.starts_with("crates/") || s.starts_with("scripts/") || s.starts_with("docs/"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_path_and_function_in_architecture_md_exists() {
    let text = std::fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let refs = references(&text);
    assert!(refs.len() > 40, "only {} references found", refs.len());
    let mut missing = Vec::new();
    for r in &refs {
        let (path, function) = match r.split_once("::") {
            Some((path, function)) => (path, Some(function)),
            None => (r.as_str(), None),
        };
        let full = root().join(path);
        if !full.exists() {
            missing.push(format!("{r}: no such path"));
            continue;
        }
        if let Some(function) = function {
            let source = std::fs::read_to_string(&full).unwrap_or_default();
            if !source.contains(&format!("fn {function}("))
                && !source.contains(&format!("fn {function}<"))
            {
                missing.push(format!("{r}: no `fn {function}` in {path}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md is out of date:\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_license_the_workspace_declares_is_in_the_repository() {
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    assert!(manifest.contains("license = \"Apache-2.0\""));
    let license = std::fs::read_to_string(root().join("LICENSE")).expect("a LICENSE file");
    assert!(license.contains("Apache License") && license.contains("Version 2.0"));
}
