//! Configuration from flags and environment variables, validated once at start, plus the limits
//! every other module reads from it.

use std::ffi::OsString;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser, Subcommand};

mod accounts;
mod host;
mod limits;

use crate::log;
use crate::proxies::TrustedProxies;
use crate::store::client_ids::ClientIdLimits;
use accounts::admin_config;
pub use accounts::{AccountLimits, AdminConfig, MIN_ADMIN_TOKEN_BYTES};
#[cfg(test)]
use host::{cgroup_memory_limit, mem_total_bytes};
use host::{default_client_ids_in_memory, default_hash_workers};
pub use limits::Limits;

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
    /// Start even when the store holds less than its high-water mark says was durable.
    pub accept_data_loss: bool,
    pub limits: Limits,
    /// Peers whose `X-Forwarded-For`/`-Proto` are believed; none by default.
    pub trusted_proxies: TrustedProxies,
    /// Accounts and devices (issue #19).
    pub accounts: AccountLimits,
    /// The operator's admin API; `None` (the default) leaves `/admin/` unrouted.
    pub admin: Option<AdminConfig>,
    /// Presence events and fields (issue #20); on by default.
    pub presence: bool,
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
            accept_data_loss: false,
            limits: Limits::default(),
            trusted_proxies: TrustedProxies::default(),
            accounts: AccountLimits::default(),
            admin: None,
            presence: true,
        }
    }
}

