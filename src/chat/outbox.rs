//! What a tick sends: frames addressed to connections, each with when it may leave.

use std::rc::Rc;

/// A live connection: its slab key and a serial that is never reused, so that a delivery meant
/// for a closed connection cannot reach a new one that got the same key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId {
    pub key: usize,
    pub serial: u64,
}

/// Bytes waiting for the end of the tick.
#[derive(Debug, Clone)]
pub enum Frame {
    /// An encoded HTTP response.
    Http(Vec<u8>),
    /// A WebSocket text message; clones share the bytes, so a fan-out is encoded once. `Rc`, not
    /// a `Bytes`: the loop thread alone makes and drops the copies (one per recipient), so an
    /// atomic count would be pure cost (docs/BENCHMARKS.md, "Changes of 2026-12-06 (fifth session)").
    Event(Rc<str>),
}

/// When a frame may leave the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// Once the tick's writes are durable: answers and acks, which promise that something is
    /// stored, and whatever a sync reads.
    Durable,
    /// As soon as `seq` can never be handed out again after a crash (it is under the durable
    /// seq ceiling): stored events to the other connections, which acknowledge nothing to their
    /// reader. They may arrive before the flush; a crash in between loses them, unacknowledged.
    Early { seq: u64 },
    /// At once: transient events (typing), which carry no seq and promise nothing.
    Now,
}

impl Frame {
    pub fn byte_len(&self) -> usize {
        match self {
            Frame::Http(bytes) => bytes.len(),
            Frame::Event(text) => text.len(),
        }
    }
}

/// Everything a tick wants to send, in order, each with its [`Release`].
#[derive(Debug, Default)]
pub struct Outbox {
    items: Vec<(ConnId, Frame, Release)>,
    /// Bytes queued this tick, so the loop can stop a connection whose requests produce more
    /// than its buffers may hold.
    bytes: usize,
}

impl Outbox {
    pub fn push(&mut self, to: ConnId, frame: Frame, release: Release) {
        self.bytes += frame.byte_len();
        self.items.push((to, frame, release));
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Takes the tick's deliveries, leaving the (allocated) buffer in place for the next tick.
    pub fn drain(&mut self) -> std::vec::Drain<'_, (ConnId, Frame, Release)> {
        self.bytes = 0;
        self.items.drain(..)
    }
}
