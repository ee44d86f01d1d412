//! `seq`, the exact cursor of round 2's "Time and cursors": every stored event carries one, the
//! same for all its recipients, increasing per connection; transient events carry none; sync by
//! seq pages exactly; event 29 carries both cursors.

use std::collections::BTreeMap;

use parley_client::json::FAR_FUTURE;
use serde_json::{json, Value};

use super::sync::{compare, compare_with_live, sync_all, sync_rpc, By};
use super::{expect_event, interleaved_bursts, send_message, stored, Bursts, Ctx, BURST};
use crate::registry::{ensure, ensure_eq, fail, Case, Outcome, Stop};
use crate::ws::Ws;

pub const CASES: &[Case] = &[
    Case::core("seq.stored", "every stored event (20, 21, 22, 23, 70, 72, 73) carries a top-level integer seq, the same live and in a sync", stored_events),
    Case::core("seq.fanout", "one event has one seq for all its recipients and devices; the sender's 21 has a seq of its own", fanout),
    Case::core("seq.order", "per connection, stored events arrive in strictly increasing seq; distinct events never share a seq; timestamps never decrease in seq order", order),
    Case::core("seq.transient", "typing (40/41), sync complete (29) and errors (90) carry no seq", transient),
    Case::core("seq.sync", "a sync by seq (top level or in body) returns exactly the events after it, in pages of at most `limit` that chain without skip or repeat; with both cursors, seq wins", sync),
    Case::core("seq.sync_complete", "event 29 is {timestamp, seq, more}: the last event's, or for an empty page the request's cursor and the caller's latest event before it (0 when none)", sync_complete),
];

/// The largest seq the notes allow (exclusive): 2^53, what a JSON number holds exactly.
const SEQ_LIMIT: u64 = 1 << 53;

/// The top-level `seq` of a stored event: an integer, 1 <= seq < 2^53.
fn seq_of(event: &Value) -> Result<u64, Stop> {
    match event["seq"].as_u64() {
        Some(seq) if (1..SEQ_LIMIT).contains(&seq) => Ok(seq),
        _ => fail(format!(
            "a stored event must carry a top-level integer `seq` (1 <= seq < 2^53): {event}"
        )),
    }
}

/// Every stored event received so far on `ws`, after a barrier.
fn stored_received(ws: &mut Ws) -> Result<Vec<Value>, Stop> {
    ws.barrier()?;
    Ok(ws
        .received()
        .iter()
        .filter(|e| stored(e))
        .cloned()
        .collect())
}

/// The seq shared by one event's copies on several connections: the same event (type, body,
/// timestamp), the same seq.
fn one_seq(what: &str, copies: &[Value]) -> Result<u64, Stop> {
    let seq = seq_of(&copies[0])?;
    for copy in &copies[1..] {
        ensure_eq(
            &format!("{what}: seq on every recipient"),
            seq_of(copy)?,
            seq,
        )?;
        ensure(
            copy["body"] == copies[0]["body"] && copy["timestamp"] == copies[0]["timestamp"],
            || format!("{what}: the copies differ: {} and {copy}", copies[0]),
        )?;
    }
    Ok(seq)
}

