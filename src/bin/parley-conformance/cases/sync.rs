//! Sync (method 20): it returns exactly what the user's connections received live (typing and
//! errors aside), pages with an exact cursor, and follows membership over time.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::{case, expect_event, expect_status, send_message, types, Ctx};
use crate::registry::{ensure, ensure_eq, fail, Case, Outcome, Stop};
use crate::ws::Ws;

pub const CASES: &[Case] = &[
    case("sync.exact", "a sync from 0 returns exactly the stored events the user's connections received live, oldest first", exact),
    case("sync.paging", "pages of `limit` events chain by the 29 cursor; `more` is true exactly while events remain", paging),
    case("sync.cursor", "a sync from any event's timestamp returns exactly the events after it", cursor),
    case("sync.membership", "group events reach a user's sync only while the user is a member", membership),
];

/// Every event after `cursor`, paging with `limit`; checks each page's 29 on the way.
pub(super) fn sync_all(ws: &mut Ws, cursor: u64, limit: u64) -> Result<Vec<Value>, Stop> {
    let mut cursor = cursor;
    let mut all = Vec::new();
    loop {
        let (page, done) =
            ws.sync_page(&json!({"method": 20, "timestamp": cursor, "limit": limit}))?;
        ensure(page.len() as u64 <= limit, || {
            format!("a page of limit {limit} held {} events", page.len())
        })?;
        let last = page
            .last()
            .and_then(|e| e["timestamp"].as_u64())
            .unwrap_or(cursor);
        let Some(more) = done["body"]["more"].as_bool() else {
            return fail(format!("event 29 must carry a boolean `more`: {done}"));
        };
        expect_event(&done, 29, &json!({"timestamp": last}))?;
        all.extend(page);
        if !more {
            return Ok(all);
        }
        ensure(last > cursor, || {
            format!("`more` is true but the page from {cursor} was empty")
        })?;
        cursor = last;
    }
}

/// The stored kinds of event: what sync must return.
fn stored(event: &Value) -> bool {
    !matches!(event["type"].as_u64(), Some(29 | 40 | 41 | 90))
}

/// The union of what several connections received, by timestamp, without duplicates.
fn union_of(connections: &[&[Value]]) -> Vec<Value> {
    let mut by_time = BTreeMap::new();
    for events in connections {
        for event in events.iter().filter(|e| stored(e)) {
            by_time.insert(event["timestamp"].as_u64().unwrap_or(0), event.clone());
        }
    }
    by_time.into_values().collect()
}

fn compare(what: &str, synced: &[Value], live: &[Value]) -> Outcome {
    if synced == live {
        return Ok(());
    }
    let show = |events: &[Value]| {
        events
            .iter()
            .map(|e| format!("{}@{}", e["type"], e["timestamp"]))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let first_difference = synced
        .iter()
        .zip(live)
        .find(|(s, l)| s != l)
        .map(|(s, l)| format!("; first difference: synced {s} vs live {l}"))
        .unwrap_or_default();
    fail(format!(
        "{what}: sync returned [{}] but the connections received [{}]{first_difference}",
        show(synced),
        show(live)
    ))
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
    let live = union_of(&[a_act.received(), a_watch.received()]);
    let mut kinds = types(&live);
    kinds.sort_unstable();
    ensure_eq(
        "kinds of stored events a received live",
        kinds,
        vec![20, 20, 21, 22, 23, 70, 72, 73],
    )?;
    let mut reader = ctx.device(&a, "a-sync")?;
    let synced = sync_all(&mut reader, 0, 1000)?;
    compare("a's sync from 0", &synced, &live)
}

fn paging(ctx: &mut Ctx) -> Outcome {
    let user = ctx.user()?;
    let group = ctx.group(&user, &[])?;
    let mut ws = ctx.device(&user, "pager")?;
    for i in 0..11 {
        send_message(&mut ws, &group, &format!("page {i}"))?;
    }
    // 1 group event + 11 messages + 11 acks.
    let everything = sync_all(&mut ws, 0, 1000)?;
    ensure_eq("events stored for the user", everything.len(), 23)?;
    let paged = sync_all(&mut ws, 0, 5)?;
    compare("pages of 5 chained", &paged, &everything)?;

    let (page, done) =
        ws.sync_page(&json!({"method": 20, "body": {"timestamp": 0, "limit": 5}}))?;
    ensure_eq(
        "the first page (limit in body)",
        &page[..],
        &everything[..5],
    )?;
    expect_event(
        &done,
        29,
        &json!({"timestamp": everything[4]["timestamp"], "more": true}),
    )?;
    let last = everything[22]["timestamp"].as_u64().unwrap_or(0);
    let (page, done) = ws.sync_page(&json!({"method": 20, "timestamp": last, "limit": 5}))?;
    ensure_eq("events after the last one", page.len(), 0)?;
    expect_event(&done, 29, &json!({"timestamp": last, "more": false}))?;
    // A page that ends exactly at the last event says there is no more.
    let (page, done) =
        ws.sync_page(&json!({"method": 20, "timestamp": everything[17]["timestamp"], "limit": 5}))?;
    ensure_eq("the exact last page", &page[..], &everything[18..])?;
    expect_event(&done, 29, &json!({"timestamp": last, "more": false}))?;
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
    let everything = sync_all(&mut a_ws, 0, 1000)?;
    for i in 0..everything.len() {
        let from = everything[i]["timestamp"].as_u64().unwrap_or(0);
        let after = sync_all(&mut a_ws, from, 1000)?;
        compare(
            &format!("sync from event {i}"),
            &after,
            &everything[i + 1..],
        )?;
        // A cursor between two events skips nothing: one below the next event's timestamp.
        if let Some(next) = everything.get(i + 1).and_then(|e| e["timestamp"].as_u64()) {
            let between = sync_all(&mut a_ws, next - 1, 1000)?;
            compare(
                &format!("sync from just before event {}", i + 1),
                &between,
                &everything[i + 1..],
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
    let live = union_of(&[member_ws.received()]);
    let mut reader = ctx.device(&member, "member-sync")?;
    let synced = sync_all(&mut reader, 0, 1000)?;
    compare("the member's sync from 0", &synced, &live)?;
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