/// The command line: each flag falls back to its environment variable, a flag wins over it.
/// Only the syntax lives here; [`parse`] turns it into a [`Config`]. The help texts are the
/// README's configuration table (a test keeps the two the same).
#[derive(Debug, Parser)]
#[command(
    name = "parley",
    version,
    about = "parley: a group-chat server (HTTP + WebSocket on one event loop, durable in sled)",
    after_help = ENVIRONMENT_HELP,
    after_long_help = ENVIRONMENT_HELP,
    max_term_width = 100
)]
struct Args {
    /// address to listen on (127.0.0.1:0 picks a free port; the log line says which)
    #[arg(
        long,
        env = "PARLEY_LISTEN",
        value_name = "ADDR",
        default_value = "127.0.0.1:3000",
        value_parser = socket_addr
    )]
    listen: SocketAddr,

    /// the sled database (DIR/db) and the generated JWT secret (DIR/jwt-secret)
    #[arg(
        long,
        env = "PARLEY_DATA_DIR",
        value_name = "DIR",
        default_value = "./parley-data"
    )]
    data_dir: PathBuf,

    /// base of messaging_url (https://chat.example.com gives wss://chat.example.com/<token>);
    /// without it the request's Host header is used [default: none]
    #[arg(long, env = "PARLEY_PUBLIC_URL", value_name = "URL")]
    public_url: Option<String>,

    /// argon2 password-hashing threads; they never run on the event loop's thread and run as
    /// SCHED_IDLE, so a login storm cannot delay the loop even on one core (logins then wait for
    /// idle time); while they hash, the store's flush threads step up from SCHED_IDLE to normal
    /// priority so acks do not wait behind them (needs RLIMIT_NICE ≥ 20 when not root:
    /// ulimit -e 20, or the systemd unit's LimitNICE=20) [default: cores − 1, at least 1]
    #[arg(long, env = "PARLEY_HASH_WORKERS", value_name = "N", value_parser = whole::<1, 64>)]
    hash_workers: Option<u64>,

    /// sled page cache (sled's own default is 1 GiB, too much for a small host)
    #[arg(
        long,
        env = "PARLEY_CACHE_MB",
        value_name = "N",
        default_value_t = 64,
        value_parser = whole::<1, 65536>
    )]
    cache_mb: u64,

    /// a retried send (same user, same client id) is recognised and answered with its original
    /// ack for at least this long; at least 24 (the protocol's promise)
    #[arg(
        long,
        env = "PARLEY_CLIENT_ID_HOURS",
        value_name = "N",
        default_value_t = ClientIdLimits::DEFAULT.window_ms / (60 * 60 * 1000),
        value_parser = whole::<24, { 24 * 366 }>
    )]
    client_id_hours: u64,

    /// sends with a client id in the in-memory retry index, 51 to 61 bytes each resident (52
    /// measured at 3 million; up to 95 allocated). The index holds a day of sends, so it only
    /// fills on a server that stores that many sends with ids within the window (or in a load
    /// test); beyond it, a send's record is written to sled, which costs the server about half
    /// its speed for those sends; 0 keeps every record in sled [default: a 32nd of the memory at
    /// 96 bytes a send, from 100000 to 16 million: about 350000 on a 1 GiB host, 8 million on 24
    /// GiB; the process's cgroup memory limit (a systemd MemoryMax=, a container's) counts when
    /// lower; the log's first line says the value]
    #[arg(
        long,
        env = "PARLEY_CLIENT_IDS_IN_MEMORY",
        value_name = "N",
        value_parser = whole::<0, { 1 << 32 }>
    )]
    client_ids_in_memory: Option<u64>,

    /// open connections at most; beyond, new ones get 503 and are closed
    #[arg(
        long,
        env = "PARLEY_MAX_CONNECTIONS",
        value_name = "N",
        default_value_t = Limits::default().max_connections as u64,
        value_parser = whole::<1, { 1 << 24 }>
    )]
    max_connections: u64,

    /// open connections per client address (429 beyond); 0 = no cap (load tests from one
    /// address)
    #[arg(
        long,
        env = "PARLEY_MAX_CONNECTIONS_PER_IP",
        value_name = "N",
        default_value_t = Limits::default().max_connections_per_ip as u64,
        value_parser = whole::<0, { 1 << 24 }>
    )]
    max_connections_per_ip: u64,

    /// open WebSockets per user, over all their sessions (the upgrade gets 403 limit_reached
    /// beyond); 0 = no cap
    #[arg(
        long,
        env = "PARLEY_MAX_CONNECTIONS_PER_USER",
        value_name = "N",
        default_value_t = Limits::default().max_connections_per_user as u64,
        value_parser = whole::<0, { 1 << 24 }>
    )]
    max_connections_per_user: u64,

    /// bytes queued for writing over all connections at most: past it, the WebSockets furthest
    /// behind (whose socket is full and that hold more than their share) are closed with 1008
    /// as slow consumers
    #[arg(
        long,
        env = "PARLEY_MAX_QUEUED_OUTPUT_BYTES",
        value_name = "N",
        default_value_t = Limits::default().max_queued_output_bytes as u64,
        value_parser = whole::<65536, { 1 << 40 }>
    )]
    max_queued_output_bytes: u64,

    /// registrations + logins per minute per client address (429 with Retry-After beyond); 0 =
    /// no limit
    #[arg(
        long,
        env = "PARLEY_AUTH_RATE",
        value_name = "N",
        default_value_t = Limits::default().auth_rate_per_minute as u64,
        value_parser = whole::<0, { 1 << 20 }>
    )]
    auth_rate: u64,

    /// members one group may have (403 limit_reached beyond); at most what lets a group's event
    /// 70, 39 bytes a member, fit half the per-connection output cap (13,000 at 1 MiB)
    #[arg(
        long,
        env = "PARLEY_MAX_GROUP_MEMBERS",
        value_name = "N",
        default_value_t = Limits::default().max_group_members as u64,
        value_parser = whole::<1, { 1 << 24 }>
    )]
    max_group_members: u64,

    /// groups one user may belong to at once (403 limit_reached beyond)
    #[arg(
        long,
        env = "PARLEY_MAX_GROUPS_PER_USER",
        value_name = "N",
        default_value_t = Limits::default().max_groups_per_user as u64,
        value_parser = whole::<1, { 1 << 24 }>
    )]
    max_groups_per_user: u64,

    /// messages (method 40) one user may send per second, over all their connections, with a
    /// second's worth as a burst (event 90 rate_limited beyond, nothing stored); 0 = no limit
    /// (bulk imports, load tests)
    #[arg(
        long,
        env = "PARLEY_SENDS_PER_SECOND",
        value_name = "N",
        default_value_t = u64::from(Limits::default().sends_per_second),
        value_parser = whole::<0, { 1 << 20 }>
    )]
    sends_per_second: u64,

    /// typing notices (methods 60, 61) one user may send per second, as for sends; 0 = no limit
    #[arg(
        long,
        env = "PARLEY_TYPING_PER_SECOND",
        value_name = "N",
        default_value_t = u64::from(Limits::default().typing_per_second),
        value_parser = whole::<0, { 1 << 20 }>
    )]
    typing_per_second: u64,

    /// joins and leaves one user may make per minute (for themselves or others), with a
    /// minute's worth as a burst (429 rate_limited beyond, nothing changed): each change rewrites
    /// the membership's record; 0 = no limit
    #[arg(
        long,
        env = "PARLEY_MEMBERSHIP_CHANGES_PER_MINUTE",
        value_name = "N",
        default_value_t = u64::from(Limits::default().membership_changes_per_minute),
        value_parser = whole::<0, { 1 << 20 }>
    )]
    membership_changes_per_minute: u64,

    /// comma-separated Origins allowed to open a WebSocket (403 otherwise); requests without
    /// Origin (non-browser clients) are always allowed [default: any]
    #[arg(long, env = "PARLEY_ALLOWED_ORIGINS", value_name = "LIST")]
    allowed_origins: Option<String>,

    /// comma-separated addresses and CIDR blocks of reverse proxies: only a request whose TCP
    /// peer is one of them has its X-Forwarded-For (the rightmost address not a trusted proxy)
    /// and X-Forwarded-Proto believed, for the per-address rate limit and the scheme of
    /// messaging_url [default: none]
    #[arg(long, env = "PARLEY_TRUSTED_PROXIES", value_name = "LIST")]
    trusted_proxies: Option<String>,

    /// live sessions (devices) per user (POST /sessions gets 403 limit_reached beyond; DELETE
    /// /sessions/{id} frees one); 0 = no cap
    #[arg(
        long,
        env = "PARLEY_MAX_SESSIONS_PER_USER",
        value_name = "N",
        default_value_t = AccountLimits::default().max_sessions_per_user as u64,
        value_parser = whole::<0, { 1 << 24 }>
    )]
    max_sessions_per_user: u64,

    /// lookups by username (GET /users?username=) per minute per client address (429 with
    /// Retry-After beyond), so that names cannot be enumerated; 0 = no limit
    #[arg(
        long,
        env = "PARLEY_LOOKUP_RATE",
        value_name = "N",
        default_value_t = u64::from(AccountLimits::default().lookup_rate_per_minute),
        value_parser = whole::<0, { 1 << 20 }>
    )]
    lookup_rate: u64,

    /// bearer token of the operator's admin API under /admin/ (off without it or
    /// --admin-token-file), at least 32 characters; a flag shows in ps, so prefer the variable or
    /// the file [default: none]
    #[arg(long, env = "PARLEY_ADMIN_TOKEN", value_name = "TOKEN")]
    admin_token: Option<String>,

    /// a file holding the admin token (surrounding whitespace trimmed) [default: none]
    #[arg(long, env = "PARLEY_ADMIN_TOKEN_FILE", value_name = "PATH")]
    admin_token_file: Option<PathBuf>,

    /// comma-separated addresses and CIDR blocks from which, besides loopback, /admin/ is
    /// answered (403 otherwise); the TCP peer counts, never X-Forwarded-For [default: loopback
    /// only]
    #[arg(long, env = "PARLEY_ADMIN_ADDRESSES", value_name = "LIST")]
    admin_addresses: Option<String>,

    /// a request must arrive whole within this long of its first byte (408 and close beyond;
    /// slowloris)
    #[arg(
        long,
        env = "PARLEY_REQUEST_TIMEOUT_SECS",
        value_name = "N",
        default_value_t = Limits::default().request_timeout.as_secs(),
        value_parser = whole::<1, 3600>
    )]
    request_timeout_secs: u64,

    /// keep-alive connections with no request in progress are closed after this long
    #[arg(
        long,
        env = "PARLEY_IDLE_TIMEOUT_SECS",
        value_name = "N",
        default_value_t = Limits::default().http_idle_timeout.as_secs(),
        value_parser = whole::<1, 86400>
    )]
    idle_timeout_secs: u64,

    /// a WebSocket echo at /_echo on the same connection code, for the Autobahn conformance
    /// cases; on with the bare flag or 1, true, yes or on [default: off]
    // `--echo-endpoint` alone is `=1`; `=VALUE` and the variable take any word, as before: one of
    // the four is on, anything else off.
    #[arg(
        long,
        env = "PARLEY_ECHO_ENDPOINT",
        value_name = "ON",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "1",
        value_parser = switch
    )]
    echo_endpoint: Option<bool>,

    /// start even when the store holds less than was durable before (its high-water mark,
    /// DIR/durable, is ahead of it, or sled's data file is gone): logs what was lost and serves
    /// what is left; without it parley refuses to start (docs/OPERATIONS.md); on with the bare
    /// flag or 1, true, yes or on [default: off]
    #[arg(
        long,
        env = "PARLEY_ACCEPT_DATA_LOSS",
        value_name = "ON",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "1",
        value_parser = switch
    )]
    accept_data_loss: Option<bool>,

    /// presence: event 50 when a user's first WebSocket opens and 5 s after their last one
    /// closed, and online and last_seen in the user lookups, for those sharing a group; on or off
    #[arg(long, env = "PARLEY_PRESENCE", value_name = "MODE", default_value = "on",
        action = clap::ArgAction::Set, value_parser = on_off)]
    presence: bool,

    #[command(subcommand)]
    tool: Option<Tool>,
}

