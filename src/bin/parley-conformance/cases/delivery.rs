//! Delivery guarantees: idempotent sends with a client id, fan-out to every device of every
//! member, and parley's own: each sender's messages in send order, shared tokens, keepalive pings.

use std::time::Duration;

use serde_json::{json, Value};
use tungstenite::Message;

use super::{expect_event, interleaved_bursts, send_message, types, Bursts, Ctx, BURST};
use crate::registry::{ensure, ensure_eq, fail, Case, Needs, Outcome};
use crate::ws::Incoming;

pub const CASES: &[Case] = &[
    Case::core("ws.send.idempotent", "a send repeated with the same client id answers the original ack and stores nothing new", idempotent),
    Case::core("ws.send.idempotent_reconnect", "the retry is recognised on a new connection and on another device of the same user", idempotent_reconnect),
    Case::core("ws.send.idempotent_per_user", "the same client id from two users makes two messages", idempotent_per_user),
    Case::core("ws.send.idempotent_after_leaving", "a retry after the sender left the group gets the original ack; a new send gets not_member", idempotent_after_leaving),
    Case::core("multidevice.fanout", "a message reaches every connection of every member, including the sender's other devices, but not the sending one", multidevice_fanout),
    Case::core("multidevice.receipts", "a receipt reaches every device of the author and the reader's other devices", multidevice_receipts),
    Case::core("multidevice.typing", "typing reaches every device of the other members, not the typing connection", multidevice_typing),
    Case::parley("order.send", "two interleaved bursts: each sender's messages reach a third member in send order, and every connection's timestamps never decrease", send_order),
    Case::parley("multidevice.typing_others_only", "typing does not reach the typer's other devices", multidevice_typing_others_only),
    Case::parley("multidevice.same_token", "several connections may share one messaging token, each a live connection", multidevice_same_token),
    Case::parley("keepalive.ping", "the server pings an idle WebSocket within ~10 s and keeps it open when the client pongs", keepalive_ping).needing(Needs::Time),
];

fn send_order(ctx: &mut Ctx) -> Outcome {
    let Bursts {
        a: mut a_ws,
        b: mut b_ws,
        observer: mut observer_ws,
    } = interleaved_bursts(ctx)?;
    for (ws, who) in [(&mut a_ws, "a"), (&mut b_ws, "b")] {
        let mut received = Vec::new();
        while received.iter().filter(|e: &&Value| e["type"] == 21).count() < BURST {
            received.push(ws.next_event()?);
        }
        check_increasing(&received, who)?;
        let acks: Vec<&Value> = received.iter().filter(|e| e["type"] == 21).collect();
        ensure_eq(&format!("acks on {who}"), acks.len(), BURST)?;
    }
    let mut messages = Vec::new();
    for _ in 0..2 * BURST {
        messages.push(observer_ws.expect(20)?);
    }
    check_increasing(&messages, "observer")?;
    for who in ["a", "b"] {
        let order: Vec<String> = messages
            .iter()
            .filter_map(|e| e["body"]["data"].as_str())
            .filter(|d| d.starts_with(&format!("{who}-")))
            .map(str::to_string)
            .collect();
        let sent: Vec<String> = (0..BURST).map(|i| format!("{who}-{i}")).collect();
        ensure_eq(
            &format!("order of {who}'s messages at the observer"),
            order,
            sent,
        )?;
    }
    Ok(())
}

fn check_increasing(events: &[Value], who: &str) -> Outcome {
    for pair in events.windows(2) {
        ensure(
            pair[0]["timestamp"].as_u64() <= pair[1]["timestamp"].as_u64(),
            || {
                format!(
                    "[{who}] timestamps decreasing: {} then {}",
                    pair[0], pair[1]
                )
            },
        )?;
    }
    Ok(())
}

fn idempotent(ctx: &mut Ctx) -> Outcome {
    let sender = ctx.user()?;
    let other = ctx.user()?;
    let group = ctx.group(&sender, &[&other])?;
    let mut ws = ctx.device(&sender, "sender")?;
    let mut other_ws = ctx.device(&other, "other")?;
    let rpc = json!({"method": 40, "id": "once", "body": {"group_id": group, "data": "only once"}});
    ws.send_json(&rpc)?;
    let first = ws.expect(21)?;
    other_ws.expect(20)?;
    ws.send_json(&rpc)?;
    let again = ws.expect(21)?;
    ensure_eq(
        "the retried ack (same message_id, timestamp and id)",
        &again,
        &first,
    )?;
    other_ws.expect_quiet("a retried send delivers nothing new")?;
    let (events, _) = ws.sync_page(&json!({"method": 20, "timestamp": 0}))?;
    let stored = events.iter().filter(|e| e["type"] == 20).count();
    ensure_eq("stored copies of the message", stored, 1)
}

