//! Group membership as the store keeps it (format 6): each (group, user) pair's state in the
//! `members` table, and every membership interval that ended in the `intervals` table, keyed by
//! where it ended. A join or a leave writes a few small keys whatever the user's history or the
//! group's size, and a sync reads only the intervals that end after its cursor; the open
//! intervals (the current memberships) are kept in memory, as the chat core keeps the groups.

use std::cell::Cell;
use std::iter::Peekable;
use std::ops::Bound;

use uuid::Uuid;

use super::backend::{Direction, Entries, Table};
use super::records::GroupRecord;
use super::{read_u64, Store, StoreResult};
use crate::idmap::IdMap;

/// The first byte of a `members` value: a member, or removed by the owner; an empty value is
/// neither (a user who left).
const MEMBER: u8 = 1;
const REMOVED: u8 = 2;

/// What the `members` table says of a user in a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    /// A member since `seq` (where the open interval starts); `order` ranks the members who
    /// joined at one seq (a new group's, in the order of its event 70).
    Member { seq: u64, order: u32 },
    /// Removed by the owner at `seq` (or, upgraded from format 5, `order`-th in its list).
    Removed { seq: u64, order: u32 },
    /// Left, or removed and added back and left again: no rights, no restriction.
    Gone,
}

impl MemberState {
    pub fn encode(self) -> Vec<u8> {
        let (tag, seq, order) = match self {
            MemberState::Member { seq, order } => (MEMBER, seq, order),
            MemberState::Removed { seq, order } => (REMOVED, seq, order),
            MemberState::Gone => return Vec::new(),
        };
        let mut value = Vec::with_capacity(13);
        value.push(tag);
        value.extend_from_slice(&seq.to_be_bytes());
        value.extend_from_slice(&order.to_be_bytes());
        value
    }

    /// `None` for a value this parley never writes.
    pub fn decode(value: &[u8]) -> Option<MemberState> {
        if value.is_empty() {
            return Some(MemberState::Gone);
        }
        if value.len() != 13 {
            return None;
        }
        let seq = read_u64(&value[1..9]);
        let order = u32::from_be_bytes(value[9..13].try_into().ok()?);
        match value[0] {
            MEMBER => Some(MemberState::Member { seq, order }),
            REMOVED => Some(MemberState::Removed { seq, order }),
            _ => None,
        }
    }
}

/// A membership interval that ended: from the seq that made the user a member to the seq that
/// ended it, both inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClosedInterval {
    pub group: Uuid,
    pub from: u64,
    pub to: u64,
}

impl ClosedInterval {
    /// Its key in `intervals`: user ++ to ++ group ++ from, so that a user's intervals sort by
    /// where they end (a value is empty).
    pub fn key(&self, user: Uuid) -> Vec<u8> {
        let mut key = Vec::with_capacity(48);
        key.extend_from_slice(user.as_bytes());
        key.extend_from_slice(&self.to.to_be_bytes());
        key.extend_from_slice(self.group.as_bytes());
        key.extend_from_slice(&self.from.to_be_bytes());
        key
    }

    /// The user and the interval of an `intervals` key; `None` for a malformed one.
    pub fn decode(key: &[u8]) -> Option<(Uuid, ClosedInterval)> {
        if key.len() != 48 {
            return None;
        }
        let user = Uuid::from_slice(&key[..16]).ok()?;
        let interval = ClosedInterval {
            to: read_u64(&key[16..24]),
            group: Uuid::from_slice(&key[24..40]).ok()?,
            from: read_u64(&key[40..48]),
        };
        Some((user, interval))
    }
}

/// The `members` key of a user in a group: group ++ user, so a group's members are together.
pub fn member_key(group: Uuid, user: Uuid) -> Vec<u8> {
    let mut key = Vec::with_capacity(32);
    key.extend_from_slice(group.as_bytes());
    key.extend_from_slice(user.as_bytes());
    key
}

/// Every user's open memberships: the groups they are in now, each with the seq they joined
/// at. Changed as the store's records are, so a sync sees what this tick wrote.
#[derive(Debug, Default)]
pub struct OpenMemberships(IdMap<Vec<(Uuid, u64)>>);

