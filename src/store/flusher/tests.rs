//! The flusher's unit tests.

use std::sync::atomic::{AtomicUsize, Ordering};

use uuid::Uuid;

use crate::clock::Stamp;
use crate::protocol;
use crate::store::backend::Table;
use crate::store::tests::{both, Place};
use crate::store::{Ceiling, StoreError};

use super::*;

both!(sealed_ticks_reach_the_backend_in_order_and_wake_the_loop);

fn sealed_ticks_reach_the_backend_in_order_and_wake_the_loop(place: Place) {
    let mut store = place.open();
    let woken = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&woken);
    let flusher = store.start_flusher(Arc::default(), move || {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    let user = Uuid::from_u128(7);
    let (first, second, other) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
    let ack = |id: &str, timestamp, message_id| {
        let seq = crate::store::message_id::ack_seq(message_id);
        let stamp = Stamp { seq, timestamp };
        Some(protocol::sent_event(Some(id), stamp, message_id))
    };
    let ceiling = |seq| Ceiling {
        seq,
        time: seq * 10,
    };
    store.put_client_ack(&store.retry_key(user, "a"), first, 10);
    flusher.request(store.write(1, ceiling(100)));
    store.put_client_ack(&store.retry_key(user, "a"), second, 20);
    store.put_client_ack(&store.retry_key(user, "b"), other, 30);
    flusher.request(store.write(2, ceiling(200)));
    // Before the flusher is known done, reads see the sealed ticks, newest first.
    assert_eq!(
        store.client_ack(&store.retry_key(user, "a")).unwrap(),
        ack("a", 20, second)
    );
    flusher.wait_for(2, true).unwrap();
    let progress = flusher.progress();
    assert_eq!(progress.durable, 2);
    assert!(!progress.flush_times.is_empty());
    // The loop's waker runs right after the flush is recorded.
    let deadline = Instant::now() + Duration::from_secs(5);
    while woken.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the flusher never woke the loop");
        std::thread::yield_now();
    }
    // Once forgotten, the same answers come from the backend itself.
    store.forget_applied(2);
    assert_eq!(
        store.client_ack(&store.retry_key(user, "a")).unwrap(),
        ack("a", 20, second)
    );
    assert_eq!(
        store.client_ack(&store.retry_key(user, "b")).unwrap(),
        ack("b", 30, other)
    );
    assert_eq!(store.ceiling().unwrap(), ceiling(200));
}

/// A tmpfs of `size` mounted on a fresh directory, unmounted when dropped; `None` (with a
/// message) where mounting is not allowed.
pub(crate) struct SmallFs {
    dir: tempfile::TempDir,
}

impl SmallFs {
    pub(crate) fn mount(size: &str) -> Option<SmallFs> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|status| status.success());
        if !mounted {
            eprintln!("SKIPPED: cannot mount a tmpfs here (needs root and mount rights)");
            return None;
        }
        Some(SmallFs { dir })
    }

    pub(crate) fn path(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        // Lazily: sled's I/O threads may hold a file a moment after the store is dropped, and
        // a busy mount would be left behind.
        let _ = std::process::Command::new("umount")
            .arg("--lazy")
            .arg(self.dir.path())
            .status();
    }
}

