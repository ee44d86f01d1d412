//! The event loop: the only code that touches mio. One thread, one `Poll`, one slab of
//! connections (slab key = mio `Token`). Each tick: read what is ready and hand it to the HTTP
//! parser, the REST handlers or the chat core; make the tick's writes durable with one store
//! flush; then release the tick's outbox into the connections' write buffers and write each
//! connection at most once.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, Role, WebSocketConfig, WebSocketContext};
use tungstenite::Message;
use uuid::Uuid;

use crate::api::{Api, Outcome, Pending};
use crate::auth::{self, Jwt};
use crate::chat::{Chat, ChatLimits, ConnId, Frame};
use crate::clock::wall_ms;
use crate::config::{Config, Limits};
use crate::error::ApiError;
use crate::hasher::{Busy, Hasher};
use crate::http::{self, Parsed, Response};
use crate::protocol::RpcError;
use crate::store::Store;

const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX - 2);

/// WebSocket messages handled from one connection per tick before the others get their turn.
const READ_BUDGET_MESSAGES: usize = 64;
/// HTTP bytes read from one connection per tick before the others get their turn.
const READ_BUDGET_BYTES: usize = 128 * 1024;
/// How often pings, pong timeouts and idle HTTP connections are checked.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);
/// How soon to retry `accept` after it failed (e.g. out of file descriptors).
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

/// A password-hashing job's context: who asked, what for, and whether to keep the connection.
type HashContext = (ConnId, Pending, bool);

pub struct Server {
    poll: Poll,
    listener: TcpListener,
    conns: Slab<Connection>,
    chat: Chat,
    api: Api,
    hasher: Hasher<HashContext>,
    limits: Limits,
    ws_config: WebSocketConfig,
    next_serial: u64,
    /// Connections with bytes to write this tick.
    to_flush: Vec<usize>,
    /// Connections to read again next tick: their read budget ran out, or they just became
    /// able to go on (a hash finished, an upgrade left frames in the buffer).
    read_again: Vec<usize>,
    /// Connections to close at the end of the tick.
    to_reap: Vec<usize>,
    /// `accept` failed; try again soon instead of waiting for the next connection's edge.
    accept_pending: bool,
    next_sweep: Instant,
}

struct Connection {
    socket: TcpStream,
    serial: u64,
    /// Raw bytes (HTTP answers, the 101) that go out before any WebSocket frame.
    out: Vec<u8>,
    phase: Phase,
    last_active: Instant,
    flush_queued: bool,
    /// Close once `out` is written (`Connection: close`, framing errors, a sent close frame).
    close_after_write: bool,
    dead: bool,
}

enum Phase {
    Http {
        inbuf: Vec<u8>,
        /// A password hash is running for the request at the front; later ones wait.
        waiting: bool,
    },
    WebSocket(Box<WsConn>),
}

struct WsConn {
    ctx: WebSocketContext,
    user: Uuid,
    last_ping: Instant,
}

/// The socket as tungstenite sees it: raw bytes queued before the upgrade go out first, so a
/// WebSocket frame can never overtake the 101 or an earlier pipelined answer.
struct Wire<'a> {
    socket: &'a mut TcpStream,
    pending: &'a mut Vec<u8>,
}

impl Wire<'_> {
    fn write_pending(&mut self) -> io::Result<()> {
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
        self.socket.read(buf)
    }
}

impl Write for Wire<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_pending()?;
        self.socket.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.write_pending()?;
        self.socket.flush()
    }
}

