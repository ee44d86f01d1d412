//! Issue #18's per-user and per-group limits and the cost of a sync, against the real binary:
//! the members-per-group and groups-per-user caps (403 `limit_reached`, and the request at the
//! cap still succeeds), the per-user send and typing rates (event 90 `rate_limited`, nothing
//! stored), and a sync whose work (streams read, from `/metrics`) follows its page rather than
//! the user's memberships.

use serde_json::json;

use super::metric;
use crate::support::*;

const STREAMS_READ: &str = "parley_sync_streams_read_total";

#[test]
fn a_group_past_its_member_cap_is_refused_with_limit_reached() {
    let server = Server::start_with_args(&["--max-group-members", "3"]);
    let [a, b, c, d] = ["a", "b", "c", "d"].map(|name| server.user(name));
    let ids = |users: &[&User]| users.iter().map(|u| u.id.clone()).collect::<Vec<_>>();

    let text = server
        .create_group_response(
            &a.token,
            &json!({"name": "big", "user_ids": ids(&[&b, &c, &d])}),
        )
        .expect_error(403, "limit_reached");
    assert!(text.contains("at most 3 members"), "{text}");
    // Exactly at the cap: created, and a join past it refused.
    let group = server.create_group(&a, "full", &[&b, &c]);
    server
        .join(&d, &group, None)
        .expect_error(403, "limit_reached");
    server
        .join(&a, &group, Some(&d))
        .expect_error(403, "limit_reached");
    // One leaves: there is room again.
    server.leave(&c, &group, None).expect(200);
    let members = assert_group_answer(&server.join(&d, &group, None).expect(200), &group, "full");
    assert_eq!(members.len(), 3);
}

#[test]
fn a_user_in_as_many_groups_as_allowed_can_join_no_more() {
    let server = Server::start_with_args(&["--max-groups-per-user", "2"]);
    let [a, b] = ["a", "b"].map(|name| server.user(name));
    let first = server.create_group(&a, "one", &[]);
    server.create_group(&a, "two", &[]);

    server
        .create_group_response(&a.token, &json!({"name": "three", "user_ids": []}))
        .expect_error(403, "limit_reached");
    let text = server
        .create_group_response(&b.token, &json!({"name": "with a", "user_ids": [a.id]}))
        .expect_error(403, "limit_reached");
    assert!(text.contains(&a.id), "the error names who is full: {text}");
    let other = server.create_group(&b, "b's", &[]);
    server
        .join(&a, &other, None)
        .expect_error(403, "limit_reached");
    server
        .join(&b, &other, Some(&a))
        .expect_error(403, "limit_reached");

    server.leave(&a, &first, None).expect(200);
    let members = assert_group_answer(&server.join(&a, &other, None).expect(200), &other, "b's");
    assert_eq!(
        set_of(&members.iter().map(String::as_str).collect::<Vec<_>>()),
        set_of(&[&a.id, &b.id])
    );
}

#[test]
fn sends_and_typing_past_the_per_user_rate_get_rate_limited_and_store_nothing() {
    let server = Server::start_with_args(&["--sends-per-second", "2", "--typing-per-second", "1"]);
    let [a, b] = ["a", "b"].map(|name| server.user(name));
    let group = server.create_group(&a, "g", &[&b]);
    let mut ws = server.connect(&a);
    ws.barrier();

    // Three sends in one write: a second's worth (two) is the burst.
    for id in ["s1", "s2", "s3"] {
        ws.queue_json(&json!({"method": 40, "id": id, "body": {"group_id": group, "data": id}}));
    }
    ws.flush();
    assert_ack(&ws.expect(21), Some("s1"));
    assert_ack(&ws.expect(21), Some("s2"));
    ws.expect_error("rate_limited", Some(40), Some("s3"));

    ws.typing_start(&group);
    ws.typing_start(&group);
    ws.expect_error("rate_limited", Some(60), None);
    ws.barrier();

    let mut reader = server.connect(&b);
    let messages: Vec<_> = reader
        .sync_all(None)
        .into_iter()
        .filter(|ev| ty(ev) == 20)
        .map(|ev| ev["body"]["data"].clone())
        .collect();
    assert_eq!(
        messages,
        [json!("s1"), json!("s2")],
        "the refused send was not stored"
    );
}

