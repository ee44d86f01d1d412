//! The tests' WebSocket client: the shared client's `Session` (reads that wait until a deadline,
//! never longer, so a test never hangs and never sleeps) with every failure a panic and every
//! received event logged for failure messages: connecting, sending, receiving, control frames and
//! closing. What the events must be, sync and the barrier: `expect`.

use std::time::{Duration, Instant};

use parley_client::http::is_retry;
use parley_client::json;
pub use parley_client::ws::ConnectError;
use parley_client::ws::Session;
use serde_json::{json, Value};
use tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tungstenite::protocol::frame::Frame;
use tungstenite::Message;

use super::DEADLINE;

mod expect;

pub use expect::assert_ack;

pub struct Ws {
    ws: Session,
    /// Label used in failure messages.
    pub name: String,
    /// Every event received, in order.
    pub log: Vec<Value>,
    barriers: u64,
    /// Presence events (50, issue #20) are passed on only when set: they come whenever someone
    /// sharing a group connects, so every other test skips them (see `next_message_before`).
    pub presence: bool,
}

impl Ws {
    /// Connects to a `ws://host:port/path` URL; panics unless the upgrade succeeds.
    #[track_caller]
    pub fn connect(url: &str, name: &str) -> Ws {
        Self::try_connect(url, name)
            .unwrap_or_else(|e| panic!("{name}: WebSocket connect to {url}: {e:?}"))
    }

    pub fn try_connect(url: &str, name: &str) -> Result<Ws, ConnectError> {
        Self::try_connect_with(url, name, &[])
    }

    /// Like `try_connect`, with extra headers on the upgrade request (e.g. `Origin`).
    pub fn try_connect_with(
        url: &str,
        name: &str,
        headers: &[(&str, &str)],
    ) -> Result<Ws, ConnectError> {
        Ok(Ws {
            ws: Session::connect(url, headers, DEADLINE)?,
            name: name.to_string(),
            log: Vec::new(),
            barriers: 0,
            presence: false,
        })
    }

    // ---- sending ----

    pub fn send_json(&mut self, v: &Value) {
        self.send_text(&v.to_string());
    }

    /// Two text frames in one TCP write.
    pub fn send_two(&mut self, a: &str, b: &str) {
        self.ws.queue(Message::text(a)).unwrap();
        self.ws.queue(Message::text(b)).unwrap();
        self.ws.flush().unwrap();
    }

    pub fn send_text(&mut self, s: &str) {
        let name = &self.name;
        self.ws
            .send(Message::text(s))
            .unwrap_or_else(|e| panic!("{name}: send: {e}"));
    }

    /// Sends a text message, ignoring failure (the server may close while it is being written).
    pub fn send_text_lossy(&mut self, s: &str) {
        let _ = self.ws.send(Message::text(s));
    }

    pub fn send_binary(&mut self, b: &[u8]) {
        let name = &self.name;
        self.ws
            .send(Message::binary(b.to_vec()))
            .unwrap_or_else(|e| panic!("{name}: send: {e}"));
    }

    /// Sends one raw data frame (text opcode when `text`, else continuation/binary as given):
    /// for fragmentation and invalid-UTF-8 tests.
    pub fn send_frame(&mut self, payload: &[u8], opcode: Data, is_final: bool) {
        let name = &self.name;
        let frame = Frame::message(payload.to_vec(), OpCode::Data(opcode), is_final);
        self.ws
            .send(Message::Frame(frame))
            .unwrap_or_else(|e| panic!("{name}: send frame: {e}"));
    }

    /// Queues a text message without flushing (for bursts); `flush()` sends them.
    pub fn queue_json(&mut self, v: &Value) {
        let name = &self.name;
        self.ws
            .queue(Message::text(v.to_string()))
            .unwrap_or_else(|e| panic!("{name}: write: {e}"));
    }

    pub fn flush(&mut self) {
        let name = &self.name;
        self.ws
            .flush()
            .unwrap_or_else(|e| panic!("{name}: flush: {e}"));
    }

    /// RPC 40: send `data` to `group`.
    pub fn send_message(&mut self, group: &str, data: &str) {
        self.send_json(&json::send_message(group, data, None));
    }

