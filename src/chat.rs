//! The chat core: groups and membership, who is connected, and for every action the events to
//! store and the connections to deliver them to. No sockets here: deliveries go into the
//! [`Outbox`], each marked with when it may leave ([`Release`]), and time is passed in, so all of
//! it runs the same in tests.

use std::rc::Rc;
use std::sync::Arc;

use serde::Serialize;
use uuid::Uuid;

use crate::clock::{Clock, Stamp};
use crate::error::ApiError;
use crate::idmap::IdMap;
use crate::metrics::Metrics;
use crate::protocol::{self, event, Call, Cursor, Rpc, RpcError};
use crate::store::{
    message_id, Audience, Ceiling, GroupRecord, MessageParts, ReceiptKind, RetryKey, Store,
    StoreResult, TickWrites,
};

/// A live connection: its slab key and a serial that is never reused, so that a delivery meant
/// for a closed connection cannot reach a new one that got the same key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId {
    pub key: usize,
    pub serial: u64,
}

/// Bytes waiting for the end of the tick.
#[derive(Debug, Clone)]
pub enum Frame {
    /// An encoded HTTP response.
    Http(Vec<u8>),
    /// A WebSocket text message; clones share the bytes, so a fan-out is encoded once. `Rc`, not
    /// a `Bytes`: the loop thread alone makes and drops the copies (one per recipient), and the
    /// atomic count of a `Bytes` was 5% of the loop under `fanout`.
    Event(Rc<str>),
}

/// When a frame may leave the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// Once the tick's writes are durable: answers and acks, which promise that something is
    /// stored, and whatever a sync reads.
    Durable,
    /// As soon as `seq` can never be handed out again after a crash (it is under the durable
    /// seq ceiling): stored events to the other connections, which acknowledge nothing to their
    /// reader. They may arrive before the flush; a crash in between loses them, unacknowledged.
    Early { seq: u64 },
    /// At once: transient events (typing), which carry no seq and promise nothing.
    Now,
}

impl Frame {
    pub fn byte_len(&self) -> usize {
        match self {
            Frame::Http(bytes) => bytes.len(),
            Frame::Event(text) => text.len(),
        }
    }
}

/// How far ahead of the last seq each tick's write puts the seq ceiling. Events may leave
/// before their flush only with seqs up to the durable ceiling (otherwise a crash could hand the
/// same seqs out again and a client's sync cursor would skip what they number). At the rates a
/// flush keeps up with, the ceiling stays ahead of every event; on a saturated core, where the
/// flusher runs only when the loop waits, fan-out then waits for the flush too, and leaves in
/// bigger writes (docs/BENCHMARKS.md, "The seq lease"). After a crash seqs restart from it,
/// leaving a gap (seqs are increasing, not consecutive).
pub const SEQ_LEASE: u64 = 1 << 10;

/// Everything a tick wants to send, in order, each with its [`Release`].
#[derive(Debug, Default)]
pub struct Outbox {
    items: Vec<(ConnId, Frame, Release)>,
    /// Bytes queued this tick, so the loop can stop a connection whose requests produce more
    /// than its buffers may hold.
    bytes: usize,
}

impl Outbox {
    pub fn push(&mut self, to: ConnId, frame: Frame, release: Release) {
        self.bytes += frame.byte_len();
        self.items.push((to, frame, release));
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Takes the tick's deliveries, leaving the (allocated) buffer in place for the next tick.
    pub fn drain(&mut self) -> std::vec::Drain<'_, (ConnId, Frame, Release)> {
        self.bytes = 0;
        self.items.drain(..)
    }
}

/// Group members after a join or a leave: the body of the 200 answer.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct GroupView {
    pub group_id: Uuid,
    pub name: String,
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
    /// Fills the random bits of message ids (they only make ids from different servers unlikely
    /// to collide; uniqueness here comes from the seq).
    rng: XorShift,
    presence: Presence,
    pub outbox: Outbox,
    pub metrics: Metrics,
    limits: ChatLimits,
}

