//! Messages, client ids and idempotent resend, receipts, typing, and the WebSocket's error events
//! (type 90) and frame-level limits.

use crate::support::*;
use tungstenite::protocol::frame::coding::{CloseCode, Data};

/// alice and bob, each connected, in a group alice created; both 70s consumed.
struct Pair {
    alice: User,
    /// alice's messaging URL (the session behind `a`).
    a_url: String,
    bob: User,
    group: String,
    a: Ws,
    b: Ws,
}

fn pair(server: &Server) -> Pair {
    let alice = server.user("alice");
    let bob = server.user("bob");
    let a_url = server.messaging_url(&alice.token);
    let mut a = Ws::connect(&a_url, &alice.name);
    let mut b = server.connect(&bob);
    let group = server.create_group(&alice, "pair", &[&bob]);
    a.expect(70);
    b.expect(70);
    Pair {
        alice,
        a_url,
        bob,
        group,
        a,
        b,
    }
}

/// Self-check of the test support: a barrier returns exactly what is pending.
#[test]
fn the_barrier_sees_pending_events() {
    let server = Server::start();
    let Pair {
        group,
        mut a,
        mut b,
        ..
    } = pair(&server);
    a.send_and_ack(&group, "pending for bob");
    let pending = b.barrier();
    assert_eq!(types(&pending), vec![20], "pending:\n{}", show(&pending));
    b.assert_quiet();
}

#[test]
fn client_id_is_echoed_on_the_ack_only() {
    let server = Server::start();
    let Pair {
        alice,
        group,
        mut a,
        mut b,
        ..
    } = pair(&server);
    a.send_message_id(&group, "hi", "c-17");
    let ack = a.expect(21);
    let message_id = assert_ack(&ack, Some("c-17"));
    let ev = b.expect(20);
    assert!(
        ev["id"].is_null(),
        "the client id is not shown to others: {ev}"
    );
    assert_eq!(
        ev["body"],
        json!({"message_id": message_id, "data": "hi", "group_id": group, "user_id": alice.id})
    );
    a.assert_quiet();
    b.assert_quiet();
}

/// The original was stored: its retry is answered with the original ack even after the sender
/// left the group (the ack may have been lost with the connection), and stores nothing.
#[test]
fn a_retry_after_leaving_the_group_gets_the_original_ack() {
    let server = Server::start();
    let Pair {
        alice,
        group,
        mut a,
        mut b,
        ..
    } = pair(&server);
    a.send_message_id(&group, "before leaving", "left-1");
    let original = a.expect(21);
    b.expect(20);
    server.leave(&alice, &group, None).expect(200);
    a.expect(73);
    b.expect(73);
    // alice owned the group: bob, the one left, owns it now.
    b.expect(74);
    a.send_message_id(&group, "before leaving", "left-1");
    assert_eq!(a.expect(21), original);
    // A new id is refused: alice is no member any more.
    a.send_message_id(&group, "after leaving", "left-2");
    a.expect_error("not_member", Some(40), Some("left-2"));
    b.assert_quiet();
}

