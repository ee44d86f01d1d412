//! The store's records besides the event log and memberships: users and their unique names,
//! sessions, groups and receipts, kept as JSON or raw ids under their tables' keys.

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

    pub fn user_exists(&self, id: Uuid) -> StoreResult<bool> {
        Ok(self.get(Table::Users, id.as_bytes())?.is_some())
    }

    pub fn user_id_by_username(&self, username: &str) -> StoreResult<Option<Uuid>> {
        self.user_id_in(Table::Usernames, &username.to_lowercase())
    }

    pub fn user_id_by_email(&self, email: &str) -> StoreResult<Option<Uuid>> {
        self.user_id_in(Table::Emails, &email.to_lowercase())
    }

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
    }

    pub fn session_by_access_token(&self, token: &str) -> StoreResult<Option<SessionRecord>> {
        let Some(id) = self.get(Table::AccessTokens, token.as_bytes())? else {
            return Ok(None);
        };
        Ok(self.get(Table::Sessions, &id)?.and_then(|v| from_json(&v)))
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
