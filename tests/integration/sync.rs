//! Sync (RPC 20): cursor forms, paging, catch-up after a disconnect, "what sync returns is what
//! the user's connections received live", and who may see a group's events.

use crate::support::*;

/// alice sends `n` messages to a group with bob; returns (group, bob, alice's acks).
fn history(server: &Server, n: usize) -> (String, User, Vec<Value>) {
    let alice = server.user("alice");
    let bob = server.user("bob");
    let mut a = server.connect(&alice);
    let group = server.create_group(&alice, "history", &[&bob]);
    a.expect(70);
    let acks = (0..n)
        .map(|i| a.send_and_ack(&group, &format!("m{i}")))
        .collect();
    (group, bob, acks)
}

/// The 29 a page ends with: the stamp of its last event.
fn done_after(last: &Value, more: bool) -> Value {
    json!({"timestamp": ts(last), "seq": seq(last), "more": more})
}

#[test]
fn sync_cursor_forms() {
    let server = Server::start();
    let (_group, bob, _acks) = history(&server, 5);
    let mut b = server.connect(&bob);

    let (all, done) = b.sync_raw(json!({"method": 20}));
    assert_eq!(
        types(&all),
        vec![70, 20, 20, 20, 20, 20],
        "from the beginning:\n{}",
        show(&all)
    );
    assert_strictly_increasing(&all);
    let data: Vec<&str> = all[1..]
        .iter()
        .map(|e| e["body"]["data"].as_str().unwrap())
        .collect();
    assert_eq!(data, ["m0", "m1", "m2", "m3", "m4"]);
    let last = &all[5];
    assert_eq!(done, done_after(last, false));
    let after_seq = |i: usize| all[i + 1..].iter().map(ident).collect::<Vec<_>>();
    // Several events may share a millisecond: by timestamp, a sync returns every later one.
    let after_time = |t: u64| {
        all.iter()
            .filter(|e| ts(e) > t)
            .map(ident)
            .collect::<Vec<_>>()
    };

    // Each form of the cursor.
    let cases = [
        (
            "body {}",
            json!({"method": 20, "body": {}}),
            after_all(&all),
        ),
        (
            "top-level seq 0",
            json!({"method": 20, "seq": 0}),
            after_all(&all),
        ),
        (
            "top-level timestamp 0",
            json!({"method": 20, "timestamp": 0}),
            after_all(&all),
        ),
        (
            "body timestamp 0",
            json!({"method": 20, "body": {"timestamp": 0}}),
            after_all(&all),
        ),
        (
            "top-level seq after 70",
            json!({"method": 20, "seq": seq(&all[0])}),
            after_seq(0),
        ),
        (
            "body seq after m1",
            json!({"method": 20, "body": {"seq": seq(&all[2])}}),
            after_seq(2),
        ),
        (
            "seq just before m3",
            json!({"method": 20, "seq": seq(&all[4]) - 1}),
            after_seq(3),
        ),
        (
            "both: seq wins",
            json!({"method": 20, "seq": seq(&all[2]), "timestamp": 0}),
            after_seq(2),
        ),
        (
            "top-level timestamp of the 70",
            json!({"method": 20, "timestamp": ts(&all[0])}),
            after_time(ts(&all[0])),
        ),
        (
            "body timestamp of m1",
            json!({"method": 20, "body": {"timestamp": ts(&all[2])}}),
            after_time(ts(&all[2])),
        ),
        (
            "at the last seq",
            json!({"method": 20, "seq": seq(last)}),
            vec![],
        ),
        (
            "at the last timestamp",
            json!({"method": 20, "timestamp": ts(last)}),
            vec![],
        ),
    ];
    for (what, rpc, want) in cases {
        let (events, done) = b.sync_raw(rpc.clone());
        let got: Vec<_> = events.iter().map(ident).collect();
        assert_eq!(got, want, "{what}: {rpc}");
        // After an empty page the request's cursor comes back, and the newest event's stamp
        // for the other field.
        let expected = match events.last() {
            Some(e) => done_after(e, false),
            None if rpc.get("seq").is_some() => {
                json!({"timestamp": ts(last), "seq": rpc["seq"], "more": false})
            }
            None => json!({"timestamp": rpc["timestamp"], "seq": seq(last), "more": false}),
        };
        assert_eq!(done, expected, "{what}: 29");
    }
    // The RPC's client id comes back on the 29.
    b.send_json(&json!({"method": 20, "id": "sync-1", "seq": seq(&all[4])}));
    assert_eq!(ident(&b.expect(20)), ident(last));
    let done = b.expect(29);
    assert_eq!(done["id"], "sync-1", "the client id on the 29: {done}");
    assert_eq!(done["body"], done_after(last, false));
    // A cursor in the future: nothing, and the cursor comes back.
    let future = now_ms() + 3_600_000;
    let (events, done) = b.sync_raw(json!({"method": 20, "timestamp": future}));
    assert!(events.is_empty());
    assert_eq!(
        done,
        json!({"timestamp": future, "seq": seq(last), "more": false})
    );
    let (events, done) = b.sync_raw(json!({"method": 20, "seq": 1u64 << 50}));
    assert!(events.is_empty());
    assert_eq!(
        done,
        json!({"timestamp": ts(last), "seq": 1u64 << 50, "more": false})
    );
    b.assert_quiet();
}

