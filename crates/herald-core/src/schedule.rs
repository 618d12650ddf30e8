//! Sending hours: an IANA time zone plus windows per weekday.
//!
//! JSON shape: `{"timezone": "America/New_York", "days": {"mon": ["09:00-17:00"], "sun": []},
//! "closed_dates": ["2026-12-25"]}`. A day that is missing or empty is closed; a day may hold
//! several windows, which must not overlap and must end after they start (`24:00` is the end of
//! the day). `closed_dates` (optional) are holidays: local dates on which nothing is sent, read
//! on the same clock as the windows (the recipient's).

use crate::error::{Errors, ValidationError};
use jiff::civil::{Date, DateTime, Time};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
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
        let (a, b) = s.split_once('-').ok_or_else(|| {
            format!("`{s}` is not a window; write it as HH:MM-HH:MM, e.g. 09:00-17:00")
        })?;
        let start = parse_hhmm(a.trim())?;
        let end = parse_hhmm(b.trim())?;
        if start == 1440 {
            return Err(format!(
                "`{s}` starts at 24:00; a window must start before the day ends"
            ));
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
    /// Local dates on which every window stays closed (holidays).
    closed: std::collections::BTreeSet<Date>,
}

/// The most closed dates a schedule may list.
pub const MAX_CLOSED_DATES: usize = 400;

/// A schedule as it arrives in a request or is read from storage, before it is checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScheduleInput {
    #[serde(default)]
    pub timezone: String,
    #[serde(default)]
    pub days: BTreeMap<String, Vec<String>>,
    /// Holidays: `YYYY-MM-DD` dates on which nothing is sent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub closed_dates: Vec<String>,
}

/// Looks up an IANA time zone name (`Europe/Berlin`, `UTC`, `Etc/GMT+5`).
///
/// Only names of the IANA database are taken: not `localtime` (whatever zone the machine Herald
/// runs on is set to: the same campaign would send at other hours on another node), nor
/// `posixrules` or `Factory`, nor the `posix/` and `right/` copies of the database, nor anything
/// that looks like a path.
pub fn parse_timezone(name: &str) -> Result<jiff::tz::TimeZone, String> {
    let name = name.trim();
    if name.is_empty() {
        return Err("time zone is missing; give an IANA name such as America/New_York".into());
    }
    if !is_iana_name(name) {
        return Err(format!(
            "`{name}` is not an IANA time zone name; give one such as Europe/Berlin or UTC"
        ));
    }
    jiff::tz::TimeZone::get(name)
        .map_err(|_| format!("`{name}` is not a known IANA time zone (e.g. Europe/Berlin)"))
}

/// Whether `name` has the shape of an IANA zone name and is not one of the files a zoneinfo
/// directory holds besides the zones.
fn is_iana_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'-' | b'/'))
        && name
            .split('/')
            .all(|part| !part.is_empty() && part.bytes().any(|b| b.is_ascii_alphabetic()))
        && !matches!(lower.as_str(), "localtime" | "posixrules" | "factory")
        && !lower.starts_with("posix/")
        && !lower.starts_with("right/")
}

