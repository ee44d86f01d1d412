//! Edits and deletes: rewriting one message's entry where it is stored, so that its chunk
//! holds the message's current state (the new `data` and when it was edited, or no `data` at
//! all once deleted). The message id says which stream and seq; the chunk holding that seq is
//! found by one seek, and the cost of a change is rewriting that one chunk.
//!
//! A chunk of this tick is changed in place. A chunk already sealed (in a tick the flusher has
//! not applied yet) or stored is rewritten whole into [`EventLog`]'s rewrites: the tick that
//! made the change writes it under the chunk's key (after the original, in apply order, so it
//! wins), and every read of the log sees the rewritten bytes in place of the chunk's until the
//! backend has them.

use std::sync::Arc;

use uuid::Uuid;

use super::entry::{decode_entry, put_bytes, ACK_ID, DELETED, EDITED, MESSAGE, PARTS, TIME};
use super::{chunk_key, EventLog, PendingChunk};
use crate::store::backend::Table;
use crate::store::StoreResult;

/// What an edit or a delete does to a message's entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change<'a> {
    /// New `data`, edited at `at` (ms).
    Edit { data: &'a str, at: u64 },
    /// The `data` is erased.
    Delete,
}

/// A chunk rewritten by a change, kept until the backend holds it.
pub(super) struct Rewrite {
    bytes: Arc<[u8]>,
    /// The commit that sealed it; `None` while it is this tick's.
    sealed: Option<u64>,
}

/// Where a message's chunk is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// This tick's chunk of the stream.
    Pending,
    /// A sealed or stored chunk, by its key.
    Key([u8; 24]),
}

/// A message found in its chunk: who wrote it and whether it is deleted, with what a change
/// needs to rewrite it.
pub struct FoundMessage {
    pub author: Uuid,
    pub deleted: bool,
    stream: Uuid,
    source: Source,
    chunk: Vec<u8>,
    start: usize,
    end: usize,
}

/// The bounds of the PARTS entry of message `message_id` at `seq` in `chunk`, its author and
/// whether it is deleted.
fn locate(chunk: &[u8], seq: u64, message_id: Uuid) -> Option<(usize, usize, Uuid, bool)> {
    let mut pos = 0;
    loop {
        let start = pos;
        let entry = decode_entry(chunk, &mut pos)?;
        if entry.seq > seq {
            return None;
        }
        if entry.seq == seq {
            return match (entry.message, entry.ack) {
                (Some(meta), Some(_)) if meta.message_id == message_id => {
                    Some((start, pos, meta.author, entry.deleted))
                }
                _ => None,
            };
        }
    }
}

/// `chunk` with the entry between `start` and `end` (a PARTS entry) changed.
fn rewrite(chunk: &[u8], start: usize, end: usize, change: Change) -> Option<Vec<u8>> {
    let mut pos = start;
    let entry = decode_entry(chunk, &mut pos)?;
    let (meta, ack) = (entry.message?, entry.ack?);
    let data = match change {
        Change::Edit { data, .. } => data.as_bytes(),
        Change::Delete => &[],
    };
    let mut out = Vec::with_capacity(chunk.len() + data.len() + 8);
    out.extend_from_slice(&chunk[..start]);
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
    if let Change::Edit { at, .. } = change {
        out.extend_from_slice(&at.to_le_bytes());
    }
    put_bytes(&mut out, data);
    out.extend_from_slice(&chunk[end..]);
    Some(out)
}

impl EventLog {
    /// The message `message_id` stored in `group` at `seq`, as this tick sees it. `unapplied`
    /// holds the group's chunks in sealed ticks not yet applied, newest first.
    pub fn find_message<'a>(
        &self,
        group: Uuid,
        seq: u64,
        message_id: Uuid,
        mut unapplied: impl Iterator<Item = &'a PendingChunk>,
    ) -> StoreResult<Option<FoundMessage>> {
        let (source, chunk) = match self.pending.get(&group) {
            Some(chunk) if chunk.first_seq <= seq => (Source::Pending, chunk.bytes.clone()),
            _ => match unapplied.find(|chunk| chunk.first_seq <= seq) {
                Some(chunk) => (
                    Source::Key(chunk_key(group, chunk.first_seq)),
                    self.current(&chunk.key(group), &chunk.bytes),
                ),
                None => {
                    let found = self
                        .backend
                        .last_at_or_before(Table::Log, &chunk_key(group, seq))?
                        .filter(|(key, _)| key.starts_with(group.as_bytes()));
                    let Some((key, value)) = found else {
                        return Ok(None);
                    };
                    let Ok(key) = <[u8; 24]>::try_from(key.as_slice()) else {
                        return Ok(None);
                    };
                    let chunk = self.current(&key, &value);
                    (Source::Key(key), chunk)
                }
            },
        };
        Ok(
            locate(&chunk, seq, message_id).map(|(start, end, author, deleted)| FoundMessage {
                author,
                deleted,
                stream: group,
                source,
                chunk,
                start,
                end,
            }),
        )
    }

    /// A chunk's bytes as they are now: rewritten, or as read.
    fn current(&self, key: &[u8; 24], bytes: &[u8]) -> Vec<u8> {
        match self.rewrites.get(key) {
            Some(rewrite) => rewrite.bytes.to_vec(),
            None => bytes.to_vec(),
        }
    }

    /// Applies `change` to a message found by [`EventLog::find_message`] this tick.
    pub fn change_message(&mut self, found: FoundMessage, change: Change) {
        let Some(bytes) = rewrite(&found.chunk, found.start, found.end, change) else {
            return;
        };
        match found.source {
            Source::Pending => {
                if let Some(chunk) = self.pending.get_mut(&found.stream) {
                    chunk.bytes = bytes;
                }
            }
            Source::Key(key) => {
                self.rewrites.insert(
                    key,
                    Rewrite {
                        bytes: bytes.into(),
                        sealed: None,
                    },
                );
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
