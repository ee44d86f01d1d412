//! Getting clients ready to talk: for parley, real users, logins, sessions and groups over the
//! REST API (argon2 makes this the slow part, so it runs on a few threads and shows progress);
//! for a reference relay, just the `?user=&group=` paths it routes by.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::http_client::{json_str, HttpClient};

/// Where the server is, from `--url`.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub addr: SocketAddr,
    /// The `Host` header: `host:port` as given.
    pub host: String,
}

impl Endpoint {
    pub fn parse(url: &str) -> Result<Endpoint, String> {
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("ws://"))
            .ok_or_else(|| format!("--url {url}: expected http://host:port or ws://host:port"))?;
        let host = rest.split('/').next().unwrap_or_default().to_string();
        let addr = std::net::ToSocketAddrs::to_socket_addrs(&host)
            .map_err(|e| format!("--url {url}: {e}"))?
            .next()
            .ok_or_else(|| format!("--url {url}: no address"))?;
        Ok(Endpoint { addr, host })
    }
}

/// Which kind of server is at the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// parley itself: real setup, then the WebSocket at each session's messaging path.
    Parley,
    /// A bare reference relay: no auth; the WebSocket at `/ws?user=U&group=G`.
    Relay,
}

/// One account: what a client or a login storm needs.
#[derive(Debug, Clone)]
pub struct Account {
    pub username: String,
    pub password: String,
    /// The WebSocket path (`/<access token>` for parley).
    pub ws_path: String,
}

/// Accounts, and groups made of consecutive accounts.
pub struct Fleet {
    pub accounts: Vec<Account>,
    /// Group ids; account `i` is in group `i / group_size`.
    pub groups: Vec<String>,
    pub group_size: usize,
}

impl Fleet {
    pub fn group_of(&self, account: usize) -> usize {
        account / self.group_size
    }
}

const PASSWORD: &str = "load-test-password";

/// Builds `users` accounts in groups of `group_size` (the last group may be smaller).
pub fn build(
    target: Target,
    endpoint: &Endpoint,
    users: usize,
    group_size: usize,
    threads: usize,
) -> Result<Fleet, String> {
    let group_size = group_size.max(1);
    let group_count = users.div_ceil(group_size);
    match target {
        Target::Relay => Ok(Fleet {
            accounts: (0..users)
                .map(|i| Account {
                    username: format!("u{i}"),
                    password: PASSWORD.to_string(),
                    ws_path: format!("/ws?user={i}&group={}", relay_group_id(i / group_size)),
                })
                .collect(),
            groups: (0..group_count).map(relay_group_id).collect(),
            group_size,
        }),
        Target::Parley => build_on_parley(endpoint, users, group_size, group_count, threads),
    }
}

/// A UUID-shaped id, so relay messages are the same size as parley's.
fn relay_group_id(group: usize) -> String {
    format!("00000000-0000-4000-8000-{group:012}")
}

