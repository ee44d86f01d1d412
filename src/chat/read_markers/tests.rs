//! The unread arithmetic of [`ReadState`], without a server.

use uuid::Uuid;

use super::{ReadState, UNREAD_CAP};
use crate::store::{GroupCounts, Marker, ReadStateRecords};

fn ids() -> (Uuid, Uuid, Uuid) {
    (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4())
}

#[test]
fn others_messages_after_the_marker_are_unread_and_an_own_send_reads_all() {
    let (group, alice, bob) = ids();
    let mut state = ReadState::default();
    state.set_counts(group, GroupCounts::default());
    state.on_join(group, alice, 1);
    state.on_join(group, bob, 1);
    state.on_message(group, bob, 10);
    state.on_message(group, bob, 12);
    assert_eq!(state.unread(group, alice), 2);
    assert_eq!(state.unread(group, bob), 0);
    state.on_message(group, alice, 14);
    assert_eq!(state.unread(group, alice), 0);
    assert_eq!(state.marker(group, alice).read_seq, 14);
    assert_eq!(state.unread(group, bob), 1);
}

#[test]
fn a_deleted_message_after_the_marker_is_not_unread() {
    let (group, alice, bob) = ids();
    let mut state = ReadState::default();
    state.on_join(group, alice, 1);
    state.on_message(group, bob, 10);
    state.on_message(group, bob, 12);
    state.on_deleted(group, 12, bob);
    state.on_deleted(group, 12, bob);
    assert_eq!(state.unread(group, alice), 1);
    assert_eq!(state.counts(group).deleted, vec![(12, bob)]);
    // One before the marker changes nothing.
    state.set_marker(
        group,
        alice,
        Marker {
            read_seq: 10,
            read_count: 1,
        },
    );
    state.on_deleted(group, 10, bob);
    assert_eq!(state.unread(group, alice), 0);
}

#[test]
fn the_count_stops_at_the_cap() {
    let (group, alice, bob) = ids();
    let mut state = ReadState::default();
    state.on_join(group, alice, 1);
    for seq in 0..UNREAD_CAP + 5 {
        state.on_message(group, bob, 10 + 2 * seq);
    }
    assert_eq!(state.unread(group, alice), UNREAD_CAP);
}

#[test]
fn a_marker_never_set_reads_everything_and_unknown_groups_count_nothing() {
    let (group, alice, bob) = ids();
    let mut state = ReadState::default();
    state.set_counts(
        group,
        GroupCounts {
            messages: 7,
            last_message_seq: 70,
            deleted: Vec::new(),
        },
    );
    assert_eq!(state.unread(group, alice), 0);
    assert_eq!(state.marker(group, alice).read_seq, 70);
    assert_eq!(state.unread(Uuid::new_v4(), bob), 0);
}

#[test]
fn what_changed_is_dirty_until_written_and_loads_back() {
    let (group, alice, bob) = ids();
    let mut state = ReadState::default();
    assert!(!state.is_dirty());
    state.on_join(group, alice, 1);
    state.on_message(group, bob, 10);
    state.on_message(group, bob, 12);
    state.on_deleted(group, 10, bob);
    assert!(state.is_dirty());
    // What `write` puts in the store, as the table's records.
    let counts = state.counts(group);
    let records = ReadStateRecords {
        groups: vec![(group, GroupCounts::decode(&counts.encode()))],
        markers: [alice, bob]
            .iter()
            .map(|user| {
                let marker = state.marker(group, *user);
                (group, *user, Marker::decode(&marker.encode()))
            })
            .collect(),
    };
    let loaded = ReadState::load(records);
    assert_eq!(loaded.counts(group), counts);
    assert_eq!(loaded.unread(group, alice), state.unread(group, alice));
    assert_eq!(loaded.marker(group, bob), state.marker(group, bob));
    assert!(!loaded.is_dirty());
}

#[test]
fn a_damaged_record_keeps_what_it_can() {
    let bob = Uuid::new_v4();
    let counts = GroupCounts {
        messages: 3,
        last_message_seq: 9,
        deleted: vec![(5, bob)],
    };
    let mut bytes = counts.encode();
    bytes.extend_from_slice(&[1, 2, 3]);
    assert_eq!(GroupCounts::decode(&bytes), counts);
    assert_eq!(GroupCounts::decode(&[]), GroupCounts::default());
    assert_eq!(Marker::decode(&[0, 0]), Marker::default());
}
