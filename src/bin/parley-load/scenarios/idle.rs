//! The `idle` scenario: connections held open, and what each costs the server in memory.

use std::time::{Duration, Instant};

use super::traffic::{add_health, Traffic};
use super::{check_server, round, sample, Options, Report, CONNECT_IN_FLIGHT};
use crate::setup;
use crate::swarm::Swarm;

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
