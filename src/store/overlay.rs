//! The store's overlay in memory: this tick's writes, and the sealed ticks the flusher has not
//! yet applied to the backend. Reads see both, newest first, before the backend.
//!
//! At the end of a tick [`Store::write`] seals the tick's writes into a [`TickWrites`], which
//! the flusher thread applies to the backend in one batch and flushes: a crash keeps a whole
//! tick or none of it, so no index, receipt or client id can outlive the events it refers to.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use uuid::Uuid;

use super::backend::Table;
use super::format::{clock_record, read_clock_record, CLOCK_KEY};
use super::log::{MemoryChunks, PendingChunk};
use super::{flusher, Store, StoreResult};
use crate::idmap::IdMap;
use crate::priority::Helpers;

/// One tick's writes, per table of records, per key.
pub type TableWrites = Vec<HashMap<Vec<u8>, Vec<u8>>>;

/// One tick's writes, sealed by [`Store::write`] and applied by the backend.
pub struct TickWrites {
    commit: u64,
    /// One map per table of records, in the order of [`Table::ALL`].
    pub(super) tables: TableWrites,
    pub(super) chunks: IdMap<PendingChunk>,
    /// Chunks of earlier ticks rewritten by edits and deletes (see [`super::log::rewrite`]),
    /// by key: written after `chunks`, so a rewrite wins over its chunk in one batch.
    pub(super) rewrites: Vec<([u8; 24], Arc<[u8]>)>,
    ceiling: Ceiling,
    /// The retry index's time (wall-clock ms) when the tick was sealed.
    index_ms: u64,
    /// Commits sealed since the store was created, this one included.
    commits: u64,
}

/// What a commit stores of the clock: no seq above `seq` has left the server, and `time` is
/// the last timestamp handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ceiling {
    pub seq: u64,
    pub time: u64,
}

impl TickWrites {
    /// The loop's number for this commit.
    pub fn commit(&self) -> u64 {
        self.commit
    }

    pub fn ceiling(&self) -> Ceiling {
        self.ceiling
    }

    /// Commits sealed since the store was created, this one included.
    pub fn commits(&self) -> u64 {
        self.commits
    }

    /// Calls `write` with every key and value `ticks` store, oldest tick first, borrowed: a
    /// backend copies each once, into its batch. The newest tick's clocks come last, once (the
    /// loop never lowers them, so theirs are the ones that count).
    pub fn each_write(ticks: &[Arc<TickWrites>], mut write: impl FnMut(Table, &[u8], &[u8])) {
        for tick in ticks {
            for (table, writes) in Table::ALL.into_iter().zip(&tick.tables) {
                for (key, value) in writes {
                    write(table, key, value);
                }
            }
            for (stream, chunk) in &tick.chunks {
                write(Table::Log, &chunk.key(*stream), &chunk.bytes);
            }
            for (key, bytes) in &tick.rewrites {
                write(Table::Log, key, bytes);
            }
        }
        if let Some(newest) = ticks.last() {
            let clocks = clock_record(newest.ceiling, newest.index_ms, newest.commits);
            write(Table::Meta, CLOCK_KEY, &clocks);
        }
    }
}

/// An empty set of writes, one map per table of records.
pub(super) fn no_writes() -> TableWrites {
    vec![HashMap::new(); Table::RECORDS]
}

impl Store {
    /// Whether this tick wrote anything that [`Store::write`] must seal.
    pub fn has_pending(&self) -> bool {
        self.pending.iter().any(|table| !table.is_empty()) || self.log.has_pending()
    }

    /// Seals everything written since the last seal as commit number `commit`, with the clock's
    /// ceiling, so that seqs are never handed out twice and timestamps keep their order across
    /// restarts. The flusher applies and flushes it; reads see it meanwhile.
    pub fn write(&mut self, commit: u64, ceiling: Ceiling) -> Arc<TickWrites> {
        self.commits += 1;
        let tick = Arc::new(TickWrites {
            commit,
            tables: std::mem::replace(&mut self.pending, no_writes()),
            chunks: self.log.take_pending(),
            rewrites: self.log.take_rewrites(commit),
            ceiling,
            index_ms: self.recent_sends.now(),
            commits: self.commits,
        });
        self.unapplied.push_back(Arc::clone(&tick));
        tick
    }

