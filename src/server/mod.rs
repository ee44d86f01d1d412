//! The event loop: the only code that touches mio. One thread, one `Poll`, one slab of
//! connections (slab key = mio `Token`). Each tick: read what is ready and hand it to the HTTP
//! parser, the REST handlers or the chat core; release the tick's outbox (fan-out now, answers
//! and acks held until durable); write each connection at most once; write the tick's changes
//! to the store as one commit and hand its flush to the flusher thread, whose wake-up releases
//! what waited for it.
//!
//! The output rule, in one place: nothing a handler produces is written during the tick. It
//! goes into the chat core's outbox, which `release_outbox` moves into the connections, or holds
//! in the connection's own queue until the commit it depends on is durable (`durability`).

mod connection;
mod durability;

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use slab::Slab;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, Role, WebSocketConfig, WebSocketContext};
use tungstenite::Message;
use uuid::Uuid;

use crate::api::{Api, ApiOptions, Outcome, Pending};
use crate::auth::{self, Jwt};
use crate::chat::{Chat, ConnId, Frame};
use crate::clock::wall_ms;
use crate::config::{Config, Limits};
use crate::error::{ApiError, ErrorCode, ServerError};
use crate::hasher::{Busy, Hasher};
use crate::http::{self, Parsed, Response};
use crate::metrics::Gauges;
use crate::priority::Helpers;
use crate::protocol::RpcError;
use crate::store::Store;
pub use connection::push_text_frame;
use connection::{Connection, Phase, WsConn, MAX_FRAME_HEADER};
use durability::{Durability, HeldFrame};

const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX - 2);
const SIGNALS: Token = Token(usize::MAX - 3);

/// WebSocket messages, or pipelined HTTP requests, handled from one connection per tick before
/// the others get their turn.
const READ_BUDGET_MESSAGES: usize = 64;
/// HTTP bytes read from one connection per tick before the others get their turn.
const READ_BUDGET_BYTES: usize = 128 * 1024;
/// How often pings, timeouts and rate-limit state are checked.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);
/// How soon to retry `accept` after it failed (e.g. out of file descriptors).
const ACCEPT_RETRY: Duration = Duration::from_millis(50);
/// How long a connection may take to drain its last bytes once we decided to close it.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// How long a graceful shutdown waits for connections to drain before exiting anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// Slots of a connection's held-frame queue kept once it drains (see `Server::release_held`):
/// enough for a busy sender's usual depth (its acks and the events queued behind them), so the
/// queue is not freed and grown again every flush (1% of the loop's CPU in `realloc` under
/// `fanout`); about 1.5 KiB, for connections that ever held that many.
const HELD_SLOTS_KEPT: usize = 32;
/// A WebSocket's write buffer is kept between ticks when it held this much (a tick's events),
/// so a busy connection does not allocate and grow it again every tick; a smaller one (the
/// 101's) or a larger one (a burst, a sync) is given back once written, and a kept one at the
/// next sweep if nothing refilled it.
const OUT_KEPT_MIN: usize = 1024;
const OUT_KEPT_MAX: usize = 16 * 1024;

/// A password-hashing job's context: who asked, what for, and whether to keep the connection.
type HashContext = (ConnId, Pending, bool);

pub struct Server {
    poll: Poll,
    /// `None` once shutdown has begun: no more connections are accepted.
    listener: Option<TcpListener>,
    local_addr: SocketAddr,
    signals: Signals,
    conns: Slab<Connection>,
    conns_per_ip: HashMap<IpAddr, usize>,
    chat: Chat,
    durability: Durability,
    api: Api,
    hasher: Hasher<HashContext>,
    hashes_in_flight: usize,
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
    /// WebSockets to send a close frame after the tick's events.
    ws_closing: Vec<usize>,
    /// `accept` failed; try again soon instead of waiting for the next connection's edge.
    accept_pending: bool,
    next_sweep: Instant,
    shutdown_deadline: Option<Instant>,
    /// Counts loop turns, for `Connection::read_tick`.
    tick: u64,
}

