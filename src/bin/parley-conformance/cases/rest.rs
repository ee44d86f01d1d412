//! REST cases: registration, login and tokens, sessions, group creation, and the error statuses
//! and error bodies of the HTTP layer.

use serde_json::{json, Value};

use super::{
    expect_error, expect_event, expect_status, id_field, messaging_token, now_ms, send_message,
    Ctx, User,
};
use crate::registry::{ensure, ensure_eq, fail, Case, Outcome, Stop};

pub const CASES: &[Case] = &[
    Case::core("rest.register.created", "POST /users answers 201 {\"id\"}, a new id per user", register_created),
    Case::core("rest.register.conflict", "a taken username or email, in any letter case, answers 409 conflict", register_conflict),
    Case::core("rest.register.email", "an email that is not local@domain (the walkthrough's copied `[email protected]` among them) answers 400 bad_request", register_email),
    Case::core("rest.login.ok", "login by username or by email, case-insensitively, answers 200 {\"token\"}; username and email together use the username", login_ok),
    Case::core("rest.login.invalid", "a wrong password and an unknown user get the same 401 unauthorized", login_invalid),
    Case::core("rest.auth.required", "missing, malformed and forged tokens answer 401; the Bearer scheme is case-insensitive", auth_required),
    Case::core("rest.session.created", "POST /sessions answers 201 with created_at, id and a ws:// messaging_url ending in a fresh token, not the session id", session_created),
    Case::core("rest.session.invalid", "an unknown platform (a known prefix too), build 0, or a missing device_id or model answers 400", session_invalid),
    Case::core("rest.group.created", "POST /groups answers 201; every member gets event 70, duplicates and the creator folded, creator last", group_created),
    Case::core("rest.group.invalid", "a missing name or an unknown user id answers 400 (naming the unknown id); no token answers 401", group_invalid),
    Case::core("rest.error.not_found", "an unknown path answers 404 not_found", not_found),
    Case::core("rest.error.method_not_allowed", "a known path with the wrong method answers 405 with Allow", method_not_allowed),
    Case::core("rest.error.media_type", "a body that is not JSON by content type answers 415 unsupported_media_type", media_type),
    Case::core("rest.error.bad_json", "malformed JSON answers 400 bad_request", bad_json),
    Case::core("rest.body.chunked", "a chunked request body is decoded (201), or refused with 411 or 501", chunked_any),
    Case::parley("rest.healthz", "GET /healthz answers 200 {\"status\":\"ok\"}", healthz),
    Case::parley("rest.register.invalid", "usernames with whitespace or @, empty or over 64 characters, an email with two @, empty, missing or 1025-byte passwords answer 400", register_invalid),
    Case::parley("rest.login.jwt", "the login token is a JWT carrying user_id and a 14-day exp", login_jwt),
    Case::parley("rest.session.token", "the messaging token is 64 hex characters", session_token),
    Case::parley("rest.session.limits", "a build given as a string or a 257-character device_id answers 400", session_limits),
    Case::parley("rest.group.name_limits", "an empty or 257-character group name answers 400", group_name_limits),
    Case::parley("rest.ids.uuid", "user, session, group and message ids are hyphenated lower-case UUIDs", ids_uuid),
    Case::parley("rest.error.method_not_allowed_strict", "GET /users and POST /healthz answer 405 with Allow", method_not_allowed_strict),
    Case::parley("rest.error.body_too_large", "a body over 64 KiB answers 413 too_large", body_too_large),
    Case::parley("rest.error.chunked", "a body sent with Transfer-Encoding answers 411", chunked),
    Case::parley("rest.error.head_too_large", "a head over 8 KiB, or over 64 headers, answers 431 too_large", head_too_large),
];

fn healthz(ctx: &mut Ctx) -> Outcome {
    let response = ctx.call("GET", "/healthz", None, None)?;
    expect_status(&response, 200, "healthz")?;
    ensure_eq("healthz body", response.json(), json!({"status": "ok"}))
}

fn register_created(ctx: &mut Ctx) -> Outcome {
    let (first, ..) = ctx.register_only()?;
    let (second, ..) = ctx.register_only()?;
    ensure(first != second, || {
        format!("two users got the same id {first}")
    })
}

fn register_conflict(ctx: &mut Ctx) -> Outcome {
    let (_, username, email, _) = ctx.register_only()?;
    let other = ctx.unique("cu");
    let attempts = [
        (
            username.to_uppercase(),
            format!("{other}@example.com"),
            "the same username in upper case",
        ),
        (
            other.clone(),
            format!("  {}  ", email.to_uppercase()),
            "the same email, upper case, padded",
        ),
    ];
    for (name, mail, what) in attempts {
        let response = ctx.call(
            "POST",
            "/users",
            None,
            Some(&json!({"username": name, "email": mail, "password": "0000"})),
        )?;
        expect_error(&response, 409, "conflict", &format!("register with {what}"))?;
    }
    Ok(())
}

