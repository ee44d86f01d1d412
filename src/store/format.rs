//! Opening the store: the format a data directory is in, the upgrades from older ones, and the
//! clocks each commit stores.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;

use super::backend::{Backend, Table};
use super::client_ids::{ClientIdLimits, RecentSends};
use super::log::EventLog;
use super::overlay::{no_writes, Ceiling};
use super::sled_backend::SledBackend;
use super::{read_u64, Store, StoreError, StoreResult};
use crate::clock;

pub mod to_6;

/// What each commit stores of the clocks, in one value so that a commit sets one key: the seq
/// ceiling (no seq above it was handed out), the last timestamp (so that timestamps keep their
/// order across a restart), the retry index's time (see [`INDEX_TIME_KEY`]), and the number of
/// commits sealed since the store was created (what the high-water mark, [`super::mark`],
/// compares: the seq ceiling runs ahead of the seqs and stays put over many commits); 32 bytes
/// (24 before the count: it then reads as 0).
pub const CLOCK_KEY: &[u8] = b"clocks";
/// See [`Store::seq_base`].
pub const SEQ_BASE_KEY: &[u8] = b"seq_base";
/// Before format 5: the clock ceiling, no timestamp above it handed out. Timestamps were unique
/// then, and the upgrade makes each event's seq its timestamp, so seqs go on from it.
pub const OLD_CLOCK_KEY: &[u8] = b"clock";
/// Before format 5, the retry index's time at the last commit (now in [`CLOCK_KEY`]): the next
/// start's "now" is never before it, so a wall clock that is behind at start (no RTC, before
/// NTP) does not make the rebuild read old history as recent.
pub const INDEX_TIME_KEY: &[u8] = b"index_time";
pub const FORMAT_KEY: &[u8] = b"format";
/// Bumped whenever the layout changes in a way older data cannot be read with. 3: messages
/// are stored as parts with their ack folded in (see [`super::log`]). 4: a send's client id is
/// kept in its log entry only, not in the `client_ids` table (see [`super::client_ids`]). 5:
/// events carry a seq apart from their timestamp. 6: memberships are stored a key per change
/// (see [`super::memberships`]), not as lists rewritten whole.
pub const FORMAT: u64 = 6;
/// Formats this parley still reads: a directory in one of them is marked [`FORMAT`] when
/// opened, so that an older parley refuses it instead of misreading what this one writes.
/// Formats 2 to 4 are first brought to 5 (the `meta` table only), then 5 to 6 (the tables).
const UPGRADES_FROM: [u64; 4] = [2, 3, 4, 5];
/// The format whose tables [`upgrade_tables`] upgrades.
const TABLES_FROM: u64 = 5;

impl Store {
    /// Opens with the default limits on the index of recent client ids.
    pub fn open(dir: &Path, cache_bytes: u64) -> StoreResult<Store> {
        Store::open_with(dir, cache_bytes, ClientIdLimits::DEFAULT)
    }

    /// Opens the store in `dir`, and rebuilds the index of recent client ids from the log.
    pub fn open_with(
        dir: &Path,
        cache_bytes: u64,
        client_ids: ClientIdLimits,
    ) -> StoreResult<Store> {
        let mut backend = SledBackend::open(dir, cache_bytes)?;
        mark_format(&backend)?;
        backend.open_tables()?;
        Store::open_on(Arc::new(backend), client_ids)
    }

    /// Opens the store on `backend`, whose format [`mark_format`] has seen to.
    pub(super) fn open_on(
        backend: Arc<dyn Backend>,
        client_ids: ClientIdLimits,
    ) -> StoreResult<Store> {
        upgrade_tables(&*backend)?;
        let clocks = backend.get(Table::Meta, CLOCK_KEY)?;
        let (_, last_index_ms) = read_clock_record(clocks.as_deref());
        let commits = read_commits(clocks.as_deref());
        let seq_base = backend
            .get(Table::Meta, SEQ_BASE_KEY)?
            .map_or(1, |v| read_u64(&v));
        let last_second = backend
            .last_at_or_before(Table::Times, &u64::MAX.to_be_bytes())?
            .map_or(0, |(second, _)| read_u64(&second));
        let mut store = Store {
            log: EventLog::new(Arc::clone(&backend)),
            backend,
            pending: no_writes(),
            unapplied: VecDeque::new(),
            recent_sends: RecentSends::new(client_ids, clock::wall_ms().max(last_index_ms)),
            client_id_table_used: true,
            seq_base,
            last_second,
            commits,
            membership_reads: Default::default(),
            memberships: Default::default(),
        };
        store.load_open_memberships()?;
        store.load_client_ids(client_ids.window_ms)?;
        Ok(store)
    }
}

