//! Everything durable, in sled: users, sessions, groups, memberships and the event log.
//!
//! The event log ([`log`]) keeps one stream per group (messages, group events, and each sender's
//! ack, visible to the sender only) and one per user (receipts, the 70 a joiner gets); a message
//! is written once whatever the group size. A sync merges the user's stream with the streams of
//! the groups they belonged to, each bounded by the membership intervals, so its cost follows
//! what it returns plus the user's groups. A tick's writes are sealed together by
//! [`Store::write`]; the [`flusher`] thread puts each batch of sealed ticks into sled in one
//! transaction and flushes it, off the loop thread, and acknowledgements wait for it.

pub mod client_ids;
pub mod flusher;
pub mod log;
pub mod message_id;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};
use sled::{IVec, Tree};
use uuid::Uuid;

pub use self::log::{Audience, MessageParts};
use self::log::{EventLog, MemoryChunks, PendingChunk, Span, StreamReader};
use crate::clock::{self, Stamp};
use crate::idmap::IdMap;
use crate::priority::Helpers;
use crate::protocol::{self, Cursor};
use client_ids::{ClientIdLimits, Fingerprint, RecentSends, Sent};

pub type StoreResult<T> = Result<T, sled::Error>;

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

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct UserRecord {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    pub password_hash: String,
    pub created_at: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SessionRecord {
    pub id: Uuid,
    pub user_id: Uuid,
    pub device_id: String,
    pub platform: String,
    pub model: String,
    pub build: u64,
    pub name: Option<String>,
    pub created_at: u64,
    pub access_token: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GroupRecord {
    pub id: Uuid,
    pub name: String,
    pub creator: Uuid,
    pub created_at: u64,
    /// A small number unique to the group, carried inside its message ids.
    pub ordinal: u32,
    /// Current members in the order they joined (the creator of a new group last, as in event 70).
    pub members: Vec<Uuid>,
}

/// A span of membership: from the seq of the event that made the user a member to the seq of
/// the event that ended it (both inclusive), or open. (Before format 5 seqs were timestamps,
/// and stored intervals hold those: the upgrade made each event's seq its timestamp.)
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Interval {
    pub from: u64,
    pub to: Option<u64>,
}

/// Which receipt a user gave for a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptKind {
    Delivered = 1,
    Read = 2,
}

/// The trees besides the event log, each a table of records.
#[derive(Debug, Clone, Copy)]
enum Table {
    Users,
    Usernames,
    Emails,
    Sessions,
    AccessTokens,
    Groups,
    Memberships,
    Receipts,
    ClientIds,
    Times,
    Meta,
}

const TABLES: [(Table, &str); 11] = [
    (Table::Users, "users"),
    (Table::Usernames, "usernames"),
    (Table::Emails, "emails"),
    (Table::Sessions, "sessions"),
    (Table::AccessTokens, "access_tokens"),
    (Table::Groups, "groups"),
    (Table::Memberships, "memberships"),
    (Table::Receipts, "receipts"),
    (Table::ClientIds, "client_ids"),
    (Table::Times, "times"),
    (Table::Meta, "meta"),
];

/// A send's (user, client id) with its fingerprint in the retry index: see [`Store::retry_key`].
pub struct RetryKey<'a> {
    user: Uuid,
    client_id: &'a str,
    fingerprint: Fingerprint,
}

/// All durable state. Writes go to memory first (`pending`, and the log's chunks); at the end
/// of a tick [`Store::write`] seals them into a [`TickWrites`], which the flusher thread puts
/// into sled in one transaction and flushes: a crash keeps a whole tick or none of it, so no
/// index, receipt or client id can outlive the events it refers to. Reads see the tick's writes
/// and the sealed ones the flusher has not applied yet, so the loop never waits for sled.
pub struct Store {
    db: sled::Db,
    /// In `TABLES` order, then the log.
    trees: Vec<Tree>,
    log: EventLog,
    /// This tick's writes, one map per table (in `TABLES` order), so a lookup needs no key copy.
    pending: Vec<HashMap<Vec<u8>, Vec<u8>>>,
    /// Sealed ticks not yet known to be in sled, oldest first.
    unapplied: VecDeque<Arc<TickWrites>>,
    /// Recent sends by client id, the first place a retry is looked for.
    recent_sends: RecentSends,
    /// Whether the `client_ids` table may hold records (of format 2 or 3, or of sends
    /// `recent_sends` had no room for): when not, a send with a new id costs no sled read.
    client_id_table_used: bool,
    /// The first seq of format 5: every event below it was stamped with its seq.
    seq_base: u64,
    /// The newest second the `times` table has a record for.
    last_second: u64,
}

/// One tick's writes, sealed by [`Store::write`] and applied by [`apply`].
pub struct TickWrites {
    commit: u64,
    tables: Vec<HashMap<Vec<u8>, Vec<u8>>>,
    chunks: IdMap<PendingChunk>,
    ceiling: Ceiling,
    /// The retry index's time (wall-clock ms) when the tick was sealed.
    index_ms: u64,
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
}

/// Puts sealed ticks into sled, oldest first, in one transaction (not yet durable).
pub fn apply(trees: &[Tree], ticks: &[Arc<TickWrites>]) -> StoreResult<()> {
    let log_index = trees.len() - 1;
    trees
        .transaction(|trees| {
            for tick in ticks {
                for (table, writes) in tick.tables.iter().enumerate() {
                    for (key, value) in writes {
                        trees[table].set(key.as_slice(), value.as_slice());
                    }
                }
                for (stream, chunk) in &tick.chunks {
                    trees[log_index].set(&chunk.key(*stream)[..], chunk.bytes.as_slice());
                }
            }
            // The newest tick's ceiling is the one that counts (the loop never lowers it).
            if let Some(newest) = ticks.last() {
                let meta = &trees[Table::Meta as usize];
                meta.set(
                    CLOCK_KEY,
                    &clock_record(newest.ceiling, newest.index_ms)[..],
                );
            }
            Ok::<(), ConflictableTransactionError<()>>(())
        })
        .map_err(|err| match err {
            TransactionError::Storage(err) => err,
            TransactionError::Abort(()) => {
                sled::Error::ReportableBug("the commit transaction aborted".into())
            }
        })
}

/// What each commit stores of the clocks, in one value so that a commit sets one key: the seq
/// ceiling (no seq above it was handed out), the last timestamp (so that timestamps keep their
/// order across a restart), and the retry index's time (see [`INDEX_TIME_KEY`]); 24 bytes.
const CLOCK_KEY: &[u8] = b"clocks";
/// See [`Store::seq_base`].
const SEQ_BASE_KEY: &[u8] = b"seq_base";
/// Before format 5: the clock ceiling, no timestamp above it handed out. Timestamps were unique
/// then, and the upgrade makes each event's seq its timestamp, so seqs go on from it.
const OLD_CLOCK_KEY: &[u8] = b"clock";
/// Before format 5, the retry index's time at the last commit (now in [`CLOCK_KEY`]): the next
/// start's "now" is never before it, so a wall clock that is behind at start (no RTC, before
/// NTP) does not make the rebuild read old history as recent.
const INDEX_TIME_KEY: &[u8] = b"index_time";
/// The rebuild reads this much more than the window: a send's timestamp can be below the wall
/// clock of its moment by a tick's length, or by an NTP step made since.
const REBUILD_SLACK_MS: u64 = 5 * 60 * 1000;
const FORMAT_KEY: &[u8] = b"format";
/// Bumped whenever the layout changes in a way older data cannot be read with. 3: messages
/// are stored as parts with their ack folded in (see [`log`]). 4: a send's client id is kept
/// in its log entry only, not in the `client_ids` table (see [`client_ids`]). 5: events carry
/// a seq apart from their timestamp.
const FORMAT: u64 = 5;
/// Formats this parley still reads: a directory in one of them is marked [`FORMAT`] when
/// opened, so that an older parley refuses it instead of misreading what this one writes.
const UPGRADES_FROM: [u64; 3] = [2, 3, 4];

impl Store {
    /// Opens with the default limits on the index of recent client ids.
    pub fn open(dir: &Path, cache_bytes: u64) -> StoreResult<Store> {
        Store::open_with(dir, cache_bytes, ClientIdLimits::DEFAULT)
    }

    /// Opens the store, and rebuilds the index of recent client ids from the log.
    pub fn open_with(
        dir: &Path,
        cache_bytes: u64,
        client_ids: ClientIdLimits,
    ) -> StoreResult<Store> {
        let config = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            .segment_size(segment_size_for(dir)?)
            // The flusher flushes every commit; sled's own timer would only add work.
            .flush_every_ms(None);
        let db = open_when_free(&config)?;
        let meta = db.open_tree("meta")?;
        match meta.get(FORMAT_KEY)? {
            None if db.tree_names().len() <= 2 => {
                meta.insert(SEQ_BASE_KEY, &1u64.to_be_bytes())?;
                meta.insert(FORMAT_KEY, &FORMAT.to_be_bytes())?;
                db.flush()?;
            }
            Some(version) if read_u64(&version) == FORMAT => {}
            Some(version) if UPGRADES_FROM.contains(&read_u64(&version)) => {
                // Every event so far had a unique timestamp, now its seq: seqs go on above the
                // old clock ceiling. Timestamps hold at it while the wall is behind (that clock
                // ran ahead under load), so they never go back. sled recovers a prefix of its
                // writes, so the format is marked last, and an upgrade cut short is done again.
                let old_ceiling = meta.get(OLD_CLOCK_KEY)?.map_or(0, |v| read_u64(&v));
                let index_ms = meta.get(INDEX_TIME_KEY)?.map_or(0, |v| read_u64(&v));
                let ceiling = Ceiling {
                    seq: old_ceiling,
                    time: old_ceiling,
                };
                meta.insert(CLOCK_KEY, &clock_record(ceiling, index_ms)[..])?;
                meta.insert(SEQ_BASE_KEY, &(old_ceiling + 1).to_be_bytes())?;
                meta.insert(FORMAT_KEY, &FORMAT.to_be_bytes())?;
                meta.remove(OLD_CLOCK_KEY)?;
                meta.remove(INDEX_TIME_KEY)?;
                db.flush()?;
            }
            found => {
                let found = found.map_or(0, |v| read_u64(&v));
                return Err(sled::Error::Unsupported(format!(
                    "data directory has store format {found}; this parley reads format {FORMAT}"
                )));
            }
        }
        let (_, last_index_ms) = read_clock_record(meta.get(CLOCK_KEY)?.as_deref());
        let seq_base = meta.get(SEQ_BASE_KEY)?.map_or(1, |v| read_u64(&v));
        let mut trees = Vec::with_capacity(TABLES.len() + 1);
        for (_, name) in TABLES {
            trees.push(db.open_tree(name)?);
        }
        let log_tree = db.open_tree("log")?;
        trees.push(log_tree.clone());
        let mut store = Store {
            db,
            trees,
            log: EventLog::new(log_tree),
            pending: vec![HashMap::new(); TABLES.len()],
            unapplied: VecDeque::new(),
            recent_sends: RecentSends::new(client_ids, clock::wall_ms().max(last_index_ms)),
            client_id_table_used: true,
            seq_base,
            last_second: 0,
        };
        store.last_second = match store.tree(Table::Times).last()? {
            Some((second, _)) => read_u64(&second),
            None => 0,
        };
        store.load_client_ids(client_ids.window_ms)?;
        Ok(store)
    }

