//! The user's seed walkthrough (shared/seed-walkthrough.txt), request by request and event by
//! event, with two users. The only departure from the literal text: the emails are valid ones
//! (the literal `[email protected]` must get a 400, see `accounts`).

use crate::support::jwt;
use crate::support::*;

/// What the walkthrough leaves behind, for the tests that continue from it.
struct Walkthrough {
    user1: String,
    user2: String,
    token1: String,
    token2: String,
    group: String,
    /// Live events each user's connection received (sync answers and barriers excluded).
    live1: Vec<Value>,
    live2: Vec<Value>,
}

/// Runs the walkthrough on `server`, asserting every answer and event on the way.
fn walkthrough(server: &Server) -> Walkthrough {
    // ---- POST /users, twice ----
    let name1 = unique("user1");
    let name2 = unique("user2");
    let email1 = format!("{name1}@example.com");
    let email2 = format!("{name2}@example.com");
    let user1 = {
        let body = server
            .register_response(&name1, &email1, "0000")
            .expect(201);
        assert_keys(&body, &["id"]);
        assert_uuid(&body["id"])
    };
    let user2 = {
        let body = server
            .register_response(&name2, &email2, "0000")
            .expect(201);
        assert_keys(&body, &["id"]);
        assert_uuid(&body["id"])
    };
    assert_ne!(user1, user2);

    // ---- POST /login, with username, email and password as the walkthrough sends them ----
    let login = |name: &str, email: &str, id: &str| {
        let body = server
            .login_response(&json!({"username": name, "email": email, "password": "0000"}))
            .expect(200);
        assert_keys(&body, &["token", "user_id"]);
        assert_eq!(body["user_id"], id, "login's user_id");
        let token = body["token"]
            .as_str()
            .expect("token is a string")
            .to_string();
        assert_eq!(jwt::header(&token)["alg"], "HS256", "token header");
        let claims = jwt::claims(&token);
        assert_eq!(claims["user_id"], id, "token claims: {claims}");
        token
    };
    let token1 = login(&name1, &email1, &user1);
    let token2 = login(&name2, &email2, &user2);

    // ---- POST /sessions, with the lower-case `bearer` scheme of the curl commands ----
    let open_session = |token: &str| {
        let auth = format!("bearer {token}");
        let body = session_body().to_string();
        let answer = server.http().request(
            "POST",
            "/sessions",
            &[
                ("authorization", auth.as_str()),
                ("content-type", "application/json"),
            ],
            Some(body.as_bytes()),
        );
        let s = answer.expect(201);
        assert_keys(&s, &["created_at", "id", "messaging_url"]);
        let created = assert_ms(&s["created_at"]);
        assert!(
            created.abs_diff(now_ms()) < 60_000,
            "created_at {created} is not now"
        );
        let session_id = assert_uuid(&s["id"]);
        let url = s["messaging_url"]
            .as_str()
            .expect("messaging_url is a string")
            .to_string();
        let access = url_token(&url).to_string();
        assert_eq!(
            url,
            format!("ws://{}/{}", server.addr, access),
            "messaging_url is built from Host"
        );
        assert_eq!(
            access.len(),
            64,
            "access token is 64 hex characters: {access}"
        );
        assert!(
            access.bytes().all(|b| b.is_ascii_hexdigit()),
            "access token is hex: {access}"
        );
        assert_ne!(
            access, session_id,
            "access token is distinct from the session id"
        );
        url
    };
    let url1 = open_session(&token1);
    let url2 = open_session(&token2);
    assert_ne!(url1, url2);

    // ---- connect, then sync with a top-level timestamp ----
    let mut ws1 = Ws::connect(&url1, "user1");
    let mut ws2 = Ws::connect(&url2, "user2");
    for ws in [&mut ws1, &mut ws2] {
        let t = now_ms();
        let (events, done) = ws.sync_raw(json!({"method": 20, "timestamp": t}));
        assert!(
            events.is_empty(),
            "{}: nothing happened yet:\n{}",
            ws.name,
            show(&events)
        );
        assert_eq!(
            done,
            json!({"timestamp": t, "seq": 0, "more": false}),
            "{}: sync of nothing",
            ws.name
        );
    }
    ws1.log.clear();
    ws2.log.clear();

    // ---- POST /groups with user2 in user_ids ----
    let group = {
        let auth = format!("bearer {token1}");
        let body = json!({"name": "group_1", "user_ids": [user2]}).to_string();
        let answer = server.http().request(
            "POST",
            "/groups",
            &[
                ("authorization", auth.as_str()),
                ("content-type", "application/json"),
            ],
            Some(body.as_bytes()),
        );
        let body = answer.expect(201);
        assert_keys(&body, &["id"]);
        assert_uuid(&body["id"])
    };
    // Both get event 70; the creator is appended last.
    for ws in [&mut ws1, &mut ws2] {
        let ev = ws.expect(70);
        assert!(ev["id"].is_null(), "{}: no client id on 70: {ev}", ws.name);
        assert_eq!(
            ev["body"],
            json!({"group_id": group, "name": "group_1", "owner": user1, "user_ids": [user2, user1]}),
            "{}: group created",
            ws.name
        );
    }

    // ---- user1 sends a message ----
    ws1.send_json(
        &json!({"method": 40, "body": {"group_id": group, "data": "Hello, how are you?"}}),
    );
    let ack = ws1.expect(21);
    let message_id = assert_ack(&ack, None);
    let message = ws2.expect(20);
    assert!(
        message["id"].is_null(),
        "no client id on a message event: {message}"
    );
    assert_eq!(
        message["body"],
        json!({"message_id": message_id, "data": "Hello, how are you?", "group_id": group, "user_id": user1}),
        "user2 gets the message"
    );

    // ---- user2: delivered, then read ----
    ws2.send_json(&json!({"method": 41, "body": {"message_id": message_id}}));
    let delivered = ws1.expect(22);
    assert_eq!(
        delivered["body"],
        json!({"message_id": message_id, "group_id": group, "user_id": user2}),
        "user1 gets delivered"
    );
    ws2.send_json(&json!({"method": 42, "body": {"message_id": message_id}}));
    let read = ws1.expect(23);
    assert_eq!(
        read["body"],
        json!({"message_id": message_id, "group_id": group, "user_id": user2}),
        "user1 gets read"
    );

    // ---- user2: typing start, typing end ----
    ws2.send_json(&json!({"method": 60, "body": {"group_id": group}}));
    ws2.send_json(&json!({"method": 61, "body": {"group_id": group}}));
    let start = ws1.expect(40);
    assert_eq!(
        start["body"],
        json!({"group_id": group, "user_id": user2}),
        "typing start"
    );
    let end = ws1.expect(41);
    assert_eq!(
        end["body"],
        json!({"group_id": group, "user_id": user2}),
        "typing end"
    );

    // ---- user1 leaves: PUT /groups/{id}/left with its own user_id ----
    let left = server.put(
        &format!("/groups/{group}/left"),
        Some(&token1),
        &json!({"user_id": user1}),
    );
    let body = left.expect(200);
    assert_eq!(
        body,
        json!({"group_id": group, "name": "group_1", "owner": user2, "user_ids": [user2]}),
        "left answer: the owner left, user2 (the only member) owns the group"
    );
    let ev = ws2.expect(73);
    assert_eq!(
        ev["body"],
        json!({"group_id": group, "user_id": user1}),
        "user2 sees user1 leave"
    );
    let ev = ws1.expect(73);
    assert_eq!(
        ev["body"],
        json!({"group_id": group, "user_id": user1}),
        "user1 sees itself leave"
    );
    // user1 was the owner (the creator): user2 takes over; a client of the walkthrough skips 74.
    let ev = ws2.expect(74);
    assert_eq!(
        ev["body"],
        json!({"group_id": group, "name": "group_1", "owner": user2}),
        "user2 now owns the group"
    );

    // ---- user1 joins again: PUT /groups/{id}/join ----
    let joined = server.put(
        &format!("/groups/{group}/join"),
        Some(&token1),
        &json!({"user_id": user1}),
    );
    let body = joined.expect(200);
    let members = assert_group_answer(&body, &group, "group_1");
    assert_eq!(
        id_set(&body["user_ids"]),
        set_of(&[&user1, &user2]),
        "join answer members: {members:?}"
    );
    let ev = ws1.expect(70);
    assert_keys(&ev["body"], &["group_id", "name", "owner", "user_ids"]);
    assert_eq!(ev["body"]["owner"], user2.as_str(), "70 on join: {ev}");
    assert_eq!(ev["body"]["group_id"], group);
    assert_eq!(ev["body"]["name"], "group_1");
    assert_eq!(
        id_set(&ev["body"]["user_ids"]),
        set_of(&[&user1, &user2]),
        "70 on join: {ev}"
    );
    let ev = ws1.expect(72);
    assert_eq!(
        ev["body"],
        json!({"group_id": group, "user_id": user1}),
        "user1 sees itself join"
    );
    let ev = ws2.expect(72);
    assert_eq!(
        ev["body"],
        json!({"group_id": group, "user_id": user1}),
        "user2 sees user1 join"
    );

    // ---- nothing else arrived: no echo of one's own typing or receipts, no stray events ----
    let live1 = ws1.log.clone();
    let live2 = ws2.log.clone();
    ws1.assert_quiet();
    ws2.assert_quiet();
    assert_strictly_increasing(&live1);
    assert_strictly_increasing(&live2);
    assert_eq!(types(&live1), vec![70, 21, 22, 23, 40, 41, 73, 70, 72]);
    assert_eq!(types(&live2), vec![70, 20, 73, 74, 72]);

    Walkthrough {
        user1,
        user2,
        token1,
        token2,
        group,
        live1,
        live2,
    }
}