fn stored_events(ctx: &mut Ctx) -> Outcome {
    let a = ctx.user()?;
    let b = ctx.user()?;
    let c = ctx.user()?;
    let mut a1 = ctx.device(&a, "a-act")?;
    let mut a2 = ctx.device(&a, "a-watch")?;
    let mut b1 = ctx.device(&b, "b")?;
    let mut c1 = ctx.device(&c, "c")?;
    let group = ctx.group(&a, &[&b])?;
    a1.expect(70)?;
    let ack = send_message(&mut a1, &group, "with a seq")?;
    b1.wait_for(20)?;
    for method in [41, 42] {
        b1.send_json(
            &json!({"method": method, "body": {"message_id": ack["body"]["message_id"]}}),
        )?;
    }
    a1.wait_for(23)?;
    ensure_eq(
        "c joins (status)",
        ctx.membership("join", &c, &group, None)?.status,
        200,
    )?;
    ensure_eq(
        "b leaves (status)",
        ctx.membership("left", &b, &group, None)?.status,
        200,
    )?;
    let mut kinds = Vec::new();
    for ws in [&mut a1, &mut a2, &mut b1, &mut c1] {
        for event in stored_received(ws)? {
            seq_of(&event)?;
            kinds.push(event["type"].as_u64().unwrap_or(0));
        }
    }
    kinds.sort_unstable();
    kinds.dedup();
    ensure_eq(
        "kinds of stored events seen",
        kinds,
        vec![20, 21, 22, 23, 70, 72, 73],
    )?;
    // A sync replays each with the seq it had live (the whole event is the same).
    let mut reader = ctx.device(&a, "a-sync")?;
    let synced = sync_all(&mut reader, By::Timestamp, 0, 1000)?;
    compare_with_live("a's sync from 0", &synced, &[a1.received(), a2.received()])
}

fn fanout(ctx: &mut Ctx) -> Outcome {
    let a = ctx.user()?;
    let b = ctx.user()?;
    let c = ctx.user()?;
    let mut a1 = ctx.device(&a, "a-1")?;
    let mut a2 = ctx.device(&a, "a-2")?;
    let mut b1 = ctx.device(&b, "b-1")?;
    let mut b2 = ctx.device(&b, "b-2")?;
    let mut c1 = ctx.device(&c, "c")?;
    let group = ctx.group(&a, &[&b, &c])?;
    let mut everyone = [&mut a1, &mut a2, &mut b1, &mut b2, &mut c1];
    let created: Vec<Value> = everyone
        .iter_mut()
        .map(|ws| ws.expect(70))
        .collect::<Result<_, _>>()?;
    one_seq("the group's event 70", &created)?;

    let ack = send_message(&mut a1, &group, "one seq")?;
    let mut others = [&mut a2, &mut b1, &mut b2, &mut c1];
    let messages: Vec<Value> = others
        .iter_mut()
        .map(|ws| ws.expect(20))
        .collect::<Result<_, _>>()?;
    let message_seq = one_seq("the message 20", &messages)?;
    let ack_seq = seq_of(&ack)?;
    ensure(ack_seq != message_seq, || {
        format!("the sender's 21 must have its own seq, not the message's {message_seq}: {ack}")
    })?;

    b1.send_json(&json!({"method": 42, "body": {"message_id": ack["body"]["message_id"]}}))?;
    let mut told = [&mut a1, &mut a2, &mut b2];
    let receipts: Vec<Value> = told
        .iter_mut()
        .map(|ws| ws.expect(23))
        .collect::<Result<_, _>>()?;
    one_seq("the read receipt 23", &receipts)?;

    ensure_eq(
        "c leaves (status)",
        ctx.membership("left", &c, &group, None)?.status,
        200,
    )?;
    let mut everyone = [&mut a1, &mut a2, &mut b1, &mut b2, &mut c1];
    let left: Vec<Value> = everyone
        .iter_mut()
        .map(|ws| ws.expect(73))
        .collect::<Result<_, _>>()?;
    one_seq("the left event 73", &left)?;
    Ok(())
}

