//! Token buckets: the one [`Bucket`] every rate limit uses (here the per-client-address limit of
//! the expensive unauthenticated endpoints, registration and login, each an argon2 hash; in the
//! chat core the per-user sends, typing and membership changes). A bucket holds a window's worth
//! and refills continuously, so bursts are allowed and sustained abuse is refused.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

pub struct RateLimiter {
    per_minute: u32,
    /// Bucket times are milliseconds since this instant.
    epoch: Instant,
    buckets: HashMap<IpAddr, Bucket>,
}

const MINUTE_MS: u64 = 60_000;

/// A token bucket refilled continuously at `capacity` per window, holding at most a window's
/// worth; times are milliseconds on any clock that does not go back.
#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    tokens: f64,
    at_ms: u64,
}

impl Bucket {
    /// A full bucket, whatever the rate and the time of its first use (the level is capped at
    /// the capacity).
    pub const FULL: Bucket = Bucket {
        tokens: f64::INFINITY,
        at_ms: 0,
    };

    /// Takes one token of a bucket refilled at `rate` a second; false when none is left.
    /// `rate` 0 means no limit.
    pub fn take(&mut self, rate: u32, now_ms: u64) -> bool {
        self.take_per(rate, 1000, now_ms)
    }

    /// Takes one token of a bucket refilled at `capacity` per `window_ms`.
    pub fn take_per(&mut self, capacity: u32, window_ms: u64, now_ms: u64) -> bool {
        if capacity == 0 {
            return true;
        }
        self.tokens = self.level(capacity, window_ms, now_ms);
        self.at_ms = self.at_ms.max(now_ms);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl Bucket {
    /// Milliseconds until the bucket holds a token again.
    pub fn wait_ms(&self, capacity: u32, window_ms: u64, now_ms: u64) -> u64 {
        let missing = 1.0 - self.level(capacity, window_ms, now_ms);
        (missing.max(0.0) * window_ms as f64 / f64::from(capacity)).ceil() as u64
    }

    /// The tokens the bucket holds at `now_ms`.
    pub fn level(&self, capacity: u32, window_ms: u64, now_ms: u64) -> f64 {
        let capacity = f64::from(capacity);
        let elapsed = now_ms.saturating_sub(self.at_ms) as f64;
        (self.tokens + elapsed * capacity / window_ms as f64).min(capacity)
    }
}

impl RateLimiter {
    /// `per_minute` 0 switches limiting off.
    pub fn new(per_minute: u32) -> RateLimiter {
        RateLimiter {
            per_minute,
            epoch: Instant::now(),
            buckets: HashMap::new(),
        }
    }

    /// Takes one attempt for `ip`, or says how long until one is available.
    pub fn check(&mut self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let now_ms = self.ms(now);
        let bucket = self.buckets.entry(ip).or_insert(Bucket::FULL);
        if bucket.take_per(self.per_minute, MINUTE_MS, now_ms) {
            Ok(())
        } else {
            Err(Duration::from_millis(bucket.wait_ms(
                self.per_minute,
                MINUTE_MS,
                now_ms,
            )))
        }
    }

    /// Drops buckets that have refilled completely, so the map does not grow without bound.
    pub fn forget_full(&mut self, now: Instant) {
        let (per_minute, now_ms) = (self.per_minute, self.ms(now));
        let capacity = f64::from(per_minute);
        self.buckets
            .retain(|_, bucket| bucket.level(per_minute, MINUTE_MS, now_ms) < capacity);
    }

    /// Rounded up, so that an instant taken just before the limiter was made still counts a
    /// whole window later as a whole window.
    fn ms(&self, now: Instant) -> u64 {
        (now.saturating_duration_since(self.epoch).as_micros() as u64).div_ceil(1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_a_burst_then_refills() {
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let start = Instant::now();
        let mut limiter = RateLimiter::new(60);
        for _ in 0..60 {
            assert!(limiter.check(ip, start).is_ok());
        }
        let wait = limiter.check(ip, start).unwrap_err();
        assert!(wait <= Duration::from_secs(1) && wait > Duration::from_millis(900));
        assert!(limiter.check(ip, start + Duration::from_secs(1)).is_ok());
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(limiter.check(other, start).is_ok());
    }

    #[test]
    fn zero_means_off() {
        let mut limiter = RateLimiter::new(0);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..1000 {
            assert!(limiter.check(ip, Instant::now()).is_ok());
        }
    }

    #[test]
    fn forgets_full_buckets() {
        let mut limiter = RateLimiter::new(60);
        let start = Instant::now();
        limiter.check("192.0.2.1".parse().unwrap(), start).unwrap();
        limiter.forget_full(start);
        assert_eq!(limiter.buckets.len(), 1);
        limiter.forget_full(start + Duration::from_secs(2));
        assert_eq!(limiter.buckets.len(), 0);
    }
}
