//! Slow and hostile clients: slowloris (a head trickled forever), slow bodies, a reader that
//! never reads its answers, and a WebSocket member that never reads its events. Each is cut off
//! by a limit while everyone else is served: the checks are on what others receive, never on a
//! latency number.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use tungstenite::protocol::frame::coding::CloseCode;

use super::metric;
use super::process::{Launch, Process};
use crate::support::*;

/// The request deadline these tests give the server (`--request-timeout-secs`; 10 s by default),
/// short so that the tests are.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
const REQUEST_TIMEOUT_FLAG: [&str; 2] = ["--request-timeout-secs", "2"];
/// How often a slow client sends its next byte or header: several times within the deadline,
/// so the deadline is for the whole request, not for a silence.
const DRIP: Duration = Duration::from_millis(300);

/// Sends `first`, then one `drip` every `DRIP` until the server answers; returns everything
/// the server sent until it closed, and when its first byte came.
fn trickle(addr: SocketAddr, first: &[u8], drip: &[u8], within: Duration) -> (Vec<u8>, Duration) {
    let start = Instant::now();
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(first).unwrap();
    let mut got = Vec::new();
    let mut answered_after = None;
    let mut buf = [0u8; 4096];
    loop {
        let left = (start + within).saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "no answer to a trickled request within {within:?}"
        );
        stream.set_read_timeout(Some(left.min(DRIP))).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return (got, answered_after.expect("closed without an answer")),
            Ok(n) => {
                answered_after.get_or_insert_with(|| start.elapsed());
                got.extend_from_slice(&buf[..n]);
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if answered_after.is_none() {
                    // The server may already have closed its side; a failed drip is fine.
                    let _ = stream.write_all(drip);
                }
            }
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                return (got, answered_after.expect("reset without an answer"))
            }
            Err(e) => panic!("trickled connection: {e}"),
        }
    }
}

