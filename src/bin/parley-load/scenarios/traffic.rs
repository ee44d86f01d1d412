//! What every messaging scenario shares: per-client traffic state and counters, open-loop pacing,
//! driving and draining the swarm, and the fleet the traffic runs on.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::{Options, Report, CONNECT_IN_FLIGHT};
use crate::setup::{self, Fleet};
use crate::stats::Histogram;
use crate::swarm::{data_stamp, event_type, now_ns, Replies, Swarm};

/// How long to wait for the last acks once sending stops.
const DRAIN: Duration = Duration::from_secs(3);

/// Per-client traffic state and the counters every messaging scenario shares.
pub(super) struct Traffic {
    group_ids: Vec<String>,
    client_group: Vec<usize>,
    /// Send stamps awaiting their ack, per client (acks come back in send order).
    unacked: Vec<VecDeque<u64>>,
    padding: String,
    /// Sends carry an `id`.
    client_ids: bool,
    /// Closed loop: every ack sends the next message.
    closed_loop: bool,
    pub(super) sending: bool,
    pub(super) sends: u64,
    pub(super) deliveries: u64,
    pub(super) acks: u64,
    pub(super) errors: u64,
    pub(super) first_error: Option<String>,
    pub(super) delivery: Histogram,
    pub(super) ack: Histogram,
}

impl Traffic {
    pub(super) fn new(
        fleet: &Fleet,
        clients: usize,
        options: &Options,
        closed_loop: bool,
    ) -> Traffic {
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
    pub(super) fn next_send(&mut self, client: usize) -> String {
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

    pub(super) fn on_message(
        &mut self,
        client: usize,
        text: &str,
        received_at: u64,
        replies: &mut Replies,
    ) {
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

    pub(super) fn reset_latencies(&mut self) {
        self.delivery.clear();
        self.ack.clear();
    }

    fn unacked_total(&self) -> usize {
        self.unacked.iter().map(VecDeque::len).sum()
    }
}

/// Open-loop pacing: sends due at `rate` per second since `start`, round-robin over clients.
pub(super) struct Pacer {
    pub(super) rate: f64,
    pub(super) start: Instant,
    pub(super) sent: u64,
    pub(super) next_client: usize,
}

impl Pacer {
    pub(super) fn new(rate: f64) -> Pacer {
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
    pub(super) fn pace(&mut self, swarm: &mut Swarm, traffic: &mut Traffic) -> Duration {
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
pub(super) fn drive(
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
pub(super) fn drain(swarm: &mut Swarm, traffic: &mut Traffic) -> Result<(), String> {
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

pub(super) fn fleet_and_swarm(options: &Options) -> Result<(Fleet, Swarm), String> {
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

pub(super) fn add_health(report: &mut Report, swarm: &Swarm, traffic: &Traffic) {
    report.add("errors", traffic.errors);
    report.add("closed", swarm.closed as u64);
    if let Some(error) = &traffic.first_error {
        report.add("first_error", error.clone());
    }
    if let Some(reason) = swarm.first_close_reason() {
        report.add("first_close", reason.to_string());
    }
}
