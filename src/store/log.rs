//! The event log. Every event is appended to a stream (a group's or a user's) and stored as one
//! sled value per stream per tick, a "chunk", so a tick costs one insert per active stream rather
//! than one per event. The tick's chunks stay in memory until the store's write takes them
//! ([`EventLog::take_pending`]); reads see them, and the chunks of earlier ticks the flusher has
//! not yet put into sled (passed in by the store), so a sync misses nothing.
//!
//! Chunk layout, entries back to back, integers little-endian:
//! `ts: u64 | flags: u8 | [viewer: 16 bytes if PRIVATE] | [message id, author: 32 bytes if
//! MESSAGE] | len: u32 | event bytes`.

use std::collections::HashMap;
use std::ops::Bound;

use sled::{IVec, Tree};
use uuid::Uuid;

use super::{StoreResult, StoredEvent};

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
pub struct MessageMeta {
    pub message_id: Uuid,
    pub author: Uuid,
}

const PRIVATE: u8 = 1;
const MESSAGE: u8 = 2;

/// One decoded entry, borrowing the chunk.
struct Entry<'a> {
    ts: u64,
    viewer: Option<Uuid>,
    message: Option<MessageMeta>,
    bytes: &'a [u8],
}

/// Appends one entry to a chunk.
fn encode_entry(
    chunk: &mut Vec<u8>,
    ts: u64,
    audience: Audience,
    message: Option<MessageMeta>,
    event: &[u8],
) {
    let mut flags = 0;
    if matches!(audience, Audience::Only(_)) {
        flags |= PRIVATE;
    }
    if message.is_some() {
        flags |= MESSAGE;
    }
    chunk.extend_from_slice(&ts.to_le_bytes());
    chunk.push(flags);
    if let Audience::Only(viewer) = audience {
        chunk.extend_from_slice(viewer.as_bytes());
    }
    if let Some(meta) = message {
        chunk.extend_from_slice(meta.message_id.as_bytes());
        chunk.extend_from_slice(meta.author.as_bytes());
    }
    chunk.extend_from_slice(&(event.len() as u32).to_le_bytes());
    chunk.extend_from_slice(event);
}

/// Decodes the entry at `*pos` and advances past it; `None` at the end or on a damaged chunk.
fn decode_entry<'a>(chunk: &'a [u8], pos: &mut usize) -> Option<Entry<'a>> {
    let mut take = |n: usize| -> Option<&'a [u8]> {
        let bytes = chunk.get(*pos..*pos + n)?;
        *pos += n;
        Some(bytes)
    };
    let ts = u64::from_le_bytes(take(8)?.try_into().ok()?);
    let flags = take(1)?[0];
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
    let len = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
    let bytes = take(len)?;
    Some(Entry {
        ts,
        viewer,
        message,
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
    pending: HashMap<Uuid, PendingChunk>,
}

impl EventLog {
    pub fn new(tree: Tree) -> EventLog {
        EventLog {
            tree,
            pending: HashMap::new(),
        }
    }

    /// Appends an event. Timestamps must increase across calls (the server clock sees to it).
    pub fn append(
        &mut self,
        stream: Uuid,
        ts: u64,
        audience: Audience,
        message: Option<MessageMeta>,
        event: &[u8],
    ) {
        let chunk = self.pending.entry(stream).or_insert_with(|| PendingChunk {
            first_ts: ts,
            bytes: Vec::with_capacity(256),
        });
        encode_entry(&mut chunk.bytes, ts, audience, message, event);
    }

    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Hands over the tick's chunks, for the store's write.
    pub fn take_pending(&mut self) -> HashMap<Uuid, PendingChunk> {
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
        // Start at the chunk that holds `from`: the last one that begins at or before it.
        let start = match self
            .tree
            .range(chunk_key(stream, 0)..=chunk_key(stream, from))
            .next_back()
        {
            Some(entry) => entry?.0,
            None => IVec::from(&chunk_key(stream, from)[..]),
        };
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
            chunks,
            memory: memory.into_iter(),
            current: None,
            pos: 0,
            done: false,
            from,
            to,
            viewer,
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
}

/// Entries of one stream within a time range, as one viewer sees them, oldest first.
pub struct StreamReader {
    /// `None` when every chunk in range is still in memory.
    chunks: Option<sled::Iter>,
    /// The chunks not yet in sled, read after the stored ones.
    memory: std::vec::IntoIter<(u64, IVec)>,
    current: Option<IVec>,
    pos: usize,
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
            if let Some(chunk) = &self.current {
                match decode_entry(chunk, &mut self.pos) {
                    Some(entry) if entry.ts > self.to => {
                        self.done = true;
                        break;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip() {
        let (viewer, id, author) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        let meta = MessageMeta {
            message_id: id,
            author,
        };
        let mut chunk = Vec::new();
        encode_entry(&mut chunk, 7, Audience::All, Some(meta), b"hello");
        encode_entry(&mut chunk, 8, Audience::Only(viewer), None, b"ack");
        let mut pos = 0;
        let first = decode_entry(&chunk, &mut pos).unwrap();
        assert_eq!(
            (first.ts, first.viewer, first.message, first.bytes),
            (7, None, Some(meta), &b"hello"[..])
        );
        let second = decode_entry(&chunk, &mut pos).unwrap();
        assert_eq!(
            (second.ts, second.viewer, second.message, second.bytes),
            (8, Some(viewer), None, &b"ack"[..])
        );
        assert!(decode_entry(&chunk, &mut pos).is_none());
        assert!(decode_entry(&chunk[..chunk.len() - 1], &mut 0).is_some());
    }

    #[test]
    fn chunk_keys_sort_by_stream_then_time() {
        let a = Uuid::from_u128(1);
        assert!(chunk_key(a, 255) < chunk_key(a, 256));
        assert!(chunk_key(a, u64::MAX) < chunk_key(Uuid::from_u128(2), 0));
    }
}
