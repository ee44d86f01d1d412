//! The server clock: millisecond timestamps that are unique and strictly increasing across the
//! whole server, so that a timestamp is an exact sync cursor (protocol decision 4).

use std::time::{SystemTime, UNIX_EPOCH};

/// Wall-clock milliseconds since the Unix epoch.
pub fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Hands out unique timestamps: the wall clock, or the last one plus one when the wall clock has
/// not moved past it (several events in one millisecond, or a clock stepped backwards).
#[derive(Debug)]
pub struct Clock {
    last: u64,
}

impl Clock {
    /// `floor` is the last timestamp ever issued (persisted by the store), so that restarts keep
    /// the order even if the wall clock went backwards.
    pub fn new(floor: u64) -> Self {
        Clock { last: floor }
    }

    pub fn next(&mut self, wall_ms: u64) -> u64 {
        self.last = wall_ms.max(self.last + 1);
        self.last
    }

    pub fn last(&self) -> u64 {
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_millisecond_gets_the_next_one() {
        let mut clock = Clock::new(0);
        assert_eq!(clock.next(1000), 1000);
        assert_eq!(clock.next(1000), 1001);
        assert_eq!(clock.next(1000), 1002);
        assert_eq!(clock.next(1500), 1500);
    }

    #[test]
    fn never_goes_backwards_after_restart_or_clock_step() {
        let mut clock = Clock::new(5000);
        assert_eq!(clock.next(1000), 5001);
        assert_eq!(clock.last(), 5001);
    }
}
