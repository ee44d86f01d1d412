//! Fuzz target: a WebSocket text message decoded and dispatched by the chat core
//! (`Chat::handle_text`) over a real store, as alice, bob or eve (the first byte picks who).
//! Every event produced must be JSON with a numeric `type`.
#![no_main]

// Shared with the other dispatching target, which reads the fields this one does not.
#[allow(dead_code)]
#[path = "world.rs"]
mod world;

use std::cell::RefCell;

use libfuzzer_sys::fuzz_target;
use parley::clock::wall_ms;
use world::World;

thread_local! {
    // libFuzzer runs the target on one thread; the chat core's events are `Rc`s, not `Send`.
    static WORLD: RefCell<Option<World>> = const { RefCell::new(None) };
}

fuzz_target!(|data: &[u8]| {
    let Some((&who, text)) = data.split_first() else {
        return;
    };
    WORLD.with_borrow_mut(|world| dispatch(world.get_or_insert_with(World::new), who, text));
});

fn dispatch(world: &mut World, who: u8, text: &[u8]) {
    let Ok(text) = String::from_utf8(world.expand(text)) else {
        return;
    };
    let who = usize::from(who) % world.users.len();
    world
        .chat
        .handle_text(world.conns[who], world.users[who], &text, wall_ms());
    world.settle();
}