impl Chat {
    /// Rebuilds the in-memory indices from the store.
    pub fn open(store: Store, limits: ChatLimits) -> StoreResult<Chat> {
        let ceiling = store.ceiling()?;
        let clock = Clock::new(ceiling.seq, ceiling.time);
        let mut records = store.all_groups()?;
        records.sort_by_key(|group| group.ordinal);
        let group_ids = records.iter().map(|group| group.id).collect();
        let groups = records.into_iter().map(|group| (group.id, group)).collect();
        Ok(Chat {
            store,
            clock,
            ceiling_written: ceiling.seq,
            groups,
            group_ids,
            rng: XorShift::seeded(),
            presence: Presence::default(),
            outbox: Outbox::default(),
            metrics: Metrics::default(),
            limits,
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
    pub fn needs_write(&self) -> bool {
        self.store.has_pending() || self.clock.seq() > self.ceiling_written
    }

    /// Seals the tick's changes as commit number `commit`, with a seq ceiling [`SEQ_LEASE`]
    /// ahead of the clock, for the flusher.
    pub fn write_tick(&mut self, commit: u64) -> Arc<TickWrites> {
        // Never lower: early events may already have left under a higher ceiling.
        let seq = (self.clock.seq() + SEQ_LEASE).max(self.ceiling_written);
        self.ceiling_written = seq;
        let time = self.clock.time();
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
        self.presence.0.entry(user).or_default().push(conn);
    }

    pub fn disconnect(&mut self, user: Uuid, conn: ConnId) {
        if let Some(conns) = self.presence.0.get_mut(&user) {
            conns.retain(|c| *c != conn);
            if conns.is_empty() {
                self.presence.0.remove(&user);
            }
        }
    }

    // --- REST actions ------------------------------------------------------------------------

    pub fn create_group(
        &mut self,
        creator: Uuid,
        name: &str,
        user_ids: &[String],
        wall: u64,
    ) -> Result<Uuid, ApiError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 256 {
            return Err(ApiError::bad_request("`name` must be 1 to 256 characters"));
        }
        let mut members: Vec<Uuid> = Vec::with_capacity(user_ids.len() + 1);
        let mut unknown = Vec::new();
        for text in user_ids {
            match text.parse::<Uuid>() {
                Ok(id) if self.store.user_exists(id)? => {
                    if id != creator && !members.contains(&id) {
                        members.push(id);
                    }
                }
                _ => unknown.push(text.as_str()),
            }
        }
        if !unknown.is_empty() {
            return Err(ApiError::bad_request(format!(
                "unknown user ids: {}",
                unknown.join(", ")
            )));
        }
        members.push(creator);

        let group_id = Uuid::new_v4();
        let stamp = self.clock.stamp(wall);
        let ordinal = self.group_ids.len() as u32 + 1;
        let group = GroupRecord {
            id: group_id,
            name: name.to_string(),
            creator,
            created_at: stamp.timestamp,
            ordinal,
            members,
        };
        let created = self.encode_group(stamp, &group);
        self.store.put_group(&group);
        for member in &group.members {
            self.store.open_membership(*member, group_id, stamp.seq)?;
        }
        self.store
            .append(group_id, stamp, Audience::All, created.as_bytes());
        self.deliver_to_users(&group.members, None, &created, stamp);
        self.group_ids.push(group_id);
        self.groups.insert(group_id, group);
        Ok(group_id)
    }

    /// `caller` adds `target` (themselves when `None`) to a group.
    pub fn join(
        &mut self,
        caller: Uuid,
        group_id: Uuid,
        target: Option<Uuid>,
        wall: u64,
    ) -> Result<GroupView, ApiError> {
        let group = self.group(group_id)?;
        let target = self.target_user(caller, target)?;
        if target != caller && !group.members.contains(&caller) {
            return Err(ApiError::forbidden(
                "only a member may add someone else to a group",
            ));
        }
        if group.members.contains(&target) {
            return Err(ApiError::conflict("already a member of this group"));
        }

        let welcome_stamp = self.clock.stamp(wall);
        let joined_stamp = self.clock.stamp(wall);
        let group = self.groups.get_mut(&group_id).expect("checked above");
        group.members.push(target);
        let group = group.clone();
        let welcome = self.encode_group(welcome_stamp, &group);
        let joined = encode_membership(event::JOINED, joined_stamp, group_id, target);
        self.store.put_group(&group);
        self.store
            .append(target, welcome_stamp, Audience::All, welcome.as_bytes());
        self.store
            .open_membership(target, group_id, joined_stamp.seq)?;
        self.store
            .append(group_id, joined_stamp, Audience::All, joined.as_bytes());
        self.deliver_to_users(&[target], None, &welcome, welcome_stamp);
        self.deliver_to_users(&group.members, None, &joined, joined_stamp);
        Ok(view(&group))
    }

    /// `caller` removes `target` (themselves when `None`) from a group.
    pub fn leave(
        &mut self,
        caller: Uuid,
        group_id: Uuid,
        target: Option<Uuid>,
        wall: u64,
    ) -> Result<GroupView, ApiError> {
        let group = self.group(group_id)?;
        let target = self.target_user(caller, target)?;
        if target != caller && group.creator != caller {
            return Err(ApiError::forbidden(
                "only the group's creator may remove someone else",
            ));
        }
        if !group.members.contains(&target) {
            return Err(ApiError::conflict("not a member of this group"));
        }

        let stamp = self.clock.stamp(wall);
        let group = self.groups.get_mut(&group_id).expect("checked above");
        group.members.retain(|m| *m != target);
        let group = group.clone();
        let left = encode_membership(event::LEFT, stamp, group_id, target);
        self.store.put_group(&group);
        self.store
            .append(group_id, stamp, Audience::All, left.as_bytes());
        self.store.close_membership(target, group_id, stamp.seq)?;
        self.deliver_to_users(&group.members, None, &left, stamp);
        self.deliver_to_users(&[target], None, &left, stamp);
        Ok(view(&group))
    }

    // --- WebSocket RPCs ----------------------------------------------------------------------

    /// Handles one text message from `conn` of `user`. Failures become a type-90 event for
    /// that connection; a store failure is reported the same way and nothing is acknowledged.
    pub fn handle_text(&mut self, conn: ConnId, user: Uuid, text: &str, wall: u64) {
        let result = match protocol::decode(text) {
            Ok(rpc) => {
                let method = rpc_method(&rpc.call);
                *self.metrics.rpcs.entry(method).or_default() += 1;
                self.dispatch(conn, user, &rpc, wall)
                    .map_err(|error| RpcError {
                        method: Some(method),
                        id: rpc.id.clone(),
                        error,
                    })
            }
            Err(err) => Err(err),
        };
        if let Err(err) = result {
            self.send_error(conn, &err, wall);
        }
    }

    /// Answers a message the server cannot take (e.g. a binary frame) with a type-90 event.
    pub fn send_error(&mut self, conn: ConnId, err: &RpcError, wall: u64) {
        self.metrics.count_error(err.error.code);
        let body = protocol::ErrorBody {
            code: err.error.code,
            error: &err.error.message,
            method: err.method,
            id: err.id.as_deref(),
        };
        let bytes = protocol::encode(
            event::ERROR,
            None,
            err.id.as_deref(),
            self.clock.now(wall),
            &body,
        );
        self.outbox
            .push(conn, Frame::Event(bytes.into()), Release::Durable);
    }

    fn dispatch(&mut self, conn: ConnId, user: Uuid, rpc: &Rpc, wall: u64) -> Result<(), ApiError> {
        let id = rpc.id.as_deref();
        match &rpc.call {
            Call::Sync { cursor, limit } => self.sync(conn, user, id, *cursor, *limit, wall),
            Call::Send { group_id, data } => self.send(conn, user, id, *group_id, data, wall),
            Call::Receipt { message_id, read } => {
                self.receipt(conn, user, *message_id, *read, wall)
            }
            Call::Typing { group_id, start } => self.typing(conn, user, *group_id, *start, wall),
        }
    }

    fn send(
        &mut self,
        conn: ConnId,
        user: Uuid,
        client_id: Option<&str>,
        group_id: Uuid,
        data: &str,
        wall: u64,
    ) -> Result<(), ApiError> {
        if data.len() > self.limits.max_data_bytes {
            return Err(ApiError::too_large(
                413,
                format!("`data` over {} bytes", self.limits.max_data_bytes),
            ));
        }
        // The retry index is looked up once the events are rendered: its line is on its way
        // from memory meanwhile (see `Store::retry_key`). A retry of a send we already stored
        // is answered with the original ack and stores nothing, even if the sender has left
        // the group since (the message was stored).
        let retry_key = client_id.map(|client_id| self.store.retry_key(user, client_id));
        let seq_before = self.clock.seq();
        if let Err(not_member) = self.member_group(group_id, user) {
            let retried = self.answer_retry(conn, retry_key.as_ref())?;
            return if retried { Ok(()) } else { Err(not_member) };
        }
        let stamp = self.clock.stamp(wall);
        // The ack is the next seq at the same moment: a message id says both (see
        // `message_id::ack_seq`).
        let ack_stamp = Stamp {
            seq: self.clock.stamp(wall).seq,
            timestamp: stamp.timestamp,
        };
        let ordinal = self.groups[&group_id].ordinal;
        let message_id = message_id::new(stamp.seq, ordinal, self.rng.next());
        let message: Rc<str> =
            protocol::message_event(stamp, message_id, data, group_id, user).into();
        let ack: Rc<str> = protocol::sent_event(client_id, ack_stamp, message_id).into();
        if self.answer_retry(conn, retry_key.as_ref())? {
            // Nothing carries the two seqs drawn for it, so they are handed out again.
            self.clock.give_back(seq_before);
            return Ok(());
        }
        // Stored as parts, the ack folded in (visible to the sender only): a sync renders both
        // events again with the same functions, byte for byte.
        self.store.append_message(
            group_id,
            &MessageParts {
                stamp,
                message_id,
                author: user,
                data,
                ack_seq: ack_stamp.seq,
                client_id,
            },
        );
        if let Some(retry_key) = &retry_key {
            self.store
                .put_client_ack(retry_key, message_id, ack_stamp.timestamp);
        }
        self.outbox.push(conn, Frame::Event(ack), Release::Durable);
        let members = &self.groups[&group_id].members;
        let early = Release::Early { seq: stamp.seq };
        self.presence
            .deliver(&mut self.outbox, members, Some(conn), &message, early);
        Ok(())
    }

    /// Queues the original ack of a send this one retries; whether there was one.
    fn answer_retry(&mut self, conn: ConnId, retry_key: Option<&RetryKey>) -> StoreResult<bool> {
        let Some(ack) = retry_key
            .map(|key| self.store.client_ack(key))
            .transpose()?
            .flatten()
        else {
            return Ok(false);
        };
        self.outbox
            .push(conn, Frame::Event(ack.into()), Release::Durable);
        Ok(true)
    }

    fn receipt(
        &mut self,
        conn: ConnId,
        user: Uuid,
        message_id: Uuid,
        read: bool,
        wall: u64,
    ) -> Result<(), ApiError> {
        let unknown = || ApiError::not_found("unknown message");
        let (seq, ordinal) = message_id::location(message_id);
        let group_id = *self
            .group_ids
            .get((ordinal as usize).wrapping_sub(1))
            .ok_or_else(unknown)?;
        // Membership first, so a non-member cannot probe which message ids exist.
        self.member_group(group_id, user)?;
        let author = self
            .store
            .message_author(group_id, seq, message_id)?
            .ok_or_else(unknown)?;
        let kind = if read {
            ReceiptKind::Read
        } else {
            ReceiptKind::Delivered
        };
        if !self.store.record_receipt(message_id, user, kind)? {
            return Ok(());
        }
        let stamp = self.clock.stamp(wall);
        let kind = if read { event::READ } else { event::DELIVERED };
        let receipt = encode_event(
            kind,
            stamp,
            &protocol::ReceiptBody {
                message_id,
                group_id,
                user_id: user,
            },
        );
        self.store
            .append(author, stamp, Audience::All, receipt.as_bytes());
        if author != user {
            self.store
                .append(user, stamp, Audience::All, receipt.as_bytes());
            self.deliver_to_users(&[author], None, &receipt, stamp);
        }
        self.deliver_to_users(&[user], Some(conn), &receipt, stamp);
        Ok(())
    }

    fn typing(
        &mut self,
        conn: ConnId,
        user: Uuid,
        group_id: Uuid,
        start: bool,
        wall: u64,
    ) -> Result<(), ApiError> {
        self.member_group(group_id, user)?;
        let kind = if start {
            event::TYPING_START
        } else {
            event::TYPING_END
        };
        let typing: Rc<str> = protocol::encode(
            kind,
            None,
            None,
            self.clock.now(wall),
            &protocol::GroupUserBody {
                group_id,
                user_id: user,
            },
        )
        .into();
        let others = self.groups[&group_id]
            .members
            .iter()
            .filter(|m| **m != user);
        self.presence
            .deliver(&mut self.outbox, others, Some(conn), &typing, Release::Now);
        Ok(())
    }

    fn sync(
        &mut self,
        conn: ConnId,
        user: Uuid,
        client_id: Option<&str>,
        cursor: Cursor,
        limit: Option<u64>,
        wall: u64,
    ) -> Result<(), ApiError> {
        // At least one event per page, or `more` could stay true for ever.
        let limit = limit
            .map(|l| l.clamp(1, self.limits.sync_max_limit as u64) as usize)
            .unwrap_or(self.limits.sync_default_limit);
        let (events, more) =
            self.store
                .events_after(user, cursor, limit, self.limits.sync_max_bytes)?;
        // The 29 names the last event sent; after an empty page, the request's cursor for the
        // field it gave, and the newest event's stamp (nothing is after the cursor) for the other.
        let last = match events.last() {
            Some(last) => last.stamp,
            None => {
                let newest = self.store.newest_event(user)?.unwrap_or(Stamp {
                    seq: 0,
                    timestamp: 0,
                });
                match cursor {
                    Cursor::Seq(seq) => Stamp { seq, ..newest },
                    Cursor::Timestamp(timestamp) => Stamp {
                        timestamp,
                        ..newest
                    },
                }
            }
        };
        for event in events {
            let text = String::from_utf8(event.bytes)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
            self.outbox
                .push(conn, Frame::Event(text.into()), Release::Durable);
        }
        let done = protocol::encode(
            event::SYNC_COMPLETE,
            None,
            client_id,
            self.clock.now(wall),
            &protocol::SyncCompleteBody {
                timestamp: last.timestamp,
                seq: last.seq,
                more,
            },
        );
        self.outbox
            .push(conn, Frame::Event(done.into()), Release::Durable);
        Ok(())
    }

    // --- helpers -----------------------------------------------------------------------------

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

/// user -> that user's live WebSocket connections on this server.
#[derive(Debug, Default)]
struct Presence(IdMap<Vec<ConnId>>);

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
            for conn in self.0.get(user).into_iter().flatten() {
                if Some(*conn) != except {
                    outbox.push(*conn, Frame::Event(frame.clone()), release);
                }
            }
        }
    }
}