impl Server {
    /// Opens the store, rebuilds the indices, binds the listener and starts the hash workers.
    pub fn bind(config: &Config) -> Result<Server, ServerError> {
        std::fs::create_dir_all(&config.data_dir)?;
        let secret = auth::load_or_create_secret(config.jwt_secret.as_deref(), &config.data_dir)?;
        let store = Store::open_with(
            &config.data_dir.join("db"),
            config.cache_bytes,
            config.client_ids,
        )
        .map_err(ServerError::store("opening the store"))?;
        let limits = config.limits.clone();
        let chat =
            Chat::open(store, limits.chat()).map_err(ServerError::store("loading the store"))?;

        let poll = Poll::new()?;
        let mut listener = TcpListener::bind(config.listen)?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let mut signals = Signals::new([SIGTERM, SIGINT])?;
        poll.registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let helpers = Arc::new(Helpers::default());
        let flusher = {
            let waker = Arc::clone(&waker);
            chat.store().start_flusher(Arc::clone(&helpers), move || {
                let _ = waker.wake();
            })
        };
        let ceiling = chat
            .store()
            .ceiling()
            .map_err(ServerError::store("loading the store"))?;
        let durability = Durability::new(flusher, ceiling.seq);
        let hasher = Hasher::start(config.hash_workers, limits.hash_queue, waker, helpers);
        let local_addr = listener.local_addr()?;
        let api = Api::new(
            Jwt::new(&secret),
            ApiOptions {
                public_url: config.public_url.clone(),
                fallback_host: local_addr.to_string(),
                allowed_origins: config.allowed_origins.clone(),
                echo_enabled: config.echo_endpoint,
                auth_rate_per_minute: limits.auth_rate_per_minute,
            },
        );
        let ws_config = WebSocketConfig::default()
            .read_buffer_size(limits.ws_read_buffer_bytes)
            .write_buffer_size(64 * 1024)
            .max_write_buffer_size(limits.max_outbox_bytes)
            .max_message_size(Some(limits.max_ws_message_bytes))
            .max_frame_size(Some(limits.max_ws_message_bytes));
        Ok(Server {
            poll,
            listener: Some(listener),
            local_addr,
            signals,
            conns: Slab::new(),
            conns_per_ip: HashMap::new(),
            chat,
            durability,
            api,
            hasher,
            hashes_in_flight: 0,
            limits,
            ws_config,
            next_serial: 0,
            to_flush: Vec::new(),
            read_again: Vec::new(),
            to_reap: Vec::new(),
            ws_closing: Vec::new(),
            accept_pending: false,
            next_sweep: Instant::now() + SWEEP_INTERVAL,
            shutdown_deadline: None,
            tick: 0,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Runs until SIGTERM or SIGINT has been handled (Ok), or the store fails (Err: nothing more
    /// could be acknowledged truthfully).
    pub fn run(&mut self) -> Result<(), ServerError> {
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
                Err(e) => return Err(e.into()),
            }
            let now = Instant::now();
            let wall = wall_ms();
            self.tick += 1;
            let again = std::mem::take(&mut self.read_again);
            for key in &again {
                if let Some(conn) = self.conns.get_mut(*key) {
                    conn.read_queued = false;
                }
            }

            if self.accept_pending {
                self.accept(now);
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(now),
                    WAKER => {
                        self.collect_hashes(wall, now);
                        self.release_durable()?;
                    }
                    SIGNALS => {
                        if self.signals.pending().next().is_some() {
                            self.begin_shutdown(wall, now);
                        }
                    }
                    Token(key) => {
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            if let Some(conn) = self.conns.get_mut(key) {
                                conn.socket_drained = false;
                                conn.peer_closed |= event.is_read_closed() || event.is_error();
                            }
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

            // Group commit: the fan-out leaves now; what acknowledges this tick's writes waits
            // for the flush of its one commit, which runs on the flusher thread meanwhile.
            let tick_writes = self.chat.needs_write();
            self.release_outbox(self.durability.commit_of_tick(tick_writes));
            for key in std::mem::take(&mut self.to_flush) {
                self.flush(key);
            }
            if tick_writes {
                let commit = self.durability.commit_of_tick(true);
                let tick = self.chat.write_tick(commit);
                self.durability.written(tick);
            }
            if self.durability.too_far_behind() {
                self.durability.wait_for_flusher().map_err(store_failed)?;
                self.release_durable()?;
            }
            self.close_websockets_after_tick();
            for key in std::mem::take(&mut self.to_flush) {
                self.flush(key);
            }
            for key in std::mem::take(&mut self.to_reap) {
                self.close(key);
            }
            if !events.is_empty() {
                self.chat
                    .metrics
                    .tick_seconds
                    .observe(now.elapsed().as_secs_f64());
            }
            if let Some(deadline) = self.shutdown_deadline {
                if self.conns.is_empty() || Instant::now() >= deadline {
                    let last = self.durability.finish().map_err(store_failed)?;
                    // Answers that waited for those commits get one last chance to leave, and
                    // the close frames that waited for them after.
                    self.release_durable()?;
                    self.close_websockets_after_tick();
                    for key in std::mem::take(&mut self.to_flush) {
                        self.flush(key);
                    }
                    self.chat.store_mut().forget_applied(last);
                    self.chat.commit().map_err(store_failed)?;
                    log::info!("stopped: {} connections left", self.conns.len());
                    return Ok(());
                }
            }
        }
    }

    fn accept(&mut self, now: Instant) {
        self.accept_pending = false;
        loop {
            let Some(listener) = &self.listener else {
                return;
            };
            let (mut socket, peer) = match listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::warn!("accept failed: {e}; retrying shortly");
                    self.accept_pending = true;
                    return;
                }
            };
            let ip = peer.ip();
            let from_ip = self.conns_per_ip.get(&ip).copied().unwrap_or(0);
            let refusal = if self.conns.len() >= self.limits.max_connections {
                let full = ApiError::unavailable("the server is at its connection limit");
                Some(("capacity", full))
            } else if self.limits.max_connections_per_ip > 0
                && from_ip >= self.limits.max_connections_per_ip
            {
                let per_ip = ApiError::rate_limited("too many connections from this address");
                Some(("per_ip", per_ip))
            } else {
                None
            };
            if let Some((reason, refused)) = refusal {
                // Best effort: one write on a fresh socket, then close.
                let answer = Response::error(&refused)
                    .with_header("retry-after", "1")
                    .encode(false);
                let _ = socket.write(&answer);
                self.chat.metrics.count_drop(reason);
                continue;
            }
            let _ = socket.set_nodelay(true);
            let entry = self.conns.vacant_entry();
            let key = entry.key();
            if let Err(e) = self.poll.registry().register(
                &mut socket,
                Token(key),
                Interest::READABLE | Interest::WRITABLE,
            ) {
                log::warn!("register failed: {e}");
                continue;
            }
            self.next_serial += 1;
            entry.insert(Connection::new(socket, ip, self.next_serial, now));
            *self.conns_per_ip.entry(ip).or_default() += 1;
            self.chat.metrics.connections_accepted += 1;
        }
    }

    fn read(&mut self, key: usize, wall: u64, now: Instant) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        // One budget per connection per tick: a read that used it up queued the next one.
        if conn.dead || conn.read_tick == self.tick {
            return;
        }
        // A client whose answers pile up behind the flush waits for them (the flush's release
        // reads it again), so it cannot grow the held queue without bound.
        if conn.held_bytes >= self.limits.max_outbox_bytes / 2 {
            conn.read_paused = true;
            return;
        }
        conn.read_tick = self.tick;
        match conn.phase {
            Phase::Http(_) => self.read_http(key, wall, now),
            Phase::WebSocket(_) => self.read_websocket(key, wall, now),
        }
    }

    fn read_http(&mut self, key: usize, wall: u64, now: Instant) {
        let conn = &mut self.conns[key];
        let Phase::Http(http) = &mut conn.phase else {
            return;
        };
        if http.waiting || conn.close_after_write {
            return;
        }
        let mut budget_left = true;
        let mut eof = false;
        let had_bytes = !http.inbuf.is_empty();
        loop {
            if http.inbuf.len() >= READ_BUDGET_BYTES {
                budget_left = false;
                break;
            }
            let start = http.inbuf.len();
            http.inbuf.resize(start + 4096, 0);
            let result = io::Read::read(&mut conn.socket, &mut http.inbuf[start..]);
            http.inbuf.truncate(start + *result.as_ref().unwrap_or(&0));
            match result {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.kill(key);
                    return;
                }
            }
        }
        if !had_bytes && !http.inbuf.is_empty() {
            http.request_started = Some(now);
        }
        self.serve_http(key, wall, now);
        let conn = &self.conns[key];
        let answers_backed_up = conn.out.len() + conn.held_bytes >= self.limits.max_outbox_bytes;
        if eof {
            self.conns[key].close_after_write = true;
            self.queue_flush(key);
        } else if !budget_left && !answers_backed_up {
            // When the answers are backed up, `flush` resumes reading once they drain; asking
            // for another read now would spin the loop on a client that does not read.
            self.read_later(key);
        }
    }

