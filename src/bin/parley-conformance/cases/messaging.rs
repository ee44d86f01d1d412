//! WebSocket cases: the upgrade, the send/ack/fan-out exchange, receipts and typing, the type-90
//! error event for bad RPCs, and the close codes for frame-level violations.

use serde_json::{json, Value};
use tungstenite::protocol::frame::coding::{Data, OpCode};
use tungstenite::protocol::frame::Frame;
use tungstenite::Message;

use super::{expect_event, id_field, send_message, Ctx};
use crate::registry::{ensure, ensure_eq, fail, Case, Outcome, Stop};
use crate::ws::{Upgrade, Ws};

pub const CASES: &[Case] = &[
    Case::core("ws.upgrade.unknown_token", "an upgrade with an unknown messaging token answers 401 before upgrading", upgrade_unknown_token),
    Case::core("ws.sync.empty", "a new user's sync answers only event 29 {timestamp: cursor, more: false}; cursor and limit may stand in body", sync_empty),
    Case::core("ws.send.ack", "a send is acknowledged with event 21 {message_id}, echoing the client id at the top level", send_ack),
    Case::core("ws.send.fanout", "event 20 {message_id, data, group_id, user_id} reaches every other member, not the sending connection", send_fanout),
    Case::core("ws.send.not_member", "a send to a group the caller is not in gets event 90 not_member", send_not_member),
    Case::core("ws.send.unknown_group", "a send to an unknown group gets event 90 not_found", send_unknown_group),
    Case::core("ws.receipt.to_author", "delivered (22) and read (23) go to the author, not to the other members", receipt_to_author),
    Case::core("ws.receipt.unknown_message", "a receipt for an unknown message gets event 90 not_found", receipt_unknown_message),
    Case::core("ws.typing", "typing 40/41 reach the other members, not the typing connection", typing),
    Case::core("ws.error.not_json", "a text message that is not a JSON object gets event 90 bad_request; the connection stays open", error_not_json),
    Case::core("ws.error.unknown_method", "an unknown method gets event 90 unknown_method naming the method and echoing the id", error_unknown_method),
    Case::core("ws.error.bad_body", "a missing body, or a missing or mistyped field, gets event 90 bad_request naming the method and echoing the id", error_bad_body),
    Case::core("ws.close.invalid_utf8", "a text frame with invalid UTF-8 closes the connection with 1007", close_invalid_utf8),
    Case::core("ws.close.protocol_error", "an unmasked client frame closes the connection with 1002", close_protocol_error),
    Case::parley("ws.upgrade.no_upgrade", "a plain GET of a messaging token (no upgrade) is not a WebSocket: 404 or 400", upgrade_plain_get),
    Case::parley("ws.send.data_limit", "data of 16 KiB is accepted, one byte more gets event 90 too_large", send_data_limit),
    Case::parley("ws.receipt.idempotent", "a second identical receipt is accepted and produces no event", receipt_idempotent),
    Case::parley("ws.receipt.not_member", "a receipt by a non-member gets event 90 not_member", receipt_not_member),
    Case::parley("ws.typing.not_member", "typing by a non-member gets event 90 not_member and reaches nobody", typing_not_member),
    Case::parley("ws.error.binary", "a binary message gets event 90 bad_request; the connection stays open", error_binary),
    Case::parley("ws.error.bad_body_strict", "a group_id that is not a UUID, a negative cursor, or a client id over 128 characters gets event 90 bad_request", error_bad_body_strict),
    Case::parley("ws.close.too_large", "a frame over 64 KiB closes the connection with 1009", close_too_large),
];

