//! The `sync-hog` scenario: what one user who belongs to many groups and pipelines syncs costs
//! everyone else's messaging latency (issue #18: "another client's p99 while one user syncs
//! across 20,000 groups").

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parley_client::ws::Session;
use tungstenite::Message;

use super::traffic::{add_health, drain, drive, fleet_and_swarm, Pacer, Traffic};
use super::{check_server, round, Options, Report};
use crate::http_client::HttpClient;
use crate::setup::{self, Target};
use crate::stats::Histogram;

/// Syncs the hog keeps outstanding (the issue's trial pipelined 64).
const HOG_WINDOW: usize = 64;

/// Rounds of quiet and hogged traffic, alternating as in `logins`.
const HOG_PHASES: usize = 4;

/// Traffic driven but not counted after each hogged half.
const SETTLE_SECONDS: f64 = 0.5;

/// `sync-hog`: open-loop messaging at R/s among C clients, measured without and with one more
/// user, a member of `--hog-groups` groups, keeping [`HOG_WINDOW`] syncs of one event each in
/// flight (alternately from the start of their history and from past its end, the two costly
/// cases: a page that must find the oldest event and an empty page that must find the newest).
pub fn sync_hog(options: &Options) -> Result<Report, String> {
    if options.target == Target::Relay {
        return Err("sync-hog needs groups and storage: the reference relays have none".into());
    }
    check_server(options)?;
    let hog_ws = hog_in_groups(options)?;
    let (fleet, mut swarm) = fleet_and_swarm(options)?;
    let mut traffic = Traffic::new(&fleet, swarm.len(), options, false);
    let mut pacer = Pacer::new(options.rate);
    eprintln!(
        "parley-load: sync-hog: {:.0} sends/s, {HOG_PHASES} rounds of {:.1} s without and with \
         the hog ({} groups, {HOG_WINDOW} syncs in flight)",
        options.rate,
        options.duration / HOG_PHASES as f64,
        options.hog_groups
    );
    drive(&mut swarm, &mut traffic, Some(&mut pacer), options.warmup)?;
    let phase = options.duration / HOG_PHASES as f64;
    let (mut quiet, mut hogged) = (Histogram::default(), Histogram::default());
    let (mut syncs, mut hog_seconds) = (0, 0.0);
    for _ in 0..HOG_PHASES {
        traffic.reset_latencies();
        drive(&mut swarm, &mut traffic, Some(&mut pacer), phase)?;
        quiet.merge(&traffic.delivery);

        let hog = Hog::start(&hog_ws)?;
        let started = Instant::now();
        traffic.reset_latencies();
        drive(&mut swarm, &mut traffic, Some(&mut pacer), phase)?;
        // The syncs still in flight belong to this half: keep the traffic going until the
        // server has answered them all.
        hog.signal_stop();
        while hog.running() {
            drive(&mut swarm, &mut traffic, Some(&mut pacer), 0.01)?;
        }
        hogged.merge(&traffic.delivery);
        syncs += hog.join()?;
        hog_seconds += started.elapsed().as_secs_f64();
        // Deliveries delayed by the hog land before the next quiet half starts counting.
        drive(&mut swarm, &mut traffic, Some(&mut pacer), SETTLE_SECONDS)?;
    }
    drain(&mut swarm, &mut traffic)?;
    let (quiet, hogged) = (quiet.summary(), hogged.summary());

    let mut report = Report::new("sync-hog", options);
    report.add("clients", swarm.len() as u64);
    report.add("rate", options.rate);
    report.add("hog_groups", options.hog_groups as u64);
    report.add("hog_syncs_per_s", round(syncs as f64 / hog_seconds));
    for (key, value) in [
        ("quiet_p50_us", quiet.p50_us),
        ("quiet_p99_us", quiet.p99_us),
        ("quiet_max_us", quiet.max_us),
        ("hog_p50_us", hogged.p50_us),
        ("hog_p99_us", hogged.p99_us),
        ("hog_max_us", hogged.max_us),
        ("p99_increase_us", hogged.p99_us - quiet.p99_us),
    ] {
        report.add(key, round(value));
    }
    add_health(&mut report, &swarm, &traffic);
    Ok(report)
}

