//! REST cases: registration, login and tokens, sessions, group creation, and the error statuses
//! and error bodies of the HTTP layer.

use serde_json::{json, Value};

use super::{
    case, expect_error, expect_event, expect_status, messaging_token, now_ms, uuid_field, Ctx,
};
use crate::registry::{ensure, ensure_eq, fail, Case, Outcome, Stop};

pub const CASES: &[Case] = &[
    case("rest.healthz", "GET /healthz answers 200 {\"status\":\"ok\"}", healthz),
    case("rest.register.created", "POST /users answers 201 {\"id\": uuid}, a new id per user", register_created),
    case("rest.register.conflict", "a taken username or email, in any letter case, answers 409 conflict", register_conflict),
    case("rest.register.invalid", "bad usernames, emails and passwords answer 400 bad_request", register_invalid),
    case("rest.login.ok", "login by username or by email, case-insensitively; the JWT carries user_id and a 14-day exp", login_ok),
    case("rest.login.invalid", "a wrong password and an unknown user get the same 401 unauthorized", login_invalid),
    case("rest.auth.required", "missing, malformed and forged tokens answer 401; the Bearer scheme is case-insensitive", auth_required),
    case("rest.session.created", "POST /sessions answers 201 with created_at, id and a ws:// messaging_url with its own 64-hex token", session_created),
    case("rest.session.invalid", "a bad platform, build, or missing field answers 400", session_invalid),
    case("rest.group.created", "POST /groups answers 201; every member gets event 70, duplicates and the creator folded, creator last", group_created),
    case("rest.group.invalid", "a missing name or an unknown user id answers 400 (naming the unknown id)", group_invalid),
    case("rest.error.not_found", "an unknown path answers 404 not_found", not_found),
    case("rest.error.method_not_allowed", "a known path with the wrong method answers 405 with Allow", method_not_allowed),
    case("rest.error.media_type", "a body that is not JSON by content type answers 415 unsupported_media_type", media_type),
    case("rest.error.bad_json", "malformed JSON answers 400 bad_request", bad_json),
    case("rest.error.body_too_large", "a body over 64 KiB answers 413 too_large", body_too_large),
    case("rest.error.chunked", "a body sent with Transfer-Encoding answers 411", chunked),
    case("rest.error.head_too_large", "a head over 8 KiB, or over 64 headers, answers 431 too_large", head_too_large),
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
            json!({"username": name, "email": "no-at-sign", "password": "0000"}),
            "an email without @",
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

fn login_ok(ctx: &mut Ctx) -> Outcome {
    let (id, username, email, password) = ctx.register_only()?;
    let by_name = ctx.login(&json!({"username": username.to_uppercase(), "password": password}))?;
    let by_email = ctx.login(&json!({"email": email.to_uppercase(), "password": password}))?;
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
    let forged = forge(&user.token)?;
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
        let id = uuid_field(&session, "id", "session answer")?;
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
        ensure(!token.contains(&id.replace('-', "")), || {
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
            json!({"device_id": "d", "platform": "web", "model": "m", "build": "1"}),
            "build as a string",
        ),
        (
            json!({"platform": "web", "model": "m", "build": 1}),
            "no device_id",
        ),
        (
            json!({"device_id": "d", "platform": "web", "build": 1}),
            "no model",
        ),
        (
            json!({"device_id": "d".repeat(257), "platform": "web", "model": "m", "build": 1}),
            "a 257-character device_id",
        ),
    ];
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
    let group = uuid_field(&response.json(), "id", "create-group answer")?;
    let created = json!({"group_id": group, "name": name, "user_ids": [member.id, creator.id]});
    expect_event(&creator_ws.expect(70)?, 70, &created)?;
    expect_event(&member_ws.expect(70)?, 70, &created)?;

    for body in [
        json!({"name": "alone"}),
        json!({"name": "alone", "user_ids": []}),
    ] {
        let response = ctx.call("POST", "/groups", Some(&creator.token), Some(&body))?;
        expect_status(&response, 201, &format!("create a group with {body}"))?;
        let group = uuid_field(&response.json(), "id", "create-group answer")?;
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
    let empty = ctx.call(
        "POST",
        "/groups",
        Some(&user.token),
        Some(&json!({"name": ""})),
    )?;
    expect_error(&empty, 400, "bad_request", "a group with an empty name")?;
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
    for (method, path, allowed) in [
        ("GET", "/users", "POST"),
        ("DELETE", "/login", "POST"),
        ("POST", "/healthz", "GET"),
    ] {
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

/// The same header and claims under a signature the server did not make.
fn forge(token: &str) -> Result<String, Stop> {
    match token.rsplit_once('.') {
        Some((signed, signature)) => {
            let other: String = signature
                .chars()
                .map(|c| if c == 'A' { 'B' } else { 'A' })
                .collect();
            Ok(format!("{signed}.{other}"))
        }
        None => fail(format!("the token is not a JWT: {token}")),
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
