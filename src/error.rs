//! The one error value every handler returns: an HTTP status, a stable machine code and a text.
//! REST answers render it as `{"error","code"}`; the WebSocket renders it as a type-90 event.
//! Also the typed failures that start or stop the server ([`ServerError`]).

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::store::StoreError;

/// The machine-readable `code` of an error answer, on HTTP and in the 90 event. Clients switch
/// on these strings, so [`ErrorCode::as_str`] is the protocol: never change one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    NotMember,
    UnknownMethod,
    TooLarge,
    UnsupportedMediaType,
    RateLimited,
    /// 403: a configured cap (members per group, groups per user) would be exceeded.
    LimitReached,
    /// 408: the request did not arrive whole in time.
    Timeout,
    /// 503: the server is shutting down or at its connection limit.
    Unavailable,
    Internal,
}

impl ErrorCode {
    /// The string on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::Conflict => "conflict",
            ErrorCode::NotMember => "not_member",
            ErrorCode::UnknownMethod => "unknown_method",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::LimitReached => "limit_reached",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
        }
    }

    /// The HTTP status an error of this code answers with, unless it names a more precise one
    /// ([`ApiError::with_status`]: 411, 431, a 503 for a full hash queue).
    pub const fn status(self) -> u16 {
        match self {
            ErrorCode::BadRequest | ErrorCode::UnknownMethod => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden | ErrorCode::NotMember | ErrorCode::LimitReached => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::Timeout => 408,
            ErrorCode::Conflict => 409,
            ErrorCode::TooLarge => 413,
            ErrorCode::UnsupportedMediaType => 415,
            ErrorCode::RateLimited => 429,
            ErrorCode::Internal => 500,
            ErrorCode::Unavailable => 503,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// A failure a client caused or should hear about. `status` is used on HTTP only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    /// An error with its code's usual status.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            status: code.status(),
            code,
            message: message.into(),
        }
    }

    /// The same error answered with a more precise HTTP status.
    pub fn with_status(self, status: u16) -> Self {
        ApiError { status, ..self }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthorized, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Conflict, message)
    }

    pub fn not_member() -> Self {
        Self::new(ErrorCode::NotMember, "you are not a member of this group")
    }

    pub fn too_large(status: u16, message: impl Into<String>) -> Self {
        Self::new(ErrorCode::TooLarge, message).with_status(status)
    }

    pub fn rate_limited(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::RateLimited, message)
    }

    pub fn limit_reached(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::LimitReached, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unavailable, message)
    }

    /// The store failed. Nothing was acknowledged; the client may retry.
    pub fn internal(err: impl fmt::Display) -> Self {
        log::error!("store error: {err}");
        Self::new(ErrorCode::Internal, "internal error; nothing was stored")
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        ApiError::internal(err)
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.status, self.code, self.message)
    }
}

/// Why the server could not start, or had to stop: a bad configuration, the system refusing
/// (a port, a file) or the store failing are told apart, and none is flattened to a string.
#[derive(Debug)]
pub enum ServerError {
    /// The JWT secret kept in the data directory is too short to be trusted.
    WeakSecret { path: PathBuf, min_bytes: usize },
    /// A system call failed: binding, polling, the data directory.
    Io(io::Error),
    /// The store failed `during` opening, loading, writing or flushing.
    Store {
        during: &'static str,
        source: StoreError,
    },
}

impl ServerError {
    /// A `map_err` adapter naming what the store was doing.
    pub fn store(during: &'static str) -> impl FnOnce(StoreError) -> ServerError {
        move |source| ServerError::Store { during, source }
    }
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerError::WeakSecret { path, min_bytes } => write!(
                f,
                "{} holds fewer than {min_bytes} bytes; refusing a weak JWT secret \
                 (delete the file to generate a new one; every token issued so far stops working)",
                path.display()
            ),
            ServerError::Io(err) => err.fmt(f),
            ServerError::Store { during, source } => write!(f, "{during}: {source}"),
        }
    }
}

impl std::error::Error for ServerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ServerError::WeakSecret { .. } => None,
            ServerError::Io(err) => Some(err),
            ServerError::Store { source, .. } => Some(source),
        }
    }
}

impl From<io::Error> for ServerError {
    fn from(err: io::Error) -> Self {
        ServerError::Io(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every code's wire string, byte for byte: clients switch on them.
    #[test]
    fn wire_strings_are_the_protocol() {
        let all = [
            (ErrorCode::BadRequest, "bad_request", 400),
            (ErrorCode::Unauthorized, "unauthorized", 401),
            (ErrorCode::Forbidden, "forbidden", 403),
            (ErrorCode::NotFound, "not_found", 404),
            (ErrorCode::MethodNotAllowed, "method_not_allowed", 405),
            (ErrorCode::Conflict, "conflict", 409),
            (ErrorCode::NotMember, "not_member", 403),
            (ErrorCode::UnknownMethod, "unknown_method", 400),
            (ErrorCode::TooLarge, "too_large", 413),
            (
                ErrorCode::UnsupportedMediaType,
                "unsupported_media_type",
                415,
            ),
            (ErrorCode::RateLimited, "rate_limited", 429),
            (ErrorCode::LimitReached, "limit_reached", 403),
            (ErrorCode::Timeout, "timeout", 408),
            (ErrorCode::Unavailable, "unavailable", 503),
            (ErrorCode::Internal, "internal", 500),
        ];
        for (code, wire, status) in all {
            assert_eq!((code.as_str(), code.status()), (wire, status), "{code:?}");
            assert_eq!(code.to_string(), wire);
            assert_eq!(serde_json::to_string(&code).unwrap(), format!("\"{wire}\""));
        }
    }

    #[test]
    fn helpers_take_their_codes_status_unless_told() {
        assert_eq!(ApiError::too_large(431, "head").status, 431);
        let busy = ApiError::rate_limited("queue full").with_status(503);
        assert_eq!((busy.status, busy.code), (503, ErrorCode::RateLimited));
        assert_eq!(ApiError::unavailable("closing").status, 503);
    }

    #[test]
    fn server_errors_say_what_failed() {
        let store = ServerError::store("opening the store")(StoreError::Unsupported("x".into()));
        assert!(matches!(
            store,
            ServerError::Store {
                during: "opening the store",
                ..
            }
        ));
        assert!(store.to_string().starts_with("opening the store: "));
        let io: ServerError = io::Error::from(io::ErrorKind::AddrInUse).into();
        assert!(matches!(io, ServerError::Io(_)));
    }
}
