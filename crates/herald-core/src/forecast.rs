//! When an outreach will send: the first and the last message, and how many recipients the end
//! time would leave unsent, from what decides it in the dispatcher — each recipient's sending
//! hours (the campaign's schedule and quiet hours on the recipient's clock), the sender's rate
//! (messages or SMS segments a second), its daily cap, the start and the end.
//!
//! The recipients are counted by time zone, so the work is a walk over the stretches of time in
//! which the set of open zones stays the same (a few per day per zone), never over recipients or
//! seconds. Within a stretch, messages go out one per `cost / rate` seconds, shared among the open
//! zones in proportion to what each has left: that is how the dispatcher, which claims due
//! recipients in their order, spreads a list whose zones are mixed. It assumes the sender sends
//! nothing else meanwhile (other outreaches of the same sender share its rate).

use crate::quiet::SendingHours;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

/// How far ahead a forecast looks; recipients not reached by then are counted as never sent.
pub const HORIZON: SignedDuration = SignedDuration::from_hours(24 * 366 * 5);
/// The most stretches a forecast walks (a bound on its work whatever the input).
const MAX_STEPS: usize = 200_000;

/// Recipients whose sending hours are read in one time zone.
#[derive(Debug, Clone)]
pub struct ZoneGroup {
    /// `None`: the schedule's own zone.
    pub zone: Option<TimeZone>,
    pub recipients: u64,
}

/// What a forecast is made from.
#[derive(Debug, Clone)]
pub struct ForecastInput<'a> {
    pub hours: &'a SendingHours,
    /// The outreach's start: nothing goes out before it.
    pub start: Timestamp,
    /// The outreach's end: what is not sent by then expires.
    pub end: Option<Timestamp>,
    /// The sender's tokens per second (`inf`: unlimited).
    pub rate: f64,
    /// Tokens one message costs: 1, or an SMS's segments.
    pub cost: f64,
    /// The sender's tokens a day, with the zone whose midnight starts a day.
    pub daily_cap: Option<(u64, TimeZone)>,
    pub groups: Vec<ZoneGroup>,
}

/// When an outreach's messages would go out.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Forecast {
    /// When the first message would go out; `None` when none would.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub first_at: Option<Timestamp>,
    /// When the last message would go out; `None` when none would.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub last_at: Option<Timestamp>,
    /// Recipients who would be sent their message.
    pub sent: u64,
    /// Recipients still waiting when the end time passes: they would expire unsent.
    pub expire: u64,
    /// Recipients whose sending hours never open (or not within five years).
    pub never: u64,
    /// Messages a second the sender's rate allows (`null`: unlimited).
    pub messages_per_second: Option<f64>,
}

