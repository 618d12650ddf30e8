//! The quiet-hours guard on top of the schedule: SMS and voice never before 08:00 or at/after
//! 21:00 recipient-local time, across midnight and DST changes; the recipient's time zone from the
//! CSV, the phone number's region or the schedule; and properties checked by sampling.

use herald_core::quiet::{
    QUIET_FROM, QUIET_UNTIL, SendingHours, ZoneSource, in_quiet_hours, may_send_now,
    next_send_time, recipient_zone, region_zone, resolve_recipient_zone,
};
use herald_core::schedule::{Schedule, ScheduleInput, WEEKDAYS};
use herald_core::{Channel, E164};
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

#[test]
fn quiet_hours_are_08_to_21() {
    assert_eq!(QUIET_UNTIL, 8 * 60);
    assert_eq!(QUIET_FROM, 21 * 60);
}

#[test]
fn sms_waits_for_8_and_stops_at_21_whatever_the_schedule() {
    // 2026-05-05 is a Tuesday; the schedule is open around the clock.
    let s = every_day("Europe/Berlin", &["00:00-24:00"]);
    let sms = |t| may_send_now(&s, Channel::Sms, true, t, None);
    assert!(!sms(at("2026-05-05T07:59:59.999999999[Europe/Berlin]")));
    assert!(sms(at("2026-05-05T08:00[Europe/Berlin]")));
    assert!(sms(at("2026-05-05T20:59:59.999999999[Europe/Berlin]")));
    assert!(!sms(at("2026-05-05T21:00[Europe/Berlin]")));
    assert!(!sms(at("2026-05-05T23:59[Europe/Berlin]")));
    assert!(!sms(at("2026-05-06T00:00[Europe/Berlin]")));
    assert_eq!(
        next_send_time(
            &s,
            Channel::Sms,
            true,
            at("2026-05-05T06:00[Europe/Berlin]"),
            None
        ),
        Some(at("2026-05-05T08:00[Europe/Berlin]"))
    );
    // At 21:00 and after, across midnight to tomorrow 08:00.
    for from in [
        "2026-05-05T21:00[Europe/Berlin]",
        "2026-05-05T23:30[Europe/Berlin]",
        "2026-05-06T00:00[Europe/Berlin]",
    ] {
        assert_eq!(
            next_send_time(&s, Channel::Sms, true, at(from), None),
            Some(at("2026-05-06T08:00[Europe/Berlin]")),
            "{from}"
        );
    }
    // Voice too.
    assert!(!may_send_now(
        &s,
        Channel::Voice,
        true,
        at("2026-05-05T22:00[Europe/Berlin]"),
        None
    ));
}

#[test]
fn email_chat_and_campaigns_that_turn_it_off_follow_the_schedule_alone() {
    let s = every_day("Europe/Berlin", &["00:00-24:00"]);
    let night = at("2026-05-05T23:30[Europe/Berlin]");
    for (channel, quiet) in [
        (Channel::Email, true),
        (Channel::Chat, true),
        (Channel::Sms, false),
        (Channel::Voice, false),
    ] {
        assert!(may_send_now(&s, channel, quiet, night, None), "{channel}");
        assert_eq!(
            next_send_time(&s, channel, quiet, night, None),
            Some(night),
            "{channel}"
        );
        assert!(!SendingHours::new(&s, channel, quiet).quiet_hours());
    }
    assert!(SendingHours::new(&s, Channel::Sms, true).quiet_hours());
}

#[test]
fn the_schedule_still_rules_inside_the_day() {
    // Office hours 09:00-17:00 Mon-Fri sit inside 08:00-21:00: the guard changes nothing.
    let s = Schedule::office_hours("America/New_York").unwrap();
    // Friday 2026-03-06 17:00 -> Monday 09:00 EDT (DST began on Sunday).
    let t = at("2026-03-06T17:00[America/New_York]");
    assert_eq!(
        next_send_time(&s, Channel::Sms, true, t, None),
        Some(at("2026-03-09T09:00[America/New_York]"))
    );
    assert_eq!(
        next_send_time(&s, Channel::Sms, true, t, None),
        s.next_open(t, None)
    );
}

