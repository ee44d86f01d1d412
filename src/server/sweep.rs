//! The loop's timers: the once-a-second sweep (pings, deadlines, idle connections) and the
//! graceful shutdown.

use std::time::{Duration, Instant};

use tungstenite::protocol::frame::coding::CloseCode;

use super::connection::{Phase, Sweep};
use super::memory;
use super::Server;
use crate::error::{ApiError, ErrorCode};
use crate::http::Response;

/// How long a graceful shutdown waits for connections to drain before exiting anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

impl Server {
    /// Pings WebSockets, drops those silent past the pong timeout, answers 408 to requests that
    /// take too long to arrive, closes idle keep-alive connections and those that will not
    /// drain after being closed.
    pub(super) fn sweep(&mut self, now: Instant) {
        let mut expired = Vec::new();
        let mut timed_out = Vec::new();
        let mut pinged = Vec::new();
        for (key, slot) in self.conns.iter_mut() {
            match slot.conn.sweep(now, &self.limits) {
                Sweep::Nothing => {}
                Sweep::Pinged => pinged.push(key),
                Sweep::TimedOut => timed_out.push(key),
                Sweep::Expired => expired.push(key),
            }
        }
        for key in expired {
            self.chat.metrics.count_drop("timeout");
            self.kill(key);
        }
        for key in timed_out {
            let late = ApiError::new(
                ErrorCode::Timeout,
                format!(
                    "the request did not arrive within {} s",
                    self.limits.request_timeout.as_secs()
                ),
            );
            // Through the outbox, so it cannot overtake an answer produced earlier in this tick
            // (a login whose hash finished just now) or one still waiting for its commit.
            self.chat.metrics.count_error(late.code);
            let id = self.conn_id(key);
            self.chat.respond(id, Response::error(&late).encode(false));
        }
        for key in pinged {
            self.queue_flush(key);
        }
        self.api.sweep(now);
        // Presence (issue #20): offline events due after their debounce.
        self.chat.presence_sweep(crate::clock::wall_ms());
        self.chat.checkpoint_read_state();
        if self.freed_buffers >= memory::COLLECT_AFTER_BYTES {
            self.freed_buffers = 0;
            memory::give_back();
        }
    }

    /// Stops accepting, closes every WebSocket with 1001, answers the HTTP requests that already
    /// arrived and closes those connections, and lets the loop run until they are gone or the
    /// grace period ends.
    pub(super) fn begin_shutdown(&mut self, wall: u64, now: Instant) {
        if self.shutdown_deadline.is_some() {
            return;
        }
        log::info!("shutting down: closing {} connections", self.conns.len());
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        self.shutdown_deadline = Some(now + SHUTDOWN_GRACE);
        let keys: Vec<usize> = self.conns.iter().map(|(key, _)| key).collect();
        for key in keys {
            match self.conns[key].conn.phase() {
                Phase::WebSocket(_) => {
                    self.close_websocket_after_tick(key, CloseCode::Away, "server shutting down")
                }
                Phase::AwaitingHash(_) => self.conns[key].conn.close_after_write(),
                Phase::Http(_) => {
                    // A request that already reached the socket still gets its answer.
                    self.read_http(key, wall, now);
                    let conn = &mut self.conns[key].conn;
                    if !matches!(conn.phase(), Phase::AwaitingHash(_)) {
                        conn.close_after_write();
                        self.queue_flush(key);
                    }
                }
            }
        }
    }
}
