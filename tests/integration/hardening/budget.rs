//! The global budget for queued output (issue #18, finding 5): past `--max-queued-output-bytes`
//! the WebSockets that do not read are closed as slow consumers, while a client that reads gets
//! every event, and the queued total shown in `/metrics` returns to 0.

use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;
use tungstenite::protocol::frame::coding::CloseCode;

use super::metric;
use crate::support::*;

const BUDGET: usize = 256 * 1024;
const SHED: &str = "parley_connections_dropped_total{reason=\"output_budget\"}";
const OWN_CAP: &str = "parley_connections_dropped_total{reason=\"slow_consumer\"}";
const QUEUED: &str = "parley_queued_output_bytes";

/// Four never-reading WebSockets of one user, each well under its own 1 MiB cap when the budget
/// (a quarter of it) runs out: all four are closed with 1008 by the budget, none by the cap; the
/// other member, who reads, gets every message in order; the gauge goes back to 0.
#[test]
fn never_readers_are_shed_past_the_global_budget_and_a_reader_gets_everything() {
    let server = Server::start_with_args(&["--max-queued-output-bytes", &BUDGET.to_string()]);
    let alice = server.user("alice");
    let bob = server.user("bob");
    let carol = server.user("carol");
    let bob_url = server.messaging_url(&bob.token);
    let mut a = server.connect(&alice);
    let mut c = server.connect(&carol);
    let mut never_read: Vec<Ws> = (0..4)
        .map(|i| Ws::connect(&bob_url, &format!("bob #{i} (never reads)")))
        .collect();
    let group = server.create_group(&alice, "firehose", &[&bob, &carol]);
    a.expect(70);
    c.expect(70);
    let payload = |i: usize| format!("{i:05}{}", "x".repeat(16_000));
    let mut sent = 0;
    // Bounded: the budget plus the socket buffers of loopback (a few MiB each).
    while metric(server.addr, SHED) < 4 {
        assert!(
            sent < 3000,
            "the never-readers were not all shed after {sent} messages of 16 KB"
        );
        for i in sent..sent + 20 {
            a.queue_json(&json!({"method": 40, "id": format!("m{i}"), "body": {"group_id": group, "data": payload(i)}}));
        }
        a.flush();
        for i in sent..sent + 20 {
            assert_ack(&a.expect(21), Some(&format!("m{i}")));
            assert_eq!(
                c.expect(20)["body"]["data"],
                payload(i),
                "carol gets every message, in order"
            );
        }
        sent += 20;
    }
    // Carol goes on receiving after they are gone.
    for i in sent..sent + 20 {
        a.send_message_id(&group, &payload(i), &format!("m{i}"));
        assert_ack(&a.expect(21), Some(&format!("m{i}")));
        assert_eq!(c.expect(20)["body"]["data"], payload(i));
    }
    assert_eq!(metric(server.addr, SHED), 4, "the four never-readers");
    assert_eq!(metric(server.addr, OWN_CAP), 0, "none reached its own cap");
    // Their unwritten events were dropped when they were shed: each keeps at most the rest of
    // the frame its socket had begun (16 KB) and the close, not the budget's share it held.
    let queued = metric(server.addr, QUEUED);
    assert!(
        queued < BUDGET as u64 / 2,
        "{queued} bytes still queued for the shed connections"
    );

    // Each finally reads: a prefix of the stream, then the slow consumer's close.
    for ws in &mut never_read {
        assert_eq!(ws.expect_close(), Some(CloseCode::Policy), "{}", ws.name);
        let live: Vec<&str> = ws
            .log
            .iter()
            .filter(|e| ty(e) == 20)
            .map(|e| e["body"]["data"].as_str().unwrap())
            .collect();
        assert!(live.len() < sent, "{} got everything live", ws.name);
        for (i, data) in live.iter().enumerate() {
            assert_eq!(*data, payload(i), "{}: a prefix of the stream", ws.name);
        }
    }
    let deadline = Instant::now() + DEADLINE;
    while metric(server.addr, QUEUED) != 0 {
        assert!(Instant::now() < deadline, "queued output stayed above 0");
        thread::sleep(Duration::from_millis(50)); // polling a gauge under a deadline
    }
    a.assert_quiet();
    c.assert_quiet();
}

/// The gauge counts what a reader has not taken yet: a member who stops reading holds its
/// events in the count until it reads them, and then the count is 0 again.
#[test]
fn the_queued_output_gauge_follows_a_paused_reader_back_to_zero() {
    let server = Server::start();
    let alice = server.user("alice");
    let bob = server.user("bob");
    let mut a = server.connect(&alice);
    let mut b = server.connect(&bob);
    let group = server.create_group(&alice, "pause", &[&bob]);
    a.expect(70);
    b.expect(70);
    assert_eq!(metric(server.addr, QUEUED), 0, "nothing queued at rest");
    let payload = |i: usize| format!("{i:05}{}", "y".repeat(16_000));
    // Bob pauses until his socket is full and the server holds the rest.
    let mut sent = 0;
    while metric(server.addr, QUEUED) == 0 {
        assert!(sent < 2000, "nothing was ever queued for bob");
        for i in sent..sent + 10 {
            a.send_message_id(&group, &payload(i), &format!("p{i}"));
            assert_ack(&a.expect(21), Some(&format!("p{i}")));
        }
        sent += 10;
    }
    for i in 0..sent {
        assert_eq!(b.expect(20)["body"]["data"], payload(i), "bob gets {i}");
    }
    let deadline = Instant::now() + DEADLINE;
    while metric(server.addr, QUEUED) != 0 {
        assert!(Instant::now() < deadline, "queued output stayed above 0");
        thread::sleep(Duration::from_millis(50)); // polling a gauge under a deadline
    }
    a.assert_quiet();
    b.assert_quiet();
}
