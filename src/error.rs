//! The one error value every handler returns: an HTTP status, a stable machine code and a text.
//! REST answers render it as `{"error","code"}`; the WebSocket renders it as a type-90 event.

use std::fmt;

/// A failure a client caused or should hear about. `status` is used on HTTP only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "bad_request", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(401, "unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "forbidden", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, "not_found", message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(409, "conflict", message)
    }

    pub fn not_member() -> Self {
        Self::new(403, "not_member", "you are not a member of this group")
    }

    pub fn too_large(status: u16, message: impl Into<String>) -> Self {
        Self::new(status, "too_large", message)
    }

    /// The store failed. Nothing was acknowledged; the client may retry.
    pub fn internal(err: impl fmt::Display) -> Self {
        log::error!("store error: {err}");
        Self::new(500, "internal", "internal error; nothing was stored")
    }
}

impl From<sled::Error> for ApiError {
    fn from(err: sled::Error) -> Self {
        ApiError::internal(err)
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.status, self.code, self.message)
    }
}
