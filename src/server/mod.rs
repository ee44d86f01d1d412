//! The event loop: the only code that touches mio. One thread, one `Poll`, one slab of
//! connections (slab key = mio `Token`). Each tick: read what is ready and hand it to the
//! connections' state machines (`connection`), whose requests and messages go to the REST
//! handlers or the chat core; release the tick's outbox (fan-out now, answers and acks held until
//! durable); write each connection at most once; write the tick's changes to the store as one
//! commit and hand its flush to the flusher thread, whose wake-up releases what waited for it.
//!
//! The output rule, in one place: nothing a handler produces is written during the tick. It
//! goes into the chat core's outbox, which `release_outbox` moves into the connections, or holds
//! in the connection's own queue until the commit it depends on is durable (`durability`).
//!
//! The loop's parts, in the order data flows: `accept` (new sockets, and reaping closed ones),
//! `http_phase` and `websocket_phase` (reading and dispatching), `release` (outbox, held frames,
//! the writes), `sweep` (timers and shutdown).

mod accept;
mod budget;
pub mod connection;
mod durability;
mod http_phase;
mod memory;
mod release;
mod revoke;
mod slot;
mod sweep;
mod websocket_phase;

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};
use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};
use signal_hook_mio::v1_0::Signals;
use slab::Slab;
use tungstenite::protocol::WebSocketConfig;

use crate::api::{Api, ApiOptions, Pending};
use crate::auth::{self, Jwt};
use crate::chat::{Chat, ConnId};
use crate::clock::wall_ms;
use crate::config::{Config, Limits};
use crate::error::ServerError;
use crate::hasher::Hasher;
use crate::priority::Helpers;
use crate::store::integrity::OnLoss;
use crate::store::Store;
pub use connection::push_text_frame;
use connection::websocket_config;
use durability::Durability;
use slot::Slot;

const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX - 2);
const SIGNALS: Token = Token(usize::MAX - 3);

/// How often pings, timeouts and rate-limit state are checked.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);
/// How soon to retry `accept` after it failed (e.g. out of file descriptors).
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

/// A password-hashing job's context: who asked, what for, and whether to keep the connection.
type HashContext = (ConnId, Pending, bool);

pub struct Server {
    poll: Poll,
    /// `None` once shutdown has begun: no more connections are accepted.
    listener: Option<TcpListener>,
    local_addr: SocketAddr,
    signals: Signals,
    conns: Slab<Slot>,
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
    /// A costly message (`chat::Cost::Heavy`) ran this tick.
    ran_costly: bool,
    /// Connections to close at the end of the tick.
    to_reap: Vec<usize>,
    /// WebSockets to send a close frame after the tick's events.
    ws_closing: Vec<usize>,
    /// `accept` failed; try again soon instead of waiting for the next connection's edge.
    accept_pending: bool,
    next_sweep: Instant,
    shutdown_deadline: Option<Instant>,
    /// The data directory, where `parley backup` leaves its request (SIGUSR1).
    data_dir: std::path::PathBuf,
    backup_requested: bool,
    /// Counts loop turns, for `Slot::read_tick`.
    tick: u64,
    /// Bytes in every connection's write buffer (`budget`), and the part of them in connections
    /// closed for not keeping up (bound to leave within the close grace).
    queued_output: usize,
    closing_output: usize,
    /// The tick whose shedding scan found nobody to shed: not scanned again in it.
    shed_scan_tick: u64,
    /// Buffer bytes closes freed since the allocator last gave memory back (`memory`).
    freed_buffers: usize,
}

