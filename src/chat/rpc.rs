//! The WebSocket RPCs: decode a text message, dispatch it (sync, send, receipts, typing) and
//! queue its answer, ack or type-90 error in the outbox.

use std::rc::Rc;

use uuid::Uuid;

use super::limits::Rate;
use super::{degraded, encode_event, Chat, ConnId, Frame, Release};
use crate::clock::Stamp;
use crate::error::ApiError;
use crate::protocol::{self, event, Call, Cursor, Rpc, RpcError};
use crate::store::{
    message_id, Audience, MessageParts, PageBounds, ReceiptKind, RetryKey, StoreResult,
};

/// What handling one WebSocket message cost the loop. A sync reads the store at length, so it
/// ends its connection's read turn: a client that pipelines syncs gets one answered per tick,
/// and every other connection is served in between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cost {
    Light,
    Heavy,
}

impl Chat {
    /// Handles one text message from `conn` of `user`. Failures become a type-90 event for
    /// that connection; a store failure is reported the same way and nothing is acknowledged.
    pub fn handle_text(&mut self, conn: ConnId, user: Uuid, text: &str, wall: u64) -> Cost {
        let mut cost = Cost::Light;
        let result = match protocol::decode(text) {
            Ok(rpc) => {
                let method = rpc_method(&rpc.call);
                if let Call::Sync { .. } = rpc.call {
                    cost = Cost::Heavy;
                }
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
        cost
    }

    /// Answers a message the server cannot take (e.g. a binary frame) with a type-90 event.
    /// While the store cannot write only reads run (writes are refused before), so it waits
    /// for no commit then.
    pub fn send_error(&mut self, conn: ConnId, err: &RpcError, wall: u64) {
        self.push_error(conn, err, wall, self.read_release());
    }

    /// Like [`Chat::send_error`], for a write refused before it ran (the store cannot write):
    /// nothing was stored or read, so it waits for no commit.
    pub fn refuse(&mut self, conn: ConnId, err: &RpcError, wall: u64) {
        self.push_error(conn, err, wall, Release::Now);
    }

    fn push_error(&mut self, conn: ConnId, err: &RpcError, wall: u64, release: Release) {
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
        self.outbox.push(conn, Frame::Event(bytes.into()), release);
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
            Call::Edit { message_id, data } => self.edit(conn, user, id, *message_id, data, wall),
            Call::Delete { message_id } => self.delete(conn, user, id, *message_id, wall),
            Call::ReadUpTo { group_id, seq } => {
                self.read_up_to(conn, user, id, *group_id, *seq, wall)
            }
        }
    }

    /// A message's `data` (a send's or an edit's) within the size limit: `too_large` past it.
    pub(super) fn check_data_size(&self, data: &str) -> Result<(), ApiError> {
        if data.len() > self.limits.max_data_bytes {
            return Err(ApiError::too_large(
                413,
                format!("`data` over {} bytes", self.limits.max_data_bytes),
            ));
        }
        Ok(())
    }

    pub(super) fn send(
        &mut self,
        conn: ConnId,
        user: Uuid,
        client_id: Option<&str>,
        group_id: Uuid,
        data: &str,
        wall: u64,
    ) -> Result<(), ApiError> {
        self.check_data_size(data)?;
        self.take_token(user, Rate::Sends, wall)?;
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
        // The group's count goes up and the sender's marker moves to their message (no 24:
        // every device of theirs gets this 20, or its 21, and applies the same rule).
        self.read_state.on_message(group_id, user, stamp.seq);
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
        if read {
            // A read message moves the reader's marker to it, if ahead (no 24: the 23 below
            // tells the reader's other devices). Before the receipt is recorded, so a failed
            // read of the log leaves nothing half done; a repeated 42 finds the marker moved.
            let mover = super::read_markers::Mover::Receipt;
            self.move_marker(user, group_id, seq, wall, mover)?;
        }
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
        self.take_token(user, Rate::Typing, wall)?;
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
        let bounds = PageBounds {
            limit,
            max_bytes: self.limits.sync_max_bytes,
            max_streams: self.limits.sync_max_streams,
        };
        let mut page = self.store.sync_page(user, cursor, bounds)?;
        let mut streams_read = page.streams_read;
        // While the store cannot write, the page stops under the read limit and leaves at once.
        let held = self
            .read_limit
            .and_then(|limit| degraded::hold_back(&mut page, limit, cursor));
        let release = self.read_release();
        // The 29 names the last event sent; after an empty page, the request's cursor for the
        // field it gave, and the newest event's stamp (nothing is after the cursor) for the other.
        let last = match (page.events.last(), held) {
            (Some(last), _) => last.stamp,
            (None, Some(first_held)) => degraded::cursor_before(cursor, first_held),
            (None, None) => {
                let (newest, read) = self.store.newest_event_counted(user)?;
                streams_read += read;
                let newest = newest.unwrap_or(Stamp {
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
        self.metrics.sync_streams_read += streams_read as u64;
        self.metrics.sync_membership_records_read = self.store.membership_records_read();
        let more = page.more;
        for event in page.events {
            if event.bytes.len() > self.limits.sync_max_bytes {
                // Sent, it would close the connection as a slow consumer at every sync from
                // before it, for ever. Said instead, and the 29's cursor passes it. (The member
                // cap keeps a group's 70 under this size; only older data can hold one.)
                let error = RpcError {
                    method: Some(protocol::method::SYNC),
                    id: client_id.map(str::to_string),
                    error: ApiError::too_large(
                        413,
                        format!(
                            "event seq {} is {} bytes, more than a connection may queue; skipped",
                            event.stamp.seq,
                            event.bytes.len()
                        ),
                    ),
                };
                self.send_error(conn, &error, wall);
                continue;
            }
            let text = String::from_utf8(event.bytes)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
            self.outbox.push(conn, Frame::Event(text.into()), release);
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
        self.outbox.push(conn, Frame::Event(done.into()), release);
        Ok(())
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
        Call::Edit { .. } => method::EDIT,
        Call::Delete { .. } => method::DELETE,
        Call::ReadUpTo { .. } => method::READ_UP_TO,
    }
}
