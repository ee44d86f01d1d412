//! The caller's account and others': `GET /users/me`, lookups by id and by username, the
//! password change and logging out (one token, or every token and session of the user).
//!
//! Login tokens are revoked without a table of every token: a per-user token generation in the
//! user record (raised by a password change and `POST /logout/all`) and, for a single logout, the
//! token's signature under its expiry in the store's revoked tokens. Both are store writes, so the
//! 204 or 200 leaves once they are durable, like any other write's answer.

use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::body::json_body;
use super::users::MAX_PASSWORD_BYTES;
use super::{query, Api, Outcome, Pending};
use crate::chat::Chat;
use crate::error::ApiError;
use crate::hasher::Work;
use crate::http::{Request, Response};
use crate::store::UserRecord;

/// Ids one `GET /users?id=...` may ask for.
pub(super) const MAX_LOOKUP_IDS: usize = 100;

/// How another user is shown: a username is a public handle; an email never is. (Deleted
/// users are not shown at all.)
fn public_view(user: &UserRecord) -> Value {
    json!({"id": user.id, "username": user.username})
}

/// The view of user `id` for `viewer` ([`view_for`]), unless unknown or deleted.
fn visible_user(chat: &Chat, viewer: Uuid, id: Uuid) -> Result<Option<Value>, ApiError> {
    Ok(chat
        .store()
        .user(id)?
        .as_ref()
        .filter(|user| !user.deleted)
        .map(|user| view_for(chat, viewer, user)))
}

/// [`public_view`] with `online` and `last_seen` when `viewer` may see them (presence is on and
/// the two share a group; issue #20).
fn view_for(chat: &Chat, viewer: Uuid, user: &UserRecord) -> Value {
    let mut view = public_view(user);
    if let Some((online, last_seen)) = chat.presence_of(viewer, user.id) {
        view["online"] = json!(online);
        view["last_seen"] = json!(last_seen);
    }
    view
}

/// A user id from a path or a query: malformed is a 400, not an unknown user.
pub(super) fn parse_id(text: &str, what: &str) -> Result<Uuid, ApiError> {
    Uuid::try_parse(text).map_err(|_| ApiError::bad_request(format!("`{what}` must be a UUID")))
}

impl Api {
    /// `GET /users/me`.
    pub(super) fn me(&self, chat: &Chat, req: &Request) -> Result<Outcome, ApiError> {
        let user = self.caller(chat, req)?.user;
        let body = json!({
            "id": user.id,
            "username": user.username,
            "email": user.email,
            "created_at": user.created_at,
        });
        Ok(Outcome::Respond(Response::json(200, &body)))
    }

    /// `GET /users/{id}`.
    pub(super) fn user(&self, chat: &Chat, req: &Request, id: &str) -> Result<Outcome, ApiError> {
        let viewer = self.caller(chat, req)?.user.id;
        let id = parse_id(id, "id")?;
        let user = chat
            .store()
            .user(id)?
            .filter(|u| !u.deleted)
            .ok_or_else(|| ApiError::not_found("unknown user"))?;
        let view = view_for(chat, viewer, &user);
        Ok(Outcome::Respond(Response::json(200, &view)))
    }