    /// Rebuilds the index of recent sends from the window's log entries, and prunes the
    /// `client_ids` table of the records it no longer needs: those older than the window, and
    /// those the index now holds (their log entries name the client id). A send the index has
    /// no room for gets a record in the table.
    ///
    /// A send's timestamp is the wall clock when it was made (before format 5 it could only be
    /// ahead of it; give or take [`REBUILD_SLACK_MS`] for an NTP step), so every send of the
    /// window's real time has an ack timestamp at or after the wall clock's horizon, and a
    /// timestamp below it is older than the window.
    fn load_client_ids(&mut self, window_ms: u64) -> StoreResult<()> {
        let now = self.recent_sends.now();
        let horizon = now.saturating_sub(window_ms + REBUILD_SLACK_MS);
        let from = self.first_seq_after(horizon.saturating_sub(1))?;
        let table = self.tree(Table::ClientIds).clone();
        let mut changed = false;
        let mut written = Ok(());
        for entry in self.tree(Table::Groups).iter() {
            let Ok(group) = Uuid::from_slice(&entry?.0) else {
                continue;
            };
            let recent_sends = &mut self.recent_sends;
            self.log.client_sends(
                group,
                from,
                horizon,
                |user, client_id, message_id, ack_ts| {
                    let sent = Sent { message_id, ack_ts };
                    // Made no later than its timestamp, nor than now (the clock may run ahead).
                    let made = ack_ts.min(now);
                    let fingerprint = recent_sends.fingerprint(user, client_id);
                    if !recent_sends.insert_at(fingerprint, made, now, sent) && written.is_ok() {
                        let key = client_key(user, client_id);
                        written = table.insert(key, client_record(sent)).map(drop);
                        changed = true;
                    }
                },
            )?;
        }
        written?;
        for entry in table.iter() {
            let (key, value) = entry?;
            let record = read_client_record(&value);
            let ack_ts = match record {
                Some(sent) => sent.ack_ts,
                // Format 2 kept the ack's JSON, and its log entries do not name the client id.
                // An ack that does not parse has no age: it is kept rather than guessed at.
                None => json_ack_timestamp(&value).unwrap_or(u64::MAX),
            };
            let held = record.is_some_and(|sent| {
                key.split_at_checked(16).is_some_and(|(user, client_id)| {
                    let user = Uuid::from_slice(user).expect("16 bytes");
                    std::str::from_utf8(client_id).is_ok_and(|id| {
                        self.recent_sends
                            .get(self.recent_sends.fingerprint(user, id))
                            == Some(sent)
                    })
                })
            });
            if ack_ts < horizon || held {
                table.remove(key)?;
                changed = true;
            }
        }
        if changed {
            self.db.flush()?;
        }
        self.client_id_table_used = !table.is_empty();
        Ok(())
    }

    /// Whether this tick wrote anything that [`Store::write`] must seal.
    pub fn has_pending(&self) -> bool {
        self.pending.iter().any(|table| !table.is_empty()) || self.log.has_pending()
    }

    /// Seals everything written since the last seal as commit number `commit`, with the clock's
    /// ceiling, so that seqs are never handed out twice and timestamps keep their order across
    /// restarts. The flusher applies and flushes it; reads see it meanwhile.
    pub fn write(&mut self, commit: u64, ceiling: Ceiling) -> Arc<TickWrites> {
        let tick = Arc::new(TickWrites {
            commit,
            tables: std::mem::replace(&mut self.pending, vec![HashMap::new(); TABLES.len()]),
            chunks: self.log.take_pending(),
            ceiling,
            index_ms: self.recent_sends.now(),
        });
        self.unapplied.push_back(Arc::clone(&tick));
        tick
    }

    /// Drops the sealed ticks up to commit `durable`: the flusher has put them into sled.
    pub fn forget_applied(&mut self, durable: u64) {
        while self
            .unapplied
            .front()
            .is_some_and(|tick| tick.commit <= durable)
        {
            self.unapplied.pop_front();
        }
    }

    /// Applies and flushes everything on the calling thread (at shutdown, when the flusher is
    /// done, and in tools and tests).
    pub fn commit(&mut self, ceiling: Ceiling) -> StoreResult<()> {
        let tick = self.write(0, ceiling);
        let ticks: Vec<_> = self.unapplied.drain(..).collect();
        debug_assert!(Arc::ptr_eq(&tick, ticks.last().expect("just sealed")));
        apply(&self.trees, &ticks)?;
        self.db.flush()?;
        Ok(())
    }

    /// Starts the thread that applies and flushes sealed ticks, off the loop thread.
    pub fn start_flusher(
        &self,
        helpers: Arc<Helpers>,
        notify: impl Fn() + Send + 'static,
    ) -> flusher::Flusher {
        flusher::Flusher::start(self.db.clone(), self.trees.clone(), helpers, notify)
    }

    /// The clock as the last commit left it: no seq above its `seq` left the server before
    /// the previous shutdown or crash, and `time` was the last timestamp.
    pub fn ceiling(&self) -> StoreResult<Ceiling> {
        let record = self.get(Table::Meta, CLOCK_KEY)?;
        Ok(read_clock_record(record.as_deref()).0)
    }

    pub fn size_on_disk(&self) -> StoreResult<u64> {
        self.db.size_on_disk()
    }

    fn tree(&self, table: Table) -> &Tree {
        &self.trees[table as usize]
    }

    /// A record as this tick sees it: written this tick, or by a tick not yet applied, or
    /// stored.
    fn get(&self, table: Table, key: &[u8]) -> StoreResult<Option<IVec>> {
        let newest = std::iter::once(&self.pending[table as usize])
            .chain(
                self.unapplied
                    .iter()
                    .rev()
                    .map(|tick| &tick.tables[table as usize]),
            )
            .find_map(|writes| writes.get(key));
        match newest {
            Some(value) => Ok(Some(IVec::from(value.as_slice()))),
            None => self.tree(table).get(key),
        }
    }

    /// `stream`'s chunks in sealed ticks not yet applied, oldest first.
    fn memory_chunks(&self, stream: Uuid) -> MemoryChunks {
        self.unapplied
            .iter()
            .filter_map(|tick| tick.chunks.get(&stream))
            .map(|chunk| (chunk.first_seq, IVec::from(chunk.bytes.as_slice())))
            .collect()
    }

    /// The newest record of `table` with a key at or before `key`, as this tick sees it.
    fn last_at_or_before(&self, table: Table, key: &[u8]) -> StoreResult<Option<IVec>> {
        let stored = self.tree(table).range(..=key).next_back().transpose()?;
        let in_memory = self
            .unapplied
            .iter()
            .map(|tick| &tick.tables[table as usize])
            .chain(std::iter::once(&self.pending[table as usize]))
            .flat_map(|writes| writes.iter())
            .filter(|(k, _)| k.as_slice() <= key)
            .max_by(|a, b| a.0.cmp(b.0));
        Ok(match (stored, in_memory) {
            (Some((k, v)), Some((mk, _))) if k.as_ref() >= mk.as_slice() => Some(v),
            (_, Some((_, v))) => Some(IVec::from(v.as_slice())),
            (stored, None) => stored.map(|(_, v)| v),
        })
    }

    /// A seq at or below the first one stamped after `timestamp`: where a sync by timestamp
    /// starts to look. Timestamps never decrease along seqs, and the `times` table holds the
    /// first seq of each second that has events, so at most a second's worth of events lies
    /// between the two. Events before format 5 were stamped with their seq.
    fn first_seq_after(&self, timestamp: u64) -> StoreResult<u64> {
        if timestamp < self.seq_base {
            return Ok(timestamp + 1);
        }
        let second = (timestamp / 1000).to_be_bytes();
        Ok(self
            .last_at_or_before(Table::Times, &second)?
            .map_or(self.seq_base, |seq| read_u64(&seq)))
    }

    /// Notes that an event is stored at `stamp`: the first of each second goes into `times`.
    fn note_stamp(&mut self, stamp: Stamp) {
        let second = stamp.timestamp / 1000;
        if second > self.last_second {
            self.last_second = second;
            self.put(
                Table::Times,
                second.to_be_bytes(),
                stamp.seq.to_be_bytes().to_vec(),
            );
        }
    }

    fn put(&mut self, table: Table, key: impl Into<Vec<u8>>, value: Vec<u8>) {
        self.pending[table as usize].insert(key.into(), value);
    }