    /// RPC 40 with a client id.
    pub fn send_message_id(&mut self, group: &str, data: &str, id: &str) {
        self.send_json(&json::send_message(group, data, Some(id)));
    }

    /// RPC 40, then the 21 ack that must be the next event; returns the ack.
    #[track_caller]
    pub fn send_and_ack(&mut self, group: &str, data: &str) -> Value {
        self.send_message(group, data);
        let ack = self.expect(21);
        assert_ack(&ack, None);
        ack
    }

    pub fn delivered(&mut self, message_id: &str) {
        self.send_json(&json!({"method": 41, "body": {"message_id": message_id}}));
    }

    pub fn read(&mut self, message_id: &str) {
        self.send_json(&json!({"method": 42, "body": {"message_id": message_id}}));
    }

    pub fn typing_start(&mut self, group: &str) {
        self.send_json(&json!({"method": 60, "body": {"group_id": group}}));
    }

    pub fn typing_end(&mut self, group: &str) {
        self.send_json(&json!({"method": 61, "body": {"group_id": group}}));
    }

    // ---- receiving ----

    /// The next event, or `None` when nothing arrives before `deadline`.
    /// Panics if the server closes the connection or sends something that is not a JSON text.
    pub fn next_event_before(&mut self, deadline: Instant) -> Option<Value> {
        match self.next_message_before(deadline) {
            None => None,
            Some(Message::Text(t)) => {
                let v: Value = serde_json::from_str(t.as_str())
                    .unwrap_or_else(|e| panic!("{}: event is not JSON ({e}): {t}", self.name));
                self.log.push(v.clone());
                Some(v)
            }
            Some(Message::Close(frame)) => panic!(
                "{}: server closed the connection ({frame:?}); events so far:\n{}",
                self.name,
                super::show(&self.log)
            ),
            Some(other) => panic!("{}: unexpected message {other:?}", self.name),
        }
    }

    /// The next event as the exact text the server sent (also logged, parsed), waiting at most
    /// `DEADLINE`: for comparing events byte for byte.
    #[track_caller]
    pub fn recv_text(&mut self) -> String {
        let deadline = Instant::now() + DEADLINE;
        match self.next_message_before(deadline) {
            Some(Message::Text(t)) => {
                self.log_text(t.as_str());
                t.as_str().to_string()
            }
            None => panic!(
                "{}: no event within {DEADLINE:?}; events so far:\n{}",
                self.name,
                super::show(&self.log)
            ),
            Some(other) => panic!("{}: expected a text event, got {other:?}", self.name),
        }
    }

    /// Keeps a text message that arrived while waiting for something else, if it is JSON.
    fn log_text(&mut self, text: &str) {
        if let Ok(v) = serde_json::from_str(text) {
            self.log.push(v);
        }
    }

