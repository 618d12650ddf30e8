//! When a message may go out to one recipient: inside the campaign's schedule, read in the
//! recipient's time zone, and — for SMS and voice — outside quiet hours.
//!
//! Quiet hours: Herald never texts or calls before 08:00 or at/after 21:00 on the recipient's
//! local clock, whatever the schedule says, unless the campaign turns the guard off
//! (`quiet_hours: false`). Email and chat are not affected.
//!
//! Both the schedule and the guard are wall-clock rules in the same zone, so their intersection is
//! itself a schedule: each window clipped to `08:00-21:00` ([`SendingHours`]). Its answers are
//! exact to the nanosecond, across DST changes and midnight, like [`Schedule::next_open`]'s.
//!
//! The recipient's zone is the CSV's `timezone` column, else the zone of the phone number's
//! region when that region has a single zone ([`region_zone`]), else the schedule's zone
//! ([`recipient_zone`]).

use crate::address::E164;
use crate::channel::Channel;
use crate::schedule::{Minute, Schedule, ScheduleInput, Window};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

/// Quiet hours end at 08:00 local time: the first minute a phone channel may send.
pub const QUIET_UNTIL: Minute = 8 * 60;
/// Quiet hours start at 21:00 local time: from this minute on, phone channels wait for tomorrow.
pub const QUIET_FROM: Minute = 21 * 60;

/// Whether the quiet-hours guard applies: on phone channels (SMS, voice) when the campaign has it
/// on.
pub fn quiet_hours_apply(channel: Channel, quiet_hours: bool) -> bool {
    quiet_hours && channel.is_phone()
}

/// Whether `at` falls in quiet hours (before 08:00 or at/after 21:00) on a clock in `zone`.
pub fn in_quiet_hours(at: Timestamp, zone: &TimeZone) -> bool {
    let t = zone.to_datetime(at).time();
    let minute = i32::from(t.hour()) * 60 + i32::from(t.minute());
    minute < i32::from(QUIET_UNTIL) || minute >= i32::from(QUIET_FROM)
}

/// The hours a campaign may send on its channel: the schedule, clipped to `08:00-21:00` when the
/// quiet-hours guard applies. Build it once per campaign; its questions are then as cheap as the
/// schedule's own.
#[derive(Debug, Clone, PartialEq)]
pub struct SendingHours {
    /// `None` only if the clipped schedule could not be rebuilt, which a valid schedule cannot
    /// cause; it then never sends (the safe side of the guard).
    effective: Option<Schedule>,
    quiet: bool,
}

impl SendingHours {
    /// The sending hours of a campaign with this schedule, channel and quiet-hours setting.
    pub fn new(schedule: &Schedule, channel: Channel, quiet_hours: bool) -> Self {
        let quiet = quiet_hours_apply(channel, quiet_hours);
        let effective = if quiet {
            clip_to_daytime(schedule)
        } else {
            Some(schedule.clone())
        };
        Self { effective, quiet }
    }

    /// Whether the quiet-hours guard narrows these hours.
    pub fn quiet_hours(&self) -> bool {
        self.quiet
    }

    /// The effective schedule: the campaign's, clipped to `08:00-21:00` when the guard applies.
    pub fn schedule(&self) -> Option<&Schedule> {
        self.effective.as_ref()
    }

    /// True when no message can ever go out: every day closed, or (with quiet hours) open only at
    /// night. Worth telling the person who saves such a campaign.
    pub fn never_sends(&self) -> bool {
        self.effective
            .as_ref()
            .is_none_or(Schedule::is_always_closed)
    }

    /// Whether a message may go out at `at` to a recipient in `zone` (`None`: the schedule's zone).
    pub fn may_send_now(&self, at: Timestamp, zone: Option<&TimeZone>) -> bool {
        self.effective.as_ref().is_some_and(|s| s.is_open(at, zone))
    }

    /// The earliest instant `>= at` at which a message may go out to a recipient in `zone`
    /// (`None`: the schedule's zone); `at` itself when it may go out now. `None` when it never
    /// may (see [`SendingHours::never_sends`] and [`Schedule::next_open`]).
    pub fn next_send_time(&self, at: Timestamp, zone: Option<&TimeZone>) -> Option<Timestamp> {
        self.effective.as_ref()?.next_open(at, zone)
    }

