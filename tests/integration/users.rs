//! Accounts and discovery (issue #19): login's `user_id`, `GET /users/me`, `GET /users/{id}`,
//! `GET /users?username=` and `?id=`, the password change and logging out one token.

use crate::support::*;

/// `method path` with a bearer token and no body, on a fresh connection.
pub fn call(server: &Server, method: &str, path: &str, token: &str) -> Response {
    let auth = format!("Bearer {token}");
    server
        .http()
        .request(method, path, &[("Authorization", auth.as_str())], None)
}

#[test]
fn login_answers_the_user_id() {
    let server = Server::start();
    let name = unique("idlogin");
    let id = server.register(&name);
    for body in [
        json!({"username": name, "password": PASSWORD}),
        json!({"email": format!("{name}@example.com"), "password": PASSWORD}),
    ] {
        let answer = server.login_response(&body).expect(200);
        assert_keys(&answer, &["token", "user_id"]);
        assert_eq!(answer["user_id"], id.as_str(), "{body}");
    }
}

#[test]
fn me_shows_the_callers_own_account() {
    let server = Server::start();
    let alice = server.user("me");
    let me = call(&server, "GET", "/users/me", &alice.token).expect(200);
    assert_keys(&me, &["id", "username", "email", "created_at"]);
    assert_eq!(me["id"], alice.id.as_str());
    assert_eq!(me["username"], alice.name.as_str());
    assert_eq!(me["email"], alice.email.as_str());
    assert_ms(&me["created_at"]);
    server.get("/users/me").expect_error(401, "unauthorized");
    call(&server, "GET", "/users/me", "not-a-jwt").expect_error(401, "unauthorized");
    call(&server, "POST", "/users/me", &alice.token).expect_error(405, "method_not_allowed");
}

#[test]
fn a_user_by_id_shows_the_handle_and_never_the_email() {
    let server = Server::start();
    let alice = server.user("byid_a");
    let bob = server.user("byid_b");
    let seen = call(&server, "GET", &format!("/users/{}", bob.id), &alice.token).expect(200);
    assert_keys(&seen, &["id", "username"]);
    assert_eq!(seen["id"], bob.id.as_str());
    assert_eq!(seen["username"], bob.name.as_str());
    let unknown = format!("/users/{}", random_uuid());
    call(&server, "GET", &unknown, &alice.token).expect_error(404, "not_found");
    call(&server, "GET", "/users/not-a-uuid", &alice.token).expect_error(400, "bad_request");
    server
        .get(&format!("/users/{}", bob.id))
        .expect_error(401, "unauthorized");
}

#[test]
fn lookup_by_username_is_exact_and_case_insensitive() {
    let server = Server::start();
    let alice = server.user("Finder");
    let bob = server.user("Findme");
    let by_name = |name: &str| {
        let path = format!("/users?username={name}");
        call(&server, "GET", &path, &alice.token).expect(200)
    };
    for name in [
        bob.name.clone(),
        bob.name.to_uppercase(),
        bob.name.to_lowercase(),
    ] {
        let found = by_name(&name);
        assert_keys(&found, &["users"]);
        assert_eq!(
            found["users"],
            json!([{"id": bob.id, "username": bob.name}]),
            "{name}"
        );
    }
    // Not a prefix search, and an email is not a handle.
    assert_eq!(by_name(&bob.name[..bob.name.len() - 1])["users"], json!([]));
    let email = bob.email.replace('@', "%40");
    assert_eq!(by_name(&email)["users"], json!([]));
    assert_eq!(by_name("nobody-at-all")["users"], json!([]));
    server
        .get(&format!("/users?username={}", bob.name))
        .expect_error(401, "unauthorized");
}

