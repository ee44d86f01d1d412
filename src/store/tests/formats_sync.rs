//! One random history in formats 2, 4 and 5: every sync of it, every page, every state.

use super::*;

both!(every_format_syncs_exactly_by_seq_and_by_timestamp);

/// The same random history written as format 2 (JSON, acks as entries of their own), as
/// format 4 (parts) and as format 5 (with timestamps of their own, several events to a
/// millisecond): every sync of every user, from every cursor, in pages of every size, with
/// chunks pending, sealed, applied and forgotten, returns the same events from formats 2 and
/// 4, and from format 5 exactly what its whole history says, by seq and by timestamp;
/// paging stitches together to the whole history once.
fn every_format_syncs_exactly_by_seq_and_by_timestamp(place: Place) {
    for seed in 1..=6u64 {
        same_syncs_in_every_format(seed, &place);
    }
}

struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Every page from `cursor` on, stitched together, each page's last event the next cursor.
fn all_pages(
    store: &Store,
    user: Uuid,
    mut cursor: Cursor,
    limit: usize,
    bytes: usize,
) -> Vec<StoredEvent> {
    let mut events = Vec::new();
    loop {
        let (page, more) = store.events_after(user, cursor, limit, bytes).unwrap();
        if let Some(last) = page.last() {
            cursor = match cursor {
                Cursor::Seq(_) => Cursor::Seq(last.stamp.seq),
                Cursor::Timestamp(_) => Cursor::Timestamp(last.stamp.timestamp),
            };
        }
        events.extend(page);
        if !more {
            return events;
        }
    }
}

/// The page a sync should return from the events after its cursor, by the rules of
/// `events_after` written out plainly.
fn model_page(
    after: &[StoredEvent],
    limit: usize,
    max_bytes: usize,
    whole_milliseconds: bool,
) -> (Vec<StoredEvent>, bool) {
    let mut page: Vec<StoredEvent> = Vec::new();
    let mut bytes = 0;
    for event in after {
        let full = page.len() >= limit || (bytes >= max_bytes && !page.is_empty());
        let same = page.last().is_some_and(|last| {
            whole_milliseconds && last.stamp.timestamp == event.stamp.timestamp
        });
        if full && !same {
            return (page, true);
        }
        bytes += event.bytes.len();
        page.push(event.clone());
    }
    (page, false)
}

/// Format 5's stamps here: three seqs to a timestamp, 400 ms apart, so that pages meet
/// shared milliseconds and the `times` table new seconds.
fn stamp_5(seq: u64) -> Stamp {
    Stamp {
        seq,
        timestamp: 1_000_000 + seq / 3 * 400,
    }
}

