//! The scenarios: each sets up its clients, drives traffic through a [`Swarm`], and returns a
//! [`Report`] of what it measured. Latency is always send stamp (in the message's `data`) to
//! receipt, on this process's monotonic clock.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::http_client::HttpClient;
use crate::setup::{self, Endpoint, Fleet, Target};
use crate::stats::{proc_sample, Histogram, Latency, ProcSample};
use crate::swarm::{
    after_key, data_stamp, event_seq, event_type, leading_number, now_ns, Replies, Swarm,
};

/// Handshakes in flight while opening clients.
const CONNECT_IN_FLIGHT: usize = 256;
/// How long to wait for the last acks once sending stops.
const DRAIN: Duration = Duration::from_secs(3);

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

/// Per-client traffic state and the counters every messaging scenario shares.
struct Traffic {
    group_ids: Vec<String>,
    client_group: Vec<usize>,
    /// Send stamps awaiting their ack, per client (acks come back in send order).
    unacked: Vec<VecDeque<u64>>,
    padding: String,
    /// Sends carry an `id`.
    client_ids: bool,
    /// Closed loop: every ack sends the next message.
    closed_loop: bool,
    sending: bool,
    sends: u64,
    deliveries: u64,
    acks: u64,
    errors: u64,
    first_error: Option<String>,
    delivery: Histogram,
    ack: Histogram,
}

impl Traffic {
    fn new(fleet: &Fleet, clients: usize, options: &Options, closed_loop: bool) -> Traffic {
        // The stamp takes up to 20 digits; the rest of `data` is padding.
        let padding = " ".to_string() + &"x".repeat(options.data_bytes.saturating_sub(21));
        Traffic {
            group_ids: fleet.groups.clone(),
            client_group: (0..clients).map(|i| fleet.group_of(i)).collect(),
            unacked: vec![VecDeque::new(); clients],
            padding,
            client_ids: options.client_ids,
            closed_loop,
            sending: true,
            sends: 0,
            deliveries: 0,
            acks: 0,
            errors: 0,
            first_error: None,
            delivery: Histogram::default(),
            ack: Histogram::default(),
        }
    }

    /// A send (RPC 40) from `client`, stamped now; its stamp joins the client's unacked queue.
    fn next_send(&mut self, client: usize) -> String {
        let stamp = now_ns();
        self.unacked[client].push_back(stamp);
        self.sends += 1;
        let group_id = &self.group_ids[self.client_group[client]];
        if self.client_ids {
            // Unique per run: the client and the run's send count.
            let id = format!("c{client}-{}", self.sends);
            return format!(
                r#"{{"method":40,"id":"{id}","body":{{"group_id":"{group_id}","data":"{stamp}{}"}}}}"#,
                self.padding
            );
        }
        format!(
            r#"{{"method":40,"body":{{"group_id":"{group_id}","data":"{stamp}{}"}}}}"#,
            self.padding
        )
    }

    fn on_message(&mut self, client: usize, text: &str, received_at: u64, replies: &mut Replies) {
        match event_type(text) {
            Some(20) => {
                self.deliveries += 1;
                if let Some(stamp) = data_stamp(text) {
                    self.delivery.record(received_at.saturating_sub(stamp));
                }
            }
            Some(21) => {
                self.acks += 1;
                if let Some(stamp) = self.unacked[client].pop_front() {
                    self.ack.record(received_at.saturating_sub(stamp));
                }
                if self.closed_loop && self.sending {
                    let send = self.next_send(client);
                    replies.push(send);
                }
            }
            Some(90) => {
                self.errors += 1;
                self.first_error.get_or_insert_with(|| text.to_string());
            }
            _ => {}
        }
    }

    fn reset_latencies(&mut self) {
        self.delivery.clear();
        self.ack.clear();
    }

    fn unacked_total(&self) -> usize {
        self.unacked.iter().map(VecDeque::len).sum()
    }
}

/// Open-loop pacing: sends due at `rate` per second since `start`, round-robin over clients.
struct Pacer {
    rate: f64,
    start: Instant,
    sent: u64,
    next_client: usize,
}

