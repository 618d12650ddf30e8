//! `[dispatch]` and `[dispatch.rates]` in `herald.toml`: batch sizes, leases, retries and the
//! rate of each sender.

use herald_core::{Channel, Sender};
use serde::Deserialize;
use std::collections::BTreeMap;

/// `[dispatch]` in `herald.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DispatchConfig {
    /// Recipients claimed per batch (and recorded per transaction).
    pub batch_size: u32,
    /// Sends in flight at once.
    pub concurrency: usize,
    /// How long a claim holds a recipient unless renewed. A live dispatcher renews the leases of
    /// its batch every third of this while its sends run, so this is how long a Herald that
    /// died mid-send leaves its recipients before another node resolves them, not a bound on
    /// how long a send may take.
    pub lease_secs: u64,
    /// After a shutdown signal: how long the sends already begun may take to finish (no new one
    /// begins). Recipients claimed but not begun go back to the queue at once.
    pub shutdown_grace_secs: u64,
    /// Attempts per recipient before a transient failure becomes `failed`.
    pub max_attempts: u32,
    /// The first retry waits about this long; each further one twice as long.
    pub backoff_base_ms: u64,
    /// No retry waits longer than this (unless the provider's `Retry-After` says so).
    pub backoff_max_secs: u64,
    /// How often an idle dispatcher looks for due work.
    pub poll_ms: u64,
    /// Messages per second per sender.
    pub rates: RateConfig,
    /// Messages a day per sender, where a carrier caps them.
    pub daily_caps: DailyCapConfig,
    /// At most this many proactive messages to one customer in a number of days, across every
    /// outreach and sender (`[dispatch.frequency_cap]`); none unless set.
    pub frequency_cap: Option<FrequencyCap>,
    /// Where a batch's results are kept when Herald must stop while the database cannot take
    /// them (they are written on the next start, before anything is claimed). `herald serve`
    /// uses `herald-dispatch-journal.jsonl` in its working directory unless this is set.
    pub journal: Option<std::path::PathBuf>,
    /// This node's name in every log line of the dispatcher (`node=…`); the host name and the
    /// process id unless set.
    pub node: Option<String>,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        Self {
            batch_size: 500,
            concurrency: 32,
            lease_secs: 30,
            shutdown_grace_secs: 10,
            max_attempts: 5,
            backoff_base_ms: 2_000,
            backoff_max_secs: 600,
            poll_ms: 500,
            rates: RateConfig::default(),
            daily_caps: DailyCapConfig::default(),
            frequency_cap: None,
            journal: None,
            node: None,
        }
    }
}

/// `[dispatch.rates]`: messages per second, per sender. Every outreach of a sender shares its rate.
///
/// ```toml
/// [dispatch.rates]
/// sms = 1.0          # a long code: carriers allow about one message a second
/// voice = 1.0
/// email = 20.0
/// [dispatch.rates.senders]
/// "+15550001234" = 100.0   # a short code (or any sender with its own limit)
/// ```
/// `inf` means unlimited.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateConfig {
    pub sms: f64,
    pub voice: f64,
    pub email: f64,
    /// By sender address (E.164 number or email address).
    pub senders: BTreeMap<String, f64>,
}

impl Default for RateConfig {
    fn default() -> Self {
        Self {
            sms: 1.0,
            voice: 1.0,
            email: 20.0,
            senders: BTreeMap::new(),
        }
    }
}

impl RateConfig {
    /// The rate of a sender: its own entry, else its channel's.
    pub fn for_sender(&self, sender: &Sender) -> f64 {
        let rate = self
            .senders
            .get(sender.address.as_str())
            .copied()
            .unwrap_or(match sender.channel {
                Channel::Sms => self.sms,
                Channel::Voice => self.voice,
                Channel::Email => self.email,
                Channel::Chat => f64::INFINITY,
            });
        if rate > 0.0 { rate } else { f64::INFINITY }
    }

    /// Every configured rate must be a positive number.
    pub fn validate(&self) -> Result<(), String> {
        let named = [
            ("sms", self.sms),
            ("voice", self.voice),
            ("email", self.email),
        ];
        for (name, rate) in named.into_iter().map(|(n, r)| (n.to_string(), r)).chain(
            self.senders
                .iter()
                .map(|(a, r)| (format!("senders.\"{a}\""), *r)),
        ) {
            if rate.is_nan() || rate <= 0.0 {
                return Err(format!(
                    "dispatch.rates.{name}: {rate} is not a rate; give messages per second above 0 (inf for unlimited)"
                ));
            }
        }
        Ok(())
    }
}

