//! Measurements: a fixed-memory latency histogram, and the server's CPU time and RSS read from
//! /proc (so any server, parley or a reference relay, is measured the same way).

use std::fs;

/// Sub-buckets per power of two: values are kept to within 1/128 (under 1%), in fixed memory,
/// however many millions of samples a run records.
const SUB_BUCKET_BITS: u32 = 7;
const SUB_BUCKETS: usize = 1 << SUB_BUCKET_BITS;

/// A log-linear histogram of nanosecond latencies (the HdrHistogram idea, in a few lines).
#[derive(Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; 64 * SUB_BUCKETS],
            total: 0,
            max: 0,
        }
    }
}

impl Histogram {
    pub fn record(&mut self, value_ns: u64) {
        self.counts[bucket_of(value_ns)] += 1;
        self.total += 1;
        self.max = self.max.max(value_ns);
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    pub fn clear(&mut self) {
        self.counts.iter_mut().for_each(|c| *c = 0);
        self.total = 0;
        self.max = 0;
    }

    /// The value at quantile `q` (0..=1), as the upper edge of its bucket; 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (bucket, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return upper_edge(bucket).min(self.max);
            }
        }
        self.max
    }

    pub fn summary(&self) -> Latency {
        Latency {
            samples: self.total,
            p50_us: self.quantile(0.50) as f64 / 1e3,
            p90_us: self.quantile(0.90) as f64 / 1e3,
            p99_us: self.quantile(0.99) as f64 / 1e3,
            p999_us: self.quantile(0.999) as f64 / 1e3,
            max_us: self.max as f64 / 1e3,
        }
    }
}

/// Values below `SUB_BUCKETS` get a bucket each; above, each power of two is cut in
/// `SUB_BUCKETS / 2` equal parts.
fn bucket_of(value: u64) -> usize {
    if value < SUB_BUCKETS as u64 {
        return value as usize;
    }
    let magnitude = 63 - value.leading_zeros(); // >= SUB_BUCKET_BITS
    let shift = magnitude - (SUB_BUCKET_BITS - 1);
    let sub = (value >> shift) as usize; // in SUB_BUCKETS/2 .. SUB_BUCKETS
    (shift as usize) * (SUB_BUCKETS / 2) + sub
}

fn upper_edge(bucket: usize) -> u64 {
    if bucket < SUB_BUCKETS {
        return bucket as u64;
    }
    let half = SUB_BUCKETS / 2;
    let shift = (bucket - half) / half;
    let sub = bucket - shift * half;
    (((sub as u64) + 1) << shift) - 1
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Latency {
    pub samples: u64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
}

/// The server process as /proc shows it.
#[derive(Debug, Clone, Copy)]
pub struct ProcSample {
    /// utime + stime of all its threads, in seconds.
    pub cpu_secs: f64,
    pub rss_kib: u64,
}

/// Reads /proc/PID/stat and /proc/PID/status; `None` when the process is gone or not Linux.
pub fn proc_sample(pid: u32) -> Option<ProcSample> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; the fields after its closing parenthesis do not.
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())?;
    Some(ProcSample {
        cpu_secs: (utime + stime) as f64 / clock_ticks_per_sec(),
        rss_kib,
    })
}

/// USER_HZ: 100 on every Linux this runs on; std offers no sysconf, and the kernel ABI fixes it.
fn clock_ticks_per_sec() -> f64 {
    100.0
}

#[cfg(test)]
mod tests;