fn order(ctx: &mut Ctx) -> Outcome {
    let Bursts {
        a: mut a_ws,
        b: mut b_ws,
        observer: mut observer_ws,
    } = interleaved_bursts(ctx)?;
    for ws in [&mut a_ws, &mut b_ws] {
        for _ in 0..BURST {
            ws.wait_for(21)?;
        }
    }
    for _ in 0..2 * BURST {
        observer_ws.wait_for(20)?;
    }
    // Every distinct event by seq: a seq names one event (the same type, body and timestamp
    // wherever it arrives).
    let mut by_seq: BTreeMap<u64, Value> = BTreeMap::new();
    for ws in [&mut a_ws, &mut b_ws, &mut observer_ws] {
        let events = stored_received(ws)?;
        for pair in events.windows(2) {
            ensure(seq_of(&pair[0])? < seq_of(&pair[1])?, || {
                format!(
                    "[{}] seqs not strictly increasing: {} then {}",
                    ws.label, pair[0], pair[1]
                )
            })?;
        }
        for event in events {
            let key = json!([event["type"], event["timestamp"], event["body"]]);
            if let Some(other) = by_seq.insert(seq_of(&event)?, key.clone()) {
                ensure(other == key, || {
                    format!("two events share seq {}: {other} and {key}", event["seq"])
                })?;
            }
        }
    }
    // 2 x BURST messages and 2 x BURST acks (a's and b's group event 70 was before the bursts).
    let bursts = by_seq.values().filter(|e| e[0] == 20 || e[0] == 21).count();
    ensure_eq(
        "distinct seqs of the bursts' messages and acks",
        bursts,
        4 * BURST,
    )?;
    let in_order: Vec<&Value> = by_seq.values().collect();
    for pair in in_order.windows(2) {
        ensure(pair[0][1].as_u64() <= pair[1][1].as_u64(), || {
            format!(
                "a timestamp went back in seq order: {} then {}",
                pair[0], pair[1]
            )
        })?;
    }
    Ok(())
}

fn transient(ctx: &mut Ctx) -> Outcome {
    let a = ctx.user()?;
    let b = ctx.user()?;
    let group = ctx.group(&a, &[&b])?;
    let mut a_ws = ctx.device(&a, "a")?;
    let mut b_ws = ctx.device(&b, "b")?;
    let mut seen = Vec::new();
    for (method, kind) in [(60, 40), (61, 41)] {
        a_ws.send_json(&json!({"method": method, "body": {"group_id": group}}))?;
        seen.push(b_ws.expect(kind)?);
    }
    let (_, done) = a_ws.sync_page(&json!({"method": 20, "timestamp": 0}))?;
    seen.push(done);
    a_ws.send_json(&json!({"method": 99, "id": "no-seq"}))?;
    seen.push(a_ws.expect(90)?);
    for event in seen {
        ensure(event.get("seq").is_none(), || {
            format!("a transient event must carry no `seq`: {event}")
        })?;
    }
    Ok(())
}

fn sync(ctx: &mut Ctx) -> Outcome {
    let a = ctx.user()?;
    let b = ctx.user()?;
    let group = ctx.group(&a, &[&b])?;
    let mut a_ws = ctx.device(&a, "a")?;
    let mut b_ws = ctx.device(&b, "b")?;
    for i in 0..5 {
        let ack = send_message(&mut a_ws, &group, &format!("a{i}"))?;
        b_ws.expect(20)?;
        b_ws.send_json(&json!({"method": 41, "body": {"message_id": ack["body"]["message_id"]}}))?;
        a_ws.expect(22)?;
    }
    for i in 0..2 {
        send_message(&mut b_ws, &group, &format!("b{i}"))?;
        a_ws.expect(20)?;
    }
    let everything = sync_all(&mut a_ws, By::Seq, 0, 1000)?;
    // 70, 5 x (20, 21, 22), 2 x 20.
    ensure_eq("events stored for a", everything.len(), 18)?;
    compare(
        "a sync by seq from 0, against one by timestamp",
        &everything,
        &sync_all(&mut a_ws, By::Timestamp, 0, 1000)?,
    )?;
    for limit in [1, 2, 3, 7] {
        let paged = sync_all(&mut a_ws, By::Seq, 0, limit)?;
        compare(
            &format!("pages of {limit} by seq, chained"),
            &paged,
            &everything,
        )?;
    }
    for (i, event) in everything.iter().enumerate() {
        let from = seq_of(event)?;
        // From the event's own seq, and from just before it: neither skips nor repeats.
        for cursor in [from, from - 1] {
            let synced = sync_all(&mut a_ws, By::Seq, cursor, 1000)?;
            let want: Vec<Value> = everything
                .iter()
                .filter(|e| e["seq"].as_u64() > Some(cursor))
                .cloned()
                .collect();
            compare(
                &format!("sync from seq {cursor} (event {i} has seq {from})"),
                &synced,
                &want,
            )?;
        }
    }
    let (page, done) = a_ws.sync_page(&json!({"method": 20, "body": {"seq": 0, "limit": 2}}))?;
    compare(
        "the first page, seq and limit in body",
        &page,
        &everything[..2],
    )?;
    expect_event(
        &done,
        29,
        &json!({"seq": everything[1]["seq"], "more": true}),
    )?;
    // With both cursors, seq wins, whichever the timestamp would pick.
    let third = seq_of(&everything[3])?;
    let (page, _) =
        a_ws.sync_page(&json!({"method": 20, "seq": third, "timestamp": 0, "limit": 1000}))?;
    compare("a sync with seq and timestamp 0", &page, &everything[4..])?;
    let (page, _) =
        a_ws.sync_page(&json!({"method": 20, "seq": 0, "timestamp": FAR_FUTURE, "limit": 1000}))?;
    compare(
        "a sync with seq 0 and a timestamp after everything",
        &page,
        &everything,
    )
}