    /// Answers the complete requests at the front of the connection's buffer, in order, until
    /// one has to wait for a password hash, the connection upgrades, or its answers back up.
    fn serve_http(&mut self, key: usize, wall: u64, now: Instant) {
        let id = self.conn_id(key);
        let outbox_at_start = self.chat.outbox.bytes();
        for served in 0.. {
            if served == READ_BUDGET_MESSAGES {
                // A long pipeline yields to the other connections; the rest comes next tick.
                self.read_later(key);
                return;
            }
            let conn = &mut self.conns[key];
            let Phase::Http(http) = &mut conn.phase else {
                return;
            };
            if http.waiting || conn.close_after_write || http.inbuf.is_empty() {
                return;
            }
            // Answers not yet written plus those produced this tick: past the cap, the rest of
            // the pipeline waits until they drain (`flush` asks for the next read).
            let queued =
                conn.out.len() + conn.held_bytes + (self.chat.outbox.bytes() - outbox_at_start);
            if queued >= self.limits.max_outbox_bytes {
                if conn.out.is_empty() {
                    // Nothing to flush yet: the answers leave with this tick's outbox.
                    self.queue_flush(key);
                }
                return;
            }
            let request = match http::parse(&http.inbuf, &self.limits) {
                Ok(Parsed::Partial) => return,
                Ok(Parsed::Complete(request, used)) => {
                    http.inbuf.drain(..used);
                    http.request_started = (!http.inbuf.is_empty()).then_some(now);
                    request
                }
                Err(framing) => {
                    let method = http::leading_method(&http.inbuf);
                    let answer = Response::error(&framing.0).encode_for(method, false);
                    http.inbuf.clear();
                    conn.close_after_write = true;
                    self.chat.metrics.count_error(framing.0.code);
                    self.chat.respond(id, answer);
                    return;
                }
            };
            conn.last_active = now;
            // While shutting down, every answer is the connection's last, and says so.
            let keep_alive = request.keep_alive && self.shutdown_deadline.is_none();
            let ip = conn.ip;
            match self.api.handle(&mut self.chat, &request, ip, wall, now) {
                Outcome::Respond(response) => {
                    self.chat
                        .respond(id, response.encode_for(&request.method, keep_alive));
                    if !keep_alive {
                        self.conns[key].close_after_write = true;
                        return;
                    }
                }
                Outcome::Metrics => {
                    let body = self.chat.metrics.render(&self.gauges());
                    let response = Response::metrics(body);
                    self.chat
                        .respond(id, response.encode_for(&request.method, keep_alive));
                    if !keep_alive {
                        self.conns[key].close_after_write = true;
                        return;
                    }
                }
                Outcome::Hash(pending, work) => {
                    match self.hasher.submit((id, pending, keep_alive), work) {
                        Ok(()) => {
                            self.hashes_in_flight += 1;
                            if let Phase::Http(http) = &mut self.conns[key].phase {
                                http.waiting = true;
                            }
                            return;
                        }
                        Err(Busy) => {
                            let busy = ApiError::rate_limited(
                                "too many logins and registrations in progress; retry shortly",
                            )
                            .with_status(503);
                            self.chat.metrics.count_error(busy.code);
                            let response = Response::error(&busy).with_header("retry-after", "1");
                            self.chat.respond(id, response.encode(keep_alive));
                        }
                    }
                }
                Outcome::Upgrade { .. } | Outcome::UpgradeEcho { .. }
                    if self.shutdown_deadline.is_some() =>
                {
                    let closing = ApiError::unavailable("the server is shutting down");
                    let response = Response::error(&closing).with_header("retry-after", "5");
                    self.chat.respond(id, response.encode(false));
                    self.conns[key].close_after_write = true;
                    return;
                }
                Outcome::Upgrade {
                    session,
                    key: ws_key,
                } => {
                    self.upgrade(key, &ws_key, Some(session.user_id), now);
                    return;
                }
                Outcome::UpgradeEcho { key: ws_key } => {
                    self.upgrade(key, &ws_key, None, now);
                    return;
                }
            }
        }
    }

