//! Registration, login, tokens and sessions (POST /users, /login, /sessions), the messaging URL,
//! and the WebSocket upgrade's token check.

use crate::support::ws::ConnectError;
use crate::support::*;

/// The walkthrough's literal token: HS256 under another key, expired in 2018.
const WALKTHROUGH_JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJleHAiOjE1MzM5OTQ5MzksInVzZXJfaWQiOiI0NzBkYWIyYy1iNDkxLTQ2ZTAtOGI0My1lYjhlYmM5ZjJkN2IifQ.hE5NF5Dscdtn-Z2pdIyMBrXVeSBG69xeArr8DqoceWo";

// ---- register ----

#[test]
fn register_rejects_taken_username_case_insensitively() {
    let server = Server::start();
    let name = unique("Taken");
    server.register(&name);
    let other_email = format!("{}@example.com", unique("other"));
    server
        .register_response(&name.to_uppercase(), &other_email, PASSWORD)
        .expect_error(409, "conflict");
    server
        .register_response(&name, &other_email, PASSWORD)
        .expect_error(409, "conflict");
}

#[test]
fn register_rejects_taken_email_case_insensitively() {
    let server = Server::start();
    let a = unique("mail_a");
    let email = format!("Mixed.{a}@Example.com");
    server.register_response(&a, &email, PASSWORD).expect(201);
    server
        .register_response(&unique("mail_b"), &email.to_lowercase(), PASSWORD)
        .expect_error(409, "conflict");
    server
        .register_response(&unique("mail_c"), &email.to_uppercase(), PASSWORD)
        .expect_error(409, "conflict");
}

#[test]
fn register_rejects_invalid_emails() {
    let server = Server::start();
    for email in [
        "",
        "   ",
        "plainaddress",
        "@example.com",
        "user@",
        "a@b@example.com",
        "user@exa mple.com",
    ] {
        let answer = server.register_response(&unique("bad_email"), email, PASSWORD);
        answer.expect_error_for(format_args!("email {email:?}"), 400, "bad_request");
    }
    let long = format!("{}@example.com", "a".repeat(250));
    server
        .register_response(&unique("long_email"), &long, PASSWORD)
        .expect_error(400, "bad_request");
}

/// The walkthrough's literal email (a copy artifact) is not an address.
#[test]
fn register_with_walkthrough_literal_email_is_400() {
    let server = Server::start();
    server
        .register_response(&unique("user1"), "[email protected]", "0000")
        .expect_error(400, "bad_request");
}

#[test]
fn register_trims_and_lowercases_email() {
    let server = Server::start();
    let name = unique("trim");
    let id = server
        .register_response(
            &name,
            &format!("  {}@Example.COM ", name.to_uppercase()),
            PASSWORD,
        )
        .expect(201)["id"]
        .clone();
    let token = server
        .login_response(&json!({"email": format!("{name}@example.com"), "password": PASSWORD}))
        .expect(200);
    assert_eq!(jwt::claims(token["token"].as_str().unwrap())["user_id"], id);
}

#[test]
fn register_validates_username_and_password() {
    let server = Server::start();
    let email = || format!("{}@example.com", unique("e"));
    let long_name = format!("n{}", uuid::Uuid::new_v4().simple()).repeat(2) + "x"; // 67 chars
    for name in [
        "",
        "has space",
        "has@at",
        "tab\tname",
        "new\nline",
        long_name.as_str(),
    ] {
        let answer = server.register_response(name, &email(), PASSWORD);
        answer.expect_error_for(format_args!("username {name:?}"), 400, "bad_request");
    }
    // 64 characters is fine.
    let name64: String = format!("u{}", uuid::Uuid::new_v4().simple()).repeat(2)[..64].to_string();
    server
        .register_response(&name64, &email(), PASSWORD)
        .expect(201);

    // Password: 1 to 1024 bytes.
    server
        .register_response(&unique("pw0"), &email(), "")
        .expect_error(400, "bad_request");
    server
        .register_response(&unique("pw1025"), &email(), &"p".repeat(1025))
        .expect_error(400, "bad_request");
    server
        .register_response(&unique("pw1024"), &email(), &"p".repeat(1024))
        .expect(201);
}

#[test]
fn register_requires_every_field_with_its_type() {
    let server = Server::start();
    let n = unique("fields");
    let e = format!("{n}@example.com");
    for body in [
        json!({"email": e, "password": PASSWORD}),
        json!({"username": n, "password": PASSWORD}),
        json!({"username": n, "email": e}),
        json!({"username": 5, "email": e, "password": PASSWORD}),
        json!({"username": n, "email": e, "password": 1234}),
        json!({}),
    ] {
        server
            .post("/users", None, &body)
            .expect_error(400, "bad_request");
    }
    // None of these created the user.
    server.register_response(&n, &e, PASSWORD).expect(201);
}

