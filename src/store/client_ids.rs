//! Which message each recent send with a client `id` stored, so that a retry is answered with
//! the original ack: an index in memory, rebuilt from the log when the store opens.
//!
//! The log entry of a send already holds its client id (see [`super::log`]), so the index needs
//! no durable copy of its own. Until store format 4 every send also wrote a record keyed by
//! (user, id) into sled: a scattered key, which cost the flusher about 1,200 bytes of log per
//! message and held `fanout` with ids at a third of its speed without them (docs/BENCHMARKS.md).
//!
//! Retries are recognised for at least the window (24 hours by default, the protocol's minimum).
//! Sends are kept in generations a quarter of the window long; a generation is dropped once every
//! send in it is older than the window, so memory holds between one window and one and a quarter
//! of sends. When `max_entries` are held, [`RecentSends::insert`] refuses, and the store writes
//! that send's record into its `client_ids` table as it used to: slower, but never forgotten.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher, RandomState};

use uuid::Uuid;

/// How long retries are recognised, and how many sends the index holds at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIdLimits {
    pub window_ms: u64,
    pub max_entries: usize,
}

impl ClientIdLimits {
    pub const DAY_MS: u64 = 24 * 60 * 60 * 1000;
    /// About 60 MiB when full (a slot is 41 bytes, and a table is at least 7/16 full).
    pub const DEFAULT: ClientIdLimits = ClientIdLimits {
        window_ms: Self::DAY_MS,
        max_entries: 1_000_000,
    };
}

/// What a retry is answered with: the ack is rendered again from these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    pub message_id: Uuid,
    pub ack_ts: u64,
}

/// 128 bits of keyed SipHash over (user, id). The keys are drawn at each start, so nobody can
/// pick ids that collide; by chance, two of a million sends share one with probability 10^-27.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fingerprint(u64, u64);

impl Hash for Fingerprint {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Already uniformly random: half of it is the table's hash.
        state.write_u64(self.0);
    }
}

/// Passes a fingerprint's first half through as its hash.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn write(&mut self, _: &[u8]) {
        unreachable!("only fingerprints are hashed here, with write_u64");
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type Shard = HashMap<Fingerprint, Sent, BuildHasherDefault<PassThrough>>;

/// A generation's sends are spread over this many tables. A table that grows rehashes all of
/// itself at once, on the loop thread: one table of 250,000 sends took 10 ms here, a stall every
/// connection would feel; a shard grows by a 64th of that.
const SHARDS: usize = 64;

/// Sends from `start_ts` until the next generation's start.
struct Generation {
    start_ts: u64,
    /// The newest send's: once the window has passed it, the generation goes.
    newest_ts: u64,
    shards: Vec<Shard>,
    len: usize,
}

impl Fingerprint {
    /// Which shard of a generation holds it: picked by the second half (the first is the
    /// table's hash).
    fn shard(&self) -> usize {
        self.1 as usize % SHARDS
    }
}

pub struct RecentSends {
    limits: ClientIdLimits,
    keys: (RandomState, RandomState),
    /// Oldest first.
    generations: VecDeque<Generation>,
    len: usize,
}

impl RecentSends {
    pub fn new(limits: ClientIdLimits) -> RecentSends {
        RecentSends {
            limits,
            keys: (RandomState::new(), RandomState::new()),
            generations: VecDeque::new(),
            len: 0,
        }
    }

    fn fingerprint(&self, user: Uuid, client_id: &str) -> Fingerprint {
        let key = (user, client_id);
        Fingerprint(self.keys.0.hash_one(key), self.keys.1.hash_one(key))
    }

    pub fn get(&self, user: Uuid, client_id: &str) -> Option<Sent> {
        let fingerprint = self.fingerprint(user, client_id);
        self.generations
            .iter()
            .rev()
            .find_map(|generation| generation.shards[fingerprint.shard()].get(&fingerprint))
            .copied()
    }

