//! Sending windows against the clock: `Schedule::{is_open, next_open, open_until}` across
//! weekends, midnight, DST gaps and folds, recipient time zones, and random schedules.
//!
//! Instants are written as zoned date-times (`2026-03-08T03:00[America/New_York]`); an explicit
//! offset (`2026-11-01T01:30-05:00[America/New_York]`) picks one side of a fold.

use herald_core::schedule::{OPEN_UNTIL_LOOKAHEAD, Schedule, ScheduleInput, WEEKDAYS};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ZonedDateTime};

fn schedule(tz: &str, days: &[(&str, &[&str])]) -> Schedule {
    Schedule::parse(&ScheduleInput {
        timezone: tz.into(),
        days: days
            .iter()
            .map(|(d, ws)| (d.to_string(), ws.iter().map(|w| w.to_string()).collect()))
            .collect(),
        closed_dates: Vec::new(),
    })
    .unwrap()
}

/// The same windows every day of the week.
fn every_day(tz: &str, windows: &[&str]) -> Schedule {
    schedule(tz, &WEEKDAYS.map(|d| (d, windows)))
}

fn at(s: &str) -> Timestamp {
    s.parse::<ZonedDateTime>()
        .unwrap_or_else(|e| panic!("{s}: {e}"))
        .timestamp()
}

fn zone(name: &str) -> TimeZone {
    TimeZone::get(name).unwrap()
}

const NS: SignedDuration = SignedDuration::from_nanos(1);
const SEC: SignedDuration = SignedDuration::from_secs(1);

/// Checks the three answers at `t` against what we expect: open or not, the next opening and
/// the end of the open stretch.
#[track_caller]
fn check(
    s: &Schedule,
    zone: Option<&TimeZone>,
    t: &str,
    open: bool,
    next: Option<&str>,
    until: Option<&str>,
) {
    let ts = at(t);
    assert_eq!(s.is_open(ts, zone), open, "is_open at {t}");
    assert_eq!(s.next_open(ts, zone), next.map(at), "next_open at {t}");
    assert_eq!(s.open_until(ts, zone), until.map(at), "open_until at {t}");
}

mod office_hours {
    use super::*;

    const NY: &str = "America/New_York";

    fn office() -> Schedule {
        Schedule::office_hours(NY).unwrap()
    }

    #[test]
    fn before_opening_the_same_day() {
        // 2026-06-15 is a Monday.
        let s = office();
        check(
            &s,
            None,
            "2026-06-15T08:00[America/New_York]",
            false,
            Some("2026-06-15T09:00[America/New_York]"),
            None,
        );
        check(
            &s,
            None,
            "2026-06-15T00:00[America/New_York]",
            false,
            Some("2026-06-15T09:00[America/New_York]"),
            None,
        );
    }

    #[test]
    fn exact_to_the_nanosecond_around_opening() {
        let s = office();
        let opening = at("2026-06-15T09:00[America/New_York]");
        assert!(!s.is_open(opening - NS, None));
        assert_eq!(s.next_open(opening - NS, None), Some(opening));
        assert_eq!(
            s.next_open(at("2026-06-15T08:59:59.5[America/New_York]"), None),
            Some(opening)
        );
        assert!(s.is_open(opening, None));
        assert_eq!(s.next_open(opening, None), Some(opening));
        assert_eq!(
            s.open_until(opening, None),
            Some(at("2026-06-15T17:00[America/New_York]"))
        );
    }

    #[test]
    fn inside_the_window() {
        check(
            &office(),
            None,
            "2026-06-17T12:34:56.789[America/New_York]",
            true,
            Some("2026-06-17T12:34:56.789[America/New_York]"),
            Some("2026-06-17T17:00[America/New_York]"),
        );
    }

    #[test]
    fn after_closing_opens_the_next_morning() {
        check(
            &office(),
            None,
            "2026-06-17T18:30[America/New_York]",
            false,
            Some("2026-06-18T09:00[America/New_York]"),
            None,
        );
        check(
            &office(),
            None,
            "2026-06-17T23:59:59.999999999[America/New_York]",
            false,
            Some("2026-06-18T09:00[America/New_York]"),
            None,
        );
    }

    #[test]
    fn friday_one_second_before_closing_and_at_closing() {
        // 2026-06-19 is a Friday.
        let s = office();
        check(
            &s,
            None,
            "2026-06-19T16:59:59[America/New_York]",
            true,
            Some("2026-06-19T16:59:59[America/New_York]"),
            Some("2026-06-19T17:00[America/New_York]"),
        );
        check(
            &s,
            None,
            "2026-06-19T16:59:59.999999999[America/New_York]",
            true,
            Some("2026-06-19T16:59:59.999999999[America/New_York]"),
            Some("2026-06-19T17:00[America/New_York]"),
        );
        check(
            &s,
            None,
            "2026-06-19T17:00:00[America/New_York]",
            false,
            Some("2026-06-22T09:00[America/New_York]"),
            None,
        );
    }

    #[test]
    fn a_closed_weekend_waits_for_monday() {
        let s = office();
        for t in [
            "2026-06-20T00:00[America/New_York]",
            "2026-06-20T10:00[America/New_York]",
            "2026-06-21T16:00[America/New_York]",
            "2026-06-21T23:59:59[America/New_York]",
        ] {
            check(
                &s,
                None,
                t,
                false,
                Some("2026-06-22T09:00[America/New_York]"),
                None,
            );
        }
    }

