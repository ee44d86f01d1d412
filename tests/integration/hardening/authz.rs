//! Authorization as a matrix: for each kind of user (member, never a member, left, removed) and
//! each RPC (send, typing, delivered, read, sync), the exact outcome; the join/leave rules of
//! decision 7 as a table of REST calls; and the scope of each credential (an access token
//! reaches only its own user's events; a JWT is not an access token and vice versa).

use crate::support::ws::ConnectError;
use crate::support::*;

/// One REST join/leave call and its exact answer.
struct Step {
    what: &'static str,
    actor: usize,
    join: bool,
    /// `None`: the actor itself (no `user_id`).
    target: Option<usize>,
    status: u16,
    code: Option<&'static str>,
}

#[test]
fn join_and_leave_rules_as_a_table() {
    let server = Server::start();
    let [alice, bob, carol, dave] = ["alice", "bob", "carol", "dave"].map(|n| server.user(n));
    let users = [&alice, &bob, &carol, &dave];
    let group = server.create_group(&alice, "rules", &[&bob]);
    const ALICE: usize = 0;
    const BOB: usize = 1;
    const CAROL: usize = 2;
    const DAVE: usize = 3;
    let step = |what, actor, join, target, status, code| Step {
        what,
        actor,
        join,
        target,
        status,
        code,
    };
    let steps = [
        step(
            "a non-member adds someone else",
            CAROL,
            true,
            Some(DAVE),
            403,
            Some("forbidden"),
        ),
        step("a member adds someone", BOB, true, Some(DAVE), 200, None),
        step(
            "the target is already a member",
            BOB,
            true,
            Some(DAVE),
            409,
            Some("conflict"),
        ),
        step("anyone joins by the group id", CAROL, true, None, 200, None),
        step("joining twice", CAROL, true, None, 409, Some("conflict")),
        step(
            "a member who is not the creator removes someone",
            BOB,
            false,
            Some(CAROL),
            403,
            Some("forbidden"),
        ),
        step("a member leaves", DAVE, false, None, 200, None),
        step("leaving twice", DAVE, false, None, 409, Some("conflict")),
        step(
            "the creator removes someone",
            ALICE,
            false,
            Some(CAROL),
            200,
            None,
        ),
        step(
            "the creator removes a non-member",
            ALICE,
            false,
            Some(DAVE),
            409,
            Some("conflict"),
        ),
        step(
            "a user removed by the creator joins again by the id",
            CAROL,
            true,
            None,
            403,
            Some("forbidden"),
        ),
        step(
            "a member adds the removed user back",
            BOB,
            true,
            Some(CAROL),
            200,
            None,
        ),
        step(
            "a member removes herself by id",
            CAROL,
            false,
            Some(CAROL),
            200,
            None,
        ),
        step(
            "a user who left by herself joins again by the id",
            CAROL,
            true,
            None,
            200,
            None,
        ),
        step("the creator leaves", ALICE, false, None, 200, None),
        step(
            "the creator who left removes a member",
            ALICE,
            false,
            Some(CAROL),
            403,
            Some("forbidden"),
        ),
        step(
            "the creator who left adds someone",
            ALICE,
            true,
            Some(DAVE),
            403,
            Some("forbidden"),
        ),
    ];
    let mut members = set_of(&[&alice.id, &bob.id]);
    for s in &steps {
        let actor = users[s.actor];
        let target = s.target.map(|t| users[t]);
        let answer = if s.join {
            server.join(actor, &group, target)
        } else {
            server.leave(actor, &group, target)
        };
        match s.code {
            Some(code) => {
                answer.expect_error_for(s.what, s.status, code);
            }
            None => {
                let who = target.unwrap_or(actor);
                if s.join {
                    members.insert(who.id.clone());
                } else {
                    members.remove(&who.id);
                }
                let ids = assert_group_answer(&answer.expect(s.status), &group, "rules");
                assert_eq!(
                    ids.into_iter().collect::<std::collections::BTreeSet<_>>(),
                    members,
                    "{}",
                    s.what
                );
            }
        }
    }
    // Unknown group, unknown target, no or a bad token.
    server
        .join(&bob, &random_uuid(), None)
        .expect_error(404, "not_found");
    let ghost = User {
        id: random_uuid(),
        ..dave.clone()
    };
    server
        .join(&bob, &group, Some(&ghost))
        .expect_error(400, "bad_request");
    let path = format!("/groups/{group}/join");
    server
        .put(&path, None, &json!({}))
        .expect_error(401, "unauthorized");
    server
        .put(&path, Some("not.a.token"), &json!({}))
        .expect_error(401, "unauthorized");
}

