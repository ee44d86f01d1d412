//! Everything durable, in sled: users, sessions, groups, memberships and the event log.
//!
//! The event log is kept per group (messages and group events, written once whatever the group
//! size) and per user (acks, receipts, the 70 a joiner gets). A sync merges the user's own log with
//! the logs of the groups they belonged to, each bounded by the membership intervals, so its cost
//! follows what it returns plus the user's groups. Writes of a tick become durable together in
//! [`Store::commit`], called once per loop tick before any ack leaves.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sled::{IVec, Tree};
use uuid::Uuid;

pub type StoreResult<T> = Result<T, sled::Error>;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct UserRecord {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    pub password_hash: String,
    pub created_at: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SessionRecord {
    pub id: Uuid,
    pub user_id: Uuid,
    pub device_id: String,
    pub platform: String,
    pub model: String,
    pub build: u64,
    pub name: Option<String>,
    pub created_at: u64,
    pub access_token: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GroupRecord {
    pub id: Uuid,
    pub name: String,
    pub creator: Uuid,
    pub created_at: u64,
    /// Current members in the order they joined (the creator of a new group last, as in event 70).
    pub members: Vec<Uuid>,
}

/// A span of membership: from the timestamp of the event that made the user a member to the
/// timestamp of the event that ended it (both inclusive), or open.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Interval {
    pub from: u64,
    pub to: Option<u64>,
}

/// Which receipt a user gave for a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptKind {
    Delivered = 1,
    Read = 2,
}

pub struct Store {
    db: sled::Db,
    users: Tree,
    usernames: Tree,
    emails: Tree,
    sessions: Tree,
    access_tokens: Tree,
    groups: Tree,
    memberships: Tree,
    group_events: Tree,
    user_events: Tree,
    messages: Tree,
    receipts: Tree,
    client_ids: Tree,
    meta: Tree,
}

const CLOCK_KEY: &[u8] = b"clock";

