//! Sending hours: an IANA time zone plus windows per weekday.
//!
//! JSON shape: `{"timezone": "America/New_York", "days": {"mon": ["09:00-17:00"], "sun": []}}`.
//! A day that is missing or empty is closed; a day may hold several windows, which must not
//! overlap and must end after they start (`24:00` is the end of the day).

use crate::error::{Errors, ValidationError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

pub const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// Minutes since local midnight, `0..=1440`.
pub type Minute = u16;

/// One sending window within a day: `[start, end)` in local wall-clock minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Window {
    pub start: Minute,
    pub end: Minute,
}

impl Window {
    pub fn new(start: Minute, end: Minute) -> Option<Self> {
        (start < end && end <= 1440).then_some(Self { start, end })
    }

    /// Parses `HH:MM-HH:MM`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (a, b) = s
            .split_once('-')
            .ok_or_else(|| format!("`{s}` is not a window; write it as HH:MM-HH:MM, e.g. 09:00-17:00"))?;
        let start = parse_hhmm(a.trim())?;
        let end = parse_hhmm(b.trim())?;
        if start == 1440 {
            return Err(format!("`{s}` starts at 24:00; a window must start before the day ends"));
        }
        Window::new(start, end).ok_or_else(|| format!("`{s}` ends before it starts"))
    }
}

fn parse_hhmm(s: &str) -> Result<Minute, String> {
    let bad = || format!("`{s}` is not a time; write it as HH:MM (00:00 to 24:00)");
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return Err(bad());
    }
    let h: u16 = h.parse().map_err(|_| bad())?;
    let m: u16 = m.parse().map_err(|_| bad())?;
    if h > 24 || m > 59 || (h == 24 && m != 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02}:{:02}-{:02}:{:02}",
            self.start / 60,
            self.start % 60,
            self.end / 60,
            self.end % 60
        )
    }
}

/// The hours Herald may send, in a time zone.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    timezone: jiff::tz::TimeZone,
    timezone_name: String,
    /// Monday first; each day's windows sorted and not overlapping.
    days: [Vec<Window>; 7],
}

/// A schedule as it arrives in a request or is read from storage, before it is checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ScheduleInput {
    #[serde(default)]
    pub timezone: String,
    #[serde(default)]
    pub days: BTreeMap<String, Vec<String>>,
}

/// Looks up an IANA time zone name (`Europe/Berlin`).
pub fn parse_timezone(name: &str) -> Result<jiff::tz::TimeZone, String> {
    let name = name.trim();
    if name.is_empty() {
        return Err("time zone is missing; give an IANA name such as America/New_York".into());
    }
    jiff::tz::TimeZone::get(name)
        .map_err(|_| format!("`{name}` is not a known IANA time zone (e.g. Europe/Berlin)"))
}

impl Schedule {
    pub fn parse(input: &ScheduleInput) -> Result<Self, ValidationError> {
        let mut errors = Errors::new();
        let tz = errors.take("timezone", parse_timezone(&input.timezone));
        let mut days: [Vec<Window>; 7] = Default::default();
        for (key, windows) in &input.days {
            let Some(idx) = WEEKDAYS.iter().position(|d| d.eq_ignore_ascii_case(key.trim())) else {
                errors.push(
                    format!("days.{key}"),
                    format!("`{key}` is not a weekday; use mon, tue, wed, thu, fri, sat, sun"),
                );
                continue;
            };
            let mut parsed = Vec::new();
            for (i, w) in windows.iter().enumerate() {
                if let Some(w) = errors.take(format!("days.{key}[{i}]"), Window::parse(w)) {
                    parsed.push(w);
                }
            }
            parsed.sort();
            for pair in parsed.windows(2) {
                if pair[1].start < pair[0].end {
                    errors.push(
                        format!("days.{key}"),
                        format!("windows {} and {} overlap", pair[0], pair[1]),
                    );
                }
            }
            days[idx] = parsed;
        }
        errors.finish()?;
        let timezone = tz.ok_or_else(|| ValidationError::single("timezone", "missing"))?;
        Ok(Self {
            timezone,
            timezone_name: input.timezone.trim().to_string(),
            days,
        })
    }

