//! Presence (issue #20): event 50 to those who share a group with a user when the user's first
//! WebSocket opens, and 5 s after the last one closed, never for a quick reconnect; none with
//! `--presence off`; `online` and `last_seen` in the user lookups only for users sharing a
//! group, surviving a restart.

use std::time::{Duration, Instant};

use tungstenite::protocol::frame::coding::CloseCode;

use crate::support::*;

/// `server.connect(user)`, passing presence events on (the harness skips them elsewhere).
fn connect(server: &Server, user: &User) -> Ws {
    let mut ws = server.connect(user);
    ws.presence = true;
    ws
}

/// How long the server waits before announcing a user offline.
const OFFLINE_AFTER: Duration = Duration::from_secs(5);

/// The next event 50 about `user`, by `deadline`, or `None`; anything else arriving is an error.
fn presence_before(ws: &mut Ws, deadline: Instant) -> Option<Value> {
    let event = ws.next_event_before(deadline)?;
    assert_eq!(ty(&event), 50, "only presence is expected here: {event}");
    assert!(event.get("seq").is_none(), "presence is transient: {event}");
    assert_ms(&event["timestamp"]);
    Some(event)
}

#[track_caller]
fn expect_presence(ws: &mut Ws, user: &User, online: bool) -> u64 {
    let event = presence_before(ws, Instant::now() + DEADLINE)
        .unwrap_or_else(|| panic!("no presence event for {} within {DEADLINE:?}", user.name));
    assert_keys(&event["body"], &["user_id", "online", "last_seen"]);
    assert_eq!(event["body"]["user_id"], user.id.as_str(), "{event}");
    assert_eq!(event["body"]["online"], online, "{event}");
    assert_ms(&event["body"]["last_seen"])
}

#[test]
fn online_at_the_first_socket_and_offline_five_seconds_after_the_last_closes() {
    let server = Server::start();
    let [alice, bob, carol] = ["alice", "bob", "carol"].map(|n| server.user(n));
    server.create_group(&alice, "around", &[&bob]);
    // A second group with bob too: bob is still told once.
    server.create_group(&bob, "twice", &[&alice]);
    server.create_group(&carol, "elsewhere", &[]);
    let mut ws_b = connect(&server, &bob);
    let mut ws_c = connect(&server, &carol);
    let before = now_ms();
    let mut ws_a1 = connect(&server, &alice);
    let online_seen = expect_presence(&mut ws_b, &alice, true);
    assert!(online_seen >= before, "{online_seen} >= {before}");
    // A second socket of alice's: nothing; nor does carol, who shares no group, hear anything.
    let mut ws_a2 = connect(&server, &alice);
    ws_b.assert_quiet();
    ws_c.assert_quiet();
    // alice is told about bob? bob connected first, when alice was away: nothing to alice.
    ws_a1.assert_quiet();
    ws_a2.close_with(CloseCode::Normal);
    let closing = Instant::now();
    let closed_at = now_ms();
    ws_a1.close_with(CloseCode::Normal);
    let offline_seen = expect_presence(&mut ws_b, &alice, false);
    assert!(
        closing.elapsed() >= OFFLINE_AFTER,
        "offline after {:?}, before the debounce",
        closing.elapsed()
    );
    assert!(offline_seen >= closed_at, "{offline_seen} >= {closed_at}");
    ws_b.assert_quiet();
    ws_c.assert_quiet();
}

#[test]
fn a_quick_reconnect_sends_nothing() {
    let server = Server::start();
    let [alice, bob] = ["alice", "bob"].map(|n| server.user(n));
    server.create_group(&alice, "flaky", &[&bob]);
    let mut ws_b = connect(&server, &bob);
    let mut ws_a = connect(&server, &alice);
    expect_presence(&mut ws_b, &alice, true);
    let closing = Instant::now();
    ws_a.close_with(CloseCode::Normal);
    let mut ws_a = connect(&server, &alice);
    assert!(
        closing.elapsed() < Duration::from_secs(3),
        "reconnected quickly"
    );
    // Past the debounce (and a sweep), still nothing: alice never looked offline.
    let quiet_until = closing + OFFLINE_AFTER + Duration::from_secs(2);
    assert_eq!(presence_before(&mut ws_b, quiet_until), None);
    // Closed for good, the offline event does come.
    ws_a.close_with(CloseCode::Normal);
    expect_presence(&mut ws_b, &alice, false);
}

