//! The store's backend in sled: one tree per table, a batch in one transaction, and sled's
//! quirks (its lock at a quick restart, the segment size a data directory was made with).

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};
use sled::{IVec, Tree};

use super::backend::{is_empty_range, Backend, Direction, Entries, Entry, Table};
use super::error::{StoreError, StoreResult};
use super::mark::{Mark, MarkWriter};
use super::overlay::TickWrites;

/// sled's log segment. sled writes anything bigger than a quarter of a segment (a value, or a
/// whole tree node when it rewrites one) as a file of its own, a "blob": created, synced, and
/// deleted again when the node is next rewritten. A leaf of the log tree holds up to 17 chunks,
/// and at sled's default 512 KiB a busy group's leaf passed the limit, so every rewrite of it
/// became a new file (docs/BENCHMARKS.md, "Changes of 2026-11-25 (second session)"). 2 MiB
/// puts the limit at 512 KiB: 17 chunks of 30 KiB each, a tick of about 350 short messages in
/// one group.
pub const SEGMENT_BYTES: usize = 2 * 1024 * 1024;

pub struct SledBackend {
    /// Behind a lock only so that [`Backend::reopen`] can replace it: sled keeps its first
    /// failed write as an error every later write returns, until the database is opened again.
    /// `None` only after a reopen that failed to open the directory again.
    inner: RwLock<Option<Inner>>,
    dir: PathBuf,
    cache_bytes: u64,
    created: bool,
    /// Where the high-water mark goes once a flush made a batch durable, and the newest
    /// batch's mark, applied and not yet flushed.
    mark: Option<MarkWriter>,
    applied: Mutex<Option<Mark>>,
}

struct Inner {
    db: sled::Db,
    meta: Tree,
    /// In the order of [`Table::ALL`]; empty until [`SledBackend::open_tables`], so that a
    /// directory whose format is refused gets no new trees.
    trees: Vec<Tree>,
}

impl Inner {
    fn open(dir: &Path, cache_bytes: u64) -> StoreResult<Inner> {
        let config = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            .segment_size(segment_size_for(dir)?)
            // The flusher flushes every batch; sled's own timer would only add work.
            .flush_every_ms(None);
        let db = open_when_free(&config)?;
        // sled's default tree and `meta` (opened first by every parley): nothing else yet.
        let meta = db.open_tree(Table::Meta.name())?;
        Ok(Inner {
            db,
            meta,
            trees: Vec::new(),
        })
    }

    fn open_tables(&mut self) -> StoreResult<()> {
        for table in Table::ALL {
            self.trees.push(self.db.open_tree(table.name())?);
        }
        Ok(())
    }

    fn tree(&self, table: Table) -> &Tree {
        match table {
            Table::Meta => &self.meta,
            _ => &self.trees[table as usize],
        }
    }
}

impl SledBackend {
    /// Opens (or creates) the database in `dir` with a page cache of `cache_bytes`, with only
    /// the `meta` table open.
    pub fn open(dir: &Path, cache_bytes: u64) -> StoreResult<SledBackend> {
        let inner = Inner::open(dir, cache_bytes)?;
        let created = inner.db.tree_names().len() <= 2;
        Ok(SledBackend {
            inner: RwLock::new(Some(inner)),
            dir: dir.to_path_buf(),
            cache_bytes,
            created,
            mark: None,
            applied: Mutex::new(None),
        })
    }

    /// Opens (or creates) every table; once the format is known to be this parley's.
    pub fn open_tables(&mut self) -> StoreResult<()> {
        let inner = self
            .inner
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        inner.as_mut().ok_or_else(closed)?.open_tables()
    }

    /// From now on, each flush hands the mark of what it made durable to `writer`.
    pub fn write_marks(&mut self, writer: MarkWriter) {
        self.mark = Some(writer);
    }

    fn applied(&self) -> std::sync::MutexGuard<'_, Option<Mark>> {
        self.applied
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `read` on the open database.
    fn with<T>(&self, read: impl FnOnce(&Inner) -> StoreResult<T>) -> StoreResult<T> {
        // Nothing panics while holding the lock (errors are values).
        let inner = self
            .inner
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        read(inner.as_ref().ok_or_else(closed)?)
    }

