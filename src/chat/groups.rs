//! The REST actions on groups (create, join, leave, rename), each stored as an event and
//! delivered to the members it concerns, and the rights they need: any member may add someone
//! and rename, only the owner may remove someone else, a non-member may only join by the id.

use uuid::Uuid;

use super::{encode_event, encode_membership, Chat, GroupView};
use crate::error::ApiError;
use crate::protocol::{self, event};
use crate::store::{Audience, GroupRecord};

impl Chat {
    pub fn create_group(
        &mut self,
        creator: Uuid,
        name: &str,
        user_ids: &[String],
        wall: u64,
    ) -> Result<Uuid, ApiError> {
        let name = valid_name(name)?;
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
        self.check_group_size(members.len())?;
        for member in &members {
            self.check_room_for_group(*member)?;
        }

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
            removed: Vec::new(),
            owner: Some(creator),
        };
        let created = self.encode_group(stamp, &group);
        self.store.put_group(&group);
        self.store.learn_newest_seq(group_id)?;
        self.store
            .open_memberships(group_id, &group.members, stamp.seq);
        self.store
            .append(group_id, stamp, Audience::All, created.as_bytes());
        self.deliver_to_users(&group.members, None, &created, stamp);
        for member in &group.members {
            self.count_membership(*member, true);
        }
        self.read_state
            .set_counts(group_id, crate::store::GroupCounts::default());
        for member in &group.members {
            self.read_state.on_join(group_id, *member, stamp.seq);
        }
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
        if target == caller && group.removed.contains(&caller) {
            return Err(ApiError::forbidden(
                "removed from this group by its owner: only a member can add you again",
            ));
        }
        self.check_group_size(group.members.len() + 1)?;
        self.check_room_for_group(target)?;
        self.take_membership_change(caller, wall)?;

