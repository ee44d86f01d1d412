//! A full disk (issue #18, finding 2): the server's data directory on a small tmpfs of the
//! test's own, filled by a filler file. The server must stay up (connections open, requests
//! answered), acknowledge nothing it could not store, refuse new writes with `internal`, serve
//! reads (a reconnect, a login, a sync of exactly what is stored), and store what waited, by
//! itself, once the filler is deleted; after a restart every acknowledged message is there and
//! no refused one. Skipped, with a message, where mounting a tmpfs is not allowed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::metric;
use crate::support::*;

/// Past the first failed write the server says so on stderr, once.
const DEGRADED_LINE: &str = "the store cannot write";
const RECOVERED_LINE: &str = "the store writes again";

/// A tmpfs mounted on a fresh directory, unmounted when dropped.
struct SmallFs {
    dir: tempfile::TempDir,
}

impl SmallFs {
    fn mount(size: &str) -> Option<SmallFs> {
        let dir = tempfile::tempdir().expect("a mount point");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|status| status.success());
        if !mounted {
            eprintln!(
                "SKIPPED disk_full: cannot mount a tmpfs (needs root, or CAP_SYS_ADMIN, and mount)"
            );
            return None;
        }
        Some(SmallFs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Bytes free on it.
    fn free(&self) -> u64 {
        let out = Command::new("df")
            .args(["-B1", "--output=avail"])
            .arg(self.path())
            .output()
            .expect("df");
        let text = String::from_utf8(out.stdout).expect("df prints text");
        text.lines()
            .nth(1)
            .and_then(|line| line.trim().parse().ok())
            .unwrap_or_else(|| panic!("df's answer: {text}"))
    }

    /// A file taking all but `leave` bytes.
    fn fill(&self, leave: u64) -> PathBuf {
        let filler = self.path().join("filler");
        let size = self.free().saturating_sub(leave);
        std::fs::write(&filler, vec![0u8; size as usize]).expect("write the filler");
        filler
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        // Lazily: a file still open a moment longer would leave the mount behind.
        let _ = Command::new("umount")
            .arg("--lazy")
            .arg(self.path())
            .status();
    }
}

fn logged(server: &Server, line: &str) -> bool {
    server.stderr().iter().any(|l| l.contains(line))
}

#[test]
fn a_full_disk_holds_acks_keeps_serving_and_stores_them_when_space_returns() {
    let Some(fs) = SmallFs::mount("8m") else {
        return;
    };
    let data = fs.path().join("data");
    let server = Server::start_in(&data);
    let (alice, bob, carol) = (
        server.user("alice"),
        server.user("bob"),
        server.user("carol"),
    );
    let group = server.create_group(&alice, "full", &[&bob]);
    // A group no message goes to while the disk is full: nothing is held for carol.
    let quiet = server.create_group(&alice, "quiet", &[&carol]);
    let mut sender = server.connect(&alice);
    let watcher = server.connect(&bob);
    // Opened now: a session is a write, which would wait for the disk.
    let mut typist = server.connect(&carol);
    // A session of bob's to reconnect with while the disk is full.
    let reconnect_url = server.messaging_url(&bob.token);
    let mut acked = vec![sender.send_and_ack(&group, "before")["body"]["message_id"].clone()];

    // Sends until one is not acknowledged because the store cannot write.
    let filler = fs.fill(16 * 1024);
    let data_1k = "x".repeat(1024);
    let deadline = Instant::now() + Duration::from_secs(60);
    let pending_id = loop {
        assert!(Instant::now() < deadline, "the disk never filled");
        let id = random_uuid();
        sender.send_message_id(&group, &data_1k, &id);
        let ack = loop {
            if let Some(ev) = sender.next_event_before(Instant::now() + Duration::from_millis(50)) {
                if ty(&ev) == 21 {
                    break Some(ev);
                }
                assert_ne!(ty(&ev), 90, "no error while the store writes: {ev}");
                continue;
            }
            if logged(&server, DEGRADED_LINE) {
                break None;
            }
            assert!(
                Instant::now() < deadline,
                "neither an ack nor the store's failure"
            );
        };
        match ack {
            Some(ack) => acked.push(ack["body"]["message_id"].clone()),
            None => break id,
        }
    };

    // Still up: a typing event (which stores nothing) goes from alice, whose ack is held, to
    // carol at once.
    sender.typing_start(&quiet);
    let typing = typist.expect(40);
    assert_eq!(typing["body"]["group_id"], quiet.as_str(), "{typing}");
    if let Some(ev) = sender.next_event_before(Instant::now()) {
        assert_ne!(ty(&ev), 21, "no ack while the store cannot write: {ev}");
    }

    // New writes are refused at once, with the RPC's id; nothing of them is stored.
    let refused_id = random_uuid();
    typist.send_message_id(&quiet, "refused", &refused_id);
    typist.expect_error("internal", Some(40), Some(&refused_id));
    server
        .register_response("dave", "dave@example.com", "a password")
        .expect_error(500, "internal");
    // And the operator can tell, without waiting for the disk.
    let health = server.get("/healthz");
    assert_eq!(
        health.status, 503,
        "GET /healthz while the store cannot write"
    );
    assert_eq!(health.json(), json!({"status": "degraded"}));
    assert_eq!(metric(server.addr, "parley_store_degraded"), 1);

    // Reads go on. A reconnect gets in (its session is stored), and its sync returns exactly
    // the acknowledged messages: not the pending one, which is not stored yet.
    let mut reader = Ws::connect(&reconnect_url, "bob again");
    let (synced, degraded_cursor) = messages_and_cursor(&mut reader, Cursor::Seq(0));
    assert_eq!(synced, acked, "a sync while the disk is full");
    // By timestamp too; that page also holds back the acknowledged messages of the pending
    // one's millisecond, if any (a timestamp cursor cannot end inside one).
    let (by_time, time_cursor) = messages_and_cursor(&mut reader, Cursor::Timestamp(0));
    assert!(
        acked.starts_with(&by_time),
        "a sync by timestamp while the disk is full: {by_time:?}, acked {acked:?}"
    );
    // A login stores nothing: it is answered. A new session would be stored: refused.
    let token = server.login(&carol.name, &carol.password);
    server
        .session_response(&token, &session_body())
        .expect_error(500, "internal");
    assert_eq!(server.get("/").status, 200, "GET / while the disk is full");

    // Space back: the held ack arrives, true, without anyone asking again.
    std::fs::remove_file(&filler).expect("delete the filler");
    let ack_deadline = Instant::now() + Duration::from_secs(30);
    let ack = loop {
        let ev = sender
            .next_event_before(ack_deadline)
            .expect("the held ack arrives once the disk has room");
        if ty(&ev) == 21 {
            break ev;
        }
    };
    assert_eq!(
        ack["id"],
        pending_id.as_str(),
        "the held ack is the pending send's: {ack}"
    );
    let pending_message = ack["body"]["message_id"].clone();
    // The reader's next sync, from the cursor it got while the disk was full, gets the message
    // that waited, once, and nothing else.
    let cursor = Cursor::Seq(degraded_cursor["seq"].as_u64().unwrap());
    let (after_space, _) = messages_and_cursor(&mut reader, cursor);
    // And by timestamp, from where that sync stopped: the rest, exactly.
    let cursor = Cursor::Timestamp(time_cursor["timestamp"].as_u64().unwrap());
    let (rest_by_time, _) = messages_and_cursor(&mut reader, cursor);
    let mut whole_by_time = by_time;
    whole_by_time.extend(rest_by_time);
    let mut whole = acked.clone();
    whole.push(pending_message.clone());
    assert_eq!(
        whole_by_time, whole,
        "the syncs by timestamp, before and after"
    );
    assert_eq!(
        after_space,
        std::slice::from_ref(&pending_message),
        "the sync after space returned"
    );
    acked.push(pending_message);
    // stderr is drained by another thread: the line may trail the ack a little.
    let log_deadline = Instant::now() + Duration::from_secs(10);
    while !logged(&server, RECOVERED_LINE) {
        assert!(Instant::now() < log_deadline, "{:?}", server.stderr());
        std::thread::sleep(Duration::from_millis(10)); // polling a log line, not synchronising
    }
    acked.push(sender.send_and_ack(&group, "after")["body"]["message_id"].clone());
    assert_eq!(server.get("/healthz").status, 200);
    assert_eq!(metric(server.addr, "parley_store_degraded"), 0);
    drop((sender, watcher, typist, reader));

    // Every acknowledged message is stored.
    let server = server.restart();
    let mut checker = server.connect(&bob);
    let stored: Vec<Value> = checker
        .sync_all(None)
        .iter()
        .filter(|ev| ty(ev) == 20)
        .map(|ev| ev["body"]["message_id"].clone())
        .collect();
    for id in &acked {
        assert!(stored.contains(id), "acknowledged {id} is not stored");
    }
    let mut carols = server.connect(&carol);
    let quiet_messages: Vec<Value> = carols
        .sync_all(None)
        .into_iter()
        .filter(|ev| ty(ev) == 20 && ev["body"]["group_id"] == quiet.as_str())
        .collect();
    assert!(
        quiet_messages.is_empty(),
        "the refused send was stored: {quiet_messages:?}"
    );
}

/// A sync's cursor: by seq or by timestamp.
#[derive(Clone, Copy)]
enum Cursor {
    Seq(u64),
    Timestamp(u64),
}

/// The message ids (type 20) of a whole sync from `cursor`, in order (each page from the last
/// 29's field of the same kind), and the last 29's body.
#[track_caller]
fn messages_and_cursor(ws: &mut Ws, cursor: Cursor) -> (Vec<Value>, Value) {
    let mut messages = Vec::new();
    let mut cursor = cursor;
    for _ in 0..1000 {
        let (events, done) = match cursor {
            Cursor::Seq(seq) => ws.sync_raw(json!({"method": 20, "seq": seq})),
            Cursor::Timestamp(ts) => ws.sync_raw(json!({"method": 20, "timestamp": ts})),
        };
        messages.extend(
            events
                .iter()
                .filter(|ev| ty(ev) == 20)
                .map(|ev| ev["body"]["message_id"].clone()),
        );
        cursor = match cursor {
            Cursor::Seq(_) => Cursor::Seq(done["seq"].as_u64().unwrap()),
            Cursor::Timestamp(_) => Cursor::Timestamp(done["timestamp"].as_u64().unwrap()),
        };
        if done["more"] == false {
            return (messages, done);
        }
    }
    panic!("the sync never ended");
}

/// A restart on a disk that is still full fails with an error that says so and what to do;
/// once space is freed the server starts with everything stored.
#[test]
fn a_start_on_a_full_disk_says_the_disk_is_full_and_a_start_after_freeing_works() {
    let Some(fs) = SmallFs::mount("8m") else {
        return;
    };
    let data = fs.path().join("data");
    let mut server = Server::start_in(&data);
    let alice = server.user("alice");
    server.kill();
    let filler = fs.fill(16 * 1024);

    let mut child = Command::new(env!("CARGO_BIN_EXE_parley"))
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn parley");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("parley started (or hung) on a full disk");
        }
        std::thread::sleep(Duration::from_millis(10)); // polling an exit, not synchronising
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains("the disk holding the data directory is full; free at least 4 MiB"),
        "{stderr}"
    );

    std::fs::remove_file(&filler).expect("delete the filler");
    let server = Server::start_in(&data);
    let token = server.login(&alice.name, &alice.password);
    assert!(!token.is_empty());
}
