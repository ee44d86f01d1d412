//! The upgrade from format 5 to 6, in place: each group record's `members` and `removed` lists
//! go into the `members` table, and each (user, group) record of JSON intervals in
//! `memberships` becomes one `intervals` key per ended interval (the open one is the member's
//! `members` value). The group records are rewritten first, from the old intervals, and the old
//! interval records removed after theirs are written, so an upgrade cut short is done again
//! from where it stopped; the format is marked 6 last.

use std::ops::Bound;

use serde::Deserialize;
use uuid::Uuid;

use crate::store::backend::{Backend, Direction, Table};
use crate::store::memberships::{member_key, ClosedInterval, MemberState};
use crate::store::StoreResult;

/// A span of membership as format 5 stored it: from the seq of the event that made the user a
/// member to the seq of the event that ended it (both inclusive), or open.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
pub struct OldInterval {
    pub from: u64,
    pub to: Option<u64>,
}

/// The lists a format 5 group record held besides its own fields.
#[derive(Debug, Deserialize)]
struct OldLists {
    members: Vec<Uuid>,
    #[serde(default)]
    removed: Vec<Uuid>,
}

/// Moves format 5's membership records into format 6's tables (see the module's doc).
pub fn upgrade(backend: &dyn Backend) -> StoreResult<()> {
    let all = Bound::Unbounded;
    for entry in backend.range(Table::Groups, all, all, Direction::Forward) {
        let (key, value) = entry?;
        let Ok(mut record) = serde_json::from_slice::<serde_json::Value>(&value) else {
            continue;
        };
        let Some(fields) = record.as_object_mut() else {
            continue;
        };
        let Ok(group) = Uuid::from_slice(&key) else {
            continue;
        };
        let Some(lists) = fields.get("members").and_then(|_| {
            serde_json::from_value::<OldLists>(serde_json::Value::Object(fields.clone())).ok()
        }) else {
            continue;
        };
        for (order, member) in lists.members.iter().enumerate() {
            let mut old_key = member.as_bytes().to_vec();
            old_key.extend_from_slice(group.as_bytes());
            let intervals: Vec<OldInterval> = backend
                .get(Table::Memberships, &old_key)?
                .and_then(|v| serde_json::from_slice(&v).ok())
                .unwrap_or_default();
            let seq = intervals
                .last()
                .filter(|last| last.to.is_none())
                .map_or(1, |open| open.from);
            let state = MemberState::Member {
                seq,
                order: order as u32,
            };
            backend.put(Table::Members, &member_key(group, *member), &state.encode())?;
        }
        for (order, user) in lists.removed.iter().enumerate() {
            let state = MemberState::Removed {
                seq: 0,
                order: order as u32,
            };
            backend.put(Table::Members, &member_key(group, *user), &state.encode())?;
        }
        fields.remove("members");
        fields.remove("removed");
        let rewritten = serde_json::to_vec(&record).expect("a JSON value serializes");
        backend.put(Table::Groups, &key, &rewritten)?;
    }
    for entry in backend.range(Table::Memberships, all, all, Direction::Forward) {
        let (key, value) = entry?;
        if key.len() == 32 {
            let user = Uuid::from_slice(&key[..16]).unwrap_or_default();
            let group = Uuid::from_slice(&key[16..]).unwrap_or_default();
            let intervals: Vec<OldInterval> = serde_json::from_slice(&value).unwrap_or_default();
            for old in intervals {
                if let Some(to) = old.to {
                    let interval = ClosedInterval {
                        group,
                        from: old.from,
                        to,
                    };
                    backend.put(Table::Intervals, &interval.key(user), &[])?;
                }
            }
        }
        backend.remove(Table::Memberships, &key)?;
    }
    Ok(())
}
