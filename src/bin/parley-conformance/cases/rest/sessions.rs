//! Sessions and groups over REST: what creating them answers, what they refuse, and the shape of
//! the ids and tokens they hand out.

use serde_json::{json, Value};

use super::refuse_bodies;
use crate::cases::{
    expect_error, expect_event, expect_status, id_field, messaging_token, now_ms, send_message,
    Ctx, User,
};
use crate::registry::{ensure, fail, Outcome};

pub(super) fn session_created(ctx: &mut Ctx) -> Outcome {
    let user = ctx.user()?;
    let mut tokens = Vec::new();
    for body in [
        json!({"device_id": "0000", "platform": "web", "model": "chrome", "build": 1, "name": "my-pc"}),
        json!({"device_id": "0000", "platform": "ios", "model": "iphone", "build": 7}),
    ] {
        let before = now_ms();
        let response = ctx.call("POST", "/sessions", Some(&user.token), Some(&body))?;
        expect_status(&response, 201, "open a session")?;
        let session = response.json();
        let id = id_field(&session, "id", "session answer")?;
        let Some(created_at) = session["created_at"].as_u64() else {
            return fail(format!(
                "session `created_at` must be an integer: {session}"
            ));
        };
        ensure(
            created_at + 60_000 >= before && created_at <= now_ms() + 60_000,
            || format!("session `created_at` {created_at} is not near now ({before})"),
        )?;
        let token = messaging_token(&session)?;
        ensure(token != id && !token.contains(&id.replace('-', "")), || {
            "the messaging token must not be the session id".to_string()
        })?;
        tokens.push(token);
    }
    ensure(tokens[0] != tokens[1], || {
        "two sessions of one user got the same messaging token".to_string()
    })
}

pub(super) fn session_invalid(ctx: &mut Ctx) -> Outcome {
    let user = ctx.user()?;
    let bodies = [
        (
            json!({"device_id": "d", "platform": "windows", "model": "m", "build": 1}),
            "an unknown platform",
        ),
        (
            json!({"device_id": "d", "platform": "webx", "model": "m", "build": 1}),
            "a platform with a known prefix",
        ),
        (
            json!({"device_id": "d", "platform": "web", "model": "m", "build": 0}),
            "build 0",
        ),
        (
            json!({"platform": "web", "model": "m", "build": 1}),
            "no device_id",
        ),
        (
            json!({"device_id": "d", "platform": "web", "build": 1}),
            "no model",
        ),
    ];
    refuse_sessions(ctx, &user, bodies)
}

/// Each body opens no session: `400 bad_request`.
fn refuse_sessions(
    ctx: &Ctx,
    user: &User,
    bodies: impl IntoIterator<Item = (Value, &'static str)>,
) -> Outcome {
    refuse_bodies(ctx, "/sessions", Some(&user.token), "a session", bodies)
}

pub(super) fn group_created(ctx: &mut Ctx) -> Outcome {
    let creator = ctx.user()?;
    let member = ctx.user()?;
    let mut creator_ws = ctx.device(&creator, "creator")?;
    let mut member_ws = ctx.device(&member, "member")?;
    let name = ctx.unique("group");
    let response = ctx.call(
        "POST",
        "/groups",
        Some(&creator.token),
        Some(&json!({"name": name, "user_ids": [member.id, creator.id, member.id]})),
    )?;
    expect_status(&response, 201, "create a group")?;
    let group = id_field(&response.json(), "id", "create-group answer")?;
    let created = json!({"group_id": group, "name": name, "user_ids": [member.id, creator.id]});
    expect_event(&creator_ws.expect(70)?, 70, &created)?;
    expect_event(&member_ws.expect(70)?, 70, &created)?;

    for body in [
        json!({"name": "alone"}),
        json!({"name": "alone", "user_ids": []}),
    ] {
        let response = ctx.call("POST", "/groups", Some(&creator.token), Some(&body))?;
        expect_status(&response, 201, &format!("create a group with {body}"))?;
        let group = id_field(&response.json(), "id", "create-group answer")?;
        let event = creator_ws.expect(70)?;
        expect_event(
            &event,
            70,
            &json!({"group_id": group, "name": "alone", "user_ids": [creator.id]}),
        )?;
    }
    member_ws.expect_quiet("groups without this user were created")?;
    Ok(())
}

pub(super) fn group_invalid(ctx: &mut Ctx) -> Outcome {
    let user = ctx.user()?;
    let missing = ctx.call(
        "POST",
        "/groups",
        Some(&user.token),
        Some(&json!({"user_ids": []})),
    )?;
    expect_error(&missing, 400, "bad_request", "a group without a name")?;
    let stranger = uuid::Uuid::new_v4().to_string();
    let unknown = ctx.call(
        "POST",
        "/groups",
        Some(&user.token),
        Some(&json!({"name": "g", "user_ids": [stranger]})),
    )?;
    expect_error(
        &unknown,
        400,
        "bad_request",
        "a group with an unknown user id",
    )?;
    let text = unknown.json()["error"].as_str().unwrap_or("").to_string();
    ensure(text.contains(&stranger), || {
        format!("the 400 must name the unknown id {stranger}: `{text}`")
    })?;
    let no_token = ctx.call("POST", "/groups", None, Some(&json!({"name": "g"})))?;
    expect_error(&no_token, 401, "unauthorized", "a group without a token")
}

pub(super) fn session_token(ctx: &mut Ctx) -> Outcome {
    let user = ctx.user()?;
    let token = ctx.session(&user)?;
    ensure(
        token.len() == 64 && token.chars().all(|c| c.is_ascii_hexdigit()),
        || format!("the messaging token must be 64 hex characters, got `{token}`"),
    )
}

pub(super) fn session_limits(ctx: &mut Ctx) -> Outcome {
    let user = ctx.user()?;
    let bodies = [
        (
            json!({"device_id": "d", "platform": "web", "model": "m", "build": "1"}),
            "build as a string",
        ),
        (
            json!({"device_id": "d".repeat(257), "platform": "web", "model": "m", "build": 1}),
            "a 257-character device_id",
        ),
    ];
    refuse_sessions(ctx, &user, bodies)
}

pub(super) fn group_name_limits(ctx: &mut Ctx) -> Outcome {
    let user = ctx.user()?;
    let bodies = [
        (json!({"name": ""}), "an empty name"),
        (json!({"name": "g".repeat(257)}), "a 257-character name"),
    ];
    refuse_bodies(ctx, "/groups", Some(&user.token), "a group", bodies)
}

pub(super) fn ids_uuid(ctx: &mut Ctx) -> Outcome {
    let user = ctx.user()?;
    let response = ctx.call(
        "POST",
        "/sessions",
        Some(&user.token),
        Some(&json!({"device_id": "d", "platform": "web", "model": "m", "build": 1})),
    )?;
    expect_status(&response, 201, "open a session")?;
    let session = response.json();
    let group = ctx.group(&user, &[])?;
    let mut ws = ctx.connect(&messaging_token(&session)?, "sender")?;
    let ack = send_message(&mut ws, &group, "an id")?;
    for (id, what) in [
        (json!(user.id), "user id"),
        (session["id"].clone(), "session id"),
        (json!(group), "group id"),
        (ack["body"]["message_id"].clone(), "message id"),
    ] {
        let text = id.as_str().unwrap_or("");
        ensure(
            text.len() == 36
                && uuid::Uuid::parse_str(text).is_ok()
                && !text.chars().any(|c| c.is_ascii_uppercase()),
            || format!("the {what} must be a hyphenated lower-case UUID, got {id}"),
        )?;
    }
    Ok(())
}
