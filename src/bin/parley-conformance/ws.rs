//! The kit's WebSocket client: the shared client's `Session` with every frame sent and received
//! written to the transcript, and reads that wait until a deadline, never longer. Proving that
//! something did *not* arrive uses the shared barrier (`parley_client::json::barrier`).

use std::io::Write;
use std::time::{Duration, Instant};

use parley_client::json;
use parley_client::ws::{ConnectError, Session};
use serde_json::Value;
use tungstenite::Message;

use crate::http::{shorten, BaseUrl};
use crate::transcript::Transcript;

pub struct Ws {
    socket: Session,
    pub label: String,
    transcript: Transcript,
    timeout: Duration,
    barriers: u64,
    /// Every event received so far, in order.
    received: Vec<Value>,
}

/// How the server answered an upgrade request.
pub enum Upgrade {
    Open(Box<Ws>),
    /// Not upgraded: the HTTP status it answered instead.
    Refused(u16),
}

/// What a read found before its deadline.
pub enum Incoming {
    Message(Message),
    /// The deadline passed with nothing new.
    Nothing,
    /// The connection ended without a close frame.
    Ended(String),
}

impl Ws {
    pub fn open(
        base: &BaseUrl,
        token: &str,
        label: &str,
        transcript: &Transcript,
        timeout: Duration,
    ) -> Result<Upgrade, String> {
        let url = base.ws_url(token);
        transcript.note(format!(
            "-> [{label}] WebSocket upgrade GET {}",
            short_url(&url)
        ));
        match Session::connect(&url, &[], timeout) {
            Ok(socket) => {
                transcript.note(format!("<- [{label}] 101 upgraded"));
                Ok(Upgrade::Open(Box::new(Ws {
                    socket,
                    label: label.to_string(),
                    transcript: transcript.clone(),
                    timeout,
                    barriers: 0,
                    received: Vec::new(),
                })))
            }
            Err(ConnectError::Status(status)) => {
                transcript.note(format!("<- [{label}] {status} (not upgraded)"));
                Ok(Upgrade::Refused(status))
            }
            Err(ConnectError::Other(err)) => Err(format!("[{label}] upgrade failed: {err}")),
            Err(ConnectError::TimedOut) => {
                Err(format!("[{label}] no upgrade answer within {timeout:?}"))
            }
        }
    }

    /// Opens a WebSocket that must be accepted.
    pub fn connect(
        base: &BaseUrl,
        token: &str,
        label: &str,
        transcript: &Transcript,
        timeout: Duration,
    ) -> Result<Ws, String> {
        match Self::open(base, token, label, transcript, timeout)? {
            Upgrade::Open(ws) => Ok(*ws),
            Upgrade::Refused(status) => Err(format!(
                "[{label}] upgrade with a valid messaging token answered {status}, expected 101"
            )),
        }
    }

    pub fn send_json(&mut self, rpc: &Value) -> Result<(), String> {
        let text = rpc.to_string();
        self.send(Message::text(text.clone()), &text)
    }

    /// Sends a message of any kind; `shown` is what the transcript says about it.
    pub fn send(&mut self, message: Message, shown: &str) -> Result<(), String> {
        self.transcript
            .note(format!("-> [{}] {}", self.label, shorten(shown, 300)));
        self.socket
            .send(message)
            .map_err(|e| format!("[{}] send failed: {e}", self.label))
    }

    /// Writes bytes straight to the socket, for frames tungstenite would refuse to build.
    pub fn send_raw(&mut self, bytes: &[u8], shown: &str) -> Result<(), String> {
        self.transcript
            .note(format!("-> [{}] raw bytes: {shown}", self.label));
        let stream = self.socket.stream();
        stream
            .write_all(bytes)
            .and_then(|()| stream.flush())
            .map_err(|e| format!("[{}] raw write failed: {e}", self.label))
    }

    /// The next message of any kind within `within`.
    pub fn next_message(&mut self, within: Duration) -> Incoming {
        match self.socket.read_before(Instant::now() + within) {
            Ok(Some(message)) => {
                self.transcript
                    .note(format!("<- [{}] {}", self.label, describe(&message)));
                Incoming::Message(message)
            }
            Ok(None) => Incoming::Nothing,
            Err(err) => {
                self.transcript
                    .note(format!("<- [{}] connection ended: {err}", self.label));
                Incoming::Ended(err.to_string())
            }
        }
    }