    #[test]
    fn a_weekend_with_a_dst_change_still_opens_at_nine_local() {
        // Spring forward on Sunday 2026-03-08: Friday closes at 17:00 EST (22:00Z), Monday
        // opens at 09:00 EDT (13:00Z), not at 14:00Z.
        let s = office();
        let next = s.next_open(at("2026-03-06T17:00[America/New_York]"), None);
        assert_eq!(next, Some("2026-03-09T13:00:00Z".parse().unwrap()));
        // Fall back on Sunday 2026-11-01: Monday opens at 09:00 EST = 14:00Z.
        let next = s.next_open(at("2026-10-30T17:00[America/New_York]"), None);
        assert_eq!(next, Some("2026-11-02T14:00:00Z".parse().unwrap()));
    }

    #[test]
    fn the_zone_passed_as_none_is_the_schedules_own() {
        let s = office();
        let ny = zone(NY);
        for t in [
            "2026-06-19T20:59:59Z",
            "2026-06-19T21:00:00Z",
            "2026-03-08T07:30:00Z",
            "2026-11-01T06:30:00Z",
        ] {
            let t: Timestamp = t.parse().unwrap();
            assert_eq!(s.is_open(t, None), s.is_open(t, Some(&ny)));
            assert_eq!(s.next_open(t, None), s.next_open(t, Some(&ny)));
            assert_eq!(s.open_until(t, None), s.open_until(t, Some(&ny)));
        }
    }
}

mod midnight {
    use super::*;

    #[test]
    fn windows_that_touch_at_midnight_are_one_stretch() {
        // 2026-06-15 is a Monday.
        let s = schedule(
            "Europe/Berlin",
            &[("mon", &["22:00-24:00"]), ("tue", &["00:00-02:00"])],
        );
        check(
            &s,
            None,
            "2026-06-15T21:00[Europe/Berlin]",
            false,
            Some("2026-06-15T22:00[Europe/Berlin]"),
            None,
        );
        check(
            &s,
            None,
            "2026-06-15T23:00[Europe/Berlin]",
            true,
            Some("2026-06-15T23:00[Europe/Berlin]"),
            Some("2026-06-16T02:00[Europe/Berlin]"),
        );
        check(
            &s,
            None,
            "2026-06-16T00:00[Europe/Berlin]",
            true,
            Some("2026-06-16T00:00[Europe/Berlin]"),
            Some("2026-06-16T02:00[Europe/Berlin]"),
        );
        check(
            &s,
            None,
            "2026-06-16T01:59:59[Europe/Berlin]",
            true,
            Some("2026-06-16T01:59:59[Europe/Berlin]"),
            Some("2026-06-16T02:00[Europe/Berlin]"),
        );
        check(
            &s,
            None,
            "2026-06-16T02:00[Europe/Berlin]",
            false,
            Some("2026-06-22T22:00[Europe/Berlin]"),
            None,
        );
    }

    #[test]
    fn sunday_night_runs_into_monday_across_the_week_boundary() {
        let s = schedule(
            "UTC",
            &[
                ("sun", &["20:00-24:00"]),
                ("mon", &["00:00-06:00", "06:00-07:00"]),
            ],
        );
        check(
            &s,
            None,
            "2026-06-14T21:00[UTC]",
            true,
            Some("2026-06-14T21:00[UTC]"),
            Some("2026-06-15T07:00[UTC]"),
        );
    }

    #[test]
    fn a_day_that_ends_at_midnight_without_the_next_day_closes_at_midnight() {
        let s = schedule(
            "UTC",
            &[("wed", &["18:00-24:00"]), ("thu", &["01:00-02:00"])],
        );
        check(
            &s,
            None,
            "2026-06-17T23:59:59[UTC]",
            true,
            Some("2026-06-17T23:59:59[UTC]"),
            Some("2026-06-18T00:00[UTC]"),
        );
        check(
            &s,
            None,
            "2026-06-18T00:00[UTC]",
            false,
            Some("2026-06-18T01:00[UTC]"),
            None,
        );
    }

    #[test]
    fn windows_that_touch_within_a_day_are_one_stretch_and_a_gap_between_is_not() {
        let s = schedule(
            "UTC",
            &[("mon", &["09:00-12:00", "12:00-13:00", "13:30-14:00"])],
        );
        check(
            &s,
            None,
            "2026-06-15T10:00[UTC]",
            true,
            Some("2026-06-15T10:00[UTC]"),
            Some("2026-06-15T13:00[UTC]"),
        );
        check(
            &s,
            None,
            "2026-06-15T13:00[UTC]",
            false,
            Some("2026-06-15T13:30[UTC]"),
            None,
        );
    }

    #[test]
    fn open_around_the_clock_reports_the_lookahead_bound() {
        let s = every_day("Australia/Lord_Howe", &["00:00-24:00"]);
        let t = at("2026-10-03T12:00[UTC]");
        assert!(s.is_open(t, None));
        assert_eq!(s.next_open(t, None), Some(t));
        assert_eq!(s.open_until(t, None), Some(t + OPEN_UNTIL_LOOKAHEAD));
        assert_eq!(OPEN_UNTIL_LOOKAHEAD, SignedDuration::from_hours(8 * 24));
    }

    #[test]
    fn open_all_week_but_an_hour_ends_at_that_hour_more_than_a_day_ahead() {
        let mut days: Vec<(&str, &[&str])> = WEEKDAYS[..6]
            .iter()
            .map(|d| (*d, &["00:00-24:00"] as &[&str]))
            .collect();
        days.push(("sun", &["00:00-03:00", "04:00-24:00"]));
        let s = schedule("UTC", &days);
        check(
            &s,
            None,
            "2026-06-15T10:00[UTC]",
            true,
            Some("2026-06-15T10:00[UTC]"),
            Some("2026-06-21T03:00[UTC]"),
        );
    }
}

