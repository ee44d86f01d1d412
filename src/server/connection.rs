//! One client connection as the loop holds it: the socket, its phase (HTTP or WebSocket), the
//! bytes waiting to be written (events framed here), and the socket wrapper tungstenite reads and
//! writes through.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::IpAddr;
use std::time::Instant;

use mio::net::TcpStream;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::WebSocketContext;
use uuid::Uuid;

use super::durability::HeldFrame;

pub struct Connection {
    pub socket: TcpStream,
    pub ip: IpAddr,
    /// Never reused; guards deliveries against slab key reuse.
    pub serial: u64,
    /// Bytes to write, in the order they were made: HTTP answers, the 101, then a WebSocket's
    /// events (framed by the server itself) and tungstenite's frames (pings, pongs, the close).
    pub out: Vec<u8>,
    pub phase: Phase,
    /// The last complete request (HTTP) or frame (WebSocket).
    pub last_active: Instant,
    pub flush_queued: bool,
    /// On the `read_again` list already.
    pub read_queued: bool,
    /// The tick in which it was last read: one read budget per connection per tick.
    pub read_tick: u64,
    /// Close once everything queued is written (`Connection: close`, framing errors, a sent
    /// close frame).
    pub close_after_write: bool,
    pub dead: bool,
    /// Frames waiting for a flush before they may be written (the first waits for its commit,
    /// the rest behind it), and their bytes.
    pub held: VecDeque<HeldFrame>,
    pub held_bytes: usize,
    /// Reading stopped because too much waits for a flush; the release reads again.
    pub read_paused: bool,
    /// The last read got less than it asked for, so the socket's receive queue was empty; data
    /// arriving after it brings a new readiness event (the registration is edge-triggered), and
    /// until then another read would only return `WouldBlock`: a system call saved per event.
    pub socket_drained: bool,
    /// The peer's end of stream (or an error) was reported: no event will follow, so reads go on
    /// until they see it (nginx's `pending_eof`).
    pub peer_closed: bool,
}

pub enum Phase {
    Http(HttpConn),
    WebSocket(Box<WsConn>),
}

pub struct HttpConn {
    pub inbuf: Vec<u8>,
    /// A password hash is running for the request at the front; later ones wait.
    pub waiting: bool,
    /// When the first byte of the request now in `inbuf` arrived (slowloris deadline).
    pub request_started: Option<Instant>,
}

pub struct WsConn {
    pub ctx: WebSocketContext,
    /// The session's user; `None` on the `/_echo` endpoint.
    pub user: Option<Uuid>,
    pub last_ping: Instant,
    /// A close decided during this tick, sent after the tick's events (so the acks of RPCs
    /// already handled go out first). Messages arriving meanwhile are not handled.
    pub closing: Option<(CloseCode, &'static str)>,
}

impl Connection {
    pub fn new(socket: TcpStream, ip: IpAddr, serial: u64, now: Instant) -> Connection {
        Connection {
            socket,
            ip,
            serial,
            out: Vec::new(),
            phase: Phase::Http(HttpConn {
                inbuf: Vec::new(),
                waiting: false,
                request_started: None,
            }),
            last_active: now,
            flush_queued: false,
            read_queued: false,
            read_tick: 0,
            close_after_write: false,
            dead: false,
            held: VecDeque::new(),
            held_bytes: 0,
            read_paused: false,
            socket_drained: false,
            peer_closed: false,
        }
    }

    /// The socket as tungstenite should see it; `out_cap` is the connection's cap on queued
    /// events (tungstenite's frames may add `CONTROL_ROOM` to it).
    pub fn wire(&mut self, out_cap: usize) -> (Wire<'_>, &mut Phase) {
        (
            Wire {
                socket: &mut self.socket,
                pending: &mut self.out,
                limit: out_cap + CONTROL_ROOM,
                drained: &mut self.socket_drained,
                peer_closed: self.peer_closed,
            },
            &mut self.phase,
        )
    }
}

/// Room in a connection's write buffer for tungstenite's frames beyond the events' cap, so that
/// a close frame (at most 131 bytes) always fits behind events that filled it.
const CONTROL_ROOM: usize = 1024;

/// The socket as tungstenite sees it. Reads come from the socket; writes join `out` behind what
/// is queued there (the 101, answers, events), and only [`Wire::write_pending`] writes the
/// socket. Were tungstenite to write the socket itself, a ping, pong or close it had only partly
/// written when the socket filled up would wait in its own buffer while the events queued after
/// it went out first, inside that frame.
pub struct Wire<'a> {
    socket: &'a mut TcpStream,
    pending: &'a mut Vec<u8>,
    /// `pending` may not grow past this through tungstenite (a client of the echo endpoint that
    /// sends but never reads).
    limit: usize,
    drained: &'a mut bool,
    peer_closed: bool,
}

