//! Configuration from flags and environment variables, validated once at start, plus the limits
//! every other module reads from it.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use crate::chat::ChatLimits;
use crate::log;
use crate::store::client_ids::ClientIdLimits;

pub const USAGE: &str = "\
parley: a group-chat server (HTTP + WebSocket on one event loop, durable in sled)

USAGE:
    parley [OPTIONS]

OPTIONS (each also read from the environment variable in brackets):
    --listen ADDR                 address to listen on [PARLEY_LISTEN, default 127.0.0.1:3000]
    --data-dir DIR                the database and the generated JWT secret
                                  [PARLEY_DATA_DIR, default ./parley-data]
    --public-url URL              base URL clients reach the server at, used to build
                                  messaging_url (http(s)://host[:port] or ws(s)://...)
                                  [PARLEY_PUBLIC_URL, default: the request's Host header]
    --hash-workers N              password-hashing threads
                                  [PARLEY_HASH_WORKERS, default cores - 1, at least 1]
    --cache-mb N                  sled page cache in MiB [PARLEY_CACHE_MB, default 64]
    --client-id-hours N           a retried send (same user, same client id) is recognised for
                                  at least N hours [PARLEY_CLIENT_ID_HOURS, default 24, at least 24]
    --client-ids-in-memory N      recent sends with a client id kept in memory, 51 to 61 bytes
                                  each; beyond, they are recorded in sled, which is slower
                                  [PARLEY_CLIENT_IDS_IN_MEMORY, default: as many as fit in a
                                  32nd of the memory (the machine's, or the cgroup's limit) at 96
                                  bytes each, from 100000 to 16000000]
    --max-connections N           open connections at most [PARLEY_MAX_CONNECTIONS, default 20000]
    --max-connections-per-ip N    open connections per client address, 0 = no cap
                                  [PARLEY_MAX_CONNECTIONS_PER_IP, default 1000]
    --auth-rate N                 registrations + logins per minute per client address, 0 = no
                                  limit [PARLEY_AUTH_RATE, default 60]
    --allowed-origins LIST        comma-separated Origins allowed to open a WebSocket; requests
                                  without Origin (non-browser clients) are always allowed
                                  [PARLEY_ALLOWED_ORIGINS, default: any]
    --request-timeout-secs N      a request must arrive whole within N s of its first byte
                                  (408 beyond) [PARLEY_REQUEST_TIMEOUT_SECS, default 10]
    --idle-timeout-secs N         close keep-alive connections idle this long
                                  [PARLEY_IDLE_TIMEOUT_SECS, default 60]
    --echo-endpoint               serve a WebSocket echo at /_echo (for the Autobahn conformance
                                  cases; off in production) [PARLEY_ECHO_ENDPOINT=1]
    -h, --help                    print this help
    -V, --version                 print the version

ENVIRONMENT:
    PARLEY_LOG           log level: error, warn, info (default), debug or trace, then optionally
                         target=level pairs for dependencies (default warn), e.g. info,sled=debug
    PARLEY_JWT_SECRET    secret for signing tokens (at least 32 bytes); when unset, a random secret
                         is generated on first start and kept in DATA_DIR/jwt-secret
";

/// Sizes and timeouts. Defaults are chosen for many small connections on a small host.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest HTTP request head (request line and headers), in bytes. Beyond: 431.
    pub max_head_bytes: usize,
    /// Most headers in one request. Beyond: 431.
    pub max_headers: usize,
    /// Largest HTTP request body. Beyond: 413.
    pub max_body_bytes: usize,
    /// Largest WebSocket message and frame. Beyond: close 1009.
    pub max_ws_message_bytes: usize,
    /// tungstenite's read buffer per WebSocket connection.
    pub ws_read_buffer_bytes: usize,
    /// Most bytes queued for one connection before it is dropped as a slow consumer.
    pub max_outbox_bytes: usize,
    /// Largest `data` of a message.
    pub max_data_bytes: usize,
    /// Events per sync page when the client gives no `limit`, and the most it may ask for.
    pub sync_default_limit: usize,
    pub sync_max_limit: usize,
    /// Password-hashing jobs waiting for a worker before new ones get 503.
    pub hash_queue: usize,
    pub ping_interval: Duration,
    pub pong_timeout: Duration,
    /// A request must arrive whole (head and body) within this long of its first byte. Beyond:
    /// 408 and close (slowloris).
    pub request_timeout: Duration,
    /// A keep-alive HTTP connection with no request in progress for this long is closed.
    pub http_idle_timeout: Duration,
    pub max_connections: usize,
    /// 0 = no cap.
    pub max_connections_per_ip: usize,
    /// Registrations + logins per minute per client address; 0 = no limit.
    pub auth_rate_per_minute: u32,
}

impl Limits {
    /// The limits the chat core enforces.
    pub fn chat(&self) -> ChatLimits {
        ChatLimits {
            max_data_bytes: self.max_data_bytes,
            sync_default_limit: self.sync_default_limit,
            sync_max_limit: self.sync_max_limit,
            // A sync page must fit a connection's outbox with room to spare.
            sync_max_bytes: self.max_outbox_bytes / 2,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head_bytes: 8 * 1024,
            max_headers: 64,
            max_body_bytes: 64 * 1024,
            max_ws_message_bytes: 64 * 1024,
            // Chat messages are small; a longer one grows the buffer as it arrives.
            ws_read_buffer_bytes: 2 * 1024,
            max_outbox_bytes: 1024 * 1024,
            max_data_bytes: 16 * 1024,
            sync_default_limit: 500,
            sync_max_limit: 1000,
            hash_queue: 256,
            ping_interval: Duration::from_secs(10),
            pong_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(10),
            http_idle_timeout: Duration::from_secs(60),
            max_connections: 20_000,
            max_connections_per_ip: 1000,
            auth_rate_per_minute: 60,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// `ws://host[:port]` or `wss://...`, without a trailing slash.
    pub public_url: Option<String>,
    pub jwt_secret: Option<Vec<u8>>,
    pub hash_workers: usize,
    pub cache_bytes: u64,
    pub client_ids: ClientIdLimits,
    pub log: log::Filter,
    /// Origins allowed to open a WebSocket; empty = any.
    pub allowed_origins: Vec<String>,
    pub echo_endpoint: bool,
    pub limits: Limits,
}

/// What the command line asked for.
pub enum Command {
    Run(Box<Config>),
    Help,
    Version,
}

impl Config {
    /// A configuration for tests and embedding: everything default but the address and directory.
    pub fn new(listen: SocketAddr, data_dir: PathBuf) -> Self {
        Config {
            listen,
            data_dir,
            public_url: None,
            jwt_secret: None,
            hash_workers: default_hash_workers(),
            cache_bytes: 64 * 1024 * 1024,
            client_ids: ClientIdLimits::DEFAULT,
            log: log::Filter::default(),
            allowed_origins: Vec::new(),
            echo_endpoint: false,
            limits: Limits::default(),
        }
    }
}

fn default_hash_workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get().saturating_sub(1))
        .unwrap_or(1)
        .max(1)
}

/// The retry index's default size: as many sends as fit in a 32nd of the memory the server may
/// use, at 96 bytes each (what a send may take with its shard's record list just doubled; 52
/// resident measured), at least 100,000 and at most 16 million (beyond, a growing table stalls the loop for longer than a shard was sized
/// for). The index fills only as sends with ids arrive (it holds a day of them), so this bounds
/// what a burst can take, not what a server uses: a 1 GiB host holds about 350,000 sends, a 24 GiB one 8 million.
/// When the memory is unknown, [`ClientIdLimits::DEFAULT`].
fn default_client_ids_in_memory() -> usize {
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
fn mem_total_bytes(meminfo: &str) -> Option<u64> {
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
fn cgroup_memory_limit(cgroup: &str, read: impl Fn(&str) -> Option<String>) -> Option<u64> {
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

/// Parses flags, falling back to the environment (`env` is passed in so tests need not touch the
/// process environment).
pub fn parse(
    args: impl IntoIterator<Item = String>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Command, String> {
    const OPTIONS: [(&str, &str); 14] = [
        ("--listen", "PARLEY_LISTEN"),
        ("--data-dir", "PARLEY_DATA_DIR"),
        ("--public-url", "PARLEY_PUBLIC_URL"),
        ("--hash-workers", "PARLEY_HASH_WORKERS"),
        ("--cache-mb", "PARLEY_CACHE_MB"),
        ("--max-connections", "PARLEY_MAX_CONNECTIONS"),
        ("--max-connections-per-ip", "PARLEY_MAX_CONNECTIONS_PER_IP"),
        ("--auth-rate", "PARLEY_AUTH_RATE"),
        ("--allowed-origins", "PARLEY_ALLOWED_ORIGINS"),
        ("--echo-endpoint", "PARLEY_ECHO_ENDPOINT"),
        ("--request-timeout-secs", "PARLEY_REQUEST_TIMEOUT_SECS"),
        ("--idle-timeout-secs", "PARLEY_IDLE_TIMEOUT_SECS"),
        ("--client-id-hours", "PARLEY_CLIENT_ID_HOURS"),
        ("--client-ids-in-memory", "PARLEY_CLIENT_IDS_IN_MEMORY"),
    ];
    let mut values: Vec<Option<String>> = OPTIONS.iter().map(|(_, var)| env(var)).collect();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_string(), Some(value.to_string()))
            }
            _ => (arg.clone(), None),
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "-V" | "--version" => return Ok(Command::Version),
            "--echo-endpoint" => {
                values[9] = Some(inline.unwrap_or_else(|| "1".to_string()));
                continue;
            }
            _ => {}
        }
        let index = OPTIONS
            .iter()
            .position(|(name, _)| *name == flag)
            .ok_or_else(|| format!("unknown argument `{arg}` (see --help)"))?;
        let value = match inline {
            Some(value) => value,
            None => args
                .next()
                .ok_or_else(|| format!("{flag} needs a value (see --help)"))?,
        };
        values[index] = Some(value);
    }
    let [listen, data_dir, public_url, hash_workers, cache_mb, max_connections, per_ip, auth_rate, origins, echo, request_timeout, idle_timeout, client_id_hours, client_ids_in_memory] =
        values.try_into().expect("one value per option");

    let listen_text = listen.unwrap_or_else(|| "127.0.0.1:3000".to_string());
    let listen = listen_text
        .to_socket_addrs()
        .map_err(|e| format!("--listen {listen_text}: {e}"))?
        .next()
        .ok_or_else(|| format!("--listen {listen_text}: no address"))?;
    let data_dir = PathBuf::from(data_dir.unwrap_or_else(|| "./parley-data".to_string()));
    let public_url = public_url
        .filter(|u| !u.trim().is_empty())
        .map(|u| normalize_public_url(&u))
        .transpose()?;
    let hash_workers = number("--hash-workers", hash_workers, 1, 64)?
        .map_or_else(default_hash_workers, |n| n as usize);
    let cache_bytes = number("--cache-mb", cache_mb, 1, 65536)?.unwrap_or(64) * 1024 * 1024;
    let client_ids = ClientIdLimits {
        window_ms: number("--client-id-hours", client_id_hours, 24, 24 * 366)?
            .map_or(ClientIdLimits::DEFAULT.window_ms, |hours| {
                hours * 60 * 60 * 1000
            }),
        max_entries: number("--client-ids-in-memory", client_ids_in_memory, 0, 1 << 32)?
            .map_or_else(default_client_ids_in_memory, |n| n as usize),
    };
    let log = match env("PARLEY_LOG") {
        Some(text) => {
            log::Filter::parse(&text).map_err(|err| format!("PARLEY_LOG={text}: {err}"))?
        }
        None => log::Filter::default(),
    };
    let jwt_secret = match env("PARLEY_JWT_SECRET") {
        Some(secret) if secret.len() < crate::auth::MIN_SECRET_BYTES => {
            return Err("PARLEY_JWT_SECRET must be at least 32 bytes".to_string())
        }
        Some(secret) => Some(secret.into_bytes()),
        None => None,
    };
    let defaults = Limits::default();
    let limits = Limits {
        max_connections: number("--max-connections", max_connections, 1, 1 << 24)?
            .map_or(defaults.max_connections, |n| n as usize),
        max_connections_per_ip: number("--max-connections-per-ip", per_ip, 0, 1 << 24)?
            .map_or(defaults.max_connections_per_ip, |n| n as usize),
        auth_rate_per_minute: number("--auth-rate", auth_rate, 0, 1 << 20)?
            .map_or(defaults.auth_rate_per_minute, |n| n as u32),
        request_timeout: number("--request-timeout-secs", request_timeout, 1, 3600)?
            .map_or(defaults.request_timeout, Duration::from_secs),
        http_idle_timeout: number("--idle-timeout-secs", idle_timeout, 1, 86400)?
            .map_or(defaults.http_idle_timeout, Duration::from_secs),
        ..defaults
    };
    let allowed_origins = origins
        .map(|list| {
            list.split(',')
                .map(|o| o.trim().trim_end_matches('/').to_string())
                .filter(|o| !o.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let echo_endpoint = matches!(echo.as_deref(), Some("1" | "true" | "yes" | "on"));

    Ok(Command::Run(Box::new(Config {
        listen,
        data_dir,
        public_url,
        jwt_secret,
        hash_workers,
        cache_bytes,
        client_ids,
        log,
        allowed_origins,
        echo_endpoint,
        limits,
    })))
}

/// A whole number option within `min..=max`, if given.
fn number(flag: &str, value: Option<String>, min: u64, max: u64) -> Result<Option<u64>, String> {
    match value {
        None => Ok(None),
        Some(text) => text
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .map(Some)
            .ok_or_else(|| format!("{flag} {text}: expected a whole number from {min} to {max}")),
    }
}

/// Accepts `http(s)://` or `ws(s)://` with a host and an optional path prefix; returns the
/// WebSocket form without a trailing slash.
fn normalize_public_url(url: &str) -> Result<String, String> {
    let url = url.trim().trim_end_matches('/');
    let (scheme, rest) = url.split_once("://").ok_or_else(|| {
        format!("--public-url {url}: expected http://, https://, ws:// or wss://")
    })?;
    let ws_scheme = match scheme.to_ascii_lowercase().as_str() {
        "http" | "ws" => "ws",
        "https" | "wss" => "wss",
        _ => return Err(format!("--public-url {url}: unsupported scheme `{scheme}`")),
    };
    if rest.is_empty() || rest.contains(char::is_whitespace) {
        return Err(format!("--public-url {url}: missing or invalid host"));
    }
    Ok(format!("{ws_scheme}://{rest}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str], env: &[(&str, &str)]) -> Result<Config, String> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let lookup = |key: &str| env.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        match parse(args.iter().map(|s| s.to_string()), lookup)? {
            Command::Run(config) => Ok(*config),
            _ => Err("not a run".into()),
        }
    }

    #[test]
    fn defaults() {
        let config = run(&[], &[]).unwrap();
        assert_eq!(config.listen, "127.0.0.1:3000".parse().unwrap());
        assert_eq!(config.data_dir, PathBuf::from("./parley-data"));
        assert_eq!(config.public_url, None);
    }

    #[test]
    fn flags_override_environment() {
        let config = run(
            &["--listen", "127.0.0.1:0", "--data-dir=/tmp/x"],
            &[
                ("PARLEY_LISTEN", "0.0.0.0:9"),
                ("PARLEY_PUBLIC_URL", "https://chat.example.com/"),
            ],
        )
        .unwrap();
        assert_eq!(config.listen, "127.0.0.1:0".parse().unwrap());
        assert_eq!(config.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(config.public_url.as_deref(), Some("wss://chat.example.com"));
    }

    #[test]
    fn limits_and_switches() {
        let config = run(
            &[
                "--auth-rate",
                "0",
                "--max-connections-per-ip=5",
                "--echo-endpoint",
            ],
            &[(
                "PARLEY_ALLOWED_ORIGINS",
                "https://a.example, http://b.example/",
            )],
        )
        .unwrap();
        assert_eq!(config.limits.auth_rate_per_minute, 0);
        assert_eq!(config.limits.max_connections_per_ip, 5);
        assert!(config.echo_endpoint);
        assert_eq!(
            config.allowed_origins,
            vec!["https://a.example", "http://b.example"]
        );
        assert!(run(&["--hash-workers", "0"], &[]).is_err());
    }

    #[test]
    fn memory_for_the_client_id_index() {
        assert_eq!(
            mem_total_bytes("MemFree: 1 kB\nMemTotal:       24588412 kB\n"),
            Some(24588412 * 1024)
        );
        assert_eq!(mem_total_bytes("MemFree: 1 kB\n"), None);
        let files = |files: &'static [(&'static str, &'static str)]| {
            move |path: &str| {
                files
                    .iter()
                    .find(|(name, _)| *name == path)
                    .map(|(_, text)| text.to_string())
            }
        };
        // cgroup v2: the unit's own limit, below the root's "max"; a parent's lower one counts.
        let v2 = files(&[
            ("/sys/fs/cgroup/memory.max", "max\n"),
            ("/sys/fs/cgroup/system.slice/memory.max", "max\n"),
            (
                "/sys/fs/cgroup/system.slice/parley.service/memory.max",
                "2147483648\n",
            ),
        ]);
        let own = "0::/system.slice/parley.service\n";
        assert_eq!(cgroup_memory_limit(own, v2), Some(2147483648));
        let parent = files(&[
            ("/sys/fs/cgroup/a/memory.max", "1000\n"),
            ("/sys/fs/cgroup/a/b/memory.max", "max\n"),
        ]);
        assert_eq!(cgroup_memory_limit("0::/a/b\n", parent), Some(1000));
        // No limit anywhere, or no files: none.
        assert_eq!(cgroup_memory_limit(own, files(&[])), None);
        // cgroup v1: the memory controller's line; "no limit" is a huge number.
        let v1 = files(&[(
            "/sys/fs/cgroup/memory/process_api/memory.limit_in_bytes",
            "9223372036854771712\n",
        )]);
        let lines = "12:cpu,cpuacct:/x\n4:memory:/process_api\n";
        assert_eq!(cgroup_memory_limit(lines, v1), Some(9223372036854771712));
        assert_eq!(cgroup_memory_limit("1:cpu:/x\n", v1), None);
    }

    #[test]
    fn client_id_index() {
        let config = run(&[], &[]).unwrap();
        assert_eq!(
            config.client_ids.window_ms,
            ClientIdLimits::DEFAULT.window_ms
        );
        assert_eq!(
            config.client_ids.max_entries,
            default_client_ids_in_memory()
        );
        assert!((100_000..=16_000_000).contains(&config.client_ids.max_entries));
        let config = run(
            &["--client-id-hours", "48"],
            &[("PARLEY_CLIENT_IDS_IN_MEMORY", "0")],
        )
        .unwrap();
        assert_eq!(config.client_ids.window_ms, 48 * 60 * 60 * 1000);
        assert_eq!(config.client_ids.max_entries, 0);
        // The protocol promises at least a day.
        let refused = run(&["--client-id-hours", "23"], &[]).err().unwrap();
        assert!(refused.contains("from 24"), "{refused}");
    }

    #[test]
    fn log_filter() {
        let config = run(&[], &[("PARLEY_LOG", "debug,sled=info")]).unwrap();
        assert_eq!(config.log, log::Filter::parse("debug,sled=info").unwrap());
        assert_eq!(run(&[], &[]).unwrap().log, log::Filter::default());
        let refused = run(&[], &[("PARLEY_LOG", "info,sled=loud")]).err().unwrap();
        assert!(
            refused.starts_with("PARLEY_LOG=info,sled=loud: "),
            "{refused}"
        );
    }

    #[test]
    fn rejects_bad_input() {
        assert!(run(&["--nope"], &[]).is_err());
        assert!(run(&["--listen"], &[]).is_err());
        assert!(run(&["--public-url", "ftp://x"], &[]).is_err());
        assert!(run(&[], &[("PARLEY_JWT_SECRET", "short")]).is_err());
    }
}
