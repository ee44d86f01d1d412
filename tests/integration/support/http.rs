//! A minimal HTTP/1.1 client over a std `TcpStream`, written by hand so that tests control every
//! byte: it frames answers by `Content-Length` exactly (what is read past an answer stays buffered
//! for the next one, which is what keep-alive and pipelining tests need), and it can send raw bytes.

use std::fmt::Display;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Instant;

use serde_json::Value;

use super::DEADLINE;

/// One HTTP answer.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
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
    stream: TcpStream,
    host: String,
    buf: Vec<u8>,
}

impl Http {
    pub fn connect(addr: SocketAddr) -> Http {
        let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        stream.set_nodelay(true).unwrap();
        stream.set_write_timeout(Some(DEADLINE)).unwrap();
        Http {
            stream,
            host: addr.to_string(),
            buf: Vec::new(),
        }
    }

    /// Builds the bytes of a request: request line, `Host`, the given headers, `Content-Length`
    /// when there is a body, blank line, body.
    pub fn build(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Vec<u8> {
        let mut out = format!("{method} {path} HTTP/1.1\r\n");
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
            out.push_str(&format!("Host: {}\r\n", self.host));
        }
        for (k, v) in headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        if let Some(b) = body {
            out.push_str(&format!("Content-Length: {}\r\n", b.len()));
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        if let Some(b) = body {
            bytes.extend_from_slice(b);
        }
        bytes
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
        self.stream
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("write request: {e}"));
    }

    /// Writes bytes, ignoring failure (the server may close early, e.g. on a too-large body).
    pub fn send_raw_lossy(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes);
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
        self.try_read(true)
            .unwrap_or_else(|e| panic!("reading the answer to a HEAD: {e}"))
    }

    /// Reads one answer; `Err` says why there is none (closed, timed out, garbled).
    pub fn try_read_response(&mut self) -> Result<Response, String> {
        self.try_read(false)
    }

    fn try_read(&mut self, head_only: bool) -> Result<Response, String> {
        let deadline = Instant::now() + DEADLINE;
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i;
            }
            if self.fill(deadline)? == 0 {
                return Err(format!(
                    "connection closed before a complete head; got {:?}",
                    String::from_utf8_lossy(&self.buf)
                ));
            }
        };
        let head = String::from_utf8(self.buf[..head_end].to_vec())
            .map_err(|_| "head is not UTF-8".to_string())?;
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or("");
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or("");
        if version != "HTTP/1.1" {
            return Err(format!("bad status line {status_line:?}"));
        }
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line {status_line:?}"))?;
        let mut headers = Vec::new();
        for line in lines {
            let (k, v) = line
                .split_once(':')
                .ok_or_else(|| format!("bad header line {line:?}"))?;
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
        self.buf.drain(..head_end + 4);

        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _): &&(String, String)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        if let Some(te) = header("transfer-encoding") {
            return Err(format!(
                "answer uses Transfer-Encoding {te:?}; this client expects Content-Length"
            ));
        }
        let body = match header("content-length") {
            _ if head_only => Vec::new(),
            Some(cl) => {
                let len: usize = cl
                    .parse()
                    .map_err(|_| format!("bad Content-Length {cl:?}"))?;
                while self.buf.len() < len {
                    if self.fill(deadline)? == 0 {
                        return Err(format!("connection closed inside a body of {len} bytes"));
                    }
                }
                self.buf.drain(..len).collect()
            }
            None if status == 204 || status == 304 || (100..200).contains(&status) => Vec::new(),
            None => {
                // No framing: the body runs to the end of the connection.
                while self.fill(deadline)? > 0 {}
                std::mem::take(&mut self.buf)
            }
        };
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    /// True when the server closes the connection (EOF) within the deadline, with nothing more sent.
    pub fn closed_by_peer(&mut self) -> bool {
        let deadline = Instant::now() + DEADLINE;
        self.buf.is_empty() && matches!(self.fill(deadline), Ok(0))
    }

    /// Bytes received but not yet consumed by an answer.
    pub fn leftover(&self) -> &[u8] {
        &self.buf
    }

    fn fill(&mut self, deadline: Instant) -> Result<usize, String> {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err("timed out waiting for the server".into());
            }
            self.stream.set_read_timeout(Some(left)).unwrap();
            match self.stream.read(&mut chunk) {
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(n);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) =>
                {
                    continue
                }
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return Ok(0),
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
