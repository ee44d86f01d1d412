//! Fuzz target: a connection fed raw bytes, through what the loop does with them: HTTP framing
//! (`http::parse`), routing and the REST handlers (`Api::handle`, with password checks answered
//! at once instead of on a worker), and after an upgrade the WebSocket codec with the server's
//! limits feeding `Chat::handle_text` (or the echo). Requests are served in order until one is
//! partial, refused, or ends the connection, as on a socket.
#![no_main]

// Shared with the other dispatching target, which reads the fields this one does not.
#[allow(dead_code)]
#[path = "world.rs"]
mod world;

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use parley::api::Outcome;
use parley::chat::ConnId;
use parley::clock::wall_ms;
use parley::hasher::{self, Work};
use parley::http::{parse, Parsed};
use tungstenite::protocol::{Role, WebSocketConfig, WebSocketContext};
use tungstenite::Message;
use uuid::Uuid;
use world::World;

thread_local! {
    // libFuzzer runs the target on one thread; the chat core's events are `Rc`s, not `Send`.
    static WORLD: RefCell<Option<World>> = const { RefCell::new(None) };
}

/// A socket with nothing more to read (`WouldBlock`, as non-blocking) that takes every write.
struct Drained;

impl Read for Drained {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Err(io::ErrorKind::WouldBlock.into())
    }
}

impl Write for Drained {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The WebSocket phase: `leftover` is what arrived after the upgrade request.
fn websocket(world: &mut World, user: Option<Uuid>, leftover: Vec<u8>) {
    let size = world.limits.max_ws_message_bytes;
    let config = WebSocketConfig::default()
        .max_message_size(Some(size))
        .max_frame_size(Some(size));
    let mut ctx = WebSocketContext::from_partially_read(leftover, Role::Server, Some(config));
    let conn = ConnId {
        key: 100,
        serial: 100,
    };
    if let Some(user) = user {
        world.chat.connect(user, conn);
    }
    let mut wire = Drained;
    while let Ok(message) = ctx.read(&mut wire) {
        match (message, user) {
            (Message::Text(text), Some(user)) => {
                world.chat.handle_text(conn, user, text.as_str(), wall_ms());
                world.settle();
            }
            (message @ (Message::Text(_) | Message::Binary(_)), None) => {
                let _ = ctx.write(&mut wire, message);
            }
            _ => {}
        }
    }
    if let Some(user) = user {
        world.chat.disconnect(user, conn);
    }
}

fuzz_target!(|data: &[u8]| {
    WORLD.with_borrow_mut(|world| serve(world.get_or_insert_with(World::new), data));
});

fn serve(world: &mut World, data: &[u8]) {
    let mut buf = world.expand(data);
    let peer = IpAddr::V4(Ipv4Addr::LOCALHOST);
    while let Ok(Parsed::Complete(request, used)) = parse(&buf, &world.limits) {
        buf.drain(..used);
        let wall = wall_ms();
        match world
            .api
            .handle(&mut world.chat, &request, peer, wall, Instant::now())
        {
            Outcome::Respond(response) => {
                let _ = response.encode(request.keep_alive);
            }
            Outcome::Metrics => {}
            Outcome::Hash(pending, work) => {
                let outcome = match work {
                    Work::Hash { password } => {
                        hasher::Outcome::Hashed(format!("not-a-hash-{}", password.len()))
                    }
                    Work::Verify { password, .. } => hasher::Outcome::Verified(password == "0000"),
                };
                let response = world.api.finish(&mut world.chat, pending, outcome, wall);
                let _ = response.encode(request.keep_alive);
            }
            Outcome::Upgrade { session, .. } => {
                world.settle();
                websocket(world, Some(session.user_id), std::mem::take(&mut buf));
                break;
            }
            Outcome::UpgradeEcho { .. } => {
                websocket(world, None, std::mem::take(&mut buf));
                break;
            }
        }
        world.settle();
        if !request.keep_alive {
            break;
        }
    }
    world.settle();
}
