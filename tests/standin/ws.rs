//! One WebSocket connection of the stand-in: this thread reads frames (tungstenite) and hands
//! each message to the state as an RPC; events reach the socket through the shared writer.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;

use tungstenite::protocol::Role;
use tungstenite::{Error, Message, WebSocket};

use crate::state::{lock, write_close, Shared, Writer};

/// Reads from the connection's own handle, writes through the shared writer, so that
/// tungstenite's own frames (pongs, close replies) never interleave with events.
struct Duplex {
    read: TcpStream,
    write: Writer,
}

impl Read for Duplex {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read.read(buf)
    }
}

impl Write for Duplex {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut stream = self.write.lock().unwrap_or_else(|e| e.into_inner());
        stream.write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.write.lock().unwrap_or_else(|e| e.into_inner()).flush()
    }
}

/// Serves the attached connection `conn` until it ends.
pub fn run(read: TcpStream, leftover: Vec<u8>, writer: Writer, conn: u64, state: &Shared) {
    // An upgraded connection stays open as long as the client likes.
    let _ = read.set_read_timeout(None);
    let duplex = Duplex {
        read,
        write: Arc::clone(&writer),
    };
    let mut socket = WebSocket::from_partially_read(duplex, leftover, Role::Server, None);
    let close_code = loop {
        match socket.read() {
            Ok(Message::Text(text)) => lock(state).rpc(conn, text.as_str()),
            // The stand-in reads a binary message as the text it holds (parley refuses it).
            Ok(Message::Binary(bytes)) => {
                let text = String::from_utf8_lossy(&bytes).into_owned();
                lock(state).rpc(conn, &text)
            }
            Ok(_) => {}
            Err(Error::Utf8(_)) => break Some(1007),
            Err(Error::Protocol(_)) => break Some(1002),
            Err(Error::Capacity(_)) => break Some(1009),
            Err(_) => break None,
        }
    };
    if let Some(code) = close_code {
        let _ = write_close(&writer, code);
    }
    let stream = writer.lock().unwrap_or_else(|e| e.into_inner());
    let _ = stream.shutdown(Shutdown::Write);
    drop(stream);
    lock(state).detach(conn);
}
