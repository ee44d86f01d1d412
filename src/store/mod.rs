//! Everything durable: users, sessions, groups, memberships and the event log, over a backend.
//!
//! The event log ([`log`]) keeps one stream per group (messages, group events, and each sender's
//! ack, visible to the sender only) and one per user (receipts, the 70 a joiner gets); a message
//! is written once whatever the group size. A sync ([`sync`]) merges the user's stream with the
//! streams of the groups they belonged to, each bounded by the membership intervals; it skips the
//! groups whose newest event is before its cursor (the log knows each stream's newest seq) and
//! opens the others only as the page reaches them; the user's current groups are in memory, and
//! of the memberships that ended it reads only those that ended after its cursor
//! ([`memberships`]): its cost follows what it returns, not the user's history. A tick's writes
//! stay in memory ([`overlay`]) and are sealed together by [`Store::write`]; the [`flusher`]
//! thread puts each batch of sealed ticks into the [`backend`] (sled, [`sled_backend`]) in one
//! atomic write and flushes it, off the loop thread, and acknowledgements wait for it.

mod backend;
pub mod backup;
pub mod check;
pub mod client_ids;
mod edits;
mod error;
pub mod flusher;
mod format;
mod handoff;
// Issue #20: history pages.
mod history;
pub mod integrity;
pub mod log;
pub mod mark;
mod memberships;
#[cfg(test)]
mod memory;
pub mod message_id;
mod overlay;
mod read_state;
mod records;
mod retry;
mod sled_backend;
mod sync;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::sync::Arc;

use self::backend::Backend;
use self::client_ids::RecentSends;
pub use self::error::{StoreError, StoreResult};
pub use self::history::HistoryPage;
pub use self::log::rewrite::{Change, FoundMessage};
use self::log::EventLog;
pub use self::log::{Audience, MessageParts};
use self::overlay::TableWrites;
pub use self::overlay::{Ceiling, TickWrites};
pub use self::read_state::{GroupCounts, Marker, ReadStateRecords};
pub use self::records::{GroupRecord, ReceiptKind, SessionRecord, UserRecord};
pub use self::retry::RetryKey;
pub use self::sync::{PageBounds, SyncPage};
use crate::clock::Stamp;

/// An event as a sync returns it: its stamp and the bytes sent to clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub stamp: Stamp,
    pub bytes: Vec<u8>,
}

impl StoredEvent {
    pub fn new(stamp: Stamp, bytes: Vec<u8>) -> StoredEvent {
        StoredEvent { stamp, bytes }
    }
}

/// All durable state. Writes go to memory first (`pending`, and the log's chunks); reads see
/// them and the sealed ticks the flusher has not applied yet, so the loop never waits for the
/// backend ([`overlay`]).
pub struct Store {
    backend: Arc<dyn Backend>,
    log: EventLog,
    /// This tick's writes, one map per table of records, so a lookup needs no key copy.
    pending: TableWrites,
    /// Sealed ticks not yet known to be in the backend, oldest first.
    unapplied: VecDeque<Arc<TickWrites>>,
    /// Recent sends by client id, the first place a retry is looked for.
    recent_sends: RecentSends,
    /// Whether the `client_ids` table may hold records (of format 2 or 3, or of sends
    /// `recent_sends` had no room for): when not, a send with a new id costs no backend read.
    client_id_table_used: bool,
    /// The first seq of format 5: every event below it was stamped with its seq.
    seq_base: u64,
    /// The newest second the `times` table has a record for.
    last_second: u64,
    /// Commits sealed since the store was created (see [`format::CLOCK_KEY`]).
    commits: u64,
    /// Membership records (closed intervals) read by syncs so far: the part of a sync's work
    /// that the user's history could make grow, counted for tests and `/metrics`.
    membership_reads: std::cell::Cell<u64>,
    /// Every user's current memberships (see [`memberships`]).
    memberships: memberships::OpenMemberships,
}

/// A big-endian u64 from up to 8 bytes (shorter ones as if zero-padded at the end).
fn read_u64(bytes: &[u8]) -> u64 {
    let mut buf = [0u8; 8];
    let n = bytes.len().min(8);
    buf[..n].copy_from_slice(&bytes[..n]);
    u64::from_be_bytes(buf)
}
