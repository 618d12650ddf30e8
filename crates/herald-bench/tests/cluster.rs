//! `herald-bench cluster` at a tiny size: real `herald serve` processes on PostgreSQL against the
//! fake Twilio. Its lines parse, and the rate-limited sender's figures are within its limit (+5%)
//! with one node and with three. (A benchmark's speed is never asserted; these are its promises.)

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const RATE: f64 = 20.0;

fn bench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_herald-bench"))
}

/// The server `HERALD_TEST_POSTGRES_URL` names; `None` (with a note) when unset, except in CI.
fn postgres_url() -> Option<String> {
    match std::env::var("HERALD_TEST_POSTGRES_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url.trim().to_string()),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "HERALD_TEST_POSTGRES_URL is not set, and CI=true: the cluster bench's smoke test \
                 must run in CI"
            );
            eprintln!("note: HERALD_TEST_POSTGRES_URL is not set; skipping the cluster smoke test");
            None
        }
    }
}

/// The `herald` binary of this build (beside `herald-bench`), built first when it is missing:
/// `herald-bench` does not depend on the `herald` crate, so `cargo test -p herald-bench` alone
/// does not build it. (An existing one is used as it is: build it again after changing it, as
/// `cargo build -p herald -p herald-bench` does.)
fn herald_binary() -> PathBuf {
    let bench = Path::new(env!("CARGO_BIN_EXE_herald-bench"));
    let herald = bench.with_file_name("herald");
    if herald.is_file() {
        return herald;
    }
    let profile_dir = bench.parent().expect("profile directory");
    let mut cargo = Command::new(env!("CARGO"));
    cargo
        .args(["build", "--quiet", "-p", "herald", "--bin", "herald"])
        .arg("--target-dir")
        .arg(profile_dir.parent().expect("target directory"));
    if profile_dir.file_name().is_some_and(|p| p == "release") {
        cargo.arg("--release");
    }
    let status = cargo.status().expect("run cargo build -p herald");
    assert!(status.success(), "cargo build -p herald failed");
    assert!(herald.is_file(), "no herald at {}", herald.display());
    herald
}

#[test]
fn cluster_bench_prints_rates_and_keeps_the_limit() {
    let Some(url) = postgres_url() else {
        return;
    };
    let herald = herald_binary();
    let out = bench()
        .args(["cluster", "--postgres", &url, "--herald"])
        .arg(&herald)
        .args(["--nodes", "3", "--recipients", "150", "--batch", "20"])
        .args(["--concurrency", "4", "--rate", &RATE.to_string()])
        .args(["--limited-secs", "11"])
        .output()
        .expect("run herald-bench cluster");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "herald-bench cluster failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{stdout}");
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), 7, "{stdout}");
    assert_eq!(lines[0]["bench"], "cluster");
    assert_eq!(lines[0]["latency_ms"], 20);

    let num = |v: &Value, key: &str| {
        v[key]
            .as_f64()
            .unwrap_or_else(|| panic!("no number {key} in {v}"))
    };
    for (line, nodes) in [(&lines[1], 1), (&lines[2], 3)] {
        assert_eq!(line["run"], "unlimited", "{line}");
        assert_eq!(line["nodes"], nodes, "{line}");
        assert_eq!(line["recipients"], 150, "{line}");
        assert!(num(line, "msgs_per_s") > 0.0, "{line}");
    }
    let compare = &lines[3];
    assert_eq!(compare["compare"], "unlimited");
    let ratio = num(compare, "ratio");
    let rates = compare["msgs_per_s"].as_array().expect("two rates");
    let expected = rates[1].as_f64().unwrap() / rates[0].as_f64().unwrap();
    assert!((ratio - expected).abs() < 0.02 * expected, "{compare}");

    // The limit holds over any ten seconds, with one node and with three: at most 5% over. And
    // it is used: the mean is not starved below 70% of it.
    let most = (RATE * 10.0 * 1.05).floor();
    for (line, nodes) in [(&lines[4], 1), (&lines[5], 3)] {
        assert_eq!(line["run"], "limited", "{line}");
        assert_eq!(line["nodes"], nodes, "{line}");
        assert_eq!(line["recipients"], 220, "{line}");
        assert!(num(line, "busiest_10s") <= most, "over the limit: {line}");
        assert!(num(line, "busiest_10s_per_s") <= RATE * 1.05, "{line}");
        let mean = num(line, "mean_per_s");
        assert!(mean <= RATE * 1.05, "over the limit: {line}");
        assert!(mean >= RATE * 0.7, "the limit was not used: {line}");
    }
    assert_eq!(lines[6]["compare"], "limited");
    assert!(num(&lines[6], "busiest_ratio") > 0.0, "{}", lines[6]);
}

#[test]
fn cluster_bench_refuses_sizes_that_measure_nothing() {
    let cases: [(&[&str], &str); 4] = [
        (&["--nodes", "1"], "--nodes 1 compares nothing"),
        (&["--limited-secs", "5"], "the busiest 10 s window must fit"),
        (&["--rate", "0"], "--rate 0"),
        (&["--herald", "/nonexistent/herald"], "no herald binary at"),
    ];
    for (args, wanted) in cases {
        let out = bench()
            .args(["cluster", "--postgres", "postgres://127.0.0.1:1/none"])
            .args(args)
            .output()
            .expect("run herald-bench cluster");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(stderr.contains(wanted), "{args:?}: {stderr}");
    }
}