#[track_caller]
fn assert_408(raw: &[u8], what: &str) {
    let text = String::from_utf8_lossy(raw);
    assert!(text.starts_with("HTTP/1.1 408 "), "{what}: {text}");
    assert!(text.contains("\r\nconnection: close\r\n"), "{what}: {text}");
    assert!(text.ends_with(r#","code":"timeout"}"#), "{what}: {text}");
}

/// Twenty slowloris connections and five slow bodies, each dripping a header or a byte every
/// `DRIP`: each gets 408 and is closed once the request deadline has passed since its first byte
/// (never sooner), while a normal client is served and a WebSocket member chats throughout.
#[test]
fn slowloris_and_slow_bodies_get_408_while_others_are_served() {
    let server = Server::start_with_args(&REQUEST_TIMEOUT_FLAG);
    let alice = server.user("alice");
    let group = server.create_group(&alice, "busy", &[]);
    let mut ws = server.connect(&alice);
    let addr = server.addr;
    thread::scope(|s| {
        let mut slow = Vec::new();
        for i in 0..20 {
            slow.push(s.spawn(move || {
                let first = format!("GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: {i}\r\n");
                (
                    format!("slowloris {i}"),
                    trickle(
                        addr,
                        first.as_bytes(),
                        b"X-More: yes\r\n",
                        Duration::from_secs(15),
                    ),
                )
            }));
        }
        for i in 0..5 {
            slow.push(s.spawn(move || {
                let first = b"POST /login HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{";
                (format!("slow body {i}"), trickle(addr, first, b" ", Duration::from_secs(15)))
            }));
        }
        let mut served = 0;
        while slow.iter().any(|h| !h.is_finished()) {
            assert_eq!(
                Http::connect(addr).get("/healthz").expect(200),
                json!({"status": "ok"})
            );
            let text = format!("still here {served}");
            let ack = ws.send_and_ack(&group, &text);
            assert_ack(&ack, None);
            served += 1;
            thread::sleep(Duration::from_millis(50)); // pacing the probes, not synchronising
        }
        assert!(served > 0);
        for handle in slow {
            let (what, (raw, after)) = handle.join().unwrap();
            assert_408(&raw, &what);
            assert!(after >= REQUEST_TIMEOUT, "{what}: 408 after only {after:?}");
        }
    });
    assert!(metric(addr, "parley_errors_total{code=\"timeout\"}") >= 25);
}

/// A client that pipelines thousands of requests and never reads an answer: the server stops
/// reading from it once its answers back up (bounded memory), keeps serving everyone else
/// without spinning, and drops it after the request deadline.
#[test]
fn a_client_that_never_reads_its_answers_is_bounded_and_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let launch = Launch {
        args: &REQUEST_TIMEOUT_FLAG,
        ..Launch::default()
    };
    let (process, addr) = Process::start(dir.path(), &launch);
    let mut hog = TcpStream::connect(addr).unwrap();
    // 4 MB of pipelined requests (60 MB of answers): written until the server and the kernel
    // stop taking more, which is the point.
    let requests = b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n".repeat(120_000);
    hog.set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut written = 0;
    while written < requests.len() {
        match hog.write(&requests[written..]) {
            Ok(n) => written += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
            Err(e) => panic!("writing the pipeline: {e}"),
        }
    }
    eprintln!("slow reader: {written} bytes of requests taken before the server stopped reading");
    let rss_kb = || -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", process.pid())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    let cpu_ticks = || -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", process.pid())).unwrap();
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .collect();
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    };
    // Others are served while the hog is stuck, and the loop is idle between their requests.
    let ticks_before = cpu_ticks();
    let start = Instant::now();
    for _ in 0..20 {
        assert_eq!(
            Http::connect(addr).get("/healthz").expect(200),
            json!({"status": "ok"})
        );
        thread::sleep(Duration::from_millis(50)); // spacing the probes to measure an idle loop
    }
    let ticks = cpu_ticks() - ticks_before;
    let elapsed_ticks = (start.elapsed().as_secs_f64() * 100.0) as u64; // USER_HZ = 100
    assert!(
        ticks * 2 < elapsed_ticks.max(20),
        "the server used {ticks} CPU ticks in {elapsed_ticks}: it spins on the stuck client"
    );
    assert!(rss_kb() < 200 * 1024, "server RSS {} KiB", rss_kb());
    // Still not reading, the hog is dropped: a 408 is queued after its request deadline, and
    // the connection is closed when that cannot be written either.
    let deadline = Instant::now() + REQUEST_TIMEOUT + Duration::from_secs(10);
    while metric(addr, "parley_connections_dropped_total{reason=\"timeout\"}") == 0 {
        assert!(Instant::now() < deadline, "the hog was never dropped");
        thread::sleep(Duration::from_millis(100)); // polling a counter under a deadline
    }
    assert_eq!(
        metric(addr, "parley_errors_total{code=\"timeout\"}"),
        1,
        "one 408"
    );
    drop(hog);
    assert_eq!(Http::connect(addr).get("/healthz").status, 200);
}

