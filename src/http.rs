//! HTTP/1.1 bytes to request values and response values to bytes (httparse underneath). No I/O:
//! the loop feeds a connection's buffer in and writes what comes out.

use crate::config::Limits;
use crate::error::{ApiError, ErrorCode};

/// One parsed request with the headers the server acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Whether the connection stays open after the answer.
    pub keep_alive: bool,
    pub authorization: Option<String>,
    pub host: Option<String>,
    pub content_type: Option<String>,
    pub origin: Option<String>,
    /// `X-Forwarded-For`, every such header joined with commas in order, and
    /// `X-Forwarded-Proto`: believed only from a trusted proxy ([`crate::proxies`]).
    pub forwarded_for: Option<String>,
    pub forwarded_proto: Option<String>,
    /// Set when the request asks for a WebSocket upgrade (`Upgrade: websocket`).
    pub websocket_key: Option<String>,
    pub websocket_version: Option<String>,
    pub wants_upgrade: bool,
    pub body: Vec<u8>,
}

/// A request that cannot be served; the connection closes after the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FramingError(pub ApiError);

/// What [`parse`] found at the front of the buffer.
#[derive(Debug)]
pub enum Parsed {
    /// Not a whole request yet.
    Partial,
    /// A request and how many bytes of the buffer it used.
    Complete(Box<Request>, usize),
}

/// Parses one request from the front of `buf`, enforcing the head and body limits.
pub fn parse(buf: &[u8], limits: &Limits) -> Result<Parsed, FramingError> {
    let mut headers = vec![httparse::EMPTY_HEADER; limits.max_headers];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if buf.len() > limits.max_head_bytes {
                return Err(head_too_large(limits));
            }
            return Ok(Parsed::Partial);
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(FramingError(ApiError::too_large(
                431,
                format!("more than {} request headers", limits.max_headers),
            )))
        }
        Err(err) => {
            return Err(FramingError(ApiError::bad_request(format!(
                "malformed HTTP request: {err}"
            ))))
        }
    };
    if head_len > limits.max_head_bytes {
        return Err(head_too_large(limits));
    }

    let version = req.version.unwrap_or(1);
    let mut request = Request {
        method: req.method.unwrap_or("").to_string(),
        path: req.path.unwrap_or("/").to_string(),
        keep_alive: version == 1,
        authorization: None,
        host: None,
        content_type: None,
        origin: None,
        forwarded_for: None,
        forwarded_proto: None,
        websocket_key: None,
        websocket_version: None,
        wants_upgrade: false,
        body: Vec::new(),
    };
    let mut content_length: Option<usize> = None;
    let mut chunked = false;
    for header in req.headers.iter() {
        let name = header.name;
        let value = || String::from_utf8_lossy(header.value).trim().to_string();
        if name.eq_ignore_ascii_case("content-length") {
            let parsed = std::str::from_utf8(header.value)
                .ok()
                .map(str::trim)
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<usize>().ok())
                .ok_or_else(|| FramingError(ApiError::bad_request("invalid Content-Length")))?;
            if content_length.is_some_and(|previous| previous != parsed) {
                return Err(FramingError(ApiError::bad_request(
                    "conflicting Content-Length headers",
                )));
            }
            content_length = Some(parsed);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = true;
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value().split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    request.keep_alive = false;
                } else if token.eq_ignore_ascii_case("keep-alive") {
                    request.keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case("authorization") {
            request.authorization = Some(value());
        } else if name.eq_ignore_ascii_case("host") {
            // RFC 9112 §3.2: a second Host is a 400, not a choice between them.
            if request.host.is_some() {
                return Err(FramingError(ApiError::bad_request(
                    "more than one Host header",
                )));
            }
            let host = trim_ows(header.value);
            if !valid_host(host) {
                return Err(FramingError(ApiError::bad_request(
                    "invalid Host header; expected host[:port]",
                )));
            }
            request.host = Some(String::from_utf8_lossy(host).into_owned());
        } else if name.eq_ignore_ascii_case("content-type") {
            request.content_type = Some(value());
        } else if name.eq_ignore_ascii_case("origin") {
            request.origin = Some(value());
        } else if name.eq_ignore_ascii_case("x-forwarded-for") {
            let value = value();
            match &mut request.forwarded_for {
                Some(list) => {
                    list.push(',');
                    list.push_str(&value);
                }
                None => request.forwarded_for = Some(value),
            }
        } else if name.eq_ignore_ascii_case("x-forwarded-proto") {
            request.forwarded_proto.get_or_insert_with(value);
        } else if name.eq_ignore_ascii_case("upgrade") {
            request.wants_upgrade |= value()
                .split(',')
                .any(|p| p.trim().eq_ignore_ascii_case("websocket"));
        } else if name.eq_ignore_ascii_case("sec-websocket-key") {
            request.websocket_key = Some(value());
        } else if name.eq_ignore_ascii_case("sec-websocket-version") {
            request.websocket_version = Some(value());
        }
    }

    if chunked {
        // Smuggling guard: never guess which framing the sender meant.
        let message = if content_length.is_some() {
            "Content-Length together with Transfer-Encoding"
        } else {
            "chunked request bodies are not accepted; send Content-Length"
        };
        let status = if content_length.is_some() { 400 } else { 411 };
        return Err(FramingError(
            ApiError::bad_request(message).with_status(status),
        ));
    }
    let body_len = content_length.unwrap_or(0);
    if body_len > limits.max_body_bytes {
        return Err(FramingError(ApiError::too_large(
            413,
            format!("request body over {} bytes", limits.max_body_bytes),
        )));
    }
    let total = head_len + body_len;
    if buf.len() < total {
        return Ok(Parsed::Partial);
    }
    request.body = buf[head_len..total].to_vec();
    Ok(Parsed::Complete(Box::new(request), total))
}