/// The operator's tools; without one, `parley` runs the server.
#[derive(Debug, Subcommand)]
enum Tool {
    /// verify a data directory offline (not while a server runs on it): decode every record and
    /// event, compare the store with its high-water mark, print the counts; exit 0 when whole
    Check {
        /// the data directory (what --data-dir names)
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// copy a data directory to DEST (a new directory), consistent, with every message
    /// acknowledged before it started; while the server runs it asks it (SIGUSR1) to make the
    /// copy, otherwise it copies the directory itself (docs/OPERATIONS.md)
    Backup {
        /// the data directory to copy
        #[arg(
            long,
            env = "PARLEY_DATA_DIR",
            value_name = "DIR",
            default_value = "./parley-data"
        )]
        data_dir: PathBuf,
        /// where the copy goes; must not exist yet
        #[arg(value_name = "DEST")]
        dest: PathBuf,
    },
}

/// What the command line asks for: the server, or one of the operator's tools.
#[derive(Debug)]
pub enum Command {
    Serve(Box<Config>),
    Check { dir: PathBuf },
    Backup { data_dir: PathBuf, dest: PathBuf },
}

/// Parses the command line (`args` starts with the program's name) into the server's
/// configuration or a tool; errors as [`parse`]'s.
pub fn command<I, T>(args: I) -> Result<Command, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let mut args = Args::try_parse_from(args)?;
    match args.tool.take() {
        Some(Tool::Check { dir }) => Ok(Command::Check { dir }),
        Some(Tool::Backup { data_dir, dest }) => Ok(Command::Backup { data_dir, dest }),
        None => config_of(args).map(|config| Command::Serve(Box::new(config))),
    }
}

