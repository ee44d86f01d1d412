//! The WebSocket phase of a connection: messages in (tungstenite reads, with the server's
//! limits), the echo endpoint, pings, and the close handshake.

use std::io::Read;
use std::time::Instant;

use tungstenite::error::ProtocolError;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tungstenite::{Message, Utf8Bytes};
use uuid::Uuid;

use super::wire::{NoRead, Wire};
use super::{is_would_block, Connection, Life, Phase, Sweep, Turn, READ_BUDGET_MESSAGES};
use crate::config::Limits;

/// tungstenite's settings for the server's WebSockets.
pub fn websocket_config(limits: &Limits) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(limits.ws_read_buffer_bytes)
        .write_buffer_size(64 * 1024)
        .max_write_buffer_size(limits.max_outbox_bytes)
        .max_message_size(Some(limits.max_ws_message_bytes))
        .max_frame_size(Some(limits.max_ws_message_bytes))
}

/// The next thing to do with a WebSocket's incoming bytes.
#[derive(Debug)]
pub enum WsNext {
    /// A text message from the session's user: the chat core's.
    Text(Utf8Bytes, Uuid),
    /// A binary message from the session's user: answer with an error event.
    Binary,
    /// The source has nothing more: flush (pongs and echoes may be queued).
    Drained,
    /// The turn's budget is spent: read again next tick, and flush.
    Yield,
    /// The close handshake is done: our reply waits in the buffer; flush (the connection
    /// closes once it is written).
    Closed,
    /// The peer broke the protocol: close with this code after the tick's events.
    Fail(CloseCode, &'static str),
    /// The peer is gone (or a write failed): kill.
    Gone,
    /// Not reading: closing, or not a WebSocket.
    Idle,
}

impl Connection {
    /// Reads from `source` up to the next message the loop must act on; pings, pongs, the
    /// close and the echo endpoint's messages are dealt with here. `produced`: bytes this
    /// connection's messages put in the outbox during this turn.
    pub fn next_message<R: Read>(
        &mut self,
        source: &mut R,
        turn: &mut Turn,
        produced: usize,
        limits: &Limits,
        now: Instant,
    ) -> WsNext {
        if self.life != Life::Open {
            // Closing: nothing more it sends is acted on (RFC 6455 lets us discard it).
            return WsNext::Idle;
        }
        let Phase::WebSocket(ws) = &mut self.phase else {
            return WsNext::Idle;
        };
        let mut wire = Wire::new(source, &mut self.out, limits.max_outbox_bytes);
        let next = loop {
            // A turn ends after a budget of messages, or once they produced about half of what
            // a connection may queue (a few large syncs), so no client can make the tick's
            // memory grow without bound.
            if turn.handled == READ_BUDGET_MESSAGES || produced >= limits.max_outbox_bytes / 2 {
                break WsNext::Yield;
            }
            let message = match ws.ctx.read(&mut wire) {
                Ok(message) => message,
                Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    break WsNext::Drained
                }
                Err(tungstenite::Error::Capacity(_)) => {
                    break WsNext::Fail(CloseCode::Size, "message too large")
                }
                Err(tungstenite::Error::Utf8(_)) => {
                    break WsNext::Fail(CloseCode::Invalid, "invalid UTF-8")
                }
                // The peer went away without a close frame (a dropped client, a closed
                // laptop): nothing can reach it any more, and nothing it sent was wrong.
                Err(tungstenite::Error::Protocol(ProtocolError::ResetWithoutClosingHandshake)) => {
                    break WsNext::Gone
                }
                Err(tungstenite::Error::Protocol(_)) => {
                    break WsNext::Fail(CloseCode::Protocol, "protocol error")
                }
                Err(tungstenite::Error::ConnectionClosed) => break WsNext::Closed,
                Err(_) => break WsNext::Gone,
            };
            self.last_active = now;
            turn.handled += 1;
            match (message, ws.user) {
                (message @ (Message::Text(_) | Message::Binary(_)), None) => {
                    // The echo endpoint: straight back, outside the chat.
                    if let Err(e) = ws.ctx.write(&mut wire, message) {
                        if !is_would_block(&e) {
                            break WsNext::Gone;
                        }
                    }
                }
                (Message::Text(text), Some(user)) => break WsNext::Text(text, user),
                (Message::Binary(_), Some(_)) => break WsNext::Binary,
                // Pongs and close replies are queued by tungstenite; the flush sends them.
                (
                    Message::Ping(_) | Message::Pong(_) | Message::Close(_) | Message::Frame(_),
                    _,
                ) => {}
            }
        };
        if let WsNext::Closed = next {
            self.close_after_write();
        }
        next
    }

    /// Whether the close decided for after the tick may be sent now: once the frames held
    /// ahead of it have left, and unless the connection moved on (closed otherwise, or died).
    pub fn tick_close(&self) -> TickClose {
        match self.life {
            Life::CloseAfterTick(..) if !self.held.is_empty() => TickClose::Wait,
            Life::CloseAfterTick(code, reason) => TickClose::Send(code, reason),
            _ => TickClose::Moot,
        }
    }

    /// Queues a close frame; the connection closes once it is written (or after a grace
    /// period, if the peer does not read).
    pub fn send_close(
        &mut self,
        code: CloseCode,
        reason: &'static str,
        limits: &Limits,
        now: Instant,
    ) {
        if let Phase::WebSocket(ws) = &mut self.phase {
            let mut nothing = NoRead;
            let mut wire = Wire::new(&mut nothing, &mut self.out, limits.max_outbox_bytes);
            let frame = CloseFrame {
                code,
                reason: reason.into(),
            };
            let _ = ws.ctx.close(&mut wire, Some(frame));
        }
        self.close_after_write();
        self.last_active = now;
    }

    /// Moves tungstenite's own frames (a pong, the close reply) into the write buffer before it
    /// is written. Its `ConnectionClosed` after a close reply counts once the reply is written:
    /// join it with the write's result for [`Connection::after_write`].
    pub fn queue_control_frames(&mut self, limits: &Limits) -> tungstenite::Result<()> {
        match &mut self.phase {
            Phase::WebSocket(ws) => {
                let mut nothing = NoRead;
                let mut wire = Wire::new(&mut nothing, &mut self.out, limits.max_outbox_bytes);
                ws.ctx.flush(&mut wire)
            }
            _ => Ok(()),
        }
    }

    /// Queues a ping when one is due (for [`Connection::sweep`]).
    pub(super) fn ping_if_due(&mut self, now: Instant, limits: &Limits) -> Sweep {
        let Phase::WebSocket(ws) = &mut self.phase else {
            return Sweep::Nothing;
        };
        if now.saturating_duration_since(ws.last_ping) < limits.ping_interval {
            return Sweep::Nothing;
        }
        ws.last_ping = now;
        let mut nothing = NoRead;
        let mut wire = Wire::new(&mut nothing, &mut self.out, limits.max_outbox_bytes);
        match ws.ctx.write(&mut wire, Message::Ping(Default::default())) {
            Err(e) if !is_would_block(&e) => Sweep::Expired,
            _ => Sweep::Pinged,
        }
    }
}

/// Whether a close decided for after the tick goes out now.
#[derive(Debug, PartialEq, Eq)]
pub enum TickClose {
    /// Send it ([`Connection::send_close`]).
    Send(CloseCode, &'static str),
    /// Frames held for a flush go first: ask again after the next release.
    Wait,
    /// Nothing to send any more.
    Moot,
}
