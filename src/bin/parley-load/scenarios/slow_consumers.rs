//! The `slow-consumers` scenario (issue #18, finding 5): N WebSockets that never read, flooded
//! through a group until the server closes them, then dropped; the server's RSS before, at the
//! peak and after, and its queued-output gauge, show whether the memory comes back.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::{round, Options, Report};
use crate::http_client::HttpClient;
use crate::setup::{self, Endpoint, Target};
use crate::stats::proc_sample;
use crate::swarm::{event_type, Swarm};

/// WebSockets per account: under the server's default `--max-connections-per-user` (100).
const PER_USER: usize = 100;
/// The longest the flood runs when the server never closes the never-readers.
const FLOOD_LIMIT: Duration = Duration::from_secs(120);
/// How often the flood samples RSS and the metrics.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// `slow-consumers`: `--conns` never-reading WebSockets over several users in one group; one
/// member sends `--data-bytes` messages (16 KB at least), `--window` outstanding, until the
/// server has closed them all; then they are dropped and the server's RSS is read after
/// `--hold` seconds.
pub fn slow_consumers(options: &Options) -> Result<Report, String> {
    if options.target != Target::Parley {
        return Err("slow-consumers runs against parley only".to_string());
    }
    let endpoint = &options.endpoint;
    let pid = match options.server_pid {
        Some(pid) => pid,
        None => listening_pid(endpoint.addr.port())
            .ok_or("no --server-pid, and no process of ours listens on the --url's port")?,
    };
    let rss = || proc_sample(pid).map(|s| s.rss_kib);
    let conns = options.conns.max(1);
    let users = conns.div_ceil(PER_USER) + 1;
    let fleet = setup::build(
        Target::Parley,
        endpoint,
        users,
        users,
        options.setup_threads,
    )?;
    let mut http = HttpClient::new(endpoint.addr, &endpoint.host);
    let dropped_at_start = dropped(&mut http)?;
    std::thread::sleep(Duration::from_secs(1));
    let before = rss().ok_or("the server's /proc entry is unreadable")?;

    let mut never_read = Vec::with_capacity(conns);
    for i in 0..conns {
        let account = &fleet.accounts[1 + i % (users - 1)];
        never_read.push(open_unread(endpoint, &account.ws_path)?);
    }
    eprintln!("parley-load: slow-consumers: {conns} WebSockets open, never reading; flooding");
    let mut sender = Swarm::open(endpoint, vec![fleet.accounts[0].ws_path.clone()], 1)?;
    let data = "x".repeat(options.data_bytes.max(16_000));
    let send = format!(
        r#"{{"method":40,"body":{{"group_id":"{}","data":"{data}"}}}}"#,
        fleet.groups[0]
    );
    let (mut sent, mut acked) = (0u64, 0u64);
    let (mut peak, mut peak_queued) = (before, 0);
    let started = Instant::now();
    let mut next_sample = Instant::now();
    let mut closed = 0;
    while closed < conns as u64 && started.elapsed() < FLOOD_LIMIT {
        while sent - acked < options.window as u64 {
            sender.send(0, send.clone());
            sent += 1;
        }
        sender.tick(Duration::from_millis(10), &mut |_, text, _, _| {
            if event_type(text) == Some(21) {
                acked += 1;
            }
        })?;
        if sender.closed > 0 {
            return Err("the sender was closed by the server".to_string());
        }
        if Instant::now() >= next_sample {
            next_sample = Instant::now() + SAMPLE_EVERY;
            peak = peak.max(rss().unwrap_or(0));
            peak_queued = peak_queued.max(metric(&mut http, "parley_queued_output_bytes")?);
            closed = dropped(&mut http)? - dropped_at_start;
        }
    }
    let flood_s = started.elapsed().as_secs_f64();
    eprintln!("parley-load: slow-consumers: {closed} closed by the server; dropping all");
    drop(never_read);
    drop(sender);
    std::thread::sleep(Duration::from_secs_f64(options.hold));
    let after = rss().unwrap_or(0);
    let queued_after = metric(&mut http, "parley_queued_output_bytes")?;

    let mut report = Report::new("slow-consumers", options);
    report.add("conns", conns as u64);
    report.add("users", users as u64);
    report.add("messages_sent", sent);
    report.add("message_bytes", data.len() as u64);
    report.add("flood_s", round(flood_s));
    report.add("closed_by_server", closed);
    report.add("hold_s", options.hold);
    report.add("server_rss_before_kib", before);
    report.add("server_rss_peak_kib", peak);
    report.add("server_rss_after_kib", after);
    report.add("queued_output_peak_bytes", peak_queued);
    report.add("queued_output_after_bytes", queued_after);
    Ok(report)
}

/// A WebSocket upgraded over a blocking socket that is then never read.
fn open_unread(endpoint: &Endpoint, path: &str) -> Result<TcpStream, String> {
    let mut socket = TcpStream::connect(endpoint.addr).map_err(|e| format!("connect: {e}"))?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        endpoint.host
    );
    socket
        .write_all(request.as_bytes())
        .map_err(|e| format!("upgrade: {e}"))?;
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    // Byte by byte up to the end of the head, so no event after it is taken off the socket.
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        socket
            .read_exact(&mut byte)
            .map_err(|e| format!("upgrade answer: {e}"))?;
        head.push(byte[0]);
    }
    if !head.starts_with(b"HTTP/1.1 101") {
        return Err(format!(
            "upgrade refused: {}",
            String::from_utf8_lossy(&head).lines().next().unwrap_or("")
        ));
    }
    Ok(socket)
}

/// Connections the server closed for not keeping up, by either cap.
fn dropped(http: &mut HttpClient) -> Result<u64, String> {
    let own = metric(
        http,
        "parley_connections_dropped_total{reason=\"slow_consumer\"}",
    )?;
    let budget = metric(
        http,
        "parley_connections_dropped_total{reason=\"output_budget\"}",
    )?;
    Ok(own + budget)
}

/// One sample of `GET /metrics`, 0 when absent.
fn metric(http: &mut HttpClient, sample: &str) -> Result<u64, String> {
    let answer = http.request("GET", "/metrics", None, "")?;
    let text = answer.body_text();
    Ok(text
        .lines()
        .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0))
}

/// The process holding the listening TCP socket on `port`: its inode from /proc/net/tcp(6),
/// then the process with a descriptor on it (one of ours: others' are unreadable).
fn listening_pid(port: u16) -> Option<u32> {
    let wanted = format!(":{port:04X}");
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // local address, then state 0A (LISTEN), and the inode in the tenth column.
            if fields.len() > 9 && fields[1].ends_with(&wanted) && fields[3] == "0A" {
                inodes.push(format!("socket:[{}]", fields[9]));
            }
        }
    }
    for entry in fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(fds) = fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(link) = fs::read_link(fd.path()) {
                if inodes
                    .iter()
                    .any(|inode| link.as_os_str() == inode.as_str())
                {
                    return Some(pid);
                }
            }
        }
    }
    None
}
