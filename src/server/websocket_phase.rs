//! The loop's side of the WebSocket phase: messages handed to the chat core, and closes (the
//! ones decided during a tick go out after its events).

use std::time::Instant;

use tungstenite::protocol::frame::coding::CloseCode;

use super::connection::{TickClose, Turn, WsNext};
use super::Server;
use crate::chat::Cost;
use crate::error::{ApiError, ErrorCode};
use crate::protocol::{self, method, Call, RpcError};

impl Server {
    pub(super) fn read_websocket(&mut self, key: usize, wall: u64, now: Instant) {
        let id = self.conn_id(key);
        let outbox_at_start = self.chat.outbox.bytes();
        let mut turn = Turn::default();
        loop {
            let produced = self.chat.outbox.bytes() - outbox_at_start;
            let (mut source, conn) = self.conns[key].websocket_source();
            match conn.next_message(&mut source, &mut turn, produced, &self.limits, now) {
                WsNext::Text(text, user) => {
                    if self.durability.degraded().is_some() {
                        if let Some(refused) = refused_write(text.as_str()) {
                            self.chat.refuse(id, &refused, wall);
                            continue;
                        }
                    }
                    if self.chat.handle_text(id, user, text.as_str(), wall) == Cost::Heavy {
                        turn.end();
                        self.ran_costly = true;
                    }
                }
                WsNext::Binary => {
                    let err = RpcError {
                        method: None,
                        id: None,
                        error: ApiError::bad_request(
                            "binary messages are not supported; send JSON text",
                        ),
                    };
                    self.chat.send_error(id, &err, wall);
                }
                WsNext::Yield => {
                    self.read_later(key);
                    self.queue_flush(key);
                    return;
                }
                WsNext::Drained | WsNext::Closed => {
                    self.queue_flush(key);
                    return;
                }
                WsNext::Fail(code, reason) => {
                    self.chat.metrics.count_drop("protocol");
                    self.close_websocket_after_tick(key, code, reason);
                    return;
                }
                WsNext::Gone => {
                    self.kill(key);
                    return;
                }
                WsNext::Idle => return,
            }
        }
    }

    /// Decides to close a WebSocket; the close frame follows the tick's events.
    pub(super) fn close_websocket_after_tick(
        &mut self,
        key: usize,
        code: CloseCode,
        reason: &'static str,
    ) {
        if self.conns[key].conn.close_after_tick(code, reason) {
            self.ws_closing.push(key);
        }
    }

    /// Sends a close frame now; the connection closes once it is written.
    pub(super) fn close_websocket(&mut self, key: usize, code: CloseCode, reason: &'static str) {
        let conn = &mut self.conns[key].conn;
        conn.send_close(code, reason, &self.limits, Instant::now());
        self.queue_flush(key);
    }

    /// Sends the close frames decided during the tick, after the connection's other frames;
    /// one whose frames still wait for a flush closes after they leave.
    pub(super) fn close_websockets_after_tick(&mut self) {
        let mut later = Vec::new();
        for key in std::mem::take(&mut self.ws_closing) {
            let Some(slot) = self.conns.get(key) else {
                continue;
            };
            match slot.conn.tick_close() {
                TickClose::Send(code, reason) => self.close_websocket(key, code, reason),
                TickClose::Wait => later.push(key),
                TickClose::Moot => {}
            }
        }
        self.ws_closing = later;
    }
}

/// The 90 `internal` answer to an RPC that would write (a send, a receipt) while the store
/// cannot write; `None` for the others, which go on (sync, typing, and anything malformed, whose
/// own error says more).
fn refused_write(text: &str) -> Option<RpcError> {
    let rpc = protocol::decode(text).ok()?;
    let method = match rpc.call {
        Call::Send { .. } => method::SEND,
        Call::Receipt { read: false, .. } => method::DELIVERED,
        Call::Receipt { read: true, .. } => method::READ,
        Call::Edit { .. } => method::EDIT,
        Call::Delete { .. } => method::DELETE,
        Call::ReadUpTo { .. } => method::READ_UP_TO,
        Call::Sync { .. } | Call::Typing { .. } => return None,
    };
    Some(RpcError {
        method: Some(method),
        id: rpc.id,
        error: store_cannot_write(),
    })
}

/// What a write refused while the store cannot write is told.
pub(super) fn store_cannot_write() -> ApiError {
    ApiError::new(
        ErrorCode::Internal,
        "the server cannot store anything now (its disk is full); nothing was stored, retry later",
    )
}