    // --- users -------------------------------------------------------------------------------

    /// Inserts a user and its unique indices. The caller has checked that the names are free;
    /// the loop is single-threaded, so nothing can take them in between.
    pub fn insert_user(&mut self, user: &UserRecord) {
        let id = user.id.as_bytes().to_vec();
        self.put(Table::Users, id.clone(), to_json(user));
        self.put(Table::Usernames, user.username.to_lowercase(), id.clone());
        self.put(Table::Emails, user.email.to_lowercase(), id);
    }

    pub fn user(&self, id: Uuid) -> StoreResult<Option<UserRecord>> {
        Ok(self
            .get(Table::Users, id.as_bytes())?
            .and_then(|v| from_json(&v)))
    }

    pub fn user_exists(&self, id: Uuid) -> StoreResult<bool> {
        Ok(self.get(Table::Users, id.as_bytes())?.is_some())
    }

    pub fn user_id_by_username(&self, username: &str) -> StoreResult<Option<Uuid>> {
        self.user_id_in(Table::Usernames, &username.to_lowercase())
    }

    pub fn user_id_by_email(&self, email: &str) -> StoreResult<Option<Uuid>> {
        self.user_id_in(Table::Emails, &email.to_lowercase())
    }

    fn user_id_in(&self, index: Table, name: &str) -> StoreResult<Option<Uuid>> {
        Ok(self
            .get(index, name.as_bytes())?
            .and_then(|v| Uuid::from_slice(&v).ok()))
    }

    // --- sessions ----------------------------------------------------------------------------

    pub fn insert_session(&mut self, session: &SessionRecord) {
        let id = session.id.as_bytes().to_vec();
        self.put(Table::Sessions, id.clone(), to_json(session));
        self.put(Table::AccessTokens, session.access_token.as_bytes(), id);
    }

    pub fn session_by_access_token(&self, token: &str) -> StoreResult<Option<SessionRecord>> {
        let Some(id) = self.get(Table::AccessTokens, token.as_bytes())? else {
            return Ok(None);
        };
        Ok(self.get(Table::Sessions, &id)?.and_then(|v| from_json(&v)))
    }

    // --- groups and memberships --------------------------------------------------------------

    pub fn put_group(&mut self, group: &GroupRecord) {
        self.put(Table::Groups, group.id.as_bytes().to_vec(), to_json(group));
    }

    /// Every group; read once at start, when nothing is pending.
    pub fn all_groups(&self) -> StoreResult<Vec<GroupRecord>> {
        let mut groups = Vec::new();
        for entry in self.tree(Table::Groups).iter() {
            let (_, value) = entry?;
            if let Some(group) = from_json(&value) {
                groups.push(group);
            }
        }
        Ok(groups)
    }

    /// Records that `user` became a member of `group` at `seq` (inclusive).
    pub fn open_membership(&mut self, user: Uuid, group: Uuid, seq: u64) -> StoreResult<()> {
        let key = pair_key(user, group);
        let mut intervals = self.intervals(&key)?;
        intervals.push(Interval {
            from: seq,
            to: None,
        });
        self.put(Table::Memberships, key, to_json(&intervals));
        Ok(())
    }

    /// Records that `user` stopped being a member of `group` at `seq` (inclusive: the 73 is
    /// theirs).
    pub fn close_membership(&mut self, user: Uuid, group: Uuid, seq: u64) -> StoreResult<()> {
        let key = pair_key(user, group);
        let mut intervals = self.intervals(&key)?;
        if let Some(last) = intervals.last_mut() {
            last.to = Some(seq);
        }
        self.put(Table::Memberships, key, to_json(&intervals));
        Ok(())
    }

    fn intervals(&self, key: &[u8]) -> StoreResult<Vec<Interval>> {
        Ok(self
            .get(Table::Memberships, key)?
            .and_then(|v| from_json(&v))
            .unwrap_or_default())
    }

    /// Every group `user` ever belonged to, with the intervals, as this tick sees them.
    fn memberships_of(&self, user: Uuid) -> StoreResult<BTreeMap<Vec<u8>, Vec<Interval>>> {
        let mut memberships = BTreeMap::new();
        for entry in self.tree(Table::Memberships).scan_prefix(user.as_bytes()) {
            let (key, value) = entry?;
            memberships.insert(key.to_vec(), from_json(&value).unwrap_or_default());
        }
        let unapplied = self.unapplied.iter().map(|tick| &tick.tables);
        for tables in unapplied.chain(std::iter::once(&self.pending)) {
            for (key, value) in &tables[Table::Memberships as usize] {
                if key.starts_with(user.as_bytes()) {
                    memberships.insert(key.clone(), from_json(value).unwrap_or_default());
                }
            }
        }
        Ok(memberships)
    }

    // --- events ------------------------------------------------------------------------------

    /// Appends an event to a group's or a user's stream; sealed at the next [`Store::write`].
    pub fn append(&mut self, stream: Uuid, stamp: Stamp, audience: Audience, event: &[u8]) {
        self.note_stamp(stamp);
        self.log.append(stream, stamp, audience, event);
    }

    /// Appends a message and its sender's ack to the group's stream, as parts (see [`log`]).
    pub fn append_message(&mut self, group: Uuid, message: &MessageParts) {
        self.note_stamp(message.stamp);
        self.log.append_message(group, message);
    }

    /// The author of a message, found from where its id says it is stored.
    pub fn message_author(
        &self,
        group: Uuid,
        seq: u64,
        message_id: Uuid,
    ) -> StoreResult<Option<Uuid>> {
        let unapplied = self
            .unapplied
            .iter()
            .rev()
            .filter_map(|tick| tick.chunks.get(&group));
        self.log.message_author(group, seq, message_id, unapplied)
    }

    /// The user's events after `cursor`, oldest first (in seq order), at most `limit` of them
    /// and about `max_bytes` (at least one event), and whether more exist after the last one.
    /// After a timestamp cursor a page never ends inside a millisecond, so the last event's
    /// timestamp is an exact cursor too: it takes the rest of that millisecond's events.
    pub fn events_after(
        &self,
        user: Uuid,
        cursor: Cursor,
        limit: usize,
        max_bytes: usize,
    ) -> StoreResult<(Vec<StoredEvent>, bool)> {
        let (from, after_time) = match cursor {
            Cursor::Seq(seq) => (seq.saturating_add(1), None),
            Cursor::Timestamp(ts) => (self.first_seq_after(ts)?, Some(ts)),
        };
        let mut sources = Vec::new();
        for (stream, span) in self.spans_of(user, from, after_time)? {
            sources.push(
                self.log
                    .reader(stream, span, user, self.memory_chunks(stream))?,
            );
        }
        merge_streams(sources, limit, max_bytes, after_time.is_some())
    }

    /// The stamp of the user's newest event, if any: what an empty sync page reports.
    pub fn newest_event(&self, user: Uuid) -> StoreResult<Option<Stamp>> {
        let mut newest: Option<Stamp> = None;
        for (stream, span) in self.spans_of(user, 1, None)? {
            let found = self
                .log
                .newest(stream, span, user, self.memory_chunks(stream))?;
            if found.is_some_and(|found| newest.is_none_or(|newest| found.seq > newest.seq)) {
                newest = found;
            }
        }
        Ok(newest)
    }

    /// What a user reads of each stream from seq `from` on: their own stream, and each group's
    /// within the intervals they were a member.
    fn spans_of(
        &self,
        user: Uuid,
        from: u64,
        after_time: Option<u64>,
    ) -> StoreResult<Vec<(Uuid, Span)>> {
        let mut spans = vec![(
            user,
            Span {
                from,
                to: u64::MAX,
                after_time,
            },
        )];
        for (key, intervals) in self.memberships_of(user)? {
            let group = Uuid::from_slice(&key[16..32]).unwrap_or_default();
            for interval in intervals {
                let span = Span {
                    from: interval.from.max(from),
                    to: interval.to.unwrap_or(u64::MAX),
                    after_time,
                };
                if span.from <= span.to {
                    spans.push((group, span));
                }
            }
        }
        Ok(spans)
    }

    // --- receipts, client ids ----------------------------------------------------------------

    /// Records a receipt; false when this user already gave it for this message.
    pub fn record_receipt(
        &mut self,
        message: Uuid,
        user: Uuid,
        kind: ReceiptKind,
    ) -> StoreResult<bool> {
        let mut key = pair_key(message, user);
        key.push(kind as u8);
        if self.get(Table::Receipts, &key)?.is_some() {
            return Ok(false);
        }
        self.put(Table::Receipts, key, Vec::new());
        Ok(true)
    }

    /// A send's (user, client id), fingerprinted once for its lookup ([`Store::client_ack`])
    /// and its record ([`Store::put_client_ack`]). The index's lines for it are fetched from
    /// memory meanwhile: the lookup is fastest some work after this.
    pub fn retry_key<'a>(&self, user: Uuid, client_id: &'a str) -> RetryKey<'a> {
        let fingerprint = self.recent_sends.fingerprint(user, client_id);
        self.recent_sends.prefetch(fingerprint);
        RetryKey {
            user,
            client_id,
            fingerprint,
        }
    }

    /// The ack event (21) a send with this client id was answered with, if any: rendered again
    /// from the message id and the ack's timestamp kept for it, byte for byte what was sent (a
    /// record of format 2 holds the ack's JSON itself, and is answered as it is).
    pub fn client_ack(&self, key: &RetryKey) -> StoreResult<Option<String>> {
        if let Some(sent) = self.recent_sends.get(key.fingerprint) {
            return Ok(Some(render_ack(key.client_id, sent)));
        }
        if !self.client_id_table_used {
            return Ok(None);
        }
        let Some(value) = self.get(Table::ClientIds, &client_key(key.user, key.client_id))? else {
            return Ok(None);
        };
        let ack = match read_client_record(&value) {
            Some(sent) => render_ack(key.client_id, sent),
            // Format 2's JSON, stamped with its timestamp, which the upgrade made its seq.
            None => {
                let seq = json_ack_timestamp(&value).unwrap_or(0);
                String::from_utf8_lossy(&protocol::with_seq(&value, seq)).into_owned()
            }
        };
        Ok(Some(ack))
    }

    /// Records which message a send with this client id stored, for its retries. The message's
    /// log entry, written in the same tick, names the client id, so the index of recent sends is
    /// enough; when it is full, the record goes into the `client_ids` table.
    pub fn put_client_ack(&mut self, key: &RetryKey, message_id: Uuid, ack_ts: u64) {
        let sent = Sent { message_id, ack_ts };
        if !self.recent_sends.insert(key.fingerprint, sent) {
            self.put(
                Table::ClientIds,
                client_key(key.user, key.client_id),
                client_record(sent),
            );
            self.client_id_table_used = true;
        }
    }

    /// Sends the index of recent client ids holds.
    pub fn recent_client_ids(&self) -> usize {
        self.recent_sends.held()
    }
}