/// A member whose WebSocket never reads: once its outgoing buffer passes the cap it is closed
/// with 1008, while the other member receives every message, exactly; its events stay stored,
/// so a reconnect and a sync recover all of them.
#[test]
fn a_slow_consumer_is_closed_with_1008_and_recovers_everything_by_sync() {
    let server = Server::start();
    let alice = server.user("alice");
    let bob = server.user("bob");
    let carol = server.user("carol");
    let bob_url = server.messaging_url(&bob.token);
    let mut a = server.connect(&alice);
    let mut never_reads = Ws::connect(&bob_url, "bob (never reads)");
    let mut c = server.connect(&carol);
    let group = server.create_group(&alice, "firehose", &[&bob, &carol]);
    a.expect(70);
    c.expect(70);
    let dropped = "parley_connections_dropped_total{reason=\"slow_consumer\"}";
    let payload = |i: usize| format!("{i:05}{}", "x".repeat(16_000));
    let mut sent = 0;
    // Bounded: 1 MiB of outbox plus at most a few MiB of socket buffers on loopback.
    while metric(server.addr, dropped) == 0 {
        assert!(
            sent < 3000,
            "bob was never cut off after {sent} messages of 16 KB"
        );
        for i in sent..sent + 20 {
            a.queue_json(&json!({"method": 40, "id": format!("m{i}"), "body": {"group_id": group, "data": payload(i)}}));
        }
        a.flush();
        for i in sent..sent + 20 {
            assert_ack(&a.expect(21), Some(&format!("m{i}")));
            let ev = c.expect(20);
            assert_eq!(
                ev["body"]["data"],
                payload(i),
                "carol gets every message, in order"
            );
        }
        sent += 20;
    }
    // Carol goes on receiving after bob is cut off.
    for i in sent..sent + 20 {
        a.send_message_id(&group, &payload(i), &format!("m{i}"));
        assert_ack(&a.expect(21), Some(&format!("m{i}")));
        assert_eq!(c.expect(20)["body"]["data"], payload(i));
    }
    sent += 20;
    assert_eq!(metric(server.addr, dropped), 1, "only bob was cut off");

    // Bob finally reads: part of the stream, in order, then close 1008.
    assert_eq!(never_reads.expect_close(), Some(CloseCode::Policy));
    let live: Vec<String> = never_reads
        .log
        .iter()
        .filter(|e| ty(e) == 20)
        .map(|e| e["body"]["data"].as_str().unwrap().to_string())
        .collect();
    assert!(
        live.len() < sent,
        "bob got everything live: nothing was cut off"
    );
    for (i, data) in live.iter().enumerate() {
        assert_eq!(
            *data,
            payload(i),
            "bob's live events are a prefix of the stream"
        );
    }

    // Reconnect and sync: every message, once, in order.
    let mut bob_again = Ws::connect(&bob_url, "bob again");
    let history = bob_again.sync_all(None);
    let synced: Vec<&str> = history
        .iter()
        .filter(|e| ty(e) == 20)
        .map(|e| e["body"]["data"].as_str().unwrap())
        .collect();
    assert_eq!(synced.len(), sent);
    for (i, data) in synced.iter().enumerate() {
        assert_eq!(*data, payload(i), "synced message {i}");
    }
    a.assert_quiet();
    c.assert_quiet();
}

/// Keep-alive connections with no request in progress are closed after the idle timeout (never
/// sooner), counted from their last request; one that keeps asking stays open.
#[test]
fn idle_keep_alive_connections_are_closed_after_the_idle_timeout() {
    let idle_timeout = Duration::from_secs(2);
    let server = Server::start_with_args(&["--idle-timeout-secs", "2"]);
    let start = Instant::now();
    let mut silent = TcpStream::connect(server.addr).unwrap();
    let mut served_once = TcpStream::connect(server.addr).unwrap();
    served_once
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut busy = Http::connect(server.addr);
    // `busy` asks every 500 ms until the idle ones are closed, and a while after.
    let mut closed = [None, None];
    while closed.iter().any(Option::is_none) || start.elapsed() < idle_timeout * 2 {
        assert!(
            start.elapsed() < DEADLINE,
            "idle connections still open: {closed:?}"
        );
        assert_eq!(
            busy.get("/healthz").status,
            200,
            "a busy connection stays open"
        );
        for (conn, when) in [&mut silent, &mut served_once]
            .into_iter()
            .zip(closed.iter_mut())
        {
            if when.is_none() && closed_within(conn, Duration::from_millis(250)) {
                *when = Some(start.elapsed());
            }
        }
    }
    for when in closed.into_iter().flatten() {
        assert!(when >= idle_timeout, "closed after only {when:?}");
    }
}

/// Whether the server closes `stream` within `within`; whatever it sends meanwhile is skipped.
fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false
            }
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return true,
            Err(e) => panic!("reading an idle connection: {e}"),
        }
    }
}
