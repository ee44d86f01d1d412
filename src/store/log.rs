//! The event log. Every event is appended to a stream (a group's or a user's) and stored as one
//! sled value per stream per tick, a "chunk", so a tick costs one insert per active stream rather
//! than one per event. The tick's chunks stay in memory until the store's write takes them
//! ([`EventLog::take_pending`]); reads see them, and the chunks of earlier ticks the flusher has
//! not yet put into sled (passed in by the store), so a sync misses nothing.
//!
//! Chunk layout, entries back to back, integers little-endian:
//! `ts: u64 | flags: u8 | [viewer: 16 bytes if PRIVATE] | [message id, author: 32 bytes if
//! MESSAGE] | [ack ts: u64 if PARTS] | [id len: u32, id if ACK_ID] | len: u32 | bytes`.
//!
//! `bytes` is the event as sent, except in a PARTS entry (a message stored since format 3):
//! there it is the message's `data` alone, and the entry also holds the sender's ack. A reader
//! renders both events again ([`protocol::message_event`], [`protocol::sent_event`]), so a
//! message's entry takes about 80 bytes instead of 380 for the two events' JSON: everything else
//! in them is the stream's group id, the entry's fields, or constant. Those two functions now
//! shape stored history as well as live events; a test pins their bytes to what format 2
//! stored. Entries of format 2 (the event's JSON, and the ack as a PRIVATE entry of its own)
//! read as they always did.

use std::ops::Bound;

use sled::{IVec, Tree};
use uuid::Uuid;

use super::{StoreResult, StoredEvent};
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
    pub ts: u64,
    pub message_id: Uuid,
    pub author: Uuid,
    pub data: &'a str,
    /// The ack's own timestamp (the one after the message's).
    pub ack_ts: u64,
    /// The `id` of the send, echoed in the ack.
    pub client_id: Option<&'a str>,
}

const PRIVATE: u8 = 1;
const MESSAGE: u8 = 2;
const PARTS: u8 = 4;
const ACK_ID: u8 = 8;

/// The sender's ack folded into a PARTS entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FoldedAck<'a> {
    ts: u64,
    client_id: Option<&'a str>,
}

/// One decoded entry, borrowing the chunk.
struct Entry<'a> {
    ts: u64,
    viewer: Option<Uuid>,
    message: Option<MessageMeta>,
    /// Set on a PARTS entry, whose `bytes` are the message's `data`.
    ack: Option<FoldedAck<'a>>,
    bytes: &'a [u8],
}

/// Appends one entry holding an event as sent.
fn encode_entry(chunk: &mut Vec<u8>, ts: u64, audience: Audience, event: &[u8]) {
    chunk.extend_from_slice(&ts.to_le_bytes());
    match audience {
        Audience::All => chunk.push(0),
        Audience::Only(viewer) => {
            chunk.push(PRIVATE);
            chunk.extend_from_slice(viewer.as_bytes());
        }
    }
    put_bytes(chunk, event);
}

/// Appends one PARTS entry: a message and its sender's ack.
fn encode_message(chunk: &mut Vec<u8>, message: &MessageParts) {
    let flags = MESSAGE
        | PARTS
        | if message.client_id.is_some() {
            ACK_ID
        } else {
            0
        };
    chunk.extend_from_slice(&message.ts.to_le_bytes());
    chunk.push(flags);
    chunk.extend_from_slice(message.message_id.as_bytes());
    chunk.extend_from_slice(message.author.as_bytes());
    chunk.extend_from_slice(&message.ack_ts.to_le_bytes());
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
    let ts = u64::from_le_bytes(take(8)?.try_into().ok()?);
    let flags = take(1)?[0];
    // An unknown flag, or parts without the message's ids, is no entry this parley wrote.
    if flags & !(PRIVATE | MESSAGE | PARTS | ACK_ID) != 0
        || (flags & PARTS != 0 && flags & MESSAGE == 0)
        || (flags & ACK_ID != 0 && flags & PARTS == 0)
    {
        return None;
    }
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
        let ts = u64::from_le_bytes(take(8)?.try_into().ok()?);
        let client_id = if flags & ACK_ID != 0 {
            let len = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
            Some(std::str::from_utf8(take(len)?).ok()?)
        } else {
            None
        };
        Some(FoldedAck { ts, client_id })
    } else {
        None
    };
    let len = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
    let bytes = take(len)?;
    Some(Entry {
        ts,
        viewer,
        message,
        ack,
        bytes,
    })
}

