//! Presence (issue #20): event 50 to the users who share a group with someone, when their first
//! WebSocket opens and when their last one has been closed for [`OFFLINE_AFTER_MS`] (a
//! reconnect within it sends nothing, so a flaky network does not flap), and the `online` and
//! `last_seen` fields of the user lookups. Off with `--presence off`.
//!
//! Each change costs one pass over the user's groups' members, each online co-member
//! told once however many groups they share; nothing here runs on a message's path.

use std::collections::{HashSet, VecDeque};
use std::rc::Rc;

use serde::Serialize;
use uuid::Uuid;

use super::{Chat, Release};
use crate::idmap::IdMap;
use crate::protocol::{self, event};

/// How long a user's last WebSocket must stay closed before they are announced offline.
pub const OFFLINE_AFTER_MS: u64 = 5_000;

/// Who is going offline, and when each was last seen.
#[derive(Debug)]
pub struct PresenceState {
    enabled: bool,
    /// user -> when their last WebSocket closed, while the offline event waits.
    leaving: IdMap<u64>,
    /// The same, in the order they closed: the sweep pops those due. An entry whose user came
    /// back (or closed again later) is stale and skipped.
    due: VecDeque<(u64, Uuid)>,
    /// user -> ms of their last connection's opening or closing, since the server started
    /// (before that, their sessions' stored `last_seen` tells).
    last_seen: IdMap<u64>,
}

impl Default for PresenceState {
    fn default() -> Self {
        PresenceState {
            enabled: true,
            leaving: IdMap::default(),
            due: VecDeque::new(),
            last_seen: IdMap::default(),
        }
    }
}

#[derive(Serialize)]
struct PresenceBody {
    user_id: Uuid,
    online: bool,
    last_seen: u64,
}

impl Chat {
    /// `--presence`: on by default.
    pub fn set_presence(&mut self, enabled: bool) {
        self.presence_state.enabled = enabled;
    }

    /// A WebSocket of `user` opened (`first`: their only one now): last seen now, and online
    /// when it is the first, unless they were only briefly away.
    pub(super) fn presence_connected(&mut self, user: Uuid, first: bool, wall: u64) {
        if !self.presence_state.enabled {
            return;
        }
        self.presence_state.last_seen.insert(user, wall);
        if first && self.presence_state.leaving.remove(&user).is_none() {
            self.announce_presence(user, true, wall);
        }
    }

    /// `user`'s last WebSocket closed: offline once it has stayed closed long enough.
    pub(super) fn presence_disconnected(&mut self, user: Uuid, wall: u64) {
        if !self.presence_state.enabled {
            return;
        }
        // The session's stored `last_seen` is this same `wall`, so the value survives a restart.
        let state = &mut self.presence_state;
        state.last_seen.insert(user, wall);
        state.leaving.insert(user, wall);
        state.due.push_back((wall, user));
    }

    /// Announces offline the users whose last WebSocket closed [`OFFLINE_AFTER_MS`] ago or
    /// more; from the loop's once-a-second sweep.
    pub fn presence_sweep(&mut self, wall: u64) {
        while let Some(&(closed, user)) = self.presence_state.due.front() {
            if closed.saturating_add(OFFLINE_AFTER_MS) > wall {
                break;
            }
            self.presence_state.due.pop_front();
            if self.presence_state.leaving.get(&user) == Some(&closed) {
                self.presence_state.leaving.remove(&user);
                self.announce_presence(user, false, closed);
            }
        }
    }

    /// Event 50 to every online user who shares a group with `user` (them excepted), once each.
    fn announce_presence(&mut self, user: Uuid, online: bool, last_seen: u64) {
        let mut told: HashSet<Uuid> = HashSet::new();
        let mut recipients = Vec::new();
        for (group, _) in self.store.groups_of(user) {
            let Some(group) = self.groups.get(group) else {
                continue;
            };
            for member in &group.members {
                if *member != user && self.presence.0.contains_key(member) && told.insert(*member) {
                    recipients.push(*member);
                }
            }
        }
        if recipients.is_empty() {
            return;
        }
        let body = PresenceBody {
            user_id: user,
            online,
            last_seen,
        };
        let timestamp = self.clock.now(crate::clock::wall_ms());
        let frame: Rc<str> = protocol::encode(event::PRESENCE, None, None, timestamp, &body).into();
        self.presence
            .deliver(&mut self.outbox, &recipients, None, &frame, Release::Now);
    }

    /// `user`'s `online` and `last_seen` (null when never connected) as `viewer` may see them:
    /// `None` when presence is off or the two share no group.
    pub fn presence_of(&self, viewer: Uuid, user: Uuid) -> Option<(bool, Option<u64>)> {
        if !self.presence_state.enabled || !self.share_a_group(viewer, user) {
            return None;
        }
        // Within the debounce a user is still online: nobody was told otherwise.
        let online =
            self.presence.0.contains_key(&user) || self.presence_state.leaving.contains_key(&user);
        let last_seen = match self.presence_state.last_seen.get(&user) {
            Some(seen) => Some(*seen),
            None => match self.store.sessions_of(user) {
                Ok(sessions) => sessions.iter().filter_map(|s| s.last_seen).max(),
                Err(err) => {
                    log::warn!("last_seen of user {user} not read: {err}");
                    None
                }
            },
        };
        Some((online, last_seen))
    }

    fn share_a_group(&self, viewer: Uuid, user: Uuid) -> bool {
        let (mine, theirs) = (self.store.groups_of(viewer), self.store.groups_of(user));
        let (small, large) = if mine.len() <= theirs.len() {
            (mine, theirs)
        } else {
            (theirs, mine)
        };
        let small: HashSet<Uuid> = small.iter().map(|(group, _)| *group).collect();
        large.iter().any(|(group, _)| small.contains(group))
    }
}

#[cfg(test)]
mod tests;