fn after_all(all: &[Value]) -> Vec<(u64, u64, u64, Value)> {
    all.iter().map(ident).collect()
}

/// Pages by seq and by timestamp, the cursor at the top level or in the body, stitch into the
/// full history: no gap, no repeat. A page by seq holds exactly `limit` events; one by timestamp
/// holds more only to finish the millisecond of its last event, so that its timestamp is an
/// exact cursor. The 23 messages are sent in one burst, so several share a millisecond.
#[test]
fn sync_pages_stitch_into_the_full_history() {
    let server = Server::start();
    let alice = server.user("alice");
    let bob = server.user("bob");
    let mut a = server.connect(&alice);
    let group = server.create_group(&alice, "history", &[&bob]);
    a.expect(70);
    for i in 0..23 {
        a.queue_json(&json!({"method": 40, "body": {"group_id": group, "data": format!("m{i}")}}));
    }
    a.flush();
    for _ in 0..23 {
        a.expect(21);
    }
    let mut b = server.connect(&bob);
    let (full, done) = b.sync_raw(json!({"method": 20}));
    assert_eq!(full.len(), 24, "70 and 23 messages:\n{}", show(&full));
    assert_eq!(done["more"], false);
    let full_ids: Vec<_> = full.iter().map(ident).collect();

    // (limit, where the limit goes, the cursor field, expected page sizes by seq)
    let plans: [(u64, bool, &str, &[usize]); 7] = [
        (5, false, "seq", &[5, 5, 5, 5, 4]),
        (7, true, "seq", &[7, 7, 7, 3]),
        (24, true, "seq", &[24]),
        (1, false, "seq", &[1; 24]),
        (5, false, "timestamp", &[]),
        (7, true, "timestamp", &[]),
        (1, false, "timestamp", &[]),
    ];
    for (limit, in_body, field, sizes) in plans {
        let mut stitched: Vec<Value> = Vec::new();
        // A sync by timestamp starts from 0: without a cursor, pages go by seq.
        let mut cursor: Option<u64> = (field == "timestamp").then_some(0);
        let mut got_sizes = Vec::new();
        loop {
            let mut rpc = json!({"method": 20});
            let target = if in_body {
                rpc["body"] = json!({});
                &mut rpc["body"]
            } else {
                &mut rpc
            };
            target["limit"] = json!(limit);
            if let Some(c) = cursor {
                target[field] = json!(c);
            }
            let (page, done) = b.sync_raw(rpc);
            got_sizes.push(page.len());
            if let Some(last) = page.last() {
                assert_eq!(
                    done,
                    done_after(last, done["more"] == true),
                    "{field} {limit}"
                );
                if page.len() as u64 > limit {
                    // Longer than the limit only to finish a millisecond.
                    let edge = ts(&page[limit as usize - 1]);
                    assert!(
                        page[limit as usize..].iter().all(|e| ts(e) == edge),
                        "{field} {limit}: a page past its limit:\n{}",
                        show(&page)
                    );
                }
                if field == "timestamp" {
                    assert!(
                        stitched.last().is_none_or(|prev| ts(prev) < ts(&page[0])),
                        "{field} {limit}: a page ended inside a millisecond"
                    );
                }
            } else {
                assert_eq!(done["more"], false, "an empty page with more");
            }
            stitched.extend(page);
            let more = done["more"].as_bool().unwrap();
            assert_eq!(
                more,
                stitched.len() < full.len(),
                "{field} {limit}: more is true exactly when events remain"
            );
            if !more {
                break;
            }
            assert!(got_sizes.len() <= 30, "{field} {limit}: too many pages");
            cursor = Some(done[field].as_u64().unwrap());
        }
        let stitched_ids: Vec<_> = stitched.iter().map(ident).collect();
        assert_eq!(
            stitched_ids, full_ids,
            "{field} {limit}: pages stitch into the full history, no gap, no repeat"
        );
        if field == "seq" {
            assert_eq!(got_sizes, sizes, "limit {limit}: page sizes");
        }
    }
    let shared = full.windows(2).filter(|w| ts(&w[0]) == ts(&w[1])).count();
    assert!(
        shared > 0,
        "the burst shared no millisecond:\n{}",
        show(&full)
    );
}

