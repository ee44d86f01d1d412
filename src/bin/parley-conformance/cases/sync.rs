//! Sync (method 20) by timestamp: it returns exactly what the user's connections received live
//! (typing and errors aside), pages with an exact cursor (a page never ends inside a millisecond,
//! since timestamps may repeat), and follows membership over time. Sync by `seq` is in `seq.rs`.

use std::collections::HashSet;

use serde_json::{json, Value};

use super::{expect_event, expect_status, send_message, stored, types, Ctx};
use crate::registry::{ensure, ensure_eq, fail, Case, Outcome, Stop};
use crate::ws::Ws;

pub const CASES: &[Case] = &[
    Case::core("sync.exact", "a sync from 0 returns exactly the stored events the user's connections received live, oldest first", exact),
    Case::core("sync.paging", "pages of `limit` events chain by the 29 cursor; `more` is true exactly while events remain", paging),
    Case::core("sync.cursor", "a sync from any timestamp returns exactly the events with a later timestamp", cursor),
    Case::core("sync.membership", "group events reach a user's sync only while the user is a member", membership),
    Case::core("sync.timestamp_pages", "after a burst, pages by timestamp of every size never end inside a millisecond and chain exactly", timestamp_pages),
];

/// The cursor a sync pages by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    Timestamp,
    Seq,
}

impl By {
    pub fn field(self) -> &'static str {
        match self {
            By::Timestamp => "timestamp",
            By::Seq => "seq",
        }
    }
}

/// A sync RPC from `cursor` by `by`, at most `limit` events.
pub(super) fn sync_rpc(by: By, cursor: u64, limit: u64) -> Value {
    let mut rpc = json!({"method": 20, "limit": limit});
    rpc[by.field()] = json!(cursor);
    rpc
}

/// Every event after `cursor`, paging with `limit` by `by`; checks on the way that events come
/// oldest first, that pages keep to the limit, and that each 29 carries the last event's cursor
/// (both fields when paging by seq).
pub(super) fn sync_all(ws: &mut Ws, by: By, cursor: u64, limit: u64) -> Result<Vec<Value>, Stop> {
    let mut cursor = cursor;
    let mut all: Vec<Value> = Vec::new();
    loop {
        let (page, done) = ws.sync_page(&sync_rpc(by, cursor, limit))?;
        check_page_size(&page, by, limit)?;
        let Some(more) = done["body"]["more"].as_bool() else {
            return fail(format!("event 29 must carry a boolean `more`: {done}"));
        };
        let next = match page.last() {
            Some(last) => {
                let Some(next) = last[by.field()].as_u64() else {
                    return fail(format!(
                        "a synced event without an integer `{}`: {last}",
                        by.field()
                    ));
                };
                let mut cursors = json!({"timestamp": last["timestamp"]});
                if by == By::Seq {
                    cursors["seq"] = last["seq"].clone();
                }
                expect_event(&done, 29, &cursors)?;
                next
            }
            None => {
                let mut cursors = json!({});
                cursors[by.field()] = json!(cursor);
                expect_event(&done, 29, &cursors)?;
                cursor
            }
        };
        all.extend(page);
        if !more {
            check_oldest_first(&all, by)?;
            return Ok(all);
        }
        ensure(next > cursor, || {
            format!(
                "`more` is true but the page from {} {cursor} was empty",
                by.field()
            )
        })?;
        cursor = next;
    }
}

/// A page by seq holds at most `limit` events; a page by timestamp goes past it only to finish
/// the millisecond of its `limit`-th event.
fn check_page_size(page: &[Value], by: By, limit: u64) -> Outcome {
    let limit = limit as usize;
    if page.len() <= limit {
        return Ok(());
    }
    let finishes_a_millisecond = by == By::Timestamp
        && page[limit - 1..]
            .iter()
            .all(|e| e["timestamp"] == page[limit - 1]["timestamp"]);
    ensure(finishes_a_millisecond, || {
        format!(
            "a page of limit {limit} by {} held {} events: [{}]",
            by.field(),
            page.len(),
            show(page)
        )
    })
}

/// Sync replays oldest first: seqs increase, timestamps never decrease.
fn check_oldest_first(events: &[Value], by: By) -> Outcome {
    for pair in events.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        ensure(a["timestamp"].as_u64() <= b["timestamp"].as_u64(), || {
            format!("a sync went back in time: {a} then {b}")
        })?;
        if by == By::Seq {
            ensure(a["seq"].as_u64() < b["seq"].as_u64(), || {
                format!("a sync by seq is not in increasing seq order: {a} then {b}")
            })?;
        }
    }
    Ok(())
}

