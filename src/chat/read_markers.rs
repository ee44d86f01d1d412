//! Read markers and unread counts (issue #20): method 43 "read up to", event 24, and the marker
//! moves a read receipt (42) and the user's own send make.
//!
//! One definition of unread: the messages of a group with seq > the reader's marker, deleted
//! ones left out, counted only from when the reader joined. It is kept as counts, never by
//! scanning a history: each group has a running message count, and each marker the count at
//! it, so `unread = messages - read_count - deleted after the marker`. A user's own send moves
//! their marker to that message, so nothing after a marker is theirs. Moving a marker to a seq
//! older than the group's newest message counts the messages after it from the log, at most
//! [`UNREAD_CAP`] + 1 of them: a count at the cap means "at least that many".

use std::mem;

use uuid::Uuid;

use super::{Chat, ConnId, Frame, Release};
use crate::error::ApiError;
use crate::idmap::IdMap;
use crate::protocol::{self, event};
use crate::store::{GroupCounts, GroupRecord, Marker, ReadStateRecords, Store, StoreResult};

/// The highest unread count reported; a count at it means at least that many.
pub const UNREAD_CAP: u64 = 1000;

/// Every group's counts and every member's marker, in memory.
///
/// What only the log can say again (a message's count, and its author's marker moving to it)
/// is "unsaved": written at the next [`ReadState::checkpoint`] (once a second, and at shutdown),
/// never per send, which kept the flusher writing a record per sender and per group each tick.
/// After a crash [`catch_up`] recounts those from the log after each group's saved count. The
/// rest (a 43's or a 42's marker, a join's, a delete) is "dirty": written with the tick that
/// made it ([`ReadState::write`]).
#[derive(Debug, Default)]
pub struct ReadState {
    groups: IdMap<GroupState>,
    dirty_groups: Vec<Uuid>,
    dirty_markers: Vec<(Uuid, Uuid)>,
    unsaved_groups: Vec<Uuid>,
    unsaved_markers: Vec<(Uuid, Uuid)>,
}

#[derive(Debug, Default)]
struct GroupState {
    counts: GroupCounts,
    markers: IdMap<MarkerState>,
    dirty: bool,
    unsaved: bool,
}

#[derive(Debug, Default)]
struct MarkerState {
    marker: Marker,
    dirty: bool,
    unsaved: bool,
}

impl ReadState {
    pub fn load(records: ReadStateRecords) -> ReadState {
        let mut state = ReadState::default();
        for (group, counts) in records.groups {
            state.groups.entry(group).or_default().counts = counts;
        }
        for (group, user, marker) in records.markers {
            let markers = &mut state.groups.entry(group).or_default().markers;
            markers.insert(
                user,
                MarkerState {
                    marker,
                    ..MarkerState::default()
                },
            );
        }
        state
    }

    pub fn has(&self, group: Uuid) -> bool {
        self.groups.contains_key(&group)
    }

    pub fn is_dirty(&self) -> bool {
        !self.dirty_groups.is_empty() || !self.dirty_markers.is_empty()
    }

    /// Sets a group's counts (a new group's, or an upgraded one's counted from its log).
    pub fn set_counts(&mut self, group: Uuid, counts: GroupCounts) {
        let state = self.groups.entry(group).or_default();
        state.counts = counts;
        mark_group(&mut self.dirty_groups, group, state);
    }

    pub fn counts_ref(&self, group: Uuid) -> Option<&GroupCounts> {
        self.groups.get(&group).map(|state| &state.counts)
    }

    #[cfg(test)]
    pub fn counts(&self, group: Uuid) -> GroupCounts {
        self.groups
            .get(&group)
            .map(|state| state.counts.clone())
            .unwrap_or_default()
    }

    /// A message by `author` stored at `seq`: the group's count goes up and the author's marker
    /// moves to it, both unsaved (see [`ReadState`]). On the send path: two map lookups, no
    /// allocation once warm, no store write.
    pub fn on_message(&mut self, group: Uuid, author: Uuid, seq: u64) {
        let state = self.groups.entry(group).or_default();
        state.counts.messages += 1;
        state.counts.last_message_seq = seq;
        let read_count = state.counts.messages;
        if !mem::replace(&mut state.unsaved, true) {
            self.unsaved_groups.push(group);
        }
        let marker = state.markers.entry(author).or_default();
        if marker.marker.read_seq < seq {
            marker.marker = Marker {
                read_seq: seq,
                read_count,
            };
        }
        if !mem::replace(&mut marker.unsaved, true) {
            self.unsaved_markers.push((group, author));
        }
    }

