//! What membership changes cost: the bytes a join or a leave writes follow neither the number of
//! earlier changes nor the group's size (issue #18, finding 4), and a sync reads no membership
//! record that ended before its cursor (finding 3).

use super::*;

both!(
    join_and_leave_write_the_same_bytes_at_cycle_1_and_2000,
    a_join_writes_the_same_bytes_in_a_group_of_1000,
    a_sync_after_old_memberships_reads_none_of_them,
    a_user_in_20000_groups_syncs_without_reading_their_memberships
);

/// The bytes this tick put in the store's tables so far (keys and values).
fn pending_bytes(store: &Store) -> usize {
    store
        .pending
        .iter()
        .flatten()
        .map(|(key, value)| key.len() + value.len())
        .sum()
}

/// A join and a leave of `user`, each in its own tick and stored as the chat core stores them
/// (the group's record, then the membership), and the bytes each tick put in.
fn cycle(store: &mut Store, group: &mut GroupRecord, user: Uuid, seq: &mut u64) -> [usize; 2] {
    *seq += 1;
    group.members.push(user);
    store.put_group(group);
    store.open_membership(user, group.id, *seq).unwrap();
    let joined = pending_bytes(store);
    store.commit(ceil(*seq)).unwrap();
    *seq += 1;
    group.members.retain(|member| *member != user);
    store.put_group(group);
    store.close_membership(user, group.id, *seq).unwrap();
    let left = pending_bytes(store);
    store.commit(ceil(*seq)).unwrap();
    [joined, left]
}

fn join_and_leave_write_the_same_bytes_at_cycle_1_and_2000(place: Place) {
    let mut store = place.open();
    let (owner, user) = (Uuid::from_u128(1), Uuid::from_u128(2));
    let mut group = test_group(Uuid::from_u128(100), &[owner]);
    store.put_group(&group);
    store.open_membership(owner, group.id, 1).unwrap();
    store.commit(ceil(1)).unwrap();
    let mut seq = 1;
    let first = cycle(&mut store, &mut group, user, &mut seq);
    for _ in 2..2000 {
        cycle(&mut store, &mut group, user, &mut seq);
    }
    let last = cycle(&mut store, &mut group, user, &mut seq);
    assert_eq!(first, last, "bytes of a join and a leave, cycle 1 and 2000");
}

fn a_join_writes_the_same_bytes_in_a_group_of_1000(place: Place) {
    let mut store = place.open();
    let user = Uuid::from_u128(1);
    let mut sizes = Vec::new();
    for (at, size) in [1u128, 1000].into_iter().enumerate() {
        let members: Vec<Uuid> = (0..size).map(|i| Uuid::from_u128(1000 + i)).collect();
        let mut group = test_group(Uuid::from_u128(100 + at as u128), &members);
        store.put_group(&group);
        for member in &members {
            store.open_membership(*member, group.id, 1).unwrap();
        }
        store.commit(ceil(1)).unwrap();
        let mut seq = 1;
        sizes.push(cycle(&mut store, &mut group, user, &mut seq));
    }
    assert_eq!(
        sizes[0], sizes[1],
        "a join and a leave in groups of 1 and 1000"
    );
}