/// The variables without a flag, after the options in `--help`.
const ENVIRONMENT_HELP: &str = "\
Environment only:
  PARLEY_LOG         log level: error, warn, info, debug, trace, then optionally comma-separated
                     target=level pairs for the dependencies' own lines (sled, mio, tungstenite;
                     warn unless named, or quieter with a quieter level), e.g. info,sled=debug;
                     a dependency's line names it, parley: WARN sled::pagecache: ...; logs never
                     contain tokens, passwords or message contents [default: info]
  PARLEY_JWT_SECRET  HS256 secret, at least 32 bytes; when unset, 32 random bytes are generated
                     on first start and kept (mode 0600) in the data dir, so tokens survive
                     restarts [default: generated]";

/// A whole number from `MIN` to `MAX`.
fn whole<const MIN: u64, const MAX: u64>(text: &str) -> Result<u64, String> {
    text.trim()
        .parse::<u64>()
        .ok()
        .filter(|n| (MIN..=MAX).contains(n))
        .ok_or_else(|| format!("expected a whole number from {MIN} to {MAX}"))
}

/// The first address a host:port resolves to.
fn socket_addr(text: &str) -> Result<SocketAddr, String> {
    text.to_socket_addrs()
        .map_err(|e| e.to_string())?
        .next()
        .ok_or_else(|| "no address".to_string())
}

