//! Edits and deletes: rewriting one message's entry where it is stored, so that its chunk
//! holds the message's current state (the new `data` and when it was edited, or no `data` at
//! all once deleted). The message id says which stream and seq; the chunk holding that seq is
//! found by one seek, and the cost of a change is rewriting that one chunk (and, for a delete
//! of an edited message, the chunks of its 25 events, whose `data` it erases too).
//!
//! A chunk of this tick is changed in place. A chunk already sealed (in a tick the flusher has
//! not applied yet) or stored is rewritten whole into [`EventLog`]'s rewrites: the tick that
//! made the change writes it under the chunk's key (after the original, in apply order, so it
//! wins), and every read of the log sees the rewritten bytes in place of the chunk's until the
//! backend has them.

use std::sync::Arc;

use uuid::Uuid;

use super::entry::{
    decode_entry, encode_entry, put_bytes, Entry, ACK_ID, DELETED, EDITED, MESSAGE, PARTS, TIME,
};
use super::{chunk_key, Audience, EventLog, PendingChunk};
use crate::protocol::{self, event};
use crate::store::backend::Table;
use crate::store::StoreResult;

/// What an edit or a delete does to a message's entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change<'a> {
    /// New `data`, edited at `at` (ms) by the 25 stored at seq `seq`.
    Edit { data: &'a str, at: u64, seq: u64 },
    /// The `data` is erased, and that of the message's 25 events.
    Delete,
}

/// A chunk rewritten by a change, kept until the backend holds it.
pub(super) struct Rewrite {
    bytes: Arc<[u8]>,
    /// The commit that sealed it; `None` while it is this tick's.
    sealed: Option<u64>,
}

/// Where a chunk is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// This tick's chunk of the stream.
    Pending,
    /// A sealed or stored chunk, by its key.
    Key([u8; 24]),
}

/// A stored message as a change needs to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FoundMessage {
    pub author: Uuid,
    pub deleted: bool,
}

/// The bounds of the entry at `seq` in `chunk`.
fn locate(chunk: &[u8], seq: u64) -> Option<(usize, usize)> {
    let mut pos = 0;
    loop {
        let start = pos;
        let entry = decode_entry(chunk, &mut pos)?;
        if entry.seq > seq {
            return None;
        }
        if entry.seq == seq {
            return Some((start, pos));
        }
    }
}

/// The entry of message `message_id` (a PARTS entry) at `bounds` in `chunk`.
fn message_entry(chunk: &[u8], start: usize, message_id: Uuid) -> Option<Entry<'_>> {
    let mut pos = start;
    let entry = decode_entry(chunk, &mut pos)?;
    match (entry.message, entry.ack) {
        (Some(meta), Some(_)) if meta.message_id == message_id => Some(entry),
        _ => None,
    }
}

/// `entry`, a message's PARTS entry, with `change` applied.
fn changed_entry(entry: &Entry, change: Change) -> Option<Vec<u8>> {
    let (meta, ack) = (entry.message?, entry.ack?);
    let data = match change {
        Change::Edit { data, .. } => data.as_bytes(),
        Change::Delete => &[],
    };
    let mut out = Vec::with_capacity(entry.edit_seqs.len() + data.len() + 128);
    out.extend_from_slice(&entry.seq.to_le_bytes());
    let mut flags = MESSAGE | PARTS;
    if entry.timestamp.is_some() {
        flags |= TIME;
    }
    if ack.client_id.is_some() {
        flags |= ACK_ID;
    }
    flags |= match change {
        Change::Edit { .. } => EDITED,
        Change::Delete => DELETED,
    };
    out.push(flags);
    if let Some(timestamp) = entry.timestamp {
        out.extend_from_slice(&timestamp.to_le_bytes());
    }
    out.extend_from_slice(meta.message_id.as_bytes());
    out.extend_from_slice(meta.author.as_bytes());
    out.extend_from_slice(&ack.seq.to_le_bytes());
    if let Some(id) = ack.client_id {
        put_bytes(&mut out, id.as_bytes());
    }
    if let Change::Edit { at, seq, .. } = change {
        out.extend_from_slice(&at.to_le_bytes());
        let count = u32::try_from(entry.edit_seqs.len() / 8 + 1).ok()?;
        out.extend_from_slice(&count.to_le_bytes());
        out.extend_from_slice(entry.edit_seqs);
        out.extend_from_slice(&seq.to_le_bytes());
    }
    put_bytes(&mut out, data);
    Some(out)
}

