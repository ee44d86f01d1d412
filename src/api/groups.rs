//! The group handlers: create a group, join and leave one, rename one, list the caller's and
//! view one (the chat core does the work).

use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::body::json_body;
use super::{Api, Outcome, Route};
use crate::chat::Chat;
use crate::error::ApiError;
use crate::http::{Request, Response};

impl Api {
    /// `POST /groups`.
    pub(super) fn create_group(
        &self,
        chat: &mut Chat,
        req: &Request,
        wall: u64,
    ) -> Result<Outcome, ApiError> {
        let user = self.authenticate(chat, req)?;
        #[derive(Deserialize)]
        struct Body {
            name: Option<String>,
            #[serde(default)]
            user_ids: Vec<String>,
        }
        let body: Body = json_body(req)?;
        let name = body
            .name
            .ok_or_else(|| ApiError::bad_request("missing `name`"))?;
        let id = chat.create_group(user, &name, &body.user_ids, wall)?;
        Ok(Outcome::Respond(Response::json(201, &json!({ "id": id }))))
    }

    /// `PUT /groups/{id}/join` and `PUT /groups/{id}/left`.
    pub(super) fn join_or_leave(
        &self,
        chat: &mut Chat,
        route: Route,
        group: Uuid,
        req: &Request,
        wall: u64,
    ) -> Result<Outcome, ApiError> {
        let user = self.authenticate(chat, req)?;
        #[derive(Deserialize, Default)]
        struct Body {
            user_id: Option<Uuid>,
        }
        let body: Body = if req.body.iter().all(u8::is_ascii_whitespace) {
            Body::default()
        } else {
            json_body(req)?
        };
        let view = if matches!(route, Route::Join(_)) {
            chat.join(user, group, body.user_id, wall)?
        } else {
            chat.leave(user, group, body.user_id, wall)?
        };
        Ok(Outcome::Respond(Response::json(200, &view)))
    }

    /// `PUT /groups/{id}`: rename.
    pub(super) fn rename_group(
        &self,
        chat: &mut Chat,
        group: Uuid,
        req: &Request,
        wall: u64,
    ) -> Result<Outcome, ApiError> {
        let user = self.authenticate(chat, req)?;
        // A map, not a struct: serde would take `["name"]` for `{"name": "name"}`.
        let body: serde_json::Map<String, serde_json::Value> = json_body(req)?;
        let Some(name) = body.get("name").and_then(|name| name.as_str()) else {
            return Err(ApiError::bad_request("`name` must be a string"));
        };
        let view = chat.rename(user, group, name, wall)?;
        Ok(Outcome::Respond(Response::json(200, &view)))
    }

    /// `GET /groups`: the caller's groups, most recent activity first.
    pub(super) fn list_groups(&self, chat: &mut Chat, req: &Request) -> Result<Outcome, ApiError> {
        let user = self.authenticate(chat, req)?;
        let groups = chat.group_list(user)?;
        Ok(Outcome::Respond(Response::json(
            200,
            &json!({ "groups": groups }),
        )))
    }

    /// `GET /groups/{id}`: one group's view, for a member.
    pub(super) fn group_view(
        &self,
        chat: &mut Chat,
        group: Uuid,
        req: &Request,
    ) -> Result<Outcome, ApiError> {
        let user = self.authenticate(chat, req)?;
        let view = chat.group_view(user, group)?;
        Ok(Outcome::Respond(Response::json(200, &view)))
    }
}