/// `stream ++ first timestamp` (big-endian), so a range scan walks one stream in time order.
pub fn chunk_key(stream: Uuid, ts: u64) -> [u8; 24] {
    let mut key = [0u8; 24];
    key[..16].copy_from_slice(stream.as_bytes());
    key[16..].copy_from_slice(&ts.to_be_bytes());
    key
}

/// A stream's entries of one tick, not yet in sled.
pub struct PendingChunk {
    pub first_ts: u64,
    /// The newest timestamp in the chunk: entries must come in timestamp order, and a message's
    /// folded ack must be the stream's next entry, or a sync would return them out of order.
    last_ts: u64,
    pub bytes: Vec<u8>,
}

impl PendingChunk {
    pub fn key(&self, stream: Uuid) -> [u8; 24] {
        chunk_key(stream, self.first_ts)
    }
}

/// Chunks of one stream that are in memory only (written by a tick, not yet applied to sled),
/// oldest first: `(first timestamp, bytes)`.
pub type MemoryChunks = Vec<(u64, IVec)>;

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

    /// Appends an event. Timestamps must increase across calls (the server clock sees to it).
    pub fn append(&mut self, stream: Uuid, ts: u64, audience: Audience, event: &[u8]) {
        encode_entry(self.chunk(stream, ts, ts), ts, audience, event);
    }

    /// Appends a message and its sender's ack to the group's stream. Nothing may be appended to
    /// the stream with a timestamp between the two.
    pub fn append_message(&mut self, group: Uuid, message: &MessageParts) {
        debug_assert!(message.ack_ts > message.ts, "an ack after its message");
        encode_message(self.chunk(group, message.ts, message.ack_ts), message);
    }

    /// The tick's chunk of `stream`, for an entry spanning timestamps `from` to `to`.
    fn chunk(&mut self, stream: Uuid, from: u64, to: u64) -> &mut Vec<u8> {
        let chunk = self.pending.entry(stream).or_insert_with(|| PendingChunk {
            first_ts: from,
            last_ts: 0,
            bytes: Vec::with_capacity(256),
        });
        debug_assert!(
            from > chunk.last_ts || chunk.bytes.is_empty(),
            "out of order"
        );
        chunk.last_ts = to;
        &mut chunk.bytes
    }

    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Hands over the tick's chunks, for the store's write.
    pub fn take_pending(&mut self) -> IdMap<PendingChunk> {
        std::mem::take(&mut self.pending)
    }

    /// Reads `stream` from `from` to `to` (inclusive) as `viewer` sees it. `memory` holds the
    /// stream's chunks not yet applied to sled, oldest first; the flusher may apply them while
    /// the reader runs, so the sled scan stops before the first of them.
    pub fn reader(
        &self,
        stream: Uuid,
        from: u64,
        to: u64,
        viewer: Uuid,
        mut memory: MemoryChunks,
    ) -> StoreResult<StreamReader> {
        let end = match memory.first() {
            Some((first_ts, _)) => Bound::Excluded(IVec::from(&chunk_key(stream, *first_ts)[..])),
            None => Bound::Included(IVec::from(&chunk_key(stream, to)[..])),
        };
        let start = self.chunk_holding(stream, from)?;
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
            memory.push((chunk.first_ts, IVec::from(chunk.bytes.as_slice())));
        }
        memory.retain(|(first_ts, _)| *first_ts <= to);
        Ok(StreamReader {
            stream,
            chunks,
            memory: memory.into_iter(),
            current: None,
            pos: 0,
            folded_ack: None,
            done: false,
            from,
            to,
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

    /// The author of the message `message_id` stored in `group` at `ts`, if it is there.
    /// `unapplied` holds the group's chunks not yet applied to sled, newest first (borrowed: a
    /// receipt runs this for every message read, and copies nothing).
    pub fn message_author<'a>(
        &'a self,
        group: Uuid,
        ts: u64,
        message_id: Uuid,
        unapplied: impl Iterator<Item = &'a PendingChunk>,
    ) -> StoreResult<Option<Uuid>> {
        let in_memory = self
            .pending
            .get(&group)
            .into_iter()
            .chain(unapplied)
            .find(|chunk| chunk.first_ts <= ts);
        let stored;
        let chunk: &[u8] = match in_memory {
            Some(chunk) => &chunk.bytes,
            None => {
                let found = self
                    .tree
                    .range(chunk_key(group, 0)..=chunk_key(group, ts))
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
            if entry.ts == ts {
                return Ok(entry
                    .message
                    .filter(|meta| meta.message_id == message_id)
                    .map(|meta| meta.author));
            }
            if entry.ts > ts {
                break;
            }
        }
        Ok(None)
    }

    /// Every send with a client id stored in `group` at `from` or later, as `(author, client
    /// id, message id, ack ts)`, for rebuilding the index of recent sends when the store opens
    /// (nothing is pending then).
    pub fn client_sends(
        &self,
        group: Uuid,
        from: u64,
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
                if entry.ts < from {
                    continue;
                }
                if let (Some(meta), Some(ack)) = (entry.message, entry.ack) {
                    if let Some(client_id) = ack.client_id {
                        each(meta.author, client_id, meta.message_id, ack.ts);
                    }
                }
            }
        }
        Ok(())
    }
}

