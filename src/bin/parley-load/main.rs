//! `parley-load`: a load generator for parley and for the bare reference relays it is compared
//! with. It speaks the protocol over real sockets to any base URL, sets up users, sessions and
//! groups when the target is parley, runs one scenario, and prints a table (or JSON).

mod http_client;
mod scenarios;
mod setup;
mod stats;
mod swarm;

use std::process::ExitCode;

use scenarios::{Options, Report};
use setup::{Endpoint, Target};

const USAGE: &str = "\
parley-load: drive parley (or a bare reference relay) over real sockets and measure it

USAGE:
    parley-load SCENARIO [OPTIONS]

SCENARIOS:
    fanout   C clients in groups of G, each keeping W sends outstanding (closed loop) for D s:
             deliveries/s, acks/s, send-to-receive and ack latency, deliveries per server-CPU-s
    rate     open loop at R sends/s in total: latency percentiles
    idle     N WebSockets held open for H s: server RSS per connection
    sync     a user with E missed events reconnects and pages through them: events/s (parley only)
    logins   open loop at R sends/s, D s without and D s with logins at L/s: the p99 each time
             (parley only)

OPTIONS:
    --url URL          server base URL                              [http://127.0.0.1:3000]
    --target KIND      parley (real setup) or relay (/ws?user=U&group=G, no auth)   [parley]
    --server-pid PID   the server's process: CPU seconds and RSS from /proc
    --clients C        WebSocket clients (fanout, rate, logins)                     [200]
    --group G          clients per group                                            [10]
    --window W         sends outstanding per client (fanout; sync uses 16 W)        [4]
    --duration D       measured seconds (fanout, rate; each half of logins)         [10]
    --warmup S         seconds of traffic before measuring                          [1]
    --rate R           sends per second (rate, logins)                              [2000]
    --conns N          connections (idle)                                           [10000]
    --users U          accounts the idle connections are spread over                [100]
    --hold H           seconds the idle connections are held                        [5]
    --events E         events the sync user misses                                  [100000]
    --logins L         logins per second (logins)                                   [20]
    --data-bytes B     bytes of `data` per message (the send stamp, then padding)   [32]
    --client-ids       give every send an `id`, as real clients do for retries: parley
                       then also records (user, id) for each message; relays ignore it
    --setup-threads T  parallel REST connections during setup                       [4]
    --label NAME       a name for the server under test, carried into the output
    --json             print one JSON object instead of the table
    -h, --help         print this help

Progress goes to stderr; the result to stdout. Exit status 0 when the scenario ran without
errors or closed connections, 1 otherwise, 2 for bad arguments.
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() || args.iter().any(|a| a == "-h" || a == "--help") {
        print!("{USAGE}");
        return if args.is_empty() {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        };
    }
    let Cli {
        scenario,
        options,
        json,
        label,
    } = match parse(&args) {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("parley-load: {message}");
            return ExitCode::from(2);
        }
    };
    let result = match scenario.as_str() {
        "fanout" => scenarios::fanout(&options),
        "rate" => scenarios::rate(&options),
        "idle" => scenarios::idle(&options),
        "sync" => scenarios::sync(&options),
        "logins" => scenarios::logins(&options),
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

fn parse(args: &[String]) -> Result<Cli, String> {
    let mut scenario = None;
    let mut json = false;
    let mut label = None;
    let mut url = "http://127.0.0.1:3000".to_string();
    let mut options = Options {
        target: Target::Parley,
        endpoint: Endpoint::parse(&url)?,
        server_pid: None,
        clients: 200,
        group_size: 10,
        window: 4,
        duration: 10.0,
        warmup: 1.0,
        rate: 2000.0,
        conns: 10_000,
        users: 100,
        hold: 5.0,
        events: 100_000,
        logins_per_sec: 20.0,
        data_bytes: 32,
        client_ids: false,
        setup_threads: 4,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if arg == "--json" {
            json = true;
            continue;
        }
        if arg == "--client-ids" {
            options.client_ids = true;
            continue;
        }
        if !arg.starts_with("--") {
            if scenario.replace(arg.clone()).is_some() {
                return Err(format!("unexpected argument `{arg}`"));
            }
            continue;
        }
        let value = args
            .next()
            .ok_or_else(|| format!("{arg} needs a value (see --help)"))?;
        let number = || {
            value
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| format!("{arg} {value}: expected a non-negative number"))
        };
        match arg.as_str() {
            "--url" => url = value.clone(),
            "--label" => label = Some(value.clone()),
            "--target" => {
                options.target = match value.as_str() {
                    "parley" => Target::Parley,
                    "relay" => Target::Relay,
                    _ => return Err(format!("--target {value}: expected parley or relay")),
                }
            }
            "--server-pid" => {
                options.server_pid = Some(
                    value
                        .parse()
                        .map_err(|_| format!("--server-pid {value}: expected a process id"))?,
                )
            }
            "--clients" => options.clients = (number()? as usize).max(1),
            "--group" => options.group_size = (number()? as usize).max(1),
            "--window" => options.window = (number()? as usize).max(1),
            "--duration" => options.duration = number()?,
            "--warmup" => options.warmup = number()?,
            "--rate" => options.rate = number()?.max(1.0),
            "--conns" => options.conns = number()? as usize,
            "--users" => options.users = (number()? as usize).max(1),
            "--hold" => options.hold = number()?,
            "--events" => options.events = number()? as usize,
            "--logins" => options.logins_per_sec = number()?.max(0.1),
            "--data-bytes" => options.data_bytes = number()? as usize,
            "--setup-threads" => options.setup_threads = (number()? as usize).max(1),
            _ => return Err(format!("unknown option `{arg}` (see --help)")),
        }
    }
    options.endpoint = Endpoint::parse(&url)?;
    let scenario = scenario.ok_or("no scenario given (see --help)")?;
    Ok(Cli {
        scenario,
        options,
        json,
        label,
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
