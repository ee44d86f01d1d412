//! Accounts over REST: registration, login and its token, and what a missing, malformed or
//! forged token gets.

use serde_json::{json, Value};

use super::refuse_bodies;
use crate::cases::{expect_error, expect_status, now_ms, Ctx};
use crate::registry::{ensure, ensure_eq, fail, Outcome, Stop};

pub(super) fn register_created(ctx: &mut Ctx) -> Outcome {
    let (first, ..) = ctx.register_only()?;
    let (second, ..) = ctx.register_only()?;
    ensure(first != second, || {
        format!("two users got the same id {first}")
    })
}

pub(super) fn register_conflict(ctx: &mut Ctx) -> Outcome {
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

pub(super) fn register_invalid(ctx: &mut Ctx) -> Outcome {
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
    refuse_bodies(ctx, "/users", None, "register", bodies)
}

pub(super) fn register_email(ctx: &mut Ctx) -> Outcome {
    let name = ctx.unique("cu");
    let bodies = [
        ("[email protected]", "the walkthrough's copied email"),
        ("no-at-sign", "an email without @"),
        ("@example.com", "an email without its local part"),
        ("someone@", "an email without its domain"),
    ]
    .map(|(email, what)| {
        (
            json!({"username": name, "email": email, "password": "0000"}),
            what,
        )
    });
    refuse_bodies(ctx, "/users", None, "register", bodies)
}

pub(super) fn login_ok(ctx: &mut Ctx) -> Outcome {
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

pub(super) fn login_jwt(ctx: &mut Ctx) -> Outcome {
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

pub(super) fn login_invalid(ctx: &mut Ctx) -> Outcome {
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

pub(super) fn auth_required(ctx: &mut Ctx) -> Outcome {
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

/// The claims of a JWT (its middle part, base64url JSON).
fn jwt_claims(token: &str) -> Result<Value, Stop> {
    parley_client::jwt::part(token, 1).map_err(Stop::Fail)
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
