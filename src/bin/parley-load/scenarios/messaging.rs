//! The messaging scenarios: `fanout` (closed loop) and `rate` (open loop), measured alike.

use std::time::Instant;

use super::traffic::{add_health, drain, drive, fleet_and_swarm, Pacer, Traffic};
use super::{check_server, hundredths, round, sample, Options, Report, ACK, DELIVERY};
use crate::swarm::Swarm;

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
    let mut report = Report::new("fanout", options);
    measure(
        options,
        &mut swarm,
        &mut traffic,
        None,
        &mut report,
        |report| {
            report.add("window", options.window as u64);
        },
    )?;
    Ok(report)
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
    let mut report = Report::new("rate", options);
    measure(
        options,
        &mut swarm,
        &mut traffic,
        Some(&mut pacer),
        &mut report,
        |report| report.add("rate", options.rate),
    )?;
    Ok(report)
}

/// Warms up, measures for `--duration`, drains, and adds the results to `report`; `shape` adds
/// what sets the traffic's pace (the window or the rate). Acks per second are reported for the
/// closed loop (no `pacer`) only, where they set the pace.
fn measure(
    options: &Options,
    swarm: &mut Swarm,
    traffic: &mut Traffic,
    mut pacer: Option<&mut Pacer>,
    report: &mut Report,
    shape: impl FnOnce(&mut Report),
) -> Result<(), String> {
    let closed_loop = pacer.is_none();
    drive(swarm, traffic, pacer.as_deref_mut(), options.warmup)?;
    traffic.reset_latencies();
    let (sends0, deliveries0, acks0) = (traffic.sends, traffic.deliveries, traffic.acks);
    let before = sample(options);
    let started = Instant::now();
    drive(swarm, traffic, pacer, options.duration)?;
    let elapsed = started.elapsed().as_secs_f64();
    let after = sample(options);
    let (sends, deliveries, acks) = (
        traffic.sends - sends0,
        traffic.deliveries - deliveries0,
        traffic.acks - acks0,
    );
    let (delivery, ack) = (traffic.delivery.summary(), traffic.ack.summary());
    drain(swarm, traffic)?;

    report.add("clients", swarm.len() as u64);
    report.add("group_size", options.group_size as u64);
    shape(report);
    report.add("data_bytes", options.data_bytes as u64);
    report.add("client_ids", u64::from(options.client_ids));
    report.add("duration_s", round(elapsed));
    report.add("sends_per_s", (sends as f64 / elapsed).round());
    report.add("deliveries_per_s", (deliveries as f64 / elapsed).round());
    if closed_loop {
        report.add("acks_per_s", (acks as f64 / elapsed).round());
    }
    report.add_latency(DELIVERY, delivery);
    report.add_latency(ACK, ack);
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
    add_health(report, swarm, traffic);
    Ok(())
}