    /// Makes every unsaved change dirty: the next [`ReadState::write`] stores it.
    pub fn checkpoint(&mut self) {
        for group in self.unsaved_groups.drain(..) {
            if let Some(state) = self.groups.get_mut(&group) {
                if mem::take(&mut state.unsaved) {
                    mark_group(&mut self.dirty_groups, group, state);
                }
            }
        }
        for (group, user) in self.unsaved_markers.drain(..) {
            let Some(state) = self.groups.get_mut(&group) else {
                continue;
            };
            if let Some(marker) = state.markers.get_mut(&user) {
                if mem::take(&mut marker.unsaved) && !mem::replace(&mut marker.dirty, true) {
                    self.dirty_markers.push((group, user));
                }
            }
        }
    }

    /// A deleted message: left out of the unread counts of those whose marker is before it.
    /// (The hook for delete, method 45.)
    pub fn on_deleted(&mut self, group: Uuid, seq: u64, author: Uuid) {
        let state = self.groups.entry(group).or_default();
        let deleted = &mut state.counts.deleted;
        if let Err(at) = deleted.binary_search_by_key(&seq, |(seq, _)| *seq) {
            deleted.insert(at, (seq, author));
            mark_group(&mut self.dirty_groups, group, state);
        }
    }

    /// `user`'s marker in `group`. Every member has one (set at the join, or when a directory
    /// from before markers was opened); a missing one counts every message as read.
    pub fn marker(&self, group: Uuid, user: Uuid) -> Marker {
        let Some(state) = self.groups.get(&group) else {
            return Marker::default();
        };
        match state.markers.get(&user) {
            Some(marker) => marker.marker,
            None => Marker {
                read_seq: state.counts.last_message_seq,
                read_count: state.counts.messages,
            },
        }
    }

    pub fn set_marker(&mut self, group: Uuid, user: Uuid, marker: Marker) {
        let state = self.groups.entry(group).or_default();
        let entry = state.markers.entry(user).or_default();
        entry.marker = marker;
        if !mem::replace(&mut entry.dirty, true) {
            self.dirty_markers.push((group, user));
        }
    }

    /// A user joined at `seq`: what came before is not theirs to read.
    pub fn on_join(&mut self, group: Uuid, user: Uuid, seq: u64) {
        let read_count = self.groups.get(&group).map_or(0, |s| s.counts.messages);
        self.set_marker(
            group,
            user,
            Marker {
                read_seq: seq,
                read_count,
            },
        );
    }

    /// `user`'s unread count in `group`, at most [`UNREAD_CAP`].
    pub fn unread(&self, group: Uuid, user: Uuid) -> u64 {
        let Some(state) = self.groups.get(&group) else {
            return 0;
        };
        let marker = self.marker(group, user);
        let deleted_after = state
            .counts
            .deleted
            .iter()
            .rev()
            .take_while(|(seq, _)| *seq > marker.read_seq)
            .filter(|(_, author)| *author != user)
            .count() as u64;
        state
            .counts
            .messages
            .saturating_sub(marker.read_count)
            .saturating_sub(deleted_after)
            .min(UNREAD_CAP)
    }

    /// Puts the dirty changes into the store's pending writes (each record whole: an unsaved
    /// change to the same record goes with it).
    pub fn write(&mut self, store: &mut Store) {
        for group in self.dirty_groups.drain(..) {
            if let Some(state) = self.groups.get_mut(&group) {
                state.dirty = false;
                state.unsaved = false;
                store.put_group_counts(group, &state.counts);
            }
        }
        for (group, user) in self.dirty_markers.drain(..) {
            let Some(state) = self.groups.get_mut(&group) else {
                continue;
            };
            if let Some(marker) = state.markers.get_mut(&user) {
                marker.dirty = false;
                marker.unsaved = false;
                store.put_marker(group, user, marker.marker);
            }
        }
    }
}

/// A group of a data directory from before read markers: counted once from its log, and every
/// member's marker put at its newest message (what they had is taken as read). All of it is
/// written with the first tick.
pub(super) fn count_from_log(
    state: &mut ReadState,
    store: &Store,
    group: &GroupRecord,
) -> StoreResult<()> {
    let (messages, last_message_seq) = store.count_messages(group.id, 0, u64::MAX)?;
    let counts = GroupCounts {
        messages,
        last_message_seq,
        deleted: Vec::new(),
    };
    state.set_counts(group.id, counts);
    for member in &group.members {
        let marker = Marker {
            read_seq: last_message_seq,
            read_count: messages,
        };
        state.set_marker(group.id, *member, marker);
    }
    Ok(())
}

