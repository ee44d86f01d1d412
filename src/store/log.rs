//! The event log. Every event is appended to a stream (a group's or a user's) and stored as one
//! sled value per stream per tick, a "chunk", so a tick costs one insert per active stream rather
//! than one per event. The tick's chunks stay in memory until the store's write takes them
//! ([`EventLog::take_pending`]); reads see them, and the chunks of earlier ticks the flusher has
//! not yet put into sled (passed in by the store), so a sync misses nothing.
//!
//! Chunk layout, entries back to back in seq order, integers little-endian:
//! `seq: u64 | flags: u8 | [timestamp: u64 if TIME] | [viewer: 16 bytes if PRIVATE] |
//! [message id, author: 32 bytes if MESSAGE] | [ack seq: u64 if PARTS] | [id len: u32, id if
//! ACK_ID] | len: u32 | bytes`.
//!
//! `bytes` is the event as sent, except in a PARTS entry (a message stored since format 3):
//! there it is the message's `data` alone, and the entry also holds the sender's ack. A reader
//! renders both events again ([`protocol::message_event`], [`protocol::sent_event`]), so a
//! message's entry takes about 90 bytes instead of 400 for the two events' JSON: everything else
//! in them is the stream's group id, the entry's fields, or constant.
//!
//! Entries written before format 5 have no TIME flag: their server made timestamps unique, so
//! each one's timestamp is its seq (and its ack's, the ack's seq), and their JSON has no `seq`,
//! which a reader adds ([`protocol::with_seq`]). Entries of format 2 (a message's JSON, and its
//! ack as a PRIVATE entry of its own) read as they always did.

use std::ops::Bound;

use sled::{IVec, Tree};
use uuid::Uuid;

use super::{StoreResult, StoredEvent};
use crate::clock::Stamp;
use crate::idmap::IdMap;
use crate::protocol;

/// Who of a stream's readers may see an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Everyone who reads the stream (every member, for a group).
    All,
    /// One user only (a sender's ack in the group's stream).
    Only(Uuid),
}

/// Set on message entries so that a receipt can find the message's author without an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct MessageMeta {
    pub message_id: Uuid,
    pub author: Uuid,
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

const PRIVATE: u8 = 1;
const MESSAGE: u8 = 2;
const PARTS: u8 = 4;
const ACK_ID: u8 = 8;
/// The entry has a timestamp of its own (format 5); without it, the timestamp is the seq.
const TIME: u8 = 16;

/// The sender's ack folded into a PARTS entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FoldedAck<'a> {
    seq: u64,
    client_id: Option<&'a str>,
}

/// One decoded entry, borrowing the chunk.
struct Entry<'a> {
    seq: u64,
    /// Set on entries of format 5; older ones are stamped with their seq.
    timestamp: Option<u64>,
    viewer: Option<Uuid>,
    message: Option<MessageMeta>,
    /// Set on a PARTS entry, whose `bytes` are the message's `data`.
    ack: Option<FoldedAck<'a>>,
    bytes: &'a [u8],
}

impl Entry<'_> {
    fn stamp(&self) -> Stamp {
        Stamp {
            seq: self.seq,
            timestamp: self.timestamp.unwrap_or(self.seq),
        }
    }

    /// The folded ack's stamp: its seq, at the message's timestamp (before format 5, the seq).
    fn ack_stamp(&self, ack: &FoldedAck) -> Stamp {
        Stamp {
            seq: ack.seq,
            timestamp: self.timestamp.unwrap_or(ack.seq),
        }
    }

    /// The stored event's bytes as sent: before format 5 they lack their `seq`.
    fn event_bytes(&self) -> Vec<u8> {
        match self.timestamp {
            Some(_) => self.bytes.to_vec(),
            None => protocol::with_seq(self.bytes, self.seq),
        }
    }
}

/// Appends one entry holding an event as sent.
fn encode_entry(chunk: &mut Vec<u8>, stamp: Stamp, audience: Audience, event: &[u8]) {
    chunk.extend_from_slice(&stamp.seq.to_le_bytes());
    match audience {
        Audience::All => {
            chunk.push(TIME);
            chunk.extend_from_slice(&stamp.timestamp.to_le_bytes());
        }
        Audience::Only(viewer) => {
            chunk.push(TIME | PRIVATE);
            chunk.extend_from_slice(&stamp.timestamp.to_le_bytes());
            chunk.extend_from_slice(viewer.as_bytes());
        }
    }
    put_bytes(chunk, event);
}

