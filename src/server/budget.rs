//! The global budget for queued output (issue #18, finding 5): the bytes waiting in every
//! connection's write buffer, counted as they grow and drain, and the slow consumers shed when
//! they would take the total past `--max-queued-output-bytes`.
//!
//! Counting: each slot remembers how many of its bytes the total holds (`Slot::queued`); after
//! a delivery and after a write the difference to its buffer's length is added (two additions,
//! no scan). Shedding: only when the total of the connections still open passes the budget,
//! and then one scan of the slab, which sheds enough to fall to three quarters of it so the next
//! scan is far away. Only WebSockets whose last write left bytes behind (the socket was full:
//! the peer does not keep up) and that hold more than their fair share (the budget over the
//! number of such connections) are shed, largest first: a client that reads promptly has
//! nothing left after its writes and is never chosen. (An HTTP client that does not read its
//! answers is already bounded: it is not read while they back up.)

use tungstenite::protocol::frame::coding::CloseCode;

use super::connection::Phase;
use super::Server;

/// What a shed (and a per-connection slow consumer) is told; the same close either way.
pub(super) const SLOW_CONSUMER_REASON: &str = "too many events queued; reconnect and sync";

/// The share of the budget shedding falls back to (in quarters): room for the deliveries of a
/// few ticks before the next scan.
const SHED_TARGET_QUARTERS: usize = 3;

impl Server {
    /// Brings the total up to date with the connection's buffer after it grew or drained.
    // Once per delivery: two subtractions and two additions.
    #[inline]
    pub(super) fn account(&mut self, key: usize) {
        let Some(slot) = self.conns.get_mut(key) else {
            return;
        };
        let now = slot.conn.pending().len();
        self.queued_output = self.queued_output - slot.queued + now;
        if slot.closing {
            self.closing_output = self.closing_output - slot.queued + now;
        }
        slot.queued = now;
    }

    /// A connection leaves: its bytes leave the totals.
    pub(super) fn forget_queued(&mut self, queued: usize, closing: bool) {
        self.queued_output -= queued;
        if closing {
            self.closing_output -= queued;
        }
    }

    /// Marks a connection as closed for not keeping up: its buffer no longer grows (events to it
    /// are dropped) and leaves within the close grace, so it no longer counts against the budget.
    pub(super) fn mark_closing(&mut self, key: usize) {
        if let Some(slot) = self.conns.get_mut(key) {
            if !slot.closing {
                slot.closing = true;
                self.closing_output += slot.queued;
            }
        }
    }

    /// After a delivery: sheds slow consumers when the open connections' queues pass the budget.
    #[inline]
    pub(super) fn check_budget(&mut self) {
        let budget = self.limits.max_queued_output_bytes;
        if self.queued_output - self.closing_output > budget && self.shed_scan_tick != self.tick {
            self.shed(budget);
        }
    }

    #[cold]
    fn shed(&mut self, budget: usize) {
        let mut behind: Vec<(usize, usize)> = self
            .conns
            .iter()
            .filter(|(_, s)| {
                s.backlogged
                    && !s.closing
                    && s.queued > 0
                    && !s.conn.is_dead()
                    && matches!(s.conn.phase(), Phase::WebSocket(_))
            })
            .map(|(key, s)| (s.queued, key))
            .collect();
        let fair = budget / behind.len().max(1);
        behind.retain(|(queued, _)| *queued > fair);
        behind.sort_unstable_by(|a, b| b.cmp(a));
        let target = budget / 4 * SHED_TARGET_QUARTERS;
        let mut shed = 0;
        for (_, key) in behind {
            if self.queued_output - self.closing_output <= target {
                break;
            }
            self.chat.metrics.count_drop("output_budget");
            self.close_slow_consumer(key);
            shed += 1;
        }
        if shed == 0 {
            // Over the budget with nobody behind: this tick's own fan-out to prompt readers,
            // which their writes at the end of the tick take. Not scanned again this tick.
            self.shed_scan_tick = self.tick;
        } else {
            log::warn!(
                "queued output past --max-queued-output-bytes ({budget}): {shed} slow consumers \
                 closed"
            );
        }
    }

    /// Closes a WebSocket that does not keep up with its events (1008), dropping those of them
    /// not yet begun (`Connection::drop_unwritten`): they stay stored, and a reconnect and a sync
    /// recover them.
    pub(super) fn close_slow_consumer(&mut self, key: usize) {
        let conn = &mut self.conns[key].conn;
        let had = conn.buffer_bytes();
        conn.drop_unwritten();
        self.freed_buffers += had.saturating_sub(conn.buffer_bytes());
        self.account(key);
        self.mark_closing(key);
        self.close_websocket(key, CloseCode::Policy, SLOW_CONSUMER_REASON);
    }
}
