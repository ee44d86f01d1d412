//! The client side of parley's protocol, shared by the integration tests, the conformance kit
//! (`parley-conformance`) and the load generator's setup (`parley-load`): blocking HTTP/1.1
//! exchanges with exact access to status, headers and body, WebSocket sessions whose reads wait
//! until a deadline and never longer, and the JSON the three build alike.
//!
//! A crate of its own, not a module of `parley`: the server binary never links it, and each
//! caller keeps its own way of failing (tests panic, the kit reports, the load generator counts).

pub mod http;
pub mod json;
pub mod jwt;
pub mod ws;
