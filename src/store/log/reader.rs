//! Reading one stream: its stored chunks, then the ones still in memory, entry by entry, as
//! one viewer sees them.

use std::borrow::Cow;

use uuid::Uuid;

use super::entry::{decode_entry, Entry};
use super::{Chunks, MemoryChunks, Span};
use crate::protocol;
use crate::store::{StoreResult, StoredEvent};

/// Entries of one stream within a [`Span`], as one viewer sees them, oldest first.
pub struct StreamReader<'a> {
    stream: Uuid,
    chunks: Chunks<'a>,
    /// The chunks not yet in the backend, read after the stored ones.
    memory: std::vec::IntoIter<(u64, &'a [u8])>,
    current: Option<Cow<'a, [u8]>>,
    pos: usize,
    /// The ack of the message just returned, when it is the viewer's and in range: next.
    folded_ack: Option<StoredEvent>,
    /// An entry past the span was seen: nothing later can be in it.
    done: bool,
    span: Span,
    viewer: Uuid,
}

impl<'a> StreamReader<'a> {
    pub(super) fn new(
        stream: Uuid,
        chunks: Chunks<'a>,
        memory: MemoryChunks<'a>,
        span: Span,
        viewer: Uuid,
    ) -> StreamReader<'a> {
        StreamReader {
            stream,
            chunks,
            memory: memory.into_iter(),
            current: None,
            pos: 0,
            folded_ack: None,
            done: false,
            span,
            viewer,
        }
    }

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
                            let event = if entry.deleted || entry.edited_at.is_some() {
                                protocol::changed_message_event(
                                    stamp,
                                    meta.message_id,
                                    (!entry.deleted).then_some(data),
                                    self.stream,
                                    meta.author,
                                    entry.edited_at,
                                )
                            } else {
                                protocol::message_event(
                                    stamp,
                                    meta.message_id,
                                    data,
                                    self.stream,
                                    meta.author,
                                )
                            };
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
            self.current = match self.chunks.next() {
                Some(chunk) => Some(Cow::Owned(chunk?)),
                None => match self.memory.next() {
                    Some((_, chunk)) => Some(Cow::Borrowed(chunk)),
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
