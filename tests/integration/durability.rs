//! Restarts and `kill -9`: what was answered 2xx or acknowledged (21) survives; tokens (JWT and
//! messaging) stay valid; history and idempotency keys persist.

use crate::support::*;

/// Alice and Bob, each connected once, in a new group both have had the 70 of; the messaging
/// URLs are kept to reconnect after a restart.
struct Pair {
    alice: User,
    bob: User,
    alice_url: String,
    bob_url: String,
    a: Ws,
    b: Ws,
    group: String,
}

fn connected_pair(server: &Server, group_name: &str) -> Pair {
    let alice = server.user("alice");
    let bob = server.user("bob");
    let alice_url = server.messaging_url(&alice.token);
    let bob_url = server.messaging_url(&bob.token);
    let mut a = Ws::connect(&alice_url, "alice");
    let mut b = Ws::connect(&bob_url, "bob");
    let group = server.create_group(&alice, group_name, &[&bob]);
    a.expect(70);
    b.expect(70);
    Pair {
        alice,
        bob,
        alice_url,
        bob_url,
        a,
        b,
        group,
    }
}

#[test]
fn restart_keeps_accounts_sessions_groups_and_history() {
    let server = Server::start();
    let Pair {
        alice,
        bob,
        alice_url,
        bob_url,
        mut a,
        mut b,
        group,
    } = connected_pair(&server, "durable");
    a.send_message_id(&group, "before the restart", "persist-1");
    let persisted_ack = a.expect(21);
    let m1 = assert_ack(&persisted_ack, Some("persist-1"));
    b.expect(20);
    b.delivered(&m1);
    b.read(&m1);
    a.expect(22);
    a.expect(23);
    b.send_and_ack(&group, "reply");
    a.expect(20);
    let alice_before = server.connect(&alice).sync_all(None);
    let bob_before = server.connect(&bob).sync_all(None);
    assert_eq!(
        types(&alice_before),
        vec![70, 20, 21, 22, 23, 20],
        "alice before:\n{}",
        show(&alice_before)
    );
    drop((a, b));

    let server = server.restart();

    // Accounts: login with the same password; the name is still taken.
    let token = server.login(&alice.name, PASSWORD);
    assert_eq!(jwt::claims(&token)["user_id"], alice.id.as_str());
    server
        .register_response(
            &alice.name,
            &format!("{}@example.com", unique("x")),
            PASSWORD,
        )
        .expect_error(409, "conflict");
    // The JWT issued before the restart is still valid (the generated secret persisted).
    server.open_session(&alice.token);

    // The old messaging tokens work on the new port.
    let mut a = Ws::connect(&server.ws_url(url_token(&alice_url)), "alice after restart");
    let mut b = Ws::connect(&server.ws_url(url_token(&bob_url)), "bob after restart");
    let alice_after = a.sync_all(None);
    let bob_after = b.sync_all(None);
    let idents = |v: &[Value]| v.iter().map(ident).collect::<Vec<_>>();
    assert_eq!(
        idents(&alice_after),
        idents(&alice_before),
        "alice's history after the restart:\n{}",
        show(&alice_after)
    );
    assert_eq!(
        idents(&bob_after),
        idents(&bob_before),
        "bob's history after the restart:\n{}",
        show(&bob_after)
    );

    // The idempotency key survived: the resend answers the original ack and stores nothing.
    a.send_message_id(&group, "before the restart", "persist-1");
    assert_eq!(a.expect(21), persisted_ack, "resend after a restart");
    b.assert_quiet();

    // The group works, and time moves on from where it was.
    let ack = a.send_and_ack(&group, "after the restart");
    let last_before = alice_before.iter().map(ts).max().unwrap();
    assert!(
        ts(&ack) > last_before,
        "timestamps after a restart continue after the old ones"
    );
    assert_eq!(b.expect(20)["body"]["data"], "after the restart");
    server
        .join(&bob, &group, None)
        .expect_error(409, "conflict");
}

/// Every acknowledged message is in the history exactly once, in send order.
#[track_caller]
fn assert_history_holds(
    history: &[Value],
    acks: &[Value],
    n_expected_at_least: usize,
) -> Vec<String> {
    let messages: Vec<&Value> = history.iter().filter(|e| ty(e) == 20).collect();
    let data: Vec<String> = messages
        .iter()
        .map(|m| m["body"]["data"].as_str().unwrap().to_string())
        .collect();
    assert!(
        messages.len() >= n_expected_at_least,
        "{} messages stored, {n_expected_at_least} acknowledged",
        messages.len()
    );
    for (i, m) in messages.iter().enumerate() {
        assert_eq!(
            m["body"]["data"],
            format!("m{i}"),
            "stored messages are the sends in order, each once: {data:?}"
        );
    }
    for (i, ack) in acks.iter().enumerate() {
        assert_eq!(
            messages[i]["body"]["message_id"], ack["body"]["message_id"],
            "acknowledged message m{i}"
        );
    }
    data
}

