//! Charts drawn on the server as inline SVG: no script, no library, nothing fetched, so they
//! show offline and under the pages' content security policy. Colours come from the style
//! sheet's variables (classes only, no inline styles), so they follow its light and dark
//! schemes. Every label is escaped here: the SVG is inserted into the page as markup.

use herald_core::outreach::Progress;
use herald_store::{HourCount, ReasonCount};
use jiff::tz::TimeZone;
use std::fmt::Write;

/// Width of every chart's drawing (it scales down with the page: `viewBox`).
const WIDTH: u32 = 640;
/// Height of one bar of a bar list, and the gap under it.
const ROW: u32 = 22;
const GAP: u32 = 6;
/// Room for the labels left of the bars.
const LABEL: u32 = 170;

/// `text` as SVG character data or an attribute value.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// One bar of a bar list: its label, its value, and its class (`bar`, `bar bad`, `bar muted`).
pub struct Bar {
    pub label: String,
    pub value: u64,
    pub class: &'static str,
}

/// Horizontal bars, longest first as given, each scaled against `max` (at least 1) and labelled
/// with its value. `title` names the chart for screen readers.
pub fn bars(title: &str, rows: &[Bar], max: u64) -> String {
    let max = max.max(1);
    let height = (ROW + GAP) * u32::try_from(rows.len()).unwrap_or(0) + GAP;
    let room = WIDTH - LABEL - 60;
    let mut svg = format!(
        "<svg class=\"chart\" role=\"img\" viewBox=\"0 0 {WIDTH} {height}\" \
         aria-label=\"{}\"><title>{}</title>",
        esc(title),
        esc(title)
    );
    for (i, r) in rows.iter().enumerate() {
        let y = GAP + (ROW + GAP) * u32::try_from(i).unwrap_or(0);
        // Whole pixels; a value above zero shows at least a sliver.
        let w = if r.value == 0 {
            0
        } else {
            u32::try_from(u64::from(room) * r.value.min(max) / max)
                .unwrap_or(room)
                .max(2)
        };
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\
             <rect class=\"{}\" x=\"{LABEL}\" y=\"{y}\" width=\"{w}\" height=\"{ROW}\"/>\
             <text x=\"{}\" y=\"{}\">{}</text>",
            LABEL - 8,
            y + ROW - 6,
            esc(&r.label),
            r.class,
            LABEL + w + 6,
            y + ROW - 6,
            r.value
        );
    }
    svg.push_str("</svg>");
    svg
}

/// The funnel: recipients → sent → delivered → replied, then what did not get through.
pub fn funnel(p: &Progress) -> String {
    let rows = [
        ("Recipients", p.total, "bar"),
        ("Sent", p.sent, "bar"),
        ("Delivered", p.delivered, "bar"),
        ("Replied", p.replied, "bar ok"),
        ("Failed", p.failed, "bar bad"),
        ("Skipped", p.skipped, "bar muted"),
        ("Uncertain", p.uncertain, "bar warn"),
        ("Waiting", p.pending, "bar muted"),
    ]
    .map(|(label, value, class)| Bar {
        label: label.to_string(),
        value,
        class,
    });
    bars("Recipients, sent, delivered, replied", &rows, p.total)
}

/// Reasons as bars, most first (failures by error code, skips by reason).
pub fn reasons(title: &str, counts: &[ReasonCount], class: &'static str) -> String {
    let max = counts.iter().map(|c| c.count).max().unwrap_or(0);
    let rows: Vec<Bar> = counts
        .iter()
        .map(|c| Bar {
            label: c.reason.replace('_', " "),
            value: c.count,
            class,
        })
        .collect();
    bars(title, &rows, max)
}

