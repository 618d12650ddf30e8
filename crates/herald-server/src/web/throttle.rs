//! Slows down password guessing: after [`MAX_FAILURES`] failed sign-ins for one email address
//! within [`WINDOW`], that address cannot sign in until the window has passed since the last
//! failure. Checked before the password is (so a guesser also costs no argon2 work). Kept in
//! memory, per Herald instance.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failed sign-ins allowed per address within [`WINDOW`].
pub const MAX_FAILURES: u32 = 5;
/// How long failures are remembered, and how long a locked address waits.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Addresses remembered before expired entries are swept.
const SWEEP_AT: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

/// Failed sign-ins by (lower-cased) email address.
#[derive(Debug, Default)]
pub struct LoginThrottle {
    by_email: Mutex<HashMap<String, Failures>>,
}

impl LoginThrottle {
    pub fn new() -> Self {
        Self::default()
    }

    fn key(email: &str) -> String {
        email.trim().to_lowercase()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Failures>> {
        self.by_email
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `Err(wait)` while the address is locked out.
    pub fn check(&self, email: &str, now: Instant) -> Result<(), Duration> {
        let map = self.lock();
        match map.get(&Self::key(email)) {
            Some(f) if f.count >= MAX_FAILURES => {
                let since = now.saturating_duration_since(f.last);
                if since < WINDOW {
                    Err(WINDOW - since)
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }

    /// Counts a failed sign-in (failures older than the window start the count over).
    pub fn failed(&self, email: &str, now: Instant) {
        let mut map = self.lock();
        if map.len() >= SWEEP_AT {
            map.retain(|_, f| now.saturating_duration_since(f.last) < WINDOW);
        }
        let entry = map.entry(Self::key(email)).or_insert(Failures {
            count: 0,
            last: now,
        });
        if now.saturating_duration_since(entry.last) >= WINDOW {
            entry.count = 0;
        }
        entry.count += 1;
        entry.last = now;
    }

    /// A successful sign-in forgets the address's failures.
    pub fn succeeded(&self, email: &str) {
        self.lock().remove(&Self::key(email));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_failures_lock_the_address_for_the_window() {
        let t = LoginThrottle::new();
        let start = Instant::now();
        for i in 0..MAX_FAILURES {
            assert!(t.check("Ann@Example.com", start).is_ok(), "attempt {i}");
            t.failed("ann@example.com", start);
        }
        let wait = t.check("ANN@example.com", start).unwrap_err();
        assert_eq!(wait, WINDOW);
        // Another address is not affected.
        assert!(t.check("bob@example.com", start).is_ok());
        // Still locked a minute before the window ends; free after it.
        assert!(
            t.check("ann@example.com", start + WINDOW - Duration::from_secs(60))
                .is_err()
        );
        assert!(t.check("ann@example.com", start + WINDOW).is_ok());
    }

    #[test]
    fn old_failures_and_a_success_start_the_count_over() {
        let t = LoginThrottle::new();
        let start = Instant::now();
        for _ in 0..MAX_FAILURES - 1 {
            t.failed("ann@example.com", start);
        }
        // One more, but long after: the count starts over at 1.
        t.failed("ann@example.com", start + WINDOW);
        assert!(t.check("ann@example.com", start + WINDOW).is_ok());
        for _ in 0..MAX_FAILURES {
            t.failed("bob@example.com", start);
        }
        t.succeeded("bob@example.com");
        assert!(t.check("bob@example.com", start).is_ok());
    }
}