/// What sled does on a full disk, which the plan in docs/ARCHITECTURE.md ("A full disk") builds
/// on: the first failed write sticks (every later write and flush fails, freed space or not),
/// reads go on, and closing the database and opening it again in the same process clears it,
/// with everything flushed before the failure there.
#[test]
fn sled_on_a_full_disk_fails_until_reopened_and_keeps_what_was_flushed() {
    use crate::store::backend::Backend;
    use crate::store::sled_backend::SledBackend;
    let Some(fs) = SmallFs::mount("6m") else {
        return;
    };
    let db = fs.path().join("db");
    let mut backend = SledBackend::open(&db, 1 << 20).unwrap();
    backend.open_tables().unwrap();
    backend.put(Table::Users, b"before", b"1").unwrap();
    backend.flush().unwrap();
    // Everything but a little taken by a filler file.
    let filler = fs.path().join("filler");
    let free = fs2_free(fs.path());
    std::fs::write(&filler, vec![0u8; (free - 16 * 1024) as usize]).unwrap();
    let value = vec![7u8; 4096];
    let mut stored = 0u32;
    let failure = loop {
        let key = format!("k{stored:06}");
        let result = backend
            .put(Table::Users, key.as_bytes(), &value)
            .and_then(|()| backend.flush());
        match result {
            Ok(()) => stored += 1,
            Err(err) => break err,
        }
        assert!(stored < 10_000, "the disk never filled");
    };
    eprintln!("stored {stored} before {failure}");
    assert!(matches!(failure, StoreError::Io(_)), "{failure:?}");
    // Reads go on.
    assert_eq!(backend.get(Table::Users, b"before").unwrap().unwrap(), b"1");
    // Space back: the same instance still fails.
    std::fs::remove_file(&filler).unwrap();
    let again = backend
        .put(Table::Users, b"after", b"2")
        .and_then(|()| backend.flush());
    eprintln!("after freeing space, same instance: {again:?}");
    // Closed and opened again: writes work, the flushed ones are there.
    drop(backend);
    let mut backend = SledBackend::open(&db, 1 << 20).unwrap();
    backend.open_tables().unwrap();
    assert_eq!(backend.get(Table::Users, b"before").unwrap().unwrap(), b"1");
    for i in 0..stored {
        let key = format!("k{i:06}");
        assert!(
            backend.get(Table::Users, key.as_bytes()).unwrap().is_some(),
            "{key}"
        );
    }
    backend.put(Table::Users, b"after", b"2").unwrap();
    backend.flush().unwrap();
    assert_eq!(backend.get(Table::Users, b"after").unwrap().unwrap(), b"2");
    assert!(again.is_err(), "sled's error was expected to stick");
}

fn fs2_free(path: &std::path::Path) -> u64 {
    let out = std::process::Command::new("df")
        .args(["-B1", "--output=avail"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// On a full disk the flusher keeps the failed ticks and says it is degraded, reads still see
/// them, and once space returns it stores them by itself (reopening sled), so a store opened
/// afterwards has every one of them.
#[test]
fn a_degraded_flusher_keeps_the_failed_ticks_and_stores_them_when_space_returns() {
    let Some(fs) = SmallFs::mount("6m") else {
        return;
    };
    let dir = fs.path().join("db");
    let mut store = crate::store::Store::open(&dir, 1 << 20).unwrap();
    let flusher = store.start_flusher(Arc::default(), || {});
    let filler = fs.path().join("filler");
    let free = fs2_free(fs.path());
    std::fs::write(&filler, vec![0u8; (free - 16 * 1024) as usize]).unwrap();
    let value = vec![7u8; 4096];
    let ceiling = |seq| Ceiling { seq, time: seq };
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut commit = 0;
    let failure = loop {
        commit += 1;
        let key = format!("k{commit:06}");
        store.put(Table::Users, key.into_bytes(), value.clone());
        flusher.request(store.write(commit, ceiling(commit)));
        // Each tick waits for its flush or for the failure.
        let _ = flusher.wait_for(commit, true);
        let progress = flusher.progress();
        store.forget_applied(progress.durable);
        if let Some(err) = progress.degraded {
            break err;
        }
        assert!(
            Instant::now() < deadline && commit < 5_000,
            "the disk never filled"
        );
    };
    assert!(matches!(failure, StoreError::Io(_)), "{failure:?}");
    let failed = commit;
    // A tick more while degraded: held as well, and readable.
    commit += 1;
    store.put(Table::Users, b"while-degraded".to_vec(), b"x".to_vec());
    flusher.request(store.write(commit, ceiling(commit)));
    assert!(flusher.wait_for(commit, true).is_err());
    assert!(flusher.progress().durable < failed);
    assert!(store
        .get(Table::Users, format!("k{failed:06}").as_bytes())
        .unwrap()
        .is_some());
    assert!(store
        .get(Table::Users, b"while-degraded")
        .unwrap()
        .is_some());

    std::fs::remove_file(&filler).unwrap();
    // Stored by itself within a few retries.
    let (done, waited) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let result = flusher.wait_for(commit, false);
        let _ = done.send(result.is_ok());
        flusher
    });
    assert_eq!(waited.recv_timeout(Duration::from_secs(20)), Ok(true));
    let flusher = waiter.join().unwrap();
    assert!(flusher.progress().degraded.is_none());
    drop(flusher);
    store.forget_applied(commit);
    drop(store);
    let store = crate::store::Store::open(&dir, 1 << 20).unwrap();
    for n in 1..commit {
        let key = format!("k{n:06}");
        assert!(
            store.get(Table::Users, key.as_bytes()).unwrap().is_some(),
            "{key}"
        );
    }
    assert!(store
        .get(Table::Users, b"while-degraded")
        .unwrap()
        .is_some());
    assert_eq!(store.ceiling().unwrap(), ceiling(commit));
}
