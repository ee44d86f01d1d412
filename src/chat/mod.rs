//! The chat core: groups and membership, who is connected, and for every action the events to
//! store and the connections to deliver them to. No sockets here: deliveries go into the
//! [`Outbox`], each marked with when it may leave ([`Release`]), and time is passed in, so all of
//! it runs the same in tests.

mod degraded;
mod devices;
mod edits;
mod groups;
mod history;
mod limits;
mod outbox;
mod presence;
mod rpc;
// Issue #20: the group list and view, read markers and unread counts.
mod conversations;
mod read_markers;
#[cfg(test)]
mod tests;

use std::rc::Rc;
use std::sync::Arc;

use serde::Serialize;
use uuid::Uuid;

use crate::clock::{Clock, Stamp};
use crate::error::ApiError;
use crate::idmap::IdMap;
use crate::metrics::Metrics;
use crate::protocol::{self, event};
use crate::store::{Ceiling, GroupRecord, Store, StoreResult, TickWrites};
pub use conversations::ConversationView;
pub use devices::{Devices, CLOSE_REVOKED, CLOSE_SUSPENDED};
pub use limits::check_group_event_fits;
use limits::{Bucket, ChangeBuckets};
pub use outbox::{ConnId, Frame, Outbox, Release};
use read_markers::ReadState;
pub use read_markers::UNREAD_CAP;
pub use rpc::Cost;

/// How far ahead of the last seq each tick's write puts the seq ceiling. Events may leave
/// before their flush only with seqs up to the durable ceiling (otherwise a crash could hand the
/// same seqs out again and a client's sync cursor would skip what they number). At the rates a
/// flush keeps up with, the ceiling stays ahead of every event; on a saturated core, where the
/// flusher runs only when the loop waits, fan-out then waits for the flush too, and leaves in
/// bigger writes (docs/BENCHMARKS.md, "The seq lease"). After a crash seqs restart from it,
/// leaving a gap (seqs are increasing, not consecutive).
pub const SEQ_LEASE: u64 = 1 << 10;

/// Streams (the user's own and one per membership interval) one sync page may open once it has
/// an event to return: past them it ends with `more: true`, so a user in many groups cannot hold
/// the loop for long with one request.
pub const SYNC_MAX_STREAMS: usize = 1024;

/// A group after a join, a leave or a rename: the body of the 200 answer.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct GroupView {
    pub group_id: Uuid,
    pub name: String,
    /// Null once the last member left.
    pub owner: Option<Uuid>,
    pub user_ids: Vec<Uuid>,
}

/// Limits the core enforces.
#[derive(Debug, Clone, Copy)]
pub struct ChatLimits {
    pub max_data_bytes: usize,
    pub sync_default_limit: usize,
    pub sync_max_limit: usize,
    /// A sync page stops after about this many bytes, so it fits the connection's outbox.
    pub sync_max_bytes: usize,
    /// Streams a sync page may open once it has an event (see [`SYNC_MAX_STREAMS`]).
    pub sync_max_streams: usize,
    pub max_group_members: usize,
    pub max_groups_per_user: usize,
    /// Per user, 0 = no limit.
    pub sends_per_second: u32,
    pub typing_per_second: u32,
    /// Joins and leaves one user may make per minute, 0 = no limit.
    pub membership_changes_per_minute: u32,
    /// Open WebSockets per user, 0 = no limit.
    pub max_connections_per_user: usize,
}

pub struct Chat {
    store: Store,
    clock: Clock,
    /// The seq ceiling of the last [`Chat::write_tick`]; a tick that hands out a seq above it
    /// must write a new one.
    ceiling_written: u64,
    groups: IdMap<GroupRecord>,
    /// Group ids by ordinal - 1: message ids carry the ordinal, receipts find the group here.
    group_ids: Vec<Uuid>,
    /// How many groups each user is in now (users in none are absent).
    groups_of: IdMap<u32>,
    change_buckets: ChangeBuckets,
    /// Fills the random bits of message ids (uniqueness here comes from the seq; these make ids
    /// from different servers unlikely to collide, and an id not guessable from another).
    rng: IdRng,
    presence: Presence,
    pub outbox: Outbox,
    pub metrics: Metrics,
    limits: ChatLimits,
    /// While the store cannot write: reads return nothing stamped above this, and leave at once
    /// (`degraded`).
    read_limit: Option<Stamp>,
    /// Sessions' open WebSockets, for `GET /sessions` and for revocations.
    pub devices: Devices,
    /// Presence events and last-seen times (issue #20).
    presence_state: presence::PresenceState,
    /// Message counts and read markers, for unread counts (see [`read_markers`]).
    read_state: ReadState,
}