    /// The next event (a JSON text message), skipping pings and pongs, and presence events
    /// (50, issue #20): they come whenever a user sharing a group connects or leaves, and no
    /// case here is about them (they are in the transcript).
    pub fn next_event(&mut self) -> Result<Value, String> {
        let deadline = Instant::now() + self.timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_message(left) {
                Incoming::Message(Message::Text(text)) => {
                    let event: Value = serde_json::from_str(text.as_str())
                        .map_err(|e| format!("[{}] event is not JSON ({e}): {text}", self.label))?;
                    if event["type"] == 50 {
                        continue;
                    }
                    self.received.push(event.clone());
                    return Ok(event);
                }
                Incoming::Message(Message::Ping(_) | Message::Pong(_)) => continue,
                Incoming::Message(other) => {
                    return Err(format!(
                        "[{}] expected a text event, got {}",
                        self.label,
                        describe(&other)
                    ))
                }
                Incoming::Nothing => {
                    return Err(format!(
                        "[{}] no event within {:?}",
                        self.label, self.timeout
                    ))
                }
                Incoming::Ended(why) => {
                    return Err(format!("[{}] connection ended: {why}", self.label))
                }
            }
        }
    }

    /// The next event, which must be of type `kind`.
    pub fn expect(&mut self, kind: u64) -> Result<Value, String> {
        let event = self.next_event()?;
        if event["type"].as_u64() == Some(kind) {
            Ok(event)
        } else {
            Err(format!(
                "[{}] expected event {kind}, got {event}",
                self.label
            ))
        }
    }

    /// Skips events until one of type `kind` comes (for connections that may hold unrelated
    /// events first, such as a sync's replay).
    pub fn wait_for(&mut self, kind: u64) -> Result<Value, String> {
        loop {
            let event = self.next_event()?;
            if event["type"].as_u64() == Some(kind) {
                return Ok(event);
            }
        }
    }

    /// Every event this connection has received, in order.
    pub fn received(&self) -> &[Value] {
        &self.received
    }

    /// Everything this connection received up to a barrier (see the module comment).
    pub fn barrier(&mut self) -> Result<Vec<Value>, String> {
        self.barriers += 1;
        let (rpc, cursor) = json::barrier(self.barriers);
        self.send_json(&rpc)?;
        let mut before = Vec::new();
        loop {
            let event = self.next_event()?;
            if json::ends_barrier(&event, cursor) {
                return Ok(before);
            }
            before.push(event);
        }
    }

    /// Checks that nothing but pings is pending on this connection.
    pub fn expect_quiet(&mut self, why: &str) -> Result<(), String> {
        let pending = self.barrier()?;
        if pending.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "[{}] {why}, but received {}",
                self.label,
                pending
                    .iter()
                    .map(Value::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        }
    }

    /// One sync page: the events replayed and the closing event 29.
    pub fn sync_page(&mut self, rpc: &Value) -> Result<(Vec<Value>, Value), String> {
        self.send_json(rpc)?;
        let mut events = Vec::new();
        loop {
            let event = self.next_event()?;
            if event["type"].as_u64() == Some(29) {
                return Ok((events, event));
            }
            events.push(event);
        }
    }

    /// Closes the connection with the closing handshake and waits until the server has ended it.
    pub fn close(mut self) -> Result<(), String> {
        self.transcript
            .note(format!("-> [{}] close (1000)", self.label));
        self.socket
            .close(None)
            .map_err(|e| format!("[{}] close failed: {e}", self.label))?;
        self.expect_close().map(|_| ())
    }

    /// Waits for the server to close the connection; the close code, if a close frame came.
    pub fn expect_close(&mut self) -> Result<Option<u16>, String> {
        let deadline = Instant::now() + self.timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_message(left) {
                Incoming::Message(Message::Close(frame)) => {
                    return Ok(frame.map(|f| u16::from(f.code)))
                }
                Incoming::Message(_) => continue,
                Incoming::Nothing => {
                    return Err(format!(
                        "[{}] still open {:?} after a frame that must close it",
                        self.label, self.timeout
                    ))
                }
                Incoming::Ended(_) => return Ok(None),
            }
        }
    }
}

fn describe(message: &Message) -> String {
    match message {
        Message::Text(text) => shorten(text.as_str(), 400),
        Message::Binary(bytes) => format!("binary message of {} bytes", bytes.len()),
        Message::Ping(_) => "ping".to_string(),
        Message::Pong(_) => "pong".to_string(),
        Message::Close(Some(frame)) => {
            format!("close {} `{}`", u16::from(frame.code), frame.reason)
        }
        Message::Close(None) => "close (no code)".to_string(),
        Message::Frame(_) => "raw frame".to_string(),
    }
}

/// A URL with its messaging token shortened: tokens are credentials and long.
fn short_url(url: &str) -> String {
    match url.rsplit_once('/') {
        Some((head, token)) if token.len() > 12 => format!("{head}/{}...", &token[..8]),
        _ => url.to_string(),
    }
}