/// Entries of one stream within a time range, as one viewer sees them, oldest first.
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
    /// An entry past `to` was seen: nothing later can be in range.
    done: bool,
    from: u64,
    to: u64,
    viewer: Uuid,
}

impl StreamReader {
    /// The next visible entry: its timestamp and bytes.
    pub fn next_entry(&mut self) -> StoreResult<Option<StoredEvent>> {
        while !self.done {
            if let Some(ack) = self.folded_ack.take() {
                return Ok(Some(ack));
            }
            if let Some(chunk) = &self.current {
                match decode_entry(chunk, &mut self.pos) {
                    Some(entry) if entry.ts > self.to => {
                        self.done = true;
                        break;
                    }
                    Some(Entry {
                        ts,
                        message: Some(meta),
                        ack: Some(ack),
                        bytes,
                        ..
                    }) => {
                        // Written from a `&str`; damaged, it is skipped, not the rest of the chunk.
                        let Ok(data) = std::str::from_utf8(bytes) else {
                            continue;
                        };
                        let in_range = |ts| (self.from..=self.to).contains(&ts);
                        if meta.author == self.viewer && in_range(ack.ts) {
                            let event =
                                protocol::sent_event(ack.client_id, ack.ts, meta.message_id);
                            self.folded_ack = Some((ack.ts, event.into_bytes()));
                        }
                        if ts >= self.from {
                            let event = protocol::message_event(
                                ts,
                                meta.message_id,
                                data,
                                self.stream,
                                meta.author,
                            );
                            return Ok(Some((ts, event.into_bytes())));
                        }
                        continue;
                    }
                    Some(entry) => {
                        let visible = entry.ts >= self.from
                            && entry.viewer.is_none_or(|viewer| viewer == self.viewer);
                        if visible {
                            return Ok(Some((entry.ts, entry.bytes.to_vec())));
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

/// Format 2, which stored a message as its event's JSON and the ack as a private entry of its
/// own: directories made before format 3 hold such chunks, and they must keep reading.
#[cfg(test)]
pub mod format_2 {
    use super::*;

    pub const GROUP: Uuid = Uuid::from_u128(2);
    pub const AUTHOR: Uuid = Uuid::from_u128(1);
    pub const MESSAGE_ID: Uuid = Uuid::from_u128(3);
    pub const MESSAGE_JSON: &str = r#"{"type":20,"timestamp":20,"body":{"message_id":"00000000-0000-0000-0000-000000000003","data":"hi \"you\"","group_id":"00000000-0000-0000-0000-000000000002","user_id":"00000000-0000-0000-0000-000000000001"}}"#;
    pub const ACK_JSON: &str = r#"{"type":21,"id":"c1","timestamp":21,"body":{"message_id":"00000000-0000-0000-0000-000000000003"}}"#;

    /// The same message in format 3.
    pub const PARTS: MessageParts<'static> = MessageParts {
        ts: 20,
        message_id: MESSAGE_ID,
        author: AUTHOR,
        data: "hi \"you\"",
        ack_ts: 21,
        client_id: Some("c1"),
    };

    /// What a sync by the author returns for it.
    pub fn events() -> Vec<StoredEvent> {
        vec![(20, MESSAGE_JSON.into()), (21, ACK_JSON.into())]
    }

    /// Format 2's encoder, kept to make its chunks: the message's JSON in an entry with its
    /// ids, then the ack's JSON in a private entry of its own. Written out here, not through
    /// today's encoders, so that the layout stays pinned whatever they become.
    fn encode(chunk: &mut Vec<u8>, message: &MessageParts, json: &str, ack: &str) {
        chunk.extend_from_slice(&message.ts.to_le_bytes());
        chunk.push(MESSAGE);
        chunk.extend_from_slice(message.message_id.as_bytes());
        chunk.extend_from_slice(message.author.as_bytes());
        chunk.extend_from_slice(&(json.len() as u32).to_le_bytes());
        chunk.extend_from_slice(json.as_bytes());
        chunk.extend_from_slice(&message.ack_ts.to_le_bytes());
        chunk.push(PRIVATE);
        chunk.extend_from_slice(message.author.as_bytes());
        chunk.extend_from_slice(&(ack.len() as u32).to_le_bytes());
        chunk.extend_from_slice(ack.as_bytes());
    }

    impl EventLog {
        /// Appends any message and its ack as format 2 stored them (with today's JSON).
        pub fn append_message_as_format_2(&mut self, group: Uuid, message: &MessageParts) {
            let (id, author) = (message.message_id, message.author);
            let json = protocol::message_event(message.ts, id, message.data, group, author);
            let ack = protocol::sent_event(message.client_id, message.ack_ts, id);
            encode(
                self.chunk(group, message.ts, message.ack_ts),
                message,
                &json,
                &ack,
            );
        }

        /// Appends the message and its ack to [`GROUP`]'s stream as format 2 stored them.
        pub fn append_format_2(&mut self) {
            encode(self.chunk(GROUP, 20, 21), &PARTS, MESSAGE_JSON, ACK_JSON);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip() {
        let viewer = Uuid::from_u128(1);
        let message = MessageParts {
            client_id: None,
            ..format_2::PARTS
        };
        let mut chunk = Vec::new();
        encode_entry(&mut chunk, 7, Audience::Only(viewer), b"ack");
        encode_message(&mut chunk, &format_2::PARTS);
        encode_message(&mut chunk, &message);
        let mut pos = 0;
        let first = decode_entry(&chunk, &mut pos).unwrap();
        assert_eq!(
            (
                first.ts,
                first.viewer,
                first.message,
                first.ack,
                first.bytes
            ),
            (7, Some(viewer), None, None, &b"ack"[..])
        );
        let meta = Some(MessageMeta {
            message_id: format_2::MESSAGE_ID,
            author: format_2::AUTHOR,
        });
        for client_id in [Some("c1"), None] {
            let entry = decode_entry(&chunk, &mut pos).unwrap();
            let ack = Some(FoldedAck { ts: 21, client_id });
            assert_eq!(
                (
                    entry.ts,
                    entry.viewer,
                    entry.message,
                    entry.ack,
                    entry.bytes
                ),
                (20, None, meta, ack, &b"hi \"you\""[..])
            );
        }
        assert!(decode_entry(&chunk, &mut pos).is_none());
        let mut pos = 0;
        let truncated = &chunk[..chunk.len() - 1];
        assert!(decode_entry(truncated, &mut pos).is_some());
        assert!(decode_entry(truncated, &mut pos).is_some());
        assert!(decode_entry(truncated, &mut pos).is_none());
    }

    /// A message stored as parts reads back exactly as format 2 stored its two events, to
    /// every viewer and from every cursor around it.
    #[test]
    fn a_message_reads_back_byte_for_byte_as_format_2_stored_it() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let read = |log: &EventLog, from, to, viewer| {
            let mut reader = log
                .reader(format_2::GROUP, from, to, viewer, Vec::new())
                .unwrap();
            let mut events = Vec::new();
            while let Some(event) = reader.next_entry().unwrap() {
                events.push(event);
            }
            events
        };
        let mut parts = EventLog::new(db.open_tree("parts").unwrap());
        parts.append_message(format_2::GROUP, &format_2::PARTS);
        let mut old = EventLog::new(db.open_tree("format 2").unwrap());
        old.append_format_2();
        let (author, other) = (format_2::AUTHOR, Uuid::from_u128(9));
        let [message, ack] = [0, 1].map(|i| format_2::events()[i].clone());
        let cases = [
            (0, u64::MAX, author, vec![message.clone(), ack.clone()]),
            (0, u64::MAX, other, vec![message.clone()]),
            (21, u64::MAX, author, vec![ack]),
            (0, 20, author, vec![message]),
            (22, u64::MAX, author, vec![]),
        ];
        for (from, to, viewer, expected) in cases {
            assert_eq!(read(&parts, from, to, viewer), expected, "{from}..={to}");
            assert_eq!(
                read(&old, from, to, viewer),
                expected,
                "format 2 {from}..={to}"
            );
        }
    }

    fn read_all(log: &EventLog, viewer: Uuid) -> Vec<StoredEvent> {
        let mut reader = log
            .reader(format_2::GROUP, 0, u64::MAX, viewer, Vec::new())
            .unwrap();
        let mut events = Vec::new();
        while let Some(event) = reader.next_entry().unwrap() {
            events.push(event);
        }
        events
    }

    /// Stored bytes are checked by sled's CRC, so damage here means a bug; it must still cost
    /// no more than the damaged entry, and never send a message's bare `data` as an event.
    #[test]
    fn a_damaged_entry_is_skipped_and_never_sent_raw() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let mut log = EventLog::new(db.open_tree("log").unwrap());
        let group = format_2::GROUP;
        let data = MessageParts {
            data: "XY",
            ..format_2::PARTS
        };
        log.append_message(group, &data);
        log.append(group, 30, Audience::All, b"later");
        let chunk = &mut log.pending.get_mut(&group).unwrap().bytes;
        let at = chunk.windows(2).position(|w| w == b"XY").unwrap();
        chunk[at] = 0xff;
        assert_eq!(
            read_all(&log, format_2::AUTHOR),
            vec![(30, b"later".to_vec())],
            "data that is not UTF-8 drops its entry only"
        );

        for flags in [PARTS, PARTS | ACK_ID, ACK_ID | MESSAGE, 0x40] {
            let mut log = EventLog::new(db.open_tree([flags]).unwrap());
            let chunk = log.chunk(group, 20, 21);
            chunk.extend_from_slice(&20u64.to_le_bytes());
            chunk.push(flags);
            chunk.extend_from_slice(&21u64.to_le_bytes());
            put_bytes(chunk, b"raw data, not an event");
            assert_eq!(read_all(&log, format_2::AUTHOR), vec![], "flags {flags:#x}");
        }
    }

    #[test]
    fn chunk_keys_sort_by_stream_then_time() {
        let a = Uuid::from_u128(1);
        assert!(chunk_key(a, 255) < chunk_key(a, 256));
        assert!(chunk_key(a, u64::MAX) < chunk_key(Uuid::from_u128(2), 0));
    }
}
