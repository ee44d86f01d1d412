//! The HTTP phase of a connection: reading requests into its buffer, handing them out one at a
//! time in order, waiting for a password hash, and the upgrade to a WebSocket.

use std::io::{self, Read};
use std::time::Instant;

use tungstenite::protocol::{Role, WebSocketConfig, WebSocketContext};
use uuid::Uuid;

use super::{Connection, HttpState, Life, Phase, Turn, WsState};
use super::{READ_BUDGET_BYTES, READ_BUDGET_MESSAGES};
use crate::config::Limits;
use crate::error::ErrorCode;
use crate::http::{self, Parsed, Request, Response};

/// What a read of an HTTP connection got.
#[derive(Debug, PartialEq, Eq)]
pub enum HttpRead {
    /// Nothing read: a hash runs, the connection is closing, or it is no longer HTTP.
    Idle,
    /// What the source had is in the buffer: serve it ([`Connection::next_request`]), then
    /// [`Connection::after_http_read`]. `eof`: the peer's end of stream; `budget_left`: false
    /// when the read stopped at [`READ_BUDGET_BYTES`].
    Read { eof: bool, budget_left: bool },
    /// The source failed: kill.
    Failed,
}

/// The next thing to do with an HTTP connection's buffer.
#[derive(Debug)]
pub enum HttpNext {
    /// A whole request, taken off the buffer: handle it, then tell the connection how it went
    /// (nothing for a kept-alive answer; [`Connection::close_after_write`],
    /// [`Connection::await_hash`] or [`Connection::upgrade`]).
    Request(Box<Request>),
    /// A framing error: send `answer` (the connection closes after it).
    Reject { code: ErrorCode, answer: Vec<u8> },
    /// Nothing more this turn: a partial request, an empty buffer, a hash running, closing.
    Stop,
    /// The turn's budget of requests is spent: read again next tick.
    Yield,
    /// The answers queued reach the cap: the rest of the pipeline waits until they drain (the
    /// write after them asks for the next read). `flush`: nothing is in the write buffer yet,
    /// so flush it once this tick's answers arrive.
    BackedUp { flush: bool },
}

/// What follows an HTTP read and the requests it served.
#[derive(Debug, PartialEq, Eq)]
pub enum AfterHttpRead {
    Nothing,
    /// The budget ran out with more to read: read again next tick.
    ReadAgain,
    /// The peer ended its stream: flush (the connection closes after its answers).
    Flush,
}

impl Connection {
    /// Reads what `source` has (to `WouldBlock`, the end of stream, or the byte budget) into
    /// the request buffer.
    pub fn read_http(&mut self, source: &mut impl Read, now: Instant) -> HttpRead {
        let Phase::Http(http) = &mut self.phase else {
            return HttpRead::Idle;
        };
        if self.life != Life::Open {
            return HttpRead::Idle;
        }
        let mut budget_left = true;
        let mut eof = false;
        let had_bytes = !http.inbuf.is_empty();
        loop {
            if http.inbuf.len() >= READ_BUDGET_BYTES {
                budget_left = false;
                break;
            }
            let start = http.inbuf.len();
            http.inbuf.resize(start + 4096, 0);
            let result = source.read(&mut http.inbuf[start..]);
            http.inbuf.truncate(start + *result.as_ref().unwrap_or(&0));
            match result {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return HttpRead::Failed,
            }
        }
        if !had_bytes && !http.inbuf.is_empty() {
            http.request_started = Some(now);
        }
        HttpRead::Read { eof, budget_left }
    }

