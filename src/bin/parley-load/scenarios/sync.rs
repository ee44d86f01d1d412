//! The `sync` scenario: a user who missed many events pages through them after reconnecting.

use std::time::{Duration, Instant};

use super::traffic::Traffic;
use super::{hundredths, pair_on_parley, round, sample, Options, Report};
use crate::setup::Fleet;
use crate::swarm::{after_key, event_seq, event_type, leading_number, Swarm};

/// `sync`: one user misses E events, then reconnects and pages through them.
pub fn sync(options: &Options) -> Result<Report, String> {
    let fleet = pair_on_parley(
        options,
        "sync needs storage: the reference relays have none",
    )?;
    // Account 1 writes while account 0 is away.
    let (stored, fill_s) = fill_group(options, &fleet, "sync", "events")?;

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
    report.add("events_stored", stored);
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

/// Account 1 of `fleet` sends E (`--events`) messages to the group it shares with account 0,
/// keeping 16 W outstanding, and waits for every ack: how many were stored, in how many
/// seconds. `scenario` and `what` name the progress lines.
pub(super) fn fill_group(
    options: &Options,
    fleet: &Fleet,
    scenario: &str,
    what: &str,
) -> Result<(u64, f64), String> {
    let mut writer = Swarm::open(
        &options.endpoint,
        vec![fleet.accounts[1].ws_path.clone()],
        1,
    )?;
    let mut traffic = Traffic::new(fleet, 2, options, true);
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
            eprintln!(
                "parley-load: {scenario}: stored {}/{target} {what}",
                traffic.acks
            );
        }
    }
    Ok((traffic.sends, fill_started.elapsed().as_secs_f64()))
}