#[test]
fn windows_are_clipped_to_daytime() {
    // Open 06:00-23:00 and 23:30-24:00: for SMS only 08:00-21:00 remains.
    let s = every_day("UTC", &["06:00-23:00", "23:30-24:00"]);
    let hours = SendingHours::new(&s, Channel::Sms, true);
    let clipped = hours.schedule().unwrap();
    for day in 0..7 {
        assert_eq!(
            clipped
                .windows(day)
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            ["08:00-21:00"]
        );
    }
    assert_eq!(
        hours.send_until(at("2026-05-05T10:00[UTC]"), None),
        Some(at("2026-05-05T21:00[UTC]"))
    );
    assert_eq!(hours.send_until(at("2026-05-05T22:00[UTC]"), None), None);
    // Email keeps the schedule as it is.
    let email = SendingHours::new(&s, Channel::Email, true);
    assert_eq!(email.schedule(), Some(&s));
}

#[test]
fn a_schedule_open_only_at_night_never_sends_sms() {
    let s = schedule(
        "Europe/London",
        &[("mon", &["21:00-24:00"]), ("tue", &["00:00-08:00"])],
    );
    let t = at("2026-05-04T12:00[Europe/London]");
    let hours = SendingHours::new(&s, Channel::Sms, true);
    assert!(hours.never_sends());
    assert_eq!(hours.next_send_time(t, None), None);
    assert_eq!(next_send_time(&s, Channel::Sms, true, t, None), None);
    assert!(!hours.may_send_now(at("2026-05-04T22:00[Europe/London]"), None));
    // Email may send at night.
    let email = SendingHours::new(&s, Channel::Email, true);
    assert!(!email.never_sends());
    assert_eq!(
        email.next_send_time(t, None),
        Some(at("2026-05-04T21:00[Europe/London]"))
    );
}

#[test]
fn quiet_hours_follow_the_recipients_clock() {
    // A New York schedule open around the clock; the recipient is in Tokyo.
    let s = every_day("America/New_York", &["00:00-24:00"]);
    let tokyo = zone("Asia/Tokyo");
    // 09:00 EDT in New York is 22:00 in Tokyo: quiet there.
    let t = at("2026-05-05T09:00[America/New_York]");
    assert!(may_send_now(&s, Channel::Sms, true, t, None));
    assert!(!may_send_now(&s, Channel::Sms, true, t, Some(&tokyo)));
    assert_eq!(
        next_send_time(&s, Channel::Sms, true, t, Some(&tokyo)),
        Some(at("2026-05-06T08:00[Asia/Tokyo]"))
    );
}

#[test]
fn schedule_windows_and_quiet_hours_both_read_in_the_recipient_zone() {
    // 10:00-12:00 and 20:00-23:00 Berlin-schedule windows, read on a Los Angeles clock.
    let s = every_day("Europe/Berlin", &["10:00-12:00", "20:00-23:00"]);
    let la = zone("America/Los_Angeles");
    let t = at("2026-05-05T12:30[America/Los_Angeles]");
    assert_eq!(
        next_send_time(&s, Channel::Sms, true, t, Some(&la)),
        Some(at("2026-05-05T20:00[America/Los_Angeles]"))
    );
    let t = at("2026-05-05T21:00[America/Los_Angeles]");
    assert_eq!(
        next_send_time(&s, Channel::Sms, true, t, Some(&la)),
        Some(at("2026-05-06T10:00[America/Los_Angeles]"))
    );
    // Email uses the evening window to 23:00.
    assert_eq!(
        next_send_time(&s, Channel::Email, true, t, Some(&la)),
        Some(t)
    );
}

