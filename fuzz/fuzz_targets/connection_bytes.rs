//! Fuzz target: a connection fed raw bytes through the server's own state machine
//! (`parley::server::connection::Connection`), driven as the loop drives it: HTTP framing and
//! pipelining, the REST handlers (`Api::handle`, with password checks answered at once instead
//! of on a worker), the upgrade with the bytes after it, then the WebSocket codec with the
//! server's limits feeding `Chat::handle_text` (the echo endpoint the connection answers
//! itself). After each step the outbox's frames for this connection are delivered into it, a
//! close decided for after the tick is sent, and its write buffer is taken as a socket would.
#![no_main]

// Shared with the other dispatching target, which reads the fields this one does not.
#[allow(dead_code)]
#[path = "world.rs"]
mod world;

use std::cell::RefCell;
use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use parley::api::Outcome;
use parley::chat::{ConnId, Cost};
use parley::clock::wall_ms;
use parley::config::Limits;
use parley::error::ApiError;
use parley::hasher::{self, Work};
use parley::http::upgrade_response;
use parley::protocol::RpcError;
use parley::server::connection::{
    websocket_config, AfterHttpRead, AfterWrite, Connection, Delivery, HttpNext, HttpRead, Phase,
    TickClose, Turn, WsNext,
};
use tungstenite::protocol::frame::coding::CloseCode;
use world::World;

thread_local! {
    // libFuzzer runs the target on one thread; the chat core's events are `Rc`s, not `Send`.
    static WORLD: RefCell<Option<World>> = const { RefCell::new(None) };
}

/// The connection's id in the chat core (the world's own connections are 0 to 2).
const ID: ConnId = ConnId {
    key: 100,
    serial: 100,
};

/// Read turns per input at most; each one consumes input or ends the run, so this only bounds
/// what the budgets already bound.
const MAX_TURNS: usize = 1024;

/// The input as a non-blocking socket gives it: what is left, then `WouldBlock`.
struct Input<'a>(&'a [u8]);

