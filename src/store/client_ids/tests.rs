//! The retry index's unit tests.

use super::*;

const HOUR: u64 = 60 * 60 * 1000;

fn sent(n: u128) -> Sent {
    Sent {
        message_id: Uuid::from_u128(n),
        ack_ts: n as u64,
    }
}

/// A send made now, as the store records one.
fn insert_now(recent: &mut RecentSends, user: Uuid, id: &str, now: u64, sent: Sent) -> bool {
    recent.insert_at(recent.fingerprint(user, id), now, now, sent)
}

#[test]
fn finds_a_send_by_user_and_id_only() {
    let mut recent = RecentSends::new(ClientIdLimits::DEFAULT, 0);
    let (alice, bob) = (Uuid::from_u128(1), Uuid::from_u128(2));
    assert!(insert_now(&mut recent, alice, "c-1", 1000, sent(7)));
    assert_eq!(recent.get(recent.fingerprint(alice, "c-1")), Some(sent(7)));
    assert_eq!(recent.get(recent.fingerprint(bob, "c-1")), None);
    assert_eq!(recent.get(recent.fingerprint(alice, "c-2")), None);
    assert_eq!(recent.get(recent.fingerprint(alice, "c-")), None);
    assert_eq!(recent.held(), 1);
    // Many sends, over every shard: each found with its own record.
    for n in 0..10_000u64 {
        let id = n.to_string();
        assert!(insert_now(&mut recent, bob, &id, 2000 + n, sent(n.into())));
    }
    assert_eq!(recent.held(), 10_001);
    for n in 0..10_000u64 {
        assert_eq!(
            recent.get(recent.fingerprint(bob, &n.to_string())),
            Some(sent(n.into())),
            "{n}"
        );
    }
    assert_eq!(recent.get(recent.fingerprint(alice, "c-1")), Some(sent(7)));
}

/// A shard's table against a model, through growth, removal and reuse of removed slots,
/// with fingerprints crowded onto few tags (so probing passes other sends' slots, and a tag
/// that matches is not taken for the send).
#[test]
fn a_shard_answers_like_a_map() {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        // splitmix64
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut shard = Shard::with_capacity(0);
    let mut model = std::collections::HashMap::new();
    for step in 0..40_000u64 {
        let roll = next();
        // 1,024 tags, 16 sends a tag.
        let fingerprint = Fingerprint(((roll % 1024) << 32) | (roll >> 60), roll % 3);
        let sent = sent(u128::from(next() % 1_000));
        match next() % 8 {
            0 => assert_eq!(shard.remove(fingerprint), model.remove(&fingerprint)),
            1 | 2 => assert_eq!(shard.get(fingerprint), model.get(&fingerprint).copied()),
            _ => {
                let added = shard.insert(fingerprint, sent);
                assert_eq!(added, !model.contains_key(&fingerprint), "step {step}");
                let kept = model.entry(fingerprint).or_insert(sent);
                if kept.ack_ts < sent.ack_ts {
                    *kept = sent;
                }
            }
        }
        assert!(shard.used * LOAD_DENOMINATOR <= shard.slots.len() * LOAD_NUMERATOR);
    }
    assert!(model.len() > 10_000, "{}", model.len());
    for (fingerprint, sent) in &model {
        assert_eq!(shard.get(*fingerprint), Some(*sent));
    }
    let live = shard
        .slots
        .iter()
        .filter(|&&slot| slot != EMPTY && slot != REMOVED);
    assert_eq!(live.count(), model.len());
    let removed = shard.slots.iter().filter(|&&slot| slot == REMOVED).count();
    assert_eq!(removed, shard.removed);
}

/// A table whose sends keep being taken out is rebuilt at its size, not doubled.
#[test]
fn removed_sends_do_not_grow_a_shard() {
    let mut shard = Shard::with_capacity(0);
    for n in 0..10_000u64 {
        let fingerprint = Fingerprint(n.wrapping_mul(0x9e37_79b9_7f4a_7c15), n);
        assert!(shard.insert(fingerprint, sent(n.into())));
        assert_eq!(shard.remove(fingerprint), Some(sent(n.into())));
    }
    assert_eq!(shard.slots.len(), 8);
    assert_eq!(shard.get(Fingerprint(0, 0)), None);
}

/// A send is kept for the whole window, and let go within a quarter window after it.
#[test]
fn keeps_a_send_for_the_window_then_lets_it_go() {
    let limits = ClientIdLimits {
        window_ms: 24 * HOUR,
        max_entries: 100,
    };
    let mut recent = RecentSends::new(limits, 0);
    let user = Uuid::from_u128(1);
    let start = 1_000 * HOUR + 1;
    insert_now(&mut recent, user, "first", start, sent(1));
    let mut forgotten_after = None;
    // A send every hour for 30 hours: the first is kept while it is at most 24 hours old.
    for hour in 1..=30u64 {
        let now = start + hour * HOUR;
        insert_now(
            &mut recent,
            user,
            &format!("h{hour}"),
            now,
            sent(hour.into()),
        );
        if recent.get(recent.fingerprint(user, "first")).is_none() {
            forgotten_after.get_or_insert(hour);
        }
    }
    // Its generation (slot 1000 / 6 h, hours 996 to 1002) goes once hour 1026 has passed.
    assert_eq!(forgotten_after, Some(26));
    // What is left is the last window and at most a quarter window more.
    assert!((24..=30).contains(&recent.held()), "{}", recent.held());
    assert!(recent.get(recent.fingerprint(user, "h6")).is_some());
}

