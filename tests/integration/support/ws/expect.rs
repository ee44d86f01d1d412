//! What events must be: the envelope of each type, error events, acks; sync pages followed to
//! the end, and the barrier that proves nothing else is pending.

use parley_client::json;
use serde_json::{json, Value};

use super::Ws;
use crate::support::check::{
    assert_keys, assert_keys_within, assert_ms, assert_seq, ty, TRANSIENT,
};
use crate::support::{assert_uuid, show};

impl Ws {
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
            show(&pending)
        );
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
    assert_uuid(&ack["body"]["message_id"])
}
