//! SIGTERM with every kind of connection open: WebSockets get close 1001, a login waiting for
//! its password check still gets its answer, idle keep-alive connections are closed, new
//! connections are refused, and the process exits 0 within the grace period, with everything
//! acknowledged kept.

use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use tungstenite::protocol::frame::coding::CloseCode;

use super::process::{Launch, Process};
use crate::support::*;

fn post(addr: std::net::SocketAddr, path: &str, token: Option<&str>, body: Value) -> Value {
    let answer = Http::connect(addr).json("POST", path, token, &body);
    assert!(
        answer.status < 300,
        "{path}: {}",
        String::from_utf8_lossy(&answer.body)
    );
    answer.json()
}

#[test]
fn sigterm_drains_every_kind_of_connection_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let launch = Launch::default();
    let (mut process, addr) = Process::start(dir.path(), &launch);
    let name = unique("term");
    post(
        addr,
        "/users",
        None,
        json!({"username": name, "email": format!("{name}@example.com"), "password": PASSWORD}),
    );
    let jwt = post(
        addr,
        "/login",
        None,
        json!({"username": name, "password": PASSWORD}),
    )["token"]
        .as_str()
        .unwrap()
        .to_string();
    let url = post(addr, "/sessions", Some(&jwt), session_body())["messaging_url"]
        .as_str()
        .unwrap()
        .to_string();
    let mut ws = Ws::connect(&url, "ws");
    let group = post(addr, "/groups", Some(&jwt), json!({"name": "term"}))["id"]
        .as_str()
        .unwrap()
        .to_string();
    ws.expect(70);
    let ack = ws.send_and_ack(&group, "before SIGTERM");

    let mut idle = Http::connect(addr);
    assert_eq!(idle.get("/healthz").status, 200);
    // A login in flight: its password check runs on a worker when the signal arrives.
    let mut in_flight = Http::connect(addr);
    let login = json!({"username": name, "password": PASSWORD}).to_string();
    let request = in_flight.build(
        "POST",
        "/login",
        &[("Content-Type", "application/json")],
        Some(login.as_bytes()),
    );
    in_flight.send_raw(&request);

    let pid = process.pid().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = process
        .wait_exit(Duration::from_secs(6))
        .expect("parley exits within the 3 s grace (+ slack)");
    assert_eq!(status.code(), Some(0), "exit status after SIGTERM");

    assert_eq!(ws.expect_close(), Some(CloseCode::Away));
    assert!(
        idle.closed_by_peer(),
        "an idle keep-alive connection is closed"
    );
    let answer = in_flight.read_response();
    assert_eq!(
        answer.status,
        200,
        "the login in flight is answered: {}",
        String::from_utf8_lossy(&answer.body)
    );
    assert_eq!(answer.header("connection"), Some("close"));
    assert!(
        TcpStream::connect(addr).is_err(),
        "nothing listens after the exit"
    );
    let log = process.stderr().join("\n");
    assert!(log.contains("shutting down"), "{log}");

    let (_process, addr) = Process::start(dir.path(), &launch);
    let mut ws = Ws::connect(&format!("ws://{addr}/{}", url_token(&url)), "after restart");
    let history = ws.sync_all(None);
    assert_eq!(types(&history), vec![70, 20, 21]);
    assert_eq!(ident(&history[2]), ident(&ack));
}

/// Signals `pid` with `signal` (`-STOP`, `-TERM`, `-CONT`).
fn signal(pid: u32, signal: &str) {
    let sent = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success(), "kill {signal} {pid}");
}

/// Waits until every thread of `pid` is stopped (`T` in /proc), so bytes sent now are read only
/// after SIGCONT.
fn wait_stopped(pid: u32) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let all_stopped = || {
        std::fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap()
            .all(|task| {
                let stat = std::fs::read_to_string(task.unwrap().path().join("stat")).unwrap();
                stat.rsplit_once(") ")
                    .is_some_and(|(_, rest)| rest.starts_with('T'))
            })
    };
    while !all_stopped() {
        assert!(std::time::Instant::now() < deadline, "parley never stopped");
        std::thread::sleep(Duration::from_millis(5)); // polling /proc under a deadline
    }
}

/// A WebSocket upgrade read after SIGTERM answers `503 unavailable` (not `rate_limited`: nothing
/// is being limited). To make the upgrade arrive after the signal without a race, the server is
/// stopped while each connection sends one tick's read budget of requests (64) and then the
/// upgrade, and SIGTERM is sent before it continues: the first tick serves the 64, the signal
/// begins the shutdown, and the upgrade is the next request it serves.
#[test]
fn an_upgrade_during_shutdown_answers_503_unavailable() {
    const READ_BUDGET_MESSAGES: usize = 64;
    let dir = tempfile::tempdir().unwrap();
    let launch = Launch {
        args: &["--echo-endpoint"],
        ..Launch::default()
    };
    let (mut process, addr) = Process::start(dir.path(), &launch);
    let mut clients: Vec<Http> = (0..4).map(|_| Http::connect(addr)).collect();
    for client in &mut clients {
        assert_eq!(
            client.get("/healthz").status,
            200,
            "connected before the stop"
        );
    }

    signal(process.pid(), "-STOP");
    wait_stopped(process.pid());
    for client in &mut clients {
        let mut pipeline = Vec::new();
        for _ in 0..READ_BUDGET_MESSAGES {
            pipeline.extend(client.build("GET", "/healthz", &[], None));
        }
        pipeline.extend(client.build(
            "GET",
            "/_echo",
            &[
                ("Upgrade", "websocket"),
                ("Connection", "Upgrade"),
                ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                ("Sec-WebSocket-Version", "13"),
            ],
            None,
        ));
        client.send_raw(&pipeline);
    }
    signal(process.pid(), "-TERM");
    signal(process.pid(), "-CONT");

    for (i, client) in clients.iter_mut().enumerate() {
        for n in 0..READ_BUDGET_MESSAGES {
            let answer = client.read_response();
            assert_eq!(answer.status, 200, "client {i}, healthz {n}");
        }
        let refused = client.read_response();
        refused.expect_error_for(format_args!("client {i}"), 503, "unavailable");
        assert_eq!(refused.header("retry-after"), Some("5"));
        assert_eq!(refused.header("connection"), Some("close"));
        assert!(
            client.closed_by_peer(),
            "client {i} is closed after the 503"
        );
    }
    let status = process
        .wait_exit(Duration::from_secs(6))
        .expect("parley exits within the 3 s grace (+ slack)");
    assert_eq!(status.code(), Some(0), "exit status after SIGTERM");
}
