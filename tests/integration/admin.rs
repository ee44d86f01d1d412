//! The operator's admin API (issue #19): off without a token; with one, loopback and the admin
//! token only; look up, suspend (4003) and unsuspend, delete an account, revoke its sessions;
//! every action logged.

use tungstenite::protocol::frame::coding::CloseCode;

use crate::support::ws::ConnectError;
use crate::support::*;
use crate::users::call;

const ADMIN: &str = "an-admin-token-of-at-least-32-characters";
const SUSPENDED: CloseCode = CloseCode::Library(4003);
const REVOKED: CloseCode = CloseCode::Library(4001);

fn admin_server() -> Server {
    Server::start_with(&[], &[("PARLEY_ADMIN_TOKEN", ADMIN)])
}

fn admin(server: &Server, method: &str, path: &str) -> Response {
    call(server, method, path, ADMIN)
}

#[track_caller]
fn assert_upgrade_refused(url: &str, status: u16) {
    match Ws::try_connect(url, "refused") {
        Err(ConnectError::Status(got)) if got == status => {}
        Err(other) => panic!("expected {status} at the upgrade, got {other:?}"),
        Ok(_) => panic!("the upgrade was accepted"),
    }
}

#[track_caller]
fn assert_logged(server: &Server, line: &str) {
    let deadline = std::time::Instant::now() + DEADLINE;
    while !server.stderr().iter().any(|l| l.contains(line)) {
        assert!(
            std::time::Instant::now() < deadline,
            "`{line}` not logged: {:?}",
            server.stderr()
        );
        std::thread::yield_now();
    }
}

#[test]
fn a_short_admin_token_refuses_to_start() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_parley"))
        .args(["--listen", "127.0.0.1:0", "--admin-token", "short"])
        .output()
        .expect("run parley");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("at least 32 characters"), "{stderr}");
}

#[test]
fn the_admin_api_is_off_without_a_token_and_needs_it_with_one() {
    let server = Server::start();
    let alice = server.user("noadmin");
    for (method, path) in [
        ("GET", format!("/admin/users?username={}", alice.name)),
        ("POST", format!("/admin/users/{}/suspend", alice.id)),
        ("DELETE", format!("/admin/users/{}", alice.id)),
        ("GET", format!("/admin/users/{}", alice.id)),
    ] {
        call(&server, method, &path, ADMIN).expect_error_for(&path, 404, "not_found");
    }
    drop(server);

    let server = admin_server();
    let alice = server.user("adm_auth");
    let path = format!("/admin/users?username={}", alice.name);
    server.get(&path).expect_error(401, "unauthorized");
    call(
        &server,
        "GET",
        &path,
        "an-admin-token-of-at-least-32-characterz",
    )
    .expect_error(401, "unauthorized");
    call(&server, "GET", &path, &alice.token).expect_error(401, "unauthorized");
    let found = admin(&server, "GET", &path).expect(200);
    assert_keys(
        &found,
        &["id", "username", "email", "created_at", "suspended"],
    );
    assert_eq!(found["id"], alice.id.as_str());
    assert_eq!(found["email"], alice.email.as_str());
    assert_eq!(found["suspended"], false);
    admin(&server, "GET", "/admin/users?username=nobody").expect_error(404, "not_found");
    admin(&server, "GET", "/admin/users").expect_error(400, "bad_request");
    admin(&server, "POST", "/admin/users").expect_error(405, "method_not_allowed");
    let unknown = format!("/admin/users/{}/suspend", random_uuid());
    admin(&server, "POST", &unknown).expect_error(404, "not_found");
    admin(&server, "POST", "/admin/users/nope/suspend").expect_error(400, "bad_request");
    assert_logged(&server, &format!("admin: looked up user {}", alice.id));
}

