//! The WebSocket wire format: RPCs the client sends (decoded into [`Call`]s) and events the server
//! sends (encoded once into the bytes every recipient gets).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::clock::Stamp;
use crate::error::{ApiError, ErrorCode};

pub mod method {
    pub const SYNC: i64 = 20;
    pub const SEND: i64 = 40;
    pub const DELIVERED: i64 = 41;
    pub const READ: i64 = 42;
    // Edit and delete (issue #20).
    pub const EDIT: i64 = 44;
    pub const DELETE: i64 = 45;
    pub const TYPING_START: i64 = 60;
    pub const TYPING_END: i64 = 61;
    // Issue #20: read markers.
    pub const READ_UP_TO: i64 = 43;
}

pub mod event {
    pub const MESSAGE: u16 = 20;
    pub const SENT: u16 = 21;
    pub const DELIVERED: u16 = 22;
    pub const READ: u16 = 23;
    // Edit and delete (issue #20).
    pub const EDITED: u16 = 25;
    pub const DELETED: u16 = 26;
    pub const SYNC_COMPLETE: u16 = 29;
    pub const TYPING_START: u16 = 40;
    pub const TYPING_END: u16 = 41;
    pub const GROUP: u16 = 70;
    pub const JOINED: u16 = 72;
    pub const LEFT: u16 = 73;
    /// A group's name or owner changed (a rename, or the owner left).
    pub const GROUP_UPDATED: u16 = 74;
    // Conversations (issue #20): presence.
    /// A user came online or went offline (transient).
    pub const PRESENCE: u16 = 50;
    pub const ERROR: u16 = 90;
    // Issue #20: read markers.
    /// A user's read marker in a group moved (stored, the user's stream).
    pub const READ_MARKER: u16 = 24;
}

/// Longest client `id` echoed back, in bytes.
pub const MAX_CLIENT_ID_BYTES: usize = 128;

/// One decoded RPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rpc {
    pub id: Option<String>,
    pub call: Call,
}

/// Where a sync starts: after a `seq` (exact), or after a `timestamp` (the walkthrough's cursor).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor {
    Seq(u64),
    Timestamp(u64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Sync {
        cursor: Cursor,
        limit: Option<u64>,
    },
    Send {
        group_id: Uuid,
        data: String,
    },
    Receipt {
        message_id: Uuid,
        read: bool,
    },
    Typing {
        group_id: Uuid,
        start: bool,
    },
    Edit {
        message_id: Uuid,
        data: String,
    },
    Delete {
        message_id: Uuid,
    },
    /// Method 43: the caller has read the group up to `seq`.
    ReadUpTo {
        group_id: Uuid,
        seq: u64,
    },
}

/// An RPC that could not be decoded, with what is known of it for the 90 event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcError {
    pub method: Option<i64>,
    pub id: Option<String>,
    pub error: ApiError,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    method: Option<&'a RawValue>,
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    timestamp: Option<&'a RawValue>,
    #[serde(borrow)]
    seq: Option<&'a RawValue>,
    #[serde(borrow)]
    limit: Option<&'a RawValue>,
    #[serde(borrow)]
    body: Option<&'a RawValue>,
}

#[derive(Deserialize, Default)]
struct SyncBody {
    timestamp: Option<u64>,
    seq: Option<u64>,
    limit: Option<u64>,
}

#[derive(Deserialize)]
struct SendBody {
    group_id: Uuid,
    data: String,
}

#[derive(Deserialize)]
struct MessageRef {
    message_id: Uuid,
}

#[derive(Deserialize)]
struct EditBody {
    message_id: Uuid,
    data: String,
}

#[derive(Deserialize)]
struct GroupRef {
    group_id: Uuid,
}

#[derive(Deserialize)]
struct ReadUpToBody {
    group_id: Uuid,
    seq: u64,
}