mod new_york_dst {
    use super::*;

    // 2026-03-08: 02:00 EST -> 03:00 EDT (07:00Z). 2026-11-01: 02:00 EDT -> 01:00 EST (06:00Z).

    #[test]
    fn a_window_starting_in_the_gap_opens_when_the_gap_ends() {
        let s = every_day("America/New_York", &["02:30-04:00"]);
        check(
            &s,
            None,
            "2026-03-08T01:00[America/New_York]",
            false,
            Some("2026-03-08T03:00-04:00[America/New_York]"),
            None,
        );
        check(
            &s,
            None,
            "2026-03-08T01:59:59.999999999-05:00[America/New_York]",
            false,
            Some("2026-03-08T03:00-04:00[America/New_York]"),
            None,
        );
        check(
            &s,
            None,
            "2026-03-08T03:00-04:00[America/New_York]",
            true,
            Some("2026-03-08T03:00-04:00[America/New_York]"),
            Some("2026-03-08T04:00[America/New_York]"),
        );
        assert_eq!(
            at("2026-03-08T03:00-04:00[America/New_York]").to_string(),
            "2026-03-08T07:00:00Z"
        );
    }

    #[test]
    fn a_window_inside_the_gap_does_not_open_that_day() {
        let s = schedule(
            "America/New_York",
            &[("sun", &["02:00-02:30"]), ("mon", &["09:00-10:00"])],
        );
        check(
            &s,
            None,
            "2026-03-07T12:00[America/New_York]",
            false,
            Some("2026-03-09T09:00[America/New_York]"),
            None,
        );
        // With nothing else in the week it opens the Sunday after.
        let s = schedule("America/New_York", &[("sun", &["02:00-02:30"])]);
        check(
            &s,
            None,
            "2026-03-08T00:00[America/New_York]",
            false,
            Some("2026-03-15T02:00[America/New_York]"),
            None,
        );
        // A window ending at the start of the gap closes when the clock jumps.
        let s = schedule("America/New_York", &[("sun", &["01:00-02:00"])]);
        check(
            &s,
            None,
            "2026-03-08T01:30[America/New_York]",
            true,
            Some("2026-03-08T01:30[America/New_York]"),
            Some("2026-03-08T03:00[America/New_York]"),
        );
    }

    #[test]
    fn a_window_across_the_gap_is_one_hour_shorter() {
        let s = schedule("America/New_York", &[("sun", &["01:00-03:30"])]);
        let t = at("2026-03-08T01:00[America/New_York]");
        assert_eq!(s.next_open(t, None), Some(t));
        let until = s.open_until(t, None).unwrap();
        assert_eq!(until, at("2026-03-08T03:30[America/New_York]"));
        assert_eq!(until - t, SignedDuration::from_mins(90));
    }

    #[test]
    fn the_gap_joins_windows_on_either_side_of_it() {
        // 00:00-02:00 ends exactly where 03:00-05:00 starts on this day.
        let s = schedule(
            "America/New_York",
            &[("sun", &["00:00-02:00", "03:00-05:00"])],
        );
        check(
            &s,
            None,
            "2026-03-08T01:00[America/New_York]",
            true,
            Some("2026-03-08T01:00[America/New_York]"),
            Some("2026-03-08T05:00[America/New_York]"),
        );
        // A week later they are apart again.
        check(
            &s,
            None,
            "2026-03-15T01:00[America/New_York]",
            true,
            Some("2026-03-15T01:00[America/New_York]"),
            Some("2026-03-15T02:00[America/New_York]"),
        );
    }

    #[test]
    fn a_window_in_the_fold_is_open_during_both_occurrences() {
        let s = every_day("America/New_York", &["01:00-02:00"]);
        let first = "2026-11-01T01:00-04:00[America/New_York]";
        check(
            &s,
            None,
            "2026-11-01T00:30[America/New_York]",
            false,
            Some(first),
            None,
        );
        // One stretch of two real hours, until 02:00 EST.
        check(
            &s,
            None,
            first,
            true,
            Some(first),
            Some("2026-11-01T02:00-05:00[America/New_York]"),
        );
        check(
            &s,
            None,
            "2026-11-01T01:30-05:00[America/New_York]",
            true,
            Some("2026-11-01T01:30-05:00[America/New_York]"),
            Some("2026-11-01T02:00-05:00[America/New_York]"),
        );
    }

    #[test]
    fn a_window_starting_in_the_fold_opens_at_the_first_occurrence() {
        let s = every_day("America/New_York", &["01:30-03:00"]);
        let first = "2026-11-01T01:30-04:00[America/New_York]";
        let back = "2026-11-01T01:00-05:00[America/New_York]";
        let second = "2026-11-01T01:30-05:00[America/New_York]";
        check(
            &s,
            None,
            "2026-11-01T00:00[America/New_York]",
            false,
            Some(first),
            None,
        );
        // At 02:00 EDT the clock reads 01:00 again, before the window: closed until 01:30 EST.
        check(&s, None, first, true, Some(first), Some(back));
        check(&s, None, back, false, Some(second), None);
        check(
            &s,
            None,
            "2026-11-01T01:15-05:00[America/New_York]",
            false,
            Some(second),
            None,
        );
        check(
            &s,
            None,
            second,
            true,
            Some(second),
            Some("2026-11-01T03:00[America/New_York]"),
        );
    }