    /// A handle on one table (sled's trees are shared handles), for iterators that outlive
    /// the lock.
    fn tree(&self, table: Table) -> StoreResult<Tree> {
        self.with(|inner| Ok(inner.tree(table).clone()))
    }
}

impl Backend for SledBackend {
    fn created(&self) -> bool {
        self.created
    }

    fn apply(&self, ticks: &[Arc<TickWrites>]) -> StoreResult<()> {
        let newest = ticks.last().map(|tick| Mark {
            commits: tick.commits(),
            seq: tick.ceiling().seq,
        });
        self.with(|inner| {
            inner.trees[..]
                .transaction(|trees| {
                    TickWrites::each_write(ticks, |table, key, value| {
                        trees[table as usize].set(key, value);
                    });
                    Ok::<(), ConflictableTransactionError<()>>(())
                })
                .map_err(|err| match err {
                    TransactionError::Storage(err) => err.into(),
                    TransactionError::Abort(()) => {
                        StoreError::Bug("the commit transaction aborted".into())
                    }
                })
        })?;
        if newest.is_some() {
            *self.applied() = newest;
        }
        Ok(())
    }

    fn flush(&self) -> StoreResult<()> {
        self.with(|inner| Ok(inner.db.flush().map(drop)?))?;
        if let Some(writer) = &self.mark {
            if let Some(mark) = self.applied().take() {
                writer.durable(mark);
            }
        }
        Ok(())
    }

    fn reopen(&self) -> StoreResult<()> {
        // Opening writes a new log segment; with less room than that free the old instance
        // stays, still answering reads.
        let free = free_bytes(&self.dir)?;
        let needed = 2 * SEGMENT_BYTES as u64;
        if free < needed {
            return Err(StoreError::Io(Arc::new(std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                format!(
                    "{}: {free} bytes free, {needed} needed to open the store again",
                    self.dir.display()
                ),
            ))));
        }
        let mut inner = self
            .inner
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let tables_open = inner.as_ref().is_some_and(|inner| !inner.trees.is_empty());
        // The old instance is closed first: sled locks its files. (After its failed write it
        // does no more I/O when dropped.)
        *inner = None;
        let mut fresh = Inner::open(&self.dir, self.cache_bytes)?;
        if tables_open {
            fresh.open_tables()?;
        }
        *inner = Some(fresh);
        Ok(())
    }

    fn put(&self, table: Table, key: &[u8], value: &[u8]) -> StoreResult<()> {
        self.with(|inner| Ok(inner.tree(table).insert(key, value).map(drop)?))
    }

    fn remove(&self, table: Table, key: &[u8]) -> StoreResult<()> {
        self.with(|inner| Ok(inner.tree(table).remove(key).map(drop)?))
    }

    fn get(&self, table: Table, key: &[u8]) -> StoreResult<Option<Vec<u8>>> {
        self.with(|inner| Ok(inner.tree(table).get(key)?.map(|value| value.to_vec())))
    }

    fn last_at_or_before(&self, table: Table, key: &[u8]) -> StoreResult<Option<Entry>> {
        self.with(|inner| {
            let found = inner.tree(table).range(..=key).next_back().transpose()?;
            Ok(found.map(owned))
        })
    }

    fn range<'a>(
        &'a self,
        table: Table,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
        direction: Direction,
    ) -> Entries<'a> {
        if is_empty_range(from, to) {
            return Box::new(std::iter::empty());
        }
        let tree = match self.tree(table) {
            Ok(tree) => tree,
            Err(err) => return Box::new(std::iter::once(Err(err))),
        };
        let iter = tree.range::<&[u8], _>((from, to));
        match direction {
            Direction::Forward => Box::new(iter.map(owned_entry)),
            Direction::Backward => Box::new(iter.rev().map(owned_entry)),
        }
    }

    fn scan_prefix<'a>(&'a self, table: Table, prefix: &[u8]) -> Entries<'a> {
        match self.tree(table) {
            Ok(tree) => Box::new(tree.scan_prefix(prefix).map(owned_entry)),
            Err(err) => Box::new(std::iter::once(Err(err))),
        }
    }

    fn size_on_disk(&self) -> StoreResult<u64> {
        self.with(|inner| Ok(inner.db.size_on_disk()?))
    }
}

