//! Readable helpers shared by every test: start/stop the real server, talk HTTP and WebSocket to
//! it, and assert on JSON the way the protocol document describes it.
#![allow(dead_code)]

pub mod api;
pub mod check;
pub mod http;
pub mod jwt;
pub mod server;
pub mod ws;

use std::time::Duration;

pub use parley_client::json::now_ms;

pub use api::{assert_group_answer, session_body, url_token, User};
pub use check::*;
#[allow(unused_imports)]
pub use http::{Http, Response};
pub use server::Server;
pub use ws::{assert_ack, Ws};

pub use serde_json::{json, Value};

/// How long a test waits for something that must happen (an event, an answer, a start-up).
pub const DEADLINE: Duration = Duration::from_secs(10);

/// The walkthrough's password.
pub const PASSWORD: &str = "0000";

/// A name unique to this test run: `prefix` plus 10 hex digits of a fresh UUID.
pub fn unique(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}_{}", &id[..10])
}

/// A random UUID that names nothing on the server.
pub fn random_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}