#[test]
fn a_sync_reads_the_streams_its_page_needs_not_every_group_of_the_user() {
    const GROUPS: usize = 150;
    let server = Server::start();
    let a = server.user("a");
    for i in 0..GROUPS {
        server.create_group(&a, &format!("g{i}"), &[]);
    }
    let mut ws = server.connect(&a);
    let all = ws.sync_all(None);
    assert_eq!(all.iter().filter(|ev| ty(ev) == 70).count(), GROUPS);
    let last = seq(all.last().unwrap());

    let middle = seq(&all[GROUPS / 2]);
    assert_cheap_syncs(&server, &mut ws, middle, last);
    // After a restart the groups' newest seqs are learnt from the store: as cheap.
    drop(ws);
    let server = server.restart();
    let mut ws = server.connect(&a);
    assert_cheap_syncs(&server, &mut ws, middle, last);
}

/// One-event pages from the start and from `middle`, and an empty one from `last`, each read
/// at most three streams.
#[track_caller]
fn assert_cheap_syncs(server: &Server, ws: &mut Ws, middle: u64, last: u64) {
    let mut cost = |cursor: u64| {
        let before = metric(server.addr, STREAMS_READ);
        let (events, done) = ws.sync_page(Some(cursor), Some(1));
        (
            events.len(),
            done["more"].clone(),
            metric(server.addr, STREAMS_READ) - before,
        )
    };
    // From the start, one event: the user's stream, the first group's, and the next to tell `more`.
    let (events, more, read) = cost(0);
    assert_eq!((events, more), (1, json!(true)));
    assert!(
        (1..=3).contains(&read),
        "a one-event page read {read} streams"
    );
    // From the middle: only the groups created after the cursor can hold anything; the page
    // reads the user's stream, the next group's, and the one after it to tell `more`.
    let (events, more, read) = cost(middle);
    assert_eq!((events, more), (1, json!(true)));
    assert!(
        (1..=3).contains(&read),
        "a one-event page read {read} streams"
    );
    // From the newest: nothing to send, and the newest event found at once.
    let (events, more, read) = cost(last);
    assert_eq!((events, more), (0, json!(false)));
    assert!((1..=3).contains(&read), "an empty page read {read} streams");
}

#[test]
fn joins_and_leaves_past_the_per_user_rate_are_refused_and_change_nothing() {
    let server = Server::start_with_args(&["--membership-changes-per-minute", "2"]);
    let [a, b, c] = ["a", "b", "c"].map(|name| server.user(name));
    let group = server.create_group(&a, "g", &[]);

    server.join(&b, &group, None).expect(200);
    server.leave(&b, &group, None).expect(200);
    let text = server
        .join(&b, &group, None)
        .expect_error(429, "rate_limited");
    assert!(text.contains("2 joins and leaves a minute"), "{text}");
    // Each user has their own: a may still add c, and b was not added.
    let members = assert_group_answer(&server.join(&a, &group, Some(&c)).expect(200), &group, "g");
    assert_eq!(
        set_of(&members.iter().map(String::as_str).collect::<Vec<_>>()),
        set_of(&[&a.id, &c.id])
    );
}

#[test]
fn a_user_at_the_websocket_cap_gets_403_limit_reached_until_one_closes() {
    let server = Server::start_with_args(&["--max-connections-per-user", "2"]);
    let a = server.user("a");
    let url = server.messaging_url(&a.token);
    let path = &url[url.find("://").unwrap() + 3..];
    let path = &path[path.find('/').unwrap()..];
    let upgrade = format!(
        "GET {path} HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    let refused = || {
        let mut http = server.http();
        http.send_raw(upgrade.as_bytes());
        http.read_response()
    };

    let first = Ws::connect(&url, "first");
    let _second = Ws::connect(&server.messaging_url(&a.token), "second");
    let text = refused().expect_error(403, "limit_reached");
    assert!(text.contains("2 WebSockets"), "{text}");
    drop(first);
    // The close reaches the server on its own time: retry until it counts, within a deadline.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let answer = refused();
        if answer.status == 101 {
            break;
        }
        answer.expect_error(403, "limit_reached");
        assert!(
            std::time::Instant::now() < deadline,
            "the closed WebSocket still counts"
        );
        std::thread::yield_now();
    }
}