/// The [`CLOCK_KEY`] record.
fn clock_record(ceiling: Ceiling, index_ms: u64) -> [u8; 24] {
    let mut record = [0u8; 24];
    record[..8].copy_from_slice(&ceiling.seq.to_be_bytes());
    record[8..16].copy_from_slice(&ceiling.time.to_be_bytes());
    record[16..].copy_from_slice(&index_ms.to_be_bytes());
    record
}

/// A [`CLOCK_KEY`] record's ceiling and index time; zeros when there is none.
fn read_clock_record(record: Option<&[u8]>) -> (Ceiling, u64) {
    let field = |at: usize| record.and_then(|r| r.get(at..at + 8)).map_or(0, read_u64);
    let ceiling = Ceiling {
        seq: field(0),
        time: field(8),
    };
    (ceiling, field(16))
}

/// The ack (21) of a send, rendered again: its seq follows the message's, which the id carries.
fn render_ack(client_id: &str, sent: Sent) -> String {
    let stamp = Stamp {
        seq: message_id::ack_seq(sent.message_id),
        timestamp: sent.ack_ts,
    };
    protocol::sent_event(Some(client_id), stamp, sent.message_id)
}

/// A `client_ids` record: the message id and the ack's timestamp (24 bytes; format 2 kept the
/// ack's JSON, about 100).
fn client_record(sent: Sent) -> Vec<u8> {
    let mut value = Vec::with_capacity(24);
    value.extend_from_slice(sent.message_id.as_bytes());
    value.extend_from_slice(&sent.ack_ts.to_be_bytes());
    value
}

/// A record [`client_record`] wrote; `None` for one of format 2 (the ack's JSON).
fn read_client_record(value: &[u8]) -> Option<Sent> {
    let record = <[u8; 24]>::try_from(value).ok()?;
    Some(Sent {
        message_id: Uuid::from_slice(&record[..16]).expect("16 bytes"),
        ack_ts: read_u64(&record[16..]),
    })
}

/// The timestamp of an ack kept as JSON (a record of format 2).
fn json_ack_timestamp(ack: &[u8]) -> Option<u64> {
    #[derive(Deserialize)]
    struct Ack {
        timestamp: u64,
    }
    from_json::<Ack>(ack).map(|ack| ack.timestamp)
}

/// sled's log segment. sled writes anything bigger than a quarter of a segment (a value, or a
/// whole tree node when it rewrites one) as a file of its own, a "blob": created, synced, and
/// deleted again when the node is next rewritten. A leaf of the log tree holds up to 17 chunks;
/// at sled's default 512 KiB a busy group's leaf passed the 128 KiB limit and every rewrite of
/// it became a new file (under `fanout` load, 1,656 files created in 5 s, a quarter of the
/// server's CPU in inode allocation, and 45% more bytes written). 2 MiB puts the limit at
/// 512 KiB: 17 chunks of 30 KiB each, a tick of about 350 short messages in one group.
const SEGMENT_BYTES: usize = 2 * 1024 * 1024;

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
        _ => Err(sled::Error::Unsupported(format!(
            "{}: sled's data file is there but its `conf` file, which says how the data is laid \
             out, is missing or unreadable; restore `conf` beside `db` (it names \
             `segment_size: 524288` for data directories made by parley before 2026-11-25, \
             `segment_size: {SEGMENT_BYTES}` for later ones)",
            dir.display()
        ))),
    }
}

/// The segment size in sled's `conf` file, if it is there and names one.
fn stored_segment_size(dir: &Path) -> Option<usize> {
    let conf = std::fs::read(dir.join("conf")).ok()?;
    String::from_utf8_lossy(&conf)
        .lines()
        .find_map(|line| line.strip_prefix("segment_size: "))
        .and_then(|size| size.trim().parse().ok())
}

/// Opens the database, waiting up to 5 s for its lock: a server restarted right after its
/// previous instance was killed may start while the kernel is still closing that one's files.
fn open_when_free(config: &sled::Config) -> StoreResult<sled::Db> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match config.open() {
            // sled reports a held lock as a plain `Other` error; its text is the only sign.
            Err(sled::Error::Io(err))
                if err.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            result => return result,
        }
    }
}

/// Merges streams that are each sorted by seq into one, taking up to `limit` entries and about
/// `max_bytes`, and telling whether more remain. With `whole_milliseconds`, a page that is full
/// still takes the entries that share its last one's timestamp.
fn merge_streams(
    mut sources: Vec<StreamReader>,
    limit: usize,
    max_bytes: usize,
    whole_milliseconds: bool,
) -> StoreResult<(Vec<StoredEvent>, bool)> {
    let mut heads: Vec<Option<StoredEvent>> = Vec::with_capacity(sources.len());
    let mut heap = BinaryHeap::new();
    for (index, source) in sources.iter_mut().enumerate() {
        let head = source.next_entry()?;
        if let Some(event) = &head {
            heap.push(Reverse((event.stamp.seq, index)));
        }
        heads.push(head);
    }
    let mut out: Vec<StoredEvent> = Vec::with_capacity(limit.min(1024));
    let mut bytes = 0;
    while let Some(Reverse((_, index))) = heap.pop() {
        let entry = heads[index].take().expect("a heap entry has a head");
        let full = out.len() >= limit || (bytes >= max_bytes && !out.is_empty());
        let same_millisecond = out.last().is_some_and(|last| {
            whole_milliseconds && last.stamp.timestamp == entry.stamp.timestamp
        });
        if full && !same_millisecond {
            return Ok((out, true));
        }
        bytes += entry.bytes.len();
        out.push(entry);
        let head = sources[index].next_entry()?;
        if let Some(event) = &head {
            heap.push(Reverse((event.stamp.seq, index)));
        }
        heads[index] = head;
    }
    Ok((out, false))
}

fn pair_key(a: Uuid, b: Uuid) -> Vec<u8> {
    let mut key = Vec::with_capacity(33);
    key.extend_from_slice(a.as_bytes());
    key.extend_from_slice(b.as_bytes());
    key
}

fn client_key(user: Uuid, client_id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(16 + client_id.len());
    key.extend_from_slice(user.as_bytes());
    key.extend_from_slice(client_id.as_bytes());
    key
}

fn read_u64(bytes: &[u8]) -> u64 {
    let mut buf = [0u8; 8];
    let n = bytes.len().min(8);
    buf[..n].copy_from_slice(&bytes[..n]);
    u64::from_be_bytes(buf)
}

fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("records serialize")
}

