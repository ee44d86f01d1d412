//! Runs the conformance kit (`parley-conformance`) against the `parley` binary of this build:
//! every case of both levels, the slow ones and the durability mode included, then once more
//! against the same server (which now holds data), and checks the kit's own failure reporting,
//! levels and exit statuses. (The kit against an independent server: `conformance_standin.rs`.)
//!
//! The kit drives kills and restarts through shell commands, so the server is started and killed
//! by the small script that `docs/CONFORMANCE.md` shows (read from there, so the documented script
//! is the tested one). `sh control.sh start DIR BIN` starts
//! `parley --listen 127.0.0.1:0 --data-dir DIR/data`, records its pid in `DIR/pid`, waits for its
//! `listening on` line and prints `http://ADDR` (a restart gets a new port; the kit follows the
//! printed URL). `sh control.sh kill DIR` sends SIGKILL and returns once the process is gone, so
//! the restart finds the store unlocked.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::thread;

use serde_json::Value;

mod kit_report;
use kit_report::{case_ids, report};

const KIT: &str = env!("CARGO_BIN_EXE_parley-conformance");
const SERVER: &str = env!("CARGO_BIN_EXE_parley");

/// The control script, taken from `docs/CONFORMANCE.md` so that the documented one is the one
/// that is tested: the `sh` block that starts with `#!/bin/sh`.
fn control_script() -> String {
    let doc = include_str!("../docs/CONFORMANCE.md");
    let start = doc
        .find("```sh\n#!/bin/sh\n")
        .expect("docs/CONFORMANCE.md shows the control script")
        + "```sh\n".len();
    let end = start + doc[start..].find("```").expect("the script block ends");
    doc[start..end].to_string()
}

/// A server started through the control script; killed when dropped.
struct Target {
    dir: tempfile::TempDir,
}

