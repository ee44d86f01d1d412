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
//!
//! While the flusher cannot store (a full disk), the commits it holds stay undurable, and so
//! would every answer gated on the last commit written. Reads go on instead under a read limit
//! ([`Durability::read_limit`]): the last stamp handed out before the last durable commit was
//! written; what is stamped at or under it is stored, what is above it waits with its commit.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use crate::chat::{ConnId, Frame, Release};
use crate::clock::Stamp;
use crate::store::flusher::Flusher;
use crate::store::{Ceiling, StoreError, StoreResult, TickWrites};

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
    /// Commits written but not known durable, with the seq ceiling each wrote and the clock's
    /// last stamp when it was written, oldest first.
    ceilings: VecDeque<(u64, u64, Stamp)>,
    /// No seq up to this can be handed out again after a crash.
    durable_ceiling: u64,
    /// Every event stamped up to this is in a durable commit (seqs and timestamps never
    /// decrease from one commit to the next).
    durable_stamp: Stamp,
    /// Connections holding a frame gated on a commit, in commit order (a connection once per
    /// gated frame).
    waiting: VecDeque<(u64, ConnId)>,
    /// Frames held in all connections' queues.
    held_frames: usize,
    /// Why the flusher cannot store what it was given (a full disk), while it cannot.
    degraded: Option<StoreError>,
}

impl Durability {
    /// `stored` is the ceiling the store was opened with: everything under it is durable.
    pub fn new(flusher: Flusher, stored: Ceiling) -> Durability {
        Durability {
            flusher,
            written: 0,
            durable: 0,
            ceilings: VecDeque::new(),
            durable_ceiling: stored.seq,
            durable_stamp: Stamp {
                seq: stored.seq,
                timestamp: stored.time,
            },
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

    /// Hands the tick's sealed writes (the next commit) to the flusher; `last` is the clock's
    /// last stamp, the newest an event in it (or in any commit before it) can have.
    pub fn written(&mut self, tick: Arc<TickWrites>, last: Stamp) {
        debug_assert_eq!(tick.commit(), self.written + 1);
        self.written = tick.commit();
        self.ceilings
            .push_back((tick.commit(), tick.ceiling().seq, last));
        self.flusher.request(tick);
    }

    /// Whether written commits wait for a flusher that can store them.
    pub fn flush_pending(&self) -> bool {
        self.written > self.durable && self.degraded.is_none()
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

    /// While the flusher cannot store: the newest stamp whose events are all durable, above
    /// which a read must return nothing if its answer is to leave before the disk has room
    /// (the chat core's [`crate::chat::Chat::set_read_limit`]). `None` while it stores: answers
    /// then wait for the last commit written, as ever.
    pub fn read_limit(&self) -> Option<Stamp> {
        self.degraded.as_ref().map(|_| self.durable_stamp)
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
        while let Some(&(commit, ceiling, last)) = self.ceilings.front() {
            if commit > self.durable {
                break;
            }
            self.durable_ceiling = self.durable_ceiling.max(ceiling);
            self.durable_stamp = last;
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
mod tests;
