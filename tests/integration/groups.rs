//! Group creation (POST /groups) and the join/leave rules (PUT /groups/{id}/join|left), with the
//! events each member's connection gets.

use crate::support::*;

// ---- creation ----

#[test]
fn create_group_validates_name_and_members() {
    let server = Server::start();
    let alice = server.user("alice");
    let bob = server.user("bob");

    for body in [
        json!({"user_ids": [bob.id]}),
        json!({"name": "", "user_ids": [bob.id]}),
        json!({"name": 7, "user_ids": [bob.id]}),
        json!({"name": "x".repeat(257)}),
        json!({"name": "g", "user_ids": "not a list"}),
        json!({"name": "g", "user_ids": ["not-a-uuid"]}),
    ] {
        let answer = server.create_group_response(&alice.token, &body);
        answer.expect_error_for(&body, 400, "bad_request");
    }

    // Unknown ids are named in the error.
    let ghost1 = random_uuid();
    let ghost2 = random_uuid();
    let text = server
        .create_group_response(
            &alice.token,
            &json!({"name": "g", "user_ids": [bob.id, ghost1, ghost2]}),
        )
        .expect_error(400, "bad_request");
    assert!(
        text.contains(&ghost1) && text.contains(&ghost2),
        "the error names the unknown ids: {text:?}"
    );
    assert!(
        !text.contains(&bob.id),
        "the error names only the unknown ids: {text:?}"
    );

    // 256 characters is fine.
    let body = server
        .create_group_response(&alice.token, &json!({"name": "n".repeat(256)}))
        .expect(201);
    assert_keys(&body, &["id"]);
}

#[test]
fn create_group_folds_duplicates_and_the_creator() {
    let server = Server::start();
    let alice = server.user("alice");
    let bob = server.user("bob");
    let carol = server.user("carol");
    let mut ws_a = server.connect(&alice);
    let mut ws_b = server.connect(&bob);
    let mut ws_c = server.connect(&carol);

    let body = server
        .create_group_response(
            &alice.token,
            &json!({"name": "folded", "user_ids": [bob.id, alice.id, carol.id, bob.id, alice.id]}),
        )
        .expect(201);
    let group = assert_uuid(&body["id"]);
    for ws in [&mut ws_a, &mut ws_b, &mut ws_c] {
        let ev = ws.expect(70);
        assert_eq!(
            ev["body"],
            json!({"group_id": group, "name": "folded", "owner": alice.id, "user_ids": [bob.id, carol.id, alice.id]}),
            "{}: members folded, creator last and the owner",
            ws.name
        );
        ws.assert_quiet();
    }
}

#[test]
fn create_group_without_members_holds_the_creator() {
    let server = Server::start();
    let alice = server.user("alice");
    let mut ws = server.connect(&alice);
    for body in [
        json!({"name": "solo"}),
        json!({"name": "solo", "user_ids": []}),
    ] {
        let group = assert_uuid(
            &server
                .create_group_response(&alice.token, &body)
                .expect(201)["id"],
        );
        let ev = ws.expect(70);
        assert_eq!(
            ev["body"],
            json!({"group_id": group, "name": "solo", "owner": alice.id, "user_ids": [alice.id]})
        );
    }
    // And it can be used.
    let group = ws.log[0]["body"]["group_id"].as_str().unwrap().to_string();
    ws.send_and_ack(&group, "talking to myself");
    ws.assert_quiet();
}

#[test]
fn group_events_reach_only_members() {
    let server = Server::start();
    let alice = server.user("alice");
    let bob = server.user("bob");
    let eve = server.user("eve");
    let mut ws_b = server.connect(&bob);
    let mut ws_e = server.connect(&eve);
    let group = server.create_group(&alice, "private", &[&bob]);
    ws_b.expect(70);
    let mut ws_a = server.connect(&alice);
    ws_a.send_and_ack(&group, "secret");
    ws_b.expect(20);
    ws_e.assert_quiet();
}

// ---- join ----