#[test]
fn spring_forward_morning() {
    // New York, Sunday 2026-03-08: 02:00 EST jumps to 03:00 EDT. 08:00 EDT is 12:00Z, not 13:00Z.
    let s = every_day("America/New_York", &["00:00-24:00"]);
    let t = at("2026-03-08T01:30[America/New_York]");
    let eight = at("2026-03-08T08:00[America/New_York]");
    assert_eq!(eight, "2026-03-08T12:00:00Z".parse().unwrap());
    assert_eq!(next_send_time(&s, Channel::Sms, true, t, None), Some(eight));
    assert!(!may_send_now(&s, Channel::Sms, true, eight - NS, None));
    // The evening end is 21:00 EDT.
    assert!(!may_send_now(
        &s,
        Channel::Sms,
        true,
        at("2026-03-08T21:00[America/New_York]"),
        None
    ));
    assert!(may_send_now(
        &s,
        Channel::Sms,
        true,
        "2026-03-09T00:59:59Z".parse().unwrap(),
        None
    ));
}

#[test]
fn fall_back_night() {
    // London, Sunday 2026-10-25: 02:00 BST turns back to 01:00 GMT. The repeated hour is quiet;
    // sending resumes at 08:00 GMT (08:00Z).
    let s = every_day("Europe/London", &["00:00-24:00"]);
    let t = at("2026-10-25T01:30+01:00[Europe/London]");
    let eight = at("2026-10-25T08:00[Europe/London]");
    assert_eq!(eight, "2026-10-25T08:00:00Z".parse().unwrap());
    assert_eq!(next_send_time(&s, Channel::Sms, true, t, None), Some(eight));
    assert_eq!(
        next_send_time(
            &s,
            Channel::Sms,
            true,
            at("2026-10-25T01:30+00:00[Europe/London]"),
            None
        ),
        Some(eight)
    );
}

#[test]
fn a_zone_that_changes_at_midnight() {
    // Santiago falls back at midnight (2026-04-05 00:00 -03 -> 2026-04-04 23:00 -04): the hour
    // 23:00-24:00 happens twice, both quiet; sending resumes at 08:00 -04.
    let s = every_day("America/Santiago", &["00:00-24:00"]);
    let t = at("2026-04-04T22:00[America/Santiago]");
    assert_eq!(
        next_send_time(&s, Channel::Sms, true, t, None),
        Some(at("2026-04-05T08:00[America/Santiago]"))
    );
}

#[test]
fn free_functions_agree_with_sending_hours() {
    let s = schedule(
        "Australia/Sydney",
        &[
            ("mon", &["07:00-10:00", "20:00-22:00"]),
            ("sat", &["00:00-24:00"]),
        ],
    );
    let hours = SendingHours::new(&s, Channel::Sms, true);
    let mut t = at("2026-04-03T00:00[Australia/Sydney]");
    let perth = zone("Australia/Perth");
    for _ in 0..200 {
        for z in [None, Some(&perth)] {
            assert_eq!(
                hours.may_send_now(t, z),
                may_send_now(&s, Channel::Sms, true, t, z),
                "{t}"
            );
            assert_eq!(
                hours.next_send_time(t, z),
                next_send_time(&s, Channel::Sms, true, t, z),
                "{t}"
            );
        }
        t += SignedDuration::from_mins(53);
    }
}

#[test]
fn in_quiet_hours_reads_the_given_zone() {
    let t: Timestamp = "2026-05-05T06:00:00Z".parse().unwrap();
    assert!(in_quiet_hours(t, &TimeZone::UTC));
    assert!(!in_quiet_hours(t, &zone("Europe/Berlin"))); // 08:00 CEST
    assert!(!in_quiet_hours(t, &zone("Asia/Kolkata"))); // 11:30
    assert!(in_quiet_hours(t, &zone("America/New_York"))); // 02:00
}

// ---------------------------------------------------------------- recipient zone

fn phone(s: &str) -> E164 {
    E164::parse(s, None).unwrap()
}

#[test]
fn recipient_zone_prefers_the_csv() {
    let s = Schedule::office_hours("America/New_York").unwrap();
    let gb = phone("+44 20 7946 0958");
    assert_eq!(
        resolve_recipient_zone(Some("Asia/Tokyo"), Some(&gb), &s),
        (zone("Asia/Tokyo"), ZoneSource::Csv)
    );
    assert_eq!(
        recipient_zone(Some(" Europe/Paris "), None, &s),
        zone("Europe/Paris")
    );
}