// ---- login ----

#[test]
fn login_token_is_a_jwt_for_the_user_valid_14_days() {
    let server = Server::start();
    let name = unique("jwt");
    let id = server.register(&name);
    let token = server.login(&name, PASSWORD);
    assert_eq!(jwt::header(&token)["alg"], "HS256");
    let claims = jwt::claims(&token);
    assert_eq!(claims["user_id"], id.as_str());
    let exp = claims["exp"]
        .as_u64()
        .unwrap_or_else(|| panic!("exp is an integer (seconds): {claims}"));
    let expected = now_ms() / 1000 + 14 * 24 * 3600;
    assert!(
        exp.abs_diff(expected) < 600,
        "exp {exp} is not 14 days from now ({expected})"
    );
}

#[test]
fn login_by_email_and_username_is_case_insensitive() {
    let server = Server::start();
    let name = unique("Case");
    let id = server.register(&name);
    for body in [
        json!({"email": format!("{name}@example.com").to_uppercase(), "password": PASSWORD}),
        json!({"email": format!("{name}@example.com").to_lowercase(), "password": PASSWORD}),
        json!({"username": name.to_uppercase(), "password": PASSWORD}),
        json!({"username": name.to_lowercase(), "password": PASSWORD}),
    ] {
        let answer = server.login_response(&body).expect(200);
        assert_keys(&answer, &["token", "user_id"]);
        assert_eq!(answer["user_id"], id.as_str(), "login {body}");
        assert_eq!(
            jwt::claims(answer["token"].as_str().unwrap())["user_id"],
            id.as_str(),
            "login {body}"
        );
    }
}

/// With both `username` and `email` present, the username decides whose password is checked.
#[test]
fn login_with_username_and_email_uses_the_username() {
    let server = Server::start();
    let a = unique("a");
    let a_id = server.register(&a);
    let b = unique("b");
    server
        .register_response(&b, &format!("{b}@example.com"), "b-password")
        .expect(201);
    let b_email = format!("{b}@example.com");

    let answer = server
        .login_response(&json!({"username": a, "email": b_email, "password": PASSWORD}))
        .expect(200);
    assert_eq!(
        jwt::claims(answer["token"].as_str().unwrap())["user_id"],
        a_id.as_str()
    );

    server
        .login_response(&json!({"username": a, "email": b_email, "password": "b-password"}))
        .expect_error(401, "unauthorized");
}

#[test]
fn login_failures_are_identical_401s() {
    let server = Server::start();
    let name = unique("known");
    server.register(&name);
    let wrong_password = server.login_response(&json!({"username": name, "password": "wrong"}));
    let unknown_user =
        server.login_response(&json!({"username": unique("nobody"), "password": PASSWORD}));
    let unknown_email = server.login_response(
        &json!({"email": format!("{}@example.com", unique("nobody")), "password": PASSWORD}),
    );
    let wrong_password_by_email = server
        .login_response(&json!({"email": format!("{name}@example.com"), "password": "wrong"}));
    for answer in [
        &wrong_password,
        &unknown_user,
        &unknown_email,
        &wrong_password_by_email,
    ] {
        answer.expect_error(401, "unauthorized");
        assert_eq!(
            answer.body, wrong_password.body,
            "every login failure answers the same body"
        );
    }
}

// ---- tokens ----