/// After a crash: the messages a group's log holds after its saved count (at most a second's
/// worth, see [`ReadState`]) are counted again, and each moves its author's marker, as
/// [`ReadState::on_message`] did before the crash. Written at the next checkpoint.
pub(super) fn catch_up(state: &mut ReadState, store: &Store, group: Uuid) -> StoreResult<()> {
    let saved = state
        .counts_ref(group)
        .map_or(0, |counts| counts.last_message_seq);
    if store.newest_in_group(group) <= saved {
        return Ok(());
    }
    for (seq, author) in store.messages_after(group, saved)? {
        state.on_message(group, author, seq);
    }
    Ok(())
}

fn mark_group(dirty: &mut Vec<Uuid>, group: Uuid, state: &mut GroupState) {
    if !mem::replace(&mut state.dirty, true) {
        dirty.push(group);
    }
}

/// What moves a marker.
#[derive(Debug, Clone, Copy)]
pub(super) enum Mover<'a> {
    /// Method 43: a 24, stored in the user's stream, to their other connections, and to the
    /// acting one as its reply, with the RPC's `id`.
    ReadUpTo { conn: ConnId, id: Option<&'a str> },
    /// A read receipt (42): no 24. The user's other connections get the 23 (as before markers
    /// existed, so a client of the first version sees the events it expects), and the 23 says
    /// the same: a read message moves its reader's marker to it when ahead.
    Receipt,
}

impl Chat {
    /// The message at `seq` in `group_id`, by `author`, was deleted: unread counts leave it
    /// out from now on. Delete (method 45, `chat::edits`) calls it once the message is erased.
    pub fn message_deleted(&mut self, group_id: Uuid, seq: u64, author: Uuid) {
        self.read_state.on_deleted(group_id, seq, author);
    }

    /// Method 43: moves `user`'s marker in `group_id` to `seq` (to the group's newest event
    /// when past it), never backwards. The acting connection always gets a 24 with the RPC's
    /// `id`: the stored one when the marker moved, else a transient one (no `seq`) with the
    /// marker in effect.
    pub(super) fn read_up_to(
        &mut self,
        conn: ConnId,
        user: Uuid,
        id: Option<&str>,
        group_id: Uuid,
        seq: u64,
        wall: u64,
    ) -> Result<(), ApiError> {
        self.member_group(group_id, user)?;
        let target = seq.min(self.store.newest_in_group(group_id));
        if self.move_marker(user, group_id, target, wall, Mover::ReadUpTo { conn, id })? {
            return Ok(());
        }
        let marker = self.read_state.marker(group_id, user);
        let body = protocol::ReadMarkerBody {
            group_id,
            user_id: user,
            seq: marker.read_seq,
        };
        let reply = protocol::encode(event::READ_MARKER, None, id, self.clock.now(wall), &body);
        let release = self.read_release();
        self.outbox.push(conn, Frame::Event(reply.into()), release);
        Ok(())
    }

    /// Moves `user`'s marker in `group` to `target` if that is ahead of it, with a 24 when
    /// [`Mover`] says so. Whether it moved.
    pub(super) fn move_marker(
        &mut self,
        user: Uuid,
        group: Uuid,
        target: u64,
        wall: u64,
        mover: Mover,
    ) -> Result<bool, ApiError> {
        let current = self.read_state.marker(group, user);
        if target <= current.read_seq {
            return Ok(false);
        }
        let (messages, last_message_seq) = self
            .read_state
            .counts_ref(group)
            .map_or((0, 0), |counts| (counts.messages, counts.last_message_seq));
        let after = if target >= last_message_seq {
            0
        } else {
            self.store
                .count_messages(group, target + 1, UNREAD_CAP + 1)?
                .0
        };
        self.read_state.set_marker(
            group,
            user,
            Marker {
                read_seq: target,
                read_count: messages.saturating_sub(after),
            },
        );
        let Mover::ReadUpTo { conn, id } = mover else {
            return Ok(true);
        };
        let stamp = self.clock.stamp(wall);
        let body = protocol::ReadMarkerBody {
            group_id: group,
            user_id: user,
            seq: target,
        };
        let stored = protocol::encode(
            event::READ_MARKER,
            Some(stamp.seq),
            None,
            stamp.timestamp,
            &body,
        );
        self.store
            .append(user, stamp, crate::store::Audience::All, stored.as_bytes());
        let stored: std::rc::Rc<str> = stored.into();
        self.deliver_to_users(&[user], Some(conn), &stored, stamp);
        // The acting connection's copy carries the RPC's `id`, and leaves once durable.
        let reply = match id {
            Some(_) => protocol::encode(
                event::READ_MARKER,
                Some(stamp.seq),
                id,
                stamp.timestamp,
                &body,
            )
            .into(),
            None => stored,
        };
        self.outbox
            .push(conn, Frame::Event(reply), Release::Durable);
        Ok(true)
    }
}

#[cfg(test)]
mod tests;