#[test]
fn resend_with_the_same_id_is_stored_once() {
    let server = Server::start();
    let Pair {
        alice,
        a_url,
        bob,
        group,
        mut a,
        mut b,
    } = pair(&server);

    a.send_message_id(&group, "once", "retry-1");
    let original = a.expect(21);
    assert_ack(&original, Some("retry-1"));
    let delivered = b.expect(20);
    assert_eq!(
        delivered["body"]["message_id"],
        original["body"]["message_id"]
    );

    // Again on the same connection.
    a.send_message_id(&group, "once", "retry-1");
    assert_eq!(a.expect(21), original, "a resend answers the original ack");
    // On a second connection of the same session.
    let mut a2 = Ws::connect(&a_url, "alice connection 2");
    a2.send_message_id(&group, "once", "retry-1");
    assert_eq!(
        a2.expect(21),
        original,
        "a resend on another connection answers the original ack"
    );
    // After a reconnect with the same token.
    drop(a);
    let mut a3 = Ws::connect(&a_url, "alice reconnected");
    a3.send_message_id(&group, "once", "retry-1");
    assert_eq!(
        a3.expect(21),
        original,
        "a resend after a reconnect answers the original ack"
    );
    // From another session (device) of the same user.
    let mut a4 = server.connect(&alice);
    a4.send_message_id(&group, "once", "retry-1");
    assert_eq!(
        a4.expect(21),
        original,
        "a resend from another device answers the original ack"
    );
    // bob got the message once; alice's connections got nothing from the resends.
    b.assert_quiet();
    for ws in [&mut a2, &mut a3, &mut a4] {
        ws.assert_quiet();
    }

    // The id is alice's: bob using the same id sends his own message.
    b.send_message_id(&group, "bob's", "retry-1");
    let bobs = b.expect(21);
    assert_ne!(bobs["body"]["message_id"], original["body"]["message_id"]);
    for ws in [&mut a2, &mut a3, &mut a4] {
        assert_eq!(ws.expect(20)["body"]["data"], "bob's");
    }
    // A different id is a different message.
    a4.send_message_id(&group, "once", "retry-2");
    let second = a4.expect(21);
    assert_ne!(second["body"]["message_id"], original["body"]["message_id"]);
    assert_eq!(
        b.expect(20)["body"]["message_id"],
        second["body"]["message_id"]
    );

    // Stored once: a fresh device of bob's syncs three messages, the first being the original.
    let mut fresh = server.connect(&bob);
    let history = fresh.sync_all(None);
    let messages: Vec<&Value> = history.iter().filter(|e| ty(e) == 20).collect();
    assert_eq!(
        messages.len(),
        3,
        "three messages in the group:\n{}",
        show(&history)
    );
    assert_eq!(
        messages[0]["body"]["message_id"],
        original["body"]["message_id"]
    );
    assert_eq!(messages[0]["body"]["data"], "once");
    assert_eq!(
        messages[1]["body"]["message_id"],
        bobs["body"]["message_id"]
    );
    assert_eq!(
        messages[2]["body"]["message_id"],
        second["body"]["message_id"]
    );
}

#[test]
fn websocket_input_errors_are_events_and_the_connection_stays_open() {
    let server = Server::start();
    let Pair {
        group,
        mut a,
        mut b,
        ..
    } = pair(&server);

    a.send_text("hello");
    a.expect_error("bad_request", None, None);
    a.send_text("{\"method\": 40");
    a.expect_error("bad_request", None, None);
    a.send_binary(&[1, 2, 3]);
    a.expect_error("bad_request", None, None);
    a.send_json(&json!([40]));
    a.expect_error("bad_request", None, None);
    a.send_json(&json!({"body": {"group_id": group, "data": "no method"}}));
    a.expect_error("bad_request", None, None);
    a.send_json(&json!({"method": "40", "body": {"group_id": group, "data": "method as text"}}));
    a.expect_error("bad_request", None, None);

    a.send_json(&json!({"method": 99, "id": "u-1"}));
    a.expect_error("unknown_method", Some(99), Some("u-1"));
    a.send_json(&json!({"method": 21, "id": "u-2", "body": {}}));
    a.expect_error("unknown_method", Some(21), Some("u-2"));

    let bad_bodies = [
        (40, json!(null)),
        (40, json!({"group_id": group})),
        (40, json!({"data": "no group"})),
        (40, json!({"group_id": group, "data": 5})),
        (40, json!({"group_id": 5, "data": "x"})),
        (41, json!({})),
        (42, json!({"message_id": 17})),
        (60, json!({})),
        (61, json!("group")),
    ];
    for (i, (method, body)) in bad_bodies.iter().enumerate() {
        let id = format!("bad-{i}");
        let mut rpc = json!({"method": method, "id": id});
        if !body.is_null() {
            rpc["body"] = body.clone();
        }
        a.send_json(&rpc);
        a.expect_error("bad_request", Some(*method), Some(&id));
    }
    // Without a client id, no id is echoed.
    a.send_json(&json!({"method": 40, "body": {"group_id": group}}));
    a.expect_error("bad_request", Some(40), None);

    // A client id must be a string of 1 to 128 characters.
    for bad_id in [json!(5), json!(""), json!("i".repeat(129))] {
        a.send_json(&json!({"method": 40, "id": bad_id, "body": {"group_id": group, "data": "x"}}));
        let ev = a.recv_event();
        assert_eq!(ty(&ev), 90, "id {bad_id}: {ev}");
        assert_eq!(ev["body"]["code"], "bad_request", "id {bad_id}: {ev}");
    }

    // Still usable: a valid send is acknowledged, and bob got only that.
    a.send_message_id(&group, "after the errors", "ok-1");
    assert_ack(&a.expect(21), Some("ok-1"));
    assert_eq!(b.expect(20)["body"]["data"], "after the errors");
    a.assert_quiet();
    b.assert_quiet();
}