/// Decodes one text message. Errors carry the method and client id when they could be read, so
/// the error event can say which RPC failed.
pub fn decode(text: &str) -> Result<Rpc, RpcError> {
    let envelope: Envelope = serde_json::from_str(text).map_err(|e| RpcError {
        method: None,
        id: None,
        error: ApiError::bad_request(format!("expected a JSON object RPC: {e}")),
    })?;
    let id = match envelope.id.filter(|raw| raw.get() != "null") {
        None => None,
        Some(raw) => match serde_json::from_str::<String>(raw.get()) {
            Ok(id) if !id.is_empty() && id.len() <= MAX_CLIENT_ID_BYTES => Some(id),
            _ => {
                return Err(RpcError {
                    method: envelope.method.and_then(|m| m.get().parse().ok()),
                    id: None,
                    error: ApiError::bad_request(format!(
                        "`id` must be a string of 1 to {MAX_CLIENT_ID_BYTES} bytes"
                    )),
                })
            }
        },
    };
    let fail = |method: Option<i64>, error: ApiError| RpcError {
        method,
        id: id.clone(),
        error,
    };
    let method = match envelope.method {
        None => return Err(fail(None, ApiError::bad_request("missing `method`"))),
        Some(raw) => raw
            .get()
            .parse::<i64>()
            .map_err(|_| fail(None, ApiError::bad_request("`method` must be an integer")))?,
    };
    let body = envelope.body.filter(|raw| raw.get() != "null");
    let call = match method {
        method::SYNC => {
            let mut sync: SyncBody = match body {
                Some(raw) => parse_body(raw).map_err(|e| fail(Some(method), e))?,
                None => SyncBody::default(),
            };
            // The top level wins over `body`, as the walkthrough puts `timestamp` there.
            let top_level = [
                (envelope.timestamp, &mut sync.timestamp, "timestamp"),
                (envelope.seq, &mut sync.seq, "seq"),
                (envelope.limit, &mut sync.limit, "limit"),
            ];
            for (raw, field, name) in top_level {
                if let Some(raw) = raw.filter(|raw| raw.get() != "null") {
                    *field = Some(parse_body(raw).map_err(|_| {
                        fail(
                            Some(method),
                            ApiError::bad_request(format!(
                                "`{name}` must be a non-negative integer"
                            )),
                        )
                    })?);
                }
            }
            // With both cursors, `seq` wins (it is the exact one).
            let cursor = match (sync.seq, sync.timestamp) {
                (Some(seq), _) => Cursor::Seq(seq),
                (None, Some(timestamp)) => Cursor::Timestamp(timestamp),
                (None, None) => Cursor::Seq(0),
            };
            Call::Sync {
                cursor,
                limit: sync.limit,
            }
        }
        method::SEND => {
            let send: SendBody = require_body(body).map_err(|e| fail(Some(method), e))?;
            if send.data.is_empty() {
                return Err(fail(
                    Some(method),
                    ApiError::bad_request("`data` must not be empty"),
                ));
            }
            Call::Send {
                group_id: send.group_id,
                data: send.data,
            }
        }
        method::DELIVERED | method::READ => {
            let receipt: MessageRef = require_body(body).map_err(|e| fail(Some(method), e))?;
            Call::Receipt {
                message_id: receipt.message_id,
                read: method == method::READ,
            }
        }
        method::TYPING_START | method::TYPING_END => {
            let typing: GroupRef = require_body(body).map_err(|e| fail(Some(method), e))?;
            Call::Typing {
                group_id: typing.group_id,
                start: method == method::TYPING_START,
            }
        }
        method::EDIT => {
            let edit: EditBody = require_body(body).map_err(|e| fail(Some(method), e))?;
            if edit.data.is_empty() {
                return Err(fail(
                    Some(method),
                    ApiError::bad_request("`data` must not be empty"),
                ));
            }
            Call::Edit {
                message_id: edit.message_id,
                data: edit.data,
            }
        }
        method::DELETE => {
            let delete: MessageRef = require_body(body).map_err(|e| fail(Some(method), e))?;
            Call::Delete {
                message_id: delete.message_id,
            }
        }
        method::READ_UP_TO => {
            let read: ReadUpToBody = require_body(body).map_err(|e| fail(Some(method), e))?;
            Call::ReadUpTo {
                group_id: read.group_id,
                seq: read.seq,
            }
        }
        other => {
            return Err(fail(
                Some(other),
                ApiError::new(ErrorCode::UnknownMethod, format!("unknown method {other}")),
            ))
        }
    };
    Ok(Rpc { id, call })
}

