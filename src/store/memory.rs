//! A backend in memory, for unit tests: one ordered map per table, behind a lock so that the
//! flusher thread can share it. "Durable" means kept for as long as the value lives, so a test
//! reopens a store by opening another on the same backend.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use super::backend::{is_empty_range, Backend, Direction, Entries, Entry, Table};
use super::overlay::TickWrites;
use super::StoreResult;

type Tables = Vec<BTreeMap<Vec<u8>, Vec<u8>>>;

pub struct MemoryBackend {
    tables: Mutex<Tables>,
}

impl Default for MemoryBackend {
    fn default() -> Self {
        MemoryBackend {
            tables: Mutex::new(vec![BTreeMap::new(); Table::ALL.len()]),
        }
    }
}

impl MemoryBackend {
    fn lock(&self) -> MutexGuard<'_, Tables> {
        self.tables.lock().expect("no test panics holding it")
    }

    /// The entries of `table` between the bounds, copied out so that no lock outlives the call.
    fn collect(
        &self,
        table: Table,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
        direction: Direction,
    ) -> Vec<Entry> {
        if is_empty_range(from, to) {
            return Vec::new();
        }
        let tables = self.lock();
        let range = tables[table as usize].range::<[u8], _>((from, to));
        let copy = |(key, value): (&Vec<u8>, &Vec<u8>)| (key.clone(), value.clone());
        match direction {
            Direction::Forward => range.map(copy).collect(),
            Direction::Backward => range.rev().map(copy).collect(),
        }
    }
}

impl Backend for MemoryBackend {
    fn created(&self) -> bool {
        let tables = self.lock();
        Table::ALL
            .iter()
            .all(|&table| table == Table::Meta || tables[table as usize].is_empty())
    }

    fn apply(&self, ticks: &[Arc<TickWrites>]) -> StoreResult<()> {
        let mut tables = self.lock();
        TickWrites::each_write(ticks, |table, key, value| {
            tables[table as usize].insert(key.to_vec(), value.to_vec());
        });
        Ok(())
    }

    fn flush(&self) -> StoreResult<()> {
        Ok(())
    }

    fn put(&self, table: Table, key: &[u8], value: &[u8]) -> StoreResult<()> {
        self.lock()[table as usize].insert(key.to_vec(), value.to_vec());
        Ok(())
    }

    fn remove(&self, table: Table, key: &[u8]) -> StoreResult<()> {
        self.lock()[table as usize].remove(key);
        Ok(())
    }

    fn get(&self, table: Table, key: &[u8]) -> StoreResult<Option<Vec<u8>>> {
        Ok(self.lock()[table as usize].get(key).cloned())
    }

    fn last_at_or_before(&self, table: Table, key: &[u8]) -> StoreResult<Option<Entry>> {
        let tables = self.lock();
        let before = tables[table as usize]
            .range::<[u8], _>((Bound::Unbounded, Bound::Included(key)))
            .next_back();
        Ok(before.map(|(key, value)| (key.clone(), value.clone())))
    }

    fn range<'a>(
        &'a self,
        table: Table,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
        direction: Direction,
    ) -> Entries<'a> {
        Box::new(self.collect(table, from, to, direction).into_iter().map(Ok))
    }

    fn scan_prefix<'a>(&'a self, table: Table, prefix: &[u8]) -> Entries<'a> {
        let mut entries = self.collect(
            table,
            Bound::Included(prefix),
            Bound::Unbounded,
            Direction::Forward,
        );
        entries.retain(|(key, _)| key.starts_with(prefix));
        Box::new(entries.into_iter().map(Ok))
    }

    fn size_on_disk(&self) -> StoreResult<u64> {
        let tables = self.lock();
        let bytes = tables
            .iter()
            .flatten()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>();
        Ok(bytes as u64)
    }
}