#[test]
fn acknowledged_messages_survive_kill_9() {
    let server = Server::start();
    let alice = server.user("alice");
    let alice_url = server.messaging_url(&alice.token);
    let mut a = Ws::connect(&alice_url, "alice");
    let group = server.create_group(&alice, "kill -9", &[]);
    a.expect(70);
    const N: usize = 50;
    for i in 0..N {
        a.queue_json(&json!({"method": 40, "id": format!("k-{i}"), "body": {"group_id": group, "data": format!("m{i}")}}));
    }
    a.flush();
    let acks: Vec<Value> = (0..N).map(|_| a.expect(21)).collect();
    // kill -9 right after the last ack arrived.
    let server = server.restart();

    let mut a = Ws::connect(&server.ws_url(url_token(&alice_url)), "alice after kill");
    let history = a.sync_all(None);
    let data = assert_history_holds(&history, &acks, N);
    assert_eq!(data.len(), N);
    for (i, ack) in acks.iter().enumerate() {
        assert_ack(ack, Some(&format!("k-{i}")));
    }
}

/// Killed in the middle of a burst: every acknowledged message survives; what was stored beyond
/// the acks is a prefix of the rest; resending everything with the same ids completes the history
/// without duplicates, and the acknowledged ones get their original acks back.
#[test]
fn kill_9_mid_burst_then_resend_completes_the_history_once() {
    let server = Server::start();
    let alice = server.user("alice");
    let alice_url = server.messaging_url(&alice.token);
    let mut a = Ws::connect(&alice_url, "alice");
    let group = server.create_group(&alice, "mid-burst", &[]);
    a.expect(70);
    const N: usize = 300;
    const KILL_AFTER: usize = 120;
    let rpc = |i: usize| json!({"method": 40, "id": format!("b-{i}"), "body": {"group_id": group, "data": format!("m{i}")}});
    for i in 0..N {
        a.queue_json(&rpc(i));
    }
    a.flush();
    let acks: Vec<Value> = (0..KILL_AFTER).map(|_| a.expect(21)).collect();
    let server = server.restart();

    let mut a = Ws::connect(&server.ws_url(url_token(&alice_url)), "alice after kill");
    let history = a.sync_all(None);
    let stored = assert_history_holds(&history, &acks, KILL_AFTER);

    for i in 0..N {
        a.queue_json(&rpc(i));
    }
    a.flush();
    for i in 0..N {
        let ack = a.expect(21);
        assert_ack(&ack, Some(&format!("b-{i}")));
        if let Some(original) = acks.get(i) {
            assert_eq!(
                &ack, original,
                "m{i} was acknowledged before the kill: the resend answers the original ack"
            );
        }
    }
    let mut fresh = server.connect(&alice);
    let history = fresh.sync_all(None);
    let all = assert_history_holds(&history, &[], N);
    assert_eq!(
        all.len(),
        N,
        "every message once after the resend ({} were stored at the kill)",
        stored.len()
    );
}

#[test]
fn http_successes_survive_kill_9() {
    let server = Server::start();
    // A registration answered 201, then kill -9.
    let name = unique("durable");
    let id = server.register(&name);
    let server = server.restart();
    let token = server.login(&name, PASSWORD);
    assert_eq!(jwt::claims(&token)["user_id"], id.as_str());

    // A session answered 201, then kill -9: its token connects.
    let url = server.messaging_url(&token);
    let server = server.restart();
    Ws::connect(&server.ws_url(url_token(&url)), "after kill").assert_quiet();

    // A group answered 201, then kill -9: it exists, with its creator as a member.
    let user = User {
        name: name.clone(),
        email: format!("{name}@example.com"),
        password: PASSWORD.into(),
        id: id.clone(),
        token,
    };
    let group = server.create_group(&user, "durable group", &[]);
    let server = server.restart();
    server
        .join(&user, &group, None)
        .expect_error(409, "conflict");

    // A leave answered 200, then kill -9: no longer a member.
    server.leave(&user, &group, None).expect(200);
    let server = server.restart();
    server
        .leave(&user, &group, None)
        .expect_error(409, "conflict");
    let history = server.connect(&user).sync_all(None);
    assert_eq!(
        types(&history),
        vec![70, 73],
        "history:\n{}",
        show(&history)
    );
}

