//! Edits and deletes rewrite a message's entry wherever its chunk is: in this tick, in a sealed
//! tick not yet applied, applied but not yet forgotten, or stored; reads (a sync and a history
//! page) see the current state at every step, and it survives a reopen.

use serde_json::{json, Value};

use super::*;
use crate::store::log::rewrite::Change;

both!(
    a_change_reads_the_same_wherever_the_chunk_is,
    changes_to_one_chunk_over_several_ticks_accumulate
);

const GROUP: Uuid = Uuid::from_u128(0x10);
const USER: Uuid = Uuid::from_u128(0x20);

fn send(store: &mut Store, seq: u64, data: &str) -> Uuid {
    let id = Uuid::from_u128(0x1000 + u128::from(seq));
    store.append_message(
        GROUP,
        &MessageParts {
            stamp: at(seq),
            message_id: id,
            author: USER,
            data,
            ack_seq: seq + 1,
            client_id: Some("c"),
        },
    );
    id
}

/// The bodies of the group's messages (20) as a sync returns them, checked to be what a
/// history page returns too.
fn bodies(store: &Store) -> Vec<Value> {
    let (events, _) = store
        .events_after(USER, Cursor::Seq(0), 1000, usize::MAX)
        .unwrap();
    let body = |bytes: &[u8]| serde_json::from_slice::<Value>(bytes).unwrap();
    let synced: Vec<Value> = events
        .iter()
        .map(|event| body(&event.bytes))
        .filter(|event| event["type"] == 20)
        .map(|event| event["body"].clone())
        .collect();
    let periods = store.member_periods(USER, GROUP).unwrap();
    let page = store.history(USER, GROUP, &periods, u64::MAX, 200).unwrap();
    let listed: Vec<Value> = page
        .messages
        .iter()
        .map(|event| body(&event.bytes)["body"].clone())
        .collect();
    assert_eq!(listed, synced, "history shows what a sync replays");
    synced
}

fn edit(store: &mut Store, seq: u64, id: Uuid, data: &str, at: u64) {
    let found = store.find_message(GROUP, seq, id).unwrap().unwrap();
    assert_eq!((found.author, found.deleted), (USER, false));
    let change = Change::Edit { data, at, seq: at };
    store.change_message(GROUP, seq, id, change).unwrap();
}

fn edited(id: Uuid, data: &str, at: u64) -> Value {
    json!({"message_id": id, "data": data, "group_id": GROUP, "user_id": USER, "edited_at": at})
}

fn deleted(id: Uuid) -> Value {
    json!({"message_id": id, "group_id": GROUP, "user_id": USER, "deleted": true})
}

fn a_change_reads_the_same_wherever_the_chunk_is(place: Place) {
    let mut store = place.open();
    store.open_membership(USER, GROUP, 1).unwrap();
    // Stored.
    let stored = send(&mut store, 10, "stored");
    store.commit(ceil(11)).unwrap();
    // Sealed, not applied.
    let sealed = send(&mut store, 20, "sealed");
    let tick = store.write(1, ceil(21));
    // This tick's.
    let pending = send(&mut store, 30, "pending");

    edit(&mut store, 10, stored, "stored, edited", 40);
    edit(&mut store, 20, sealed, "sealed, edited", 41);
    store
        .change_message(GROUP, 30, pending, Change::Delete)
        .unwrap();
    let expected = vec![
        edited(stored, "stored, edited", 40),
        edited(sealed, "sealed, edited", 41),
        deleted(pending),
    ];
    assert_eq!(bodies(&store), expected, "before the seal");
    assert!(
        store
            .find_message(GROUP, 30, pending)
            .unwrap()
            .unwrap()
            .deleted
    );

    let second = store.write(2, ceil(41));
    assert_eq!(bodies(&store), expected, "sealed");
    store.backend.apply(&[tick, second]).unwrap();
    assert_eq!(bodies(&store), expected, "applied, not yet forgotten");
    store.forget_applied(2);
    assert_eq!(bodies(&store), expected, "from the backend");
    store.commit(ceil(41)).unwrap();
    drop(store);
    assert_eq!(bodies(&place.open()), expected, "reopened");
}

fn changes_to_one_chunk_over_several_ticks_accumulate(place: Place) {
    let mut store = place.open();
    store.open_membership(USER, GROUP, 1).unwrap();
    let first = send(&mut store, 10, "one");
    let second = send(&mut store, 12, "two");
    store.commit(ceil(13)).unwrap();
    edit(&mut store, 10, first, "one, edited", 20);
    let tick = store.write(1, ceil(20));
    // The rewrite is sealed, not applied: the next change must start from it.
    store
        .change_message(GROUP, 12, second, Change::Delete)
        .unwrap();
    edit(&mut store, 10, first, "one, edited twice", 21);
    let expected = vec![edited(first, "one, edited twice", 21), deleted(second)];
    assert_eq!(bodies(&store), expected);
    let next = store.write(2, ceil(21));
    store.backend.apply(&[tick]).unwrap();
    store.forget_applied(1);
    assert_eq!(bodies(&store), expected, "the older rewrite applied");
    store.backend.apply(&[next]).unwrap();
    store.forget_applied(2);
    assert_eq!(bodies(&store), expected, "both applied");
    assert!(
        store
            .find_message(GROUP, 12, second)
            .unwrap()
            .unwrap()
            .deleted
    );
}