/// The rebuild reads one group after another: an older send that arrives after newer ones
/// goes into its own generation (so it is let go in time), not the newest.
#[test]
fn an_older_send_goes_into_its_own_generation() {
    let limits = ClientIdLimits {
        window_ms: 24 * HOUR,
        max_entries: 100,
    };
    let mut recent = RecentSends::new(limits, 0);
    let user = Uuid::from_u128(1);
    let now = 1_000 * HOUR;
    assert!(recent.insert_at(recent.fingerprint(user, "new"), now - HOUR, now, sent(2)));
    assert!(recent.insert_at(
        recent.fingerprint(user, "old"),
        now - 20 * HOUR,
        now,
        sent(1)
    ));
    // Not kept: older than the window already.
    assert!(recent.insert_at(
        recent.fingerprint(user, "gone"),
        now - 25 * HOUR,
        now,
        sent(1)
    ));
    assert_eq!(recent.get(recent.fingerprint(user, "gone")), None);
    assert_eq!(recent.held(), 2);
    // Eight hours later the old one's generation has left the window, the new one's not.
    insert_now(&mut recent, user, "later", now + 8 * HOUR, sent(3));
    assert_eq!(recent.get(recent.fingerprint(user, "old")), None);
    assert_eq!(recent.get(recent.fingerprint(user, "new")), Some(sent(2)));
}

/// Of two sends with one (user, id) (the id reused after the window), a retry gets the
/// later one's ack, whatever order the rebuild finds them in.
#[test]
fn the_later_of_two_sends_with_one_id_wins() {
    let limits = ClientIdLimits {
        window_ms: 48 * HOUR,
        max_entries: 100,
    };
    let now = 1_000 * HOUR;
    let user = Uuid::from_u128(1);
    for order in [[0, 1], [1, 0]] {
        let mut recent = RecentSends::new(limits, 0);
        let sends = [(now - 30 * HOUR, sent(1)), (now - HOUR, sent(2))];
        for i in order {
            let (at, sent) = sends[i];
            assert!(recent.insert_at(recent.fingerprint(user, "c"), at, now, sent));
        }
        assert_eq!(
            recent.get(recent.fingerprint(user, "c")),
            Some(sent(2)),
            "order {order:?}"
        );
        // And within one generation.
        let mut recent = RecentSends::new(limits, 0);
        for i in order {
            let (_, sent) = sends[i];
            assert!(recent.insert_at(recent.fingerprint(user, "c"), now, now, sent));
        }
        assert_eq!(
            recent.get(recent.fingerprint(user, "c")),
            Some(sent(2)),
            "order {order:?}"
        );
        assert_eq!(recent.held(), 1);
    }
}

/// A send made now (the index's own clock, anchored to the wall clock at open) expires as
/// real time passes.
#[test]
fn sends_made_now_expire_by_the_monotonic_clock() {
    let limits = ClientIdLimits {
        window_ms: 40,
        max_entries: 100,
    };
    let mut recent = RecentSends::new(limits, 1_000_000);
    let user = Uuid::from_u128(1);
    assert!(recent.now() >= 1_000_000);
    assert!(recent.insert(recent.fingerprint(user, "a"), sent(1)));
    std::thread::sleep(std::time::Duration::from_millis(120)); // real time must pass
    assert!(recent.insert(recent.fingerprint(user, "b"), sent(2)));
    assert_eq!(
        recent.get(recent.fingerprint(user, "a")),
        None,
        "120 ms old with a 40 ms window"
    );
    assert_eq!(recent.get(recent.fingerprint(user, "b")), Some(sent(2)));
}

/// A full index still takes the later send of a (user, id) it holds, in its place.
#[test]
fn a_full_index_takes_the_later_send_of_an_id_it_holds() {
    let limits = ClientIdLimits {
        window_ms: 48 * HOUR,
        max_entries: 1,
    };
    let now = 1_000 * HOUR;
    let user = Uuid::from_u128(1);
    for (first, second) in [(sent(1), sent(2)), (sent(2), sent(1))] {
        let mut recent = RecentSends::new(limits, 0);
        assert!(recent.insert_at(recent.fingerprint(user, "c"), now - 30 * HOUR, now, first));
        assert!(recent.insert_at(recent.fingerprint(user, "c"), now - HOUR, now, second));
        assert_eq!(recent.get(recent.fingerprint(user, "c")), Some(sent(2)));
        assert_eq!(recent.held(), 1);
        assert!(
            !recent.insert_at(recent.fingerprint(user, "d"), now, now, sent(3)),
            "full"
        );
    }
}

#[test]
fn refuses_when_full_and_takes_again_once_the_window_passes() {
    let limits = ClientIdLimits {
        window_ms: 4 * HOUR,
        max_entries: 3,
    };
    let mut recent = RecentSends::new(limits, 0);
    let user = Uuid::from_u128(1);
    for n in 0..3u64 {
        assert!(insert_now(
            &mut recent,
            user,
            &n.to_string(),
            n,
            sent(n.into())
        ));
    }
    assert!(!insert_now(&mut recent, user, "full", 4, sent(4)));
    assert_eq!(recent.get(recent.fingerprint(user, "full")), None);
    assert_eq!(recent.held(), 3);
    // Once the window has passed every send of a generation, they make room.
    assert!(insert_now(&mut recent, user, "later", 5 * HOUR, sent(5)));
    assert_eq!(recent.held(), 1);
    assert_eq!(recent.get(recent.fingerprint(user, "0")), None);
    assert_eq!(recent.get(recent.fingerprint(user, "later")), Some(sent(5)));
}