/// The events of `everything` with a timestamp after `cursor`: what a sync from it returns.
fn after(everything: &[Value], cursor: u64) -> Vec<Value> {
    everything
        .iter()
        .filter(|e| e["timestamp"].as_u64().is_some_and(|t| t > cursor))
        .cloned()
        .collect()
}

/// One page by timestamp against what it must hold: a non-empty prefix of `rest` (the events
/// after `cursor`) that ends at a millisecond's end, past `limit` only to finish a millisecond,
/// closed by a 29 with the last event's timestamp (the cursor when empty) and `more` exactly
/// when events remain.
fn check_timestamp_page(
    page: &[Value],
    done: &Value,
    rest: &[Value],
    cursor: u64,
    limit: u64,
) -> Outcome {
    let what = format!("the page from timestamp {cursor} with limit {limit}");
    let k = page.len();
    ensure(k <= rest.len() && page == &rest[..k], || {
        format!(
            "{what} is [{}], not a prefix of the events after it [{}]",
            show(page),
            show(rest)
        )
    })?;
    ensure(k > 0 || rest.is_empty(), || {
        format!(
            "{what} is empty, but events after it exist: [{}]",
            show(rest)
        )
    })?;
    if k > 0 && k < rest.len() {
        ensure(rest[k]["timestamp"] != rest[k - 1]["timestamp"], || {
            format!(
                "{what} ends inside millisecond {}: {} is left for the next page, which starts after it",
                rest[k - 1]["timestamp"],
                rest[k]
            )
        })?;
    }
    check_page_size(page, By::Timestamp, limit)?;
    let last = page
        .last()
        .map_or(json!(cursor), |e| e["timestamp"].clone());
    expect_event(
        done,
        29,
        &json!({"timestamp": last, "more": k < rest.len()}),
    )?;
    Ok(())
}

/// Pages through `everything` by timestamp with `limit`, checking every page.
fn page_through(ws: &mut Ws, everything: &[Value], limit: u64) -> Outcome {
    let mut cursor = 0;
    loop {
        let rest = after(everything, cursor);
        let (page, done) = ws.sync_page(&sync_rpc(By::Timestamp, cursor, limit))?;
        check_timestamp_page(&page, &done, &rest, cursor, limit)?;
        match page.last() {
            Some(last) if page.len() < rest.len() => {
                cursor = last["timestamp"].as_u64().unwrap_or(0)
            }
            _ => return Ok(()),
        }
    }
}

