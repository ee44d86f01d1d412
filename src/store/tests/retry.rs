//! Retried sends: answered with the original ack in every state, and the index rebuilt at start.

use super::*;

both!(
    a_retrys_ack_is_the_original_in_every_state,
    the_rebuild_keeps_the_window,
    the_rebuild_ignores_a_clock_ceiling_ahead_of_the_wall,
    a_wall_clock_behind_at_start_does_not_load_old_history,
    a_wall_clock_corrected_forward_keeps_the_window_across_restarts,
    a_restart_after_an_outage_keeps_the_sends_made_before_it,
    a_future_entry_does_not_empty_the_rebuilt_index,
    a_smaller_index_at_start_keeps_the_surplus_in_the_table,
    sends_beyond_the_index_go_to_the_table_until_it_has_room
);

/// A retry's ack, in every state of its send (pending, sealed, applied, forgotten, after a
/// restart that rebuilds the index from the log), is the original's bytes: checked against
/// literal JSON, not the renderer. No `client_ids` record is written for it.
fn a_retrys_ack_is_the_original_in_every_state(place: Place) {
    let (user, group) = (Uuid::from_u128(1), Uuid::from_u128(9));
    let id = "a \"q\"\u{1}\u{e9}/</";
    let ts = clock::wall_ms();
    let expected;
    {
        let mut store = place.open();
        store.put_group(&test_group(group, &[user]));
        let mid = store_send(&mut store, group, user, id, ts);
        expected = expected_ack(id, ts, mid);
        let ack_stamp = Stamp {
            seq: ts + 1,
            timestamp: ts,
        };
        assert_eq!(protocol::sent_event(Some(id), ack_stamp, mid), expected);
        assert_eq!(
            client_ack_of(&store, user, id).as_deref(),
            Some(&expected[..]),
            "pending"
        );
        let tick = store.write(1, ceil(ts + 1));
        assert_eq!(
            client_ack_of(&store, user, id).as_deref(),
            Some(&expected[..]),
            "sealed"
        );
        store.backend.apply(&[tick]).unwrap();
        store.forget_applied(1);
        assert_eq!(
            client_ack_of(&store, user, id).as_deref(),
            Some(&expected[..]),
            "applied and forgotten"
        );
        assert!(table_len(&store, Table::ClientIds) == 0);
        store.backend.flush().unwrap();
    }
    let store = place.open();
    assert_eq!(store.recent_client_ids(), 1);
    assert_eq!(
        client_ack_of(&store, user, id).as_deref(),
        Some(&expected[..]),
        "restart"
    );
    assert_eq!(client_ack_of(&store, Uuid::from_u128(2), id), None);
    assert_eq!(client_ack_of(&store, user, "a"), None);
}

/// The rebuild keeps what the window holds: a send just inside it is recognised after a
/// reopen, one past it and the rebuild's slack is not (and its record, had it one, is
/// pruned).
fn the_rebuild_keeps_the_window(place: Place) {
    let (user, group) = (Uuid::from_u128(1), Uuid::from_u128(9));
    let now = clock::wall_ms();
    let window = ClientIdLimits::DEFAULT.window_ms;
    {
        let mut store = place.open();
        store.put_group(&test_group(group, &[user]));
        store_send(&mut store, group, user, "out", now - window - 600_000);
        store_send(&mut store, group, user, "in", now - window + 60_000);
        let sent = Sent {
            message_id: Uuid::from_u128(5),
            ack_ts: now - window - 600_000,
        };
        store.put(
            Table::ClientIds,
            client_key(user, "old"),
            client_record(sent),
        );
        store.commit(ceil(now)).unwrap();
    }
    let store = place.open();
    assert!(
        client_ack_of(&store, user, "in").is_some(),
        "23 h 59 min old"
    );
    assert_eq!(client_ack_of(&store, user, "out"), None);
    assert!(
        table_len(&store, Table::ClientIds) == 0,
        "the old record is pruned"
    );
    assert_eq!(client_ack_of(&store, user, "old"), None);
    assert_eq!(store.recent_client_ids(), 1);
}

/// The server clock far ahead of the wall (it runs ahead under load) does not shorten the
/// window at a restart: an hour-old send is recognised.
fn the_rebuild_ignores_a_clock_ceiling_ahead_of_the_wall(place: Place) {
    let (user, group) = (Uuid::from_u128(1), Uuid::from_u128(9));
    let now = clock::wall_ms();
    let window = ClientIdLimits::DEFAULT.window_ms;
    {
        let mut store = place.open();
        store.put_group(&test_group(group, &[user]));
        store_send(&mut store, group, user, "hour-old", now - 3_600_000);
        store.commit(ceil(now + 2 * window)).unwrap();
    }
    let store = place.open();
    assert!(client_ack_of(&store, user, "hour-old").is_some());
}