    /// Answers 101 and hands the connection, with any bytes already read past the request, to
    /// tungstenite.
    fn upgrade(&mut self, key: usize, ws_key: &str, user: Option<Uuid>, now: Instant) {
        let id = self.conn_id(key);
        self.chat.respond(id, http::upgrade_response(ws_key));
        let conn = &mut self.conns[key];
        let Phase::Http(http) = &mut conn.phase else {
            return;
        };
        // An exact-size copy: handing over the HTTP buffer itself would make its capacity (up
        // to 8 KiB) tungstenite's read buffer for the connection's whole life.
        let leftover = http.inbuf.to_vec();
        http.inbuf = Vec::new();
        let has_leftover = !leftover.is_empty();
        let ctx =
            WebSocketContext::from_partially_read(leftover, Role::Server, Some(self.ws_config));
        conn.phase = Phase::WebSocket(Box::new(WsConn {
            ctx,
            user,
            last_ping: now,
            closing: None,
        }));
        if let Some(user) = user {
            self.chat.connect(user, id);
        }
        if has_leftover {
            self.read_later(key);
        }
    }

    fn read_websocket(&mut self, key: usize, wall: u64, now: Instant) {
        let id = self.conn_id(key);
        let conn = &mut self.conns[key];
        let closing = conn.close_after_write;
        let (mut wire, phase) = conn.wire(self.limits.max_outbox_bytes);
        let Phase::WebSocket(ws) = phase else { return };
        if closing || ws.closing.is_some() {
            // Closing: nothing more it sends is acted on (RFC 6455 lets us discard it).
            return;
        }
        let outbox_at_start = self.chat.outbox.bytes();
        let mut handled = 0;
        let mut active = false;
        let mut handshake_done = false;
        let mut read_more = false;
        let outcome = loop {
            // A turn ends after a budget of messages, or once they produced about half of what
            // a connection may queue (a few large syncs), so no client can make the tick's
            // memory grow without bound.
            let produced = self.chat.outbox.bytes() - outbox_at_start;
            if handled == READ_BUDGET_MESSAGES || produced >= self.limits.max_outbox_bytes / 2 {
                read_more = true;
                break Ok(());
            }
            let message = match ws.ctx.read(&mut wire) {
                Ok(message) => message,
                Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                    break Ok(())
                }
                Err(tungstenite::Error::Capacity(_)) => {
                    break Err(Some((CloseCode::Size, "message too large")))
                }
                Err(tungstenite::Error::Utf8(_)) => {
                    break Err(Some((CloseCode::Invalid, "invalid UTF-8")))
                }
                // The peer went away without a close frame (a dropped client, a closed
                // laptop): nothing can reach it any more, and nothing it sent was wrong.
                Err(tungstenite::Error::Protocol(
                    tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
                )) => break Err(None),
                Err(tungstenite::Error::Protocol(_)) => {
                    break Err(Some((CloseCode::Protocol, "protocol error")))
                }
                // The close handshake is done: our reply waits in the buffer, and the
                // connection closes once it is written.
                Err(tungstenite::Error::ConnectionClosed) => {
                    handshake_done = true;
                    break Ok(());
                }
                Err(_) => break Err(None),
            };
            active = true;
            handled += 1;
            match (message, ws.user) {
                (message @ (Message::Text(_) | Message::Binary(_)), None) => {
                    // The echo endpoint: straight back, outside the chat.
                    if let Err(e) = ws.ctx.write(&mut wire, message) {
                        if !is_would_block(&e) {
                            break Err(None);
                        }
                    }
                }
                (Message::Text(text), Some(user)) => {
                    self.chat.handle_text(id, user, text.as_str(), wall)
                }
                (Message::Binary(_), Some(_)) => {
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
                (
                    Message::Ping(_) | Message::Pong(_) | Message::Close(_) | Message::Frame(_),
                    _,
                ) => {}
            }
        };
        if active {
            conn.last_active = now;
        }
        conn.close_after_write |= handshake_done;
        if read_more {
            self.read_later(key);
        }
        match outcome {
            Ok(()) => self.queue_flush(key),
            Err(Some((code, reason))) => {
                self.chat.metrics.count_drop("protocol");
                self.close_websocket_after_tick(key, code, reason);
            }
            Err(None) => self.kill(key),
        }
    }

