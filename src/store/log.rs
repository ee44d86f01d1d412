//! The event log. Every event is appended to a stream (a group's or a user's) and stored as one
//! value per stream per tick, a "chunk", so a tick costs one write per active stream rather
//! than one per event. The tick's chunks stay in memory until the store's write takes them
//! ([`EventLog::take_pending`]); reads see them, and the chunks of earlier ticks the flusher has
//! not yet put into the backend (passed in by the store), so a sync misses nothing.
//!
//! Chunk layout, entries back to back in seq order, integers little-endian:
//! `seq: u64 | flags: u8 | [timestamp: u64 if TIME] | [viewer: 16 bytes if PRIVATE] |
//! [message id, author: 32 bytes if MESSAGE] | [ack seq: u64 if PARTS] | [id len: u32, id if
//! ACK_ID] | [edited at: u64, edits: u32, each edit's seq: u64 if EDITED] | len: u32 | bytes`.
//!
//! A message's entry holds its current state: an edit or a delete rewrites it in its chunk
//! ([`rewrite`]), an EDITED entry with the new `data`, a DELETED one with none, so a sync
//! replays each message as it is now.
//!
//! `bytes` is the event as sent, except in a PARTS entry (a message stored since format 3):
//! there it is the message's `data` alone, and the entry also holds the sender's ack. A reader
//! renders both events again ([`protocol::message_event`], [`protocol::sent_event`]), so a
//! message's entry takes about 90 bytes, a fraction of the two events' JSON: everything else
//! in them is the stream's group id, the entry's fields, or constant.
//!
//! Entries written before format 5 have no TIME flag: their server made timestamps unique, so
//! each one's timestamp is its seq (and its ack's, the ack's seq), and their JSON has no `seq`,
//! which a reader adds ([`protocol::with_seq`]). Entries of format 2 (a message's JSON, and its
//! ack as a PRIVATE entry of its own) read as they always did.

pub(super) mod entry;
mod history;
#[cfg(test)]
pub mod old_formats;
mod reader;
pub mod rewrite;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::Bound;
use std::sync::Arc;

use uuid::Uuid;

use self::entry::{decode_entry, encode_entry, encode_message, visible_stamps};
pub use self::reader::StreamReader;
use super::backend::{Backend, Direction, Table};
use super::StoreResult;
use crate::clock::Stamp;
use crate::idmap::IdMap;

/// Who of a stream's readers may see an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Everyone who reads the stream (every member, for a group).
    All,
    /// One user only (a sender's ack in the group's stream).
    Only(Uuid),
}

/// A message as the log keeps it: its parts, with the sender's ack (event 21) folded in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageParts<'a> {
    pub stamp: Stamp,
    pub message_id: Uuid,
    pub author: Uuid,
    pub data: &'a str,
    /// The ack's own seq (the one after the message's); its timestamp is the message's.
    pub ack_seq: u64,
    /// The `id` of the send, echoed in the ack.
    pub client_id: Option<&'a str>,
}

/// `stream ++ first seq` (big-endian), so a range scan walks one stream in seq order.
pub fn chunk_key(stream: Uuid, seq: u64) -> [u8; 24] {
    let mut key = [0u8; 24];
    key[..16].copy_from_slice(stream.as_bytes());
    key[16..].copy_from_slice(&seq.to_be_bytes());
    key
}

/// The first seq a chunk key names.
fn read_seq(key: &[u8]) -> u64 {
    key.get(16..24)
        .and_then(|seq| seq.try_into().ok())
        .map_or(0, u64::from_be_bytes)
}

/// A stream's entries of one tick, not yet in the backend.
pub struct PendingChunk {
    pub first_seq: u64,
    /// The newest seq in the chunk: entries must come in seq order, and a message's folded ack
    /// must be the stream's next entry, or a sync would return them out of order.
    last_seq: u64,
    pub bytes: Vec<u8>,
}

impl PendingChunk {
    pub fn key(&self, stream: Uuid) -> [u8; 24] {
        chunk_key(stream, self.first_seq)
    }
}

/// Chunks of one stream that are in memory only (written by a tick, not yet applied to the
/// backend), oldest first: `(first seq, bytes)`.
pub type MemoryChunks<'a> = Vec<(u64, &'a [u8])>;

/// Stored chunks of one stream, oldest first.
type Chunks<'a> = Box<dyn Iterator<Item = StoreResult<Vec<u8>>> + 'a>;

