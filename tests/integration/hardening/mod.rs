//! Hardening (issue #4): every limit, the HTTP framing rules, slow and hostile clients, the
//! authorization matrix, authentication, crash safety under `kill -9` and graceful shutdown,
//! each proved against the real binary over raw TCP or WebSocket.
//!
//! - `limits`: a table of bad inputs over raw TCP, each with its exact answer, then a normal
//!   request that must succeed; WebSocket size limits; connection caps; `accept` failing (EMFILE).
//! - `framing`: request smuggling shapes and pipelining.
//! - `slow`: slowloris, slow bodies, slow readers, and the slow WebSocket consumer.
//! - `authz`: who may send, type, mark and sync what; the join/leave rules.
//! - `authn`: tokens, secrets, rate limits, password caps, Origin, and logs without secrets.
//! - `crash`: SIGKILL at seeded random moments (some during start-up) under load with client ids.
//! - `shutdown`: SIGTERM with every kind of connection open.
//! - `disk_full`: the data directory on a small tmpfs filled up, then freed (issue #18).
//! - `metrics`: refusals and drops show up in `GET /metrics`.
//! - `proxies`: `X-Forwarded-For`/`-Proto` believed only from `--trusted-proxies`.
//! - `integrity`: a store damaged on disk (flipped byte, truncation, garbage, lost data file)
//!   is refused at start, or lost nothing; `--accept-data-loss`.
//! - `budget`: the global budget for queued output; never-readers shed, readers served.
//! - `backup`: `parley check` and `parley backup` on real directories, restore over a WebSocket.
//! - `membership_history`: old memberships cost a sync nothing; members keep their order.

mod authn;
mod authz;
mod backup;
mod budget;
mod crash;
mod disk_full;
mod framing;
mod integrity;
mod limits;
mod members;
mod membership_history;
mod metrics;
mod process;
mod proxies;
mod shutdown;
mod slow;

use std::net::SocketAddr;

use crate::support::Http;

/// The value of one sample line of `GET /metrics` (`name{labels}` exactly as rendered), or 0 when
/// the server has not rendered it yet (a counter that never moved).
pub fn metric(addr: SocketAddr, sample: &str) -> u64 {
    metric_on(&mut Http::connect(addr), sample)
}

/// Like `metric`, on an open connection (when a new one could be refused by a cap).
pub fn metric_on(http: &mut Http, sample: &str) -> u64 {
    let answer = http.get("/metrics");
    assert_eq!(answer.status, 200, "GET /metrics");
    let text = String::from_utf8(answer.body).expect("metrics are UTF-8");
    text.lines()
        .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' '))
        .map_or(0, |value| {
            value
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("metric {sample}: {value:?}"))
        })
}