fn from_json<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Option<T> {
    serde_json::from_slice(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ack a retry of `client_id` by `user` would get.
    fn client_ack_of(store: &Store, user: Uuid, client_id: &str) -> Option<String> {
        store.client_ack(&store.retry_key(user, client_id)).unwrap()
    }

    /// A group for the tests, with `members`.
    fn test_group(id: Uuid, members: &[Uuid]) -> GroupRecord {
        GroupRecord {
            id,
            name: "g".into(),
            creator: members[0],
            created_at: 1,
            ordinal: 1,
            members: members.to_vec(),
        }
    }

    /// Stores a send as the chat does, stamped at `ts` (its seq too, its ack's the next):
    /// its log entry names the client id, then the record.
    fn store_send(store: &mut Store, group: Uuid, user: Uuid, client_id: &str, ts: u64) -> Uuid {
        let message_id = message_id::new(ts, 1, 0);
        store.append_message(
            group,
            &MessageParts {
                stamp: at(ts),
                message_id,
                author: user,
                data: "hi",
                ack_seq: ts + 1,
                client_id: Some(client_id),
            },
        );
        store.put_client_ack(&store.retry_key(user, client_id), message_id, ts);
        message_id
    }

    /// The ack of a send [`store_send`] stored at `ts`, written out.
    fn expected_ack(client_id: &str, ts: u64, message_id: Uuid) -> String {
        format!(
            r#"{{"type":21,"seq":{},"id":{},"timestamp":{ts},"body":{{"message_id":"{message_id}"}}}}"#,
            ts + 1,
            serde_json::to_string(client_id).unwrap()
        )
    }

    /// A retry's ack, in every state of its send (pending, sealed, applied, forgotten, after a
    /// restart that rebuilds the index from the log), is the original's bytes: checked against
    /// literal JSON, not the renderer. No `client_ids` record is written for it.
    #[test]
    fn a_retrys_ack_is_the_original_in_every_state() {
        let dir = tempfile::tempdir().unwrap();
        let (user, group) = (Uuid::from_u128(1), Uuid::from_u128(9));
        let id = "a \"q\"\u{1}\u{e9}/</";
        let ts = clock::wall_ms();
        let expected;
        {
            let mut store = Store::open(dir.path(), 1 << 20).unwrap();
            store.put_group(&test_group(group, &[user]));
            let mid = store_send(&mut store, group, user, id, ts);
            expected = expected_ack(id, ts, mid);
            let ack_stamp = Stamp {
                seq: ts + 1,
                timestamp: ts,
            };
            assert_eq!(protocol::sent_event(Some(id), ack_stamp, mid), expected);
            assert_eq!(
                client_ack_of(&store, user, id).as_deref(),
                Some(&expected[..]),
                "pending"
            );
            let tick = store.write(1, ceil(ts + 1));
            assert_eq!(
                client_ack_of(&store, user, id).as_deref(),
                Some(&expected[..]),
                "sealed"
            );
            apply(&store.trees, &[tick]).unwrap();
            store.forget_applied(1);
            assert_eq!(
                client_ack_of(&store, user, id).as_deref(),
                Some(&expected[..]),
                "applied and forgotten"
            );
            assert!(store.tree(Table::ClientIds).is_empty());
            store.db.flush().unwrap();
        }
        let store = Store::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(store.recent_client_ids(), 1);
        assert_eq!(
            client_ack_of(&store, user, id).as_deref(),
            Some(&expected[..]),
            "restart"
        );
        assert_eq!(client_ack_of(&store, Uuid::from_u128(2), id), None);
        assert_eq!(client_ack_of(&store, user, "a"), None);
    }

    /// The rebuild keeps what the window holds: a send just inside it is recognised after a
    /// reopen, one past it and the rebuild's slack is not (and its record, had it one, is
    /// pruned).
    #[test]
    fn the_rebuild_keeps_the_window() {
        let dir = tempfile::tempdir().unwrap();
        let (user, group) = (Uuid::from_u128(1), Uuid::from_u128(9));
        let now = clock::wall_ms();
        let window = ClientIdLimits::DEFAULT.window_ms;
        {
            let mut store = Store::open(dir.path(), 1 << 20).unwrap();
            store.put_group(&test_group(group, &[user]));
            store_send(&mut store, group, user, "out", now - window - 600_000);
            store_send(&mut store, group, user, "in", now - window + 60_000);
            let sent = Sent {
                message_id: Uuid::from_u128(5),
                ack_ts: now - window - 600_000,
            };
            store.put(
                Table::ClientIds,
                client_key(user, "old"),
                client_record(sent),
            );
            store.commit(ceil(now)).unwrap();
        }
        let store = Store::open(dir.path(), 1 << 20).unwrap();
        assert!(
            client_ack_of(&store, user, "in").is_some(),
            "23 h 59 min old"
        );
        assert_eq!(client_ack_of(&store, user, "out"), None);
        assert!(
            store.tree(Table::ClientIds).is_empty(),
            "the old record is pruned"
        );
        assert_eq!(client_ack_of(&store, user, "old"), None);
        assert_eq!(store.recent_client_ids(), 1);
    }

    /// The server clock far ahead of the wall (it runs ahead under load) does not shorten the
    /// window at a restart: an hour-old send is recognised.
    #[test]
    fn the_rebuild_ignores_a_clock_ceiling_ahead_of_the_wall() {
        let dir = tempfile::tempdir().unwrap();
        let (user, group) = (Uuid::from_u128(1), Uuid::from_u128(9));
        let now = clock::wall_ms();
        let window = ClientIdLimits::DEFAULT.window_ms;
        {
            let mut store = Store::open(dir.path(), 1 << 20).unwrap();
            store.put_group(&test_group(group, &[user]));
            store_send(&mut store, group, user, "hour-old", now - 3_600_000);
            store.commit(ceil(now + 2 * window)).unwrap();
        }
        let store = Store::open(dir.path(), 1 << 20).unwrap();
        assert!(client_ack_of(&store, user, "hour-old").is_some());
    }

    /// A wall clock that is behind at start (no RTC, before NTP) does not make old sends
    /// recent: the index's time at the last commit is the floor of the next start's. Ten days
    /// of hourly sends, the index's time three days past the wall clock.
    #[test]
    fn a_wall_clock_behind_at_start_does_not_load_old_history() {
        let dir = tempfile::tempdir().unwrap();
        let (user, group) = (Uuid::from_u128(1), Uuid::from_u128(9));
        let hour = 3_600_000;
        let truth = clock::wall_ms() + 3 * ClientIdLimits::DAY_MS;
        {
            let mut store = Store::open(dir.path(), 1 << 20).unwrap();
            store.put_group(&test_group(group, &[user]));
            for h in (0..240u64).rev() {
                store_send(&mut store, group, user, &format!("h{h}"), truth - h * hour);
            }
            store.recent_sends = RecentSends::new(ClientIdLimits::DEFAULT, truth);
            store.commit(ceil(truth + 1000)).unwrap();
        }
        let store = Store::open(dir.path(), 1 << 20).unwrap();
        // The window (24 h and the rebuild's slack) of the last commit's time, not the wall's.
        assert_eq!(store.recent_client_ids(), 25);
        assert!(client_ack_of(&store, user, "h24").is_some());
        assert_eq!(client_ack_of(&store, user, "h26"), None);
    }

    /// An entry stamped far in the future (damaged) does not empty the rebuilt index.
    #[test]
    fn a_future_entry_does_not_empty_the_rebuilt_index() {
        let dir = tempfile::tempdir().unwrap();
        let (user, group) = (Uuid::from_u128(1), Uuid::from_u128(9));
        let now = clock::wall_ms();
        {
            let mut store = Store::open(dir.path(), 1 << 20).unwrap();
            store.put_group(&test_group(group, &[user]));
            store_send(&mut store, group, user, "a", now - 10);
            store_send(&mut store, group, user, "z", message_id::MAX_SEQ - 10);
            store.commit(ceil(now)).unwrap();
        }
        let mut store = Store::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(store.recent_client_ids(), 2);
        store.put_client_ack(&store.retry_key(user, "b"), Uuid::from_u128(3), now + 1);
        for id in ["a", "b", "z"] {
            assert!(client_ack_of(&store, user, id).is_some(), "{id}");
        }
    }

    /// A start with a smaller index writes the sends it has no room for into the table.
    #[test]
    fn a_smaller_index_at_start_keeps_the_surplus_in_the_table() {
        let dir = tempfile::tempdir().unwrap();
        let (user, group) = (Uuid::from_u128(1), Uuid::from_u128(9));
        let now = clock::wall_ms();
        {
            let mut store = Store::open(dir.path(), 1 << 20).unwrap();
            store.put_group(&test_group(group, &[user]));
            store_send(&mut store, group, user, "a", now - 10);
            store_send(&mut store, group, user, "b", now - 5);
            store.commit(ceil(now)).unwrap();
            assert!(store.tree(Table::ClientIds).is_empty());
        }
        let one = ClientIdLimits {
            max_entries: 1,
            ..ClientIdLimits::DEFAULT
        };
        let store = Store::open_with(dir.path(), 1 << 20, one).unwrap();
        assert_eq!(store.tree(Table::ClientIds).len(), 1);
        for id in ["a", "b"] {
            assert!(client_ack_of(&store, user, id).is_some(), "{id}");
        }
    }

    /// Sends the index has no room for are recorded in the `client_ids` table and answered from
    /// there, also after a restart. When the store opens, records older than the window go, and
    /// so do those the index now holds; one it still has no room for stays.
    #[test]
    fn sends_beyond_the_index_go_to_the_table_until_it_has_room() {
        let dir = tempfile::tempdir().unwrap();
        let (user, group, other) = (Uuid::from_u128(1), Uuid::from_u128(9), Uuid::from_u128(8));
        let now = clock::wall_ms();
        let window = ClientIdLimits::DEFAULT.window_ms;
        let one = ClientIdLimits {
            max_entries: 1,
            ..ClientIdLimits::DEFAULT
        };
        let mut sends = Vec::new();
        {
            let mut store = Store::open_with(dir.path(), 1 << 20, one).unwrap();
            store.put_group(&test_group(group, &[user]));
            store.put_group(&test_group(other, &[user]));
            let ts = now - 10;
            sends.push(("a", ts, store_send(&mut store, group, user, "a", ts)));
            // Older than the window (in a stream of its own, which need not be in order).
            let ts = now - window - 600_000;
            sends.push(("old", ts, store_send(&mut store, other, user, "old", ts)));
            let ts = now - 5;
            sends.push(("b", ts, store_send(&mut store, group, user, "b", ts)));
            assert_eq!(store.recent_client_ids(), 1);
            assert_eq!(store.pending[Table::ClientIds as usize].len(), 2);
            store.commit(ceil(now)).unwrap();
            for (id, ts, mid) in &sends {
                let ack = expected_ack(id, *ts, *mid);
                assert_eq!(client_ack_of(&store, user, id), Some(ack), "{id}");
            }
        }
        {
            let store = Store::open_with(dir.path(), 1 << 20, one).unwrap();
            assert_eq!(client_ack_of(&store, user, "old"), None, "pruned");
            // One of "a" and "b" is in the index, the other's record stays.
            assert_eq!(store.recent_client_ids(), 1);
            assert_eq!(store.tree(Table::ClientIds).len(), 1);
            for id in ["a", "b"] {
                assert!(client_ack_of(&store, user, id).is_some(), "{id}");
            }
        }
        let store = Store::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(store.recent_client_ids(), 2);
        assert!(store.tree(Table::ClientIds).is_empty(), "held in memory");
        assert!(!store.client_id_table_used);
        for id in ["a", "b"] {
            assert!(client_ack_of(&store, user, id).is_some(), "{id}");
        }
    }

    /// sled's `set` (`vendor/sled/PARLEY.md`) is seen by a later `get` in the same transaction
    /// (also after a get cached the old value), the last write wins, and an abort discards it.
    #[test]
    fn a_transactions_set_is_read_back_and_discarded_on_abort() {
        use sled::transaction::abort;
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let trees = [db.open_tree("a").unwrap(), db.open_tree("b").unwrap()];
        trees[0].insert(b"k", b"old").unwrap();
        trees[..]
            .transaction(|t| {
                assert_eq!(t[0].get(b"k")?.as_deref(), Some(&b"old"[..]));
                t[0].set(&b"k"[..], &b"new"[..]);
                assert_eq!(t[0].get(b"k")?.as_deref(), Some(&b"new"[..]));
                t[1].set(&b"x"[..], &b"1"[..]);
                assert_eq!(t[1].get(b"x")?.as_deref(), Some(&b"1"[..]));
                assert_eq!(
                    t[1].insert(&b"x"[..], &b"2"[..])?.as_deref(),
                    Some(&b"1"[..])
                );
                t[0].set(&b"k"[..], &b"newer"[..]);
                Ok::<(), ConflictableTransactionError<()>>(())
            })
            .unwrap();
        assert_eq!(trees[0].get(b"k").unwrap().as_deref(), Some(&b"newer"[..]));
        assert_eq!(trees[1].get(b"x").unwrap().as_deref(), Some(&b"2"[..]));
        let aborted = trees[..].transaction(|t| {
            t[0].set(&b"k"[..], &b"zzz"[..]);
            t[1].set(&b"y"[..], &b"zzz"[..]);
            abort::<(), ()>(())
        });
        assert!(aborted.is_err());
        assert_eq!(trees[0].get(b"k").unwrap().as_deref(), Some(&b"newer"[..]));
        assert_eq!(trees[1].get(b"y").unwrap(), None);
    }

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 1 << 20).unwrap();
        (dir, store)
    }

    fn timestamps(events: &[StoredEvent]) -> Vec<u64> {
        events.iter().map(|event| event.stamp.seq).collect()
    }

    /// The stamp these tests give an event: its seq is its timestamp, as before format 5.
    fn at(seq: u64) -> Stamp {
        Stamp {
            seq,
            timestamp: seq,
        }
    }

    /// A ceiling at `seq`, the time with it.
    fn ceil(seq: u64) -> Ceiling {
        Ceiling { seq, time: seq }
    }

    /// The flusher may put a sealed tick into sled before the loop hears of it: a sync in
    /// between sees its chunks in sled and in memory, and must return each event once.
    #[test]
    fn sync_reads_a_tick_applied_but_not_yet_forgotten_once() {
        let (_dir, mut store) = store();
        let (user, group) = (Uuid::from_u128(1), Uuid::from_u128(2));
        store.open_membership(user, group, 10).unwrap();
        store.append(group, at(10), Audience::All, b"first");
        store.commit(ceil(10)).unwrap();
        store.append(group, at(20), Audience::All, b"second");
        store.append(user, at(21), Audience::All, b"receipt");
        let sealed = store.write(1, ceil(21));
        store.append(group, at(30), Audience::All, b"third");
        let expected = [10, 20, 21, 30];
        let (events, _) = store
            .events_after(user, Cursor::Seq(0), 100, usize::MAX)
            .unwrap();
        assert_eq!(timestamps(&events), expected, "sealed, not yet applied");
        apply(&store.trees, &[sealed]).unwrap();
        let (events, _) = store
            .events_after(user, Cursor::Seq(0), 100, usize::MAX)
            .unwrap();
        assert_eq!(timestamps(&events), expected, "applied, not yet forgotten");
        store.forget_applied(1);
        let (events, _) = store
            .events_after(user, Cursor::Seq(0), 100, usize::MAX)
            .unwrap();
        assert_eq!(timestamps(&events), expected, "forgotten: read from sled");
        let (events, _) = store
            .events_after(user, Cursor::Seq(15), 100, usize::MAX)
            .unwrap();
        assert_eq!(
            timestamps(&events),
            [20, 21, 30],
            "from a cursor inside the sealed tick"
        );
    }

    /// A busy group writes big chunks; the log's tree nodes must stay inside sled's log instead
    /// of each rewrite becoming a file of its own (see [`SEGMENT_BYTES`]).
    #[test]
    fn a_busy_groups_log_stays_out_of_blob_files() {
        let (dir, mut store) = store();
        let group = Uuid::from_u128(2);
        let event = [b'x'; 1000];
        let mut ts = 0;
        for _ in 0..60 {
            // One tick: 20 events of 1 kB, a 20 kB chunk; a leaf of 17 such is 340 kB.
            for _ in 0..20 {
                ts += 1;
                store.append(group, at(ts), Audience::All, &event);
            }
            store.commit(ceil(ts)).unwrap();
        }
        let blobs = std::fs::read_dir(dir.path().join("blobs"))
            .map(|files| files.count())
            .unwrap_or(0);
        assert_eq!(blobs, 0, "log nodes written as blob files");
        let (events, _) = store
            .events_after(group, Cursor::Seq(0), 1000, usize::MAX)
            .unwrap();
        assert_eq!(
            events.len(),
            1000,
            "a sync reads them back, up to its limit"
        );
    }

    /// sled's log buffers are reused from segment to segment (`vendor/sled/PARLEY.md`), so
    /// each holds the bytes of an older segment until they are overwritten: a log many
    /// segments long must read back byte for byte after a reopen, which replays it.
    #[test]
    fn a_log_of_many_segments_reads_back_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let group = Uuid::from_u128(2);
        let event = |ts: u64| -> Vec<u8> { (0..1000u64).map(|i| (ts * 31 + i) as u8).collect() };
        let mut store = Store::open(dir.path(), 1 << 20).unwrap();
        let mut ts = 0;
        for _ in 0..300 {
            for _ in 0..20 {
                ts += 1;
                store.append(group, at(ts), Audience::All, &event(ts));
            }
            store.commit(ceil(ts)).unwrap();
        }
        drop(store);
        let log_bytes = std::fs::metadata(dir.path().join("db")).unwrap().len();
        assert!(
            log_bytes > 4 * SEGMENT_BYTES as u64,
            "only {log_bytes} bytes of log: too few segments to reuse a buffer"
        );

        let store = Store::open(dir.path(), 1 << 20).unwrap();
        let mut last = 0;
        loop {
            let (events, _) = store
                .events_after(group, Cursor::Seq(last), 1000, usize::MAX)
                .unwrap();
            let Some(newest) = events.last().map(|event| event.stamp.seq) else {
                break;
            };
            for StoredEvent { stamp, bytes } in events {
                let seq = stamp.seq;
                assert_eq!(seq, last + 1, "an event lost or out of order");
                assert!(bytes == event(seq), "event {seq} read back different");
                last = seq;
            }
            assert_eq!(last, newest);
        }
        assert_eq!(last, ts, "events lost");
    }

    /// A directory made by an older parley (sled's default segment size) opens with its own
    /// size and its data; one whose `conf` file (which names the size) is lost is refused rather
    /// than opened with a guessed size, which would read its data as garbage.
    #[test]
    fn a_directory_keeps_its_segment_size_and_one_without_conf_is_refused() {
        const OLD: usize = 512 * 1024;
        // Through `open_when_free`: sled's threads of the previous open may still hold the lock.
        let sled_at = |dir: &Path, size: usize| {
            open_when_free(&sled::Config::new().path(dir).segment_size(size)).unwrap()
        };
        let old = tempfile::tempdir().unwrap();
        let db = sled_at(old.path(), OLD);
        db.insert(b"kept", b"yes").unwrap();
        db.flush().unwrap();
        drop(db);
        drop(Store::open(old.path(), 1 << 20).unwrap());
        assert_eq!(stored_segment_size(old.path()), Some(OLD));
        let db = sled_at(old.path(), OLD);
        assert_eq!(db.get(b"kept").unwrap().as_deref(), Some(&b"yes"[..]));
        drop(db);

        let fresh = tempfile::tempdir().unwrap();
        let mut store = Store::open(fresh.path(), 1 << 20).unwrap();
        assert_eq!(stored_segment_size(fresh.path()), Some(SEGMENT_BYTES));
        store.put_client_ack(
            &store.retry_key(Uuid::from_u128(1), "a"),
            Uuid::from_u128(2),
            1,
        );
        store.commit(ceil(1)).unwrap();
        drop(store);

        for dir in [old.path(), fresh.path()] {
            std::fs::remove_file(dir.join("conf")).unwrap();
            let refused = Store::open(dir, 1 << 20)
                .err()
                .expect("opened without conf");
            assert!(refused.to_string().contains("conf"), "{refused}");
            assert!(!dir.join("conf").exists(), "sled wrote a guessed conf");
        }
    }

    #[test]
    fn sync_merges_own_and_group_streams_within_membership() {
        let (_dir, mut store) = store();
        let (user, other, group) = (Uuid::from_u128(1), Uuid::from_u128(9), Uuid::from_u128(2));
        store.append(group, at(10), Audience::All, b"before join");
        store.commit(ceil(10)).unwrap();
        store.open_membership(user, group, 20).unwrap();
        store.append(group, at(20), Audience::All, b"joined");
        store.append(user, at(25), Audience::All, b"receipt");
        store.append(group, at(30), Audience::All, b"message");
        store.append(group, at(31), Audience::Only(other), b"someone else's ack");
        store.commit(ceil(31)).unwrap();
        store.append(group, at(32), Audience::Only(user), b"my ack");
        store.close_membership(user, group, 40).unwrap();
        store.append(group, at(40), Audience::All, b"left");
        store.append(group, at(50), Audience::All, b"after leaving");

        // Read before and after the commit: the tick's own chunks are visible either way.
        for commit in [false, true] {
            if commit {
                store.commit(ceil(50)).unwrap();
            }
            let (events, more) = store
                .events_after(user, Cursor::Seq(0), 100, usize::MAX)
                .unwrap();
            let seen: Vec<(u64, &[u8])> = events
                .iter()
                .map(|event| (event.stamp.seq, event.bytes.as_slice()))
                .collect();
            assert_eq!(
                seen,
                vec![
                    (20, &b"joined"[..]),
                    (25, b"receipt"),
                    (30, b"message"),
                    (32, b"my ack"),
                    (40, b"left")
                ]
            );
            assert!(!more);
        }

        let (page, more) = store
            .events_after(user, Cursor::Seq(20), 2, usize::MAX)
            .unwrap();
        assert_eq!((timestamps(&page), more), (vec![25, 30], true));
        let (rest, more) = store
            .events_after(user, Cursor::Seq(30), 2, usize::MAX)
            .unwrap();
        assert_eq!((timestamps(&rest), more), (vec![32, 40], false));
        let (by_size, more) = store.events_after(user, Cursor::Seq(0), 100, 1).unwrap();
        assert_eq!((timestamps(&by_size), more), (vec![20], true));
    }

    #[test]
    fn finds_a_message_author_by_where_it_is_stored() {
        let (_dir, mut store) = store();
        let (group, author, id) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        store.append_message(
            group,
            &MessageParts {
                stamp: at(100),
                message_id: id,
                author,
                data: "m",
                ack_seq: 101,
                client_id: None,
            },
        );
        assert_eq!(store.message_author(group, 100, id).unwrap(), Some(author));
        store.commit(ceil(100)).unwrap();
        store.append(group, at(200), Audience::All, b"later");
        assert_eq!(store.message_author(group, 100, id).unwrap(), Some(author));
        assert_eq!(
            store
                .message_author(group, 100, Uuid::from_u128(4))
                .unwrap(),
            None
        );
        assert_eq!(store.message_author(group, 99, id).unwrap(), None);
    }

    #[test]
    fn refuses_another_format() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path(), 1 << 20).unwrap();
            let meta = store.tree(Table::Meta);
            meta.insert(FORMAT_KEY, &1u64.to_be_bytes()).unwrap();
            store.db.flush().unwrap();
        }
        assert!(Store::open(dir.path(), 1 << 20).is_err());
    }

    /// Makes the directory of `store` look as an older parley left it: marked `format`, its
    /// clock ceiling `clock` (timestamps were seqs then), none of format 5's keys.
    fn make_old(store: &Store, format: u64, clock: u64) {
        let meta = store.tree(Table::Meta);
        let (_, index_ms) = read_clock_record(meta.get(CLOCK_KEY).unwrap().as_deref());
        meta.insert(INDEX_TIME_KEY, &index_ms.to_be_bytes())
            .unwrap();
        for key in [CLOCK_KEY, SEQ_BASE_KEY] {
            meta.remove(key).unwrap();
        }
        meta.insert(OLD_CLOCK_KEY, &clock.to_be_bytes()).unwrap();
        meta.insert(FORMAT_KEY, &format.to_be_bytes()).unwrap();
        store.db.flush().unwrap();
    }

    /// After an upgrade, seqs go on above the old clock ceiling, and timestamps never below it.
    fn assert_upgraded(store: &Store, old_clock: u64) {
        let format = store.tree(Table::Meta).get(FORMAT_KEY).unwrap().unwrap();
        assert_eq!(read_u64(&format), FORMAT);
        let ceiling = Ceiling {
            seq: old_clock,
            time: old_clock,
        };
        assert_eq!(store.ceiling().unwrap(), ceiling);
        assert_eq!(store.seq_base, old_clock + 1);
    }

    /// A format 2 directory (messages stored as JSON, acks as entries of their own) opens, its
    /// events read as they were written, each with its timestamp for a seq, and it is marked
    /// format 5, which an older parley refuses rather than misreading the entries this one
    /// adds. Its client-id records (the ack's JSON) are answered as they are (with their seq)
    /// while the window lasts, and pruned after.
    #[test]
    fn upgrades_format_2_and_keeps_its_events() {
        let dir = tempfile::tempdir().unwrap();
        let (user, group) = (log::old_formats::AUTHOR, log::old_formats::GROUP);
        let now = clock::wall_ms();
        let recent_ack = log::old_formats::ACK_JSON
            .replace("\"c1\"", "\"c0\"")
            .replace(":21,", &format!(":{now},"));
        {
            let mut store = Store::open(dir.path(), 1 << 20).unwrap();
            store.open_membership(user, group, 10).unwrap();
            store.log.append_format_2();
            store.commit(ceil(30)).unwrap();
            let ack = log::old_formats::ACK_JSON.as_bytes();
            let clients = store.tree(Table::ClientIds);
            clients.insert(client_key(user, "c1"), ack).unwrap();
            clients
                .insert(client_key(user, "c0"), recent_ack.as_bytes())
                .unwrap();
            make_old(&store, 2, 30);
        }
        let store = Store::open(dir.path(), 1 << 20).unwrap();
        assert_upgraded(&store, 30);
        let (events, _) = store
            .events_after(user, Cursor::Seq(0), 100, usize::MAX)
            .unwrap();
        assert_eq!(events, log::old_formats::events());
        let (events, _) = store
            .events_after(user, Cursor::Timestamp(20), 100, usize::MAX)
            .unwrap();
        assert_eq!(events, log::old_formats::events()[1..]);
        // A retry's ack: kept as JSON by format 2 and answered as it is, within the window.
        let kept = client_ack_of(&store, user, "c0");
        let with_seq = protocol::with_seq(recent_ack.as_bytes(), now);
        assert_eq!(kept.as_deref().map(str::as_bytes), Some(&with_seq[..]));
        assert_eq!(
            client_ack_of(&store, user, "c1"),
            None,
            "older than the window"
        );
        assert_eq!(store.tree(Table::ClientIds).len(), 1);
        let mut store = store;
        let mid = log::old_formats::MESSAGE_ID;
        store.put_client_ack(&store.retry_key(user, "c2"), mid, 21);
        let rendered = client_ack_of(&store, user, "c2").unwrap();
        let ack = log::old_formats::ACK_JSON.replace("\"c1\"", "\"c2\"");
        assert_eq!(rendered.as_bytes(), protocol::with_seq(ack.as_bytes(), 21));
    }

    /// A format 3 directory kept a 24-byte record for every send with a client id; its log
    /// entries name the id too, so opening it rebuilds the index and empties the table. Its
    /// message ids carry the message's timestamp, now its seq, so a receipt still finds it.
    #[test]
    fn upgrades_format_3_into_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let (user, group) = (Uuid::from_u128(1), Uuid::from_u128(9));
        let ts = clock::wall_ms();
        let message_id = message_id::new(ts, 1, 0);
        {
            let mut store = Store::open(dir.path(), 1 << 20).unwrap();
            store.put_group(&test_group(group, &[user]));
            let parts = MessageParts {
                stamp: at(ts),
                message_id,
                author: user,
                data: "hi",
                ack_seq: ts + 1,
                client_id: Some("c1"),
            };
            store.log.append_message_as_format_4(group, &parts);
            store.commit(ceil(ts + 1)).unwrap();
            let sent = Sent {
                message_id,
                ack_ts: ts + 1,
            };
            let clients = store.tree(Table::ClientIds);
            clients
                .insert(client_key(user, "c1"), client_record(sent))
                .unwrap();
            make_old(&store, 3, ts + 1000);
        }
        let store = Store::open(dir.path(), 1 << 20).unwrap();
        assert_upgraded(&store, ts + 1000);
        assert!(store.tree(Table::ClientIds).is_empty());
        assert!(!store.client_id_table_used);
        let old_ack = format!(
            r#"{{"type":21,"seq":{},"id":"c1","timestamp":{},"body":{{"message_id":"{message_id}"}}}}"#,
            ts + 1,
            ts + 1
        );
        assert_eq!(client_ack_of(&store, user, "c1"), Some(old_ack));
        assert_eq!(
            store.message_author(group, ts, message_id).unwrap(),
            Some(user)
        );
    }

    /// Before format 5 the clock ran ahead of the wall under load (a millisecond per event), for
    /// good. Upgraded, timestamps hold at the old clock's ceiling until the wall catches up, as
    /// after a clock step back: they never go back in the server's order, so a client that
    /// syncs by its last old timestamp (as every client of the first version does) gets what
    /// came after it.
    #[test]
    fn timestamps_hold_at_an_old_clock_ahead_of_the_wall() {
        let dir = tempfile::tempdir().unwrap();
        let (user, group) = (Uuid::from_u128(1), Uuid::from_u128(9));
        let old_clock = clock::wall_ms() + 60 * 60 * 1000;
        let last_old = old_clock - 1000;
        {
            let mut store = Store::open(dir.path(), 1 << 20).unwrap();
            store.put_group(&test_group(group, &[user]));
            store.open_membership(user, group, last_old).unwrap();
            let joined = format!(r#"{{"type":72,"seq":0,"timestamp":{last_old},"body":{{}}}}"#);
            store.log.append_as_format_4(group, last_old, &joined);
            store.commit(ceil(last_old)).unwrap();
            make_old(&store, 4, old_clock);
        }
        let mut store = Store::open(dir.path(), 1 << 20).unwrap();
        let ceiling = store.ceiling().unwrap();
        let stamp = clock::Clock::new(ceiling.seq, ceiling.time).stamp(clock::wall_ms());
        assert_eq!(
            stamp,
            Stamp {
                seq: old_clock + 1,
                timestamp: old_clock
            }
        );
        let left = protocol::with_seq(br#"{"type":73,"timestamp":0}"#, stamp.seq);
        store.append(group, stamp, Audience::All, &left);
        let (events, more) = store
            .events_after(user, Cursor::Timestamp(last_old), 10, usize::MAX)
            .unwrap();
        assert_eq!((events, more), (vec![StoredEvent::new(stamp, left)], false));
    }

    /// The same random history written as format 2 (JSON, acks as entries of their own), as
    /// format 4 (parts) and as format 5 (with timestamps of their own, several events to a
    /// millisecond): every sync of every user, from every cursor, in pages of every size, with
    /// chunks pending, sealed, applied and forgotten, returns the same events from formats 2 and
    /// 4, and from format 5 exactly what its whole history says, by seq and by timestamp;
    /// paging stitches together to the whole history once.
    #[test]
    fn every_format_syncs_exactly_by_seq_and_by_timestamp() {
        for seed in 1..=6u64 {
            same_syncs_in_every_format(seed);
        }
    }

    struct XorShift(u64);

    impl XorShift {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    /// Every page from `cursor` on, stitched together, each page's last event the next cursor.
    fn all_pages(
        store: &Store,
        user: Uuid,
        mut cursor: Cursor,
        limit: usize,
        bytes: usize,
    ) -> Vec<StoredEvent> {
        let mut events = Vec::new();
        loop {
            let (page, more) = store.events_after(user, cursor, limit, bytes).unwrap();
            if let Some(last) = page.last() {
                cursor = match cursor {
                    Cursor::Seq(_) => Cursor::Seq(last.stamp.seq),
                    Cursor::Timestamp(_) => Cursor::Timestamp(last.stamp.timestamp),
                };
            }
            events.extend(page);
            if !more {
                return events;
            }
        }
    }

    /// The page a sync should return from the events after its cursor, by the rules of
    /// `events_after` written out plainly.
    fn model_page(
        after: &[StoredEvent],
        limit: usize,
        max_bytes: usize,
        whole_milliseconds: bool,
    ) -> (Vec<StoredEvent>, bool) {
        let mut page: Vec<StoredEvent> = Vec::new();
        let mut bytes = 0;
        for event in after {
            let full = page.len() >= limit || (bytes >= max_bytes && !page.is_empty());
            let same = page.last().is_some_and(|last| {
                whole_milliseconds && last.stamp.timestamp == event.stamp.timestamp
            });
            if full && !same {
                return (page, true);
            }
            bytes += event.bytes.len();
            page.push(event.clone());
        }
        (page, false)
    }

    /// Format 5's stamps here: three seqs to a timestamp, 400 ms apart, so that pages meet
    /// shared milliseconds and the `times` table new seconds.
    fn stamp_5(seq: u64) -> Stamp {
        Stamp {
            seq,
            timestamp: 1_000_000 + seq / 3 * 400,
        }
    }

    fn same_syncs_in_every_format(seed: u64) {
        let mut rng = XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let (_dir_2, mut old) = store();
        let (_dir_4, mut mid) = store();
        let (_dir_5, mut new) = store();
        let users: Vec<Uuid> = (1..=3).map(Uuid::from_u128).collect();
        let groups: Vec<Uuid> = (100..=101).map(Uuid::from_u128).collect();
        let mut members: Vec<Vec<Uuid>> = vec![Vec::new(); groups.len()];
        let datas = [
            "hi",
            "\"quotes\", \\ and \n",
            "é ü 😀 \u{2028}",
            "x",
            "<script>",
        ];
        let client_ids = [None, Some("c1"), Some("a \"q\""), Some("x\u{1}")];
        let (mut seq, mut commit, mut message_id) = (1000u64, 1, 0u128);
        let mut sealed = Vec::new();
        let mut messages = Vec::new();
        for _tick in 0..30 {
            for _ in 0..rng.below(5) {
                let g = rng.below(groups.len() as u64) as usize;
                let group = groups[g];
                match rng.below(6) {
                    0..=2 if !members[g].is_empty() => {
                        let author = members[g][rng.below(members[g].len() as u64) as usize];
                        message_id += 1;
                        seq += 1 + rng.below(3);
                        let message = MessageParts {
                            stamp: at(seq),
                            message_id: Uuid::from_u128(message_id),
                            author,
                            data: datas[rng.below(datas.len() as u64) as usize],
                            ack_seq: seq + 1,
                            client_id: client_ids[rng.below(4) as usize],
                        };
                        seq += 1;
                        old.log.append_message_as_format_2(group, &message);
                        mid.log.append_message_as_format_4(group, &message);
                        new.append_message(
                            group,
                            &MessageParts {
                                stamp: stamp_5(message.stamp.seq),
                                ..message
                            },
                        );
                        messages.push((group, message.stamp.seq, message.message_id, author));
                    }
                    0..=4 => {
                        let user = users[rng.below(users.len() as u64) as usize];
                        seq += 1 + rng.below(3);
                        let joins = !members[g].contains(&user);
                        let event = format!(
                            "{{\"type\":{},\"timestamp\":{seq}}}",
                            if joins { 72 } else { 73 }
                        );
                        for (store, stamp) in [(&mut old, at(seq)), (&mut mid, at(seq))]
                            .into_iter()
                            .chain([(&mut new, stamp_5(seq))])
                        {
                            if joins {
                                store.open_membership(user, group, seq).unwrap();
                            }
                            store.append(group, stamp, Audience::All, event.as_bytes());
                            if !joins {
                                store.close_membership(user, group, seq).unwrap();
                            }
                        }
                        if joins {
                            members[g].push(user);
                        } else {
                            members[g].retain(|member| *member != user);
                        }
                    }
                    _ => {
                        let user = users[rng.below(users.len() as u64) as usize];
                        seq += 1;
                        let receipt = format!("{{\"type\":22,\"timestamp\":{seq}}}");
                        for store in [&mut old, &mut mid] {
                            store.append(user, at(seq), Audience::All, receipt.as_bytes());
                        }
                        new.append(user, stamp_5(seq), Audience::All, receipt.as_bytes());
                    }
                }
            }
            match rng.below(4) {
                0 => {
                    for store in [&mut old, &mut mid, &mut new] {
                        store.commit(ceil(seq)).unwrap();
                    }
                    sealed.clear();
                }
                1 | 2 => {
                    commit += 1;
                    sealed.push([&mut old, &mut mid, &mut new].map(|s| s.write(commit, ceil(seq))));
                    if rng.below(2) == 0 {
                        // The flusher applies some sealed ticks; the loop may not know yet.
                        let n = rng.below(sealed.len() as u64 + 1) as usize;
                        let applied: Vec<_> = sealed.drain(..n).collect();
                        if let Some(last) = applied.last().map(|ticks| ticks[0].commit()) {
                            let forget = rng.below(2) == 0;
                            for (i, store) in [&mut old, &mut mid, &mut new].into_iter().enumerate()
                            {
                                let ticks: Vec<_> = applied.iter().map(|t| t[i].clone()).collect();
                                apply(&store.trees, &ticks).unwrap();
                                if forget {
                                    store.forget_applied(last);
                                }
                            }
                        }
                    }
                }
                _ => {}
            }
            for &user in &users {
                let whole = all_pages(&new, user, Cursor::Seq(0), usize::MAX, usize::MAX);
                assert!(
                    whole.windows(2).all(|w| w[0].stamp.seq < w[1].stamp.seq),
                    "seed {seed}: order"
                );
                assert_eq!(
                    new.newest_event(user).unwrap(),
                    whole.last().map(|event| event.stamp),
                    "seed {seed}: newest"
                );
                let mut cursors: Vec<u64> =
                    (0..10).map(|_| 990 + rng.below(seq + 2 - 990)).collect();
                cursors.push(0);
                cursors.extend(whole.iter().rev().take(3).map(|event| event.stamp.seq));
                for cursor in cursors {
                    let by_seq: Vec<_> = whole
                        .iter()
                        .filter(|e| e.stamp.seq > cursor)
                        .cloned()
                        .collect();
                    let time = stamp_5(cursor).timestamp;
                    let by_time: Vec<_> = whole
                        .iter()
                        .filter(|e| e.stamp.timestamp > time)
                        .cloned()
                        .collect();
                    for limit in [1, 2, 3, 7, 1000] {
                        for bytes in [1, 150, 400, usize::MAX] {
                            let at = Cursor::Seq(cursor);
                            let context = format!(
                                "seed {seed} user {user} cursor {cursor} limit {limit} bytes {bytes}"
                            );
                            assert_eq!(
                                old.events_after(user, at, limit, bytes).unwrap(),
                                mid.events_after(user, at, limit, bytes).unwrap(),
                                "{context}"
                            );
                            assert_eq!(
                                new.events_after(user, at, limit, bytes).unwrap(),
                                model_page(&by_seq, limit, bytes, false),
                                "{context}"
                            );
                            let at = Cursor::Timestamp(time);
                            assert_eq!(
                                new.events_after(user, at, limit, bytes).unwrap(),
                                model_page(&by_time, limit, bytes, true),
                                "{context} by time"
                            );
                        }
                    }
                    let limit = 1 + rng.below(4) as usize;
                    for store in [&old, &mid] {
                        let after: Vec<_> = all_pages(store, user, Cursor::Seq(0), 1000, 1 << 20)
                            .into_iter()
                            .filter(|e| e.stamp.seq > cursor)
                            .collect();
                        let pages = all_pages(store, user, Cursor::Seq(cursor), limit, 300);
                        assert_eq!(pages, after, "seed {seed}: pages");
                    }
                    let pages = all_pages(&new, user, Cursor::Seq(cursor), limit, 300);
                    assert_eq!(pages, by_seq, "seed {seed}: pages by seq");
                    let pages = all_pages(&new, user, Cursor::Timestamp(time), limit, 300);
                    assert_eq!(pages, by_time, "seed {seed}: pages by timestamp");
                }
            }
            for &(group, seq, id, author) in &messages {
                for store in [&old, &mid, &new] {
                    assert_eq!(store.message_author(group, seq, id).unwrap(), Some(author));
                    assert_eq!(store.message_author(group, seq + 1, id).unwrap(), None);
                }
            }
        }
    }

    #[test]
    fn receipts_are_recorded_once() {
        let (_dir, mut store) = store();
        let (m, u) = (Uuid::from_u128(7), Uuid::from_u128(8));
        assert!(store.record_receipt(m, u, ReceiptKind::Delivered).unwrap());
        assert!(!store.record_receipt(m, u, ReceiptKind::Delivered).unwrap());
        assert!(store.record_receipt(m, u, ReceiptKind::Read).unwrap());
    }
}
