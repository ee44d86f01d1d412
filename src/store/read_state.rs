//! Read state (issue #20), kept so that a group's unread count costs no history scan: per group
//! a running count of the messages ever stored in it, its newest message's seq and the
//! messages deleted from it; per (user, group) the read marker and the group's message count
//! at it. The chat core holds all of it in memory and writes what changed once per tick
//! (`read_state` table); the store reads it back whole when it opens, and answers the two reads
//! a marker or a view needs from the log: messages after a seq (counted, capped) and one event.

use uuid::Uuid;

use super::backend::Table;
use super::log::Span;
use super::{read_u64, Store, StoreResult, StoredEvent};

/// A group's running counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupCounts {
    /// Messages ever stored in the group (deleted ones included: see `deleted`).
    pub messages: u64,
    /// The seq of the group's newest message, 0 when it has none.
    pub last_message_seq: u64,
    /// Deleted messages, `(seq, author)` in seq order: an unread count leaves out those after
    /// the reader's marker.
    pub deleted: Vec<(u64, Uuid)>,
}

/// One user's read marker in one group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Marker {
    pub read_seq: u64,
    /// The group's `messages` count at `read_seq` (lower when the count was capped: see
    /// `chat::read_markers::UNREAD_CAP`).
    pub read_count: u64,
}

impl GroupCounts {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.deleted.len() * 24);
        out.extend_from_slice(&self.messages.to_be_bytes());
        out.extend_from_slice(&self.last_message_seq.to_be_bytes());
        for (seq, author) in &self.deleted {
            out.extend_from_slice(&seq.to_be_bytes());
            out.extend_from_slice(author.as_bytes());
        }
        out
    }

    /// A stored record; a damaged tail of deleted entries is dropped, not the counts.
    pub fn decode(value: &[u8]) -> GroupCounts {
        let deleted = value
            .get(16..)
            .unwrap_or_default()
            .chunks_exact(24)
            .filter_map(|entry| {
                let author = Uuid::from_slice(&entry[8..]).ok()?;
                Some((read_u64(&entry[..8]), author))
            })
            .collect();
        GroupCounts {
            messages: read_u64(value.get(..8).unwrap_or_default()),
            last_message_seq: read_u64(value.get(8..16).unwrap_or_default()),
            deleted,
        }
    }
}

impl Marker {
    pub fn encode(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16);
        out.extend_from_slice(&self.read_seq.to_be_bytes());
        out.extend_from_slice(&self.read_count.to_be_bytes());
        out
    }

    pub fn decode(value: &[u8]) -> Marker {
        Marker {
            read_seq: read_u64(value.get(..8).unwrap_or_default()),
            read_count: read_u64(value.get(8..16).unwrap_or_default()),
        }
    }
}

/// Everything the `read_state` table holds, as [`Store::all_read_state`] returns it.
#[derive(Debug, Default)]
pub struct ReadStateRecords {
    pub groups: Vec<(Uuid, GroupCounts)>,
    /// `(group, user, marker)`.
    pub markers: Vec<(Uuid, Uuid, Marker)>,
}

impl Store {
    pub fn put_group_counts(&mut self, group: Uuid, counts: &GroupCounts) {
        self.put(Table::ReadState, group.as_bytes().to_vec(), counts.encode());
    }

    pub fn put_marker(&mut self, group: Uuid, user: Uuid, marker: Marker) {
        let mut key = Vec::with_capacity(32);
        key.extend_from_slice(group.as_bytes());
        key.extend_from_slice(user.as_bytes());
        self.put(Table::ReadState, key, marker.encode());
    }

    /// The whole table, for when the chat core opens (nothing is pending then).
    pub fn all_read_state(&self) -> StoreResult<ReadStateRecords> {
        let mut records = ReadStateRecords::default();
        for entry in self.backend.scan_prefix(Table::ReadState, &[]) {
            let (key, value) = entry?;
            let group = key.get(..16).and_then(|id| Uuid::from_slice(id).ok());
            let user = key.get(16..32).and_then(|id| Uuid::from_slice(id).ok());
            match (group, user, key.len()) {
                (Some(group), None, 16) => {
                    records.groups.push((group, GroupCounts::decode(&value)))
                }
                (Some(group), Some(user), 32) => {
                    records.markers.push((group, user, Marker::decode(&value)))
                }
                _ => log::warn!("read_state: skipped a record with a {}-byte key", key.len()),
            }
        }
        Ok(records)
    }

    /// The groups `user` is in now, each with the seq they joined at.
    pub fn groups_of(&self, user: Uuid) -> &[(Uuid, u64)] {
        self.open_memberships_of(user)
    }

    /// The newest seq stored in a group's stream (any event), 0 when none.
    pub fn newest_in_group(&self, group: Uuid) -> u64 {
        match self.log.newest_known(group) {
            u64::MAX => 0,
            seq => seq,
        }
    }

    /// The messages (events 20) of `group` from seq `from` on: how many, counting at most
    /// `cap` of them, and the newest one's seq (0 when none). Its cost follows what it counts.
    pub fn count_messages(&self, group: Uuid, from: u64, cap: u64) -> StoreResult<(u64, u64)> {
        let span = Span {
            from,
            to: u64::MAX,
            after_time: None,
        };
        // The nil viewer sees every entry but the senders' acks.
        let mut reader = self
            .log
            .reader(group, span, Uuid::nil(), self.memory_chunks(group))?;
        let (mut count, mut newest) = (0, 0);
        while let Some(event) = reader.next_entry()? {
            if is_message(&event.bytes) {
                count += 1;
                newest = event.stamp.seq;
                if count >= cap {
                    break;
                }
            }
        }
        Ok((count, newest))
    }

    /// The messages (events 20) of `group` after seq `after`, oldest first: each one's seq and
    /// author. For the unread counts' catch-up after a crash; its cost follows what it reads.
    pub fn messages_after(&self, group: Uuid, after: u64) -> StoreResult<Vec<(u64, Uuid)>> {
        #[derive(serde::Deserialize)]
        struct Message {
            body: Author,
        }
        #[derive(serde::Deserialize)]
        struct Author {
            user_id: Uuid,
        }
        let span = Span {
            from: after + 1,
            to: u64::MAX,
            after_time: None,
        };
        let mut reader = self
            .log
            .reader(group, span, Uuid::nil(), self.memory_chunks(group))?;
        let mut found = Vec::new();
        while let Some(event) = reader.next_entry()? {
            if is_message(&event.bytes) {
                if let Ok(message) = serde_json::from_slice::<Message>(&event.bytes) {
                    found.push((event.stamp.seq, message.body.user_id));
                }
            }
        }
        Ok(found)
    }

    /// The event stored at `seq` in `group`'s stream, in its current state, if any.
    pub fn group_event_at(&self, group: Uuid, seq: u64) -> StoreResult<Option<StoredEvent>> {
        let span = Span {
            from: seq,
            to: seq,
            after_time: None,
        };
        let mut reader = self
            .log
            .reader(group, span, Uuid::nil(), self.memory_chunks(group))?;
        reader.next_entry()
    }
}

/// Whether stored event bytes are a message (event 20).
fn is_message(bytes: &[u8]) -> bool {
    bytes.starts_with(br#"{"type":20,"#)
}
