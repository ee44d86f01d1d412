//! A blocking WebSocket session: tungstenite's client side over a std `TcpStream`. Reads set the
//! socket's read timeout to what is left before a deadline and retry timeouts, so a caller never
//! hangs and never sleeps; pings are answered by tungstenite on the next read or write.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use tungstenite::client::IntoClientRequest;
use tungstenite::handshake::HandshakeError;
use tungstenite::http::{HeaderName, HeaderValue};
use tungstenite::protocol::CloseFrame;
use tungstenite::{Message, WebSocket};

use crate::http::is_retry;

/// Why a session did not open.
#[derive(Debug)]
pub enum ConnectError {
    /// The server answered the upgrade with this HTTP status instead of 101.
    Status(u16),
    /// No upgrade answer within the timeout.
    TimedOut,
    /// A bad URL or header, a failed connect, or a broken handshake.
    Other(String),
}

pub struct Session {
    socket: WebSocket<TcpStream>,
}

impl Session {
    /// Connects to a `ws://host:port/path` URL and upgrades, with `headers` added to the upgrade
    /// request (e.g. `Origin`); `timeout` bounds the handshake and every later write.
    pub fn connect(
        url: &str,
        headers: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<Session, ConnectError> {
        let mut request = url
            .into_client_request()
            .map_err(|e| ConnectError::Other(format!("bad URL {url}: {e}")))?;
        for (name, value) in headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| ConnectError::Other(format!("header name {name:?}: {e}")))?;
            let value = HeaderValue::from_str(value)
                .map_err(|e| ConnectError::Other(format!("header value {value:?}: {e}")))?;
            request.headers_mut().insert(name, value);
        }
        let authority = url
            .strip_prefix("ws://")
            .and_then(|rest| rest.split('/').next())
            .ok_or_else(|| ConnectError::Other(format!("not a ws:// URL: {url}")))?;
        let stream = TcpStream::connect(authority)
            .map_err(|e| ConnectError::Other(format!("connect to {authority}: {e}")))?;
        stream
            .set_nodelay(true)
            .and_then(|()| stream.set_read_timeout(Some(timeout)))
            .and_then(|()| stream.set_write_timeout(Some(timeout)))
            .map_err(|e| ConnectError::Other(e.to_string()))?;
        match tungstenite::client::client(request, stream) {
            Ok((socket, _)) => Ok(Session { socket }),
            Err(HandshakeError::Failure(tungstenite::Error::Http(response))) => {
                Err(ConnectError::Status(response.status().as_u16()))
            }
            Err(HandshakeError::Failure(e)) => Err(ConnectError::Other(format!("handshake: {e}"))),
            Err(HandshakeError::Interrupted(_)) => Err(ConnectError::TimedOut),
        }
    }

    /// One message read before `deadline`, `Ok(None)` once it has passed. Read timeouts and
    /// interruptions are retried, so callers see only messages and real errors.
    pub fn read_before(
        &mut self,
        deadline: Instant,
    ) -> Result<Option<Message>, tungstenite::Error> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.socket.get_mut().set_read_timeout(Some(left))?;
            match self.socket.read() {
                Err(tungstenite::Error::Io(e)) if is_retry(&e) => continue,
                other => return other.map(Some),
            }
        }
    }

    /// Sends a message and flushes it.
    pub fn send(&mut self, message: Message) -> Result<(), tungstenite::Error> {
        self.socket.send(message)
    }

    /// Queues a message without flushing (for bursts and several frames in one write).
    pub fn queue(&mut self, message: Message) -> Result<(), tungstenite::Error> {
        self.socket.write(message)
    }

    pub fn flush(&mut self) -> Result<(), tungstenite::Error> {
        self.socket.flush()
    }

    /// Starts the closing handshake; the server's close frame comes to a later read.
    pub fn close(&mut self, frame: Option<CloseFrame>) -> Result<(), tungstenite::Error> {
        self.socket.close(frame)
    }

    /// The socket underneath, for bytes tungstenite would not send and for half-closing.
    pub fn stream(&mut self) -> &mut TcpStream {
        self.socket.get_mut()
    }
}

/// The upgrade request for `path` on `host`, with a fixed key: for clients that drive the
/// handshake themselves on non-blocking sockets.
pub fn upgrade_request(path: &str, host: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}
