//! Methods 44 (edit) and 45 (delete): a message's author may change its `data`, the author or
//! the group's owner may delete it. The message's stored entry is rewritten to its current
//! state, and event 25 or 26 is stored in the group's stream and sent to every member's
//! connections; the acting connection's copy carries the RPC's `id` and is its reply, sent once
//! durable.

use std::rc::Rc;

use uuid::Uuid;

use super::limits::Rate;
use super::{encode_event, Chat, ConnId, Frame, Release};
use crate::clock::Stamp;
use crate::error::ApiError;
use crate::protocol::{self, event};
use crate::store::{message_id, Audience, Change, FoundMessage};

impl Chat {
    pub(super) fn edit(
        &mut self,
        conn: ConnId,
        user: Uuid,
        client_id: Option<&str>,
        message_id: Uuid,
        data: &str,
        wall: u64,
    ) -> Result<(), ApiError> {
        self.check_data_size(data)?;
        let (group_id, seq, found) = self.changeable(user, message_id)?;
        if found.author != user {
            return Err(ApiError::forbidden("only a message's author may edit it"));
        }
        self.take_token(user, Rate::Sends, wall)?;
        let stamp = self.clock.stamp(wall);
        let change = Change::Edit {
            data,
            at: stamp.timestamp,
            seq: stamp.seq,
        };
        self.store
            .change_message(group_id, seq, message_id, change)?;
        let body = protocol::EditedBody {
            message_id,
            group_id,
            user_id: user,
            data,
        };
        self.publish_change(conn, client_id, group_id, stamp, event::EDITED, &body);
        Ok(())
    }

    pub(super) fn delete(
        &mut self,
        conn: ConnId,
        user: Uuid,
        client_id: Option<&str>,
        message_id: Uuid,
        wall: u64,
    ) -> Result<(), ApiError> {
        let (group_id, seq, found) = self.changeable(user, message_id)?;
        if found.author != user && self.groups[&group_id].owner != Some(user) {
            return Err(ApiError::forbidden(
                "only a message's author or the group's owner may delete it",
            ));
        }
        self.take_token(user, Rate::Sends, wall)?;
        let stamp = self.clock.stamp(wall);
        self.store
            .change_message(group_id, seq, message_id, Change::Delete)?;
        // Unread counts leave it out from now on.
        self.message_deleted(group_id, seq, found.author);
        let body = protocol::ReceiptBody {
            message_id,
            group_id,
            user_id: user,
        };
        self.publish_change(conn, client_id, group_id, stamp, event::DELETED, &body);
        Ok(())
    }

    /// The group and stored state of a message `user` names for a change: `not_found` for an
    /// id that names no stored message (or a deleted one), `forbidden` for a non-member of its
    /// group (checked before the message is looked up, so a non-member cannot probe ids).
    fn changeable(
        &self,
        user: Uuid,
        message_id: Uuid,
    ) -> Result<(Uuid, u64, FoundMessage), ApiError> {
        let unknown = || ApiError::not_found("unknown message");
        let (seq, ordinal) = message_id::location(message_id);
        let group_id = *self
            .group_ids
            .get((ordinal as usize).wrapping_sub(1))
            .ok_or_else(unknown)?;
        if !self.group(group_id)?.members.contains(&user) {
            return Err(ApiError::forbidden("you are not a member of this group"));
        }
        let found = self
            .store
            .find_message(group_id, seq, message_id)?
            .ok_or_else(unknown)?;
        if found.deleted {
            return Err(ApiError::not_found("the message was deleted"));
        }
        Ok((group_id, seq, found))
    }

    /// Stores a 25 or 26 in the group's stream and sends it to every member's connections:
    /// the acting connection's copy carries the RPC's `id` and leaves once durable.
    fn publish_change<B: serde::Serialize>(
        &mut self,
        conn: ConnId,
        client_id: Option<&str>,
        group_id: Uuid,
        stamp: Stamp,
        kind: u16,
        body: &B,
    ) {
        let stored = encode_event(kind, stamp, body);
        self.store
            .append(group_id, stamp, Audience::All, stored.as_bytes());
        let reply: Rc<str> = match client_id {
            Some(id) => {
                protocol::encode(kind, Some(stamp.seq), Some(id), stamp.timestamp, body).into()
            }
            None => Rc::clone(&stored),
        };
        self.outbox
            .push(conn, Frame::Event(reply), Release::Durable);
        let members = &self.groups[&group_id].members;
        let early = Release::Early { seq: stamp.seq };
        self.presence
            .deliver(&mut self.outbox, members, Some(conn), &stored, early);
    }
}
