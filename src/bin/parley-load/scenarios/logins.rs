//! The `logins` scenario: what a storm of logins (argon2 on the server) costs messaging latency.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::traffic::{add_health, drain, drive, fleet_and_swarm, Pacer, Traffic};
use super::{check_server, round, Options, Report, LOGIN};
use crate::http_client::HttpClient;
use crate::setup::{self, Fleet, Target};
use crate::stats::Histogram;

/// `logins`: open-loop messaging at R/s, measured without and with logins at L/s.
///
/// Open loop rather than the closed `fanout` loop: a saturated closed loop's p99 is queueing,
/// which would hide an effect the size of the target (docs/BENCHMARKS.md, "Targets"); at a fixed
/// rate the difference is what the logins cost. The
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
