//! The store's unit tests. Most run twice, on sled and on the in-memory backend ([`both!`]): the
//! same body against each shows that the store relies on nothing but the backend's interface.

mod backend;
mod edits;
mod format;
mod format_6;
mod formats_sync;
mod history;
mod membership_cost;
mod on_sled;
mod read_state;
mod retry;
mod sync;
mod sync_cost;

use std::sync::Arc;

use tempfile::TempDir;
use uuid::Uuid;

pub use super::backend::{Backend, Direction, Entries, Table};
pub use super::client_ids::{ClientIdLimits, RecentSends, Sent};
pub use super::format::*;
pub use super::memory::MemoryBackend;
pub use super::retry::{client_key, client_record};
pub use super::*;
pub use crate::clock::{self, Stamp};
pub use crate::protocol::{self, Cursor};

/// Where a test's store lives: a sled directory, or a backend in memory; reopening it opens
/// another store on the same data.
pub enum Place {
    Sled(TempDir),
    Memory(Arc<MemoryBackend>),
}

impl Place {
    pub fn sled() -> Place {
        Place::Sled(tempfile::tempdir().unwrap())
    }

    pub fn memory() -> Place {
        Place::Memory(Arc::default())
    }

    /// A new, empty place of the same kind.
    pub fn another(&self) -> Place {
        match self {
            Place::Sled(_) => Place::sled(),
            Place::Memory(_) => Place::memory(),
        }
    }

    pub fn open(&self) -> Store {
        self.open_with(ClientIdLimits::DEFAULT)
    }

    pub fn open_with(&self, limits: ClientIdLimits) -> Store {
        self.try_open_with(limits).unwrap()
    }

    pub fn try_open(&self) -> StoreResult<Store> {
        self.try_open_with(ClientIdLimits::DEFAULT)
    }

    fn try_open_with(&self, limits: ClientIdLimits) -> StoreResult<Store> {
        match self {
            Place::Sled(dir) => Store::open_with(dir.path(), 1 << 20, limits),
            Place::Memory(backend) => {
                mark_format(&**backend)?;
                Store::open_on(Arc::clone(backend) as Arc<dyn Backend>, limits)
            }
        }
    }
}

/// Runs each named test, `fn name(place: Place)`, on both backends: `name::sled` and
/// `name::memory`.
macro_rules! both {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn sled() {
                    super::$name(super::Place::sled());
                }

                #[test]
                fn memory() {
                    super::$name(super::Place::memory());
                }
            }
        )*
    };
}
pub(crate) use both;

/// How many records `table` holds in the backend.
pub fn table_len(store: &Store, table: Table) -> usize {
    let all = std::ops::Bound::Unbounded;
    store
        .backend
        .range(table, all, all, Direction::Forward)
        .count()
}

/// The ack a retry of `client_id` by `user` would get.
pub fn client_ack_of(store: &Store, user: Uuid, client_id: &str) -> Option<String> {
    store.client_ack(&store.retry_key(user, client_id)).unwrap()
}

/// A group for the tests, with `members`.
pub fn test_group(id: Uuid, members: &[Uuid]) -> GroupRecord {
    GroupRecord {
        id,
        name: "g".into(),
        creator: members[0],
        owner: members.first().copied(),
        created_at: 1,
        ordinal: 1,
        members: members.to_vec(),
        removed: Vec::new(),
    }
}

/// Stores a send as the chat does, stamped at `ts` (its seq too, its ack's the next):
/// its log entry names the client id, then the record.
pub fn store_send(store: &mut Store, group: Uuid, user: Uuid, client_id: &str, ts: u64) -> Uuid {
    let message_id = message_id::new(ts, 1, 0);
    store.append_message(
        group,
        &MessageParts {
            stamp: at(ts),
            message_id,
            author: user,
            data: "hi",
            ack_seq: ts + 1,
            client_id: Some(client_id),
        },
    );
    store.put_client_ack(&store.retry_key(user, client_id), message_id, ts);
    message_id
}

/// The ack of a send [`store_send`] stored at `ts`, written out.
pub fn expected_ack(client_id: &str, ts: u64, message_id: Uuid) -> String {
    format!(
        r#"{{"type":21,"seq":{},"id":{},"timestamp":{ts},"body":{{"message_id":"{message_id}"}}}}"#,
        ts + 1,
        serde_json::to_string(client_id).unwrap()
    )
}

pub fn timestamps(events: &[StoredEvent]) -> Vec<u64> {
    events.iter().map(|event| event.stamp.seq).collect()
}

/// The stamp these tests give an event: its seq is its timestamp, as before format 5.
pub fn at(seq: u64) -> Stamp {
    Stamp {
        seq,
        timestamp: seq,
    }
}

/// A ceiling at `seq`, the time with it.
pub fn ceil(seq: u64) -> Ceiling {
    Ceiling { seq, time: seq }
}
