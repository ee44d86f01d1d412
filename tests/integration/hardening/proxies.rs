//! Trusted proxies (`--trusted-proxies`): `X-Forwarded-For` and `X-Forwarded-Proto` are believed
//! only from a TCP peer the operator named, for the per-address rate limit of registrations and
//! logins and for the scheme of `messaging_url`; from anyone else they change nothing.

use crate::support::*;

/// A login of an unknown user (401, and it counts against the rate limit) from 127.0.0.1,
/// claiming to forward for `forwarded_for`.
fn login_as(server: &Server, forwarded_for: Option<&str>) -> Response {
    let body = json!({"username": "nobody-here", "password": "wrong"}).to_string();
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(list) = forwarded_for {
        headers.push(("X-Forwarded-For", list));
    }
    Http::connect(server.addr).request("POST", "/login", &headers, Some(body.as_bytes()))
}

#[test]
fn forwarded_for_is_not_believed_by_default() {
    let server = Server::start_with_args(&["--auth-rate", "2"]);
    login_as(&server, Some("198.51.100.1")).expect_error(401, "unauthorized");
    login_as(&server, Some("198.51.100.2")).expect_error(401, "unauthorized");
    // A third "client" is the same peer, 127.0.0.1, over its limit.
    login_as(&server, Some("198.51.100.3")).expect_error(429, "rate_limited");
    login_as(&server, None).expect_error(429, "rate_limited");
}

#[test]
fn forwarded_for_is_believed_from_a_trusted_proxy() {
    let server = Server::start_with_args(&[
        "--auth-rate",
        "2",
        "--trusted-proxies",
        "10.0.0.0/8, 127.0.0.1",
    ]);
    // Each forwarded client has its own budget, and the proxy's own requests theirs.
    for client in ["198.51.100.1", "198.51.100.2", "198.51.100.3"] {
        login_as(&server, Some(client)).expect_error_for(client, 401, "unauthorized");
    }
    login_as(&server, Some("198.51.100.1")).expect_error(401, "unauthorized");
    login_as(&server, Some("198.51.100.1")).expect_error(429, "rate_limited");
    // The rightmost address that is not a trusted proxy counts: what the client wrote left of
    // it does not get it a new budget, and trusted hops right of it are skipped.
    login_as(&server, Some("203.0.113.50, 198.51.100.1")).expect_error(429, "rate_limited");
    login_as(&server, Some("198.51.100.1, 10.1.2.3")).expect_error(429, "rate_limited");
    login_as(&server, Some("198.51.100.2, 10.1.2.3")).expect_error(401, "unauthorized");
    login_as(&server, None).expect_error(401, "unauthorized");
}

/// `messaging_url` of a session opened through `Host: host` with `X-Forwarded-Proto: proto`.
fn messaging_url_via(server: &Server, token: &str, host: &str, proto: &str) -> String {
    let auth = format!("Bearer {token}");
    let headers = [
        ("Content-Type", "application/json"),
        ("Authorization", auth.as_str()),
        ("Host", host),
        ("X-Forwarded-Proto", proto),
    ];
    let body = session_body().to_string();
    let answer =
        Http::connect(server.addr).request("POST", "/sessions", &headers, Some(body.as_bytes()));
    answer.expect(201)["messaging_url"]
        .as_str()
        .expect("messaging_url")
        .to_string()
}

#[test]
fn messaging_url_follows_forwarded_proto_only_from_a_trusted_proxy() {
    let host = "chat.example.com:8443";
    let untrusted = Server::start();
    let alice = untrusted.user("alice");
    let url = messaging_url_via(&untrusted, &alice.token, host, "https");
    assert!(url.starts_with("ws://chat.example.com:8443/"), "{url}");

    let trusted = Server::start_with_args(&["--trusted-proxies", "127.0.0.1"]);
    let bob = trusted.user("bob");
    let url = messaging_url_via(&trusted, &bob.token, host, "https");
    assert!(url.starts_with("wss://chat.example.com:8443/"), "{url}");
    let url = messaging_url_via(&trusted, &bob.token, host, "http");
    assert!(url.starts_with("ws://chat.example.com:8443/"), "{url}");
    // The token at its end opens a WebSocket on the server itself.
    let mut ws = Ws::connect(&trusted.ws_url(url_token(&url)), "bob");
    ws.sync_all(None);
}
