//! Which WebSockets each session has open, and the WebSockets a revocation (or an operator)
//! asked to close, which the loop closes after the tick. A session's `last_seen` is stored when
//! its last WebSocket closes (and at its first upgrade), never on a message's path.

use std::collections::HashMap;

use uuid::Uuid;

use super::{Chat, ConnId};
use crate::idmap::IdMap;
use crate::store::SessionRecord;

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
    /// WebSockets to close with a code and reason, drained by the loop.
    closing: Vec<(ConnId, u16, &'static str)>,
}

impl Devices {
    pub fn connect(&mut self, session: Uuid, conn: ConnId) {
        self.conns.entry(session).or_default().push(conn);
        self.session_of.insert(conn, session);
    }

    /// Forgets a closed connection (any: those of no session are not here); the session, when
    /// this was its last open WebSocket.
    fn disconnect(&mut self, conn: ConnId) -> Option<Uuid> {
        let session = self.session_of.remove(&conn)?;
        let conns = self.conns.get_mut(&session)?;
        conns.retain(|c| *c != conn);
        if !conns.is_empty() {
            return None;
        }
        self.conns.remove(&session);
        Some(session)
    }

    pub fn online(&self, session: Uuid) -> bool {
        self.conns.contains_key(&session)
    }

    /// Asks the loop to close every WebSocket of `session` with `code` and `reason`.
    pub fn close_session(&mut self, session: Uuid, code: u16, reason: &'static str) {
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

impl Chat {
    /// A WebSocket closed: when it was its session's last, the session's `last_seen` is stored
    /// (a write of this tick; a revoked session keeps its record as revoked).
    pub(super) fn session_disconnected(&mut self, conn: ConnId, wall: u64) {
        let Some(session) = self.devices.disconnect(conn) else {
            return;
        };
        match self.store.session(session) {
            Ok(Some(record)) if !record.revoked => {
                self.store.update_session(&SessionRecord {
                    last_seen: Some(wall),
                    ..record
                });
            }
            Ok(_) => {}
            Err(err) => log::warn!("last_seen of session {session} not stored: {err}"),
        }
    }
}
