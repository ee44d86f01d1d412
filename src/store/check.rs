//! `parley check DIR`: verifies a data directory offline. Opens the store (taking sled's lock,
//! so never under a running server), walks every table and every chunk of the event log,
//! decodes each record and entry, compares the store with its high-water mark, and counts what
//! it holds. It writes nothing of parley's (no format upgrade, no mark); sled may tidy its own
//! log at open, as it does at every start.

use std::fmt;
use std::ops::Bound;
use std::path::Path;

use serde::de::DeserializeOwned;

use super::backend::{Backend, Direction, Table};
use super::format::{read_clock_record, read_commits, CLOCK_KEY, FORMAT, FORMAT_KEY};
use super::integrity::{mark_path, STORE_DIR};
use super::log::entry::decode_entry;
use super::mark::{self, Mark};
use super::memberships::{split_member_key, ClosedInterval, MemberState};
use super::records::{GroupRecord, SessionRecord, UserRecord};
use super::sled_backend::SledBackend;
use super::{read_u64, StoreError, StoreResult};

/// What a check found: the counts, and every problem (none when the directory is whole).
#[derive(Debug, Default)]
pub struct Report {
    pub format: u64,
    pub commits: u64,
    pub seq_ceiling: u64,
    pub mark: Option<Mark>,
    pub users: u64,
    pub sessions: u64,
    pub groups: u64,
    /// Current memberships (the `members` table's members).
    pub memberships: u64,
    /// Membership intervals that ended, and users removed by a group's owner.
    pub intervals: u64,
    pub removed: u64,
    pub receipts: u64,
    pub events: u64,
    pub messages: u64,
    /// The highest seq of any stored event or ack.
    pub last_seq: u64,
    pub problems: Vec<String>,
}

impl Report {
    pub fn is_whole(&self) -> bool {
        self.problems.is_empty()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "store: format {}, {} commits, seq ceiling {}",
            self.format, self.commits, self.seq_ceiling
        )?;
        match self.mark {
            Some(mark) => writeln!(f, "high-water mark: commit {}", mark.commits)?,
            None => writeln!(f, "high-water mark: none")?,
        }
        writeln!(
            f,
            "users {}, sessions {}, groups {}, memberships {}, receipts {}, events {}, \
             messages {}, last seq {}",
            self.users,
            self.sessions,
            self.groups,
            self.memberships,
            self.receipts,
            self.events,
            self.messages,
            self.last_seq
        )?;
        writeln!(
            f,
            "memberships ended {}, users removed from groups {}",
            self.intervals, self.removed
        )?;
        for problem in &self.problems {
            writeln!(f, "problem: {problem}")?;
        }
        Ok(())
    }
}

/// Checks the data directory `data_dir`. `Err` when it cannot be opened at all (missing, held
/// by a running server, refused by sled); problems in what it holds are in the report.
pub fn check(data_dir: &Path) -> StoreResult<Report> {
    let sled_dir = data_dir.join(STORE_DIR);
    if !sled_dir.join("conf").is_file() || !sled_dir.join("db").is_file() {
        return Err(StoreError::DataLoss(format!(
            "{}: no store (sled's `conf` and `db` files) in it",
            data_dir.display()
        )));
    }
    let mut report = Report::default();
    match mark::read(&mark_path(data_dir)) {
        Ok(found) => report.mark = found,
        Err(err) => report.problems.push(err),
    }
    let mut backend = SledBackend::open(&sled_dir, 16 * 1024 * 1024).map_err(|err| match err {
        StoreError::Io(io) if io.to_string().contains("could not acquire lock") => {
            StoreError::DataLoss(format!(
                "{} is in use (sled's lock): stop the server first, or use `parley backup`",
                sled_dir.display()
            ))
        }
        other => other,
    })?;
    report.format = backend
        .get(Table::Meta, FORMAT_KEY)?
        .map_or(0, |v| read_u64(&v));
    if report.format != FORMAT {
        report.problems.push(format!(
            "store format {} (this parley reads {FORMAT}, and upgrades 2 to 5 at start)",
            report.format
        ));
        return Ok(report);
    }
    backend.open_tables()?;
    let clocks = backend.get(Table::Meta, CLOCK_KEY)?;
    report.commits = read_commits(clocks.as_deref());
    report.seq_ceiling = read_clock_record(clocks.as_deref()).0.seq;
    if let Some(mark) = report.mark {
        if report.commits < mark.commits {
            report.problems.push(format!(
                "the store's last commit is {} but commit {} was durable before: the store lost \
                 acknowledged data",
                report.commits, mark.commits
            ));
        }
    }
    report.users = decode_all::<UserRecord>(&backend, Table::Users, &mut report.problems);
    report.sessions = decode_all::<SessionRecord>(&backend, Table::Sessions, &mut report.problems);
    report.groups = decode_all::<GroupRecord>(&backend, Table::Groups, &mut report.problems);
    check_memberships(&backend, &mut report);
    report.receipts = count(&backend, Table::Receipts, &mut report.problems);
    // A deleted account keeps its record and frees its names (their entries emptied, or taken
    // by a later account): each name of a live account is indexed once.
    let live_users = count_live_users(&backend);
    for table in [Table::Usernames, Table::Emails] {
        let n = count_taken(&backend, table, &mut report.problems);
        if n != live_users {
            report
                .problems
                .push(format!("{} {} for {} users", n, table.name(), live_users));
        }
    }
    walk_log(&backend, &mut report);
    if report.last_seq > report.seq_ceiling && report.commits > 0 {
        report.problems.push(format!(
            "an event has seq {}, above the stored seq ceiling {}",
            report.last_seq, report.seq_ceiling
        ));
    }
    Ok(report)
}