impl Chat {
    /// Rebuilds the in-memory indices from the store.
    pub fn open(mut store: Store, limits: ChatLimits) -> StoreResult<Chat> {
        let ceiling = store.ceiling()?;
        let clock = Clock::new(ceiling.seq, ceiling.time);
        let mut records = store.all_groups()?;
        records.sort_by_key(|group| group.ordinal);
        for group in &mut records {
            groups::settle_owner(group);
        }
        let group_ids: Vec<Uuid> = records.iter().map(|group| group.id).collect();
        // A sync skips the groups with nothing after its cursor (see `Store::sync_page`).
        for group in &group_ids {
            store.learn_newest_seq(*group)?;
        }
        let mut groups_of: IdMap<u32> = IdMap::default();
        for member in records.iter().flat_map(|group| &group.members) {
            *groups_of.entry(*member).or_default() += 1;
        }
        let over = records
            .iter()
            .filter(|group| group.members.len() > limits.max_group_members)
            .count();
        if over > 0 {
            log::warn!(
                "{over} groups have more than --max-group-members ({}) members: they keep them, \
                 and take no more until below",
                limits.max_group_members
            );
        }
        let mut read_state = ReadState::load(store.all_read_state()?);
        for group in &records {
            if read_state.has(group.id) {
                read_markers::catch_up(&mut read_state, &store, group.id)?;
            } else {
                read_markers::count_from_log(&mut read_state, &store, group)?;
            }
        }
        let groups = records.into_iter().map(|group| (group.id, group)).collect();
        Ok(Chat {
            store,
            clock,
            ceiling_written: ceiling.seq,
            groups,
            group_ids,
            groups_of,
            change_buckets: ChangeBuckets::default(),
            rng: IdRng::seeded(),
            presence: Presence::default(),
            outbox: Outbox::default(),
            metrics: Metrics::default(),
            limits,
            read_limit: None,
            devices: Devices::default(),
            presence_state: presence::PresenceState::default(),
            read_state,
        })
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// For the REST handlers that write records (users, sessions) directly.
    pub fn store_mut(&mut self) -> &mut Store {
        &mut self.store
    }

    /// Whether the tick must write to the store: it changed something, or handed out seqs
    /// above the ceiling written last.
    /// Saves the unread counts' changes that only the log could say again (see
    /// `read_markers::ReadState`): once a second, from the loop's sweep.
    pub fn checkpoint_read_state(&mut self) {
        self.read_state.checkpoint();
    }

    pub fn needs_write(&self) -> bool {
        self.store.has_pending()
            || self.clock.seq() > self.ceiling_written
            || self.read_state.is_dirty()
    }

    /// Seals the tick's changes as commit number `commit`, with a seq ceiling [`SEQ_LEASE`]
    /// ahead of the clock, for the flusher.
    pub fn write_tick(&mut self, commit: u64) -> Arc<TickWrites> {
        // Never lower: early events may already have left under a higher ceiling.
        let seq = (self.clock.seq() + SEQ_LEASE).max(self.ceiling_written);
        self.ceiling_written = seq;
        let time = self.clock.time();
        self.read_state.write(&mut self.store);
        self.store.write(commit, Ceiling { seq, time })
    }

    /// Writes and flushes on the calling thread, with the ceiling at the clock itself, so that
    /// a clean restart's seqs go on without a gap: for shutdown (when every event handed out is
    /// durable, so no lease is needed), tools and benches.
    pub fn commit(&mut self) -> StoreResult<()> {
        let ceiling = Ceiling {
            seq: self.clock.seq(),
            time: self.clock.time(),
        };
        self.read_state.checkpoint();
        self.read_state.write(&mut self.store);
        self.store.commit(ceiling)?;
        self.ceiling_written = ceiling.seq;
        Ok(())
    }

    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    pub fn users_online(&self) -> usize {
        self.presence.0.len()
    }

    pub fn respond(&mut self, to: ConnId, bytes: Vec<u8>) {
        self.outbox.push(to, Frame::Http(bytes), Release::Durable);
    }

    pub fn connect(&mut self, user: Uuid, conn: ConnId) {
        let online = self.presence.0.entry(user).or_insert_with(|| Online {
            conns: Vec::new(),
            sends: Bucket::FULL,
            typing: Bucket::FULL,
        });
        online.conns.push(conn);
        let first = online.conns.len() == 1;
        self.presence_connected(user, first, crate::clock::wall_ms());
    }

    pub fn disconnect(&mut self, user: Uuid, conn: ConnId) {
        let wall = crate::clock::wall_ms();
        self.session_disconnected(conn, wall);
        if let Some(online) = self.presence.0.get_mut(&user) {
            online.conns.retain(|c| *c != conn);
            if online.conns.is_empty() {
                self.presence.0.remove(&user);
                self.presence_disconnected(user, wall);
            }
        }
    }

    /// Who a join or leave is about: `target`, or the caller when absent; it must exist.
    fn target_user(&self, caller: Uuid, target: Option<Uuid>) -> Result<Uuid, ApiError> {
        match target {
            Some(target) if target != caller && !self.store.user_exists(target)? => {
                Err(ApiError::bad_request(format!("unknown user id: {target}")))
            }
            target => Ok(target.unwrap_or(caller)),
        }
    }

    fn group(&self, group_id: Uuid) -> Result<&GroupRecord, ApiError> {
        self.groups
            .get(&group_id)
            .ok_or_else(|| ApiError::not_found("unknown group"))
    }

    /// The group, if `user` is a member of it.
    fn member_group(&self, group_id: Uuid, user: Uuid) -> Result<&GroupRecord, ApiError> {
        let group = self.group(group_id)?;
        if group.members.contains(&user) {
            Ok(group)
        } else {
            Err(ApiError::not_member())
        }
    }

    fn encode_group(&self, stamp: Stamp, group: &GroupRecord) -> Rc<str> {
        encode_event(
            event::GROUP,
            stamp,
            &protocol::GroupBody {
                group_id: group.id,
                name: &group.name,
                owner: group.owner,
                user_ids: &group.members,
            },
        )
    }

    /// Queues a stored event stamped `stamp` for every live connection of `users`.
    fn deliver_to_users(
        &mut self,
        users: &[Uuid],
        except: Option<ConnId>,
        frame: &Rc<str>,
        stamp: Stamp,
    ) {
        let early = Release::Early { seq: stamp.seq };
        self.presence
            .deliver(&mut self.outbox, users, except, frame, early);
    }
}

/// user -> that user's live WebSocket connections on this server, and their rate buckets.
#[derive(Debug, Default)]
struct Presence(IdMap<Online>);

#[derive(Debug)]
struct Online {
    conns: Vec<ConnId>,
    sends: Bucket,
    typing: Bucket,
}

impl Presence {
    /// Queues `frame` for every live connection of `users`, except `except`.
    fn deliver<'a>(
        &self,
        outbox: &mut Outbox,
        users: impl IntoIterator<Item = &'a Uuid>,
        except: Option<ConnId>,
        frame: &Rc<str>,
        release: Release,
    ) {
        for user in users {
            for conn in self
                .0
                .get(user)
                .into_iter()
                .flat_map(|online| &online.conns)
            {
                if Some(*conn) != except {
                    outbox.push(*conn, Frame::Event(frame.clone()), release);
                }
            }
        }
    }
}

/// The random bits of message ids: ChaCha20 seeded from the OS at start, a CSPRNG that makes
/// them in blocks in memory, so a message costs no system call.
struct IdRng(rand_chacha::ChaCha20Rng);

impl IdRng {
    fn seeded() -> IdRng {
        use rand_chacha::rand_core::SeedableRng;
        let mut seed = [0u8; 32];
        crate::auth::fill_random(&mut seed);
        IdRng(rand_chacha::ChaCha20Rng::from_seed(seed))
    }

    fn next(&mut self) -> u64 {
        rand_chacha::rand_core::RngCore::next_u64(&mut self.0)
    }
}

/// A joined (72) or left (73) event.
fn encode_membership(kind: u16, stamp: Stamp, group_id: Uuid, user_id: Uuid) -> Rc<str> {
    encode_event(kind, stamp, &protocol::GroupUserBody { group_id, user_id })
}

/// A stored event other than a message, encoded once for its recipients and the log.
fn encode_event<B: Serialize>(kind: u16, stamp: Stamp, body: &B) -> Rc<str> {
    protocol::encode(kind, Some(stamp.seq), None, stamp.timestamp, body).into()
}
