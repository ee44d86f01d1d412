//! `parley-load`: a load generator for parley and for the bare reference relays it is compared
//! with. It speaks the protocol over real sockets to any base URL, sets up users, sessions and
//! groups when the target is parley, runs one scenario, and prints a table (or JSON).

mod http_client;
mod scenarios;
mod setup;
mod stats;
mod swarm;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};
use scenarios::{Options, Report};
use setup::{Endpoint, Target};

/// The command line; `parse` turns it into the scenario's [`Options`].
#[derive(Debug, Parser)]
#[command(
    name = "parley-load",
    about = "parley-load: drive parley (or a bare reference relay) over real sockets and measure it",
    arg_required_else_help = true,
    after_help = "Progress goes to stderr; the result to stdout. Exit status 0 when the scenario \
                  ran without errors or closed connections, 1 otherwise, 2 for bad arguments.",
    max_term_width = 100
)]
struct Args {
    /// what to run: fanout, rate, idle, sync, logins, sync-hog, slow-consumers, history or
    /// groups-list (see --help)
    #[arg(value_parser = SCENARIOS, hide_possible_values = true, long_help = SCENARIO_HELP)]
    scenario: String,
    /// server base URL
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:3000")]
    url: String,
    /// parley (real setup) or relay (/ws?user=U&group=G, no auth)
    #[arg(long, value_name = "KIND", default_value = "parley", value_parser = target)]
    target: Target,
    /// the server's process: CPU seconds and RSS from /proc
    #[arg(long, value_name = "PID", value_parser = pid)]
    server_pid: Option<u32>,
    /// WebSocket clients (fanout, rate, logins)
    #[arg(long, value_name = "C", default_value = "200", value_parser = number)]
    clients: f64,
    /// clients per group
    #[arg(long, value_name = "G", default_value = "10", value_parser = number)]
    group: f64,
    /// sends outstanding per client (fanout; sync uses 16 W)
    #[arg(long, value_name = "W", default_value = "4", value_parser = number)]
    window: f64,
    /// measured seconds (fanout, rate; each half of logins)
    #[arg(long, value_name = "D", default_value = "10", value_parser = number)]
    duration: f64,
    /// seconds of traffic before measuring
    #[arg(long, value_name = "S", default_value = "1", value_parser = number)]
    warmup: f64,
    /// sends per second (rate, logins)
    #[arg(long, value_name = "R", default_value = "2000", value_parser = number)]
    rate: f64,
    /// connections (idle)
    #[arg(long, value_name = "N", default_value = "10000", value_parser = number)]
    conns: f64,
    /// accounts the idle connections are spread over
    #[arg(long, value_name = "U", default_value = "100", value_parser = number)]
    users: f64,
    /// seconds the idle connections are held
    #[arg(long, value_name = "H", default_value = "5", value_parser = number)]
    hold: f64,
    /// events the sync user misses
    #[arg(long, value_name = "E", default_value = "100000", value_parser = number)]
    events: f64,
    /// groups the hog belongs to (sync-hog, groups-list; the server needs --max-groups-per-user at
    /// least this)
    #[arg(long, value_name = "N", default_value = "20000", value_parser = number)]
    hog_groups: f64,
    /// logins per second (logins)
    #[arg(long, value_name = "L", default_value = "20", value_parser = number)]
    logins: f64,
    /// bytes of `data` per message (the send stamp, then padding)
    #[arg(long, value_name = "B", default_value = "32", value_parser = number)]
    data_bytes: f64,
    /// give every send an `id`, as real clients do for retries: parley then also records (user,
    /// id) for each message; relays ignore it
    #[arg(long)]
    client_ids: bool,
    /// parallel REST connections during setup
    #[arg(long, value_name = "T", default_value = "4", value_parser = number)]
    setup_threads: f64,
    /// a name for the server under test, carried into the output
    #[arg(long, value_name = "NAME")]
    label: Option<String>,
    /// print one JSON object instead of the table
    #[arg(long)]
    json: bool,
}

const SCENARIOS: [&str; 9] = [
    "fanout",
    "rate",
    "idle",
    "sync",
    "logins",
    "sync-hog",
    "slow-consumers",
    "history",
    "groups-list",
];

const SCENARIO_HELP: &str = "\
what to run:
fanout   C clients in groups of G, each keeping W sends outstanding (closed loop) for
         D s: deliveries/s, acks/s, send-to-receive and ack latency, deliveries per
         server-CPU-s
rate     open loop at R sends/s in total: latency percentiles
idle     N WebSockets held open for H s: server RSS per connection
sync     a user with E missed events reconnects and pages through them: events/s
         (parley only)