impl Server {
    /// Opens the store, rebuilds the indices, binds the listener and starts the hash workers.
    pub fn bind(config: &Config) -> Result<Server, ServerError> {
        std::fs::create_dir_all(&config.data_dir)?;
        let secret = auth::load_or_create_secret(config.jwt_secret.as_deref(), &config.data_dir)?;
        let on_loss = if config.accept_data_loss {
            OnLoss::Accept
        } else {
            OnLoss::Refuse
        };
        let store = Store::open_data_dir(
            &config.data_dir,
            config.cache_bytes,
            config.client_ids,
            on_loss,
        )
        .map_err(|source| opening_failed("opening the store", source))?;
        // Logged-out tokens past their expiry and revoked sessions' index entries go, at start
        // (the loop's writes never delete).
        store
            .prune_accounts(wall_ms() / 1000)
            .map_err(|source| opening_failed("pruning logged-out tokens", source))?;
        let limits = config.limits.clone();
        let mut chat = Chat::open(store, limits.chat())
            .map_err(|source| opening_failed("loading the store", source))?;
        chat.set_presence(config.presence);

        let poll = Poll::new()?;
        let mut listener = TcpListener::bind(config.listen)?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let mut signals = Signals::new([SIGTERM, SIGINT, SIGUSR1])?;
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
        let durability = Durability::new(flusher, ceiling);
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
                trusted_proxies: config.trusted_proxies.clone(),
                lookup_rate_per_minute: config.accounts.lookup_rate_per_minute,
                max_sessions_per_user: config.accounts.max_sessions_per_user,
                admin: config.admin.clone(),
            },
        );
        let ws_config = websocket_config(&limits);
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
            ran_costly: false,
            to_reap: Vec::new(),
            ws_closing: Vec::new(),
            accept_pending: false,
            next_sweep: Instant::now() + SWEEP_INTERVAL,
            shutdown_deadline: None,
            data_dir: config.data_dir.clone(),
            backup_requested: false,
            tick: 0,
            queued_output: 0,
            closing_output: 0,
            shed_scan_tick: 0,
            freed_buffers: 0,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Runs until SIGTERM or SIGINT has been handled: Ok, or Err when the store could not store
    /// what the last answers waited for (a full disk at shutdown; those answers never left).
    /// A store that cannot write meanwhile does not stop it (`release_durable`).
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
                if let Some(slot) = self.conns.get_mut(*key) {
                    slot.read_queued = false;
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
                        self.release_durable();
                    }
                    SIGNALS => {
                        let (mut stop, mut backup) = (false, false);
                        for signal in self.signals.pending() {
                            match signal {
                                SIGUSR1 => backup = true,
                                _ => stop = true,
                            }
                        }
                        self.backup_requested |= backup;
                        if stop {
                            self.begin_shutdown(wall, now);
                        }
                    }
                    Token(key) => {
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            if let Some(slot) = self.conns.get_mut(key) {
                                slot.socket_drained = false;
                                slot.peer_closed |= event.is_read_closed() || event.is_error();
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
                self.durability.written(tick, self.chat.last_stamp());
            }
            // The flusher runs only while the loop waits (`crate::priority`). A costly message
            // (a sync) can be pipelined to keep the loop busy for ever, so after one the loop
            // lets the flusher store what other connections' answers wait for.
            let ran_costly = std::mem::take(&mut self.ran_costly);
            if self.durability.too_far_behind() || (ran_costly && self.durability.flush_pending()) {
                self.durability.wait_for_flusher();
                self.release_durable();
            }
            if std::mem::take(&mut self.backup_requested) {
                self.backup()?;
            }
            self.close_revoked();
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
                    self.release_durable();
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

    /// `parley backup` asked for a copy: once every commit is durable, and with none in flight
    /// (the loop waits meanwhile), the store's files are what a crash now would leave.
    /// While the store cannot write (a full disk) the request is refused instead.
    fn backup(&mut self) -> Result<(), ServerError> {
        let stored = match self.durability.finish() {
            Ok(_) => {
                self.release_durable();
                Ok(self.chat.store().stored_mark().map_err(store_failed)?)
            }
            Err(err) => Err(err.to_string()),
        };
        crate::store::backup::serve_request(&self.data_dir, stored);
        Ok(())
    }

    /// Asks for another read of the connection next tick (once, however often asked).
    fn read_later(&mut self, key: usize) {
        if let Some(slot) = self.conns.get_mut(key) {
            if !slot.read_queued {
                slot.read_queued = true;
                self.read_again.push(key);
            }
        }
    }

    /// Asks for a write of the connection at the end of the tick (once, however often asked).
    fn queue_flush(&mut self, key: usize) {
        if let Some(slot) = self.conns.get_mut(key) {
            if !slot.flush_queued {
                slot.flush_queued = true;
                self.to_flush.push(key);
            }
        }
    }

    /// Marks a connection for closing at the end of the tick.
    fn kill(&mut self, key: usize) {
        if let Some(slot) = self.conns.get_mut(key) {
            if slot.conn.kill() {
                self.to_reap.push(key);
            }
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
            .is_some_and(|s| s.serial == id.serial && !s.conn.is_dead())
    }
}

/// The store could not be opened; on a full disk the error says what to do.
fn opening_failed(during: &'static str, source: crate::store::StoreError) -> ServerError {
    let disk_full = matches!(&source, crate::store::StoreError::Io(err)
        if err.kind() == io::ErrorKind::StorageFull);
    let during = if disk_full {
        // sled starts a new log segment (2 MiB) when it opens.
        "opening the store: the disk holding the data directory is full; free at least 4 MiB on \
         it and start again (nothing stored was lost)"
    } else {
        during
    };
    ServerError::Store { during, source }
}

fn store_failed(source: crate::store::StoreError) -> ServerError {
    ServerError::Store {
        during: "writing or flushing the store",
        source,
    }
}
