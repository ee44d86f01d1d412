//! Many WebSocket clients on one mio loop: non-blocking connects, a hand-written upgrade request,
//! then a tungstenite client context per socket. Writes are buffered while a tick's messages are
//! handled and each client is flushed once at the end of the tick, the way the server does it,
//! so the load generator stays cheap enough to keep one server core busy.

use std::io::{self, Read, Write};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use parley_client::ws::upgrade_request;
use tungstenite::protocol::{Role, WebSocketConfig, WebSocketContext};
use tungstenite::Message;

use crate::setup::Endpoint;

/// Nanoseconds since this process started, on the monotonic clock: the stamp in every message.
pub fn now_ns() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

struct Client {
    socket: TcpStream,
    phase: Phase,
    flush_queued: bool,
}

enum Phase {
    Connecting { request_sent: bool, head: Vec<u8> },
    Open(Box<WebSocketContext>),
    Closed,
}

pub struct Swarm {
    poll: Poll,
    events: Events,
    clients: Vec<Client>,
    to_flush: Vec<usize>,
    config: WebSocketConfig,
    host: String,
    /// Clients closed by the server or by an error since the swarm opened.
    pub closed: usize,
    first_close_reason: Option<String>,
}

/// Messages a handler queues for the client whose message it was given.
pub type Replies = Vec<String>;

/// Called with (client, message text, when its socket read began in [`now_ns`] time, replies).
/// One clock reading per socket read rather than per message: the messages of one read arrived
/// together, so one reading stamps them all, and the generator spends its CPU on traffic.
pub type Handler<'a> = dyn FnMut(usize, &str, u64, &mut Replies) + 'a;