/// A fast generator for the non-secret random bits of message ids.
struct XorShift(u64);

impl XorShift {
    fn seeded() -> XorShift {
        let seed = u64::from_str_radix(&crate::auth::random_hex(8), 16).unwrap_or(0x9E37_79B9);
        XorShift(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
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

fn view(group: &GroupRecord) -> GroupView {
    GroupView {
        group_id: group.id,
        name: group.name.clone(),
        user_ids: group.members.clone(),
    }
}

fn rpc_method(call: &Call) -> i64 {
    use protocol::method;
    match call {
        Call::Sync { .. } => method::SYNC,
        Call::Send { .. } => method::SEND,
        Call::Receipt { read: false, .. } => method::DELIVERED,
        Call::Receipt { read: true, .. } => method::READ,
        Call::Typing { start: true, .. } => method::TYPING_START,
        Call::Typing { start: false, .. } => method::TYPING_END,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::client_ids::ClientIdLimits;

    fn test_limits() -> ChatLimits {
        ChatLimits {
            max_data_bytes: 1024,
            sync_default_limit: 10,
            sync_max_limit: 10,
            sync_max_bytes: 1 << 20,
        }
    }

    /// A chat over a store in a temporary directory (kept alive by the first half), with one
    /// group of one member, who is sending on a connection: (chat, user, connection, group).
    fn chat_with_a_group(
        client_ids: ClientIdLimits,
        wall: u64,
    ) -> (tempfile::TempDir, Chat, Uuid, ConnId, Uuid) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_with(dir.path(), 1 << 20, client_ids).unwrap();
        let mut chat = Chat::open(store, test_limits()).unwrap();
        let user = Uuid::from_u128(1);
        let group = chat.create_group(user, "g", &[], wall).unwrap();
        (dir, chat, user, ConnId { key: 1, serial: 1 }, group)
    }

    /// Each commit leases seqs ahead; the lease is never lowered, and a tick that handed out
    /// none needs no write.
    #[test]
    fn the_seq_ceiling_runs_ahead_and_never_goes_down() {
        let wall = crate::clock::wall_ms();
        let (_dir, mut chat, user, conn, group) = chat_with_a_group(ClientIdLimits::DEFAULT, wall);
        let first = chat.write_tick(1).ceiling();
        assert_eq!(first.seq, 1 + SEQ_LEASE, "the group's 70 took seq 1");
        assert!(!chat.needs_write(), "nothing new to write");
        chat.send(conn, user, None, group, "hi", wall).unwrap();
        let second = chat.write_tick(2).ceiling();
        assert_eq!(second.seq, 3 + SEQ_LEASE);
        assert_eq!(second.time, wall);
        let third = chat.write_tick(3).ceiling();
        assert_eq!(third.seq, second.seq, "never lower");
        chat.commit().unwrap();
        assert_eq!(
            chat.store.ceiling().unwrap().seq,
            3,
            "a clean stop leaves no gap"
        );
    }

    /// A retry draws no seq for good: a storm of them leaves the clock where the original left
    /// it.
    #[test]
    fn retries_do_not_move_the_clock() {
        let wall = crate::clock::wall_ms();
        let (_dir, mut chat, user, conn, group) = chat_with_a_group(ClientIdLimits::DEFAULT, wall);
        chat.send(conn, user, Some("c-1"), group, "hi", wall)
            .unwrap();
        let after_original = chat.clock.seq();
        for _ in 0..1_000 {
            chat.send(conn, user, Some("c-1"), group, "hi", wall)
                .unwrap();
        }
        assert_eq!(chat.clock.seq(), after_original);
        let acks: Vec<String> = chat
            .outbox
            .drain()
            .filter_map(|(_, frame, _)| match frame {
                Frame::Event(text) => Some(text.to_string()),
                _ => None,
            })
            .collect();
        assert_eq!(acks.len(), 1_001, "the original ack and one for each retry");
        assert!(acks.iter().all(|ack| *ack == acks[0]), "the same ack");
        assert!(
            acks[0].starts_with(r#"{"type":21,"seq":3,"id":"c-1""#),
            "{}",
            acks[0]
        );
    }

    /// Timestamps stay on the wall clock under any rate: 3 sends per millisecond for 20 s (the
    /// first version's clock ran 100 s ahead in it, and its retry window, counted in it,
    /// forgot a send after 12.5 s of 60), each event stamped with its own millisecond.
    #[test]
    fn a_burst_keeps_timestamps_on_the_wall_and_the_retry_window() {
        let window = ClientIdLimits {
            window_ms: 60_000,
            max_entries: 10_000_000,
        };
        let start = crate::clock::wall_ms();
        let (_dir, mut chat, user, conn, group) = chat_with_a_group(window, start);
        chat.send(conn, user, Some("first"), group, "hi", start)
            .unwrap();
        for ms in 1..=20_000u64 {
            for i in 0..3 {
                let id = format!("{ms}-{i}");
                chat.send(conn, user, Some(&id), group, "hi", start + ms)
                    .unwrap();
            }
            chat.outbox.drain();
        }
        assert_eq!(chat.clock.time(), start + 20_000, "on the wall");
        assert_eq!(chat.clock.seq(), 1 + 2 + 2 * 60_000, "two seqs a send");
        assert!(chat
            .store
            .client_ack(&chat.store.retry_key(user, "first"))
            .unwrap()
            .is_some());
    }
}