/// A user who was in 2,000 groups, each joined, written to and left, then in one more: a sync
/// from after all that, and the newest-event search of an empty page, read none of the old
/// memberships.
fn a_sync_after_old_memberships_reads_none_of_them(place: Place) {
    let mut store = place.open();
    let user = Uuid::from_u128(1);
    let mut seq = 0;
    for i in 0..2000u128 {
        let group = Uuid::from_u128(10_000 + i);
        store.learn_newest_seq(group).unwrap();
        store.open_membership(user, group, seq + 1).unwrap();
        store.append(group, at(seq + 2), Audience::All, b"event");
        store.close_membership(user, group, seq + 3).unwrap();
        seq += 3;
        if i % 500 == 499 {
            store.commit(ceil(seq)).unwrap();
        }
    }
    let current = Uuid::from_u128(5);
    store.learn_newest_seq(current).unwrap();
    store.open_membership(user, current, seq + 1).unwrap();
    store.append(current, at(seq + 2), Audience::All, b"now");
    store.commit(ceil(seq + 2)).unwrap();
    let bounds = PageBounds {
        limit: 1,
        max_bytes: usize::MAX,
        max_streams: usize::MAX,
    };
    let before = store.membership_records_read();
    let page = store.sync_page(user, Cursor::Seq(seq), bounds).unwrap();
    assert_eq!(timestamps(&page.events), [seq + 2]);
    assert_eq!(
        store.membership_records_read() - before,
        0,
        "a page after them"
    );
    let empty = store.sync_page(user, Cursor::Seq(seq + 2), bounds).unwrap();
    assert!(empty.events.is_empty());
    let (newest, _) = store.newest_event_counted(user).unwrap();
    assert_eq!(newest.map(|stamp| stamp.seq), Some(seq + 2));
    // The newest-event search looks at the membership that ended last, to know it may stop.
    assert_eq!(
        store.membership_records_read() - before,
        1,
        "an empty page and its newest event"
    );
    // From before the last old membership ended, exactly that one is read.
    let page = store.sync_page(user, Cursor::Seq(seq - 2), bounds).unwrap();
    assert_eq!(timestamps(&page.events), [seq - 1]);
    assert_eq!(
        store.membership_records_read() - before,
        2,
        "one ended after"
    );
}

/// The trial at store level: a user in 20,000 groups, one of which has a new event. A
/// one-event page after the groups were made, and an empty page with its newest-event search,
/// read no membership record (the current ones are in memory) and a stream or two.
fn a_user_in_20000_groups_syncs_without_reading_their_memberships(place: Place) {
    let mut store = place.open();
    let user = Uuid::from_u128(1);
    let groups: Vec<Uuid> = (0..20_000u128)
        .map(|i| Uuid::from_u128(10_000 + i))
        .collect();
    for (i, group) in groups.iter().enumerate() {
        let seq = i as u64 + 1;
        store.learn_newest_seq(*group).unwrap();
        store.open_membership(user, *group, seq).unwrap();
        store.append(*group, at(seq), Audience::All, b"70");
    }
    let made = groups.len() as u64;
    store.append(groups[7], at(made + 1), Audience::All, b"new");
    store.commit(ceil(made + 1)).unwrap();
    let bounds = PageBounds {
        limit: 1,
        max_bytes: usize::MAX,
        max_streams: usize::MAX,
    };
    let before = store.membership_records_read();
    let page = store.sync_page(user, Cursor::Seq(made), bounds).unwrap();
    assert_eq!(
        (timestamps(&page.events), page.more),
        (vec![made + 1], false)
    );
    assert!(page.streams_read <= 2, "read {} streams", page.streams_read);
    let empty = store
        .sync_page(user, Cursor::Seq(made + 1), bounds)
        .unwrap();
    assert!(empty.events.is_empty());
    let (newest, read) = store.newest_event_counted(user).unwrap();
    assert_eq!(newest.map(|stamp| stamp.seq), Some(made + 1));
    assert!(read <= 2, "the newest event took {read} streams");
    assert_eq!(store.membership_records_read() - before, 0);
}

/// Disk growth of 10,000 join/leave cycles in a real sled directory, each change in its own
/// tick as the server writes them: the figures of docs/BENCHMARKS.md, "Membership changes".
/// Run by hand: `cargo test --lib membership_disk_growth -- --ignored --nocapture`.
#[test]
#[ignore]
fn membership_disk_growth() {
    let place = Place::sled();
    let Place::Sled(dir) = &place else {
        unreachable!()
    };
    let mut store = place.open();
    let (owner, user) = (Uuid::from_u128(1), Uuid::from_u128(2));
    let mut group = test_group(Uuid::from_u128(100), &[owner]);
    store.put_group(&group);
    store.open_membership(owner, group.id, 1).unwrap();
    store.commit(ceil(1)).unwrap();
    let mut seq = 1;
    let du = |path: &std::path::Path| {
        let out = std::process::Command::new("du")
            .args(["-sb"])
            .arg(path)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    let start = du(dir.path());
    let mut written = 0;
    for n in 1..=10_000 {
        let [joined, left] = cycle(&mut store, &mut group, user, &mut seq);
        written += joined + left;
        if n % 1000 == 0 {
            println!(
                "cycles {n}: bytes put {written}, this cycle {}, dir {} (+{})",
                joined + left,
                du(dir.path()),
                du(dir.path()) - start
            );
        }
    }
}