impl Swarm {
    /// Opens a client for each WebSocket path, at most `in_flight` handshakes at a time, and
    /// returns when all are upgraded (or any failed).
    pub fn open(
        endpoint: &Endpoint,
        paths: Vec<String>,
        in_flight: usize,
    ) -> Result<Swarm, String> {
        let mut swarm = Swarm {
            poll: Poll::new().map_err(|e| format!("poll: {e}"))?,
            events: Events::with_capacity(4096),
            clients: Vec::with_capacity(paths.len()),
            to_flush: Vec::new(),
            // Small read buffers: the default (128 KiB each) would not fit 15,000 clients.
            config: WebSocketConfig::default()
                .read_buffer_size(4096)
                .write_buffer_size(16 * 1024)
                .max_message_size(Some(16 << 20)),
            host: endpoint.host.clone(),
            closed: 0,
            first_close_reason: None,
        };
        let total = paths.len();
        let started = Instant::now();
        let mut last_print = Instant::now();
        let mut opened = 0;
        loop {
            while swarm.clients.len() < total && swarm.clients.len() - opened < in_flight {
                let mut socket = TcpStream::connect(endpoint.addr)
                    .map_err(|e| format!("connect {}: {e}", endpoint.addr))?;
                let token = Token(swarm.clients.len());
                swarm
                    .poll
                    .registry()
                    .register(&mut socket, token, Interest::READABLE | Interest::WRITABLE)
                    .map_err(|e| format!("register: {e}"))?;
                swarm.clients.push(Client {
                    socket,
                    phase: Phase::Connecting {
                        request_sent: false,
                        head: Vec::new(),
                    },
                    flush_queued: false,
                });
            }
            if opened == total {
                break;
            }
            swarm
                .poll
                .poll(&mut swarm.events, Some(Duration::from_millis(100)))
                .map_err(|e| format!("poll: {e}"))?;
            let ready: Vec<usize> = swarm.events.iter().map(|e| e.token().0).collect();
            for index in ready {
                if swarm.advance_handshake(index, &paths[index])? {
                    opened += 1;
                }
            }
            if last_print.elapsed() >= Duration::from_secs(1) {
                last_print = Instant::now();
                eprintln!("parley-load: connecting: {opened}/{total} WebSockets open");
            }
            if started.elapsed() > Duration::from_secs(120) {
                return Err(format!(
                    "only {opened} of {total} WebSockets opened in 120 s"
                ));
            }
        }
        eprintln!(
            "parley-load: {total} WebSockets open in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        Ok(swarm)
    }

    /// Moves one client's handshake on; true when it just became open.
    fn advance_handshake(&mut self, index: usize, path: &str) -> Result<bool, String> {
        let config = self.config;
        let client = &mut self.clients[index];
        let Phase::Connecting { request_sent, head } = &mut client.phase else {
            return Ok(false);
        };
        if !*request_sent {
            if let Some(err) = client.socket.take_error().ok().flatten() {
                return Err(format!("connect: {err}"));
            }
            if client.socket.peer_addr().is_err() {
                return Ok(false); // not connected yet
            }
            let _ = client.socket.set_nodelay(true);
            let request = upgrade_request(path, &self.host);
            // A fresh socket's send buffer always takes a few hundred bytes at once.
            client
                .socket
                .write_all(request.as_bytes())
                .map_err(|e| format!("upgrade request: {e}"))?;
            *request_sent = true;
        }
        let mut chunk = [0u8; 4096];
        loop {
            match client.socket.read(&mut chunk) {
                Ok(0) => return Err(format!("server closed during the upgrade of {path}")),
                Ok(n) => head.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("upgrade of {path}: {e}")),
            }
        }
        let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") else {
            return Ok(false);
        };
        if !head.starts_with(b"HTTP/1.1 101") {
            let status = String::from_utf8_lossy(&head[..end]);
            return Err(format!(
                "upgrade of {path} refused: {}",
                status.lines().next().unwrap_or("")
            ));
        }
        let leftover = head.split_off(end + 4);
        client.phase = Phase::Open(Box::new(WebSocketContext::from_partially_read(
            leftover,
            Role::Client,
            Some(config),
        )));
        Ok(true)
    }

    /// Buffers a text message for a client; it leaves at the end of the tick.
    pub fn send(&mut self, index: usize, text: String) {
        let client = &mut self.clients[index];
        let Phase::Open(ctx) = &mut client.phase else {
            return;
        };
        match ctx.write(&mut client.socket, Message::Text(text.into())) {
            Ok(()) => {}
            Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => {
                self.mark_closed(index, format!("write: {e}"));
                return;
            }
        }
        self.queue_flush(index);
    }

    /// One tick: sends what [`Swarm::send`] buffered, waits up to `timeout`, hands every text
    /// message received to `handler` (which may queue replies for that client), then flushes
    /// each client that has output.
    pub fn tick(&mut self, timeout: Duration, handler: &mut Handler) -> Result<(), String> {
        self.flush_queued();
        match self.poll.poll(&mut self.events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("poll: {e}")),
        }
        let ready: Vec<(usize, bool, bool)> = self
            .events
            .iter()
            .map(|e| {
                (
                    e.token().0,
                    e.is_readable() || e.is_read_closed() || e.is_error(),
                    e.is_writable(),
                )
            })
            .collect();
        let mut replies = Replies::new();
        for (index, readable, writable) in ready {
            if readable {
                self.read(index, handler, &mut replies);
            }
            if writable {
                self.queue_flush(index);
            }
        }
        self.flush_queued();
        Ok(())
    }

    fn read(&mut self, index: usize, handler: &mut Handler, replies: &mut Replies) {
        let received_at = now_ns();
        loop {
            let client = &mut self.clients[index];
            let Phase::Open(ctx) = &mut client.phase else {
                return;
            };
            match ctx.read(&mut client.socket) {
                Ok(Message::Text(text)) => {
                    handler(index, text.as_str(), received_at, replies);
                    for reply in replies.drain(..) {
                        match ctx.write(&mut client.socket, Message::Text(reply.into())) {
                            Ok(()) => {}
                            Err(tungstenite::Error::Io(e))
                                if e.kind() == io::ErrorKind::WouldBlock => {}
                            Err(e) => {
                                self.mark_closed(index, format!("write: {e}"));
                                return;
                            }
                        }
                    }
                    self.queue_flush(index);
                }
                Ok(Message::Close(frame)) => {
                    self.mark_closed(index, format!("closed by the server: {frame:?}"));
                    return;
                }
                // Pings are answered by tungstenite; the flush sends the pong.
                Ok(_) => self.queue_flush(index),
                Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    self.mark_closed(index, format!("read: {e}"));
                    return;
                }
            }
        }
    }

    fn queue_flush(&mut self, index: usize) {
        let client = &mut self.clients[index];
        if !client.flush_queued {
            client.flush_queued = true;
            self.to_flush.push(index);
        }
    }

    fn flush_queued(&mut self) {
        for index in std::mem::take(&mut self.to_flush) {
            let client = &mut self.clients[index];
            client.flush_queued = false;
            let Phase::Open(ctx) = &mut client.phase else {
                continue;
            };
            match ctx.flush(&mut client.socket) {
                Ok(()) => {}
                // The rest goes when the socket says it is writable again.
                Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => self.mark_closed(index, format!("flush: {e}")),
            }
        }
    }

    fn mark_closed(&mut self, index: usize, reason: String) {
        let client = &mut self.clients[index];
        if !matches!(client.phase, Phase::Closed) {
            client.phase = Phase::Closed;
            let _ = self.poll.registry().deregister(&mut client.socket);
            self.closed += 1;
            self.first_close_reason.get_or_insert(reason);
        }
    }

    pub fn first_close_reason(&self) -> Option<&str> {
        self.first_close_reason.as_deref()
    }

    pub fn len(&self) -> usize {
        self.clients.len()
    }
}

/// The `type` of an event: parley and the relays both start every event with `{"type":N`.
pub fn event_type(text: &str) -> Option<u16> {
    leading_number(text.strip_prefix("{\"type\":")?).map(|n| n as u16)
}

/// The `seq` of a stored event, which parley puts right after its `type`; none on transient ones.
pub fn event_seq(text: &str) -> Option<u64> {
    let after_type = text
        .strip_prefix("{\"type\":")?
        .trim_start_matches(|c: char| c.is_ascii_digit());
    leading_number(after_type.strip_prefix(",\"seq\":")?)
}

/// The send stamp at the start of a message's `data`.
pub fn data_stamp(text: &str) -> Option<u64> {
    leading_number(after_key(text, "\"data\":\"")?)
}

/// The text after the first `key`. A scan for the key's first byte, then a compare: cheaper
/// than `str::find`'s searcher set-up for a short message, and this runs for every delivery.
pub fn after_key<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let (bytes, key) = (text.as_bytes(), key.as_bytes());
    let first = *key.first()?;
    let mut from = 0;
    while let Some(offset) = bytes[from..].iter().position(|&b| b == first) {
        let at = from + offset;
        if bytes[at..].starts_with(key) {
            return text.get(at + key.len()..);
        }
        from = at + 1;
    }
    None
}

pub fn leading_number(text: &str) -> Option<u64> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    text[..digits].parse().ok()
}

#[cfg(test)]
mod tests;
