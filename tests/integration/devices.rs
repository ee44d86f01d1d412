//! One user with several sessions (devices), and several connections on one session token.

use crate::support::*;

#[test]
fn every_device_gets_messages_and_the_sending_device_gets_only_its_ack() {
    let server = Server::start();
    let alice = server.user("alice");
    let bob = server.user("bob");
    let mut a1 = Ws::connect(&server.messaging_url(&alice.token), "alice device 1");
    let mut a2 = Ws::connect(&server.messaging_url(&alice.token), "alice device 2");
    let mut b = server.connect(&bob);
    let group = server.create_group(&alice, "devices", &[&bob]);
    for ws in [&mut a1, &mut a2, &mut b] {
        ws.expect(70);
    }

    // bob -> both of alice's devices.
    let from_bob = assert_ack(&b.send_and_ack(&group, "to all your devices"), None);
    for ws in [&mut a1, &mut a2] {
        assert_eq!(
            ws.expect(20)["body"],
            json!({"message_id": from_bob, "data": "to all your devices", "group_id": group, "user_id": bob.id}),
            "{}",
            ws.name
        );
    }

    // alice on device 1 -> ack on device 1 only; device 2 and bob get the message.
    let from_a1 = assert_ack(&a1.send_and_ack(&group, "from my laptop"), None);
    let expected = json!({"message_id": from_a1, "data": "from my laptop", "group_id": group, "user_id": alice.id});
    assert_eq!(
        a2.expect(20)["body"],
        expected,
        "the other device learns what alice sent"
    );
    assert_eq!(b.expect(20)["body"], expected);
    a1.assert_quiet();

    // A receipt on device 2 reaches bob (the author) and device 1, not device 2 itself.
    a2.delivered(&from_bob);
    let receipt = json!({"message_id": from_bob, "group_id": group, "user_id": alice.id});
    assert_eq!(b.expect(22)["body"], receipt);
    assert_eq!(
        a1.expect(22)["body"],
        receipt,
        "alice's other device learns it was delivered"
    );
    a2.read(&from_bob);
    assert_eq!(b.expect(23)["body"], receipt);
    assert_eq!(
        a1.expect(23)["body"],
        receipt,
        "alice's other device learns it was read"
    );

    // Typing by device 1 goes to bob only (not to alice's own devices).
    a1.typing_start(&group);
    assert_eq!(
        b.expect(40)["body"],
        json!({"group_id": group, "user_id": alice.id})
    );

    for ws in [&mut a1, &mut a2, &mut b] {
        ws.assert_quiet();
    }
}

#[test]
fn group_events_reach_every_device() {
    let server = Server::start();
    let alice = server.user("alice");
    let bob = server.user("bob");
    let mut b1 = Ws::connect(&server.messaging_url(&bob.token), "bob device 1");
    let mut b2 = Ws::connect(&server.messaging_url(&bob.token), "bob device 2");
    let group = server.create_group(&alice, "devices", &[&bob]);
    for ws in [&mut b1, &mut b2] {
        ws.expect(70);
    }
    server.leave(&bob, &group, None).expect(200);
    for ws in [&mut b1, &mut b2] {
        assert_eq!(
            ws.expect(73)["body"],
            json!({"group_id": group, "user_id": bob.id}),
            "{}",
            ws.name
        );
    }
    server.join(&bob, &group, None).expect(200);
    for ws in [&mut b1, &mut b2] {
        ws.expect(70);
        assert_eq!(
            ws.expect(72)["body"],
            json!({"group_id": group, "user_id": bob.id}),
            "{}",
            ws.name
        );
        ws.assert_quiet();
    }
}

/// Several connections may use one session token at once; each is a live connection.
#[test]
fn two_connections_on_one_token_are_both_live() {
    let server = Server::start();
    let alice = server.user("alice");
    let bob = server.user("bob");
    let url = server.messaging_url(&alice.token);
    let mut c1 = Ws::connect(&url, "alice connection 1");
    let mut c2 = Ws::connect(&url, "alice connection 2");
    let mut b = server.connect(&bob);
    let group = server.create_group(&alice, "shared token", &[&bob]);
    for ws in [&mut c1, &mut c2, &mut b] {
        ws.expect(70);
    }
    b.send_and_ack(&group, "hello both");
    assert_eq!(c1.expect(20)["body"]["data"], "hello both");
    assert_eq!(c2.expect(20)["body"]["data"], "hello both");
    // A send on connection 1 is a message for connection 2.
    let sent = assert_ack(&c1.send_and_ack(&group, "from connection 1"), None);
    assert_eq!(c2.expect(20)["body"]["message_id"], sent.as_str());
    assert_eq!(b.expect(20)["body"]["message_id"], sent.as_str());
    for ws in [&mut c1, &mut c2, &mut b] {
        ws.assert_quiet();
    }
    // Closing one leaves the other working.
    drop(c1);
    b.send_and_ack(&group, "still there?");
    assert_eq!(c2.expect(20)["body"]["data"], "still there?");
}