impl Pacer {
    fn new(rate: f64) -> Pacer {
        Pacer {
            rate,
            start: Instant::now(),
            sent: 0,
            next_client: 0,
        }
    }

    /// Sends what is due now; returns how long to wait for the next one. Each message is
    /// stamped when it is actually sent, so a send made late (epoll waits whole milliseconds)
    /// shifts the schedule a little but never adds to a measured latency.
    fn pace(&mut self, swarm: &mut Swarm, traffic: &mut Traffic) -> Duration {
        let elapsed = self.start.elapsed().as_secs_f64();
        let due = (elapsed * self.rate) as u64;
        while self.sent < due {
            let client = self.next_client;
            self.next_client = (self.next_client + 1) % swarm.len();
            let send = traffic.next_send(client);
            swarm.send(client, send);
            self.sent += 1;
        }
        let next_at = (self.sent + 1) as f64 / self.rate;
        Duration::from_secs_f64((next_at - elapsed).max(0.0))
    }
}

/// Runs the swarm for `seconds`, pacing when `pacer` is given.
fn drive(
    swarm: &mut Swarm,
    traffic: &mut Traffic,
    mut pacer: Option<&mut Pacer>,
    seconds: f64,
) -> Result<(), String> {
    let until = Instant::now() + Duration::from_secs_f64(seconds);
    while Instant::now() < until {
        let timeout = match pacer.as_deref_mut() {
            Some(pacer) => pacer.pace(swarm, traffic),
            None => Duration::from_millis(10),
        };
        let timeout = timeout.min(until.saturating_duration_since(Instant::now()));
        swarm.tick(timeout, &mut |client, text, at, replies| {
            traffic.on_message(client, text, at, replies)
        })?;
    }
    Ok(())
}

/// Stops sending and waits (bounded) for the outstanding acks.
fn drain(swarm: &mut Swarm, traffic: &mut Traffic) -> Result<(), String> {
    traffic.sending = false;
    let until = Instant::now() + DRAIN;
    while traffic.unacked_total() > 0 && Instant::now() < until {
        swarm.tick(
            Duration::from_millis(10),
            &mut |client, text, at, replies| traffic.on_message(client, text, at, replies),
        )?;
    }
    Ok(())
}

fn sample(options: &Options) -> Option<ProcSample> {
    options.server_pid.and_then(proc_sample)
}

fn check_server(options: &Options) -> Result<(), String> {
    match options.server_pid {
        Some(pid) if proc_sample(pid).is_none() => Err(format!(
            "--server-pid {pid}: no such process (or /proc unreadable)"
        )),
        _ => Ok(()),
    }
}

fn fleet_and_swarm(options: &Options) -> Result<(Fleet, Swarm), String> {
    let fleet = setup::build(
        options.target,
        &options.endpoint,
        options.clients,
        options.group_size,
        options.setup_threads,
    )?;
    let paths = fleet.accounts.iter().map(|a| a.ws_path.clone()).collect();
    let swarm = Swarm::open(&options.endpoint, paths, CONNECT_IN_FLIGHT)?;
    Ok((fleet, swarm))
}

fn add_health(report: &mut Report, swarm: &Swarm, traffic: &Traffic) {
    report.add("errors", traffic.errors);
    report.add("closed", swarm.closed as u64);
    if let Some(error) = &traffic.first_error {
        report.add("first_error", error.clone());
    }
    if let Some(reason) = swarm.first_close_reason() {
        report.add("first_close", reason.to_string());
    }
}

