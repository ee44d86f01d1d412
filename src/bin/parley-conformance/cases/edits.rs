//! Edit (44, event 25) and delete (45, event 26), issue #20: who may, what every member's
//! connections get, and what a sync replays afterwards. parley-level: the walkthrough's servers
//! have no such methods.

use serde_json::{json, Value};

use super::{expect_event, send_message, Ctx};
use crate::registry::{ensure, ensure_eq, fail, Case, Outcome, Stop};
use crate::ws::Ws;

pub const CASES: &[Case] = &[
    Case::parley("edit.live_and_sync", "an author's edit: 25 to every member's connections (the editing one's with the RPC id); a sync replays the 20 with the new data and edited_at, then the 25", edit_live_and_sync),
    Case::parley("delete.owner_tombstone", "the owner deletes a member's message: 26 names the owner; a sync replays the 20 without data, with deleted: true, then the 26", delete_owner_tombstone),
    Case::parley("edit.forbidden", "an edit by another member gets event 90 forbidden (method 44, the id); an edit of a deleted message not_found", edit_forbidden),
];

/// The only 20 for `message_id` in a sync of everything.
fn replayed(ws: &mut Ws, message_id: &Value) -> Result<(Vec<Value>, Value), Stop> {
    let (events, _) = ws.sync_page(&json!({"method": 20, "seq": 0}))?;
    let found: Vec<&Value> = events
        .iter()
        .filter(|ev| ev["type"] == 20 && &ev["body"]["message_id"] == message_id)
        .collect();
    match found.as_slice() {
        [one] => {
            let one = (*one).clone();
            Ok((events, one))
        }
        _ => fail(format!("a sync should replay the message once: {events:?}")),
    }
}

fn edit_live_and_sync(ctx: &mut Ctx) -> Outcome {
    let author = ctx.user()?;
    let other = ctx.user()?;
    let group = ctx.group(&author, &[&other])?;
    let mut author_ws = ctx.device(&author, "author")?;
    let mut other_ws = ctx.device(&other, "other")?;
    let ack = send_message(&mut author_ws, &group, "helo")?;
    let message_id = ack["body"]["message_id"].clone();
    other_ws.expect(20)?;
    author_ws.send_json(
        &json!({"method": 44, "id": "e-1", "body": {"message_id": message_id, "data": "hello"}}),
    )?;
    let body =
        json!({"message_id": message_id, "group_id": group, "user_id": author.id, "data": "hello"});
    let reply = author_ws.expect(25)?;
    let at = expect_event(&reply, 25, &body)?;
    ensure_eq(
        "the 25's top-level `id` on the editing connection",
        reply["id"].as_str(),
        Some("e-1"),
    )?;
    expect_event(&other_ws.expect(25)?, 25, &body)?;
    let (events, message) = replayed(&mut other_ws, &message_id)?;
    ensure_eq(
        "the replayed 20's `data`",
        message["body"]["data"].as_str(),
        Some("hello"),
    )?;
    ensure_eq(
        "the replayed 20's `edited_at`",
        message["body"]["edited_at"].as_u64(),
        Some(at),
    )?;
    ensure(
        events
            .iter()
            .any(|ev| ev["type"] == 25 && ev["seq"] == reply["seq"]),
        || format!("a sync should replay the 25 at its seq: {events:?}"),
    )?;
    Ok(())
}

fn delete_owner_tombstone(ctx: &mut Ctx) -> Outcome {
    let owner = ctx.user()?;
    let member = ctx.user()?;
    let group = ctx.group(&owner, &[&member])?;
    let mut owner_ws = ctx.device(&owner, "owner")?;
    let mut member_ws = ctx.device(&member, "member")?;
    let ack = send_message(&mut member_ws, &group, "to be deleted")?;
    let message_id = ack["body"]["message_id"].clone();
    owner_ws.expect(20)?;
    owner_ws.send_json(&json!({"method": 45, "id": "d-1", "body": {"message_id": message_id}}))?;
    let body = json!({"message_id": message_id, "group_id": group, "user_id": owner.id});
    let reply = owner_ws.expect(26)?;
    expect_event(&reply, 26, &body)?;
    ensure_eq(
        "the 26's top-level `id` on the deleting connection",
        reply["id"].as_str(),
        Some("d-1"),
    )?;
    expect_event(&member_ws.expect(26)?, 26, &body)?;
    let (events, message) = replayed(&mut member_ws, &message_id)?;
    ensure(message["body"].get("data").is_none(), || {
        format!("a deleted message replays without `data`: {message}")
    })?;
    ensure_eq(
        "the replayed 20's `deleted`",
        message["body"]["deleted"].as_bool(),
        Some(true),
    )?;
    ensure(
        events
            .iter()
            .any(|ev| ev["type"] == 26 && ev["seq"] == reply["seq"]),
        || format!("a sync should replay the 26 at its seq: {events:?}"),
    )?;
    Ok(())
}

fn edit_forbidden(ctx: &mut Ctx) -> Outcome {
    let author = ctx.user()?;
    let other = ctx.user()?;
    let group = ctx.group(&author, &[&other])?;
    let mut author_ws = ctx.device(&author, "author")?;
    let mut other_ws = ctx.device(&other, "other")?;
    let ack = send_message(&mut author_ws, &group, "mine")?;
    let message_id = ack["body"]["message_id"].clone();
    other_ws.expect(20)?;
    let edit =
        |id: &str| json!({"method": 44, "id": id, "body": {"message_id": message_id, "data": "x"}});
    other_ws.send_json(&edit("e-1"))?;
    let refused = other_ws.expect(90)?;
    ensure_eq(
        "error code",
        refused["body"]["code"].as_str(),
        Some("forbidden"),
    )?;
    ensure_eq("error method", refused["body"]["method"].as_u64(), Some(44))?;
    ensure_eq("error id", refused["id"].as_str(), Some("e-1"))?;
    author_ws.expect_quiet("a refused edit reaches nobody")?;
    author_ws.send_json(&json!({"method": 45, "body": {"message_id": message_id}}))?;
    author_ws.expect(26)?;
    other_ws.expect(26)?;
    author_ws.send_json(&edit("e-2"))?;
    let gone = author_ws.expect(90)?;
    ensure_eq(
        "error code",
        gone["body"]["code"].as_str(),
        Some("not_found"),
    )?;
    ensure_eq("error id", gone["id"].as_str(), Some("e-2"))?;
    Ok(())
}
