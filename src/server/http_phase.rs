//! The loop's side of reading: one read turn per connection per tick, and the HTTP phase's
//! requests handed to the REST handlers, the password hashers and the upgrade.

use std::time::Instant;

use serde_json::json;
use uuid::Uuid;

use super::connection::{AfterHttpRead, HttpNext, HttpRead, Phase, Turn};
use super::websocket_phase::store_cannot_write;
use super::Server;
use crate::api::{Outcome, Pending, Route};
use crate::chat::{Frame, Release};
use crate::error::ApiError;
use crate::hasher::Busy;
use crate::http::{self, Response};

impl Server {
    pub(super) fn read(&mut self, key: usize, wall: u64, now: Instant) {
        let Some(slot) = self.conns.get_mut(key) else {
            return;
        };
        // One budget per connection per tick: a read that used it up queued the next one.
        if slot.read_tick == self.tick || !slot.conn.may_read(&self.limits) {
            return;
        }
        slot.read_tick = self.tick;
        match slot.conn.phase() {
            Phase::WebSocket(_) => self.read_websocket(key, wall, now),
            Phase::Http(_) | Phase::AwaitingHash(_) => self.read_http(key, wall, now),
        }
    }

    pub(super) fn read_http(&mut self, key: usize, wall: u64, now: Instant) {
        let slot = &mut self.conns[key];
        let read = slot.conn.read_http(&mut slot.socket, now);
        match read {
            HttpRead::Idle => return,
            HttpRead::Failed => {
                self.kill(key);
                return;
            }
            HttpRead::Read { .. } => {}
        }
        self.serve_http(key, wall, now);
        match self.conns[key].conn.after_http_read(&read, &self.limits) {
            AfterHttpRead::Nothing => {}
            AfterHttpRead::ReadAgain => self.read_later(key),
            AfterHttpRead::Flush => self.queue_flush(key),
        }
    }

    /// Answers the complete requests at the front of the connection's buffer, in order, until
    /// one has to wait for a password hash, the connection upgrades, or its answers back up.
    fn serve_http(&mut self, key: usize, wall: u64, now: Instant) {
        let id = self.conn_id(key);
        let outbox_at_start = self.chat.outbox.bytes();
        let mut turn = Turn::default();
        loop {
            let slot = &mut self.conns[key];
            let produced = self.chat.outbox.bytes() - outbox_at_start;
            let request = match slot
                .conn
                .next_request(&mut turn, produced, &self.limits, now)
            {
                HttpNext::Request(request) => request,
                HttpNext::Stop => return,
                HttpNext::Yield => {
                    self.read_later(key);
                    return;
                }
                HttpNext::BackedUp { flush } => {
                    if flush {
                        // Nothing to flush yet: the answers leave with this tick's outbox.
                        self.queue_flush(key);
                    }
                    return;
                }
                HttpNext::Reject { code, answer } => {
                    self.chat.metrics.count_error(code);
                    self.chat.respond(id, answer);
                    return;
                }
            };
            // While shutting down, every answer is the connection's last, and says so.
            let keep_alive = request.keep_alive && self.shutdown_deadline.is_none();
            let ip = slot.ip;
            // While the store cannot write, requests that would write are refused before they
            // run, and their answer waits for no commit.
            // The health check and the metrics read nothing stored, so they too leave at once.
            // The others (the `GET` routes, a login) store nothing and read only what is
            // durable: they run, and their answers leave at once (`Chat::respond_read`).
            if self.durability.degraded().is_some() {
                let writes = !matches!(request.method.as_str(), "GET" | "HEAD" | "OPTIONS")
                    && !matches!(
                        crate::api::route(&request.method, &request.path),
                        Ok(Route::Login)
                    );
                let answer = if writes {
                    let refused = store_cannot_write();
                    self.chat.metrics.count_error(refused.code);
                    Some(Response::error(&refused))
                } else if request.path == "/healthz" {
                    Some(Response::json(503, &json!({"status": "degraded"})))
                } else if request.path == "/metrics" {
                    Some(Response::metrics(self.chat.metrics.render(&self.gauges())))
                } else {
                    None
                };
                if let Some(answer) = answer {
                    let bytes = answer.encode_for(&request.method, keep_alive);
                    self.chat.outbox.push(id, Frame::Http(bytes), Release::Now);
                    if !keep_alive {
                        self.conns[key].conn.close_after_write();
                        return;
                    }
                    continue;
                }
            }
            match self.api.handle(&mut self.chat, &request, ip, wall, now) {
                Outcome::Respond(response) => {
                    self.chat
                        .respond_read(id, response.encode_for(&request.method, keep_alive));
                    if !keep_alive {
                        self.conns[key].conn.close_after_write();
                        return;
                    }
                }
                Outcome::Metrics => {
                    let body = self.chat.metrics.render(&self.gauges());
                    let response = Response::metrics(body);
                    self.chat
                        .respond_read(id, response.encode_for(&request.method, keep_alive));
                    if !keep_alive {
                        self.conns[key].conn.close_after_write();
                        return;
                    }
                }
                Outcome::Hash(pending, work) => {
                    match self.hasher.submit((id, pending, keep_alive), work) {
                        Ok(()) => {
                            self.hashes_in_flight += 1;
                            self.conns[key].conn.await_hash();
                            return;
                        }
                        Err(Busy) => {
                            let busy = ApiError::rate_limited(
                                "too many logins and registrations in progress; retry shortly",
                            )
                            .with_status(503);
                            self.chat.metrics.count_error(busy.code);
                            let response = Response::error(&busy).with_header("retry-after", "1");
                            self.chat.respond_read(id, response.encode(keep_alive));
                        }
                    }
                }
                Outcome::Upgrade { .. } | Outcome::UpgradeEcho { .. }
                    if self.shutdown_deadline.is_some() =>
                {
                    let closing = ApiError::unavailable("the server is shutting down");
                    let response = Response::error(&closing).with_header("retry-after", "5");
                    self.chat.respond(id, response.encode(false));
                    self.conns[key].conn.close_after_write();
                    return;
                }
                Outcome::Upgrade {
                    session,
                    key: ws_key,
                } => {
                    self.chat.devices.connect(session.id, id);
                    self.upgrade(key, &ws_key, Some(session.user_id), now);
                    return;
                }
                Outcome::UpgradeEcho { key: ws_key } => {
                    self.upgrade(key, &ws_key, None, now);
                    return;
                }
            }
        }
    }

