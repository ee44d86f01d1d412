//! Counters and histograms the loop and the chat core update, rendered on `GET /metrics` in the
//! Prometheus text format. Plain integers on the loop thread: no atomics, no locks. Written here
//! rather than with `prometheus-client`, whose metrics are shared atomics and whose labelled
//! families sit behind a lock (docs/ARCHITECTURE.md, "Metrics").

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::error::ErrorCode;

/// Latency buckets in seconds, from 50 us to 1 s.
const LATENCY_BUCKETS: [f64; 12] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.1, 0.25, 1.0,
];

#[derive(Debug, Clone, Default)]
pub struct Histogram {
    counts: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    pub fn observe(&mut self, seconds: f64) {
        if let Some(i) = LATENCY_BUCKETS.iter().position(|b| seconds <= *b) {
            self.counts[i] += 1;
        }
        self.count += 1;
        self.sum += seconds;
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, count) in LATENCY_BUCKETS.iter().zip(self.counts) {
            cumulative += count;
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum {}\n{name}_count {}", self.sum, self.count);
    }
}

#[derive(Debug, Clone, Default)]
pub struct Metrics {
    pub http_requests: u64,
    /// WebSocket RPCs by method number; only known methods, so clients cannot grow the label set
    /// (unknown ones show as `unknown_method` errors).
    pub rpcs: BTreeMap<i64, u64>,
    /// Events written to connections, by type.
    pub events: BTreeMap<u16, u64>,
    /// Errors answered, by code (HTTP answers and type-90 events).
    pub errors: BTreeMap<&'static str, u64>,
    pub connections_accepted: u64,
    /// Connections refused at accept (caps) or closed for cause, by reason.
    pub connections_dropped: BTreeMap<&'static str, u64>,
    /// Streams (a user's own, a group's within one membership interval) read by syncs: the
    /// work they cost, which should follow the pages, not the users' memberships.
    pub sync_streams_read: u64,
    /// Membership records (intervals that ended) read by syncs: none for a sync after them.
    pub sync_membership_records_read: u64,
    pub tick_seconds: Histogram,
    pub flush_seconds: Histogram,
}

/// Values read at scrape time rather than counted.
pub struct Gauges {
    pub http_connections: usize,
    pub websocket_connections: usize,
    pub users_online: usize,
    pub groups: usize,
    pub hash_queue: usize,
    pub store_bytes: u64,
    pub recent_client_ids: usize,
    /// 1 while the store cannot write (a full disk), else 0.
    pub store_degraded: bool,
    /// Bytes waiting in the connections' write buffers (the global output budget's count).
    pub queued_output_bytes: usize,
}

impl Metrics {
    pub fn count_error(&mut self, code: ErrorCode) {
        *self.errors.entry(code.as_str()).or_default() += 1;
    }

    pub fn count_drop(&mut self, reason: &'static str) {
        *self.connections_dropped.entry(reason).or_default() += 1;
    }

    pub fn render(&self, gauges: &Gauges) -> String {
        let mut out = String::with_capacity(4096);
        let gauges_read: [(&str, &str, u64); 7] = [
            (
                "parley_users_online",
                "Users with at least one live WebSocket.",
                gauges.users_online as u64,
            ),
            (
                "parley_groups",
                "Groups known to the server.",
                gauges.groups as u64,
            ),
            (
                "parley_hash_queue",
                "Password hashes queued or running.",
                gauges.hash_queue as u64,
            ),
            (
                "parley_store_bytes",
                "Size of the store on disk.",
                gauges.store_bytes,
            ),
            (
                "parley_recent_client_ids",
                "Sends with a client id in the in-memory retry index.",
                gauges.recent_client_ids as u64,
            ),
            (
                "parley_store_degraded",
                "1 while the store cannot write (a full disk) and writes are refused.",
                u64::from(gauges.store_degraded),
            ),
            (
                "parley_queued_output_bytes",
                "Bytes waiting in the connections' write buffers (--max-queued-output-bytes).",
                gauges.queued_output_bytes as u64,
            ),
        ];
        for (name, help, value) in gauges_read {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP parley_connections Open connections by phase.\n# TYPE parley_connections gauge\n\
             parley_connections{{phase=\"http\"}} {}\nparley_connections{{phase=\"websocket\"}} {}",
            gauges.http_connections, gauges.websocket_connections
        );
        counter(
            &mut out,
            "parley_http_requests_total",
            "HTTP requests answered.",
            [("", self.http_requests)],
        );
        counter(
            &mut out,
            "parley_connections_accepted_total",
            "Connections accepted.",
            [("", self.connections_accepted)],
        );
        labelled(
            &mut out,
            "parley_connections_dropped_total",
            "Connections refused or closed for cause.",
            "reason",
            &self.connections_dropped,
        );
        labelled(
            &mut out,
            "parley_rpcs_total",
            "WebSocket RPCs received, by method.",
            "method",
            &self.rpcs,
        );
        labelled(
            &mut out,
            "parley_events_total",
            "Events written to connections, by type.",
            "type",
            &self.events,
        );
        labelled(
            &mut out,
            "parley_errors_total",
            "Errors answered, by code.",
            "code",
            &self.errors,
        );
        counter(
            &mut out,
            "parley_sync_streams_read_total",
            "Event streams read by syncs (one per group and membership interval read).",
            [("", self.sync_streams_read)],
        );
        counter(
            &mut out,
            "parley_sync_membership_records_read_total",
            "Ended membership intervals read by syncs (those ending after the cursor).",
            [("", self.sync_membership_records_read)],
        );
        self.tick_seconds.render(
            &mut out,
            "parley_tick_seconds",
            "Time to handle one loop tick.",
        );
        self.flush_seconds.render(
            &mut out,
            "parley_store_flush_seconds",
            "Time of the per-tick store flush.",
        );
        out
    }
}

fn counter<const N: usize>(out: &mut String, name: &str, help: &str, values: [(&str, u64); N]) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    for (labels, value) in values {
        let _ = writeln!(out, "{name}{labels} {value}");
    }
}

fn labelled<K: std::fmt::Display>(
    out: &mut String,
    name: &str,
    help: &str,
    label: &str,
    values: &BTreeMap<K, u64>,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    for (key, value) in values {
        let _ = writeln!(out, "{name}{{{label}=\"{key}\"}} {value}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let mut metrics = Metrics::default();
        metrics.count_error(ErrorCode::NotMember);
        *metrics.rpcs.entry(40).or_default() += 2;
        metrics.flush_seconds.observe(0.0002);
        let text = metrics.render(&Gauges {
            http_connections: 1,
            websocket_connections: 2,
            users_online: 2,
            groups: 3,
            hash_queue: 0,
            store_bytes: 10,
            recent_client_ids: 4,
            store_degraded: true,
            queued_output_bytes: 5,
        });
        assert!(text.contains("parley_errors_total{code=\"not_member\"} 1\n"));
        assert!(text.contains("parley_rpcs_total{method=\"40\"} 2\n"));
        assert!(text.contains("parley_connections{phase=\"websocket\"} 2\n"));
        assert!(text.contains("parley_recent_client_ids 4\n"));
        assert!(text.contains("parley_store_degraded 1\n"));
        assert!(text.contains("parley_queued_output_bytes 5\n"));
        assert!(text.contains("parley_store_flush_seconds_bucket{le=\"0.00025\"} 1\n"));
        assert!(text.contains("parley_store_flush_seconds_count 1\n"));
    }
}