/// `fanout`: closed loop, W sends outstanding per client, groups of G.
pub fn fanout(options: &Options) -> Result<Report, String> {
    check_server(options)?;
    let (fleet, mut swarm) = fleet_and_swarm(options)?;
    let mut traffic = Traffic::new(&fleet, swarm.len(), options, true);
    for client in 0..swarm.len() {
        for _ in 0..options.window {
            let send = traffic.next_send(client);
            swarm.send(client, send);
        }
    }
    eprintln!(
        "parley-load: fanout: warming up {:.0} s, then measuring {:.0} s",
        options.warmup, options.duration
    );
    drive(&mut swarm, &mut traffic, None, options.warmup)?;
    traffic.reset_latencies();
    let (sends0, deliveries0, acks0) = (traffic.sends, traffic.deliveries, traffic.acks);
    let before = sample(options);
    let started = Instant::now();
    drive(&mut swarm, &mut traffic, None, options.duration)?;
    let elapsed = started.elapsed().as_secs_f64();
    let after = sample(options);
    let (sends, deliveries, acks) = (
        traffic.sends - sends0,
        traffic.deliveries - deliveries0,
        traffic.acks - acks0,
    );
    let (delivery, ack) = (traffic.delivery.summary(), traffic.ack.summary());
    drain(&mut swarm, &mut traffic)?;

    let mut report = Report::new("fanout", options);
    report.add("clients", swarm.len() as u64);
    report.add("group_size", options.group_size as u64);
    report.add("window", options.window as u64);
    report.add("data_bytes", options.data_bytes as u64);
    report.add("client_ids", u64::from(options.client_ids));
    report.add("duration_s", round(elapsed));
    report.add("sends_per_s", (sends as f64 / elapsed).round());
    report.add("deliveries_per_s", (deliveries as f64 / elapsed).round());
    report.add("acks_per_s", (acks as f64 / elapsed).round());
    report.add_latency(DELIVERY, delivery);
    report.add_latency(ACK, ack);
    add_server_cost(&mut report, before, after, deliveries);
    add_health(&mut report, &swarm, &traffic);
    Ok(report)
}

fn add_server_cost(
    report: &mut Report,
    before: Option<ProcSample>,
    after: Option<ProcSample>,
    deliveries: u64,
) {
    if let (Some(before), Some(after)) = (before, after) {
        let cpu = after.cpu_secs - before.cpu_secs;
        report.add("server_cpu_s", hundredths(cpu));
        if cpu > 0.0 {
            report.add(
                "deliveries_per_server_cpu_s",
                (deliveries as f64 / cpu).round(),
            );
        }
        report.add("server_rss_kib", after.rss_kib);
    }
}

/// `rate`: open loop at R sends per second in total, spread round-robin over the clients.
pub fn rate(options: &Options) -> Result<Report, String> {
    check_server(options)?;
    let (fleet, mut swarm) = fleet_and_swarm(options)?;
    let mut traffic = Traffic::new(&fleet, swarm.len(), options, false);
    eprintln!(
        "parley-load: rate: {:.0} sends/s, warming up {:.0} s, then measuring {:.0} s",
        options.rate, options.warmup, options.duration
    );
    let mut pacer = Pacer::new(options.rate);
    drive(&mut swarm, &mut traffic, Some(&mut pacer), options.warmup)?;
    traffic.reset_latencies();
    let (sends0, deliveries0) = (traffic.sends, traffic.deliveries);
    let before = sample(options);
    let started = Instant::now();
    drive(&mut swarm, &mut traffic, Some(&mut pacer), options.duration)?;
    let elapsed = started.elapsed().as_secs_f64();
    let after = sample(options);
    let (sends, deliveries) = (traffic.sends - sends0, traffic.deliveries - deliveries0);
    let (delivery, ack) = (traffic.delivery.summary(), traffic.ack.summary());
    drain(&mut swarm, &mut traffic)?;

    let mut report = Report::new("rate", options);
    report.add("clients", swarm.len() as u64);
    report.add("group_size", options.group_size as u64);
    report.add("rate", options.rate);
    report.add("data_bytes", options.data_bytes as u64);
    report.add("client_ids", u64::from(options.client_ids));
    report.add("duration_s", round(elapsed));
    report.add("sends_per_s", (sends as f64 / elapsed).round());
    report.add("deliveries_per_s", (deliveries as f64 / elapsed).round());
    report.add_latency(DELIVERY, delivery);
    report.add_latency(ACK, ack);
    add_server_cost(&mut report, before, after, deliveries);
    add_health(&mut report, &swarm, &traffic);
    Ok(report)
}