/// The method named at the front of `buf` (after the empty lines [`parse`] skips), or `""`: what
/// a request that failed to parse asked for, since a HEAD's answer has no body even then.
pub fn leading_method(buf: &[u8]) -> &str {
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    let line = &buf[start..];
    let end = line.iter().position(|&b| b == b' ').unwrap_or(0);
    std::str::from_utf8(&line[..end]).unwrap_or("")
}

/// A header value without the optional whitespace around it (RFC 9110 §5.5).
fn trim_ows(value: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value.iter().position(|b| !is_ows(b)).unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| !is_ows(b))
        .map_or(start, |i| i + 1);
    &value[start..end]
}

/// Whether `value` is a Host: `uri-host [":" port]` (RFC 9110 §7.2), where the host is an IPv6
/// literal in brackets or a non-empty RFC 3986 reg-name (an IPv4 address is one), and the port
/// is digits. Empty is refused: an http URI's authority cannot be empty (RFC 9110 §4.2.1).
pub fn valid_host(value: &[u8]) -> bool {
    let (host, port) = if let Some(rest) = value.strip_prefix(b"[") {
        let Some(close) = rest.iter().position(|&b| b == b']') else {
            return false;
        };
        let literal = std::str::from_utf8(&rest[..close]).ok();
        if literal
            .and_then(|l| l.parse::<std::net::Ipv6Addr>().ok())
            .is_none()
        {
            return false;
        }
        (None, &rest[close + 1..])
    } else {
        let colon = value.iter().position(|&b| b == b':').unwrap_or(value.len());
        (Some(&value[..colon]), &value[colon..])
    };
    let port_ok = match port.split_first() {
        None => true,
        Some((b':', digits)) => digits.iter().all(u8::is_ascii_digit),
        Some(_) => false,
    };
    port_ok && host.is_none_or(valid_reg_name)
}

/// RFC 3986 §3.2.2 `reg-name`, non-empty: unreserved, sub-delims and `%XX`.
fn valid_reg_name(name: &[u8]) -> bool {
    let mut i = 0;
    while i < name.len() {
        match name[i] {
            b'%' => {
                let hex = name.get(i + 1..i + 3);
                if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                    return false;
                }
                i += 3;
            }
            b if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=".contains(&b) => i += 1,
            _ => return false,
        }
    }
    !name.is_empty()
}