#[test]
fn not_member_and_not_found_errors() {
    let server = Server::start();
    let Pair {
        group,
        mut a,
        mut b,
        ..
    } = pair(&server);
    let eve = server.user("eve");
    let mut e = server.connect(&eve);
    let unknown_group = random_uuid();

    let message_id = assert_ack(&a.send_and_ack(&group, "members only"), None);
    b.expect(20);

    let cases = [
        (
            json!({"method": 40, "id": "e1", "body": {"group_id": group, "data": "let me in"}}),
            "not_member",
        ),
        (
            json!({"method": 41, "id": "e2", "body": {"message_id": message_id}}),
            "not_member",
        ),
        (
            json!({"method": 42, "id": "e3", "body": {"message_id": message_id}}),
            "not_member",
        ),
        (
            json!({"method": 60, "id": "e4", "body": {"group_id": group}}),
            "not_member",
        ),
        (
            json!({"method": 61, "id": "e5", "body": {"group_id": group}}),
            "not_member",
        ),
        (
            json!({"method": 40, "id": "e6", "body": {"group_id": unknown_group, "data": "anyone?"}}),
            "not_found",
        ),
        (
            json!({"method": 41, "id": "e7", "body": {"message_id": random_uuid()}}),
            "not_found",
        ),
        (
            json!({"method": 42, "id": "e8", "body": {"message_id": random_uuid()}}),
            "not_found",
        ),
        (
            json!({"method": 60, "id": "e9", "body": {"group_id": unknown_group}}),
            "not_found",
        ),
    ];
    for (rpc, code) in &cases {
        e.send_json(rpc);
        let method = rpc["method"].as_u64().unwrap();
        e.expect_error(code, Some(method), rpc["id"].as_str());
    }
    // The members saw nothing of it.
    a.assert_quiet();
    b.assert_quiet();

    // eve's connection still works.
    let solo = server.create_group(&eve, "eve's", &[]);
    e.expect(70);
    e.send_and_ack(&solo, "fine");
    e.assert_quiet();
}

#[test]
fn data_is_limited_to_16_kib() {
    let server = Server::start();
    let Pair {
        group,
        mut a,
        mut b,
        ..
    } = pair(&server);
    let max = "x".repeat(16 * 1024);
    a.send_message_id(&group, &max, "max");
    assert_ack(&a.expect(21), Some("max"));
    assert_eq!(b.expect(20)["body"]["data"], max.as_str());
    a.send_message_id(&group, &format!("{max}x"), "over");
    a.expect_error("too_large", Some(40), Some("over"));
    b.assert_quiet();
    a.send_and_ack(&group, "small again");
}

#[test]
fn data_round_trips_exactly() {
    let server = Server::start();
    let Pair {
        group,
        mut a,
        mut b,
        ..
    } = pair(&server);
    a.send_json(&json!({"method": 40, "id": "e", "body": {"group_id": group, "data": ""}}));
    a.expect_error("bad_request", Some(40), Some("e"));
    for data in [
        " ",
        "quotes \" and \\ backslash",
        "line\nbreak\ttab\u{0}nul",
        "émoji 🎉 ünïcödé 漢字",
        "{\"method\":40}",
    ] {
        a.send_and_ack(&group, data);
        assert_eq!(b.expect(20)["body"]["data"], data);
    }
    a.assert_quiet();
    b.assert_quiet();
}

#[test]
fn timestamps_strictly_increase_across_a_burst() {
    let server = Server::start();
    let Pair {
        alice,
        group,
        mut a,
        mut b,
        ..
    } = pair(&server);
    const N: usize = 100;
    for i in 0..N {
        a.queue_json(&json!({"method": 40, "id": format!("burst-{i}"), "body": {"group_id": group, "data": format!("m{i}")}}));
    }
    a.flush();
    let acks: Vec<Value> = (0..N).map(|_| a.expect(21)).collect();
    for (i, ack) in acks.iter().enumerate() {
        assert_ack(ack, Some(&format!("burst-{i}")));
    }
    assert_strictly_increasing(&acks);
    let messages: Vec<Value> = (0..N).map(|_| b.expect(20)).collect();
    for (i, m) in messages.iter().enumerate() {
        assert_eq!(
            m["body"]["data"],
            format!("m{i}"),
            "messages arrive in send order"
        );
        assert_eq!(m["body"]["message_id"], acks[i]["body"]["message_id"]);
        assert_eq!(m["body"]["user_id"], alice.id.as_str());
    }
    assert_strictly_increasing(&messages);
    a.assert_quiet();
    b.assert_quiet();
}