    /// Office hours Monday to Friday, 09:00-17:00, in `tz` — a sensible default for new campaigns.
    pub fn office_hours(tz: &str) -> Result<Self, ValidationError> {
        let mut days = BTreeMap::new();
        for d in &WEEKDAYS[..5] {
            days.insert((*d).to_string(), vec!["09:00-17:00".to_string()]);
        }
        Schedule::parse(&ScheduleInput {
            timezone: tz.to_string(),
            days,
        })
    }

    pub fn timezone(&self) -> &jiff::tz::TimeZone {
        &self.timezone
    }

    pub fn timezone_name(&self) -> &str {
        &self.timezone_name
    }

    /// Windows of a weekday, Monday = 0.
    pub fn windows(&self, weekday_from_monday: usize) -> &[Window] {
        self.days
            .get(weekday_from_monday)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// True when every day is closed: such a schedule never opens.
    pub fn is_always_closed(&self) -> bool {
        self.days.iter().all(Vec::is_empty)
    }

    pub fn to_input(&self) -> ScheduleInput {
        ScheduleInput {
            timezone: self.timezone_name.clone(),
            days: WEEKDAYS
                .iter()
                .zip(&self.days)
                .map(|(d, ws)| ((*d).to_string(), ws.iter().map(Window::to_string).collect()))
                .collect(),
        }
    }
}

impl Serialize for Schedule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Days in weekday order, not alphabetical.
        use serde::ser::SerializeMap;
        struct Days<'a>(&'a [Vec<Window>; 7]);
        impl Serialize for Days<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut m = s.serialize_map(Some(7))?;
                for (d, ws) in WEEKDAYS.iter().zip(self.0) {
                    let ws: Vec<String> = ws.iter().map(Window::to_string).collect();
                    m.serialize_entry(d, &ws)?;
                }
                m.end()
            }
        }
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("timezone", &self.timezone_name)?;
        m.serialize_entry("days", &Days(&self.days))?;
        m.end()
    }
}

impl<'de> Deserialize<'de> for Schedule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let input = ScheduleInput::deserialize(d)?;
        Schedule::parse(&input).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(tz: &str, days: &[(&str, &[&str])]) -> ScheduleInput {
        ScheduleInput {
            timezone: tz.into(),
            days: days
                .iter()
                .map(|(d, ws)| (d.to_string(), ws.iter().map(|w| w.to_string()).collect()))
                .collect(),
        }
    }

    #[test]
    fn parses_and_round_trips() {
        let s = Schedule::parse(&input(
            "America/New_York",
            &[("mon", &["13:00-17:00", "09:00-12:00"]), ("sat", &["10:00-24:00"])],
        ))
        .unwrap();
        assert_eq!(s.windows(0).len(), 2);
        assert_eq!(s.windows(0)[0].to_string(), "09:00-12:00");
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["days"]["sat"][0], "10:00-24:00");
        assert_eq!(json["days"]["sun"], serde_json::json!([]));
        let back: Schedule = serde_json::from_value(json).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn every_problem_is_reported_with_its_field() {
        let err = Schedule::parse(&input(
            "Mars/Olympus",
            &[
                ("mon", &["09:00-12:00", "11:00-13:00"]),
                ("tue", &["17:00-09:00"]),
                ("wed", &["9am-5pm"]),
                ("someday", &[]),
            ],
        ))
        .unwrap_err();
        let fields: Vec<_> = err.0.iter().map(|e| e.field.as_str()).collect();
        assert!(fields.contains(&"timezone"), "{fields:?}");
        assert!(fields.contains(&"days.mon"), "{fields:?}");
        assert!(fields.contains(&"days.tue[0]"), "{fields:?}");
        assert!(fields.contains(&"days.wed[0]"), "{fields:?}");
        assert!(fields.contains(&"days.someday"), "{fields:?}");
        assert!(err.to_string().contains("overlap"));
        assert!(err.to_string().contains("ends before it starts"));
    }

    #[test]
    fn window_bounds() {
        assert!(Window::parse("00:00-24:00").is_ok());
        assert!(Window::parse("24:00-24:00").is_err());
        assert!(Window::parse("09:00-09:00").is_err());
        assert!(Window::parse("25:00-26:00").is_err());
        assert!(Window::parse("09:60-10:00").is_err());
    }
}