fn sync_complete(ctx: &mut Ctx) -> Outcome {
    let user = ctx.user()?;
    let mut ws = ctx.device(&user, "syncer")?;
    // A new user has no event at or before any cursor: the other field is 0.
    for (rpc, body) in [
        (
            json!({"method": 20, "timestamp": 5}),
            json!({"timestamp": 5, "seq": 0, "more": false}),
        ),
        (
            json!({"method": 20, "seq": 7}),
            json!({"seq": 7, "timestamp": 0, "more": false}),
        ),
    ] {
        let (page, done) = ws.sync_page(&rpc)?;
        ensure_eq("events of a new user", page.len(), 0)?;
        expect_event(&done, 29, &body)?;
    }
    let group = ctx.group(&user, &[])?;
    ws.expect(70)?;
    for i in 0..2 {
        send_message(&mut ws, &group, &format!("m{i}"))?;
    }
    let everything = sync_all(&mut ws, By::Seq, 0, 1000)?;
    ensure_eq("events stored for the user", everything.len(), 5)?;
    let last = &everything[4];
    let last_seq = seq_of(last)?;
    let pages = [
        // A page that is not the last: its last event's cursors, and more.
        (
            sync_rpc(By::Seq, 0, 2),
            json!({"timestamp": everything[1]["timestamp"], "seq": everything[1]["seq"], "more": true}),
        ),
        (
            sync_rpc(By::Timestamp, 0, 1000),
            json!({"timestamp": last["timestamp"], "seq": last_seq, "more": false}),
        ),
        // Empty pages: the request's cursor, and the latest event's other field.
        (
            sync_rpc(By::Seq, last_seq, 1000),
            json!({"timestamp": last["timestamp"], "seq": last_seq, "more": false}),
        ),
        (
            sync_rpc(By::Seq, last_seq + 1000, 1000),
            json!({"timestamp": last["timestamp"], "seq": last_seq + 1000, "more": false}),
        ),
        (
            sync_rpc(By::Timestamp, FAR_FUTURE, 1000),
            json!({"timestamp": FAR_FUTURE, "seq": last_seq, "more": false}),
        ),
    ];
    for (rpc, body) in pages {
        let (_, done) = ws.sync_page(&rpc)?;
        expect_event(&done, 29, &body).map_err(|stop| match stop {
            Stop::Fail(why) => Stop::Fail(format!("after {rpc}: {why}")),
            skip => skip,
        })?;
    }
    Ok(())
}