impl Store {
    pub fn open(dir: &Path, cache_bytes: u64) -> StoreResult<Store> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            .open()?;
        Ok(Store {
            users: db.open_tree("users")?,
            usernames: db.open_tree("usernames")?,
            emails: db.open_tree("emails")?,
            sessions: db.open_tree("sessions")?,
            access_tokens: db.open_tree("access_tokens")?,
            groups: db.open_tree("groups")?,
            memberships: db.open_tree("memberships")?,
            group_events: db.open_tree("group_events")?,
            user_events: db.open_tree("user_events")?,
            messages: db.open_tree("messages")?,
            receipts: db.open_tree("receipts")?,
            client_ids: db.open_tree("client_ids")?,
            meta: db.open_tree("meta")?,
            db,
        })
    }

    /// Makes every write since the last commit durable, recording the clock so that timestamps
    /// keep increasing across restarts.
    pub fn commit(&self, clock_last: u64) -> StoreResult<()> {
        self.meta.insert(CLOCK_KEY, &clock_last.to_be_bytes())?;
        self.db.flush()?;
        Ok(())
    }

    /// The last timestamp issued before the previous shutdown or crash.
    pub fn clock_floor(&self) -> StoreResult<u64> {
        Ok(self.meta.get(CLOCK_KEY)?.map(|v| read_u64(&v)).unwrap_or(0))
    }

    pub fn size_on_disk(&self) -> StoreResult<u64> {
        self.db.size_on_disk()
    }

    // --- users -------------------------------------------------------------------------------

    /// Inserts a user and its unique indices. The caller has checked that the names are free;
    /// the loop is single-threaded, so nothing can take them in between.
    pub fn insert_user(&self, user: &UserRecord) -> StoreResult<()> {
        self.users.insert(user.id.as_bytes(), to_json(user))?;
        self.usernames
            .insert(user.username.to_lowercase().as_bytes(), user.id.as_bytes())?;
        self.emails
            .insert(user.email.to_lowercase().as_bytes(), user.id.as_bytes())?;
        Ok(())
    }

    pub fn user(&self, id: Uuid) -> StoreResult<Option<UserRecord>> {
        Ok(self.users.get(id.as_bytes())?.and_then(|v| from_json(&v)))
    }

    pub fn user_exists(&self, id: Uuid) -> StoreResult<bool> {
        self.users.contains_key(id.as_bytes())
    }

    pub fn user_id_by_username(&self, username: &str) -> StoreResult<Option<Uuid>> {
        Ok(self
            .usernames
            .get(username.to_lowercase().as_bytes())?
            .and_then(|v| Uuid::from_slice(&v).ok()))
    }

    pub fn user_id_by_email(&self, email: &str) -> StoreResult<Option<Uuid>> {
        Ok(self
            .emails
            .get(email.to_lowercase().as_bytes())?
            .and_then(|v| Uuid::from_slice(&v).ok()))
    }

    // --- sessions ----------------------------------------------------------------------------

    pub fn insert_session(&self, session: &SessionRecord) -> StoreResult<()> {
        self.sessions
            .insert(session.id.as_bytes(), to_json(session))?;
        self.access_tokens
            .insert(session.access_token.as_bytes(), session.id.as_bytes())?;
        Ok(())
    }

    pub fn session_by_access_token(&self, token: &str) -> StoreResult<Option<SessionRecord>> {
        let Some(id) = self.access_tokens.get(token.as_bytes())? else {
            return Ok(None);
        };
        Ok(self.sessions.get(&id)?.and_then(|v| from_json(&v)))
    }

    // --- groups and memberships --------------------------------------------------------------

    pub fn put_group(&self, group: &GroupRecord) -> StoreResult<()> {
        self.groups.insert(group.id.as_bytes(), to_json(group))?;
        Ok(())
    }

    pub fn all_groups(&self) -> StoreResult<Vec<GroupRecord>> {
        let mut groups = Vec::new();
        for entry in self.groups.iter() {
            let (_, value) = entry?;
            if let Some(group) = from_json(&value) {
                groups.push(group);
            }
        }
        Ok(groups)
    }

    /// Records that `user` became a member of `group` at `ts` (inclusive).
    pub fn open_membership(&self, user: Uuid, group: Uuid, ts: u64) -> StoreResult<()> {
        let key = pair_key(user, group);
        let mut intervals = self.intervals(&key)?;
        intervals.push(Interval { from: ts, to: None });
        self.memberships.insert(key, to_json(&intervals))?;
        Ok(())
    }

    /// Records that `user` stopped being a member of `group` at `ts` (inclusive: the 73 is theirs).
    pub fn close_membership(&self, user: Uuid, group: Uuid, ts: u64) -> StoreResult<()> {
        let key = pair_key(user, group);
        let mut intervals = self.intervals(&key)?;
        if let Some(last) = intervals.last_mut() {
            last.to = Some(ts);
        }
        self.memberships.insert(key, to_json(&intervals))?;
        Ok(())
    }

    fn intervals(&self, key: &[u8]) -> StoreResult<Vec<Interval>> {
        Ok(self
            .memberships
            .get(key)?
            .and_then(|v| from_json(&v))
            .unwrap_or_default())
    }

    // --- events ------------------------------------------------------------------------------

    pub fn append_group_event(&self, group: Uuid, ts: u64, event: &[u8]) -> StoreResult<()> {
        self.group_events.insert(log_key(group, ts), event)?;
        Ok(())
    }

    pub fn append_user_event(&self, user: Uuid, ts: u64, event: &[u8]) -> StoreResult<()> {
        self.user_events.insert(log_key(user, ts), event)?;
        Ok(())
    }

    /// The user's events with a timestamp after `cursor`, oldest first, at most `limit` of them
    /// and about `max_bytes` (at least one event), and whether more exist after the last one.
    pub fn events_after(
        &self,
        user: Uuid,
        cursor: u64,
        limit: usize,
        max_bytes: usize,
    ) -> StoreResult<(Vec<(u64, IVec)>, bool)> {
        let first = cursor.saturating_add(1);
        let mut sources: Vec<sled::Iter> = vec![self
            .user_events
            .range(log_key(user, first)..=log_key(user, u64::MAX))];
        for entry in self.memberships.scan_prefix(user.as_bytes()) {
            let (key, value) = entry?;
            let group = Uuid::from_slice(&key[16..32]).unwrap_or_default();
            let intervals: Vec<Interval> = from_json(&value).unwrap_or_default();
            for interval in intervals {
                let from = interval.from.max(first);
                let to = interval.to.unwrap_or(u64::MAX);
                if from <= to {
                    sources.push(
                        self.group_events
                            .range(log_key(group, from)..=log_key(group, to)),
                    );
                }
            }
        }
        merge_logs(sources, limit, max_bytes)
    }

    // --- messages, receipts, client ids ------------------------------------------------------

    pub fn put_message(&self, message: Uuid, group: Uuid, author: Uuid) -> StoreResult<()> {
        self.messages
            .insert(message.as_bytes(), pair_key(group, author))?;
        Ok(())
    }

    /// The group and the author of a message.
    pub fn message(&self, message: Uuid) -> StoreResult<Option<(Uuid, Uuid)>> {
        Ok(self.messages.get(message.as_bytes())?.and_then(|v| {
            Some((
                Uuid::from_slice(v.get(..16)?).ok()?,
                Uuid::from_slice(v.get(16..32)?).ok()?,
            ))
        }))
    }

    /// Records a receipt; false when this user already gave it for this message.
    pub fn record_receipt(
        &self,
        message: Uuid,
        user: Uuid,
        kind: ReceiptKind,
    ) -> StoreResult<bool> {
        let mut key = pair_key(message, user);
        key.push(kind as u8);
        Ok(self.receipts.insert(key, &[])?.is_none())
    }

    /// The ack event a send with this client id was answered with, if any.
    pub fn client_ack(&self, user: Uuid, client_id: &str) -> StoreResult<Option<IVec>> {
        self.client_ids.get(client_key(user, client_id))
    }

    pub fn put_client_ack(&self, user: Uuid, client_id: &str, ack: &[u8]) -> StoreResult<()> {
        self.client_ids.insert(client_key(user, client_id), ack)?;
        Ok(())
    }
}

