//! The HTTP layer: health, unknown paths and methods, media types, malformed and oversized
//! requests, and chunked bodies, each answered with its status and error body.

use serde_json::json;

use crate::cases::{expect_error, expect_status, Ctx};
use crate::registry::{ensure, ensure_eq, fail, Outcome};

pub(super) fn healthz(ctx: &mut Ctx) -> Outcome {
    let response = ctx.call("GET", "/healthz", None, None)?;
    expect_status(&response, 200, "healthz")?;
    ensure_eq("healthz body", response.json(), json!({"status": "ok"}))
}

pub(super) fn not_found(ctx: &mut Ctx) -> Outcome {
    let response = ctx.call("GET", "/no/such/path", None, None)?;
    expect_error(&response, 404, "not_found", "GET /no/such/path")
}

pub(super) fn method_not_allowed(ctx: &mut Ctx) -> Outcome {
    expect_not_allowed(
        ctx,
        &[("DELETE", "/login", "POST"), ("PUT", "/users", "POST")],
    )
}

pub(super) fn method_not_allowed_strict(ctx: &mut Ctx) -> Outcome {
    expect_not_allowed(
        ctx,
        &[("DELETE", "/users", "POST"), ("POST", "/healthz", "GET")],
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

pub(super) fn media_type(ctx: &mut Ctx) -> Outcome {
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

pub(super) fn bad_json(ctx: &mut Ctx) -> Outcome {
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

pub(super) fn body_too_large(ctx: &mut Ctx) -> Outcome {
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

pub(super) fn chunked_any(ctx: &mut Ctx) -> Outcome {
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

pub(super) fn chunked(ctx: &mut Ctx) -> Outcome {
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

pub(super) fn head_too_large(ctx: &mut Ctx) -> Outcome {
    let big = "y".repeat(9 * 1024);
    let response = ctx
        .http
        .send("GET", "/healthz", &[("x-padding", big)], b"")?;
    expect_error(&response, 431, "too_large", "a 9 KiB header")?;
    let many: Vec<(&str, String)> = (0..70).map(|i| ("x-many", i.to_string())).collect();
    let response = ctx.http.send("GET", "/healthz", &many, b"")?;
    expect_error(&response, 431, "too_large", "70 headers")
}
