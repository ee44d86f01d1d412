//! One connection as a state machine without a socket: its phase, its lifecycle, the bytes it
//! has to write and the frames waiting for a flush. The loop hands it whatever the socket gives
//! (any [`Read`](std::io::Read)), acts on what it answers, and writes [`Connection::pending`] to
//! the socket; unit tests and the `connection_bytes` fuzz target drive it the same way.
//!
//! Every change of lifecycle goes through `Connection::step`, the table of legal transitions:
//!
//! ```text
//! Open -> CloseAfterTick(code)   a WebSocket close decided now, sent after the tick's events
//! Open | CloseAfterTick -> CloseAfterWrite   close once everything queued is written
//! any but Dead -> Dead           to be reaped at the end of the tick (final)
//! ```
//!
//! and every change of phase through [`Connection::await_hash`], [`Connection::hash_done`] and
//! [`Connection::upgrade`]: `Http -> AwaitingHash -> Http`, `Http -> WebSocket`.

mod http;
mod websocket;
mod wire;

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::WebSocketContext;
use uuid::Uuid;

use super::durability::HeldFrame;
use crate::chat::Frame;
use crate::config::Limits;

pub use http::{AfterHttpRead, HttpNext, HttpRead};
pub use websocket::{websocket_config, TickClose, WsNext};
pub use wire::{push_text_frame, MAX_FRAME_HEADER};

/// WebSocket messages, or pipelined HTTP requests, handled from one connection per turn before
/// the others get theirs.
pub const READ_BUDGET_MESSAGES: usize = 64;
/// HTTP bytes read from one connection per turn before the others get theirs.
pub const READ_BUDGET_BYTES: usize = 128 * 1024;
/// How long a connection may take to drain its last bytes once we decided to close it.
pub const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// Slots of the held-frame queue kept once it drains: a busy sender's usual depth (its acks and
/// the events queued behind them), so the queue is not freed and grown again every flush
/// (docs/BENCHMARKS.md, "Changes of 2026-11-25 (third session)"); about 1.5 KiB, for
/// connections that ever held that many.
const HELD_SLOTS_KEPT: usize = 32;
/// A WebSocket's write buffer is kept between ticks when it held this much (a tick's events),
/// so a busy connection does not allocate and grow it again every tick; a smaller one (the
/// 101's) or a larger one (a burst, a sync) is given back once written, and a kept one at the
/// next sweep if nothing refilled it.
const OUT_KEPT_MIN: usize = 1024;
const OUT_KEPT_MAX: usize = 16 * 1024;

/// One connection's state; see the module's documentation.
pub struct Connection {
    /// Bytes to write, in the order they were made: HTTP answers, the 101, then a WebSocket's
    /// events (framed here) and tungstenite's frames (pings, pongs, the close).
    out: Vec<u8>,
    phase: Phase,
    life: Life,
    /// The last complete request (HTTP) or message (WebSocket).
    last_active: Instant,
    /// Frames waiting for a flush before they may be written (the first waits for its commit,
    /// the rest behind it), and their bytes.
    held: VecDeque<HeldFrame>,
    held_bytes: usize,
    /// Reading stopped because too much waits for a flush; the release resumes it. A flag, not
    /// a lifecycle state: a connection closing after its writes may be paused as well.
    read_paused: bool,
    /// How many bytes at the front of `out` finish a frame already partly written, after which
    /// whole frames follow; `None` when not known (HTTP bytes in the way). What lets a slow
    /// consumer's unwritten frames be dropped at its close without cutting one in two.
    front_rest: Option<usize>,
}

/// What the connection speaks.
pub enum Phase {
    Http(HttpState),
    /// A password hash runs for the request at the front; later ones wait in the buffer.
    AwaitingHash(HttpState),
    WebSocket(Box<WsState>),
}

/// The HTTP phase's buffer of requests not yet served.
pub struct HttpState {
    inbuf: Vec<u8>,
    /// When the first byte of the request now in `inbuf` arrived (slowloris deadline).
    request_started: Option<Instant>,
}