fn require_body<T: DeserializeOwned>(body: Option<&RawValue>) -> Result<T, ApiError> {
    parse_body(body.ok_or_else(|| ApiError::bad_request("missing `body`"))?)
}

fn parse_body<T: DeserializeOwned>(raw: &RawValue) -> Result<T, ApiError> {
    serde_json::from_str(raw.get()).map_err(|e| ApiError::bad_request(format!("invalid body: {e}")))
}

/// `{"type", "seq"?, "id"?, "timestamp", "body"}` serialized once: stored events carry their
/// `seq`, transient ones (typing, 29, 90) none.
pub fn encode<B: Serialize>(
    kind: u16,
    seq: Option<u64>,
    id: Option<&str>,
    timestamp: u64,
    body: &B,
) -> String {
    #[derive(Serialize)]
    struct Event<'a, B> {
        #[serde(rename = "type")]
        kind: u16,
        #[serde(skip_serializing_if = "Option::is_none")]
        seq: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a str>,
        timestamp: u64,
        body: &'a B,
    }
    serde_json::to_string(&Event {
        kind,
        seq,
        id,
        timestamp,
        body,
    })
    .expect("events serialize")
}

/// A stored event's JSON with `"seq":N` added after its `"type"`, where [`encode`] puts it: the
/// first version stored events without one, and a sync gives them the seq they were upgraded
/// to. Bytes that are not an event this server encoded come back as they are.
pub fn with_seq(event: &[u8], seq: u64) -> Vec<u8> {
    let Some(comma) = event
        .starts_with(br#"{"type":"#)
        .then(|| event.iter().position(|&b| b == b','))
        .flatten()
    else {
        return event.to_vec();
    };
    let mut out = Vec::with_capacity(event.len() + 28);
    out.extend_from_slice(&event[..=comma]);
    out.extend_from_slice(br#""seq":"#);
    serde_json::to_writer(&mut out, &seq).expect("a number serializes");
    out.push(b',');
    out.extend_from_slice(&event[comma + 1..]);
    out
}

/// Event 20, a message, exactly as sent live and as a sync replays it: the store keeps only
/// its parts and renders it again with this. Written out by hand, in [`encode`]'s exact bytes
/// (a test compares the two): it runs for every send and every message a sync replays, and
/// serde's path escapes every key and id as if it could hold a quote.
pub fn message_event(
    stamp: Stamp,
    message_id: Uuid,
    data: &str,
    group_id: Uuid,
    user_id: Uuid,
) -> String {
    let mut out = Vec::with_capacity(200 + data.len());
    out.extend_from_slice(br#"{"type":20,"seq":"#);
    serde_json::to_writer(&mut out, &stamp.seq).expect("a number serializes");
    out.extend_from_slice(br#","timestamp":"#);
    serde_json::to_writer(&mut out, &stamp.timestamp).expect("a number serializes");
    out.extend_from_slice(br#","body":{"message_id":"#);
    push_uuid(&mut out, message_id);
    out.extend_from_slice(br#","data":"#);
    serde_json::to_writer(&mut out, data).expect("a string serializes");
    out.extend_from_slice(br#","group_id":"#);
    push_uuid(&mut out, group_id);
    out.extend_from_slice(br#","user_id":"#);
    push_uuid(&mut out, user_id);
    out.extend_from_slice(b"}}");
    String::from_utf8(out).expect("JSON of strings is UTF-8")
}

/// Event 20 of an edited or deleted message, as a sync and history replay it: `data` as last
/// edited with `edited_at`, or no `data` and `"deleted": true` (see [`changed_message_body`]).
pub fn changed_message_event(
    stamp: Stamp,
    message_id: Uuid,
    data: Option<&str>,
    group_id: Uuid,
    user_id: Uuid,
    edited_at: Option<u64>,
) -> String {
    let body = ChangedMessageBody {
        message_id,
        data,
        group_id,
        user_id,
        edited_at: edited_at.filter(|_| data.is_some()),
        deleted: data.is_none(),
    };
    encode(
        event::MESSAGE,
        Some(stamp.seq),
        None,
        stamp.timestamp,
        &body,
    )
}

/// A message's body in its current state (see [`changed_message_event`]).
#[derive(Serialize)]
pub struct ChangedMessageBody<'a> {
    pub message_id: Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<&'a str>,
    pub group_id: Uuid,
    pub user_id: Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<u64>,
    #[serde(skip_serializing_if = "is_false")]
    pub deleted: bool,
}

fn is_false(value: &bool) -> bool {
    !value
}

/// Event 25: a message's new `data`; `user_id` is its author, who edited it.
#[derive(Serialize)]
pub struct EditedBody<'a> {
    pub message_id: Uuid,
    pub group_id: Uuid,
    pub user_id: Uuid,
    pub data: &'a str,
}

/// A UUID as a JSON string: quoted, hyphenated, lower case (serde's form for `Uuid`).
fn push_uuid(out: &mut Vec<u8>, id: Uuid) {
    out.push(b'"');
    out.extend_from_slice(
        id.hyphenated()
            .encode_lower(&mut Uuid::encode_buffer())
            .as_bytes(),
    );
    out.push(b'"');
}

/// Event 21, the sender's ack of a message, live and replayed (see [`message_event`]).
pub fn sent_event(id: Option<&str>, stamp: Stamp, message_id: Uuid) -> String {
    encode(
        event::SENT,
        Some(stamp.seq),
        id,
        stamp.timestamp,
        &SentBody { message_id },
    )
}

#[derive(Serialize)]
pub struct MessageBody<'a> {
    pub message_id: Uuid,
    pub data: &'a str,
    pub group_id: Uuid,
    pub user_id: Uuid,
}

#[derive(Serialize)]
pub struct SentBody {
    pub message_id: Uuid,
}

#[derive(Serialize)]
pub struct ReceiptBody {
    pub message_id: Uuid,
    pub group_id: Uuid,
    pub user_id: Uuid,
}

#[derive(Serialize)]
pub struct SyncCompleteBody {
    pub timestamp: u64,
    pub seq: u64,
    pub more: bool,
}

/// Typing (40/41), joined (72) and left (73).
#[derive(Serialize)]
pub struct GroupUserBody {
    pub group_id: Uuid,
    pub user_id: Uuid,
}

/// Event 70. `owner` is set whenever one is made: it goes to members, and a group with members
/// has an owner.
#[derive(Serialize)]
pub struct GroupBody<'a> {
    pub group_id: Uuid,
    pub name: &'a str,
    pub owner: Option<Uuid>,
    pub user_ids: &'a [Uuid],
}

/// Event 74: the group's name and owner after a rename or an owner change.
#[derive(Serialize)]
pub struct GroupUpdatedBody<'a> {
    pub group_id: Uuid,
    pub name: &'a str,
    pub owner: Option<Uuid>,
}

/// Event 24: `seq` is the marker (the event's own seq is at the top level).
#[derive(Serialize)]
pub struct ReadMarkerBody {
    pub group_id: Uuid,
    pub user_id: Uuid,
    pub seq: u64,
}

#[derive(Serialize)]
pub struct ErrorBody<'a> {
    pub code: ErrorCode,
    pub error: &'a str,
    pub method: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<&'a str>,
}

#[cfg(test)]
mod tests;
