//! Criterion benches of parley's hot paths on in-memory mocks, through the library's public API:
//! HTTP request parse and route, RPC decode, event encode, fan-out of one event to N WebSocket
//! connections (tungstenite server contexts over a mock socket), store append and flush, and the
//! sync scan. Run with `cargo bench --bench hot_paths`; docs/BENCHMARKS.md has a run's figures.

use std::hint::black_box;
use std::io::{self, Write};
use std::rc::Rc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use parley::api;
use parley::chat::{Chat, ConnId, Frame};
use parley::clock::Stamp;
use parley::config::Limits;
use parley::http::{self, Parsed};
use parley::protocol::{self, MessageBody};
use parley::server;
use parley::store::client_ids::{ClientIdLimits, RecentSends, Sent};
use parley::store::{Store, UserRecord};
use tempfile::TempDir;
use uuid::Uuid;

const WALL: u64 = 1_700_000_000_000;

fn parse_and_route(c: &mut Criterion) {
    let limits = Limits::default();
    let upgrade = format!(
        "GET /{} HTTP/1.1\r\nHost: 127.0.0.1:3000\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        "ab".repeat(32)
    );
    let body = r#"{"name":"group_1","user_ids":["6a468c77-2b3c-4d5e-8f90-123456789abc"]}"#;
    let create_group = format!(
        "POST /groups HTTP/1.1\r\nHost: 127.0.0.1:3000\r\nAuthorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut group = c.benchmark_group("http");
    for (name, request) in [("upgrade", &upgrade), ("create_group", &create_group)] {
        group.bench_function(BenchmarkId::new("parse_and_route", name), |b| {
            b.iter(
                || match http::parse(black_box(request.as_bytes()), &limits) {
                    Ok(Parsed::Complete(request, _)) => {
                        black_box(api::route(&request.method, &request.path).is_ok())
                    }
                    _ => panic!("a complete request"),
                },
            )
        });
    }
    group.finish();
}

fn decode_and_encode(c: &mut Criterion) {
    let send = r#"{"method":40,"id":"c-17","body":{"group_id":"95ba5e74-1f2e-4c3d-8b9a-0123456789ab","data":"Hello, how are you? 0123456789"}}"#;
    let sync = r#"{"method":20,"timestamp":1700000000000,"limit":500}"#;
    let mut group = c.benchmark_group("protocol");
    group.bench_function("decode/send", |b| {
        b.iter(|| protocol::decode(black_box(send)).expect("valid"))
    });
    group.bench_function("decode/sync", |b| {
        b.iter(|| protocol::decode(black_box(sync)).expect("valid"))
    });
    let (message_id, group_id, user_id) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let data = "Hello, how are you? 0123456789";
    group.bench_function("encode/message", |b| {
        let stamp = Stamp {
            seq: 1 << 40,
            timestamp: WALL,
        };
        b.iter(|| protocol::message_event(black_box(stamp), message_id, data, group_id, user_id))
    });
    group.finish();
}

/// A socket whose peer drains `budget` bytes per tick: writes beyond it would block, as on a
/// non-blocking socket.
struct MockSocket {
    budget: usize,
    left: usize,
}

impl Write for MockSocket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(self.left);
        self.left -= n;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// One event encoded once and written to N WebSocket connections, each flushed once: what the
/// loop does with a tick's outbox (a shared copy per recipient, framed into the connection's
/// buffer by `server::push_text_frame`, then one write per connection to a socket that takes
/// 64 KiB a tick).
fn fanout(c: &mut Criterion) {
    let event: Rc<str> = protocol::encode(
        20,
        Some(1 << 40),
        None,
        WALL,
        &MessageBody {
            message_id: Uuid::new_v4(),
            data: "Hello, how are you? 0123456789",
            group_id: Uuid::new_v4(),
            user_id: Uuid::new_v4(),
        },
    )
    .into();
    let mut group = c.benchmark_group("fanout");
    for n in [10usize, 100, 1000] {
        let mut conns: Vec<(Vec<u8>, MockSocket)> = (0..n)
            .map(|_| {
                let socket = MockSocket {
                    budget: 64 * 1024,
                    left: 64 * 1024,
                };
                (Vec::new(), socket)
            })
            .collect();
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(BenchmarkId::new("one_event_to_n", n), |b| {
            b.iter(|| {
                for (out, _) in conns.iter_mut() {
                    // The copy the outbox holds for each recipient.
                    let copy = Rc::clone(&event);
                    server::push_text_frame(out, &copy);
                }
                for (out, socket) in conns.iter_mut() {
                    socket.left = socket.budget;
                    let written = socket.write(out).expect("a budget left");
                    assert_eq!(written, out.len());
                    out.clear();
                }
            })
        });
    }
    group.finish();
}

/// A chat core on a real store in a temporary directory, with one group of `members` users, each
/// connected once (connection key = member index).
struct Fixture {
    _dir: TempDir,
    chat: Chat,
    users: Vec<Uuid>,
    group: Uuid,
}

impl Fixture {
    fn new(members: usize) -> Fixture {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
        // An index that never fills: criterion runs millions of sends with ids.
        let client_ids = ClientIdLimits {
            max_entries: usize::MAX,
            ..ClientIdLimits::DEFAULT
        };
        let mut store =
            Store::open_with(&dir.path().join("db"), 64 << 20, client_ids).expect("store");
        let users: Vec<Uuid> = (0..members).map(|_| Uuid::new_v4()).collect();
        for (i, id) in users.iter().enumerate() {
            store.insert_user(&UserRecord {
                id: *id,
                username: format!("bench{i}"),
                email: format!("bench{i}@bench.test"),
                password_hash: String::new(),
                created_at: WALL,
                token_generation: 0,
                suspended: false,
                deleted: false,
            });
        }
        let limits = Limits::default();
        let mut chat = Chat::open(store, limits.chat()).expect("chat");
        let others: Vec<String> = users[1..].iter().map(Uuid::to_string).collect();
        let group = chat
            .create_group(users[0], "bench", &others, WALL)
            .expect("group");
        chat.commit().expect("commit");
        for (key, user) in users.iter().enumerate() {
            chat.connect(
                *user,
                ConnId {
                    key,
                    serial: key as u64,
                },
            );
        }
        chat.outbox.drain().for_each(drop);
        Fixture {
            _dir: dir,
            chat,
            users,
            group,
        }
    }

    fn conn(&self, index: usize) -> ConnId {
        ConnId {
            key: index,
            serial: index as u64,
        }
    }

    fn send_text(&self) -> String {
        format!(
            r#"{{"method":40,"body":{{"group_id":"{}","data":"Hello, how are you? 0123456789"}}}}"#,
            self.group
        )
    }
}

/// A send (RPC 40) in a group of 10 through the chat core: decode, store append, ack and nine
/// deliveries into the outbox, then the tick's flush, alone or shared by 100 sends.
fn store_append_and_flush(c: &mut Criterion) {
    let mut fixture = Fixture::new(10);
    let text = fixture.send_text();
    let (sender, conn) = (fixture.users[0], fixture.conn(0));
    let mut group = c.benchmark_group("store");
    group.sample_size(20);
    for per_flush in [1u64, 100] {
        group.throughput(Throughput::Elements(per_flush));
        group.bench_function(BenchmarkId::new("sends_then_flush", per_flush), |b| {
            b.iter(|| {
                for _ in 0..per_flush {
                    fixture.chat.handle_text(conn, sender, &text, WALL);
                }
                fixture.chat.commit().expect("commit");
                let delivered = fixture.chat.outbox.drain().count();
                assert_eq!(
                    delivered as u64,
                    per_flush * 10,
                    "an ack and nine events a send"
                );
            })
        });
    }
    // The same 100 sends, each with a new client id, as real clients send them: the retry index
    // is looked up and written once a send (its cost beside the line above; the id's
    // formatting, about 50 ns, is in it too).
    let mut next_id = 0u64;
    let with_id = |n: u64| {
        text.replacen(
            r#""method":40,"#,
            &format!(r#""method":40,"id":"c-{n}","#),
            1,
        )
    };
    group.throughput(Throughput::Elements(100));
    group.bench_function(BenchmarkId::new("sends_with_ids_then_flush", 100), |b| {
        b.iter(|| {
            for _ in 0..100 {
                next_id += 1;
                fixture
                    .chat
                    .handle_text(conn, sender, &with_id(next_id), WALL);
            }
            fixture.chat.commit().expect("commit");
            let acks = fixture
                .chat
                .outbox
                .drain()
                .filter(|(to, _, _)| *to == conn)
                .count();
            assert_eq!(acks, 100, "one ack a send: none was taken for a retry");
        })
    });
    group.finish();
}

/// The retry index alone, as a send with a new client id uses it: a lookup that finds nothing,
/// then an insert, in an index already holding two million sends (far bigger than the CPU's
/// caches, as on a server that has been up a while), from 200 users.
fn retry_index(c: &mut Criterion) {
    let limits = ClientIdLimits {
        window_ms: ClientIdLimits::DAY_MS,
        max_entries: usize::MAX,
    };
    let mut recent = RecentSends::new(limits, WALL);
    let users: Vec<Uuid> = (0..200u128).map(|n| Uuid::from_u128(n + 1)).collect();
    let sent = |n: u64| Sent {
        message_id: Uuid::from_u128(n.into()),
        ack_ts: WALL + n,
    };
    let mut next = 0u64;
    // Ids of a fixed width, counted up in place: formatting one would cost more than the index.
    let mut id = *b"c-0000000000";
    let mut send = |recent: &mut RecentSends| {
        next += 1;
        for digit in id.iter_mut().rev() {
            if *digit < b'9' {
                *digit += 1;
                break;
            }
            *digit = b'0';
        }
        let id = std::str::from_utf8(&id).expect("ASCII");
        let user = users[next as usize % users.len()];
        let fingerprint = recent.fingerprint(user, id);
        assert!(recent.get(fingerprint).is_none());
        assert!(recent.insert(fingerprint, sent(next)));
    };
    for _ in 0..2_000_000 {
        send(&mut recent);
    }
    let mut group = c.benchmark_group("client_ids");
    group.bench_function("send_with_new_id/2M_held", |b| b.iter(|| send(&mut recent)));
    group.finish();
}

/// Sync of a page of 1000 events for a user who missed 5000 (RPC 20 from the beginning).
fn sync_scan(c: &mut Criterion) {
    let mut fixture = Fixture::new(2);
    let text = fixture.send_text();
    let (writer, writer_conn) = (fixture.users[1], fixture.conn(1));
    fixture.chat.disconnect(fixture.users[0], fixture.conn(0));
    for _ in 0..50 {
        for _ in 0..100 {
            fixture.chat.handle_text(writer_conn, writer, &text, WALL);
        }
        fixture.chat.commit().expect("commit");
        fixture.chat.outbox.drain().for_each(drop);
    }
    let (reader, reader_conn) = (fixture.users[0], fixture.conn(0));
    let request = r#"{"method":20,"timestamp":0,"limit":1000}"#;
    let mut group = c.benchmark_group("sync");
    group.sample_size(20);
    group.throughput(Throughput::Elements(1000));
    group.bench_function("page_of_1000", |b| {
        b.iter(|| {
            fixture
                .chat
                .handle_text(reader_conn, reader, black_box(request), WALL);
            let events = fixture
                .chat
                .outbox
                .drain()
                .filter(|(_, frame, _)| matches!(frame, Frame::Event(_)))
                .count();
            assert_eq!(events, 1001, "a page of 1000 and the sync-complete event");
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    parse_and_route,
    decode_and_encode,
    fanout,
    store_append_and_flush,
    retry_index,
    sync_scan
);
criterion_main!(benches);
