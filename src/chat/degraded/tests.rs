//! A sync page cut at the read limit: exact, and its cursor never passes a held event.

use super::*;
use crate::store::StoredEvent;

fn stamp(seq: u64, timestamp: u64) -> Stamp {
    Stamp { seq, timestamp }
}

fn page(stamps: &[(u64, u64)], more: bool) -> SyncPage {
    SyncPage {
        events: stamps
            .iter()
            .map(|&(seq, ts)| StoredEvent::new(stamp(seq, ts), Vec::new()))
            .collect(),
        more,
        streams_read: 1,
    }
}

fn seqs(page: &SyncPage) -> Vec<u64> {
    page.events.iter().map(|event| event.stamp.seq).collect()
}

#[test]
fn a_page_under_the_limit_is_untouched() {
    let mut p = page(&[(3, 10), (5, 11)], true);
    assert_eq!(hold_back(&mut p, stamp(5, 11), Cursor::Seq(0)), None);
    assert_eq!(seqs(&p), [3, 5]);
    assert!(p.more, "a full page still says more");
}

#[test]
fn events_above_the_limit_are_dropped_and_the_page_ends() {
    let mut p = page(&[(3, 10), (5, 11), (8, 11), (9, 12)], true);
    assert_eq!(
        hold_back(&mut p, stamp(6, 11), Cursor::Seq(0)),
        Some(stamp(8, 11))
    );
    assert_eq!(seqs(&p), [3, 5]);
    assert!(
        !p.more,
        "nothing more to read until the held events are stored"
    );
}

#[test]
fn after_a_timestamp_cursor_the_held_events_millisecond_is_held_whole() {
    // Seq 5 is durable, but shares its millisecond with held seq 8: a 29 at timestamp 11
    // would make the next sync by timestamp skip seq 8.
    let mut p = page(&[(3, 10), (5, 11), (8, 11)], false);
    let first = hold_back(&mut p, stamp(6, 11), Cursor::Timestamp(9));
    assert_eq!(first, Some(stamp(5, 11)));
    assert_eq!(seqs(&p), [3]);

    let mut p = page(&[(5, 11), (8, 11)], false);
    let first = hold_back(&mut p, stamp(6, 11), Cursor::Timestamp(10)).unwrap();
    assert!(p.events.is_empty());
    // The next sync, by either field, starts at seq 5 / within millisecond 11.
    assert_eq!(cursor_before(Cursor::Timestamp(10), first), stamp(4, 10));
}

#[test]
fn an_emptied_page_keeps_the_request_cursor_and_stops_before_the_held_event() {
    let mut p = page(&[(8, 11), (9, 12)], false);
    let first = hold_back(&mut p, stamp(6, 11), Cursor::Seq(4)).unwrap();
    assert!(p.events.is_empty() && !p.more);
    assert_eq!(cursor_before(Cursor::Seq(4), first), stamp(4, 10));
}

#[test]
fn an_account_reads_as_stored_only_once_its_tick_is() {
    use crate::store::{Ceiling, Store, UserRecord};
    // A login while the store cannot write is answered at once only for an account that is
    // stored; one registered in a tick that waits is still in memory.
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path(), 1 << 20).unwrap();
    let user = UserRecord {
        id: uuid::Uuid::new_v4(),
        username: "ann".into(),
        email: "ann@example.com".into(),
        password_hash: "hash".into(),
        created_at: 1,
        token_generation: 0,
        suspended: false,
        deleted: false,
    };
    assert!(!store.user_in_memory(user.id));
    store.insert_user(&user);
    assert!(store.user_in_memory(user.id), "written this tick");
    let _sealed = store.write(1, Ceiling { seq: 10, time: 1 });
    assert!(store.user_in_memory(user.id), "sealed, not applied");
    store.commit(Ceiling { seq: 10, time: 1 }).unwrap();
    assert!(!store.user_in_memory(user.id), "stored");
    assert!(store.user_exists(user.id).unwrap());
}