        let welcome_stamp = self.clock.stamp(wall);
        let joined_stamp = self.clock.stamp(wall);
        let group = self.groups.get_mut(&group_id).expect("checked above");
        group.members.push(target);
        // Added by a member: the owner's removal no longer holds.
        group.removed.retain(|user| *user != target);
        // The first member of a group everyone left owns it: every group with members has an
        // owner, so its rules hold again.
        let took_over = group.owner.is_none();
        if took_over {
            group.owner = Some(target);
        }
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
        if took_over {
            self.announce_update(&group, wall);
        }
        self.count_membership(target, true);
        // Messages from before the join are not the joiner's to read.
        self.read_state.on_join(group_id, target, joined_stamp.seq);
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
        if target != caller && !group.members.contains(&caller) {
            // A creator who left is a non-member too.
            return Err(ApiError::forbidden(
                "a non-member has no rights over this group",
            ));
        }
        if target != caller && group.owner != Some(caller) {
            return Err(ApiError::forbidden(
                "only the group's owner may remove someone else",
            ));
        }
        if !group.members.contains(&target) {
            return Err(ApiError::conflict("not a member of this group"));
        }
        self.take_membership_change(caller, wall)?;
        self.remove_member(caller, group_id, target, wall)
    }

    /// A deleted account leaves every group it is in, as if it left each itself (a 73 to the
    /// members, the owner passing on with a 74), outside any rate: it is the operator's act.
    pub fn leave_every_group(&mut self, user: Uuid, wall: u64) -> Result<(), ApiError> {
        let groups: Vec<Uuid> = self
            .group_ids
            .iter()
            .copied()
            .filter(|id| {
                self.groups
                    .get(id)
                    .is_some_and(|g| g.members.contains(&user))
            })
            .collect();
        for group in groups {
            self.remove_member(user, group, user, wall)?;
        }
        Ok(())
    }

    /// Takes `target` out of a group whose rights `caller` was checked for.
    fn remove_member(
        &mut self,
        caller: Uuid,
        group_id: Uuid,
        target: Uuid,
        wall: u64,
    ) -> Result<GroupView, ApiError> {
        let stamp = self.clock.stamp(wall);
        let group = self.groups.get_mut(&group_id).expect("checked above");
        group.members.retain(|m| *m != target);
        if target != caller && !group.removed.contains(&target) {
            group.removed.push(target);
        }
        // Only the owner can take the owner out (by leaving): the member in the group longest
        // (first in join order) takes over, or nobody when none is left.
        let handed_on = group.owner == Some(target);
        if handed_on {
            group.owner = group.members.first().copied();
        }
        let group = group.clone();
        let left = encode_membership(event::LEFT, stamp, group_id, target);
        self.store.put_group(&group);
        self.store
            .append(group_id, stamp, Audience::All, left.as_bytes());
        self.store.close_membership(target, group_id, stamp.seq)?;
        if group.removed.contains(&target) {
            self.store.mark_removed(group_id, target, stamp.seq);
        }
        self.deliver_to_users(&group.members, None, &left, stamp);
        self.deliver_to_users(&[target], None, &left, stamp);
        // After the leaver's membership closed: the 74 is the remaining members' (and a sync
        // replays it to them only), the leaver's last event of the group is its 73.
        if handed_on && group.owner.is_some() {
            self.announce_update(&group, wall);
        }
        self.count_membership(target, false);
        Ok(view(&group))
    }

    /// A member renames a group: a 74 to its members. Renames draw on the caller's
    /// membership-change budget, so that one member cannot flood the others with 74s.
    pub fn rename(
        &mut self,
        caller: Uuid,
        group_id: Uuid,
        name: &str,
        wall: u64,
    ) -> Result<GroupView, ApiError> {
        let group = self.group(group_id)?;
        if !group.members.contains(&caller) {
            // A creator or owner who left is a non-member too.
            return Err(ApiError::forbidden(
                "a non-member has no rights over this group",
            ));
        }
        let name = valid_name(name)?;
        if group.name == name {
            // Nothing changes: no event, and nothing counted.
            return Ok(view(group));
        }
        self.take_membership_change(caller, wall).map_err(|_| {
            ApiError::rate_limited(format!(
                "more than {} joins, leaves and renames a minute; nothing was changed, try again \
                 later",
                self.limits.membership_changes_per_minute
            ))
        })?;
        let group = self.groups.get_mut(&group_id).expect("checked above");
        group.name = name.to_string();
        let group = group.clone();
        self.store.put_group(&group);
        self.announce_update(&group, wall);
        Ok(view(&group))
    }

    /// Stores a 74 (the group's name and owner now) in the group's stream and delivers it to
    /// its members. The caller has stored the record.
    fn announce_update(&mut self, group: &GroupRecord, wall: u64) {
        let stamp = self.clock.stamp(wall);
        let body = protocol::GroupUpdatedBody {
            group_id: group.id,
            name: &group.name,
            owner: group.owner,
        };
        let updated = encode_event(event::GROUP_UPDATED, stamp, &body);
        self.store
            .append(group.id, stamp, Audience::All, updated.as_bytes());
        self.deliver_to_users(&group.members, None, &updated, stamp);
    }
}

/// A group's name as created or renamed: trimmed, 1 to 256 characters.
fn valid_name(name: &str) -> Result<&str, ApiError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 256 {
        return Err(ApiError::bad_request("`name` must be 1 to 256 characters"));
    }
    Ok(name)
}

/// Gives a record read from the store an owner if it has members and none: records written
/// before owners existed. The creator if still a member, else the member in it longest.
pub(super) fn settle_owner(group: &mut GroupRecord) {
    if group.owner.is_none() {
        group.owner = if group.members.contains(&group.creator) {
            Some(group.creator)
        } else {
            group.members.first().copied()
        };
    }
}

fn view(group: &GroupRecord) -> GroupView {
    GroupView {
        group_id: group.id,
        name: group.name.clone(),
        owner: group.owner,
        user_ids: group.members.clone(),
    }
}

#[cfg(test)]
mod tests;
