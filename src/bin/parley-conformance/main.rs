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
use http::{BaseUrl, Http};
use registry::{Level, Needs, Selection, Stop};
use report::{CaseReport, Status};
use transcript::Transcript;

const USAGE: &str = "\
parley-conformance: check a server against the parley protocol (docs/PROTOCOL.md)

USAGE:
    parley-conformance [OPTIONS]

OPTIONS:
    --url URL             the server's base URL                  [default http://127.0.0.1:3000]
    --level LEVEL         core (the protocol: every server), parley (parley's own choices)
                          or all                                 [default all]
    --filter PATTERN      run only cases whose id contains PATTERN (repeatable)
    --skip PATTERN        leave out cases whose id contains PATTERN (repeatable)
    --list                list the cases (after --filter) and exit
    --json                print the report as JSON on stdout
    --verbose             show the exchanges of every case, not only of failed ones
    --slow                also run cases that wait on the server's timers (keepalive, ~11 s)
    --kill-cmd CMD        durability mode: shell command that kills the server (kill -9)
    --restart-cmd CMD     durability mode: shell command that starts it again on the same data;
                          it may print the new base URL (http://...) on stdout
    --timeout-secs N      how long any one answer or event may take  [default 10]
    -h, --help            print this help

EXIT STATUS: 0 nothing failed, 1 a case failed, 2 bad arguments or the server is unreachable.
";

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

enum Parsed {
    Run(Options),
    Help,
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Parsed, String> {
    let mut options = Options {
        url: "http://127.0.0.1:3000".to_string(),
        selection: Selection::default(),
        list: false,
        json: false,
        verbose: false,
        slow: false,
        restarts: None,
        timeout: Duration::from_secs(10),
    };
    let (mut kill_cmd, mut restart_cmd) = (None, None);
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_string(), Some(value.to_string()))
            }
            _ => (arg.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{flag} needs a value (see --help)"))
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Parsed::Help),
            "--list" => options.list = true,
            "--json" => options.json = true,
            "--slow" => options.slow = true,
            "--verbose" => options.verbose = true,
            "--url" => options.url = value()?,
            "--filter" => options.selection.filters.push(value()?),
            "--skip" => options.selection.skips.push(value()?),
            "--level" => {
                let text = value()?;
                options.selection.level =
                    match text.as_str() {
                        "all" => None,
                        _ => Some(Level::parse(&text).ok_or_else(|| {
                            format!("--level {text}: expected core, parley or all")
                        })?),
                    };
            }
            "--kill-cmd" => kill_cmd = Some(value()?),
            "--restart-cmd" => restart_cmd = Some(value()?),
            "--timeout-secs" => {
                let text = value()?;
                let secs = text
                    .parse::<u64>()
                    .ok()
                    .filter(|s| (1..=600).contains(s))
                    .ok_or_else(|| format!("--timeout-secs {text}: expected 1 to 600"))?;
                options.timeout = Duration::from_secs(secs);
            }
            _ => return Err(format!("unknown argument `{arg}` (see --help)")),
        }
    }
    options.restarts = match (kill_cmd, restart_cmd) {
        (Some(kill_cmd), Some(restart_cmd)) => Some(Restarts {
            kill_cmd,
            restart_cmd,
        }),
        (None, None) => None,
        _ => return Err("--kill-cmd and --restart-cmd go together".to_string()),
    };
    Ok(Parsed::Run(options))
}

fn main() -> ExitCode {
    let options = match parse_args(std::env::args().skip(1)) {
        Ok(Parsed::Run(options)) => options,
        Ok(Parsed::Help) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("parley-conformance: {message}");
            return ExitCode::from(2);
        }
    };
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
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Options, String> {
        match parse_args(args.iter().map(|s| s.to_string()))? {
            Parsed::Run(options) => Ok(options),
            Parsed::Help => Err("help".to_string()),
        }
    }

    #[test]
    fn parses_flags() {
        let options = parse(&[
            "--url=http://127.0.0.1:9",
            "--filter",
            "sync.",
            "--filter",
            "walkthrough",
            "--skip=seq.",
            "--level",
            "core",
            "--json",
            "--timeout-secs",
            "3",
        ])
        .unwrap();
        assert_eq!(options.url, "http://127.0.0.1:9");
        assert_eq!(options.selection.filters, vec!["sync.", "walkthrough"]);
        assert_eq!(options.selection.skips, vec!["seq."]);
        assert_eq!(options.selection.level, Some(Level::Core));
        assert!(options.json && !options.slow && options.restarts.is_none());
        assert_eq!(options.timeout, Duration::from_secs(3));
    }

    #[test]
    fn durability_needs_both_commands() {
        assert!(parse(&["--kill-cmd", "true"]).is_err());
        let options = parse(&["--kill-cmd", "k", "--restart-cmd", "r"]).unwrap();
        let restarts = options.restarts.unwrap();
        assert_eq!(
            (restarts.kill_cmd.as_str(), restarts.restart_cmd.as_str()),
            ("k", "r")
        );
        assert!(parse(&["--bogus"]).is_err());
        assert!(parse(&["--timeout-secs", "0"]).is_err());
    }

    #[test]
    fn levels() {
        assert_eq!(parse(&[]).unwrap().selection.level, None);
        assert_eq!(parse(&["--level", "all"]).unwrap().selection.level, None);
        assert_eq!(
            parse(&["--level=parley"]).unwrap().selection.level,
            Some(Level::Parley)
        );
        assert!(parse(&["--level", "strict"]).is_err());
    }

    #[test]
    fn base_urls() {
        let base = BaseUrl::parse("http://127.0.0.1:3000/").unwrap();
        assert_eq!(base.authority, "127.0.0.1:3000");
        assert_eq!(base.ws_url("abc"), "ws://127.0.0.1:3000/abc");
        let prefixed = BaseUrl::parse("http://localhost/chat").unwrap();
        assert_eq!(prefixed.authority, "localhost:80");
        assert_eq!(prefixed.target("/users"), "/chat/users");
        assert!(BaseUrl::parse("https://x").is_err());
        assert!(BaseUrl::parse("127.0.0.1:3000").is_err());
    }
}