    /// Drops the sealed ticks up to commit `durable`: the flusher has applied them.
    pub fn forget_applied(&mut self, durable: u64) {
        while self
            .unapplied
            .front()
            .is_some_and(|tick| tick.commit <= durable)
        {
            self.unapplied.pop_front();
        }
        self.log.forget_rewrites(durable);
    }

    /// Applies and flushes everything on the calling thread (at shutdown, when the flusher is
    /// done, and in tools and tests).
    pub fn commit(&mut self, ceiling: Ceiling) -> StoreResult<()> {
        let tick = self.write(0, ceiling);
        let ticks: Vec<_> = self.unapplied.drain(..).collect();
        debug_assert!(Arc::ptr_eq(&tick, ticks.last().expect("just sealed")));
        self.backend.apply(&ticks)?;
        self.log.forget_rewrites(u64::MAX);
        self.backend.flush()
    }

    /// Starts the thread that applies and flushes sealed ticks, off the loop thread.
    pub fn start_flusher(
        &self,
        helpers: Arc<Helpers>,
        notify: impl Fn() + Send + 'static,
    ) -> flusher::Flusher {
        flusher::Flusher::start(Arc::clone(&self.backend), helpers, notify)
    }

    /// The clock as the last commit left it: no seq above its `seq` left the server before
    /// the previous shutdown or crash, and `time` was the last timestamp.
    pub fn ceiling(&self) -> StoreResult<Ceiling> {
        let record = self.get(Table::Meta, CLOCK_KEY)?;
        Ok(read_clock_record(record.as_deref()).0)
    }

    pub fn size_on_disk(&self) -> StoreResult<u64> {
        self.backend.size_on_disk()
    }

    /// A record as this tick sees it: written this tick, or by a tick not yet applied, or
    /// stored.
    pub(super) fn get(&self, table: Table, key: &[u8]) -> StoreResult<Option<Cow<'_, [u8]>>> {
        let newest = std::iter::once(&self.pending[table as usize])
            .chain(
                self.unapplied
                    .iter()
                    .rev()
                    .map(|tick| &tick.tables[table as usize]),
            )
            .find_map(|writes| writes.get(key));
        match newest {
            Some(value) => Ok(Some(Cow::Borrowed(value))),
            None => Ok(self.backend.get(table, key)?.map(Cow::Owned)),
        }
    }

    /// Whether user `id`'s record was written by this tick or by a sealed tick not yet
    /// forgotten (the loop forgets a tick once its commit is durable): a read of it may show
    /// what a crash would lose. For answers served while the store cannot write (a login).
    pub fn user_in_memory(&self, id: Uuid) -> bool {
        let table = Table::Users as usize;
        std::iter::once(&self.pending[table])
            .chain(self.unapplied.iter().map(|tick| &tick.tables[table]))
            .any(|writes| writes.contains_key(id.as_bytes().as_slice()))
    }

    /// `stream`'s chunks in sealed ticks not yet applied, oldest first.
    pub(super) fn memory_chunks(&self, stream: Uuid) -> MemoryChunks<'_> {
        self.unapplied
            .iter()
            .filter_map(|tick| tick.chunks.get(&stream))
            .map(|chunk| (chunk.first_seq, chunk.bytes.as_slice()))
            .collect()
    }

    /// The newest record of `table` with a key at or before `key`, as this tick sees it.
    pub(super) fn last_at_or_before(
        &self,
        table: Table,
        key: &[u8],
    ) -> StoreResult<Option<Cow<'_, [u8]>>> {
        let stored = self.backend.last_at_or_before(table, key)?;
        let in_memory = self
            .unapplied
            .iter()
            .map(|tick| &tick.tables[table as usize])
            .chain(std::iter::once(&self.pending[table as usize]))
            .flat_map(|writes| writes.iter())
            .filter(|(k, _)| k.as_slice() <= key)
            .max_by(|a, b| a.0.cmp(b.0));
        Ok(match (stored, in_memory) {
            (Some((k, v)), Some((mk, _))) if k >= *mk => Some(Cow::Owned(v)),
            (_, Some((_, v))) => Some(Cow::Borrowed(v)),
            (stored, None) => stored.map(|(_, v)| Cow::Owned(v)),
        })
    }

    pub(super) fn put(&mut self, table: Table, key: impl Into<Vec<u8>>, value: Vec<u8>) {
        self.pending[table as usize].insert(key.into(), value);
    }
}
