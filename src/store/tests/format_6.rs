//! Format 5 to 6: a directory whose memberships are lists rewritten whole (group records with
//! their `members` and `removed`, a record of JSON intervals per user and group) upgrades in
//! place, its members in the order they joined, its syncs as before.

use super::*;

both!(
    upgrades_format_5_memberships_in_place,
    an_upgrade_cut_short_is_done_again
);

/// Writes what format 5's `put_group` wrote: the record with its lists (`removed` only when
/// not empty).
fn put_group_5(store: &Store, id: Uuid, creator: Uuid, members: &[Uuid], removed: &[Uuid]) {
    let mut record = serde_json::json!({
        "id": id, "name": "g", "creator": creator, "created_at": 1, "ordinal": 1,
        "members": members,
    });
    if !removed.is_empty() {
        record["removed"] = serde_json::json!(removed);
    }
    let bytes = serde_json::to_vec(&record).unwrap();
    store
        .backend
        .put(Table::Groups, id.as_bytes(), &bytes)
        .unwrap();
}

/// Writes what format 5's `open_membership` and `close_membership` left for a user and group.
fn put_intervals_5(store: &Store, user: Uuid, group: Uuid, intervals: &[(u64, Option<u64>)]) {
    let list: Vec<_> = intervals
        .iter()
        .map(|(from, to)| serde_json::json!({"from": from, "to": to}))
        .collect();
    let mut key = user.as_bytes().to_vec();
    key.extend_from_slice(group.as_bytes());
    let bytes = serde_json::to_vec(&list).unwrap();
    store.backend.put(Table::Memberships, &key, &bytes).unwrap();
}

/// Group g made at seq 10 by a with b (b first, as event 70 lists them); d joined at 15 and
/// was removed at 35; c joined at 20, left at 30, joined again at 40.
fn upgrades_format_5_memberships_in_place(place: Place) {
    let [a, b, c, d] = [1, 2, 3, 4].map(Uuid::from_u128);
    let g = Uuid::from_u128(100);
    {
        let mut store = place.open();
        for seq in [10, 15, 20, 25, 30, 35, 40, 45] {
            store.append(g, at(seq), Audience::All, format!("e{seq}").as_bytes());
        }
        store.commit(ceil(45)).unwrap();
        put_group_5(&store, g, a, &[b, a, c], &[d]);
        put_intervals_5(&store, a, g, &[(10, None)]);
        put_intervals_5(&store, b, g, &[(10, None)]);
        put_intervals_5(&store, c, g, &[(20, Some(30)), (40, None)]);
        put_intervals_5(&store, d, g, &[(15, Some(35))]);
        let meta = Table::Meta;
        store
            .backend
            .put(meta, FORMAT_KEY, &5u64.to_be_bytes())
            .unwrap();
        store.backend.flush().unwrap();
    }
    let mut store = place.open();
    let format = store.backend.get(Table::Meta, FORMAT_KEY).unwrap().unwrap();
    assert_eq!(read_u64(&format), 6);
    assert_eq!(table_len(&store, Table::Memberships), 0);
    assert_eq!(table_len(&store, Table::Intervals), 2);
    let stored = store.backend.get(Table::Groups, g.as_bytes()).unwrap();
    let record: serde_json::Value = serde_json::from_slice(&stored.unwrap()).unwrap();
    assert_eq!(record.get("members"), None, "{record}");
    assert_eq!(record["creator"], serde_json::json!(a));
    let groups = store.all_groups().unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!(
        (&groups[0].members, &groups[0].removed),
        (&vec![b, a, c], &vec![d])
    );
    let seqs = |store: &Store, user: Uuid, after: u64| {
        let (events, _) = store
            .events_after(user, Cursor::Seq(after), 100, usize::MAX)
            .unwrap();
        timestamps(&events)
    };
    assert_eq!(seqs(&store, a, 0), [10, 15, 20, 25, 30, 35, 40, 45]);
    assert_eq!(seqs(&store, c, 0), [20, 25, 30, 40, 45]);
    assert_eq!(seqs(&store, c, 30), [40, 45]);
    assert_eq!(seqs(&store, d, 0), [15, 20, 25, 30, 35]);
    assert_eq!(seqs(&store, d, 35), Vec::<u64>::new());
    // Format 6 from here on: c leaves again, and a reopened store knows it.
    store.close_membership(c, g, 50).unwrap();
    store.append(g, at(50), Audience::All, b"e50");
    store.commit(ceil(50)).unwrap();
    drop(store);
    let store = place.open();
    let groups = store.all_groups().unwrap();
    assert_eq!(groups[0].members, [b, a]);
    assert_eq!(seqs(&store, c, 0), [20, 25, 30, 40, 45, 50]);
    assert_eq!(seqs(&store, a, 45), [50]);
    assert_eq!(store.newest_event(d).unwrap().map(|s| s.seq), Some(35));
}

/// A crash during the upgrade keeps some of its writes: here the first group's record and its
/// members were rewritten, the second group's not, and no old interval record was removed yet.
/// Opening again finishes it, with nothing lost or doubled.
fn an_upgrade_cut_short_is_done_again(place: Place) {
    let [a, b, c] = [1, 2, 3].map(Uuid::from_u128);
    let [g1, g2] = [100, 200].map(Uuid::from_u128);
    let old = |store: &Store| {
        put_intervals_5(store, a, g1, &[(1, None)]);
        put_intervals_5(store, b, g1, &[(5, Some(8)), (10, None)]);
        put_intervals_5(store, a, g2, &[(3, None)]);
        put_intervals_5(store, c, g2, &[(4, Some(6))]);
    };
    {
        let mut store = place.open();
        for seq in 1..=12 {
            let group = if seq % 2 == 0 { g1 } else { g2 };
            store.append(group, at(seq), Audience::All, b"e");
        }
        store.commit(ceil(12)).unwrap();
        put_group_5(&store, g1, a, &[a, b], &[]);
        put_group_5(&store, g2, a, &[a], &[c]);
        old(&store);
        to_6::upgrade(&*store.backend).unwrap();
        // Cut short: g2's record and every old interval record as they were.
        put_group_5(&store, g2, a, &[a], &[c]);
        old(&store);
        let meta = Table::Meta;
        store
            .backend
            .put(meta, FORMAT_KEY, &5u64.to_be_bytes())
            .unwrap();
        store.backend.flush().unwrap();
    }
    let store = place.open();
    assert_eq!(table_len(&store, Table::Memberships), 0);
    assert_eq!(table_len(&store, Table::Intervals), 2);
    let mut groups = store.all_groups().unwrap();
    groups.sort_by_key(|group| group.id);
    let lists: Vec<_> = groups
        .iter()
        .map(|group| (group.members.clone(), group.removed.clone()))
        .collect();
    assert_eq!(lists, [(vec![a, b], vec![]), (vec![a], vec![c])]);
    let seqs = |user: Uuid| {
        let (events, _) = store
            .events_after(user, Cursor::Seq(0), 100, usize::MAX)
            .unwrap();
        timestamps(&events)
    };
    assert_eq!(seqs(b), [6, 8, 10, 12]);
    assert_eq!(seqs(c), [5]);
    // a: g1 from 1 (its even seqs), g2 from 3 (its odd ones).
    assert_eq!(seqs(a), (2..=12).collect::<Vec<_>>());
}
