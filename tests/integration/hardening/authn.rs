//! Authentication: HS256 tokens with a required `exp`, a secret long enough or no start at all,
//! rate limits on registration and login, one answer for every failed login, a password cap,
//! the Origin allowlist on upgrades, and logs that never contain a secret.

use std::time::{Duration, Instant};

use super::process::{Launch, Process};
use crate::support::jwt::{b64url_encode, forge, hmac_sha256, sign_hs256};
use crate::support::ws::ConnectError;
use crate::support::*;

const SECRET: &str = "hardening-secret-of-at-least-32-bytes!";

fn now_secs() -> u64 {
    now_ms() / 1000
}

/// A token with `header` and `claims`, signed with HMAC-SHA-256 under `secret` whatever the
/// header says (so only the header or the claims make it wrong).
fn signed_with_header(header: &Value, claims: &Value, secret: &[u8]) -> String {
    let input = format!(
        "{}.{}",
        b64url_encode(header.to_string().as_bytes()),
        b64url_encode(claims.to_string().as_bytes())
    );
    let signature = b64url_encode(&hmac_sha256(secret, input.as_bytes()));
    format!("{input}.{signature}")
}

#[test]
fn only_hs256_tokens_with_a_valid_signature_and_exp_are_accepted() {
    let server = Server::start_with(&[], &[("PARLEY_JWT_SECRET", SECRET)]);
    let alice = server.user("alice");
    let secret = SECRET.as_bytes();
    let exp = now_secs() + 3600;
    let claims = json!({"user_id": alice.id, "exp": exp});
    let hs256 = json!({"alg": "HS256", "typ": "JWT"});

    // The control: a token we sign ourselves is as good as the server's.
    server
        .session_response(&sign_hs256(&claims, secret), &session_body())
        .expect(201);

    let forged_signature = {
        let good = sign_hs256(&claims, secret);
        let (input, _) = good.rsplit_once('.').unwrap();
        format!("{input}.{}", b64url_encode(&[0u8; 32]))
    };
    let refused = [
        (
            "alg none, no signature",
            forge(&json!({"alg": "none", "typ": "JWT"}), &claims, ""),
        ),
        ("alg None", forge(&json!({"alg": "None"}), &claims, "")),
        (
            "alg HS384 over an HS256 signature",
            signed_with_header(&json!({"alg": "HS384"}), &claims, secret),
        ),
        (
            "alg HS512",
            signed_with_header(&json!({"alg": "HS512"}), &claims, secret),
        ),
        (
            "alg RS256 keyed with the secret",
            signed_with_header(&json!({"alg": "RS256"}), &claims, secret),
        ),
        (
            "no alg",
            signed_with_header(&json!({"typ": "JWT"}), &claims, secret),
        ),
        ("a forged signature", forged_signature),
        (
            "another secret",
            sign_hs256(&claims, b"another-secret-of-at-least-32-bytes!!"),
        ),
        (
            "expired a second ago",
            sign_hs256(&json!({"user_id": alice.id, "exp": now_secs() - 1}), secret),
        ),
        (
            "exp as a string",
            sign_hs256(
                &json!({"user_id": alice.id, "exp": exp.to_string()}),
                secret,
            ),
        ),
        (
            "exp as a float",
            sign_hs256(
                &json!({"user_id": alice.id, "exp": exp as f64 + 0.5}),
                secret,
            ),
        ),
        ("no exp", sign_hs256(&json!({"user_id": alice.id}), secret)),
        (
            "exp null",
            sign_hs256(&json!({"user_id": alice.id, "exp": null}), secret),
        ),
        ("no user_id", sign_hs256(&json!({"exp": exp}), secret)),
        (
            "user_id not a UUID",
            sign_hs256(&json!({"user_id": "alice", "exp": exp}), secret),
        ),
        (
            "an unknown user",
            sign_hs256(&json!({"user_id": random_uuid(), "exp": exp}), secret),
        ),
        (
            "two parts",
            format!(
                "{}.{}",
                b64url_encode(hs256.to_string().as_bytes()),
                b64url_encode(claims.to_string().as_bytes())
            ),
        ),
        ("four parts", format!("{}.x", sign_hs256(&claims, secret))),
        ("empty", String::new()),
    ];
    server.assert_sessions_refused(&refused);
}

#[test]
fn a_short_secret_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    for secret in ["", "short", &"x".repeat(31)] {
        let launch = Launch {
            envs: &[("PARLEY_JWT_SECRET", secret)],
            ..Launch::default()
        };
        let mut process = Process::spawn(dir.path(), &launch);
        let status = process
            .wait_exit(DEADLINE)
            .expect("parley exits with a short secret");
        assert_eq!(
            status.code(),
            Some(2),
            "exit code for a {}-byte secret",
            secret.len()
        );
        let stderr = process.stderr().join("\n");
        assert!(
            stderr.contains("PARLEY_JWT_SECRET must be at least 32 bytes"),
            "{stderr}"
        );
        assert!(!stderr.contains("listening on"), "{stderr}");
    }
    // 32 bytes is enough.
    let launch = Launch {
        envs: &[("PARLEY_JWT_SECRET", &"x".repeat(32))],
        ..Launch::default()
    };
    let (_process, addr) = Process::start(dir.path(), &launch);
    assert_eq!(Http::connect(addr).get("/healthz").status, 200);
}