/// The error of a read after a reopen that failed to open the directory again.
fn closed() -> StoreError {
    StoreError::Io(Arc::new(std::io::Error::other(
        "the store is closed: opening it again after a failed write failed",
    )))
}

/// Bytes free to an unprivileged writer on the file system holding `dir`.
fn free_bytes(dir: &Path) -> StoreResult<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|err| StoreError::Io(Arc::new(std::io::Error::other(err))))?;
    let mut stats = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is a valid C string and `stats` a buffer statvfs fills on success.
    let result = unsafe { libc::statvfs(path.as_ptr(), stats.as_mut_ptr()) };
    if result != 0 {
        return Err(StoreError::Io(Arc::new(std::io::Error::last_os_error())));
    }
    // SAFETY: statvfs succeeded, so it filled `stats`.
    let stats = unsafe { stats.assume_init() };
    // The fields are narrower than u64 on some targets.
    #[allow(clippy::useless_conversion)]
    let (blocks, block_size) = (u64::from(stats.f_bavail), u64::from(stats.f_frsize));
    Ok(blocks * block_size)
}

fn owned((key, value): (IVec, IVec)) -> Entry {
    (key.to_vec(), value.to_vec())
}

fn owned_entry(entry: sled::Result<(IVec, IVec)>) -> StoreResult<Entry> {
    Ok(owned(entry?))
}

impl From<sled::Error> for StoreError {
    fn from(err: sled::Error) -> Self {
        match err {
            sled::Error::Io(err) => StoreError::Io(Arc::new(err)),
            sled::Error::Corruption { at, bt } => {
                StoreError::Corruption(format!("at file offset {at:?} backtrace {bt:?}"))
            }
            sled::Error::Unsupported(what) => StoreError::Unsupported(what),
            sled::Error::ReportableBug(what) => StoreError::Bug(what),
            sled::Error::CollectionNotFound(name) => {
                StoreError::Bug(format!("collection {name:?} does not exist"))
            }
        }
    }
}

/// The segment size to open `dir` with: the one it was created with, which sled's `conf` file
/// names, or [`SEGMENT_BYTES`] for a new directory. sled refuses another size when `conf` names
/// one; when `conf` is lost it takes any size (and writes it down for good), and data written
/// with another reads as garbage. So a data file without `conf` is refused, before sled runs.
fn segment_size_for(dir: &Path) -> StoreResult<usize> {
    if let Some(size) = stored_segment_size(dir) {
        return Ok(size);
    }
    match std::fs::metadata(dir.join("db")) {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(SEGMENT_BYTES),
        Ok(data) if data.is_file() && data.len() == 0 => Ok(SEGMENT_BYTES),
        _ => Err(StoreError::Unsupported(format!(
            "{}: sled's data file is there but its `conf` file, which says how the data is laid \
             out, is missing or unreadable; restore `conf` beside `db` (it names \
             `segment_size: 524288` for data directories made by parley before 2026-11-25, \
             `segment_size: {SEGMENT_BYTES}` for later ones)",
            dir.display()
        ))),
    }
}

/// The segment size in sled's `conf` file, if it is there and names one.
pub fn stored_segment_size(dir: &Path) -> Option<usize> {
    let conf = std::fs::read(dir.join("conf")).ok()?;
    String::from_utf8_lossy(&conf)
        .lines()
        .find_map(|line| line.strip_prefix("segment_size: "))
        .and_then(|size| size.trim().parse().ok())
}

/// Opens the database, waiting up to 5 s for its lock: a server restarted right after its
/// previous instance was killed may start while the kernel is still closing that one's files.
pub fn open_when_free(config: &sled::Config) -> sled::Result<sled::Db> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match config.open() {
            // sled reports a held lock as a plain `Other` error; its text is the only sign.
            Err(sled::Error::Io(err))
                if err.to_string().contains("could not acquire lock")
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            result => return result,
        }
    }
}
