//! Devices (issue #19): `GET /sessions`, `DELETE /sessions/{id}` (a lost device revoked while
//! connected: closed with 4001, its token refused, across a `kill -9`), `POST /logout/all`, and
//! `--max-sessions-per-user`.

use tungstenite::protocol::frame::coding::CloseCode;

use crate::support::ws::ConnectError;
use crate::support::*;
use crate::users::call;

const REVOKED: CloseCode = CloseCode::Library(4001);

/// A new session of `user`: its id and messaging URL.
fn open(server: &Server, user: &User) -> (String, String) {
    let body = server.open_session(&user.token);
    let url = body["messaging_url"].as_str().unwrap().to_string();
    (body["id"].as_str().unwrap().to_string(), url)
}

fn sessions(server: &Server, user: &User) -> Vec<Value> {
    let body = call(server, "GET", "/sessions", &user.token).expect(200);
    assert_keys(&body, &["sessions"]);
    body["sessions"].as_array().expect("a list").clone()
}

#[track_caller]
fn assert_refused(url: &str) {
    match Ws::try_connect(url, "revoked") {
        Err(ConnectError::Status(401)) => {}
        Err(other) => panic!("expected 401 at the upgrade, got {other:?}"),
        Ok(_) => panic!("a revoked session's token opened a WebSocket"),
    }
}

#[test]
fn sessions_lists_the_callers_own_devices() {
    let server = Server::start();
    let alice = server.user("list_a");
    let bob = server.user("list_b");
    assert_eq!(sessions(&server, &alice), Vec::<Value>::new());
    let (first, url) = open(&server, &alice);
    let (second, _) = open(&server, &alice);
    open(&server, &bob);
    let listed = sessions(&server, &alice);
    let ids: Vec<&str> = listed.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [first.as_str(), second.as_str()]);
    for session in &listed {
        assert_keys(
            session,
            &[
                "id",
                "device_id",
                "platform",
                "model",
                "build",
                "name",
                "created_at",
                "last_seen",
                "online",
            ],
        );
        assert_eq!(session["device_id"], "0000");
        assert_eq!(session["platform"], "web");
        assert_eq!(session["model"], "chrome");
        assert_eq!(session["build"], 1);
        assert_eq!(session["name"], "ievgen-pc");
        assert_ms(&session["created_at"]);
        assert_eq!(session["last_seen"], Value::Null, "never connected");
        assert_eq!(session["online"], false);
    }
    let before = now_ms();
    let mut ws = Ws::connect(&url, "alice");
    ws.barrier();
    let listed = sessions(&server, &alice);
    assert_eq!(listed[0]["online"], true);
    assert!(assert_ms(&listed[0]["last_seen"]) >= before);
    assert_eq!(listed[1]["online"], false);
    let closing = now_ms();
    ws.close_with(CloseCode::Normal);
    let deadline = std::time::Instant::now() + DEADLINE;
    let listed = loop {
        let listed = sessions(&server, &alice);
        if listed[0]["online"] == false || std::time::Instant::now() > deadline {
            break listed;
        }
    };
    assert_eq!(listed[0]["online"], false, "closed: {listed:?}");
    let last_seen = assert_ms(&listed[0]["last_seen"]);
    assert!(
        last_seen >= closing,
        "last_seen {last_seen} is when it closed"
    );
    server.get("/sessions").expect_error(401, "unauthorized");
    // Stored: the same after a kill -9.
    let server = server.restart();
    let listed = sessions(&server, &alice);
    assert_eq!(listed[0]["last_seen"], last_seen);
    assert_eq!(listed[1]["last_seen"], Value::Null);
}