/// Checks a type-90 event: its code, and the method and client id when the RPC had them.
fn expect_error_event(
    event: &Value,
    code: &str,
    method: Option<u64>,
    id: Option<&str>,
) -> Result<(), Stop> {
    ensure_eq("event type (an error)", event["type"].as_u64(), Some(90))?;
    let body = &event["body"];
    ensure_eq("error event `code`", body["code"].as_str(), Some(code))?;
    ensure(body["error"].is_string(), || {
        format!("error event `error` must be a string: {event}")
    })?;
    if let Some(method) = method {
        ensure_eq(
            "error event `method`",
            body["method"].as_u64(),
            Some(method),
        )?;
    }
    if let Some(id) = id {
        ensure_eq("error event top-level `id`", event["id"].as_str(), Some(id))?;
        ensure_eq("error event body `id`", body["id"].as_str(), Some(id))?;
    }
    Ok(())
}

/// Proves the connection still answers RPCs.
fn still_open(ws: &mut Ws) -> Outcome {
    ws.barrier()?;
    Ok(())
}

fn upgrade_unknown_token(ctx: &mut Ctx) -> Outcome {
    let token = "0".repeat(64);
    match Ws::open(
        &ctx.http.base,
        &token,
        "stranger",
        &ctx.transcript,
        ctx.timeout,
    )? {
        Upgrade::Refused(status) => ensure_eq("upgrade with an unknown token", status, 401),
        Upgrade::Open(_) => fail("an unknown messaging token was upgraded (expected 401)"),
    }
}

fn upgrade_plain_get(ctx: &mut Ctx) -> Outcome {
    let user = ctx.user()?;
    let token = ctx.session(&user)?;
    let response = ctx.call("GET", &format!("/{token}"), None, None)?;
    ensure(matches!(response.status, 400 | 404), || {
        format!(
            "a GET of a messaging token without an upgrade answered {} (expected 404 or 400)",
            response.status
        )
    })
}

fn sync_empty(ctx: &mut Ctx) -> Outcome {
    let user = ctx.user()?;
    let mut ws = ctx.device(&user, "fresh")?;
    let (events, done) = ws.sync_page(&json!({"method": 20}))?;
    ensure_eq("events of a new user", events.len(), 0)?;
    ensure_eq("29 `more`", done["body"]["more"].as_bool(), Some(false))?;
    let (events, done) = ws.sync_page(&json!({"method": 20, "timestamp": 5}))?;
    ensure_eq("events of a new user", events.len(), 0)?;
    expect_event(&done, 29, &json!({"timestamp": 5, "more": false}))?;
    let (events, done) =
        ws.sync_page(&json!({"method": 20, "body": {"timestamp": 7, "limit": 3}}))?;
    ensure_eq("events of a new user", events.len(), 0)?;
    expect_event(&done, 29, &json!({"timestamp": 7, "more": false}))?;
    Ok(())
}

fn send_ack(ctx: &mut Ctx) -> Outcome {
    let user = ctx.user()?;
    let group = ctx.group(&user, &[])?;
    let mut ws = ctx.device(&user, "sender")?;
    let plain = send_message(&mut ws, &group, "no client id")?;
    ensure(plain["id"].is_null(), || {
        format!("an ack of a send without a client id must carry no `id`: {plain}")
    })?;
    ws.send_json(
        &json!({"method": 40, "id": "c-17", "body": {"group_id": group, "data": "with id"}}),
    )?;
    let ack = ws.expect(21)?;
    ensure_eq("ack top-level `id`", ack["id"].as_str(), Some("c-17"))?;
    let first = id_field(&plain["body"], "message_id", "ack")?;
    let second = id_field(&ack["body"], "message_id", "ack")?;
    ensure(first != second, || {
        "two sends got the same message_id".to_string()
    })?;
    // Wall-clock timestamps may repeat, but never go back in the server's order.
    ensure(
        ack["timestamp"].as_u64() >= plain["timestamp"].as_u64(),
        || format!("timestamps must not decrease: {plain} then {ack}"),
    )
}