/// Marks a new backend with [`FORMAT`], upgrades the `meta` table of one of an older format
/// (to format 5, whose tables [`upgrade_tables`] upgrades once they are open), and refuses
/// others; reads and writes the `meta` table only.
pub(super) fn mark_format(backend: &dyn Backend) -> StoreResult<()> {
    let meta = Table::Meta;
    match backend.get(meta, FORMAT_KEY)? {
        None if backend.created() => {
            backend.put(meta, SEQ_BASE_KEY, &1u64.to_be_bytes())?;
            backend.put(meta, FORMAT_KEY, &FORMAT.to_be_bytes())?;
            backend.flush()?;
        }
        Some(version) if [FORMAT, TABLES_FROM].contains(&read_u64(&version)) => {}
        Some(version) if UPGRADES_FROM.contains(&read_u64(&version)) => {
            // Every event so far had a unique timestamp, now its seq: seqs go on above the
            // old clock ceiling. Timestamps hold at it while the wall is behind (that clock
            // ran ahead under load), so they never go back. A backend may recover a prefix of
            // its writes after a crash, so the format is marked last, and an upgrade cut short
            // is done again.
            let old_ceiling = backend
                .get(meta, OLD_CLOCK_KEY)?
                .map_or(0, |v| read_u64(&v));
            let index_ms = backend
                .get(meta, INDEX_TIME_KEY)?
                .map_or(0, |v| read_u64(&v));
            let ceiling = Ceiling {
                seq: old_ceiling,
                time: old_ceiling,
            };
            backend.put(meta, CLOCK_KEY, &clock_record(ceiling, index_ms, 0))?;
            backend.put(meta, SEQ_BASE_KEY, &(old_ceiling + 1).to_be_bytes())?;
            backend.put(meta, FORMAT_KEY, &TABLES_FROM.to_be_bytes())?;
            backend.remove(meta, OLD_CLOCK_KEY)?;
            backend.remove(meta, INDEX_TIME_KEY)?;
            backend.flush()?;
        }
        found => {
            let found = found.map_or(0, |v| read_u64(&v));
            return Err(StoreError::Unsupported(format!(
                "data directory has store format {found}; this parley reads format {FORMAT}"
            )));
        }
    }
    Ok(())
}

/// Upgrades the tables of a format 5 backend to [`FORMAT`] ([`to_6`]) and marks it; nothing
/// for one in [`FORMAT`]. After [`mark_format`], with every table open.
pub(super) fn upgrade_tables(backend: &dyn Backend) -> StoreResult<()> {
    let found = backend.get(Table::Meta, FORMAT_KEY)?.map(|v| read_u64(&v));
    if found == Some(TABLES_FROM) {
        to_6::upgrade(backend)?;
        backend.put(Table::Meta, FORMAT_KEY, &FORMAT.to_be_bytes())?;
        backend.flush()?;
    }
    Ok(())
}

/// The [`CLOCK_KEY`] record.
pub fn clock_record(ceiling: Ceiling, index_ms: u64, commits: u64) -> [u8; 32] {
    let mut record = [0u8; 32];
    record[..8].copy_from_slice(&ceiling.seq.to_be_bytes());
    record[8..16].copy_from_slice(&ceiling.time.to_be_bytes());
    record[16..24].copy_from_slice(&index_ms.to_be_bytes());
    record[24..].copy_from_slice(&commits.to_be_bytes());
    record
}

/// A [`CLOCK_KEY`] record's count of commits; 0 when there is none or it predates the count.
pub fn read_commits(record: Option<&[u8]>) -> u64 {
    record.and_then(|r| r.get(24..32)).map_or(0, read_u64)
}

/// A [`CLOCK_KEY`] record's ceiling and index time; zeros when there is none.
pub fn read_clock_record(record: Option<&[u8]>) -> (Ceiling, u64) {
    let field = |at: usize| record.and_then(|r| r.get(at..at + 8)).map_or(0, read_u64);
    let ceiling = Ceiling {
        seq: field(0),
        time: field(8),
    };
    (ceiling, field(16))
}
