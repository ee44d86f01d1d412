//! The event log as the store serves it: appending events (and noting each second's first seq),
//! and a sync, which merges the user's stream with the streams of the groups they belonged to,
//! each within the membership's intervals.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use uuid::Uuid;

use super::backend::{Direction, Table};
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
        let bounds = PageBounds {
            limit,
            max_bytes,
            max_streams: usize::MAX,
        };
        let page = self.sync_page_with(user, cursor, bounds, |_| u64::MAX)?;
        Ok((page.events, page.more))
    }

    /// A sync page as [`Store::events_after`], at a cost that follows the page rather than the
    /// user's memberships (see [`Store::sync_page_with`]), knowing each stream's newest seq from
    /// the log.
    pub fn sync_page(
        &self,
        user: Uuid,
        cursor: Cursor,
        bounds: PageBounds,
    ) -> StoreResult<SyncPage> {
        self.sync_page_with(user, cursor, bounds, |stream| self.log.newest_known(stream))
    }

    /// A sync page as [`Store::events_after`]: `newest` tells the newest seq stored in a
    /// group's stream (`u64::MAX` when unknown), and a group with nothing after the cursor is
    /// never read; the others are
    /// opened lazily, in the order of the first seq they could hold, only when the page reaches
    /// it; and once `max_streams` are open and the page has an event, it ends with `more` (after
    /// a seq cursor; a timestamp cursor's page must not end inside a millisecond).
    pub(super) fn sync_page_with(
        &self,
        user: Uuid,
        cursor: Cursor,
        bounds: PageBounds,
        newest: impl Fn(Uuid) -> u64,
    ) -> StoreResult<SyncPage> {
        let (from, after_time) = match cursor {
            Cursor::Seq(seq) => (seq.saturating_add(1), None),
            Cursor::Timestamp(ts) => (self.first_seq_after(ts)?, Some(ts)),
        };
        let spans = self.spans_of(user, from, after_time, |group, span| {
            newest(group) >= span.from
        })?;
        self.merge_streams(user, &spans, bounds, after_time.is_some())
    }

    /// Reads and keeps the newest seq stored in `stream` (a group's), so that a sync can skip
    /// it without reading it; for when the store opens and a group is made.
    pub fn learn_newest_seq(&mut self, stream: Uuid) -> StoreResult<()> {
        self.log.learn_newest_seq(stream)
    }

    /// The stamp of the user's newest event, if any: what an empty sync page reports.
    pub fn newest_event(&self, user: Uuid) -> StoreResult<Option<Stamp>> {
        Ok(self.newest_event_with(user, |_| u64::MAX)?.0)
    }

    /// [`Store::newest_event`], reading the streams most likely to hold it first and stopping
    /// when no other can hold a newer one; also how many streams it read.
    pub fn newest_event_counted(&self, user: Uuid) -> StoreResult<(Option<Stamp>, usize)> {
        self.newest_event_with(user, |stream| self.log.newest_known(stream))
    }

    /// [`Store::newest_event_counted`], with each stream's newest seq from `newest` (as for
    /// [`Store::sync_page_with`]). The user's own stream and current groups come from memory,
    /// the closed intervals newest end first: each stream is read in the order of the newest
    /// seq it may hold, and the search stops when none left can hold one newer than found.
    pub(super) fn newest_event_with(
        &self,
        user: Uuid,
        newest: impl Fn(Uuid) -> u64,
    ) -> StoreResult<(Option<Stamp>, usize)> {
        let open = |from: u64| Span {
            from,
            to: u64::MAX,
            after_time: None,
        };
        let mut current: BinaryHeap<(u64, Uuid, u64)> = self
            .open_memberships_of(user)
            .iter()
            .map(|&(group, from)| (newest(group), group, from))
            .filter(|&(bound, _, from)| bound >= from)
            .collect();
        current.push((u64::MAX, user, 1));
        let mut closed = self
            .closed_intervals(user, 1, Direction::Backward)
            .peekable();
        let mut found: Option<Stamp> = None;
        let mut read = 0;
        loop {
            // Candidates are taken in the order of the newest seq they may hold: a current
            // group's newest, or where a closed interval ends.
            let closed_to = match closed.peek() {
                Some(Ok(interval)) => Some(interval.to),
                Some(Err(_)) => return Err(closed.next().and_then(Result::err).expect("peeked")),
                None => None,
            };
            let current_bound = current.peek().map(|&(bound, _, _)| bound);
            let Some(top) = current_bound.max(closed_to) else {
                break;
            };
            if found.is_some_and(|found| found.seq >= top) {
                break;
            }
            let (stream, span) = if current_bound == Some(top) {
                let (_, stream, from) = current.pop().expect("peeked");
                (stream, open(from))
            } else {
                let interval = closed.next().expect("peeked")?;
                let span = Span {
                    from: interval.from.max(1),
                    to: interval.to,
                    after_time: None,
                };
                let bound = newest(interval.group).min(interval.to);
                if bound < span.from || found.is_some_and(|found| found.seq >= bound) {
                    continue;
                }
                (interval.group, span)
            };
            read += 1;
            let newest = self
                .log
                .newest(stream, span, user, self.memory_chunks(stream))?;
            if newest.is_some_and(|newest| found.is_none_or(|found| newest.seq > found.seq)) {
                found = newest;
            }
        }
        Ok((found, read))
    }

    /// What a user reads of each stream from seq `from` on: their own stream, each group they
    /// are in now, and each group within the intervals they were a member that end at or after
    /// `from` (the others are not read), of those `keep` keeps.
    fn spans_of(
        &self,
        user: Uuid,
        from: u64,
        after_time: Option<u64>,
        keep: impl Fn(Uuid, &Span) -> bool,
    ) -> StoreResult<Vec<(Uuid, Span)>> {
        let mut spans = vec![(
            user,
            Span {
                from,
                to: u64::MAX,
                after_time,
            },
        )];
        for &(group, joined) in self.open_memberships_of(user) {
            let span = Span {
                from: joined.max(from),
                to: u64::MAX,
                after_time,
            };
            if keep(group, &span) {
                spans.push((group, span));
            }
        }
        for interval in self.closed_intervals(user, from, Direction::Forward) {
            let interval = interval?;
            let span = Span {
                from: interval.from.max(from),
                to: interval.to,
                after_time,
            };
            if span.from <= span.to && keep(interval.group, &span) {
                spans.push((interval.group, span));
            }
        }
        Ok(spans)
    }

    /// Merges the spans' streams, each sorted by seq, into one, taking up to `limit` entries
    /// and about `max_bytes`, and telling whether more remain. With `whole_milliseconds`, a page
    /// that is full still takes the entries that share its last one's timestamp.
    ///
    /// A stream is opened only when the merge reaches the first seq its span could hold, so
    /// every event taken is older than anything in a stream not yet opened: the page may end
    /// at any point, which the stream budget uses.
    fn merge_streams(
        &self,
        viewer: Uuid,
        spans: &[(Uuid, Span)],
        bounds: PageBounds,
        whole_milliseconds: bool,
    ) -> StoreResult<SyncPage> {
        // Only the streams opened get a reader: a user in many groups opens few per page,
        // and a slot per span would cost the page a large allocation and its zeroing.
        let mut readers: Vec<(StreamReader, Option<StoredEvent>)> = Vec::new();
        let mut heap: BinaryHeap<_> = spans
            .iter()
            .enumerate()
            .map(|(index, (_, span))| Reverse((span.from, Next::Open(index))))
            .collect();
        let mut page = SyncPage {
            events: Vec::with_capacity(bounds.limit.min(1024)),
            more: false,
            streams_read: 0,
        };
        let mut bytes = 0;
        while let Some(Reverse((_, next))) = heap.pop() {
            let reader = match next {
                Next::Open(index) => {
                    let over_budget = page.streams_read >= bounds.max_streams;
                    if over_budget && !page.events.is_empty() && !whole_milliseconds {
                        page.more = true;
                        return Ok(page);
                    }
                    let (stream, span) = spans[index];
                    let mut reader =
                        self.log
                            .reader(stream, span, viewer, self.memory_chunks(stream))?;
                    page.streams_read += 1;
                    if let Some(head) = reader.next_entry()? {
                        heap.push(Reverse((head.stamp.seq, Next::Read(readers.len()))));
                        readers.push((reader, Some(head)));
                    }
                    continue;
                }
                Next::Read(reader) => reader,
            };
            let (stream, head) = &mut readers[reader];
            let entry = head.take().expect("a reader in the heap has a head");
            let out = &mut page.events;
            let full = out.len() >= bounds.limit || (bytes >= bounds.max_bytes && !out.is_empty());
            let same_millisecond = out.last().is_some_and(|last| {
                whole_milliseconds && last.stamp.timestamp == entry.stamp.timestamp
            });
            if full && !same_millisecond {
                page.more = true;
                return Ok(page);
            }
            bytes += entry.bytes.len();
            out.push(entry);
            *head = stream.next_entry()?;
            if let Some(event) = head {
                heap.push(Reverse((event.stamp.seq, Next::Read(reader))));
            }
        }
        Ok(page)
    }
}

/// What the merge does next at a seq: open the stream of the span at this index, or take the
/// head of the reader at this index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Next {
    Open(usize),
    Read(usize),
}

/// How much one sync page may take: events, about how many bytes, and how many streams it
/// may open once it has an event.
#[derive(Debug, Clone, Copy)]
pub struct PageBounds {
    pub limit: usize,
    pub max_bytes: usize,
    pub max_streams: usize,
}

/// One sync page: its events, whether more may follow, and how many streams it read (the
/// work it cost, counted for `/metrics` and tests).
#[derive(Debug)]
pub struct SyncPage {
    pub events: Vec<StoredEvent>,
    pub more: bool,
    pub streams_read: usize,
}