    /// Decides to close a WebSocket; the close frame follows the tick's events.
    fn close_websocket_after_tick(&mut self, key: usize, code: CloseCode, reason: &'static str) {
        if let Phase::WebSocket(ws) = &mut self.conns[key].phase {
            if ws.closing.is_none() {
                ws.closing = Some((code, reason));
                self.ws_closing.push(key);
            }
        }
    }

    /// Sends a close frame and closes the connection once it is written (or after a grace
    /// period, if the peer does not read).
    fn close_websocket(&mut self, key: usize, code: CloseCode, reason: &'static str) {
        let conn = &mut self.conns[key];
        let (mut wire, phase) = conn.wire(self.limits.max_outbox_bytes);
        if let Phase::WebSocket(ws) = phase {
            let _ = ws.ctx.close(
                &mut wire,
                Some(CloseFrame {
                    code,
                    reason: reason.into(),
                }),
            );
        }
        conn.close_after_write = true;
        conn.last_active = Instant::now();
        self.queue_flush(key);
    }

    /// Hands finished password hashes back to the requests that waited for them.
    fn collect_hashes(&mut self, wall: u64, now: Instant) {
        let finished: Vec<_> = self.hasher.finished().collect();
        self.hashes_in_flight -= finished.len().min(self.hashes_in_flight);
        for ((id, pending, keep_alive), outcome) in finished {
            if !self.is_live(id) {
                continue;
            }
            // Shutting down: this answer is the connection's last, and says so.
            let keep_alive = keep_alive && self.shutdown_deadline.is_none();
            let response = self.api.finish(&mut self.chat, pending, outcome, wall);
            self.chat.respond(id, response.encode(keep_alive));
            let conn = &mut self.conns[id.key];
            conn.last_active = now;
            if let Phase::Http(http) = &mut conn.phase {
                http.waiting = false;
            }
            if keep_alive {
                self.read_later(id.key);
            } else {
                conn.close_after_write = true;
            }
        }
    }

