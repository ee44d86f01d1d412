//! The group's owner (the creator, then the member in the group longest when the owner leaves,
//! announced by event 74), what only the owner may do, and `PUT /groups/{id}` renames: their
//! answers, the 74 every member gets, the rate they draw on, and both surviving a `kill -9`
//! and being replayed by sync.

use crate::support::*;

/// `{"error": text, "code": code}` exactly.
#[track_caller]
fn assert_error_body(answer: &Response, status: u16, code: &str, text: &str) {
    assert_eq!(
        answer.expect(status),
        json!({"error": text, "code": code}),
        "the whole error body"
    );
}

fn rename(server: &Server, actor: &User, group: &str, body: &Value) -> Response {
    server.put(&format!("/groups/{group}"), Some(&actor.token), body)
}

/// Event 74's body.
fn updated(group: &str, name: &str, owner: &str) -> Value {
    json!({"group_id": group, "name": name, "owner": owner})
}

#[test]
fn the_creator_owns_the_group_in_70_and_in_the_answers() {
    let server = Server::start();
    let [alice, bob, carol] = ["alice", "bob", "carol"].map(|n| server.user(n));
    let mut ws_b = server.connect(&bob);
    let group = server.create_group(&alice, "owned", &[&bob]);
    assert_eq!(
        ws_b.expect(70)["body"],
        json!({"group_id": group, "name": "owned", "owner": alice.id, "user_ids": [bob.id, alice.id]})
    );
    // Whoever joins or leaves, the view names the owner.
    let view = server.join(&carol, &group, None).expect(200);
    assert_group_answer(&view, &group, "owned");
    assert_eq!(view["owner"], alice.id.as_str());
    let view = server.leave(&bob, &group, None).expect(200);
    assert_eq!(
        view,
        json!({"group_id": group, "name": "owned", "owner": alice.id, "user_ids": [alice.id, carol.id]})
    );
}

#[test]
fn a_member_who_is_not_the_owner_cannot_remove_anyone() {
    let server = Server::start();
    let [alice, bob, carol] = ["alice", "bob", "carol"].map(|n| server.user(n));
    let group = server.create_group(&alice, "club", &[&bob, &carol]);
    let mut ws_c = server.connect(&carol);
    // Neither another member nor the owner.
    for target in [&carol, &alice] {
        let answer = server.leave(&bob, &group, Some(target));
        assert_error_body(
            &answer,
            403,
            "forbidden",
            "only the group's owner may remove someone else",
        );
    }
    ws_c.assert_quiet();
}

/// alice (creator, owner) with bob and carol; bob leaves and comes back, so carol has been in
/// the group longest after alice. alice leaves: carol owns the group, every member gets the 74
/// after the 73, alice gets the 73 only; carol may remove, alice (a non-member) may not, bob
/// (a member, not the owner) may not.
#[test]
fn when_the_owner_leaves_the_member_in_the_group_longest_takes_over() {
    let server = Server::start();
    let [alice, bob, carol, dave] = ["alice", "bob", "carol", "dave"].map(|n| server.user(n));
    let group = server.create_group(&alice, "relay", &[&bob, &carol]);
    server.leave(&bob, &group, None).expect(200);
    server.join(&bob, &group, None).expect(200);
    server.join(&dave, &group, None).expect(200);
    let mut ws_a = server.connect(&alice);
    let mut ws_b = server.connect(&bob);
    let mut ws_c = server.connect(&carol);
    let mut ws_d = server.connect(&dave);

    let view = server.leave(&alice, &group, None).expect(200);
    assert_eq!(
        view,
        json!({"group_id": group, "name": "relay", "owner": carol.id,
               "user_ids": [carol.id, bob.id, dave.id]})
    );
    let left = json!({"group_id": group, "user_id": alice.id});
    assert_eq!(ws_a.expect(73)["body"], left);
    ws_a.assert_quiet();
    let mut seqs = Vec::new();
    for ws in [&mut ws_b, &mut ws_c, &mut ws_d] {
        let gone = ws.expect(73);
        assert_eq!(gone["body"], left, "{}", ws.name);
        let handover = ws.expect(74);
        assert_eq!(
            handover["body"],
            updated(&group, "relay", &carol.id),
            "{}",
            ws.name
        );
        assert!(
            seq(&handover) > seq(&gone),
            "{}: the 74 after the 73",
            ws.name
        );
        seqs.push(seq(&handover));
        ws.assert_quiet();
    }
    assert!(
        seqs.windows(2).all(|w| w[0] == w[1]),
        "one stored 74: {seqs:?}"
    );

    // The old owner is a non-member: no rights.
    server
        .leave(&alice, &group, Some(&dave))
        .expect_error(403, "forbidden");
    // A member who is not the owner: none over others.
    assert_error_body(
        &server.leave(&bob, &group, Some(&dave)),
        403,
        "forbidden",
        "only the group's owner may remove someone else",
    );
    // The new owner may remove, and the removal holds against a rejoin by id.
    let view = server.leave(&carol, &group, Some(&dave)).expect(200);
    assert_eq!(view["owner"], carol.id.as_str());
    assert_eq!(view["user_ids"], json!([carol.id, bob.id]));
    for ws in [&mut ws_b, &mut ws_c, &mut ws_d] {
        assert_eq!(ws.expect(73)["body"]["user_id"], dave.id.as_str());
    }
    server
        .join(&dave, &group, None)
        .expect_error(403, "forbidden");
    // Nothing but the 73s: a removal by the owner hands nothing on.
    for ws in [&mut ws_a, &mut ws_b, &mut ws_c, &mut ws_d] {
        ws.assert_quiet();
    }
}

