//! The stand-in's HTTP/1.1 side: one request per connection, bodies by `Content-Length` or
//! chunked, JSON in and out, and the WebSocket upgrade of `GET /{messaging token}`.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tungstenite::handshake::derive_accept_key;

use crate::state::{lock, refuse, Refusal, Shared, Writer};
use crate::ws;

/// Longest request head and body the stand-in reads.
const MAX_HEAD: usize = 32 * 1024;
const MAX_BODY: usize = 1024 * 1024;

/// A request as read off the wire.
struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn has_token(&self, name: &str, token: &str) -> bool {
        self.header(name).is_some_and(|v| {
            v.split(',')
                .any(|part| part.trim().eq_ignore_ascii_case(token))
        })
    }
}

/// Bytes read from the connection and not yet used.
struct Input {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Input {
    /// Reads until `buf` holds `needle`; its end offset.
    fn until(&mut self, needle: &[u8], max: usize) -> Result<usize, Refusal> {
        loop {
            if let Some(at) = self.buf.windows(needle.len()).position(|w| w == needle) {
                return Ok(at + needle.len());
            }
            if self.buf.len() > max {
                return refuse(431, "too_large", "the request head is too large");
            }
            self.more()?;
        }
    }

    fn at_least(&mut self, n: usize) -> Result<(), Refusal> {
        while self.buf.len() < n {
            self.more()?;
        }
        Ok(())
    }

    fn more(&mut self) -> Result<(), Refusal> {
        let mut chunk = [0u8; 8192];
        match self.stream.read(&mut chunk) {
            Ok(0) | Err(_) => refuse(400, "bad_request", "the request ended early"),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
        }
    }

