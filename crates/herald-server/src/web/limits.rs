//! Bounds on the work that the public sign-in and setup forms can cause, whoever sends them:
//!
//! - [`HashGate`]: at most [`SignInLimits::concurrent_hashes`] argon2 hashes or verifications
//!   run at once (each takes 19 MiB and a core for a moment); a few more requests may wait
//!   [`SignInLimits::hash_wait`] for one; beyond that the answer is 503 with `Retry-After`.
//! - [`AddressLimiter`]: at most [`SignInLimits::attempts_per_minute`] `POST /login` and
//!   `POST /setup/{token}` per client address (a token bucket); beyond that 429 with
//!   `Retry-After`. The client address is the TCP peer's ([`ClientAddr`]): behind a reverse
//!   proxy every client shares the proxy's address, so rate-limit at the proxy too.
//! - The per-account lockout ([`SignInLimits::max_failures`] attempts per
//!   [`SignInLimits::lockout`]) lives in the database (`Accounts::reserve_login_attempt`), so it
//!   holds across Herald processes and is counted before the password is checked.

use axum::extract::ConnectInfo;
use axum::http::request::Parts;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, SemaphorePermit};

/// The limits of signing in and of setup links (`[sign_in]` in the configuration).
#[derive(Debug, Clone)]
pub struct SignInLimits {
    /// Password hashes or verifications running at once.
    pub concurrent_hashes: usize,
    /// How many more requests may wait for a hash slot (beyond: 503 at once).
    pub hash_queue: usize,
    /// How long a request waits for a hash slot before it gets 503.
    pub hash_wait: Duration,
    /// Sign-in and setup form posts per client address and minute (a burst of as many).
    pub attempts_per_minute: u32,
    /// Sign-in attempts per email address before it is locked out.
    pub max_failures: u32,
    /// How long the attempts are remembered and an address stays locked after the last one.
    pub lockout: Duration,
}

/// The default number of concurrent password hashes: the machine's cores.
pub fn default_concurrent_hashes() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from)
}

impl Default for SignInLimits {
    fn default() -> Self {
        let hashes = default_concurrent_hashes();
        Self {
            concurrent_hashes: hashes,
            hash_queue: hashes * 4,
            hash_wait: Duration::from_secs(2),
            attempts_per_minute: 20,
            max_failures: 5,
            lockout: Duration::from_secs(15 * 60),
        }
    }
}

// ---------------------------------------------------------------- client address

/// The address of the client a request came from: the TCP peer (set by [`crate::serve`] as
/// axum's `ConnectInfo`); the unspecified address when the server was started without it (then
/// every client shares one rate-limit bucket).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.ip()),
        ))
    }
}

// ---------------------------------------------------------------- hash gate

/// The hash gate is full: answer 503 with `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

/// Bounds the argon2 work in flight (see the module's documentation).
#[derive(Debug)]
pub struct HashGate {
    permits: Semaphore,
    waiting: AtomicUsize,
    max_waiting: usize,
    wait: Duration,
}

/// Decrements the waiting count when the wait ends, however it ends.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl HashGate {
    pub fn new(limits: &SignInLimits) -> Self {
        Self {
            permits: Semaphore::new(limits.concurrent_hashes.max(1)),
            waiting: AtomicUsize::new(0),
            max_waiting: limits.hash_queue,
            wait: limits.hash_wait,
        }
    }

    /// A slot for one hash: at once if one is free, else after waiting in a bounded queue for
    /// a bounded time; [`Busy`] otherwise.
    pub async fn enter(&self) -> Result<SemaphorePermit<'_>, Busy> {
        if let Ok(permit) = self.permits.try_acquire() {
            return Ok(permit);
        }
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.max_waiting {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(Busy);
        }
        let _waiting = Waiting(&self.waiting);
        match tokio::time::timeout(self.wait, self.permits.acquire()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(Busy),
        }
    }

    /// Runs `work` (a hash or a verification) on the blocking pool while holding a slot.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<Option<T>, Busy> {
        let _permit = self.enter().await?;
        Ok(tokio::task::spawn_blocking(work).await.ok())
    }
}