    /// Records a send stored at `ts` (timestamps come in increasing order, except while the
    /// index is rebuilt), and drops the generations the window has passed. False when the index
    /// is full: the caller must keep the record elsewhere.
    pub fn insert(&mut self, user: Uuid, client_id: &str, ts: u64, sent: Sent) -> bool {
        let horizon = ts.saturating_sub(self.limits.window_ms);
        while self
            .generations
            .front()
            .is_some_and(|oldest| oldest.newest_ts < horizon)
        {
            let expired = self.generations.pop_front().expect("just seen");
            self.len -= expired.len;
        }
        if self.len >= self.limits.max_entries {
            return false;
        }
        let span = (self.limits.window_ms / 4).max(1);
        if self
            .generations
            .back()
            .is_none_or(|newest| ts >= newest.start_ts.saturating_add(span))
        {
            // Sized like the last one, so that it seldom grows.
            let expected = self
                .generations
                .back()
                .map_or(0, |newest| newest.len / SHARDS);
            let shard = || Shard::with_capacity_and_hasher(expected, Default::default());
            self.generations.push_back(Generation {
                start_ts: ts,
                newest_ts: ts,
                shards: (0..SHARDS).map(|_| shard()).collect(),
                len: 0,
            });
        }
        let fingerprint = self.fingerprint(user, client_id);
        let newest = self.generations.back_mut().expect("just made sure");
        newest.newest_ts = newest.newest_ts.max(ts);
        if newest.shards[fingerprint.shard()]
            .insert(fingerprint, sent)
            .is_none()
        {
            newest.len += 1;
            self.len += 1;
        }
        true
    }

    /// Sends held.
    pub fn held(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: u64 = 60 * 60 * 1000;

    fn sent(n: u128) -> Sent {
        Sent {
            message_id: Uuid::from_u128(n),
            ack_ts: n as u64,
        }
    }

    #[test]
    fn finds_a_send_by_user_and_id_only() {
        let mut recent = RecentSends::new(ClientIdLimits::DEFAULT);
        let (alice, bob) = (Uuid::from_u128(1), Uuid::from_u128(2));
        assert!(recent.insert(alice, "c-1", 1000, sent(7)));
        assert_eq!(recent.get(alice, "c-1"), Some(sent(7)));
        assert_eq!(recent.get(bob, "c-1"), None);
        assert_eq!(recent.get(alice, "c-2"), None);
        assert_eq!(recent.get(alice, "c-"), None);
        assert_eq!(recent.held(), 1);
        // Many sends, over every shard: each found with its own record.
        for n in 0..10_000u64 {
            assert!(recent.insert(bob, &n.to_string(), 2000 + n, sent(n.into())));
        }
        assert_eq!(recent.held(), 10_001);
        for n in 0..10_000u64 {
            assert_eq!(recent.get(bob, &n.to_string()), Some(sent(n.into())), "{n}");
        }
        assert_eq!(recent.get(alice, "c-1"), Some(sent(7)));
    }

    /// A send is kept for the whole window, and let go within a quarter window after it.
    #[test]
    fn keeps_a_send_for_the_window_then_lets_it_go() {
        let limits = ClientIdLimits {
            window_ms: 24 * HOUR,
            max_entries: 100,
        };
        let mut recent = RecentSends::new(limits);
        let user = Uuid::from_u128(1);
        let start = 1_000 * HOUR;
        recent.insert(user, "first", start, sent(1));
        // A send every hour for 30 hours: the first is kept while it is at most 24 hours old.
        for hour in 1..=30u64 {
            let now = start + hour * HOUR;
            recent.insert(user, &format!("h{hour}"), now, sent(hour.into()));
            if hour <= 24 {
                assert!(
                    recent.get(user, "first").is_some(),
                    "lost after {hour} hours"
                );
            }
        }
        assert_eq!(recent.get(user, "first"), None, "kept after 30 hours");
        // What is left is the last window and at most a quarter window more.
        assert!((24..=31).contains(&recent.held()), "{}", recent.held());
        assert!(recent.get(user, "h6").is_some());
    }

    #[test]
    fn refuses_when_full_and_takes_again_once_the_window_passes() {
        let limits = ClientIdLimits {
            window_ms: 4 * HOUR,
            max_entries: 3,
        };
        let mut recent = RecentSends::new(limits);
        let user = Uuid::from_u128(1);
        for n in 0..3u64 {
            assert!(recent.insert(user, &n.to_string(), n, sent(n.into())));
        }
        assert!(!recent.insert(user, "full", 4, sent(4)));
        assert_eq!(recent.get(user, "full"), None);
        assert_eq!(recent.held(), 3);
        // Once the window has passed every send of a generation, they make room.
        assert!(recent.insert(user, "later", 5 * HOUR, sent(5)));
        assert_eq!(recent.held(), 1);
        assert_eq!(recent.get(user, "0"), None);
        assert_eq!(recent.get(user, "later"), Some(sent(5)));
    }
}
