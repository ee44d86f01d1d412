//! Which WebSockets each session has open, when each was last seen, and the WebSockets a
//! revocation (or an operator) asked to close, which the loop closes after the tick.

use std::collections::HashMap;

use uuid::Uuid;

use super::ConnId;
use crate::idmap::IdMap;

/// Close code of a WebSocket whose session was revoked.
pub const CLOSE_REVOKED: u16 = 4001;
/// Close code of a WebSocket whose account was suspended or deleted.
pub const CLOSE_SUSPENDED: u16 = 4003;

#[derive(Debug, Default)]
pub struct Devices {
    /// session -> its open WebSockets.
    conns: IdMap<Vec<ConnId>>,
    /// WebSocket -> its session, to find the session again when it closes.
    session_of: HashMap<ConnId, Uuid>,
    /// session -> ms when its last WebSocket closed (since this process started).
    closed_at: IdMap<u64>,
    /// WebSockets to close with a code and reason, drained by the loop.
    closing: Vec<(ConnId, u16, &'static str)>,
}

impl Devices {
    pub fn connect(&mut self, session: Uuid, conn: ConnId) {
        self.conns.entry(session).or_default().push(conn);
        self.session_of.insert(conn, session);
    }

    /// Forgets a closed connection (any: those of no session are not here).
    pub fn disconnect(&mut self, conn: ConnId, wall: u64) {
        let Some(session) = self.session_of.remove(&conn) else {
            return;
        };
        if let Some(conns) = self.conns.get_mut(&session) {
            conns.retain(|c| *c != conn);
            if conns.is_empty() {
                self.conns.remove(&session);
                self.closed_at.insert(session, wall);
            }
        }
    }

    pub fn online(&self, session: Uuid) -> bool {
        self.conns.contains_key(&session)
    }

    /// When the session's last WebSocket closed, if one did since the start.
    pub fn closed_at(&self, session: Uuid) -> Option<u64> {
        self.closed_at.get(&session).copied()
    }

    /// Asks the loop to close every WebSocket of `session` with `code` and `reason`.
    pub fn close_session(&mut self, session: Uuid, code: u16, reason: &'static str) {
        self.closed_at.remove(&session);
        for conn in self.conns.get(&session).into_iter().flatten() {
            self.closing.push((*conn, code, reason));
        }
    }

    /// The WebSockets to close, and with what; the loop drains them every tick.
    pub fn take_closing(&mut self) -> Vec<(ConnId, u16, &'static str)> {
        std::mem::take(&mut self.closing)
    }

    /// Whether any WebSocket waits to be closed (checked every tick, so it costs no allocation).
    pub fn has_closing(&self) -> bool {
        !self.closing.is_empty()
    }
}
