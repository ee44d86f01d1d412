//! A log entry's bytes: encoding events and messages into a chunk, and decoding them back.

use uuid::Uuid;

use super::{Audience, MessageParts};
use crate::clock::Stamp;
use crate::protocol;

/// Set on message entries so that a receipt can find the message's author without an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageMeta {
    pub message_id: Uuid,
    pub author: Uuid,
}

/// An entry's flags (the layout is in [`super`]). PRIVATE: seen by `viewer` only; MESSAGE:
/// carries the message's id and author; PARTS: a message as parts with its ack folded in;
/// ACK_ID: the folded ack has a client id.
pub const PRIVATE: u8 = 1;
pub const MESSAGE: u8 = 2;
pub const PARTS: u8 = 4;
pub const ACK_ID: u8 = 8;
/// The entry has a timestamp of its own (format 5); without it, the timestamp is the seq.
pub const TIME: u8 = 16;
/// A PARTS entry whose `data` was edited: the time of the last edit and the seqs of its 25
/// events (`count: u32`, then each a u64) follow the ack's fields.
pub const EDITED: u8 = 32;
/// A PARTS entry whose message was deleted: its `data` is gone (stored empty).
pub const DELETED: u8 = 64;

/// The sender's ack folded into a PARTS entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FoldedAck<'a> {
    pub seq: u64,
    pub client_id: Option<&'a str>,
}

/// One decoded entry, borrowing the chunk.
pub struct Entry<'a> {
    pub seq: u64,
    /// Set on entries of format 5; older ones are stamped with their seq.
    pub timestamp: Option<u64>,
    pub viewer: Option<Uuid>,
    pub message: Option<MessageMeta>,
    /// Set on a PARTS entry, whose `bytes` are the message's `data`.
    pub ack: Option<FoldedAck<'a>>,
    /// When the message's `data` was last edited (ms); an EDITED entry's only.
    pub edited_at: Option<u64>,
    /// The seqs of the message's 25 events, oldest first (EDITED entries only): a delete
    /// erases their `data` too. Raw: 8 bytes each, little-endian.
    pub edit_seqs: &'a [u8],
    /// The message was deleted (its `bytes` are empty).
    pub deleted: bool,
    pub bytes: &'a [u8],
}

impl Entry<'_> {
    pub fn stamp(&self) -> Stamp {
        Stamp {
            seq: self.seq,
            timestamp: self.timestamp.unwrap_or(self.seq),
        }
    }

    /// The folded ack's stamp: its seq, at the message's timestamp (before format 5, the seq).
    pub fn ack_stamp(&self, ack: &FoldedAck) -> Stamp {
        Stamp {
            seq: ack.seq,
            timestamp: self.timestamp.unwrap_or(ack.seq),
        }
    }

    /// The stored event's bytes as sent: before format 5 they lack their `seq`.
    pub fn event_bytes(&self) -> Vec<u8> {
        match self.timestamp {
            Some(_) => self.bytes.to_vec(),
            None => protocol::with_seq(self.bytes, self.seq),
        }
    }
}

/// Appends one entry holding an event as sent.
pub fn encode_entry(chunk: &mut Vec<u8>, stamp: Stamp, audience: Audience, event: &[u8]) {
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
pub fn encode_message(chunk: &mut Vec<u8>, message: &MessageParts) {
    chunk.extend_from_slice(&message.stamp.seq.to_le_bytes());
    chunk.push(TIME | parts_flags(message));
    chunk.extend_from_slice(&message.stamp.timestamp.to_le_bytes());
    put_parts(chunk, message);
}

/// The flags of a PARTS entry besides `TIME`.
pub fn parts_flags(message: &MessageParts) -> u8 {
    MESSAGE
        | PARTS
        | if message.client_id.is_some() {
            ACK_ID
        } else {
            0
        }
}

/// A PARTS entry after its seq, flags and timestamp: the ids, the ack's seq and client id, the
/// data (the same in every format that has parts).
#[inline]
pub fn put_parts(chunk: &mut Vec<u8>, message: &MessageParts) {
    chunk.extend_from_slice(message.message_id.as_bytes());
    chunk.extend_from_slice(message.author.as_bytes());
    chunk.extend_from_slice(&message.ack_seq.to_le_bytes());
    if let Some(id) = message.client_id {
        put_bytes(chunk, id.as_bytes());
    }
    put_bytes(chunk, message.data.as_bytes());
}

pub fn put_bytes(chunk: &mut Vec<u8>, bytes: &[u8]) {
    chunk.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    chunk.extend_from_slice(bytes);
}

/// Decodes the entry at `*pos` and advances past it; `None` at the end or on a damaged chunk.
pub fn decode_entry<'a>(chunk: &'a [u8], pos: &mut usize) -> Option<Entry<'a>> {
    let mut take = |n: usize| -> Option<&'a [u8]> {
        let bytes = chunk.get(*pos..pos.checked_add(n)?)?;
        *pos += n;
        Some(bytes)
    };
    let seq = u64::from_le_bytes(take(8)?.try_into().ok()?);
    let flags = take(1)?[0];
    // An unknown flag, or parts without the message's ids, is no entry this parley wrote.
    if flags & !(PRIVATE | MESSAGE | PARTS | ACK_ID | TIME | EDITED | DELETED) != 0
        || (flags & PARTS != 0 && flags & MESSAGE == 0)
        || (flags & (ACK_ID | EDITED | DELETED) != 0 && flags & PARTS == 0)
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
    let (edited_at, edit_seqs) = if flags & EDITED != 0 {
        let at = u64::from_le_bytes(take(8)?.try_into().ok()?);
        let count = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
        (Some(at), take(count.checked_mul(8)?)?)
    } else {
        (None, &[][..])
    };
    let len = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
    let bytes = take(len)?;
    Some(Entry {
        seq,
        timestamp,
        viewer,
        message,
        ack,
        edited_at,
        edit_seqs,
        deleted: flags & DELETED != 0,
        bytes,
    })
}

/// The stamps of what `viewer` sees of an entry: the entry's, and a message's folded ack when
/// the viewer sent it.
pub fn visible_stamps(entry: &Entry, viewer: Uuid) -> [Option<Stamp>; 2] {
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