#[test]
fn walkthrough_end_to_end() {
    let server = Server::start();
    walkthrough(&server);
}

/// After the walkthrough, a new device of each user syncs from the beginning and gets exactly
/// the stored events: what that user's connections received live, typing aside, plus what a
/// second device would have received (user1's own message 20, user2's receipts 22/23).
#[test]
fn walkthrough_history_replays_on_sync() {
    let server = Server::start();
    let w = walkthrough(&server);
    let find = |log: &[Value], t: u64| -> Vec<Value> {
        log.iter().filter(|e| ty(e) == t).cloned().collect()
    };

    // user1: 70, 20 (own message), 21, 22, 23, 73, 70 (on join), 72. Not 40/41.
    let message = find(&w.live2, 20)[0].clone();
    let mut expected1: Vec<Value> = w
        .live1
        .iter()
        .filter(|e| ![40, 41].contains(&ty(e)))
        .cloned()
        .collect();
    expected1.push(message);
    // user2: 70, 20, 22, 23 (its own receipts, which its other devices must learn), 73, 74, 72.
    let mut expected2 = w.live2.clone();
    expected2.extend(find(&w.live1, 22));
    expected2.extend(find(&w.live1, 23));

    for (token, expected, who) in [
        (&w.token1, expected1, "user1"),
        (&w.token2, expected2, "user2"),
    ] {
        let mut ws = Ws::connect(&server.messaging_url(token), &format!("{who} device 2"));
        let (events, done) = ws.sync_raw(json!({"method": 20}));
        let mut got: Vec<_> = events.iter().map(ident).collect();
        let mut want: Vec<_> = expected.iter().map(ident).collect();
        // Compare as sets first (clearer failure), then the order.
        got.sort_by_key(|e| (e.1, e.0));
        want.sort_by_key(|e| (e.1, e.0));
        assert_eq!(
            got,
            want,
            "{who}: sync from the beginning returns the stored events;\ngot:\n{}",
            show(&events)
        );
        assert_strictly_increasing(&events);
        let last = events.last().unwrap();
        assert_eq!(
            done,
            json!({"timestamp": ts(last), "seq": seq(last), "more": false}),
            "{who}: sync complete"
        );
        ws.assert_quiet();
    }
    let _ = (&w.user1, &w.user2, &w.group);
}