fn send_fanout(ctx: &mut Ctx) -> Outcome {
    let sender = ctx.user()?;
    let a = ctx.user()?;
    let b = ctx.user()?;
    let group = ctx.group(&sender, &[&a, &b])?;
    let mut sender_ws = ctx.device(&sender, "sender")?;
    let mut a_ws = ctx.device(&a, "a")?;
    let mut b_ws = ctx.device(&b, "b")?;
    let data = "fan-out \u{1F600} \"quoted\" \\ and unicode";
    let ack = send_message(&mut sender_ws, &group, data)?;
    let message = json!({
        "message_id": ack["body"]["message_id"],
        "data": data,
        "group_id": group,
        "user_id": sender.id,
    });
    expect_event(&a_ws.expect(20)?, 20, &message)?;
    expect_event(&b_ws.expect(20)?, 20, &message)?;
    Ok(sender_ws.expect_quiet("the sending connection gets the ack, not the message")?)
}

fn send_not_member(ctx: &mut Ctx) -> Outcome {
    let owner = ctx.user()?;
    let outsider = ctx.user()?;
    let group = ctx.group(&owner, &[])?;
    let mut owner_ws = ctx.device(&owner, "owner")?;
    let mut ws = ctx.device(&outsider, "outsider")?;
    ws.send_json(&json!({"method": 40, "id": "nm-1", "body": {"group_id": group, "data": "x"}}))?;
    expect_error_event(&ws.next_event()?, "not_member", Some(40), Some("nm-1"))?;
    Ok(owner_ws.expect_quiet("a refused send delivers nothing")?)
}

fn send_unknown_group(ctx: &mut Ctx) -> Outcome {
    let user = ctx.user()?;
    let mut ws = ctx.device(&user, "sender")?;
    let nowhere = uuid::Uuid::new_v4().to_string();
    ws.send_json(&json!({"method": 40, "id": "ug", "body": {"group_id": nowhere, "data": "x"}}))?;
    expect_error_event(&ws.next_event()?, "not_found", Some(40), Some("ug"))
}

fn send_data_limit(ctx: &mut Ctx) -> Outcome {
    let user = ctx.user()?;
    let group = ctx.group(&user, &[])?;
    let mut ws = ctx.device(&user, "sender")?;
    send_message(&mut ws, &group, &"d".repeat(16 * 1024))?;
    ws.send_json(&json!({"method": 40, "id": "big", "body": {"group_id": group, "data": "d".repeat(16 * 1024 + 1)}}))?;
    expect_error_event(&ws.next_event()?, "too_large", Some(40), Some("big"))?;
    still_open(&mut ws)
}

fn receipt_to_author(ctx: &mut Ctx) -> Outcome {
    let author = ctx.user()?;
    let reader = ctx.user()?;
    let bystander = ctx.user()?;
    let group = ctx.group(&author, &[&reader, &bystander])?;
    let mut author_ws = ctx.device(&author, "author")?;
    let mut reader_ws = ctx.device(&reader, "reader")?;
    let mut bystander_ws = ctx.device(&bystander, "bystander")?;
    let ack = send_message(&mut author_ws, &group, "read me")?;
    let message_id = ack["body"]["message_id"].clone();
    reader_ws.expect(20)?;
    bystander_ws.expect(20)?;
    let receipt = json!({"message_id": message_id, "group_id": group, "user_id": reader.id});
    for (method, kind) in [(41, 22), (42, 23)] {
        reader_ws.send_json(&json!({"method": method, "body": {"message_id": message_id}}))?;
        expect_event(&author_ws.expect(kind)?, kind, &receipt)?;
    }
    reader_ws.expect_quiet("the reader's own connection gets no receipt back")?;
    Ok(bystander_ws.expect_quiet("receipts go to the author only")?)
}