/// Makes the hog: one account that creates `--hog-groups` groups of its own (one event each,
/// their 70). Answers the `ws://` URL of its session.
fn hog_in_groups(options: &Options) -> Result<String, String> {
    let fleet = setup::build(
        options.target,
        &options.endpoint,
        1,
        1,
        options.setup_threads,
    )?;
    let account = &fleet.accounts[0];
    let mut http = HttpClient::new(options.endpoint.addr, &options.endpoint.host);
    let (token, _) = setup::login(&mut http, account)?;
    // The fleet made the first group.
    let more = options.hog_groups.saturating_sub(1);
    setup::parallel(
        &options.endpoint,
        more,
        options.setup_threads,
        "hog groups",
        |http, g| {
            let body = format!(r#"{{"name":"hog-{g}","user_ids":[]}}"#);
            setup::call(http, "POST", "/groups", Some(&token), &body, 201).map(drop)
        },
    )
    .map_err(|e| {
        format!("{e} (start the server with --max-groups-per-user at least --hog-groups)")
    })?;
    Ok(format!("ws://{}{}", options.endpoint.addr, account.ws_path))
}

/// The hog's thread: keeps [`HOG_WINDOW`] syncs in flight until asked to stop, then waits for
/// the answers to those still in flight.
struct Hog {
    stop: Arc<AtomicBool>,
    running: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
    thread: std::thread::JoinHandle<Result<(), String>>,
}

impl Hog {
    fn start(url: &str) -> Result<Hog, String> {
        let mut session = Session::connect(url, &[], Duration::from_secs(10))
            .map_err(|e| format!("the hog's WebSocket: {e:?}"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let running = Arc::new(AtomicBool::new(true));
        let done = Arc::new(AtomicU64::new(0));
        let (stop_flag, running_flag, counter) = (stop.clone(), running.clone(), done.clone());
        let thread = std::thread::spawn(move || -> Result<(), String> {
            let result = run_hog(&mut session, &stop_flag, &counter);
            let _ = session.close(None);
            running_flag.store(false, Ordering::Relaxed);
            result
        });
        Ok(Hog {
            stop,
            running,
            done,
            thread,
        })
    }

    fn signal_stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    fn running(&self) -> bool {
        self.running.load(Ordering::Relaxed)
    }

    /// Waits for the hog's thread; answers how many syncs were answered.
    fn join(self) -> Result<u64, String> {
        self.signal_stop();
        self.thread
            .join()
            .map_err(|_| "the hog's thread panicked".to_string())??;
        Ok(self.done.load(Ordering::Relaxed))
    }
}

fn run_hog(session: &mut Session, stop: &AtomicBool, done: &AtomicU64) -> Result<(), String> {
    let fail = |e: tungstenite::Error| format!("the hog's WebSocket: {e}");
    let mut sent = 0u64;
    let mut sync = |session: &mut Session| {
        // From the start, or from past the end (an empty page).
        let cursor = if sent % 2 == 0 { 0 } else { 1u64 << 52 };
        sent += 1;
        let request = format!(r#"{{"method":20,"seq":{cursor},"limit":1}}"#);
        session.queue(Message::text(request))
    };
    for _ in 0..HOG_WINDOW {
        sync(session).map_err(fail)?;
    }
    session.flush().map_err(fail)?;
    let mut in_flight = HOG_WINDOW;
    let deadline = Instant::now() + Duration::from_secs(600);
    while in_flight > 0 {
        match session.read_before(deadline).map_err(fail)? {
            None => return Err("the hog's syncs went unanswered for 600 s".into()),
            Some(Message::Text(text)) if text.contains("\"type\":29") => {
                done.fetch_add(1, Ordering::Relaxed);
                in_flight -= 1;
                if !stop.load(Ordering::Relaxed) {
                    sync(session).map_err(fail)?;
                    session.flush().map_err(fail)?;
                    in_flight += 1;
                }
            }
            Some(Message::Text(text)) if text.contains("\"type\":90") => {
                return Err(format!("the hog got an error: {text}"));
            }
            Some(Message::Close(frame)) => return Err(format!("the hog was closed: {frame:?}")),
            Some(_) => {}
        }
    }
    Ok(())
}
