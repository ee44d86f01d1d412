//! The kit's REST client: one request per connection (`Connection: close`) over the shared
//! client's `Conn`, every exchange written to the transcript.

use std::time::{Duration, Instant};

pub use parley_client::http::Response;
use parley_client::http::{self as client, Conn};
use serde_json::Value;

use crate::transcript::Transcript;

/// Where the server under test lives: `http://host[:port][/prefix]`.
#[derive(Debug, Clone)]
pub struct BaseUrl {
    /// `host:port`, as dialled and as sent in `Host`.
    pub authority: String,
    /// A path prefix without a trailing slash (usually empty).
    pub prefix: String,
}

impl BaseUrl {
    pub fn parse(url: &str) -> Result<BaseUrl, String> {
        let url = url.trim().trim_end_matches('/');
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| format!("`{url}`: expected http://host:port"))?;
        if !scheme.eq_ignore_ascii_case("http") {
            return Err(format!(
                "`{url}`: the kit speaks plain http:// only; point it at the server behind any TLS proxy"
            ));
        }
        let (host, prefix) = match rest.find('/') {
            Some(slash) => (&rest[..slash], rest[slash..].to_string()),
            None => (rest, String::new()),
        };
        if host.is_empty() {
            return Err(format!("`{url}`: missing host"));
        }
        let authority = if host.contains(':') && !host.ends_with(']') {
            host.to_string()
        } else {
            format!("{host}:80")
        };
        Ok(BaseUrl { authority, prefix })
    }

    /// The request target for a protocol path such as `/users`.
    pub fn target(&self, path: &str) -> String {
        format!("{}{path}", self.prefix)
    }

    pub fn http_url(&self) -> String {
        format!("http://{}{}", self.authority, self.prefix)
    }

    /// The WebSocket address of a messaging token on this server.
    pub fn ws_url(&self, token: &str) -> String {
        format!("ws://{}{}/{token}", self.authority, self.prefix)
    }
}

/// The client every case uses for REST calls.
#[derive(Clone)]
pub struct Http {
    pub base: BaseUrl,
    pub timeout: Duration,
    transcript: Transcript,
}

/// Longest answer the kit reads; anything a conforming server sends is far smaller.
const MAX_RESPONSE_BYTES: usize = 1 << 20;

impl Http {
    pub fn new(base: BaseUrl, timeout: Duration, transcript: Transcript) -> Http {
        Http {
            base,
            timeout,
            transcript,
        }
    }

    /// `method path` with an optional bearer token and JSON body.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Response, String> {
        let body_text = body.map(Value::to_string);
        let mut extra = Vec::new();
        if let Some(token) = token {
            extra.push(("authorization", format!("Bearer {token}")));
        }
        if body_text.is_some() {
            extra.push(("content-type", "application/json".to_string()));
        }
        self.send(
            method,
            path,
            &extra,
            body_text.as_deref().unwrap_or("").as_bytes(),
        )
    }

    /// A request with exactly these extra headers (plus `Host`, `Content-Length` when there is a
    /// body, and `Connection: close`).
    pub fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> Result<Response, String> {
        let mut all: Vec<(&str, &str)> = vec![
            ("host", self.base.authority.as_str()),
            ("connection", "close"),
        ];
        all.extend(headers.iter().map(|(name, value)| (*name, value.as_str())));
        let framed = !body.is_empty() || matches!(method, "POST" | "PUT");
        let bytes = client::request(
            method,
            &self.base.target(path),
            &all,
            framed.then_some(body),
        );
        let mut shown_headers = String::new();
        for (name, value) in headers {
            shown_headers.push_str(&format!(" [{name}: {}]", shorten(value, 60)));
        }
        self.transcript.note(format!(
            "-> {method} {path}{shown_headers} {}",
            shorten(&String::from_utf8_lossy(body), 300)
        ));
        self.exchange(&bytes)
    }

    /// Sends `bytes` as they are (for framing cases) and reads one answer.
    pub fn raw(&self, label: &str, bytes: &[u8]) -> Result<Response, String> {
        self.transcript.note(format!("-> raw request: {label}"));
        self.exchange(bytes)
    }

    fn exchange(&self, bytes: &[u8]) -> Result<Response, String> {
        let result = self.exchange_quietly(bytes);
        match &result {
            Ok(response) => self.transcript.note(format!(
                "<- {} {}",
                response.status,
                shorten(&response.body_text(), 300)
            )),
            Err(err) => self.transcript.note(format!("<- (no answer: {err})")),
        }
        result
    }

    fn exchange_quietly(&self, bytes: &[u8]) -> Result<Response, String> {
        let deadline = Instant::now() + self.timeout;
        let mut conn = Conn::connect(&self.base.authority, self.timeout)
            .map_err(|e| format!("connect to {}: {e}", self.base.authority))?
            .with_limit(MAX_RESPONSE_BYTES);
        // The server may answer (413, 431) and close before it has read everything; what it
        // answered is still readable, so a failed write is not yet a failure.
        let write_error = conn.write(bytes).err();
        conn.read_response(deadline)
            .map_err(|err| match write_error {
                Some(write_error) => format!("write failed ({write_error}), then {err}"),
                None => err,
            })
    }
}

/// The first `max` characters of `text`, marked when cut.
pub fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let cut: String = text.chars().take(max).collect();
        format!("{cut}... ({} bytes)", text.len())
    }
}
