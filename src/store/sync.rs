//! The event log as the store serves it: appending events (and noting each second's first seq),
//! and a sync, which merges the user's stream with the streams of the groups they belonged to,
//! each within the membership's intervals.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use uuid::Uuid;

use super::backend::Table;
use super::log::{Audience, MessageParts, Span, StreamReader};
use super::{read_u64, Store, StoreResult, StoredEvent};
use crate::clock::Stamp;
use crate::protocol::Cursor;

impl Store {
    /// Appends an event to a group's or a user's stream; sealed at the next [`Store::write`].
    pub fn append(&mut self, stream: Uuid, stamp: Stamp, audience: Audience, event: &[u8]) {
        self.note_stamp(stamp);
        self.log.append(stream, stamp, audience, event);
    }

    /// Appends a message and its sender's ack to the group's stream, as parts (see
    /// [`super::log`]).
    pub fn append_message(&mut self, group: Uuid, message: &MessageParts) {
        self.note_stamp(message.stamp);
        self.log.append_message(group, message);
    }

    /// Notes that an event is stored at `stamp`: the first of each second goes into `times`.
    fn note_stamp(&mut self, stamp: Stamp) {
        let second = stamp.timestamp / 1000;
        if second > self.last_second {
            self.last_second = second;
            self.put(
                Table::Times,
                second.to_be_bytes(),
                stamp.seq.to_be_bytes().to_vec(),
            );
        }
    }

    /// A seq at or below the first one stamped after `timestamp`: where a sync by timestamp
    /// starts to look. Timestamps never decrease along seqs, and the `times` table holds the
    /// first seq of each second that has events, so at most a second's worth of events lies
    /// between the two. Events before format 5 were stamped with their seq.
    pub(super) fn first_seq_after(&self, timestamp: u64) -> StoreResult<u64> {
        if timestamp < self.seq_base {
            return Ok(timestamp + 1);
        }
        let second = (timestamp / 1000).to_be_bytes();
        Ok(self
            .last_at_or_before(Table::Times, &second)?
            .map_or(self.seq_base, |seq| read_u64(&seq)))
    }

    /// The author of a message, found from where its id says it is stored.
    pub fn message_author(
        &self,
        group: Uuid,
        seq: u64,
        message_id: Uuid,
    ) -> StoreResult<Option<Uuid>> {
        let unapplied = self
            .unapplied
            .iter()
            .rev()
            .filter_map(|tick| tick.chunks.get(&group));
        self.log.message_author(group, seq, message_id, unapplied)
    }

    /// The user's events after `cursor`, oldest first (in seq order), at most `limit` of them
    /// and about `max_bytes` (at least one event), and whether more exist after the last one.
    /// After a timestamp cursor a page never ends inside a millisecond, so the last event's
    /// timestamp is an exact cursor too: it takes the rest of that millisecond's events.
    pub fn events_after(
        &self,
        user: Uuid,
        cursor: Cursor,
        limit: usize,
        max_bytes: usize,
    ) -> StoreResult<(Vec<StoredEvent>, bool)> {
        let (from, after_time) = match cursor {
            Cursor::Seq(seq) => (seq.saturating_add(1), None),
            Cursor::Timestamp(ts) => (self.first_seq_after(ts)?, Some(ts)),
        };
        let mut sources = Vec::new();
        for (stream, span) in self.spans_of(user, from, after_time)? {
            sources.push(
                self.log
                    .reader(stream, span, user, self.memory_chunks(stream))?,
            );
        }
        merge_streams(sources, limit, max_bytes, after_time.is_some())
    }

    /// The stamp of the user's newest event, if any: what an empty sync page reports.
    pub fn newest_event(&self, user: Uuid) -> StoreResult<Option<Stamp>> {
        let mut newest: Option<Stamp> = None;
        for (stream, span) in self.spans_of(user, 1, None)? {
            let found = self
                .log
                .newest(stream, span, user, self.memory_chunks(stream))?;
            if found.is_some_and(|found| newest.is_none_or(|newest| found.seq > newest.seq)) {
                newest = found;
            }
        }
        Ok(newest)
    }

    /// What a user reads of each stream from seq `from` on: their own stream, and each group's
    /// within the intervals they were a member.
    fn spans_of(
        &self,
        user: Uuid,
        from: u64,
        after_time: Option<u64>,
    ) -> StoreResult<Vec<(Uuid, Span)>> {
        let mut spans = vec![(
            user,
            Span {
                from,
                to: u64::MAX,
                after_time,
            },
        )];
        for (key, intervals) in self.memberships_of(user)? {
            let group = Uuid::from_slice(&key[16..32]).unwrap_or_default();
            for interval in intervals {
                let span = Span {
                    from: interval.from.max(from),
                    to: interval.to.unwrap_or(u64::MAX),
                    after_time,
                };
                if span.from <= span.to {
                    spans.push((group, span));
                }
            }
        }
        Ok(spans)
    }
}

/// Merges streams that are each sorted by seq into one, taking up to `limit` entries and about
/// `max_bytes`, and telling whether more remain. With `whole_milliseconds`, a page that is full
/// still takes the entries that share its last one's timestamp.
fn merge_streams(
    mut sources: Vec<StreamReader>,
    limit: usize,
    max_bytes: usize,
    whole_milliseconds: bool,
) -> StoreResult<(Vec<StoredEvent>, bool)> {
    let mut heads: Vec<Option<StoredEvent>> = Vec::with_capacity(sources.len());
    let mut heap = BinaryHeap::new();
    for (index, source) in sources.iter_mut().enumerate() {
        let head = source.next_entry()?;
        if let Some(event) = &head {
            heap.push(Reverse((event.stamp.seq, index)));
        }
        heads.push(head);
    }
    let mut out: Vec<StoredEvent> = Vec::with_capacity(limit.min(1024));
    let mut bytes = 0;
    while let Some(Reverse((_, index))) = heap.pop() {
        let entry = heads[index].take().expect("a heap entry has a head");
        let full = out.len() >= limit || (bytes >= max_bytes && !out.is_empty());
        let same_millisecond = out.last().is_some_and(|last| {
            whole_milliseconds && last.stamp.timestamp == entry.stamp.timestamp
        });
        if full && !same_millisecond {
            return Ok((out, true));
        }
        bytes += entry.bytes.len();
        out.push(entry);
        let head = sources[index].next_entry()?;
        if let Some(event) = &head {
            heap.push(Reverse((event.stamp.seq, index)));
        }
        heads[index] = head;
    }
    Ok((out, false))
}
