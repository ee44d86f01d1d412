//! Syncs over the overlay and the backend, message authors and receipts.

use super::*;

both!(
    sync_reads_a_tick_applied_but_not_yet_forgotten_once,
    sync_merges_own_and_group_streams_within_membership,
    finds_a_message_author_by_where_it_is_stored,
    receipts_are_recorded_once
);

/// The flusher may put a sealed tick into the backend before the loop hears of it: a sync in
/// between sees its chunks stored and in memory, and must return each event once.
fn sync_reads_a_tick_applied_but_not_yet_forgotten_once(place: Place) {
    let mut store = place.open();
    let (user, group) = (Uuid::from_u128(1), Uuid::from_u128(2));
    store.open_membership(user, group, 10).unwrap();
    store.append(group, at(10), Audience::All, b"first");
    store.commit(ceil(10)).unwrap();
    store.append(group, at(20), Audience::All, b"second");
    store.append(user, at(21), Audience::All, b"receipt");
    let sealed = store.write(1, ceil(21));
    store.append(group, at(30), Audience::All, b"third");
    let expected = [10, 20, 21, 30];
    let (events, _) = store
        .events_after(user, Cursor::Seq(0), 100, usize::MAX)
        .unwrap();
    assert_eq!(timestamps(&events), expected, "sealed, not yet applied");
    store.backend.apply(&[sealed]).unwrap();
    let (events, _) = store
        .events_after(user, Cursor::Seq(0), 100, usize::MAX)
        .unwrap();
    assert_eq!(timestamps(&events), expected, "applied, not yet forgotten");
    store.forget_applied(1);
    let (events, _) = store
        .events_after(user, Cursor::Seq(0), 100, usize::MAX)
        .unwrap();
    assert_eq!(
        timestamps(&events),
        expected,
        "forgotten: read from the backend"
    );
    let (events, _) = store
        .events_after(user, Cursor::Seq(15), 100, usize::MAX)
        .unwrap();
    assert_eq!(
        timestamps(&events),
        [20, 21, 30],
        "from a cursor inside the sealed tick"
    );
}

fn sync_merges_own_and_group_streams_within_membership(place: Place) {
    let mut store = place.open();
    let (user, other, group) = (Uuid::from_u128(1), Uuid::from_u128(9), Uuid::from_u128(2));
    store.append(group, at(10), Audience::All, b"before join");
    store.commit(ceil(10)).unwrap();
    store.open_membership(user, group, 20).unwrap();
    store.append(group, at(20), Audience::All, b"joined");
    store.append(user, at(25), Audience::All, b"receipt");
    store.append(group, at(30), Audience::All, b"message");
    store.append(group, at(31), Audience::Only(other), b"someone else's ack");
    store.commit(ceil(31)).unwrap();
    store.append(group, at(32), Audience::Only(user), b"my ack");
    store.close_membership(user, group, 40).unwrap();
    store.append(group, at(40), Audience::All, b"left");
    store.append(group, at(50), Audience::All, b"after leaving");

    // Read before and after the commit: the tick's own chunks are visible either way.
    for commit in [false, true] {
        if commit {
            store.commit(ceil(50)).unwrap();
        }
        let (events, more) = store
            .events_after(user, Cursor::Seq(0), 100, usize::MAX)
            .unwrap();
        let seen: Vec<(u64, &[u8])> = events
            .iter()
            .map(|event| (event.stamp.seq, event.bytes.as_slice()))
            .collect();
        assert_eq!(
            seen,
            vec![
                (20, &b"joined"[..]),
                (25, b"receipt"),
                (30, b"message"),
                (32, b"my ack"),
                (40, b"left")
            ]
        );
        assert!(!more);
    }

    let (page, more) = store
        .events_after(user, Cursor::Seq(20), 2, usize::MAX)
        .unwrap();
    assert_eq!((timestamps(&page), more), (vec![25, 30], true));
    let (rest, more) = store
        .events_after(user, Cursor::Seq(30), 2, usize::MAX)
        .unwrap();
    assert_eq!((timestamps(&rest), more), (vec![32, 40], false));
    let (by_size, more) = store.events_after(user, Cursor::Seq(0), 100, 1).unwrap();
    assert_eq!((timestamps(&by_size), more), (vec![20], true));
}

fn finds_a_message_author_by_where_it_is_stored(place: Place) {
    let mut store = place.open();
    let (group, author, id) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
    store.append_message(
        group,
        &MessageParts {
            stamp: at(100),
            message_id: id,
            author,
            data: "m",
            ack_seq: 101,
            client_id: None,
        },
    );
    assert_eq!(store.message_author(group, 100, id).unwrap(), Some(author));
    store.commit(ceil(100)).unwrap();
    store.append(group, at(200), Audience::All, b"later");
    assert_eq!(store.message_author(group, 100, id).unwrap(), Some(author));
    assert_eq!(
        store
            .message_author(group, 100, Uuid::from_u128(4))
            .unwrap(),
        None
    );
    assert_eq!(store.message_author(group, 99, id).unwrap(), None);
}

fn receipts_are_recorded_once(place: Place) {
    let mut store = place.open();
    let (m, u) = (Uuid::from_u128(7), Uuid::from_u128(8));
    assert!(store.record_receipt(m, u, ReceiptKind::Delivered).unwrap());
    assert!(!store.record_receipt(m, u, ReceiptKind::Delivered).unwrap());
    assert!(store.record_receipt(m, u, ReceiptKind::Read).unwrap());
}
