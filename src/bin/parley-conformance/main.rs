//! `parley-conformance`: runs the cases of `docs/PROTOCOL.md` against a server at a base URL, over
//! real sockets, and reports pass, fail or skip per case, the `core` level (what every server must
//! do) apart from the `parley` level (parley's own choices). Exit status: 0 when nothing failed,
//! 1 when a case failed, 2 for bad arguments or an unreachable server.

mod cases;
mod http;
mod registry;
mod report;
mod transcript;
mod ws;

use std::net::TcpStream;
use std::panic::{self, AssertUnwindSafe};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use cases::{Ctx, Restarts};
use clap::Parser;
use http::{BaseUrl, Http};
use registry::{Level, Needs, Selection, Stop};
use report::{CaseReport, Status};
use transcript::Transcript;

/// The command line, as given; [`Options::from`] turns it into what a run needs.
#[derive(Debug, Parser)]
#[command(
    name = "parley-conformance",
    about = "parley-conformance: check a server against the parley protocol (docs/PROTOCOL.md)",
    after_help = "Exit status: 0 nothing failed, 1 a case failed, 2 bad arguments or the server \
                  is unreachable.",
    max_term_width = 100
)]
struct Args {
    /// the server's base URL
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:3000")]
    url: String,
    /// core (the protocol: every server), parley (parley's own choices) or all
    #[arg(long, value_name = "LEVEL", default_value = "all", value_parser = levels)]
    level: Levels,
    /// run only cases whose id contains PATTERN (repeatable)
    #[arg(long, value_name = "PATTERN")]
    filter: Vec<String>,
    /// leave out cases whose id contains PATTERN (repeatable)
    #[arg(long, value_name = "PATTERN")]
    skip: Vec<String>,
    /// list the cases (after --filter) and exit
    #[arg(long)]
    list: bool,
    /// print the report as JSON on stdout
    #[arg(long)]
    json: bool,
    /// show the exchanges of every case, not only of failed ones
    #[arg(long)]
    verbose: bool,
    /// also run cases that wait on the server's timers (keepalive, ~11 s)
    #[arg(long)]
    slow: bool,
    /// durability mode: shell command that kills the server (kill -9)
    #[arg(long, value_name = "CMD", requires = "restart_cmd")]
    kill_cmd: Option<String>,
    /// durability mode: shell command that starts it again on the same data; it may print the
    /// new base URL (http://...) on stdout
    #[arg(long, value_name = "CMD", requires = "kill_cmd")]
    restart_cmd: Option<String>,
    /// how long any one answer or event may take
    #[arg(long, value_name = "N", default_value = "10", value_parser = clap::value_parser!(u64).range(1..=600))]
    timeout_secs: u64,
}

/// The levels to run: one, or both (`None`, `--level all`).
#[derive(Debug, Clone, Copy)]
struct Levels(Option<Level>);

fn levels(text: &str) -> Result<Levels, String> {
    match text {
        "all" => Ok(Levels(None)),
        _ => Level::parse(text)
            .map(|level| Levels(Some(level)))
            .ok_or_else(|| "expected core, parley or all".to_string()),
    }
}

struct Options {
    url: String,
    selection: Selection,
    list: bool,
    json: bool,
    verbose: bool,
    slow: bool,
    restarts: Option<Restarts>,
    timeout: Duration,
}

impl From<Args> for Options {
    fn from(args: Args) -> Options {
        Options {
            url: args.url,
            selection: Selection {
                level: args.level.0,
                filters: args.filter,
                skips: args.skip,
            },
            list: args.list,
            json: args.json,
            verbose: args.verbose,
            slow: args.slow,
            // clap has checked that the two come together.
            restarts: args
                .kill_cmd
                .zip(args.restart_cmd)
                .map(|(kill_cmd, restart_cmd)| Restarts {
                    kill_cmd,
                    restart_cmd,
                }),
            timeout: Duration::from_secs(args.timeout_secs),
        }
    }
}