#[test]
fn lookup_by_ids_lists_those_that_exist_and_caps_the_count() {
    let server = Server::start();
    let alice = server.user("ids_a");
    let bob = server.user("ids_b");
    let unknown = random_uuid();
    let path = format!(
        "/users?id={}&id={unknown}&id={}&id={}",
        bob.id, alice.id, bob.id
    );
    let found = call(&server, "GET", &path, &alice.token).expect(200);
    assert_eq!(
        found["users"],
        json!([
            {"id": bob.id, "username": bob.name},
            {"id": alice.id, "username": alice.name},
        ])
    );
    let hundred: Vec<String> = (0..100).map(|_| format!("id={}", random_uuid())).collect();
    let path = format!("/users?{}", hundred.join("&"));
    let none = call(&server, "GET", &path, &alice.token).expect(200);
    assert_eq!(none["users"], json!([]));
    let path = format!("/users?{}&id={}", hundred.join("&"), bob.id);
    call(&server, "GET", &path, &alice.token).expect_error(400, "bad_request");
    for bad in [
        "/users",
        "/users?id=not-a-uuid",
        "/users?username=a&id=b",
        "/users?username=a&username=b",
        "/users?email=a%40example.com",
        "/users?id=%zz",
    ] {
        call(&server, "GET", bad, &alice.token).expect_error_for(bad, 400, "bad_request");
    }
}

#[test]
fn lookups_by_username_are_rate_limited_per_address() {
    let server = Server::start_with_args(&["--lookup-rate", "3"]);
    let alice = server.user("ratelimited");
    let path = format!("/users?username={}", alice.name);
    for _ in 0..3 {
        call(&server, "GET", &path, &alice.token).expect(200);
    }
    let limited = call(&server, "GET", &path, &alice.token);
    limited.expect_error(429, "rate_limited");
    let wait: u64 = limited
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    // Lookups by id enumerate nothing (ids are random) and are not counted.
    let by_id = format!("/users?id={}", alice.id);
    call(&server, "GET", &by_id, &alice.token).expect(200);
}

#[test]
fn a_password_change_ends_every_older_login_token() {
    let server = Server::start();
    let alice = server.user("pw");
    let second = server.login(&alice.name, PASSWORD);
    let change = |token: &str, password: &str, new_password: &str| {
        server.put(
            "/users/me/password",
            Some(token),
            &json!({"password": password, "new_password": new_password}),
        )
    };
    change(&alice.token, "wrong", "1111").expect_error(401, "unauthorized");
    change(&alice.token, PASSWORD, "").expect_error(400, "bad_request");
    server
        .put(
            "/users/me/password",
            Some(&alice.token),
            &json!({"password": PASSWORD}),
        )
        .expect_error(400, "bad_request");
    let answer = change(&alice.token, PASSWORD, "1111").expect(200);
    assert_keys(&answer, &["token"]);
    let fresh = answer["token"].as_str().unwrap().to_string();
    for old in [&alice.token, &second] {
        call(&server, "GET", "/users/me", old).expect_error(401, "unauthorized");
        server
            .session_response(old, &session_body())
            .expect_error(401, "unauthorized");
    }
    call(&server, "GET", "/users/me", &fresh).expect(200);
    server
        .login_response(&json!({"username": alice.name, "password": PASSWORD}))
        .expect_error(401, "unauthorized");
    let again = server.login(&alice.name, "1111");
    call(&server, "GET", "/users/me", &again).expect(200);
}

#[test]
fn logout_ends_only_the_token_used_even_across_a_kill() {
    let server = Server::start();
    let alice = server.user("logout");
    let other = server.login(&alice.name, PASSWORD);
    assert_ne!(other, alice.token);
    let answer = call(&server, "POST", "/logout", &alice.token);
    assert_eq!(answer.status, 204, "{answer:?}");
    assert!(answer.body.is_empty(), "a 204 has no body");
    call(&server, "GET", "/users/me", &alice.token).expect_error(401, "unauthorized");
    call(&server, "POST", "/logout", &alice.token).expect_error(401, "unauthorized");
    call(&server, "GET", "/users/me", &other).expect(200);
    let server = server.restart();
    call(&server, "GET", "/users/me", &alice.token).expect_error(401, "unauthorized");
    call(&server, "GET", "/users/me", &other).expect(200);
}
