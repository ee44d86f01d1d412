//! Opening a data directory for the server: the store must hold everything its high-water mark
//! ([`super::mark`]) says was durable, and sled's files and the mark must all be there (or none,
//! for a new directory). Otherwise the server refuses to start and says what it found, unless
//! the operator accepts the loss (`--accept-data-loss`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::backend::{Backend, Table};
use super::client_ids::ClientIdLimits;
use super::format::{clock_record, mark_format, read_clock_record, read_commits, CLOCK_KEY};
use super::mark::{self, Mark, MarkWriter};
use super::overlay::Ceiling;
use super::sled_backend::SledBackend;
use super::{Store, StoreError, StoreResult};

/// The sled directory inside a data directory.
pub const STORE_DIR: &str = "db";

/// What to do when the check at open finds a loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnLoss {
    Refuse,
    /// Start anyway: log what was lost, and move the store's clocks up to the mark so that no
    /// seq a client has seen is handed out again.
    Accept,
}

const WHAT_TO_DO: &str = "restore the data directory from a backup (docs/OPERATIONS.md), or \
                          start with --accept-data-loss to serve what is left";

/// The mark's path in `data_dir`.
pub fn mark_path(data_dir: &Path) -> PathBuf {
    data_dir.join(mark::FILE)
}

impl Store {
    /// Opens the store of the data directory `data_dir` (sled in `data_dir/db`), checked against
    /// its high-water mark, and keeps the mark up to date from then on.
    pub fn open_data_dir(
        data_dir: &Path,
        cache_bytes: u64,
        client_ids: ClientIdLimits,
        on_loss: OnLoss,
    ) -> StoreResult<Store> {
        let sled_dir = data_dir.join(STORE_DIR);
        let mark_file = mark_path(data_dir);
        let found = match mark::read(&mark_file) {
            Ok(found) => found,
            Err(err) => refuse_or_warn(on_loss, format!("{err}: it cannot vouch for the store"))?,
        };
        check_parts(&sled_dir, found, on_loss)?;
        let mut backend = open_sled(&sled_dir, cache_bytes)?;
        mark_format(&backend)?;
        backend.open_tables()?;
        let stored = stored_mark(&backend)?;
        match found {
            Some(before) if !stored.covers(&before) => {
                let mut what = format!(
                    "{}: the store's last commit is {} but commit {} was durable before (its \
                     high-water mark, {}): the store lost acknowledged data",
                    sled_dir.display(),
                    stored.commits,
                    before.commits,
                    mark_file.display()
                );
                if !counts_commits(&backend)? {
                    what.push_str(
                        " (or a parley older than the mark wrote the store last: its clocks \
                         carry no commit count; after a downgrade and upgrade, nothing may be lost)",
                    );
                }
                refuse_or_warn::<()>(on_loss, what)?;
                let last = super::check::last_stored_seq(&backend);
                let handed_out = stored.seq.max(before.seq);
                let events = if last < handed_out {
                    format!(
                        "the log ends at seq {last}: any event with a seq from {} to \
                         {handed_out} is lost",
                        last + 1
                    )
                } else {
                    format!("the log ends at seq {last}: no event seq was lost")
                };
                log::warn!(
                    "starting with lost data (--accept-data-loss): commits {} to {} are gone \
                     (every event, user, session and membership they stored); {events}; seqs \
                     go on above {handed_out}",
                    stored.commits + 1,
                    before.commits,
                );
                raise_clocks(&backend, before)?;
            }
            Some(_) => {}
            None if backend.created() => {}
            None => log::info!(
                "{}: no high-water mark yet (a data directory from before it); writing one",
                mark_file.display()
            ),
        }
        let now = stored_mark(&backend)?;
        mark::write(&mark_file, now).map_err(|err| StoreError::Io(Arc::new(err)))?;
        backend.write_marks(MarkWriter::start(mark_file));
        Store::open_on(Arc::new(backend), client_ids)
    }
}

impl Store {
    /// The store's own mark as the backend holds it (what is durable, once the flusher is
    /// idle).
    pub fn stored_mark(&self) -> StoreResult<Mark> {
        stored_mark(&*self.backend)
    }
}

/// `Ok` with a warning when the loss is accepted, the refusal otherwise.
fn refuse_or_warn<T: Default>(on_loss: OnLoss, what: String) -> StoreResult<T> {
    match on_loss {
        OnLoss::Refuse => Err(StoreError::DataLoss(format!("{what}; {WHAT_TO_DO}"))),
        OnLoss::Accept => {
            log::warn!("{what}; starting anyway (--accept-data-loss)");
            Ok(T::default())
        }
    }
}

/// sled's `conf` and data file, and the mark, are all there, or none of them (a new
/// directory). A lost data file would otherwise make sled start an empty store.
fn check_parts(sled_dir: &Path, found: Option<Mark>, on_loss: OnLoss) -> StoreResult<()> {
    let conf = sled_dir.join("conf").is_file();
    let data = sled_dir.join("db").is_file();
    let missing = match (conf, data, found) {
        (_, false, Some(mark)) => Some(format!(
            "sled's data file {} is missing but the high-water mark says commit {} was durable",
            sled_dir.join("db").display(),
            mark.commits
        )),
        (false, true, Some(_)) | (true, false, None) => Some(format!(
            "{} holds only part of a store (sled's `conf` {}, its data file `db` {})",
            sled_dir.display(),
            if conf { "present" } else { "missing" },
            if data { "present" } else { "missing" },
        )),
        _ => None,
    };
    match missing {
        Some(what) => refuse_or_warn(on_loss, what),
        None => Ok(()),
    }
}

/// Opens sled, with a damaged file named as such.
fn open_sled(sled_dir: &Path, cache_bytes: u64) -> StoreResult<SledBackend> {
    SledBackend::open(sled_dir, cache_bytes).map_err(|err| match err {
        StoreError::Corruption(what) => StoreError::DataLoss(format!(
            "{}: the store is damaged (sled found corrupted data {what}); {WHAT_TO_DO}",
            sled_dir.display()
        )),
        other => other,
    })
}

/// The mark the store itself stores: its commit count and seq ceiling.
pub(super) fn stored_mark(backend: &dyn Backend) -> StoreResult<Mark> {
    let clocks = backend.get(Table::Meta, CLOCK_KEY)?;
    Ok(Mark {
        commits: read_commits(clocks.as_deref()),
        seq: read_clock_record(clocks.as_deref()).0.seq,
    })
}

/// Whether the store's clocks record carries the commit count (written by a parley that keeps
/// the mark).
fn counts_commits(backend: &dyn Backend) -> StoreResult<bool> {
    Ok(backend
        .get(Table::Meta, CLOCK_KEY)?
        .is_some_and(|clocks| clocks.len() >= 32))
}

/// Moves the store's clocks up to `mark`, flushed, after an accepted loss.
fn raise_clocks(backend: &dyn Backend, mark: Mark) -> StoreResult<()> {
    let clocks = backend.get(Table::Meta, CLOCK_KEY)?;
    let (ceiling, index_ms) = read_clock_record(clocks.as_deref());
    let raised = Ceiling {
        seq: ceiling.seq.max(mark.seq),
        time: ceiling.time,
    };
    let commits = read_commits(clocks.as_deref()).max(mark.commits);
    backend.put(
        Table::Meta,
        CLOCK_KEY,
        &clock_record(raised, index_ms, commits),
    )?;
    backend.flush()
}

#[cfg(test)]
mod tests;