impl Schedule {
    pub fn parse(input: &ScheduleInput) -> Result<Self, ValidationError> {
        let mut errors = Errors::new();
        let tz = errors.take("timezone", parse_timezone(&input.timezone));
        let mut days: [Vec<Window>; 7] = Default::default();
        for (key, windows) in &input.days {
            let Some(idx) = WEEKDAYS
                .iter()
                .position(|d| d.eq_ignore_ascii_case(key.trim()))
            else {
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
        let mut closed = std::collections::BTreeSet::new();
        if input.closed_dates.len() > MAX_CLOSED_DATES {
            errors.push(
                "closed_dates",
                format!(
                    "lists {} dates; at most {MAX_CLOSED_DATES} may be closed",
                    input.closed_dates.len()
                ),
            );
        } else {
            for (i, d) in input.closed_dates.iter().enumerate() {
                match d.trim().parse::<Date>() {
                    Ok(date) => {
                        closed.insert(date);
                    }
                    Err(_) => errors.push(
                        format!("closed_dates[{i}]"),
                        format!(
                            "`{}` is not a date such as 2026-12-25",
                            d.trim().chars().take(40).collect::<String>()
                        ),
                    ),
                }
            }
        }
        errors.finish()?;
        let timezone = tz.ok_or_else(|| ValidationError::single("timezone", "missing"))?;
        Ok(Self {
            timezone,
            timezone_name: input.timezone.trim().to_string(),
            days,
            closed,
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
            closed_dates: Vec::new(),
        })
    }

    /// The holidays: local dates on which nothing is sent, in order.
    pub fn closed_dates(&self) -> impl Iterator<Item = Date> + '_ {
        self.closed.iter().copied()
    }

    /// The windows of local `date` (none on a closed date).
    fn windows_on(&self, date: Date, weekday_from_monday: usize) -> &[Window] {
        if self.closed.contains(&date) {
            &[]
        } else {
            self.windows(weekday_from_monday)
        }
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

    /// Is `at` inside a sending window, reading wall-clock time in `zone` (the recipient's zone) or,
    /// when `None`, in the schedule's own zone?
    ///
    /// Windows are wall-clock times: `at` is open when the local weekday and time of day that a
    /// clock in the zone shows at `at` fall inside one of that weekday's windows. So on a
    /// spring-forward day a window that lies entirely in the skipped hour never opens, and one
    /// that starts in it opens at the first real instant after the gap (New York, 2026-03-08:
    /// `02:30-04:00` is open from 03:00 EDT). On a fall-back day the repeated hour is read twice:
    /// `01:00-02:00` is open during both occurrences, while `01:30-03:00` opens at the first 01:30,
    /// closes when the clock turns back to 01:00 and reopens at the second 01:30.
    pub fn is_open(&self, at: Timestamp, zone: Option<&TimeZone>) -> bool {
        let tz = zone.unwrap_or(&self.timezone);
        self.window_at(tz.to_datetime(at)).is_some()
    }

    /// The earliest instant `>= at` that is inside a window (see [`Schedule::is_open`] for how
    /// wall-clock windows meet DST changes); `at` itself when open.
    ///
    /// Exact to the nanosecond: no window is skipped, however short or however near a time zone
    /// transition. Returns `None` when every day is closed. The search walks the zone's offset
    /// transitions and never scans minute by minute; it gives up (returning `None`) only if no
    /// window opens within [`NEXT_OPEN_LOOKAHEAD`], which a schedule with any open day cannot
    /// reach in a real time zone.
    pub fn next_open(&self, at: Timestamp, zone: Option<&TimeZone>) -> Option<Timestamp> {
        if self.is_always_closed() {
            return None;
        }
        let tz = zone.unwrap_or(&self.timezone);
        let horizon = at
            .checked_add(NEXT_OPEN_LOOKAHEAD)
            .unwrap_or(Timestamp::MAX);
        // Between two transitions the offset is fixed and local time moves with real time, so
        // the first local opening at or after `t` is the answer if it comes before the next
        // transition; otherwise look again from the transition, in its new offset.
        let mut t = at;
        while t <= horizon {
            let offset = tz.to_offset(t);
            let segment_end = next_transition(tz, t);
            if let Some(local) = self.next_open_local(offset.to_datetime(t))
                && let Ok(candidate) = offset.to_timestamp(local)
                && segment_end.is_none_or(|end| candidate < end)
            {
                return Some(candidate);
            }
            t = segment_end?;
        }
        None
    }

    /// When open at `at`: the instant the current open stretch ends, i.e. the first instant after
    /// `at` that is closed. `None` when closed at `at`.
    ///
    /// Windows that touch are one stretch, within a day (`09:00-12:00` + `12:00-13:00`) and across
    /// midnight (Mon `22:00-24:00` + Tue `00:00-02:00`). A stretch may also end or continue at a
    /// DST transition (see [`Schedule::is_open`]). The search looks at most
    /// [`OPEN_UNTIL_LOOKAHEAD`] (8 days) ahead: when the stretch lasts at least that long — a
    /// schedule open around the clock, say — the result is `at + OPEN_UNTIL_LOOKAHEAD`, read it
    /// as "open at least until".
    pub fn open_until(&self, at: Timestamp, zone: Option<&TimeZone>) -> Option<Timestamp> {
        let tz = zone.unwrap_or(&self.timezone);
        let horizon = at
            .checked_add(OPEN_UNTIL_LOOKAHEAD)
            .unwrap_or(Timestamp::MAX);
        let mut t = at;
        loop {
            let offset = tz.to_offset(t);
            let segment_end = next_transition(tz, t);
            match self.open_until_local(offset.to_datetime(t)) {
                // Closed at `at`, or (later rounds) closed right from a transition on.
                LocalEnd::Closed => return (t != at).then_some(t),
                LocalEnd::Ends(local) => match offset.to_timestamp(local) {
                    Ok(end) if segment_end.is_none_or(|s| end < s) => {
                        return Some(end.min(horizon));
                    }
                    // The stretch reaches the transition; whether it goes on depends on the
                    // wall-clock time after it.
                    Ok(_) => {}
                    Err(_) => return Some(horizon),
                },
                LocalEnd::Beyond => {}
            }
            match segment_end {
                Some(s) if s < horizon => t = s,
                _ => return Some(horizon),
            }
        }
    }

    /// The window of the local weekday that holds the local time of day of `dt`.
    fn window_at(&self, dt: DateTime) -> Option<(usize, usize)> {
        let day = weekday_index(dt);
        let tod = nanos_of_day(dt.time());
        self.windows_on(dt.date(), day)
            .iter()
            .position(|w| minute_nanos(w.start) <= tod && tod < minute_nanos(w.end))
            .map(|i| (day, i))
    }

    /// The earliest local date-time `>= dt` inside a window, looking up to a week ahead (the
    /// same weekday next week), with no time zone involved.
    fn next_open_local(&self, dt: DateTime) -> Option<DateTime> {
        let day = weekday_index(dt);
        let tod = nanos_of_day(dt.time());
        // Windows are sorted and disjoint: the first one not yet over either holds `dt` or is
        // the next to open today.
        if let Some(w) = self
            .windows_on(dt.date(), day)
            .iter()
            .find(|w| tod < minute_nanos(w.end))
        {
            return if minute_nanos(w.start) <= tod {
                Some(dt)
            } else {
                local_at(dt.date(), w.start)
            };
        }
        // A week ahead, and a day more for each closed date that may fall in the way.
        let mut date = dt.date();
        for k in 1..=7 + self.closed.len() {
            date = date.tomorrow().ok()?;
            if let Some(w) = self.windows_on(date, (day + k) % 7).first() {
                return local_at(date, w.start);
            }
        }
        None
    }

    /// Where, in local date-time, the run of touching windows holding `dt` ends.
    fn open_until_local(&self, dt: DateTime) -> LocalEnd {
        let Some((mut day, mut i)) = self.window_at(dt) else {
            return LocalEnd::Closed;
        };
        let mut date = dt.date();
        // Days moved past `dt`'s date; past OPEN_UNTIL_DAYS the stretch is "long enough".
        let mut days_ahead = 0;
        loop {
            let windows = self.windows_on(date, day);
            let mut end = windows.get(i).map_or(0, |w| w.end);
            while let Some(next) = windows.get(i + 1)
                && next.start == end
            {
                end = next.end;
                i += 1;
            }
            if end < DAY_MINUTES {
                return local_at(date, end).map_or(LocalEnd::Beyond, LocalEnd::Ends);
            }
            // Open until 24:00: go on when the next day opens at 00:00.
            let Ok(tomorrow) = date.tomorrow() else {
                return LocalEnd::Beyond;
            };
            date = tomorrow;
            day = (day + 1) % 7;
            days_ahead += 1;
            if days_ahead > OPEN_UNTIL_DAYS {
                return LocalEnd::Beyond;
            }
            match self.windows_on(date, day).first() {
                Some(w) if w.start == 0 => i = 0,
                _ => return local_at(date, 0).map_or(LocalEnd::Beyond, LocalEnd::Ends),
            }
        }
    }

    pub fn to_input(&self) -> ScheduleInput {
        ScheduleInput {
            timezone: self.timezone_name.clone(),
            days: WEEKDAYS
                .iter()
                .zip(&self.days)
                .map(|(d, ws)| ((*d).to_string(), ws.iter().map(Window::to_string).collect()))
                .collect(),
            closed_dates: self.closed.iter().map(Date::to_string).collect(),
        }
    }
}

const DAY_MINUTES: Minute = 1440;
const OPEN_UNTIL_DAYS: i64 = 8;

/// How far [`Schedule::open_until`] looks ahead: 8 days. A stretch that lasts longer is reported
/// as ending here.
pub const OPEN_UNTIL_LOOKAHEAD: SignedDuration = SignedDuration::from_hours(OPEN_UNTIL_DAYS * 24);

/// How far [`Schedule::next_open`] looks ahead before it gives up: a year. Any schedule with an
/// open day opens within about a week (two when a window falls in a DST gap); the bound only
/// keeps the search finite.
pub const NEXT_OPEN_LOOKAHEAD: SignedDuration = SignedDuration::from_hours(366 * 24);

/// Where a run of windows ends, in local date-time.
enum LocalEnd {
    /// Not inside a window.
    Closed,
    /// The first local date-time after the run.
    Ends(DateTime),
    /// Still open [`OPEN_UNTIL_DAYS`] days on (or past the end of the calendar).
    Beyond,
}

/// The first transition of `tz` strictly after `t`, if any.
fn next_transition(tz: &TimeZone, t: Timestamp) -> Option<Timestamp> {
    tz.following(t)
        .next()
        .map(|tr| tr.timestamp())
        .filter(|&s| s > t)
}

/// Monday = 0.
fn weekday_index(dt: DateTime) -> usize {
    usize::from(dt.weekday().to_monday_zero_offset().unsigned_abs())
}

const NANOS_PER_SECOND: i64 = 1_000_000_000;

fn nanos_of_day(t: Time) -> i64 {
    ((i64::from(t.hour()) * 60 + i64::from(t.minute())) * 60 + i64::from(t.second()))
        * NANOS_PER_SECOND
        + i64::from(t.subsec_nanosecond())
}

fn minute_nanos(m: Minute) -> i64 {
    i64::from(m) * 60 * NANOS_PER_SECOND
}

/// `date` at local minute `m` (`0..1440`); `None` for a minute outside the day.
fn local_at(date: Date, m: Minute) -> Option<DateTime> {
    let hour = i8::try_from(m / 60).ok()?;
    let minute = i8::try_from(m % 60).ok()?;
    Time::new(hour, minute, 0, 0)
        .ok()
        .map(|t| date.to_datetime(t))
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
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("timezone", &self.timezone_name)?;
        m.serialize_entry("days", &Days(&self.days))?;
        if !self.closed.is_empty() {
            let dates: Vec<String> = self.closed.iter().map(Date::to_string).collect();
            m.serialize_entry("closed_dates", &dates)?;
        }
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
    #[test]
    fn only_iana_zone_names_are_taken() {
        for good in [
            "America/New_York",
            "Europe/Berlin",
            "UTC",
            "Etc/UTC",
            "Etc/GMT+5",
            "America/Argentina/Buenos_Aires",
            " Asia/Tokyo ",
        ] {
            assert!(parse_timezone(good).is_ok(), "{good}");
        }
        for bad in [
            "localtime",
            "LocalTime",
            "posixrules",
            "Factory",
            "posix/Europe/Berlin",
            "right/UTC",
            "/etc/localtime",
            "../../etc/localtime",
            "Europe/../UTC",
            "Europe//Berlin",
            "Not/AZone",
            "",
        ] {
            let err = parse_timezone(bad).expect_err(bad);
            assert!(!err.is_empty());
        }
        let err = parse_timezone("localtime").unwrap_err();
        assert!(err.contains("not an IANA time zone name"), "{err}");
    }

    use super::*;

    fn input(tz: &str, days: &[(&str, &[&str])]) -> ScheduleInput {
        ScheduleInput {
            timezone: tz.into(),
            days: days
                .iter()
                .map(|(d, ws)| (d.to_string(), ws.iter().map(|w| w.to_string()).collect()))
                .collect(),
            closed_dates: Vec::new(),
        }
    }

    #[test]
    fn parses_and_round_trips() {
        let s = Schedule::parse(&input(
            "America/New_York",
            &[
                ("mon", &["13:00-17:00", "09:00-12:00"]),
                ("sat", &["10:00-24:00"]),
            ],
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

    fn schedule(tz: &str, days: &[(&str, &[&str])]) -> Schedule {
        Schedule::parse(&input(tz, days)).unwrap()
    }

    /// A zoned date-time such as `2026-03-06T16:59:59[America/New_York]` (add an offset,
    /// `01:30-05:00[...]`, to pick one side of a fold) as an instant.
    fn at(s: &str) -> Timestamp {
        s.parse::<jiff::ZonedDateTime>().unwrap().timestamp()
    }

    fn local(s: &str) -> DateTime {
        s.parse().unwrap()
    }

    #[test]
    fn next_open_local_finds_the_next_window_start() {
        // 2026-03-02 is a Monday.
        let s = schedule(
            "UTC",
            &[
                ("mon", &["09:00-12:00", "13:00-17:00"]),
                ("fri", &["10:00-11:00"]),
            ],
        );
        let next = |dt: &str| s.next_open_local(local(dt));
        assert_eq!(next("2026-03-02T08:00"), Some(local("2026-03-02T09:00")));
        assert_eq!(next("2026-03-02T09:00"), Some(local("2026-03-02T09:00")));
        assert_eq!(
            next("2026-03-02T11:59:59.999999999"),
            Some(local("2026-03-02T11:59:59.999999999"))
        );
        assert_eq!(next("2026-03-02T12:00"), Some(local("2026-03-02T13:00")));
        assert_eq!(next("2026-03-02T17:00"), Some(local("2026-03-06T10:00")));
        // Friday after its window: the same weekday comes round again only after the weekend.
        assert_eq!(next("2026-03-06T11:00"), Some(local("2026-03-09T09:00")));
        // A schedule with one window a week: seven days ahead is still found.
        let weekly = schedule("UTC", &[("wed", &["10:00-11:00"])]);
        assert_eq!(
            weekly.next_open_local(local("2026-03-04T11:00")),
            Some(local("2026-03-11T10:00"))
        );
        let closed = schedule("UTC", &[]);
        assert_eq!(closed.next_open_local(local("2026-03-04T11:00")), None);
    }

    #[test]
    fn open_until_local_merges_touching_windows() {
        let s = schedule(
            "UTC",
            &[
                ("mon", &["09:00-12:00", "12:00-13:00", "14:00-24:00"]),
                ("tue", &["00:00-02:00", "02:00-03:00"]),
                ("sun", &["22:00-24:00"]),
            ],
        );
        let end = |dt: &str| match s.open_until_local(local(dt)) {
            LocalEnd::Ends(e) => Some(e),
            LocalEnd::Closed => None,
            LocalEnd::Beyond => panic!("beyond"),
        };
        assert_eq!(end("2026-03-02T10:00"), Some(local("2026-03-02T13:00")));
        assert_eq!(end("2026-03-02T13:00"), None);
        assert_eq!(end("2026-03-02T15:00"), Some(local("2026-03-03T03:00")));
        // Sunday 22:00-24:00 does not touch Monday 09:00.
        assert_eq!(end("2026-03-01T23:00"), Some(local("2026-03-02T00:00")));
        let always = schedule("UTC", &WEEKDAYS.map(|d| (d, &["00:00-24:00"] as &[&str])));
        assert!(matches!(
            always.open_until_local(local("2026-03-02T10:00")),
            LocalEnd::Beyond
        ));
    }

    #[test]
    fn office_hours_on_a_friday_afternoon() {
        let s = Schedule::office_hours("America/New_York").unwrap();
        // 2026-03-06 is a Friday; the Sunday after is the US spring-forward day.
        let t = at("2026-03-06T16:59:59[America/New_York]");
        assert!(s.is_open(t, None));
        assert_eq!(s.next_open(t, None), Some(t));
        assert_eq!(
            s.open_until(t, None),
            Some(at("2026-03-06T17:00[America/New_York]"))
        );
        let t = at("2026-03-06T17:00[America/New_York]");
        assert!(!s.is_open(t, None));
        assert_eq!(s.open_until(t, None), None);
        // Monday 09:00 EDT, not 09:00 EST: the offset changed over the weekend.
        assert_eq!(
            s.next_open(t, None),
            Some("2026-03-09T13:00:00Z".parse().unwrap())
        );
    }

    #[test]
    fn a_window_in_the_spring_forward_gap_opens_after_it() {
        let s = schedule(
            "America/New_York",
            &[("sun", &["02:30-04:00"]), ("mon", &["09:00-10:00"])],
        );
        let t = at("2026-03-08T01:00[America/New_York]");
        let three_edt = at("2026-03-08T03:00-04:00[America/New_York]");
        assert_eq!(s.next_open(t, None), Some(three_edt));
        assert_eq!(
            s.open_until(three_edt, None),
            Some(at("2026-03-08T04:00[America/New_York]"))
        );
        let gap_only = schedule("America/New_York", &[("sun", &["02:00-02:30"])]);
        assert_eq!(
            gap_only.next_open(t, None),
            Some(at("2026-03-15T02:00[America/New_York]"))
        );
    }

    #[test]
    fn a_window_in_the_fall_back_fold_is_read_twice() {
        let s = schedule("America/New_York", &[("sun", &["01:30-03:00"])]);
        let midnight = at("2026-11-01T00:00[America/New_York]");
        let first = at("2026-11-01T01:30-04:00[America/New_York]");
        let second = at("2026-11-01T01:30-05:00[America/New_York]");
        assert_eq!(s.next_open(midnight, None), Some(first));
        // The clock turns back from 02:00 EDT to 01:00 EST, before the window.
        let turn = at("2026-11-01T01:00-05:00[America/New_York]");
        assert_eq!(s.open_until(first, None), Some(turn));
        assert_eq!(s.next_open(turn, None), Some(second));
        assert_eq!(
            s.open_until(second, None),
            Some(at("2026-11-01T03:00[America/New_York]"))
        );
    }

    #[test]
    fn always_closed_and_always_open() {
        let t: Timestamp = "2026-05-05T12:00:00Z".parse().unwrap();
        let closed = schedule("Europe/Berlin", &[("mon", &[])]);
        assert!(!closed.is_open(t, None));
        assert_eq!(closed.next_open(t, None), None);
        assert_eq!(closed.open_until(t, None), None);
        let open = schedule(
            "Europe/Berlin",
            &WEEKDAYS.map(|d| (d, &["00:00-24:00"] as &[&str])),
        );
        assert_eq!(open.next_open(t, None), Some(t));
        assert_eq!(open.open_until(t, None), Some(t + OPEN_UNTIL_LOOKAHEAD));
    }

    #[test]
    fn the_ends_of_time_do_not_panic() {
        let s = Schedule::office_hours("Pacific/Chatham").unwrap();
        for t in [Timestamp::MIN, Timestamp::MAX] {
            let _ = s.is_open(t, None);
            let _ = s.next_open(t, None);
            let _ = s.open_until(t, None);
        }
        let open = schedule("UTC", &WEEKDAYS.map(|d| (d, &["00:00-24:00"] as &[&str])));
        assert_eq!(open.open_until(Timestamp::MAX, None), Some(Timestamp::MAX));
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