    /// Pings WebSockets, drops those silent past the pong timeout, answers 408 to requests that
    /// take too long to arrive, closes idle keep-alive connections and those that will not
    /// drain after being closed.
    fn sweep(&mut self, now: Instant) {
        let mut expired = Vec::new();
        let mut timed_out = Vec::new();
        let mut pinged = Vec::new();
        for (key, conn) in self.conns.iter_mut() {
            // A busy WebSocket keeps its write buffer between ticks; once a second it is given
            // back if empty, so that one gone quiet does not keep it.
            if conn.out.is_empty() && conn.out.capacity() > 0 {
                conn.out = Vec::new();
            }
            let idle = now.saturating_duration_since(conn.last_active);
            if conn.close_after_write {
                if idle >= CLOSE_GRACE {
                    expired.push(key);
                }
                continue;
            }
            let (mut wire, phase) = conn.wire(self.limits.max_outbox_bytes);
            match phase {
                Phase::WebSocket(ws) => {
                    if idle >= self.limits.pong_timeout {
                        expired.push(key);
                    } else if now.saturating_duration_since(ws.last_ping)
                        >= self.limits.ping_interval
                    {
                        ws.last_ping = now;
                        match ws.ctx.write(&mut wire, Message::Ping(Default::default())) {
                            Err(e) if !is_would_block(&e) => expired.push(key),
                            _ => pinged.push(key),
                        }
                    }
                }
                Phase::Http(http) if http.waiting => {}
                Phase::Http(http) => match http.request_started {
                    Some(started)
                        if now.saturating_duration_since(started)
                            >= self.limits.request_timeout =>
                    {
                        timed_out.push(key)
                    }
                    Some(_) => {}
                    None if idle >= self.limits.http_idle_timeout => expired.push(key),
                    None => {}
                },
            }
        }
        for key in expired {
            self.chat.metrics.count_drop("timeout");
            self.kill(key);
        }
        for key in timed_out {
            let conn = &mut self.conns[key];
            let late = ApiError::new(
                ErrorCode::Timeout,
                format!(
                    "the request did not arrive within {} s",
                    self.limits.request_timeout.as_secs()
                ),
            );
            // Through the outbox, so it cannot overtake an answer produced earlier in this tick
            // (a login whose hash finished just now) or one still waiting for its commit.
            conn.close_after_write = true;
            conn.last_active = now;
            self.chat.metrics.count_error(late.code);
            let id = self.conn_id(key);
            self.chat.respond(id, Response::error(&late).encode(false));
        }
        for key in pinged {
            self.queue_flush(key);
        }
        self.api.sweep(now);
    }

    /// Stops accepting, closes every WebSocket with 1001, answers the HTTP requests that already
    /// arrived and closes those connections, and lets the loop run until they are gone or the
    /// grace period ends.
    fn begin_shutdown(&mut self, wall: u64, now: Instant) {
        if self.shutdown_deadline.is_some() {
            return;
        }
        log::info!("shutting down: closing {} connections", self.conns.len());
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        self.shutdown_deadline = Some(now + SHUTDOWN_GRACE);
        let keys: Vec<usize> = self.conns.iter().map(|(key, _)| key).collect();
        for key in keys {
            match &self.conns[key].phase {
                Phase::WebSocket(_) => {
                    self.close_websocket_after_tick(key, CloseCode::Away, "server shutting down")
                }
                Phase::Http(http) if http.waiting => self.conns[key].close_after_write = true,
                Phase::Http(_) => {
                    // A request that already reached the socket still gets its answer.
                    self.read_http(key, wall, now);
                    let conn = &mut self.conns[key];
                    if !is_waiting(&conn.phase) {
                        conn.close_after_write = true;
                        self.queue_flush(key);
                    }
                }
            }
        }
    }