/// Messages sent per hour, as columns over time, the hours labelled in `tz`. Hours without a
/// send between the first and the last are drawn empty, so the axis is time.
pub fn per_hour(hours: &[HourCount], tz: &TimeZone) -> String {
    let (Some(first), Some(last)) = (hours.first(), hours.last()) else {
        return String::new();
    };
    let span =
        usize::try_from((last.hour.as_second() - first.hour.as_second()) / 3600).unwrap_or(0) + 1;
    let mut slots = vec![0_u64; span];
    for h in hours {
        let i = usize::try_from((h.hour.as_second() - first.hour.as_second()) / 3600).unwrap_or(0);
        if let Some(slot) = slots.get_mut(i) {
            *slot = h.sent;
        }
    }
    let max = slots.iter().copied().max().unwrap_or(1).max(1);
    let (top, plot, bottom) = (16_u32, 120_u32, 34_u32);
    let height = top + plot + bottom;
    let left = 40_u32;
    let room = WIDTH - left - 10;
    let n = u32::try_from(slots.len()).unwrap_or(1).max(1);
    let step = room / n;
    let bar = step.saturating_sub(2).max(1);
    let mut svg = format!(
        "<svg class=\"chart\" role=\"img\" viewBox=\"0 0 {WIDTH} {height}\" \
         aria-label=\"Messages sent per hour\"><title>Messages sent per hour</title>\
         <line class=\"axis\" x1=\"{left}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/>\
         <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{max}</text>",
        top + plot,
        WIDTH - 10,
        top + plot,
        left - 4,
        top + 10
    );
    for (i, &sent) in slots.iter().enumerate() {
        let x = left + step * u32::try_from(i).unwrap_or(0);
        let h = u32::try_from(u64::from(plot) * sent / max).unwrap_or(plot);
        let at = first
            .hour
            .checked_add(jiff::SignedDuration::from_hours(
                i64::try_from(i).unwrap_or(0),
            ))
            .unwrap_or(first.hour)
            .to_zoned_datetime(tz.clone());
        let label = at.strftime("%a %H:%M").to_string();
        let _ = write!(
            svg,
            "<rect class=\"bar\" x=\"{x}\" y=\"{}\" width=\"{bar}\" height=\"{h}\">\
             <title>{}: {sent}</title></rect>",
            top + plot - h,
            esc(&label)
        );
    }
    // The first and the last hour under the axis.
    let _ = write!(
        svg,
        "<text x=\"{left}\" y=\"{}\">{}</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
        top + plot + 16,
        esc(&first
            .hour
            .to_zoned_datetime(tz.clone())
            .strftime("%a %H:%M")
            .to_string()),
        WIDTH - 10,
        top + plot + 16,
        esc(&last
            .hour
            .to_zoned_datetime(tz.clone())
            .strftime("%a %H:%M")
            .to_string()),
    );
    svg.push_str("</svg>");
    svg
}

/// `42 s`, `3 min`, `2 h 5 min`, `1 d 3 h`.
pub fn duration(seconds: u64) -> String {
    match seconds {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min", s / 60),
        s if s < 86_400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        s => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

/// `12.5%` of `part` in `whole` (none of nothing).
pub fn rate(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "—".to_string();
    }
    #[allow(clippy::cast_precision_loss)] // counts of recipients, far below 2^52
    let pct = part as f64 * 100.0 / whole as f64;
    format!("{pct:.1}%")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped_and_bars_scale() {
        let svg = reasons(
            "Failures",
            &[
                ReasonCount {
                    reason: "<script>alert(1)</script>".to_string(),
                    count: 4,
                },
                ReasonCount {
                    reason: "30003".to_string(),
                    count: 2,
                },
            ],
            "bar bad",
        );
        assert!(!svg.contains("<script>"), "{svg}");
        assert!(svg.contains("&lt;script&gt;"), "{svg}");
        let room = WIDTH - LABEL - 60;
        assert!(svg.contains(&format!("width=\"{room}\"")), "{svg}");
        assert!(svg.contains(&format!("width=\"{}\"", room / 2)), "{svg}");
    }

    #[test]
    fn hours_without_sends_are_drawn_empty() {
        let t =
            |h: i64| jiff::Timestamp::from_second(1_780_000_000 / 3600 * 3600 + h * 3600).unwrap();
        let svg = per_hour(
            &[
                HourCount {
                    hour: t(0),
                    sent: 10,
                },
                HourCount {
                    hour: t(3),
                    sent: 5,
                },
            ],
            &TimeZone::UTC,
        );
        assert_eq!(svg.matches("<rect").count(), 4, "{svg}");
        assert!(svg.contains("height=\"0\""), "{svg}");
        assert_eq!(per_hour(&[], &TimeZone::UTC), "");
    }

    #[test]
    fn the_funnel_has_every_figure() {
        let p = Progress {
            total: 10,
            sent: 7,
            delivered: 5,
            replied: 2,
            failed: 1,
            skipped: 1,
            pending: 1,
            uncertain: 0,
        };
        let svg = funnel(&p);
        for label in [
            "Recipients",
            "Sent",
            "Delivered",
            "Replied",
            "Failed",
            "Skipped",
        ] {
            assert!(svg.contains(&format!(">{label}</text>")), "{label}: {svg}");
        }
        assert_eq!(
            (rate(2, 7), rate(0, 0)),
            ("28.6%".to_string(), "—".to_string())
        );
        assert_eq!(duration(3725), "1 h 2 min");
    }
}
