//! The high-water mark: a small file beside the store (`DIR/durable`, outside sled) saying how
//! far the store had got when it was last known durable: its commit count and seq ceiling.
//!
//! sled recovers its log up to the first damaged record and silently drops everything after it
//! (a flipped bit, a truncation, garbage), and recreates an empty store when its data file is
//! gone. Either way the store then reads as an older, smaller one. The mark lives outside sled,
//! so at open a store behind its mark is known to have lost acknowledged data, and parley refuses
//! to serve from it ([`super::integrity`]).
//!
//! The mark is written after a flush, by a thread of its own at a low rate (never on the loop,
//! never in the way of the flush an ack waits for), to a temporary file that is synced and
//! renamed over the old one: a crash leaves the old mark or the new one, never half of one. It
//! may lag the store by the writer's interval, never run ahead of it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The mark's file name in the data directory.
pub const FILE: &str = "durable";
const MAGIC: &str = "parley-durable 1";
/// The least time between two writes of the mark: each costs a sync of its own.
const INTERVAL: Duration = Duration::from_millis(100);

/// How far a store had got: commits sealed since it was created, and its seq ceiling (no seq
/// above it had left the server; after an accepted loss, seqs go on above it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Mark {
    pub commits: u64,
    pub seq: u64,
}

impl Mark {
    /// Whether a store at `self` holds everything a store at `other` held: it has sealed at
    /// least as many commits. (Not the seq: a graceful stop stores the last seq handed out, below
    /// the ceiling the commits before it leased.)
    pub fn covers(&self, other: &Mark) -> bool {
        self.commits >= other.commits
    }

    fn text(&self) -> String {
        let body = format!("{MAGIC}\ncommits {}\nseq {}\n", self.commits, self.seq);
        let sum = fnv1a(body.as_bytes());
        format!("{body}check {sum:016x}\n")
    }

    fn parse(text: &str) -> Option<Mark> {
        let (body, check) = text.rsplit_once("check ")?;
        let sum = u64::from_str_radix(check.trim_end_matches('\n'), 16).ok()?;
        if sum != fnv1a(body.as_bytes()) {
            return None;
        }
        let mut lines = body.lines();
        if lines.next()? != MAGIC {
            return None;
        }
        let mut field = |name: &str| lines.next()?.strip_prefix(name)?.parse::<u64>().ok();
        let commits = field("commits ")?;
        let seq = field("seq ")?;
        Some(Mark { commits, seq })
    }
}

/// FNV-1a, 64 bits: enough to tell a torn or garbled mark from a whole one.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The mark at `path`: `Ok(None)` when there is none, `Err` with what is wrong when the file is
/// there but not a whole mark.
pub fn read(path: &Path) -> Result<Option<Mark>, String> {
    match std::fs::read(path) {
        Ok(bytes) => std::str::from_utf8(&bytes)
            .ok()
            .and_then(Mark::parse)
            .map(Some)
            .ok_or_else(|| format!("{} is not a valid high-water mark", path.display())),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(format!("{}: {err}", path.display())),
    }
}

/// Writes `mark` to `path` whole: a synced temporary file renamed over the old one, then the
/// directory synced so the rename itself survives a power loss.
pub fn write(path: &Path, mark: Mark) -> std::io::Result<()> {
    let temporary = path.with_extension("tmp");
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(mark.text().as_bytes())?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temporary, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[derive(Default)]
struct State {
    /// The newest durable mark not yet written.
    pending: Option<Mark>,
    stopping: bool,
}

type Shared = super::handoff::Handoff<State>;

/// The thread that writes the mark: [`MarkWriter::durable`] hands it the newest durable mark,
/// which it writes at most once per [`INTERVAL`] (the newest one then), and once more when
/// dropped, so a graceful stop leaves an exact mark.
pub struct MarkWriter {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl MarkWriter {
    pub fn start(path: PathBuf) -> MarkWriter {
        let shared = Arc::new(Shared::default());
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("parley-mark".into())
            .spawn(move || write_marks(&thread_shared, &path))
            .expect("spawning the mark writer");
        MarkWriter {
            shared,
            thread: Some(thread),
        }
    }

    /// The store is durable up to `mark`.
    pub fn durable(&self, mark: Mark) {
        let mut state = self.shared.lock();
        if state.pending.is_none_or(|pending| !pending.covers(&mark)) {
            state.pending = Some(mark);
        }
        drop(state);
        self.shared.changed.notify_all();
    }
}

impl Drop for MarkWriter {
    fn drop(&mut self) {
        self.shared.lock().stopping = true;
        self.shared.changed.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn write_marks(shared: &Shared, path: &Path) {
    let mut last_write: Option<Instant> = None;
    let mut state = shared.lock();
    loop {
        let due = last_write.map(|at| at + INTERVAL);
        let waiting = due.is_some_and(|due| Instant::now() < due) && !state.stopping;
        if state.pending.is_none() || waiting {
            if state.stopping && state.pending.is_none() {
                return;
            }
            state = match due.filter(|_| waiting) {
                Some(due) => {
                    let left = due.saturating_duration_since(Instant::now());
                    match shared.changed.wait_timeout(state, left) {
                        Ok((state, _)) => state,
                        Err(poisoned) => poisoned.into_inner().0,
                    }
                }
                None => shared
                    .changed
                    .wait(state)
                    .unwrap_or_else(|poisoned| poisoned.into_inner()),
            };
            continue;
        }
        let Some(mark) = state.pending.take() else {
            continue;
        };
        drop(state);
        if let Err(err) = write(path, mark) {
            // The store itself is fine; only the next start's check is weaker until a write
            // succeeds.
            log::warn!("cannot write the high-water mark {}: {err}", path.display());
        }
        last_write = Some(Instant::now());
        state = shared.lock();
    }
}

#[cfg(test)]
mod tests;
