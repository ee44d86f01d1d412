//! The seam under the store's overlay: the writes and reads the store needs of a durable,
//! ordered key-value backend with one table per kind of record and one for the event log.
//!
//! The store keeps everything not yet durable in memory ([`super::overlay`]) and asks the
//! backend only for what is stored. A batch of sealed ticks goes in as one atomic write
//! ([`Backend::apply`]); [`Backend::flush`] makes it durable. Keys sort bytewise in each table.

use std::ops::Bound;
use std::sync::Arc;

use super::overlay::TickWrites;
use super::StoreResult;

/// The tables, records first, the event log last; their names are the stored ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Users,
    Usernames,
    Emails,
    Sessions,
    AccessTokens,
    Groups,
    Memberships,
    Members,
    Intervals,
    Receipts,
    ClientIds,
    Times,
    Meta,
    /// user id ++ session id -> `b"live"` or `b"revoked"`: a user's sessions, for listing them.
    UserSessions,
    /// expiry (seconds, big-endian) ++ a login token's signature -> nothing: logged-out tokens,
    /// in expiry order so that expired ones can be dropped from the front.
    RevokedTokens,
    /// group id -> its message count, newest message seq and deleted messages; group id ++
    /// user id -> that user's read marker and the count at it (issue #20, [`super::read_state`]).
    ReadState,
    Log,
}

impl Table {
    /// Every table, in the order of their numbers.
    pub const ALL: [Table; 17] = [
        Table::Users,
        Table::Usernames,
        Table::Emails,
        Table::Sessions,
        Table::AccessTokens,
        Table::Groups,
        Table::Memberships,
        Table::Members,
        Table::Intervals,
        Table::Receipts,
        Table::ClientIds,
        Table::Times,
        Table::Meta,
        Table::UserSessions,
        Table::RevokedTokens,
        Table::ReadState,
        Table::Log,
    ];
    /// How many tables hold records (all but the log, last, whose chunks a tick keeps apart).
    pub const RECORDS: usize = Table::ALL.len() - 1;

    pub fn name(self) -> &'static str {
        match self {
            Table::Users => "users",
            Table::Usernames => "usernames",
            Table::Emails => "emails",
            Table::Sessions => "sessions",
            Table::AccessTokens => "access_tokens",
            Table::Groups => "groups",
            Table::Memberships => "memberships",
            Table::Members => "members",
            Table::Intervals => "intervals",
            Table::Receipts => "receipts",
            Table::ClientIds => "client_ids",
            Table::Times => "times",
            Table::Meta => "meta",
            Table::Log => "log",
            Table::UserSessions => "user_sessions",
            Table::RevokedTokens => "revoked_tokens",
            Table::ReadState => "read_state",
        }
    }
}

/// A stored key and its value.
pub type Entry = (Vec<u8>, Vec<u8>);
/// Entries of one table in key order (or its reverse).
pub type Entries<'a> = Box<dyn Iterator<Item = StoreResult<Entry>> + 'a>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Forward,
    Backward,
}

/// A durable backend. Shared by the loop thread (reads, and writes while opening) and the
/// flusher thread (batches).
pub trait Backend: Send + Sync {
    /// Whether the backend held no tables but `meta` when it was opened: a new data directory.
    fn created(&self) -> bool;

    /// Puts sealed ticks in, oldest first, as one atomic write (not yet durable): every write
    /// of [`TickWrites::each_write`], the later of two to one key winning.
    fn apply(&self, ticks: &[Arc<TickWrites>]) -> StoreResult<()>;

    /// Makes everything written so far durable.
    fn flush(&self) -> StoreResult<()>;

    /// Closes and opens the backend again after a failed write or flush, when it cannot go on
    /// otherwise (sled keeps failing every write until then); what was flushed stays, what was
    /// not is lost and must be applied again.
    fn reopen(&self) -> StoreResult<()> {
        Ok(())
    }

    /// Writes one record at once (for opening's upgrades and pruning, never on the loop's path).
    fn put(&self, table: Table, key: &[u8], value: &[u8]) -> StoreResult<()>;

    /// Removes one record at once, like [`Backend::put`].
    fn remove(&self, table: Table, key: &[u8]) -> StoreResult<()>;

    fn get(&self, table: Table, key: &[u8]) -> StoreResult<Option<Vec<u8>>>;

    /// The entry with the greatest key at or before `key`.
    fn last_at_or_before(&self, table: Table, key: &[u8]) -> StoreResult<Option<Entry>>;

    /// The entries between two bounds; none when the bounds leave no key between them.
    fn range<'a>(
        &'a self,
        table: Table,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
        direction: Direction,
    ) -> Entries<'a>;

    /// The entries whose keys start with `prefix`, in key order.
    fn scan_prefix<'a>(&'a self, table: Table, prefix: &[u8]) -> Entries<'a>;

    fn size_on_disk(&self) -> StoreResult<u64>;
}

/// Whether no key lies between `from` and `to`, as far as the bounds alone tell.
pub fn is_empty_range(from: Bound<&[u8]>, to: Bound<&[u8]>) -> bool {
    match (from, to) {
        (Bound::Included(from), Bound::Included(to)) => from > to,
        (
            Bound::Included(from) | Bound::Excluded(from),
            Bound::Included(to) | Bound::Excluded(to),
        ) => from >= to,
        _ => false,
    }
}
