//! The JSON the clients build and read alike: RPCs, the barrier that proves nothing else is
//! pending, and the protocol's clock.
//!
//! The barrier: a sync (method 20) from a cursor after every real event, whose answer is only
//! event 29. The server answers the RPCs of one connection in order, so whatever it queued for
//! the connection before the barrier arrives before that 29.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

/// 2100-01-01 in ms: a sync cursor after every real event.
pub const FAR_FUTURE: u64 = 4_102_444_800_000;

/// The barrier RPC numbered `n` (distinct per connection) and the cursor its 29 carries back.
pub fn barrier(n: u64) -> (Value, u64) {
    let cursor = FAR_FUTURE + n;
    (json!({"method": 20, "timestamp": cursor}), cursor)
}

/// Whether `event` is the 29 that ends the barrier with `cursor`.
pub fn ends_barrier(event: &Value, cursor: u64) -> bool {
    event["type"].as_u64() == Some(29) && event["body"]["timestamp"].as_u64() == Some(cursor)
}

/// RPC 40: send `data` to `group`, with the client `id` when given.
pub fn send_message(group: &str, data: &str, id: Option<&str>) -> Value {
    let mut rpc = json!({"method": 40, "body": {"group_id": group, "data": data}});
    if let Some(id) = id {
        rpc["id"] = json!(id);
    }
    rpc
}

/// Milliseconds since the Unix epoch, as the protocol counts time.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
