//! Micro-benchmark of the dispatcher's per-recipient work in herald-core: rendering a short SMS
//! answer with a compiled [`Renderer`] (plain placeholders, and with a filter, which goes through
//! the template engine), counting its segments, and the sending-hours check.
//!
//! Run: `cargo run --release -p herald-core --example render_bench [iterations]`.
//! Prints one line per measurement, nanoseconds per call (best of five rounds).

use herald_core::quiet::SendingHours;
use herald_core::render::Renderer;
use herald_core::schedule::Schedule;
use herald_core::sms::analyze;
use herald_core::{Channel, quiet};
use jiff::Timestamp;
use std::hint::black_box;
use std::time::Instant;

const BODY: &str = "Hi {{ first_name }}, your order {{ order_id }} ships {{ day }}. \
                    Questions? Reply to this text. Reply STOP to opt out.";

fn measure(name: &str, iterations: u32, mut f: impl FnMut(u32)) {
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let start = Instant::now();
        for i in 0..iterations {
            f(i);
        }
        let ns = start.elapsed().as_nanos() as f64 / f64::from(iterations);
        best = best.min(ns);
    }
    println!("{name:<40} {best:>9.0} ns/call");
}

fn main() {
    let iterations: u32 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);
    let renderer = match Renderer::from_sources(None, BODY) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let json: Vec<String> = (0..1024)
        .map(|i| {
            format!(
                r#"{{"first_name":"Jane{i}","order_id":"A-{i}","day":"Tuesday","city":"Berlin"}}"#
            )
        })
        .collect();
    let pairs: Vec<Vec<(String, String)>> = (0..1024)
        .map(|i| {
            vec![
                ("first_name".to_string(), format!("Jane{i}")),
                ("order_id".to_string(), format!("A-{i}")),
                ("day".to_string(), "Tuesday".to_string()),
                ("city".to_string(), "Berlin".to_string()),
            ]
        })
        .collect();
    let rendered = renderer.render_json(&json[0]).map(|r| r.body);
    println!("sample: {rendered:?}");

    measure("Renderer::new (compile once)", iterations / 100, |_| {
        black_box(Renderer::from_sources(None, black_box(BODY)).is_ok());
    });
    measure("Renderer::render_json", iterations, |i| {
        let vars = &json[(i % 1024) as usize];
        black_box(renderer.render_json(black_box(vars)).is_ok());
    });
    measure("Renderer::render_pairs", iterations, |i| {
        let vars = &pairs[(i % 1024) as usize];
        black_box(renderer.render_pairs(black_box(vars)).is_ok());
    });
    // The same answer with a filter goes through the template engine.
    if let Ok(engine) =
        Renderer::from_sources(None, &BODY.replace("{{ day }}", "{{ day | lower }}"))
    {
        measure("Renderer::render_json (engine path)", iterations, |i| {
            let vars = &json[(i % 1024) as usize];
            black_box(engine.render_json(black_box(vars)).is_ok());
        });
        measure("Renderer::render_pairs (engine path)", iterations, |i| {
            let vars = &pairs[(i % 1024) as usize];
            black_box(engine.render_pairs(black_box(vars)).is_ok());
        });
    }
    measure("render_json + sms::analyze", iterations, |i| {
        let vars = &json[(i % 1024) as usize];
        if let Ok(r) = renderer.render_json(black_box(vars)) {
            black_box(analyze(&r.body));
        }
    });
    let body = rendered.unwrap_or_default();
    measure("sms::analyze (short GSM-7 body)", iterations, |_| {
        black_box(analyze(black_box(&body)));
    });

    let Ok(schedule) = Schedule::office_hours("America/New_York") else {
        return;
    };
    let hours = SendingHours::new(&schedule, Channel::Sms, true);
    let t: Timestamp = "2026-03-06T16:00:00Z"
        .parse()
        .unwrap_or(Timestamp::UNIX_EPOCH);
    let tokyo = jiff::tz::TimeZone::get("Asia/Tokyo").ok();
    measure("SendingHours::may_send_now", iterations, |i| {
        let at = t + jiff::SignedDuration::from_secs(i64::from(i % 86_400));
        black_box(hours.may_send_now(black_box(at), tokyo.as_ref()));
    });
    measure("SendingHours::next_send_time", iterations, |i| {
        let at = t + jiff::SignedDuration::from_secs(i64::from(i % 86_400));
        black_box(hours.next_send_time(black_box(at), tokyo.as_ref()));
    });
    measure(
        "quiet::next_send_time (builds hours)",
        iterations / 10,
        |i| {
            let at = t + jiff::SignedDuration::from_secs(i64::from(i % 86_400));
            black_box(quiet::next_send_time(
                &schedule,
                Channel::Sms,
                true,
                black_box(at),
                tokyo.as_ref(),
            ));
        },
    );
}