fn register_invalid(ctx: &mut Ctx) -> Outcome {
    let name = ctx.unique("cu");
    let email = format!("{name}@example.com");
    let long = "n".repeat(65);
    let bodies = [
        (
            json!({"username": "has space", "email": email, "password": "0000"}),
            "a username with a space",
        ),
        (
            json!({"username": format!("{name}@x"), "email": email, "password": "0000"}),
            "a username with @",
        ),
        (
            json!({"username": "", "email": email, "password": "0000"}),
            "an empty username",
        ),
        (
            json!({"username": long, "email": email, "password": "0000"}),
            "a 65-character username",
        ),
        (
            json!({"username": name, "email": "a@b@c", "password": "0000"}),
            "an email with two @",
        ),
        (
            json!({"username": name, "email": email, "password": ""}),
            "an empty password",
        ),
        (
            json!({"username": name, "email": email, "password": "p".repeat(1025)}),
            "a 1025-byte password",
        ),
        (json!({"username": name, "email": email}), "no password"),
        (json!({"email": email, "password": "0000"}), "no username"),
    ];
    for (body, what) in bodies {
        let response = ctx.call("POST", "/users", None, Some(&body))?;
        expect_error(
            &response,
            400,
            "bad_request",
            &format!("register with {what}"),
        )?;
    }
    Ok(())
}

fn register_email(ctx: &mut Ctx) -> Outcome {
    let name = ctx.unique("cu");
    for (email, what) in [
        ("[email protected]", "the walkthrough's copied email"),
        ("no-at-sign", "an email without @"),
        ("@example.com", "an email without its local part"),
        ("someone@", "an email without its domain"),
    ] {
        let response = ctx.call(
            "POST",
            "/users",
            None,
            Some(&json!({"username": name, "email": email, "password": "0000"})),
        )?;
        expect_error(
            &response,
            400,
            "bad_request",
            &format!("register with {what}"),
        )?;
    }
    Ok(())
}

fn login_ok(ctx: &mut Ctx) -> Outcome {
    let (_, username, email, password) = ctx.register_only()?;
    ctx.login(&json!({"username": username.to_uppercase(), "password": password}))?;
    ctx.login(&json!({"email": email.to_uppercase(), "password": password}))?;
    // With both, the username decides: an email that matches nobody does not matter...
    ctx.login(&json!({"username": username, "email": "nobody@example.com", "password": password}))?;
    // ...and another user's email with that user's password does not log in.
    let (_, _, other_email, other_password) = ctx.register_only()?;
    let response = ctx.call(
        "POST",
        "/login",
        None,
        Some(&json!({"username": username, "email": other_email, "password": other_password})),
    )?;
    expect_error(
        &response,
        401,
        "unauthorized",
        "login with a username and another user's email and password",
    )
}

fn login_jwt(ctx: &mut Ctx) -> Outcome {
    let (id, username, email, password) = ctx.register_only()?;
    let by_name = ctx.login(&json!({"username": username, "password": password}))?;
    let by_email = ctx.login(&json!({"email": email, "password": password}))?;
    for token in [by_name, by_email] {
        let claims = jwt_claims(&token)?;
        ensure_eq(
            "JWT claim `user_id`",
            claims["user_id"].as_str(),
            Some(id.as_str()),
        )?;
        let Some(exp) = claims["exp"].as_u64() else {
            return fail(format!("JWT claim `exp` must be an integer: {claims}"));
        };
        let fourteen_days = 14 * 24 * 3600;
        let now = now_ms() / 1000;
        ensure(exp.abs_diff(now + fourteen_days) < 3600, || {
            format!("JWT `exp` {exp} should be 14 days after now ({now})")
        })?;
    }
    Ok(())
}

fn login_invalid(ctx: &mut Ctx) -> Outcome {
    let (_, username, _, password) = ctx.register_only()?;
    let wrong = ctx.call(
        "POST",
        "/login",
        None,
        Some(&json!({"username": username, "password": format!("{password}x")})),
    )?;
    expect_error(&wrong, 401, "unauthorized", "login with a wrong password")?;
    let nobody = ctx.unique("nobody");
    let unknown = ctx.call(
        "POST",
        "/login",
        None,
        Some(&json!({"username": nobody, "password": password})),
    )?;
    expect_error(&unknown, 401, "unauthorized", "login of an unknown user")?;
    ensure_eq(
        "the error of an unknown user and of a wrong password",
        unknown.json(),
        wrong.json(),
    )
}