    /// When sending is allowed at `at`: the first instant after it at which it no longer is (see
    /// [`Schedule::open_until`] for the 8-day horizon). `None` when it is not allowed at `at`.
    pub fn send_until(&self, at: Timestamp, zone: Option<&TimeZone>) -> Option<Timestamp> {
        self.effective.as_ref()?.open_until(at, zone)
    }
}

/// The schedule with every window cut to the hours outside quiet hours.
fn clip_to_daytime(schedule: &Schedule) -> Option<Schedule> {
    let mut input: ScheduleInput = schedule.to_input();
    for windows in input.days.values_mut() {
        *windows = windows
            .iter()
            .filter_map(|w| Window::parse(w).ok())
            .filter_map(|w| Window::new(w.start.max(QUIET_UNTIL), w.end.min(QUIET_FROM)))
            .map(|w| w.to_string())
            .collect();
    }
    Schedule::parse(&input).ok()
}

/// The earliest instant `>= at` that is inside `schedule` and, for SMS and voice with
/// `quiet_hours` on, outside quiet hours, on the clock of `recipient_zone` (`None`: the schedule's
/// zone). `None` when no such instant comes.
///
/// Builds the clipped schedule on every call; on a hot path build a [`SendingHours`] once.
pub fn next_send_time(
    schedule: &Schedule,
    channel: Channel,
    quiet_hours: bool,
    at: Timestamp,
    recipient_zone: Option<&TimeZone>,
) -> Option<Timestamp> {
    if quiet_hours_apply(channel, quiet_hours) {
        SendingHours::new(schedule, channel, quiet_hours).next_send_time(at, recipient_zone)
    } else {
        schedule.next_open(at, recipient_zone)
    }
}

/// Whether a message may go out at `at`: inside `schedule` and, for SMS and voice with
/// `quiet_hours` on, outside quiet hours, on the clock of `recipient_zone` (`None`: the schedule's
/// zone).
pub fn may_send_now(
    schedule: &Schedule,
    channel: Channel,
    quiet_hours: bool,
    at: Timestamp,
    recipient_zone: Option<&TimeZone>,
) -> bool {
    let zone = recipient_zone.unwrap_or(schedule.timezone());
    schedule.is_open(at, Some(zone))
        && !(quiet_hours_apply(channel, quiet_hours) && in_quiet_hours(at, zone))
}

/// Where a recipient's time zone came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ZoneSource {
    /// The CSV's `timezone` column.
    Csv,
    /// The region of the phone number, which has a single time zone.
    PhoneRegion,
    /// The campaign schedule's zone.
    Schedule,
}

/// The time zone a recipient's sending hours are read in: the CSV's `timezone` (when it names a
/// known IANA zone), else the zone of the phone number's region when that region has exactly one
/// ([`region_zone`]), else the schedule's zone.
pub fn recipient_zone(
    csv_timezone: Option<&str>,
    phone: Option<&E164>,
    schedule: &Schedule,
) -> TimeZone {
    resolve_recipient_zone(csv_timezone, phone, schedule).0
}

/// [`recipient_zone`], also telling where the zone came from.
pub fn resolve_recipient_zone(
    csv_timezone: Option<&str>,
    phone: Option<&E164>,
    schedule: &Schedule,
) -> (TimeZone, ZoneSource) {
    if let Some(tz) = csv_timezone
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .and_then(|name| TimeZone::get(name).ok())
    {
        return (tz, ZoneSource::Csv);
    }
    if let Some(tz) = phone
        .and_then(E164::region)
        .and_then(|region| region_zone(&region))
        .and_then(|name| TimeZone::get(name).ok())
    {
        return (tz, ZoneSource::PhoneRegion);
    }
    (schedule.timezone().clone(), ZoneSource::Schedule)
}

/// The IANA zone of an ISO 3166 region (`GB` → `Europe/London`) when the region keeps a single
/// clock; `None` for a region with several (and for unknown codes).
///
/// Built from the tz database's `zone.tab` (2025b): the regions with one zone, plus the regions
/// whose zones all keep the same offsets today (Argentina, Cyprus, Germany, Kazakhstan since 2024,
/// Malaysia, Marshall Islands, Palestine, Uzbekistan), plus the phone regions `zone.tab` does not
/// list: Ascension and Tristan da Cunha (`Atlantic/St_Helena`) and Kosovo (`Europe/Belgrade`).
///
/// Regions with clocks that differ fall back to the schedule's zone: US, CA, MX, BR, AU, RU, and
/// also AQ, CD, CL, CN (tzdb keeps `Asia/Urumqi`), EC, ES (Canary Islands), FM, GL, ID, KI, MN, NZ
/// (Chatham), PF, PG, PT (Azores), UA (Crimea), UM. A CSV `timezone` column is the way to reach
/// recipients there at their own hours.
pub fn region_zone(region: &str) -> Option<&'static str> {
    let region = region.trim();
    SINGLE_ZONE_REGIONS
        .binary_search_by(|(code, _)| cmp_ignore_ascii_case(code, region))
        .ok()
        .and_then(|i| SINGLE_ZONE_REGIONS.get(i))
        .map(|(_, zone)| *zone)
}