#[test]
fn anyone_may_join_by_group_id() {
    let server = Server::start();
    let alice = server.user("alice");
    let bob = server.user("bob");
    let carol = server.user("carol");
    let dave = server.user("dave");
    let mut ws_a = server.connect(&alice);
    let group = server.create_group(&alice, "open", &[]);
    ws_a.expect(70);

    // Without a body, with `{}`, and with one's own id: all mean the caller.
    let mut ws_b = server.connect(&bob);
    let answer = server.http().request(
        "PUT",
        &format!("/groups/{group}/join"),
        &[("Authorization", &format!("Bearer {}", bob.token))],
        None,
    );
    let members = assert_group_answer(&answer.expect(200), &group, "open");
    assert_eq!(members.len(), 2);
    let ev = ws_b.expect(70);
    assert_eq!(ev["body"]["group_id"], group.as_str());
    assert_eq!(ev["body"]["name"], "open");
    assert_eq!(
        id_set(&ev["body"]["user_ids"]),
        set_of(&[&alice.id, &bob.id])
    );
    assert_eq!(
        ws_b.expect(72)["body"],
        json!({"group_id": group, "user_id": bob.id})
    );
    assert_eq!(
        ws_a.expect(72)["body"],
        json!({"group_id": group, "user_id": bob.id})
    );

    let answer = server.join(&carol, &group, None);
    assert_eq!(
        id_set(&answer.expect(200)["user_ids"]),
        set_of(&[&alice.id, &bob.id, &carol.id])
    );
    let answer = server.join(&dave, &group, Some(&dave));
    assert_eq!(
        id_set(&answer.expect(200)["user_ids"]),
        set_of(&[&alice.id, &bob.id, &carol.id, &dave.id])
    );
    assert_eq!(ws_a.expect(72)["body"]["user_id"], carol.id.as_str());
    assert_eq!(ws_a.expect(72)["body"]["user_id"], dave.id.as_str());
    assert_eq!(ws_b.expect(72)["body"]["user_id"], carol.id.as_str());
    assert_eq!(ws_b.expect(72)["body"]["user_id"], dave.id.as_str());
    ws_a.assert_quiet();
    ws_b.assert_quiet();
}

#[test]
fn a_member_may_add_someone_and_a_non_member_may_not() {
    let server = Server::start();
    let alice = server.user("alice");
    let bob = server.user("bob");
    let carol = server.user("carol");
    let dave = server.user("dave");
    let group = server.create_group(&alice, "club", &[&bob]);
    let mut ws_a = server.connect(&alice);
    let mut ws_c = server.connect(&carol);

    // dave is not a member: he may not add carol.
    server
        .join(&dave, &group, Some(&carol))
        .expect_error(403, "forbidden");
    ws_c.assert_quiet();

    // bob is a member (not the creator): he may.
    let answer = server.join(&bob, &group, Some(&carol));
    assert_eq!(
        id_set(&answer.expect(200)["user_ids"]),
        set_of(&[&alice.id, &bob.id, &carol.id])
    );
    let ev = ws_c.expect(70);
    assert_eq!(
        id_set(&ev["body"]["user_ids"]),
        set_of(&[&alice.id, &bob.id, &carol.id])
    );
    assert_eq!(
        ws_c.expect(72)["body"],
        json!({"group_id": group, "user_id": carol.id})
    );
    assert_eq!(
        ws_a.expect(72)["body"],
        json!({"group_id": group, "user_id": carol.id})
    );

    // Joining a member again: 409, whoever asks.
    server
        .join(&carol, &group, None)
        .expect_error(409, "conflict");
    server
        .join(&alice, &group, Some(&bob))
        .expect_error(409, "conflict");
    // An unknown target user: 400.
    server
        .put(
            &format!("/groups/{group}/join"),
            Some(&alice.token),
            &json!({"user_id": random_uuid()}),
        )
        .expect_error(400, "bad_request");
    ws_a.assert_quiet();
    ws_c.assert_quiet();
}

#[test]
fn unknown_group_is_404() {
    let server = Server::start();
    let alice = server.user("alice");
    let group = random_uuid();
    server
        .join(&alice, &group, None)
        .expect_error(404, "not_found");
    server
        .leave(&alice, &group, None)
        .expect_error(404, "not_found");
    server
        .join(&alice, &group, Some(&alice))
        .expect_error(404, "not_found");
}

// ---- leave ----