#[test]
fn missing_or_bad_token_is_401() {
    let server = Server::start();
    let user = server.user("tok");
    let body = session_body();
    let post = |auth: Option<&str>| {
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(a) = auth {
            headers.push(("Authorization", a));
        }
        server.http().request(
            "POST",
            "/sessions",
            &headers,
            Some(body.to_string().as_bytes()),
        )
    };

    let mut tampered = user.token.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let claims = jwt::claims(&user.token);
    let unsigned = jwt::forge(&json!({"alg": "none", "typ": "JWT"}), &claims, "");
    let expired = jwt::forge(
        &json!({"alg": "HS256", "typ": "JWT"}),
        &json!({"user_id": user.id, "exp": 1533994939}),
        "hE5NF5Dscdtn-Z2pdIyMBrXVeSBG69xeArr8DqoceWo",
    );

    let cases: Vec<(&str, Option<String>)> = vec![
        ("no Authorization", None),
        ("empty", Some(String::new())),
        ("scheme only", Some("Bearer".into())),
        ("garbage", Some("Bearer garbage".into())),
        ("three garbage parts", Some("Bearer a.b.c".into())),
        (
            "walkthrough token (expired, other key)",
            Some(format!("Bearer {WALKTHROUGH_JWT}")),
        ),
        (
            "expired-looking, this user",
            Some(format!("Bearer {expired}")),
        ),
        ("tampered signature", Some(format!("Bearer {tampered}"))),
        ("alg none", Some(format!("Bearer {unsigned}"))),
        ("Basic scheme", Some(format!("Basic {}", user.token))),
        ("token without scheme", Some(user.token.clone())),
        (
            "messaging token as bearer",
            Some(format!(
                "Bearer {}",
                url_token(&server.messaging_url(&user.token))
            )),
        ),
    ];
    for (what, auth) in &cases {
        let answer = post(auth.as_deref());
        answer.expect_error_for(what, 401, "unauthorized");
    }
    // Same on the other authenticated endpoints.
    server
        .post("/groups", None, &json!({"name": "g"}))
        .expect_error(401, "unauthorized");
    server
        .post("/groups", Some("garbage"), &json!({"name": "g"}))
        .expect_error(401, "unauthorized");
    let group = random_uuid();
    server
        .put(
            &format!("/groups/{group}/join"),
            Some(WALKTHROUGH_JWT),
            &json!({}),
        )
        .expect_error(401, "unauthorized");
    server
        .put(&format!("/groups/{group}/left"), None, &json!({}))
        .expect_error(401, "unauthorized");
}

#[test]
fn bearer_scheme_is_case_insensitive() {
    let server = Server::start();
    let user = server.user("scheme");
    for scheme in ["bearer", "Bearer", "BEARER", "bEaReR"] {
        let auth = format!("{scheme} {}", user.token);
        let answer = server.http().request(
            "POST",
            "/sessions",
            &[
                ("Content-Type", "application/json"),
                ("Authorization", auth.as_str()),
            ],
            Some(session_body().to_string().as_bytes()),
        );
        assert_keys(&answer.expect(201), &["created_at", "id", "messaging_url"]);
    }
}

// ---- sessions ----

#[test]
fn session_body_is_validated() {
    let server = Server::start();
    let user = server.user("session");
    let with = |key: &str, value: Value| {
        let mut b = session_body();
        b[key] = value;
        b
    };
    let without = |key: &str| {
        let mut b = session_body();
        b.as_object_mut().unwrap().remove(key);
        b
    };
    let bad = vec![
        ("platform windows", with("platform", json!("windows"))),
        ("platform webx", with("platform", json!("webx"))),
        ("platform xweb", with("platform", json!("xweb"))),
        ("platform empty", with("platform", json!(""))),
        ("platform number", with("platform", json!(1))),
        ("build 0", with("build", json!(0))),
        ("build -1", with("build", json!(-1))),
        ("build string", with("build", json!("1"))),
        ("build fraction", with("build", json!(1.5))),
        ("device_id missing", without("device_id")),
        ("device_id empty", with("device_id", json!(""))),
        (
            "device_id too long",
            with("device_id", json!("d".repeat(257))),
        ),
        ("platform missing", without("platform")),
        ("model missing", without("model")),
        ("model too long", with("model", json!("m".repeat(257)))),
        ("build missing", without("build")),
        ("name empty", with("name", json!(""))),
    ];
    for (what, body) in bad {
        let answer = server.session_response(&user.token, &body);
        answer.expect_error_for(what, 400, "bad_request");
    }
    let good = vec![
        ("name absent", without("name")),
        ("ios", with("platform", json!("ios"))),
        ("android", with("platform", json!("android"))),
        ("live", with("platform", json!("live"))),
        ("big build", with("build", json!(2_000_000_000u64))),
        ("256 chars", with("model", json!("m".repeat(256)))),
    ];
    for (what, body) in good {
        let answer = server.session_response(&user.token, &body);
        assert_eq!(
            answer.status,
            201,
            "{what}: {}",
            String::from_utf8_lossy(&answer.body)
        );
    }
}

#[test]
fn each_session_gets_its_own_id_and_token() {
    let server = Server::start();
    let user = server.user("devices");
    let a = server.open_session(&user.token);
    let b = server.open_session(&user.token);
    assert_ne!(a["id"], b["id"]);
    assert_ne!(a["messaging_url"], b["messaging_url"]);
    // Both work.
    Ws::connect(a["messaging_url"].as_str().unwrap(), "a").assert_quiet();
    Ws::connect(b["messaging_url"].as_str().unwrap(), "b").assert_quiet();
}