/// Merges logs that are each sorted by timestamp into one, taking up to `limit` entries and
/// about `max_bytes`, and telling whether more remain.
fn merge_logs(
    mut sources: Vec<sled::Iter>,
    limit: usize,
    max_bytes: usize,
) -> StoreResult<(Vec<(u64, IVec)>, bool)> {
    let mut heads: Vec<Option<(u64, IVec)>> = Vec::with_capacity(sources.len());
    let mut heap = BinaryHeap::new();
    for (index, source) in sources.iter_mut().enumerate() {
        let head = next_entry(source)?;
        if let Some((ts, _)) = &head {
            heap.push(Reverse((*ts, index)));
        }
        heads.push(head);
    }
    let mut out = Vec::with_capacity(limit.min(1024));
    let mut bytes = 0;
    while let Some(Reverse((_, index))) = heap.pop() {
        if out.len() == limit || (bytes >= max_bytes && !out.is_empty()) {
            return Ok((out, true));
        }
        let entry = heads[index].take().expect("a heap entry has a head");
        bytes += entry.1.len();
        out.push(entry);
        let head = next_entry(&mut sources[index])?;
        if let Some((ts, _)) = &head {
            heap.push(Reverse((*ts, index)));
        }
        heads[index] = head;
    }
    Ok((out, false))
}

