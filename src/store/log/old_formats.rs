//! The formats before 5, whose chunks upgraded directories hold and which must keep reading:
//! format 2 stored a message as its event's JSON and the ack as a private entry of its own;
//! formats 3 and 4 a message as parts; none had a timestamp apart from the seq, nor a `seq` in
//! the JSON it kept.

use super::entry::*;
use super::*;
use crate::protocol;
use crate::store::StoredEvent;

pub const GROUP: Uuid = Uuid::from_u128(2);
pub const AUTHOR: Uuid = Uuid::from_u128(1);
/// The id a message stored at seq 20 in the group of ordinal 1 gets (a test checks it).
pub const MESSAGE_ID: Uuid = Uuid::from_u128(0x0000_0000_0014_8000_8000_0000_0100_0000);
pub const MESSAGE_JSON: &str = r#"{"type":20,"timestamp":20,"body":{"message_id":"00000000-0014-8000-8000-000001000000","data":"hi \"you\"","group_id":"00000000-0000-0000-0000-000000000002","user_id":"00000000-0000-0000-0000-000000000001"}}"#;
pub const ACK_JSON: &str = r#"{"type":21,"id":"c1","timestamp":21,"body":{"message_id":"00000000-0014-8000-8000-000001000000"}}"#;

/// The same message as parts: stamped with its seq, as before format 5.
pub const STORED: MessageParts<'static> = MessageParts {
    stamp: Stamp {
        seq: 20,
        timestamp: 20,
    },
    message_id: MESSAGE_ID,
    author: AUTHOR,
    data: "hi \"you\"",
    ack_seq: 21,
    client_id: Some("c1"),
};

/// What a sync by the author returns for it today: the events with their seqs.
pub fn events() -> Vec<StoredEvent> {
    let stamp = |seq| Stamp {
        seq,
        timestamp: seq,
    };
    vec![
        StoredEvent::new(stamp(20), protocol::with_seq(MESSAGE_JSON.as_bytes(), 20)),
        StoredEvent::new(stamp(21), protocol::with_seq(ACK_JSON.as_bytes(), 21)),
    ]
}

/// Format 2's encoder, kept to make its chunks: the message's JSON in an entry with its
/// ids, then the ack's JSON in a private entry of its own. Written out here, not through
/// today's encoders, so that the layout stays pinned whatever they become.
fn encode_2(chunk: &mut Vec<u8>, message: &MessageParts, json: &str, ack: &str) {
    chunk.extend_from_slice(&message.stamp.seq.to_le_bytes());
    chunk.push(MESSAGE);
    chunk.extend_from_slice(message.message_id.as_bytes());
    chunk.extend_from_slice(message.author.as_bytes());
    chunk.extend_from_slice(&(json.len() as u32).to_le_bytes());
    chunk.extend_from_slice(json.as_bytes());
    chunk.extend_from_slice(&message.ack_seq.to_le_bytes());
    chunk.push(PRIVATE);
    chunk.extend_from_slice(message.author.as_bytes());
    chunk.extend_from_slice(&(ack.len() as u32).to_le_bytes());
    chunk.extend_from_slice(ack.as_bytes());
}

/// Format 4's (and 3's) encoder of a message as parts, written out likewise.
fn encode_4(chunk: &mut Vec<u8>, message: &MessageParts) {
    chunk.extend_from_slice(&message.stamp.seq.to_le_bytes());
    chunk.push(parts_flags(message));
    put_parts(chunk, message);
}

/// The JSON the first version stored for an event: no `seq`, the timestamp was the seq.
fn unsequenced(event: &str) -> String {
    let seq_field = event.find(r#""seq":"#).expect("an event with a seq");
    let end = seq_field + event[seq_field..].find(',').expect("a field after") + 1;
    format!("{}{}", &event[..seq_field], &event[end..])
}

impl EventLog {
    /// Appends a message and its ack as format 2 stored them (with today's JSON less its
    /// seqs); `message` must be stamped with its seq.
    pub fn append_message_as_format_2(&mut self, group: Uuid, message: &MessageParts) {
        let (id, author, stamp) = (message.message_id, message.author, message.stamp);
        let json = protocol::message_event(stamp, id, message.data, group, author);
        let ack_stamp = Stamp {
            seq: message.ack_seq,
            timestamp: message.ack_seq,
        };
        let ack = protocol::sent_event(message.client_id, ack_stamp, id);
        let (json, ack) = (unsequenced(&json), unsequenced(&ack));
        encode_2(
            self.chunk(group, stamp.seq, message.ack_seq),
            message,
            &json,
            &ack,
        );
    }

    /// Appends a message as formats 3 and 4 stored it; `message` must be stamped with its
    /// seq.
    pub fn append_message_as_format_4(&mut self, group: Uuid, message: &MessageParts) {
        encode_4(
            self.chunk(group, message.stamp.seq, message.ack_seq),
            message,
        );
    }

    /// Appends an event as formats 2 to 4 stored it: its JSON (less the seq), stamped with
    /// its seq.
    pub fn append_as_format_4(&mut self, stream: Uuid, seq: u64, event: &str) {
        let chunk = self.chunk(stream, seq, seq);
        chunk.extend_from_slice(&seq.to_le_bytes());
        chunk.push(0);
        put_bytes(chunk, unsequenced(event).as_bytes());
    }

    /// Appends the message and its ack to [`GROUP`]'s stream as format 2 stored them.
    pub fn append_format_2(&mut self) {
        encode_2(self.chunk(GROUP, 20, 21), &STORED, MESSAGE_JSON, ACK_JSON);
    }
}