#[test]
fn receipts_reach_the_author_once() {
    let server = Server::start();
    let Pair {
        bob,
        group,
        mut a,
        mut b,
        ..
    } = pair(&server);
    let message_id = assert_ack(&a.send_and_ack(&group, "read me"), None);
    b.expect(20);
    b.delivered(&message_id);
    b.delivered(&message_id);
    b.read(&message_id);
    b.read(&message_id);
    let expected = json!({"message_id": message_id, "group_id": group, "user_id": bob.id});
    assert_eq!(a.expect(22)["body"], expected);
    assert_eq!(a.expect(23)["body"], expected);
    // The repeats were accepted silently: no error for bob, no second event for alice.
    b.assert_quiet();
    a.assert_quiet();
}

#[test]
fn typing_reaches_the_other_members_only_and_is_not_stored() {
    let server = Server::start();
    let alice = server.user("alice");
    let bob = server.user("bob");
    let carol = server.user("carol");
    let mut a = server.connect(&alice);
    let mut b = server.connect(&bob);
    let mut c = server.connect(&carol);
    let group = server.create_group(&alice, "three", &[&bob, &carol]);
    for ws in [&mut a, &mut b, &mut c] {
        ws.expect(70);
    }
    b.typing_start(&group);
    b.typing_end(&group);
    for ws in [&mut a, &mut c] {
        assert_eq!(
            ws.expect(40)["body"],
            json!({"group_id": group, "user_id": bob.id}),
            "{}",
            ws.name
        );
        assert_eq!(
            ws.expect(41)["body"],
            json!({"group_id": group, "user_id": bob.id}),
            "{}",
            ws.name
        );
        ws.assert_quiet();
    }
    b.assert_quiet();
    for user in [&alice, &bob, &carol] {
        let history = server.connect(user).sync_all(None);
        assert_eq!(
            types(&history),
            vec![70],
            "{}: typing is not stored:\n{}",
            user.name,
            show(&history)
        );
    }
}

#[test]
fn fragmented_message_is_reassembled() {
    let server = Server::start();
    let Pair {
        group,
        mut a,
        mut b,
        ..
    } = pair(&server);
    let rpc =
        json!({"method": 40, "id": "frag", "body": {"group_id": group, "data": "in three pieces"}})
            .to_string();
    let bytes = rpc.as_bytes();
    let (one, rest) = bytes.split_at(10);
    let (two, three) = rest.split_at(20);
    a.send_frame(one, Data::Text, false);
    a.send_frame(two, Data::Continue, false);
    a.send_frame(three, Data::Continue, true);
    assert_ack(&a.expect(21), Some("frag"));
    assert_eq!(b.expect(20)["body"]["data"], "in three pieces");
}

#[test]
fn oversized_message_closes_with_1009() {
    let server = Server::start();
    let Pair {
        group,
        mut a,
        mut b,
        ..
    } = pair(&server);
    let huge = json!({"method": 40, "body": {"group_id": group, "data": "x".repeat(70 * 1024)}});
    a.send_text_lossy(&huge.to_string());
    assert_eq!(
        a.expect_close(),
        Some(CloseCode::Size),
        "close code 1009 for a message over 64 KiB"
    );
    b.assert_quiet();
}

#[test]
fn invalid_utf8_text_closes_with_1007() {
    let server = Server::start();
    let Pair { mut a, .. } = pair(&server);
    a.send_frame(&[b'{', 0xff, 0xfe, b'}'], Data::Text, true);
    assert_eq!(
        a.expect_close(),
        Some(CloseCode::Invalid),
        "close code 1007 for invalid UTF-8"
    );
}