    /// Answers 101 and hands the connection, with any bytes already read past the request, to
    /// tungstenite.
    fn upgrade(&mut self, key: usize, ws_key: &str, user: Option<Uuid>, now: Instant) {
        let id = self.conn_id(key);
        // The session was read from what is durable: its token is known only from the answer
        // that created it, which left once it was stored.
        self.chat.respond_read(id, http::upgrade_response(ws_key));
        let has_leftover = self.conns[key].conn.upgrade(user, &self.ws_config, now);
        if let Some(user) = user {
            self.chat.connect(user, id);
        }
        if has_leftover {
            self.read_later(key);
        }
    }

    /// Hands finished password hashes back to the requests that waited for them.
    pub(super) fn collect_hashes(&mut self, wall: u64, now: Instant) {
        let finished: Vec<_> = self.hasher.finished().collect();
        self.hashes_in_flight -= finished.len().min(self.hashes_in_flight);
        for ((id, pending, keep_alive), outcome) in finished {
            if !self.is_live(id) {
                continue;
            }
            // Shutting down: this answer is the connection's last, and says so.
            let keep_alive = keep_alive && self.shutdown_deadline.is_none();
            // A login stores nothing (its token is signed, not stored), so it waits for no
            // commit, unless the account it read is not stored yet (registered in commits that
            // still wait): then it waits for them, as that registration's 201 does.
            let reads_stored = match &pending {
                Pending::Login { user } => {
                    user.is_none_or(|user| !self.chat.store().user_in_memory(user))
                }
                Pending::Register { .. } | Pending::ChangePassword { .. } => false,
            };
            let response = self.api.finish(&mut self.chat, pending, outcome, wall);
            if reads_stored {
                self.chat.respond_read(id, response.encode(keep_alive));
            } else {
                self.chat.respond(id, response.encode(keep_alive));
            }
            if self.conns[id.key].conn.hash_done(keep_alive, now) {
                self.read_later(id.key);
            }
        }
    }
}