/// The membership tables: each `members` record of a stored group and decodable, each
/// `intervals` key well formed and not ending before it begins, format 5's table empty.
fn check_memberships(backend: &SledBackend, report: &mut Report) {
    let problems = &mut report.problems;
    for entry in all(backend, Table::Members) {
        let (key, value) = match entry {
            Ok(entry) => entry,
            Err(err) => {
                problems.push(format!("members: {err}"));
                break;
            }
        };
        let (Some(group), Some(_)) = split_member_key(&key) else {
            problems.push(format!("members: a key of {} bytes", key.len()));
            continue;
        };
        match MemberState::decode(&value) {
            Some(MemberState::Member { .. }) => report.memberships += 1,
            Some(MemberState::Removed { .. }) => report.removed += 1,
            Some(MemberState::Gone) => {}
            None => problems.push(format!("members: record {key:02x?} does not decode")),
        }
        if !matches!(backend.get(Table::Groups, group.as_bytes()), Ok(Some(_))) {
            problems.push(format!("members: {key:02x?} is of a group with no record"));
        }
    }
    for entry in all(backend, Table::Intervals) {
        match entry {
            Ok((key, _)) => match ClosedInterval::decode(&key) {
                Some((_, interval)) if interval.from <= interval.to => report.intervals += 1,
                _ => problems.push(format!("intervals: key {key:02x?} is not an interval")),
            },
            Err(err) => {
                problems.push(format!("intervals: {err}"));
                break;
            }
        }
    }
    let old = count(backend, Table::Memberships, problems);
    if old > 0 {
        problems.push(format!(
            "memberships: {old} records of format 5 left after the upgrade to 6"
        ));
    }
}

fn all(
    backend: &SledBackend,
    table: Table,
) -> impl Iterator<Item = StoreResult<super::backend::Entry>> + '_ {
    backend.range(
        table,
        Bound::Unbounded,
        Bound::Unbounded,
        Direction::Forward,
    )
}

/// Counts `table`'s records, each of which must decode as a `T`.
fn decode_all<T: DeserializeOwned>(
    backend: &SledBackend,
    table: Table,
    problems: &mut Vec<String>,
) -> u64 {
    let mut n = 0;
    for entry in all(backend, table) {
        match entry {
            Ok((key, value)) => {
                if serde_json::from_slice::<T>(&value).is_err() {
                    problems.push(format!(
                        "{}: record {key:02x?} does not decode",
                        table.name()
                    ));
                }
                n += 1;
            }
            Err(err) => {
                problems.push(format!("{}: {err}", table.name()));
                break;
            }
        }
    }
    n
}

fn count(backend: &SledBackend, table: Table, problems: &mut Vec<String>) -> u64 {
    let mut n = 0;
    for entry in all(backend, table) {
        if let Err(err) = entry {
            problems.push(format!("{}: {err}", table.name()));
            break;
        }
        n += 1;
    }
    n
}

/// Entries of a unique-name index that name an account (a freed name's entry is empty).
fn count_taken(backend: &SledBackend, table: Table, problems: &mut Vec<String>) -> u64 {
    let mut n = 0;
    for entry in all(backend, table) {
        match entry {
            Ok((_, value)) => n += u64::from(!value.is_empty()),
            Err(err) => {
                problems.push(format!("{}: {err}", table.name()));
                break;
            }
        }
    }
    n
}

/// Accounts not deleted (records that do not decode are reported by `decode_all`).
fn count_live_users(backend: &SledBackend) -> u64 {
    all(backend, Table::Users)
        .filter_map(Result::ok)
        .filter_map(|(_, value)| serde_json::from_slice::<UserRecord>(&value).ok())
        .filter(|user| !user.deleted)
        .count() as u64
}

/// The highest seq of any event the store's log holds: what an accepted loss left.
pub(super) fn last_stored_seq(backend: &SledBackend) -> u64 {
    let mut report = Report::default();
    walk_log(backend, &mut report);
    report.last_seq
}

/// Decodes every entry of every chunk: each chunk decodes to its end, its seqs increase from
/// the one in its key, and each stream's chunks follow each other.
fn walk_log(backend: &SledBackend, report: &mut Report) {
    let mut previous: Option<(Vec<u8>, u64)> = None;
    for entry in all(backend, Table::Log) {
        let (key, chunk) = match entry {
            Ok(entry) => entry,
            Err(err) => {
                report.problems.push(format!("log: {err}"));
                return;
            }
        };
        if key.len() != 24 {
            report
                .problems
                .push(format!("log: a chunk key of {} bytes", key.len()));
            continue;
        }
        let (stream, first) = (key[..16].to_vec(), read_u64(&key[16..]));
        let mut last = match &previous {
            Some((s, last)) if *s == stream => *last,
            _ => 0,
        };
        if first <= last {
            report.problems.push(format!(
                "log: stream {stream:02x?} has a chunk from seq {first} after seq {last}"
            ));
        }
        let mut pos = 0;
        while pos < chunk.len() {
            let Some(entry) = decode_entry(&chunk, &mut pos) else {
                report.problems.push(format!(
                    "log: stream {stream:02x?}, chunk from seq {first}: entry at byte {pos} \
                     does not decode"
                ));
                break;
            };
            if entry.seq < first || entry.seq <= last {
                report.problems.push(format!(
                    "log: stream {stream:02x?}: seq {} out of order",
                    entry.seq
                ));
            }
            last = entry.seq;
            report.events += 1;
            if entry.message.is_some() {
                report.messages += 1;
            }
            let top = entry.ack.map_or(entry.seq, |ack| ack.seq.max(entry.seq));
            report.last_seq = report.last_seq.max(top);
        }
        previous = Some((stream, last));
    }
}

#[cfg(test)]
mod tests;