#[test]
fn messaging_url_is_built_from_the_host_header() {
    let server = Server::start();
    let user = server.user("host");
    let auth = format!("Bearer {}", user.token);
    let answer = server.http().request(
        "POST",
        "/sessions",
        &[
            ("Host", "chat.local:8080"),
            ("Content-Type", "application/json"),
            ("Authorization", auth.as_str()),
        ],
        Some(session_body().to_string().as_bytes()),
    );
    let body = answer.expect(201);
    let url = body["messaging_url"].as_str().unwrap();
    assert_eq!(url, format!("ws://chat.local:8080/{}", url_token(url)));
    // The token works on the real address.
    Ws::connect(&server.ws_url(url_token(url)), "host").assert_quiet();
}

#[test]
fn messaging_url_uses_public_url_when_configured() {
    let server = Server::start_with_args(&["--public-url", "https://chat.example.com"]);
    let user = server.user("public");
    let body = server.open_session(&user.token);
    let url = body["messaging_url"].as_str().unwrap();
    let token = url_token(url);
    assert_eq!(url, format!("wss://chat.example.com/{token}"));
    assert_eq!(token.len(), 64);
    Ws::connect(&server.ws_url(token), "public").assert_quiet();
}

// ---- the WebSocket upgrade ----

#[test]
fn websocket_upgrade_with_unknown_token_is_401() {
    let server = Server::start();
    let user = server.user("ws401");
    let unknown = uuid::Uuid::new_v4().simple().to_string().repeat(2); // 64 hex, not issued
    for token in [unknown.as_str(), "not-a-token", user.token.as_str()] {
        match Ws::try_connect(&server.ws_url(token), "ws401") {
            Err(ConnectError::Status(401)) => {}
            Err(other) => panic!("token {token:?}: expected a 401 answer, got {other:?}"),
            Ok(_) => panic!("token {token:?}: upgrade accepted"),
        }
    }
}

/// With a known `PARLEY_JWT_SECRET` the tests can sign tokens themselves: login tokens verify as
/// HS256 under it, a token signed the same way is accepted, and an expired one, one without
/// `exp`, one for an unknown user or one under another key is refused.
#[test]
fn tokens_are_hs256_under_the_configured_secret_and_expire() {
    const SECRET: &str = "integration-test-secret-0123456789abcdef";
    let server = Server::start_with(&[], &[("PARLEY_JWT_SECRET", SECRET)]);
    let user = server.user("signed");
    assert!(
        jwt::verify_hs256(&user.token, SECRET.as_bytes()),
        "the login token is HS256 under PARLEY_JWT_SECRET"
    );

    let now = now_ms() / 1000;
    let good = jwt::sign_hs256(
        &json!({"user_id": user.id, "exp": now + 3600}),
        SECRET.as_bytes(),
    );
    server.session_response(&good, &session_body()).expect(201);

    let refused = [
        (
            "expired an hour ago",
            jwt::sign_hs256(
                &json!({"user_id": user.id, "exp": now - 3600}),
                SECRET.as_bytes(),
            ),
        ),
        (
            "without exp",
            jwt::sign_hs256(&json!({"user_id": user.id}), SECRET.as_bytes()),
        ),
        (
            "exp as a string",
            jwt::sign_hs256(
                &json!({"user_id": user.id, "exp": (now + 3600).to_string()}),
                SECRET.as_bytes(),
            ),
        ),
        (
            "unknown user",
            jwt::sign_hs256(
                &json!({"user_id": random_uuid(), "exp": now + 3600}),
                SECRET.as_bytes(),
            ),
        ),
        (
            "user_id not a UUID",
            jwt::sign_hs256(
                &json!({"user_id": user.name, "exp": now + 3600}),
                SECRET.as_bytes(),
            ),
        ),
        (
            "without user_id",
            jwt::sign_hs256(&json!({"exp": now + 3600}), SECRET.as_bytes()),
        ),
        (
            "another key",
            jwt::sign_hs256(
                &json!({"user_id": user.id, "exp": now + 3600}),
                b"another-secret-another-secret-0000",
            ),
        ),
    ];
    server.assert_sessions_refused(&refused);
}

#[test]
fn public_url_variants() {
    for (public, prefix) in [
        (
            "http://chat.example.com:8080",
            "ws://chat.example.com:8080/",
        ),
        ("wss://chat.example.com", "wss://chat.example.com/"),
        ("https://chat.example.com/", "wss://chat.example.com/"),
    ] {
        let server = Server::start_with_args(&["--public-url", public]);
        let user = server.user("public");
        let url = server.open_session(&user.token)["messaging_url"]
            .as_str()
            .unwrap()
            .to_string();
        let token = url_token(&url);
        assert_eq!(url, format!("{prefix}{token}"), "--public-url {public}");
        assert_eq!(token.len(), 64);
    }
}

