//! The server clock: the `seq` of every stored event (the exact sync cursor: strictly increasing
//! across the whole server, never handed out twice) and the `timestamp` of every event (the wall
//! clock, never ahead of it, never decreasing).

use std::time::{SystemTime, UNIX_EPOCH};

/// Wall-clock milliseconds since the Unix epoch.
pub fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Where a stored event stands: its place in the server's one order, and when it was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub seq: u64,
    pub timestamp: u64,
}

/// Hands out seqs (the last one plus one) and timestamps (the wall clock, or the last timestamp
/// while the wall clock is behind it, after a step back).
#[derive(Debug)]
pub struct Clock {
    seq: u64,
    time: u64,
}

impl Clock {
    /// `seq` is the highest seq that may have been handed out before (the store's ceiling);
    /// `time` the last timestamp stored, so that timestamps keep their order across a restart
    /// even if the wall clock went back.
    pub fn new(seq: u64, time: u64) -> Self {
        Clock { seq, time }
    }

    /// The stamp of a stored event made now.
    pub fn stamp(&mut self, wall_ms: u64) -> Stamp {
        self.seq += 1;
        Stamp {
            seq: self.seq,
            timestamp: self.now(wall_ms),
        }
    }

    /// The timestamp of an event made now (transient events take no seq).
    pub fn now(&mut self, wall_ms: u64) -> u64 {
        self.time = self.time.max(wall_ms);
        self.time
    }

    /// The last seq handed out.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The last timestamp handed out.
    pub fn time(&self) -> u64 {
        self.time
    }

    /// Takes back the seqs handed out after `seq`, which nothing carries (a retried send's).
    pub fn give_back(&mut self, seq: u64) {
        debug_assert!(seq <= self.seq);
        self.seq = seq;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_events_in_one_millisecond_share_it_and_get_the_next_seqs() {
        let mut clock = Clock::new(0, 0);
        let stamps: Vec<Stamp> = (0..3).map(|_| clock.stamp(1000)).collect();
        assert_eq!(
            stamps,
            [1, 2, 3].map(|seq| Stamp {
                seq,
                timestamp: 1000
            })
        );
        assert_eq!(
            clock.stamp(1500),
            Stamp {
                seq: 4,
                timestamp: 1500
            }
        );
    }

    /// A wall clock that steps back holds timestamps at the last one until it catches up;
    /// seqs go on from the ceiling after a restart.
    #[test]
    fn never_goes_backwards_after_restart_or_clock_step() {
        let mut clock = Clock::new(70_000, 5000);
        assert_eq!(
            clock.stamp(1000),
            Stamp {
                seq: 70_001,
                timestamp: 5000
            }
        );
        assert_eq!(clock.now(4000), 5000);
        assert_eq!(clock.now(6000), 6000);
        clock.give_back(70_000);
        assert_eq!(clock.stamp(6000).seq, 70_001);
    }
}
