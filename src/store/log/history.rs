//! Reading one stream backwards, chunk by chunk, newest first: what a history page needs, so
//! that its cost follows the page and not the stream's length (one seek to where the page
//! ends, then only the chunks the page spans).

use std::borrow::Cow;
use std::ops::Bound;

use uuid::Uuid;

use super::{chunk_key, read_seq, EventLog, MemoryChunks, Span, StreamReader};
use crate::store::backend::{Direction, Table};
use crate::store::{StoreResult, StoredEvent};

impl EventLog {
    /// Calls `each` with the entries of `stream` in `span` as `viewer` sees them, a chunk's
    /// worth at a time (each batch oldest first), the newest chunk first, until `each` answers
    /// `false` or the chunk holding `span.from` has been read. `memory` is as for
    /// [`EventLog::reader`]: those chunks are newer than every stored one, so the stored scan
    /// stops before the first of them (the flusher may apply them meanwhile: read once).
    pub fn read_backward<'a>(
        &'a self,
        stream: Uuid,
        span: Span,
        viewer: Uuid,
        mut memory: MemoryChunks<'a>,
        mut each: impl FnMut(Vec<StoredEvent>) -> bool,
    ) -> StoreResult<()> {
        if span.from > span.to {
            return Ok(());
        }
        // A chunk rewritten by an edit or a delete reads as rewritten (see `log::rewrite`).
        for (first_seq, bytes) in &mut memory {
            *bytes = self.substitute(stream, *first_seq, bytes);
        }
        if let Some(chunk) = self.pending.get(&stream) {
            memory.push((chunk.first_seq, &chunk.bytes));
        }
        let first = chunk_key(stream, 0);
        let end = match memory.first() {
            Some((first_seq, _)) => Bound::Excluded(chunk_key(stream, *first_seq)),
            None => Bound::Included(chunk_key(stream, span.to)),
        };
        let stored = self
            .backend
            .range(
                Table::Log,
                Bound::Included(&first[..]),
                end.as_ref().map(|key| &key[..]),
                Direction::Backward,
            )
            .map(|entry| {
                entry.map(|(key, chunk)| {
                    let chunk = self.substitute_stored(&key, chunk);
                    (read_seq(&key), Cow::Owned(chunk))
                })
            });
        let in_memory = memory
            .into_iter()
            .rev()
            .map(|(first_seq, chunk)| Ok((first_seq, Cow::Borrowed(chunk))));
        for chunk in in_memory.chain(stored) {
            let (first_seq, chunk) = chunk?;
            if first_seq > span.to {
                continue;
            }
            let one: MemoryChunks = vec![(first_seq, &chunk)];
            let mut reader =
                StreamReader::new(stream, Box::new(std::iter::empty()), one, span, viewer);
            let mut batch = Vec::new();
            while let Some(event) = reader.next_entry()? {
                batch.push(event);
            }
            // A chunk that starts at or before `from` is the last that can hold the span.
            if !each(batch) || first_seq <= span.from {
                break;
            }
        }
        Ok(())
    }
}