/// Forecasts when the messages of `input`'s recipients go out.
pub fn forecast(input: &ForecastInput<'_>) -> Forecast {
    let cost = input.cost.max(1.0);
    let unlimited = !input.rate.is_finite();
    let per_second = (input.rate / cost).max(1e-9);
    let step = if unlimited {
        SignedDuration::ZERO
    } else {
        SignedDuration::from_secs_f64(1.0 / per_second)
    };
    let horizon = input.start.checked_add(HORIZON).unwrap_or(Timestamp::MAX);
    let stop = input.end.map_or(horizon, |e| e.min(horizon));
    let mut left: Vec<u64> = input.groups.iter().map(|g| g.recipients).collect();
    let mut out = Forecast {
        first_at: None,
        last_at: None,
        sent: 0,
        expire: 0,
        never: 0,
        messages_per_second: (!unlimited).then_some(per_second),
    };
    let mut t = input.start;
    let mut next_slot = input.start;
    let mut day: Option<(jiff::civil::Date, u64)> = None;
    let mut ended_by_end = false;
    for _ in 0..MAX_STEPS {
        if left.iter().all(|&n| n == 0) {
            break;
        }
        if t >= stop {
            ended_by_end = input.end.is_some_and(|e| t >= e);
            break;
        }
        let open: Vec<usize> = (0..left.len())
            .filter(|&i| left[i] > 0 && input.hours.may_send_now(t, input.groups[i].zone.as_ref()))
            .collect();
        // The next instant another zone opens.
        let next_open = (0..left.len())
            .filter(|&i| left[i] > 0 && !open.contains(&i))
            .filter_map(|i| input.hours.next_send_time(t, input.groups[i].zone.as_ref()))
            .min();
        if open.is_empty() {
            match next_open {
                Some(n) => t = n,
                None => break,
            }
            continue;
        }
        // The daily cap: what is left of today's tokens, and when tomorrow begins.
        let mut tomorrow = None;
        let mut cap_left = u64::MAX;
        if let Some((cap, zone)) = &input.daily_cap {
            let today = zone.to_datetime(t).date();
            let used = match day {
                Some((d, used)) if d == today => used,
                _ => 0,
            };
            day = Some((today, used));
            cap_left = cap.saturating_sub(used);
            tomorrow = today.tomorrow().ok().and_then(|d| {
                zone.to_ambiguous_timestamp(d.to_datetime(jiff::civil::Time::midnight()))
                    .compatible()
                    .ok()
            });
            if (cap_left as f64) < cost {
                match tomorrow {
                    Some(next) => t = next,
                    None => break,
                }
                continue;
            }
        }
        let mut seg_end = stop;
        for &i in &open {
            if let Some(until) = input.hours.send_until(t, input.groups[i].zone.as_ref()) {
                seg_end = seg_end.min(until);
            }
        }
        if let Some(n) = next_open {
            seg_end = seg_end.min(n);
        }
        if let Some(next) = tomorrow {
            seg_end = seg_end.min(next);
        }
        let first = t.max(next_slot);
        if first >= seg_end {
            t = seg_end;
            continue;
        }
        let open_left: u64 = open.iter().map(|&i| left[i]).sum();
        let mut n = if unlimited {
            open_left
        } else {
            let secs = seg_end.duration_since(first).as_secs_f64();
            // Slots at first, first + step, ... strictly before seg_end.
            ((secs * per_second).ceil() as u64).max(1)
        };
        n = n
            .min(open_left)
            .min((cap_left as f64 / cost).floor() as u64);
        if n == 0 {
            t = seg_end;
            continue;
        }
        share(&mut left, &open, n);
        out.sent += n;
        out.first_at.get_or_insert(first);
        let last = first
            .checked_add(step * i32::try_from(n - 1).unwrap_or(i32::MAX))
            .unwrap_or(Timestamp::MAX);
        out.last_at = Some(last);
        next_slot = last.checked_add(step).unwrap_or(Timestamp::MAX);
        if let Some((d, used)) = day {
            day = Some((d, used.saturating_add((n as f64 * cost).ceil() as u64)));
        }
        t = if unlimited && n == open_left {
            // Everyone open now went at once; look again when another zone opens.
            next_open.unwrap_or(stop)
        } else {
            seg_end
        };
    }
    let unsent: u64 = left.iter().sum();
    if ended_by_end {
        out.expire = unsent;
    } else {
        out.never = unsent;
    }
    out
}

