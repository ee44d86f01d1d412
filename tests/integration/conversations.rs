//! Conversations (issue #20): `GET /groups` and `GET /groups/{id}` with `last_message`,
//! `read_seq` and `unread`; method 43 and event 24; read receipts (42) and one's own sends moving
//! the marker; the counts the same on every device and after `kill -9`.

use crate::support::*;
use crate::users::call;

const VIEW_KEYS: [&str; 9] = [
    "id",
    "name",
    "owner",
    "user_ids",
    "created_at",
    "last_seq",
    "last_message",
    "read_seq",
    "unread",
];

/// `GET /groups` as `user`: the list, each view's keys checked.
#[track_caller]
fn groups(server: &Server, user: &User) -> Vec<Value> {
    let body = call(server, "GET", "/groups", &user.token).expect(200);
    assert_keys(&body, &["groups"]);
    let list = body["groups"].as_array().expect("groups is a list").clone();
    for view in &list {
        assert_keys(view, &VIEW_KEYS);
    }
    list
}

/// `GET /groups/{id}` as `user`.
#[track_caller]
fn view(server: &Server, user: &User, group: &str) -> Value {
    let view = call(server, "GET", &format!("/groups/{group}"), &user.token).expect(200);
    assert_keys(&view, &VIEW_KEYS);
    view
}

