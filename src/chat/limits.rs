//! The per-user limits the chat core enforces: how many groups a user is in and how many
//! members a group has (403 `limit_reached` beyond), and token buckets for sends and typing
//! (event 90 `rate_limited` beyond).

use uuid::Uuid;

use super::Chat;
use crate::error::ApiError;
pub(super) use crate::ratelimit::Bucket;

/// Membership-change buckets of users who need not be connected (REST callers), dropped once
/// full again so the map stays about as large as the users who changed something lately.
#[derive(Debug)]
pub(super) struct ChangeBuckets {
    buckets: crate::idmap::IdMap<Bucket>,
    /// The size past which the next take drops full buckets.
    prune_at: usize,
}

impl Default for ChangeBuckets {
    fn default() -> Self {
        ChangeBuckets {
            buckets: Default::default(),
            prune_at: 1024,
        }
    }
}

/// Membership changes are counted per minute.
const MINUTE_MS: u64 = 60_000;

impl ChangeBuckets {
    fn take(&mut self, user: Uuid, per_minute: u32, now_ms: u64) -> bool {
        if per_minute == 0 {
            return true;
        }
        let taken = self
            .buckets
            .entry(user)
            .or_insert(Bucket::FULL)
            .take_per(per_minute, MINUTE_MS, now_ms);
        if self.buckets.len() > self.prune_at {
            let capacity = f64::from(per_minute);
            self.buckets
                .retain(|_, bucket| bucket.level(per_minute, MINUTE_MS, now_ms) < capacity);
            self.prune_at = (2 * self.buckets.len()).max(1024);
        }
        taken
    }
}

/// What each member adds to an event 70: a quoted UUID and a comma.
const GROUP_EVENT_BYTES_PER_MEMBER: usize = 39;
/// The rest of an event 70: type, seq, timestamp, group id, owner and a name of up to 256
/// characters (4 bytes each at most), with room to spare.
const GROUP_EVENT_OVERHEAD: usize = 2048;

/// Whether a group of `max_members` makes an event 70 (every member listed) that fits a sync
/// page of `page_bytes`: otherwise a member who syncs from before it could never get past it.
pub fn check_group_event_fits(max_members: usize, page_bytes: usize) -> Result<(), String> {
    let largest = max_members * GROUP_EVENT_BYTES_PER_MEMBER + GROUP_EVENT_OVERHEAD;
    if largest > page_bytes {
        let fit = page_bytes.saturating_sub(GROUP_EVENT_OVERHEAD) / GROUP_EVENT_BYTES_PER_MEMBER;
        return Err(format!(
            "--max-group-members {max_members}: a group that size makes an event 70 of about \
             {largest} bytes, more than a sync page may hold ({page_bytes} bytes); at most {fit} \
             members fit"
        ));
    }
    Ok(())
}

/// Which of a user's buckets an RPC draws on.
#[derive(Debug, Clone, Copy)]
pub(super) enum Rate {
    Sends,
    Typing,
}

impl Chat {
    /// Takes a token of `user`'s `rate` bucket, or answers `rate_limited`. A user with no live
    /// connection (a tool, a test) is not limited.
    pub(super) fn take_token(&mut self, user: Uuid, rate: Rate, wall: u64) -> Result<(), ApiError> {
        let (per_second, what) = match rate {
            Rate::Sends => (self.limits.sends_per_second, "messages"),
            Rate::Typing => (self.limits.typing_per_second, "typing notices"),
        };
        if per_second == 0 {
            // Off (the default for sends): not even a lookup on the send path.
            return Ok(());
        }
        let Some(online) = self.presence.0.get_mut(&user) else {
            return Ok(());
        };
        let bucket = match rate {
            Rate::Sends => &mut online.sends,
            Rate::Typing => &mut online.typing,
        };
        if bucket.take(per_second, wall) {
            Ok(())
        } else {
            Err(ApiError::rate_limited(format!(
                "more than {per_second} {what} a second; nothing was done, try again later"
            )))
        }
    }

    /// Takes one of `user`'s membership changes (a join or leave they make), or answers
    /// `rate_limited`: each change rewrites the membership's record, so cycling must stay slow.
    pub(super) fn take_membership_change(&mut self, user: Uuid, wall: u64) -> Result<(), ApiError> {
        let per_minute = self.limits.membership_changes_per_minute;
        if self.change_buckets.take(user, per_minute, wall) {
            Ok(())
        } else {
            Err(ApiError::rate_limited(format!(
                "more than {per_minute} joins and leaves a minute; nothing was changed, try again later"
            )))
        }
    }

    /// Refuses a WebSocket for `user` (`limit_reached`) when they have as many open as allowed:
    /// each holds buffers, so one account must not take a server's memory.
    pub fn check_connection_room(&self, user: Uuid) -> Result<(), ApiError> {
        let max = self.limits.max_connections_per_user;
        let open = self
            .presence
            .0
            .get(&user)
            .map_or(0, |online| online.conns.len());
        if max != 0 && open >= max {
            return Err(ApiError::limit_reached(format!(
                "{open} WebSockets of this user are open, the most allowed; close one first"
            )));
        }
        Ok(())
    }

    /// Refuses a group of `members` members (`limit_reached`) beyond the configured cap.
    pub(super) fn check_group_size(&self, members: usize) -> Result<(), ApiError> {
        let max = self.limits.max_group_members;
        if members > max {
            return Err(ApiError::limit_reached(format!(
                "a group may have at most {max} members"
            )));
        }
        Ok(())
    }

    /// Refuses to make `user` a member of one more group (`limit_reached`) when they are in as
    /// many as the configured cap.
    pub(super) fn check_room_for_group(&self, user: Uuid) -> Result<(), ApiError> {
        let max = self.limits.max_groups_per_user;
        if self.groups_of.get(&user).copied().unwrap_or(0) as usize >= max {
            return Err(ApiError::limit_reached(format!(
                "user {user} is already a member of {max} groups, the most allowed"
            )));
        }
        Ok(())
    }

    /// Counts a membership that began (`joined`) or ended.
    pub(super) fn count_membership(&mut self, user: Uuid, joined: bool) {
        if joined {
            *self.groups_of.entry(user).or_default() += 1;
        } else if let Some(count) = self.groups_of.get_mut(&user) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.groups_of.remove(&user);
            }
        }
    }
}