fn cmp_ignore_ascii_case(a: &str, b: &str) -> std::cmp::Ordering {
    a.bytes()
        .map(|c| c.to_ascii_uppercase())
        .cmp(b.bytes().map(|c| c.to_ascii_uppercase()))
}

/// Region → its only zone, sorted by region code (binary-searched).
#[rustfmt::skip]
const SINGLE_ZONE_REGIONS: &[(&str, &str)] = &[
    ("AC", "Atlantic/St_Helena"), ("AD", "Europe/Andorra"), ("AE", "Asia/Dubai"),
    ("AF", "Asia/Kabul"), ("AG", "America/Antigua"), ("AI", "America/Anguilla"),
    ("AL", "Europe/Tirane"), ("AM", "Asia/Yerevan"), ("AO", "Africa/Luanda"),
    ("AR", "America/Argentina/Buenos_Aires"), ("AS", "Pacific/Pago_Pago"), ("AT", "Europe/Vienna"),
    ("AW", "America/Aruba"), ("AX", "Europe/Mariehamn"), ("AZ", "Asia/Baku"),
    ("BA", "Europe/Sarajevo"), ("BB", "America/Barbados"), ("BD", "Asia/Dhaka"),
    ("BE", "Europe/Brussels"), ("BF", "Africa/Ouagadougou"), ("BG", "Europe/Sofia"),
    ("BH", "Asia/Bahrain"), ("BI", "Africa/Bujumbura"), ("BJ", "Africa/Porto-Novo"),
    ("BL", "America/St_Barthelemy"), ("BM", "Atlantic/Bermuda"), ("BN", "Asia/Brunei"),
    ("BO", "America/La_Paz"), ("BQ", "America/Kralendijk"), ("BS", "America/Nassau"),
    ("BT", "Asia/Thimphu"), ("BW", "Africa/Gaborone"), ("BY", "Europe/Minsk"),
    ("BZ", "America/Belize"), ("CC", "Indian/Cocos"), ("CF", "Africa/Bangui"),
    ("CG", "Africa/Brazzaville"), ("CH", "Europe/Zurich"), ("CI", "Africa/Abidjan"),
    ("CK", "Pacific/Rarotonga"), ("CM", "Africa/Douala"), ("CO", "America/Bogota"),
    ("CR", "America/Costa_Rica"), ("CU", "America/Havana"), ("CV", "Atlantic/Cape_Verde"),
    ("CW", "America/Curacao"), ("CX", "Indian/Christmas"), ("CY", "Asia/Nicosia"),
    ("CZ", "Europe/Prague"), ("DE", "Europe/Berlin"), ("DJ", "Africa/Djibouti"),
    ("DK", "Europe/Copenhagen"), ("DM", "America/Dominica"), ("DO", "America/Santo_Domingo"),
    ("DZ", "Africa/Algiers"), ("EE", "Europe/Tallinn"), ("EG", "Africa/Cairo"),
    ("EH", "Africa/El_Aaiun"), ("ER", "Africa/Asmara"), ("ET", "Africa/Addis_Ababa"),
    ("FI", "Europe/Helsinki"), ("FJ", "Pacific/Fiji"), ("FK", "Atlantic/Stanley"),
    ("FO", "Atlantic/Faroe"), ("FR", "Europe/Paris"), ("GA", "Africa/Libreville"),
    ("GB", "Europe/London"), ("GD", "America/Grenada"), ("GE", "Asia/Tbilisi"),
    ("GF", "America/Cayenne"), ("GG", "Europe/Guernsey"), ("GH", "Africa/Accra"),
    ("GI", "Europe/Gibraltar"), ("GM", "Africa/Banjul"), ("GN", "Africa/Conakry"),
    ("GP", "America/Guadeloupe"), ("GQ", "Africa/Malabo"), ("GR", "Europe/Athens"),
    ("GS", "Atlantic/South_Georgia"), ("GT", "America/Guatemala"), ("GU", "Pacific/Guam"),
    ("GW", "Africa/Bissau"), ("GY", "America/Guyana"), ("HK", "Asia/Hong_Kong"),
    ("HN", "America/Tegucigalpa"), ("HR", "Europe/Zagreb"), ("HT", "America/Port-au-Prince"),
    ("HU", "Europe/Budapest"), ("IE", "Europe/Dublin"), ("IL", "Asia/Jerusalem"),
    ("IM", "Europe/Isle_of_Man"), ("IN", "Asia/Kolkata"), ("IO", "Indian/Chagos"),
    ("IQ", "Asia/Baghdad"), ("IR", "Asia/Tehran"), ("IS", "Atlantic/Reykjavik"),
    ("IT", "Europe/Rome"), ("JE", "Europe/Jersey"), ("JM", "America/Jamaica"),
    ("JO", "Asia/Amman"), ("JP", "Asia/Tokyo"), ("KE", "Africa/Nairobi"), ("KG", "Asia/Bishkek"),
    ("KH", "Asia/Phnom_Penh"), ("KM", "Indian/Comoro"), ("KN", "America/St_Kitts"),
    ("KP", "Asia/Pyongyang"), ("KR", "Asia/Seoul"), ("KW", "Asia/Kuwait"),
    ("KY", "America/Cayman"), ("KZ", "Asia/Almaty"), ("LA", "Asia/Vientiane"),
    ("LB", "Asia/Beirut"), ("LC", "America/St_Lucia"), ("LI", "Europe/Vaduz"),
    ("LK", "Asia/Colombo"), ("LR", "Africa/Monrovia"), ("LS", "Africa/Maseru"),
    ("LT", "Europe/Vilnius"), ("LU", "Europe/Luxembourg"), ("LV", "Europe/Riga"),
    ("LY", "Africa/Tripoli"), ("MA", "Africa/Casablanca"), ("MC", "Europe/Monaco"),
    ("MD", "Europe/Chisinau"), ("ME", "Europe/Podgorica"), ("MF", "America/Marigot"),
    ("MG", "Indian/Antananarivo"), ("MH", "Pacific/Majuro"), ("MK", "Europe/Skopje"),
    ("ML", "Africa/Bamako"), ("MM", "Asia/Yangon"), ("MO", "Asia/Macau"), ("MP", "Pacific/Saipan"),
    ("MQ", "America/Martinique"), ("MR", "Africa/Nouakchott"), ("MS", "America/Montserrat"),
    ("MT", "Europe/Malta"), ("MU", "Indian/Mauritius"), ("MV", "Indian/Maldives"),
    ("MW", "Africa/Blantyre"), ("MY", "Asia/Kuala_Lumpur"), ("MZ", "Africa/Maputo"),
    ("NA", "Africa/Windhoek"), ("NC", "Pacific/Noumea"), ("NE", "Africa/Niamey"),
    ("NF", "Pacific/Norfolk"), ("NG", "Africa/Lagos"), ("NI", "America/Managua"),
    ("NL", "Europe/Amsterdam"), ("NO", "Europe/Oslo"), ("NP", "Asia/Kathmandu"),
    ("NR", "Pacific/Nauru"), ("NU", "Pacific/Niue"), ("OM", "Asia/Muscat"),
    ("PA", "America/Panama"), ("PE", "America/Lima"), ("PH", "Asia/Manila"),
    ("PK", "Asia/Karachi"), ("PL", "Europe/Warsaw"), ("PM", "America/Miquelon"),
    ("PN", "Pacific/Pitcairn"), ("PR", "America/Puerto_Rico"), ("PS", "Asia/Gaza"),
    ("PW", "Pacific/Palau"), ("PY", "America/Asuncion"), ("QA", "Asia/Qatar"),
    ("RE", "Indian/Reunion"), ("RO", "Europe/Bucharest"), ("RS", "Europe/Belgrade"),
    ("RW", "Africa/Kigali"), ("SA", "Asia/Riyadh"), ("SB", "Pacific/Guadalcanal"),
    ("SC", "Indian/Mahe"), ("SD", "Africa/Khartoum"), ("SE", "Europe/Stockholm"),
    ("SG", "Asia/Singapore"), ("SH", "Atlantic/St_Helena"), ("SI", "Europe/Ljubljana"),
    ("SJ", "Arctic/Longyearbyen"), ("SK", "Europe/Bratislava"), ("SL", "Africa/Freetown"),
    ("SM", "Europe/San_Marino"), ("SN", "Africa/Dakar"), ("SO", "Africa/Mogadishu"),
    ("SR", "America/Paramaribo"), ("SS", "Africa/Juba"), ("ST", "Africa/Sao_Tome"),
    ("SV", "America/El_Salvador"), ("SX", "America/Lower_Princes"), ("SY", "Asia/Damascus"),
    ("SZ", "Africa/Mbabane"), ("TA", "Atlantic/St_Helena"), ("TC", "America/Grand_Turk"),
    ("TD", "Africa/Ndjamena"), ("TF", "Indian/Kerguelen"), ("TG", "Africa/Lome"),
    ("TH", "Asia/Bangkok"), ("TJ", "Asia/Dushanbe"), ("TK", "Pacific/Fakaofo"),
    ("TL", "Asia/Dili"), ("TM", "Asia/Ashgabat"), ("TN", "Africa/Tunis"),
    ("TO", "Pacific/Tongatapu"), ("TR", "Europe/Istanbul"), ("TT", "America/Port_of_Spain"),
    ("TV", "Pacific/Funafuti"), ("TW", "Asia/Taipei"), ("TZ", "Africa/Dar_es_Salaam"),
    ("UG", "Africa/Kampala"), ("UY", "America/Montevideo"), ("UZ", "Asia/Tashkent"),
    ("VA", "Europe/Vatican"), ("VC", "America/St_Vincent"), ("VE", "America/Caracas"),
    ("VG", "America/Tortola"), ("VI", "America/St_Thomas"), ("VN", "Asia/Ho_Chi_Minh"),
    ("VU", "Pacific/Efate"), ("WF", "Pacific/Wallis"), ("WS", "Pacific/Apia"),
    ("XK", "Europe/Belgrade"), ("YE", "Asia/Aden"), ("YT", "Indian/Mayotte"),
    ("ZA", "Africa/Johannesburg"), ("ZM", "Africa/Lusaka"), ("ZW", "Africa/Harare"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_region_table_is_sorted_and_every_zone_exists() {
        for pair in SINGLE_ZONE_REGIONS.windows(2) {
            assert!(pair[0].0 < pair[1].0, "{pair:?}");
        }
        for (region, zone) in SINGLE_ZONE_REGIONS {
            assert_eq!(region.len(), 2, "{region}");
            assert!(TimeZone::get(zone).is_ok(), "{region}: {zone}");
        }
        assert!(SINGLE_ZONE_REGIONS.len() > 220);
    }

    #[test]
    fn region_lookup() {
        assert_eq!(region_zone("GB"), Some("Europe/London"));
        assert_eq!(region_zone("de"), Some("Europe/Berlin"));
        assert_eq!(region_zone(" JP "), Some("Asia/Tokyo"));
        assert_eq!(region_zone("AR"), Some("America/Argentina/Buenos_Aires"));
        for multi in [
            "US", "CA", "MX", "BR", "AU", "RU", "CN", "ES", "PT", "NZ", "ID",
        ] {
            assert_eq!(region_zone(multi), None, "{multi}");
        }
        assert_eq!(region_zone(""), None);
        assert_eq!(region_zone("ZZ"), None);
        assert_eq!(region_zone("001"), None);
    }

    #[test]
    fn quiet_hours_bounds() {
        let tz = TimeZone::UTC;
        let t = |s: &str| s.parse::<Timestamp>().unwrap();
        assert!(in_quiet_hours(t("2026-05-05T07:59:59.999999999Z"), &tz));
        assert!(!in_quiet_hours(t("2026-05-05T08:00:00Z"), &tz));
        assert!(!in_quiet_hours(t("2026-05-05T20:59:59.999999999Z"), &tz));
        assert!(in_quiet_hours(t("2026-05-05T21:00:00Z"), &tz));
        assert!(in_quiet_hours(t("2026-05-05T00:00:00Z"), &tz));
        assert!(quiet_hours_apply(Channel::Sms, true));
        assert!(quiet_hours_apply(Channel::Voice, true));
        assert!(!quiet_hours_apply(Channel::Email, true));
        assert!(!quiet_hours_apply(Channel::Chat, true));
        assert!(!quiet_hours_apply(Channel::Sms, false));
    }
}