/// `(id, unread, read_seq)` of each group in the list, in its order.
fn counts(list: &[Value]) -> Vec<(String, u64, u64)> {
    list.iter()
        .map(|v| {
            let id = v["id"].as_str().unwrap().to_string();
            (
                id,
                v["unread"].as_u64().unwrap(),
                v["read_seq"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn read_up_to(ws: &mut Ws, group: &str, seq: u64, id: &str) {
    ws.send_json(&json!({"method": 43, "id": id, "body": {"group_id": group, "seq": seq}}));
}

/// A stored 24 for `user` in `group` at marker `seq`: its exact body.
#[track_caller]
fn assert_marker(ev: &Value, group: &str, user: &User, seq: u64) {
    assert_keys(&ev["body"], &["group_id", "user_id", "seq"]);
    assert_eq!(ev["body"]["group_id"], group, "{ev}");
    assert_eq!(ev["body"]["user_id"], user.id.as_str(), "{ev}");
    assert_eq!(ev["body"]["seq"], seq, "{ev}");
}

#[test]
fn a_second_device_sees_its_groups_with_unread_counts_without_a_sync() {
    let server = Server::start();
    let alice = server.user("alice");
    let bob = server.user("bob");
    let mut b = server.connect(&bob);
    let quiet = server.create_group(&alice, "quiet", &[&bob]);
    let busy = server.create_group(&alice, "busy", &[&bob]);
    b.expect(70);
    b.expect(70);
    let mut last = Value::Null;
    for text in ["one", "two", "three"] {
        b.send_message(&busy, text);
        b.expect(21);
        last = json!(text);
    }
    b.send_message(&quiet, "hello");
    let hello_ack = b.expect(21);
    // The quiet group had the newest message: first in the list.
    let list = groups(&server, &alice);
    assert_eq!(list.len(), 2, "{list:?}");
    assert_eq!(list[0]["id"], quiet.as_str());
    assert_eq!(list[1]["id"], busy.as_str());
    assert_eq!(list[0]["unread"], 1);
    assert_eq!(list[1]["unread"], 3);
    assert_eq!(list[0]["name"], "quiet");
    assert_eq!(list[0]["owner"], alice.id.as_str());
    assert_eq!(id_set(&list[0]["user_ids"]), set_of(&[&alice.id, &bob.id]));
    assert_ms(&list[0]["created_at"]);
    // The last message is the 20 exactly as the members got it; the ack came after it.
    let message = &list[0]["last_message"];
    assert_eq!(ty(message), 20, "{message}");
    assert_eq!(seq(message) + 1, seq(&hello_ack));
    assert_eq!(list[0]["last_seq"].as_u64(), Some(seq(&hello_ack)));
    assert_eq!(message["body"]["data"], "hello");
    assert_eq!(message["body"]["user_id"], bob.id.as_str());
    assert_eq!(message["body"]["group_id"], quiet.as_str());
    assert_eq!(
        message["body"]["message_id"],
        hello_ack["body"]["message_id"]
    );
    assert_eq!(list[1]["last_message"]["body"]["data"], last);
    // The creator's marker starts at the group's creation, before every message.
    assert!(list[1]["read_seq"].as_u64().unwrap() < seq(&list[1]["last_message"]));
    // Bob's own sends moved his marker: nothing unread for him.
    let bobs = groups(&server, &bob);
    assert_eq!(bobs[0]["unread"], 0);
    assert_eq!(bobs[1]["unread"], 0);
    assert_eq!(bobs[0]["read_seq"].as_u64(), Some(seq(message)));
    // One group's view is its entry of the list.
    assert_eq!(view(&server, &alice, &busy), list[1]);
}

#[test]
fn the_marker_moves_on_one_device_and_the_count_drops_on_the_other() {
    let server = Server::start();
    let alice = server.user("alice");
    let bob = server.user("bob");
    let mut phone = server.connect(&alice);
    let mut laptop = server.connect(&alice);
    let mut b = server.connect(&bob);
    let group = server.create_group(&bob, "markers", &[&alice]);
    for ws in [&mut phone, &mut laptop, &mut b] {
        ws.expect(70);
    }
    let mut seqs = Vec::new();
    for text in ["m1", "m2", "m3"] {
        b.send_message(&group, text);
        b.expect(21);
        let m = phone.expect(20);
        laptop.expect(20);
        seqs.push(seq(&m));
    }
    assert_eq!(view(&server, &alice, &group)["unread"], 3);

    read_up_to(&mut phone, &group, seqs[1], "r1");
    let reply = phone.expect(24);
    assert_eq!(reply["id"], "r1");
    assert_marker(&reply, &group, &alice, seqs[1]);
    let other = laptop.expect(24);
    assert_eq!(other.get("id"), None, "{other}");
    assert_eq!(seq(&other), seq(&reply));
    assert_marker(&other, &group, &alice, seqs[1]);
    let after = view(&server, &alice, &group);
    assert_eq!(after["unread"], 1);
    assert_eq!(after["read_seq"].as_u64(), Some(seqs[1]));
    // Bob's devices learn nothing of Alice's marker.
    b.assert_quiet();

    // Never backwards: accepted, answered with the marker in effect (not stored: no seq),
    // and nothing reaches the other device.
    read_up_to(&mut phone, &group, seqs[0], "r2");
    let same = phone.recv_event();
    assert_eq!(ty(&same), 24, "{same}");
    assert_eq!(same.get("seq"), None, "{same}");
    assert_eq!(same["id"], "r2");
    assert_marker(&same, &group, &alice, seqs[1]);
    laptop.assert_quiet();
    assert_eq!(view(&server, &alice, &group)["unread"], 1);

    // Past the group's newest event: the marker stops there.
    let last_seq = view(&server, &alice, &group)["last_seq"].as_u64().unwrap();
    read_up_to(&mut laptop, &group, u64::from(u32::MAX), "r3");
    assert_marker(&laptop.expect(24), &group, &alice, last_seq);
    assert_marker(&phone.expect(24), &group, &alice, last_seq);
    let done = view(&server, &alice, &group);
    assert_eq!(done["unread"], 0);
    assert_eq!(done["read_seq"].as_u64(), Some(last_seq));

    // A sync replays the 24s, stored in Alice's stream.
    let synced = server.connect(&alice).sync_all(None);
    let markers: Vec<u64> = synced
        .iter()
        .filter(|e| ty(e) == 24)
        .map(|e| e["body"]["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(markers, vec![seqs[1], last_seq], "{}", show(&synced));
}

#[test]
fn a_read_receipt_and_an_own_send_move_the_marker() {
    let server = Server::start();
    let alice = server.user("alice");
    let bob = server.user("bob");
    let mut a = server.connect(&alice);
    let mut other = server.connect(&alice);
    let mut b = server.connect(&bob);
    let group = server.create_group(&bob, "receipts", &[&alice]);
    for ws in [&mut a, &mut other, &mut b] {
        ws.expect(70);
    }
    let m1 = b.send_and_ack(&group, "first");
    let m1 = assert_ack(&m1, None);
    let m2 = b.send_and_ack(&group, "second");
    let m2 = assert_ack(&m2, None);
    let first = a.expect(20);
    a.expect(20);
    other.expect(20);
    other.expect(20);
    assert_eq!(view(&server, &alice, &group)["unread"], 2);

    // Reading the first message moves the marker to it. The other device gets the 23 as it
    // always did, and no 24: the 23 says the same.
    a.read(&m1);
    assert_eq!(other.expect(23)["body"]["message_id"], m1.as_str());
    b.expect(23);
    other.assert_quiet();
    let now = view(&server, &alice, &group);
    assert_eq!(now["unread"], 1);
    assert_eq!(now["read_seq"].as_u64(), Some(seq(&first)));

    // Her own send moves it to her message: nothing before it is unread.
    let ack = a.send_and_ack(&group, "reply");
    let mine = b.expect(20);
    other.expect(20);
    let now = view(&server, &alice, &group);
    assert_eq!(now["unread"], 0);
    assert_eq!(now["read_seq"].as_u64(), Some(seq(&mine)));
    assert_eq!(seq(&mine) + 1, seq(&ack));

    // Reading a message older than the marker leaves it where it is (never backwards).
    a.read(&m2);
    other.expect(23);
    b.expect(23);
    assert_eq!(
        view(&server, &alice, &group)["read_seq"].as_u64(),
        Some(seq(&mine))
    );

    b.send_and_ack(&group, "again");
    assert_eq!(view(&server, &alice, &group)["unread"], 1);
    // Bob's send moved his marker past Alice's reply.
    assert_eq!(view(&server, &bob, &group)["unread"], 0);
}

#[test]
fn a_joiner_counts_only_what_came_after_the_join() {
    let server = Server::start();
    let alice = server.user("alice");
    let carol = server.user("carol");
    let mut a = server.connect(&alice);
    let group = server.create_group(&alice, "late", &[]);
    a.expect(70);
    a.send_and_ack(&group, "before carol");
    server.join(&carol, &group, None).expect(200);
    a.expect(72);
    let joined = view(&server, &carol, &group);
    assert_eq!(joined["unread"], 0);
    assert_eq!(joined["last_message"], Value::Null);
    assert!(joined["read_seq"].as_u64().unwrap() > 0);
    a.send_and_ack(&group, "after carol");
    let now = view(&server, &carol, &group);
    assert_eq!(now["unread"], 1);
    assert_eq!(now["last_message"]["body"]["data"], "after carol");
    // Gone from the list once she leaves.
    server.leave(&carol, &group, None).expect(200);
    assert_eq!(groups(&server, &carol), Vec::<Value>::new());
}

#[test]
fn group_views_and_markers_refuse_what_they_must() {
    let server = Server::start();
    let alice = server.user("alice");
    let mallory = server.user("mallory");
    let group = server.create_group(&alice, "private", &[]);
    let path = format!("/groups/{group}");
    let unknown = format!("/groups/{}", random_uuid());

    let refused = call(&server, "GET", &path, &mallory.token);
    let text = refused.expect_error(403, "forbidden");
    assert_eq!(text, "a non-member has no rights over this group");
    call(&server, "GET", &unknown, &alice.token).expect_error(404, "not_found");
    call(&server, "GET", "/groups/not-a-uuid", &alice.token).expect_error(404, "not_found");
    server.get("/groups").expect_error(401, "unauthorized");
    server.get(&path).expect_error(401, "unauthorized");
    let wrong = call(&server, "DELETE", &path, &alice.token);
    wrong.expect_error(405, "method_not_allowed");
    assert_eq!(wrong.header("allow"), Some("GET, HEAD, PUT"));
    let wrong = call(&server, "DELETE", "/groups", &alice.token);
    wrong.expect_error(405, "method_not_allowed");
    assert_eq!(wrong.header("allow"), Some("GET, HEAD, POST"));
    assert_eq!(groups(&server, &mallory), Vec::<Value>::new());

    let mut m = server.connect(&mallory);
    read_up_to(&mut m, &group, 1, "x1");
    m.expect_error("not_member", Some(43), Some("x1"));
    m.send_json(&json!({"method": 43, "id": "x2", "body": {"group_id": random_uuid(), "seq": 1}}));
    m.expect_error("not_found", Some(43), Some("x2"));
    for body in [
        json!({"group_id": group}),
        json!({"group_id": group, "seq": -1}),
        json!({"group_id": group, "seq": "5"}),
        json!({"seq": 5}),
    ] {
        m.send_json(&json!({"method": 43, "id": "bad", "body": body}));
        m.expect_error("bad_request", Some(43), Some("bad"));
    }
    m.send_json(&json!({"method": 43, "id": "nobody"}));
    m.expect_error("bad_request", Some(43), Some("nobody"));
}

#[test]
fn counts_and_markers_are_the_same_after_a_kill() {
    let server = Server::start();
    let alice = server.user("alice");
    let bob = server.user("bob");
    let mut a = server.connect(&alice);
    let mut b = server.connect(&bob);
    let one = server.create_group(&bob, "one", &[&alice]);
    let two = server.create_group(&bob, "two", &[&alice]);
    a.expect(70);
    a.expect(70);
    b.expect(70);
    b.expect(70);
    let mut seqs = Vec::new();
    for (group, text) in [
        (&one, "a"),
        (&one, "b"),
        (&two, "c"),
        (&one, "d"),
        (&two, "e"),
    ] {
        b.send_and_ack(group, text);
        seqs.push(seq(&a.expect(20)));
    }
    read_up_to(&mut a, &one, seqs[0], "r");
    a.expect(24);
    a.send_and_ack(&two, "mine");
    b.expect(20);
    b.send_and_ack(&one, "f");
    a.expect(20);
    let before_alice = groups(&server, &alice);
    let before_bob = groups(&server, &bob);
    assert_eq!(
        counts(&before_alice),
        vec![
            (one.clone(), 3, seqs[0]),
            (
                two.clone(),
                0,
                before_alice[1]["read_seq"].as_u64().unwrap()
            ),
        ]
    );
    drop((a, b));

    let server = server.restart();
    assert_eq!(groups(&server, &alice), before_alice);
    assert_eq!(groups(&server, &bob), before_bob);
    // And they go on from there.
    let mut b = server.connect(&bob);
    b.send_and_ack(&two, "after");
    assert_eq!(view(&server, &alice, &two)["unread"], 1);
    assert_eq!(view(&server, &alice, &one)["unread"], 3);
}

#[test]
fn an_unread_count_stops_at_1000_and_is_exact_below_it() {
    let server = Server::start_with_args(&["--sends-per-second", "0"]);
    let alice = server.user("alice");
    let bob = server.user("bob");
    let mut a = server.connect(&alice);
    let mut b = server.connect(&bob);
    let group = server.create_group(&bob, "busy", &[&alice]);
    a.expect(70);
    b.expect(70);
    let total = 1005;
    for i in 0..total {
        b.queue_json(&json!({"method": 40, "body": {"group_id": group, "data": format!("m{i}")}}));
    }
    b.flush();
    let seqs: Vec<u64> = (0..total).map(|_| seq(&a.expect(20))).collect();
    for _ in 0..total {
        b.expect(21);
    }
    assert_eq!(view(&server, &alice, &group)["unread"], 1000);
    // 1002 after the marker: still "1000 or more".
    read_up_to(&mut a, &group, seqs[2], "r1");
    a.expect(24);
    assert_eq!(view(&server, &alice, &group)["unread"], 1000);
    // 995 after it: exact again, counted from the log.
    read_up_to(&mut a, &group, seqs[9], "r2");
    a.expect(24);
    assert_eq!(view(&server, &alice, &group)["unread"], 995);
    b.send_and_ack(&group, "one more");
    assert_eq!(view(&server, &alice, &group)["unread"], 996);
}

/// A deleted message leaves the unread counts (and `last_message` shows its tombstone), and an
/// edit changes `last_message`'s text, the same after a restart.
#[test]
fn a_delete_leaves_the_unread_count_and_an_edit_shows_in_last_message() {
    let server = Server::start();
    let alice = server.user("alice");
    let bob = server.user("bob");
    let mut a = server.connect(&alice);
    let group = server.create_group(&alice, "edits", &[&bob]);
    a.expect(70);
    let first = a.send_and_ack(&group, "one")["body"]["message_id"].clone();
    let second = a.send_and_ack(&group, "two")["body"]["message_id"].clone();
    assert_eq!(view(&server, &bob, &group)["unread"], 2);

    a.send_json(&json!({"method": 45, "id": "d", "body": {"message_id": first}}));
    a.expect(26);
    a.send_json(&json!({"method": 44, "id": "e", "body": {"message_id": second, "data": "2"}}));
    a.expect(25);
    let check = |server: &Server| {
        let seen = view(server, &bob, &group);
        assert_eq!(
            seen["unread"], 1,
            "the deleted message is not unread: {seen}"
        );
        assert_eq!(seen["last_message"]["body"]["data"], "2", "{seen}");
        assert!(seen["last_message"]["body"]["edited_at"].is_u64(), "{seen}");
    };
    check(&server);
    check(&server.restart());
}