impl Wire<'_> {
    /// Writes the raw bytes; `WouldBlock` when the socket is full.
    pub fn write_pending(&mut self) -> io::Result<()> {
        while !self.pending.is_empty() {
            match self.socket.write(self.pending) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.pending.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

impl Read for Wire<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if *self.drained {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = self.socket.read(buf)?;
        // Zero is the end of the stream, which the caller must see; when the peer's end was
        // reported with its last data, that zero is still to come.
        *self.drained = n > 0 && n < buf.len() && !self.peer_closed;
        Ok(n)
    }
}

impl Write for Wire<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.pending.len() + buf.len() > self.limit {
            return Err(io::Error::other("write buffer full"));
        }
        self.pending.extend_from_slice(buf);
        Ok(buf.len())
    }

    /// Nothing to do: `Server::flush` writes `pending` once tungstenite has added to it.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The longest header [`push_text_frame`] writes (a 64-bit length).
pub const MAX_FRAME_HEADER: usize = 10;

/// Appends `text` to `out` as one unmasked, unfragmented WebSocket text frame (RFC 6455 5.2),
/// the bytes tungstenite's `write` would produce for it. `Server::deliver` frames events here
/// rather than through tungstenite, whose `write` built each recipient's frame in its own buffer
/// (5% of the loop under `fanout`). Control frames (pings, pongs, the close) still go through
/// tungstenite, which adds them to the same buffer through the [`Wire`], in the order made.
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

#[cfg(test)]
mod tests {
    use super::*;
    use tungstenite::protocol::Role;
    use tungstenite::Message;

    /// The frame of every length class (7-bit, 16-bit, 64-bit) is byte for byte tungstenite's.
    #[test]
    fn text_frames_are_the_bytes_tungstenite_writes() {
        for len in [0, 1, 125, 126, 127, 65_535, 65_536, 70_000] {
            let text = "x".repeat(len);
            let mut ours = b"before".to_vec();
            push_text_frame(&mut ours, &text);
            let mut theirs = std::io::Cursor::new(b"before".to_vec());
            theirs.set_position(6);
            let mut server = WebSocketContext::new(Role::Server, None);
            server.write(&mut theirs, Message::text(text)).unwrap();
            server.flush(&mut theirs).unwrap();
            assert_eq!(ours, theirs.into_inner(), "length {len}");
        }
    }

    /// tungstenite's frames join the buffer in the order they are made and never reach the
    /// socket on their own: a ping made between two events leaves between them, whole, and only
    /// when the buffer is written. (When tungstenite wrote the socket itself, a ping cut short by
    /// a full socket was finished after the events queued behind it: inside its frame.)
    #[test]
    fn control_frames_queue_behind_events_in_the_order_made() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut peer = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server_side, addr) = listener.accept().unwrap();
        server_side.set_nonblocking(true).unwrap();
        let socket = TcpStream::from_std(server_side);
        let mut conn = Connection::new(socket, addr.ip(), 1, Instant::now());
        let mut ctx = WebSocketContext::new(Role::Server, None);

        push_text_frame(&mut conn.out, "first");
        let (mut wire, _) = conn.wire(1 << 20);
        ctx.write(&mut wire, Message::Ping(vec![1, 2, 3, 4].into()))
            .unwrap();
        ctx.flush(&mut wire).unwrap();
        peer.set_nonblocking(true).unwrap();
        let mut byte = [0u8; 1];
        let nothing = peer.read(&mut byte).unwrap_err();
        assert_eq!(nothing.kind(), io::ErrorKind::WouldBlock, "the ping waits");
        push_text_frame(&mut conn.out, "second");
        conn.wire(1 << 20).0.write_pending().unwrap();

        let mut expected = Vec::new();
        push_text_frame(&mut expected, "first");
        expected.extend_from_slice(&[0x89, 4, 1, 2, 3, 4]);
        push_text_frame(&mut expected, "second");
        peer.set_nonblocking(false).unwrap();
        peer.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let mut got = vec![0u8; expected.len()];
        peer.read_exact(&mut got).unwrap();
        assert_eq!(got, expected);
    }

    /// What tungstenite adds stops at the cap and the room for a close frame.
    #[test]
    fn tungstenite_cannot_grow_the_buffer_past_its_cap() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let _peer = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server_side, addr) = listener.accept().unwrap();
        let mut conn = Connection::new(
            TcpStream::from_std(server_side),
            addr.ip(),
            1,
            Instant::now(),
        );
        let (mut wire, _) = conn.wire(100);
        assert_eq!(wire.write(&[0; 1000]).unwrap(), 1000);
        assert_eq!(wire.write(&[0; 124]).unwrap(), 124);
        assert!(wire.write(&[0; 1]).is_err(), "100 + 1024 bytes at most");
    }
}