fn same_syncs_in_every_format(seed: u64, place: &Place) {
    let mut rng = XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let places = [place.another(), place.another(), place.another()];
    let [mut old, mut mid, mut new] = places.each_ref().map(Place::open);
    let users: Vec<Uuid> = (1..=3).map(Uuid::from_u128).collect();
    let groups: Vec<Uuid> = (100..=101).map(Uuid::from_u128).collect();
    let mut members: Vec<Vec<Uuid>> = vec![Vec::new(); groups.len()];
    let datas = [
        "hi",
        "\"quotes\", \\ and \n",
        "é ü 😀 \u{2028}",
        "x",
        "<script>",
    ];
    let client_ids = [None, Some("c1"), Some("a \"q\""), Some("x\u{1}")];
    let (mut seq, mut commit, mut message_id) = (1000u64, 1, 0u128);
    let mut sealed = Vec::new();
    let mut messages = Vec::new();
    for _tick in 0..30 {
        for _ in 0..rng.below(5) {
            let g = rng.below(groups.len() as u64) as usize;
            let group = groups[g];
            match rng.below(6) {
                0..=2 if !members[g].is_empty() => {
                    let author = members[g][rng.below(members[g].len() as u64) as usize];
                    message_id += 1;
                    seq += 1 + rng.below(3);
                    let message = MessageParts {
                        stamp: at(seq),
                        message_id: Uuid::from_u128(message_id),
                        author,
                        data: datas[rng.below(datas.len() as u64) as usize],
                        ack_seq: seq + 1,
                        client_id: client_ids[rng.below(4) as usize],
                    };
                    seq += 1;
                    old.log.append_message_as_format_2(group, &message);
                    mid.log.append_message_as_format_4(group, &message);
                    new.append_message(
                        group,
                        &MessageParts {
                            stamp: stamp_5(message.stamp.seq),
                            ..message
                        },
                    );
                    messages.push((group, message.stamp.seq, message.message_id, author));
                }
                0..=4 => {
                    let user = users[rng.below(users.len() as u64) as usize];
                    seq += 1 + rng.below(3);
                    let joins = !members[g].contains(&user);
                    let event = format!(
                        "{{\"type\":{},\"timestamp\":{seq}}}",
                        if joins { 72 } else { 73 }
                    );
                    for (store, stamp) in [(&mut old, at(seq)), (&mut mid, at(seq))]
                        .into_iter()
                        .chain([(&mut new, stamp_5(seq))])
                    {
                        if joins {
                            store.open_membership(user, group, seq).unwrap();
                        }
                        store.append(group, stamp, Audience::All, event.as_bytes());
                        if !joins {
                            store.close_membership(user, group, seq).unwrap();
                        }
                    }
                    if joins {
                        members[g].push(user);
                    } else {
                        members[g].retain(|member| *member != user);
                    }
                }
                _ => {
                    let user = users[rng.below(users.len() as u64) as usize];
                    seq += 1;
                    let receipt = format!("{{\"type\":22,\"timestamp\":{seq}}}");
                    for store in [&mut old, &mut mid] {
                        store.append(user, at(seq), Audience::All, receipt.as_bytes());
                    }
                    new.append(user, stamp_5(seq), Audience::All, receipt.as_bytes());
                }
            }
        }
        match rng.below(4) {
            0 => {
                for store in [&mut old, &mut mid, &mut new] {
                    store.commit(ceil(seq)).unwrap();
                }
                sealed.clear();
            }
            1 | 2 => {
                commit += 1;
                sealed.push([&mut old, &mut mid, &mut new].map(|s| s.write(commit, ceil(seq))));
                if rng.below(2) == 0 {
                    // The flusher applies some sealed ticks; the loop may not know yet.
                    let n = rng.below(sealed.len() as u64 + 1) as usize;
                    let applied: Vec<_> = sealed.drain(..n).collect();
                    if let Some(last) = applied.last().map(|ticks| ticks[0].commit()) {
                        let forget = rng.below(2) == 0;
                        for (i, store) in [&mut old, &mut mid, &mut new].into_iter().enumerate() {
                            let ticks: Vec<_> = applied.iter().map(|t| t[i].clone()).collect();
                            store.backend.apply(&ticks).unwrap();
                            if forget {
                                store.forget_applied(last);
                            }
                        }
                    }
                }
            }
            _ => {}
        }
        for &user in &users {
            let whole = all_pages(&new, user, Cursor::Seq(0), usize::MAX, usize::MAX);
            assert!(
                whole.windows(2).all(|w| w[0].stamp.seq < w[1].stamp.seq),
                "seed {seed}: order"
            );
            assert_eq!(
                new.newest_event(user).unwrap(),
                whole.last().map(|event| event.stamp),
                "seed {seed}: newest"
            );
            let mut cursors: Vec<u64> = (0..10).map(|_| 990 + rng.below(seq + 2 - 990)).collect();
            cursors.push(0);
            cursors.extend(whole.iter().rev().take(3).map(|event| event.stamp.seq));
            for cursor in cursors {
                let by_seq: Vec<_> = whole
                    .iter()
                    .filter(|e| e.stamp.seq > cursor)
                    .cloned()
                    .collect();
                let time = stamp_5(cursor).timestamp;
                let by_time: Vec<_> = whole
                    .iter()
                    .filter(|e| e.stamp.timestamp > time)
                    .cloned()
                    .collect();
                for limit in [1, 2, 3, 7, 1000] {
                    for bytes in [1, 150, 400, usize::MAX] {
                        let at = Cursor::Seq(cursor);
                        let context = format!(
                            "seed {seed} user {user} cursor {cursor} limit {limit} bytes {bytes}"
                        );
                        assert_eq!(
                            old.events_after(user, at, limit, bytes).unwrap(),
                            mid.events_after(user, at, limit, bytes).unwrap(),
                            "{context}"
                        );
                        assert_eq!(
                            new.events_after(user, at, limit, bytes).unwrap(),
                            model_page(&by_seq, limit, bytes, false),
                            "{context}"
                        );
                        let at = Cursor::Timestamp(time);
                        assert_eq!(
                            new.events_after(user, at, limit, bytes).unwrap(),
                            model_page(&by_time, limit, bytes, true),
                            "{context} by time"
                        );
                    }
                }
                let limit = 1 + rng.below(4) as usize;
                for store in [&old, &mid] {
                    let after: Vec<_> = all_pages(store, user, Cursor::Seq(0), 1000, 1 << 20)
                        .into_iter()
                        .filter(|e| e.stamp.seq > cursor)
                        .collect();
                    let pages = all_pages(store, user, Cursor::Seq(cursor), limit, 300);
                    assert_eq!(pages, after, "seed {seed}: pages");
                }
                let pages = all_pages(&new, user, Cursor::Seq(cursor), limit, 300);
                assert_eq!(pages, by_seq, "seed {seed}: pages by seq");
                let pages = all_pages(&new, user, Cursor::Timestamp(time), limit, 300);
                assert_eq!(pages, by_time, "seed {seed}: pages by timestamp");
            }
        }
        for &(group, seq, id, author) in &messages {
            for store in [&old, &mid, &new] {
                assert_eq!(store.message_author(group, seq, id).unwrap(), Some(author));
                assert_eq!(store.message_author(group, seq + 1, id).unwrap(), None);
            }
        }
    }
}