fn auth_required(ctx: &mut Ctx) -> Outcome {
    let user = ctx.user()?;
    let body = json!({"device_id": "d", "platform": "web", "model": "m", "build": 1});
    let missing = ctx.call("POST", "/sessions", None, Some(&body))?;
    expect_error(&missing, 401, "unauthorized", "a session without a token")?;
    let forged = forge(&user.token);
    for (header, what) in [
        ("Bearer not-a-jwt".to_string(), "a malformed token"),
        (
            format!("Bearer {forged}"),
            "a token with a forged signature",
        ),
        (
            format!("Basic {}", user.token),
            "a token under another scheme",
        ),
    ] {
        let response = ctx.call_authorized("POST", "/sessions", &header, &body)?;
        expect_error(
            &response,
            401,
            "unauthorized",
            &format!("a session with {what}"),
        )?;
    }
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let response = ctx.call_authorized(
            "POST",
            "/sessions",
            &format!("{scheme} {}", user.token),
            &body,
        )?;
        expect_status(
            &response,
            201,
            &format!("a session with the scheme `{scheme}`"),
        )?;
    }
    Ok(())
}

fn session_created(ctx: &mut Ctx) -> Outcome {
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

fn session_invalid(ctx: &mut Ctx) -> Outcome {
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
    ctx: &mut Ctx,
    user: &User,
    bodies: impl IntoIterator<Item = (Value, &'static str)>,
) -> Outcome {
    for (body, what) in bodies {
        let response = ctx.call("POST", "/sessions", Some(&user.token), Some(&body))?;
        expect_error(
            &response,
            400,
            "bad_request",
            &format!("a session with {what}"),
        )?;
    }
    Ok(())
}

fn group_created(ctx: &mut Ctx) -> Outcome {
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

fn group_invalid(ctx: &mut Ctx) -> Outcome {
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

fn not_found(ctx: &mut Ctx) -> Outcome {
    let response = ctx.call("GET", "/no/such/path", None, None)?;
    expect_error(&response, 404, "not_found", "GET /no/such/path")
}

fn method_not_allowed(ctx: &mut Ctx) -> Outcome {
    expect_not_allowed(
        ctx,
        &[("DELETE", "/login", "POST"), ("PUT", "/users", "POST")],
    )
}

fn method_not_allowed_strict(ctx: &mut Ctx) -> Outcome {
    expect_not_allowed(
        ctx,
        &[("GET", "/users", "POST"), ("POST", "/healthz", "GET")],
    )
}

/// Each `(method, path)` answers 405 with an `Allow` that lists the third item.
fn expect_not_allowed(ctx: &mut Ctx, requests: &[(&str, &str, &str)]) -> Outcome {
    for &(method, path, allowed) in requests {
        let response = ctx.call(method, path, None, None)?;
        expect_error(
            &response,
            405,
            "method_not_allowed",
            &format!("{method} {path}"),
        )?;
        let allow = response.header("allow").unwrap_or("");
        ensure(allow.split(',').any(|m| m.trim() == allowed), || {
            format!("{method} {path}: `Allow` must list {allowed}, got `{allow}`")
        })?;
    }
    Ok(())
}

fn media_type(ctx: &mut Ctx) -> Outcome {
    let name = ctx.unique("cu");
    let body =
        json!({"username": name, "email": format!("{name}@example.com"), "password": "0000"});
    let response = ctx.http.send(
        "POST",
        "/users",
        &[("content-type", "text/plain".to_string())],
        body.to_string().as_bytes(),
    )?;
    expect_error(
        &response,
        415,
        "unsupported_media_type",
        "register with text/plain",
    )
}

fn bad_json(ctx: &mut Ctx) -> Outcome {
    let response = ctx.http.send(
        "POST",
        "/users",
        &[("content-type", "application/json".to_string())],
        b"{\"username\": ",
    )?;
    expect_error(
        &response,
        400,
        "bad_request",
        "register with truncated JSON",
    )
}

fn body_too_large(ctx: &mut Ctx) -> Outcome {
    let padding = "x".repeat(64 * 1024);
    let body = json!({"username": "u", "email": "u@example.com", "password": padding});
    let response = ctx.http.send(
        "POST",
        "/users",
        &[("content-type", "application/json".to_string())],
        body.to_string().as_bytes(),
    )?;
    expect_error(&response, 413, "too_large", "a 64 KiB+ body")
}

fn chunked_any(ctx: &mut Ctx) -> Outcome {
    let name = ctx.unique("cu");
    let body =
        json!({"username": name, "email": format!("{name}@example.com"), "password": "pw-chunked"})
            .to_string();
    let (head, tail) = body.split_at(body.len() / 2);
    let authority = ctx.http.base.authority.clone();
    let target = ctx.http.base.target("/users");
    let request = format!(
        "POST {target} HTTP/1.1\r\nhost: {authority}\r\ncontent-type: application/json\r\n\
         transfer-encoding: chunked\r\nconnection: close\r\n\r\n\
         {:x}\r\n{head}\r\n{:x}\r\n{tail}\r\n0\r\n\r\n",
        head.len(),
        tail.len()
    );
    let response = ctx
        .http
        .raw("POST /users with a body in two chunks", request.as_bytes())?;
    match response.status {
        201 => {
            // Decoded, not merely accepted: the user it describes can log in.
            ctx.login(&json!({"username": name, "password": "pw-chunked"}))?;
            Ok(())
        }
        411 | 501 => {
            let body = response.json();
            ensure(
                body["error"].is_string() && body["code"].is_string(),
                || {
                    format!(
                        "a refused chunked body must get an error body {{\"error\", \"code\"}}: {}",
                        response.body_text()
                    )
                },
            )
        }
        other => fail(format!(
            "a chunked body must be decoded (201) or refused with 411 or 501, got {other} {}",
            response.body_text()
        )),
    }
}

fn chunked(ctx: &mut Ctx) -> Outcome {
    let authority = ctx.http.base.authority.clone();
    let target = ctx.http.base.target("/users");
    let request = format!(
        "POST {target} HTTP/1.1\r\nhost: {authority}\r\ncontent-type: application/json\r\n\
         transfer-encoding: chunked\r\nconnection: close\r\n\r\n2\r\n{{}}\r\n0\r\n\r\n"
    );
    let response = ctx
        .http
        .raw("POST /users with a chunked body", request.as_bytes())?;
    expect_error(&response, 411, "bad_request", "a chunked body")
}

fn head_too_large(ctx: &mut Ctx) -> Outcome {
    let big = "y".repeat(9 * 1024);
    let response = ctx
        .http
        .send("GET", "/healthz", &[("x-padding", big)], b"")?;
    expect_error(&response, 431, "too_large", "a 9 KiB header")?;
    let many: Vec<(&str, String)> = (0..70).map(|i| ("x-many", i.to_string())).collect();
    let response = ctx.http.send("GET", "/healthz", &many, b"")?;
    expect_error(&response, 431, "too_large", "70 headers")
}

fn session_token(ctx: &mut Ctx) -> Outcome {
    let user = ctx.user()?;
    let token = ctx.session(&user)?;
    ensure(
        token.len() == 64 && token.chars().all(|c| c.is_ascii_hexdigit()),
        || format!("the messaging token must be 64 hex characters, got `{token}`"),
    )
}

fn session_limits(ctx: &mut Ctx) -> Outcome {
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

fn group_name_limits(ctx: &mut Ctx) -> Outcome {
    let user = ctx.user()?;
    for (name, what) in [
        (String::new(), "an empty name"),
        ("g".repeat(257), "a 257-character name"),
    ] {
        let response = ctx.call(
            "POST",
            "/groups",
            Some(&user.token),
            Some(&json!({"name": name})),
        )?;
        expect_error(
            &response,
            400,
            "bad_request",
            &format!("a group with {what}"),
        )?;
    }
    Ok(())
}

fn ids_uuid(ctx: &mut Ctx) -> Outcome {
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

/// The claims of a JWT (its middle part, base64url JSON).
fn jwt_claims(token: &str) -> Result<Value, Stop> {
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return fail(format!(
            "the token is not a JWT (three dot-separated parts): {token}"
        ));
    }
    let bytes = base64url_decode(parts[1])
        .ok_or_else(|| Stop::Fail(format!("JWT payload is not base64url: {}", parts[1])))?;
    serde_json::from_slice(&bytes).map_err(|e| Stop::Fail(format!("JWT payload is not JSON: {e}")))
}

/// The token with its last part (a JWT's signature; all of an opaque token) made up by the kit.
fn forge(token: &str) -> String {
    let (signed, signature) = token.rsplit_once('.').unwrap_or(("", token));
    let other: String = signature
        .chars()
        .map(|c| if c == 'A' { 'B' } else { 'A' })
        .collect();
    if signed.is_empty() {
        other
    } else {
        format!("{signed}.{other}")
    }
}

fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    let mut bits: u32 = 0;
    let mut count = 0;
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    for c in text.trim_end_matches('=').bytes() {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            _ => return None,
        };
        bits = (bits << 6) | u32::from(value);
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_base64url() {
        assert_eq!(base64url_decode("eyJhIjoxfQ").unwrap(), br#"{"a":1}"#);
        assert_eq!(base64url_decode("_-8").unwrap(), vec![0xff, 0xef]);
        assert!(base64url_decode("a*b").is_none());
    }
}