/// The creator's removal is stored with the group: after a restart (kill -9) the removed user
/// still cannot join by the id, a member's adding them clears it, and that survives a restart
/// too; a creator who left has no rights left after a restart either.
#[test]
fn a_removal_by_the_creator_survives_a_restart() {
    let server = Server::start();
    let [alice, bob, carol] = ["alice", "bob", "carol"].map(|n| server.user(n));
    let group = server.create_group(&alice, "kept", &[&bob, &carol]);
    server.leave(&alice, &group, Some(&bob)).expect(200);

    let server = server.restart();
    server
        .join(&bob, &group, None)
        .expect_error(403, "forbidden");
    let ids = assert_group_answer(
        &server.join(&carol, &group, Some(&bob)).expect(200),
        &group,
        "kept",
    );
    assert_eq!(
        ids.into_iter().collect::<std::collections::BTreeSet<_>>(),
        set_of(&[&alice.id, &bob.id, &carol.id])
    );
    server.leave(&bob, &group, None).expect(200);

    let server = server.restart();
    server.join(&bob, &group, None).expect(200);
    server.leave(&alice, &group, None).expect(200);

    let server = server.restart();
    server
        .leave(&alice, &group, Some(&carol))
        .expect_error(403, "forbidden");
    server
        .join(&alice, &group, Some(&carol))
        .expect_error(403, "forbidden");
}

#[test]
fn outsiders_cannot_send_type_mark_or_sync_a_groups_events() {
    let server = Server::start();
    let [alice, bob, eve, leaver, removed] =
        ["alice", "bob", "eve", "leaver", "removed"].map(|n| server.user(n));
    let group = server.create_group(&alice, "private", &[&bob, &leaver, &removed]);
    server.leave(&leaver, &group, None).expect(200);
    server.leave(&alice, &group, Some(&removed)).expect(200);
    let mut a = server.connect(&alice);
    let mut b = server.connect(&bob);
    let message_id = assert_ack(&a.send_and_ack(&group, "members only"), None);
    assert_eq!(b.expect(20)["body"]["data"], "members only");

    for outsider in [&eve, &leaver, &removed] {
        let mut ws = server.connect(outsider);
        let rpcs = [
            (40, json!({"group_id": group, "data": "let me in"})),
            (41, json!({"message_id": message_id})),
            (42, json!({"message_id": message_id})),
            (60, json!({"group_id": group})),
            (61, json!({"group_id": group})),
        ];
        for (method, body) in rpcs {
            let id = format!("{}-{method}", outsider.name);
            ws.send_json(&json!({"method": method, "id": id, "body": body}));
            ws.expect_error("not_member", Some(method), Some(&id));
        }
        // Sync: nothing of the group after the outsider's own departure, and never the message.
        let history = ws.sync_all(None);
        let of_group: Vec<&Value> = history
            .iter()
            .filter(|e| e["body"]["group_id"] == group.as_str())
            .collect();
        if outsider.name == eve.name {
            assert!(
                of_group.is_empty(),
                "eve sees nothing of the group:\n{}",
                show(&history)
            );
        } else {
            let last = of_group
                .last()
                .expect("a former member sees its membership");
            assert_eq!(
                ty(last),
                73,
                "the last group event a former member sees is its leave: {last}"
            );
            assert_eq!(last["body"]["user_id"], outsider.id.as_str());
        }
        assert!(
            !history
                .iter()
                .any(|e| e["body"]["message_id"] == message_id.as_str()),
            "{} sees the message:\n{}",
            outsider.name,
            show(&history)
        );
        ws.assert_quiet();
    }
    // The members saw nothing of the attempts; the group still works for them.
    a.assert_quiet();
    b.assert_quiet();
    b.delivered(&message_id);
    let receipt = a.expect(22);
    assert_eq!(receipt["body"]["message_id"], message_id.as_str());
    assert_eq!(receipt["body"]["user_id"], bob.id.as_str());
    b.typing_start(&group);
    assert_eq!(a.expect(40)["body"]["user_id"], bob.id.as_str());
}

#[test]
fn each_credential_reaches_only_its_own_user() {
    let server = Server::start();
    let alice = server.user("alice");
    let bob = server.user("bob");
    let alice_url = server.messaging_url(&alice.token);
    let bob_url = server.messaging_url(&bob.token);
    let group = server.create_group(&alice, "shared", &[&bob]);
    let mut a = Ws::connect(&alice_url, "alice");
    let mut b = Ws::connect(&bob_url, "bob");
    let alices = assert_ack(&a.send_and_ack(&group, "from alice"), None);
    b.expect(20);
    let bobs = assert_ack(&b.send_and_ack(&group, "from bob"), None);
    a.expect(20);

    // An access token's sync holds its own user's acks only.
    let acks = |ws: &mut Ws| -> Vec<String> {
        ws.sync_all(None)
            .iter()
            .filter(|e| ty(e) == 21)
            .map(|e| e["body"]["message_id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(acks(&mut a), vec![alices.clone()]);
    assert_eq!(acks(&mut b), vec![bobs.clone()]);

    // A JWT is not an access token, an access token is not a JWT, and near misses are nothing.
    let alice_access = url_token(&alice_url);
    for path_token in [
        alice.token.as_str(),
        &format!("{alice_access}x"),
        &alice_access[1..],
        &alice_access.to_uppercase(),
    ] {
        match Ws::try_connect(&server.ws_url(path_token), "forged") {
            Err(ConnectError::Status(401)) => {}
            Err(other) => panic!("{path_token}: {other:?}"),
            Ok(_) => panic!("{path_token}: a WebSocket opened"),
        }
    }
    server
        .session_response(alice_access, &session_body())
        .expect_error(401, "unauthorized");
    server
        .create_group_response(alice_access, &json!({"name": "x"}))
        .expect_error(401, "unauthorized");
    a.assert_quiet();
    b.assert_quiet();
}
