//! The README's tour, run as written (blocks fenced as ```bash tour), against a real `herald serve`.
//! If the README and Herald drift apart, this fails.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn tour_script() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("README.md");
    let mut script = String::new();
    let mut inside = false;
    for line in readme.lines() {
        if line.trim() == "```bash tour" {
            inside = true;
        } else if inside && line.trim() == "```" {
            inside = false;
            script.push('\n');
        } else if inside {
            script.push_str(line);
            script.push('\n');
        }
    }
    script
}

#[test]
fn the_readme_tour_works_as_written() {
    if Command::new("jq").arg("--version").output().is_err() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "jq is needed for the README tour and must be installed in CI"
        );
        eprintln!("jq is not installed; skipping the README tour");
        return;
    }
    let script = tour_script();
    assert!(script.contains("curl"), "no tour found in README.md");
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_herald");

    let mut server = Command::new(bin)
        .current_dir(dir.path())
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env_remove("HERALD_DATABASE_URL")
        .env("RUST_LOG", "warn")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(server.stderr.take().unwrap()).lines();
    let base = loop {
        let line = lines.next().expect("server exited").unwrap();
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});

    let script = script
        .replace("./target/release/herald", bin)
        .replace("http://127.0.0.1:8080", &base);
    let out = Command::new("bash")
        .current_dir(dir.path())
        .env_remove("HERALD_DATABASE_URL")
        .args(["-euo", "pipefail", "-c", &script])
        .output()
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "tour failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    for expected in [
        "\"status\":\"ok\"",
        "\"address\":\"+14155552671\"",
        "\"name\":\"Late orders\"",
        "has no fr variant",
        "{\"rows\":3,\"accepted\":2,\"invalid\":1,\"duplicates\":0,\"suppressed\":0,\"encoding\":\"utf-8\"}",
        "line,column,value,reason\n4,phone,not a number,",
        "\"/api/v1/campaigns/{id}\"",
        "\"total\":2,\"sent\":2,\"delivered\":0,\"failed\":0,\"skipped\":0,\"pending\":0",
        "{\"address\":\"+14155552671\",\"state\":\"sent\",\"attempts\":1}",
        "{\"to\":\"+14155552672\",\"body\":\"Hi Ben, your order A-1002 is running late. Reply here with questions.\"}",
        "{\"status\":\"stopped\",",
        "{\"created\":true,\"address\":\"+14155550123\"}",
        "{\"address\":\"+14155550123\",\"reason\":\"asked on the phone\"}",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected}\nstdout:\n{stdout}"
        );
    }
    assert!(
        stdout.contains("\"errors\":[{\"field\":\"language\""),
        "{stdout}"
    );
}
