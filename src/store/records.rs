//! The store's records besides the event log and memberships: users and their unique names,
//! sessions, groups and receipts, kept as JSON or raw ids under their tables' keys.

use std::collections::BTreeMap;
use std::ops::Bound;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::backend::{Direction, Table};
use super::{Store, StoreResult};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct UserRecord {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    pub password_hash: String,
    pub created_at: u64,
    /// Raised by a password change and by `POST /logout/all`: login tokens issued under a lower
    /// one are refused. 0 in records written before it.
    #[serde(default)]
    pub token_generation: u32,
    /// Set by the operator (`POST /admin/users/{id}/suspend`): logins and tokens refused.
    #[serde(default, skip_serializing_if = "is_false")]
    pub suspended: bool,
    /// Set by the operator (`DELETE /admin/users/{id}`): the record stays, so that messages
    /// stay attributed to the id, but the user is unknown and its names are free.
    #[serde(default, skip_serializing_if = "is_false")]
    pub deleted: bool,
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
    /// Ms of the last WebSocket upgrade with this session's token; absent until one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<u64>,
    /// Revoked sessions keep their record (the store writes, it never deletes, on the loop's
    /// path) with their token unindexed.
    #[serde(default, skip_serializing_if = "is_false")]
    pub revoked: bool,
}

fn is_false(value: &bool) -> bool {
    !*value
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GroupRecord {
    pub id: Uuid,
    pub name: String,
    pub creator: Uuid,
    pub created_at: u64,
    /// A small number unique to the group, carried inside its message ids.
    pub ordinal: u32,
    /// Current members in the order they joined (the creator of a new group last, as in event 70).
    /// Kept in the `members` table, not in the record (since format 6: see [`super::memberships`]).
    #[serde(skip)]
    pub members: Vec<Uuid>,
    /// Users the owner removed and no member has added back since: they may not join again
    /// by the group's id. In the `members` table too.
    #[serde(skip)]
    pub removed: Vec<Uuid>,
    /// The member with the owner's rights; `None` once the last member left. Records written
    /// before owners existed have none while they still have members: the chat core makes the
    /// creator (or, if they left, the longest member) owner when it reads them.
    #[serde(default)]
    pub owner: Option<Uuid>,
}

/// Which receipt a user gave for a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptKind {
    Delivered = 1,
    Read = 2,
}

impl Store {
    // --- users -------------------------------------------------------------------------------

    /// Inserts a user and its unique indices. The caller has checked that the names are free;
    /// the loop is single-threaded, so nothing can take them in between.
    pub fn insert_user(&mut self, user: &UserRecord) {
        let id = user.id.as_bytes().to_vec();
        self.put(Table::Users, id.clone(), to_json(user));
        self.put(Table::Usernames, user.username.to_lowercase(), id.clone());
        self.put(Table::Emails, user.email.to_lowercase(), id);
    }

    pub fn user(&self, id: Uuid) -> StoreResult<Option<UserRecord>> {
        Ok(self
            .get(Table::Users, id.as_bytes())?
            .and_then(|v| from_json(&v)))
    }

    /// Whether `id` names a user not deleted.
    pub fn user_exists(&self, id: Uuid) -> StoreResult<bool> {
        Ok(self.user(id)?.is_some_and(|user| !user.deleted))
    }

    pub fn user_id_by_username(&self, username: &str) -> StoreResult<Option<Uuid>> {
        self.user_id_in(Table::Usernames, &username.to_lowercase())
    }

    pub fn user_id_by_email(&self, email: &str) -> StoreResult<Option<Uuid>> {
        self.user_id_in(Table::Emails, &email.to_lowercase())
    }

    /// An emptied index entry (a deleted user's name) names nobody.
    fn user_id_in(&self, index: Table, name: &str) -> StoreResult<Option<Uuid>> {
        Ok(self
            .get(index, name.as_bytes())?
            .and_then(|v| Uuid::from_slice(&v).ok()))
    }

    // --- sessions ----------------------------------------------------------------------------

