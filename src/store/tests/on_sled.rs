//! sled's own behaviour the store relies on: transactions, blob files, segments, `conf`.

use std::path::Path;

use sled::transaction::{ConflictableTransactionError, Transactional};

use super::*;
use crate::store::sled_backend::{open_when_free, stored_segment_size, SEGMENT_BYTES};

/// sled's `set` (`vendor/sled/PARLEY.md`) is seen by a later `get` in the same transaction
/// (also after a get cached the old value), the last write wins, and an abort discards it.
#[test]
fn a_transactions_set_is_read_back_and_discarded_on_abort() {
    use sled::transaction::abort;
    let dir = tempfile::tempdir().unwrap();
    let db = sled::Config::new().path(dir.path()).open().unwrap();
    let trees = [db.open_tree("a").unwrap(), db.open_tree("b").unwrap()];
    trees[0].insert(b"k", b"old").unwrap();
    trees[..]
        .transaction(|t| {
            assert_eq!(t[0].get(b"k")?.as_deref(), Some(&b"old"[..]));
            t[0].set(&b"k"[..], &b"new"[..]);
            assert_eq!(t[0].get(b"k")?.as_deref(), Some(&b"new"[..]));
            t[1].set(&b"x"[..], &b"1"[..]);
            assert_eq!(t[1].get(b"x")?.as_deref(), Some(&b"1"[..]));
            assert_eq!(
                t[1].insert(&b"x"[..], &b"2"[..])?.as_deref(),
                Some(&b"1"[..])
            );
            t[0].set(&b"k"[..], &b"newer"[..]);
            Ok::<(), ConflictableTransactionError<()>>(())
        })
        .unwrap();
    assert_eq!(trees[0].get(b"k").unwrap().as_deref(), Some(&b"newer"[..]));
    assert_eq!(trees[1].get(b"x").unwrap().as_deref(), Some(&b"2"[..]));
    let aborted = trees[..].transaction(|t| {
        t[0].set(&b"k"[..], &b"zzz"[..]);
        t[1].set(&b"y"[..], &b"zzz"[..]);
        abort::<(), ()>(())
    });
    assert!(aborted.is_err());
    assert_eq!(trees[0].get(b"k").unwrap().as_deref(), Some(&b"newer"[..]));
    assert_eq!(trees[1].get(b"y").unwrap(), None);
}

/// A busy group writes big chunks; the log's tree nodes must stay inside sled's log instead
/// of each rewrite becoming a file of its own (see [`SEGMENT_BYTES`]).
#[test]
fn a_busy_groups_log_stays_out_of_blob_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path(), 1 << 20).unwrap();
    let group = Uuid::from_u128(2);
    let event = [b'x'; 1000];
    let mut ts = 0;
    for _ in 0..60 {
        // One tick: 20 events of 1 kB, a 20 kB chunk; a leaf of 17 such is 340 kB.
        for _ in 0..20 {
            ts += 1;
            store.append(group, at(ts), Audience::All, &event);
        }
        store.commit(ceil(ts)).unwrap();
    }
    let blobs = std::fs::read_dir(dir.path().join("blobs"))
        .map(|files| files.count())
        .unwrap_or(0);
    assert_eq!(blobs, 0, "log nodes written as blob files");
    let (events, _) = store
        .events_after(group, Cursor::Seq(0), 1000, usize::MAX)
        .unwrap();
    assert_eq!(
        events.len(),
        1000,
        "a sync reads them back, up to its limit"
    );
}