    #[test]
    fn a_window_ending_in_the_fold_reopens_when_the_clock_turns_back() {
        let s = schedule("America/New_York", &[("sun", &["00:00-01:30"])]);
        check(
            &s,
            None,
            "2026-11-01T00:00[America/New_York]",
            true,
            Some("2026-11-01T00:00[America/New_York]"),
            Some("2026-11-01T01:30-04:00[America/New_York]"),
        );
        check(
            &s,
            None,
            "2026-11-01T01:30-04:00[America/New_York]",
            false,
            Some("2026-11-01T01:00-05:00[America/New_York]"),
            None,
        );
        check(
            &s,
            None,
            "2026-11-01T01:00-05:00[America/New_York]",
            true,
            Some("2026-11-01T01:00-05:00[America/New_York]"),
            Some("2026-11-01T01:30-05:00[America/New_York]"),
        );
    }

    #[test]
    fn a_window_after_the_fold_opens_once() {
        let s = schedule("America/New_York", &[("sun", &["02:00-03:00"])]);
        check(
            &s,
            None,
            "2026-11-01T00:00[America/New_York]",
            false,
            Some("2026-11-01T02:00-05:00[America/New_York]"),
            None,
        );
        assert_eq!(
            at("2026-11-01T02:00-05:00[America/New_York]").to_string(),
            "2026-11-01T07:00:00Z"
        );
    }
}

mod berlin_dst {
    use super::*;

    // 2026-03-29: 02:00 CET -> 03:00 CEST (01:00Z). 2026-10-25: 03:00 CEST -> 02:00 CET (01:00Z).

    #[test]
    fn spring_forward() {
        let s = schedule(
            "Europe/Berlin",
            &[
                ("sun", &["02:15-02:45", "02:45-04:00"]),
                ("mon", &["08:00-09:00"]),
            ],
        );
        // Both windows start in the gap; the second is still open when it ends.
        check(
            &s,
            None,
            "2026-03-29T01:00[Europe/Berlin]",
            false,
            Some("2026-03-29T03:00[Europe/Berlin]"),
            None,
        );
        assert_eq!(
            at("2026-03-29T03:00[Europe/Berlin]").to_string(),
            "2026-03-29T01:00:00Z"
        );
        check(
            &s,
            None,
            "2026-03-29T03:00[Europe/Berlin]",
            true,
            Some("2026-03-29T03:00[Europe/Berlin]"),
            Some("2026-03-29T04:00[Europe/Berlin]"),
        );
        let gap_only = schedule(
            "Europe/Berlin",
            &[("sun", &["02:15-02:45"]), ("mon", &["08:00-09:00"])],
        );
        check(
            &gap_only,
            None,
            "2026-03-29T01:00[Europe/Berlin]",
            false,
            Some("2026-03-30T08:00[Europe/Berlin]"),
            None,
        );
    }

    #[test]
    fn fall_back() {
        let s = schedule("Europe/Berlin", &[("sun", &["02:00-03:00"])]);
        let first = "2026-10-25T02:00+02:00[Europe/Berlin]";
        check(
            &s,
            None,
            "2026-10-25T00:00[Europe/Berlin]",
            false,
            Some(first),
            None,
        );
        // Open through both 02:00-03:00 hours: 00:00Z to 02:00Z.
        check(
            &s,
            None,
            first,
            true,
            Some(first),
            Some("2026-10-25T03:00+01:00[Europe/Berlin]"),
        );
        assert_eq!(at(first).to_string(), "2026-10-25T00:00:00Z");
        assert_eq!(
            at("2026-10-25T03:00+01:00[Europe/Berlin]").to_string(),
            "2026-10-25T02:00:00Z"
        );

        let s = schedule("Europe/Berlin", &[("sun", &["02:30-02:45"])]);
        let z = |s: &str| s.parse::<Timestamp>().unwrap();
        let berlin = zone("Europe/Berlin");
        let b = Some(&berlin);
        assert_eq!(
            s.next_open(z("2026-10-24T23:00:00Z"), b),
            Some(z("2026-10-25T00:30:00Z"))
        );
        assert_eq!(
            s.open_until(z("2026-10-25T00:30:00Z"), b),
            Some(z("2026-10-25T00:45:00Z"))
        );
        assert_eq!(
            s.next_open(z("2026-10-25T00:45:00Z"), b),
            Some(z("2026-10-25T01:30:00Z"))
        );
        assert_eq!(
            s.open_until(z("2026-10-25T01:30:00Z"), b),
            Some(z("2026-10-25T01:45:00Z"))
        );
        assert_eq!(
            s.next_open(z("2026-10-25T01:45:00Z"), b),
            Some(at("2026-11-01T02:30[Europe/Berlin]"))
        );
    }
}

mod recipient_zone {
    use super::*;