    /// `GET /users?username=NAME` (exact, any case: zero or one user) or `GET /users?id=A&id=B`
    /// (at most [`MAX_LOOKUP_IDS`]; those that exist, in the order asked, each once).
    pub(super) fn find_users(&self, chat: &Chat, req: &Request) -> Result<Outcome, ApiError> {
        let viewer = self.caller(chat, req)?.user.id;
        let mut username = None;
        let mut ids = Vec::new();
        for (name, value) in query::pairs(&req.path)? {
            match name.as_str() {
                "username" if username.is_none() => username = Some(value),
                "username" => return Err(ApiError::bad_request("give one `username`")),
                "id" => ids.push(value),
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "unknown query parameter `{name}`; use `username` or `id`"
                    )))
                }
            }
        }
        let store = chat.store();
        let mut users = Vec::new();
        match (username, ids.is_empty()) {
            (Some(_), false) | (None, true) => {
                return Err(ApiError::bad_request(
                    "give either `username` or one or more `id`",
                ))
            }
            (Some(username), true) => {
                if let Some(id) = store.user_id_by_username(&username)? {
                    users.extend(visible_user(chat, viewer, id)?);
                }
            }
            (None, false) => {
                if ids.len() > MAX_LOOKUP_IDS {
                    return Err(ApiError::bad_request(format!(
                        "at most {MAX_LOOKUP_IDS} `id` a request"
                    )));
                }
                let mut seen = Vec::with_capacity(ids.len());
                for id in &ids {
                    let id = parse_id(id, "id")?;
                    if seen.contains(&id) {
                        continue;
                    }
                    seen.push(id);
                    users.extend(visible_user(chat, viewer, id)?);
                }
            }
        }
        Ok(Outcome::Respond(Response::json(
            200,
            &json!({ "users": users }),
        )))
    }

    /// `PUT /users/me/password`: checks the current password and hashes the new one on a worker;
    /// [`Api::password_changed`] stores it.
    pub(super) fn change_password(&self, chat: &Chat, req: &Request) -> Result<Outcome, ApiError> {
        let caller = self.caller(chat, req)?;
        #[derive(Deserialize)]
        struct Body {
            password: Option<String>,
            new_password: Option<String>,
        }
        let body: Body = json_body(req)?;
        let password = body
            .password
            .ok_or_else(|| ApiError::bad_request("missing `password`"))?;
        let new_password = body
            .new_password
            .ok_or_else(|| ApiError::bad_request("missing `new_password`"))?;
        if password.len() > MAX_PASSWORD_BYTES {
            return Err(ApiError::bad_request(format!(
                "`password` must be at most {MAX_PASSWORD_BYTES} bytes"
            )));
        }
        if new_password.is_empty() || new_password.len() > MAX_PASSWORD_BYTES {
            return Err(ApiError::bad_request(format!(
                "`new_password` must be 1 to {MAX_PASSWORD_BYTES} bytes"
            )));
        }
        Ok(Outcome::Hash(
            Pending::ChangePassword {
                user: caller.user.id,
                gen: caller.token.gen,
            },
            Work::Rehash {
                password,
                hash: caller.user.password_hash,
                new_password,
            },
        ))
    }

    /// Stores a changed password and raises the user's token generation: every login token
    /// issued before stops working; the answer carries a fresh one.
    pub(super) fn password_changed(
        &self,
        chat: &mut Chat,
        user: Uuid,
        gen: u32,
        password_hash: String,
        wall: u64,
    ) -> Result<Response, ApiError> {
        let refused = || ApiError::unauthorized("invalid or expired token");
        let mut record = chat.store().user(user)?.ok_or_else(refused)?;
        // Logged out everywhere (or changed again) while this one was hashing.
        if record.token_generation != gen {
            return Err(refused());
        }
        record.password_hash = password_hash;
        record.token_generation = record.token_generation.wrapping_add(1);
        chat.store_mut().update_user(&record);
        let token = self.jwt.issue(user, record.token_generation, wall / 1000);
        Ok(Response::json(200, &json!({ "token": token })))
    }

    /// A login's answer: a token of the user's current generation, and the user's id.
    pub(super) fn logged_in(
        &self,
        chat: &Chat,
        user: Uuid,
        wall: u64,
    ) -> Result<Response, ApiError> {
        let record = chat
            .store()
            .user(user)?
            .filter(|u| !u.deleted)
            .ok_or_else(|| ApiError::unauthorized("invalid credentials"))?;
        if record.suspended {
            return Err(ApiError::forbidden("this account is suspended"));
        }
        let token = self.jwt.issue(user, record.token_generation, wall / 1000);
        Ok(Response::json(
            200,
            &json!({ "token": token, "user_id": user }),
        ))
    }

    /// `POST /logout`: this login token stops working.
    pub(super) fn logout(&self, chat: &mut Chat, req: &Request) -> Result<Outcome, ApiError> {
        let token = self.caller(chat, req)?.token;
        chat.store_mut().revoke_token(token.exp, &token.signature);
        Ok(Outcome::Respond(Response::no_content()))
    }

    /// `POST /logout/all`: every login token of the user stops working, and every session is
    /// revoked (its WebSockets closed with 4001).
    pub(super) fn logout_all(&self, chat: &mut Chat, req: &Request) -> Result<Outcome, ApiError> {
        let mut user = self.caller(chat, req)?.user;
        user.token_generation = user.token_generation.wrapping_add(1);
        chat.store_mut().update_user(&user);
        revoke_all_sessions(chat, user.id)?;
        Ok(Outcome::Respond(Response::no_content()))
    }
}

/// Revokes every live session of `user` and closes their WebSockets with 4001.
pub(super) fn revoke_all_sessions(chat: &mut Chat, user: Uuid) -> Result<(), ApiError> {
    for session in chat.store().sessions_of(user)? {
        super::sessions::revoke(chat, &session);
    }
    Ok(())
}