    /// Moves the tick's deliveries into the connections' buffers, or holds them until `commit`
    /// (the one that holds what they depend on) is durable.
    fn release_outbox(&mut self, commit: u64) {
        let mut outbox = std::mem::take(&mut self.chat.outbox);
        for (to, frame, release) in outbox.drain() {
            let Some(conn) = self.conns.get_mut(to.key) else {
                continue;
            };
            if conn.serial != to.serial || conn.dead {
                continue;
            }
            if !conn.held.is_empty() || !self.durability.may_leave(release, commit) {
                conn.held_bytes += frame.byte_len();
                let gate = self.durability.hold(to, release, commit);
                conn.held.push_back(HeldFrame { gate, frame });
                continue;
            }
            self.deliver(to, frame);
        }
        // Keep the allocation for the next tick.
        self.chat.outbox = outbox;
    }

    /// Catches up with the flusher and releases the frames that waited for what is now durable.
    /// A failed flush means acks would lie, so the server stops.
    fn release_durable(&mut self) -> Result<(), ServerError> {
        let (durable, flush_times) = self.durability.collect().map_err(store_failed)?;
        self.chat.store_mut().forget_applied(durable);
        for took in flush_times {
            self.chat.metrics.flush_seconds.observe(took.as_secs_f64());
        }
        while let Some(to) = self.durability.pop_released() {
            self.release_held(to);
        }
        Ok(())
    }

    /// Writes a connection's held frames from the front, up to one that still waits for its
    /// commit.
    fn release_held(&mut self, to: ConnId) {
        loop {
            let Some(conn) = self.conns.get_mut(to.key) else {
                return;
            };
            if conn.serial != to.serial {
                return;
            }
            let ready = conn
                .held
                .front()
                .is_some_and(|held| self.durability.may_release(held.gate));
            if !ready {
                // A burst (a sync's pages, many events behind an ack) would otherwise leave
                // its queue's allocation with the connection for good.
                if conn.held.is_empty() && conn.held.capacity() > HELD_SLOTS_KEPT {
                    conn.held.shrink_to(HELD_SLOTS_KEPT);
                }
                // A connection closing after its writes (its frames were dropped above, or
                // its answers just left) is closed by the next flush.
                let close = conn.held.is_empty() && conn.close_after_write && !conn.dead;
                let resume = conn.read_paused && conn.held_bytes < self.limits.max_outbox_bytes / 2;
                if resume {
                    conn.read_paused = false;
                    self.read_later(to.key);
                }
                if close {
                    self.queue_flush(to.key);
                }
                return;
            }
            let held = conn.held.pop_front().expect("checked above");
            conn.held_bytes -= held.frame.byte_len();
            self.durability.forget_held(1);
            if !conn.dead {
                self.deliver(to, held.frame);
            }
        }
    }

    /// Sends the close frames decided during the tick, after the connection's other frames;
    /// one whose frames still wait for a flush closes after they leave.
    fn close_websockets_after_tick(&mut self) {
        let mut later = Vec::new();
        for key in std::mem::take(&mut self.ws_closing) {
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
            if !conn.held.is_empty() && !conn.dead {
                later.push(key);
                continue;
            }
            let closing = match &mut conn.phase {
                Phase::WebSocket(ws) => ws.closing.take(),
                _ => None,
            };
            if let Some((code, reason)) = closing {
                self.close_websocket(key, code, reason);
            }
        }
        self.ws_closing = later;
    }

    /// Puts one frame into its connection's write buffer (the connection is live).
    fn deliver(&mut self, to: ConnId, frame: Frame) {
        let conn = &mut self.conns[to.key];
        match frame {
            Frame::Http(bytes) => conn.out.extend_from_slice(&bytes),
            Frame::Event(_) if conn.close_after_write => return,
            Frame::Event(text) => {
                // Not before the upgrade, nor after a close from the peer (only our reply to
                // it may follow).
                let Phase::WebSocket(ws) = &conn.phase else {
                    return;
                };
                if !ws.ctx.can_write() {
                    return;
                }
                let text: &str = &text;
                if conn.out.len() + text.len() + MAX_FRAME_HEADER > self.limits.max_outbox_bytes {
                    // A slow consumer: its events stay stored; a reconnect and a sync recover
                    // them.
                    self.chat.metrics.count_drop("slow_consumer");
                    self.close_websocket(
                        to.key,
                        CloseCode::Policy,
                        "too many events queued; reconnect and sync",
                    );
                    return;
                }
                push_text_frame(&mut conn.out, text);
                *self
                    .chat
                    .metrics
                    .events
                    .entry(event_type(text))
                    .or_default() += 1;
            }
        }
        self.queue_flush(to.key);
    }