/// Events reach other members before their commit is durable, so a client may hold a seq the
/// store has not made durable yet; after `kill -9` no seq seen may be handed out again, or a
/// sync from it would skip new events. Timestamps stay on the wall clock through a burst of
/// 50,000 sends (the first version's clock ran minutes ahead after one) and after the restart.
#[test]
fn seqs_seen_live_are_never_reissued_and_timestamps_stay_on_the_wall_after_kill_9() {
    let server = Server::start();
    let Pair {
        alice_url,
        bob_url,
        mut a,
        mut b,
        group,
        ..
    } = connected_pair(&server, "clock");

    const N: usize = 50_000;
    let started = now_ms();
    let mut seen = 0;
    for chunk in 0..N / 1000 {
        for i in 0..1000 {
            let data = format!("m{}", chunk * 1000 + i);
            a.queue_json(&json!({"method": 40, "body": {"group_id": group, "data": data}}));
        }
        a.flush();
        for _ in 0..1000 {
            let ack = a.expect(21);
            assert!(
                (started..=now_ms()).contains(&ts(&ack)),
                "ack stamped off the wall: {ack}"
            );
        }
        // bob reads as he goes (a reader 50,000 events behind is closed as a slow consumer).
        for _ in 0..1000 {
            let event = b.expect(20);
            assert!(seq(&event) > seen, "seqs out of order: {event}");
            seen = seq(&event);
            assert!(
                (started..=now_ms()).contains(&ts(&event)),
                "stamped off the wall: {event}"
            );
        }
    }
    let server = server.restart();

    let mut b = Ws::connect(&server.ws_url(url_token(&bob_url)), "bob after kill");
    let mut a = Ws::connect(&server.ws_url(url_token(&alice_url)), "alice after kill");
    let before = now_ms();
    a.send_message(&group, "after the kill");
    let ack = a.expect(21);
    let live = b.expect(20);
    assert!(
        seq(&live) > seen && seq(&ack) > seq(&live),
        "new seqs {} and {} must follow the last one seen before the kill, {seen}",
        seq(&live),
        seq(&ack)
    );
    for event in [&ack, &live] {
        assert!(
            (before..=now_ms()).contains(&ts(event)),
            "off the wall: {event}"
        );
    }
    let (page, done) = b.sync_page(Some(seen), None);
    assert_eq!(
        page.iter().map(ident).collect::<Vec<_>>(),
        vec![ident(&live)],
        "a sync from the last seq seen before the kill returns the new message"
    );
    assert_eq!(done["seq"], seq(&live));
}

/// A retry is recognised after a `kill -9` whether its send was held by the in-memory index
/// (rebuilt from the log at start) or, once the index was full, recorded in the store.
#[test]
fn retries_are_recognised_after_a_restart_from_the_index_and_beyond_it() {
    let server = Server::start_with_args(&["--client-ids-in-memory", "2"]);
    let Pair {
        alice_url,
        bob_url,
        mut a,
        mut b,
        group,
        ..
    } = connected_pair(&server, "retries");
    let ids = ["r-1", "r-2", "r-3", "r-4"];
    let mut acks = Vec::new();
    for id in ids {
        a.send_message_id(&group, id, id);
        acks.push(a.expect(21));
        b.expect(20);
    }
    assert_eq!(
        crate::hardening::metric(server.addr, "parley_recent_client_ids"),
        2
    );
    // Before the restart too: the two the index had no room for are answered from the store.
    for (id, original) in ids.iter().zip(&acks) {
        a.send_message_id(&group, id, id);
        assert_eq!(
            &a.expect(21),
            original,
            "the retry of {id} before the restart"
        );
    }
    b.assert_quiet();
    drop((a, b));
    let server = server.restart();
    let mut a = Ws::connect(&server.ws_url(url_token(&alice_url)), "alice after restart");
    let mut b = Ws::connect(&server.ws_url(url_token(&bob_url)), "bob after restart");
    for (id, original) in ids.iter().zip(&acks) {
        a.send_message_id(&group, id, id);
        assert_eq!(&a.expect(21), original, "the retry of {id}");
    }
    // Nothing was stored again: bob gets no message, and the history holds each once.
    b.assert_quiet();
    assert_eq!(
        crate::hardening::metric(server.addr, "parley_recent_client_ids"),
        2
    );
    let history = a.sync_all(None);
    let sent: Vec<_> = history.iter().filter(|e| ty(e) == 20).collect();
    assert_eq!(sent.len(), 4, "{}", show(&history));
}
