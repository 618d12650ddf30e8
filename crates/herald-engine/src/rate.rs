//! Per-sender rate limits: a token bucket per sender, shared by every outreach that uses it.
//!
//! The dispatcher never waits inside a send: before claiming recipients it asks how many sends
//! the sender's bucket allows right now ([`RateLimiter::available`]), claims at most that many,
//! and takes a token for each message it really sends ([`RateLimiter::take`]). A bucket holds at
//! most one second of tokens, so a sender that was idle cannot burst past its rate for long.

use jiff::Timestamp;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use uuid::Uuid;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    rate: f64,
    tokens: f64,
    at: Timestamp,
}

impl Bucket {
    fn refill(&mut self, now: Timestamp, rate: f64) {
        self.rate = rate;
        let burst = rate.max(1.0);
        let elapsed = now.duration_since(self.at).as_secs_f64();
        if elapsed > 0.0 {
            self.tokens = (self.tokens + elapsed * rate).min(burst);
            self.at = now;
        } else if self.tokens > burst {
            self.tokens = burst;
        }
    }
}

/// Token buckets by sender id. `rate` is messages per second; `f64::INFINITY` is unlimited.
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<Uuid, Bucket>>,
}

impl RateLimiter {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many messages the sender may send at `now` (capped at `want`).
    pub fn available(&self, sender: Uuid, rate: f64, now: Timestamp, want: u32) -> u32 {
        if !rate.is_finite() {
            return want;
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = buckets.entry(sender).or_insert(Bucket {
            rate,
            tokens: rate.max(1.0),
            at: now,
        });
        bucket.refill(now, rate);
        // Truncation is the point: whole messages only.
        (bucket.tokens.floor().max(0.0) as u64).min(u64::from(want)) as u32
    }

    /// Spends `n` tokens of the sender (one per message sent).
    pub fn take(&self, sender: Uuid, rate: f64, now: Timestamp, n: u32) {
        if !rate.is_finite() || n == 0 {
            return;
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = buckets.entry(sender).or_insert(Bucket {
            rate,
            tokens: rate.max(1.0),
            at: now,
        });
        bucket.refill(now, rate);
        bucket.tokens -= f64::from(n);
    }

    /// How long until the sender has a token again (zero if it has one now).
    pub fn wait(&self, sender: Uuid, now: Timestamp) -> Duration {
        let buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let Some(b) = buckets.get(&sender) else {
            return Duration::ZERO;
        };
        if !b.rate.is_finite() || b.rate <= 0.0 {
            return Duration::ZERO;
        }
        let elapsed = now.duration_since(b.at).as_secs_f64().max(0.0);
        let tokens = b.tokens + elapsed * b.rate;
        if tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - tokens) / b.rate)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::SignedDuration;

    #[test]
    fn one_per_second_allows_one_per_second() {
        let r = RateLimiter::new();
        let s = Uuid::from_u128(1);
        let t0: Timestamp = "2026-03-02T14:00:00Z".parse().unwrap();
        assert_eq!(r.available(s, 1.0, t0, 10), 1);
        r.take(s, 1.0, t0, 1);
        assert_eq!(r.available(s, 1.0, t0, 10), 0);
        assert_eq!(r.wait(s, t0), Duration::from_secs(1));
        let half = t0 + SignedDuration::from_millis(500);
        assert_eq!(r.available(s, 1.0, half, 10), 0);
        let later = t0 + SignedDuration::from_secs(1);
        assert_eq!(r.available(s, 1.0, later, 10), 1);
        // An idle sender does not save up more than a second's worth.
        let much_later = t0 + SignedDuration::from_secs(3600);
        assert_eq!(r.available(s, 1.0, much_later, 10), 1);
    }

    #[test]
    fn rates_are_per_sender_and_unlimited_is_unlimited() {
        let r = RateLimiter::new();
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let t0: Timestamp = "2026-03-02T14:00:00Z".parse().unwrap();
        assert_eq!(r.available(a, 20.0, t0, 100), 20);
        r.take(a, 20.0, t0, 20);
        assert_eq!(r.available(a, 20.0, t0, 100), 0);
        assert_eq!(r.available(b, 20.0, t0, 100), 20);
        assert_eq!(r.available(a, f64::INFINITY, t0, 100), 100);
        let t1 = t0 + SignedDuration::from_millis(100);
        assert_eq!(r.available(a, 20.0, t1, 100), 2);
    }
}