/// `idle`: N authenticated WebSockets held open; the server's RSS per connection.
pub fn idle(options: &Options) -> Result<Report, String> {
    check_server(options)?;
    let users = options.users.clamp(1, options.conns.max(1));
    let fleet = setup::build(
        options.target,
        &options.endpoint,
        users,
        users,
        options.setup_threads,
    )?;
    // Settle before the baseline, so the setup's garbage is not counted per connection.
    std::thread::sleep(Duration::from_secs(1));
    let before = sample(options);
    let paths = (0..options.conns)
        .map(|i| fleet.accounts[i % users].ws_path.clone())
        .collect();
    let started = Instant::now();
    let mut swarm = Swarm::open(&options.endpoint, paths, CONNECT_IN_FLIGHT)?;
    let connect_s = started.elapsed().as_secs_f64();
    eprintln!(
        "parley-load: idle: holding {} connections for {:.0} s",
        swarm.len(),
        options.hold
    );
    let mut traffic = Traffic::new(&fleet, 0, options, false);
    let until = Instant::now() + Duration::from_secs_f64(options.hold);
    while Instant::now() < until {
        swarm.tick(
            Duration::from_millis(50),
            &mut |client, text, at, replies| traffic.on_message(client, text, at, replies),
        )?;
    }
    let after = sample(options);

    let mut report = Report::new("idle", options);
    report.add("conns", swarm.len() as u64);
    report.add("users", users as u64);
    report.add("connect_s", round(connect_s));
    report.add("hold_s", options.hold);
    report.add("held", (swarm.len() - swarm.closed) as u64);
    if let (Some(before), Some(after)) = (before, after) {
        report.add("server_rss_before_kib", before.rss_kib);
        report.add("server_rss_after_kib", after.rss_kib);
        let grown = after.rss_kib.saturating_sub(before.rss_kib) as f64 * 1024.0;
        report.add(
            "server_rss_per_conn_bytes",
            (grown / swarm.len().max(1) as f64).round(),
        );
    }
    add_health(&mut report, &swarm, &traffic);
    Ok(report)
}