    /// The next data or close message; pings and pongs are skipped (tungstenite answers pings).
    fn next_message_before(&mut self, deadline: Instant) -> Option<Message> {
        loop {
            match self.ws.read_before(deadline) {
                Ok(None) => return None,
                Ok(Some(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                Ok(Some(Message::Text(t))) if !self.presence && is_presence(t.as_str()) => continue,
                Ok(Some(m)) => return Some(m),
                Err(e) => panic!(
                    "{}: WebSocket read failed: {e}; events so far:\n{}",
                    self.name,
                    super::show(&self.log)
                ),
            }
        }
    }

    /// The next event, waiting at most `DEADLINE`.
    #[track_caller]
    pub fn recv_event(&mut self) -> Value {
        let deadline = Instant::now() + DEADLINE;
        match self.next_event_before(deadline) {
            Some(v) => v,
            None => panic!(
                "{}: no event within {DEADLINE:?}; events so far:\n{}",
                self.name,
                super::show(&self.log)
            ),
        }
    }

    /// Sends a ping with `payload` and waits for the matching pong (events meanwhile are logged).
    #[track_caller]
    pub fn ping_pong(&mut self, payload: &[u8]) {
        let name = self.name.clone();
        self.ws
            .send(Message::Ping(payload.to_vec().into()))
            .unwrap_or_else(|e| panic!("{name}: ping: {e}"));
        let deadline = Instant::now() + DEADLINE;
        loop {
            match self.ws.read_before(deadline) {
                Ok(None) => panic!("{name}: no pong within {DEADLINE:?}"),
                Ok(Some(Message::Pong(p))) => {
                    assert_eq!(
                        &p[..],
                        payload,
                        "{name}: the pong echoes the ping's payload"
                    );
                    return;
                }
                Ok(Some(Message::Text(t))) => self.log_text(t.as_str()),
                Ok(Some(Message::Close(f))) => {
                    panic!("{name}: closed while waiting for a pong: {f:?}")
                }
                Ok(Some(_)) => continue,
                Err(e) => panic!("{name}: while waiting for a pong: {e}"),
            }
        }
    }

    /// Starts the closing handshake with `code` and returns the code of the server's close frame
    /// (None when it closed the TCP connection without one).
    #[track_caller]
    pub fn close_with(&mut self, code: CloseCode) -> Option<CloseCode> {
        let frame = tungstenite::protocol::CloseFrame {
            code,
            reason: "bye".into(),
        };
        let name = self.name.clone();
        self.ws
            .close(Some(frame))
            .unwrap_or_else(|e| panic!("{name}: close: {e}"));
        self.expect_close()
    }

    /// Waits (at most `within`) for a ping from the server; events that arrive meanwhile are
    /// logged. Returns whether a ping came.
    pub fn wait_for_ping(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            match self.ws.read_before(deadline) {
                Ok(None) => return false,
                Ok(Some(Message::Ping(_))) => return true,
                Ok(Some(Message::Text(t))) => self.log_text(t.as_str()),
                Ok(Some(Message::Close(f))) => {
                    panic!("{}: closed while waiting for a ping: {f:?}", self.name)
                }
                Ok(Some(_)) => continue,
                Err(e) => panic!("{}: while waiting for a ping: {e}", self.name),
            }
        }
    }

    /// Closes the client's sending side of the socket (TCP end of stream); reading goes on.
    pub fn half_close(&mut self) {
        self.ws
            .stream()
            .shutdown(std::net::Shutdown::Write)
            .unwrap_or_else(|e| panic!("{}: shutdown: {e}", self.name));
    }

    /// Plays dead: reads raw bytes from the socket underneath (so pings are never answered) until
    /// the server closes the TCP connection or `within` passes. Returns how long the server took.
    pub fn play_dead_until_dropped(&mut self, within: Duration) -> Option<Duration> {
        use std::io::Read;
        let start = Instant::now();
        let deadline = start + within;
        let stream = self.ws.stream();
        let mut buf = [0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            match stream.read(&mut buf) {
                Ok(0) => return Some(start.elapsed()),
                Ok(_) => continue, // pings, and finally perhaps a close frame
                Err(e) if is_retry(&e) => continue,
                Err(_) => return Some(start.elapsed()),
            }
        }
    }

    /// Waits for the server to close the connection; returns the close code (None if it closed
    /// without a close frame). Data messages before the close are collected into the log.
    #[track_caller]
    pub fn expect_close(&mut self) -> Option<CloseCode> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            match self.ws.read_before(deadline) {
                Ok(None) => panic!(
                    "{}: the server did not close within {DEADLINE:?}",
                    self.name
                ),
                Ok(Some(Message::Close(frame))) => return frame.map(|f| f.code),
                Ok(Some(Message::Text(t))) => self.log_text(t.as_str()),
                Ok(Some(_)) => continue,
                Err(tungstenite::Error::ConnectionClosed)
                | Err(tungstenite::Error::AlreadyClosed)
                | Err(tungstenite::Error::Protocol(_))
                | Err(tungstenite::Error::Io(_)) => return None,
                Err(e) => panic!("{}: while waiting for close: {e}", self.name),
            }
        }
    }
}

/// Whether a text message is a presence event (type 50).
fn is_presence(text: &str) -> bool {
    serde_json::from_str::<Value>(text).is_ok_and(|v| v["type"] == 50)
}
