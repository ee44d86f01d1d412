//! Per-client-address token buckets for the expensive unauthenticated endpoints (registration
//! and login, each an argon2 hash). A bucket holds a minute's worth of attempts and refills
//! continuously, so bursts are allowed and sustained abuse gets 429 with `Retry-After`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

pub struct RateLimiter {
    per_minute: u32,
    buckets: HashMap<IpAddr, Bucket>,
}

struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl RateLimiter {
    /// `per_minute` 0 switches limiting off.
    pub fn new(per_minute: u32) -> RateLimiter {
        RateLimiter {
            per_minute,
            buckets: HashMap::new(),
        }
    }

    /// Takes one attempt for `ip`, or says how long until one is available.
    pub fn check(&mut self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let capacity = f64::from(self.per_minute);
        let per_second = capacity / 60.0;
        let bucket = self.buckets.entry(ip).or_insert(Bucket {
            tokens: capacity,
            updated: now,
        });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * per_second).min(capacity);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / per_second))
        }
    }

    /// Drops buckets that have refilled completely, so the map does not grow without bound.
    pub fn forget_full(&mut self, now: Instant) {
        let capacity = f64::from(self.per_minute);
        let per_second = capacity / 60.0;
        self.buckets.retain(|_, bucket| {
            let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
            bucket.tokens + elapsed * per_second < capacity
        });
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
