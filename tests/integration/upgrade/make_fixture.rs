//! Makes `tests/fixtures/format-4.json` and `tests/fixtures/format-4.tar.gz`: a data directory
//! written by the release before `seq` (commit 1916dfc, store format 4) over its real HTTP and
//! WebSocket protocol, and what each user's sync from 0 returned from it, line for line.
//! `upgrade::format_4_directory_upgrades_in_place` checks today's parley against them.
//!
//! Not a test: it runs by hand, against the old binary, and overwrites the fixture:
//!
//! ```text
//! git worktree add /tmp/parley-1916dfc 1916dfc
//! (cd /tmp/parley-1916dfc && cargo build --release --bin parley)
//! PARLEY_OLD_BIN=/tmp/parley-1916dfc/target/release/parley \
//!     cargo test --test integration make_format_4_fixture -- --ignored
//! ```
//!
//! What the old server is made to write: three users (alice with two sessions), two groups,
//! messages with and without client ids (one with quotes, escapes and non-ASCII data), delivered
//! and read receipts, carol leaving group one and joining it again, and a burst of pipelined
//! sends, so that the old clock (one unique millisecond per event) runs ahead of the wall. Then
//! each user's sync from 0 is recorded exactly as sent, the server is stopped with SIGTERM, and
//! its clock ceiling (meta `clock`, which format 5's seqs continue above) is read from sled.
//!
//! `format-4.json` (small, readable) holds the credentials, tokens, ids, the client ids to retry
//! with their original acks, and the clock; the tarball holds `data/` (the data directory, JWT
//! secret included) and `syncs.json` (the recorded lines of each user).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::support::*;

/// Sends of the burst: two clock milliseconds each (message and ack), sent far faster than
/// that, so the old clock ends seconds ahead of the wall.
const BURST: usize = 3000;
/// Sends pipelined before their acks are read.
const BATCH: usize = 500;

struct OldUser {
    name: &'static str,
    password: &'static str,
    id: String,
    token: String,
    /// Messaging URLs of the user's sessions.
    urls: Vec<String>,
}

impl OldUser {
    fn sessions(&self) -> Vec<String> {
        self.urls.iter().map(|u| url_token(u).to_string()).collect()
    }
}

