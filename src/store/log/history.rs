//! Reading one stream backwards, chunk by chunk, newest first: what a history page needs, so
//! that its cost follows the page and not the stream's length (one seek to where the page
//! ends, then only the chunks the page spans).

use uuid::Uuid;

use super::{EventLog, MemoryChunks, Span, StreamReader};
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
        memory: MemoryChunks<'a>,
        mut each: impl FnMut(Vec<StoredEvent>) -> bool,
    ) -> StoreResult<()> {
        if span.from > span.to {
            return Ok(());
        }
        for chunk in self.chunks_backward(stream, span.to, memory) {
            let (first_seq, chunk) = chunk?;
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
