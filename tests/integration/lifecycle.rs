//! Connection liveness (server pings, dropping silent peers) and graceful shutdown on SIGTERM.

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::*;
use tungstenite::protocol::frame::coding::CloseCode;

/// The server pings every 10 s.
#[test]
fn the_server_pings_an_idle_connection() {
    let server = Server::start();
    let alice = server.user("alice");
    let mut ws = server.connect(&alice);
    assert!(
        ws.wait_for_ping(Duration::from_secs(15)),
        "no ping within 15 s"
    );
}

/// A connection from which nothing arrives (no pong) for 30 s is dropped; one that answers the
/// pings stays. Takes 30-40 s.
#[test]
fn a_silent_connection_is_dropped_and_a_responsive_one_is_kept() {
    let server = Server::start();
    let alice = server.user("alice");
    let mut responsive = server.connect(&alice);
    let mut silent = server.connect(&alice);
    let (tx, rx) = mpsc::channel();
    let watcher = thread::spawn(move || {
        let dropped = silent.play_dead_until_dropped(Duration::from_secs(60));
        tx.send(dropped).unwrap();
    });
    // Keep reading the responsive connection (tungstenite answers the pings) until the silent one
    // has been dropped.
    let dropped = loop {
        if let Ok(d) = rx.try_recv() {
            break d;
        }
        if let Some(ev) = responsive.next_event_before(Instant::now() + Duration::from_millis(500))
        {
            panic!("unexpected event on an idle connection: {ev}");
        }
    };
    watcher.join().unwrap();
    let after = dropped.expect("the silent connection was not dropped within 60 s");
    assert!(
        after >= Duration::from_secs(29),
        "dropped after {after:?}, before 30 s of silence"
    );
    assert!(
        after <= Duration::from_secs(45),
        "dropped only after {after:?}"
    );
    // The responsive one, silent but for its pongs all along, is still served.
    responsive.assert_quiet();
}

/// SIGTERM: WebSockets are closed with 1001, the process exits 0 within 5 s, and what was
/// acknowledged is there after a restart.
#[test]
fn sigterm_closes_websockets_with_1001_and_exits_cleanly() {
    let mut server = Server::start();
    let alice = server.user("alice");
    let url = server.messaging_url(&alice.token);
    let mut ws = Ws::connect(&url, "alice");
    let group = server.create_group(&alice, "shutdown", &[]);
    ws.expect(70);
    let ack = ws.send_and_ack(&group, "before SIGTERM");

    let status = server.terminate(Duration::from_secs(6));
    let status = status.expect("parley did not exit within 5 s of SIGTERM");
    assert!(status.success(), "exit status after SIGTERM: {status:?}");
    assert_eq!(
        ws.expect_close(),
        Some(CloseCode::Away),
        "close code 1001 on shutdown"
    );

    let server = server.restart();
    let mut ws = Ws::connect(&server.ws_url(url_token(&url)), "alice after restart");
    let history = ws.sync_all(None);
    assert_eq!(types(&history), vec![70, 20, 21]);
    assert!(history.iter().any(|e| ident(e) == ident(&ack)));
}
