//! The backend interface itself, the same body on sled and in memory: a batch of sealed ticks,
//! records by key, seeks back, ranges both ways, prefixes, and the writes opening makes.

use std::ops::Bound;

use super::*;

both!(a_backend_applies_batches_and_answers_the_stores_reads);

/// The keys `entries` hold, as text.
fn keys(entries: Entries) -> Vec<String> {
    entries
        .map(|entry| String::from_utf8(entry.unwrap().0).unwrap())
        .collect()
}

fn a_backend_applies_batches_and_answers_the_stores_reads(place: Place) {
    let mut store = place.open();
    let backend = Arc::clone(&store.backend);
    let stream = Uuid::from_u128(5);
    // Two ticks in one batch: the later write to a key wins, the newest tick's clocks count.
    store.put(Table::Receipts, &b"b"[..], b"1".to_vec());
    store.put(Table::Receipts, &b"d"[..], b"1".to_vec());
    store.append(stream, at(1), Audience::All, b"event");
    let first = store.write(1, Ceiling { seq: 7, time: 70 });
    store.put(Table::Receipts, &b"b"[..], b"2".to_vec());
    store.put(Table::Receipts, &b"a"[..], b"2".to_vec());
    let second = store.write(2, Ceiling { seq: 9, time: 90 });
    assert_eq!(backend.get(Table::Receipts, b"b").unwrap(), None, "not yet");
    backend.apply(&[first, second]).unwrap();
    backend.flush().unwrap();
    store.forget_applied(2);
    assert_eq!(backend.get(Table::Receipts, b"b").unwrap().unwrap(), b"2");
    assert_eq!(store.ceiling().unwrap(), Ceiling { seq: 9, time: 90 });
    let chunk = backend.get(Table::Log, &log::chunk_key(stream, 1)).unwrap();
    assert!(chunk.is_some_and(|chunk| chunk.ends_with(b"event")));

    let receipts = Table::Receipts;
    let at_or_before = |key: &[u8]| {
        let found = backend.last_at_or_before(receipts, key).unwrap();
        found.map(|(key, _)| String::from_utf8(key).unwrap())
    };
    assert_eq!(at_or_before(b"c").as_deref(), Some("b"));
    assert_eq!(at_or_before(b"b").as_deref(), Some("b"));
    assert_eq!(at_or_before(b"0"), None);
    let (all, b, d) = (Bound::Unbounded, &b"b"[..], &b"d"[..]);
    let range = |from, to, direction| keys(backend.range(receipts, from, to, direction));
    assert_eq!(range(all, all, Direction::Forward), ["a", "b", "d"]);
    assert_eq!(range(all, all, Direction::Backward), ["d", "b", "a"]);
    let (incl, excl) = (Bound::Included, Bound::Excluded);
    assert_eq!(range(incl(b), incl(d), Direction::Forward), ["b", "d"]);
    assert_eq!(range(excl(b), excl(d), Direction::Forward), [""; 0]);
    assert_eq!(range(incl(b), excl(d), Direction::Backward), ["b"]);
    // Bounds that leave no key between them read nothing, whichever way round.
    assert_eq!(range(excl(b), excl(b), Direction::Forward), [""; 0]);
    assert_eq!(range(incl(d), incl(b), Direction::Forward), [""; 0]);

    backend.put(receipts, b"ab", b"x").unwrap();
    backend.remove(receipts, b"a").unwrap();
    backend.flush().unwrap();
    assert_eq!(keys(backend.scan_prefix(receipts, b"a")), ["ab"]);
    assert_eq!(keys(backend.scan_prefix(receipts, b"z")), [""; 0]);
    assert!(backend.size_on_disk().unwrap() > 0);
}
