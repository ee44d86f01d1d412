//! A sync page's cost: groups with nothing after the cursor are not read, streams are opened
//! lazily, and a page stopped by its stream budget loses and repeats nothing.

use std::collections::HashMap;

use super::*;

both!(
    pages_under_a_stream_budget_return_exactly_the_unbounded_sync,
    a_page_reads_only_the_groups_it_needs
);

/// A user in 30 groups, some left and rejoined, with events spread over the groups and the
/// user's own stream, some stored and some in memory; and each group's newest seq.
fn busy_user(place: &Place) -> (Store, Uuid, HashMap<Uuid, u64>) {
    let mut store = place.open();
    let user = Uuid::from_u128(1);
    let groups: Vec<Uuid> = (0..30).map(|i| Uuid::from_u128(100 + i)).collect();
    for group in &groups {
        store.learn_newest_seq(*group).unwrap();
    }
    let mut newest = HashMap::new();
    let mut member = vec![false; groups.len()];
    let mut state = 7u64;
    for seq in 1..=620u64 {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let pick = (state >> 33) as usize % (groups.len() + 1);
        if pick == groups.len() {
            store.append(user, at(seq), Audience::All, b"own");
            continue;
        }
        let group = groups[pick];
        if (state >> 20) % 17 == 0 {
            if member[pick] {
                store.close_membership(user, group, seq).unwrap();
            } else {
                store.open_membership(user, group, seq).unwrap();
            }
            member[pick] = !member[pick];
        }
        store.append(group, at(seq), Audience::All, b"event");
        newest.insert(group, seq);
        if seq % 150 == 0 {
            store.commit(ceil(seq)).unwrap();
        }
    }
    (store, user, newest)
}

fn pages_under_a_stream_budget_return_exactly_the_unbounded_sync(place: Place) {
    let (store, user, newest) = busy_user(&place);
    let newest = |group: Uuid| newest.get(&group).copied().unwrap_or(u64::MAX);
    for from in [0, 1, 200, 599, 615] {
        let (expected, _) = store
            .events_after(user, Cursor::Seq(from), usize::MAX, usize::MAX)
            .unwrap();
        for (limit, max_streams) in [(1, 1), (5, 2), (50, 3), (1000, 1000)] {
            let bounds = PageBounds {
                limit,
                max_bytes: usize::MAX,
                max_streams,
            };
            let (mut got, mut cursor) = (Vec::new(), from);
            loop {
                let page = store
                    .sync_page_with(user, Cursor::Seq(cursor), bounds, newest)
                    .unwrap();
                assert!(page.events.len() <= limit);
                if let Some(last) = page.events.last() {
                    cursor = last.stamp.seq;
                }
                got.extend(page.events);
                if !page.more {
                    break;
                }
            }
            assert_eq!(
                timestamps(&got),
                timestamps(&expected),
                "from {from}, limit {limit}, {max_streams} streams a page"
            );
        }
    }
}

fn a_page_reads_only_the_groups_it_needs(place: Place) {
    let (store, user, newest) = busy_user(&place);
    let known = |group: Uuid| newest.get(&group).copied().unwrap_or(u64::MAX);
    let bounds = PageBounds {
        limit: 1,
        max_bytes: usize::MAX,
        max_streams: usize::MAX,
    };
    let unknown = |_| u64::MAX;
    let blind = store
        .sync_page_with(user, Cursor::Seq(610), bounds, unknown)
        .unwrap();
    let informed = store
        .sync_page_with(user, Cursor::Seq(610), bounds, known)
        .unwrap();
    // What the log knows itself (every stream was written through this store) is as good.
    let own = store.sync_page(user, Cursor::Seq(610), bounds).unwrap();
    assert_eq!(own.streams_read, informed.streams_read);
    assert_eq!(timestamps(&blind.events), timestamps(&informed.events));
    assert_eq!(blind.more, informed.more);
    // Only the groups with an event after seq 610 (and the user's stream) may be read.
    let active = newest.values().filter(|seq| **seq > 610).count();
    assert!(
        informed.streams_read <= active + 1 && informed.streams_read < blind.streams_read,
        "read {} streams, {active} groups active, {} without knowing",
        informed.streams_read,
        blind.streams_read
    );
    let (found, read) = store.newest_event_counted(user).unwrap();
    assert_eq!(found, store.newest_event(user).unwrap());
    assert!(read <= 3, "the newest event took {read} streams");
}