/// Which entries of a stream a reader returns: seqs from `from` to `to` (inclusive), and of
/// those only the ones stamped after `after_time` when it is set (a sync by timestamp).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub from: u64,
    pub to: u64,
    pub after_time: Option<u64>,
}

impl Span {
    pub fn holds(&self, stamp: Stamp) -> bool {
        (self.from..=self.to).contains(&stamp.seq)
            && self.after_time.is_none_or(|after| stamp.timestamp > after)
    }
}

/// The stored log plus this tick's chunks, not yet written.
pub struct EventLog {
    backend: Arc<dyn Backend>,
    pending: IdMap<PendingChunk>,
    /// The newest seq of each group's stream, learnt when the store opens or the group is made
    /// and noted once per stream per tick, not per event (see [`EventLog::newest_known`]).
    /// Users' streams are not kept: a sync always reads its user's own.
    newest: IdMap<u64>,
    /// Chunks rewritten by edits and deletes that the backend does not hold yet, by key
    /// ([`rewrite`]); reads see them in place of the chunks.
    rewrites: HashMap<[u8; 24], rewrite::Rewrite>,
    /// Whether `rewrites` has one of this tick's, to be sealed.
    unsealed_rewrites: bool,
}

impl EventLog {
    pub fn new(backend: Arc<dyn Backend>) -> EventLog {
        EventLog {
            backend,
            pending: IdMap::default(),
            newest: IdMap::default(),
            rewrites: HashMap::new(),
            unsealed_rewrites: false,
        }
    }

    /// Appends an event. Seqs must increase across calls (the server clock sees to it).
    pub fn append(&mut self, stream: Uuid, stamp: Stamp, audience: Audience, event: &[u8]) {
        encode_entry(
            self.chunk(stream, stamp.seq, stamp.seq),
            stamp,
            audience,
            event,
        );
    }

    /// Appends a message and its sender's ack to the group's stream. Nothing may be appended to
    /// the stream with a seq between the two.
    pub fn append_message(&mut self, group: Uuid, message: &MessageParts) {
        debug_assert!(
            message.ack_seq > message.stamp.seq,
            "an ack after its message"
        );
        encode_message(
            self.chunk(group, message.stamp.seq, message.ack_seq),
            message,
        );
    }