    /// The next complete request at the front of the buffer, in order, unless the turn's budget
    /// is spent or the answers back up. `produced`: bytes this connection's requests put in the
    /// outbox during this turn (answers not yet in the write buffer).
    pub fn next_request(
        &mut self,
        turn: &mut Turn,
        produced: usize,
        limits: &Limits,
        now: Instant,
    ) -> HttpNext {
        if turn.handled == READ_BUDGET_MESSAGES {
            // A long pipeline yields to the other connections; the rest comes next tick.
            return HttpNext::Yield;
        }
        let Phase::Http(http) = &mut self.phase else {
            return HttpNext::Stop;
        };
        if self.life != Life::Open || http.inbuf.is_empty() {
            return HttpNext::Stop;
        }
        // Answers not yet written plus those produced this turn: past the cap, the rest of the
        // pipeline waits until they drain.
        if self.out.len() + self.held_bytes + produced >= limits.max_outbox_bytes {
            return HttpNext::BackedUp {
                flush: self.out.is_empty(),
            };
        }
        match http::parse(&http.inbuf, limits) {
            Ok(Parsed::Partial) => HttpNext::Stop,
            Ok(Parsed::Complete(request, used)) => {
                http.inbuf.drain(..used);
                http.request_started = (!http.inbuf.is_empty()).then_some(now);
                self.last_active = now;
                turn.handled += 1;
                HttpNext::Request(request)
            }
            Err(framing) => {
                let method = http::leading_method(&http.inbuf);
                let answer = Response::error(&framing.0).encode_for(method, false);
                http.inbuf.clear();
                self.close_after_write();
                HttpNext::Reject {
                    code: framing.0.code,
                    answer,
                }
            }
        }
    }

    /// After an HTTP read and serving what it brought.
    pub fn after_http_read(&mut self, read: &HttpRead, limits: &Limits) -> AfterHttpRead {
        let HttpRead::Read { eof, budget_left } = *read else {
            return AfterHttpRead::Nothing;
        };
        let answers_backed_up = self.out.len() + self.held_bytes >= limits.max_outbox_bytes;
        if eof {
            self.close_after_write();
            AfterHttpRead::Flush
        } else if !budget_left && !answers_backed_up {
            // When the answers are backed up, their write resumes reading once they drain;
            // asking for another read now would spin the loop on a client that does not read.
            AfterHttpRead::ReadAgain
        } else {
            AfterHttpRead::Nothing
        }
    }

    /// The request just handed out waits for a password hash; the ones behind it wait too.
    pub fn await_hash(&mut self) {
        if let Phase::Http(http) = &mut self.phase {
            let http = std::mem::replace(http, HttpState::empty());
            self.phase = Phase::AwaitingHash(http);
        }
    }

    /// The hash is done and its answer in the outbox; true when the connection should be read
    /// again (kept alive), else it closes after the answer.
    pub fn hash_done(&mut self, keep_alive: bool, now: Instant) -> bool {
        self.last_active = now;
        if let Phase::AwaitingHash(http) = &mut self.phase {
            let http = std::mem::replace(http, HttpState::empty());
            self.phase = Phase::Http(http);
        }
        if !keep_alive {
            self.close_after_write();
        }
        keep_alive
    }

    /// Becomes a WebSocket (the 101 is in the outbox), handing tungstenite the bytes already
    /// read past the request; true when there were some (read again next tick: no readiness
    /// event will announce them).
    pub fn upgrade(&mut self, user: Option<Uuid>, config: &WebSocketConfig, now: Instant) -> bool {
        let Phase::Http(http) = &mut self.phase else {
            return false;
        };
        // An exact-size copy: handing over the HTTP buffer itself would make its capacity (up
        // to 8 KiB) tungstenite's read buffer for the connection's whole life.
        let leftover = http.inbuf.to_vec();
        let has_leftover = !leftover.is_empty();
        let ctx = WebSocketContext::from_partially_read(leftover, Role::Server, Some(*config));
        self.phase = Phase::WebSocket(Box::new(WsState {
            ctx,
            user,
            last_ping: now,
        }));
        has_leftover
    }
}

impl HttpState {
    fn empty() -> HttpState {
        HttpState {
            inbuf: Vec::new(),
            request_started: None,
        }
    }
}
