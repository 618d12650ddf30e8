//! Counters an operator of many nodes scrapes (`GET /metrics`, Prometheus text format): what the
//! dispatcher sent and how long sends took, its claims, lease renewals and recoveries, the waits
//! for a sender's rate, the rows imported and the webhook requests answered. Per process: each
//! node reports its own, and Prometheus sums them.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the send latency histogram, in seconds.
const LATENCY_BUCKETS: [f64; 10] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The counters of one process. Cheap to update from any task.
#[derive(Debug, Default)]
pub struct Metrics {
    /// (channel, provider, outcome) → messages.
    outcomes: Mutex<BTreeMap<(&'static str, &'static str, &'static str), u64>>,
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    latency_count: AtomicU64,
    latency_micros: AtomicU64,
    claims: AtomicU64,
    claimed: AtomicU64,
    renewals: AtomicU64,
    recovered: AtomicU64,
    /// Sender address → times the sender was out of tokens.
    rate_waits: Mutex<BTreeMap<String, u64>>,
    import_rows: AtomicU64,
    /// (webhook, status code) → requests.
    webhooks: Mutex<BTreeMap<(String, u16), u64>>,
}

fn bump<K: Ord>(map: &Mutex<BTreeMap<K, u64>>, key: K, n: u64) {
    let mut map = map
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    *map.entry(key).or_default() += n;
}

fn snapshot<K: Clone>(map: &Mutex<BTreeMap<K, u64>>) -> BTreeMap<K, u64> {
    map.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
}

/// A label value as Prometheus' text format wants it: `\`, `"` and newlines escaped.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// `n` messages of `channel` through `provider` ended their attempt as `outcome` (`sent`,
    /// `failed`, `retry`, `deferred`, `skipped`, `unknown`).
    pub fn messages(
        &self,
        channel: &'static str,
        provider: &'static str,
        outcome: &'static str,
        n: u64,
    ) {
        bump(&self.outcomes, (channel, provider, outcome), n);
    }