impl Read for Input<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.0.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(self.0.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

fuzz_target!(|data: &[u8]| {
    WORLD.with_borrow_mut(|world| serve(world.get_or_insert_with(World::new), data));
});

fn serve(world: &mut World, data: &[u8]) {
    let bytes = world.expand(data);
    let mut input = Input(&bytes);
    let limits = world.limits.clone();
    let now = Instant::now();
    let mut conn = Connection::new(now);
    for _ in 0..MAX_TURNS {
        let again = match conn.phase() {
            Phase::WebSocket(_) => websocket_turn(world, &mut conn, &mut input, &limits, now),
            Phase::Http(_) | Phase::AwaitingHash(_) => {
                http_turn(world, &mut conn, &mut input, &limits, now)
            }
        };
        let written = end_of_tick(world, &mut conn, &limits, now);
        if conn.is_dead() || !(again || written == AfterWrite::ReadAgain) {
            break;
        }
    }
    if let Some(user) = conn.user() {
        world.chat.disconnect(user, ID);
    }
    world.settle();
}

/// One read turn of an HTTP connection; true when the loop would read it again next tick.
fn http_turn(
    world: &mut World,
    conn: &mut Connection,
    input: &mut Input<'_>,
    limits: &Limits,
    now: Instant,
) -> bool {
    let read = conn.read_http(input, now);
    if !matches!(read, HttpRead::Read { .. }) {
        return false;
    }
    let peer = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let outbox_at_start = world.chat.outbox.bytes();
    let mut turn = Turn::default();
    let mut again = false;
    loop {
        let produced = world.chat.outbox.bytes() - outbox_at_start;
        let request = match conn.next_request(&mut turn, produced, limits, now) {
            HttpNext::Request(request) => request,
            HttpNext::Reject { answer, .. } => {
                world.chat.respond(ID, answer);
                break;
            }
            HttpNext::Yield => {
                again = true;
                break;
            }
            HttpNext::Stop | HttpNext::BackedUp { .. } => break,
        };
        let wall = wall_ms();
        let keep_alive = request.keep_alive;
        match world.api.handle(&mut world.chat, &request, peer, wall, now) {
            Outcome::Respond(response) => {
                let answer = response.encode_for(&request.method, keep_alive);
                world.chat.respond(ID, answer);
            }
            Outcome::Metrics => world.chat.respond(ID, b"metrics".to_vec()),
            Outcome::Hash(pending, work) => {
                conn.await_hash();
                let outcome = match work {
                    Work::Hash { password } => {
                        hasher::Outcome::Hashed(format!("not-a-hash-{}", password.len()))
                    }
                    Work::Verify { password, .. } => hasher::Outcome::Verified(password == "0000"),
                    Work::Rehash {
                        password,
                        new_password,
                        ..
                    } => hasher::Outcome::Rehashed(
                        (password == "0000").then(|| format!("not-a-hash-{}", new_password.len())),
                    ),
                };
                let response = world.api.finish(&mut world.chat, pending, outcome, wall);
                world.chat.respond(ID, response.encode(keep_alive));
                again = conn.hash_done(keep_alive, now);
                break;
            }
            Outcome::Upgrade { session, key } => {
                world.chat.respond(ID, upgrade_response(&key));
                again = conn.upgrade(Some(session.user_id), &websocket_config(limits), now);
                world.chat.connect(session.user_id, ID);
                world.chat.devices.connect(session.id, ID);
                break;
            }
            Outcome::UpgradeEcho { key } => {
                world.chat.respond(ID, upgrade_response(&key));
                again = conn.upgrade(None, &websocket_config(limits), now);
                break;
            }
        }
        if !keep_alive {
            conn.close_after_write();
            break;
        }
    }
    match conn.after_http_read(&read, limits) {
        AfterHttpRead::ReadAgain => true,
        AfterHttpRead::Nothing | AfterHttpRead::Flush => again,
    }
}

/// One read turn of a WebSocket; true when the loop would read it again next tick.
fn websocket_turn(
    world: &mut World,
    conn: &mut Connection,
    input: &mut Input<'_>,
    limits: &Limits,
    now: Instant,
) -> bool {
    let outbox_at_start = world.chat.outbox.bytes();
    let mut turn = Turn::default();
    loop {
        let produced = world.chat.outbox.bytes() - outbox_at_start;
        match conn.next_message(input, &mut turn, produced, limits, now) {
            WsNext::Text(text, user) => {
                if world.chat.handle_text(ID, user, text.as_str(), wall_ms()) == Cost::Heavy {
                    turn.end();
                }
            }
            WsNext::Binary => {
                let err = RpcError {
                    method: None,
                    id: None,
                    error: ApiError::bad_request("binary"),
                };
                world.chat.send_error(ID, &err, wall_ms());
            }
            WsNext::Yield => return true,
            WsNext::Fail(code, reason) => {
                conn.close_after_tick(code, reason);
                return false;
            }
            WsNext::Gone => {
                conn.kill();
                return false;
            }
            WsNext::Drained | WsNext::Closed | WsNext::Idle => return false,
        }
    }
}

/// The loop's end of tick for this connection: the outbox committed and delivered (every event
/// checked), the close decided for after the tick, and one write.
fn end_of_tick(
    world: &mut World,
    conn: &mut Connection,
    limits: &Limits,
    now: Instant,
) -> AfterWrite {
    world.settle_with(|to, frame| {
        if to != ID || conn.is_dead() {
            return;
        }
        if conn.deliver(frame, limits) == Delivery::SlowConsumer {
            conn.send_close(CloseCode::Policy, "too many events queued", limits, now);
        }
    });
    if let TickClose::Send(code, reason) = conn.tick_close() {
        conn.send_close(code, reason, limits, now);
    }
    if conn.is_dead() {
        return AfterWrite::Close;
    }
    let queued = conn.queue_control_frames(limits);
    conn.consumed(conn.pending().len());
    conn.after_write(Ok(()).and(queued))
}