#[test]
fn the_last_member_leaving_leaves_no_owner_and_the_next_to_join_owns_the_group() {
    let server = Server::start();
    let [alice, bob, carol] = ["alice", "bob", "carol"].map(|n| server.user(n));
    let group = server.create_group(&alice, "empty", &[]);
    let mut ws_a = server.connect(&alice);
    assert_eq!(
        server.leave(&alice, &group, None).expect(200),
        json!({"group_id": group, "name": "empty", "owner": null, "user_ids": []})
    );
    ws_a.expect(73);
    ws_a.assert_quiet();

    let mut ws_b = server.connect(&bob);
    let view = server.join(&bob, &group, None).expect(200);
    assert_eq!(
        view,
        json!({"group_id": group, "name": "empty", "owner": bob.id, "user_ids": [bob.id]})
    );
    assert_eq!(
        ws_b.expect(70)["body"],
        json!({"group_id": group, "name": "empty", "owner": bob.id, "user_ids": [bob.id]})
    );
    assert_eq!(
        ws_b.expect(72)["body"],
        json!({"group_id": group, "user_id": bob.id})
    );
    assert_eq!(ws_b.expect(74)["body"], updated(&group, "empty", &bob.id));
    ws_b.assert_quiet();
    ws_a.assert_quiet();

    // bob has the owner's rights; the creator, back as a member, has not.
    server.join(&alice, &group, None).expect(200);
    server.join(&carol, &group, None).expect(200);
    server
        .leave(&alice, &group, Some(&carol))
        .expect_error(403, "forbidden");
    server.leave(&bob, &group, Some(&carol)).expect(200);
}

#[test]
fn a_member_renames_the_group_and_every_member_hears_of_it() {
    let server = Server::start();
    let [alice, bob, carol] = ["alice", "bob", "carol"].map(|n| server.user(n));
    let group = server.create_group(&alice, "before", &[&bob, &carol]);
    let mut ws_a = server.connect(&alice);
    let mut ws_b = server.connect(&bob);
    let mut ws_b2 = server.connect(&bob);
    let mut ws_c = server.connect(&carol);

    // bob is a member, not the owner: he may rename. The name is trimmed, as at creation.
    let view = rename(&server, &bob, &group, &json!({"name": "  after  "})).expect(200);
    assert_eq!(
        view,
        json!({"group_id": group, "name": "after", "owner": alice.id,
               "user_ids": [bob.id, carol.id, alice.id]})
    );
    let mut seqs = Vec::new();
    for ws in [&mut ws_a, &mut ws_b, &mut ws_b2, &mut ws_c] {
        let ev = ws.expect(74);
        assert!(ev["id"].is_null(), "{}: {ev}", ws.name);
        assert_eq!(
            ev["body"],
            updated(&group, "after", &alice.id),
            "{}",
            ws.name
        );
        seqs.push(seq(&ev));
        ws.assert_quiet();
    }
    assert!(seqs.windows(2).all(|w| w[0] == w[1]), "one 74: {seqs:?}");

    // 256 characters is fine; the same name again is a 200 that changes nothing (no event).
    let long = "n".repeat(256);
    assert_eq!(
        rename(&server, &carol, &group, &json!({"name": long})).expect(200)["name"],
        long.as_str()
    );
    assert_eq!(ws_a.expect(74)["body"]["name"], long.as_str());
    assert_eq!(
        rename(&server, &carol, &group, &json!({"name": long})).expect(200)["name"],
        long.as_str()
    );
    ws_a.assert_quiet();
    ws_c.expect(74);
    ws_c.assert_quiet();
}