fn idempotent_reconnect(ctx: &mut Ctx) -> Outcome {
    let sender = ctx.user()?;
    let group = ctx.group(&sender, &[])?;
    let token = ctx.session(&sender)?;
    let rpc = json!({"method": 40, "id": "retry-me", "body": {"group_id": group, "data": "x"}});
    let first = {
        let mut ws = ctx.connect(&token, "first")?;
        ws.send_json(&rpc)?;
        let ack = ws.expect(21)?;
        // Closed before the token is used again: a server may allow one connection per token.
        ws.close()?;
        ack
    };
    let mut again_ws = ctx.connect(&token, "reconnected")?;
    again_ws.send_json(&rpc)?;
    ensure_eq(
        "the ack after a reconnect",
        again_ws.expect(21)?,
        first.clone(),
    )?;
    let mut other_device = ctx.device(&sender, "other-device")?;
    other_device.send_json(&rpc)?;
    ensure_eq("the ack on another device", other_device.expect(21)?, first)
}

fn idempotent_per_user(ctx: &mut Ctx) -> Outcome {
    let a = ctx.user()?;
    let b = ctx.user()?;
    let group = ctx.group(&a, &[&b])?;
    let mut a_ws = ctx.device(&a, "a")?;
    let mut b_ws = ctx.device(&b, "b")?;
    let rpc =
        json!({"method": 40, "id": "shared-id", "body": {"group_id": group, "data": "same id"}});
    a_ws.send_json(&rpc)?;
    let a_ack = a_ws.expect(21)?;
    b_ws.expect(20)?;
    b_ws.send_json(&rpc)?;
    let b_ack = b_ws.expect(21)?;
    ensure(
        a_ack["body"]["message_id"] != b_ack["body"]["message_id"],
        || format!("two users' sends with one client id got one message: {a_ack} / {b_ack}"),
    )?;
    expect_event(
        &a_ws.expect(20)?,
        20,
        &json!({"message_id": b_ack["body"]["message_id"], "user_id": b.id}),
    )?;
    Ok(())
}

fn idempotent_after_leaving(ctx: &mut Ctx) -> Outcome {
    let sender = ctx.user()?;
    let other = ctx.user()?;
    let group = ctx.group(&sender, &[&other])?;
    let mut ws = ctx.device(&sender, "sender")?;
    let mut other_ws = ctx.device(&other, "other")?;
    let rpc = json!({"method": 40, "id": "then-left", "body": {"group_id": group, "data": "x"}});
    ws.send_json(&rpc)?;
    let first = ws.expect(21)?;
    other_ws.expect(20)?;
    let response = ctx.membership("left", &sender, &group, None)?;
    ensure_eq("the sender leaves (status)", response.status, 200)?;
    ws.expect(73)?;
    other_ws.expect(73)?;
    // The sender owned the group (its creator): the other member owns it now.
    other_ws.expect(74)?;
    ws.send_json(&rpc)?;
    ensure_eq("the retry's ack after leaving", ws.expect(21)?, first)?;
    ws.send_json(&json!({"method": 40, "id": "new", "body": {"group_id": group, "data": "y"}}))?;
    let refused = ws.next_event()?;
    ensure_eq(
        "a new send after leaving",
        refused["body"]["code"].as_str(),
        Some("not_member"),
    )?;
    Ok(other_ws.expect_quiet("neither the retry nor the refused send delivers anything")?)
}

fn multidevice_fanout(ctx: &mut Ctx) -> Outcome {
    let a = ctx.user()?;
    let b = ctx.user()?;
    let mut a1 = ctx.device(&a, "a-phone")?;
    let mut a2 = ctx.device(&a, "a-laptop")?;
    let mut b1 = ctx.device(&b, "b-phone")?;
    let mut b2 = ctx.device(&b, "b-laptop")?;
    let group = ctx.group(&a, &[&b])?;
    for ws in [&mut a1, &mut a2, &mut b1, &mut b2] {
        expect_event(&ws.expect(70)?, 70, &json!({"group_id": group}))?;
    }
    let ack = send_message(&mut a1, &group, "to all devices")?;
    let message =
        json!({"message_id": ack["body"]["message_id"], "user_id": a.id, "group_id": group});
    for ws in [&mut a2, &mut b1, &mut b2] {
        expect_event(&ws.expect(20)?, 20, &message)?;
    }
    Ok(a1.expect_quiet("the sending connection gets only the ack")?)
}