#[test]
fn only_the_owner_may_remove_someone_else() {
    let server = Server::start();
    let alice = server.user("alice");
    let bob = server.user("bob");
    let carol = server.user("carol");
    let group = server.create_group(&alice, "club", &[&bob, &carol]);
    let mut ws_a = server.connect(&alice);
    let mut ws_b = server.connect(&bob);
    let mut ws_c = server.connect(&carol);

    // bob (a member, not the owner) may not remove carol.
    server
        .leave(&bob, &group, Some(&carol))
        .expect_error(403, "forbidden");
    ws_c.assert_quiet();

    // alice (the creator, so the owner) may.
    let answer = server.leave(&alice, &group, Some(&carol));
    let body = answer.expect(200);
    assert_group_answer(&body, &group, "club");
    assert_eq!(id_set(&body["user_ids"]), set_of(&[&alice.id, &bob.id]));
    for ws in [&mut ws_a, &mut ws_b, &mut ws_c] {
        assert_eq!(
            ws.expect(73)["body"],
            json!({"group_id": group, "user_id": carol.id}),
            "{}",
            ws.name
        );
    }
    // carol gets nothing more from the group.
    ws_a.send_and_ack(&group, "after carol");
    ws_b.expect(20);
    ws_c.assert_quiet();
    ws_a.assert_quiet();
    ws_b.assert_quiet();
}

#[test]
fn leave_rules() {
    let server = Server::start();
    let alice = server.user("alice");
    let bob = server.user("bob");
    let carol = server.user("carol");
    let group = server.create_group(&alice, "club", &[&bob]);
    let mut ws_a = server.connect(&alice);
    let mut ws_b = server.connect(&bob);

    // Left of a non-member: 409, whether by themselves or by the creator.
    server
        .leave(&carol, &group, None)
        .expect_error(409, "conflict");
    server
        .leave(&alice, &group, Some(&carol))
        .expect_error(409, "conflict");
    // A non-member removing a member: 403.
    server
        .leave(&carol, &group, Some(&bob))
        .expect_error(403, "forbidden");
    // Unknown target: 400.
    server
        .put(
            &format!("/groups/{group}/left"),
            Some(&alice.token),
            &json!({"user_id": random_uuid()}),
        )
        .expect_error(400, "bad_request");
    ws_a.assert_quiet();
    ws_b.assert_quiet();

    // bob leaves by himself (empty body = the caller).
    let answer = server.http().request(
        "PUT",
        &format!("/groups/{group}/left"),
        &[("Authorization", &format!("Bearer {}", bob.token))],
        None,
    );
    assert_eq!(
        answer.expect(200),
        json!({"group_id": group, "name": "club", "owner": alice.id, "user_ids": [alice.id]})
    );
    assert_eq!(
        ws_b.expect(73)["body"],
        json!({"group_id": group, "user_id": bob.id})
    );
    assert_eq!(
        ws_a.expect(73)["body"],
        json!({"group_id": group, "user_id": bob.id})
    );
    // Leaving twice: 409.
    server
        .leave(&bob, &group, None)
        .expect_error(409, "conflict");

    // A user who left can no longer send to the group.
    ws_b.send_json(&json!({"method": 40, "id": "after-leaving", "body": {"group_id": group, "data": "still here?"}}));
    ws_b.expect_error("not_member", Some(40), Some("after-leaving"));
    ws_a.assert_quiet();
    ws_b.assert_quiet();
}

#[test]
fn the_creator_may_leave_and_rejoin() {
    let server = Server::start();
    let alice = server.user("alice");
    let bob = server.user("bob");
    let group = server.create_group(&alice, "club", &[&bob]);
    let mut ws_a = server.connect(&alice);
    let mut ws_b = server.connect(&bob);
    assert_eq!(
        server.leave(&alice, &group, None).expect(200)["user_ids"],
        json!([bob.id])
    );
    ws_a.expect(73);
    ws_b.expect(73);
    assert_eq!(ws_b.expect(74)["body"]["owner"], bob.id.as_str());
    server.join(&alice, &group, None).expect(200);
    assert_eq!(ws_a.expect(70)["body"]["owner"], bob.id.as_str());
    ws_a.expect(72);
    ws_b.expect(72);
    ws_a.assert_quiet();
    ws_b.assert_quiet();
}