/// `sync`: one user misses E events, then reconnects and pages through them.
pub fn sync(options: &Options) -> Result<Report, String> {
    if options.target == Target::Relay {
        return Err("sync needs storage: the reference relays have none".into());
    }
    check_server(options)?;
    let fleet = setup::build(
        options.target,
        &options.endpoint,
        2,
        2,
        options.setup_threads,
    )?;
    // Account 1 writes while account 0 is away.
    let mut writer = Swarm::open(
        &options.endpoint,
        vec![fleet.accounts[1].ws_path.clone()],
        1,
    )?;
    let mut traffic = Traffic::new(&fleet, 2, options, true);
    let target = options.events as u64;
    for _ in 0..options.window.max(1) * 16 {
        let send = traffic.next_send(1);
        writer.send(0, send);
    }
    let fill_started = Instant::now();
    let mut last_print = Instant::now();
    while traffic.acks < target.max(traffic.sends) {
        traffic.sending = traffic.sends < target;
        writer.tick(Duration::from_millis(10), &mut |_, text, at, replies| {
            traffic.on_message(1, text, at, replies)
        })?;
        if writer.closed > 0 || traffic.errors > 0 {
            return Err(format!(
                "the writer failed: {}",
                writer
                    .first_close_reason()
                    .or(traffic.first_error.as_deref())
                    .unwrap_or("")
            ));
        }
        if last_print.elapsed() >= Duration::from_secs(1) {
            last_print = Instant::now();
            eprintln!("parley-load: sync: stored {}/{target} events", traffic.acks);
        }
    }
    let fill_s = fill_started.elapsed().as_secs_f64();
    drop(writer);

    let mut reader = Swarm::open(
        &options.endpoint,
        vec![fleet.accounts[0].ws_path.clone()],
        1,
    )?;
    let started = Instant::now();
    let before = sample(options);
    reader.send(0, r#"{"method":20,"seq":0,"limit":1000}"#.to_string());
    let mut replayed = 0u64;
    let mut repeated = 0u64;
    let mut last_seq = 0u64;
    let mut pages = 0u64;
    let mut done = false;
    let deadline = Instant::now() + Duration::from_secs(300);
    while !done {
        if Instant::now() > deadline {
            return Err(format!("sync: only {replayed} events replayed in 300 s"));
        }
        let mut next_cursor: Option<u64> = None;
        reader.tick(Duration::from_millis(10), &mut |_, text, _, _| {
            if event_type(text) == Some(29) {
                pages += 1;
                if text.contains("\"more\":true") {
                    // Event 29 is transient: its only `seq` is the body's, the page's last.
                    next_cursor = after_key(text, "\"seq\":").and_then(leading_number);
                } else {
                    done = true;
                }
            } else {
                replayed += 1;
                // Stored events come oldest first, each with its own seq: a repeated,
                // decreasing or missing seq is a bug (timestamps may be shared).
                let seq = event_seq(text).unwrap_or(0);
                if seq <= last_seq {
                    repeated += 1;
                }
                last_seq = last_seq.max(seq);
            }
        })?;
        if let Some(cursor) = next_cursor {
            reader.send(0, format!(r#"{{"method":20,"seq":{cursor},"limit":1000}}"#));
        }
        if reader.closed > 0 {
            return Err(format!(
                "the reader was closed: {}",
                reader.first_close_reason().unwrap_or("")
            ));
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let after = sample(options);

    let mut report = Report::new("sync", options);
    report.add("events_stored", traffic.sends);
    report.add("client_ids", u64::from(options.client_ids));
    report.add("fill_s", round(fill_s));
    report.add("replayed", replayed);
    report.add("repeated_or_out_of_order", repeated);
    report.add("pages", pages);
    report.add("replay_s", (elapsed * 1000.0).round() / 1000.0);
    report.add("events_per_s", (replayed as f64 / elapsed).round());
    if let (Some(before), Some(after)) = (before, after) {
        report.add("server_cpu_s", hundredths(after.cpu_secs - before.cpu_secs));
    }
    Ok(report)
}

/// `logins`: open-loop messaging at R/s, measured without and with logins at L/s.
///
/// Open loop rather than the closed `fanout` loop: a saturated closed loop's p99 is queueing,
/// which would hide a 50 us effect; at a fixed rate the difference is what the logins cost. The
/// quiet and stormy halves alternate in [`LOGIN_PHASES`] rounds, so that a passing disturbance
/// on a shared machine does not land on one side only.
pub fn logins(options: &Options) -> Result<Report, String> {
    if options.target == Target::Relay {
        return Err("logins needs the REST API: the reference relays have none".into());
    }
    check_server(options)?;
    let (fleet, mut swarm) = fleet_and_swarm(options)?;
    let mut traffic = Traffic::new(&fleet, swarm.len(), options, false);
    let mut pacer = Pacer::new(options.rate);
    eprintln!(
        "parley-load: logins: {:.0} sends/s, {LOGIN_PHASES} rounds of {:.1} s without and {:.1} s with {:.0} logins/s",
        options.rate,
        options.duration / LOGIN_PHASES as f64,
        options.duration / LOGIN_PHASES as f64,
        options.logins_per_sec
    );
    drive(&mut swarm, &mut traffic, Some(&mut pacer), options.warmup)?;
    let phase = options.duration / LOGIN_PHASES as f64;
    let (mut quiet, mut quiet_ack) = (Histogram::default(), Histogram::default());
    let (mut stormy, mut stormy_ack) = (Histogram::default(), Histogram::default());
    let mut login_latency = Histogram::default();
    let (mut logged_in, mut login_errors) = (0, 0);
    for _ in 0..LOGIN_PHASES {
        traffic.reset_latencies();
        drive(&mut swarm, &mut traffic, Some(&mut pacer), phase)?;
        quiet.merge(&traffic.delivery);
        quiet_ack.merge(&traffic.ack);

        let storm = LoginStorm::start(options, &fleet);
        traffic.reset_latencies();
        drive(&mut swarm, &mut traffic, Some(&mut pacer), phase)?;
        // Logins still in flight belong to this half: keep the traffic going until they end.
        storm.signal_stop();
        while storm.running() {
            drive(&mut swarm, &mut traffic, Some(&mut pacer), 0.01)?;
        }
        stormy.merge(&traffic.delivery);
        stormy_ack.merge(&traffic.ack);
        let (count, latency, errors) = storm.join();
        logged_in += count;
        login_errors += errors;
        login_latency.merge(&latency);
    }
    drain(&mut swarm, &mut traffic)?;
    let (quiet, quiet_ack) = (quiet.summary(), quiet_ack.summary());
    let (stormy, stormy_ack) = (stormy.summary(), stormy_ack.summary());

    let mut report = Report::new("logins", options);
    report.add("clients", swarm.len() as u64);
    report.add("rate", options.rate);
    report.add("logins_per_s_asked", options.logins_per_sec);
    report.add("client_ids", u64::from(options.client_ids));
    report.add("logins_per_s", round(logged_in as f64 / options.duration));
    report.add("login_errors", login_errors);
    report.add_latency(LOGIN, login_latency.summary());
    for (key, value) in [
        ("quiet_p50_us", quiet.p50_us),
        ("quiet_p99_us", quiet.p99_us),
        ("quiet_p999_us", quiet.p999_us),
        ("quiet_ack_p99_us", quiet_ack.p99_us),
        ("storm_p50_us", stormy.p50_us),
        ("storm_p99_us", stormy.p99_us),
        ("storm_p999_us", stormy.p999_us),
        ("storm_ack_p99_us", stormy_ack.p99_us),
        ("p99_increase_us", stormy.p99_us - quiet.p99_us),
    ] {
        report.add(key, round(value));
    }
    add_health(&mut report, &swarm, &traffic);
    Ok(report)
}

/// Rounds of quiet and login-storm traffic in the `logins` scenario.
const LOGIN_PHASES: usize = 4;

/// Logins at a steady rate from a few threads, each with its own keep-alive connection.
struct LoginStorm {
    stop: Arc<AtomicBool>,
    /// Threads still logging in.
    active: Arc<AtomicU64>,
    threads: Vec<std::thread::JoinHandle<()>>,
    done: Arc<AtomicU64>,
    errors: Arc<AtomicU64>,
    latency: Arc<Mutex<Histogram>>,
}

impl LoginStorm {
    fn start(options: &Options, fleet: &Fleet) -> LoginStorm {
        const THREADS: usize = 4;
        let stop = Arc::new(AtomicBool::new(false));
        let active = Arc::new(AtomicU64::new(THREADS as u64));
        let done = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(AtomicU64::new(0));
        let latency = Arc::new(Mutex::new(Histogram::default()));
        let per_thread = options.logins_per_sec / THREADS as f64;
        let threads = (0..THREADS)
            .map(|t| {
                let stop = stop.clone();
                let active = active.clone();
                let done = done.clone();
                let errors = errors.clone();
                let latency = latency.clone();
                let endpoint = options.endpoint.clone();
                let accounts = fleet.accounts.clone();
                std::thread::spawn(move || {
                    let mut http = HttpClient::new(endpoint.addr, &endpoint.host);
                    let start = Instant::now();
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let due = start + Duration::from_secs_f64(n as f64 / per_thread);
                        if let Some(wait) = due.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait.min(Duration::from_millis(50)));
                            continue;
                        }
                        let account = &accounts[(n as usize * THREADS + t) % accounts.len()];
                        let body = format!(
                            r#"{{"username":"{}","password":"{}"}}"#,
                            account.username, account.password
                        );
                        let sent = Instant::now();
                        match setup::call(&mut http, "POST", "/login", None, &body, 200) {
                            Ok(_) => {
                                latency
                                    .lock()
                                    .expect("no panics hold it")
                                    .record(sent.elapsed().as_nanos() as u64);
                                done.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(_) => {
                                errors.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        n += 1;
                    }
                    active.fetch_sub(1, Ordering::Relaxed);
                })
            })
            .collect();
        LoginStorm {
            stop,
            active,
            threads,
            done,
            errors,
            latency,
        }
    }

    /// Asks the threads to stop after the login each is doing.
    fn signal_stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    fn running(&self) -> bool {
        self.active.load(Ordering::Relaxed) > 0
    }

    /// Logins done, their latencies, and failures.
    fn join(self) -> (u64, Histogram, u64) {
        self.signal_stop();
        for thread in self.threads {
            let _ = thread.join();
        }
        let latency = self.latency.lock().expect("no panics hold it").clone();
        (
            self.done.load(Ordering::Relaxed),
            latency,
            self.errors.load(Ordering::Relaxed),
        )
    }
}
