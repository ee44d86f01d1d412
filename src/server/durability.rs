//! Which frames may leave now and which wait for a flush: the loop's side of group commit.
//!
//! Every tick that changed something writes one numbered commit into the store and asks the
//! [`Flusher`] thread to make it durable; the loop goes on serving while it does. Answers and
//! acks ([`Release::Durable`]) wait until their commit is durable. Fan-out to other connections
//! ([`Release::Early`]) leaves at once when its seq is under the durable seq ceiling, and
//! transient events ([`Release::Now`]) at once, when nothing is waiting ahead of them on their
//! connection (a connection's frames always leave in the
//! order they were produced).
//!
//! Held frames stay in their connection's own queue ([`HeldFrame`]); [`Durability`] keeps only
//! which connection waits for which commit, in commit order. A frame held only to keep its
//! connection's order waits for nothing of its own: it leaves right behind the frame ahead of
//! it, so one pending ack delays the events behind it by one flush, not by every flush that keeps
//! ending while more events arrive.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use crate::chat::{ConnId, Frame, Release};
use crate::store::flusher::Flusher;
use crate::store::{StoreError, StoreResult, TickWrites};

/// Commits written but not known durable past which the loop waits for the flusher. The flusher
/// runs at idle priority, so a load that never lets the loop wait (an open-loop flood beyond
/// what the core can serve) would otherwise leave it ever further behind: sealed ticks and held
/// acks growing without bound, and nothing acknowledged.
const MAX_COMMITS_IN_FLIGHT: u64 = 64;
/// Held frames past which the loop waits for the flusher likewise: frames held behind others
/// for their connection's order (a typing flood to a connection waiting for an ack) add no
/// commit, so the commit count alone would not bound them.
const MAX_HELD_FRAMES: usize = 65_536;

/// A frame its connection may not write yet.
pub struct HeldFrame {
    /// The commit that must be durable first; `None` when it waits only for the frames ahead.
    pub gate: Option<u64>,
    pub frame: Frame,
}

pub struct Durability {
    flusher: Flusher,
    /// The number of the last commit written to the store.
    written: u64,
    /// Every commit up to this one is durable.
    durable: u64,
    /// Commits written but not known durable, with the seq ceiling each wrote, oldest first.
    ceilings: VecDeque<(u64, u64)>,
    /// No seq up to this can be handed out again after a crash.
    durable_ceiling: u64,
    /// Connections holding a frame gated on a commit, in commit order (a connection once per
    /// gated frame).
    waiting: VecDeque<(u64, ConnId)>,
    /// Frames held in all connections' queues.
    held_frames: usize,
    /// Why the flusher cannot store what it was given (a full disk), while it cannot.
    degraded: Option<StoreError>,
}

impl Durability {
    pub fn new(flusher: Flusher, durable_ceiling: u64) -> Durability {
        Durability {
            flusher,
            written: 0,
            durable: 0,
            ceilings: VecDeque::new(),
            durable_ceiling,
            waiting: VecDeque::new(),
            held_frames: 0,
            degraded: None,
        }
    }

    /// The commit a frame produced this tick must wait for: this tick's when it writes one (its
    /// number is the next), else the last one written, which holds everything it could have read.
    pub fn commit_of_tick(&self, tick_writes: bool) -> u64 {
        self.written + u64::from(tick_writes)
    }

    /// Whether a frame of commit `commit` may be written now, given that its connection has
    /// nothing held ahead of it.
    pub fn may_leave(&self, release: Release, commit: u64) -> bool {
        match release {
            Release::Durable => commit <= self.durable,
            Release::Early { seq } => seq <= self.durable_ceiling,
            Release::Now => true,
        }
    }

    /// What a frame of commit `commit` that cannot leave now waits for (see [`HeldFrame`]),
    /// and notes that connection `to` holds it.
    pub fn hold(&mut self, to: ConnId, release: Release, commit: u64) -> Option<u64> {
        self.held_frames += 1;
        if self.may_leave(release, commit) {
            return None;
        }
        // The loop holds a tick's frames with that tick's one commit number, which never
        // decreases, so `waiting` stays in commit order.
        debug_assert!(self.waiting.back().is_none_or(|&(last, _)| last <= commit));
        self.waiting.push_back((commit, to));
        Some(commit)
    }

    /// Whether a held frame may leave once the frames ahead of it have.
    pub fn may_release(&self, gate: Option<u64>) -> bool {
        gate.is_none_or(|commit| commit <= self.durable)
    }

    /// `count` held frames left, or went with their closed connection.
    pub fn forget_held(&mut self, count: usize) {
        self.held_frames -= count;
    }

    /// Hands the tick's sealed writes (the next commit) to the flusher.
    pub fn written(&mut self, tick: Arc<TickWrites>) {
        debug_assert_eq!(tick.commit(), self.written + 1);
        self.written = tick.commit();
        self.ceilings.push_back((tick.commit(), tick.ceiling().seq));
        self.flusher.request(tick);
    }