impl OpenMemberships {
    pub fn of(&self, user: Uuid) -> &[(Uuid, u64)] {
        self.0.get(&user).map_or(&[], Vec::as_slice)
    }

    fn open(&mut self, user: Uuid, group: Uuid, from: u64) {
        let groups = self.0.entry(user).or_default();
        match groups.iter_mut().find(|(g, _)| *g == group) {
            Some(open) => open.1 = from,
            None => groups.push((group, from)),
        }
    }

    /// Ends `user`'s membership of `group`: the seq it began at, if it was open.
    fn close(&mut self, user: Uuid, group: Uuid) -> Option<u64> {
        let groups = self.0.get_mut(&user)?;
        let at = groups.iter().position(|(g, _)| *g == group)?;
        let (_, from) = groups.swap_remove(at);
        if groups.is_empty() {
            self.0.remove(&user);
        }
        Some(from)
    }
}

impl Store {
    /// Records that `user` became a member of `group` at `seq` (inclusive), after every member
    /// who joined before; an owner's removal of them no longer holds.
    pub fn open_membership(&mut self, user: Uuid, group: Uuid, seq: u64) -> StoreResult<()> {
        self.open_membership_at(user, group, seq, 0);
        Ok(())
    }

    /// Records a new group's `members`, all members from `seq`, in this order.
    pub fn open_memberships(&mut self, group: Uuid, members: &[Uuid], seq: u64) {
        for (order, member) in members.iter().enumerate() {
            self.open_membership_at(*member, group, seq, order as u32);
        }
    }

    fn open_membership_at(&mut self, user: Uuid, group: Uuid, seq: u64, order: u32) {
        let state = MemberState::Member { seq, order };
        self.put(Table::Members, member_key(group, user), state.encode());
        self.memberships.open(user, group, seq);
    }

    /// Records that `user` stopped being a member of `group` at `seq` (inclusive: the 73 is
    /// theirs). A removal by the owner is recorded with [`Store::mark_removed`], before or
    /// after this.
    pub fn close_membership(&mut self, user: Uuid, group: Uuid, seq: u64) -> StoreResult<()> {
        let Some(from) = self.memberships.close(user, group) else {
            return Ok(());
        };
        let key = member_key(group, user);
        let state = self.get(Table::Members, &key)?;
        if state
            .is_some_and(|v| matches!(MemberState::decode(&v), Some(MemberState::Member { .. })))
        {
            self.put(Table::Members, key, MemberState::Gone.encode());
        }
        let interval = ClosedInterval {
            group,
            from,
            to: seq,
        };
        self.put(Table::Intervals, interval.key(user), Vec::new());
        Ok(())
    }

    /// Records that the owner removed `user` from `group` at `seq`: they may not join again
    /// by the group's id until a member adds them.
    pub fn mark_removed(&mut self, group: Uuid, user: Uuid, seq: u64) {
        let state = MemberState::Removed { seq, order: 0 };
        self.put(Table::Members, member_key(group, user), state.encode());
    }

    /// Reads every user's open memberships from the `members` table; when the store opens.
    pub(super) fn load_open_memberships(&mut self) -> StoreResult<()> {
        let mut open = Vec::new();
        self.each_member_record(|group, user, state| {
            if let MemberState::Member { seq, .. } = state {
                open.push((user, group, seq));
            }
        })?;
        for (user, group, seq) in open {
            self.memberships.open(user, group, seq);
        }
        Ok(())
    }

    /// Calls `visit` with every well-formed record of the `members` table (group, user, state);
    /// at start, when nothing is pending.
    fn each_member_record(
        &self,
        mut visit: impl FnMut(Uuid, Uuid, MemberState),
    ) -> StoreResult<()> {
        for entry in self.backend.range(
            Table::Members,
            Bound::Unbounded,
            Bound::Unbounded,
            Direction::Forward,
        ) {
            let (key, value) = entry?;
            if let ((Some(group), Some(user)), Some(state)) =
                (split_member_key(&key), MemberState::decode(&value))
            {
                visit(group, user, state);
            }
        }
        Ok(())
    }