    /// One request to a provider took `took`.
    pub fn send_latency(&self, took: Duration) {
        let secs = took.as_secs_f64();
        for (bound, count) in LATENCY_BUCKETS.iter().zip(&self.latency_buckets) {
            if secs <= *bound {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.latency_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// A claim took `n` recipients.
    pub fn claim(&self, n: usize) {
        self.claims.fetch_add(1, Ordering::Relaxed);
        self.claimed
            .fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// A batch's lease was renewed.
    pub fn lease_renewed(&self) {
        self.renewals.fetch_add(1, Ordering::Relaxed);
    }

    /// Recipients of a dead node's claims were resolved.
    pub fn leases_recovered(&self, n: u64) {
        self.recovered.fetch_add(n, Ordering::Relaxed);
    }

    /// The sender was out of tokens.
    pub fn rate_wait(&self, sender: &str) {
        bump(&self.rate_waits, sender.to_string(), 1);
    }

    /// An upload's rows were read into an outreach.
    pub fn imported(&self, rows: u64) {
        self.import_rows.fetch_add(rows, Ordering::Relaxed);
    }

    /// A provider's webhook request (`webhook` names it, as `twilio/sms`) was answered `status`.
    pub fn webhook(&self, webhook: &str, status: u16) {
        bump(&self.webhooks, (webhook.to_string(), status), 1);
    }

    /// The counters in Prometheus' text format, with `due` (recipients due and waiting in the
    /// whole database, read by the caller) as a gauge.
    pub fn render(&self, due: Option<u64>) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP herald_messages_total Send attempts by channel, provider and outcome.\n\
             # TYPE herald_messages_total counter"
        );
        let outcomes = snapshot(&self.outcomes);
        for ((channel, provider, outcome), n) in outcomes {
            let _ = writeln!(
                out,
                "herald_messages_total{{channel=\"{}\",provider=\"{}\",outcome=\"{outcome}\"}} {n}",
                label(channel),
                label(provider)
            );
        }
        let _ = writeln!(
            out,
            "# HELP herald_send_duration_seconds How long a provider took to answer a send.\n\
             # TYPE herald_send_duration_seconds histogram"
        );
        for (bound, count) in LATENCY_BUCKETS.iter().zip(&self.latency_buckets) {
            let _ = writeln!(
                out,
                "herald_send_duration_seconds_bucket{{le=\"{bound}\"}} {}",
                count.load(Ordering::Relaxed)
            );
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "herald_send_duration_seconds_bucket{{le=\"+Inf\"}} {count}\n\
             herald_send_duration_seconds_sum {}\n\
             herald_send_duration_seconds_count {count}",
            self.latency_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        for (name, help, value) in [
            (
                "herald_claims_total",
                "Batches of due recipients claimed.",
                &self.claims,
            ),
            (
                "herald_claimed_recipients_total",
                "Recipients claimed.",
                &self.claimed,
            ),
            (
                "herald_lease_renewals_total",
                "Leases of live batches renewed.",
                &self.renewals,
            ),
            (
                "herald_lease_recoveries_total",
                "Recipients of expired leases (a dead node's claims) resolved.",
                &self.recovered,
            ),
            (
                "herald_import_rows_total",
                "Rows of uploaded recipient lists read into outreaches.",
                &self.import_rows,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                value.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP herald_rate_limit_waits_total Times a sender was out of tokens.\n\
             # TYPE herald_rate_limit_waits_total counter"
        );
        let waits = snapshot(&self.rate_waits);
        for (sender, n) in waits {
            let _ = writeln!(
                out,
                "herald_rate_limit_waits_total{{sender=\"{}\"}} {n}",
                label(&sender)
            );
        }
        let _ = writeln!(
            out,
            "# HELP herald_webhook_requests_total Provider webhook requests by webhook and status.\n\
             # TYPE herald_webhook_requests_total counter"
        );
        let hooks = snapshot(&self.webhooks);
        for ((hook, status), n) in hooks {
            let _ = writeln!(
                out,
                "herald_webhook_requests_total{{webhook=\"{}\",status=\"{status}\"}} {n}",
                label(&hook)
            );
        }
        if let Some(due) = due {
            let _ = writeln!(
                out,
                "# HELP herald_due_recipients Recipients of outreaches in progress that are due and waiting.\n\
                 # TYPE herald_due_recipients gauge\nherald_due_recipients {due}"
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_format_names_each_series_once_with_escaped_labels() {
        let m = Metrics::new();
        m.messages("sms", "twilio", "sent", 1);
        m.messages("sms", "twilio", "sent", 1);
        m.messages("email", "smtp", "failed", 1);
        m.send_latency(Duration::from_millis(30));
        m.send_latency(Duration::from_secs(3));
        m.claim(50);
        m.rate_wait("+1415 \"x\"");
        m.webhook("twilio/sms", 204);
        let text = m.render(Some(7));
        assert!(text.contains(
            "herald_messages_total{channel=\"sms\",provider=\"twilio\",outcome=\"sent\"} 2\n"
        ));
        assert!(text.contains("outcome=\"failed\"} 1\n"));
        assert!(text.contains("herald_send_duration_seconds_bucket{le=\"0.025\"} 0\n"));
        assert!(text.contains("herald_send_duration_seconds_bucket{le=\"0.05\"} 1\n"));
        assert!(text.contains("herald_send_duration_seconds_bucket{le=\"5\"} 2\n"));
        assert!(text.contains("herald_send_duration_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(text.contains("herald_send_duration_seconds_sum 3.03\n"));
        assert!(text.contains("herald_claimed_recipients_total 50\n"));
        assert!(text.contains("herald_rate_limit_waits_total{sender=\"+1415 \\\"x\\\"\"} 1\n"));
        assert!(
            text.contains(
                "herald_webhook_requests_total{webhook=\"twilio/sms\",status=\"204\"} 1\n"
            )
        );
        assert!(text.contains("herald_due_recipients 7\n"));
        assert_eq!(
            text.matches("# TYPE herald_messages_total counter").count(),
            1
        );
    }
}
