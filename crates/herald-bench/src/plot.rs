//! `herald-bench plot`: the scale curve as an SVG.
//!
//! Reads the JSON lines `import` and `dispatch` print (an import line has `rows`, a dispatch
//! line `recipients`) and draws two panels against rows on a logarithmic axis: seconds, also
//! logarithmic (Herald solid, the database's bare baseline dashed), and Herald's peak resident
//! memory in MB, with the targets (import 100 MB, dispatch 64 MB) dotted. Several runs of one
//! bench, backend and size are drawn as their median, and the points are marked so that three
//! sizes read as three measurements, not as a curve between them.

use crate::median;
use anyhow::{Context, bail};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// One bench on one backend: `(bench, backend)`, e.g. `("import", "postgres")`.
type SeriesKey = (String, String);

/// The runs of one series at each size: `herald_s`, `baseline_s`, `peak_rss_mb`.
#[derive(Debug, Default)]
struct Runs {
    herald_s: Vec<f64>,
    baseline_s: Vec<f64>,
    peak_mb: Vec<f64>,
}

/// A series' medians at each size, by rows.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Point {
    pub rows: f64,
    pub herald_s: f64,
    pub baseline_s: f64,
    pub peak_mb: f64,
}

/// The series found in `text` (JSON lines; lines that are not a bench figure are skipped).
pub(crate) fn series(text: &str) -> BTreeMap<SeriesKey, Vec<Point>> {
    let mut runs: BTreeMap<SeriesKey, BTreeMap<u64, Runs>> = BTreeMap::new();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let (bench, rows) = match (v.get("rows"), v.get("recipients")) {
            (Some(r), None) => ("import", r.as_u64()),
            (None, Some(r)) => ("dispatch", r.as_u64()),
            _ => continue,
        };
        let (Some(rows), Some(backend), Some(h), Some(b), Some(m)) = (
            rows,
            v.get("backend").and_then(|b| b.as_str()),
            v.get("herald_s").and_then(|x| x.as_f64()),
            v.get("baseline_s").and_then(|x| x.as_f64()),
            v.get("peak_rss_mb").and_then(|x| x.as_f64()),
        ) else {
            continue;
        };
        let r = runs
            .entry((bench.to_string(), backend.to_string()))
            .or_default()
            .entry(rows)
            .or_default();
        r.herald_s.push(h);
        r.baseline_s.push(b);
        r.peak_mb.push(m);
    }
    runs.into_iter()
        .map(|(key, sizes)| {
            let points = sizes
                .into_iter()
                .map(|(rows, r)| Point {
                    rows: rows as f64,
                    herald_s: median(r.herald_s),
                    baseline_s: median(r.baseline_s),
                    peak_mb: median(r.peak_mb),
                })
                .collect();
            (key, points)
        })
        .collect()
}

/// A round upper bound for an axis: 1, 2 or 5 times a power of ten, at least `max`.
fn nice_max(max: f64) -> f64 {
    if max.is_nan() || max <= 0.0 {
        return 1.0;
    }
    let p = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * p)
        .find(|&v| v >= max)
        .unwrap_or(10.0 * p)
}

const COLOURS: &[(&str, &str, &str)] = &[
    ("import", "sqlite", "#1f77b4"),
    ("import", "postgres", "#ff7f0e"),
    ("dispatch", "sqlite", "#2ca02c"),
    ("dispatch", "postgres", "#d62728"),
];

fn colour(key: &SeriesKey) -> &'static str {
    COLOURS
        .iter()
        .find(|(b, k, _)| *b == key.0 && *k == key.1)
        .map_or("#555555", |c| c.2)
}

/// A panel's vertical axis: linear from 0 to a bound, or logarithmic between two powers of ten
/// (their exponents).
#[derive(Clone, Copy)]
enum Scale {
    Linear(f64),
    Log(f64, f64),
}

/// Which figure of a point a line draws.
type Value = fn(&Point) -> f64;

/// Panel geometry: the plot area's left, top, width and height.
const PANEL_W: f64 = 330.0;
const PANEL_H: f64 = 230.0;
const LEFT: f64 = 55.0;
const TOP: f64 = 30.0;
const GAP: f64 = 90.0;