    /// Whether so many commits wait for the flusher that the loop must let it run.
    pub fn too_far_behind(&self) -> bool {
        self.written - self.durable > MAX_COMMITS_IN_FLIGHT || self.held_frames > MAX_HELD_FRAMES
    }

    /// Blocks until the flusher has made everything written durable; the loop's core is then
    /// free for it. [`Durability::collect`] picks up the progress. While the flusher is degraded
    /// this waits until it stores again: the commits held in memory stay bounded.
    pub fn wait_for_flusher(&self) {
        // Without giving up the wait ends only in success.
        let _ = self.flusher.wait_for(self.written, false);
    }

    /// Catches up with the flusher: returns the last durable commit and how long the flushes
    /// took.
    pub fn collect(&mut self) -> (u64, Vec<Duration>) {
        let progress = self.flusher.progress();
        self.mark_durable(progress.durable);
        self.degraded = progress.degraded;
        (self.durable, progress.flush_times)
    }

    /// Why the flusher cannot store what it was given, while it cannot (as of the last
    /// [`Durability::collect`]).
    pub fn degraded(&self) -> Option<&StoreError> {
        self.degraded.as_ref()
    }

    /// Blocks until everything written is durable (for shutdown); returns the last commit, or
    /// the error of a degraded flusher (what it holds was never acknowledged).
    pub fn finish(&mut self) -> StoreResult<u64> {
        self.flusher.wait_for(self.written, true)?;
        self.mark_durable(self.written);
        Ok(self.written)
    }

    fn mark_durable(&mut self, durable: u64) {
        self.durable = self.durable.max(durable);
        while let Some(&(commit, ceiling)) = self.ceilings.front() {
            if commit > self.durable {
                break;
            }
            self.durable_ceiling = self.durable_ceiling.max(ceiling);
            self.ceilings.pop_front();
        }
    }

    /// The next connection holding a frame whose commit is now durable: `waiting` is ordered
    /// by commit, so those are a prefix of it. The connection may have closed since.
    pub fn pop_released(&mut self) -> Option<ConnId> {
        if self.waiting.front()?.0 <= self.durable {
            self.waiting.pop_front().map(|(_, to)| to)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Ceiling, Store};

    fn ceiling(seq: u64) -> Ceiling {
        Ceiling { seq, time: 0 }
    }

    /// The connections whose gated frames may leave now, in commit order.
    fn released(durability: &mut Durability) -> Vec<usize> {
        std::iter::from_fn(|| durability.pop_released())
            .map(|to| to.key)
            .collect()
    }

    #[test]
    fn acks_wait_for_their_commit_and_ordered_fan_out_only_for_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path(), 1 << 20).unwrap();
        let mut durability = Durability::new(store.start_flusher(Arc::default(), || {}), 100);
        let (a, b) = (ConnId { key: 1, serial: 1 }, ConnId { key: 2, serial: 2 });

        // Nothing durable yet: an ack of this tick's commit waits, and so does fan-out stamped
        // above the ceiling stored at start; fan-out under it may leave.
        let commit = durability.commit_of_tick(true);
        assert_eq!(commit, 1);
        assert!(!durability.may_leave(Release::Durable, commit));
        assert!(!durability.may_leave(Release::Early { seq: 101 }, commit));
        assert!(durability.may_leave(Release::Early { seq: 100 }, commit));
        assert_eq!(durability.hold(a, Release::Durable, commit), Some(1));
        durability.written(store.write(commit, ceiling(200)));

        // A tick that writes nothing depends on the last commit written.
        assert_eq!(durability.commit_of_tick(false), 1);
        let commit = durability.commit_of_tick(true);
        assert_eq!(durability.hold(b, Release::Durable, commit), Some(2));
        // Fan-out to `a`, behind its ack: it waits for that ack only, not for commit 2.
        let behind = durability.hold(a, Release::Early { seq: 50 }, commit);
        assert_eq!(behind, None);
        durability.written(store.write(commit, ceiling(300)));

        // Commit 1 alone durable (as if the flusher had reported it): `a` drains whole.
        durability.mark_durable(1);
        assert_eq!(released(&mut durability), [1]);
        assert!(durability.may_release(Some(1)) && durability.may_release(behind));
        assert!(!durability.may_release(Some(2)));
        assert!(durability.may_leave(Release::Early { seq: 200 }, 2));
        assert!(!durability.may_leave(Release::Early { seq: 201 }, 2));

        durability.finish().unwrap();
        assert_eq!(released(&mut durability), [2]);
        assert!(durability.may_leave(Release::Early { seq: 300 }, 2));
        assert!(durability.may_leave(Release::Durable, 2));
        durability.forget_held(3);
        assert!(!durability.too_far_behind());
    }
}
