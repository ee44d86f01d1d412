//! Opening: another format refused, formats 2 to 4 upgraded in place.

use super::*;

both!(
    refuses_another_format,
    upgrades_format_2_and_keeps_its_events,
    upgrades_format_3_into_the_index,
    timestamps_hold_at_an_old_clock_ahead_of_the_wall
);

fn refuses_another_format(place: Place) {
    {
        let store = place.open();
        let meta = Table::Meta;
        store
            .backend
            .put(meta, FORMAT_KEY, &1u64.to_be_bytes())
            .unwrap();
        store.backend.flush().unwrap();
    }
    let refused = place.try_open().err().expect("opened format 1");
    assert!(matches!(refused, StoreError::Unsupported(_)), "{refused:?}");
    assert_eq!(
        refused.to_string(),
        "Unsupported: data directory has store format 1; this parley reads format 6"
    );
}

/// Makes the directory of `store` look as an older parley left it: marked `format`, its
/// clock ceiling `clock` (timestamps were seqs then), none of format 5's keys.
fn make_old(store: &Store, format: u64, clock: u64) {
    let (backend, meta) = (&store.backend, Table::Meta);
    let clocks = backend.get(meta, CLOCK_KEY).unwrap();
    let (_, index_ms) = read_clock_record(clocks.as_deref());
    backend
        .put(meta, INDEX_TIME_KEY, &index_ms.to_be_bytes())
        .unwrap();
    for key in [CLOCK_KEY, SEQ_BASE_KEY] {
        backend.remove(meta, key).unwrap();
    }
    backend
        .put(meta, OLD_CLOCK_KEY, &clock.to_be_bytes())
        .unwrap();
    backend
        .put(meta, FORMAT_KEY, &format.to_be_bytes())
        .unwrap();
    backend.flush().unwrap();
}

/// After an upgrade, seqs go on above the old clock ceiling, and timestamps never below it.
fn assert_upgraded(store: &Store, old_clock: u64) {
    let format = store.backend.get(Table::Meta, FORMAT_KEY).unwrap().unwrap();
    assert_eq!(read_u64(&format), FORMAT);
    let ceiling = Ceiling {
        seq: old_clock,
        time: old_clock,
    };
    assert_eq!(store.ceiling().unwrap(), ceiling);
    assert_eq!(store.seq_base, old_clock + 1);
}

/// A format 2 directory (messages stored as JSON, acks as entries of their own) opens, its
/// events read as they were written, each with its timestamp for a seq, and it is marked
/// format 5, which an older parley refuses rather than misreading the entries this one
/// adds. Its client-id records (the ack's JSON) are answered as they are (with their seq)
/// while the window lasts, and pruned after.
fn upgrades_format_2_and_keeps_its_events(place: Place) {
    let (user, group) = (log::old_formats::AUTHOR, log::old_formats::GROUP);
    let now = clock::wall_ms();
    let recent_ack = log::old_formats::ACK_JSON
        .replace("\"c1\"", "\"c0\"")
        .replace(":21,", &format!(":{now},"));
    {
        let mut store = place.open();
        store.open_membership(user, group, 10).unwrap();
        store.log.append_format_2();
        store.commit(ceil(30)).unwrap();
        let ack = log::old_formats::ACK_JSON.as_bytes();
        let (backend, clients) = (&store.backend, Table::ClientIds);
        backend.put(clients, &client_key(user, "c1"), ack).unwrap();
        backend
            .put(clients, &client_key(user, "c0"), recent_ack.as_bytes())
            .unwrap();
        make_old(&store, 2, 30);
    }
    let store = place.open();
    assert_upgraded(&store, 30);
    let (events, _) = store
        .events_after(user, Cursor::Seq(0), 100, usize::MAX)
        .unwrap();
    assert_eq!(events, log::old_formats::events());
    let (events, _) = store
        .events_after(user, Cursor::Timestamp(20), 100, usize::MAX)
        .unwrap();
    assert_eq!(events, log::old_formats::events()[1..]);
    // A retry's ack: kept as JSON by format 2 and answered as it is, within the window.
    let kept = client_ack_of(&store, user, "c0");
    let with_seq = protocol::with_seq(recent_ack.as_bytes(), now);
    assert_eq!(kept.as_deref().map(str::as_bytes), Some(&with_seq[..]));
    assert_eq!(
        client_ack_of(&store, user, "c1"),
        None,
        "older than the window"
    );
    assert_eq!(table_len(&store, Table::ClientIds), 1);
    let mut store = store;
    let mid = log::old_formats::MESSAGE_ID;
    store.put_client_ack(&store.retry_key(user, "c2"), mid, 21);
    let rendered = client_ack_of(&store, user, "c2").unwrap();
    let ack = log::old_formats::ACK_JSON.replace("\"c1\"", "\"c2\"");
    assert_eq!(rendered.as_bytes(), protocol::with_seq(ack.as_bytes(), 21));
}