#[test]
fn a_suspended_user_is_closed_out_and_let_back_in() {
    let server = admin_server();
    let alice = server.user("susp");
    let bob = server.user("susp_b");
    let group = server.create_group(&bob, "g", &[&alice]);
    let url = server.messaging_url(&alice.token);
    let mut ws = Ws::connect(&url, "alice");
    let mut bob_ws = server.connect(&bob);
    bob_ws.send_and_ack(&group, "before");
    ws.expect(20);
    let path = format!("/admin/users/{}/suspend", alice.id);
    assert_eq!(admin(&server, "POST", &path).status, 204);
    assert_eq!(ws.expect_close(), Some(SUSPENDED));
    assert_logged(&server, &format!("admin: suspended user {}", alice.id));
    call(&server, "GET", "/users/me", &alice.token).expect_error(403, "forbidden");
    server
        .login_response(&json!({"username": alice.name, "password": PASSWORD}))
        .expect_error(403, "forbidden");
    assert_upgrade_refused(&url, 403);
    let lookup = format!("/admin/users?username={}", alice.name);
    assert_eq!(
        admin(&server, "GET", &lookup).expect(200)["suspended"],
        true
    );
    bob_ws.send_and_ack(&group, "while suspended");
    let path = format!("/admin/users/{}/unsuspend", alice.id);
    assert_eq!(admin(&server, "POST", &path).status, 204);
    call(&server, "GET", "/users/me", &alice.token).expect(200);
    let mut ws = Ws::connect(&url, "alice again");
    let messages: Vec<Value> = ws
        .sync_all(None)
        .into_iter()
        .filter(|e| ty(e) == 20)
        .collect();
    let data: Vec<&str> = messages
        .iter()
        .map(|m| m["body"]["data"].as_str().unwrap())
        .collect();
    assert_eq!(data, ["before", "while suspended"], "messages kept");
}

#[test]
fn a_deleted_account_frees_its_names_and_keeps_its_messages() {
    let server = admin_server();
    let alice = server.user("del");
    let bob = server.user("del_b");
    let group = server.create_group(&bob, "g", &[&alice]);
    let owned = server.create_group(&alice, "hers", &[&bob]);
    let url = server.messaging_url(&alice.token);
    let mut ws = Ws::connect(&url, "alice");
    let ack = ws.send_and_ack(&group, "mine");
    let path = format!("/admin/users/{}", alice.id);
    assert_eq!(admin(&server, "DELETE", &path).status, 204);
    assert_eq!(ws.expect_close(), Some(SUSPENDED));
    assert_logged(&server, &format!("admin: deleted user {}", alice.id));
    call(&server, "GET", "/users/me", &alice.token).expect_error(401, "unauthorized");
    assert_upgrade_refused(&url, 401);
    let by_id = format!("/users/{}", alice.id);
    call(&server, "GET", &by_id, &bob.token).expect_error(404, "not_found");
    admin(&server, "DELETE", &path).expect_error(404, "not_found");
    // The names are free again, for a new account with a new id.
    let again = server
        .register_response(&alice.name, &alice.email, PASSWORD)
        .expect(201);
    assert_ne!(again["id"], alice.id.as_str());
    // Bob still has alice's message, under her id.
    let mut bob_ws = server.connect(&bob);
    let events = bob_ws.sync_all(None);
    let messages: Vec<&Value> = events.iter().filter(|e| ty(e) == 20).collect();
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(messages[0]["body"]["user_id"], alice.id.as_str());
    assert_eq!(messages[0]["body"]["message_id"], ack["body"]["message_id"]);
    // She left both groups (no deleted account stays listed as a member), and the one she
    // owned passed to bob.
    let mut left: Vec<(&str, &str)> = events
        .iter()
        .filter(|e| ty(e) == 73)
        .map(|e| {
            let body = &e["body"];
            (
                body["group_id"].as_str().unwrap(),
                body["user_id"].as_str().unwrap(),
            )
        })
        .collect();
    left.sort_unstable();
    let mut expected = [
        (group.as_str(), alice.id.as_str()),
        (owned.as_str(), alice.id.as_str()),
    ];
    expected.sort_unstable();
    assert_eq!(left, expected);
    let handed: Vec<&Value> = events.iter().filter(|e| ty(e) == 74).collect();
    assert_eq!(handed.len(), 1, "{handed:?}");
    assert_eq!(handed[0]["body"]["group_id"], owned.as_str());
    assert_eq!(handed[0]["body"]["owner"], bob.id.as_str());
}

#[test]
fn the_operator_revokes_a_users_sessions() {
    let server = admin_server();
    let alice = server.user("revall");
    let url_a = server.messaging_url(&alice.token);
    let url_b = server.messaging_url(&alice.token);
    let mut a = Ws::connect(&url_a, "a");
    let mut b = Ws::connect(&url_b, "b");
    let path = format!("/admin/users/{}/sessions", alice.id);
    assert_eq!(admin(&server, "DELETE", &path).status, 204);
    assert_eq!(a.expect_close(), Some(REVOKED));
    assert_eq!(b.expect_close(), Some(REVOKED));
    assert_upgrade_refused(&url_a, 401);
    assert_upgrade_refused(&url_b, 401);
    assert_logged(
        &server,
        &format!("admin: revoked the sessions of user {}", alice.id),
    );
    let server = server.restart();
    assert_upgrade_refused(&server.ws_url(url_token(&url_a)), 401);
}
