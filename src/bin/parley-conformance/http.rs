//! A small blocking HTTP/1.1 client over `std::net::TcpStream`: one request per connection
//! (`Connection: close`), `Content-Length` framing, every exchange written to the transcript.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

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

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON, or `Value::Null` when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
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
        let mut head = format!(
            "{method} {} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n",
            self.base.target(path),
            self.base.authority
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if !body.is_empty() || matches!(method, "POST" | "PUT") {
            head.push_str(&format!("content-length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let mut shown_headers = String::new();
        for (name, value) in headers {
            shown_headers.push_str(&format!(" [{name}: {}]", shorten(value, 60)));
        }
        self.transcript.note(format!(
            "-> {method} {path}{shown_headers} {}",
            shorten(&String::from_utf8_lossy(body), 300)
        ));
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body);
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
        let mut stream = TcpStream::connect(&self.base.authority)
            .map_err(|e| format!("connect to {}: {e}", self.base.authority))?;
        stream.set_nodelay(true).ok();
        stream
            .set_write_timeout(Some(self.timeout))
            .map_err(|e| e.to_string())?;
        // The server may answer (413, 431) and close before it has read everything; what it
        // answered is still readable, so a failed write is not yet a failure.
        let write_error = stream.write_all(bytes).err();
        let mut received = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            if let Some(response) = parse_response(&received)? {
                return Ok(response);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "no complete answer within {:?} (got {} bytes)",
                    self.timeout,
                    received.len()
                ));
            }
            stream
                .set_read_timeout(Some(left))
                .map_err(|e| e.to_string())?;
            match stream.read(&mut chunk) {
                Ok(0) => {
                    return finish_at_eof(&received).ok_or_else(|| match &write_error {
                        Some(err) => format!("write failed ({err}) and no answer came"),
                        None => {
                            format!("connection closed after {} bytes of answer", received.len())
                        }
                    })
                }
                Ok(n) => received.extend_from_slice(&chunk[..n]),
                Err(err) if received.is_empty() && write_error.is_some() => {
                    return Err(format!(
                        "write failed ({}), then read failed ({err})",
                        write_error.as_ref().expect("checked")
                    ))
                }
                Err(err) => {
                    return finish_at_eof(&received).ok_or_else(|| format!("read: {err}"));
                }
            }
            if received.len() > MAX_RESPONSE_BYTES {
                return Err("answer larger than 1 MiB".to_string());
            }
        }
    }
}

/// A whole response at the front of `buf`, framed by `Content-Length`; `None` if more is needed
/// (or the length is unknown and only the end of the stream can tell).
fn parse_response(buf: &[u8]) -> Result<Option<Response>, String> {
    let Some(head_end) = find(buf, b"\r\n\r\n") else {
        return Ok(None);
    };
    let (status, headers) = parse_head(&buf[..head_end])?;
    let body_start = head_end + 4;
    let length = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| {
            v.parse::<usize>()
                .map_err(|_| format!("bad Content-Length `{v}`"))
        })
        .transpose()?;
    match length {
        Some(length) if buf.len() >= body_start + length => Ok(Some(Response {
            status,
            headers,
            body: buf[body_start..body_start + length].to_vec(),
        })),
        _ => Ok(None),
    }
}

/// At the end of the stream: a response whose head is complete, the body being what arrived.
fn finish_at_eof(buf: &[u8]) -> Option<Response> {
    let head_end = find(buf, b"\r\n\r\n")?;
    let (status, headers) = parse_head(&buf[..head_end]).ok()?;
    Some(Response {
        status,
        headers,
        body: buf[head_end + 4..].to_vec(),
    })
}

fn parse_head(head: &[u8]) -> Result<(u16, Vec<(String, String)>), String> {
    let head = String::from_utf8_lossy(head);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        return Err(format!("not an HTTP/1.x status line: `{status_line}`"));
    }
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("bad status line `{status_line}`"))?;
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    Ok((status, headers))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
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