fn multidevice_receipts(ctx: &mut Ctx) -> Outcome {
    let author = ctx.user()?;
    let reader = ctx.user()?;
    let group = ctx.group(&author, &[&reader])?;
    let mut author1 = ctx.device(&author, "author-1")?;
    let mut author2 = ctx.device(&author, "author-2")?;
    let mut reader1 = ctx.device(&reader, "reader-1")?;
    let mut reader2 = ctx.device(&reader, "reader-2")?;
    let ack = send_message(&mut author1, &group, "read on one device")?;
    let message_id = ack["body"]["message_id"].clone();
    author2.expect(20)?;
    reader1.expect(20)?;
    reader2.expect(20)?;
    reader1.send_json(&json!({"method": 42, "body": {"message_id": message_id}}))?;
    let receipt = json!({"message_id": message_id, "group_id": group, "user_id": reader.id});
    for ws in [&mut author1, &mut author2, &mut reader2] {
        expect_event(&ws.expect(23)?, 23, &receipt)?;
    }
    Ok(reader1.expect_quiet("the reading connection gets no receipt back")?)
}

fn multidevice_typing(ctx: &mut Ctx) -> Outcome {
    let typer = ctx.user()?;
    let other = ctx.user()?;
    let group = ctx.group(&typer, &[&other])?;
    let mut typer1 = ctx.device(&typer, "typer-1")?;
    let mut other1 = ctx.device(&other, "other-1")?;
    let mut other2 = ctx.device(&other, "other-2")?;
    typer1.send_json(&json!({"method": 60, "body": {"group_id": group}}))?;
    for ws in [&mut other1, &mut other2] {
        expect_event(
            &ws.expect(40)?,
            40,
            &json!({"group_id": group, "user_id": typer.id}),
        )?;
    }
    Ok(typer1.expect_quiet("the typing connection gets no typing event")?)
}

fn multidevice_typing_others_only(ctx: &mut Ctx) -> Outcome {
    let typer = ctx.user()?;
    let other = ctx.user()?;
    let group = ctx.group(&typer, &[&other])?;
    let mut typer1 = ctx.device(&typer, "typer-1")?;
    let mut typer2 = ctx.device(&typer, "typer-2")?;
    let mut other_ws = ctx.device(&other, "other")?;
    typer1.send_json(&json!({"method": 60, "body": {"group_id": group}}))?;
    other_ws.expect(40)?;
    Ok(typer2.expect_quiet("typing goes to the other members only")?)
}

fn multidevice_same_token(ctx: &mut Ctx) -> Outcome {
    let a = ctx.user()?;
    let b = ctx.user()?;
    let group = ctx.group(&a, &[&b])?;
    let token = ctx.session(&a)?;
    let mut first = ctx.connect(&token, "token-conn-1")?;
    let mut second = ctx.connect(&token, "token-conn-2")?;
    let mut b_ws = ctx.device(&b, "b")?;
    let ack = send_message(&mut b_ws, &group, "to both connections")?;
    for ws in [&mut first, &mut second] {
        expect_event(
            &ws.expect(20)?,
            20,
            &json!({"message_id": ack["body"]["message_id"]}),
        )?;
    }
    let own = send_message(&mut first, &group, "from one of them")?;
    expect_event(
        &second.expect(20)?,
        20,
        &json!({"message_id": own["body"]["message_id"]}),
    )?;
    Ok(())
}

/// The server pings every 10 s; allow its sweep and some scheduling slack on top.
const PING_WAIT: Duration = Duration::from_secs(13);

fn keepalive_ping(ctx: &mut Ctx) -> Outcome {
    let user = ctx.user()?;
    let mut ws = ctx.device(&user, "idle")?;
    match ws.next_message(PING_WAIT) {
        // tungstenite answers the ping with a pong on its own.
        Incoming::Message(Message::Ping(_)) => {}
        Incoming::Message(other) => {
            return fail(format!(
                "an idle connection received {other:?} before any ping"
            ))
        }
        Incoming::Nothing => return fail(format!("no ping within {PING_WAIT:?}")),
        Incoming::Ended(why) => {
            return fail(format!("the idle connection ended before any ping: {why}"))
        }
    }
    let (events, _) = ws.sync_page(&json!({"method": 20, "timestamp": 0}))?;
    ensure_eq("events of an idle new user", types(&events), vec![])
}
