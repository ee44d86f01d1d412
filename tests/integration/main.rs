//! Black-box integration tests for parley.
//!
//! Every test starts its own `parley` process on `127.0.0.1:0` with a fresh data directory
//! (see `support::Server`) and talks to it only through its public protocol: HTTP/1.1 over a
//! hand-written client and WebSocket through tungstenite. Nothing here sleeps a fixed time to
//! synchronise: a test waits for an expected event with a deadline, and proves that an event did
//! *not* arrive with a round-trip that must come after it (`Ws::barrier`).
//!
//! Modules, in the order of the user's walkthrough:
//! - `walkthrough`: the seed walkthrough end to end, and its history replayed through sync.
//! - `http`: HTTP framing, statuses, keep-alive, pipelining, limits.
//! - `accounts`: register, login, tokens, sessions.
//! - `groups`: group creation and the join/leave rules.
//! - `groups_owner`: the owner, its handover (event 74) and renames (`PUT /groups/{id}`).
//! - `messaging`: sends, client ids, idempotency, receipts, typing, WebSocket errors.
//! - `devices`: several sessions (and connections) of one user.
//! - `sync`: method 20, cursors, paging, and who may see what.
//! - `durability`: restarts and `kill -9`.
//! - `lifecycle`: pings, dropping silent connections, SIGTERM.
//! - `upgrade`: a data directory of the release before `seq` upgrades in place, nothing lost.
//! - `users`: login's `user_id`, the caller's account, lookups, password change, logout.
//! - `sessions`: listing and revoking devices, `POST /logout/all`, the sessions cap.
//! - `admin`: the operator's admin API.
//! - `edits`: editing and deleting messages (methods 44/45, events 25/26).
//! - `history`: a group's history pages (issue #20).
//! - `presence`: event 50 and the lookups' `online`/`last_seen` (issue #20).
//! - `conversations`: the group list and view, read markers and unread counts (issue #20).

mod support;

mod accounts;
mod admin;
mod conversations;
mod devices;
mod durability;
mod edits;
mod groups;
mod groups_owner;
mod hardening;
mod history;
mod http;
mod lifecycle;
mod messaging;
mod presence;
mod sessions;
mod sync;
mod upgrade;
mod users;
mod walkthrough;
