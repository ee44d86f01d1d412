//! Defaults that depend on the host: its cores and the memory the process may use.

use crate::store::client_ids::ClientIdLimits;

pub(super) fn default_hash_workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get().saturating_sub(1))
        .unwrap_or(1)
        .max(1)
}

/// The retry index's default size: as many sends as fit in a 32nd of the memory the server may
/// use, at 96 bytes each (what a send may take with its shard's record list just doubled), at
/// least 100,000 and at most 16 million (beyond, a growing table stalls the loop for longer than
/// a shard was sized for). The index fills only as sends with ids arrive (it holds a day of
/// them), so this bounds what a burst can take, not what a server uses.
/// When the memory is unknown, [`ClientIdLimits::DEFAULT`].
pub(super) fn default_client_ids_in_memory() -> usize {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let total = read("/proc/meminfo").and_then(|meminfo| mem_total_bytes(&meminfo));
    let limit = read("/proc/self/cgroup").and_then(|cgroup| cgroup_memory_limit(&cgroup, read));
    match (total, limit) {
        (None, None) => ClientIdLimits::DEFAULT.max_entries,
        (total, limit) => {
            let bytes = total.unwrap_or(u64::MAX).min(limit.unwrap_or(u64::MAX));
            (bytes / 32 / 96).clamp(100_000, 16_000_000) as usize
        }
    }
}

/// `MemTotal` from `/proc/meminfo`, in bytes.
pub(super) fn mem_total_bytes(meminfo: &str) -> Option<u64> {
    let kib = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse::<u64>()
        .ok()?;
    kib.checked_mul(1024)
}

/// The lowest memory limit on the way from this process's cgroup up to the root (a systemd
/// `MemoryMax=`, a container's limit, or a parent's), from `/proc/self/cgroup` and the files
/// `read` returns: cgroup v2's `memory.max` ("max" for none), or v1's
/// `memory.limit_in_bytes` (a huge number for none, which the machine's memory then bounds).
pub(super) fn cgroup_memory_limit(
    cgroup: &str,
    read: impl Fn(&str) -> Option<String>,
) -> Option<u64> {
    let (root, file, path) = cgroup.lines().find_map(|line| {
        let mut fields = line.splitn(3, ':');
        let (id, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
        if id == "0" && controllers.is_empty() {
            Some(("/sys/fs/cgroup", "memory.max", path))
        } else if controllers.split(',').any(|c| c == "memory") {
            Some(("/sys/fs/cgroup/memory", "memory.limit_in_bytes", path))
        } else {
            None
        }
    })?;
    let mut dir = path.trim_end_matches('/');
    let mut lowest: Option<u64> = None;
    loop {
        let limit = read(&format!("{root}{dir}/{file}")).and_then(|v| v.trim().parse().ok());
        lowest = match (lowest, limit) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        match dir.rfind('/') {
            Some(parent) => dir = &dir[..parent],
            None => return lowest,
        }
    }
}
