//! The reads behind unread counts and group views (issue #20): messages counted after a seq,
//! capped, stored and in memory alike; one event by its seq; the `read_state` records.

use super::*;

both!(
    messages_after_a_seq_are_counted_up_to_the_cap,
    the_read_state_table_reads_back_what_was_written
);

/// A group with 10 messages (seqs 10, 12, ... 28, each with its ack after it) and a 72 between
/// them; the first half stored and flushed, the rest in this tick's memory.
fn group_with_messages(place: &Place) -> (Store, Uuid) {
    let mut store = place.open();
    let (group, user) = (Uuid::from_u128(7), Uuid::from_u128(8));
    store.learn_newest_seq(group).unwrap();
    for i in 0..10u64 {
        let seq = 10 + 2 * i;
        if i == 5 {
            store.commit(ceil(seq - 1)).unwrap();
        }
        store.append_message(
            group,
            &MessageParts {
                stamp: at(seq),
                message_id: message_id::new(seq, 1, 0),
                author: user,
                data: "hi",
                ack_seq: seq + 1,
                client_id: None,
            },
        );
    }
    store.append(group, at(40), Audience::All, b"{\"type\":72,\"seq\":40}");
    (store, group)
}

fn messages_after_a_seq_are_counted_up_to_the_cap(place: Place) {
    let (store, group) = group_with_messages(&place);
    assert_eq!(store.count_messages(group, 0, u64::MAX).unwrap(), (10, 28));
    // From 15 on: 16, 18, ... 28.
    assert_eq!(store.count_messages(group, 15, u64::MAX).unwrap(), (7, 28));
    assert_eq!(store.count_messages(group, 15, 3).unwrap(), (3, 20));
    assert_eq!(store.count_messages(group, 29, u64::MAX).unwrap(), (0, 0));
    // One event by its seq: a message renders as its 20, an ack's seq is nobody's event here.
    let message = store.group_event_at(group, 18).unwrap().unwrap();
    assert!(message.bytes.starts_with(br#"{"type":20,"seq":18,"#));
    assert_eq!(store.group_event_at(group, 19).unwrap(), None);
    assert_eq!(store.newest_in_group(group), 40);
    assert_eq!(store.newest_in_group(Uuid::from_u128(99)), 0);
}

fn the_read_state_table_reads_back_what_was_written(place: Place) {
    let mut store = place.open();
    let (group, user) = (Uuid::from_u128(7), Uuid::from_u128(8));
    let counts = GroupCounts {
        messages: 4,
        last_message_seq: 30,
        deleted: vec![(12, user)],
    };
    let marker = Marker {
        read_seq: 20,
        read_count: 2,
    };
    store.put_group_counts(group, &counts);
    store.put_marker(group, user, marker);
    store.commit(ceil(40)).unwrap();
    drop(store);
    let records = place.open().all_read_state().unwrap();
    assert_eq!(records.groups, vec![(group, counts)]);
    assert_eq!(records.markers, vec![(group, user, marker)]);
}