fn build_on_parley(
    endpoint: &Endpoint,
    users: usize,
    group_size: usize,
    group_count: usize,
    threads: usize,
) -> Result<Fleet, String> {
    // Names unique per run, so runs can repeat against one server.
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let names: Vec<String> = (0..users).map(|i| format!("lg{run}u{i}")).collect();

    let user_ids = parallel(endpoint, users, threads, "register", |http, i| {
        let body = format!(
            r#"{{"username":"{0}","email":"{0}@load.test","password":"{PASSWORD}"}}"#,
            names[i]
        );
        let answer = call(http, "POST", "/users", None, &body, 201)?;
        field(&answer, "id")
    })?;
    let tokens = parallel(endpoint, users, threads, "login", |http, i| {
        let body = format!(r#"{{"username":"{}","password":"{PASSWORD}"}}"#, names[i]);
        let answer = call(http, "POST", "/login", None, &body, 200)?;
        field(&answer, "token")
    })?;
    let ws_paths = parallel(endpoint, users, threads, "sessions", |http, i| {
        let body = format!(
            r#"{{"device_id":"load-{i}","platform":"web","model":"parley-load","build":1}}"#
        );
        let answer = call(http, "POST", "/sessions", Some(&tokens[i]), &body, 201)?;
        let url = field(&answer, "messaging_url")?;
        let after_scheme = url.split_once("://").map_or(url.as_str(), |(_, rest)| rest);
        let path = after_scheme
            .find('/')
            .map(|slash| after_scheme[slash..].to_string())
            .ok_or_else(|| format!("messaging_url without a path: {url}"))?;
        Ok(path)
    })?;
    let groups = parallel(endpoint, group_count, threads, "groups", |http, g| {
        let members = g * group_size..((g + 1) * group_size).min(users);
        let creator = members.start;
        let others: Vec<String> = members
            .clone()
            .skip(1)
            .map(|m| format!("\"{}\"", user_ids[m]))
            .collect();
        let body = format!(r#"{{"name":"load-{g}","user_ids":[{}]}}"#, others.join(","));
        let answer = call(http, "POST", "/groups", Some(&tokens[creator]), &body, 201)?;
        field(&answer, "id")
    })?;

    Ok(Fleet {
        accounts: names
            .into_iter()
            .zip(ws_paths)
            .map(|(username, ws_path)| Account {
                username,
                password: PASSWORD.to_string(),
                ws_path,
            })
            .collect(),
        groups,
        group_size,
    })
}

/// One REST call that must answer `expected`; a full hashing queue (503) is retried.
pub fn call(
    http: &mut HttpClient,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: &str,
    expected: u16,
) -> Result<String, String> {
    loop {
        let answer = http
            .request(method, path, bearer, body)
            .map_err(|e| format!("{method} {path}: {e}"))?;
        match answer.status {
            status if status == expected => return Ok(answer.body_text()),
            503 => std::thread::sleep(Duration::from_millis(20)),
            429 => {
                return Err(format!(
                    "{method} {path}: 429, the server rate-limits logins; for a load test start \
                     it with PARLEY_AUTH_RATE=0 (and PARLEY_MAX_CONNECTIONS_PER_IP=0)"
                ))
            }
            status => {
                return Err(format!(
                    "{method} {path}: expected {expected}, got {status}: {}",
                    answer.body_text()
                ))
            }
        }
    }
}

/// Logs `account` in: its login token and user id.
pub fn login(http: &mut HttpClient, account: &Account) -> Result<(String, String), String> {
    let body = format!(
        r#"{{"username":"{}","password":"{}"}}"#,
        account.username, account.password
    );
    let answer = call(http, "POST", "/login", None, &body, 200)?;
    Ok((field(&answer, "token")?, field(&answer, "user_id")?))
}

fn field(body: &str, key: &str) -> Result<String, String> {
    json_str(body, key)
        .map(str::to_string)
        .ok_or_else(|| format!("answer without `{key}`: {body}"))
}

/// Runs `job(http, i)` for i in 0..n on `threads` threads, each with its own keep-alive
/// connection, printing progress about once a second.
pub fn parallel<T: Send>(
    endpoint: &Endpoint,
    n: usize,
    threads: usize,
    label: &str,
    job: impl Fn(&mut HttpClient, usize) -> Result<T, String> + Sync,
) -> Result<Vec<T>, String> {
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<T, String>>>> = Mutex::new((0..n).map(|_| None).collect());
    let workers = threads.clamp(1, n.max(1));
    let running = AtomicUsize::new(workers);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                let mut http = HttpClient::new(endpoint.addr, &endpoint.host);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        running.fetch_sub(1, Ordering::Relaxed);
                        return;
                    }
                    let result = job(&mut http, i);
                    let failed = result.is_err();
                    results.lock().expect("no panics hold it")[i] = Some(result);
                    done.fetch_add(1, Ordering::Relaxed);
                    if failed {
                        next.store(n, Ordering::Relaxed);
                    }
                }
            });
        }
        let mut last_print = Instant::now();
        while running.load(Ordering::Relaxed) > 0 {
            std::thread::sleep(Duration::from_millis(50));
            if last_print.elapsed() >= Duration::from_secs(1) {
                last_print = Instant::now();
                let finished = done.load(Ordering::Relaxed);
                let rate = finished as f64 / started.elapsed().as_secs_f64();
                eprintln!("parley-load: setup {label}: {finished}/{n} ({rate:.0}/s)");
            }
        }
    });
    let results = results.into_inner().expect("no panics hold it");
    let mut out = Vec::with_capacity(n);
    for result in results {
        match result {
            Some(Ok(value)) => out.push(value),
            Some(Err(e)) => return Err(format!("setup {label}: {e}")),
            None => return Err(format!("setup {label}: stopped after an earlier failure")),
        }
    }
    eprintln!(
        "parley-load: setup {label}: {n} in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(out)
}
