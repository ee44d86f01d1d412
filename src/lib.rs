//! parley: a group-chat server on one mio event loop, durable in sled.
//!
//! Modules in the order data flows through them:
//! socket readiness ([`server`]) -> HTTP bytes to requests ([`http`]) -> routes and REST handlers
//! ([`api`]) or WebSocket RPCs ([`protocol`]) -> the chat core ([`chat`]) -> the store ([`store`]) ->
//! the outbox ([`chat::Outbox`]): fan-out at once, acks once the flusher made the tick durable
//! ([`store::flusher`]) -> write buffers ([`server`]).

pub mod api;
pub mod auth;
pub mod chat;
pub mod clock;
pub mod config;
pub mod error;
pub mod hasher;
pub mod http;
pub mod idmap;
pub mod log;
pub mod metrics;
pub mod priority;
pub mod protocol;
pub mod proxies;
pub mod ratelimit;
pub mod server;
pub mod store;