#[test]
fn presence_off_sends_nothing_and_shows_no_fields() {
    let server = Server::start_with_args(&["--presence", "off"]);
    let [alice, bob] = ["alice", "bob"].map(|n| server.user(n));
    server.create_group(&alice, "private", &[&bob]);
    let mut ws_b = connect(&server, &bob);
    let ws_a = connect(&server, &alice);
    ws_b.assert_quiet();
    let answer = server.http().request(
        "GET",
        &format!("/users/{}", alice.id),
        &[("Authorization", &format!("Bearer {}", bob.token))],
        None,
    );
    assert_eq!(
        answer.expect(200),
        json!({"id": alice.id, "username": alice.name})
    );
    drop(ws_a);
    let quiet_until = Instant::now() + OFFLINE_AFTER + Duration::from_secs(2);
    assert_eq!(presence_before(&mut ws_b, quiet_until), None);
}

/// `GET path` as `user`.
fn get_as(server: &Server, user: &User, path: &str) -> Value {
    let auth = format!("Bearer {}", user.token);
    server
        .http()
        .request("GET", path, &[("Authorization", auth.as_str())], None)
        .expect(200)
}

#[test]
fn lookups_show_online_and_last_seen_only_to_users_sharing_a_group() {
    let server = Server::start();
    let [alice, bob, carol, dave] = ["alice", "bob", "carol", "dave"].map(|n| server.user(n));
    server.create_group(&alice, "known", &[&bob, &dave]);
    let by_id = |viewer: &User, of: &User| get_as(&server, viewer, &format!("/users/{}", of.id));
    let listed = |viewer: &User, of: &User| {
        let by_ids = get_as(&server, viewer, &format!("/users?id={}", of.id));
        let by_name = get_as(&server, viewer, &format!("/users?username={}", of.name));
        assert_eq!(by_ids, by_name);
        assert_eq!(by_ids["users"].as_array().unwrap().len(), 1, "{by_ids}");
        by_ids["users"][0].clone()
    };
    // Never connected: offline, never seen.
    let never = json!({"id": alice.id, "username": alice.name, "online": false, "last_seen": null});
    assert_eq!(by_id(&bob, &alice), never);
    assert_eq!(listed(&bob, &alice), never);
    // carol shares no group with alice: no fields.
    let public = json!({"id": alice.id, "username": alice.name});
    assert_eq!(by_id(&carol, &alice), public);
    assert_eq!(listed(&carol, &alice), public);

    let mut ws_d = connect(&server, &dave);
    let before = now_ms();
    let mut ws_a = connect(&server, &alice);
    let seen = expect_presence(&mut ws_d, &alice, true);
    assert!(seen >= before);
    let online = json!({"id": alice.id, "username": alice.name, "online": true, "last_seen": seen});
    assert_eq!(by_id(&bob, &alice), online);
    assert_eq!(listed(&bob, &alice), online);
    assert_eq!(by_id(&carol, &alice), public);
    ws_a.close_with(CloseCode::Normal);
    let left = expect_presence(&mut ws_d, &alice, false);
    let offline =
        json!({"id": alice.id, "username": alice.name, "online": false, "last_seen": left});
    assert_eq!(by_id(&bob, &alice), offline);
    drop(ws_d);
    // The last_seen survives a restart.
    let server = server.restart();
    let auth = format!("Bearer {}", bob.token);
    let answer = server.http().request(
        "GET",
        &format!("/users/{}", alice.id),
        &[("Authorization", auth.as_str())],
        None,
    );
    assert_eq!(answer.expect(200), offline);
}
