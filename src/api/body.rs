//! Reading request bodies and their fields: JSON only, with the checks every handler shares.

use serde::de::DeserializeOwned;

use crate::error::{ApiError, ErrorCode};
use crate::http::Request;

/// The longest free-text field (device names, models).
pub(super) const MAX_FIELD_CHARS: usize = 256;

pub(super) fn json_body<T: DeserializeOwned>(req: &Request) -> Result<T, ApiError> {
    if let Some(content_type) = &req.content_type {
        let mime = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if mime != "application/json" && !mime.ends_with("+json") {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "the body must be JSON (content-type: application/json)",
            ));
        }
    }
    serde_json::from_slice(&req.body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

/// A number above 0 with no fractional part, however it is written (`3`, `3.0`, `3e0`).
pub(super) fn positive_whole_number(number: &serde_json::Number) -> Option<u64> {
    match number.as_u64() {
        Some(n) => Some(n),
        None => number
            .as_f64()
            // `u64::MAX as f64` rounds up to 2^64, so `<` keeps 2^64 itself out.
            .filter(|f| f.fract() == 0.0 && *f >= 1.0 && *f < u64::MAX as f64)
            .map(|f| f as u64),
    }
    .filter(|n| *n > 0)
}

pub(super) fn required_text(value: Option<String>, field: &str) -> Result<String, ApiError> {
    match value {
        Some(text) if !text.trim().is_empty() && text.chars().count() <= MAX_FIELD_CHARS => {
            Ok(text)
        }
        _ => Err(ApiError::bad_request(format!(
            "`{field}` must be a string of 1 to {MAX_FIELD_CHARS} characters"
        ))),
    }
}
