//! Every size and count limit as a table over raw TCP. Each row sends exact bytes and asserts the
//! exact answer (status, `code`, `Connection: close` or not, the connection closed or not); then a
//! normal request must succeed, on the same connection when it stays open, else on a new one.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tungstenite::protocol::frame::coding::{CloseCode, Data};

use super::metric_on;
use super::process::{Launch, Process};
use crate::support::*;

/// One bad request and its exact answer.
struct Row {
    name: &'static str,
    bytes: Vec<u8>,
    status: u16,
    /// `None`: a success (the row proves a limit is inclusive).
    code: Option<&'static str>,
    closes: bool,
}

/// A request head of exactly `len` bytes (request line, `Host`, one padding header, blank line).
fn head_of_len(len: usize) -> Vec<u8> {
    let start = "GET /healthz HTTP/1.1\r\nHost: t\r\nX-Pad: ";
    let end = "\r\n\r\n";
    let pad = len - start.len() - end.len();
    format!("{start}{}{end}", "a".repeat(pad)).into_bytes()
}

/// A request with `count` headers in all (`Host` included).
fn with_headers(count: usize) -> Vec<u8> {
    let mut out = "GET /healthz HTTP/1.1\r\nHost: t\r\n".to_string();
    for i in 1..count {
        out.push_str(&format!("X-H{i}: v\r\n"));
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// `POST /login` for an unknown user with a JSON body of exactly `len` bytes: a body that is
/// accepted answers 401 `unauthorized` (after a password check), so the size is all a row tests.
fn login_body_of_len(len: usize) -> Vec<u8> {
    let start = r#"{"username":"nobody","password":"x","pad":""#;
    let end = r#""}"#;
    let body = format!("{start}{}{end}", "a".repeat(len - start.len() - end.len()));
    assert_eq!(body.len(), len);
    let mut out = format!(
        "POST /login HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {len}\r\n\r\n"
    )
    .into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

fn rows() -> Vec<Row> {
    let row = |name, bytes: &[u8], status, code, closes| Row {
        name,
        bytes: bytes.to_vec(),
        status,
        code,
        closes,
    };
    vec![
        Row { name: "head of exactly 8 KiB", bytes: head_of_len(8192), status: 200, code: None, closes: false },
        Row { name: "head over 8 KiB", bytes: head_of_len(8193), status: 431, code: Some("too_large"), closes: true },
        Row { name: "64 headers", bytes: with_headers(64), status: 200, code: None, closes: false },
        Row { name: "65 headers", bytes: with_headers(65), status: 431, code: Some("too_large"), closes: true },
        Row {
            name: "body of exactly 64 KiB",
            bytes: login_body_of_len(64 * 1024),
            status: 401,
            code: Some("unauthorized"),
            closes: false,
        },
        // Only the head is sent: the answer must not wait for a body it will refuse.
        row(
            "body over 64 KiB (head only)",
            b"POST /login HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 65537\r\n\r\n",
            413,
            Some("too_large"),
            true,
        ),
        row(
            "text/plain body",
            b"POST /login HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\n{}",
            415,
            Some("unsupported_media_type"),
            false,
        ),
        row(
            "form body",
            b"POST /users HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 3\r\n\r\na=b",
            415,
            Some("unsupported_media_type"),
            false,
        ),
        row(
            "Content-Length and Transfer-Encoding",
            b"POST /login HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n{}",
            400,
            Some("bad_request"),
            true,
        ),
        row(
            "Transfer-Encoding then Content-Length",
            b"POST /login HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n{}",
            400,
            Some("bad_request"),
            true,
        ),
        row(
            "two different Content-Lengths",
            b"POST /login HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}x",
            400,
            Some("bad_request"),
            true,
        ),
        row("Content-Length list", b"POST /login HTTP/1.1\r\nHost: t\r\nContent-Length: 2, 2\r\n\r\n{}", 400, Some("bad_request"), true),
        row("signed Content-Length", b"POST /login HTTP/1.1\r\nHost: t\r\nContent-Length: +2\r\n\r\n{}", 400, Some("bad_request"), true),
        row("hex Content-Length", b"POST /login HTTP/1.1\r\nHost: t\r\nContent-Length: 0x2\r\n\r\n{}", 400, Some("bad_request"), true),
        row("empty Content-Length", b"POST /login HTTP/1.1\r\nHost: t\r\nContent-Length: \r\n\r\n", 400, Some("bad_request"), true),
        row(
            "Content-Length over usize",
            b"POST /login HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            400,
            Some("bad_request"),
            true,
        ),
        row(
            "chunked body",
            b"POST /login HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
            411,
            Some("bad_request"),
            true,
        ),
        row(
            "Transfer-Encoding: identity",
            b"POST /login HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: identity\r\n\r\n",
            411,
            Some("bad_request"),
            true,
        ),
        row("garbage request line", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400, Some("bad_request"), true),
        row("header without a colon", b"GET /healthz HTTP/1.1\r\nHost t\r\n\r\n", 400, Some("bad_request"), true),
        row("space before the colon", b"GET /healthz HTTP/1.1\r\nHost : t\r\n\r\n", 400, Some("bad_request"), true),
        row("NUL in a header value", b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-A: a\x00b\r\n\r\n", 400, Some("bad_request"), true),
    ]
}

/// Sends one row on a fresh connection and checks the whole answer and what follows it.
#[track_caller]
fn check_row(addr: SocketAddr, row: &Row) {
    let mut http = Http::connect(addr);
    http.send_raw_lossy(&row.bytes);
    let answer = http
        .try_read_response()
        .unwrap_or_else(|e| panic!("{}: no answer: {e}", row.name));
    assert_eq!(
        answer.status,
        row.status,
        "{}: status; body {}",
        row.name,
        String::from_utf8_lossy(&answer.body)
    );
    match row.code {
        Some(code) => {
            let text = answer.expect_error(row.status, code);
            assert!(!text.is_empty(), "{}", row.name);
        }
        None => assert_eq!(answer.json(), json!({"status": "ok"}), "{}", row.name),
    }
    let close_header = answer.header("connection").map(str::to_ascii_lowercase);
    if row.closes {
        assert_eq!(
            close_header.as_deref(),
            Some("close"),
            "{}: the answer says it closes",
            row.name
        );
        assert!(
            http.closed_by_peer(),
            "{}: the server closes after answering",
            row.name
        );
        assert!(
            http.leftover().is_empty(),
            "{}: nothing after the answer",
            row.name
        );
        let mut next = Http::connect(addr);
        assert_eq!(
            next.get("/healthz").expect(200),
            json!({"status": "ok"}),
            "{}: next connection",
            row.name
        );
    } else {
        assert_eq!(
            close_header, None,
            "{}: the connection stays open",
            row.name
        );
        assert_eq!(
            http.get("/healthz").expect(200),
            json!({"status": "ok"}),
            "{}: same connection",
            row.name
        );
    }
}

#[test]
fn every_http_limit_has_its_exact_answer_and_the_server_serves_on() {
    let server = Server::start_with_args(&["--auth-rate", "0"]);
    for row in rows() {
        check_row(server.addr, &row);
    }
    // The tables's refusals are counted, and a normal registration still works.
    server.user("after_the_table");
}

/// A text message of exactly `len` bytes that sends `data` to `group` (so it decodes as an RPC).
fn send_rpc_of_len(group: &str, len: usize) -> String {
    let empty =
        json!({"method": 40, "id": "big", "body": {"group_id": group, "data": ""}}).to_string();
    json!({"method": 40, "id": "big", "body": {"group_id": group, "data": "d".repeat(len - empty.len())}}).to_string()
}

#[test]
fn websocket_message_frame_and_data_limits() {
    let server = Server::start();
    let alice = server.user("alice");
    let url = server.messaging_url(&alice.token);
    let group = server.create_group(&alice, "limits", &[]);
    let mut ws = Ws::connect(&url, "alice");

    // `data` of exactly 16 KiB is stored; one byte more is a type-90 `too_large`, and the
    // connection stays open.
    let ack = ws.send_and_ack(&group, &"d".repeat(16 * 1024));
    assert_ack(&ack, None);
    ws.send_message_id(&group, &"d".repeat(16 * 1024 + 1), "over");
    ws.expect_error("too_large", Some(40), Some("over"));

    // A message of exactly 64 KiB is read (and refused for its `data`), not cut off.
    let exact = send_rpc_of_len(&group, 64 * 1024);
    assert_eq!(exact.len(), 64 * 1024);
    ws.send_text(&exact);
    ws.expect_error("too_large", Some(40), Some("big"));
    ws.assert_quiet();

    // One byte more: close 1009.
    ws.send_text_lossy(&send_rpc_of_len(&group, 64 * 1024 + 1));
    assert_eq!(
        ws.expect_close(),
        Some(CloseCode::Size),
        "message over 64 KiB"
    );

    // A single frame over 64 KiB (not final, so no message is complete yet): close 1009.
    let mut ws = Ws::connect(&url, "alice frame");
    ws.send_frame(&vec![b' '; 64 * 1024 + 1], Data::Text, false);
    assert_eq!(
        ws.expect_close(),
        Some(CloseCode::Size),
        "frame over 64 KiB"
    );

    // Frames within the limit whose message is over it: close 1009.
    let mut ws = Ws::connect(&url, "alice fragments");
    ws.send_frame(&vec![b' '; 40 * 1024], Data::Text, false);
    ws.send_frame(&vec![b' '; 40 * 1024], Data::Continue, true);
    assert_eq!(
        ws.expect_close(),
        Some(CloseCode::Size),
        "fragmented message over 64 KiB"
    );

    // The store kept exactly the one message that was accepted.
    let mut ws = Ws::connect(&url, "alice again");
    let history = ws.sync_all(None);
    assert_eq!(types(&history), vec![70, 20, 21], "{}", show(&history));
    assert_eq!(
        history[1]["body"]["data"].as_str().map(str::len),
        Some(16 * 1024)
    );
}

/// Opens `n` connections and makes sure the server has accepted each (one answered request).
fn hold(addr: SocketAddr, n: usize) -> Vec<Http> {
    (0..n)
        .map(|_| {
            let mut http = Http::connect(addr);
            http.get("/healthz").expect(200);
            http
        })
        .collect()
}

/// A new connection's first answer, whatever the server says at accept.
fn first_answer(addr: SocketAddr) -> Response {
    let mut http = Http::connect(addr);
    http.send_raw_lossy(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    http.read_response()
}

/// After a refusal at accept: once one held connection leaves, a new one is served again, the
/// other held connections still are, and the drop was counted with `reason`.
#[track_caller]
fn served_after_one_leaves(addr: SocketAddr, mut held: Vec<Http>, reason: &str) {
    held.pop();
    served_again(addr);
    for http in &mut held {
        assert_eq!(
            http.get("/healthz").status,
            200,
            "held connections are untouched"
        );
    }
    let dropped = format!("parley_connections_dropped_total{{reason=\"{reason}\"}}");
    assert!(metric_on(&mut held[0], &dropped) >= 1);
}

/// Retries a new connection until it is served (a closed connection is released by the server
/// asynchronously), within the test deadline.
#[track_caller]
fn served_again(addr: SocketAddr) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let answer = first_answer(addr);
        if answer.status == 200 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "still refused: {}",
            answer.status
        );
    }
}

#[test]
fn total_connection_cap_answers_503_at_accept() {
    let server = Server::start_with_args(&["--max-connections", "4"]);
    let held = hold(server.addr, 4);
    let refused = first_answer(server.addr);
    refused.expect_error(503, "unavailable");
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert_eq!(refused.header("connection"), Some("close"));
    served_after_one_leaves(server.addr, held, "capacity");
}

#[test]
fn per_ip_connection_cap_answers_429_at_accept() {
    let server = Server::start_with_args(&["--max-connections-per-ip", "3"]);
    let held = hold(server.addr, 3);
    let refused = first_answer(server.addr);
    refused.expect_error(429, "rate_limited");
    assert_eq!(refused.header("retry-after"), Some("1"));
    served_after_one_leaves(server.addr, held, "per_ip");
}

/// Out of file descriptors, `accept` fails; the server retries at a bounded rate (a busy loop
/// would log thousands of failures a second), and serves the waiting client once descriptors
/// are free again.
#[test]
fn accept_failing_with_emfile_neither_spins_nor_wedges() {
    let dir = tempfile::tempdir().unwrap();
    let launch = Launch {
        max_open_files: Some(48),
        ..Launch::default()
    };
    let (process, addr) = Process::start(dir.path(), &launch);
    const FAILED: &str = "accept failed";
    // Each connection the server accepts costs it one descriptor; at some point it has none.
    let mut held = Vec::new();
    while process.count_lines(FAILED) == 0 {
        assert!(
            held.len() < 64,
            "accept never failed with a limit of 48 descriptors"
        );
        let mut http = Http::connect(addr);
        http.send_raw(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
        held.push(http);
        process.wait_for_lines(FAILED, 1, Duration::from_millis(200));
    }
    // The kernel completed this client's handshake; it waits in the backlog.
    let mut waiting = held.pop().unwrap();
    let before = process.count_lines(FAILED);
    let start = Instant::now();
    assert!(
        process.wait_for_lines(FAILED, before + 5, DEADLINE),
        "accept is retried"
    );
    let retrying = start.elapsed();
    assert!(
        retrying >= Duration::from_millis(100),
        "5 accept retries took only {retrying:?}: a busy loop"
    );
    held.clear();
    assert_eq!(waiting.read_response().expect(200), json!({"status": "ok"}));
    assert_eq!(Http::connect(addr).get("/healthz").status, 200);
}