/// Appends one PARTS entry: a message and its sender's ack.
fn encode_message(chunk: &mut Vec<u8>, message: &MessageParts) {
    let flags = TIME
        | MESSAGE
        | PARTS
        | if message.client_id.is_some() {
            ACK_ID
        } else {
            0
        };
    chunk.extend_from_slice(&message.stamp.seq.to_le_bytes());
    chunk.push(flags);
    chunk.extend_from_slice(&message.stamp.timestamp.to_le_bytes());
    chunk.extend_from_slice(message.message_id.as_bytes());
    chunk.extend_from_slice(message.author.as_bytes());
    chunk.extend_from_slice(&message.ack_seq.to_le_bytes());
    if let Some(id) = message.client_id {
        put_bytes(chunk, id.as_bytes());
    }
    put_bytes(chunk, message.data.as_bytes());
}

fn put_bytes(chunk: &mut Vec<u8>, bytes: &[u8]) {
    chunk.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    chunk.extend_from_slice(bytes);
}

/// Decodes the entry at `*pos` and advances past it; `None` at the end or on a damaged chunk.
fn decode_entry<'a>(chunk: &'a [u8], pos: &mut usize) -> Option<Entry<'a>> {
    let mut take = |n: usize| -> Option<&'a [u8]> {
        let bytes = chunk.get(*pos..pos.checked_add(n)?)?;
        *pos += n;
        Some(bytes)
    };
    let seq = u64::from_le_bytes(take(8)?.try_into().ok()?);
    let flags = take(1)?[0];
    // An unknown flag, or parts without the message's ids, is no entry this parley wrote.
    if flags & !(PRIVATE | MESSAGE | PARTS | ACK_ID | TIME) != 0
        || (flags & PARTS != 0 && flags & MESSAGE == 0)
        || (flags & ACK_ID != 0 && flags & PARTS == 0)
    {
        return None;
    }
    let timestamp = if flags & TIME != 0 {
        Some(u64::from_le_bytes(take(8)?.try_into().ok()?))
    } else {
        None
    };
    let viewer = if flags & PRIVATE != 0 {
        Some(Uuid::from_slice(take(16)?).ok()?)
    } else {
        None
    };
    let message = if flags & MESSAGE != 0 {
        let message_id = Uuid::from_slice(take(16)?).ok()?;
        let author = Uuid::from_slice(take(16)?).ok()?;
        Some(MessageMeta { message_id, author })
    } else {
        None
    };
    let ack = if flags & PARTS != 0 {
        let seq = u64::from_le_bytes(take(8)?.try_into().ok()?);
        let client_id = if flags & ACK_ID != 0 {
            let len = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
            Some(std::str::from_utf8(take(len)?).ok()?)
        } else {
            None
        };
        Some(FoldedAck { seq, client_id })
    } else {
        None
    };
    let len = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
    let bytes = take(len)?;
    Some(Entry {
        seq,
        timestamp,
        viewer,
        message,
        ack,
        bytes,
    })
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

/// A stream's entries of one tick, not yet in sled.
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

/// Chunks of one stream that are in memory only (written by a tick, not yet applied to sled),
/// oldest first: `(first seq, bytes)`.
pub type MemoryChunks = Vec<(u64, IVec)>;

/// Which entries of a stream a reader returns: seqs from `from` to `to` (inclusive), and of
/// those only the ones stamped after `after_time` when it is set (a sync by timestamp).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub from: u64,
    pub to: u64,
    pub after_time: Option<u64>,
}

impl Span {
    fn holds(&self, stamp: Stamp) -> bool {
        (self.from..=self.to).contains(&stamp.seq)
            && self.after_time.is_none_or(|after| stamp.timestamp > after)
    }
}

/// The log tree plus this tick's chunks, not yet written.
pub struct EventLog {
    tree: Tree,
    pending: IdMap<PendingChunk>,
}