// ---------------------------------------------------------------- per-address rate

/// Addresses tracked at most; when full, addresses whose bucket is full again are forgotten,
/// and if none is, a new address is refused until some are.
const MAX_ADDRESSES: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// A token bucket per client address (IPv6 addresses by their /64, which one client usually
/// holds whole).
#[derive(Debug)]
pub struct AddressLimiter {
    per_minute: u32,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl AddressLimiter {
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute: per_minute.max(1),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn key(addr: IpAddr) -> IpAddr {
        match addr {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => {
                    let s = v6.segments();
                    IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
                }
            },
            v4 => v4,
        }
    }

    /// Takes one attempt for the address: `Err(wait)` when it has none left.
    pub fn check(&self, addr: IpAddr, now: Instant) -> Result<(), Duration> {
        let capacity = f64::from(self.per_minute);
        let per_sec = capacity / 60.0;
        let refill = |b: &Bucket| {
            (b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * per_sec).min(capacity)
        };
        let mut map = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = Self::key(addr);
        if !map.contains_key(&key) && map.len() >= MAX_ADDRESSES {
            map.retain(|_, b| refill(b) < capacity);
            if map.len() >= MAX_ADDRESSES {
                return Err(Duration::from_secs(60));
            }
        }
        let bucket = map.entry(key).or_insert(Bucket {
            tokens: capacity,
            at: now,
        });
        bucket.tokens = refill(bucket);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let secs = ((1.0 - bucket.tokens) / per_sec).ceil().max(1.0);
            Err(Duration::from_secs_f64(secs))
        }
    }
}

/// What the sign-in and setup handlers share.
#[derive(Debug)]
pub struct SignInGuard {
    pub limits: SignInLimits,
    pub hashes: HashGate,
    pub addresses: AddressLimiter,
}

impl SignInGuard {
    pub fn new(limits: SignInLimits) -> Self {
        Self {
            hashes: HashGate::new(&limits),
            addresses: AddressLimiter::new(limits.attempts_per_minute),
            limits,
        }
    }
}

impl Default for SignInGuard {
    fn default() -> Self {
        Self::new(SignInLimits::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_address_gets_its_burst_then_waits() {
        let limiter = AddressLimiter::new(3);
        let start = Instant::now();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            assert!(limiter.check(a, start).is_ok());
        }
        let wait = limiter.check(a, start).unwrap_err();
        assert_eq!(
            wait,
            Duration::from_secs(20),
            "one attempt comes back every 20 s"
        );
        assert!(
            limiter.check(b, start).is_ok(),
            "another address has its own"
        );
        assert!(limiter.check(a, start + Duration::from_secs(20)).is_ok());
        assert!(limiter.check(a, start + Duration::from_secs(20)).is_err());
    }

    #[test]
    fn an_ipv6_client_is_its_64() {
        let limiter = AddressLimiter::new(1);
        let now = Instant::now();
        assert!(limiter.check("2001:db8::1".parse().unwrap(), now).is_ok());
        assert!(
            limiter
                .check("2001:db8::ffff:1".parse().unwrap(), now)
                .is_err()
        );
        assert!(
            limiter
                .check("2001:db8:0:1::1".parse().unwrap(), now)
                .is_ok()
        );
    }

    #[tokio::test]
    async fn the_gate_admits_its_slots_and_a_bounded_queue() {
        let gate = HashGate::new(&SignInLimits {
            concurrent_hashes: 1,
            hash_queue: 1,
            hash_wait: Duration::from_millis(50),
            ..SignInLimits::default()
        });
        let held = gate.enter().await.expect("a free slot");
        // One may wait (and times out), a second is refused at once.
        let (waited, refused) = tokio::join!(gate.enter(), async {
            tokio::task::yield_now().await;
            gate.enter().await
        });
        assert_eq!(waited.err(), Some(Busy));
        assert_eq!(refused.err(), Some(Busy));
        drop(held);
        assert!(gate.enter().await.is_ok());
    }
}
