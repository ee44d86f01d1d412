//! The loop's side of group commit: which frames leave, which wait, and the read limit while degraded.

use super::*;
use crate::store::{Ceiling, Store};

fn ceiling(seq: u64) -> Ceiling {
    Ceiling { seq, time: 0 }
}

fn stamp(seq: u64, timestamp: u64) -> Stamp {
    Stamp { seq, timestamp }
}

/// The connections whose gated frames may leave now, in commit order.
fn released(durability: &mut Durability) -> Vec<usize> {
    std::iter::from_fn(|| durability.pop_released())
        .map(|to| to.key)
        .collect()
}

#[test]
fn acks_wait_for_their_commit_and_ordered_fan_out_only_for_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path(), 1 << 20).unwrap();
    let mut durability = Durability::new(store.start_flusher(Arc::default(), || {}), ceiling(100));
    let (a, b) = (ConnId { key: 1, serial: 1 }, ConnId { key: 2, serial: 2 });

    // Nothing durable yet: an ack of this tick's commit waits, and so does fan-out stamped
    // above the ceiling stored at start; fan-out under it may leave.
    let commit = durability.commit_of_tick(true);
    assert_eq!(commit, 1);
    assert!(!durability.may_leave(Release::Durable, commit));
    assert!(!durability.may_leave(Release::Early { seq: 101 }, commit));
    assert!(durability.may_leave(Release::Early { seq: 100 }, commit));
    assert_eq!(durability.hold(a, Release::Durable, commit), Some(1));
    durability.written(store.write(commit, ceiling(200)), stamp(110, 5));

    // A tick that writes nothing depends on the last commit written.
    assert_eq!(durability.commit_of_tick(false), 1);
    let commit = durability.commit_of_tick(true);
    assert_eq!(durability.hold(b, Release::Durable, commit), Some(2));
    // Fan-out to `a`, behind its ack: it waits for that ack only, not for commit 2.
    let behind = durability.hold(a, Release::Early { seq: 50 }, commit);
    assert_eq!(behind, None);
    durability.written(store.write(commit, ceiling(300)), stamp(120, 6));

    // Commit 1 alone durable (as if the flusher had reported it): `a` drains whole.
    durability.mark_durable(1);
    assert_eq!(released(&mut durability), [1]);
    assert!(durability.may_release(Some(1)) && durability.may_release(behind));
    assert!(!durability.may_release(Some(2)));
    assert!(durability.may_leave(Release::Early { seq: 200 }, 2));
    assert!(!durability.may_leave(Release::Early { seq: 201 }, 2));

    durability.finish().unwrap();
    assert_eq!(released(&mut durability), [2]);
    assert!(durability.may_leave(Release::Early { seq: 300 }, 2));
    assert!(durability.may_leave(Release::Durable, 2));
    durability.forget_held(3);
    assert!(!durability.too_far_behind());
}

#[test]
fn while_degraded_reads_are_limited_to_the_last_durable_commits_stamp() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path(), 1 << 20).unwrap();
    let stored = Ceiling { seq: 100, time: 7 };
    let mut durability = Durability::new(store.start_flusher(Arc::default(), || {}), stored);
    // Storing: no limit, answers wait for their commit as ever.
    assert_eq!(durability.read_limit(), None);

    let full = || {
        StoreError::Io(Arc::new(std::io::Error::from(
            std::io::ErrorKind::StorageFull,
        )))
    };
    // Degraded before any commit is durable: what the store was opened with is.
    durability.degraded = Some(full());
    assert_eq!(durability.read_limit(), Some(stamp(100, 7)));

    durability.written(store.write(1, ceiling(1200)), stamp(105, 9));
    durability.written(store.write(2, ceiling(1300)), stamp(130, 12));
    // Commit 1 durable, commit 2 not (the one that failed): events up to 105 are readable.
    durability.mark_durable(1);
    assert_eq!(durability.read_limit(), Some(stamp(105, 9)));
    // Space back: everything durable, and no limit.
    durability.degraded = None;
    durability.finish().unwrap();
    assert_eq!(durability.read_limit(), None);
    assert_eq!(durability.durable_stamp, stamp(130, 12));
}