fn next_entry(source: &mut sled::Iter) -> StoreResult<Option<(u64, IVec)>> {
    match source.next() {
        None => Ok(None),
        Some(entry) => {
            let (key, value) = entry?;
            Ok(Some((read_u64(&key[16..]), value)))
        }
    }
}

/// `id ++ timestamp` (big-endian), so a prefix scan walks one log in time order.
pub fn log_key(id: Uuid, ts: u64) -> [u8; 24] {
    let mut key = [0u8; 24];
    key[..16].copy_from_slice(id.as_bytes());
    key[16..].copy_from_slice(&ts.to_be_bytes());
    key
}

fn pair_key(a: Uuid, b: Uuid) -> Vec<u8> {
    let mut key = Vec::with_capacity(33);
    key.extend_from_slice(a.as_bytes());
    key.extend_from_slice(b.as_bytes());
    key
}

fn client_key(user: Uuid, client_id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(16 + client_id.len());
    key.extend_from_slice(user.as_bytes());
    key.extend_from_slice(client_id.as_bytes());
    key
}

fn read_u64(bytes: &[u8]) -> u64 {
    let mut buf = [0u8; 8];
    let n = bytes.len().min(8);
    buf[..n].copy_from_slice(&bytes[..n]);
    u64::from_be_bytes(buf)
}

fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("records serialize")
}

fn from_json<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Option<T> {
    serde_json::from_slice(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 1 << 20).unwrap();
        (dir, store)
    }

    #[test]
    fn log_keys_sort_by_id_then_time() {
        let a = Uuid::from_u128(1);
        assert!(log_key(a, 255) < log_key(a, 256));
        assert!(log_key(a, u64::MAX) < log_key(Uuid::from_u128(2), 0));
    }

    #[test]
    fn sync_merges_own_and_group_logs_within_membership() {
        let (_dir, store) = store();
        let (user, group) = (Uuid::from_u128(1), Uuid::from_u128(2));
        store.append_group_event(group, 10, b"before join").unwrap();
        store.open_membership(user, group, 20).unwrap();
        store.append_group_event(group, 20, b"joined").unwrap();
        store.append_user_event(user, 25, b"ack").unwrap();
        store.append_group_event(group, 30, b"message").unwrap();
        store.close_membership(user, group, 40).unwrap();
        store.append_group_event(group, 40, b"left").unwrap();
        store
            .append_group_event(group, 50, b"after leaving")
            .unwrap();

        let (events, more) = store.events_after(user, 0, 100, usize::MAX).unwrap();
        let seen: Vec<(u64, &[u8])> = events.iter().map(|(t, v)| (*t, v.as_ref())).collect();
        assert_eq!(
            seen,
            vec![
                (20, &b"joined"[..]),
                (25, b"ack"),
                (30, b"message"),
                (40, b"left")
            ]
        );
        assert!(!more);

        let (page, more) = store.events_after(user, 20, 2, usize::MAX).unwrap();
        assert_eq!(
            page.iter().map(|(t, _)| *t).collect::<Vec<_>>(),
            vec![25, 30]
        );
        assert!(more);
        let (rest, more) = store.events_after(user, 30, 2, usize::MAX).unwrap();
        assert_eq!(rest.iter().map(|(t, _)| *t).collect::<Vec<_>>(), vec![40]);
        assert!(!more);

        let (by_size, more) = store.events_after(user, 0, 100, 1).unwrap();
        assert_eq!(
            by_size.iter().map(|(t, _)| *t).collect::<Vec<_>>(),
            vec![20]
        );
        assert!(more);
    }

    #[test]
    fn receipts_are_recorded_once() {
        let (_dir, store) = store();
        let (m, u) = (Uuid::from_u128(7), Uuid::from_u128(8));
        assert!(store.record_receipt(m, u, ReceiptKind::Delivered).unwrap());
        assert!(!store.record_receipt(m, u, ReceiptKind::Delivered).unwrap());
        assert!(store.record_receipt(m, u, ReceiptKind::Read).unwrap());
    }
}