    #[test]
    fn tokyo_recipient_of_a_new_york_schedule() {
        let s = Schedule::office_hours("America/New_York").unwrap();
        let tokyo = zone("Asia/Tokyo");
        // Monday 09:00 in Tokyo is Sunday 20:00 in New York.
        let t = at("2026-06-15T09:00[Asia/Tokyo]");
        assert!(!s.is_open(t, None));
        assert!(s.is_open(t, Some(&tokyo)));
        assert_eq!(s.next_open(t, Some(&tokyo)), Some(t));
        assert_eq!(
            s.open_until(t, Some(&tokyo)),
            Some(at("2026-06-15T17:00[Asia/Tokyo]"))
        );
        assert_eq!(
            s.next_open(t, None),
            Some(at("2026-06-15T09:00[America/New_York]"))
        );
        // Friday 17:00 in Tokyo: closed until Monday 09:00 in Tokyo.
        let t = at("2026-06-19T17:00[Asia/Tokyo]");
        assert!(!s.is_open(t, Some(&tokyo)));
        assert_eq!(
            s.next_open(t, Some(&tokyo)),
            Some(at("2026-06-22T09:00[Asia/Tokyo]"))
        );
        // Saturday 00:00 in Tokyo is Friday 11:00 in New York: open there, not for Tokyo.
        let t = at("2026-06-20T00:00[Asia/Tokyo]");
        assert!(s.is_open(t, None));
        assert!(!s.is_open(t, Some(&tokyo)));
        assert_eq!(
            s.open_until(t, None),
            Some(at("2026-06-19T17:00[America/New_York]"))
        );
        assert_eq!(s.open_until(t, Some(&tokyo)), None);
        // New York's spring-forward does not move a Tokyo recipient's hours.
        let t = at("2026-03-08T12:00[Asia/Tokyo]");
        assert_eq!(
            s.next_open(t, Some(&tokyo)),
            Some(at("2026-03-09T09:00[Asia/Tokyo]"))
        );
    }

    #[test]
    fn lord_howe_half_hour_dst() {
        // Lord Howe Island: +10:30 standard, +11:00 in summer. 2026-04-05 02:00 -> 01:30 (a
        // 30-minute fold, 15:00Z on the 4th); 2026-10-04 02:00 -> 02:30 (a 30-minute gap,
        // 15:30Z on the 3rd).
        let s = schedule(
            "America/New_York",
            &[
                ("sun", &["01:30-02:00", "02:00-02:15"]),
                ("mon", &["09:00-17:00"]),
            ],
        );
        let lh = zone("Australia/Lord_Howe");
        let z = |s: &str| s.parse::<Timestamp>().unwrap();
        // The fold: 01:30-02:00 is read twice and runs on into 02:00-02:15.
        assert_eq!(
            s.next_open(z("2026-04-04T12:00:00Z"), Some(&lh)),
            Some(z("2026-04-04T14:30:00Z"))
        );
        assert_eq!(
            s.open_until(z("2026-04-04T14:30:00Z"), Some(&lh)),
            Some(z("2026-04-04T15:45:00Z"))
        );
        assert!(s.is_open(z("2026-04-04T15:00:00Z"), Some(&lh)));
        // The gap swallows 02:00-02:30: 01:30-02:00 runs straight into 02:30, past the end
        // of 02:00-02:15, so it ends at the jump.
        assert_eq!(
            s.next_open(z("2026-10-03T12:00:00Z"), Some(&lh)),
            Some(z("2026-10-03T15:00:00Z"))
        );
        assert_eq!(
            s.open_until(z("2026-10-03T15:00:00Z"), Some(&lh)),
            Some(z("2026-10-03T15:30:00Z"))
        );
        assert!(!s.is_open(z("2026-10-03T15:30:00Z"), Some(&lh)));
        assert_eq!(
            s.next_open(z("2026-10-03T15:30:00Z"), Some(&lh)),
            Some(at("2026-10-05T09:00[Australia/Lord_Howe]"))
        );
        // A window entirely in the 30-minute gap waits a week.
        let gap = schedule("UTC", &[("sun", &["02:05-02:25"])]);
        assert_eq!(
            gap.next_open(z("2026-10-03T12:00:00Z"), Some(&lh)),
            Some(at("2026-10-11T02:05[Australia/Lord_Howe]"))
        );
    }

    #[test]
    fn kathmandu_quarter_hour_offset() {
        let s = Schedule::office_hours("Europe/Berlin").unwrap();
        let ktm = zone("Asia/Kathmandu");
        let t: Timestamp = "2026-06-15T03:00:00Z".parse().unwrap(); // 08:45 in Kathmandu
        assert!(!s.is_open(t, Some(&ktm)));
        assert_eq!(
            s.next_open(t, Some(&ktm)),
            Some("2026-06-15T03:15:00Z".parse().unwrap())
        );
    }
}

mod unusual_zones {
    use super::*;

    fn z(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn santiago_changes_at_midnight() {
        // 2026-09-06: Sunday 00:00 -04 becomes 01:00 -03 (04:00Z); Saturday's 24:00 is the jump.
        let s = schedule(
            "America/Santiago",
            &[("sat", &["22:00-24:00"]), ("sun", &["00:00-00:30"])],
        );
        assert_eq!(
            s.open_until(z("2026-09-06T03:00:00Z"), None),
            Some(z("2026-09-06T04:00:00Z"))
        );
        assert_eq!(
            s.next_open(z("2026-09-06T04:00:00Z"), None),
            Some(at("2026-09-12T22:00[America/Santiago]"))
        );
        let s = schedule(
            "America/Santiago",
            &[("sat", &["22:00-24:00"]), ("sun", &["00:00-02:00"])],
        );
        assert_eq!(
            s.open_until(z("2026-09-06T03:00:00Z"), None),
            Some(z("2026-09-06T05:00:00Z"))
        );
        // 2026-04-05: Sunday 00:00 -03 (03:00Z) becomes Saturday 23:00 -04: Saturday's last
        // hour is read twice and Sunday starts at 04:00Z.
        let s = schedule("America/Santiago", &[("sat", &["23:00-24:00"])]);
        assert_eq!(
            s.next_open(z("2026-04-04T12:00:00Z"), None),
            Some(z("2026-04-05T02:00:00Z"))
        );
        assert_eq!(
            s.open_until(z("2026-04-05T02:00:00Z"), None),
            Some(z("2026-04-05T04:00:00Z"))
        );
        let s = schedule("America/Santiago", &[("sun", &["00:00-01:00"])]);
        assert_eq!(
            s.next_open(z("2026-04-05T02:00:00Z"), None),
            Some(z("2026-04-05T04:00:00Z"))
        );
        assert!(!s.is_open(z("2026-04-05T03:00:00Z"), None));
    }

    #[test]
    fn apia_skipped_a_friday() {
        // Samoa moved across the date line: Thursday 2011-12-29 24:00 -10 was Saturday
        // 2011-12-31 00:00 +14 (10:00Z on the 30th). Friday the 30th never happened there.
        let fridays = schedule("Pacific/Apia", &[("fri", &["00:00-24:00"])]);
        assert_eq!(
            fridays.next_open(z("2011-12-29T12:00:00Z"), None),
            Some(at("2012-01-06T00:00[Pacific/Apia]"))
        );
        let late_thursday = schedule(
            "Pacific/Apia",
            &[("thu", &["22:00-24:00"]), ("fri", &["00:00-02:00"])],
        );
        assert_eq!(
            late_thursday.open_until(z("2011-12-30T09:00:00Z"), None),
            Some(z("2011-12-30T10:00:00Z"))
        );
        let into_saturday = schedule(
            "Pacific/Apia",
            &[("thu", &["22:00-24:00"]), ("sat", &["00:00-01:00"])],
        );
        assert_eq!(
            into_saturday.open_until(z("2011-12-30T09:00:00Z"), None),
            Some(z("2011-12-30T11:00:00Z"))
        );
    }
}

mod always_closed {
    use super::*;

