//! `GET /groups/{id}/messages?before=SEQ&limit=N` (issue #20): the newest page first, paged
//! exactly by `before` and `more`, each message as its live event 20, only the periods the
//! caller was a member, and exact 400/403/404 answers.

use crate::support::*;

/// `GET /groups/{group}/messages{query}` as `user`.
fn history(server: &Server, user: &User, group: &str, query: &str) -> Response {
    let auth = format!("Bearer {}", user.token);
    server.http().request(
        "GET",
        &format!("/groups/{group}/messages{query}"),
        &[("Authorization", auth.as_str())],
        None,
    )
}

/// A 200 page's messages and `more`, checking the body has exactly those two keys.
#[track_caller]
fn page(answer: &Response) -> (Vec<Value>, bool) {
    let body = answer.expect(200);
    assert_keys(&body, &["messages", "more"]);
    let messages = body["messages"].as_array().expect("an array").clone();
    (messages, body["more"].as_bool().expect("a bool"))
}

/// `alice` sends each of `texts` to `group`, acked one by one; `watcher` gets each event 20
/// (after the membership events before it), which are returned: what history must show.
fn send_all(alice: &mut Ws, watcher: &mut Ws, group: &str, texts: &[&str]) -> Vec<Value> {
    texts
        .iter()
        .map(|text| {
            alice.send_message(group, text);
            next_of_type(alice, 21);
            let message = next_of_type(watcher, 20);
            assert_eq!(message["body"]["data"], *text);
            message
        })
        .collect()
}

/// The next event of type `kind`, past the membership events before it.
fn next_of_type(ws: &mut Ws, kind: u64) -> Value {
    loop {
        let event = ws.recv_event();
        if ty(&event) == kind {
            return event;
        }
        assert!([70, 72, 73].contains(&ty(&event)), "unexpected {event}");
    }
}

#[test]
fn pages_go_back_from_the_newest_exactly_by_before_and_more() {
    let server = Server::start();
    let [alice, bob] = ["alice", "bob"].map(|n| server.user(n));
    let group = server.create_group(&alice, "history", &[&bob]);
    let mut ws_a = server.connect(&alice);
    let mut ws_b = server.connect(&bob);
    let texts = ["m1", "m2", "m3", "m4", "m5", "m6", "m7"];
    let sent = send_all(&mut ws_a, &mut ws_b, &group, &texts);
    // Events other than messages (a join, a rename) are in the group's stream too: not listed.
    let carol = server.user("carol");
    server.join(&carol, &group, None).expect(200);

    // Everything, with the default limit: oldest first, nothing older.
    assert_eq!(
        page(&history(&server, &bob, &group, "")),
        (sent.clone(), false)
    );
    // Pages of 3 from the newest: [m5 m6 m7] more, [m2 m3 m4] more, [m1] no more.
    let (newest, more) = page(&history(&server, &bob, &group, "?limit=3"));
    assert_eq!((newest.as_slice(), more), (&sent[4..7], true));
    let before = seq(&newest[0]);
    let (middle, more) = page(&history(
        &server,
        &alice,
        &group,
        &format!("?limit=3&before={before}"),
    ));
    assert_eq!((middle.as_slice(), more), (&sent[1..4], true));
    let before = seq(&middle[0]);
    let (oldest, more) = page(&history(
        &server,
        &bob,
        &group,
        &format!("?before={before}&limit=3"),
    ));
    assert_eq!((oldest.as_slice(), more), (&sent[0..1], false));
    // Before the first message: an empty page; a page that ends exactly at the oldest: no more.
    let first = seq(&sent[0]);
    assert_eq!(
        page(&history(&server, &bob, &group, &format!("?before={first}"))),
        (vec![], false)
    );
    let second = seq(&sent[1]);
    assert_eq!(
        page(&history(
            &server,
            &bob,
            &group,
            &format!("?before={second}&limit=1")
        )),
        (sent[0..1].to_vec(), false)
    );
}

#[test]
fn pages_read_the_stored_log_the_same_after_a_restart() {
    let server = Server::start();
    let [alice, bob] = ["alice", "bob"].map(|n| server.user(n));
    let group = server.create_group(&alice, "kept", &[&bob]);
    let mut ws_a = server.connect(&alice);
    let mut ws_b = server.connect(&bob);
    let texts: Vec<String> = (1..=25).map(|i| format!("n{i}")).collect();
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    let sent = send_all(&mut ws_a, &mut ws_b, &group, &texts);
    drop((ws_a, ws_b));
    let server = server.restart();
    let mut pages = Vec::new();
    let mut query = "?limit=4".to_string();
    loop {
        let (messages, more) = page(&history(&server, &alice, &group, &query));
        assert_eq!(
            messages.len(),
            if more { 4 } else { 1 },
            "page {}",
            pages.len()
        );
        query = format!("?limit=4&before={}", seq(&messages[0]));
        pages.push(messages);
        if !more {
            break;
        }
    }
    let listed: Vec<Value> = pages.into_iter().rev().flatten().collect();
    assert_eq!(listed, sent);
}