    fn flush(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        conn.flush_queued = false;
        if conn.dead {
            return;
        }
        let (mut wire, phase) = conn.wire(self.limits.max_outbox_bytes);
        let result = match phase {
            Phase::Http(_) => wire.write_pending().map_err(tungstenite::Error::Io),
            Phase::WebSocket(ws) => {
                // tungstenite's frames (a pong, the close reply) join the buffer first. Its
                // `ConnectionClosed` after a close reply counts once the reply is written.
                let queued = ws.ctx.flush(&mut wire);
                wire.write_pending()
                    .map_err(tungstenite::Error::Io)
                    .and(queued)
            }
        };
        match result {
            // A request still waiting for its password hash gets its answer first, even from a
            // client that half-closed after sending it.
            Ok(())
                if conn.close_after_write && !is_waiting(&conn.phase) && conn.held.is_empty() =>
            {
                self.kill(key)
            }
            Ok(()) if conn.close_after_write => {}
            Ok(()) => {
                // An idle connection should cost as little as possible: give the written
                // buffer back, unless it held a WebSocket's events (at least `OUT_KEPT_MIN`),
                // which the next tick would grow again from nothing.
                let keep = matches!(conn.phase, Phase::WebSocket(_))
                    && (OUT_KEPT_MIN..=OUT_KEPT_MAX).contains(&conn.out.capacity());
                if keep {
                    conn.out.clear();
                } else {
                    conn.out = Vec::new();
                }
                match &mut conn.phase {
                    // Requests held back while answers were queued can go on now.
                    Phase::Http(http) if !http.waiting && !http.inbuf.is_empty() => {
                        self.read_later(key)
                    }
                    Phase::Http(http) if http.inbuf.is_empty() => http.inbuf = Vec::new(),
                    _ => {}
                }
            }
            Err(e) if is_would_block(&e) => {}
            Err(_) => self.kill(key),
        }
    }

    /// Asks for another read of the connection next tick (once, however often asked).
    fn read_later(&mut self, key: usize) {
        if let Some(conn) = self.conns.get_mut(key) {
            if !conn.read_queued {
                conn.read_queued = true;
                self.read_again.push(key);
            }
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
        self.durability.forget_held(conn.held.len());
        let _ = self.poll.registry().deregister(&mut conn.socket);
        if let Some(count) = self.conns_per_ip.get_mut(&conn.ip) {
            *count -= 1;
            if *count == 0 {
                self.conns_per_ip.remove(&conn.ip);
            }
        }
        if let Phase::WebSocket(ws) = &conn.phase {
            if let Some(user) = ws.user {
                self.chat.disconnect(user, id);
            }
        }
    }

    fn gauges(&self) -> Gauges {
        let websocket_connections = self
            .conns
            .iter()
            .filter(|(_, c)| matches!(c.phase, Phase::WebSocket(_)))
            .count();
        Gauges {
            http_connections: self.conns.len() - websocket_connections,
            websocket_connections,
            users_online: self.chat.users_online(),
            groups: self.chat.group_count(),
            hash_queue: self.hashes_in_flight,
            store_bytes: self.chat.store().size_on_disk().unwrap_or(0),
            recent_client_ids: self.chat.store().recent_client_ids(),
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

fn is_waiting(phase: &Phase) -> bool {
    matches!(phase, Phase::Http(http) if http.waiting)
}

fn is_would_block(err: &tungstenite::Error) -> bool {
    matches!(err, tungstenite::Error::Io(e) if e.kind() == io::ErrorKind::WouldBlock)
}

/// The `type` of an event we encoded: every one starts with `{"type":NN`.
fn event_type(text: &str) -> u16 {
    text.get(8..10).and_then(|t| t.parse().ok()).unwrap_or(0)
}

fn store_failed(source: sled::Error) -> ServerError {
    ServerError::Store {
        during: "writing or flushing the store",
        source,
    }
}
