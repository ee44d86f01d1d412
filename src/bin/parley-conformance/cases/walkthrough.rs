//! The walkthrough, request by request as `docs/PROTOCOL.md` and the README show it: two users
//! register, log in, open sessions, connect, sync, make a group, exchange a message with receipts
//! and typing, then leave and join again.

use serde_json::json;

use super::{
    expect_event, expect_group, expect_status, id_field, messaging_token, now_ms, send_message,
    Ctx, User,
};
use crate::registry::{ensure_eq, Case, Outcome};

pub const CASES: &[Case] = &[Case::core(
    "walkthrough",
    "the full walkthrough: register, login, session, sync, group, message, receipts, typing, leave, join",
    walkthrough,
)];

fn walkthrough(ctx: &mut Ctx) -> Outcome {
    // Register and log in exactly as the walkthrough does: login carries username and email.
    let mut users = Vec::new();
    for _ in 0..2 {
        let (id, username, email, password) = ctx.register_only()?;
        let token =
            ctx.login(&json!({"username": username, "email": email, "password": password}))?;
        users.push(User {
            id,
            username,
            password,
            token,
        });
    }
    let (user1, user2) = (&users[0], &users[1]);

    let mut sockets = Vec::new();
    for (user, label) in [(user1, "user1"), (user2, "user2")] {
        // The walkthrough writes the scheme in lower case.
        let response = ctx.call_authorized(
            "POST",
            "/sessions",
            &format!("bearer {}", user.token),
            &json!({"device_id": "0000", "platform": "web", "model": "chrome", "build": 1, "name": "my-pc"}),
        )?;
        expect_status(&response, 201, "open a session")?;
        let session = response.json();
        ensure_eq(
            "session `created_at` is an integer",
            session["created_at"].is_u64(),
            true,
        )?;
        id_field(&session, "id", "session answer")?;
        let token = messaging_token(&session)?;
        let mut ws = ctx.connect(&token, label)?;
        let cursor = now_ms();
        let (replayed, done) = ws.sync_page(&json!({"method": 20, "timestamp": cursor}))?;
        ensure_eq("events after `now` for a new user", replayed.len(), 0)?;
        expect_event(&done, 29, &json!({"timestamp": cursor, "more": false}))?;
        sockets.push(ws);
    }
    let (ws1, ws2) = sockets.split_at_mut(1);
    let (ws1, ws2) = (&mut ws1[0], &mut ws2[0]);

    let response = ctx.call(
        "POST",
        "/groups",
        Some(&user1.token),
        Some(&json!({"name": "group_1", "user_ids": [user2.id]})),
    )?;
    expect_status(&response, 201, "create a group")?;
    let group = id_field(&response.json(), "id", "create-group answer")?;
    let created = json!({"group_id": group, "name": "group_1", "user_ids": [user2.id, user1.id]});
    expect_event(&ws1.expect(70)?, 70, &created)?;
    expect_event(&ws2.expect(70)?, 70, &created)?;

    let data = "Hello, how are you?";
    let ack = send_message(ws1, &group, data)?;
    let message_id = ack["body"]["message_id"].clone();
    expect_event(
        &ws2.expect(20)?,
        20,
        &json!({"message_id": message_id, "data": data, "group_id": group, "user_id": user1.id}),
    )?;

    let receipt = json!({"message_id": message_id, "group_id": group, "user_id": user2.id});
    ws2.send_json(&json!({"method": 41, "body": {"message_id": message_id}}))?;
    expect_event(&ws1.expect(22)?, 22, &receipt)?;
    ws2.send_json(&json!({"method": 42, "body": {"message_id": message_id}}))?;
    expect_event(&ws1.expect(23)?, 23, &receipt)?;

    let typing = json!({"group_id": group, "user_id": user2.id});
    ws2.send_json(&json!({"method": 60, "body": {"group_id": group}}))?;
    expect_event(&ws1.expect(40)?, 40, &typing)?;
    ws2.send_json(&json!({"method": 61, "body": {"group_id": group}}))?;
    expect_event(&ws1.expect(41)?, 41, &typing)?;
    ws2.expect_quiet("the typer and reader gets nothing back for receipts and typing")?;

    let response = ctx.membership("left", user1, &group, Some(user1))?;
    expect_status(&response, 200, "leave the group")?;
    expect_group(
        &response.json(),
        &group,
        "group_1",
        &[&user2.id],
        "leave answer",
    )?;
    let left = json!({"group_id": group, "user_id": user1.id});
    expect_event(&ws1.expect(73)?, 73, &left)?;
    expect_event(&ws2.expect(73)?, 73, &left)?;
    // user1 owned the group (its creator): user2, the one left, owns it now (round 2).
    expect_event(
        &ws2.expect(74)?,
        74,
        &json!({"group_id": group, "name": "group_1", "owner": user2.id}),
    )?;

    let response = ctx.membership("join", user1, &group, Some(user1))?;
    expect_status(&response, 200, "join the group again")?;
    let members = [user2.id.as_str(), user1.id.as_str()];
    expect_group(&response.json(), &group, "group_1", &members, "join answer")?;
    let joined = json!({"group_id": group, "user_id": user1.id});
    let mut rejoiner = [ws1.next_event()?, ws1.next_event()?];
    rejoiner.sort_by_key(|e| e["type"].as_u64());
    expect_event(&rejoiner[0], 70, &json!({}))?;
    expect_group(
        &rejoiner[0]["body"],
        &group,
        "group_1",
        &members,
        "event 70 on the join",
    )?;
    expect_event(&rejoiner[1], 72, &joined)?;
    expect_event(&ws2.expect(72)?, 72, &joined)?;
    ws1.expect_quiet("nothing more after the join")?;
    ws2.expect_quiet("nothing more after the join")?;
    Ok(())
}
