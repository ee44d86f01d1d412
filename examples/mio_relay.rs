//! The floor of parley's stack: a bare relay on mio + tungstenite with one flush per connection
//! per tick, and nothing else (no auth, no storage). A client connects to `/ws?user=U&group=G`;
//! an RPC `{"method":40,"body":{"group_id","data"}}` is answered with event 21 to the sender and
//! event 20 (encoded once) to every other connection in the group, in parley's JSON shapes, so
//! `parley-load --target relay` measures it exactly as it measures parley.
//!
//! With `--raw` it does not parse JSON either: the RPC's text is wrapped, unread, into
//! `{"type":20,"body":<rpc>}` and routed to the sender's own group (from the URL), and the ack is a
//! constant, which shows what JSON routing itself costs.
//!
//! Usage: `cargo run --release --example mio_relay -- [--listen 127.0.0.1:0] [--raw]`; prints
//! `mio_relay: listening on ADDR` on stderr.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use serde::{Deserialize, Serialize};
use slab::Slab;
use tungstenite::handshake::derive_accept_key;
use tungstenite::protocol::{Role, WebSocketConfig, WebSocketContext};
use tungstenite::{Message, Utf8Bytes};

const LISTENER: Token = Token(usize::MAX - 1);

struct Connection {
    socket: TcpStream,
    phase: Phase,
    flush_queued: bool,
}

enum Phase {
    Handshake(Vec<u8>),
    Open(Box<Member>),
}

struct Member {
    ctx: WebSocketContext,
    user: String,
    group: String,
}

#[derive(Deserialize)]
struct Rpc<'a> {
    method: i64,
    #[serde(borrow)]
    body: Option<SendBody<'a>>,
}

#[derive(Deserialize)]
struct SendBody<'a> {
    #[serde(borrow)]
    group_id: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    data: std::borrow::Cow<'a, str>,
}

#[derive(Serialize)]
struct Event<B> {
    #[serde(rename = "type")]
    kind: u16,
    timestamp: u64,
    body: B,
}

#[derive(Serialize)]
struct MessageBody<'a> {
    message_id: &'a str,
    data: &'a str,
    group_id: &'a str,
    user_id: &'a str,
}

#[derive(Serialize)]
struct SentBody<'a> {
    message_id: &'a str,
}

struct Relay {
    poll: Poll,
    listener: TcpListener,
    conns: Slab<Connection>,
    groups: HashMap<String, Vec<usize>>,
    config: WebSocketConfig,
    to_flush: Vec<usize>,
    to_close: Vec<usize>,
    next_message: u64,
    /// Route without parsing JSON (`--raw`).
    raw: bool,
}

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let listen = match args.iter().position(|a| a == "--listen") {
        Some(i) => args.get(i + 1).cloned().unwrap_or_default(),
        None => "127.0.0.1:0".to_string(),
    };
    let poll = Poll::new()?;
    let mut listener = TcpListener::bind(
        listen
            .parse()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?,
    )?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    eprintln!("mio_relay: listening on {}", listener.local_addr()?);
    let mut relay = Relay {
        poll,
        listener,
        conns: Slab::new(),
        groups: HashMap::new(),
        config: WebSocketConfig::default()
            .read_buffer_size(4096)
            .write_buffer_size(64 * 1024)
            .max_write_buffer_size(1 << 20)
            .max_message_size(Some(64 << 10))
            .max_frame_size(Some(64 << 10)),
        to_flush: Vec::new(),
        to_close: Vec::new(),
        next_message: 0,
        raw: args.iter().any(|a| a == "--raw"),
    };
    relay.run()
}

