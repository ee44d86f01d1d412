//! Assertions on JSON values, phrased as the protocol document phrases them.

use serde_json::Value;
use std::collections::BTreeSet;

/// `v` is an object whose keys are exactly `keys`.
#[track_caller]
pub fn assert_keys(v: &Value, keys: &[&str]) {
    let obj = v
        .as_object()
        .unwrap_or_else(|| panic!("expected a JSON object, got {v}"));
    let got: BTreeSet<&str> = obj.keys().map(|k| k.as_str()).collect();
    let want: BTreeSet<&str> = keys.iter().copied().collect();
    assert_eq!(got, want, "keys of {v}");
}

/// `v` is an object that has every key of `required` and no key outside `required` + `optional`.
#[track_caller]
pub fn assert_keys_within(v: &Value, required: &[&str], optional: &[&str]) {
    let obj = v
        .as_object()
        .unwrap_or_else(|| panic!("expected a JSON object, got {v}"));
    for k in required {
        assert!(obj.contains_key(*k), "missing key {k:?} in {v}");
    }
    for k in obj.keys() {
        assert!(
            required.contains(&k.as_str()) || optional.contains(&k.as_str()),
            "unexpected key {k:?} in {v}"
        );
    }
}

/// `v` is a UUID in its hyphenated lower-case form; returns it.
#[track_caller]
pub fn assert_uuid(v: &Value) -> String {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("expected a UUID string, got {v}"));
    assert!(uuid::Uuid::parse_str(s).is_ok(), "not a UUID: {s:?}");
    assert_eq!(s.len(), 36, "not hyphenated: {s:?}");
    assert_eq!(s, s.to_lowercase(), "not lower-case: {s:?}");
    s.to_string()
}

/// `v` is a millisecond timestamp (a non-negative integer that looks like a date after 2020 and
/// before 2100); returns it.
#[track_caller]
pub fn assert_ms(v: &Value) -> u64 {
    let t = v
        .as_u64()
        .unwrap_or_else(|| panic!("expected an integer timestamp, got {v}"));
    assert!(
        (1_577_836_800_000..4_102_444_800_000).contains(&t),
        "timestamp {t} is not milliseconds since the epoch"
    );
    t
}

/// Event types that are never stored, and so carry no `seq`.
pub const TRANSIENT: [u64; 4] = [29, 40, 41, 90];

/// `v` is a seq: an integer from 1 to 2^53 - 1; returns it.
#[track_caller]
pub fn assert_seq(v: &Value) -> u64 {
    let seq = v
        .as_u64()
        .unwrap_or_else(|| panic!("expected an integer seq, got {v}"));
    assert!((1..1 << 53).contains(&seq), "seq {seq} out of range");
    seq
}

/// The `seq` of a stored event.
#[track_caller]
pub fn seq(ev: &Value) -> u64 {
    ev["seq"]
        .as_u64()
        .unwrap_or_else(|| panic!("event without a numeric seq: {ev}"))
}

/// The `type` of an event.
#[track_caller]
pub fn ty(ev: &Value) -> u64 {
    ev["type"]
        .as_u64()
        .unwrap_or_else(|| panic!("event without a numeric type: {ev}"))
}

/// The `timestamp` of an event.
#[track_caller]
pub fn ts(ev: &Value) -> u64 {
    ev["timestamp"]
        .as_u64()
        .unwrap_or_else(|| panic!("event without a numeric timestamp: {ev}"))
}

/// The event's identity for comparisons: `(type, seq, timestamp, body)` (`seq` 0 for a
/// transient event).
pub fn ident(ev: &Value) -> (u64, u64, u64, Value) {
    (
        ty(ev),
        ev["seq"].as_u64().unwrap_or(0),
        ts(ev),
        ev["body"].clone(),
    )
}

/// `events` are in the order one connection gets them live: stored events in strictly
/// increasing seq order, and timestamps that never decrease (transient events, which have no
/// seq, included).
#[track_caller]
pub fn assert_strictly_increasing(events: &[Value]) {
    for w in events.windows(2) {
        assert!(
            ts(&w[0]) <= ts(&w[1]),
            "timestamps decreasing:\n  {}\n  {}",
            w[0],
            w[1]
        );
    }
    let stored: Vec<&Value> = events
        .iter()
        .filter(|e| !TRANSIENT.contains(&ty(e)))
        .collect();
    for w in stored.windows(2) {
        assert!(
            seq(w[0]) < seq(w[1]),
            "seqs not strictly increasing:\n  {}\n  {}",
            w[0],
            w[1]
        );
    }
}

/// The types of a list of events, for short readable assertions.
pub fn types(events: &[Value]) -> Vec<u64> {
    events.iter().map(ty).collect()
}

/// Pretty list of events for failure messages.
pub fn show(events: &[Value]) -> String {
    events.iter().map(|e| format!("  {e}\n")).collect()
}

/// A JSON array of strings as a sorted set (membership lists whose order the spec leaves open).
#[track_caller]
pub fn id_set(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected an array, got {v}"))
        .iter()
        .map(|x| {
            x.as_str()
                .unwrap_or_else(|| panic!("expected strings in {v}"))
                .to_string()
        })
        .collect()
}

/// A set of ids from string slices.
pub fn set_of(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}