/// `[dispatch.daily_caps]`: the most a sender may send in a day, for carriers that cap a
/// number's messages per day (T-Mobile's daily limit for a 10DLC brand, say). Counted in the
/// rate's unit (messages, or SMS segments) by every node together; once a sender reaches its
/// cap, its recipients wait for the next day, which starts at midnight in `zone`.
///
/// ```toml
/// [dispatch.daily_caps]
/// zone = "America/New_York"
/// [dispatch.daily_caps.senders]
/// "+15550001234" = 2000
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DailyCapConfig {
    /// The IANA time zone whose midnight starts a new day.
    pub zone: String,
    /// By sender address (E.164 number or email address).
    pub senders: BTreeMap<String, u64>,
}

impl Default for DailyCapConfig {
    fn default() -> Self {
        Self {
            zone: "UTC".into(),
            senders: BTreeMap::new(),
        }
    }
}

impl DailyCapConfig {
    /// The cap of a sender, if it has one.
    pub fn for_sender(&self, sender: &Sender) -> Option<u64> {
        self.senders.get(sender.address.as_str()).copied()
    }

    /// The zone, which must be a known IANA name, and every cap at least 1.
    pub fn validate(&self) -> Result<jiff::tz::TimeZone, String> {
        let zone = jiff::tz::TimeZone::get(&self.zone).map_err(|_| {
            format!(
                "dispatch.daily_caps.zone: {:?} is not an IANA time zone (such as \"America/New_York\" or \"UTC\")",
                self.zone
            )
        })?;
        if let Some((address, _)) = self.senders.iter().find(|(_, cap)| **cap == 0) {
            return Err(format!(
                "dispatch.daily_caps.senders.\"{address}\": 0 would never send; give the messages a day, 1 or more"
            ));
        }
        Ok(zone)
    }
}

/// `[dispatch.frequency_cap]`: do not contact the same customer (address) more than `messages`
/// times in `days` days, counting the proactive messages of every outreach and sender on the
/// customer's timeline. A recipient over the cap is skipped with reason `frequency_cap` when
/// its turn comes. A campaign may have a cap of its own (`frequency_cap` of the campaign); a
/// recipient over either is skipped. Two outreaches sending to the same customer in the same
/// second may both pass it: the cap is checked when a batch is sent, not reserved.
///
/// ```toml
/// [dispatch.frequency_cap]
/// messages = 2
/// days = 7
/// ```
pub use herald_core::FrequencyCap;

impl DispatchConfig {
    /// Checks `[dispatch.frequency_cap]`, if there is one: at least one message in one to
    /// 3650 days.
    pub fn check_frequency_cap(&self) -> Result<(), String> {
        match &self.frequency_cap {
            None => Ok(()),
            Some(cap) => cap.check().map_err(|e| {
                format!(
                    "[dispatch.frequency_cap]: {e} (messages = {}, days = {}); remove the section \
                     to have no cap",
                    cap.messages, cap.days
                )
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frequency_cap_is_read_and_checked() {
        #[derive(Deserialize)]
        struct File {
            dispatch: DispatchConfig,
        }
        let f: File =
            serde_json::from_str(r#"{"dispatch": {"frequency_cap": {"messages": 2, "days": 7}}}"#)
                .unwrap();
        let cap = f.dispatch.frequency_cap.unwrap();
        assert_eq!(
            cap,
            FrequencyCap {
                messages: 2,
                days: 7
            }
        );
        assert_eq!(f.dispatch.check_frequency_cap(), Ok(()));
        let none = DispatchConfig {
            frequency_cap: Some(FrequencyCap {
                messages: 0,
                days: 7,
            }),
            ..DispatchConfig::default()
        };
        let why = none.check_frequency_cap().unwrap_err();
        assert!(
            why.starts_with("[dispatch.frequency_cap]: messages must be at least 1"),
            "{why}"
        );
        assert!(why.contains("(messages = 0, days = 7)"), "{why}");
        let long = DispatchConfig {
            frequency_cap: Some(FrequencyCap {
                messages: 1,
                days: 3651,
            }),
            ..DispatchConfig::default()
        };
        assert!(
            long.check_frequency_cap()
                .unwrap_err()
                .contains("days is 3651, more than ten years"),
        );
        let odd: Result<File, _> =
            serde_json::from_str(r#"{"dispatch": {"frequency_cap": {"messages": 2}}}"#);
        assert!(odd.is_err(), "days is required");
    }
}