    pub fn insert_session(&mut self, session: &SessionRecord) {
        let id = session.id.as_bytes().to_vec();
        self.put(Table::Sessions, id.clone(), to_json(session));
        self.put(Table::AccessTokens, session.access_token.as_bytes(), id);
        let key = pair_key(session.user_id, session.id);
        self.put(Table::UserSessions, key, SESSION_LIVE.to_vec());
    }

    /// The live session a messaging token opens (a revoked session's token was unindexed).
    pub fn session_by_access_token(&self, token: &str) -> StoreResult<Option<SessionRecord>> {
        let Some(id) = self.get(Table::AccessTokens, token.as_bytes())? else {
            return Ok(None);
        };
        if id.is_empty() {
            return Ok(None);
        }
        let session: Option<SessionRecord> =
            self.get(Table::Sessions, &id)?.and_then(|v| from_json(&v));
        Ok(session.filter(|s| !s.revoked))
    }

    // --- groups and memberships --------------------------------------------------------------

    /// Writes the group's record: its own fields, not its members (see
    /// [`Store::open_membership`] and the calls beside it).
    pub fn put_group(&mut self, group: &GroupRecord) {
        self.put(Table::Groups, group.id.as_bytes().to_vec(), to_json(group));
    }

    /// Every group with its members; read once at start, when nothing is pending.
    pub fn all_groups(&self) -> StoreResult<Vec<GroupRecord>> {
        let mut groups = Vec::new();
        let all = Bound::Unbounded;
        for entry in self
            .backend
            .range(Table::Groups, all, all, Direction::Forward)
        {
            let (_, value) = entry?;
            if let Some(group) = from_json(&value) {
                groups.push(group);
            }
        }
        self.fill_members(&mut groups)?;
        Ok(groups)
    }

    // --- receipts ----------------------------------------------------------------------------

    /// Records a receipt; false when this user already gave it for this message.
    pub fn record_receipt(
        &mut self,
        message: Uuid,
        user: Uuid,
        kind: ReceiptKind,
    ) -> StoreResult<bool> {
        let mut key = pair_key(message, user);
        key.push(kind as u8);
        if self.get(Table::Receipts, &key)?.is_some() {
            return Ok(false);
        }
        self.put(Table::Receipts, key, Vec::new());
        Ok(true)
    }

    // --- accounts and devices (issue #19) ----------------------------------------------------

    /// Rewrites a user's record (its indices unchanged: username and email stay).
    pub fn update_user(&mut self, user: &UserRecord) {
        self.put(Table::Users, user.id.as_bytes().to_vec(), to_json(user));
    }

    /// Frees a deleted user's username and email for others (the entries are emptied: the
    /// overlay has no deletions).
    pub fn free_user_names(&mut self, user: &UserRecord) {
        self.put(Table::Usernames, user.username.to_lowercase(), Vec::new());
        self.put(Table::Emails, user.email.to_lowercase(), Vec::new());
    }

    /// A session by id, revoked or not.
    pub fn session(&self, id: Uuid) -> StoreResult<Option<SessionRecord>> {
        Ok(self
            .get(Table::Sessions, id.as_bytes())?
            .and_then(|v| from_json(&v)))
    }

    /// Rewrites a session's record (its token and index unchanged).
    pub fn update_session(&mut self, session: &SessionRecord) {
        self.put(
            Table::Sessions,
            session.id.as_bytes().to_vec(),
            to_json(session),
        );
    }

    /// Revokes a session: its token opens nothing any more, and it leaves the user's list.
    pub fn revoke_session(&mut self, session: &SessionRecord) {
        let revoked = SessionRecord {
            revoked: true,
            ..session.clone()
        };
        self.update_session(&revoked);
        // Emptied rather than removed: the overlay has no deletions.
        self.put(
            Table::AccessTokens,
            session.access_token.as_bytes(),
            Vec::new(),
        );
        let key = pair_key(session.user_id, session.id);
        self.put(Table::UserSessions, key, SESSION_REVOKED.to_vec());
    }