/// A wall clock that is behind at start (no RTC, before NTP) does not make old sends
/// recent: the index's time at the last commit is the floor of the next start's. Ten days
/// of hourly sends, the index's time three days past the wall clock.
fn a_wall_clock_behind_at_start_does_not_load_old_history(place: Place) {
    let (user, group) = (Uuid::from_u128(1), Uuid::from_u128(9));
    let hour = 3_600_000;
    let truth = clock::wall_ms() + 3 * ClientIdLimits::DAY_MS;
    {
        let mut store = place.open();
        store.put_group(&test_group(group, &[user]));
        for h in (0..240u64).rev() {
            store_send(&mut store, group, user, &format!("h{h}"), truth - h * hour);
        }
        store.recent_sends = RecentSends::new(ClientIdLimits::DEFAULT, truth);
        store.commit(ceil(truth + 1000)).unwrap();
    }
    let store = place.open();
    // The window (24 h and the rebuild's slack) of the last commit's time, not the wall's.
    assert_eq!(store.recent_client_ids(), 25);
    assert!(client_ack_of(&store, user, "h24").is_some());
    assert_eq!(client_ack_of(&store, user, "h26"), None);
}

/// Finding 8 of #18: a server run with the wall clock three days behind (no RTC before NTP),
/// then restarted with the right clock, must still recognise the retries of the sends it
/// acknowledged within the window: counted back from the index's time at the last commit, not
/// from the corrected wall. And again at the next restart (the record of the shift, written
/// at the first), whether the run between committed anything or not. Thirty hourly sends.
fn a_wall_clock_corrected_forward_keeps_the_window_across_restarts(place: Place) {
    let (user, group) = (Uuid::from_u128(1), Uuid::from_u128(9));
    let hour = 3_600_000;
    let behind = clock::wall_ms() - 3 * ClientIdLimits::DAY_MS;
    {
        let mut store = place.open();
        store.recent_sends = RecentSends::new(ClientIdLimits::DEFAULT, behind);
        store.put_group(&test_group(group, &[user]));
        for h in (0..30u64).rev() {
            store_send(&mut store, group, user, &format!("h{h}"), behind - h * hour);
        }
        store.commit(ceil(behind + 1000)).unwrap();
    }
    let recognised = |store: &Store| -> Vec<u64> {
        (0..30u64)
            .filter(|h| client_ack_of(store, user, &format!("h{h}")).is_some())
            .collect()
    };
    let window: Vec<u64> = (0..=24).collect();
    // The first start with the right clock, then one that commits nothing.
    for start in ["corrected", "again, nothing committed"] {
        let store = place.open();
        assert_eq!(recognised(&store), window, "{start}");
        assert_eq!(store.recent_client_ids(), 25, "{start}");
        let h0 = client_ack_of(&store, user, "h0").unwrap();
        assert!(h0.contains(&format!(r#""timestamp":{behind}"#)), "{h0}");
    }
    // A run that sends and commits, then another start: the old sends keep their place.
    let now = clock::wall_ms();
    {
        let mut store = place.open();
        store_send(&mut store, group, user, "new", now);
        store.commit(ceil(now + 1000)).unwrap();
    }
    let store = place.open();
    assert_eq!(recognised(&store), window);
    assert!(client_ack_of(&store, user, "new").is_some());
    assert_eq!(store.recent_client_ids(), 26);
}

/// The same shift when the wall is right and the server was down: sends made just before a
/// three-day outage are recognised when it ends (their retries come then), older ones not.
fn a_restart_after_an_outage_keeps_the_sends_made_before_it(place: Place) {
    let (user, group) = (Uuid::from_u128(1), Uuid::from_u128(9));
    let hour = 3_600_000;
    let before_outage = clock::wall_ms() - 3 * ClientIdLimits::DAY_MS;
    {
        let mut store = place.open();
        store.recent_sends = RecentSends::new(ClientIdLimits::DEFAULT, before_outage);
        store.put_group(&test_group(group, &[user]));
        let days_before = before_outage - 2 * ClientIdLimits::DAY_MS;
        store_send(&mut store, group, user, "days before", days_before);
        store_send(&mut store, group, user, "just before", before_outage - hour);
        store.commit(ceil(before_outage)).unwrap();
    }
    let store = place.open();
    assert!(client_ack_of(&store, user, "just before").is_some());
    assert_eq!(client_ack_of(&store, user, "days before"), None);
    assert_eq!(store.recent_client_ids(), 1);
}

/// An entry stamped far in the future (damaged) does not empty the rebuilt index.
fn a_future_entry_does_not_empty_the_rebuilt_index(place: Place) {
    let (user, group) = (Uuid::from_u128(1), Uuid::from_u128(9));
    let now = clock::wall_ms();
    {
        let mut store = place.open();
        store.put_group(&test_group(group, &[user]));
        store_send(&mut store, group, user, "a", now - 10);
        store_send(&mut store, group, user, "z", message_id::MAX_SEQ - 10);
        store.commit(ceil(now)).unwrap();
    }
    let mut store = place.open();
    assert_eq!(store.recent_client_ids(), 2);
    store.put_client_ack(&store.retry_key(user, "b"), Uuid::from_u128(3), now + 1);
    for id in ["a", "b", "z"] {
        assert!(client_ack_of(&store, user, id).is_some(), "{id}");
    }
}

/// A start with a smaller index writes the sends it has no room for into the table.
fn a_smaller_index_at_start_keeps_the_surplus_in_the_table(place: Place) {
    let (user, group) = (Uuid::from_u128(1), Uuid::from_u128(9));
    let now = clock::wall_ms();
    {
        let mut store = place.open();
        store.put_group(&test_group(group, &[user]));
        store_send(&mut store, group, user, "a", now - 10);
        store_send(&mut store, group, user, "b", now - 5);
        store.commit(ceil(now)).unwrap();
        assert!(table_len(&store, Table::ClientIds) == 0);
    }
    let one = ClientIdLimits {
        max_entries: 1,
        ..ClientIdLimits::DEFAULT
    };
    let store = place.open_with(one);
    assert_eq!(table_len(&store, Table::ClientIds), 1);
    for id in ["a", "b"] {
        assert!(client_ack_of(&store, user, id).is_some(), "{id}");
    }
}

/// Sends the index has no room for are recorded in the `client_ids` table and answered from
/// there, also after a restart. When the store opens, records older than the window go, and
/// so do those the index now holds; one it still has no room for stays.
fn sends_beyond_the_index_go_to_the_table_until_it_has_room(place: Place) {
    let (user, group, other) = (Uuid::from_u128(1), Uuid::from_u128(9), Uuid::from_u128(8));
    let now = clock::wall_ms();
    let window = ClientIdLimits::DEFAULT.window_ms;
    let one = ClientIdLimits {
        max_entries: 1,
        ..ClientIdLimits::DEFAULT
    };
    let mut sends = Vec::new();
    {
        let mut store = place.open_with(one);
        store.put_group(&test_group(group, &[user]));
        store.put_group(&test_group(other, &[user]));
        let ts = now - 10;
        sends.push(("a", ts, store_send(&mut store, group, user, "a", ts)));
        // Older than the window (in a stream of its own, which need not be in order).
        let ts = now - window - 600_000;
        sends.push(("old", ts, store_send(&mut store, other, user, "old", ts)));
        let ts = now - 5;
        sends.push(("b", ts, store_send(&mut store, group, user, "b", ts)));
        assert_eq!(store.recent_client_ids(), 1);
        assert_eq!(store.pending[Table::ClientIds as usize].len(), 2);
        store.commit(ceil(now)).unwrap();
        for (id, ts, mid) in &sends {
            let ack = expected_ack(id, *ts, *mid);
            assert_eq!(client_ack_of(&store, user, id), Some(ack), "{id}");
        }
    }
    {
        let store = place.open_with(one);
        assert_eq!(client_ack_of(&store, user, "old"), None, "pruned");
        // One of "a" and "b" is in the index, the other's record stays.
        assert_eq!(store.recent_client_ids(), 1);
        assert_eq!(table_len(&store, Table::ClientIds), 1);
        for id in ["a", "b"] {
            assert!(client_ack_of(&store, user, id).is_some(), "{id}");
        }
    }
    let store = place.open();
    assert_eq!(store.recent_client_ids(), 2);
    assert!(table_len(&store, Table::ClientIds) == 0, "held in memory");
    assert!(!store.client_id_table_used);
    for id in ["a", "b"] {
        assert!(client_ack_of(&store, user, id).is_some(), "{id}");
    }
}
