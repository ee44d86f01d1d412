//! The tests' WebSocket client: the shared client's `Session` (reads that wait until a deadline,
//! never longer, so a test never hangs and never sleeps) with every failure a panic and every
//! received event logged for failure messages. `barrier()` proves that nothing else is pending
//! with the shared barrier (`parley_client::json::barrier`), with no fixed sleep.

use std::time::{Duration, Instant};

use parley_client::http::is_retry;
use parley_client::json;
pub use parley_client::ws::ConnectError;
use parley_client::ws::Session;
use serde_json::{json, Value};
use tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tungstenite::protocol::frame::Frame;
use tungstenite::Message;

use super::check::{assert_keys, assert_keys_within, assert_ms, assert_seq, ty, TRANSIENT};
use super::DEADLINE;

pub struct Ws {
    ws: Session,
    /// Label used in failure messages.
    pub name: String,
    /// Every event received, in order.
    pub log: Vec<Value>,
    barriers: u64,
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

    /// The next event, which must be of type `t`, with the envelope `{type, seq, timestamp,
    /// body}` (no `seq` for the transient types 29, 40, 41; plus `id` when the RPC carried
    /// one). Returns the whole event.
    #[track_caller]
    pub fn expect(&mut self, t: u64) -> Value {
        let ev = self.recv_event();
        assert_eq!(ty(&ev), t, "{}: expected event {t}, got {ev}", self.name);
        if TRANSIENT.contains(&t) {
            assert_keys_within(&ev, &["type", "timestamp", "body"], &["id"]);
        } else {
            assert_keys_within(&ev, &["type", "seq", "timestamp", "body"], &["id"]);
            assert_seq(&ev["seq"]);
        }
        assert_ms(&ev["timestamp"]);
        assert!(
            ev["body"].is_object(),
            "{}: body is not an object: {ev}",
            self.name
        );
        ev
    }

    /// Like `expect`, returning only the body.
    #[track_caller]
    pub fn expect_body(&mut self, t: u64) -> Value {
        self.expect(t)["body"].clone()
    }

    /// The next event must be a 90 error with `code`, body `{code, error, method, id?}`: `method`
    /// is the RPC's (None: null, the RPC was unreadable); the client `id` is echoed at the top
    /// level (and, if at all, in the body) exactly when given. Returns the event.
    #[track_caller]
    pub fn expect_error(&mut self, code: &str, method: Option<u64>, id: Option<&str>) -> Value {
        let ev = self.recv_event();
        assert_eq!(
            ty(&ev),
            90,
            "{}: expected error event 90, got {ev}",
            self.name
        );
        assert_keys_within(&ev, &["type", "body"], &["timestamp", "id"]);
        let body = &ev["body"];
        assert_keys_within(body, &["code", "error", "method"], &["id"]);
        assert_eq!(body["code"], code, "{}: error code in {ev}", self.name);
        let text = body["error"]
            .as_str()
            .unwrap_or_else(|| panic!("error text not a string: {ev}"));
        assert!(!text.is_empty(), "empty error text: {ev}");
        match method {
            Some(m) => assert_eq!(body["method"], m, "{}: method in {ev}", self.name),
            None => assert!(
                body["method"].is_null(),
                "{}: method is null when unreadable: {ev}",
                self.name
            ),
        }
        match id {
            Some(id) => {
                assert_eq!(
                    ev["id"], id,
                    "{}: the client id is echoed at the top level: {ev}",
                    self.name
                );
                if !body["id"].is_null() {
                    assert_eq!(body["id"], id, "{}: id in the error body: {ev}", self.name);
                }
            }
            None => {
                assert!(
                    ev["id"].is_null(),
                    "{}: no client id was sent, none echoed: {ev}",
                    self.name
                );
                assert!(
                    body["id"].is_null(),
                    "{}: no client id was sent, none echoed: {ev}",
                    self.name
                );
            }
        }
        ev
    }

    /// Sends a sync RPC (method 20) as given and collects what it streams, up to and including
    /// event 29. Returns the events before the 29, and the 29's body.
    #[track_caller]
    pub fn sync_raw(&mut self, rpc: Value) -> (Vec<Value>, Value) {
        self.send_json(&rpc);
        let mut events = Vec::new();
        loop {
            let ev = self.recv_event();
            if ty(&ev) == 29 {
                let body = ev["body"].clone();
                assert_keys(&body, &["timestamp", "seq", "more"]);
                assert!(body["timestamp"].is_u64(), "29 timestamp: {ev}");
                assert!(body["seq"].is_u64(), "29 seq: {ev}");
                assert!(body["more"].is_boolean(), "29 more: {ev}");
                return (events, body);
            }
            events.push(ev);
        }
    }

    /// One sync page from `cursor` (top-level form); `None` = from the beginning.
    #[track_caller]
    pub fn sync_page(&mut self, cursor: Option<u64>, limit: Option<u64>) -> (Vec<Value>, Value) {
        let mut rpc = json!({"method": 20});
        if let Some(c) = cursor {
            rpc["seq"] = json!(c);
        }
        if let Some(l) = limit {
            rpc["limit"] = json!(l);
        }
        self.sync_raw(rpc)
    }

    /// Every stored event after `cursor`, following `more` page by page.
    #[track_caller]
    pub fn sync_all(&mut self, cursor: Option<u64>) -> Vec<Value> {
        let mut all = Vec::new();
        let mut cursor = cursor;
        for _ in 0..1000 {
            let (events, done) = self.sync_page(cursor, None);
            all.extend(events);
            cursor = Some(done["seq"].as_u64().unwrap());
            if done["more"] == false {
                return all;
            }
        }
        panic!("{}: sync never ended", self.name);
    }

    /// Everything that arrives before a sync round-trip completes (see the module doc).
    #[track_caller]
    pub fn barrier(&mut self) -> Vec<Value> {
        self.barriers += 1;
        let (rpc, cursor) = json::barrier(self.barriers);
        self.send_json(&rpc);
        let mut before = Vec::new();
        loop {
            let ev = self.recv_event();
            if json::ends_barrier(&ev, cursor) {
                assert_eq!(
                    ev["body"]["more"], false,
                    "{}: barrier sync: {ev}",
                    self.name
                );
                return before;
            }
            before.push(ev);
        }
    }

    /// Nothing is pending on this connection: a barrier round-trip sees no event before it.
    #[track_caller]
    pub fn assert_quiet(&mut self) {
        let pending = self.barrier();
        assert!(
            pending.is_empty(),
            "{}: expected no further events, got:\n{}",
            self.name,
            super::show(&pending)
        );
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

/// A 21 ack: body exactly `{message_id}`, top-level `id` equal to the client id when there was one.
#[track_caller]
pub fn assert_ack(ack: &Value, id: Option<&str>) -> String {
    assert_eq!(ty(ack), 21, "expected a 21 ack: {ack}");
    assert_keys(&ack["body"], &["message_id"]);
    match id {
        Some(id) => assert_eq!(ack["id"], id, "the client id is echoed on the ack: {ack}"),
        None => assert!(
            ack["id"].is_null(),
            "no client id was sent, none echoed: {ack}"
        ),
    }
    super::assert_uuid(&ack["body"]["message_id"])
}
