//! The operator's admin API under `/admin/`: off unless an admin token is configured, answered
//! only to loopback and `--admin-addresses`, with `Authorization: Bearer <admin token>`. Look a
//! user up, suspend and unsuspend (logins and tokens refused with 403, WebSockets closed with
//! 4003, messages kept), delete an account (sessions revoked, names freed, messages kept under
//! the id), revoke a user's sessions. Every action is logged with the peer that asked.

use std::net::IpAddr;

use serde_json::json;
use uuid::Uuid;

use super::accounts::{parse_id, revoke_all_sessions};
use super::routes::AdminRoute;
use super::{query, Api, Outcome};
use crate::chat::{Chat, CLOSE_SUSPENDED};
use crate::config::AdminConfig;
use crate::error::ApiError;
use crate::http::{Request, Response};
use crate::store::UserRecord;

/// Whether two secrets are equal, in a time that does not depend on where they differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// Checks the peer and the admin token of an admin request.
pub(super) fn check_admin(
    admin: &AdminConfig,
    req: &Request,
    peer: IpAddr,
) -> Result<(), ApiError> {
    if !(peer.is_loopback() || admin.addresses.trusts(peer)) {
        return Err(ApiError::forbidden(
            "the admin API is not answered to this address",
        ));
    }
    let token = req
        .authorization
        .as_deref()
        .and_then(|header| header.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    match token {
        Some(token) if same_secret(token.as_bytes(), admin.token.as_bytes()) => Ok(()),
        _ => Err(ApiError::unauthorized(
            "expected `Authorization: Bearer <admin token>`",
        )),
    }
}

impl Api {
    /// An admin request that passed [`check_admin`].
    pub(super) fn admin(
        &self,
        chat: &mut Chat,
        route: AdminRoute,
        req: &Request,
        peer: IpAddr,
        wall: u64,
    ) -> Result<Outcome, ApiError> {
        let done = || Ok(Outcome::Respond(Response::no_content()));
        let suspend = matches!(route, AdminRoute::Suspend(_));
        match route {
            AdminRoute::FindUser => {
                let mut username = None;
                for (name, value) in query::pairs(&req.path)? {
                    match name.as_str() {
                        "username" if username.is_none() => username = Some(value),
                        _ => return Err(ApiError::bad_request("give one `username`")),
                    }
                }
                let username =
                    username.ok_or_else(|| ApiError::bad_request("missing `username`"))?;
                let store = chat.store();
                let user = match store.user_id_by_username(&username)? {
                    Some(id) => store.user(id)?.filter(|u| !u.deleted),
                    None => None,
                };
                let user = user.ok_or_else(|| ApiError::not_found("unknown user"))?;
                log::info!("admin: looked up user {} (from {peer})", user.id);
                let body = json!({
                    "id": user.id,
                    "username": user.username,
                    "email": user.email,
                    "created_at": user.created_at,
                    "suspended": user.suspended,
                });
                Ok(Outcome::Respond(Response::json(200, &body)))
            }
            AdminRoute::Suspend(id) | AdminRoute::Unsuspend(id) => {
                let mut user = known_user(chat, &id)?;
                user.suspended = suspend;
                chat.store_mut().update_user(&user);
                if suspend {
                    close_all(chat, user.id, "account suspended")?;
                }
                let action = if suspend { "suspended" } else { "unsuspended" };
                log::warn!("admin: {action} user {} (from {peer})", user.id);
                done()
            }
            AdminRoute::DeleteUser(id) => {
                let mut user = known_user(chat, &id)?;
                close_all(chat, user.id, "account deleted")?;
                chat.leave_every_group(user.id, wall)?;
                for session in chat.store().sessions_of(user.id)? {
                    chat.store_mut().revoke_session(&session);
                }
                chat.store_mut().free_user_names(&user);
                user.deleted = true;
                user.password_hash.clear();
                user.token_generation = user.token_generation.wrapping_add(1);
                chat.store_mut().update_user(&user);
                log::warn!("admin: deleted user {} (from {peer})", user.id);
                done()
            }
            AdminRoute::RevokeSessions(id) => {
                let user = known_user(chat, &id)?;
                revoke_all_sessions(chat, user.id)?;
                log::warn!(
                    "admin: revoked the sessions of user {} (from {peer})",
                    user.id
                );
                done()
            }
        }
    }
}

/// The user an admin path names: malformed is 400, unknown or deleted 404.
fn known_user(chat: &Chat, id: &str) -> Result<UserRecord, ApiError> {
    let id: Uuid = parse_id(id, "id")?;
    chat.store()
        .user(id)?
        .filter(|u| !u.deleted)
        .ok_or_else(|| ApiError::not_found("unknown user"))
}

/// Closes every WebSocket of every session of `user` with 4003.
fn close_all(chat: &mut Chat, user: Uuid, reason: &'static str) -> Result<(), ApiError> {
    for session in chat.store().sessions_of(user)? {
        chat.devices
            .close_session(session.id, CLOSE_SUSPENDED, reason);
    }
    Ok(())
}