#[test]
fn registration_and_login_share_a_rate_limit_with_retry_after() {
    let server = Server::start_with_args(&["--auth-rate", "4"]);
    let name = unique("limited");
    server.register(&name);
    server.login(&name, PASSWORD);
    server
        .login_response(&json!({"username": name, "password": "wrong"}))
        .expect_error(401, "unauthorized");
    server
        .register_response(&unique("x"), "not-an-email", PASSWORD)
        .expect_error(400, "bad_request");
    for answer in [
        server.login_response(&json!({"username": name, "password": PASSWORD})),
        server.register_response(&unique("late"), "late@example.com", PASSWORD),
    ] {
        answer.expect_error(429, "rate_limited");
        let retry: u64 = answer
            .header("retry-after")
            .expect("Retry-After")
            .parse()
            .expect("Retry-After in seconds");
        assert!(
            (1..=16).contains(&retry),
            "Retry-After {retry} for 4 a minute"
        );
    }
    // Other endpoints are not limited.
    assert_eq!(server.get("/healthz").status, 200);
}

/// An unknown user and a wrong password get the same bytes back, and both cost a password
/// check (an unknown user answered without one would be far faster: that is the timing leak).
#[test]
fn unknown_user_and_wrong_password_look_the_same() {
    let server = Server::start_with_args(&["--auth-rate", "0"]);
    let alice = server.user("alice");
    let unknown = json!({"username": "nobody-at-all", "password": "wrong"});
    let wrong = json!({"username": alice.name, "password": "wrong"});
    let unknown_email = json!({"email": "nobody@example.com", "password": "wrong"});
    // Interleaved, so that load on the machine falls on all three kinds alike.
    let kinds = [&wrong, &unknown, &unknown_email];
    let mut fastest = [Duration::MAX; 3];
    let mut bodies = Vec::new();
    for _ in 0..5 {
        for (kind, body) in kinds.iter().enumerate() {
            let start = Instant::now();
            let answer = server.login_response(body);
            fastest[kind] = fastest[kind].min(start.elapsed());
            assert_eq!(answer.status, 401);
            bodies.push(answer.body);
        }
    }
    for body in &bodies {
        assert_eq!(
            body, &bodies[0],
            "every failed login answers the same bytes"
        );
    }
    let [wrong_time, unknown_time, _] = fastest;
    // The fastest of five is robust to noise, which only ever adds time.
    assert!(
        unknown_time * 4 >= wrong_time,
        "unknown user {unknown_time:?} vs wrong password {wrong_time:?}: no password check for unknown users"
    );
}

#[test]
fn passwords_are_capped_at_1024_bytes() {
    let server = Server::start_with_args(&["--auth-rate", "0"]);
    let name = unique("long");
    let max = "p".repeat(1024);
    let body = server
        .register_response(&name, &format!("{name}@example.com"), &max)
        .expect(201);
    assert_uuid(&body["id"]);
    server.login(&name, &max);
    let over = "p".repeat(1025);
    server
        .register_response(&unique("over"), "over@example.com", &over)
        .expect_error(400, "bad_request");
    server
        .login_response(&json!({"username": name, "password": over}))
        .expect_error(400, "bad_request");
    server
        .register_response(&unique("empty"), "empty@example.com", "")
        .expect_error(400, "bad_request");
}

#[test]
fn websocket_origin_allowlist() {
    let server = Server::start_with_args(&[
        "--allowed-origins",
        "https://chat.example.com,http://localhost:8080",
    ]);
    let alice = server.user("alice");
    let url = server.messaging_url(&alice.token);
    for origin in [
        "https://chat.example.com",
        "https://CHAT.example.com",
        "http://localhost:8080",
        "https://chat.example.com/",
    ] {
        let ws = Ws::try_connect_with(&url, "allowed", &[("Origin", origin)]);
        assert!(ws.is_ok(), "{origin}: {:?}", ws.err());
    }
    for origin in [
        "https://evil.example.com",
        "https://chat.example.com.evil.com",
        "http://chat.example.com",
        "http://localhost:8081",
        "null",
        "",
    ] {
        match Ws::try_connect_with(&url, "refused", &[("Origin", origin)]) {
            Err(ConnectError::Status(403)) => {}
            Err(other) => panic!("Origin {origin:?}: {other:?}"),
            Ok(_) => panic!("Origin {origin:?} opened a WebSocket"),
        }
    }
    // No Origin: not a browser; allowed.
    let mut ws = Ws::connect(&url, "no origin");
    ws.assert_quiet();
}

/// With debug logging, a whole session's worth of traffic (including failures) leaves no
/// password, JWT, access token or secret in the log.
#[test]
fn secrets_never_reach_the_log() {
    let server = Server::start_with(
        &["--auth-rate", "0"],
        &[("PARLEY_LOG", "debug"), ("PARLEY_JWT_SECRET", SECRET)],
    );
    let password = "correct-horse-battery-staple";
    let name = unique("logged");
    server
        .register_response(&name, &format!("{name}@example.com"), password)
        .expect(201);
    let token = server.login(&name, password);
    server
        .login_response(&json!({"username": name, "password": "wrong-password-xyz"}))
        .expect_error(401, "unauthorized");
    let url = server.messaging_url(&token);
    let access = url_token(&url).to_string();
    let mut ws = Ws::connect(&url, "logged");
    ws.assert_quiet();
    let bad_jwt = format!("{token}x");
    server
        .session_response(&bad_jwt, &session_body())
        .expect_error(401, "unauthorized");
    let _ = Ws::try_connect(&server.ws_url(&format!("{access}x")), "bad access");
    let log = server.stderr().join("\n");
    let (_, signature) = token.rsplit_once('.').unwrap();
    for secret in [
        password,
        "wrong-password-xyz",
        &token,
        signature,
        &access,
        SECRET,
    ] {
        assert!(!log.contains(secret), "the log contains {secret:?}:\n{log}");
    }
}