fn receipt_idempotent(ctx: &mut Ctx) -> Outcome {
    let author = ctx.user()?;
    let reader = ctx.user()?;
    let group = ctx.group(&author, &[&reader])?;
    let mut author_ws = ctx.device(&author, "author")?;
    let mut reader_ws = ctx.device(&reader, "reader")?;
    let ack = send_message(&mut author_ws, &group, "twice")?;
    reader_ws.expect(20)?;
    let message_id = ack["body"]["message_id"].clone();
    for (method, kind) in [(41, 22), (42, 23)] {
        let rpc = json!({"method": method, "body": {"message_id": message_id}});
        reader_ws.send_json(&rpc)?;
        author_ws.expect(kind)?;
        reader_ws.send_json(&rpc)?;
        reader_ws.expect_quiet("a repeated receipt is accepted silently (no error)")?;
        author_ws.expect_quiet("a repeated receipt produces no event")?;
    }
    Ok(())
}

fn receipt_not_member(ctx: &mut Ctx) -> Outcome {
    let author = ctx.user()?;
    let outsider = ctx.user()?;
    let group = ctx.group(&author, &[])?;
    let mut author_ws = ctx.device(&author, "author")?;
    let ack = send_message(&mut author_ws, &group, "private")?;
    let mut ws = ctx.device(&outsider, "outsider")?;
    ws.send_json(
        &json!({"method": 42, "id": "r1", "body": {"message_id": ack["body"]["message_id"]}}),
    )?;
    expect_error_event(&ws.next_event()?, "not_member", Some(42), Some("r1"))?;
    Ok(author_ws.expect_quiet("a refused receipt produces no event")?)
}

fn receipt_unknown_message(ctx: &mut Ctx) -> Outcome {
    let user = ctx.user()?;
    let mut ws = ctx.device(&user, "reader")?;
    let nothing = uuid::Uuid::new_v4().to_string();
    ws.send_json(&json!({"method": 41, "id": "um", "body": {"message_id": nothing}}))?;
    expect_error_event(&ws.next_event()?, "not_found", Some(41), Some("um"))
}

fn typing(ctx: &mut Ctx) -> Outcome {
    let typer = ctx.user()?;
    let other = ctx.user()?;
    let group = ctx.group(&typer, &[&other])?;
    let mut typer_ws = ctx.device(&typer, "typer")?;
    let mut other_ws = ctx.device(&other, "other")?;
    let body = json!({"group_id": group, "user_id": typer.id});
    for (method, kind) in [(60, 40), (61, 41)] {
        typer_ws.send_json(&json!({"method": method, "body": {"group_id": group}}))?;
        expect_event(&other_ws.expect(kind)?, kind, &body)?;
    }
    Ok(typer_ws.expect_quiet("the typer gets no typing event back")?)
}

fn typing_not_member(ctx: &mut Ctx) -> Outcome {
    let owner = ctx.user()?;
    let outsider = ctx.user()?;
    let group = ctx.group(&owner, &[])?;
    let mut member_ws = ctx.device(&owner, "member")?;
    let mut outsider_ws = ctx.device(&outsider, "outsider")?;
    outsider_ws.send_json(&json!({"method": 60, "id": "t", "body": {"group_id": group}}))?;
    expect_error_event(
        &outsider_ws.next_event()?,
        "not_member",
        Some(60),
        Some("t"),
    )?;
    Ok(member_ws.expect_quiet("a refused typing event reaches nobody")?)
}

fn error_not_json(ctx: &mut Ctx) -> Outcome {
    let user = ctx.user()?;
    let mut ws = ctx.device(&user, "client")?;
    for text in ["hello", "[1,2]", "{\"method\":", "\"method\""] {
        ws.send(Message::text(text), text)?;
        expect_error_event(&ws.next_event()?, "bad_request", None, None)?;
    }
    still_open(&mut ws)
}