impl Target {
    fn start() -> Target {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("control.sh"), control_script()).expect("write script");
        let target = Target { dir };
        let output = Command::new("sh")
            .args(target.control_args("start"))
            .output()
            .expect("run the control script");
        assert!(
            output.status.success(),
            "the server did not start: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        target
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn control_args(&self, action: &str) -> Vec<String> {
        let script = self.path().join("control.sh");
        let mut args = vec![
            script.display().to_string(),
            action.to_string(),
            self.path().display().to_string(),
        ];
        if action == "start" {
            args.push(SERVER.to_string());
        }
        args
    }

    /// The same invocation as one shell command line, for the kit's `--kill-cmd`/`--restart-cmd`.
    fn control_command(&self, action: &str) -> String {
        let quoted: Vec<String> = self
            .control_args(action)
            .iter()
            .map(|a| format!("'{a}'"))
            .collect();
        format!("sh {}", quoted.join(" "))
    }

    /// The URL of the server running now (a restart moves it to a new port).
    fn url(&self) -> String {
        std::fs::read_to_string(self.path().join("url"))
            .expect("the control script wrote the URL")
            .trim()
            .to_string()
    }

    fn server_logs(&self) -> String {
        let mut logs: Vec<PathBuf> = std::fs::read_dir(self.path())
            .map(|entries| entries.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        logs.retain(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("server.log"))
        });
        logs.sort();
        logs.iter()
            .map(|p| std::fs::read_to_string(p).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("---- restart ----\n")
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = Command::new("sh").args(self.control_args("kill")).status();
    }
}

fn kit(args: &[&str]) -> Output {
    Command::new(KIT)
        .args(args)
        .output()
        .expect("run parley-conformance")
}

#[test]
fn the_whole_kit_passes_against_this_build() {
    let target = Target::start();
    let kill = target.control_command("kill");
    let restart = target.control_command("start");
    let url = target.url();
    let output = kit(&[
        "--url",
        &url,
        "--json",
        "--slow",
        "--kill-cmd",
        &kill,
        "--restart-cmd",
        &restart,
    ]);
    let full = report(&output);
    let failed = case_ids(&full, "fail");
    assert!(
        output.status.success() && failed.is_empty(),
        "conformance failures {failed:?}:\n{:#}\nserver logs:\n{}",
        full,
        target.server_logs()
    );
    let listed = String::from_utf8_lossy(&kit(&["--list"]).stdout)
        .lines()
        .count();
    assert_eq!(
        full["cases"].as_array().unwrap().len(),
        listed,
        "every case ran"
    );
    assert_eq!(
        case_ids(&full, "skip"),
        Vec::<String>::new(),
        "nothing skipped"
    );
    assert_eq!(full["failed"], 0);
    assert_eq!(full["passed"].as_u64(), Some(listed as u64));
    for level in ["core", "parley"] {
        let cases = full["cases"].as_array().unwrap();
        let of_level = cases.iter().filter(|c| c["level"] == level).count();
        assert!(of_level > 0, "{level} cases ran");
        assert_eq!(
            full["levels"][level]["passed"].as_u64(),
            Some(of_level as u64)
        );
        assert_eq!(full["levels"][level]["failed"], 0);
    }
    for must_run in [
        "walkthrough",
        "keepalive.ping",
        "durability.acked_messages",
        "sync.paging",
    ] {
        assert!(
            case_ids(&full, "pass").iter().any(|id| id == must_run),
            "{must_run} passed"
        );
    }

    // Again, against a server that now holds all of that data (and has restarted three times).
    let again = kit(&[
        "--url",
        &target.url(),
        "--json",
        "--filter",
        "walkthrough",
        "--filter",
        "sync.",
        "--filter",
        "seq.",
        "--filter",
        "authz.",
    ]);
    let second = report(&again);
    assert!(
        again.status.success(),
        "second run on existing data:\n{second:#}"
    );
    assert_eq!(second["failed"], 0);
    assert!(second["passed"].as_u64().unwrap() >= 10, "{second:#}");
}

/// A server that answers every request `200 {}`: the kit must fail, say why, and exit 1.
#[test]
fn failures_are_reported_with_the_exchange_and_exit_1() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}",
            );
        }
    });
    let output = kit(&[
        "--url",
        &url,
        "--json",
        "--timeout-secs",
        "2",
        "--filter",
        "rest.register.created",
        "--filter",
        "rest.healthz",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let report = report(&output);
    assert_eq!(report["failed"], 2, "{report:#}");
    assert_eq!(
        report["levels"]["core"]["failed_cases"],
        serde_json::json!(["rest.register.created"])
    );
    assert_eq!(
        report["levels"]["parley"]["failed_cases"],
        serde_json::json!(["rest.healthz"])
    );
    // Core first, then parley.
    assert_eq!(report["cases"][0]["id"], "rest.register.created");
    let case = &report["cases"][1];
    assert_eq!(case["id"], "rest.healthz");
    assert!(
        case["message"].as_str().unwrap().contains("healthz body"),
        "{case:#}"
    );
    let transcript = case["transcript"]
        .as_array()
        .expect("a failure carries its exchanges");
    assert!(
        transcript
            .iter()
            .any(|l| l.as_str().unwrap().starts_with("-> GET /healthz")),
        "{case:#}"
    );
    assert!(
        transcript
            .iter()
            .any(|l| l.as_str().unwrap().starts_with("<- 200 {}")),
        "{case:#}"
    );
}

#[test]
fn usage_errors_and_unreachable_servers_exit_2() {
    assert_eq!(kit(&["--bogus"]).status.code(), Some(2));
    assert_eq!(kit(&["--level", "strict"]).status.code(), Some(2));
    assert_eq!(kit(&["--kill-cmd", "true"]).status.code(), Some(2));
    let free = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    assert_eq!(
        kit(&["--url", &format!("http://{free}")]).status.code(),
        Some(2)
    );
}

#[test]
fn list_and_filter() {
    let all = String::from_utf8(kit(&["--list"]).stdout).unwrap();
    assert!(all.lines().next().unwrap().starts_with("walkthrough "));
    assert!(all.contains("keepalive.ping") && all.contains("[slow]"));
    let core = String::from_utf8(kit(&["--list", "--level", "core"]).stdout).unwrap();
    let parley = String::from_utf8(kit(&["--list", "--level", "parley"]).stdout).unwrap();
    assert_eq!(
        core.lines().count() + parley.lines().count(),
        all.lines().count()
    );
    assert!(
        core.lines()
            .all(|l| l.split_whitespace().nth(1) == Some("core")),
        "{core}"
    );
    assert!(
        parley
            .lines()
            .all(|l| l.split_whitespace().nth(1) == Some("parley")),
        "{parley}"
    );
    let unseq = String::from_utf8(kit(&["--list", "--skip", "seq."]).stdout).unwrap();
    assert!(unseq.lines().count() < all.lines().count());
    assert!(unseq.lines().all(|l| !l.starts_with("seq.")), "{unseq}");
    let sync = String::from_utf8(kit(&["--list", "--filter", "sync."]).stdout).unwrap();
    assert!(
        !sync.is_empty() && sync.lines().all(|l| l.contains("sync.")),
        "{sync}"
    );
    let listed: Value = serde_json::from_slice(&kit(&["--list", "--json"]).stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), all.lines().count());
}