/// Takes `n` recipients from the `open` groups in proportion to what each has left (largest
/// remainder first for the odd ones).
fn share(left: &mut [u64], open: &[usize], n: u64) {
    let total: u64 = open.iter().map(|&i| left[i]).sum();
    if n >= total {
        for &i in open {
            left[i] = 0;
        }
        return;
    }
    let mut given = 0u64;
    let mut remainders = Vec::with_capacity(open.len());
    for &i in open {
        let exact = u128::from(left[i]) * u128::from(n);
        let whole = (exact / u128::from(total)) as u64;
        remainders.push((exact % u128::from(total), i));
        left[i] -= whole;
        given += whole;
    }
    remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, i) in remainders {
        if given == n {
            break;
        }
        if left[i] > 0 {
            left[i] -= 1;
            given += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Channel;
    use crate::schedule::{Schedule, ScheduleInput};

    fn hours(days: &[(&str, &[&str])], tz: &str, channel: Channel, quiet: bool) -> SendingHours {
        let input = ScheduleInput {
            timezone: tz.into(),
            days: days
                .iter()
                .map(|(d, w)| (d.to_string(), w.iter().map(|s| s.to_string()).collect()))
                .collect(),
            closed_dates: Vec::new(),
        };
        SendingHours::new(&Schedule::parse(&input).unwrap(), channel, quiet)
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn one_zone(n: u64) -> Vec<ZoneGroup> {
        vec![ZoneGroup {
            zone: None,
            recipients: n,
        }]
    }

    #[test]
    fn six_hundred_at_one_a_second_across_two_windows() {
        // Monday 2026-12-07: 09:00-09:05 then 10:00-10:10, UTC.
        let h = hours(
            &[("mon", &["09:00-09:05", "10:00-10:10"])],
            "UTC",
            Channel::Sms,
            false,
        );
        let f = forecast(&ForecastInput {
            hours: &h,
            start: ts("2026-12-07T08:00:00Z"),
            end: None,
            rate: 1.0,
            cost: 1.0,
            daily_cap: None,
            groups: one_zone(600),
        });
        assert_eq!(f.first_at, Some(ts("2026-12-07T09:00:00Z")));
        // 300 in the first window (09:00:00 .. 09:04:59), the other 300 from 10:00:00.
        assert_eq!(f.last_at, Some(ts("2026-12-07T10:04:59Z")));
        assert_eq!((f.sent, f.expire, f.never), (600, 0, 0));
    }

    #[test]
    fn the_end_time_expires_what_is_left() {
        let h = hours(&[("mon", &["09:00-17:00"])], "UTC", Channel::Sms, false);
        let f = forecast(&ForecastInput {
            hours: &h,
            start: ts("2026-12-07T09:00:00Z"),
            end: Some(ts("2026-12-07T09:01:00Z")),
            rate: 2.0,
            cost: 1.0,
            daily_cap: None,
            groups: one_zone(1000),
        });
        assert_eq!(f.sent, 120);
        assert_eq!(f.expire, 880);
        assert_eq!(f.last_at, Some(ts("2026-12-07T09:00:59.5Z")));
    }

    #[test]
    fn segments_slow_the_rate_and_the_daily_cap_waits_for_midnight() {
        let h = hours(
            &[
                ("mon", &["00:00-24:00"]),
                ("tue", &["00:00-24:00"]),
                ("wed", &["00:00-24:00"]),
            ],
            "UTC",
            Channel::Sms,
            false,
        );
        let f = forecast(&ForecastInput {
            hours: &h,
            start: ts("2026-12-07T23:59:00Z"),
            end: None,
            rate: 10.0,
            cost: 2.0,
            daily_cap: Some((100, TimeZone::UTC)),
            groups: one_zone(70),
        });
        // 5 messages a second; the first day takes 50 (100 tokens), the rest at midnight.
        assert_eq!(f.first_at, Some(ts("2026-12-07T23:59:00Z")));
        assert_eq!(f.last_at, Some(ts("2026-12-08T00:00:03.8Z")));
        assert_eq!(f.sent, 70);
    }

    #[test]
    fn each_zone_waits_for_its_own_hours() {
        let h = hours(&[("mon", &["09:00-10:00"])], "UTC", Channel::Email, false);
        let tokyo = TimeZone::get("Asia/Tokyo").unwrap();
        let f = forecast(&ForecastInput {
            hours: &h,
            start: ts("2026-12-06T00:00:00Z"),
            end: None,
            rate: f64::INFINITY,
            cost: 1.0,
            daily_cap: None,
            groups: vec![
                ZoneGroup {
                    zone: Some(tokyo),
                    recipients: 5,
                },
                ZoneGroup {
                    zone: None,
                    recipients: 3,
                },
            ],
        });
        // Tokyo's Monday 09:00 is Monday 00:00 UTC; UTC's is nine hours later.
        assert_eq!(f.first_at, Some(ts("2026-12-07T00:00:00Z")));
        assert_eq!(f.last_at, Some(ts("2026-12-07T09:00:00Z")));
        assert_eq!(f.sent, 8);
    }

    #[test]
    fn hours_that_never_open_send_nothing() {
        let h = hours(&[("mon", &["22:00-23:00"])], "UTC", Channel::Sms, true);
        let f = forecast(&ForecastInput {
            hours: &h,
            start: ts("2026-12-07T00:00:00Z"),
            end: None,
            rate: 1.0,
            cost: 1.0,
            daily_cap: None,
            groups: one_zone(4),
        });
        assert_eq!((f.first_at, f.sent, f.never), (None, 0, 4));
    }

    #[test]
    fn shares_follow_what_each_zone_has_left() {
        let mut left = vec![10, 30, 0];
        share(&mut left, &[0, 1], 8);
        assert_eq!(left, vec![8, 24, 0]);
        share(&mut left, &[0, 1], 100);
        assert_eq!(left, vec![0, 0, 0]);
    }
}