    #[test]
    fn never_opens_in_any_zone() {
        let closed = [
            schedule("America/New_York", &[]),
            schedule("Europe/Berlin", &WEEKDAYS.map(|d| (d, &[] as &[&str]))),
        ];
        let zones = [
            None,
            Some(zone("Asia/Tokyo")),
            Some(zone("Australia/Lord_Howe")),
        ];
        for s in &closed {
            assert!(s.is_always_closed());
            for z in &zones {
                for t in [
                    "2026-03-08T02:30:00Z",
                    "2026-11-01T06:00:00Z",
                    "2026-06-15T12:00:00Z",
                ] {
                    let t: Timestamp = t.parse().unwrap();
                    assert!(!s.is_open(t, z.as_ref()));
                    assert_eq!(s.next_open(t, z.as_ref()), None);
                    assert_eq!(s.open_until(t, z.as_ref()), None);
                }
            }
        }
    }
}

/// Random schedules, zones and instants.
mod properties {
    use super::*;
    use proptest::prelude::*;
    use proptest::sample::select;

    /// Zones with DST, half- and quarter-hour offsets, DST at midnight, a skipped day.
    const ZONES: [&str; 12] = [
        "America/New_York",
        "Europe/Berlin",
        "Australia/Lord_Howe", // +10:30, 30-minute DST
        "Asia/Kolkata",        // +05:30
        "Asia/Kathmandu",      // +05:45
        "America/St_Johns",    // -03:30 with DST
        "Pacific/Chatham",     // +12:45 with DST
        "America/Santiago",    // DST changes at midnight
        "Asia/Tokyo",
        "UTC",
        "Pacific/Apia",      // skipped 2011-12-30 entirely
        "Africa/Casablanca", // several changes a year, negative DST
    ];

    const FROM: i64 = 1_293_840_000; // 2011-01-01T00:00:00Z
    const TO: i64 = 1_861_920_000; // 2029-01-01T00:00:00Z

    fn fmt(m: u16) -> String {
        format!("{:02}:{:02}", m / 60, m % 60)
    }

    /// One day: the day cut at a few minutes (often near DST changes), each piece open or not.
    /// Neighbouring open pieces make touching windows; the first and last reach 00:00 / 24:00.
    fn day_windows() -> impl Strategy<Value = Vec<String>> {
        let cut = prop_oneof![
            1u16..1440,
            select(vec![
                30u16, 60, 90, 120, 135, 150, 165, 180, 210, 1380, 1410
            ]),
        ];
        let pieces = (
            prop::collection::vec(cut, 0..6),
            prop::collection::vec(any::<bool>(), 7),
        )
            .prop_map(|(mut cuts, open)| {
                cuts.sort_unstable();
                cuts.dedup();
                let mut bounds = vec![0u16];
                bounds.extend(cuts);
                bounds.push(1440);
                bounds
                    .windows(2)
                    .zip(open.iter().cycle())
                    .filter(|(_, open)| **open)
                    .map(|(w, _)| format!("{}-{}", fmt(w[0]), fmt(w[1])))
                    .collect::<Vec<_>>()
            });
        prop_oneof![1 => Just(Vec::new()), 4 => pieces]
    }

    fn any_schedule() -> impl Strategy<Value = Schedule> {
        (
            select(ZONES.to_vec()),
            prop::collection::vec(day_windows(), 7),
        )
            .prop_map(|(tz, days)| {
                Schedule::parse(&ScheduleInput {
                    timezone: tz.into(),
                    days: WEEKDAYS
                        .iter()
                        .zip(days)
                        .map(|(d, ws)| (d.to_string(), ws))
                        .collect(),
                    closed_dates: Vec::new(),
                })
                .unwrap()
            })
    }

    /// An instant: anywhere in 2011-2028, or within two days of one of the zone's transitions;
    /// on a whole minute, a whole second, or anywhere to the nanosecond.
    #[derive(Debug, Clone)]
    struct Instant {
        near_transition: bool,
        secs: i64,
        transition: usize,
        delta: i64,
        precision: u8,
        nanos: i32,
    }