fn show(events: &[Value]) -> String {
    events
        .iter()
        .map(|e| match e["seq"].as_u64() {
            Some(seq) => format!("{}@{}#{seq}", e["type"], e["timestamp"]),
            None => format!("{}@{}", e["type"], e["timestamp"]),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

pub(super) fn compare(what: &str, synced: &[Value], want: &[Value]) -> Outcome {
    if synced == want {
        return Ok(());
    }
    let first_difference = synced
        .iter()
        .zip(want)
        .find(|(s, w)| s != w)
        .map(|(s, w)| format!("; first difference: synced {s} vs expected {w}"))
        .unwrap_or_default();
    fail(format!(
        "{what}: sync returned [{}] but expected [{}]{first_difference}",
        show(synced),
        show(want)
    ))
}

/// The stored events several connections received, each once (an event that reached two
/// connections is the same JSON on both).
pub(super) fn union_of(connections: &[&[Value]]) -> Vec<Value> {
    let mut seen = HashSet::new();
    connections
        .iter()
        .flat_map(|events| events.iter())
        .filter(|e| stored(e) && seen.insert(e.to_string()))
        .cloned()
        .collect()
}

/// Checks that `synced` holds exactly the stored events the connections received live, each once,
/// and in the order each connection received them (timestamps may repeat, so the order of events
/// of different connections is left to the sync).
pub(super) fn compare_with_live(what: &str, synced: &[Value], connections: &[&[Value]]) -> Outcome {
    let live = union_of(connections);
    let synced_set: HashSet<String> = synced.iter().map(Value::to_string).collect();
    let live_set: HashSet<String> = live.iter().map(Value::to_string).collect();
    ensure(synced_set.len() == synced.len(), || {
        format!("{what}: sync returned an event twice: [{}]", show(synced))
    })?;
    if let Some(missing) = live.iter().find(|e| !synced_set.contains(&e.to_string())) {
        return fail(format!(
            "{what}: sync lacks {missing}, received live; sync returned [{}]",
            show(synced)
        ));
    }
    if let Some(extra) = synced.iter().find(|e| !live_set.contains(&e.to_string())) {
        return fail(format!(
            "{what}: sync returned {extra}, never received live"
        ));
    }
    for events in connections {
        let theirs: HashSet<String> = events
            .iter()
            .filter(|e| stored(e))
            .map(Value::to_string)
            .collect();
        let in_sync: Vec<Value> = synced
            .iter()
            .filter(|e| theirs.contains(&e.to_string()))
            .cloned()
            .collect();
        let live_order: Vec<Value> = events.iter().filter(|e| stored(e)).cloned().collect();
        compare(
            &format!("{what} (in the order one connection received them)"),
            &in_sync,
            &live_order,
        )?;
    }
    Ok(())
}

fn exact(ctx: &mut Ctx) -> Outcome {
    let a = ctx.user()?;
    let b = ctx.user()?;
    let c = ctx.user()?;
    // Each user has a connection that acts and one that only watches: together they receive
    // everything the user is sent live.
    let mut a_act = ctx.device(&a, "a-act")?;
    let mut a_watch = ctx.device(&a, "a-watch")?;
    let mut b_act = ctx.device(&b, "b-act")?;
    let group = ctx.group(&a, &[&b])?;
    b_act.expect(70)?;

    let from_b = send_message(&mut b_act, &group, "from b")?;
    a_act.send_json(
        &json!({"method": 40, "id": "sx-1", "body": {"group_id": group, "data": "from a"}}),
    )?;
    let from_a = a_act.wait_for(21)?;
    b_act
        .send_json(&json!({"method": 41, "body": {"message_id": from_a["body"]["message_id"]}}))?;
    a_act
        .send_json(&json!({"method": 42, "body": {"message_id": from_b["body"]["message_id"]}}))?;
    b_act.send_json(&json!({"method": 60, "body": {"group_id": group}}))?;
    a_act.send_json(&json!({"method": 99}))?;
    b_act.barrier()?;
    let joined = ctx.membership("join", &c, &group, None)?;
    expect_status(&joined, 200, "a third user joins")?;
    let left = ctx.membership("left", &b, &group, None)?;
    expect_status(&left, 200, "b leaves")?;

    a_act.barrier()?;
    a_watch.barrier()?;
    let mut kinds = types(&union_of(&[a_act.received(), a_watch.received()]));
    kinds.sort_unstable();
    ensure_eq(
        "kinds of stored events a received live",
        kinds,
        vec![20, 20, 21, 22, 23, 70, 72, 73],
    )?;
    let mut reader = ctx.device(&a, "a-sync")?;
    let synced = sync_all(&mut reader, By::Timestamp, 0, 1000)?;
    compare_with_live(
        "a's sync from 0",
        &synced,
        &[a_act.received(), a_watch.received()],
    )
}

fn paging(ctx: &mut Ctx) -> Outcome {
    let user = ctx.user()?;
    let group = ctx.group(&user, &[])?;
    let mut ws = ctx.device(&user, "pager")?;
    for i in 0..11 {
        send_message(&mut ws, &group, &format!("page {i}"))?;
    }
    // 1 group event + 11 messages + 11 acks.
    let everything = sync_all(&mut ws, By::Timestamp, 0, 1000)?;
    ensure_eq("events stored for the user", everything.len(), 23)?;
    page_through(&mut ws, &everything, 5)?;

    let (page, done) =
        ws.sync_page(&json!({"method": 20, "body": {"timestamp": 0, "limit": 5}}))?;
    check_timestamp_page(&page, &done, &everything, 0, 5)?;
    let last = everything[22]["timestamp"].as_u64().unwrap_or(0);
    let (page, done) = ws.sync_page(&json!({"method": 20, "timestamp": last, "limit": 5}))?;
    check_timestamp_page(&page, &done, &[], last, 5)?;
    // A page that ends exactly at the last event says there is no more.
    let from = everything[17]["timestamp"].as_u64().unwrap_or(0);
    let rest = after(&everything, from);
    let (page, done) = ws.sync_page(&json!({"method": 20, "timestamp": from, "limit": 5}))?;
    check_timestamp_page(&page, &done, &rest, from, 5)?;
    Ok(())
}

fn cursor(ctx: &mut Ctx) -> Outcome {
    let a = ctx.user()?;
    let b = ctx.user()?;
    let group = ctx.group(&a, &[&b])?;
    let mut a_ws = ctx.device(&a, "a")?;
    let mut b_ws = ctx.device(&b, "b")?;
    for i in 0..4 {
        let ack = send_message(&mut a_ws, &group, &format!("a{i}"))?;
        b_ws.expect(20)?;
        b_ws.send_json(&json!({"method": 41, "body": {"message_id": ack["body"]["message_id"]}}))?;
        a_ws.expect(22)?;
    }
    let everything = sync_all(&mut a_ws, By::Timestamp, 0, 1000)?;
    for (i, event) in everything.iter().enumerate() {
        let from = event["timestamp"].as_u64().unwrap_or(0);
        // From the event's own timestamp, and from just before it: neither skips anything.
        for cursor in [from, from.saturating_sub(1)] {
            let synced = sync_all(&mut a_ws, By::Timestamp, cursor, 1000)?;
            compare(
                &format!("sync from timestamp {cursor} (event {i} is at {from})"),
                &synced,
                &after(&everything, cursor),
            )?;
        }
    }
    Ok(())
}

fn membership(ctx: &mut Ctx) -> Outcome {
    let owner = ctx.user()?;
    let member = ctx.user()?;
    let mut owner_ws = ctx.device(&owner, "owner")?;
    let mut member_ws = ctx.device(&member, "member")?;
    let group = ctx.group(&owner, &[&member])?;
    owner_ws.expect(70)?;
    member_ws.expect(70)?;
    let before = send_message(&mut owner_ws, &group, "before leaving")?;
    member_ws.expect(20)?;
    expect_status(
        &ctx.membership("left", &member, &group, None)?,
        200,
        "leave",
    )?;
    owner_ws.expect(73)?;
    let gone = send_message(&mut owner_ws, &group, "while away")?;
    expect_status(
        &ctx.membership("join", &member, &group, None)?,
        200,
        "join again",
    )?;
    owner_ws.expect(72)?;
    let back = send_message(&mut owner_ws, &group, "after coming back")?;

    member_ws.barrier()?;
    let mut reader = ctx.device(&member, "member-sync")?;
    let synced = sync_all(&mut reader, By::Timestamp, 0, 1000)?;
    compare_with_live("the member's sync from 0", &synced, &[member_ws.received()])?;
    let ids: Vec<&Value> = synced
        .iter()
        .filter(|e| e["type"] == 20)
        .map(|e| &e["body"]["message_id"])
        .collect();
    ensure_eq(
        "messages in the member's sync",
        ids,
        vec![&before["body"]["message_id"], &back["body"]["message_id"]],
    )?;
    ensure(
        !synced
            .iter()
            .any(|e| e["body"]["message_id"] == gone["body"]["message_id"]),
        || "a message sent while the user was away reached their sync".to_string(),
    )
}

const BURST: usize = 15;

fn timestamp_pages(ctx: &mut Ctx) -> Outcome {
    let a = ctx.user()?;
    let b = ctx.user()?;
    let group = ctx.group(&a, &[&b])?;
    let mut a_ws = ctx.device(&a, "a")?;
    let mut b_ws = ctx.device(&b, "b")?;
    // Both bursts in flight together: the events they make crowd into few milliseconds.
    for i in 0..BURST {
        for ws in [&mut a_ws, &mut b_ws] {
            ws.send_json(
                &json!({"method": 40, "body": {"group_id": group, "data": format!("burst {i}")}}),
            )?;
        }
    }
    for ws in [&mut a_ws, &mut b_ws] {
        for _ in 0..BURST {
            ws.wait_for(21)?;
        }
    }
    // The last of b's messages, live on a's connection, come before a's sync.
    a_ws.barrier()?;
    let everything = sync_all(&mut a_ws, By::Timestamp, 0, 1000)?;
    // 1 group event, a's messages and acks, b's messages.
    ensure_eq("events stored for a", everything.len(), 1 + 3 * BURST)?;
    for limit in [1, 2, 3, 4, 7] {
        page_through(&mut a_ws, &everything, limit)?;
    }
    Ok(())
}