/// The WebSocket phase: tungstenite's codec state and the session.
pub struct WsState {
    ctx: WebSocketContext,
    /// The session's user; `None` on the `/_echo` endpoint.
    user: Option<Uuid>,
    last_ping: Instant,
}

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Life {
    /// Reading and answering.
    Open,
    /// A WebSocket close decided during this tick; the close frame follows the tick's events
    /// (so the acks of RPCs already handled go out first). Nothing more is read.
    CloseAfterTick(CloseCode, &'static str),
    /// Close once everything queued is written (`Connection: close`, a framing error, a sent
    /// or answered close frame, a 408). Nothing more is read.
    CloseAfterWrite,
    /// To be reaped at the end of the tick; nothing more is read or written.
    Dead,
}

/// Counts what one read turn handled, against [`READ_BUDGET_MESSAGES`].
#[derive(Default)]
pub struct Turn {
    handled: usize,
}

impl Turn {
    /// Spends the rest of the budget: the message just handled was costly enough for a turn.
    pub fn end(&mut self) {
        self.handled = READ_BUDGET_MESSAGES;
    }
}

/// What became of a frame handed to [`Connection::deliver`].
#[derive(Debug, PartialEq, Eq)]
pub enum Delivery {
    /// In the write buffer: flush the connection.
    Queued,
    /// An event in the write buffer, of this `type` (for the metrics): flush the connection.
    Event(u16),
    /// Not for this connection any more (closing, not upgraded, the peer closed): dropped.
    Dropped,
    /// Past the cap on queued bytes: close it with 1008 (its events stay stored; a reconnect
    /// and a sync recover them).
    SlowConsumer,
}

/// What the loop does once the write buffer went to the socket (or failed to).
#[derive(Debug, PartialEq, Eq)]
pub enum AfterWrite {
    Nothing,
    /// Requests held back while answers were queued can go on: read again next tick.
    ReadAgain,
    /// Done or broken: kill.
    Close,
}

/// What the release of held frames leaves to the loop.
#[derive(Debug, PartialEq, Eq)]
pub struct Released {
    /// The pause is over: read again next tick.
    pub resume: bool,
    /// Closing after its writes, with nothing held any more: flush (which closes it).
    pub close: bool,
}

/// What the once-a-second sweep decided.
#[derive(Debug, PartialEq, Eq)]
pub enum Sweep {
    Nothing,
    /// A ping was queued: flush.
    Pinged,
    /// The request did not arrive in time: answer 408 (the connection closes after it).
    TimedOut,
    /// Silent past its deadline, or will not drain after being closed: kill.
    Expired,
}

impl Connection {
    /// A fresh connection: HTTP, open, nothing read or queued.
    pub fn new(now: Instant) -> Connection {
        Connection {
            out: Vec::new(),
            phase: Phase::Http(HttpState {
                inbuf: Vec::new(),
                request_started: None,
            }),
            life: Life::Open,
            last_active: now,
            held: VecDeque::new(),
            held_bytes: 0,
            read_paused: false,
            front_rest: Some(0),
        }
    }

    /// What it speaks now.
    pub fn phase(&self) -> &Phase {
        &self.phase
    }

    /// Where it is in its life.
    pub fn life(&self) -> Life {
        self.life
    }

    /// Marked for reaping: nothing more is read or written.
    pub fn is_dead(&self) -> bool {
        self.life == Life::Dead
    }

    /// The WebSocket session's user (for the chat core's presence).
    pub fn user(&self) -> Option<Uuid> {
        match &self.phase {
            Phase::WebSocket(ws) => ws.user,
            _ => None,
        }
    }

    /// The bytes to write, in order.
    pub fn pending(&self) -> &[u8] {
        &self.out
    }

    /// The bytes its write buffer and held frames occupy (what its close gives back).
    pub fn buffer_bytes(&self) -> usize {
        self.out.capacity() + self.held_bytes
    }

    /// `n` bytes of [`Connection::pending`] reached the socket.
    pub fn consumed(&mut self, n: usize) {
        // A whole write (the usual case) leaves a boundary; only a partial one, on a full
        // socket, walks the headers of the frames it wrote.
        self.front_rest = if n >= self.out.len() {
            Some(0)
        } else if matches!(self.phase, Phase::WebSocket(_)) {
            self.front_rest
                .and_then(|rest| wire::frame_end_after(&self.out, rest, n))
                .map(|end| end - n)
        } else {
            None
        };
        self.out.drain(..n);
    }

    /// Drops the frames of the write buffer not a byte of which was written, and gives the
    /// buffer's memory back: a slow consumer being closed gets the end of the frame it was
    /// receiving, then the close. Its events stay stored; a sync recovers them.
    pub fn drop_unwritten(&mut self) {
        if let Some(rest) = self.front_rest {
            self.out.truncate(rest);
            self.out.shrink_to_fit();
        }
    }

    /// The one place the lifecycle changes: moves to `to` if that is legal from here, and says
    /// whether it did. `Dead` is final; nothing goes back to `Open`; a close decided for after
    /// the tick may become a close after the writes, not the other way.
    fn step(&mut self, to: Life) -> bool {
        let legal = match (self.life, to) {
            (Life::Dead, _) => false,
            (_, Life::Dead) => true,
            (Life::Open, Life::CloseAfterTick(..)) => matches!(self.phase, Phase::WebSocket(_)),
            (_, Life::CloseAfterWrite) => true,
            _ => false,
        };
        if legal {
            self.life = to;
        }
        legal
    }

    /// Closes once everything queued is written.
    pub fn close_after_write(&mut self) {
        self.step(Life::CloseAfterWrite);
    }

    /// Decides to close a WebSocket after this tick's events; true the first time (the loop
    /// then lists it for [`Connection::tick_close`]).
    pub fn close_after_tick(&mut self, code: CloseCode, reason: &'static str) -> bool {
        self.step(Life::CloseAfterTick(code, reason))
    }

    /// Marks it for reaping; true the first time.
    pub fn kill(&mut self) -> bool {
        self.step(Life::Dead)
    }

    /// Whether the loop may read it this turn. Not when dead, nor while the answers held for a
    /// flush reach half its cap: a client whose answers pile up behind the flush waits for them
    /// (the release resumes it), so it cannot grow the held queue without bound.
    pub fn may_read(&mut self, limits: &Limits) -> bool {
        if self.life == Life::Dead {
            return false;
        }
        if self.held_bytes >= limits.max_outbox_bytes / 2 {
            self.read_paused = true;
            return false;
        }
        true
    }

    /// Whether frames are held: a new frame must queue behind them to keep the order.
    pub(crate) fn holds_frames(&self) -> bool {
        !self.held.is_empty()
    }

    /// How many frames are held (the loop's count of them drops by this at the close).
    pub(crate) fn held_count(&self) -> usize {
        self.held.len()
    }

    /// Holds a frame until `gate` is durable (see [`HeldFrame`]).
    pub(crate) fn hold(&mut self, gate: Option<u64>, frame: Frame) {
        self.held_bytes += frame.byte_len();
        self.held.push_back(HeldFrame { gate, frame });
    }

    /// The frame at the front of the held queue, if `may_release` lets its gate pass.
    pub(crate) fn release_next(
        &mut self,
        may_release: impl FnOnce(Option<u64>) -> bool,
    ) -> Option<Frame> {
        if !may_release(self.held.front()?.gate) {
            return None;
        }
        let held = self.held.pop_front()?;
        self.held_bytes -= held.frame.byte_len();
        Some(held.frame)
    }

    /// After `Connection::release_next` stopped: whether reading resumes and whether a close
    /// that waited for the held frames may go ahead.
    pub fn after_release(&mut self, limits: &Limits) -> Released {
        // A burst (a sync's pages, many events behind an ack) would otherwise leave its queue's
        // allocation with the connection for good.
        if self.held.is_empty() && self.held.capacity() > HELD_SLOTS_KEPT {
            self.held.shrink_to(HELD_SLOTS_KEPT);
        }
        let resume = self.read_paused && self.held_bytes < limits.max_outbox_bytes / 2;
        if resume {
            self.read_paused = false;
        }
        Released {
            resume,
            close: self.held.is_empty() && self.life == Life::CloseAfterWrite,
        }
    }

    /// Puts one frame into the write buffer (the connection is not dead).
    // Once per recipient of every event: inlined into the loop's `deliver`, as it was when it
    // lived there.
    #[inline]
    pub fn deliver(&mut self, frame: Frame, limits: &Limits) -> Delivery {
        let text = match frame {
            Frame::Http(bytes) => {
                self.out.extend_from_slice(&bytes);
                return Delivery::Queued;
            }
            Frame::Event(_) if self.life == Life::CloseAfterWrite => return Delivery::Dropped,
            Frame::Event(text) => text,
        };
        // Not before the upgrade, nor after a close from the peer (only our reply to it may
        // follow).
        let Phase::WebSocket(ws) = &self.phase else {
            return Delivery::Dropped;
        };
        if !ws.ctx.can_write() {
            return Delivery::Dropped;
        }
        if self.out.len() + text.len() + MAX_FRAME_HEADER > limits.max_outbox_bytes {
            return Delivery::SlowConsumer;
        }
        push_text_frame(&mut self.out, &text);
        Delivery::Event(event_type(&text))
    }

    /// What follows a write of [`Connection::pending`]: `result` is the socket write's, joined
    /// with [`Connection::queue_control_frames`]'s.
    pub fn after_write(&mut self, result: tungstenite::Result<()>) -> AfterWrite {
        match result {
            // A request still waiting for its password hash gets its answer first, even from a
            // client that half-closed after sending it.
            Ok(()) if self.life == Life::CloseAfterWrite => {
                if matches!(self.phase, Phase::AwaitingHash(_)) || !self.held.is_empty() {
                    AfterWrite::Nothing
                } else {
                    AfterWrite::Close
                }
            }
            Ok(()) => {
                // An idle connection should cost as little as possible: give the written
                // buffer back, unless it held a WebSocket's events (at least `OUT_KEPT_MIN`),
                // which the next tick would grow again from nothing.
                let keep = matches!(self.phase, Phase::WebSocket(_))
                    && (OUT_KEPT_MIN..=OUT_KEPT_MAX).contains(&self.out.capacity());
                if keep {
                    self.out.clear();
                } else {
                    self.out = Vec::new();
                }
                match &mut self.phase {
                    Phase::Http(http) if !http.inbuf.is_empty() => AfterWrite::ReadAgain,
                    Phase::Http(http) => {
                        http.inbuf = Vec::new();
                        AfterWrite::Nothing
                    }
                    _ => AfterWrite::Nothing,
                }
            }
            Err(e) if is_would_block(&e) => AfterWrite::Nothing,
            Err(_) => AfterWrite::Close,
        }
    }

    /// The once-a-second check: pings a WebSocket due one, expires one silent past the pong
    /// timeout, times out a request that takes too long to arrive (moving to close after the
    /// 408 the loop then sends), expires an idle keep-alive connection and one that will not
    /// drain after being closed.
    pub fn sweep(&mut self, now: Instant, limits: &Limits) -> Sweep {
        // A busy WebSocket keeps its write buffer between ticks; once a second it is given back
        // if empty, so that one gone quiet does not keep it.
        if self.out.is_empty() && self.out.capacity() > 0 {
            self.out = Vec::new();
        }
        let idle = now.saturating_duration_since(self.last_active);
        match self.life {
            Life::Dead => return Sweep::Nothing,
            Life::CloseAfterWrite if idle >= CLOSE_GRACE => return Sweep::Expired,
            Life::CloseAfterWrite => return Sweep::Nothing,
            Life::Open | Life::CloseAfterTick(..) => {}
        }
        match &mut self.phase {
            Phase::WebSocket(_) if idle >= limits.pong_timeout => Sweep::Expired,
            Phase::WebSocket(_) => self.ping_if_due(now, limits),
            Phase::AwaitingHash(_) => Sweep::Nothing,
            Phase::Http(http) => match http.request_started {
                Some(started)
                    if now.saturating_duration_since(started) >= limits.request_timeout =>
                {
                    self.close_after_write();
                    self.last_active = now;
                    Sweep::TimedOut
                }
                Some(_) => Sweep::Nothing,
                None if idle >= limits.http_idle_timeout => Sweep::Expired,
                None => Sweep::Nothing,
            },
        }
    }
}

fn is_would_block(err: &tungstenite::Error) -> bool {
    matches!(err, tungstenite::Error::Io(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

/// The `type` of an event we encoded: every one starts with `{"type":NN`.
fn event_type(text: &str) -> u16 {
    text.get(8..10).and_then(|t| t.parse().ok()).unwrap_or(0)
}
