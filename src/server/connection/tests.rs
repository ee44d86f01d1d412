//! The connection state machine driven without sockets: bytes in through a scripted source,
//! actions out, `pending` read as the socket would take it.

use std::collections::VecDeque;
use std::io::{self, Cursor, Read};
use std::rc::Rc;
use std::time::{Duration, Instant};

use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{Role, WebSocketContext};
use tungstenite::Message;
use uuid::Uuid;

use super::wire::{NoRead, Wire};
use super::*;

/// A source that hands out its chunks one read at a time (at most what was asked), then
/// `WouldBlock`, or the end of stream once `eof` is set.
#[derive(Default)]
struct Script {
    chunks: VecDeque<Vec<u8>>,
    eof: bool,
    reads: usize,
}

impl Script {
    fn of(bytes: &[u8]) -> Script {
        let mut script = Script::default();
        script.push(bytes);
        script
    }

    fn push(&mut self, bytes: &[u8]) {
        self.chunks.push_back(bytes.to_vec());
    }
}

impl Read for Script {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reads += 1;
        let Some(chunk) = self.chunks.front_mut() else {
            return if self.eof {
                Ok(0)
            } else {
                Err(io::ErrorKind::WouldBlock.into())
            };
        };
        let n = buf.len().min(chunk.len());
        buf[..n].copy_from_slice(&chunk[..n]);
        chunk.drain(..n);
        if chunk.is_empty() {
            self.chunks.pop_front();
        }
        Ok(n)
    }
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: example.com\r\n\r\n")
}

const UPGRADE: &str = "GET /ws HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\
    Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Sec-WebSocket-Version: 13\r\n\r\n";

/// A client's frame (masked, as RFC 6455 requires of clients), written by hand so that it can
/// carry what tungstenite's client would refuse to send (invalid UTF-8).
fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut frame = vec![0x80 | opcode];
    match payload.len() {
        len @ 0..=125 => frame.push(0x80 | len as u8),
        len @ 126..=65_535 => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

fn text(payload: &str) -> Vec<u8> {
    client_frame(0x1, payload.as_bytes())
}

/// A server's unmasked frame, as it appears in `pending`.
fn server_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![0x80 | opcode, payload.len() as u8];
    frame.extend_from_slice(payload);
    frame
}

fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(reason.as_bytes());
    payload
}

/// Every request the connection hands out this turn, and what stopped it.
fn serve(conn: &mut Connection, limits: &Limits, now: Instant) -> (Vec<String>, HttpNext) {
    let mut turn = Turn::default();
    let mut paths = Vec::new();
    loop {
        match conn.next_request(&mut turn, 0, limits, now) {
            HttpNext::Request(request) => paths.push(request.path),
            stop => return (paths, stop),
        }
    }
}

/// Takes everything pending, as a socket that accepts it all would.
fn written(conn: &mut Connection) -> Vec<u8> {
    let bytes = conn.pending().to_vec();
    conn.consumed(bytes.len());
    bytes
}

/// A connection upgraded for `user` (`None`: the echo endpoint) with `leftover` already read.
fn websocket(user: Option<Uuid>, leftover: &[u8], now: Instant) -> Connection {
    let limits = Limits::default();
    let mut conn = Connection::new(now);
    let mut bytes = UPGRADE.as_bytes().to_vec();
    bytes.extend_from_slice(leftover);
    conn.read_http(&mut Script::of(&bytes), now);
    // The loop stops at the upgrade: what follows is the WebSocket's.
    match conn.next_request(&mut Turn::default(), 0, &limits, now) {
        HttpNext::Request(request) => assert!(request.wants_upgrade),
        other => panic!("{other:?}"),
    }
    let had_leftover = conn.upgrade(user, &websocket_config(&limits), now);
    assert_eq!(had_leftover, !leftover.is_empty());
    conn
}

fn event(text: &str) -> Frame {
    Frame::Event(Rc::from(text))
}