    /// `user`'s live sessions, oldest first, as this tick sees them. Reads the user's index
    /// entries (revoked ones included, until a start prunes them) and the live sessions' records.
    pub fn sessions_of(&self, user: Uuid) -> StoreResult<Vec<SessionRecord>> {
        let mut live = Vec::new();
        for (key, state) in self.scan_prefix_now(Table::UserSessions, user.as_bytes())? {
            if state != SESSION_LIVE {
                continue;
            }
            let Some(id) = key.get(16..).and_then(|id| Uuid::from_slice(id).ok()) else {
                continue;
            };
            if let Some(session) = self.session(id)?.filter(|s| !s.revoked) {
                live.push(session);
            }
        }
        live.sort_by_key(|s| (s.created_at, s.id));
        Ok(live)
    }

    /// Records that the login token with signature `signature`, expiring at `exp` (seconds),
    /// was logged out.
    pub fn revoke_token(&mut self, exp: u64, signature: &str) {
        self.put(
            Table::RevokedTokens,
            revoked_key(exp, signature),
            Vec::new(),
        );
    }

    pub fn token_revoked(&self, exp: u64, signature: &str) -> StoreResult<bool> {
        Ok(self
            .get(Table::RevokedTokens, &revoked_key(exp, signature))?
            .is_some())
    }

    /// At start, with nothing pending: drops logged-out tokens that have expired anyway and the
    /// index entries of revoked sessions, so neither table grows for ever; and indexes the
    /// sessions of a data directory made before the index. Returns how many entries it dropped.
    pub fn prune_accounts(&self, now_secs: u64) -> StoreResult<usize> {
        let mut dropped = Vec::new();
        let expired_until = now_secs.to_be_bytes();
        let from = Bound::Unbounded;
        let to = Bound::Excluded(&expired_until[..]);
        for entry in self
            .backend
            .range(Table::RevokedTokens, from, to, Direction::Forward)
        {
            dropped.push((Table::RevokedTokens, entry?.0));
        }
        let all = Bound::Unbounded;
        let mut indexed = 0usize;
        for entry in self
            .backend
            .range(Table::UserSessions, all, all, Direction::Forward)
        {
            let (key, state) = entry?;
            indexed += 1;
            if state != SESSION_LIVE {
                dropped.push((Table::UserSessions, key));
            }
        }
        for (table, key) in &dropped {
            self.backend.remove(*table, key)?;
        }
        if indexed == 0 {
            for entry in self
                .backend
                .range(Table::Sessions, all, all, Direction::Forward)
            {
                let (_, value) = entry?;
                if let Some(session) = from_json::<SessionRecord>(&value) {
                    let state = if session.revoked {
                        SESSION_REVOKED
                    } else {
                        SESSION_LIVE
                    };
                    let key = pair_key(session.user_id, session.id);
                    self.backend.put(Table::UserSessions, &key, state)?;
                }
            }
        }
        Ok(dropped.len())
    }

    /// The entries of `table` under `prefix` as this tick sees them (stored, then overwritten
    /// by sealed ticks not yet applied and by this tick's writes).
    fn scan_prefix_now(
        &self,
        table: Table,
        prefix: &[u8],
    ) -> StoreResult<BTreeMap<Vec<u8>, Vec<u8>>> {
        let mut entries = BTreeMap::new();
        for entry in self.backend.scan_prefix(table, prefix) {
            let (key, value) = entry?;
            entries.insert(key, value);
        }
        let unapplied = self.unapplied.iter().map(|tick| &tick.tables);
        for tables in unapplied.chain(std::iter::once(&self.pending)) {
            for (key, value) in &tables[table as usize] {
                if key.starts_with(prefix) {
                    entries.insert(key.clone(), value.clone());
                }
            }
        }
        Ok(entries)
    }
}

const SESSION_LIVE: &[u8] = b"live";
const SESSION_REVOKED: &[u8] = b"revoked";

fn revoked_key(exp: u64, signature: &str) -> Vec<u8> {
    let mut key = exp.to_be_bytes().to_vec();
    key.extend_from_slice(signature.as_bytes());
    key
}

fn pair_key(a: Uuid, b: Uuid) -> Vec<u8> {
    let mut key = Vec::with_capacity(33);
    key.extend_from_slice(a.as_bytes());
    key.extend_from_slice(b.as_bytes());
    key
}

fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("records serialize")
}

pub(super) fn from_json<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Option<T> {
    serde_json::from_slice(bytes).ok()
}
