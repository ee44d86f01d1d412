//! A slab entry: a connection's socket and the loop's bookkeeping about it, beside the
//! connection's own state machine.

use std::io::{self, Read, Write};
use std::net::IpAddr;

use mio::net::TcpStream;

use super::connection::Connection;

pub(super) struct Slot {
    pub socket: TcpStream,
    pub ip: IpAddr,
    /// Never reused; guards deliveries against slab key reuse.
    pub serial: u64,
    pub conn: Connection,
    // The flags below are the loop's, not the connection's life: list membership (so a key
    // is listed once however often asked) and what the socket last reported.
    /// On `to_flush` already.
    pub flush_queued: bool,
    /// On `read_again` already.
    pub read_queued: bool,
    /// The tick in which it was last read: one read turn per connection per tick.
    pub read_tick: u64,
    /// The last read got less than it asked for, so the socket's receive queue was empty; data
    /// arriving after it brings a new readiness event (the registration is edge-triggered), and
    /// until then another read would only return `WouldBlock`: a system call saved per event.
    pub socket_drained: bool,
    /// The peer's end of stream (or an error) was reported: no event will follow, so reads go on
    /// until they see it (nginx's `pending_eof`).
    pub peer_closed: bool,
    /// The bytes of its write buffer the loop's total counts (`budget`).
    pub queued: usize,
    /// Its last write left bytes behind: the socket was full, the peer is not keeping up.
    pub backlogged: bool,
    /// Closed for not keeping up (shed or past its own cap): its bytes no longer count against
    /// the budget.
    pub closing: bool,
}

impl Slot {
    pub fn new(socket: TcpStream, ip: IpAddr, serial: u64, conn: Connection) -> Slot {
        Slot {
            socket,
            ip,
            serial,
            conn,
            flush_queued: false,
            read_queued: false,
            read_tick: 0,
            socket_drained: false,
            peer_closed: false,
            queued: 0,
            backlogged: false,
            closing: false,
        }
    }

    /// The socket as a WebSocket's source, which notes when it was drained; and the connection.
    pub fn websocket_source(&mut self) -> (SocketRead<'_>, &mut Connection) {
        (
            SocketRead {
                socket: &mut self.socket,
                drained: &mut self.socket_drained,
                peer_closed: self.peer_closed,
            },
            &mut self.conn,
        )
    }

    /// Writes the connection's pending bytes; `WouldBlock` when the socket is full.
    pub fn write_pending(&mut self) -> io::Result<()> {
        while !self.conn.pending().is_empty() {
            match self.socket.write(self.conn.pending()) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.conn.consumed(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// The socket read through, skipping the read a drained socket would answer with `WouldBlock`.
pub(super) struct SocketRead<'a> {
    socket: &'a mut TcpStream,
    drained: &'a mut bool,
    peer_closed: bool,
}

impl Read for SocketRead<'_> {
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
