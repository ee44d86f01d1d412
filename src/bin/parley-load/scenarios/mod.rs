//! The scenarios: each sets up its clients, drives traffic through a [`Swarm`], and returns a
//! [`Report`] of what it measured. Latency is always send stamp (in the message's `data`) to
//! receipt, on this process's monotonic clock.

mod conversations;
mod history;
mod idle;
mod logins;
mod messaging;
mod slow_consumers;
mod sync;
mod sync_hog;
mod traffic;

use serde_json::{json, Value};

use crate::setup::{self, Endpoint, Target};
use crate::stats::{proc_sample, Latency, ProcSample};

pub use conversations::groups_list;
pub use history::history;
pub use idle::idle;
pub use logins::logins;
pub use messaging::{fanout, rate};
pub use slow_consumers::slow_consumers;
pub use sync::sync;
pub use sync_hog::sync_hog;

/// Handshakes in flight while opening clients.
const CONNECT_IN_FLIGHT: usize = 256;

#[derive(Debug, Clone)]
pub struct Options {
    pub target: Target,
    pub endpoint: Endpoint,
    pub server_pid: Option<u32>,
    pub clients: usize,
    pub group_size: usize,
    pub window: usize,
    pub duration: f64,
    pub warmup: f64,
    pub rate: f64,
    pub conns: usize,
    pub users: usize,
    pub hold: f64,
    pub events: usize,
    /// Groups the `sync-hog` user belongs to.
    pub hog_groups: usize,
    pub logins_per_sec: f64,
    pub data_bytes: usize,
    /// Every send carries an `id` (RPC 40's retry key).
    pub client_ids: bool,
    pub setup_threads: usize,
}

/// Named results in the order they are printed.
pub struct Report {
    pub scenario: &'static str,
    pub rows: Vec<(&'static str, Value)>,
}

impl Report {
    fn new(scenario: &'static str, options: &Options) -> Report {
        let target = match options.target {
            Target::Parley => "parley",
            Target::Relay => "relay",
        };
        Report {
            scenario,
            rows: vec![("target", json!(target))],
        }
    }

    fn add(&mut self, key: &'static str, value: impl Into<Value>) {
        self.rows.push((key, value.into()));
    }

    /// Adds a latency summary under `keys`: p50, p90, p99, p99.9, max (us), then the count.
    fn add_latency(&mut self, keys: [&'static str; 6], latency: Latency) {
        let values = [
            latency.p50_us,
            latency.p90_us,
            latency.p99_us,
            latency.p999_us,
            latency.max_us,
        ];
        for (key, value) in keys.iter().zip(values) {
            self.add(key, round(value));
        }
        self.add(keys[5], latency.samples);
    }
}

const DELIVERY: [&str; 6] = [
    "delivery_p50_us",
    "delivery_p90_us",
    "delivery_p99_us",
    "delivery_p999_us",
    "delivery_max_us",
    "delivery_samples",
];
const ACK: [&str; 6] = [
    "ack_p50_us",
    "ack_p90_us",
    "ack_p99_us",
    "ack_p999_us",
    "ack_max_us",
    "ack_samples",
];
const LOGIN: [&str; 6] = [
    "login_p50_us",
    "login_p90_us",
    "login_p99_us",
    "login_p999_us",
    "login_max_us",
    "login_samples",
];

/// CPU seconds as /proc counts them (clock ticks of 10 ms), without float noise in the output.
fn hundredths(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

fn round(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

fn sample(options: &Options) -> Option<ProcSample> {
    options.server_pid.and_then(proc_sample)
}

/// Two accounts in one group, for the scenarios that need parley's storage; `refusal` is the
/// error against a bare relay.
fn pair_on_parley(options: &Options, refusal: &str) -> Result<setup::Fleet, String> {
    if options.target == Target::Relay {
        return Err(refusal.into());
    }
    check_server(options)?;
    setup::build(
        options.target,
        &options.endpoint,
        2,
        2,
        options.setup_threads,
    )
}

fn check_server(options: &Options) -> Result<(), String> {
    match options.server_pid {
        Some(pid) if proc_sample(pid).is_none() => Err(format!(
            "--server-pid {pid}: no such process (or /proc unreadable)"
        )),
        _ => Ok(()),
    }
}
