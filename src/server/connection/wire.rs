//! The byte stream tungstenite reads and writes through, and the framing of events.

use std::io::{self, Read, Write};

/// Room in a connection's write buffer for tungstenite's frames beyond the events' cap, so that
/// a close frame (at most 131 bytes) always fits behind events that filled it.
const CONTROL_ROOM: usize = 1024;

/// The stream as tungstenite sees it. Reads come from `source` (the socket, or bytes in a
/// test); writes join `pending` behind what is queued there (the 101, answers, events), and
/// only the loop writes that to the socket. Were tungstenite to write the socket itself, a ping,
/// pong or close it had only partly written when the socket filled up would wait in its own
/// buffer while the events queued after it went out first, inside that frame.
pub(super) struct Wire<'a, R> {
    source: &'a mut R,
    pending: &'a mut Vec<u8>,
    /// `pending` may not grow past this through tungstenite (a client of the echo endpoint that
    /// sends but never reads).
    limit: usize,
}

impl<'a, R: Read> Wire<'a, R> {
    /// `out_cap` is the connection's cap on queued events (tungstenite's frames may add
    /// `CONTROL_ROOM` to it).
    pub(super) fn new(source: &'a mut R, pending: &'a mut Vec<u8>, out_cap: usize) -> Self {
        Wire {
            source,
            pending,
            limit: out_cap + CONTROL_ROOM,
        }
    }
}

impl<R: Read> Read for Wire<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.source.read(buf)
    }
}

impl<R> Write for Wire<'_, R> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.pending.len() + buf.len() > self.limit {
            return Err(io::Error::other("write buffer full"));
        }
        self.pending.extend_from_slice(buf);
        Ok(buf.len())
    }

    /// Nothing to do: the loop writes `pending` once tungstenite has added to it.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A source with nothing to read, for tungstenite's writes (pings, the close, flushes), which
/// never read.
pub(super) struct NoRead;

impl Read for NoRead {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Err(io::ErrorKind::WouldBlock.into())
    }
}

/// The longest header [`push_text_frame`] writes (a 64-bit length).
pub const MAX_FRAME_HEADER: usize = 10;

/// Appends `text` to `out` as one unmasked, unfragmented WebSocket text frame (RFC 6455 5.2),
/// the bytes tungstenite's `write` would produce for it. Events are framed here rather than
/// through tungstenite, whose `write` built each recipient's frame in its own buffer
/// (docs/BENCHMARKS.md, "Changes of 2026-12-06 (fifth session)"). Control frames (pings, pongs, the close) still go through tungstenite, which adds them to
/// the same buffer through the `Wire`, in the order made.
pub fn push_text_frame(out: &mut Vec<u8>, text: &str) {
    const FIN_TEXT: u8 = 0x81;
    let len = text.len();
    out.reserve(MAX_FRAME_HEADER + len);
    out.push(FIN_TEXT);
    if len < 126 {
        out.push(len as u8);
    } else if let Ok(len) = u16::try_from(len) {
        out.push(126);
        out.extend_from_slice(&len.to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(text.as_bytes());
}

/// Where the frame that ends at or after `n` ends, walking whole frames from `start` (the
/// start of one) in bytes we framed or tungstenite did (server frames: final, unmasked);
/// `None` when a header there is not one of those or is cut off.
pub(super) fn frame_end_after(out: &[u8], start: usize, n: usize) -> Option<usize> {
    let mut at = start;
    while at < n {
        let header = out.get(at..at + 2)?;
        // FIN with a text, binary, close, ping or pong opcode; no mask.
        if !matches!(header[0], 0x81 | 0x82 | 0x88 | 0x89 | 0x8A) || header[1] & 0x80 != 0 {
            return None;
        }
        let (head, len) = match header[1] {
            126 => (
                4,
                u16::from_be_bytes(out.get(at + 2..at + 4)?.try_into().ok()?) as usize,
            ),
            127 => {
                let len = u64::from_be_bytes(out.get(at + 2..at + 10)?.try_into().ok()?);
                (10, usize::try_from(len).ok()?)
            }
            short => (2, usize::from(short)),
        };
        at = at.checked_add(head + len)?;
    }
    Some(at)
}
