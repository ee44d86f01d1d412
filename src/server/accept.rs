//! Connections coming and going: accepting (with the connection limits) and reaping.

use std::io::{self, Write};
use std::time::Instant;

use mio::{Interest, Token};

use super::connection::{Connection, Phase};
use super::slot::Slot;
use super::Server;
use crate::error::ApiError;
use crate::http::Response;
use crate::metrics::Gauges;

impl Server {
    pub(super) fn accept(&mut self, now: Instant) {
        self.accept_pending = false;
        loop {
            let Some(listener) = &self.listener else {
                return;
            };
            let (mut socket, peer) = match listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::warn!("accept failed: {e}; retrying shortly");
                    self.accept_pending = true;
                    return;
                }
            };
            let ip = peer.ip();
            let from_ip = self.conns_per_ip.get(&ip).copied().unwrap_or(0);
            let refusal = if self.conns.len() >= self.limits.max_connections {
                let full = ApiError::unavailable("the server is at its connection limit");
                Some(("capacity", full))
            } else if self.limits.max_connections_per_ip > 0
                && from_ip >= self.limits.max_connections_per_ip
            {
                let per_ip = ApiError::rate_limited("too many connections from this address");
                Some(("per_ip", per_ip))
            } else {
                None
            };
            if let Some((reason, refused)) = refusal {
                // Best effort: one write on a fresh socket, then close.
                let answer = Response::error(&refused)
                    .with_header("retry-after", "1")
                    .encode(false);
                let _ = socket.write(&answer);
                self.chat.metrics.count_drop(reason);
                continue;
            }
            let _ = socket.set_nodelay(true);
            let entry = self.conns.vacant_entry();
            let key = entry.key();
            if let Err(e) = self.poll.registry().register(
                &mut socket,
                Token(key),
                Interest::READABLE | Interest::WRITABLE,
            ) {
                log::warn!("register failed: {e}");
                continue;
            }
            self.next_serial += 1;
            entry.insert(Slot::new(
                socket,
                ip,
                self.next_serial,
                Connection::new(now),
            ));
            *self.conns_per_ip.entry(ip).or_default() += 1;
            self.chat.metrics.connections_accepted += 1;
        }
    }

    /// Closes a connection marked dead: its held frames, its registration, its count against
    /// its address and its presence go with it.
    pub(super) fn close(&mut self, key: usize) {
        let id = self.conn_id(key);
        let mut slot = self.conns.remove(key);
        self.forget_queued(slot.queued, slot.closing);
        self.freed_buffers += slot.conn.buffer_bytes();
        self.durability.forget_held(slot.conn.held_count());
        let _ = self.poll.registry().deregister(&mut slot.socket);
        if let Some(count) = self.conns_per_ip.get_mut(&slot.ip) {
            *count -= 1;
            if *count == 0 {
                self.conns_per_ip.remove(&slot.ip);
            }
        }
        if let Some(user) = slot.conn.user() {
            self.chat.disconnect(user, id);
        }
    }

    pub(super) fn gauges(&self) -> Gauges {
        let websocket_connections = self
            .conns
            .iter()
            .filter(|(_, s)| matches!(s.conn.phase(), Phase::WebSocket(_)))
            .count();
        Gauges {
            http_connections: self.conns.len() - websocket_connections,
            websocket_connections,
            users_online: self.chat.users_online(),
            groups: self.chat.group_count(),
            hash_queue: self.hashes_in_flight,
            store_bytes: self.chat.store().size_on_disk().unwrap_or(0),
            recent_client_ids: self.chat.store().recent_client_ids(),
            store_degraded: self.durability.degraded().is_some(),
            queued_output_bytes: self.queued_output,
        }
    }
}