/// The SVG of `series`.
pub(crate) fn svg(series: &BTreeMap<SeriesKey, Vec<Point>>) -> anyhow::Result<String> {
    let all: Vec<&Point> = series.values().flatten().collect();
    if all.is_empty() {
        bail!("no import or dispatch figures in the input");
    }
    let lo = all.iter().map(|p| p.rows).fold(f64::INFINITY, f64::min);
    let hi = all.iter().map(|p| p.rows).fold(0.0, f64::max);
    let (x0, mut x1) = (lo.log10().floor(), hi.log10().ceil());
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    let max_s = all
        .iter()
        .map(|p| p.herald_s.max(p.baseline_s))
        .fold(0.0, f64::max);
    let min_s = all
        .iter()
        .map(|p| p.herald_s.min(p.baseline_s))
        .filter(|s| *s > 0.0)
        .fold(f64::INFINITY, f64::min);
    let (s0, mut s1) = (min_s.log10().floor(), max_s.log10().ceil());
    if !s0.is_finite() || !s1.is_finite() {
        bail!("no seconds to draw");
    }
    if s1 <= s0 {
        s1 = s0 + 1.0;
    }
    let max_mb = all.iter().map(|p| p.peak_mb).fold(100.0, f64::max);
    let panels = [
        (
            "seconds, log scale (solid: Herald, dashed: bare baseline)",
            Scale::Log(s0, s1),
        ),
        (
            "Herald's peak RSS, MB (dotted: targets)",
            Scale::Linear(nice_max(max_mb)),
        ),
    ];
    let width = LEFT + 2.0 * PANEL_W + GAP + 20.0;
    let height = TOP + PANEL_H + 95.0;
    let mut out = String::new();
    writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">"#
    )?;
    writeln!(
        out,
        r#"<rect width="{width}" height="{height}" fill="white"/>"#
    )?;
    for (i, (title, scale)) in panels.iter().enumerate() {
        let left = LEFT + i as f64 * (PANEL_W + GAP);
        let x = |rows: f64| left + (rows.log10() - x0) / (x1 - x0) * PANEL_W;
        let y = |v: f64| {
            let share = match *scale {
                Scale::Linear(max) => v / max,
                Scale::Log(lo, hi) => (v.max(f64::MIN_POSITIVE).log10() - lo) / (hi - lo),
            };
            TOP + PANEL_H - share * PANEL_H
        };
        writeln!(
            out,
            r#"<text x="{left}" y="{}" font-weight="bold">{title}</text>"#,
            TOP - 12.0
        )?;
        writeln!(
            out,
            r##"<rect x="{left}" y="{TOP}" width="{PANEL_W}" height="{PANEL_H}" fill="none" stroke="#999"/>"##
        )?;
        let ticks: Vec<f64> = match *scale {
            Scale::Linear(max) => (0..=4).map(|k| max * f64::from(k) / 4.0).collect(),
            Scale::Log(lo, hi) => (lo as i32..=hi as i32).map(|d| 10f64.powi(d)).collect(),
        };
        for v in ticks {
            writeln!(
                out,
                r##"<line x1="{left}" x2="{}" y1="{y}" y2="{y}" stroke="#eee"/><text x="{}" y="{}" text-anchor="end">{}</text>"##,
                left + PANEL_W,
                left - 5.0,
                y(v) + 4.0,
                trim(v),
                y = y(v),
            )?;
        }
        let mut decade = x0;
        while decade <= x1 {
            let rows = 10f64.powf(decade);
            writeln!(
                out,
                r##"<line x1="{x}" x2="{x}" y1="{TOP}" y2="{}" stroke="#eee"/><text x="{x}" y="{}" text-anchor="middle">{}</text>"##,
                TOP + PANEL_H,
                TOP + PANEL_H + 15.0,
                rows_label(rows),
                x = x(rows),
            )?;
            decade += 1.0;
        }
        writeln!(
            out,
            r#"<text x="{}" y="{}" text-anchor="middle">rows (log scale)</text>"#,
            left + PANEL_W / 2.0,
            TOP + PANEL_H + 32.0
        )?;
        if i == 1 {
            for (target, label) in [(100.0, "import 100 MB"), (64.0, "dispatch 64 MB")] {
                writeln!(
                    out,
                    r##"<line x1="{left}" x2="{}" y1="{y}" y2="{y}" stroke="#777" stroke-dasharray="2,3"/><text x="{}" y="{}" text-anchor="end" fill="#777">{label}</text>"##,
                    left + PANEL_W,
                    left + PANEL_W - 3.0,
                    y(target) - 3.0,
                    y = y(target),
                )?;
            }
        }
        for (key, points) in series {
            let c = colour(key);
            let lines: Vec<(Value, &str)> = if i == 0 {
                vec![(|p| p.herald_s, ""), (|p| p.baseline_s, "6,4")]
            } else {
                vec![(|p| p.peak_mb, "")]
            };
            for (value, dash) in lines {
                let pts: Vec<String> = points
                    .iter()
                    .map(|p| format!("{:.1},{:.1}", x(p.rows), y(value(p))))
                    .collect();
                writeln!(
                    out,
                    r#"<polyline fill="none" stroke="{c}" stroke-width="2" stroke-dasharray="{dash}" points="{}"/>"#,
                    pts.join(" ")
                )?;
                for p in points {
                    writeln!(
                        out,
                        r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{c}"><title>{} {} at {} rows: {}</title></circle>"#,
                        x(p.rows),
                        y(value(p)),
                        key.0,
                        key.1,
                        p.rows,
                        trim(value(p)),
                    )?;
                }
            }
        }
    }
    let legend_y = TOP + PANEL_H + 55.0;
    for (n, key) in series.keys().enumerate() {
        let lx = LEFT + n as f64 * 170.0;
        writeln!(
            out,
            r#"<line x1="{lx}" x2="{}" y1="{legend_y}" y2="{legend_y}" stroke="{}" stroke-width="3"/><text x="{}" y="{}">{} on {}</text>"#,
            lx + 20.0,
            colour(key),
            lx + 25.0,
            legend_y + 4.0,
            key.0,
            key.1,
        )?;
    }
    out.push_str("</svg>\n");
    Ok(out)
}