    /// The first `n` bytes, taken out.
    fn take(&mut self, n: usize) -> Vec<u8> {
        self.buf.drain(..n).collect()
    }
}

pub fn serve(stream: TcpStream, state: &Shared) {
    // A client that stalls mid-request frees its thread.
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let Ok(writer) = stream.try_clone() else {
        return;
    };
    let mut input = Input {
        stream,
        buf: Vec::new(),
    };
    match read_request(&mut input) {
        Ok(request) if is_messaging(&request) => upgrade(input, writer, &request, state),
        Ok(request) => {
            let (status, body, allow) = answer(&request, state, &writer);
            respond(writer, status, &body, allow);
        }
        Err(refusal) => respond(writer, refusal.status, &error_body(&refusal), None),
    }
}

fn read_request(input: &mut Input) -> Result<Request, Refusal> {
    let head_end = input.until(b"\r\n\r\n", MAX_HEAD)?;
    let head = input.take(head_end);
    let mut headers = [httparse::EMPTY_HEADER; 100];
    let mut parsed = httparse::Request::new(&mut headers);
    match parsed.parse(&head) {
        Ok(httparse::Status::Complete(_)) => {}
        Err(httparse::Error::TooManyHeaders) => {
            return refuse(431, "too_large", "too many headers")
        }
        _ => return refuse(400, "bad_request", "not an HTTP/1.1 request"),
    }
    let mut request = Request {
        method: parsed.method.unwrap_or("").to_string(),
        path: parsed.path.unwrap_or("/").to_string(),
        headers: parsed
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_string(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect(),
        body: Vec::new(),
    };
    request.body = if request.has_token("transfer-encoding", "chunked") {
        read_chunked(input)?
    } else {
        let length = match request.header("content-length") {
            None => 0,
            Some(text) => text
                .trim()
                .parse::<usize>()
                .map_or_else(|_| refuse(400, "bad_request", "bad Content-Length"), Ok)?,
        };
        if length > MAX_BODY {
            return refuse(413, "too_large", "the body is too large");
        }
        input.at_least(length)?;
        input.take(length)
    };
    Ok(request)
}

/// A chunked body: hex sizes, each chunk, a zero-size chunk, then trailers up to a blank line.
fn read_chunked(input: &mut Input) -> Result<Vec<u8>, Refusal> {
    let mut body = Vec::new();
    loop {
        let line_end = input.until(b"\r\n", MAX_HEAD)?;
        let line = String::from_utf8_lossy(&input.take(line_end)).into_owned();
        let size_text = line.trim().split(';').next().unwrap_or("");
        let size = usize::from_str_radix(size_text, 16)
            .map_or_else(|_| refuse(400, "bad_request", "bad chunk size"), Ok)?;
        if body.len() + size > MAX_BODY {
            return refuse(413, "too_large", "the body is too large");
        }
        if size == 0 {
            loop {
                let end = input.until(b"\r\n", MAX_HEAD)?;
                if input.take(end) == b"\r\n" {
                    return Ok(body);
                }
            }
        }
        input.at_least(size + 2)?;
        let chunk = input.take(size + 2);
        body.extend_from_slice(&chunk[..size]);
    }
}

/// A GET of one path segment that is not a REST path: a messaging token.
fn is_messaging(request: &Request) -> bool {
    request.method == "GET"
        && matches!(segments(&request.path).as_slice(),
            [one] if !one.is_empty() && !matches!(*one, "users" | "login" | "sessions" | "groups"))
}

fn segments(path: &str) -> Vec<&str> {
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    path.trim_start_matches('/').split('/').collect()
}

/// The status, JSON body and `Allow` of a REST request.
fn answer(
    request: &Request,
    state: &Shared,
    stream: &TcpStream,
) -> (u16, Value, Option<&'static str>) {
    let route = segments(&request.path);
    let (allowed, handler): (&'static str, Handler) = match route.as_slice() {
        ["users"] => ("POST", Handler::Register),
        ["login"] => ("POST", Handler::Login),
        ["sessions"] => ("POST", Handler::Session),
        ["groups"] => ("POST", Handler::Group),
        ["groups", id] => ("PUT", Handler::Rename(id.to_string())),
        ["groups", id, action @ ("join" | "left")] => (
            "PUT",
            Handler::Membership(id.to_string(), *action == "join"),
        ),
        // A messaging token: its GET is the WebSocket route.
        [one] if !one.is_empty() => return not_allowed("GET"),
        _ => {
            return (
                404,
                json!({"error": "nothing here", "code": "not_found"}),
                None,
            )
        }
    };
    if request.method != allowed {
        return not_allowed(allowed);
    }
    let outcome = json_body(request).and_then(|body| {
        let mut state = lock(state);
        let status = if matches!(
            handler,
            Handler::Login | Handler::Membership(..) | Handler::Rename(_)
        ) {
            200
        } else {
            201
        };
        let answer = match handler {
            Handler::Register => state.register(&body),
            Handler::Login => state.login(&body),
            Handler::Session => {
                let user = state.authorize(request.header("authorization"))?;
                let host = request
                    .header("host")
                    .map(str::to_string)
                    .or_else(|| stream.local_addr().ok().map(|a| a.to_string()))
                    .unwrap_or_default();
                state.open_session(&user, &body, &host)
            }
            Handler::Group => {
                let user = state.authorize(request.header("authorization"))?;
                state.create_group(&user, &body)
            }
            Handler::Membership(id, join) => {
                let user = state.authorize(request.header("authorization"))?;
                state.membership(&user, &id, join, &body)
            }
            Handler::Rename(id) => {
                let user = state.authorize(request.header("authorization"))?;
                state.rename(&user, &id, &body)
            }
        };
        answer.map(|value| (status, value))
    });
    match outcome {
        Ok((status, value)) => (status, value, None),
        Err(refusal) => (refusal.status, error_body(&refusal), None),
    }
}

enum Handler {
    Register,
    Login,
    Session,
    Group,
    Membership(String, bool),
    Rename(String),
}

fn not_allowed(allowed: &'static str) -> (u16, Value, Option<&'static str>) {
    let body = json!({"error": format!("use {allowed} here"), "code": "method_not_allowed"});
    (405, body, Some(allowed))
}

/// The body as JSON: `null` when there is none.
fn json_body(request: &Request) -> Result<Value, Refusal> {
    if request.body.is_empty() {
        return Ok(Value::Null);
    }
    let is_json = request
        .header("content-type")
        .is_some_and(|t| t.to_ascii_lowercase().contains("json"));
    if !is_json {
        return refuse(415, "unsupported_media_type", "send JSON");
    }
    serde_json::from_slice(&request.body)
        .map_or_else(|e| refuse(400, "bad_request", format!("not JSON: {e}")), Ok)
}

fn error_body(refusal: &Refusal) -> Value {
    json!({"error": refusal.text, "code": refusal.code})
}

fn respond(mut stream: TcpStream, status: u16, body: &Value, allow: Option<&str>) {
    let body = body.to_string();
    let allow = allow.map_or(String::new(), |a| format!("allow: {a}\r\n"));
    let head = format!(
        "HTTP/1.1 {status} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{allow}connection: close\r\n\r\n",
        reason(status),
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body.as_bytes());
}

fn reason(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        _ => "Other",
    }
}

/// `GET /{token}`: 401 for an unknown token when upgrading, 404 otherwise; 426 for a known token
/// without an upgrade; else the WebSocket.
fn upgrade(input: Input, writer: TcpStream, request: &Request, state: &Shared) {
    let token = segments(&request.path)[0];
    let user = lock(state).token_user(token);
    let upgrading =
        request.has_token("upgrade", "websocket") && request.has_token("connection", "upgrade");
    let key = request.header("sec-websocket-key");
    let (status, code, text) = match (&user, upgrading, key) {
        (None, true, _) => (401, "unauthorized", "unknown messaging token"),
        (None, false, _) => (404, "not_found", "nothing here"),
        (Some(_), false, _) => (426, "bad_request", "connect with a WebSocket"),
        (Some(_), true, None) => (400, "bad_request", "no Sec-WebSocket-Key"),
        (Some(user), true, Some(key)) if request.header("sec-websocket-version") == Some("13") => {
            let accept = derive_accept_key(key.trim().as_bytes());
            let head = format!(
                "HTTP/1.1 101 {}\r\nupgrade: websocket\r\nconnection: upgrade\r\nsec-websocket-accept: {accept}\r\n\r\n",
                reason(101)
            );
            let _ = writer.set_write_timeout(Some(Duration::from_secs(5)));
            let writer: Writer = Arc::new(Mutex::new(writer));
            // Registered under the lock that every delivery takes, in the same step as the 101:
            // no event can fall between the upgrade and the connection's first read.
            let conn = {
                let mut state = lock(state);
                if write_head(&writer, &head).is_err() {
                    return;
                }
                state.attach(user.clone(), Arc::clone(&writer))
            };
            ws::run(input.stream, input.buf, writer, conn, state);
            return;
        }
        (Some(_), true, Some(_)) => (400, "bad_request", "WebSocket version 13 only"),
    };
    respond(writer, status, &json!({"error": text, "code": code}), None);
}

fn write_head(writer: &Writer, head: &str) -> io::Result<()> {
    let mut stream = writer.lock().unwrap_or_else(|e| e.into_inner());
    stream.write_all(head.as_bytes())
}