#[test]
fn pipelined_and_partial_requests_are_served_in_order() {
    let (limits, now) = (Limits::default(), Instant::now());
    let mut conn = Connection::new(now);
    let third = get("/c");
    let (head, tail) = third.split_at(10);
    let bytes = format!("{}{}{head}", get("/a"), get("/b"));
    let read = conn.read_http(&mut Script::of(bytes.as_bytes()), now);
    assert_eq!(
        read,
        HttpRead::Read {
            eof: false,
            budget_left: true
        }
    );
    let (paths, stop) = serve(&mut conn, &limits, now);
    assert_eq!(paths, ["/a", "/b"]);
    assert!(matches!(stop, HttpNext::Stop), "the third is partial");
    assert_eq!(conn.after_http_read(&read, &limits), AfterHttpRead::Nothing);

    conn.read_http(&mut Script::of(tail.as_bytes()), now);
    let (paths, _) = serve(&mut conn, &limits, now);
    assert_eq!(paths, ["/c"]);
    assert_eq!(conn.life(), Life::Open);
}

#[test]
fn a_pipeline_yields_after_its_budget_and_goes_on_next_turn() {
    let (limits, now) = (Limits::default(), Instant::now());
    let mut conn = Connection::new(now);
    let bytes = get("/x").repeat(READ_BUDGET_MESSAGES + 3);
    conn.read_http(&mut Script::of(bytes.as_bytes()), now);
    let (paths, stop) = serve(&mut conn, &limits, now);
    assert_eq!(paths.len(), READ_BUDGET_MESSAGES);
    assert!(matches!(stop, HttpNext::Yield));
    let (paths, stop) = serve(&mut conn, &limits, now);
    assert_eq!(paths.len(), 3);
    assert!(matches!(stop, HttpNext::Stop));
}

#[test]
fn the_byte_budget_stops_a_read_and_asks_for_another() {
    let (limits, now) = (Limits::default(), Instant::now());
    let mut conn = Connection::new(now);
    let bytes = get("/x").repeat(READ_BUDGET_BYTES / get("/x").len() + 100);
    let mut source = Script::of(bytes.as_bytes());
    let read = conn.read_http(&mut source, now);
    assert_eq!(
        read,
        HttpRead::Read {
            eof: false,
            budget_left: false
        }
    );
    assert_eq!(
        conn.after_http_read(&read, &limits),
        AfterHttpRead::ReadAgain
    );
}

#[test]
fn answers_backing_up_stop_the_pipeline_until_written() {
    let (mut limits, now) = (Limits::default(), Instant::now());
    limits.max_outbox_bytes = 1000;
    let mut conn = Connection::new(now);
    let bytes = get("/x").repeat(3);
    conn.read_http(&mut Script::of(bytes.as_bytes()), now);
    let mut turn = Turn::default();
    assert!(matches!(
        conn.next_request(&mut turn, 0, &limits, now),
        HttpNext::Request(_)
    ));
    // The first answer, produced this turn, fills the cap: nothing in `out` yet, so the loop
    // is told to flush once the outbox is released.
    match conn.next_request(&mut turn, 1000, &limits, now) {
        HttpNext::BackedUp { flush } => assert!(flush),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        conn.deliver(Frame::Http(vec![b'a'; 1000]), &limits),
        Delivery::Queued
    );
    match conn.next_request(&mut Turn::default(), 0, &limits, now) {
        HttpNext::BackedUp { flush } => assert!(!flush, "already queued"),
        other => panic!("{other:?}"),
    }
    // Written: the requests held back go on.
    assert_eq!(written(&mut conn).len(), 1000);
    assert_eq!(conn.after_write(Ok(())), AfterWrite::ReadAgain);
    let (paths, _) = serve(&mut conn, &limits, now);
    assert_eq!(paths.len(), 2);
    assert_eq!(conn.after_write(Ok(())), AfterWrite::Nothing);
}