fn old_user(server: &Server, name: &'static str, password: &'static str, n: usize) -> OldUser {
    let email = format!("{name}@example.com");
    let id = assert_uuid(&server.register_response(name, &email, password).expect(201)["id"]);
    let token = server
        .login_response(&json!({"username": name, "password": password}))
        .expect(200)["token"]
        .as_str()
        .unwrap()
        .to_string();
    let urls = (0..n)
        .map(|i| {
            let mut body = session_body();
            body["device_id"] = json!(format!("{name}-device-{i}"));
            server.session_response(&token, &body).expect(201)["messaging_url"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    OldUser {
        name,
        password,
        id,
        token,
        urls,
    }
}

/// The next event, which must be of type `t` (the old protocol: no `seq`); returns it and its
/// exact text.
#[track_caller]
fn expect_old(ws: &mut Ws, t: u64) -> (Value, String) {
    let text = ws.recv_text();
    let ev: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(ty(&ev), t, "{}: expected {t}, got {text}", ws.name);
    assert!(
        ev.get("seq").is_none(),
        "the old release has no seq: {text}"
    );
    (ev, text)
}

/// A send with a client id, and the ack a retry of it must be answered with.
fn retry(user: &str, id: &str, group: &str, data: &str, ack: String) -> Value {
    json!({"user": user, "id": id, "group_id": group, "data": data, "ack": ack})
}

/// Sends `data` to `group` and waits for its ack (the old protocol: no `seq`); returns the
/// message id. A send with a client
/// id is noted in `retries`.
fn send(
    ws: &mut Ws,
    retries: &mut Vec<Value>,
    user: &str,
    group: &str,
    data: &str,
    id: Option<&str>,
) -> String {
    match id {
        Some(id) => ws.send_message_id(group, data, id),
        None => ws.send_message(group, data),
    }
    // Events of others' sends may come first.
    let (ack, text) = loop {
        let text = ws.recv_text();
        let ev: Value = serde_json::from_str(&text).unwrap();
        if ty(&ev) == 21 {
            break (ev, text);
        }
    };
    assert_eq!(ack["id"].as_str(), id);
    assert!(
        ack.get("seq").is_none(),
        "the old release has no seq: {text}"
    );
    if let Some(id) = id {
        retries.push(retry(user, id, group, data, text));
    }
    ack["body"]["message_id"].as_str().unwrap().to_string()
}

/// Every event a sync by timestamp from 0 returns, as sent, page by page.
fn record_sync(ws: &mut Ws) -> Vec<String> {
    let mut lines = Vec::new();
    let mut cursor = 0;
    loop {
        ws.send_json(&json!({"method": 20, "timestamp": cursor}));
        let more = loop {
            let text = ws.recv_text();
            let ev: Value = serde_json::from_str(&text).unwrap();
            if ty(&ev) == 29 {
                cursor = ev["body"]["timestamp"].as_u64().unwrap();
                break ev["body"]["more"].as_bool().unwrap();
            }
            assert!(ev.get("seq").is_none(), "{text}");
            lines.push(text);
        };
        if !more {
            return lines;
        }
    }
}

fn timestamp_of(line: &str) -> u64 {
    ts(&serde_json::from_str(line).unwrap())
}

#[test]
#[ignore = "makes the upgrade fixture from the old release's binary; see the module doc"]
fn make_format_4_fixture() {
    let old_bin = PathBuf::from(
        std::env::var("PARLEY_OLD_BIN").expect("PARLEY_OLD_BIN: the old release's parley binary"),
    );
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let mut server = Server::start_exe_in(&old_bin, &data, &["--auth-rate", "0"]);

    let alice = old_user(&server, "alice", "alice's old password", 2);
    let bob = old_user(&server, "bob", "bob-pw-1916", 1);
    let carol = old_user(&server, "carol", "Carol: 4 ever", 1);
    let mut a = Ws::connect(&alice.urls[0], "alice");
    let mut b = Ws::connect(&bob.urls[0], "bob");
    let mut c = Ws::connect(&carol.urls[0], "carol");

    let created = |owner: &OldUser, name: &str, members: &[&OldUser]| -> String {
        let ids: Vec<&str> = members.iter().map(|u| u.id.as_str()).collect();
        let body = json!({"name": name, "user_ids": ids});
        assert_uuid(
            &server
                .post("/groups", Some(&owner.token), &body)
                .expect(201)["id"],
        )
    };
    let one_name = "Old friends";
    let two_name = "bob & alice \u{1F375}";
    let one = created(&alice, one_name, &[&bob, &carol]);
    for ws in [&mut a, &mut b, &mut c] {
        expect_old(ws, 70);
    }
    let two = created(&bob, two_name, &[&alice]);
    for ws in [&mut a, &mut b] {
        expect_old(ws, 70);
    }

    // Messages, with and without client ids; their acks are what a retry must answer with.
    let mut retries = Vec::new();
    let hello = send(
        &mut a,
        &mut retries,
        "alice",
        &one,
        "hello from the old release",
        Some("a-1"),
    );
    let escapes = "\"quotes\", \\ back\tslash\nnew line, é ü 😀 \u{2028} <b>";
    let reply = send(&mut b, &mut retries, "bob", &one, escapes, None);
    let tea = send(&mut b, &mut retries, "bob", &two, "tea?", Some("b-1"));
    send(&mut a, &mut retries, "alice", &two, "yes please", None);
    for ws in [&mut a, &mut b, &mut c] {
        ws.barrier();
    }

    // Receipts: each reaches the author.
    c.delivered(&hello);
    c.read(&hello);
    b.delivered(&hello);
    a.read(&reply);
    a.delivered(&tea);
    a.read(&tea);
    for ws in [&mut a, &mut b, &mut c] {
        ws.barrier();
    }

    // carol leaves group one, misses a message, and joins again.
    let left = server.put(
        &format!("/groups/{one}/left"),
        Some(&carol.token),
        &json!({}),
    );
    left.expect(200);
    let away = send(
        &mut a,
        &mut retries,
        "alice",
        &one,
        "while carol is away",
        Some("a-2"),
    );
    let join = server.put(
        &format!("/groups/{one}/join"),
        Some(&carol.token),
        &json!({}),
    );
    join.expect(200);
    send(
        &mut c,
        &mut retries,
        "carol",
        &one,
        "back again",
        Some("c-1"),
    );
    for ws in [&mut a, &mut b, &mut c] {
        ws.barrier();
    }

    // The burst, with bob and carol away (they read it by sync): every other send has an id.
    drop((b, c));
    let wall_before = now_ms();
    let mut last_ack_ts = 0;
    let mut last_burst_message = String::new();
    let mut last_retry = None;
    for batch in 0..BURST / BATCH {
        let sends: Vec<(String, Option<String>)> = (batch * BATCH..(batch + 1) * BATCH)
            .map(|i| {
                (
                    format!("burst {i}"),
                    (i % 2 == 0).then(|| format!("burst-{i:04}")),
                )
            })
            .collect();
        for (data, id) in &sends {
            let mut rpc = json!({"method": 40, "body": {"group_id": one, "data": data}});
            if let Some(id) = id {
                rpc["id"] = json!(id);
            }
            a.queue_json(&rpc);
        }
        a.flush();
        for (data, id) in &sends {
            let (ack, text) = expect_old(&mut a, 21);
            assert_eq!(ack["id"].as_str(), id.as_deref());
            last_ack_ts = ts(&ack);
            last_burst_message = ack["body"]["message_id"].as_str().unwrap().to_string();
            if let Some(id) = id {
                last_retry = Some(retry("alice", id, &one, data, text));
            }
        }
    }
    // The burst's last send with an id.
    retries.extend(last_retry);
    let wall_after = now_ms();
    assert!(
        last_ack_ts > wall_after + 1000,
        "the old clock should have run ahead of the wall: last ack at {last_ack_ts}, wall {wall_after}"
    );

    // bob and carol come back with the same messaging tokens and answer the burst.
    let mut b = Ws::connect(&bob.urls[0], "bob");
    let mut c = Ws::connect(&carol.urls[0], "carol");
    b.read(&last_burst_message);
    c.delivered(&last_burst_message);
    send(
        &mut b,
        &mut retries,
        "bob",
        &two,
        "that was a lot",
        Some("b-2"),
    );
    for ws in [&mut a, &mut b, &mut c] {
        ws.barrier();
    }

    // What each user's sync from 0 returns, exactly.
    let mut syncs = BTreeMap::new();
    for (user, ws) in [("alice", &mut a), ("bob", &mut b), ("carol", &mut c)] {
        let lines = record_sync(ws);
        let stamps: Vec<u64> = lines.iter().map(|l| timestamp_of(l)).collect();
        assert!(stamps.windows(2).all(|w| w[0] < w[1]), "{user}: order");
        syncs.insert(user, lines);
    }
    drop((a, b, c));
    let status = server.terminate(Duration::from_secs(10));
    assert!(status.is_some_and(|s| s.success()), "SIGTERM: {status:?}");
    let wall_at_stop = now_ms();

    // Read from a copy: the fixture keeps the bytes the old server left.
    let copy = work.path().join("copy");
    let copied = Command::new("cp").arg("-a").arg(&data).arg(&copy).status();
    assert!(copied.unwrap().success(), "cp -a");
    let meta = read_meta(&copy.join("db"), &[b"format", b"clock"]);
    let (format, old_clock) = (meta[0], meta[1]);
    std::fs::remove_dir_all(&copy).unwrap();
    assert_eq!(format, 4);
    let newest = syncs.values().flatten().map(|l| timestamp_of(l)).max();
    assert!(
        newest.unwrap() < old_clock,
        "the clock ceiling is above every event"
    );

    let user_json = |u: &OldUser| {
        json!({
            "id": u.id,
            "username": u.name,
            "email": format!("{}@example.com", u.name),
            "password": u.password,
            "access_tokens": u.sessions(),
        })
    };
    let fixture = json!({
        "about": "Made by tests/integration/upgrade/make_fixture.rs (see there) with parley \
                  1916dfc, store format 4. format-4.tar.gz holds data/ and syncs.json.",
        "store_format": format,
        "old_clock": old_clock,
        "made_at": wall_at_stop,
        "burst": {
            "sends": BURST,
            "wall_before": wall_before,
            "wall_after": wall_after,
            "last_ack_timestamp": last_ack_ts,
        },
        "users": {
            "alice": user_json(&alice),
            "bob": user_json(&bob),
            "carol": user_json(&carol),
        },
        "groups": {
            "one": {"id": one, "name": one_name},
            "two": {"id": two, "name": two_name},
        },
        "unread_by_bob": {"message_id": away, "author": "alice", "group_id": one},
        "retries": retries,
        "events": syncs.iter().map(|(u, l)| (u.to_string(), json!(l.len()))).collect::<serde_json::Map<_, _>>(),
    });
    std::fs::write(
        work.path().join("syncs.json"),
        serde_json::to_string(&syncs).unwrap(),
    )
    .unwrap();

    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    std::fs::create_dir_all(&fixtures).unwrap();
    let mut pretty = serde_json::to_string_pretty(&fixture).unwrap();
    pretty.push('\n');
    std::fs::write(fixtures.join("format-4.json"), pretty).unwrap();
    // Reproducible bytes: sorted names, no owners or times, gzip without a name or time.
    let tarball = fixtures.join("format-4.tar.gz");
    let packed = Command::new("sh")
        .arg("-c")
        .arg(
            "tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -cf - \
             -C \"$1\" data syncs.json | gzip -9n > \"$2\"",
        )
        .arg("sh")
        .arg(work.path())
        .arg(&tarball)
        .status()
        .unwrap();
    assert!(packed.success(), "tar | gzip");
    eprintln!(
        "wrote {} ({} bytes) and format-4.json",
        tarball.display(),
        std::fs::metadata(&tarball).unwrap().len()
    );
}

/// Integers (big-endian, as parley keeps them) of sled's `meta` tree in a stopped server's
/// `db` directory.
pub fn read_meta(db: &Path, keys: &[&[u8]]) -> Vec<u64> {
    // sled's `conf` ends with a binary checksum.
    let conf = std::fs::read(db.join("conf")).unwrap();
    let segment_size = String::from_utf8_lossy(&conf)
        .lines()
        .find_map(|l| l.strip_prefix("segment_size: "))
        .and_then(|s| s.trim().parse().ok())
        .expect("segment_size in sled's conf");
    let sled = sled::Config::new()
        .path(db)
        .segment_size(segment_size)
        .open()
        .unwrap();
    let meta = sled.open_tree("meta").unwrap();
    keys.iter()
        .map(|key| {
            let value = meta.get(key).unwrap().expect("a meta key");
            u64::from_be_bytes(value.as_ref().try_into().unwrap())
        })
        .collect()
}
