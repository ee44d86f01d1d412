//! Configuration from flags and environment variables, validated once at start, plus the limits
//! every other module reads from it.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

pub const USAGE: &str = "\
parley: a group-chat server (HTTP + WebSocket on one event loop, durable in sled)

USAGE:
    parley [OPTIONS]

OPTIONS (each also read from the environment variable shown):
    --listen ADDR        address to listen on                  [PARLEY_LISTEN, default 127.0.0.1:3000]
    --data-dir DIR       where the database and the JWT secret live
                                                              [PARLEY_DATA_DIR, default ./parley-data]
    --public-url URL     base URL clients reach the server at, used to build messaging_url
                         (http(s)://host[:port] or ws(s)://...; default: the request's Host header)
                                                              [PARLEY_PUBLIC_URL]
    --hash-workers N     password-hashing threads              [PARLEY_HASH_WORKERS, default cores - 1, at least 1]
    --cache-mb N         sled page cache size in MiB           [PARLEY_CACHE_MB, default 64]
    -h, --help           print this help
    -V, --version        print the version

ENVIRONMENT:
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
    /// An HTTP connection with no complete request for this long is closed.
    pub http_idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head_bytes: 8 * 1024,
            max_headers: 64,
            max_body_bytes: 64 * 1024,
            max_ws_message_bytes: 64 * 1024,
            ws_read_buffer_bytes: 4 * 1024,
            max_outbox_bytes: 1024 * 1024,
            max_data_bytes: 16 * 1024,
            sync_default_limit: 500,
            sync_max_limit: 1000,
            hash_queue: 256,
            ping_interval: Duration::from_secs(10),
            pong_timeout: Duration::from_secs(30),
            http_idle_timeout: Duration::from_secs(60),
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

/// Parses flags, falling back to the environment (`env` is passed in so tests need not touch the
/// process environment).
pub fn parse(
    args: impl IntoIterator<Item = String>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Command, String> {
    let mut listen = env("PARLEY_LISTEN");
    let mut data_dir = env("PARLEY_DATA_DIR");
    let mut public_url = env("PARLEY_PUBLIC_URL");
    let mut hash_workers = env("PARLEY_HASH_WORKERS");
    let mut cache_mb = env("PARLEY_CACHE_MB");

    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_string(), Some(value.to_string()))
            }
            _ => (arg.clone(), None),
        };
        let slot = match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "-V" | "--version" => return Ok(Command::Version),
            "--listen" => &mut listen,
            "--data-dir" => &mut data_dir,
            "--public-url" => &mut public_url,
            "--hash-workers" => &mut hash_workers,
            "--cache-mb" => &mut cache_mb,
            _ => return Err(format!("unknown argument `{arg}` (see --help)")),
        };
        let value = match inline {
            Some(value) => value,
            None => args
                .next()
                .ok_or_else(|| format!("{flag} needs a value (see --help)"))?,
        };
        *slot = Some(value);
    }

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
    let hash_workers = match hash_workers {
        Some(n) => n
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=64).contains(n))
            .ok_or_else(|| format!("--hash-workers {n}: expected a number from 1 to 64"))?,
        None => default_hash_workers(),
    };
    let cache_bytes = match cache_mb {
        Some(n) => {
            n.parse::<u64>()
                .ok()
                .filter(|n| (1..=65536).contains(n))
                .ok_or_else(|| format!("--cache-mb {n}: expected a number from 1 to 65536"))?
                * 1024
                * 1024
        }
        None => 64 * 1024 * 1024,
    };
    let jwt_secret = match env("PARLEY_JWT_SECRET") {
        Some(secret) if secret.len() < 32 => {
            return Err("PARLEY_JWT_SECRET must be at least 32 bytes".to_string())
        }
        Some(secret) => Some(secret.into_bytes()),
        None => None,
    };

    Ok(Command::Run(Box::new(Config {
        listen,
        data_dir,
        public_url,
        jwt_secret,
        hash_workers,
        cache_bytes,
        limits: Limits::default(),
    })))
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
    fn rejects_bad_input() {
        assert!(run(&["--nope"], &[]).is_err());
        assert!(run(&["--listen"], &[]).is_err());
        assert!(run(&["--public-url", "ftp://x"], &[]).is_err());
        assert!(run(&[], &[("PARLEY_JWT_SECRET", "short")]).is_err());
    }
}