/// carol joins after m1, reads m2, leaves, misses m3, comes back for m4 and leaves again:
/// her history is m2 and m4, as a member and as a former member; dave, never a member, 403.
#[test]
fn only_the_periods_the_caller_was_a_member_are_listed() {
    let server = Server::start();
    let [alice, bob, carol, dave] = ["alice", "bob", "carol", "dave"].map(|n| server.user(n));
    let group = server.create_group(&alice, "periods", &[&bob]);
    let mut ws_a = server.connect(&alice);
    let mut ws_b = server.connect(&bob);
    let m1 = send_all(&mut ws_a, &mut ws_b, &group, &["m1"]);
    server.join(&carol, &group, None).expect(200);
    let m2 = send_all(&mut ws_a, &mut ws_b, &group, &["m2"]);
    server.leave(&carol, &group, None).expect(200);
    let m3 = send_all(&mut ws_a, &mut ws_b, &group, &["m3"]);
    server.join(&carol, &group, None).expect(200);
    let m4 = send_all(&mut ws_a, &mut ws_b, &group, &["m4"]);
    let hers = vec![m2[0].clone(), m4[0].clone()];
    assert_eq!(
        page(&history(&server, &carol, &group, "")),
        (hers.clone(), false)
    );
    // A page of one: m4, and `more` since m2 is hers too; then m2 and no more (m1 is not hers).
    let (last, more) = page(&history(&server, &carol, &group, "?limit=1"));
    assert_eq!((last, more), (m4.clone(), true));
    let before = seq(&m4[0]);
    let (last, more) = page(&history(
        &server,
        &carol,
        &group,
        &format!("?limit=1&before={before}"),
    ));
    assert_eq!((last, more), (m2.clone(), false));
    // A former member still reads the periods they were in, and nothing after.
    server.leave(&carol, &group, None).expect(200);
    send_all(&mut ws_a, &mut ws_b, &group, &["m5"]);
    assert_eq!(page(&history(&server, &carol, &group, "")), (hers, false));
    // bob sees everything.
    let (all, _) = page(&history(&server, &bob, &group, ""));
    assert_eq!(all.len(), 5);
    assert_eq!((&all[0], &all[2]), (&m1[0], &m3[0]));
    // Never a member: 403.
    assert_eq!(
        history(&server, &dave, &group, "").expect(403),
        json!({"error": "you are not a member of this group", "code": "not_member"})
    );
}

#[test]
fn bad_queries_unknown_groups_and_strangers_get_exact_answers() {
    let server = Server::start();
    let alice = server.user("alice");
    let group = server.create_group(&alice, "strict", &[]);
    let bad_before = "`before` must be an integer from 1 to 9007199254740992";
    let bad_limit = "`limit` must be an integer from 1 to 200";
    for (query, text) in [
        ("?limit=0", bad_limit),
        ("?limit=201", bad_limit),
        ("?limit=abc", bad_limit),
        ("?limit=", bad_limit),
        ("?limit=+5", bad_limit),
        ("?limit=-1", bad_limit),
        ("?before=0", bad_before),
        ("?before=9007199254740993", bad_before),
        ("?before=1.5", bad_before),
        ("?before=99999999999999999999999", bad_before),
        ("?limit=5&limit=6", "`limit` given twice"),
    ] {
        assert_eq!(
            history(&server, &alice, &group, query).expect(400),
            json!({"error": text, "code": "bad_request"}),
            "{query}"
        );
    }
    // The bounds themselves are fine.
    assert_eq!(
        page(&history(
            &server,
            &alice,
            &group,
            "?limit=200&before=9007199254740992"
        )),
        (vec![], false)
    );
    assert_eq!(
        page(&history(&server, &alice, &group, "?limit=1&before=1")),
        (vec![], false)
    );
    assert_eq!(
        history(&server, &alice, &random_uuid(), "").expect(404),
        json!({"error": "unknown group", "code": "not_found"})
    );
    assert_eq!(
        history(&server, &alice, "not-a-uuid", "").expect(404),
        json!({"error": "no such endpoint", "code": "not_found"})
    );
    let anonymous = server.get(&format!("/groups/{group}/messages"));
    anonymous.expect_error(401, "unauthorized");
    let post = server.post(
        &format!("/groups/{group}/messages"),
        Some(&alice.token),
        &json!({}),
    );
    post.expect_error(405, "method_not_allowed");
}