#[test]
fn a_lost_device_revoked_while_connected_is_closed_and_stays_out_after_a_kill() {
    let server = Server::start();
    let alice = server.user("lost");
    let bob = server.user("lost_b");
    let group = server.create_group(&alice, "g", &[&bob]);
    let (lost, lost_url) = open(&server, &alice);
    let (_, kept_url) = open(&server, &alice);
    let mut phone = Ws::connect(&lost_url, "phone");
    let mut phone2 = Ws::connect(&lost_url, "phone-again");
    let mut laptop = Ws::connect(&kept_url, "laptop");
    let mut bob_ws = server.connect(&bob);
    let path = format!("/sessions/{lost}");
    let answer = call(&server, "DELETE", &path, &alice.token);
    assert_eq!(answer.status, 204, "{answer:?}");
    assert_eq!(phone.expect_close(), Some(REVOKED));
    assert_eq!(phone2.expect_close(), Some(REVOKED));
    assert_refused(&lost_url);
    // The other session goes on.
    bob_ws.send_and_ack(&group, "still here?");
    laptop.expect(20);
    assert_eq!(sessions(&server, &alice).len(), 1);
    call(&server, "DELETE", &path, &alice.token).expect_error(404, "not_found");
    let server = server.restart();
    let lost_url = server.ws_url(url_token(&lost_url));
    assert_refused(&lost_url);
    let kept = Ws::try_connect(&server.ws_url(url_token(&kept_url)), "laptop");
    assert!(kept.is_ok(), "the kept session connects after the restart");
}

#[test]
fn another_users_session_is_unknown() {
    let server = Server::start();
    let alice = server.user("mine");
    let eve = server.user("eve");
    let (session, url) = open(&server, &alice);
    let path = format!("/sessions/{session}");
    call(&server, "DELETE", &path, &eve.token).expect_error(404, "not_found");
    let unknown = format!("/sessions/{}", random_uuid());
    call(&server, "DELETE", &unknown, &alice.token).expect_error(404, "not_found");
    call(&server, "DELETE", "/sessions/nope", &alice.token).expect_error(400, "bad_request");
    server
        .http()
        .request("DELETE", &path, &[], None)
        .expect_error(401, "unauthorized");
    Ws::connect(&url, "still alice's");
}

#[test]
fn logout_all_ends_every_token_and_socket_of_the_user() {
    let server = Server::start();
    let alice = server.user("all");
    let bob = server.user("all_b");
    let other_token = server.login(&alice.name, PASSWORD);
    let (_, url_a) = open(&server, &alice);
    let (_, url_b) = open(&server, &alice);
    let mut a = Ws::connect(&url_a, "a");
    let mut b = Ws::connect(&url_b, "b");
    let mut bob_ws = server.connect(&bob);
    let answer = call(&server, "POST", "/logout/all", &other_token);
    assert_eq!(answer.status, 204, "{answer:?}");
    assert_eq!(a.expect_close(), Some(REVOKED));
    assert_eq!(b.expect_close(), Some(REVOKED));
    for token in [&alice.token, &other_token] {
        call(&server, "GET", "/users/me", token).expect_error(401, "unauthorized");
    }
    assert_refused(&url_a);
    assert_refused(&url_b);
    bob_ws.barrier();
    call(&server, "GET", "/users/me", &bob.token).expect(200);
    let fresh = server.login(&alice.name, PASSWORD);
    let body = call(&server, "GET", "/sessions", &fresh).expect(200);
    assert_eq!(body["sessions"], json!([]));
    let server = server.restart();
    call(&server, "GET", "/users/me", &other_token).expect_error(401, "unauthorized");
    assert_refused(&server.ws_url(url_token(&url_a)));
    call(&server, "GET", "/users/me", &fresh).expect(200);
}

#[test]
fn sessions_per_user_are_capped() {
    let server = Server::start_with_args(&["--max-sessions-per-user", "2"]);
    let alice = server.user("cap");
    let (first, _) = open(&server, &alice);
    open(&server, &alice);
    server
        .session_response(&alice.token, &session_body())
        .expect_error(403, "limit_reached");
    let path = format!("/sessions/{first}");
    assert_eq!(call(&server, "DELETE", &path, &alice.token).status, 204);
    open(&server, &alice);
}