/// A format 3 directory kept a 24-byte record for every send with a client id; its log
/// entries name the id too, so opening it rebuilds the index and empties the table. Its
/// message ids carry the message's timestamp, now its seq, so a receipt still finds it.
fn upgrades_format_3_into_the_index(place: Place) {
    let (user, group) = (Uuid::from_u128(1), Uuid::from_u128(9));
    let ts = clock::wall_ms();
    let message_id = message_id::new(ts, 1, 0);
    {
        let mut store = place.open();
        store.put_group(&test_group(group, &[user]));
        let parts = MessageParts {
            stamp: at(ts),
            message_id,
            author: user,
            data: "hi",
            ack_seq: ts + 1,
            client_id: Some("c1"),
        };
        store.log.append_message_as_format_4(group, &parts);
        store.commit(ceil(ts + 1)).unwrap();
        let sent = Sent {
            message_id,
            ack_ts: ts + 1,
        };
        let key = client_key(user, "c1");
        let record = client_record(sent);
        store.backend.put(Table::ClientIds, &key, &record).unwrap();
        make_old(&store, 3, ts + 1000);
    }
    let store = place.open();
    assert_upgraded(&store, ts + 1000);
    assert!(table_len(&store, Table::ClientIds) == 0);
    assert!(!store.client_id_table_used);
    let old_ack = format!(
        r#"{{"type":21,"seq":{},"id":"c1","timestamp":{},"body":{{"message_id":"{message_id}"}}}}"#,
        ts + 1,
        ts + 1
    );
    assert_eq!(client_ack_of(&store, user, "c1"), Some(old_ack));
    assert_eq!(
        store.message_author(group, ts, message_id).unwrap(),
        Some(user)
    );
}

/// Before format 5 the clock ran ahead of the wall under load (a millisecond per event), for
/// good. Upgraded, timestamps hold at the old clock's ceiling until the wall catches up, as
/// after a clock step back: they never go back in the server's order, so a client that
/// syncs by its last old timestamp (as every client of the first version does) gets what
/// came after it.
fn timestamps_hold_at_an_old_clock_ahead_of_the_wall(place: Place) {
    let (user, group) = (Uuid::from_u128(1), Uuid::from_u128(9));
    let old_clock = clock::wall_ms() + 60 * 60 * 1000;
    let last_old = old_clock - 1000;
    {
        let mut store = place.open();
        store.put_group(&test_group(group, &[user]));
        store.open_membership(user, group, last_old).unwrap();
        let joined = format!(r#"{{"type":72,"seq":0,"timestamp":{last_old},"body":{{}}}}"#);
        store.log.append_as_format_4(group, last_old, &joined);
        store.commit(ceil(last_old)).unwrap();
        make_old(&store, 4, old_clock);
    }
    let mut store = place.open();
    let ceiling = store.ceiling().unwrap();
    let stamp = clock::Clock::new(ceiling.seq, ceiling.time).stamp(clock::wall_ms());
    assert_eq!(
        stamp,
        Stamp {
            seq: old_clock + 1,
            timestamp: old_clock
        }
    );
    let left = protocol::with_seq(br#"{"type":73,"timestamp":0}"#, stamp.seq);
    store.append(group, stamp, Audience::All, &left);
    let (events, more) = store
        .events_after(user, Cursor::Timestamp(last_old), 10, usize::MAX)
        .unwrap();
    assert_eq!((events, more), (vec![StoredEvent::new(stamp, left)], false));
}
