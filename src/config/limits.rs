//! The limits every other module reads: sizes, timeouts, caps and rates, with their defaults
//! and the check that they fit together.

use std::time::Duration;

use crate::chat::ChatLimits;

/// Sizes and timeouts. Defaults are chosen for many small connections on a small host.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest HTTP request head (request line and headers), in bytes. Beyond: 431.
    pub max_head_bytes: usize,
    /// Most headers in one request. Beyond: 431.
    pub max_headers: usize,
    /// Largest HTTP request body. Beyond: 413.
    pub max_body_bytes: usize,
    /// Largest WebSocket message and frame. Beyond: close 1009.
    pub max_ws_message_bytes: usize,
    /// tungstenite's read buffer per WebSocket connection.
    pub ws_read_buffer_bytes: usize,
    /// Most bytes queued for one connection before it is dropped as a slow consumer.
    pub max_outbox_bytes: usize,
    /// Largest `data` of a message.
    pub max_data_bytes: usize,
    /// Events per sync page when the client gives no `limit`, and the most it may ask for.
    pub sync_default_limit: usize,
    pub sync_max_limit: usize,
    /// Password-hashing jobs waiting for a worker before new ones get 503.
    pub hash_queue: usize,
    pub ping_interval: Duration,
    pub pong_timeout: Duration,
    /// A request must arrive whole (head and body) within this long of its first byte. Beyond:
    /// 408 and close (slowloris).
    pub request_timeout: Duration,
    /// A keep-alive HTTP connection with no request in progress for this long is closed.
    pub http_idle_timeout: Duration,
    pub max_connections: usize,
    /// 0 = no cap.
    pub max_connections_per_ip: usize,
    /// Registrations + logins per minute per client address; 0 = no limit.
    pub auth_rate_per_minute: u32,
    /// Members one group may have. Beyond: 403 `limit_reached`.
    pub max_group_members: usize,
    /// Groups one user may belong to at once. Beyond: 403 `limit_reached`.
    pub max_groups_per_user: usize,
    /// Sends (40) per second per user; 0 = no limit. Beyond: event 90 `rate_limited`.
    pub sends_per_second: u32,
    /// Typing notices (60/61) per second per user; 0 = no limit. Beyond: event 90 `rate_limited`.
    pub typing_per_second: u32,
    /// Joins and leaves one user may make per minute; 0 = no limit. Beyond: 429 `rate_limited`.
    pub membership_changes_per_minute: u32,
    /// Open WebSockets per user; 0 = no cap. Beyond: the upgrade gets 403 `limit_reached`.
    pub max_connections_per_user: usize,

    /// Bytes queued for writing over all connections; past it the slow consumers furthest
    /// behind are closed (`server::budget`).
    pub max_queued_output_bytes: usize,
}

impl Limits {
    /// The limits the chat core enforces.
    pub fn chat(&self) -> ChatLimits {
        ChatLimits {
            max_data_bytes: self.max_data_bytes,
            sync_default_limit: self.sync_default_limit,
            sync_max_limit: self.sync_max_limit,
            // A sync page must fit a connection's outbox with room to spare.
            sync_max_bytes: self.max_outbox_bytes / 2,
            sync_max_streams: crate::chat::SYNC_MAX_STREAMS,
            max_group_members: self.max_group_members,
            max_groups_per_user: self.max_groups_per_user,
            sends_per_second: self.sends_per_second,
            typing_per_second: self.typing_per_second,
            membership_changes_per_minute: self.membership_changes_per_minute,
            max_connections_per_user: self.max_connections_per_user,
        }
    }

    /// The largest event 70 a group may make (every member listed) must fit a sync page and so
    /// the connection's outbox, or a member who syncs from before it could never get past it.
    pub fn check(&self) -> Result<(), String> {
        let page = self.chat().sync_max_bytes;
        crate::chat::check_group_event_fits(self.max_group_members, page).map_err(|err| {
            let cap = self.max_outbox_bytes;
            format!("{err} (half the per-connection output cap of {cap} bytes)")
        })
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head_bytes: 8 * 1024,
            max_headers: 64,
            max_body_bytes: 64 * 1024,
            max_ws_message_bytes: 64 * 1024,
            // Chat messages are small; a longer one grows the buffer as it arrives.
            ws_read_buffer_bytes: 2 * 1024,
            max_outbox_bytes: 1024 * 1024,
            max_data_bytes: 16 * 1024,
            sync_default_limit: 500,
            sync_max_limit: 1000,
            hash_queue: 256,
            ping_interval: Duration::from_secs(10),
            pong_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(10),
            http_idle_timeout: Duration::from_secs(60),
            max_connections: 20_000,
            max_connections_per_ip: 1000,
            auth_rate_per_minute: 60,
            max_group_members: 10_000,
            max_groups_per_user: 1_000,
            sends_per_second: 0,
            typing_per_second: 20,
            membership_changes_per_minute: 60,
            max_connections_per_user: 100,

            // A small host's share for output buffers: 64 connections at their own cap, while a
            // prompt reader holds a tick's events at most.
            max_queued_output_bytes: 64 * 1024 * 1024,
        }
    }
}