impl EventLog {
    pub fn new(tree: Tree) -> EventLog {
        EventLog {
            tree,
            pending: IdMap::default(),
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
        !self.pending.is_empty()
    }

    /// Hands over the tick's chunks, for the store's write.
    pub fn take_pending(&mut self) -> IdMap<PendingChunk> {
        std::mem::take(&mut self.pending)
    }

    /// Reads the entries of `stream` in `span` as `viewer` sees them. `memory` holds the
    /// stream's chunks not yet applied to sled, oldest first; the flusher may apply them while
    /// the reader runs, so the sled scan stops before the first of them.
    pub fn reader(
        &self,
        stream: Uuid,
        span: Span,
        viewer: Uuid,
        mut memory: MemoryChunks,
    ) -> StoreResult<StreamReader> {
        let end = match memory.first() {
            Some((first_seq, _)) => Bound::Excluded(IVec::from(&chunk_key(stream, *first_seq)[..])),
            None => Bound::Included(IVec::from(&chunk_key(stream, span.to)[..])),
        };
        let start = self.chunk_holding(stream, span.from)?;
        let empty = match &end {
            Bound::Excluded(end) => start >= *end,
            _ => false,
        };
        let chunks = if empty {
            None
        } else {
            Some(self.tree.range((Bound::Included(start), end)))
        };
        if let Some(chunk) = self.pending.get(&stream) {
            memory.push((chunk.first_seq, IVec::from(chunk.bytes.as_slice())));
        }
        memory.retain(|(first_seq, _)| *first_seq <= span.to);
        Ok(StreamReader {
            stream,
            chunks,
            memory: memory.into_iter(),
            current: None,
            pos: 0,
            folded_ack: None,
            done: false,
            span,
            viewer,
        })
    }

    /// Where a scan of `stream` from `from` starts: the key of the last chunk that begins at or
    /// before it (it may hold entries from `from` on), else `from`'s own.
    fn chunk_holding(&self, stream: Uuid, from: u64) -> StoreResult<IVec> {
        let before = self
            .tree
            .range(chunk_key(stream, 0)..=chunk_key(stream, from))
            .next_back();
        Ok(match before {
            Some(entry) => entry?.0,
            None => IVec::from(&chunk_key(stream, from)[..]),
        })
    }

    /// The stamp of the newest entry of `stream` in `span` that `viewer` sees. `memory` is as
    /// for [`EventLog::reader`]. Reads chunks backwards, newest first, and nearly always one:
    /// the newest entry is visible to every reader but for another sender's ack.
    pub fn newest(
        &self,
        stream: Uuid,
        span: Span,
        viewer: Uuid,
        mut memory: MemoryChunks,
    ) -> StoreResult<Option<Stamp>> {
        if let Some(chunk) = self.pending.get(&stream) {
            memory.push((chunk.first_seq, IVec::from(chunk.bytes.as_slice())));
        }
        // A chunk may be both in memory and (just applied) in sled: read twice, found once.
        let stored = self
            .tree
            .range(chunk_key(stream, 0)..=chunk_key(stream, span.to))
            .rev()
            .map(|entry| entry.map(|(key, chunk)| (read_seq(&key), chunk)));
        let newest_first = memory.into_iter().rev().map(Ok).chain(stored);
        for chunk in newest_first {
            let (first_seq, chunk) = chunk?;
            if first_seq > span.to {
                continue;
            }
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

    /// The author of the message `message_id` stored in `group` at `seq`, if it is there.
    /// `unapplied` holds the group's chunks not yet applied to sled, newest first (borrowed: a
    /// receipt runs this for every message read, and copies nothing).
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
                    .tree
                    .range(chunk_key(group, 0)..=chunk_key(group, seq))
                    .next_back()
                    .transpose()?;
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
        let start = self.chunk_holding(group, from)?;
        for chunk in self
            .tree
            .range(start..=IVec::from(&chunk_key(group, u64::MAX)[..]))
        {
            let (_, chunk) = chunk?;
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

/// The stamps of what `viewer` sees of an entry: the entry's, and a message's folded ack when
/// the viewer sent it.
fn visible_stamps(entry: &Entry, viewer: Uuid) -> [Option<Stamp>; 2] {
    match (entry.message, entry.ack) {
        (Some(meta), Some(ack)) => [
            Some(entry.stamp()),
            (meta.author == viewer).then(|| entry.ack_stamp(&ack)),
        ],
        _ => [
            entry
                .viewer
                .is_none_or(|only| only == viewer)
                .then(|| entry.stamp()),
            None,
        ],
    }
}

/// Entries of one stream within a [`Span`], as one viewer sees them, oldest first.
pub struct StreamReader {
    stream: Uuid,
    /// `None` when every chunk in range is still in memory.
    chunks: Option<sled::Iter>,
    /// The chunks not yet in sled, read after the stored ones.
    memory: std::vec::IntoIter<(u64, IVec)>,
    current: Option<IVec>,
    pos: usize,
    /// The ack of the message just returned, when it is the viewer's and in range: next.
    folded_ack: Option<StoredEvent>,
    /// An entry past the span was seen: nothing later can be in it.
    done: bool,
    span: Span,
    viewer: Uuid,
}

impl StreamReader {
    /// The next visible entry.
    pub fn next_entry(&mut self) -> StoreResult<Option<StoredEvent>> {
        while !self.done {
            if let Some(ack) = self.folded_ack.take() {
                return Ok(Some(ack));
            }
            if let Some(chunk) = &self.current {
                match decode_entry(chunk, &mut self.pos) {
                    Some(entry) if entry.seq > self.span.to => {
                        self.done = true;
                        break;
                    }
                    Some(
                        ref entry @ Entry {
                            message: Some(meta),
                            ack: Some(ack),
                            bytes,
                            ..
                        },
                    ) => {
                        // Written from a `&str`; damaged, it is skipped, not the rest of the chunk.
                        let Ok(data) = std::str::from_utf8(bytes) else {
                            continue;
                        };
                        let acked = entry.ack_stamp(&ack);
                        if meta.author == self.viewer && self.span.holds(acked) {
                            let event = protocol::sent_event(ack.client_id, acked, meta.message_id);
                            self.folded_ack = Some(StoredEvent::new(acked, event.into_bytes()));
                        }
                        let stamp = entry.stamp();
                        if self.span.holds(stamp) {
                            let event = protocol::message_event(
                                stamp,
                                meta.message_id,
                                data,
                                self.stream,
                                meta.author,
                            );
                            return Ok(Some(StoredEvent::new(stamp, event.into_bytes())));
                        }
                        continue;
                    }
                    Some(entry) => {
                        let stamp = entry.stamp();
                        let visible = self.span.holds(stamp)
                            && entry.viewer.is_none_or(|viewer| viewer == self.viewer);
                        if visible {
                            return Ok(Some(StoredEvent::new(stamp, entry.event_bytes())));
                        }
                        continue;
                    }
                    None => self.current = None,
                }
            }
            self.pos = 0;
            self.current = match self.chunks.as_mut().and_then(|chunks| chunks.next()) {
                Some(entry) => Some(entry?.1),
                None => match self.memory.next() {
                    Some((_, chunk)) => Some(chunk),
                    None => {
                        self.done = true;
                        None
                    }
                },
            };
        }
        Ok(None)
    }
}

/// The formats before 5, whose chunks upgraded directories hold and which must keep reading:
/// format 2 stored a message as its event's JSON and the ack as a private entry of its own;
/// formats 3 and 4 a message as parts; none had a timestamp apart from the seq, nor a `seq` in
/// the JSON it kept.
#[cfg(test)]
pub mod old_formats {
    use super::*;

    pub const GROUP: Uuid = Uuid::from_u128(2);
    pub const AUTHOR: Uuid = Uuid::from_u128(1);
    /// The id a message stored at seq 20 in the group of ordinal 1 gets (a test checks it).
    pub const MESSAGE_ID: Uuid = Uuid::from_u128(0x0000_0000_0014_8000_8000_0000_0100_0000);
    pub const MESSAGE_JSON: &str = r#"{"type":20,"timestamp":20,"body":{"message_id":"00000000-0014-8000-8000-000001000000","data":"hi \"you\"","group_id":"00000000-0000-0000-0000-000000000002","user_id":"00000000-0000-0000-0000-000000000001"}}"#;
    pub const ACK_JSON: &str = r#"{"type":21,"id":"c1","timestamp":21,"body":{"message_id":"00000000-0014-8000-8000-000001000000"}}"#;

    /// The same message as parts: stamped with its seq, as before format 5.
    pub const STORED: MessageParts<'static> = MessageParts {
        stamp: Stamp {
            seq: 20,
            timestamp: 20,
        },
        message_id: MESSAGE_ID,
        author: AUTHOR,
        data: "hi \"you\"",
        ack_seq: 21,
        client_id: Some("c1"),
    };

    /// What a sync by the author returns for it today: the events with their seqs.
    pub fn events() -> Vec<StoredEvent> {
        let stamp = |seq| Stamp {
            seq,
            timestamp: seq,
        };
        vec![
            StoredEvent::new(stamp(20), protocol::with_seq(MESSAGE_JSON.as_bytes(), 20)),
            StoredEvent::new(stamp(21), protocol::with_seq(ACK_JSON.as_bytes(), 21)),
        ]
    }

    /// Format 2's encoder, kept to make its chunks: the message's JSON in an entry with its
    /// ids, then the ack's JSON in a private entry of its own. Written out here, not through
    /// today's encoders, so that the layout stays pinned whatever they become.
    fn encode_2(chunk: &mut Vec<u8>, message: &MessageParts, json: &str, ack: &str) {
        chunk.extend_from_slice(&message.stamp.seq.to_le_bytes());
        chunk.push(MESSAGE);
        chunk.extend_from_slice(message.message_id.as_bytes());
        chunk.extend_from_slice(message.author.as_bytes());
        chunk.extend_from_slice(&(json.len() as u32).to_le_bytes());
        chunk.extend_from_slice(json.as_bytes());
        chunk.extend_from_slice(&message.ack_seq.to_le_bytes());
        chunk.push(PRIVATE);
        chunk.extend_from_slice(message.author.as_bytes());
        chunk.extend_from_slice(&(ack.len() as u32).to_le_bytes());
        chunk.extend_from_slice(ack.as_bytes());
    }

    /// Format 4's (and 3's) encoder of a message as parts, written out likewise.
    fn encode_4(chunk: &mut Vec<u8>, message: &MessageParts) {
        chunk.extend_from_slice(&message.stamp.seq.to_le_bytes());
        chunk.push(
            MESSAGE
                | PARTS
                | if message.client_id.is_some() {
                    ACK_ID
                } else {
                    0
                },
        );
        chunk.extend_from_slice(message.message_id.as_bytes());
        chunk.extend_from_slice(message.author.as_bytes());
        chunk.extend_from_slice(&message.ack_seq.to_le_bytes());
        if let Some(id) = message.client_id {
            put_bytes(chunk, id.as_bytes());
        }
        put_bytes(chunk, message.data.as_bytes());
    }

    /// The JSON the first version stored for an event: no `seq`, the timestamp was the seq.
    fn unsequenced(event: &str) -> String {
        let seq_field = event.find(r#""seq":"#).expect("an event with a seq");
        let end = seq_field + event[seq_field..].find(',').expect("a field after") + 1;
        format!("{}{}", &event[..seq_field], &event[end..])
    }

    impl EventLog {
        /// Appends a message and its ack as format 2 stored them (with today's JSON less its
        /// seqs); `message` must be stamped with its seq.
        pub fn append_message_as_format_2(&mut self, group: Uuid, message: &MessageParts) {
            let (id, author, stamp) = (message.message_id, message.author, message.stamp);
            let json = protocol::message_event(stamp, id, message.data, group, author);
            let ack_stamp = Stamp {
                seq: message.ack_seq,
                timestamp: message.ack_seq,
            };
            let ack = protocol::sent_event(message.client_id, ack_stamp, id);
            let (json, ack) = (unsequenced(&json), unsequenced(&ack));
            encode_2(
                self.chunk(group, stamp.seq, message.ack_seq),
                message,
                &json,
                &ack,
            );
        }

        /// Appends a message as formats 3 and 4 stored it; `message` must be stamped with its
        /// seq.
        pub fn append_message_as_format_4(&mut self, group: Uuid, message: &MessageParts) {
            encode_4(
                self.chunk(group, message.stamp.seq, message.ack_seq),
                message,
            );
        }

        /// Appends an event as formats 2 to 4 stored it: its JSON (less the seq), stamped with
        /// its seq.
        pub fn append_as_format_4(&mut self, stream: Uuid, seq: u64, event: &str) {
            let chunk = self.chunk(stream, seq, seq);
            chunk.extend_from_slice(&seq.to_le_bytes());
            chunk.push(0);
            put_bytes(chunk, unsequenced(event).as_bytes());
        }

        /// Appends the message and its ack to [`GROUP`]'s stream as format 2 stored them.
        pub fn append_format_2(&mut self) {
            encode_2(self.chunk(GROUP, 20, 21), &STORED, MESSAGE_JSON, ACK_JSON);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVERYTHING: Span = Span {
        from: 0,
        to: u64::MAX,
        after_time: None,
    };

    fn stamp(seq: u64, timestamp: u64) -> Stamp {
        Stamp { seq, timestamp }
    }

    #[test]
    fn entries_round_trip() {
        let viewer = Uuid::from_u128(1);
        let parts = MessageParts {
            stamp: stamp(20, 1_000),
            ..old_formats::STORED
        };
        let message = MessageParts {
            client_id: None,
            ..parts
        };
        let mut chunk = Vec::new();
        encode_entry(&mut chunk, stamp(7, 999), Audience::Only(viewer), b"ack");
        encode_message(&mut chunk, &parts);
        encode_message(&mut chunk, &message);
        let mut pos = 0;
        let first = decode_entry(&chunk, &mut pos).unwrap();
        assert_eq!(
            (
                first.stamp(),
                first.viewer,
                first.message,
                first.ack,
                first.bytes
            ),
            (stamp(7, 999), Some(viewer), None, None, &b"ack"[..])
        );
        let meta = Some(MessageMeta {
            message_id: old_formats::MESSAGE_ID,
            author: old_formats::AUTHOR,
        });
        for client_id in [Some("c1"), None] {
            let entry = decode_entry(&chunk, &mut pos).unwrap();
            let ack = FoldedAck { seq: 21, client_id };
            assert_eq!(entry.ack_stamp(&ack), stamp(21, 1_000));
            assert_eq!(
                (
                    entry.stamp(),
                    entry.viewer,
                    entry.message,
                    entry.ack,
                    entry.bytes
                ),
                (stamp(20, 1_000), None, meta, Some(ack), &b"hi \"you\""[..])
            );
        }
        assert!(decode_entry(&chunk, &mut pos).is_none());
        let mut pos = 0;
        let truncated = &chunk[..chunk.len() - 1];
        assert!(decode_entry(truncated, &mut pos).is_some());
        assert!(decode_entry(truncated, &mut pos).is_some());
        assert!(decode_entry(truncated, &mut pos).is_none());
    }

    fn read(log: &EventLog, span: Span, viewer: Uuid) -> Vec<StoredEvent> {
        let mut reader = log
            .reader(old_formats::GROUP, span, viewer, Vec::new())
            .unwrap();
        let mut events = Vec::new();
        while let Some(event) = reader.next_entry().unwrap() {
            events.push(event);
        }
        events
    }

    /// A message stored by format 2 (JSON) and by format 4 (parts) reads back byte for byte as
    /// format 2 stored its two events, with the seq each was upgraded to, to every viewer and
    /// over every span around it; and the newest of what each viewer sees is the last of it.
    #[test]
    fn old_messages_read_back_byte_for_byte_with_their_seqs() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let mut parts = EventLog::new(db.open_tree("parts").unwrap());
        parts.append_message_as_format_4(old_formats::GROUP, &old_formats::STORED);
        let mut old = EventLog::new(db.open_tree("format 2").unwrap());
        old.append_format_2();
        let (author, other) = (old_formats::AUTHOR, Uuid::from_u128(9));
        let [message, ack] = [0, 1].map(|i| old_formats::events()[i].clone());
        let span = |from, to, after_time| Span {
            from,
            to,
            after_time,
        };
        let cases = [
            (EVERYTHING, author, vec![message.clone(), ack.clone()]),
            (EVERYTHING, other, vec![message.clone()]),
            (span(21, u64::MAX, None), author, vec![ack.clone()]),
            (span(0, 20, None), author, vec![message.clone()]),
            (span(22, u64::MAX, None), author, vec![]),
            (span(0, u64::MAX, Some(20)), author, vec![ack]),
            (span(0, u64::MAX, Some(19)), other, vec![message]),
        ];
        for (span, viewer, expected) in cases {
            for log in [&parts, &old] {
                assert_eq!(read(log, span, viewer), expected, "{span:?}");
                let newest = log
                    .newest(old_formats::GROUP, span, viewer, Vec::new())
                    .unwrap();
                if span.after_time.is_none() {
                    assert_eq!(newest, expected.last().map(|event| event.stamp), "{span:?}");
                }
            }
        }
    }

    /// A message of format 5 has its own timestamp, shared by its ack, and its events read
    /// back as they were sent live.
    #[test]
    fn a_message_reads_back_as_sent() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let mut log = EventLog::new(db.open_tree("log").unwrap());
        let parts = MessageParts {
            stamp: stamp(20, 1_000),
            ..old_formats::STORED
        };
        log.append_message(old_formats::GROUP, &parts);
        let (id, group, author) = (parts.message_id, old_formats::GROUP, parts.author);
        let message = protocol::message_event(parts.stamp, id, parts.data, group, author);
        let ack = protocol::sent_event(Some("c1"), stamp(21, 1_000), id);
        assert_eq!(
            read(&log, EVERYTHING, author),
            vec![
                StoredEvent::new(stamp(20, 1_000), message.into_bytes()),
                StoredEvent::new(stamp(21, 1_000), ack.into_bytes())
            ]
        );
        let after = Span {
            after_time: Some(1_000),
            ..EVERYTHING
        };
        assert_eq!(read(&log, after, author), vec![]);
    }

    /// Stored bytes are checked by sled's CRC, so damage here means a bug; it must still cost
    /// no more than the damaged entry, and never send a message's bare `data` as an event.
    #[test]
    fn a_damaged_entry_is_skipped_and_never_sent_raw() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let mut log = EventLog::new(db.open_tree("log").unwrap());
        let group = old_formats::GROUP;
        let data = MessageParts {
            data: "XY",
            ..old_formats::STORED
        };
        log.append_message(group, &data);
        log.append(group, stamp(30, 30), Audience::All, b"later");
        let chunk = &mut log.pending.get_mut(&group).unwrap().bytes;
        let at = chunk.windows(2).position(|w| w == b"XY").unwrap();
        chunk[at] = 0xff;
        assert_eq!(
            read(&log, EVERYTHING, old_formats::AUTHOR),
            vec![StoredEvent::new(stamp(30, 30), b"later".to_vec())],
            "data that is not UTF-8 drops its entry only"
        );

        for flags in [PARTS, PARTS | ACK_ID, ACK_ID | MESSAGE, 0x40] {
            let mut log = EventLog::new(db.open_tree([flags]).unwrap());
            let chunk = log.chunk(group, 20, 21);
            chunk.extend_from_slice(&20u64.to_le_bytes());
            chunk.push(flags);
            chunk.extend_from_slice(&21u64.to_le_bytes());
            put_bytes(chunk, b"raw data, not an event");
            assert_eq!(
                read(&log, EVERYTHING, old_formats::AUTHOR),
                vec![],
                "flags {flags:#x}"
            );
        }
    }

    #[test]
    fn the_old_message_id_says_where_it_is() {
        assert_eq!(
            old_formats::MESSAGE_ID,
            crate::store::message_id::new(20, 1, 0)
        );
    }

    #[test]
    fn chunk_keys_sort_by_stream_then_seq() {
        let a = Uuid::from_u128(1);
        assert!(chunk_key(a, 255) < chunk_key(a, 256));
        assert!(chunk_key(a, u64::MAX) < chunk_key(Uuid::from_u128(2), 0));
        assert_eq!(read_seq(&chunk_key(a, 1 << 40)), 1 << 40);
    }
}
