//! Which UTF-8 validator the validation pass uses: std or simdutf8, on 64 KiB chunks of ASCII
//! and of mixed text. Prints GB/s for each.

use std::time::Instant;

fn bench(name: &str, data: &[u8], f: impl Fn(&[u8]) -> bool) {
    let rounds = 20;
    let t = Instant::now();
    let mut ok = 0;
    for _ in 0..rounds {
        for chunk in data.chunks(64 * 1024) {
            ok += f(chunk) as usize;
        }
    }
    let gbs = (data.len() * rounds) as f64 / t.elapsed().as_secs_f64() / 1e9;
    println!("{name:<28} {gbs:6.2} GB/s ({ok})");
}

fn main() {
    let ascii = "+14155550123,Jane,Doe,jane.doe@example.com,America/New_York,C0001234,pro\n"
        .repeat(1_200_000)
        .into_bytes();
    let mixed = "+14155550123,Amélie,Müller,amelie@example.com,Europe/Berlin,C0001234,größer\n"
        .repeat(1_200_000)
        .into_bytes();
    for (label, data) in [("ascii", &ascii), ("mixed", &mixed)] {
        bench(&format!("std {label}"), data, |c| {
            std::str::from_utf8(c).is_ok()
        });
        bench(&format!("simdutf8 compat {label}"), data, |c| {
            simdutf8::compat::from_utf8(c).is_ok()
        });
    }
}