/// sled's log buffers are reused from segment to segment (`vendor/sled/PARLEY.md`), so
/// each holds the bytes of an older segment until they are overwritten: a log many
/// segments long must read back byte for byte after a reopen, which replays it.
#[test]
fn a_log_of_many_segments_reads_back_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let group = Uuid::from_u128(2);
    let event = |ts: u64| -> Vec<u8> { (0..1000u64).map(|i| (ts * 31 + i) as u8).collect() };
    let mut store = Store::open(dir.path(), 1 << 20).unwrap();
    let mut ts = 0;
    for _ in 0..300 {
        for _ in 0..20 {
            ts += 1;
            store.append(group, at(ts), Audience::All, &event(ts));
        }
        store.commit(ceil(ts)).unwrap();
    }
    drop(store);
    let log_bytes = std::fs::metadata(dir.path().join("db")).unwrap().len();
    assert!(
        log_bytes > 4 * SEGMENT_BYTES as u64,
        "only {log_bytes} bytes of log: too few segments to reuse a buffer"
    );

    let store = Store::open(dir.path(), 1 << 20).unwrap();
    let mut last = 0;
    loop {
        let (events, _) = store
            .events_after(group, Cursor::Seq(last), 1000, usize::MAX)
            .unwrap();
        let Some(newest) = events.last().map(|event| event.stamp.seq) else {
            break;
        };
        for StoredEvent { stamp, bytes } in events {
            let seq = stamp.seq;
            assert_eq!(seq, last + 1, "an event lost or out of order");
            assert!(bytes == event(seq), "event {seq} read back different");
            last = seq;
        }
        assert_eq!(last, newest);
    }
    assert_eq!(last, ts, "events lost");
}

/// A directory made by an older parley (sled's default segment size) opens with its own
/// size and its data; one whose `conf` file (which names the size) is lost is refused rather
/// than opened with a guessed size, which would read its data as garbage.
#[test]
fn a_directory_keeps_its_segment_size_and_one_without_conf_is_refused() {
    const OLD: usize = 512 * 1024;
    // Through `open_when_free`: sled's threads of the previous open may still hold the lock.
    let sled_at = |dir: &Path, size: usize| {
        open_when_free(&sled::Config::new().path(dir).segment_size(size)).unwrap()
    };
    let old = tempfile::tempdir().unwrap();
    let db = sled_at(old.path(), OLD);
    db.insert(b"kept", b"yes").unwrap();
    db.flush().unwrap();
    drop(db);
    drop(Store::open(old.path(), 1 << 20).unwrap());
    assert_eq!(stored_segment_size(old.path()), Some(OLD));
    let db = sled_at(old.path(), OLD);
    assert_eq!(db.get(b"kept").unwrap().as_deref(), Some(&b"yes"[..]));
    drop(db);

    let fresh = tempfile::tempdir().unwrap();
    let mut store = Store::open(fresh.path(), 1 << 20).unwrap();
    assert_eq!(stored_segment_size(fresh.path()), Some(SEGMENT_BYTES));
    store.put_client_ack(
        &store.retry_key(Uuid::from_u128(1), "a"),
        Uuid::from_u128(2),
        1,
    );
    store.commit(ceil(1)).unwrap();
    drop(store);

    for dir in [old.path(), fresh.path()] {
        std::fs::remove_file(dir.join("conf")).unwrap();
        let refused = Store::open(dir, 1 << 20)
            .err()
            .expect("opened without conf");
        assert!(refused.to_string().contains("conf"), "{refused}");
        assert!(!dir.join("conf").exists(), "sled wrote a guessed conf");
    }
}

/// sled's errors become the store's own, each kind told apart, each with the text it had.
#[test]
fn sled_errors_keep_their_kind_and_text() {
    let errors = [
        sled::Error::Io(std::io::Error::other("disk gone")),
        sled::Error::Corruption { at: None, bt: () },
        sled::Error::Unsupported("format 9".into()),
        sled::Error::ReportableBug("a lost page".into()),
    ];
    for sled_error in errors {
        let text = sled_error.to_string();
        let ours = StoreError::from(sled_error);
        let kind_matches = match &ours {
            StoreError::Io(err) => err.to_string() == "disk gone",
            StoreError::Corruption(_) => text.starts_with("Read corrupted data"),
            StoreError::Unsupported(what) => what == "format 9",
            StoreError::Bug(what) => what == "a lost page",
            StoreError::DataLoss(_) => false,
        };
        assert!(kind_matches, "{ours:?}");
        assert_eq!(ours.to_string(), text);
    }
}
