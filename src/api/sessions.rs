//! Devices: creating a session (its messaging URL), the WebSocket upgrade its token opens,
//! listing the caller's sessions and revoking one (its token refused, its WebSockets closed with
//! 4001 at once).

use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::accounts::parse_id;
use super::body::{json_body, positive_whole_number, required_text};
use super::{Api, Outcome};
use crate::auth;
use crate::chat::{Chat, CLOSE_REVOKED};
use crate::error::{ApiError, ErrorCode};
use crate::http::{Request, Response};
use crate::store::SessionRecord;

const PLATFORMS: [&str; 4] = ["web", "ios", "android", "live"];

impl Api {
    pub(super) fn create_session(
        &self,
        chat: &mut Chat,
        req: &Request,
        user: Uuid,
        wall: u64,
    ) -> Result<SessionRecord, ApiError> {
        #[derive(Deserialize)]
        struct Body {
            device_id: Option<String>,
            platform: Option<String>,
            model: Option<String>,
            // A JSON number: `102.0` is the integer 102 to JSON and to JavaScript clients.
            build: Option<serde_json::Number>,
            name: Option<String>,
        }
        let body: Body = json_body(req)?;
        let device_id = required_text(body.device_id, "device_id")?;
        let platform = required_text(body.platform, "platform")?;
        if !PLATFORMS.contains(&platform.as_str()) {
            return Err(ApiError::bad_request(
                "`platform` must be one of web, ios, android, live",
            ));
        }
        let model = required_text(body.model, "model")?;
        let build = body
            .build
            .as_ref()
            .and_then(positive_whole_number)
            .ok_or_else(|| ApiError::bad_request("`build` must be an integer above 0"))?;
        let name = match body.name {
            Some(name) => Some(required_text(Some(name), "name")?),
            None => None,
        };
        let session = SessionRecord {
            id: Uuid::new_v4(),
            user_id: user,
            device_id,
            platform,
            model,
            build,
            name,
            created_at: wall,
            access_token: auth::random_hex(32),
            last_seen: None,
            revoked: false,
        };
        chat.store_mut().insert_session(&session);
        Ok(session)
    }

    pub(super) fn upgrade(
        &self,
        chat: &mut Chat,
        req: &Request,
        token: &str,
        wall: u64,
    ) -> Result<Outcome, ApiError> {
        let key = self.check_upgrade(req)?;
        let session = chat
            .store()
            .session_by_access_token(token)?
            .ok_or_else(|| ApiError::unauthorized("unknown messaging token"))?;
        match chat.store().user(session.user_id)? {
            Some(user) if user.suspended && !user.deleted => {
                return Err(ApiError::forbidden("this account is suspended"))
            }
            Some(user) if !user.deleted => {}
            _ => return Err(ApiError::unauthorized("unknown messaging token")),
        }
        chat.check_connection_room(session.user_id)?;
        // A session's first connection is stored at once (the 101 waits for the write, as
        // answers do), so that `last_seen` is null only for one never connected; later ones
        // store `last_seen` when they close, adding no write to a reconnect.
        if session.last_seen.is_none() {
            let seen = SessionRecord {
                last_seen: Some(wall),
                ..session.clone()
            };
            chat.store_mut().update_session(&seen);
        }
        Ok(Outcome::Upgrade { session, key })
    }

    /// Checks a WebSocket upgrade's headers and Origin; returns its `Sec-WebSocket-Key`.
    pub(super) fn check_upgrade(&self, req: &Request) -> Result<String, ApiError> {
        // Only a GET upgrades (RFC 6455 §4.1); a HEAD gets what a plain GET gets.
        if !req.wants_upgrade || req.method != "GET" {
            return Err(ApiError::not_found("no such endpoint"));
        }
        let key = req
            .websocket_key
            .clone()
            .ok_or_else(|| ApiError::bad_request("missing Sec-WebSocket-Key"))?;
        if req.websocket_version.as_deref() != Some("13") {
            return Err(ApiError::bad_request(
                "unsupported Sec-WebSocket-Version; use 13",
            ));
        }
        if let Some(origin) = &req.origin {
            let origin = origin.trim_end_matches('/');
            let allowed = self.allowed_origins.is_empty()
                || self
                    .allowed_origins
                    .iter()
                    .any(|allowed| allowed.eq_ignore_ascii_case(origin));
            if !allowed {
                return Err(ApiError::forbidden(
                    "this Origin may not open a WebSocket here",
                ));
            }
        }
        Ok(key)
    }

    /// `--public-url`'s base, else the request's `Host` with `wss` when a trusted proxy says
    /// the client came over https (`secure`), `ws` otherwise.
    pub(super) fn messaging_url(&self, req: &Request, secure: Option<bool>, token: &str) -> String {
        match &self.public_url {
            Some(base) => format!("{base}/{token}"),
            None => {
                let host = req.host.as_deref().unwrap_or(&self.fallback_host);
                let scheme = if secure == Some(true) { "wss" } else { "ws" };
                format!("{scheme}://{host}/{token}")
            }
        }
    }
    /// A new session beyond `--max-sessions-per-user` is refused.
    pub(super) fn check_session_room(&self, chat: &Chat, user: Uuid) -> Result<(), ApiError> {
        let max = self.max_sessions_per_user;
        if max > 0 && chat.store().sessions_of(user)?.len() >= max {
            return Err(ApiError::new(
                ErrorCode::LimitReached,
                format!("at most {max} sessions per user; revoke one (DELETE /sessions/{{id}})"),
            ));
        }
        Ok(())
    }

    /// `GET /sessions`: the caller's live sessions, oldest first.
    pub(super) fn list_sessions(
        &self,
        chat: &Chat,
        req: &Request,
        wall: u64,
    ) -> Result<Outcome, ApiError> {
        let user = self.authenticate(chat, req)?;
        let sessions: Vec<_> = chat
            .store()
            .sessions_of(user)?
            .into_iter()
            .map(|session| {
                let online = chat.devices.online(session.id);
                let last_seen = if online {
                    Some(wall)
                } else {
                    session.last_seen
                };
                json!({
                    "id": session.id,
                    "device_id": session.device_id,
                    "platform": session.platform,
                    "model": session.model,
                    "build": session.build,
                    "name": session.name,
                    "created_at": session.created_at,
                    "last_seen": last_seen,
                    "online": online,
                })
            })
            .collect();
        Ok(Outcome::Respond(Response::json(
            200,
            &json!({ "sessions": sessions }),
        )))
    }

    /// `DELETE /sessions/{id}`: another user's session, or one already revoked, is unknown.
    pub(super) fn delete_session(
        &self,
        chat: &mut Chat,
        req: &Request,
        id: &str,
    ) -> Result<Outcome, ApiError> {
        let user = self.authenticate(chat, req)?;
        let id = parse_id(id, "id")?;
        let session = chat
            .store()
            .session(id)?
            .filter(|s| s.user_id == user && !s.revoked)
            .ok_or_else(|| ApiError::not_found("unknown session"))?;
        revoke(chat, &session);
        Ok(Outcome::Respond(Response::no_content()))
    }
}

/// Revokes a session: its token is refused from now on and its WebSockets close with 4001
/// after this tick's events.
pub(super) fn revoke(chat: &mut Chat, session: &SessionRecord) {
    chat.store_mut().revoke_session(session);
    chat.devices
        .close_session(session.id, CLOSE_REVOKED, "session revoked");
}