impl Relay {
    fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            self.poll.poll(&mut events, None)?;
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept()?,
                    Token(key) => {
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            self.read(key);
                        }
                        if event.is_writable() {
                            self.queue_flush(key);
                        }
                    }
                }
            }
            for key in std::mem::take(&mut self.to_flush) {
                self.flush(key);
            }
            for key in std::mem::take(&mut self.to_close) {
                self.close(key);
            }
        }
    }

    fn accept(&mut self) -> io::Result<()> {
        loop {
            match self.listener.accept() {
                Ok((mut socket, _)) => {
                    socket.set_nodelay(true)?;
                    let entry = self.conns.vacant_entry();
                    self.poll.registry().register(
                        &mut socket,
                        Token(entry.key()),
                        Interest::READABLE | Interest::WRITABLE,
                    )?;
                    entry.insert(Connection {
                        socket,
                        phase: Phase::Handshake(Vec::new()),
                        flush_queued: false,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => {
                    eprintln!("mio_relay: accept: {e}");
                    return Ok(());
                }
            }
        }
    }

    fn read(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if let Phase::Handshake(head) = &mut conn.phase {
            let mut chunk = [0u8; 4096];
            loop {
                match conn.socket.read(&mut chunk) {
                    Ok(0) => return self.to_close.push(key),
                    Ok(n) => head.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => return self.to_close.push(key),
                }
            }
            match upgrade(head) {
                None => return,
                Some(Err(())) => return self.to_close.push(key),
                Some(Ok((answer, user, group, leftover))) => {
                    conn.socket.write_all(answer.as_bytes()).ok();
                    let ctx = WebSocketContext::from_partially_read(
                        leftover,
                        Role::Server,
                        Some(self.config),
                    );
                    self.groups.entry(group.clone()).or_default().push(key);
                    conn.phase = Phase::Open(Box::new(Member { ctx, user, group }));
                }
            }
        }
        loop {
            let conn = &mut self.conns[key];
            let Phase::Open(member) = &mut conn.phase else {
                return;
            };
            match member.ctx.read(&mut conn.socket) {
                Ok(Message::Text(text)) => self.route(key, text.as_str()),
                Ok(_) => self.queue_flush(key),
                Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => return self.to_close.push(key),
            }
        }
    }

    /// Ack to the sender, the event (encoded once) to the other members of the group.
    fn route(&mut self, key: usize, text: &str) {
        if self.raw {
            return self.route_raw(key, text);
        }
        let Ok(Rpc {
            method: 40,
            body: Some(body),
        }) = serde_json::from_str::<Rpc>(text)
        else {
            let error = r#"{"type":90,"timestamp":0,"body":{"code":"bad_request"}}"#;
            return self.write(key, Utf8Bytes::from_static(error));
        };
        self.next_message += 1;
        let message_id = format!("00000000-0000-4000-8000-{:012x}", self.next_message);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let Phase::Open(sender) = &self.conns[key].phase else {
            return;
        };
        let event: Utf8Bytes = serde_json::to_string(&Event {
            kind: 20,
            timestamp: now,
            body: MessageBody {
                message_id: &message_id,
                data: &body.data,
                group_id: &body.group_id,
                user_id: &sender.user,
            },
        })
        .expect("events serialize")
        .into();
        let ack = serde_json::to_string(&Event {
            kind: 21,
            timestamp: now,
            body: SentBody {
                message_id: &message_id,
            },
        })
        .expect("events serialize");
        self.write(key, ack.into());
        // Borrowed out of the map while writing, and put back: no allocation per message.
        let Some(members) = self
            .groups
            .get_mut(body.group_id.as_ref())
            .map(std::mem::take)
        else {
            return;
        };
        for &member in &members {
            if member != key {
                self.write(member, event.clone());
            }
        }
        if let Some(slot) = self.groups.get_mut(body.group_id.as_ref()) {
            *slot = members;
        }
    }

    /// The same delivery with no JSON read or written: the group is the sender's own.
    fn route_raw(&mut self, key: usize, text: &str) {
        let Phase::Open(sender) = &self.conns[key].phase else {
            return;
        };
        let event: Utf8Bytes = format!("{{\"type\":20,\"body\":{text}}}").into();
        let group = sender.group.clone();
        self.write(key, Utf8Bytes::from_static(r#"{"type":21,"body":{}}"#));
        let Some(members) = self.groups.get_mut(&group).map(std::mem::take) else {
            return;
        };
        for &member in &members {
            if member != key {
                self.write(member, event.clone());
            }
        }
        if let Some(slot) = self.groups.get_mut(&group) {
            *slot = members;
        }
    }

    fn write(&mut self, key: usize, text: Utf8Bytes) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let Phase::Open(member) = &mut conn.phase else {
            return;
        };
        match member.ctx.write(&mut conn.socket, Message::Text(text)) {
            Ok(()) => {}
            Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return self.to_close.push(key),
        }
        self.queue_flush(key);
    }

    fn queue_flush(&mut self, key: usize) {
        if let Some(conn) = self.conns.get_mut(key) {
            if !conn.flush_queued {
                conn.flush_queued = true;
                self.to_flush.push(key);
            }
        }
    }

    fn flush(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        conn.flush_queued = false;
        if let Phase::Open(member) = &mut conn.phase {
            match member.ctx.flush(&mut conn.socket) {
                Ok(()) => {}
                Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => self.to_close.push(key),
            }
        }
    }

    fn close(&mut self, key: usize) {
        let Some(mut conn) = self.conns.try_remove(key) else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut conn.socket);
        if let Phase::Open(member) = conn.phase {
            if let Some(members) = self.groups.get_mut(&member.group) {
                members.retain(|m| *m != key);
            }
        }
    }
}

/// The 101 answer, user, group and bytes after the head, once the head is complete; `Err` for a
/// request that is not a WebSocket upgrade.
#[allow(clippy::type_complexity)]
fn upgrade(head: &mut Vec<u8>) -> Option<Result<(String, String, String, Vec<u8>), ()>> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut request = httparse::Request::new(&mut headers);
    let used = match request.parse(head) {
        Ok(httparse::Status::Complete(used)) => used,
        Ok(httparse::Status::Partial) => return None,
        Err(_) => return Some(Err(())),
    };
    let Some(key) = request
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("sec-websocket-key"))
    else {
        return Some(Err(()));
    };
    let query = request
        .path
        .and_then(|p| p.split_once('?'))
        .map_or("", |(_, q)| q);
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .unwrap_or("")
            .to_string()
    };
    let user_number: u64 = param("user").parse().unwrap_or(0);
    let user = format!("00000000-0000-4000-8000-{user_number:012x}");
    let answer = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        derive_accept_key(key.value)
    );
    let group = param("group");
    Some(Ok((answer, user, group, head.split_off(used))))
}