/// `--echo-endpoint`'s word: 1, true, yes or on is on; anything else off (never an error).
fn switch(text: &str) -> Result<bool, String> {
    Ok(matches!(text, "1" | "true" | "yes" | "on"))
}

/// `on` or `off`, nothing else: a typo must not silently pick one.
fn on_off(text: &str) -> Result<bool, String> {
    match text {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err("expected `on` or `off`".to_string()),
    }
}

/// Parses the command line (`args` starts with the program's name), each flag falling back to
/// its `PARLEY_*` environment variable, and validates the result. `--help` and `--version` come
/// back as errors of their kind: [`clap::Error::exit`] prints them on stdout and exits 0, and
/// prints any other error on stderr and exits 2.
pub fn parse<I, T>(args: I) -> Result<Config, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    config_of(Args::try_parse_from(args)?)
}

/// The server's configuration from the parsed command line, validated.
fn config_of(args: Args) -> Result<Config, clap::Error> {
    let invalid = |message: String| Args::command().error(ErrorKind::ValueValidation, message);
    let env = |key: &str| std::env::var(key).ok();

    let public_url = args
        .public_url
        .filter(|u| !u.trim().is_empty())
        .map(|u| normalize_public_url(&u))
        .transpose()
        .map_err(invalid)?;
    let log = match env("PARLEY_LOG") {
        Some(text) => {
            log::Filter::parse(&text).map_err(|err| invalid(format!("PARLEY_LOG={text}: {err}")))?
        }
        None => log::Filter::default(),
    };
    let jwt_secret = match env("PARLEY_JWT_SECRET") {
        Some(secret) if secret.len() < crate::auth::MIN_SECRET_BYTES => {
            return Err(invalid(
                "PARLEY_JWT_SECRET must be at least 32 bytes".to_string(),
            ))
        }
        Some(secret) => Some(secret.into_bytes()),
        None => None,
    };
    let allowed_origins = args
        .allowed_origins
        .map(|list| {
            list.split(',')
                .map(|o| o.trim().trim_end_matches('/').to_string())
                .filter(|o| !o.is_empty())
                .collect()
        })
        .unwrap_or_default();

    let trusted_proxies =
        TrustedProxies::parse(args.trusted_proxies.as_deref().unwrap_or("")).map_err(invalid)?;
    let admin = admin_config(
        args.admin_token,
        args.admin_token_file,
        args.admin_addresses.as_deref(),
    )
    .map_err(invalid)?;
    let limits = Limits {
        max_connections: args.max_connections as usize,
        max_connections_per_ip: args.max_connections_per_ip as usize,
        auth_rate_per_minute: args.auth_rate as u32,
        request_timeout: Duration::from_secs(args.request_timeout_secs),
        http_idle_timeout: Duration::from_secs(args.idle_timeout_secs),
        max_group_members: args.max_group_members as usize,
        max_groups_per_user: args.max_groups_per_user as usize,
        sends_per_second: args.sends_per_second as u32,
        typing_per_second: args.typing_per_second as u32,
        membership_changes_per_minute: args.membership_changes_per_minute as u32,
        max_connections_per_user: args.max_connections_per_user as usize,
        max_queued_output_bytes: args.max_queued_output_bytes as usize,
        ..Limits::default()
    };
    limits.check().map_err(invalid)?;

    Ok(Config {
        listen: args.listen,
        data_dir: args.data_dir,
        public_url,
        jwt_secret,
        hash_workers: args
            .hash_workers
            .map_or_else(default_hash_workers, |n| n as usize),
        cache_bytes: args.cache_mb * 1024 * 1024,
        client_ids: ClientIdLimits {
            window_ms: args.client_id_hours * 60 * 60 * 1000,
            max_entries: args
                .client_ids_in_memory
                .map_or_else(default_client_ids_in_memory, |n| n as usize),
        },
        log,
        allowed_origins,
        echo_endpoint: args.echo_endpoint.unwrap_or(false),
        accept_data_loss: args.accept_data_loss.unwrap_or(false),
        limits,
        trusted_proxies,
        accounts: AccountLimits {
            max_sessions_per_user: args.max_sessions_per_user as usize,
            lookup_rate_per_minute: args.lookup_rate as u32,
        },
        admin,
        presence: args.presence,
    })
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
mod tests;