    /// The tick's chunk of `stream`, for an entry spanning seqs `from` to `to`.
    fn chunk(&mut self, stream: Uuid, from: u64, to: u64) -> &mut Vec<u8> {
        let chunk = self.pending.entry(stream).or_insert_with(|| PendingChunk {
            first_seq: from,
            last_seq: 0,
            bytes: Vec::with_capacity(256),
        });
        debug_assert!(
            from > chunk.last_seq || chunk.bytes.is_empty(),
            "out of order"
        );
        chunk.last_seq = to;
        &mut chunk.bytes
    }

    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty() || self.unsealed_rewrites
    }

    /// Hands over the tick's chunks, for the store's write.
    pub fn take_pending(&mut self) -> IdMap<PendingChunk> {
        for (stream, chunk) in &self.pending {
            if let Some(newest) = self.newest.get_mut(stream) {
                *newest = chunk.last_seq;
            }
        }
        std::mem::take(&mut self.pending)
    }

    /// The newest seq stored in `stream`, this tick's entries included, or `u64::MAX` when
    /// unknown (a stream not learnt: a user's): a sync skips a stream whose newest seq is before
    /// its cursor without reading it.
    pub fn newest_known(&self, stream: Uuid) -> u64 {
        match self.pending.get(&stream) {
            Some(chunk) => chunk.last_seq,
            None => self.newest.get(&stream).copied().unwrap_or(u64::MAX),
        }
    }

    /// Reads and keeps the newest seq stored in `stream` (a group's), unless already known;
    /// from then on each tick that writes to it notes it. For when the store opens and a group
    /// is made (before its first event).
    pub fn learn_newest_seq(&mut self, stream: Uuid) -> StoreResult<()> {
        if !self.newest.contains_key(&stream) && !self.pending.contains_key(&stream) {
            let newest = self.newest_seq(stream)?;
            self.newest.insert(stream, newest);
        }
        Ok(())
    }

    /// Reads the entries of `stream` in `span` as `viewer` sees them. `memory` holds the
    /// stream's chunks not yet applied to the backend, oldest first; the flusher may apply them
    /// while the reader runs, so the stored scan stops before the first of them.
    pub fn reader<'a>(
        &'a self,
        stream: Uuid,
        span: Span,
        viewer: Uuid,
        mut memory: MemoryChunks<'a>,
    ) -> StoreResult<StreamReader<'a>> {
        let end = match memory.first() {
            Some((first_seq, _)) => Bound::Excluded(chunk_key(stream, *first_seq)),
            None => Bound::Included(chunk_key(stream, span.to)),
        };
        let chunks = self.stored_chunks(stream, span.from, end.as_ref().map(|key| &key[..]))?;
        for (first_seq, bytes) in &mut memory {
            *bytes = self.substitute(stream, *first_seq, bytes);
        }
        if let Some(chunk) = self.pending.get(&stream) {
            memory.push((chunk.first_seq, &chunk.bytes));
        }
        memory.retain(|(first_seq, _)| *first_seq <= span.to);
        Ok(StreamReader::new(stream, chunks, memory, span, viewer))
    }

    /// The stored chunks of `stream` that may hold entries from seq `from` on, up to the key
    /// `end`, oldest first: the last one that begins at or before `from` (found by one seek
    /// back), then the ones after it.
    fn stored_chunks<'a>(
        &'a self,
        stream: Uuid,
        from: u64,
        end: Bound<&[u8]>,
    ) -> StoreResult<Chunks<'a>> {
        let from_key = chunk_key(stream, from);
        let holding = self
            .backend
            .last_at_or_before(Table::Log, &from_key)?
            .filter(|(key, _)| key.starts_with(stream.as_bytes()));
        let before_end = |key: &[u8]| match end {
            Bound::Included(end) => key <= end,
            Bound::Excluded(end) => key < end,
            Bound::Unbounded => true,
        };
        // A chunk rewritten by an edit or a delete reads as rewritten.
        let chunk = |entry: StoreResult<(Vec<u8>, Vec<u8>)>| {
            entry.map(|(key, chunk)| self.substitute_stored(&key, chunk))
        };
        Ok(match holding {
            Some((key, first)) if before_end(&key) => {
                let rest =
                    self.backend
                        .range(Table::Log, Bound::Excluded(&key), end, Direction::Forward);
                let first = self.substitute_stored(&key, first);
                Box::new(std::iter::once(Ok(first)).chain(rest.map(chunk)))
            }
            Some(_) => Box::new(std::iter::empty()),
            None => {
                let from = Bound::Included(&from_key[..]);
                let chunks = self
                    .backend
                    .range(Table::Log, from, end, Direction::Forward);
                Box::new(chunks.map(chunk))
            }
        })
    }

    /// The chunks of `stream` that may hold seqs up to `to`, newest first, as reads see them
    /// (a rewritten chunk as rewritten: see [`rewrite`]): `memory` (as for
    /// [`EventLog::reader`]) and this tick's, then the stored ones before the first of those (the
    /// flusher may apply a memory chunk meanwhile: it is read once).
    fn chunks_backward<'a>(
        &'a self,
        stream: Uuid,
        to: u64,
        mut memory: MemoryChunks<'a>,
    ) -> impl Iterator<Item = StoreResult<(u64, Cow<'a, [u8]>)>> + 'a {
        for (first_seq, bytes) in &mut memory {
            *bytes = self.substitute(stream, *first_seq, bytes);
        }
        if let Some(chunk) = self.pending.get(&stream) {
            memory.push((chunk.first_seq, &chunk.bytes));
        }
        let first = chunk_key(stream, 0);
        let end = match memory.first() {
            Some((first_seq, _)) => Bound::Excluded(chunk_key(stream, *first_seq)),
            None => Bound::Included(chunk_key(stream, to)),
        };
        let stored = self
            .backend
            .range(
                Table::Log,
                Bound::Included(&first[..]),
                end.as_ref().map(|key| &key[..]),
                Direction::Backward,
            )
            .map(move |entry| {
                entry.map(|(key, chunk)| {
                    (
                        read_seq(&key),
                        Cow::Owned(self.substitute_stored(&key, chunk)),
                    )
                })
            });
        memory
            .into_iter()
            .rev()
            .map(|(first_seq, chunk)| Ok((first_seq, Cow::Borrowed(chunk))))
            .chain(stored)
            .filter(move |chunk| !matches!(chunk, Ok((first_seq, _)) if *first_seq > to))
    }

    /// The stamp of the newest entry of `stream` in `span` that `viewer` sees. `memory` is as
    /// for [`EventLog::reader`]. Reads chunks backwards, newest first, and nearly always one:
    /// the newest entry is visible to every reader but for another sender's ack.
    pub fn newest<'a>(
        &'a self,
        stream: Uuid,
        span: Span,
        viewer: Uuid,
        memory: MemoryChunks<'a>,
    ) -> StoreResult<Option<Stamp>> {
        for chunk in self.chunks_backward(stream, span.to, memory) {
            let (first_seq, chunk) = chunk?;
            let mut newest = None;
            let mut pos = 0;
            while let Some(entry) = decode_entry(&chunk, &mut pos) {
                if entry.seq > span.to {
                    break;
                }
                for stamp in visible_stamps(&entry, viewer).into_iter().flatten() {
                    if span.holds(stamp) {
                        newest = Some(stamp);
                    }
                }
            }
            // Chunks before one that starts at or before `from` hold nothing in the span.
            if newest.is_some() || first_seq <= span.from {
                return Ok(newest);
            }
        }
        Ok(None)
    }

    /// The newest seq stored in `stream`, a folded ack's included: 0 for an empty stream, and
    /// `u64::MAX` when its last chunk does not decode whole (a sync then never skips the stream).
    /// Reads the stored log only: for when the store opens, with nothing in memory.
    pub fn newest_seq(&self, stream: Uuid) -> StoreResult<u64> {
        let Some((_, chunk)) = self
            .backend
            .last_at_or_before(Table::Log, &chunk_key(stream, u64::MAX))?
            .filter(|(key, _)| key.starts_with(stream.as_bytes()))
        else {
            return Ok(0);
        };
        let mut newest = 0;
        let mut pos = 0;
        while let Some(entry) = decode_entry(&chunk, &mut pos) {
            newest = entry.ack.map_or(entry.seq, |ack| ack.seq).max(entry.seq);
        }
        Ok(if pos < chunk.len() { u64::MAX } else { newest })
    }

    /// The author of the message `message_id` stored in `group` at `seq`, if it is there.
    /// `unapplied` holds the group's chunks not yet applied to the backend, newest first
    /// (borrowed: a receipt runs this for every message read, and copies nothing in memory).
    pub fn message_author<'a>(
        &'a self,
        group: Uuid,
        seq: u64,
        message_id: Uuid,
        unapplied: impl Iterator<Item = &'a PendingChunk>,
    ) -> StoreResult<Option<Uuid>> {
        let in_memory = self
            .pending
            .get(&group)
            .into_iter()
            .chain(unapplied)
            .find(|chunk| chunk.first_seq <= seq);
        let stored;
        let chunk: &[u8] = match in_memory {
            Some(chunk) => &chunk.bytes,
            None => {
                let found = self
                    .backend
                    .last_at_or_before(Table::Log, &chunk_key(group, seq))?
                    .filter(|(key, _)| key.starts_with(group.as_bytes()));
                let Some((_, value)) = found else {
                    return Ok(None);
                };
                stored = value;
                &stored
            }
        };
        let mut pos = 0;
        while let Some(entry) = decode_entry(chunk, &mut pos) {
            if entry.seq == seq {
                return Ok(entry
                    .message
                    .filter(|meta| meta.message_id == message_id)
                    .map(|meta| meta.author));
            }
            if entry.seq > seq {
                break;
            }
        }
        Ok(None)
    }

    /// Every send with a client id stored in `group` from seq `from` on and stamped at
    /// `since` or later, as `(author, client id, message id, ack timestamp)`, for rebuilding
    /// the index of recent sends when the store opens (nothing is pending then).
    pub fn client_sends(
        &self,
        group: Uuid,
        from: u64,
        since: u64,
        mut each: impl FnMut(Uuid, &str, Uuid, u64),
    ) -> StoreResult<()> {
        let last = chunk_key(group, u64::MAX);
        for chunk in self.stored_chunks(group, from, Bound::Included(&last))? {
            let chunk = chunk?;
            let mut pos = 0;
            while let Some(entry) = decode_entry(&chunk, &mut pos) {
                if let (Some(meta), Some(ack)) = (entry.message, entry.ack) {
                    let acked = entry.ack_stamp(&ack);
                    if let (Some(client_id), true) = (ack.client_id, acked.timestamp >= since) {
                        each(meta.author, client_id, meta.message_id, acked.timestamp);
                    }
                }
            }
        }
        Ok(())
    }
}
