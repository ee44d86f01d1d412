//! The way out: the tick's outbox into the connections (or held until durable), held frames
//! released as their commits become durable, and each connection's write to its socket.

use super::connection::{AfterWrite, Delivery};
use super::Server;
use crate::chat::{ConnId, Frame};

impl Server {
    /// Moves the tick's deliveries into the connections' buffers, or holds them until `commit`
    /// (the one that holds what they depend on) is durable.
    pub(super) fn release_outbox(&mut self, commit: u64) {
        let mut outbox = std::mem::take(&mut self.chat.outbox);
        for (to, frame, release) in outbox.drain() {
            let Some(slot) = self.conns.get_mut(to.key) else {
                continue;
            };
            if slot.serial != to.serial || slot.conn.is_dead() {
                continue;
            }
            if slot.conn.holds_frames() || !self.durability.may_leave(release, commit) {
                let gate = self.durability.hold(to, release, commit);
                slot.conn.hold(gate, frame);
                continue;
            }
            self.deliver(to, frame);
        }
        // Keep the allocation for the next tick.
        self.chat.outbox = outbox;
    }

    /// Catches up with the flusher and releases the frames that waited for what is now durable.
    /// While the flusher cannot store (a full disk), the frames of the commits it holds stay
    /// held: they leave, true, once a retry stores them (`store::flusher`).
    pub(super) fn release_durable(&mut self) {
        let was_degraded = self.durability.degraded().is_some();
        let (durable, flush_times) = self.durability.collect();
        self.chat.set_read_limit(self.durability.read_limit());
        match (was_degraded, self.durability.degraded()) {
            (false, Some(err)) => log::error!(
                "the store cannot write ({err}): answers that promise storage wait until it can, \
                 new writes are refused, reads go on; retrying every second"
            ),
            (true, None) => log::warn!("the store writes again"),
            _ => {}
        }
        self.chat.store_mut().forget_applied(durable);
        for took in flush_times {
            self.chat.metrics.flush_seconds.observe(took.as_secs_f64());
        }
        while let Some(to) = self.durability.pop_released() {
            self.release_held(to);
        }
    }

    /// Writes a connection's held frames from the front, up to one that still waits for its
    /// commit.
    fn release_held(&mut self, to: ConnId) {
        loop {
            let Some(slot) = self.conns.get_mut(to.key) else {
                return;
            };
            if slot.serial != to.serial {
                return;
            }
            let durability = &self.durability;
            let Some(frame) = slot.conn.release_next(|gate| durability.may_release(gate)) else {
                let released = slot.conn.after_release(&self.limits);
                if released.resume {
                    self.read_later(to.key);
                }
                // A connection closing after its writes (its frames were dropped above, or
                // its answers just left) is closed by the next flush.
                if released.close {
                    self.queue_flush(to.key);
                }
                return;
            };
            self.durability.forget_held(1);
            if !slot.conn.is_dead() {
                self.deliver(to, frame);
            }
        }
    }

    /// Puts one frame into its connection's write buffer (the connection is live).
    fn deliver(&mut self, to: ConnId, frame: Frame) {
        match self.conns[to.key].conn.deliver(frame, &self.limits) {
            Delivery::Queued => {}
            Delivery::Event(kind) => *self.chat.metrics.events.entry(kind).or_default() += 1,
            Delivery::Dropped => return,
            Delivery::SlowConsumer => {
                self.chat.metrics.count_drop("slow_consumer");
                self.close_slow_consumer(to.key);
                return;
            }
        }
        self.account(to.key);
        self.check_budget();
        self.queue_flush(to.key);
    }

    /// Writes a connection's buffer to its socket (at most once a tick: `to_flush` lists it
    /// once).
    pub(super) fn flush(&mut self, key: usize) {
        let Some(slot) = self.conns.get_mut(key) else {
            return;
        };
        slot.flush_queued = false;
        if slot.conn.is_dead() {
            return;
        }
        // tungstenite's frames (a pong, the close reply) join the buffer first.
        let queued = slot.conn.queue_control_frames(&self.limits);
        let written = slot.write_pending().map_err(tungstenite::Error::Io);
        slot.backlogged = !slot.conn.pending().is_empty();
        let held_before = slot.conn.buffer_bytes();
        let after = slot.conn.after_write(written.and(queued));
        // A large buffer given back once written (a slow reader that caught up) counts like
        // one freed by a close.
        self.freed_buffers += held_before.saturating_sub(slot.conn.buffer_bytes());
        self.account(key);
        match after {
            AfterWrite::Nothing => {}
            AfterWrite::ReadAgain => self.read_later(key),
            AfterWrite::Close => self.kill(key),
        }
    }
}
