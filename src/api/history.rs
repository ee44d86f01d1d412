//! `GET /groups/{id}/messages?before=SEQ&limit=N`: a page of a group's history, newest page
//! first, each message in its current state.

use uuid::Uuid;

use super::{query, Api, Outcome};
use crate::chat::Chat;
use crate::error::ApiError;
use crate::http::{Request, Response};

/// Messages in a page when `limit` is absent.
pub const HISTORY_DEFAULT_LIMIT: u64 = 50;
/// The most messages one page may hold: a page is built on the loop thread, so its size bounds
/// the time one request can take (docs/SECURITY.md).
pub const HISTORY_MAX_LIMIT: u64 = 200;
/// Seqs are below 2^53 (docs/PROTOCOL.md), so no `before` above it means anything more.
const MAX_BEFORE: u64 = 1 << 53;

impl Api {
    /// `GET /groups/{id}/messages`.
    pub(super) fn history(
        &self,
        chat: &Chat,
        group: Uuid,
        req: &Request,
    ) -> Result<Outcome, ApiError> {
        let user = self.authenticate(chat, req)?;
        let (before, limit) = page_query(&req.path)?;
        let page = chat.history(user, group, before, limit as usize)?;
        // The events are stored as JSON already: the body is put together around them.
        let mut body = Vec::with_capacity(
            32 + page
                .messages
                .iter()
                .map(|m| m.bytes.len() + 1)
                .sum::<usize>(),
        );
        body.extend_from_slice(br#"{"messages":["#);
        for (i, message) in page.messages.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(&message.bytes);
        }
        body.extend_from_slice(if page.more {
            br#"],"more":true}"#
        } else {
            br#"],"more":false}"#
        });
        Ok(Outcome::Respond(Response {
            status: 200,
            content_type: "application/json",
            body,
            headers: Vec::new(),
        }))
    }
}

/// `before` (`None` when absent) and `limit` of a history query; anything else in it is
/// ignored. Each must be a decimal integer in range, given at most once: otherwise a 400.
pub(super) fn page_query(path: &str) -> Result<(Option<u64>, u64), ApiError> {
    let mut before = None;
    let mut limit = None;
    for (name, value) in query::pairs(path)? {
        let (slot, min, max) = match name.as_str() {
            "before" => (&mut before, 1, MAX_BEFORE),
            "limit" => (&mut limit, 1, HISTORY_MAX_LIMIT),
            _ => continue,
        };
        if slot.is_some() {
            return Err(ApiError::bad_request(format!("`{name}` given twice")));
        }
        let number = value
            .parse::<u64>()
            .ok()
            .filter(|n| (min..=max).contains(n) && value.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| {
                ApiError::bad_request(format!("`{name}` must be an integer from {min} to {max}"))
            })?;
        *slot = Some(number);
    }
    Ok((before, limit.unwrap_or(HISTORY_DEFAULT_LIMIT)))
}