fn head_too_large(limits: &Limits) -> FramingError {
    FramingError(ApiError::too_large(
        431,
        format!("request head over {} bytes", limits.max_head_bytes),
    ))
}

/// An answer ready to encode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
}

impl Response {
    pub fn json(status: u16, body: &impl serde::Serialize) -> Response {
        Response {
            status,
            content_type: "application/json",
            body: serde_json::to_vec(body).expect("responses serialize"),
            headers: Vec::new(),
        }
    }

    /// Prometheus text exposition.
    pub fn metrics(body: String) -> Response {
        Response {
            status: 200,
            content_type: "text/plain; version=0.0.4",
            body: body.into_bytes(),
            headers: Vec::new(),
        }
    }

    /// `204 No Content`: encoded with neither a body nor its headers (RFC 9110 §8.6).
    pub fn no_content() -> Response {
        Response {
            status: 204,
            content_type: "",
            body: Vec::new(),
            headers: Vec::new(),
        }
    }

    pub fn html(body: &str) -> Response {
        Response {
            status: 200,
            content_type: "text/html; charset=utf-8",
            body: body.as_bytes().to_vec(),
            headers: Vec::new(),
        }
    }

    pub fn error(err: &ApiError) -> Response {
        #[derive(serde::Serialize)]
        struct Body<'a> {
            error: &'a str,
            code: ErrorCode,
        }
        Response::json(
            err.status,
            &Body {
                error: &err.message,
                code: err.code,
            },
        )
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }

    /// The bytes on the wire. `keep_alive` false adds `Connection: close`.
    pub fn encode(&self, keep_alive: bool) -> Vec<u8> {
        self.encode_for("GET", keep_alive)
    }

    /// The bytes answering a request of `method`: to a HEAD, the same head, `Content-Length` of
    /// the body included, and no body (RFC 9110 §9.3.2).
    pub fn encode_for(&self, method: &str, keep_alive: bool) -> Vec<u8> {
        use std::io::Write;
        let with_body = method != "HEAD";
        let mut out = Vec::with_capacity(160 + if with_body { self.body.len() } else { 0 });
        let _ = write!(out, "HTTP/1.1 {} {}\r\n", self.status, reason(self.status));
        if self.status != 204 {
            let _ = write!(
                out,
                "content-type: {}\r\ncontent-length: {}\r\n",
                self.content_type,
                self.body.len()
            );
        }
        for (name, value) in &self.headers {
            let _ = write!(out, "{name}: {value}\r\n");
        }
        if !keep_alive {
            out.extend_from_slice(b"connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
        if with_body {
            out.extend_from_slice(&self.body);
        }
        out
    }
}

/// The `101 Switching Protocols` answer to a WebSocket upgrade.
pub fn upgrade_response(websocket_key: &str) -> Vec<u8> {
    let accept = tungstenite::handshake::derive_accept_key(websocket_key.as_bytes());
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: {accept}\r\n\r\n"
    )
    .into_bytes()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(bytes: &[u8]) -> Result<Parsed, FramingError> {
        parse(bytes, &Limits::default())
    }

    #[test]
    fn parses_a_request_with_a_body_and_reports_its_length() {
        let raw = b"POST /users HTTP/1.1\r\nHost: a:1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}GET";
        match parse_all(raw).unwrap() {
            Parsed::Complete(req, used) => {
                assert_eq!(req.method, "POST");
                assert_eq!(req.path, "/users");
                assert_eq!(req.body, b"{}");
                assert_eq!(req.host.as_deref(), Some("a:1"));
                assert!(req.keep_alive);
                assert_eq!(used, raw.len() - 3);
            }
            Parsed::Partial => panic!("complete request reported partial"),
        }
    }

    #[test]
    fn waits_for_the_whole_body() {
        let raw = b"POST /users HTTP/1.1\r\nContent-Length: 10\r\n\r\n{}";
        assert!(matches!(parse_all(raw).unwrap(), Parsed::Partial));
    }

    #[test]
    fn refuses_ambiguous_framing() {
        let both = b"POST / HTTP/1.1\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(parse_all(both).unwrap_err().0.status, 400);
        let chunked = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(parse_all(chunked).unwrap_err().0.status, 411);
        let twice = b"POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n";
        assert_eq!(parse_all(twice).unwrap_err().0.status, 400);
        let signed = b"POST / HTTP/1.1\r\nContent-Length: +2\r\n\r\n";
        assert_eq!(parse_all(signed).unwrap_err().0.status, 400);
    }

    #[test]
    fn enforces_head_and_body_limits() {
        let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
        big.extend(std::iter::repeat_n(b'a', 9000));
        assert_eq!(parse_all(&big).unwrap_err().0.status, 431);
        let body = b"POST / HTTP/1.1\r\nContent-Length: 70000\r\n\r\n";
        assert_eq!(parse_all(body).unwrap_err().0.status, 413);
    }

    #[test]
    fn http_1_0_and_connection_close_do_not_keep_alive() {
        for raw in [
            &b"GET / HTTP/1.0\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n",
        ] {
            match parse_all(raw).unwrap() {
                Parsed::Complete(req, _) => assert!(!req.keep_alive),
                Parsed::Partial => panic!("partial"),
            }
        }
    }

    #[test]
    fn one_valid_host_is_required_of_a_request_that_has_one() {
        let with_hosts = |hosts: &[&[u8]]| {
            let mut raw = b"GET /healthz HTTP/1.1\r\n".to_vec();
            for host in hosts {
                raw.extend_from_slice(b"Host:");
                raw.extend_from_slice(host);
                raw.extend_from_slice(b"\r\n");
            }
            raw.extend_from_slice(b"\r\n");
            parse_all(&raw)
        };
        for good in [
            &b" chat.example.com"[..],
            b" 127.0.0.1:3000 ",
            b"\tlocalhost:",
            b"[::1]:8080",
            b"[2001:db8::7]",
            b"xn--bcher-kva.example",
            b"a%20b",
            b"a_b~c!$&'()*+,;=",
        ] {
            match with_hosts(&[good]) {
                Ok(Parsed::Complete(req, _)) => {
                    let text = String::from_utf8_lossy(good);
                    assert_eq!(req.host.as_deref(), Some(text.trim()));
                }
                other => panic!("Host {:?}: {other:?}", String::from_utf8_lossy(good)),
            }
        }
        for bad in [
            &b""[..],
            b"   ",
            b" a b",
            b"a/b",
            b"user@host",
            b"a\"b",
            b"<script>",
            b"a\x01b",
            b"caf\xc3\xa9",
            b":80",
            b"host:8x",
            b"host:80:81",
            b"a%2",
            b"a%zz",
            b"[::1",
            b"[not-v6]",
            b"[::1]x",
            b"::1",
        ] {
            let err = with_hosts(&[bad]).unwrap_err().0;
            assert_eq!(
                (err.status, err.code),
                (400, ErrorCode::BadRequest),
                "Host {:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let err = with_hosts(&[b"a", b"a"]).unwrap_err().0;
        assert_eq!(
            (err.status, err.message.as_str()),
            (400, "more than one Host header")
        );
        match with_hosts(&[]).unwrap() {
            Parsed::Complete(req, _) => assert_eq!(req.host, None),
            Parsed::Partial => panic!("partial"),
        }
    }

    #[test]
    fn a_head_answer_has_the_get_head_and_no_body() {
        let response = Response::json(200, &serde_json::json!({"status": "ok"}));
        let get = response.encode(true);
        let head = response.encode_for("HEAD", true);
        assert_eq!(head, &get[..get.len() - response.body.len()]);
        assert!(String::from_utf8(head)
            .unwrap()
            .contains("content-length: 15\r\n"));
        assert_eq!(leading_method(b"\r\nHEAD / HTTP/1.1\r\nHost: a b"), "HEAD");
        assert_eq!(leading_method(b"GARBAGE"), "");
    }

    #[test]
    fn encodes_a_response() {
        let bytes = Response::json(201, &serde_json::json!({"id": "x"}))
            .with_header("allow", "POST")
            .encode(false);
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            "HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: 10\r\nallow: POST\r\nconnection: close\r\n\r\n{\"id\":\"x\"}"
        );
    }
}
