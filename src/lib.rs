//! parley: a group-chat server on one mio event loop, durable in sled.
//!
//! Modules in the order data flows through them:
//! socket readiness ([`server`]) -> HTTP bytes to requests ([`http`]) -> routes and REST handlers
//! ([`api`]) or WebSocket RPCs ([`protocol`]) -> the chat core ([`chat`]) -> the store ([`store`]) ->
//! the outbox released after one flush per tick ([`chat::Outbox`]) -> write buffers ([`server`]).

pub mod config;
pub mod server;
pub mod http;
pub mod api;
pub mod protocol;
pub mod chat;
pub mod auth;
pub mod hasher;
pub mod store;
pub mod clock;
pub mod error;