#[test]
fn a_malformed_request_is_answered_and_closes_after_the_answer() {
    let (limits, now) = (Limits::default(), Instant::now());
    let mut conn = Connection::new(now);
    let bytes = format!("BREW /pot HTTP/1.1\r\nHost: \0\r\n\r\n{}", get("/after"));
    conn.read_http(&mut Script::of(bytes.as_bytes()), now);
    let mut turn = Turn::default();
    match conn.next_request(&mut turn, 0, &limits, now) {
        HttpNext::Reject { answer, .. } => {
            let answer = String::from_utf8(answer).unwrap();
            assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
            assert!(answer.contains("connection: close"), "{answer}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(conn.life(), Life::CloseAfterWrite);
    assert!(matches!(
        conn.next_request(&mut turn, 0, &limits, now),
        HttpNext::Stop
    ));
    assert_eq!(
        conn.read_http(&mut Script::of(b"more"), now),
        HttpRead::Idle,
        "nothing more is read"
    );
    conn.deliver(Frame::Http(b"HTTP/1.1 400 ...".to_vec()), &limits);
    written(&mut conn);
    assert_eq!(conn.after_write(Ok(())), AfterWrite::Close);
}

#[test]
fn the_end_of_stream_closes_after_the_answers() {
    let (limits, now) = (Limits::default(), Instant::now());
    let mut conn = Connection::new(now);
    let mut source = Script::of(get("/last").as_bytes());
    source.eof = true;
    let read = conn.read_http(&mut source, now);
    assert_eq!(
        read,
        HttpRead::Read {
            eof: true,
            budget_left: true
        }
    );
    let (paths, _) = serve(&mut conn, &limits, now);
    assert_eq!(paths, ["/last"]);
    assert_eq!(conn.after_http_read(&read, &limits), AfterHttpRead::Flush);
    assert_eq!(conn.life(), Life::CloseAfterWrite);
    assert_eq!(
        conn.deliver(Frame::Http(b"answer".to_vec()), &limits),
        Delivery::Queued
    );
    assert_eq!(written(&mut conn), b"answer");
    assert_eq!(conn.after_write(Ok(())), AfterWrite::Close);
}

#[test]
fn a_request_waiting_for_its_hash_holds_the_pipeline_and_the_close() {
    let (limits, now) = (Limits::default(), Instant::now());
    let mut conn = Connection::new(now);
    let bytes = format!("{}{}", get("/login"), get("/next"));
    conn.read_http(&mut Script::of(bytes.as_bytes()), now);
    let mut turn = Turn::default();
    assert!(matches!(
        conn.next_request(&mut turn, 0, &limits, now),
        HttpNext::Request(_)
    ));
    conn.await_hash();
    assert!(matches!(conn.phase(), Phase::AwaitingHash(_)));
    assert!(matches!(
        conn.next_request(&mut turn, 0, &limits, now),
        HttpNext::Stop
    ));
    assert_eq!(conn.read_http(&mut Script::of(b"x"), now), HttpRead::Idle);
    // A half-close meanwhile: the answer still comes first.
    conn.close_after_write();
    assert_eq!(conn.after_write(Ok(())), AfterWrite::Nothing);
    assert!(!conn.hash_done(false, now), "not kept alive");
    assert!(matches!(conn.phase(), Phase::Http(_)));
    assert_eq!(conn.after_write(Ok(())), AfterWrite::Close);

    let mut conn = Connection::new(now);
    conn.read_http(&mut Script::of(bytes.as_bytes()), now);
    serve(&mut conn, &limits, now);
    let mut conn = Connection::new(now);
    conn.read_http(&mut Script::of(bytes.as_bytes()), now);
    let mut turn = Turn::default();
    conn.next_request(&mut turn, 0, &limits, now);
    conn.await_hash();
    assert!(conn.hash_done(true, now), "kept alive: read again");
    let (paths, _) = serve(&mut conn, &limits, now);
    assert_eq!(paths, ["/next"]);
}

#[test]
fn slowloris_and_idle_deadlines() {
    let (limits, start) = (Limits::default(), Instant::now());
    let mut conn = Connection::new(start);
    conn.read_http(&mut Script::of(b"GET / HTTP/1.1\r\n"), start);
    let almost = start + limits.request_timeout - Duration::from_millis(1);
    assert_eq!(conn.sweep(almost, &limits), Sweep::Nothing);
    let late = start + limits.request_timeout;
    assert_eq!(conn.sweep(late, &limits), Sweep::TimedOut);
    assert_eq!(conn.life(), Life::CloseAfterWrite);
    // The 408 must drain within the grace period.
    assert_eq!(conn.sweep(late + CLOSE_GRACE / 2, &limits), Sweep::Nothing);
    assert_eq!(conn.sweep(late + CLOSE_GRACE, &limits), Sweep::Expired);

    let mut idle = Connection::new(start);
    let quiet = start + limits.http_idle_timeout;
    assert_eq!(
        idle.sweep(quiet - Duration::from_millis(1), &limits),
        Sweep::Nothing
    );
    assert_eq!(idle.sweep(quiet, &limits), Sweep::Expired);
}

#[test]
fn an_upgrade_hands_the_bytes_after_it_to_the_websocket() {
    let (limits, now) = (Limits::default(), Instant::now());
    let user = Uuid::new_v4();
    let mut leftover = text("first");
    leftover.extend_from_slice(&text("second")[..4]);
    let mut conn = websocket(Some(user), &leftover, now);
    assert!(matches!(conn.phase(), Phase::WebSocket(_)));
    assert_eq!(conn.user(), Some(user));

    let mut source = Script::of(&text("second")[4..]);
    let mut turn = Turn::default();
    for expected in ["first", "second"] {
        match conn.next_message(&mut source, &mut turn, 0, &limits, now) {
            WsNext::Text(text, from) => assert_eq!((text.as_str(), from), (expected, user)),
            other => panic!("{other:?}"),
        }
    }
    assert!(matches!(
        conn.next_message(&mut source, &mut turn, 0, &limits, now),
        WsNext::Drained
    ));
}

#[test]
fn websocket_turns_have_a_budget_of_messages_and_of_output() {
    let (limits, now) = (Limits::default(), Instant::now());
    let mut conn = websocket(Some(Uuid::new_v4()), &[], now);
    let mut source = Script::of(&text("{}").repeat(READ_BUDGET_MESSAGES + 1));
    let mut turn = Turn::default();
    for _ in 0..READ_BUDGET_MESSAGES {
        let next = conn.next_message(&mut source, &mut turn, 0, &limits, now);
        assert!(matches!(next, WsNext::Text(..)), "{next:?}");
    }
    let next = conn.next_message(&mut source, &mut turn, 0, &limits, now);
    assert!(matches!(next, WsNext::Yield), "{next:?}");
    // Next turn: one more, unless the turn's output already reached half the cap.
    let half = limits.max_outbox_bytes / 2;
    let next = conn.next_message(&mut source, &mut Turn::default(), half, &limits, now);
    assert!(matches!(next, WsNext::Yield), "{next:?}");
    let next = conn.next_message(&mut source, &mut Turn::default(), 0, &limits, now);
    assert!(matches!(next, WsNext::Text(..)), "{next:?}");
}

#[test]
fn a_turn_ended_by_a_costly_message_yields_and_the_next_turn_goes_on() {
    let (limits, now) = (Limits::default(), Instant::now());
    let mut conn = websocket(Some(Uuid::new_v4()), &[], now);
    let mut source = Script::of(&text("{}").repeat(3));
    let mut turn = Turn::default();
    let next = conn.next_message(&mut source, &mut turn, 0, &limits, now);
    assert!(matches!(next, WsNext::Text(..)), "{next:?}");
    turn.end();
    let next = conn.next_message(&mut source, &mut turn, 0, &limits, now);
    assert!(matches!(next, WsNext::Yield), "{next:?}");
    let mut turn = Turn::default();
    for _ in 0..2 {
        let next = conn.next_message(&mut source, &mut turn, 0, &limits, now);
        assert!(matches!(next, WsNext::Text(..)), "{next:?}");
    }
}

#[test]
fn binary_for_a_user_is_refused_and_the_echo_endpoint_answers_itself() {
    let (limits, now) = (Limits::default(), Instant::now());
    let mut conn = websocket(Some(Uuid::new_v4()), &client_frame(0x2, b"bin"), now);
    let next = conn.next_message(&mut NoRead, &mut Turn::default(), 0, &limits, now);
    assert!(matches!(next, WsNext::Binary), "{next:?}");

    let mut echo = websocket(
        None,
        &[text("hello"), client_frame(0x2, b"raw")].concat(),
        now,
    );
    written(&mut echo);
    let next = echo.next_message(&mut NoRead, &mut Turn::default(), 0, &limits, now);
    assert!(matches!(next, WsNext::Drained), "{next:?}");
    echo.queue_control_frames(&limits).unwrap();
    let expected = [server_frame(0x1, b"hello"), server_frame(0x2, b"raw")].concat();
    assert_eq!(written(&mut echo), expected);
}

#[test]
fn pings_are_answered_and_the_close_handshake_completes() {
    let (limits, now) = (Limits::default(), Instant::now());
    let bytes = [
        client_frame(0x9, b"ping"),
        client_frame(0x8, &close_payload(1000, "bye")),
        text("ignored after the close"),
    ]
    .concat();
    let mut conn = websocket(Some(Uuid::new_v4()), &bytes, now);
    written(&mut conn);
    let next = conn.next_message(&mut NoRead, &mut Turn::default(), 0, &limits, now);
    assert!(matches!(next, WsNext::Closed), "{next:?}");
    assert_eq!(conn.life(), Life::CloseAfterWrite);
    assert_eq!(
        conn.deliver(event(r#"{"type":20}"#), &limits),
        Delivery::Dropped,
        "no event after the peer's close"
    );
    let queued = conn.queue_control_frames(&limits);
    let expected = [
        server_frame(0xA, b"ping"),
        server_frame(0x8, &close_payload(1000, "bye")),
    ]
    .concat();
    assert_eq!(written(&mut conn), expected);
    // tungstenite's `ConnectionClosed` after the reply: done once the reply is written.
    assert_eq!(conn.after_write(Ok(()).and(queued)), AfterWrite::Close);
}

#[test]
fn the_peer_vanishing_without_a_close_is_gone() {
    let (limits, now) = (Limits::default(), Instant::now());
    let mut conn = websocket(Some(Uuid::new_v4()), &[], now);
    let mut source = Script {
        eof: true,
        ..Script::default()
    };
    let next = conn.next_message(&mut source, &mut Turn::default(), 0, &limits, now);
    assert!(matches!(next, WsNext::Gone), "{next:?}");
}

#[test]
fn protocol_errors_close_after_the_tick_behind_the_held_frames() {
    let (limits, now) = (Limits::default(), Instant::now());
    let cases: [(Vec<u8>, CloseCode); 3] = [
        (client_frame(0x1, &[0xff, 0xfe]), CloseCode::Invalid),
        (
            client_frame(0x1, &vec![b'x'; limits.max_ws_message_bytes + 1]),
            CloseCode::Size,
        ),
        // Unmasked: clients must mask.
        (server_frame(0x1, b"x"), CloseCode::Protocol),
    ];
    for (bytes, expected) in cases {
        let mut conn = websocket(Some(Uuid::new_v4()), &[], now);
        written(&mut conn);
        let mut source = Script::of(&bytes);
        let next = conn.next_message(&mut source, &mut Turn::default(), 0, &limits, now);
        let WsNext::Fail(code, reason) = next else {
            panic!("{next:?}");
        };
        assert_eq!(code, expected);
        assert!(conn.close_after_tick(code, reason));
        assert!(
            !conn.close_after_tick(CloseCode::Away, "again"),
            "decided once"
        );
        assert_eq!(conn.life(), Life::CloseAfterTick(code, reason));
        let next = conn.next_message(
            &mut Script::of(&text("x")),
            &mut Turn::default(),
            0,
            &limits,
            now,
        );
        assert!(matches!(next, WsNext::Idle), "nothing more is read");

        // The ack of an earlier RPC waits for its commit, and the close waits for it.
        conn.hold(Some(1), event(r#"{"type":21}"#));
        assert_eq!(conn.tick_close(), TickClose::Wait);
        let ack = conn.release_next(|gate| gate == Some(1)).unwrap();
        assert_eq!(conn.deliver(ack, &limits), Delivery::Event(21));
        assert_eq!(conn.tick_close(), TickClose::Send(code, reason));
        conn.send_close(code, reason, &limits, now);
        assert_eq!(conn.life(), Life::CloseAfterWrite);
        assert_eq!(conn.tick_close(), TickClose::Moot);

        let mut expected_bytes = Vec::new();
        push_text_frame(&mut expected_bytes, r#"{"type":21}"#);
        expected_bytes.extend(server_frame(0x8, &close_payload(code.into(), reason)));
        assert_eq!(written(&mut conn), expected_bytes);
    }
}

#[test]
fn held_frames_pause_reading_and_their_release_resumes_it() {
    let (mut limits, now) = (Limits::default(), Instant::now());
    limits.max_outbox_bytes = 100;
    let mut conn = Connection::new(now);
    assert!(conn.may_read(&limits));
    conn.hold(Some(7), Frame::Http(vec![0; 30]));
    conn.hold(None, Frame::Http(vec![1; 20]));
    assert!(conn.holds_frames());
    assert!(!conn.may_read(&limits), "50 bytes held: half the cap");

    // Commit 7 not durable yet: nothing leaves, and the pause stays.
    assert!(conn
        .release_next(|gate| gate.is_none_or(|c| c <= 6))
        .is_none());
    assert_eq!(
        conn.after_release(&limits),
        Released {
            resume: false,
            close: false
        }
    );
    let durable = |gate: Option<u64>| gate.is_none_or(|c| c <= 7);
    let mut released = 0;
    while let Some(frame) = conn.release_next(durable) {
        conn.deliver(frame, &limits);
        released += 1;
    }
    assert_eq!(
        released, 2,
        "the frame behind follows the one it waited for"
    );
    assert_eq!(
        conn.after_release(&limits),
        Released {
            resume: true,
            close: false
        }
    );
    assert!(conn.may_read(&limits));
    assert_eq!(written(&mut conn), [vec![0; 30], vec![1; 20]].concat());
}

#[test]
fn close_after_write_waits_for_the_held_frames() {
    let (limits, now) = (Limits::default(), Instant::now());
    let mut conn = Connection::new(now);
    conn.hold(Some(1), Frame::Http(b"answer".to_vec()));
    conn.close_after_write();
    assert_eq!(
        conn.after_write(Ok(())),
        AfterWrite::Nothing,
        "held: not yet"
    );
    let frame = conn.release_next(|_| true).unwrap();
    assert_eq!(
        conn.after_release(&limits),
        Released {
            resume: false,
            close: true
        }
    );
    assert_eq!(conn.deliver(frame, &limits), Delivery::Queued);
    assert_eq!(written(&mut conn), b"answer");
    assert_eq!(conn.after_write(Ok(())), AfterWrite::Close);
}

#[test]
fn a_slow_consumer_is_told_to_reconnect() {
    let (mut limits, now) = (Limits::default(), Instant::now());
    limits.max_outbox_bytes = 64;
    let mut conn = websocket(Some(Uuid::new_v4()), &[], now);
    written(&mut conn);
    let text = r#"{"type":20,"body":"...."}"#;
    assert_eq!(conn.deliver(event(text), &limits), Delivery::Event(20));
    assert_eq!(conn.deliver(event(text), &limits), Delivery::Event(20));
    assert_eq!(conn.deliver(event(text), &limits), Delivery::SlowConsumer);
    // The close frame still fits behind the events that filled the buffer.
    conn.send_close(CloseCode::Policy, "too many events queued", &limits, now);
    assert!(written(&mut conn).ends_with(&server_frame(
        0x8,
        &close_payload(1008, "too many events queued")
    )));
}

#[test]
fn events_wait_for_the_upgrade_and_the_write_buffer_is_kept_only_when_busy() {
    let (limits, now) = (Limits::default(), Instant::now());
    let mut conn = Connection::new(now);
    assert_eq!(
        conn.deliver(event(r#"{"type":20}"#), &limits),
        Delivery::Dropped
    );
    let mut conn = websocket(Some(Uuid::new_v4()), &[], now);
    written(&mut conn);
    assert_eq!(conn.after_write(Ok(())), AfterWrite::Nothing);
    assert_eq!(conn.pending().len(), 0);
    let big = format!(r#"{{"type":20,"body":"{}"}}"#, "x".repeat(2000));
    conn.deliver(event(&big), &limits);
    written(&mut conn);
    conn.after_write(Ok(()));
    assert!(conn.out.capacity() >= 2000, "a tick's events: kept");
    assert_eq!(conn.sweep(now, &limits), Sweep::Nothing);
    assert_eq!(conn.out.capacity(), 0, "quiet until the sweep: given back");
}

#[test]
fn websockets_are_pinged_and_expire_without_an_answer() {
    let (limits, start) = (Limits::default(), Instant::now());
    let mut conn = websocket(Some(Uuid::new_v4()), &[], start);
    written(&mut conn);
    assert_eq!(conn.sweep(start, &limits), Sweep::Nothing);
    let due = start + limits.ping_interval;
    assert_eq!(conn.sweep(due, &limits), Sweep::Pinged);
    conn.queue_control_frames(&limits).unwrap();
    assert_eq!(written(&mut conn), server_frame(0x9, b""));
    assert_eq!(
        conn.sweep(due, &limits),
        Sweep::Nothing,
        "one ping per interval"
    );
    assert_eq!(
        conn.sweep(start + limits.pong_timeout, &limits),
        Sweep::Expired
    );
}

#[test]
fn the_lifecycle_moves_only_forward() {
    let now = Instant::now();
    let mut http = Connection::new(now);
    assert!(
        !http.close_after_tick(CloseCode::Away, "x"),
        "HTTP has no close frame"
    );
    http.close_after_write();
    assert_eq!(http.life(), Life::CloseAfterWrite);
    assert!(http.kill());
    assert!(!http.kill(), "reaped once");
    http.close_after_write();
    assert_eq!(http.life(), Life::Dead, "dead is final");
    assert!(!http.may_read(&Limits::default()));

    let mut ws = websocket(None, &[], now);
    assert!(ws.close_after_tick(CloseCode::Away, "bye"));
    ws.close_after_write();
    assert_eq!(ws.life(), Life::CloseAfterWrite);
    assert!(!ws.close_after_tick(CloseCode::Away, "bye"), "not back");
    assert_eq!(ws.sweep(now, &Limits::default()), Sweep::Nothing);
    assert!(ws.kill());
    assert_eq!(
        ws.sweep(now + CLOSE_GRACE, &Limits::default()),
        Sweep::Nothing
    );
}

/// The frame of every length class (7-bit, 16-bit, 64-bit) is byte for byte tungstenite's.
#[test]
fn text_frames_are_the_bytes_tungstenite_writes() {
    for len in [0, 1, 125, 126, 127, 65_535, 65_536, 70_000] {
        let text = "x".repeat(len);
        let mut ours = b"before".to_vec();
        push_text_frame(&mut ours, &text);
        let mut theirs = Cursor::new(b"before".to_vec());
        theirs.set_position(6);
        let mut server = WebSocketContext::new(Role::Server, None);
        server.write(&mut theirs, Message::text(text)).unwrap();
        server.flush(&mut theirs).unwrap();
        assert_eq!(ours, theirs.into_inner(), "length {len}");
    }
}

/// tungstenite's frames join the buffer when the loop flushes them in, never reaching the
/// socket on their own: a ping flushed in between two events leaves between them, whole. (When
/// tungstenite wrote the socket itself, a ping cut short by a full socket was finished after
/// the events queued behind it: inside its frame.)
#[test]
fn control_frames_queue_behind_events_in_the_order_made() {
    let (limits, start) = (Limits::default(), Instant::now());
    let mut conn = websocket(None, &[], start);
    written(&mut conn);
    conn.deliver(event("first"), &limits);
    assert_eq!(
        conn.sweep(start + limits.ping_interval, &limits),
        Sweep::Pinged
    );
    conn.queue_control_frames(&limits).unwrap();
    conn.deliver(event("second"), &limits);
    let mut expected = Vec::new();
    push_text_frame(&mut expected, "first");
    expected.extend(server_frame(0x9, b""));
    push_text_frame(&mut expected, "second");
    assert_eq!(written(&mut conn), expected);
}

/// What tungstenite adds stops at the cap and the room for a close frame.
#[test]
fn tungstenite_cannot_grow_the_buffer_past_its_cap() {
    use std::io::Write;
    let mut out = Vec::new();
    let mut nothing = NoRead;
    let mut wire = Wire::new(&mut nothing, &mut out, 100);
    assert_eq!(wire.write(&[0; 1000]).unwrap(), 1000);
    assert_eq!(wire.write(&[0; 124]).unwrap(), 124);
    assert!(wire.write(&[0; 1]).is_err(), "100 + 1024 bytes at most");
}

#[test]
fn a_slow_consumers_unwritten_frames_are_dropped_but_not_the_one_begun() {
    let (limits, now) = (Limits::default(), Instant::now());
    let mut conn = websocket(Some(Uuid::new_v4()), &[], now);
    written(&mut conn);
    let short = r#"{"type":20,"body":"a"}"#.to_string();
    let long = format!(r#"{{"type":20,"body":"{}"}}"#, "b".repeat(300));
    for text in [&short, &long, &short, &long] {
        assert_eq!(conn.deliver(event(text), &limits), Delivery::Event(20));
    }
    // The socket took the first frame and 10 bytes of the second, then a few more of it.
    let first = short.len() + 2;
    let second = long.len() + 4;
    conn.consumed(first + 10);
    conn.consumed(5);
    conn.drop_unwritten();
    assert_eq!(
        conn.pending().len(),
        second - 15,
        "the rest of the frame begun"
    );
    assert!(long.as_bytes().ends_with(conn.pending()));
    conn.send_close(CloseCode::Policy, "too many events queued", &limits, now);
    let mut expected = long.as_bytes()[long.len() - (second - 15)..].to_vec();
    expected.extend(server_frame(
        0x8,
        &close_payload(1008, "too many events queued"),
    ));
    assert_eq!(written(&mut conn), expected);
}

#[test]
fn frame_ends_are_found_only_over_our_own_frames() {
    let mut out = Vec::new();
    let sizes = [5usize, 200, 70_000];
    for size in sizes {
        push_text_frame(&mut out, &"x".repeat(size));
    }
    let ends = [7, 7 + 204, 7 + 204 + 70_010];
    assert_eq!(super::wire::frame_end_after(&out, 0, 0), Some(0));
    assert_eq!(super::wire::frame_end_after(&out, 0, 1), Some(ends[0]));
    assert_eq!(
        super::wire::frame_end_after(&out, 0, ends[0]),
        Some(ends[0])
    );
    assert_eq!(
        super::wire::frame_end_after(&out, 0, ends[0] + 1),
        Some(ends[1])
    );
    assert_eq!(
        super::wire::frame_end_after(&out, ends[1], ends[2] - 1),
        Some(ends[2])
    );
    // HTTP bytes in the way, or a header cut off: not known.
    assert_eq!(super::wire::frame_end_after(b"HTTP/1.1 101", 0, 3), None);
    assert_eq!(
        super::wire::frame_end_after(&out[..ends[1] + 1], 0, ends[1] + 1),
        None
    );
}