#[test]
fn recipient_zone_falls_back_to_the_phone_region_then_the_schedule() {
    let s = Schedule::office_hours("America/New_York").unwrap();
    let gb = phone("+44 20 7946 0958");
    let de = phone("+49 30 901820");
    let jp = phone("+81 3-1234-5678");
    let us = phone("+1 415 555 0123");
    let au = phone("+61 2 9374 4000");
    // No CSV zone, or an empty or unknown one.
    for csv in [None, Some(""), Some("  "), Some("Mars/Olympus")] {
        assert_eq!(
            resolve_recipient_zone(csv, Some(&gb), &s),
            (zone("Europe/London"), ZoneSource::PhoneRegion),
            "{csv:?}"
        );
    }
    assert_eq!(recipient_zone(None, Some(&de), &s), zone("Europe/Berlin"));
    assert_eq!(recipient_zone(None, Some(&jp), &s), zone("Asia/Tokyo"));
    // Several zones in the region: the schedule's zone.
    assert_eq!(
        resolve_recipient_zone(None, Some(&us), &s),
        (zone("America/New_York"), ZoneSource::Schedule)
    );
    let berlin_schedule = Schedule::office_hours("Europe/Berlin").unwrap();
    assert_eq!(
        resolve_recipient_zone(None, Some(&au), &berlin_schedule),
        (zone("Europe/Berlin"), ZoneSource::Schedule)
    );
    // No phone (an email recipient).
    assert_eq!(
        resolve_recipient_zone(None, None, &s),
        (zone("America/New_York"), ZoneSource::Schedule)
    );
}

#[test]
fn nanp_islands_have_their_own_single_zone() {
    // +1 876 is Jamaica: one zone, unlike the US.
    let jm = phone("+1 876 927 1234");
    assert_eq!(jm.region().as_deref(), Some("JM"));
    let s = Schedule::office_hours("America/New_York").unwrap();
    assert_eq!(recipient_zone(None, Some(&jm), &s), zone("America/Jamaica"));
    assert_eq!(region_zone("JM"), Some("America/Jamaica"));
}

#[test]
fn zone_sources_serialize_snake_case() {
    assert_eq!(
        serde_json::to_string(&ZoneSource::PhoneRegion).unwrap(),
        "\"phone_region\""
    );
}

mod properties {
    use super::*;
    use proptest::prelude::*;
    use proptest::sample::select;

    const ZONES: [&str; 10] = [
        "America/New_York",
        "Europe/Berlin",
        "Europe/London",
        "Australia/Lord_Howe",
        "Asia/Kathmandu",
        "America/St_Johns",
        "Pacific/Chatham",
        "America/Santiago",
        "Asia/Tokyo",
        "UTC",
    ];

    const FROM: i64 = 1_735_689_600; // 2025-01-01T00:00:00Z
    const TO: i64 = 1_861_920_000; // 2029-01-01T00:00:00Z

    fn fmt(m: u16) -> String {
        format!("{:02}:{:02}", m / 60, m % 60)
    }