/// Two users sending at once: every connection sees strictly increasing timestamps, each
/// sender's messages in its send order, and the same message under the same timestamp everywhere.
#[test]
fn concurrent_senders_are_ordered_consistently() {
    let server = Server::start();
    let alice = server.user("alice");
    let bob = server.user("bob");
    let carol = server.user("carol");
    let mut a = server.connect(&alice);
    let mut b = server.connect(&bob);
    let mut c = server.connect(&carol);
    let group = server.create_group(&alice, "busy", &[&bob, &carol]);
    for ws in [&mut a, &mut b, &mut c] {
        ws.expect(70);
        ws.log.clear();
    }
    const N: usize = 60;
    // Each sender queues N sends and then reads N acks and the other's N messages.
    let burst = |ws: &mut Ws, tag: &str| {
        for i in 0..N {
            ws.queue_json(&json!({"method": 40, "id": format!("{tag}-{i}"), "body": {"group_id": group, "data": format!("{tag}{i}")}}));
        }
        ws.flush();
        let events: Vec<Value> = (0..2 * N).map(|_| ws.recv_event()).collect();
        events
    };
    let (from_a, from_b, at_c) = std::thread::scope(|s| {
        let ta = s.spawn(|| burst(&mut a, "a"));
        let tb = s.spawn(|| burst(&mut b, "b"));
        let at_c: Vec<Value> = (0..2 * N).map(|_| c.expect(20)).collect();
        (ta.join().unwrap(), tb.join().unwrap(), at_c)
    });
    for (name, events) in [("alice", &from_a), ("bob", &from_b), ("carol", &at_c)] {
        assert_strictly_increasing(events);
        let n21 = events.iter().filter(|e| ty(e) == 21).count();
        let n20 = events.iter().filter(|e| ty(e) == 20).count();
        assert_eq!(
            (n20 + n21, events.len()),
            (2 * N, 2 * N),
            "{name}: only acks and messages:\n{}",
            show(events)
        );
    }
    // Per sender, carol sees the send order.
    for tag in ["a", "b"] {
        let seq: Vec<&str> = at_c
            .iter()
            .map(|e| e["body"]["data"].as_str().unwrap())
            .filter(|d| d.starts_with(tag))
            .collect();
        let want: Vec<String> = (0..N).map(|i| format!("{tag}{i}")).collect();
        assert_eq!(seq, want, "carol sees {tag}'s messages in send order");
    }
    // The same message has the same timestamp on every connection that got it as event 20.
    let by_id = |events: &[Value]| -> std::collections::HashMap<String, u64> {
        events
            .iter()
            .filter(|e| ty(e) == 20)
            .map(|e| (e["body"]["message_id"].as_str().unwrap().to_string(), ts(e)))
            .collect()
    };
    let at_c_ts = by_id(&at_c);
    for (id, t) in by_id(&from_a).into_iter().chain(by_id(&from_b)) {
        assert_eq!(
            at_c_ts.get(&id),
            Some(&t),
            "message {id}: same timestamp for every member"
        );
    }
    for ws in [&mut a, &mut b, &mut c] {
        ws.assert_quiet();
    }
}

#[test]
fn a_message_fans_out_to_every_member() {
    let server = Server::start();
    let users: Vec<User> = (0..8).map(|i| server.user(&format!("member{i}"))).collect();
    let mut conns: Vec<Ws> = users.iter().map(|u| server.connect(u)).collect();
    let others: Vec<&User> = users[1..].iter().collect();
    let group = server.create_group(&users[0], "crowd", &others);
    for ws in conns.iter_mut() {
        ws.expect(70);
    }
    let message_id = assert_ack(&conns[0].send_and_ack(&group, "hello, everyone"), None);
    for ws in conns[1..].iter_mut() {
        assert_eq!(
            ws.expect(20)["body"],
            json!({"message_id": message_id, "data": "hello, everyone", "group_id": group, "user_id": users[0].id}),
            "{}",
            ws.name
        );
    }
    for ws in conns.iter_mut() {
        ws.assert_quiet();
    }
}

/// A member whose connection never reads does not hold up the sender or the other members.
#[test]
fn a_slow_consumer_does_not_stall_the_others() {
    let server = Server::start();
    let alice = server.user("alice");
    let bob = server.user("bob");
    let carol = server.user("carol");
    let mut a = server.connect(&alice);
    let _never_reads = server.connect(&bob);
    let mut c = server.connect(&carol);
    let group = server.create_group(&alice, "firehose", &[&bob, &carol]);
    a.expect(70);
    c.expect(70);
    const N: usize = 400;
    const BATCH: usize = 20;
    let big = "x".repeat(16_000);
    std::thread::scope(|s| {
        let reader = s.spawn(|| {
            for i in 0..N {
                let ev = c.expect(20);
                assert_eq!(
                    ev["body"]["data"].as_str().map(|d| d.len()),
                    Some(16_000),
                    "message {i}"
                );
            }
        });
        for batch in 0..N / BATCH {
            for i in 0..BATCH {
                a.queue_json(&json!({"method": 40, "id": format!("f-{}", batch * BATCH + i), "body": {"group_id": group, "data": big}}));
            }
            a.flush();
            for i in 0..BATCH {
                assert_ack(&a.expect(21), Some(&format!("f-{}", batch * BATCH + i)));
            }
        }
        reader.join().unwrap();
    });
    assert_eq!(server.get("/healthz").expect(200), json!({"status": "ok"}));
    a.assert_quiet();
    c.assert_quiet();
}

