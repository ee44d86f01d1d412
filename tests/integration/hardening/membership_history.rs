//! Issue #18, findings 3 and 4, against the real binary: a user's old memberships cost a sync
//! nothing once its cursor is past them (the ended intervals read, from `/metrics`), and the
//! members of a group, kept a record per member since store format 6, keep their join order
//! and the owner's removals across restarts.

use serde_json::{json, Value};

use super::metric;
use crate::support::*;

const MEMBERSHIPS_READ: &str = "parley_sync_membership_records_read_total";

/// Bob is added to 60 groups and leaves each, then is in one more where alice writes: a
/// one-event page and an empty page after his leaves read none of the 60 ended memberships; a
/// sync from the start reads each once; after a restart the same.
#[test]
fn a_sync_after_old_memberships_reads_none_of_them() {
    const OLD: usize = 60;
    let server = Server::start_with_args(&["--membership-changes-per-minute", "0"]);
    let [alice, bob] = ["alice", "bob"].map(|n| server.user(n));
    for i in 0..OLD {
        let group = server.create_group(&alice, &format!("old{i}"), &[&bob]);
        server.leave(&bob, &group, None).expect(200);
    }
    let mut ws = server.connect(&bob);
    let history = ws.sync_all(Some(0));
    let last_leave = seq(history.last().unwrap());
    drop(ws);
    let group = server.create_group(&alice, "now", &[&bob]);
    let mut a = server.connect(&alice);
    a.send_and_ack(&group, "hello");
    // Connected after, so that nothing live comes between a sync's events.
    let mut ws = server.connect(&bob);
    let server = check_reads(server, &mut ws, last_leave, OLD as u64);
    drop(ws);
    let server = server.restart();
    let mut ws = server.connect(&bob);
    check_reads(server, &mut ws, last_leave, OLD as u64);
}

/// The ended memberships a sync page from `cursor` (limit 1) reads, and what it returned.
fn page_cost(server: &Server, ws: &mut Ws, cursor: u64) -> (Vec<Value>, Value, u64) {
    let before = metric(server.addr, MEMBERSHIPS_READ);
    let (events, done) = ws.sync_page(Some(cursor), Some(1));
    (events, done, metric(server.addr, MEMBERSHIPS_READ) - before)
}

#[track_caller]
fn check_reads(server: Server, ws: &mut Ws, last_leave: u64, old: u64) -> Server {
    // After the last leave: bob's 70 of "now" (the rest is the next page's); nothing old read.
    let (events, done, read) = page_cost(&server, ws, last_leave);
    assert_eq!((events.len(), ty(&events[0])), (1, 70));
    assert_eq!((done["more"].clone(), read), (json!(true), 0));
    let newest = seq(ws.sync_all(Some(seq(&events[0]))).last().unwrap());
    // An empty page: its newest-event search looks at the membership that ended last only.
    let (events, done, read) = page_cost(&server, ws, newest);
    assert!(events.is_empty());
    assert_eq!(
        (done["more"].clone(), done["seq"].clone()),
        (json!(false), json!(newest))
    );
    assert!(read <= 1, "an empty page read {read} ended memberships");
    // From the start every ended membership may hold events: each is read once.
    let (events, _, read) = page_cost(&server, ws, 0);
    assert_eq!(events.len(), 1);
    assert_eq!(read, old, "a page from the start");
    server
}

/// A new group lists its members as in its 70 (the creator last); later joiners follow in the
/// order they joined; after restarts that order holds, and the owner's removal with it.
#[test]
fn members_keep_their_join_order_and_removals_across_restarts() {
    let server = Server::start();
    let [alice, bob, carol, dave, erin] =
        ["alice", "bob", "carol", "dave", "erin"].map(|n| server.user(n));
    let group = server.create_group(&alice, "ordered", &[&carol, &bob]);
    let ids = |body: &Value| assert_group_answer(body, &group, "ordered");
    let ids_of = |users: &[&User]| users.iter().map(|u| u.id.clone()).collect::<Vec<_>>();
    let joined = ids(&server.join(&dave, &group, None).expect(200));
    assert_eq!(joined, ids_of(&[&carol, &bob, &alice, &dave]));
    server.leave(&alice, &group, Some(&bob)).expect(200);

    let server = server.restart();
    server
        .join(&bob, &group, None)
        .expect_error(403, "forbidden");
    let joined = ids(&server.join(&erin, &group, None).expect(200));
    assert_eq!(joined, ids_of(&[&carol, &alice, &dave, &erin]));
    server.leave(&carol, &group, None).expect(200);
    let joined = ids(&server.join(&dave, &group, Some(&bob)).expect(200));
    assert_eq!(joined, ids_of(&[&alice, &dave, &erin, &bob]));

    let server = server.restart();
    let joined = ids(&server.join(&carol, &group, None).expect(200));
    assert_eq!(joined, ids_of(&[&alice, &dave, &erin, &bob, &carol]));
}