    /// One day's windows: the day cut at a few minutes (often near 08:00 and 21:00), pieces
    /// alternately open.
    fn day_windows() -> impl Strategy<Value = Vec<String>> {
        let cut = prop_oneof![
            1u16..1440,
            select(vec![60u16, 120, 420, 479, 480, 481, 1259, 1260, 1261, 1380]),
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

    fn any_zone() -> impl Strategy<Value = Option<TimeZone>> {
        prop::option::of(select(ZONES.to_vec()).prop_map(zone))
    }

    /// An instant in 2025-2028, on a whole minute, second or nanosecond; half the time within
    /// two days of a DST transition of the zone.
    fn instant(
        tz: &TimeZone,
        near: bool,
        secs: i64,
        k: usize,
        delta: i64,
        nanos: i32,
    ) -> Timestamp {
        let mut secs = secs;
        if near {
            let from = Timestamp::from_second(FROM).unwrap();
            let transitions: Vec<_> = tz
                .following(from)
                .map(|t| t.timestamp())
                .take_while(|t| t.as_second() < TO)
                .collect();
            if !transitions.is_empty() {
                secs = transitions[k % transitions.len()].as_second() + delta;
            }
        }
        match nanos % 3 {
            0 => Timestamp::from_second(secs - secs.rem_euclid(60)).unwrap(),
            1 => Timestamp::from_second(secs).unwrap(),
            _ => Timestamp::new(secs, nanos).unwrap(),
        }
    }

    /// Allowed by the definition, checked directly: inside the schedule and, for phone
    /// channels with the guard on, the local time is in 08:00-21:00.
    fn allowed(s: &Schedule, quiet: bool, t: Timestamp, z: Option<&TimeZone>) -> bool {
        let tz = z.unwrap_or(s.timezone());
        let local = tz.to_datetime(t).time();
        let minute = i32::from(local.hour()) * 60 + i32::from(local.minute());
        s.is_open(t, z) && (!quiet || (480..1260).contains(&minute))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn next_send_time_is_the_first_allowed_instant(
            s in any_schedule(),
            recipient in any_zone(),
            channel in select(Channel::ALL.to_vec()),
            quiet_on in any::<bool>(),
            (near, secs, k, delta, nanos) in (any::<bool>(), FROM..TO, 0usize..100, -172_800i64..172_800, 0i32..1_000_000_000),
            samples in prop::collection::vec(0.0f64..1.0, 16),
        ) {
            let z = recipient.as_ref();
            let t = instant(z.unwrap_or(s.timezone()), near, secs, k, delta, nanos);
            let quiet = quiet_on && channel.is_phone();
            let next = next_send_time(&s, channel, quiet_on, t, z);
            prop_assert_eq!(may_send_now(&s, channel, quiet_on, t, z), allowed(&s, quiet, t, z));
            let Some(n) = next else {
                // Never: no weekday has an allowed minute.
                let hours = SendingHours::new(&s, channel, quiet_on);
                prop_assert!(hours.never_sends());
                // Spot-check a week of hours.
                for h in 0..(7 * 24) {
                    let p = t + SignedDuration::from_hours(h);
                    prop_assert!(!allowed(&s, quiet, p, z), "allowed at {}", p);
                }
                return Ok(());
            };
            prop_assert!(n >= t);
            prop_assert!(allowed(&s, quiet, n, z), "not allowed at {}", n);
            prop_assert!(s.is_open(n, z));
            if quiet {
                prop_assert!(!in_quiet_hours(n, z.unwrap_or(s.timezone())));
            }
            prop_assert!(may_send_now(&s, channel, quiet_on, n, z));
            if n > t {
                prop_assert!(!allowed(&s, quiet, t, z));
                prop_assert!(!allowed(&s, quiet, n - NS, z), "allowed 1ns before {}", n);
                let gap = (n - t).as_nanos();
                for f in &samples {
                    let p = t + SignedDuration::from_nanos_i128((gap as f64 * f) as i128);
                    prop_assert!(p < n);
                    prop_assert!(!allowed(&s, quiet, p, z), "allowed at {} before {}", p, n);
                }
                // And on every whole minute in between, up to a day of them.
                let mut p = Timestamp::from_second(t.as_second() - t.as_second().rem_euclid(60) + 60).unwrap();
                let mut checked = 0;
                while p < n && checked < 1440 {
                    prop_assert!(!allowed(&s, quiet, p, z), "allowed at {} before {}", p, n);
                    p += SignedDuration::from_mins(1);
                    checked += 1;
                }
            } else {
                prop_assert!(allowed(&s, quiet, t, z));
            }
            // Asking again from the answer gives the answer.
            prop_assert_eq!(next_send_time(&s, channel, quiet_on, n, z), Some(n));
        }
    }
}
