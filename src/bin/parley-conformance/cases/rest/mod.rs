//! REST cases: registration, login and tokens, sessions, group creation, and the error statuses
//! and error bodies of the HTTP layer.

mod accounts;
mod errors;
mod sessions;
mod users;

use std::fmt::Display;

use serde_json::Value;

use super::{expect_error, Ctx};
use crate::registry::{Case, Outcome};
use accounts::{
    auth_required, login_invalid, login_jwt, login_ok, register_conflict, register_created,
    register_email, register_invalid,
};
use errors::{
    bad_json, body_too_large, chunked, chunked_any, head_too_large, healthz, media_type,
    method_not_allowed, method_not_allowed_strict, not_found,
};
use sessions::{
    group_created, group_invalid, group_name_limits, ids_uuid, session_created, session_invalid,
    session_limits, session_token,
};
use users::{login_user_id, users_lookup};

pub const CASES: &[Case] = &[
    Case::core("rest.register.created", "POST /users answers 201 {\"id\"}, a new id per user", register_created),
    Case::core("rest.register.conflict", "a taken username or email, in any letter case, answers 409 conflict", register_conflict),
    Case::core("rest.register.email", "an email that is not local@domain (the walkthrough's copied `[email protected]` among them) answers 400 bad_request", register_email),
    Case::core("rest.login.ok", "login by username or by email, case-insensitively, answers 200 {\"token\"}; username and email together use the username", login_ok),
    Case::core("rest.login.invalid", "a wrong password and an unknown user get the same 401 unauthorized", login_invalid),
    Case::core("rest.auth.required", "missing, malformed and forged tokens answer 401; the Bearer scheme is case-insensitive", auth_required),
    Case::core("rest.session.created", "POST /sessions answers 201 with created_at, id and a ws:// messaging_url ending in a fresh token, not the session id", session_created),
    Case::core("rest.session.invalid", "an unknown platform (a known prefix too), build 0, or a missing device_id or model answers 400", session_invalid),
    Case::core("rest.group.created", "POST /groups answers 201; every member gets event 70, duplicates and the creator folded, creator last", group_created),
    Case::core("rest.group.invalid", "a missing name or an unknown user id answers 400 (naming the unknown id); no token answers 401", group_invalid),
    Case::core("rest.error.not_found", "an unknown path answers 404 not_found", not_found),
    Case::core("rest.error.method_not_allowed", "a known path with the wrong method answers 405 with Allow", method_not_allowed),
    Case::core("rest.error.media_type", "a body that is not JSON by content type answers 415 unsupported_media_type", media_type),
    Case::core("rest.error.bad_json", "malformed JSON answers 400 bad_request", bad_json),
    Case::core("rest.body.chunked", "a chunked request body is decoded (201), or refused with 411 or 501", chunked_any),
    Case::parley("rest.healthz", "GET /healthz answers 200 {\"status\":\"ok\"}", healthz),
    Case::parley("rest.register.invalid", "usernames with whitespace or @, empty or over 64 characters, an email with two @, empty, missing or 1025-byte passwords answer 400", register_invalid),
    Case::parley("rest.login.jwt", "the login token is a JWT carrying user_id and a 14-day exp", login_jwt),
    Case::parley("rest.session.token", "the messaging token is 64 hex characters", session_token),
    Case::parley("rest.session.limits", "a build given as a string or a 257-character device_id answers 400", session_limits),
    Case::parley("rest.group.name_limits", "an empty or 257-character group name answers 400", group_name_limits),
    Case::parley("rest.ids.uuid", "user, session, group and message ids are hyphenated lower-case UUIDs", ids_uuid),
    Case::parley("rest.error.method_not_allowed_strict", "DELETE /users and POST /healthz answer 405 with Allow", method_not_allowed_strict),
    Case::parley("rest.error.body_too_large", "a body over 64 KiB answers 413 too_large", body_too_large),
    Case::parley("rest.error.chunked", "a body sent with Transfer-Encoding answers 411", chunked),
    Case::parley("rest.error.head_too_large", "a head over 8 KiB, or over 64 headers, answers 431 too_large", head_too_large),
    Case::parley("rest.login.user_id", "login answers the user's id as `user_id`, by username and by email", login_user_id),
    Case::parley("rest.users.lookup", "users are found by username (exact, any case; an email finds nobody), by ids (unknown ones left out) and by GET /users/{id}; GET /users/me is the caller", users_lookup),
];

/// Each body, POSTed to `path`, is refused with `400 bad_request`; a failure names it as
/// "`doing` with `what`".
fn refuse_bodies<W: Display>(
    ctx: &Ctx,
    path: &str,
    token: Option<&str>,
    doing: &str,
    bodies: impl IntoIterator<Item = (Value, W)>,
) -> Outcome {
    for (body, what) in bodies {
        let response = ctx.call("POST", path, token, Some(&body))?;
        expect_error(
            &response,
            400,
            "bad_request",
            &format!("{doing} with {what}"),
        )?;
    }
    Ok(())
}
