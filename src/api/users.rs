//! Accounts: registration and login (their password hashes run on the workers, see
//! [`Api::finish`]), and the checks on usernames and emails.

use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::body::json_body;
use super::{Api, Outcome, Pending};
use crate::chat::Chat;
use crate::error::ApiError;
use crate::hasher::Work;
use crate::http::{Request, Response};
use crate::store::UserRecord;

pub(super) const MAX_PASSWORD_BYTES: usize = 1024;

/// The body of a registration and of a login (which needs `username` or `email`).
#[derive(Deserialize)]
struct Credentials {
    username: Option<String>,
    email: Option<String>,
    password: Option<String>,
}

impl Api {
    /// Validates a registration and asks for the password hash; [`Api::finish`] stores the user.
    pub(super) fn register(&self, chat: &Chat, req: &Request) -> Result<Outcome, ApiError> {
        let body: Credentials = json_body(req)?;
        let username = body
            .username
            .ok_or_else(|| ApiError::bad_request("missing `username`"))?;
        let email = body
            .email
            .ok_or_else(|| ApiError::bad_request("missing `email`"))?;
        let password = body
            .password
            .ok_or_else(|| ApiError::bad_request("missing `password`"))?;
        validate_username(&username)?;
        let email = normalize_email(&email)?;
        if password.is_empty() || password.len() > MAX_PASSWORD_BYTES {
            return Err(ApiError::bad_request(format!(
                "`password` must be 1 to {MAX_PASSWORD_BYTES} bytes"
            )));
        }
        check_names_free(chat, &username, &email)?;
        Ok(Outcome::Hash(
            Pending::Register { username, email },
            Work::Hash { password },
        ))
    }

    pub(super) fn login(&self, chat: &Chat, req: &Request) -> Result<Outcome, ApiError> {
        let body: Credentials = json_body(req)?;
        let password = body
            .password
            .ok_or_else(|| ApiError::bad_request("missing `password`"))?;
        if password.len() > MAX_PASSWORD_BYTES {
            return Err(ApiError::bad_request(format!(
                "`password` must be at most {MAX_PASSWORD_BYTES} bytes"
            )));
        }
        let store = chat.store();
        let user = match (body.username.filter(|u| !u.is_empty()), body.email) {
            (Some(username), _) => store.user_id_by_username(&username)?,
            (None, Some(email)) => store.user_id_by_email(email.trim())?,
            (None, None) => return Err(ApiError::bad_request("missing `username` or `email`")),
        };
        let hash = match user {
            Some(id) => store.user(id)?.map(|u| u.password_hash),
            None => None,
        };
        let user = user.filter(|_| hash.is_some());
        let hash = hash.unwrap_or_else(|| self.dummy_hash.clone());
        Ok(Outcome::Hash(
            Pending::Login { user },
            Work::Verify { password, hash },
        ))
    }

    pub(super) fn store_user(
        &self,
        chat: &mut Chat,
        username: String,
        email: String,
        password_hash: String,
        wall: u64,
    ) -> Result<Response, ApiError> {
        // Checked again: another registration may have taken a name while this one was hashing.
        check_names_free(chat, &username, &email)?;
        let user = UserRecord {
            id: Uuid::new_v4(),
            username,
            email,
            password_hash,
            created_at: wall,
            token_generation: 0,
            suspended: false,
            deleted: false,
        };
        chat.store_mut().insert_user(&user);
        Ok(Response::json(201, &json!({ "id": user.id })))
    }
}

pub(super) fn validate_username(username: &str) -> Result<(), ApiError> {
    let ok = (1..=64).contains(&username.chars().count())
        && !username
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '@');
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "`username` must be 1 to 64 characters without spaces or `@`",
        ))
    }
}

/// Trims and lower-cases an email after checking it looks like `local@domain`.
pub(super) fn normalize_email(email: &str) -> Result<String, ApiError> {
    let email = email.trim();
    let valid = email.len() <= 254
        && matches!(email.split_once('@'), Some((local, domain))
            if !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !email.contains(|c: char| c.is_whitespace() || c.is_control()));
    if valid {
        Ok(email.to_lowercase())
    } else {
        Err(ApiError::bad_request("`email` must look like local@domain"))
    }
}

fn check_names_free(chat: &Chat, username: &str, email: &str) -> Result<(), ApiError> {
    let store = chat.store();
    if store.user_id_by_username(username)?.is_some() {
        return Err(ApiError::conflict("username is taken"));
    }
    if store.user_id_by_email(email)?.is_some() {
        return Err(ApiError::conflict("email is taken"));
    }
    Ok(())
}