fn error_binary(ctx: &mut Ctx) -> Outcome {
    let user = ctx.user()?;
    let mut ws = ctx.device(&user, "client")?;
    ws.send(
        Message::binary(br#"{"method":20}"#.to_vec()),
        "binary {\"method\":20}",
    )?;
    expect_error_event(&ws.next_event()?, "bad_request", None, None)?;
    still_open(&mut ws)
}

fn error_unknown_method(ctx: &mut Ctx) -> Outcome {
    let user = ctx.user()?;
    let mut ws = ctx.device(&user, "client")?;
    ws.send_json(&json!({"method": 99, "id": "x-99", "body": {}}))?;
    expect_error_event(&ws.next_event()?, "unknown_method", Some(99), Some("x-99"))?;
    still_open(&mut ws)
}

fn error_bad_body(ctx: &mut Ctx) -> Outcome {
    let user = ctx.user()?;
    let mut ws = ctx.device(&user, "client")?;
    let rpcs = [
        (json!({"method": 40, "id": "b1"}), 40, "b1"),
        (
            json!({"method": 40, "id": "b2", "body": {"data": "x"}}),
            40,
            "b2",
        ),
        (
            json!({"method": 40, "id": "b3", "body": {"group_id": uuid::Uuid::new_v4(), "data": 5}}),
            40,
            "b3",
        ),
        (json!({"method": 41, "id": "b4", "body": {}}), 41, "b4"),
        (
            json!({"method": 60, "id": "b5", "body": {"group_id": 1}}),
            60,
            "b5",
        ),
        (
            json!({"method": 20, "id": "b6", "timestamp": "soon"}),
            20,
            "b6",
        ),
    ];
    for (rpc, method, id) in rpcs {
        ws.send_json(&rpc)?;
        expect_error_event(&ws.next_event()?, "bad_request", Some(method), Some(id))?;
    }
    still_open(&mut ws)
}

fn error_bad_body_strict(ctx: &mut Ctx) -> Outcome {
    let user = ctx.user()?;
    let mut ws = ctx.device(&user, "client")?;
    let rpcs = [
        (
            json!({"method": 40, "id": "s1", "body": {"group_id": "not-a-uuid", "data": "x"}}),
            40,
            "s1",
        ),
        (json!({"method": 20, "id": "s2", "timestamp": -1}), 20, "s2"),
    ];
    for (rpc, method, id) in rpcs {
        ws.send_json(&rpc)?;
        expect_error_event(&ws.next_event()?, "bad_request", Some(method), Some(id))?;
    }
    // A client id over 128 characters is itself the error (so it is not echoed).
    ws.send_json(&json!({"method": 20, "id": "i".repeat(129)}))?;
    expect_error_event(&ws.next_event()?, "bad_request", None, None)?;
    still_open(&mut ws)
}

fn close_too_large(ctx: &mut Ctx) -> Outcome {
    let user = ctx.user()?;
    let mut ws = ctx.device(&user, "client")?;
    // Only the header of a 70 000-byte text frame: a server must refuse it from the header alone,
    // and nothing unread is left behind to turn its close into a reset.
    let mut header = vec![0x81, 0x80 | 127];
    header.extend_from_slice(&70_000u64.to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]);
    ws.send_raw(&header, "header of a 70 000-byte text frame")?;
    ensure_eq("close code", ws.expect_close()?, Some(1009))
}

fn close_invalid_utf8(ctx: &mut Ctx) -> Outcome {
    let user = ctx.user()?;
    let mut ws = ctx.device(&user, "client")?;
    let frame = Frame::message(vec![b'{', 0xff, 0xfe, b'}'], OpCode::Data(Data::Text), true);
    ws.send(Message::Frame(frame), "text frame with bytes ff fe")?;
    ensure_eq("close code", ws.expect_close()?, Some(1007))
}

fn close_protocol_error(ctx: &mut Ctx) -> Outcome {
    let user = ctx.user()?;
    let mut ws = ctx.device(&user, "client")?;
    ws.send_raw(&[0x81, 0x02, b'h', b'i'], "unmasked text frame `hi`")?;
    ensure_eq("close code", ws.expect_close()?, Some(1002))?;
    // The server goes on: a new user can register, log in and connect.
    let user = ctx.user()?;
    ctx.device(&user, "after")?;
    Ok(())
}