/// An unknown user costs a (dummy) hash like a wrong password does, so that timing does not tell
/// which usernames exist. Without the dummy hash an unknown user is answered some hundred times
/// faster; with it, about as fast. The two kinds are timed alternately and the fastest of each
/// compared (load on the machine only ever slows a try down).
#[test]
fn login_for_an_unknown_user_takes_about_as_long_as_a_wrong_password() {
    use std::time::{Duration, Instant};
    let server = Server::start();
    let name = unique("timing");
    server.register(&name);
    let time = |body: &Value| {
        let mut http = server.http();
        let start = Instant::now();
        http.json("POST", "/login", None, body)
            .expect_error(401, "unauthorized");
        start.elapsed()
    };
    let wrong = json!({"username": name, "password": "wrong"});
    let unknown = json!({"username": unique("nobody"), "password": "wrong"});
    let (mut wrong_password, mut unknown_user) = (Duration::MAX, Duration::MAX);
    for _ in 0..7 {
        wrong_password = wrong_password.min(time(&wrong));
        unknown_user = unknown_user.min(time(&unknown));
    }
    assert!(
        wrong_password > Duration::from_millis(2),
        "a password check takes a hash: {wrong_password:?}"
    );
    assert!(
        unknown_user * 10 >= wrong_password,
        "unknown user {unknown_user:?} vs wrong password {wrong_password:?}: no dummy hash?"
    );
}

// ---- limits and switches (see `parley --help`) ----

/// `--auth-rate N`: registrations and logins per minute per client address; beyond, 429 with
/// `Retry-After`. Other requests are not counted.
#[test]
fn auth_requests_are_rate_limited_per_address() {
    let server = Server::start_with_args(&["--auth-rate", "4"]);
    let name = unique("limited");
    server.register(&name); // 1
    let token = server.login(&name, PASSWORD); // 2
    server.login(&name, PASSWORD); // 3
    server.register(&unique("limited")); // 4
    for (what, answer) in [
        (
            "register",
            server.register_response(
                &unique("limited"),
                &format!("{}@example.com", unique("l")),
                PASSWORD,
            ),
        ),
        (
            "login",
            server.login_response(&json!({"username": name, "password": PASSWORD})),
        ),
    ] {
        answer.expect_error_for(format_args!("{what} over the rate"), 429, "rate_limited");
        let retry = answer
            .header("retry-after")
            .unwrap_or_else(|| panic!("{what}: 429 without Retry-After"));
        let secs: u64 = retry
            .parse()
            .unwrap_or_else(|_| panic!("Retry-After {retry:?} is not seconds"));
        assert!((1..=60).contains(&secs), "Retry-After {secs}");
    }
    // Authenticated requests and health checks are not limited.
    assert_eq!(server.get("/healthz").expect(200), json!({"status": "ok"}));
    server.open_session(&token);
}

#[test]
fn auth_rate_limit_can_be_switched_off() {
    let server = Server::start_with_args(&["--auth-rate", "0"]);
    let name = unique("unlimited");
    server.register(&name);
    for _ in 0..70 {
        let answer = server.login_response(&json!({"username": name, "password": "wrong"}));
        answer.expect_error(401, "unauthorized");
    }
}

/// `--allowed-origins`: a browser's upgrade from another origin is refused; clients without
/// `Origin` are always allowed.
#[test]
fn websocket_origin_is_checked_when_configured() {
    let server = Server::start_with_args(&[
        "--allowed-origins",
        "https://app.example.com,https://admin.example.com",
    ]);
    let user = server.user("origin");
    let url = server.messaging_url(&user.token);
    match Ws::try_connect_with(&url, "evil", &[("Origin", "https://evil.example.com")]) {
        Err(ConnectError::Status(403)) => {}
        Err(other) => panic!("foreign origin: expected 403, got {other:?}"),
        Ok(_) => panic!("foreign origin: upgrade accepted"),
    }
    for origin in ["https://app.example.com", "https://admin.example.com"] {
        let mut ws = Ws::try_connect_with(&url, origin, &[("Origin", origin)])
            .unwrap_or_else(|e| panic!("allowed origin {origin}: {e:?}"));
        ws.assert_quiet();
    }
    Ws::connect(&url, "no origin").assert_quiet();
}