fn main() -> ExitCode {
    // Help on stdout with 0; bad arguments on stderr with 2.
    let options = Options::from(Args::parse());
    let selected = registry::select(&registry::all(), &options.selection);
    if options.list {
        list(&selected, options.json);
        return ExitCode::SUCCESS;
    }
    let base = match BaseUrl::parse(&options.url) {
        Ok(base) => base,
        Err(message) => {
            eprintln!("parley-conformance: --url {message}");
            return ExitCode::from(2);
        }
    };
    if let Err(err) = TcpStream::connect(&base.authority) {
        eprintln!("parley-conformance: cannot reach {}: {err}", base.authority);
        return ExitCode::from(2);
    }
    let reports = run(&options, base, &selected);
    if reports.iter().any(|r| r.status == Status::Fail) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn list(cases: &[&registry::Case], json: bool) {
    if json {
        let listing: Vec<serde_json::Value> = cases
            .iter()
            .map(|c| serde_json::json!({"id": c.id, "level": c.level.word(), "summary": c.summary, "needs": needs_word(c.needs)}))
            .collect();
        println!("{}", serde_json::Value::Array(listing));
    } else {
        for case in cases {
            let needs = match case.needs {
                Needs::Nothing => String::new(),
                other => format!(" [{}]", needs_word(other)),
            };
            println!(
                "{:<36} {:<6} {}{needs}",
                case.id,
                case.level.word(),
                case.summary
            );
        }
    }
}

fn needs_word(needs: Needs) -> &'static str {
    match needs {
        Needs::Nothing => "",
        Needs::Time => "slow",
        Needs::Restarts => "durability",
    }
}

fn run(options: &Options, base: BaseUrl, cases: &[&registry::Case]) -> Vec<CaseReport> {
    let target = base.http_url();
    let transcript = Transcript::default();
    let http = Http::new(base, options.timeout, transcript.clone());
    let mut ctx = Ctx::new(
        http,
        transcript.clone(),
        options.timeout,
        options.restarts.clone(),
    );
    let started = Instant::now();
    let mut reports: Vec<CaseReport> = Vec::new();
    if !options.json {
        println!("parley-conformance: {} cases against {target}", cases.len());
    }
    for case in cases {
        if !options.json && reports.last().is_none_or(|r| r.level != case.level) {
            println!("{}", report::level_heading(case.level));
        }
        let skip = match case.needs {
            Needs::Time if !options.slow => Some("slow; run with --slow"),
            Needs::Restarts if options.restarts.is_none() => {
                Some("durability; run with --kill-cmd and --restart-cmd")
            }
            _ => None,
        };
        let case_started = Instant::now();
        let outcome = match skip {
            Some(reason) => Err(Stop::Skip(reason.to_string())),
            None => panic::catch_unwind(AssertUnwindSafe(|| (case.run)(&mut ctx))).unwrap_or_else(
                |panic| {
                    Err(Stop::Fail(format!(
                        "the case panicked: {}",
                        panic_text(&panic)
                    )))
                },
            ),
        };
        let exchanges = transcript.take();
        let (status, message) = match outcome {
            Ok(()) => (Status::Pass, None),
            Err(Stop::Skip(why)) => (Status::Skip, Some(why)),
            Err(Stop::Fail(why)) => (Status::Fail, Some(why)),
        };
        let shown = if status == Status::Fail || options.verbose {
            exchanges
        } else {
            Vec::new()
        };
        let report = CaseReport {
            id: case.id,
            summary: case.summary,
            level: case.level,
            status,
            duration: case_started.elapsed(),
            message,
            transcript: shown,
        };
        if options.json {
            eprintln!(
                "{} {}",
                report.id,
                if status == Status::Fail { "FAIL" } else { "ok" }
            );
        } else {
            println!("{}", report::case_text(&report));
        }
        reports.push(report);
    }
    let elapsed = started.elapsed();
    if options.json {
        println!("{:#}", report::json_report(&reports, &target, elapsed));
    } else {
        println!("{}", report::tally_text(&reports, elapsed));
    }
    reports
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_string())
}

#[cfg(test)]
mod tests;
