//! Blocking HTTP/1.1 over a std `TcpStream`: a request is built from the headers exactly as the
//! caller lists them, and an answer is framed by `Content-Length` exactly. What is read past an
//! answer stays buffered for the next one (keep-alive and pipelining); every read waits until a
//! deadline, never longer.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use serde_json::Value;

/// One HTTP answer.
#[derive(Debug, Clone)]
pub struct Response {
    /// The minor version of the status line (`HTTP/1.x`).
    pub minor_version: u8,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// The body as JSON, or `Value::Null` when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// The first of `headers` named `name` (case-insensitive).
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The bytes of a request: the request line, `headers` in the order given, `Content-Length` when
/// there is a body, the blank line, the body.
pub fn request(
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Vec<u8> {
    let mut head = format!("{method} {target} HTTP/1.1\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = body {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body.unwrap_or_default());
    bytes
}

/// One client connection and the bytes received on it but not yet taken by an answer.
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Most bytes buffered while waiting for one answer (a guard against endless answers).
    limit: usize,
}

impl Conn {
    /// Connects with `TCP_NODELAY` (requests are written whole) and `write_timeout` on writes.
    pub fn connect(addr: impl ToSocketAddrs, write_timeout: Duration) -> io::Result<Conn> {
        let stream = TcpStream::connect(addr)?;
        stream.set_write_timeout(Some(write_timeout))?;
        Conn::new(stream)
    }

    /// Wraps a connected stream, setting `TCP_NODELAY`.
    pub fn new(stream: TcpStream) -> io::Result<Conn> {
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: Vec::new(),
            limit: usize::MAX,
        })
    }

    /// Refuses an answer once more than `bytes` of it are buffered.
    pub fn with_limit(mut self, bytes: usize) -> Conn {
        self.limit = bytes;
        self
    }

    /// Writes bytes as they are.
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Reads one answer before `deadline`; `Err` says why there is none (closed, timed out,
    /// garbled, or framed by something other than `Content-Length`).
    pub fn read_response(&mut self, deadline: Instant) -> Result<Response, String> {
        self.read(deadline, false)
    }

    /// Reads the answer to a HEAD: status and headers, no body (RFC 9110 §9.3.2). A body the
    /// server wrongly sent stays buffered, where the next read or `leftover` finds it.
    pub fn read_head_answer(&mut self, deadline: Instant) -> Result<Response, String> {
        self.read(deadline, true)
    }

    fn read(&mut self, deadline: Instant, head_only: bool) -> Result<Response, String> {
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
        let mut response = parse_head(&self.buf[..head_end])?;
        self.buf.drain(..head_end + 4);
        let status = response.status;
        if let Some(te) = response.header("transfer-encoding") {
            return Err(format!(
                "answer uses Transfer-Encoding {te:?}; this client expects Content-Length"
            ));
        }
        let length = response.header("content-length").map(|cl| {
            cl.parse::<usize>()
                .map_err(|_| format!("bad Content-Length {cl:?}"))
        });
        response.body = match length {
            _ if head_only => Vec::new(),
            Some(len) => {
                let len = len?;
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
        Ok(response)
    }

    /// True when the server closes the connection (end of stream) before `deadline`, with
    /// nothing more sent.
    pub fn closed_by_peer(&mut self, deadline: Instant) -> bool {
        self.buf.is_empty() && matches!(self.fill(deadline), Ok(0))
    }

    /// Bytes received but not yet taken by an answer.
    pub fn leftover(&self) -> &[u8] {
        &self.buf
    }

    /// Reads what the socket has before `deadline`: the byte count, 0 at the end of the stream
    /// (a reset counts as one: the server may reset after its last answer).
    fn fill(&mut self, deadline: Instant) -> Result<usize, String> {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "timed out waiting for the server (got {} bytes)",
                    self.buf.len()
                ));
            }
            self.stream
                .set_read_timeout(Some(left))
                .map_err(|e| e.to_string())?;
            match self.stream.read(&mut chunk) {
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    if self.buf.len() > self.limit {
                        return Err(format!("answer larger than {} bytes", self.limit));
                    }
                    return Ok(n);
                }
                Err(e) if is_retry(&e) => continue,
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return Ok(0),
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    }
}

/// A read that timed out or was interrupted: try again until the deadline.
pub fn is_retry(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
    )
}

/// An answer's head (without the blank line), as a response whose body is still empty.
fn parse_head(head: &[u8]) -> Result<Response, String> {
    let head = std::str::from_utf8(head).map_err(|_| "head is not UTF-8".to_string())?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let minor_version = parts
        .next()
        .and_then(|version| version.strip_prefix("HTTP/1."))
        .and_then(|minor| minor.parse::<u8>().ok());
    let status = parts.next().and_then(|s| s.parse::<u16>().ok());
    let (Some(minor_version), Some(status)) = (minor_version, status) else {
        return Err(format!("bad status line {status_line:?}"));
    };
    let headers = lines
        .map(|line| {
            line.split_once(':')
                .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
                .ok_or_else(|| format!("bad header line {line:?}"))
        })
        .collect::<Result<_, _>>()?;
    Ok(Response {
        minor_version,
        status,
        headers,
        body: Vec::new(),
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