    /// Fills each group's `members` (in the order they joined) and `removed` (in the order
    /// of their removal) from the `members` table; at start, when nothing is pending.
    pub(super) fn fill_members(&self, groups: &mut [GroupRecord]) -> StoreResult<()> {
        type Ranked = Vec<(u64, u32, Uuid)>;
        let mut found: IdMap<(Ranked, Ranked)> = IdMap::default();
        self.each_member_record(|group, user, state| {
            let (members, removed) = found.entry(group).or_default();
            match state {
                MemberState::Member { seq, order } => members.push((seq, order, user)),
                MemberState::Removed { seq, order } => removed.push((seq, order, user)),
                _ => {}
            }
        })?;
        for group in groups {
            let (mut members, mut removed) = found.remove(&group.id).unwrap_or_default();
            members.sort_unstable();
            removed.sort_unstable();
            group.members = members.into_iter().map(|(_, _, user)| user).collect();
            group.removed = removed.into_iter().map(|(_, _, user)| user).collect();
        }
        Ok(())
    }

    /// The groups `user` is in now, each with the seq they joined at.
    pub(super) fn open_memberships_of(&self, user: Uuid) -> &[(Uuid, u64)] {
        self.memberships.of(user)
    }

    /// `user`'s closed intervals that end at or after `min_to`, as this tick sees them, in the
    /// order of where they end (`direction`); each one read is counted.
    pub(super) fn closed_intervals(
        &self,
        user: Uuid,
        min_to: u64,
        direction: Direction,
    ) -> impl Iterator<Item = StoreResult<ClosedInterval>> + '_ {
        let mut low = user.as_bytes().to_vec();
        low.extend_from_slice(&min_to.to_be_bytes());
        let mut high = user.as_bytes().to_vec();
        high.extend_from_slice(&[0xff; 32]);
        let in_range = |key: &Vec<u8>| low <= *key && *key <= high;
        let table = Table::Intervals as usize;
        let mut memory: Vec<Vec<u8>> = self
            .unapplied
            .iter()
            .map(|tick| &tick.tables[table])
            .chain(std::iter::once(&self.pending[table]))
            .flat_map(|writes| writes.keys())
            .filter(|key| in_range(key))
            .cloned()
            .collect();
        memory.sort_unstable();
        memory.dedup();
        if direction == Direction::Backward {
            memory.reverse();
        }
        let stored = self.backend.range(
            Table::Intervals,
            Bound::Included(&low),
            Bound::Included(&high),
            direction,
        );
        let merged = Merged {
            stored: stored.peekable(),
            memory: memory.into_iter().peekable(),
            backward: direction == Direction::Backward,
        };
        let reads: &Cell<u64> = &self.membership_reads;
        merged.filter_map(move |key| {
            reads.set(reads.get() + 1);
            match key {
                Ok(key) => ClosedInterval::decode(&key).map(|(_, interval)| Ok(interval)),
                Err(err) => Some(Err(err)),
            }
        })
    }

    /// Membership records (closed intervals) read by syncs since the store was opened.
    pub fn membership_records_read(&self) -> u64 {
        self.membership_reads.get()
    }
}

/// The group and the user of a `members` key.
pub fn split_member_key(key: &[u8]) -> (Option<Uuid>, Option<Uuid>) {
    if key.len() != 32 {
        return (None, None);
    }
    (
        Uuid::from_slice(&key[..16]).ok(),
        Uuid::from_slice(&key[16..]).ok(),
    )
}

/// The keys of a table's stored range and of the overlay's writes to it, merged in order
/// (a key in both once).
struct Merged<'a> {
    stored: Peekable<Entries<'a>>,
    memory: Peekable<std::vec::IntoIter<Vec<u8>>>,
    backward: bool,
}

impl Iterator for Merged<'_> {
    type Item = StoreResult<Vec<u8>>;

    fn next(&mut self) -> Option<Self::Item> {
        let take_memory = match (self.stored.peek(), self.memory.peek()) {
            (None, None) => return None,
            (Some(Err(_)), _) | (Some(_), None) => false,
            (None, Some(_)) => true,
            (Some(Ok((stored, _))), Some(memory)) => {
                if stored == memory {
                    self.stored.next();
                    true
                } else {
                    (memory < stored) != self.backward
                }
            }
        };
        if take_memory {
            self.memory.next().map(Ok)
        } else {
            self.stored.next().map(|entry| entry.map(|(key, _)| key))
        }
    }
}

#[cfg(test)]
mod tests;