logins   open loop at R sends/s, D s without and D s with logins at L/s: the p99 each time
         (parley only)
sync-hog open loop at R sends/s, D s without and D s with one user in N groups
         (--hog-groups) keeping 64 one-event syncs in flight: the p99 each time
         (parley only)
slow-consumers  N never-reading WebSockets flooded until the server closes them, then
         dropped: server RSS before, at the peak and H s after (parley only)
history  a group holds E messages; 200 history pages (50 messages) at its newest end, its
         middle and near its oldest end: p50 and p99 of each (parley only)
groups-list  one user in N groups (--hog-groups), another member's message in each:
         50 GET /groups, their latency and size (parley only)";

/// A finite number, at least 0.
fn number(text: &str) -> Result<f64, String> {
    text.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .ok_or_else(|| "expected a non-negative number".to_string())
}

fn target(text: &str) -> Result<Target, String> {
    match text {
        "parley" => Ok(Target::Parley),
        "relay" => Ok(Target::Relay),
        _ => Err("expected parley or relay".to_string()),
    }
}

fn pid(text: &str) -> Result<u32, String> {
    text.parse()
        .map_err(|_| "expected a process id".to_string())
}

fn main() -> ExitCode {
    // Help on stdout with 0; bad arguments, or none, on stderr with 2.
    let Cli {
        scenario,
        options,
        json,
        label,
    } = match parse(std::env::args_os()) {
        Ok(parsed) => parsed,
        Err(err) => err.exit(),
    };
    let result = match scenario.as_str() {
        "fanout" => scenarios::fanout(&options),
        "rate" => scenarios::rate(&options),
        "idle" => scenarios::idle(&options),
        "sync" => scenarios::sync(&options),
        "logins" => scenarios::logins(&options),
        "sync-hog" => scenarios::sync_hog(&options),
        "slow-consumers" => scenarios::slow_consumers(&options),
        "history" => scenarios::history(&options),
        "groups-list" => scenarios::groups_list(&options),
        other => {
            eprintln!("parley-load: unknown scenario `{other}` (see --help)");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(mut report) => {
            if let Some(label) = label {
                report.rows.insert(0, ("label", label.into()));
            }
            if json {
                println!("{}", to_json(&report));
            } else {
                print!("{}", to_table(&report));
            }
            if healthy(&report) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(message) => {
            eprintln!("parley-load: {scenario}: {message}");
            ExitCode::FAILURE
        }
    }
}

struct Cli {
    scenario: String,
    options: Options,
    json: bool,
    label: Option<String>,
}

fn parse<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args = Args::try_parse_from(args)?;
    let endpoint = Endpoint::parse(&args.url).map_err(|message| {
        Args::command().error(ErrorKind::ValueValidation, format!("--url: {message}"))
    })?;
    let options = Options {
        target: args.target,
        endpoint,
        server_pid: args.server_pid,
        clients: (args.clients as usize).max(1),
        group_size: (args.group as usize).max(1),
        window: (args.window as usize).max(1),
        duration: args.duration,
        warmup: args.warmup,
        rate: args.rate.max(1.0),
        conns: args.conns as usize,
        users: (args.users as usize).max(1),
        hold: args.hold,
        events: args.events as usize,
        hog_groups: (args.hog_groups as usize).max(1),
        logins_per_sec: args.logins.max(0.1),
        data_bytes: args.data_bytes as usize,
        client_ids: args.client_ids,
        setup_threads: (args.setup_threads as usize).max(1),
    };
    Ok(Cli {
        scenario: args.scenario,
        options,
        json: args.json,
        label: args.label,
    })
}

fn to_json(report: &Report) -> String {
    let mut object = serde_json::Map::new();
    object.insert("scenario".into(), report.scenario.into());
    for (key, value) in &report.rows {
        object.insert((*key).into(), value.clone());
    }
    serde_json::Value::Object(object).to_string()
}

fn to_table(report: &Report) -> String {
    let width = report.rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out = format!("{:width$}  {}\n", "scenario", report.scenario);
    for (key, value) in &report.rows {
        let shown = match value {
            serde_json::Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        out.push_str(&format!("{key:width$}  {shown}\n"));
    }
    out
}

/// A run is healthy when nothing failed and no connection was lost.
fn healthy(report: &Report) -> bool {
    report.rows.iter().all(|(key, value)| match *key {
        "errors" | "closed" | "login_errors" | "repeated_or_out_of_order" => {
            value.as_u64() == Some(0)
        }
        _ => true,
    })
}

#[cfg(test)]
mod tests;