/// A client that remembers the last seq it saw catches up exactly by syncing from it.
#[test]
fn reconnect_and_catch_up_from_the_last_seen_seq() {
    let server = Server::start();
    let alice = server.user("alice");
    let bob = server.user("bob");
    let bob_url = server.messaging_url(&bob.token);
    let mut a = server.connect(&alice);
    let mut b = Ws::connect(&bob_url, "bob");
    let group = server.create_group(&alice, "catch-up", &[&bob]);
    a.expect(70);
    b.expect(70);
    a.send_and_ack(&group, "before");
    let last_seen = seq(&b.expect(20));
    drop(b);

    let missed: Vec<Value> = (0..3)
        .map(|i| a.send_and_ack(&group, &format!("missed {i}")))
        .collect();
    let mut b = Ws::connect(&bob_url, "bob again");
    let (events, done) = b.sync_page(Some(last_seen), None);
    let data: Vec<&str> = events
        .iter()
        .map(|e| e["body"]["data"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(
        types(&events),
        vec![20, 20, 20],
        "exactly the missed messages:\n{}",
        show(&events)
    );
    assert_eq!(data, ["missed 0", "missed 1", "missed 2"]);
    for (ev, ack) in events.iter().zip(&missed) {
        assert_eq!(ev["body"]["message_id"], ack["body"]["message_id"]);
    }
    let last = &events[2];
    assert_eq!(
        done,
        json!({"timestamp": ts(last), "seq": seq(last), "more": false})
    );
    b.assert_quiet();
}

/// What sync returns is exactly what the user's connections received live since the cursor,
/// typing aside: here alice's listening device sees everything but the acks of her other device,
/// and sync gives those too.
#[test]
fn sync_returns_what_the_user_received_live() {
    let server = Server::start();
    let alice = server.user("alice");
    let bob = server.user("bob");
    let carol = server.user("carol");
    let mut listener = Ws::connect(&server.messaging_url(&alice.token), "alice listener");
    let mut actor = Ws::connect(&server.messaging_url(&alice.token), "alice actor");
    let mut b = server.connect(&bob);
    let mut c = server.connect(&carol);
    let start = {
        let (_, done) = listener.sync_raw(json!({"method": 20}));
        done["timestamp"].as_u64().unwrap()
    };
    listener.log.clear();
    actor.log.clear();

    // bob creates a group with alice; both talk; alice acknowledges; carol joins and leaves;
    // alice types; alice makes a second group with carol; a group without alice stays invisible.
    let g1 = server.create_group(&bob, "g1", &[&alice]);
    actor.expect(70);
    b.expect(70);
    let m1 = assert_ack(&b.send_and_ack(&g1, "from bob"), None);
    actor.expect(20);
    actor.delivered(&m1);
    b.expect(22);
    actor.read(&m1);
    b.expect(23);
    actor.send_message_id(&g1, "from alice", "a-1");
    actor.expect(21);
    let m2 = b.expect(20)["body"]["message_id"]
        .as_str()
        .unwrap()
        .to_string();
    b.read(&m2);
    actor.expect(23);
    server.join(&bob, &g1, Some(&carol)).expect(200);
    c.expect(70);
    c.expect(72);
    actor.expect(72);
    b.expect(72);
    actor.typing_start(&g1);
    b.expect(40);
    c.expect(40);
    server.leave(&carol, &g1, None).expect(200);
    actor.expect(73);
    b.expect(73);
    c.expect(73);
    let g2 = server.create_group(&alice, "g2", &[&carol]);
    actor.expect(70);
    actor.send_and_ack(&g2, "to carol");
    let hidden = server.create_group(&bob, "without alice", &[&carol]);
    b.expect(70);
    b.send_and_ack(&hidden, "alice must not see this");

    actor.assert_quiet();
    let live = listener.barrier();
    let mut expected: Vec<_> = live
        .iter()
        .filter(|e| ![40, 41].contains(&ty(e)))
        .map(ident)
        .collect();
    assert!(
        !live.iter().any(|e| ty(e) == 21),
        "the listener gets no acks:\n{}",
        show(&live)
    );
    expected.extend(actor.log.iter().filter(|e| ty(e) == 21).map(ident));
    expected.sort_by_key(|e| e.1);
    assert_eq!(
        expected.len(),
        12,
        "events alice should have:\n{}",
        show(&live)
    );

    let mut fresh = server.connect(&alice);
    let synced = fresh.sync_all(Some(start));
    let got: Vec<_> = synced.iter().map(ident).collect();
    assert_eq!(
        got,
        expected,
        "sync = live (+ the other device's acks), typing aside;\nsynced:\n{}",
        show(&synced)
    );
    let _ = g2;
}

/// A user who was never in a group gets none of its events; one who left gets them up to and
/// including their own 73, none while away, and again from their 70/72 on re-joining.
#[test]
fn sync_shows_a_group_only_while_a_member() {
    let server = Server::start();
    let alice = server.user("alice");
    let bob = server.user("bob");
    let eve = server.user("eve");
    let mut a = server.connect(&alice);
    let group = server.create_group(&alice, "members only", &[&bob]);
    a.expect(70);
    a.send_and_ack(&group, "m1 (bob is a member)");
    a.send_and_ack(&group, "m2 (bob is a member)");
    server.leave(&bob, &group, None).expect(200);
    a.expect(73);
    a.send_and_ack(&group, "m3 (bob has left)");
    a.send_and_ack(&group, "m4 (bob has left)");
    server.join(&bob, &group, None).expect(200);
    a.expect(72);
    a.send_and_ack(&group, "m5 (bob is back)");
    // eve has a group of her own, to show sync is not merely empty for her.
    let evegroup = server.create_group(&eve, "eve's", &[]);

    let mut e = server.connect(&eve);
    // A user with nothing at all: the cursor 0 comes back.
    let nobody = server.user("nobody");
    let (events, done) = server.connect(&nobody).sync_page(None, None);
    assert!(events.is_empty());
    assert_eq!(
        done,
        json!({"timestamp": 0, "seq": 0, "more": false}),
        "an empty sync from the beginning"
    );
    let eve_history = e.sync_all(None);
    assert_eq!(
        types(&eve_history),
        vec![70],
        "eve sees only her own group:\n{}",
        show(&eve_history)
    );
    assert_eq!(eve_history[0]["body"]["group_id"], evegroup.as_str());

    let mut b = server.connect(&bob);
    let bob_history = b.sync_all(None);
    let summary: Vec<String> = bob_history
        .iter()
        .map(|e| match ty(e) {
            20 => e["body"]["data"]
                .as_str()
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
                .to_string(),
            t => t.to_string(),
        })
        .collect();
    assert_eq!(
        summary,
        ["70", "m1", "m2", "73", "70", "72", "m5"],
        "bob's history:\n{}",
        show(&bob_history)
    );
    assert_eq!(
        bob_history[3]["body"],
        json!({"group_id": group, "user_id": bob.id})
    );
    assert_strictly_increasing(&bob_history);
    // Live, too: while away bob got nothing (he had no connection open then, so check a fresh
    // leave now).
    server.leave(&bob, &group, None).expect(200);
    b.expect(73);
    a.expect(73);
    a.send_and_ack(&group, "m6 (bob has left again)");
    b.assert_quiet();
}

/// Without a limit a page holds 500 events; a limit above 1000 gives 1000.
#[test]
fn sync_default_page_is_500_and_pages_are_at_most_1000() {
    let server = Server::start();
    let alice = server.user("alice");
    let mut a = server.connect(&alice);
    let group = server.create_group(&alice, "long", &[]);
    a.expect(70);
    const N: usize = 1100;
    for i in 0..N {
        a.queue_json(&json!({"method": 40, "body": {"group_id": group, "data": format!("m{i}")}}));
    }
    a.flush();
    for _ in 0..N {
        a.expect(21);
    }
    // alice has 70 + N messages + N acks.
    let total = 1 + 2 * N;
    let mut fresh = server.connect(&alice);
    let (page, done) = fresh.sync_page(None, None);
    assert_eq!(page.len(), 500, "default page size");
    let last = &page[499];
    assert_eq!(
        done,
        json!({"timestamp": ts(last), "seq": seq(last), "more": true})
    );
    let (page, done) = fresh.sync_page(None, Some(5000));
    assert_eq!(page.len(), 1000, "a page holds at most 1000");
    assert_eq!(done["more"], true);
    let (page, _) = fresh.sync_raw(json!({"method": 20, "body": {"limit": 1000}}));
    assert_eq!(page.len(), 1000);
    let all = fresh.sync_all(None);
    assert_eq!(all.len(), total);
    assert_strictly_increasing(&all);
}

#[test]
fn bad_sync_requests_get_error_events() {
    let server = Server::start();
    let alice = server.user("alice");
    let mut a = server.connect(&alice);
    for (i, rpc) in [
        json!({"method": 20, "timestamp": "yesterday"}),
        json!({"method": 20, "timestamp": -5}),
        json!({"method": 20, "body": {"timestamp": 1.5}}),
        json!({"method": 20, "limit": -1}),
        json!({"method": 20, "limit": "10"}),
        json!({"method": 20, "body": "everything"}),
    ]
    .into_iter()
    .enumerate()
    {
        let id = format!("s-{i}");
        let mut rpc = rpc;
        rpc["id"] = json!(id);
        a.send_json(&rpc);
        a.expect_error("bad_request", Some(20), Some(&id));
    }
    a.assert_quiet();
}

/// Big events (16 KiB messages): however the server sizes its pages, following `more` returns
/// every event once, in order, and a connection is never dropped for syncing.
#[test]
fn sync_of_large_events_returns_everything() {
    let server = Server::start();
    let alice = server.user("alice");
    let bob = server.user("bob");
    let mut a = server.connect(&alice);
    let group = server.create_group(&alice, "big", &[&bob]);
    a.expect(70);
    const N: usize = 120;
    let big = "y".repeat(16 * 1024);
    for i in 0..N {
        a.queue_json(&json!({"method": 40, "id": format!("big-{i}"), "body": {"group_id": group, "data": format!("{i:04}{}", &big[4..])}}));
        if i % 10 == 9 {
            a.flush();
            for j in i - 9..=i {
                assert_ack(&a.expect(21), Some(&format!("big-{j}")));
            }
        }
    }
    let mut b = server.connect(&bob);
    let mut all = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let (page, done) = b.sync_page(cursor, None);
        pages += 1;
        assert!(
            !page.is_empty() || done["more"] == false,
            "an empty page with more = true"
        );
        all.extend(page);
        cursor = Some(done["seq"].as_u64().unwrap());
        if done["more"] == false {
            break;
        }
        assert!(pages <= N + 1, "too many pages");
    }
    assert_eq!(all.len(), N + 1, "70 and {N} messages");
    assert_strictly_increasing(&all);
    for (i, ev) in all[1..].iter().enumerate() {
        assert_eq!(
            &ev["body"]["data"].as_str().unwrap()[..4],
            format!("{i:04}")
        );
        assert_eq!(ev["body"]["data"].as_str().unwrap().len(), 16 * 1024);
    }
    b.assert_quiet();
}
