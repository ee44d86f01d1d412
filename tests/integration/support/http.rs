//! The tests' HTTP/1.1 connection: the shared client's `Conn` (exact `Content-Length` framing,
//! what is read past an answer kept for the next one, for keep-alive and pipelining tests) with
//! every failure a panic, raw bytes on request, and answers that assert what they must be.

use std::fmt::Display;
use std::net::SocketAddr;
use std::time::Instant;

use parley_client::http::{self as client, Conn};
use serde_json::Value;

use super::DEADLINE;

/// One HTTP answer, with the tests' assertions. Its own type, with the fields public, so that
/// tests can take the body out of it.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        client::header(&self.headers, name)
    }

    /// The body parsed as JSON.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body of the {} answer is not JSON ({e}): {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// Asserts the status and returns the JSON body.
    #[track_caller]
    pub fn expect(&self, status: u16) -> Value {
        assert_eq!(
            self.status,
            status,
            "unexpected status; body: {}",
            String::from_utf8_lossy(&self.body)
        );
        self.json()
    }

    /// `expect_error`, naming `what` was sent (and showing the body) when the status differs.
    #[track_caller]
    pub fn expect_error_for(&self, what: impl Display, status: u16, code: &str) -> String {
        assert_eq!(
            self.status,
            status,
            "{what}: {}",
            String::from_utf8_lossy(&self.body)
        );
        self.expect_error(status, code)
    }

    /// Asserts an error answer: the status, and the body `{"error": non-empty text, "code": code}`.
    /// Returns the error text.
    #[track_caller]
    pub fn expect_error(&self, status: u16, code: &str) -> String {
        let body = self.expect(status);
        super::assert_keys(&body, &["error", "code"]);
        assert_eq!(body["code"], code, "error code in {body}");
        let text = body["error"]
            .as_str()
            .unwrap_or_else(|| panic!("error is not a string: {body}"));
        assert!(!text.is_empty(), "empty error text: {body}");
        if let Some(ct) = self.header("content-type") {
            assert!(
                ct.starts_with("application/json"),
                "content-type of an error: {ct}"
            );
        }
        text.to_string()
    }
}

/// One client connection.
pub struct Http {
    conn: Conn,
    host: String,
}

impl Http {
    pub fn connect(addr: SocketAddr) -> Http {
        let conn =
            Conn::connect(addr, DEADLINE).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        Http {
            conn,
            host: addr.to_string(),
        }
    }

    /// Builds the bytes of a request: request line, `Host` (unless given), the given headers,
    /// `Content-Length` when there is a body, blank line, body.
    pub fn build(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Vec<u8> {
        let mut all = Vec::with_capacity(headers.len() + 1);
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
            all.push(("Host", self.host.as_str()));
        }
        all.extend_from_slice(headers);
        client::request(method, path, &all, body)
    }

    /// Sends one request and reads its answer.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Response {
        let bytes = self.build(method, path, headers, body);
        self.send_raw(&bytes);
        self.read_response()
    }

    /// `method path` with a JSON body and optional bearer token.
    pub fn json(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &Value,
    ) -> Response {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(a) = &auth {
            headers.push(("Authorization", a.as_str()));
        }
        self.request(method, path, &headers, Some(body.to_string().as_bytes()))
    }

    pub fn get(&mut self, path: &str) -> Response {
        self.request("GET", path, &[], None)
    }

    /// Writes bytes as they are.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.conn
            .write(bytes)
            .unwrap_or_else(|e| panic!("write request: {e}"));
    }

    /// Writes bytes, ignoring failure (the server may close early, e.g. on a too-large body).
    pub fn send_raw_lossy(&mut self, bytes: &[u8]) {
        let _ = self.conn.write(bytes);
    }

    /// Reads one answer, within the deadline.
    #[track_caller]
    pub fn read_response(&mut self) -> Response {
        self.try_read_response()
            .unwrap_or_else(|e| panic!("reading an HTTP answer: {e}"))
    }

    /// `HEAD path`, and its answer: the head alone, whatever its `Content-Length` says.
    pub fn head(&mut self, path: &str) -> Response {
        let bytes = self.build("HEAD", path, &[], None);
        self.send_raw(&bytes);
        self.read_head_answer()
    }

    /// Reads the answer to a HEAD: status and headers, no body (RFC 9110 §9.3.2). A body the
    /// server wrongly sent stays buffered, where the next read or `leftover` finds it.
    #[track_caller]
    pub fn read_head_answer(&mut self) -> Response {
        let answer = self.conn.read_head_answer(Instant::now() + DEADLINE);
        http11(answer).unwrap_or_else(|e| panic!("reading the answer to a HEAD: {e}"))
    }

    /// Reads one answer; `Err` says why there is none (closed, timed out, garbled).
    pub fn try_read_response(&mut self) -> Result<Response, String> {
        http11(self.conn.read_response(Instant::now() + DEADLINE))
    }

    /// True when the server closes the connection (EOF) within the deadline, with nothing more sent.
    pub fn closed_by_peer(&mut self) -> bool {
        self.conn.closed_by_peer(Instant::now() + DEADLINE)
    }

    /// Bytes received but not yet consumed by an answer.
    pub fn leftover(&self) -> &[u8] {
        self.conn.leftover()
    }
}

/// parley answers in HTTP/1.1 only; any other version is a bad status line here.
fn http11(answer: Result<client::Response, String>) -> Result<Response, String> {
    match answer? {
        answer if answer.minor_version == 1 => Ok(Response {
            status: answer.status,
            headers: answer.headers,
            body: answer.body,
        }),
        answer => Err(format!(
            "bad status line: HTTP/1.{} {}",
            answer.minor_version, answer.status
        )),
    }
}