impl Server {
    /// Opens the store, rebuilds the indices, binds the listener and starts the hash workers.
    pub fn bind(config: &Config) -> io::Result<Server> {
        std::fs::create_dir_all(&config.data_dir)?;
        let secret = auth::load_or_create_secret(config.jwt_secret.as_deref(), &config.data_dir)?;
        let store = Store::open(&config.data_dir.join("db"), config.cache_bytes)
            .map_err(|e| io::Error::other(format!("opening the store: {e}")))?;
        let limits = config.limits.clone();
        let chat = Chat::open(
            store,
            ChatLimits {
                max_data_bytes: limits.max_data_bytes,
                sync_default_limit: limits.sync_default_limit,
                sync_max_limit: limits.sync_max_limit,
                sync_max_bytes: limits.max_outbox_bytes / 2,
            },
        )
        .map_err(|e| io::Error::other(format!("loading the store: {e}")))?;

        let poll = Poll::new()?;
        let mut listener = TcpListener::bind(config.listen)?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let hasher = Hasher::start(config.hash_workers, limits.hash_queue, waker);
        let local = listener.local_addr()?;
        let api = Api::new(
            Jwt::new(&secret),
            config.public_url.clone(),
            local.to_string(),
        );
        let ws_config = WebSocketConfig::default()
            .read_buffer_size(limits.ws_read_buffer_bytes)
            .write_buffer_size(64 * 1024)
            .max_write_buffer_size(limits.max_outbox_bytes)
            .max_message_size(Some(limits.max_ws_message_bytes))
            .max_frame_size(Some(limits.max_ws_message_bytes));
        Ok(Server {
            poll,
            listener,
            conns: Slab::new(),
            chat,
            api,
            hasher,
            limits,
            ws_config,
            next_serial: 0,
            to_flush: Vec::new(),
            read_again: Vec::new(),
            to_reap: Vec::new(),
            accept_pending: false,
            next_sweep: Instant::now() + SWEEP_INTERVAL,
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Runs until the store fails (then nothing more can be acknowledged, so it stops).
    pub fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = if !self.read_again.is_empty() {
                Duration::ZERO
            } else if self.accept_pending {
                ACCEPT_RETRY
            } else {
                self.next_sweep.saturating_duration_since(Instant::now())
            };
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            let wall = wall_ms();
            let now = Instant::now();
            let again = std::mem::take(&mut self.read_again);

            if self.accept_pending {
                self.accept(now);
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(now),
                    WAKER => self.collect_hashes(wall),
                    Token(key) => {
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            self.read(key, wall, now);
                        }
                        if event.is_writable() {
                            self.queue_flush(key);
                        }
                    }
                }
            }
            for key in again {
                self.read(key, wall, now);
            }
            if now >= self.next_sweep {
                self.sweep(now);
                self.next_sweep = now + SWEEP_INTERVAL;
            }

            // Group commit: everything this tick wrote becomes durable before any of it is
            // acknowledged. A failed flush means acks would lie, so the server stops.
            self.chat
                .commit()
                .map_err(|e| io::Error::other(format!("store flush failed: {e}")))?;
            self.release_outbox();
            for key in std::mem::take(&mut self.to_flush) {
                self.flush(key);
            }
            for key in std::mem::take(&mut self.to_reap) {
                self.close(key);
            }
        }
    }

    fn accept(&mut self, now: Instant) {
        self.accept_pending = false;
        loop {
            match self.listener.accept() {
                Ok((mut socket, _peer)) => {
                    let _ = socket.set_nodelay(true);
                    let entry = self.conns.vacant_entry();
                    let key = entry.key();
                    if let Err(e) = self.poll.registry().register(
                        &mut socket,
                        Token(key),
                        Interest::READABLE | Interest::WRITABLE,
                    ) {
                        eprintln!("parley: register failed: {e}");
                        continue;
                    }
                    self.next_serial += 1;
                    entry.insert(Connection {
                        socket,
                        serial: self.next_serial,
                        out: Vec::new(),
                        phase: Phase::Http {
                            inbuf: Vec::new(),
                            waiting: false,
                        },
                        last_active: now,
                        flush_queued: false,
                        close_after_write: false,
                        dead: false,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    eprintln!("parley: accept failed: {e}; retrying shortly");
                    self.accept_pending = true;
                    return;
                }
            }
        }
    }

    fn read(&mut self, key: usize, wall: u64, now: Instant) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.dead {
            return;
        }
        match conn.phase {
            Phase::Http { .. } => self.read_http(key, wall, now),
            Phase::WebSocket(_) => self.read_websocket(key, wall, now),
        }
    }

    fn read_http(&mut self, key: usize, wall: u64, now: Instant) {
        let conn = &mut self.conns[key];
        let Phase::Http { inbuf, waiting } = &mut conn.phase else {
            return;
        };
        if *waiting || conn.close_after_write {
            return;
        }
        let mut budget_left = true;
        loop {
            if inbuf.len() >= READ_BUDGET_BYTES {
                budget_left = false;
                break;
            }
            let start = inbuf.len();
            inbuf.resize(start + 4096, 0);
            match conn.socket.read(&mut inbuf[start..]) {
                Ok(0) => {
                    inbuf.truncate(start);
                    conn.close_after_write = true;
                    break;
                }
                Ok(n) => inbuf.truncate(start + n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    inbuf.truncate(start);
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => inbuf.truncate(start),
                Err(_) => {
                    inbuf.truncate(start);
                    self.kill(key);
                    return;
                }
            }
        }
        let eof = conn.close_after_write;
        conn.close_after_write = false;
        self.serve_http(key, wall, now);
        let conn = &mut self.conns[key];
        if eof {
            conn.close_after_write = true;
            self.queue_flush(key);
        } else if !budget_left {
            self.read_again.push(key);
        }
    }

    /// Answers the complete requests at the front of the connection's buffer, in order, until
    /// one has to wait for a password hash or the connection upgrades.
    fn serve_http(&mut self, key: usize, wall: u64, now: Instant) {
        let id = self.conn_id(key);
        loop {
            let conn = &mut self.conns[key];
            let Phase::Http { inbuf, waiting } = &mut conn.phase else {
                return;
            };
            if *waiting || conn.close_after_write || inbuf.is_empty() {
                return;
            }
            let request = match http::parse(inbuf, &self.limits) {
                Ok(Parsed::Partial) => return,
                Ok(Parsed::Complete(request, used)) => {
                    inbuf.drain(..used);
                    request
                }
                Err(framing) => {
                    inbuf.clear();
                    conn.close_after_write = true;
                    self.chat
                        .respond(id, Response::error(&framing.0).encode(false));
                    return;
                }
            };
            conn.last_active = now;
            let keep_alive = request.keep_alive;
            match self.api.handle(&mut self.chat, &request, wall) {
                Outcome::Respond(response) => {
                    self.chat.respond(id, response.encode(keep_alive));
                    if !keep_alive {
                        self.conns[key].close_after_write = true;
                        return;
                    }
                }
                Outcome::Hash(pending, work) => {
                    match self.hasher.submit((id, pending, keep_alive), work) {
                        Ok(()) => {
                            if let Phase::Http { waiting, .. } = &mut self.conns[key].phase {
                                *waiting = true;
                            }
                            return;
                        }
                        Err(Busy) => {
                            let busy = ApiError::new(
                                503,
                                "rate_limited",
                                "too many logins and registrations in progress; retry shortly",
                            );
                            let response = Response::error(&busy).with_header("retry-after", "1");
                            self.chat.respond(id, response.encode(keep_alive));
                        }
                    }
                }
                Outcome::Upgrade {
                    session,
                    key: ws_key,
                } => {
                    self.chat.respond(id, http::upgrade_response(&ws_key));
                    let conn = &mut self.conns[key];
                    let Phase::Http { inbuf, .. } = &mut conn.phase else {
                        return;
                    };
                    let leftover = std::mem::take(inbuf);
                    let has_leftover = !leftover.is_empty();
                    let ctx = WebSocketContext::from_partially_read(
                        leftover,
                        Role::Server,
                        Some(self.ws_config),
                    );
                    conn.phase = Phase::WebSocket(Box::new(WsConn {
                        ctx,
                        user: session.user_id,
                        last_ping: now,
                    }));
                    self.chat.connect(session.user_id, id);
                    if has_leftover {
                        self.read_again.push(key);
                    }
                    return;
                }
            }
        }
    }

    fn read_websocket(&mut self, key: usize, wall: u64, now: Instant) {
        let id = self.conn_id(key);
        let conn = &mut self.conns[key];
        let Phase::WebSocket(ws) = &mut conn.phase else {
            return;
        };
        let mut wire = Wire {
            socket: &mut conn.socket,
            pending: &mut conn.out,
        };
        let mut handled = 0;
        let close_code = loop {
            if handled == READ_BUDGET_MESSAGES {
                self.read_again.push(key);
                break None;
            }
            match ws.ctx.read(&mut wire) {
                Ok(message) => {
                    conn.last_active = now;
                    handled += 1;
                    match message {
                        Message::Text(text) => {
                            self.chat.handle_text(id, ws.user, text.as_str(), wall)
                        }
                        Message::Binary(_) => {
                            let err = RpcError {
                                method: None,
                                id: None,
                                error: ApiError::bad_request(
                                    "binary messages are not supported; send JSON text",
                                ),
                            };
                            self.chat.send_error(id, &err, wall);
                        }
                        // Pongs and close replies are queued by tungstenite; the flush sends them.
                        Message::Ping(_)
                        | Message::Pong(_)
                        | Message::Close(_)
                        | Message::Frame(_) => {}
                    }
                }
                Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                    break None
                }
                Err(tungstenite::Error::Capacity(_)) => {
                    break Some((CloseCode::Size, "message too large"))
                }
                Err(tungstenite::Error::Utf8(_)) => {
                    break Some((CloseCode::Invalid, "invalid UTF-8"))
                }
                Err(tungstenite::Error::Protocol(_)) => {
                    break Some((CloseCode::Protocol, "protocol error"))
                }
                Err(_) => {
                    self.kill(key);
                    return;
                }
            }
        };
        if let Some((code, reason)) = close_code {
            let _ = ws.ctx.close(
                &mut wire,
                Some(CloseFrame {
                    code,
                    reason: reason.into(),
                }),
            );
            conn.close_after_write = true;
        }
        self.queue_flush(key);
    }

    /// Hands finished password hashes back to the requests that waited for them.
    fn collect_hashes(&mut self, wall: u64) {
        let finished: Vec<_> = self.hasher.finished().collect();
        for ((id, pending, keep_alive), outcome) in finished {
            if !self.is_live(id) {
                continue;
            }
            let response = self.api.finish(&mut self.chat, pending, outcome, wall);
            self.chat.respond(id, response.encode(keep_alive));
            let conn = &mut self.conns[id.key];
            if let Phase::Http { waiting, .. } = &mut conn.phase {
                *waiting = false;
            }
            if keep_alive {
                self.read_again.push(id.key);
            } else {
                conn.close_after_write = true;
            }
        }
    }

    /// Pings idle-ish WebSockets, drops those silent past the pong timeout, and closes HTTP
    /// connections idle past their timeout.
    fn sweep(&mut self, now: Instant) {
        let mut expired = Vec::new();
        let mut pinged = Vec::new();
        for (key, conn) in self.conns.iter_mut() {
            let idle = now.saturating_duration_since(conn.last_active);
            match &mut conn.phase {
                Phase::WebSocket(ws) => {
                    if idle >= self.limits.pong_timeout {
                        expired.push(key);
                    } else if now.saturating_duration_since(ws.last_ping)
                        >= self.limits.ping_interval
                    {
                        ws.last_ping = now;
                        let mut wire = Wire {
                            socket: &mut conn.socket,
                            pending: &mut conn.out,
                        };
                        match ws.ctx.write(&mut wire, Message::Ping(Default::default())) {
                            Err(tungstenite::Error::WriteBufferFull(_)) => expired.push(key),
                            _ => pinged.push(key),
                        }
                    }
                }
                Phase::Http { waiting, .. } => {
                    if !*waiting && idle >= self.limits.http_idle_timeout {
                        expired.push(key);
                    }
                }
            }
        }
        for key in expired {
            self.kill(key);
        }
        for key in pinged {
            self.queue_flush(key);
        }
    }

    /// Moves the tick's deliveries into the connections' buffers. Runs after the commit.
    fn release_outbox(&mut self) {
        let mut outbox = std::mem::take(&mut self.chat.outbox);
        for (to, frame) in outbox.drain() {
            let Some(conn) = self.conns.get_mut(to.key) else {
                continue;
            };
            if conn.serial != to.serial || conn.dead {
                continue;
            }
            match (frame, &mut conn.phase) {
                (Frame::Http(bytes), _) => conn.out.extend_from_slice(&bytes),
                (Frame::Event(text), Phase::WebSocket(ws)) => {
                    let mut wire = Wire {
                        socket: &mut conn.socket,
                        pending: &mut conn.out,
                    };
                    match ws.ctx.write(&mut wire, Message::Text(text)) {
                        Ok(()) => {}
                        Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                        }
                        // A slow consumer: its events stay stored; a reconnect and sync recover them.
                        Err(_) => {
                            self.kill(to.key);
                            continue;
                        }
                    }
                }
                (Frame::Event(_), Phase::Http { .. }) => continue,
            }
            self.queue_flush(to.key);
        }
        // Keep the allocation for the next tick.
        self.chat.outbox = outbox;
    }

    fn flush(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        conn.flush_queued = false;
        if conn.dead {
            return;
        }
        let mut wire = Wire {
            socket: &mut conn.socket,
            pending: &mut conn.out,
        };
        let result = match &mut conn.phase {
            Phase::Http { .. } => wire.write_pending().map_err(tungstenite::Error::Io),
            Phase::WebSocket(ws) => wire
                .write_pending()
                .map_err(tungstenite::Error::Io)
                .and_then(|()| ws.ctx.flush(&mut wire)),
        };
        match result {
            Ok(()) => {
                if conn.close_after_write {
                    self.kill(key);
                } else if let Phase::Http {
                    inbuf,
                    waiting: false,
                } = &conn.phase
                {
                    // Requests held back while answers were queued can go on now.
                    if !inbuf.is_empty() {
                        self.read_again.push(key);
                    }
                }
            }
            Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => self.kill(key),
        }
    }

    fn queue_flush(&mut self, key: usize) {
        if let Some(conn) = self.conns.get_mut(key) {
            if !conn.flush_queued {
                conn.flush_queued = true;
                self.to_flush.push(key);
            }
        }
    }

    /// Marks a connection for closing at the end of the tick.
    fn kill(&mut self, key: usize) {
        if let Some(conn) = self.conns.get_mut(key) {
            if !conn.dead {
                conn.dead = true;
                self.to_reap.push(key);
            }
        }
    }

    fn close(&mut self, key: usize) {
        let id = self.conn_id(key);
        let mut conn = self.conns.remove(key);
        let _ = self.poll.registry().deregister(&mut conn.socket);
        if let Phase::WebSocket(ws) = &conn.phase {
            self.chat.disconnect(ws.user, id);
        }
    }

    fn conn_id(&self, key: usize) -> ConnId {
        ConnId {
            key,
            serial: self.conns[key].serial,
        }
    }

    fn is_live(&self, id: ConnId) -> bool {
        self.conns
            .get(id.key)
            .is_some_and(|c| c.serial == id.serial && !c.dead)
    }
}