    fn instant() -> impl Strategy<Value = Instant> {
        (
            any::<bool>(),
            FROM..TO,
            0usize..200,
            -172_800i64..172_800,
            0u8..3,
            0i32..1_000_000_000,
        )
            .prop_map(
                |(near_transition, secs, transition, delta, precision, nanos)| Instant {
                    near_transition,
                    secs,
                    transition,
                    delta,
                    precision,
                    nanos,
                },
            )
    }

    impl Instant {
        fn resolve(&self, tz: &TimeZone) -> Timestamp {
            let mut secs = self.secs;
            if self.near_transition {
                let from = Timestamp::from_second(FROM).unwrap();
                let transitions: Vec<_> = tz
                    .following(from)
                    .map(|t| t.timestamp())
                    .take_while(|t| t.as_second() < TO)
                    .collect();
                if !transitions.is_empty() {
                    let t = transitions[self.transition % transitions.len()];
                    secs = t.as_second() + self.delta;
                }
            }
            match self.precision {
                0 => Timestamp::from_second(secs - secs.rem_euclid(60)).unwrap(),
                1 => Timestamp::from_second(secs).unwrap(),
                _ => Timestamp::new(secs, self.nanos).unwrap(),
            }
        }
    }

    fn any_zone() -> impl Strategy<Value = Option<TimeZone>> {
        prop::option::of(select(ZONES.to_vec()).prop_map(zone))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn next_open_is_the_first_open_instant(
            s in any_schedule(), recipient in any_zone(), i in instant(), samples in prop::collection::vec(0.0f64..1.0, 8),
        ) {
            let z = recipient.as_ref();
            let t = i.resolve(z.unwrap_or(s.timezone()));
            let next = s.next_open(t, z);
            if s.is_always_closed() {
                prop_assert_eq!(next, None);
                prop_assert!(!s.is_open(t, z));
                return Ok(());
            }
            let n = next.expect("a schedule with an open day opens");
            prop_assert!(n >= t);
            prop_assert!(s.is_open(n, z), "not open at next_open {}", n);
            if s.is_open(t, z) {
                prop_assert_eq!(n, t);
            } else {
                prop_assert!(n > t);
                prop_assert!(!s.is_open(n - NS, z), "open 1ns before next_open {}", n);
                if n - SEC > t {
                    prop_assert!(!s.is_open(n - SEC, z), "open 1s before next_open {}", n);
                }
                let gap = (n - t).as_nanos();
                for f in samples {
                    let p = t + SignedDuration::from_nanos_i128((gap as f64 * f) as i128);
                    prop_assert!(p < n);
                    prop_assert!(!s.is_open(p, z), "open at {} before next_open {}", p, n);
                }
            }
            // Asking again from the answer gives the answer.
            prop_assert_eq!(s.next_open(n, z), Some(n));
        }

        #[test]
        fn open_until_ends_the_open_stretch(
            s in any_schedule(), recipient in any_zone(), i in instant(), samples in prop::collection::vec(0.0f64..1.0, 8),
        ) {
            let z = recipient.as_ref();
            let t = i.resolve(z.unwrap_or(s.timezone()));
            let until = s.open_until(t, z);
            if !s.is_open(t, z) {
                prop_assert_eq!(until, None);
                // ...and from where it next opens, the stretch has a length.
                if let Some(n) = s.next_open(t, z) {
                    let u = s.open_until(n, z);
                    prop_assert!(u.is_some_and(|u| u > n), "{:?} after {}", u, n);
                }
                return Ok(());
            }
            let u = until.expect("open, so the stretch ends somewhere");
            let bound = t + OPEN_UNTIL_LOOKAHEAD;
            prop_assert!(u > t);
            prop_assert!(u <= bound);
            prop_assert!(s.is_open(u - NS, z), "closed 1ns before open_until {}", u);
            if u - SEC >= t {
                prop_assert!(s.is_open(u - SEC, z), "closed 1s before open_until {}", u);
            }
            if u != bound {
                prop_assert!(!s.is_open(u, z), "still open at open_until {}", u);
            }
            let len = (u - t).as_nanos();
            for f in samples {
                let p = t + SignedDuration::from_nanos_i128((len as f64 * f) as i128);
                prop_assert!(s.is_open(p, z), "closed at {} before open_until {}", p, u);
                prop_assert_eq!(s.next_open(p, z), Some(p));
            }
        }

        #[test]
        fn next_open_is_monotone(
            s in any_schedule(), recipient in any_zone(), i in instant(), step in 0i64..3 * 86_400,
        ) {
            let z = recipient.as_ref();
            let t = i.resolve(z.unwrap_or(s.timezone()));
            let later = t + SignedDuration::from_secs(step);
            match (s.next_open(t, z), s.next_open(later, z)) {
                (Some(a), Some(b)) => {
                    prop_assert!(a <= b);
                    // When the first opening after `t` is not before `later`, it is also the
                    // first after `later`.
                    if a >= later {
                        prop_assert_eq!(a, b);
                    }
                }
                (None, None) => prop_assert!(s.is_always_closed()),
                other => prop_assert!(false, "{:?}", other),
            }
        }

        #[test]
        fn none_means_the_schedules_own_zone(s in any_schedule(), i in instant()) {
            let own = s.timezone().clone();
            let t = i.resolve(&own);
            prop_assert_eq!(s.is_open(t, None), s.is_open(t, Some(&own)));
            prop_assert_eq!(s.next_open(t, None), s.next_open(t, Some(&own)));
            prop_assert_eq!(s.open_until(t, None), s.open_until(t, Some(&own)));
        }
    }