/// `chunk` with the bytes between `start` and `end` replaced by `entry`.
fn splice(chunk: &[u8], start: usize, end: usize, entry: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(chunk.len() - (end - start) + entry.len());
    out.extend_from_slice(&chunk[..start]);
    out.extend_from_slice(entry);
    out.extend_from_slice(&chunk[end..]);
    out
}

impl EventLog {
    /// The message `message_id` stored in `group` at `seq`, as this tick sees it. `unapplied`
    /// holds the group's chunks in sealed ticks not yet applied, newest first.
    pub fn find_message<'a>(
        &self,
        group: Uuid,
        seq: u64,
        message_id: Uuid,
        unapplied: impl Iterator<Item = &'a PendingChunk>,
    ) -> StoreResult<Option<FoundMessage>> {
        let Some((_, chunk)) = self.chunk_at(group, seq, unapplied)? else {
            return Ok(None);
        };
        Ok(locate(&chunk, seq)
            .and_then(|(start, _)| message_entry(&chunk, start, message_id))
            .and_then(|entry| {
                Some(FoundMessage {
                    author: entry.message?.author,
                    deleted: entry.deleted,
                })
            }))
    }

    /// Applies `change` to the message `message_id` stored in `group` at `seq` (found this
    /// tick by [`EventLog::find_message`]). `unapplied` returns the group's chunks in sealed
    /// ticks, newest first, each time it is called.
    pub fn change_message<'a, I: Iterator<Item = &'a PendingChunk>>(
        &mut self,
        group: Uuid,
        seq: u64,
        message_id: Uuid,
        unapplied: impl Fn() -> I,
        change: Change,
    ) -> StoreResult<()> {
        let Some((source, chunk)) = self.chunk_at(group, seq, unapplied())? else {
            return Ok(());
        };
        let Some((start, end)) = locate(&chunk, seq) else {
            return Ok(());
        };
        let Some(entry) = message_entry(&chunk, start, message_id) else {
            return Ok(());
        };
        let Some(changed) = changed_entry(&entry, change) else {
            return Ok(());
        };
        let author = entry.message.map_or(Uuid::nil(), |meta| meta.author);
        let edits: Vec<u64> = entry
            .edit_seqs
            .chunks_exact(8)
            .filter_map(|seq| Some(u64::from_le_bytes(seq.try_into().ok()?)))
            .collect();
        let bytes = splice(&chunk, start, end, &changed);
        self.put_chunk(group, source, bytes);
        if change == Change::Delete {
            for edit in edits {
                self.erase_edit(group, edit, message_id, author, unapplied())?;
            }
        }
        Ok(())
    }

    /// Replaces the 25 stored in `group` at `seq` by one without `data`: the message it
    /// edited was deleted, and its text must go with it.
    fn erase_edit<'a>(
        &mut self,
        group: Uuid,
        seq: u64,
        message_id: Uuid,
        author: Uuid,
        unapplied: impl Iterator<Item = &'a PendingChunk>,
    ) -> StoreResult<()> {
        let Some((source, chunk)) = self.chunk_at(group, seq, unapplied)? else {
            return Ok(());
        };
        let Some((start, end)) = locate(&chunk, seq) else {
            return Ok(());
        };
        let mut pos = start;
        let Some(stamp) = decode_entry(&chunk, &mut pos).map(|entry| entry.stamp()) else {
            return Ok(());
        };
        let json = protocol::encode(
            event::EDITED,
            Some(stamp.seq),
            None,
            stamp.timestamp,
            &protocol::ReceiptBody {
                message_id,
                group_id: group,
                user_id: author,
            },
        );
        let mut erased = Vec::with_capacity(json.len() + 32);
        encode_entry(&mut erased, stamp, Audience::All, json.as_bytes());
        let bytes = splice(&chunk, start, end, &erased);
        self.put_chunk(group, source, bytes);
        Ok(())
    }

    /// The chunk of `stream` that holds `seq`, as this tick sees it, and where it is.
    fn chunk_at<'a>(
        &self,
        stream: Uuid,
        seq: u64,
        mut unapplied: impl Iterator<Item = &'a PendingChunk>,
    ) -> StoreResult<Option<(Source, Vec<u8>)>> {
        if let Some(chunk) = self.pending.get(&stream) {
            if chunk.first_seq <= seq {
                return Ok(Some((Source::Pending, chunk.bytes.clone())));
            }
        }
        if let Some(chunk) = unapplied.find(|chunk| chunk.first_seq <= seq) {
            let key = chunk.key(stream);
            return Ok(Some((Source::Key(key), self.current(&key, &chunk.bytes))));
        }
        let found = self
            .backend
            .last_at_or_before(Table::Log, &chunk_key(stream, seq))?
            .filter(|(key, _)| key.starts_with(stream.as_bytes()));
        Ok(found.and_then(|(key, value)| {
            let key = <[u8; 24]>::try_from(key.as_slice()).ok()?;
            let chunk = self.current(&key, &value);
            Some((Source::Key(key), chunk))
        }))
    }

    /// A chunk's bytes as they are now: rewritten, or as read.
    fn current(&self, key: &[u8; 24], bytes: &[u8]) -> Vec<u8> {
        match self.rewrites.get(key) {
            Some(rewrite) => rewrite.bytes.to_vec(),
            None => bytes.to_vec(),
        }
    }

    /// Puts a rewritten chunk where reads and the next seal find it.
    fn put_chunk(&mut self, stream: Uuid, source: Source, bytes: Vec<u8>) {
        match source {
            Source::Pending => {
                if let Some(chunk) = self.pending.get_mut(&stream) {
                    chunk.bytes = bytes;
                }
            }
            Source::Key(key) => {
                let rewrite = Rewrite {
                    bytes: bytes.into(),
                    sealed: None,
                };
                self.rewrites.insert(key, rewrite);
                self.unsealed_rewrites = true;
            }
        }
    }

    /// A chunk as reads see it: its rewrite, when it has one not yet applied.
    pub(super) fn substitute<'a>(
        &'a self,
        stream: Uuid,
        first_seq: u64,
        bytes: &'a [u8],
    ) -> &'a [u8] {
        if self.rewrites.is_empty() {
            return bytes;
        }
        match self.rewrites.get(&chunk_key(stream, first_seq)) {
            Some(rewrite) => &rewrite.bytes,
            None => bytes,
        }
    }

    /// A stored chunk as reads see it (see [`EventLog::substitute`]).
    pub(super) fn substitute_stored(&self, key: &[u8], bytes: Vec<u8>) -> Vec<u8> {
        if self.rewrites.is_empty() {
            return bytes;
        }
        match <[u8; 24]>::try_from(key)
            .ok()
            .and_then(|key| self.rewrites.get(&key))
        {
            Some(rewrite) => rewrite.bytes.to_vec(),
            None => bytes,
        }
    }

    /// Hands over the tick's rewrites, sealed as commit `commit`: kept for reads until that
    /// commit is applied ([`EventLog::forget_rewrites`]).
    pub fn take_rewrites(&mut self, commit: u64) -> Vec<([u8; 24], Arc<[u8]>)> {
        if !self.unsealed_rewrites {
            return Vec::new();
        }
        self.unsealed_rewrites = false;
        self.rewrites
            .iter_mut()
            .filter(|(_, rewrite)| rewrite.sealed.is_none())
            .map(|(key, rewrite)| {
                rewrite.sealed = Some(commit);
                (*key, Arc::clone(&rewrite.bytes))
            })
            .collect()
    }

    /// Drops the rewrites of commits up to `durable`: the backend holds them.
    pub fn forget_rewrites(&mut self, durable: u64) {
        self.rewrites
            .retain(|_, rewrite| rewrite.sealed.is_none_or(|commit| commit > durable));
    }
}