#[test]
fn a_fragmented_message_over_64_kib_closes_with_1009() {
    let server = Server::start();
    let Pair { mut a, .. } = pair(&server);
    let chunk = vec![b'x'; 30 * 1024];
    a.send_frame(b"{\"method\":40,\"body\":{\"data\":\"", Data::Text, false);
    // Frames that are each under the limit, a message that is not; the server may close before
    // the last ones are written.
    for _ in 0..2 {
        a.send_frame(&chunk, Data::Continue, false);
    }
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        a.send_frame(&chunk, Data::Continue, false);
        a.send_frame(b"\"}}", Data::Continue, true);
    }));
    assert_eq!(
        a.expect_close(),
        Some(CloseCode::Size),
        "close code 1009 for a message over 64 KiB"
    );
}

#[test]
fn a_protocol_violation_closes_with_1002() {
    let server = Server::start();
    let Pair { mut a, mut b, .. } = pair(&server);
    // A continuation frame with no message to continue.
    a.send_frame(b"stray", Data::Continue, true);
    assert_eq!(
        a.expect_close(),
        Some(CloseCode::Protocol),
        "close code 1002 for a stray continuation"
    );
    // A reserved opcode.
    b.send_frame(b"?", Data::Reserved(3), true);
    assert_eq!(
        b.expect_close(),
        Some(CloseCode::Protocol),
        "close code 1002 for a reserved opcode"
    );
}

/// A client that sends its last message and shuts its side of the socket at once (message and
/// end of stream reach the server in one readiness event) is let go at once, not at the ping
/// timeout 30 s later: the server reads on to the end of stream. Several rounds, since the two
/// arrive together most of the time but not always.
#[test]
fn a_message_followed_by_end_of_stream_is_handled_and_ends_the_connection() {
    let server = Server::start();
    let Pair {
        alice,
        group,
        mut b,
        ..
    } = pair(&server);
    for round in 0..8 {
        let mut last = server.connect(&alice);
        last.queue_json(
            &json!({"method": 40, "body": {"group_id": group, "data": format!("bye {round}")}}),
        );
        last.flush();
        last.half_close();
        assert_eq!(b.expect(20)["body"]["data"], format!("bye {round}"));
        assert!(
            last.play_dead_until_dropped(DEADLINE).is_some(),
            "round {round}: the server kept the half-closed connection open"
        );
    }
    // Leaving without a close frame is no protocol error.
    let protocol_drops = "parley_connections_dropped_total{reason=\"protocol\"}";
    assert_eq!(crate::hardening::metric(server.addr, protocol_drops), 0);
}

#[test]
fn websocket_ping_is_answered_and_close_is_echoed() {
    let server = Server::start();
    let Pair {
        group,
        mut a,
        mut b,
        ..
    } = pair(&server);
    a.ping_pong(b"are you there");
    a.send_and_ack(&group, "after the ping");
    b.expect(20);
    assert_eq!(
        a.close_with(CloseCode::Normal),
        Some(CloseCode::Normal),
        "the server answers a close"
    );
    // The other member is unaffected.
    b.ping_pong(b"");
    b.assert_quiet();
}

/// A retry pipelined right behind its original (one TCP write: the same tick, its record still
/// pending) answers the same ack and stores nothing new.
#[test]
fn a_retry_in_the_same_tick_as_its_original_gets_the_same_ack() {
    let server = Server::start();
    let Pair {
        group,
        mut a,
        mut b,
        ..
    } = pair(&server);
    for round in 0..20 {
        let id = format!("pipe-{round}");
        let rpc =
            serde_json::json!({"method": 40, "id": id, "body": {"group_id": group, "data": "dup"}})
                .to_string();
        a.send_two(&rpc, &rpc);
        let first = a.expect(21);
        let second = a.expect(21);
        assert_eq!(first, second, "round {round}");
        b.expect(20);
    }
    b.assert_quiet();
    a.assert_quiet();
}
