//! Accounts and discovery (round 2): login names the user, and users are found by username
//! (exact, any case, never by email) and by ids.

use serde_json::json;

use crate::cases::{expect_error, expect_status, Ctx};
use crate::registry::{ensure_eq, Outcome};

pub(super) fn login_user_id(ctx: &mut Ctx) -> Outcome {
    let (id, username, email, password) = ctx.register_only()?;
    for body in [
        json!({"username": username, "password": password}),
        json!({"email": email, "password": password}),
    ] {
        let response = ctx.call("POST", "/login", None, Some(&body))?;
        expect_status(&response, 200, "login")?;
        ensure_eq(
            "login answer's `user_id`",
            response.json()["user_id"].as_str(),
            Some(id.as_str()),
        )?;
    }
    Ok(())
}

pub(super) fn users_lookup(ctx: &mut Ctx) -> Outcome {
    let me = ctx.user()?;
    let (id, username, email, _) = ctx.register_only()?;
    let found = json!({"users": [{"id": id, "username": username}]});
    let get = |ctx: &Ctx, path: String| ctx.call("GET", &path, Some(&me.token), None);

    let response = get(ctx, format!("/users?username={}", username.to_uppercase()))?;
    expect_status(&response, 200, "lookup by username in upper case")?;
    ensure_eq("lookup by username", response.json(), found.clone())?;
    let response = get(
        ctx,
        format!("/users?username={}", email.replace('@', "%40")),
    )?;
    expect_status(&response, 200, "lookup by an email as username")?;
    ensure_eq("lookup by an email", response.json(), json!({"users": []}))?;

    let unknown = "00000000-0000-4000-8000-000000000000";
    let response = get(ctx, format!("/users?id={id}&id={unknown}"))?;
    expect_status(&response, 200, "lookup by ids")?;
    ensure_eq("lookup by ids", response.json(), found)?;

    let response = get(ctx, format!("/users/{id}"))?;
    expect_status(&response, 200, "GET /users/{id}")?;
    ensure_eq(
        "GET /users/{id}",
        response.json(),
        json!({"id": id, "username": username}),
    )?;
    let response = get(ctx, format!("/users/{unknown}"))?;
    expect_error(&response, 404, "not_found", "GET /users/{unknown id}")?;

    let response = get(ctx, "/users/me".to_string())?;
    expect_status(&response, 200, "GET /users/me")?;
    ensure_eq(
        "GET /users/me `id`",
        response.json()["id"].as_str(),
        Some(me.id.as_str()),
    )
}
