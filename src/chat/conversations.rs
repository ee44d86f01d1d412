//! The group list and view (issue #20): `GET /groups` and `GET /groups/{id}`. A view costs two
//! map lookups and at most one log read (its last message); the list is one view per group of
//! the caller's, from the memberships the store keeps in memory.

use serde::Serialize;
use serde_json::value::RawValue;
use uuid::Uuid;

use super::Chat;
use crate::error::ApiError;
use crate::store::GroupRecord;

/// A group as its member sees it.
#[derive(Debug, Serialize)]
pub struct ConversationView {
    pub id: Uuid,
    pub name: String,
    pub owner: Option<Uuid>,
    pub user_ids: Vec<Uuid>,
    pub created_at: u64,
    /// The seq of the group's newest stored event, of any type.
    pub last_seq: u64,
    /// The newest message (event 20, current state) the caller may see, or null.
    pub last_message: Option<Box<RawValue>>,
    pub read_seq: u64,
    pub unread: u64,
}

impl Chat {
    /// `GET /groups/{id}`: 404 unknown, 403 `forbidden` not a member (as the other REST
    /// group routes answer a non-member; `not_member` is the WebSocket's code).
    pub fn group_view(&self, user: Uuid, group_id: Uuid) -> Result<ConversationView, ApiError> {
        let group = self.group(group_id)?;
        if !group.members.contains(&user) {
            return Err(ApiError::forbidden(
                "a non-member has no rights over this group",
            ));
        }
        let joined = self.joined_at(user, group_id);
        self.conversation_view(user, group, joined)
    }

    /// `GET /groups`: the caller's groups, the most recently active (newest stored event) first.
    pub fn group_list(&self, user: Uuid) -> Result<Vec<ConversationView>, ApiError> {
        let mut views = Vec::with_capacity(self.store.groups_of(user).len());
        for (group_id, joined) in self.store.groups_of(user) {
            // The memberships and the group records change together; a group missing from
            // one of them is left out rather than failing the whole list.
            if let Some(group) = self.groups.get(group_id) {
                views.push(self.conversation_view(user, group, *joined)?);
            }
        }
        views.sort_by(|a, b| b.last_seq.cmp(&a.last_seq).then(a.id.cmp(&b.id)));
        Ok(views)
    }

    fn joined_at(&self, user: Uuid, group_id: Uuid) -> u64 {
        self.store
            .groups_of(user)
            .iter()
            .find(|(group, _)| *group == group_id)
            .map_or(0, |(_, joined)| *joined)
    }

    fn conversation_view(
        &self,
        user: Uuid,
        group: &GroupRecord,
        joined: u64,
    ) -> Result<ConversationView, ApiError> {
        let counts = self.read_state.counts_ref(group.id);
        let last_message_seq = counts.map_or(0, |counts| counts.last_message_seq);
        // Only messages from the caller's membership: none from before they joined.
        let last_message = if last_message_seq > joined {
            self.store
                .group_event_at(group.id, last_message_seq)?
                .and_then(|event| String::from_utf8(event.bytes).ok())
                .and_then(|json| RawValue::from_string(json).ok())
        } else {
            None
        };
        Ok(ConversationView {
            id: group.id,
            name: group.name.clone(),
            owner: group.owner,
            user_ids: group.members.clone(),
            created_at: group.created_at,
            last_seq: self.store.newest_in_group(group.id),
            last_message,
            read_seq: self.read_state.marker(group.id, user).read_seq,
            unread: self.read_state.unread(group.id, user),
        })
    }
}