    proptest! {
        // Each case scans up to two weeks minute by minute; fewer cases.
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// Every offset in these zones since 2011 is a whole number of minutes and every window
        /// edge is a whole local minute, so the open/closed state can only change on a whole UTC
        /// minute: scanning `t` and then each whole minute after it finds the true answer.
        #[test]
        fn agrees_with_a_minute_by_minute_scan(s in any_schedule(), recipient in any_zone(), i in instant()) {
            let z = recipient.as_ref();
            let t = i.resolve(z.unwrap_or(s.timezone()));
            let first_minute = {
                let secs = t.as_second() - t.as_second().rem_euclid(60) + 60;
                Timestamp::from_second(secs).unwrap()
            };
            let minutes = |limit: SignedDuration| {
                std::iter::once(t).chain(
                    (0..)
                        .map(move |k| first_minute + SignedDuration::from_mins(k))
                        .take_while(move |m| *m <= t + limit),
                )
            };
            let scanned_open = minutes(SignedDuration::from_hours(15 * 24)).find(|m| s.is_open(*m, z));
            if s.is_always_closed() {
                prop_assert_eq!(scanned_open, None);
            } else {
                prop_assert!(scanned_open.is_some());
            }
            prop_assert_eq!(s.next_open(t, z), scanned_open);

            let until = s.open_until(t, z);
            if s.is_open(t, z) {
                let scanned_close = minutes(OPEN_UNTIL_LOOKAHEAD)
                    .skip(1)
                    .find(|m| !s.is_open(*m, z))
                    .unwrap_or(t + OPEN_UNTIL_LOOKAHEAD);
                prop_assert_eq!(until, Some(scanned_close));
            } else {
                prop_assert_eq!(until, None);
            }
        }
    }
}

// ---------------------------------------------------------------- closed dates (holidays)

fn with_holidays(tz: &str, windows: &[&str], closed: &[&str]) -> Schedule {
    let mut input = every_day(tz, windows).to_input();
    input.closed_dates = closed.iter().map(|d| d.to_string()).collect();
    Schedule::parse(&input).unwrap()
}

#[test]
fn a_closed_date_sends_nothing_and_the_next_open_day_takes_over() {
    // Friday 2026-12-25 and Monday 2026-12-28 closed.
    let s = with_holidays(
        "Europe/Berlin",
        &["09:00-17:00"],
        &["2026-12-25", "2026-12-28"],
    );
    assert!(!s.is_open(at("2026-12-25T10:00[Europe/Berlin]"), None));
    assert!(s.is_open(at("2026-12-24T10:00[Europe/Berlin]"), None));
    assert_eq!(
        s.next_open(at("2026-12-24T18:00[Europe/Berlin]"), None),
        Some(at("2026-12-26T09:00[Europe/Berlin]"))
    );
    // Sunday evening: Monday is closed, Tuesday opens.
    assert_eq!(
        s.next_open(at("2026-12-27T18:00[Europe/Berlin]"), None),
        Some(at("2026-12-29T09:00[Europe/Berlin]"))
    );
}

#[test]
fn a_closed_date_is_read_on_the_recipients_clock() {
    let s = with_holidays("UTC", &["00:00-24:00"], &["2026-12-25"]);
    // 2026-12-25 10:00 in Tokyo is still the 25th there; in UTC it is the 25th at 01:00.
    let tokyo = zone("Asia/Tokyo");
    assert!(!s.is_open(at("2026-12-25T10:00[Asia/Tokyo]"), Some(&tokyo)));
    // The 24th 23:00 UTC is the 25th 08:00 in Tokyo: closed there, open in UTC.
    let t = at("2026-12-24T23:00[UTC]");
    assert!(s.is_open(t, None));
    assert!(!s.is_open(t, Some(&tokyo)));
    assert_eq!(
        s.next_open(t, Some(&tokyo)),
        Some(at("2026-12-26T00:00[Asia/Tokyo]"))
    );
}

#[test]
fn a_stretch_open_around_the_clock_ends_at_a_closed_date() {
    let s = with_holidays("UTC", &["00:00-24:00"], &["2026-12-25"]);
    assert_eq!(
        s.open_until(at("2026-12-23T12:00[UTC]"), None),
        Some(at("2026-12-25T00:00[UTC]"))
    );
    assert_eq!(s.open_until(at("2026-12-25T12:00[UTC]"), None), None);
}

#[test]
fn closed_dates_are_checked_kept_and_shown() {
    let s = with_holidays("UTC", &["09:00-17:00"], &["2026-12-31", "2026-01-01"]);
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(
        json["closed_dates"],
        serde_json::json!(["2026-01-01", "2026-12-31"])
    );
    let back: Schedule = serde_json::from_value(json).unwrap();
    assert_eq!(back, s);
    // Without closed dates the JSON is as it always was.
    let plain = serde_json::to_value(every_day("UTC", &["09:00-17:00"])).unwrap();
    assert!(plain.get("closed_dates").is_none(), "{plain}");

    let mut input = every_day("UTC", &["09:00-17:00"]).to_input();
    input.closed_dates = vec!["2026-12-25".into(), "Christmas".into()];
    let err = Schedule::parse(&input).unwrap_err();
    assert!(
        err.0
            .iter()
            .any(|e| e.field == "closed_dates[1]" && e.message.contains("Christmas")),
        "{err:?}"
    );
    input.closed_dates = (0..401)
        .map(|i| format!("2027-01-{:02}", i % 28 + 1))
        .collect();
    let err = Schedule::parse(&input).unwrap_err();
    assert!(err.0.iter().any(|e| e.field == "closed_dates"), "{err:?}");
}
