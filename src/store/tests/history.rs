//! History pages (issue #20): read backwards across stored chunks, sealed ticks not yet applied
//! (or applied and not yet forgotten: read once) and this tick's chunk, within the member's
//! periods, with `more` exact.

use super::*;

both!(
    pages_read_every_place_a_chunk_can_be_once,
    pages_keep_to_the_members_periods
);

/// A message from `author` at `seq` (its ack at `seq + 1`) with `data`.
fn message(store: &mut Store, group: Uuid, author: Uuid, seq: u64, data: &str) {
    store.append_message(
        group,
        &MessageParts {
            stamp: at(seq),
            message_id: message_id::new(seq, 1, 0),
            author,
            data,
            ack_seq: seq + 1,
            client_id: None,
        },
    );
}

/// The `data` of each message of a page, and its `more`.
fn datas(page: &HistoryPage) -> (Vec<String>, bool) {
    let datas = page
        .messages
        .iter()
        .map(|m| {
            let event: serde_json::Value = serde_json::from_slice(&m.bytes).unwrap();
            assert_eq!(event["type"], 20);
            assert_eq!(event["seq"], m.stamp.seq);
            event["body"]["data"].as_str().unwrap().to_string()
        })
        .collect();
    (datas, page.more)
}

fn page(store: &Store, user: Uuid, group: Uuid, before: u64, limit: usize) -> (Vec<String>, bool) {
    let periods = store.member_periods(user, group).unwrap();
    datas(&store.history(user, group, &periods, before, limit).unwrap())
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn pages_read_every_place_a_chunk_can_be_once(place: Place) {
    let mut store = place.open();
    let (user, group) = (Uuid::from_u128(1), Uuid::from_u128(2));
    store.open_membership(user, group, 1).unwrap();
    // Stored: m1 m2 (one chunk), m3 (another); a joined event between, which is no message.
    store.append(group, at(1), Audience::All, br#"{"type":72}"#);
    message(&mut store, group, user, 10, "m1");
    message(&mut store, group, user, 12, "m2");
    store.commit(ceil(13)).unwrap();
    message(&mut store, group, user, 20, "m3");
    store.commit(ceil(21)).unwrap();
    // Sealed, not applied: m4; then this tick's: m5.
    message(&mut store, group, user, 30, "m4");
    let sealed = store.write(1, ceil(31));
    message(&mut store, group, user, 40, "m5");
    let all = strings(&["m1", "m2", "m3", "m4", "m5"]);
    assert_eq!(
        page(&store, user, group, u64::MAX, 50),
        (all.clone(), false)
    );
    assert_eq!(
        page(&store, user, group, u64::MAX, 2),
        (strings(&["m4", "m5"]), true)
    );
    assert_eq!(
        page(&store, user, group, 30, 2),
        (strings(&["m2", "m3"]), true)
    );
    assert_eq!(page(&store, user, group, 12, 2), (strings(&["m1"]), false));
    assert_eq!(page(&store, user, group, 11, 5), (strings(&["m1"]), false));
    assert_eq!(page(&store, user, group, 10, 5), (vec![], false));
    // Applied and not yet forgotten: in memory and stored, listed once.
    store.backend.apply(&[sealed]).unwrap();
    assert_eq!(
        page(&store, user, group, u64::MAX, 50),
        (all.clone(), false)
    );
    store.forget_applied(1);
    assert_eq!(
        page(&store, user, group, u64::MAX, 50),
        (all.clone(), false)
    );
    store.commit(ceil(41)).unwrap();
    drop(store);
    let store = place.open();
    assert_eq!(page(&store, user, group, u64::MAX, 50), (all, false));
    assert_eq!(page(&store, user, group, 21, 1), (strings(&["m3"]), true));
}

fn pages_keep_to_the_members_periods(place: Place) {
    let mut store = place.open();
    let (owner, user, group) = (Uuid::from_u128(1), Uuid::from_u128(3), Uuid::from_u128(2));
    store.open_membership(owner, group, 1).unwrap();
    message(&mut store, group, owner, 10, "before");
    store.open_membership(user, group, 15).unwrap();
    message(&mut store, group, owner, 20, "in 1");
    store.close_membership(user, group, 25).unwrap();
    store.commit(ceil(25)).unwrap();
    message(&mut store, group, owner, 30, "away");
    store.open_membership(user, group, 35).unwrap();
    message(&mut store, group, owner, 40, "in 2");
    store.commit(ceil(41)).unwrap();
    assert_eq!(
        store.member_periods(user, group).unwrap(),
        [(35, u64::MAX), (15, 25)]
    );
    assert_eq!(
        page(&store, user, group, u64::MAX, 50),
        (strings(&["in 1", "in 2"]), false)
    );
    assert_eq!(
        page(&store, user, group, u64::MAX, 1),
        (strings(&["in 2"]), true)
    );
    assert_eq!(
        page(&store, user, group, 40, 1),
        (strings(&["in 1"]), false)
    );
    assert_eq!(
        page(&store, owner, group, u64::MAX, 50),
        (strings(&["before", "in 1", "away", "in 2"]), false)
    );
    assert!(store
        .member_periods(Uuid::from_u128(9), group)
        .unwrap()
        .is_empty());
}