#[test]
fn renames_refused_with_exact_answers() {
    let server = Server::start();
    let [alice, bob, eve] = ["alice", "bob", "eve"].map(|n| server.user(n));
    let group = server.create_group(&alice, "kept", &[&bob]);
    let mut ws_b = server.connect(&bob);

    // A non-member: 403, whether never a member or the creator who left.
    assert_error_body(
        &rename(&server, &eve, &group, &json!({"name": "mine"})),
        403,
        "forbidden",
        "a non-member has no rights over this group",
    );
    // Bad names and bodies: 400.
    for body in [
        json!({"name": ""}),
        json!({"name": "   "}),
        json!({"name": "x".repeat(257)}),
        json!({"name": 7}),
        json!({"name": null}),
        json!({}),
        json!(["kept"]),
    ] {
        rename(&server, &bob, &group, &body).expect_error_for(&body, 400, "bad_request");
    }
    let not_json = server.http().request(
        "PUT",
        &format!("/groups/{group}"),
        &[
            ("Authorization", &format!("Bearer {}", bob.token)),
            ("Content-Type", "application/json"),
        ],
        Some(b"{\"name\":"),
    );
    not_json.expect_error(400, "bad_request");
    // Unknown group, a path that is no group id: 404. No token or a bad one: 401.
    rename(&server, &bob, &random_uuid(), &json!({"name": "x"})).expect_error(404, "not_found");
    server
        .put(
            "/groups/not-a-uuid",
            Some(&bob.token),
            &json!({"name": "x"}),
        )
        .expect_error(404, "not_found");
    let path = format!("/groups/{group}");
    server
        .put(&path, None, &json!({"name": "x"}))
        .expect_error(401, "unauthorized");
    server
        .put(&path, Some("not.a.token"), &json!({"name": "x"}))
        .expect_error(401, "unauthorized");
    // Another method on the group's path: 405; GET (the view, issue #20) and PUT allowed.
    let answer = server.http().request("POST", &path, &[], Some(b"{}"));
    answer.expect_error(405, "method_not_allowed");
    assert_eq!(answer.header("allow"), Some("GET, HEAD, PUT"));

    server.leave(&alice, &group, None).expect(200);
    ws_b.expect(73);
    ws_b.expect(74);
    server
        .put(&path, Some(&alice.token), &json!({"name": "mine again"}))
        .expect_error(403, "forbidden");
    // None of it renamed anything.
    ws_b.assert_quiet();
    assert_eq!(server.join(&eve, &group, None).expect(200)["name"], "kept");
}

/// Renames draw on the member's membership-change budget, so a member cannot flood the others
/// with 74s: past it, 429 and no event.
#[test]
fn renames_are_rate_limited_with_joins_and_leaves() {
    let server = Server::start_with_args(&["--membership-changes-per-minute", "2"]);
    let [alice, bob] = ["alice", "bob"].map(|n| server.user(n));
    let group = server.create_group(&alice, "r0", &[&bob]);
    let mut ws_a = server.connect(&alice);
    for name in ["r1", "r2"] {
        rename(&server, &bob, &group, &json!({"name": name})).expect(200);
        assert_eq!(ws_a.expect(74)["body"]["name"], name);
    }
    let answer = rename(&server, &bob, &group, &json!({"name": "r3"}));
    assert_eq!(
        answer.expect(429),
        json!({"error": "more than 2 joins, leaves and renames a minute; nothing was changed, try again later",
               "code": "rate_limited"})
    );
    ws_a.assert_quiet();
    // Another member's budget is their own.
    rename(&server, &alice, &group, &json!({"name": "r3"})).expect(200);
    assert_eq!(ws_a.expect(74)["body"]["name"], "r3");
}

/// The rename and the handover are stored: a `kill -9` later, the group has its new name and
/// owner, and a new device's sync replays both 74s, in order, at their seqs.
#[test]
fn the_74s_survive_a_kill_9_and_are_replayed_by_sync() {
    let server = Server::start();
    let [alice, bob, carol] = ["alice", "bob", "carol"].map(|n| server.user(n));
    let group = server.create_group(&alice, "first", &[&bob]);
    let mut ws_b = server.connect(&bob);
    rename(&server, &alice, &group, &json!({"name": "second"})).expect(200);
    let renamed = ws_b.expect(74);
    server.leave(&alice, &group, None).expect(200);
    ws_b.expect(73);
    let handed = ws_b.expect(74);
    assert_eq!(handed["body"], updated(&group, "second", &bob.id));
    drop(ws_b);

    let server = server.restart();
    let mut ws = server.connect(&bob);
    let replayed: Vec<Value> = ws
        .sync_all(None)
        .into_iter()
        .filter(|e| ty(e) == 74)
        .collect();
    assert_eq!(
        replayed.iter().map(ident).collect::<Vec<_>>(),
        [&renamed, &handed].map(ident).to_vec(),
        "the same 74s, same seqs and bodies:\n{}",
        show(&replayed)
    );
    // alice's sync ends at her 73: the handover is not hers.
    let mut ws_a = server.connect(&alice);
    let alices = ws_a.sync_all(None);
    assert_eq!(
        types(&alices),
        vec![70, 74, 73],
        "alice: created, renamed, left:\n{}",
        show(&alices)
    );

    // The record too: name and owner after the restart.
    let view = server.join(&carol, &group, None).expect(200);
    assert_eq!(
        view,
        json!({"group_id": group, "name": "second", "owner": bob.id, "user_ids": [bob.id, carol.id]})
    );
    server
        .leave(&alice, &group, Some(&carol))
        .expect_error(403, "forbidden");
    server.leave(&bob, &group, Some(&carol)).expect(200);
    assert_eq!(ws.expect(72)["body"]["user_id"], carol.id.as_str());
    assert_eq!(ws.expect(73)["body"]["user_id"], carol.id.as_str());
    ws.assert_quiet();
}