/// A number as a short label: `2.5`, `40`, `120`.
fn trim(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// `100k`, `1M`, `10M`.
fn rows_label(rows: f64) -> String {
    if rows >= 1e6 {
        format!("{}M", trim(rows / 1e6))
    } else if rows >= 1e3 {
        format!("{}k", trim(rows / 1e3))
    } else {
        trim(rows)
    }
}

/// `herald-bench plot`: reads `inputs`, writes the SVG to `output`.
pub fn plot_files(inputs: &[PathBuf], output: &Path) -> anyhow::Result<()> {
    let mut text = String::new();
    for path in inputs {
        text.push_str(
            &std::fs::read_to_string(path).with_context(|| format!("cannot read {path:?}"))?,
        );
        text.push('\n');
    }
    let found = series(&text);
    std::fs::write(output, svg(&found)?).with_context(|| format!("cannot write {output:?}"))?;
    for ((bench, backend), points) in &found {
        eprintln!("{bench} on {backend}: {} sizes", points.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUNS: &str = r#"
{"backend":"sqlite","rows":100000,"herald_s":0.5,"baseline_s":0.2,"ratio":2.5,"peak_rss_mb":60.0}
{"backend":"sqlite","rows":1000000,"herald_s":4.0,"baseline_s":1.6,"ratio":2.5,"peak_rss_mb":90.0}
{"backend":"sqlite","rows":1000000,"herald_s":6.0,"baseline_s":1.5,"ratio":4.0,"peak_rss_mb":95.0}
{"backend":"sqlite","rows":1000000,"herald_s":5.0,"baseline_s":1.7,"ratio":2.9,"peak_rss_mb":80.0}
not json
{"backend":"postgres","recipients":100000,"herald_s":3.0,"baseline_s":1.0,"ratio":3.0,"peak_rss_mb":20.0,"batch":1000}
{"bench":"chat","figure":"config_ratio","value":0.93}
"#;

    #[test]
    fn runs_are_grouped_by_bench_backend_and_size_and_take_the_median() {
        let s = series(RUNS);
        assert_eq!(s.len(), 2, "{s:?}");
        let import = &s[&("import".to_string(), "sqlite".to_string())];
        assert_eq!(import.len(), 2);
        assert_eq!(import[0].rows, 100_000.0);
        assert_eq!(
            import[1],
            Point {
                rows: 1_000_000.0,
                herald_s: 5.0,
                baseline_s: 1.6,
                peak_mb: 90.0
            }
        );
        let dispatch = &s[&("dispatch".to_string(), "postgres".to_string())];
        assert_eq!(dispatch.len(), 1);
        assert_eq!(dispatch[0].herald_s, 3.0);
    }

    #[test]
    fn the_svg_draws_every_point_left_to_right() {
        let s = series(RUNS);
        let svg = svg(&s).unwrap();
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.trim_end().ends_with("</svg>"));
        // Two panels: the import series has a Herald and a baseline line of seconds and a line
        // of memory, each of its two sizes; the dispatch series one size each.
        assert_eq!(svg.matches("<polyline").count(), 6);
        assert_eq!(svg.matches("<circle").count(), 3 * 2 + 3);
        let line = svg
            .lines()
            .find(|l| l.contains("<polyline") && l.contains("#1f77b4"))
            .unwrap();
        let points = line.split("points=\"").nth(1).unwrap();
        let xs: Vec<f64> = points
            .trim_end_matches("\"/>")
            .split(' ')
            .map(|p| p.split(',').next().unwrap().parse().unwrap())
            .collect();
        assert_eq!(xs.len(), 2);
        assert!(xs[0] < xs[1], "{xs:?}");
        assert!(svg.contains("import on sqlite") && svg.contains("dispatch on postgres"));
        assert!(svg.contains(">1M<"), "decade labels");
    }

    #[test]
    fn nothing_to_draw_is_an_error() {
        assert!(svg(&series("{\"figure\":1}")).is_err());
    }

    #[test]
    fn axis_bounds_are_round() {
        assert_eq!(nice_max(3.2), 5.0);
        assert_eq!(nice_max(120.0), 200.0);
        assert_eq!(nice_max(100.0), 100.0);
        assert_eq!(nice_max(0.0), 1.0);
    }
}
